/*
 * cc_compare_internal.h: the raw side of area comparisons, internal to
 * queries/: cc_compare_run() runs a comparison's queries through the engine
 * (internal/cc_exec.h) into a RAW comparison, whose exact counts per area
 * and band are the input of disclosure control (cc_release_compare() in
 * cc_release_internal.h) and of nothing else; and the comparison statistics
 * on counts of any origin, for the tests of the statistics themselves
 * (exact counts, hand-made counts). Only the release layer and the tests
 * that see queries' internals (CMakeLists.txt) include it; server/ and
 * tools/ reach a comparison only through cc_release_comparison()
 * (cc_release.h), which frees the raw comparison before it returns.
 *
 * Must never: be reached from a path that answers a client: there,
 * cc_compare_finish() (cc_compare.h) takes released counts only.
 */
#ifndef CC_COMPARE_INTERNAL_H
#define CC_COMPARE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cc_codelist.h"
#include "cc_compare.h"
#include "cc_dataversion.h"
#include "cc_exec.h"

/* Flags of one (unit, band) cell in struct cc_compare_counts. */
#define CC_COMPARE_COUNT_SUPPRESSED       1u
#define CC_COMPARE_DENOMINATOR_SUPPRESSED 2u

/*
 * Counts per unit and band, unit-major: cell (u, b) is u * n_bands + b.
 * Counts are doubles so that protected counts (rounded, perturbed) pass
 * through unchanged; exact counts are whole numbers. A cell flagged
 * suppressed has no usable count (its number is ignored).
 */
struct cc_compare_counts {
    uint32_t n_units, n_bands;
    double *count;       /* [n_units * n_bands] numerator */
    double *denominator; /* [n_units * n_bands] */
    uint8_t *flags;      /* [n_units * n_bands] CC_COMPARE_*_SUPPRESSED */
};

/*
 * Allocates counts of the layout's shape, zeroed, nothing suppressed, for a
 * caller (disclosure control, a test) to fill. Freed with
 * cc_compare_counts_free(). 0 or CC_ENOMEM.
 */
int cc_compare_counts_new(const struct cc_compare_layout *layout, struct cc_compare_counts *out);

/* Copies counts into a new allocation (freed with cc_compare_counts_free()). */
int cc_compare_counts_copy(const struct cc_compare_counts *from, struct cc_compare_counts *out);

void cc_compare_counts_free(struct cc_compare_counts *counts);

/*
 * A raw comparison: the layout, the exact counts (input of disclosure
 * control only) and the per-cell keys of the cell key method, summed the
 * same way as the counts (record keys add, mod 2^32). numerator_result and
 * denominator_result are the engine's raw results (area x band cells), kept
 * for their cohort sizes. The caller frees with cc_compare_raw_free().
 */
struct cc_compare_raw {
    struct cc_compare_layout layout;
    struct cc_compare_counts exact;
    uint32_t *count_key;       /* [n_units * n_bands] */
    uint32_t *denominator_key; /* [n_units * n_bands] */
    /* With options->cell_sketches (else NULL): each unit's sketch of its
     * persons, [n_units * n_bands * CC_EXEC_SKETCH_BUCKETS] (cc_exec.h). */
    uint32_t *count_sketch;
    uint32_t *denominator_sketch;
    struct cc_raw_result numerator_result;
    struct cc_raw_result denominator_result;
};

/*
 * Runs a comparison's queries over version and fills *out (freed with
 * cc_compare_raw_free(), also on failure). codelists resolves the queries'
 * codelists (NULL when they name none); options as for cc_exec_run().
 * Called by the release layer (cc_release_comparison()) and by tests only.
 * Returns 0, CC_EINVAL (a request the comparison cannot run; errbuf gives
 * "field: reason"), CC_ENOTFOUND (an unknown codelist), CC_ETOOBIG or
 * CC_ENOMEM.
 */
int cc_compare_run(const struct cc_dataversion *version, const struct cc_compare_request *request,
                   const struct cc_codelists *codelists, const struct cc_exec_options *options,
                   struct cc_compare_raw *out, char *errbuf, size_t errlen);

/* Frees what a raw comparison holds (the struct itself is the caller's). */
void cc_compare_raw_free(struct cc_compare_raw *raw);

/* As cc_compare_finish(), from counts (doubles, with suppression flags) of
 * the layout's shape. Returns 0, CC_EINVAL (counts of another shape, a
 * negative count), CC_ESTATS or CC_ENOMEM. */
int cc_compare_finish_counts(const struct cc_compare_layout *layout,
                             const struct cc_compare_counts *counts, struct cc_compare_result *out);

#endif
