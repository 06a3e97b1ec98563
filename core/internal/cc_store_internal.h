/*
 * cc_store_internal.h: what the store's own files share (cc_store.c, cc_store_builder.c,
 * cc_store_file.c) and nobody else may include.
 *
 * A finished store is a set of sections: one flat, owned array per column,
 * exactly the arrays the snapshot file holds (docs/store-format.md). The
 * builder produces them, the loader reads them, and store_bind_columns()
 * points the public column view into them, so the in-memory layout and the
 * file layout cannot drift apart.
 *
 * Must never: be included outside core/cc_store*.c (core/internal/ is private
 * to core; test_store alone is let in, see CMakeLists.txt); hold anything but
 * the columns listed in cc_store.h (no name, NHS number or postcode of a person).
 */
#ifndef CC_STORE_INTERNAL_H
#define CC_STORE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_error.h"
#include "cc_store.h"

/* Section ids: persisted in snapshot files, so never renumber, only append
 * (and bump the format version if the set of sections changes). */
enum store_section {
    STORE_SECTION_LSOA_CODE = 0,
    STORE_SECTION_LAD_CODE,
    STORE_SECTION_ICB_CODE,
    STORE_SECTION_REGION_CODE,
    STORE_SECTION_LSOA_LAD,
    STORE_SECTION_LAD_ICB,
    STORE_SECTION_ICB_REGION,
    STORE_SECTION_NAME_BLOB,
    STORE_SECTION_LSOA_NAME_OFFSET,
    STORE_SECTION_LAD_NAME_OFFSET,
    STORE_SECTION_ICB_NAME_OFFSET,
    STORE_SECTION_REGION_NAME_OFFSET,
    STORE_SECTION_POPULATION,
    STORE_SECTION_POSTCODE_KEY,
    STORE_SECTION_POSTCODE_LSOA,
    STORE_SECTION_PRACTICE_CODE,
    STORE_SECTION_PERSON_PSEUDONYM,
    STORE_SECTION_PERSON_POSTCODE_PSEUDONYM,
    STORE_SECTION_PERSON_DOB,
    STORE_SECTION_PERSON_SEX,
    STORE_SECTION_PERSON_LSOA,
    STORE_SECTION_PERSON_PRACTICE,
    STORE_SECTION_PERSON_RECORD_KEY,
    STORE_SECTION_PERSON_BY_PSEUDONYM,
    STORE_SECTION_RECORD_PERSON,
    STORE_SECTION_RECORD_DATE,
    STORE_SECTION_RECORD_FLAGS,
    STORE_SECTION_CODE_SYSTEM,
    STORE_SECTION_CODE_TEXT,
    STORE_SECTION_CODE_FIRST,
    STORE_SECTION_POSTING_RECORDS,
    STORE_SECTION_FEED_IDENTITY, /* format 3 */
    STORE_N_SECTIONS
};

/* The counts that size every section. */
struct store_counts {
    uint32_t n_lsoa, n_lad, n_icb, n_region;
    uint32_t n_postcodes, n_practices, n_persons, n_codes;
    uint64_t n_records, n_postings, name_blob_bytes;
    uint64_t n_feed_identities;
    uint64_t setting_first[5];
};

struct cc_store {
    struct cc_store_columns view; /* points into section[] */
    struct store_counts counts;
    /* person indices in ascending pseudonym order (memcmp), for
     * cc_store_find_person; strictly ascending proves pseudonyms unique */
    const uint32_t *person_by_pseudonym;
    /* owned arrays, one per section; every one is non-NULL except the
     * postcode pseudonyms and the feed identities of a store loaded with
     * CC_STORE_QUERY_ONLY */
    void *section[STORE_N_SECTIONS];
    size_t section_alloc_bytes[STORE_N_SECTIONS];
    /* the person sets of frequent codes (cc_store_index.c): NULL until
     * cc_store_index_build() publishes them, then never changed */
    _Atomic(struct store_code_index *) code_index;
};

/* Bytes of the person sets of frequent codes, 0 before they are built. */
size_t store_index_bytes(const struct cc_store *store);

/* Frees the person sets (cc_store_free). */
void store_index_free(struct cc_store *store);

/* The section's name as error messages give it ("records.person"). */
const char *store_section_name(int section);

/* Bytes per element of a section (1 for the name blob). */
uint32_t store_section_element_bytes(int section);

/* The exact byte length of a section for these counts, or UINT64_MAX if the
 * counts overflow. */
uint64_t store_section_bytes(const struct store_counts *counts, int section);

/* Points view at the sections (NULL where a section is absent) and copies
 * the counts into it: the one place that maps sections to columns, used by
 * the builder while it fills its arrays and by finished and loaded stores. */
void store_bind_view(struct cc_store_columns *view, const struct store_counts *counts,
                     void *const sections[STORE_N_SECTIONS]);

/* Points store->view and store->person_by_pseudonym at the sections and
 * copies the counts into the view. */
void store_bind_columns(struct cc_store *store);

/* Runs job(first) here and job(second) on a second thread, and returns when
 * both are done; if no thread can be started, both run here, first first.
 * The two must share nothing they write. */
void store_run_pair(void *(*job)(void *), void *first, void *second);

/* Allocates at least max(bytes, 1) bytes, uninitialised, on huge pages when
 * large; NULL on failure. The caller frees with free(). */
void *store_alloc(uint64_t bytes);

/* Allocates at least max(bytes, 1) bytes, zeroed; NULL on failure or if
 * bytes does not fit in size_t. The caller frees with free(). */
void *store_alloc_zeroed(uint64_t bytes);

/* Compares two pseudonyms as 16 unsigned bytes. */
int store_pseudonym_compare(const cc_pseudonym *a, const cc_pseudonym *b);

/* Sorts person indices idx[0..n) by pseudonym (ascending, memcmp order).
 * Returns 0 or CC_ENOMEM. */
int store_sort_persons_by_pseudonym(uint32_t *idx, uint32_t n, const cc_pseudonym *pseudonyms);

/* The LSOA of a canonical postcode in sorted key/LSOA arrays, or -1. */
int32_t store_postcode_search(const uint64_t *keys, const uint16_t *lsoa, uint32_t n,
                              const char *canonical, size_t len);

/* Sorts keys (and values with them, unless values is NULL) stably by bits
 * [low_bit, high_bit) of the key; *keys and *values are replaced by the
 * sorted arrays (the old ones are reused or freed). 0 or CC_ENOMEM. */
int store_radix_sort(uint64_t **keys, uint32_t **values, uint64_t n, int low_bit, int high_bit);

/* Sorts keys[0..n) in place by bits [low_bit, high_bit) (all bits of the
 * key decide ties when n <= 32), using tmp (room for n keys); for short
 * runs that fit in cache. */
void store_sort_keys_small(uint64_t *keys, uint64_t *tmp, uint64_t n, int low_bit, int high_bit);

/* Writes a formatted reason into errbuf (if any) and returns CC_ECORRUPT. */
#define store_corrupt(errbuf, errlen, ...) cc_errorf(errbuf, errlen, CC_ECORRUPT, __VA_ARGS__)

#endif
