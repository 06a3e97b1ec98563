/*
 * cc_server.c: the event loop side of carecountd: accept, read, frame,
 * dispatch, write, time out, shut down.
 *
 * A connection moves SERVING -> DRAINING -> CLOSING and never back:
 *  - SERVING: requests are read (unless paused because the client is not
 *    reading its replies: backpressure).
 *  - DRAINING: nothing more is read; requests already on the thread pool
 *    finish and their replies are written; then the write side is shut down
 *    (which flushes the queue) and the connection closed. The idle timer
 *    doubles as the deadline for this.
 *  - CLOSING: uv_close has been called on both handles.
 * Its memory is freed only when both handles' close callbacks have run AND
 * no request of it is on the thread pool (the pool's done callback still
 * needs it).
 *
 * TLS (when configured, on both listeners): a connection's first byte says
 * whether it speaks TLS; a plaintext client is told so in its own protocol
 * and closed. Ciphertext read goes through cc_tls before the frame reader
 * or the HTTP parser sees plaintext (tls_input), every byte written goes
 * through write_buffer, which encrypts, and close_notify precedes the FIN.
 * The handshake runs inside the first frame's deadline.
 *
 * Must never: block the loop (file I/O happens only at start), log request
 * content, or allocate for a frame before its length is checked.
 */
#include "cc_server.h"

#include <fcntl.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>
#include <uv.h>

#include "cc_dataversion.h"
#include "cc_date.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_http.h"
#include "cc_log.h"
#include "cc_peers.h"
#include "cc_request.h"
#include "cc_serverdata.h"
#include "cc_services.h"
#include "cc_tls.h"

#define READ_BUFFER_BYTES 65536
#define LISTEN_BACKLOG 511

enum connection_state { SERVING, DRAINING, CLOSING };

struct connection {
    struct cc_server *server;
    uv_tcp_t tcp;
    uv_timer_t idle_timer; /* idle timeout while SERVING, drain deadline after */
    /* The frame deadline: a frame must arrive whole within frame_timeout_ms
     * of its first byte, and the first frame within frame_timeout_ms of
     * the accept, however slowly its bytes trickle in (activity re-arms the
     * idle timer, never this one). */
    uv_timer_t frame_timer;
    bool frame_timer_armed;
    uv_shutdown_t shutdown_request;
    msgpack_sbuffer outbox; /* reply frames not yet given to uv_write */
    bool batching;          /* inside on_read: collect replies in the outbox */
    struct cc_frame_reader *reader;
    struct connection *prev, *next; /* server->connections */
    enum connection_state state;
    int n_open_handles;       /* handles whose close callback has not run */
    uint32_t n_pending;       /* requests of this connection on the pool */
    size_t write_queue_bytes; /* reply bytes given to uv_write, not yet done */
    bool reading;             /* uv_read_start is in effect */
    bool counted;             /* counts towards max_connections */
    bool paused;              /* not read because its write queue is full */
    bool shutdown_started;
    /* HTTP/JSON connections (the --http-listen listener): the parser; a
     * request on the pool (requests are answered in order, one at a time:
     * the parser holds the next until then); bytes read but not yet parsed;
     * close once the response in hand is written */
    bool http;
    struct cc_http_conn *http_conn;
    bool http_waiting;
    uint8_t *http_pending;
    size_t http_pending_len;
    bool http_close_after;
    /* TLS: the session (NULL on a plaintext listener, and once a client
     * on a TLS port turned out to speak plaintext); whether the first byte
     * has been looked at */
    struct cc_tls *tls;
    bool tls_first_byte_seen;
    bool has_account; /* hello succeeded: requests run as account */
    struct cc_account account;
    char peer[64]; /* the client's address, for the audit log */
};

struct cc_server {
    uv_loop_t loop;
    bool loop_open;
    struct cc_config config;
    uv_tcp_t listener;
    uv_tcp_t http_listener;
    bool http_listener_open;
    uint16_t http_port;
    struct cc_http_cors cors;
    uint64_t http_ids;          /* the ids the server gives HTTP requests */
    struct cc_tls_context *tls; /* both listeners' certificate and key, or NULL */
    uv_signal_t sigint_handle, sigterm_handle, sighup_handle;
    uv_timer_t shutdown_timer;
    bool listener_open, signals_open, shutdown_timer_open;
    bool stopping;
    uint16_t port;
    uint64_t started_ms;
    uint64_t data_version;
    int32_t data_published_on;

    /* Publishing data versions: a timer checks the data directory (a new
     * store version) and the opt-out register on the policy's schedule, and
     * SIGHUP checks at once; building a version runs on the thread pool and
     * the swap happens here, on the loop. */
    struct cc_serverdata *data;
    struct cc_services *services;   /* what the ops share: one reference */
    struct cc_services no_services; /* before cc_server_set_services() (never freed) */
    /* SIGHUP reloads the policy and the codelists on the pool; the new
     * services replace these on the loop, requests in flight keep theirs */
    uv_work_t reload_work;
    bool reloading;
    struct cc_services *reloaded;
    int reload_result;
    char reload_error[512];
    uv_timer_t publish_timer;
    bool publish_timer_open, publishing;
    bool publish_again; /* SIGHUP arrived while publishing: check once more */
    uv_work_t publish_work;
    int publish_result;
    char publish_error[512];
    uint64_t data_publication;
    struct connection *connections; /* every connection not yet freed */
    struct pool_work *jobs;         /* every request on the thread pool */
    struct cc_peers *peers;         /* rate limits per client address */
    /* the per-account rate limit's table of peers, taken on the loop
     * (msgpack) and on the pool (HTTP, once a bearer token is known) */
    pthread_mutex_t account_limit_lock;
    uint64_t n_connections_open;    /* counted connections */
    uint64_t n_connections_accepted, n_connections_refused;
    uint64_t n_requests_served, n_requests_in_progress;
    uint64_t n_connections_paused;
    size_t write_queue_bytes; /* reply bytes queued over all connections */
    /* Reads are handled to completion inside the read callback, so one
     * buffer serves every connection, and one more its plaintext on TLS. */
    char read_buffer[READ_BUFFER_BYTES];
    char plaintext_buffer[READ_BUFFER_BYTES];
};

struct write_request {
    uv_write_t request;
    struct connection *connection;
    char *data; /* the frame, owned */
    size_t len;
};

/* A reply encoded for its connection: a frame, or the HTTP response made
 * from it. */
struct encoded_reply {
    int rc; /* 0, or < 0: nothing could be encoded (the connection is closed) */
    bool http;
    msgpack_sbuffer frame;
    struct cc_http_response response;
};

struct pool_work {
    uv_work_t work;
    struct connection *connection;
    struct cc_request *request;
    struct pool_work *prev, *next; /* server->jobs */
    /* the reply, encoded on the pool thread after the request ran (large
     * releases made into JSON there, not on the loop) */
    bool encoded;
    struct encoded_reply reply;
};

static void connection_close(struct connection *connection);
static void set_paused(struct connection *connection, bool paused);
static void connection_flush(struct connection *connection);
static void connection_drain(struct connection *connection);
static void frame_deadline(struct connection *connection, bool arm);
static void http_resume(struct connection *connection);
static void http_fail(struct connection *connection, struct cc_http_response *response);
static void server_maybe_finish(struct cc_server *server);

/* Logs a line about a connection, at most CC_PEERS_LOG_LINES per client
 * address per window (a flood of bad connections must not flood the log);
 * the address itself is never logged. */
