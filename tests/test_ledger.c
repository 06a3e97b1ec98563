/*
 * The disclosure ledger (queries/cc_ledger.h): record and look up per
 * account, the refusal of small differences (zero included) and the
 * answer to the same query asked again, the near-difference budget,
 * persistence across close and reopen, and concurrent admits from threads
 * and from processes (replicas) sharing one data directory.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_ledger.h"
#include "cc_policy.h"
#include "cc_testfs.h"

static struct cc_policy policy;
static char dir[512];

static void setup(void)
{
    cc_policy_default(&policy);
    cc_testfs_make_dir(dir, sizeof dir, "ledger");
}

static void teardown(void)
{
    cc_testfs_remove_tree(dir);
}

TestSuite(ledger, .init = setup, .fini = teardown, .timeout = 120);

/* Keys first..first+n-1, scrambled (record keys are not in order). */
static uint32_t *cohort(uint32_t first, uint32_t n)
{
    uint32_t *keys = malloc((n ? n : 1) * sizeof *keys);
    cr_assert_not_null(keys);
    for (uint32_t i = 0; i < n; i++)
        keys[i] = (first + i) * 2654435761u;
    return keys;
}

static cc_ledger *open_ledger(void)
{
    cc_ledger *l = NULL;
    char err[256];
    cr_assert_eq(cc_ledger_open(dir, &l, err, sizeof err), 0, "%s", err);
    return l;
}

/* Admits keys first..first+n-1 (with person `drop` left out unless
 * UINT32_MAX) for account; returns the code. */
static int admit(cc_ledger *l, int64_t account, uint64_t fingerprint, uint32_t first, uint32_t n,
                 uint32_t drop, char *err, size_t errlen)
{
    uint32_t *keys = cohort(first, n);
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (first + i != drop)
            keys[m++] = keys[i];
    int rc = cc_ledger_admit(l, account, &policy, fingerprint, keys, m, 1000000, err, errlen);
    free(keys);
    return rc;
}

Test(ledger, a_cohort_differing_by_one_person_is_refused_without_a_count)
{
    cc_ledger *l = open_ledger();
    char err[256] = "";
    cr_assert_eq(admit(l, 7, 1, 0, 500, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 7, 2, 0, 500, 250, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "ledger") != NULL, "%s", err);
    cr_assert(strpbrk(err, "0123456789") == NULL, "a refusal names no count: %s", err);
    cr_assert_eq(cc_ledger_n_entries(l, 7), 1);
    cc_ledger_close(l);
}

