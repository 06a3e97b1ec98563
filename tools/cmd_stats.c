/*
 * cmd_stats.c: `carecount stats METHOD`, the statistics module as a filter
 * so an analyst can check a figure by hand.
 *
 * Reads CSV (with a header row) on standard input, computes each row's or
 * each group's figure with core/cc_stats.c and writes CSV to standard output
 * with value, lowercl, uppercl, confidence, statistic and method added.
 * Methods and their input columns are documented in usage() below and in
 * docs/statistics.md.
 *
 * It must never echo an input cell in an error message: messages name the
 * line, the column and the reason only, so a file that holds something it
 * should not cannot leak it through stderr. Line numbers are the physical
 * lines records start on (the header is line 1), as the CSV reader
 * (core/cc_csv.h) counts them; its dialect is the feeds' (strict quoting).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "cc_array.h"
#include "cc_csv.h"
#include "cc_error.h"
#include "cc_hash.h"
#include "cc_stats.h"

const char cc_cmd_stats_summary[] =
    "intervals and funnel limits for CSV rows (proportion, rate, dsr, isr, mean, funnel-*)";

enum method {
    METHOD_PROPORTION,
    METHOD_RATE,
    METHOD_DSR,
    METHOD_ISR,
    METHOD_MEAN,
    METHOD_FUNNEL_PROPORTION,
    METHOD_FUNNEL_RATE,
    METHOD_FUNNEL_RATIO,
    METHOD_FUNNEL_DSR,
};

/* How a method's output rows relate to its input rows. */
enum shape {
    SHAPE_ROWS,   /* one output row per input row, written as read */
    SHAPE_GROUPS, /* one output row per group, written at the end */
    SHAPE_FUNNEL, /* one output row per input row, written at the end
                     because the baseline is the average of all rows */
};

/* The input columns a method reads, by role; the role is also the default
 * column name. A role marked optional may be absent from the header. */
#define MAX_ROLES 6
struct role {
    const char *name;
    int optional;
};

struct method_info {
    const char *name;
    enum method method;
    enum shape shape;
    double default_multiplier; /* 0: the method takes none */
    struct role roles[MAX_ROLES];
};

/* Role 0 of a grouped method is its group column. */
static const struct method_info methods[] = {
    {"proportion", METHOD_PROPORTION, SHAPE_ROWS, 1,
     {{"numerator", 0}, {"denominator", 0}}},
    {"rate", METHOD_RATE, SHAPE_ROWS, 100000, {{"count", 0}, {"denominator", 0}}},
    {"dsr", METHOD_DSR, SHAPE_GROUPS, 100000,
     {{"area", 1}, {"age_band", 1}, {"count", 0}, {"population", 0},
      {"standard_population", 1}}},
    {"isr", METHOD_ISR, SHAPE_GROUPS, 1,
     {{"area", 1}, {"count", 0}, {"population", 0}, {"reference_count", 0},
      {"reference_population", 0}}},
    {"mean", METHOD_MEAN, SHAPE_GROUPS, 0, {{"group", 1}, {"value", 0}}},
    {"funnel-proportion", METHOD_FUNNEL_PROPORTION, SHAPE_FUNNEL, 1,
     {{"numerator", 0}, {"denominator", 0}}},
    {"funnel-rate", METHOD_FUNNEL_RATE, SHAPE_FUNNEL, 100000,
     {{"count", 0}, {"denominator", 0}}},
    {"funnel-ratio", METHOD_FUNNEL_RATIO, SHAPE_FUNNEL, 1,
     {{"observed", 0}, {"expected", 0}}},
    {"funnel-dsr", METHOD_FUNNEL_DSR, SHAPE_FUNNEL, 100000,
     {{"count", 0}, {"rate", 0}, {"denominator", 1}}},
};

static void usage(FILE *out)
{
    fprintf(out,
        "usage: carecount stats METHOD [--confidence LEVEL] [--multiplier M]\n"
        "                       [--columns ROLE=NAME[,ROLE=NAME...]] [--comparator VALUE]\n"
        "                       < in.csv > out.csv\n"
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
        "\n"
        "Bad input stops with a message naming the line (CSV record; the header\n"
        "is line 1) and the column, and exit status 1; usage errors exit 2.\n");
}

/* ---- the parsed command line ------------------------------------------ */

struct options {
    const struct method_info *method;
    double confidence;
    double multiplier;
    int has_comparator;
    double comparator;  /* on the scale of value, e.g. the national rate */
    const char *column_names[MAX_ROLES];
};

static int parse_number(const char *s, double *out)
{
    char *end;
    if (!*s)
        return CC_EPARSE;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return CC_EPARSE;
    *out = v;
    return 0;
}

static int parse_confidence(const char *s, double *out)
{
    char buf[64];
    size_t len = strlen(s);
    double v;

    if (len == 0 || len >= sizeof buf)
        return CC_EINVAL;
    memcpy(buf, s, len + 1);
    int percent = buf[len - 1] == '%';
    if (percent)
        buf[len - 1] = '\0';
    if (parse_number(buf, &v) < 0)
        return CC_EINVAL;
    if (percent || v > 1)
        v /= 100;
    if (!(v > 0 && v < 1))
        return CC_EINVAL;
    *out = v;
    return 0;
}

