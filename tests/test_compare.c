/*
 * Tests for area comparisons (queries/cc_compare.c).
 *
 * Suite "compare": a small hand-built store, mirrored in SQLite. For each
 * method the comparison's figures are checked against the same statistic
 * computed by cc_stats from counts that SQL gives (areas, parents and
 * England counted by SQL separately, not by adding up areas), with the
 * national and the parent comparator; suppressed counts give "not
 * compared"; the funnel limits agree with cc_stats' funnels.
 *
 * Suite "planted": 24,000 generated patients (gen/) ingested and
 * published with the opt-out register applied; the generator's planted
 * effects (one ICB with type 2 diabetes prevalence x 1.6, one region with
 * hospital admissions x 0.7) must come out significantly higher and lower
 * than England.
 */
#include <criterion/criterion.h>

#include <gsl/gsl_errno.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_compare.h"
#include "cc_datadir.h"
#include "cc_compare_internal.h"
#include "cc_dataversion.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_fixture.h"
#include "cc_gen.h"
#include "cc_ingest.h"
#include "cc_model.h"
#include "cc_optout.h"
#include "cc_pseudo.h"
#include "cc_query.h"
#include "cc_stats.h"
#include "cc_store.h"
#include "cc_testfs.h"

#define N_PERSONS 6000
#define N_RECORDS 30000
#define DIABETES  "44054006"
#define ENGLAND   CC_COMPARE_ENGLAND_CODE

static struct cc_fixture fixture;
static cc_store *store;
static struct cc_dataversion *version;
static sqlite3 *db;

/* 2 regions, 4 ICBs, 8 districts, 16 LSOAs; ICB 0 has three times the
 * diabetes prevalence of the others, so something is significant. */
enum { N_LSOA = 16, N_LAD = 8, N_ICB = 4, N_REGION = 2 };

static void build_fixture(void)
{
    gsl_set_error_handler_off();
    static const uint8_t sexes[] = {1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 9, 0};
    static const struct cc_fixture_spec spec = {
        .seed = 0x2545f4914f6cdd1dULL,
        .n_lsoa = N_LSOA, .n_lad = N_LAD, .n_icb = N_ICB, .n_region = N_REGION,
        .lsoa_name = "Neighbourhood", .lad_name = "District", .icb_name = "Board",
        .region_name = "Region",
        .population_min = 20, .population_span = 80,
        .n_practices = 20,
        .n_persons = N_PERSONS,
        .first_birth_year = 1924, .birth_years = 100,
        .sexes = sexes, .n_sexes = sizeof sexes,
        .no_lsoa_one_in = 100, .no_practice_one_in = 20, .excluded_one_in = 10,
    };
    struct cc_fixture *f = &fixture;
    cc_fixture_begin(f, &spec);
    /* GP records only for registered persons (as in real extracts), so a
     * GP-recorded condition is a subset of the registered population. */
    for (uint32_t r = 0; r < N_RECORDS; r++) {
        uint32_t person = cc_fixture_below(f, N_PERSONS);
        uint8_t setting = (uint8_t)(1 + cc_fixture_below(f, 2));
        if (f->person_practice[person] == CC_FIXTURE_NO_AREA)
            setting = CC_SETTING_HOSPITAL;
        cc_day date = cc_day_from_ymd(2019 + (int)cc_fixture_below(f, 7), 1 + (int)cc_fixture_below(f, 12),
                                      1 + (int)cc_fixture_below(f, 28));
        struct cc_code_input code;
        if (setting == CC_SETTING_GP) {
            uint16_t lsoa = f->person_lsoa[person];
            int in_icb0 = lsoa != CC_FIXTURE_NO_AREA && f->lad_icb[f->lsoa_lad[lsoa]] == 0;
            int diabetes = cc_fixture_below(f, in_icb0 ? 20 : 60) == 0;
            code = (struct cc_code_input){CC_CODE_SNOMED, CC_ROLE_PRIMARY,
                                          diabetes ? DIABETES : "38341003"};
        } else {
            static const char *diagnoses[] = {"E119", "I10", "J459", "N390"};
            code = (struct cc_code_input){CC_CODE_ICD10, CC_ROLE_PRIMARY,
                                          diagnoses[cc_fixture_below(f, 4)]};
        }
        cc_fixture_record(f, person, setting, date, &code, 1);
    }
    cc_fixture_finish(f);
    store = f->store;
    version = f->version;
    db = f->db;
}

static void fixture_fini(void)
{
    cc_fixture_free(&fixture);
}

TestSuite(compare, .init = build_fixture, .fini = fixture_fini);

/* ---- helpers ------------------------------------------------------------------------------ */

static struct cc_query *persons_with(int system, const char *code, unsigned setting_mask)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    q->measure = CC_MEASURE_PERSONS;
    q->filters.conditions = cc_query_alloc(q, sizeof *q->filters.conditions);
    cr_assert(q->filters.conditions);
    struct cc_query_condition *c = &q->filters.conditions[0];
    q->filters.n_conditions = 1;
    c->system = (uint8_t)system;
    c->setting_mask = (uint8_t)setting_mask;
    c->codes = cc_query_alloc(q, sizeof *c->codes);
    cr_assert(c->codes);
    c->n_codes = 1;
    snprintf(c->codes[0].text, sizeof c->codes[0].text, "%s", code);
    return q;
}

static void run(const struct cc_compare_request *request, struct cc_compare_raw *raw)
{
    char err[256] = "";
    struct cc_exec_options options = {.n_threads = 2, .reference_day = cc_day_from_ymd(2026, 1, 1)};
    cr_assert_eq(cc_compare_run(version, request, NULL, &options, raw, err, sizeof err), 0, "%s",
                 err);
}

static uint32_t unit_of(const struct cc_compare_layout *layout, const char *code)
{
    for (uint32_t u = 0; u < layout->n_units; u++)
        if (!strcmp(layout->units[u].code, code))
            return u;
    cr_assert_fail("no unit %s", code);
    return 0;
}

/* Adds SQL rows (unit code, band, n) into per-unit, per-band counts. */
static void sql_counts(const struct cc_compare_layout *layout, const char *sql, double *out)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint32_t u = unit_of(layout, (const char *)sqlite3_column_text(st, 0));
        int band = sqlite3_column_int(st, 1);
        cr_assert(band >= 0 && (uint32_t)band < layout->n_bands, "band %d", band);
        out[(size_t)u * layout->n_bands + (size_t)band] += (double)sqlite3_column_int64(st, 2);
    }
    cr_assert_eq(rc, SQLITE_DONE);
    sqlite3_finalize(st);
}

/* The oracle's counts for the units: numerator and denominator SQL each as
 * a template with one %s for the area column ("lad", "icb", "region" or
 * 'E92000001' for England); rows are (code, band, n). */
