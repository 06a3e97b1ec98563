/*
 * cc_http_static.c: the dashboard page's static files (web/), served by the
 * HTTP listener from the copies the build embedded into carecountd
 * (cmake/embed_web.cmake writes cc_web_assets.c), so the binary stands
 * alone and serving a file reads no file system.
 *
 * A name is looked up exactly in the embedded table: "..", "%2e", a
 * backslash or a doubled slash are simply names that are not there (404),
 * so no request can reach a file that is not one of web/'s.
 *
 * The files need no token: they are the same for everyone and hold no data.
 * The data the page shows comes from /v1/saved_list and /v1/saved, which do.
 *
 * Must never: read the file system, serve a name not in the embedded table,
 * or serve a file without its own Content-Type and the page's
 * Content-Security-Policy.
 */
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_http_internal.h"

#define DASHBOARD_PREFIX "/dashboard/"
#define ALLOW_STATIC     "GET, HEAD"

/* What every file carries besides its type: the page runs only its own
 * scripts and styles (no inline script or style, no eval), talks only to
 * this origin, loads no frame and may not be framed, and sends no
 * referrer. */
#define STATIC_HEADERS                                                                             \
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "           \
    "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "                    \
    "frame-ancestors 'none'\r\n"                                                                   \
    "Referrer-Policy: no-referrer\r\n"                                                             \
    "X-Frame-Options: DENY\r\n"                                                                    \
    "Cross-Origin-Opener-Policy: same-origin\r\n"                                                  \
    "Cross-Origin-Resource-Policy: same-origin\r\n"

static int compare_name(const void *key, const void *element)
{
    return strcmp(key, ((const struct cc_http_asset *)element)->name);
}

/* The embedded file called name, or NULL (the table is in name order). */
static const struct cc_http_asset *find_asset(const char *name)
{
    return bsearch(name, cc_http_assets, cc_http_n_assets, sizeof cc_http_assets[0], compare_name);
}

static int answered(int rc)
{
    return rc < 0 ? rc : 1;
}

int cc_http_static_response(const struct cc_http_request *request, const struct cc_http_cors *cors,
                            struct cc_http_response *response)
{
    const char *path = request->path;
    bool redirect = strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0;
    bool under = strncmp(path, DASHBOARD_PREFIX, sizeof DASHBOARD_PREFIX - 1) == 0;
    if (!redirect && !under)
        return 0;
    if (request->method != CC_HTTP_GET && request->method != CC_HTTP_HEAD)
        return answered(cc_http_error_response(405, "UNSUPPORTED",
                                               "the dashboard's files are read with GET", request,
                                               cors, ALLOW_STATIC, false, response));
    if (redirect) {
        static const char body[] = "the dashboard is at /dashboard/\n";
        return answered(cc_http_build_file_response(
            302, "text/plain; charset=utf-8", STATIC_HEADERS "Location: " DASHBOARD_PREFIX "\r\n",
            body, sizeof body - 1, request, cors, NULL, response));
    }
    const char *name = path + sizeof DASHBOARD_PREFIX - 1;
    if (*name == '\0')
        name = "index.html";
    const struct cc_http_asset *asset = find_asset(name);
    if (!asset)
        return answered(cc_http_error_response(404, "NOTFOUND", "the dashboard has no such file",
                                               request, cors, NULL, false, response));
    return answered(cc_http_build_file_response(200, asset->content_type, STATIC_HEADERS,
                                                asset->data, asset->len, request, cors, NULL,
                                                response));
}
