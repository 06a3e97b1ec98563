/*
 * Tests for data versions (core/cc_dataversion.c): an opt-out committed to the
 * register excludes the person from every figure of the next published
 * version, with no restart and no re-ingest; a withdrawal brings them back;
 * an opt-out effective in the future is not yet applied. Runs on data made
 * by the real generator and ingest, counted by the real engine.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cc_csv.h"
#include "cc_datadir.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_ingest.h"
#include "cc_optout.h"
#include "cc_pseudo.h"
#include "cc_store.h"
#include "cc_validate.h"
#include "cc_testfs.h"

static char root[256], data_dir[300], key_path[300];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

static void setup(void)
{
    char cmd[2048];
    cc_testfs_make_dir(root, sizeof root, "dataversion");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 2000 --seed 5 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, key_path, CC_BIN_DIR, data_dir, key_path, root);
    run(cmd);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(dataversion, .init = setup, .fini = teardown, .timeout = 300);

/* Opted-in persons in a version, by the engine. */
static uint64_t persons_counted(const struct cc_dataversion *v)
{
    struct cc_query *q = NULL;
    char err[256];
    cr_assert_eq(cc_query_new(&q), 0);
    cr_assert_eq(cc_query_bind(q, cc_store_columns(cc_dataversion_store(v)), NULL, err, sizeof err),
                 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(v, q, NULL, &res, err, sizeof err), 0, "%s", err);
    uint64_t n = res.count[0];
    cc_raw_result_free(&res);
    cc_query_free(q);
    return n;
}

/* Loads the directory's current store as a server does, and attaches its
 * opt-out register on a connection of its own. */
static void open_current(cc_store **store, uint64_t *store_version, sqlite3 **db,
                         cc_optout **optouts)
{
    char err[1024];
    cr_assert_eq(cc_datadir_load_current(data_dir, key_path, CC_STORE_QUERY_ONLY, store,
                                         store_version, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_db_open(data_dir, 0, db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_optout_attach(*db, optouts), 0);
}

Test(dataversion, an_optout_reaches_the_next_version_and_a_withdrawal_undoes_it)
{
    uint64_t store_version;
    cc_store *store = NULL;
    sqlite3 *db = NULL;
    cc_optout *optouts = NULL;
    open_current(&store, &store_version, &db, &optouts);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(key_path, &key), 0);
    cc_day today = cc_day_today();

    struct cc_dataversion *v1 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today, &v1), 0);
    uint64_t before = persons_counted(v1);
    cr_assert_gt(cc_dataversion_n_excluded(v1), 0, "the generated feeds carry opt-outs");
    cr_assert_eq(before, cc_store_columns(store)->n_persons - cc_dataversion_n_excluded(v1));

    /* A stored person with no opt-out: the first valid registration that is
     * in the store and not excluded. */
    char feeds_reg[600];
    snprintf(feeds_reg, sizeof feeds_reg, "%s/feeds/gp_registrations.csv", root);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open(feeds_reg, &csv), 0);
    int nhs_col = cc_csv_column(csv, "nhs_number");
    const struct cc_csv_field *f;
    uint64_t line;
    cc_pseudonym person;
    int64_t index = -1;
    while (index < 0 && cc_csv_next(csv, &f, &line) == 1) {
        char digits[CC_NHS_NUMBER_DIGITS];
        if (cc_validate_nhs_number(f[nhs_col].data, f[nhs_col].len, digits) < 0)
            continue;
        cc_pseudo_nhs(key, digits, &person);
        int64_t i = cc_store_find_person(store, &person);
        if (i >= 0 && !cc_dataversion_is_excluded(v1, (uint32_t)i))
            index = i;
    }
    cc_csv_close(csv);
    cr_assert_geq(index, 0);

    /* Register a national data opt-out: committed at once... */
    struct cc_optout_event ev = {0};
    ev.person = person;
    ev.type = CC_OPTOUT_NDOP;
    ev.action = CC_OPTOUT_REGISTER;
    ev.source = CC_OPTOUT_SOURCE_OPERATOR;
    ev.effective_day = today;
    cr_assert_eq(cc_optout_record(optouts, &ev), CC_OPTOUT_ADDED);
    /* ...the version already published does not change (figures move in
     * batches, at publication)... */
    cr_assert_eq(persons_counted(v1), before);
    /* ...and the next version excludes the person, with the same store. */
    struct cc_dataversion *v2 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today, &v2), 0);
    cr_assert(cc_dataversion_is_excluded(v2, (uint32_t)index));
    cr_assert_eq(persons_counted(v2), before - 1);
    cr_assert_gt(cc_dataversion_optout_sequence(v2), cc_dataversion_optout_sequence(v1));

    /* Withdrawal brings them back in the version after. */
    ev.action = CC_OPTOUT_WITHDRAW;
    cr_assert_geq(cc_optout_record(optouts, &ev), 1);
    struct cc_dataversion *v3 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today, &v3), 0);
    cr_assert_not(cc_dataversion_is_excluded(v3, (uint32_t)index));
    cr_assert_eq(persons_counted(v3), before);

    /* An opt-out effective tomorrow is not applied today. */
    ev.action = CC_OPTOUT_REGISTER;
    ev.effective_day = today + 1;
    cr_assert_eq(cc_optout_record(optouts, &ev), CC_OPTOUT_ADDED);
    struct cc_dataversion *v4 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today, &v4), 0);
    cr_assert_eq(persons_counted(v4), before);
    struct cc_dataversion *v5 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today + 1, &v5), 0);
    cr_assert_eq(persons_counted(v5), before - 1);

    cc_dataversion_release(v1);
    cc_dataversion_release(v2);
    cc_dataversion_release(v3);
    cc_dataversion_release(v4);
    cc_dataversion_release(v5);
    cc_pseudo_key_free(key);
    cc_optout_detach(optouts);
    cc_db_close(db);
    cc_store_free(store);
}

