/*
 * cc_stats_csv.h: the statistics of cc_stats.h over CSV records, as
 * `carecount stats METHOD` computes them: the methods and the input columns
 * (roles) each reads, then one record at a time in, CSV out with value,
 * lowercl, uppercl, confidence, statistic and method added (or a method's
 * funnel columns). docs/statistics.md describes every method and column.
 *
 * A run is fed the header and then each record (cc_stats_csv_take()), and
 * ends with cc_stats_csv_finish(), which writes what could only be written
 * once every row was seen (one row per group; funnels around the average of
 * all rows). Row methods write each row as it is taken.
 *
 * Must never: echo an input cell in an error message. Messages, written to
 * the run's error stream as "PROGRAM: ...", name the line (the CSV record
 * number the caller gives), the column and the reason only, so a file that
 * holds something it should not cannot leak it through stderr. Output goes
 * only to the run's output stream.
 */
#ifndef CC_STATS_CSV_H
#define CC_STATS_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "cc_csv.h"

enum cc_stats_csv_method {
    CC_STATS_CSV_PROPORTION,
    CC_STATS_CSV_RATE,
    CC_STATS_CSV_DSR,
    CC_STATS_CSV_ISR,
    CC_STATS_CSV_MEAN,
    CC_STATS_CSV_FUNNEL_PROPORTION,
    CC_STATS_CSV_FUNNEL_RATE,
    CC_STATS_CSV_FUNNEL_RATIO,
    CC_STATS_CSV_FUNNEL_DSR,
};

/* How a method's output rows relate to its input rows. */
enum cc_stats_csv_shape {
    CC_STATS_CSV_ROWS,   /* one output row per input row, written as read */
    CC_STATS_CSV_GROUPS, /* one output row per group, written at the end */
    CC_STATS_CSV_FUNNEL, /* one output row per input row, written at the end
                            because the baseline is the average of all rows */
};

/* The input columns a method reads, by role; the role is also the default
 * column name. A role marked optional may be absent from the header. Role 0
 * of a grouped method is its group column. */
#define CC_STATS_CSV_MAX_ROLES 6
struct cc_stats_csv_role {
    const char *name;
    int optional;
};

struct cc_stats_csv_method_info {
    const char *name;           /* "proportion", "funnel-dsr", ... */
    enum cc_stats_csv_method method;
    enum cc_stats_csv_shape shape;
    double default_multiplier;  /* 0: the method takes none */
    struct cc_stats_csv_role roles[CC_STATS_CSV_MAX_ROLES];
};

/* Every method, in the order the usage lists them. */
extern const struct cc_stats_csv_method_info cc_stats_csv_methods[];
extern const size_t cc_stats_csv_n_methods;

/* The method called name, or NULL. */
const struct cc_stats_csv_method_info *cc_stats_csv_find_method(const char *name);

/* What a run computes. */
struct cc_stats_csv_options {
    const struct cc_stats_csv_method_info *method;
    double confidence;  /* a fraction in (0, 1); funnels ignore it */
    double multiplier;  /* scale of value and limits */
    int has_comparator;
    double comparator;  /* on the scale of value, e.g. the national rate;
                           for funnels the baseline */
    const char *column_names[CC_STATS_CSV_MAX_ROLES]; /* input column per role */
    int table;          /* funnels: calculate_funnel_limits()' table of
                           CC_STATS_FUNNEL_TABLE_POINTS rows instead of the
                           rows read */
    double years_of_data; /* rate and dsr funnel tables: the years the
                             denominators cover (default 1) */
};

/* Sets *opt to method's defaults: confidence 0.95, its multiplier, no
 * comparator, each role read from the column of its own name, no table,
 * 1 year of data. */
void cc_stats_csv_options_init(struct cc_stats_csv_options *opt,
                               const struct cc_stats_csv_method_info *method);

/* Reads a confidence level: a fraction (0.95) or a percentage (95, 99.8,
 * 95%). 0 or CC_EINVAL (not a level strictly between 0 and 1). */
int cc_stats_csv_parse_confidence(const char *text, double *out);

/* Reads role from column name (name must outlive the run). 0, or
 * CC_ENOTFOUND if the method has no such role. */
int cc_stats_csv_map_column(struct cc_stats_csv_options *opt, const char *role,
                            const char *name);

typedef struct cc_stats_csv cc_stats_csv;

/* Starts a run writing CSV to out and messages, prefixed "program: ", to
 * err. *opt is copied. 0 or CC_ENOMEM. Free with cc_stats_csv_close(). */
int cc_stats_csv_open(const struct cc_stats_csv_options *opt, FILE *out, FILE *err,
                      const char *program, cc_stats_csv **run);

/* Takes the record starting on line (the header, line 1, first): n fields.
 * 0, or the negative code of the first error (already reported on err;
 * every later call returns it again): CC_EPARSE for a bad header or cell,
 * CC_ENOMEM, or a cc_stats code. A header without a column a method needs
 * is CC_EPARSE. */
int cc_stats_csv_take(cc_stats_csv *run, size_t line, const struct cc_csv_field *fields,
                      size_t n);

/* Writes the rows of grouped and funnel methods (row methods have written
 * theirs). 0 or the error, reported on err; a group's error comes after
 * the earlier groups were written. */
int cc_stats_csv_finish(cc_stats_csv *run);

/* Frees the run (NULL is allowed). */
void cc_stats_csv_close(cc_stats_csv *run);

#endif