static void connection_log(struct connection *connection, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void connection_log(struct connection *connection, const char *fmt, ...)
{
    struct cc_server *server = connection->server;
    uint32_t suppressed = 0;
    if (server->peers && !cc_peers_may_log(server->peers, connection->peer,
                                           uv_now(&server->loop), &suppressed))
        return;
    if (suppressed)
        cc_log("(%" PRIu32 " more lines about one client address were not logged)", suppressed);
    char line[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof line, fmt, args);
    va_end(args);
    cc_log("%s", line);
}

/* ---- connection lifetime ---------------------------------------------- */

static void connection_maybe_free(struct connection *connection)
{
    struct cc_server *server = connection->server;
    if (connection->state != CLOSING || connection->n_open_handles > 0 || connection->n_pending > 0)
        return;
    if (connection->prev)
        connection->prev->next = connection->next;
    else
        server->connections = connection->next;
    if (connection->next)
        connection->next->prev = connection->prev;
    if (connection->counted)
        server->n_connections_open--;
    cc_frame_reader_free(connection->reader);
    cc_http_conn_free(connection->http_conn);
    free(connection->http_pending);
    msgpack_sbuffer_destroy(&connection->outbox);
    cc_tls_free(connection->tls);
    free(connection);
    server_maybe_finish(server);
}

static void on_connection_handle_closed(uv_handle_t *handle)
{
    struct connection *connection = handle->data;
    connection->n_open_handles--;
    connection_maybe_free(connection);
}

/* Closes both handles; pending writes and the shutdown request are
 * cancelled (their callbacks run before the close callbacks). */
static void connection_close(struct connection *connection)
{
    if (connection->state == CLOSING)
        return;
    connection->state = CLOSING;
    connection->reading = false;
    set_paused(connection, false);
    uv_close((uv_handle_t *)&connection->tcp, on_connection_handle_closed);
    uv_close((uv_handle_t *)&connection->idle_timer, on_connection_handle_closed);
    uv_close((uv_handle_t *)&connection->frame_timer, on_connection_handle_closed);
}

static void on_shutdown_done(uv_shutdown_t *request, int status)
{
    (void)status; /* either way the connection is finished */
    connection_close(request->data);
}

static void tls_close_notify(struct connection *connection);

/* In DRAINING, once no request is left on the pool, shuts down the write
 * side: libuv sends the FIN after every queued reply has been written. */
static void connection_maybe_shutdown(struct connection *connection)
{
    if (connection->state != DRAINING || connection->n_pending > 0 || connection->shutdown_started)
        return;
    connection->shutdown_started = true;
    connection_flush(connection); /* the FIN must follow every reply */
    tls_close_notify(connection); /* and TLS's end of data */
    if (connection->state == CLOSING)
        return;
    connection->shutdown_request.data = connection;
    int rc = uv_shutdown(&connection->shutdown_request, (uv_stream_t *)&connection->tcp,
                         on_shutdown_done);
    if (rc < 0)
        connection_close(connection);
}

static void stop_reading(struct connection *connection)
{
    if (!connection->reading)
        return;
    connection->reading = false;
    int rc = uv_read_stop((uv_stream_t *)&connection->tcp);
    if (rc < 0)
        cc_log("uv_read_stop failed: %s", uv_strerror(rc));
}

static void on_idle_timer(uv_timer_t *timer);

/* Marks a connection as paused by backpressure, or no longer. */
static void set_paused(struct connection *connection, bool paused)
{
    if (connection->paused == paused)
        return;
    connection->paused = paused;
    if (paused)
        connection->server->n_connections_paused++;
    else
        connection->server->n_connections_paused--;
}

/* (Re)starts the idle timer, or the drain deadline in DRAINING. */
static void connection_arm_timer(struct connection *connection)
{
    if (connection->state == CLOSING)
        return;
    int rc = uv_timer_start(&connection->idle_timer, on_idle_timer,
                            connection->server->config.idle_timeout_ms, 0);
    if (rc < 0) {
        cc_log("uv_timer_start failed: %s", uv_strerror(rc));
        connection_close(connection);
    }
}

/* Stops reading and lets what is in progress finish; see the file comment. */
static void connection_drain(struct connection *connection)
{
    if (connection->state != SERVING)
        return;
    connection->state = DRAINING;
    stop_reading(connection);
    set_paused(connection, false);
    connection_arm_timer(connection);
    connection_maybe_shutdown(connection);
}

/* ---- writing ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static int start_reading(struct connection *connection)
{
    int rc = uv_read_start((uv_stream_t *)&connection->tcp, on_alloc, on_read);
    if (rc < 0) {
        cc_log("uv_read_start failed: %s", uv_strerror(rc));
        return CC_EIO;
    }
    connection->reading = true;
    return 0;
}

static void on_write_done(uv_write_t *request, int status)
{
    struct write_request *write = request->data;
    struct connection *connection = write->connection;
    size_t max_queue = connection->server->config.max_write_queue_bytes;

    connection->write_queue_bytes -= write->len;
    connection->server->write_queue_bytes -= write->len;
    free(write->data);
    free(write);
    if (status < 0) {
        connection_close(connection);
        return;
    }
    if (connection->state != SERVING)
        return;
    connection_arm_timer(connection);
    /* Backpressure: resume reading once the client has taken half of what
     * stopped us (hysteresis, so we do not flap at the limit). */
    if (connection->paused && connection->write_queue_bytes <= max_queue / 2) {
        set_paused(connection, false);
        if (start_reading(connection) < 0)
            connection_close(connection);
    }
}

/* Gives data[0..len) (malloc'd; taken) to uv_write as it is: on a TLS
 * connection, ciphertext. */
static void write_raw(struct connection *connection, char *data, size_t len)
{
    struct write_request *write = calloc(1, sizeof(*write));
    if (!write) {
        free(data);
        connection_close(connection);
        return;
    }
    write->connection = connection;
    write->len = len;
    write->data = data;
    write->request.data = write;
    uv_buf_t buf = uv_buf_init(write->data, (unsigned int)write->len);
    int rc = uv_write(&write->request, (uv_stream_t *)&connection->tcp, &buf, 1, on_write_done);
    if (rc < 0) {
        free(write->data);
        free(write);
        connection_close(connection);
        return;
    }
    connection->write_queue_bytes += write->len;
    connection->server->write_queue_bytes += write->len;
    if (connection->write_queue_bytes > connection->server->config.max_write_queue_bytes &&
        connection->state == SERVING && connection->reading) {
        /* Backpressure: the client is not reading its replies, so stop
         * reading its requests until it catches up (see on_write_done). */
        stop_reading(connection);
        set_paused(connection, true);
    }
}

/* ---- TLS ---------------------------------------------------------------- */

/* Writes what the TLS session has for the peer (handshake messages,
 * records, alerts), in the order it was made. */
static void tls_flush(struct connection *connection)
{
    char *data;
    size_t len;
    if (connection->state == CLOSING || !connection->tls)
        return;
    if (cc_tls_take_output(connection->tls, &data, &len) < 0) {
        connection_close(connection);
        return;
    }
    if (len)
        write_raw(connection, data, len);
}

/* Queues close_notify and writes it (nothing if no handshake completed). */
static void tls_close_notify(struct connection *connection)
{
    if (connection->state == CLOSING || !connection->tls)
        return;
    cc_tls_close_notify(connection->tls);
    tls_flush(connection);
}

/* Every byte the server writes goes through here: data[0..len)
 * (malloc'd; taken), encrypted on a TLS connection. Before the handshake
 * is complete there is no way to tell a TLS client anything (a deadline,
 * the server being full): the connection is closed instead. */
static void write_buffer(struct connection *connection, char *data, size_t len)
{
    if (!connection->tls) {
        write_raw(connection, data, len);
        return;
    }
    int rc = cc_tls_write(connection->tls, data, len);
    free(data);
    if (rc < 0) {
        connection_close(connection);
        return;
    }
    tls_flush(connection);
}