static int parse_columns(char *map, struct options *opt)
{
    for (char *item = strtok(map, ","); item; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            fprintf(stderr, "carecount stats: --columns wants ROLE=NAME pairs\n");
            return CC_EINVAL;
        }
        *eq = '\0';
        int found = 0;
        for (int r = 0; r < MAX_ROLES && opt->method->roles[r].name; r++) {
            if (!strcmp(opt->method->roles[r].name, item)) {
                opt->column_names[r] = eq + 1;
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "carecount stats: %s has no input column role '%s' "
                            "(see --help)\n", opt->method->name, item);
            return CC_EINVAL;
        }
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct options *opt)
{
    const char *method_name = NULL, *multiplier = NULL, *confidence = NULL;
    const char *comparator = NULL;
    char *columns = NULL;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char **value = NULL;
        if (!strcmp(arg, "--confidence"))
            value = &confidence;
        else if (!strcmp(arg, "--multiplier"))
            value = &multiplier;
        else if (!strcmp(arg, "--comparator"))
            value = &comparator;
        else if (!strcmp(arg, "--columns")) {
            if (i + 1 >= argc)
                goto missing;
            columns = argv[++i];
            continue;
        } else if (arg[0] == '-') {
            fprintf(stderr, "carecount stats: unknown option '%s' (try --help)\n", arg);
            return CC_EINVAL;
        } else if (!method_name) {
            method_name = arg;
            continue;
        } else {
            fprintf(stderr, "carecount stats: unexpected argument '%s'\n", arg);
            return CC_EINVAL;
        }
        if (i + 1 >= argc)
            goto missing;
        *value = argv[++i];
        continue;
    missing:
        fprintf(stderr, "carecount stats: %s needs a value\n", arg);
        return CC_EINVAL;
    }
    if (!method_name) {
        fprintf(stderr, "carecount stats: which METHOD? (try --help)\n");
        return CC_EINVAL;
    }
    opt->method = NULL;
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
        if (!strcmp(methods[m].name, method_name))
            opt->method = &methods[m];
    if (!opt->method) {
        fprintf(stderr, "carecount stats: unknown method '%s' (one of:", method_name);
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++)
            fprintf(stderr, " %s", methods[m].name);
        fprintf(stderr, ")\n");
        return CC_EINVAL;
    }
    for (int r = 0; r < MAX_ROLES; r++)
        opt->column_names[r] = opt->method->roles[r].name;
    opt->confidence = 0.95;
    if (confidence && opt->method->shape == SHAPE_FUNNEL) {
        fprintf(stderr, "carecount stats: funnel limits are always at 95%% and "
                        "99.8%%; %s takes no --confidence\n", opt->method->name);
        return CC_EINVAL;
    }
    if (confidence && parse_confidence(confidence, &opt->confidence) < 0) {
        fprintf(stderr, "carecount stats: --confidence wants a level in (0, 1) "
                        "or a percentage below 100\n");
        return CC_EINVAL;
    }
    opt->multiplier = opt->method->default_multiplier;
    if (multiplier) {
        if (opt->method->default_multiplier == 0) {
            fprintf(stderr, "carecount stats: %s takes no --multiplier\n",
                    opt->method->name);
            return CC_EINVAL;
        }
        if (parse_number(multiplier, &opt->multiplier) < 0 || opt->multiplier <= 0) {
            fprintf(stderr, "carecount stats: --multiplier wants a positive number\n");
            return CC_EINVAL;
        }
    }
    opt->has_comparator = comparator != NULL;
    if (comparator && opt->method->method == METHOD_FUNNEL_RATIO) {
        fprintf(stderr, "carecount stats: funnel-ratio is always around 1; it "
                        "takes no --comparator\n");
        return CC_EINVAL;
    }
    if (comparator && parse_number(comparator, &opt->comparator) < 0) {
        fprintf(stderr, "carecount stats: --comparator wants a number\n");
        return CC_EINVAL;
    }
    if (columns)
        return parse_columns(columns, opt);
    return 0;
}

/* ---- CSV output -------------------------------------------------------- */

