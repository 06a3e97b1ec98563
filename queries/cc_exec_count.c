/*
 * cc_exec_count.c: the engine's counting (cc_exec_internal.h, docs/engine.md
 * step 5): one pass, split across threads that each own a private array of
 * counts and cell keys, summed at the end: over the cohort's bits when every
 * dimension belongs to the person; over the qualifying records (those of
 * events_of, or every record of the query-wide settings and dates) for
 * events, and for persons per setting or period, whose (cell, person) pairs
 * are sorted and made distinct so a person counts once per cell; or, for
 * population estimates, over the store's LSOA x sex x band table. With
 * margins every thing counted is also counted in each of its margin cells.
 *
 * Must never: count a person the cohort does not hold; its output is counts
 * and key sums per cell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_store.h"

/* ---- cells ------------------------------------------------------------------------------ */

/* The cell of a person (and, for record dims, a record); 0 in *ok if a
 * coordinate is unknown (no area, no practice, a sex outside the dimension's
 * values, a date outside the period). age_day is the day ages are taken on. */
static uint64_t cell_of(const struct exec *e, uint32_t person, uint64_t record, uint16_t age_day,
                        int *ok)
{
    const struct cc_store_columns *c = e->c;
    uint64_t cell = 0;
    for (uint32_t i = 0; i < e->n_dims; i++) {
        const struct dim *d = &e->dims[i];
        uint32_t v;
        switch (d->kind) {
        case CC_DIM_REGION:
            v = area_of(e, CC_AREA_REGION, person);
            break;
        case CC_DIM_ICB:
            v = area_of(e, CC_AREA_ICB, person);
            break;
        case CC_DIM_LAD:
            v = area_of(e, CC_AREA_LAD, person);
            break;
        case CC_DIM_LSOA:
            v = area_of(e, CC_AREA_LSOA, person);
            break;
        case CC_DIM_PRACTICE:
            v = c->person_practice[person] == UINT16_MAX ? NO_VALUE : c->person_practice[person];
            break;
        case CC_DIM_SEX:
            v = d->sex_value[c->person_sex[person]];
            v = v == 0xff ? NO_VALUE : v;
            break;
        case CC_DIM_AGE_BAND: {
            int age = age_between(e->ymd, c->person_dob[person], age_day);
            v = age < 0 ? NO_VALUE : d->age_band[age > 255 ? 255 : age];
            break;
        }
        case CC_DIM_SETTING:
            v = (uint32_t)setting_of(c, record) - 1;
            break;
        default: { /* periods */
            uint32_t p = e->ymd[c->record_date[record]];
            int32_t month = ymd_year(p) * 12 + ymd_month(p) - 1;
            int32_t value = d->kind == CC_DIM_YEAR      ? month / 12
                            : d->kind == CC_DIM_QUARTER ? month / 3
                                                        : month;
            value -= d->first;
            v = value < 0 || (uint32_t)value >= d->size ? NO_VALUE : (uint32_t)value;
            break;
        }
        }
        if (v == NO_VALUE || v >= d->size) {
            *ok = 0;
            return 0;
        }
        cell += v * d->stride;
    }
    *ok = 1;
    return cell;
}

/* ---- counting ------------------------------------------------------------------------- */

/* The cells a thing counted in `cell` adds to: with margins, the cell and
 * every cell with some of its coordinates replaced by their dimension's
 * total (1 << n_dims cells, written to out); without, the cell alone. */
static unsigned cells_of(const struct exec *e, uint64_t cell, uint64_t *out)
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
static inline void count_in(const struct exec *e, uint64_t *counts, uint32_t *keys,
                            uint32_t *sketch, uint64_t cell, uint32_t key)
{
    if (!e->margins) {
        counts[cell]++;
        keys[cell] += key;
        sketch_in(sketch, cell, key);
        return;
    }
    uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
    unsigned n = cells_of(e, cell, cells);
    for (unsigned i = 0; i < n; i++) {
        counts[cells[i]]++;
        keys[cells[i]] += key;
        sketch_in(sketch, cells[i], key);
    }
}

static void count_cohort_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct exec *e = arg;
    uint64_t *counts = e->thread_counts[thread];
    uint32_t *keys = e->thread_keys[thread];
    for (uint64_t w = begin; w < end; w++) {
        uint64_t bits = e->cohort[w];
        while (bits) {
            uint32_t person = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            bits &= bits - 1;
            int ok;
            uint64_t cell = cell_of(e, person, 0, (uint16_t)e->reference_day, &ok);
            if (ok)
                count_in(e, counts, keys, e->thread_sketch[thread], cell,
                         e->c->person_record_key[person]);
        }
    }
}

struct record_count_ctx {
    struct exec *e;
    const uint64_t *records; /* NULL: the scan range of the filters */
    int events;              /* 1: count records; 0: collect (cell, person) pairs */
    uint64_t *pairs[CC_EXEC_MAX_THREADS];
    uint64_t n_pairs[CC_EXEC_MAX_THREADS], cap_pairs[CC_EXEC_MAX_THREADS];
    int oom;
};

/* Scanned records: every record of the query-wide settings, as one index
 * space [0, n) over the settings' ranges. */
static uint64_t scan_length(const struct exec *e)
{
    uint64_t n = 0;
    for (int s = 1; s <= 3; s++)
        if (e->filter_setting_mask & (1u << s))
            n += e->c->setting_first[s + 1] - e->c->setting_first[s];
    return n;
}

