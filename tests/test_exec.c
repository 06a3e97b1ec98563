/*
 * Tests for the query engine (queries/cc_exec*.c, internal/cc_exec.h)
 * against an independent oracle: the same linked records loaded into
 * SQLite, the same counts computed in SQL, compared cell by cell (before
 * disclosure control).
 *
 * The store is random but reproducible (a fixed seed): persons over a small
 * area hierarchy, records in every setting with codes from a small
 * vocabulary (so prefixes, shared codes and several codes per episode all
 * happen), and a random tenth of persons opted out.
 */
#include <criterion/criterion.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_codelist.h"
#include "cc_dataversion.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_fixture.h"
#include "cc_model.h"
#include "cc_query.h"
#include "cc_store.h"

#define N_PERSONS 4000
#define N_RECORDS 24000

static struct cc_fixture fixture;
static cc_store *store;
static struct cc_dataversion *version;
static sqlite3 *db;

static const struct {
    uint8_t system;
    const char *text;
} vocabulary[] = {
    {CC_CODE_ICD10, "E11"},  {CC_CODE_ICD10, "E119"}, {CC_CODE_ICD10, "E110"},
    {CC_CODE_ICD10, "I10"},  {CC_CODE_ICD10, "J45"},  {CC_CODE_ICD10, "J459"},
    {CC_CODE_ICD10, "E10"},  {CC_CODE_OPCS4, "K40"},  {CC_CODE_OPCS4, "K401"},
    {CC_CODE_OPCS4, "W37"},  {CC_CODE_SNOMED, "44054006"}, {CC_CODE_SNOMED, "38341003"},
    {CC_CODE_SNOMED, "195967001"},
};
#define N_VOCAB (sizeof vocabulary / sizeof *vocabulary)

/* 2 regions, 3 ICBs, 6 districts, 24 LSOAs, 30 practices; one person in 50
 * without an LSOA, one in 20 without a practice, one in 10 opted out. */
static void fixture_init(void)
{
    static const uint8_t sexes[] = {1, 2, 1, 2, 1, 2, 1, 2, 9, 0};
    static const struct cc_fixture_spec spec = {
        .seed = 0x9e3779b97f4a7c15ULL,
        .n_lsoa = 24, .n_lad = 6, .n_icb = 3, .n_region = 2,
        .lsoa_name = "lsoa", .lad_name = "lad", .icb_name = "icb", .region_name = "region",
        .population_min = 10, .population_span = 90,
        .n_practices = 30,
        .n_persons = N_PERSONS,
        .first_birth_year = 1925, .birth_years = 98,
        .sexes = sexes, .n_sexes = sizeof sexes,
        .no_lsoa_one_in = 50, .no_practice_one_in = 20, .excluded_one_in = 10,
    };
    struct cc_fixture *f = &fixture;
    cc_fixture_begin(f, &spec);
    /* Records in every setting with codes from a small vocabulary. */
    for (uint32_t r = 0; r < N_RECORDS; r++) {
        uint32_t person = cc_fixture_below(f, N_PERSONS);
        uint8_t setting = (uint8_t)(1 + cc_fixture_below(f, 3));
        cc_day date = cc_day_from_ymd(2019 + (int)cc_fixture_below(f, 7), 1 + (int)cc_fixture_below(f, 12),
                                      1 + (int)cc_fixture_below(f, 28));
        struct cc_code_input codes[4];
        size_t n_codes = 0;
        if (setting == CC_SETTING_HOSPITAL) {
            /* 1-3 diagnoses and maybe a procedure, no repeats */
            size_t n_diag = 1 + cc_fixture_below(f, 3);
            for (size_t k = 0; k < n_diag; k++) {
                const char *text = vocabulary[cc_fixture_below(f, 7)].text;
                int dup = 0;
                for (size_t j = 0; j < n_codes; j++)
                    dup |= !strcmp(codes[j].text, text);
                if (dup)
                    continue;
                /* the role is read before the index moves on (in one
                 * statement the two were unsequenced, and every diagnosis
                 * came out secondary) */
                uint8_t role = n_codes ? CC_ROLE_SECONDARY : CC_ROLE_PRIMARY;
                codes[n_codes++] = (struct cc_code_input){CC_CODE_ICD10, role, text};
            }
            if (cc_fixture_below(f, 3) == 0)
                codes[n_codes++] = (struct cc_code_input){
                    CC_CODE_OPCS4, CC_ROLE_PROCEDURE, vocabulary[7 + cc_fixture_below(f, 3)].text};
        } else {
            codes[n_codes++] = (struct cc_code_input){CC_CODE_SNOMED, CC_ROLE_PRIMARY,
                                                      vocabulary[10 + cc_fixture_below(f, 3)].text};
        }
        cc_fixture_record(f, person, setting, date, codes, n_codes);
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

TestSuite(exec, .init = fixture_init, .fini = fixture_fini);

/* ---- query construction ------------------------------------------------------------ */

static struct cc_query *q_new(int measure)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    q->measure = (uint8_t)measure;
    q->dimensions = cc_query_alloc(q, CC_QUERY_DIMENSIONS_CAP * sizeof *q->dimensions);
    q->filters.conditions = cc_query_alloc(q, 8 * sizeof *q->filters.conditions);
    cr_assert(q->dimensions && q->filters.conditions);
    return q;
}

static void q_dim(struct cc_query *q, int kind, int banding)
{
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    d->kind = (uint8_t)kind;
    d->age_banding = (uint8_t)banding;
}

/* Adds a condition with codes given as a space-separated list. */
static struct cc_query_condition *q_cond(struct cc_query *q, int system, const char *codes,
                                         unsigned setting_mask, int exclude)
{
    struct cc_query_condition *c = &q->filters.conditions[q->filters.n_conditions++];
    c->system = (uint8_t)system;
    c->setting_mask = (uint8_t)setting_mask;
    c->exclude = exclude;
    if (codes) {
        c->codes = cc_query_alloc(q, 8 * sizeof *c->codes);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", codes);
        for (char *t = strtok(buf, " "); t; t = strtok(NULL, " "))
            snprintf(c->codes[c->n_codes++].text, CC_CODE_TEXT_BYTES, "%s", t);
    }
    return c;
}

static void q_months(struct cc_query_months *m, int y1, int m1, int y2, int m2)
{
    m->present = true;
    m->from = cc_query_month(y1, m1);
    m->to = cc_query_month(y2, m2);
}

static void q_areas(struct cc_query *q, int level, const char *code1, const char *code2)
{
    q->filters.areas.level = (uint8_t)level;
    q->filters.areas.codes = cc_query_alloc(q, 2 * sizeof *q->filters.areas.codes);
    snprintf(q->filters.areas.codes[0], CC_AREA_CODE_BYTES, "%s", code1);
    q->filters.areas.n_codes = 1;
    if (code2) {
        snprintf(q->filters.areas.codes[1], CC_AREA_CODE_BYTES, "%s", code2);
        q->filters.areas.n_codes = 2;
    }
}

#define S(setting) (1u << (setting))

/* ---- comparison -------------------------------------------------------------------------- */

/* Runs q on the engine and sql on the oracle (rows: one label column per
 * dimension, then the count) and compares every cell both ways. Both sides
 * must find something (two empty answers agree and prove nothing). Returns
 * the engine's total, so tests can also check for more. */
static uint64_t compare_with(struct cc_query *q, const cc_codelists *lists, const char *sql)
{
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), lists, err, sizeof err), 0, "bind: %s",
                 err);
    struct cc_raw_result res;
    struct cc_exec_options opt = {.n_threads = 2, .reference_day = cc_day_from_ymd(2026, 1, 1)};
    cr_assert_eq(cc_exec_run(version, q, &opt, &res, err, sizeof err), 0, "exec: %s", err);

    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    uint64_t matched = 0, total = 0, n_rows = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        n_rows++;
        /* find the engine's cell with these labels */
        uint64_t expected = (uint64_t)sqlite3_column_int64(st, (int)res.n_dimensions);
        int found = 0;
        for (uint64_t cell = 0; cell < res.n_cells && !found; cell++) {
            int same = 1;
            for (uint32_t d = 0; d < res.n_dimensions && same; d++) {
                char label[64];
                cc_raw_result_label(&res, d, cc_raw_result_coordinate(&res, cell, d), label,
                                    sizeof label);
                const char *want = (const char *)sqlite3_column_text(st, (int)d);
                same = want && !strcmp(label, want);
            }
            if (same) {
                found = 1;
                cr_expect_eq(res.count[cell], expected, "cell %llu: engine %llu, SQL %llu (%s)",
                             (unsigned long long)cell, (unsigned long long)res.count[cell],
                             (unsigned long long)expected, sql);
            }
        }
        cr_expect(found, "SQL row with count %llu has no engine cell (%s)",
                  (unsigned long long)expected, sql);
        matched += expected;
    }
    cr_assert_eq(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    for (uint64_t cell = 0; cell < res.n_cells; cell++)
        total += res.count[cell];
    cr_expect_eq(total, matched, "engine total %llu, SQL total %llu (%s)",
                 (unsigned long long)total, (unsigned long long)matched, sql);
    cr_assert_gt(n_rows, 0, "the oracle found no rows (%s)", sql);
    cr_assert_gt(matched, 0, "the oracle counted nothing (%s)", sql);
    cr_assert_gt(total, 0, "the engine counted nothing (%s)", sql);
    cc_raw_result_free(&res);
    cc_query_free(q);
    return total;
}

