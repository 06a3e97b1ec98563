/*
 * bench_queries.c: restart-to-serving time, memory per person and per record,
 * and the four benchmark queries of issue 4 on the carecount engine, on a
 * data directory that `carecount ingest` filled; optionally exports the
 * linked, opted-in records as CSV for the peers (bench/peers/).
 *
 *   bench_queries --data DIR [--runs R] [--threads T] [--query N] [--export CSVDIR]
 *
 * --query N runs benchmark query N alone (1..4; default all four), for
 * profiling one query.
 *
 * Restart: finds the current snapshot (cc_ingest_current_store), loads it
 * for queries (CC_STORE_QUERY_ONLY) and publishes a data version from the
 * opt-out register in state.db: what a server does before it can answer.
 * Queries: each is bound once, then run R times through cc_exec_run (exact
 * counts, as the engine hands them to disclosure control); the median and
 * minimum wall times are printed as lines
 *   RESULT carecount qN median_ms=X min_ms=Y total=T cells=C cpu_ms_per_run=P
 *          runs=R load=L first_ms=F
 * which bench/run.sh pairs with the peers' lines (same format) for ratios.
 * total is the sum of the cells and cells the number of non-zero cells, so
 * the peers' answers can be checked against the engine's. first_ms is the
 * first run alone: it builds what the engine keeps per data version (the
 * registered population's groups, for query 3), which later runs reuse.
 *
 * With --release, each query is also run R times through cc_release_answer
 * (the default disclosure policy: the engine, then restrictions, low-effect
 * refusal, both noise layers, suppression and rounding), printed as
 *   RESULT carecount-release qN median_ms=X min_ms=Y released=T refused=K cpu_ms_per_run=C
 * so the cost of disclosure control is the difference of the two lines.
 *
 * The export holds only persons without an opt-out in force in the published
 * version, and their records and codes, so a peer needs no opt-out logic:
 *   persons.csv  id,dob,sex,lsoa,lad,icb,region,practice (empty: unknown)
 *   records.csv  id,person,setting,date
 *   codes.csv    record,system,text,role
 * with the numeric values of cc_model.h (setting 1 GP, 2 hospital, 3
 * community; system 1 SNOMED CT, 2 ICD-10, 3 OPCS-4).
 *
 * That is record-level data (every opted-in person's date of birth, sex,
 * LSOA and practice, every record's date and codes): right for synthetic
 * data, a breach on a real data directory. So --export refuses, before
 * anything is loaded, a data directory that was not built from
 * `carecount generate` output alone (cc_datadir_require_generated; exit
 * status 1, with the reason).
 *
 * Must never: be used as a test (it asserts nothing about time); write a
 * pseudonym or record key (the export carries store indices, areas, dates
 * and codes only); write anywhere but CSVDIR; export from a data directory
 * whose provenance is not "generated".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_datadir.h"
#include "cc_dataversion.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_ingest.h"
#include "cc_model.h"
#include "cc_optout.h"
#include "cc_policy.h"
#include "cc_query.h"
#include "cc_release.h"
#include "cc_store.h"

#define BENCH_MAX_RUNS 101

struct bench_options {
    const char *data_dir;
    const char *key_path; /* the data directory's key (its snapshot is keyed) */
    const char *export_dir; /* NULL: no export */
    unsigned n_runs;
    unsigned n_threads;
    int release; /* also time cc_release_answer */
    int only_query; /* 1..4: that query alone; 0: all four */
};

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the process, all threads: on a shared machine the wall
 * time includes waiting for a core, the CPU time does not. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double load_average(void)
{
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = -1;
        fclose(f);
    }
    return load;
}

static double peak_rss_mib(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_maxrss / 1024.0;
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    o->data_dir = NULL;
    o->key_path = getenv("CARECOUNT_KEY");
    o->export_dir = NULL;
    o->n_runs = 5;
    o->n_threads = 0;
    o->release = 0;
    o->only_query = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--data") == 0)
            o->data_dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--key") == 0)
            o->key_path = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--export") == 0)
            o->export_dir = argv[++i];
        else if (i + 1 < argc && strcmp(argv[i], "--runs") == 0)
            o->n_runs = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--threads") == 0)
            o->n_threads = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (i + 1 < argc && strcmp(argv[i], "--query") == 0)
            o->only_query = (int)strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--release") == 0)
            o->release = 1;
        else
            goto usage;
    }
    if (!o->data_dir || !o->key_path || o->n_runs < 1 || o->n_runs > BENCH_MAX_RUNS ||
        o->only_query < 0 || o->only_query > 4)
        goto usage;
    return 0;
