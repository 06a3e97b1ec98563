/*
 * cc_attack_fixture.c: the synthetic population with planted targets
 * (cc_attack_fixture.h).
 *
 * Must never: be linked into a program (tests only).
 */
#include "cc_attack_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_model.h"

#define N_BACKGROUND 24000

static char lsoa_code[CC_ATTACK_N_LSOAS][CC_AREA_CODE_BYTES];
static char lad_code[CC_ATTACK_N_LADS][CC_AREA_CODE_BYTES];
static char icb_code[CC_ATTACK_N_ICBS][CC_AREA_CODE_BYTES];
static char region_code[CC_ATTACK_N_REGIONS][CC_AREA_CODE_BYTES];

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static uint32_t below(uint32_t n) { return (uint32_t)(rnd() % n); }

static cc_day random_day(int first_year, int n_years)
{
    return cc_day_from_ymd(first_year + (int)below((uint32_t)n_years), 1 + (int)below(12),
                           1 + (int)below(28));
}

static int hospital(cc_store_builder *b, uint32_t person, cc_day day, const char *code)
{
    struct cc_code_input in = {CC_CODE_ICD10, CC_ROLE_PRIMARY, code};
    return cc_store_builder_record(b, person, CC_SETTING_HOSPITAL, day, 0, &in, 1);
}

static int gp(cc_store_builder *b, uint32_t person)
{
    static const char *const codes[] = {"44054006", "38341003", "195967001"};
    struct cc_code_input in = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, codes[below(3)]};
    return cc_store_builder_record(b, person, CC_SETTING_GP, random_day(2019, 7), 0, &in, 1);
}

static int add_person(cc_store_builder *b, uint16_t lsoa, uint8_t sex, int age,
                      uint32_t *population)
{
    struct cc_person_input in = {0};
    for (int k = 0; k < CC_PSEUDONYM_BYTES; k += 8) {
        uint64_t r = rnd();
        memcpy(in.pseudonym.bytes + k, &r, 8);
    }
    in.dob = cc_day_from_ymd(2024 - age, 6, 15); /* age years on 2025-01-01 */
    in.sex = sex;
    in.lsoa = lsoa;
    in.practice = (uint16_t)below(40);
    in.record_key = (uint32_t)rnd();
    int band = age / 5 > 18 ? 18 : age / 5;
    population[((uint32_t)lsoa * 2 + (sex - 1u)) * CC_N_AGE_BANDS_5Y + (uint32_t)band]++;
    return (int)cc_store_builder_person(b, &in);
}