/* Writes one field, quoted only when it must be (RFC 4180). */
static void put_field(FILE *out, const char *s, size_t len, int first)
{
    if (!first)
        fputc(',', out);
    int quote = len && (s[0] == ' ' || s[len - 1] == ' ');
    for (size_t i = 0; i < len && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fwrite(s, 1, len, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"')
            fputc('"', out);
        fputc(s[i], out);
    }
    fputc('"', out);
}

static void put_string(FILE *out, const char *s, int first)
{
    put_field(out, s, strlen(s), first);
}

/* Writes a number, or an empty field for NaN (not calculated). */
static void put_number(FILE *out, double v)
{
    fputc(',', out);
    if (isfinite(v))
        fprintf(out, "%.12g", v);
}

/* ",value,lowercl,uppercl,confidence,statistic,method", then
 * ",comparison" if a comparator was given, and the newline. */
static void put_interval(FILE *out, const struct options *opt,
                         const struct cc_interval *ci, const char *statistic)
{
    char level[32];
    put_number(out, ci->value);
    put_number(out, ci->lower);
    put_number(out, ci->upper);
    snprintf(level, sizeof level, "%g%%", ci->confidence * 100);
    put_string(out, level, 0);
    put_string(out, statistic, 0);
    put_string(out, cc_stats_method_name(ci->method), 0);
    if (opt->has_comparator)
        put_string(out, cc_stats_comparison_name(cc_stats_compare(ci, opt->comparator)), 0);
    fputc('\n', out);
}

static const char interval_header[] = "value,lowercl,uppercl,confidence,statistic,method";

/* Ends a header line: the added columns and the newline. */
static void put_interval_header(FILE *out, const struct options *opt)
{
    fprintf(out, "%s%s\n", interval_header, opt->has_comparator ? ",comparison" : "");
}

/* Starts a grouped output row with its group name, if the input had one. */
static void put_group_name(FILE *out, int has_group_column, const char *name)
{
    if (has_group_column) {
        put_string(out, name, 1);
        fputc(',', out);
    }
}

/* ---- groups ------------------------------------------------------------ */

#define ROW_STRIDE 4 /* numbers kept per input row of a grouped method */

/* The rows of one group, kept until the input ends. */
struct group {
    char *name;
    size_t first_line;
    size_t n_rows;
    size_t capacity;
    double *numbers;   /* n_rows * ROW_STRIDE */
    uint32_t band_mask; /* dsr with ESP 2013: bands seen */
};

/* Groups in order of first appearance, found by name through an index
 * table (cc_hash.h). */
struct group_table {
    struct group *groups;
    size_t n_groups;
    size_t capacity;
    struct cc_index_table index;
};

static uint64_t hash_group(const void *table, uint32_t i)
{
    const struct group_table *t = table;
    return cc_hash_text(t->groups[i].name, SIZE_MAX, 0);
}

static int group_matches(const void *table, uint32_t i, const void *name)
{
    const struct group_table *t = table;
    return !strcmp(t->groups[i].name, name);
}

/* Finds or adds the group called name; *out points into the table until the
 * next call. */
static int table_find(struct group_table *t, const char *name, size_t line,
                      struct group **out)
{
    uint64_t hash = cc_hash_text(name, SIZE_MAX, 0);
    int64_t found = cc_index_table_find(&t->index, hash, group_matches, t, name);
    if (found >= 0) {
        *out = &t->groups[found];
        return 0;
    }
    if (t->n_groups >= UINT32_MAX - 1 ||
        cc_index_table_reserve(&t->index, t->n_groups, hash_group, t) ||
        cc_array_reserve(&t->groups, &t->capacity, t->n_groups + 1, sizeof *t->groups))
        return CC_ENOMEM;
    struct group *g = &t->groups[t->n_groups];
    memset(g, 0, sizeof *g);
    if (!(g->name = strdup(name)))
        return CC_ENOMEM;
    g->first_line = line;
    cc_index_table_insert(&t->index, hash, (uint32_t)t->n_groups++);
    *out = g;
    return 0;
}

static int group_add_row(struct group *g, const double numbers[ROW_STRIDE])
{
    if (cc_array_reserve(&g->numbers, &g->capacity, g->n_rows + 1,
                         ROW_STRIDE * sizeof *g->numbers))
        return CC_ENOMEM;
    memcpy(g->numbers + g->n_rows * ROW_STRIDE, numbers, ROW_STRIDE * sizeof *numbers);
    g->n_rows++;
    return 0;
}

static void table_free(struct group_table *t)
{
    for (size_t i = 0; i < t->n_groups; i++) {
        free(t->groups[i].name);
        free(t->groups[i].numbers);
    }
    free(t->groups);
    cc_index_table_free(&t->index);
}

/* ---- reading ------------------------------------------------------------ */

/* An input row of a funnel method, kept until the baseline is known. */
struct funnel_row {
    char *echo;         /* the row's input fields, CSV-encoded */
    size_t line;
    double numerator;   /* count or observed */
    double denominator; /* or expected; for funnel-dsr the derived
                           population, NaN for 0 events */
    double rate;        /* funnel-dsr: the DSR (NaN for 0 events) */
};

/* The state of one run: the fields of the record being parsed, the header,
 * and what has been computed. */
struct run {
    struct options *opt;
    FILE *out;
    char *row_bytes;     /* the current record's fields, each NUL-terminated */
    size_t row_used, row_capacity;
    size_t *field_offsets;
    size_t n_fields, fields_capacity;
    size_t line;         /* CSV record number of the current record */
    char **header;       /* the header's column names */
    size_t n_columns;
    int role_column[MAX_ROLES]; /* index in the header, -1 if absent */
    struct group_table groups;
    struct funnel_row *funnel_rows;
    size_t n_funnel_rows, funnel_capacity;
    int rc;              /* first error; later records are ignored */
};

static const char *field(const struct run *run, size_t i)
{
    return run->row_bytes + run->field_offsets[i];
}

/* Appends one field of the current record to run->row_bytes, NUL-terminated. */
static void keep_field(struct run *run, const char *s, size_t len)
{
    if (run->rc)
        return;
    if (cc_array_reserve(&run->row_bytes, &run->row_capacity, run->row_used + len + 1, 1) ||
        cc_array_reserve(&run->field_offsets, &run->fields_capacity, run->n_fields + 1,
                         sizeof *run->field_offsets)) {
        fprintf(stderr, "carecount stats: out of memory at line %zu\n", run->line);
        run->rc = CC_ENOMEM;
        return;
    }
    run->field_offsets[run->n_fields++] = run->row_used;
    if (len)
        memcpy(run->row_bytes + run->row_used, s, len);
    run->row_bytes[run->row_used + len] = '\0';
    run->row_used += len + 1;
}

static int fail_line(struct run *run, const char *reason)
{
    fprintf(stderr, "carecount stats: line %zu: %s\n", run->line, reason);
    return CC_EPARSE;
}

static int fail_column(struct run *run, int role, const char *reason)
{
    int column = run->role_column[role];
    fprintf(stderr, "carecount stats: line %zu, column '%s' (%d): %s\n", run->line,
            run->header[column], column + 1, reason);
    return CC_EPARSE;
}

static int take_header(struct run *run)
{
    const struct method_info *m = run->opt->method;

    if (!(run->header = calloc(run->n_fields, sizeof *run->header)))
        return CC_ENOMEM;
    run->n_columns = run->n_fields;
    for (size_t i = 0; i < run->n_fields; i++) {
        const char *name = field(run, i);
        /* Spreadsheets often begin a CSV file with a UTF-8 byte order mark. */
        if (i == 0 && !strncmp(name, "\xEF\xBB\xBF", 3))
            name += 3;
        if (!(run->header[i] = strdup(name)))
            return CC_ENOMEM;
    }
    for (int r = 0; r < MAX_ROLES; r++) {
        run->role_column[r] = -1;
        if (!m->roles[r].name)
            continue;
        for (size_t i = 0; i < run->n_columns; i++) {
            if (!strcmp(run->header[i], run->opt->column_names[r])) {
                if (run->role_column[r] >= 0)
                    return fail_line(run, "the header names a column twice");
                run->role_column[r] = (int)i;
            }
        }
        if (run->role_column[r] < 0 && !m->roles[r].optional) {
            fprintf(stderr, "carecount stats: line 1: %s needs a column '%s' "
                            "(see --help, or map it with --columns %s=NAME)\n",
                    m->name, run->opt->column_names[r], m->roles[r].name);
            return CC_EPARSE;
        }
    }
    /* dsr bands come from the standard population column if given, or else
     * must be named in age_band. */
    if (m->method == METHOD_DSR && run->role_column[4] < 0 && run->role_column[1] < 0) {
        fprintf(stderr, "carecount stats: line 1: dsr needs a column '%s' "
                        "(2013 European Standard Population band) or '%s'\n",
                run->opt->column_names[1], run->opt->column_names[4]);
        return CC_EPARSE;
    }
    if (m->shape == SHAPE_ROWS) {
        for (size_t i = 0; i < run->n_columns; i++)
            put_string(run->out, run->header[i], i == 0);
        fputc(',', run->out);
        put_interval_header(run->out, run->opt);
    }
    return 0;
}

/* Parses an ESP 2013 band name ("0-4", "05-09", "85-89", "90+"): its index,
 * or -1. */
static int esp2013_band_from_name(const char *s)
{
    char *end;
    errno = 0;
    long low = strtol(s, &end, 10);
    if (end == s || errno || low < 0 || low % 5)
        return -1;
    if (!strcmp(end, "+"))
        return low == 90 ? CC_STATS_ESP2013_BANDS - 1 : -1;
    if (*end != '-')
        return -1;
    const char *high_text = end + 1;
    long high = strtol(high_text, &end, 10);
    if (end == high_text || *end || high != low + 4 || low > 85)
        return -1;
    return (int)(low / 5);
}

static int number_for_role(struct run *run, int role, double *out)
{
    if (run->role_column[role] < 0) {
        *out = NAN;
        return 0;
    }
    if (parse_number(field(run, (size_t)run->role_column[role]), out) < 0)
        return fail_column(run, role, "not a number");
    return 0;
}

/* 1 if the role's cell is missing as R writes it: empty or NA. */
static int role_is_missing(const struct run *run, int role)
{
    if (run->role_column[role] < 0)
        return 1;
    const char *s = field(run, (size_t)run->role_column[role]);
    return !*s || !strcmp(s, "NA");
}

/* As number_for_role(), but a missing cell (empty or NA) is 0, where
 * PHEindicatormethods takes it so (na.zero() or sum(na.rm = TRUE)). */
static int count_for_role(struct run *run, int role, double *out)
{
    if (role_is_missing(run, role)) {
        *out = 0;
        return 0;
    }
    return number_for_role(run, role, out);
}

/* Handles one data record of proportion or rate: computes and writes it. */
static int take_row_figure(struct run *run)
{
    const struct options *opt = run->opt;
    double numerator, denominator;
    struct cc_interval ci = {0};
    char statistic[64];
    int rc;

    if ((rc = number_for_role(run, 0, &numerator)) < 0 ||
        (rc = number_for_role(run, 1, &denominator)) < 0)
        return rc;
    if (opt->method->method == METHOD_PROPORTION) {
        rc = cc_stats_proportion(numerator, denominator, opt->confidence,
                                 opt->multiplier, &ci);
        if (rc == CC_EINVAL)
            return fail_line(run, "a proportion needs 0 <= numerator <= "
                                  "denominator and denominator > 0");
        if (opt->multiplier == 100)
            snprintf(statistic, sizeof statistic, "percentage");
        else
            snprintf(statistic, sizeof statistic, "proportion of %.12g", opt->multiplier);
    } else {
        rc = cc_stats_rate(numerator, denominator, opt->confidence, opt->multiplier, &ci);
        if (rc == CC_EINVAL)
            return fail_line(run, "a rate needs count >= 0 and denominator > 0");
        snprintf(statistic, sizeof statistic, "rate per %.12g", opt->multiplier);
    }
    if (rc < 0)
        return fail_line(run, cc_strerror(rc));
    for (size_t i = 0; i < run->n_fields; i++)
        put_field(run->out, field(run, i), strlen(field(run, i)), i == 0);
    put_interval(run->out, run->opt, &ci, statistic);
    return 0;
}

/* Handles one data record of a grouped method: keeps its numbers. */
static int take_group_row(struct run *run)
{
    const struct method_info *m = run->opt->method;
    double numbers[ROW_STRIDE] = {0, 0, 0, 0};
    struct group *g;
    int rc;

    const char *name = run->role_column[0] >= 0 ? field(run, (size_t)run->role_column[0]) : "";
    if ((rc = table_find(&run->groups, name, run->line, &g)) < 0)
        return rc;
    switch (m->method) {
    case METHOD_DSR:
        if ((rc = count_for_role(run, 2, &numbers[0])) < 0 ||
            (rc = number_for_role(run, 3, &numbers[1])) < 0)
            return rc;
        if (run->role_column[4] >= 0) {
            if ((rc = number_for_role(run, 4, &numbers[2])) < 0)
                return rc;
        } else {
            int band = esp2013_band_from_name(field(run, (size_t)run->role_column[1]));
            if (band < 0)
                return fail_column(run, 1, "not a 2013 European Standard Population "
                                           "band (0-4, 5-9, ..., 85-89, 90+)");
            if (g->band_mask & (UINT32_C(1) << band))
                return fail_column(run, 1, "this age band appears twice for the area");
            g->band_mask |= UINT32_C(1) << band;
            numbers[2] = cc_stats_esp2013[band];
        }
        break;
    case METHOD_ISR:
        /* count, population and reference_count: NA is 0 (the package's
         * sum(na.rm = TRUE) and na.zero()); reference_population must be
         * given. */
        for (int r = 1; r <= 3; r++)
            if ((rc = count_for_role(run, r, &numbers[r - 1])) < 0)
                return rc;
        if ((rc = number_for_role(run, 4, &numbers[3])) < 0)
            return rc;
        break;
    case METHOD_MEAN:
        if ((rc = number_for_role(run, 1, &numbers[0])) < 0)
            return rc;
        break;
    default:
        return CC_EINTERNAL;
    }
    return group_add_row(g, numbers);
}

static int take_funnel_row(struct run *run);

/* Handles the record whose fields are in run->row_bytes (the header first),
 * then forgets them. */
static void take_record(struct run *run)
{
    if (run->rc)
        return;
    if (!run->header)
        run->rc = take_header(run);
    else if (run->opt->method->shape == SHAPE_GROUPS)
        run->rc = take_group_row(run);
    else if (run->opt->method->shape == SHAPE_FUNNEL)
        run->rc = take_funnel_row(run);
    else
        run->rc = take_row_figure(run);
    run->n_fields = 0;
    run->row_used = 0;
}

/* ---- funnel plots ------------------------------------------------------- */

/* Reads a funnel-dsr row: its events, its DSR and the population it stands
 * for (PHEindicatormethods' denominator_derived). A row of 0 events needs a
 * denominator > 0 (the package's rule) and may leave its rate empty; it
 * stands for no population and counts towards the average's events only. */
static int take_funnel_dsr_numbers(struct run *run, struct funnel_row *row)
{
    int rc;

    if ((rc = number_for_role(run, 0, &row->numerator)) < 0)
        return rc;
    if (row->numerator < 0)
        return fail_column(run, 0, "a funnel needs a count >= 0");
    if (row->numerator == 0) {
        double denominator;
        if (run->role_column[2] < 0)
            return fail_line(run, "a dsr of 0 events needs a denominator column");
        if ((rc = number_for_role(run, 2, &denominator)) < 0)
            return rc;
        if (!(denominator > 0))
            return fail_column(run, 2, "a dsr of 0 events needs a denominator > 0");
        if (!role_is_missing(run, 1) && (rc = number_for_role(run, 1, &row->rate)) < 0)
            return rc;
        row->rate = NAN;
        row->denominator = NAN;
        return 0;
    }
    if ((rc = number_for_role(run, 1, &row->rate)) < 0)
        return rc;
    if (cc_stats_funnel_dsr_population(row->numerator, row->rate, run->opt->multiplier,
                                       &row->denominator) < 0)
        return fail_column(run, 1, "a dsr of events > 0 needs a rate > 0");
    return 0;
}

/* Handles one data record of a funnel method: checks and keeps it. */
static int take_funnel_row(struct run *run)
{
    struct funnel_row row = {NULL, run->line, 0, 0, NAN};
    char *echo = NULL;
    size_t echo_len = 0;
    int rc;

    if (run->opt->method->method == METHOD_FUNNEL_DSR) {
        if ((rc = take_funnel_dsr_numbers(run, &row)) < 0)
            return rc;
    } else {
        if ((rc = number_for_role(run, 0, &row.numerator)) < 0 ||
            (rc = number_for_role(run, 1, &row.denominator)) < 0)
            return rc;
        if (row.numerator < 0 || row.denominator <= 0)
            return fail_line(run, "a funnel needs a numerator >= 0 and a denominator > 0");
    }
    if (run->opt->method->method == METHOD_FUNNEL_PROPORTION &&
        row.numerator > row.denominator)
        return fail_line(run, "a proportion needs numerator <= denominator");
    if (cc_array_reserve(&run->funnel_rows, &run->funnel_capacity, run->n_funnel_rows + 1,
                         sizeof *run->funnel_rows))
        return CC_ENOMEM;
    FILE *stream = open_memstream(&echo, &echo_len);
    if (!stream)
        return CC_ENOMEM;
    for (size_t i = 0; i < run->n_fields; i++)
        put_field(stream, field(run, i), strlen(field(run, i)), i == 0);
    if (fclose(stream) != 0) {
        free(echo);
        return CC_ENOMEM;
    }
    row.echo = echo;
    run->funnel_rows[run->n_funnel_rows++] = row;
    return 0;
}

/* Writes every kept row with its funnel columns, around the average of all
 * rows (numerators over denominators; for funnel-dsr over the populations
 * the rows with events stand for) or the --comparator value. */
static int write_funnel(struct run *run)
{
    const struct options *opt = run->opt;
    enum method method = opt->method->method;
    double numerators = 0, denominators = 0, baseline = 1;

    for (size_t i = 0; i < run->n_funnel_rows; i++) {
        numerators += run->funnel_rows[i].numerator;
        if (!isnan(run->funnel_rows[i].denominator))
            denominators += run->funnel_rows[i].denominator;
    }
    if (method != METHOD_FUNNEL_RATIO)
        baseline = opt->has_comparator ? opt->comparator / opt->multiplier
                                       : numerators / denominators;
    if (method == METHOD_FUNNEL_PROPORTION && !(baseline >= 0 && baseline <= 1)) {
        fprintf(stderr, "carecount stats: the funnel's baseline must be a proportion "
                        "between 0 and the multiplier\n");
        return CC_EINVAL;
    }
    if ((method == METHOD_FUNNEL_RATE || method == METHOD_FUNNEL_DSR) &&
        !(baseline > 0 && isfinite(baseline))) {
        fprintf(stderr, "carecount stats: a rate funnel needs a baseline above 0\n");
        return CC_EINVAL;
    }
    for (size_t i = 0; i < run->n_columns; i++)
        put_string(run->out, run->header[i], i == 0);
    fprintf(run->out, ",value%s%s,lower95_0limit,upper95_0limit,lower99_8limit,"
                      "upper99_8limit,significance\n",
            method == METHOD_FUNNEL_DSR ? ",denominator_derived" : "",
            method == METHOD_FUNNEL_RATIO ? "" : ",baseline");
    for (size_t i = 0; i < run->n_funnel_rows; i++) {
        const struct funnel_row *row = &run->funnel_rows[i];
        enum cc_stats_funnel_significance significance;
        struct cc_funnel_point two = {NAN, NAN, NAN, NAN}, three = {NAN, NAN, NAN, NAN};
        double value = row->numerator / row->denominator * opt->multiplier;
        int drawn = 1, rc;

        switch (method) {
        case METHOD_FUNNEL_PROPORTION:
            if ((rc = cc_stats_funnel_proportion(baseline, row->denominator, 0.95,
                                                 opt->multiplier, &two)) == 0 &&
                (rc = cc_stats_funnel_proportion(baseline, row->denominator, 0.998,
                                                 opt->multiplier, &three)) == 0)
                rc = cc_stats_funnel_significance_proportion(
                    row->numerator, row->denominator, baseline, &significance);
            break;
        case METHOD_FUNNEL_RATIO:
            if ((rc = cc_stats_funnel_ratio_at(row->denominator, 0.95, opt->multiplier,
                                               &two)) == 0 &&
                (rc = cc_stats_funnel_ratio_at(row->denominator, 0.998, opt->multiplier,
                                               &three)) == 0)
                rc = cc_stats_funnel_significance_poisson(row->numerator, row->denominator,
                                                          &significance);
            break;
        case METHOD_FUNNEL_RATE:
            if ((rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.95,
                                              opt->multiplier, &two)) == 0 &&
                (rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.998,
                                              opt->multiplier, &three)) == 0)
                rc = cc_stats_funnel_significance_poisson(
                    row->numerator, row->denominator * baseline, &significance);
            break;
        default: /* METHOD_FUNNEL_DSR */
            /* Below 10 events a DSR is not drawn (calculate_funnel_points). */
            drawn = row->numerator >= CC_STATS_FUNNEL_DSR_MIN_EVENTS;
            value = drawn ? row->rate : NAN;
            rc = 0;
            if (drawn &&
                (rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.95,
                                              opt->multiplier, &two)) == 0)
                rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.998,
                                             opt->multiplier, &three);
            if (rc == 0)
                rc = cc_stats_funnel_significance_dsr(row->numerator, row->denominator,
                                                      baseline, &significance);
            break;
        }
        if (rc < 0) {
            fprintf(stderr, "carecount stats: line %zu: %s\n", row->line,
                    cc_strerror(rc));
            return rc;
        }
        fputs(row->echo, run->out);
        put_number(run->out, value);
        if (method == METHOD_FUNNEL_DSR)
            put_number(run->out, drawn ? row->denominator : NAN);
        if (method != METHOD_FUNNEL_RATIO)
            put_number(run->out, baseline * opt->multiplier);
        put_number(run->out, two.lower_limit);
        put_number(run->out, two.upper_limit);
        put_number(run->out, three.lower_limit);
        put_number(run->out, three.upper_limit);
        put_string(run->out, cc_stats_funnel_significance_name(significance), 0);
        fputc('\n', run->out);
    }
    return 0;
}

