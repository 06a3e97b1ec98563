/*
 * cc_dataversion.c: publishing a data version (see cc_dataversion.h): the
 * store plus the bitset of persons excluded by an opt-out in force, with
 * the reference counts that let queries finish on the version they began,
 * and the cache of figures that depend on the version alone.
 */
#include "cc_dataversion.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "cc_error.h"
#include "cc_optout.h"
#include "cc_store.h"

/* A store owned jointly by the versions published from it. */
struct shared_store {
    atomic_uint_fast64_t refs;
    cc_store *store;
};

struct cc_dataversion {
    atomic_uint_fast64_t refs;
    const cc_store *store;
    struct shared_store *owner; /* NULL: the store is not ours */
    uint64_t store_version;
    uint64_t optout_sequence;
    cc_day published_on;
    uint64_t n_excluded;
    uint64_t *excluded; /* (n_persons + 63) / 64 words */
    uint64_t noise_epoch;
    /* cc_dataversion_cache(): NULL until built; then never changed */
    pthread_mutex_t cache_lock;
    _Atomic(void *) cache;
    void (*free_cache)(void *cache);
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The noise epoch: a hash of what the figures are computed on (the store
 * version and the excluded set), so that it changes exactly when a figure
 * could, and two servers publishing the same data agree on it. */
static void set_noise_epoch(cc_dataversion *v)
{
    uint64_t words = ((uint64_t)cc_store_columns(v->store)->n_persons + 63) / 64;
    uint64_t h = mix64(v->store_version ^ 0x65706f6368ULL) ^ mix64(words);
    for (uint64_t i = 0; i < words; i++)
        h = mix64(h ^ v->excluded[i]) + i;
    v->noise_epoch = h | 1; /* never 0: 0 means "no epoch" to the release layer */
}

/* Reference counts: an increment needs no ordering (the caller already holds
 * a reference, so nothing can free the object meanwhile); the decrement is
 * acq_rel so that every thread's reads of the object happen before the
 * thread whose decrement reaches zero frees it. */
static void shared_store_release(struct shared_store *owner)
{
    if (owner && atomic_fetch_sub_explicit(&owner->refs, 1, memory_order_acq_rel) == 1) {
        cc_store_free(owner->store);
        free(owner);
    }
}

static int version_new(const cc_store *store, cc_dataversion **out)
{
    cc_dataversion *v = calloc(1, sizeof *v);
    if (!v)
        return CC_ENOMEM;
    uint64_t words = ((uint64_t)cc_store_columns(store)->n_persons + 63) / 64;
    v->excluded = calloc(words ? words : 1, sizeof *v->excluded);
    if (!v->excluded) {
        free(v);
        return CC_ENOMEM;
    }
    if (pthread_mutex_init(&v->cache_lock, NULL) != 0) {
        free(v->excluded);
        free(v);
        return CC_ENOMEM;
    }
    atomic_init(&v->refs, 1);
    atomic_init(&v->cache, NULL);
    v->store = store;
    /* the store's person sets of frequent codes, built with the first
     * version published from it (a failure only leaves queries on the
     * postings) */
    (void)cc_store_index_build(store);
    *out = v;
    return 0;
}

static void version_free(cc_dataversion *v)
{
    void *cache = atomic_load_explicit(&v->cache, memory_order_acquire);
    if (cache && v->free_cache)
        v->free_cache(cache);
    pthread_mutex_destroy(&v->cache_lock);
    shared_store_release(v->owner);
    free(v->excluded);
    free(v);
}

static void exclude(cc_dataversion *v, uint32_t person)
{
    uint64_t bit = 1ULL << (person & 63);
    if (!(v->excluded[person >> 6] & bit)) {
        v->excluded[person >> 6] |= bit;
        v->n_excluded++;
    }
}

/* Marks the persons with an opt-out in force on `on`. */
static int apply_optouts(cc_dataversion *v, cc_optout *optouts, cc_day on)
{
    cc_pseudonym *persons = NULL;
    size_t n = 0;
    int rc = cc_optout_persons_in_force(optouts, on, CC_OPTOUT_MASK_ANY, &persons, &n,
                                        &v->optout_sequence);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t p = cc_store_find_person(v->store, &persons[i]);
        if (p >= 0)
            exclude(v, (uint32_t)p);
    }
    free(persons);
    v->published_on = on;
    return 0;
}

