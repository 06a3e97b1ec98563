/*
 * cc_release_internal.h: the pieces of disclosure control that tests check
 * one by one: the perturbation table, the hash that turns keys into draws,
 * rounding and the low-effect threshold; and the steps that read the
 * engine's raw results (the refusal rules, the ledger, fixed mode, a raw
 * comparison's protection). Internal to queries/ (and its tests); nothing
 * here is part of the release contract.
 *
 * Must never: be included outside queries/ and tests/.
 */
#ifndef CC_RELEASE_INTERNAL_H
#define CC_RELEASE_INTERNAL_H

#include <stdint.h>

#include "cc_compare_internal.h"
#include "cc_policy.h"
#include "cc_release.h"

#define CC_PTABLE_ROWS (CC_POLICY_MAX_NOISE_CAP + 1)
#define CC_PTABLE_COLUMNS (2 * CC_POLICY_MAX_NOISE_CAP + 1)
#define CC_PTABLE_UNITS (UINT64_C(1) << 32) /* a row's probabilities sum to this */

/*
 * A perturbation table (the ABS/ONS cell key method). Row r gives the noise
 * distribution for a count of r (r < max_noise) or of max_noise or more
 * (the last row). Column c is the noise c - max_noise. Derived, not typed
 * in, from the documented constraints:
 *   - the noise never takes a count below 0: row r has support -m..m with
 *     m = min(r, max_noise), so every row is symmetric and unbiased (mean 0);
 *   - a row puts probability p0 on no noise and spreads 1 - p0 evenly over
 *     the non-zero noises, with p0 chosen so the variance is the policy's
 *     (rows too short to reach it get the most they can: p0 = 0);
 *   - row 0 is all no noise: a cell with nobody in it stays 0.
 * cumulative[r][c] is the probability of a noise at most c - max_noise, in
 * units of 2^-32, so a 32-bit draw u picks the first c with u < cumulative.
 */
struct cc_ptable {
    uint32_t max_noise;
    double variance;
    double probability[CC_PTABLE_ROWS][CC_PTABLE_COLUMNS];
    uint64_t cumulative[CC_PTABLE_ROWS][CC_PTABLE_COLUMNS];
};

/* Builds the table for a checked policy layer (max_noise may be 0: no
 * noise). */
void cc_ptable_build(uint32_t max_noise, double variance, struct cc_ptable *table);

/* The noise for a count and a uniform 32-bit draw. */
int32_t cc_ptable_noise(const struct cc_ptable *table, uint64_t count, uint32_t draw);

/* A 32-bit draw from two 64-bit inputs (splitmix64 finaliser over both):
 * the same inputs always give the same draw. */
uint32_t cc_release_draw(uint64_t a, uint64_t b);

/* A value at or above the threshold rounded to the nearest multiple of base
 * (halves up), and never to a value below the threshold. */
uint64_t cc_release_round(uint64_t value, uint32_t base, uint32_t threshold);

/* The low-effect threshold for a restriction whose seed is seed: in
 * low_effect_persons - low_effect_spread .. low_effect_persons +
 * low_effect_spread, the same for the same seed. */
uint32_t cc_release_low_effect_threshold(const struct cc_policy *policy, uint64_t seed);

/* The rules that refuse a query, after the engine ran it (raw): the
 * public-population rules (unless policy->restrict_queries is off) and the
 * low-effect rule (unless refuse_low_effect is off); on success sets
 * *layer_seed, the condition layer's seed from every restriction. Returns
 * 0, CC_EREFUSED with "rule: why" in errbuf, or CC_ENOMEM. */
struct cc_store_columns;
struct cc_raw_result;
struct cc_query;
int cc_release_check(const struct cc_policy *policy, const struct cc_store_columns *columns,
                     const struct cc_query *query, const struct cc_raw_result *raw,
                     uint64_t *layer_seed, char *errbuf, size_t errlen);

/* Both layers' tables for a checked policy. */
struct cc_release_tables {
    struct cc_ptable cell_layer, condition_layer;
    uint64_t epoch; /* mixed into both layers' draws; 0: none */
};
/* The perturbation tables of policy, and the noise epoch of the data
 * version the counts come from (cc_dataversion_noise_epoch(); used when
 * policy->publication_noise). */
void cc_release_tables_build(const struct cc_policy *policy, uint64_t noise_epoch,
                             struct cc_release_tables *tables);

