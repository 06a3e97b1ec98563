/*
 * cc_exec_count.c: the engine's counting (cc_exec_internal.h, docs/engine.md
 * step 5): one pass, split across threads that each own a private array of
 * (count, key sum) per cell, summed at the end: over the cohort's persons
 * when every dimension belongs to the person (called from the person pass,
 * cc_exec_persons.c); over the qualifying records (those of events_of, or
 * every record of the query-wide settings' year runs within its dates) for
 * events, and for persons per setting or period, whose (cell, person) pairs
 * are sorted and made distinct so a person counts once per cell; or, for
 * population estimates, over the store's LSOA x sex x band table. With
 * margins every thing counted is also counted in each of its margin cells.
 * Records are counted in batches whose persons' columns are prefetched.
 *
 * Must never: count a person the cohort does not hold; its output is counts
 * and key sums per cell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_ledger.h"
#include "cc_store.h"

/* ---- cells ------------------------------------------------------------------------------ */

/* The part of a record's cell that its setting and month give (0 without
 * such dimensions), CELL_NONE for a month outside the periods. */
static inline uint64_t record_part(const struct exec *e, uint64_t record)
{
    uint64_t part = 0;
    if (e->cells.has_setting)
        part += e->cells.setting[setting_of(e->c, record)];
    for (int k = 0; k < e->cells.n_periods; k++) {
        const struct dim *d = &e->dims[e->cells.period_dim[k]];
        uint32_t p = e->ymd[e->c->record_date[record]];
        int32_t month = ymd_year(p) * 12 + ymd_month(p) - 1;
        int32_t value = d->kind == CC_DIM_YEAR      ? month / 12
                        : d->kind == CC_DIM_QUARTER ? month / 3
                                                    : month;
        value -= d->first;
        part += value < 0 || (uint32_t)value >= d->size ? (uint64_t)CELL_NONE
                                                        : (uint64_t)value * d->stride;
    }
    return part;
}

/* ---- counting ------------------------------------------------------------------------- */

/* The cells a thing counted in `cell` adds to: with margins, the cell and
 * every cell with some of its coordinates replaced by their dimension's
 * total (1 << n_dims cells, written to out); without, the cell alone. */
unsigned cc_exec_cells_of(const struct exec *e, uint64_t cell, uint64_t *out)
{
    out[0] = cell;
    if (!e->margins)
        return 1;
    uint64_t to_total[CC_QUERY_DIMENSIONS_CAP];
    for (uint32_t i = 0; i < e->n_dims; i++) {
        const struct dim *d = &e->dims[i];
        uint64_t v = cell / d->stride % d->extent;
        to_total[i] = (d->total - v) * d->stride;
    }
    unsigned n = 1u << e->n_dims;
    for (unsigned subset = 1; subset < n; subset++) {
        uint64_t c = cell;
        for (uint32_t i = 0; i < e->n_dims; i++)
            if (subset & (1u << i))
                c += to_total[i];
        out[subset] = c;
    }
    return n;
}

/* Adds a person's record key to cell's sketch (sketch NULL: none kept). */
static inline void sketch_in(uint32_t *sketch, uint64_t cell, uint32_t key)
{
    if (!sketch)
        return;
    uint32_t *slot = &sketch[cell * CC_EXEC_SKETCH_BUCKETS + CC_EXEC_SKETCH_BUCKET(key)];
    if (CC_EXEC_SKETCH_VALUE(key) < *slot)
        *slot = CC_EXEC_SKETCH_VALUE(key);
}

/* Counts one thing with record key `key` in cell (and its margins); the
 * sketches (NULL: none) get the person's key. */
static inline void count_in(const struct exec *e, struct cell_sum *sums, uint32_t *sketch,
                            uint64_t cell, uint32_t key)
{
    if (!e->margins) {
        sums[cell].count++;
        sums[cell].key += key;
        sketch_in(sketch, cell, key);
        return;
    }
    uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
    unsigned n = cc_exec_cells_of(e, cell, cells);
    for (unsigned i = 0; i < n; i++) {
        sums[cells[i]].count++;
        sums[cells[i]].key += key;
        sketch_in(sketch, cells[i], key);
    }
}

