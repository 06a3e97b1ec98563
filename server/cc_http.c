/*
 * cc_http.c: the per-connection HTTP/1.x request parser (over http-parser
 * 2.9) and the building of responses.
 *
 * http-parser calls back with pieces of the request line, header names,
 * header values and body as they arrive, split anywhere. We keep only what
 * the translation needs: the target, and the values of Authorization,
 * Origin, Content-Type and Expect, copied into one header store allocated
 * at the head limit's size (what we keep is never longer than the head
 * itself, so it cannot overflow). Every other header is parsed and
 * forgotten.
 *
 * The head limit is ours, per connection (http-parser's own is a process
 * global): while the head is being read we give the parser at most the
 * bytes left under the limit, and pause it in on_headers_complete, so its
 * return value says exactly how much of the input was head. It is paused
 * again in on_message_complete, which is how one request at a time comes
 * out of a pipeline.
 *
 * Chunked request bodies are refused (411 Length Required): every client
 * a dashboard uses sends Content-Length for a JSON body, and the length
 * known up front is what lets the body limit be decided before a byte of
 * it is buffered.
 *
 * Must never: keep the bearer token past cc_http_conn_next (it is wiped
 * there), or allocate for a body over the limit.
 */
#include "cc_http.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <sodium.h>

#include "cc_error.h"
#include "cc_http_internal.h"

/* Header names we keep (anything else is parsed and dropped). */
enum kept_header {
    HEADER_OTHER,
    HEADER_AUTHORIZATION,
    HEADER_ORIGIN,
    HEADER_CONTENT_TYPE,
    HEADER_EXPECT,
    N_KEPT_HEADERS
};

static const char *const kept_header_names[N_KEPT_HEADERS] = {
    [HEADER_AUTHORIZATION] = "authorization",
    [HEADER_ORIGIN] = "origin",
    [HEADER_CONTENT_TYPE] = "content-type",
    [HEADER_EXPECT] = "expect",
};

/* Longer than any kept name: a longer name is some other header. */
#define FIELD_NAME_BYTES 32

enum phase { PHASE_HEAD, PHASE_BODY, PHASE_COMPLETE, PHASE_FAILED };

struct cc_http_conn {
    struct cc_http_limits limits;
    struct cc_http_cors cors;
    http_parser parser;
    enum phase phase;
    bool started;      /* a byte of the current request has been parsed */
    size_t head_bytes; /* bytes of the current request's head parsed */
    bool continue_due; /* report CC_HTTP_CONTINUE once the head is in */
    bool expect_continue;

    /* The header store: the target, then kept values, each NUL-ended. */
    char *store;
    size_t store_bytes, store_used;
    bool target_done;
    size_t target_offset;

    char field[FIELD_NAME_BYTES];
    size_t field_len;
    bool field_too_long;
    bool in_value;               /* the last callback was a header value */
    enum kept_header value_kind; /* of the value being read */
    size_t value_offset;
    size_t kept_offset[N_KEPT_HEADERS];
    bool kept_seen[N_KEPT_HEADERS];

    uint8_t *body; /* malloc'd at the declared length + 1 */
    size_t body_bytes, body_filled;

    struct cc_http_request request;

    /* Set when parsing fails, for the error response. */
    int error_status;
    const char *error_code;
    const char *error_message;
};

/* ---- responses ---------------------------------------------------------- */

void cc_http_response_free(struct cc_http_response *response)
{
    if (!response)
        return;
    free(response->data);
    response->data = NULL;
    response->len = 0;
}

