/*
 * Tests for the columnar store (core/cc_store.c, cc_store_builder.c, cc_store_file.c):
 * building by hand and checking every column, look-ups, the snapshot file's
 * round trip and its refusal of corrupt, truncated and crafted files.
 */
#include <criterion/criterion.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_model.h"
#include "cc_store.h"
#include "cc_store_internal.h"
#include "cc_testfs.h"

/* ---- fixtures --------------------------------------------------------- */

/* Areas given out of order, so the builder must sort and remap them. */
static const char region_codes[2][CC_AREA_CODE_BYTES] = {"E12000002", "E12000001"};
static const char icb_codes[2][CC_AREA_CODE_BYTES] = {"E54000050", "E54000048"};
static const char lad_codes[3][CC_AREA_CODE_BYTES] = {"E08000003", "E06000001", "E07000010"};
static const char lsoa_codes[4][CC_AREA_CODE_BYTES] = {"E01000004", "E01000001", "E01000003",
                                                       "E01000002"};
static const char *const region_names[2] = {"North West", "North East"};
static const char *const icb_names[2] = {"ICB Fifty", "ICB Forty-eight"};
static const char *const lad_names[3] = {"Bolton", "Hartlepool", "Amber"};
static const char *const lsoa_names[4] = {"Bolton 004", "Hartlepool 001", "Amber 003",
                                          "Bolton 002"};
static const uint16_t icb_region[2] = {0, 1};
static const uint16_t lad_icb[3] = {0, 1, 1};
static const uint16_t lsoa_lad[4] = {0, 1, 2, 0};

static uint32_t population[4 * 2 * CC_N_AGE_BANDS_5Y];
static uint64_t postcode_keys[3];
static const uint16_t postcode_lsoa_in[3] = {0, 1, 2};

static struct cc_area_input make_areas(void)
{
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2 * CC_N_AGE_BANDS_5Y; k++)
            population[i * 2 * CC_N_AGE_BANDS_5Y + k] = (uint32_t)((i + 1) * 1000 + k);
    postcode_keys[0] = cc_postcode_pack("LS1 4AP", 7);
    postcode_keys[1] = cc_postcode_pack("AB1 0AA", 7);
    postcode_keys[2] = cc_postcode_pack("SW1A 1AA", 8);
    struct cc_area_input in = {
        .n_lsoa = 4, .n_lad = 3, .n_icb = 2, .n_region = 2,
        .lsoa_code = lsoa_codes, .lad_code = lad_codes, .icb_code = icb_codes,
        .region_code = region_codes,
        .lsoa_name = lsoa_names, .lad_name = lad_names, .icb_name = icb_names,
        .region_name = region_names,
        .lsoa_lad = lsoa_lad, .lad_icb = lad_icb, .icb_region = icb_region,
        .population = population,
        .n_postcodes = 3, .postcode_key = postcode_keys, .postcode_lsoa = postcode_lsoa_in,
    };
    return in;
}

static cc_pseudonym pseudonym_of(uint8_t fill)
{
    cc_pseudonym p;
    memset(p.bytes, fill, sizeof p.bytes);
    return p;
}

static struct cc_person_input person_input(uint8_t fill, uint16_t lsoa, uint16_t practice)
{
    struct cc_person_input in = {
        .pseudonym = pseudonym_of(fill),
        .postcode_pseudonym = pseudonym_of((uint8_t)(fill + 1)),
        .dob = 20000 + fill,
        .sex = CC_SEX_FEMALE,
        .lsoa = lsoa,
        .practice = practice,
        .record_key = 0xabc00000u + fill,
    };
    return in;
}

static void add_record(cc_store_builder *b, uint32_t person, uint8_t setting, cc_day date,
                       uint8_t flags, const struct cc_code_input *codes, size_t n)
{
    cr_assert_eq(cc_store_builder_record(b, person, setting, date, flags, codes, n), 0);
}

/* The store described in the comments of the tests below: persons A (0), B
 * (1), C (2); six records appended out of order. */
static cc_store_builder *build_sample(void)
{
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    struct cc_area_input areas = make_areas();
    cr_assert_eq(cc_store_builder_set_areas(b, &areas), 0);
    cr_assert_eq(cc_store_builder_practice(b, "Y00002"), 0);
    cr_assert_eq(cc_store_builder_practice(b, "B86001"), 1);
    struct cc_person_input a = person_input(0x30, 3, 0);
    struct cc_person_input pb = person_input(0x10, 0, UINT16_MAX);
    struct cc_person_input c = person_input(0x20, UINT16_MAX, 1);
    cr_assert_eq(cc_store_builder_person(b, &a), 0);
    cr_assert_eq(cc_store_builder_person(b, &pb), 1);
    cr_assert_eq(cc_store_builder_person(b, &c), 2);

    struct cc_code_input asthma = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "22298006"};
    struct cc_code_input diabetes = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "73211009"};
    struct cc_code_input r1[3] = {{CC_CODE_ICD10, CC_ROLE_PRIMARY, "E11"},
                                  {CC_CODE_ICD10, CC_ROLE_SECONDARY, "I10"},
                                  {CC_CODE_OPCS4, CC_ROLE_PROCEDURE, "K401"}};
    struct cc_code_input r2[2] = {asthma, diabetes};
    struct cc_code_input r4[2] = {{CC_CODE_ICD10, CC_ROLE_SECONDARY, "E119"},
                                  {CC_CODE_ICD10, CC_ROLE_PRIMARY, "E119"}};
    add_record(b, 0, CC_SETTING_GP, 100, 0, &asthma, 1);                    /* r0 */
    add_record(b, 1, CC_SETTING_HOSPITAL, 50, CC_ADMIT_EMERGENCY, r1, 3);  /* r1 */
    add_record(b, 0, CC_SETTING_GP, 90, 0, r2, 2);                         /* r2 */
    add_record(b, 2, CC_SETTING_COMMUNITY, 70, 0, &diabetes, 1);           /* r3 */
    add_record(b, 0, CC_SETTING_HOSPITAL, 60, CC_ADMIT_ELECTIVE, r4, 2);   /* r4 */
    add_record(b, 1, CC_SETTING_GP, 10, 0, &asthma, 1);                    /* r5 */
    /* the feed identities of r1, r3 and r4, given out of order and one twice */
    static const uint8_t ids[4][CC_FEED_IDENTITY_BYTES] = {{9}, {3}, {9}, {5}};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(cc_store_builder_feed_identity(b, ids[i]), 0);
    return b;
}

static cc_store *finish_sample(void)
{
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(build_sample(), &s), 0);
    return s;
}

static char tmp_dir[64];

static void make_tmp_dir(void)
{
    cc_testfs_make_dir(tmp_dir, sizeof tmp_dir, "store");
}

static void remove_tmp_dir(void)
{
    cc_testfs_remove_tree(tmp_dir);
}

static void tmp_path(char *out, size_t len, const char *name)
{
    cc_testfs_path(out, len, tmp_dir, name);
}


/* The key the tests' snapshots are written with. */
static const uint8_t TEST_KEY[CC_STORE_KEY_BYTES] = {0x5e, 0xc2, 0xe7, 0x01, 0x17};

/* The documented layout (docs/store-format.md). */
#define FIXED_HEADER 152
#define ENTRY 56
#define HEADER_COVERED (FIXED_HEADER + STORE_N_SECTIONS * ENTRY)

static uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void section_span(const uint8_t *file, int section, uint64_t *offset, uint64_t *length)
{
    const uint8_t *e = file + FIXED_HEADER + section * ENTRY;
    *offset = le64(e + 8);
    *length = le64(e + 16);
}

/* Recomputes a section's checksum and the header checksum after an edit. */
static void reseal(uint8_t *file, int section)
{
    uint64_t offset, length;
    section_span(file, section, &offset, &length);
    uint8_t *e = file + FIXED_HEADER + section * ENTRY;
    crypto_generichash(e + 24, 32, file + offset, length, TEST_KEY, CC_STORE_KEY_BYTES);
    crypto_generichash(file + HEADER_COVERED, 32, file, HEADER_COVERED, TEST_KEY,
                       CC_STORE_KEY_BYTES);
}

/* ---- building ---------------------------------------------------------- */

Test(store, feed_identities_are_kept_sorted_once_and_carried_to_the_next_store)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_feed_identities, 3);
    cr_assert_eq(v->feed_identity[0][0], 3);
    cr_assert_eq(v->feed_identity[1][0], 5);
    cr_assert_eq(v->feed_identity[2][0], 9);
    cc_store_builder *b = NULL;
    cr_assert_eq(cc_store_builder_new(s, &b), 0);
    static const uint8_t more[3][CC_FEED_IDENTITY_BYTES] = {
        {4}, {7, 0, 0, 0, 0, 0, 0, 0, 2}, {7, 0, 0, 0, 0, 0, 0, 0, 1}};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(cc_store_builder_feed_identity(b, more[i]), 0);
    cc_store *next = NULL;
    cr_assert_eq(cc_store_builder_finish(b, &next), 0);
    v = cc_store_columns(next);
    cr_assert_eq(v->n_feed_identities, 6);
    cr_assert_eq(v->feed_identity[1][0], 4);
    /* the same first 8 bytes: ordered by the rest */
    cr_assert_eq(v->feed_identity[3][0], 7);
    cr_assert_eq(v->feed_identity[3][8], 1);
    cr_assert_eq(v->feed_identity[4][8], 2);
    cc_store_free(next);
    cc_store_free(s);
}

Test(store, builder_sorts_areas_and_remaps_the_hierarchy)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_region, 2);
    cr_assert_str_eq(v->region_code[0], "E12000001");
    cr_assert_str_eq(v->region_code[1], "E12000002");
    cr_assert_str_eq(v->icb_code[0], "E54000048");
    cr_assert_eq(v->icb_region[0], 0);
    cr_assert_eq(v->icb_region[1], 1);
    cr_assert_str_eq(v->lad_code[0], "E06000001");
    cr_assert_str_eq(v->lad_code[1], "E07000010");
    cr_assert_str_eq(v->lad_code[2], "E08000003");
    cr_assert_eq(v->lad_icb[0], 0);
    cr_assert_eq(v->lad_icb[1], 0);
    cr_assert_eq(v->lad_icb[2], 1);
    const char *lsoa_sorted[4] = {"E01000001", "E01000002", "E01000003", "E01000004"};
    const uint16_t lad_of_lsoa[4] = {0, 2, 1, 2};
    const char *lsoa_name_sorted[4] = {"Hartlepool 001", "Bolton 002", "Amber 003",
                                       "Bolton 004"};
    for (int i = 0; i < 4; i++) {
        cr_assert_str_eq(v->lsoa_code[i], lsoa_sorted[i]);
        cr_assert_eq(v->lsoa_lad[i], lad_of_lsoa[i], "lsoa %d", i);
        cr_assert_str_eq(v->name_blob + v->lsoa_name_offset[i], lsoa_name_sorted[i]);
    }
    cr_assert_str_eq(v->name_blob + v->lad_name_offset[0], "Hartlepool");
    cr_assert_str_eq(v->name_blob + v->region_name_offset[0], "North East");
    /* population rows follow their LSOA: sorted LSOA 0 was input LSOA 1 */
    cr_assert_eq(v->population[0], 2000);
    cr_assert_eq(v->population[2 * CC_N_AGE_BANDS_5Y * 3 + 5], 1005);
    cc_store_free(s);
}

Test(store, builder_sorts_postcodes_and_maps_them_to_sorted_lsoas)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_postcodes, 3);
    cr_assert_lt(v->postcode_key[0], v->postcode_key[1]);
    cr_assert_lt(v->postcode_key[1], v->postcode_key[2]);
    cr_assert_eq(cc_store_postcode_lsoa(s, "AB1 0AA", 7), 0);
    cr_assert_eq(cc_store_postcode_lsoa(s, "LS1 4AP", 7), 3);
    cr_assert_eq(cc_store_postcode_lsoa(s, "SW1A 1AA", 8), 2);
    cr_assert_eq(cc_store_postcode_lsoa(s, "LS1 4AQ", 7), -1);
    cr_assert_eq(cc_store_postcode_lsoa(s, "ls1 4ap", 7), -1);
    cc_store_free(s);
}

Test(store, finish_keeps_person_columns_and_sorts_practices)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_persons, 3);
    cr_assert_eq(v->n_practices, 2);
    cr_assert_str_eq(v->practice_code[0], "B86001");
    cr_assert_str_eq(v->practice_code[1], "Y00002");
    const uint8_t fill[3] = {0x30, 0x10, 0x20};
    const uint16_t lsoa[3] = {3, 0, UINT16_MAX};
    const uint16_t practice[3] = {1, UINT16_MAX, 0}; /* remapped to sorted ids */
    for (int p = 0; p < 3; p++) {
        cc_pseudonym expect = pseudonym_of(fill[p]);
        cc_pseudonym expect_postcode = pseudonym_of((uint8_t)(fill[p] + 1));
        cr_assert_eq(memcmp(&v->person_pseudonym[p], &expect, sizeof expect), 0);
        cr_assert_eq(memcmp(&v->person_postcode_pseudonym[p], &expect_postcode,
                            sizeof expect_postcode), 0);
        cr_assert_eq(v->person_dob[p], 20000 + fill[p]);
        cr_assert_eq(v->person_sex[p], CC_SEX_FEMALE);
        cr_assert_eq(v->person_lsoa[p], lsoa[p], "person %d", p);
        cr_assert_eq(v->person_practice[p], practice[p], "person %d", p);
        cr_assert_eq(v->person_record_key[p], 0xabc00000u + fill[p]);
    }
    cc_store_free(s);
}

Test(store, finish_sorts_records_by_setting_person_and_date)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_records, 6);
    const uint64_t first[5] = {0, 0, 3, 5, 6};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(v->setting_first[i], first[i], "setting_first[%d]", i);
    /* new order: r2, r0, r5 | r4, r1 | r3 */
    const uint32_t person[6] = {0, 0, 1, 0, 1, 2};
    const uint16_t date[6] = {90, 100, 10, 60, 50, 70};
    const uint8_t flags[6] = {0, 0, 0, CC_ADMIT_ELECTIVE, CC_ADMIT_EMERGENCY, 0};
    for (int r = 0; r < 6; r++) {
        cr_assert_eq(v->record_person[r], person[r], "record %d", r);
        cr_assert_eq(v->record_date[r], date[r], "record %d", r);
        cr_assert_eq(v->record_flags[r], flags[r], "record %d", r);
    }
    cc_store_free(s);
}