static void oracle(const struct cc_compare_layout *layout, const char *numerator_sql,
                   const char *denominator_sql, double *count, double *denominator)
{
    static const char *column[] = {
        [CC_AREA_LAD] = "lad", [CC_AREA_ICB] = "icb", [CC_AREA_REGION] = "region"};
    const char *levels[3] = {column[layout->area_level], "'" ENGLAND "'", NULL};
    if (layout->comparator == CC_COMPARE_PARENT && layout->area_level != CC_AREA_REGION)
        levels[2] = column[layout->area_level + 1];
    for (int i = 0; i < 3 && levels[i]; i++) {
        char sql[2048];
        snprintf(sql, sizeof sql, numerator_sql, levels[i]);
        sql_counts(layout, sql, count);
        snprintf(sql, sizeof sql, denominator_sql, levels[i]);
        sql_counts(layout, sql, denominator);
    }
}

static void expect_close(double got, double want, const char *what, uint32_t unit)
{
    if (isnan(want)) {
        cr_expect(isnan(got), "%s of unit %u: %g, expected NaN", what, unit, got);
        return;
    }
    cr_expect(fabs(got - want) <= 1e-9 * fmax(1.0, fabs(want)),
              "%s of unit %u: %.12g, expected %.12g", what, unit, got, want);
}

/* Checks every unit's figures against the statistic computed by
 * `statistic` from the oracle's counts. */
typedef void (*statistic_fn)(const struct cc_compare_layout *layout, const double *count,
                             const double *denominator, uint32_t unit, double confidence,
                             struct cc_interval *out);

static void check_against_oracle(const struct cc_compare_raw *raw, const char *numerator_sql,
                                 const char *denominator_sql, statistic_fn statistic)
{
    const struct cc_compare_layout *layout = &raw->layout;
    size_t n = (size_t)layout->n_units * layout->n_bands;
    double *count = calloc(n, sizeof *count), *denominator = calloc(n, sizeof *denominator);
    cr_assert(count && denominator);
    oracle(layout, numerator_sql, denominator_sql, count, denominator);
    double count_sum = 0, denominator_sum = 0;
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(raw->exact.count[i], count[i], "count cell %zu", i);
        cr_expect_eq(raw->exact.denominator[i], denominator[i], "denominator cell %zu", i);
        count_sum += count[i];
        denominator_sum += denominator[i];
    }
    /* two empty answers agree and prove nothing */
    cr_assert_gt(count_sum, 0, "the oracle counted nothing (%s)", numerator_sql);
    cr_assert_gt(denominator_sum, 0, "the oracle's denominators are all 0");

    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(layout, &raw->exact, &result), 0);
    cr_assert_eq(result.n_rows, layout->n_units);
    struct cc_interval *want95 = calloc(layout->n_units, sizeof *want95);
    struct cc_interval *want998 = calloc(layout->n_units, sizeof *want998);
    cr_assert(want95 && want998);
    for (uint32_t u = 0; u < layout->n_units; u++) {
        statistic(layout, count, denominator, u, 0.95, &want95[u]);
        statistic(layout, count, denominator, u, 0.998, &want998[u]);
    }
    int n_significant = 0;
    for (uint32_t u = 0; u < layout->n_units; u++) {
        const struct cc_compare_row *row = &result.rows[u];
        cr_expect_eq(row->status, CC_COMPARE_OK, "unit %u: %s", u,
                     cc_compare_status_name(row->status));
        expect_close(row->value, want95[u].value, "value", u);
        expect_close(row->ci95.lower, want95[u].lower, "95% lower", u);
        expect_close(row->ci95.upper, want95[u].upper, "95% upper", u);
        expect_close(row->ci998.lower, want998[u].lower, "99.8% lower", u);
        expect_close(row->ci998.upper, want998[u].upper, "99.8% upper", u);
        uint32_t c = layout->units[u].comparator;
        if (c == CC_COMPARE_NO_UNIT) {
            cr_expect_eq(row->comparison95, CC_STATS_NOT_COMPARED);
            continue;
        }
        expect_close(row->comparator_value, want95[c].value, "comparator", u);
        cr_expect_eq(row->comparison95, cc_stats_compare(&want95[u], want95[c].value), "unit %u",
                     u);
        cr_expect_eq(row->comparison998, cc_stats_compare(&want998[u], want95[c].value), "unit %u",
                     u);
        n_significant += row->comparison95 != CC_STATS_SIMILAR;
        cr_expect(row->funnel95_lower <= row->funnel998_upper &&
                      row->funnel998_lower <= row->funnel95_lower &&
                      row->funnel95_upper <= row->funnel998_upper,
                  "unit %u: the 99.8%% funnel contains the 95%% one", u);
        cr_expect(row->funnel95_lower <= row->comparator_value &&
                      row->comparator_value <= row->funnel95_upper,
                  "unit %u: the funnel surrounds the comparator", u);
    }
    cr_log_info("%d units significantly different at 95%%", n_significant);
    free(want95);
    free(want998);
    free(count);
    free(denominator);
    cc_compare_result_free(&result);
}

static void proportion_statistic(const struct cc_compare_layout *layout, const double *count,
                                 const double *denominator, uint32_t unit, double confidence,
                                 struct cc_interval *out)
{
    cr_assert_eq(
        cc_stats_proportion(count[unit], denominator[unit], confidence, layout->multiplier, out),
        0);
}

static void rate_statistic(const struct cc_compare_layout *layout, const double *count,
                           const double *denominator, uint32_t unit, double confidence,
                           struct cc_interval *out)
{
    cr_assert_eq(cc_stats_rate(count[unit], denominator[unit], confidence, layout->multiplier, out),
                 0);
}

static void dsr_statistic(const struct cc_compare_layout *layout, const double *count,
                          const double *denominator, uint32_t unit, double confidence,
                          struct cc_interval *out)
{
    const double *c = count + (size_t)unit * CC_N_AGE_BANDS_5Y;
    const double *n = denominator + (size_t)unit * CC_N_AGE_BANDS_5Y;
    cr_assert_eq(cc_stats_dsr(CC_N_AGE_BANDS_5Y, c, n, cc_stats_esp2013, confidence,
                              layout->multiplier, out, NULL),
                 0);
}

static void isr_statistic(const struct cc_compare_layout *layout, const double *count,
                          const double *denominator, uint32_t unit, double confidence,
                          struct cc_interval *out)
{
    size_t england = (size_t)(layout->n_units - 1) * CC_N_AGE_BANDS_5Y;
    size_t first = (size_t)unit * CC_N_AGE_BANDS_5Y;
    double expected, observed = 0;
    cr_assert_eq(cc_stats_expected(CC_N_AGE_BANDS_5Y, denominator + first, count + england,
                                   denominator + england, &expected),
                 0);
    for (int b = 0; b < CC_N_AGE_BANDS_5Y; b++)
        observed += count[first + (size_t)b];
    cr_assert_eq(cc_stats_isr(observed, expected, confidence, layout->multiplier, out), 0);
}

