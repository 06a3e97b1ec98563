/*
 * cc_remote.c: the shared side of the commands that ask a server
 * (cc_remote.h).
 *
 * Must never: print a token, or anything the server did not send.
 */
#include "cc_remote.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_http.h"
#include "cc_msgpack.h"
#include "cc_query.h"

const char cc_remote_flags_usage[] =
    "  --host HOST          the server (default $CARECOUNT_HOST, else 127.0.0.1)\n"
    "  --port PORT          its port (default $CARECOUNT_PORT, else 7433)\n"
    "  --timeout-ms N       wait at most N ms for each reply (default 30000)\n"
    "  --token-file FILE    the account's token (mode 0600); default\n"
    "                       $CARECOUNT_TOKEN_FILE, else $CARECOUNT_TOKEN, else the\n"
    "                       config file's token-file, else ~/.carecount/token\n"
    "  --tls                connect with TLS, checking the server's certificate\n"
    "                       against the system's CAs and --host\n"
    "  --ca-file FILE       TLS, trusting the CA certificates of FILE (PEM) instead\n"
    "                       (default $CARECOUNT_CA_FILE)\n"
    "  (the config file, $CARECOUNT_CONFIG or ~/.carecount/config, holds\n"
    "  host = H, port = N, timeout-ms = N, token-file = PATH, tls = yes,\n"
    "  ca-file = PATH lines; the environment overrides it, and these flags the\n"
    "  environment)\n"
    "  --format table|csv|json   output (default table; json: the reply's\n"
    "                       figures as the server sent them, one line)\n";

/* The config file's values (one command per process, so static). */
static struct {
    char path[512], host[256], port[16], timeout_ms[16], token_file[512], tls[8], ca_file[512];
    char error[1200];
} config;

/* "~/x" -> "$HOME/x" into out. */
static void expand_home(const char *text, char *out, size_t outlen)
{
    const char *home = getenv("HOME");
    if (text[0] == '~' && text[1] == '/' && home)
        snprintf(out, outlen, "%s%s", home, text + 1);
    else
        snprintf(out, outlen, "%s", text);
}

/* Reads KEY = VALUE lines (host, port, timeout-ms, token-file, tls,
 * ca-file; '#' comments) from $CARECOUNT_CONFIG, else ~/.carecount/config if it
 * exists. A problem is kept in config.error, reported when the arguments
 * are parsed. */
static void read_config(void)
{
    const char *path = getenv("CARECOUNT_CONFIG");
    bool named = path && *path;
    if (named) {
        snprintf(config.path, sizeof config.path, "%s", path);
    } else {
        expand_home("~/.carecount/config", config.path, sizeof config.path);
        if (config.path[0] != '/' || access(config.path, F_OK) != 0)
            return;
    }
    FILE *f = fopen(config.path, "r");
    if (!f) {
        snprintf(config.error, sizeof config.error, "%s: %s", config.path, strerror(errno));
        return;
    }
    char line[1024];
    for (int n = 1; fgets(line, sizeof line, f); n++) {
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        char *eq = strchr(p, '=');
        char *end = p + strcspn(p, "\r\n");
        *end = '\0';
        if (!eq) {
            snprintf(config.error, sizeof config.error, "%s:%d: expected KEY = VALUE",
                     config.path, n);
            break;
        }
        char *key_end = eq;
        while (key_end > p && (key_end[-1] == ' ' || key_end[-1] == '\t'))
            key_end--;
        *key_end = '\0';
        char *value = eq + 1 + strspn(eq + 1, " \t");
        while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!strcmp(p, "host"))
            snprintf(config.host, sizeof config.host, "%s", value);
        else if (!strcmp(p, "port"))
            snprintf(config.port, sizeof config.port, "%s", value);
        else if (!strcmp(p, "timeout-ms"))
            snprintf(config.timeout_ms, sizeof config.timeout_ms, "%s", value);
        else if (!strcmp(p, "token-file"))
            expand_home(value, config.token_file, sizeof config.token_file);
        else if (!strcmp(p, "ca-file"))
            expand_home(value, config.ca_file, sizeof config.ca_file);
        else if (!strcmp(p, "tls") && (!strcmp(value, "yes") || !strcmp(value, "no")))
            snprintf(config.tls, sizeof config.tls, "%s", value);
        else if (!strcmp(p, "tls")) {
            snprintf(config.error, sizeof config.error, "%s:%d: tls is yes or no", config.path, n);
            break;
        } else {
            snprintf(config.error, sizeof config.error,
                     "%s:%d: unknown key '%.32s' (host, port, timeout-ms, token-file, tls, "
                     "ca-file; a token itself is never kept here)",
                     config.path, n, p);
            break;
        }
    }
    fclose(f);
}

