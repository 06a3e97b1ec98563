/*
 * Tests for the guards of a data directory (core/cc_datadir.c, and their
 * use by `carecount ingest`, `carecount optout` and carecountd): two real
 * ingests at once never break the store; a second writer is refused with
 * the lock named, or waits with --wait; a key that is not the directory's,
 * an all-zero key, and a key file hard-linked into the directory are
 * refused; a directory, state.db or snapshot that others could change is
 * refused with the path and the reason; the provenance ingest records
 * (generated or other feeds) and bench_queries --export's refusal of
 * anything but generated data; and the faults: a full disk, a missing key,
 * a damaged state.db, a data directory that cannot be written.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_testfs.h"
#include "cc_datadir.h"
#include "cc_error.h"
#include "cc_harness.h"
#include "cc_ingest.h"
#include "cc_store.h"

static char root[256], data[300], feeds[300], key[300];

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs a shell command; returns its exit status (or 128 + signal). */
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int status = system(cmd);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* The whole of a small file, NUL-terminated (static buffer). */
static const char *slurp(const char *path)
{
    static char text[16384];
    text[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return text;
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void setup(void)
{
    cc_testfs_make_dir(root, sizeof root, "datadir");
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(feeds, sizeof feeds, "%s/feeds", root);
    snprintf(key, sizeof key, "%s/key", root);
    cr_assert_eq(sh("'%s/carecount' generate --quiet --patients 1500 --seed 11 --out '%s' && "
                    "'%s/carecount' keygen '%s' >/dev/null",
                    CC_BIN_DIR, feeds, CC_BIN_DIR, key),
                 0);
}

static void teardown(void)
{
    sh("chmod -R u+rwX '%s' 2>/dev/null; rm -rf '%s'", root, root);
}

TestSuite(datadir, .init = setup, .fini = teardown, .timeout = 600);

/* The first ingest: the reference data and the registrations. */
static void first_ingest(void)
{
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' areas='%s/areas.csv' "
                    "postcodes='%s/postcodes.csv' population='%s/population.csv' "
                    "gp_registrations='%s/gp_registrations.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds, feeds, feeds, feeds),
                 0);
}

/* The current version; asserts its snapshot loads. */
static uint64_t loadable_version(void)
{
    char err[1024];
    uint64_t version = 0;
    cc_store *store = NULL;
    int rc = cc_datadir_load_current(data, key, CC_STORE_LOAD_ALL, &store, &version, err,
                                     sizeof err);
    cr_assert_eq(rc, 0, "the current version %llu does not load: %s",
                 (unsigned long long)version, err);
    cc_store_free(store);
    return version;
}

/* Writes feeds/NAME: the header of feeds/FROM and its lines first..last. */
static void slice_feed(const char *from, const char *name, int first, int last)
{
    cr_assert_eq(sh("sed -n '1p;%d,%dp' '%s/%s' > '%s/%s'", first, last, feeds, from, feeds, name),
                 0);
}

/* Starts `carecount ingest` in the background; its stderr goes to err_path. */
static pid_t start_ingest(const char *kind_path, const char *err_path, int wait)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        char program[400];
        snprintf(program, sizeof program, "%s/carecount", CC_BIN_DIR);
        int fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int out = open("/dev/null", O_WRONLY);
        if (fd < 0 || out < 0)
            _exit(99);
        dup2(fd, 2);
        dup2(out, 1);
        if (wait)
            execl(program, program, "ingest", "--quiet", "--wait", "--data", data, "--key", key,
                  kind_path, (char *)NULL);
        else
            execl(program, program, "ingest", "--quiet", "--data", data, "--key", key,
                  kind_path, (char *)NULL);
        _exit(98);
    }
    return pid;
}

static int exit_code(pid_t pid)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Two ingests at once, several rounds: each either succeeds or is refused
 * naming the lock; after every round the current version loads, and it
 * moved by exactly the number that succeeded. */