static uint64_t compare(struct cc_query *q, const char *sql)
{
    return compare_with(q, NULL, sql);
}

/* SQL for an age band label from an age expression. */
#define AGE_AT(ref) \
    "(CAST(strftime('%Y','" ref "') AS INT) - CAST(strftime('%Y', p.dob) AS INT) - " \
    "(strftime('%m-%d','" ref "') < strftime('%m-%d', p.dob)))"
#define AGE_AT_COL(col) \
    "(CAST(strftime('%Y'," col ") AS INT) - CAST(strftime('%Y', p.dob) AS INT) - " \
    "(strftime('%m-%d'," col ") < strftime('%m-%d', p.dob)))"
#define BAND5(age) \
    "(CASE WHEN " age " >= 90 THEN '90+' ELSE ((" age ")/5*5) || '-' || ((" age ")/5*5+4) END)"
#define BAND10(age) \
    "(CASE WHEN " age " >= 90 THEN '90+' ELSE ((" age ")/10*10) || '-' || ((" age ")/10*10+9) END)"
#define SEXLABEL                                                                                   \
    "(CASE p.sex WHEN 0 THEN 'not_known' WHEN 1 THEN 'male' WHEN 2 THEN 'female' WHEN 9 THEN "    \
    "'indeterminate' END)"
#define SETTINGLABEL "(CASE r.setting WHEN 1 THEN 'gp' WHEN 2 THEN 'hospital' ELSE 'community' END)"

/* ---- the tests ----------------------------------------------------------------------------- */

Test(exec, persons_with_an_icd10_prefix_per_region)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_REGION, 0);
    q_cond(q, CC_CODE_ICD10, "E11", 0, 0);
    uint64_t total = compare(q, "SELECT p.region, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id"
                                " JOIN code c ON c.record = r.id WHERE c.system = 2 AND c.text LIKE "
                                "'E11%' AND p.region IS NOT NULL GROUP BY 1");
    cr_assert_gt(total, 100, "the query finds persons");
}

