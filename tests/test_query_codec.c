/* Tests for queries/cc_query_decode.c, cc_query_encode.c and cc_query_json.c: msgpack and
 * JSON decoding, canonical encoding, round trips, and the bounds the decoder applies to hostile
 * input. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_query.h"
#include "cc_testquery.h"

static char errbuf[256];

static int json_error(const char *json)
{
    struct cc_query *q = NULL;
    errbuf[0] = '\0';
    int rc = cc_query_decode_json(json, strlen(json), NULL, &q, errbuf, sizeof errbuf);
    cr_assert_null(q);
    return rc;
}

/* Encodes q, decodes the bytes, and checks the result equals q. */
static void assert_round_trip(const struct cc_query *q)
{
    char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(cc_query_encode(q, &bytes, &len), 0);
    struct cc_query *back = NULL;
    int rc = cc_query_decode(bytes, len, NULL, &back, errbuf, sizeof errbuf);
    cr_assert_eq(rc, 0, "%s", errbuf);
    cr_assert(cc_query_equal(q, back));
    char *again = NULL;
    size_t again_len = 0;
    cr_assert_eq(cc_query_encode(back, &again, &again_len), 0);
    cr_assert_eq(again_len, len);
    cr_assert_eq(memcmp(bytes, again, len), 0, "the canonical form is stable");
    free(again);
    free(bytes);
    cc_query_free(back);
}

static const char *const full_query =
    "{\"v\":1,\"measure\":\"events\",\"events_of\":1,\"as_of\":\"2024-01\","
    "\"dimensions\":[\"lad\",{\"name\":\"age_band\",\"bands\":[0,18,65]},\"sex\",\"quarter\"],"
    "\"filters\":{\"conditions\":["
    "{\"codes\":[\"E11\",\"e10.9\"],\"system\":\"icd10\",\"settings\":[\"hospital\"],"
    "\"roles\":[\"primary\"],\"date_range\":{\"from\":\"2020-01\",\"to\":\"2023-12\"}},"
    "{\"codelist\":\"diabetes-review\",\"settings\":\"gp\",\"anchor\":{\"condition\":0,"
    "\"from_days\":0,\"to_days\":90}},"
    "{\"codes\":[\"73211009\"],\"system\":\"snomed\",\"exclude\":true}],"
    "\"date_range\":{\"from\":\"2019-01\",\"to\":\"2023-12\"},"
    "\"age\":{\"min\":18,\"max\":64},\"sex\":[\"female\",\"male\"],"
    "\"settings\":[\"gp\",\"hospital\"],"
    "\"areas\":{\"level\":\"lad\",\"codes\":[\"E08000035\",\"E06000001\"]}}}";

Test(codec, decodes_every_field_of_a_full_query)
{
    struct cc_query *q = cc_testquery_from_json(full_query);
    cr_assert_eq(q->version, 1);
    cr_assert_eq(q->measure, CC_MEASURE_EVENTS);
    cr_assert_eq(q->events_of, 1);
    cr_assert(q->has_as_of);
    cr_assert_eq(q->as_of, cc_query_month(2024, 1));
    cr_assert_eq(q->n_dimensions, 4);
    cr_assert_eq(q->dimensions[0].kind, CC_DIM_LAD);
    cr_assert_eq(q->dimensions[1].kind, CC_DIM_AGE_BAND);
    cr_assert_eq(q->dimensions[1].age_banding, CC_AGE_BANDS_CUSTOM);
    cr_assert_eq(q->dimensions[1].n_age_bounds, 3);
    cr_assert_eq(q->dimensions[1].age_bounds[2], 65);
    cr_assert_eq(q->dimensions[3].kind, CC_DIM_QUARTER);
    const struct cc_query_filters *f = &q->filters;
    cr_assert_eq(f->n_conditions, 3);
    cr_assert_eq(f->conditions[0].system, CC_CODE_ICD10);
    cr_assert_eq(f->conditions[0].n_codes, 2);
    cr_assert_str_eq(f->conditions[0].codes[1].text, "E109", "codes are normalised");
    cr_assert_eq(f->conditions[0].setting_mask, 1u << CC_SETTING_HOSPITAL);
    cr_assert_eq(f->conditions[0].role_mask, 1u << CC_ROLE_PRIMARY);
    cr_assert(f->conditions[0].date_range.present);
    cr_assert_eq(f->conditions[0].date_range.to, cc_query_month(2023, 12));
    cr_assert_str_eq(f->conditions[1].codelist, "diabetes-review");
    cr_assert_eq(f->conditions[1].setting_mask, 1u << CC_SETTING_GP);
    cr_assert(f->conditions[1].anchor.present);
    cr_assert_eq(f->conditions[1].anchor.to_days, 90);
    cr_assert(f->conditions[2].exclude);
    cr_assert_eq(f->age.min_years, 18);
    cr_assert_eq(f->age.max_years, 64);
    cr_assert_eq(f->sex_mask, (1u << CC_SEX_MALE) | (1u << CC_SEX_FEMALE));
    cr_assert_eq(f->areas.level, CC_AREA_LAD);
    cr_assert_eq(f->areas.n_codes, 2);
    cr_assert_str_eq(f->areas.codes[0], "E06000001", "area codes are sorted");
    cc_query_free(q);
}

