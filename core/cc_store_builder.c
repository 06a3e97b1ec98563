/*
 * cc_store_builder.c: filling a store and turning it into the immutable,
 * indexed form (see cc_store.h).
 *
 * While building, persons and records are appended to growable column arrays
 * (structure of arrays). Persons are found by pseudonym, practices and codes
 * by their text, through open-addressing hash tables of indices. A record's
 * codes go to a side array (code id and role per occurrence) in record order,
 * with the count per record in record_n_codes.
 *
 * finish() then: applies pending drops, sorts practices and codes and remaps
 * their ids, orders records by (setting, year, person, date) with an LSD radix
 * sort of one 64-bit key per record, builds the posting lists with a counting sort on code while visiting the
 * records in their new order, sorts the pseudonym index and validates the
 * result. Visiting records in a random permutation is bound by memory
 * latency, so those loops prefetch ahead.
 *
 * Must never: keep or accept a name, NHS number or postcode of a person (the
 * builder sees pseudonyms only); return indices that a later call silently
 * invalidates (person indices are stable; practice and code ids are builder
 * ids, renumbered by finish, which the finished store's view reflects).
 */
#include "cc_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cc_array.h"
#include "cc_error.h"
#include "cc_hash.h"
#include "cc_model.h"
#include "cc_store_internal.h"

#define MAX_CODES_PER_RECORD 255

struct cc_store_builder {
    /* area reference data: exactly the area and postcode sections of a store */
    struct store_counts area_counts;
    void *area_section[STORE_N_SECTIONS];

    uint32_t n_practices, practice_cap;
    char (*practice_code)[CC_PRACTICE_CODE_BYTES];
    struct cc_index_table practice_table;

    uint32_t n_persons, person_cap;
    cc_pseudonym *person_pseudonym, *person_postcode_pseudonym;
    uint16_t *person_dob, *person_lsoa, *person_practice;
    uint8_t *person_sex;
    uint32_t *person_record_key;
    struct cc_index_table person_table;

    uint64_t n_records, record_cap;
    uint32_t *record_person;
    uint16_t *record_date;
    uint8_t *record_flags, *record_setting, *record_n_codes;

    /* the codes of record r follow those of record r - 1 */
    uint64_t n_occurrences, occurrence_cap;
    uint32_t *occurrence_code;
    uint8_t *occurrence_role;

    uint32_t n_codes, code_cap;
    uint8_t *code_system;
    char (*code_text)[CC_CODE_TEXT_BYTES];
    struct cc_index_table code_table;

    /* pending drop_records calls: key (person << 2 | setting) + 1, and the
     * record count at the time of the call (records below it are dropped) */
    struct cc_u64_map drops; /* uint64_t values */

    /* feed identities of stored records, unsorted until finish */
    uint64_t n_feed_identities;
    size_t feed_identity_cap;
    uint8_t (*feed_identity)[CC_FEED_IDENTITY_BYTES];

    struct cc_store_columns view;
};

/* ---- hashing ---------------------------------------------------------- */

static uint64_t hash_pseudonym(const cc_pseudonym *p)
{
    uint64_t a, c;
    memcpy(&a, p->bytes, 8);
    memcpy(&c, p->bytes + 8, 8);
    return cc_hash_mix64(a ^ (c * 0x9e3779b97f4a7c15ULL));
}

static uint64_t hash_person(const void *builder, uint32_t i)
{
    const cc_store_builder *b = builder;
    return hash_pseudonym(&b->person_pseudonym[i]);
}

static uint64_t hash_practice(const void *builder, uint32_t i)
{
    const cc_store_builder *b = builder;
    return cc_hash_text(b->practice_code[i], CC_PRACTICE_CODE_BYTES, 0);
}

/* A code's hash over its NUL-padded fixed-width text, read as words. */
static uint64_t hash_code_text(uint8_t system, const char text[CC_CODE_TEXT_BYTES])
{
    uint64_t w0, w1;
    uint32_t w2;
    memcpy(&w0, text, 8);
    memcpy(&w1, text + 8, 8);
    memcpy(&w2, text + 16, 4);
    return cc_hash_mix64(w0 ^ cc_hash_mix64(w1 ^ ((uint64_t)w2 << 8 | system)));
}

static uint64_t hash_code(const void *builder, uint32_t i)
{
    const cc_store_builder *b = builder;
    return hash_code_text(b->code_system[i], b->code_text[i]);
}

/* ---- growable arrays -------------------------------------------------- */

/* Column arrays start at 1024 entries and grow by half (cc_array.h). */
#define COLUMN_MIN_CAPACITY 1024

static uint64_t next_capacity(uint64_t capacity, uint64_t need)
{
    return cc_array_next_capacity(capacity, need < COLUMN_MIN_CAPACITY ? COLUMN_MIN_CAPACITY : need);
}

static void refresh_view(cc_store_builder *b);

static int reserve_persons(cc_store_builder *b, uint64_t need)
{
    if (need <= b->person_cap)
        return 0;
    if (need > UINT32_MAX)
        return CC_ETOOBIG;
    int rc = 0;
    uint64_t cap = next_capacity(b->person_cap, need);
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    if (cc_array_resize(&b->person_pseudonym, cap, sizeof(cc_pseudonym)) ||
        cc_array_resize(&b->person_postcode_pseudonym, cap, sizeof(cc_pseudonym)) ||
        cc_array_resize(&b->person_dob, cap, 2) || cc_array_resize(&b->person_lsoa, cap, 2) ||
        cc_array_resize(&b->person_practice, cap, 2) || cc_array_resize(&b->person_sex, cap, 1) ||
        cc_array_resize(&b->person_record_key, cap, 4))
        rc = CC_ENOMEM;
    else
        b->person_cap = (uint32_t)cap;
    refresh_view(b); /* the arrays may have moved, even on failure */
    return rc;
}

static int reserve_records(cc_store_builder *b, uint64_t need)
{
    if (need <= b->record_cap)
        return 0;
    if (need > CC_POSTING_MAX_RECORDS)
        return CC_ETOOBIG; /* postings hold 30-bit record indices */
    int rc = 0;
    uint64_t cap = next_capacity(b->record_cap, need);
    if (cc_array_resize(&b->record_person, cap, 4) || cc_array_resize(&b->record_date, cap, 2) ||
        cc_array_resize(&b->record_flags, cap, 1) || cc_array_resize(&b->record_setting, cap, 1) ||
        cc_array_resize(&b->record_n_codes, cap, 1))
        rc = CC_ENOMEM;
    else
        b->record_cap = cap;
    refresh_view(b); /* the arrays may have moved, even on failure */
    return rc;
}

static int reserve_occurrences(cc_store_builder *b, uint64_t need)
{
    if (need <= b->occurrence_cap)
        return 0;
    if (need > UINT32_MAX)
        return CC_ETOOBIG;
    uint64_t cap = next_capacity(b->occurrence_cap, need);
    if (cc_array_resize(&b->occurrence_code, cap, 4) || cc_array_resize(&b->occurrence_role, cap, 1))
        return CC_ENOMEM;
    b->occurrence_cap = cap;
    return 0;
}

