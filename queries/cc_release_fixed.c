/*
 * cc_release_fixed.c: the release layer's fixed mode (policy "mode":
 * "fixed"): after primary suppression and rounding, secondary suppression
 * over the engine's margins (cc_suppress.h), so that no suppressed cell can
 * be recovered from the cells and totals released with it.
 *
 * Must never: release a cell the primary rules suppressed, or leave a
 * count in anything but the release's protected cells.
 */
#include <stdlib.h>

#include "cc_error.h"
#include "cc_release_internal.h"
#include "cc_suppress.h"

/* For persons, a person is in one value of a geography, practice, age band
 * or sex dimension, so its total is the sum of its cells; settings and
 * periods can hold one person more than once (cc_exec.h). Events and
 * population always add up. */
static bool additive(uint8_t measure, uint8_t kind)
{
    if (measure != CC_MEASURE_PERSONS)
        return true;
    return !(kind == CC_DIM_SETTING || kind == CC_DIM_YEAR || kind == CC_DIM_QUARTER ||
             kind == CC_DIM_MONTH);
}

int cc_release_fixed_secondary(const struct cc_policy *policy, uint8_t measure,
                               const struct cc_raw_result *raw, struct cc_released_count *cells)
{
    if (raw->n_dimensions == 0 || raw->dimensions[0].total == CC_RAW_NO_TOTAL)
        return 0; /* no margins: nothing to recover a suppressed cell from */
    struct cc_suppress_shape shape = {.n_dimensions = raw->n_dimensions};
    for (uint32_t d = 0; d < raw->n_dimensions; d++) {
        shape.size[d] = raw->dimensions[d].n_values;
        shape.additive[d] = additive(measure, raw->dimensions[d].kind);
    }
    if (cc_suppress_n_cells(&shape) != raw->n_cells)
        return CC_EINTERNAL;
    uint64_t *released = malloc(raw->n_cells * sizeof *released);
    uint8_t *mask = malloc(raw->n_cells);
    int rc = CC_ENOMEM;
    if (released && mask) {
        for (uint64_t i = 0; i < raw->n_cells; i++) {
            mask[i] = !cells[i].released;
            released[i] = cells[i].released ? cells[i].value : 0;
        }
        uint64_t n_secondary;
        struct cc_suppress_rules rules = {policy->threshold, policy->rounding_base,
                                          policy->show_zeros ? 1 : 0};
        rc = cc_suppress_secondary(&shape, &rules, raw->count, released, mask,
                                   policy->protection_level, &n_secondary);
        if (rc == 0)
            for (uint64_t i = 0; i < raw->n_cells; i++)
                if (mask[i] == 2)
                    cells[i] = (struct cc_released_count){0, 0, CC_CELL_SUPPRESSED_SECONDARY};
    }
    free(released);
    free(mask);
    return rc;
}
