/*
 * cc_store.c: the finished, immutable store: its column view, invariant checks,
 * look-ups (persons, codes, code prefixes, postcodes) and memory accounting.
 * The builder is in cc_store_builder.c, the snapshot file in cc_store_file.c.
 *
 * A finished store is never written to, so every function here that takes a
 * const cc_store * is safe to call from many threads at once. (The person
 * sets of frequent codes, cc_store_index.c, are added once, under a lock,
 * and published atomically; no column changes.)
 *
 * Must never: modify a finished store; put a pseudonym or any value of a
 * person's row into an error message (reasons give section and index only).
 */
#include "cc_store.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cc_error.h"
#include "cc_model.h"
#include "cc_store_internal.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the snapshot format maps little-endian arrays directly; port cc_store_file.c first"
#endif

struct section_info {
    const char *name;
    uint32_t element_bytes;
};

static const struct section_info section_info[STORE_N_SECTIONS] = {
    [STORE_SECTION_LSOA_CODE] = {"areas.lsoa_code", CC_AREA_CODE_BYTES},
    [STORE_SECTION_LAD_CODE] = {"areas.lad_code", CC_AREA_CODE_BYTES},
    [STORE_SECTION_ICB_CODE] = {"areas.icb_code", CC_AREA_CODE_BYTES},
    [STORE_SECTION_REGION_CODE] = {"areas.region_code", CC_AREA_CODE_BYTES},
    [STORE_SECTION_LSOA_LAD] = {"areas.lsoa_lad", 2},
    [STORE_SECTION_LAD_ICB] = {"areas.lad_icb", 2},
    [STORE_SECTION_ICB_REGION] = {"areas.icb_region", 2},
    [STORE_SECTION_NAME_BLOB] = {"areas.names", 1},
    [STORE_SECTION_LSOA_NAME_OFFSET] = {"areas.lsoa_name_offset", 4},
    [STORE_SECTION_LAD_NAME_OFFSET] = {"areas.lad_name_offset", 4},
    [STORE_SECTION_ICB_NAME_OFFSET] = {"areas.icb_name_offset", 4},
    [STORE_SECTION_REGION_NAME_OFFSET] = {"areas.region_name_offset", 4},
    [STORE_SECTION_POPULATION] = {"areas.population", 4},
    [STORE_SECTION_POSTCODE_KEY] = {"postcodes.key", 8},
    [STORE_SECTION_POSTCODE_LSOA] = {"postcodes.lsoa", 2},
    [STORE_SECTION_PRACTICE_CODE] = {"practices.code", CC_PRACTICE_CODE_BYTES},
    [STORE_SECTION_PERSON_PSEUDONYM] = {"persons.pseudonym", CC_PSEUDONYM_BYTES},
    [STORE_SECTION_PERSON_POSTCODE_PSEUDONYM] = {"persons.postcode_pseudonym",
                                                 CC_PSEUDONYM_BYTES},
    [STORE_SECTION_PERSON_DOB] = {"persons.dob", 2},
    [STORE_SECTION_PERSON_SEX] = {"persons.sex", 1},
    [STORE_SECTION_PERSON_LSOA] = {"persons.lsoa", 2},
    [STORE_SECTION_PERSON_PRACTICE] = {"persons.practice", 2},
    [STORE_SECTION_PERSON_RECORD_KEY] = {"persons.record_key", 4},
    [STORE_SECTION_PERSON_BY_PSEUDONYM] = {"persons.by_pseudonym", 4},
    [STORE_SECTION_RECORD_PERSON] = {"records.person", 4},
    [STORE_SECTION_RECORD_DATE] = {"records.date", 2},
    [STORE_SECTION_RECORD_FLAGS] = {"records.flags", 1},
    [STORE_SECTION_CODE_SYSTEM] = {"codes.system", 1},
    [STORE_SECTION_CODE_TEXT] = {"codes.text", CC_CODE_TEXT_BYTES},
    [STORE_SECTION_CODE_FIRST] = {"codes.first", 8},
    [STORE_SECTION_POSTING_RECORDS] = {"postings.record", 4},
    [STORE_SECTION_FEED_IDENTITY] = {"records.feed_identity", CC_FEED_IDENTITY_BYTES},
};

const char *store_section_name(int section)
{
    if (section < 0 || section >= STORE_N_SECTIONS)
        return "unknown";
    return section_info[section].name;
}

uint32_t store_section_element_bytes(int section)
{
    if (section < 0 || section >= STORE_N_SECTIONS)
        return 0;
    return section_info[section].element_bytes;
}

