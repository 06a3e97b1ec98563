/*
 * cc_testquery.c: queries for tests, from JSON (see cc_testquery.h).
 *
 * Must never: hand back a query that did not decode.
 */
#include "cc_testquery.h"

#include <criterion/criterion.h>
#include <string.h>

#include "cc_error.h"

struct cc_query *cc_testquery_from_json(const char *json)
{
    char err[256] = "";
    struct cc_query *q = NULL;
    int rc = cc_query_decode_json(json, strlen(json), NULL, &q, err, sizeof err);
    cr_assert_eq(rc, 0, "decode failed: %s (%s) in %s", cc_err_name(rc), err, json);
    cr_assert_not_null(q);
    return q;
}