/* Points the builder's column view at what it holds now. */
static void refresh_view(cc_store_builder *b)
{
    void *sections[STORE_N_SECTIONS];
    memcpy(sections, b->area_section, sizeof sections);
    sections[STORE_SECTION_PRACTICE_CODE] = b->practice_code;
    sections[STORE_SECTION_PERSON_PSEUDONYM] = b->person_pseudonym;
    sections[STORE_SECTION_PERSON_POSTCODE_PSEUDONYM] = b->person_postcode_pseudonym;
    sections[STORE_SECTION_PERSON_DOB] = b->person_dob;
    sections[STORE_SECTION_PERSON_SEX] = b->person_sex;
    sections[STORE_SECTION_PERSON_LSOA] = b->person_lsoa;
    sections[STORE_SECTION_PERSON_PRACTICE] = b->person_practice;
    sections[STORE_SECTION_PERSON_RECORD_KEY] = b->person_record_key;
    sections[STORE_SECTION_RECORD_PERSON] = b->record_person;
    sections[STORE_SECTION_RECORD_DATE] = b->record_date;
    sections[STORE_SECTION_RECORD_FLAGS] = b->record_flags;
    sections[STORE_SECTION_CODE_SYSTEM] = b->code_system;
    sections[STORE_SECTION_CODE_TEXT] = b->code_text;
    struct store_counts counts = b->area_counts;
    counts.n_practices = b->n_practices;
    counts.n_persons = b->n_persons;
    counts.n_records = b->n_records;
    counts.n_codes = b->n_codes;
    memset(counts.setting_first, 0, sizeof counts.setting_first);
    store_bind_view(&b->view, &counts, sections);
}

/* ---- interning -------------------------------------------------------- */

static int practice_matches(const void *builder, uint32_t i, const void *code)
{
    const cc_store_builder *b = builder;
    return strncmp(b->practice_code[i], code, CC_PRACTICE_CODE_BYTES) == 0;
}

static int64_t find_practice(const cc_store_builder *b, const char *code)
{
    return cc_index_table_find(&b->practice_table, cc_hash_text(code, CC_PRACTICE_CODE_BYTES, 0),
                               practice_matches, b, code);
}

int32_t cc_store_builder_practice(cc_store_builder *b, const char *code)
{
    size_t len = code ? strlen(code) : 0;
    if (len == 0 || len >= CC_PRACTICE_CODE_BYTES)
        return CC_EINVAL;
    int64_t found = find_practice(b, code);
    if (found >= 0)
        return (int32_t)found;
    if (b->n_practices >= UINT16_MAX) /* UINT16_MAX means "no practice" */
        return CC_ETOOBIG;
    if (b->n_practices == b->practice_cap) {
        uint32_t cap = b->practice_cap ? b->practice_cap * 2 : 64;
        if (cc_array_resize(&b->practice_code, cap, CC_PRACTICE_CODE_BYTES))
            return CC_ENOMEM;
        b->practice_cap = cap;
    }
    if (cc_index_table_reserve(&b->practice_table, b->n_practices, hash_practice, b))
        return CC_ENOMEM;
    uint32_t index = b->n_practices++;
    memset(b->practice_code[index], 0, CC_PRACTICE_CODE_BYTES);
    memcpy(b->practice_code[index], code, len);
    cc_index_table_insert(&b->practice_table, hash_practice(b, index), index);
    refresh_view(b);
    return (int32_t)index;
}

struct code_key {
    uint8_t system;
    const char *padded; /* CC_CODE_TEXT_BYTES, NUL-padded */
};

static int code_matches(const void *builder, uint32_t i, const void *code_key)
{
    const cc_store_builder *b = builder;
    const struct code_key *key = code_key;
    return b->code_system[i] == key->system &&
           memcmp(b->code_text[i], key->padded, CC_CODE_TEXT_BYTES) == 0;
}

/* Interns a code (already checked); its builder id or a negative code. */
static int64_t intern_code(cc_store_builder *b, uint8_t system, const char *text)
{
    /* stored texts are NUL-padded to full width, so one fixed-size memcmp
     * compares them */
    char padded[CC_CODE_TEXT_BYTES] = {0};
    memcpy(padded, text, strlen(text));
    uint64_t hash = hash_code_text(system, padded);
    struct code_key key = {system, padded};
    int64_t found = cc_index_table_find(&b->code_table, hash, code_matches, b, &key);
    if (found >= 0)
        return found;
    if (b->n_codes == UINT32_MAX - 1)
        return CC_ETOOBIG;
    if (b->n_codes == b->code_cap) {
        uint64_t cap = next_capacity(b->code_cap, (uint64_t)b->n_codes + 1);
        if (cap > UINT32_MAX - 1)
            cap = UINT32_MAX - 1;
        int grown = cc_array_resize(&b->code_system, cap, 1) == 0 &&
                    cc_array_resize(&b->code_text, cap, CC_CODE_TEXT_BYTES) == 0;
        refresh_view(b); /* the arrays may have moved, even on failure */
        if (!grown)
            return CC_ENOMEM;
        b->code_cap = (uint32_t)cap;
    }
    if (cc_index_table_reserve(&b->code_table, b->n_codes, hash_code, b))
        return CC_ENOMEM;
    uint32_t index = b->n_codes++;
    b->code_system[index] = system;
    memcpy(b->code_text[index], padded, CC_CODE_TEXT_BYTES);
    cc_index_table_insert(&b->code_table, hash, index);
    return index;
}

/* ---- persons ---------------------------------------------------------- */

static int person_matches(const void *builder, uint32_t i, const void *pseudonym)
{
    const cc_store_builder *b = builder;
    /* equality only: a fixed-size memcmp the compiler turns into two loads
     * and compares, where the ordering compare is a call */
    return memcmp(b->person_pseudonym[i].bytes, pseudonym, CC_PSEUDONYM_BYTES) == 0;
}

int64_t cc_store_builder_find_person(const cc_store_builder *b, const cc_pseudonym *p)
{
    return cc_index_table_find(&b->person_table, hash_pseudonym(p), person_matches, b, p);
}

void cc_store_builder_prefetch_person(const cc_store_builder *b, const cc_pseudonym *p, int step)
{
    const uint32_t *slots = b->person_table.slots;
    if (!slots)
        return;
    const uint32_t *slot = &slots[hash_pseudonym(p) & b->person_table.mask];
    if (step == 0) {
        __builtin_prefetch(slot);
        return;
    }
    uint32_t at = *slot; /* the first slot of the probe: mostly the one */
    if (at && at - 1 < b->n_persons) {
        __builtin_prefetch(&b->person_pseudonym[at - 1]);
        __builtin_prefetch(&b->person_postcode_pseudonym[at - 1]);
    }
}

int64_t cc_store_builder_person(cc_store_builder *b, const struct cc_person_input *p)
{
    if (p->dob < CC_DAY_MIN || p->dob > CC_DAY_MAX)
        return CC_EINVAL;
    if (p->sex != CC_SEX_NOT_KNOWN && p->sex != CC_SEX_MALE && p->sex != CC_SEX_FEMALE &&
        p->sex != CC_SEX_INDETERMINATE)
        return CC_EINVAL;
    if (p->lsoa != UINT16_MAX && p->lsoa >= b->area_counts.n_lsoa)
        return CC_EINVAL;
    if (p->practice != UINT16_MAX && p->practice >= b->n_practices)
        return CC_EINVAL;
    int64_t index = cc_store_builder_find_person(b, &p->pseudonym);
    if (index < 0) {
        int rc;
        if ((rc = reserve_persons(b, (uint64_t)b->n_persons + 1)) ||
            (rc = cc_index_table_reserve(&b->person_table, b->n_persons, hash_person, b)))
            return rc;
        index = b->n_persons++;
        b->person_pseudonym[index] = p->pseudonym;
        cc_index_table_insert(&b->person_table, hash_pseudonym(&p->pseudonym), (uint32_t)index);
    }
    b->person_postcode_pseudonym[index] = p->postcode_pseudonym;
    b->person_dob[index] = (uint16_t)p->dob;
    b->person_sex[index] = p->sex;
    b->person_lsoa[index] = p->lsoa;
    b->person_practice[index] = p->practice;
    b->person_record_key[index] = p->record_key;
    b->view.n_persons = b->n_persons; /* pointers change only when arrays grow */
    return index;
}

