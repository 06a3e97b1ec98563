/* Integration tests for carecountd (server/): the real server, real sockets,
 * started through the harness (tests/support/cc_harness.h). */
#include <criterion/criterion.h>
#include <gsl/gsl_cdf.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cc_client.h"
#include "cc_config.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_harness.h"
#include "cc_testfs.h"
#include "cc_server.h"
#include "cc_version.h"

/* ---- helpers ------------------------------------------------------------ */

static struct cc_harness *start(const char *const *args)
{
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    return harness;
}

static struct cc_client *connect_to(const struct cc_harness *harness)
{
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(harness, &client), 0, "cannot connect");
    return client;
}

/* Stops the server, requires exit status 0, frees the harness. */
static void stop_cleanly(struct cc_harness *harness)
{
    int status = -1;
    cr_assert_eq(cc_harness_stop(harness, &status), 0, "carecountd had to be killed");
    cr_assert_eq(status, 0, "carecountd exited with status %d", status);
    cc_harness_free(harness);
}

/* Packs a complete frame: a request map with op and, if delay_ms >= 0, the
 * test-mode delay_ms field. The caller destroys the buffer. */
static void pack_request(msgpack_sbuffer *frame, uint64_t id, const char *op, long delay_ms)
{
    msgpack_packer packer;
    msgpack_sbuffer_init(frame);
    cr_assert_eq(cc_frame_sbuffer_begin(frame), 0);
    msgpack_packer_init(&packer, frame, msgpack_sbuffer_write);
    cc_client_pack_envelope(&packer, id, op, delay_ms >= 0 ? 1 : 0);
    if (delay_ms >= 0) {
        msgpack_pack_str_with_body(&packer, "delay_ms", 8);
        msgpack_pack_uint64(&packer, (uint64_t)delay_ms);
    }
    cr_assert_eq(cc_frame_sbuffer_finish(frame), 0);
}

static void send_request(struct cc_client *client, uint64_t id, const char *op, long delay_ms)
{
    msgpack_sbuffer frame;
    pack_request(&frame, id, op, delay_ms);
    cr_assert_eq(cc_client_send_raw(client, frame.data, frame.size), 0);
    msgpack_sbuffer_destroy(&frame);
}

static void receive(struct cc_client *client, struct cc_reply *reply)
{
    cr_assert_eq(cc_client_recv_reply(client, reply), 1, "no reply");
}

static void expect_ok(const struct cc_reply *reply, uint64_t id)
{
    cr_assert(reply->ok, "error %s: %s", reply->error_code, reply->error_message);
    cr_assert(reply->has_id);
    cr_assert_eq(reply->id, id);
}

static void expect_error(const struct cc_reply *reply, const char *code)
{
    cr_assert_not(reply->ok);
    cr_assert_str_eq(reply->error_code, code);
    cr_assert_neq(reply->error_message[0], '\0', "an error carries a message");
}

static bool string_field_is(const struct cc_reply *reply, const char *key, const char *expected)
{
    const msgpack_object *value = cc_reply_get(reply, key);
    return value && value->type == MSGPACK_OBJECT_STR &&
           value->via.str.size == strlen(expected) &&
           memcmp(value->via.str.ptr, expected, value->via.str.size) == 0;
}

static uint64_t uint_field(const struct cc_reply *reply, const char *key)
{
    const msgpack_object *value = cc_reply_get(reply, key);
    cr_assert(value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "%s is missing", key);
    return value->via.u64;
}

/* Pings on client and requires a good reply. */
static void ping_ok(struct cc_client *client, uint64_t id)
{
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, id, "ping", &reply), 1);
    expect_ok(&reply, id);
    cr_assert(string_field_is(&reply, "server", "carecountd"));
    cc_reply_free(&reply);
}

/* The server closed the connection (after any replies already read). */
static void expect_closed(struct cc_client *client)
{
    uint8_t *body = NULL;
    size_t len;
    int rc = cc_client_recv_frame(client, &body, &len);
    free(body);
    cr_assert(rc == 0 || rc == CC_EIO, "expected the connection to be closed, got %d", rc);
}

/* True if a byte is ready to read on the client right now. */
static bool has_data_now(const struct cc_client *client)
{
    struct pollfd poll_fd = {.fd = cc_client_fd(client), .events = POLLIN};
    return poll(&poll_fd, 1, 0) > 0;
}

static const char *const test_mode_args[] = {"--test-mode", NULL};

/* ---- requests and replies ----------------------------------------------- */

Test(server, ping_replies_with_the_server_name_and_version)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    cr_assert_eq(cc_client_call_simple(client, 7, "ping", &reply), 1);
    expect_ok(&reply, 7);
    cr_assert(string_field_is(&reply, "server", "carecountd"));
    cr_assert(string_field_is(&reply, "version", CC_VERSION_STRING));
    cr_assert_eq(uint_field(&reply, "v"), 1);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, status_counts_connections_and_requests)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *first = connect_to(harness);
    struct cc_client *second = connect_to(harness);
    struct cc_reply reply;

    ping_ok(first, 1);
    ping_ok(first, 2);
    cr_assert_eq(cc_client_call_simple(second, 3, "status", &reply), 1);
    expect_ok(&reply, 3);
    cr_assert_eq(uint_field(&reply, "connections"), 2);
    cr_assert_eq(uint_field(&reply, "requests_served"), 2, "the two pings before it");
    cr_assert_eq(uint_field(&reply, "requests_in_progress"), 0);
    (void)uint_field(&reply, "uptime_s");
    cc_reply_free(&reply);
    cc_client_close(first);
    cc_client_close(second);
    stop_cleanly(harness);
}