/* ---- grouped results ---------------------------------------------------- */

/* Copies column `column` of a group's rows into a new array; caller frees. */
static double *group_column(const struct group *g, int column)
{
    double *values = malloc((g->n_rows ? g->n_rows : 1) * sizeof *values);
    if (values)
        for (size_t i = 0; i < g->n_rows; i++)
            values[i] = g->numbers[i * ROW_STRIDE + column];
    return values;
}

static int fail_group(const struct group *g, const char *reason)
{
    fprintf(stderr, "carecount stats: the group first seen at line %zu: %s\n",
            g->first_line, reason);
    return CC_EPARSE;
}

static int write_dsr(struct run *run, const struct group *g)
{
    const struct options *opt = run->opt;
    double *counts = NULL, *populations = NULL, *weights = NULL;
    double total_count = 0, total_population = 0;
    struct cc_interval ci = {0};
    char statistic[64];
    int rc = CC_ENOMEM;

    if (run->role_column[4] < 0 && g->n_rows != CC_STATS_ESP2013_BANDS) {
        rc = fail_group(g, "needs all 19 bands of the 2013 European Standard "
                           "Population (0-4, 5-9, ..., 85-89, 90+)");
        goto out;
    }
    if (!(counts = group_column(g, 0)) || !(populations = group_column(g, 1)) ||
        !(weights = group_column(g, 2)))
        goto out;
    for (size_t i = 0; i < g->n_rows; i++)
        total_population += populations[i];
    rc = cc_stats_dsr(g->n_rows, counts, populations, weights, opt->confidence,
                      opt->multiplier, &ci, &total_count);
    if (rc == CC_EINVAL) {
        rc = fail_group(g, "a dsr needs counts >= 0, populations > 0 and "
                           "standard populations >= 0, not all 0");
        goto out;
    }
    if (rc == CC_ERANGE)
        snprintf(statistic, sizeof statistic, "dsr NA for total count < 10");
    else if (rc == 0)
        snprintf(statistic, sizeof statistic, "dsr per %.12g", opt->multiplier);
    else {
        rc = fail_group(g, cc_strerror(rc));
        goto out;
    }
    put_group_name(run->out, run->role_column[0] >= 0, g->name);
    fprintf(run->out, "%.12g", total_count);
    put_number(run->out, total_population);
    put_interval(run->out, run->opt, &ci, statistic);
    rc = 0;
out:
    free(counts);
    free(populations);
    free(weights);
    return rc;
}