/* Repeats among the records added since a point are dropped, the earliest
 * of each kept. To the sample's r0-r5: r6 (r0 again), then the point, then
 * r7 (r0 again), r8 (r0's person and day, another code), r9 (r0's code on
 * another day), r10 (r1 again: a hospital record, all three codes), r11
 * (r8 again) and r12 (r0 with other flags). Since the point only r11
 * repeats a record since it; from the start r6, r7 and r10 repeat earlier
 * ones too. */
Test(store, repeats_since_a_point_are_dropped_the_earliest_kept)
{
    cc_store_builder *b = build_sample();
    struct cc_code_input asthma = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "22298006"};
    struct cc_code_input diabetes = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "73211009"};
    struct cc_code_input r1[3] = {{CC_CODE_ICD10, CC_ROLE_PRIMARY, "E11"},
                                  {CC_CODE_ICD10, CC_ROLE_SECONDARY, "I10"},
                                  {CC_CODE_OPCS4, CC_ROLE_PROCEDURE, "K401"}};
    add_record(b, 0, CC_SETTING_GP, 100, 0, &asthma, 1); /* r6 */
    uint64_t point = cc_store_builder_n_records(b);
    cr_assert_eq(point, 7);
    add_record(b, 0, CC_SETTING_GP, 100, 0, &asthma, 1);                   /* r7 */
    add_record(b, 0, CC_SETTING_GP, 100, 0, &diabetes, 1);                 /* r8 */
    add_record(b, 0, CC_SETTING_GP, 101, 0, &asthma, 1);                   /* r9 */
    add_record(b, 1, CC_SETTING_HOSPITAL, 50, CC_ADMIT_EMERGENCY, r1, 3);  /* r10 */
    add_record(b, 0, CC_SETTING_GP, 100, 0, &diabetes, 1);                 /* r11 */
    add_record(b, 0, CC_SETTING_GP, 100, CC_ADMIT_ELECTIVE, &asthma, 1);   /* r12 */
    uint64_t dropped = 0;
    cr_assert_eq(cc_store_builder_drop_repeats(b, point, &dropped), 0);
    cr_assert_eq(dropped, 1);
    cr_assert_eq(cc_store_builder_drop_repeats(b, 0, &dropped), 0);
    /* from the start: r6 repeats r0, r7 r0, r10 r1 */
    cr_assert_eq(dropped, 3);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    /* 13 added, 4 dropped: the sample's six, r8, r9 and r12 */
    cr_assert_eq(v->n_records, 9);
    cc_store_free(s);
}

/* The same when every record since the point has one code (the GP events'
 * case, whose codes are found without an offset array): after the sample's
 * six records (r1 with three codes), r6 asthma and r7 diabetes on one day,
 * r8 and r9 the two again, r10 asthma the next day. */
Test(store, repeats_of_one_code_records_are_dropped_after_records_of_several)
{
    cc_store_builder *b = build_sample();
    struct cc_code_input asthma = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "22298006"};
    struct cc_code_input diabetes = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "73211009"};
    uint64_t point = cc_store_builder_n_records(b);
    add_record(b, 2, CC_SETTING_GP, 100, 0, &asthma, 1);   /* r6 */
    add_record(b, 2, CC_SETTING_GP, 100, 0, &diabetes, 1); /* r7 */
    add_record(b, 2, CC_SETTING_GP, 100, 0, &diabetes, 1); /* r8: r7 again */
    add_record(b, 2, CC_SETTING_GP, 100, 0, &asthma, 1);   /* r9: r6 again */
    add_record(b, 2, CC_SETTING_GP, 101, 0, &asthma, 1);   /* r10 */
    add_record(b, 2, CC_SETTING_GP, 100, 0, &diabetes, 1); /* r11: r7 again */
    uint64_t dropped = 0;
    cr_assert_eq(cc_store_builder_drop_repeats(b, point, &dropped), 0);
    cr_assert_eq(dropped, 3);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_records, 9);
    /* person 2 keeps one asthma and one diabetes record on day 100 */
    size_t day100 = 0;
    for (uint64_t r = 0; r < v->n_records; r++)
        day100 += v->record_person[r] == 2 && v->record_date[r] == 100;
    cr_assert_eq(day100, 2);
    cc_store_free(s);
}

Test(store, finish_assigns_code_ids_in_order_and_builds_postings)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_codes, 6);
    const uint8_t system[6] = {CC_CODE_SNOMED, CC_CODE_SNOMED, CC_CODE_ICD10,
                               CC_CODE_ICD10,  CC_CODE_ICD10,  CC_CODE_OPCS4};
    const char *text[6] = {"22298006", "73211009", "E11", "E119", "I10", "K401"};
    const uint64_t code_first[7] = {0, 3, 5, 6, 7, 8, 9};
    const uint32_t records[9] = {0, 1, 2, 0, 5, 4, 3, 4, 4};
    const uint8_t role[9] = {0, 0, 0, 0, 0, CC_ROLE_PRIMARY, CC_ROLE_PRIMARY,
                             CC_ROLE_SECONDARY, CC_ROLE_PROCEDURE};
    for (int c = 0; c < 6; c++) {
        cr_assert_eq(v->code_system[c], system[c], "code %d", c);
        cr_assert_str_eq(v->code_text[c], text[c]);
    }
    for (int c = 0; c <= 6; c++)
        cr_assert_eq(v->code_first[c], code_first[c], "code_first[%d]", c);
    for (int k = 0; k < 9; k++) {
        cr_assert_eq(CC_POSTING_RECORD(v->posting_records[k]), records[k], "posting %d", k);
        cr_assert_eq(CC_POSTING_ROLE(v->posting_records[k]), role[k], "posting %d", k);
    }
    char reason[160];
    cr_assert_eq(cc_store_validate(s, reason, sizeof reason), 0);
    cc_store_free(s);
}

Test(store, a_code_given_twice_in_a_record_is_posted_once_with_the_first_role)
{
    cc_store *s = finish_sample();
    int64_t e119 = cc_store_find_code(s, CC_CODE_ICD10, "E119");
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_geq(e119, 0);
    cr_assert_eq(v->code_first[e119 + 1] - v->code_first[e119], 1);
    cr_assert_eq(CC_POSTING_ROLE(v->posting_records[v->code_first[e119]]), CC_ROLE_PRIMARY);
    cc_store_free(s);
}

Test(store, updating_a_person_by_pseudonym_keeps_the_index)
{
    cc_store_builder *b = build_sample();
    struct cc_person_input again = person_input(0x10, 2, 0);
    again.sex = CC_SEX_MALE;
    cr_assert_eq(cc_store_builder_person(b, &again), 1);
    cr_assert_eq(cc_store_builder_columns(b)->n_persons, 3);
    cc_pseudonym c = pseudonym_of(0x20), unknown = pseudonym_of(0x77);
    cr_assert_eq(cc_store_builder_find_person(b, &c), 2);
    cr_assert_eq(cc_store_builder_find_person(b, &unknown), -1);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->person_sex[1], CC_SEX_MALE);
    cr_assert_eq(v->person_lsoa[1], 2);
    cr_assert_eq(v->person_practice[1], 1); /* Y00002, sorted id 1 */
    cc_store_free(s);
}

