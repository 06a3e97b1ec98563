/* Tests for queries/cc_query.c and queries/cc_query_validate.c: a query's lifetime,
 * months, restrictions, validation errors and binding to a store's
 * vocabulary. */
#include <criterion/criterion.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_query.h"
#include "cc_testfs.h"
#include "cc_testquery.h"
#include "cc_testtool.h"

static char errbuf[256];

/* Decodes json (which must decode) and returns what validation says. */
static int validate_json(const char *json)
{
    struct cc_query *q = cc_testquery_from_json(json);
    errbuf[0] = '\0';
    int rc = cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf);
    cc_query_free(q);
    return rc;
}

#define PERSONS "{\"v\":1,\"measure\":\"persons\","

/* ---- lifetime ---- */

Test(query, new_query_has_the_documented_defaults)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    cr_assert_eq(q->version, CC_QUERY_VERSION);
    cr_assert_eq(q->measure, CC_MEASURE_PERSONS);
    cr_assert_eq(q->events_of, -1);
    cr_assert_eq(q->n_dimensions, 0);
    cr_assert_eq(q->filters.n_conditions, 0);
    cr_assert_eq(cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cc_query_free(q);
}

Test(query, arena_allocations_are_zeroed_aligned_and_any_size)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    for (size_t size = 1; size < 20000; size = size * 3 + 1) {
        unsigned char *p = cc_query_alloc(q, size);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % alignof(max_align_t), 0);
        for (size_t i = 0; i < size; i++)
            cr_assert_eq(p[i], 0);
        memset(p, 0xab, size);
    }
    cc_query_free(q);
    cc_query_free(NULL);
}

Test(query, clone_is_equal_and_independent)
{
    struct cc_query *q = cc_testquery_from_json(
        PERSONS "\"dimensions\":[\"region\"],\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],"
                "\"system\":\"icd10\"}],\"areas\":{\"level\":\"region\",\"codes\":[\"E12000001\"]}}}");
    struct cc_query *copy = NULL;
    cr_assert_eq(cc_query_clone(q, &copy), 0);
    cr_assert(cc_query_equal(q, copy));
    cr_assert_neq(copy->filters.conditions, q->filters.conditions);
    copy->filters.conditions[0].codes[0].text[2] = '0';
    cr_assert_not(cc_query_equal(q, copy), "a changed code makes queries differ");
    cr_assert_str_eq(q->filters.conditions[0].codes[0].text, "E11");
    cc_query_free(q);
    cc_query_free(copy);
}

Test(query, equal_tells_apart_queries_that_differ_in_one_field)
{
    struct cc_query *a = cc_testquery_from_json(PERSONS "\"filters\":{\"age\":{\"min\":18,\"max\":64}}}");
    struct cc_query *b = cc_testquery_from_json(PERSONS "\"filters\":{\"age\":{\"min\":18,\"max\":65}}}");
    struct cc_query *c = cc_testquery_from_json(PERSONS "\"filters\":{\"age\":{\"max\":64,\"min\":18}}}");
    cr_assert_not(cc_query_equal(a, b));
    cr_assert(cc_query_equal(a, c), "key order does not matter");
    cc_query_free(a);
    cc_query_free(b);
    cc_query_free(c);
}

Test(query, restrictions_list_conditions_by_index_then_other_filters)
{
    struct cc_query *q = cc_testquery_from_json(
        PERSONS "\"filters\":{\"conditions\":[{\"settings\":[\"gp\"]},{\"settings\":"
                "[\"hospital\"],\"exclude\":true}],\"sex\":[\"female\"],"
                "\"areas\":{\"level\":\"lad\",\"codes\":[\"E08000035\"]},"
                "\"date_range\":{\"from\":\"2023-01\",\"to\":\"2023-12\"}}}");
    struct cc_query_restriction r[8];
    uint32_t n = cc_query_restrictions(q, r, 8);
    cr_assert_eq(n, 5);
    cr_assert_eq(r[0].kind, CC_RESTRICT_CONDITION);
    cr_assert_eq(r[0].condition, 0);
    cr_assert_eq(r[1].kind, CC_RESTRICT_CONDITION);
    cr_assert_eq(r[1].condition, 1);
    cr_assert_eq(r[2].kind, CC_RESTRICT_DATE_RANGE);
    cr_assert_eq(r[3].kind, CC_RESTRICT_SEX);
    cr_assert_eq(r[4].kind, CC_RESTRICT_AREAS);
    cr_assert_eq(cc_query_restrictions(q, r, 2), 5, "the count does not depend on cap");
    cc_query_free(q);
}

/* ---- months and names ---- */