int cc_attack_fixture_build(struct cc_attack_fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    rng_state = 0x5eed5eed5eedULL;
    cc_store_builder *b = NULL;
    int rc = cc_store_builder_new(NULL, &b);
    if (rc)
        return rc;
    static const char *lsoa_name[CC_ATTACK_N_LSOAS], *lad_name[CC_ATTACK_N_LADS],
        *icb_name[CC_ATTACK_N_ICBS], *region_name[CC_ATTACK_N_REGIONS];
    static uint16_t lsoa_lad[CC_ATTACK_N_LSOAS], lad_icb[CC_ATTACK_N_LADS],
        icb_region[CC_ATTACK_N_ICBS];
    static uint32_t population[CC_ATTACK_N_LSOAS * 2 * CC_N_AGE_BANDS_5Y];
    memset(population, 0, sizeof population);
    for (int i = 0; i < CC_ATTACK_N_REGIONS; i++) {
        snprintf(region_code[i], sizeof region_code[i], "E120000%02u", (unsigned)(i + 1) % 100u);
        region_name[i] = "region";
    }
    for (int i = 0; i < CC_ATTACK_N_ICBS; i++) {
        snprintf(icb_code[i], sizeof icb_code[i], "E540000%02u", (unsigned)(i + 1) % 100u);
        icb_name[i] = "icb";
        icb_region[i] = (uint16_t)(i / 2);
    }
    for (int i = 0; i < CC_ATTACK_N_LADS; i++) {
        snprintf(lad_code[i], sizeof lad_code[i], "E060000%02u", (unsigned)(i + 1) % 100u);
        lad_name[i] = "district";
        lad_icb[i] = (uint16_t)(i / 4);
    }
    for (int i = 0; i < CC_ATTACK_N_LSOAS; i++) {
        snprintf(lsoa_code[i], sizeof lsoa_code[i], "E010000%02u", (unsigned)(i + 1) % 100u);
        lsoa_name[i] = "lsoa";
        lsoa_lad[i] = (uint16_t)(i / 4);
    }
    uint64_t postcode_key[1] = {cc_postcode_pack("LS1 4AP", 7)};
    uint16_t postcode_lsoa[1] = {0};
    /* the estimates are filled as persons are made, before the areas are
     * set at the end (set_areas copies them) */
    char practice[16];
    struct cc_area_input areas = {
        .n_lsoa = CC_ATTACK_N_LSOAS, .n_lad = CC_ATTACK_N_LADS, .n_icb = CC_ATTACK_N_ICBS,
        .n_region = CC_ATTACK_N_REGIONS,
        .lsoa_code = (const char(*)[CC_AREA_CODE_BYTES])lsoa_code,
        .lad_code = (const char(*)[CC_AREA_CODE_BYTES])lad_code,
        .icb_code = (const char(*)[CC_AREA_CODE_BYTES])icb_code,
        .region_code = (const char(*)[CC_AREA_CODE_BYTES])region_code,
        .lsoa_name = lsoa_name, .lad_name = lad_name, .icb_name = icb_name,
        .region_name = region_name, .lsoa_lad = lsoa_lad, .lad_icb = lad_icb,
        .icb_region = icb_region, .population = population, .n_postcodes = 1,
        .postcode_key = postcode_key, .postcode_lsoa = postcode_lsoa,
    };
    if ((rc = cc_store_builder_set_areas(b, &areas)) != 0)
        goto fail;
    for (int i = 0; i < 40; i++) {
        snprintf(practice, sizeof practice, "B%05d", 86000 + i);
        int32_t index = cc_store_builder_practice(b, practice);
        if (index < 0) {
            rc = index;
            goto fail;
        }
    }

    static const char *const common[] = {"I10", "E11", "J45", "K57", "M54"};
    for (uint32_t p = 0; p < N_BACKGROUND; p++) {
        int idx = add_person(b, (uint16_t)below(CC_ATTACK_N_LSOAS), (uint8_t)(1 + below(2)),
                             (int)below(90), population);
        if (idx < 0) {
            rc = idx;
            goto fail;
        }
        uint32_t n_gp = 1 + below(3);
        for (uint32_t k = 0; k < n_gp && rc == 0; k++)
            rc = gp(b, p);
        if (rc == 0 && below(2))
            rc = hospital(b, p, random_day(2019, 7), common[below(5)]);
        if (rc == 0 && below(100) == 0)
            rc = hospital(b, p, random_day(2019, 7), CC_ATTACK_SECRET_CODE);
        /* background fractures from 2019: the targets' known episodes are
         * in 2018, which no one else shares */
        if (rc == 0 && below(20) == 0)
            rc = hospital(b, p, random_day(2019, 7), CC_ATTACK_EPISODE_CODE);
        if (rc)
            goto fail;
    }
    for (uint32_t t = 0; t < CC_ATTACK_TARGETS; t++) {
        struct cc_attack_target *tg = &fx->targets[t];
        tg->lad = (uint16_t)(t % CC_ATTACK_N_LADS);
        tg->icb = lad_icb[tg->lad];
        tg->region = icb_region[tg->icb];
        tg->sex = (uint8_t)((t / 16) % 2 == 0 ? CC_SEX_MALE : CC_SEX_FEMALE);
        tg->age = (uint8_t)(95 + t / 32);
        tg->has_secret = (t + t / 16) % 2 == 0;
        tg->episode_month = cc_query_month(2018, 1 + (int)(t % 12));
        int idx = add_person(b, (uint16_t)(tg->lad * 4 + t % 4), tg->sex, tg->age, population);
        if (idx < 0) {
            rc = idx;
            goto fail;
        }
        tg->person = (uint32_t)idx;
        rc = gp(b, tg->person);
        if (rc == 0)
            rc = hospital(b, tg->person, cc_day_from_ymd(2018, 1 + (int)(t % 12), 10),
                          CC_ATTACK_EPISODE_CODE);
        if (rc == 0 && tg->has_secret)
            rc = hospital(b, tg->person, random_day(2019, 7), CC_ATTACK_SECRET_CODE);
        if (rc)
            goto fail;
    }
    fx->n_targets = CC_ATTACK_TARGETS;
    /* the estimates now hold every person: set them (persons keep their
     * LSOA, whose codes are unchanged) */
    if ((rc = cc_store_builder_set_areas(b, &areas)) != 0)
        goto fail;
    rc = cc_store_builder_finish(b, &fx->store);
    b = NULL;
    if (rc)
        return rc;
    if ((rc = cc_dataversion_from_indices(fx->store, NULL, 0, &fx->version)) != 0) {
        cc_store_free(fx->store);
        fx->store = NULL;
        return rc;
    }
    fx->options.n_threads = 1;
    fx->options.reference_day = cc_day_from_ymd(2025, 1, 1);
    return 0;
fail:
    cc_store_builder_free(b);
    return rc < 0 ? rc : CC_EINTERNAL;
}

