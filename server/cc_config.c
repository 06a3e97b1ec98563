/*
 * cc_config.c: defaults and command-line parsing for struct cc_config.
 *
 * Must never: accept a value it cannot represent (every number is range
 * checked), or let a remote address through without --allow-remote and
 * TLS.
 */
#include "cc_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cc_error.h"
#include "cc_release_cache.h"

void cc_config_defaults(struct cc_config *config)
{
    memset(config, 0, sizeof(*config));
    snprintf(config->listen_host, sizeof(config->listen_host), "%s", CC_CONFIG_DEFAULT_HOST);
    config->listen_port = CC_CONFIG_DEFAULT_PORT;
    config->max_frame_bytes = CC_CONFIG_DEFAULT_MAX_FRAME_BYTES;
    config->max_connections = CC_CONFIG_DEFAULT_MAX_CONNECTIONS;
    config->threads = CC_CONFIG_DEFAULT_THREADS;
    config->max_pending_requests_per_connection =
        CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS_PER_CONNECTION;
    config->max_pending_requests = CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS;
    config->max_write_queue_bytes = CC_CONFIG_DEFAULT_MAX_WRITE_QUEUE_BYTES;
    config->idle_timeout_ms = CC_CONFIG_DEFAULT_IDLE_TIMEOUT_MS;
    config->frame_timeout_ms = CC_CONFIG_DEFAULT_FRAME_TIMEOUT_MS;
    config->max_requests_per_account_minute = CC_CONFIG_DEFAULT_MAX_REQUESTS_PER_ACCOUNT_MINUTE;
    config->release_cache_mb = CC_RELEASE_CACHE_DEFAULT_MB;
    config->max_total_write_queue_bytes = CC_CONFIG_DEFAULT_MAX_TOTAL_WRITE_QUEUE_BYTES;
    config->shutdown_timeout_ms = CC_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS;
    config->publish_interval_s = 86400;
}

bool cc_config_host_is_loopback(const char *host)
{
    struct in_addr v4;
    struct in6_addr v6;
    if (inet_pton(AF_INET, host, &v4) == 1)
        return (ntohl(v4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &v6) == 1)
        return memcmp(&v6, &in6addr_loopback, sizeof(v6)) == 0;
    return false;
}

/* Parses a decimal unsigned number in [min, max]. Returns 0 or CC_EINVAL. */
static int parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    if (!text || !*text || *text == '-' || *text == '+')
        return CC_EINVAL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end || value < min || value > max)
        return CC_EINVAL;
    *out = value;
    return 0;
}

int cc_config_parse_listen(const char *text, char host[CC_CONFIG_HOST_BYTES], uint16_t *port)
{
    const char *host_start = text, *host_end, *port_text;
    uint64_t port_value;
    unsigned char probe[sizeof(struct in6_addr)];

    if (text[0] == '[') {
        host_start = text + 1;
        host_end = strchr(host_start, ']');
        if (!host_end || host_end[1] != ':')
            return CC_EINVAL;
        port_text = host_end + 2;
    } else {
        host_end = strrchr(text, ':');
        if (!host_end)
            return CC_EINVAL;
        port_text = host_end + 1;
    }
    size_t host_len = (size_t)(host_end - host_start);
    if (host_len == 0 || host_len >= CC_CONFIG_HOST_BYTES)
        return CC_EINVAL;
    if (parse_number(port_text, 0, 65535, &port_value) < 0)
        return CC_EINVAL;
    char candidate[CC_CONFIG_HOST_BYTES];
    memcpy(candidate, host_start, host_len);
    candidate[host_len] = '\0';
    if (inet_pton(AF_INET, candidate, probe) != 1 && inet_pton(AF_INET6, candidate, probe) != 1)
        return CC_EINVAL;
    memcpy(host, candidate, host_len + 1);
    *port = (uint16_t)port_value;
    return 0;
}

