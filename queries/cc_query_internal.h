/*
 * cc_query_internal.h: what the query module's files (cc_query*.c) share.
 *
 * Must never: be included outside the query module.
 */
#ifndef CC_QUERY_INTERNAL_H
#define CC_QUERY_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

struct cc_query_limits;

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

#endif