static uint64_t scan_record(const struct exec *e, uint64_t i)
{
    for (int s = 1; s <= 3; s++) {
        if (!(e->filter_setting_mask & (1u << s)))
            continue;
        uint64_t n = e->c->setting_first[s + 1] - e->c->setting_first[s];
        if (i < n)
            return e->c->setting_first[s] + i;
        i -= n;
    }
    return 0;
}

static void count_records_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct record_count_ctx *x = arg;
    struct exec *e = x->e;
    const struct cc_store_columns *c = e->c;
    uint64_t *counts = e->thread_counts[thread];
    uint32_t *keys = e->thread_keys[thread];
    uint64_t r = 0;
    for (uint64_t i = begin; i < end; i++) {
        if (x->records) {
            r = x->records[i];
        } else {
            r = i == begin ? scan_record(e, i) : r + 1;
            if (i != begin && !(e->filter_setting_mask & (1u << setting_of(c, r))))
                r = scan_record(e, i);
            cc_day d = c->record_date[r];
            if (d < e->filter_first_day || d > e->filter_last_day)
                continue;
        }
        uint32_t person = c->record_person[r];
        if (!(e->cohort[person >> 6] >> (person & 63) & 1))
            continue;
        int ok;
        uint16_t age_day = x->events ? c->record_date[r] : (uint16_t)e->reference_day;
        uint64_t cell = cell_of(e, person, r, age_day, &ok);
        if (!ok)
            continue;
        if (x->events) {
            count_in(e, counts, keys, e->thread_sketch[thread], cell,
                     c->person_record_key[person]);
            continue;
        }
        /* persons: (cell, person) pairs, made distinct after the pass */
        uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
        unsigned n_cells = cells_of(e, cell, cells);
        if (x->n_pairs[thread] + n_cells > x->cap_pairs[thread]) {
            uint64_t cap = x->cap_pairs[thread] ? x->cap_pairs[thread] * 2 : 4096;
            uint64_t *grown = realloc(x->pairs[thread], cap * sizeof *grown);
            if (!grown) {
                x->oom = 1;
                return;
            }
            x->pairs[thread] = grown;
            x->cap_pairs[thread] = cap;
        }
        for (unsigned k = 0; k < n_cells; k++)
            x->pairs[thread][x->n_pairs[thread]++] = cells[k] << 32 | person;
    }
}

/* ---- population estimates --------------------------------------------------------------- */

static int count_population_estimate(struct exec *e, const struct filter_sets *f)
{
    const struct cc_store_columns *c = e->c;
    const struct cc_query_filters *flt = &e->q->filters;
    uint64_t *counts = e->thread_counts[0];
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
                unsigned n_cells = cells_of(e, cell, cells);
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
        e->thread_counts[0][cell]++;
        e->thread_keys[0][cell] += c->person_record_key[person];
        sketch_in(e->thread_sketch[0], cell, c->person_record_key[person]);
    }
    free(pairs);
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
    for (unsigned t = 0; t < e->n_threads; t++) {
        e->thread_counts[t] = calloc(e->n_cells, sizeof *e->thread_counts[t]);
        e->thread_keys[t] = calloc(e->n_cells, sizeof *e->thread_keys[t]);
        if (!e->thread_counts[t] || !e->thread_keys[t])
            goto fail_nomem;
        if (e->sketches) {
            size_t n = (size_t)e->n_cells * CC_EXEC_SKETCH_BUCKETS;
            if (!(e->thread_sketch[t] = malloc((n ? n : 1) * sizeof *e->thread_sketch[t])))
                goto fail_nomem;
            memset(e->thread_sketch[t], 0xff, n * sizeof *e->thread_sketch[t]);
        }
    }
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source == CC_POPULATION_ESTIMATE) {
        if ((rc = count_population_estimate(e, f)) < 0) {
            snprintf(errbuf, errlen,
                     "population estimates come by area, sex and 5-year band "
                     "only: a dimension or age range does not fit them");
            goto out;
        }
    } else if ((query->measure == CC_MEASURE_PERSONS || query->measure == CC_MEASURE_POPULATION) &&
               !e->record_dims) {
        cc_exec_par_for(e->n_threads, e->words, 1, count_cohort_range, e);
    } else {
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
            n_items = scan_length(e);
        }
        cc_exec_par_for(e->n_threads, n_items, 4096, count_records_range, &rc_ctx);
        if (rc_ctx.oom)
            goto fail_nomem;
        if (!rc_ctx.events && count_distinct_pairs(e, &rc_ctx) < 0)
            goto fail_nomem;
    }

    /* Sum the threads' counts into the result. */
    out->count = e->thread_counts[0];
    out->cell_key = e->thread_keys[0];
    out->cell_sketch = e->thread_sketch[0];
    e->thread_counts[0] = NULL;
    e->thread_keys[0] = NULL;
    e->thread_sketch[0] = NULL;
    for (unsigned t = 1; t < e->n_threads; t++) {
        for (uint64_t i = 0; i < e->n_cells; i++) {
            out->count[i] += e->thread_counts[t][i];
            out->cell_key[i] += e->thread_keys[t][i];
        }
        if (out->cell_sketch)
            for (uint64_t i = 0; i < e->n_cells * CC_EXEC_SKETCH_BUCKETS; i++)
                if (e->thread_sketch[t][i] < out->cell_sketch[i])
                    out->cell_sketch[i] = e->thread_sketch[t][i];
    }
    out->n_cells = e->n_cells;
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
