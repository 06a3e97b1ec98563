/*
 * fuzz_request.c: the server's request decoder (server/cc_request.h: the
 * envelope of a frame body) and what the ops decode from it before touching
 * any data: the "query" of count (queries/cc_query_decode.c and
 * cc_query_validate.c, as cc_op_prepare_query() calls them) and the
 * "comparison" of compare (queries/cc_compare_codec.c). Then the reply: an
 * error reply for a refused request must encode.
 *
 * The input is one frame body, as cc_server hands it over after framing.
 *
 * Must never: pass an input that the decoder accepts with no op, or whose
 * query decodes but does not round-trip through its canonical form.
 */
#include <msgpack.h>

#include "cc_compare.h"
#include "cc_error.h"
#include "cc_op.h"
#include "cc_query.h"
#include "cc_request.h"
#include "fuzz_common.h"

static void query_from(const msgpack_object *obj)
{
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    char err[256] = "";
    struct cc_query *q = NULL;
    if (cc_query_decode_object(obj, &limits, &q, err, sizeof err) != 0)
        return;
    int rc = cc_query_validate(q, &limits, NULL, err, sizeof err);
    check(rc == 0 || rc == CC_EINVAL || rc == CC_ETOOBIG);
    char *bytes = NULL;
    size_t len = 0;
    check(cc_query_encode(q, &bytes, &len) == 0);
    struct cc_query *again = NULL;
    check(cc_query_decode(bytes, len, &limits, &again, err, sizeof err) == 0);
    check(cc_query_equal(q, again));
    cc_query_free(again);
    free(bytes);
    cc_query_free(q);
}

static void comparison_from(const msgpack_object *obj)
{
    struct cc_compare_decoded decoded;
    char err[256] = "";
    if (cc_compare_decode_object(obj, NULL, &decoded, err, sizeof err) != 0)
        return;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    check(cc_compare_pack(&decoded.request, &packer) == 0);
    char *json = NULL;
    check(cc_compare_encode_json(&decoded.request, &json) == 0);
    struct cc_compare_decoded again;
    int rc = cc_compare_decode_json(json, strlen(json), NULL, &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "comparison json re-decode: %s\n", err);
    check(rc == 0);
    cc_compare_decoded_free(&again);
    free(json);
    msgpack_sbuffer_destroy(&buffer);
    cc_compare_decoded_free(&decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    if (size)
        memcpy(body, data, size);
    struct cc_request *request = NULL;
    if (cc_request_new(body, size, &request) < 0)
        return 0;
    int rc = cc_request_decode(request);
    if (rc == 0) {
        check(cc_request_op(request) != NULL);
        check(!cc_request_failed(request));
        const msgpack_object *query = cc_request_field(request, "query");
        if (query)
            query_from(query);
        const msgpack_object *comparison = cc_request_field(request, "comparison");
        if (comparison)
            comparison_from(comparison);
    } else {
        check(cc_request_failed(request));
        check(cc_request_error(request) == rc);
        msgpack_sbuffer frame;
        msgpack_sbuffer_init(&frame);
        check(cc_request_encode_reply(request, &frame) == 0);
        check(frame.size > 4);
        msgpack_sbuffer_destroy(&frame);
    }
    cc_request_free(request);
    return 0;
}
