/*
 * cc_testquery.h: queries for tests, written as JSON (docs/query-model.md).
 *
 * Must never: hand back a query that did not decode (it asserts instead).
 */
#ifndef CC_TESTQUERY_H
#define CC_TESTQUERY_H

#include "cc_query.h"

/* Decodes json (which must decode; the test fails naming the error and the
 * text otherwise) into a query the caller frees with cc_query_free. */
struct cc_query *cc_testquery_from_json(const char *json);

#endif
