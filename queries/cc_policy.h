/*
 * cc_policy.h: the disclosure policy: every setting of disclosure control in
 * one structure, with its default, loaded from a JSON policy file.
 *
 * The policy says how counts are protected (suppression threshold, whether
 * true zeros are shown, the rounding base, the cell key perturbation's
 * maximum noise and variance, the condition noise layer), which queries are
 * refused (minimum population, too-fine dimensions, cells per query,
 * low-effect conditions), and names itself with a version string that every
 * release carries. docs/privacy.md lists every key with its default.
 *
 * A policy is only ever obtained from cc_policy_default() or
 * cc_policy_load*(), which check it; cc_policy_check() states the
 * invariants and the release layer checks them again before it answers, so
 * a policy edited in memory into something unsafe is refused, not used.
 *
 * Must never: be loosened by a request. A query cannot name a policy or
 * change one of its settings; only the operator's policy file can.
 */
#ifndef CC_POLICY_H
#define CC_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CC_POLICY_VERSION_BYTES 64

/* Largest maximum noise D of a perturbation layer, and largest threshold
 * and rounding base, so the perturbation table stays small and every check
 * below has a bound. */
#define CC_POLICY_MAX_NOISE_CAP 10
#define CC_POLICY_THRESHOLD_CAP 100
#define CC_POLICY_ROUNDING_BASE_CAP 100

/* Defaults. */
#define CC_POLICY_DEFAULT_VERSION "carecount-default-1"
#define CC_POLICY_DEFAULT_THRESHOLD 8
#define CC_POLICY_DEFAULT_SHOW_ZEROS true
#define CC_POLICY_DEFAULT_ROUNDING_BASE 5
#define CC_POLICY_DEFAULT_MAX_NOISE 3
#define CC_POLICY_DEFAULT_NOISE_VARIANCE 2.0
#define CC_POLICY_DEFAULT_CONDITION_MAX_NOISE 2
#define CC_POLICY_DEFAULT_CONDITION_NOISE_VARIANCE 1.0
#define CC_POLICY_DEFAULT_MIN_POPULATION 100
#define CC_POLICY_DEFAULT_MIN_CELL_POPULATION 20
#define CC_POLICY_DEFAULT_MAX_CELLS 10000
#define CC_POLICY_DEFAULT_LOW_EFFECT_SPREAD 2
#define CC_POLICY_DEFAULT_LEDGER_NEAR_DIFFERENCE 100
#define CC_POLICY_DEFAULT_LEDGER_BUDGET 100
#define CC_POLICY_DEFAULT_LEDGER_WINDOW_DAYS 30
#define CC_POLICY_DEFAULT_LEDGER_CELL_MAX 1000
#define CC_POLICY_DEFAULT_LEDGER_CELL_DAYS 90
#define CC_POLICY_DEFAULT_LEDGER_CELLS 500000
#define CC_POLICY_DEFAULT_MODE CC_POLICY_MODE_PERTURBED

/* How a release protects its cells ("mode"). */
enum cc_policy_mode {
    /* the cell key method and the condition layer, then suppression and
     * rounding; margins are cells of their own and need not add up */
    CC_POLICY_MODE_PERTURBED = 0,
    /* operator-approved tables released without noise: primary
     * suppression, rounding, then secondary suppression (cc_suppress.h) so
     * that no suppressed cell can be recovered from the cells and margins */
    CC_POLICY_MODE_FIXED = 1,
};