Test(exec, snomed_codes_match_exactly_and_lists_are_ors)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_ICB, 0);
    q_cond(q, CC_CODE_SNOMED, "44054006 195967001", 0, 0);
    compare(q, "SELECT p.icb, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id JOIN code c ON"
               " c.record = r.id WHERE c.system = 1 AND c.text IN ('44054006','195967001') AND"
               " p.icb IS NOT NULL GROUP BY 1");
}

Test(exec, hospital_episodes_in_a_year_per_lad_age_band_and_sex)
{
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_dim(q, CC_DIM_LAD, 0);
    q_dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_5Y);
    q_dim(q, CC_DIM_SEX, 0);
    q->filters.setting_mask = S(CC_SETTING_HOSPITAL);
    q_months(&q->filters.date_range, 2023, 1, 2023, 12);
    uint64_t total = compare(
        q, "SELECT p.lad, " BAND5(AGE_AT_COL("r.date")) ", " SEXLABEL ", COUNT(*) FROM p JOIN r ON "
           "r.person = p.id WHERE r.setting = 2 AND r.date BETWEEN '2023-01-01' AND '2023-12-31' "
           "AND p.lad IS NOT NULL AND " AGE_AT_COL("r.date") " >= 0 GROUP BY 1, 2, 3");
    cr_assert_gt(total, 300);
}

Test(exec, persons_with_a_condition_in_gp_and_in_hospital)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_REGION, 0);
    q_cond(q, CC_CODE_SNOMED, "44054006", S(CC_SETTING_GP), 0);
    q_cond(q, CC_CODE_ICD10, "E11", S(CC_SETTING_HOSPITAL), 0);
    uint64_t total = compare(
        q, "SELECT p.region, COUNT(*) FROM p WHERE p.region IS NOT NULL AND EXISTS (SELECT 1 "
           "FROM record r JOIN code c ON c.record = r.id WHERE r.person = p.id AND r.setting = 1 AND "
           "c.text = '44054006') AND EXISTS (SELECT 1 FROM record r JOIN code c ON c.record = r.id "
           "WHERE r.person = p.id AND r.setting = 2 AND c.system = 2 AND c.text LIKE 'E11%') "
           "GROUP BY 1");
    cr_assert_gt(total, 10);
}

Test(exec, persons_with_a_but_not_b)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_SEX, 0);
    q_cond(q, CC_CODE_ICD10, "I10", 0, 0);
    q_cond(q, CC_CODE_ICD10, "E11", 0, 1);
    compare(q, "SELECT " SEXLABEL ", COUNT(*) FROM p WHERE EXISTS (SELECT 1 FROM"
               " record r JOIN code c ON c.record = r.id WHERE r.person = p.id AND c.system = 2 AND c.text "
               "LIKE 'I10%') AND NOT EXISTS (SELECT 1 FROM record r JOIN code c ON c.record = r.id WHERE "
               "r.person = p.id AND c.system = 2 AND c.text LIKE 'E11%') GROUP BY 1");
}

Test(exec, persons_by_10_year_band_at_the_reference_date_with_age_and_sex_filters)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    q->filters.age.present = true;
    q->filters.age.min_years = 18;
    q->filters.age.max_years = 74;
    q->filters.sex_mask = 1u << CC_SEX_FEMALE;
    q->has_as_of = true;
    q->as_of = cc_query_month(2025, 1);
    compare(q, "SELECT " BAND10(AGE_AT("2025-01-01")) ", COUNT(*) FROM p WHERE p.sex = 2 AND "
               AGE_AT("2025-01-01") " BETWEEN 18 AND 74 GROUP BY 1");
}

Test(exec, events_with_a_code_count_each_record_once)
{
    /* E11 is a prefix of E110 and E119: an episode with two of them is one event */
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_dim(q, CC_DIM_YEAR, 0);
    q_cond(q, CC_CODE_ICD10, "E11", 0, 0);
    q->events_of = 0;
    q_months(&q->filters.date_range, 2020, 1, 2024, 12);
    compare(q, "SELECT strftime('%Y', r.date), COUNT(DISTINCT r.id) FROM p JOIN r ON r.person = "
               "p.id JOIN code c ON c.record = r.id WHERE c.system = 2 AND c.text LIKE 'E11%' AND "
               "r.date BETWEEN '2020-01-01' AND '2024-12-31' GROUP BY 1");
}

Test(exec, persons_per_setting_and_quarter_count_once_per_cell)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_SETTING, 0);
    q_dim(q, CC_DIM_QUARTER, 0);
    q_months(&q->filters.date_range, 2022, 1, 2022, 12);
    compare(q, "SELECT " SETTINGLABEL ", strftime('%Y', r.date) || '-Q' || ((CAST(strftime('%m', "
               "r.date) AS INT) + 2) / 3), COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id "
               "WHERE r.date BETWEEN '2022-01-01' AND '2022-12-31' GROUP BY 1, 2");
}

Test(exec, events_per_month_in_community_within_an_area_list)
{
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_dim(q, CC_DIM_MONTH, 0);
    q->filters.setting_mask = S(CC_SETTING_COMMUNITY);
    q_months(&q->filters.date_range, 2021, 3, 2021, 8);
    q_areas(q, CC_AREA_LAD, "E06000001", "E06000004");
    compare(q, "SELECT strftime('%Y-%m', r.date), COUNT(*) FROM p JOIN r ON r.person = p.id WHERE "
               "r.setting = 3 AND r.date BETWEEN '2021-03-01' AND '2021-08-31' AND p.lad IN "
               "('E06000001','E06000004') GROUP BY 1");
}

Test(exec, persons_per_practice_with_a_procedure)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_PRACTICE, 0);
    q_cond(q, CC_CODE_OPCS4, "K40", 0, 0);
    compare(q, "SELECT p.practice, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id JOIN code "
               "c ON c.record = r.id WHERE c.system = 3 AND c.text LIKE 'K40%' AND p.practice IS "
               "NOT NULL GROUP BY 1");
}