/* ---- per method ------------------------------------------------------------------------- */

#define GP_DIABETES_SQL                                                                            \
    "SELECT %s, 0, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE r.setting = 1"      \
    " AND r.code = '" DIABETES "' AND p.region IS NOT NULL GROUP BY 1"
#define REGISTERED_SQL                                                                             \
    "SELECT %s, 0, COUNT(*) FROM p WHERE p.registered = 1 AND p.region IS NOT NULL GROUP BY 1"

Test(compare, proportion_per_icb_against_england_is_wilson_on_sql_counts)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_ICB, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    cr_assert_eq(raw.layout.n_areas, N_ICB);
    cr_assert_eq(raw.layout.n_units, N_ICB + 1, "the areas and England");
    cr_assert_eq(raw.layout.multiplier, 100.0, "a percentage by default");
    cr_assert_str_eq(raw.layout.units[N_ICB].code, ENGLAND);
    check_against_oracle(&raw, GP_DIABETES_SQL, REGISTERED_SQL, proportion_statistic);

    /* ICB 1 (E54000001) has three times the prevalence: significantly higher */
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
    cr_assert_eq(result.rows[unit_of(&raw.layout, "E54000001")].comparison95, CC_STATS_HIGHER);
    cr_assert_eq(result.rows[unit_of(&raw.layout, "E54000001")].comparison998, CC_STATS_HIGHER);
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, proportion_per_district_against_its_icb)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_LAD,
                                         .comparator = CC_COMPARE_PARENT,
                                         .method = CC_COMPARE_PROPORTION,
                                         .multiplier = 1};
    struct cc_compare_raw raw;
    run(&request, &raw);
    cr_assert_eq(raw.layout.n_units, N_LAD + N_ICB + 1, "districts, ICBs and England");
    for (uint32_t a = 0; a < N_LAD; a++) {
        uint32_t parent = raw.layout.units[a].comparator;
        cr_assert_eq(raw.layout.units[parent].level, CC_AREA_ICB);
        cr_assert_eq(raw.layout.units[parent].area, a % N_ICB, "district %u lies in ICB %u", a,
                     a % N_ICB);
    }
    check_against_oracle(&raw, GP_DIABETES_SQL, REGISTERED_SQL, proportion_statistic);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, crude_rate_of_hospital_episodes_per_district_against_its_icb)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    q->measure = CC_MEASURE_EVENTS;
    q->filters.setting_mask = 1u << CC_SETTING_HOSPITAL;
    q->filters.date_range =
        (struct cc_query_months){true, cc_query_month(2023, 1), cc_query_month(2023, 12)};
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_LAD,
                                         .comparator = CC_COMPARE_PARENT,
                                         .method = CC_COMPARE_CRUDE_RATE,
                                         .multiplier = 1000};
    struct cc_compare_raw raw;
    run(&request, &raw);
    check_against_oracle(
        &raw,
        "SELECT %s, 0, COUNT(*) FROM p JOIN r ON r.person = p.id WHERE r.setting = 2 AND r.date"
        " BETWEEN '2023-01-01' AND '2023-12-31' AND p.region IS NOT NULL GROUP BY 1",
        REGISTERED_SQL, rate_statistic);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, crude_rate_over_population_estimates_per_region)
{
    struct cc_query *q = persons_with(CC_CODE_ICD10, "E11", 1u << CC_SETTING_HOSPITAL);
    q->filters.sex_mask = 1u << CC_SEX_FEMALE;
    q->has_as_of = true;
    q->as_of = cc_query_month(2026, 1);
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_REGION,
                                         .denominator = CC_COMPARE_ESTIMATE,
                                         .method = CC_COMPARE_CRUDE_RATE};
    struct cc_compare_raw raw;
    run(&request, &raw);
    cr_assert_eq(raw.layout.multiplier, 100000.0);
    check_against_oracle(
        &raw,
        "SELECT %s, 0, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE r.setting = 2"
        " AND r.code LIKE 'E11%%' AND p.sex = 2 AND p.region IS NOT NULL GROUP BY 1",
        "SELECT %s, 0, SUM(n) FROM pop WHERE sex = 2 GROUP BY 1", rate_statistic);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

/* Ages by whole calendar years only hold on 1 January: the queries take
 * ages on 2026-01-01, when a person born in year Y is 2025 - Y unless born
 * on 1 January (then 2026 - Y). The SQL below counts that exactly. */
#define EXACT_AGE                                                                                  \
    "(2025 - CAST(strftime('%%Y', p.dob) AS INT) + (strftime('%%m-%%d', p.dob) = '01-01'))"
#define EXACT_BAND "(CASE WHEN " EXACT_AGE " >= 90 THEN 18 ELSE " EXACT_AGE " / 5 END)"

Test(compare, directly_standardised_rate_per_region_matches_dobson_on_sql_band_counts)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    q->has_as_of = true;
    q->as_of = cc_query_month(2026, 1);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_REGION, .method = CC_COMPARE_DSR};
    struct cc_compare_raw raw;
    run(&request, &raw);
    cr_assert_eq(raw.layout.n_bands, CC_N_AGE_BANDS_5Y);
    check_against_oracle(
        &raw,
        "SELECT %s, " EXACT_BAND ", COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE"
        " r.setting = 1 AND r.code = '" DIABETES "' AND p.region IS NOT NULL GROUP BY 1, 2",
        "SELECT %s, " EXACT_BAND ", COUNT(*) FROM p WHERE p.registered = 1 AND p.region IS NOT"
        " NULL GROUP BY 1, 2",
        dsr_statistic);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, indirectly_standardised_ratio_per_icb_against_its_region)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    q->has_as_of = true;
    q->as_of = cc_query_month(2026, 1);
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_ICB,
                                         .comparator = CC_COMPARE_PARENT,
                                         .method = CC_COMPARE_ISR};
    struct cc_compare_raw raw;
    run(&request, &raw);
    cr_assert_eq(raw.layout.n_units, N_ICB + N_REGION + 1);
    cr_assert_eq(raw.layout.multiplier, 100.0);
    check_against_oracle(
        &raw,
        "SELECT %s, " EXACT_BAND ", COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE"
        " r.setting = 1 AND r.code = '" DIABETES "' AND p.region IS NOT NULL GROUP BY 1, 2",
        "SELECT %s, " EXACT_BAND ", COUNT(*) FROM p WHERE p.registered = 1 AND p.region IS NOT"
        " NULL GROUP BY 1, 2",
        isr_statistic);
    /* England against its own band rates is 100 exactly */
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
    const struct cc_compare_row *england = &result.rows[raw.layout.n_units - 1];
    cr_assert_float_eq(england->value, 100.0, 1e-9);
    cr_assert_float_eq(england->expected, england->count, 1e-6);
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

