/* Tests for server/cc_http.c and cc_http_translate.c: the HTTP/1.x request
 * parser (pipelines, byte-by-byte feeds, every limit), the bearer token's
 * lifetime, the translation of routes and JSON bodies into the msgpack
 * request map the msgpack port gets, and of reply maps into responses
 * (status for every error code, CORS, preflight); the dashboard's static
 * files (cc_http_static.c: byte for byte as in web/, their types, the CSP,
 * nothing outside the embedded set). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cc_client.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_http.h"
#include "cc_request.h"

/* ---- helpers ------------------------------------------------------------ */

/* True if needle[0..n) occurs in hay[0..len). */
static bool contains_bytes(const void *hay, size_t len, const char *needle, size_t n)
{
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp((const char *)hay + i, needle, n) == 0)
            return true;
    return false;
}

static struct cc_http_conn *new_conn(size_t max_header_bytes, size_t max_body_bytes)
{
    struct cc_http_limits limits = {max_header_bytes, max_body_bytes};
    struct cc_http_conn *conn = NULL;
    cr_assert_eq(cc_http_conn_new(&limits, NULL, &conn), 0);
    return conn;
}

/* What a test keeps of one parsed request (the request itself dies at
 * cc_http_conn_next). */
struct seen {
    enum cc_http_method method;
    char path[256], query[256], token[256], origin[256];
    bool has_query, has_token, has_authorization, keep_alive;
    char body[4096];
    size_t body_bytes;
};

static void copy_opt(char *out, size_t cap, const char *s, bool *has)
{
    if (has)
        *has = s != NULL;
    snprintf(out, cap, "%s", s ? s : "");
}

static void remember(const struct cc_http_request *request, struct seen *seen)
{
    memset(seen, 0, sizeof *seen);
    seen->method = request->method;
    copy_opt(seen->path, sizeof seen->path, request->path, NULL);
    copy_opt(seen->query, sizeof seen->query, request->query, &seen->has_query);
    copy_opt(seen->token, sizeof seen->token, request->bearer_token, &seen->has_token);
    copy_opt(seen->origin, sizeof seen->origin, request->origin, NULL);
    seen->has_authorization = request->has_authorization;
    seen->keep_alive = request->keep_alive;
    cr_assert_lt(request->body_bytes, sizeof seen->body);
    memcpy(seen->body, request->body, request->body_bytes);
    seen->body_bytes = request->body_bytes;
}

/* Feeds text in pieces of `step` bytes (0: all at once), collecting up to
 * max requests into seen[]. Returns the number of requests, or -1 if the
 * parser reported an error (then *error_at is the request index). */
static int feed_in_steps(struct cc_http_conn *conn, const char *text, size_t len, size_t step,
                         struct seen *seen, int max)
{
    int n = 0;
    size_t at = 0;
    while (at < len) {
        size_t piece = step ? (len - at < step ? len - at : step) : len - at;
        size_t off = 0;
        while (off < piece) {
            size_t used = 0;
            int rc = cc_http_feed(conn, (const uint8_t *)text + at + off, piece - off, &used);
            off += used;
            if (rc == CC_HTTP_REQUEST) {
                cr_assert_lt(n, max);
                remember(cc_http_conn_request(conn), &seen[n++]);
                cc_http_conn_next(conn);
            } else if (rc == CC_HTTP_ERROR) {
                return -1;
            } else if (rc == CC_HTTP_CONTINUE) {
                continue;
            } else {
                cr_assert_eq(rc, CC_HTTP_NEED_MORE);
                cr_assert_eq(off, piece, "NEED_MORE with bytes left");
            }
        }
        at += piece;
    }
    return n;
}

/* A parsed response. */
struct parsed_response {
    int status;
    char head[4096];
    char body[8192];
};

static void parse_response(const struct cc_http_response *response, struct parsed_response *out)
{
    cr_assert_not_null(response->data);
    cr_assert_eq(strlen(response->data), response->len, "a response is text");
    const char *end = strstr(response->data, "\r\n\r\n");
    cr_assert_not_null(end, "no end of headers");
    size_t head_len = (size_t)(end - response->data) + 2;
    cr_assert_lt(head_len, sizeof out->head);
    memcpy(out->head, response->data, head_len);
    out->head[head_len] = '\0';
    snprintf(out->body, sizeof out->body, "%s", end + 4);
    cr_assert_eq(sscanf(out->head, "HTTP/1.1 %d ", &out->status), 1);
}

/* The value of a header in a parsed response, or NULL (static buffer). */
static const char *header(const struct parsed_response *response, const char *name)
{
    static char value[512];
    char needle[128];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *at = strstr(response->head, needle);
    if (!at)
        return NULL;
    at += strlen(needle);
    const char *eol = strstr(at, "\r\n");
    snprintf(value, sizeof value, "%.*s", (int)(eol - at), at);
    return value;
}

/* Parses one complete request from text into the connection; the request
 * stays current (the caller calls cc_http_conn_next or frees). */
static const struct cc_http_request *parse_one(struct cc_http_conn *conn, const char *text)
{
    size_t used = 0, len = strlen(text), at = 0;
    int rc;
    do {
        rc = cc_http_feed(conn, (const uint8_t *)text + at, len - at, &used);
        at += used;
    } while (rc == CC_HTTP_CONTINUE);
    cr_assert_eq(rc, CC_HTTP_REQUEST, "not a complete request (rc %d)", rc);
    cr_assert_eq(at, len, "bytes left after the request");
    return cc_http_conn_request(conn);
}

/* Feeds text and requires a parser error; returns the error response. */
static void expect_parse_error(struct cc_http_conn *conn, const char *text, size_t len, int status,
                               const char *code, struct parsed_response *out)
{
    size_t used = 0;
    int rc = cc_http_feed(conn, (const uint8_t *)text, len, &used);
    cr_assert_eq(rc, CC_HTTP_ERROR, "expected an error for status %d, got %d", status, rc);
    struct cc_http_response response = {0};
    cr_assert_eq(cc_http_conn_error_response(conn, &response), 0);
    cr_assert(response.close, "a parser error closes the connection");
    parse_response(&response, out);
    cc_http_response_free(&response);
    cr_assert_eq(out->status, status);
    char expected[128];
    snprintf(expected, sizeof expected, "{\"ok\":false,\"error\":{\"code\":\"%s\",", code);
    cr_assert(strncmp(out->body, expected, strlen(expected)) == 0, "body %s", out->body);
    cr_assert_str_eq(header(out, "Connection"), "close");
    cr_assert_str_eq(header(out, "Content-Type"), "application/json; charset=utf-8");
    /* Sticky: the stream can no longer be read. */
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18, &used),
                 CC_HTTP_ERROR);
}

/* Translates request text into a map or a response. Returns what
 * cc_http_to_request returned. */
static int translate(const char *text, const struct cc_http_cors *cors, msgpack_sbuffer *map,
                     struct parsed_response *answer)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const struct cc_http_request *request = parse_one(conn, text);
    struct cc_http_response response = {0};
    msgpack_sbuffer_init(map);
    int rc = cc_http_to_request(request, 7, cors, map, &response);
    if (rc == 1) {
        parse_response(&response, answer);
        cc_http_response_free(&response);
    }
    cc_http_conn_free(conn);
    return rc;
}

