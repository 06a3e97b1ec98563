/*
 * cc_release_cache.h: releases already given, kept for the same question
 * asked again. A release is a deterministic function of the data version,
 * the policy, the day (ages are on it), the canonical request and, through
 * the disclosure ledger, the account that asked: the cell key method gives
 * the same persons the same noise, and the ledger answers a repeat of an
 * account's own query as it was answered (cc_ledger.h: the same cohort and
 * fingerprint again is answered and not recorded again; each cell again
 * finds itself and takes its own earlier value). So a repeat by the same
 * account on the same version and day can be given the bytes packed the
 * first time, without the engine, the release layer or the ledger, and a
 * query asked without the ledger (an operator's saved query) can be given
 * them for any account.
 *
 * What bounds it: entries live at most ttl_s seconds (the server's
 * default, CC_RELEASE_CACHE_TTL_S, is far below the ledger's windows of
 * days, so a repeat inside the TTL is one the ledger would have answered
 * the same way), at most max_bytes of packed releases are kept (least
 * recently used go first), and the owner drops the whole cache with its
 * policy and codelists (the server makes a new one on reload). Refusals
 * and errors are never kept: they go through the full path each time.
 *
 * Thread-safe (one mutex; a hit copies the bytes out under it).
 *
 * Must never: hold anything but packed releases (already protected, what
 * the client was sent) and the canonical requests that key them; be
 * shared between accounts for a release that went through the ledger.
 */
#ifndef CC_RELEASE_CACHE_H
#define CC_RELEASE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_dataversion.h"

/* What a server keeps unless configured otherwise. */
#define CC_RELEASE_CACHE_TTL_S 300
#define CC_RELEASE_CACHE_DEFAULT_MB 64

typedef struct cc_release_cache cc_release_cache;

/* Who asked what, of which data. */
struct cc_release_cache_key {
    int64_t account;     /* the ledger's account; 0: asked without the ledger */
    uint64_t version;    /* cc_release_cache_version_id() */
    cc_day day;          /* the day of the answer (ages without as_of) */
    const char *kind;    /* the op: "count", "compare" */
    const char *request; /* the canonical request (JSON) */
    size_t request_len;
};

/* What the audit record of a release says, kept beside its bytes. */
struct cc_release_cache_counts {
    uint64_t cells_released, cells_suppressed;
};

struct cc_release_cache_stats {
    uint64_t hits, misses, entries, bytes;
};

/* An identity of a data version: the same for two versions whose figures
 * are the same (store version, opt-out state, publication day, noise
 * epoch), which is what a release depends on. */
uint64_t cc_release_cache_version_id(const cc_dataversion *version);

/* A cache of at most max_bytes of releases, each kept at most ttl_s
 * seconds. Returns 0 or CC_ENOMEM / CC_EINVAL (max_bytes or ttl_s 0). */
int cc_release_cache_open(size_t max_bytes, int64_t ttl_s, cc_release_cache **out);

/* NULL is allowed. No call may be running on it. */
void cc_release_cache_close(cc_release_cache *cache);

/* Looks key up at time now_s: on a hit, writes the packed release with
 * write(ctx, bytes, len) (under the cache's lock; msgpack_packer's write
 * callback fits), fills *counts and returns 1; on a miss (or an entry
 * older than the TTL, which is dropped) returns 0; write's non-zero
 * result is returned as CC_ENOMEM. cache NULL: always a miss. */
int cc_release_cache_get(cc_release_cache *cache, const struct cc_release_cache_key *key,
                         int64_t now_s, int (*write)(void *ctx, const char *bytes, size_t len),
                         void *ctx, struct cc_release_cache_counts *counts);

/* Keeps the packed release bytes[0..len) under key (replacing an entry of
 * the same key), evicting the least recently used beyond max_bytes; a
 * release larger than an eighth of max_bytes is not kept. Out of memory
 * only means it is not kept. cache NULL: nothing. */
void cc_release_cache_put(cc_release_cache *cache, const struct cc_release_cache_key *key,
                          int64_t now_s, const void *bytes, size_t len,
                          const struct cc_release_cache_counts *counts);

void cc_release_cache_stats(cc_release_cache *cache, struct cc_release_cache_stats *out);

#endif