static int write_isr(struct run *run, const struct group *g)
{
    const struct options *opt = run->opt;
    double *populations = NULL, *reference_counts = NULL, *reference_populations = NULL;
    double observed = 0, expected;
    struct cc_interval ci = {0};
    char statistic[80];
    int rc = CC_ENOMEM;

    if (!(populations = group_column(g, 1)) || !(reference_counts = group_column(g, 2)) ||
        !(reference_populations = group_column(g, 3)))
        goto out;
    for (size_t i = 0; i < g->n_rows; i++)
        observed += g->numbers[i * ROW_STRIDE];
    rc = cc_stats_expected(g->n_rows, populations, reference_counts,
                           reference_populations, &expected);
    if (rc == 0)
        rc = cc_stats_isr(observed, expected, opt->confidence, opt->multiplier, &ci);
    if (rc == CC_EINVAL) {
        rc = fail_group(g, "an isr needs counts and populations >= 0, reference "
                           "populations > 0 and an expected count > 0");
        goto out;
    }
    if (rc < 0) {
        rc = fail_group(g, cc_strerror(rc));
        goto out;
    }
    snprintf(statistic, sizeof statistic, "indirectly standardised ratio x %.12g",
             opt->multiplier);
    put_group_name(run->out, run->role_column[0] >= 0, g->name);
    fprintf(run->out, "%.12g", observed);
    put_number(run->out, expected);
    put_interval(run->out, run->opt, &ci, statistic);
    rc = 0;
out:
    free(populations);
    free(reference_counts);
    free(reference_populations);
    return rc;
}