uint32_t cc_exec_count_persons(struct exec *e, unsigned thread, const uint32_t *persons, uint64_t n,
                               uint64_t *mix)
{
    struct cell_sum *sums = e->thread_sums[thread];
    uint32_t *sketch = e->thread_sketch[thread];
    const struct person_reader r = person_reader_of(e);
    const uint64_t n_cells = e->n_cells;
    uint32_t key_sum = 0;
    uint64_t mix_sum = 0;
    const bool mixing = e->cohort_mix;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t person = persons[i];
        if (i + 32 < n) /* the person 32 ahead: its lines are on their way when its turn comes */
            prefetch_person(&r, persons[i + 32]);
        uint32_t key = r.record_key[person];
        key_sum += key;
        if (mixing)
            mix_sum += cc_ledger_key_mix(key);
        uint64_t cell = person_part(&r, person) + reference_age_part(&r, person);
        if (cell < n_cells)
            count_in(e, sums, sketch, cell, key);
    }
    *mix += mix_sum;
    return key_sum;
}

struct record_count_ctx {
    struct exec *e;
    const uint64_t *records; /* NULL: the year runs of the filters */
    struct year_run runs[3 * CC_EXEC_MAX_YEARS];
    unsigned n_runs;
    int events; /* 1: count records; 0: collect (cell, person) pairs */
    uint64_t *pairs[CC_EXEC_MAX_THREADS];
    uint64_t n_pairs[CC_EXEC_MAX_THREADS], cap_pairs[CC_EXEC_MAX_THREADS];
    int oom;
};

/* The records scanned when no condition chooses them: the year runs of the
 * query-wide settings and dates, as one index space [0, n) laid end to end
 * (into x->runs); returns n. */
static uint64_t scan_runs(struct record_count_ctx *x)
{
    const struct exec *e = x->e;
    uint64_t n = 0;
    x->n_runs = 0;
    for (int s = 1; s <= 3; s++)
        if (e->filter_setting_mask & (1u << s))
            x->n_runs += cc_exec_year_runs(e, s, e->filter_first_day, e->filter_last_day,
                                           &x->runs[x->n_runs]);
    for (unsigned k = 0; k < x->n_runs; k++)
        n += x->runs[k].last - x->runs[k].first;
    return n;
}

/* Records are counted in batches: first the records (of the dates asked
 * for) whose person is in the cohort are gathered with their persons, then
 * their cells are computed and counted, the columns of the persons a few
 * places ahead requested early, so the cache misses of one batch overlap
 * instead of each stalling the count. */
#define RECORD_BATCH 1024

struct record_batch {
    uint32_t record[RECORD_BATCH], person[RECORD_BATCH];
    unsigned n;
};

/* Counts the batch's records for thread `thread` and empties it. 0, or
 * CC_ENOMEM (no room for a pair). */
static int count_batch(struct record_count_ctx *x, unsigned thread, struct record_batch *batch)
{
    struct exec *e = x->e;
    const struct person_reader pr = person_reader_of(e);
    const uint16_t *record_date = e->c->record_date;
    const uint64_t n_cells = e->n_cells;
    const int events = x->events, record_parts = e->cells.has_setting || e->cells.n_periods;
    struct cell_sum *sums = e->thread_sums[thread];
    uint32_t *sketch = e->thread_sketch[thread];
    unsigned n = batch->n;
    batch->n = 0;
    for (unsigned i = 0; i < n; i++) {
        if (i + 32 < n)
            prefetch_person(&pr, batch->person[i + 32]);
        uint32_t r = batch->record[i], person = batch->person[i];
        uint64_t cell =
            person_part(&pr, person) +
            (events ? age_part_on(&pr, person, record_date[r]) : reference_age_part(&pr, person));
        if (record_parts)
            cell += record_part(e, r);
        if (cell >= n_cells)
            continue;
        if (events) {
            count_in(e, sums, sketch, cell, pr.record_key[person]);
            continue;
        }
        /* persons: (cell, person) pairs, made distinct after the pass */
        uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
        unsigned n_cells_of = cc_exec_cells_of(e, cell, cells);
        if (x->n_pairs[thread] + n_cells_of > x->cap_pairs[thread]) {
            uint64_t cap = x->cap_pairs[thread] ? x->cap_pairs[thread] * 2 : 4096;
            uint64_t *grown = realloc(x->pairs[thread], cap * sizeof *grown);
            if (!grown)
                return CC_ENOMEM;
            x->pairs[thread] = grown;
            x->cap_pairs[thread] = cap;
        }
        for (unsigned k = 0; k < n_cells_of; k++)
            x->pairs[thread][x->n_pairs[thread]++] = cells[k] << 32 | person;
    }
    return 0;
}

