/*
 * cmd_stats.c: `carecount stats METHOD`, the statistics module as a filter
 * so an analyst can check a figure by hand.
 *
 * Reads the arguments, then streams CSV (with a header row) from standard
 * input through the CSV reader (core/cc_csv.h; the feeds' dialect, strict
 * quoting) into a core/cc_stats_csv.h run, which computes each row's or each
 * group's figure and writes CSV to standard output. Methods and their input
 * columns are documented in usage() below and in docs/statistics.md.
 *
 * It must never echo an input cell in an error message: messages name the
 * line, the column and the reason only. Line numbers are the physical lines
 * records start on (the header is line 1), as the CSV reader counts them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "cc_csv.h"
#include "cc_error.h"
#include "cc_stats_csv.h"

#define PROGRAM "carecount stats"

const char cc_cmd_stats_summary[] =
    "intervals and funnel limits for CSV rows (proportion, rate, dsr, isr, mean, funnel-*)";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: carecount stats METHOD [--confidence LEVEL] [--multiplier M]\n"
        "                       [--columns ROLE=NAME[,ROLE=NAME...]] [--comparator VALUE]\n"
        "                       [--table [--years N]] < in.csv > out.csv\n"
        "\n"
        "Reads CSV with a header row on standard input and writes it back with\n"
        "the columns value, lowercl, uppercl, confidence, statistic and method\n"
        "added, computed as PHE Fingertips / PHEindicatormethods do (formulas\n"
        "and sources: docs/statistics.md).\n"
        "\n"
        "methods and their input columns (ROLE names, also the default column\n"
        "names; rename with --columns, e.g. --columns numerator=deaths):\n"
        "  proportion  numerator, denominator. Wilson score interval; one output\n"
        "              row per input row. Multiplier default 1 (100: percentage).\n"
        "  rate        count, denominator. Crude rate; exact Poisson limits for\n"
        "              counts below 10, Byar's otherwise. Multiplier default\n"
        "              100000. One output row per input row.\n"
        "  dsr         area (optional), age_band, count, population,\n"
        "              standard_population (optional). Directly standardised rate\n"
        "              with Dobson's interval, one row per area (area,total_count,\n"
        "              total_pop,...). Without a standard_population column each\n"
        "              area needs the 19 bands of the 2013 European Standard\n"
        "              Population once each, named 0-4, 5-9, ..., 85-89, 90+.\n"
        "              Not calculated (empty value) below 10 events. An empty or\n"
        "              NA count is 0.\n"
        "              Multiplier default 100000.\n"
        "  isr         area (optional), count, population, reference_count,\n"
        "              reference_population, one row per age band. Indirectly\n"
        "              standardised ratio observed/expected with exact (< 10) or\n"
        "              Byar's limits, one row per area (area,observed,expected,...).\n"
        "              An empty or NA count, population or reference_count is 0.\n"
        "              Multiplier default 1 (100: SMR x 100).\n"
        "  mean        group (optional), value. Mean with a Student's t interval,\n"
        "              one row per group (group,value_sum,value_count,stdev,...).\n"
        "              At least 2 values per group. No multiplier.\n"
        "\n"
        "funnel plots (95%% and 99.8%% limits around the average of all rows, or\n"
        "around --comparator; each input row comes back with value and\n"
        "significance: High (0.001), High (0.025), Low (0.001), Low (0.025) or\n"
        "Not significant):\n"
        "  funnel-proportion  numerator, denominator; also baseline and the four\n"
        "              limits at the row's denominator (lower95_0limit,\n"
        "              upper95_0limit, lower99_8limit, upper99_8limit).\n"
        "  funnel-rate count, denominator; also baseline and the four limits at\n"
        "              the row's denominator. Multiplier default 100000.\n"
        "  funnel-ratio observed, expected (indirectly standardised ratios\n"
        "              around 1); also the four limits at the row's expected\n"
        "              count. Multiplier default 1 (100: SMR x 100).\n"
        "  funnel-dsr  count, rate (the DSR), denominator (optional; needed for\n"
        "              a row of 0 events, whose rate may be empty or NA); also\n"
        "              denominator_derived (multiplier x count / rate), baseline\n"
        "              and the four limits. Below 10 events value, limits and\n"
        "              denominator_derived are empty and the significance is\n"
        "              \"Not applicable for events less than 10 for dsrs\".\n"
        "              Multiplier default 100000 (the rate's).\n"
        "\n"
        "Rows of a group need not be adjacent; groups are written in order of\n"
        "first appearance. Without the optional group column all rows are one\n"
        "group.\n"
        "\n"
        "options:\n"
        "  --confidence LEVEL  0.95 (default), 0.998, or any level in (0, 1);\n"
        "                      95, 99.8 and 95%% are read as percentages.\n"
        "  --multiplier M      scale of value and limits (see each method).\n"
        "  --columns MAP       input column name for each role.\n"
        "  --comparator VALUE  add a column comparison: \"significantly higher\",\n"
        "                      \"similar\" or \"significantly lower\" when VALUE (on\n"
        "                      the scale of value, e.g. the national rate) lies\n"
        "                      below, inside or above the interval; \"not compared\"\n"
        "                      when there is no interval. For funnel methods it is\n"
        "                      the baseline instead.\n"
        "  --table             funnel methods: write the table of 100 points\n"
        "                      PHEindicatormethods' calculate_funnel_limits()\n"
        "                      draws the funnel from (its axis from the rows'\n"
        "                      smallest and largest denominator) instead of the rows.\n"
        "  --years N           with --table, funnel-rate and funnel-dsr: the years\n"
        "                      of data the denominators cover (default 1); the\n"
        "                      table's populations are per year.\n"
        "\n"
        "Bad input stops with a message naming the line (CSV record; the header\n"
        "is line 1) and the column, and exit status 1; usage errors exit 2.\n");
}

/* ---- the command line --------------------------------------------------- */

