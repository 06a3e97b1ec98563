/*
 * fuzz_query.c: the query decoder and validator (queries/cc_query_decode.c,
 * cc_query_validate.c) on hostile msgpack bytes, and the codec's promises on
 * whatever decodes: the canonical encoding decodes to an equal query and
 * re-encodes to the same bytes, in msgpack and in JSON.
 *
 * The first byte picks tight or default limits, so the size checks are hit
 * on short inputs too.
 *
 * Must never: pass an input whose decoded query does not round-trip.
 */
#include <msgpack.h>

#include "cc_error.h"
#include "cc_query.h"
#include "fuzz_common.h"

static void roundtrip(const struct cc_query *q, const struct cc_query_limits *limits)
{
    char err[256];
    char *bytes = NULL;
    size_t len = 0;
    int rc = cc_query_encode(q, &bytes, &len);
    if (rc == CC_ENOMEM)
        return;
    check(rc == 0);
    struct cc_query *again = NULL;
    rc = cc_query_decode(bytes, len, limits, &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "re-decode: %s\n", err);
    check(rc == 0);
    check(cc_query_equal(q, again));
    char *bytes2 = NULL;
    size_t len2 = 0;
    check(cc_query_encode(again, &bytes2, &len2) == 0);
    check(len2 == len && memcmp(bytes, bytes2, len) == 0);
    free(bytes2);
    cc_query_free(again);
    free(bytes);

    char *json = NULL;
    check(cc_query_encode_json(q, &json) == 0);
    struct cc_query *from_json = NULL;
    rc = cc_query_decode_json(json, strlen(json), limits, &from_json, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "json re-decode: %s\n", err);
    check(rc == 0);
    check(cc_query_equal(q, from_json));
    cc_query_free(from_json);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    if (data[0] & 1) {
        limits.max_query_bytes = 512;
        limits.max_nesting_depth = 4;
        limits.max_dimensions = 2;
        limits.max_cells = 50;
        limits.max_conditions = 3;
        limits.max_codes_per_condition = 4;
        limits.max_areas = 3;
        limits.max_practices = 3;
        limits.max_anchor_days = 30;
    }
    data++;
    size--;
    char err[256] = "";
    struct cc_query *q = NULL;
    int rc = cc_query_decode((const char *)data, size, &limits, &q, err, sizeof err);
    if (rc != 0) {
        check(q == NULL || rc == 0);
        check(err[0] != '\0' || rc == CC_ENOMEM);
        return 0;
    }
    check(q != NULL);
    rc = cc_query_validate(q, &limits, NULL, err, sizeof err);
    check(rc == 0 || rc == CC_EINVAL || rc == CC_ETOOBIG);
    check(rc == 0 || err[0] != '\0');
    if (rc == 0)
        check(cc_query_n_cells(q, NULL) <= limits.max_cells);
    roundtrip(q, &limits);
    cc_query_free(q);
    return 0;
}
