/*
 * cc_suppress.h: secondary suppression and its auditor, for tables released
 * without perturbation (policy "mode": "fixed", docs/privacy.md).
 *
 * A table here is dense counts in row-major order (the last dimension
 * varying fastest) over 1 to CC_SUPPRESS_DIMENSIONS_CAP dimensions, each of
 * whose last value is the dimension's total (the engine's margins,
 * internal/cc_exec.h): cell (.., total, ..) along d is the sum of the cells with
 * every other value of d. The constraints an attacker knows are: every cell
 * is an integer >= 0, and every margin is the sum of its cells (additive
 * dimension) or, for a persons margin over a dimension where a person can
 * be in several values (settings, periods), at most that sum and at least
 * each of its cells.
 *
 * The auditor (cc_suppress_audit) bounds each cell from what is released
 * by integer interval propagation: from every constraint a cell is in,
 * given the other cells' bounds, until nothing changes. It is a sound
 * outer bound of the feasible set (the attacker's exact range can only be
 * narrower, never wider), so a cell it pins is pinned.
 *
 * What the attacker knows a priori. A release says which cells were
 * suppressed by the primary rule (reason "suppressed"): such a cell is known
 * to hold primary_lo..threshold-1 (primary_lo is 1 when zeros are shown,
 * else 0). A secondary cell, or any suppressed cell in the auditor's
 * weaker model, is known only to be >= 0.
 *
 * Protection criterion (cc_suppress_protected): a primary-suppressed cell of
 * true value x is protected at level p when its audited range [lo, hi]
 * reaches max(floor, x - p) below and min(ceiling, x + p) above, where
 * [floor, ceiling] is its baseline: its range were every cell of the table
 * suppressed (cc_suppress_baseline; at most primary_lo..threshold-1, and
 * narrower only where small primary cells bound each other, such as a
 * small total over small cells). Within p of the truth the release rules
 * out nothing that suppressing the whole table would not. With p =
 * threshold (the default) the release says of the cell no more than that
 * it is small.

 * Secondary suppression (cc_suppress_secondary): while some primary cell is
 * unprotected, suppress one more cell in a line (a margin constraint) through
 * it, the one of least cost, and audit again. Cost: a candidate whose value
 * is at least p (so that it can move by p and give the primary cell room)
 * costs its value (the persons hidden); one below p costs its value plus a
 * large penalty, used only when no line has a candidate of p or more; a
 * grand total or margin costs the same as a cell. The result always meets
 * the criterion under the auditor (at worst every cell is suppressed).
 *
 * Must never: unsuppress a cell, or read anything but the counts given. It
 * allocates only its own scratch space and keeps no state.
 */
#ifndef CC_SUPPRESS_H
#define CC_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CC_SUPPRESS_DIMENSIONS_CAP 8
/* The upper bound of a cell nothing bounds. */
#define CC_SUPPRESS_UNBOUNDED INT64_MAX

/* The shape of a table: every dimension's size includes its total. */
struct cc_suppress_shape {
    uint32_t n_dimensions;
    uint32_t size[CC_SUPPRESS_DIMENSIONS_CAP];
    /* true: the total is exactly the sum of its cells; false: at most the
     * sum and at least each cell (persons over settings or periods). */
    bool additive[CC_SUPPRESS_DIMENSIONS_CAP];
};

/* The number of cells of shape (0 for a shape with a dimension of size
 * below 2, which has no cell besides its total). */
uint64_t cc_suppress_n_cells(const struct cc_suppress_shape *shape);

/*
 * The auditor. known_lo[i]..known_hi[i] is what the release says of cell i
 * (equal for an exact count; the rounding interval for a rounded count; 0
 * and CC_SUPPRESS_UNBOUNDED for a suppressed cell). Writes the propagated
 * bounds into lo[] and hi[] (each [n_cells]). Returns 0, CC_EINVAL (a bad
 * shape, or constraints no table meets) or CC_ENOMEM.
 */
int cc_suppress_audit(const struct cc_suppress_shape *shape, const int64_t *known_lo,
                      const int64_t *known_hi, int64_t *lo, int64_t *hi);

/* What a release tells of its cells besides the values: the threshold,
 * the rounding base (1: none) and whether a primary cell may be 0. */
struct cc_suppress_rules {
    uint32_t threshold;
    uint32_t rounding_base;
    uint32_t primary_lo; /* 1: zeros are shown; 0: a 0 is suppressed */
};

/* Whether a primary cell of true value x with audited range [lo, hi] and
 * baseline [floor, ceiling] is protected at level p (the criterion above). */
bool cc_suppress_protected(int64_t x, int64_t lo, int64_t hi, uint32_t p, int64_t floor,
                           int64_t ceiling);

/* The baseline of every cell: the auditor's range with every cell
 * suppressed, the primary ones (suppressed[i] == 1) known to hold
 * primary_lo..threshold-1. Fills floor[] and ceiling[] ([n_cells]). Returns
 * 0, CC_EINVAL or CC_ENOMEM. */
int cc_suppress_baseline(const struct cc_suppress_shape *shape,
                         const struct cc_suppress_rules *rules, const uint8_t *suppressed,
                         int64_t *floor, int64_t *ceiling);

/*
 * Secondary suppression. counts[n_cells] are the true counts and
 * released[n_cells] what the release shows of each cell not suppressed
 * (the count rounded as the policy says; equal to counts without
 * rounding); suppressed[i] is 1 for a primary-suppressed cell on entry.
 * Sets suppressed[i] = 2 for each cell suppressed to protect another, so
 * that every primary cell is protected at level p under the auditor, given
 * the rules (cc_suppress_known). *n_secondary gets their
 * number. Returns 0, CC_EINVAL or CC_ENOMEM.
 */
int cc_suppress_secondary(const struct cc_suppress_shape *shape,
                          const struct cc_suppress_rules *rules, const uint64_t *counts,
                          const uint64_t *released, uint8_t *suppressed, uint32_t p,
                          uint64_t *n_secondary);

/* The auditor's input for a table whose cells not suppressed (suppressed[i]
 * == 0) show released[i]: with rounding to base (halves up, as the release
 * layer rounds) a shown v was a count in v - base/2 .. v + (base-1)/2, and
 * a shown v > 0 was at least the threshold; a primary cell (suppressed[i]
 * == 1) held primary_lo .. threshold-1; any other suppressed cell 0 ..
 * CC_SUPPRESS_UNBOUNDED. Fills known_lo[] and known_hi[]. */
void cc_suppress_known(const struct cc_suppress_shape *shape,
                       const struct cc_suppress_rules *rules, const uint64_t *released,
                       const uint8_t *suppressed, int64_t *known_lo, int64_t *known_hi);

#endif