/* Writes out the frames collected in the outbox, in one write. */
static void connection_flush(struct connection *connection)
{
    if (connection->state == CLOSING || connection->outbox.size == 0)
        return;
    size_t len = connection->outbox.size;
    write_buffer(connection, msgpack_sbuffer_release(&connection->outbox), len);
}

/* Queues a finished frame for writing, taking its buffer. While a read is
 * being handled (batching), frames are collected in the outbox and written
 * together at its end: one system call for a whole pipeline of replies. */
static void connection_send(struct connection *connection, msgpack_sbuffer *frame)
{
    if (connection->state == CLOSING) {
        msgpack_sbuffer_destroy(frame);
        return;
    }
    if (!connection->batching && connection->outbox.size == 0) {
        size_t len = frame->size;
        write_buffer(connection, msgpack_sbuffer_release(frame), len);
        return;
    }
    int rc = msgpack_sbuffer_write(&connection->outbox, frame->data, frame->size);
    msgpack_sbuffer_destroy(frame);
    if (rc != 0) {
        connection_close(connection);
        return;
    }
    if (!connection->batching)
        connection_flush(connection);
}

/* Sends an error frame not tied to a request (id nil); on an HTTP
 * connection, an error response with Connection: close. */
static void connection_send_error(struct connection *connection, int code, const char *message)
{
    if (connection->http) {
        /* an HTTP client gets an HTTP error response (408 for a deadline or
         * the idle timeout), never a msgpack frame; the callers close */
        struct cc_http_response response = {0};
        const char *name = cc_err_name(code);
        if (cc_http_error_response(cc_http_status_for_code(name), name,
                                   message ? message : cc_strerror(code), NULL, NULL, NULL, true,
                                   &response) < 0) {
            connection_close(connection);
            return;
        }
        msgpack_sbuffer bytes = {response.len, response.data, response.len};
        connection_send(connection, &bytes);
        return;
    }
    msgpack_sbuffer frame;
    msgpack_sbuffer_init(&frame);
    if (cc_reply_encode_error(false, 0, code, message, &frame) < 0) {
        msgpack_sbuffer_destroy(&frame);
        connection_close(connection);
        return;
    }
    connection_send(connection, &frame);
}

/* Queues an HTTP response (its bytes are taken) and ends the request it
 * answers, so the parser may read the next. */
static void connection_send_http(struct connection *connection, struct cc_http_response *response)
{
    msgpack_sbuffer bytes = {response->len, response->data, response->len};
    if (response->close)
        connection->http_close_after = true;
    response->data = NULL;
    connection_send(connection, &bytes);
    cc_http_conn_next(connection->http_conn);
}

/* Encodes the reply to a request for connection: a frame, or on an HTTP
 * connection the HTTP response made from it (for the request the parser
 * holds, which stays put until the reply is sent). Reads only what does
 * not change while the request runs, so a pool thread may call it. */
static void encode_reply(const struct connection *connection, const struct cc_request *request,
                         struct encoded_reply *out)
{
    memset(out, 0, sizeof *out);
    msgpack_sbuffer_init(&out->frame);
    if (cc_request_encode_reply(request, &out->frame) < 0) {
        msgpack_sbuffer_destroy(&out->frame);
        msgpack_sbuffer_init(&out->frame);
        if (cc_reply_encode_error(true, cc_request_id(request), CC_ENOMEM, NULL, &out->frame) <
            0) {
            msgpack_sbuffer_destroy(&out->frame);
            out->rc = CC_ENOMEM;
            return;
        }
    }
    if (!connection->http)
        return;
    out->http = true;
    int rc = cc_http_from_reply((const uint8_t *)out->frame.data + CC_FRAME_HEADER_BYTES,
                                out->frame.size - CC_FRAME_HEADER_BYTES,
                                cc_http_conn_request(connection->http_conn),
                                &connection->server->cors, &out->response);
    msgpack_sbuffer_destroy(&out->frame);
    msgpack_sbuffer_init(&out->frame);
    if (rc < 0)
        out->rc = rc;
}

/* Queues an encoded reply (its bytes are taken). */
static void connection_send_encoded(struct connection *connection, struct encoded_reply *reply)
{
    connection->server->n_requests_served++;
    if (reply->rc < 0) {
        msgpack_sbuffer_destroy(&reply->frame);
        cc_http_response_free(&reply->response);
        connection_close(connection);
        return;
    }
    if (reply->http) {
        connection_send_http(connection, &reply->response);
        cc_http_response_free(&reply->response);
        return;
    }
    connection_send(connection, &reply->frame);
}

/* Encodes and queues the reply to a request (the request is not freed). */
static void connection_reply(struct connection *connection, const struct cc_request *request)
{
    struct encoded_reply reply;
    encode_reply(connection, request, &reply);
    connection_send_encoded(connection, &reply);
}

/* ---- dispatch ----------------------------------------------------------- */

static void server_stats(const struct cc_server *server, struct cc_server_stats *stats)
{
    uint64_t now_ms = uv_now((uv_loop_t *)&server->loop);
    stats->uptime_s = (now_ms - server->started_ms) / 1000;
    stats->connections_open = server->n_connections_open;
    stats->connections_accepted = server->n_connections_accepted;
    stats->connections_refused = server->n_connections_refused;
    stats->requests_served = server->n_requests_served;
    stats->requests_in_progress = server->n_requests_in_progress;
    stats->connections_paused = server->n_connections_paused;
    stats->data_version = server->data_version;
    stats->data_published_on = server->data_published_on;
    stats->data_publication = server->data_publication;
}

static void note_version(struct cc_server *server)
{
    const cc_dataversion *v = cc_serverdata_version(server->data);
    char day[11];
    server->data_version = cc_dataversion_store_version(v);
    server->data_published_on = cc_dataversion_published_on(v);
    server->data_publication = cc_serverdata_publication(server->data);
    cc_day_format(server->data_published_on, day);
    cc_log("serving store version %llu, publication %llu: opt-outs in force on %s applied",
           (unsigned long long)server->data_version,
           (unsigned long long)server->data_publication, day);
}

static void start_reload(struct cc_server *server);

static void on_publish_work(uv_work_t *work)
{
    struct cc_server *server = work->data;
    server->publish_result = cc_serverdata_prepare(server->data, cc_day_today(),
                                                   server->publish_error,
                                                   sizeof server->publish_error);
}

static void start_publishing(struct cc_server *server);

static void on_publish_done(uv_work_t *work, int status)
{
    struct cc_server *server = work->data;
    server->publishing = false;
    if (status == 0 && server->publish_error[0])
        cc_log("publishing: %s", server->publish_error);
    if (status == 0 && server->publish_result == 1 && !server->stopping) {
        cc_serverdata_commit(server->data);
        note_version(server);
    } else if (status == 0 && server->publish_result < 0 && !server->publish_error[0]) {
        cc_log("publishing a data version failed (%s); the version in force stays",
               cc_strerror(server->publish_result));
    }
    if (server->publish_again && !server->stopping) {
        server->publish_again = false;
        start_publishing(server);
    }
    server_maybe_finish(server);
}

static void arm_publish_timer(struct cc_server *server);

static void on_publish_timer(uv_timer_t *timer)
{
    struct cc_server *server = timer->data;
    start_publishing(server);
    arm_publish_timer(server);
}

/* Milliseconds from now to the next publication check. With an interval of
 * N s the checks fall on the wall clock's multiples of N s since the epoch
 * (UTC midnight for the daily default), not N s after this server started:
 * replicas serving one data directory then publish at the same instants, so
 * they serve the same data version (docs/scale.md). 0 checks every second. */
static uint64_t ms_to_next_check(const struct cc_server *server)
{
    uint64_t every_ms = server->config.publish_interval_s * 1000;
    if (!every_ms)
        return 1000;
    uv_timeval64_t now;
    if (uv_gettimeofday(&now) < 0)
        return every_ms;
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_usec / 1000;
    return every_ms - now_ms % every_ms;
}

