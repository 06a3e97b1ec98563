/*
 * fuzz_config.c: the server's configuration parsers (server/cc_config.h):
 * the configuration file (JSON, applied as options) and the command-line
 * options themselves. The first input byte picks which: even, the rest is
 * the file; odd, the rest is argv, its arguments separated by NUL bytes.
 *
 * Checks what an accepted configuration promises: a non-loopback listener
 * only with allow_remote and TLS, TLS's certificate only with its key, a
 * data directory only with a key, the CORS origins within their bound, every
 * string NUL-terminated.
 *
 * Must never: pass an input that yields an accepted configuration breaking
 * the loopback rule.
 */
#include "cc_config.h"
#include "cc_error.h"
#include "fuzz_common.h"

#define MAX_ARGS 32

static void check_config(const struct cc_config *c)
{
    check(memchr(c->listen_host, '\0', sizeof c->listen_host) != NULL);
    check(memchr(c->http_host, '\0', sizeof c->http_host) != NULL);
    check(c->n_cors_origins <= CC_CONFIG_MAX_CORS_ORIGINS);
    for (size_t i = 0; i < c->n_cors_origins; i++)
        check(c->cors_origins[i] != NULL);
}

static void from_args(const uint8_t *data, size_t size)
{
    /* a NUL-terminated copy, cut into arguments at each NUL */
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[MAX_ARGS];
    int argc = 0;
    for (size_t at = 0; at <= size && argc < MAX_ARGS;) {
        argv[argc++] = text + at;
        at += strlen(text + at) + 1;
    }
    struct cc_config config;
    cc_config_defaults(&config);
    char error[512] = "";
    int rc = cc_config_parse_args(&config, argc, argv, error, sizeof error);
    check(rc == 0 || rc == CC_EINVAL);
    if (rc == 0) {
        check_config(&config);
        check(config.allow_remote || cc_config_host_is_loopback(config.listen_host));
        check(!config.http_listen || config.allow_remote ||
              cc_config_host_is_loopback(config.http_host));
        check(config.tls_cert_path || cc_config_host_is_loopback(config.listen_host));
        check(!config.http_listen || config.tls_cert_path ||
              cc_config_host_is_loopback(config.http_host));
        check(!config.tls_cert_path == !config.tls_key_path);
    } else {
        check(error[0] != '\0');
    }
    free(text);
}

static void from_file(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write_file("carecountd.json", data, size, path, sizeof path);
    struct cc_config config;
    cc_config_defaults(&config);
    char error[512] = "";
    int rc = cc_config_load_file(&config, path, error, sizeof error);
    check(rc == 0 || rc == CC_EINVAL || rc == CC_EPARSE || rc == CC_ENOMEM);
    if (rc == 0)
        check_config(&config);
    else
        check(error[0] != '\0');
    /* then the checks that need every option, as carecountd applies them */
    if (rc == 0) {
        char *none[1] = {NULL};
        rc = cc_config_parse_args(&config, 0, none, error, sizeof error);
        check(rc == 0 || rc == CC_EINVAL);
        if (rc == 0) {
            check(config.allow_remote || cc_config_host_is_loopback(config.listen_host));
            check(config.tls_cert_path || cc_config_host_is_loopback(config.listen_host));
        }
    }
    cc_config_release_files();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        from_args(data + 1, size - 1);
    else
        from_file(data + 1, size - 1);
    return 0;
}
