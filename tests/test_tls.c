/*
 * Integration tests for TLS on carecountd's two listeners (server/cc_tls.c,
 * docs/operator-guide.md "TLS"): the real server started through the
 * harness with a certificate made at test time by the openssl program (a
 * CA, a server certificate for localhost and 127.0.0.1 signed by it, and a
 * second CA that signed nothing of ours), and real clients: the project's
 * (carecount, cc_client), curl, and openssl s_client.
 *
 * What it proves: clients that trust the CA get answers on both ports;
 * clients that do not are stopped by verification; TLS 1.1 is refused;
 * plaintext clients on TLS ports are told in their own protocol and the
 * server serves on; the handshake runs inside the first frame's deadline;
 * and carecountd will not start remote without TLS, nor with a key others
 * can read, a missing certificate or a key that is not the certificate's.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_client.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_harness.h"
#include "cc_testfs.h"
#include "cc_testtool.h"

static char root[256], data_dir[300], data_key[300];
static char ca[300], other_ca[300], cert[300], chain[300], key[300], other_key[300];

/* Runs a shell command; returns its exit status, with stdout and stderr
 * in out. */
static int sh(const char *command, char *out, size_t out_bytes)
{
    char full[8192];
    snprintf(full, sizeof full, "( %s ) 2>&1", command);
    FILE *pipe = popen(full, "r");
    cr_assert_not_null(pipe);
    size_t len = fread(out, 1, out_bytes - 1, pipe);
    out[len] = '\0';
    int status = pclose(pipe);
    /* under Sanitize a leak also exits 1, the status of a refusal */
    cr_assert_null(strstr(out, "Sanitizer"), "%s\n%s", command, out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* cc_testtool_run, and no sanitizer report in what it printed. */
static int tool(const char *args, char *out, size_t out_bytes)
{
    int status = cc_testtool_run(args, NULL, out, out_bytes);
    cr_assert_null(strstr(out, "Sanitizer"), "carecount %s\n%s", args, out);
    return status;
}

static void run(const char *command)
{
    static char out[16384];
    cr_assert_eq(sh(command, out, sizeof out), 0, "failed: %s\n%s", command, out);
}

/* A CA, a server certificate for localhost and 127.0.0.1 signed by it (and
 * the "fullchain" file a CA issues: the certificate, then the CA's), and a
 * second CA with its own key. EC keys: quick to make. */
static void make_certificates(void)
{
    char cmd[4096];
    snprintf(ca, sizeof ca, "%s/ca.pem", root);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", root);
    snprintf(cert, sizeof cert, "%s/server.pem", root);
    snprintf(chain, sizeof chain, "%s/fullchain.pem", root);
    snprintf(key, sizeof key, "%s/server.key", root);
    snprintf(other_key, sizeof other_key, "%s/other-ca.key", root);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n"
             "extendedKeyUsage=serverAuth\\n' > server.ext && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout ca.key -out ca.pem -days 2 -subj '/CN=carecount test CA' && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj '/CN=localhost' && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile server.ext && "
             "cat server.pem ca.pem > fullchain.pem && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout other-ca.key -out other-ca.pem -days 2 -subj '/CN=an unrelated CA' && "
             "chmod 600 server.key other-ca.key ca.key && chmod 644 server.pem fullchain.pem",
             root);
    run(cmd);
}

static void setup(void)
{
    cc_testfs_make_dir(root, sizeof root, "tls");
    make_certificates();
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(tls, .init = setup, .fini = teardown, .timeout = 300);

/* Generated data, ingested, and an account rita (researcher) whose token is
 * ROOT/rita.token. */
static void make_data(void)
{
    char cmd[2048];
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(data_key, sizeof data_key, "%s/data.key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 3000 --seed 11 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, data_key, CC_BIN_DIR, data_dir, data_key, root);
    run(cmd);
    cc_accounts *accounts = NULL;
    char err[256] = "", token[CC_TOKEN_TEXT_BYTES], path[400];
    cr_assert_eq(cc_accounts_open(data_dir, &accounts, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_add(accounts, "rita", CC_ROLE_RESEARCHER, NULL, NULL, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_accounts_token_issue(accounts, "rita", (int64_t)time(NULL) + 86400, token, NULL,
                                         err, sizeof err),
                 0, "%s", err);
    cc_accounts_close(accounts);
    snprintf(path, sizeof path, "%s/rita.token", root);
    cc_testfs_write(path, token, strlen(token), 0600);
}

/* carecountd with TLS on both listeners (the certificate chain file unless
 * cert_file is given), plus extra (NULL-terminated, or NULL). */
static struct cc_harness *start_tls(const char *cert_file, const char *const *extra)
{
    const char *args[32];
    int n = 0;
    args[n++] = "--http-listen";
    args[n++] = "127.0.0.1:0";
    args[n++] = "--tls-cert";
    args[n++] = cert_file ? cert_file : chain;
    args[n++] = "--tls-key";
    args[n++] = key;
    for (; extra && *extra && n < 30; extra++)
        args[n++] = *extra;
    args[n] = NULL;
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    cr_assert_gt(cc_harness_http_port(harness), 0);
    return harness;
}

static void stop(struct cc_harness *harness)
{
    int status = -1;
    cr_assert_eq(cc_harness_stop(harness, &status), 0, "carecountd had to be killed");
    cr_assert_eq(status, 0, "carecountd exited with %d", status);
    cc_harness_free(harness);
}

/* A cc_client over TLS that trusts ca_file and expects host's certificate;
 * returns what cc_client_start_tls returned, the reason in why. */
static int tls_connect(const struct cc_harness *harness, const char *host, const char *ca_file,
                       struct cc_client **out, char *why, size_t why_bytes)
{
    cr_assert_eq(cc_harness_connect(harness, out), 0, "cannot connect");
    int rc = cc_client_start_tls(*out, host, ca_file, why, why_bytes);
    if (rc < 0) {
        cc_client_close(*out);
        *out = NULL;
    }
    return rc;
}

static void ping_ok(struct cc_client *client, uint64_t id)
{
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, id, "ping", &reply), 1);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert_eq(reply.id, id);
    cc_reply_free(&reply);
}

/* How often needle occurs in the server's log. */
static int log_count(const struct cc_harness *harness, const char *needle)
{
    char *log = cc_harness_log(harness);
    cr_assert_not_null(log);
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* curl's status code for url (-s; extra flags before it); the body in out. */
static int curl_status(const char *flags, const char *url, char *out, size_t out_bytes)
{
    char cmd[4096], body[400], text[64];
    snprintf(body, sizeof body, "%s/curl.body", root);
    unlink(body);
    snprintf(cmd, sizeof cmd, "curl -s -o '%s' -w '%%{http_code}' %s '%s'", body, flags, url);
    int exit_status = sh(cmd, text, sizeof text);
    int status = 0;
    if (sscanf(text, "%d", &status) != 1 || exit_status != 0)
        status = -exit_status; /* curl's own failure: 60 is a verification failure */
    size_t len;
    char *text_body = access(body, F_OK) == 0 ? cc_testfs_read(body, &len) : NULL;
    snprintf(out, out_bytes, "%s", text_body ? text_body : "");
    free(text_body);
    return status;
}

#define BY_REGION                                                                                  \
    "{\"query\":{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"                     \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}}"

/* ---- clients that trust the CA -------------------------------------------- */

Test(tls, clients_that_trust_the_ca_get_answers_on_both_ports)
{
    make_data();
    const char *extra[] = {"--data", data_dir, "--key", data_key, NULL};
    struct cc_harness *harness = start_tls(NULL, extra);
    unsigned port = cc_harness_port(harness), http_port = cc_harness_http_port(harness);
    static char out[1 << 16];
    char args[2048], cmd[4096];

    /* carecount ping and a real count, by address and by name */
    snprintf(args, sizeof args, "ping --port %u --ca-file '%s'", port, ca);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "status: ok"), "%s", out);
    snprintf(args, sizeof args, "ping --host localhost --port %u --ca-file '%s'", port, ca);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    snprintf(args, sizeof args,
             "count --port %u --ca-file '%s' --token-file '%s/rita.token' --by region "
             "--code icd10:E11 --format json",
             port, ca, root);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"cells\"") && strstr(out, "\"region\""), "%s", out);

    /* TLS from the config file (ca-file), and from $CARECOUNT_CA_FILE */
    char home[400], path[500], text[1200];
    snprintf(home, sizeof home, "%s/home", root);
    snprintf(path, sizeof path, "%s/.carecount", home);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/.carecount/config", home);
    snprintf(text, sizeof text,
             "host = localhost\nport = %u\ntls = yes\nca-file = %s\n"
             "token-file = %s/rita.token\n",
             port, ca, root);
    cc_testfs_write_text(path, text);
    snprintf(cmd, sizeof cmd,
             "env -u CARECOUNT_TOKEN -u CARECOUNT_TOKEN_FILE -u CARECOUNT_PORT -u CARECOUNT_HOST "
             "-u CARECOUNT_CA_FILE HOME='%s' '%s/carecount' schema",
             home, CC_BIN_DIR);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "disclosure policy"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "env -u CARECOUNT_CONFIG HOME=/nonexistent CARECOUNT_CA_FILE='%s' "
             "'%s/carecount' codelists --port %u --token-file '%s/rita.token'",
             ca, CC_BIN_DIR, port, root);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);

    /* the library: hello, then pipelined requests in one write, answered in
     * order (several TLS records read at once, decrypted in turn) */
    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 1);
    msgpack_sbuffer frames;
    msgpack_sbuffer_init(&frames);
    for (uint64_t id = 10; id < 15; id++) {
        msgpack_sbuffer frame;
        msgpack_packer packer;
        msgpack_sbuffer_init(&frame);
        cr_assert_eq(cc_frame_sbuffer_begin(&frame), 0);
        msgpack_packer_init(&packer, &frame, msgpack_sbuffer_write);
        cc_client_pack_envelope(&packer, id, "ping", 0);
        cr_assert_eq(cc_frame_sbuffer_finish(&frame), 0);
        msgpack_sbuffer_write(&frames, frame.data, frame.size);
        msgpack_sbuffer_destroy(&frame);
    }
    cr_assert_eq(cc_client_send_raw(client, frames.data, frames.size), 0);
    msgpack_sbuffer_destroy(&frames);
    for (uint64_t id = 10; id < 15; id++) {
        struct cc_reply reply;
        cr_assert_eq(cc_client_recv_reply(client, &reply), 1);
        cr_assert(reply.ok && reply.id == id, "reply %llu", (unsigned long long)reply.id);
        cc_reply_free(&reply);
    }
    cc_client_close(client);

    /* HTTPS: curl trusting the CA, a ping and a count */
    char url[200], flags[1200], body_file[400];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/ping", http_port);
    snprintf(flags, sizeof flags, "--cacert '%s'", ca);
    cr_assert_eq(curl_status(flags, url, out, sizeof out), 200, "%s", out);
    cr_assert(strstr(out, "carecountd"), "%s", out);
    snprintf(body_file, sizeof body_file, "%s/count.json", root);
    cc_testfs_write_text(body_file, BY_REGION);
    snprintf(flags, sizeof flags,
             "--cacert '%s' -H \"Authorization: Bearer $(cat '%s/rita.token')\" "
             "-H 'Content-Type: application/json' --data-binary @'%s'",
             ca, root, body_file);
    snprintf(url, sizeof url, "https://localhost:%u/v1/count", http_port);
    cr_assert_eq(curl_status(flags, url, out, sizeof out), 200, "%s", out);
    cr_assert(strstr(out, "\"ok\":true") && strstr(out, "\"cells\""), "%s", out);

    /* HTTP/1.1 pipelining over TLS: a count (answered off the loop) and a
     * ping sent together; the ping waits decrypted, both are answered */
    char request_file[400], count_body[512];
    snprintf(request_file, sizeof request_file, "%s/pipelined.http", root);
    size_t token_len;
    snprintf(path, sizeof path, "%s/rita.token", root);
    char *token = cc_testfs_read(path, &token_len);
    snprintf(count_body, sizeof count_body, "%s", BY_REGION);
    static char requests[8192];
    snprintf(requests, sizeof requests,
             "POST /v1/count HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %.*s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s"
             "GET /v1/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
             (int)token_len, token, strlen(count_body), count_body);
    free(token);
    cc_testfs_write(request_file, requests, strlen(requests), 0600);
    snprintf(cmd, sizeof cmd,
             "openssl s_client -quiet -ign_eof -connect 127.0.0.1:%u -servername localhost "
             "-verify_return_error -CAfile '%s' < '%s' 2>/dev/null",
             http_port, ca, request_file);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
    const char *first = strstr(out, "HTTP/1.1 200");
    cr_assert(first && strstr(first + 1, "HTTP/1.1 200"), "two responses: %s", out);
    cr_assert(strstr(out, "\"cells\"") && strstr(out, "\"server\":\"carecountd\""), "%s", out);

    cr_assert_eq(log_count(harness, "TLS handshake failed"), 0);
    stop(harness);
}