Test(codec, encode_then_decode_gives_an_equal_query)
{
    struct cc_query *q = cc_testquery_from_json(full_query);
    assert_round_trip(q);
    cc_query_free(q);
    q = cc_testquery_from_json("{\"v\":1,\"measure\":\"population\",\"population\":\"estimate\","
                  "\"dimensions\":[\"icb\",{\"name\":\"age_band\",\"bands\":\"10y\"}]}");
    assert_round_trip(q);
    cc_query_free(q);
    q = cc_testquery_from_json("{\"v\":1,\"measure\":\"persons\"}");
    assert_round_trip(q);
    cc_query_free(q);
}

Test(codec, json_form_is_canonical_and_round_trips)
{
    struct cc_query *q = cc_testquery_from_json("{\"measure\":\"persons\",\"v\":1,"
                                   "\"dimensions\":[\"region\",\"age_band\"]}");
    char *json = NULL;
    cr_assert_eq(cc_query_encode_json(q, &json), 0);
    cr_assert_str_eq(json, "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\","
                           "{\"name\":\"age_band\",\"bands\":\"5y\"}]}");
    struct cc_query *back = cc_testquery_from_json(json);
    cr_assert(cc_query_equal(q, back));
    free(json);
    cc_query_free(back);
    cc_query_free(q);
}

Test(codec, unknown_dimension_names_the_index_and_the_name)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\","
                            "\"dimensions\":[\"region\",\"sex\",\"county\"]}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "dimensions[2]: unknown dimension 'county'");
}

Test(codec, unknown_keys_are_refused_with_their_path)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"colour\":1}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters: unknown key 'colour'");
}

Test(codec, wrong_types_name_the_field_and_the_type)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"age\":"
                            "{\"min\":\"eighteen\"}}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.age.min: must be an integer, not a string");
}

Test(codec, version_other_than_one_is_unsupported)
{
    cr_assert_eq(json_error("{\"v\":2,\"measure\":\"persons\"}"), CC_EUNSUPPORTED);
    cr_assert(strstr(errbuf, "v: version 2"), "%s", errbuf);
}

Test(codec, version_and_measure_are_required)
{
    cr_assert_eq(json_error("{\"measure\":\"persons\"}"), CC_EPARSE);
    cr_assert(strstr(errbuf, "\"v\" is missing"), "%s", errbuf);
    cr_assert_eq(json_error("{\"v\":1}"), CC_EPARSE);
    cr_assert(strstr(errbuf, "\"measure\" is missing"), "%s", errbuf);
}

Test(codec, day_dates_are_refused_as_finer_than_a_month)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"events\",\"filters\":{\"date_range\":"
                            "{\"from\":\"2024-03-15\",\"to\":\"2024-04\"}}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.date_range.from: '2024-03-15' is a day; dates are months "
                             "at finest (YYYY-MM)");
}

