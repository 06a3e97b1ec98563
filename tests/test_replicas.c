/*
 * Replicas (docs/scale.md): two read-only carecountd processes serving one
 * data directory, behind a real load balancer (HAProxy, Debian's package,
 * started here on loopback ports with a config written into the test's
 * temporary directory: `mode tcp` for the msgpack port, `mode http` for
 * the HTTP listener, round robin, health checks, a stats socket).
 *
 * What is shown, with the real generator, ingest, server and balancer:
 *  - the same request, through the balancer and to each replica directly,
 *    gets byte-identical reply frames (the release and its envelope): a
 *    count, one with several restrictions (the condition noise layer), a
 *    low-effect refusal, a ledger refusal, a comparison, and a saved query
 *    over HTTP (byte-identical bodies);
 *  - the balancer spreads connections and requests over both replicas
 *    (HAProxy's own counters, from its stats socket);
 *  - an ingest while both serve publishes a new store version that both
 *    serve after SIGHUP, byte-identical again, and so does an opt-out
 *    recorded while they serve;
 *  - one replica killed, the balancer keeps serving from the other;
 *  - the replicas share one ledger and one audit chain through state.db:
 *    requests of one account sent to both at once leave a chain that
 *    `carecount audit verify` accepts, with every record; the second half
 *    of a differencing pair sent to the other replica is refused, also
 *    when both halves arrive at once; and no replica holds the writer
 *    lock.
 * Never asserts a time: every wait is bounded, none is measured.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_client.h"
#include "cc_datadir.h"
#include "cc_frame.h"
#include "cc_harness.h"
#include "cc_msgpack.h"
#include "cc_query.h"
#include "cc_testfs.h"
#include "cc_testquery.h"

#define N_REPLICAS 2
#define WAIT_MS 60000 /* bounds every wait: a hang fails, nothing is timed */

#define BY_REGION_E11                                                                              \
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"                                \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"
/* two restrictions: the condition layer's seed sums both */
#define BY_SEX_E11_UNDER_70                                                                        \
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"],"                                   \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}],"                    \
    "\"age\":{\"max\":69}}}"
/* the same condition twice: the second changes nothing (low-effect) */
#define E11_TWICE                                                                                  \
    "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["                               \
    "{\"codes\":[\"E11\"],\"system\":\"icd10\"},{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"
/* E10 or E11: differs from E11 alone by the few E10 patients, a
 * differencing pair with BY_REGION_E11 for the ledger */
#define BY_SEX_DIABETES                                                                            \
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"],"                                   \
    "\"filters\":{\"conditions\":[{\"codelist\":\"diabetes\"}]}}"
#define E11_NUMERATOR                                                                              \
    "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"                                \
    "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"

static char root[256], data_dir[300], key_path[300];

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

/* The generated feeds, with the last 30% of the hospital episodes held
 * back in ROOT/late/ for a second ingest (a new store version with more
 * E11 patients). */
