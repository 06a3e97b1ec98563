/*
 * cc_config.h: every tunable of carecountd in one structure.
 *
 * Each field has its default below and its unit in its name. The command
 * line sets them (`carecountd --help` lists the options); nothing else in the
 * server hard-codes a limit that an operator might want to change.
 *
 * Must never: hold a secret (keys and tokens live in their own files).
 */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CC_CONFIG_HOST_BYTES 64
#define CC_CONFIG_MAX_CORS_ORIGINS 16

#define CC_CONFIG_DEFAULT_HOST "127.0.0.1"
#define CC_CONFIG_DEFAULT_PORT 7433
#define CC_CONFIG_DEFAULT_MAX_FRAME_BYTES (1u << 20)                  /* 1 MiB */
#define CC_CONFIG_DEFAULT_MAX_CONNECTIONS 256
/* Threads of the pool that runs queries and their audit commits: more than
 * the cores, as they wait on fsync in turn and the audit log commits the
 * records of waiting threads together. */
#define CC_CONFIG_DEFAULT_THREADS 8
#define CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS_PER_CONNECTION 16
#define CC_CONFIG_DEFAULT_MAX_PENDING_REQUESTS 256
#define CC_CONFIG_DEFAULT_MAX_WRITE_QUEUE_BYTES ((size_t)8 << 20)     /* 8 MiB */
#define CC_CONFIG_DEFAULT_IDLE_TIMEOUT_MS 300000                      /* 5 min */
#define CC_CONFIG_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000
#define CC_CONFIG_DEFAULT_FRAME_TIMEOUT_MS 10000
#define CC_CONFIG_DEFAULT_MAX_REQUESTS_PER_ACCOUNT_MINUTE 6000
#define CC_CONFIG_DEFAULT_MAX_TOTAL_WRITE_QUEUE_BYTES ((size_t)256 << 20) /* 256 MiB */

struct cc_config {
    /* Where to listen: a numeric IPv4 or IPv6 address and a port (0 picks a
     * free ephemeral port; see port_file). Loopback only unless
     * allow_remote, and then only with TLS (tls_cert_path). */
    char listen_host[CC_CONFIG_HOST_BYTES];
    uint16_t listen_port;
    bool allow_remote;
    /* If set, the bound port is written here (atomically) once listening. */
    const char *port_file;
    /* The HTTP/JSON listener (docs/protocol.md, "HTTP/JSON"): off unless
     * http_listen is set; the same loopback rule; its port file; the
     * origins allowed by CORS (none by default). */
    bool http_listen;
    char http_host[CC_CONFIG_HOST_BYTES];
    uint16_t http_port;
    const char *http_port_file;
    const char *cors_origins[CC_CONFIG_MAX_CORS_ORIGINS];
    size_t n_cors_origins;
    /* TLS on both listeners (docs/operator-guide.md, "TLS"): the PEM
     * certificate chain and the PEM private key (a file only its owner can
     * read), both or neither. Required for a listener on a non-loopback
     * address; NULL: plaintext, loopback only. The paths are not secrets;
     * the key is read at start by cc_tls and wiped. */
    const char *tls_cert_path;
    const char *tls_key_path;
    /* Largest request body accepted; a larger declared length is refused
     * before anything is allocated for it. */
    uint32_t max_frame_bytes;
    /* Connections served at once; more are accepted, told BUSY and closed. */
    uint32_t max_connections;
    uint32_t threads; /* the thread pool (UV_THREADPOOL_SIZE) */
    /* Requests of one connection in progress at once (running on the thread
     * pool); more are answered BUSY at once. */
    uint32_t max_pending_requests_per_connection;
    /* Requests in progress on the thread pool, all connections together
     * (the pool's backlog); more are answered BUSY at once. */
    uint32_t max_pending_requests;
    /* Reply bytes queued for one client; above this the server stops
     * reading that client's requests until the queue halves. */
    size_t max_write_queue_bytes;
    /* Reply bytes queued over all clients; above this, requests that would
     * run on the thread pool are answered BUSY until clients read. */
    size_t max_total_write_queue_bytes;
    /* A connection with no request in progress and no traffic for this long
     * is told TIMEDOUT and closed. */
    uint64_t idle_timeout_ms;
    /* A request frame must arrive whole within this long of its first byte
     * (and a connection's first frame within this long of the accept),
     * however its bytes trickle in; else TIMEDOUT and the connection is
     * closed. */
    uint64_t frame_timeout_ms;
    /* Requests one account may make per minute over all its connections
     * (ops that need an account); more are answered BUSY. */
    uint32_t max_requests_per_account_minute;
    /* Packed releases kept for repeats (queries/cc_release_cache.h), in
     * MiB; 0: none kept. */
    uint32_t release_cache_mb;
    /* After SIGTERM/SIGINT, in-flight work gets this long to finish before
     * the remaining connections are closed without their replies. */
    uint64_t shutdown_timeout_ms;
    /* Enables test-only request fields (ping's delay_ms). Never in
     * production. */
    bool test_mode;
    /* The data directory whose current store version is served (NULL: the
     * server starts without data and answers only ping and status). */
    const char *data_dir;
    /* The data directory's key file (or $CARECOUNT_KEY), required with
     * data_dir: the server refuses a key that is not the directory's. It
     * is read at start and wiped; the path is not a secret. */
    const char *key_path;
    /* How often the opt-out register is checked and, if it changed (or the
     * day did), a new data version is published: the policy's schedule
     * (DESIGN, Disclosure control 11). The checks fall on the wall clock's
     * multiples of this interval since the epoch (UTC midnight for a day),
     * so replicas publish at the same instants. 0 publishes at once
     * (checked every second). */
    uint64_t publish_interval_s;
    /* The disclosure policy file (docs/privacy.md; NULL: the built-in
     * defaults). A policy file that fails its checks stops the start. */
    const char *policy_path;
    /* A directory of codelists (NAME.csv or NAME.SYSTEM.csv) that queries
     * may name (NULL: DIR/codelists when it exists, else none). */
    const char *codelists_dir;
    /* A directory of operator-approved saved queries and comparisons
     * (NAME.json), the only thing a dashboard account may run (NULL:
     * DIR/saved when it exists, else none). */
    const char *saved_dir;
};

