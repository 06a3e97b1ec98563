/*
 * carecountd.c: the carecount server program.
 *
 * Parses the command line into a struct cc_config, listens, serves until
 * SIGTERM or SIGINT (SIGHUP publishes a new data version now, see
 * cc_server.h), and exits 0 after a clean shutdown (every handle closed,
 * the loop closed). Exit status 2 means a usage error, 1 a failure to start
 * or to shut down cleanly.
 *
 * Must never: run with a non-loopback address unless --allow-remote was
 * given and TLS configured (enforced in cc_config_parse_args).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_config.h"
#include "cc_log.h"
#include "cc_server.h"
#include "cc_serverdata.h"
#include "cc_services.h"
#include "cc_version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecountd [--help] [--version] [OPTIONS]\n"
            "\n"
            "carecountd serves disclosure-controlled aggregate figures over the\n"
            "carecount protocol (docs/protocol.md). It stops cleanly on SIGTERM or\n"
            "SIGINT, letting requests in progress finish. SIGHUP makes it publish at\n"
            "once: a new store version written by an ingest, and opt-out changes.\n"
            "\n");
    cc_config_usage(out);
}

int main(int argc, char **argv)
{
    struct cc_config config;
    struct cc_server *server = NULL;
    struct cc_serverdata *data = NULL;
    struct cc_services *services = NULL;
    char error[1024];
    int status = 1;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--version")) {
            printf("carecountd %s\n", CC_VERSION_STRING);
            return 0;
        }
    }
    cc_config_defaults(&config);
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--config") &&
            cc_config_load_file(&config, argv[i + 1], error, sizeof(error)) < 0) {
            fprintf(stderr, "carecountd: %s\n", error);
            return 2;
        }
    }
    if (cc_config_parse_args(&config, argc - 1, argv + 1, error, sizeof(error)) < 0) {
        fprintf(stderr, "carecountd: %s\n", error);
        return 2;
    }
    /* The thread pool's size, before anything starts it (libuv reads it
     * once); an operator's UV_THREADPOOL_SIZE is overridden by --threads. */
    char threads[16];
    snprintf(threads, sizeof threads, "%u", config.threads);
    if (setenv("UV_THREADPOOL_SIZE", threads, 1) != 0) {
        fprintf(stderr, "carecountd: cannot set the thread pool's size\n");
        return 1;
    }
    /* A client that goes away mid-write must give EPIPE, not kill us. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        cc_log("cannot ignore SIGPIPE");
        return 1;
    }
    if (config.data_dir) {
        /* Load before listening: a server that cannot serve its data does
         * not start (a corrupt snapshot is reported, never half-loaded). */
        if (cc_serverdata_open(config.data_dir, config.key_path, &data, error, sizeof(error)) < 0) {
            cc_log("cannot serve %s: %s", config.data_dir, error);
            return 1;
        }
    }
    if (cc_services_open(&config, &services, error, sizeof(error)) < 0) {
        cc_log("cannot start: %s", error);
        goto out;
    }
    if (cc_server_new(&config, &server) < 0)
        goto out;
    cc_server_set_services(server, services);
    if (data && cc_server_set_data(server, data) < 0)
        goto out;
    if (cc_server_listen(server) < 0)
        goto out;
    if (cc_server_run(server) < 0)
        goto out;
    status = 0;
out:
    cc_server_free(server);
    cc_serverdata_free(data);
    cc_services_release(services);
    return status;
}