/* ---- records ---------------------------------------------------------- */

int cc_store_builder_record(cc_store_builder *b, uint32_t person, uint8_t setting, cc_day date,
                            uint8_t flags, const struct cc_code_input *codes, size_t n_codes)
{
    if (person >= b->n_persons || setting < CC_SETTING_GP || setting > CC_SETTING_COMMUNITY)
        return CC_EINVAL;
    if (date < CC_DAY_MIN || date > CC_DAY_MAX || (flags & CC_RECORD_ADMIT_MASK) > CC_ADMIT_OTHER)
        return CC_EINVAL;
    if (n_codes < 1 || n_codes > MAX_CODES_PER_RECORD || !codes)
        return CC_EINVAL;
    for (size_t k = 0; k < n_codes; k++) {
        const struct cc_code_input *c = &codes[k];
        if (c->system < CC_CODE_SNOMED || c->system > CC_CODE_OPCS4 ||
            c->role > CC_ROLE_PROCEDURE || !c->text || c->text[0] == '\0' ||
            strlen(c->text) >= CC_CODE_TEXT_BYTES)
            return CC_EINVAL;
    }
    int rc;
    if ((rc = reserve_records(b, b->n_records + 1)) ||
        (rc = reserve_occurrences(b, b->n_occurrences + n_codes)))
        return rc;

    /* a code appears at most once per record; if given twice, the first
     * (lowest-numbered) role wins, so a primary diagnosis stays primary */
    uint64_t base = b->n_occurrences;
    uint32_t kept = 0;
    for (size_t k = 0; k < n_codes; k++) {
        int64_t id = intern_code(b, codes[k].system, codes[k].text);
        if (id < 0)
            return (int)id;
        uint32_t j = 0;
        while (j < kept && b->occurrence_code[base + j] != (uint32_t)id)
            j++;
        if (j < kept) {
            if (codes[k].role < b->occurrence_role[base + j])
                b->occurrence_role[base + j] = codes[k].role;
            continue;
        }
        b->occurrence_code[base + kept] = (uint32_t)id;
        b->occurrence_role[base + kept] = codes[k].role;
        kept++;
    }
    uint64_t r = b->n_records++;
    b->record_person[r] = person;
    b->record_date[r] = (uint16_t)date;
    b->record_flags[r] = flags;
    b->record_setting[r] = setting;
    b->record_n_codes[r] = (uint8_t)kept;
    b->n_occurrences += kept;
    b->view.n_records = b->n_records;
    b->view.n_codes = b->n_codes;
    return 0;
}

uint64_t cc_store_builder_n_records(const cc_store_builder *b)
{
    return b->n_records;
}

static int bits_for(uint64_t n);

/* Are records r and q (their codes at occurrences ar and aq) the same? */
static int same_record(const cc_store_builder *b, uint64_t r, uint64_t ar, uint64_t q,
                       uint64_t aq)
{
    if (b->record_setting[r] != b->record_setting[q] || b->record_flags[r] != b->record_flags[q] ||
        b->record_n_codes[r] != b->record_n_codes[q])
        return 0;
    for (uint32_t k = 0; k < b->record_n_codes[r]; k++)
        if (b->occurrence_code[ar + k] != b->occurrence_code[aq + k] ||
            b->occurrence_role[ar + k] != b->occurrence_role[aq + k])
            return 0;
    return 1;
}

int cc_store_builder_drop_repeats(cc_store_builder *b, uint64_t first, uint64_t *dropped)
{
    *dropped = 0;
    if (first >= b->n_records)
        return 0;
    uint64_t n = b->n_records - first;
    if (n > UINT32_MAX)
        return CC_ETOOBIG; /* the sort's values are 32-bit offsets */
    uint64_t *keys = store_alloc(n * sizeof *keys);
    uint32_t *values = store_alloc(n * sizeof *values);
    uint64_t *occurrence = NULL; /* [n]: where record first + i's codes start */
    int rc = CC_ENOMEM;
    if (!keys || !values)
        goto out;
    uint64_t base = 0;
    for (uint64_t r = 0; r < first; r++)
        base += b->record_n_codes[r];
    int one_code_each = 1;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t r = first + i;
        one_code_each &= b->record_n_codes[r] == 1;
        keys[i] = (uint64_t)b->record_person[r] << 16 | b->record_date[r];
        values[i] = (uint32_t)i;
    }
    /* A GP event has one code: record first + i's is then at base + i, and
     * the offsets need no array (a third of this pass's fresh memory at
     * 40M events, and its page faults). */
    if (!one_code_each) {
        if (!(occurrence = store_alloc(n * sizeof *occurrence)))
            goto out;
        for (uint64_t i = 0, at = base; i < n; i++) {
            occurrence[i] = at;
            at += b->record_n_codes[first + i];
        }
    }
    /* stable: within a (person, day) the records stay in the order added */
    if ((rc = store_radix_sort(&keys, &values, n, 0, 16 + bits_for(b->n_persons))))
        goto out;
    for (uint64_t run = 0; run < n;) {
        uint64_t end = run + 1;
        while (end < n && keys[end] == keys[run])
            end++;
        for (uint64_t j = run + 1; j < end; j++) {
            uint64_t rj = first + values[j];
            if (!b->record_setting[rj])
                continue;
            for (uint64_t k = run; k < j; k++) {
                uint64_t rk = first + values[k];
                uint64_t ak = occurrence ? occurrence[values[k]] : base + values[k];
                uint64_t aj = occurrence ? occurrence[values[j]] : base + values[j];
                if (b->record_setting[rk] && same_record(b, rk, ak, rj, aj)) {
                    b->record_setting[rj] = 0; /* a tombstone, as a drop makes */
                    (*dropped)++;
                    break;
                }
            }
        }
        run = end;
    }
    rc = 0;
out:
    free(keys);
    free(values);
    free(occurrence);
    return rc;
}

int cc_store_builder_feed_identity(cc_store_builder *b,
                                   const uint8_t identity[CC_FEED_IDENTITY_BYTES])
{
    if (cc_array_reserve(&b->feed_identity, &b->feed_identity_cap, b->n_feed_identities + 1,
                         CC_FEED_IDENTITY_BYTES))
        return CC_ENOMEM;
    memcpy(b->feed_identity[b->n_feed_identities++], identity, CC_FEED_IDENTITY_BYTES);
    return 0;
}

/* The first 8 bytes of an identity as a number whose order is memcmp's. */
static uint64_t identity_prefix(const uint8_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | id[i];
    return v;
}

/* Sorts the builder's feed identities (memcmp order) and keeps each once;
 * returns the number kept or CC_ENOMEM. A radix sort on the first 8 bytes
 * (qsort with memcmp cost ~0.6 s at 2 million, a tenth of an ingest's
 * extra work), then runs with an equal prefix (in practice none: the
 * identities are keyed hashes) by insertion on the whole 16 bytes. */