/* ---- disclosure control's input ----------------------------------------------------------- */

Test(compare, a_suppressed_count_gives_not_compared_and_no_value)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_ICB, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    struct cc_compare_result exact, protected_result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &exact), 0);

    struct cc_compare_counts counts;
    cr_assert_eq(cc_compare_counts_copy(&raw.exact, &counts), 0);
    counts.flags[2] = CC_COMPARE_COUNT_SUPPRESSED;
    counts.count[2] = 123456; /* a suppressed cell's number is never read */
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &counts, &protected_result), 0);
    const struct cc_compare_row *row = &protected_result.rows[2];
    cr_assert_eq(row->status, CC_COMPARE_SUPPRESSED);
    cr_assert_eq(row->comparison95, CC_STATS_NOT_COMPARED);
    cr_assert_eq(row->comparison998, CC_STATS_NOT_COMPARED);
    cr_assert(isnan(row->value) && isnan(row->count) && isnan(row->ci95.lower) &&
              isnan(row->ci998.upper) && isnan(row->funnel95_lower));
    for (uint32_t u = 0; u < raw.layout.n_units; u++) {
        if (u == 2)
            continue;
        cr_assert_eq(protected_result.rows[u].status, CC_COMPARE_OK);
        cr_assert_eq(protected_result.rows[u].value, exact.rows[u].value, "unit %u unchanged", u);
    }
    cc_compare_result_free(&protected_result);

    /* England suppressed: every area keeps its value but is not compared */
    counts.flags[2] = 0;
    counts.count[2] = raw.exact.count[2];
    counts.flags[raw.layout.n_units - 1] = CC_COMPARE_DENOMINATOR_SUPPRESSED;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &counts, &protected_result), 0);
    for (uint32_t u = 0; u < raw.layout.n_areas; u++) {
        cr_assert_eq(protected_result.rows[u].status, CC_COMPARE_OK);
        cr_assert_eq(protected_result.rows[u].comparison95, CC_STATS_NOT_COMPARED);
        cr_assert(isnan(protected_result.rows[u].comparator_value));
    }
    cc_compare_result_free(&protected_result);
    cc_compare_result_free(&exact);
    cc_compare_counts_free(&counts);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, figures_come_from_the_counts_given_not_the_exact_ones)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_ICB, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    struct cc_compare_counts counts;
    cr_assert_eq(cc_compare_counts_copy(&raw.exact, &counts), 0);
    /* as if rounded to the nearest 5 */
    for (uint32_t u = 0; u < counts.n_units; u++) {
        counts.count[u] = 5 * round(counts.count[u] / 5);
        counts.denominator[u] = 5 * round(counts.denominator[u] / 5);
    }
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &counts, &result), 0);
    for (uint32_t u = 0; u < counts.n_units; u++) {
        struct cc_interval want;
        cr_assert_eq(cc_stats_proportion(counts.count[u], counts.denominator[u], 0.95, 100, &want),
                     0);
        cr_assert_eq(result.rows[u].count, counts.count[u]);
        cr_assert_float_eq(result.rows[u].value, want.value, 1e-12);
        cr_assert_float_eq(result.rows[u].ci95.lower, want.lower, 1e-12);
    }
    cc_compare_result_free(&result);
    cc_compare_counts_free(&counts);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, a_dsr_below_ten_events_and_an_empty_denominator_are_not_compared)
{
    struct cc_compare_layout layout = {.method = CC_COMPARE_DSR,
                                       .multiplier = 100000,
                                       .n_areas = 2,
                                       .n_units = 3,
                                       .n_bands = CC_N_AGE_BANDS_5Y};
    struct cc_compare_unit units[3] = {
        {.comparator = 2}, {.comparator = 2}, {.comparator = CC_COMPARE_NO_UNIT}};
    layout.units = units;
    struct cc_compare_counts counts;
    cr_assert_eq(cc_compare_counts_new(&layout, &counts), 0);
    for (int b = 0; b < CC_N_AGE_BANDS_5Y; b++) {
        counts.count[b] = b < 9 ? 1 : 0; /* 9 events */
        counts.denominator[b] = 100;
        counts.count[2 * CC_N_AGE_BANDS_5Y + b] = 10;
        counts.denominator[2 * CC_N_AGE_BANDS_5Y + b] = 1000;
    }
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&layout, &counts, &result), 0);
    cr_assert_eq(result.rows[0].status, CC_COMPARE_TOO_FEW_EVENTS);
    cr_assert_eq(result.rows[0].comparison95, CC_STATS_NOT_COMPARED);
    cr_assert_eq(result.rows[1].status, CC_COMPARE_NO_DENOMINATOR);
    cr_assert_eq(result.rows[2].status, CC_COMPARE_OK);
    cc_compare_result_free(&result);
    /* counts of another shape are refused */
    counts.n_bands = 1;
    cr_assert_eq(cc_compare_finish_counts(&layout, &counts, &result), CC_EINVAL);
    counts.n_bands = CC_N_AGE_BANDS_5Y;
    cc_compare_counts_free(&counts);
}

/* ---- funnels ------------------------------------------------------------------------------- */

Test(compare, poisson_funnel_counts_invert_the_exact_limits)
{
    /* cc_stats_funnel_ratio gives, at O events, the expected count at which
     * O lies on each limit: the funnel at that mean must give back O. */
    for (double events = 1; events < 5000; events *= 3.7) {
        double o = round(events);
        struct cc_funnel_point point;
        cr_assert_eq(cc_stats_funnel_ratio(o, 0.95, &point), 0);
        double lower, upper;
        cr_assert_eq(cc_compare_funnel_counts(point.lower_denominator, 0.95, &lower, &upper), 0);
        cr_assert_float_eq(lower, o, 1e-6 * o, "lower at %g events", o);
        cr_assert_eq(cc_compare_funnel_counts(point.upper_denominator, 0.95, &lower, &upper), 0);
        cr_assert_float_eq(upper, o, 1e-6 * o, "upper at %g events", o);
    }
    double lower, upper;
    cr_assert_eq(cc_compare_funnel_counts(2.0, 0.998, &lower, &upper), 0);
    cr_assert_eq(lower, 0, "no count is low enough below a mean of 2 at 99.8%%");
    cr_assert_gt(upper, 2);
    cr_assert_eq(cc_compare_funnel_counts(2e6, 0.95, &lower, &upper), 0, "Byar's above 100,000");
    cr_assert(lower < 2e6 && upper > 2e6);
    cr_assert_eq(cc_compare_funnel_counts(0, 0.95, &lower, &upper), CC_EINVAL);
}

