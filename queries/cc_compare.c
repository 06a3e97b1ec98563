/*
 * cc_compare.c: area comparisons (cc_compare.h; the raw side in
 * cc_compare_internal.h): run the numerator and denominator queries by
 * area (and age band) through the engine, lay the counts out per area,
 * parent area and England, then compute values, intervals, comparisons and
 * funnel limits from the counts the caller passes in.
 *
 * Must never: compute a released figure from the exact counts on its own
 * initiative. cc_compare_finish() reads only released counts;
 * cc_compare_finish_counts() (internal) reads the counts it is given, and
 * the exact counts of a raw comparison reach it only from the tests of the
 * statistics.
 */
#include "cc_compare.h"
#include "cc_compare_internal.h"
#include "cc_release.h"

#include <math.h>

#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_exec.h"
#include "cc_model.h"
#include "cc_store.h"

/* Above this many events GSL's chi-square quantile can fail; Byar's limits
 * agree with the exact ones to better than 1e-9 there (docs/statistics.md). */
#define FUNNEL_EXACT_MAX_EVENTS 100000.0
/* Bisection stops when the bracket is this small relative to the count. */
#define FUNNEL_RELATIVE_TOLERANCE 1e-10
#define FUNNEL_MAX_ITERATIONS     200

static int fail(char *errbuf, size_t errlen, int rc, const char *message)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", message);
    return rc;
}

static uint32_t method_bands(int method)
{
    return method == CC_COMPARE_DSR || method == CC_COMPARE_ISR ? CC_N_AGE_BANDS_5Y : 1;
}

static double default_multiplier(int method)
{
    switch (method) {
    case CC_COMPARE_PROPORTION:
        return 100.0;
    case CC_COMPARE_ISR:
        return 100.0;
    default:
        return 100000.0;
    }
}

static uint32_t level_size(const struct cc_store_columns *c, int level)
{
    switch (level) {
    case CC_AREA_LAD:
        return c->n_lad;
    case CC_AREA_ICB:
        return c->n_icb;
    case CC_AREA_REGION:
        return c->n_region;
    default:
        return 1;
    }
}

static uint8_t level_dimension(int level)
{
    return level == CC_AREA_LAD ? CC_DIM_LAD : level == CC_AREA_ICB ? CC_DIM_ICB : CC_DIM_REGION;
}

/* The parent (one level up) of area `area` at `level`. */
static uint32_t parent_of(const struct cc_store_columns *c, int level, uint32_t area)
{
    return level == CC_AREA_LAD ? c->lad_icb[area] : c->icb_region[area];
}

static void area_label(const struct cc_store_columns *c, int level, uint32_t area,
                       struct cc_compare_unit *unit)
{
    const char *code = "", *name = "";
    switch (level) {
    case CC_AREA_LAD:
        code = c->lad_code[area];
        name = c->name_blob + c->lad_name_offset[area];
        break;
    case CC_AREA_ICB:
        code = c->icb_code[area];
        name = c->name_blob + c->icb_name_offset[area];
        break;
    case CC_AREA_REGION:
        code = c->region_code[area];
        name = c->name_blob + c->region_name_offset[area];
        break;
    default:
        code = CC_COMPARE_ENGLAND_CODE;
        name = "England";
        break;
    }
    unit->level = (uint8_t)level;
    unit->area = area;
    snprintf(unit->code, sizeof unit->code, "%s", code);
    snprintf(unit->name, sizeof unit->name, "%s", name);
}

/* ---- the queries ------------------------------------------------------------------------ */

/* Checks that a query given in a request can take the comparison's
 * dimensions. */
static int check_base_query(const struct cc_query *q, const char *field, char *errbuf,
                            size_t errlen)
{
    char message[160];
    if (!q) {
        snprintf(message, sizeof message, "%s: missing", field);
        return fail(errbuf, errlen, CC_EINVAL, message);
    }
    if (q->n_dimensions) {
        snprintf(message, sizeof message,
                 "%s.dimensions: a comparison sets the dimensions itself (area, age band)", field);
        return fail(errbuf, errlen, CC_EINVAL, message);
    }
    if (q->filters.areas.n_codes) {
        snprintf(message, sizeof message,
                 "%s.filters.areas: a comparison covers every area of its level", field);
        return fail(errbuf, errlen, CC_EINVAL, message);
    }
    return 0;
}

/* Adds the comparison's dimensions to q (a clone the comparison owns),
 * validates and binds it. */
static int prepare_query(struct cc_query *q, const struct cc_compare_request *request,
                         const struct cc_store_columns *columns,
                         const struct cc_codelists *codelists, const char *field, char *errbuf,
                         size_t errlen)
{
    q->dimensions = cc_query_alloc(q, 2 * sizeof *q->dimensions);
    if (!q->dimensions)
        return CC_ENOMEM;
    q->n_dimensions = 1;
    q->dimensions[0].kind = level_dimension(request->area_level);
    if (method_bands(request->method) > 1) {
        q->dimensions[1].kind = CC_DIM_AGE_BAND;
        q->dimensions[1].age_banding = CC_AGE_BANDS_5Y;
        q->n_dimensions = 2;
    }
    struct cc_query_extent extent;
    cc_query_extent_default(&extent);
    cc_query_extent_from_store(columns, &extent);
    char reason[256];
    int rc = cc_query_validate(q, NULL, &extent, reason, sizeof reason);
    if (rc == 0)
        rc = cc_query_bind(q, columns, codelists, reason, sizeof reason);
    if (rc < 0 && errbuf && errlen)
        snprintf(errbuf, errlen, "%s: %s", field, reason);
    return rc;
}

