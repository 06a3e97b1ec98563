/*
 * Integration tests for carecountd's HTTP/JSON listener (docs/protocol.md,
 * "HTTP/JSON"): the real server with --http-listen on a loopback port,
 * serving a data directory made by the real generator and ingest; real
 * HTTP clients (curl, and a raw socket for pipelining). Every figure that
 * comes back is checked against the disclosure policy, each error code
 * against its status, and the msgpack port keeps serving beside it.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_client.h"
#include "cc_harness.h"
#include "cc_testfs.h"

static char root[256], data_dir[300], key_path[300], port_path[300];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

static void make_account(const char *name, int role)
{
    cc_accounts *accounts = NULL;
    char err[256] = "", token[CC_TOKEN_TEXT_BYTES], path[400];
    cr_assert_eq(cc_accounts_open(data_dir, &accounts, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_add(accounts, name, role, NULL, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_token_issue(accounts, name, (int64_t)time(NULL) + 86400, token, NULL,
                                         err, sizeof err),
                 0, "%s", err);
    cc_accounts_close(accounts);
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    cc_testfs_write(path, token, strlen(token), 0600);
}

static void setup(void)
{
    char cmd[2048];
    cc_testfs_make_dir(root, sizeof root, "httpd");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(port_path, sizeof port_path, "%s/http.port", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 4000 --seed 5 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s/key' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s/key' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, root, CC_BIN_DIR, data_dir, root, root);
    run(cmd);
    make_account("rita", CC_ROLE_RESEARCHER);
    make_account("olga", CC_ROLE_OPERATOR);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(httpd, .init = setup, .fini = teardown, .timeout = 300);

static struct cc_harness *start(unsigned *http_port)
{
    const char *args[] = {"--data", data_dir, "--key", key_path, "--http-listen", "127.0.0.1:0",
                          "--http-port-file", port_path, "--cors-origin", "https://dash.example",
                          NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    size_t len;
    char *text = cc_testfs_read(port_path, &len);
    cr_assert_eq(sscanf(text, "%u", http_port), 1);
    free(text);
    return harness;
}

static void stop(struct cc_harness *harness)
{
    int status = -1;
    cr_assert_eq(cc_harness_stop(harness, &status), 0);
    cr_assert_eq(status, 0, "carecountd exited with %d", status);
    cc_harness_free(harness);
}

/* Runs curl: prints the status code last on its own line. Returns the
 * status; body gets the response body. */
static int curl(unsigned port, const char *token_name, const char *method, const char *path,
                const char *body, char *out, size_t out_bytes)
{
    char cmd[4096], auth[512] = "", data[2048] = "", body_path[400], token_path[400];
    snprintf(body_path, sizeof body_path, "%s/curl.out", root);
    if (token_name) {
        snprintf(token_path, sizeof token_path, "%s/%s.token", root, token_name);
        snprintf(auth, sizeof auth, "-H \"Authorization: Bearer $(cat '%s')\"", token_path);
    }
    if (body) {
        char body_file[400];
        snprintf(body_file, sizeof body_file, "%s/curl.in", root);
        cc_testfs_write_text(body_file, body);
        snprintf(data, sizeof data, "-H 'Content-Type: application/json' --data-binary @'%s'",
                 body_file);
    }
    snprintf(cmd, sizeof cmd, "curl -s -o '%s' -w '%%{http_code}' -X %s %s %s 'http://127.0.0.1:%u%s'",
             body_path, method, auth, data, port, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int status = 0;
    cr_assert_eq(fscanf(p, "%d", &status), 1, "curl printed no status: %s", cmd);
    pclose(p);
    size_t len;
    char *text = cc_testfs_read(body_path, &len);
    snprintf(out, out_bytes, "%s", text);
    free(text);
    return status;
}

#define BY_REGION                                                                                  \
    "{\"query\":{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"                     \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}}"

