/*
 * cc_stats_csv.c: carecount stats' methods over CSV records (see
 * cc_stats_csv.h): each record's numbers by role, the groups and funnel rows
 * kept until the input ends, and the output rows, computed by cc_stats.c.
 *
 * Must never: echo an input cell in an error message (line, column and
 * reason only).
 */
#include "cc_stats_csv.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_ageband.h"
#include "cc_array.h"
#include "cc_error.h"
#include "cc_hash.h"
#include "cc_stats.h"

const struct cc_stats_csv_method_info cc_stats_csv_methods[] = {
    {"proportion", CC_STATS_CSV_PROPORTION, CC_STATS_CSV_ROWS, 1,
     {{"numerator", 0}, {"denominator", 0}}},
    {"rate", CC_STATS_CSV_RATE, CC_STATS_CSV_ROWS, 100000, {{"count", 0}, {"denominator", 0}}},
    {"dsr", CC_STATS_CSV_DSR, CC_STATS_CSV_GROUPS, 100000,
     {{"area", 1}, {"age_band", 1}, {"count", 0}, {"population", 0},
      {"standard_population", 1}}},
    {"isr", CC_STATS_CSV_ISR, CC_STATS_CSV_GROUPS, 1,
     {{"area", 1}, {"count", 0}, {"population", 0}, {"reference_count", 0},
      {"reference_population", 0}}},
    {"mean", CC_STATS_CSV_MEAN, CC_STATS_CSV_GROUPS, 0, {{"group", 1}, {"value", 0}}},
    {"funnel-proportion", CC_STATS_CSV_FUNNEL_PROPORTION, CC_STATS_CSV_FUNNEL, 1,
     {{"numerator", 0}, {"denominator", 0}}},
    {"funnel-rate", CC_STATS_CSV_FUNNEL_RATE, CC_STATS_CSV_FUNNEL, 100000,
     {{"count", 0}, {"denominator", 0}}},
    {"funnel-ratio", CC_STATS_CSV_FUNNEL_RATIO, CC_STATS_CSV_FUNNEL, 1,
     {{"observed", 0}, {"expected", 0}}},
    {"funnel-dsr", CC_STATS_CSV_FUNNEL_DSR, CC_STATS_CSV_FUNNEL, 100000,
     {{"count", 0}, {"rate", 0}, {"denominator", 1}}},
};

const size_t cc_stats_csv_n_methods =
    sizeof cc_stats_csv_methods / sizeof cc_stats_csv_methods[0];

const struct cc_stats_csv_method_info *cc_stats_csv_find_method(const char *name)
{
    for (size_t m = 0; m < cc_stats_csv_n_methods; m++)
        if (!strcmp(cc_stats_csv_methods[m].name, name))
            return &cc_stats_csv_methods[m];
    return NULL;
}

void cc_stats_csv_options_init(struct cc_stats_csv_options *opt,
                               const struct cc_stats_csv_method_info *method)
{
    memset(opt, 0, sizeof *opt);
    opt->method = method;
    opt->confidence = 0.95;
    opt->multiplier = method->default_multiplier;
    opt->years_of_data = 1;
    for (int r = 0; r < CC_STATS_CSV_MAX_ROLES; r++)
        opt->column_names[r] = method->roles[r].name;
}

int cc_stats_csv_parse_confidence(const char *text, double *out)
{
    char buf[64];
    size_t len = strlen(text);
    double v;

    if (len == 0 || len >= sizeof buf)
        return CC_EINVAL;
    memcpy(buf, text, len + 1);
    int percent = buf[len - 1] == '%';
    if (percent)
        buf[len - 1] = '\0';
    if (cc_csv_parse_number(buf, &v) < 0)
        return CC_EINVAL;
    if (percent || v > 1)
        v /= 100;
    if (!(v > 0 && v < 1))
        return CC_EINVAL;
    *out = v;
    return 0;
}

