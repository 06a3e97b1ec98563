/*
 * cc_codelist.h: named codelists, the registry a query refers to by name.
 *
 * The operator loads codelists from CSV files in the shape OpenCodelists
 * publishes (a header row with a `code` column, usually `code,term`; other
 * columns are ignored and terms are not kept). The code system is given or
 * inferred from the codes: all SNOMED CT, all ICD-10 or all OPCS-4; a file
 * that mixes systems, or whose codes fit ICD-10 and OPCS-4 alike with no
 * system given, is refused. Lists of different systems added under one name
 * make one list of several systems (OpenCodelists publishes one list per
 * system: diabetes.snomed.csv and diabetes.icd10.csv are one "diabetes"), whose
 * codes each match the records of their own system. Codes are normalised (upper case, no dot),
 * sorted and made unique, and match records like a query's codes do
 * (ICD-10 and OPCS-4 by prefix, SNOMED CT exactly).
 *
 * A registry is built once and then read-only, so every query thread may
 * share it. Loading replaces nothing: a second list of the same name is
 * refused (CC_EEXISTS).
 *
 * Must never: keep a term, or echo a row's content other than a code in an
 * error (codelists are public reference data, but terms may be long and
 * free text).
 */
#ifndef CC_CODELIST_H
#define CC_CODELIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_query.h"

#define CC_CODELIST_MAX_CODES 100000 /* codes per list */

/* One codelist; valid as long as its registry. */
struct cc_codelist {
    char name[CC_CODELIST_NAME_BYTES];
    uint8_t system; /* enum cc_code_system; 0: several (each code has its system) */
    uint32_t n_codes;
    /* [n_codes], grouped by system in enum order, each group sorted and
     * unique; every code's system is set */
    const struct cc_query_code *codes;
};

typedef struct cc_codelists cc_codelists;

/* Makes an empty registry; the caller frees it with cc_codelists_free().
 * 0 or CC_ENOMEM. */
int cc_codelists_new(cc_codelists **out);

/* Frees a registry and every list in it (NULL is allowed). */
void cc_codelists_free(cc_codelists *codelists);

/* True if name is a valid codelist name: 1-63 characters of a-z, 0-9, '-',
 * '_' and '.', starting with a letter or digit. */
bool cc_codelists_name_valid(const char *name);

/*
 * Adds the list in CSV text data[0..len) under name. system is an enum
 * cc_code_system, or 0 to infer it from the codes. Returns 0, or CC_EPARSE
 * (no `code` column, malformed CSV, a code of no system: errbuf names the
 * row, the header being row 1), CC_EINVAL (a bad name, a mixed or
 * ambiguous list, a code of another system than the one given, an empty
 * list), CC_EEXISTS (the name already holds codes of this system),
 * CC_ETOOBIG (more than CC_CODELIST_MAX_CODES codes), CC_ENOMEM.
 */
int cc_codelists_add_csv(cc_codelists *codelists, const char *name, const char *data,
                         size_t len, int system, char *errbuf, size_t errlen);

/* As cc_codelists_add_csv(), reading the file at path (CC_EIO if it cannot
 * be read); errors name the file and the row. */
int cc_codelists_load_file(cc_codelists *codelists, const char *name, const char *path,
                           int system, char *errbuf, size_t errlen);

/*
 * Loads every NAME.csv in directory dir (in name order) under NAME. A file
 * named NAME.SYSTEM.csv, SYSTEM being snomed, icd10 or opcs4, gives its
 * system explicitly and is registered as NAME. Stops at the first error.
 */
int cc_codelists_load_dir(cc_codelists *codelists, const char *dir, char *errbuf,
                          size_t errlen);

/* The list called name, or NULL. */
const struct cc_codelist *cc_codelists_find(const cc_codelists *codelists, const char *name);

/* The number of lists, and the i-th in name order. */
uint32_t cc_codelists_count(const cc_codelists *codelists);
const struct cc_codelist *cc_codelists_at(const cc_codelists *codelists, uint32_t i);

#endif
