/*
 * bench_load.c: a load generator for carecountd, on libuv: N connections to
 * 127.0.0.1, each says hello with a token and then sends a mix of requests
 * (K in flight per connection), for a bounded duration and count; a probe
 * connection pings every 10 ms to show whether the event loop stays
 * responsive while the others run. It stops by itself and prints:
 *
 *   RESULT load mix=small connections=16 pipeline=1 requests=N seconds=S
 *          rps=R p50_ms=.. p99_ms=.. p999_ms=.. max_ms=.. errors=E refused=F
 *          busy=B ping_p50_ms=.. ping_p99_ms=.. ping_max_ms=..
 *
 *   bench_load --port PORT --token-file FILE [--connections N] [--pipeline K]
 *              [--duration-s S] [--requests N] [--mix small|heavy|ping] [--http]
 *              [--query JSON] [--check-data DIR --check-key KEY [--policy FILE]]
 *
 * --http: PORT is the HTTP listener's; every request is POST /v1/count (or
 * GET /v1/ping) with the token as a bearer, one at a time per keep-alive
 * connection (the pipeline is 1).
 *
 * --check-data, --check-key: before the load, each query of the mix is
 * answered in process, by the engine and the release layer on the same
 * data directory (as the server publishes it), and every release the
 * server sends under load must be byte-identical to it (msgpack), or to
 * the first one of its query (HTTP: the JSON bodies); "mismatched" counts
 * those that are not, and any makes the exit status 1.
 *
 * Mixes (each request a query of docs/query-model.md, sent as count):
 *  - small: tables of 1 to 18 cells (a code by sex, by region, by 10-year
 *    band; a population by region), the kind answered in microseconds;
 *  - heavy: tables of about 11,000 cells (district x 10-year band x sex,
 *    ages 0-89: 296 x 9 x 4 sex codes = 10,656 cells at 10M; with 5-year
 *    bands it is 21,312, and with 90+ the smallest cells fall below
 *    min_cell_population);
 *  - ping: the ping op only (the server's floor).
 * --query JSON: that one query instead of the mix's (the RESULT line's mix
 * is then "query"), to profile one kind of request.
 *
 * Must never: connect anywhere but 127.0.0.1; assert a time (this is a
 * benchmark, not a test); print a token.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>
#include <uv.h>

#include "cc_client.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_policy.h"
#include "cc_query.h"
#include "cc_release.h"
#include "cc_serverdata.h"
#include "cc_store.h"

#define MAX_CONNECTIONS 4096
#define READ_BYTES 65536

static const char *const small_queries[] = {
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"],"
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"
    "\"filters\":{\"conditions\":[{\"codes\":[\"44054006\"],\"system\":\"snomed\"}]}}",
    "{\"v\":1,\"measure\":\"population\",\"dimensions\":[\"region\"]}",
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[{\"name\":\"age_band\",\"bands\":\"10y\"}],"
    "\"filters\":{\"conditions\":[{\"codes\":[\"I10\"],\"system\":\"icd10\"}]}}",
};
static const char *const heavy_queries[] = {
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"lad\",{\"name\":\"age_band\","
    "\"bands\":\"10y\"},\"sex\"],\"filters\":{\"age\":{\"max\":89}}}",
};

struct options {
    uint16_t port;
    const char *token_file;
    unsigned connections, pipeline;
    double duration_s;
    uint64_t max_requests;
    const char *mix;
    bool http;
    const char *check_data, *check_key;
    const char *policy_file; /* the server's policy, for --check-data */
    const char *query;       /* --query: this one query instead of the mix's */
};

#define HTTP_BYTES (8u << 20)

struct load;

struct conn {
    struct load *load;
    uv_tcp_t tcp;
    uv_connect_t connect;
    struct cc_frame_reader *reader;
    bool probe, ready, closed;
    unsigned in_flight;
    uint64_t next_id;
    uint64_t sent_at[64]; /* by id % 64: the send time of the request */
    unsigned query_of[64]; /* by id % 64: the mix query it asked */
    char buffer[READ_BYTES];
    /* HTTP: the response read so far */
    char *http;
    size_t http_len;
};