Test(compare, proportion_funnel_limits_are_cc_stats_limits_at_the_area_denominator)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_LAD, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
    const struct cc_compare_row *england = &result.rows[raw.layout.n_units - 1];
    for (uint32_t a = 0; a < raw.layout.n_areas; a++) {
        const struct cc_compare_row *row = &result.rows[a];
        struct cc_funnel_point p95, p998;
        cr_assert_eq(
            cc_stats_funnel_proportion(england->value / 100, row->denominator, 0.95, 100, &p95), 0);
        cr_assert_eq(
            cc_stats_funnel_proportion(england->value / 100, row->denominator, 0.998, 100, &p998),
            0);
        cr_assert_float_eq(row->funnel95_lower, p95.lower_limit, 1e-12);
        cr_assert_float_eq(row->funnel95_upper, p95.upper_limit, 1e-12);
        cr_assert_float_eq(row->funnel998_lower, p998.lower_limit, 1e-12);
        cr_assert_float_eq(row->funnel998_upper, p998.upper_limit, 1e-12);
    }
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, the_funnel_curve_is_cc_stats_limits_around_england_from_half_to_twice_the_areas)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_LAD, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
    const struct cc_compare_row *england = &result.rows[raw.layout.n_units - 1];
    cr_assert_eq(result.n_funnel, CC_COMPARE_FUNNEL_POINTS);
    cr_assert_float_eq(result.funnel_value, england->value, 1e-12);
    double smallest = INFINITY, largest = 0;
    for (uint32_t a = 0; a < raw.layout.n_areas; a++) {
        const struct cc_compare_row *row = &result.rows[a];
        /* a proportion's funnel x is its denominator */
        cr_assert_float_eq(row->funnel_x, row->denominator, 1e-12, "area %u", a);
        smallest = fmin(smallest, row->funnel_x);
        largest = fmax(largest, row->funnel_x);
    }
    cr_assert_float_eq(result.funnel[0].x, smallest / 2, 1e-9 * smallest);
    cr_assert_float_eq(result.funnel[CC_COMPARE_FUNNEL_POINTS - 1].x, largest * 2, 1e-9 * largest);
    for (uint32_t i = 0; i < result.n_funnel; i++) {
        const struct cc_compare_funnel_point *p = &result.funnel[i];
        if (i > 0)
            cr_assert_gt(p->x, result.funnel[i - 1].x, "x rises");
        struct cc_funnel_point p95, p998;
        cr_assert_eq(cc_stats_funnel_proportion(england->value / 100, p->x, 0.95, 100, &p95), 0);
        cr_assert_eq(cc_stats_funnel_proportion(england->value / 100, p->x, 0.998, 100, &p998), 0);
        cr_assert_float_eq(p->lower95, p95.lower_limit, 1e-12);
        cr_assert_float_eq(p->upper95, p95.upper_limit, 1e-12);
        cr_assert_float_eq(p->lower998, p998.lower_limit, 1e-12);
        cr_assert_float_eq(p->upper998, p998.upper_limit, 1e-12);
        cr_assert(p->lower998 <= p->lower95 && p->lower95 <= england->value &&
                  england->value <= p->upper95 && p->upper95 <= p->upper998);
    }
    cc_compare_result_free(&result);
    cr_assert_null(result.funnel);
    cr_assert_eq(result.n_funnel, 0);

    /* a parent comparison has no single comparator: no curve, but each
     * area still has its limits and its x */
    request.comparator = CC_COMPARE_PARENT;
    struct cc_compare_raw parent;
    run(&request, &parent);
    cr_assert_eq(cc_compare_finish_counts(&parent.layout, &parent.exact, &result), 0);
    cr_assert_eq(result.n_funnel, 0);
    cr_assert_null(result.funnel);
    cr_assert(isnan(result.funnel_value));
    for (uint32_t a = 0; a < parent.layout.n_areas; a++)
        if (result.rows[a].status == CC_COMPARE_OK && isfinite(result.rows[a].comparator_value))
            cr_assert_float_eq(result.rows[a].funnel_x, result.rows[a].denominator, 1e-12);
    cc_compare_result_free(&result);
    cc_compare_raw_free(&parent);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(compare, the_funnel_x_of_a_dsr_is_its_derived_population_and_of_an_isr_its_expected_count)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    int methods[] = {CC_COMPARE_DSR, CC_COMPARE_ISR};
    for (int m = 0; m < 2; m++) {
        struct cc_compare_request request = {
            .numerator = q, .area_level = CC_AREA_REGION, .method = (uint8_t)methods[m]};
        struct cc_compare_raw raw;
        run(&request, &raw);
        struct cc_compare_result result;
        cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
        unsigned with_x = 0;
        for (uint32_t a = 0; a < raw.layout.n_areas; a++) {
            const struct cc_compare_row *row = &result.rows[a];
            if (isnan(row->funnel_x)) {
                cr_assert(isnan(row->funnel95_lower) && isnan(row->funnel95_upper));
                continue;
            }
            with_x++;
            double want = methods[m] == CC_COMPARE_ISR
                              ? row->expected
                              : row->count / (row->value / raw.layout.multiplier);
            cr_assert_float_eq(row->funnel_x, want, 1e-9 * want, "method %d area %u", methods[m],
                               a);
        }
        cr_assert_gt(with_x, 0, "some area has funnel limits");
        cr_assert_eq(result.n_funnel, CC_COMPARE_FUNNEL_POINTS);
        cc_compare_result_free(&result);
        cc_compare_raw_free(&raw);
    }
    cc_query_free(q);
}

/* ---- refusals ------------------------------------------------------------------------------ */

Test(compare, requests_the_comparison_cannot_run_are_refused_with_the_field)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_ICB, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    char err[256];

    request.area_level = CC_AREA_LSOA;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "area_level"), "%s", err);
    request.area_level = CC_AREA_ICB;

    request.method = 9;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "method"), "%s", err);
    request.method = CC_COMPARE_PROPORTION;

    request.denominator = CC_COMPARE_QUERY;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "denominator_query"), "%s", err);
    request.denominator = 0;

    q->measure = CC_MEASURE_POPULATION;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "numerator.measure"), "%s", err);
    q->measure = CC_MEASURE_PERSONS;

    q->dimensions = cc_query_alloc(q, sizeof *q->dimensions);
    q->dimensions[0].kind = CC_DIM_SEX;
    q->n_dimensions = 1;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "numerator.dimensions"), "%s", err);
    q->n_dimensions = 0;

    /* the estimate has male and female only: the denominator is refused */
    q->filters.sex_mask = 1u << CC_SEX_INDETERMINATE;
    request.denominator = CC_COMPARE_ESTIMATE;
    cr_assert_eq(cc_compare_run(version, &request, NULL, NULL, &raw, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "denominator: filters.sex"), "%s", err);
    cc_query_free(q);
}