static int64_t sort_feed_identities(cc_store_builder *b)
{
    uint64_t n = b->n_feed_identities;
    if (n < 2)
        return (int64_t)n;
    uint64_t *prefix = store_alloc(n * sizeof *prefix);
    uint32_t *order = store_alloc(n * sizeof *order);
    uint8_t(*sorted)[CC_FEED_IDENTITY_BYTES] = store_alloc(n * CC_FEED_IDENTITY_BYTES);
    if (!prefix || !order || !sorted || n > UINT32_MAX) {
        free(prefix);
        free(order);
        free(sorted);
        return CC_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        prefix[i] = identity_prefix(b->feed_identity[i]);
        order[i] = (uint32_t)i;
    }
    if (store_radix_sort(&prefix, &order, n, 0, 64)) {
        free(prefix);
        free(order);
        free(sorted);
        return CC_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++)
        memcpy(sorted[i], b->feed_identity[order[i]], CC_FEED_IDENTITY_BYTES);
    for (uint64_t i = 1; i < n; i++)
        for (uint64_t j = i; j > 0 && prefix[j - 1] == prefix[j] &&
                             memcmp(sorted[j - 1], sorted[j], CC_FEED_IDENTITY_BYTES) > 0;
             j--) {
            uint8_t t[CC_FEED_IDENTITY_BYTES];
            memcpy(t, sorted[j], sizeof t);
            memcpy(sorted[j], sorted[j - 1], sizeof t);
            memcpy(sorted[j - 1], t, sizeof t);
        }
    free(prefix);
    free(order);
    uint64_t kept = 1;
    for (uint64_t i = 1; i < n; i++)
        if (memcmp(sorted[i], sorted[kept - 1], CC_FEED_IDENTITY_BYTES))
            memcpy(sorted[kept++], sorted[i], CC_FEED_IDENTITY_BYTES);
    free(b->feed_identity);
    b->feed_identity = sorted;
    b->feed_identity_cap = n;
    return (int64_t)kept;
}

/* The sorts of finish() that need only the person pseudonyms and the feed
 * identities, run on a second thread while the records and postings are
 * ordered on the first (they touch nothing else of the builder). */
struct side_sorts {
    cc_store_builder *b;
    uint32_t *by_pseudonym; /* [n_persons], filled and sorted */
    int rc;
    int64_t n_ids; /* sort_feed_identities' result */
};

static void *side_sorts_run(void *arg)
{
    struct side_sorts *w = arg;
    uint32_t n_persons = (uint32_t)w->b->n_persons;
    for (uint32_t p = 0; p < n_persons; p++)
        w->by_pseudonym[p] = p;
    w->rc = store_sort_persons_by_pseudonym(w->by_pseudonym, n_persons, w->b->person_pseudonym);
    if (!w->rc && (w->n_ids = sort_feed_identities(w->b)) < 0)
        w->rc = (int)w->n_ids;
    return NULL;
}

/* Sorts each code's postings [code_first[c], code_first[c + 1]) of codes
 * [c_from, c_to) on their record bits, in cache, with a buffer of its own. */
struct posting_sorts {
    uint64_t *postings;
    const uint64_t *code_first;
    uint32_t c_from, c_to;
    int record_bits;
    int rc;
};

static void *posting_sorts_run(void *arg)
{
    struct posting_sorts *w = arg;
    uint64_t longest = 0;
    for (uint32_t c = w->c_from; c < w->c_to; c++)
        if (w->code_first[c + 1] - w->code_first[c] > longest)
            longest = w->code_first[c + 1] - w->code_first[c];
    uint64_t *buffer = store_alloc((longest ? longest : 1) * sizeof *buffer);
    if (!buffer) {
        w->rc = CC_ENOMEM;
        return NULL;
    }
    for (uint32_t c = w->c_from; c < w->c_to; c++)
        store_sort_keys_small(w->postings + w->code_first[c], buffer,
                              w->code_first[c + 1] - w->code_first[c], 8, 8 + w->record_bits);
    free(buffer);
    w->rc = 0;
    return NULL;
}

int cc_store_builder_drop_records(cc_store_builder *b, uint32_t person, uint8_t setting)
{
    if (person >= b->n_persons || setting < CC_SETTING_GP || setting > CC_SETTING_COMMUNITY)
        return CC_EINVAL;
    uint64_t key = ((uint64_t)person << 2 | setting) + 1;
    if (cc_u64_map_full(&b->drops) && cc_u64_map_reserve(&b->drops, b->drops.n + 1, 64))
        return CC_ENOMEM;
    uint64_t at = cc_u64_map_slot(&b->drops, key);
    if (!b->drops.keys[at])
        cc_u64_map_put(&b->drops, at, key);
    /* every record of this person and setting added so far goes; records
     * added after this call stay */
    memcpy(cc_u64_map_value(&b->drops, at), &b->n_records, sizeof b->n_records);
    return 0;
}

/* The record count at the last drop of (person, setting), or 0. */
static uint64_t drop_mark_of(const cc_store_builder *b, uint32_t person, uint8_t setting)
{
    uint64_t key = ((uint64_t)person << 2 | setting) + 1, mark = 0;
    uint64_t at = cc_u64_map_slot(&b->drops, key);
    if (b->drops.keys[at])
        memcpy(&mark, cc_u64_map_value(&b->drops, at), sizeof mark);
    return mark;
}

/* ---- areas ------------------------------------------------------------ */

struct area_sort_entry {
    char code[CC_AREA_CODE_BYTES];
    uint32_t index;
};

static int compare_area_entry(const void *a, const void *b)
{
    return strncmp(((const struct area_sort_entry *)a)->code,
                   ((const struct area_sort_entry *)b)->code, CC_AREA_CODE_BYTES);
}

/* Sorts one level's codes: order[new] = input index, rank[input] = new.
 * CC_EINVAL for an empty, unterminated or duplicate code. */
static int sort_level(const char (*codes)[CC_AREA_CODE_BYTES], uint32_t n, uint32_t *order,
                      uint32_t *rank)
{
    if (n && !codes)
        return CC_EINVAL;
    struct area_sort_entry *entries = malloc((n ? n : 1) * sizeof *entries);
    if (!entries)
        return CC_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (codes[i][0] == '\0' || !memchr(codes[i], '\0', CC_AREA_CODE_BYTES)) {
            free(entries);
            return CC_EINVAL;
        }
        memcpy(entries[i].code, codes[i], CC_AREA_CODE_BYTES);
        entries[i].index = i;
    }
    qsort(entries, n, sizeof *entries, compare_area_entry);
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0 && compare_area_entry(&entries[i - 1], &entries[i]) == 0) {
            free(entries);
            return CC_EINVAL;
        }
        order[i] = entries[i].index;
        rank[entries[i].index] = i;
    }
    free(entries);
    return 0;
}

struct postcode_entry {
    uint64_t key;
    uint16_t lsoa;
};

static int compare_postcode_entry(const void *a, const void *b)
{
    uint64_t x = ((const struct postcode_entry *)a)->key;
    uint64_t y = ((const struct postcode_entry *)b)->key;
    return x < y ? -1 : x > y;
}