Test(datadir, two_ingests_at_once_never_break_the_store)
{
    first_ingest();
    uint64_t version = loadable_version();
    int refused = 0;
    for (int round = 0; round < 5; round++) {
        char a[600], b[600], name_a[64], name_b[64], err_a[600], err_b[600];
        snprintf(name_a, sizeof name_a, "gp_events_%d.csv", round);
        snprintf(name_b, sizeof name_b, "hes_apc_%d.csv", round);
        slice_feed("gp_events.csv", name_a, 2 + round * 400, 401 + round * 400);
        slice_feed("hes_apc.csv", name_b, 2 + round * 100, 101 + round * 100);
        snprintf(a, sizeof a, "gp_events=%s/%s", feeds, name_a);
        snprintf(b, sizeof b, "hes_apc=%s/%s", feeds, name_b);
        snprintf(err_a, sizeof err_a, "%s/err_a", root);
        snprintf(err_b, sizeof err_b, "%s/err_b", root);
        pid_t pa = start_ingest(a, err_a, 0), pb = start_ingest(b, err_b, 0);
        int ca = exit_code(pa), cb = exit_code(pb);
        int succeeded = 0;
        const int codes[2] = {ca, cb};
        const char *errs[2] = {err_a, err_b};
        for (int i = 0; i < 2; i++) {
            if (codes[i] == 0) {
                succeeded++;
                continue;
            }
            const char *text = slurp(errs[i]);
            cr_assert_eq(codes[i], 1, "round %d: exit %d: %s", round, codes[i], text);
            cr_assert(strstr(text, CC_DATADIR_LOCK_FILE) && strstr(text, "held by"),
                      "round %d: a refusal names the lock: %s", round, text);
            refused++;
        }
        cr_assert_geq(succeeded, 1, "round %d: one of them must get the lock", round);
        uint64_t now = loadable_version();
        cr_assert_eq(now, version + (uint64_t)succeeded, "round %d", round);
        version = now;
    }
    cr_log_info("%d of 10 ingests were refused for the lock", refused);

    /* and the server starts on what is left */
    const char *args[] = {"--data", data, "--key", key, NULL};
    struct cc_harness *h = NULL;
    cr_assert_eq(cc_harness_start(args, &h), 0);
    int status = -1;
    cr_assert_eq(cc_harness_stop(h, &status), 0);
    cr_assert_eq(status, 0);
    cc_harness_free(h);
}

/* With --wait both ingests of every round succeed, one after the other. */
Test(datadir, with_wait_two_ingests_at_once_both_succeed)
{
    first_ingest();
    uint64_t version = loadable_version();
    for (int round = 0; round < 3; round++) {
        char a[600], b[600], name_a[64], name_b[64], err_a[600], err_b[600];
        snprintf(name_a, sizeof name_a, "gp_events_%d.csv", round);
        snprintf(name_b, sizeof name_b, "community_%d.csv", round);
        slice_feed("gp_events.csv", name_a, 2 + round * 400, 401 + round * 400);
        slice_feed("community_contacts.csv", name_b, 2 + round * 100, 101 + round * 100);
        snprintf(a, sizeof a, "gp_events=%s/%s", feeds, name_a);
        snprintf(b, sizeof b, "community=%s/%s", feeds, name_b);
        snprintf(err_a, sizeof err_a, "%s/err_a", root);
        snprintf(err_b, sizeof err_b, "%s/err_b", root);
        pid_t pa = start_ingest(a, err_a, 1), pb = start_ingest(b, err_b, 1);
        cr_assert_eq(exit_code(pa), 0, "%s", slurp(err_a));
        cr_assert_eq(exit_code(pb), 0, "%s", slurp(err_b));
        uint64_t now = loadable_version();
        cr_assert_eq(now, version + 2, "round %d", round);
        version = now;
    }
}

Test(datadir, a_writer_holding_the_lock_refuses_ingest_and_optout_writers)
{
    first_ingest();
    int fd = -1;
    char err[1024];
    cr_assert_eq(cc_datadir_lock(data, 0, &fd, err, sizeof err), 0, "%s", err);
    /* a second taker in this process's child is refused at once */
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%s/err", root);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, err_path),
                 1);
    const char *text = slurp(err_path);
    cr_assert(strstr(text, "writer.lock") && strstr(text, "--wait"), "%s", text);
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    cr_assert(strstr(text, pid), "names the holder: %s", text);
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type ndop >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "writer.lock"), "%s", slurp(err_path));
    /* readers are not writers: status still answers */
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, err_path),
                 0, "%s", slurp(err_path));
    cr_assert_eq(loadable_version(), 1);
    cc_datadir_unlock(fd);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds),
                 0);
    cr_assert_eq(loadable_version(), 2);
}

/* ---- the key -------------------------------------------------------------------------- */