/* ---- clients that do not ---------------------------------------------------- */

Test(tls, a_client_that_does_not_trust_the_certificate_stops_at_verification)
{
    struct cc_harness *harness = start_tls(NULL, NULL);
    unsigned port = cc_harness_port(harness), http_port = cc_harness_http_port(harness);
    char out[8192], args[1024], why[512];

    snprintf(args, sizeof args, "ping --port %u --ca-file '%s'", port, other_ca);
    cr_assert_eq(tool(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "certificate verify failed: "), "%s", out);
    cr_assert_null(strstr(out, "status: ok"), "%s", out);
    /* the system's store knows nothing of the test CA either */
    snprintf(args, sizeof args, "ping --port %u --tls", port);
    cr_assert_eq(tool(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "certificate verify failed"), "%s", out);
    /* a count stops there too: no hello is sent to a server not trusted */
    char token_path[400];
    snprintf(token_path, sizeof token_path, "%s/unsent.token", root);
    cc_testfs_write(token_path, "cct1.never-sent", 15, 0600);
    snprintf(args, sizeof args,
             "count --port %u --ca-file '%s' --token-file '%s' --by region --code icd10:E11", port,
             other_ca, token_path);
    cr_assert_eq(tool(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "certificate verify failed"), "%s", out);

    /* a CA file that is not there is named, and nothing is trusted instead */
    snprintf(args, sizeof args, "ping --port %u --ca-file '%s/no-such-ca.pem'", port, root);
    cr_assert_eq(tool(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "no-such-ca.pem: No such file or directory"), "%s", out);

    /* the right CA, the wrong name */
    struct cc_client *client = NULL;
    cr_assert_eq(tls_connect(harness, "carecount.example", ca, &client, why, sizeof why),
                 CC_ECRYPTO);
    cr_assert(strstr(why, "certificate verify failed: hostname mismatch"), "%s", why);
    cr_assert_eq(tls_connect(harness, "127.0.0.2", ca, &client, why, sizeof why), CC_ECRYPTO);
    cr_assert(strstr(why, "certificate verify failed: IP address mismatch"), "%s", why);
    cr_assert_eq(tls_connect(harness, "127.0.0.1", other_ca, &client, why, sizeof why), CC_ECRYPTO);
    cr_assert(strstr(why, "certificate verify failed"), "%s", why);

    char url[200], flags[600];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/ping", http_port);
    snprintf(flags, sizeof flags, "--cacert '%s'", other_ca);
    cr_assert_eq(curl_status(flags, url, out, sizeof out), -60, "curl: verification failed");

    /* every refusal was the client's: the server logs each failed
     * handshake once, and serves a client that trusts it */
    cr_assert_eq(tls_connect(harness, "localhost", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 1);
    cc_client_close(client);
    cr_assert_geq(log_count(harness, "TLS handshake failed"), 1);
    stop(harness);
}

Test(tls, tls_older_than_1_2_is_refused_and_logged_once)
{
    struct cc_harness *harness = start_tls(NULL, NULL);
    unsigned port = cc_harness_port(harness);
    char cmd[2048], out[16384];

    /* the controls: 1.2 and 1.3 handshake, verified, without compression */
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u -tls1_2 -CAfile '%s' -verify_return_error "
             "< /dev/null",
             port, ca);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "Protocol  : TLSv1.2") || strstr(out, "TLSv1.2,"), "%s", out);
    cr_assert(strstr(out, "Compression: NONE"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u -tls1_3 -CAfile '%s' -verify_return_error "
             "< /dev/null",
             port, ca);
    cr_assert_eq(sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "TLSv1.3"), "%s", out);
    cr_assert_eq(log_count(harness, "TLS handshake failed"), 0);

    /* TLS 1.1 (the client's security level lowered so that it offers it) */
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' "
             "-CAfile '%s' < /dev/null",
             port, ca);
    cr_assert_neq(sh(cmd, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "alert protocol version"), "the server said why: %s", out);
    cr_assert_eq(log_count(harness, "TLS handshake failed: unsupported protocol"), 1);

    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 7);
    cc_client_close(client);
    cr_assert_eq(log_count(harness, "TLS handshake failed"), 1, "once, for the one failure");
    stop(harness);
}