Test(store, builder_from_a_base_adds_records_and_keeps_person_indices)
{
    cc_store *base = finish_sample();
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(base, &b), 0);
    const struct cc_store_columns *bv = cc_store_builder_columns(b);
    cr_assert_eq(bv->n_persons, 3);
    cr_assert_eq(bv->n_records, 6);
    cr_assert_eq(cc_store_builder_postcode_lsoa(b, "LS1 4AP", 7), 3);
    struct cc_person_input d = person_input(0x05, 1, 0);
    cr_assert_eq(cc_store_builder_person(b, &d), 3);
    cc_pseudonym a = pseudonym_of(0x30);
    cr_assert_eq(cc_store_builder_find_person(b, &a), 0);
    struct cc_code_input e110 = {CC_CODE_ICD10, CC_ROLE_PRIMARY, "E110"};
    add_record(b, 3, CC_SETTING_HOSPITAL, 40, CC_ADMIT_OTHER, &e110, 1);
    add_record(b, 0, CC_SETTING_HOSPITAL, 55, CC_ADMIT_OTHER, &e110, 1);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_persons, 4);
    cr_assert_eq(v->n_records, 8);
    for (uint32_t p = 0; p < 3; p++)
        cr_assert_eq(memcmp(&v->person_pseudonym[p], &cc_store_columns(base)->person_pseudonym[p],
                            sizeof(cc_pseudonym)), 0, "person %u moved", p);
    cr_assert_eq(cc_store_find_person(s, &a), 0);
    /* hospital: A 55, A 60, B 50, D 40 */
    const uint64_t first[5] = {0, 0, 3, 7, 8};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(v->setting_first[i], first[i]);
    const uint32_t person[4] = {0, 0, 1, 3};
    const uint16_t date[4] = {55, 60, 50, 40};
    for (int r = 0; r < 4; r++) {
        cr_assert_eq(v->record_person[3 + r], person[r]);
        cr_assert_eq(v->record_date[3 + r], date[r]);
    }
    /* the base's postings survive the round trip through the builder */
    int64_t k401 = cc_store_find_code(s, CC_CODE_OPCS4, "K401");
    cr_assert_geq(k401, 0);
    cr_assert_eq(CC_POSTING_RECORD(v->posting_records[v->code_first[k401]]), 5);
    cr_assert_eq(CC_POSTING_ROLE(v->posting_records[v->code_first[k401]]), CC_ROLE_PROCEDURE);
    int64_t e110_id = cc_store_find_code(s, CC_CODE_ICD10, "E110");
    cr_assert_eq(v->code_first[e110_id + 1] - v->code_first[e110_id], 2);
    cr_assert_eq(CC_POSTING_RECORD(v->posting_records[v->code_first[e110_id]]), 3);
    cr_assert_eq(CC_POSTING_RECORD(v->posting_records[v->code_first[e110_id] + 1]), 6);
    cc_store_free(s);
    cc_store_free(base);
}

/* Records of persons A (0) and B (1) in 2023 and 2024, appended person by
 * person: the store orders them by (setting, year, person, date), so each
 * year of a setting is one run, found by cc_store_year_records. */
Test(store, finish_sorts_records_by_setting_year_person_and_date)
{
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    struct cc_area_input areas = make_areas();
    cr_assert_eq(cc_store_builder_set_areas(b, &areas), 0);
    struct cc_person_input a = person_input(0x30, 3, UINT16_MAX);
    struct cc_person_input pb = person_input(0x10, 0, UINT16_MAX);
    cr_assert_eq(cc_store_builder_person(b, &a), 0);
    cr_assert_eq(cc_store_builder_person(b, &pb), 1);
    struct cc_code_input e11 = {CC_CODE_ICD10, CC_ROLE_PRIMARY, "E11"};
    cc_day a2024 = cc_day_from_ymd(2024, 3, 1), a2023 = cc_day_from_ymd(2023, 12, 31);
    cc_day b2023 = cc_day_from_ymd(2023, 1, 1), b2024 = cc_day_from_ymd(2024, 1, 1);
    add_record(b, 0, CC_SETTING_HOSPITAL, a2024, 0, &e11, 1);
    add_record(b, 0, CC_SETTING_HOSPITAL, a2023, 0, &e11, 1);
    add_record(b, 1, CC_SETTING_HOSPITAL, b2024, 0, &e11, 1);
    add_record(b, 1, CC_SETTING_HOSPITAL, b2023, 0, &e11, 1);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    /* 2023: A, B; 2024: A, B */
    const uint32_t person[4] = {0, 1, 0, 1};
    const cc_day date[4] = {a2023, b2023, a2024, b2024};
    for (int r = 0; r < 4; r++) {
        cr_assert_eq(v->record_person[r], person[r], "record %d", r);
        cr_assert_eq(v->record_date[r], date[r], "record %d", r);
    }
    uint64_t first, last;
    cc_store_year_records(v, CC_SETTING_HOSPITAL, 2023, &first, &last);
    cr_assert(first == 0 && last == 2, "2023: [%llu, %llu)", (unsigned long long)first,
              (unsigned long long)last);
    cc_store_year_records(v, CC_SETTING_HOSPITAL, 2024, &first, &last);
    cr_assert(first == 2 && last == 4);
    cc_store_year_records(v, CC_SETTING_HOSPITAL, 2025, &first, &last);
    cr_assert_eq(first, last);
    cc_store_year_records(v, CC_SETTING_GP, 2024, &first, &last);
    cr_assert_eq(first, last);
    /* the code's postings follow the records: ascending record indices */
    int64_t code = cc_store_find_code(s, CC_CODE_ICD10, "E11");
    for (uint64_t k = v->code_first[code]; k < v->code_first[code + 1]; k++)
        cr_assert_eq(CC_POSTING_RECORD(v->posting_records[k]), k - v->code_first[code]);
    char reason[256];
    cr_assert_eq(cc_store_validate(s, reason, sizeof reason), 0, "%s", reason);
    cc_store_free(s);
}

/* The person sets of frequent codes: built on demand, one per (code,
 * setting) with enough postings, holding exactly the persons with such a
 * record, and counted in the store's memory. */
Test(store, index_holds_the_persons_of_frequent_codes)
{
    cc_store *s = finish_sample();
    const struct cc_store_columns *v = cc_store_columns(s);
    size_t before = cc_store_memory_bytes(s);
    cr_assert_eq(cc_store_index_memory_bytes(s), 0);
    int64_t asthma = cc_store_find_code(s, CC_CODE_SNOMED, "22298006");
    cr_assert_null(cc_store_code_persons(s, (uint32_t)asthma, CC_SETTING_GP)); /* not built */
    cr_assert_eq(cc_store_index_build(s), 0);
    cr_assert_eq(cc_store_index_build(s), 0); /* once */
    cr_assert_gt(cc_store_index_memory_bytes(s), 0);
    cr_assert_eq(cc_store_memory_bytes(s), before + cc_store_index_memory_bytes(s));
    /* 3 persons: every pair with a posting is frequent (n_persons / 16 rounds up to 1) */
    for (uint32_t code = 0; code < v->n_codes; code++)
        for (int setting = 1; setting <= 3; setting++) {
            uint64_t first, last, expect = 0;
            cc_store_postings_in_setting(v, code, setting, &first, &last);
            for (uint64_t k = first; k < last; k++)
                expect |= 1ULL << v->record_person[CC_POSTING_RECORD(v->posting_records[k])];
            const uint64_t *set = cc_store_code_persons(s, code, setting);
            if (first == last) {
                cr_assert_null(set, "code %u setting %d has no postings", code, setting);
                continue;
            }
            cr_assert_not_null(set, "code %u setting %d", code, setting);
            cr_assert_eq(set[0], expect, "code %u setting %d", code, setting);
        }
    cc_day first_day, last_day;
    cr_assert_eq(cc_store_record_days(s, &first_day, &last_day), 0);
    cr_assert(first_day == 10 && last_day == 100, "%d..%d", first_day, last_day);
    cc_store_free(s);
}

