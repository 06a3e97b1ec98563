/*
 * More checks of carecountd's HTTP/JSON listener (docs/protocol.md,
 * "HTTP/JSON"), beside test_httpd.c: the real server started with --data and
 * --http-listen (the harness reads its HTTP port file), a data directory
 * made by the real generator and ingest, accounts and tokens made through
 * the accounts module. Requests go over a raw socket (pipelines, damaged
 * bodies, trickled heads) and through curl; every released figure is
 * checked against the disclosure policy; the msgpack port is used side by
 * side; the HTTP options are parsed from flags and from --config; the frame
 * deadline and max_connections are checked over HTTP; the audit log is read
 * back and verified.
 */
#define _GNU_SOURCE /* memmem, strcasestr, asprintf */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_client.h"
#include "cc_config.h"
#include "cc_harness.h"
#include "cc_testfs.h"

#define BY_REGION_E11                                                                              \
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"                                \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"
/* refused by the disclosure policy: a condition repeated changes the
 * cohort by too few persons (the low-effect rule) */
#define LOW_EFFECT                                                                                 \
    "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["                               \
    "{\"codes\":[\"E11\"],\"system\":\"icd10\"},{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"
#define ALLOWED_ORIGIN "https://dash.example.nhs.uk"

static char root[256], data_dir[300], key_path[300];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

/* An account of role and a token for it in ROOT/NAME.token (0600). */
static void make_account(const char *name, const char *role)
{
    cc_accounts *accounts = NULL;
    char err[256] = "", token[CC_TOKEN_TEXT_BYTES], path[400];
    cr_assert_eq(cc_accounts_open(data_dir, &accounts, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_add(accounts, name, cc_role_parse(role), NULL, NULL, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_accounts_token_issue(accounts, name, (int64_t)time(NULL) + 86400, token, NULL,
                                         err, sizeof err),
                 0, "%s", err);
    cc_accounts_close(accounts);
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    cc_testfs_write(path, token, strlen(token), 0600);
}

static char *token_of(const char *name)
{
    char path[400];
    size_t len;
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    char *token = cc_testfs_read(path, &len);
    while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
        token[--len] = '\0';
    return token;
}

static void setup(void)
{
    char cmd[2048];
    cc_testfs_make_dir(root, sizeof root, "httpd");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 4000 --seed 5 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s/key' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s/key' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, root, CC_BIN_DIR, data_dir, root, root);
    run(cmd);
    make_account("rita", "researcher");
    make_account("dash", "dashboard");
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(httpd_checks, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------ */

static struct cc_harness *start(void)
{
    const char *args[] = {"--data",        data_dir,         "--key", key_path, "--http-listen",
                          "127.0.0.1:0",   "--cors-origin", ALLOWED_ORIGIN, NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    cr_assert_neq(cc_harness_http_port(harness), 0);
    cr_assert_neq(cc_harness_http_port(harness), cc_harness_port(harness));
    return harness;
}

static void stop(struct cc_harness *harness)
{
    int status = -1;
    cr_assert_eq(cc_harness_stop(harness, &status), 0);
    cr_assert_eq(status, 0, "carecountd exited with %d", status);
    cc_harness_free(harness);
}

static int http_connect(const struct cc_harness *harness)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons(cc_harness_http_port(harness))};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&address, sizeof address), 0);
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
        cr_assert_gt(n, 0);
        off += (size_t)n;
    }
}

struct response {
    int status;
    char head[4096]; /* status line and headers */
    char *body;      /* NUL-terminated */
    json_t *json;    /* the body parsed, or NULL */
};

static void response_free(struct response *r)
{
    free(r->body);
    json_decref(r->json);
}

/* A connection's bytes, read as needed. */
struct reader {
    int fd;
    char buf[1 << 20];
    size_t len;
    bool eof;
};

static bool read_more(struct reader *reader)
{
    struct pollfd p = {reader->fd, POLLIN, 0};
    if (reader->eof || reader->len == sizeof reader->buf || poll(&p, 1, 30000) != 1)
        return false;
    ssize_t n = recv(reader->fd, reader->buf + reader->len, sizeof reader->buf - reader->len, 0);
    if (n <= 0) {
        reader->eof = true;
        return false;
    }
    reader->len += (size_t)n;
    return true;
}

