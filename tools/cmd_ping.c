/*
 * cmd_ping.c: `carecount ping`: checks that a carecountd answers, and prints
 * its version and status.
 *
 * Exit status: 0 when the server answered both ping and status, 1 when it
 * could not be reached or answered with an error, 2 for a usage error.
 *
 * Must never: print anything the server did not send in ping or status.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_client.h"
#include "cc_error.h"

const char cc_cmd_ping_summary[] = "check that a server answers; print its version and status";

static void usage(FILE *out)
{
    fprintf(out, "usage: carecount ping [--host HOST] [--port PORT] [--timeout-ms N]\n"
                 "                      [--tls] [--ca-file FILE]\n"
                 "\n"
                 "Connects to a carecountd, sends ping and status, and prints the\n"
                 "server's version and status. Defaults: --host 127.0.0.1 --port 7433\n"
                 "--timeout-ms 10000. --tls connects with TLS, checking the server's\n"
                 "certificate against the system's CAs and HOST; --ca-file FILE (TLS)\n"
                 "trusts the CA certificates of FILE instead.\n");
}

static int parse_uint(const char *text, unsigned long max, unsigned long *out)
{
    char *end;
    if (!text || !*text || *text == '-')
        return CC_EINVAL;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno || *end || value > max)
        return CC_EINVAL;
    *out = value;
    return 0;
}

/* Prints an unsigned field of the reply if present. */
static uint64_t reply_uint(const struct cc_reply *reply, const char *key)
{
    const msgpack_object *value = cc_reply_get(reply, key);
    return value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? value->via.u64 : 0;
}

static void reply_string(const struct cc_reply *reply, const char *key, char *out, size_t out_bytes)
{
    const msgpack_object *value = cc_reply_get(reply, key);
    out[0] = '\0';
    if (value && value->type == MSGPACK_OBJECT_STR) {
        size_t n = value->via.str.size < out_bytes - 1 ? value->via.str.size : out_bytes - 1;
        memcpy(out, value->via.str.ptr, n);
        out[n] = '\0';
    }
}

/* Sends op and waits for a successful reply; prints the reason otherwise. */
static int call(struct cc_client *client, uint64_t id, const char *op, struct cc_reply *reply)
{
    int rc = cc_client_call_simple(client, id, op, reply);
    if (rc == 0) {
        fprintf(stderr, "carecount ping: the server closed the connection\n");
        return CC_EIO;
    }
    if (rc < 0) {
        fprintf(stderr, "carecount ping: %s: %s\n", op, cc_strerror(rc));
        return rc;
    }
    if (!reply->ok) {
        fprintf(stderr, "carecount ping: %s: %s: %s\n", op, reply->error_code,
                reply->error_message);
        cc_reply_free(reply);
        return CC_EIO;
    }
    return 0;
}

int cc_cmd_ping(int argc, char **argv)
{
    const char *host = "127.0.0.1", *ca_file = NULL;
    unsigned long port = 7433, timeout_ms = 10000;
    bool tls = false;
    struct cc_client *client = NULL;
    struct cc_reply reply;
    char server[64], version[64];
    int status = 1;

    for (int i = 1; i < argc; i++) {
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--host") && value) {
            host = value;
            i++;
        } else if (!strcmp(argv[i], "--tls")) {
            tls = true;
        } else if (!strcmp(argv[i], "--ca-file") && value) {
            tls = true;
            ca_file = value;
            i++;
        } else if (!strcmp(argv[i], "--port") && value && parse_uint(value, 65535, &port) == 0 &&
                   port > 0) {
            i++;
        } else if (!strcmp(argv[i], "--timeout-ms") && value &&
                   parse_uint(value, 3600000, &timeout_ms) == 0 && timeout_ms > 0) {
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    int rc = cc_client_connect(host, (uint16_t)port, (int)timeout_ms, &client);
    if (rc < 0) {
        fprintf(stderr, "carecount ping: cannot connect to %s port %lu: %s\n", host, port,
                cc_strerror(rc));
        return 1;
    }
    char why[512];
    if (tls && cc_client_start_tls(client, host, ca_file, why, sizeof why) < 0) {
        fprintf(stderr, "carecount ping: %s port %lu: %s\n", host, port, why);
        goto out;
    }
    if (call(client, 1, "ping", &reply) < 0)
        goto out;
    reply_string(&reply, "server", server, sizeof(server));
    reply_string(&reply, "version", version, sizeof(version));
    uint64_t data_version = reply_uint(&reply, "data_version");
    cc_reply_free(&reply);
    if (call(client, 2, "status", &reply) < 0)
        goto out;
    printf("%s %s at %s port %lu\n", server, version, host, port);
    printf("status: ok, up %" PRIu64 " s, %" PRIu64 " connections, %" PRIu64
           " requests served\n",
           reply_uint(&reply, "uptime_s"), reply_uint(&reply, "connections"),
           reply_uint(&reply, "requests_served"));
    if (data_version) {
        /* which publication is in force is told to accounts only */
        printf("data: store version %" PRIu64 "\n", data_version);
    } else {
        printf("data: none (the server was started without --data)\n");
    }
    cc_reply_free(&reply);
    status = 0;
out:
    cc_client_close(client);
    return status;
}
