/*
 * cc_fixture.c: the random store and its SQLite oracle (see cc_fixture.h).
 *
 * The draws happen in a fixed order (population cells, then per person:
 * pseudonym, date of birth, sex, LSOA, practice, record key, opt-out), so a
 * spec and a seed always give the same fixture.
 *
 * Must never: read the clock or the environment.
 */
#include "cc_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_date.h"

uint64_t cc_fixture_random(struct cc_fixture *f)
{
    uint64_t z = (f->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint32_t cc_fixture_below(struct cc_fixture *f, uint32_t n)
{
    return (uint32_t)(cc_fixture_random(f) % n);
}

void cc_fixture_sql(struct cc_fixture *f, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(f->db, sql, NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, err ? err : "");
}

static void *zalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    cr_assert_not_null(p);
    return p;
}

static void practice_code(char out[CC_PRACTICE_CODE_BYTES], int index)
{
    snprintf(out, CC_PRACTICE_CODE_BYTES, "B%05u", (86000u + (unsigned)index) % 100000u);
}

static void build_areas(struct cc_fixture *f)
{
    const struct cc_fixture_spec *s = &f->spec;
    f->lsoa = zalloc((size_t)s->n_lsoa, sizeof *f->lsoa);
    f->lad = zalloc((size_t)s->n_lad, sizeof *f->lad);
    f->icb = zalloc((size_t)s->n_icb, sizeof *f->icb);
    f->region = zalloc((size_t)s->n_region, sizeof *f->region);
    f->lsoa_lad = zalloc((size_t)s->n_lsoa, sizeof *f->lsoa_lad);
    f->lad_icb = zalloc((size_t)s->n_lad, sizeof *f->lad_icb);
    f->icb_region = zalloc((size_t)s->n_icb, sizeof *f->icb_region);
    size_t n_names = (size_t)(s->n_lsoa + s->n_lad + s->n_icb + s->n_region);
    f->area_names = zalloc(n_names, sizeof *f->area_names);
    const char **lsoa_name = f->area_names, **lad_name = lsoa_name + s->n_lsoa,
               **icb_name = lad_name + s->n_lad, **region_name = icb_name + s->n_icb;
    for (int i = 0; i < s->n_region; i++) {
        snprintf(f->region[i], CC_AREA_CODE_BYTES, "E1200000%u", (unsigned)(i + 1) % 10u);
        region_name[i] = s->region_name;
    }
    for (int i = 0; i < s->n_icb; i++) {
        snprintf(f->icb[i], CC_AREA_CODE_BYTES, "E5400000%u", (unsigned)(i + 1) % 10u);
        icb_name[i] = s->icb_name;
        f->icb_region[i] = (uint16_t)(i % s->n_region);
    }
    for (int i = 0; i < s->n_lad; i++) {
        snprintf(f->lad[i], CC_AREA_CODE_BYTES, "E0600000%u", (unsigned)(i + 1) % 10u);
        lad_name[i] = s->lad_name;
        f->lad_icb[i] = (uint16_t)(i % s->n_icb);
    }
    for (int i = 0; i < s->n_lsoa; i++) {
        snprintf(f->lsoa[i], CC_AREA_CODE_BYTES, "E010000%02u", (unsigned)(i + 1) % 100u);
        lsoa_name[i] = s->lsoa_name;
        f->lsoa_lad[i] = (uint16_t)(i % s->n_lad);
    }
    size_t n_cells = (size_t)s->n_lsoa * 2 * CC_N_AGE_BANDS_5Y;
    f->population = zalloc(n_cells, sizeof *f->population);
    for (size_t i = 0; i < n_cells; i++)
        f->population[i] = s->population_min + cc_fixture_below(f, s->population_span);
    static uint64_t postcode_key[1];
    static uint16_t postcode_lsoa[1];
    postcode_key[0] = cc_postcode_pack("LS1 4AP", 7);
    struct cc_area_input areas = {
        .n_lsoa = (uint32_t)s->n_lsoa,
        .n_lad = (uint32_t)s->n_lad,
        .n_icb = (uint32_t)s->n_icb,
        .n_region = (uint32_t)s->n_region,
        .lsoa_code = (const char(*)[CC_AREA_CODE_BYTES])f->lsoa,
        .lad_code = (const char(*)[CC_AREA_CODE_BYTES])f->lad,
        .icb_code = (const char(*)[CC_AREA_CODE_BYTES])f->icb,
        .region_code = (const char(*)[CC_AREA_CODE_BYTES])f->region,
        .lsoa_name = lsoa_name,
        .lad_name = lad_name,
        .icb_name = icb_name,
        .region_name = region_name,
        .lsoa_lad = f->lsoa_lad,
        .lad_icb = f->lad_icb,
        .icb_region = f->icb_region,
        .population = f->population,
        .n_postcodes = 1,
        .postcode_key = postcode_key,
        .postcode_lsoa = postcode_lsoa,
    };
    cr_assert_eq(cc_store_builder_set_areas(f->builder, &areas), 0);
    char practice[CC_PRACTICE_CODE_BYTES];
    for (int i = 0; i < s->n_practices; i++) {
        practice_code(practice, i);
        cr_assert_geq(cc_store_builder_practice(f->builder, practice), 0);
    }
}

static void create_oracle(struct cc_fixture *f)
{
    const struct cc_fixture_spec *s = &f->spec;
    cr_assert_eq(sqlite3_open(":memory:", &f->db), SQLITE_OK);
    cc_fixture_sql(f, "CREATE TABLE person(id INTEGER PRIMARY KEY, dob TEXT, sex INT, lsoa INT,"
                      " lad TEXT, icb TEXT, region TEXT, practice TEXT, excluded INT,"
                      " registered INT);"
                      "CREATE TABLE record(id INTEGER PRIMARY KEY, person INT, setting INT,"
                      " date TEXT, code TEXT);"
                      "CREATE TABLE code(record INT, system INT, text TEXT, role INT);"
                      "CREATE TABLE pop(lsoa INT, lad TEXT, icb TEXT, region TEXT, sex INT,"
                      " band INT, n INT);");
    cc_fixture_sql(f, "BEGIN");
    sqlite3_stmt *insert_pop;
    cr_assert_eq(sqlite3_prepare_v2(f->db, "INSERT INTO pop VALUES(?,?,?,?,?,?,?)", -1,
                                    &insert_pop, NULL),
                 SQLITE_OK);
    for (int l = 0; l < s->n_lsoa; l++)
        for (int sex = 0; sex < 2; sex++)
            for (int band = 0; band < CC_N_AGE_BANDS_5Y; band++) {
                int lad = f->lsoa_lad[l], icb = f->lad_icb[lad], region = f->icb_region[icb];
                sqlite3_reset(insert_pop);
                sqlite3_bind_int(insert_pop, 1, l);
                sqlite3_bind_text(insert_pop, 2, f->lad[lad], -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_pop, 3, f->icb[icb], -1, SQLITE_STATIC);
                sqlite3_bind_text(insert_pop, 4, f->region[region], -1, SQLITE_STATIC);
                sqlite3_bind_int(insert_pop, 5, sex + 1);
                sqlite3_bind_int(insert_pop, 6, band);
                sqlite3_bind_int64(insert_pop, 7,
                                   f->population[((size_t)l * 2 + (size_t)sex) * CC_N_AGE_BANDS_5Y +
                                                 (size_t)band]);
                cr_assert_eq(sqlite3_step(insert_pop), SQLITE_DONE);
            }
    sqlite3_finalize(insert_pop);
    cr_assert_eq(sqlite3_prepare_v2(f->db, "INSERT INTO record VALUES(?,?,?,?,?)", -1,
                                    &f->insert_record, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_prepare_v2(f->db, "INSERT INTO code VALUES(?,?,?,?)", -1, &f->insert_code,
                                    NULL),
                 SQLITE_OK);
}

static void add_persons(struct cc_fixture *f)
{
    const struct cc_fixture_spec *s = &f->spec;
    sqlite3_stmt *insert;
    cr_assert_eq(sqlite3_prepare_v2(f->db, "INSERT INTO person VALUES(?,?,?,?,?,?,?,?,?,?)", -1,
                                    &insert, NULL),
                 SQLITE_OK);
    f->person_lsoa = zalloc(s->n_persons, sizeof *f->person_lsoa);
    f->person_practice = zalloc(s->n_persons, sizeof *f->person_practice);
    f->excluded = zalloc(s->n_persons, sizeof *f->excluded);
    for (uint32_t p = 0; p < s->n_persons; p++) {
        struct cc_person_input in = {0};
        for (int k = 0; k < CC_PSEUDONYM_BYTES; k += 8) {
            uint64_t r = cc_fixture_random(f);
            memcpy(in.pseudonym.bytes + k, &r, 8);
        }
        in.dob = cc_day_from_ymd(s->first_birth_year + (int)cc_fixture_below(f, (uint32_t)s->birth_years),
                                 1 + (int)cc_fixture_below(f, 12), 1 + (int)cc_fixture_below(f, 28));
        in.sex = s->sexes[cc_fixture_below(f, (uint32_t)s->n_sexes)];
        in.lsoa = cc_fixture_below(f, s->no_lsoa_one_in) == 0
                      ? CC_FIXTURE_NO_AREA
                      : (uint16_t)cc_fixture_below(f, (uint32_t)s->n_lsoa);
        in.practice = cc_fixture_below(f, s->no_practice_one_in) == 0
                          ? CC_FIXTURE_NO_AREA
                          : (uint16_t)cc_fixture_below(f, (uint32_t)s->n_practices);
        in.record_key = (uint32_t)cc_fixture_random(f);
        cr_assert_eq(cc_store_builder_person(f->builder, &in), (int64_t)p);
        int is_excluded = cc_fixture_below(f, s->excluded_one_in) == 0;
        if (is_excluded)
            f->excluded[f->n_excluded++] = p;
        f->person_lsoa[p] = in.lsoa;
        f->person_practice[p] = in.practice;

        char dob[11], practice[CC_PRACTICE_CODE_BYTES];
        cc_day_format(in.dob, dob);
        sqlite3_reset(insert);
        sqlite3_bind_int(insert, 1, (int)p);
        sqlite3_bind_text(insert, 2, dob, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(insert, 3, in.sex);
        if (in.lsoa == CC_FIXTURE_NO_AREA) {
            for (int k = 4; k <= 7; k++)
                sqlite3_bind_null(insert, k);
        } else {
            int lad = f->lsoa_lad[in.lsoa], icb = f->lad_icb[lad];
            sqlite3_bind_int(insert, 4, in.lsoa);
            sqlite3_bind_text(insert, 5, f->lad[lad], -1, SQLITE_STATIC);
            sqlite3_bind_text(insert, 6, f->icb[icb], -1, SQLITE_STATIC);
            sqlite3_bind_text(insert, 7, f->region[f->icb_region[icb]], -1, SQLITE_STATIC);
        }
        if (in.practice == CC_FIXTURE_NO_AREA) {
            sqlite3_bind_null(insert, 8);
        } else {
            practice_code(practice, in.practice);
            sqlite3_bind_text(insert, 8, practice, -1, SQLITE_TRANSIENT);
        }
        sqlite3_bind_int(insert, 9, is_excluded);
        sqlite3_bind_int(insert, 10, in.practice != CC_FIXTURE_NO_AREA);
        cr_assert_eq(sqlite3_step(insert), SQLITE_DONE);
    }
    sqlite3_finalize(insert);
}

void cc_fixture_begin(struct cc_fixture *f, const struct cc_fixture_spec *spec)
{
    memset(f, 0, sizeof *f);
    f->spec = *spec;
    f->rng = spec->seed;
    cr_assert(spec->n_lsoa > 0 && spec->n_lad > 0 && spec->n_icb > 0 && spec->n_region > 0 &&
              spec->n_lsoa < 100 && spec->n_lad < 10 && spec->n_icb < 10 && spec->n_region < 10);
    cr_assert(spec->n_persons > 0 && spec->n_practices > 0 && spec->n_sexes > 0 &&
              spec->population_span > 0 && spec->birth_years > 0 && spec->no_lsoa_one_in > 0 &&
              spec->no_practice_one_in > 0 && spec->excluded_one_in > 0);
    cr_assert_eq(cc_store_builder_new(NULL, &f->builder), 0);
    build_areas(f);
    create_oracle(f);
    add_persons(f);
}

void cc_fixture_record(struct cc_fixture *f, uint32_t person, uint8_t setting, cc_day date,
                       const struct cc_code_input *codes, size_t n_codes)
{
    cr_assert(f->builder && person < f->spec.n_persons && n_codes > 0);
    cr_assert_eq(cc_store_builder_record(f->builder, person, setting, date, 0, codes, n_codes), 0);
    /* The store numbers records after sorting; the oracle keeps its own
     * ids, which is all it needs. */
    uint32_t id = f->n_records++;
    char day[11];
    cc_day_format(date, day);
    sqlite3_stmt *st = f->insert_record;
    sqlite3_reset(st);
    sqlite3_bind_int(st, 1, (int)id);
    sqlite3_bind_int(st, 2, (int)person);
    sqlite3_bind_int(st, 3, setting);
    sqlite3_bind_text(st, 4, day, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, codes[0].text, -1, SQLITE_TRANSIENT);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    for (size_t k = 0; k < n_codes; k++) {
        st = f->insert_code;
        sqlite3_reset(st);
        sqlite3_bind_int(st, 1, (int)id);
        sqlite3_bind_int(st, 2, codes[k].system);
        sqlite3_bind_text(st, 3, codes[k].text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, codes[k].role);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    }
}

void cc_fixture_finish(struct cc_fixture *f)
{
    cc_fixture_sql(f, "COMMIT");
    sqlite3_finalize(f->insert_record);
    sqlite3_finalize(f->insert_code);
    f->insert_record = f->insert_code = NULL;
    cc_fixture_sql(f, "CREATE INDEX record_person ON record(person);"
                      "CREATE INDEX code_record ON code(record);"
                      "CREATE VIEW p AS SELECT * FROM person WHERE excluded = 0;"
                      "CREATE VIEW r AS SELECT record.* FROM record JOIN p ON p.id = record.person;");
    cc_store_builder *builder = f->builder;
    f->builder = NULL; /* finish frees it, whatever it returns */
    cr_assert_eq(cc_store_builder_finish(builder, &f->store), 0);
    cr_assert_eq(cc_dataversion_from_indices(f->store, f->excluded, f->n_excluded, &f->version), 0);
}

void cc_fixture_free(struct cc_fixture *f)
{
    if (f->builder)
        cc_store_builder_free(f->builder);
    sqlite3_finalize(f->insert_record);
    sqlite3_finalize(f->insert_code);
    cc_dataversion_release(f->version);
    cc_store_free(f->store);
    sqlite3_close(f->db);
    free(f->lsoa);
    free(f->lad);
    free(f->icb);
    free(f->region);
    free(f->lsoa_lad);
    free(f->lad_icb);
    free(f->icb_region);
    free(f->area_names);
    free(f->population);
    free(f->person_lsoa);
    free(f->person_practice);
    free(f->excluded);
    memset(f, 0, sizeof *f);
}
