/*
 * cc_attack_fixture.h: a synthetic population with planted targets, for the
 * disclosure-control tests (tests/test_release*.c, tests/test_attack_*.c).
 *
 * 24,000 persons over 2 regions, 4 ICBs, 16 districts and 64 LSOAs, aged
 * 0-89, each with a few GP and hospital records of common codes; about 1%
 * have the rare secret code (ICD-10 E85) and about 5% a fracture episode
 * (ICD-10 S72) in a random month. Then CC_ATTACK_TARGETS targets are
 * planted, each unique in district x single year of age x sex (they are
 * aged 95-104, which no background person is), each with one known
 * hospital episode (S72 in a known month, that no other person has in
 * their district), and every other target with the secret code. The ONS
 * population estimates are the store's own counts per LSOA, sex and band.
 *
 * Ages are on CC_ATTACK_REFERENCE_DAY (queries without a date range), which
 * the fixture's exec options carry.
 *
 * Must never: be used outside tests (it plants known persons).
 */
#ifndef CC_ATTACK_FIXTURE_H
#define CC_ATTACK_FIXTURE_H

#include <stdint.h>

#include "cc_dataversion.h"
#include "cc_exec_options.h"
#include "cc_query.h"
#include "cc_store.h"

#define CC_ATTACK_TARGETS 48
#define CC_ATTACK_N_REGIONS 2
#define CC_ATTACK_N_ICBS 4
#define CC_ATTACK_N_LADS 16
#define CC_ATTACK_N_LSOAS 64
#define CC_ATTACK_SECRET_CODE "E85"
#define CC_ATTACK_EPISODE_CODE "S72"

struct cc_attack_target {
    uint32_t person;
    uint16_t lad, icb, region; /* indices into the store's columns */
    uint8_t sex;               /* CC_SEX_MALE or CC_SEX_FEMALE */
    uint8_t age;               /* on the reference day */
    cc_month episode_month;    /* the known S72 episode */
    int has_secret;            /* the truth the attacker wants */
};

struct cc_attack_fixture {
    cc_store *store;
    struct cc_dataversion *version;
    struct cc_exec_options options;
    uint32_t n_targets;
    struct cc_attack_target targets[CC_ATTACK_TARGETS];
};

/* Builds the fixture (the same every time: a fixed seed). Returns 0 or a
 * CC_E* code. */
int cc_attack_fixture_build(struct cc_attack_fixture *fixture);

void cc_attack_fixture_free(struct cc_attack_fixture *fixture);

/* Codes of areas, for queries: "E0600000NN" etc. */
const char *cc_attack_lad_code(const struct cc_attack_fixture *fixture, uint32_t lad);
const char *cc_attack_icb_code(const struct cc_attack_fixture *fixture, uint32_t icb);
const char *cc_attack_region_code(const struct cc_attack_fixture *fixture, uint32_t region);

/* Query building helpers: a new persons query with room for 8 conditions
 * and 8 dimensions; a condition of one ICD-10 code in hospital records (an
 * optional month, from == to; 0: any date); an area filter of one code at a
 * level; an age range; a sex. The query is bound against the fixture's
 * store by cc_attack_bind(). Each returns 0 or a CC_E* code. */
int cc_attack_query(int measure, struct cc_query **out);
int cc_attack_condition(struct cc_query *q, const char *icd10, int has_month, cc_month month,
                        int exclude);
int cc_attack_area(struct cc_query *q, int level, const char *code);
void cc_attack_age(struct cc_query *q, int min_years, int max_years);
void cc_attack_sex(struct cc_query *q, int sex);
int cc_attack_bind(const struct cc_attack_fixture *fixture, struct cc_query *q);

#endif