Test(compare, a_second_query_can_be_the_denominator)
{
    /* persons with a hospital E11 episode among persons with any hospital
     * episode, per ICB */
    struct cc_query *numerator = persons_with(CC_CODE_ICD10, "E11", 1u << CC_SETTING_HOSPITAL);
    struct cc_query *denominator = NULL;
    cr_assert_eq(cc_query_new(&denominator), 0);
    denominator->filters.conditions =
        cc_query_alloc(denominator, sizeof(struct cc_query_condition));
    denominator->filters.n_conditions = 1;
    denominator->filters.conditions[0].setting_mask = 1u << CC_SETTING_HOSPITAL;
    struct cc_compare_request request = {.numerator = numerator,
                                         .area_level = CC_AREA_ICB,
                                         .denominator = CC_COMPARE_QUERY,
                                         .denominator_query = denominator,
                                         .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    run(&request, &raw);
    check_against_oracle(
        &raw,
        "SELECT %s, 0, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE r.setting = 2"
        " AND r.code LIKE 'E11%%' AND p.region IS NOT NULL GROUP BY 1",
        "SELECT %s, 0, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id WHERE r.setting = 2"
        " AND p.region IS NOT NULL GROUP BY 1",
        proportion_statistic);
    cc_compare_raw_free(&raw);
    cc_query_free(numerator);
    cc_query_free(denominator);
}

/* ---- the wire form ------------------------------------------------------------------------ */

Test(compare, a_json_request_decodes_to_the_same_comparison)
{
    static const char text[] =
        "{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\", \"filters\": "
        "{\"conditions\": [{\"codes\": [\"44054006\"], \"system\": \"snomed\", \"settings\": "
        "[\"gp\"]}]}}, \"level\": \"lad\", \"comparator\": \"parent\", \"method\": \"proportion\","
        " \"multiplier\": 1000}";
    struct cc_compare_decoded decoded;
    char err[256] = "";
    cr_assert_eq(cc_compare_decode_json(text, strlen(text), NULL, &decoded, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(decoded.request.area_level, CC_AREA_LAD);
    cr_assert_eq(decoded.request.comparator, CC_COMPARE_PARENT);
    cr_assert_eq(decoded.request.method, CC_COMPARE_PROPORTION);
    cr_assert_eq(decoded.request.multiplier, 1000.0);
    cr_assert_eq(decoded.request.denominator, 0, "registered by default");

    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    cr_assert(cc_query_equal(decoded.request.numerator, q));
    struct cc_compare_request by_hand = {.numerator = q,
                                         .area_level = CC_AREA_LAD,
                                         .comparator = CC_COMPARE_PARENT,
                                         .method = CC_COMPARE_PROPORTION,
                                         .multiplier = 1000};
    struct cc_compare_raw from_wire, from_c;
    run(&decoded.request, &from_wire);
    run(&by_hand, &from_c);
    cr_assert_eq(from_wire.layout.n_units, from_c.layout.n_units);
    for (uint32_t u = 0; u < from_c.layout.n_units; u++) {
        cr_assert_eq(from_wire.exact.count[u], from_c.exact.count[u]);
        cr_assert_eq(from_wire.exact.denominator[u], from_c.exact.denominator[u]);
    }
    cc_compare_raw_free(&from_wire);
    cc_compare_raw_free(&from_c);
    cc_compare_decoded_free(&decoded);
    cc_query_free(q);
}

Test(compare, a_msgpack_request_with_a_query_denominator_decodes)
{
    struct cc_query *numerator = persons_with(CC_CODE_ICD10, "E11", 1u << CC_SETTING_HOSPITAL);
    struct cc_query *denominator = persons_with(CC_CODE_ICD10, "E1", 0);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 5);
    msgpack_pack_str_with_body(&packer, "v", 1);
    msgpack_pack_int(&packer, 1);
    msgpack_pack_str_with_body(&packer, "numerator", 9);
    cr_assert_eq(cc_query_pack(numerator, &packer), 0);
    msgpack_pack_str_with_body(&packer, "denominator", 11);
    cr_assert_eq(cc_query_pack(denominator, &packer), 0);
    msgpack_pack_str_with_body(&packer, "level", 5);
    msgpack_pack_str_with_body(&packer, "icb", 3);
    msgpack_pack_str_with_body(&packer, "method", 6);
    msgpack_pack_str_with_body(&packer, "dsr", 3);

    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    cr_assert_eq(msgpack_unpack_next(&unpacked, buffer.data, buffer.size, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    struct cc_compare_decoded decoded;
    char err[256] = "";
    cr_assert_eq(cc_compare_decode_object(&unpacked.data, NULL, &decoded, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(decoded.request.denominator, CC_COMPARE_QUERY);
    cr_assert(cc_query_equal(decoded.request.denominator_query, denominator));
    cr_assert(cc_query_equal(decoded.request.numerator, numerator));
    cr_assert_eq(decoded.request.method, CC_COMPARE_DSR);
    cc_compare_decoded_free(&decoded);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
    cc_query_free(numerator);
    cc_query_free(denominator);
}

Test(compare, bad_requests_are_refused_with_the_field_and_reason)
{
    static const struct {
        const char *text;
        int rc;
        const char *error;
    } cases[] = {
        {"{\"v\": 1, \"level\": \"icb\", \"method\": \"dsr\"}", CC_EPARSE, "numerator: missing"},
        {"{\"v\": 2, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"icb\","
         " \"method\": \"dsr\"}",
         CC_EUNSUPPORTED, "v: only version 1"},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"lsoa\","
         " \"method\": \"dsr\"}",
         CC_EPARSE, "level: unknown name \"lsoa\""},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"icb\","
         " \"method\": \"mean\"}",
         CC_EPARSE, "method: unknown name"},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"icb\","
         " \"method\": \"dsr\", \"colour\": \"red\"}",
         CC_EPARSE, "colour: unknown key"},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"icb\","
         " \"method\": \"dsr\", \"multiplier\": -5}",
         CC_EPARSE, "multiplier: must be"},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"people\"}, \"level\": \"icb\","
         " \"method\": \"dsr\"}",
         CC_EPARSE, "numerator.measure"},
        {"{\"v\": 1, \"numerator\": {\"v\": 1, \"measure\": \"persons\"}, \"level\": \"icb\"}",
         CC_EPARSE, "method: missing"},
        {"[1, 2]", CC_EPARSE, "request: must be a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct cc_compare_decoded decoded;
        char err[256] = "";
        int rc = cc_compare_decode_json(cases[i].text, strlen(cases[i].text), NULL, &decoded, err,
                                        sizeof err);
        cr_expect_eq(rc, cases[i].rc, "case %zu: rc %d (%s)", i, rc, err);
        cr_expect(strstr(err, cases[i].error), "case %zu: \"%s\" lacks \"%s\"", i, err,
                  cases[i].error);
        cr_expect_null(decoded.numerator, "case %zu leaves nothing to free", i);
    }
}

/* ---- the planted effects of the generated data --------------------------------------------------
 */

/*
 * 24,000 patients: at this size the planted ICB (one of the six most
 * populous, about 3% of patients) holds some 700 registered persons, enough
 * for a 1.6-fold prevalence to clear the 95% interval, and the generation,
 * ingest and queries take a few seconds (about 20 s under ASan).
 */
#define PLANTED_PATIENTS 24000

static char planted_root[64];
static cc_store *planted_store;
static struct cc_dataversion *planted_version;
static char planted_icb[CC_AREA_CODE_BYTES], planted_region[CC_AREA_CODE_BYTES];

static void planted_init(void)
{
    gsl_set_error_handler_off();
    cc_testfs_make_dir(planted_root, sizeof planted_root, "compare");
    char feeds[128], data[128], key[128], path[256], err[512];
    snprintf(feeds, sizeof feeds, "%s/feeds", planted_root);
    snprintf(data, sizeof data, "%s/data", planted_root);
    snprintf(key, sizeof key, "%s/key", planted_root);

    struct cc_gen_options gen = {
        .seed = 1, .n_patients = PLANTED_PATIENTS, .out_dir = feeds, .n_threads = 2};
    cr_assert_eq(cc_gen_run(&gen, NULL), 0);
    cr_assert_eq(cc_pseudo_keygen(key), 0);

    static char paths[CC_N_FEED_KINDS][256];
    struct cc_ingest_options ingest = {.data_dir = data, .key_path = key};
    for (int kind = 0; kind < CC_N_FEED_KINDS; kind++) {
        snprintf(paths[kind], sizeof paths[kind], "%s/%s", feeds, cc_feed_kind_file(kind));
        ingest.files[ingest.n_files].kind = kind;
        ingest.files[ingest.n_files].path = paths[kind];
        ingest.n_files++;
    }
    static struct cc_ingest_report report;
    cr_assert_eq(cc_ingest_run(&ingest, &report, err, sizeof err), 0, "%s", err);

    uint64_t store_version = 0;
    cr_assert_eq(cc_datadir_load_current(data, key, CC_STORE_QUERY_ONLY, &planted_store,
                                         &store_version, err, sizeof err),
                 0, "%s", err);
    sqlite3 *state = NULL;
    cc_optout *optouts = NULL;
    cr_assert_eq(cc_db_open(data, 0, &state, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_optout_attach(state, &optouts), 0);
    cr_assert_eq(cc_dataversion_publish(planted_store, store_version, optouts,
                                        cc_day_from_ymd(2025, 12, 31), &planted_version),
                 0);
    cr_assert_gt(cc_dataversion_n_excluded(planted_version), 0, "the opt-outs are applied");
    cc_optout_detach(optouts);
    cr_assert_eq(cc_db_close(state), 0);

    /* the planted areas, as the generator's manifest names them */
    snprintf(path, sizeof path, "%s/manifest.json", feeds);
    json_error_t json_error;
    json_t *manifest = json_load_file(path, 0, &json_error);
    cr_assert(manifest, "%s", json_error.text);
    json_t *effects = json_object_get(manifest, "planted_effects");
    for (size_t i = 0; i < json_array_size(effects); i++) {
        json_t *effect = json_array_get(effects, i);
        const char *kind = json_string_value(json_object_get(effect, "effect"));
        const char *code = json_string_value(json_object_get(effect, "area_code"));
        cr_assert(kind && code);
        if (!strcmp(kind, "prevalence"))
            snprintf(planted_icb, sizeof planted_icb, "%s", code);
        else if (!strcmp(kind, "hospital_admission_rate"))
            snprintf(planted_region, sizeof planted_region, "%s", code);
    }
    json_decref(manifest);
    cr_assert(planted_icb[0] && planted_region[0], "the manifest names both planted areas");
}

static void planted_fini(void)
{
    cc_dataversion_release(planted_version);
    cc_store_free(planted_store);
    cc_testfs_remove_tree(planted_root);
}

TestSuite(planted, .init = planted_init, .fini = planted_fini);

static void planted_run(const struct cc_compare_request *request, struct cc_compare_raw *raw,
                        struct cc_compare_result *result)
{
    char err[256] = "";
    struct cc_exec_options options = {.n_threads = 2,
                                      .reference_day = cc_day_from_ymd(2025, 6, 30)};
    cr_assert_eq(cc_compare_run(planted_version, request, NULL, &options, raw, err, sizeof err), 0,
                 "%s", err);
    int rc = cc_compare_finish_counts(&raw->layout, &raw->exact, result);
    cr_assert_eq(rc, 0, "finish: %s", cc_strerror(rc));
}

Test(planted, the_planted_icb_has_significantly_higher_diabetes_prevalence, .timeout = 600)
{
    struct cc_query *q = persons_with(CC_CODE_SNOMED, DIABETES, 1u << CC_SETTING_GP);
    struct cc_compare_request request = {
        .numerator = q, .area_level = CC_AREA_ICB, .method = CC_COMPARE_PROPORTION};
    struct cc_compare_raw raw;
    struct cc_compare_result result;
    planted_run(&request, &raw, &result);
    cr_assert_eq(raw.layout.n_areas, 42);

    uint32_t planted = unit_of(&raw.layout, planted_icb);
    const struct cc_compare_row *row = &result.rows[planted];
    cr_log_info("planted ICB: %.2f%% [%.2f, %.2f], England %.2f%%", row->value, row->ci95.lower,
                row->ci95.upper, row->comparator_value);
    cr_assert_eq(row->status, CC_COMPARE_OK);
    cr_assert_eq(row->comparison95, CC_STATS_HIGHER);
    cr_assert_gt(row->value, row->funnel95_upper, "above the 95% funnel limit");

    /*
     * The other ICBs differ from England only by chance (deprivation is
     * centred within each district), so about 5% of them, 2 of 41, should be
     * flagged at 95%. A true-null count above 10 (a quarter) has a binomial
     * probability below 1e-4; England itself is lifted by the planted ICB by
     * only about 2%, far inside every other ICB's interval.
     */
    int flagged = 0;
    for (uint32_t a = 0; a < raw.layout.n_areas; a++)
        if (a != planted && result.rows[a].comparison95 != CC_STATS_SIMILAR)
            flagged++;
    cr_log_info("%d of 41 other ICBs flagged at 95%%", flagged);
    cr_assert_lt(flagged, 41 / 4, "%d of 41 other ICBs flagged", flagged);

    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}

Test(planted, the_planted_region_has_a_significantly_lower_admission_rate, .timeout = 600)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    q->measure = CC_MEASURE_EVENTS;
    q->filters.setting_mask = 1u << CC_SETTING_HOSPITAL;
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_REGION,
                                         .method = CC_COMPARE_CRUDE_RATE,
                                         .multiplier = 1000};
    struct cc_compare_raw raw;
    struct cc_compare_result result;
    planted_run(&request, &raw, &result);
    cr_assert_eq(raw.layout.n_areas, 9);
    const struct cc_compare_row *row = &result.rows[unit_of(&raw.layout, planted_region)];
    cr_log_info("planted region: %.1f per 1,000 [%.1f, %.1f], England %.1f", row->value,
                row->ci95.lower, row->ci95.upper, row->comparator_value);
    cr_assert_eq(row->status, CC_COMPARE_OK);
    cr_assert_eq(row->comparison95, CC_STATS_LOWER);
    cr_assert_eq(row->comparison998, CC_STATS_LOWER);
    cr_assert_lt(row->value, row->funnel998_lower, "below the 99.8% funnel limit");
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);

    /* age-standardised, the region is still lower */
    request.method = CC_COMPARE_DSR;
    planted_run(&request, &raw, &result);
    row = &result.rows[unit_of(&raw.layout, planted_region)];
    cr_assert_eq(row->comparison95, CC_STATS_LOWER);
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_query_free(q);
}


