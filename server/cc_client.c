/*
 * cc_client.c: blocking TCP client for the carecount protocol.
 *
 * The socket is non-blocking and every wait is a poll() with the client's
 * timeout, so no call can hang forever on a server that stopped answering.
 * Frames are split with the same cc_frame reader as the server uses. On TLS,
 * cc_tls turns what send_all sends and receive returns into ciphertext and
 * back; the waits stay the same.
 *
 * Must never: print what it sends or receives.
 */
#include "cc_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_frame.h"
#include "cc_msgpack.h"
#include "cc_tls.h"

#define RECEIVE_BUFFER_BYTES 65536
#define SMALL_FRAME_BYTES 4096
#define CC_CLIENT_MAX_REPLY_DEPTH 32 /* msgpack-c's own parser stack depth */

struct cc_client {
    int fd;
    int timeout_ms;
    struct cc_frame_reader *reader;
    /* Bytes received but not yet fed to the reader (a read can end in the
     * middle of the next frame). */
    uint8_t buffer[RECEIVE_BUFFER_BYTES];
    size_t buffer_start, buffer_end;
    /* TLS (cc_client_start_tls): the trusted CAs, the session, and a
     * buffer of RECEIVE_BUFFER_BYTES for ciphertext as it is read */
    struct cc_tls_context *tls_context;
    struct cc_tls *tls;
    uint8_t *ciphertext;
};

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline passes. Returns 0,
 * CC_ETIMEDOUT or CC_EIO. */
static int wait_for(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = now_ms();
        if (now >= deadline_ms)
            return CC_ETIMEDOUT;
        struct pollfd poll_fd = {.fd = fd, .events = events};
        int rc = poll(&poll_fd, 1, (int)(deadline_ms - now));
        if (rc > 0)
            return 0;
        if (rc == 0)
            return CC_ETIMEDOUT;
        if (errno != EINTR)
            return CC_EIO;
    }
}

/* Connects one address with a deadline. Returns the fd or a negative code. */
static int connect_address(const struct addrinfo *address, uint64_t deadline_ms)
{
    int fd = socket(address->ai_family, address->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    address->ai_protocol);
    int rc = CC_EIO;
    if (fd < 0)
        return CC_EIO;
    if (connect(fd, address->ai_addr, address->ai_addrlen) != 0) {
        if (errno != EINPROGRESS) {
            rc = errno == ECONNREFUSED ? CC_ECONNREFUSED : CC_EIO;
            goto fail;
        }
        rc = wait_for(fd, POLLOUT, deadline_ms);
        if (rc < 0)
            goto fail;
        int error = 0;
        socklen_t error_len = sizeof(error);
        rc = CC_EIO;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &error_len) != 0 || error != 0) {
            rc = error == ECONNREFUSED ? CC_ECONNREFUSED : CC_EIO;
            goto fail;
        }
    }
    return fd;
fail:
    close(fd);
    return rc;
}