usage:
    fprintf(stderr,
            "usage: %s --data DIR --key KEYFILE [--runs R (1..%d, default 5)] [--threads T] "
            "[--query 1..4] [--export CSVDIR] [--release]\n",
            argv[0], BENCH_MAX_RUNS);
    return -1;
}

/* ---- restart: load and publish ------------------------------------------------------ */

/* Loads the current store of data_dir and publishes a version with the
 * opt-outs in force today. On success the caller frees *version, then
 * *store. */
static int restart(const char *data_dir, const char *key_path, cc_store **store,
                   struct cc_dataversion **version)
{
    char err[1024];
    uint64_t store_version = 0;
    sqlite3 *db = NULL;
    cc_optout *optouts = NULL;
    *store = NULL;
    *version = NULL;

    double wall0 = wall_seconds(), cpu0 = cpu_seconds(), load0 = load_average();
    int rc = cc_datadir_load_current(data_dir, key_path, CC_STORE_QUERY_ONLY, store,
                                     &store_version, err, sizeof err);
    if (rc < 0)
        goto fail;
    double wall_loaded = wall_seconds(), cpu_loaded = cpu_seconds();
    rc = cc_db_open(data_dir, 0, &db, err, sizeof err);
    if (rc < 0)
        goto fail;
    rc = cc_optout_attach(db, &optouts);
    if (rc < 0) {
        snprintf(err, sizeof err, "cannot attach the opt-out register");
        goto fail;
    }
    rc = cc_dataversion_publish(*store, store_version, optouts, cc_day_today(), version);
    if (rc < 0) {
        snprintf(err, sizeof err, "cannot publish a data version");
        goto fail;
    }
    double wall1 = wall_seconds(), cpu1 = cpu_seconds();
    cc_optout_detach(optouts);
    cc_db_close(db);
    printf("restart: load %.2f s wall (%.2f s CPU), publish %.2f s wall (%.2f s CPU), "
           "total %.2f s wall; load average %.1f\n",
           wall_loaded - wall0, cpu_loaded - cpu0, wall1 - wall_loaded, cpu1 - cpu_loaded,
           wall1 - wall0, load0);
    printf("RESULT carecount restart median_ms=%.1f min_ms=%.1f total=1 cells=1\n",
           (wall1 - wall0) * 1e3, (wall1 - wall0) * 1e3);
    return 0;
fail:
    fprintf(stderr, "bench_queries: %s: %s (%s)\n", data_dir, cc_strerror(rc), err);
    cc_optout_detach(optouts);
    cc_db_close(db);
    cc_dataversion_release(*version);
    cc_store_free(*store);
    *version = NULL;
    *store = NULL;
    return rc;
}

/* ---- memory ----------------------------------------------------------------------- */