int cc_store_builder_set_areas(cc_store_builder *b, const struct cc_area_input *in)
{
    const uint32_t n[4] = {in->n_lsoa, in->n_lad, in->n_icb, in->n_region};
    const char(*const codes[4])[CC_AREA_CODE_BYTES] = {in->lsoa_code, in->lad_code,
                                                       in->icb_code, in->region_code};
    const char *const *names[4] = {in->lsoa_name, in->lad_name, in->icb_name,
                                   in->region_name};
    const uint16_t *parent[3] = {in->lsoa_lad, in->lad_icb, in->icb_region};
    static const int code_section[4] = {STORE_SECTION_LSOA_CODE, STORE_SECTION_LAD_CODE,
                                        STORE_SECTION_ICB_CODE, STORE_SECTION_REGION_CODE};
    static const int parent_section[3] = {STORE_SECTION_LSOA_LAD, STORE_SECTION_LAD_ICB,
                                          STORE_SECTION_ICB_REGION};
    static const int name_section[4] = {
        STORE_SECTION_LSOA_NAME_OFFSET, STORE_SECTION_LAD_NAME_OFFSET,
        STORE_SECTION_ICB_NAME_OFFSET, STORE_SECTION_REGION_NAME_OFFSET};
    uint32_t *order[4] = {0}, *rank[4] = {0};
    void *section[STORE_N_SECTIONS] = {0};
    struct postcode_entry *postcodes = NULL;
    int rc = CC_ENOMEM;

    /* the LSOA count must leave UINT16_MAX free for "unknown" */
    if (in->n_lsoa >= UINT16_MAX || in->n_lad > UINT16_MAX || in->n_icb > UINT16_MAX ||
        in->n_region > UINT16_MAX) {
        rc = CC_ETOOBIG;
        goto out;
    }
    struct store_counts counts = {.n_lsoa = in->n_lsoa,
                                  .n_lad = in->n_lad,
                                  .n_icb = in->n_icb,
                                  .n_region = in->n_region};
    for (int level = 0; level < 4; level++) {
        order[level] = malloc(((size_t)n[level] + 1) * sizeof(uint32_t));
        rank[level] = malloc(((size_t)n[level] + 1) * sizeof(uint32_t));
        if (!order[level] || !rank[level])
            goto out;
        if ((rc = sort_level(codes[level], n[level], order[level], rank[level])))
            goto out;
    }
    for (int level = 0; level < 3; level++) {
        if (n[level] && !parent[level]) {
            rc = CC_EINVAL;
            goto out;
        }
        for (uint32_t i = 0; i < n[level]; i++)
            if (parent[level][i] >= n[level + 1]) {
                rc = CC_EINVAL;
                goto out;
            }
    }
    /* names: one blob, each level in its new order */
    uint64_t blob_bytes = 0;
    for (int level = 0; level < 4; level++)
        for (uint32_t i = 0; i < n[level]; i++)
            blob_bytes += (names[level] && names[level][i] ? strlen(names[level][i]) : 0) + 1;
    if (blob_bytes > UINT32_MAX) {
        rc = CC_ETOOBIG;
        goto out;
    }
    counts.name_blob_bytes = blob_bytes;

    /* postcodes: sorted by key; a postcode listed twice must agree */
    postcodes = malloc(((size_t)in->n_postcodes + 1) * sizeof *postcodes);
    if (!postcodes) {
        rc = CC_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < in->n_postcodes; i++) {
        if (in->postcode_key[i] == 0 || in->postcode_lsoa[i] >= in->n_lsoa) {
            rc = CC_EINVAL;
            goto out;
        }
        postcodes[i].key = in->postcode_key[i];
        postcodes[i].lsoa = (uint16_t)rank[0][in->postcode_lsoa[i]];
    }
    qsort(postcodes, in->n_postcodes, sizeof *postcodes, compare_postcode_entry);
    uint32_t n_unique = 0;
    for (uint32_t i = 0; i < in->n_postcodes; i++) {
        if (n_unique > 0 && postcodes[n_unique - 1].key == postcodes[i].key) {
            if (postcodes[n_unique - 1].lsoa != postcodes[i].lsoa) {
                rc = CC_EINVAL;
                goto out;
            }
            continue;
        }
        postcodes[n_unique++] = postcodes[i];
    }
    counts.n_postcodes = n_unique;

    rc = CC_ENOMEM;
    for (int s = 0; s <= STORE_SECTION_POSTCODE_LSOA; s++)
        if (!(section[s] = store_alloc_zeroed(store_section_bytes(&counts, s))))
            goto out;
    char *blob = section[STORE_SECTION_NAME_BLOB];
    uint32_t blob_at = 0;
    for (int level = 0; level < 4; level++) {
        char(*out_code)[CC_AREA_CODE_BYTES] = section[code_section[level]];
        uint32_t *out_name = section[name_section[level]];
        for (uint32_t i = 0; i < n[level]; i++) {
            uint32_t from = order[level][i];
            memcpy(out_code[i], codes[level][from], CC_AREA_CODE_BYTES);
            const char *name = names[level] && names[level][from] ? names[level][from] : "";
            size_t len = strlen(name);
            out_name[i] = blob_at;
            memcpy(blob + blob_at, name, len + 1);
            blob_at += (uint32_t)len + 1;
            if (level < 3)
                ((uint16_t *)section[parent_section[level]])[i] =
                    (uint16_t)rank[level + 1][parent[level][from]];
        }
    }
    if (in->population) {
        uint32_t *population = section[STORE_SECTION_POPULATION];
        size_t row = 2 * CC_N_AGE_BANDS_5Y;
        for (uint32_t i = 0; i < in->n_lsoa; i++)
            memcpy(population + i * row, in->population + (size_t)order[0][i] * row,
                   row * sizeof *population);
    }
    uint64_t *keys = section[STORE_SECTION_POSTCODE_KEY];
    uint16_t *key_lsoa = section[STORE_SECTION_POSTCODE_LSOA];
    for (uint32_t i = 0; i < n_unique; i++) {
        keys[i] = postcodes[i].key;
        key_lsoa[i] = postcodes[i].lsoa;
    }

    /* persons keep their LSOA by code: an LSOA missing from the new lookup
     * becomes unknown */
    const char(*old_codes)[CC_AREA_CODE_BYTES] = b->area_section[STORE_SECTION_LSOA_CODE];
    const char(*new_codes)[CC_AREA_CODE_BYTES] = section[STORE_SECTION_LSOA_CODE];
    if (b->n_persons && b->area_counts.n_lsoa) {
        uint16_t *remap = malloc(b->area_counts.n_lsoa * sizeof *remap);
        if (!remap)
            goto out;
        for (uint32_t i = 0; i < b->area_counts.n_lsoa; i++) {
            remap[i] = UINT16_MAX;
            uint32_t lo = 0, hi = in->n_lsoa;
            while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (strncmp(new_codes[mid], old_codes[i], CC_AREA_CODE_BYTES) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo < in->n_lsoa && strncmp(new_codes[lo], old_codes[i], CC_AREA_CODE_BYTES) == 0)
                remap[i] = (uint16_t)lo;
        }
        for (uint32_t p = 0; p < b->n_persons; p++)
            if (b->person_lsoa[p] != UINT16_MAX)
                b->person_lsoa[p] = remap[b->person_lsoa[p]];
        free(remap);
    } else {
        for (uint32_t p = 0; p < b->n_persons; p++)
            b->person_lsoa[p] = UINT16_MAX;
    }
    for (int s = 0; s <= STORE_SECTION_POSTCODE_LSOA; s++) {
        free(b->area_section[s]);
        b->area_section[s] = section[s];
        section[s] = NULL;
    }
    b->area_counts = counts;
    refresh_view(b);
    rc = 0;
out:
    for (int s = 0; s < STORE_N_SECTIONS; s++)
        free(section[s]);
    for (int level = 0; level < 4; level++) {
        free(order[level]);
        free(rank[level]);
    }
    free(postcodes);
    return rc;
}

int32_t cc_store_builder_postcode_lsoa(const cc_store_builder *b, const char *canonical,
                                       size_t len)
{
    return store_postcode_search(b->area_section[STORE_SECTION_POSTCODE_KEY],
                                 b->area_section[STORE_SECTION_POSTCODE_LSOA],
                                 b->area_counts.n_postcodes, canonical, len);
}

const struct cc_store_columns *cc_store_builder_columns(const cc_store_builder *b)
{
    return &b->view;
}

/* ---- life cycle ------------------------------------------------------- */