/* The default denominator: the population measure with the numerator's
 * person filters, aged on the day the numerator's persons are aged. */
static int population_query(const struct cc_query *numerator, int source, struct cc_query **out)
{
    int rc = cc_query_clone(numerator, out);
    if (rc < 0)
        return rc;
    struct cc_query *q = *out;
    q->measure = CC_MEASURE_POPULATION;
    q->population_source = (uint8_t)(source == CC_COMPARE_ESTIMATE ? CC_POPULATION_ESTIMATE
                                                                   : CC_POPULATION_REGISTERED);
    q->events_of = -1;
    q->filters.n_conditions = 0;
    q->filters.setting_mask = 0;
    if (!q->has_as_of && q->filters.date_range.present) {
        q->has_as_of = true;
        q->as_of = q->filters.date_range.to + 1;
    }
    q->filters.date_range.present = false;
    return 0;
}

/* Adds every cell of an engine result (area x band) into the units: the area,
 * its parent unit (if any) and England. */
static int add_result(const struct cc_compare_layout *layout, const struct cc_store_columns *c,
                      const struct cc_raw_result *result, double *counts, uint32_t *keys)
{
    uint32_t n_bands = layout->n_bands;
    if (result->n_dimensions != (n_bands > 1 ? 2u : 1u) ||
        result->dimensions[0].n_values != layout->n_areas ||
        (n_bands > 1 && result->dimensions[1].n_values != n_bands))
        return CC_EINVAL;
    uint32_t england = layout->n_units - 1;
    for (uint64_t cell = 0; cell < result->n_cells; cell++) {
        uint32_t area = cc_raw_result_coordinate(result, cell, 0);
        uint32_t band = n_bands > 1 ? cc_raw_result_coordinate(result, cell, 1) : 0;
        uint32_t targets[3] = {area, england, CC_COMPARE_NO_UNIT};
        if (layout->comparator == CC_COMPARE_PARENT && layout->area_level != CC_AREA_REGION)
            targets[2] = layout->n_areas + parent_of(c, layout->area_level, area);
        for (int t = 0; t < 3; t++) {
            if (targets[t] == CC_COMPARE_NO_UNIT)
                continue;
            size_t at = (size_t)targets[t] * n_bands + band;
            counts[at] += (double)result->count[cell];
            keys[at] += result->cell_key[cell];
        }
    }
    return 0;
}

/* Merges every cell's sketch of an engine result into its units' (the
 * units of add_result()): a unit's persons are those of its cells. */
static int add_sketches(const struct cc_compare_layout *layout, const struct cc_store_columns *c,
                        const struct cc_raw_result *result, uint32_t **out)
{
    *out = NULL;
    if (!result->cell_sketch)
        return 0;
    size_t n = (size_t)layout->n_units * layout->n_bands * CC_EXEC_SKETCH_BUCKETS;
    uint32_t *sketch = malloc((n ? n : 1) * sizeof *sketch);
    if (!sketch)
        return CC_ENOMEM;
    memset(sketch, 0xff, n * sizeof *sketch);
    uint32_t n_bands = layout->n_bands, england = layout->n_units - 1;
    for (uint64_t cell = 0; cell < result->n_cells; cell++) {
        uint32_t area = cc_raw_result_coordinate(result, cell, 0);
        uint32_t band = n_bands > 1 ? cc_raw_result_coordinate(result, cell, 1) : 0;
        uint32_t targets[3] = {area, england, CC_COMPARE_NO_UNIT};
        if (layout->comparator == CC_COMPARE_PARENT && layout->area_level != CC_AREA_REGION)
            targets[2] = layout->n_areas + parent_of(c, layout->area_level, area);
        const uint32_t *from = result->cell_sketch + cell * CC_EXEC_SKETCH_BUCKETS;
        for (int t = 0; t < 3; t++) {
            if (targets[t] == CC_COMPARE_NO_UNIT)
                continue;
            uint32_t *to = sketch + ((size_t)targets[t] * n_bands + band) * CC_EXEC_SKETCH_BUCKETS;
            for (unsigned b = 0; b < CC_EXEC_SKETCH_BUCKETS; b++)
                if (from[b] < to[b])
                    to[b] = from[b];
        }
    }
    *out = sketch;
    return 0;
}

static int build_layout(const struct cc_compare_request *request, const struct cc_store_columns *c,
                        struct cc_compare_layout *layout)
{
    layout->method = request->method;
    layout->denominator = request->denominator;
    layout->area_level = request->area_level;
    layout->comparator = request->comparator;
    layout->multiplier =
        request->multiplier > 0 ? request->multiplier : default_multiplier(request->method);
    layout->n_bands = method_bands(request->method);
    layout->n_areas = level_size(c, request->area_level);
    uint32_t n_parents = 0;
    int parent_level = request->area_level + 1;
    if (request->comparator == CC_COMPARE_PARENT && request->area_level != CC_AREA_REGION)
        n_parents = level_size(c, parent_level);
    layout->n_units = layout->n_areas + n_parents + 1;
    layout->units = calloc(layout->n_units, sizeof *layout->units);
    if (!layout->units)
        return CC_ENOMEM;
    uint32_t england = layout->n_units - 1;
    for (uint32_t a = 0; a < layout->n_areas; a++) {
        area_label(c, request->area_level, a, &layout->units[a]);
        layout->units[a].comparator =
            n_parents ? layout->n_areas + parent_of(c, request->area_level, a) : england;
    }
    for (uint32_t p = 0; p < n_parents; p++) {
        area_label(c, parent_level, p, &layout->units[layout->n_areas + p]);
        layout->units[layout->n_areas + p].comparator = england;
    }
    area_label(c, CC_AREA_NATION, 0, &layout->units[england]);
    layout->units[england].comparator = CC_COMPARE_NO_UNIT;
    return 0;
}

