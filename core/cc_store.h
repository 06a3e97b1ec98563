/*
 * cc_store.h: the linked analytic data, in memory, in columns.
 *
 * The store holds what queries need and nothing that identifies a person:
 * the area reference data, one row per linked person (demographics, area,
 * pseudonym, record key), one row per record (a GP event, a hospital episode
 * or a community contact) and, per clinical code, a posting list of the
 * records that carry it. It is written to the data directory as one
 * checksummed snapshot file, replaced atomically, and restored from it at
 * start without re-reading any feed.
 *
 * Layout and invariants (checked by cc_store_validate() on every load):
 *  - Areas: LSOA i lies in district lsoa_lad[i], district j in ICB lad_icb[j],
 *    ICB k in region icb_region[k]. Codes are sorted within each level.
 *  - Persons: index 0..n_persons-1, stable across snapshots (new persons are
 *    appended). Pseudonyms are unique.
 *  - Records: sorted by (setting, year, person, date), so a setting is one
 *    contiguous range (setting_first[s]..setting_first[s+1]), a calendar year
 *    of a setting is one contiguous range within it (cc_store_year_records),
 *    and within a year the records of one person are contiguous and in date
 *    order, persons ascending.
 *  - Codes: ids are assigned in (system, code text) order, so every code that
 *    starts with a given prefix in one system is one contiguous id range.
 *    Postings of code c are posting_records[code_first[c]..code_first[c+1]),
 *    record indices in ascending order, each record at most once per code.
 *
 * Opt-outs are not in the store: which persons are excluded from figures is
 * decided per published data version (see cc_dataversion.h), so a
 * store is immutable once loaded and can be shared by every query thread.
 *
 * Must never: hold a name, an NHS number or a postcode of a person.
 */
#ifndef CC_STORE_H
#define CC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_date.h"
#include "cc_pseudo.h"

#define CC_AREA_CODE_BYTES 10 /* "E01000001" and a NUL */
#define CC_PRACTICE_CODE_BYTES 8
#define CC_CODE_TEXT_BYTES 20 /* longest SNOMED CT id is 18 digits */
#define CC_FEED_IDENTITY_BYTES 16

/* record_flags: bits of a record's flags byte */
#define CC_RECORD_ADMIT_MASK 0x0f /* hospital: admission method class (below) */
#define CC_ADMIT_ELECTIVE 1
#define CC_ADMIT_EMERGENCY 2
#define CC_ADMIT_MATERNITY 3
#define CC_ADMIT_OTHER 4

/*
 * The read-only view of a store's columns. Every pointer stays valid until
 * the store is freed. Arrays are indexed as the comments say.
 */
struct cc_store_columns {
    /* areas */
    uint32_t n_lsoa, n_lad, n_icb, n_region;
    const char (*lsoa_code)[CC_AREA_CODE_BYTES];   /* [n_lsoa] */
    const char (*lad_code)[CC_AREA_CODE_BYTES];    /* [n_lad] */
    const char (*icb_code)[CC_AREA_CODE_BYTES];    /* [n_icb] */
    const char (*region_code)[CC_AREA_CODE_BYTES]; /* [n_region] */
    const uint16_t *lsoa_lad;                      /* [n_lsoa] */
    const uint16_t *lad_icb;                       /* [n_lad] */
    const uint16_t *icb_region;                    /* [n_icb] */
    /* area names, NUL-terminated strings in one blob: name of area
     * (level, i) starts at name_blob + *_name_offset[i] */
    const char *name_blob;
    const uint32_t *lsoa_name_offset, *lad_name_offset, *icb_name_offset,
        *region_name_offset;
    /* ONS population estimates: population[(lsoa * 2 + (sex - 1)) * 19 + band] */
    const uint32_t *population; /* [n_lsoa * 2 * CC_N_AGE_BANDS_5Y] */

    /* the postcode lookup (public reference data, not personal): sorted
     * packed canonical postcodes (cc_postcode_pack) and their LSOA */
    uint32_t n_postcodes;
    const uint64_t *postcode_key; /* [n_postcodes], ascending */
    const uint16_t *postcode_lsoa;

    /* GP practices */
    uint32_t n_practices;
    const char (*practice_code)[CC_PRACTICE_CODE_BYTES]; /* [n_practices], sorted */

