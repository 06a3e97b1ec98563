/*
 * cc_exec_result.c: reading a raw result (internal/cc_exec.h): a cell's
 * coordinates, whether it is a margin, the label of a dimension's value (an
 * area or practice code from the store's columns, an age band, a sex, a
 * setting, a period, "total"), and freeing its arrays.
 *
 * Must never: label a value with anything but a public code or name: a
 * label names an area, a practice, a band or a period, never a person.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cc_error.h"
#include "cc_exec.h"
#include "cc_store.h"

uint32_t cc_raw_result_coordinate(const struct cc_raw_result *result, uint64_t cell, uint32_t d)
{
    uint64_t stride = 1;
    for (uint32_t i = result->n_dimensions; i-- > d + 1;)
        stride *= result->dimensions[i].n_values;
    return (uint32_t)(cell / stride % result->dimensions[d].n_values);
}

void cc_raw_result_label(const struct cc_raw_result *result, uint32_t d, uint32_t v, char *buf,
                         size_t len)
{
    const struct cc_store_columns *c = result->columns_;
    const struct cc_raw_dimension *dim = &result->dimensions[d];
    int32_t value = dim->first + (int32_t)v;
    static const char *const settings[] = {"gp", "hospital", "community"};
    if (v == dim->total) {
        snprintf(buf, len, "total");
        return;
    }
    switch (dim->kind) {
    case CC_DIM_REGION:
        snprintf(buf, len, "%s", c->region_code[v]);
        break;
    case CC_DIM_ICB:
        snprintf(buf, len, "%s", c->icb_code[v]);
        break;
    case CC_DIM_LAD:
        snprintf(buf, len, "%s", c->lad_code[v]);
        break;
    case CC_DIM_LSOA:
        snprintf(buf, len, "%s", c->lsoa_code[v]);
        break;
    case CC_DIM_PRACTICE:
        snprintf(buf, len, "%s", c->practice_code[v]);
        break;
    case CC_DIM_SEX:
        snprintf(buf, len, "%s",
                 v < 4 && cc_query_sex_name(dim->sex_code[v]) ? cc_query_sex_name(dim->sex_code[v])
                                                              : "?");
        break;
    case CC_DIM_SETTING:
        snprintf(buf, len, "%s", v < 3 ? settings[v] : "?");
        break;
    case CC_DIM_YEAR:
        snprintf(buf, len, "%d", value);
        break;
    case CC_DIM_QUARTER:
        snprintf(buf, len, "%d-Q%d", value / 4, value % 4 + 1);
        break;
    case CC_DIM_MONTH:
        snprintf(buf, len, "%04d-%02d", value / 12, value % 12 + 1);
        break;
    case CC_DIM_AGE_BAND:
        if (v + 1 < dim->n_values - (dim->total != CC_RAW_NO_TOTAL) &&
            dim->age_lower[v + 1] == dim->age_lower[v] + 1)
            snprintf(buf, len, "%u", dim->age_lower[v]);
        else if (v + 1 < dim->n_values - (dim->total != CC_RAW_NO_TOTAL))
            snprintf(buf, len, "%u-%u", dim->age_lower[v], dim->age_lower[v + 1] - 1u);
        else
            snprintf(buf, len, "%u+", dim->age_lower[v]);
        break;
    default:
        snprintf(buf, len, "?");
        break;
    }
}

bool cc_raw_result_is_margin(const struct cc_raw_result *result, uint64_t cell)
{
    for (uint32_t d = 0; d < result->n_dimensions; d++)
        if (result->dimensions[d].total != CC_RAW_NO_TOTAL &&
            cc_raw_result_coordinate(result, cell, d) == result->dimensions[d].total)
            return true;
    return false;
}

int cc_raw_result_cohort_keys(const struct cc_raw_result *result, uint32_t **keys)
{
    *keys = NULL;
    const struct cc_store_columns *c = result->columns_;
    if (!result->cohort_bits || !c)
        return CC_EINVAL;
    uint32_t *out = malloc((result->cohort_persons ? result->cohort_persons : 1) * sizeof *out);
    if (!out)
        return CC_ENOMEM;
    uint64_t n = 0, words = ((uint64_t)c->n_persons + 63) / 64;
    for (uint64_t w = 0; w < words; w++)
        for (uint64_t bits = result->cohort_bits[w]; bits; bits &= bits - 1, n++)
            if (n < result->cohort_persons)
                out[n] = c->person_record_key[w * 64 + (uint64_t)__builtin_ctzll(bits)];
    if (n != result->cohort_persons) { /* the bits and the count disagree: a bug */
        free(out);
        return CC_EINVAL;
    }
    *keys = out;
    return 0;
}

void cc_raw_result_free(struct cc_raw_result *result)
{
    free(result->count);
    free(result->cell_key);
    free(result->cell_sketch);
    free(result->cohort_bits);
    result->count = NULL;
    result->cell_key = NULL;
    result->cell_sketch = NULL;
    result->cohort_bits = NULL;
}