static void setup(void)
{
    char cmd[4096];
    cc_testfs_make_dir(root, sizeof root, "replicas");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 4000 --seed 5 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s/key' >/dev/null && mkdir '%s/late' && "
             "cd '%s/feeds' && n=$(wc -l < hes_apc.csv) && k=$((n * 7 / 10)) && "
             "head -1 hes_apc.csv > ../late/hes_apc.csv && "
             "tail -n +$k hes_apc.csv >> ../late/hes_apc.csv && "
             "head -n $((k - 1)) hes_apc.csv > early.tmp && mv early.tmp hes_apc.csv && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s/key' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, root, root, root, CC_BIN_DIR, data_dir, root, root);
    run(cmd);
    char path[400];
    snprintf(path, sizeof path, "%s/codelists", data_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cc_testfs_write_text_in(path, "diabetes.icd10.csv",
                            "code,term\nE10,Type 1 diabetes\nE11,Type 2 diabetes\n");
    snprintf(path, sizeof path, "%s/saved", data_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cc_testfs_write_text_in(path, "diabetes-by-region.json", BY_REGION_E11);
    make_account("rita", CC_ROLE_RESEARCHER);
    make_account("rosa", CC_ROLE_RESEARCHER);
    make_account("rex", CC_ROLE_RESEARCHER);
    make_account("ruth", CC_ROLE_RESEARCHER);
    make_account("ray", CC_ROLE_RESEARCHER);
    make_account("rhea", CC_ROLE_RESEARCHER);
    make_account("paul", CC_ROLE_PLANNER);
    make_account("dash", CC_ROLE_DASHBOARD);
    make_account("dash2", CC_ROLE_DASHBOARD);
    make_account("dash3", CC_ROLE_DASHBOARD);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(replicas, .init = setup, .fini = teardown, .timeout = 300);

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static char *token_of(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    size_t len;
    char *token = cc_testfs_read(path, &len);
    while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
        token[--len] = '\0';
    return token;
}

/* A free loopback port (bound, read, closed: HAProxy binds it next). */
static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

/* ---- the cluster: replicas and the balancer ------------------------------ */

struct cluster {
    struct cc_harness *replica[N_REPLICAS];
    uint16_t port[N_REPLICAS], http_port[N_REPLICAS];
    bool killed[N_REPLICAS];
    pid_t haproxy; /* 0: none */
    uint16_t lb_port, lb_http_port;
    char stats_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* The cluster of the test running, for the diagnostics of a failure. */
static const struct cluster *running;

static void start_replicas(struct cluster *c)
{
    running = c;
    memset(c, 0, sizeof *c);
    const char *args[] = {"--data", data_dir, "--key", key_path, "--http-listen", "127.0.0.1:0",
                          NULL};
    for (int i = 0; i < N_REPLICAS; i++) {
        cr_assert_eq(cc_harness_start(args, &c->replica[i]), 0, "replica %d did not start", i);
        c->port[i] = cc_harness_port(c->replica[i]);
        c->http_port[i] = cc_harness_http_port(c->replica[i]);
        cr_assert_gt(c->http_port[i], 0);
    }
}

/* HAProxy's CSV statistics ("show stat" on the stats socket), malloc'd. */
static char *haproxy_stats(const struct cluster *c)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, c->stats_socket, sizeof addr.sun_path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return NULL;
    }
    static const char command[] = "show stat\n";
    cr_assert_eq(write(fd, command, sizeof command - 1), (ssize_t)(sizeof command - 1));
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            text = realloc(text, cap);
            cr_assert_not_null(text);
        }
        ssize_t got = read(fd, text + len, cap - 1 - len);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    text[len] = '\0';
    return text;
}

/* Field `column` (a name of the CSV header) of the row of server `server`
 * in proxy `proxy`, into out; false if there is no such row. */
static bool stat_field(const char *stats, const char *proxy, const char *server,
                       const char *column, char *out, size_t out_bytes)
{
    const char *header = strstr(stats, "# ");
    cr_assert_not_null(header, "no CSV header: %s", stats);
    int index = -1, i = 0;
    for (const char *p = header + 2; *p && *p != '\n'; i++) {
        size_t n = strcspn(p, ",\n");
        if (n == strlen(column) && !strncmp(p, column, n))
            index = i;
        p += n + (p[n] == ',');
    }
    cr_assert_geq(index, 0, "no column %s", column);
    char prefix[128];
    snprintf(prefix, sizeof prefix, "\n%s,%s,", proxy, server);
    const char *row = strstr(stats, prefix);
    if (!row)
        return false;
    row++;
    for (i = 0; i < index; i++) {
        row += strcspn(row, ",\n");
        if (*row != ',')
            return false;
        row++;
    }
    size_t n = strcspn(row, ",\n");
    snprintf(out, out_bytes, "%.*s", (int)n, row);
    return true;
}

static bool server_up(const char *stats, const char *proxy, const char *server)
{
    char status[32];
    return stat_field(stats, proxy, server, "status", status, sizeof status) &&
           !strncmp(status, "UP", 2);
}

static uint64_t server_sessions(const struct cluster *c, const char *proxy, const char *server)
{
    char *stats = haproxy_stats(c);
    cr_assert_not_null(stats);
    char value[32];
    cr_assert(stat_field(stats, proxy, server, "stot", value, sizeof value), "%s", stats);
    free(stats);
    return strtoull(value, NULL, 10);
}

/* Waits until HAProxy counts each replica of both backends as up (want) or
 * replica `down` as down (want false for it only). */
static void wait_servers(const struct cluster *c, int down)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        char *stats = haproxy_stats(c);
        bool ready = stats != NULL;
        for (int i = 0; ready && i < N_REPLICAS; i++) {
            char name[16];
            snprintf(name, sizeof name, "r%d", i + 1);
            bool want_up = i != down;
            ready = server_up(stats, "replicas_msgpack", name) == want_up &&
                    server_up(stats, "replicas_http", name) == want_up;
        }
        free(stats);
        if (ready)
            return;
        cr_assert_lt(now_ms(), deadline, "HAProxy did not see the replicas as expected in time");
        sleep_ms(50);
    }
}