Test(datadir, a_key_that_is_not_the_directorys_is_refused_everywhere)
{
    first_ingest();
    char other[400], err_path[600];
    snprintf(other, sizeof other, "%s/other.key", root);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    cr_assert_eq(sh("'%s/carecount' keygen --out '%s' >/dev/null", CC_BIN_DIR, other), 0);
    /* a type 1 opt-out recorded with the right key */
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type type1 --date 2020-01-01 >/dev/null",
                    CC_BIN_DIR, data, key),
                 0);

    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, other, feeds, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "not the data directory's key"), "%s", slurp(err_path));
    cr_assert_eq(loadable_version(), 1, "nothing was ingested under the other key");

    /* practice staff asking with the wrong key get a refusal, not "no
     * opt-out in force" */
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - >'%s' 2>&1",
                    CC_BIN_DIR, data, other, err_path),
                 1);
    const char *text = slurp(err_path);
    cr_assert(strstr(text, "not the data directory's key"), "%s", text);
    cr_assert_null(strstr(text, "no opt-out"), "%s", text);
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type ndop >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, other, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "not the data directory's key"), "%s", slurp(err_path));

    /* and the server */
    char log[600];
    snprintf(log, sizeof log, "%s/server.log", root);
    cr_assert_neq(sh("'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'",
                     CC_BIN_DIR, data, other, log),
                  0);
    cr_assert(strstr(slurp(log), "not the data directory's key"), "%s", slurp(log));

    /* the right key still works */
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - >'%s' 2>&1",
                    CC_BIN_DIR, data, key, err_path),
                 0);
    cr_assert(strstr(slurp(err_path), "type 1 opt-out"), "%s", slurp(err_path));
}

Test(datadir, an_all_zero_key_is_refused)
{
    char zero[400], err_path[600];
    snprintf(zero, sizeof zero, "%s/zero.key", root);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    cr_assert_eq(sh("printf 'carecount-key-v1\\n%%064d\\n' 0 > '%s' && chmod 600 '%s'", zero, zero),
                 0);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' '%s' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, zero, feeds, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "all zero"), "%s", slurp(err_path));
    struct stat st;
    cr_assert_neq(stat(data, &st), 0, "a refused first ingest leaves no data directory");
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type ndop >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, zero, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "all zero"), "%s", slurp(err_path));
}

Test(datadir, a_key_file_hard_linked_into_the_directory_is_refused)
{
    first_ingest();
    char link[600], err_path[600];
    snprintf(link, sizeof link, "%s/rejects/spare", data);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    cr_assert_eq(sh("mkdir -p '%s/rejects' && ln '%s' '%s'", data, key, link), 0);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "hard link"), "%s", slurp(err_path));
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), "hard link"), "%s", slurp(err_path));
    unlink(link);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds),
                 0);
}

/* ---- permissions ---------------------------------------------------------------------- */

/* An ingest of one more file must fail naming `what`; then the damage is
 * undone with `undo` and it succeeds. */
static void refused_until(const char *what, const char *undo)
{
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%s/err", root);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, err_path),
                 1);
    const char *text = slurp(err_path);
    cr_assert(strstr(text, what), "names %s: %s", what, text);
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, err_path),
                 1);
    cr_assert(strstr(slurp(err_path), what), "optout names %s: %s", what, slurp(err_path));
    cr_assert_eq(sh("%s", undo), 0);
}

Test(datadir, a_directory_or_file_others_could_change_is_refused)
{
    first_ingest();
    char undo[800], snap[600], err[512];
    uint64_t v;
    cr_assert_eq(cc_ingest_current_store(data, &v, snap, sizeof snap, err, sizeof err), 0);

    cr_assert_eq(sh("chmod 0777 '%s'", data), 0);
    snprintf(undo, sizeof undo, "chmod 0700 '%s'", data);
    refused_until("writable by group or others (mode 0777)", undo);

    cr_assert_eq(sh("chmod 0666 '%s/state.db'", data), 0);
    snprintf(undo, sizeof undo, "chmod 0600 '%s/state.db'", data);
    refused_until("state.db: writable by group or others", undo);

    cr_assert_eq(sh("chmod 0664 '%s'", snap), 0);
    snprintf(undo, sizeof undo, "chmod 0600 '%s'", snap);
    refused_until(".snap: writable by group or others", undo);

    /* the server refuses too */
    cr_assert_eq(sh("chmod 0770 '%s'", data), 0);
    char log[600];
    snprintf(log, sizeof log, "%s/server.log", root);
    cr_assert_neq(sh("'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'",
                     CC_BIN_DIR, data, key, log),
                  0);
    cr_assert(strstr(slurp(log), "writable by group or others"), "%s", slurp(log));
    cr_assert_eq(sh("chmod 0700 '%s'", data), 0);

    if (geteuid() == 0) {
        /* owned by another user (only root can arrange that) */
        cr_assert_eq(sh("chown 65534 '%s/state.db'", data), 0);
        snprintf(undo, sizeof undo, "chown 0 '%s/state.db'", data);
        refused_until("state.db: owned by another user", undo);
    }
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds),
                 0);
    cr_assert_eq(loadable_version(), 2);
}