void cc_attack_fixture_free(struct cc_attack_fixture *fx)
{
    cc_dataversion_release(fx->version);
    cc_store_free(fx->store);
    memset(fx, 0, sizeof *fx);
}

const char *cc_attack_lad_code(const struct cc_attack_fixture *fx, uint32_t lad)
{
    return cc_store_columns(fx->store)->lad_code[lad];
}

const char *cc_attack_icb_code(const struct cc_attack_fixture *fx, uint32_t icb)
{
    return cc_store_columns(fx->store)->icb_code[icb];
}

const char *cc_attack_region_code(const struct cc_attack_fixture *fx, uint32_t region)
{
    return cc_store_columns(fx->store)->region_code[region];
}

int cc_attack_query(int measure, struct cc_query **out)
{
    struct cc_query *q = NULL;
    int rc = cc_query_new(&q);
    if (rc)
        return rc;
    q->measure = (uint8_t)measure;
    q->dimensions = cc_query_alloc(q, CC_QUERY_DIMENSIONS_CAP * sizeof *q->dimensions);
    q->filters.conditions = cc_query_alloc(q, 8 * sizeof *q->filters.conditions);
    q->filters.areas.codes = cc_query_alloc(q, 16 * sizeof *q->filters.areas.codes);
    if (!q->dimensions || !q->filters.conditions || !q->filters.areas.codes) {
        cc_query_free(q);
        return CC_ENOMEM;
    }
    *out = q;
    return 0;
}

int cc_attack_condition(struct cc_query *q, const char *icd10, int has_month, cc_month month,
                        int exclude)
{
    if (q->filters.n_conditions >= 8)
        return CC_ETOOBIG;
    struct cc_query_condition *c = &q->filters.conditions[q->filters.n_conditions];
    memset(c, 0, sizeof *c);
    c->system = CC_CODE_ICD10;
    c->setting_mask = 1u << CC_SETTING_HOSPITAL;
    c->exclude = exclude != 0;
    c->codes = cc_query_alloc(q, sizeof *c->codes);
    if (!c->codes)
        return CC_ENOMEM;
    snprintf(c->codes[0].text, sizeof c->codes[0].text, "%s", icd10);
    c->n_codes = 1;
    if (has_month) {
        c->date_range.present = true;
        c->date_range.from = c->date_range.to = month;
    }
    q->filters.n_conditions++;
    return 0;
}

static int compare_codes(const void *a, const void *b)
{
    return strcmp(a, b);
}

int cc_attack_area(struct cc_query *q, int level, const char *code)
{
    struct cc_query_areas *a = &q->filters.areas;
    if (a->n_codes && a->level != level)
        return CC_EINVAL;
    if (a->n_codes >= 16)
        return CC_ETOOBIG;
    a->level = (uint8_t)level;
    snprintf(a->codes[a->n_codes++], CC_AREA_CODE_BYTES, "%s", code);
    qsort(a->codes, a->n_codes, sizeof *a->codes, compare_codes);
    return 0;
}

void cc_attack_age(struct cc_query *q, int min_years, int max_years)
{
    q->filters.age.present = true;
    q->filters.age.min_years = (uint8_t)min_years;
    q->filters.age.max_years = (uint8_t)max_years;
}

void cc_attack_sex(struct cc_query *q, int sex)
{
    q->filters.sex_mask = (uint16_t)(1u << sex);
}

int cc_attack_bind(const struct cc_attack_fixture *fx, struct cc_query *q)
{
    char err[256];
    struct cc_query_extent extent;
    cc_query_extent_default(&extent);
    cc_query_extent_from_store(cc_store_columns(fx->store), &extent);
    int rc = cc_query_validate(q, NULL, &extent, err, sizeof err);
    if (rc == 0)
        rc = cc_query_bind(q, cc_store_columns(fx->store), NULL, err, sizeof err);
    if (rc)
        fprintf(stderr, "cc_attack_bind: %s\n", err);
    return rc;
}
