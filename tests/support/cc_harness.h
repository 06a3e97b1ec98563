/*
 * cc_harness.h: the integration-test harness: runs the real carecountd.
 *
 * cc_harness_start() starts the carecountd built next to the tests (from
 * $CC_BIN_DIR, else the CC_BIN_DIR the test was compiled with) on 127.0.0.1
 * port 0 with a fresh temporary directory, waits until the server has
 * written the port it bound to DIR/port, and hands back a harness that can
 * connect clients (cc_client.h), signal the server, and stop it with SIGTERM
 * returning its exit status. The server's stderr goes to DIR/carecountd.log.
 * A server that does not stop in time is killed, so a test never hangs.
 * Usable from any Criterion test:
 *
 *     struct cc_harness *h;
 *     cr_assert_eq(cc_harness_start(NULL, &h), 0);
 *     struct cc_client *c;
 *     cr_assert_eq(cc_harness_connect(h, &c), 0);
 *     ...
 *     int status;
 *     cr_assert_eq(cc_harness_stop(h, &status), 0);
 *     cr_assert_eq(status, 0);
 *     cc_harness_free(h);
 *
 * Must never: leave a server process or a temporary directory behind
 * (cc_harness_free kills and removes both; a server whose test process dies
 * first is killed by the kernel, PR_SET_PDEATHSIG).
 */
#ifndef CC_HARNESS_H
#define CC_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cc_client.h"

/* How long the harness waits for the server to start, and to stop after
 * SIGTERM before it kills it. Generous: sanitizer builds on a loaded
 * machine are slow, and these bound hangs, they are not measurements. */
#define CC_HARNESS_START_TIMEOUT_MS 60000
#define CC_HARNESS_STOP_TIMEOUT_MS 60000
#define CC_HARNESS_CLIENT_TIMEOUT_MS 30000

struct cc_harness;

/* Starts carecountd with `--listen 127.0.0.1:0 --port-file DIR/port` and
 * extra_args (a NULL-terminated list, or NULL). Returns 0 and sets *out
 * (free with cc_harness_free), or CC_EIO if the server could not be started
 * or exited before listening (its log is printed to stderr), CC_ETIMEDOUT,
 * or CC_ENOMEM. */
int cc_harness_start(const char *const *extra_args, struct cc_harness **out);

/* The port the server listens on. */
uint16_t cc_harness_port(const struct cc_harness *harness);

/* The HTTP listener's port: when extra_args hold --http-listen and no
 * --http-port-file, the harness adds --http-port-file DIR/http_port and
 * cc_harness_start waits for it too; 0 otherwise. */
uint16_t cc_harness_http_port(const struct cc_harness *harness);

/* The server's temporary directory (removed by cc_harness_free). */
const char *cc_harness_dir(const struct cc_harness *harness);

/* The server's process id (0 once it has been waited for). */
pid_t cc_harness_pid(const struct cc_harness *harness);

/* Connects a client to the server with CC_HARNESS_CLIENT_TIMEOUT_MS.
 * Returns 0 and sets *out (close with cc_client_close) or a CC_E* code. */
int cc_harness_connect(const struct cc_harness *harness, struct cc_client **out);

/* Sends a signal to the server. Returns 0 or CC_EIO. */
int cc_harness_signal(struct cc_harness *harness, int signum);

/* Sends SIGTERM (unless cc_harness_signal already sent SIGTERM or SIGINT)
 * and waits for the server to exit; kills it with SIGKILL if
 * it has not exited within CC_HARNESS_STOP_TIMEOUT_MS. Sets *exit_status to
 * the exit code, or 128 + the signal number if it died of a signal. Returns
 * 0, or CC_ETIMEDOUT if it had to be killed. */
int cc_harness_stop(struct cc_harness *harness, int *exit_status);

/* Returns the server's log so far (malloc'd, NUL-terminated; the caller
 * frees), or NULL. */
char *cc_harness_log(const struct cc_harness *harness);

/* Writes the path of the carecount tool built with the tests into out. */
void cc_harness_tool_path(char *out, size_t out_bytes);

/* Kills the server if it still runs, removes the directory, frees. NULL is
 * allowed. */
void cc_harness_free(struct cc_harness *harness);

#endif