int cc_compare_run(const struct cc_dataversion *version, const struct cc_compare_request *request,
                   const struct cc_codelists *codelists, const struct cc_exec_options *options,
                   struct cc_compare_raw *out, char *errbuf, size_t errlen)
{
    struct cc_query *numerator = NULL, *denominator = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    if (!version || !request)
        return fail(errbuf, errlen, CC_EINVAL, "request: missing");
    if ((rc = check_base_query(request->numerator, "numerator", errbuf, errlen)) < 0)
        return rc;
    if (request->numerator->measure != CC_MEASURE_PERSONS &&
        request->numerator->measure != CC_MEASURE_EVENTS)
        return fail(errbuf, errlen, CC_EINVAL,
                    "numerator.measure: a comparison counts persons or events");
    if (request->area_level != CC_AREA_LAD && request->area_level != CC_AREA_ICB &&
        request->area_level != CC_AREA_REGION)
        return fail(errbuf, errlen, CC_EINVAL, "area_level: must be lad, icb or region");
    if (!cc_compare_method_name(request->method))
        return fail(errbuf, errlen, CC_EINVAL, "method: unknown method");
    if (request->denominator && !cc_compare_denominator_name(request->denominator))
        return fail(errbuf, errlen, CC_EINVAL, "denominator: unknown denominator");
    if (request->comparator && !cc_compare_comparator_name(request->comparator))
        return fail(errbuf, errlen, CC_EINVAL, "comparator: unknown comparator");
    if (!isfinite(request->multiplier) || request->multiplier < 0)
        return fail(errbuf, errlen, CC_EINVAL, "multiplier: must be a positive number");
    if (request->denominator == CC_COMPARE_QUERY &&
        (rc = check_base_query(request->denominator_query, "denominator_query", errbuf, errlen)) <
            0)
        return rc;

    struct cc_compare_request resolved = *request;
    if (!resolved.denominator)
        resolved.denominator = CC_COMPARE_REGISTERED;
    if (!resolved.comparator)
        resolved.comparator = CC_COMPARE_NATIONAL;
    const struct cc_store_columns *c = cc_store_columns(cc_dataversion_store(version));

    if ((rc = cc_query_clone(resolved.numerator, &numerator)) < 0)
        goto fail;
    if ((rc = prepare_query(numerator, &resolved, c, codelists, "numerator", errbuf, errlen)) < 0)
        goto fail;
    if (resolved.denominator == CC_COMPARE_QUERY)
        rc = cc_query_clone(resolved.denominator_query, &denominator);
    else
        rc = population_query(resolved.numerator, resolved.denominator, &denominator);
    if (rc < 0)
        goto fail;
    if ((rc = prepare_query(denominator, &resolved, c, codelists, "denominator", errbuf, errlen)) <
        0)
        goto fail;

    if ((rc = cc_exec_run(version, numerator, options, &out->numerator_result, errbuf, errlen)) < 0)
        goto fail;
    /* the ledger (cohort_hash) remembers the numerator's cohort only */
    struct cc_exec_options denominator_options = {0};
    if (options)
        denominator_options = *options;
    denominator_options.cohort_hash = false;
    if ((rc = cc_exec_run(version, denominator, &denominator_options, &out->denominator_result,
                          errbuf, errlen)) < 0)
        goto fail;

    if ((rc = build_layout(&resolved, c, &out->layout)) < 0)
        goto fail;
    if ((rc = cc_compare_counts_new(&out->layout, &out->exact)) < 0)
        goto fail;
    size_t n_cells = (size_t)out->layout.n_units * out->layout.n_bands;
    out->count_key = calloc(n_cells, sizeof *out->count_key);
    out->denominator_key = calloc(n_cells, sizeof *out->denominator_key);
    if (!out->count_key || !out->denominator_key) {
        rc = CC_ENOMEM;
        goto fail;
    }
    if ((rc = add_result(&out->layout, c, &out->numerator_result, out->exact.count,
                         out->count_key)) < 0 ||
        (rc = add_result(&out->layout, c, &out->denominator_result, out->exact.denominator,
                         out->denominator_key)) < 0) {
        fail(errbuf, errlen, rc, "engine: a result of an unexpected shape");
        goto fail;
    }
    if ((rc = add_sketches(&out->layout, c, &out->numerator_result, &out->count_sketch)) < 0 ||
        (rc = add_sketches(&out->layout, c, &out->denominator_result,
                           &out->denominator_sketch)) < 0)
        goto fail;
    cc_query_free(numerator);
    cc_query_free(denominator);
    return 0;

fail:
    if (rc == CC_ENOMEM)
        fail(errbuf, errlen, rc, "out of memory");
    cc_query_free(numerator);
    cc_query_free(denominator);
    cc_compare_raw_free(out);
    return rc;
}

void cc_compare_raw_free(struct cc_compare_raw *raw)
{
    if (!raw)
        return;
    free(raw->layout.units);
    cc_compare_counts_free(&raw->exact);
    free(raw->count_key);
    free(raw->denominator_key);
    free(raw->count_sketch);
    free(raw->denominator_sketch);
    cc_raw_result_free(&raw->numerator_result);
    cc_raw_result_free(&raw->denominator_result);
    memset(raw, 0, sizeof *raw);
}

/* ---- counts ------------------------------------------------------------------------------ */