static const char *error_code(json_t *reply)
{
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

Test(httpd, a_dashboard_client_counts_over_http_and_every_error_has_its_status)
{
    unsigned port;
    struct cc_harness *harness = start(&port);
    char body[65536];

    cr_assert_eq(curl(port, NULL, "GET", "/v1/ping", NULL, body, sizeof body), 200, "%s", body);
    cr_assert(strstr(body, "carecountd"));

    cr_assert_eq(curl(port, "rita", "POST", "/v1/count", BY_REGION, body, sizeof body), 200, "%s",
                 body);
    json_t *json = json_loads(body, 0, NULL);
    cr_assert_not_null(json, "JSON: %s", body);
    cr_assert(json_is_true(json_object_get(json, "ok")));
    json_t *cells = json_object_get(json_object_get(json, "release"), "cells");
    cr_assert_eq(json_array_size(cells), 9, "one cell per region");
    size_t i;
    json_t *cell;
    unsigned released = 0;
    json_array_foreach(cells, i, cell)
    {
        json_t *v = json_array_get(cell, 0);
        if (json_is_null(v))
            continue;
        json_int_t n = json_integer_value(v);
        cr_assert(n == 0 || n >= 8, "a value in 1..7: %lld", (long long)n);
        cr_assert_eq(n % 5, 0);
        released += n > 0;
    }
    cr_assert_gt(released, 0);
    json_decref(json);

    /* no token, a bad token, the wrong role, a refusal, bad JSON */
    cr_assert_eq(curl(port, NULL, "POST", "/v1/count", BY_REGION, body, sizeof body), 401, "%s",
                 body);
    char bad_path[400];
    snprintf(bad_path, sizeof bad_path, "%s/bad.token", root);
    cc_testfs_write(bad_path, "cct1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 65,
                    0600);
    cr_assert_eq(curl(port, "bad", "POST", "/v1/count", BY_REGION, body, sizeof body), 401, "%s",
                 body);
    json = json_loads(body, 0, NULL);
    cr_assert_str_eq(error_code(json), "AUTH");
    json_decref(json);
    cr_assert_eq(curl(port, "olga", "POST", "/v1/count", BY_REGION, body, sizeof body), 403, "%s",
                 body);
    cr_assert_eq(curl(port, "rita", "POST", "/v1/count",
                      "{\"query\":{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["
                      "{\"codes\":[\"E11\"],\"system\":\"icd10\"},"
                      "{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}}",
                      body, sizeof body),
                 422, "%s", body);
    cr_assert(strstr(body, "low-effect"), "%s", body);
    cr_assert_eq(curl(port, "rita", "POST", "/v1/count", "{\"query\": {", body, sizeof body), 400,
                 "%s", body);
    cr_assert_eq(curl(port, "rita", "POST", "/v1/hello", "{\"token\":\"x\"}", body, sizeof body),
                 404, "no hello over HTTP: %s", body);

    /* still serving, on both ports */
    cr_assert_eq(curl(port, "rita", "GET", "/v1/schema", NULL, body, sizeof body), 200, "%s", body);
    struct cc_client *client = NULL;
    struct cc_reply reply;
    cr_assert_eq(cc_harness_connect(harness, &client), 0);
    cr_assert_eq(cc_client_call_simple(client, 1, "ping", &reply), 1);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);

    /* the HTTP requests were audited like any other, the token never */
    char cmd[1024], log_path[400];
    snprintf(log_path, sizeof log_path, "%s/audit.txt", root);
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit show --data '%s' > '%s'", CC_BIN_DIR, data_dir,
             log_path);
    run(cmd);
    size_t len;
    char *log = cc_testfs_read(log_path, &len);
    cr_assert(strstr(log, "rita\tcount"), "%s", log);
    cr_assert(strstr(log, "bearer_failure"), "%s", log);
    char token_path[400];
    snprintf(token_path, sizeof token_path, "%s/rita.token", root);
    char *token = cc_testfs_read(token_path, &len);
    cr_assert_null(strstr(log, token));
    free(token);
    free(log);
}

/* Reads from fd until n responses (head + Content-Length body) are in buf. */
static size_t read_responses(int fd, char *buf, size_t cap, int n)
{
    size_t len = 0;
    for (;;) {
        int complete = 0;
        const char *p = buf;
        buf[len] = '\0';
        while (complete < n) {
            const char *end = strstr(p, "\r\n\r\n");
            const char *cl = strstr(p, "Content-Length: ");
            if (!end)
                break;
            size_t body = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0; /* 204: none */
            if ((size_t)(end + 4 - buf) + body > len)
                break;
            p = end + 4 + body;
            complete++;
        }
        if (complete == n)
            return len;
        struct pollfd pfd = {fd, POLLIN, 0};
        cr_assert_gt(poll(&pfd, 1, 30000), 0, "no response in time");
        ssize_t got = read(fd, buf + len, cap - 1 - len);
        cr_assert_gt(got, 0, "the connection closed early");
        len += (size_t)got;
    }
}