void cc_config_usage(FILE *out)
{
    fprintf(out,
            "options (each can also be a key of the --config file, without \"--\"):\n"
            "  --config FILE             a JSON file of these options, applied first\n"
            "  --listen ADDR:PORT        numeric address and port (default %s:%d;\n"
            "                            port 0 picks a free port; [::1]:PORT for IPv6)\n"
            "  --allow-remote            permit a non-loopback listen address (needs TLS)\n"
            "  --port-file PATH          write the bound port to PATH once listening\n"
            "  --http-listen ADDR:PORT   also serve HTTP/JSON there (off by default)\n"
            "  --http-port-file PATH     write the HTTP port to PATH once listening\n"
            "  --cors-origin ORIGIN      let browser pages of ORIGIN call the HTTP API\n"
            "                            (repeatable; none by default)\n"
            "  --tls-cert FILE           TLS on both listeners: the PEM certificate chain\n"
            "                            (required for a non-loopback address)\n"
            "  --tls-key FILE            its PEM private key, mode 0600 (with --tls-cert)\n"
            "  --max-frame-bytes N       largest request body (default %u)\n"
            "  --max-connections N       connections served at once (default %u)\n"
            "  --threads N               threads running queries and audit commits\n"
            "                            (default %u; 1-128)\n"
            "  --max-pending-requests-per-connection N   (default %u)\n"
            "  --max-pending-requests N  on the thread pool, all clients (default %u)\n"
            "  --max-write-queue-bytes N reply bytes queued per client (default %zu)\n"
            "  --max-total-write-queue-bytes N   over all clients; above it, new work is\n"
            "                            answered BUSY (default %zu)\n"
            "  --idle-timeout-ms N       close idle connections after N ms (default %d)\n"
            "  --frame-timeout-ms N      a request frame must arrive whole within N ms of\n"
            "                            its first byte, the first within N ms of connecting\n"
            "                            (default %d)\n"
            "  --shutdown-timeout-ms N   time allowed for in-flight work at shutdown\n"
            "                            (default %d)\n"
            "  --data DIR                serve the current store version of data directory DIR\n"
            "  --key KEYFILE             DIR's key (default $CARECOUNT_KEY); needed with --data\n"
            "  --publish-interval-s N    publish opt-out changes every N s, at the wall\n"
            "                            clock's multiples of N s (default 86400: at UTC\n"
            "                            midnight; 0: at once)\n"
            "  --policy FILE             the disclosure policy (default: built-in defaults)\n"
            "  --codelists DIR           codelists queries may name (default DIR/codelists)\n"
            "  --saved DIR               operator-approved saved queries, NAME.json, the only\n"
            "                            thing dashboard accounts run (default DIR/saved)\n"
            "  --max-requests-per-account-minute N  per account, all its connections\n"
            "                            (default %d); more get BUSY\n"
            "  --release-cache-mb N      releases kept for the same account asking the same\n"
            "                            query again on the same data (default %d MiB;\n"
            "                            0: none; entries live %d s)\n"
            "  --test-mode               enable test-only request fields (never in production)\n",
            CC_CONFIG_DEFAULT_HOST, CC_CONFIG_DEFAULT_PORT, CC_CONFIG_DEFAULT_MAX_FRAME_BYTES,
            CC_CONFIG_DEFAULT_MAX_CONNECTIONS, CC_CONFIG_DEFAULT_THREADS,
            CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS_PER_CONNECTION,
            CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS, CC_CONFIG_DEFAULT_MAX_WRITE_QUEUE_BYTES,
            CC_CONFIG_DEFAULT_MAX_TOTAL_WRITE_QUEUE_BYTES, CC_CONFIG_DEFAULT_IDLE_TIMEOUT_MS,
            CC_CONFIG_DEFAULT_FRAME_TIMEOUT_MS, CC_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS,
            CC_CONFIG_DEFAULT_MAX_REQUESTS_PER_ACCOUNT_MINUTE, CC_RELEASE_CACHE_DEFAULT_MB,
            CC_RELEASE_CACHE_TTL_S);
}

/* The numeric options: name, range, and where the value goes. */
struct number_option {
    const char *name;
    uint64_t min, max;
    size_t offset;
    size_t size;
};