/* One count protected: the cell key layer (drawn from cell_key and the
 * measure), the condition layer (from cell_key and layer_seed), then
 * suppression and rounding, as policy says. The one place a count becomes
 * a released count. */
struct cc_released_count cc_release_protect(const struct cc_policy *policy,
                                            const struct cc_release_tables *tables,
                                            uint64_t layer_seed, uint64_t measure, uint64_t count,
                                            uint32_t cell_key);

/* The disclosure ledger's check and record for a query (or a comparison's
 * numerator, as the request gives it) whose raw result carries its
 * cohort's record keys: 0 with no asker or no ledger, or when the ledger
 * admits it; CC_EREFUSED ("ledger: ..." in errbuf). The same restrictions
 * as written, in any table, are the same query to the ledger. */
struct cc_release_asker;
/* Whether the ledger's cells look at releases under policy (a ledger,
 * and perturbed tables: a fixed table is exact and the same every time). */
bool cc_release_cells_apply(const struct cc_policy *policy, const cc_ledger *ledger);

/* The ledger's cells (cc_ledger_admit_cells) for n released cells, with
 * their exact persons and sketches ([n * CC_EXEC_SKETCH_BUCKETS]): a cell
 * nearly the same as one released to the asker before becomes that one's
 * released value. 0 or as cc_ledger_admit_cells(). */
int cc_release_cells_admit(const struct cc_policy *policy, const struct cc_release_asker *asker,
                           uint64_t n, const uint64_t *persons, const uint32_t *sketches,
                           struct cc_released_count *cells, char *errbuf, size_t errlen);

int cc_release_ledger_admit(const struct cc_policy *policy, const struct cc_release_asker *asker,
                            const struct cc_query *query, const struct cc_raw_result *raw,
                            char *errbuf, size_t errlen);

/* The variance of a released count's perturbation under policy: the noise
 * layers' variances when it perturbs (not in fixed mode), else 0. */
double cc_release_noise_variance(const struct cc_policy *policy);

/* Fills a table's summary with what the policy does (no cells counted yet),
 * and counts one cell of the given reason into it. */
void cc_release_summary_init(const struct cc_policy *policy, struct cc_release_summary *s);
void cc_release_summary_count(struct cc_release_summary *s, uint8_t reason);

/*
 * Protects a raw comparison (cc_compare_internal.h) made from request: the numerator
 * must pass the same rules as any query (public populations, with the
 * comparison's area and age band dimensions as its table, and the
 * low-effect rule), then every count and denominator of every unit and band
 * goes through the same layers, suppression and rounding as a release's
 * cells, each with its own cell key (so comparator units such as England
 * are protected as cells of their own), into *out, which the caller frees
 * with cc_compare_released_free(). Returns 0, CC_EREFUSED ("rule: why" in
 * errbuf), CC_EINVAL (a policy that fails cc_policy_check()) or CC_ENOMEM.
 * With an asker's ledger, the numerator's cohort is checked and recorded as
 * a count's is (raw must then come from cc_compare_run() with
 * options->cohort_hash). cc_release_comparison() (cc_release.h) is its
 * one caller outside the tests.
 */
int cc_release_compare(const struct cc_policy *policy, const struct cc_release_asker *asker,
                       const struct cc_compare_request *request, const struct cc_compare_raw *raw,
                       struct cc_compare_released *out, char *errbuf, size_t errlen);

/* A protected comparison's layout and finished rows, for its encoder. */
const struct cc_compare_layout *cc_comparison_layout_(const cc_comparison *comparison);
const struct cc_compare_result *cc_comparison_result_(const cc_comparison *comparison);

/* Packs the "policy" and "counts" entries (two key/value pairs of the
 * caller's map) of a summary. 0 or CC_ENOMEM. */
int cc_release_pack_summary(const struct cc_release_summary *s, msgpack_packer *pk);
/* Fixed mode (policy "mode": "fixed"): cells[] were protected without
 * noise; for a result with margins, suppresses more cells
 * (CC_CELL_SUPPRESSED_SECONDARY) until every primary-suppressed cell is
 * protected at policy->protection_level against the released cells and
 * margins (cc_suppress.h). Returns 0, CC_ENOMEM or CC_EINTERNAL. */
int cc_release_fixed_secondary(const struct cc_policy *policy, uint8_t measure,
                               const struct cc_raw_result *raw, struct cc_released_count *cells);

#endif