Test(httpd, pipelined_requests_are_answered_in_order_and_cors_is_exact)
{
    unsigned port;
    struct cc_harness *harness = start(&port);
    char token[CC_TOKEN_TEXT_BYTES + 2], path[400];
    snprintf(path, sizeof path, "%s/rita.token", root);
    size_t len;
    char *text = cc_testfs_read(path, &len);
    snprintf(token, sizeof token, "%s", text);
    free(text);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char request[8192];
    const char *count_body = BY_REGION;
    int n = snprintf(request, sizeof request,
                     "POST /v1/count HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s"
                     "GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n"
                     "OPTIONS /v1/count HTTP/1.1\r\nHost: x\r\nOrigin: https://dash.example\r\n"
                     "Access-Control-Request-Method: POST\r\n\r\n"
                     "OPTIONS /v1/count HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
                     "Access-Control-Request-Method: POST\r\n\r\n",
                     token, strlen(count_body), count_body);
    cr_assert_eq(write(fd, request, (size_t)n), n, "one write: a pipeline");
    static char buf[1 << 20];
    read_responses(fd, buf, sizeof buf, 4);
    close(fd);
    /* in request order: the count (slow, on the pool) before the ping */
    char *first = strstr(buf, "\"release\"");
    char *second = strstr(buf, "\"server\":\"carecountd\"");
    cr_assert(first && second && first < second, "answered in order:\n%.2000s", buf);
    char *allowed = strstr(second, "HTTP/1.1 204");
    cr_assert_not_null(allowed);
    char *denied = strstr(allowed + 1, "HTTP/1.1 204");
    cr_assert_not_null(denied, "both preflights answered");
    *denied = '\0';
    cr_assert(strstr(allowed, "Access-Control-Allow-Origin: https://dash.example"), "%s", allowed);
    cr_assert_null(strstr(denied + 1, "Access-Control-Allow-Origin"),
                   "another origin gets no grant: %s", denied + 1);
    stop(harness);
}

Test(httpd, failed_bearer_tokens_are_rate_limited_per_address)
{
    unsigned port;
    struct cc_harness *harness = start(&port);
    char body[4096], bad_path[400];
    snprintf(bad_path, sizeof bad_path, "%s/bad.token", root);
    cc_testfs_write(bad_path, "cct1.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 65,
                    0600);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(curl(port, "bad", "GET", "/v1/schema", NULL, body, sizeof body), 401, "%s",
                     body);
    /* the sixth, even with a good token, is not looked at */
    cr_assert_eq(curl(port, "rita", "GET", "/v1/schema", NULL, body, sizeof body), 503, "%s", body);
    /* ping needs no token and is still answered */
    cr_assert_eq(curl(port, NULL, "GET", "/v1/ping", NULL, body, sizeof body), 200, "%s", body);
    stop(harness);
}

/* The per-account request limit holds over HTTP too, where there is no
 * hello: each request is counted once its bearer token has named the
 * account, and over the limit gets 503 BUSY; another account is not held
 * back by it. */
Test(httpd, the_per_account_rate_limit_applies_over_http)
{
    const char *args[] = {"--data", data_dir, "--key", key_path, "--http-listen", "127.0.0.1:0",
                          "--http-port-file", port_path, "--max-requests-per-account-minute", "3",
                          NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    size_t len;
    char *text = cc_testfs_read(port_path, &len);
    unsigned port;
    cr_assert_eq(sscanf(text, "%u", &port), 1);
    free(text);
    char body[8192];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(curl(port, "rita", "GET", "/v1/schema", NULL, body, sizeof body), 200, "%s",
                     body);
    cr_assert_eq(curl(port, "rita", "GET", "/v1/schema", NULL, body, sizeof body), 503, "%s", body);
    json_t *reply = json_loads(body, 0, NULL);
    cr_assert_not_null(reply, "%s", body);
    cr_assert_str_eq(error_code(reply), "BUSY");
    cr_assert(strstr(json_string_value(json_object_get(json_object_get(reply, "error"), "message")),
                     "too many requests"),
              "%s", body);
    json_decref(reply);
    cr_assert_eq(curl(port, "olga", "POST", "/v1/audit_list", "{}", body, sizeof body), 200, "%s",
                 body);
    stop(harness);
}
