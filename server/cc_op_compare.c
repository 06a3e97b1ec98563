/*
 * cc_op_compare.c: the "compare" op: an area comparison of
 * docs/comparisons.md in, protected counts and the figures derived from
 * them out (cc_release_comparison). Runs on the pool; audited like count,
 * and a repeat answered from the release cache like count.
 *
 * Must never: reach cc_compare_run() itself: only the release layer runs a
 * comparison, so the raw counts never leave queries/ (its header,
 * cc_compare_internal.h, is internal to queries/, and
 * tests/test_release_boundary.c checks this object for a reference).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_release.h"
#include "cc_services.h"

static bool compare_runs_on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

int cc_op_compare_request(struct cc_request *request, struct cc_compare_decoded *decoded,
                          bool with_ledger)
{
    const struct cc_services *services = cc_request_services(request);
    char why[160], message[200];
    char *canonical = NULL;
    if (cc_compare_encode_json(&decoded->request, &canonical) != 0) {
        cc_compare_decoded_free(decoded);
        return cc_request_fail(request, CC_ENOMEM, NULL);
    }
    cc_request_audit_detail(request, canonical, 0, 0);
    struct cc_release_cache_key key;
    cc_op_cache_key(request, "compare", canonical, with_ledger, &key);
    int rc = cc_op_reply_cached(request, &key, "comparison", canonical);
    if (rc != 0) {
        cc_compare_decoded_free(decoded);
        return rc == 1 ? 0 : cc_request_fail(request, rc, NULL);
    }

    struct cc_exec_options options = {.n_threads = CC_OP_ENGINE_THREADS};
    cc_comparison *comparison = NULL;
    const struct cc_account *account = cc_request_account(request);
    struct cc_release_asker asker = {services->ledger, account ? account->id : 0};
    rc = cc_release_comparison(&services->policy, with_ledger && services->ledger ? &asker : NULL,
                               cc_request_data(request), &decoded->request, services->codelists,
                               &options, &comparison, why, sizeof why);
    cc_compare_decoded_free(decoded);
    if (rc) {
        snprintf(message, sizeof message, "comparison.%s", why);
        return cc_request_fail(request, rc, rc == CC_EREFUSED ? why : message);
    }
    msgpack_sbuffer packed;
    msgpack_packer pk;
    msgpack_sbuffer_init(&packed);
    msgpack_packer_init(&pk, &packed, msgpack_sbuffer_write);
    rc = cc_comparison_pack(comparison, &pk);
    if (rc == 0)
        rc = cc_op_reply_and_keep(request, &key, "comparison", canonical,
                                  cc_comparison_summary(comparison), &packed);
    cc_comparison_free(comparison);
    msgpack_sbuffer_destroy(&packed);
    return rc ? cc_request_fail(request, rc, NULL) : 0;
}

static int compare_run(struct cc_request *request)
{
    if (!cc_request_data(request))
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data");
    const msgpack_object *obj = cc_request_field(request, "comparison");
    if (!obj)
        return cc_request_fail(request, CC_EINVAL, "comparison is missing");
    struct cc_query_limits limits;
    struct cc_compare_decoded decoded;
    char why[160], message[200];
    cc_query_limits_default(&limits);
    int rc = cc_compare_decode_object(obj, &limits, &decoded, why, sizeof why);
    if (rc) {
        snprintf(message, sizeof message, "comparison.%s", why);
        return cc_request_fail(request, rc, message);
    }
    return cc_op_compare_request(request, &decoded, true);
}

const struct cc_op cc_op_compare = {"compare", compare_run, compare_runs_on_pool,
                                    CC_OP_DATA_ROLES, true};