struct load {
    struct options o;
    uv_loop_t *loop;
    uv_timer_t stop_timer, probe_timer;
    char token[CC_CLIENT_TOKEN_BYTES];
    /* the mix, packed once: request frames without the envelope's id */
    msgpack_sbuffer *bodies;
    unsigned n_bodies;
    struct conn *conns;
    unsigned n_open;
    bool stopping;
    uint64_t start_ns, stop_ns;
    uint64_t sent, done, errors, refused, busy;
    double *latency_ms;
    size_t n_latency, cap_latency;
    double *ping_ms;
    size_t n_ping, cap_ping;
    struct conn probe;
    /* the mix as JSON request bodies (HTTP) */
    char **json_bodies;
    /* --check: per mix query, the expected release (msgpack: from the
     * engine in process; HTTP: the first body seen) */
    msgpack_sbuffer *expected;
    bool *expected_set, *expected_refused;
    uint64_t checked, mismatched;
};

static void add_sample(double **v, size_t *n, size_t *cap, double x)
{
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 4096;
        double *grown = realloc(*v, c * sizeof *grown);
        if (!grown)
            return;
        *v = grown;
        *cap = c;
    }
    (*v)[(*n)++] = x;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t k = (size_t)(p * (double)(n - 1) + 0.5);
    return v[k < n ? k : n - 1];
}

/* ---- writing ---- */

struct write_req {
    uv_write_t req;
    char *data;
};

static void on_written(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    (void)status;
    free(w->data);
    free(w);
}

/* Sends {"v":1,"id":id,"op":op, ...body fields} where body is a packed
 * sequence of n_fields key/value pairs. */
static void send_request(struct conn *c, const char *op, const msgpack_sbuffer *fields,
                         uint32_t n_fields)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    msgpack_sbuffer_init(&frame);
    cc_frame_sbuffer_begin(&frame);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    uint64_t id = ++c->next_id;
    cc_client_pack_envelope(&pk, id, op, n_fields);
    if (fields && fields->size)
        msgpack_sbuffer_write(&frame, fields->data, fields->size);
    cc_frame_sbuffer_finish(&frame);
    struct write_req *w = calloc(1, sizeof *w);
    if (!w) {
        msgpack_sbuffer_destroy(&frame);
        return;
    }
    w->data = frame.data;
    uv_buf_t buf = uv_buf_init(frame.data, (unsigned)frame.size);
    c->sent_at[id % 64] = uv_hrtime();
    c->in_flight++;
    if (!c->probe)
        c->load->sent++;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(w->data);
        free(w);
    }
}

/* HTTP: sends one request (count with mix query k, or a ping). */
static void send_http(struct conn *c, bool ping, unsigned k)
{
    struct load *l = c->load;
    const char *body = ping ? "" : l->json_bodies[k];
    size_t body_len = strlen(body), cap = body_len + 512;
    char *req = malloc(cap);
    struct write_req *w = calloc(1, sizeof *w);
    if (!req || !w) {
        free(req);
        free(w);
        return;
    }
    int n = ping ? snprintf(req, cap,
                            "GET /v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Authorization: Bearer %s\r\n\r\n",
                            l->token)
                 : snprintf(req, cap,
                            "POST /v1/count HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                            "Content-Length: %zu\r\n\r\n%s",
                            l->token, body_len, body);
    w->data = req;
    uint64_t id = ++c->next_id;
    c->sent_at[id % 64] = uv_hrtime();
    c->query_of[id % 64] = k;
    c->in_flight++;
    if (!c->probe)
        l->sent++;
    uv_buf_t buf = uv_buf_init(req, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) < 0) {
        free(w->data);
        free(w);
    }
}

static bool may_send(const struct load *l)
{
    return !l->stopping && (!l->o.max_requests || l->sent < l->o.max_requests);
}

