/*
 * cc_store_index.c: the store's person sets of frequent codes (cc_store.h,
 * "Person sets of frequent codes"): for the (code, setting) pairs with the
 * most postings, the set of persons who have a record of that setting
 * carrying the code, one bit per person; and the span of the records'
 * dates. Built once per store, on first demand (cc_dataversion_publish
 * asks), by two threads; afterwards read-only like the rest of the store.
 *
 * Why: a condition on a frequent code (type 2 diabetes in the GP record has
 * a posting for one record in 37) otherwise reads a posting and then the
 * record's person, a cache miss each, for every one of its records: at 10
 * million persons a million misses per query. With the set, the condition's
 * persons are 1.25 MB read a word at a time. The sets cost one bit per
 * person each: at most CC_STORE_CODE_SETS_MAX of them (6 B per person), and
 * only pairs with at least n_persons / CC_STORE_CODE_SET_MIN_DIVISOR
 * postings, where the set is no larger than two bytes per posting it
 * replaces.
 *
 * Must never: change a column of the store; hold anything but person
 * indices (as bits) and dates.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_store.h"
#include "cc_store_internal.h"

struct store_code_index {
    uint32_t n_sets;
    uint32_t key[CC_STORE_CODE_SETS_MAX]; /* code << 2 | setting, ascending */
    uint64_t *persons[CC_STORE_CODE_SETS_MAX];
    cc_day first_day, last_day; /* of every record; first > last when none */
    size_t bytes;
};

/* One lock for every store's first build: builds are rare (once per store)
 * and readers never take it. */
static pthread_mutex_t index_build_lock = PTHREAD_MUTEX_INITIALIZER;

void cc_store_postings_in_setting(const struct cc_store_columns *c, uint32_t code, int setting,
                                  uint64_t *first, uint64_t *last)
{
    uint64_t lo_record = c->setting_first[setting], hi_record = c->setting_first[setting + 1];
    uint64_t begin = c->code_first[code], end = c->code_first[code + 1];
    /* postings are ascending record indices: two lower bounds */
    uint64_t a = begin, b = end;
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (CC_POSTING_RECORD(c->posting_records[m]) < lo_record)
            a = m + 1;
        else
            b = m;
    }
    *first = a;
    b = end;
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (CC_POSTING_RECORD(c->posting_records[m]) < hi_record)
            a = m + 1;
        else
            b = m;
    }
    *last = a;
}

/* The first record of setting s dated on or after day `from` (records of a
 * setting are in year order, so for the first day of a year the predicate
 * "dated on or after it" only turns true once). */