#define NUMBER_OPTION(name, field, min, max)                                                   \
    {name, min, max, offsetof(struct cc_config, field), sizeof(((struct cc_config *)0)->field)}

static const struct number_option number_options[] = {
    NUMBER_OPTION("--max-frame-bytes", max_frame_bytes, 16, UINT32_MAX),
    NUMBER_OPTION("--max-connections", max_connections, 1, 1000000),
    NUMBER_OPTION("--threads", threads, 1, 128),
    NUMBER_OPTION("--max-pending-requests-per-connection", max_pending_requests_per_connection,
                  1, 1000000),
    NUMBER_OPTION("--max-pending-requests", max_pending_requests, 1, 1000000),
    NUMBER_OPTION("--max-write-queue-bytes", max_write_queue_bytes, 1024, SIZE_MAX),
    NUMBER_OPTION("--max-total-write-queue-bytes", max_total_write_queue_bytes, 1024, SIZE_MAX),
    NUMBER_OPTION("--idle-timeout-ms", idle_timeout_ms, 1, UINT64_MAX / 2),
    NUMBER_OPTION("--frame-timeout-ms", frame_timeout_ms, 1, UINT64_MAX / 2),
    NUMBER_OPTION("--max-requests-per-account-minute", max_requests_per_account_minute, 1,
                  100000000),
    NUMBER_OPTION("--shutdown-timeout-ms", shutdown_timeout_ms, 1, UINT64_MAX / 2),
    NUMBER_OPTION("--release-cache-mb", release_cache_mb, 0, 65536),
};

static void store_number(struct cc_config *config, const struct number_option *option,
                         uint64_t value)
{
    char *field = (char *)config + option->offset;
    switch (option->size) {
    case sizeof(uint32_t): {
        uint32_t v = (uint32_t)value;
        memcpy(field, &v, sizeof(v));
        break;
    }
    default: {
        uint64_t v = value;
        memcpy(field, &v, sizeof(v));
        break;
    }
    }
}

static int check_config(struct cc_config *config, char *error, size_t error_bytes);

int cc_config_parse_args(struct cc_config *config, int argc, char **argv, char *error,
                         size_t error_bytes)
{
    int rc = cc_config_parse_args_partial(config, argc, argv, error, error_bytes);
    return rc < 0 ? rc : check_config(config, error, error_bytes);
}

