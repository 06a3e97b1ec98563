/*
 * cc_harness.c: starts and stops a real carecountd for integration tests
 * (see cc_harness.h).
 *
 * The server is a child process (fork + exec), with its stdout and stderr in
 * DIR/carecountd.log. The harness learns the port from the port file, which
 * the server writes atomically (temporary name, then rename) once it
 * listens, so reading it never sees half a number.
 *
 * Must never: leave a child running or a directory behind after
 * cc_harness_free.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cc_harness.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_error.h"

#ifndef CC_BIN_DIR
#define CC_BIN_DIR "."
#endif

#define MAX_ARGS 64
#define PATH_BYTES 4096

struct cc_harness {
    pid_t pid; /* 0 once reaped */
    uint16_t port;
    int exit_status; /* valid once reaped */
    bool sent_stop_signal; /* SIGTERM or SIGINT already sent: do not send another */
    char dir[PATH_BYTES];
    char port_file[PATH_BYTES + 16];
    bool http;          /* extra_args hold --http-listen (and no --http-port-file) */
    bool own_http_port_file;
    uint16_t http_port; /* read from DIR/http_port */
    char http_port_file[PATH_BYTES + 16];
    char log_file[PATH_BYTES + 32];
};

static const char *bin_dir(void)
{
    const char *dir = getenv("CC_BIN_DIR");
    return dir && *dir ? dir : CC_BIN_DIR;
}

void cc_harness_tool_path(char *out, size_t out_bytes)
{
    snprintf(out, out_bytes, "%s/carecount", bin_dir());
}

static uint64_t now_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
}

static int status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* Reaps the child if it has exited. Returns true if it is gone. */
static bool reap(struct cc_harness *harness, bool block)
{
    int status;
    if (harness->pid == 0)
        return true;
    pid_t rc;
    do
        rc = waitpid(harness->pid, &status, block ? 0 : WNOHANG);
    while (rc < 0 && errno == EINTR);
    if (rc == harness->pid) {
        harness->exit_status = status_code(status);
        harness->pid = 0;
        return true;
    }
    if (rc < 0) {
        harness->pid = 0; /* not our child any more: nothing left to wait for */
        harness->exit_status = -1;
        return true;
    }
    return false;
}

/* Waits up to timeout_ms for the child to exit. */
static bool wait_exit(struct cc_harness *harness, uint64_t timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;
    while (!reap(harness, false)) {
        if (now_ms() >= deadline)
            return false;
        sleep_ms(5);
    }
    return true;
}

static void dump_log(const struct cc_harness *harness)
{
    char *log = cc_harness_log(harness);
    if (log) {
        fprintf(stderr, "--- carecountd log ---\n%s--- end of log ---\n", log);
        free(log);
    }
}

/* Reads the port file if it exists. Returns 1 with *port set, 0 if absent. */
static int read_port_file(const char *path, uint16_t *port)
{
    FILE *file = fopen(path, "r");
    unsigned value;
    if (!file)
        return 0;
    int n = fscanf(file, "%u", &value);
    fclose(file);
    if (n != 1 || value == 0 || value > 65535)
        return 0;
    *port = (uint16_t)value;
    return 1;
}