Test(codec, duplicate_keys_are_refused)
{
    /* JSON: jansson refuses duplicates itself */
    cr_assert_eq(json_error("{\"v\":1,\"v\":1,\"measure\":\"persons\"}"), CC_EPARSE);
    /* msgpack: the decoder refuses them */
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "measure", 7);
    msgpack_pack_str_with_body(&pk, "persons", 7);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode(buffer.data, buffer.size, NULL, &q, errbuf, sizeof errbuf),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "v: appears twice");
    msgpack_sbuffer_destroy(&buffer);
}

Test(codec, too_many_dimensions_is_refused_at_decode)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"dimensions\":"
                            "[\"region\",\"sex\",\"year\",\"setting\",\"icb\"]}"),
                 CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "dimensions: 5 dimensions, the limit is 4");
}

Test(codec, too_many_codes_is_refused_at_decode)
{
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    limits.max_codes_per_condition = 2;
    const char *json = "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                       "[{\"codes\":[\"E10\",\"E11\",\"E12\"],\"system\":\"icd10\"}]}}";
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode_json(json, strlen(json), &limits, &q, errbuf, sizeof errbuf),
                 CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "filters.conditions[0].codes: 3 codes, the limit is 2");
}

Test(codec, too_many_areas_and_conditions_are_refused)
{
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    limits.max_areas = 1;
    limits.max_conditions = 1;
    const char *areas = "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"areas\":{\"level\":"
                        "\"region\",\"codes\":[\"E12000001\",\"E12000002\"]}}}";
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode_json(areas, strlen(areas), &limits, &q, errbuf, sizeof errbuf),
                 CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "filters.areas.codes: 2 areas, the limit is 1");
    const char *conditions = "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["
                             "{\"settings\":[\"gp\"]},{\"settings\":[\"hospital\"]}]}}";
    cr_assert_eq(cc_query_decode_json(conditions, strlen(conditions), &limits, &q, errbuf,
                                      sizeof errbuf),
                 CC_ETOOBIG);
    cr_assert_str_eq(errbuf, "filters.conditions: 2 conditions, the limit is 1");
}

Test(codec, bytes_over_the_limit_are_refused_before_parsing)
{
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    limits.max_query_bytes = 8;
    struct cc_query *q = NULL;
    const char garbage[16] = {0};
    cr_assert_eq(cc_query_decode(garbage, sizeof garbage, &limits, &q, errbuf, sizeof errbuf),
                 CC_ETOOBIG);
    cr_assert_null(q);
}

Test(codec, deep_nesting_is_refused)
{
    /* 13 nested arrays inside the dimensions key */
    const char *json = "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[[[[[[[[[[[[[1]]]]]]]]]]]]]}";
    cr_assert_eq(json_error(json), CC_ETOOBIG);
    cr_assert(strstr(errbuf, "nested deeper than 12 levels"), "%s", errbuf);
    /* the same in raw msgpack: 0x91 is a one-element array */
    char raw[40];
    memset(raw, 0x91, sizeof raw);
    raw[sizeof raw - 1] = 0x01;
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode(raw, sizeof raw, NULL, &q, errbuf, sizeof errbuf), CC_ETOOBIG);
}

Test(codec, a_container_claiming_more_elements_than_bytes_is_refused)
{
    /* array32 claiming 4 billion elements in 5 bytes: must not allocate for them */
    const char raw[] = {(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xf0, 0x01};
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode(raw, sizeof raw, NULL, &q, errbuf, sizeof errbuf), CC_EPARSE);
    cr_assert(strstr(errbuf, "declares"), "%s", errbuf);
}

Test(codec, truncated_and_trailing_bytes_are_refused)
{
    struct cc_query *q = cc_testquery_from_json("{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"]}");
    char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(cc_query_encode(q, &bytes, &len), 0);
    struct cc_query *back = NULL;
    for (size_t cut = 0; cut < len; cut++) {
        cr_assert_eq(cc_query_decode(bytes, cut, NULL, &back, errbuf, sizeof errbuf), CC_EPARSE,
                     "cut at %zu", cut);
        cr_assert_null(back);
    }
    char *longer = malloc(len + 1);
    memcpy(longer, bytes, len);
    longer[len] = (char)0xc0;
    cr_assert_eq(cc_query_decode(longer, len + 1, NULL, &back, errbuf, sizeof errbuf), CC_EPARSE);
    free(longer);
    free(bytes);
    cc_query_free(q);
}