static int counts_alloc(uint32_t n_units, uint32_t n_bands, struct cc_compare_counts *out)
{
    size_t n = (size_t)n_units * n_bands;
    memset(out, 0, sizeof *out);
    out->count = calloc(n ? n : 1, sizeof *out->count);
    out->denominator = calloc(n ? n : 1, sizeof *out->denominator);
    out->flags = calloc(n ? n : 1, sizeof *out->flags);
    if (!out->count || !out->denominator || !out->flags) {
        cc_compare_counts_free(out);
        return CC_ENOMEM;
    }
    out->n_units = n_units;
    out->n_bands = n_bands;
    return 0;
}

int cc_compare_counts_new(const struct cc_compare_layout *layout, struct cc_compare_counts *out)
{
    return counts_alloc(layout->n_units, layout->n_bands, out);
}

int cc_compare_counts_copy(const struct cc_compare_counts *from, struct cc_compare_counts *out)
{
    int rc = counts_alloc(from->n_units, from->n_bands, out);
    if (rc < 0)
        return rc;
    size_t n = (size_t)from->n_units * from->n_bands;
    memcpy(out->count, from->count, n * sizeof *out->count);
    memcpy(out->denominator, from->denominator, n * sizeof *out->denominator);
    memcpy(out->flags, from->flags, n * sizeof *out->flags);
    return 0;
}

void cc_compare_counts_free(struct cc_compare_counts *counts)
{
    if (!counts)
        return;
    free(counts->count);
    free(counts->denominator);
    free(counts->flags);
    counts->count = counts->denominator = NULL;
    counts->flags = NULL;
    counts->n_units = counts->n_bands = 0;
}

/* ---- funnels ----------------------------------------------------------------------------- */

/* Poisson confidence limits of a (not necessarily whole) count, exact up to
 * FUNNEL_EXACT_MAX_EVENTS, as the funnel functions of cc_stats use them. */
static int count_limits(double count, double confidence, double *lower, double *upper)
{
    struct cc_interval interval;
    int rc;
    /* GSL's chi-square quantile also fails now and then for some thousands
     * of degrees of freedom (measured: 17,086 and 25,629 events at 99.8%);
     * Byar's limits are then accurate to better than 1e-6. */
    rc = CC_ESTATS;
    if (count <= FUNNEL_EXACT_MAX_EVENTS)
        rc = cc_stats_exact_poisson(count, confidence, &interval);
    if (rc == CC_ESTATS && count > 0)
        rc = cc_stats_byars(count, confidence, &interval);
    if (rc < 0)
        return rc;
    *lower = interval.lower;
    *upper = interval.upper;
    return 0;
}

/* Whether limit `which` (1: the lower, 0: the upper) of count O's interval
 * lies below mean. In the exact range this is read off the gamma CDF at
 * the mean, with no quantile to invert: the exact upper limit U of O is
 * where P(Gamma(O + 1) <= U) = 1 - alpha/2, the lower L where P(Gamma(O) <=
 * L) = alpha/2, and P(a, x) grows with x, so limit < mean exactly when
 * P(a, mean) exceeds its target (the same answer as count_limits(), some
 * twenty times faster, which the funnel curve's thousands of steps need).
 * Elsewhere, and if the CDF fails, from count_limits(). */
static int limit_below(double count, double mean, double confidence, int which, int *below)
{
    double alpha = 1 - confidence;
    if (count <= FUNNEL_EXACT_MAX_EVENTS) {
        if (which && count <= 0) {
            *below = 1; /* the lower limit of 0 is 0 */
            return 0;
        }
        gsl_sf_result p;
        double a = which ? count : count + 1, target = which ? alpha / 2 : 1 - alpha / 2;
        if (gsl_sf_gamma_inc_P_e(a, mean, &p) == GSL_SUCCESS && isfinite(p.val)) {
            *below = p.val > target;
            return 0;
        }
    }
    double lower, upper;
    int rc = count_limits(count, confidence, &lower, &upper);
    if (rc < 0)
        return rc;
    *below = (which ? lower : upper) < mean;
    return 0;
}

/* Finds the count O >= lo at which limit (0: lower, 1: upper) of O's
 * interval equals mean, by bisection; f(lo) < mean <= f(hi) must hold. */
static int solve_count(double mean, double confidence, int which, double lo, double hi, double *out)
{
    for (int i = 0; i < FUNNEL_MAX_ITERATIONS && hi - lo > FUNNEL_RELATIVE_TOLERANCE * (1 + hi);
         i++) {
        double mid = 0.5 * (lo + hi);
        int below;
        int rc = limit_below(mid, mean, confidence, which, &below);
        if (rc < 0)
            return rc;
        if (below)
            lo = mid;
        else
            hi = mid;
    }
    *out = 0.5 * (lo + hi);
    return 0;
}

int cc_compare_funnel_counts(double mean, double confidence, double *lower, double *upper)
{
    double at_zero_lower, at_zero_upper, lim_lower, lim_upper;
    int rc;
    if (!isfinite(mean) || mean <= 0 || !(confidence > 0 && confidence < 1))
        return CC_EINVAL;
    /* Lower funnel limit: the count whose upper limit reaches the mean. The
     * upper limit of O exceeds O, so the answer lies in [0, mean]. */
    if ((rc = count_limits(0, confidence, &at_zero_lower, &at_zero_upper)) < 0)
        return rc;
    if (at_zero_upper >= mean)
        *lower = 0;
    else if ((rc = solve_count(mean, confidence, 0, 0, mean, lower)) < 0)
        return rc;
    /* Upper funnel limit: the count whose lower limit reaches the mean; the
     * lower limit of O is below O, so the answer lies above the mean. */
    double hi = mean + 4 * sqrt(mean) + 10;
    for (;;) {
        if ((rc = count_limits(hi, confidence, &lim_lower, &lim_upper)) < 0)
            return rc;
        if (lim_lower >= mean)
            break;
        hi *= 2;
    }
    return solve_count(mean, confidence, 1, mean, hi, upper);
}