/* A snapshot swapped in from another data directory (a valid store, written
 * with another key) is refused by the server and by ingest. */
Test(datadir, a_snapshot_not_written_with_this_directorys_key_is_refused)
{
    first_ingest();
    char other_data[400], other_key[400], snap[600], other_snap[600], err[1024], log[600];
    snprintf(other_data, sizeof other_data, "%s/other-data", root);
    snprintf(other_key, sizeof other_key, "%s/other.key", root);
    cr_assert_eq(sh("'%s/carecount' keygen '%s' >/dev/null && '%s/carecount' ingest --quiet "
                    "--data '%s' --key '%s' '%s' >/dev/null",
                    CC_BIN_DIR, other_key, CC_BIN_DIR, other_data, other_key, feeds),
                 0);
    uint64_t v;
    cr_assert_eq(cc_ingest_current_store(data, &v, snap, sizeof snap, err, sizeof err), 0);
    cr_assert_eq(cc_ingest_current_store(other_data, &v, other_snap, sizeof other_snap, err,
                                         sizeof err),
                 0);
    cr_assert_eq(sh("cp '%s' '%s' && chmod 600 '%s'", other_snap, snap, snap), 0);

    snprintf(log, sizeof log, "%s/server.log", root);
    cr_assert_neq(sh("'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'",
                     CC_BIN_DIR, data, key, log),
                  0);
    cr_assert(strstr(slurp(log), "not written with this data directory's key"), "%s", slurp(log));
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, log),
                 1);
    cr_assert(strstr(slurp(log), "not written with this data directory's key"), "%s", slurp(log));
}

/* ---- faults: a full disk, a missing key, a damaged state.db ---------------------------- */

/* A full disk, as a file-size limit (ulimit -f, with SIGXFSZ ignored so a
 * write fails with EFBIG as on a full file system): the ingest that cannot
 * write its snapshot fails with a clear error and publishes nothing; the
 * version before it still loads and serves, state.db passes its integrity
 * check, the opt-out committed before is still there, and the same ingest
 * with room succeeds. */
Test(datadir, a_full_disk_fails_the_ingest_clearly_and_loses_nothing)
{
    first_ingest();
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type ndop --date 2020-01-01 >/dev/null",
                    CC_BIN_DIR, data, key),
                 0);
    uint64_t before = loadable_version();
    char err_path[600];
    snprintf(err_path, sizeof err_path, "%s/err", root);
    /* 64 KiB of file at most: the GP events snapshot needs more */
    int rc = sh("(trap '' XFSZ; ulimit -f 64; exec '%s/carecount' ingest --quiet --data '%s' "
                "--key '%s' gp_events='%s/gp_events.csv') >/dev/null 2>'%s'",
                CC_BIN_DIR, data, key, feeds, err_path);
    const char *err = slurp(err_path);
    cr_assert(rc == 1 || rc == 2, "a clear failure, not a crash: exit %d: %s", rc, err);
    cr_assert(strstr(err, "carecount ingest:"), "says which command failed: %s", err);
    cr_assert(strstr(err, "too large") || strstr(err, "write") || strstr(err, "space") ||
                  strstr(err, "input/output") || strstr(err, "disk"),
              "says what failed: %s", err);
    cr_assert_eq(loadable_version(), before, "nothing new was published");
    char out[600];
    snprintf(out, sizeof out, "%s/check", root);
    cr_assert_eq(sh("sqlite3 '%s/state.db' 'PRAGMA integrity_check' > '%s'", data, out), 0);
    cr_assert(!strncmp(slurp(out), "ok", 2), "state.db: %s", slurp(out));
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout history --data '%s' --key '%s' "
                    "--nhs-number - > '%s'",
                    CC_BIN_DIR, data, key, out),
                 0);
    cr_assert(strstr(slurp(out), "national data opt-out") && strstr(slurp(out), "2020-01-01"),
              "the committed opt-out is there: %s", slurp(out));
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, err_path),
                 0, "with room the same ingest succeeds: %s", slurp(err_path));
    cr_assert_eq(loadable_version(), before + 1);
}

/* A missing key file: ingest, the opt-out tool and the server each refuse
 * at once, naming the path, and change nothing. */