/* Reads one whole response (Content-Length framed). */
static void read_response(struct reader *reader, struct response *r)
{
    char *end;
    memset(r, 0, sizeof *r);
    while (!(end = memmem(reader->buf, reader->len, "\r\n\r\n", 4)))
        cr_assert(read_more(reader), "no response head");
    size_t head_len = (size_t)(end - reader->buf) + 4;
    cr_assert_lt(head_len, sizeof r->head);
    memcpy(r->head, reader->buf, head_len);
    cr_assert_eq(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1, "%s", r->head);
    size_t body_len = 0;
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    if (cl)
        body_len = strtoul(cl + 18, NULL, 10);
    while (reader->len < head_len + body_len)
        cr_assert(read_more(reader), "a response body cut short");
    r->body = calloc(1, body_len + 1);
    memcpy(r->body, reader->buf + head_len, body_len);
    memmove(reader->buf, reader->buf + head_len + body_len, reader->len - head_len - body_len);
    reader->len -= head_len + body_len;
    if (body_len)
        r->json = json_loads(r->body, 0, NULL);
}

/* Sends request (whole text) on a new connection and reads n responses. */
static void exchange(const struct cc_harness *harness, const char *request, size_t n,
                     struct response *responses)
{
    struct reader *reader = calloc(1, sizeof *reader);
    reader->fd = http_connect(harness);
    send_text(reader->fd, request);
    for (size_t i = 0; i < n; i++)
        read_response(reader, &responses[i]);
    close(reader->fd);
    free(reader);
}

/* A POST request's text (malloc'd). token NULL: no Authorization. */
static char *post(const char *path, const char *token, const char *body)
{
    char auth[512] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    char *text = NULL;
    cr_assert_gt(asprintf(&text,
                          "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\n\r\n%s",
                          path, auth, strlen(body), body),
                 0);
    return text;
}

static const char *error_code(const struct response *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

/* Checks every cell of a released count against the policy; returns how
 * many were positive. */
static unsigned check_release(const json_t *release)
{
    const json_t *policy = json_object_get(release, "policy");
    json_int_t threshold = json_integer_value(json_object_get(policy, "threshold"));
    json_int_t base = json_integer_value(json_object_get(policy, "rounding_base"));
    cr_assert_eq(threshold, 8);
    cr_assert_eq(base, 5);
    const json_t *cells = json_object_get(release, "cells");
    cr_assert(json_is_array(cells) && json_array_size(cells) > 0);
    unsigned positive = 0;
    size_t i;
    const json_t *cell;
    json_array_foreach(cells, i, cell)
    {
        const json_t *value = json_array_get(cell, 0);
        if (json_is_null(value)) {
            cr_assert(json_is_string(json_array_get(cell, 1)), "a suppressed cell says why");
            continue;
        }
        cr_assert(json_is_integer(value));
        json_int_t v = json_integer_value(value);
        cr_assert(v == 0 || v >= threshold, "a released value %lld in 1..threshold-1",
                  (long long)v);
        cr_assert_eq(v % base, 0, "a released value %lld not a multiple of 5", (long long)v);
        positive += v > 0;
    }
    return positive;
}

/* ---- tests -------------------------------------------------------------- */

Test(httpd_checks, ping_over_http_and_the_msgpack_port_side_by_side)
{
    struct cc_harness *harness = start();
    struct response r;
    exchange(harness, "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n", 1, &r);
    cr_assert_eq(r.status, 200, "%s", r.head);
    cr_assert(strstr(r.head, "Content-Type: application/json"));
    cr_assert(json_is_true(json_object_get(r.json, "ok")), "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "server")), "carecountd");
    cr_assert_null(json_object_get(r.json, "id"), "no envelope id over HTTP");
    response_free(&r);

    /* the msgpack port still answers, and status counts both */
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(harness, &client), 0);
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, 7, "ping", &reply), 1);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    exchange(harness, "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n", 1, &r);
    cr_assert_eq(r.status, 200);
    cr_assert_geq(json_integer_value(json_object_get(r.json, "connections_accepted")), 3);
    cr_assert_geq(json_integer_value(json_object_get(r.json, "connections")), 2,
                  "the msgpack client and this one are open: %s", r.body);
    response_free(&r);
    cc_client_close(client);
    stop(harness);
}