Test(codec, every_single_byte_corruption_fails_cleanly_or_decodes)
{
    /* Flipping each byte of a valid encoding must never crash or leak: the
     * sanitizer build checks that; here each result is an error or a query. */
    struct cc_query *q = cc_testquery_from_json(full_query);
    char *bytes = NULL;
    size_t len = 0;
    cr_assert_eq(cc_query_encode(q, &bytes, &len), 0);
    int decoded = 0;
    for (size_t i = 0; i < len; i++) {
        for (int flip = 1; flip < 256; flip <<= 1) {
            bytes[i] ^= (char)flip;
            struct cc_query *back = NULL;
            int rc = cc_query_decode(bytes, len, NULL, &back, errbuf, sizeof errbuf);
            cr_assert((rc == 0) == (back != NULL));
            decoded += rc == 0;
            cc_query_free(back);
            bytes[i] ^= (char)flip;
        }
    }
    cr_assert_lt(decoded, (int)len * 8, "most corruptions are caught");
    free(bytes);
    cc_query_free(q);
}

/* Found by fuzz_query: the msgpack decoder took any bytes but NUL as a
 * codelist name, so a name that is not UTF-8 decoded, then failed the
 * canonical JSON form (and could never bind). A name must now be one the
 * registry can hold. */
Test(codec, a_codelist_name_the_registry_cannot_hold_is_refused)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str_with_body(&pk, "measure", 7);
    msgpack_pack_str_with_body(&pk, "persons", 7);
    msgpack_pack_str_with_body(&pk, "filters", 7);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "conditions", 10);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "codelist", 8);
    msgpack_pack_str_with_body(&pk, "h\x9b\x8cpital", 8);
    struct cc_query *q = NULL;
    cr_assert_eq(cc_query_decode(buffer.data, buffer.size, NULL, &q, errbuf, sizeof errbuf),
                 CC_EPARSE);
    cr_assert_null(q);
    cr_assert(strstr(errbuf, "filters.conditions[0].codelist: 'h??pital' is not a codelist name"),
              "%s", errbuf);
    msgpack_sbuffer_destroy(&buffer);

    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                            "[{\"codelist\":\"Diabetes Review\"}]}}"),
                 CC_EPARSE);
    cr_assert(strstr(errbuf, "is not a codelist name"), "%s", errbuf);
    const char ok[] = "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                      "[{\"codelist\":\"diabetes_type-2.v1\"}]}}";
    cr_assert_eq(cc_query_decode_json(ok, sizeof ok - 1, NULL, &q, errbuf, sizeof errbuf), 0, "%s",
                 errbuf);
    cr_assert_str_eq(q->filters.conditions[0].codelist, "diabetes_type-2.v1");
    cc_query_free(q);
}

Test(codec, codes_and_codelist_together_are_refused)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                            "[{\"codes\":[\"E11\"],\"system\":\"icd10\",\"codelist\":\"x\"}]}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.conditions[0]: has both \"codes\" and \"codelist\" (give "
                             "one)");
}

Test(codec, codes_need_a_system)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                            "[{\"codes\":[\"E11\"]}]}}"),
                 CC_EPARSE);
    cr_assert(strstr(errbuf, "need a \"system\""), "%s", errbuf);
}