Test(exec, condition_restricted_to_a_date_range_and_a_role)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    struct cc_query_condition *c = q_cond(q, CC_CODE_ICD10, "J45", 0, 0);
    c->role_mask = 1u << CC_ROLE_PRIMARY;
    q_months(&c->date_range, 2020, 6, 2021, 5);
    compare(q, "SELECT COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id JOIN code c ON "
               "c.record = r.id WHERE c.system = 2 AND c.text LIKE 'J45%' AND c.role = 0 AND "
               "r.date BETWEEN '2020-06-01' AND '2021-05-31'");
}

Test(exec, events_within_n_days_of_a_first_diagnosis)
{
    /* hospital episodes within 0..365 days after the first GP record of 44054006 */
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_cond(q, CC_CODE_SNOMED, "44054006", S(CC_SETTING_GP), 0);
    struct cc_query_condition *c = q_cond(q, 0, NULL, S(CC_SETTING_HOSPITAL), 0);
    c->system = 0;
    c->anchor.present = true;
    c->anchor.condition = 0;
    c->anchor.from_days = 0;
    c->anchor.to_days = 365;
    q->events_of = 1;
    uint64_t total = compare(
        q, "WITH first AS (SELECT r.person, MIN(r.date) AS d FROM r JOIN code c ON c.record = r.id"
           " WHERE r.setting = 1 AND c.text = '44054006' GROUP BY r.person) "
           "SELECT COUNT(*) FROM r JOIN first f ON f.person = r.person WHERE r.setting = 2 AND "
           "julianday(r.date) - julianday(f.d) BETWEEN 0 AND 365");
    cr_assert_gt(total, 0);
}

Test(exec, registered_population_and_estimates_per_icb_and_sex)
{
    struct cc_query *q = q_new(CC_MEASURE_POPULATION);
    q->population_source = CC_POPULATION_REGISTERED;
    q_dim(q, CC_DIM_ICB, 0);
    q_dim(q, CC_DIM_SEX, 0);
    compare(q, "SELECT p.icb, " SEXLABEL ", COUNT(*) FROM p WHERE p.registered = 1 AND p.icb IS NOT"
               " NULL GROUP BY 1, 2");
    q = q_new(CC_MEASURE_POPULATION);
    q->population_source = CC_POPULATION_ESTIMATE;
    q_dim(q, CC_DIM_REGION, 0);
    q_dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    compare(q, "SELECT region, CASE WHEN band >= 18 THEN '90+' ELSE (band/2*10) || '-' || "
               "(band/2*10+9) END, SUM(n) FROM pop GROUP BY 1, 2");
}

Test(exec, opted_out_persons_count_nowhere)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(version, q, NULL, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.count[0],
                 cc_store_columns(store)->n_persons - cc_dataversion_n_excluded(version));
    cr_assert_gt(cc_dataversion_n_excluded(version), 0);
    cc_raw_result_free(&res);
    cc_query_free(q);
}

Test(exec, cohort_sizes_without_each_restriction)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_cond(q, CC_CODE_ICD10, "E11", 0, 0);
    q_cond(q, CC_CODE_ICD10, "I10", 0, 1);
    q->filters.sex_mask = 1u << CC_SEX_MALE;
    q_months(&q->filters.date_range, 2021, 1, 2023, 12);
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(version, q, NULL, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.count[0], res.cohort_persons);
    cr_assert_gt(res.cohort_persons, 0, "the cohort is not empty");
    int seen_sex = 0, seen_dates = 0;
    for (uint32_t r = 0; r < res.n_restrictions; r++) {
        const char *sql = NULL;
        switch (res.restrictions[r].kind) {
        case CC_RESTRICT_CONDITION:
            sql = res.restrictions[r].condition == 0
                      ? "SELECT COUNT(*) FROM p WHERE p.sex = 1 AND NOT EXISTS (SELECT 1 FROM record r "
                        "JOIN code c ON c.record = r.id WHERE r.person = p.id AND c.system = 2 AND "
                        "c.text LIKE 'I10%' AND r.date BETWEEN '2021-01-01' AND '2023-12-31')"
                      : "SELECT COUNT(*) FROM p WHERE p.sex = 1 AND EXISTS (SELECT 1 FROM record r "
                        "JOIN code c ON c.record = r.id WHERE r.person = p.id AND c.system = 2 AND "
                        "c.text LIKE 'E11%' AND r.date BETWEEN '2021-01-01' AND '2023-12-31')";
            break;
        case CC_RESTRICT_SEX:
            seen_sex = 1;
            sql = "SELECT COUNT(*) FROM p WHERE EXISTS (SELECT 1 FROM record r JOIN code c ON c.record = "
                  "r.id WHERE r.person = p.id AND c.system = 2 AND c.text LIKE 'E11%' AND r.date "
                  "BETWEEN '2021-01-01' AND '2023-12-31') AND NOT EXISTS (SELECT 1 FROM record r JOIN "
                  "code c ON c.record = r.id WHERE r.person = p.id AND c.system = 2 AND c.text "
                  "LIKE 'I10%' AND r.date BETWEEN '2021-01-01' AND '2023-12-31')";
            break;
        case CC_RESTRICT_DATE_RANGE:
            seen_dates = 1;
            sql = "SELECT COUNT(*) FROM p WHERE p.sex = 1 AND EXISTS (SELECT 1 FROM record r JOIN code c "
                  "ON c.record = r.id WHERE r.person = p.id AND c.system = 2 AND c.text LIKE "
                  "'E11%') AND NOT EXISTS (SELECT 1 FROM record r JOIN code c ON c.record = r.id WHERE "
                  "r.person = p.id AND c.system = 2 AND c.text LIKE 'I10%')";
            break;
        default:
            cr_assert_fail("unexpected restriction kind %d", res.restrictions[r].kind);
        }
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_expect_eq(res.cohort_without[r], (uint64_t)sqlite3_column_int64(st, 0),
                     "restriction %u (kind %d)", r, res.restrictions[r].kind);
        cr_expect_gt(res.cohort_without[r], res.cohort_persons,
                     "lifting restriction %u (kind %d) widens the cohort", r, res.restrictions[r].kind);
        sqlite3_finalize(st);
    }
    cr_assert(seen_sex && seen_dates);
    cc_raw_result_free(&res);
    cc_query_free(q);
}

