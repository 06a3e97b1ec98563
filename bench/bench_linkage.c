/*
 * bench_linkage.c: linkage quality measured against the generator's ground
 * truth, and the shape of the codes the store then holds.
 *
 *   bench_linkage --patients N [--seed S] --dir DIR
 *
 * Generates N patients into DIR/feeds with the ground truth in
 * DIR/truth.csv (outside the feeds), makes a key, ingests the feeds into
 * DIR/data with CC_TEST_LINK_TRACE=DIR/trace.csv, and prints, per feed and
 * stage, the rows linked to the right person, to a wrong one, and left
 * unlinked with their reasons (cc_gen_linkage_score), then the number of
 * distinct codes per system in the store. The figures in docs/linkage.md
 * come from this program.
 *
 * Must never: print an identifier (the truth and the trace hold internal
 * indices only); write outside DIR.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_datadir.h"
#include "cc_error.h"
#include "cc_gen.h"
#include "cc_ingest.h"
#include "cc_model.h"
#include "cc_pseudo.h"
#include "cc_store.h"

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_linkage --patients N [--seed S] --dir DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    long long patients = 0;
    unsigned long long seed = 1;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--patients") && i + 1 < argc)
            patients = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else
            return usage();
    }
    if (!dir || patients < CC_GEN_MIN_PATIENTS || patients > CC_GEN_MAX_PATIENTS)
        return usage();
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_linkage: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char feeds[4096], truth[4096], key[4096], data[4096], trace[4096], err[1024];
    snprintf(feeds, sizeof feeds, "%s/feeds", dir);
    snprintf(truth, sizeof truth, "%s/truth.csv", dir);
    snprintf(key, sizeof key, "%s/key", dir);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(trace, sizeof trace, "%s/trace.csv", dir);

    double t0 = wall_seconds();
    struct cc_gen_options gen = {.seed = seed, .n_patients = patients, .out_dir = feeds,
                                 .progress = stderr, .truth_path = truth};
    int rc = cc_gen_run(&gen, NULL);
    if (rc) {
        fprintf(stderr, "bench_linkage: generate: %s\n", cc_strerror(rc));
        return 1;
    }
    double t1 = wall_seconds();
    if ((rc = cc_pseudo_keygen(key))) {
        fprintf(stderr, "bench_linkage: keygen: %s\n", cc_strerror(rc));
        return 1;
    }
    static char paths[CC_N_FEED_KINDS][4200];
    struct cc_ingest_options ingest = {.data_dir = data, .key_path = key};
    for (int kind = 0; kind < CC_N_FEED_KINDS; kind++) {
        snprintf(paths[kind], sizeof paths[kind], "%s/%s", feeds, cc_feed_kind_file(kind));
        ingest.files[ingest.n_files].kind = kind;
        ingest.files[ingest.n_files].path = paths[kind];
        ingest.n_files++;
    }
    setenv("CC_TEST_LINK_TRACE", trace, 1);
    static struct cc_ingest_report report;
    if ((rc = cc_ingest_run(&ingest, &report, err, sizeof err))) {
        fprintf(stderr, "bench_linkage: ingest: %s\n", err);
        return 1;
    }
    unsetenv("CC_TEST_LINK_TRACE");
    double t2 = wall_seconds();

    struct cc_gen_linkage_score score;
    if ((rc = cc_gen_linkage_score(truth, trace, &score, err, sizeof err))) {
        fprintf(stderr, "bench_linkage: score: %s\n", err);
        return 1;
    }
    double t3 = wall_seconds();
    printf("%lld patients, seed %llu: generate %.1f s, ingest %.1f s, score %.1f s\n", patients,
           seed, t1 - t0, t2 - t1, t3 - t2);
    cc_gen_linkage_print(stdout, &score);

    /* The codes the store holds, per system. */
    uint64_t version = 0;
    cc_store *store = NULL;
    if (cc_datadir_load_current(data, key, CC_STORE_QUERY_ONLY, &store, &version, err,
                                sizeof err)) {
        fprintf(stderr, "bench_linkage: store: %s\n", err);
        return 1;
    }
    const struct cc_store_columns *cols = cc_store_columns(store);
    uint64_t n_codes[4] = {0}, postings[4] = {0};
    for (uint32_t c = 0; c < cols->n_codes; c++) {
        n_codes[cols->code_system[c] & 3]++;
        postings[cols->code_system[c] & 3] += cols->code_first[c + 1] - cols->code_first[c];
    }
    printf("store: %u distinct codes: SNOMED CT %llu, ICD-10 %llu, OPCS-4 %llu "
           "(postings %llu, %llu, %llu)\n",
           cols->n_codes, (unsigned long long)n_codes[CC_CODE_SNOMED],
           (unsigned long long)n_codes[CC_CODE_ICD10], (unsigned long long)n_codes[CC_CODE_OPCS4],
           (unsigned long long)postings[CC_CODE_SNOMED], (unsigned long long)postings[CC_CODE_ICD10],
           (unsigned long long)postings[CC_CODE_OPCS4]);
    cc_store_free(store);
    return 0;
}
