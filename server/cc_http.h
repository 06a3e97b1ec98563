/*
 * cc_http.h: carecount's HTTP/1.1 + JSON interface, as a module the
 * connection code plugs in: an incremental request parser per connection,
 * the translation of an HTTP request into the msgpack request map the
 * msgpack port would get, and of the msgpack reply map into an HTTP
 * response (docs/protocol.md, "HTTP/JSON").
 *
 * It owns no socket, timer or thread: the server reads bytes, feeds them
 * here, dispatches the translated request exactly as a msgpack frame and
 * writes the response bytes made here. Parsing is http-parser 2.9 (a
 * callback parser, so nothing is buffered but what this module keeps);
 * JSON is jansson.
 *
 * Lifetimes: a parsed request (struct cc_http_request) lives inside its
 * connection object until cc_http_conn_next(); its bearer token is wiped
 * there, and is never copied into the msgpack request or the response.
 *
 * Responses go out in request order (HTTP/1.1 pipelining): the parser hands
 * over one request at a time and parses nothing more until
 * cc_http_conn_next(), so a caller that calls it only once the response is
 * queued answers a pipeline in order.
 *
 * Must never: log or echo the bearer token or request content (error
 * messages are fixed texts), allocate for a body before its declared
 * length has passed the limit, or buffer more than the limits allow.
 */
#ifndef CC_HTTP_H
#define CC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* The request line and headers of one request, at most (431 beyond). */
#define CC_HTTP_DEFAULT_MAX_HEADER_BYTES 8192
/* The body of one request, at most (413 beyond); the msgpack port's default
 * max_frame_bytes, so the same request fits both ports. */
#define CC_HTTP_DEFAULT_MAX_BODY_BYTES 1048576
/* JSON bodies nest at most this deep, the body object being depth 1 (the
 * msgpack request map: CC_REQUEST_MAX_DEPTH). */
#define CC_HTTP_MAX_JSON_DEPTH 32

struct cc_http_limits {
    size_t max_header_bytes; /* request line + headers, CRLFs included */
    size_t max_body_bytes;   /* the declared Content-Length */
};

/* Allowed CORS origins, each compared exactly (scheme://host[:port]); none
 * by default, so browsers on other origins get no access. Not copied: the
 * strings must outlive every use. */
struct cc_http_cors {
    const char *const *origins;
    size_t n_origins;
};

enum cc_http_method {
    CC_HTTP_GET,
    CC_HTTP_POST,
    CC_HTTP_OPTIONS,
    CC_HTTP_HEAD,  /* answered 405, without a body (as HEAD requires) */
    CC_HTTP_OTHER, /* any other method: answered 405 */
};

/* One parsed request. Every pointer points into the connection object and
 * is valid until cc_http_conn_next() or cc_http_conn_free(). Strings are
 * NUL-terminated; absent headers are NULL. */
struct cc_http_request {
    enum cc_http_method method;
    const char *path;         /* "/v1/ping": the target before any '?' */
    const char *query;        /* after the '?', or NULL */
    const char *bearer_token; /* from "Authorization: Bearer T", or NULL */
    bool has_authorization;   /* an Authorization header, Bearer or not */
    const char *origin;       /* Origin */
    const char *content_type; /* Content-Type */
    const uint8_t *body;      /* body_bytes bytes (NUL after them) */
    size_t body_bytes;
    bool keep_alive; /* the connection may carry another request after this */
    int http_minor;  /* 0 (HTTP/1.0) or 1 */
};

/* A complete HTTP response: status line, headers, body. */
struct cc_http_response {
    char *data; /* malloc'd, len bytes; free with cc_http_response_free */
    size_t len;
    int status;
    bool close; /* close the connection once this response is written */
};

/* Frees a response's bytes (not the struct). NULL is allowed. */
void cc_http_response_free(struct cc_http_response *response);

/* ---- the parser --------------------------------------------------------- */

struct cc_http_conn;

/* What cc_http_feed found. */
enum cc_http_feed_result {
    CC_HTTP_NEED_MORE = 0, /* every byte used; no request complete yet */
    CC_HTTP_REQUEST = 1,   /* a request is complete: cc_http_conn_request() */
    CC_HTTP_CONTINUE = 2,  /* the head of a request that sent "Expect:
                            * 100-continue" passed the limits: write
                            * CC_HTTP_CONTINUE_RESPONSE, then feed on */
    CC_HTTP_ERROR = 3,     /* unreadable or over a limit: write
                            * cc_http_conn_error_response() and close */
};

/* The interim response that answers "Expect: 100-continue". */
#define CC_HTTP_CONTINUE_RESPONSE "HTTP/1.1 100 Continue\r\n\r\n"

/* Creates a parser for one connection (limits NULL: the defaults; a zero
 * field also means its default). cors is used for the error responses the
 * parser makes itself (NULL: none). Allocates the header store
 * (max_header_bytes) at once, the body only when a request declares one.
 * Returns 0 and sets *out (free with cc_http_conn_free), CC_EINVAL or
 * CC_ENOMEM. */