static void send_next(struct conn *c)
{
    struct load *l = c->load;
    while (c->in_flight < l->o.pipeline && may_send(l)) {
        bool ping = !strcmp(l->o.mix, "ping");
        unsigned k = ping ? 0 : (unsigned)(l->sent % l->n_bodies);
        if (l->o.http) {
            send_http(c, ping, k);
        } else if (ping) {
            send_request(c, "ping", NULL, 0);
        } else {
            c->query_of[(c->next_id + 1) % 64] = k;
            send_request(c, "count", &l->bodies[k], 1);
        }
    }
}

/* ---- reading ---- */

static void conn_close(struct conn *c);

static void on_reply(struct conn *c, const uint8_t *body, size_t len)
{
    struct load *l = c->load;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    uint64_t id = 0;
    bool ok = false;
    char code[32] = "";
    const msgpack_object *release = NULL;
    if (msgpack_unpack_next(&u, (const char *)body, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &u.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
            if (k->type != MSGPACK_OBJECT_STR)
                continue;
            if (k->via.str.size == 2 && !memcmp(k->via.str.ptr, "id", 2) &&
                v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                id = v->via.u64;
            else if (k->via.str.size == 2 && !memcmp(k->via.str.ptr, "ok", 2) &&
                     v->type == MSGPACK_OBJECT_BOOLEAN)
                ok = v->via.boolean;
            else if (k->via.str.size == 7 && !memcmp(k->via.str.ptr, "release", 7))
                release = v;
            else if (k->via.str.size == 5 && !memcmp(k->via.str.ptr, "error", 5) &&
                     v->type == MSGPACK_OBJECT_MAP)
                for (uint32_t j = 0; j < v->via.map.size; j++) {
                    const msgpack_object *ek = &v->via.map.ptr[j].key;
                    const msgpack_object *ev = &v->via.map.ptr[j].val;
                    if (ek->type == MSGPACK_OBJECT_STR && ek->via.str.size == 4 &&
                        !memcmp(ek->via.str.ptr, "code", 4) && ev->type == MSGPACK_OBJECT_STR)
                        snprintf(code, sizeof code, "%.*s", (int)ev->via.str.size, ev->via.str.ptr);
                }
        }
    }
    /* --check: the release must be the engine's, byte for byte */
    if (c->ready && !c->probe && l->expected && strcmp(l->o.mix, "ping")) {
        unsigned k = c->query_of[id % 64];
        l->checked++;
        if (l->expected_refused[k]) {
            l->mismatched += !(!ok && !strcmp(code, "REFUSED"));
        } else if (!ok || !release) {
            l->mismatched++;
        } else {
            msgpack_sbuffer got;
            msgpack_packer pk;
            msgpack_sbuffer_init(&got);
            msgpack_packer_init(&pk, &got, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, *release);
            l->mismatched += got.size != l->expected[k].size ||
                             memcmp(got.data, l->expected[k].data, got.size) != 0;
            msgpack_sbuffer_destroy(&got);
        }
    }
    msgpack_unpacked_destroy(&u);
    double ms = (double)(uv_hrtime() - c->sent_at[id % 64]) / 1e6;
    if (c->in_flight)
        c->in_flight--;
    if (!c->ready) { /* the hello */
        if (!ok) {
            fprintf(stderr, "bench_load: hello refused: %s\n", code);
            l->errors++;
            conn_close(c);
            return;
        }
        c->ready = true;
        if (!c->probe)
            send_next(c);
        return;
    }
    if (c->probe) {
        add_sample(&l->ping_ms, &l->n_ping, &l->cap_ping, ms);
        return;
    }
    l->done++;
    if (ok)
        add_sample(&l->latency_ms, &l->n_latency, &l->cap_latency, ms);
    else if (!strcmp(code, "REFUSED"))
        l->refused++;
    else if (!strcmp(code, "BUSY"))
        l->busy++;
    else
        l->errors++;
    if (may_send(l))
        send_next(c);
    else if (c->in_flight == 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = handle->data;
    (void)suggested;
    *buf = uv_buf_init(c->buffer, sizeof c->buffer);
}

/* HTTP: one whole response: the status, and the body. */
static void on_http_reply(struct conn *c, int status, const char *body, size_t len)
{
    struct load *l = c->load;
    uint64_t id = c->next_id;
    double ms = (double)(uv_hrtime() - c->sent_at[id % 64]) / 1e6;
    if (c->in_flight)
        c->in_flight--;
    if (c->probe) {
        add_sample(&l->ping_ms, &l->n_ping, &l->cap_ping, ms);
        return;
    }
    l->done++;
    if (status == 200)
        add_sample(&l->latency_ms, &l->n_latency, &l->cap_latency, ms);
    else if (status == 422)
        l->refused++;
    else if (status == 503)
        l->busy++;
    else
        l->errors++;
    if (l->expected && strcmp(l->o.mix, "ping")) {
        unsigned k = c->query_of[id % 64];
        l->checked++;
        if (status == 200 && !l->expected_set[k]) {
            msgpack_sbuffer_write(&l->expected[k], body, len);
            l->expected_set[k] = true;
        } else if (status == 200) {
            l->mismatched += len != l->expected[k].size || memcmp(body, l->expected[k].data, len);
        } else {
            l->mismatched += !(status == 422 && l->expected_refused[k]);
        }
    }
    if (may_send(l))
        send_next(c);
    else if (c->in_flight == 0)
        conn_close(c);
}

/* HTTP: takes whole responses (Content-Length bodies) off the buffer. */
static void http_feed(struct conn *c, const char *data, size_t n)
{
    if (!c->http && !(c->http = malloc(HTTP_BYTES)))
        return;
    if (c->http_len + n > HTTP_BYTES) {
        c->load->errors++;
        conn_close(c);
        return;
    }
    memcpy(c->http + c->http_len, data, n);
    c->http_len += n;
    for (;;) {
        char *end = memmem(c->http, c->http_len, "\r\n\r\n", 4);
        if (!end)
            return;
        size_t head = (size_t)(end - c->http) + 4, body = 0;
        int status = 0;
        sscanf(c->http, "HTTP/1.1 %d", &status);
        for (char *p = c->http; p < end; p++)
            if ((*p == '\n') && !strncasecmp(p + 1, "content-length:", 15))
                body = strtoul(p + 16, NULL, 10);
        if (c->http_len < head + body)
            return;
        on_http_reply(c, status, c->http + head, body);
        if (c->closed)
            return;
        memmove(c->http, c->http + head + body, c->http_len - head - body);
        c->http_len -= head + body;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        if (!c->load->stopping)
            c->load->errors++;
        conn_close(c);
        return;
    }
    if (c->load->o.http) {
        http_feed(c, buf->base, (size_t)nread);
        return;
    }
    size_t off = 0;
    while (off < (size_t)nread && !c->closed) {
        size_t used;
        int rc = cc_frame_reader_feed(c->reader, (const uint8_t *)buf->base + off,
                                      (size_t)nread - off, &used);
        off += used;
        if (rc == 1) {
            uint8_t *body;
            size_t len;
            cc_frame_reader_take(c->reader, &body, &len);
            on_reply(c, body, len);
            free(body);
        } else if (rc < 0) {
            c->load->errors++;
            conn_close(c);
            return;
        }
    }
}

static void on_closed(uv_handle_t *handle)
{
    struct conn *c = handle->data;
    struct load *l = c->load;
    cc_frame_reader_free(c->reader);
    c->reader = NULL;
    free(c->http);
    c->http = NULL;
    if (--l->n_open == 0) {
        l->stop_ns = uv_hrtime();
        uv_close((uv_handle_t *)&l->stop_timer, NULL);
        uv_close((uv_handle_t *)&l->probe_timer, NULL);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void pack_token_field(msgpack_sbuffer *out, const char *token)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, "token", 5);
    msgpack_pack_str_with_body(&pk, token, strlen(token));
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status < 0) {
        fprintf(stderr, "bench_load: connect: %s\n", uv_strerror(status));
        c->load->errors++;
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (c->load->o.http) { /* no hello: every request carries the token */
        c->ready = true;
        if (!c->probe)
            send_next(c);
        return;
    }
    msgpack_sbuffer hello;
    pack_token_field(&hello, c->load->token);
    send_request(c, "hello", &hello, 1);
    if (!c->probe)
        c->load->sent--; /* the hello is not part of the load */
    msgpack_sbuffer_destroy(&hello);
}

static int conn_start(struct load *l, struct conn *c, bool probe)
{
    struct sockaddr_in addr;
    c->load = l;
    c->probe = probe;
    if (cc_frame_reader_new(64u << 20, &c->reader) < 0)
        return -1;
    uv_tcp_init(l->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    l->n_open++;
    uv_ip4_addr("127.0.0.1", l->o.port, &addr);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connect) < 0) {
        conn_close(c);
        return -1;
    }
    return 0;
}

static void on_stop(uv_timer_t *timer)
{
    struct load *l = timer->data;
    l->stopping = true;
    for (unsigned i = 0; i < l->o.connections; i++)
        if (l->conns[i].in_flight == 0)
            conn_close(&l->conns[i]);
    conn_close(&l->probe);
}

static void on_probe(uv_timer_t *timer)
{
    struct load *l = timer->data;
    if (l->probe.ready && !l->probe.closed && l->probe.in_flight == 0 && !l->stopping) {
        if (l->o.http)
            send_http(&l->probe, true, 0);
        else
            send_request(&l->probe, "ping", NULL, 0);
    }
    /* all load connections done before the deadline: stop now */
    bool any = false;
    for (unsigned i = 0; i < l->o.connections && !any; i++)
        any = !l->conns[i].closed;
    if (!any && !l->stopping)
        on_stop(&l->stop_timer);
}

/* The queries of the mix (--query: that one only), how many in *n. */
static const char *const *mix_queries(const struct load *l, unsigned *n)
{
    if (l->o.query) {
        *n = 1;
        return &l->o.query;
    }
    if (!strcmp(l->o.mix, "heavy")) {
        *n = sizeof heavy_queries / sizeof *heavy_queries;
        return heavy_queries;
    }
    *n = sizeof small_queries / sizeof *small_queries;
    return small_queries;
}

static int pack_mix(struct load *l)
{
    unsigned n;
    const char *const *queries = mix_queries(l, &n);
    l->bodies = calloc(n, sizeof *l->bodies);
    l->json_bodies = calloc(n, sizeof *l->json_bodies);
    l->n_bodies = n;
    if (!l->bodies || !l->json_bodies)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct cc_query *q = NULL;
        char why[256];
        if (cc_query_decode_json(queries[i], strlen(queries[i]), NULL, &q, why, sizeof why)) {
            fprintf(stderr, "bench_load: mix query %u: %s\n", i, why);
            return -1;
        }
        msgpack_packer pk;
        msgpack_sbuffer_init(&l->bodies[i]);
        msgpack_packer_init(&pk, &l->bodies[i], msgpack_sbuffer_write);
        msgpack_pack_str_with_body(&pk, "query", 5);
        cc_query_pack(q, &pk);
        cc_query_free(q);
        size_t len = strlen(queries[i]) + 16;
        if (!(l->json_bodies[i] = malloc(len)))
            return -1;
        snprintf(l->json_bodies[i], len, "{\"query\":%s}", queries[i]);
    }
    return 0;
}