/* ---- intervals that include disclosure control's error ------------------------------------ */

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "cc_policy.h"
#include "cc_release.h"
#include "cc_release_internal.h"

/* Coverage of the true proportion by the released intervals, over draws
 * of the count (binomial, n persons, proportion p), each released as the
 * server releases it (both noise layers and rounding to 5, fresh cell
 * keys): plain (ci95) and with the noise (ci95_noise). */
static void coverage(double p, unsigned n, unsigned trials, double *plain, double *noise)
{
    struct cc_policy policy;
    cc_policy_default(&policy);
    struct cc_release_tables tables;
    cc_release_tables_build(&policy, 0, &tables);
    struct cc_compare_layout layout = {.method = CC_COMPARE_PROPORTION,
                                       .multiplier = 100,
                                       .n_areas = 1,
                                       .n_units = 2,
                                       .n_bands = 1};
    struct cc_compare_unit units[2] = {{.comparator = 1}, {.comparator = CC_COMPARE_NO_UNIT}};
    layout.units = units;
    gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
    gsl_rng_set(rng, 20261202 + n);
    unsigned answered = 0, plain_covers = 0, noise_covers = 0;
    for (unsigned t = 0; t < trials; t++) {
        struct cc_released_count count[2], denominator[2];
        uint64_t x = gsl_ran_binomial(rng, p, n), england = gsl_ran_binomial(rng, p, 100000);
        uint64_t seed = gsl_rng_get(rng);
        count[0] = cc_release_protect(&policy, &tables, seed, 1, x, (uint32_t)gsl_rng_get(rng));
        denominator[0] =
            cc_release_protect(&policy, &tables, seed, 3, n, (uint32_t)gsl_rng_get(rng));
        count[1] =
            cc_release_protect(&policy, &tables, seed, 1, england, (uint32_t)gsl_rng_get(rng));
        denominator[1] =
            cc_release_protect(&policy, &tables, seed, 3, 100000, (uint32_t)gsl_rng_get(rng));
        struct cc_compare_released released = {.n_units = 2,
                                               .n_bands = 1,
                                               .noise_variance =
                                                   cc_release_noise_variance(&policy),
                                               .rounding_base = policy.rounding_base,
                                               .count = count,
                                               .denominator = denominator};
        struct cc_compare_result result;
        cr_assert_eq(cc_compare_finish(&layout, &released, &result), 0);
        const struct cc_compare_row *row = &result.rows[0];
        if (row->status == CC_COMPARE_OK) {
            answered++;
            plain_covers += row->ci95.lower <= 100 * p && 100 * p <= row->ci95.upper;
            noise_covers += row->ci95_noise.lower <= 100 * p && 100 * p <= row->ci95_noise.upper;
            cr_assert_leq(row->ci95_noise.lower, row->ci95.lower);
            cr_assert_geq(row->ci95_noise.upper, row->ci95.upper);
            cr_assert_gt(row->ci95_noise.upper - row->ci95_noise.lower,
                         row->ci95.upper - row->ci95.lower, "wider with the noise");
        }
        cc_compare_result_free(&result);
    }
    gsl_rng_free(rng);
    cr_assert_geq(answered, trials * 98 / 100, "p %g n %u: %u answered", p, n, answered);
    *plain = (double)plain_covers / answered;
    *noise = (double)noise_covers / answered;
    cr_log_info("p %.2f n %u: coverage plain %.3f, with the noise %.3f", p, n, *plain, *noise);
}