/* Renegotiation, which the server has no use for, is refused: a TLS 1.2
 * client of the OpenSSL API asks for it on an established connection. */
Test(tls, renegotiation_is_refused)
{
    struct cc_harness *harness = start_tls(NULL, NULL);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval wait = {.tv_sec = CC_HARNESS_CLIENT_TIMEOUT_MS / 1000};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait), 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons(cc_harness_port(harness))};
    cr_assert_eq(inet_pton(AF_INET, "127.0.0.1", &address.sin_addr), 1);
    cr_assert_eq(connect(fd, (struct sockaddr *)&address, sizeof address), 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    cr_assert_not_null(ctx);
    cr_assert_eq(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION), 1);
    cr_assert_eq(SSL_CTX_load_verify_locations(ctx, ca, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    cr_assert_not_null(ssl);
    cr_assert_eq(SSL_set_fd(ssl, fd), 1);
    cr_assert_eq(SSL_connect(ssl), 1, "the first handshake");
    cr_assert_eq(SSL_version(ssl), TLS1_2_VERSION);
    cr_assert_eq(SSL_renegotiate(ssl), 1);
    cr_assert_neq(SSL_do_handshake(ssl), 1, "a second handshake on the connection");
    bool refused = false;
    for (unsigned long e; (e = ERR_get_error());)
        refused |= ERR_GET_REASON(e) == SSL_R_NO_RENEGOTIATION;
    cr_assert(refused, "the server answered no_renegotiation");
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);

    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 1);
    cc_client_close(client);
    stop(harness);
}