/* Adds record r to the batch if its person is in the cohort, counting the
 * batch when full. 0 or CC_ENOMEM. */
static inline int batch_record(struct record_count_ctx *x, unsigned thread,
                               struct record_batch *batch, uint64_t r)
{
    const struct exec *e = x->e;
    uint32_t person = e->c->record_person[r];
    batch->record[batch->n] = (uint32_t)r;
    batch->person[batch->n] = person;
    batch->n += (unsigned)(e->cohort[person >> 6] >> (person & 63) & 1);
    return batch->n == RECORD_BATCH ? count_batch(x, thread, batch) : 0;
}

/* Bit i set if dates[i] lies in [from, from + span], for i < n <= 64. */
static inline uint64_t dates_in_range(const uint16_t *dates, uint64_t n, uint32_t from,
                                      uint32_t span)
{
    uint64_t mask = 0;
    for (uint64_t i = 0; i < n; i++)
        mask |= (uint64_t)((uint32_t)dates[i] - from <= span) << i;
    return mask;
}

/* The same for 64 dates: with SSE2 (every x86-64), 16 at a time, as
 * (date - from) mod 2^16 <= span, which holds exactly for the dates in the
 * range since every day is a 16-bit value. */
static inline uint64_t dates_in_range64(const uint16_t *dates, uint32_t from, uint32_t span)
{
#ifdef __SSE2__
    const __m128i first = _mm_set1_epi16((short)from), width = _mm_set1_epi16((short)span);
    const __m128i zero = _mm_setzero_si128();
    uint64_t mask = 0;
    for (unsigned k = 0; k < 64; k += 16) {
        __m128i a = _mm_sub_epi16(_mm_loadu_si128((const __m128i *)&dates[k]), first);
        __m128i b = _mm_sub_epi16(_mm_loadu_si128((const __m128i *)&dates[k + 8]), first);
        /* a <= width, unsigned: nothing is left of a after subtracting width */
        a = _mm_cmpeq_epi16(_mm_subs_epu16(a, width), zero);
        b = _mm_cmpeq_epi16(_mm_subs_epu16(b, width), zero);
        mask |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_packs_epi16(a, b)) << k;
    }
    return mask;
#else
    return dates_in_range(dates, 64, from, span);
#endif
}

/* Counts the events of records [first, last) of a year run that the
 * query's dates hold whole: every record in turn, the persons' columns of
 * the record 32 ahead requested early (no batch is needed when nothing is
 * skipped but the few records of persons outside the cohort). */
static void count_run_events(struct record_count_ctx *x, unsigned thread, uint64_t first,
                             uint64_t last)
{
    struct exec *e = x->e;
    const struct person_reader pr = person_reader_of(e);
    const uint32_t *record_person = e->c->record_person;
    const uint16_t *record_date = e->c->record_date;
    const uint64_t *cohort = e->cohort;
    const uint64_t n_cells = e->n_cells;
    const int record_parts = e->cells.has_setting || e->cells.n_periods;
    struct cell_sum *sums = e->thread_sums[thread];
    uint32_t *sketch = e->thread_sketch[thread];
    for (uint64_t r = first; r < last; r++) {
        if (r + 32 < last)
            prefetch_person(&pr, record_person[r + 32]);
        uint32_t person = record_person[r];
        if (!(cohort[person >> 6] >> (person & 63) & 1))
            continue;
        uint64_t cell = person_part(&pr, person) + age_part_on(&pr, person, record_date[r]);
        if (record_parts)
            cell += record_part(e, r);
        if (cell < n_cells)
            count_in(e, sums, sketch, cell, pr.record_key[person]);
    }
}