void cc_remote_defaults(struct cc_remote_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 7433;
    o->timeout_ms = CC_CLIENT_DEFAULT_TIMEOUT_MS;
    o->format = CC_REMOTE_TABLE;
    read_config();
    if (config.host[0])
        o->host = config.host;
    if (config.port[0])
        o->port_env = config.port;
    if (config.token_file[0])
        o->token_file = config.token_file;
    o->tls = !strcmp(config.tls, "yes") || config.ca_file[0];
    if (config.ca_file[0])
        o->ca_file = config.ca_file;
    const char *ca_file = getenv("CARECOUNT_CA_FILE");
    if (ca_file && *ca_file) {
        o->tls = true;
        o->ca_file = ca_file;
    }
    const char *host = getenv("CARECOUNT_HOST"), *port = getenv("CARECOUNT_PORT");
    const char *token_file = getenv("CARECOUNT_TOKEN_FILE"), *token = getenv("CARECOUNT_TOKEN");
    if (host && *host)
        o->host = host;
    if (port && *port)
        o->port_env = port;
    if ((token_file && *token_file) || (token && *token))
        o->token_file = NULL; /* the environment's, as cc_client_read_token() reads it */
    else if (!o->token_file) {
        static char fallback[512];
        expand_home("~/.carecount/token", fallback, sizeof fallback);
        if (fallback[0] == '/' && access(fallback, F_OK) == 0)
            o->token_file = fallback;
    }
}

static int parse_ulong(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end;
    if (!text || !*text || *text == '-')
        return -1;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int cc_remote_take_flag(struct cc_remote_options *o, int argc, char **argv, int i,
                        const char *command)
{
    const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(flag, "--token")) {
        fprintf(stderr,
                "carecount %s: a token is never taken from the command line (it would show "
                "in ps and the shell's history): use --token-file FILE or CARECOUNT_TOKEN_FILE\n",
                command);
        return -1;
    }
    if (!strcmp(flag, "--tls")) {
        o->tls = true;
        return 1;
    }
    if (strcmp(flag, "--host") && strcmp(flag, "--port") && strcmp(flag, "--timeout-ms") &&
        strcmp(flag, "--token-file") && strcmp(flag, "--format") && strcmp(flag, "--ca-file"))
        return 0;
    if (!value) {
        fprintf(stderr, "carecount %s: %s needs a value\n", command, flag);
        return -1;
    }
    if (!strcmp(flag, "--host")) {
        o->host = value;
    } else if (!strcmp(flag, "--port")) {
        if (parse_ulong(value, 1, 65535, &o->port) < 0) {
            fprintf(stderr, "carecount %s: --port needs 1 to 65535\n", command);
            return -1;
        }
    } else if (!strcmp(flag, "--timeout-ms")) {
        if (parse_ulong(value, 1, 3600000, &o->timeout_ms) < 0) {
            fprintf(stderr, "carecount %s: --timeout-ms needs 1 to 3600000\n", command);
            return -1;
        }
    } else if (!strcmp(flag, "--token-file")) {
        o->token_file = value;
    } else if (!strcmp(flag, "--ca-file")) {
        o->tls = true;
        o->ca_file = value;
    } else if (!strcmp(value, "table") || !strcmp(value, "csv") || !strcmp(value, "json")) {
        o->format = value[0] == 't' ? CC_REMOTE_TABLE : value[0] == 'c' ? CC_REMOTE_CSV
                                                                        : CC_REMOTE_JSON;
    } else {
        fprintf(stderr, "carecount %s: --format is table, csv or json\n", command);
        return -1;
    }
    return 2;
}

