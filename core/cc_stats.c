/*
 * cc_stats.c: the statistics of area comparisons (see cc_stats.h and
 * docs/statistics.md for each formula and its source).
 *
 * Pure functions over plain numbers. Nothing here allocates, logs or keeps
 * state; nothing here may be handed a count that disclosure control has not
 * released. GSL quantile functions are the only library calls: with GSL's
 * error handler off they return NaN on failure, which every caller turns
 * into CC_ESTATS, so a bad input can never abort the process.
 */
#include "cc_stats.h"

#include <math.h>
#include <stdio.h>

#include <gsl/gsl_cdf.h>

#include "cc_ageband.h"
#include "cc_error.h"

const double cc_stats_esp2013[CC_STATS_ESP2013_BANDS] = {
    5000, 5500, 5500, 5500, 6000, 6000, 6500, 7000, 7000, 7000,
    7000, 6500, 6000, 5500, 5000, 4000, 2500, 1500, 1000,
};

int cc_stats_esp2013_band(int age_years)
{
    return cc_ageband_of_age(age_years);
}

const char *cc_stats_method_name(enum cc_stats_method method)
{
    switch (method) {
    case CC_STATS_WILSON: return "Wilson";
    case CC_STATS_EXACT: return "Exact";
    case CC_STATS_BYARS: return "Byars";
    case CC_STATS_DOBSON: return "Dobson";
    case CC_STATS_STUDENT_T: return "Student's t-distribution";
    }
    return "unknown";
}

static int confidence_is_valid(double confidence)
{
    return isfinite(confidence) && confidence > 0.0 && confidence < 1.0;
}

int cc_stats_z(double confidence, double *z)
{
    if (!confidence_is_valid(confidence))
        return CC_EINVAL;
    double q = gsl_cdf_ugaussian_Pinv(confidence + (1.0 - confidence) / 2.0);
    if (!isfinite(q))
        return CC_ESTATS;
    *z = q;
    return 0;
}

int cc_stats_proportion(double count, double denominator, double confidence,
                        double multiplier, struct cc_interval *out)
{
    double z;
    int rc;

    if (!isfinite(count) || !isfinite(denominator) || !isfinite(multiplier) ||
        count < 0 || denominator <= 0 || count > denominator || multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_z(confidence, &z)) < 0)
        return rc;
    /* Wilson (1927); PHEindicatormethods wilson_lower()/wilson_upper(). */
    double z2 = z * z;
    double root = z * sqrt(z2 + 4.0 * count * (1.0 - count / denominator));
    double scale = 2.0 * (denominator + z2);
    out->value = count / denominator * multiplier;
    out->lower = (2.0 * count + z2 - root) / scale * multiplier;
    out->upper = (2.0 * count + z2 + root) / scale * multiplier;
    out->confidence = confidence;
    out->method = CC_STATS_WILSON;
    return 0;
}

int cc_stats_wilson(double count, double denominator, double confidence,
                    struct cc_interval *out)
{
    return cc_stats_proportion(count, denominator, confidence, 1.0, out);
}

int cc_stats_byars(double count, double confidence, struct cc_interval *out)
{
    double z;
    int rc;

    if (!isfinite(count) || count <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_z(confidence, &z)) < 0)
        return rc;
    /* Breslow & Day (1987), Byar's method. The lower limit uses O, the
     * upper O + 1. */
    double lower_base = 1.0 - 1.0 / (9.0 * count) - z / (3.0 * sqrt(count));
    double next = count + 1.0;
    double upper_base = 1.0 - 1.0 / (9.0 * next) + z / (3.0 * sqrt(next));
    double lower = count * lower_base * lower_base * lower_base;
    out->value = count;
    out->lower = lower < 0 ? NAN : lower;
    out->upper = next * upper_base * upper_base * upper_base;
    out->confidence = confidence;
    out->method = CC_STATS_BYARS;
    return 0;
}

/*
 * Exact Poisson limits. GSL's chi-square quantiles fail to converge, or
 * return a wrong value, for some large degrees of freedom (for instance the
 * 99.8% upper limit of 4,716 events), so every quantile is checked against
 * GSL's gamma CDF, which is reliable there, and found by bisection on that
 * CDF when the check fails.
 *
 * upper u: Pr(Poisson(u) <= count) = tail, i.e. gamma_Q(u; count + 1) = tail;
 * lower l: Pr(Poisson(l) >= count) = tail, i.e. gamma_P(l; count) = tail.
 */