Test(query, months_parse_format_and_bound_days)
{
    cc_month m;
    cr_assert_eq(cc_query_month_parse("2024-02", 7, &m), 0);
    cr_assert_eq(m, cc_query_month(2024, 2));
    char buf[8];
    cc_query_month_format(m, buf);
    cr_assert_str_eq(buf, "2024-02");
    cr_assert_eq(cc_query_month_first_day(m), cc_day_from_ymd(2024, 2, 1));
    cr_assert_eq(cc_query_month_last_day(m), cc_day_from_ymd(2024, 2, 29));
    cr_assert_eq(cc_query_month_of_day(cc_day_from_ymd(2024, 2, 29)), m);
    cr_assert_eq(cc_query_month_parse("2024-13", 7, &m), CC_ERANGE);
    cr_assert_eq(cc_query_month_parse("1899-12", 7, &m), CC_ERANGE);
    cr_assert_eq(cc_query_month_parse("2024-2", 6, &m), CC_EPARSE);
    cr_assert_eq(cc_query_month_parse("2024-02-01", 10, &m), CC_EPARSE);
    cr_assert_eq(cc_query_month_last_day(cc_query_month(2079, 6)), CC_DAY_MAX);
}

Test(query, enum_names_are_the_wire_names)
{
    cr_assert_str_eq(cc_query_dimension_name(CC_DIM_LAD), "lad");
    cr_assert_str_eq(cc_query_setting_name(CC_SETTING_HOSPITAL), "hospital");
    cr_assert_str_eq(cc_query_sex_name(CC_SEX_INDETERMINATE), "indeterminate");
    cr_assert_str_eq(cc_query_system_title(CC_CODE_SNOMED), "SNOMED CT");
    cr_assert_null(cc_query_dimension_name(0));
    cr_assert_null(cc_query_sex_name(5));
    cr_assert_null(cc_query_measure_name(99));
}

/* ---- code formats ---- */

Test(query, code_systems_follow_each_format)
{
    unsigned snomed = 1u << CC_CODE_SNOMED, icd = 1u << CC_CODE_ICD10,
             opcs = 1u << CC_CODE_OPCS4;
    cr_assert_eq(cc_query_code_systems("73211009"), snomed); /* diabetes mellitus */
    cr_assert_eq(cc_query_code_systems("22298006"), snomed); /* myocardial infarction */
    cr_assert_eq(cc_query_code_systems("73211008"), 0, "a wrong check digit fits nothing");
    cr_assert_eq(cc_query_code_systems("12345"), 0, "too short for SNOMED CT");
    cr_assert_eq(cc_query_code_systems("E11"), icd | opcs);
    cr_assert_eq(cc_query_code_systems("E1"), icd | opcs, "a prefix");
    cr_assert_eq(cc_query_code_systems("I21"), icd, "OPCS-4 has no chapter I");
    cr_assert_eq(cc_query_code_systems("O80"), icd | opcs, "O is OPCS-4's overflow chapter");
    cr_assert_eq(cc_query_code_systems("73211019"), 0, "partition 01 is a description id");
    cr_assert_eq(cc_query_code_systems("R69X"), icd);
    cr_assert_eq(cc_query_code_systems("E11X9"), 0);
    cr_assert_eq(cc_query_code_systems("11E"), 0);
}

/* ---- validation: the errors ---- */

Test(validate, code_of_another_system_names_field_code_and_systems)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"73211009\","
                                       "\"E11\"],\"system\":\"snomed\"}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[1]: 'E11' is ICD-10 or OPCS-4 but the "
                             "condition's system is SNOMED CT");
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"73211009\"],"
                                       "\"system\":\"icd10\"}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[0]: '73211009' is SNOMED CT but the "
                             "condition's system is ICD-10");
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"I21\"],"
                                       "\"system\":\"opcs4\"}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[0]: 'I21' is ICD-10 but the "
                             "condition's system is OPCS-4");
}

Test(validate, malformed_code_says_what_the_system_expects)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"73211008\"],"
                                       "\"system\":\"snomed\"}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[0]: '73211008' is not a valid SNOMED "
                             "CT code (a concept id: 6 to 18 digits with a valid check digit)");
}

Test(validate, empty_date_range_names_both_ends)
{
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"events\",\"filters\":{\"date_range\":"
                               "{\"from\":\"2024-05\",\"to\":\"2024-03\"}}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.date_range: empty (from 2024-05 after to 2024-03)");
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"settings\":[\"gp\"],"
                                       "\"date_range\":{\"from\":\"2024-05\",\"to\":\"2024-03\"}}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf,
                     "filters.conditions[0].date_range: empty (from 2024-05 after to 2024-03)");
}

Test(validate, too_many_cells_gives_the_count_and_the_limit)
{
    struct cc_query *q = cc_testquery_from_json(
        PERSONS "\"dimensions\":[\"practice\",{\"name\":\"age_band\",\"bands\":\"10y\"},\"sex\","
                "\"year\"],\"filters\":{\"date_range\":{\"from\":\"2019-01\",\"to\":\"2023-12\"}}}");
    struct cc_query_extent extent;
    cc_query_extent_default(&extent);
    extent.n_practices = 6250;
    cr_assert_eq(cc_query_n_cells(q, &extent), 1250000);
    cr_assert_eq(cc_query_validate(q, NULL, &extent, errbuf, sizeof errbuf), CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "dimensions: too many cells: 4 dimensions give 1,250,000 cells, the "
                             "limit is 100,000");
    cc_query_free(q);
}