Test(exec, one_thread_and_two_threads_agree)
{
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_dim(q, CC_DIM_LAD, 0);
    q_dim(q, CC_DIM_SETTING, 0);
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), 0);
    struct cc_raw_result one, two;
    struct cc_exec_options o1 = {.n_threads = 1}, o2 = {.n_threads = 2};
    cr_assert_eq(cc_exec_run(version, q, &o1, &one, err, sizeof err), 0);
    cr_assert_eq(cc_exec_run(version, q, &o2, &two, err, sizeof err), 0);
    cr_assert_eq(one.n_cells, two.n_cells);
    uint64_t total = 0;
    for (uint64_t i = 0; i < one.n_cells; i++) {
        cr_assert_eq(one.count[i], two.count[i]);
        cr_assert_eq(one.cell_key[i], two.cell_key[i]);
        total += one.count[i];
    }
    /* two empty tables agree and prove nothing; two threads split the
     * records only when there are enough of them (cc_exec_par_for) */
    cr_assert_gt(total, 4096, "the table counts %llu events", (unsigned long long)total);
    cc_raw_result_free(&one);
    cc_raw_result_free(&two);
    cc_query_free(q);
}

Test(exec, a_named_codelist_matches_like_its_codes)
{
    cc_codelists *lists = NULL;
    char err[256];
    cr_assert_eq(cc_codelists_new(&lists), 0);
    const char *csv = "code,term\nE10,Type 1 diabetes\nE11,Type 2 diabetes\n";
    cr_assert_eq(cc_codelists_add_csv(lists, "diabetes_icd10", csv, strlen(csv), 0, err,
                                      sizeof err),
                 0, "%s", err);
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_REGION, 0);
    struct cc_query_condition *c = q_cond(q, 0, NULL, S(CC_SETTING_HOSPITAL), 0);
    snprintf(c->codelist, sizeof c->codelist, "diabetes_icd10");
    uint64_t total = compare_with(
        q, lists,
        "SELECT p.region, COUNT(DISTINCT p.id) FROM p JOIN r ON r.person = p.id JOIN code c ON "
        "c.record = r.id WHERE r.setting = 2 AND c.system = 2 AND (c.text LIKE 'E10%' OR c.text "
        "LIKE 'E11%') AND p.region IS NOT NULL GROUP BY 1");
    cr_assert_gt(total, 100);
    cc_codelists_free(lists);
}

Test(exec, custom_age_bands_and_an_icb_area_filter)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    d->kind = CC_DIM_AGE_BAND;
    d->age_banding = CC_AGE_BANDS_CUSTOM;
    static const uint8_t bounds[] = {0, 18, 65, 85};
    d->n_age_bounds = 4;
    memcpy(d->age_bounds, bounds, sizeof bounds);
    q_areas(q, CC_AREA_ICB, "E54000002", NULL);
    q->has_as_of = true;
    q->as_of = cc_query_month(2024, 7);
    compare(q, "SELECT CASE WHEN " AGE_AT("2024-07-01") " >= 85 THEN '85+' WHEN " AGE_AT(
                   "2024-07-01") " >= 65 THEN '65-84' WHEN " AGE_AT("2024-07-01") " >= 18 THEN "
               "'18-64' ELSE '0-17' END, COUNT(*) FROM p WHERE p.icb = 'E54000002' AND "
               AGE_AT("2024-07-01") " >= 0 GROUP BY 1");
}

Test(exec, persons_per_month_of_their_matching_records_in_a_region)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_MONTH, 0);
    q_cond(q, CC_CODE_SNOMED, "38341003", S(CC_SETTING_GP) | S(CC_SETTING_COMMUNITY), 0);
    q->events_of = 0;
    q_months(&q->filters.date_range, 2024, 1, 2024, 6);
    q_areas(q, CC_AREA_REGION, "E12000002", NULL);
    compare(q, "SELECT strftime('%Y-%m', r.date), COUNT(DISTINCT p.id) FROM p JOIN r ON r.person "
               "= p.id JOIN code c ON c.record = r.id WHERE c.text = '38341003' AND r.setting IN "
               "(1,3) AND r.date BETWEEN '2024-01-01' AND '2024-06-30' AND p.region = 'E12000002' "
               "GROUP BY 1");
}

/* ---- sex values, single years, margins ------------------------------------------------------ */

Test(exec, the_sex_dimension_has_the_four_codes_or_those_of_the_filter)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_SEX, 0);
    uint64_t total = compare(q, "SELECT " SEXLABEL ", COUNT(*) FROM p GROUP BY 1");
    cr_assert_eq(total, cc_store_columns(store)->n_persons - cc_dataversion_n_excluded(version),
                 "every person has one of the four sex codes");
    q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_SEX, 0);
    q->filters.sex_mask = 1u << CC_SEX_NOT_KNOWN | 1u << CC_SEX_INDETERMINATE;
    total = compare(q, "SELECT " SEXLABEL ", COUNT(*) FROM p WHERE p.sex IN (0, 9) GROUP BY 1");
    cr_assert_gt(total, 0);
}