Test(datadir, a_missing_key_is_refused_clearly_everywhere)
{
    first_ingest();
    uint64_t before = loadable_version();
    char missing[400], err_path[600];
    snprintf(missing, sizeof missing, "%s/no-such.key", root);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    int rc = sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                CC_BIN_DIR, data, missing, feeds, err_path);
    cr_assert(rc == 1 || rc == 2, "refused: exit %d: %s", rc, slurp(err_path));
    cr_assert(strstr(slurp(err_path), "no-such.key"), "names the key: %s", slurp(err_path));
    cr_assert_neq(sh("echo 9990000018 | '%s/carecount' optout status --data '%s' --key '%s' "
                     "--nhs-number - >/dev/null 2>'%s'",
                     CC_BIN_DIR, data, missing, err_path),
                  0);
    cr_assert(strstr(slurp(err_path), "no-such.key"), "names the key: %s", slurp(err_path));
    cr_assert_eq(sh("'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'",
                    CC_BIN_DIR, data, missing, err_path),
                 1, "%s", slurp(err_path));
    cr_assert(strstr(slurp(err_path), "no-such.key"), "names the key: %s", slurp(err_path));
    cr_assert_eq(loadable_version(), before);
}

/* A damaged state.db (its pages overwritten in the middle): the server
 * and the tools refuse it with a message naming it, never crash, and the
 * store snapshots are not touched. */
Test(datadir, a_damaged_state_db_is_refused_clearly)
{
    first_ingest();
    char db[400], err_path[600];
    snprintf(db, sizeof db, "%s/state.db", data);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    struct stat st;
    cr_assert_eq(stat(db, &st), 0);
    cr_assert_gt(st.st_size, 8192);
    /* garbage over every page but the first (the header stays a database's) */
    cr_assert_eq(sh("dd if=/dev/urandom of='%s' bs=4096 seek=1 count=%lld conv=notrunc "
                    "2>/dev/null",
                    db, (long long)(st.st_size / 4096 - 1)),
                 0);
    int rc = sh("'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'", CC_BIN_DIR,
                data, key, err_path);
    cr_assert(rc == 1 || rc == 2, "refused, not crashed: exit %d: %s", rc, slurp(err_path));
    cr_assert(strstr(slurp(err_path), "state.db") || strstr(slurp(err_path), "corrupt") ||
                  strstr(slurp(err_path), "malformed"),
              "says what is wrong: %s", slurp(err_path));
    rc = sh("'%s/carecount' audit verify --data '%s' --key '%s' >/dev/null 2>'%s'", CC_BIN_DIR,
            data, key, err_path);
    cr_assert(rc >= 1 && rc <= 3, "refused, not crashed: exit %d: %s", rc, slurp(err_path));
    rc = sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' gp_events='%s/gp_events.csv' "
            ">/dev/null 2>'%s'",
            CC_BIN_DIR, data, key, feeds, err_path);
    cr_assert(rc == 1 || rc == 2, "refused, not crashed: exit %d: %s", rc, slurp(err_path));
}

/* ---- provenance: record-level exports only from generated data ------------------------ */

/* bench_queries --export into root/CSV_NAME on dir; what it printed goes to
 * root/bench.out. Its exit status. */
static int export_from(const char *dir, const char *csv_name)
{
    return sh("'%s/bench_queries' --data '%s' --key '%s' --runs 1 --export '%s/%s' "
              ">'%s/bench.out' 2>&1",
              CC_BIN_DIR, dir, key, root, csv_name, root);
}

static struct cc_provenance provenance_of(const char *dir)
{
    struct cc_provenance p;
    char err[1024];
    cr_assert_eq(cc_datadir_provenance(dir, &p, err, sizeof err), 0, "%s", err);
    return p;
}

/* The refusal bench_queries prints for a directory of other feeds; and it
 * wrote nothing. */
static void export_refused(const char *dir, const char *csv_name, const char *reason)
{
    char expected[1200], csv[600], out[600];
    snprintf(out, sizeof out, "%s/bench.out", root);
    cr_assert_eq(export_from(dir, csv_name), 1, "refused: %s", slurp(out));
    snprintf(expected, sizeof expected,
             "bench_queries: --export writes record-level data and is only for data directories "
             "built from `carecount generate` output; %s was ingested from other feeds "
             "(provenance: feeds: %s",
             dir, reason);
    cr_assert(strstr(slurp(out), expected), "expected \"%s\" in: %s", expected, slurp(out));
    snprintf(csv, sizeof csv, "%s/%s", root, csv_name);
    cr_assert_neq(access(csv, F_OK), 0, "nothing exported");
}

