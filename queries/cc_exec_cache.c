/*
 * cc_exec_cache.c: what the engine keeps per data version
 * (cc_dataversion_cache(), built on the first query that needs it and
 * freed with the version): the set of persons registered with a practice
 * and not opted out, and the registered population by (LSOA, sex), each
 * group with its size, the sum of its record keys and its sketch (the 16
 * bucket minima of its record keys).
 *
 * Why: the registered population is the denominator of most rates (query 3
 * of the benchmark), and it does not depend on the query. Counting it read
 * every person's LSOA, practice and record key (70 MB at 10 million
 * persons) for every query; from the groups, a table by region, ICB,
 * district, LSOA and sex is a sum over 4 x (LSOAs + 1) groups. Sizes and key
 * sums add up and sketches merge by the minimum of each bucket, so the
 * cells, their keys and sketches, the cohort and its size without each
 * restriction are exactly those the person pass gives.
 *
 * Must never: hold anything but counts, key sums and sketches per group and
 * a bitset over person indices; answer a query whose persons the groups do
 * not determine (ages, practices, conditions, or one that asks for the
 * cohort's record keys).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_ledger.h"
#include "cc_store.h"

/* Groups are (LSOA slot, sex slot): LSOA n_lsoa stands for an unknown LSOA;
 * sexes are the four codes of enum cc_sex. */
#define N_SEX_SLOTS 4
static const uint8_t sex_of_slot[N_SEX_SLOTS] = {CC_SEX_NOT_KNOWN, CC_SEX_MALE, CC_SEX_FEMALE,
                                                 CC_SEX_INDETERMINATE};

static inline unsigned slot_of_sex(uint8_t sex)
{
    return sex == CC_SEX_INDETERMINATE ? 3u : sex; /* the store holds only the four */
}

struct exec_version_cache {
    uint16_t *lsoa_icb, *lsoa_region; /* [n_lsoa + 1]: each LSOA's ICB and region */
    uint64_t *registered; /* registered with a practice and not opted out */
    /* per word of persons, the sum of the record keys of its persons not
     * opted out, and of its registered ones: a cohort word that holds all
     * of them needs no key read */
    uint32_t *opted_in_key, *registered_key;
    /* the same words' sums of cc_ledger_key_mix of the keys: a cohort
     * word that holds all of them adds its mix to the ledger's hash */
    uint64_t *opted_in_mix, *registered_mix;
    uint64_t n_registered; /* persons in registered */
    uint64_t n_groups; /* (n_lsoa + 1) * N_SEX_SLOTS */
    uint32_t *size;    /* [n_groups] */
    uint32_t *key_sum; /* [n_groups] */
    /* [n_lsoa + 1]: the groups of each LSOA summed over the sexes, for a
     * table without sex (a quarter of the groups to add) */
    uint32_t *lsoa_size, *lsoa_key_sum;
    /* the ONS estimates summed over each district's LSOAs, laid out as the
     * store's (cc_store.h): [(lad * 2 + sex - 1) * CC_N_AGE_BANDS_5Y +
     * band]; NULL when the store has no estimates */
    uint32_t *lad_estimate;
    /* [n_groups * CC_EXEC_SKETCH_BUCKETS], built on the first query that
     * asks for sketches (only the ledger does): a line of 64 bytes per
     * group, written at random for every person, costs ten times the
     * sizes and sums, which fit in a core's cache */
    _Atomic(uint32_t *) sketch;
    pthread_mutex_t sketch_lock;
};

static void cache_free(void *arg)
{
    struct exec_version_cache *x = arg;
    if (!x)
        return;
    free(x->lsoa_icb);
    free(x->lsoa_region);
    free(x->registered);
    free(x->opted_in_key);
    free(x->registered_key);
    free(x->opted_in_mix);
    free(x->registered_mix);
    free(x->size);
    free(x->key_sum);
    free(x->lsoa_size);
    free(x->lsoa_key_sum);
    free(x->lad_estimate);
    free(atomic_load_explicit(&x->sketch, memory_order_relaxed));
    pthread_mutex_destroy(&x->sketch_lock);
    free(x);
}

