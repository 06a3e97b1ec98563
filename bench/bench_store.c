/*
 * bench_store.c: how long the columnar store takes to build, finish, save and
 * load, and how many bytes it holds per person, record and posting.
 *
 *   bench_store [--persons N] [--records M] [--dir DIR] [--seed S]
 *
 * Builds a synthetic store (random pseudonyms, England-sized area tables, GP
 * events with one SNOMED CT code, hospital episodes with a primary and up to
 * three secondary ICD-10 codes and sometimes an OPCS-4 procedure, community
 * contacts with one SNOMED CT code), then times each stage with a monotonic
 * clock. The snapshot is written to DIR (default /tmp) and removed at the end.
 * Load times are with the file in the page cache (it was just written).
 *
 * Must never: be used as a test (it asserts nothing about time); write
 * anywhere but DIR.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_model.h"
#include "cc_store.h"

struct bench_options {
    uint64_t n_persons, n_records, seed;
    const char *dir;
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64: fast, and good enough to spread synthetic data */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* CPU seconds of this process: the figure to trust when the machine is
 * shared and wall time includes waiting for a core. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct stage {
    double wall, cpu;
};

static struct stage stage_start(void)
{
    return (struct stage){now_seconds(), cpu_seconds()};
}

static struct stage stage_end(struct stage start)
{
    return (struct stage){now_seconds() - start.wall, cpu_seconds() - start.cpu};
}

static double peak_rss_mib(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0;
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    o->n_persons = 10000000;
    o->n_records = 50000000;
    o->seed = 1;
    o->dir = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--persons") == 0)
            o->n_persons = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--records") == 0)
            o->n_records = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--seed") == 0)
            o->seed = strtoull(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--dir") == 0)
            o->dir = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--persons N] [--records M] [--dir DIR] [--seed S]\n", argv[0]);
            return -1;
        }
    }
    if (o->n_persons == 0 || o->n_persons > UINT32_MAX || o->n_records > UINT32_MAX) {
        fprintf(stderr, "%s: --persons must be 1..2^32-1 and --records at most 2^32-1\n",
                argv[0]);
        return -1;
    }
    return 0;
}

/* England-sized area tables: 33,755 LSOAs, 296 districts, 42 ICBs, 9
 * regions, 20 postcodes per LSOA. */
static int set_synthetic_areas(cc_store_builder *b, uint64_t *state)
{
    enum { N_LSOA = 33755, N_LAD = 296, N_ICB = 42, N_REGION = 9, PER_LSOA = 20 };
    static char lsoa[N_LSOA][CC_AREA_CODE_BYTES], lad[N_LAD][CC_AREA_CODE_BYTES];
    static char icb[N_ICB][CC_AREA_CODE_BYTES], region[N_REGION][CC_AREA_CODE_BYTES];
    static uint16_t lsoa_lad[N_LSOA], lad_icb[N_LAD], icb_region[N_ICB];
    static uint32_t population[N_LSOA * 2 * CC_N_AGE_BANDS_5Y];
    static uint64_t keys[N_LSOA * PER_LSOA];
    static uint16_t key_lsoa[N_LSOA * PER_LSOA];
    for (int i = 0; i < N_REGION; i++)
        snprintf(region[i], sizeof region[i], "E12%06u", (unsigned)(i + 1) % 1000000u);
    for (int i = 0; i < N_ICB; i++) {
        snprintf(icb[i], sizeof icb[i], "E54%06u", (unsigned)(i + 8) % 1000000u);
        icb_region[i] = (uint16_t)(i % N_REGION);
    }
    for (int i = 0; i < N_LAD; i++) {
        snprintf(lad[i], sizeof lad[i], "E07%06u", (unsigned)(i + 1) % 1000000u);
        lad_icb[i] = (uint16_t)(i % N_ICB);
    }
    for (int i = 0; i < N_LSOA; i++) {
        snprintf(lsoa[i], sizeof lsoa[i], "E01%06u", (unsigned)(i + 1) % 1000000u);
        lsoa_lad[i] = (uint16_t)(i % N_LAD);
        for (int k = 0; k < 2 * CC_N_AGE_BANDS_5Y; k++)
            population[i * 2 * CC_N_AGE_BANDS_5Y + k] = 20 + (uint32_t)(next_random(state) % 60);
        for (int k = 0; k < PER_LSOA; k++) {
            /* one distinct postcode per (LSOA, k): 675,100 < 100 * 6,760 */
            unsigned code = (unsigned)(i * PER_LSOA + k);
            char postcode[16];
            snprintf(postcode, sizeof postcode, "B%u %u%c%c", code / 6760 % 100, code % 10,
                     'A' + code / 10 % 26, 'A' + code / 260 % 26);
            keys[i * PER_LSOA + k] = cc_postcode_pack(postcode, strlen(postcode));
            key_lsoa[i * PER_LSOA + k] = (uint16_t)i;
        }
    }
    struct cc_area_input in = {
        .n_lsoa = N_LSOA, .n_lad = N_LAD, .n_icb = N_ICB, .n_region = N_REGION,
        .lsoa_code = (const char(*)[CC_AREA_CODE_BYTES])lsoa,
        .lad_code = (const char(*)[CC_AREA_CODE_BYTES])lad,
        .icb_code = (const char(*)[CC_AREA_CODE_BYTES])icb,
        .region_code = (const char(*)[CC_AREA_CODE_BYTES])region,
        .lsoa_lad = lsoa_lad, .lad_icb = lad_icb, .icb_region = icb_region,
        .population = population,
        .n_postcodes = N_LSOA * PER_LSOA, .postcode_key = keys, .postcode_lsoa = key_lsoa,
    };
    return cc_store_builder_set_areas(b, &in);
}