/* The number of elements of a section for these counts. */
static uint64_t section_elements(const struct store_counts *c, int section)
{
    switch (section) {
    case STORE_SECTION_LSOA_CODE:
    case STORE_SECTION_LSOA_LAD:
    case STORE_SECTION_LSOA_NAME_OFFSET:
        return c->n_lsoa;
    case STORE_SECTION_LAD_CODE:
    case STORE_SECTION_LAD_ICB:
    case STORE_SECTION_LAD_NAME_OFFSET:
        return c->n_lad;
    case STORE_SECTION_ICB_CODE:
    case STORE_SECTION_ICB_REGION:
    case STORE_SECTION_ICB_NAME_OFFSET:
        return c->n_icb;
    case STORE_SECTION_REGION_CODE:
    case STORE_SECTION_REGION_NAME_OFFSET:
        return c->n_region;
    case STORE_SECTION_NAME_BLOB:
        return c->name_blob_bytes;
    case STORE_SECTION_POPULATION:
        return (uint64_t)c->n_lsoa * 2 * CC_N_AGE_BANDS_5Y;
    case STORE_SECTION_POSTCODE_KEY:
    case STORE_SECTION_POSTCODE_LSOA:
        return c->n_postcodes;
    case STORE_SECTION_PRACTICE_CODE:
        return c->n_practices;
    case STORE_SECTION_PERSON_PSEUDONYM:
    case STORE_SECTION_PERSON_POSTCODE_PSEUDONYM:
    case STORE_SECTION_PERSON_DOB:
    case STORE_SECTION_PERSON_SEX:
    case STORE_SECTION_PERSON_LSOA:
    case STORE_SECTION_PERSON_PRACTICE:
    case STORE_SECTION_PERSON_RECORD_KEY:
    case STORE_SECTION_PERSON_BY_PSEUDONYM:
        return c->n_persons;
    case STORE_SECTION_RECORD_PERSON:
    case STORE_SECTION_RECORD_DATE:
    case STORE_SECTION_RECORD_FLAGS:
        return c->n_records;
    case STORE_SECTION_CODE_SYSTEM:
    case STORE_SECTION_CODE_TEXT:
        return c->n_codes;
    case STORE_SECTION_CODE_FIRST:
        return (uint64_t)c->n_codes + 1;
    case STORE_SECTION_POSTING_RECORDS:
        return c->n_postings;
    case STORE_SECTION_FEED_IDENTITY:
        return c->n_feed_identities;
    default:
        return 0;
    }
}

uint64_t store_section_bytes(const struct store_counts *counts, int section)
{
    if (section < 0 || section >= STORE_N_SECTIONS)
        return UINT64_MAX;
    uint64_t n = section_elements(counts, section);
    uint64_t size = section_info[section].element_bytes;
    if (n > UINT64_MAX / 16 / size)
        return UINT64_MAX;
    return n * size;
}

void store_bind_view(struct cc_store_columns *v, const struct store_counts *c,
                     void *const sec[STORE_N_SECTIONS])
{
    memset(v, 0, sizeof *v);
    v->n_lsoa = c->n_lsoa;
    v->n_lad = c->n_lad;
    v->n_icb = c->n_icb;
    v->n_region = c->n_region;
    v->lsoa_code = sec[STORE_SECTION_LSOA_CODE];
    v->lad_code = sec[STORE_SECTION_LAD_CODE];
    v->icb_code = sec[STORE_SECTION_ICB_CODE];
    v->region_code = sec[STORE_SECTION_REGION_CODE];
    v->lsoa_lad = sec[STORE_SECTION_LSOA_LAD];
    v->lad_icb = sec[STORE_SECTION_LAD_ICB];
    v->icb_region = sec[STORE_SECTION_ICB_REGION];
    v->name_blob = sec[STORE_SECTION_NAME_BLOB];
    v->lsoa_name_offset = sec[STORE_SECTION_LSOA_NAME_OFFSET];
    v->lad_name_offset = sec[STORE_SECTION_LAD_NAME_OFFSET];
    v->icb_name_offset = sec[STORE_SECTION_ICB_NAME_OFFSET];
    v->region_name_offset = sec[STORE_SECTION_REGION_NAME_OFFSET];
    v->population = sec[STORE_SECTION_POPULATION];
    v->n_postcodes = c->n_postcodes;
    v->postcode_key = sec[STORE_SECTION_POSTCODE_KEY];
    v->postcode_lsoa = sec[STORE_SECTION_POSTCODE_LSOA];
    v->n_practices = c->n_practices;
    v->practice_code = sec[STORE_SECTION_PRACTICE_CODE];
    v->n_persons = c->n_persons;
    v->person_pseudonym = sec[STORE_SECTION_PERSON_PSEUDONYM];
    v->person_postcode_pseudonym = sec[STORE_SECTION_PERSON_POSTCODE_PSEUDONYM];
    v->person_dob = sec[STORE_SECTION_PERSON_DOB];
    v->person_sex = sec[STORE_SECTION_PERSON_SEX];
    v->person_lsoa = sec[STORE_SECTION_PERSON_LSOA];
    v->person_practice = sec[STORE_SECTION_PERSON_PRACTICE];
    v->person_record_key = sec[STORE_SECTION_PERSON_RECORD_KEY];
    v->n_records = c->n_records;
    memcpy(v->setting_first, c->setting_first, sizeof v->setting_first);
    v->record_person = sec[STORE_SECTION_RECORD_PERSON];
    v->record_date = sec[STORE_SECTION_RECORD_DATE];
    v->record_flags = sec[STORE_SECTION_RECORD_FLAGS];
    v->n_codes = c->n_codes;
    v->code_system = sec[STORE_SECTION_CODE_SYSTEM];
    v->code_text = sec[STORE_SECTION_CODE_TEXT];
    v->code_first = sec[STORE_SECTION_CODE_FIRST];
    v->posting_records = sec[STORE_SECTION_POSTING_RECORDS];
    v->n_feed_identities = c->n_feed_identities;
    v->feed_identity = sec[STORE_SECTION_FEED_IDENTITY];
}

void store_bind_columns(struct cc_store *s)
{
    store_bind_view(&s->view, &s->counts, s->section);
    s->person_by_pseudonym = s->section[STORE_SECTION_PERSON_BY_PSEUDONYM];
}

/* Arrays this large are backed by transparent huge pages where the kernel
 * allows it (madvise mode): one TLB entry per 2 MiB instead of per 4 KiB,
 * which matters for random access into 100 MB columns and for the page
 * faults of filling them. */