Test(server, malformed_msgpack_gets_parse_and_the_connection_stays_usable)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    const uint8_t never_used_byte = 0xc1; /* reserved in msgpack */

    cr_assert_eq(cc_client_send_frame(client, &never_used_byte, 1), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cr_assert_not(reply.has_id, "the id of an unreadable request is nil");
    cc_reply_free(&reply);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, truncated_msgpack_in_a_complete_frame_gets_parse)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer frame;

    pack_request(&frame, 5, "ping", -1);
    /* Declare and send one byte less of the body than was packed. */
    size_t body_len = frame.size - CC_FRAME_HEADER_BYTES - 1;
    cr_assert_eq(cc_client_send_frame(client, frame.data + CC_FRAME_HEADER_BYTES, body_len), 0);
    msgpack_sbuffer_destroy(&frame);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    ping_ok(client, 6);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, containers_declaring_more_elements_than_bytes_get_parse_without_allocating)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    /* A map32 and an array32 declaring 2^32-1 entries in 5 bytes: msgpack-c
     * would allocate for the declared count (128 GiB) before noticing. */
    const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t huge_array_in_map[] = {0x81, 0xa1, 0x78, 0xdd, 0xff, 0xff, 0xff, 0xff};

    cr_assert_eq(cc_client_send_frame(client, huge_map, sizeof(huge_map)), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    cr_assert_eq(cc_client_send_frame(client, huge_array_in_map, sizeof(huge_array_in_map)), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, nesting_deeper_than_the_limit_gets_parse)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    uint8_t deep[203];

    /* {"x": [[[[...]]]]} nested 200 deep. */
    deep[0] = 0x81;
    deep[1] = 0xa1;
    deep[2] = 0x78;
    for (size_t i = 3; i < sizeof(deep) - 1; i++)
        deep[i] = 0x91;
    deep[sizeof(deep) - 1] = 0x90;
    cr_assert_eq(cc_client_send_frame(client, deep, sizeof(deep)), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, a_body_that_is_not_a_map_gets_parse)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    const uint8_t array_of_two[] = {0x92, 0x01, 0x02}; /* [1, 2] */

    cr_assert_eq(cc_client_send_frame(client, array_of_two, sizeof(array_of_two)), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, an_empty_body_gets_parse)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    cr_assert_eq(cc_client_send_frame(client, "", 0), 0);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cc_reply_free(&reply);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, a_repeated_key_gets_parse_with_the_id)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer body;
    msgpack_packer packer;

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    cc_client_pack_envelope(&packer, 12, "ping", 1);
    msgpack_pack_str_with_body(&packer, "op", 2);
    msgpack_pack_str_with_body(&packer, "status", 6);
    cr_assert_eq(cc_client_send_frame(client, body.data, body.size), 0);
    msgpack_sbuffer_destroy(&body);
    receive(client, &reply);
    expect_error(&reply, "PARSE");
    cr_assert_eq(reply.id, 12);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, a_request_map_with_too_many_keys_gets_toobig_and_the_connection_stays)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer body;
    msgpack_packer packer;
    char key[16];

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    cc_client_pack_envelope(&packer, 13, "ping", 100);
    for (int i = 0; i < 100; i++) {
        int len = snprintf(key, sizeof(key), "extra%d", i);
        msgpack_pack_str_with_body(&packer, key, (size_t)len);
        msgpack_pack_nil(&packer);
    }
    cr_assert_eq(cc_client_send_frame(client, body.data, body.size), 0);
    msgpack_sbuffer_destroy(&body);
    receive(client, &reply);
    expect_error(&reply, "TOOBIG");
    cr_assert_eq(reply.id, 13);
    cc_reply_free(&reply);
    ping_ok(client, 14);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, an_unknown_op_gets_unsupported_with_its_id)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    cr_assert_eq(cc_client_call_simple(client, 41, "no-such-op", &reply), 1);
    expect_error(&reply, "UNSUPPORTED");
    cr_assert(reply.has_id);
    cr_assert_eq(reply.id, 41);
    cc_reply_free(&reply);
    ping_ok(client, 42);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, a_request_without_an_id_gets_inval)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer body;
    msgpack_packer packer;

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 2);
    msgpack_pack_str_with_body(&packer, "v", 1);
    msgpack_pack_uint64(&packer, 1);
    msgpack_pack_str_with_body(&packer, "op", 2);
    msgpack_pack_str_with_body(&packer, "ping", 4);
    cr_assert_eq(cc_client_send_frame(client, body.data, body.size), 0);
    msgpack_sbuffer_destroy(&body);
    receive(client, &reply);
    expect_error(&reply, "INVAL");
    cr_assert_not(reply.has_id);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, another_protocol_version_gets_unsupported)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer body;
    msgpack_packer packer;

    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 3);
    msgpack_pack_str_with_body(&packer, "v", 1);
    msgpack_pack_uint64(&packer, 2);
    msgpack_pack_str_with_body(&packer, "id", 2);
    msgpack_pack_uint64(&packer, 9);
    msgpack_pack_str_with_body(&packer, "op", 2);
    msgpack_pack_str_with_body(&packer, "ping", 4);
    cr_assert_eq(cc_client_send_frame(client, body.data, body.size), 0);
    msgpack_sbuffer_destroy(&body);
    receive(client, &reply);
    expect_error(&reply, "UNSUPPORTED");
    cr_assert_eq(reply.id, 9);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, delay_ms_is_refused_outside_test_mode)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 3, "ping", 10);
    receive(client, &reply);
    expect_error(&reply, "INVAL");
    cr_assert_eq(reply.id, 3);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