/* --check: answers each mix query in process, on the data directory as
 * the server publishes it, into l->expected (msgpack; HTTP keeps the first
 * body seen and notes only the refusals). */
static int prepare_check(struct load *l)
{
    unsigned n_queries;
    const char *const *queries = mix_queries(l, &n_queries);
    struct cc_serverdata *data = NULL;
    char why[512];
    if (cc_serverdata_open(l->o.check_data, l->o.check_key, &data, why, sizeof why) < 0) {
        fprintf(stderr, "bench_load: --check-data: %s\n", why);
        return -1;
    }
    l->expected = calloc(l->n_bodies, sizeof *l->expected);
    l->expected_set = calloc(l->n_bodies, sizeof *l->expected_set);
    l->expected_refused = calloc(l->n_bodies, sizeof *l->expected_refused);
    if (!l->expected || !l->expected_set || !l->expected_refused)
        return -1;
    struct cc_policy policy;
    cc_policy_default(&policy);
    if (l->o.policy_file && cc_policy_load(l->o.policy_file, &policy, why, sizeof why) < 0) {
        fprintf(stderr, "bench_load: --policy: %s\n", why);
        cc_serverdata_free(data);
        return -1;
    }
    cc_dataversion *version = cc_serverdata_version(data);
    int rc = 0;
    for (unsigned i = 0; i < l->n_bodies && rc == 0; i++) {
        msgpack_sbuffer_init(&l->expected[i]);
        struct cc_query *q = NULL;
        cc_release *r = NULL;
        struct cc_exec_options options = {0};
        if (cc_query_decode_json(queries[i], strlen(queries[i]), NULL, &q, why, sizeof why) ||
            cc_query_bind(q, cc_store_columns(cc_dataversion_store(version)), NULL, why,
                          sizeof why)) {
            fprintf(stderr, "bench_load: mix query %u: %s\n", i, why);
            rc = -1;
        } else {
            int answered = cc_release_answer(&policy, NULL, version, q, &options, &r, why,
                                             sizeof why);
            if (answered == CC_EREFUSED) {
                l->expected_refused[i] = true;
            } else if (answered != 0) {
                fprintf(stderr, "bench_load: mix query %u: %s\n", i, why);
                rc = -1;
            } else if (!l->o.http) {
                msgpack_packer pk;
                msgpack_packer_init(&pk, &l->expected[i], msgpack_sbuffer_write);
                rc = cc_release_pack(r, &pk) == 0 ? 0 : -1;
            }
        }
        cc_release_free(r);
        cc_query_free(q);
    }
    cc_serverdata_free(data);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_load --port PORT --token-file FILE [--connections N]\n"
                    "       [--pipeline K] [--duration-s S] [--requests N] "
                    "[--mix small|heavy|ping] [--query JSON] [--http]\n"
                    "       [--check-data DIR --check-key KEY [--policy FILE]]\n");
}

