/*
 * fuzz_query_json.c: the JSON query codec (queries/cc_query_json.c) and the
 * validator on hostile JSON text; whatever decodes must round-trip through
 * the canonical JSON and msgpack forms to an equal query.
 *
 * Must never: pass an input whose decoded query does not round-trip.
 */
#include "cc_error.h"
#include "cc_query.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    struct cc_query *q = NULL;
    int rc = cc_query_decode_json((const char *)data, size, NULL, &q, err, sizeof err);
    if (rc != 0) {
        check(err[0] != '\0' || rc == CC_ENOMEM);
        return 0;
    }
    rc = cc_query_validate(q, NULL, NULL, err, sizeof err);
    check(rc == 0 || rc == CC_EINVAL || rc == CC_ETOOBIG);

    char *json = NULL;
    check(cc_query_encode_json(q, &json) == 0);
    struct cc_query *again = NULL;
    rc = cc_query_decode_json(json, strlen(json), NULL, &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "json re-decode: %s\n", err);
    check(rc == 0);
    check(cc_query_equal(q, again));
    char *json2 = NULL;
    check(cc_query_encode_json(again, &json2) == 0);
    check(strcmp(json, json2) == 0);
    free(json2);
    cc_query_free(again);
    free(json);

    char *bytes = NULL;
    size_t len = 0;
    check(cc_query_encode(q, &bytes, &len) == 0);
    struct cc_query *from_msgpack = NULL;
    rc = cc_query_decode(bytes, len, NULL, &from_msgpack, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "msgpack re-decode: %s\n", err);
    check(rc == 0);
    check(cc_query_equal(q, from_msgpack));
    cc_query_free(from_msgpack);
    free(bytes);
    cc_query_free(q);
    return 0;
}