struct build_ctx {
    const struct exec *e;
    struct exec_version_cache *x;
    int sketches; /* the sketches alone (the rest is built) */
    /* per thread groups (thread 0's are the cache's own) */
    uint32_t *size[CC_EXEC_MAX_THREADS], *key_sum[CC_EXEC_MAX_THREADS],
        *sketch[CC_EXEC_MAX_THREADS];
};

static void build_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct build_ctx *b = arg;
    const struct exec *e = b->e;
    const struct cc_store_columns *c = e->c;
    uint32_t *size = b->size[thread], *key_sum = b->key_sum[thread], *sketch = b->sketch[thread];
    for (uint64_t w = begin; w < end; w++) {
        uint64_t registered = 0;
        if (b->sketches) {
            registered = b->x->registered[w];
        } else {
            uint64_t in = ~e->excluded[w];
            uint32_t in_key = 0, registered_key = 0;
            uint64_t in_mix = 0, registered_mix = 0;
            if (w == e->words - 1)
                in &= e->last_word_mask;
            for (uint64_t bits = in; bits; bits &= bits - 1) {
                unsigned bit = (unsigned)__builtin_ctzll(bits);
                uint32_t key = c->person_record_key[w * 64 + bit];
                uint64_t mix = cc_ledger_key_mix(key);
                in_key += key;
                in_mix += mix;
                if (c->person_practice[w * 64 + bit] != UINT16_MAX) {
                    registered |= 1ULL << bit;
                    registered_key += key;
                    registered_mix += mix;
                }
            }
            b->x->registered[w] = registered;
            b->x->opted_in_key[w] = in_key;
            b->x->registered_key[w] = registered_key;
            b->x->opted_in_mix[w] = in_mix;
            b->x->registered_mix[w] = registered_mix;
        }
        for (uint64_t bits = registered; bits; bits &= bits - 1) {
            uint32_t p = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            uint16_t lsoa = c->person_lsoa[p];
            uint64_t g = (uint64_t)(lsoa < c->n_lsoa ? lsoa : c->n_lsoa) * N_SEX_SLOTS +
                         slot_of_sex(c->person_sex[p]);
            uint32_t key = c->person_record_key[p];
            if (b->sketches) {
                uint32_t *slot = &sketch[g * CC_EXEC_SKETCH_BUCKETS + CC_EXEC_SKETCH_BUCKET(key)];
                if (CC_EXEC_SKETCH_VALUE(key) < *slot)
                    *slot = CC_EXEC_SKETCH_VALUE(key);
            } else {
                size[g]++;
                key_sum[g] += key;
            }
        }
    }
}

/* Builds the groups' sizes and key sums and the registered set (sketches
 * 0), or the groups' sketches (sketches 1, into *sketch). 0 or CC_ENOMEM. */
