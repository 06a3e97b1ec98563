/*
 * cc_compare.h: area comparisons, as Fingertips draws them: a rate or
 * proportion per area (region, ICB or local authority district) with 95% and
 * 99.8% confidence intervals, each area against England or its parent area
 * (significantly higher, similar, significantly lower, or not compared), and
 * funnel-plot control limits at the area's denominator. docs/comparisons.md
 * describes the request and every rule; docs/statistics.md the formulas.
 *
 * Two steps, because derived figures may only be computed from protected
 * counts (DESIGN, Disclosure control 6):
 *
 *   1. cc_compare_run() (cc_compare_internal.h, internal to queries/) runs
 *      the numerator and denominator queries through the engine with an
 *      extra area dimension (and a 5-year age band dimension for
 *      standardised methods) and returns a RAW comparison: the layout
 *      (which areas, their parents, England; names and codes) and the
 *      EXACT counts per area and band, with the engine's raw results (cell
 *      keys, cohort sizes) kept for disclosure control. The exact counts
 *      are the input of disclosure control and nothing else: no code path
 *      that answers a researcher may read them, and this header does not
 *      declare them.
 *
 *   2. cc_release_compare() (cc_release_internal.h) protects every count
 *      and denominator of the raw comparison into a struct
 *      cc_compare_released, and cc_compare_finish() computes values,
 *      intervals, comparisons and funnel limits FROM THOSE RELEASED COUNTS
 *      only: it takes no other type, so an exact count cannot reach it by
 *      mistake. A unit with a suppressed count or denominator gets no value
 *      and is "not compared". Tests of the statistics themselves use
 *      cc_compare_finish_counts() (cc_compare_internal.h) on raw->exact.
 *
 * cc_release_comparison() (cc_release.h) does both steps in one call, and
 * is the only way server/ and tools/ have to a comparison's figures; what
 * they use of this header is the request, its wire form and the names.
 *
 * Comparator units (England and, for the parent comparator, every parent
 * area) are units of their own with their own counts, so disclosure control
 * protects them like any other cell; the comparator value is computed from
 * those (protected) counts, not by adding up areas after the fact.
 *
 * The statistics come from cc_stats (GSL): as there, the program must have
 * called gsl_set_error_handler_off() once at start, so a failed quantile is
 * CC_ESTATS and never an abort.
 *
 * Must never: print, log or return anything about a person; release an
 * exact count (only cc_compare_finish()'s input decides what is shown).
 */
#ifndef CC_COMPARE_H
#define CC_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_codelist.h"
#include "cc_dataversion.h"
#include "cc_query.h"
#include "cc_stats.h"

/* How the value is computed from counts. */
enum cc_compare_method {
    CC_COMPARE_PROPORTION = 1, /* count / denominator, Wilson intervals */
    CC_COMPARE_CRUDE_RATE = 2, /* count / denominator, exact Poisson below 10, else Byar's */
    CC_COMPARE_DSR = 3,        /* directly standardised rate, ESP 2013, Dobson intervals */
    CC_COMPARE_ISR = 4,        /* indirectly standardised ratio: observed / expected */
};

/* Where the denominator comes from. */
enum cc_compare_denominator {
    CC_COMPARE_REGISTERED = 1, /* opted-in registered population (the default) */
    CC_COMPARE_ESTIMATE = 2,   /* ONS population estimates */
    CC_COMPARE_QUERY = 3,      /* request.denominator_query */
};

/* What each area is compared with. */
enum cc_compare_comparator {
    CC_COMPARE_NATIONAL = 1, /* England: all areas together (the default) */
    CC_COMPARE_PARENT = 2,   /* lad -> its ICB, ICB -> its region, region -> England */
};

/* Why a unit has no value, or that it has one. */
enum cc_compare_status {
    CC_COMPARE_OK = 0,         /* value and intervals computed */
    CC_COMPARE_SUPPRESSED,     /* a count or denominator was suppressed */
    CC_COMPARE_NO_DENOMINATOR, /* denominator (or expected count) is zero */
    CC_COMPARE_TOO_FEW_EVENTS, /* DSR with fewer than 10 events (PHE does not publish) */
    CC_COMPARE_INCONSISTENT,   /* count above its denominator (proportion), or events
                                * in an age band with no population */
};

/* Confidence levels of the two intervals every row carries. */
#define CC_COMPARE_LEVEL_95  0.95
#define CC_COMPARE_LEVEL_998 0.998

/* England's code in units[] (ONS GSS code of the country). */
#define CC_COMPARE_ENGLAND_CODE "E92000001"
#define CC_COMPARE_NO_UNIT      UINT32_MAX
#define CC_COMPARE_NAME_BYTES   96