/* ---- reference counts ---------------------------------------------------- */

struct holder {
    cc_dataversion *version; /* one reference, given to the thread */
    uint64_t counted;
    int rc;
};

/* Takes and gives back references while another thread does the same, runs
 * the engine on the version, then gives its own reference back. */
static void *hold_and_count(void *arg)
{
    struct holder *h = arg;
    for (int i = 0; i < 10000; i++)
        cc_dataversion_release(cc_dataversion_retain(h->version));
    struct cc_query *q = NULL;
    struct cc_raw_result res;
    char err[256];
    h->rc = cc_query_new(&q);
    if (h->rc == 0)
        h->rc = cc_query_bind(q, cc_store_columns(cc_dataversion_store(h->version)), NULL, err,
                              sizeof err);
    struct cc_exec_options one_thread = {.n_threads = 1};
    if (h->rc == 0)
        h->rc = cc_exec_run(h->version, q, &one_thread, &res, err, sizeof err);
    if (h->rc == 0) {
        h->counted = res.count[0];
        cc_raw_result_free(&res);
    }
    cc_query_free(q);
    cc_dataversion_release(h->version);
    return NULL;
}

Test(dataversion, an_owned_store_lives_until_the_last_version_sharing_it_is_released)
{
    uint64_t store_version;
    cc_store *store = NULL;
    sqlite3 *db = NULL;
    cc_optout *optouts = NULL;
    open_current(&store, &store_version, &db, &optouts);

    cc_dataversion *v1 = NULL, *v2 = NULL;
    cr_assert_eq(cc_dataversion_publish_owning(store, store_version, optouts, cc_day_today(), &v1),
                 0);
    uint64_t expected = persons_counted(v1);
    cr_assert_gt(expected, 0);
    /* The next publication shares the store and carries the same exclusions. */
    cr_assert_eq(cc_dataversion_republish(v1, optouts, cc_day_today(), &v2), 0);
    cr_assert_eq(cc_dataversion_store(v2), store);
    cr_assert_eq(cc_dataversion_store_version(v2), store_version);
    cr_assert_eq(cc_dataversion_n_excluded(v2), cc_dataversion_n_excluded(v1));
    /* v1 goes first: the store stays for v2 (ASan reports a use after free
     * otherwise, and a leak if the last release did not free it). */
    cc_dataversion_release(v1);
    cr_assert_eq(persons_counted(v2), expected);

    /* Eight threads each hold a reference; the publisher lets go of its own
     * while they run, so the last of them frees the version and the store. */
    enum { N_THREADS = 8 };
    struct holder holders[N_THREADS];
    pthread_t threads[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        holders[t] = (struct holder){.version = cc_dataversion_retain(v2), .rc = -1};
        cr_assert_eq(pthread_create(&threads[t], NULL, hold_and_count, &holders[t]), 0);
    }
    cc_dataversion_release(v2);
    for (int t = 0; t < N_THREADS; t++) {
        cr_assert_eq(pthread_join(threads[t], NULL), 0);
        cr_assert_eq(holders[t].rc, 0, "thread %d", t);
        cr_assert_eq(holders[t].counted, expected, "thread %d", t);
    }
    cc_optout_detach(optouts);
    cc_db_close(db);
}