Test(exec, single_years_of_age_up_to_120_plus)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_1Y);
    q->has_as_of = true;
    q->as_of = cc_query_month(2024, 7);
    uint64_t total = compare(q, "SELECT CASE WHEN " AGE_AT("2024-07-01") " >= 120 THEN '120+' ELSE "
                                "CAST(" AGE_AT("2024-07-01") " AS TEXT) END, COUNT(*) FROM p WHERE "
                                AGE_AT("2024-07-01") " >= 0 GROUP BY 1");
    cr_assert_gt(total, 1000);
}

/* The oracle's SQL for a table with margins: one GROUP BY per subset of the
 * dimensions, 'total' in place of those summed out, all in one UNION ALL.
 * labels[i] is dimension i's label; body is "FROM ... WHERE ...". */
static const char *margins_sql(unsigned n, const char *const *labels, const char *count,
                               const char *body)
{
    static char sql[32768];
    size_t used = 0;
    for (unsigned subset = 0; subset < 1u << n; subset++) {
        used += (size_t)snprintf(sql + used, sizeof sql - used, "%sSELECT ",
                                 subset ? " UNION ALL " : "");
        for (unsigned i = 0; i < n; i++)
            used += (size_t)snprintf(sql + used, sizeof sql - used, "%s, ",
                                     subset & (1u << i) ? "'total'" : labels[i]);
        used += (size_t)snprintf(sql + used, sizeof sql - used, "%s %s", count, body);
        const char *sep = " GROUP BY ";
        for (unsigned i = 0; i < n; i++)
            if (!(subset & (1u << i))) {
                used += (size_t)snprintf(sql + used, sizeof sql - used, "%s%u", sep, i + 1);
                sep = ", ";
            }
        cr_assert_lt(used, sizeof sql);
    }
    return sql;
}

Test(exec, events_with_margins_sum_their_cells)
{
    struct cc_query *q = q_new(CC_MEASURE_EVENTS);
    q_dim(q, CC_DIM_LAD, 0);
    q_dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    q_dim(q, CC_DIM_SEX, 0);
    q->margins = true;
    q->filters.setting_mask = S(CC_SETTING_HOSPITAL);
    q_months(&q->filters.date_range, 2023, 1, 2023, 12);
    const char *labels[] = {"p.lad", BAND10(AGE_AT_COL("r.date")), SEXLABEL};
    uint64_t total = compare(
        q, margins_sql(3, labels, "COUNT(*)",
                       "FROM p JOIN r ON r.person = p.id WHERE r.setting = 2 AND r.date BETWEEN "
                       "'2023-01-01' AND '2023-12-31' AND p.lad IS NOT NULL AND " AGE_AT_COL(
                           "r.date") " >= 0"));
    cr_assert_gt(total, 300);
}

Test(exec, persons_margins_over_a_record_dimension_count_each_person_once)
{
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_REGION, 0);
    q_dim(q, CC_DIM_SETTING, 0);
    q->margins = true;
    q_months(&q->filters.date_range, 2022, 1, 2022, 12);
    const char *labels[] = {"p.region", SETTINGLABEL};
    const char *body = "FROM p JOIN r ON r.person = p.id WHERE r.date BETWEEN '2022-01-01' AND "
                       "'2022-12-31' AND p.region IS NOT NULL";
    char err[256];
    struct cc_query *copy = NULL;
    cr_assert_eq(cc_query_clone(q, &copy), 0);
    uint64_t total = compare(q, margins_sql(2, labels, "COUNT(DISTINCT p.id)", body));
    cr_assert_gt(total, 100);

    /* the margin cells are told apart, and the grand total is less than the
     * sum of the cells (persons with records in several settings) */
    cr_assert_eq(cc_query_bind(copy, cc_store_columns(store), NULL, err, sizeof err), 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(version, copy, NULL, &res, err, sizeof err), 0, "%s", err);
    cr_assert_eq(res.dimensions[0].total, res.dimensions[0].n_values - 1);
    cr_assert_eq(res.dimensions[1].total, 3);
    uint64_t n_margins = 0, inner_sum = 0, grand = 0;
    for (uint64_t cell = 0; cell < res.n_cells; cell++) {
        if (!cc_raw_result_is_margin(&res, cell)) {
            inner_sum += res.count[cell];
            continue;
        }
        n_margins++;
        if (cc_raw_result_coordinate(&res, cell, 0) == res.dimensions[0].total &&
            cc_raw_result_coordinate(&res, cell, 1) == res.dimensions[1].total)
            grand = res.count[cell];
    }
    cr_assert_eq(n_margins, res.n_cells - (uint64_t)(res.dimensions[0].n_values - 1) * 3);
    cr_assert_gt(grand, 0);
    cr_assert_lt(grand, inner_sum);
    char label[16];
    cc_raw_result_label(&res, 1, 3, label, sizeof label);
    cr_assert_str_eq(label, "total");
    cc_raw_result_free(&res);
    cc_query_free(copy);
}

Test(exec, population_estimates_with_margins)
{
    struct cc_query *q = q_new(CC_MEASURE_POPULATION);
    q->population_source = CC_POPULATION_ESTIMATE;
    q_dim(q, CC_DIM_ICB, 0);
    q_dim(q, CC_DIM_SEX, 0);
    q->margins = true;
    const char *labels[] = {"icb", "(CASE sex WHEN 1 THEN 'male' ELSE 'female' END)"};
    uint64_t total = compare(q, margins_sql(2, labels, "SUM(n)", "FROM pop"));
    cr_assert_gt(total, 0);
}

/* ---- conditions across code systems, OR and NOT --------------------------------------------- */

/* A query from its JSON form (which must decode and validate). */
static struct cc_query *q_json(const char *json)
{
    struct cc_query *q = NULL;
    char err[256];
    cr_assert_eq(cc_query_decode_json(json, strlen(json), NULL, &q, err, sizeof err), 0, "%s: %s",
                 json, err);
    struct cc_query_extent extent; /* the store's areas, as the server checks */
    cc_query_extent_from_store(cc_store_columns(store), &extent);
    cr_assert_eq(cc_query_validate(q, NULL, &extent, err, sizeof err), 0, "%s: %s", json, err);
    return q;
}