Test(store, drop_records_removes_one_setting_of_one_person)
{
    cc_store *base = finish_sample();
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(base, &b), 0);
    cr_assert_eq(cc_store_builder_drop_records(b, 0, CC_SETTING_GP), 0);
    /* a record added after the drop stays */
    struct cc_code_input asthma = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "22298006"};
    add_record(b, 0, CC_SETTING_GP, 300, 0, &asthma, 1);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_records, 5);
    cr_assert_eq(v->setting_first[2], 2); /* GP: A's new record, then B */
    cr_assert_eq(v->record_person[0], 0);
    cr_assert_eq(v->record_date[0], 300);
    cr_assert_eq(v->record_person[1], 1);
    cr_assert_eq(v->record_person[2], 0); /* A's hospital record kept */
    int64_t asthma_id = cc_store_find_code(s, CC_CODE_SNOMED, "22298006");
    cr_assert_eq(v->code_first[asthma_id + 1] - v->code_first[asthma_id], 2);
    int64_t diabetes = cc_store_find_code(s, CC_CODE_SNOMED, "73211009");
    cr_assert_eq(v->code_first[diabetes + 1] - v->code_first[diabetes], 1); /* C only */
    cr_assert_eq(cc_store_builder_new(base, &b), 0);
    cr_assert_eq(cc_store_builder_drop_records(b, 9, CC_SETTING_GP), CC_EINVAL);
    cr_assert_eq(cc_store_builder_drop_records(b, 0, 0), CC_EINVAL);
    cc_store_builder_free(b);
    cc_store_free(s);
    cc_store_free(base);
}

Test(store, builder_refuses_invalid_input)
{
    cc_store_builder *b = build_sample();
    struct cc_code_input ok = {CC_CODE_ICD10, CC_ROLE_PRIMARY, "E11"};
    struct cc_code_input bad_system = {7, CC_ROLE_PRIMARY, "E11"};
    struct cc_code_input too_long = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "12345678901234567890"};
    cr_assert_eq(cc_store_builder_record(b, 3, CC_SETTING_GP, 1, 0, &ok, 1), CC_EINVAL);
    cr_assert_eq(cc_store_builder_record(b, 0, 4, 1, 0, &ok, 1), CC_EINVAL);
    cr_assert_eq(cc_store_builder_record(b, 0, CC_SETTING_GP, -1, 0, &ok, 1), CC_EINVAL);
    cr_assert_eq(cc_store_builder_record(b, 0, CC_SETTING_GP, 1, 0, &ok, 0), CC_EINVAL);
    cr_assert_eq(cc_store_builder_record(b, 0, CC_SETTING_GP, 1, 0, &bad_system, 1), CC_EINVAL);
    cr_assert_eq(cc_store_builder_record(b, 0, CC_SETTING_GP, 1, 0, &too_long, 1), CC_EINVAL);
    struct cc_person_input p = person_input(0x55, 4, UINT16_MAX); /* LSOA 4 does not exist */
    cr_assert_eq(cc_store_builder_person(b, &p), CC_EINVAL);
    p = person_input(0x55, 0, 2); /* practice 2 not interned */
    cr_assert_eq(cc_store_builder_person(b, &p), CC_EINVAL);
    cr_assert_eq(cc_store_builder_practice(b, "TOOLONGCODE"), CC_EINVAL);
    cr_assert_eq(cc_store_builder_columns(b)->n_records, 6);
    cc_store_builder_free(b);
}

Test(store, set_areas_refuses_a_broken_hierarchy)
{
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    struct cc_area_input areas = make_areas();
    const uint16_t bad_lad[4] = {0, 1, 3, 0}; /* district 3 does not exist */
    areas.lsoa_lad = bad_lad;
    cr_assert_eq(cc_store_builder_set_areas(b, &areas), CC_EINVAL);
    areas = make_areas();
    const char dup[2][CC_AREA_CODE_BYTES] = {"E12000001", "E12000001"};
    areas.region_code = dup;
    cr_assert_eq(cc_store_builder_set_areas(b, &areas), CC_EINVAL);
    cr_assert_eq(cc_store_builder_columns(b)->n_lsoa, 0);
    cc_store_builder_free(b);
}

/* ---- look-ups ----------------------------------------------------------- */

Test(store, find_person_uses_the_pseudonym_index)
{
    cc_store *s = finish_sample();
    for (uint8_t p = 0; p < 3; p++) {
        const uint8_t fill[3] = {0x30, 0x10, 0x20};
        cc_pseudonym x = pseudonym_of(fill[p]);
        cr_assert_eq(cc_store_find_person(s, &x), p);
    }
    cc_pseudonym none = pseudonym_of(0x15);
    cr_assert_eq(cc_store_find_person(s, &none), -1);
    cc_store_free(s);
}

static cc_store *prefix_store(void)
{
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    struct cc_person_input p = person_input(1, UINT16_MAX, UINT16_MAX);
    cr_assert_eq(cc_store_builder_person(b, &p), 0);
    const char *texts[] = {"E12", "E119", "E10", "E11", "E110", "E1", "F11"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        struct cc_code_input c = {CC_CODE_ICD10, CC_ROLE_PRIMARY, texts[i]};
        add_record(b, 0, CC_SETTING_HOSPITAL, (cc_day)i, 0, &c, 1);
    }
    struct cc_code_input snomed_e11 = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, "E11"};
    add_record(b, 0, CC_SETTING_GP, 1, 0, &snomed_e11, 1);
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    return s;
}

Test(store, prefix_range_covers_exactly_the_codes_that_start_with_it)
{
    cc_store *s = prefix_store();
    const struct cc_store_columns *v = cc_store_columns(s);
    uint32_t first, last;
    cc_store_code_prefix_range(s, CC_CODE_ICD10, "E11", &first, &last);
    cr_assert_eq(last - first, 3);
    cr_assert_str_eq(v->code_text[first], "E11");
    cr_assert_str_eq(v->code_text[first + 1], "E110");
    cr_assert_str_eq(v->code_text[first + 2], "E119");
    cr_assert_eq(v->code_system[first], CC_CODE_ICD10);
    cc_store_code_prefix_range(s, CC_CODE_ICD10, "E1", &first, &last);
    cr_assert_eq(last - first, 6); /* E1 E10 E11 E110 E119 E12 */
    cc_store_code_prefix_range(s, CC_CODE_ICD10, "E13", &first, &last);
    cr_assert_eq(last, first);
    cc_store_code_prefix_range(s, CC_CODE_OPCS4, "E11", &first, &last);
    cr_assert_eq(last, first);
    cc_store_code_prefix_range(s, CC_CODE_ICD10, "", &first, &last);
    cr_assert_eq(last - first, 7);
    cc_store_free(s);
}

Test(store, find_code_matches_system_and_whole_text)
{
    cc_store *s = prefix_store();
    int64_t icd = cc_store_find_code(s, CC_CODE_ICD10, "E11");
    int64_t snomed = cc_store_find_code(s, CC_CODE_SNOMED, "E11");
    cr_assert_geq(icd, 0);
    cr_assert_geq(snomed, 0);
    cr_assert_neq(icd, snomed);
    cr_assert_eq(cc_store_find_code(s, CC_CODE_ICD10, "E111"), -1);
    cr_assert_eq(cc_store_find_code(s, CC_CODE_OPCS4, "E11"), -1);
    cc_store_free(s);
}