/* ---- finishing --------------------------------------------------------------------------- */

static void row_clear(struct cc_compare_row *row)
{
    double nan = NAN;
    row->status = CC_COMPARE_OK;
    row->count = row->denominator = row->expected = row->value = nan;
    row->ci95 = (struct cc_interval){nan, nan, nan, CC_COMPARE_LEVEL_95, CC_STATS_WILSON};
    row->ci998 = (struct cc_interval){nan, nan, nan, CC_COMPARE_LEVEL_998, CC_STATS_WILSON};
    row->ci95_noise = row->ci95;
    row->comparator_value = nan;
    row->comparison95 = row->comparison998 = CC_STATS_NOT_COMPARED;
    row->funnel95_lower = row->funnel95_upper = nan;
    row->funnel998_lower = row->funnel998_upper = nan;
    row->funnel_x = nan;
}

/* Computes one interval of a unit whose count and denominator are known. */
static int unit_interval(const struct cc_compare_layout *layout,
                         const struct cc_compare_counts *counts, uint32_t unit,
                         struct cc_compare_row *row, double confidence, struct cc_interval *out)
{
    uint32_t n_bands = layout->n_bands;
    const double *count = counts->count + (size_t)unit * n_bands;
    const double *population = counts->denominator + (size_t)unit * n_bands;
    int rc = 0;

    switch (layout->method) {
    case CC_COMPARE_PROPORTION:
        if (row->count > row->denominator) {
            row->status = CC_COMPARE_INCONSISTENT;
            return 0;
        }
        rc = cc_stats_proportion(row->count, row->denominator, confidence, layout->multiplier, out);
        break;
    case CC_COMPARE_CRUDE_RATE:
        rc = cc_stats_rate(row->count, row->denominator, confidence, layout->multiplier, out);
        break;
    case CC_COMPARE_DSR: {
        /* A band with no population and no events adds nothing to the rate or
         * its variance; giving it population 1 says exactly that and keeps
         * its standard weight in the sum (the rate there is taken as 0). */
        double band_population[CC_N_AGE_BANDS_5Y];
        for (uint32_t b = 0; b < n_bands; b++) {
            if (population[b] <= 0 && count[b] > 0) {
                row->status = CC_COMPARE_INCONSISTENT;
                return 0;
            }
            band_population[b] = population[b] > 0 ? population[b] : 1;
        }
        rc = cc_stats_dsr(n_bands, count, band_population, cc_stats_esp2013, confidence,
                          layout->multiplier, out, NULL);
        if (rc == CC_ERANGE) {
            row->status = CC_COMPARE_TOO_FEW_EVENTS;
            return 0;
        }
        break;
    }
    case CC_COMPARE_ISR:
        rc = cc_stats_isr(row->count, row->expected, confidence, layout->multiplier, out);
        break;
    default:
        return CC_EINVAL;
    }
    return rc;
}

/* Fills status, count, denominator, expected, value and intervals of one unit. */
static int unit_figures(const struct cc_compare_layout *layout,
                        const struct cc_compare_counts *counts, uint32_t unit,
                        const double *reference_rate, int reference_ok, struct cc_compare_row *row)
{
    uint32_t n_bands = layout->n_bands;
    size_t first = (size_t)unit * n_bands;
    double count = 0, denominator = 0;
    int suppressed = 0;
    for (uint32_t b = 0; b < n_bands; b++) {
        if (counts->flags[first + b]) {
            /* a suppressed cell's numbers are not read */
            suppressed = 1;
            continue;
        }
        if (!isfinite(counts->count[first + b]) || counts->count[first + b] < 0 ||
            !isfinite(counts->denominator[first + b]) || counts->denominator[first + b] < 0)
            return CC_EINVAL;
        count += counts->count[first + b];
        denominator += counts->denominator[first + b];
    }
    if (suppressed) {
        row->status = CC_COMPARE_SUPPRESSED;
        return 0;
    }
    row->count = count;
    row->denominator = denominator;
    if (layout->method == CC_COMPARE_ISR) {
        if (!reference_ok) {
            row->status = CC_COMPARE_SUPPRESSED;
            return 0;
        }
        double expected = 0;
        for (uint32_t b = 0; b < n_bands; b++) {
            if (isnan(reference_rate[b])) {
                if (counts->denominator[first + b] > 0) {
                    row->status = CC_COMPARE_INCONSISTENT;
                    return 0;
                }
                continue;
            }
            expected += counts->denominator[first + b] * reference_rate[b];
        }
        row->expected = expected;
        if (!(expected > 0)) {
            row->status = CC_COMPARE_NO_DENOMINATOR;
            return 0;
        }
    } else if (!(denominator > 0)) {
        row->status = CC_COMPARE_NO_DENOMINATOR;
        return 0;
    }
    int rc = unit_interval(layout, counts, unit, row, CC_COMPARE_LEVEL_95, &row->ci95);
    if (rc == 0 && row->status == CC_COMPARE_OK)
        rc = unit_interval(layout, counts, unit, row, CC_COMPARE_LEVEL_998, &row->ci998);
    if (rc < 0)
        return rc;
    if (row->status == CC_COMPARE_OK)
        row->value = row->ci95.value;
    return 0;
}