/* One shot, re-armed at each check from the wall clock, so the schedule
 * does not drift from it. */
static void arm_publish_timer(struct cc_server *server)
{
    if (!server->publish_timer_open || server->stopping)
        return;
    if (uv_timer_start(&server->publish_timer, on_publish_timer, ms_to_next_check(server), 0) < 0)
        cc_log("cannot schedule the next publication check; SIGHUP checks at once");
}

/* Queues a publication check on the pool, unless one is running. */
static void start_publishing(struct cc_server *server)
{
    if (server->stopping || server->publishing)
        return;
    server->publishing = true;
    server->publish_work.data = server;
    int rc = uv_queue_work(&server->loop, &server->publish_work, on_publish_work,
                           on_publish_done);
    if (rc < 0) {
        server->publishing = false;
        cc_log("cannot queue publishing: %s", uv_strerror(rc));
    }
}

void cc_server_set_services(struct cc_server *server, struct cc_services *services)
{
    if (server->services != &server->no_services)
        cc_services_release(server->services);
    server->services = cc_services_retain(services);
}

static void cc_set_services_reloaded(struct cc_server *server)
{
    cc_services_release(server->services);
    server->services = server->reloaded;
    server->reloaded = NULL;
}

static void on_reload_work(uv_work_t *work)
{
    struct cc_server *server = work->data;
    server->reload_error[0] = '\0';
    server->reload_result = cc_services_reload(server->services, &server->config,
                                               &server->reloaded, server->reload_error,
                                               sizeof server->reload_error);
}

static void on_reload_done(uv_work_t *work, int status)
{
    struct cc_server *server = work->data;
    server->reloading = false;
    if (status == 0 && server->reload_result == 0) {
        const struct cc_policy *p = &server->reloaded->policy;
        cc_set_services_reloaded(server);
        cc_log("SIGHUP: policy %s and %u codelists in force", p->version,
               (unsigned)cc_codelists_count(server->services->codelists));
    } else {
        cc_log("SIGHUP: the policy and codelists in force stay: %s",
               server->reload_error[0] ? server->reload_error : "the reload was cancelled");
    }
    server_maybe_finish(server);
}

/* Reloads the policy and the codelists, off the loop, unless the server
 * has none to reload (no services) or a reload is running. */
static void start_reload(struct cc_server *server)
{
    if (server->reloading || server->stopping || server->services == &server->no_services)
        return;
    server->reloading = true;
    server->reload_work.data = server;
    if (uv_queue_work(&server->loop, &server->reload_work, on_reload_work, on_reload_done) < 0) {
        server->reloading = false;
        cc_log("SIGHUP: cannot queue the reload");
    }
}

int cc_server_set_data(struct cc_server *server, struct cc_serverdata *data)
{
    server->data = data;
    note_version(server);
    int rc = uv_timer_init(&server->loop, &server->publish_timer);
    if (rc < 0)
        return CC_EIO;
    server->publish_timer.data = server;
    server->publish_timer_open = true;
    rc = uv_timer_start(&server->publish_timer, on_publish_timer, ms_to_next_check(server), 0);
    return rc < 0 ? CC_EIO : 0;
}

static void on_work(uv_work_t *work)
{
    struct pool_work *job = work->data;
    cc_request_execute(job->request);
    encode_reply(job->connection, job->request, &job->reply);
    job->encoded = true;
}

static void on_work_done(uv_work_t *work, int status)
{
    struct pool_work *job = work->data;
    struct connection *connection = job->connection;

    struct cc_server *server = connection->server;
    if (job->prev)
        job->prev->next = job->next;
    else
        server->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    connection->n_pending--;
    server->n_requests_in_progress--;
    if (status < 0) {
        cc_request_fail(job->request, CC_EINTERNAL, "the request was cancelled");
        if (job->encoded) {
            msgpack_sbuffer_destroy(&job->reply.frame);
            cc_http_response_free(&job->reply.response);
            job->encoded = false;
        }
    }
    if (cc_request_op(job->request) == &cc_op_hello && cc_request_error(job->request) == CC_EAUTH &&
        server->peers)
        cc_peers_auth_failed(server->peers, connection->peer, uv_now(&server->loop));
    if (cc_request_wants_reload(job->request) && !server->stopping) {
        cc_log("reload asked by an operator");
        start_reload(server);
        if (server->data) {
            if (server->publishing)
                server->publish_again = true;
            else
                start_publishing(server);
        }
    }
    const struct cc_account *account = cc_request_authenticated(job->request);
    if (account) {
        connection->account = *account;
        connection->has_account = true;
    }
    if ((cc_request_used_bearer(job->request) && cc_request_error(job->request) == CC_EAUTH) &&
        server->peers)
        cc_peers_auth_failed(server->peers, connection->peer, uv_now(&server->loop));
    if (connection->state != CLOSING && job->encoded) {
        connection_send_encoded(connection, &job->reply);
    } else if (connection->state != CLOSING) {
        connection_reply(connection, job->request);
    } else if (job->encoded) {
        msgpack_sbuffer_destroy(&job->reply.frame);
        cc_http_response_free(&job->reply.response);
    }
    cc_request_free(job->request);
    free(job);
    if (connection->http) {
        connection->http_waiting = false;
        http_resume(connection);
    }
    connection_maybe_shutdown(connection);
    connection_maybe_free(connection);
}

/* Puts a request on the thread pool. Returns 0 (the pool owns it now) or a
 * negative code (the caller still owns it). */
static int queue_on_pool(struct connection *connection, struct cc_request *request)
{
    struct pool_work *job = calloc(1, sizeof(*job));
    if (!job)
        return CC_ENOMEM;
    job->connection = connection;
    job->request = request;
    job->work.data = job;
    int rc = uv_queue_work(&connection->server->loop, &job->work, on_work, on_work_done);
    if (rc < 0) {
        cc_log("uv_queue_work failed: %s", uv_strerror(rc));
        free(job);
        return CC_EINTERNAL;
    }
    connection->n_pending++;
    connection->server->n_requests_in_progress++;
    job->next = connection->server->jobs;
    if (job->next)
        job->next->prev = job;
    connection->server->jobs = job;
    return 0;
}

/* One request of account_id against its per-minute limit, from the loop
 * or a pool thread (the clock is the loop's: monotonic milliseconds). */
static bool account_take(struct cc_server *server, int64_t account_id)
{
    pthread_mutex_lock(&server->account_limit_lock);
    bool ok = cc_peers_account_take(server->peers, account_id,
                                    server->config.max_requests_per_account_minute,
                                    uv_hrtime() / 1000000);
    pthread_mutex_unlock(&server->account_limit_lock);
    return ok;
}

/* The HTTP request's admission once its bearer token is known (the
 * request context's admit_account). */
static bool admit_account(void *arg, int64_t account_id)
{
    return account_take(arg, account_id);
}

/* Handles one complete request body (a frame's, or the map an HTTP request
 * was translated into, with its bearer token): decode, check, run or
 * queue, reply. Takes body. */
