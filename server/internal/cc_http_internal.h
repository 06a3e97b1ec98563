/*
 * cc_http_internal.h: what the two files of cc_http share: the response
 * builder of cc_http.c, used by cc_http_translate.c. Internal to server/.
 *
 * Must never: be needed outside cc_http*.c (a caller builds responses with
 * cc_http_error_response and cc_http_from_reply).
 */
#ifndef CC_HTTP_INTERNAL_H
#define CC_HTTP_INTERNAL_H

#include "cc_http.h"

/* Builds a response whose body json[0..json_len) is already JSON (or a 204
 * preflight: no body, and with preflight set the CORS grants for an allowed
 * origin), with the standard headers, CORS for request, allow (an Allow
 * value, or NULL), and the status's own headers (401, 503). The connection
 * closes after it if the request does not keep it. Returns 0 or CC_ENOMEM. */
int cc_http_build_json_response(int status, const char *json, size_t json_len,
                                const struct cc_http_request *request,
                                const struct cc_http_cors *cors, const char *allow, bool preflight,
                                struct cc_http_response *out);

#endif