    /* persons */
    uint32_t n_persons;
    const cc_pseudonym *person_pseudonym;          /* [n_persons], unique */
    const cc_pseudonym *person_postcode_pseudonym; /* [n_persons] for stage-2 linkage */
    const uint16_t *person_dob;                    /* [n_persons] cc_day */
    const uint8_t *person_sex;                     /* [n_persons] enum cc_sex */
    const uint16_t *person_lsoa;                   /* [n_persons]; UINT16_MAX unknown */
    const uint16_t *person_practice;               /* [n_persons]; UINT16_MAX none */
    const uint32_t *person_record_key;             /* [n_persons] cell key method */

    /* records */
    uint64_t n_records;
    uint64_t setting_first[5]; /* records of setting s: [setting_first[s], setting_first[s+1]) */
    const uint32_t *record_person; /* [n_records] */
    const uint16_t *record_date;   /* [n_records] cc_day */
    const uint8_t *record_flags;   /* [n_records] CC_RECORD_* */

    /* codes */
    uint32_t n_codes;
    const uint8_t *code_system;                    /* [n_codes] enum cc_code_system */
    const char (*code_text)[CC_CODE_TEXT_BYTES];   /* [n_codes] */
    const uint64_t *code_first;                    /* [n_codes + 1] */
    /* [code_first[n_codes]]: a record index in the low 30 bits and the code's
     * role in that record (enum cc_code_role) in the top 2: read them with
     * CC_POSTING_RECORD() and CC_POSTING_ROLE(). Packing the role saves a
     * byte per posting (the store's budget is 12 bytes per record). */
    const uint32_t *posting_records;

    /* the keyed identities (cc_pseudo_record_identity) of the stored
     * records that their feed identifies by a key of its own (HES episode
     * key, community contact id), strictly ascending (memcmp): how ingest
     * recognises a record sent again in a later file. NULL when loaded with
     * CC_STORE_QUERY_ONLY (queries never need them). */
    uint64_t n_feed_identities;
    const uint8_t (*feed_identity)[CC_FEED_IDENTITY_BYTES];
};

#define CC_POSTING_RECORD_BITS 30
#define CC_POSTING_MAX_RECORDS (1u << CC_POSTING_RECORD_BITS)
#define CC_POSTING_RECORD(posting) ((posting) & (CC_POSTING_MAX_RECORDS - 1u))
#define CC_POSTING_ROLE(posting) ((posting) >> CC_POSTING_RECORD_BITS)

typedef struct cc_store cc_store;

/* Returns the column view of a store. */
const struct cc_store_columns *cc_store_columns(const cc_store *store);

/* Load flags. A query server does not need the postcode pseudonyms (they
 * serve stage-2 linkage at ingest only) or the feed identities (duplicate
 * detection at ingest only), so it passes CC_STORE_QUERY_ONLY and those
 * columns are then NULL in the view, saving 16 bytes per person and per
 * keyed record. */
#define CC_STORE_LOAD_ALL 0
#define CC_STORE_QUERY_ONLY 1

/* The key of a snapshot's checksums (the data directory's
 * cc_pseudo_store_mac_key()): every checksum of the file is BLAKE2b keyed
 * with it, so only its holder can write a snapshot that loads. */
#define CC_STORE_KEY_BYTES 32

/* Loads the snapshot file at path, checking it with key. Returns
 * CC_EWRONGKEY (with a reason in errbuf) for a snapshot written with
 * another key, CC_ECORRUPT for a file whose magic, version, lengths or
 * checksums do not match, or whose invariants do not hold; CC_EIO if it
 * cannot be read. The caller frees with cc_store_free(). */
int cc_store_load(const char *path, int flags, const uint8_t key[CC_STORE_KEY_BYTES],
                  cc_store **out, char *errbuf, size_t errlen);

/* Bytes of memory the store holds, its person sets of frequent codes
 * included once built (for the memory budget: at most 40 per person and 12
 * per record, measured in bench/). */
size_t cc_store_memory_bytes(const cc_store *store);

/* Writes a snapshot, its checksums keyed with key, atomically: to path.tmp, fsync, rename over path, fsync
 * the directory. A crash at any point leaves either the old file or the new
 * one at path. CC_EINVAL for a store loaded with CC_STORE_QUERY_ONLY (it
 * lacks a column); CC_EIO if any step fails (path.tmp is removed). The
 * format is in docs/store-format.md. */
int cc_store_save(const cc_store *store, const char *path, const uint8_t key[CC_STORE_KEY_BYTES]);

/* Checks every invariant listed above; 0 or CC_ECORRUPT with a reason. */
int cc_store_validate(const cc_store *store, char *errbuf, size_t errlen);