static int build_groups(const struct exec *e, struct exec_version_cache *x, int sketches,
                        uint32_t **sketch)
{
    struct build_ctx b = {.e = e, .x = x, .sketches = sketches};
    uint64_t n_sketch = x->n_groups * CC_EXEC_SKETCH_BUCKETS;
    int ok = 1;
    for (unsigned t = 0; t < e->n_threads && ok; t++) {
        if (sketches) {
            b.sketch[t] = malloc(n_sketch * sizeof *b.sketch[t]);
            if ((ok = b.sketch[t] != NULL))
                memset(b.sketch[t], 0xff, n_sketch * sizeof *b.sketch[t]);
        } else {
            b.size[t] = calloc(x->n_groups, sizeof *b.size[t]);
            b.key_sum[t] = calloc(x->n_groups, sizeof *b.key_sum[t]);
            ok = b.size[t] && b.key_sum[t];
        }
    }
    if (ok) {
        cc_exec_par_for(e->n_threads, e->words, 1, build_range, &b);
        for (unsigned t = 1; t < e->n_threads; t++) {
            if (sketches) {
                for (uint64_t i = 0; i < n_sketch; i++)
                    if (b.sketch[t][i] < b.sketch[0][i])
                        b.sketch[0][i] = b.sketch[t][i];
            } else {
                for (uint64_t g = 0; g < x->n_groups; g++) {
                    b.size[0][g] += b.size[t][g];
                    b.key_sum[0][g] += b.key_sum[t][g];
                }
            }
        }
        if (sketches) {
            *sketch = b.sketch[0];
        } else {
            x->size = b.size[0];
            x->key_sum = b.key_sum[0];
        }
        b.size[0] = b.key_sum[0] = b.sketch[0] = NULL;
    }
    for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++) {
        free(b.size[t]);
        free(b.key_sum[t]);
        free(b.sketch[t]);
    }
    return ok ? 0 : CC_ENOMEM;
}

static void *cache_build(const struct cc_dataversion *version, void *arg)
{
    (void)version;
    const struct exec *e = arg;
    struct exec_version_cache *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    if (pthread_mutex_init(&x->sketch_lock, NULL) != 0) {
        free(x);
        return NULL;
    }
    atomic_init(&x->sketch, NULL);
    x->n_groups = ((uint64_t)e->c->n_lsoa + 1) * N_SEX_SLOTS;
    const struct cc_store_columns *c = e->c;
    x->lsoa_icb = malloc(((size_t)c->n_lsoa + 1) * sizeof *x->lsoa_icb);
    x->lsoa_region = malloc(((size_t)c->n_lsoa + 1) * sizeof *x->lsoa_region);
    if (!x->lsoa_icb || !x->lsoa_region) {
        cache_free(x);
        return NULL;
    }
    for (uint32_t i = 0; i < c->n_lsoa; i++) {
        x->lsoa_icb[i] = c->lad_icb[c->lsoa_lad[i]];
        x->lsoa_region[i] = c->icb_region[x->lsoa_icb[i]];
    }
    x->registered = malloc((e->words ? e->words : 1) * sizeof *x->registered);
    x->opted_in_key = malloc((e->words ? e->words : 1) * sizeof *x->opted_in_key);
    x->registered_key = malloc((e->words ? e->words : 1) * sizeof *x->registered_key);
    x->opted_in_mix = malloc((e->words ? e->words : 1) * sizeof *x->opted_in_mix);
    x->registered_mix = malloc((e->words ? e->words : 1) * sizeof *x->registered_mix);
    if (!x->registered || !x->opted_in_key || !x->registered_key || !x->opted_in_mix ||
        !x->registered_mix ||
        build_groups(e, x, 0, NULL) < 0) {
        cache_free(x);
        return NULL;
    }
    uint64_t n_slots = x->n_groups / N_SEX_SLOTS;
    x->lsoa_size = calloc(n_slots, sizeof *x->lsoa_size);
    x->lsoa_key_sum = calloc(n_slots, sizeof *x->lsoa_key_sum);
    if (!x->lsoa_size || !x->lsoa_key_sum) {
        cache_free(x);
        return NULL;
    }
    for (uint64_t g = 0; g < x->n_groups; g++) {
        x->n_registered += x->size[g];
        x->lsoa_size[g / N_SEX_SLOTS] += x->size[g];
        x->lsoa_key_sum[g / N_SEX_SLOTS] += x->key_sum[g];
    }
    if (c->population) {
        const size_t row = 2 * CC_N_AGE_BANDS_5Y;
        if (!(x->lad_estimate = calloc((c->n_lad ? c->n_lad : 1) * row, sizeof *x->lad_estimate))) {
            cache_free(x);
            return NULL;
        }
        for (uint32_t l = 0; l < c->n_lsoa; l++) {
            uint32_t *to = x->lad_estimate + c->lsoa_lad[l] * row;
            const uint32_t *from = c->population + (size_t)l * row;
            for (size_t i = 0; i < row; i++)
                to[i] += from[i];
        }
    }
    return x;
}