#define STORE_HUGE_PAGE_BYTES ((size_t)2 << 20)

void *store_alloc(uint64_t bytes)
{
    if (bytes > SIZE_MAX - STORE_HUGE_PAGE_BYTES)
        return NULL;
    if (bytes < 2 * STORE_HUGE_PAGE_BYTES)
        return malloc(bytes ? (size_t)bytes : 1);
    void *data = NULL;
    size_t rounded = ((size_t)bytes + STORE_HUGE_PAGE_BYTES - 1) & ~(STORE_HUGE_PAGE_BYTES - 1);
    if (posix_memalign(&data, STORE_HUGE_PAGE_BYTES, rounded) != 0)
        return NULL;
    madvise(data, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
    return data;
}

void *store_alloc_zeroed(uint64_t bytes)
{
    void *data = store_alloc(bytes);
    if (data)
        memset(data, 0, bytes ? (size_t)bytes : 1);
    return data;
}

int store_pseudonym_compare(const cc_pseudonym *a, const cc_pseudonym *b)
{
    return memcmp(a->bytes, b->bytes, CC_PSEUDONYM_BYTES);
}

/* Merge sort of person indices by pseudonym; tmp has room for n indices. */
static void merge_sort_by_pseudonym(uint32_t *idx, uint32_t *tmp, uint32_t n,
                                    const cc_pseudonym *ps)
{
    if (n <= 24) {
        for (uint32_t i = 1; i < n; i++) {
            uint32_t v = idx[i];
            uint32_t j = i;
            while (j > 0 && store_pseudonym_compare(&ps[idx[j - 1]], &ps[v]) > 0) {
                idx[j] = idx[j - 1];
                j--;
            }
            idx[j] = v;
        }
        return;
    }
    uint32_t half = n / 2;
    merge_sort_by_pseudonym(idx, tmp, half, ps);
    merge_sort_by_pseudonym(idx + half, tmp, n - half, ps);
    memcpy(tmp, idx, half * sizeof *idx);
    uint32_t a = 0, b = half, out = 0;
    while (a < half && b < n) {
        if (store_pseudonym_compare(&ps[idx[b]], &ps[tmp[a]]) < 0)
            idx[out++] = idx[b++];
        else
            idx[out++] = tmp[a++];
    }
    while (a < half)
        idx[out++] = tmp[a++];
}

/*
 * Radix sorting of (64-bit key, optional 32-bit value) arrays: the engine of
 * finish(), which sorts tens of millions of records and postings.
 *
 * A plain LSD radix sort makes one pass over the whole array per 8-bit
 * digit, each pass a full trip through DRAM; at 50 million records and
 * about 3 GB/s of memory bandwidth per core on this machine, six passes cost
 * ~8 s. So large arrays are first split on their top digit (MSD, 256
 * buckets, stable), recursively, until a bucket fits in cache; each bucket
 * is then finished with LSD passes (256 sequential streams, few enough for
 * L1 and the TLB) that never leave the cache.
 *
 * An array of RADIX_PARALLEL_MIN elements or more is split on two cores:
 * each half of it is counted and scattered by its own thread, the first
 * half's elements placed before the second's in every bucket (so the sort
 * stays stable and its result does not depend on the threads), and then
 * each thread finishes the buckets of one half of the elements.
 */
#define RADIX_BITS 8
#define RADIX_SIZE ((uint64_t)1 << RADIX_BITS)
#define RADIX_MSD_BITS 11
#define RADIX_MSD_SIZE ((uint64_t)1 << RADIX_MSD_BITS)
#define RADIX_IN_CACHE_BYTES ((uint64_t)1 << 20) /* measured best of 256 KiB..4 MiB */
#define RADIX_PARALLEL_MIN ((uint64_t)1 << 22)

struct radix_arrays {
    uint64_t *keys;
    uint32_t *values; /* NULL when sorting keys only */
};

static void radix_copy(struct radix_arrays to, struct radix_arrays from, uint64_t at, uint64_t n)
{
    memcpy(to.keys + at, from.keys + at, (size_t)n * sizeof *to.keys);
    if (to.values)
        memcpy(to.values + at, from.values + at, (size_t)n * sizeof *to.values);
}

/* One stable counting pass on the digit at shift, from src to dst. */
static void radix_scatter(struct radix_arrays src, struct radix_arrays dst, uint64_t n, int shift,
                          uint64_t mask, uint64_t *at)
{
    if (src.values)
        for (uint64_t i = 0; i < n; i++) {
            uint64_t to = at[(src.keys[i] >> shift) & mask]++;
            dst.keys[to] = src.keys[i];
            dst.values[to] = src.values[i];
        }
    else
        for (uint64_t i = 0; i < n; i++)
            dst.keys[at[(src.keys[i] >> shift) & mask]++] = src.keys[i];
}

/* Counts digits at shift and turns the counts into start offsets; returns 0
 * if every key has the same digit (nothing to do). */
static int radix_offsets(const uint64_t *keys, uint64_t n, int shift, uint64_t mask, uint64_t *at)
{
    memset(at, 0, (mask + 1) * sizeof *at);
    for (uint64_t i = 0; i < n; i++)
        at[(keys[i] >> shift) & mask]++;
    if (at[(keys[0] >> shift) & mask] == n)
        return 0;
    uint64_t sum = 0;
    for (uint64_t d = 0; d <= mask; d++) {
        uint64_t c = at[d];
        at[d] = sum;
        sum += c;
    }
    return 1;
}

static void radix_sort_to(struct radix_arrays src, struct radix_arrays dst, uint64_t n,
                          int low_bit, int high_bit, int threads);

/* Sorts the MSD buckets [d_from, d_to) of dst (each via src, then back). */
static void radix_buckets(struct radix_arrays src, struct radix_arrays dst, const uint64_t *start,
                          uint64_t d_from, uint64_t d_to, int low_bit, int shift)
{
    for (uint64_t d = d_from; d < d_to; d++) {
        uint64_t begin = start[d], count = start[d + 1] - begin;
        if (count <= 1)
            continue;
        struct radix_arrays bucket_src = {dst.keys + begin, dst.values ? dst.values + begin : NULL};
        struct radix_arrays bucket_dst = {src.keys + begin, src.values ? src.values + begin : NULL};
        radix_sort_to(bucket_src, bucket_dst, count, low_bit, shift, 1);
        radix_copy((struct radix_arrays){dst.keys + begin, bucket_src.values},
                   (struct radix_arrays){src.keys + begin, bucket_dst.values}, 0, count);
    }
}

/* One thread's share of a split MSD pass: elements [from, to) of src are
 * counted (at: per-digit counts), then scattered (at: their offsets in
 * dst), then buckets [d_from, d_to) are finished. */
struct radix_half {
    struct radix_arrays src, dst;
    uint64_t from, to, d_from, d_to;
    int shift, low_bit;
    uint64_t mask;
    const uint64_t *start;
    uint64_t at[RADIX_MSD_SIZE];
    enum { RADIX_COUNT, RADIX_SCATTER, RADIX_BUCKETS } step;
};

static void *radix_half_run(void *arg)
{
    struct radix_half *h = arg;
    switch (h->step) {
    case RADIX_COUNT:
        memset(h->at, 0, (h->mask + 1) * sizeof *h->at);
        for (uint64_t i = h->from; i < h->to; i++)
            h->at[(h->src.keys[i] >> h->shift) & h->mask]++;
        break;
    case RADIX_SCATTER: {
        struct radix_arrays part = {h->src.keys + h->from,
                                    h->src.values ? h->src.values + h->from : NULL};
        radix_scatter(part, h->dst, h->to - h->from, h->shift, h->mask, h->at);
        break;
    }
    case RADIX_BUCKETS:
        radix_buckets(h->src, h->dst, h->start, h->d_from, h->d_to, h->low_bit, h->shift);
        break;
    }
    return NULL;
}

void store_run_pair(void *(*job)(void *), void *first, void *second)
{
    pthread_t helper;
    int started = pthread_create(&helper, NULL, job, second) == 0;
    job(first);
    if (started)
        pthread_join(helper, NULL);
    else
        job(second);
}

/* Runs both halves' current step. */
static void radix_both(struct radix_half h[2])
{
    store_run_pair(radix_half_run, &h[0], &h[1]);
}

/* The MSD pass of radix_sort_to on two threads (threads > 1): 1 when done,
 * 0 when every key has the same top digit (the caller goes on below it), or
 * CC_ENOMEM when the halves' state cannot be allocated (the caller sorts on
 * one thread). */
static int radix_msd_split(struct radix_arrays src, struct radix_arrays dst, uint64_t n,
                           int low_bit, int shift, uint64_t msd_mask)
{
    struct radix_half *h = calloc(2, sizeof *h);
    if (!h)
        return CC_ENOMEM;
    for (int t = 0; t < 2; t++) {
        h[t].src = src;
        h[t].dst = dst;
        h[t].from = t ? n / 2 : 0;
        h[t].to = t ? n : n / 2;
        h[t].shift = shift;
        h[t].low_bit = low_bit;
        h[t].mask = msd_mask;
        h[t].step = RADIX_COUNT;
    }
    radix_both(h);
    uint64_t start[RADIX_MSD_SIZE + 1], sum = 0;
    for (uint64_t d = 0; d <= msd_mask; d++) {
        uint64_t first = h[0].at[d], second = h[1].at[d];
        if (first + second == n) {
            free(h);
            return 0;
        }
        start[d] = sum;
        h[0].at[d] = sum;
        h[1].at[d] = sum + first;
        sum += first + second;
    }
    start[msd_mask + 1] = n;
    h[0].step = h[1].step = RADIX_SCATTER;
    radix_both(h);
    /* the buckets in two runs of about n / 2 elements */
    uint64_t mid = 0;
    while (mid <= msd_mask && start[mid] < n / 2)
        mid++;
    h[0].d_from = 0;
    h[0].d_to = h[1].d_from = mid;
    h[1].d_to = msd_mask + 1;
    h[0].start = h[1].start = start;
    h[0].step = h[1].step = RADIX_BUCKETS;
    radix_both(h);
    free(h);
    return 1;
}

/* Sorts src[0..n) by bits [low_bit, high_bit) into dst; src is scratch.
 * threads > 1 lets the MSD pass of a large array use two. */
static void radix_sort_to(struct radix_arrays src, struct radix_arrays dst, uint64_t n,
                          int low_bit, int high_bit, int threads)
{
    uint64_t at[RADIX_SIZE];
    if (n <= 1 || high_bit <= low_bit) {
        radix_copy(dst, src, 0, n);
        return;
    }
    uint64_t element_bytes = sizeof(uint64_t) + (src.values ? sizeof(uint32_t) : 0);
    if (n * element_bytes <= RADIX_IN_CACHE_BYTES || high_bit - low_bit <= RADIX_BITS) {
        /* LSD from the lowest digit; the result alternates between arrays */
        struct radix_arrays in = src, out = dst;
        for (int shift = low_bit; shift < high_bit; shift += RADIX_BITS) {
            /* the last digit may be narrower: bits from high_bit up must
             * not take part */
            int width = high_bit - shift < RADIX_BITS ? high_bit - shift : RADIX_BITS;
            uint64_t mask = ((uint64_t)1 << width) - 1;
            if (!radix_offsets(in.keys, n, shift, mask, at))
                continue;
            radix_scatter(in, out, n, shift, mask, at);
            struct radix_arrays swap = in;
            in = out;
            out = swap;
        }
        if (in.keys != dst.keys)
            radix_copy(dst, in, 0, n);
        return;
    }
    /* MSD: split on the top digit into dst, then sort each bucket (via src
     * as its destination) and copy it back while it is still in cache. The
     * digit is as wide as it takes for the buckets to fit in cache, up to
     * 11 bits, so one out-of-cache pass usually suffices. */
    uint64_t msd_at[RADIX_MSD_SIZE + 1];
    int msd_bits = 1;
    while (msd_bits < RADIX_MSD_BITS && ((n * element_bytes) >> msd_bits) > RADIX_IN_CACHE_BYTES)
        msd_bits++;
    if (msd_bits > high_bit - low_bit)
        msd_bits = high_bit - low_bit;
    uint64_t msd_mask = ((uint64_t)1 << msd_bits) - 1;
    int shift = high_bit - msd_bits;
    if (threads > 1 && n >= RADIX_PARALLEL_MIN) {
        int done = radix_msd_split(src, dst, n, low_bit, shift, msd_mask);
        if (done == 1)
            return;
        if (done == 0) {
            radix_sort_to(src, dst, n, low_bit, shift, threads);
            return;
        }
    }
    if (!radix_offsets(src.keys, n, shift, msd_mask, msd_at)) {
        radix_sort_to(src, dst, n, low_bit, shift, threads);
        return;
    }
    uint64_t start[RADIX_MSD_SIZE + 1];
    memcpy(start, msd_at, (msd_mask + 1) * sizeof *msd_at);
    start[msd_mask + 1] = n;
    radix_scatter(src, dst, n, shift, msd_mask, msd_at);
    radix_buckets(src, dst, start, 0, msd_mask + 1, low_bit, shift);
}

int store_radix_sort(uint64_t **keys, uint32_t **values, uint64_t n, int low_bit, int high_bit)
{
    if (high_bit > 64)
        high_bit = 64;
    struct radix_arrays src = {*keys, values ? *values : NULL};
    struct radix_arrays dst = {store_alloc(n * sizeof(uint64_t)), NULL};
    if (values)
        dst.values = store_alloc(n * sizeof(uint32_t));
    if (!dst.keys || (values && !dst.values)) {
        free(dst.keys);
        free(dst.values);
        return CC_ENOMEM;
    }
    radix_sort_to(src, dst, n, low_bit, high_bit, 2);
    free(src.keys);
    *keys = dst.keys;
    if (values) {
        free(src.values);
        *values = dst.values;
    }
    return 0;
}

void store_sort_keys_small(uint64_t *keys, uint64_t *tmp, uint64_t n, int low_bit, int high_bit)
{
    if (n <= 32) {
        for (uint64_t i = 1; i < n; i++) {
            uint64_t v = keys[i], j = i;
            while (j > 0 && keys[j - 1] > v) {
                keys[j] = keys[j - 1];
                j--;
            }
            keys[j] = v;
        }
        return;
    }
    const uint64_t radix = RADIX_SIZE, mask = radix - 1;
    uint64_t count[(64 / RADIX_BITS) << RADIX_BITS];
    int n_passes = (high_bit - low_bit + RADIX_BITS - 1) / RADIX_BITS;
    if (n_passes > 64 / RADIX_BITS)
        n_passes = 64 / RADIX_BITS;
    memset(count, 0, (size_t)n_passes * radix * sizeof *count);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t key = keys[i] >> low_bit;
        for (int pass = 0; pass < n_passes; pass++)
            count[pass * radix + ((key >> (pass * RADIX_BITS)) & mask)]++;
    }
    uint64_t *in = keys, *out = tmp;
    for (int pass = 0; pass < n_passes; pass++) {
        int shift = low_bit + pass * RADIX_BITS;
        uint64_t *at = count + pass * radix;
        if (at[(in[0] >> shift) & mask] == n)
            continue;
        uint64_t sum = 0;
        for (uint64_t d = 0; d < radix; d++) {
            uint64_t c = at[d];
            at[d] = sum;
            sum += c;
        }
        for (uint64_t i = 0; i < n; i++)
            out[at[(in[i] >> shift) & mask]++] = in[i];
        uint64_t *swap = in;
        in = out;
        out = swap;
    }
    if (in != keys)
        memcpy(keys, in, (size_t)n * sizeof *keys);
}

