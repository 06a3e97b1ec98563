/*
 * cc_stats.h: confidence intervals, standardisation, funnel limits and area
 * comparisons, computed as Public Health England's Fingertips and its R
 * package PHEindicatormethods compute them (docs/statistics.md gives every
 * formula and its source).
 *
 * Every function here is pure: plain numbers in, plain numbers out, no
 * allocation, no state, no I/O. They return 0 or a negative CC_E* code
 * (CC_EINVAL for impossible inputs, CC_ESTATS if GSL could not compute a
 * quantile). GSL is called with its error handler expected to be off
 * (gsl_set_error_handler_off(), done once by each program at start): a failed
 * GSL quantile comes back as NaN and is reported as CC_ESTATS, never an abort.
 *
 * This module must never see a raw small count that disclosure control has
 * not released: callers pass protected counts only (DESIGN.md, rule 6).
 * Suppressed figures are marked "not compared" by the caller.
 *
 * Confidence levels are fractions strictly between 0 and 1 (0.95, 0.998).
 */
#ifndef CC_STATS_H
#define CC_STATS_H

#include <stddef.h>

/* The method that produced an interval. */
enum cc_stats_method {
    CC_STATS_WILSON = 0,  /* Wilson score interval (proportions) */
    CC_STATS_EXACT,       /* exact Poisson (chi-square) limits, count < 10 */
    CC_STATS_BYARS,       /* Byar's approximation, count >= 10 */
    CC_STATS_DOBSON,      /* Dobson's method (directly standardised rates) */
    CC_STATS_STUDENT_T,   /* Student's t (means) */
};

/* A value with its confidence interval at one level. */
struct cc_interval {
    double value;
    double lower;
    double upper;
    double confidence;           /* the level used, e.g. 0.95 */
    enum cc_stats_method method;
};

/* Counts below this use exact Poisson limits instead of Byar's, and
 * directly standardised rates are not calculated (PHEindicatormethods). */
#define CC_STATS_SMALL_COUNT 10.0

/* The 2013 European Standard Population: 19 five-year bands 0-4 ... 85-89
 * and 90+, weights summing to 100,000. */
#define CC_STATS_ESP2013_BANDS 19
extern const double cc_stats_esp2013[CC_STATS_ESP2013_BANDS];

/* Returns the ESP 2013 band index (0..18) for an age in whole years, or -1
 * for a negative age (the bands are cc_ageband.h's). */
int cc_stats_esp2013_band(int age_years);

/* Returns the name of a method ("Wilson", "Exact", "Byars", "Dobson",
 * "Student's t-distribution"), as PHEindicatormethods names them. */
const char *cc_stats_method_name(enum cc_stats_method method);

/* Sets *z to the two-sided standard normal quantile for a confidence level
 * (1.959964 for 0.95). CC_EINVAL unless 0 < confidence < 1. */
int cc_stats_z(double confidence, double *z);

/* Wilson score interval for a proportion count/denominator, times
 * multiplier (1 for a proportion, 100 for a percentage). Counts need not be
 * whole. CC_EINVAL for count < 0, denominator <= 0, count > denominator,
 * multiplier <= 0 or a bad confidence level. */
int cc_stats_proportion(double count, double denominator, double confidence,
                        double multiplier, struct cc_interval *out);

/* cc_stats_proportion() with multiplier 1. */
int cc_stats_wilson(double count, double denominator, double confidence,
                    struct cc_interval *out);

/* Confidence limits for a Poisson count on the count scale: exact
 * (chi-square) limits below CC_STATS_SMALL_COUNT, Byar's otherwise. value is
 * the count itself. CC_EINVAL for count < 0 or a bad confidence level. */
int cc_stats_poisson_count(double count, double confidence,
                           struct cc_interval *out);

/* Byar's approximation alone, on the count scale (lower is NaN when it
 * would be negative, as in PHEindicatormethods). count must be > 0. */
int cc_stats_byars(double count, double confidence, struct cc_interval *out);

/* Exact Poisson limits alone, on the count scale (lower is 0 for count 0).
 * CC_ESTATS when GSL cannot compute the quantile (counts near a million and
 * above); Byar's is then accurate to better than 1e-9. */
int cc_stats_exact_poisson(double count, double confidence,
                           struct cc_interval *out);

/* Crude rate count/denominator * multiplier (per 1,000 or 100,000) with
 * exact limits for counts below 10 and Byar's otherwise (phe_rate).
 * CC_EINVAL for count < 0, denominator <= 0, multiplier <= 0. */
int cc_stats_rate(double count, double denominator, double confidence,
                  double multiplier, struct cc_interval *out);

/* Directly standardised rate over n_bands age bands with Dobson's interval
 * (phe_dsr / calculate_dsr). standard_population gives each band's weight
 * (cc_stats_esp2013 for the 2013 European Standard Population).
 * CC_EINVAL for n_bands == 0, a negative count, a population <= 0, a
 * negative or all-zero standard population. CC_ERANGE, with value and limits
 * set to NaN, when the total count is below 10 (PHE does not publish such
 * DSRs). *total_count (if not NULL) receives the sum of counts. */