int cc_stats_csv_map_column(struct cc_stats_csv_options *opt, const char *role,
                            const char *name)
{
    int found = 0;
    for (int r = 0; r < CC_STATS_CSV_MAX_ROLES && opt->method->roles[r].name; r++) {
        if (!strcmp(opt->method->roles[r].name, role)) {
            opt->column_names[r] = name;
            found = 1;
        }
    }
    return found ? 0 : CC_ENOTFOUND;
}

/* ---- CSV output -------------------------------------------------------- */

/* ",value,lowercl,uppercl,confidence,statistic,method", then
 * ",comparison" if a comparator was given, and the newline. */
static void put_interval(FILE *out, const struct cc_stats_csv_options *opt,
                         const struct cc_interval *ci, const char *statistic)
{
    char level[32];
    cc_csv_write_number(out, ci->value, 0);
    cc_csv_write_number(out, ci->lower, 0);
    cc_csv_write_number(out, ci->upper, 0);
    snprintf(level, sizeof level, "%g%%", ci->confidence * 100);
    cc_csv_write_string(out, level, 0);
    cc_csv_write_string(out, statistic, 0);
    cc_csv_write_string(out, cc_stats_method_name(ci->method), 0);
    if (opt->has_comparator)
        cc_csv_write_string(out,
                            cc_stats_comparison_name(cc_stats_compare(ci, opt->comparator)), 0);
    fputc('\n', out);
}

static const char interval_header[] = "value,lowercl,uppercl,confidence,statistic,method";

/* Ends a header line: the added columns and the newline. */
static void put_interval_header(FILE *out, const struct cc_stats_csv_options *opt)
{
    fprintf(out, "%s%s\n", interval_header, opt->has_comparator ? ",comparison" : "");
}

/* Starts a grouped output row with its group name, if the input had one. */
static void put_group_name(FILE *out, int has_group_column, const char *name)
{
    if (has_group_column) {
        cc_csv_write_string(out, name, 1);
        fputc(',', out);
    }
}

/* ---- groups ------------------------------------------------------------ */

#define ROW_STRIDE 4 /* numbers kept per input row of a grouped method */

/* The rows of one group, kept until the input ends; its name is the
 * entry of the same index in the run's cc_name_set. */
struct group {
    size_t first_line;
    size_t n_rows;
    size_t capacity;
    double *numbers;    /* n_rows * ROW_STRIDE */
    uint32_t band_mask; /* dsr with ESP 2013: bands seen */
};

/* Groups in order of first appearance: names[i] (a cc_name_set) is the name
 * of groups[i]. */
struct group_table {
    struct cc_name_set names;
    struct group *groups;
    size_t capacity;
};

/* Finds or adds the group called name; *out points into the table until the
 * next call. */