static int close_enough(double got, double want)
{
    return isfinite(got) && fabs(got - want) <= 1e-9 * want + 1e-300;
}

static double poisson_upper_limit(double count, double tail)
{
    double u = gsl_cdf_chisq_Qinv(tail, 2.0 * count + 2.0) / 2.0;
    if (isfinite(u) && u > count && close_enough(gsl_cdf_gamma_Q(u, count + 1.0, 1.0), tail))
        return u;
    double lo = count, hi = count + 10.0 * sqrt(count + 1.0) + 20.0;
    while (gsl_cdf_gamma_Q(hi, count + 1.0, 1.0) > tail)
        hi = count + 2.0 * (hi - count);
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (gsl_cdf_gamma_Q(mid, count + 1.0, 1.0) > tail)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

static double poisson_lower_limit(double count, double tail)
{
    double l = gsl_cdf_chisq_Pinv(tail, 2.0 * count) / 2.0;
    if (isfinite(l) && l < count && close_enough(gsl_cdf_gamma_P(l, count, 1.0), tail))
        return l;
    double hi = count, lo = count - 10.0 * sqrt(count) - 20.0;
    if (lo < 0)
        lo = 0;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (gsl_cdf_gamma_P(mid, count, 1.0) < tail)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int cc_stats_exact_poisson(double count, double confidence,
                           struct cc_interval *out)
{
    if (!isfinite(count) || count < 0 || !confidence_is_valid(confidence))
        return CC_EINVAL;
    double alpha = 1.0 - confidence;
    /* Exact limits from the chi-square distribution (Ulm 1990):
     * lower = chisq(alpha/2; 2O)/2, upper = chisq(1 - alpha/2; 2O + 2)/2. */
    double lower = count > 0 ? poisson_lower_limit(count, alpha / 2.0) : 0.0;
    double upper = poisson_upper_limit(count, alpha / 2.0);
    if (!isfinite(lower) || !isfinite(upper))
        return CC_ESTATS;
    out->value = count;
    out->lower = lower;
    out->upper = upper;
    out->confidence = confidence;
    out->method = CC_STATS_EXACT;
    return 0;
}

int cc_stats_poisson_count(double count, double confidence,
                           struct cc_interval *out)
{
    if (!isfinite(count) || count < 0)
        return CC_EINVAL;
    if (count < CC_STATS_SMALL_COUNT)
        return cc_stats_exact_poisson(count, confidence, out);
    return cc_stats_byars(count, confidence, out);
}

/* Scales a count interval to a ratio count / denominator * multiplier. */
static int poisson_ratio(double count, double denominator, double confidence,
                         double multiplier, struct cc_interval *out)
{
    struct cc_interval on_counts;
    int rc;

    if (!isfinite(count) || !isfinite(denominator) || !isfinite(multiplier) ||
        count < 0 || denominator <= 0 || multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_poisson_count(count, confidence, &on_counts)) < 0)
        return rc;
    double scale = multiplier / denominator;
    out->value = count * scale;
    out->lower = on_counts.lower * scale;
    out->upper = on_counts.upper * scale;
    out->confidence = confidence;
    out->method = on_counts.method;
    return 0;
}

int cc_stats_rate(double count, double denominator, double confidence,
                  double multiplier, struct cc_interval *out)
{
    return poisson_ratio(count, denominator, confidence, multiplier, out);
}

int cc_stats_isr(double observed, double expected, double confidence,
                 double multiplier, struct cc_interval *out)
{
    return poisson_ratio(observed, expected, confidence, multiplier, out);
}

int cc_stats_dsr(size_t n_bands, const double *counts,
                 const double *populations, const double *standard_population,
                 double confidence, double multiplier, struct cc_interval *out,
                 double *total_count)
{
    double total = 0, weight_sum = 0, weighted = 0, variance_sum = 0;
    struct cc_interval on_total;
    int rc;

    if (n_bands == 0 || !isfinite(multiplier) || multiplier <= 0 ||
        !confidence_is_valid(confidence))
        return CC_EINVAL;
    for (size_t i = 0; i < n_bands; i++) {
        double count = counts[i], population = populations[i];
        double weight = standard_population[i];
        if (!isfinite(count) || !isfinite(population) || !isfinite(weight) ||
            count < 0 || population <= 0 || weight < 0)
            return CC_EINVAL;
        double weight_per_person = weight / population;
        total += count;
        weight_sum += weight;
        weighted += count * weight_per_person;
        variance_sum += count * weight_per_person * weight_per_person;
    }
    if (weight_sum <= 0)
        return CC_EINVAL;
    if (total_count)
        *total_count = total;
    out->confidence = confidence;
    out->method = CC_STATS_DOBSON;
    if (total < CC_STATS_SMALL_COUNT) {
        out->value = out->lower = out->upper = NAN;
        return CC_ERANGE;
    }
    /* Dobson et al. (1991): the DSR's limits follow those of the total
     * count O, scaled by sqrt(var(DSR) / O). */
    if ((rc = cc_stats_byars(total, confidence, &on_total)) < 0)
        return rc;
    double variance = variance_sum / (weight_sum * weight_sum);
    double spread = sqrt(variance / total) * multiplier;
    out->value = weighted / weight_sum * multiplier;
    out->lower = out->value + spread * (on_total.lower - total);
    out->upper = out->value + spread * (on_total.upper - total);
    return 0;
}

int cc_stats_expected(size_t n_bands, const double *populations,
                      const double *reference_counts,
                      const double *reference_populations, double *expected)
{
    double sum = 0;

    for (size_t i = 0; i < n_bands; i++) {
        double population = populations[i];
        double reference_count = reference_counts[i];
        double reference_population = reference_populations[i];
        if (!isfinite(population) || !isfinite(reference_count) ||
            !isfinite(reference_population) || population < 0 ||
            reference_count < 0 || reference_population <= 0)
            return CC_EINVAL;
        sum += reference_count / reference_population * population;
    }
    *expected = sum;
    return 0;
}

int cc_stats_mean_from_summary(double n_values, double mean,
                               double standard_deviation, double confidence,
                               struct cc_interval *out)
{
    if (!isfinite(n_values) || !isfinite(mean) || !isfinite(standard_deviation) ||
        n_values < 2 || standard_deviation < 0 || !confidence_is_valid(confidence))
        return CC_EINVAL;
    double t = gsl_cdf_tdist_Pinv(confidence + (1.0 - confidence) / 2.0, n_values - 1.0);
    if (!isfinite(t))
        return CC_ESTATS;
    double half_width = t * standard_deviation / sqrt(n_values);
    out->value = mean;
    out->lower = mean - half_width;
    out->upper = mean + half_width;
    out->confidence = confidence;
    out->method = CC_STATS_STUDENT_T;
    return 0;
}

int cc_stats_mean(size_t n_values, const double *values, double confidence,
                  struct cc_interval *out, double *standard_deviation)
{
    double mean = 0, sum_of_squares = 0;

    if (n_values < 2)
        return CC_EINVAL;
    /* Welford's update: stable for values far from zero. */
    for (size_t i = 0; i < n_values; i++) {
        double x = values[i];
        if (!isfinite(x))
            return CC_EINVAL;
        double delta = x - mean;
        mean += delta / (double)(i + 1);
        sum_of_squares += delta * (x - mean);
    }
    double sd = sqrt(sum_of_squares / (double)(n_values - 1));
    int rc = cc_stats_mean_from_summary((double)n_values, mean, sd, confidence, out);
    if (rc == 0 && standard_deviation)
        *standard_deviation = sd;
    return rc;
}

/* The proportion on one funnel limit at population n around average p, for
 * the one-sided normal quantile q (PHEindicatormethods sigma_adjustment(),
 * from the Wilson score interval solved for the observed proportion). */
static double proportion_funnel_limit(double q, double n, double p, int upper)
{
    double q2 = q * q;
    double first = p * (n / q2 + 1.0);
    double b = -8.0 * first;
    double inner = b * b - 64.0 * (1.0 / q2 + 1.0 / n) * p *
                               (n * (p * (n / q2 + 2.0) - 1.0) + q2 * (p - 1.0));
    double adjust = sqrt(inner > 0 ? inner : 0);
    double last = 1.0 / q2 + 1.0 / n;
    double limit = (first + (upper ? adjust : -adjust) / 8.0) / last;
    return limit / n;
}

int cc_stats_funnel_proportion(double average_proportion, double population,
                               double confidence, double multiplier,
                               struct cc_funnel_point *out)
{
    double z;
    int rc;

    if (!isfinite(average_proportion) || !isfinite(population) ||
        !isfinite(multiplier) || average_proportion < 0 || average_proportion > 1 ||
        population <= 0 || multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_z(confidence, &z)) < 0)
        return rc;
    double lower = proportion_funnel_limit(z, population, average_proportion, 0);
    double upper = proportion_funnel_limit(z, population, average_proportion, 1);
    if (!isfinite(lower) || !isfinite(upper))
        return CC_ESTATS;
    lower *= multiplier;
    upper *= multiplier;
    out->lower_denominator = population;
    out->upper_denominator = population;
    out->lower_limit = lower < 0 ? 0 : lower > multiplier ? multiplier : lower;
    out->upper_limit = upper < 0 ? 0 : upper > multiplier ? multiplier : upper;
    return 0;
}

