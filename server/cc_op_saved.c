/*
 * cc_op_saved.c: the saved query ops: "saved_list" names the
 * operator-approved saved queries and comparisons (--saved DIR), "saved"
 * runs one by name, exactly as count or compare would run it (disclosure
 * control, audit). A dashboard account can run nothing else, so what it can
 * show is what an operator approved.
 *
 * Must never: run a query the request supplies: only a saved one, by name.
 */
#include <string.h>

#include "cc_compare.h"
#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_services.h"

#define SAVED_ROLES                                                                                \
    (CC_OP_ROLE(CC_ROLE_DASHBOARD) | CC_OP_ROLE(CC_ROLE_RESEARCHER) | CC_OP_ROLE(CC_ROLE_PLANNER))

static bool on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static int list_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    msgpack_packer *pk = cc_reply_field(request, "saved");
    msgpack_pack_array(pk, services->n_saved);
    for (uint32_t i = 0; i < services->n_saved; i++) {
        const struct cc_saved *q = &services->saved[i];
        msgpack_pack_map(pk, 2);
        msgpack_pack_str_with_body(pk, "name", 4);
        msgpack_pack_str_with_body(pk, q->name, strlen(q->name));
        msgpack_pack_str_with_body(pk, "kind", 4);
        const char *kind = q->comparison ? "compare" : "count";
        msgpack_pack_str_with_body(pk, kind, strlen(kind));
    }
    return 0;
}

static int saved_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    if (!cc_request_data(request))
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data");
    const msgpack_object *name = cc_request_field(request, "name");
    if (!name || name->type != MSGPACK_OBJECT_STR)
        return cc_request_fail(request, CC_EINVAL, "name must be a string");
    const struct cc_saved *q = cc_services_saved(services, name->via.str.ptr, name->via.str.size);
    if (!q)
        return cc_request_fail(request, CC_ENOTFOUND, "no saved query has that name");
    msgpack_pack_str_with_body(cc_reply_field(request, "kind"), q->comparison ? "compare" : "count",
                               q->comparison ? 7 : 5);
    char why[160];
    int rc;
    if (q->comparison) {
        struct cc_compare_decoded decoded;
        rc = cc_compare_decode_json(q->json, q->json_len, NULL, &decoded, why, sizeof why);
        if (rc)
            return cc_request_fail(request, CC_EINTERNAL, "the saved comparison does not decode");
        return cc_op_compare_request(request, &decoded);
    }
    struct cc_query *query = NULL;
    rc = cc_query_decode_json(q->json, q->json_len, NULL, &query, why, sizeof why);
    if (rc)
        return cc_request_fail(request, CC_EINTERNAL, "the saved query does not decode");
    if ((rc = cc_op_bind_query(request, query, "saved")) != 0) {
        cc_query_free(query);
        return rc;
    }
    return cc_op_count_query(request, query);
}

const struct cc_op cc_op_saved_list = {"saved_list", list_run, on_pool, SAVED_ROLES, true};
const struct cc_op cc_op_saved = {"saved", saved_run, on_pool, SAVED_ROLES, true};
