/*
 * cc_exec.c: the query engine's run (see internal/cc_exec.h and
 * docs/engine.md): cc_exec_run() checks that the query is bound to the
 * store, sets up what every step reads (the reference day and its age
 * table, the area look-ups by LSOA, the query-wide record filters), then
 * calls the steps in order: the dimensions and the conditions' person sets
 * (cc_exec_plan.c), the version's cache (cc_exec_cache.c), which answers a
 * registered population by areas and sex by itself, the person pass
 * (cc_exec_persons.c: filters, cohorts, key sums and a persons table by
 * person dimensions), the counting of records or estimates
 * (cc_exec_count.c), and fills the raw result. The parallel loop the steps
 * share is in cc_exec_pool.c.
 *
 * Persons are sets of bits over person indices (one bit each: 1.25 MB for
 * 10 million persons); each pass is split across at most
 * CC_EXEC_MAX_THREADS threads that each own a private array of counts,
 * summed at the end.
 *
 * Must never: return anything but counts and keys; it sees no identifiers.
 */
#include "cc_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_store.h"

int cc_exec_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- the run ------------------------------------------------------------------------------ */

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > CC_EXEC_MAX_THREADS ? CC_EXEC_MAX_THREADS : (unsigned)n;
}

static void free_exec(struct exec *e)
{
    free(e->age_table_owned);
    free(e->estimates);
    free(e->cells.lsoa);
    free(e->cells.practice);
    cc_exec_free_plans(e->plans, e->q->filters.n_conditions);
    free(e->cohort);
    for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++) {
        free(e->thread_sums[t]);
        free(e->thread_sketch[t]);
    }
}

/* The engine runs only a query bound to the store (cc_query_bind): its area
 * and practice codes resolved to indices, its codelists to their codes.
 * 0, or CC_EINVAL with the reason in errbuf. */
static int check_bound(const struct cc_query *query, char *errbuf, size_t errlen)
{
    const struct cc_query_filters *flt = &query->filters;
    if (flt->n_conditions > CC_EXEC_MAX_RESTRICTIONS - 7) {
        snprintf(errbuf, errlen, "filters.conditions: too many for the engine");
        return CC_EINVAL;
    }
    if ((flt->areas.n_codes && !flt->areas.index) ||
        (flt->practices.n_codes && !flt->practices.index)) {
        snprintf(errbuf, errlen, "filters: the query is not bound to the store");
        return CC_EINVAL;
    }
    for (uint32_t i = 0; i < flt->n_conditions; i++)
        if (flt->conditions[i].codelist[0] && !flt->conditions[i].codelist_ref) {
            snprintf(errbuf, errlen, "filters.conditions[%u]: the codelist is not bound", i);
            return CC_EINVAL;
        }
    return 0;
}

/* What every step reads: the day tables (packed y/m/d of every day, and the
 * age on the reference day of every possible date of birth), the area
 * look-ups by LSOA (after e->cache) and the query-wide record filters. 0 or
 * CC_ENOMEM. */
static int setup(struct exec *e, const struct cc_exec_options *options)
{
    const struct cc_query *query = e->q;
    const struct cc_query_filters *flt = &query->filters;
    const struct cc_store_columns *c = e->c;
    e->ymd = cc_exec_day_table();
    if (query->has_as_of)
        e->reference_day = cc_query_month_first_day(query->as_of);
    else if (flt->date_range.present)
        e->reference_day = cc_query_month_last_day(flt->date_range.to) + 1;
    else if (options && options->reference_day)
        e->reference_day = options->reference_day;
    else
        e->reference_day = cc_day_today();
    if (e->reference_day > CC_DAY_MAX)
        e->reference_day = CC_DAY_MAX;
    if (!(e->age_at_reference = cc_exec_ages_on(e->reference_day, &e->age_table_owned)))
        return CC_ENOMEM;

    /* Area lookups by LSOA (the version's cache derives them once). */
    e->lsoa_lad = c->lsoa_lad;
    cc_exec_lsoa_areas(e->cache, &e->lsoa_icb, &e->lsoa_region);

    /* Query-wide record filters. */
    e->filter_first_day = CC_DAY_MIN;
    e->filter_last_day = CC_DAY_MAX;
    if (flt->date_range.present) {
        e->filter_first_day = cc_query_month_first_day(flt->date_range.from);
        e->filter_last_day = cc_query_month_last_day(flt->date_range.to);
    }
    e->filter_setting_mask = flt->setting_mask ? flt->setting_mask & 0xe : 0xe;
    return 0;
}