static void exec_server(const struct cc_harness *harness, const char *const *extra_args,
                        pid_t test_pid)
{
    char program[PATH_BYTES];
    const char *argv[MAX_ARGS + 8];
    int argc = 0;
    sigset_t all;

    snprintf(program, sizeof(program), "%s/carecountd", bin_dir());
    argv[argc++] = program;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--port-file";
    argv[argc++] = harness->port_file;
    if (harness->http) {
        argv[argc++] = "--http-port-file";
        argv[argc++] = harness->http_port_file;
    }
    for (int i = 0; extra_args && extra_args[i] && i < MAX_ARGS; i++)
        argv[argc++] = extra_args[i];
    argv[argc] = NULL;

    int log_fd = open(harness->log_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log_fd < 0)
        _exit(127);
    if (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    close(log_fd);
    /* If the test process dies (a failed assertion ends it without
     * cc_harness_free), the server must not outlive it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != test_pid)
        _exit(127);
    /* The test runner's signal set-up must not leak into the server. */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    execv(program, (char *const *)argv);
    _exit(127);
}

int cc_harness_start(const char *const *extra_args, struct cc_harness **out)
{
    struct cc_harness *harness = calloc(1, sizeof(*harness));
    const char *tmp = getenv("TMPDIR");
    int rc;

    if (!harness)
        return CC_ENOMEM;
    snprintf(harness->dir, sizeof(harness->dir), "%s/carecount-test-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(harness->dir)) {
        harness->dir[0] = '\0';
        rc = CC_EIO;
        goto fail;
    }
    snprintf(harness->port_file, sizeof(harness->port_file), "%s/port", harness->dir);
    snprintf(harness->log_file, sizeof(harness->log_file), "%s/carecountd.log", harness->dir);
    snprintf(harness->http_port_file, sizeof(harness->http_port_file), "%s/http_port",
             harness->dir);
    for (int i = 0; extra_args && extra_args[i]; i++) {
        if (!strcmp(extra_args[i], "--http-listen"))
            harness->http = true;
        if (!strcmp(extra_args[i], "--http-port-file") && extra_args[i + 1])
            harness->own_http_port_file = true; /* the test's: read none */
    }
    if (harness->own_http_port_file)
        harness->http = false;

    fflush(NULL); /* so the child does not repeat buffered output */
    pid_t test_pid = getpid();
    harness->pid = fork();
    if (harness->pid < 0) {
        harness->pid = 0;
        rc = CC_EIO;
        goto fail;
    }
    if (harness->pid == 0)
        exec_server(harness, extra_args, test_pid);

    uint64_t deadline = now_ms() + CC_HARNESS_START_TIMEOUT_MS;
    while (!read_port_file(harness->port_file, &harness->port) ||
           (harness->http && !read_port_file(harness->http_port_file, &harness->http_port))) {
        if (reap(harness, false)) {
            fprintf(stderr, "carecountd exited with status %d before listening\n",
                    harness->exit_status);
            dump_log(harness);
            rc = CC_EIO;
            goto fail;
        }
        if (now_ms() >= deadline) {
            fprintf(stderr, "carecountd did not start listening in time\n");
            dump_log(harness);
            rc = CC_ETIMEDOUT;
            goto fail;
        }
        sleep_ms(5);
    }
    *out = harness;
    return 0;
fail:
    cc_harness_free(harness);
    return rc;
}

uint16_t cc_harness_port(const struct cc_harness *harness)
{
    return harness->port;
}

uint16_t cc_harness_http_port(const struct cc_harness *harness)
{
    return harness->http_port;
}

const char *cc_harness_dir(const struct cc_harness *harness)
{
    return harness->dir;
}

pid_t cc_harness_pid(const struct cc_harness *harness)
{
    return harness->pid;
}

int cc_harness_connect(const struct cc_harness *harness, struct cc_client **out)
{
    return cc_client_connect("127.0.0.1", harness->port, CC_HARNESS_CLIENT_TIMEOUT_MS, out);
}

int cc_harness_signal(struct cc_harness *harness, int signum)
{
    if (harness->pid <= 0)
        return CC_EIO;
    if (kill(harness->pid, signum) != 0)
        return CC_EIO;
    if (signum == SIGTERM || signum == SIGINT)
        harness->sent_stop_signal = true;
    return 0;
}

int cc_harness_stop(struct cc_harness *harness, int *exit_status)
{
    int rc = 0;
    if (harness->pid > 0) {
        /* A second SIGTERM while the server is already exiting (its signal
         * handlers gone) would kill it: send one only. */
        if (!harness->sent_stop_signal)
            kill(harness->pid, SIGTERM);
        harness->sent_stop_signal = true;
        if (!wait_exit(harness, CC_HARNESS_STOP_TIMEOUT_MS)) {
            fprintf(stderr, "carecountd did not stop after SIGTERM: killing it\n");
            kill(harness->pid, SIGKILL);
            reap(harness, true);
            rc = CC_ETIMEDOUT;
        }
    }
    if (harness->exit_status != 0)
        dump_log(harness);
    *exit_status = harness->exit_status;
    return rc;
}

char *cc_harness_log(const struct cc_harness *harness)
{
    FILE *file = fopen(harness->log_file, "r");
    char *text = NULL;
    size_t len = 0;
    if (!file)
        return NULL;
    if (fseek(file, 0, SEEK_END) == 0) {
        long size = ftell(file);
        if (size >= 0 && fseek(file, 0, SEEK_SET) == 0) {
            text = malloc((size_t)size + 1);
            if (text) {
                len = fread(text, 1, (size_t)size, file);
                text[len] = '\0';
            }
        }
    }
    fclose(file);
    return text;
}

static int remove_entry(const char *path, const struct stat *info, int type, struct FTW *ftw)
{
    (void)info;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

void cc_harness_free(struct cc_harness *harness)
{
    if (!harness)
        return;
    if (harness->pid > 0) {
        kill(harness->pid, SIGKILL);
        reap(harness, true);
    }
    if (harness->dir[0])
        nftw(harness->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(harness);
}
