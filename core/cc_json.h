/*
 * cc_json.h: jansson, parsing with an honest out-of-memory report.
 *
 * jansson reports a failed allocation during parsing sometimes as
 * json_error_out_of_memory and sometimes as a syntax error with no text,
 * so a caller cannot tell "your JSON is malformed" from "the server is
 * short of memory". cc_json_loadb() installs (once, process-wide) an
 * allocator for jansson that notes a failed allocation in the calling
 * thread, and says which it was.
 *
 * Must never: change what jansson parses or writes (the allocator only
 * watches).
 */
#ifndef CC_JSON_H
#define CC_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* json_loadb(text, len, flags, error); when it returns NULL, *out_of_memory
 * says whether an allocation failed during the call (then the text may be
 * fine). */
json_t *cc_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error,
                      bool *out_of_memory);

/* json_dumps(json, flags), but whole or nothing: jansson's json_dumps can
 * drop bytes of its output when its buffer fails to grow and still return
 * it (a failure injection test found `"measure:"persons"`). This measures
 * the text with json_dumpb() and writes it into one allocation of that
 * size. A malloc'd string, or NULL. */
char *cc_json_dumps(const json_t *json, size_t flags);

#endif