/* Radix-sorts on the first 4 bytes of each pseudonym read as a big-endian
 * number (streaming), then finishes the runs whose first 4 bytes agree
 * (about n^2 / 2^33 pairs: a few thousand at 10 million) with a merge sort
 * on all 16 bytes. */
int store_sort_persons_by_pseudonym(uint32_t *idx, uint32_t n, const cc_pseudonym *ps)
{
    uint64_t *keys = store_alloc((uint64_t)n * sizeof *keys);
    uint32_t *values = store_alloc((uint64_t)n * sizeof *values);
    uint32_t *tmp = NULL;
    int rc = CC_ENOMEM;
    if (!keys || !values)
        goto out;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t key = 0;
        for (int k = 0; k < 8; k++)
            key = key << 8 | ps[i].bytes[k];
        keys[i] = key;
        values[i] = i;
    }
    /* the pseudonyms are uniformly random, so the top 32 bits nearly
     * always decide; equal runs are finished below */
    if ((rc = store_radix_sort(&keys, &values, n, 32, 64)))
        goto out;
    rc = CC_ENOMEM;
    for (uint32_t begin = 0; begin < n;) {
        uint32_t end = begin + 1;
        while (end < n && keys[end] >> 32 == keys[begin] >> 32)
            end++;
        if (end - begin > 1) {
            if (!tmp && !(tmp = malloc((size_t)n * sizeof *tmp)))
                goto out;
            merge_sort_by_pseudonym(values + begin, tmp, end - begin, ps);
        }
        begin = end;
    }
    if (n)
        memcpy(idx, values, (size_t)n * sizeof *idx);
    rc = 0;
