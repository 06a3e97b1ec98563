/*
 * cc_op_query.c: what the data ops share (cc_op_internal.h): decoding,
 * validating and binding a request's query against the data version it
 * runs on.
 *
 * Must never: put more of the request into an error than the query codec's
 * "field: reason".
 */
#include <stdio.h>

#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_services.h"
#include "cc_store.h"

static int fail_in(struct cc_request *request, int rc, const char *field, const char *why)
{
    char message[200];
    snprintf(message, sizeof message, "%s.%s", field, why);
    return cc_request_fail(request, rc, message);
}

int cc_op_bind_query(struct cc_request *request, struct cc_query *query, const char *field)
{
    const cc_dataversion *version = cc_request_data(request);
    const struct cc_store_columns *columns = cc_store_columns(cc_dataversion_store(version));
    struct cc_query_limits limits;
    struct cc_query_extent extent;
    char why[160];
    cc_query_limits_default(&limits);
    cc_query_extent_default(&extent);
    cc_query_extent_from_store(columns, &extent);
    int rc = cc_query_validate(query, &limits, &extent, why, sizeof why);
    if (rc == 0)
        rc = cc_query_bind(query, columns, cc_request_services(request)->codelists, why,
                           sizeof why);
    return rc ? fail_in(request, rc, field, why) : 0;
}

int cc_op_prepare_query(struct cc_request *request, const msgpack_object *obj, const char *field,
                        struct cc_query **out)
{
    struct cc_query_limits limits;
    char why[160];
    *out = NULL;
    if (!obj) {
        char message[64];
        snprintf(message, sizeof message, "%s is missing", field);
        return cc_request_fail(request, CC_EINVAL, message);
    }
    cc_query_limits_default(&limits);
    int rc = cc_query_decode_object(obj, &limits, out, why, sizeof why);
    if (rc)
        return fail_in(request, rc, field, why);
    if ((rc = cc_op_bind_query(request, *out, field)) != 0) {
        cc_query_free(*out);
        *out = NULL;
    }
    return rc;
}

void cc_op_reply_data_version(struct cc_request *request)
{
    msgpack_pack_uint64(cc_reply_field(request, "data_version"),
                        cc_dataversion_store_version(cc_request_data(request)));
}
