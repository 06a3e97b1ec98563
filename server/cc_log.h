/*
 * cc_log.h: the server's operational log, one line per event on stderr.
 *
 * Each line is "2026-01-31T12:00:00.123Z carecountd: message". The log is for
 * operators: it says what the server did (listening, a connection refused, a
 * shutdown), never for whom or about whom.
 *
 * Must never: be given a request body, a query, a name, an NHS number, a
 * postcode or a token. Callers log counts, codes and reasons only.
 */
#ifndef CC_LOG_H
#define CC_LOG_H

#include <stdio.h>

/* Writes one timestamped line to stderr (a newline is added). */
void cc_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