/* Above this many events funnel limits use Byar's approximation (it agrees
 * with the exact limits to 4e-10 relative at 100,000 events). */
#define FUNNEL_EXACT_MAX_EVENTS 100000.0

int cc_stats_funnel_ratio(double observed_events, double confidence,
                          struct cc_funnel_point *out)
{
    struct cc_interval exact;
    int rc;

    if (!isfinite(observed_events) || observed_events < 1)
        return CC_EINVAL;
    /* PHEindicatormethods finds these by bisection (poisson_funnel()); they
     * are the exact Poisson limits of the observed count. GSL's chi-square
     * quantile fails for very large degrees of freedom (2 million), where
     * Byar's approximation agrees with the exact limits to 1e-9. */
    if (observed_events <= FUNNEL_EXACT_MAX_EVENTS)
        rc = cc_stats_exact_poisson(observed_events, confidence, &exact);
    else
        rc = cc_stats_byars(observed_events, confidence, &exact);
    if (rc < 0)
        return rc;
    out->lower_denominator = exact.upper;
    out->lower_limit = observed_events / exact.upper;
    out->upper_denominator = exact.lower;
    out->upper_limit = observed_events / exact.lower;
    return 0;
}

/* The count limit the funnels use at events events and one tail: exact
 * (continuous in events through the gamma function) up to
 * FUNNEL_EXACT_MAX_EVENTS, Byar's above, as cc_stats_funnel_ratio(). */