Test(store, postcode_pack_preserves_sort_order)
{
    const char *sorted[] = {"A1 1AA", "A1 1AB", "A11 1AA", "AB1 0AA", "AB1 0AAB", "B1 1AA",
                            "SW1A 1AA", "Z9 9ZZ"};
    size_t n = sizeof sorted / sizeof *sorted;
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t a = cc_postcode_pack(sorted[i], strlen(sorted[i]));
        uint64_t b = cc_postcode_pack(sorted[i + 1], strlen(sorted[i + 1]));
        cr_assert_neq(a, 0);
        cr_assert_lt(a, b, "%s < %s", sorted[i], sorted[i + 1]);
        cr_assert_eq(strcmp(sorted[i], sorted[i + 1]) < 0, 1);
    }
    cr_assert_eq(cc_postcode_pack("", 0), 0);
    cr_assert_eq(cc_postcode_pack("SW1A 1AAX", 9), 0);
    cr_assert_eq(cc_postcode_pack("ls1 4ap", 7), 0);
}

/* ---- the snapshot file -------------------------------------------------- */

static void assert_same_columns(const cc_store *x, const cc_store *y, int with_postcodes)
{
    for (int sec = 0; sec < STORE_N_SECTIONS; sec++) {
        if (!with_postcodes && (sec == STORE_SECTION_PERSON_POSTCODE_PSEUDONYM ||
                                sec == STORE_SECTION_FEED_IDENTITY))
            continue;
        uint64_t bytes = store_section_bytes(&x->counts, sec);
        cr_assert_eq(bytes, store_section_bytes(&y->counts, sec));
        cr_assert_eq(memcmp(x->section[sec], y->section[sec], bytes), 0, "section %s differs",
                     store_section_name(sec));
    }
    const struct cc_store_columns *a = cc_store_columns(x), *b = cc_store_columns(y);
    cr_assert_eq(a->n_records, b->n_records);
    cr_assert_eq(memcmp(a->setting_first, b->setting_first, sizeof a->setting_first), 0);
    cr_assert_eq(a->n_codes, b->n_codes);
    cr_assert_eq(a->n_persons, b->n_persons);
}

Test(store, save_and_load_round_trip_every_column, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason), 0,
                 "%s", reason);
    assert_same_columns(s, loaded, 1);
    cc_pseudonym c = pseudonym_of(0x20);
    cr_assert_eq(cc_store_find_person(loaded, &c), 2);
    cr_assert_eq(cc_store_memory_bytes(loaded), cc_store_memory_bytes(s));
    cc_store_free(loaded);
    cc_store_free(s);
}

Test(store, query_only_load_leaves_out_postcode_pseudonyms, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    cr_assert_eq(cc_store_load(path, CC_STORE_QUERY_ONLY, TEST_KEY, &loaded, reason, sizeof reason), 0);
    cr_assert_null(cc_store_columns(loaded)->person_postcode_pseudonym);
    cr_assert_null(cc_store_columns(loaded)->feed_identity);
    cr_assert_eq(cc_store_memory_bytes(s) - cc_store_memory_bytes(loaded),
                 3 * sizeof(cc_pseudonym) + 3 * CC_FEED_IDENTITY_BYTES);
    assert_same_columns(s, loaded, 0);
    /* such a store cannot seed a builder or be saved: it would lose a column */
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(loaded, &b), CC_EINVAL);
    cr_assert_eq(cc_store_save(loaded, path, TEST_KEY), CC_EINVAL);
    cc_store_free(loaded);
    cc_store_free(s);
}

Test(store, save_leaves_no_temporary_file, .init = make_tmp_dir, .fini = remove_tmp_dir)
{
    char path[128], tmp[140];
    tmp_path(path, sizeof path, "store.ccs");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cc_store *s = finish_sample();
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0); /* replacing an existing snapshot */
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 077, 0, "snapshot readable by others");
    cr_assert_eq(stat(tmp, &st), -1);
    cc_store_free(s);
}

Test(store, save_into_a_missing_directory_fails_with_eio)
{
    cc_store *s = finish_sample();
    cr_assert_eq(cc_store_save(s, "/nonexistent-dir-for-carecount/store.ccs", TEST_KEY), CC_EIO);
    cc_store_free(s);
}

Test(store, flipping_a_byte_in_any_section_names_that_section, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], bad[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    tmp_path(bad, sizeof bad, "bad.ccs");
    cc_store *s = finish_sample();
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    for (int sec = 0; sec < STORE_N_SECTIONS; sec++) {
        uint64_t offset, length;
        section_span(file, sec, &offset, &length);
        cr_assert_gt(length, 0, "sample leaves section %s empty", store_section_name(sec));
        uint8_t *copy = malloc(len);
        memcpy(copy, file, len);
        copy[offset + length / 2] ^= 0x40;
        cc_testfs_write(bad, copy, len, 0600);
        free(copy);
        cc_store *loaded = NULL;
        cr_assert_eq(cc_store_load(bad, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason),
                     CC_ECORRUPT, "section %s", store_section_name(sec));
        cr_assert_null(loaded);
        char expect[96];
        snprintf(expect, sizeof expect, "section '%s' checksum mismatch",
                 store_section_name(sec));
        cr_assert_not_null(strstr(reason, expect), "got: %s", reason);
    }
    free(file);
    cc_store_free(s);
}

Test(store, flipping_a_header_or_padding_byte_is_corrupt, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    file[60] ^= 1; /* n_codes */
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT);
    cr_assert_not_null(strstr(reason, "header checksum mismatch"), "got: %s", reason);
    file[60] ^= 1;
    /* persons.sex is 3 bytes (3 persons), so the byte after it is padding */
    uint64_t offset, length;
    section_span(file, STORE_SECTION_PERSON_SEX, &offset, &length);
    file[offset + length] = 0x7f;
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT);
    cr_assert_not_null(strstr(reason, "padding after section 'persons.sex'"), "got: %s", reason);
    free(file);
    cc_store_free(s);
}