void cc_store_builder_free(cc_store_builder *b)
{
    if (!b)
        return;
    for (int s = 0; s < STORE_N_SECTIONS; s++)
        free(b->area_section[s]);
    free(b->practice_code);
    cc_index_table_free(&b->practice_table);
    free(b->person_pseudonym);
    free(b->person_postcode_pseudonym);
    free(b->person_dob);
    free(b->person_lsoa);
    free(b->person_practice);
    free(b->person_sex);
    free(b->person_record_key);
    cc_index_table_free(&b->person_table);
    free(b->record_person);
    free(b->record_date);
    free(b->record_flags);
    free(b->record_setting);
    free(b->record_n_codes);
    free(b->occurrence_code);
    free(b->occurrence_role);
    free(b->code_system);
    free(b->code_text);
    cc_index_table_free(&b->code_table);
    cc_u64_map_free(&b->drops, 0);
    free(b->feed_identity);
    free(b);
}

/* Copies base's contents into an empty builder. */
static int copy_base(cc_store_builder *b, const cc_store *base)
{
    const struct cc_store_columns *v = &base->view;
    uint32_t *next = NULL;
    int rc = CC_ENOMEM;

    /* a store loaded for queries lacks the postcode pseudonyms and the feed
     * identities, and a store built from it would silently lose them */
    if (!v->person_postcode_pseudonym || !v->feed_identity)
        return CC_EINVAL;
    if (v->n_feed_identities) {
        if (cc_array_reserve(&b->feed_identity, &b->feed_identity_cap, v->n_feed_identities,
                             CC_FEED_IDENTITY_BYTES))
            return CC_ENOMEM;
        memcpy(b->feed_identity, v->feed_identity, v->n_feed_identities * CC_FEED_IDENTITY_BYTES);
        b->n_feed_identities = v->n_feed_identities;
    }
    b->area_counts = base->counts;
    for (int s = 0; s <= STORE_SECTION_POSTCODE_LSOA; s++) {
        uint64_t bytes = store_section_bytes(&base->counts, s);
        if (!(b->area_section[s] = store_alloc_zeroed(bytes)))
            goto out;
        if (bytes)
            memcpy(b->area_section[s], base->section[s], bytes);
    }
    for (uint32_t i = 0; i < v->n_practices; i++) {
        char code[CC_PRACTICE_CODE_BYTES + 1] = {0};
        memcpy(code, v->practice_code[i], CC_PRACTICE_CODE_BYTES);
        int32_t index = cc_store_builder_practice(b, code);
        if (index < 0) {
            rc = index;
            goto out;
        }
    }
    uint32_t n = v->n_persons;
    if ((rc = reserve_persons(b, n)))
        goto out;
    if (n) {
        memcpy(b->person_pseudonym, v->person_pseudonym, n * sizeof(cc_pseudonym));
        memcpy(b->person_postcode_pseudonym, v->person_postcode_pseudonym,
               n * sizeof(cc_pseudonym));
        memcpy(b->person_dob, v->person_dob, n * 2);
        memcpy(b->person_sex, v->person_sex, n);
        memcpy(b->person_lsoa, v->person_lsoa, n * 2);
        memcpy(b->person_practice, v->person_practice, n * 2);
        memcpy(b->person_record_key, v->person_record_key, n * 4);
    }
    b->n_persons = n;
    if ((rc = cc_index_table_reserve(&b->person_table, n, hash_person, b)))
        goto out;
    for (uint32_t c = 0; c < v->n_codes; c++) {
        char text[CC_CODE_TEXT_BYTES + 1] = {0};
        memcpy(text, v->code_text[c], CC_CODE_TEXT_BYTES);
        int64_t id = intern_code(b, v->code_system[c], text);
        if (id < 0) {
            rc = (int)id;
            goto out;
        }
    }

    uint64_t n_records = v->n_records, n_postings = v->code_first[v->n_codes];
    if ((rc = reserve_records(b, n_records)) || (rc = reserve_occurrences(b, n_postings)))
        goto out;
    rc = CC_ENOMEM;
    if (n_records) {
        memcpy(b->record_person, v->record_person, n_records * 4);
        memcpy(b->record_date, v->record_date, n_records * 2);
        memcpy(b->record_flags, v->record_flags, n_records);
        memset(b->record_n_codes, 0, n_records);
    }
    for (int setting = 1; setting < 4; setting++)
        for (uint64_t r = v->setting_first[setting]; r < v->setting_first[setting + 1]; r++)
            b->record_setting[r] = (uint8_t)setting;
    /* turn postings (records per code) back into codes per record */
    for (uint64_t k = 0; k < n_postings; k++) {
        uint32_t r = CC_POSTING_RECORD(v->posting_records[k]);
        if (b->record_n_codes[r] == MAX_CODES_PER_RECORD) {
            rc = CC_ECORRUPT;
            goto out;
        }
        b->record_n_codes[r]++;
    }
    if (!(next = malloc((n_records ? n_records : 1) * sizeof *next)))
        goto out;
    uint32_t at = 0;
    for (uint64_t r = 0; r < n_records; r++) {
        next[r] = at;
        at += b->record_n_codes[r];
    }
    for (uint32_t c = 0; c < v->n_codes; c++)
        for (uint64_t k = v->code_first[c]; k < v->code_first[c + 1]; k++) {
            uint32_t slot = next[CC_POSTING_RECORD(v->posting_records[k])]++;
            b->occurrence_code[slot] = c;
            b->occurrence_role[slot] = (uint8_t)CC_POSTING_ROLE(v->posting_records[k]);
        }
    b->n_records = n_records;
    b->n_occurrences = n_postings;
    rc = 0;
out:
    free(next);
    return rc;
}

int cc_store_builder_new(const cc_store *base, cc_store_builder **out)
{
    *out = NULL;
    cc_store_builder *b = calloc(1, sizeof *b);
    if (!b)
        return CC_ENOMEM;
    b->drops = cc_u64_map_empty(sizeof(uint64_t));
    int rc;
    if (base) {
        if ((rc = copy_base(b, base)))
            goto fail;
    } else {
        struct store_counts empty = {0};
        for (int s = 0; s <= STORE_SECTION_POSTCODE_LSOA; s++)
            if (!(b->area_section[s] = store_alloc_zeroed(store_section_bytes(&empty, s)))) {
                rc = CC_ENOMEM;
                goto fail;
            }
    }
    refresh_view(b);
    *out = b;
    return 0;
fail:
    cc_store_builder_free(b);
    return rc;
}

/* ---- finish ----------------------------------------------------------- */

struct practice_sort_entry {
    char code[CC_PRACTICE_CODE_BYTES];
    uint32_t index;
};

static int compare_practice_entry(const void *a, const void *b)
{
    return strncmp(((const struct practice_sort_entry *)a)->code,
                   ((const struct practice_sort_entry *)b)->code, CC_PRACTICE_CODE_BYTES);
}

struct code_sort_entry {
    uint8_t system;
    char text[CC_CODE_TEXT_BYTES];
    uint32_t index;
};

static int compare_code_entry(const void *a, const void *b)
{
    const struct code_sort_entry *x = a, *y = b;
    if (x->system != y->system)
        return x->system < y->system ? -1 : 1;
    return strncmp(x->text, y->text, CC_CODE_TEXT_BYTES);
}