/* The other way round: the project's client with TLS on a plaintext port
 * says what is likely wrong. */
Test(tls, a_tls_client_on_a_plaintext_port_is_told_it_may_not_speak_tls)
{
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(NULL, &harness), 0);
    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), CC_ECRYPTO);
    cr_assert(strstr(why, "TLS handshake failed") && strstr(why, "does that port speak TLS?"), "%s",
              why);
    stop(harness);
}

/* ---- plaintext clients on TLS ports ------------------------------------- */

Test(tls, plaintext_clients_are_told_in_their_protocol_and_the_server_serves_on)
{
    struct cc_harness *harness = start_tls(NULL, NULL);
    unsigned port = cc_harness_port(harness), http_port = cc_harness_http_port(harness);
    char out[8192], args[512], why[512];

    /* msgpack: a plaintext error frame, then the connection closes */
    struct cc_client *plain = NULL;
    cr_assert_eq(cc_harness_connect(harness, &plain), 0);
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(plain, 1, "ping", &reply), 1);
    cr_assert_not(reply.ok);
    cr_assert_str_eq(reply.error_code, "UNSUPPORTED");
    cr_assert(strstr(reply.error_message, "this port requires TLS"), "%s", reply.error_message);
    cc_reply_free(&reply);
    uint8_t *body = NULL;
    size_t len;
    int rc = cc_client_recv_frame(plain, &body, &len);
    free(body);
    cr_assert(rc == 0 || rc == CC_EIO, "closed after the error, got %d", rc);
    cc_client_close(plain);

    /* and the project's client without --tls says so */
    snprintf(args, sizeof args, "ping --port %u", port);
    cr_assert_eq(tool(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "this port requires TLS"), "%s", out);

    /* a TLS client right after is served */
    struct cc_client *client = NULL;
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 2);
    cc_client_close(client);

    /* HTTP: 400, saying to use https */
    char url[200], flags[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/ping", http_port);
    cr_assert_eq(curl_status("", url, out, sizeof out), 400, "%s", out);
    cr_assert(strstr(out, "this port requires TLS: use https://"), "%s", out);
    snprintf(url, sizeof url, "https://127.0.0.1:%u/v1/ping", http_port);
    snprintf(flags, sizeof flags, "--cacert '%s'", ca);
    cr_assert_eq(curl_status(flags, url, out, sizeof out), 200, "%s", out);

    cr_assert_eq(log_count(harness, "refused a plaintext msgpack client on a TLS port"), 2);
    cr_assert_eq(log_count(harness, "refused a plaintext HTTP client on a TLS port"), 1);
    stop(harness);
}