Test(codec, anchor_needs_its_condition_and_window_end)
{
    cr_assert_eq(json_error("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                            "[{\"settings\":[\"gp\"]},{\"settings\":[\"hospital\"],"
                            "\"anchor\":{\"to_days\":30}}]}}"),
                 CC_EPARSE);
    cr_assert_str_eq(errbuf, "filters.conditions[1].anchor: needs \"condition\", the index of "
                             "the anchor condition");
}

Test(codec, malformed_json_reports_line_and_column)
{
    cr_assert_eq(json_error("{\"v\":1,\n\"measure\":}"), CC_EPARSE);
    cr_assert(strstr(errbuf, "line 2"), "%s", errbuf);
}

Test(codec, decodes_an_embedded_object)
{
    struct cc_query *q = cc_testquery_from_json(full_query);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "query", 5);
    cr_assert_eq(cc_query_pack(q, &pk), 0);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    cr_assert_eq(msgpack_unpack_next(&unpacked, buffer.data, buffer.size, &offset),
                 MSGPACK_UNPACK_SUCCESS);
    struct cc_query *inner = NULL;
    cr_assert_eq(cc_query_decode_object(&unpacked.data.via.array.ptr[1], NULL, &inner, errbuf,
                                        sizeof errbuf),
                 0, "%s", errbuf);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
    cr_assert(cc_query_equal(q, inner), "the query does not point into the freed buffer");
    cc_query_free(inner);
    cc_query_free(q);
}

Test(codec, icd10_filler_x_is_dropped_as_the_store_drops_it)
{
    struct cc_query *q = cc_testquery_from_json("{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
                                   "[{\"codes\":[\"R69X\",\"i10.x\"],\"system\":\"icd10\"}]}}");
    cr_assert_str_eq(q->filters.conditions[0].codes[0].text, "R69");
    cr_assert_str_eq(q->filters.conditions[0].codes[1].text, "I10");
    cc_query_free(q);
}

Test(codec, random_bytes_never_crash_the_decoder)
{
    /* A fixed-seed generator, so a failure is reproducible. Half the inputs
     * start with a map header so the decoder gets past the first byte. */
    uint64_t state = 0x9e3779b97f4a7c15u;
    unsigned char buf[256];
    for (int round = 0; round < 20000; round++) {
        size_t len = 1 + (size_t)(round % 255);
        for (size_t i = 0; i < len; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf[i] = (unsigned char)state;
        }
        if (round % 2)
            buf[0] = 0x80 | (buf[0] & 0x0f);
        struct cc_query *q = NULL;
        int rc = cc_query_decode((const char *)buf, len, NULL, &q, errbuf, sizeof errbuf);
        cr_assert((rc == 0) == (q != NULL));
        cr_assert(rc == 0 || errbuf[0] != '\0', "every failure says why (rc %d)", rc);
        cc_query_free(q);
    }
}

Test(codec, equal_queries_written_differently_encode_to_the_same_bytes)
{
    struct cc_query *a = cc_testquery_from_json(
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"sex\":[\"male\",\"female\"],\"areas\":"
        "{\"codes\":[\"E12000002\",\"E12000001\"],\"level\":\"region\"}}}");
    struct cc_query *b = cc_testquery_from_json(
        "{\"filters\":{\"areas\":{\"level\":\"region\",\"codes\":[\"E12000001\",\"E12000002\"]},"
        "\"sex\":[\"female\",\"male\"]},\"measure\":\"persons\",\"v\":1}");
    char *bytes_a = NULL, *bytes_b = NULL;
    size_t len_a = 0, len_b = 0;
    cr_assert_eq(cc_query_encode(a, &bytes_a, &len_a), 0);
    cr_assert_eq(cc_query_encode(b, &bytes_b, &len_b), 0);
    cr_assert_eq(len_a, len_b);
    cr_assert_eq(memcmp(bytes_a, bytes_b, len_a), 0);
    free(bytes_a);
    free(bytes_b);
    cc_query_free(a);
    cc_query_free(b);
}

Test(codec, negative_anchor_days_round_trip)
{
    struct cc_query *q = cc_testquery_from_json(
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":[{\"settings\":\"gp\"},"
        "{\"settings\":\"hospital\",\"anchor\":{\"condition\":0,\"from_days\":-30,\"to_days\":-1}}]}}");
    cr_assert_eq(q->filters.conditions[1].anchor.from_days, -30);
    cr_assert_eq(q->filters.conditions[1].anchor.to_days, -1);
    assert_round_trip(q);
    cc_query_free(q);
}