out:
    free(keys);
    free(values);
    free(tmp);
    return rc;
}

const struct cc_store_columns *cc_store_columns(const cc_store *store)
{
    return &store->view;
}

size_t cc_store_memory_bytes(const cc_store *store)
{
    size_t total = sizeof *store;
    for (int s = 0; s < STORE_N_SECTIONS; s++)
        total += store->section_alloc_bytes[s];
    return total + store_index_bytes(store);
}

void cc_store_free(cc_store *store)
{
    if (!store)
        return;
    for (int s = 0; s < STORE_N_SECTIONS; s++)
        free(store->section[s]);
    store_index_free(store);
    free(store);
}

/* 0 if the fixed-width text field holds a NUL-terminated, non-empty string. */
static int text_ok(const char *text, size_t width)
{
    return text[0] != '\0' && memchr(text, '\0', width) != NULL ? 0 : -1;
}

static int check_sorted_codes(const char (*codes)[CC_AREA_CODE_BYTES], uint32_t n,
                              const char *what, char *errbuf, size_t errlen)
{
    for (uint32_t i = 0; i < n; i++) {
        if (text_ok(codes[i], CC_AREA_CODE_BYTES))
            return store_corrupt(errbuf, errlen, "%s %u is not a terminated code", what, i);
        if (i > 0 && strncmp(codes[i - 1], codes[i], CC_AREA_CODE_BYTES) >= 0)
            return store_corrupt(errbuf, errlen, "%s not strictly ascending at index %u", what,
                                 i);
    }
    return 0;
}