static int write_mean(struct run *run, const struct group *g)
{
    double *values = NULL, sum = 0, sd;
    struct cc_interval ci = {0};
    int rc = CC_ENOMEM;

    if (!(values = group_column(g, 0)))
        goto out;
    for (size_t i = 0; i < g->n_rows; i++)
        sum += values[i];
    rc = cc_stats_mean(g->n_rows, values, run->opt->confidence, &ci, &sd);
    if (rc < 0) {
        rc = fail_group(g, rc == CC_EINVAL ? "a mean needs at least 2 values"
                                           : cc_strerror(rc));
        goto out;
    }
    put_group_name(run->out, run->role_column[0] >= 0, g->name);
    fprintf(run->out, "%.12g", sum);
    put_number(run->out, (double)g->n_rows);
    put_number(run->out, sd);
    put_interval(run->out, run->opt, &ci, "mean");
    rc = 0;
out:
    free(values);
    return rc;
}

static int write_groups(struct run *run)
{
    const struct method_info *m = run->opt->method;

    if (run->role_column[0] >= 0)
        put_group_name(run->out, 1, run->header[run->role_column[0]]);
    switch (m->method) {
    case METHOD_DSR: fprintf(run->out, "total_count,total_pop,"); break;
    case METHOD_ISR: fprintf(run->out, "observed,expected,"); break;
    default: fprintf(run->out, "value_sum,value_count,stdev,"); break;
    }
    put_interval_header(run->out, run->opt);
    for (size_t i = 0; i < run->groups.n_groups; i++) {
        const struct group *g = &run->groups.groups[i];
        int rc = m->method == METHOD_DSR   ? write_dsr(run, g)
             : m->method == METHOD_ISR ? write_isr(run, g)
                                       : write_mean(run, g);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads all of fd through the CSV reader (core/cc_csv.h), writing results
 * to run->out as it goes (row methods) or at the end (grouped and funnel
 * methods). */
static int run_stats(struct run *run, int fd)
{
    cc_csv *csv = NULL;
    int rc = cc_csv_open_fd(fd, &csv);
    if (rc == CC_EPARSE) {
        fprintf(stderr, "carecount stats: line 1: no header row, or a header that is not "
                        "UTF-8, names a column twice or leaves a name empty\n");
        return rc;
    }
    if (rc < 0) {
        fprintf(stderr, "carecount stats: cannot read standard input (%s)\n", cc_strerror(rc));
        return rc;
    }
    run->line = 1;
    for (size_t i = 0; i < cc_csv_n_columns(csv); i++)
        keep_field(run, cc_csv_column_name(csv, i), strlen(cc_csv_column_name(csv, i)));
    take_record(run);
    const struct cc_csv_field *f;
    uint64_t line;
    while (!run->rc && (rc = cc_csv_next(csv, &f, &line)) != 0) {
        run->line = (size_t)line;
        if (rc == CC_EPARSE) {
            size_t n_fields;
            int problem = cc_csv_problem(csv, &n_fields);
            char reason[160];
            if (problem == CC_CSV_FIELD_COUNT)
                snprintf(reason, sizeof reason, "has %zu fields, the header has %zu", n_fields,
                         run->n_columns);
            else
                snprintf(reason, sizeof reason, "%s", cc_csv_problem_text(problem));
            run->rc = fail_line(run, reason);
        } else if (rc < 0) {
            fprintf(stderr, "carecount stats: line %zu: %s\n", run->line, cc_strerror(rc));
            run->rc = rc;
        } else {
            for (size_t i = 0; i < run->n_columns; i++)
                keep_field(run, f[i].data, f[i].len);
            take_record(run);
        }
    }
    cc_csv_close(csv);
    if ((rc = run->rc) < 0)
        return rc;
    if (run->opt->method->shape == SHAPE_GROUPS)
        rc = write_groups(run);
    else if (run->opt->method->shape == SHAPE_FUNNEL)
        rc = write_funnel(run);
    return rc;
}

int cc_cmd_stats(int argc, char **argv)
{
    struct options opt;
    struct run run;
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
    memset(&run, 0, sizeof run);
    run.opt = &opt;
    run.out = stdout;
    rc = run_stats(&run, STDIN_FILENO);
    table_free(&run.groups);
    for (size_t i = 0; i < run.n_funnel_rows; i++)
        free(run.funnel_rows[i].echo);
    free(run.funnel_rows);
    if (run.header)
        for (size_t i = 0; i < run.n_columns; i++)
            free(run.header[i]);
    free(run.header);
    free(run.row_bytes);
    free(run.field_offsets);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "carecount stats: cannot write standard output\n");
        rc = CC_EIO;
    }
    return rc < 0 ? 1 : 0;
}