/* ---- deadlines ------------------------------------------------------------- */

Test(tls, the_handshake_runs_inside_the_first_frame_deadline)
{
    const char *extra[] = {"--frame-timeout-ms", "300", NULL};
    struct cc_harness *harness = start_tls(NULL, extra);
    char why[512];

    /* a handshake that stops after its first bytes is closed by the
     * deadline (the client's own timeout, 30 s, is far longer) */
    struct cc_client *stalled = NULL;
    cr_assert_eq(cc_harness_connect(harness, &stalled), 0);
    static const uint8_t start_of_hello[] = {0x16, 0x03, 0x01, 0x00};
    cr_assert_eq(cc_client_send_raw(stalled, start_of_hello, sizeof start_of_hello), 0);
    uint8_t *body = NULL;
    size_t len;
    int rc = cc_client_recv_frame(stalled, &body, &len);
    free(body);
    cr_assert(rc == 0 || rc == CC_EIO, "closed by the deadline, got %d", rc);
    cc_client_close(stalled);

    /* a handshake that completes, and then no frame: the deadline set at
     * the accept still runs, and its error frame comes encrypted */
    struct cc_client *idle = NULL;
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &idle, why, sizeof why), 0, "%s", why);
    struct cc_reply reply;
    cr_assert_eq(cc_client_recv_reply(idle, &reply), 1);
    cr_assert_not(reply.ok);
    cr_assert_str_eq(reply.error_code, "TIMEDOUT");
    cc_reply_free(&reply);
    cr_assert_eq(cc_client_recv_frame(idle, &body, &len), 0, "then close_notify and the end");
    cc_client_close(idle);

    /* a client that asks in time is served */
    struct cc_client *client = NULL;
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 3);
    cc_client_close(client);
    stop(harness);
}