static double funnel_count_limit(double events, double tail, double z, int upper)
{
    if (events <= FUNNEL_EXACT_MAX_EVENTS) {
        if (upper)
            return poisson_upper_limit(events, tail);
        return events > 0 ? poisson_lower_limit(events, tail) : 0.0;
    }
    if (upper) {
        double next = events + 1.0;
        double base = 1.0 - 1.0 / (9.0 * next) + z / (3.0 * sqrt(next));
        return next * base * base * base;
    }
    double base = 1.0 - 1.0 / (9.0 * events) - z / (3.0 * sqrt(events));
    return events * base * base * base;
}

/* The events O (>= 0) whose count limit (upper or lower) equals expected,
 * by bisection: both limits increase with O. -1 if even O = 0 has an upper
 * limit at or above expected (no O lies on the lower funnel line). */
static double funnel_events_at(double expected, double tail, double z, int upper_limit)
{
    double lo, hi;
    if (upper_limit) {
        /* the lower funnel line: upper(O) = expected, with O < expected */
        if (funnel_count_limit(0, tail, z, 1) >= expected)
            return -1;
        lo = 0;
        hi = expected;
    } else {
        /* the upper funnel line: lower(O) = expected, with O > expected */
        lo = expected;
        hi = expected + 10.0 * sqrt(expected) + 20.0;
        while (funnel_count_limit(hi, tail, z, 0) < expected)
            hi = expected + 2.0 * (hi - expected);
    }
    for (int i = 0; i < 200 && hi - lo > 1e-13 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (funnel_count_limit(mid, tail, z, upper_limit) < expected)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

int cc_stats_funnel_ratio_at(double expected, double confidence, double multiplier,
                             struct cc_funnel_point *out)
{
    double z;
    int rc;

    if (!isfinite(expected) || !isfinite(multiplier) || expected <= 0 || multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_z(confidence, &z)) < 0)
        return rc;
    double tail = (1.0 - confidence) / 2.0;
    double on_lower = funnel_events_at(expected, tail, z, 1);
    double on_upper = funnel_events_at(expected, tail, z, 0);
    if (!isfinite(on_lower) || !isfinite(on_upper))
        return CC_ESTATS;
    out->lower_denominator = expected;
    out->upper_denominator = expected;
    out->lower_limit = on_lower < 0 ? 0.0 : on_lower / expected * multiplier;
    out->upper_limit = on_upper / expected * multiplier;
    return 0;
}

int cc_stats_funnel_rate_at(double population, double average_rate, double confidence,
                            double multiplier, struct cc_funnel_point *out)
{
    int rc;

    if (!isfinite(population) || !isfinite(average_rate) || !isfinite(multiplier) ||
        population <= 0 || average_rate <= 0 || multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_funnel_ratio_at(population * average_rate, confidence,
                                       average_rate * multiplier, out)) < 0)
        return rc;
    out->lower_denominator = population;
    out->upper_denominator = population;
    return 0;
}