/* The groups' sketches, built on first use. NULL: out of memory. */
static const uint32_t *group_sketches(const struct exec *e, struct exec_version_cache *x)
{
    uint32_t *sketch = atomic_load_explicit(&x->sketch, memory_order_acquire);
    if (sketch)
        return sketch;
    pthread_mutex_lock(&x->sketch_lock);
    if (!(sketch = atomic_load_explicit(&x->sketch, memory_order_relaxed)) &&
        build_groups(e, x, 1, &sketch) == 0)
        atomic_store_explicit(&x->sketch, sketch, memory_order_release);
    pthread_mutex_unlock(&x->sketch_lock);
    return sketch;
}

const struct exec_version_cache *cc_exec_version_cache(const struct exec *e)
{
    return cc_dataversion_cache(e->version, cache_build, (void *)e, cache_free);
}

const uint64_t *cc_exec_registered(const struct exec_version_cache *cache)
{
    return cache->registered;
}

void cc_exec_lsoa_areas(const struct exec_version_cache *cache, const uint16_t **icb,
                        const uint16_t **region)
{
    *icb = cache->lsoa_icb;
    *region = cache->lsoa_region;
}

const uint32_t *cc_exec_lad_estimates(const struct exec_version_cache *cache)
{
    return cache->lad_estimate;
}

uint64_t cc_exec_base_count(const struct exec *e)
{
    if (e->base)
        return e->cache->n_registered;
    return e->c->n_persons - cc_dataversion_n_excluded(e->version);
}

const uint32_t *cc_exec_word_key_sums(const struct exec_version_cache *cache, int registered)
{
    return registered ? cache->registered_key : cache->opted_in_key;
}

const uint64_t *cc_exec_word_mix_sums(const struct exec_version_cache *cache, int registered)
{
    return registered ? cache->registered_mix : cache->opted_in_mix;
}

/* The value at the filter's level of an LSOA. */
static uint32_t area_at_level(const struct exec *e, int level, uint32_t lsoa)
{
    return level == CC_AREA_LSOA  ? lsoa
           : level == CC_AREA_LAD ? e->lsoa_lad[lsoa]
           : level == CC_AREA_ICB ? e->lsoa_icb[lsoa]
                                  : e->lsoa_region[lsoa];
}