Test(httpd_checks, count_with_a_bearer_token_releases_only_protected_cells)
{
    struct cc_harness *harness = start();
    char *token = token_of("rita");
    char *request = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    struct response r;
    exchange(harness, request, 1, &r);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    cr_assert(json_is_true(json_object_get(r.json, "ok")));
    cr_assert_gt(check_release(json_object_get(r.json, "release")), 0);
    cr_assert_null(strstr(r.body, token), "the token is never echoed");
    response_free(&r);
    free(request);

    char *log = cc_harness_log(harness);
    cr_assert_null(strstr(log, token), "the token is never logged");
    free(log);
    free(token);
    stop(harness);
}

Test(httpd_checks, no_token_bad_token_wrong_role_and_hello_get_their_statuses)
{
    struct cc_harness *harness = start();
    struct response r;
    char *request = post("/v1/count", NULL, "{\"query\":" BY_REGION_E11 "}");
    exchange(harness, request, 1, &r);
    free(request);
    cr_assert_eq(r.status, 401, "%s", r.head);
    cr_assert(strstr(r.head, "WWW-Authenticate: Bearer"));
    cr_assert_str_eq(error_code(&r), "AUTH");
    response_free(&r);

    request = post("/v1/count", "cct_notatoken", "{\"query\":" BY_REGION_E11 "}");
    exchange(harness, request, 1, &r);
    free(request);
    cr_assert_eq(r.status, 401, "%s", r.head);
    cr_assert_str_eq(error_code(&r), "AUTH");
    response_free(&r);

    /* a dashboard account may not count */
    char *token = token_of("dash");
    request = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    exchange(harness, request, 1, &r);
    free(request);
    cr_assert_eq(r.status, 403, "%s", r.head);
    cr_assert_str_eq(error_code(&r), "DENIED");
    response_free(&r);
    /* ... but lists its saved queries */
    request = post("/v1/saved_list", token, "{}");
    exchange(harness, request, 1, &r);
    free(request);
    cr_assert_eq(r.status, 200, "%s%s", r.head, r.body);
    response_free(&r);

    /* hello is not an HTTP endpoint */
    request = post("/v1/hello", NULL, "{\"token\":\"x\"}");
    exchange(harness, request, 1, &r);
    free(request);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(error_code(&r), "UNSUPPORTED");
    response_free(&r);
    free(token);
    stop(harness);
}

Test(httpd_checks, failed_tokens_are_limited_per_address_like_failed_hellos)
{
    struct cc_harness *harness = start();
    struct response r;
    char *bad = post("/v1/count", "cct_wrong", "{\"query\":" BY_REGION_E11 "}");
    for (int i = 0; i < 5; i++) {
        exchange(harness, bad, 1, &r);
        cr_assert_eq(r.status, 401, "attempt %d: %s", i, r.head);
        response_free(&r);
    }
    /* now even the right token is refused from this address for a while */
    char *token = token_of("rita");
    char *good = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    exchange(harness, good, 1, &r);
    cr_assert_eq(r.status, 503, "%s%s", r.head, r.body);
    cr_assert_str_eq(error_code(&r), "BUSY");
    response_free(&r);
    free(good);
    free(bad);
    free(token);
    stop(harness);
}

