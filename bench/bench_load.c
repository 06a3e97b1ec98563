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
 *              [--duration-s S] [--requests N] [--mix small|heavy|ping]
 *
 * Mixes (each request a query of docs/query-model.md, sent as count):
 *  - small: tables of 1 to 18 cells (a code by sex, by region, by 10-year
 *    band; a population by region), the kind answered in microseconds;
 *  - heavy: tables of about 11,000 cells (district x 5-year band x sex);
 *  - ping: the ping op only (the server's floor).
 *
 * Must never: connect anywhere but 127.0.0.1; assert a time (this is a
 * benchmark, not a test); print a token.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <uv.h>

#include "cc_client.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_query.h"

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
    "\"bands\":\"5y\"},\"sex\"]}",
};

struct options {
    uint16_t port;
    const char *token_file;
    unsigned connections, pipeline;
    double duration_s;
    uint64_t max_requests;
    const char *mix;
};

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
    char buffer[READ_BYTES];
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

static bool may_send(const struct load *l)
{
    return !l->stopping && (!l->o.max_requests || l->sent < l->o.max_requests);
}

static void send_next(struct conn *c)
{
    struct load *l = c->load;
    while (c->in_flight < l->o.pipeline && may_send(l)) {
        if (!strcmp(l->o.mix, "ping")) {
            send_request(c, "ping", NULL, 0);
        } else {
            unsigned k = (unsigned)(l->sent % l->n_bodies);
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

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    if (nread < 0) {
        if (!c->load->stopping)
            c->load->errors++;
        conn_close(c);
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
    if (l->probe.ready && !l->probe.closed && l->probe.in_flight == 0 && !l->stopping)
        send_request(&l->probe, "ping", NULL, 0);
    /* all load connections done before the deadline: stop now */
    bool any = false;
    for (unsigned i = 0; i < l->o.connections && !any; i++)
        any = !l->conns[i].closed;
    if (!any && !l->stopping)
        on_stop(&l->stop_timer);
}

static int pack_mix(struct load *l)
{
    const char *const *queries = !strcmp(l->o.mix, "heavy") ? heavy_queries : small_queries;
    unsigned n = !strcmp(l->o.mix, "heavy") ? sizeof heavy_queries / sizeof *heavy_queries
                                            : sizeof small_queries / sizeof *small_queries;
    l->bodies = calloc(n, sizeof *l->bodies);
    l->n_bodies = n;
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
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_load --port PORT --token-file FILE [--connections N]\n"
                    "       [--pipeline K] [--duration-s S] [--requests N] "
                    "[--mix small|heavy|ping]\n");
}

int main(int argc, char **argv)
{
    struct load l;
    memset(&l, 0, sizeof l);
    l.o = (struct options){0, NULL, 16, 1, 10.0, 0, "small"};
    for (int i = 1; i < argc; i++) {
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
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!l.o.port || !l.o.token_file || l.o.connections < 1 ||
        l.o.connections > MAX_CONNECTIONS || l.o.pipeline < 1 || l.o.pipeline > 64 ||
        l.o.duration_s <= 0 ||
        (strcmp(l.o.mix, "small") && strcmp(l.o.mix, "heavy") && strcmp(l.o.mix, "ping"))) {
        usage();
        return 2;
    }
    char why[512];
    if (cc_client_read_token(l.o.token_file, l.token, why, sizeof why) < 0) {
        fprintf(stderr, "bench_load: %s\n", why);
        return 2;
    }
    if (strcmp(l.o.mix, "ping") && pack_mix(&l) < 0)
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
    qsort(l.latency_ms, l.n_latency, sizeof *l.latency_ms, compare_doubles);
    qsort(l.ping_ms, l.n_ping, sizeof *l.ping_ms, compare_doubles);
    printf("RESULT load mix=%s connections=%u pipeline=%u requests=%" PRIu64 " seconds=%.2f "
           "rps=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f errors=%" PRIu64
           " refused=%" PRIu64 " busy=%" PRIu64 " ping_p50_ms=%.3f ping_p99_ms=%.3f "
           "ping_max_ms=%.3f\n",
           l.o.mix, l.o.connections, l.o.pipeline, l.done, seconds,
           seconds > 0 ? (double)l.done / seconds : 0, percentile(l.latency_ms, l.n_latency, 0.5),
           percentile(l.latency_ms, l.n_latency, 0.99),
           percentile(l.latency_ms, l.n_latency, 0.999),
           l.n_latency ? l.latency_ms[l.n_latency - 1] : 0, l.errors, l.refused, l.busy,
           percentile(l.ping_ms, l.n_ping, 0.5), percentile(l.ping_ms, l.n_ping, 0.99),
           l.n_ping ? l.ping_ms[l.n_ping - 1] : 0);
    memset(l.token, 0, sizeof l.token);
    for (unsigned i = 0; i < l.n_bodies; i++)
        msgpack_sbuffer_destroy(&l.bodies[i]);
    free(l.bodies);
    free(l.conns);
    free(l.latency_ms);
    free(l.ping_ms);
    return l.errors ? 1 : 0;
}
