/*
 * cmd_compare.c: `carecount compare --data DIR REQUEST.json`, an OPERATOR'S
 * tool that runs an area comparison (docs/comparisons.md) on a local data
 * directory and prints every unit's figures as CSV, to check the method.
 *
 * It computes from the EXACT counts, with no disclosure control, so it reads
 * only a data directory on this machine (which only the operator can read:
 * mode 0700) and never talks to a server. Researchers get comparisons from
 * the server, through disclosure control, when the server serves them.
 *
 * Must never: print anything about a person (it prints area codes, area
 * names and aggregate figures), or run against anything but a local data
 * directory.
 */
#include <errno.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_codelist.h"
#include "cc_compare.h"
#include "cc_dataversion.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_optout.h"
#include "cc_store.h"

const char cc_cmd_compare_summary[] =
    "operator's check of an area comparison on a local data directory (exact counts)";

static void usage(FILE *out)
{
    fprintf(out, "usage: carecount compare --data DIR [--on YYYY-MM-DD] [--codelists DIR]\n"
                 "                         REQUEST.json|-\n"
                 "\n"
                 "FOR OPERATORS ONLY: checks the comparison method on a local data\n"
                 "directory. It prints EXACT counts with no disclosure control\n"
                 "(no suppression, rounding or perturbation), so its output must never\n"
                 "be given to a researcher or published. Researchers ask the server,\n"
                 "whose figures pass disclosure control.\n"
                 "\n"
                 "Runs the comparison REQUEST.json (see docs/comparisons.md) on the\n"
                 "current store of DIR with the opt-outs in force on --on (default:\n"
                 "today) excluded, and prints one CSV row per area, parent area and\n"
                 "England: codes, names, count, denominator, value, 95%% and 99.8%%\n"
                 "limits, the comparator's value, both comparisons and the funnel\n"
                 "limits. --codelists DIR loads the named codelists the queries use.\n");
}

/* Reads at most limit + 1 bytes of path ("-": standard input) into a
 * malloc'd buffer the caller frees. CC_EIO or CC_ENOMEM. */
static int read_input(const char *path, size_t limit, char **out, size_t *out_len)
{
    FILE *file = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!file)
        return CC_EIO;
    int rc = 0;
    char *data = malloc(limit + 1);
    size_t len = 0;
    if (!data) {
        rc = CC_ENOMEM;
        goto fail;
    }
    while (len < limit + 1) {
        size_t n = fread(data + len, 1, limit + 1 - len, file);
        if (n == 0)
            break;
        len += n;
    }
    if (ferror(file)) {
        rc = CC_EIO;
        goto fail;
    }
    *out = data;
    *out_len = len;
    data = NULL;
fail:
    free(data);
    if (file != stdin)
        fclose(file);
    return rc;
}

/* Writes a CSV field, quoted when it holds a comma, a quote or a newline. */
static void put_field(const char *text)
{
    if (!strpbrk(text, ",\"\n\r")) {
        fputs(text, stdout);
        return;
    }
    putchar('"');
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            putchar('"');
        putchar(*p);
    }
    putchar('"');
}

static void put_number(double x)
{
    if (isnan(x))
        fputs(",", stdout);
    else
        printf(",%.10g", x);
}

static const char *level_name(int level)
{
    switch (level) {
    case CC_AREA_LAD:
        return "lad";
    case CC_AREA_ICB:
        return "icb";
    case CC_AREA_REGION:
        return "region";
    default:
        return "nation";
    }
}

static int print_result(const struct cc_compare_layout *layout,
                        const struct cc_compare_result *result)
{
    printf("level,code,name,status,count,denominator,expected,value,lower95,upper95,lower998,"
           "upper998,comparator_code,comparator_value,comparison95,comparison998,funnel95_lower,"
           "funnel95_upper,funnel998_lower,funnel998_upper\n");
    for (uint32_t u = 0; u < result->n_rows; u++) {
        const struct cc_compare_unit *unit = &layout->units[u];
        const struct cc_compare_row *row = &result->rows[u];
        printf("%s,", level_name(unit->level));
        put_field(unit->code);
        putchar(',');
        put_field(unit->name);
        printf(",%s", cc_compare_status_name(row->status));
        put_number(row->count);
        put_number(row->denominator);
        put_number(row->expected);
        put_number(row->value);
        put_number(row->ci95.lower);
        put_number(row->ci95.upper);
        put_number(row->ci998.lower);
        put_number(row->ci998.upper);
        putchar(',');
        if (unit->comparator != CC_COMPARE_NO_UNIT)
            put_field(layout->units[unit->comparator].code);
        put_number(row->comparator_value);
        printf(",%s,%s", cc_stats_comparison_name(row->comparison95),
               cc_stats_comparison_name(row->comparison998));
        put_number(row->funnel95_lower);
        put_number(row->funnel95_upper);
        put_number(row->funnel998_lower);
        put_number(row->funnel998_upper);
        putchar('\n');
    }
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : CC_EIO;
}