/* Backpressure over TLS: replies a client does not read stop the server
 * reading it; when it reads them, the server resumes, and nothing that was
 * read and decrypted meanwhile is stuck (every reply comes, in order). */
Test(tls, a_client_that_reads_late_gets_every_reply_in_order)
{
    const char *extra[] = {"--max-write-queue-bytes", "1024", NULL};
    struct cc_harness *harness = start_tls(NULL, extra);
    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    enum { N_PINGS = 2000 };
    msgpack_sbuffer frames;
    msgpack_sbuffer_init(&frames);
    for (uint64_t id = 1; id <= N_PINGS; id++) {
        msgpack_sbuffer frame;
        msgpack_packer packer;
        msgpack_sbuffer_init(&frame);
        cr_assert_eq(cc_frame_sbuffer_begin(&frame), 0);
        msgpack_packer_init(&packer, &frame, msgpack_sbuffer_write);
        cc_client_pack_envelope(&packer, id, "ping", 0);
        cr_assert_eq(cc_frame_sbuffer_finish(&frame), 0);
        msgpack_sbuffer_write(&frames, frame.data, frame.size);
        msgpack_sbuffer_destroy(&frame);
    }
    /* in many records: the client encrypts what it sends in one call in
     * records of at most 16 KiB */
    cr_assert_eq(cc_client_send_raw(client, frames.data, frames.size), 0);
    msgpack_sbuffer_destroy(&frames);
    for (uint64_t id = 1; id <= N_PINGS; id++) {
        struct cc_reply reply;
        cr_assert_eq(cc_client_recv_reply(client, &reply), 1, "reply %llu", (unsigned long long)id);
        cr_assert(reply.ok && reply.id == id, "reply %llu in order", (unsigned long long)id);
        cc_reply_free(&reply);
    }
    ping_ok(client, N_PINGS + 1);
    cc_client_close(client);
    stop(harness);
}

/* ---- refusals at start ------------------------------------------------------ */

/* Runs carecountd with args on loopback (it must not start: a refusal
 * returns at once); returns its exit status, the output in out. */