/* The config the test runs, as docs/scale.md shows it. */
static void write_haproxy_config(const struct cluster *c, const char *path)
{
    char text[4096];
    int n = snprintf(text, sizeof text,
                     "global\n"
                     "    maxconn 1024\n"
                     "    stats socket %s mode 600 level admin\n"
                     "    log stderr format raw local0 info\n"
                     "defaults\n"
                     "    log global\n"
                     "    timeout connect 5s\n"
                     "    timeout client 5m\n"
                     "    timeout server 5m\n"
                     "    retries 3\n"
                     "    option redispatch\n"
                     "frontend msgpack\n"
                     "    mode tcp\n"
                     "    bind 127.0.0.1:%u\n"
                     "    default_backend replicas_msgpack\n"
                     "    option tcplog\n"
                     "backend replicas_msgpack\n"
                     "    mode tcp\n"
                     "    balance roundrobin\n"
                     "    default-server check inter 200ms fall 2 rise 1\n",
                     c->stats_socket, c->lb_port);
    for (int i = 0; i < N_REPLICAS; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "    server r%d 127.0.0.1:%u\n", i + 1,
                      c->port[i]);
    n += snprintf(text + n, sizeof text - (size_t)n,
                  "frontend http\n"
                  "    mode http\n"
                  "    option httplog\n"
                  "    bind 127.0.0.1:%u\n"
                  "    default_backend replicas_http\n"
                  "backend replicas_http\n"
                  "    mode http\n"
                  "    balance roundrobin\n"
                  "    option httpchk\n"
                  "    http-check send meth GET uri /v1/ping ver HTTP/1.1 hdr Host localhost\n"
                  "    http-check expect status 200\n"
                  "    default-server check inter 200ms fall 2 rise 1\n",
                  c->lb_http_port);
    for (int i = 0; i < N_REPLICAS; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "    server r%d 127.0.0.1:%u\n", i + 1,
                      c->http_port[i]);
    cr_assert_lt((size_t)n, sizeof text);
    cc_testfs_write_text(path, text);
}

/* Starts haproxy on two free ports; returns false (to try other ports) if
 * it exited because another process took one of them in the meantime. */
static bool try_start_haproxy(struct cluster *c, const char *config, const char *log)
{
    c->lb_port = free_port();
    c->lb_http_port = free_port();
    write_haproxy_config(c, config);
    fflush(NULL);
    pid_t test_pid = getpid();
    c->haproxy = fork();
    cr_assert_geq(c->haproxy, 0);
    if (c->haproxy == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        close(fd);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != test_pid)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        /* -db: stay in the foreground, a child of the test */
        execlp("haproxy", "haproxy", "-db", "-f", config, (char *)NULL);
        execl("/usr/sbin/haproxy", "haproxy", "-db", "-f", config, (char *)NULL);
        _exit(127);
    }
    uint64_t deadline = now_ms() + WAIT_MS;
    for (;;) {
        int status;
        if (waitpid(c->haproxy, &status, WNOHANG) == c->haproxy) {
            c->haproxy = 0;
            size_t len;
            char *text = cc_testfs_read(log, &len);
            bool taken = strstr(text, "Address already in use") != NULL;
            if (!taken)
                cr_assert_fail("haproxy exited (status %d; is the haproxy package installed? "
                               "scripts/deps.sh installs it):\n%s",
                               status, text);
            free(text);
            return false;
        }
        char *stats = haproxy_stats(c);
        bool up = stats != NULL;
        free(stats);
        if (up)
            return true;
        cr_assert_lt(now_ms(), deadline, "haproxy did not start in time");
        sleep_ms(20);
    }
}

static void start_haproxy(struct cluster *c)
{
    char config[400], log[400];
    int n = snprintf(c->stats_socket, sizeof c->stats_socket, "%s/haproxy.sock", root);
    cr_assert(n > 0 && (size_t)n < sizeof c->stats_socket, "the socket path is too long");
    snprintf(config, sizeof config, "%s/haproxy.cfg", root);
    snprintf(log, sizeof log, "%s/haproxy.log", root);
    int attempt = 0;
    while (!try_start_haproxy(c, config, log))
        cr_assert_lt(++attempt, 5, "haproxy found its ports taken %d times", attempt);
    wait_servers(c, -1);
}

