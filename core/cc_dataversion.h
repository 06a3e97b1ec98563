/*
 * cc_dataversion.h: a published data version: a store snapshot together
 * with the set of persons excluded from every figure because an opt-out
 * (type 1 or the National Data Opt-out) is in force for them.
 *
 * Every figure the server computes comes from one data version. The opt-out
 * register commits a change at once; the change reaches figures when the
 * next version is published (docs/operator-guide.md, "publication
 * schedule"), so that a before/after difference shows a batch, not a
 * person. A version is immutable once published (only its cache, below, is
 * filled in once, under a lock) and may be read by many threads at once.
 *
 * Lifetime: a version is reference-counted. Publishing returns it with one
 * reference; whoever keeps it beyond the publisher's own use (a query on
 * the thread pool, the server's "in force" slot) takes one with
 * cc_dataversion_retain() and gives it back with cc_dataversion_release(),
 * from any thread (the count is a C11 atomic). The last release frees the
 * version, and the store too if the version owns it, so a query that
 * started on a version finishes on it even after a newer one is in force.
 *
 * The struct is opaque: readers go through the accessors below.
 *
 * Must never: hold a pseudonym of an excluded person beyond publishing (the
 * excluded set is a bitset over person indices).
 */
#ifndef CC_DATAVERSION_H
#define CC_DATAVERSION_H

#include <stdint.h>

#include "cc_date.h"

typedef struct cc_store cc_store;   /* cc_store.h */
typedef struct cc_optout cc_optout; /* cc_optout.h */

typedef struct cc_dataversion cc_dataversion;

/* Publishes a version of store: reads the persons with any opt-out in force
 * on `on` from the register, in one read transaction, and marks them
 * excluded. The version does not own store, which must outlive it. */
int cc_dataversion_publish(const cc_store *store, uint64_t store_version, cc_optout *optouts,
                           cc_day on, cc_dataversion **out);

/* As cc_dataversion_publish(), but on success the version owns store: it is
 * freed with the last version that shares it (see cc_dataversion_republish).
 * On failure the caller still owns store. */
int cc_dataversion_publish_owning(cc_store *store, uint64_t store_version, cc_optout *optouts,
                                  cc_day on, cc_dataversion **out);

/* Publishes a new version of base's store (same store_version) with the
 * opt-outs in force on `on` now. If base owns its store, the new version
 * shares that ownership (the store lives until both are released). */
int cc_dataversion_republish(const cc_dataversion *base, cc_optout *optouts, cc_day on,
                             cc_dataversion **out);

/* A version with an explicit excluded set (tests, benchmarks): the persons
 * listed by index. Does not own store. */
int cc_dataversion_from_indices(const cc_store *store, const uint32_t *excluded,
                                uint64_t n_excluded, cc_dataversion **out);

/* Takes one more reference; returns version. */
cc_dataversion *cc_dataversion_retain(cc_dataversion *version);

/* Gives one reference back (NULL is allowed); the last one frees the
 * version (and its store, if owned). */
void cc_dataversion_release(cc_dataversion *version);

/* ---- accessors (valid while a reference is held) ---- */

const cc_store *cc_dataversion_store(const cc_dataversion *version);
/* The snapshot's version number in state.db. */
uint64_t cc_dataversion_store_version(const cc_dataversion *version);
/* The register's state the exclusions reflect: the sequence of its latest event. */
uint64_t cc_dataversion_optout_sequence(const cc_dataversion *version);
/* Opt-outs in force on this day are applied. */
cc_day cc_dataversion_published_on(const cc_dataversion *version);
/* The noise epoch: a non-zero hash of the store version and the excluded
 * set. It changes whenever a figure could change (a new store or a new set
 * of opt-outs in force) and is the same for every server publishing the
 * same data; the release layer draws every cell's noise afresh in each
 * epoch (docs/privacy.md, "Publications"). */
uint64_t cc_dataversion_noise_epoch(const cc_dataversion *version);
/* How many persons are excluded. */
uint64_t cc_dataversion_n_excluded(const cc_dataversion *version);
/* The excluded set as a bitset over person indices: (n_persons + 63) / 64
 * words, bit p % 64 of word p / 64 set if person p is excluded. For loops
 * that test 64 persons at a time. */
const uint64_t *cc_dataversion_excluded_bits(const cc_dataversion *version);
/* Is person excluded from figures in this version? */
int cc_dataversion_is_excluded(const cc_dataversion *version, uint32_t person);

/* ---- a cache kept with the version ----
 *
 * Figures that depend on the version alone (the query engine keeps the
 * registered population by area and sex, and the set of registered persons
 * not opted out) are computed once, on first use, and kept until the
 * version is freed. What the cache holds is its builder's business: the
 * version only keeps the pointer, builds it at most once (under a lock of
 * its own, so concurrent first uses wait for one build) and frees it with
 * free_cache. The first caller's build and free_cache are the ones used.
 * Returns the cache, or NULL if build returned NULL (out of memory: nothing
 * is kept, and a later call tries again). */
void *cc_dataversion_cache(const cc_dataversion *version,
                           void *(*build)(const cc_dataversion *version, void *arg), void *arg,
                           void (*free_cache)(void *cache));

#endif
