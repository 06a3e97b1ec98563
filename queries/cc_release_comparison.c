/*
 * cc_release_comparison.c: an area comparison from request to protected
 * figures in one call, so that a caller outside queries/ (the server) never
 * holds the raw comparison: run (exact counts), protect (released counts),
 * finish (derived figures from the released counts), free the raw side.
 *
 * Must never: keep anything of the raw comparison in the result: only the
 * layout (areas, codes, names: public), the released counts' summary and
 * the finished rows.
 */
#include "cc_release.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_release_internal.h"

struct cc_comparison {
    struct cc_compare_layout layout; /* owns units */
    struct cc_compare_result result;
    struct cc_release_summary summary;
};

static void summarise(const struct cc_policy *policy, const struct cc_compare_released *released,
                      struct cc_release_summary *s)
{
    size_t n = (size_t)released->n_units * released->n_bands;
    cc_release_summary_init(policy, s);
    s->n_cells = 2 * (uint64_t)n;
    for (size_t i = 0; i < n; i++) {
        cc_release_summary_count(s, released->count[i].reason);
        cc_release_summary_count(s, released->denominator[i].reason);
    }
}

int cc_release_comparison(const struct cc_policy *policy, const struct cc_release_asker *asker,
                          const struct cc_dataversion *version,
                          const struct cc_compare_request *request,
                          const struct cc_codelists *codelists,
                          const struct cc_exec_options *options, cc_comparison **out,
                          char *errbuf, size_t errlen)
{
    *out = NULL;
    struct cc_exec_options with_keys = {0};
    if (options)
        with_keys = *options;
    with_keys.cohort_hash = asker && asker->ledger; /* the keys only if the ledger needs them */
    with_keys.cell_sketches = cc_release_cells_apply(policy, asker ? asker->ledger : NULL);
    int rc = cc_policy_check(policy, errbuf, errlen);
    if (rc)
        return rc;
    struct cc_compare_raw raw;
    struct cc_compare_released released;
    memset(&raw, 0, sizeof raw);
    memset(&released, 0, sizeof released);
    cc_comparison *c = calloc(1, sizeof *c);
    if (!c)
        return CC_ENOMEM;
    if ((rc = cc_compare_run(version, request, codelists, &with_keys, &raw, errbuf, errlen)) != 0)
        goto fail;
    if ((rc = cc_release_compare(policy, asker, request, &raw, &released, errbuf, errlen)) != 0)
        goto fail;
    if ((rc = cc_compare_finish(&raw.layout, &released, &c->result)) != 0) {
        cc_errorf(errbuf, errlen, rc, "compare: the figures could not be computed");
        goto fail;
    }
    summarise(policy, &released, &c->summary);
    /* the layout moves into the comparison; the raw side is freed */
    c->layout = raw.layout;
    raw.layout.units = NULL;
    raw.layout.n_units = 0;
    cc_compare_released_free(&released);
    cc_compare_raw_free(&raw);
    *out = c;
    return 0;
fail:
    cc_compare_released_free(&released);
    cc_compare_raw_free(&raw);
    cc_comparison_free(c);
    return rc;
}

void cc_comparison_free(cc_comparison *comparison)
{
    if (!comparison)
        return;
    cc_compare_result_free(&comparison->result);
    free(comparison->layout.units);
    free(comparison);
}

const struct cc_release_summary *cc_comparison_summary(const cc_comparison *comparison)
{
    return &comparison->summary;
}

const struct cc_compare_layout *cc_comparison_layout_(const cc_comparison *comparison)
{
    return &comparison->layout;
}

const struct cc_compare_result *cc_comparison_result_(const cc_comparison *comparison)
{
    return &comparison->result;
}