static void dispatch(struct connection *connection, uint8_t *body, size_t len,
                     const char *bearer_token)
{
    struct cc_server *server = connection->server;
    struct cc_request *request;

    if (cc_request_new(body, len, &request) < 0) {
        connection_close(connection);
        return;
    }
    if (cc_request_decode(request) == 0) {
        const struct cc_op *op = cc_request_op(request);
        struct cc_request_context context = {
            .test_mode = server->config.test_mode,
            .version = server->data ? cc_serverdata_version(server->data) : NULL,
            .services = server->services,
            .account = connection->has_account ? &connection->account : NULL,
            .peer = connection->peer,
            .bearer_token = bearer_token,
            .admit_account = bearer_token && server->peers ? admit_account : NULL,
            .admit_arg = server,
        };
        server_stats(server, &context.stats);
        cc_request_set_context(request, &context);
        if ((op == &cc_op_hello || (bearer_token && op->roles)) && server->peers &&
            cc_peers_auth_blocked(server->peers, connection->peer, uv_now(&server->loop))) {
            connection_log(connection, "refused a hello: too many failed authentications "
                                       "from one address");
            cc_request_fail(request, CC_EBUSY,
                            "too many failed authentications from this address; try later");
        } else if (op->roles && !connection->has_account && !bearer_token) {
            /* answered on the loop: nothing to look up, nobody to audit */
            cc_request_fail(request, CC_EAUTH,
                            connection->http ? "this op needs an account: send Authorization: "
                                               "Bearer TOKEN"
                                             : "this op needs an account: send hello first");
        } else if (connection->http && op == &cc_op_hello) {
            cc_request_fail(request, CC_EUNSUPPORTED,
                            "there is no hello over HTTP: send the token with every request");
        } else if (op->roles && server->peers && connection->has_account &&
                   !account_take(server, connection->account.id)) {
            connection_log(connection, "refused a request: account %lld over its rate limit",
                           (long long)connection->account.id);
            cc_request_fail(request, CC_EBUSY,
                            "this account has made too many requests in the last minute; "
                            "try again later");
        } else if (op->audited || (op->runs_on_pool && op->runs_on_pool(request))) {
            if (connection->n_pending >= server->config.max_pending_requests_per_connection) {
                cc_request_fail(request, CC_EBUSY,
                                "too many requests in progress on this connection");
            } else if (server->n_requests_in_progress >= server->config.max_pending_requests) {
                cc_request_fail(request, CC_EBUSY, "the server has too many requests in progress");
            } else if (server->write_queue_bytes >= server->config.max_total_write_queue_bytes) {
                /* replies nobody is reading: take no more work until they drain */
                cc_request_fail(request, CC_EBUSY,
                                "the server holds too many unread replies; try again later");
            } else {
                int rc = queue_on_pool(connection, request);
                if (rc == 0) {
                    connection->http_waiting = connection->http;
                    return;
                }
                cc_request_fail(request, rc, NULL);
            }
        } else {
            cc_request_execute(request);
        }
    }
    connection_reply(connection, request);
    cc_request_free(request);
}

static void handle_frame(struct connection *connection, uint8_t *body, size_t len)
{
    dispatch(connection, body, len, NULL);
}

/* ---- HTTP --------------------------------------------------------------- */

/* Writes a response the server makes without a request (a parse error)
 * and closes once it is written. */
static void http_fail(struct connection *connection, struct cc_http_response *response)
{
    msgpack_sbuffer bytes = {response->len, response->data, response->len};
    response->data = NULL;
    connection_send(connection, &bytes);
    connection_drain(connection);
}

/* Translates and dispatches the request the parser holds. */
static void http_dispatch(struct connection *connection)
{
    struct cc_server *server = connection->server;
    const struct cc_http_request *request = cc_http_conn_request(connection->http_conn);
    struct cc_http_response response = {0};
    msgpack_sbuffer map;
    msgpack_sbuffer_init(&map);
    int rc = cc_http_to_request(request, ++server->http_ids, &server->cors, &map, &response);
    if (rc == 1) { /* answered by the translation (preflight, 404, 405, 400) */
        msgpack_sbuffer_destroy(&map);
        connection_send_http(connection, &response);
        return;
    }
    if (rc < 0) {
        msgpack_sbuffer_destroy(&map);
        if (cc_http_error_response(500, "NOMEM", "the server ran out of memory", request,
                                   &server->cors, NULL, true, &response) < 0) {
            connection_close(connection);
            return;
        }
        connection_send_http(connection, &response);
        return;
    }
    size_t len = map.size;
    uint8_t *body = (uint8_t *)msgpack_sbuffer_release(&map);
    if (!body) {
        connection_close(connection);
        return;
    }
    dispatch(connection, body, len, request->bearer_token ? request->bearer_token : NULL);
}

/* Parses data[0..len) on an HTTP connection, dispatching each complete
 * request; stops at one that went to the pool, keeping the bytes after it
 * for when its response is written. */
static void http_feed(struct connection *connection, const uint8_t *data, size_t len)
{
    while (connection->state != CLOSING && !connection->http_waiting &&
           !connection->http_close_after) {
        size_t used = 0;
        int rc = cc_http_feed(connection->http_conn, data, len, &used);
        data += used;
        len -= used;
        if (rc == CC_HTTP_NEED_MORE)
            return;
        if (rc == CC_HTTP_CONTINUE) {
            msgpack_sbuffer bytes;
            msgpack_sbuffer_init(&bytes);
            if (msgpack_sbuffer_write(&bytes, CC_HTTP_CONTINUE_RESPONSE,
                                      sizeof CC_HTTP_CONTINUE_RESPONSE - 1) != 0) {
                connection_close(connection);
                return;
            }
            connection_send(connection, &bytes);
            continue;
        }
        if (rc == CC_HTTP_ERROR) {
            struct cc_http_response response = {0};
            connection_log(connection, "refused a malformed or oversized HTTP request");
            if (cc_http_conn_error_response(connection->http_conn, &response) < 0)
                connection_close(connection);
            else
                http_fail(connection, &response);
            return;
        }
        http_dispatch(connection); /* CC_HTTP_REQUEST */
    }
    if (connection->http_close_after) {
        connection_drain(connection);
        return;
    }
    if (len > 0 && connection->state != CLOSING) {
        /* keep what follows the request on the pool; read no more
         * meanwhile (on TLS, the rest of what was read is decrypted in
         * pieces, so each is added to what is kept) */
        uint8_t *keep = realloc(connection->http_pending, connection->http_pending_len + len);
        if (!keep) {
            connection_close(connection);
            return;
        }
        memcpy(keep + connection->http_pending_len, data, len);
        connection->http_pending = keep;
        connection->http_pending_len += len;
    }
    if (connection->http_waiting)
        stop_reading(connection);
}

/* After the response to the request on the pool: parse what was kept,
 * then read again. */
static void http_resume(struct connection *connection)
{
    if (connection->state == CLOSING)
        return;
    if (connection->http_close_after) {
        connection_drain(connection);
        return;
    }
    uint8_t *data = connection->http_pending;
    size_t len = connection->http_pending_len;
    connection->http_pending = NULL;
    connection->http_pending_len = 0;
    connection->batching = true;
    if (len)
        http_feed(connection, data, len);
    connection->batching = false;
    free(data);
    connection_flush(connection);
    if (connection->state == SERVING && !connection->http_waiting && !connection->reading &&
        !connection->paused && start_reading(connection) < 0)
        connection_close(connection);
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct connection *connection = handle->data;
    (void)suggested;
    *buf = uv_buf_init(connection->server->read_buffer, READ_BUFFER_BYTES);
}

/* Handles plaintext data[0..len) of a connection: HTTP requests, or frames.
 * Sets *completed when a request was completed (or, on HTTP, begun). */