/* Funnel limits at x (the population, or the expected count for ISR) at
 * one level around comparator value v; left as they are (NaN) where the
 * limits do not apply. */
static int funnel_at(const struct cc_compare_layout *layout, double x, double v, double confidence,
                     double *lower, double *upper)
{
    double m = layout->multiplier;
    if (!(x > 0))
        return 0;
    if (layout->method == CC_COMPARE_PROPORTION) {
        struct cc_funnel_point point;
        double average = v / m;
        if (average < 0 || average > 1)
            return 0;
        int rc = cc_stats_funnel_proportion(average, x, confidence, m, &point);
        if (rc < 0)
            return rc;
        *lower = point.lower_limit;
        *upper = point.upper_limit;
        return 0;
    }
    /* Poisson funnels: the mean count at x at the comparator's value is
     * x v / m. */
    double mean = x * v / m, lower_count, upper_count;
    if (!(mean > 0))
        return 0;
    int rc = cc_compare_funnel_counts(mean, confidence, &lower_count, &upper_count);
    if (rc < 0)
        return rc;
    *lower = lower_count / x * m;
    *upper = upper_count / x * m;
    return 0;
}

/* A unit's x on the funnel plot (NaN when it has none): the denominator,
 * the expected count for ISR, and for DSR the population at which the
 * area's events would give its DSR as a crude rate, as PHEindicatormethods
 * (calculate_funnel_limits, rate_type "dsr") derives it. */
static double unit_funnel_x(const struct cc_compare_layout *layout,
                            const struct cc_compare_row *row)
{
    if (layout->method == CC_COMPARE_ISR)
        return row->expected;
    if (layout->method == CC_COMPARE_DSR)
        return row->count > 0 && row->value > 0 ? row->count / (row->value / layout->multiplier)
                                                : NAN;
    return row->denominator;
}

/* The funnel curve of a national comparison around England's value (see
 * struct cc_compare_result). */
static int funnel_curve(const struct cc_compare_layout *layout, struct cc_compare_result *out)
{
    out->funnel_value = NAN;
    if (layout->comparator != CC_COMPARE_NATIONAL || layout->n_units == 0)
        return 0;
    const struct cc_compare_row *england = &out->rows[layout->n_units - 1];
    if (england->status != CC_COMPARE_OK)
        return 0;
    double smallest = INFINITY, largest = 0;
    for (uint32_t u = 0; u < layout->n_areas; u++) {
        double x = out->rows[u].funnel_x;
        if (!(x > 0) || !isfinite(x))
            continue;
        smallest = fmin(smallest, x);
        largest = fmax(largest, x);
    }
    if (!(largest > 0))
        return 0;
    out->funnel = calloc(CC_COMPARE_FUNNEL_POINTS, sizeof *out->funnel);
    if (!out->funnel)
        return CC_ENOMEM;
    double from = log(smallest / 2), to = log(largest * 2);
    for (uint32_t i = 0; i < CC_COMPARE_FUNNEL_POINTS; i++) {
        struct cc_compare_funnel_point *p = &out->funnel[i];
        p->x = exp(from + (to - from) * i / (CC_COMPARE_FUNNEL_POINTS - 1));
        p->lower95 = p->upper95 = p->lower998 = p->upper998 = NAN;
        /* A point whose limits cannot be computed is left out (NaN): the
         * curve is drawn through the others, and the comparison stands. */
        int rc =
            funnel_at(layout, p->x, england->value, CC_COMPARE_LEVEL_95, &p->lower95, &p->upper95);
        if (rc == CC_ESTATS)
            p->lower95 = p->upper95 = NAN;
        else if (rc < 0)
            return rc;
        rc = funnel_at(layout, p->x, england->value, CC_COMPARE_LEVEL_998, &p->lower998,
                       &p->upper998);
        if (rc == CC_ESTATS)
            p->lower998 = p->upper998 = NAN;
        else if (rc < 0)
            return rc;
    }
    out->n_funnel = CC_COMPARE_FUNNEL_POINTS;
    out->funnel_value = england->value;
    return 0;
}

void cc_compare_released_free(struct cc_compare_released *released)
{
    if (!released)
        return;
    free(released->count);
    free(released->denominator);
    released->count = released->denominator = NULL;
}

/* The standard deviation of a unit's value from the error of its released
 * counts, each of variance v and independent (their cell keys differ), by
 * the delta method: a ratio x / n has variance (v + (x/n)^2 v) / n^2 times
 * the multiplier squared; a DSR is the weighted sum of band ratios; an ISR
 * is x / E with E = sum n_b r_b (the reference rates' own error, from
 * England's large counts, is left out). */
#define CC_Z95 1.959963984540054

static double value_error_sd(const struct cc_compare_layout *layout,
                             const struct cc_compare_counts *counts, uint32_t unit,
                             const struct cc_compare_row *row, double reference_rate[], double v)
{
    double m = layout->multiplier, variance = 0;
    uint32_t n_bands = layout->n_bands;
    const double *x = counts->count + (size_t)unit * n_bands;
    const double *n = counts->denominator + (size_t)unit * n_bands;
    switch (layout->method) {
    case CC_COMPARE_PROPORTION:
    case CC_COMPARE_CRUDE_RATE: {
        double ratio = row->count / row->denominator;
        variance = (v * n_bands + ratio * ratio * v * n_bands) /
                   (row->denominator * row->denominator);
        break;
    }
    case CC_COMPARE_DSR: {
        double total = 0;
        for (uint32_t b = 0; b < n_bands; b++)
            total += cc_stats_esp2013[b];
        for (uint32_t b = 0; b < n_bands; b++) {
            if (!(n[b] > 0))
                continue;
            double w = cc_stats_esp2013[b] / total, ratio = x[b] / n[b];
            variance += w * w * (v + ratio * ratio * v) / (n[b] * n[b]);
        }
        break;
    }
    case CC_COMPARE_ISR: {
        double e = row->expected, ratio = row->count / e, ve = 0;
        for (uint32_t b = 0; b < n_bands; b++)
            if (isfinite(reference_rate[b]))
                ve += reference_rate[b] * reference_rate[b] * v;
        variance = (v * n_bands + ratio * ratio * ve) / (e * e);
        break;
    }
    default:
        return 0;
    }
    return m * sqrt(variance);
}