/* Practices in code order: fills the section, remaps persons. */
static int finish_practices(cc_store_builder *b, struct cc_store *s)
{
    uint32_t n = b->n_practices;
    struct practice_sort_entry *entries = malloc((n ? n : 1) * sizeof *entries);
    uint16_t *rank = malloc((n ? n : 1) * sizeof *rank);
    char(*codes)[CC_PRACTICE_CODE_BYTES] = store_alloc_zeroed((uint64_t)n *
                                                              CC_PRACTICE_CODE_BYTES);
    if (!entries || !rank || !codes) {
        free(entries);
        free(rank);
        free(codes);
        return CC_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        memcpy(entries[i].code, b->practice_code[i], CC_PRACTICE_CODE_BYTES);
        entries[i].index = i;
    }
    qsort(entries, n, sizeof *entries, compare_practice_entry);
    for (uint32_t i = 0; i < n; i++) {
        memcpy(codes[i], entries[i].code, CC_PRACTICE_CODE_BYTES);
        rank[entries[i].index] = (uint16_t)i;
    }
    for (uint32_t p = 0; p < b->n_persons; p++)
        if (b->person_practice[p] != UINT16_MAX)
            b->person_practice[p] = rank[b->person_practice[p]];
    s->section[STORE_SECTION_PRACTICE_CODE] = codes;
    free(entries);
    free(rank);
    return 0;
}

/* Codes in (system, text) order: fills the sections; rank[builder id] is
 * the final id (the caller frees rank). */
static int finish_codes(cc_store_builder *b, struct cc_store *s, uint32_t **rank_out)
{
    uint32_t n = b->n_codes;
    struct code_sort_entry *entries = malloc((n ? n : 1) * sizeof *entries);
    uint32_t *rank = malloc((n ? n : 1) * sizeof *rank);
    uint8_t *systems = store_alloc_zeroed(n);
    char(*texts)[CC_CODE_TEXT_BYTES] = store_alloc_zeroed((uint64_t)n * CC_CODE_TEXT_BYTES);
    if (!entries || !rank || !systems || !texts) {
        free(entries);
        free(rank);
        free(systems);
        free(texts);
        return CC_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        entries[i].system = b->code_system[i];
        memcpy(entries[i].text, b->code_text[i], CC_CODE_TEXT_BYTES);
        entries[i].index = i;
    }
    qsort(entries, n, sizeof *entries, compare_code_entry);
    for (uint32_t i = 0; i < n; i++) {
        systems[i] = entries[i].system;
        memcpy(texts[i], entries[i].text, CC_CODE_TEXT_BYTES);
        rank[entries[i].index] = i;
    }
    s->section[STORE_SECTION_CODE_SYSTEM] = systems;
    s->section[STORE_SECTION_CODE_TEXT] = texts;
    free(entries);
    *rank_out = rank;
    return 0;
}


/* The number of bits needed to hold values below n. */
static int bits_for(uint64_t n)
{
    int bits = 0;
    while (bits < 64 && (n - (n > 0)) >> bits)
        bits++;
    return bits;
}

/* Orders the kept records by (setting, year, person, date) and fills the
 * records.person, records.date and records.flags sections of s. Sets
 * *new_index_out[j] to the new index of the j-th kept record in builder
 * order (the caller frees it).
 *
 * Each kept record gets the key
 *   (((setting - 1) * n_years + year - first_year) << person_bits | person) << 16 | date,
 * with its flags riding in the top byte; a stable radix sort of (key,
 * builder index) gives the order, with append order kept among equal keys,
 * and person, date and flags come back out of the sorted keys. A second
 * radix sort, of the builder indices, inverts the permutation, so the
 * postings can be built in one sequential pass over the builder's side
 * array instead of by random reads.
 *
 * Why the year before the person: a year of one setting is then one run of
 * records, and of every code's postings (queries on "2024" read that run,
 * found by binary search, instead of every record's date), while within the
 * run the records of a person stay together and persons come in order, so
 * the persons' columns are still read front to back. */
static int order_records(cc_store_builder *b, struct cc_store *s, uint32_t **new_index_out)
{
    struct store_counts *counts = &s->counts;
    uint64_t n = b->n_records, n_kept = 0;
    uint64_t *keys = store_alloc(n * sizeof *keys);
    uint32_t *values = store_alloc(n * sizeof *values);
    uint8_t *year_of_day = malloc(65536);
    int rc = CC_ENOMEM;
    if (!keys || !values || !year_of_day)
        goto out;
    /* the year of every day, and the years the records span */
    for (uint32_t d = 0; d < 65536; d++) {
        int y, m, dd;
        cc_day_to_ymd((cc_day)d, &y, &m, &dd);
        year_of_day[d] = (uint8_t)(y - 1900);
    }
    unsigned first_year = 255, last_year = 0;
    for (uint64_t r = 0; r < n; r++) {
        if (!b->record_setting[r])
            continue;
        unsigned y = year_of_day[b->record_date[r]];
        first_year = y < first_year ? y : first_year;
        last_year = y > last_year ? y : last_year;
    }
    uint64_t n_years = first_year <= last_year ? last_year - first_year + 1 : 1;
    int person_bits = bits_for(b->n_persons);
    int key_bits = 16 + person_bits + bits_for(3 * n_years);
    if (key_bits > 56) {
        rc = CC_ETOOBIG; /* more persons than the key holds beside the flags */
        goto out;
    }
    uint64_t per_setting[4] = {0};
    for (uint64_t r = 0; r < n; r++) {
        uint8_t setting = b->record_setting[r];
        if (!setting)
            continue; /* dropped */
        per_setting[setting]++;
        uint64_t run = (uint64_t)(setting - 1) * n_years + year_of_day[b->record_date[r]] - first_year;
        keys[n_kept] = (uint64_t)b->record_flags[r] << 56 |
                       (run << person_bits | b->record_person[r]) << 16 | b->record_date[r];
        values[n_kept++] = (uint32_t)r;
    }
    if ((rc = store_radix_sort(&keys, &values, n_kept, 0, key_bits)))
        goto out;
    rc = CC_ENOMEM;
    counts->n_records = n_kept;
    counts->setting_first[0] = counts->setting_first[1] = 0;
    for (int setting = 1; setting <= 3; setting++)
        counts->setting_first[setting + 1] = counts->setting_first[setting] + per_setting[setting];
    uint16_t *date = store_alloc(n_kept * 2);
    uint32_t *person = store_alloc(n_kept * 4);
    uint8_t *flags = store_alloc(n_kept);
    s->section[STORE_SECTION_RECORD_DATE] = date;
    s->section[STORE_SECTION_RECORD_PERSON] = person;
    s->section[STORE_SECTION_RECORD_FLAGS] = flags;
    if (!date || !person || !flags)
        goto out;
    uint64_t person_mask = ((uint64_t)1 << person_bits) - 1;
    for (uint64_t i = 0; i < n_kept; i++) {
        date[i] = (uint16_t)keys[i];
        person[i] = (uint32_t)((keys[i] >> 16) & person_mask);
        flags[i] = (uint8_t)(keys[i] >> 56);
    }
    /* invert the permutation: one pass of scattered writes, which (unlike
     * scattered reads) do not stall on each other */
    uint32_t *new_index = store_alloc(n * sizeof *new_index);
    if (!new_index)
        goto out;
    for (uint64_t i = 0; i < n_kept; i++)
        new_index[values[i]] = (uint32_t)i;
    free(values);
    values = new_index;
    free(b->record_date);
    b->record_date = NULL;
    free(b->record_person);
    b->record_person = NULL;
    free(b->record_flags);
    b->record_flags = NULL;
    *new_index_out = values;
    values = NULL;
    rc = 0;
out:
    free(year_of_day);
    free(keys);
    free(values);
    return rc;
}

/* Moves a person column into the store, trimmed to its exact size. */
static void *take_column(void **column, uint64_t bytes)
{
    void *data = *column;
    if (!data)
        return store_alloc_zeroed(bytes);
    void *trimmed = realloc(data, bytes ? (size_t)bytes : 1);
    *column = NULL;
    return trimmed ? trimmed : data;
}