int cc_client_connect(const char *host, uint16_t port, int timeout_ms, struct cc_client **out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *addresses = NULL;
    struct cc_client *client = NULL;
    char port_text[8];
    uint64_t deadline_ms = now_ms() + (uint64_t)timeout_ms;
    int rc;

    snprintf(port_text, sizeof(port_text), "%u", (unsigned)port);
    if (getaddrinfo(host, port_text, &hints, &addresses) != 0)
        return CC_EINVAL;
    client = calloc(1, sizeof(*client));
    if (!client) {
        rc = CC_ENOMEM;
        goto fail;
    }
    client->fd = -1;
    client->timeout_ms = timeout_ms;
    rc = cc_frame_reader_new(CC_CLIENT_DEFAULT_MAX_FRAME_BYTES, &client->reader);
    if (rc < 0)
        goto fail;
    rc = CC_EIO;
    for (struct addrinfo *a = addresses; a && client->fd < 0; a = a->ai_next) {
        int fd = connect_address(a, deadline_ms);
        if (fd >= 0)
            client->fd = fd;
        else
            rc = fd;
    }
    if (client->fd < 0)
        goto fail;
    /* Requests are small and answered at once: waiting to coalesce them
     * (Nagle) against the server's delayed ACK costs 40 ms a round trip. */
    int one = 1;
    if (setsockopt(client->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        /* Not fatal: only slower. */
    }
    freeaddrinfo(addresses);
    *out = client;
    return 0;
fail:
    freeaddrinfo(addresses);
    cc_client_close(client);
    return rc;
}

void cc_client_close(struct cc_client *client)
{
    if (!client)
        return;
    if (client->tls && client->fd >= 0) {
        /* close_notify if the socket takes it now; the server does not
         * need it (a request's end is its frame), so no wait for it */
        char *data;
        size_t len;
        cc_tls_close_notify(client->tls);
        if (cc_tls_take_output(client->tls, &data, &len) == 0 && len) {
            ssize_t sent = send(client->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)sent;
        }
        free(data);
    }
    if (client->fd >= 0)
        close(client->fd);
    cc_tls_free(client->tls);
    cc_tls_context_free(client->tls_context);
    free(client->ciphertext);
    cc_frame_reader_free(client->reader);
    free(client);
}

void cc_client_set_timeout(struct cc_client *client, int timeout_ms)
{
    client->timeout_ms = timeout_ms;
}

int cc_client_fd(const struct cc_client *client)
{
    return client->fd;
}

/* Sends data[0..len) on the socket as it is, by the deadline. Returns 0,
 * CC_ETIMEDOUT or CC_EIO. */
static int send_all(struct cc_client *client, const void *data, size_t len, uint64_t deadline_ms)
{
    const uint8_t *bytes = data;
    while (len > 0) {
        ssize_t n = send(client->fd, bytes, len, MSG_NOSIGNAL);
        if (n > 0) {
            bytes += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_for(client->fd, POLLOUT, deadline_ms);
            if (rc < 0)
                return rc;
            continue;
        }
        return CC_EIO;
    }
    return 0;
}

/* Sends what the TLS session has for the server. Returns 0, CC_ETIMEDOUT,
 * CC_EIO or CC_ENOMEM. */
static int tls_flush(struct cc_client *client, uint64_t deadline_ms)
{
    char *data;
    size_t len;
    int rc = cc_tls_take_output(client->tls, &data, &len);
    if (rc == 0 && len)
        rc = send_all(client, data, len, deadline_ms);
    free(data);
    return rc;
}

int cc_client_send_raw(struct cc_client *client, const void *data, size_t len)
{
    uint64_t deadline_ms = now_ms() + (uint64_t)client->timeout_ms;
    if (!client->tls)
        return send_all(client, data, len, deadline_ms);
    if (len == 0)
        return 0;
    if (cc_tls_write(client->tls, data, len) < 0)
        return CC_EIO;
    return tls_flush(client, deadline_ms);
}

/* Reads ciphertext from the socket into the TLS session, by the deadline.
 * Returns 1, 0 when the server closed the connection, CC_ETIMEDOUT, CC_EIO
 * or CC_ENOMEM. */
static int tls_receive(struct cc_client *client, uint64_t deadline_ms)
{
    for (;;) {
        ssize_t n = recv(client->fd, client->ciphertext, RECEIVE_BUFFER_BYTES, 0);
        if (n > 0)
            return cc_tls_feed(client->tls, client->ciphertext, (size_t)n) < 0 ? CC_ENOMEM : 1;
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return CC_EIO;
        int rc = wait_for(client->fd, POLLIN, deadline_ms);
        if (rc < 0)
            return rc;
    }
}

/* Receives some bytes into client->buffer (plaintext, on TLS too). Returns
 * how many, 0 when the server closed the connection, CC_ETIMEDOUT or
 * CC_EIO. */
static ssize_t receive(struct cc_client *client, uint64_t deadline_ms)
{
    for (;;) {
        if (!client->tls) {
            ssize_t n = recv(client->fd, client->buffer, sizeof(client->buffer), 0);
            if (n >= 0)
                return n;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return CC_EIO;
            int rc = wait_for(client->fd, POLLIN, deadline_ms);
            if (rc < 0)
                return rc;
            continue;
        }
        size_t n = 0;
        int rc = cc_tls_read(client->tls, client->buffer, sizeof client->buffer, &n);
        int sent = tls_flush(client, deadline_ms); /* what TLS answers, if anything */
        if (rc == CC_TLS_PLAINTEXT)
            return (ssize_t)n;
        if (rc == CC_TLS_CLOSED)
            return 0;
        if (rc < 0 || sent < 0)
            return CC_EIO;
        rc = tls_receive(client, deadline_ms);
        if (rc <= 0)
            return rc;
    }
}

int cc_client_start_tls(struct cc_client *client, const char *host, const char *ca_file,
                        char *errbuf, size_t errlen)
{
    uint64_t deadline_ms = now_ms() + (uint64_t)client->timeout_ms;
    if (client->tls || client->ciphertext)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "TLS was already started");
    client->ciphertext = malloc(RECEIVE_BUFFER_BYTES);
    if (!client->ciphertext)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "TLS: out of memory");
    int rc = cc_tls_client_context_new(ca_file, &client->tls_context, errbuf, errlen);
    if (rc < 0)
        return rc;
    rc = cc_tls_client_new(client->tls_context, host, &client->tls);
    if (rc < 0)
        return cc_errorf(errbuf, errlen, rc, "TLS: %s",
                         rc == CC_EINVAL ? "no certificate can name that host" : cc_strerror(rc));
    for (;;) {
        int done = cc_tls_handshake(client->tls);
        int sent = tls_flush(client, deadline_ms); /* our next message, or an alert */
        if (done < 0) {
            /* a verification failure says so itself; a plaintext server
             * answers with bytes that are no TLS record */
            const char *why = cc_tls_error(client->tls);
            bool verify = strncmp(why, "certificate verify failed", 25) == 0;
            return cc_errorf(
                errbuf, errlen, CC_ECRYPTO, "%s%s%s", verify ? "" : "TLS handshake failed: ", why,
                strstr(why, "wrong version number") ? " (does that port speak TLS?)" : "");
        }
        if (sent < 0)
            return cc_errorf(errbuf, errlen, sent, "TLS handshake: %s", cc_strerror(sent));
        if (done == 1)
            return 0;
        rc = tls_receive(client, deadline_ms);
        if (rc == 0)
            return cc_errorf(errbuf, errlen, CC_EIO,
                             "TLS handshake failed: the server closed the connection (does "
                             "that port speak TLS?)");
        if (rc < 0)
            return cc_errorf(errbuf, errlen, rc, "TLS handshake: %s", cc_strerror(rc));
    }
}