/* SQL: the person has a record matching `match` (on r and c). */
#define HAS(match)                                                                                 \
    "EXISTS (SELECT 1 FROM record r JOIN code c ON c.record = r.id WHERE r.person = p.id AND ("  \
        match "))"

Test(exec, one_condition_with_codes_of_two_systems_matches_each_against_its_own)
{
    /* SNOMED CT 44054006 in GP or community records, or ICD-10 E11 in a
     * hospital episode: one condition, each code against its own system */
    struct cc_query *q = q_json("{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"icb\"],"
                                "\"filters\":{\"conditions\":[{\"codes\":{\"snomed\":"
                                "[\"44054006\"],\"icd10\":[\"E11\"]}}]}}");
    uint64_t total = compare(q, "SELECT p.icb, COUNT(*) FROM p WHERE p.icb IS NOT NULL AND " HAS(
                                    "(c.system = 1 AND c.text = '44054006') OR (c.system = 2 AND "
                                    "c.text LIKE 'E11%')") " GROUP BY 1");
    cr_assert_gt(total, 1000);
}

Test(exec, conditions_combined_with_or_across_settings)
{
    struct cc_query *q = q_json(
        "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\",\"sex\"],\"filters\":{"
        "\"conditions\":[{\"codes\":[\"44054006\"],\"system\":\"snomed\",\"settings\":\"gp\"},"
        "{\"codes\":[\"E11\"],\"system\":\"icd10\",\"settings\":\"hospital\"}],"
        "\"combine\":{\"or\":[0,1]}}}");
    uint64_t total = compare(
        q, "SELECT p.region, " SEXLABEL ", COUNT(*) FROM p WHERE p.region IS NOT NULL AND (" HAS(
               "r.setting = 1 AND c.text = '44054006'") " OR " HAS("r.setting = 2 AND c.system = "
                                                              "2 AND c.text LIKE 'E11%'") ") "
                                                              "GROUP BY 1, 2");
    cr_assert_gt(total, 1000);
}

static const char *const nested_sql[] = {
    /* A: I10; B: snomed 38341003 in community; C: K40 procedure */
    HAS("c.system = 2 AND c.text LIKE 'I10%'"),
    HAS("r.setting = 3 AND c.text = '38341003'"),
    HAS("c.system = 3 AND c.text LIKE 'K40%'"),
};

Test(exec, nested_and_or_not_and_the_cohort_without_each_condition)
{
    /* A and (B or not C), as a tree; then the cohort without each condition:
     * without A: B or not C; without B: A and not C; without C: A and B */
    const char *json = "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"lad\"],\"filters\":{"
                       "\"conditions\":[{\"codes\":[\"I10\"],\"system\":\"icd10\"},"
                       "{\"codes\":[\"38341003\"],\"system\":\"snomed\",\"settings\":"
                       "\"community\"},{\"codes\":[\"K40\"],\"system\":\"opcs4\"}],"
                       "\"combine\":{\"and\":[0,{\"or\":[1,{\"not\":2}]}]}}}";
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT p.lad, COUNT(*) FROM p WHERE p.lad IS NOT NULL AND %s AND (%s OR NOT %s) "
             "GROUP BY 1",
             nested_sql[0], nested_sql[1], nested_sql[2]);
    uint64_t total = compare(q_json(json), sql);
    cr_assert_gt(total, 100);

    struct cc_query *q = q_json(json);
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(version, q, NULL, &res, err, sizeof err), 0, "%s", err);
    const char *without[3] = {"(%2$s OR NOT %3$s)", "(%1$s AND NOT %3$s)", "(%1$s AND %2$s)"};
    uint32_t checked = 0;
    for (uint32_t r = 0; r < res.n_restrictions; r++) {
        if (res.restrictions[r].kind != CC_RESTRICT_CONDITION)
            continue;
        uint32_t i = res.restrictions[r].condition;
        char where[1536];
        snprintf(where, sizeof where, without[i], nested_sql[0], nested_sql[1], nested_sql[2]);
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM p WHERE %s", where);
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        uint64_t expected = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        cr_expect_eq(res.cohort_without[r], expected, "without condition %u", i);
        cr_assert_gt(expected, 0);
        checked++;
    }
    cr_assert_eq(checked, 3);
    cc_raw_result_free(&res);
    cc_query_free(q);
}

Test(exec, events_of_a_condition_in_an_or_cohort)
{
    /* hospital episodes with I10, by year, of persons with I10 or with a
     * GP record of 195967001 */
    struct cc_query *q = q_json(
        "{\"v\":1,\"measure\":\"events\",\"events_of\":0,\"dimensions\":[\"year\"],\"filters\":{"
        "\"conditions\":[{\"codes\":[\"I10\"],\"system\":\"icd10\",\"settings\":\"hospital\"},"
        "{\"codes\":[\"195967001\"],\"system\":\"snomed\",\"settings\":\"gp\"}],"
        "\"combine\":{\"or\":[0,1]},\"date_range\":{\"from\":\"2020-01\",\"to\":\"2024-12\"}}}");
    uint64_t total = compare(
        q, "SELECT strftime('%Y', r.date), COUNT(DISTINCT r.id) FROM p JOIN r ON r.person = p.id "
           "JOIN code c ON c.record = r.id WHERE r.setting = 2 AND c.system = 2 AND c.text LIKE "
           "'I10%' AND r.date BETWEEN '2020-01-01' AND '2024-12-31' GROUP BY 1");
    cr_assert_gt(total, 100);
}

/* ---- small areas and practices ----------------------------------------------------------------- */

/* SQL: the LSOA code of a person (the fixture's LSOA i is E010000(i+1)). */
#define LSOALABEL "('E010000' || printf('%02d', p.lsoa + 1))"