Test(httpd_checks, refused_and_bad_requests_keep_the_connection_and_server_serving)
{
    struct cc_harness *harness = start();
    char *token = token_of("rita");
    char *refused = post("/v1/count", token, "{\"query\":" LOW_EFFECT "}");
    char *bad_json = post("/v1/count", token, "{\"query\": {\"v\":1,");
    char *good = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    char *all = NULL;
    cr_assert_gt(asprintf(&all, "%s%s%s", refused, bad_json, good), 0);
    struct response r[3];
    exchange(harness, all, 3, r);
    cr_assert_eq(r[0].status, 422, "%s%s", r[0].head, r[0].body);
    cr_assert_str_eq(error_code(&r[0]), "REFUSED");
    cr_assert_eq(r[1].status, 400, "%s", r[1].head);
    cr_assert_str_eq(error_code(&r[1]), "PARSE");
    cr_assert_eq(r[2].status, 200, "the connection keeps serving: %s", r[2].head);
    check_release(json_object_get(r[2].json, "release"));
    for (int i = 0; i < 3; i++)
        response_free(&r[i]);
    /* and so does the server */
    exchange(harness, "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n", 1, r);
    cr_assert_eq(r[0].status, 200);
    response_free(&r[0]);
    free(all);
    free(good);
    free(bad_json);
    free(refused);
    free(token);
    stop(harness);
}