/* --columns ROLE=NAME[,ROLE=NAME...]; map is cut up in place and its names
 * stay in use. */
static int parse_columns(char *map, struct cc_stats_csv_options *opt)
{
    for (char *item = strtok(map, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            fprintf(stderr, PROGRAM ": --columns wants ROLE=NAME pairs\n");
            return CC_EINVAL;
        }
        *eq = '\0';
        if (cc_stats_csv_map_column(opt, item, eq + 1) < 0) {
            fprintf(stderr, PROGRAM ": %s has no input column role '%s' "
                            "(see --help)\n", opt->method->name, item);
            return CC_EINVAL;
        }
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct cc_stats_csv_options *opt)
{
    const char *method_name = NULL, *multiplier = NULL, *confidence = NULL;
    const char *comparator = NULL, *years = NULL;
    char *columns = NULL;
    int table = 0;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **value = NULL;
        if (!strcmp(arg, "--confidence"))
            value = &confidence;
        else if (!strcmp(arg, "--multiplier"))
            value = &multiplier;
        else if (!strcmp(arg, "--comparator"))
            value = &comparator;
        else if (!strcmp(arg, "--years"))
            value = &years;
        else if (!strcmp(arg, "--table")) {
            table = 1;
            continue;
        } else if (!strcmp(arg, "--columns")) {
            if (i + 1 >= argc)
                goto missing;
            columns = argv[++i];
            continue;
        } else if (arg[0] == '-') {
            fprintf(stderr, PROGRAM ": unknown option '%s' (try --help)\n", arg);
            return CC_EINVAL;
        } else if (!method_name) {
            method_name = arg;
            continue;
        } else {
            fprintf(stderr, PROGRAM ": unexpected argument '%s'\n", arg);
            return CC_EINVAL;
        }
        if (i + 1 >= argc)
            goto missing;
        *value = argv[++i];
        continue;
    missing:
        fprintf(stderr, PROGRAM ": %s needs a value\n", arg);
        return CC_EINVAL;
    }
    if (!method_name) {
        fprintf(stderr, PROGRAM ": which METHOD? (try --help)\n");
        return CC_EINVAL;
    }
    const struct cc_stats_csv_method_info *method = cc_stats_csv_find_method(method_name);
    if (!method) {
        fprintf(stderr, PROGRAM ": unknown method '%s' (one of:", method_name);
        for (size_t m = 0; m < cc_stats_csv_n_methods; m++)
            fprintf(stderr, " %s", cc_stats_csv_methods[m].name);
        fprintf(stderr, ")\n");
        return CC_EINVAL;
    }
    cc_stats_csv_options_init(opt, method);
    if (confidence && method->shape == CC_STATS_CSV_FUNNEL) {
        fprintf(stderr, PROGRAM ": funnel limits are always at 95%% and "
                        "99.8%%; %s takes no --confidence\n", method->name);
        return CC_EINVAL;
    }
    if (confidence && cc_stats_csv_parse_confidence(confidence, &opt->confidence) < 0) {
        fprintf(stderr, PROGRAM ": --confidence wants a level in (0, 1) "
                        "or a percentage below 100\n");
        return CC_EINVAL;
    }
    if (multiplier) {
        if (method->default_multiplier == 0) {
            fprintf(stderr, PROGRAM ": %s takes no --multiplier\n", method->name);
            return CC_EINVAL;
        }
        if (cc_csv_parse_number(multiplier, &opt->multiplier) < 0 || opt->multiplier <= 0) {
            fprintf(stderr, PROGRAM ": --multiplier wants a positive number\n");
            return CC_EINVAL;
        }
    }
    opt->has_comparator = comparator != NULL;
    if (comparator && method->method == CC_STATS_CSV_FUNNEL_RATIO) {
        fprintf(stderr, PROGRAM ": funnel-ratio is always around 1; it "
                        "takes no --comparator\n");
        return CC_EINVAL;
    }
    if (comparator && cc_csv_parse_number(comparator, &opt->comparator) < 0) {
        fprintf(stderr, PROGRAM ": --comparator wants a number\n");
        return CC_EINVAL;
    }
    if (table && method->shape != CC_STATS_CSV_FUNNEL) {
        fprintf(stderr, PROGRAM ": --table is for the funnel methods\n");
        return CC_EINVAL;
    }
    opt->table = table;
    if (years) {
        if (!table || (method->method != CC_STATS_CSV_FUNNEL_RATE &&
                       method->method != CC_STATS_CSV_FUNNEL_DSR)) {
            fprintf(stderr, PROGRAM ": --years is for the table of a rate funnel "
                            "(funnel-rate or funnel-dsr with --table)\n");
            return CC_EINVAL;
        }
        if (cc_csv_parse_number(years, &opt->years_of_data) < 0 || opt->years_of_data <= 0) {
            fprintf(stderr, PROGRAM ": --years wants a positive number\n");
            return CC_EINVAL;
        }
    }
    if (columns)
        return parse_columns(columns, opt);
    return 0;
}

