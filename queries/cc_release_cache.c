/*
 * cc_release_cache.c: the packed releases of recent requests (see the
 * header for why a repeat may be given them). A chained hash table over a
 * doubly linked list in order of use: a hit moves its entry to the front,
 * and eviction takes from the back until the bytes kept fit.
 *
 * Must never: keep an entry past its TTL or beyond max_bytes, or give an
 * entry to a key that differs from its own in any field.
 */
#include "cc_release_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_hash.h"

struct entry {
    struct entry *chain;      /* the next in its bucket */
    struct entry *newer, *older; /* the use list */
    uint64_t hash;
    int64_t account;
    uint64_t version;
    cc_day day;
    int64_t at_s;
    struct cc_release_cache_counts counts;
    size_t kind_len, request_len, bytes_len;
    char *key_text; /* kind, then request (not NUL-terminated) */
    uint8_t *bytes;
};

struct cc_release_cache {
    pthread_mutex_t lock;
    size_t max_bytes, bytes;
    int64_t ttl_s;
    struct entry **buckets;
    uint64_t n_buckets; /* a power of two */
    struct entry *newest, *oldest;
    uint64_t n_entries, hits, misses;
};

/* Buckets for the entries a cache of this size holds when releases are
 * small (a few hundred bytes): chains stay short, and a table of large
 * releases is just emptier. */
#define MIN_BUCKETS 1024u
#define MAX_BUCKETS (1u << 20)

uint64_t cc_release_cache_version_id(const cc_dataversion *version)
{
    uint64_t h = cc_hash_mix64(cc_dataversion_store_version(version) ^ 0x72656c6561736531ULL);
    h = cc_hash_mix64(h ^ cc_dataversion_optout_sequence(version));
    h = cc_hash_mix64(h ^ (uint64_t)(uint32_t)cc_dataversion_published_on(version));
    return cc_hash_mix64(h ^ cc_dataversion_noise_epoch(version));
}

static uint64_t key_hash(const struct cc_release_cache_key *k)
{
    uint64_t h = cc_hash_bytes(k->request, k->request_len, (uint64_t)k->account);
    h = cc_hash_mix64(h ^ k->version);
    h = cc_hash_mix64(h ^ (uint64_t)(uint32_t)k->day);
    return cc_hash_text(k->kind, SIZE_MAX, h);
}

static int key_matches(const struct entry *e, uint64_t hash, const struct cc_release_cache_key *k,
                       size_t kind_len)
{
    return e->hash == hash && e->account == k->account && e->version == k->version &&
           e->day == k->day && e->kind_len == kind_len && e->request_len == k->request_len &&
           !memcmp(e->key_text, k->kind, kind_len) &&
           !memcmp(e->key_text + kind_len, k->request, k->request_len);
}

int cc_release_cache_open(size_t max_bytes, int64_t ttl_s, cc_release_cache **out)
{
    *out = NULL;
    if (max_bytes == 0 || ttl_s <= 0)
        return CC_EINVAL;
    struct cc_release_cache *c = calloc(1, sizeof *c);
    if (!c)
        return CC_ENOMEM;
    c->max_bytes = max_bytes;
    c->ttl_s = ttl_s;
    uint64_t n = cc_hash_slots_for(max_bytes / 512, MIN_BUCKETS);
    c->n_buckets = n && n <= MAX_BUCKETS ? n : MAX_BUCKETS;
    if (!(c->buckets = calloc(c->n_buckets, sizeof *c->buckets))) {
        free(c);
        return CC_ENOMEM;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->buckets);
        free(c);
        return CC_ENOMEM;
    }
    *out = c;
    return 0;
}

static size_t entry_bytes(const struct entry *e)
{
    return sizeof *e + e->kind_len + e->request_len + e->bytes_len;
}

static void unlink_use(struct cc_release_cache *c, struct entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void push_newest(struct cc_release_cache *c, struct entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static void drop(struct cc_release_cache *c, struct entry *e)
{
    struct entry **p = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    unlink_use(c, e);
    c->bytes -= entry_bytes(e);
    c->n_entries--;
    free(e->key_text);
    free(e->bytes);
    free(e);
}

void cc_release_cache_close(cc_release_cache *c)
{
    if (!c)
        return;
    while (c->oldest)
        drop(c, c->oldest);
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
}

static struct entry *find(struct cc_release_cache *c, const struct cc_release_cache_key *k,
                          uint64_t hash, size_t kind_len)
{
    for (struct entry *e = c->buckets[hash & (c->n_buckets - 1)]; e; e = e->chain)
        if (key_matches(e, hash, k, kind_len))
            return e;
    return NULL;
}

int cc_release_cache_get(cc_release_cache *c, const struct cc_release_cache_key *key,
                         int64_t now_s, int (*write)(void *ctx, const char *bytes, size_t len),
                         void *ctx, struct cc_release_cache_counts *counts)
{
    if (!c)
        return 0;
    uint64_t hash = key_hash(key);
    size_t kind_len = strlen(key->kind);
    int rc = 0;
    pthread_mutex_lock(&c->lock);
    struct entry *e = find(c, key, hash, kind_len);
    if (e && (now_s < e->at_s || now_s - e->at_s >= c->ttl_s)) {
        drop(c, e); /* too old (or the clock went back): asked afresh */
        e = NULL;
    }
    if (e) {
        unlink_use(c, e);
        push_newest(c, e);
        *counts = e->counts;
        rc = write(ctx, (const char *)e->bytes, e->bytes_len) == 0 ? 1 : CC_ENOMEM;
        c->hits++;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void cc_release_cache_put(cc_release_cache *c, const struct cc_release_cache_key *key,
                          int64_t now_s, const void *bytes, size_t len,
                          const struct cc_release_cache_counts *counts)
{
    if (!c || len > c->max_bytes / 8)
        return;
    struct entry *e = calloc(1, sizeof *e);
    size_t kind_len = strlen(key->kind);
    if (!e)
        return;
    e->key_text = malloc(kind_len + key->request_len + 1);
    e->bytes = malloc(len ? len : 1);
    if (!e->key_text || !e->bytes) {
        free(e->key_text);
        free(e->bytes);
        free(e);
        return;
    }
    memcpy(e->key_text, key->kind, kind_len);
    memcpy(e->key_text + kind_len, key->request, key->request_len);
    memcpy(e->bytes, bytes, len);
    e->hash = key_hash(key);
    e->account = key->account;
    e->version = key->version;
    e->day = key->day;
    e->at_s = now_s;
    e->counts = *counts;
    e->kind_len = kind_len;
    e->request_len = key->request_len;
    e->bytes_len = len;

    pthread_mutex_lock(&c->lock);
    struct entry *old = find(c, key, e->hash, kind_len);
    if (old)
        drop(c, old);
    struct entry **bucket = &c->buckets[e->hash & (c->n_buckets - 1)];
    e->chain = *bucket;
    *bucket = e;
    push_newest(c, e);
    c->bytes += entry_bytes(e);
    c->n_entries++;
    while (c->bytes > c->max_bytes && c->oldest != e)
        drop(c, c->oldest);
    pthread_mutex_unlock(&c->lock);
}

void cc_release_cache_stats(cc_release_cache *c, struct cc_release_cache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    out->hits = c->hits;
    out->misses = c->misses;
    out->entries = c->n_entries;
    out->bytes = c->bytes;
    pthread_mutex_unlock(&c->lock);
}