static void stop_cluster(struct cluster *c)
{
    if (c->haproxy > 0) {
        kill(c->haproxy, SIGTERM);
        waitpid(c->haproxy, NULL, 0);
        c->haproxy = 0;
    }
    for (int i = 0; i < N_REPLICAS; i++) {
        if (!c->replica[i])
            continue;
        int status = -1;
        cr_assert_eq(cc_harness_stop(c->replica[i], &status), 0);
        if (!c->killed[i])
            cr_assert_eq(status, 0, "replica %d exited with %d", i, status);
        cc_harness_free(c->replica[i]);
        c->replica[i] = NULL;
    }
}

/* ---- requests ----------------------------------------------------------- */

struct frame {
    uint8_t *data;
    size_t len;
};

static void pack_text(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* A request frame: op "count" with {"query": JSON}, "compare" with a
 * comparison of the numerator JSON by region, proportion, national. */
static msgpack_sbuffer request_frame(uint64_t id, const char *op, const char *json)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    msgpack_sbuffer_init(&frame);
    cr_assert_eq(cc_frame_sbuffer_begin(&frame), 0);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    cc_client_pack_envelope(&pk, id, op, 1);
    struct cc_query *query = cc_testquery_from_json(json);
    if (!strcmp(op, "count")) {
        pack_text(&pk, "query");
        cr_assert_eq(cc_query_pack(query, &pk), 0);
    } else {
        pack_text(&pk, "comparison");
        msgpack_pack_map(&pk, 5);
        pack_text(&pk, "v");
        msgpack_pack_uint64(&pk, 1);
        pack_text(&pk, "numerator");
        cr_assert_eq(cc_query_pack(query, &pk), 0);
        pack_text(&pk, "level");
        pack_text(&pk, "region");
        pack_text(&pk, "method");
        pack_text(&pk, "proportion");
        pack_text(&pk, "comparator");
        pack_text(&pk, "national");
    }
    cc_query_free(query);
    cr_assert_eq(cc_frame_sbuffer_finish(&frame), 0);
    return frame;
}

/* What HAProxy and the replicas logged, and HAProxy's counters: printed
 * when a request fails, to tell a dead replica from a refused one. */
static void print_diagnostics(uint16_t port)
{
    char path[400];
    snprintf(path, sizeof path, "%s/haproxy.log", root);
    size_t len;
    char *log = access(path, R_OK) == 0 ? cc_testfs_read(path, &len) : NULL;
    fprintf(stderr, "a request to port %u failed; haproxy.log:\n%s\n", port, log ? log : "");
    free(log);
    if (running && running->haproxy > 0) {
        char *stats = haproxy_stats(running);
        fprintf(stderr, "haproxy's statistics:\n%s\n", stats ? stats : "(none)");
        free(stats);
    }
    for (int i = 0; running && i < N_REPLICAS; i++) {
        char *text = running->replica[i] ? cc_harness_log(running->replica[i]) : NULL;
        fprintf(stderr, "replica %d (port %u) log:\n%s\n", i + 1, running->port[i],
                text ? text : "");
        free(text);
    }
}

static struct cc_client *login(uint16_t port, const char *account)
{
    struct cc_client *client = NULL;
    cr_assert_eq(cc_client_connect("127.0.0.1", port, CC_HARNESS_CLIENT_TIMEOUT_MS, &client), 0,
                 "cannot connect to port %u", port);
    char *token = token_of(account), err[256];
    int rc = cc_client_hello(client, token, err, sizeof err);
    free(token);
    if (rc != 0)
        print_diagnostics(port);
    cr_assert_eq(rc, 0, "%s", err);
    return client;
}

/* Connects to port, says hello as account, sends frame, and returns the
 * reply frame's body, exactly as it came. */
static struct frame ask(uint16_t port, const char *account, const msgpack_sbuffer *request)
{
    struct cc_client *client = login(port, account);
    cr_assert_eq(cc_client_send_raw(client, request->data, request->size), 0);
    struct frame reply = {NULL, 0};
    cr_assert_eq(cc_client_recv_frame(client, &reply.data, &reply.len), 1, "no reply");
    cc_client_close(client);
    return reply;
}