int cc_stats_funnel_dsr_population(double events, double dsr, double multiplier,
                                   double *population)
{
    if (!isfinite(events) || events < 0 || !isfinite(multiplier) || multiplier <= 0)
        return CC_EINVAL;
    if (events == 0) {
        *population = NAN;
        return CC_ERANGE;
    }
    if (!isfinite(dsr) || dsr <= 0)
        return CC_EINVAL;
    *population = multiplier * events / dsr;
    return 0;
}

int cc_stats_funnel_rate(double events, double average_rate, double confidence,
                         double multiplier, struct cc_funnel_point *out)
{
    struct cc_funnel_point ratio;
    int rc;

    if (!isfinite(average_rate) || !isfinite(multiplier) || average_rate <= 0 ||
        multiplier <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_funnel_ratio(events, confidence, &ratio)) < 0)
        return rc;
    out->lower_denominator = ratio.lower_denominator / average_rate;
    out->lower_limit = events / out->lower_denominator * multiplier;
    out->upper_denominator = ratio.upper_denominator / average_rate;
    out->upper_limit = events / out->upper_denominator * multiplier;
    return 0;
}

/* The number of characters R's as.character() writes for a whole number
 * v >= 0: its digits, or the scientific form ("1e+05", "2.5e+07") when
 * that is shorter (R prefers fixed notation on a tie). */
static int r_character_width(double v)
{
    char fixed[64];
    int width = snprintf(fixed, sizeof fixed, "%.0f", v);
    int significant = width;
    while (significant > 1 && fixed[significant - 1] == '0')
        significant--;
    int exponent = width - 1;
    int scientific = (significant == 1 ? 1 : significant + 1) + 2 + (exponent >= 100 ? 3 : 2);
    return scientific < width ? scientific : width;
}

/* The package's signif.floor(x, 0.95) and signif.ceiling(x, 1.05): x scaled
 * and rounded down (up) to its leading one (two) significant figures. */
static double axis_floor(double x)
{
    if (x == 0)
        return 0;
    double scale = pow(10.0, r_character_width(floor(x * 0.95)) - 1);
    return floor(x * 0.95 / scale) * scale;
}

static double axis_ceiling(double x)
{
    if (x == 0)
        return 0;
    double scale = pow(10.0, r_character_width(ceil(x * 1.05)) - 2);
    return ceil(x * 1.05 / scale) * scale;
}

int cc_stats_funnel_axis(enum cc_stats_funnel_statistic statistic, double min_denominator,
                         double max_denominator, double average, double years_of_data,
                         double points[CC_STATS_FUNNEL_TABLE_POINTS])
{
    int rate = statistic == CC_STATS_FUNNEL_OF_RATE;
    if (!isfinite(min_denominator) || !isfinite(max_denominator) || min_denominator <= 0 ||
        min_denominator > max_denominator ||
        (rate && (!isfinite(average) || !isfinite(years_of_data) || average <= 0 ||
                  years_of_data <= 0)))
        return CC_EINVAL;
    double years = rate ? years_of_data : 1.0;
    double low = max_denominator > 2 * min_denominator
                     ? 0
                     : axis_floor(min_denominator / years) * years;
    double high = axis_ceiling(max_denominator / years) * years;
    if (rate) {
        low = floor(low * average);
        high = ceil(high * average);
    }
    /* calculate_funnel_limits(): first_col */
    points[0] = low > 1 ? low : 1;
    for (int j = 2; j <= CC_STATS_FUNNEL_TABLE_POINTS; j++) {
        double offset = statistic == CC_STATS_FUNNEL_OF_RATIO ? j - 1 : j;
        double previous = points[j - 2];
        double step = nearbyint(pow(high / previous, 1.0 / (101.0 - offset)) * previous);
        points[j - 1] = step > previous + 1 ? step : previous + 1;
    }
    return 0;
}