Test(httpd_checks, pipelined_requests_are_answered_in_order)
{
    struct cc_harness *harness = start();
    char *token = token_of("rita");
    char *count = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    char *all = NULL;
    /* a slow op on the pool first, then quick ones answered on the loop,
     * then the pool again, and a last request that closes */
    cr_assert_gt(asprintf(&all,
                          "%sGET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n%s"
                          "GET /v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          count, count),
                 0);
    struct reader *reader = calloc(1, sizeof *reader);
    reader->fd = http_connect(harness);
    send_text(reader->fd, all);
    struct response r[5];
    for (int i = 0; i < 5; i++) {
        read_response(reader, &r[i]);
        cr_assert_eq(r[i].status, 200, "response %d: %s", i, r[i].head);
    }
    cr_assert_not_null(json_object_get(r[0].json, "release"), "first: the count");
    cr_assert_not_null(json_object_get(r[1].json, "server"), "second: the ping");
    cr_assert_not_null(json_object_get(r[2].json, "uptime_s"), "third: the status");
    cr_assert_not_null(json_object_get(r[3].json, "release"), "fourth: the count");
    cr_assert_not_null(json_object_get(r[4].json, "server"), "fifth: the ping");
    cr_assert_str_eq(json_dumps(json_object_get(r[0].json, "release"), JSON_COMPACT) ?: "",
                     json_dumps(json_object_get(r[3].json, "release"), JSON_COMPACT) ?: "x",
                     "the same query, the same release");
    /* Connection: close: the server closes after the last response */
    cr_assert_not(read_more(reader));
    cr_assert(reader->eof);
    for (int i = 0; i < 5; i++)
        response_free(&r[i]);
    close(reader->fd);
    free(reader);
    free(all);
    free(count);
    free(token);
    stop(harness);
}

Test(httpd_checks, cors_preflight_grants_only_the_allowed_origin)
{
    struct cc_harness *harness = start();
    struct response r;
    exchange(harness,
             "OPTIONS /v1/count HTTP/1.1\r\nHost: x\r\nOrigin: " ALLOWED_ORIGIN "\r\n"
             "Access-Control-Request-Method: POST\r\n"
             "Access-Control-Request-Headers: authorization, content-type\r\n\r\n",
             1, &r);
    cr_assert_eq(r.status, 204, "%s", r.head);
    cr_assert(strstr(r.head, "Access-Control-Allow-Origin: " ALLOWED_ORIGIN "\r\n"), "%s", r.head);
    cr_assert(strstr(r.head, "Access-Control-Allow-Headers: Authorization, Content-Type"));
    response_free(&r);

    exchange(harness,
             "OPTIONS /v1/count HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
             "Access-Control-Request-Method: POST\r\n\r\n",
             1, &r);
    cr_assert_eq(r.status, 204, "%s", r.head);
    cr_assert_null(strstr(r.head, "Access-Control-Allow-Origin"), "%s", r.head);
    response_free(&r);

    /* a real request from the allowed origin carries the grant too */
    exchange(harness,
             "GET /v1/ping HTTP/1.1\r\nHost: x\r\nOrigin: " ALLOWED_ORIGIN "\r\n\r\n", 1, &r);
    cr_assert_eq(r.status, 200);
    cr_assert(strstr(r.head, "Access-Control-Allow-Origin: " ALLOWED_ORIGIN "\r\n"));
    response_free(&r);
    stop(harness);
}

Test(httpd_checks, curl_counts_with_a_token)
{
    struct cc_harness *harness = start();
    char cmd[4096], out[400], path[400];
    snprintf(out, sizeof out, "%s/curl.out", cc_harness_dir(harness));
    snprintf(path, sizeof path, "%s/rita.token", root);
    snprintf(cmd, sizeof cmd,
             "code=$(curl -sS -o '%s' -w '%%{http_code}' -X POST "
             "-H \"Authorization: Bearer $(cat '%s')\" -H 'Content-Type: application/json' "
             "--data '{\"query\":%s}' http://127.0.0.1:%u/v1/count) && test \"$code\" = 200",
             out, path, BY_REGION_E11, (unsigned)cc_harness_http_port(harness));
    run(cmd);
    size_t len;
    char *body = cc_testfs_read(out, &len);
    json_t *reply = json_loads(body, 0, NULL);
    cr_assert_not_null(reply, "curl got JSON: %s", body);
    cr_assert_gt(check_release(json_object_get(reply, "release")), 0);
    json_decref(reply);
    free(body);

    /* and without a token, curl sees 401 */
    snprintf(cmd, sizeof cmd,
             "test \"$(curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%u/v1/schema)\" "
             "= 401",
             (unsigned)cc_harness_http_port(harness));
    run(cmd);
    stop(harness);
}

/* ---- configuration and connection limits -------------------------------- */

Test(httpd_checks, the_http_options_parse_and_a_remote_address_needs_allow_remote)
{
    struct cc_config config;
    char error[256] = "";
    char *ok[] = {"--http-listen", "127.0.0.1:0",  "--http-port-file", "/tmp/p",
                  "--cors-origin", "https://a.example", "--cors-origin", "https://b.example"};
    cc_config_defaults(&config);
    cr_assert_not(config.http_listen, "off unless given");
    cr_assert_eq(config.n_cors_origins, 0, "no origin by default");
    cr_assert_eq(cc_config_parse_args(&config, 8, ok, error, sizeof error), 0, "%s", error);
    cr_assert(config.http_listen);
    cr_assert_str_eq(config.http_host, "127.0.0.1");
    cr_assert_eq(config.http_port, 0);
    cr_assert_str_eq(config.http_port_file, "/tmp/p");
    cr_assert_eq(config.n_cors_origins, 2);
    cr_assert_str_eq(config.cors_origins[1], "https://b.example");

    char *remote[] = {"--http-listen", "0.0.0.0:8080"};
    cc_config_defaults(&config);
    cr_assert_lt(cc_config_parse_args(&config, 2, remote, error, sizeof error), 0);
    cr_assert(strstr(error, "--allow-remote"), "%s", error);
    char *without_tls[] = {"--http-listen", "0.0.0.0:8080", "--allow-remote"};
    cc_config_defaults(&config);
    cr_assert_lt(cc_config_parse_args(&config, 3, without_tls, error, sizeof error), 0);
    cr_assert(strstr(error, "0.0.0.0 (http-listen) without TLS"), "%s", error);
    char *allowed[] = {"--http-listen", "0.0.0.0:8080", "--allow-remote",
                       "--tls-cert",    "/x/cert.pem",  "--tls-key",
                       "/x/key.pem"};
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_parse_args(&config, 7, allowed, error, sizeof error), 0, "%s", error);

    /* the configuration file: cors-origin as an array or a string */
    char path[400];
    snprintf(path, sizeof path, "%s/config.json", root);
    cc_testfs_write_text(path, "{\"http-listen\":\"[::1]:7434\",\"http-port-file\":\"/tmp/q\","
                               "\"cors-origin\":[\"https://a.example\",\"https://b.example\"]}");
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), 0, "%s", error);
    cr_assert(config.http_listen);
    cr_assert_str_eq(config.http_host, "::1");
    cr_assert_eq(config.http_port, 7434);
    cr_assert_eq(config.n_cors_origins, 2);
    cr_assert_str_eq(config.cors_origins[0], "https://a.example");
    cc_testfs_write_text(path, "{\"cors-origin\":\"https://c.example\"}");
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), 0, "%s", error);
    cr_assert_eq(config.n_cors_origins, 1);
    cc_testfs_write_text(path, "{\"cors-origin\":[\"https://c.example\",7]}");
    cc_config_defaults(&config);
    cr_assert_lt(cc_config_load_file(&config, path, error, sizeof error), 0);
}