int cc_remote_parse_args(struct cc_remote_options *o, int argc, char **argv, const char *command,
                         void (*usage)(FILE *out), const char *what, const char **path,
                         struct cc_queryflags *flags)
{
    if (config.error[0]) {
        fprintf(stderr, "carecount %s: %s\n", command, config.error);
        return CC_REMOTE_EXIT_USAGE;
    }
    unsigned long timeout;
    if (config.timeout_ms[0]) {
        if (parse_ulong(config.timeout_ms, 1, 3600000, &timeout) < 0) {
            fprintf(stderr, "carecount %s: %s: timeout-ms needs 1 to 3600000\n", command,
                    config.path);
            return CC_REMOTE_EXIT_USAGE;
        }
        o->timeout_ms = timeout;
    }
    if (o->port_env && parse_ulong(o->port_env, 1, 65535, &o->port) < 0) {
        fprintf(stderr, "carecount %s: %s needs a port from 1 to 65535\n", command,
                getenv("CARECOUNT_PORT") && *getenv("CARECOUNT_PORT") ? "CARECOUNT_PORT"
                                                                      : config.path);
        return CC_REMOTE_EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return CC_REMOTE_EXIT_OK;
        }
        int used = cc_remote_take_flag(o, argc, argv, i, command);
        if (used == 0 && flags)
            used = cc_queryflags_take(flags, argc, argv, i, command);
        if (used < 0)
            return CC_REMOTE_EXIT_USAGE;
        if (used > 0) {
            i += used - 1;
        } else if ((argv[i][0] == '-' && argv[i][1]) || !path) {
            fprintf(stderr, "carecount %s: unknown %s '%s' (try --help)\n", command,
                    argv[i][0] == '-' ? "option" : "argument", argv[i]);
            return CC_REMOTE_EXIT_USAGE;
        } else if (!*path) {
            *path = argv[i];
        } else {
            fprintf(stderr, "carecount %s: one %s file only (try --help)\n", command, what);
            return CC_REMOTE_EXIT_USAGE;
        }
    }
    if (flags && flags->given && path && *path) {
        fprintf(stderr, "carecount %s: give the %s as a file or as flags, not both\n", command,
                what);
        return CC_REMOTE_EXIT_USAGE;
    }
    if (path && !*path && !(flags && flags->given)) {
        fprintf(stderr, "carecount %s: give the %s file (or - for standard input)%s\n", command,
                what, flags ? ", or the query flags (try --help)" : "");
        return CC_REMOTE_EXIT_USAGE;
    }
    return -1;
}

bool cc_remote_input_is_json(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    return i < len && text[i] == '{';
}