int cc_config_parse_args_partial(struct cc_config *config, int argc, char **argv, char *error,
                                 size_t error_bytes)
{
    _Static_assert(sizeof(size_t) == sizeof(uint64_t), "store_number assumes a 64-bit size_t");
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(arg, "--config")) {
            /* applied before every other option by cc_config_load_file() */
            if (!value || !*value) {
                snprintf(error, error_bytes, "--config needs a configuration file");
                return CC_EINVAL;
            }
            i++;
            continue;
        }
        if (!strcmp(arg, "--allow-remote")) {
            config->allow_remote = true;
            continue;
        }
        if (!strcmp(arg, "--test-mode")) {
            config->test_mode = true;
            continue;
        }
        if (!strcmp(arg, "--publish-interval-s")) {
            char *end = NULL;
            unsigned long long n = value ? strtoull(value, &end, 10) : 0;
            if (!value || !*value || *end || n > 366ULL * 86400) {
                snprintf(error, error_bytes, "--publish-interval-s needs 0 to 31622400 seconds");
                return CC_EINVAL;
            }
            config->publish_interval_s = n;
            i++;
            continue;
        }
        if (!strcmp(arg, "--key")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "--key needs a key file");
                return CC_EINVAL;
            }
            config->key_path = value;
            i++;
            continue;
        }
        if (!strcmp(arg, "--policy") || !strcmp(arg, "--codelists") || !strcmp(arg, "--saved")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "%s needs a %s", arg,
                         arg[2] == 'p' ? "policy file" : "directory");
                return CC_EINVAL;
            }
            if (arg[2] == 'p')
                config->policy_path = value;
            else if (arg[2] == 'c')
                config->codelists_dir = value;
            else
                config->saved_dir = value;
            i++;
            continue;
        }
        if (!strcmp(arg, "--data")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "--data needs a data directory");
                return CC_EINVAL;
            }
            config->data_dir = value;
            i++;
            continue;
        }
        if (!strcmp(arg, "--listen")) {
            if (!value || cc_config_parse_listen(value, config->listen_host,
                                                 &config->listen_port) < 0) {
                snprintf(error, error_bytes, "--listen needs ADDR:PORT with a numeric address");
                return CC_EINVAL;
            }
            i++;
            continue;
        }
        if (!strcmp(arg, "--http-listen")) {
            if (!value || cc_config_parse_listen(value, config->http_host, &config->http_port) < 0) {
                snprintf(error, error_bytes,
                         "--http-listen needs ADDR:PORT with a numeric address");
                return CC_EINVAL;
            }
            config->http_listen = true;
            i++;
            continue;
        }
        if (!strcmp(arg, "--http-port-file") || !strcmp(arg, "--cors-origin")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "%s needs a value", arg);
                return CC_EINVAL;
            }
            if (arg[2] == 'h') {
                config->http_port_file = value;
            } else {
                if (config->n_cors_origins == CC_CONFIG_MAX_CORS_ORIGINS) {
                    snprintf(error, error_bytes, "at most %d --cors-origin",
                             CC_CONFIG_MAX_CORS_ORIGINS);
                    return CC_EINVAL;
                }
                config->cors_origins[config->n_cors_origins++] = value;
            }
            i++;
            continue;
        }
        if (!strcmp(arg, "--tls-cert") || !strcmp(arg, "--tls-key")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "%s needs a PEM file", arg);
                return CC_EINVAL;
            }
            if (arg[6] == 'c')
                config->tls_cert_path = value;
            else
                config->tls_key_path = value;
            i++;
            continue;
        }
        if (!strcmp(arg, "--port-file")) {
            if (!value || !*value) {
                snprintf(error, error_bytes, "--port-file needs a path");
                return CC_EINVAL;
            }
            config->port_file = value;
            i++;
            continue;
        }
        const struct number_option *option = NULL;
        for (size_t k = 0; k < sizeof(number_options) / sizeof(number_options[0]); k++)
            if (!strcmp(arg, number_options[k].name))
                option = &number_options[k];
        if (!option) {
            snprintf(error, error_bytes, "unknown option '%s' (try --help)", arg);
            return CC_EINVAL;
        }
        uint64_t number;
        if (parse_number(value, option->min, option->max, &number) < 0) {
            snprintf(error, error_bytes, "%s needs a whole number from %" PRIu64 " to %" PRIu64,
                     option->name, option->min, option->max);
            return CC_EINVAL;
        }
        store_number(config, option, number);
        i++;
    }
    return 0;
}

/* A listener on a non-loopback address needs TLS and --allow-remote; the
 * message names the address and the keys to set. */
static int check_remote(const struct cc_config *config, const char *host, const char *key,
                        char *error, size_t error_bytes)
{
    if (cc_config_host_is_loopback(host))
        return 0;
    if (!config->tls_cert_path) {
        snprintf(error, error_bytes,
                 "refusing to listen on %s (%s) without TLS: a non-loopback address needs "
                 "tls-cert and tls-key (--tls-cert FILE --tls-key FILE)%s, or listen on "
                 "loopback (127.0.0.1, ::1)",
                 host, key, config->allow_remote ? "" : " and --allow-remote");
        return CC_EINVAL;
    }
    if (!config->allow_remote) {
        snprintf(error, error_bytes,
                 "refusing to listen on %s (%s), a non-loopback address, without --allow-remote",
                 host, key);
        return CC_EINVAL;
    }
    return 0;
}

/* The checks that need every option: TLS's two files, loopback, and a key
 * with the data. */