static uint64_t first_record_from(const struct cc_store_columns *c, int s, cc_day from)
{
    uint64_t a = c->setting_first[s], b = c->setting_first[s + 1];
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (c->record_date[m] < from)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

void cc_store_year_records(const struct cc_store_columns *c, int setting, int year, uint64_t *first,
                           uint64_t *last)
{
    if (year < 1900 || year > 2079) {
        *first = *last = year < 1900 ? c->setting_first[setting] : c->setting_first[setting + 1];
        return;
    }
    *first = first_record_from(c, setting, cc_day_from_ymd(year, 1, 1));
    *last = year < 2079 ? first_record_from(c, setting, cc_day_from_ymd(year + 1, 1, 1))
                        : c->setting_first[setting + 1];
}

struct candidate {
    uint32_t key;
    uint64_t n_postings;
};

static int candidate_by_size(const void *a, const void *b)
{
    const struct candidate *x = a, *y = b;
    if (x->n_postings != y->n_postings)
        return x->n_postings > y->n_postings ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int key_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

struct fill_job {
    const struct cc_store_columns *c;
    struct store_code_index *index;
    unsigned part, n_parts;
};

/* Fills the sets whose position is part modulo n_parts; thread part 0 also
 * finds the span of record dates. */
static void *fill_sets(void *arg)
{
    const struct fill_job *job = arg;
    const struct cc_store_columns *c = job->c;
    struct store_code_index *x = job->index;
    for (uint32_t i = job->part; i < x->n_sets; i += job->n_parts) {
        uint32_t code = x->key[i] >> 2;
        int setting = (int)(x->key[i] & 3);
        uint64_t first, last;
        cc_store_postings_in_setting(c, code, setting, &first, &last);
        uint64_t *bits = x->persons[i];
        for (uint64_t k = first; k < last; k++) {
            uint32_t person = c->record_person[CC_POSTING_RECORD(c->posting_records[k])];
            bits[person >> 6] |= 1ULL << (person & 63);
        }
    }
    if (job->part == 0) {
        cc_day lo = CC_DAY_MAX, hi = CC_DAY_MIN;
        for (uint64_t r = 0; r < c->n_records; r++) {
            cc_day d = c->record_date[r];
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        x->first_day = lo;
        x->last_day = hi;
    }
    return NULL;
}

static void index_free(struct store_code_index *x)
{
    if (!x)
        return;
    for (uint32_t i = 0; i < x->n_sets; i++)
        free(x->persons[i]);
    free(x);
}

static int index_build(const struct cc_store_columns *c, struct store_code_index **out)
{
    struct store_code_index *x = calloc(1, sizeof *x);
    struct candidate *cand = NULL;
    uint64_t n_cand = 0;
    if (!x)
        return CC_ENOMEM;
    uint64_t min_postings = c->n_persons / CC_STORE_CODE_SET_MIN_DIVISOR;
    if (min_postings < 1)
        min_postings = 1;
    cand = malloc(((uint64_t)c->n_codes * 3 + 1) * sizeof *cand);
    if (!cand)
        goto fail;
    for (uint32_t code = 0; code < c->n_codes; code++) {
        if (c->code_first[code + 1] - c->code_first[code] < min_postings)
            continue;
        for (int s = 1; s <= 3; s++) {
            uint64_t first, last;
            cc_store_postings_in_setting(c, code, s, &first, &last);
            if (last - first >= min_postings)
                cand[n_cand++] = (struct candidate){code << 2 | (uint32_t)s, last - first};
        }
    }
    qsort(cand, n_cand, sizeof *cand, candidate_by_size);
    x->n_sets = n_cand < CC_STORE_CODE_SETS_MAX ? (uint32_t)n_cand : CC_STORE_CODE_SETS_MAX;
    for (uint32_t i = 0; i < x->n_sets; i++)
        x->key[i] = cand[i].key;
    qsort(x->key, x->n_sets, sizeof *x->key, key_cmp);
    uint64_t words = ((uint64_t)c->n_persons + 63) / 64;
    for (uint32_t i = 0; i < x->n_sets; i++) {
        if (!(x->persons[i] = calloc(words ? words : 1, sizeof *x->persons[i]))) {
            x->n_sets = i;
            goto fail;
        }
        x->bytes += words * sizeof *x->persons[i];
    }
    x->bytes += sizeof *x;
    struct fill_job jobs[2] = {{c, x, 0, 2}, {c, x, 1, 2}};
    store_run_pair(fill_sets, &jobs[0], &jobs[1]);
    free(cand);
    *out = x;
    return 0;
fail:
    free(cand);
    index_free(x);
    return CC_ENOMEM;
}

/* The index once built (acquire: its contents were written before it was
 * published), else NULL. */
static const struct store_code_index *index_of(const cc_store *store)
{
    return atomic_load_explicit(&((cc_store *)store)->code_index, memory_order_acquire);
}

int cc_store_index_build(const cc_store *store)
{
    if (index_of(store))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&index_build_lock);
    if (!index_of(store)) {
        struct store_code_index *x = NULL;
        if ((rc = index_build(&store->view, &x)) == 0)
            atomic_store_explicit(&((cc_store *)store)->code_index, x, memory_order_release);
    }
    pthread_mutex_unlock(&index_build_lock);
    return rc;
}

const uint64_t *cc_store_code_persons(const cc_store *store, uint32_t code, int setting)
{
    const struct store_code_index *x = index_of(store);
    if (!x || setting < 1 || setting > 3)
        return NULL;
    uint32_t key = code << 2 | (uint32_t)setting;
    uint32_t lo = 0, hi = x->n_sets;
    while (lo < hi) {
        uint32_t m = (lo + hi) / 2;
        if (x->key[m] < key)
            lo = m + 1;
        else
            hi = m;
    }
    return lo < x->n_sets && x->key[lo] == key ? x->persons[lo] : NULL;
}

int cc_store_record_days(const cc_store *store, cc_day *first, cc_day *last)
{
    const struct store_code_index *x = index_of(store);
    if (!x || x->first_day > x->last_day)
        return -1;
    *first = x->first_day;
    *last = x->last_day;
    return 0;
}

size_t store_index_bytes(const cc_store *store)
{
    const struct store_code_index *x = index_of(store);
    return x ? x->bytes : 0;
}

size_t cc_store_index_memory_bytes(const cc_store *store)
{
    return store_index_bytes(store);
}

void store_index_free(cc_store *store)
{
    index_free(atomic_load_explicit(&store->code_index, memory_order_relaxed));
    atomic_store_explicit(&store->code_index, NULL, memory_order_relaxed);
}