/* Counts the records [first, last) of one year run, those dated in the
 * query-wide range unless the run lies in it whole: then 64 dates are
 * compared at a time into a mask without a branch (whether a record falls
 * in the range is, record by record, what a branch would mispredict), and
 * the mask's records are batched. */
static int count_scanned(struct record_count_ctx *x, unsigned thread, struct record_batch *batch,
                         uint64_t first, uint64_t last, int whole)
{
    struct exec *e = x->e;
    const uint16_t *date = e->c->record_date;
    uint32_t from = (uint32_t)e->filter_first_day;
    uint32_t span = (uint32_t)(e->filter_last_day - e->filter_first_day);
    if (e->filter_first_day > e->filter_last_day)
        return 0; /* no day (validation refuses such a range) */
    if (whole && x->events) {
        count_run_events(x, thread, first, last);
        return 0;
    }
    for (uint64_t block = first; block < last; block += 64) {
        uint64_t n = last - block < 64 ? last - block : 64;
        uint64_t in_range = n == 64 ? ~0ULL : ~(~0ULL << n);
        if (!whole)
            in_range &= n == 64 ? dates_in_range64(&date[block], from, span)
                                : dates_in_range(&date[block], n, from, span);
        for (; in_range; in_range &= in_range - 1)
            if (batch_record(x, thread, batch, block + (uint64_t)__builtin_ctzll(in_range)) < 0)
                return CC_ENOMEM;
    }
    return 0;
}

static void count_records_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct record_count_ctx *x = arg;
    struct record_batch *batch = malloc(sizeof *batch);
    int rc = 0;
    if (!batch) {
        x->oom = 1;
        return;
    }
    batch->n = 0;
    if (x->records) {
        for (uint64_t i = begin; i < end && rc == 0; i++)
            rc = batch_record(x, thread, batch, x->records[i]);
    } else {
        /* [begin, end) of the year runs laid end to end */
        uint64_t offset = 0;
        for (unsigned k = 0; k < x->n_runs && offset < end && rc == 0; k++) {
            const struct year_run *run = &x->runs[k];
            uint64_t n = run->last - run->first;
            uint64_t lo = begin > offset ? begin - offset : 0;
            uint64_t hi = end - offset < n ? end - offset : n;
            if (lo < hi)
                rc = count_scanned(x, thread, batch, run->first + lo, run->first + hi, run->whole);
            offset += n;
        }
    }
    if (rc == 0)
        rc = count_batch(x, thread, batch);
    if (rc < 0)
        x->oom = 1;
    free(batch);
}

/* ---- population estimates --------------------------------------------------------------- */