Test(validate, cells_shrink_with_the_filters_that_bound_a_dimension)
{
    struct cc_query *q = cc_testquery_from_json(
        PERSONS "\"dimensions\":[\"lad\",\"sex\",\"month\"],\"filters\":{\"sex\":[\"male\","
                "\"female\"],\"areas\":{\"level\":\"lad\",\"codes\":[\"E08000035\",\"E06000001\","
                "\"E09000001\"]},\"date_range\":{\"from\":\"2023-01\",\"to\":\"2023-06\"}}}");
    cr_assert_eq(cc_query_n_cells(q, NULL), 3 * 2 * 6);
    cc_query_free(q);
}

Test(validate, benchmark_two_has_about_eleven_thousand_cells)
{
    struct cc_query *q = cc_testquery_from_json(
        "{\"v\":1,\"measure\":\"events\",\"events_of\":0,\"dimensions\":[\"lad\",{\"name\":"
        "\"age_band\",\"bands\":\"5y\"},\"sex\"],\"filters\":{\"conditions\":[{\"settings\":"
        "[\"hospital\"],\"date_range\":{\"from\":\"2023-01\",\"to\":\"2023-12\"}}],\"sex\":"
        "[\"male\",\"female\"]}}");
    cr_assert_eq(cc_query_n_cells(q, NULL), 296 * 19 * 2);
    cr_assert_eq(cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cc_query_free(q);
}

Test(validate, anchor_must_be_an_earlier_included_condition)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"settings\":[\"gp\"],"
                                       "\"anchor\":{\"condition\":1,\"to_days\":30}},"
                                       "{\"settings\":[\"hospital\"]}]}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "filters.conditions[0].anchor.condition: 1 is not an earlier "
                             "condition"),
              "%s", errbuf);
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"settings\":[\"gp\"],"
                                       "\"exclude\":true},{\"settings\":[\"hospital\"],\"anchor\":"
                                       "{\"condition\":0,\"to_days\":30}}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[1].anchor.condition: condition 0 is excluded, "
                             "so it has no first date");
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"settings\":[\"gp\"]},"
                                       "{\"settings\":[\"hospital\"],\"anchor\":{\"condition\":0,"
                                       "\"from_days\":10,\"to_days\":5}}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[1].anchor: empty window (from_days 10 after "
                             "to_days 5)");
}

Test(validate, events_of_must_name_an_included_condition)
{
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"events\",\"events_of\":1,\"filters\":"
                               "{\"conditions\":[{\"settings\":[\"gp\"]}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "events_of: 1 is not a condition (the query has 1)");
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"events\",\"events_of\":0,\"filters\":"
                               "{\"conditions\":[{\"settings\":[\"gp\"],\"exclude\":true}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "events_of: condition 0 is excluded, so it has no events to count");
}

Test(validate, as_of_does_not_apply_to_events)
{
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"events\",\"as_of\":\"2024-01\"}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "as_of: the events measure takes each person's age on the date"),
              "%s", errbuf);
    cr_assert_eq(validate_json(PERSONS "\"as_of\":\"2024-01\"}"), 0, "%s", errbuf);
}

Test(validate, population_takes_no_conditions_or_record_dimensions)
{
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"population\",\"filters\":{\"conditions\":"
                               "[{\"settings\":[\"gp\"]}]}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "filters.conditions: the population measure takes no conditions"),
              "%s", errbuf);
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"population\",\"dimensions\":[\"icb\","
                               "\"year\"]}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "dimensions[1]: the registered population has no 'year'"), "%s",
              errbuf);
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"population\",\"population\":\"estimate\","
                               "\"dimensions\":[{\"name\":\"age_band\",\"bands\":[0,18,65]}]}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "dimensions[0].bands[1]: population estimates come in 5-year bands"),
              "%s", errbuf);
}

Test(validate, area_code_of_another_level_is_named)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"areas\":{\"level\":\"lad\",\"codes\":"
                                       "[\"E12000001\"]}}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf,
                     "filters.areas.codes[0]: 'E12000001' is a region code but the level is lad");
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"areas\":{\"level\":\"icb\",\"codes\":"
                                       "[\"X54000001\"]}}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "'X54000001' is not a icb code"), "%s", errbuf);
}

Test(validate, dimension_rules)
{
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[\"sex\",\"sex\"]}"), CC_EINVAL);
    cr_assert_str_eq(errbuf, "dimensions[1]: 'sex' appears twice");
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[\"year\",\"month\"]}"), CC_EINVAL);
    cr_assert_str_eq(errbuf, "dimensions[1]: 'year' and 'month' are both periods; use one");
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[{\"name\":\"age_band\",\"bands\":"
                                       "[0,40,40]}]}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "dimensions[0].bands[2]: 40 is not above the previous bound 40");
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[{\"name\":\"age_band\",\"bands\":"
                                       "[5,40]}]}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "the first band must start at age 0"), "%s", errbuf);
}

Test(validate, age_range_must_not_be_empty)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"age\":{\"min\":65,\"max\":18}}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.age: empty (min 65 above max 18)");
}

Test(validate, a_condition_that_matches_every_record_is_refused)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"exclude\":true}]}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "filters.conditions[0]: matches every record"), "%s", errbuf);
}