Test(store, truncation_anywhere_is_corrupt, .init = make_tmp_dir, .fini = remove_tmp_dir)
{
    char path[128], bad[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    tmp_path(bad, sizeof bad, "short.ccs");
    cc_store *s = finish_sample();
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    const size_t cuts[] = {0, 4, 8, 100, HEADER_COVERED, HEADER_COVERED + 40, len / 2, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        cc_testfs_write(bad, file, cuts[i], 0600);
        cc_store *loaded = NULL;
        cr_assert_eq(cc_store_load(bad, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT,
                     "cut at %zu", cuts[i]);
        cr_assert_null(loaded);
        if (cuts[i] >= 8)
            cr_assert_not_null(strstr(reason, "truncated"), "cut at %zu: %s", cuts[i], reason);
    }
    /* the message gives both sizes */
    cc_testfs_write(bad, file, len - 1, 0600);
    cr_assert_eq(cc_store_load(bad, 0, TEST_KEY, &(cc_store *){0}, reason, sizeof reason), CC_ECORRUPT);
    char expect[96];
    snprintf(expect, sizeof expect, "expected %zu bytes, found %zu", len, len - 1);
    cr_assert_not_null(strstr(reason, expect), "got: %s", reason);
    /* and trailing bytes are refused too */
    uint8_t *longer = calloc(1, len + 8);
    memcpy(longer, file, len);
    cc_testfs_write(bad, longer, len + 8, 0600);
    cr_assert_eq(cc_store_load(bad, 0, TEST_KEY, &(cc_store *){0}, reason, sizeof reason), CC_ECORRUPT);
    free(longer);
    free(file);
    cc_store_free(s);
}

Test(store, wrong_magic_is_corrupt, .init = make_tmp_dir, .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    file[0] = 'X';
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT);
    cr_assert_not_null(strstr(reason, "wrong magic"), "got: %s", reason);
    free(file);
    cc_store_free(s);
}

Test(store, a_missing_file_is_not_found)
{
    char reason[256];
    cc_store *loaded = (cc_store *)1;
    cr_assert_eq(cc_store_load("/nonexistent-dir-for-carecount/store.ccs", 0, TEST_KEY, &loaded, reason,
                               sizeof reason),
                 CC_ENOTFOUND);
    cr_assert_null(loaded);
}

Test(store, validate_catches_unsorted_records_behind_a_good_checksum, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    uint64_t offset, length;
    section_span(file, STORE_SECTION_RECORD_DATE, &offset, &length);
    uint16_t late = 500; /* GP record 0 of person A now after record 1 */
    memcpy(file + offset, &late, 2);
    reseal(file, STORE_SECTION_RECORD_DATE);
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT);
    cr_assert_not_null(strstr(reason, "not sorted"), "got: %s", reason);
    free(file);
    cc_store_free(s);
}

Test(store, validate_catches_crafted_invariant_violations, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *original = (uint8_t *)cc_testfs_read(path, &len);
    struct {
        int section;
        size_t at;
        uint8_t value;
        const char *reason;
    } cases[] = {
        {STORE_SECTION_LSOA_LAD, 0, 9, "points outside its parent level"},
        {STORE_SECTION_RECORD_PERSON, 0, 7, "person out of range"},
        {STORE_SECTION_POSTING_RECORDS, 4, 0, "not strictly ascending"},
        {STORE_SECTION_CODE_SYSTEM, 0, 3, "not in (system, text) order"},
        {STORE_SECTION_PERSON_BY_PSEUDONYM, 0, 0, "not unique"},
        {STORE_SECTION_PERSON_PSEUDONYM, 0, 0x20, "not unique"},
        {STORE_SECTION_PERSON_LSOA, 0, 8, "LSOA out of range"},
        {STORE_SECTION_POSTING_RECORDS, 3, 0xc0, "invalid role"}, /* role 3 in the top bits */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint8_t *file = malloc(len);
        memcpy(file, original, len);
        uint64_t offset, length;
        section_span(file, cases[i].section, &offset, &length);
        if (cases[i].section == STORE_SECTION_PERSON_PSEUDONYM)
            memset(file + offset, cases[i].value, CC_PSEUDONYM_BYTES); /* A becomes C */
        else
            file[offset + cases[i].at] = cases[i].value;
        reseal(file, cases[i].section);
        cc_testfs_write(path, file, len, 0600);
        free(file);
        cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT,
                     "case %zu", i);
        cr_assert_not_null(strstr(reason, cases[i].reason), "case %zu got: %s", i, reason);
    }
    free(original);
    cc_store_free(s);
}

/* Found by fuzz_snapshot_keyed: the setting ranges are header counts, so a
 * range that ends past the records (a later range's start below it) used to
 * be walked before the later range was checked, reading records[] out of
 * bounds. Every range is now checked in order before any is walked. */
Test(store, a_setting_range_past_the_records_is_corrupt_before_it_is_walked,
     .init = make_tmp_dir, .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    /* setting_first[2] (GP) at header byte 88 + 16: far past n_records,
     * with setting_first[3] and [4] left as they are */
    uint64_t huge = (uint64_t)1 << 40;
    for (int i = 0; i < 8; i++)
        file[88 + 16 + i] = (uint8_t)(huge >> (8 * i));
    reseal(file, STORE_SECTION_RECORD_PERSON);
    cc_testfs_write(path, file, len, 0600);
    free(file);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), CC_ECORRUPT);
    cr_assert_null(loaded);
    cr_assert_not_null(strstr(reason, "setting ranges out of order"), "got: %s", reason);
    cc_store_free(s);
}

Test(store, an_empty_store_round_trips, .init = make_tmp_dir, .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "empty.ccs");
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    cc_store *s, *loaded;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    cr_assert_eq(cc_store_load(path, 0, TEST_KEY, &loaded, reason, sizeof reason), 0, "%s", reason);
    cr_assert_eq(cc_store_columns(loaded)->n_records, 0);
    cr_assert_eq(cc_store_columns(loaded)->code_first[0], 0);
    cc_pseudonym any = pseudonym_of(1);
    cr_assert_eq(cc_store_find_person(loaded, &any), -1);
    cc_store_free(loaded);
    cc_store_free(s);
}

Test(store, many_persons_and_records_sort_and_index_correctly)
{
    /* enough persons for the bucketed pseudonym sort and runs long enough
     * for the large-run date sort */
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    uint32_t n_persons = 5000;
    uint64_t state = 12345;
    for (uint32_t i = 0; i < n_persons; i++) {
        struct cc_person_input p = {.sex = CC_SEX_MALE, .lsoa = UINT16_MAX,
                                    .practice = UINT16_MAX, .dob = 1000};
        for (int k = 0; k < CC_PSEUDONYM_BYTES; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            p.pseudonym.bytes[k] = (uint8_t)(state >> 56);
        }
        cr_assert_eq(cc_store_builder_person(b, &p), i);
    }
    char text[8];
    for (uint32_t r = 0; r < 20000; r++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t person = r < 100 ? 7 : (uint32_t)(state >> 33) % n_persons;
        snprintf(text, sizeof text, "A%02u", (unsigned)(state >> 20) % 50);
        struct cc_code_input c = {CC_CODE_ICD10, CC_ROLE_PRIMARY, text};
        add_record(b, person, (uint8_t)(1 + (state >> 40) % 3), (cc_day)((state >> 44) % 30000),
                   0, &c, 1);
    }
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    cr_assert_eq(v->n_records, 20000);
    cr_assert_eq(v->n_codes, 50);
    cr_assert_eq(v->code_first[50], 20000);
    for (uint32_t i = 0; i < n_persons; i += 97)
        cr_assert_eq(cc_store_find_person(s, &v->person_pseudonym[i]), i);
    char reason[160];
    cr_assert_eq(cc_store_validate(s, reason, sizeof reason), 0, "%s", reason);
    cc_store_free(s);
}

Test(store, persons_sharing_a_pseudonym_prefix_are_found_by_all_bytes)
{
    /* 40 pseudonyms equal in their first 8 bytes, added in descending
     * order, so the index must be finished on the last 8 bytes */
    cc_store_builder *b;
    cr_assert_eq(cc_store_builder_new(NULL, &b), 0);
    for (int i = 0; i < 40; i++) {
        struct cc_person_input p = person_input(0x42, UINT16_MAX, UINT16_MAX);
        p.pseudonym.bytes[15] = (uint8_t)(200 - i);
        p.pseudonym.bytes[9] = (uint8_t)(i % 3);
        cr_assert_eq(cc_store_builder_person(b, &p), i);
    }
    cc_store *s;
    cr_assert_eq(cc_store_builder_finish(b, &s), 0);
    const struct cc_store_columns *v = cc_store_columns(s);
    for (uint32_t i = 0; i < 40; i++)
        cr_assert_eq(cc_store_find_person(s, &v->person_pseudonym[i]), i);
    cc_pseudonym absent = v->person_pseudonym[0];
    absent.bytes[15] = 7;
    cr_assert_eq(cc_store_find_person(s, &absent), -1);
    cc_store_free(s);
}