static const char *reason_phrase(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {100, "Continue"},
        {200, "OK"},
        {204, "No Content"},
        {302, "Found"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {411, "Length Required"},
        {413, "Content Too Large"},
        {415, "Unsupported Media Type"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Content"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Error";
}

/* The allowed origin the request comes from, or NULL. */
static const char *allowed_origin(const struct cc_http_request *request,
                                  const struct cc_http_cors *cors)
{
    if (!request || !request->origin || !cors)
        return NULL;
    for (size_t i = 0; i < cors->n_origins; i++)
        if (strcmp(cors->origins[i], request->origin) == 0)
            return cors->origins[i];
    return NULL;
}

/* A growing text buffer for a response; one sticky failure flag. */
struct text {
    char *data;
    size_t len, cap;
    bool failed;
};

static void text_append(struct text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 512;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *data = realloc(t->data, cap);
        if (!data) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_put(struct text *t, const char *s)
{
    text_append(t, s, strlen(s));
}

/* Everything a response can carry besides its body. */
struct response_head {
    int status;
    bool close;
    int http_minor; /* of the request: 1.0 keep-alive must be said */
    const char *allow;
    const char *origin; /* the allowed origin to echo, or NULL */
    bool vary_origin;   /* CORS is configured: responses vary by Origin */
    bool preflight;     /* add the preflight answers */
    bool omit_body;     /* the answer to HEAD: headers only */
    const char *extra;  /* whole header lines ("Name: value\r\n"), or NULL */
    const char *content_type;  /* NULL: JSON */
    const char *cache_control; /* NULL: no-store */
    const char *extra_static;  /* more header lines (a static file's), or NULL */
};

/* Builds status line + headers + body into out. */
static int build_response(const struct response_head *head, const char *body, size_t body_len,
                          struct cc_http_response *out)
{
    struct text t = {0};
    char line[128];

    snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", head->status, reason_phrase(head->status));
    text_put(&t, line);
    if (head->status != 204) {
        text_put(&t, "Content-Type: ");
        text_put(&t, head->content_type ? head->content_type : "application/json; charset=utf-8");
        text_put(&t, "\r\n");
        snprintf(line, sizeof line, "Content-Length: %zu\r\n", body_len);
        text_put(&t, line);
    }
    text_put(&t, "Cache-Control: ");
    text_put(&t, head->cache_control ? head->cache_control : "no-store");
    text_put(&t, "\r\nX-Content-Type-Options: nosniff\r\n");
    if (head->allow) {
        text_put(&t, "Allow: ");
        text_put(&t, head->allow);
        text_put(&t, "\r\n");
    }
    if (head->origin) {
        text_put(&t, "Access-Control-Allow-Origin: ");
        text_put(&t, head->origin);
        text_put(&t, "\r\n");
        if (head->preflight) {
            text_put(&t, "Access-Control-Allow-Methods: ");
            text_put(&t, head->allow ? head->allow : "GET, POST, OPTIONS");
            text_put(&t, "\r\nAccess-Control-Allow-Headers: Authorization, Content-Type\r\n"
                         "Access-Control-Max-Age: 600\r\n");
        } else {
            text_put(&t, "Access-Control-Expose-Headers: Retry-After, WWW-Authenticate\r\n");
        }
    }
    if (head->vary_origin)
        text_put(&t, "Vary: Origin\r\n");
    if (head->extra)
        text_put(&t, head->extra);
    if (head->extra_static)
        text_put(&t, head->extra_static);
    if (head->close)
        text_put(&t, "Connection: close\r\n");
    else if (head->http_minor == 0)
        text_put(&t, "Connection: keep-alive\r\n");
    text_put(&t, "\r\n");
    if (head->status != 204 && !head->omit_body)
        text_append(&t, body, body_len);
    if (t.failed) {
        free(t.data);
        return CC_ENOMEM;
    }
    out->data = t.data;
    out->len = t.len;
    out->status = head->status;
    out->close = head->close;
    return 0;
}

/* Header lines a status carries by itself. */
static const char *status_headers(int status)
{
    if (status == 401)
        return "WWW-Authenticate: Bearer realm=\"carecount\"\r\n";
    if (status == 503)
        return "Retry-After: 1\r\n";
    return NULL;
}

/* Fills the CORS and connection fields of head from the request. */
static void head_for_request(struct response_head *head, int status,
                             const struct cc_http_request *request, const struct cc_http_cors *cors,
                             bool close)
{
    memset(head, 0, sizeof *head);
    head->status = status;
    head->close = close || !request || !request->keep_alive;
    head->http_minor = request ? request->http_minor : 1;
    head->origin = allowed_origin(request, cors);
    head->vary_origin = cors && cors->n_origins > 0;
    head->extra = status_headers(status);
    head->omit_body = request && request->method == CC_HTTP_HEAD;
}

/* The messages here are fixed texts, but JSON-escape them anyway. */
static void put_json_string(struct text *t, const char *s)
{
    text_put(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            text_append(t, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            text_put(t, esc);
        } else {
            text_append(t, (const char *)&c, 1);
        }
    }
    text_put(t, "\"");
}

int cc_http_error_response(int status, const char *code, const char *message,
                           const struct cc_http_request *request, const struct cc_http_cors *cors,
                           const char *allow, bool close, struct cc_http_response *out)
{
    struct text body = {0};
    struct response_head head;
    text_put(&body, "{\"ok\":false,\"error\":{\"code\":");
    put_json_string(&body, code);
    text_put(&body, ",\"message\":");
    put_json_string(&body, message);
    text_put(&body, "}}");
    if (body.failed) {
        free(body.data);
        return CC_ENOMEM;
    }
    head_for_request(&head, status, request, cors, close);
    head.allow = allow;
    int rc = build_response(&head, body.data, body.len, out);
    free(body.data);
    return rc;
}

int cc_http_build_json_response(int status, const char *json, size_t json_len,
                                const struct cc_http_request *request,
                                const struct cc_http_cors *cors, const char *allow, bool preflight,
                                struct cc_http_response *out)
{
    struct response_head head;
    head_for_request(&head, status, request, cors, false);
    head.allow = allow;
    head.preflight = preflight;
    return build_response(&head, json, json_len, out);
}

int cc_http_build_file_response(int status, const char *content_type, const char *headers,
                                const void *body, size_t body_len,
                                const struct cc_http_request *request,
                                const struct cc_http_cors *cors, const char *allow,
                                struct cc_http_response *out)
{
    struct response_head head;
    head_for_request(&head, status, request, cors, false);
    head.allow = allow;
    head.content_type = content_type;
    head.cache_control = "no-cache";
    head.extra_static = headers;
    return build_response(&head, body, body_len, out);
}

/* ---- the parser's callbacks -------------------------------------------- */

static int fail(struct cc_http_conn *conn, int status, const char *code, const char *message)
{
    if (!conn->error_status) {
        conn->error_status = status;
        conn->error_code = code;
        conn->error_message = message;
    }
    return -1;
}

/* Appends to the header store. What is kept is never longer than the head
 * it came from (each kept piece's NUL stands for at least a CRLF), and the
 * head is at most store_bytes - 1, so this cannot overflow; the check is a
 * guard. */
static int store_append(struct cc_http_conn *conn, const char *at, size_t len)
{
    if (conn->store_used + len + 1 > conn->store_bytes)
        return fail(conn, 431, "TOOBIG", "the request line and headers are too long");
    memcpy(conn->store + conn->store_used, at, len);
    conn->store_used += len;
    return 0;
}

static int store_end_string(struct cc_http_conn *conn)
{
    if (conn->store_used + 1 > conn->store_bytes)
        return fail(conn, 431, "TOOBIG", "the request line and headers are too long");
    conn->store[conn->store_used++] = '\0';
    return 0;
}

static int on_message_begin(http_parser *parser)
{
    struct cc_http_conn *conn = parser->data;
    conn->started = true;
    return 0;
}

static int on_url(http_parser *parser, const char *at, size_t len)
{
    struct cc_http_conn *conn = parser->data;
    return store_append(conn, at, len);
}

static int end_target(struct cc_http_conn *conn)
{
    if (conn->target_done)
        return 0;
    conn->target_done = true;
    return store_end_string(conn);
}

/* A header value is complete: end its string in the store. */
static int end_value(struct cc_http_conn *conn)
{
    if (!conn->in_value)
        return 0;
    conn->in_value = false;
    if (conn->value_kind == HEADER_OTHER)
        return 0;
    conn->kept_offset[conn->value_kind] = conn->value_offset;
    conn->kept_seen[conn->value_kind] = true;
    return store_end_string(conn);
}

static int on_header_field(http_parser *parser, const char *at, size_t len)
{
    struct cc_http_conn *conn = parser->data;
    if (end_target(conn) < 0 || end_value(conn) < 0)
        return -1;
    if (conn->field_len + len >= FIELD_NAME_BYTES) {
        conn->field_too_long = true;
        conn->field_len = FIELD_NAME_BYTES; /* not a name we keep */
        return 0;
    }
    memcpy(conn->field + conn->field_len, at, len);
    conn->field_len += len;
    return 0;
}

static enum kept_header classify(const struct cc_http_conn *conn)
{
    if (conn->field_too_long)
        return HEADER_OTHER;
    for (int kind = 1; kind < N_KEPT_HEADERS; kind++) {
        const char *name = kept_header_names[kind];
        if (strlen(name) == conn->field_len && strncasecmp(name, conn->field, conn->field_len) == 0)
            return (enum kept_header)kind;
    }
    return HEADER_OTHER;
}

static int on_header_value(http_parser *parser, const char *at, size_t len)
{
    struct cc_http_conn *conn = parser->data;
    if (!conn->in_value) {
        conn->in_value = true;
        conn->value_kind = classify(conn);
        conn->field_len = 0;
        conn->field_too_long = false;
        if (conn->value_kind != HEADER_OTHER && conn->kept_seen[conn->value_kind])
            return fail(conn, 400, "PARSE", "a header that may appear once appears twice");
        conn->value_offset = conn->store_used;
    }
    if (conn->value_kind == HEADER_OTHER)
        return 0;
    return store_append(conn, at, len);
}

static const char *kept(const struct cc_http_conn *conn, enum kept_header kind)
{
    return conn->kept_seen[kind] ? conn->store + conn->kept_offset[kind] : NULL;
}

/* Splits the target into path and query, and the Authorization value into
 * its token. */
static int fill_request(struct cc_http_conn *conn)
{
    struct cc_http_request *request = &conn->request;
    char *target = conn->store + conn->target_offset;

    if (target[0] != '/')
        return fail(conn, 400, "PARSE", "the request target must be a path");
    char *question = strchr(target, '?');
    if (question) {
        *question = '\0';
        request->query = question + 1;
    }
    request->path = target;
    request->origin = kept(conn, HEADER_ORIGIN);
    request->content_type = kept(conn, HEADER_CONTENT_TYPE);

    char *authorization = (char *)kept(conn, HEADER_AUTHORIZATION);
    request->has_authorization = authorization != NULL;
    if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
        char *token = authorization + 7;
        while (*token == ' ')
            token++;
        char *end = token + strlen(token);
        while (end > token && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*token)
            request->bearer_token = token;
    }
    const char *expect = kept(conn, HEADER_EXPECT);
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return fail(conn, 417, "UNSUPPORTED", "only Expect: 100-continue is understood");
        conn->expect_continue = true;
    }
    return 0;
}

static int on_headers_complete(http_parser *parser)
{
    struct cc_http_conn *conn = parser->data;
    struct cc_http_request *request = &conn->request;

    if (end_target(conn) < 0 || end_value(conn) < 0)
        return -1;
    if (parser->http_major != 1 || parser->http_minor > 1)
        return fail(conn, 505, "UNSUPPORTED", "only HTTP/1.1 and HTTP/1.0 are served");
    if (parser->flags & F_CHUNKED)
        return fail(conn, 411, "UNSUPPORTED",
                    "chunked request bodies are not accepted: send Content-Length");
    if (fill_request(conn) < 0)
        return -1;
    switch (parser->method) {
    case HTTP_GET:
        request->method = CC_HTTP_GET;
        break;
    case HTTP_POST:
        request->method = CC_HTTP_POST;
        break;
    case HTTP_OPTIONS:
        request->method = CC_HTTP_OPTIONS;
        break;
    case HTTP_HEAD:
        request->method = CC_HTTP_HEAD;
        break;
    default:
        request->method = CC_HTTP_OTHER;
        break;
    }
    request->http_minor = parser->http_minor;

    uint64_t declared = parser->content_length == ULLONG_MAX ? 0 : parser->content_length;
    if (declared > conn->limits.max_body_bytes)
        return fail(conn, 413, "TOOBIG", "the request body is longer than the limit");
    conn->body = malloc((size_t)declared + 1);
    if (!conn->body)
        return fail(conn, 500, "NOMEM", "out of memory");
    conn->body_bytes = (size_t)declared;
    conn->body_filled = 0;
    conn->body[0] = '\0';
    conn->continue_due = conn->expect_continue && declared > 0 && parser->http_minor == 1;
    conn->phase = PHASE_BODY;
    /* Paused so that cc_http_feed learns where the head ended. */
    http_parser_pause(parser, 1);
    return 0;
}

static int on_body(http_parser *parser, const char *at, size_t len)
{
    struct cc_http_conn *conn = parser->data;
    /* http-parser never passes more than Content-Length; checked anyway. */
    if (len > conn->body_bytes - conn->body_filled)
        return fail(conn, 400, "PARSE", "the body is longer than its Content-Length");
    memcpy(conn->body + conn->body_filled, at, len);
    conn->body_filled += len;
    return 0;
}

static int on_message_complete(http_parser *parser)
{
    struct cc_http_conn *conn = parser->data;
    conn->body[conn->body_filled] = '\0';
    conn->request.body = conn->body;
    conn->request.body_bytes = conn->body_filled;
    conn->request.keep_alive = http_should_keep_alive(parser) && !parser->upgrade;
    conn->phase = PHASE_COMPLETE;
    http_parser_pause(parser, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- the connection ----------------------------------------------------- */

/* Forgets the current request, wiping what it held. */
static void reset_request(struct cc_http_conn *conn)
{
    sodium_memzero(conn->store, conn->store_used);
    conn->store_used = 0;
    conn->target_done = false;
    conn->target_offset = 0;
    conn->field_len = 0;
    conn->field_too_long = false;
    conn->in_value = false;
    memset(conn->kept_seen, 0, sizeof conn->kept_seen);
    if (conn->body) {
        sodium_memzero(conn->body, conn->body_bytes);
        free(conn->body);
    }
    conn->body = NULL;
    conn->body_bytes = conn->body_filled = 0;
    memset(&conn->request, 0, sizeof conn->request);
    conn->head_bytes = 0;
    conn->started = false;
    conn->continue_due = conn->expect_continue = false;
    conn->phase = PHASE_HEAD;
}

int cc_http_conn_new(const struct cc_http_limits *limits, const struct cc_http_cors *cors,
                     struct cc_http_conn **out)
{
    struct cc_http_conn *conn = calloc(1, sizeof(*conn));
    if (!conn)
        return CC_ENOMEM;
    conn->limits.max_header_bytes = limits && limits->max_header_bytes
                                        ? limits->max_header_bytes
                                        : CC_HTTP_DEFAULT_MAX_HEADER_BYTES;
    conn->limits.max_body_bytes =
        limits && limits->max_body_bytes ? limits->max_body_bytes : CC_HTTP_DEFAULT_MAX_BODY_BYTES;
    if (cors)
        conn->cors = *cors;
    if (conn->limits.max_header_bytes < 16) {
        free(conn);
        return CC_EINVAL;
    }
    conn->store_bytes = conn->limits.max_header_bytes + 1;
    conn->store = malloc(conn->store_bytes);
    if (!conn->store) {
        free(conn);
        return CC_ENOMEM;
    }
    http_parser_init(&conn->parser, HTTP_REQUEST);
    conn->parser.data = conn;
    reset_request(conn);
    *out = conn;
    return 0;
}

void cc_http_conn_free(struct cc_http_conn *conn)
{
    if (!conn)
        return;
    reset_request(conn);
    free(conn->store);
    free(conn);
}

/* Records a parse error from http-parser itself (no callback set one). */
static void fail_from_parser(struct cc_http_conn *conn)
{
    enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
    if (err == HPE_HEADER_OVERFLOW)
        fail(conn, 431, "TOOBIG", "the request line and headers are too long");
    else if (err == HPE_INVALID_VERSION)
        fail(conn, 505, "UNSUPPORTED", "only HTTP/1.1 and HTTP/1.0 are served");
    else if (err == HPE_INVALID_METHOD)
        fail(conn, 400, "PARSE", "the request line is not HTTP");
    else
        fail(conn, 400, "PARSE", "the request is not valid HTTP/1.1");
}

int cc_http_feed(struct cc_http_conn *conn, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    if (conn->phase == PHASE_FAILED)
        return CC_HTTP_ERROR;
    if (conn->phase == PHASE_COMPLETE)
        return CC_HTTP_REQUEST;
    while (*used < len) {
        size_t chunk = len - *used;
        bool in_head = conn->phase == PHASE_HEAD;
        if (in_head) {
            size_t room = conn->limits.max_header_bytes - conn->head_bytes;
            if (chunk > room)
                chunk = room;
        }
        size_t n =
            http_parser_execute(&conn->parser, &parser_settings, (const char *)data + *used, chunk);
        enum http_errno err = HTTP_PARSER_ERRNO(&conn->parser);
        *used += n;
        if (in_head)
            conn->head_bytes += n;
        if (err == HPE_PAUSED) {
            if (conn->phase == PHASE_COMPLETE)
                return CC_HTTP_REQUEST; /* stays paused until cc_http_conn_next */
            http_parser_pause(&conn->parser, 0);
            if (conn->continue_due) {
                conn->continue_due = false;
                return CC_HTTP_CONTINUE;
            }
            continue;
        }
        if (err != HPE_OK || conn->error_status) {
            if (!conn->error_status)
                fail_from_parser(conn);
            conn->phase = PHASE_FAILED;
            return CC_HTTP_ERROR;
        }
        if (conn->phase == PHASE_HEAD && conn->head_bytes >= conn->limits.max_header_bytes) {
            fail(conn, 431, "TOOBIG", "the request line and headers are too long");
            conn->phase = PHASE_FAILED;
            return CC_HTTP_ERROR;
        }
        if (n < chunk) {
            /* Stopped without an error: an upgrade (CONNECT, Upgrade:),
             * whose rest is another protocol. Not served. */
            fail(conn, 400, "UNSUPPORTED", "protocol upgrades are not served");
            conn->phase = PHASE_FAILED;
            return CC_HTTP_ERROR;
        }
    }
    return CC_HTTP_NEED_MORE;
}

const struct cc_http_request *cc_http_conn_request(const struct cc_http_conn *conn)
{
    return conn->phase == PHASE_COMPLETE ? &conn->request : NULL;
}

void cc_http_conn_next(struct cc_http_conn *conn)
{
    if (conn->phase != PHASE_COMPLETE)
        return;
    reset_request(conn);
    http_parser_pause(&conn->parser, 0);
}

bool cc_http_conn_mid_request(const struct cc_http_conn *conn)
{
    return conn->started && conn->phase != PHASE_COMPLETE;
}

int cc_http_conn_error_response(const struct cc_http_conn *conn, struct cc_http_response *out)
{
    int status = conn->error_status ? conn->error_status : 400;
    const char *code = conn->error_code ? conn->error_code : "PARSE";
    const char *message =
        conn->error_message ? conn->error_message : "the request is not valid HTTP";
    /* The request is incomplete: only its Origin (if read) is used, for
     * CORS, so a browser can see the error. */
    struct cc_http_request partial = {0};
    partial.origin = conn->request.origin;
    partial.http_minor = 1;
    return cc_http_error_response(status, code, message, &partial, &conn->cors, NULL, true, out);
}