static void expect_same_bytes(const msgpack_sbuffer *got, const msgpack_sbuffer *want)
{
    cr_assert_eq(got->size, want->size, "map is %zu bytes, expected %zu", got->size, want->size);
    cr_assert(memcmp(got->data, want->data, want->size) == 0, "map bytes differ");
}

/* ---- parsing ------------------------------------------------------------ */

Test(http, parses_a_get_with_its_query_and_headers)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const struct cc_http_request *request =
        parse_one(conn, "GET /v1/ping?x=1&y=2 HTTP/1.1\r\nHost: h\r\n"
                        "ORIGIN: https://dash.example\r\n\r\n");
    cr_assert_eq(request->method, CC_HTTP_GET);
    cr_assert_str_eq(request->path, "/v1/ping");
    cr_assert_str_eq(request->query, "x=1&y=2");
    cr_assert_str_eq(request->origin, "https://dash.example", "header names are case-insensitive");
    cr_assert_null(request->bearer_token);
    cr_assert_not(request->has_authorization);
    cr_assert(request->keep_alive, "HTTP/1.1 keeps the connection by default");
    cr_assert_eq(request->http_minor, 1);
    cr_assert_eq(request->body_bytes, 0);
    cc_http_conn_free(conn);
}

static const char pipeline[] =
    "GET /v1/ping HTTP/1.1\r\nHost: h\r\n\r\n"
    "POST /v1/count HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
    "Content-Length: 13\r\nAuthorization: Bearer tok-123\r\n\r\n{\"query\":{}}\n"
    "GET /v1/status?verbose HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";

static void check_pipeline(const struct seen *seen)
{
    cr_assert_str_eq(seen[0].path, "/v1/ping");
    cr_assert_eq(seen[0].method, CC_HTTP_GET);
    cr_assert_not(seen[0].has_token);
    cr_assert_str_eq(seen[1].path, "/v1/count");
    cr_assert_eq(seen[1].method, CC_HTTP_POST);
    cr_assert_str_eq(seen[1].token, "tok-123");
    cr_assert_eq(seen[1].body_bytes, 13);
    cr_assert(memcmp(seen[1].body, "{\"query\":{}}\n", 13) == 0);
    cr_assert_str_eq(seen[2].path, "/v1/status");
    cr_assert_str_eq(seen[2].query, "verbose");
    cr_assert(seen[0].keep_alive && seen[1].keep_alive);
    cr_assert_not(seen[2].keep_alive, "Connection: close");
}

Test(http, pipelined_requests_in_one_read_come_out_one_at_a_time)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    size_t used = 0;
    /* Parsing stops at the end of the first request. */
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)pipeline, strlen(pipeline), &used),
                 CC_HTTP_REQUEST);
    cr_assert_eq(used, strlen("GET /v1/ping HTTP/1.1\r\nHost: h\r\n\r\n"));
    /* Until it is taken, nothing more is read. */
    size_t again = 99;
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)pipeline + used, 5, &again), CC_HTTP_REQUEST);
    cr_assert_eq(again, 0);
    cc_http_conn_next(conn);
    cc_http_conn_free(conn);

    struct seen seen[3];
    conn = new_conn(0, 0);
    cr_assert_eq(feed_in_steps(conn, pipeline, strlen(pipeline), 0, seen, 3), 3);
    check_pipeline(seen);
    cr_assert_not(cc_http_conn_mid_request(conn));
    cc_http_conn_free(conn);
}

Test(http, a_pipeline_fed_byte_by_byte_parses_the_same)
{
    for (size_t step = 1; step <= 7; step++) {
        struct seen seen[3];
        struct cc_http_conn *conn = new_conn(0, 0);
        cr_assert_eq(feed_in_steps(conn, pipeline, strlen(pipeline), step, seen, 3), 3, "step %zu",
                     step);
        check_pipeline(seen);
        cc_http_conn_free(conn);
    }
}

Test(http, a_request_cut_off_is_mid_request)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    size_t used;
    cr_assert_not(cc_http_conn_mid_request(conn));
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)"GET /v1/pi", 10, &used), CC_HTTP_NEED_MORE);
    cr_assert_eq(used, 10);
    cr_assert(cc_http_conn_mid_request(conn));
    cr_assert_null(cc_http_conn_request(conn));
    cc_http_conn_free(conn);
}

/* A GET whose head is exactly len bytes (padded with an X-Pad header). */
static char *head_of_length(size_t len)
{
    const char *start = "GET /v1/ping HTTP/1.1\r\nX-Pad: ";
    const char *end = "\r\n\r\n";
    size_t fixed = strlen(start) + strlen(end);
    cr_assert_gt(len, fixed);
    char *text = malloc(len + 1);
    strcpy(text, start);
    memset(text + strlen(start), 'a', len - fixed);
    strcpy(text + len - strlen(end), end);
    cr_assert_eq(strlen(text), len);
    return text;
}

Test(http, a_head_at_the_limit_passes_and_one_byte_more_is_431)
{
    for (size_t step = 0; step <= 1; step++) {
        char *text = head_of_length(8192);
        struct seen seen[1];
        struct cc_http_conn *conn = new_conn(0, 0);
        cr_assert_eq(feed_in_steps(conn, text, 8192, step * 1000, seen, 1), 1);
        cc_http_conn_free(conn);
        free(text);

        text = head_of_length(8193);
        conn = new_conn(0, 0);
        cr_assert_eq(feed_in_steps(conn, text, 8193, step * 1000, seen, 1), -1);
        struct cc_http_response response = {0};
        struct parsed_response parsed;
        cr_assert_eq(cc_http_conn_error_response(conn, &response), 0);
        parse_response(&response, &parsed);
        cr_assert_eq(parsed.status, 431);
        cc_http_response_free(&response);
        cc_http_conn_free(conn);
        free(text);
    }
}

Test(http, the_head_limit_is_per_request_not_per_connection)
{
    /* Ten requests of 5 KB heads each: 50 KB on one connection. */
    char *one = head_of_length(5000);
    size_t total = 10 * 5000;
    char *text = malloc(total + 1);
    for (int i = 0; i < 10; i++)
        memcpy(text + i * 5000, one, 5000);
    struct seen seen[10];
    struct cc_http_conn *conn = new_conn(0, 0);
    cr_assert_eq(feed_in_steps(conn, text, total, 0, seen, 10), 10);
    cc_http_conn_free(conn);
    free(text);
    free(one);
}

Test(http, a_declared_body_over_the_limit_is_413_before_any_body_arrives)
{
    struct cc_http_conn *conn = new_conn(0, 100);
    struct parsed_response parsed;
    const char *head = "POST /v1/count HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 101\r\n\r\n";
    expect_parse_error(conn, head, strlen(head), 413, "TOOBIG", &parsed);
    cc_http_conn_free(conn);

    /* Exactly at the limit is served. */
    char text[512];
    char body[101];
    memset(body, ' ', 100);
    body[0] = '{';
    body[99] = '}';
    body[100] = '\0';
    snprintf(text, sizeof text,
             "POST /v1/count HTTP/1.1\r\nContent-Type: application/json\r\n"
             "Content-Length: 100\r\n\r\n%s",
             body);
    conn = new_conn(0, 100);
    const struct cc_http_request *request = parse_one(conn, text);
    cr_assert_eq(request->body_bytes, 100);
    cc_http_conn_free(conn);
}