int cc_remote_open(const struct cc_remote_options *o, const char *command, struct cc_client **out)
{
    char token[CC_CLIENT_TOKEN_BYTES], why[512];
    *out = NULL;
    int rc = cc_client_read_token(o->token_file, token, why, sizeof why);
    if (rc < 0) {
        fprintf(stderr, "carecount %s: %s\n", command, why);
        return CC_REMOTE_EXIT_USAGE;
    }
    rc = cc_client_connect(o->host, (uint16_t)o->port, (int)o->timeout_ms, out);
    if (rc < 0) {
        fprintf(stderr, "carecount %s: cannot connect to %s port %lu: %s\n", command, o->host,
                o->port, cc_strerror(rc));
        return CC_REMOTE_EXIT_FAILED;
    }
    if (o->tls && cc_client_start_tls(*out, o->host, o->ca_file, why, sizeof why) < 0) {
        fprintf(stderr, "carecount %s: %s port %lu: %s\n", command, o->host, o->port, why);
        memset(token, 0, sizeof token);
        cc_client_close(*out);
        *out = NULL;
        return CC_REMOTE_EXIT_FAILED;
    }
    rc = cc_client_hello(*out, token, why, sizeof why);
    memset(token, 0, sizeof token);
    if (rc < 0) {
        fprintf(stderr, "carecount %s: %s\n", command, why);
        cc_client_close(*out);
        *out = NULL;
        return rc == CC_EAUTH ? CC_REMOTE_EXIT_REFUSED : CC_REMOTE_EXIT_FAILED;
    }
    return 0;
}

int cc_remote_exit_for(const char *code)
{
    if (!strcmp(code, "REFUSED") || !strcmp(code, "DENIED") || !strcmp(code, "AUTH"))
        return CC_REMOTE_EXIT_REFUSED;
    if (!strcmp(code, "INVAL") || !strcmp(code, "PARSE") || !strcmp(code, "NOTFOUND") ||
        !strcmp(code, "TOOBIG") || !strcmp(code, "RANGE"))
        return CC_REMOTE_EXIT_USAGE;
    return CC_REMOTE_EXIT_FAILED;
}

int cc_remote_read_input(const char *path, size_t limit, char **out, size_t *out_len)
{
    FILE *file = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!file)
        return CC_EIO;
    int rc = 0;
    char *data = malloc(limit + 1);
    size_t len = 0;
    if (!data) {
        rc = CC_ENOMEM;
        goto out;
    }
    while (len < limit + 1) {
        size_t n = fread(data + len, 1, limit + 1 - len, file);
        if (n == 0)
            break;
        len += n;
    }
    if (ferror(file)) {
        rc = CC_EIO;
        goto out;
    }
    *out = data;
    *out_len = len;
    data = NULL;
out:
    free(data);
    if (file != stdin)
        fclose(file);
    return rc;
}

/* ---- reading replies ----------------------------------------------------- */

/* The text of a string object into buf ("" otherwise). */
static const char *text(const msgpack_object *o, char *buf, size_t len)
{
    buf[0] = '\0';
    if (o && o->type == MSGPACK_OBJECT_STR) {
        size_t n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;
        memcpy(buf, o->via.str.ptr, n);
        buf[n] = '\0';
    }
    return buf;
}

static uint64_t uint_or(const msgpack_object *o, uint64_t otherwise)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : otherwise;
}

static double number_or_nan(const msgpack_object *o)
{
    if (!o)
        return NAN;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    return NAN;
}

static const msgpack_object *at(const msgpack_object *array, uint32_t i)
{
    return array && array->type == MSGPACK_OBJECT_ARRAY && i < array->via.array.size
               ? &array->via.array.ptr[i]
               : NULL;
}

static uint32_t size_of(const msgpack_object *array)
{
    return array && array->type == MSGPACK_OBJECT_ARRAY ? array->via.array.size : 0;
}

/* ---- a table of text cells ----------------------------------------------- */

#define CELL_BYTES 96
#define MAX_COLUMNS 12

struct table {
    uint32_t n_columns, n_rows, capacity;
    char (*cells)[CELL_BYTES]; /* [(1 + n_rows) * n_columns]: the header first */
    unsigned right[MAX_COLUMNS]; /* right-aligned (numbers) */
};

static char *cell(struct table *t, uint32_t row, uint32_t column)
{
    return t->cells[(size_t)row * t->n_columns + column];
}

