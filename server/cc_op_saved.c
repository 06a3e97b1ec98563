/*
 * cc_op_saved.c: the saved query ops: "saved_list" names the
 * operator-approved saved queries and comparisons (--saved DIR), "saved"
 * runs one by name, exactly as count or compare would run it (disclosure
 * control, audit). A dashboard account can run nothing else, so what it can
 * show is what an operator approved.
 *
 * Must never: run a query the request supplies: only a saved one, by name.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* The indicator a saved comparison shows: a digest of its canonical form
 * with the level and the comparator left out, so that the variants an
 * operator saved of one indicator (by region, by ICB, against the parent)
 * share it and a dashboard can offer them as one indicator with a choice
 * of level and comparator. 16 hex digits into hex[17]. */
static int indicator_key(const struct cc_compare_request *request, char hex[17])
{
    struct cc_compare_request variant = *request;
    variant.area_level = CC_AREA_REGION;
    variant.comparator = CC_COMPARE_NATIONAL;
    char *canonical = NULL;
    int rc = cc_compare_encode_json(&variant, &canonical);
    if (rc)
        return rc;
    unsigned char digest[8];
    crypto_generichash(digest, sizeof digest, (const unsigned char *)canonical, strlen(canonical),
                       NULL, 0);
    free(canonical);
    sodium_bin2hex(hex, 17, digest, sizeof digest);
    return 0;
}

/* {"name", "kind"} and, for a comparison, what it compares: "level",
 * "comparator", "method" and "indicator" (indicator_key). */
static int list_entry(msgpack_packer *pk, const struct cc_saved *q)
{
    struct cc_compare_decoded decoded;
    char why[160], indicator[17];
    if (q->comparison) {
        if (cc_compare_decode_json(q->json, q->json_len, NULL, &decoded, why, sizeof why))
            return CC_EINTERNAL;
        int rc = indicator_key(&decoded.request, indicator);
        if (rc) {
            cc_compare_decoded_free(&decoded);
            return rc;
        }
    }
    msgpack_pack_map(pk, q->comparison ? 6 : 2);
    pack_str(pk, "name");
    pack_str(pk, q->name);
    pack_str(pk, "kind");
    pack_str(pk, q->comparison ? "compare" : "count");
    if (!q->comparison)
        return 0;
    const struct cc_compare_request *r = &decoded.request;
    pack_str(pk, "level");
    pack_str(pk, cc_query_area_level_name(r->area_level));
    pack_str(pk, "comparator");
    pack_str(pk, cc_compare_comparator_name(r->comparator ? r->comparator : CC_COMPARE_NATIONAL));
    pack_str(pk, "method");
    pack_str(pk, cc_compare_method_name(r->method));
    pack_str(pk, "indicator");
    pack_str(pk, indicator);
    cc_compare_decoded_free(&decoded);
    return 0;
}

static int list_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    msgpack_packer *pk = cc_reply_field(request, "saved");
    msgpack_pack_array(pk, services->n_saved);
    for (uint32_t i = 0; i < services->n_saved; i++) {
        int rc = list_entry(pk, &services->saved[i]);
        if (rc == CC_ENOMEM)
            return cc_request_fail(request, rc, "out of memory");
        if (rc)
            return cc_request_fail(request, CC_EINTERNAL, "a saved comparison does not decode");
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
        return cc_op_compare_request(request, &decoded, false);
    }
    struct cc_query *query = NULL;
    rc = cc_query_decode_json(q->json, q->json_len, NULL, &query, why, sizeof why);
    if (rc)
        return cc_request_fail(request, CC_EINTERNAL, "the saved query does not decode");
    if ((rc = cc_op_bind_query(request, query, "saved")) != 0) {
        cc_query_free(query);
        return rc;
    }
    return cc_op_count_query(request, query, false);
}

const struct cc_op cc_op_saved_list = {"saved_list", list_run, on_pool, SAVED_ROLES, true};
const struct cc_op cc_op_saved = {"saved", saved_run, on_pool, SAVED_ROLES, true};