static int check_parent(const uint16_t *parent, uint32_t n, uint32_t n_parent, const char *what,
                        char *errbuf, size_t errlen)
{
    for (uint32_t i = 0; i < n; i++)
        if (parent[i] >= n_parent)
            return store_corrupt(errbuf, errlen, "%s %u points outside its parent level", what,
                                 i);
    return 0;
}

static int check_names(const uint32_t *offset, uint32_t n, uint64_t blob_bytes,
                       const char *what, char *errbuf, size_t errlen)
{
    for (uint32_t i = 0; i < n; i++)
        if (offset[i] >= blob_bytes)
            return store_corrupt(errbuf, errlen, "%s name offset %u out of range", what, i);
    return 0;
}

static int validate_areas(const struct cc_store *s, char *errbuf, size_t errlen)
{
    const struct cc_store_columns *v = &s->view;
    int rc;
    if (v->n_lsoa >= UINT16_MAX || v->n_lad > UINT16_MAX || v->n_icb > UINT16_MAX ||
        v->n_region > UINT16_MAX)
        return store_corrupt(errbuf, errlen, "too many areas for 16-bit indices");
    if ((rc = check_sorted_codes(v->lsoa_code, v->n_lsoa, "LSOA code", errbuf, errlen)) ||
        (rc = check_sorted_codes(v->lad_code, v->n_lad, "district code", errbuf, errlen)) ||
        (rc = check_sorted_codes(v->icb_code, v->n_icb, "ICB code", errbuf, errlen)) ||
        (rc = check_sorted_codes(v->region_code, v->n_region, "region code", errbuf, errlen)))
        return rc;
    if ((rc = check_parent(v->lsoa_lad, v->n_lsoa, v->n_lad, "LSOA", errbuf, errlen)) ||
        (rc = check_parent(v->lad_icb, v->n_lad, v->n_icb, "district", errbuf, errlen)) ||
        (rc = check_parent(v->icb_region, v->n_icb, v->n_region, "ICB", errbuf, errlen)))
        return rc;
    uint64_t blob = s->counts.name_blob_bytes;
    if (blob > 0 && v->name_blob[blob - 1] != '\0')
        return store_corrupt(errbuf, errlen, "area name blob is not NUL-terminated");
    if ((rc = check_names(v->lsoa_name_offset, v->n_lsoa, blob, "LSOA", errbuf, errlen)) ||
        (rc = check_names(v->lad_name_offset, v->n_lad, blob, "district", errbuf, errlen)) ||
        (rc = check_names(v->icb_name_offset, v->n_icb, blob, "ICB", errbuf, errlen)) ||
        (rc = check_names(v->region_name_offset, v->n_region, blob, "region", errbuf, errlen)))
        return rc;
    for (uint32_t i = 0; i < v->n_postcodes; i++) {
        if (v->postcode_key[i] == 0 || (i > 0 && v->postcode_key[i - 1] >= v->postcode_key[i]))
            return store_corrupt(errbuf, errlen, "postcode keys not strictly ascending at %u",
                                 i);
        if (v->postcode_lsoa[i] >= v->n_lsoa)
            return store_corrupt(errbuf, errlen, "postcode %u points outside the LSOAs", i);
    }
    return 0;
}