static void handle_input(struct connection *connection, const uint8_t *data, size_t len,
                         bool *completed)
{
    size_t offset = 0;
    if (connection->http) {
        bool was_mid = cc_http_conn_mid_request(connection->http_conn);
        uint64_t served = connection->server->n_requests_served;
        http_feed(connection, data, len);
        if (connection->server->n_requests_served != served || !was_mid)
            *completed = true;
        return;
    }
    while (offset < len && connection->state == SERVING) {
        size_t used;
        int rc = cc_frame_reader_feed(connection->reader, data + offset, len - offset, &used);
        offset += used;
        if (rc == 1) {
            uint8_t *body;
            size_t body_len;
            cc_frame_reader_take(connection->reader, &body, &body_len);
            *completed = true;
            handle_frame(connection, body, body_len);
        } else if (rc == CC_ETOOBIG && cc_frame_reader_refused_http(connection->reader)) {
            /* An HTTP client on this port: tell it so in HTTP, then close. */
            msgpack_sbuffer text;
            size_t text_len;
            const char *refusal = cc_frame_http_refusal(&text_len);
            msgpack_sbuffer_init(&text);
            cc_log("refused an HTTP request on the msgpack port");
            if (msgpack_sbuffer_write(&text, refusal, text_len) == 0)
                connection_send(connection, &text);
            else
                msgpack_sbuffer_destroy(&text);
            connection_drain(connection);
        } else if (rc == CC_ETOOBIG) {
            connection_log(connection,
                           "refused a frame declaring %" PRIu32 " bytes (limit %" PRIu32 ")",
                           cc_frame_reader_declared_bytes(connection->reader),
                           connection->server->config.max_frame_bytes);
            connection_send_error(connection, CC_ETOOBIG,
                                  "the frame is longer than max_frame_bytes");
            connection_drain(connection);
        } else if (rc < 0) {
            connection_close(connection);
        }
    }
}

/* A plaintext client on a TLS port: told in its own protocol (a msgpack
 * error frame, or HTTP 400), in plaintext, and closed. */
static void refuse_plaintext(struct connection *connection)
{
    cc_tls_free(connection->tls);
    connection->tls = NULL; /* what is written now is plaintext */
    connection_log(connection, "refused a plaintext %s client on a TLS port",
                   connection->http ? "HTTP" : "msgpack");
    if (!connection->http) {
        connection_send_error(connection, CC_EUNSUPPORTED,
                              "this port requires TLS: connect with TLS (carecount --tls)");
        connection_drain(connection);
        return;
    }
    struct cc_http_response response = {0};
    if (cc_http_error_response(400, "UNSUPPORTED", "this port requires TLS: use https://", NULL,
                               &connection->server->cors, NULL, true, &response) < 0) {
        connection_close(connection);
        return;
    }
    http_fail(connection, &response);
}

/* Ciphertext data[0..len) read on a TLS connection: decrypted, the
 * plaintext handled as it comes, and what TLS answers (the handshake, an
 * alert) written. Every record fed is used before it returns, so no
 * plaintext waits inside the session while reading is stopped. Returns
 * whether any plaintext came (the handshake alone is not a frame's start). */
static bool tls_input(struct connection *connection, const uint8_t *data, size_t len,
                      bool *completed)
{
    struct cc_server *server = connection->server;
    bool plaintext = false;
    if (!connection->tls_first_byte_seen) {
        connection->tls_first_byte_seen = true;
        if (data[0] != CC_TLS_HANDSHAKE_RECORD) {
            refuse_plaintext(connection);
            return false;
        }
    }
    if (cc_tls_feed(connection->tls, data, len) < 0) {
        connection_close(connection);
        return false;
    }
    while (connection->state == SERVING) {
        size_t n;
        bool was_done = cc_tls_handshake_done(connection->tls);
        int rc = cc_tls_read(connection->tls, server->plaintext_buffer,
                             sizeof server->plaintext_buffer, &n);
        if (rc == CC_TLS_PLAINTEXT) {
            plaintext = true;
            handle_input(connection, (const uint8_t *)server->plaintext_buffer, n, completed);
            continue;
        }
        if (rc == CC_TLS_CLOSED) {
            connection_drain(connection); /* the client's end of data: as EOF */
        } else if (rc < 0) {
            connection_log(connection, "%s: %s", was_done ? "TLS failed" : "TLS handshake failed",
                           cc_tls_error(connection->tls));
            tls_flush(connection); /* the alert that says why */
            connection_drain(connection);
        }
        break;
    }
    tls_flush(connection);
    return plaintext;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct connection *connection = stream->data;

    if (nread == 0)
        return; /* EAGAIN: nothing to do */
    if (nread < 0) {
        if (nread == UV_EOF)
            connection_drain(connection); /* finish what was asked, then close */
        else
            connection_close(connection);
        return;
    }
    connection_arm_timer(connection);
    /* Every byte already read is handled even if backpressure has paused
     * reading: the frames are in memory anyway. */
    connection->batching = true;
    bool completed = false, plaintext = true;
    if (connection->tls)
        plaintext = tls_input(connection, (const uint8_t *)buf->base, (size_t)nread, &completed);
    else
        handle_input(connection, (const uint8_t *)buf->base, (size_t)nread, &completed);
    connection->batching = false;
    /* A frame begun in this read gets its deadline; one still arriving
     * keeps the deadline it had; none pending needs none. A read of TLS
     * handshake records only changes nothing: the deadline set at the
     * accept still runs. */
    if (connection->state == SERVING && plaintext) {
        bool mid = connection->http ? cc_http_conn_mid_request(connection->http_conn) ||
                                          connection->http_waiting
                                    : cc_frame_reader_mid_frame(connection->reader);
        if (!mid || (connection->http && connection->http_waiting))
            frame_deadline(connection, false);
        else if (completed || !connection->frame_timer_armed)
            frame_deadline(connection, true);
    }
    connection_flush(connection);
}

static void on_frame_timer(uv_timer_t *timer)
{
    struct connection *connection = timer->data;
    connection->frame_timer_armed = false;
    if (connection->state != SERVING)
        return;
    connection_log(connection, "closing a connection whose frame did not arrive whole within %" PRIu64 " ms",
           connection->server->config.frame_timeout_ms);
    connection_send_error(connection, CC_ETIMEDOUT,
                          "a request frame did not arrive whole in time");
    connection_drain(connection);
}

/* Arms the frame deadline (from now) or disarms it. */
static void frame_deadline(struct connection *connection, bool arm)
{
    if (connection->state == CLOSING)
        return;
    if (!arm) {
        if (connection->frame_timer_armed)
            uv_timer_stop(&connection->frame_timer);
        connection->frame_timer_armed = false;
        return;
    }
    if (uv_timer_start(&connection->frame_timer, on_frame_timer,
                       connection->server->config.frame_timeout_ms, 0) < 0) {
        connection_close(connection);
        return;
    }
    connection->frame_timer_armed = true;
}

static void on_idle_timer(uv_timer_t *timer)
{
    struct connection *connection = timer->data;
    if (connection->state == DRAINING) {
        /* The client has not taken its replies in time: give up on them. */
        connection_close(connection);
        return;
    }
    if (connection->n_pending > 0) {
        connection_arm_timer(connection); /* working for it, so not idle */
        return;
    }
    connection_send_error(connection, CC_ETIMEDOUT, "the connection was idle too long");
    connection_drain(connection);
}

/* ---- accepting ---------------------------------------------------------- */

/* Remembers the client's address for the audit log (never logged per
 * request). */