static void report_memory(const cc_store *store, const struct cc_dataversion *version)
{
    const struct cc_store_columns *c = cc_store_columns(store);
    uint64_t n_postings = c->code_first[c->n_codes];
    size_t total = cc_store_memory_bytes(store);
    /* what each kind of row costs in the columns of cc_store.h */
    size_t per_person = sizeof(cc_pseudonym) + sizeof *c->person_dob + sizeof *c->person_sex +
                        sizeof *c->person_lsoa + sizeof *c->person_practice +
                        sizeof *c->person_record_key;
    if (c->person_postcode_pseudonym)
        per_person += sizeof(cc_pseudonym);
    size_t per_record = sizeof *c->record_person + sizeof *c->record_date +
                        sizeof *c->record_flags;
    size_t per_posting = sizeof *c->posting_records; /* the role is packed in */
    size_t person_bytes = per_person * c->n_persons;
    size_t record_bytes = per_record * c->n_records + per_posting * n_postings;
    size_t version_bytes = (c->n_persons + 63) / 64 * sizeof(uint64_t);
    printf("store: %u persons, %" PRIu64 " records, %" PRIu64 " postings (%.2f per record), "
           "%u codes\n",
           c->n_persons, c->n_records, n_postings,
           c->n_records ? (double)n_postings / (double)c->n_records : 0.0, c->n_codes);
    printf("memory: store %.1f MiB = persons %.1f MiB (%zu B each) + records and postings "
           "%.1f MiB (%.2f B per record) + reference data and tables %.1f MiB; "
           "data version bitset %.1f MiB; peak RSS %.0f MiB\n",
           (double)total / 1048576.0, (double)person_bytes / 1048576.0, per_person,
           (double)record_bytes / 1048576.0,
           c->n_records ? (double)record_bytes / (double)c->n_records : 0.0,
           (double)(total - person_bytes - record_bytes) / 1048576.0,
           (double)version_bytes / 1048576.0, peak_rss_mib());
    printf("memory per person %.2f B (target <= 40), per record %.2f B (target <= 12); "
           "all bytes over persons %.2f, over records %.2f\n",
           (double)per_person, c->n_records ? (double)record_bytes / (double)c->n_records : 0.0,
           (double)total / (double)c->n_persons, (double)total / (double)c->n_records);
    size_t index_bytes = cc_store_index_memory_bytes(store);
    printf("person sets of frequent codes (in the store's total): %.1f MiB, %.2f B per person; "
           "per person with them %.2f B (target <= 40)\n",
           (double)index_bytes / 1048576.0, (double)index_bytes / (double)c->n_persons,
           (double)per_person + (double)index_bytes / (double)c->n_persons);
    printf("excluded by opt-outs in this version: %" PRIu64 " persons\n", cc_dataversion_n_excluded(version));
}

/* ---- the four queries ------------------------------------------------------------- */

static struct cc_query *query_new(int measure)
{
    struct cc_query *q = NULL;
    if (cc_query_new(&q) < 0)
        return NULL;
    q->measure = (uint8_t)measure;
    q->dimensions = cc_query_alloc(q, CC_QUERY_DIMENSIONS_CAP * sizeof *q->dimensions);
    q->filters.conditions = cc_query_alloc(q, 4 * sizeof *q->filters.conditions);
    if (!q->dimensions || !q->filters.conditions) {
        cc_query_free(q);
        return NULL;
    }
    return q;
}

static void query_dimension(struct cc_query *q, int kind, int banding)
{
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    d->kind = (uint8_t)kind;
    d->age_banding = (uint8_t)banding;
}

/* Adds a condition with one code (NULL: none), or returns -1 out of memory. */
static int query_condition(struct cc_query *q, int system, const char *code,
                           unsigned setting_mask, int year)
{
    struct cc_query_condition *c = &q->filters.conditions[q->filters.n_conditions++];
    c->system = (uint8_t)system;
    c->setting_mask = (uint8_t)setting_mask;
    if (year) {
        c->date_range.present = true;
        c->date_range.from = cc_query_month(year, 1);
        c->date_range.to = cc_query_month(year, 12);
    }
    if (code) {
        c->codes = cc_query_alloc(q, sizeof *c->codes);
        if (!c->codes)
            return -1;
        snprintf(c->codes[0].text, sizeof c->codes[0].text, "%s", code);
        c->n_codes = 1;
    }
    return 0;
}

#define SETTING_BIT(setting) (1u << (setting))
#define BENCH_YEAR 2024

/* Builds the queries of benchmark query `number` (1..4): one, or two for
 * query 3 (numerator and denominator). Returns how many, 0 out of memory. */