/* ---- streaming ---------------------------------------------------------- */

/* Streams fd through the CSV reader into run: the header, then each record,
 * stopping at the first error (reported on stderr). */
static int stream_records(cc_stats_csv *run, int fd)
{
    cc_csv *csv = NULL;
    struct cc_csv_field *names = NULL;
    int rc = cc_csv_open_fd(fd, &csv);
    if (rc == CC_EPARSE) {
        fprintf(stderr, PROGRAM ": line 1: no header row, or a header that is not "
                        "UTF-8, names a column twice or leaves a name empty\n");
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, PROGRAM ": cannot read standard input (%s)\n", cc_strerror(rc));
        return rc;
    }
    size_t n_columns = cc_csv_n_columns(csv);
    if (!(names = calloc(n_columns, sizeof *names))) {
        rc = CC_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n_columns; i++) {
        names[i].data = cc_csv_column_name(csv, i);
        names[i].len = strlen(names[i].data);
    }
    if ((rc = cc_stats_csv_take(run, 1, names, n_columns)) < 0)
        goto out;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_csv_next(csv, &f, &line)) != 0) {
        if (rc == CC_EPARSE) {
            size_t n_fields;
            int problem = cc_csv_problem(csv, &n_fields);
            if (problem == CC_CSV_FIELD_COUNT)
                fprintf(stderr, PROGRAM ": line %zu: has %zu fields, the header has %zu\n",
                        (size_t)line, n_fields, n_columns);
            else
                fprintf(stderr, PROGRAM ": line %zu: %s\n", (size_t)line,
                        cc_csv_problem_text(problem));
            goto out;
        }
        if (rc < 0) {
            fprintf(stderr, PROGRAM ": line %zu: %s\n", (size_t)line, cc_strerror(rc));
            goto out;
        }
        if ((rc = cc_stats_csv_take(run, (size_t)line, f, n_columns)) < 0)
            goto out;
    }
    rc = 0;
out:
    free(names);
    cc_csv_close(csv);
    return rc;
}

int cc_cmd_stats(int argc, char **argv)
{
    struct cc_stats_csv_options opt;
    cc_stats_csv *run = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    }
    gsl_set_error_handler_off();
    if (parse_options(argc, argv, &opt) < 0)
        return 2;
    if ((rc = cc_stats_csv_open(&opt, stdout, stderr, PROGRAM, &run)) < 0) {
        fprintf(stderr, PROGRAM ": %s\n", cc_strerror(rc));
        return 1;
    }
    rc = stream_records(run, STDIN_FILENO);
    if (rc == 0)
        rc = cc_stats_csv_finish(run);
    cc_stats_csv_close(run);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, PROGRAM ": cannot write standard output\n");
        rc = CC_EIO;
    }
    return rc < 0 ? 1 : 0;
}