int cc_client_send_frame(struct cc_client *client, const void *body, size_t len)
{
    uint8_t header[CC_FRAME_HEADER_BYTES];
    int rc = cc_frame_header_encode(len, header);
    if (rc < 0)
        return rc;
    /* A small frame goes out in one send, so it travels in one segment. */
    if (len <= SMALL_FRAME_BYTES) {
        uint8_t frame[CC_FRAME_HEADER_BYTES + SMALL_FRAME_BYTES];
        memcpy(frame, header, sizeof(header));
        if (len)
            memcpy(frame + sizeof(header), body, len);
        return cc_client_send_raw(client, frame, sizeof(header) + len);
    }
    rc = cc_client_send_raw(client, header, sizeof(header));
    if (rc < 0)
        return rc;
    return len ? cc_client_send_raw(client, body, len) : 0;
}

int cc_client_recv_frame(struct cc_client *client, uint8_t **body, size_t *len)
{
    uint64_t deadline_ms = now_ms() + (uint64_t)client->timeout_ms;
    for (;;) {
        if (client->buffer_start < client->buffer_end) {
            size_t used;
            int rc = cc_frame_reader_feed(client->reader, client->buffer + client->buffer_start,
                                          client->buffer_end - client->buffer_start, &used);
            client->buffer_start += used;
            if (rc < 0)
                return rc;
            if (rc == 1) {
                cc_frame_reader_take(client->reader, body, len);
                return 1;
            }
        }
        client->buffer_start = client->buffer_end = 0;
        ssize_t n = receive(client, deadline_ms);
        if (n > 0) {
            client->buffer_end = (size_t)n;
            continue;
        }
        if (n == 0)
            return cc_frame_reader_mid_frame(client->reader) ? CC_EIO : 0;
        return (int)n;
    }
}