static void note_peer(struct connection *connection)
{
    struct sockaddr_storage peer;
    int len = sizeof peer;
    connection->peer[0] = '\0';
    if (uv_tcp_getpeername(&connection->tcp, (struct sockaddr *)&peer, &len) < 0)
        return;
    if (peer.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&peer, connection->peer, sizeof connection->peer);
    else if (peer.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&peer, connection->peer, sizeof connection->peer);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct cc_server *server = listener->data;
    bool http = listener == (uv_stream_t *)&server->http_listener;
    struct connection *connection = NULL;
    int rc;

    if (status < 0) {
        cc_log("accept failed: %s", uv_strerror(status));
        return;
    }
    connection = calloc(1, sizeof(*connection));
    if (!connection)
        goto fail;
    rc = cc_frame_reader_new(server->config.max_frame_bytes, &connection->reader);
    if (rc < 0)
        goto fail;
    if (http) {
        struct cc_http_limits limits = {0, server->config.max_frame_bytes};
        connection->http = true;
        if (cc_http_conn_new(&limits, &server->cors, &connection->http_conn) < 0)
            goto fail;
    }
    if (server->tls && cc_tls_server_new(server->tls, &connection->tls) < 0)
        goto fail;
    rc = uv_tcp_init(&server->loop, &connection->tcp);
    if (rc < 0)
        goto fail;
    rc = uv_timer_init(&server->loop, &connection->idle_timer);
    if (rc == 0)
        rc = uv_timer_init(&server->loop, &connection->frame_timer);
    if (rc < 0) {
        /* The tcp handle exists: it must be closed through the loop. */
        connection->server = server;
        connection->tcp.data = connection;
        connection->n_open_handles = 1;
        connection->state = CLOSING;
        uv_close((uv_handle_t *)&connection->tcp, on_connection_handle_closed);
        goto link;
    }
    connection->server = server;
    connection->tcp.data = connection;
    connection->idle_timer.data = connection;
    connection->frame_timer.data = connection;
    connection->n_open_handles = 3;
    connection->state = SERVING;
link:
    connection->next = server->connections;
    if (server->connections)
        server->connections->prev = connection;
    server->connections = connection;
    if (connection->state == CLOSING)
        return;

    rc = uv_accept(listener, (uv_stream_t *)&connection->tcp);
    if (rc < 0) {
        cc_log("uv_accept failed: %s", uv_strerror(rc));
        connection_close(connection);
        return;
    }
    server->n_connections_accepted++;
    note_peer(connection);
    if (server->n_connections_open >= server->config.max_connections) {
        server->n_connections_refused++;
        connection_log(connection, "refused a connection: %" PRIu64 " open (max_connections)",
                       server->n_connections_open);
        if (connection->http) {
            struct cc_http_response response = {0};
            if (cc_http_error_response(503, "BUSY", "the server has too many connections", NULL,
                                       &server->cors, NULL, true, &response) == 0)
                http_fail(connection, &response);
            else
                connection_close(connection);
        } else {
            connection_send_error(connection, CC_EBUSY, "the server has too many connections");
            connection_drain(connection);
        }
        return;
    }
    connection->counted = true;
    server->n_connections_open++;
    rc = uv_tcp_nodelay(&connection->tcp, 1);
    if (rc < 0)
        cc_log("uv_tcp_nodelay failed: %s", uv_strerror(rc));
    if (start_reading(connection) < 0) {
        connection_close(connection);
        return;
    }
    connection_arm_timer(connection);
    frame_deadline(connection, true); /* the first frame: the handshake's deadline */
    return;
fail:
    /* Known limit: without memory for a handle the connection cannot be
     * accepted, and libuv stops polling the listener until one is; the
     * server then accepts nothing more until restarted. */
    cc_log("out of memory accepting a connection");
    if (connection) {
        cc_tls_free(connection->tls);
        cc_http_conn_free(connection->http_conn);
        cc_frame_reader_free(connection->reader);
        free(connection);
    }
}

/* ---- shutdown ----------------------------------------------------------- */

static void on_server_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void on_listener_closed(uv_handle_t *handle)
{
    struct cc_server *server = handle->data;
    if (handle == (uv_handle_t *)&server->http_listener)
        server->http_listener_open = false;
    else
        server->listener_open = false;
    server_maybe_finish(server);
}

/* Once stopping and every connection is gone, closes the last handles so
 * that uv_run returns. */
static void server_maybe_finish(struct cc_server *server)
{
    if (!server->stopping || server->connections || server->listener_open ||
        server->http_listener_open || server->publishing || server->reloading)
        return;
    if (server->publish_timer_open) {
        server->publish_timer_open = false;
        uv_close((uv_handle_t *)&server->publish_timer, on_server_handle_closed);
    }
    if (server->signals_open) {
        server->signals_open = false;
        uv_close((uv_handle_t *)&server->sigint_handle, on_server_handle_closed);
        uv_close((uv_handle_t *)&server->sigterm_handle, on_server_handle_closed);
        uv_close((uv_handle_t *)&server->sighup_handle, on_server_handle_closed);
    }
    if (server->shutdown_timer_open) {
        server->shutdown_timer_open = false;
        uv_close((uv_handle_t *)&server->shutdown_timer, on_server_handle_closed);
    }
}

static void close_every_connection(struct cc_server *server)
{
    /* connection_close frees nothing synchronously, so the walk is safe. */
    for (struct connection *c = server->connections; c; c = c->next)
        connection_close(c);
}

/* Cancels the requests still waiting for a pool thread (their done
 * callbacks run with UV_ECANCELED); returns how many. */
static unsigned cancel_queued(struct cc_server *server)
{
    unsigned cancelled = 0;
    for (struct pool_work *job = server->jobs; job; job = job->next)
        cancelled += uv_cancel((uv_req_t *)&job->work) == 0;
    return cancelled;
}

static void on_shutdown_timer(uv_timer_t *timer)
{
    struct cc_server *server = timer->data;
    unsigned cancelled = cancel_queued(server);
    cc_log("shutdown: closing connections whose work has not finished (%u queued requests "
           "cancelled)", cancelled);
    close_every_connection(server);
}

static void begin_shutdown(struct cc_server *server, int signum)
{
    if (server->stopping) {
        /* Requests still waiting for a pool thread are cancelled (those
         * running finish, but their replies go nowhere). */
        unsigned cancelled = cancel_queued(server);
        cc_log("signal %d again: closing every connection now (%u queued requests cancelled)",
               signum, cancelled);
        close_every_connection(server);
        return;
    }
    server->stopping = true;
    cc_log("signal %d: shutting down (%" PRIu64 " requests in progress)", signum,
           server->n_requests_in_progress);
    if (server->listener_open)
        uv_close((uv_handle_t *)&server->listener, on_listener_closed);
    if (server->http_listener_open)
        uv_close((uv_handle_t *)&server->http_listener, on_listener_closed);
    for (struct connection *c = server->connections; c; c = c->next)
        connection_drain(c);
    int rc = uv_timer_start(&server->shutdown_timer, on_shutdown_timer,
                            server->config.shutdown_timeout_ms, 0);
    if (rc < 0) {
        cc_log("uv_timer_start failed: %s", uv_strerror(rc));
        close_every_connection(server);
    }
    server_maybe_finish(server);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    begin_shutdown(handle->data, signum);
}

/* SIGHUP: publish now, off the schedule (a new store version written by an
 * ingest, and the register's changes). Never stops the server. */
static void on_sighup(uv_signal_t *handle, int signum)
{
    struct cc_server *server = handle->data;
    (void)signum;
    if (server->stopping)
        return;
    if (!server->data) {
        cc_log("SIGHUP: no data directory is served; nothing to reload or publish");
        return;
    }
    start_reload(server);
    cc_log("SIGHUP: reloading the policy and codelists, checking for a new data version now");
    if (server->publishing)
        server->publish_again = true;
    else
        start_publishing(server);
}

/* ---- public ------------------------------------------------------------- */