/*
 * A comparison request. numerator is a validated query (measure persons or
 * events) with no dimensions and no area filter: the comparison adds the
 * area (and age band) dimensions itself. The denominator query, for
 * CC_COMPARE_QUERY, follows the same rules (any measure). For the
 * registered population and the estimate the denominator is the population
 * measure with the numerator's person filters (age, sex) and its date: ages
 * on as_of, else on the first day of the month after filters.date_range.to,
 * as the numerator's persons are aged.
 */
struct cc_compare_request {
    const struct cc_query *numerator;
    uint8_t denominator;                      /* enum cc_compare_denominator; 0: registered */
    const struct cc_query *denominator_query; /* CC_COMPARE_QUERY only */
    uint8_t area_level;                       /* CC_AREA_LAD, CC_AREA_ICB or CC_AREA_REGION */
    uint8_t comparator;                       /* enum cc_compare_comparator; 0: national */
    uint8_t method;                           /* enum cc_compare_method */
    /* Values are count / denominator x multiplier. 0: the method's default:
     * 100 for a proportion (a percentage), 100,000 for crude and directly
     * standardised rates, 100 for an indirectly standardised ratio. */
    double multiplier;
};

/* One unit of a comparison: an area, a parent area, or England. */
struct cc_compare_unit {
    uint8_t level;       /* enum cc_area_level; CC_AREA_NATION for England */
    uint32_t area;       /* index in the store's column of that level (0 for England) */
    uint32_t comparator; /* index in units[] of the unit it is compared with;
                          * CC_COMPARE_NO_UNIT for England */
    char code[CC_AREA_CODE_BYTES];
    char name[CC_COMPARE_NAME_BYTES]; /* the area's name, truncated */
};

/* The shape of a comparison: no counts. */
struct cc_compare_layout {
    uint8_t method, denominator, area_level, comparator;
    double multiplier; /* resolved: never 0 */
    /* units[0, n_areas) are the areas compared, in the store's order; then
     * the parents (for CC_COMPARE_PARENT below region level); England last. */
    uint32_t n_areas, n_units;
    uint32_t n_bands;              /* 1, or CC_N_AGE_BANDS_5Y for DSR and ISR */
    struct cc_compare_unit *units; /* [n_units] */
};

/* One unit's figures. Numbers that do not apply are NaN. */
struct cc_compare_row {
    uint8_t status;     /* enum cc_compare_status */
    double count;       /* as given (sum over bands); NaN when suppressed */
    double denominator; /* as given (sum over bands); NaN when suppressed */
    double expected;    /* ISR: expected count from England's band rates */
    double value;
    struct cc_interval ci95, ci998;
    /* The 95% interval that includes disclosure control's error
     * (docs/comparisons.md, "Intervals that include the noise"): for a
     * proportion or crude rate the score interval with the perturbation's
     * variance added to the sampling variance, its ends taken half a
     * rounding base either side of the released count; for the
     * standardised methods ci95 widened in quadrature by the error's
     * standard deviation (delta method). ci95 itself when the counts carry
     * no such error. */
    struct cc_interval ci95_noise;
    double comparator_value; /* the comparator unit's value; NaN for England */
    enum cc_stats_comparison comparison95, comparison998;
    /* Funnel-plot control limits at this unit's denominator (expected count
     * for ISR) around the comparator value, on the value's scale. */
    double funnel95_lower, funnel95_upper, funnel998_lower, funnel998_upper;
    /* Where those limits are drawn, the unit's x on a funnel plot: the
     * denominator (proportion, crude rate), the expected count (ISR) or the
     * derived population count x multiplier / value (DSR); NaN when the
     * unit has no funnel limits. */
    double funnel_x;
};

/* Points on the funnel curve of a national comparison. */
#define CC_COMPARE_FUNNEL_POINTS 41

/* One point of the funnel curve: the limits at x (NaN where they do not
 * apply), on the value's scale. */
struct cc_compare_funnel_point {
    double x;
    double lower95, upper95, lower998, upper998;
};

/* A finished comparison: rows[i] belongs to layout.units[i]. The caller
 * frees with cc_compare_result_free(). */
struct cc_compare_result {
    uint32_t n_rows;
    struct cc_compare_row *rows;
    /* The funnel to draw behind the areas of a national comparison with an
     * England value: the limits around England's value (funnel_value) at
     * n_funnel x values spaced evenly on a log scale from half the smallest
     * area funnel_x to twice the largest; computed from the same released
     * counts as everything else. None (n_funnel 0, funnel NULL,
     * funnel_value NaN) for a parent comparison, whose areas have different
     * comparators, or when no area has funnel limits. */
    double funnel_value;
    uint32_t n_funnel;
    struct cc_compare_funnel_point *funnel;
};