/* ci95 widened by z * sd in quadrature on each side, kept within the
 * value's range (0 up; a proportion at most the multiplier): the
 * standardised methods. */
static struct cc_interval widen(const struct cc_compare_layout *layout, struct cc_interval ci,
                                double sd)
{
    double z = CC_Z95 * sd, lo = ci.value - ci.lower, hi = ci.upper - ci.value;
    ci.lower = ci.value - sqrt(lo * lo + z * z);
    ci.upper = ci.value + sqrt(hi * hi + z * z);
    if (ci.lower < 0)
        ci.lower = 0;
    if (layout->method == CC_COMPARE_PROPORTION && ci.upper > layout->multiplier)
        ci.upper = layout->multiplier;
    return ci;
}

/* One end of the score interval with extra variance v, at released count
 * x of denominator n: a proportion p solving (x - n p)^2 = z^2 (n p (1 - p)
 * + v (1 + p^2)) (the Wilson interval when v is 0; the denominator's
 * error enters as p^2 v); a rate's expected count L solving (x - L)^2 =
 * z^2 (L + v). upper: the larger root. Returns the value on the
 * multiplier's scale, or NaN when there is no real root. */
static double score_end(const struct cc_compare_layout *layout, double x, double n, double v,
                        int upper)
{
    double z2 = CC_Z95 * CC_Z95, m = layout->multiplier;
    if (x < 0)
        x = 0;
    if (layout->method == CC_COMPARE_PROPORTION) {
        double a = n * n + z2 * n - z2 * v, b = -(2 * n * x + z2 * n), c = x * x - z2 * v;
        double disc = b * b - 4 * a * c;
        if (!(a > 0) || disc < 0)
            return NAN;
        double p = (-b + (upper ? 1 : -1) * sqrt(disc)) / (2 * a);
        return m * (p < 0 ? 0 : p > 1 ? 1 : p);
    }
    double centre = x + z2 / 2, half = sqrt(z2 * (x + z2 / 4 + v));
    double l = centre + (upper ? half : -half);
    return m * (l < 0 ? 0 : l) / n;
}

/* The 95% interval including disclosure control's error (struct
 * cc_compare_row, ci95_noise), never narrower than ci95 on either side. */
static struct cc_interval noise_interval(const struct cc_compare_layout *layout,
                                         const struct cc_compare_counts *counts, uint32_t unit,
                                         const struct cc_compare_row *row, double reference_rate[],
                                         double v, uint32_t base)
{
    struct cc_interval ci = row->ci95;
    if ((layout->method == CC_COMPARE_PROPORTION || layout->method == CC_COMPARE_CRUDE_RATE) &&
        layout->n_bands == 1) {
        double half = base > 1 ? base / 2.0 : 0;
        double lower = score_end(layout, row->count - half, row->denominator, v, 0);
        double upper = score_end(layout, row->count + half, row->denominator, v, 1);
        if (isfinite(lower) && isfinite(upper)) {
            ci.lower = lower < row->ci95.lower ? lower : row->ci95.lower;
            ci.upper = upper > row->ci95.upper ? upper : row->ci95.upper;
            return ci;
        }
    }
    double rounding = base > 1 ? (double)base * base / 12.0 : 0;
    return widen(layout, row->ci95,
                 value_error_sd(layout, counts, unit, row, reference_rate, v + rounding));
}

static int finish(const struct cc_compare_layout *layout, const struct cc_compare_counts *counts,
                  double noise_variance, uint32_t rounding_base, struct cc_compare_result *out);

int cc_compare_finish(const struct cc_compare_layout *layout,
                      const struct cc_compare_released *released, struct cc_compare_result *out)
{
    memset(out, 0, sizeof *out);
    if (!layout || !released || released->n_units != layout->n_units ||
        released->n_bands != layout->n_bands || !released->count || !released->denominator)
        return CC_EINVAL;
    struct cc_compare_counts counts;
    int rc = cc_compare_counts_new(layout, &counts);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < (size_t)layout->n_units * layout->n_bands; i++) {
        const struct cc_released_count *c = &released->count[i], *d = &released->denominator[i];
        counts.count[i] = c->released ? (double)c->value : 0;
        counts.denominator[i] = d->released ? (double)d->value : 0;
        counts.flags[i] = (uint8_t)((c->released ? 0 : CC_COMPARE_COUNT_SUPPRESSED) |
                                    (d->released ? 0 : CC_COMPARE_DENOMINATOR_SUPPRESSED));
    }
    double v = released->noise_variance;
    rc = finish(layout, &counts, isfinite(v) && v > 0 ? v : 0, released->rounding_base, out);
    cc_compare_counts_free(&counts);
    return rc;
}

int cc_compare_finish_counts(const struct cc_compare_layout *layout,
                             const struct cc_compare_counts *counts,
                             struct cc_compare_result *out)
{
    return finish(layout, counts, 0, 1, out);
}