/* The reply's "ok", and its error code (or "") into code. */
static bool reply_ok(const struct frame *reply, char *code, size_t code_bytes,
                     const char *must_have)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    cr_assert_eq(msgpack_unpack_next(&unpacked, (const char *)reply->data, reply->len, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *ok = cc_msgpack_map_get(&unpacked.data, "ok");
    cr_assert(ok && ok->type == MSGPACK_OBJECT_BOOLEAN);
    code[0] = '\0';
    if (!ok->via.boolean) {
        const msgpack_object *error = cc_msgpack_map_get(&unpacked.data, "error");
        const msgpack_object *c = error ? cc_msgpack_map_get(error, "code") : NULL;
        cr_assert(c && c->type == MSGPACK_OBJECT_STR);
        snprintf(code, code_bytes, "%.*s", (int)c->via.str.size, c->via.str.ptr);
    } else if (must_have) {
        cr_assert_not_null(cc_msgpack_map_get(&unpacked.data, must_have), "no %s", must_have);
    }
    bool result = ok->via.boolean;
    msgpack_unpacked_destroy(&unpacked);
    return result;
}

static uint64_t reply_data_version(const struct frame *reply)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    cr_assert_eq(msgpack_unpack_next(&unpacked, (const char *)reply->data, reply->len, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *v = cc_msgpack_map_get(&unpacked.data, "data_version");
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t version = v->via.u64;
    msgpack_unpacked_destroy(&unpacked);
    return version;
}

static void assert_same(const struct frame *a, const struct frame *b, const char *what)
{

    cr_assert(a->len == b->len && !memcmp(a->data, b->data, a->len),
              "%s: the replies differ (%zu and %zu bytes)", what, a->len, b->len);
}

/* Asks the same request through the balancer twice (round robin: one
 * connection to each replica) and to each replica directly; every reply
 * must be the same bytes. Returns the first (the caller frees data), with
 * the expected outcome checked: expect_code "" for ok (with field
 * must_have), else the error code. */
static struct frame ask_everywhere(const struct cluster *c, const char *account, const char *op,
                                   const char *json, const char *expect_code,
                                   const char *must_have)
{
    msgpack_sbuffer request = request_frame(7, op, json);
    struct frame first = ask(c->lb_port, account, &request);
    char code[32];
    bool ok = reply_ok(&first, code, sizeof code, must_have);
    cr_assert_str_eq(code, expect_code, "%s %s: got %s", op, json, code);
    cr_assert_eq(ok, !expect_code[0]);
    struct frame again = ask(c->lb_port, account, &request);
    assert_same(&first, &again, "the balancer, twice");
    free(again.data);
    for (int i = 0; i < N_REPLICAS; i++) {
        if (c->killed[i])
            continue;
        struct frame direct = ask(c->port[i], account, &request);
        assert_same(&first, &direct, i ? "the balancer and replica 2" : "the balancer and replica 1");
        free(direct.data);
    }
    msgpack_sbuffer_destroy(&request);
    return first;
}

/* POSTs body to path on port with account's token, with curl; returns the
 * HTTP status and the body (malloc'd) in *out. */
static int http_post(uint16_t port, const char *account, const char *path, const char *body,
                     char **out)
{
    char cmd[2048], in_path[400], out_path[400];
    snprintf(in_path, sizeof in_path, "%s/http.in", root);
    snprintf(out_path, sizeof out_path, "%s/http.out", root);
    cc_testfs_write_text(in_path, body);
    snprintf(cmd, sizeof cmd,
             "curl -s -o '%s' -w '%%{http_code}' -X POST "
             "-H \"Authorization: Bearer $(cat '%s/%s.token')\" "
             "-H 'Content-Type: application/json' --data-binary @'%s' 'http://127.0.0.1:%u%s'",
             out_path, root, account, in_path, port, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    int status = 0;
    cr_assert_eq(fscanf(p, "%d", &status), 1, "curl printed no status: %s", cmd);
    pclose(p);
    size_t len;
    *out = cc_testfs_read(out_path, &len);
    return status;
}

/* The saved query over HTTP: through the balancer twice and to each replica,
 * the same body. */
static void saved_over_http_everywhere(const struct cluster *c, const char *account)
{
    static const char body[] = "{\"name\":\"diabetes-by-region\"}";
    char *first = NULL, *other = NULL;
    cr_assert_eq(http_post(c->lb_http_port, account, "/v1/saved", body, &first), 200, "%s", first);
    cr_assert(strstr(first, "\"release\""), "%s", first);
    cr_assert_eq(http_post(c->lb_http_port, account, "/v1/saved", body, &other), 200);
    cr_assert_str_eq(other, first, "the balancer, twice");
    free(other);
    for (int i = 0; i < N_REPLICAS; i++) {
        if (c->killed[i])
            continue;
        cr_assert_eq(http_post(c->http_port[i], account, "/v1/saved", body, &other), 200);
        cr_assert_str_eq(other, first, "the balancer and replica %d", i + 1);
        free(other);
    }
    free(first);
}

/* Polls each live replica until it serves store version `version` in its
 * publication `publication` or a later one. */
static void wait_for_version(const struct cluster *c, uint64_t version, uint64_t publication)
{
    for (int i = 0; i < N_REPLICAS; i++) {
        if (c->killed[i])
            continue;
        uint64_t deadline = now_ms() + WAIT_MS;
        for (;;) {
            struct cc_client *client = login(c->port[i], "rita");
            struct cc_reply reply;
            cr_assert_eq(cc_client_call_simple(client, 2, "status", &reply), 1);
            const msgpack_object *v = cc_reply_get(&reply, "data_version");
            const msgpack_object *p = cc_reply_get(&reply, "data_publication");
            cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            cr_assert(p && p->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
            uint64_t served = v->via.u64, published = p->via.u64;
            cc_reply_free(&reply);
            cc_client_close(client);
            if (served == version && published >= publication)
                break;
            cr_assert_lt(now_ms(), deadline, "replica %d still serves version %llu", i + 1,
                         (unsigned long long)served);
            sleep_ms(50);
        }
    }
}

/* ---- the tests ---------------------------------------------------------- */

Test(replicas, the_balancer_and_every_replica_give_byte_identical_releases)
{
    struct cluster c;
    start_replicas(&c);
    start_haproxy(&c);

    /* a count (perturbed, suppressed, rounded) */
    struct frame region = ask_everywhere(&c, "rita", "count", BY_REGION_E11, "", "release");
    cr_assert_eq(reply_data_version(&region), 1);
    /* two restrictions: both noise layers */
    free(ask_everywhere(&c, "rita", "count", BY_SEX_E11_UNDER_70, "", "release").data);
    /* a low-effect refusal, the same words from each */
    free(ask_everywhere(&c, "rita", "count", E11_TWICE, "REFUSED", NULL).data);
    /* the ledger: rita was answered E11 by region, so E10 or E11 by sex is
     * the other half of a differencing pair, refused by each replica */
    struct frame refused = ask_everywhere(&c, "rita", "count", BY_SEX_DIABETES, "REFUSED", NULL);
    cr_assert_not_null(memmem(refused.data, refused.len, "ledger", 6), "a ledger refusal");
    free(refused.data);
    /* a comparison of released counts */
    free(ask_everywhere(&c, "paul", "compare", E11_NUMERATOR, "", "comparison").data);
    /* a saved query over HTTP */
    saved_over_http_everywhere(&c, "dash");

    /* both replicas had connections and requests from the balancer */
    for (int i = 0; i < N_REPLICAS; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i + 1);
        cr_assert_geq(server_sessions(&c, "replicas_msgpack", name), 5,
                      "%s had msgpack connections", name);
        cr_assert_geq(server_sessions(&c, "replicas_http", name), 1, "%s had HTTP requests",
                      name);
    }

    /* an ingest while both serve (the replicas hold no writer lock): a new
     * store version, which each serves after SIGHUP, byte-identical again */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' ingest --quiet --data '%s' --key '%s' hes_apc='%s/late/hes_apc.csv' "
             ">/dev/null",
             CC_BIN_DIR, data_dir, key_path, root);
    run(cmd);
    for (int i = 0; i < N_REPLICAS; i++)
        cr_assert_eq(cc_harness_signal(c.replica[i], SIGHUP), 0);
    wait_for_version(&c, 2, 2);
    struct frame later = ask_everywhere(&c, "rex", "count", BY_REGION_E11, "", "release");
    cr_assert_eq(reply_data_version(&later), 2);
    free(later.data);
    saved_over_http_everywhere(&c, "dash2"); /* an account new to the ledger */

    /* an opt-out of an E11 patient, recorded by the operator's tool (a
     * writer: it takes the writer lock, which no replica holds), reaches
     * both at their next publication (SIGHUP here): byte-identical again */
    snprintf(cmd, sizeof cmd,
             "awk -F, 'NR>1 && $10 ~ /^E11/ {print $2; exit}' '%s/feeds/hes_apc.csv' | "
             "'%s/carecount' optout register --data '%s' --key '%s' --nhs-number - --type ndop "
             "--date 2020-01-01 >/dev/null",
             root, CC_BIN_DIR, data_dir, key_path);
    run(cmd);
    for (int i = 0; i < N_REPLICAS; i++)
        cr_assert_eq(cc_harness_signal(c.replica[i], SIGHUP), 0);
    wait_for_version(&c, 2, 3);
    free(ask_everywhere(&c, "rhea", "count", BY_REGION_E11, "", "release").data);

    /* replica 1 dies: the balancer keeps serving, from replica 2 (retried
     * there at once, and no longer tried once its checks fail) */
    cr_assert_eq(cc_harness_signal(c.replica[0], SIGKILL), 0);
    c.killed[0] = true;
    /* reaped, so its sockets are closed: a connection the kernel had
     * queued for it just before it died is closed under its client (a
     * client reconnects then); new connections are refused there, and
     * HAProxy retries them on replica 2 */
    int status = -1;
    cc_harness_stop(c.replica[0], &status);
    cr_assert_eq(status, 128 + SIGKILL);
    msgpack_sbuffer request = request_frame(7, "count", BY_REGION_E11);
    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < 4; k++) {
            struct frame reply = ask(c.lb_port, "ray", &request);
            char code[32];
            cr_assert(reply_ok(&reply, code, sizeof code, "release"), "%s", code);
            cr_assert_eq(reply_data_version(&reply), 2);
            free(reply.data);
        }
        if (round == 0)
            wait_servers(&c, 0);
    }
    msgpack_sbuffer_destroy(&request);
    struct frame survivor = ask_everywhere(&c, "ray", "count", BY_REGION_E11, "", "release");
    free(survivor.data);
    saved_over_http_everywhere(&c, "dash3");
    /* dash2 asked the saved query before the opt-out: the same query now
     * covers one person fewer, and is answered (saved queries are the
     * operator's fixed set, outside the ledger), byte-identical again */
    saved_over_http_everywhere(&c, "dash2");
    free(region.data);
    stop_cluster(&c);
}