static int table_find(struct group_table *t, const char *name, size_t line,
                      struct group **out)
{
    size_t index;
    int added;
    if (cc_array_reserve(&t->groups, &t->capacity, t->names.n + 1, sizeof *t->groups) ||
        cc_name_set_add(&t->names, name, &index, &added))
        return CC_ENOMEM;
    if (added) {
        memset(&t->groups[index], 0, sizeof t->groups[index]);
        t->groups[index].first_line = line;
    }
    *out = &t->groups[index];
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
    for (size_t i = 0; i < t->names.n; i++)
        free(t->groups[i].numbers);
    free(t->groups);
    cc_name_set_free(&t->names);
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

/* The state of one run: the record being handled, the header, and what
 * has been computed. */
struct cc_stats_csv {
    struct cc_stats_csv_options opt_copy;
    const struct cc_stats_csv_options *opt;
    FILE *out;
    FILE *err;
    const char *program;
    struct cc_csv_record record; /* the current record's fields */
    size_t line;         /* CSV record number of the current record */
    char **header;       /* the header's column names */
    size_t n_columns;
    int role_column[CC_STATS_CSV_MAX_ROLES]; /* index in the header, -1 if absent */
    struct group_table groups;
    struct funnel_row *funnel_rows;
    size_t n_funnel_rows, funnel_capacity;
    int rc;              /* first error; later records are refused */
};

/* Writes "PROGRAM: " and a message to the run's error stream. */
static void say(const struct cc_stats_csv *run, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void say(const struct cc_stats_csv *run, const char *format, ...)
{
    va_list ap;
    fprintf(run->err, "%s: ", run->program);
    va_start(ap, format);
    vfprintf(run->err, format, ap);
    va_end(ap);
}

static const char *field(const struct cc_stats_csv *run, size_t i)
{
    return cc_csv_record_field(&run->record, i);
}

static int fail_line(struct cc_stats_csv *run, const char *reason)
{
    say(run, "line %zu: %s\n", run->line, reason);
    return CC_EPARSE;
}

static int fail_column(struct cc_stats_csv *run, int role, const char *reason)
{
    int column = run->role_column[role];
    say(run, "line %zu, column '%s' (%d): %s\n", run->line,
            run->header[column], column + 1, reason);
    return CC_EPARSE;
}

static int take_header(struct cc_stats_csv *run)
{
    const struct cc_stats_csv_method_info *m = run->opt->method;

    if (!(run->header = calloc(run->record.n_fields, sizeof *run->header)))
        return CC_ENOMEM;
    run->n_columns = run->record.n_fields;
    for (size_t i = 0; i < run->record.n_fields; i++) {
        const char *name = field(run, i);
        /* Spreadsheets often begin a CSV file with a UTF-8 byte order mark. */
        if (i == 0 && !strncmp(name, "\xEF\xBB\xBF", 3))
            name += 3;
        if (!(run->header[i] = strdup(name)))
            return CC_ENOMEM;
    }
    for (int r = 0; r < CC_STATS_CSV_MAX_ROLES; r++) {
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
            say(run, "line 1: %s needs a column '%s' "
                            "(see --help, or map it with --columns %s=NAME)\n",
                    m->name, run->opt->column_names[r], m->roles[r].name);
            return CC_EPARSE;
        }
    }
    /* dsr bands come from the standard population column if given, or else
     * must be named in age_band. */
    if (m->method == CC_STATS_CSV_DSR && run->role_column[4] < 0 && run->role_column[1] < 0) {
        say(run, "line 1: dsr needs a column '%s' "
                        "(2013 European Standard Population band) or '%s'\n",
                run->opt->column_names[1], run->opt->column_names[4]);
        return CC_EPARSE;
    }
    if (m->shape == CC_STATS_CSV_ROWS) {
        for (size_t i = 0; i < run->n_columns; i++)
            cc_csv_write_string(run->out, run->header[i], i == 0);
        fputc(',', run->out);
        put_interval_header(run->out, run->opt);
    }
    return 0;
}

static int number_for_role(struct cc_stats_csv *run, int role, double *out)
{
    if (run->role_column[role] < 0) {
        *out = NAN;
        return 0;
    }
    if (cc_csv_parse_number(field(run, (size_t)run->role_column[role]), out) < 0)
        return fail_column(run, role, "not a number");
    return 0;
}

/* 1 if the role's cell is missing as R writes it: empty or NA. */
static int role_is_missing(const struct cc_stats_csv *run, int role)
{
    if (run->role_column[role] < 0)
        return 1;
    const char *s = field(run, (size_t)run->role_column[role]);
    return !*s || !strcmp(s, "NA");
}

/* As number_for_role(), but a missing cell (empty or NA) is 0, where
 * PHEindicatormethods takes it so (na.zero() or sum(na.rm = TRUE)). */
static int count_for_role(struct cc_stats_csv *run, int role, double *out)
{
    if (role_is_missing(run, role)) {
        *out = 0;
        return 0;
    }
    return number_for_role(run, role, out);
}

/* Handles one data record of proportion or rate: computes and writes it. */
static int take_row_figure(struct cc_stats_csv *run)
{
    const struct cc_stats_csv_options *opt = run->opt;
    double numerator, denominator;
    struct cc_interval ci = {0};
    char statistic[64];
    int rc;

    if ((rc = number_for_role(run, 0, &numerator)) < 0 ||
        (rc = number_for_role(run, 1, &denominator)) < 0)
        return rc;
    if (opt->method->method == CC_STATS_CSV_PROPORTION) {
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
    cc_csv_write_record(run->out, &run->record);
    put_interval(run->out, run->opt, &ci, statistic);
    return 0;
}

/* Handles one data record of a grouped method: keeps its numbers. */
static int take_group_row(struct cc_stats_csv *run)
{
    const struct cc_stats_csv_method_info *m = run->opt->method;
    double numbers[ROW_STRIDE] = {0, 0, 0, 0};
    struct group *g;
    int rc;

    const char *name = run->role_column[0] >= 0 ? field(run, (size_t)run->role_column[0]) : "";
    if ((rc = table_find(&run->groups, name, run->line, &g)) < 0)
        return rc;
    switch (m->method) {
    case CC_STATS_CSV_DSR:
        if ((rc = count_for_role(run, 2, &numbers[0])) < 0 ||
            (rc = number_for_role(run, 3, &numbers[1])) < 0)
            return rc;
        if (run->role_column[4] >= 0) {
            if ((rc = number_for_role(run, 4, &numbers[2])) < 0)
                return rc;
        } else {
            const char *name_of_band = field(run, (size_t)run->role_column[1]);
            int band = cc_ageband_from_name(name_of_band, strlen(name_of_band));
            if (band < 0)
                return fail_column(run, 1, "not a 2013 European Standard Population "
                                           "band (0-4, 5-9, ..., 85-89, 90+)");
            if (g->band_mask & (UINT32_C(1) << band))
                return fail_column(run, 1, "this age band appears twice for the area");
            g->band_mask |= UINT32_C(1) << band;
            numbers[2] = cc_stats_esp2013[band];
        }
        break;
    case CC_STATS_CSV_ISR:
        /* count, population and reference_count: NA is 0 (the package's
         * sum(na.rm = TRUE) and na.zero()); reference_population must be
         * given. */
        for (int r = 1; r <= 3; r++)
            if ((rc = count_for_role(run, r, &numbers[r - 1])) < 0)
                return rc;
        if ((rc = number_for_role(run, 4, &numbers[3])) < 0)
            return rc;
        break;
    case CC_STATS_CSV_MEAN:
        if ((rc = number_for_role(run, 1, &numbers[0])) < 0)
            return rc;
        break;
    default:
        return CC_EINTERNAL;
    }
    return group_add_row(g, numbers);
}

/* ---- funnel plots ------------------------------------------------------- */

/* Reads a funnel-dsr row: its events, its DSR and the population it stands
 * for (PHEindicatormethods' denominator_derived). A row of 0 events needs a
 * denominator > 0 (the package's rule) and may leave its rate empty; it
 * stands for no population and counts towards the average's events only. */
static int take_funnel_dsr_numbers(struct cc_stats_csv *run, struct funnel_row *row)
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
static int take_funnel_row(struct cc_stats_csv *run)
{
    struct funnel_row row = {NULL, run->line, 0, 0, NAN};
    char *echo = NULL;
    size_t echo_len = 0;
    int rc;

    if (run->opt->method->method == CC_STATS_CSV_FUNNEL_DSR) {
        if ((rc = take_funnel_dsr_numbers(run, &row)) < 0)
            return rc;
    } else {
        if ((rc = number_for_role(run, 0, &row.numerator)) < 0 ||
            (rc = number_for_role(run, 1, &row.denominator)) < 0)
            return rc;
        if (row.numerator < 0 || row.denominator <= 0)
            return fail_line(run, "a funnel needs a numerator >= 0 and a denominator > 0");
    }
    if (run->opt->method->method == CC_STATS_CSV_FUNNEL_PROPORTION &&
        row.numerator > row.denominator)
        return fail_line(run, "a proportion needs numerator <= denominator");
    if (cc_array_reserve(&run->funnel_rows, &run->funnel_capacity, run->n_funnel_rows + 1,
                         sizeof *run->funnel_rows))
        return CC_ENOMEM;
    FILE *stream = open_memstream(&echo, &echo_len);
    if (!stream)
        return CC_ENOMEM;
    cc_csv_write_record(stream, &run->record);
    if (fclose(stream) != 0) {
        free(echo);
        return CC_ENOMEM;
    }
    row.echo = echo;
    run->funnel_rows[run->n_funnel_rows++] = row;
    return 0;
}

/* Writes the table calculate_funnel_limits() returns instead of the rows:
 * the funnel at the 100 points of its axis, drawn from the smallest and
 * largest denominator of the rows, around baseline. */
static int write_funnel_table(struct cc_stats_csv *run, double baseline)
{
    const struct cc_stats_csv_options *opt = run->opt;
    enum cc_stats_csv_method method = opt->method->method;
    enum cc_stats_funnel_statistic statistic =
        method == CC_STATS_CSV_FUNNEL_PROPORTION ? CC_STATS_FUNNEL_OF_PROPORTION
        : method == CC_STATS_CSV_FUNNEL_RATIO    ? CC_STATS_FUNNEL_OF_RATIO
                                                 : CC_STATS_FUNNEL_OF_RATE;
    double smallest = INFINITY, largest = -INFINITY;
    double points[CC_STATS_FUNNEL_TABLE_POINTS];
    int rc;

    for (size_t i = 0; i < run->n_funnel_rows; i++) {
        double d = run->funnel_rows[i].denominator;
        if (isnan(d))
            continue;
        smallest = d < smallest ? d : smallest;
        largest = d > largest ? d : largest;
    }
    if (!isfinite(smallest)) {
        say(run, "a funnel table needs a row with a denominator\n");
        return CC_EINVAL;
    }
    if ((rc = cc_stats_funnel_axis(statistic, smallest, largest, baseline,
                                   opt->years_of_data, points)) < 0) {
        say(run, "no funnel table: %s\n", cc_strerror(rc));
        return rc;
    }
    switch (statistic) {
    case CC_STATS_FUNNEL_OF_PROPORTION:
        fputs("Population,lower_2s_limit,upper_2s_limit,lower_3s_limit,upper_3s_limit,"
              "baseline\n", run->out);
        break;
    case CC_STATS_FUNNEL_OF_RATIO:
        fputs("Observed_events,lower_2s_exp_events,lower_2s_limit,upper_2s_exp_events,"
              "upper_2s_limit,lower_3s_exp_events,lower_3s_limit,upper_3s_exp_events,"
              "upper_3s_limit\n", run->out);
        break;
    case CC_STATS_FUNNEL_OF_RATE:
        fputs("Events,lower_2s_population_1_year,lower_2s_limit,upper_2s_population_1_year,"
              "upper_2s_limit,lower_3s_population_1_year,lower_3s_limit,"
              "upper_3s_population_1_year,upper_3s_limit,baseline\n", run->out);
        break;
    }
    for (int i = 0; i < CC_STATS_FUNNEL_TABLE_POINTS; i++) {
        struct cc_funnel_point two, three;
        double x = points[i];
        if (statistic == CC_STATS_FUNNEL_OF_PROPORTION) {
            if ((rc = cc_stats_funnel_proportion(baseline, x, 0.95, opt->multiplier, &two)) == 0)
                rc = cc_stats_funnel_proportion(baseline, x, 0.998, opt->multiplier, &three);
        } else if (statistic == CC_STATS_FUNNEL_OF_RATIO) {
            if ((rc = cc_stats_funnel_ratio(x, 0.95, &two)) == 0)
                rc = cc_stats_funnel_ratio(x, 0.998, &three);
        } else {
            if ((rc = cc_stats_funnel_rate(x, baseline, 0.95, opt->multiplier, &two)) == 0)
                rc = cc_stats_funnel_rate(x, baseline, 0.998, opt->multiplier, &three);
        }
        if (rc < 0) {
            say(run, "funnel table point %.12g: %s\n", x, cc_strerror(rc));
            return rc;
        }
        cc_csv_write_number(run->out, x, 1);
        if (statistic == CC_STATS_FUNNEL_OF_PROPORTION) {
            cc_csv_write_number(run->out, two.lower_limit, 0);
            cc_csv_write_number(run->out, two.upper_limit, 0);
            cc_csv_write_number(run->out, three.lower_limit, 0);
            cc_csv_write_number(run->out, three.upper_limit, 0);
        } else {
            /* ratios: expected counts and ratios x multiplier; rates:
             * populations per year and rates (already x multiplier) */
            double per = statistic == CC_STATS_FUNNEL_OF_RATE ? opt->years_of_data : 1;
            double scale = statistic == CC_STATS_FUNNEL_OF_RATIO ? opt->multiplier : 1;
            const struct cc_funnel_point *level[2] = {&two, &three};
            for (int l = 0; l < 2; l++) {
                cc_csv_write_number(run->out, level[l]->lower_denominator / per, 0);
                cc_csv_write_number(run->out, level[l]->lower_limit * scale, 0);
                cc_csv_write_number(run->out, level[l]->upper_denominator / per, 0);
                cc_csv_write_number(run->out, level[l]->upper_limit * scale, 0);
            }
        }
        if (statistic != CC_STATS_FUNNEL_OF_RATIO)
            cc_csv_write_number(run->out, baseline * opt->multiplier, 0);
        fputc('\n', run->out);
    }
    return 0;
}

/* Writes every kept row with its funnel columns, around the average of all
 * rows (numerators over denominators; for funnel-dsr over the populations
 * the rows with events stand for) or the --comparator value. */
static int write_funnel(struct cc_stats_csv *run)
{
    const struct cc_stats_csv_options *opt = run->opt;
    enum cc_stats_csv_method method = opt->method->method;
    double numerators = 0, denominators = 0, baseline = 1;

    for (size_t i = 0; i < run->n_funnel_rows; i++) {
        numerators += run->funnel_rows[i].numerator;
        if (!isnan(run->funnel_rows[i].denominator))
            denominators += run->funnel_rows[i].denominator;
    }
    if (method != CC_STATS_CSV_FUNNEL_RATIO)
        baseline = opt->has_comparator ? opt->comparator / opt->multiplier
                                       : numerators / denominators;
    if (method == CC_STATS_CSV_FUNNEL_PROPORTION && !(baseline >= 0 && baseline <= 1)) {
        say(run, "the funnel's baseline must be a proportion "
                        "between 0 and the multiplier\n");
        return CC_EINVAL;
    }
    if ((method == CC_STATS_CSV_FUNNEL_RATE || method == CC_STATS_CSV_FUNNEL_DSR) &&
        !(baseline > 0 && isfinite(baseline))) {
        say(run, "a rate funnel needs a baseline above 0\n");
        return CC_EINVAL;
    }
    if (opt->table)
        return write_funnel_table(run, baseline);
    for (size_t i = 0; i < run->n_columns; i++)
        cc_csv_write_string(run->out, run->header[i], i == 0);
    fprintf(run->out, ",value%s%s,lower95_0limit,upper95_0limit,lower99_8limit,"
                      "upper99_8limit,significance\n",
            method == CC_STATS_CSV_FUNNEL_DSR ? ",denominator_derived" : "",
            method == CC_STATS_CSV_FUNNEL_RATIO ? "" : ",baseline");
    for (size_t i = 0; i < run->n_funnel_rows; i++) {
        const struct funnel_row *row = &run->funnel_rows[i];
        enum cc_stats_funnel_significance significance;
        struct cc_funnel_point two = {NAN, NAN, NAN, NAN}, three = {NAN, NAN, NAN, NAN};
        double value = row->numerator / row->denominator * opt->multiplier;
        int drawn = 1, rc;

        switch (method) {
        case CC_STATS_CSV_FUNNEL_PROPORTION:
            if ((rc = cc_stats_funnel_proportion(baseline, row->denominator, 0.95,
                                                 opt->multiplier, &two)) == 0 &&
                (rc = cc_stats_funnel_proportion(baseline, row->denominator, 0.998,
                                                 opt->multiplier, &three)) == 0)
                rc = cc_stats_funnel_significance_proportion(
                    row->numerator, row->denominator, baseline, &significance);
            break;
        case CC_STATS_CSV_FUNNEL_RATIO:
            if ((rc = cc_stats_funnel_ratio_at(row->denominator, 0.95, opt->multiplier,
                                               &two)) == 0 &&
                (rc = cc_stats_funnel_ratio_at(row->denominator, 0.998, opt->multiplier,
                                               &three)) == 0)
                rc = cc_stats_funnel_significance_poisson(row->numerator, row->denominator,
                                                          &significance);
            break;
        case CC_STATS_CSV_FUNNEL_RATE:
            if ((rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.95,
                                              opt->multiplier, &two)) == 0 &&
                (rc = cc_stats_funnel_rate_at(row->denominator, baseline, 0.998,
                                              opt->multiplier, &three)) == 0)
                rc = cc_stats_funnel_significance_poisson(
                    row->numerator, row->denominator * baseline, &significance);
            break;
        default: /* CC_STATS_CSV_FUNNEL_DSR */
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
            say(run, "line %zu: %s\n", row->line,
                    cc_strerror(rc));
            return rc;
        }
        fputs(row->echo, run->out);
        cc_csv_write_number(run->out, value, 0);
        if (method == CC_STATS_CSV_FUNNEL_DSR)
            cc_csv_write_number(run->out, drawn ? row->denominator : NAN, 0);
        if (method != CC_STATS_CSV_FUNNEL_RATIO)
            cc_csv_write_number(run->out, baseline * opt->multiplier, 0);
        cc_csv_write_number(run->out, two.lower_limit, 0);
        cc_csv_write_number(run->out, two.upper_limit, 0);
        cc_csv_write_number(run->out, three.lower_limit, 0);
        cc_csv_write_number(run->out, three.upper_limit, 0);
        cc_csv_write_string(run->out, cc_stats_funnel_significance_name(significance), 0);
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

static int fail_group(const struct cc_stats_csv *run, const struct group *g,
                      const char *reason)
{
    say(run, "the group first seen at line %zu: %s\n",
            g->first_line, reason);
    return CC_EPARSE;
}

static int write_dsr(struct cc_stats_csv *run, const struct group *g, const char *name)
{
    const struct cc_stats_csv_options *opt = run->opt;
    double *counts = NULL, *populations = NULL, *weights = NULL;
    double total_count = 0, total_population = 0;
    struct cc_interval ci = {0};
    char statistic[64];
    int rc = CC_ENOMEM;

    if (run->role_column[4] < 0 && g->n_rows != CC_STATS_ESP2013_BANDS) {
        rc = fail_group(run, g, "needs all 19 bands of the 2013 European Standard "
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
        rc = fail_group(run, g, "a dsr needs counts >= 0, populations > 0 and "
                           "standard populations >= 0, not all 0");
        goto out;
    }
    if (rc == CC_ERANGE)
        snprintf(statistic, sizeof statistic, "dsr NA for total count < 10");
    else if (rc == 0)
        snprintf(statistic, sizeof statistic, "dsr per %.12g", opt->multiplier);
    else {
        rc = fail_group(run, g, cc_strerror(rc));
        goto out;
    }
    put_group_name(run->out, run->role_column[0] >= 0, name);
    cc_csv_write_number(run->out, total_count, 1);
    cc_csv_write_number(run->out, total_population, 0);
    put_interval(run->out, run->opt, &ci, statistic);
    rc = 0;
out:
    free(counts);
    free(populations);
    free(weights);
    return rc;
}

static int write_isr(struct cc_stats_csv *run, const struct group *g, const char *name)
{
    const struct cc_stats_csv_options *opt = run->opt;
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
        rc = fail_group(run, g, "an isr needs counts and populations >= 0, reference "
                           "populations > 0 and an expected count > 0");
        goto out;
    }
    if (rc < 0) {
        rc = fail_group(run, g, cc_strerror(rc));
        goto out;
    }
    snprintf(statistic, sizeof statistic, "indirectly standardised ratio x %.12g",
             opt->multiplier);
    put_group_name(run->out, run->role_column[0] >= 0, name);
    cc_csv_write_number(run->out, observed, 1);
    cc_csv_write_number(run->out, expected, 0);
    put_interval(run->out, run->opt, &ci, statistic);
    rc = 0;
out:
    free(populations);
    free(reference_counts);
    free(reference_populations);
    return rc;
}

static int write_mean(struct cc_stats_csv *run, const struct group *g, const char *name)
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
        rc = fail_group(run, g, rc == CC_EINVAL ? "a mean needs at least 2 values"
                                           : cc_strerror(rc));
        goto out;
    }
    put_group_name(run->out, run->role_column[0] >= 0, name);
    cc_csv_write_number(run->out, sum, 1);
    cc_csv_write_number(run->out, (double)g->n_rows, 0);
    cc_csv_write_number(run->out, sd, 0);
    put_interval(run->out, run->opt, &ci, "mean");
    rc = 0;
out:
    free(values);
    return rc;
}

static int write_groups(struct cc_stats_csv *run)
{
    const struct cc_stats_csv_method_info *m = run->opt->method;

    if (run->role_column[0] >= 0)
        put_group_name(run->out, 1, run->header[run->role_column[0]]);
    switch (m->method) {
    case CC_STATS_CSV_DSR: fprintf(run->out, "total_count,total_pop,"); break;
    case CC_STATS_CSV_ISR: fprintf(run->out, "observed,expected,"); break;
    default: fprintf(run->out, "value_sum,value_count,stdev,"); break;
    }
    put_interval_header(run->out, run->opt);
    for (size_t i = 0; i < run->groups.names.n; i++) {
        const struct group *g = &run->groups.groups[i];
        const char *name = run->groups.names.names[i];
        int rc = m->method == CC_STATS_CSV_DSR   ? write_dsr(run, g, name)
                 : m->method == CC_STATS_CSV_ISR ? write_isr(run, g, name)
                                                 : write_mean(run, g, name);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------ */

int cc_stats_csv_open(const struct cc_stats_csv_options *opt, FILE *out, FILE *err,
                      const char *program, cc_stats_csv **run)
{
    struct cc_stats_csv *r = calloc(1, sizeof *r);
    if (!r)
        return CC_ENOMEM;
    r->opt_copy = *opt;
    r->opt = &r->opt_copy;
    r->out = out;
    r->err = err;
    r->program = program;
    *run = r;
    return 0;
}

int cc_stats_csv_take(cc_stats_csv *run, size_t line, const struct cc_csv_field *fields,
                      size_t n)
{
    if (run->rc)
        return run->rc;
    run->line = line;
    cc_csv_record_clear(&run->record);
    for (size_t i = 0; i < n; i++) {
        if (cc_csv_record_add(&run->record, fields[i].data, fields[i].len) < 0) {
            say(run, "out of memory at line %zu\n", run->line);
            return run->rc = CC_ENOMEM;
        }
    }
    int rc;
    if (!run->header)
        rc = take_header(run);
    else if (run->opt->method->shape == CC_STATS_CSV_GROUPS)
        rc = take_group_row(run);
    else if (run->opt->method->shape == CC_STATS_CSV_FUNNEL)
        rc = take_funnel_row(run);
    else
        rc = take_row_figure(run);
    return run->rc = rc < 0 ? rc : 0;
}

int cc_stats_csv_finish(cc_stats_csv *run)
{
    if (run->rc)
        return run->rc;
    if (run->opt->method->shape == CC_STATS_CSV_GROUPS)
        return write_groups(run);
    if (run->opt->method->shape == CC_STATS_CSV_FUNNEL)
        return write_funnel(run);
    return 0;
}

void cc_stats_csv_close(cc_stats_csv *run)
{
    if (!run)
        return;
    table_free(&run->groups);
    for (size_t i = 0; i < run->n_funnel_rows; i++)
        free(run->funnel_rows[i].echo);
    free(run->funnel_rows);
    if (run->header)
        for (size_t i = 0; i < run->n_columns; i++)
            free(run->header[i]);
    free(run->header);
    cc_csv_record_free(&run->record);
    free(run);
}