Test(httpd_checks, carecountd_refuses_a_remote_http_address_without_allow_remote)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s/carecountd' --listen 127.0.0.1:0 --http-listen 0.0.0.0:0 2>/dev/null",
             CC_BIN_DIR);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) != 0, "refused, not served");
}

Test(httpd_checks, a_request_trickled_past_the_frame_deadline_gets_408_and_is_closed)
{
    const char *args[] = {"--http-listen", "127.0.0.1:0", "--frame-timeout-ms", "300", NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0);
    struct reader *reader = calloc(1, sizeof *reader);
    reader->fd = http_connect(harness);
    send_text(reader->fd, "GET /v1/ping HTTP/1.1\r\nHost:");
    struct response r;
    read_response(reader, &r);
    cr_assert_eq(r.status, 408, "%s", r.head);
    cr_assert_str_eq(error_code(&r), "TIMEDOUT");
    cr_assert(strstr(r.head, "Connection: close"), "%s", r.head);
    response_free(&r);
    cr_assert_not(read_more(reader), "closed after the 408");
    close(reader->fd);
    free(reader);
    stop(harness);
}

Test(httpd_checks, max_connections_counts_both_listeners)
{
    const char *args[] = {"--http-listen", "127.0.0.1:0", "--max-connections", "1", NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0);
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(harness, &client), 0);
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, 1, "ping", &reply), 1);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    /* the msgpack client holds the one connection: HTTP is told 503 */
    struct response r;
    exchange(harness, "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n", 1, &r);
    cr_assert_eq(r.status, 503, "%s", r.head);
    cr_assert_str_eq(error_code(&r), "BUSY");
    response_free(&r);
    cc_client_close(client);
    stop(harness);
}

Test(httpd_checks, http_requests_are_audited_and_a_refused_token_too)
{
    struct cc_harness *harness = start();
    char *token = token_of("rita");
    char *bad = post("/v1/count", "cct_wrong_token", "{\"query\":" BY_REGION_E11 "}");
    char *good = post("/v1/count", token, "{\"query\":" BY_REGION_E11 "}");
    struct response r[2];
    char *both = NULL;
    cr_assert_gt(asprintf(&both, "%s%s", bad, good), 0);
    exchange(harness, both, 2, r);
    cr_assert_eq(r[0].status, 401);
    cr_assert_eq(r[1].status, 200, "a refused token on a connection does not taint the next");
    response_free(&r[0]);
    response_free(&r[1]);
    stop(harness);

    char cmd[2048], log_path[400];
    snprintf(log_path, sizeof log_path, "%s/audit.txt", root);
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit show --data '%s' --key '%s' > '%s' 2>&1",
             CC_BIN_DIR, data_dir, key_path, log_path);
    run(cmd);
    size_t len;
    char *log = cc_testfs_read(log_path, &len);
    /* the refused token: a record of the op it was for, outcome AUTH, no
     * account, and why in the request field (docs/protocol.md) */
    const char *refused = strstr(log, "\tAUTH\t");
    cr_assert_not_null(refused, "the refused token is audited with outcome AUTH:\n%s", log);
    cr_assert(strstr(log, "-\tcount\t127.0.0.1\tAUTH"), "for count, without an account:\n%s", log);
    cr_assert(strstr(log, "bearer_failure"), "saying why:\n%s", log);
    const char *count = strstr(log, "rita");
    cr_assert_not_null(count, "the count is audited with its account:\n%s", log);
    cr_assert(strstr(log, "E11"), "with the canonical query:\n%s", log);
    cr_assert_null(strstr(log, token), "never a token");
    cr_assert_null(strstr(log, "cct_wrong_token"), "never a refused token");
    free(log);
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit verify --data '%s' --key '%s' >/dev/null",
             CC_BIN_DIR, data_dir, key_path);
    run(cmd);
    free(both);
    free(good);
    free(bad);
    free(token);
}