/* `carecount generate` output, ingested whole: "generated" with the seed,
 * the patient count and the manifest's SHA-256; bench_queries exports. */
Test(datadir, generated_feeds_ingest_as_generated_and_bench_queries_exports_them)
{
    char out[600], hex_path[600];
    snprintf(out, sizeof out, "%s/ingest.out", root);
    snprintf(hex_path, sizeof hex_path, "%s/manifest.sha256", root);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' '%s' >'%s'", CC_BIN_DIR,
                    data, key, feeds, out),
                 0);
    cr_assert(strstr(slurp(out), "provenance: generated (carecount generate, seed 11, 1500 "
                                 "patients)"),
              "%s", slurp(out));
    struct cc_provenance p = provenance_of(data);
    cr_assert_eq(p.source, CC_PROVENANCE_GENERATED, "%s", p.reason);
    cr_assert_eq(p.seed, 11);
    cr_assert_eq(p.patients, 1500);
    cr_assert_eq(p.n_runs, 1);
    cr_assert_eq(sh("sha256sum '%s/manifest.json' | cut -c1-64 | tr -d '\\n' >'%s'", feeds,
                    hex_path),
                 0);
    cr_assert_str_eq(p.manifest_sha256, slurp(hex_path));

    char bench_out[600], persons[600];
    snprintf(bench_out, sizeof bench_out, "%s/bench.out", root);
    cr_assert_eq(export_from(data, "csv"), 0, "%s", slurp(bench_out));
    cr_assert(strstr(slurp(bench_out), "export: "), "%s", slurp(bench_out));
    snprintf(persons, sizeof persons, "%s/csv/persons.csv", root);
    struct stat st;
    cr_assert_eq(stat(persons, &st), 0);
    cr_assert_gt(st.st_size, 1000 * 20, "a row per opted-in person");
}

/* The generator's manifest copied into a directory of other feeds vouches
 * for none of them; a hand-written file ingested into a generated
 * directory makes it "feeds" for good, whatever comes after. Export is
 * refused both times, with the reason. */
Test(datadir, a_copied_manifest_or_an_extra_feed_makes_export_refused_for_good)
{
    char other[400], copied[400];
    snprintf(other, sizeof other, "%s/other", root);
    snprintf(copied, sizeof copied, "%s/data-copied", root);
    cr_assert_eq(sh("mkdir '%s' && cp '%s/manifest.json' '%s/areas.csv' '%s/postcodes.csv' "
                    "'%s/population.csv' '%s' && sed -n '1,400p' '%s/gp_registrations.csv' "
                    ">'%s/gp_registrations.csv'",
                    other, feeds, feeds, feeds, feeds, other, feeds, other),
                 0);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' '%s' >/dev/null",
                    CC_BIN_DIR, copied, key, other),
                 0);
    struct cc_provenance p = provenance_of(copied);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    const char *reason = "gp_registrations.csv: its content differs from the digest the "
                         "manifest.json beside it gives";
    cr_assert_str_eq(p.reason, reason);
    export_refused(copied, "csv-copied", reason);

    /* generated, then one extra file of other feeds, then generated again */
    first_ingest();
    cr_assert_eq(provenance_of(data).source, CC_PROVENANCE_GENERATED);
    cr_assert_eq(sh("mkdir '%s/extra' && sed -n '1,200p' '%s/gp_events.csv' "
                    ">'%s/extra/gp_events.csv'",
                    root, feeds, root),
                 0);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/extra/gp_events.csv' >/dev/null",
                    CC_BIN_DIR, data, key, root),
                 0);
    cr_assert_eq(provenance_of(data).source, CC_PROVENANCE_FEEDS);
    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "hes_apc='%s/hes_apc.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds),
                 0);
    p = provenance_of(data);
    cr_assert_eq(p.n_runs, 3);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS, "a generated run after does not undo it");
    cr_assert_str_eq(p.reason, "gp_events.csv: no manifest.json beside it");
    export_refused(data, "csv-extra", "gp_events.csv: no manifest.json beside it");

    /* and nobody turns the row back with SQL by mistake */
    cr_assert_neq(sh("sqlite3 '%s/state.db' \"UPDATE ingest_provenance SET source = 'generated'\" "
                     "2>/dev/null",
                     data),
                  0);
    cr_assert_neq(sh("sqlite3 '%s/state.db' 'DELETE FROM ingest_provenance' 2>/dev/null", data), 0);
    cr_assert_eq(provenance_of(data).source, CC_PROVENANCE_FEEDS);
}