/* Copies a msgpack string into a NUL-terminated buffer, truncating. */
static void copy_string(const msgpack_object *value, char *out, size_t out_bytes)
{
    out[0] = '\0';
    if (!value || value->type != MSGPACK_OBJECT_STR)
        return;
    size_t n = value->via.str.size < out_bytes - 1 ? value->via.str.size : out_bytes - 1;
    memcpy(out, value->via.str.ptr, n);
    out[n] = '\0';
}

const msgpack_object *cc_reply_get(const struct cc_reply *reply, const char *key)
{
    return cc_msgpack_map_get(reply->map, key);
}

int cc_client_recv_reply(struct cc_client *client, struct cc_reply *reply)
{
    size_t offset = 0;
    memset(reply, 0, sizeof(*reply));
    msgpack_unpacked_init(&reply->unpacked);
    int rc = cc_client_recv_frame(client, &reply->body, &reply->body_bytes);
    if (rc <= 0)
        return rc;
    if (!cc_msgpack_within_bounds(reply->body, reply->body_bytes, CC_CLIENT_MAX_REPLY_DEPTH)) {
        cc_reply_free(reply);
        return CC_EPARSE;
    }
    msgpack_unpack_return unpacked = msgpack_unpack_next(
        &reply->unpacked, (const char *)reply->body, reply->body_bytes, &offset);
    if (unpacked != MSGPACK_UNPACK_SUCCESS || offset != reply->body_bytes ||
        reply->unpacked.data.type != MSGPACK_OBJECT_MAP) {
        cc_reply_free(reply);
        return CC_EPARSE;
    }
    reply->map = &reply->unpacked.data;
    const msgpack_object *id = cc_reply_get(reply, "id");
    const msgpack_object *ok = cc_reply_get(reply, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        cc_reply_free(reply);
        return CC_EPARSE;
    }
    reply->ok = ok->via.boolean;
    if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        reply->has_id = true;
        reply->id = id->via.u64;
    }
    if (!reply->ok) {
        const msgpack_object *error = cc_reply_get(reply, "error");
        const msgpack_object *code = NULL, *message = NULL;
        if (error && error->type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < error->via.map.size; i++) {
                const msgpack_object *k = &error->via.map.ptr[i].key;
                if (k->type != MSGPACK_OBJECT_STR)
                    continue;
                if (k->via.str.size == 4 && !memcmp(k->via.str.ptr, "code", 4))
                    code = &error->via.map.ptr[i].val;
                if (k->via.str.size == 7 && !memcmp(k->via.str.ptr, "message", 7))
                    message = &error->via.map.ptr[i].val;
            }
        }
        copy_string(code, reply->error_code, sizeof(reply->error_code));
        copy_string(message, reply->error_message, sizeof(reply->error_message));
    }
    return 1;
}

void cc_reply_free(struct cc_reply *reply)
{
    msgpack_unpacked_destroy(&reply->unpacked);
    free(reply->body);
    memset(reply, 0, sizeof(*reply));
}

static void pack_string(msgpack_packer *packer, const char *text)
{
    size_t len = strlen(text);
    msgpack_pack_str(packer, len);
    msgpack_pack_str_body(packer, text, len);
}

void cc_client_pack_envelope(msgpack_packer *packer, uint64_t id, const char *op,
                             uint32_t n_op_fields)
{
    msgpack_pack_map(packer, 3 + n_op_fields);
    pack_string(packer, "v");
    msgpack_pack_uint64(packer, 1);
    pack_string(packer, "id");
    msgpack_pack_uint64(packer, id);
    pack_string(packer, "op");
    pack_string(packer, op);
}