static int validate_persons(const struct cc_store *s, char *errbuf, size_t errlen)
{
    const struct cc_store_columns *v = &s->view;
    if (v->n_practices > UINT16_MAX)
        return store_corrupt(errbuf, errlen, "too many practices for 16-bit indices");
    for (uint32_t i = 0; i < v->n_practices; i++) {
        if (text_ok(v->practice_code[i], CC_PRACTICE_CODE_BYTES))
            return store_corrupt(errbuf, errlen, "practice %u is not a terminated code", i);
        if (i > 0 && strncmp(v->practice_code[i - 1], v->practice_code[i],
                             CC_PRACTICE_CODE_BYTES) >= 0)
            return store_corrupt(errbuf, errlen, "practice codes not strictly ascending at %u",
                                 i);
    }
    for (uint32_t i = 0; i < v->n_persons; i++) {
        uint8_t sex = v->person_sex[i];
        if (sex != CC_SEX_NOT_KNOWN && sex != CC_SEX_MALE && sex != CC_SEX_FEMALE &&
            sex != CC_SEX_INDETERMINATE)
            return store_corrupt(errbuf, errlen, "person %u has an invalid sex code", i);
        if (v->person_lsoa[i] != UINT16_MAX && v->person_lsoa[i] >= v->n_lsoa)
            return store_corrupt(errbuf, errlen, "person %u has an LSOA out of range", i);
        if (v->person_practice[i] != UINT16_MAX && v->person_practice[i] >= v->n_practices)
            return store_corrupt(errbuf, errlen, "person %u has a practice out of range", i);
    }
    /* the pseudonym index must be a permutation in strictly ascending order:
     * strictness is what proves the pseudonyms unique */
    const uint32_t *order = s->person_by_pseudonym;
    for (uint32_t i = 0; i < v->n_persons; i++) {
        /* the index visits persons in random order: fetch ahead */
        if (i + 16 < v->n_persons && order[i + 16] < v->n_persons)
            __builtin_prefetch(&v->person_pseudonym[order[i + 16]]);
        if (order[i] >= v->n_persons)
            return store_corrupt(errbuf, errlen, "pseudonym index entry %u out of range", i);
        if (i > 0 && store_pseudonym_compare(&v->person_pseudonym[order[i - 1]],
                                             &v->person_pseudonym[order[i]]) >= 0)
            return store_corrupt(errbuf, errlen,
                                 "pseudonyms not unique or index not sorted at entry %u", i);
    }
    return 0;
}

static int validate_records(const struct cc_store *s, char *errbuf, size_t errlen)
{
    const struct cc_store_columns *v = &s->view;
    const uint64_t *first = v->setting_first;
    if (v->n_records > UINT32_MAX)
        return store_corrupt(errbuf, errlen, "too many records for 32-bit postings");
    if (first[0] != 0 || first[1] != 0 || first[4] != v->n_records)
        return store_corrupt(errbuf, errlen, "setting ranges do not cover the records");
    /* every range in order before any is walked: a range that ends past
     * n_records is caught by a later range's order check */
    for (int st = 1; st < 4; st++)
        if (first[st] > first[st + 1])
            return store_corrupt(errbuf, errlen, "setting ranges out of order at setting %d",
                                 st);
    for (int st = 1; st < 4; st++) {
        /* the days of the current record's year: [year_first, year_end) */
        cc_day year_first = 0, year_end = 0;
        for (uint64_t r = first[st]; r < first[st + 1]; r++) {
            uint32_t p = v->record_person[r];
            cc_day d = v->record_date[r];
            if (p >= v->n_persons)
                return store_corrupt(errbuf, errlen, "record %llu has a person out of range",
                                     (unsigned long long)r);
            if ((v->record_flags[r] & CC_RECORD_ADMIT_MASK) > CC_ADMIT_OTHER)
                return store_corrupt(errbuf, errlen, "record %llu has invalid flags",
                                     (unsigned long long)r);
            int new_year = r == first[st] || d >= year_end;
            if (r > first[st] && d < year_first)
                goto unsorted; /* an earlier year after a later one */
            if (new_year) {
                int y, m, dd;
                cc_day_to_ymd(d, &y, &m, &dd);
                year_first = cc_day_from_ymd(y, 1, 1);
                year_end = y < 2079 ? cc_day_from_ymd(y + 1, 1, 1) : CC_DAY_MAX + 1;
            } else {
                uint32_t prev = v->record_person[r - 1];
                if (prev > p || (prev == p && v->record_date[r - 1] > d))
                    goto unsorted;
            }
            continue;
        unsorted:
            return store_corrupt(errbuf, errlen,
                                 "records not sorted by (setting, year, person, date) at record "
                                 "%llu",
                                 (unsigned long long)r);
        }
    }
    return 0;
}

static int code_compare(uint8_t system_a, const char *text_a, uint8_t system_b,
                        const char *text_b)
{
    if (system_a != system_b)
        return system_a < system_b ? -1 : 1;
    return strncmp(text_a, text_b, CC_CODE_TEXT_BYTES);
}

