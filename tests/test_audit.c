/*
 * Tests for core/cc_audit.c: the hash-chained audit log. Records are
 * appended and read back; then the log is tampered with as someone with
 * write access to state.db would (the triggers dropped, rows edited,
 * deleted, swapped, inserted, cut off the end) and each is caught by verify
 * or by the recorded head; a different key cannot verify it; appends from
 * several threads, and from several processes (replicas), stay one gapless
 * chain; a committed record is visible to a new connection.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_audit.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_pseudo.h"
#include "cc_testfs.h"

static char root[256], dir[300];
static cc_pseudo_key *key;

static void setup(void)
{
    char path[400], err[256];
    cc_testfs_make_dir(root, sizeof root, "audit");
    snprintf(dir, sizeof dir, "%s/data", root);
    snprintf(path, sizeof path, "%s/key", root);
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(dir, CC_DB_CREATE, &db, err, sizeof err), 0, "%s", err);
    cc_db_close(db);
}

static void teardown(void)
{
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(root);
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 120);

static cc_audit *open_log(const cc_pseudo_key *k)
{
    cc_audit *a = NULL;
    char err[256] = "";
    cr_assert_eq(cc_audit_open(dir, k, &a, err, sizeof err), 0, "%s", err);
    return a;
}

static void append(cc_audit *a, int i)
{
    char request[64], err[256];
    snprintf(request, sizeof request, "{\"v\":1,\"measure\":\"persons\",\"n\":%d}", i);
    struct cc_audit_record r = {1700000000000 + i, 7, "rita", "count", "127.0.0.1", request,
                                (uint64_t)i, 1, "ok", NULL};
    cr_assert_eq(cc_audit_append(a, &r, err, sizeof err), 0, "%s", err);
}

/* Runs SQL on state.db directly, as a tamperer with the file would. */
static void tamper(const char *sql)
{
    char path[400];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/state.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db,
                              "DROP TRIGGER IF EXISTS audit_log_no_update;"
                              "DROP TRIGGER IF EXISTS audit_log_no_delete;",
                              NULL, NULL, &msg),
                 SQLITE_OK, "%s", msg ? msg : "");
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
                 msg ? msg : "");
    sqlite3_close(db);
}

/* Verifies and returns the first bad record (0: it verifies). */
static uint64_t first_bad(void)
{
    cc_audit *a = open_log(key);
    struct cc_audit_verify_result result;
    char err[256];
    int rc = cc_audit_verify(a, &result, err, sizeof err);
    cc_audit_close(a);
    cr_assert(rc == 0 || rc == CC_ECORRUPT, "verify failed otherwise: %d", rc);
    cr_assert_eq(rc == 0, result.first_bad_seq == 0);
    return result.first_bad_seq;
}

static void fill(int n)
{
    cc_audit *a = open_log(key);
    for (int i = 1; i <= n; i++)
        append(a, i);
    cc_audit_close(a);
}

static int count_entry(const struct cc_audit_entry *e, void *arg)
{
    uint64_t *n = arg;
    cr_assert_eq(e->seq, *n + 1, "records come in sequence order");
    (*n)++;
    return 0;
}

Test(audit, records_are_chained_read_back_and_verify)
{
    fill(10);
    cc_audit *a = open_log(NULL); /* reading needs no key */
    uint64_t n = 0;
    cr_assert_eq(cc_audit_list(a, NULL, count_entry, &n), 0);
    cr_assert_eq(n, 10);
    struct cc_audit_filter last3 = {0, "rita", "count", 3};
    n = 7;
    cr_assert_eq(cc_audit_list(a, &last3, count_entry, &n), 0);
    cr_assert_eq(n, 10, "the last three");
    struct cc_audit_verify_result result;
    char err[256];
    cr_assert_eq(cc_audit_verify(a, &result, err, sizeof err), CC_EINVAL, "verify needs the key");
    cc_audit_close(a);
    cr_assert_eq(first_bad(), 0);
}