/* Code pools: 20,000 SNOMED CT ids, 2,000 ICD-10 and 1,000 OPCS-4 codes. */
#define N_SNOMED 20000
#define N_ICD10 2000
#define N_OPCS4 1000
static char snomed_pool[N_SNOMED][12], icd10_pool[N_ICD10][6], opcs4_pool[N_OPCS4][6];

static void fill_code_pools(void)
{
    for (int i = 0; i < N_SNOMED; i++)
        snprintf(snomed_pool[i], sizeof snomed_pool[i], "%u", (100000u + (unsigned)i * 37u) % 10000000u);
    for (int i = 0; i < N_ICD10; i++)
        snprintf(icd10_pool[i], sizeof icd10_pool[i], "%c%02u%u", 'A' + i / 100 % 26,
                 (unsigned)i % 100u, (unsigned)i / 2600u % 10u);
    for (int i = 0; i < N_OPCS4; i++)
        snprintf(opcs4_pool[i], sizeof opcs4_pool[i], "%c%02u%u", 'A' + i / 100 % 20,
                 (unsigned)i % 100u, (unsigned)i / 2000u % 10u);
}

static int add_synthetic_data(cc_store_builder *b, const struct bench_options *o,
                              uint64_t *state)
{
    int rc;
    for (int i = 0; i < 6500; i++) {
        char practice[8];
        snprintf(practice, sizeof practice, "%c%05u", 'A' + i % 26, (unsigned)i % 100000u);
        if ((rc = cc_store_builder_practice(b, practice)) < 0)
            return rc;
    }
    for (uint64_t i = 0; i < o->n_persons; i++) {
        struct cc_person_input p;
        uint64_t r[4] = {next_random(state), next_random(state), next_random(state),
                         next_random(state)};
        memcpy(p.pseudonym.bytes, r, 16);
        memcpy(p.postcode_pseudonym.bytes, r + 2, 16);
        p.dob = (cc_day)(r[0] % 40000);
        p.sex = (uint8_t)(1 + r[1] % 2);
        p.lsoa = (uint16_t)(r[2] % 33755);
        p.practice = (uint16_t)(r[3] % 6500);
        p.record_key = (uint32_t)(r[3] >> 32);
        int64_t index = cc_store_builder_person(b, &p);
        if (index < 0)
            return (int)index;
    }
    for (uint64_t i = 0; i < o->n_records; i++) {
        uint64_t r = next_random(state), s = next_random(state);
        uint32_t person = (uint32_t)(r % o->n_persons);
        cc_day date = (cc_day)(40000 + (r >> 40) % 9000);
        struct cc_code_input codes[5];
        size_t n_codes = 1;
        uint8_t setting, flags = 0;
        unsigned kind = (unsigned)(s % 100);
        if (kind < 60) {
            setting = CC_SETTING_GP;
            codes[0] = (struct cc_code_input){CC_CODE_SNOMED, CC_ROLE_PRIMARY,
                                              snomed_pool[(s >> 8) % N_SNOMED]};
        } else if (kind < 85) {
            setting = CC_SETTING_HOSPITAL;
            flags = (uint8_t)(1 + (s >> 8) % 4);
            codes[0] = (struct cc_code_input){CC_CODE_ICD10, CC_ROLE_PRIMARY,
                                              icd10_pool[(s >> 12) % N_ICD10]};
            unsigned n_secondary = (unsigned)((s >> 24) % 4);
            for (unsigned k = 0; k < n_secondary; k++)
                codes[n_codes++] = (struct cc_code_input){
                    CC_CODE_ICD10, CC_ROLE_SECONDARY, icd10_pool[(s >> (28 + 8 * k)) % N_ICD10]};
            if ((s >> 60) % 2)
                codes[n_codes++] = (struct cc_code_input){CC_CODE_OPCS4, CC_ROLE_PROCEDURE,
                                                          opcs4_pool[(r >> 8) % N_OPCS4]};
        } else {
            setting = CC_SETTING_COMMUNITY;
            codes[0] = (struct cc_code_input){CC_CODE_SNOMED, CC_ROLE_PRIMARY,
                                              snomed_pool[(s >> 8) % 500]};
        }
        if ((rc = cc_store_builder_record(b, person, setting, date, flags, codes, n_codes)))
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench_options o;
    if (parse_options(argc, argv, &o))
        return 2;
    char path[4096], reason[256] = "";
    snprintf(path, sizeof path, "%s/bench_store.%d.ccs", o.dir, (int)getpid());
    uint64_t state = o.seed;
    cc_store_builder *b = NULL;
    cc_store *store = NULL;
    int rc;

    fill_code_pools();
    printf("bench_store: %" PRIu64 " persons, %" PRIu64 " records, seed %" PRIu64 "\n",
           o.n_persons, o.n_records, o.seed);
    /* the snapshot's checksums are keyed: any fixed key measures the same */
    static const uint8_t snapshot_key[CC_STORE_KEY_BYTES] = {0x62, 0x65, 0x6e, 0x63, 0x68};
    struct stage t = stage_start(), add, finish, save, load_all, load_query;
    if ((rc = cc_store_builder_new(NULL, &b)) || (rc = set_synthetic_areas(b, &state)) ||
        (rc = add_synthetic_data(b, &o, &state)))
        goto fail;
    add = stage_end(t);
    t = stage_start();
    rc = cc_store_builder_finish(b, &store);
    b = NULL;
    if (rc)
        goto fail;
    finish = stage_end(t);
    t = stage_start();
    if ((rc = cc_store_save(store, path, snapshot_key)))
        goto fail;
    save = stage_end(t);

    const struct cc_store_columns *v = cc_store_columns(store);
    uint64_t n_persons = v->n_persons, n_records = v->n_records;
    uint64_t n_postings = v->code_first[v->n_codes];
    size_t built_bytes = cc_store_memory_bytes(store);
    cc_store_free(store);
    store = NULL;
    struct stat st;
    stat(path, &st);

    t = stage_start();
    if ((rc = cc_store_load(path, CC_STORE_LOAD_ALL, snapshot_key, &store, reason, sizeof reason)))
        goto fail;
    load_all = stage_end(t);
    size_t all_bytes = cc_store_memory_bytes(store);
    cc_store_free(store);
    store = NULL;
    t = stage_start();
    if ((rc = cc_store_load(path, CC_STORE_QUERY_ONLY, snapshot_key, &store, reason, sizeof reason)))
        goto fail;
    load_query = stage_end(t);
    size_t query_bytes = cc_store_memory_bytes(store);

    /* the per-row widths of the columns (cc_store.h), checked against the
     * total the store reports: what is left is the reference data */
    const uint64_t person_all = 16 + 16 + 2 + 1 + 2 + 2 + 4 + 4, person_query = person_all - 16;
    const uint64_t record = 4 + 2 + 1, posting = 4; /* the role is packed into the posting */
    uint64_t rows = n_persons * person_query + n_records * record + n_postings * posting;
    printf("  codes %u, postings %" PRIu64 " (%.2f per record)\n", v->n_codes, n_postings,
           (double)n_postings / (double)(n_records ? n_records : 1));
    printf("  stage                 wall s   cpu s\n");
    printf("  add persons+records  %7.2f %7.2f (includes generating the data)\n", add.wall,
           add.cpu);
    printf("  finish (sort, index) %7.2f %7.2f\n", finish.wall, finish.cpu);
    printf("  save (fsync'd)       %7.2f %7.2f  %.1f MiB file\n", save.wall, save.cpu,
           (double)st.st_size / 1048576.0);
    printf("  load all             %7.2f %7.2f\n", load_all.wall, load_all.cpu);
    printf("  load query-only      %7.2f %7.2f\n", load_query.wall, load_query.cpu);
    printf("  memory, query-only   %8.1f MiB total\n", (double)query_bytes / 1048576.0);
    printf("    per person %" PRIu64 " B, per record %" PRIu64 " B, per posting %" PRIu64
           " B, reference data %.1f MiB\n",
           person_query, record, posting, ((double)query_bytes - (double)rows) / 1048576.0);
    printf("    per record including its postings %.2f B\n",
           (double)(n_records * record + n_postings * posting) /
               (double)(n_records ? n_records : 1));
    printf("  memory, load all     %8.1f MiB total (per person %" PRIu64 " B); as built %.1f MiB\n",
           (double)all_bytes / 1048576.0, person_all, (double)built_bytes / 1048576.0);
    printf("  peak RSS             %8.1f MiB (the builder's peak)\n", peak_rss_mib());
    cc_store_free(store);
    unlink(path);
    return 0;
fail:
    fprintf(stderr, "bench_store: %s%s%s\n", cc_strerror(rc), reason[0] ? ": " : "", reason);
    cc_store_builder_free(b);
    cc_store_free(store);
    unlink(path);
    return 1;
}