/* ---- framing over the socket --------------------------------------------- */

/* Reads from fd until the peer closes (or cap - 1 bytes, or 30 s). Returns
 * the bytes read, NUL-terminated in buf. */
static size_t read_until_closed(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&p, 1, CC_HARNESS_CLIENT_TIMEOUT_MS), 1, "the server did not close");
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        cr_assert_geq(n, 0, "recv failed");
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    return got;
}

/* Checks that text is the msgpack port's plain HTTP 400: status line,
 * Content-Length matching the body, the explanation. */
static void expect_http_refusal(const char *text)
{
    cr_assert(strncmp(text, "HTTP/1.1 400 Bad Request\r\n", 26) == 0, "got: %.80s", text);
    const char *body = strstr(text, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    const char *length = strstr(text, "Content-Length: ");
    cr_assert_not_null(length);
    cr_assert_eq(strtoul(length + 16, NULL, 10), strlen(body));
    cr_assert_not_null(strstr(text, "Connection: close\r\n"));
    cr_assert_not_null(strstr(body, "carecount msgpack protocol (docs/protocol.md)"));
}

Test(server, an_http_request_on_the_msgpack_port_gets_a_plain_http_400)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *bystander = connect_to(harness);
    ping_ok(bystander, 1);
    const char *methods[] = {"GET / HTTP/1.1", "POST /v1/count HTTP/1.1", "HEAD / HTTP/1.0",
                             "OPTIONS * HTTP/1.1", "PRI * HTTP/2.0"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        struct cc_client *browser = connect_to(harness);
        char request[256], response[4096];
        int len = snprintf(request, sizeof request, "%s\r\nHost: localhost\r\n\r\n",
                           methods[i]);
        cr_assert_eq(cc_client_send_raw(browser, request, (size_t)len), 0);
        read_until_closed(cc_client_fd(browser), response, sizeof response);
        expect_http_refusal(response);
        cc_client_close(browser);
    }
    /* The same bytes after a first frame are a length like any other: TOOBIG. */
    struct cc_client *later = connect_to(harness);
    ping_ok(later, 2);
    cr_assert_eq(cc_client_send_raw(later, "GET / HTTP/1.1\r\n\r\n", 18), 0);
    struct cc_reply reply;
    receive(later, &reply);
    expect_error(&reply, "TOOBIG");
    cc_reply_free(&reply);
    expect_closed(later);
    cc_client_close(later);

    ping_ok(bystander, 3);
    char *log = cc_harness_log(harness);
    cr_assert_not_null(log);
    cr_assert_not_null(strstr(log, "refused an HTTP request on the msgpack port"));
    cr_assert_null(strstr(log, "localhost"), "the log carries no request content");
    free(log);
    cc_client_close(bystander);
    stop_cleanly(harness);
}

Test(server, curl_on_the_msgpack_port_is_told_what_the_port_speaks)
{
    /* curl is a build dependency (scripts/deps.sh) for this test. */
    cr_assert_eq(system("command -v curl >/dev/null 2>&1"), 0, "curl is not installed");
    struct cc_harness *harness = start(NULL);
    char command[256], output[4096];
    snprintf(command, sizeof command,
             "curl -sS -i --max-time 30 -w '\\nexit-status:%%{http_code}' "
             "http://127.0.0.1:%u/v1/ping 2>&1",
             (unsigned)cc_harness_port(harness));
    FILE *curl = popen(command, "r");
    cr_assert_not_null(curl);
    size_t got = fread(output, 1, sizeof output - 1, curl);
    output[got] = '\0';
    int status = pclose(curl);
    cr_assert_eq(status, 0, "curl failed: %s", output);
    cr_assert(strncmp(output, "HTTP/1.1 400 Bad Request", 24) == 0, "got: %s", output);
    cr_assert_not_null(strstr(output, "this port speaks the carecount msgpack protocol"));
    cr_assert_not_null(strstr(output, "exit-status:400"));
    stop_cleanly(harness);
}