int cc_store_builder_finish(cc_store_builder *b, cc_store **out)
{
    struct cc_store *s = calloc(1, sizeof *s);
    uint32_t *code_rank = NULL, *new_index = NULL;
    uint64_t *code_first = NULL, *postings = NULL;
    struct side_sorts side = {.b = b, .rc = CC_ENOMEM};
    pthread_t side_thread;
    int side_running = 0;
    int rc = CC_ENOMEM;
    *out = NULL;
    if (!s)
        goto out;
    s->counts = b->area_counts;
    s->counts.n_practices = b->n_practices;
    s->counts.n_persons = b->n_persons;
    s->counts.n_codes = b->n_codes;

    /* pending drops tombstone their records (setting 0) */
    if (b->drops.n)
        for (uint64_t r = 0; r < b->n_records; r++)
            if (b->record_setting[r] &&
                r < drop_mark_of(b, b->record_person[r], b->record_setting[r]))
                b->record_setting[r] = 0;

    if ((rc = finish_practices(b, s)) || (rc = finish_codes(b, s, &code_rank)) ||
        (rc = order_records(b, s, &new_index)))
        goto out;

    /* persons by pseudonym and the feed identities, beside the postings
     * (not beside the records' sort, whose arrays are the largest: the
     * peak of memory stays that sort's) */
    rc = CC_ENOMEM;
    uint64_t n_persons = b->n_persons;
    uint32_t *by_pseudonym = store_alloc((n_persons ? n_persons : 1) * 4);
    s->section[STORE_SECTION_PERSON_BY_PSEUDONYM] = by_pseudonym;
    if (!by_pseudonym)
        goto out;
    side.by_pseudonym = by_pseudonym;
    side_running = pthread_create(&side_thread, NULL, side_sorts_run, &side) == 0;
    if (!side_running)
        side_sorts_run(&side); /* no second thread: here */

    /* count postings per code in one sequential pass over the side array */
    rc = CC_ENOMEM;
    uint32_t n_codes = b->n_codes;
    if (n_codes >= (1u << 24)) {
        rc = CC_ETOOBIG; /* the posting sort key holds 24 bits of code id */
        goto out;
    }
    if (!(code_first = calloc((size_t)n_codes + 1, sizeof *code_first)))
        goto out;
    s->section[STORE_SECTION_CODE_FIRST] = code_first;
    uint64_t at = 0;
    for (uint64_t r = 0; r < b->n_records; r++) {
        if (b->record_setting[r])
            for (uint32_t k = 0; k < b->record_n_codes[r]; k++)
                code_first[code_rank[b->occurrence_code[at + k]] + 1]++;
        at += b->record_n_codes[r];
    }
    for (uint32_t c = 0; c < n_codes; c++)
        code_first[c + 1] += code_first[c];
    uint64_t n_postings = s->counts.n_postings = code_first[n_codes];

    /* One key per posting, code << 40 | new record index << 8 | role,
     * emitted in builder order (sequential reads), radix-sorted on the code
     * bits, then each code's list sorted on the record bits while it is in
     * cache: the lists come out in ascending record order (codes are already
     * unique within a record). */
    if (!(postings = store_alloc(n_postings * sizeof *postings)))
        goto out;
    uint64_t emitted = 0;
    at = 0;
    for (uint64_t r = 0; r < b->n_records; r++) {
        uint32_t n_here = b->record_n_codes[r];
        if (b->record_setting[r]) {
            uint64_t i = new_index[r];
            for (uint32_t k = 0; k < n_here; k++)
                postings[emitted++] = (uint64_t)code_rank[b->occurrence_code[at + k]] << 40 |
                                      i << 8 | b->occurrence_role[at + k];
        }
        at += n_here;
    }
    free(new_index);
    new_index = NULL;
    uint64_t n_kept = s->counts.n_records;
    if ((rc = store_radix_sort(&postings, NULL, n_postings, 40, 40 + bits_for(n_codes))))
        goto out;
    /* each code's list on its record bits: the codes in two runs of about
     * half the postings each, the second on another thread */
    uint32_t mid = 0;
    while (mid < n_codes && code_first[mid] < n_postings / 2)
        mid++;
    struct posting_sorts halves[2] = {
        {postings, code_first, 0, mid, bits_for(n_kept), CC_ENOMEM},
        {postings, code_first, mid, n_codes, bits_for(n_kept), CC_ENOMEM}};
    store_run_pair(posting_sorts_run, &halves[0], &halves[1]);
    if ((rc = halves[0].rc) || (rc = halves[1].rc))
        goto out;
    rc = CC_ENOMEM;
    uint32_t *posting_records = store_alloc(n_postings * 4);
    s->section[STORE_SECTION_POSTING_RECORDS] = posting_records;
    if (!posting_records)
        goto out;
    for (uint64_t k = 0; k < n_postings; k++)
        posting_records[k] = (uint32_t)(postings[k] >> 8) |
                             (uint32_t)(postings[k] & 0xff) << CC_POSTING_RECORD_BITS;
    free(postings);
    postings = NULL;

    /* person columns move over as they are, once the side sorts are done
     * with the pseudonyms */
    if (side_running) {
        pthread_join(side_thread, NULL);
        side_running = 0;
    }
    if ((rc = side.rc))
        goto out;
    rc = CC_ENOMEM;
    s->section[STORE_SECTION_PERSON_PSEUDONYM] =
        take_column((void **)&b->person_pseudonym, n_persons * sizeof(cc_pseudonym));
    s->section[STORE_SECTION_PERSON_POSTCODE_PSEUDONYM] =
        take_column((void **)&b->person_postcode_pseudonym, n_persons * sizeof(cc_pseudonym));
    s->section[STORE_SECTION_PERSON_DOB] = take_column((void **)&b->person_dob, n_persons * 2);
    s->section[STORE_SECTION_PERSON_SEX] = take_column((void **)&b->person_sex, n_persons);
    s->section[STORE_SECTION_PERSON_LSOA] = take_column((void **)&b->person_lsoa, n_persons * 2);
    s->section[STORE_SECTION_PERSON_PRACTICE] =
        take_column((void **)&b->person_practice, n_persons * 2);
    s->section[STORE_SECTION_PERSON_RECORD_KEY] =
        take_column((void **)&b->person_record_key, n_persons * 4);

    for (int sec = 0; sec <= STORE_SECTION_POSTCODE_LSOA; sec++) {
        s->section[sec] = b->area_section[sec];
        b->area_section[sec] = NULL;
    }

    /* feed identities: sorted, each once (by the side sorts) */
    uint64_t n_ids = (uint64_t)side.n_ids;
    s->counts.n_feed_identities = n_ids;
    s->section[STORE_SECTION_FEED_IDENTITY] =
        take_column((void **)&b->feed_identity, n_ids * CC_FEED_IDENTITY_BYTES);
    rc = CC_ENOMEM;
    for (int sec = 0; sec < STORE_N_SECTIONS; sec++) {
        if (!s->section[sec])
            goto out;
        uint64_t bytes = store_section_bytes(&s->counts, sec);
        s->section_alloc_bytes[sec] = bytes ? (size_t)bytes : 1;
    }
    store_bind_columns(s);
    char reason[160];
    if ((rc = cc_store_validate(s, reason, sizeof reason)))
        goto out;
    *out = s;
    s = NULL;
    rc = 0;
out:
    if (side_running)
        pthread_join(side_thread, NULL);
    free(code_rank);
    free(new_index);
    free(postings);
    cc_store_free(s);
    cc_store_builder_free(b);
    return rc;
}