/* A data directory whose versions were published by a carecount that did
 * not record provenance (ingest schema 1): "feeds", since nobody can tell;
 * the migration to schema 2 records that, and it stays so. */
Test(datadir, a_directory_ingested_before_provenance_was_recorded_is_other_feeds)
{
    first_ingest();
    cr_assert_eq(sh("sqlite3 '%s/state.db' 'DROP TRIGGER ingest_provenance_kept; "
                    "DROP TRIGGER ingest_provenance_feeds_stay; DROP TABLE ingest_provenance; "
                    "UPDATE cc_schema SET version = 1 WHERE module = '\\''ingest'\\'''",
                    data),
                 0);
    const char *reason = "its versions were published before carecount recorded where feeds "
                         "came from";
    struct cc_provenance p = provenance_of(data);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert_str_eq(p.reason, reason);
    export_refused(data, "csv-old", reason);

    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null",
                    CC_BIN_DIR, data, key, feeds),
                 0);
    char out[600];
    snprintf(out, sizeof out, "%s/schema", root);
    cr_assert_eq(sh("sqlite3 '%s/state.db' \"SELECT version FROM cc_schema WHERE module = "
                    "'ingest'; SELECT source, store_version FROM ingest_provenance ORDER BY "
                    "run\" >'%s'",
                    data, out),
                 0);
    cr_assert_str_eq(slurp(out), "2\nfeeds|1\ngenerated|2\n");
    p = provenance_of(data);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert_str_eq(p.reason, reason);
}

/* ---- a data directory that cannot be written ------------------------------------------ */

#define NOBODY 65534

/* Runs a shell command as an account that cannot write DATA (see
 * make_unwritable), with what it prints in out_path (opened before any
 * privilege is dropped). As root, for whom permissions stop no write,
 * the command runs as nobody; otherwise as ourselves. Its exit status. */