int cc_server_new(const struct cc_config *config, struct cc_server **out)
{
    struct cc_server *server = calloc(1, sizeof(*server));
    int rc;
    if (!server)
        return CC_ENOMEM;
    /* GSL's default error handler aborts the process on a domain error; a
     * server must get GSL's error code (a NaN) and answer with an error
     * instead. Process-wide, and set before any pool thread runs. */
    gsl_set_error_handler_off();
    server->config = *config;
    cc_policy_default(&server->no_services.policy);
    server->no_services.refs_ = 1; /* the server's, never given back */
    server->services = &server->no_services;
    pthread_mutex_init(&server->account_limit_lock, NULL);
    if (cc_peers_new(&server->peers) < 0) {
        free(server);
        return CC_ENOMEM;
    }
    if (config->tls_cert_path) {
        /* at start, so that a bad certificate or key stops the server
         * before it listens */
        char why[512];
        int tls_rc = cc_tls_server_context_new(config->tls_cert_path, config->tls_key_path,
                                               &server->tls, why, sizeof why);
        if (tls_rc < 0) {
            cc_log("cannot start: %s", why);
            cc_server_free(server);
            return tls_rc;
        }
        char not_after[64];
        if (cc_tls_context_expired(server->tls, not_after, sizeof not_after))
            cc_log("warning: the TLS certificate (tls-cert) expired on %s: clients will refuse "
                   "it; renew it and restart",
                   not_after);
    }
    rc = uv_loop_init(&server->loop);
    if (rc < 0)
        goto fail;
    server->loop_open = true;
    rc = uv_tcp_init(&server->loop, &server->listener);
    if (rc < 0)
        goto fail;
    server->listener.data = server;
    server->listener_open = true;
    server->cors.origins = server->config.cors_origins;
    server->cors.n_origins = server->config.n_cors_origins;
    if (server->config.http_listen) {
        rc = uv_tcp_init(&server->loop, &server->http_listener);
        if (rc < 0)
            goto fail;
        server->http_listener.data = server;
        server->http_listener_open = true;
    }
    rc = uv_timer_init(&server->loop, &server->shutdown_timer);
    if (rc < 0)
        goto fail;
    server->shutdown_timer.data = server;
    server->shutdown_timer_open = true;
    rc = uv_signal_init(&server->loop, &server->sigint_handle);
    if (rc < 0)
        goto fail;
    rc = uv_signal_init(&server->loop, &server->sigterm_handle);
    if (rc < 0) {
        uv_close((uv_handle_t *)&server->sigint_handle, NULL);
        goto fail;
    }
    rc = uv_signal_init(&server->loop, &server->sighup_handle);
    if (rc < 0) {
        uv_close((uv_handle_t *)&server->sigint_handle, NULL);
        uv_close((uv_handle_t *)&server->sigterm_handle, NULL);
        goto fail;
    }
    server->signals_open = true;
    server->sigint_handle.data = server;
    server->sigterm_handle.data = server;
    server->sighup_handle.data = server;
    rc = uv_signal_start(&server->sigint_handle, on_signal, SIGINT);
    if (rc < 0)
        goto fail;
    rc = uv_signal_start(&server->sigterm_handle, on_signal, SIGTERM);
    if (rc < 0)
        goto fail;
    rc = uv_signal_start(&server->sighup_handle, on_sighup, SIGHUP);
    if (rc < 0)
        goto fail;
    /* A signal that kills the server before the handles exist leaves no
     * port file: callers wait for the port file before signalling. */
    server->started_ms = uv_now(&server->loop);
    *out = server;
    return 0;
fail:
    cc_log("server start failed: %s", uv_strerror(rc));
    cc_server_free(server);
    return rc == UV_ENOMEM ? CC_ENOMEM : CC_EIO;
}

/* Writes the port to path atomically: a reader sees either no file or the
 * whole number. Written to a temporary name, flushed, then renamed. */
static int write_port_file(const char *path, uint16_t port)
{
    char tmp_path[4096];
    char text[16];
    int fd = -1;
    int len = snprintf(text, sizeof(text), "%u\n", (unsigned)port);
    if (snprintf(tmp_path, sizeof(tmp_path), "%s.tmp", path) >= (int)sizeof(tmp_path))
        return CC_EINVAL;
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto fail;
    if (write(fd, text, (size_t)len) != len)
        goto fail;
    if (fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp_path, path) != 0)
        goto fail;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp_path);
    return CC_EIO;
}

/* Binds and listens on host:port with handle; *bound gets the port. */
static int listen_on(struct cc_server *server, uv_tcp_t *handle, const char *host, uint16_t port,
                     uint16_t *bound_port)
{
    struct sockaddr_storage address;
    struct sockaddr_storage bound;
    int bound_len = sizeof(bound);
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&address);
    if (rc < 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&address);
    if (rc < 0) {
        cc_log("cannot use listen address: %s", uv_strerror(rc));
        return CC_EINVAL;
    }
    rc = uv_tcp_bind(handle, (const struct sockaddr *)&address, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)handle, LISTEN_BACKLOG, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(handle, (struct sockaddr *)&bound, &bound_len);
    if (rc < 0) {
        cc_log("cannot listen on %s port %u: %s", host, (unsigned)port, uv_strerror(rc));
        return CC_EIO;
    }
    if (bound.ss_family == AF_INET)
        *bound_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    else
        *bound_port = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
    (void)server;
    return 0;
}

int cc_server_listen(struct cc_server *server)
{
    const struct cc_config *c = &server->config;
    int rc = listen_on(server, &server->listener, c->listen_host, c->listen_port, &server->port);
    if (rc < 0)
        return rc;
    if (c->http_listen) {
        rc = listen_on(server, &server->http_listener, c->http_host, c->http_port,
                       &server->http_port);
        if (rc < 0)
            return rc;
        /* the HTTP port file first: whoever waits for --port-file finds both */
        if (c->http_port_file && write_port_file(c->http_port_file, server->http_port) < 0) {
            cc_log("cannot write the HTTP port file");
            return CC_EIO;
        }
        cc_log("listening for HTTP/JSON on %s port %u (%zu CORS origins)%s", c->http_host,
               (unsigned)server->http_port, c->n_cors_origins, server->tls ? " over TLS" : "");
    }
    if (c->port_file && write_port_file(c->port_file, server->port) < 0) {
        cc_log("cannot write the port file");
        return CC_EIO;
    }
    cc_log("listening on %s port %u%s%s", c->listen_host, (unsigned)server->port,
           server->tls ? " over TLS" : "", c->test_mode ? " (TEST MODE)" : "");
    return 0;
}

uint16_t cc_server_http_port(const struct cc_server *server)
{
    return server->http_port;
}

uint16_t cc_server_port(const struct cc_server *server)
{
    return server->port;
}

static void close_any_handle(uv_handle_t *handle, void *arg)
{
    (void)arg;
    if (!uv_is_closing(handle))
        uv_close(handle, NULL);
}

/* Closes every handle still open and the loop. Returns 0 or CC_EINTERNAL. */
static int close_loop(struct cc_server *server)
{
    if (!server->loop_open)
        return 0;
    uv_walk(&server->loop, close_any_handle, NULL);
    int rc = uv_run(&server->loop, UV_RUN_DEFAULT);
    (void)rc;
    rc = uv_loop_close(&server->loop);
    if (rc < 0) {
        cc_log("the event loop would not close: %s", uv_strerror(rc));
        return CC_EINTERNAL;
    }
    server->loop_open = false;
    return 0;
}

int cc_server_run(struct cc_server *server)
{
    server->started_ms = uv_now(&server->loop);
    int rc = uv_run(&server->loop, UV_RUN_DEFAULT);
    (void)rc; /* non-zero only if handles are left, which close_loop handles */
    rc = close_loop(server);
    if (rc == 0)
        cc_log("shut down cleanly after %" PRIu64 " requests", server->n_requests_served);
    return rc;
}

void cc_server_free(struct cc_server *server)
{
    if (!server)
        return;
    close_loop(server);
    if (server->services != &server->no_services)
        cc_services_release(server->services);
    cc_peers_free(server->peers);
    cc_tls_context_free(server->tls);
    pthread_mutex_destroy(&server->account_limit_lock);
    free(server);
}