Test(http, an_absurd_content_length_is_refused)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    struct parsed_response parsed;
    const char *head = "POST /v1/count HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n";
    expect_parse_error(conn, head, strlen(head), 400, "PARSE", &parsed);
    cc_http_conn_free(conn);
}

Test(http, chunked_bodies_are_refused_with_411)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    struct parsed_response parsed;
    const char *text = "POST /v1/count HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "2\r\n{}\r\n0\r\n\r\n";
    expect_parse_error(conn, text, strlen(text), 411, "UNSUPPORTED", &parsed);
    cc_http_conn_free(conn);
}

Test(http, content_length_with_chunked_is_refused)
{
    /* The classic request-smuggling pair: never guess which one counts. */
    struct cc_http_conn *conn = new_conn(0, 0);
    const char *text = "POST /v1/count HTTP/1.1\r\nContent-Length: 4\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    size_t used;
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)text, strlen(text), &used), CC_HTTP_ERROR);
    struct cc_http_response response = {0};
    cr_assert_eq(cc_http_conn_error_response(conn, &response), 0);
    cr_assert(response.status == 400 || response.status == 411, "status %d", response.status);
    cr_assert(response.close);
    cc_http_response_free(&response);
    cc_http_conn_free(conn);
}

Test(http, other_http_versions_are_505)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    struct parsed_response parsed;
    const char *text = "GET /v1/ping HTTP/2.0\r\n\r\n";
    expect_parse_error(conn, text, strlen(text), 505, "UNSUPPORTED", &parsed);
    cc_http_conn_free(conn);
}

Test(http, garbage_is_400_in_the_json_error_shape)
{
    const char *inputs[] = {
        "\x00\x00\x00\x10\x83\xa1v\x01", /* a msgpack frame */
        "GET /v1/ping FTP/1.1\r\n\r\n",  /* not HTTP */
        "GET /v1/ping HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET http://example.com/v1/ping HTTP/1.1\r\n\r\n", /* not a path */
    };
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        size_t len = i == 0 ? 8 : strlen(inputs[i]);
        struct cc_http_conn *conn = new_conn(0, 0);
        struct parsed_response parsed;
        expect_parse_error(conn, inputs[i], len, 400, "PARSE", &parsed);
        cr_assert_null(strstr(parsed.body, "example"), "the error echoes no request content");
        cc_http_conn_free(conn);
    }
}

Test(http, keep_alive_follows_the_version_and_connection_header)
{
    struct {
        const char *text;
        bool keep_alive;
    } cases[] = {
        {"GET /v1/ping HTTP/1.1\r\n\r\n", true},
        {"GET /v1/ping HTTP/1.1\r\nConnection: close\r\n\r\n", false},
        {"GET /v1/ping HTTP/1.0\r\n\r\n", false},
        {"GET /v1/ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cc_http_conn *conn = new_conn(0, 0);
        const struct cc_http_request *request = parse_one(conn, cases[i].text);
        cr_assert_eq(request->keep_alive, cases[i].keep_alive, "case %zu", i);
        /* The response says so. */
        struct cc_http_response response = {0};
        struct parsed_response parsed;
        cr_assert_eq(
            cc_http_error_response(404, "NOTFOUND", "x", request, NULL, NULL, false, &response), 0);
        cr_assert_eq(response.close, !cases[i].keep_alive);
        parse_response(&response, &parsed);
        const char *connection = header(&parsed, "Connection");
        if (!cases[i].keep_alive)
            cr_assert_str_eq(connection, "close");
        else if (request->http_minor == 0)
            cr_assert_str_eq(connection, "keep-alive");
        else
            cr_assert_null(connection);
        cc_http_response_free(&response);
        cc_http_conn_free(conn);
    }
}

Test(http, expect_100_continue_is_reported_before_the_body)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const char *head = "POST /v1/count HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 2\r\nExpect: 100-continue\r\n\r\n";
    size_t used = 0;
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)head, strlen(head), &used), CC_HTTP_CONTINUE);
    cr_assert_eq(used, strlen(head) - 1, "the head's last byte is read with what follows");
    size_t more = 0;
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)head + used, strlen(head) - used, &more),
                 CC_HTTP_NEED_MORE);
    cr_assert_eq(cc_http_feed(conn, (const uint8_t *)"{}", 2, &more), CC_HTTP_REQUEST);
    cr_assert_eq(cc_http_conn_request(conn)->body_bytes, 2);
    cc_http_conn_free(conn);

    conn = new_conn(0, 0);
    struct parsed_response parsed;
    const char *odd = "POST /v1/count HTTP/1.1\r\nContent-Length: 2\r\nExpect: tea\r\n\r\n{}";
    expect_parse_error(conn, odd, strlen(odd), 417, "UNSUPPORTED", &parsed);
    cc_http_conn_free(conn);
}

/* ---- the bearer token -------------------------------------------------- */

Test(http, the_bearer_token_is_extracted_and_wiped_after_the_request)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const char *secret = "s3cr3t-t0ken-value-0123456789";
    char text[512];
    snprintf(text, sizeof text,
             "POST /v1/count HTTP/1.1\r\nAuthorization: bearer  %s \r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
             secret);
    const struct cc_http_request *request = parse_one(conn, text);
    cr_assert_str_eq(request->bearer_token, secret,
                     "the scheme is case-insensitive, "
                     "spaces are trimmed");
    cr_assert(request->has_authorization);
    const char *where = request->bearer_token;

    /* The token is not in the request map or in a response. */
    msgpack_sbuffer map;
    msgpack_sbuffer_init(&map);
    struct cc_http_response response = {0};
    cr_assert_eq(cc_http_to_request(request, 1, NULL, &map, &response), 0);
    cr_assert_not(contains_bytes(map.data, map.size, secret, strlen(secret)));
    msgpack_sbuffer_destroy(&map);

    cc_http_conn_next(conn);
    /* The store it lived in belongs to the connection still, so reading it
     * is defined: the bytes are gone. */
    cr_assert_not(contains_bytes(where, strlen(secret), "s3cr3t", 6), "the token survived");
    for (size_t i = 0; i < strlen(secret); i++)
        cr_assert_eq(where[i], 0);
    cr_assert_null(cc_http_conn_request(conn));
    cc_http_conn_free(conn);
}

Test(http, other_authorization_schemes_give_no_token)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const struct cc_http_request *request =
        parse_one(conn, "GET /v1/ping HTTP/1.1\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n");
    cr_assert_null(request->bearer_token);
    cr_assert(request->has_authorization);
    cc_http_conn_free(conn);

    conn = new_conn(0, 0);
    struct parsed_response parsed;
    const char *twice = "GET /v1/ping HTTP/1.1\r\nAuthorization: Bearer a\r\n"
                        "Authorization: Bearer b\r\n\r\n";
    expect_parse_error(conn, twice, strlen(twice), 400, "PARSE", &parsed);
    cc_http_conn_free(conn);
}

/* ---- requests to msgpack ------------------------------------------------ */

