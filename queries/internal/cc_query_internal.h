/*
 * cc_query_internal.h: what the query module's files (cc_query*.c) share.
 *
 * Must never: be included outside the query module.
 */
#ifndef CC_QUERY_INTERNAL_H
#define CC_QUERY_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

struct cc_query;
struct cc_query_filters;
struct cc_query_limits;
struct json_t;

/* cc_query_decode_json() of an already parsed JSON value (a comparison's
 * numerator, read with the rest of its request): no text to re-parse. */
int cc_query_decode_json_value(const struct json_t *root, const struct cc_query_limits *limits,
                               struct cc_query **out, char *errbuf, size_t errlen);

/*
 * Writes "field: reason" into errbuf (nothing when errbuf is NULL or errlen
 * is 0) and returns rc, so an error path is `return cc_query_fail(...)`.
 * field is the key's path ("filters.conditions[0]"; NULL or "" is "query",
 * the whole map).
 */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
int cc_query_fail(char *errbuf, size_t errlen, int rc, const char *field, const char *fmt, ...);

#if defined(__GNUC__)
__attribute__((format(printf, 5, 0)))
#endif
int cc_query_vfail(char *errbuf, size_t errlen, int rc, const char *field, const char *fmt,
                   va_list ap);

/* limits, or the defaults written into *defaults when limits is NULL. */
const struct cc_query_limits *cc_query_limits_or_default(const struct cc_query_limits *limits,
                                                         struct cc_query_limits *defaults);

/* ---- the combine tree (cc_query_tree.c) ---- */

/* Checks filters.nodes: every index in range, a tree (no node reached
 * twice), every condition exactly once, at most CC_QUERY_COMBINE_DEPTH_CAP
 * levels, a NOT with one operand, an AND or OR with at least one; and, unless
 * allow_exclude (the decoder, before it folds them), no exclude flag. 0, or
 * CC_EINVAL / CC_ETOOBIG with "filters.combine: reason". */
int cc_query_combine_check(const struct cc_query_filters *filters, bool allow_exclude,
                           char *errbuf, size_t errlen);

/* Puts a checked tree in its canonical form (cc_query_tree.c says which),
 * in the query's arena. 0 or CC_ENOMEM. */
int cc_query_combine_canonicalise(struct cc_query *query);

/* Deep-copies from's tree into copy's arena (copy->filters.nodes). */
int cc_query_combine_clone(struct cc_query *copy, const struct cc_query_filters *from);

/* True if two trees are the same, node by node from the root. */
bool cc_query_combine_equal(const struct cc_query_filters *a, const struct cc_query_filters *b);

#endif
