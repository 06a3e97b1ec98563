/*
 * bench_ledger.c: the cost of the disclosure ledger per query, and its
 * memory and disk per entry (docs/benchmarks.md, "Disclosure ledger").
 *
 *   bench_ledger --dir DIR [--persons N] [--entries E] [--cohort-percent P] [--same-size]
 *
 * One account asks E queries whose cohorts are P% of N persons (sizes
 * spread by +-P/2%, or all of one size with --same-size: the worst case,
 * where every earlier entry is a candidate of the size search), each a
 * fresh random set of record keys (a record key is a keyed hash, so
 * uniform over 32 bits, as the engine hands them); each admit builds the
 * bitmap, compares it with the candidates and commits the entry to
 * DIR/state.db (WAL fsync). Prints
 *   RESULT ledger persons=N entries=E cohort=C admit_median_ms=X admit_p90_ms=Y
 *          memory_bytes_per_entry=M disk_bytes_per_entry=D reopen_ms=R
 *
 * Must never: be used as a test (it asserts nothing about time).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_error.h"
#include "cc_ledger.h"
#include "cc_policy.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t state = 0x9e3779b97f4a7c15ULL;
static uint64_t next_random(void)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t persons = 100000, entries = 200;
    double percent = 10;
    int same_size = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--persons") && i + 1 < argc)
            persons = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--entries") && i + 1 < argc)
            entries = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cohort-percent") && i + 1 < argc)
            percent = strtod(argv[++i], NULL);
        else if (!strcmp(argv[i], "--same-size"))
            same_size = 1;
        else {
            fprintf(stderr, "usage: bench_ledger --dir DIR [--persons N] [--entries E] "
                            "[--cohort-percent P] [--same-size]\n");
            return 2;
        }
    }
    if (!dir || entries == 0) {
        fprintf(stderr, "bench_ledger: --dir is required\n");
        return 2;
    }
    struct cc_policy policy;
    cc_policy_default(&policy);
    policy.ledger_budget = UINT32_MAX; /* measure the look-up, not the budget's refusals */
    char err[256];
    cc_ledger *ledger;
    int rc = cc_ledger_open(dir, &ledger, err, sizeof err);
    if (rc) {
        fprintf(stderr, "bench_ledger: %s\n", err);
        return 1;
    }
    uint64_t cohort = (uint64_t)(persons * percent / 100);
    uint32_t *keys = malloc((cohort * 2 + 1) * sizeof *keys);
    double *ms = malloc(entries * sizeof *ms);
    if (!keys || !ms)
        return 1;
    uint64_t refused = 0;
    for (uint64_t e = 0; e < entries; e++) {
        uint64_t n = same_size ? cohort : cohort / 2 + next_random() % (cohort + 1);
        for (uint64_t k = 0; k < n; k++)
            keys[k] = (uint32_t)next_random();
        double t0 = now_ms();
        rc = cc_ledger_admit(ledger, 1, &policy, e, keys, n, (int64_t)time(NULL), err, sizeof err);
        ms[e] = now_ms() - t0;
        if (rc == CC_EREFUSED)
            refused++;
        else if (rc) {
            fprintf(stderr, "bench_ledger: %s\n", err);
            return 1;
        }
    }
    size_t memory = cc_ledger_memory_bytes(ledger);
    cc_ledger_close(ledger);
    double t0 = now_ms();
    if (cc_ledger_open(dir, &ledger, err, sizeof err)) {
        fprintf(stderr, "bench_ledger: %s\n", err);
        return 1;
    }
    double reopen = now_ms() - t0;
    cc_ledger_close(ledger);
    char path[4096];
    snprintf(path, sizeof path, "%s/state.db", dir);
    struct stat st;
    off_t disk = stat(path, &st) == 0 ? st.st_size : 0;
    snprintf(path, sizeof path, "%s/state.db-wal", dir);
    if (stat(path, &st) == 0)
        disk += st.st_size;
    qsort(ms, entries, sizeof *ms, compare_double);
    uint64_t kept = entries - refused;
    printf("RESULT ledger persons=%" PRIu64 " entries=%" PRIu64 " cohort=%" PRIu64
           " admit_median_ms=%.2f admit_p90_ms=%.2f memory_bytes_per_entry=%.0f "
           "disk_bytes_per_entry=%.0f reopen_ms=%.1f refused=%" PRIu64 "\n",
           persons, entries, cohort, ms[entries / 2], ms[entries * 9 / 10],
           kept ? (double)memory / kept : 0, kept ? (double)disk / kept : 0, reopen, refused);
    free(keys);
    free(ms);
    return 0;
}