/* Starts an empty table with a blank header row. 0 or -1. */
static int table_init(struct table *t, uint32_t n_columns)
{
    memset(t, 0, sizeof *t);
    t->n_columns = n_columns;
    t->capacity = 64;
    t->cells = calloc((size_t)t->capacity * n_columns, CELL_BYTES);
    return t->cells ? 0 : -1;
}

/* Adds a row (row 0 is the header) and returns its index, or -1. */
static int add_row(struct table *t)
{
    uint32_t rows = t->n_rows + 1;
    if (rows >= t->capacity) {
        uint32_t capacity = t->capacity ? 2 * t->capacity : 64;
        void *grown = realloc(t->cells, (size_t)capacity * t->n_columns * CELL_BYTES);
        if (!grown)
            return -1;
        t->cells = grown;
        t->capacity = capacity;
    }
    memset(cell(t, rows, 0), 0, (size_t)t->n_columns * CELL_BYTES);
    t->n_rows = rows;
    return (int)rows;
}

static void put_csv(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void print_table(FILE *out, const struct table *t, enum cc_remote_format format)
{
    size_t width[MAX_COLUMNS] = {0};
    for (uint32_t r = 0; r <= t->n_rows; r++)
        for (uint32_t c = 0; c < t->n_columns; c++) {
            size_t n = strlen(t->cells[(size_t)r * t->n_columns + c]);
            width[c] = n > width[c] ? n : width[c];
        }
    for (uint32_t r = 0; r <= t->n_rows; r++) {
        for (uint32_t c = 0; c < t->n_columns; c++) {
            const char *s = t->cells[(size_t)r * t->n_columns + c];
            if (format == CC_REMOTE_CSV) {
                if (c)
                    fputc(',', out);
                put_csv(out, s);
            } else if (c + 1 == t->n_columns && !t->right[c]) {
                fprintf(out, "%s%s", c ? "  " : "", s);
            } else {
                fprintf(out, t->right[c] && r ? "%s%*s" : "%s%-*s", c ? "  " : "",
                        (int)width[c], s);
            }
        }
        fputc('\n', out);
    }
}

/* The legend: what disclosure control did. */
static void print_legend(FILE *out, const msgpack_object *policy, const msgpack_object *counts)
{
    char version[80];
    uint64_t threshold = uint_or(cc_msgpack_map_get(policy, "threshold"), 0);
    uint64_t base = uint_or(cc_msgpack_map_get(policy, "rounding_base"), 1);
    uint64_t noise = uint_or(cc_msgpack_map_get(policy, "max_noise"), 0);
    uint64_t cnoise = uint_or(cc_msgpack_map_get(policy, "condition_max_noise"), 0);
    fprintf(out, "\ndisclosure control (policy %s):\n",
            text(cc_msgpack_map_get(policy, "version"), version, sizeof version));
    fprintf(out, "  no count from 1 to %" PRIu64 " is shown; '*' marks a suppressed cell\n",
            threshold > 0 ? threshold - 1 : 0);
    if (noise)
        fprintf(out,
                "  counts are perturbed by the cell key method (noise up to +-%" PRIu64
                "%s), so the same cell always gets the same value\n",
                noise, cnoise ? ", and a condition layer" : "");
    if (base > 1)
        fprintf(out, "  counts are rounded to multiples of %" PRIu64 "\n", base);
    if (counts)
        fprintf(out,
                "  %" PRIu64 " cells: %" PRIu64 " perturbed, %" PRIu64 " rounded, %" PRIu64
                " shown as counted, %" PRIu64 " suppressed, %" PRIu64 " suppressed to protect "
                "others\n",
                uint_or(cc_msgpack_map_get(counts, "cells"), 0), uint_or(cc_msgpack_map_get(counts, "perturbed"), 0),
                uint_or(cc_msgpack_map_get(counts, "rounded"), 0), uint_or(cc_msgpack_map_get(counts, "shown"), 0),
                uint_or(cc_msgpack_map_get(counts, "suppressed"), 0),
                uint_or(cc_msgpack_map_get(counts, "suppressed_secondary"), 0));
}

void cc_remote_print_release(FILE *out, const msgpack_object *release,
                             enum cc_remote_format format)
{
    const msgpack_object *dims = cc_msgpack_map_get(release, "dimensions"), *cells = cc_msgpack_map_get(release, "cells");
    uint32_t n_dims = size_of(dims);
    if (n_dims + 2 > MAX_COLUMNS)
        n_dims = MAX_COLUMNS - 2;
    struct table t;
    uint32_t sizes[MAX_COLUMNS];
    if (table_init(&t, n_dims + 2) < 0)
        goto oom;
    for (uint32_t d = 0; d < n_dims; d++) {
        text(cc_msgpack_map_get(at(dims, d), "kind"), cell(&t, 0, d), CELL_BYTES);
        sizes[d] = size_of(cc_msgpack_map_get(at(dims, d), "labels"));
    }
    snprintf(cell(&t, 0, n_dims), CELL_BYTES, "count");
    snprintf(cell(&t, 0, n_dims + 1), CELL_BYTES, "note");
    t.right[n_dims] = 1;
    for (uint32_t i = 0; i < size_of(cells); i++) {
        int r = add_row(&t);
        if (r < 0)
            goto oom;
        uint32_t rest = i;
        for (uint32_t d = n_dims; d-- > 0;) {
            uint32_t v = sizes[d] ? rest % sizes[d] : 0;
            rest = sizes[d] ? rest / sizes[d] : 0;
            text(at(cc_msgpack_map_get(at(dims, d), "labels"), v), cell(&t, (uint32_t)r, d), CELL_BYTES);
        }
        const msgpack_object *value = at(at(cells, i), 0);
        if (value && value->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            snprintf(cell(&t, (uint32_t)r, n_dims), CELL_BYTES, "%" PRIu64, value->via.u64);
        else
            snprintf(cell(&t, (uint32_t)r, n_dims), CELL_BYTES, format == CC_REMOTE_CSV ? "" : "*");
        text(at(at(cells, i), 1), cell(&t, (uint32_t)r, n_dims + 1), CELL_BYTES);
    }
    print_table(out, &t, format);
    if (format == CC_REMOTE_TABLE)
        print_legend(out, cc_msgpack_map_get(release, "policy"), cc_msgpack_map_get(release, "counts"));
    free(t.cells);
    return;
oom:
    free(t.cells);
    fprintf(stderr, "carecount: out of memory printing the table\n");
}

static void format_number(char *buf, double x, int decimals)
{
    if (isfinite(x))
        snprintf(buf, CELL_BYTES, "%.*f", decimals, x);
    else
        snprintf(buf, CELL_BYTES, "-");
}

void cc_remote_print_comparison(FILE *out, const msgpack_object *cmp, enum cc_remote_format format)
{
    static const char *const header[] = {"code",          "name",          "count",
                                         "denominator",   "value",         "lower95",
                                         "upper95",       "lower95_noise", "upper95_noise",
                                         "vs comparator", "status"};
    const msgpack_object *rows = cc_msgpack_map_get(cmp, "rows");
    struct table t;
    if (table_init(&t, 11) < 0)
        goto oom;
    for (uint32_t c = 0; c < 11; c++)
        snprintf(cell(&t, 0, c), CELL_BYTES, "%s", header[c]);
    for (uint32_t c = 2; c <= 8; c++)
        t.right[c] = 1;
    for (uint32_t i = 0; i < size_of(rows); i++) {
        const msgpack_object *row = at(rows, i);
        int r = add_row(&t);
        if (r < 0)
            goto oom;
        uint32_t k = (uint32_t)r;
        text(cc_msgpack_map_get(row, "code"), cell(&t, k, 0), CELL_BYTES);
        text(cc_msgpack_map_get(row, "name"), cell(&t, k, 1), CELL_BYTES);
        const msgpack_object *count = cc_msgpack_map_get(row, "count"), *den = cc_msgpack_map_get(row, "denominator");
        if (count && count->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            snprintf(cell(&t, k, 2), CELL_BYTES, "%" PRIu64, count->via.u64);
        else
            snprintf(cell(&t, k, 2), CELL_BYTES, format == CC_REMOTE_CSV ? "" : "*");
        if (den && den->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            snprintf(cell(&t, k, 3), CELL_BYTES, "%" PRIu64, den->via.u64);
        else
            snprintf(cell(&t, k, 3), CELL_BYTES, format == CC_REMOTE_CSV ? "" : "*");
        format_number(cell(&t, k, 4), number_or_nan(cc_msgpack_map_get(row, "value")), 2);
        format_number(cell(&t, k, 5), number_or_nan(at(cc_msgpack_map_get(row, "ci95"), 0)), 2);
        format_number(cell(&t, k, 6), number_or_nan(at(cc_msgpack_map_get(row, "ci95"), 1)), 2);
        const msgpack_object *noise = cc_msgpack_map_get(row, "ci95_noise");
        format_number(cell(&t, k, 7), number_or_nan(at(noise, 0)), 2);
        format_number(cell(&t, k, 8), number_or_nan(at(noise, 1)), 2);
        text(cc_msgpack_map_get(row, "comparison95"), cell(&t, k, 9), CELL_BYTES);
        text(cc_msgpack_map_get(row, "status"), cell(&t, k, 10), CELL_BYTES);
    }
    if (format == CC_REMOTE_TABLE) {
        char method[32], level[16], comparator[16];
        fprintf(out, "%s by %s, compared with %s (95%% intervals; per %g)\n\n",
                text(cc_msgpack_map_get(cmp, "method"), method, sizeof method),
                text(cc_msgpack_map_get(cmp, "level"), level, sizeof level),
                text(cc_msgpack_map_get(cmp, "comparator"), comparator, sizeof comparator),
                number_or_nan(cc_msgpack_map_get(cmp, "multiplier")));
    }
    print_table(out, &t, format);
    if (format == CC_REMOTE_TABLE) {
        print_legend(out, cc_msgpack_map_get(cmp, "policy"), cc_msgpack_map_get(cmp, "counts"));
        fprintf(out, "  values and intervals are computed from the released counts only; a row "
                     "with a suppressed count is not compared\n"
                     "  lower95_noise..upper95_noise also includes the error the perturbation and "
                     "rounding add (docs/comparisons.md); the comparison uses the 95%% interval, "
                     "as Fingertips does\n");
    }
    free(t.cells);
    return;
oom:
    free(t.cells);
    fprintf(stderr, "carecount: out of memory printing the table\n");
}

int cc_remote_print_json(FILE *out, const msgpack_object *value)
{
    char *json = NULL;
    if (!value || cc_http_msgpack_to_json(value, &json) != 0) {
        fprintf(stderr, "carecount: the reply cannot be written as JSON\n");
        return -1;
    }
    fprintf(out, "%s\n", json);
    free(json);
    return 0;
}

int cc_remote_call_simple(struct cc_client *client, const char *command, const char *op,
                          struct cc_reply *reply, int *status)
{
    int rc = cc_client_call(client, 2, op, 0, NULL, NULL, reply);
    if (rc <= 0) {
        fprintf(stderr, "carecount %s: %s\n", command,
                rc == 0 ? "the server closed the connection" : cc_strerror(rc));
        *status = CC_REMOTE_EXIT_FAILED;
        return -1;
    }
    if (!reply->ok) {
        fprintf(stderr, "carecount %s: %s: %s\n", command, reply->error_code,
                reply->error_message);
        *status = cc_remote_exit_for(reply->error_code);
        cc_reply_free(reply);
        return -1;
    }
    return 0;
}