static uint64_t reply_id(const struct frame *reply)
{
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    cr_assert_eq(msgpack_unpack_next(&unpacked, (const char *)reply->data, reply->len, NULL),
                 MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *id = cc_msgpack_map_get(&unpacked.data, "id");
    cr_assert(id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    uint64_t value = id->via.u64;
    msgpack_unpacked_destroy(&unpacked);
    return value;
}

/* Sends n frames (ids first_id, first_id + 1, ...) to each of two clients
 * before reading any reply, so the two replicas work on them at once;
 * returns the replies' bodies in replies[k][client], by id (the replies
 * to pipelined requests may come in any order). */
static void send_both_then_read(struct cc_client *a, struct cc_client *b,
                                const msgpack_sbuffer *frames_a, const msgpack_sbuffer *frames_b,
                                int n, uint64_t first_id, struct frame (*replies)[2])
{
    for (int k = 0; k < n; k++) {
        cr_assert_eq(cc_client_send_raw(a, frames_a[k].data, frames_a[k].size), 0);
        cr_assert_eq(cc_client_send_raw(b, frames_b[k].data, frames_b[k].size), 0);
    }
    for (int k = 0; k < n; k++)
        replies[k][0].data = replies[k][1].data = NULL;
    for (int k = 0; k < n; k++) {
        for (int side = 0; side < 2; side++) {
            struct frame got;
            cr_assert_eq(cc_client_recv_frame(side ? b : a, &got.data, &got.len), 1);
            uint64_t id = reply_id(&got);
            cr_assert(id >= first_id && id < first_id + (uint64_t)n, "reply id %llu",
                      (unsigned long long)id);
            cr_assert_null(replies[id - first_id][side].data, "two replies to %llu",
                           (unsigned long long)id);
            replies[id - first_id][side] = got;
        }
    }
}

static msgpack_sbuffer simple_frame(uint64_t id, const char *op)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    msgpack_sbuffer_init(&frame);
    cr_assert_eq(cc_frame_sbuffer_begin(&frame), 0);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    cc_client_pack_envelope(&pk, id, op, 0);
    cr_assert_eq(cc_frame_sbuffer_finish(&frame), 0);
    return frame;
}

/* Rows of a SELECT count(*) on state.db, with the sqlite3 program. */
static long sql_count(const char *sql)
{
    char cmd[1024], out[400];
    snprintf(out, sizeof out, "%s/sql.out", root);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s/state.db' \"%s\" > '%s'", data_dir, sql, out);
    run(cmd);
    size_t len;
    char *text = cc_testfs_read(out, &len);
    long n = strtol(text, NULL, 10);
    free(text);
    return n;
}

Test(replicas, replicas_share_one_ledger_and_one_audit_chain)
{
    struct cluster c;
    start_replicas(&c);

    /* readers: neither replica holds the writer lock, so an ingest or an
     * opt-out writer can run while they serve */
    int lock_fd = -1;
    char err[512];
    cr_assert_eq(cc_datadir_lock(data_dir, 0, &lock_fd, err, sizeof err), 0, "%s", err);
    cc_datadir_unlock(lock_fd);

    /* one account, two replicas, requests interleaved: 12 schemas and one
     * count on each, sent before any reply is read */
    enum { N = 13 }; /* below --max-pending-requests-per-connection (16) */
    static msgpack_sbuffer frames[2][N];
    static struct frame replies[N][2];
    for (int r = 0; r < 2; r++) {
        for (int k = 0; k < N - 1; k++)
            frames[r][k] = simple_frame((uint64_t)(10 + k), "schema");
        frames[r][N - 1] = request_frame(10 + N - 1, "count", BY_REGION_E11);
    }
    long audit_before = sql_count("SELECT count(*) FROM audit_log");
    struct cc_client *a = login(c.port[0], "rita"), *b = login(c.port[1], "rita");
    send_both_then_read(a, b, frames[0], frames[1], N, 10, replies);
    for (int k = 0; k < N; k++) {
        char code[32];
        for (int r = 0; r < 2; r++)
            cr_assert(reply_ok(&replies[k][r], code, sizeof code, NULL), "%d: %s", k, code);
        assert_same(&replies[k][0], &replies[k][1], "the same request to both replicas");
    }
    cc_client_close(a);
    cc_client_close(b);
    /* every request is in the log (and both hellos), one chain */
    cr_assert_eq(sql_count("SELECT count(*) FROM audit_log") - audit_before, 2 * N + 2);
    cr_assert_eq(sql_count("SELECT max(seq) - count(*) FROM audit_log"), 0, "no gap");
    /* the count asked of both at once: answered by both (the same query),
     * recorded once */
    cr_assert_eq(sql_count("SELECT count(*) FROM ledger_entry"), 1);

    /* the halves of a differencing pair, one to each replica: the second
     * is refused by the replica that never saw the first */
    msgpack_sbuffer first = request_frame(7, "count", BY_REGION_E11);
    msgpack_sbuffer second = request_frame(7, "count", BY_SEX_DIABETES);
    struct frame reply = ask(c.port[0], "rosa", &first);
    char code[32];
    cr_assert(reply_ok(&reply, code, sizeof code, "release"), "%s", code);
    free(reply.data);
    reply = ask(c.port[1], "rosa", &second);
    cr_assert(!reply_ok(&reply, code, sizeof code, NULL));
    cr_assert_str_eq(code, "REFUSED");
    cr_assert_not_null(memmem(reply.data, reply.len, "ledger", 6));
    free(reply.data);
    /* control: an account that asked nothing before is answered it there */
    reply = ask(c.port[1], "rex", &second);
    cr_assert(reply_ok(&reply, code, sizeof code, "release"), "%s", code);
    free(reply.data);

    /* both halves at the same moment, one to each replica: one answered */
    a = login(c.port[0], "ruth");
    b = login(c.port[1], "ruth");
    struct frame pair[1][2];
    send_both_then_read(a, b, &first, &second, 1, 7, pair);
    char code_a[32], code_b[32];
    bool ok_a = reply_ok(&pair[0][0], code_a, sizeof code_a, NULL);
    bool ok_b = reply_ok(&pair[0][1], code_b, sizeof code_b, NULL);
    cr_assert(ok_a != ok_b, "exactly one half of the pair is answered (%s, %s)", code_a, code_b);
    cr_assert_str_eq(ok_a ? code_b : code_a, "REFUSED");
    free(pair[0][0].data);
    free(pair[0][1].data);
    cc_client_close(a);
    cc_client_close(b);
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < N; k++) {
            msgpack_sbuffer_destroy(&frames[r][k]);
            free(replies[k][r].data);
        }
    stop_cluster(&c);

    /* the chain both replicas appended to verifies */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit verify --data '%s' --key '%s' >/dev/null",
             CC_BIN_DIR, data_dir, key_path);
    run(cmd);
    cr_assert_eq(sql_count("SELECT count(*) FROM audit_log WHERE account = 'rita' AND op = "
                           "'schema'"),
                 2 * (N - 1));
}