int cc_stats_dsr(size_t n_bands, const double *counts,
                 const double *populations, const double *standard_population,
                 double confidence, double multiplier, struct cc_interval *out,
                 double *total_count);

/* Expected count for indirect standardisation: the sum over bands of
 * reference_count / reference_population * population. CC_EINVAL for a
 * negative input or a reference population <= 0. */
int cc_stats_expected(size_t n_bands, const double *populations,
                      const double *reference_counts,
                      const double *reference_populations, double *expected);

/* Indirectly standardised ratio observed/expected * multiplier (1 for a
 * ratio, 100 for an SMR x 100) with exact limits on the observed count below
 * 10 and Byar's otherwise (calculate_ISRatio). For the indirectly
 * standardised rate (calculate_ISRate) pass multiplier = reference rate
 * (reference events / reference population) * rate multiplier.
 * CC_EINVAL for observed < 0, expected <= 0, multiplier <= 0. */
int cc_stats_isr(double observed, double expected, double confidence,
                 double multiplier, struct cc_interval *out);

/* Mean of n_values values with a Student's t interval (phe_mean), using the
 * sample standard deviation. CC_EINVAL for fewer than 2 values or a value
 * that is not finite. *standard_deviation (if not NULL) receives the
 * sample standard deviation. */
int cc_stats_mean(size_t n_values, const double *values, double confidence,
                  struct cc_interval *out, double *standard_deviation);

/* The same from a summary: count of values, their mean and sample
 * standard deviation. CC_EINVAL for n_values < 2 or sd < 0. */
int cc_stats_mean_from_summary(double n_values, double mean,
                               double standard_deviation, double confidence,
                               struct cc_interval *out);

/* One point of a funnel plot at one confidence level (0.95 for the 2 sigma
 * limits, 0.998 for 3 sigma). For proportions both denominators are the
 * population the limits are drawn at; for ratios and rates the funnel is
 * drawn, as in PHEindicatormethods, at a number of observed events and the
 * denominators are the expected events (ratios) or population (rates) at
 * which that many events lie on the lower and upper limit. */
struct cc_funnel_point {
    double lower_denominator;
    double lower_limit;
    double upper_denominator;
    double upper_limit;
};

/* Funnel limits for a proportion (Wilson-based, as calculate_funnel_limits
 * with statistic "proportion"): the proportions, times multiplier, that lie
 * on the limits at the given population around average_proportion. Limits
 * are clipped to [0, multiplier]. CC_EINVAL for average_proportion outside
 * [0, 1], population <= 0 or multiplier <= 0. */
int cc_stats_funnel_proportion(double average_proportion, double population,
                               double confidence, double multiplier,
                               struct cc_funnel_point *out);

/* Funnel limits for an indirectly standardised ratio (statistic "ratio"),
 * at observed_events >= 1 events: the expected counts at which that many
 * events lie on the lower (denominator = exact upper count limit) and upper
 * (exact lower count limit) limits, and the ratios observed/expected there.
 * Above 100,000 events Byar's limits stand in for the exact ones. */
int cc_stats_funnel_ratio(double observed_events, double confidence,
                          struct cc_funnel_point *out);

/* Funnel limits for a rate (statistic "rate"), at events >= 1 events around
 * average_rate (events per person, not multiplied): the populations at
 * which that many events lie on each limit, and the rates there times
 * multiplier. Divide the populations by the years of data to plot a
 * one-year population. */
int cc_stats_funnel_rate(double events, double average_rate, double confidence,
                         double multiplier, struct cc_funnel_point *out);

/* Control limits at one denominator of a ratio funnel (statistic "ratio"):
 * the ratios, times multiplier, on the lower and upper limit at an expected
 * count of expected > 0. These are the limits of cc_stats_funnel_ratio()
 * read the other way: the lower limit is O/expected for the O whose exact
 * upper count limit is expected, the upper limit O/expected for the O whose
 * exact lower limit is expected (O continuous, through the chi-square /
 * gamma function), so at the expected counts of calculate_funnel_limits'
 * table they give its ratios. The lower limit is 0 while even 0 events
 * would lie inside (expected <= -ln(alpha/2)). Both denominators are set to
 * expected. CC_EINVAL for expected <= 0, multiplier <= 0 or a bad level. */
int cc_stats_funnel_ratio_at(double expected, double confidence, double multiplier,
                             struct cc_funnel_point *out);

/* Control limits at one denominator of a rate funnel (statistic "rate",
 * crude or dsr): the rates, times multiplier, on the limits at population
 * > 0 around average_rate > 0 (events per person): the ratio limits at
 * expected = population * average_rate, times average_rate. Both
 * denominators are set to population. */
int cc_stats_funnel_rate_at(double population, double average_rate, double confidence,
                            double multiplier, struct cc_funnel_point *out);

/* The population a directly standardised rate stands for in a funnel
 * (calculate_funnel_points' and assign_funnel_significance's
 * denominator_derived for rate_type "dsr"): multiplier * events / dsr.
 * CC_ERANGE, *population NaN, for 0 events (the package leaves the row out
 * of the average); CC_EINVAL for events < 0 or dsr <= 0 with events > 0,
 * multiplier <= 0. */