Test(server, oversize_declared_length_gets_toobig_then_close_and_others_are_served)
{
    const char *const args[] = {"--max-frame-bytes", "1024", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *bystander = connect_to(harness);
    struct cc_client *offender = connect_to(harness);
    struct cc_reply reply;
    uint8_t header[CC_FRAME_HEADER_BYTES];

    ping_ok(bystander, 1);
    cr_assert_eq(cc_frame_header_encode(0x7fffffff, header), 0);
    cr_assert_eq(cc_client_send_raw(offender, header, sizeof(header)), 0);
    receive(offender, &reply);
    expect_error(&reply, "TOOBIG");
    cc_reply_free(&reply);
    expect_closed(offender);
    cc_client_close(offender);

    ping_ok(bystander, 2);
    struct cc_client *newcomer = connect_to(harness);
    ping_ok(newcomer, 3);
    cc_client_close(newcomer);
    cc_client_close(bystander);
    stop_cleanly(harness);
}

Test(server, a_frame_written_one_byte_at_a_time_is_answered)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer frame;
    int one = 1;

    cr_assert_eq(setsockopt(cc_client_fd(client), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    pack_request(&frame, 77, "ping", -1);
    for (size_t i = 0; i < frame.size; i++) {
        struct timespec pause = {0, 1000000}; /* so the bytes arrive in separate reads */
        cr_assert_eq(cc_client_send_raw(client, frame.data + i, 1), 0);
        nanosleep(&pause, NULL);
    }
    msgpack_sbuffer_destroy(&frame);
    receive(client, &reply);
    expect_ok(&reply, 77);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, two_frames_in_one_write_get_two_replies)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer first, second;

    pack_request(&first, 1, "ping", -1);
    pack_request(&second, 2, "status", -1);
    char *both = malloc(first.size + second.size);
    cr_assert_not_null(both);
    memcpy(both, first.data, first.size);
    memcpy(both + first.size, second.data, second.size);
    cr_assert_eq(cc_client_send_raw(client, both, first.size + second.size), 0);
    free(both);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);

    /* Both run on the loop, so their replies come in request order. */
    receive(client, &reply);
    expect_ok(&reply, 1);
    cr_assert(string_field_is(&reply, "server", "carecountd"));
    cc_reply_free(&reply);
    receive(client, &reply);
    expect_ok(&reply, 2);
    (void)uint_field(&reply, "requests_served");
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, fifty_concurrent_clients_each_get_their_own_replies)
{
    enum { N_CLIENTS = 50, N_REQUESTS = 3 };
    struct cc_harness *harness = start(NULL);
    struct cc_client *clients[N_CLIENTS];
    struct cc_reply reply;

    for (int i = 0; i < N_CLIENTS; i++)
        clients[i] = connect_to(harness);
    /* Every client sends all its requests before any reply is read. */
    for (int r = 0; r < N_REQUESTS; r++)
        for (int i = 0; i < N_CLIENTS; i++)
            send_request(clients[i], (uint64_t)(i * 100 + r + 1), "ping", -1);
    for (int i = N_CLIENTS - 1; i >= 0; i--) {
        for (int r = 0; r < N_REQUESTS; r++) {
            receive(clients[i], &reply);
            expect_ok(&reply, (uint64_t)(i * 100 + r + 1));
            cc_reply_free(&reply);
        }
    }
    cr_assert_eq(cc_client_call_simple(clients[0], 9999, "status", &reply), 1);
    cr_assert_eq(uint_field(&reply, "connections"), N_CLIENTS);
    cr_assert_eq(uint_field(&reply, "requests_served"), N_CLIENTS * N_REQUESTS);
    cc_reply_free(&reply);
    for (int i = 0; i < N_CLIENTS; i++)
        cc_client_close(clients[i]);
    stop_cleanly(harness);
}

/* ---- the thread pool ---------------------------------------------------- */

Test(server, a_slow_request_on_the_pool_does_not_hold_up_another_client)
{
    struct cc_harness *harness = start(test_mode_args);
    struct cc_client *slow = connect_to(harness);
    struct cc_client *quick = connect_to(harness);
    struct cc_reply reply;

    send_request(slow, 1, "ping", 3000);
    /* The quick client is answered, and sees the slow request in progress. */
    ping_ok(quick, 2);
    cr_assert_eq(cc_client_call_simple(quick, 3, "status", &reply), 1);
    expect_ok(&reply, 3);
    cr_assert_eq(uint_field(&reply, "requests_in_progress"), 1);
    cc_reply_free(&reply);
    cr_assert_not(has_data_now(slow), "the slow reply came before the quick ones");

    receive(slow, &reply);
    expect_ok(&reply, 1);
    cr_assert(string_field_is(&reply, "version", CC_VERSION_STRING));
    cc_reply_free(&reply);
    cc_client_close(slow);
    cc_client_close(quick);
    stop_cleanly(harness);
}