Test(validate, a_condition_outside_the_query_dates_is_refused)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"date_range\":{\"from\":\"2023-01\",\"to\":"
                                       "\"2023-12\"},\"conditions\":[{\"settings\":[\"gp\"],"
                                       "\"date_range\":{\"from\":\"2020-01\",\"to\":\"2020-12\"}}]}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "lies outside filters.date_range"), "%s", errbuf);
}

Test(validate, duplicate_codes_are_refused)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"E11\","
                                       "\"e11\"],\"system\":\"icd10\"}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[1]: 'E11' appears twice");
}

Test(validate, the_benchmark_and_combination_queries_are_valid)
{
    static const char *const queries[] = {
        /* 1: distinct persons with a code, any setting, per region */
        PERSONS "\"dimensions\":[\"region\"],\"filters\":{\"conditions\":[{\"codes\":"
                "[\"E11\"],\"system\":\"icd10\"}]}}",
        /* 3: numerator and denominator per ICB */
        PERSONS "\"dimensions\":[\"icb\"],\"filters\":{\"conditions\":[{\"codes\":[\"I21\"],"
                "\"system\":\"icd10\",\"settings\":[\"hospital\"],\"date_range\":{\"from\":"
                "\"2023-01\",\"to\":\"2023-12\"}}]}}",
        "{\"v\":1,\"measure\":\"population\",\"as_of\":\"2024-01\",\"dimensions\":[\"icb\"]}",
        /* 4: GP and hospital */
        PERSONS "\"dimensions\":[\"region\"],\"filters\":{\"conditions\":[{\"codes\":"
                "[\"73211009\"],\"system\":\"snomed\",\"settings\":[\"gp\"]},{\"codes\":[\"E11\"],"
                "\"system\":\"icd10\",\"settings\":[\"hospital\"]}]}}",
        /* A but not B */
        PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"},"
                "{\"codes\":[\"I21\"],\"system\":\"icd10\",\"exclude\":true}]}}",
        /* events within 90 days of a first diagnosis */
        "{\"v\":1,\"measure\":\"events\",\"events_of\":1,\"filters\":{\"conditions\":[{\"codes\":"
        "[\"E11\"],\"system\":\"icd10\"},{\"settings\":[\"hospital\"],\"anchor\":{\"condition\":0,"
        "\"from_days\":0,\"to_days\":90}}]}}",
    };
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++)
        cr_assert_eq(validate_json(queries[i]), 0, "query %zu: %s", i, errbuf);
}

Test(validate, hand_built_queries_are_checked_against_the_limits_too)
{
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_new(&q), 0);
    q->n_dimensions = 5;
    q->dimensions = cc_query_alloc(q, 5 * sizeof *q->dimensions);
    for (int i = 0; i < 5; i++)
        q->dimensions[i].kind = (uint8_t)(CC_DIM_REGION + i);
    q->dimensions[4].age_banding = CC_AGE_BANDS_5Y;
    cr_assert_eq(cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf), CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "dimensions: 5 dimensions, the limit is 4");
    q->n_dimensions = 1;
    q->measure = 7;
    cr_assert_eq(cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf), CC_EINVAL);
    cr_assert_str_eq(errbuf, "measure: unknown measure 7");
    cc_query_free(q);
}

/* ---- binding ---- */

static const char lads[3][CC_AREA_CODE_BYTES] = {"E06000001", "E08000035", "E09000001"};
static const char regions[1][CC_AREA_CODE_BYTES] = {"E12000001"};

static struct cc_store_columns small_columns(void)
{
    struct cc_store_columns columns = {0};
    columns.n_lad = 3;
    columns.lad_code = lads;
    columns.n_region = 1;
    columns.region_code = regions;
    return columns;
}