Test(exec, persons_per_lsoa_within_an_lsoa_list)
{
    struct cc_query *q = q_json("{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"lsoa\"],"
                                "\"filters\":{\"conditions\":[{\"codes\":[\"I10\"],\"system\":"
                                "\"icd10\"}],\"areas\":{\"level\":\"lsoa\",\"codes\":"
                                "[\"E01000007\",\"E01000003\",\"E01000024\"]}}}");
    uint64_t total = compare(q, "SELECT " LSOALABEL ", COUNT(*) FROM p WHERE p.lsoa IN (2, 6, 23) "
                                "AND " HAS("c.system = 2 AND c.text LIKE 'I10%'") " GROUP BY 1");
    cr_assert_gt(total, 50);
}

Test(exec, events_per_lsoa_and_sex_with_margins_at_some_practices)
{
    const char *json = "{\"v\":1,\"measure\":\"events\",\"dimensions\":[\"lsoa\",\"sex\"],"
                       "\"margins\":true,\"filters\":{\"settings\":\"gp\",\"practices\":"
                       "[\"B86003\",\"b86010\",\"B86021\"]}}";
    const char *labels[] = {LSOALABEL, SEXLABEL};
    uint64_t total = compare(
        q_json(json),
        margins_sql(2, labels, "COUNT(*)",
                    "FROM p JOIN r ON r.person = p.id WHERE r.setting = 1 AND p.lsoa IS NOT NULL "
                    "AND p.practice IN ('B86003', 'B86010', 'B86021')"));
    cr_assert_gt(total, 100);

    /* the practice filter is a restriction the cohort can be weighed without */
    struct cc_query *q = q_json(json);
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), 0, "%s", err);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(version, q, NULL, &res, err, sizeof err), 0, "%s", err);
    int seen = 0;
    for (uint32_t r = 0; r < res.n_restrictions; r++)
        if (res.restrictions[r].kind == CC_RESTRICT_PRACTICES) {
            seen = 1;
            cr_assert_eq(res.cohort_without[r],
                         cc_store_columns(store)->n_persons - cc_dataversion_n_excluded(version));
            cr_assert_lt(res.cohort_persons, res.cohort_without[r]);
            cr_assert_gt(res.cohort_persons, 0);
        }
    cr_assert(seen);
    cc_raw_result_free(&res);
    cc_query_free(q);
}

Test(exec, persons_per_practice_within_a_practice_list_and_an_unknown_practice)
{
    struct cc_query *q = q_json("{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"practice\"],"
                                "\"filters\":{\"practices\":[\"B86001\",\"B86029\"],\"age\":"
                                "{\"min\":40}}}");
    uint64_t total = compare(q, "SELECT p.practice, COUNT(*) FROM p WHERE p.practice IN "
                                "('B86001', 'B86029') AND " AGE_AT("2026-01-01") " >= 40 "
                                "GROUP BY 1");
    cr_assert_gt(total, 10);
    q = q_json("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"practices\":[\"Y99999\"]}}");
    char err[256];
    cr_assert_eq(cc_query_bind(q, cc_store_columns(store), NULL, err, sizeof err), CC_ENOTFOUND);
    cr_assert_str_eq(err, "filters.practices[0]: unknown practice 'Y99999'");
    cc_query_free(q);
}

Test(exec, population_estimates_per_lsoa_in_an_lsoa_list)
{
    struct cc_query *q = q_json("{\"v\":1,\"measure\":\"population\",\"population\":"
                                "\"estimate\",\"dimensions\":[\"lsoa\"],\"filters\":{\"areas\":"
                                "{\"level\":\"lsoa\",\"codes\":[\"E01000002\",\"E01000005\"]}}}");
    uint64_t total = compare(q, "SELECT 'E010000' || printf('%02d', lsoa + 1), SUM(n) FROM pop "
                                "WHERE lsoa IN (1, 4) GROUP BY 1");
    cr_assert_gt(total, 0);
}

Test(exec, a_codelist_of_two_systems_matches_each_code_against_its_own)
{
    cc_codelists *lists = NULL;
    char err[256];
    cr_assert_eq(cc_codelists_new(&lists), 0);
    const char *snomed = "code,term\n44054006,Type 2 diabetes\n";
    const char *icd10 = "code,term\nE11,Type 2 diabetes\n";
    cr_assert_eq(cc_codelists_add_csv(lists, "dm2", snomed, strlen(snomed), 0, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(cc_codelists_add_csv(lists, "dm2", icd10, strlen(icd10), CC_CODE_ICD10, err,
                                      sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_codelists_find(lists, "dm2")->system, 0);
    cr_assert_eq(cc_codelists_find(lists, "dm2")->n_codes, 2);
    struct cc_query *q = q_new(CC_MEASURE_PERSONS);
    q_dim(q, CC_DIM_REGION, 0);
    struct cc_query_condition *c = q_cond(q, 0, NULL, 0, 0);
    snprintf(c->codelist, sizeof c->codelist, "dm2");
    uint64_t total = compare_with(
        q, lists,
        "SELECT p.region, COUNT(*) FROM p WHERE p.region IS NOT NULL AND " HAS(
            "(c.system = 1 AND c.text = '44054006') OR (c.system = 2 AND c.text LIKE 'E11%')") " "
                                                                                              "GROUP "
                                                                                              "BY 1");
    cr_assert_gt(total, 1000);
    /* a third list of a system already there is refused */
    cr_assert_eq(cc_codelists_add_csv(lists, "dm2", icd10, strlen(icd10), CC_CODE_ICD10, err,
                                      sizeof err),
                 CC_EEXISTS);
    cr_assert_str_eq(err, "codelist 'dm2': already loaded with ICD-10 codes");
    cc_codelists_free(lists);
}