/* The plain interval of released counts covers too rarely where the counts
 * are small (it knows nothing of the noise); the interval with the noise
 * covers at least 95% of the time at every size tried. */
Test(compare, the_interval_with_the_noise_covers_and_the_plain_one_does_not)
{
    static const struct {
        double p;
        unsigned n;
    } cases[] = {{0.10, 200}, {0.06, 400}, {0.25, 200}, {0.10, 2000}, {0.03, 5000}};
    double plain, noise, worst_plain = 1;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        coverage(cases[k].p, cases[k].n, 3000, &plain, &noise);
        cr_assert_geq(noise, 0.945, "p %g n %u: the interval with the noise covers %.3f",
                      cases[k].p, cases[k].n, noise);
        if (plain < worst_plain)
            worst_plain = plain;
    }
    cr_assert_lt(worst_plain, 0.93, "the plain interval under-covers somewhere: %.3f",
                 worst_plain);
}

/* Exact counts (no disclosure error) leave the interval as it is. */
Test(compare, without_disclosure_error_the_interval_is_unchanged)
{
    struct cc_compare_layout layout = {.method = CC_COMPARE_CRUDE_RATE,
                                       .multiplier = 1000,
                                       .n_areas = 1,
                                       .n_units = 2,
                                       .n_bands = 1};
    struct cc_compare_unit units[2] = {{.comparator = 1}, {.comparator = CC_COMPARE_NO_UNIT}};
    layout.units = units;
    struct cc_compare_counts counts;
    cr_assert_eq(cc_compare_counts_new(&layout, &counts), 0);
    counts.count[0] = 40, counts.denominator[0] = 5000;
    counts.count[1] = 900, counts.denominator[1] = 100000;
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish_counts(&layout, &counts, &result), 0);
    cr_assert_eq(result.rows[0].ci95_noise.lower, result.rows[0].ci95.lower);
    cr_assert_eq(result.rows[0].ci95_noise.upper, result.rows[0].ci95.upper);
    cc_compare_result_free(&result);
    cc_compare_counts_free(&counts);
}
