/*
 * cc_fixture.h: a random, reproducible store and the same data in SQLite,
 * for tests that check the engine or the comparisons against SQL (the
 * oracle).
 *
 * cc_fixture_begin() builds a small area hierarchy (LSOA -> district -> ICB
 * -> region, codes E01/E06/E54/E12), a random population per LSOA x sex x
 * 5-year band, practices B86000.., and persons with random pseudonyms,
 * dates of birth, sexes, LSOAs, practices and opt-outs; the caller then adds
 * its own records with cc_fixture_record() (drawing from cc_fixture_below()
 * so that the whole fixture comes from one seed) and ends with
 * cc_fixture_finish(), which gives the store and its data version.
 *
 * The oracle's tables, in f->db:
 *   person(id, dob, sex, lsoa, lad, icb, region, practice, excluded, registered)
 *   record(id, person, setting, date, code)  code: the record's first code
 *   code(record, system, text, role)          every code of every record
 *   pop(lsoa, lad, icb, region, sex, band, n)
 * and the views p (persons not opted out) and r (their records). Area
 * columns are NULL for a person without an LSOA; practice is NULL and
 * registered 0 for a person without a practice.
 *
 * Must never: depend on anything but the seed (no clock, no environment),
 * so a failing assertion names data that the next run rebuilds.
 */
#ifndef CC_FIXTURE_H
#define CC_FIXTURE_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_dataversion.h"
#include "cc_model.h"
#include "cc_store.h"

#define CC_FIXTURE_NO_AREA UINT16_MAX

/* The shape of the fixture. */
struct cc_fixture_spec {
    uint64_t seed;
    int n_lsoa, n_lad, n_icb, n_region;      /* LSOA i is in district i % n_lad, ... */
    const char *lsoa_name, *lad_name, *icb_name, *region_name;
    uint32_t population_min, population_span; /* each cell: min + below(span) */
    int n_practices;
    uint32_t n_persons;
    int first_birth_year, birth_years;        /* born in [first, first + years) */
    const uint8_t *sexes;                     /* a person's sex: one of these, uniformly */
    size_t n_sexes;
    uint32_t no_lsoa_one_in;                  /* a person has no LSOA once in this many */
    uint32_t no_practice_one_in;
    uint32_t excluded_one_in;                 /* opted out */
};

struct cc_fixture {
    struct cc_fixture_spec spec;
    sqlite3 *db;
    cc_store *store;                 /* after cc_fixture_finish */
    struct cc_dataversion *version;  /* after cc_fixture_finish */
    char (*lsoa)[CC_AREA_CODE_BYTES], (*lad)[CC_AREA_CODE_BYTES], (*icb)[CC_AREA_CODE_BYTES],
        (*region)[CC_AREA_CODE_BYTES];
    uint16_t *lsoa_lad, *lad_icb, *icb_region;
    uint16_t *person_lsoa, *person_practice;  /* CC_FIXTURE_NO_AREA: none */
    /* private */
    uint64_t rng;
    cc_store_builder *builder;
    uint32_t *excluded;
    uint64_t n_excluded;
    uint32_t n_records;
    sqlite3_stmt *insert_record, *insert_code;
    uint32_t *population;
    const char **area_names;
};

/* Builds the areas, practices and persons of spec into f (which the caller
 * owns and frees with cc_fixture_free). */
void cc_fixture_begin(struct cc_fixture *f, const struct cc_fixture_spec *spec);

/* The fixture's next random number, and one uniform in [0, n). */
uint64_t cc_fixture_random(struct cc_fixture *f);
uint32_t cc_fixture_below(struct cc_fixture *f, uint32_t n);

/* Adds a record of person (an index below spec.n_persons) to the store and
 * to the oracle. */
void cc_fixture_record(struct cc_fixture *f, uint32_t person, uint8_t setting, cc_day date,
                       const struct cc_code_input *codes, size_t n_codes);

/* Finishes the store, publishes its data version with the opted-out
 * persons excluded, and indexes the oracle. */
void cc_fixture_finish(struct cc_fixture *f);

/* Runs SQL on the oracle, asserting it succeeds. */
void cc_fixture_sql(struct cc_fixture *f, const char *sql);

void cc_fixture_free(struct cc_fixture *f);

#endif
