/*
 * Integration tests for serving a data directory: the real carecountd,
 * started by the harness with --data on a directory made by the real
 * generator and ingest, reports the data version it serves; a corrupt
 * snapshot keeps it from starting, with a clear error.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_client.h"
#include "cc_error.h"
#include "cc_harness.h"
#include "cc_ingest.h"

static char root[256], data_dir[300], key_path[300];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

static void setup(void)
{
    char cmd[2048];
    snprintf(root, sizeof root, "/tmp/cc-test-serverdata-XXXXXX");
    cr_assert(mkdtemp(root));
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 2000 --seed 3 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s/key' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s/key' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, root, CC_BIN_DIR, data_dir, root, root);
    run(cmd);
}

static void teardown(void)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    run(cmd);
}

TestSuite(serverdata, .init = setup, .fini = teardown, .timeout = 300);

Test(serverdata, status_reports_the_data_version_served)
{
    const char *args[] = {"--data", data_dir, "--key", key_path, NULL};
    struct cc_harness *h = NULL;
    cr_assert_eq(cc_harness_start(args, &h), 0);
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(h, &client), 0);
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, 7, "status", &reply), 1);
    const msgpack_object *version = cc_reply_get(&reply, "data_version");
    cr_assert_not_null(version, "status names the data version");
    cr_assert_eq(version->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(version->via.u64, 1);
    const msgpack_object *day = cc_reply_get(&reply, "data_published_on");
    cr_assert_not_null(day);
    cr_assert_eq(day->type, MSGPACK_OBJECT_STR);
    cr_assert_eq(day->via.str.size, 10);
    /* status reports no figure about the data */
    cr_assert_null(cc_reply_get(&reply, "n_persons"));
    cc_reply_free(&reply);
    cc_client_close(client);

    /* the client tool says which version it is talking to */
    char cmd[600], line[512];
    snprintf(cmd, sizeof cmd, "'%s/carecount' ping --port %u", CC_BIN_DIR,
             (unsigned)cc_harness_port(h));
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    int says_version = 0;
    while (fgets(line, sizeof line, p))
        says_version |= strstr(line, "store version 1, publication 1") != NULL;
    cr_assert_eq(pclose(p), 0);
    cr_assert(says_version, "carecount ping names the data version");

    int exit_status = -1;
    cr_assert_eq(cc_harness_stop(h, &exit_status), 0);
    cr_assert_eq(exit_status, 0);
    char *log = cc_harness_log(h);
    cr_assert(log && strstr(log, "serving store version 1"), "log: %s", log ? log : "");
    free(log);
    cc_harness_free(h);
}

/* Reads an unsigned field of a status reply (0 if absent). */
static uint64_t status_field(struct cc_client *client, const char *key)
{
    struct cc_reply reply;
    cr_assert_eq(cc_client_call_simple(client, 9, "status", &reply), 1);
    const msgpack_object *o = cc_reply_get(&reply, key);
    uint64_t v = o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 : 0;
    cc_reply_free(&reply);
    return v;
}

Test(serverdata, an_optout_is_published_without_restart_or_reingest)
{
    const char *args[] = {"--data", data_dir, "--key", key_path, "--publish-interval-s", "0",
                          NULL};
    struct cc_harness *h = NULL;
    cr_assert_eq(cc_harness_start(args, &h), 0);
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(h, &client), 0);
    cr_assert_eq(status_field(client, "data_publication"), 1);

    /* Practice staff record an opt-out with the operator tool. */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "awk -F, 'NR==2 {print $1}' '%s/feeds/gp_registrations.csv' | "
             "'%s/carecount' optout register --data '%s' --key '%s/key' --nhs-number - "
             "--type ndop >/dev/null",
             root, CC_BIN_DIR, data_dir, root);
    run(cmd);

    /* The server publishes a new version by itself (checked every second
     * with this policy); wait for it, bounded, without asserting a time. */
    uint64_t publication = 1;
    for (int i = 0; i < 600 && publication < 2; i++) {
        usleep(100 * 1000);
        publication = status_field(client, "data_publication");
    }
    cr_assert_eq(publication, 2, "a new version was published");
    cr_assert_eq(status_field(client, "data_version"), 1, "same store, no re-ingest");
    cc_client_close(client);
    int exit_status = -1;
    cr_assert_eq(cc_harness_stop(h, &exit_status), 0);
    cr_assert_eq(exit_status, 0);
    cc_harness_free(h);
}

Test(serverdata, a_corrupt_snapshot_stops_the_server_at_start)
{
    char path[600], err[256];
    uint64_t version;
    cr_assert_eq(cc_ingest_current_store(data_dir, &version, path, sizeof path, err, sizeof err), 0);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    cr_assert_eq(fseek(f, 4096, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, 4096, SEEK_SET), 0);
    fputc(c ^ 0x40, f);
    fclose(f);

    char cmd[1200], log_path[400];
    snprintf(log_path, sizeof log_path, "%s/server.log", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecountd' --listen 127.0.0.1:0 --data '%s' --key '%s' 2>'%s'", CC_BIN_DIR,
             data_dir, key_path, log_path);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "carecountd should refuse to start");
    FILE *log = fopen(log_path, "r");
    cr_assert(log);
    char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, log);
    text[n] = '\0';
    fclose(log);
    cr_assert(strstr(text, "checksum") || strstr(text, "corrupt"), "clear error: %s", text);
}