static int check_config(struct cc_config *config, char *error, size_t error_bytes)
{
    if (!config->tls_cert_path != !config->tls_key_path) {
        snprintf(error, error_bytes,
                 "TLS needs both tls-cert and tls-key (--tls-cert FILE --tls-key FILE); only %s "
                 "was given",
                 config->tls_cert_path ? "tls-cert" : "tls-key");
        return CC_EINVAL;
    }
    if (config->http_listen &&
        check_remote(config, config->http_host, "http-listen", error, error_bytes) < 0)
        return CC_EINVAL;
    if (check_remote(config, config->listen_host, "listen", error, error_bytes) < 0)
        return CC_EINVAL;
    if (config->data_dir && !config->key_path)
        config->key_path = getenv("CARECOUNT_KEY");
    if (config->data_dir && (!config->key_path || !*config->key_path)) {
        snprintf(error, error_bytes,
                 "--data needs the data directory's key: --key KEYFILE (or CARECOUNT_KEY)");
        return CC_EINVAL;
    }
    return 0;
}

/* Strings of a configuration file, kept for the process's life (the
 * configuration points at them). */
static char *file_strings[256];
static size_t n_file_strings;

static char *keep(const char *text)
{
    if (n_file_strings == sizeof file_strings / sizeof file_strings[0])
        return NULL;
    char *copy = strdup(text);
    if (copy)
        file_strings[n_file_strings++] = copy;
    return copy;
}

void cc_config_release_files(void)
{
    for (size_t i = 0; i < n_file_strings; i++)
        free(file_strings[i]);
    n_file_strings = 0;
}

int cc_config_load_file(struct cc_config *config, const char *path, char *error,
                        size_t error_bytes)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(error, error_bytes, "%s: line %d column %d: %s", path, jerr.line, jerr.column,
                 jerr.text);
        return CC_EPARSE;
    }
    int rc = 0;
    if (!json_is_object(root)) {
        snprintf(error, error_bytes, "%s: the configuration must be a JSON object", path);
        rc = CC_EPARSE;
        goto out;
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        char flag[80], number[32];
        char *argv[2];
        int argc = 1;
        if (!strcmp(key, "config")) {
            snprintf(error, error_bytes, "%s: a configuration file cannot name another", path);
            rc = CC_EINVAL;
            goto out;
        }
        snprintf(flag, sizeof flag, "--%s", key);
        if (json_is_true(value) || json_is_false(value)) {
            if (strcmp(key, "allow-remote") && strcmp(key, "test-mode")) {
                snprintf(error, error_bytes, "%s: %.40s: needs a value, not true or false", path,
                         key);
                rc = CC_EINVAL;
                goto out;
            }
            if (json_is_false(value))
                continue;
        } else if (json_is_array(value) && !strcmp(key, "cors-origin")) {
            size_t k;
            json_t *item;
            json_array_foreach(value, k, item)
            {
                char why[256];
                char *pair[2] = {keep("--cors-origin"),
                                 json_is_string(item) ? keep(json_string_value(item)) : NULL};
                if (!pair[0] || !pair[1] ||
                    cc_config_parse_args_partial(config, 2, pair, why, sizeof why) < 0) {
                    snprintf(error, error_bytes, "%s: cors-origin: strings, at most %d", path,
                             CC_CONFIG_MAX_CORS_ORIGINS);
                    rc = CC_EINVAL;
                    goto out;
                }
            }
            continue;
        } else if (json_is_string(value)) {
            argv[1] = (char *)json_string_value(value);
            argc = 2;
        } else if (json_is_integer(value) && json_integer_value(value) >= 0) {
            snprintf(number, sizeof number, "%lld", (long long)json_integer_value(value));
            argv[1] = number;
            argc = 2;
        } else {
            snprintf(error, error_bytes, "%s: %.40s: must be a string, a whole number or true",
                     path, key);
            rc = CC_EINVAL;
            goto out;
        }
        argv[0] = keep(flag);
        if (argc == 2)
            argv[1] = keep(argv[1]);
        if (!argv[0] || (argc == 2 && !argv[1])) {
            snprintf(error, error_bytes, "%s: too many options", path);
            rc = CC_ENOMEM;
            goto out;
        }
        char why[256];
        if (cc_config_parse_args_partial(config, argc, argv, why, sizeof why) < 0) {
            snprintf(error, error_bytes, "%s: %s", path, why);
            rc = CC_EINVAL;
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}