int cc_cmd_compare(int argc, char **argv)
{
    const char *data_dir = NULL, *path = NULL, *codelist_dir = NULL, *on_text = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--data") && i + 1 < argc) {
            data_dir = argv[++i];
        } else if (!strcmp(argv[i], "--codelists") && i + 1 < argc) {
            codelist_dir = argv[++i];
        } else if (!strcmp(argv[i], "--on") && i + 1 < argc) {
            on_text = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "carecount compare: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!data_dir || !path) {
        usage(stderr);
        return 2;
    }
    cc_day on = cc_day_today();
    if (on_text && cc_day_parse(on_text, strlen(on_text), &on) != 0) {
        fprintf(stderr, "carecount compare: --on: not a date YYYY-MM-DD\n");
        return 2;
    }
    gsl_set_error_handler_off();

    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    char *text = NULL;
    size_t len = 0;
    struct cc_compare_decoded decoded = {0};
    cc_codelists *codelists = NULL;
    cc_store *store = NULL;
    sqlite3 *db = NULL;
    cc_optout *optouts = NULL;
    struct cc_dataversion *version = NULL;
    struct cc_compare_raw raw = {0};
    struct cc_compare_result result = {0};
    char errbuf[512] = "", store_path[1024];
    int status = 1;
    uint64_t store_version = 0;

    int rc = read_input(path, 2 * (size_t)limits.max_query_bytes + 1024, &text, &len);
    if (rc) {
        fprintf(stderr, "carecount compare: %s: %s\n", path,
                rc == CC_EIO ? strerror(errno) : cc_strerror(rc));
        goto fail;
    }
    if ((rc = cc_compare_decode_json(text, len, &limits, &decoded, errbuf, sizeof errbuf)) < 0)
        goto fail_message;
    if (codelist_dir) {
        if ((rc = cc_codelists_new(&codelists)) < 0 ||
            (rc = cc_codelists_load_dir(codelists, codelist_dir, errbuf, sizeof errbuf)) < 0)
            goto fail_message;
    }
    if ((rc = cc_ingest_current_store(data_dir, &store_version, store_path, sizeof store_path,
                                      errbuf, sizeof errbuf)) < 0 ||
        (rc = cc_store_load(store_path, CC_STORE_QUERY_ONLY, &store, errbuf, sizeof errbuf)) < 0 ||
        (rc = cc_db_open(data_dir, 0, &db, errbuf, sizeof errbuf)) < 0)
        goto fail_message;
    if ((rc = cc_optout_attach(db, &optouts)) < 0 ||
        (rc = cc_dataversion_publish(store, store_version, optouts, on, &version)) < 0) {
        snprintf(errbuf, sizeof errbuf, "%s: the opt-out register: %s", data_dir, cc_strerror(rc));
        goto fail_message;
    }
    if ((rc = cc_compare_run(version, &decoded.request, codelists, NULL, &raw, errbuf,
                             sizeof errbuf)) < 0)
        goto fail_message;
    /* The operator's check: the exact counts, unprotected (see the header). */
    if ((rc = cc_compare_finish(&raw.layout, &raw.exact, &result)) < 0) {
        snprintf(errbuf, sizeof errbuf, "computing the figures: %s", cc_strerror(rc));
        goto fail_message;
    }
    fprintf(stderr, "carecount compare: EXACT counts, no disclosure control: operator's check "
                    "only, never release\n");
    if ((rc = print_result(&raw.layout, &result)) < 0) {
        snprintf(errbuf, sizeof errbuf, "writing the figures: %s", cc_strerror(rc));
        goto fail_message;
    }
    status = 0;
    goto fail;

fail_message:
    fprintf(stderr, "carecount compare: %s\n", errbuf[0] ? errbuf : cc_strerror(rc));
fail:
    cc_compare_result_free(&result);
    cc_compare_raw_free(&raw);
    cc_dataversion_free(version);
    cc_optout_detach(optouts);
    cc_db_close(db);
    cc_store_free(store);
    cc_codelists_free(codelists);
    cc_compare_decoded_free(&decoded);
    free(text);
    return status;
}