static int build_queries(int number, struct cc_query *out[2])
{
    struct cc_query *q = NULL, *d = NULL;
    switch (number) {
    case 1: /* persons with type 2 diabetes (SNOMED CT), any setting, per region */
        if (!(q = query_new(CC_MEASURE_PERSONS)))
            goto fail;
        query_dimension(q, CC_DIM_REGION, 0);
        if (query_condition(q, CC_CODE_SNOMED, "44054006", 0, 0) < 0)
            goto fail;
        break;
    case 2: /* hospital episodes in a year per district x 5-year band x sex */
        if (!(q = query_new(CC_MEASURE_EVENTS)))
            goto fail;
        query_dimension(q, CC_DIM_LAD, 0);
        query_dimension(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_5Y);
        query_dimension(q, CC_DIM_SEX, 0);
        q->filters.setting_mask = (uint8_t)SETTING_BIT(CC_SETTING_HOSPITAL);
        q->filters.date_range.present = true;
        q->filters.date_range.from = cc_query_month(BENCH_YEAR, 1);
        q->filters.date_range.to = cc_query_month(BENCH_YEAR, 12);
        break;
    case 3: /* per ICB: persons with an E11 episode in a year, and the registered population */
        if (!(q = query_new(CC_MEASURE_PERSONS)) || !(d = query_new(CC_MEASURE_POPULATION)))
            goto fail;
        query_dimension(q, CC_DIM_ICB, 0);
        if (query_condition(q, CC_CODE_ICD10, "E11", SETTING_BIT(CC_SETTING_HOSPITAL),
                            BENCH_YEAR) < 0)
            goto fail;
        d->population_source = CC_POPULATION_REGISTERED;
        query_dimension(d, CC_DIM_ICB, 0);
        break;
    case 4: /* persons with type 2 diabetes in the GP record and in a hospital episode */
        if (!(q = query_new(CC_MEASURE_PERSONS)))
            goto fail;
        query_dimension(q, CC_DIM_REGION, 0);
        if (query_condition(q, CC_CODE_SNOMED, "44054006", SETTING_BIT(CC_SETTING_GP), 0) < 0 ||
            query_condition(q, CC_CODE_ICD10, "E11", SETTING_BIT(CC_SETTING_HOSPITAL), 0) < 0)
            goto fail;
        break;
    default:
        goto fail;
    }
    out[0] = q;
    out[1] = d;
    return d ? 2 : 1;
fail:
    cc_query_free(q);
    cc_query_free(d);
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(double *times, unsigned n)
{
    qsort(times, n, sizeof *times, compare_doubles);
    return n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

/* Runs the bound queries n_runs times through disclosure control and
 * prints the carecount-release RESULT line. */
static int time_release(const struct cc_dataversion *version, int number,
                        struct cc_query *const *queries, int n_queries,
                        const struct cc_exec_options *exec_options, const struct bench_options *o)
{
    struct cc_policy policy;
    cc_policy_default(&policy);
    double times[BENCH_MAX_RUNS];
    uint64_t released = 0;
    unsigned refused = 0;
    char err[256] = "";
    double cpu0 = cpu_seconds();
    for (unsigned run = 0; run < o->n_runs; run++) {
        double start = wall_seconds();
        for (int i = 0; i < n_queries; i++) {
            cc_release *release = NULL;
            int rc = cc_release_answer(&policy, NULL, version, queries[i], exec_options, &release,
                                       err, sizeof err);
            if (rc == CC_EREFUSED) {
                if (run == 0) {
                    refused++;
                    fprintf(stderr, "bench_queries: query %d: refused: %s\n", number, err);
                }
                continue;
            }
            if (rc < 0) {
                fprintf(stderr, "bench_queries: query %d: %s (%s)\n", number, cc_strerror(rc),
                        err);
                return rc;
            }
            for (uint64_t cell = 0; run == 0 && cell < cc_release_n_cells(release); cell++)
                released += cc_release_cell(release, cell).value;
            cc_release_free(release);
        }
        times[run] = (wall_seconds() - start) * 1e3;
    }
    double cpu_per_run = (cpu_seconds() - cpu0) * 1e3 / o->n_runs;
    double min = times[0];
    for (unsigned run = 1; run < o->n_runs; run++)
        min = times[run] < min ? times[run] : min;
    printf("RESULT carecount-release q%d median_ms=%.2f min_ms=%.2f released=%" PRIu64
           " refused=%u cpu_ms_per_run=%.1f runs=%u load=%.1f\n",
           number, median_of(times, o->n_runs), min, released, refused, cpu_per_run, o->n_runs,
           load_average());
    fflush(stdout);
    return 0;
}

/* Runs benchmark query `number` n_runs times and prints its RESULT line. */
static int run_query(const struct cc_dataversion *version, int number,
                     const struct bench_options *o)
{
    struct cc_query *queries[2] = {NULL, NULL};
    struct cc_raw_result result;
    double times[BENCH_MAX_RUNS];
    uint64_t totals[2] = {0, 0}, cells = 0;
    char err[256] = "";
    int rc = CC_ENOMEM;
    int n_queries = build_queries(number, queries);
    if (n_queries == 0)
        goto out;
    for (int i = 0; i < n_queries; i++) {
        rc = cc_query_validate(queries[i], NULL, NULL, err, sizeof err);
        if (rc == 0)
            rc = cc_query_bind(queries[i], cc_store_columns(cc_dataversion_store(version)), NULL, err,
                               sizeof err);
        if (rc < 0)
            goto out;
    }
    struct cc_exec_options exec_options = {.n_threads = o->n_threads,
                                           .reference_day = cc_day_from_ymd(2025, 6, 30)};
    double load = load_average(), cpu0 = cpu_seconds();
    for (unsigned run = 0; run < o->n_runs; run++) {
        double start = wall_seconds();
        for (int i = 0; i < n_queries; i++) {
            rc = cc_exec_run(version, queries[i], &exec_options, &result, err, sizeof err);
            if (rc < 0)
                goto out;
            if (run == 0) {
                for (uint64_t cell = 0; cell < result.n_cells; cell++) {
                    totals[i] += result.count[cell];
                    cells += result.count[cell] != 0;
                }
            }
            cc_raw_result_free(&result);
        }
        times[run] = (wall_seconds() - start) * 1e3;
    }
    double cpu_per_run = (cpu_seconds() - cpu0) * 1e3 / o->n_runs;
    double min = times[0], first = times[0];
    for (unsigned run = 1; run < o->n_runs; run++)
        min = times[run] < min ? times[run] : min;
    qsort(times, o->n_runs, sizeof *times, compare_doubles);
    double median = o->n_runs % 2 ? times[o->n_runs / 2]
                                  : (times[o->n_runs / 2 - 1] + times[o->n_runs / 2]) / 2;
    char total[64];
    if (n_queries == 2)
        snprintf(total, sizeof total, "%" PRIu64 "/%" PRIu64, totals[0], totals[1]);
    else
        snprintf(total, sizeof total, "%" PRIu64, totals[0]);
    printf("RESULT carecount q%d median_ms=%.2f min_ms=%.2f total=%s cells=%" PRIu64
           " cpu_ms_per_run=%.1f runs=%u load=%.1f first_ms=%.2f\n",
           number, median, min, total, cells, cpu_per_run, o->n_runs, load, first);
    fflush(stdout);
    rc = o->release ? time_release(version, number, queries, n_queries, &exec_options, o) : 0;
out:
    if (rc < 0)
        fprintf(stderr, "bench_queries: query %d: %s (%s)\n", number, cc_strerror(rc), err);
    cc_query_free(queries[0]);
    cc_query_free(queries[1]);
    return rc;
}

/* ---- export for the peers --------------------------------------------------------- */

static FILE *open_csv(const char *dir, const char *name, const char *header, char *buffer,
                      size_t buffer_bytes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench_queries: cannot write %s\n", path);
        return NULL;
    }
    setvbuf(f, buffer, _IOFBF, buffer_bytes);
    fputs(header, f);
    return f;
}

/* Writes a day as YYYY-MM-DD without printf: 60 million dates add up. */
static void put_day(cc_day day, FILE *f)
{
    char buf[11];
    cc_day_format(day, buf);
    fwrite(buf, 1, 10, f);
}

static void put_unsigned(uint64_t value, FILE *f)
{
    char buf[24];
    int n = 0;
    do {
        buf[sizeof buf - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    fwrite(buf + sizeof buf - n, 1, (size_t)n, f);
}

/* Writes persons.csv, records.csv and codes.csv of the opted-in persons. */
static int export_csv(const struct cc_dataversion *version, const char *dir)
{
    const struct cc_store_columns *c = cc_store_columns(cc_dataversion_store(version));
    enum { BUFFER_BYTES = 1 << 20 };
    static char buffer[3][BUFFER_BYTES];
    FILE *persons = NULL, *records = NULL, *codes = NULL;
    int rc = CC_EIO;
    double start = wall_seconds();
    uint64_t n_persons = 0, n_records = 0, n_codes = 0;

    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "bench_queries: cannot create %s\n", dir);
        goto out;
    }
    persons = open_csv(dir, "persons.csv", "id,dob,sex,lsoa,lad,icb,region,practice\n",
                       buffer[0], BUFFER_BYTES);
    records = open_csv(dir, "records.csv", "id,person,setting,date\n", buffer[1], BUFFER_BYTES);
    codes = open_csv(dir, "codes.csv", "record,system,text,role\n", buffer[2], BUFFER_BYTES);
    if (!persons || !records || !codes)
        goto out;

    for (uint32_t p = 0; p < c->n_persons; p++) {
        if (cc_dataversion_is_excluded(version, p))
            continue;
        put_unsigned(p, persons);
        fputc(',', persons);
        put_day(c->person_dob[p], persons);
        fputc(',', persons);
        put_unsigned(c->person_sex[p], persons);
        fputc(',', persons);
        uint16_t lsoa = c->person_lsoa[p];
        if (lsoa != UINT16_MAX) {
            uint16_t lad = c->lsoa_lad[lsoa], icb = c->lad_icb[lad];
            fprintf(persons, "%s,%s,%s,%s", c->lsoa_code[lsoa], c->lad_code[lad],
                    c->icb_code[icb], c->region_code[c->icb_region[icb]]);
        } else {
            fputs(",,,", persons);
        }
        fputc(',', persons);
        if (c->person_practice[p] != UINT16_MAX)
            fputs(c->practice_code[c->person_practice[p]], persons);
        fputc('\n', persons);
        n_persons++;
    }
    for (uint8_t setting = CC_SETTING_GP; setting <= CC_SETTING_COMMUNITY; setting++) {
        for (uint64_t r = c->setting_first[setting]; r < c->setting_first[setting + 1]; r++) {
            if (cc_dataversion_is_excluded(version, c->record_person[r]))
                continue;
            put_unsigned(r, records);
            fputc(',', records);
            put_unsigned(c->record_person[r], records);
            fputc(',', records);
            put_unsigned(setting, records);
            fputc(',', records);
            put_day(c->record_date[r], records);
            fputc('\n', records);
            n_records++;
        }
    }
    for (uint32_t code = 0; code < c->n_codes; code++) {
        for (uint64_t k = c->code_first[code]; k < c->code_first[code + 1]; k++) {
            uint32_t r = CC_POSTING_RECORD(c->posting_records[k]);
            if (cc_dataversion_is_excluded(version, c->record_person[r]))
                continue;
            put_unsigned(r, codes);
            fputc(',', codes);
            put_unsigned(c->code_system[code], codes);
            fputc(',', codes);
            fputs(c->code_text[code], codes);
            fputc(',', codes);
            put_unsigned(CC_POSTING_ROLE(c->posting_records[k]), codes);
            fputc('\n', codes);
            n_codes++;
        }
    }
    rc = 0;
out:
    if (persons && fclose(persons) != 0)
        rc = CC_EIO;
    if (records && fclose(records) != 0)
        rc = CC_EIO;
    if (codes && fclose(codes) != 0)
        rc = CC_EIO;
    if (rc == 0)
        printf("export: %" PRIu64 " persons, %" PRIu64 " records, %" PRIu64
               " codes of opted-in persons to %s in %.1f s\n",
               n_persons, n_records, n_codes, dir, wall_seconds() - start);
    else
        fprintf(stderr, "bench_queries: export to %s failed\n", dir);
    return rc;
}

int main(int argc, char **argv)
{
    struct bench_options o;
    cc_store *store = NULL;
    struct cc_dataversion *version = NULL;
    int rc = 0;
    if (parse_options(argc, argv, &o) < 0)
        return 2;
    if (o.export_dir) {
        char why[1024];
        if (cc_datadir_require_generated(o.data_dir, "--export", why, sizeof why) < 0) {
            fprintf(stderr, "bench_queries: %s\n", why);
            return 1;
        }
    }
    if (restart(o.data_dir, o.key_path, &store, &version) < 0)
        return 1;
    report_memory(store, version);
    for (int number = 1; number <= 4 && rc == 0; number++)
        if (!o.only_query || o.only_query == number)
            rc = run_query(version, number, &o);
    if (rc == 0 && o.export_dir)
        rc = export_csv(version, o.export_dir);
    cc_dataversion_release(version);
    cc_store_free(store);
    return rc < 0 ? 1 : 0;
}