Test(audit, the_triggers_refuse_update_and_delete)
{
    fill(2);
    char path[400];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/state.db", dir);
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_neq(sqlite3_exec(db, "UPDATE audit_log SET outcome = 'x' WHERE seq = 1", NULL, NULL,
                               NULL),
                  SQLITE_OK);
    cr_assert_neq(sqlite3_exec(db, "DELETE FROM audit_log WHERE seq = 2", NULL, NULL, NULL),
                  SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(first_bad(), 0);
}

Test(audit, an_edited_field_is_caught_at_its_record)
{
    fill(10);
    tamper("UPDATE audit_log SET cells_released = 99 WHERE seq = 6");
    cr_assert_eq(first_bad(), 6);
}

Test(audit, an_edited_text_is_caught)
{
    fill(10);
    tamper("UPDATE audit_log SET outcome = 'ok', reason = NULL, account = 'someone' WHERE seq = 3");
    cr_assert_eq(first_bad(), 3);
}

Test(audit, a_deleted_record_is_caught)
{
    fill(10);
    tamper("DELETE FROM audit_log WHERE seq = 4");
    cr_assert_eq(first_bad(), 4);
}

Test(audit, a_deleted_and_renumbered_record_is_caught)
{
    fill(10);
    tamper("DELETE FROM audit_log WHERE seq = 4; UPDATE audit_log SET seq = seq - 1 WHERE seq > 4");
    cr_assert_eq(first_bad(), 4);
}

Test(audit, two_swapped_records_are_caught)
{
    fill(10);
    tamper("UPDATE audit_log SET seq = 100 WHERE seq = 5;"
           "UPDATE audit_log SET seq = 5 WHERE seq = 6;"
           "UPDATE audit_log SET seq = 6 WHERE seq = 100;");
    cr_assert_eq(first_bad(), 5);
}

Test(audit, an_inserted_record_is_caught)
{
    fill(10);
    tamper("UPDATE audit_log SET seq = 11 WHERE seq = 10;"
           "UPDATE audit_log SET seq = 10 WHERE seq = 9;"
           "UPDATE audit_log SET seq = 9 WHERE seq = 8;"
           "INSERT INTO audit_log SELECT 8, time_ms, account_id, account, op, peer, request,"
           " 0, 0, 'ok', NULL, hash FROM audit_log WHERE seq = 7");
    cr_assert_eq(first_bad(), 8);
}

Test(audit, a_cut_tail_verifies_but_not_against_the_recorded_head)
{
    fill(10);
    cc_audit *a = open_log(key);
    uint64_t seq;
    uint8_t hash[CC_AUDIT_HASH_BYTES];
    char err[256];
    cr_assert_eq(cc_audit_head(a, &seq, hash), 0);
    cr_assert_eq(seq, 10);
    cr_assert_eq(cc_audit_verify_head(a, seq, hash, err, sizeof err), 0);
    cc_audit_close(a);
    tamper("DELETE FROM audit_log WHERE seq > 8");
    cr_assert_eq(first_bad(), 0, "a shorter chain still verifies by itself");
    a = open_log(key);
    cr_assert_eq(cc_audit_verify_head(a, seq, hash, err, sizeof err), CC_ECORRUPT);
    cr_assert(strstr(err, "missing"), "%s", err);
    cc_audit_close(a);
}

/* The head of an empty log (seq 0, all-zero hash) verifies, and a later
 * head of the same log still verifies after records are added; a forged
 * hash for seq 0 does not. (Found by running the operator's guide.) */
Test(audit, the_empty_logs_head_verifies)
{
    cc_audit *a = open_log(key);
    uint64_t seq;
    uint8_t hash[CC_AUDIT_HASH_BYTES];
    char err[256];
    cr_assert_eq(cc_audit_head(a, &seq, hash), 0);
    cr_assert_eq(seq, 0);
    cr_assert_eq(cc_audit_verify_head(a, seq, hash, err, sizeof err), 0, "%s", err);
    hash[3] ^= 1;
    cr_assert_eq(cc_audit_verify_head(a, seq, hash, err, sizeof err), CC_ECORRUPT);
    cc_audit_close(a);
}

Test(audit, another_key_cannot_verify_the_chain)
{
    fill(3);
    char path[400];
    snprintf(path, sizeof path, "%s/other.key", root);
    cc_pseudo_key *other = NULL;
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &other), 0);
    cc_audit *a = open_log(other);
    struct cc_audit_verify_result result;
    char err[256];
    cr_assert_eq(cc_audit_verify(a, &result, err, sizeof err), CC_ECORRUPT);
    cr_assert_eq(result.first_bad_seq, 1);
    cc_audit_close(a);
    cc_pseudo_key_free(other);
}

static void *append_many(void *arg)
{
    cc_audit *a = arg;
    for (int i = 0; i < 50; i++)
        append(a, i);
    return NULL;
}