static int finish(const struct cc_compare_layout *layout, const struct cc_compare_counts *counts,
                  double noise_variance, uint32_t rounding_base, struct cc_compare_result *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (!layout || !counts || counts->n_units != layout->n_units ||
        counts->n_bands != layout->n_bands || layout->n_units == 0 ||
        layout->n_bands > CC_N_AGE_BANDS_5Y || !cc_compare_method_name(layout->method) ||
        !(layout->multiplier > 0))
        return CC_EINVAL;
    out->rows = calloc(layout->n_units, sizeof *out->rows);
    if (!out->rows)
        return CC_ENOMEM;
    out->n_rows = layout->n_units;

    /* England's band rates: the reference of indirect standardisation. */
    double reference_rate[CC_N_AGE_BANDS_5Y] = {0};
    int reference_ok = 1;
    if (layout->method == CC_COMPARE_ISR) {
        size_t england = (size_t)(layout->n_units - 1) * layout->n_bands;
        for (uint32_t b = 0; b < layout->n_bands; b++) {
            if (counts->flags[england + b])
                reference_ok = 0;
            double population = counts->denominator[england + b];
            reference_rate[b] = population > 0 ? counts->count[england + b] / population : NAN;
        }
    }

    for (uint32_t u = 0; u < layout->n_units; u++) {
        row_clear(&out->rows[u]);
        if ((rc = unit_figures(layout, counts, u, reference_rate, reference_ok, &out->rows[u])) < 0)
            goto fail;
        if (out->rows[u].status != CC_COMPARE_OK) {
            /* no value: nothing derived from a count that is not shown */
            double nan = NAN;
            if (out->rows[u].status == CC_COMPARE_SUPPRESSED)
                out->rows[u].count = out->rows[u].denominator = out->rows[u].expected = nan;
            out->rows[u].value = nan;
            out->rows[u].ci95.value = out->rows[u].ci95.lower = out->rows[u].ci95.upper = nan;
            out->rows[u].ci998.value = out->rows[u].ci998.lower = out->rows[u].ci998.upper = nan;
            out->rows[u].ci95_noise = out->rows[u].ci95;
        } else if (noise_variance > 0 || rounding_base > 1) {
            out->rows[u].ci95_noise = noise_interval(layout, counts, u, &out->rows[u],
                                                     reference_rate, noise_variance,
                                                     rounding_base);
        } else {
            out->rows[u].ci95_noise = out->rows[u].ci95;
        }
    }

    for (uint32_t u = 0; u < layout->n_units; u++) {
        struct cc_compare_row *row = &out->rows[u];
        uint32_t c = layout->units[u].comparator;
        if (c == CC_COMPARE_NO_UNIT || c >= layout->n_units)
            continue;
        const struct cc_compare_row *comparator = &out->rows[c];
        if (comparator->status != CC_COMPARE_OK)
            continue;
        row->comparator_value = comparator->value;
        if (row->status != CC_COMPARE_OK)
            continue;
        row->comparison95 = cc_stats_compare(&row->ci95, comparator->value);
        row->comparison998 = cc_stats_compare(&row->ci998, comparator->value);
        double x = unit_funnel_x(layout, row);
        if ((rc = funnel_at(layout, x, comparator->value, CC_COMPARE_LEVEL_95, &row->funnel95_lower,
                            &row->funnel95_upper)) < 0 ||
            (rc = funnel_at(layout, x, comparator->value, CC_COMPARE_LEVEL_998,
                            &row->funnel998_lower, &row->funnel998_upper)) < 0)
            goto fail;
        if (isfinite(row->funnel95_lower) || isfinite(row->funnel95_upper))
            row->funnel_x = x;
    }
    if ((rc = funnel_curve(layout, out)) < 0)
        goto fail;
    return 0;

fail:
    cc_compare_result_free(out);
    return rc;
}

void cc_compare_result_free(struct cc_compare_result *result)
{
    if (!result)
        return;
    free(result->rows);
    result->rows = NULL;
    result->n_rows = 0;
    free(result->funnel);
    result->funnel = NULL;
    result->n_funnel = 0;
}

/* ---- names ------------------------------------------------------------------------------- */

const char *cc_compare_method_name(int method)
{
    switch (method) {
    case CC_COMPARE_PROPORTION:
        return "proportion";
    case CC_COMPARE_CRUDE_RATE:
        return "crude_rate";
    case CC_COMPARE_DSR:
        return "dsr";
    case CC_COMPARE_ISR:
        return "isr";
    default:
        return NULL;
    }
}

const char *cc_compare_denominator_name(int denominator)
{
    switch (denominator) {
    case CC_COMPARE_REGISTERED:
        return "registered";
    case CC_COMPARE_ESTIMATE:
        return "estimate";
    case CC_COMPARE_QUERY:
        return "query";
    default:
        return NULL;
    }
}

const char *cc_compare_comparator_name(int comparator)
{
    switch (comparator) {
    case CC_COMPARE_NATIONAL:
        return "national";
    case CC_COMPARE_PARENT:
        return "parent";
    default:
        return NULL;
    }
}

const char *cc_compare_status_name(int status)
{
    switch (status) {
    case CC_COMPARE_OK:
        return "ok";
    case CC_COMPARE_SUPPRESSED:
        return "suppressed";
    case CC_COMPARE_NO_DENOMINATOR:
        return "no_denominator";
    case CC_COMPARE_TOO_FEW_EVENTS:
        return "too_few_events";
    case CC_COMPARE_INCONSISTENT:
        return "inconsistent";
    default:
        return NULL;
    }
}