int main(int argc, char **argv)
{
    struct load l;
    memset(&l, 0, sizeof l);
    l.o = (struct options){0, NULL, 16, 1, 10.0, 0, "small", false, NULL, NULL, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--http")) {
            l.o.http = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(argv[i], "--port"))
            l.o.port = (uint16_t)atoi(v);
        else if (!strcmp(argv[i], "--token-file"))
            l.o.token_file = v;
        else if (!strcmp(argv[i], "--connections"))
            l.o.connections = (unsigned)atoi(v);
        else if (!strcmp(argv[i], "--pipeline"))
            l.o.pipeline = (unsigned)atoi(v);
        else if (!strcmp(argv[i], "--duration-s"))
            l.o.duration_s = atof(v);
        else if (!strcmp(argv[i], "--requests"))
            l.o.max_requests = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--mix"))
            l.o.mix = v;
        else if (!strcmp(argv[i], "--query"))
            l.o.query = v;
        else if (!strcmp(argv[i], "--check-data"))
            l.o.check_data = v;
        else if (!strcmp(argv[i], "--check-key"))
            l.o.check_key = v;
        else if (!strcmp(argv[i], "--policy"))
            l.o.policy_file = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!l.o.port || !l.o.token_file || l.o.connections < 1 ||
        l.o.connections > MAX_CONNECTIONS || l.o.pipeline < 1 || l.o.pipeline > 64 ||
        l.o.duration_s <= 0 ||
        (strcmp(l.o.mix, "small") && strcmp(l.o.mix, "heavy") && strcmp(l.o.mix, "ping")) ||
        !l.o.check_data != !l.o.check_key) {
        usage();
        return 2;
    }
    if (l.o.http)
        l.o.pipeline = 1;
    char why[512];
    if (cc_client_read_token(l.o.token_file, l.token, why, sizeof why) < 0) {
        fprintf(stderr, "bench_load: %s\n", why);
        return 2;
    }
    if (strcmp(l.o.mix, "ping") && pack_mix(&l) < 0)
        return 1;
    if (l.o.check_data && strcmp(l.o.mix, "ping") && prepare_check(&l) < 0)
        return 1;
    l.loop = uv_default_loop();
    l.conns = calloc(l.o.connections, sizeof *l.conns);
    if (!l.conns)
        return 1;
    uv_timer_init(l.loop, &l.stop_timer);
    uv_timer_init(l.loop, &l.probe_timer);
    l.stop_timer.data = l.probe_timer.data = &l;
    l.start_ns = uv_hrtime();
    for (unsigned i = 0; i < l.o.connections; i++)
        conn_start(&l, &l.conns[i], false);
    conn_start(&l, &l.probe, true);
    uv_timer_start(&l.stop_timer, on_stop, (uint64_t)(l.o.duration_s * 1000), 0);
    uv_timer_start(&l.probe_timer, on_probe, 10, 10);
    uv_run(l.loop, UV_RUN_DEFAULT);
    uv_loop_close(l.loop);

    double seconds = (double)(l.stop_ns - l.start_ns) / 1e9;
    /* (no samples: nothing to sort, and qsort must not see a NULL) */
    if (l.n_latency)
        qsort(l.latency_ms, l.n_latency, sizeof *l.latency_ms, compare_doubles);
    if (l.n_ping)
        qsort(l.ping_ms, l.n_ping, sizeof *l.ping_ms, compare_doubles);
    printf("RESULT load mix=%s connections=%u pipeline=%u requests=%" PRIu64 " seconds=%.2f "
           "rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%" PRIu64
           " refused=%" PRIu64 " busy=%" PRIu64 " ping_p50_ms=%.3f ping_p99_ms=%.3f "
           "ping_max_ms=%.3f protocol=%s checked=%" PRIu64 " mismatched=%" PRIu64 "\n",
           l.o.query ? "query" : l.o.mix, l.o.connections, l.o.pipeline, l.done, seconds,
           seconds > 0 ? (double)l.done / seconds : 0, percentile(l.latency_ms, l.n_latency, 0.5),
           percentile(l.latency_ms, l.n_latency, 0.99),
           percentile(l.latency_ms, l.n_latency, 0.999),
           l.n_latency ? l.latency_ms[l.n_latency - 1] : 0, l.errors, l.refused, l.busy,
           percentile(l.ping_ms, l.n_ping, 0.5), percentile(l.ping_ms, l.n_ping, 0.99),
           l.n_ping ? l.ping_ms[l.n_ping - 1] : 0, l.o.http ? "http" : "msgpack", l.checked,
           l.mismatched);
    memset(l.token, 0, sizeof l.token);
    for (unsigned i = 0; i < l.n_bodies; i++) {
        msgpack_sbuffer_destroy(&l.bodies[i]);
        free(l.json_bodies[i]);
        if (l.expected)
            msgpack_sbuffer_destroy(&l.expected[i]);
    }
    free(l.bodies);
    free(l.json_bodies);
    free(l.expected);
    free(l.expected_set);
    free(l.expected_refused);
    free(l.conns);
    free(l.latency_ms);
    free(l.ping_ms);
    return l.errors || l.mismatched ? 1 : 0;
}