static int carecountd(const char *args, char *out, size_t out_bytes)
{
    char cmd[4096];
    const char *bin = getenv("CC_BIN_DIR");
    snprintf(cmd, sizeof cmd, "'%s/carecountd' --port-file '%s/never.port' %s",
             bin && *bin ? bin : CC_BIN_DIR, root, args);
    return sh(cmd, out, out_bytes);
}

Test(tls, carecountd_refuses_a_remote_address_without_tls)
{
    char out[4096];
    cr_assert_eq(carecountd("--listen 0.0.0.0:0 --allow-remote", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "refusing to listen on 0.0.0.0 (listen) without TLS"), "%s", out);
    cr_assert(strstr(out, "tls-cert and tls-key"), "%s", out);
    cr_assert_eq(carecountd("--http-listen 0.0.0.0:0 --allow-remote", out, sizeof out), 2, "%s",
                 out);
    cr_assert(strstr(out, "0.0.0.0 (http-listen) without TLS"), "%s", out);
    cr_assert_eq(carecountd("--listen [::]:0 --allow-remote", out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, ":: (listen) without TLS"), "%s", out);
    /* a certificate without its key is no TLS */
    char args[1024];
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s'", chain);
    cr_assert_eq(carecountd(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "TLS needs both tls-cert and tls-key"), "%s", out);
    char never[400];
    snprintf(never, sizeof never, "%s/never.port", root);
    cr_assert_neq(access(never, F_OK), 0, "it never listened");
}

Test(tls, carecountd_refuses_a_key_others_can_read_and_a_certificate_others_can_write)
{
    char out[4096], args[2048], loose[400];
    snprintf(loose, sizeof loose, "%s/loose.key", root);
    size_t len;
    char *text = cc_testfs_read(key, &len);
    cc_testfs_write(loose, text, len, 0644);
    free(text);
    cr_assert_eq(chmod(loose, 0644), 0); /* whatever the umask did */
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", chain,
             loose);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, loose) && strstr(out, "mode 0644") && strstr(out, "chmod 600 it"), "%s",
              out);
    cr_assert(strstr(out, "tls-key"), "names the config key: %s", out);
    cr_assert_eq(chmod(loose, 0640), 0);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "mode 0640"), "group-readable is refused too: %s", out);

    cr_assert_eq(chmod(chain, 0664), 0);
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", chain, key);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, chain) && strstr(out, "mode 0664") && strstr(out, "chmod go-w it"), "%s",
              out);
    /* the same options from a configuration file are refused the same way */
    char config[400], json[1200];
    snprintf(config, sizeof config, "%s/carecountd.json", root);
    snprintf(json, sizeof json,
             "{\"listen\":\"127.0.0.1:0\",\"tls-cert\":\"%s\",\"tls-key\":\"%s\"}", chain, key);
    cc_testfs_write_text(config, json);
    snprintf(args, sizeof args, "--config '%s'", config);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "chmod go-w it"), "%s", out);
}

Test(tls, carecountd_refuses_a_missing_certificate_and_a_key_that_is_not_its)
{
    char out[4096], args[2048], missing[400], garbage[400];
    snprintf(missing, sizeof missing, "%s/no-such.pem", root);
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", missing,
             key);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, missing) && strstr(out, "No such file"), "%s", out);

    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", chain,
             other_key);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "does not match the certificate"), "%s", out);

    snprintf(garbage, sizeof garbage, "%s/garbage.pem", root);
    cc_testfs_write(garbage, "not a certificate\n", 18, 0600);
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", garbage,
             key);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "no PEM certificate"), "%s", out);
    snprintf(args, sizeof args, "--listen 127.0.0.1:0 --tls-cert '%s' --tls-key '%s'", chain,
             garbage);
    cr_assert_eq(carecountd(args, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "no PEM private key"), "%s", out);

    /* the certificate alone (no chain) with its key starts, as a control */
    struct cc_harness *harness = start_tls(cert, NULL);
    struct cc_client *client = NULL;
    char why[512];
    cr_assert_eq(tls_connect(harness, "127.0.0.1", ca, &client, why, sizeof why), 0, "%s", why);
    ping_ok(client, 1);
    cc_client_close(client);
    stop(harness);
}