int cc_exec_population_from_cache(struct exec *e, const struct filter_sets *f,
                                  const struct cc_exec_options *options, struct cc_raw_result *out)
{
    const struct cc_query *q = e->q;
    const struct cc_query_filters *flt = &q->filters;
    const struct cc_store_columns *c = e->c;
    struct exec_version_cache *x = (struct exec_version_cache *)e->cache; /* its sketches */
    if (!x || q->measure != CC_MEASURE_POPULATION ||
        q->population_source == CC_POPULATION_ESTIMATE || flt->n_conditions || f->age ||
        f->practices)
        return 0;
    /* the ledger's hash: the version's when the cohort is every registered
     * person; an area or sex filter takes the person pass */
    int hash = options && options->cohort_hash;
    if (hash && (f->areas || f->sex))
        return 0;
    if (hash) {
        if (!(out->cohort_bits = malloc((e->words ? e->words : 1) * sizeof *out->cohort_bits)))
            return CC_ENOMEM;
        memcpy(out->cohort_bits, x->registered, e->words * sizeof *out->cohort_bits);
        for (uint64_t w = 0; w < e->words; w++)
            out->cohort_hash += x->registered_mix[w];
    }
    for (uint32_t i = 0; i < e->n_dims; i++) {
        int kind = e->dims[i].kind;
        if (kind != CC_DIM_REGION && kind != CC_DIM_ICB && kind != CC_DIM_LAD &&
            kind != CC_DIM_LSOA && kind != CC_DIM_SEX)
            return 0;
    }
    const uint32_t *group_sketch = NULL;
    if (e->sketches && !(group_sketch = group_sketches(e, x)))
        return CC_ENOMEM;
    out->n_restrictions = cc_query_restrictions(q, out->restrictions, CC_EXEC_MAX_RESTRICTIONS);
    if (out->n_restrictions > CC_EXEC_MAX_RESTRICTIONS)
        out->n_restrictions = CC_EXEC_MAX_RESTRICTIONS;
    struct cell_sum *sums = e->thread_sums[0];
    uint32_t *sketch = e->thread_sketch[0];
    if (!f->sex && !e->cells.has_sex && !sketch && !e->margins) {
        /* by area only: one group per LSOA; every restriction left (areas,
         * dates, settings) is the cohort, or everyone for the areas */
        for (uint32_t lsoa = 0; lsoa <= c->n_lsoa; lsoa++) {
            uint32_t n = x->lsoa_size[lsoa];
            int area_ok = !f->areas ||
                          (lsoa < c->n_lsoa &&
                           f->area_selected[area_at_level(e, flt->areas.level, lsoa)]);
            for (uint32_t r = 0; r < out->n_restrictions; r++)
                if (area_ok || out->restrictions[r].kind == CC_RESTRICT_AREAS)
                    out->cohort_without[r] += n;
            if (!area_ok)
                continue;
            out->cohort_persons += n;
            out->cohort_key += x->lsoa_key_sum[lsoa];
            uint64_t cell = e->cells.lsoa[lsoa];
            if (cell < e->n_cells) {
                sums[cell].count += n;
                sums[cell].key += x->lsoa_key_sum[lsoa];
            }
        }
        return 1;
    }
    for (uint32_t lsoa = 0; lsoa <= c->n_lsoa; lsoa++) {
        int area_ok = !f->areas || (lsoa < c->n_lsoa &&
                                    f->area_selected[area_at_level(e, flt->areas.level, lsoa)]);
        for (unsigned s = 0; s < N_SEX_SLOTS; s++) {
            uint64_t g = (uint64_t)lsoa * N_SEX_SLOTS + s;
            uint32_t n = x->size[g];
            if (!n)
                continue;
            uint8_t sex = sex_of_slot[s];
            int sex_ok = !f->sex || (flt->sex_mask & (1u << sex));
            for (uint32_t r = 0; r < out->n_restrictions; r++) {
                int kind = out->restrictions[r].kind;
                if (kind == CC_RESTRICT_SEX     ? area_ok
                    : kind == CC_RESTRICT_AREAS ? sex_ok
                                                : area_ok && sex_ok)
                    out->cohort_without[r] += n;
            }
            if (!area_ok || !sex_ok)
                continue;
            out->cohort_persons += n;
            out->cohort_key += x->key_sum[g];
            uint64_t cell = (uint64_t)e->cells.lsoa[lsoa] + e->cells.sex[sex];
            if (cell >= e->n_cells)
                continue;
            uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
            unsigned n_cells = 1;
            cells[0] = cell;
            if (e->margins)
                n_cells = cc_exec_cells_of(e, cell, cells);
            for (unsigned k = 0; k < n_cells; k++) {
                sums[cells[k]].count += n;
                sums[cells[k]].key += x->key_sum[g];
                if (!sketch)
                    continue;
                uint32_t *to = &sketch[cells[k] * CC_EXEC_SKETCH_BUCKETS];
                const uint32_t *from = &group_sketch[g * CC_EXEC_SKETCH_BUCKETS];
                for (unsigned b = 0; b < CC_EXEC_SKETCH_BUCKETS; b++)
                    if (from[b] < to[b])
                        to[b] = from[b];
            }
        }
    }
    return 1;
}