struct cc_policy {
    /* Names this policy in every release ("version"); 1-63 printable ASCII
     * characters. */
    char version[CC_POLICY_VERSION_BYTES];
    /* No released count lies in 1..threshold-1 ("threshold", 8). */
    uint32_t threshold;
    /* A cell released as 0 is shown as 0 (true) or suppressed (false)
     * ("show_zeros", true). */
    bool show_zeros;
    /* Released counts are multiples of this ("rounding_base", 5; 1: no
     * rounding). */
    uint32_t rounding_base;
    /* The cell key layer: noise in -max_noise..max_noise with this variance
     * ("max_noise", 3; "noise_variance", 2.0), from the perturbation table. */
    uint32_t max_noise;
    double noise_variance;
    /* The condition layer (DESIGN, Disclosure control 9): a second draw
     * from a table of its own, seeded by the cell key and the person set of
     * every condition ("condition_max_noise", 2; "condition_noise_variance",
     * 1.0). 0 and 0.0 turn the layer off. */
    uint32_t condition_max_noise;
    double condition_noise_variance;
    /* Every publication (data version) draws the noise of every cell
     * afresh: both layers are seeded with the version's noise epoch too
     * (cc_dataversion_noise_epoch), so that comparing a table before and
     * after a publication shows every cell changed, not the cells whose
     * persons changed (DESIGN, Disclosure control 11; docs/privacy.md,
     * "Publications") ("publication_noise", true). */
    bool publication_noise;
    /* Queries over a universe whose public population (ONS estimates of
     * the query's areas, ages and sexes) is below this are refused
     * ("min_population", 100). */
    uint64_t min_population;
    /* Dimensions too fine together: refused when the public population of
     * the smallest person cell (one value of each area, age band and sex
     * dimension, within the universe; divided by the number of practices
     * for a practice dimension) is below this ("min_cell_population", 20). */
    uint64_t min_cell_population;
    /* Cells per query at most ("max_cells", 10000). */
    uint64_t max_cells;
    /* Every restriction must change the cohort by at least this many
     * persons, decided against a sticky noisy threshold in
     * low_effect_persons +- low_effect_spread ("low_effect_persons",
     * default: the threshold; "low_effect_spread", 2). */
    uint32_t low_effect_persons;
    uint32_t low_effect_spread;
    /* The disclosure ledger (cc_ledger.h; docs/privacy.md, "Disclosure
     * ledger"), when the server gives one: a query whose cohort differs
     * from a cohort the account was answered before by fewer than
     * ledger_min_difference persons is refused ("ledger_min_difference",
     * default: the threshold); one that differs from one by fewer than
     * ledger_near_difference is a near difference ("ledger_near_difference",
     * 100), of which an account gets ledger_budget ("ledger_budget", 100)
     * per ledger_window_days ("ledger_window_days", 30). */
    uint32_t ledger_min_difference;
    uint32_t ledger_near_difference;
    uint32_t ledger_budget;
    uint32_t ledger_window_days;
    /* The ledger's cells (docs/privacy.md, "Cells across releases"): a
     * cell of fewer than ledger_cell_max persons ("ledger_cell_max", 1000;
     * 0: off) whose persons are nearly those of a cell released to the
     * same account within ledger_cell_days ("ledger_cell_days", 90) is
     * answered with that cell's released value; an account has at most
     * ledger_cells cells remembered ("ledger_cells", 500000), beyond which
     * its queries are refused until older ones expire. */
    uint32_t ledger_cell_max;
    uint32_t ledger_cell_days;
    uint32_t ledger_cells;
    /* "mode": "perturbed" (the default) or "fixed" (enum cc_policy_mode). A
     * policy file must say "fixed" to get it; the noise layers' settings
     * are then unused. */
    enum cc_policy_mode mode;
    /* Fixed mode: every primary-suppressed cell of true value x keeps a
     * feasible range, given all that is released, reaching x - p and x + p
     * or, nearer, the ends of its baseline (cc_suppress.h)
     * ("protection_level", default: the threshold; 1..1000). */
    uint32_t protection_level;

    /* Switches for the attack suite's control runs, so each attack is shown
     * to work without the protection it is defeated by. A policy file
     * cannot set them; they default to on. */
    bool perturb;            /* both noise layers */
    bool refuse_low_effect;  /* the low-effect rule */
    bool restrict_queries;   /* minimum population, fine dimensions, cells */
};

/* Fills *policy with the defaults above. */
void cc_policy_default(struct cc_policy *policy);

/* Checks the invariants: version non-empty printable ASCII; 1 <= threshold
 * <= 100; 1 <= rounding_base <= 100; max_noise <= 10 and 0 <= noise_variance
 * <= the variance the table can reach for max_noise ((D+1)(2D+1)/6), and 0
 * exactly when max_noise is 0; the same for the condition layer;
 * low_effect_spread < low_effect_persons (so a condition that changes
 * nothing is always refused); max_cells >= 1; 1 <= ledger_min_difference
 * <= ledger_near_difference; ledger_window_days >= 1; mode is perturbed or
 * fixed; 1 <= protection_level <= 1000. Returns 0 or CC_EINVAL with
 * "key: reason" in errbuf. */
int cc_policy_check(const struct cc_policy *policy, char *errbuf, size_t errlen);

/* Reads a policy from JSON text: an object whose keys are the quoted names
 * above, each optional (absent keys keep their defaults). An unknown key, a
 * wrong type, a value out of range or a duplicate key is refused. Returns 0,
 * CC_EPARSE (malformed JSON, a wrong type or an unknown key) or CC_EINVAL
 * (a value out of range), with "key: reason" (or the line and column of a
 * JSON error) in errbuf. */
int cc_policy_parse(const char *text, size_t len, struct cc_policy *policy, char *errbuf,
                    size_t errlen);

/* Reads a policy file (at most 64 KiB) as cc_policy_parse(). CC_EIO if it
 * cannot be read, CC_ETOOBIG if larger. */
int cc_policy_load(const char *path, struct cc_policy *policy, char *errbuf, size_t errlen);

/* The largest variance a symmetric table over -max_noise..max_noise can
 * have with the mass spread evenly over its non-zero values:
 * (D+1)(2D+1)/6. */
double cc_policy_max_variance(uint32_t max_noise);

#endif
