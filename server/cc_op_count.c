/*
 * cc_op_count.c: the "count" op: a query of docs/query-model.md in, a
 * release (cc_release.h: protected cells, reason codes, what was done) out.
 * Runs on the pool; the audit record (the canonical query, the cells
 * released and suppressed, or the refusal) is committed before the reply.
 * A repeat (the same account, query and data, cc_release_cache.h) is
 * answered with the bytes packed the first time, audited the same way.
 *
 * Must never: reach the engine other than through cc_release_answer(), or
 * reply with anything but the packed release and the data version.
 */
#include <stdlib.h>

#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_release.h"
#include "cc_services.h"

static bool count_runs_on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

int cc_op_count_query(struct cc_request *request, struct cc_query *query, bool with_ledger)
{
    const struct cc_services *services = cc_request_services(request);
    char *canonical = NULL;
    if (cc_query_encode_json(query, &canonical) != 0) {
        cc_query_free(query);
        return cc_request_fail(request, CC_ENOMEM, NULL);
    }
    cc_request_audit_detail(request, canonical, 0, 0);
    /* the same query of the same account on the same data: as before */
    struct cc_release_cache_key key;
    cc_op_cache_key(request, "count", canonical, with_ledger, &key);
    int rc = cc_op_reply_cached(request, &key, "release", canonical);
    if (rc != 0) {
        cc_query_free(query);
        return rc == 1 ? 0 : cc_request_fail(request, rc, NULL);
    }

    struct cc_exec_options options = {.n_threads = CC_OP_ENGINE_THREADS};
    cc_release *release = NULL;
    char why[200];
    /* the account's ledger (DESIGN: a query whose cohort differs from an
     * earlier one of the same account by too few persons is refused) */
    const struct cc_account *account = cc_request_account(request);
    struct cc_release_asker asker = {services->ledger, account ? account->id : 0};
    rc = cc_release_answer(&services->policy, with_ledger && services->ledger ? &asker : NULL,
                           cc_request_data(request), query, &options, &release, why, sizeof why);
    cc_query_free(query);
    if (rc)
        return cc_request_fail(request, rc, why);
    msgpack_sbuffer packed;
    msgpack_packer pk;
    msgpack_sbuffer_init(&packed);
    msgpack_packer_init(&pk, &packed, msgpack_sbuffer_write);
    rc = cc_release_pack(release, &pk);
    if (rc == 0)
        rc = cc_op_reply_and_keep(request, &key, "release", canonical,
                                  cc_release_summary(release), &packed);
    cc_release_free(release);
    msgpack_sbuffer_destroy(&packed);
    return rc ? cc_request_fail(request, rc, NULL) : 0;
}

static int count_run(struct cc_request *request)
{
    if (!cc_request_data(request))
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data");
    struct cc_query *query = NULL;
    int rc = cc_op_prepare_query(request, cc_request_field(request, "query"), "query", &query);
    return rc ? rc : cc_op_count_query(request, query, true);
}

const struct cc_op cc_op_count = {"count", count_run, count_runs_on_pool,
                                  CC_OP_ROLE(CC_ROLE_RESEARCHER), true};