/* The result's dimensions, as the counts were laid out. */
static void describe_dimensions(const struct exec *e, struct cc_raw_result *out)
{
    out->n_dimensions = e->n_dims;
    for (uint32_t i = 0; i < e->n_dims; i++) {
        out->dimensions[i].kind = e->dims[i].kind;
        out->dimensions[i].n_values = e->dims[i].extent;
        out->dimensions[i].total =
            e->dims[i].total == NO_VALUE ? CC_RAW_NO_TOTAL : e->dims[i].total;
        out->dimensions[i].first = e->dims[i].first;
        memcpy(out->dimensions[i].sex_code, e->dims[i].sex_code, sizeof e->dims[i].sex_code);
        if (e->dims[i].kind == CC_DIM_AGE_BAND)
            for (int age = 255; age >= 0; age--)
                if (e->dims[i].age_band[age] < CC_EXEC_MAX_AGE_BANDS)
                    out->dimensions[i].age_lower[e->dims[i].age_band[age]] = (uint8_t)age;
    }
}

int cc_exec_run(const struct cc_dataversion *version, const struct cc_query *query,
                const struct cc_exec_options *options, struct cc_raw_result *out, char *errbuf,
                size_t errlen)
{
    struct exec e = {0};
    struct filter_sets f = {0};
    int rc = 0;
    memset(out, 0, sizeof *out);
    errbuf[0] = '\0';
    e.version = version;
    e.c = cc_store_columns(cc_dataversion_store(version));
    e.excluded = cc_dataversion_excluded_bits(version);
    e.q = query;
    e.margins = query->margins && query->n_dimensions > 0;
    e.n_threads = options && options->n_threads ? options->n_threads : online_cpus();
    e.sketches = options && options->cell_sketches;
    if (e.n_threads > CC_EXEC_MAX_THREADS)
        e.n_threads = CC_EXEC_MAX_THREADS;
    e.words = ((uint64_t)e.c->n_persons + 63) / 64;
    e.last_word_mask = e.c->n_persons % 64 ? ~(~0ULL << (e.c->n_persons % 64)) : ~0ULL;

    if ((rc = check_bound(query, errbuf, errlen)) < 0)
        return rc;
    /* what is kept with the version (built by its first query) */
    if (!(e.cache = cc_exec_version_cache(&e)))
        goto fail_nomem;
    if (setup(&e, options) < 0)
        goto fail_nomem;

    /* Dimensions (periods default to the span of the data). */
    if ((rc = cc_exec_plan_dimensions(&e)) < 0) {
        snprintf(errbuf, errlen, "dimensions: %s",
                 rc == CC_ETOOBIG ? "too many cells" : "unknown dimension");
        goto out;
    }
    if (cc_exec_plan_cells(&e) < 0)
        goto fail_nomem;

    /* Conditions: a plan and a set of persons each. */
    e.plans =
        calloc(query->filters.n_conditions ? query->filters.n_conditions : 1, sizeof *e.plans);
    if (!e.plans)
        goto fail_nomem;
    if ((rc = cc_exec_build_plans(&e, e.plans, errbuf, errlen)) < 0) {
        if (rc == CC_ENOMEM)
            goto fail_nomem;
        goto out;
    }

    /* Person filters; the registered population's persons and groups. */
    if (cc_exec_person_filters(&e, &f) < 0)
        goto fail_nomem;
    int registered = query->measure == CC_MEASURE_POPULATION &&
                     query->population_source != CC_POPULATION_ESTIMATE;
    e.base = registered ? cc_exec_registered(e.cache) : NULL;
    e.base_key = cc_exec_word_key_sums(e.cache, registered);
    e.base_mix = cc_exec_word_mix_sums(e.cache, registered);
    if (cc_exec_count_prepare(&e) < 0)
        goto fail_nomem;

    /* The registered population by areas and sex, from the version's
     * groups; else the person pass: the cohort, its size without each
     * restriction, and the cells of a persons count by person dimensions;
     * then the records' or the estimates' cells. */
    if ((rc = cc_exec_population_from_cache(&e, &f, options, out)) < 0) {
        goto fail_nomem;
    } else if (rc == 1) {
        if (cc_exec_count_finish(&e, out) < 0)
            goto fail_nomem;
    } else {
        if ((rc = cc_exec_cohorts(&e, &f, options, cc_exec_counts_persons(&e), out, errbuf,
                                  errlen)) < 0)
            goto out;
        if ((rc = cc_exec_count(&e, &f, out, errbuf, errlen)) < 0)
            goto out;
    }

    describe_dimensions(&e, out);
    out->columns_ = e.c;
    out->lad_estimates_ = cc_exec_lad_estimates(e.cache);
    out->noise_epoch = cc_dataversion_noise_epoch(version);
    rc = 0;
    goto out;
fail_nomem:
    rc = CC_ENOMEM;
    snprintf(errbuf, errlen, "out of memory");
out:
    cc_exec_filter_sets_free(&f);
    free_exec(&e);
    if (rc < 0)
        cc_raw_result_free(out);
    return rc;
}
