/*
 * Tests for data versions (core/cc_dataversion.c): an opt-out committed to the
 * register excludes the person from every figure of the next published
 * version, with no restart and no re-ingest; a withdrawal brings them back;
 * an opt-out effective in the future is not yet applied. Runs on data made
 * by the real generator and ingest, counted by the real engine.
 */
#include <criterion/criterion.h>

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

static char root[256], data_dir[300], key_path[300];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

static void setup(void)
{
    char cmd[2048];
    snprintf(root, sizeof root, "/tmp/cc-test-dataversion-XXXXXX");
    cr_assert(mkdtemp(root));
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
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    run(cmd);
}

TestSuite(dataversion, .init = setup, .fini = teardown, .timeout = 300);

/* Opted-in persons in a version, by the engine. */
static uint64_t persons_counted(const struct cc_dataversion *v)
{
    struct cc_query *q = NULL;
    char err[256];
    cr_assert_eq(cc_query_new(&q), 0);
    cr_assert_eq(cc_query_bind(q, cc_store_columns(v->store), NULL, err, sizeof err), 0);
    struct cc_raw_result res;
    cr_assert_eq(cc_exec_run(v, q, NULL, &res, err, sizeof err), 0, "%s", err);
    uint64_t n = res.count[0];
    cc_raw_result_free(&res);
    cc_query_free(q);
    return n;
}

Test(dataversion, an_optout_reaches_the_next_version_and_a_withdrawal_undoes_it)
{
    char err[1024];
    uint64_t store_version;
    cc_store *store = NULL;
    cr_assert_eq(cc_datadir_load_current(data_dir, key_path, CC_STORE_QUERY_ONLY, &store,
                                         &store_version, err, sizeof err),
                 0, "%s", err);
    sqlite3 *db = NULL;
    cc_optout *optouts = NULL;
    cr_assert_eq(cc_db_open(data_dir, 0, &db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_optout_attach(db, &optouts), 0);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(key_path, &key), 0);
    cc_day today = cc_day_today();

    struct cc_dataversion *v1 = NULL;
    cr_assert_eq(cc_dataversion_publish(store, store_version, optouts, today, &v1), 0);
    uint64_t before = persons_counted(v1);
    cr_assert_gt(v1->n_excluded, 0, "the generated feeds carry opt-outs");
    cr_assert_eq(before, cc_store_columns(store)->n_persons - v1->n_excluded);

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
    cr_assert_gt(v2->optout_sequence, v1->optout_sequence);

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

    cc_dataversion_free(v1);
    cc_dataversion_free(v2);
    cc_dataversion_free(v3);
    cc_dataversion_free(v4);
    cc_dataversion_free(v5);
    cc_pseudo_key_free(key);
    cc_optout_detach(optouts);
    cc_db_close(db);
    cc_store_free(store);
}
