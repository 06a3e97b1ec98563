/*
 * cc_op_query.c: what the data ops share (cc_op_internal.h): decoding,
 * validating and binding a request's query against the data version it
 * runs on.
 *
 * Must never: put more of the request into an error than the query codec's
 * "field: reason".
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_release.h"
#include "cc_release_cache.h"
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

void cc_op_cache_key(struct cc_request *request, const char *kind, const char *canonical,
                     bool with_ledger, struct cc_release_cache_key *key)
{
    const struct cc_services *services = cc_request_services(request);
    const struct cc_account *account = cc_request_account(request);
    memset(key, 0, sizeof *key);
    /* with the ledger the account's own: its ledger answered it */
    key->account = with_ledger && services->ledger && account ? account->id : 0;
    key->version = cc_release_cache_version_id(cc_request_data(request));
    key->day = cc_day_today();
    key->kind = kind;
    key->request = canonical;
    key->request_len = strlen(canonical);
}

/* msgpack_packer's write callback, for the cache's bytes */
static int write_packed(void *packer, const char *bytes, size_t len)
{
    msgpack_packer *pk = packer;
    return pk->callback(pk->data, bytes, len);
}

struct cached_reply {
    struct cc_request *request;
    const char *field;
};

/* cc_release_cache_get's writer, called on a hit only: data_version, then
 * the field with the bytes kept, as cc_op_reply_and_keep writes them */
static int write_cached(void *arg, const char *bytes, size_t len)
{
    const struct cached_reply *c = arg;
    cc_op_reply_data_version(c->request);
    return write_packed(cc_reply_field(c->request, c->field), bytes, len);
}

int cc_op_reply_cached(struct cc_request *request, const struct cc_release_cache_key *key,
                       const char *field, char *canonical)
{
    const struct cc_services *services = cc_request_services(request);
    if (!services->release_cache)
        return 0;
    struct cc_release_cache_counts counts;
    struct cached_reply c = {request, field};
    int hit = cc_release_cache_get(services->release_cache, key, (int64_t)time(NULL),
                                   write_cached, &c, &counts);
    if (hit == 1)
        cc_request_audit_detail(request, canonical, counts.cells_released,
                                counts.cells_suppressed);
    return hit;
}

int cc_op_reply_and_keep(struct cc_request *request, const struct cc_release_cache_key *key,
                         const char *field, char *canonical,
                         const struct cc_release_summary *summary, const msgpack_sbuffer *packed)
{
    const struct cc_services *services = cc_request_services(request);
    struct cc_release_cache_counts counts = {
        summary->n_shown + summary->n_perturbed + summary->n_rounded,
        summary->n_suppressed_primary + summary->n_suppressed_secondary};
    cc_request_audit_detail(request, canonical, counts.cells_released, counts.cells_suppressed);
    cc_op_reply_data_version(request);
    msgpack_packer *reply = cc_reply_field(request, field);
    if (write_packed(reply, packed->data, packed->size) != 0)
        return CC_ENOMEM;
    cc_release_cache_put(services->release_cache, key, (int64_t)time(NULL), packed->data,
                         packed->size, &counts);
    return 0;
}