int cc_dataversion_publish(const cc_store *store, uint64_t store_version, cc_optout *optouts,
                           cc_day on, cc_dataversion **out)
{
    cc_dataversion *v = NULL;
    int rc = version_new(store, &v);
    if (rc < 0)
        return rc;
    if ((rc = apply_optouts(v, optouts, on)) < 0) {
        version_free(v);
        return rc;
    }
    v->store_version = store_version;
    set_noise_epoch(v);
    *out = v;
    return 0;
}

int cc_dataversion_publish_owning(cc_store *store, uint64_t store_version, cc_optout *optouts,
                                  cc_day on, cc_dataversion **out)
{
    struct shared_store *owner = malloc(sizeof *owner);
    if (!owner)
        return CC_ENOMEM;
    cc_dataversion *v = NULL;
    int rc = cc_dataversion_publish(store, store_version, optouts, on, &v);
    if (rc < 0) {
        free(owner);
        return rc;
    }
    atomic_init(&owner->refs, 1);
    owner->store = store;
    v->owner = owner;
    *out = v;
    return 0;
}

int cc_dataversion_republish(const cc_dataversion *base, cc_optout *optouts, cc_day on,
                             cc_dataversion **out)
{
    cc_dataversion *v = NULL;
    int rc = cc_dataversion_publish(base->store, base->store_version, optouts, on, &v);
    if (rc < 0)
        return rc;
    if (base->owner) {
        atomic_fetch_add_explicit(&base->owner->refs, 1, memory_order_relaxed);
        v->owner = base->owner;
    }
    *out = v;
    return 0;
}

int cc_dataversion_from_indices(const cc_store *store, const uint32_t *excluded,
                                uint64_t n_excluded, cc_dataversion **out)
{
    cc_dataversion *v = NULL;
    int rc = version_new(store, &v);
    if (rc < 0)
        return rc;
    uint32_t n_persons = cc_store_columns(store)->n_persons;
    for (uint64_t i = 0; i < n_excluded; i++) {
        if (excluded[i] >= n_persons) {
            version_free(v);
            return CC_ERANGE;
        }
        exclude(v, excluded[i]);
    }
    set_noise_epoch(v);
    *out = v;
    return 0;
}

cc_dataversion *cc_dataversion_retain(cc_dataversion *version)
{
    atomic_fetch_add_explicit(&version->refs, 1, memory_order_relaxed);
    return version;
}

void cc_dataversion_release(cc_dataversion *version)
{
    if (version && atomic_fetch_sub_explicit(&version->refs, 1, memory_order_acq_rel) == 1)
        version_free(version);
}

const cc_store *cc_dataversion_store(const cc_dataversion *version)
{
    return version->store;
}

uint64_t cc_dataversion_store_version(const cc_dataversion *version)
{
    return version->store_version;
}

uint64_t cc_dataversion_optout_sequence(const cc_dataversion *version)
{
    return version->optout_sequence;
}

cc_day cc_dataversion_published_on(const cc_dataversion *version)
{
    return version->published_on;
}

uint64_t cc_dataversion_noise_epoch(const cc_dataversion *version)
{
    return version->noise_epoch;
}

uint64_t cc_dataversion_n_excluded(const cc_dataversion *version)
{
    return version->n_excluded;
}

const uint64_t *cc_dataversion_excluded_bits(const cc_dataversion *version)
{
    return version->excluded;
}

void *cc_dataversion_cache(const cc_dataversion *version,
                           void *(*build)(const cc_dataversion *version, void *arg), void *arg,
                           void (*free_cache)(void *cache))
{
    /* acquire pairs with the release below: whoever sees the pointer sees
     * everything the builder wrote */
    void *cache = atomic_load_explicit(&version->cache, memory_order_acquire);
    if (cache)
        return cache;
    cc_dataversion *v = (cc_dataversion *)version; /* the cache only, under its lock */
    pthread_mutex_lock(&v->cache_lock);
    cache = atomic_load_explicit(&v->cache, memory_order_relaxed);
    if (!cache && (cache = build(version, arg)) != NULL) {
        v->free_cache = free_cache;
        atomic_store_explicit(&v->cache, cache, memory_order_release);
    }
    pthread_mutex_unlock(&v->cache_lock);
    return cache;
}

int cc_dataversion_is_excluded(const cc_dataversion *version, uint32_t person)
{
    return (int)(version->excluded[person >> 6] >> (person & 63) & 1);
}