Test(http, get_routes_make_the_map_the_msgpack_client_sends)
{
    const char *ops[] = {"ping", "status", "schema", "codelists"};
    for (size_t i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "GET /v1/%s HTTP/1.1\r\n\r\n", ops[i]);
        msgpack_sbuffer map, want;
        struct parsed_response answer;
        cr_assert_eq(translate(text, NULL, &map, &answer), 0, "%s", ops[i]);
        msgpack_packer packer;
        msgpack_sbuffer_init(&want);
        msgpack_packer_init(&packer, &want, msgpack_sbuffer_write);
        cc_client_pack_envelope(&packer, 7, ops[i], 0);
        expect_same_bytes(&map, &want);
        msgpack_sbuffer_destroy(&map);
        msgpack_sbuffer_destroy(&want);
    }
}

static void post_text(char *out, size_t cap, const char *path, const char *json)
{
    snprintf(out, cap,
             "POST %s HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             path, strlen(json), json);
}

Test(http, a_post_body_becomes_the_op_fields_with_their_types)
{
    /* Non-ASCII text: "Årsta – 東京" as UTF-8, escaped and raw. */
    const char *json = "{\"query\":{\"measure\":\"persons\",\"year\":2024,\"delta\":-3,"
                       "\"rate\":0.25,\"big\":9007199254740993,\"flags\":[true,false,null],"
                       "\"area\":\"\\u00c5rsta \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac\"},"
                       "\"empty\":{},\"list\":[]}";
    char text[1024];
    post_text(text, sizeof text, "/v1/count", json);
    msgpack_sbuffer map, want;
    struct parsed_response answer;
    cr_assert_eq(translate(text, NULL, &map, &answer), 0);

    msgpack_packer p;
    msgpack_sbuffer_init(&want);
    msgpack_packer_init(&p, &want, msgpack_sbuffer_write);
    cc_client_pack_envelope(&p, 7, "count", 3);
    msgpack_pack_str_with_body(&p, "query", 5);
    msgpack_pack_map(&p, 7);
    msgpack_pack_str_with_body(&p, "measure", 7);
    msgpack_pack_str_with_body(&p, "persons", 7);
    msgpack_pack_str_with_body(&p, "year", 4);
    msgpack_pack_uint64(&p, 2024);
    msgpack_pack_str_with_body(&p, "delta", 5);
    msgpack_pack_int64(&p, -3);
    msgpack_pack_str_with_body(&p, "rate", 4);
    msgpack_pack_double(&p, 0.25);
    msgpack_pack_str_with_body(&p, "big", 3);
    msgpack_pack_uint64(&p, 9007199254740993ull); /* exact: no trip through a double */
    msgpack_pack_str_with_body(&p, "flags", 5);
    msgpack_pack_array(&p, 3);
    msgpack_pack_true(&p);
    msgpack_pack_false(&p);
    msgpack_pack_nil(&p);
    msgpack_pack_str_with_body(&p, "area", 4);
    const char *area = "\xc3\x85rsta \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac";
    msgpack_pack_str_with_body(&p, area, strlen(area));
    msgpack_pack_str_with_body(&p, "empty", 5);
    msgpack_pack_map(&p, 0);
    msgpack_pack_str_with_body(&p, "list", 4);
    msgpack_pack_array(&p, 0);
    expect_same_bytes(&map, &want);

    /* And the server's decoder reads it as a request with those types. */
    uint8_t *body = malloc(map.size);
    memcpy(body, map.data, map.size);
    struct cc_request *request;
    cr_assert_eq(cc_request_new(body, map.size, &request), 0);
    cc_request_decode(request); /* "count" may not be an op yet: look at the fields */
    const msgpack_object *query = cc_request_field(request, "query");
    cr_assert_not_null(query);
    const msgpack_object *year = cc_request_map_get(query, "year");
    cr_assert_eq(year->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(year->via.u64, 2024);
    cr_assert_eq(cc_request_map_get(query, "delta")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_assert_eq(cc_request_map_get(query, "rate")->type, MSGPACK_OBJECT_FLOAT64);
    cc_request_free(request);
    msgpack_sbuffer_destroy(&map);
    msgpack_sbuffer_destroy(&want);
}

/* A JSON body nested n deep: the body object, then arrays. */
static char *nested_body(int depth)
{
    char *json = malloc(16 + 2 * (size_t)depth);
    strcpy(json, "{\"a\":");
    for (int i = 1; i < depth; i++)
        strcat(json, "[");
    strcat(json, "1");
    for (int i = 1; i < depth; i++)
        strcat(json, "]");
    strcat(json, "}");
    return json;
}

Test(http, bodies_nest_at_most_32_deep)
{
    char text[512];
    msgpack_sbuffer map;
    struct parsed_response answer;

    char *json = nested_body(32);
    post_text(text, sizeof text, "/v1/count", json);
    cr_assert_eq(translate(text, NULL, &map, &answer), 0);
    /* The server's own bound check agrees. */
    uint8_t *body = malloc(map.size);
    memcpy(body, map.data, map.size);
    struct cc_request *request;
    cr_assert_eq(cc_request_new(body, map.size, &request), 0);
    cc_request_decode(request);
    cr_assert_not_null(cc_request_field(request, "a"), "the server decodes 32 levels");
    cc_request_free(request);
    msgpack_sbuffer_destroy(&map);
    free(json);

    json = nested_body(33);
    post_text(text, sizeof text, "/v1/count", json);
    cr_assert_eq(translate(text, NULL, &map, &answer), 1);
    cr_assert_eq(answer.status, 400);
    cr_assert(strstr(answer.body, "\"PARSE\""));
    msgpack_sbuffer_destroy(&map);
    free(json);
}

Test(http, bad_json_bodies_are_400_and_not_echoed)
{
    const char *bodies[] = {
        "{\"query\": secretvalue}",               /* not JSON */
        "{\"a\":1,\"a\":2}",                      /* a repeated key */
        "{\"a\":1} {\"b\":2}",                    /* two values */
        "[1,2]",                                  /* not an object */
        "\"secretvalue\"",                        /* not an object */
        "{\"a\":\"\xff\xfe\"}",                   /* not UTF-8 */
        "{\"a\":123456789012345678901234567890}", /* beyond 64 bits */
        "",                                       /* nothing */
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char text[512];
        msgpack_sbuffer map;
        struct parsed_response answer;
        post_text(text, sizeof text, "/v1/count", bodies[i]);
        cr_assert_eq(translate(text, NULL, &map, &answer), 1, "body %zu", i);
        cr_assert_eq(answer.status, 400, "body %zu", i);
        cr_assert(strstr(answer.body, "\"code\":\"PARSE\""), "body %zu: %s", i, answer.body);
        cr_assert_null(strstr(answer.body, "secret"), "the error echoes the body");
        cr_assert_eq(map.size, 0, "no map for a refused body");
        msgpack_sbuffer_destroy(&map);
    }
}

Test(http, the_body_cannot_set_the_envelope)
{
    const char *bodies[] = {"{\"op\":\"status\"}", "{\"id\":5}", "{\"v\":2}"};
    for (size_t i = 0; i < 3; i++) {
        char text[512];
        msgpack_sbuffer map;
        struct parsed_response answer;
        post_text(text, sizeof text, "/v1/ping_x", bodies[i]);
        cr_assert_eq(translate(text, NULL, &map, &answer), 1);
        cr_assert_eq(answer.status, 400);
        cr_assert(strstr(answer.body, "\"INVAL\""));
        msgpack_sbuffer_destroy(&map);
    }
}

Test(http, unknown_paths_are_404_and_wrong_methods_405_with_allow)
{
    struct {
        const char *text;
        int status;
        const char *allow;
    } cases[] = {
        {"GET /favicon.ico HTTP/1.1\r\n\r\n", 404, NULL},
        {"GET /v2/ping HTTP/1.1\r\n\r\n", 404, NULL},
        {"GET /v1/ HTTP/1.1\r\n\r\n", 404, NULL},
        {"GET /v1/ping/more HTTP/1.1\r\n\r\n", 404, NULL},
        {"GET /v1/Ping HTTP/1.1\r\n\r\n", 404, NULL},
        {"POST /v1/ping HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "GET, OPTIONS"},
        {"DELETE /v1/status HTTP/1.1\r\n\r\n", 405, "GET, OPTIONS"},
        {"GET /v1/count HTTP/1.1\r\n\r\n", 405, "POST, OPTIONS"},
        {"PUT /v1/compare HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405, "POST, OPTIONS"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer map;
        struct parsed_response answer;
        cr_assert_eq(translate(cases[i].text, NULL, &map, &answer), 1, "case %zu", i);
        cr_assert_eq(answer.status, cases[i].status, "case %zu", i);
        if (cases[i].allow)
            cr_assert_str_eq(header(&answer, "Allow"), cases[i].allow);
        cr_assert(strstr(answer.body, "{\"ok\":false,\"error\":{\"code\":"));
        msgpack_sbuffer_destroy(&map);
    }
}

Test(http, head_is_405_without_a_body)
{
    msgpack_sbuffer map;
    struct parsed_response answer;
    cr_assert_eq(translate("HEAD /v1/ping HTTP/1.1\r\n\r\n", NULL, &map, &answer), 1);
    cr_assert_eq(answer.status, 405);
    cr_assert_str_eq(header(&answer, "Allow"), "GET, OPTIONS");
    /* The length a GET would have had, and no body: a pipelined response
     * after it is read from the right place. */
    cr_assert_not_null(header(&answer, "Content-Length"));
    cr_assert_str_eq(answer.body, "");
    msgpack_sbuffer_destroy(&map);
}

Test(http, a_post_body_must_be_application_json)
{
    const char *types[] = {"text/plain", "application/x-www-form-urlencoded", "application/jsonx",
                           NULL};
    for (size_t i = 0; i < 4; i++) {
        char text[512];
        snprintf(text, sizeof text, "POST /v1/count HTTP/1.1\r\n%s%s%sContent-Length: 2\r\n\r\n{}",
                 types[i] ? "Content-Type: " : "", types[i] ? types[i] : "",
                 types[i] ? "\r\n" : "");
        msgpack_sbuffer map;
        struct parsed_response answer;
        cr_assert_eq(translate(text, NULL, &map, &answer), 1);
        cr_assert_eq(answer.status, 415, "%s", types[i] ? types[i] : "(none)");
        msgpack_sbuffer_destroy(&map);
    }
}

/* ---- CORS ---------------------------------------------------------------- */

static const char *const dashboard_origins[] = {"https://dash.example", "http://localhost:8080"};
static const struct cc_http_cors dashboards = {dashboard_origins, 2};

Test(http, a_listed_origin_gets_its_exact_origin_back)
{
    msgpack_sbuffer map;
    struct parsed_response answer;
    const char *text = "GET /v1/nope HTTP/1.1\r\nOrigin: http://localhost:8080\r\n\r\n";
    cr_assert_eq(translate(text, &dashboards, &map, &answer), 1);
    cr_assert_str_eq(header(&answer, "Access-Control-Allow-Origin"), "http://localhost:8080");
    cr_assert_str_eq(header(&answer, "Vary"), "Origin");
    msgpack_sbuffer_destroy(&map);
}

Test(http, other_origins_and_no_configuration_get_no_cors)
{
    const char *origins[] = {"https://evil.example", "https://dash.example.evil", "null",
                             "https://DASH.example"};
    for (size_t i = 0; i < 4; i++) {
        char text[256];
        snprintf(text, sizeof text, "GET /v1/nope HTTP/1.1\r\nOrigin: %s\r\n\r\n", origins[i]);
        msgpack_sbuffer map;
        struct parsed_response answer;
        cr_assert_eq(translate(text, &dashboards, &map, &answer), 1);
        cr_assert_null(header(&answer, "Access-Control-Allow-Origin"), "%s", origins[i]);
        msgpack_sbuffer_destroy(&map);
    }
    /* No origins configured (the default): none, not even a listed one. */
    msgpack_sbuffer map;
    struct parsed_response answer;
    const char *text = "GET /v1/nope HTTP/1.1\r\nOrigin: https://dash.example\r\n\r\n";
    cr_assert_eq(translate(text, NULL, &map, &answer), 1);
    cr_assert_null(header(&answer, "Access-Control-Allow-Origin"));
    cr_assert_null(header(&answer, "Vary"));
    msgpack_sbuffer_destroy(&map);
}

Test(http, a_preflight_is_204_with_methods_and_headers)
{
    msgpack_sbuffer map;
    struct parsed_response answer;
    const char *text = "OPTIONS /v1/count HTTP/1.1\r\nOrigin: https://dash.example\r\n"
                       "Access-Control-Request-Method: POST\r\n"
                       "Access-Control-Request-Headers: authorization, content-type\r\n\r\n";
    cr_assert_eq(translate(text, &dashboards, &map, &answer), 1);
    cr_assert_eq(answer.status, 204);
    cr_assert_str_eq(header(&answer, "Access-Control-Allow-Origin"), "https://dash.example");
    cr_assert_str_eq(header(&answer, "Access-Control-Allow-Methods"), "POST, OPTIONS");
    cr_assert_str_eq(header(&answer, "Access-Control-Allow-Headers"),
                     "Authorization, Content-Type");
    cr_assert_null(header(&answer, "Content-Length"), "a 204 has no Content-Length");
    cr_assert_str_eq(answer.body, "");
    cr_assert_eq(map.size, 0, "a preflight is not dispatched");
    msgpack_sbuffer_destroy(&map);

    /* From an origin not listed: answered, but without the grants. */
    text = "OPTIONS /v1/ping HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n";
    cr_assert_eq(translate(text, &dashboards, &map, &answer), 1);
    cr_assert_eq(answer.status, 204);
    cr_assert_str_eq(header(&answer, "Allow"), "GET, OPTIONS");
    cr_assert_null(header(&answer, "Access-Control-Allow-Origin"));
    cr_assert_null(header(&answer, "Access-Control-Allow-Methods"));
    msgpack_sbuffer_destroy(&map);
}

/* ---- replies to HTTP ---------------------------------------------------- */

/* The reply map (frame body) the server sends for an error code. */
static void error_reply(int code, msgpack_sbuffer *frame)
{
    msgpack_sbuffer_init(frame);
    cr_assert_eq(cc_reply_encode_error(true, 7, code, NULL, frame), 0);
}

static void reply_to_response(const char *data, size_t len, const struct cc_http_cors *cors,
                              const char *request_text, struct parsed_response *parsed, bool *close)
{
    struct cc_http_conn *conn = new_conn(0, 0);
    const struct cc_http_request *request = parse_one(conn, request_text);
    struct cc_http_response response = {0};
    cr_assert_eq(cc_http_from_reply((const uint8_t *)data, len, request, cors, &response), 0);
    parse_response(&response, parsed);
    cr_assert_eq(response.status, parsed->status);
    if (close)
        *close = response.close;
    char length[32];
    snprintf(length, sizeof length, "%zu", strlen(parsed->body));
    cr_assert_str_eq(header(parsed, "Content-Length"), length);
    cr_assert_str_eq(header(parsed, "Content-Type"), "application/json; charset=utf-8");
    cr_assert_str_eq(header(parsed, "Cache-Control"), "no-store");
    cr_assert_str_eq(header(parsed, "X-Content-Type-Options"), "nosniff");
    cc_http_response_free(&response);
    cc_http_conn_free(conn);
}

Test(http, every_error_code_has_its_status)
{
    struct {
        int code;
        int status;
    } table[] = {
        {CC_EPARSE, 400},  {CC_EINVAL, 400},    {CC_ERANGE, 400},       {CC_EAUTH, 401},
        {CC_EDENIED, 403}, {CC_ENOTFOUND, 404}, {CC_EUNSUPPORTED, 404}, {CC_EREFUSED, 422},
        {CC_ETOOBIG, 413}, {CC_EBUSY, 503},     {CC_ETIMEDOUT, 408},
    };
    size_t n_mapped = sizeof table / sizeof table[0];
    for (int code = CC_E_FIRST_ + 1; code < CC_E_LAST_; code++) {
        int want = 500;
        for (size_t i = 0; i < n_mapped; i++)
            if (table[i].code == code)
                want = table[i].status;
        cr_assert_eq(cc_http_status_for_code(cc_err_name(code)), want, "%s", cc_err_name(code));

        msgpack_sbuffer frame;
        error_reply(code, &frame);
        struct parsed_response parsed;
        bool close = true;
        reply_to_response(frame.data + CC_FRAME_HEADER_BYTES, frame.size - CC_FRAME_HEADER_BYTES,
                          NULL, "GET /v1/ping HTTP/1.1\r\n\r\n", &parsed, &close);
        cr_assert_eq(parsed.status, want, "%s: %d %s", cc_err_name(code), parsed.status,
                     parsed.body);
        cr_assert_not(close, "an op error keeps the connection");
        char expected[256];
        snprintf(expected, sizeof expected,
                 "{\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", cc_err_name(code),
                 cc_strerror(code));
        cr_assert_str_eq(parsed.body, expected, "the reply without its v and id");
        if (want == 401)
            cr_assert_str_eq(header(&parsed, "WWW-Authenticate"), "Bearer realm=\"carecount\"");
        else
            cr_assert_null(header(&parsed, "WWW-Authenticate"));
        if (want == 503)
            cr_assert_str_eq(header(&parsed, "Retry-After"), "1");
        else
            cr_assert_null(header(&parsed, "Retry-After"));
        msgpack_sbuffer_destroy(&frame);
    }
    cr_assert_eq(cc_http_status_for_code(NULL), 200);
}

Test(http, a_success_reply_is_200_with_the_op_fields)
{
    msgpack_sbuffer reply;
    msgpack_packer p;
    msgpack_sbuffer_init(&reply);
    msgpack_packer_init(&p, &reply, msgpack_sbuffer_write);
    msgpack_pack_map(&p, 6);
    msgpack_pack_str_with_body(&p, "v", 1);
    msgpack_pack_uint64(&p, 1);
    msgpack_pack_str_with_body(&p, "id", 2);
    msgpack_pack_uint64(&p, 7);
    msgpack_pack_str_with_body(&p, "ok", 2);
    msgpack_pack_true(&p);
    msgpack_pack_str_with_body(&p, "server", 6);
    msgpack_pack_str_with_body(&p, "carecountd", 10);
    msgpack_pack_str_with_body(&p, "cells", 5);
    msgpack_pack_array(&p, 2);
    msgpack_pack_map(&p, 2);
    msgpack_pack_str_with_body(&p, "count", 5);
    msgpack_pack_uint64(&p, 40);
    msgpack_pack_str_with_body(&p, "rate", 4);
    msgpack_pack_double(&p, 0.5);
    msgpack_pack_nil(&p);
    msgpack_pack_str_with_body(&p, "area", 4);
    msgpack_pack_str_with_body(&p,
                               "K\xc3\xb8"
                               "benhavn",
                               10);

    struct parsed_response parsed;
    bool close = true;
    reply_to_response(reply.data, reply.size, &dashboards,
                      "GET /v1/ping HTTP/1.1\r\nOrigin: https://dash.example\r\n\r\n", &parsed,
                      &close);
    cr_assert_eq(parsed.status, 200);
    cr_assert_not(close);
    cr_assert_str_eq(parsed.body, "{\"ok\":true,\"server\":\"carecountd\",\"cells\":"
                                  "[{\"count\":40,\"rate\":0.5},null],\"area\":\"K\xc3\xb8"
                                  "benhavn\"}");
    cr_assert_str_eq(header(&parsed, "Access-Control-Allow-Origin"), "https://dash.example");
    cr_assert_str_eq(header(&parsed, "Vary"), "Origin");

    /* Connection: close on the request closes after the response. */
    reply_to_response(reply.data, reply.size, NULL,
                      "GET /v1/ping HTTP/1.1\r\nConnection: close\r\n\r\n", &parsed, &close);
    cr_assert(close);
    cr_assert_str_eq(header(&parsed, "Connection"), "close");
    msgpack_sbuffer_destroy(&reply);
}

Test(http, an_unreadable_reply_is_500)
{
    const char *replies[] = {"\x93\x01\x02\x03", "\x81\xa2ok\xa3yes", "\xdf\xff\xff\xff\xff",
                             "\x82\xa2ok\xc2\xa5"
                             "error\xc0"};
    size_t lens[] = {4, 8, 5, 12};
    for (size_t i = 0; i < 4; i++) {
        struct parsed_response parsed;
        reply_to_response(replies[i], lens[i], NULL, "GET /v1/ping HTTP/1.1\r\n\r\n", &parsed,
                          NULL);
        cr_assert_eq(parsed.status, 500, "reply %zu", i);
        cr_assert(strstr(parsed.body, "\"INTERNAL\""));
    }
}

/* ---- JSON <-> msgpack --------------------------------------------------- */

/* JSON -> msgpack -> JSON gives the same compact text. */
static void round_trip(const char *json)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    cr_assert_eq(cc_http_json_to_msgpack(json, strlen(json), 32, &packer), 0, "%s", json);
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    cr_assert_eq(msgpack_unpack_next(&unpacked, buffer.data, buffer.size, &offset),
                 MSGPACK_UNPACK_SUCCESS);
    char *back = NULL;
    cr_assert_eq(cc_http_msgpack_to_json(&unpacked.data, &back), 0);
    cr_assert_str_eq(back, json);
    free(back);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);
}

Test(http, json_and_msgpack_round_trip)
{
    round_trip("{\"a\":1,\"b\":-1,\"c\":0,\"d\":9223372036854775807,\"e\":-9223372036854775808}");
    round_trip("{\"f\":0.25,\"g\":-2.5,\"h\":0.0009765625,\"i\":1.0}");
    round_trip("[[[[]]],{\"x\":{\"y\":[1,{\"z\":null}]}},true,false]");
    round_trip(
        "{\"name\":\"\xc3\x85rsta \xe2\x80\x93 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x8f\xa5\"}");
    round_trip("\"quote \\\" backslash \\\\ newline \\n\"");
}

Test(http, msgpack_that_json_cannot_hold_is_refused_or_nulled)
{
    msgpack_sbuffer buffer;
    msgpack_packer p;
    msgpack_unpacked unpacked;
    char *json = NULL;
    size_t offset;

    /* NaN and infinity: null. */
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&p, &buffer, msgpack_sbuffer_write);
    msgpack_pack_array(&p, 2);
    msgpack_pack_double(&p, NAN);
    msgpack_pack_double(&p, INFINITY);
    msgpack_unpacked_init(&unpacked);
    offset = 0;
    cr_assert_eq(msgpack_unpack_next(&unpacked, buffer.data, buffer.size, &offset),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(cc_http_msgpack_to_json(&unpacked.data, &json), 0);
    cr_assert_str_eq(json, "[null,null]");
    free(json);
    msgpack_unpacked_destroy(&unpacked);
    msgpack_sbuffer_destroy(&buffer);

    /* Binary, an integer beyond int64, an integer key, bad UTF-8. */
    for (int kind = 0; kind < 4; kind++) {
        msgpack_sbuffer_init(&buffer);
        msgpack_packer_init(&p, &buffer, msgpack_sbuffer_write);
        if (kind == 0) {
            msgpack_pack_bin(&p, 2);
            msgpack_pack_bin_body(&p, "ab", 2);
        } else if (kind == 1) {
            msgpack_pack_uint64(&p, UINT64_MAX);
        } else if (kind == 2) {
            msgpack_pack_map(&p, 1);
            msgpack_pack_int(&p, 1);
            msgpack_pack_int(&p, 2);
        } else {
            msgpack_pack_str_with_body(&p, "\xff", 1);
        }
        msgpack_unpacked_init(&unpacked);
        offset = 0;
        cr_assert_eq(msgpack_unpack_next(&unpacked, buffer.data, buffer.size, &offset),
                     MSGPACK_UNPACK_SUCCESS);
        json = NULL;
        cr_assert_eq(cc_http_msgpack_to_json(&unpacked.data, &json), CC_EINVAL, "kind %d", kind);
        cr_assert_null(json);
        msgpack_unpacked_destroy(&unpacked);
        msgpack_sbuffer_destroy(&buffer);
    }
}

Test(http, json_deeper_than_the_limit_is_refused)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    char json[200] = "";
    for (int i = 0; i < 33; i++)
        strcat(json, "[");
    for (int i = 0; i < 33; i++)
        strcat(json, "]");
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    cr_assert_eq(cc_http_json_to_msgpack(json, strlen(json), 32, &packer), CC_ETOOBIG);
    cr_assert_eq(cc_http_json_to_msgpack(json + 1, strlen(json) - 2, 32, &packer), 0);
    cr_assert_eq(cc_http_json_to_msgpack("{\"a\" 1}", 7, 32, &packer), CC_EPARSE);
    msgpack_sbuffer_destroy(&buffer);
}

Test(http, an_oversize_body_with_expect_continue_gets_413_not_100)
{
    struct cc_http_conn *conn = new_conn(0, 10);
    struct parsed_response parsed;
    const char *head = "POST /v1/count HTTP/1.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 11\r\nExpect: 100-continue\r\n\r\n";
    expect_parse_error(conn, head, strlen(head), 413, "TOOBIG", &parsed);
    cc_http_conn_free(conn);
}

/* A small deterministic generator, so a failure can be replayed. */
static uint32_t next_random(uint32_t *state)
{
    *state = *state * 1103515245u + 12345u;
    return *state >> 8;
}

Test(http, damaged_pipelines_in_random_pieces_never_overrun)
{
    /* Run under ASan (the Sanitize build) this is what finds overruns:
     * every outcome is a request, an error or a wait for more, and a clean
     * pipeline gives the same requests whatever the pieces. */
    uint32_t state = 12345;
    size_t len = strlen(pipeline);
    char *text = malloc(len);
    for (int round = 0; round < 2000; round++) {
        memcpy(text, pipeline, len);
        int damage = round % 4; /* 0: clean, else that many bytes changed */
        for (int d = 0; d < damage; d++)
            text[next_random(&state) % len] = (char)(next_random(&state) & 0xff);
        struct cc_http_conn *conn = new_conn(64 + next_random(&state) % 128, 20);
        size_t at = 0;
        int n_requests = 0, error_status = 0;
        bool failed = false;
        while (at < len && !failed) {
            size_t piece = 1 + next_random(&state) % 40;
            if (piece > len - at)
                piece = len - at;
            size_t off = 0;
            while (off < piece && !failed) {
                size_t used = 0;
                int rc = cc_http_feed(conn, (const uint8_t *)text + at + off, piece - off, &used);
                cr_assert_leq(used, piece - off);
                off += used;
                if (rc == CC_HTTP_REQUEST) {
                    const struct cc_http_request *request = cc_http_conn_request(conn);
                    cr_assert_not_null(request->path);
                    cr_assert_leq(request->body_bytes, 20);
                    msgpack_sbuffer map;
                    struct cc_http_response response = {0};
                    msgpack_sbuffer_init(&map);
                    int t = cc_http_to_request(request, 1, NULL, &map, &response);
                    cr_assert(t == 0 || t == 1);
                    cc_http_response_free(&response);
                    msgpack_sbuffer_destroy(&map);
                    cc_http_conn_next(conn);
                    n_requests++;
                } else if (rc == CC_HTTP_ERROR) {
                    struct cc_http_response response = {0};
                    cr_assert_eq(cc_http_conn_error_response(conn, &response), 0);
                    cr_assert_geq(response.status, 400);
                    error_status = response.status;
                    cc_http_response_free(&response);
                    failed = true;
                } else {
                    cr_assert(rc == CC_HTTP_NEED_MORE || rc == CC_HTTP_CONTINUE);
                }
            }
            at += piece;
        }
        /* A clean pipeline fails only on a head over this round's limit. */
        if (damage == 0 && !failed)
            cr_assert_eq(n_requests, 3, "round %d", round);
        if (damage == 0 && failed)
            cr_assert_eq(error_status, 431, "round %d", round);
        cc_http_conn_free(conn);
    }
    free(text);
}

/* ---- the dashboard's static files --------------------------------------- */

/* The whole response to a GET of path (any method: text is the request
 * line's method), answered by the translation itself; *out is malloc'd. */
static int static_answer(const char *method, const char *path, struct cc_http_response *out)
{
    char text[512];
    snprintf(text, sizeof text, "%s %s HTTP/1.1\r\nHost: h\r\n\r\n", method, path);
    struct cc_http_conn *conn = new_conn(0, 0);
    const struct cc_http_request *request = parse_one(conn, text);
    msgpack_sbuffer map;
    msgpack_sbuffer_init(&map);
    memset(out, 0, sizeof *out);
    int rc = cc_http_to_request(request, 7, NULL, &map, out);
    cr_assert_eq(map.size, 0, "%s %s became a request map", method, path);
    msgpack_sbuffer_destroy(&map);
    cc_http_conn_free(conn);
    return rc;
}

/* The value of header name in the head of raw (static buffer), or NULL. */
static const char *raw_header(const struct cc_http_response *raw, const char *name)
{
    static char value[512];
    char needle[128];
    snprintf(needle, sizeof needle, "\r\n%s: ", name);
    const char *end = strstr(raw->data, "\r\n\r\n");
    const char *at = strstr(raw->data, needle);
    if (!at || at > end)
        return NULL;
    at += strlen(needle);
    const char *eol = strstr(at, "\r\n");
    snprintf(value, sizeof value, "%.*s", (int)(eol - at), at);
    return value;
}

static int raw_status(const struct cc_http_response *raw)
{
    int status = 0;
    cr_assert_eq(sscanf(raw->data, "HTTP/1.1 %d ", &status), 1);
    return status;
}

/* The bytes of web/NAME in the source tree (malloc'd; *len set). */
static char *web_file(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/web/%s", CC_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_geq(size, 0);
    rewind(f);
    char *data = malloc((size_t)size + 1);
    cr_assert_not_null(data);
    cr_assert_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *len = (size_t)size;
    return data;
}

static const char csp[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

Test(http_static, every_file_of_web_is_served_as_it_is_with_its_type_and_the_csp)
{
    static const struct {
        const char *path, *file, *type;
    } files[] = {
        {"/dashboard/", "index.html", "text/html; charset=utf-8"},
        {"/dashboard/index.html", "index.html", "text/html; charset=utf-8"},
        {"/dashboard/dashboard.js", "dashboard.js", "text/javascript; charset=utf-8"},
        {"/dashboard/charts.js", "charts.js", "text/javascript; charset=utf-8"},
        {"/dashboard/dashboard.css", "dashboard.css", "text/css; charset=utf-8"},
        {"/dashboard/favicon.svg", "favicon.svg", "image/svg+xml"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        struct cc_http_response raw;
        cr_assert_eq(static_answer("GET", files[i].path, &raw), 1, "%s", files[i].path);
        cr_assert_eq(raw_status(&raw), 200, "%s", files[i].path);
        cr_assert_str_eq(raw_header(&raw, "Content-Type"), files[i].type, "%s", files[i].path);
        cr_assert_str_eq(raw_header(&raw, "Content-Security-Policy"), csp);
        cr_assert_str_eq(raw_header(&raw, "X-Content-Type-Options"), "nosniff");
        cr_assert_str_eq(raw_header(&raw, "X-Frame-Options"), "DENY");
        cr_assert_str_eq(raw_header(&raw, "Referrer-Policy"), "no-referrer");
        size_t len;
        char *want = web_file(files[i].file, &len);
        const char *body = strstr(raw.data, "\r\n\r\n") + 4;
        cr_assert_eq((size_t)(raw.data + raw.len - body), len, "%s: body length", files[i].path);
        cr_assert(memcmp(body, want, len) == 0, "%s: not the bytes of web/%s", files[i].path,
                  files[i].file);
        char length[32];
        snprintf(length, sizeof length, "%zu", len);
        cr_assert_str_eq(raw_header(&raw, "Content-Length"), length);
        free(want);
        cc_http_response_free(&raw);
    }
}

Test(http_static, the_page_has_no_inline_script_or_style)
{
    size_t len;
    char *html = web_file("index.html", &len);
    /* every <script> has a src, and nothing carries a style= or on...= */
    for (const char *at = strstr(html, "<script"); at; at = strstr(at + 1, "<script")) {
        const char *end = strchr(at, '>');
        cr_assert_not_null(end);
        cr_assert(contains_bytes(at, (size_t)(end - at), "src=", 4), "an inline <script>");
    }
    cr_assert_null(strstr(html, "<style"), "an inline <style>");
    cr_assert_null(strstr(html, " style="), "an inline style attribute");
    cr_assert_null(strstr(html, " onclick="), "an inline handler");
    cr_assert_null(strstr(html, "http://"), "a link off the server");
    cr_assert_null(strstr(html, "https://"), "a link off the server");
    free(html);
}

Test(http_static, the_root_and_dashboard_redirect_to_the_page)
{
    const char *paths[] = {"/", "/dashboard"};
    for (size_t i = 0; i < 2; i++) {
        struct cc_http_response raw;
        cr_assert_eq(static_answer("GET", paths[i], &raw), 1);
        cr_assert_eq(raw_status(&raw), 302, "%s", paths[i]);
        cr_assert_str_eq(raw_header(&raw, "Location"), "/dashboard/");
        cc_http_response_free(&raw);
    }
}

Test(http_static, names_outside_the_embedded_files_are_404)
{
    const char *paths[] = {
        "/dashboard/../CMakeLists.txt",
        "/dashboard/%2e%2e/CMakeLists.txt",
        "/dashboard/..%2fCMakeLists.txt",
        "/dashboard//index.html",
        "/dashboard/./index.html",
        "/dashboard/index.html/",
        "/dashboard/web/index.html",
        "/dashboard/nope.js",
        "/dashboard/INDEX.HTML",
        "/dashboard/..\\CMakeLists.txt",
        "/dashboard/%00",
        "/dashboardx",
        "/index.html",
        "/favicon.ico",
        "/etc/passwd",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct cc_http_response raw;
        int rc = static_answer("GET", paths[i], &raw);
        cr_assert_eq(rc, 1, "%s", paths[i]);
        cr_assert_eq(raw_status(&raw), 404, "%s", paths[i]);
        cr_assert_str_eq(raw_header(&raw, "Content-Type"), "application/json; charset=utf-8");
        cr_assert(strstr(raw.data, "\"NOTFOUND\""), "%s", paths[i]);
        cc_http_response_free(&raw);
    }
}

Test(http_static, files_are_read_with_get_and_head_only)
{
    struct cc_http_response raw;
    cr_assert_eq(static_answer("HEAD", "/dashboard/dashboard.js", &raw), 1);
    cr_assert_eq(raw_status(&raw), 200);
    size_t len;
    free(web_file("dashboard.js", &len));
    char length[32];
    snprintf(length, sizeof length, "%zu", len);
    cr_assert_str_eq(raw_header(&raw, "Content-Length"), length);
    cr_assert_str_eq(strstr(raw.data, "\r\n\r\n"), "\r\n\r\n", "HEAD has no body");
    cc_http_response_free(&raw);

    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(static_answer(methods[i], "/dashboard/index.html", &raw), 1);
        cr_assert_eq(raw_status(&raw), 405, "%s", methods[i]);
        cr_assert_str_eq(raw_header(&raw, "Allow"), "GET, HEAD");
        cc_http_response_free(&raw);
    }
}