Test(server, a_quick_request_overtakes_a_slow_one_on_the_same_connection)
{
    struct cc_harness *harness = start(test_mode_args);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 1, "ping", 2000);
    send_request(client, 2, "ping", -1);
    receive(client, &reply);
    expect_ok(&reply, 2);
    cc_reply_free(&reply);
    receive(client, &reply);
    expect_ok(&reply, 1);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, requests_beyond_the_pending_limit_get_busy)
{
    const char *const args[] = {"--test-mode", "--max-pending-requests-per-connection", "1",
                                NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 1, "ping", 1000);
    send_request(client, 2, "ping", 1000);
    receive(client, &reply);
    cr_assert_eq(reply.id, 2);
    expect_error(&reply, "BUSY");
    cc_reply_free(&reply);
    receive(client, &reply);
    expect_ok(&reply, 1);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, requests_beyond_the_server_wide_pending_limit_get_busy)
{
    const char *const args[] = {"--test-mode", "--max-pending-requests", "1", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *first = connect_to(harness);
    struct cc_client *second = connect_to(harness);
    struct cc_reply reply;

    send_request(first, 1, "ping", 1000);
    /* Once the first is on the pool (status shows it), the second is refused. */
    cr_assert_eq(cc_client_call_simple(second, 2, "status", &reply), 1);
    cr_assert_eq(uint_field(&reply, "requests_in_progress"), 1);
    cc_reply_free(&reply);
    send_request(second, 3, "ping", 1000);
    receive(second, &reply);
    cr_assert_eq(reply.id, 3);
    expect_error(&reply, "BUSY");
    cc_reply_free(&reply);
    ping_ok(second, 4); /* a ping on the loop is still served */
    receive(first, &reply);
    expect_ok(&reply, 1);
    cc_reply_free(&reply);
    cc_client_close(first);
    cc_client_close(second);
    stop_cleanly(harness);
}

Test(server, a_client_that_does_not_read_its_replies_stops_being_read)
{
    enum { BATCH = 1000, MAX_BATCHES = 2000 };
    const char *const args[] = {"--max-write-queue-bytes", "1024", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *hog = connect_to(harness);
    struct cc_client *other = connect_to(harness);
    struct cc_reply reply;
    msgpack_sbuffer one, batch;
    int rc = 0;

    /* The hog pipelines pings and never reads; once the server stops
     * reading it, the socket buffers fill and its send times out. */
    pack_request(&one, 1, "ping", -1);
    msgpack_sbuffer_init(&batch);
    for (int i = 0; i < BATCH; i++)
        cr_assert_eq(msgpack_sbuffer_write(&batch, one.data, one.size), 0);
    cc_client_set_timeout(hog, 1000);
    for (int b = 0; b < MAX_BATCHES && rc == 0; b++)
        rc = cc_client_send_raw(hog, batch.data, batch.size);
    cr_assert_eq(rc, CC_ETIMEDOUT, "the server kept reading a client that does not read");
    msgpack_sbuffer_destroy(&batch);
    msgpack_sbuffer_destroy(&one);

    cr_assert_eq(cc_client_call_simple(other, 2, "status", &reply), 1);
    expect_ok(&reply, 2);
    cr_assert_eq(uint_field(&reply, "connections_paused"), 1);
    cc_reply_free(&reply);
    cc_client_close(hog);
    ping_ok(other, 3);
    cc_client_close(other);
    stop_cleanly(harness);
}

/* ---- connection limits -------------------------------------------------- */

Test(server, a_connection_over_the_limit_is_told_busy_and_closed)
{
    const char *const args[] = {"--max-connections", "2", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *first = connect_to(harness);
    struct cc_client *second = connect_to(harness);
    struct cc_reply reply;

    ping_ok(first, 1);
    ping_ok(second, 2);
    struct cc_client *third = connect_to(harness);
    receive(third, &reply);
    expect_error(&reply, "BUSY");
    cr_assert_not(reply.has_id);
    cc_reply_free(&reply);
    expect_closed(third);
    cc_client_close(third);

    /* A freed slot can be used again. */
    cc_client_close(first);
    ping_ok(second, 3);
    cr_assert_eq(cc_client_call_simple(second, 4, "status", &reply), 1);
    cr_assert_eq(uint_field(&reply, "connections_refused"), 1);
    cc_reply_free(&reply);
    cc_client_close(second);
    stop_cleanly(harness);
}

Test(server, an_idle_connection_is_told_timedout_and_closed)
{
    const char *const args[] = {"--idle-timeout-ms", "100", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    ping_ok(client, 1);
    receive(client, &reply); /* waits for the timeout */
    expect_error(&reply, "TIMEDOUT");
    cc_reply_free(&reply);
    expect_closed(client);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, a_frame_trickled_slower_than_the_frame_deadline_is_cut_off)
{
    /* One byte every 150 ms keeps the connection active (the idle timeout
     * of 2 s never fires) but the frame cannot arrive whole within the
     * 600 ms frame deadline: the server says TIMEDOUT and closes, and
     * serves others meanwhile. */
    const char *const args[] = {"--idle-timeout-ms", "2000", "--frame-timeout-ms", "600", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *slow = connect_to(harness);
    struct cc_client *other = connect_to(harness);
    msgpack_sbuffer frame;
    pack_request(&frame, 1, "ping", -1);
    bool cut_off = false;
    for (size_t i = 0; i < frame.size && !cut_off; i++) {
        if (cc_client_send_raw(slow, frame.data + i, 1) != 0)
            break;
        struct timespec pause = {0, 150 * 1000000L};
        nanosleep(&pause, NULL);
        cut_off = has_data_now(slow);
        ping_ok(other, 100 + i);
    }
    msgpack_sbuffer_destroy(&frame);
    cr_assert(cut_off, "the server answered before the whole frame arrived");
    struct cc_reply reply;
    receive(slow, &reply);
    expect_error(&reply, "TIMEDOUT");
    cr_assert_not(reply.has_id, "a cut-off frame answers no request");
    cc_reply_free(&reply);
    expect_closed(slow);
    ping_ok(other, 1000);
    cc_client_close(slow);
    cc_client_close(other);
    stop_cleanly(harness);
}

Test(server, a_connection_that_sends_half_a_first_frame_gets_the_handshake_deadline)
{
    const char *const args[] = {"--frame-timeout-ms", "300", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *client = connect_to(harness);
    cr_assert_eq(cc_client_send_raw(client, "\0\0", 2), 0); /* half a header, then nothing */
    struct cc_reply reply;
    receive(client, &reply);
    expect_error(&reply, "TIMEDOUT");
    cc_reply_free(&reply);
    expect_closed(client);
    cc_client_close(client);
    /* whole frames sent at once are unaffected */
    client = connect_to(harness);
    ping_ok(client, 1);
    struct timespec pause = {0, 400 * 1000000L};
    nanosleep(&pause, NULL);
    ping_ok(client, 2);
    cc_client_close(client);
    stop_cleanly(harness);
}

/* ---- shutdown ----------------------------------------------------------- */

Test(server, sigterm_with_clients_connected_exits_zero)
{
    struct cc_harness *harness = start(NULL);
    struct cc_client *idle = connect_to(harness);
    struct cc_client *active = connect_to(harness);

    ping_ok(active, 1);
    stop_cleanly(harness);
    expect_closed(idle);
    expect_closed(active);
    cc_client_close(idle);
    cc_client_close(active);
}

Test(server, sigterm_lets_a_request_in_progress_finish)
{
    struct cc_harness *harness = start(test_mode_args);
    struct cc_client *client = connect_to(harness);
    struct cc_client *observer = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 1, "ping", 1500);
    /* Make sure the slow ping is on the pool before the signal. */
    cr_assert_eq(cc_client_call_simple(observer, 2, "status", &reply), 1);
    cr_assert_eq(uint_field(&reply, "requests_in_progress"), 1);
    cc_reply_free(&reply);
    cr_assert_eq(cc_harness_signal(harness, SIGTERM), 0);
    receive(client, &reply);
    expect_ok(&reply, 1);
    cc_reply_free(&reply);
    expect_closed(client);
    cc_client_close(client);
    cc_client_close(observer);
    stop_cleanly(harness);
}

Test(server, a_second_sigterm_closes_connections_without_waiting_for_replies)
{
    struct cc_harness *harness = start(test_mode_args);
    struct cc_client *client = connect_to(harness);
    struct cc_client *observer = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 1, "ping", 3000);
    cr_assert_eq(cc_client_call_simple(observer, 2, "status", &reply), 1);
    cr_assert_eq(uint_field(&reply, "requests_in_progress"), 1);
    cc_reply_free(&reply);
    cr_assert_eq(cc_harness_signal(harness, SIGTERM), 0);
    expect_closed(observer); /* the first signal has been handled */
    cr_assert_eq(cc_harness_signal(harness, SIGTERM), 0);
    expect_closed(client); /* closed before its reply */
    cc_client_close(client);
    cc_client_close(observer);
    stop_cleanly(harness);
}

Test(server, a_second_sigterm_cancels_requests_still_queued_for_the_pool)
{
    /* a pool of 4 threads (--threads): of 12 slow pings, at least 8 wait
     * in its queue. The second signal cancels those instead of running
     * them. */
    static const char *const args[] = {"--test-mode", "--threads", "4", NULL};
    struct cc_harness *harness = start(args);
    struct cc_client *client = connect_to(harness);
    struct cc_client *observer = connect_to(harness);
    struct cc_reply reply;
    for (uint64_t id = 1; id <= 12; id++)
        send_request(client, id, "ping", 2000);
    for (int tries = 0; tries < 100; tries++) {
        cr_assert_eq(cc_client_call_simple(observer, 100, "status", &reply), 1);
        uint64_t n = uint_field(&reply, "requests_in_progress");
        cc_reply_free(&reply);
        if (n == 12)
            break;
        struct timespec pause = {0, 10 * 1000000L};
        nanosleep(&pause, NULL);
    }
    cr_assert_eq(cc_harness_signal(harness, SIGTERM), 0);
    expect_closed(observer);
    cr_assert_eq(cc_harness_signal(harness, SIGTERM), 0);
    expect_closed(client);
    cc_client_close(client);
    cc_client_close(observer);
    char *log = cc_harness_log(harness);
    stop_cleanly(harness);
    /* 12 sent, at most 4 running: 8 or more still queued (more when a
     * thread had not yet taken its ping when the signal came) */
    const char *said = strstr(log, "queued requests cancelled");
    cr_assert_not_null(said, "the log says so:\n%s", log);
    const char *number = said - 1;
    while (number > log && number[-1] >= '0' && number[-1] <= '9')
        number--;
    int cancelled = atoi(number);
    cr_assert(cancelled >= 8 && cancelled <= 11, "%d cancelled:\n%s", cancelled, log);
    free(log);
}

Test(server, a_client_that_half_closes_still_gets_its_replies)
{
    struct cc_harness *harness = start(test_mode_args);
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    send_request(client, 1, "ping", 200);
    send_request(client, 2, "status", -1);
    cr_assert_eq(shutdown(cc_client_fd(client), SHUT_WR), 0);
    receive(client, &reply);
    expect_ok(&reply, 2);
    cc_reply_free(&reply);
    receive(client, &reply);
    expect_ok(&reply, 1);
    cc_reply_free(&reply);
    expect_closed(client);
    cc_client_close(client);
    stop_cleanly(harness);
}

Test(server, sigint_also_exits_zero)
{
    struct cc_harness *harness = start(NULL);
    int status = -1;
    cr_assert_eq(cc_harness_signal(harness, SIGINT), 0);
    cr_assert_eq(cc_harness_stop(harness, &status), 0);
    cr_assert_eq(status, 0);
    cc_harness_free(harness);
}

/* ---- the programs ------------------------------------------------------- */

/* Runs a shell command; returns its exit status and its stdout in out. */
static int run_command(const char *command, char *out, size_t out_bytes)
{
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    size_t len = fread(out, 1, out_bytes - 1, pipe);
    out[len] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(server, carecount_ping_prints_the_server_version)
{
    struct cc_harness *harness = start(NULL);
    char tool[4096], command[4200], output[1024], expected[64];

    cc_harness_tool_path(tool, sizeof(tool));
    snprintf(command, sizeof(command), "'%s' ping --host 127.0.0.1 --port %u", tool,
             (unsigned)cc_harness_port(harness));
    cr_assert_eq(run_command(command, output, sizeof(output)), 0, "output: %s", output);
    snprintf(expected, sizeof(expected), "carecountd %s", CC_VERSION_STRING);
    cr_assert_not_null(strstr(output, expected), "output: %s", output);
    cr_assert_not_null(strstr(output, "status: ok"), "output: %s", output);
    stop_cleanly(harness);
}

Test(server, carecount_ping_answers_help)
{
    char tool[4096], command[4200], output[1024];
    cc_harness_tool_path(tool, sizeof(tool));
    snprintf(command, sizeof(command), "'%s' ping --help", tool);
    cr_assert_eq(run_command(command, output, sizeof(output)), 0);
    cr_assert_not_null(strstr(output, "usage: carecount ping"), "output: %s", output);
}

Test(server, carecount_ping_fails_when_nothing_listens)
{
    struct cc_harness *harness = start(NULL);
    char tool[4096], command[4200], output[1024];
    uint16_t port = cc_harness_port(harness);

    stop_cleanly(harness); /* the port is now free */
    cc_harness_tool_path(tool, sizeof(tool));
    snprintf(command, sizeof(command), "'%s' ping --port %u --timeout-ms 5000 2>&1", tool,
             (unsigned)port);
    cr_assert_eq(run_command(command, output, sizeof(output)), 1);
    cr_assert(strstr(output, "connection refused"), "says why: %s", output);
}

Test(server, carecountd_refuses_a_remote_address_without_allow_remote)
{
    char command[4200], output[1024];
    const char *bin = getenv("CC_BIN_DIR");
    snprintf(command, sizeof(command), "'%s/carecountd' --listen 0.0.0.0:0 2>&1",
             bin && *bin ? bin : CC_BIN_DIR);
    cr_assert_eq(run_command(command, output, sizeof(output)), 2);
    cr_assert_not_null(strstr(output, "--allow-remote"), "output: %s", output);
}

Test(server, carecountd_answers_help_and_version)
{
    char command[4200], output[4096];
    const char *bin = getenv("CC_BIN_DIR");
    bin = bin && *bin ? bin : CC_BIN_DIR;
    snprintf(command, sizeof(command), "'%s/carecountd' --version", bin);
    cr_assert_eq(run_command(command, output, sizeof(output)), 0);
    cr_assert_not_null(strstr(output, CC_VERSION_STRING));
    snprintf(command, sizeof(command), "'%s/carecountd' --help", bin);
    cr_assert_eq(run_command(command, output, sizeof(output)), 0);
    cr_assert_not_null(strstr(output, "--max-frame-bytes"));
}

/* ---- configuration (server/cc_config.c), no server needed --------------- */

Test(config, listen_address_forms_parse)
{
    char host[CC_CONFIG_HOST_BYTES];
    uint16_t port = 1;

    cr_assert_eq(cc_config_parse_listen("127.0.0.1:0", host, &port), 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 0);
    cr_assert_eq(cc_config_parse_listen("[::1]:7433", host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 7433);
}

Test(config, listen_address_rejects_names_bad_ports_and_missing_parts)
{
    char host[CC_CONFIG_HOST_BYTES] = "unchanged";
    uint16_t port = 5;

    cr_assert_eq(cc_config_parse_listen("localhost:80", host, &port), CC_EINVAL);
    cr_assert_eq(cc_config_parse_listen("127.0.0.1:65536", host, &port), CC_EINVAL);
    cr_assert_eq(cc_config_parse_listen("127.0.0.1:-1", host, &port), CC_EINVAL);
    cr_assert_eq(cc_config_parse_listen("127.0.0.1", host, &port), CC_EINVAL);
    cr_assert_eq(cc_config_parse_listen(":80", host, &port), CC_EINVAL);
    cr_assert_eq(cc_config_parse_listen("[::1]80", host, &port), CC_EINVAL);
    cr_assert_str_eq(host, "unchanged");
    cr_assert_eq(port, 5);
}

Test(config, loopback_is_127_slash_8_and_ipv6_one)
{
    cr_assert(cc_config_host_is_loopback("127.0.0.1"));
    cr_assert(cc_config_host_is_loopback("127.255.0.9"));
    cr_assert(cc_config_host_is_loopback("::1"));
    cr_assert_not(cc_config_host_is_loopback("0.0.0.0"));
    cr_assert_not(cc_config_host_is_loopback("10.0.0.1"));
    cr_assert_not(cc_config_host_is_loopback("::"));
}

Test(config, options_set_their_fields_with_units)
{
    struct cc_config config;
    char error[200];
    char *argv[] = {"--max-frame-bytes", "2048", "--idle-timeout-ms", "1500",
                    "--max-write-queue-bytes", "65536", "--test-mode", "--port-file", "/x/p"};

    cc_config_defaults(&config);
    cr_assert_eq(config.max_frame_bytes, CC_CONFIG_DEFAULT_MAX_FRAME_BYTES);
    cr_assert_not(config.test_mode);
    cr_assert_eq(cc_config_parse_args(&config, 9, argv, error, sizeof(error)), 0, "%s", error);
    cr_assert_eq(config.max_frame_bytes, 2048);
    cr_assert_eq(config.idle_timeout_ms, 1500);
    cr_assert_eq(config.max_write_queue_bytes, 65536);
    cr_assert(config.test_mode);
    cr_assert_str_eq(config.port_file, "/x/p");
    cr_assert_eq(config.max_connections, CC_CONFIG_DEFAULT_MAX_CONNECTIONS, "others untouched");
}

Test(config, bad_options_are_refused_with_a_reason)
{
    struct cc_config config;
    char error[200];
    char *unknown[] = {"--frobnicate"};
    char *too_small[] = {"--max-frame-bytes", "15"};
    char *not_a_number[] = {"--max-connections", "12x"};
    char *missing_value[] = {"--idle-timeout-ms"};
    char *remote[] = {"--listen", "192.0.2.1:7433"};
    char *remote_no_tls[] = {"--listen", "192.0.2.1:7433", "--allow-remote"};
    char *remote_allowed[] = {"--listen", "192.0.2.1:7433", "--allow-remote", "--tls-cert",
                              "/x/cert.pem", "--tls-key", "/x/key.pem"};

    cc_config_defaults(&config);
    cr_assert_eq(cc_config_parse_args(&config, 1, unknown, error, sizeof(error)), CC_EINVAL);
    cr_assert_not_null(strstr(error, "unknown option"));
    cr_assert_eq(cc_config_parse_args(&config, 2, too_small, error, sizeof(error)), CC_EINVAL);
    cr_assert_eq(cc_config_parse_args(&config, 2, not_a_number, error, sizeof(error)), CC_EINVAL);
    cr_assert_eq(cc_config_parse_args(&config, 1, missing_value, error, sizeof(error)), CC_EINVAL);
    cr_assert_eq(cc_config_parse_args(&config, 2, remote, error, sizeof(error)), CC_EINVAL);
    cr_assert_not_null(strstr(error, "--allow-remote"));
    /* --allow-remote alone is not enough: a remote address needs TLS */
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_parse_args(&config, 3, remote_no_tls, error, sizeof(error)), CC_EINVAL);
    cr_assert_not_null(strstr(error, "192.0.2.1 (listen) without TLS"), "%s", error);
    cr_assert_not_null(strstr(error, "tls-cert"), "%s", error);
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_parse_args(&config, 7, remote_allowed, error, sizeof(error)), 0, "%s",
                 error);
    cr_assert_str_eq(config.listen_host, "192.0.2.1");
    cr_assert_str_eq(config.tls_cert_path, "/x/cert.pem");
}

/* ---- unit-level: GSL never aborts a server ------------------------------- */

/* Without cc_server_new's gsl_set_error_handler_off(), this domain error
 * (a chi-squared quantile with negative degrees of freedom, the function
 * the exact Poisson limits use) calls GSL's default handler, which aborts
 * the process, and the test crashes. */
Test(server, a_gsl_domain_error_after_server_start_returns_nan_instead_of_aborting)
{
    struct cc_config config;
    struct cc_server *server = NULL;
    cc_config_defaults(&config);
    cr_assert_eq(cc_server_new(&config, &server), 0);
    double x = gsl_cdf_chisq_Pinv(0.5, -1.0);
    cr_assert(isnan(x), "a domain error gives NaN");
    cc_server_free(server);
}

/* Found by fuzz_config: a process that loads configuration files over and
 * over (the fuzzer) ran out of the 256 strings the loader keeps for the
 * configurations' life, and every later file was refused as "too many
 * options"; cc_config_release_files() gives them back. */
Test(config, released_file_strings_let_a_process_load_files_again_and_again)
{
    char *dir = cc_testfs_new_dir("config-many");
    char path[512];
    cc_testfs_path(path, sizeof path, dir, "carecountd.json");
    cc_testfs_write_text(path, "{\"policy\": \"/etc/carecount/policy.json\", \"saved\": \"/s\"}");
    struct cc_config config;
    char error[300];
    for (int i = 0; i < 300; i++) {
        cc_config_defaults(&config);
        cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), 0, "load %d: %s", i,
                     error);
        cr_assert_str_eq(config.policy_path, "/etc/carecount/policy.json");
        cc_config_release_files();
    }
    cc_testfs_remove_tree(dir);
    free(dir);
}

Test(config, a_config_file_sets_options_and_flags_override_it)
{
    char *dir = cc_testfs_new_dir("config");
    char path[512];
    cc_testfs_path(path, sizeof path, dir, "carecountd.json");
    cc_testfs_write_text(path, "{\"listen\": \"127.0.0.1:7999\", \"max-connections\": 12,\n"
                               " \"frame-timeout-ms\": 2500, \"test-mode\": true,\n"
                               " \"policy\": \"/etc/carecount/policy.json\"}\n");
    struct cc_config config;
    char error[300];
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), 0, "%s", error);
    char *argv[] = {"--max-connections", "40"};
    cr_assert_eq(cc_config_parse_args(&config, 2, argv, error, sizeof error), 0, "%s", error);
    cr_assert_eq(config.listen_port, 7999);
    cr_assert_eq(config.max_connections, 40, "the flag overrides the file");
    cr_assert_eq(config.frame_timeout_ms, 2500);
    cr_assert(config.test_mode);
    cr_assert_str_eq(config.policy_path, "/etc/carecount/policy.json");

    /* an unknown key, a wrong type, malformed JSON: refused with the reason */
    cc_testfs_write_text(path, "{\"max-conections\": 3}");
    cc_config_defaults(&config);
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), CC_EINVAL);
    cr_assert(strstr(error, "max-conections"), "%s", error);
    cc_testfs_write_text(path, "{\"max-connections\": [3]}");
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), CC_EINVAL);
    cr_assert(strstr(error, "max-connections"), "%s", error);
    cc_testfs_write_text(path, "{\"listen\": \"127.0.0.1:1\",");
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), CC_EPARSE);
    cr_assert(strstr(error, "line"), "%s", error);
    cc_testfs_write_text(path, "{\"listen\": \"127.0.0.1:1\", \"listen\": \"127.0.0.1:2\"}");
    cr_assert_eq(cc_config_load_file(&config, path, error, sizeof error), CC_EPARSE,
                 "a repeated key is refused");
    cc_testfs_remove_tree(dir);
    free(dir);
}
