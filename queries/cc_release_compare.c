/*
 * cc_release_compare.c: disclosure control for area comparisons: the raw
 * comparison's exact counts and denominators become released counts, the
 * only input cc_compare_finish() accepts.
 *
 * Must never: copy an exact count into the released counts other than
 * through cc_release_protect().
 */
#include "cc_release.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_release_internal.h"

int cc_release_compare(const struct cc_policy *policy, const struct cc_release_asker *asker,
                       const struct cc_compare_request *request, const struct cc_compare_raw *raw,
                       struct cc_compare_released *out, char *errbuf, size_t errlen)
{
    memset(out, 0, sizeof *out);
    int rc = cc_policy_check(policy, errbuf, errlen);
    if (rc)
        return rc;
    /* the numerator meets the rules of any query, with the comparison's
     * area (and age band) dimensions as its table */
    uint64_t numerator_seed;
    if ((rc = cc_release_check(policy, raw->numerator_result.columns_, request->numerator,
                               &raw->numerator_result, &numerator_seed, errbuf, errlen)) != 0)
        return rc;
    if ((rc = cc_release_ledger_admit(policy, asker, request->numerator, &raw->numerator_result,
                                      errbuf, errlen)) != 0)
        return rc;
    const struct cc_compare_counts *exact = &raw->exact;
    size_t n = (size_t)exact->n_units * exact->n_bands;
    out->count = calloc(n ? n : 1, sizeof *out->count);
    out->denominator = calloc(n ? n : 1, sizeof *out->denominator);
    if (!out->count || !out->denominator) {
        cc_compare_released_free(out);
        return CC_ENOMEM;
    }
    out->n_units = exact->n_units;
    out->n_bands = exact->n_bands;
    out->noise_variance = cc_release_noise_variance(policy);
    out->rounding_base = policy->rounding_base;
    struct cc_release_tables tables;
    cc_release_tables_build(policy, raw->numerator_result.noise_epoch, &tables);
    /* the denominator's layer follows the persons of its cohort */
    uint64_t denominator_seed = raw->denominator_result.cohort_key ^ 0x64656e6f6dULL;
    for (size_t i = 0; i < n; i++) {
        double c = exact->count[i], d = exact->denominator[i];
        out->count[i] = cc_release_protect(policy, &tables, numerator_seed, 1,
                                           c > 0 ? (uint64_t)c : 0, raw->count_key[i]);
        out->denominator[i] = cc_release_protect(policy, &tables, denominator_seed, 3,
                                                 d > 0 ? (uint64_t)d : 0,
                                                 raw->denominator_key[i]);
    }
    /* the ledger's cells: each unit's count, then its denominator */
    if (raw->count_sketch && raw->denominator_sketch) {
        uint64_t *persons = malloc(2 * (n ? n : 1) * sizeof *persons);
        struct cc_released_count *cells = malloc(2 * (n ? n : 1) * sizeof *cells);
        uint32_t *sketches = malloc(2 * (n ? n : 1) * CC_EXEC_SKETCH_BUCKETS * sizeof *sketches);
        if (!persons || !cells || !sketches)
            rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
        for (size_t i = 0; rc == 0 && i < n; i++) {
            double c = exact->count[i], d = exact->denominator[i];
            persons[i] = c > 0 ? (uint64_t)c : 0;
            persons[n + i] = d > 0 ? (uint64_t)d : 0;
            cells[i] = out->count[i];
            cells[n + i] = out->denominator[i];
        }
        if (rc == 0) {
            size_t bytes = n * CC_EXEC_SKETCH_BUCKETS * sizeof *sketches;
            memcpy(sketches, raw->count_sketch, bytes);
            memcpy(sketches + n * CC_EXEC_SKETCH_BUCKETS, raw->denominator_sketch, bytes);
            rc = cc_release_cells_admit(policy, asker, 2 * n, persons, sketches, cells, errbuf,
                                        errlen);
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            out->count[i] = cells[i];
            out->denominator[i] = cells[n + i];
        }
        free(persons);
        free(cells);
        free(sketches);
        if (rc != 0)
            cc_compare_released_free(out);
    }
    return rc;
}