int cc_client_call_simple(struct cc_client *client, uint64_t id, const char *op,
                          struct cc_reply *reply)
{
    msgpack_sbuffer body;
    msgpack_packer packer;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    cc_client_pack_envelope(&packer, id, op, 0);
    int rc = body.data ? cc_client_send_frame(client, body.data, body.size) : CC_ENOMEM;
    msgpack_sbuffer_destroy(&body);
    if (rc < 0)
        return rc;
    return cc_client_recv_reply(client, reply);
}

int cc_client_call(struct cc_client *client, uint64_t id, const char *op, uint32_t n_op_fields,
                   cc_client_pack_fn pack, const void *arg, struct cc_reply *reply)
{
    msgpack_sbuffer body;
    msgpack_packer packer;
    msgpack_sbuffer_init(&body);
    msgpack_packer_init(&packer, &body, msgpack_sbuffer_write);
    cc_client_pack_envelope(&packer, id, op, n_op_fields);
    int rc = pack ? pack(&packer, arg) : 0;
    if (rc == 0)
        rc = body.data ? cc_client_send_frame(client, body.data, body.size) : CC_ENOMEM;
    msgpack_sbuffer_destroy(&body);
    if (rc < 0)
        return rc;
    return cc_client_recv_reply(client, reply);
}

int cc_client_read_token(const char *path, char token[CC_CLIENT_TOKEN_BYTES], char *errbuf,
                         size_t errlen)
{
    token[0] = '\0';
    if (!path || !*path)
        path = getenv("CARECOUNT_TOKEN_FILE");
    if (!path || !*path) {
        const char *text = getenv("CARECOUNT_TOKEN");
        if (!text || !*text)
            return cc_errorf(errbuf, errlen, CC_ENOTFOUND,
                             "no token: give --token-file FILE, or set CARECOUNT_TOKEN_FILE "
                             "or CARECOUNT_TOKEN");
        if (strlen(text) >= CC_CLIENT_TOKEN_BYTES)
            return cc_errorf(errbuf, errlen, CC_EINVAL, "CARECOUNT_TOKEN is too long");
        snprintf(token, CC_CLIENT_TOKEN_BYTES, "%s", text);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return cc_errorf(errbuf, errlen, CC_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cc_errorf(errbuf, errlen, CC_EIO, "%s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return cc_errorf(errbuf, errlen, CC_EPERM,
                         "%s: others can read or write this token file (mode %03o); "
                         "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    }
    ssize_t n = read(fd, token, CC_CLIENT_TOKEN_BYTES);
    close(fd);
    if (n < 0)
        return cc_errorf(errbuf, errlen, CC_EIO, "%s: %s", path, strerror(errno));
    if (n >= CC_CLIENT_TOKEN_BYTES) {
        token[0] = '\0';
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: too long for a token", path);
    }
    token[n] = '\0';
    while (n > 0 && (token[n - 1] == '\n' || token[n - 1] == '\r' || token[n - 1] == ' '))
        token[--n] = '\0';
    if (n == 0)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: the token file is empty", path);
    return 0;
}

static int pack_token(msgpack_packer *packer, const void *arg)
{
    const char *token = arg;
    size_t len = strlen(token);
    msgpack_pack_str_with_body(packer, "token", 5);
    return msgpack_pack_str_with_body(packer, token, len) == 0 ? 0 : CC_ENOMEM;
}

int cc_client_hello(struct cc_client *client, const char *token, char *errbuf, size_t errlen)
{
    struct cc_reply reply;
    int rc = cc_client_call(client, 1, "hello", 1, pack_token, token, &reply);
    if (rc == 0)
        return cc_errorf(errbuf, errlen, CC_EIO, "the server closed the connection");
    if (rc < 0)
        return cc_errorf(errbuf, errlen, rc, "hello: %s", cc_strerror(rc));
    if (!reply.ok) {
        rc = cc_errorf(errbuf, errlen, strcmp(reply.error_code, "AUTH") ? CC_EIO : CC_EAUTH,
                       "hello: %s: %s", reply.error_code, reply.error_message);
        cc_reply_free(&reply);
        return rc;
    }
    cc_reply_free(&reply);
    return 0;
}