static int count_population_estimate(struct exec *e, const struct filter_sets *f)
{
    const struct cc_store_columns *c = e->c;
    const struct cc_query_filters *flt = &e->q->filters;
    uint64_t *counts = e->estimates;
    if (flt->practices.n_codes) /* estimates are by area, not practice */
        return CC_EINVAL;
    for (uint32_t i = 0; i < e->n_dims; i++)
        if (e->dims[i].kind == CC_DIM_PRACTICE || e->record_dims)
            return CC_EINVAL;
    for (uint32_t lsoa = 0; lsoa < c->n_lsoa; lsoa++) {
        if (flt->areas.n_codes) {
            uint32_t a = flt->areas.level == CC_AREA_LSOA  ? lsoa
                         : flt->areas.level == CC_AREA_LAD ? e->lsoa_lad[lsoa]
                         : flt->areas.level == CC_AREA_ICB ? e->lsoa_icb[lsoa]
                                                           : e->lsoa_region[lsoa];
            if (!f->area_selected[a])
                continue;
        }
        for (int sex = 1; sex <= 2; sex++) {
            if (flt->sex_mask && !(flt->sex_mask & (1u << sex)))
                continue;
            for (int band = 0; band < CC_N_AGE_BANDS_5Y; band++) {
                int lo = band * 5, hi = band == 18 ? 255 : band * 5 + 4;
                if (flt->age.present && (lo < flt->age.min_years || hi > flt->age.max_years))
                    continue;
                uint64_t cell = 0;
                for (uint32_t i = 0; i < e->n_dims; i++) {
                    const struct dim *d = &e->dims[i];
                    uint32_t v = 0;
                    switch (d->kind) {
                    case CC_DIM_REGION:
                        v = e->lsoa_region[lsoa];
                        break;
                    case CC_DIM_ICB:
                        v = e->lsoa_icb[lsoa];
                        break;
                    case CC_DIM_LAD:
                        v = e->lsoa_lad[lsoa];
                        break;
                    case CC_DIM_LSOA:
                        v = lsoa;
                        break;
                    case CC_DIM_SEX:
                        v = d->sex_value[sex]; /* a value: the filter and mask agree */
                        break;
                    case CC_DIM_AGE_BAND:
                        /* estimates come in 5-year bands: a band that does
                         * not fit inside one query band cannot be split */
                        v = d->age_band[lo];
                        if (d->age_band[hi > 255 ? 255 : hi] != v)
                            return CC_EINVAL;
                        break;
                    }
                    cell += v * d->stride;
                }
                uint32_t n =
                    c->population[((uint64_t)lsoa * 2 + (uint64_t)(sex - 1)) * CC_N_AGE_BANDS_5Y +
                                  (uint64_t)band];
                uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
                unsigned n_cells = cc_exec_cells_of(e, cell, cells);
                for (unsigned k = 0; k < n_cells; k++)
                    counts[cells[k]] += n;
            }
        }
    }
    return 0;
}

/* ---- the pass ------------------------------------------------------------------------- */

/* A person counts once per cell: the (cell, person) pairs of every thread,
 * sorted and made distinct, into thread 0's counts. */
static int count_distinct_pairs(struct exec *e, const struct record_count_ctx *rc_ctx)
{
    const struct cc_store_columns *c = e->c;
    uint64_t n_pairs = 0;
    for (unsigned t = 0; t < e->n_threads; t++)
        n_pairs += rc_ctx->n_pairs[t];
    uint64_t *pairs = malloc((n_pairs + 1) * sizeof *pairs);
    if (!pairs)
        return CC_ENOMEM;
    uint64_t k = 0;
    for (unsigned t = 0; t < e->n_threads; t++) {
        if (rc_ctx->n_pairs[t])
            memcpy(pairs + k, rc_ctx->pairs[t], rc_ctx->n_pairs[t] * sizeof *pairs);
        k += rc_ctx->n_pairs[t];
    }
    if (n_pairs)
        qsort(pairs, n_pairs, sizeof *pairs, cc_exec_u64_cmp);
    for (uint64_t i = 0; i < n_pairs; i++) {
        if (i && pairs[i] == pairs[i - 1])
            continue;
        uint64_t cell = pairs[i] >> 32;
        uint32_t person = (uint32_t)pairs[i];
        e->thread_sums[0][cell].count++;
        e->thread_sums[0][cell].key += c->person_record_key[person];
        sketch_in(e->thread_sketch[0], cell, c->person_record_key[person]);
    }
    free(pairs);
    return 0;
}