Test(bind, area_codes_resolve_to_store_indices)
{
    struct cc_query *q = cc_testquery_from_json(PERSONS "\"filters\":{\"areas\":{\"level\":\"lad\",\"codes\":"
                                           "[\"E09000001\",\"E06000001\"]}}}");
    struct cc_store_columns columns = small_columns();
    cr_assert_eq(cc_query_bind(q, &columns, NULL, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert_str_eq(q->filters.areas.codes[0], "E06000001");
    cr_assert_eq(q->filters.areas.index[0], 0);
    cr_assert_eq(q->filters.areas.index[1], 2);
    cc_query_free(q);
}

Test(bind, unknown_area_is_not_found)
{
    struct cc_query *q = cc_testquery_from_json(PERSONS "\"filters\":{\"areas\":{\"level\":\"lad\",\"codes\":"
                                           "[\"E08000099\"]}}}");
    struct cc_store_columns columns = small_columns();
    cr_assert_eq(cc_query_bind(q, &columns, NULL, errbuf, sizeof errbuf), CC_ENOTFOUND);
    cr_assert_str_eq(errbuf,
                     "filters.areas.codes[0]: unknown lad 'E08000099' (not in the area lookup)");
    cc_query_free(q);
}

Test(bind, codelists_resolve_by_name_and_system)
{
    cc_codelists *lists = NULL;
    cr_assert_eq(cc_codelists_new(&lists), 0);
    const char *csv = "code,term\n73211009,Diabetes mellitus\n";
    cr_assert_eq(cc_codelists_add_csv(lists, "diabetes", csv, strlen(csv), 0, errbuf,
                                      sizeof errbuf),
                 0, "%s", errbuf);
    struct cc_store_columns columns = small_columns();

    struct cc_query *q = cc_testquery_from_json(PERSONS "\"filters\":{\"conditions\":[{\"codelist\":"
                                           "\"diabetes\"}]}}");
    cr_assert_eq(cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert_eq(cc_query_bind(q, &columns, lists, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert_not_null(q->filters.conditions[0].codelist_ref);
    cr_assert_eq(q->filters.conditions[0].codelist_ref->system, CC_CODE_SNOMED);
    cc_query_free(q);

    q = cc_testquery_from_json(PERSONS "\"filters\":{\"conditions\":[{\"codelist\":\"asthma\"}]}}");
    cr_assert_eq(cc_query_bind(q, &columns, lists, errbuf, sizeof errbuf), CC_ENOTFOUND);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codelist: unknown codelist 'asthma'");
    cc_query_free(q);

    q = cc_testquery_from_json(PERSONS "\"filters\":{\"conditions\":[{\"codelist\":\"diabetes\","
                          "\"system\":\"icd10\"}]}}");
    cr_assert_eq(cc_query_bind(q, &columns, lists, errbuf, sizeof errbuf), CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codelist: 'diabetes' is a SNOMED CT list but "
                             "the condition's system is ICD-10");
    cc_query_free(q);
    cc_codelists_free(lists);
}

/* ---- the documentation's examples ---- */

Test(docs, every_json_example_in_the_query_model_doc_is_valid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/docs/query-model.md", CC_SOURCE_DIR);
    FILE *file = fopen(path, "r");
    cr_assert_not_null(file, "cannot open %s", path);
    char *doc = calloc(1, 1 << 20);
    size_t len = fread(doc, 1, (1 << 20) - 1, file);
    fclose(file);
    doc[len] = '\0';
    int examples = 0;
    for (char *at = strstr(doc, "```json\n"); at; at = strstr(at, "```json\n")) {
        at += 8;
        char *end = strstr(at, "```");
        cr_assert_not_null(end);
        struct cc_query *q = NULL;
        int rc = cc_query_decode_json(at, (size_t)(end - at), NULL, &q, errbuf, sizeof errbuf);
        cr_assert_eq(rc, 0, "example %d: %s\n%.*s", examples, errbuf, (int)(end - at), at);
        rc = cc_query_validate(q, NULL, NULL, errbuf, sizeof errbuf);
        cr_assert_eq(rc, 0, "example %d: %s", examples, errbuf);
        cc_query_free(q);
        examples++;
        at = end + 3;
    }
    cr_assert_geq(examples, 7, "the doc shows the four benchmark queries and three combinations");
    free(doc);
}

/* ---- carecount check ---- */

/* Runs `carecount check ARGS` with input on standard input; returns the
 * exit status and the combined output in out. */
static int run_check(const char *args, const char *input, char *out, size_t out_len)
{
    char command[1024];
    snprintf(command, sizeof command, "check %s", args);
    return cc_testtool_run(command, input, out, out_len);
}

Test(check, prints_the_canonical_form_of_a_valid_query)
{
    char out[1024];
    int status = run_check("-", "{\"measure\": \"persons\", \"v\": 1, \"dimensions\": [\"sex\"]}",
                           out, sizeof out);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"]}\n");
}

Test(check, prints_the_precise_error_and_exits_one)
{
    char out[1024];
    int status = run_check("-", "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"county\"]}", out,
                           sizeof out);
    cr_assert_eq(status, 1);
    cr_assert_str_eq(out, "carecount check: dimensions[0]: unknown dimension 'county'\n");
}

Test(check, writes_canonical_msgpack_on_request)
{
    char out[1024];
    int status = run_check("--msgpack -", "{\"v\":1,\"measure\":\"persons\"}", out, sizeof out);
    cr_assert_eq(status, 0);
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode(out, strlen(out), NULL, &q, errbuf, sizeof errbuf), 0, "%s",
                 errbuf);
    cr_assert_eq(q->measure, CC_MEASURE_PERSONS);
    cc_query_free(q);
}

Test(check, checks_codelist_names_against_a_directory)
{
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "check_lists");
    cc_testfs_write_text_in(dir, "asthma.csv", "code,term\n195967001,Asthma\n");
    char args[128], out[1024];
    snprintf(args, sizeof args, "--codelists %s -", dir);
    int status = run_check(args, PERSONS "\"filters\":{\"conditions\":[{\"codelist\":\"asthma\"}]}}",
                           out, sizeof out);
    cr_assert_eq(status, 0, "%s", out);
    status = run_check(args, PERSONS "\"filters\":{\"conditions\":[{\"codelist\":\"copd\"}]}}", out,
                       sizeof out);
    cr_assert_eq(status, 1);
    cr_assert_str_eq(out, "carecount check: filters.conditions[0].codelist: unknown codelist "
                          "'copd'\n");
    cc_testfs_remove_tree(dir);
}

Test(query, extent_from_store_takes_its_area_and_practice_counts)
{
    struct cc_store_columns columns = small_columns();
    columns.n_icb = 2;
    columns.n_practices = 17;
    struct cc_query_extent extent;
    cc_query_extent_from_store(&columns, &extent);
    cr_assert_eq(extent.n_lad, 3);
    cr_assert_eq(extent.n_region, 1);
    cr_assert_eq(extent.n_icb, 2);
    cr_assert_eq(extent.n_practices, 17);
    cr_assert_lt(extent.first_month, extent.last_month);
    struct cc_query *q = cc_testquery_from_json(PERSONS "\"dimensions\":[\"lad\",\"practice\"]}");
    cr_assert_eq(cc_query_n_cells(q, &extent), 3 * 17);
    cc_query_free(q);
}

/* ---- issue 20: margins, single years, sex values ---- */

/* The canonical JSON form of a query given as JSON (which must decode). */
static char *canonical(const char *json)
{
    struct cc_query *q = cc_testquery_from_json(json);
    char *out = NULL;
    cr_assert_eq(cc_query_encode_json(q, &out), 0);
    cc_query_free(q);
    return out;
}

Test(query, margins_and_single_years_round_trip_in_the_canonical_form)
{
    const char *json = "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\",{\"name\":"
                       "\"age_band\",\"bands\":\"1y\"}],\"margins\":true}";
    char *out = canonical("{\"margins\":true,\"v\":1,\"measure\":\"persons\",\"dimensions\":"
                          "[\"sex\",{\"bands\":\"1y\",\"name\":\"age_band\"}]}");
    cr_assert_str_eq(out, json);
    free(out);
    out = canonical(PERSONS "\"dimensions\":[\"sex\"],\"margins\":false}");
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"]}");
    free(out);
}

Test(query, custom_bounds_that_are_a_named_banding_are_that_banding)
{
    char *out = canonical(PERSONS "\"dimensions\":[{\"name\":\"age_band\",\"bands\":"
                                  "[0,10,20,30,40,50,60,70,80,90]}]}");
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[{\"name\":"
                          "\"age_band\",\"bands\":\"10y\"}]}");
    free(out);
    out = canonical(PERSONS "\"dimensions\":[{\"name\":\"age_band\",\"bands\":[0,10,20]}]}");
    cr_assert(strstr(out, "[0,10,20]"), "%s", out);
    free(out);
}

Test(validate, margins_need_dimensions_and_count_as_cells)
{
    cr_assert_eq(validate_json(PERSONS "\"margins\":true}"), CC_EINVAL);
    cr_assert_str_eq(errbuf, "margins: the query has no dimensions, so its one cell is the total");
    struct cc_query *q =
        cc_testquery_from_json("{\"v\":1,\"measure\":\"events\",\"dimensions\":[\"lad\",\"age_band\",\"sex\"],"
                  "\"margins\":true,\"filters\":{\"sex\":[\"male\",\"female\"]}}");
    cr_assert_eq(cc_query_n_cells(q, NULL), 297u * 20u * 3u);
    cc_query_free(q);
    q = cc_testquery_from_json(PERSONS "\"dimensions\":[{\"name\":\"age_band\",\"bands\":\"1y\"}]}");
    cr_assert_eq(cc_query_n_cells(q, NULL), 121);
    cc_query_free(q);
}

Test(validate, two_age_bandings_in_one_table_are_refused_with_the_reason)
{
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[\"age_band\",{\"name\":\"age_band\","
                                       "\"bands\":\"10y\"}]}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "dimensions[1]: 'age_band' appears twice; a table has one banding"),
              "%s", errbuf);
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"population\",\"population\":\"estimate\","
                               "\"dimensions\":[{\"name\":\"age_band\",\"bands\":\"1y\"}]}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "not single years"), "%s", errbuf);
}

/* ---- issue 20: codes of several systems, and/or/not ---- */

#define THREE_CONDITIONS                                                                           \
    "\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"},{\"codes\":[\"I10\"],"            \
    "\"system\":\"icd10\"},{\"codes\":[\"K40\"],\"system\":\"opcs4\"}]"

/* The canonical "filters" of a persons query with THREE_CONDITIONS and the
 * given combine tree (and extra filter keys), from its "combine" on. */
static char *canonical_combine(const char *combine)
{
    char json[1024];
    snprintf(json, sizeof json, PERSONS "\"filters\":{" THREE_CONDITIONS ",%s}}", combine);
    char *out = canonical(json);
    /* keep what follows the conditions */
    const char *tail = strstr(out, "}]");
    cr_assert_not_null(tail, "%s", out);
    char *result = strdup(tail + 2);
    free(out);
    return result;
}

Test(query, equivalent_combinations_have_one_canonical_form)
{
    static const struct {
        const char *given, *canonical;
    } cases[] = {
        /* operands in order of their conditions */
        {"\"combine\":{\"or\":[2,{\"and\":[1,0]}]}", ",\"combine\":{\"or\":[{\"and\":[0,1]},2]}}}"},
        /* an or inside an or is one or */
        {"\"combine\":{\"or\":[0,{\"or\":[2,1]}]}", ",\"combine\":{\"or\":[0,1,2]}}}"},
        /* a not of a not cancels; an and of one operand is the operand */
        {"\"combine\":{\"or\":[{\"not\":{\"not\":1}},{\"and\":[0]},2]}",
         ",\"combine\":{\"or\":[0,1,2]}}}"},
        /* an and of conditions (some negated) is the plain form with exclude */
        {"\"combine\":{\"and\":[{\"not\":1},{\"and\":[2,0]}]}", "}}"},
        /* the tree comes before the other filters */
        {"\"combine\":{\"or\":[0,1,2]},\"date_range\":{\"from\":\"2020-01\",\"to\":\"2020-12\"}",
         ",\"combine\":{\"or\":[0,1,2]},\"date_range\":{\"from\":\"2020-01\",\"to\":\"2020-12\"}}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = canonical_combine(cases[i].given);
        cr_expect_str_eq(out, cases[i].canonical, "case %zu", i);
        free(out);
    }
    /* and/not as a tree equals the same with exclude flags */
    char *a = canonical(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":"
                                "\"icd10\"},{\"codes\":[\"I10\"],\"system\":\"icd10\"}],"
                                "\"combine\":{\"and\":[{\"not\":1},0]}}}");
    char *b = canonical(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":"
                                "\"icd10\"},{\"codes\":[\"I10\"],\"system\":\"icd10\","
                                "\"exclude\":true}]}}");
    cr_assert_str_eq(a, b);
    free(a);
    free(b);
    /* an excluded condition under an or becomes a not */
    a = canonical(PERSONS "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":"
                          "\"icd10\"},{\"codes\":[\"I10\"],\"system\":\"icd10\",\"exclude\":true}"
                          "],\"combine\":{\"or\":[1,0]}}}");
    cr_assert(strstr(a, "\"combine\":{\"or\":[0,{\"not\":1}]}"), "%s", a);
    cr_assert_null(strstr(a, "exclude"), "%s", a);
    free(a);
}

Test(query, codes_listed_by_system_are_grouped_in_system_order)
{
    char *out = canonical(PERSONS "\"filters\":{\"conditions\":[{\"codes\":{\"icd10\":[\"E11\","
                                  "\"e10\"],\"snomed\":[\"44054006\"]}}]}}");
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":[{"
                          "\"codes\":{\"snomed\":[\"44054006\"],\"icd10\":[\"E11\",\"E10\"]}}]}}");
    free(out);
    /* one system listed as a map is the plain form */
    out = canonical(PERSONS "\"filters\":{\"conditions\":[{\"codes\":{\"icd10\":[\"I10X\"]}}]}}");
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":[{"
                          "\"codes\":[\"I10\"],\"system\":\"icd10\"}]}}");
    free(out);
}

/* The error decoding json gives (it must fail to decode). */
static int decode_error(const char *json)
{
    struct cc_query *q = NULL;
    errbuf[0] = '\0';
    int rc = cc_query_decode_json(json, strlen(json), NULL, &q, errbuf, sizeof errbuf);
    cr_assert_null(q);
    return rc;
}

Test(validate, combine_and_system_map_errors_name_the_reason)
{
    cr_assert_eq(decode_error(PERSONS "\"filters\":{" THREE_CONDITIONS ",\"combine\":{\"or\":[0,1,"
                                      "1]}}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "filters.combine: condition 1 appears twice"), "%s", errbuf);
    cr_assert_eq(decode_error(PERSONS "\"filters\":{" THREE_CONDITIONS
                                      ",\"combine\":{\"or\":[0,1]}}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf,
                     "filters.combine: condition 2 is not in the tree (name every condition once)");
    cr_assert_eq(decode_error(PERSONS "\"filters\":{" THREE_CONDITIONS
                                      ",\"combine\":{\"xor\":[0,1,2]}}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.combine: unknown operator 'xor'");
    cr_assert_eq(decode_error(PERSONS "\"filters\":{" THREE_CONDITIONS
                                      ",\"combine\":{\"not\":{\"not\":{\"not\":{\"not\":{\"or\":"
                                      "[0,1,2]}}}}}}}"),
                 CC_ETOOBIG);
    cr_assert(strstr(errbuf, "more than 4 levels of and, or and not"), "%s", errbuf);
    cr_assert_eq(decode_error(PERSONS "\"filters\":{\"conditions\":[{\"codes\":{\"icd10\":"
                                      "[\"E11\"]},\"system\":\"icd10\"}]}}"),
                 CC_EPARSE);
    cr_assert(strstr(errbuf, "codes listed by system take no \"system\""), "%s", errbuf);
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"conditions\":[{\"codes\":{\"snomed\":"
                                       "[\"E11\"],\"icd10\":[\"I10\"]}}]}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes[0]: 'E11' is ICD-10 or OPCS-4 but the "
                             "system it is listed under is SNOMED CT");
    /* a negated condition has no first date and no events */
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"events\",\"events_of\":1,\"filters\":{"
                               THREE_CONDITIONS ",\"combine\":{\"or\":[0,{\"not\":1},2]}}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "condition 1 is excluded"), "%s", errbuf);
}

Test(query, a_tree_survives_clone_equal_and_the_msgpack_round_trip)
{
    struct cc_query *q = cc_testquery_from_json(PERSONS "\"filters\":{" THREE_CONDITIONS
                                           ",\"combine\":{\"and\":[0,{\"or\":[1,{\"not\":2}]}]}}}");
    struct cc_query *copy = NULL, *back = NULL;
    cr_assert_eq(cc_query_clone(q, &copy), 0);
    cr_assert(cc_query_equal(q, copy));
    char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(cc_query_encode(q, &bytes, &len), 0);
    cr_assert_eq(cc_query_decode(bytes, len, NULL, &back, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert(cc_query_equal(q, back));
    copy->filters.nodes[0].op = CC_NODE_OR;
    cr_assert_not(cc_query_equal(q, copy));
    cr_assert(cc_query_condition_negated(&q->filters, 2));
    cr_assert_not(cc_query_condition_negated(&q->filters, 1));
    free(bytes);
    cc_query_free(q);
    cc_query_free(copy);
    cc_query_free(back);
}

/* ---- issue 20: small areas and practices ---- */

Test(query, lsoa_and_practice_filters_in_the_canonical_form)
{
    char *out = canonical(PERSONS "\"dimensions\":[\"lsoa\"],\"filters\":{\"practices\":"
                                  "[\"b86002\",\"B86001\"],\"areas\":{\"level\":\"lsoa\","
                                  "\"codes\":[\"E01000002\",\"e01000001\"]}}}");
    cr_assert_str_eq(out, "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"lsoa\"],\"filters\":"
                          "{\"areas\":{\"level\":\"lsoa\",\"codes\":[\"E01000001\","
                          "\"E01000002\"]},\"practices\":[\"B86001\",\"B86002\"]}}");
    free(out);
    struct cc_query *q = cc_testquery_from_json(PERSONS "\"dimensions\":[\"lsoa\"],\"filters\":{\"practices\":"
                                           "[\"B86001\"],\"sex\":\"male\"}}");
    struct cc_query_restriction r[8];
    cr_assert_eq(cc_query_restrictions(q, r, 8), 2);
    cr_assert_eq(r[0].kind, CC_RESTRICT_SEX);
    cr_assert_eq(r[1].kind, CC_RESTRICT_PRACTICES);
    cr_assert_eq(cc_query_n_cells(q, NULL), 33755);
    cc_query_free(q);
}

Test(validate, lsoa_codes_and_practice_codes_are_checked)
{
    cr_assert_eq(validate_json(PERSONS "\"filters\":{\"areas\":{\"level\":\"lsoa\",\"codes\":"
                                       "[\"E08000035\"]}}}"),
                 CC_EINVAL);
    cr_assert_str_eq(errbuf,
                     "filters.areas.codes[0]: 'E08000035' is a lad code but the level is lsoa");
    cr_assert_eq(decode_error(PERSONS "\"filters\":{\"practices\":[\"B86-01\"]}}"), CC_EPARSE);
    cr_assert(strstr(errbuf, "filters.practices[0]: 'B86-01' is not a practice code"), "%s",
              errbuf);
    cr_assert_eq(decode_error(PERSONS "\"filters\":{\"practices\":[\"B86001\",\"b86001\"]}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.practices: 'B86001' appears twice");
    cr_assert_eq(validate_json("{\"v\":1,\"measure\":\"population\",\"population\":\"estimate\","
                               "\"filters\":{\"practices\":[\"B86001\"]}}"),
                 CC_EINVAL);
    cr_assert(strstr(errbuf, "population estimates are by area"), "%s", errbuf);
    cr_assert_eq(validate_json(PERSONS "\"dimensions\":[\"lsoa\",\"sex\"]}"), CC_ETOOBIG);
    cr_assert(strstr(errbuf, "135,020 cells"), "%s", errbuf);
}