static int sh_unable_to_write(const char *out_path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int sh_unable_to_write(const char *out_path, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(97);
        if (geteuid() == 0 &&
            (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(96);
        if (geteuid() == 0 || getuid() == 0)
            _exit(95); /* still root: the test would prove nothing */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(94);
    }
    return exit_code(pid);
}

/* Makes DATA read-only to the account sh_unable_to_write() runs as, and
 * gives that account its own copy of the key (reader_key). The permission
 * checks (cc_datadir_check_permissions) refuse a directory that is not the
 * running account's, before anything is written, so as root DATA is handed
 * to nobody first: the test then reaches the writes themselves. */
static void make_unwritable(const char *reader_key)
{
    if (geteuid() == 0)
        cr_assert_eq(sh("cp '%s' '%s' && chown %d:%d '%s' && chmod 0600 '%s' && "
                        "chown -R %d:%d '%s' && chmod -R a-w '%s' && chmod 0711 '%s'",
                        key, reader_key, NOBODY, NOBODY, reader_key, reader_key, NOBODY, NOBODY,
                        data, data, root),
                     0);
    else
        cr_assert_eq(sh("cp '%s' '%s' && chmod 0600 '%s' && chmod -R a-w '%s'", key, reader_key,
                        reader_key, data),
                     0);
}

static void make_writable_again(void)
{
    if (geteuid() == 0)
        cr_assert_eq(sh("chown -R %d:%d '%s' && chmod -R u+w '%s' && chmod 0700 '%s'",
                        (int)geteuid(), (int)getegid(), data, data, root),
                     0);
    else
        cr_assert_eq(sh("chmod -R u+w '%s'", data), 0);
}

/* Every file of DATA with its digest, and every entry (DATA itself too)
 * with its mode, owner, size and modification time, into path. */
static void fingerprint_data(const char *path)
{
    cr_assert_eq(sh("cd '%s' && { find . -type f | sort | xargs sha256sum; "
                    "find . -printf '%%p %%m %%u %%s %%T@\n' | sort; } >'%s'",
                    data, path),
                 0);
}

/* A data directory that cannot be written (its permissions, as a
 * read-only mount would): ingest, the opt-out writers and carecountd each
 * fail at once with a message that says so, write nothing, and lose
 * nothing committed before: with write access back, the version, the
 * opt-out and state.db are as they were, and the same commands succeed. */
Test(datadir, a_data_directory_that_cannot_be_written_is_refused_clearly_and_loses_nothing)
{
    first_ingest();
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout register --data '%s' --key '%s' "
                    "--nhs-number - --type ndop --date 2020-01-01 >/dev/null",
                    CC_BIN_DIR, data, key),
                 0);
    uint64_t before = loadable_version();
    char reader_key[400], err_path[600], snap_before[600], snap_after[600], out[600];
    snprintf(reader_key, sizeof reader_key, "%s/reader.key", root);
    snprintf(err_path, sizeof err_path, "%s/err", root);
    snprintf(snap_before, sizeof snap_before, "%s/before.txt", root);
    snprintf(snap_after, sizeof snap_after, "%s/after.txt", root);
    snprintf(out, sizeof out, "%s/out", root);
    make_unwritable(reader_key);
    fingerprint_data(snap_before);

    int rc = sh_unable_to_write(err_path,
                                "'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                                "gp_events='%s/gp_events.csv'",
                                CC_BIN_DIR, data, reader_key, feeds);
    const char *err = slurp(err_path);
    cr_assert_eq(rc, 1, "ingest fails: exit %d: %s", rc, err);
    cr_assert(strstr(err, "carecount ingest: ") && strstr(err, "writer.lock") &&
                  strstr(err, "the data directory cannot be written") &&
                  strstr(err, "nothing was changed"),
              "ingest says why: %s", err);

    rc = sh_unable_to_write(err_path,
                            "timeout 60 '%s/carecountd' --listen 127.0.0.1:0 --data '%s' "
                            "--key '%s'",
                            CC_BIN_DIR, data, reader_key);
    err = slurp(err_path);
    cr_assert_eq(rc, 1, "carecountd does not start: exit %d: %s", rc, err);
    cr_assert(strstr(err, "cannot serve") && strstr(err, "state.db: cannot be written"),
              "carecountd says why: %s", err);

    rc = sh_unable_to_write(err_path,
                            "echo 9990000026 | '%s/carecount' optout register --data '%s' "
                            "--key '%s' --nhs-number - --type type1 --date 2021-01-01",
                            CC_BIN_DIR, data, reader_key);
    err = slurp(err_path);
    cr_assert_eq(rc, 1, "register fails: exit %d: %s", rc, err);
    cr_assert(strstr(err, "carecount optout: ") && strstr(err, "the data directory cannot be "
                                                               "written"),
              "register says why: %s", err);
    rc = sh_unable_to_write(err_path,
                            "echo 9990000018 | '%s/carecount' optout withdraw --data '%s' "
                            "--key '%s' --nhs-number - --type ndop --date 2021-01-01",
                            CC_BIN_DIR, data, reader_key);
    err = slurp(err_path);
    cr_assert_eq(rc, 1, "withdraw fails: exit %d: %s", rc, err);
    cr_assert(strstr(err, "the data directory cannot be written"), "withdraw says why: %s", err);

    fingerprint_data(snap_after);
    char *before_text = strdup(slurp(snap_before));
    cr_assert_str_eq(slurp(snap_after), before_text, "not a byte of DATA changed: %s",
                     slurp(snap_after));
    free(before_text);

    make_writable_again();
    cr_assert_eq(loadable_version(), before, "the version is as it was");
    cr_assert_eq(sh("sqlite3 '%s/state.db' 'PRAGMA integrity_check' >'%s'", data, out), 0);
    cr_assert(!strncmp(slurp(out), "ok", 2), "state.db: %s", slurp(out));
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout history --data '%s' --key '%s' "
                    "--nhs-number - >'%s'",
                    CC_BIN_DIR, data, key, out),
                 0);
    cr_assert(strstr(slurp(out), "2020-01-01  national data opt-out  registered") &&
                  !strstr(slurp(out), "withdrawn"),
              "the opt-out committed before is there, the refused withdrawal is not: %s",
              slurp(out));
    cr_assert_eq(sh("echo 9990000026 | '%s/carecount' optout status --data '%s' --key '%s' "
                    "--nhs-number - --date 2022-01-01 >'%s'",
                    CC_BIN_DIR, data, key, out),
                 0);
    cr_assert(strstr(slurp(out), "no opt-out in force"), "the refused register is not: %s",
              slurp(out));

    cr_assert_eq(sh("'%s/carecount' ingest --quiet --data '%s' --key '%s' "
                    "gp_events='%s/gp_events.csv' >/dev/null 2>'%s'",
                    CC_BIN_DIR, data, key, feeds, err_path),
                 0, "with write access the same ingest succeeds: %s", slurp(err_path));
    cr_assert_eq(loadable_version(), before + 1);
    cr_assert_eq(sh("echo 9990000018 | '%s/carecount' optout withdraw --data '%s' --key '%s' "
                    "--nhs-number - --type ndop --date 2021-01-01 >/dev/null",
                    CC_BIN_DIR, data, key),
                 0);
}