int cc_http_conn_new(const struct cc_http_limits *limits, const struct cc_http_cors *cors,
                     struct cc_http_conn **out);

/* Wipes and frees a parser. NULL is allowed. */
void cc_http_conn_free(struct cc_http_conn *conn);

/* Parses data[0..len) until a request is complete, the head of an "Expect:
 * 100-continue" request passes, an error is found, or the input is used up;
 * sets *used to the bytes consumed (the rest belongs to later requests and
 * must be fed again, after cc_http_conn_next() for CC_HTTP_REQUEST).
 * Returns a cc_http_feed_result (running out of memory for a body is a
 * CC_HTTP_ERROR whose response is a 500 NOMEM). Once it returns
 * CC_HTTP_REQUEST it returns it again, consuming nothing, until
 * cc_http_conn_next(); once CC_HTTP_ERROR, always CC_HTTP_ERROR. */
int cc_http_feed(struct cc_http_conn *conn, const uint8_t *data, size_t len, size_t *used);

/* The complete request (only after cc_http_feed returned CC_HTTP_REQUEST),
 * else NULL. */
const struct cc_http_request *cc_http_conn_request(const struct cc_http_conn *conn);

/* Ends the current request: wipes its token and header store, frees its
 * body, and lets the parser read the next request. */
void cc_http_conn_next(struct cc_http_conn *conn);

/* True if the parser holds part of a request: a stream that ends now was
 * cut off mid-request. */
bool cc_http_conn_mid_request(const struct cc_http_conn *conn);

/* After CC_HTTP_ERROR: builds the error response (400, 411, 413, 431, 505;
 * the JSON error shape; Connection: close) into *out. Returns 0 or
 * CC_ENOMEM. */
int cc_http_conn_error_response(const struct cc_http_conn *conn, struct cc_http_response *out);

/* ---- translation -------------------------------------------------------- */

/* Translates a request into the msgpack request map the msgpack port would
 * get for it: {"v":1,"id":id,"op":OP, ...the JSON body's fields...}, into
 * the empty buffer *map (no frame header). The routes:
 *   GET  /v1/ping, /v1/status, /v1/schema, /v1/codelists  (no fields)
 *   POST /v1/OP  with a JSON object body: the op's fields (OP: [a-z0-9_],
 *        1 to 32 characters; "count", "compare" and every other op)
 * Returns 0, or 1 when the request is answered here: *response is then
 * set (an OPTIONS preflight 204; 404 unknown path; 405 wrong method, with
 * Allow; 415 a POST body that is not application/json; 400 bad JSON, a body
 * that is not an object, an envelope key in it, or nesting beyond
 * CC_HTTP_MAX_JSON_DEPTH). Returns CC_ENOMEM on allocation failure. The
 * bearer token is not put in the map: the server authenticates it apart. */
int cc_http_to_request(const struct cc_http_request *request, uint64_t id,
                       const struct cc_http_cors *cors, msgpack_sbuffer *map,
                       struct cc_http_response *response);

/* Translates the server's reply map (the body of a reply frame, no header)
 * to the request into the HTTP response: the status from the error code
 * (docs/protocol.md), the reply map as a JSON object without the envelope's
 * "v" and "id" (so {"ok":true,...} or {"ok":false,"error":{...}}), and the
 * headers (CORS from cors and the request's Origin). A reply that cannot be
 * read becomes a 500 INTERNAL. Returns 0 or CC_ENOMEM. */
int cc_http_from_reply(const uint8_t *reply, size_t len, const struct cc_http_request *request,
                       const struct cc_http_cors *cors, struct cc_http_response *response);

/* The HTTP status for a protocol error code name ("AUTH" -> 401), 200 for
 * NULL (success). */
int cc_http_status_for_code(const char *code);

/* Builds an error response in the JSON error shape,
 * {"ok":false,"error":{"code":CODE,"message":MESSAGE}}, with the standard
 * headers, CORS for request (NULL: none), allow (an Allow header value, or
 * NULL) and Connection: close if close. Returns 0 or CC_ENOMEM. */
int cc_http_error_response(int status, const char *code, const char *message,
                           const struct cc_http_request *request, const struct cc_http_cors *cors,
                           const char *allow, bool close, struct cc_http_response *out);

/* JSON <-> msgpack, as the translation does them (exposed for the tests
 * and for clients): integers stay integers, reals floats, strings str,
 * null nil; containers nest at most max_depth deep. Packs one value into
 * packer (whose write failures are the caller's to see). Returns 0,
 * CC_EPARSE (not one strict JSON value: see cc_http_to_request) or
 * CC_ETOOBIG (nested deeper). */
int cc_http_json_to_msgpack(const char *json, size_t len, size_t max_depth, msgpack_packer *packer);
/* A msgpack value to compact JSON text (malloc'd, NUL-terminated; the
 * caller frees). NaN and infinities become null; binary, extension types,
 * non-string keys, invalid UTF-8 and integers beyond int64 are refused
 * (CC_EINVAL). Returns 0, CC_EINVAL or CC_ENOMEM. */
int cc_http_msgpack_to_json(const msgpack_object *value, char **json);

#endif