static int validate_codes(const struct cc_store *s, char *errbuf, size_t errlen)
{
    const struct cc_store_columns *v = &s->view;
    for (uint32_t c = 0; c < v->n_codes; c++) {
        if (v->code_system[c] < CC_CODE_SNOMED || v->code_system[c] > CC_CODE_OPCS4)
            return store_corrupt(errbuf, errlen, "code %u has an invalid system", c);
        if (text_ok(v->code_text[c], CC_CODE_TEXT_BYTES))
            return store_corrupt(errbuf, errlen, "code %u is not a terminated text", c);
        if (c > 0 && code_compare(v->code_system[c - 1], v->code_text[c - 1], v->code_system[c],
                                  v->code_text[c]) >= 0)
            return store_corrupt(errbuf, errlen,
                                 "code ids not in (system, text) order at code %u", c);
    }
    if (v->code_first[0] != 0 || v->code_first[v->n_codes] != s->counts.n_postings)
        return store_corrupt(errbuf, errlen, "code posting ranges do not cover the postings");
    for (uint32_t c = 0; c < v->n_codes; c++) {
        uint64_t begin = v->code_first[c], end = v->code_first[c + 1];
        if (begin > end)
            return store_corrupt(errbuf, errlen, "code %u posting range is negative", c);
        for (uint64_t k = begin; k < end; k++) {
            if (CC_POSTING_RECORD(v->posting_records[k]) >= v->n_records)
                return store_corrupt(errbuf, errlen, "code %u posting %llu out of range", c,
                                     (unsigned long long)k);
            if (k > begin && CC_POSTING_RECORD(v->posting_records[k - 1]) >=
                                 CC_POSTING_RECORD(v->posting_records[k]))
                return store_corrupt(errbuf, errlen,
                                     "code %u postings not strictly ascending at %llu", c,
                                     (unsigned long long)k);
            if (CC_POSTING_ROLE(v->posting_records[k]) > CC_ROLE_PROCEDURE)
                return store_corrupt(errbuf, errlen, "code %u posting %llu has an invalid role",
                                     c, (unsigned long long)k);
        }
    }
    return 0;
}

int cc_store_validate(const cc_store *store, char *errbuf, size_t errlen)
{
    int rc;
    if ((rc = validate_areas(store, errbuf, errlen)) ||
        (rc = validate_persons(store, errbuf, errlen)) ||
        (rc = validate_records(store, errbuf, errlen)) ||
        (rc = validate_codes(store, errbuf, errlen)))
        return rc;
    const struct cc_store_columns *v = &store->view;
    if (v->feed_identity)
        for (uint64_t i = 1; i < v->n_feed_identities; i++)
            if (memcmp(v->feed_identity[i - 1], v->feed_identity[i], CC_FEED_IDENTITY_BYTES) >= 0)
                return store_corrupt(errbuf, errlen,
                                     "feed identities not strictly ascending at %llu",
                                     (unsigned long long)i);
    return 0;
}

int64_t cc_store_find_person(const cc_store *store, const cc_pseudonym *p)
{
    const cc_pseudonym *ps = store->view.person_pseudonym;
    const uint32_t *order = store->person_by_pseudonym;
    uint32_t lo = 0, hi = store->view.n_persons;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int cmp = store_pseudonym_compare(&ps[order[mid]], p);
        if (cmp == 0)
            return order[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The first code id whose (system, text) is not less than (system, text). */
static uint32_t code_lower_bound(const struct cc_store_columns *v, int system, const char *text)
{
    uint32_t lo = 0, hi = v->n_codes;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (code_compare(v->code_system[mid], v->code_text[mid], (uint8_t)system, text) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int64_t cc_store_find_code(const cc_store *store, int system, const char *text)
{
    const struct cc_store_columns *v = &store->view;
    if (system < 0 || system > UINT8_MAX || strlen(text) >= CC_CODE_TEXT_BYTES)
        return -1;
    uint32_t at = code_lower_bound(v, system, text);
    if (at < v->n_codes && v->code_system[at] == system &&
        strncmp(v->code_text[at], text, CC_CODE_TEXT_BYTES) == 0)
        return at;
    return -1;
}

void cc_store_code_prefix_range(const cc_store *store, int system, const char *prefix,
                                uint32_t *first, uint32_t *last)
{
    const struct cc_store_columns *v = &store->view;
    size_t len = strlen(prefix);
    *first = *last = 0;
    if (system < 0 || system > UINT8_MAX || len >= CC_CODE_TEXT_BYTES)
        return;
    uint32_t lo = code_lower_bound(v, system, prefix);
    /* codes from lo on that start with prefix form one run (ids follow text
     * order); find where the run ends */
    uint32_t hi = v->n_codes, begin = lo;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v->code_system[mid] == system && strncmp(v->code_text[mid], prefix, len) == 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = begin;
    *last = lo;
}

uint64_t cc_postcode_pack(const char *canonical, size_t len)
{
    if (len == 0 || len > 8)
        return 0;
    uint64_t key = 0;
    for (size_t i = 0; i < 8; i++) {
        uint8_t ch = 0;
        if (i < len) {
            ch = (uint8_t)canonical[i];
            if (!(ch == ' ' || (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z')))
                return 0;
        }
        /* big-endian byte order: comparing keys compares the strings, and a
         * shorter string sorts before any longer one it begins */
        key = key << 8 | ch;
    }
    return key;
}

int32_t store_postcode_search(const uint64_t *keys, const uint16_t *lsoa, uint32_t n,
                              const char *canonical, size_t len)
{
    uint64_t key = cc_postcode_pack(canonical, len);
    if (key == 0)
        return -1;
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n && keys[lo] == key)
        return lsoa[lo];
    return -1;
}

int32_t cc_store_postcode_lsoa(const cc_store *store, const char *canonical, size_t len)
{
    return store_postcode_search(store->view.postcode_key, store->view.postcode_lsoa,
                                 store->view.n_postcodes, canonical, len);
}