Test(audit, appends_from_threads_make_one_gapless_chain_that_a_new_connection_sees)
{
    cc_audit *a = open_log(key);
    pthread_t threads[4];
    for (int t = 0; t < 4; t++)
        cr_assert_eq(pthread_create(&threads[t], NULL, append_many, a), 0);
    for (int t = 0; t < 4; t++)
        pthread_join(threads[t], NULL);
    cc_audit_close(a);
    /* a fresh connection (what a restarted server or the CLI sees) */
    cc_audit *b = open_log(key);
    struct cc_audit_verify_result result;
    char err[256];
    cr_assert_eq(cc_audit_verify(b, &result, err, sizeof err), 0, "%s", err);
    cr_assert_eq(result.entries, 200);
    cc_audit_close(b);
}

struct one_append {
    cc_audit *a;
    int i;
};

static void *append_one(void *arg)
{
    struct one_append *o = arg;
    append(o->a, o->i);
    return NULL;
}

/* Group commit: while another writer holds state.db's write lock, 8
 * threads append one record each; they queue behind the first, and once
 * the lock is released the queued records go in together: at most 3
 * transactions for the 8 records (the first alone, the rest in one or
 * two), every append returning only after its record is committed, and
 * one gapless chain that verifies. */
Test(audit, appends_that_arrive_together_share_one_commit)
{
    cc_audit *a = open_log(key);
    char path[400];
    snprintf(path, sizeof path, "%s/state.db", dir);
    sqlite3 *blocker;
    cr_assert_eq(sqlite3_open(path, &blocker), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pthread_t threads[8];
    struct one_append args[8];
    for (int t = 0; t < 8; t++) {
        args[t] = (struct one_append){a, t};
        cr_assert_eq(pthread_create(&threads[t], NULL, append_one, &args[t]), 0);
    }
    /* the threads start and queue within microseconds; the leader waits on
     * the lock (busy_timeout, 5 s) meanwhile */
    usleep(400 * 1000);
    uint64_t commits, records;
    cc_audit_commit_stats(a, &commits, &records);
    cr_assert_eq(records, 0, "nothing is committed while the lock is held");
    cr_assert_eq(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    for (int t = 0; t < 8; t++)
        pthread_join(threads[t], NULL);
    cc_audit_commit_stats(a, &commits, &records);
    cr_assert_eq(records, 8);
    cr_assert_leq(commits, 3, "%llu transactions for 8 records", (unsigned long long)commits);
    struct cc_audit_verify_result result;
    char err[256];
    cr_assert_eq(cc_audit_verify(a, &result, err, sizeof err), 0, "%s", err);
    cr_assert_eq(result.entries, 8);
    cc_audit_close(a);
}

/* Replicas serving one data directory: each process its own handle (its
 * own connection), appending at once. The append reads the head and
 * inserts inside one BEGIN IMMEDIATE transaction, so the chain never
 * forks: one gapless chain that verifies, every record there. */
Test(audit, appends_from_processes_make_one_gapless_chain)
{
    enum { N_PROCESSES = 4, PER_PROCESS = 50 };
    pid_t pids[N_PROCESSES];
    cc_audit_close(open_log(key)); /* the table first */
    for (int p = 0; p < N_PROCESSES; p++) {
        fflush(NULL);
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            cc_audit *a = NULL;
            char err[256], request[64];
            if (cc_audit_open(dir, key, &a, err, sizeof err) != 0)
                _exit(1);
            for (int i = 0; i < PER_PROCESS; i++) {
                snprintf(request, sizeof request, "{\"process\":%d,\"n\":%d}", p, i);
                struct cc_audit_record r = {1700000000000 + i, 7, "rita", "count", "127.0.0.1",
                                            request, (uint64_t)i, 0, "ok", NULL};
                if (cc_audit_append(a, &r, err, sizeof err) != 0)
                    _exit(2);
            }
            cc_audit_close(a);
            _exit(0);
        }
    }
    for (int p = 0; p < N_PROCESSES; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d: status %d", p,
                  status);
    }
    cc_audit *b = open_log(key);
    struct cc_audit_verify_result result;
    char err[256];
    cr_assert_eq(cc_audit_verify(b, &result, err, sizeof err), 0, "%s", err);
    cr_assert_eq(result.entries, N_PROCESSES * PER_PROCESS);
    uint64_t seq;
    uint8_t hash[CC_AUDIT_HASH_BYTES];
    cr_assert_eq(cc_audit_head(b, &seq, hash), 0);
    cr_assert_eq(seq, N_PROCESSES * PER_PROCESS);
    cc_audit_close(b);
}