/*
 * Released counts of a comparison (the shape of struct cc_compare_counts),
 * made by disclosure control only (cc_release_compare() in cc_release.h):
 * the one input cc_compare_finish() accepts. Freed with
 * cc_compare_released_free().
 */
struct cc_released_count; /* cc_release.h */
struct cc_compare_released {
    uint32_t n_units, n_bands;
    /* What disclosure control did to every count, for the intervals that
     * include it (ci95_noise): the variance of its perturbation (both noise
     * layers; 0 when not perturbed) and the base it was rounded to (1: not
     * rounded). */
    double noise_variance;
    uint32_t rounding_base;
    struct cc_released_count *count;       /* [n_units * n_bands] */
    struct cc_released_count *denominator; /* [n_units * n_bands] */
};

void cc_compare_released_free(struct cc_compare_released *released);

/*
 * Computes every unit's value, intervals, comparison and funnel limits from
 * released counts (which must have the layout's shape) and fills *out, which
 * the caller frees with cc_compare_result_free(). A unit whose count or
 * denominator is suppressed is CC_COMPARE_SUPPRESSED ("not compared");
 * other units that cannot be computed get another status other than
 * CC_COMPARE_OK; neither is a unit whose comparator has no value. Returns
 * 0, CC_EINVAL (counts of another shape), CC_ESTATS or CC_ENOMEM.
 */
int cc_compare_finish(const struct cc_compare_layout *layout,
                      const struct cc_compare_released *released, struct cc_compare_result *out);

void cc_compare_result_free(struct cc_compare_result *result);

/* The count limits of a funnel: for a Poisson mean, the counts whose exact
 * confidence interval at `confidence` just reaches that mean from below
 * (*lower) and from above (*upper); *lower is 0 when even no events would
 * reach it. The funnel limits of a rate at population n around rate r are
 * these at mean n r, divided by n. 0, CC_EINVAL or CC_ESTATS. */
int cc_compare_funnel_counts(double mean, double confidence, double *lower, double *upper);

/* Names: "proportion", "crude_rate", "dsr", "isr"; "registered", "estimate",
 * "query"; "national", "parent"; "ok", "suppressed", "no_denominator",
 * "too_few_events", "inconsistent". NULL for a value not in the enum. */
const char *cc_compare_method_name(int method);
const char *cc_compare_denominator_name(int denominator);
const char *cc_compare_comparator_name(int comparator);
const char *cc_compare_status_name(int status);

/* ---- the wire form (cc_compare_codec.c; docs/comparisons.md) ---- */

#define CC_COMPARE_VERSION 1 /* the "v" key of the request map */

/*
 * A decoded request: the request and the queries it owns. Free with
 * cc_compare_decoded_free().
 */
struct cc_compare_decoded {
    struct cc_compare_request request; /* points at the queries below */
    struct cc_query *numerator;
    struct cc_query *denominator_query; /* NULL unless the denominator is a query */
};

/*
 * Decodes a request map {"v": 1, "numerator": QUERY, "denominator":
 * "registered" | "estimate" | QUERY, "level": "region" | "icb" | "lad",
 * "comparator": "national" | "parent", "method": "proportion" |
 * "crude_rate" | "dsr" | "isr", "multiplier": NUMBER} from an unpacked
 * msgpack object (bounded by the caller, as the server bounds every
 * request) or from JSON text. Queries decode as cc_query_decode_object() /
 * cc_query_decode_json() decode them, under limits (NULL: defaults). Unknown
 * keys, wrong types and unknown names are refused with "field: reason" in
 * errbuf: CC_EPARSE, CC_ETOOBIG, CC_EUNSUPPORTED (a "v" other than 1),
 * CC_ENOMEM. On success the caller frees *out with
 * cc_compare_decoded_free(); on failure nothing is left to free.
 */
int cc_compare_decode_object(const msgpack_object *obj, const struct cc_query_limits *limits,
                             struct cc_compare_decoded *out, char *errbuf, size_t errlen);
int cc_compare_decode_json(const char *text, size_t len, const struct cc_query_limits *limits,
                           struct cc_compare_decoded *out, char *errbuf, size_t errlen);

void cc_compare_decoded_free(struct cc_compare_decoded *decoded);

/* Packs the canonical form of a request as one msgpack map (the keys of
 * cc_compare_decode_object(), every one given, the queries in their
 * canonical form; a multiplier of 0 is left out). 0, CC_ENOMEM or
 * CC_EINVAL (an enum out of range). */
int cc_compare_pack(const struct cc_compare_request *request, msgpack_packer *packer);

/* The same canonical form as compact JSON, into a malloc'd NUL-terminated
 * string the caller frees with free(). 0, CC_ENOMEM or CC_EINVAL. */
int cc_compare_encode_json(const struct cc_compare_request *request, char **out);

#endif
