/*
 * cc_http_internal.h: what the files of cc_http share: the response
 * builder of cc_http.c, used by cc_http_translate.c and cc_http_static.c;
 * the static files of the dashboard page (web/), embedded at build time
 * into a generated C file (cmake/embed_web.cmake); and the static route
 * cc_http_to_request() tries first. Internal to server/.
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

/* Builds a response whose body is a file's bytes: content_type, the
 * standard headers but "Cache-Control: no-cache" (the browser revalidates:
 * a new binary serves new files), headers (whole "Name: value\r\n" lines,
 * or NULL), CORS for request and allow (or NULL). HEAD gets the headers
 * alone. Returns 0 or CC_ENOMEM. */
int cc_http_build_file_response(int status, const char *content_type, const char *headers,
                                const void *body, size_t body_len,
                                const struct cc_http_request *request,
                                const struct cc_http_cors *cors, const char *allow,
                                struct cc_http_response *out);

/* One file of web/, as the build embedded it: name is its path below web/
 * ("index.html", "vendor/x/LICENSE"), content_type was decided from its
 * extension at build time. */
struct cc_http_asset {
    const char *name;
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* The embedded files, in name order (generated: cc_web_assets.c). */
extern const struct cc_http_asset cc_http_assets[];
extern const size_t cc_http_n_assets;

/* Answers a request for the dashboard page's files: "/" and "/dashboard"
 * redirect (302) to "/dashboard/", "/dashboard/" is index.html,
 * "/dashboard/NAME" an embedded file of that exact name (no file system is
 * read, so no path can leave the embedded set), anything else under
 * "/dashboard/" 404. GET and HEAD only (else 405, Allow: GET, HEAD). Returns
 * 1 when path is one of those (*response set), 0 when it is not (nothing
 * set), or CC_ENOMEM. */
int cc_http_static_response(const struct cc_http_request *request, const struct cc_http_cors *cors,
                            struct cc_http_response *response);

#endif