/* Fills *config with the defaults. */
void cc_config_defaults(struct cc_config *config);

/* Applies command-line options argv[0..argc) (no program name) to *config.
 * Strings in argv are borrowed, not copied. Returns 0, or CC_EINVAL with a
 * reason in error[0..error_bytes) for an unknown option, a missing or
 * malformed value, or a non-loopback address without --allow-remote and
 * TLS (--tls-cert and --tls-key). */
int cc_config_parse_args(struct cc_config *config, int argc, char **argv, char *error,
                         size_t error_bytes);

/*
 * Applies a configuration file: a JSON object whose keys are the option
 * names without the leading "--" ("listen", "max-connections", "data",
 * "policy", ...) and whose values are strings or whole numbers, or true for
 * the options that take no value ("allow-remote", "test-mode"; false
 * leaves them off). It is applied as if its options had been given on the
 * command line before the real ones, so a flag overrides the file. At most
 * 64 KiB. Returns 0, or CC_EINVAL / CC_EIO / CC_EPARSE with the key (or the
 * line and column) and the reason in error.
 */
/* As cc_config_parse_args() without the checks that need every option
 * (loopback address, TLS, key with data): for applying options in parts. */
int cc_config_parse_args_partial(struct cc_config *config, int argc, char **argv, char *error,
                                 size_t error_bytes);

int cc_config_load_file(struct cc_config *config, const char *path, char *error,
                        size_t error_bytes);

/* Frees the strings that every cc_config_load_file() so far has kept for
 * the configurations it filled (at most 256 in a process's life otherwise):
 * no configuration filled from a file may be used after. carecountd loads
 * one file and never calls it; a program that loads many (the config
 * fuzzer) calls it between loads. */
void cc_config_release_files(void);

/* Parses "HOST:PORT" or "[IPV6]:PORT" into host and port. Returns 0 or
 * CC_EINVAL. */
int cc_config_parse_listen(const char *text, char host[CC_CONFIG_HOST_BYTES], uint16_t *port);

/* True if host is a numeric loopback address (127.0.0.0/8 or ::1). */
bool cc_config_host_is_loopback(const char *host);

/* Writes the option summary for --help. */
void cc_config_usage(FILE *out);

#endif
