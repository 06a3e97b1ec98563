/*
 * cc_compare_internal.h: the comparison statistics on counts of any origin,
 * for the tests of the statistics themselves (exact counts, hand-made
 * counts). Internal to queries/ and its tests.
 *
 * Must never: be reached from a path that answers a client: there,
 * cc_compare_finish() takes released counts only.
 */
#ifndef CC_COMPARE_INTERNAL_H
#define CC_COMPARE_INTERNAL_H

#include "cc_compare.h"

/* As cc_compare_finish(), from counts (doubles, with suppression flags) of
 * the layout's shape. Returns 0, CC_EINVAL (counts of another shape, a
 * negative count), CC_ESTATS or CC_ENOMEM. */
int cc_compare_finish_counts(const struct cc_compare_layout *layout,
                             const struct cc_compare_counts *counts,
                             struct cc_compare_result *out);

#endif