/* Frees a store (NULL is allowed). */
void cc_store_free(cc_store *store);

/* Finds a person by pseudonym: their index, or -1. O(log n). */
int64_t cc_store_find_person(const cc_store *store, const cc_pseudonym *p);

/* Finds a code: its id, or -1. */
int64_t cc_store_find_code(const cc_store *store, int system, const char *text);

/* The id range [*first, *last) of codes of one system starting with prefix
 * (which may be the whole code). Empty range if none. */
void cc_store_code_prefix_range(const cc_store *store, int system, const char *prefix,
                                uint32_t *first, uint32_t *last);

/*
 * Person sets of frequent codes (cc_store_index.c): for each of the (code,
 * setting) pairs with the most postings, at most CC_STORE_CODE_SETS_MAX and
 * only those with at least n_persons / CC_STORE_CODE_SET_MIN_DIVISOR
 * postings, the set of persons with a record of that setting carrying the
 * code: (n_persons + 63) / 64 words, bit p % 64 of word p / 64 for person p.
 * They let the engine find a condition's persons without reading the
 * postings' records. Built once (idempotent, thread-safe); then read-only.
 */
#define CC_STORE_CODE_SETS_MAX 48
#define CC_STORE_CODE_SET_MIN_DIVISOR 16

/* Builds the sets if they are not built yet. 0 or CC_ENOMEM (the store is
 * then as before, and queries read the postings). */
int cc_store_index_build(const cc_store *store);

/* The persons of (code, setting 1..3), or NULL if the pair has no set (or
 * the sets are not built). */
const uint64_t *cc_store_code_persons(const cc_store *store, uint32_t code, int setting);

/* Bytes the sets hold (0 before they are built; also counted by
 * cc_store_memory_bytes). */
size_t cc_store_index_memory_bytes(const cc_store *store);

/* The first and last date of any record, once the sets are built: 0, or -1
 * (not built, or no records). */
int cc_store_record_days(const cc_store *store, cc_day *first, cc_day *last);

/* The records of setting (1..3) in calendar year `year`: [*first, *last),
 * found by binary search (records are sorted by setting, then year). */
void cc_store_year_records(const struct cc_store_columns *columns, int setting, int year,
                           uint64_t *first, uint64_t *last);

/* The postings of code whose records are of setting (1..3): [*first, *last),
 * found by binary search (records are sorted by setting first). */
void cc_store_postings_in_setting(const struct cc_store_columns *columns, uint32_t code,
                                  int setting, uint64_t *first, uint64_t *last);

/* Packs a canonical postcode ("LS1 4AP", at most 8 bytes) into a sort key;
 * 0 if it cannot be packed. */
uint64_t cc_postcode_pack(const char *canonical, size_t len);

/* The LSOA index of a canonical postcode, or -1 if it is not in the lookup. */
int32_t cc_store_postcode_lsoa(const cc_store *store, const char *canonical, size_t len);

/*
 * Building a store. The ingest stage fills a builder from a previous store
 * (or an empty one), adds areas, persons and records, then finishes it: the
 * builder sorts records, assigns code ids in order, builds posting lists and
 * returns an immutable store. Builders are single-threaded.
 */
typedef struct cc_store_builder cc_store_builder;

/* Starts a builder holding a copy of base's contents (base may be NULL).
 * Person indices of base stay the same; new persons are appended. CC_EINVAL
 * if base was loaded with CC_STORE_QUERY_ONLY. */
int cc_store_builder_new(const cc_store *base, cc_store_builder **out);
void cc_store_builder_free(cc_store_builder *b);

/* Area reference data: replaces any previous areas. Codes must form a strict
 * hierarchy (CC_EINVAL otherwise; also for an empty or duplicate code, a
 * zero postcode key, or one postcode given two LSOAs). The builder copies
 * everything and sorts each level and the postcodes, so read indices back
 * from cc_store_builder_columns() or cc_store_builder_postcode_lsoa(), not
 * from the input order. Persons already held keep their LSOA by code (one
 * missing from the new areas becomes unknown). Set areas before adding
 * persons: a person's LSOA must be below the current n_lsoa. */