int cc_stats_funnel_dsr_population(double events, double dsr, double multiplier,
                                   double *population);

/* DSRs of fewer than this many events are drawn on no funnel and are "Not
 * applicable" (PHEindicatormethods; as CC_STATS_SMALL_COUNT). */
#define CC_STATS_FUNNEL_DSR_MIN_EVENTS 10.0

/* The table calculate_funnel_limits() returns for plotting: the funnel at
 * 100 points of its x axis. */
#define CC_STATS_FUNNEL_TABLE_POINTS 100

/* What a funnel table's axis counts. */
enum cc_stats_funnel_statistic {
    CC_STATS_FUNNEL_OF_PROPORTION = 0, /* population */
    CC_STATS_FUNNEL_OF_RATIO,          /* observed events (on the expected
                                          counts' scale) */
    CC_STATS_FUNNEL_OF_RATE,           /* events (crude rates and DSRs) */
};

/* The x axis of calculate_funnel_limits()' table, as the package draws it,
 * from the smallest and largest denominator of the data (for rates the
 * derived population, over all years_of_data years; average is then the
 * events per person of the baseline, ignored otherwise): from 0 (if the
 * largest is more than twice the smallest) or the smallest rounded down
 * (signif.floor of 95% of it), to the largest rounded up (signif.ceiling of
 * 105% of it; for rates both per year, then in events at the average), in
 * 100 whole-number steps that grow geometrically and by at least 1. R's
 * rounding is reproduced (round half to even; the digit count of
 * as.character(), which writes 100000 as "1e+05"). CC_EINVAL for a
 * denominator <= 0 or not finite, min > max, or for rates an average or
 * years_of_data <= 0. */
int cc_stats_funnel_axis(enum cc_stats_funnel_statistic statistic, double min_denominator,
                         double max_denominator, double average, double years_of_data,
                         double points[CC_STATS_FUNNEL_TABLE_POINTS]);

/* Where a point lies against a funnel (assign_funnel_significance). */
enum cc_stats_funnel_significance {
    CC_STATS_FUNNEL_HIGH_0001 = 0, /* above the 99.8% limit */
    CC_STATS_FUNNEL_HIGH_0025,     /* above the 95% limit only */
    CC_STATS_FUNNEL_LOW_0001,
    CC_STATS_FUNNEL_LOW_0025,
    CC_STATS_FUNNEL_NOT_SIGNIFICANT,
    CC_STATS_FUNNEL_NOT_APPLICABLE, /* a DSR of fewer than 10 events */
};

/* Returns "High (0.001)", "High (0.025)", "Low (0.001)", "Low (0.025)",
 * "Not significant" or "Not applicable for events less than 10 for dsrs",
 * the labels PHEindicatormethods uses. */
const char *cc_stats_funnel_significance_name(enum cc_stats_funnel_significance s);

/* Significance of numerator/denominator against the funnel around
 * average_proportion. CC_EINVAL as for cc_stats_funnel_proportion(), or for
 * numerator outside [0, denominator]. */
int cc_stats_funnel_significance_proportion(double numerator,
                                            double denominator,
                                            double average_proportion,
                                            enum cc_stats_funnel_significance *out);

/* Significance of an observed count against its expected count (ratios;
 * for rates pass expected = denominator * average rate). CC_EINVAL for
 * observed < 0 or expected <= 0. */
int cc_stats_funnel_significance_poisson(double observed, double expected,
                                         enum cc_stats_funnel_significance *out);

/* Significance of a DSR of events events standing for population people
 * (cc_stats_funnel_dsr_population()) around average_rate (events per
 * person): NOT_APPLICABLE below CC_STATS_FUNNEL_DSR_MIN_EVENTS events
 * (population may then be NaN), else as
 * cc_stats_funnel_significance_poisson(events, population * average_rate).
 * CC_EINVAL for events < 0, or from 10 events a population or average rate
 * that is not > 0. */
int cc_stats_funnel_significance_dsr(double events, double population,
                                     double average_rate,
                                     enum cc_stats_funnel_significance *out);

/* An area against a comparator (Fingertips). */
enum cc_stats_comparison {
    CC_STATS_SIMILAR = 0,            /* comparator within the interval */
    CC_STATS_HIGHER,                 /* comparator below the lower limit */
    CC_STATS_LOWER,                  /* comparator above the upper limit */
    CC_STATS_NOT_COMPARED,           /* no interval (suppressed, not computed) */
};

/* Returns "similar", "significantly higher", "significantly lower" or
 * "not compared". */
const char *cc_stats_comparison_name(enum cc_stats_comparison comparison);

/* Compares an area's interval with a comparator value on the same scale:
 * significantly higher when the comparator lies below the lower limit,
 * significantly lower when it lies above the upper limit, similar otherwise
 * (a comparator on a limit is similar). NOT_COMPARED when area is NULL or a
 * limit or the comparator is not a finite number. */
enum cc_stats_comparison cc_stats_compare(const struct cc_interval *area,
                                          double comparator);

#endif