int cc_exec_count_prepare(struct exec *e)
{
    for (unsigned t = 0; t < e->n_threads; t++) {
        if (!(e->thread_sums[t] = calloc(e->n_cells ? e->n_cells : 1, sizeof *e->thread_sums[t])))
            return CC_ENOMEM;
        if (e->sketches) {
            size_t n = (size_t)e->n_cells * CC_EXEC_SKETCH_BUCKETS;
            if (!(e->thread_sketch[t] = malloc((n ? n : 1) * sizeof *e->thread_sketch[t])))
                return CC_ENOMEM;
            memset(e->thread_sketch[t], 0xff, n * sizeof *e->thread_sketch[t]);
        }
    }
    return 0;
}

int cc_exec_counts_persons(const struct exec *e)
{
    const struct cc_query *query = e->q;
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source == CC_POPULATION_ESTIMATE)
        return 0;
    return (query->measure == CC_MEASURE_PERSONS || query->measure == CC_MEASURE_POPULATION) &&
           !e->record_dims;
}

int cc_exec_count_finish(struct exec *e, struct cc_raw_result *out)
{
    out->count = calloc(e->n_cells ? e->n_cells : 1, sizeof *out->count);
    out->cell_key = calloc(e->n_cells ? e->n_cells : 1, sizeof *out->cell_key);
    if (!out->count || !out->cell_key)
        return CC_ENOMEM;
    for (unsigned t = 0; t < e->n_threads; t++)
        for (uint64_t i = 0; i < e->n_cells; i++) {
            out->count[i] += e->thread_sums[t][i].count;
            out->cell_key[i] += e->thread_sums[t][i].key;
        }
    if (e->estimates)
        for (uint64_t i = 0; i < e->n_cells; i++)
            out->count[i] += e->estimates[i];
    out->cell_sketch = e->thread_sketch[0];
    e->thread_sketch[0] = NULL;
    for (unsigned t = 1; t < e->n_threads; t++)
        if (out->cell_sketch)
            for (uint64_t i = 0; i < e->n_cells * CC_EXEC_SKETCH_BUCKETS; i++)
                if (e->thread_sketch[t][i] < out->cell_sketch[i])
                    out->cell_sketch[i] = e->thread_sketch[t][i];
    out->n_cells = e->n_cells;
    return 0;
}

int cc_exec_count(struct exec *e, const struct filter_sets *f, struct cc_raw_result *out,
                  char *errbuf, size_t errlen)
{
    const struct cc_query *query = e->q;
    const struct cc_query_filters *flt = &query->filters;
    struct record_list list = {0};
    struct record_count_ctx rc_ctx = {0};
    int rc = 0;
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source == CC_POPULATION_ESTIMATE) {
        if (!(e->estimates = calloc(e->n_cells ? e->n_cells : 1, sizeof *e->estimates)))
            goto fail_nomem;
        if ((rc = count_population_estimate(e, f)) < 0) {
            snprintf(errbuf, errlen,
                     "population estimates come by area, sex and 5-year band "
                     "only: a dimension or age range does not fit them");
            goto out;
        }
    } else if (!cc_exec_counts_persons(e)) {
        rc_ctx.e = e;
        rc_ctx.events = query->measure == CC_MEASURE_EVENTS;
        uint64_t n_items;
        if (query->events_of >= 0 && (uint32_t)query->events_of < flt->n_conditions) {
            /* the records of one condition */
            if (cc_exec_condition_records(e, (uint32_t)query->events_of, &list) < 0)
                goto fail_nomem;
            rc_ctx.records = list.records;
            n_items = list.n;
        } else {
            n_items = scan_runs(&rc_ctx);
        }
        cc_exec_par_for(e->n_threads, n_items, 4096, count_records_range, &rc_ctx);
        if (rc_ctx.oom)
            goto fail_nomem;
        if (!rc_ctx.events && count_distinct_pairs(e, &rc_ctx) < 0)
            goto fail_nomem;
    }
    /* (persons by person dimensions were counted in the person pass) */
    if (cc_exec_count_finish(e, out) < 0)
        goto fail_nomem;
    rc = 0;
    goto out;
fail_nomem:
    rc = CC_ENOMEM;
    snprintf(errbuf, errlen, "out of memory");
out:
    for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++)
        free(rc_ctx.pairs[t]);
    free(list.records);
    return rc;
}