Test(store, radix_sort_is_stable_and_sorts_only_the_requested_bits)
{
    /* large enough (2.4 MB) for the MSD split, with bits above the range
     * that must not take part and many equal keys whose order must hold */
    uint64_t n = 200000, state = 99;
    uint64_t *keys = malloc(n * sizeof *keys);
    uint32_t *values = malloc(n * sizeof *values);
    for (uint64_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        keys[i] = (state >> 40) << 44 | ((state >> 8) & 0xfffff) << 4 | (state & 0xf);
        values[i] = (uint32_t)i;
    }
    cr_assert_eq(store_radix_sort(&keys, &values, n, 4, 20), 0);
    for (uint64_t i = 1; i < n; i++) {
        uint64_t a = (keys[i - 1] >> 4) & 0xffff, b = (keys[i] >> 4) & 0xffff;
        cr_assert_leq(a, b, "not sorted at %llu", (unsigned long long)i);
        if (a == b)
            cr_assert_lt(values[i - 1], values[i], "not stable at %llu", (unsigned long long)i);
    }
    /* keys travel with their values */
    uint64_t check = 12345;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t st = 99;
        for (uint64_t k = 0; k <= values[i] && i % 20000 == 0; k++)
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        if (i % 20000 == 0) {
            uint64_t expect = (st >> 40) << 44 | ((st >> 8) & 0xfffff) << 4 | (st & 0xf);
            cr_assert_eq(keys[i], expect);
            check++;
        }
    }
    cr_assert_eq(check, 12345 + 10);
    free(keys);
    free(values);
}

/* A key made from its value alone, with bits outside [4, 36) that must not
 * take part and about 2^20 distinct keys in range, so equal keys abound. */
static uint64_t key_of_value(uint32_t v, uint64_t in_range_mask)
{
    uint64_t h = (uint64_t)v * 0x9e3779b97f4a7c15ULL;
    return (h >> 60) << 60 | ((h >> 20) & in_range_mask) << 4 | (h & 0xf);
}

Test(store, radix_sort_on_two_threads_is_stable_and_keeps_keys_with_values)
{
    /* over RADIX_PARALLEL_MIN elements: the MSD pass is split between two
     * threads; every element is checked against the value it carries */
    uint64_t n = 5000000;
    uint64_t masks[2] = {0xfffff, 0x3ff}; /* spread over the top digit, or all in its first */
    for (int m = 0; m < 2; m++) {
        uint64_t *keys = malloc(n * sizeof *keys);
        uint32_t *values = malloc(n * sizeof *values);
        cr_assert(keys && values);
        for (uint64_t i = 0; i < n; i++) {
            values[i] = (uint32_t)i;
            keys[i] = key_of_value((uint32_t)i, masks[m]);
        }
        cr_assert_eq(store_radix_sort(&keys, &values, n, 4, 36), 0);
        uint64_t seen = 0;
        for (uint64_t i = 0; i < n; i++) {
            cr_assert_eq(keys[i], key_of_value(values[i], masks[m]), "key and value parted at %llu",
                         (unsigned long long)i);
            seen += values[i];
            if (i == 0)
                continue;
            uint64_t a = (keys[i - 1] >> 4) & 0xffffffff, b = (keys[i] >> 4) & 0xffffffff;
            cr_assert_leq(a, b, "not sorted at %llu", (unsigned long long)i);
            if (a == b)
                cr_assert_lt(values[i - 1], values[i], "not stable at %llu", (unsigned long long)i);
        }
        cr_assert_eq(seen, n * (n - 1) / 2, "every value once");
        free(keys);
        free(values);
    }
    /* keys alone */
    uint64_t *keys = malloc(n * sizeof *keys), sum = 0, sorted_sum = 0;
    cr_assert(keys);
    for (uint64_t i = 0; i < n; i++)
        sum += keys[i] = key_of_value((uint32_t)i, 0xfffff) >> 4;
    cr_assert_eq(store_radix_sort(&keys, NULL, n, 0, 32), 0);
    for (uint64_t i = 0; i < n; i++) {
        sorted_sum += keys[i];
        if (i)
            cr_assert_leq(keys[i - 1] & 0xffffffff, keys[i] & 0xffffffff);
    }
    cr_assert_eq(sorted_sum, sum);
    free(keys);
}

/* ---- keyed checksums (format 4) ------------------------------------------------------- */

Test(store, a_snapshot_written_with_another_key_is_refused, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    static const uint8_t other[CC_STORE_KEY_BYTES] = {0x01, 0x02};
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded = NULL;
    cr_assert_eq(cc_store_save(s, path, other), 0);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason),
                 CC_EWRONGKEY);
    cr_assert_null(loaded);
    cr_assert(strstr(reason, "not written with this data directory's key"), "%s", reason);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, other, &loaded, reason, sizeof reason), 0,
                 "%s", reason);
    cc_store_free(loaded);

    /* a forger who copies our key id into their file still fails: the
     * checksums need the key itself */
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    uint8_t *ours = NULL;
    size_t ours_len;
    char ours_path[128];
    tmp_path(ours_path, sizeof ours_path, "ours.ccs");
    cr_assert_eq(cc_store_save(s, ours_path, TEST_KEY), 0);
    ours = (uint8_t *)cc_testfs_read(ours_path, &ours_len);
    memcpy(file + 136, ours + 136, 16);
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason),
                 CC_ECORRUPT);
    cr_assert(strstr(reason, "header checksum mismatch"), "%s", reason);
    /* and one with an honest header but a section rewritten without the key */
    file = memcpy(file, ours, len < ours_len ? len : ours_len);
    uint64_t offset, length;
    section_span(file, STORE_SECTION_RECORD_DATE, &offset, &length);
    file[offset] ^= 1;
    uint8_t *e = file + FIXED_HEADER + STORE_SECTION_RECORD_DATE * ENTRY;
    crypto_generichash(e + 24, 32, file + offset, length, NULL, 0); /* unkeyed, as before */
    cc_testfs_write(path, file, ours_len, 0600);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason),
                 CC_ECORRUPT);
    free(file);
    free(ours);
    cc_store_free(s);
}

Test(store, an_older_format_is_refused_with_a_clear_error, .init = make_tmp_dir,
     .fini = remove_tmp_dir)
{
    char path[128], reason[256];
    tmp_path(path, sizeof path, "store.ccs");
    cc_store *s = finish_sample(), *loaded = NULL;
    cr_assert_eq(cc_store_save(s, path, TEST_KEY), 0);
    size_t len;
    uint8_t *file = (uint8_t *)cc_testfs_read(path, &len);
    file[8] = 2; /* format version 2 */
    cc_testfs_write(path, file, len, 0600);
    cr_assert_eq(cc_store_load(path, CC_STORE_LOAD_ALL, TEST_KEY, &loaded, reason, sizeof reason),
                 CC_ECORRUPT);
    cr_assert(strstr(reason, "unsupported format version 2 (expected 5)") &&
                  strstr(reason, "older carecount"),
              "%s", reason);
    free(file);
    cc_store_free(s);
}
