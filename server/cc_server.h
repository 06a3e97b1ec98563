/*
 * cc_server.h: carecountd's network server on libuv.
 *
 * The server owns one event loop. The loop only reads, frames, dispatches and
 * writes (see cc_frame.h, cc_request.h, cc_op.h); an op that takes longer
 * than a few microseconds runs on the libuv thread pool and its reply is
 * written back on the loop. Every queue is bounded by struct cc_config.
 *
 * Shutdown, the one sequence: SIGTERM or SIGINT (a uv_signal handle, so no
 * code runs in signal context) -> stop accepting -> stop reading every
 * connection -> let requests in progress finish and their replies flush,
 * within shutdown_timeout_ms -> close every connection -> close the signal
 * and timer handles -> uv_loop_close() returns 0. A second signal closes the
 * connections at once.
 *
 * TLS, when configured, is on both listeners; cc_tls does the cryptography
 * over memory buffers, so the loop, its timers and its write queue are the
 * same for TLS and plaintext connections.
 *
 * Must never: log a request body or anything that identifies a person, or
 * grow its memory without bound because of what a client sends.
 */
#ifndef CC_SERVER_H
#define CC_SERVER_H

#include <stdint.h>

#include "cc_config.h"

struct cc_server;

/* Creates a server with its own loop and installs its SIGINT/SIGTERM
 * handlers (shut down) and its SIGHUP handler (publish now: a new store
 * version and the register's changes; never stops the server), active once
 * cc_server_run starts. It also turns GSL's
 * aborting error handler off for the whole process, so a GSL domain error
 * in a statistic gives an error code, never an abort. With a TLS
 * certificate and key in config it loads and checks them (cc_tls.h), so
 * that a bad file stops the start with its reason logged. config is copied
 * (its strings must outlive the server). Returns 0 and sets *out (free with
 * cc_server_free), CC_ENOMEM / CC_EIO, or cc_tls_server_context_new's
 * code. */
int cc_server_new(const struct cc_config *config, struct cc_server **out);

/* Binds and listens on the configured address, then writes the port file if
 * one was configured. Returns 0, CC_EINVAL for an address it cannot use, or
 * CC_EIO (the reason is logged). */
int cc_server_listen(struct cc_server *server);

/* The port the server is bound to (0 before cc_server_listen). */
uint16_t cc_server_port(const struct cc_server *server);

/* The port the HTTP/JSON listener is bound to (0: none). */
uint16_t cc_server_http_port(const struct cc_server *server);

/* Serves until shut down by a signal, then closes every handle and the loop.
 * Returns 0 after a clean shutdown, or CC_EINTERNAL if the loop would not
 * close (a handle leaked). */
int cc_server_run(struct cc_server *server);

struct cc_serverdata;
struct cc_services;

/* Gives the server what its ops share (cc_services.h: policy, codelists,
 * key, accounts, audit log); the server takes its own reference, and on
 * SIGHUP replaces them with a reload (cc_services_reload) while requests in
 * flight finish with the ones they started with. Without it the server
 * answers only ping, status and errors. */
void cc_server_set_services(struct cc_server *server, struct cc_services *services);

/* Gives the server the data it serves (not owned: free it after the server)
 * and starts publishing new data versions on the configured schedule: each
 * check loads the directory's new store version if an ingest wrote one, or
 * publishes the register's changes, on the thread pool, and swaps the new
 * version in on the loop (see cc_serverdata.h). */
int cc_server_set_data(struct cc_server *server, struct cc_serverdata *data);

/* Frees the server, closing anything still open. NULL is allowed. */
void cc_server_free(struct cc_server *server);

#endif