const char *cc_stats_funnel_significance_name(enum cc_stats_funnel_significance s)
{
    switch (s) {
    case CC_STATS_FUNNEL_HIGH_0001: return "High (0.001)";
    case CC_STATS_FUNNEL_HIGH_0025: return "High (0.025)";
    case CC_STATS_FUNNEL_LOW_0001: return "Low (0.001)";
    case CC_STATS_FUNNEL_LOW_0025: return "Low (0.025)";
    case CC_STATS_FUNNEL_NOT_SIGNIFICANT: return "Not significant";
    case CC_STATS_FUNNEL_NOT_APPLICABLE:
        return "Not applicable for events less than 10 for dsrs";
    }
    return "unknown";
}

int cc_stats_funnel_significance_proportion(double numerator,
                                            double denominator,
                                            double average_proportion,
                                            enum cc_stats_funnel_significance *out)
{
    struct cc_funnel_point outer, inner;
    int rc;

    if (!isfinite(numerator) || numerator < 0 || !(numerator <= denominator))
        return CC_EINVAL;
    /* Unclipped limits are not needed: a proportion lies in [0, 1]. */
    if ((rc = cc_stats_funnel_proportion(average_proportion, denominator, 0.998, 1.0,
                                         &outer)) < 0 ||
        (rc = cc_stats_funnel_proportion(average_proportion, denominator, 0.95, 1.0,
                                         &inner)) < 0)
        return rc;
    double p = numerator / denominator;
    if (p < outer.lower_limit)
        *out = CC_STATS_FUNNEL_LOW_0001;
    else if (p < inner.lower_limit)
        *out = CC_STATS_FUNNEL_LOW_0025;
    else if (p > outer.upper_limit)
        *out = CC_STATS_FUNNEL_HIGH_0001;
    else if (p > inner.upper_limit)
        *out = CC_STATS_FUNNEL_HIGH_0025;
    else
        *out = CC_STATS_FUNNEL_NOT_SIGNIFICANT;
    return 0;
}

int cc_stats_funnel_significance_poisson(double observed, double expected,
                                         enum cc_stats_funnel_significance *out)
{
    struct cc_interval outer, inner;
    int rc;

    if (!isfinite(expected) || expected <= 0)
        return CC_EINVAL;
    if ((rc = cc_stats_poisson_count(observed, 0.998, &outer)) < 0 ||
        (rc = cc_stats_poisson_count(observed, 0.95, &inner)) < 0)
        return rc;
    /* A lower limit of NaN (Byar's below zero) cannot exceed expected. */
    if (outer.lower > expected)
        *out = CC_STATS_FUNNEL_HIGH_0001;
    else if (inner.lower > expected)
        *out = CC_STATS_FUNNEL_HIGH_0025;
    else if (outer.upper < expected)
        *out = CC_STATS_FUNNEL_LOW_0001;
    else if (inner.upper < expected)
        *out = CC_STATS_FUNNEL_LOW_0025;
    else
        *out = CC_STATS_FUNNEL_NOT_SIGNIFICANT;
    return 0;
}

int cc_stats_funnel_significance_dsr(double events, double population,
                                     double average_rate,
                                     enum cc_stats_funnel_significance *out)
{
    if (!isfinite(events) || events < 0)
        return CC_EINVAL;
    /* The package tests the row like a crude rate, then overwrites the
     * label of every DSR below 10 events. */
    if (events < CC_STATS_FUNNEL_DSR_MIN_EVENTS) {
        *out = CC_STATS_FUNNEL_NOT_APPLICABLE;
        return 0;
    }
    if (!isfinite(population) || !isfinite(average_rate) || population <= 0 ||
        average_rate <= 0)
        return CC_EINVAL;
    return cc_stats_funnel_significance_poisson(events, population * average_rate, out);
}

const char *cc_stats_comparison_name(enum cc_stats_comparison comparison)
{
    switch (comparison) {
    case CC_STATS_SIMILAR: return "similar";
    case CC_STATS_HIGHER: return "significantly higher";
    case CC_STATS_LOWER: return "significantly lower";
    case CC_STATS_NOT_COMPARED: return "not compared";
    }
    return "unknown";
}

enum cc_stats_comparison cc_stats_compare(const struct cc_interval *area,
                                          double comparator)
{
    if (!area || !isfinite(area->lower) || !isfinite(area->upper) ||
        !isfinite(comparator))
        return CC_STATS_NOT_COMPARED;
    if (comparator < area->lower)
        return CC_STATS_HIGHER;
    if (comparator > area->upper)
        return CC_STATS_LOWER;
    return CC_STATS_SIMILAR;
}