Test(ledger, the_threshold_is_the_least_difference_answered)
{
    cc_ledger *l = open_ledger();
    char err[256];
    uint32_t t = policy.ledger_min_difference;
    cr_assert_eq(admit(l, 1, 1, 0, 1000, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* t - 1 persons fewer: refused; t persons more: answered */
    cr_assert_eq(admit(l, 1, 2, 0, 1000 - (t - 1), UINT32_MAX, err, sizeof err), CC_EREFUSED);
    cr_assert_eq(admit(l, 1, 3, 0, 1000 + t, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* same size, t - 1 swapped out for others: a difference of 2(t - 1) */
    cr_assert_eq(admit(l, 1, 4, 5000, 300, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 1, 5, 5000 + (t - 1) / 2, 300, UINT32_MAX, err, sizeof err),
                 CC_EREFUSED);
    /* t / 2 + 1 swapped: a difference of t or more, answered */
    cr_assert_eq(admit(l, 1, 6, 5000 + t / 2 + 1, 300, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cc_ledger_close(l);
}

Test(ledger, an_equal_cohort_is_answered_only_for_the_same_query)
{
    cc_ledger *l = open_ledger();
    char err[256];
    cr_assert_eq(admit(l, 1, 42, 0, 400, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 1, 42, 0, 400, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_ledger_n_entries(l, 1), 1, "a repeat is not recorded again");
    /* another query with the very same cohort: refused, like a difference
     * of one, so that refusal does not tell 0 from 1 */
    cr_assert_eq(admit(l, 1, 43, 0, 400, UINT32_MAX, err, sizeof err), CC_EREFUSED);
    cc_ledger_close(l);
}

Test(ledger, accounts_are_separate)
{
    cc_ledger *l = open_ledger();
    char err[256];
    cr_assert_eq(admit(l, 1, 1, 0, 500, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 2, 2, 0, 500, 3, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 1, 2, 0, 500, 3, err, sizeof err), CC_EREFUSED);
    cc_ledger_close(l);
}

Test(ledger, the_budget_bounds_near_differences)
{
    policy.ledger_budget = 3;
    cc_ledger *l = open_ledger();
    char err[256];
    cr_assert_eq(admit(l, 9, 100, 0, 2000, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* each next cohort is 20 more persons: a near difference (< 100) */
    for (uint32_t i = 1; i <= 3; i++)
        cr_assert_eq(admit(l, 9, 100 + i, 0, 2000 + 20 * i, UINT32_MAX, err, sizeof err), 0,
                     "near difference %u: %s", i, err);
    cr_assert_eq(admit(l, 9, 200, 0, 2080, UINT32_MAX, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "budget") != NULL, "%s", err);
    /* far from every earlier cohort: not a near difference, answered */
    cr_assert_eq(admit(l, 9, 300, 100000, 2000, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* the window: a near difference a window later is answered */
    uint32_t *keys = cohort(0, 2100);
    cr_assert_eq(cc_ledger_admit(l, 9, &policy, 400, keys, 2100,
                                 1000000 + (int64_t)policy.ledger_window_days * 86400 + 1, err,
                                 sizeof err),
                 0, "%s", err);
    free(keys);
    cc_ledger_close(l);
}

Test(ledger, entries_survive_close_and_reopen)
{
    cc_ledger *l = open_ledger();
    char err[256];
    cr_assert_eq(admit(l, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(l, 5, 2, 10000, 50, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cc_ledger_close(l);
    l = open_ledger();
    cr_assert_eq(cc_ledger_n_entries(l, 5), 2);
    cr_assert_eq(admit(l, 5, 3, 0, 800, 17, err, sizeof err), CC_EREFUSED);
    cr_assert_eq(admit(l, 5, 4, 10000, 50, 10001, err, sizeof err), CC_EREFUSED);
    cr_assert_eq(admit(l, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "the same query: %s",
                 err);
    cc_ledger_close(l);
}

Test(ledger, a_damaged_entry_fails_the_open)
{
    cc_ledger *l = open_ledger();
    char err[256];
    cr_assert_eq(admit(l, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cc_ledger_close(l);
    /* another writer of state.db (a bug, or tampering) truncates the blob */
    char path[600];
    cc_testfs_path(path, sizeof path, dir, "state.db");
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "UPDATE ledger_entry SET cohort = substr(cohort, 1, 3)", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    cr_assert_eq(cc_ledger_open(dir, &l, err, sizeof err), CC_ECORRUPT);
}

struct worker {
    cc_ledger *ledger;
    int64_t account;
    uint32_t index;
    int rc;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char err[256];
    /* every worker of an account asks the same cohort less one person of
     * its own: at most one of them may be answered */
    w->rc = admit(w->ledger, w->account, 1000 + w->index, 0, 3000, w->index, err, sizeof err);
    return NULL;
}

Test(ledger, concurrent_admits_let_one_of_a_differencing_group_through)
{
    cc_ledger *l = open_ledger();
    enum { N_ACCOUNTS = 4, PER_ACCOUNT = 6 };
    struct worker workers[N_ACCOUNTS * PER_ACCOUNT];
    pthread_t threads[N_ACCOUNTS * PER_ACCOUNT];
    for (int i = 0; i < N_ACCOUNTS * PER_ACCOUNT; i++) {
        workers[i] = (struct worker){l, i % N_ACCOUNTS, (uint32_t)(i / N_ACCOUNTS), -1};
        cr_assert_eq(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < N_ACCOUNTS * PER_ACCOUNT; i++)
        pthread_join(threads[i], NULL);
    for (int a = 0; a < N_ACCOUNTS; a++) {
        int answered = 0;
        for (int i = a; i < N_ACCOUNTS * PER_ACCOUNT; i += N_ACCOUNTS) {
            cr_assert(workers[i].rc == 0 || workers[i].rc == CC_EREFUSED, "rc %d",
                      workers[i].rc);
            answered += workers[i].rc == 0;
        }
        cr_assert_eq(answered, 1, "account %d: %d answered", a, answered);
        cr_assert_eq(cc_ledger_n_entries(l, a), 1);
    }
    cc_ledger_close(l);
}

/* Two replicas serving one data directory each open their own ledger on
 * its state.db: what one commits, the other sees at its next admit. */
Test(ledger, two_ledgers_on_one_directory_see_each_others_entries)
{
    cc_ledger *a = open_ledger(), *b = open_ledger(); /* b opened before a records */
    char err[256];
    cr_assert_eq(admit(a, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* the second half of the pair, sent to the other replica */
    cr_assert_eq(admit(b, 5, 2, 0, 800, 17, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "ledger"), "%s", err);
    cr_assert_eq(cc_ledger_n_entries(b, 5), 1, "b read a's entry");
    /* the same query again, on either: answered, recorded once */
    cr_assert_eq(admit(b, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(a, 5, 1, 0, 800, UINT32_MAX, err, sizeof err), 0, "%s", err);
    /* and the other way round */
    cr_assert_eq(admit(b, 6, 3, 5000, 900, UINT32_MAX, err, sizeof err), 0, "%s", err);
    cr_assert_eq(admit(a, 6, 4, 5000, 900, 5001, err, sizeof err), CC_EREFUSED);
    cc_ledger_close(a);
    cc_ledger_close(b);
    cc_ledger *c = open_ledger();
    cr_assert_eq(cc_ledger_n_entries(c, 5), 1);
    cr_assert_eq(cc_ledger_n_entries(c, 6), 1);
    cc_ledger_close(c);
}

/* Processes rather than threads: each child opens its own ledger and asks,
 * for every account, the cohort less one person of its own. However the
 * processes interleave, one per account is answered. */
Test(ledger, concurrent_processes_let_one_of_a_differencing_group_through)
{
    enum { N_PROCESSES = 4, N_ACCOUNTS = 6 }; /* exit codes: a bit per account, below 100 */
    pid_t pids[N_PROCESSES];
    { /* the schema first, so the children do not race to create it */
        cc_ledger *l = open_ledger();
        cc_ledger_close(l);
    }
    for (int p = 0; p < N_PROCESSES; p++) {
        fflush(NULL);
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            cc_ledger *l = NULL;
            char err[256];
            if (cc_ledger_open(dir, &l, err, sizeof err) != 0)
                _exit(100);
            int answered = 0;
            for (int a = 0; a < N_ACCOUNTS; a++) {
                int rc = admit(l, 100 + a, 1000 + (uint64_t)p, 0, 3000, (uint32_t)p, err,
                               sizeof err);
                if (rc != 0 && rc != CC_EREFUSED)
                    _exit(101);
                answered |= (rc == 0) << a;
            }
            cc_ledger_close(l);
            _exit(answered); /* a bit per account answered here */
        }
    }
    int answered[N_ACCOUNTS] = {0};
    for (int p = 0; p < N_PROCESSES; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) < 100, "child %d: status %d", p,
                  status);
        for (int a = 0; a < N_ACCOUNTS; a++)
            answered[a] += WEXITSTATUS(status) >> a & 1;
    }
    cc_ledger *l = open_ledger();
    for (int a = 0; a < N_ACCOUNTS; a++) {
        cr_assert_eq(answered[a], 1, "account %d: %d answered", a, answered[a]);
        cr_assert_eq(cc_ledger_n_entries(l, 100 + a), 1);
    }
    cc_ledger_close(l);
}

/* The same query again (same fingerprint, same persons) is answered from
 * what this process holds, without the write lock: it is answered at once
 * while another connection holds state.db's write lock (a new cohort then
 * waits for the lock, and here times out as busy); a same-sized cohort of
 * other persons is not taken for it. */
Test(ledger, the_same_query_again_needs_no_write_lock)
{
    cc_ledger *l = open_ledger();
    cr_assert_eq(admit(l, 5, 77, 0, 500, UINT32_MAX, NULL, 0), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/state.db", dir);
    sqlite3 *blocker;
    cr_assert_eq(sqlite3_open(path, &blocker), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(admit(l, 5, 77, 0, 500, UINT32_MAX, NULL, 0), 0, "the same query again, at once");
    /* two persons sharing a record key (about n^2 / 2^33 of them): the
     * same query again is still recognised */
    cr_assert_eq(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    uint32_t *shared = cohort(5000, 300);
    shared[299] = shared[0];
    char why[256];
    cr_assert_eq(cc_ledger_admit(l, 6, &policy, 78, shared, 300, 1000000, why, sizeof why), 0,
                 "%s", why);
    cr_assert_eq(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(cc_ledger_admit(l, 6, &policy, 78, shared, 300, 1000000, why, sizeof why), 0,
                 "with a shared key, at once: %s", why);
    free(shared);
    /* the same size and fingerprint, other persons: the full path, which
     * needs the lock */
    char err[256];
    cr_assert_neq(admit(l, 5, 77, 1000, 500, UINT32_MAX, err, sizeof err), 0);
    cr_assert(strstr(err, "ledger"), "%s", err);
    cr_assert_eq(sqlite3_exec(blocker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    cr_assert_eq(admit(l, 5, 77, 1000, 500, UINT32_MAX, NULL, 0), 0, "answered once the lock is free");
    cc_ledger_close(l);
}