struct cc_area_input {
    uint32_t n_lsoa, n_lad, n_icb, n_region;
    const char (*lsoa_code)[CC_AREA_CODE_BYTES];
    const char (*lad_code)[CC_AREA_CODE_BYTES];
    const char (*icb_code)[CC_AREA_CODE_BYTES];
    const char (*region_code)[CC_AREA_CODE_BYTES];
    const char *const *lsoa_name, *const *lad_name, *const *icb_name, *const *region_name;
    const uint16_t *lsoa_lad, *lad_icb, *icb_region;
    const uint32_t *population; /* [n_lsoa * 2 * 19] */
    uint32_t n_postcodes;
    const uint64_t *postcode_key; /* need not be sorted */
    const uint16_t *postcode_lsoa;
};
int cc_store_builder_set_areas(cc_store_builder *b, const struct cc_area_input *areas);

/* The column view of what the builder holds so far (areas, persons; records
 * are not sorted until finish). */
const struct cc_store_columns *cc_store_builder_columns(const cc_store_builder *b);

/* Interns a practice code (1-7 characters); returns its index in the
 * builder or a negative CC_E* code. finish() sorts the practices and renumbers
 * persons' practice indices to match. */
int32_t cc_store_builder_practice(cc_store_builder *b, const char *code);

/* Adds a person or updates an existing one with the same pseudonym; returns
 * the person's index or a negative CC_E* code (CC_EINVAL for a date of
 * birth outside cc_day's span, an unknown sex code, or an LSOA or practice
 * index the builder does not hold). */
struct cc_person_input {
    cc_pseudonym pseudonym;
    cc_pseudonym postcode_pseudonym;
    cc_day dob;
    uint8_t sex;
    uint16_t lsoa;     /* UINT16_MAX: unknown */
    uint16_t practice; /* UINT16_MAX: none */
    uint32_t record_key;
};
int64_t cc_store_builder_person(cc_store_builder *b, const struct cc_person_input *p);

/* The index of the person with this pseudonym in the builder, or -1. O(1). */
int64_t cc_store_builder_find_person(const cc_store_builder *b, const cc_pseudonym *p);

/* Asks the caches for what cc_store_builder_find_person(b, p) and the
 * person's address check will read at random, in two steps some rows
 * apart: step 0 the table slot; step 1, once that slot has arrived, the
 * pseudonym and postcode pseudonym of the person it names. Advice only:
 * nothing changes, and a slot that has moved since costs only the hint. */
void cc_store_builder_prefetch_person(const cc_store_builder *b, const cc_pseudonym *p, int step);

/* The LSOA index of a canonical postcode in the builder's current area
 * lookup (set by cc_store_builder_set_areas), or -1. */
int32_t cc_store_builder_postcode_lsoa(const cc_store_builder *b, const char *canonical,
                                       size_t len);

/* Adds one record of a person with its codes (1 <= n_codes <= 255; code
 * texts of 1-19 characters). A code given twice in one record is kept once,
 * with the lower-numbered role. CC_EINVAL for an unknown person, setting,
 * system or role, or a date outside cc_day's span. */
struct cc_code_input {
    uint8_t system; /* enum cc_code_system */
    uint8_t role;   /* enum cc_code_role */
    const char *text;
};
int cc_store_builder_record(cc_store_builder *b, uint32_t person, uint8_t setting, cc_day date,
                            uint8_t flags, const struct cc_code_input *codes, size_t n_codes);

/* Records added so far (the index the next record gets). */
uint64_t cc_store_builder_n_records(const cc_store_builder *b);

/*
 * Drops the repeats among the records added since record first: a record
 * with the same person, setting, date, flags and codes (in the order kept)
 * as an earlier one of them is dropped, the earliest kept, as if it had
 * never been added. What one sort does instead of a hash set per row: the
 * records are ordered by (person, date) with a radix sort, and only records
 * of the same person and day are compared. Into *dropped, how many. 0 or
 * CC_ENOMEM (then nothing is dropped).
 */
int cc_store_builder_drop_repeats(cc_store_builder *b, uint64_t first, uint64_t *dropped);

/* Records that the store holds a record with this feed identity (kept
 * once; finish sorts them). 0 or CC_ENOMEM. */
int cc_store_builder_feed_identity(cc_store_builder *b,
                                   const uint8_t identity[CC_FEED_IDENTITY_BYTES]);

/* Removes every record of the given setting belonging to person that the
 * builder holds now (records added later stay) (used when a type 1 opt-out
 * means GP-sourced data must leave the store). O(1): applied by finish. */
int cc_store_builder_drop_records(cc_store_builder *b, uint32_t person, uint8_t setting);

/* Sorts, indexes and validates; on success *out owns everything and the
 * builder is freed. On failure the builder is freed too. */
int cc_store_builder_finish(cc_store_builder *b, cc_store **out);

#endif
