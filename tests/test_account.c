/*
 * Tests for core/cc_account.c (accounts, roles and tokens in state.db) and
 * for the commands that expose it, `carecount account` and `carecount
 * token`: names and roles, a practice exactly for role practice; a token
 * authenticates, and stops for a wrong secret, a malformed text, expiry,
 * revocation or a disabled account; names are never reused; the secret is
 * nowhere in the database files; authentication from 8 threads while
 * tokens are issued; the one-way triggers refuse an UPDATE or DELETE made
 * behind the module's back. The CLI suite runs the real carecount program.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_account.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_testfs.h"
#include "cc_testtool.h"

#define SELECTOR_TEXT_AT  5 /* after "cct1." */
#define SELECTOR_TEXT_LEN 16
#define SECRET_TEXT_AT    22 /* after "cct1." SELECTOR "." */
#define SECRET_TEXT_LEN   43
#define DAY               86400

static char root[256], dir[300];
static cc_accounts *accounts;

static void setup(void)
{
    char err[256] = "";
    cr_assert_eq(sodium_init() < 0, 0);
    cc_testfs_make_dir(root, sizeof root, "account");
    snprintf(dir, sizeof dir, "%s/data", root);
    cr_assert_eq(cc_accounts_open(dir, &accounts, err, sizeof err), 0, "%s", err);
}

static void teardown(void)
{
    cc_accounts_close(accounts);
    accounts = NULL;
    cc_testfs_remove_tree(root);
}

TestSuite(account, .init = setup, .fini = teardown, .timeout = 120);

static void add(const char *name, int role, const char *practice)
{
    char err[256] = "";
    cr_assert_eq(cc_accounts_add(accounts, name, role, practice, NULL, err, sizeof err), 0,
                 "add %s: %s", name, err);
}

/* Issues a token valid for days to name; returns its id. */
static int64_t issue(const char *name, int64_t days, char token[CC_TOKEN_TEXT_BYTES])
{
    char err[256] = "";
    int64_t id = 0;
    cr_assert_eq(cc_accounts_token_issue(accounts, name, (int64_t)time(NULL) + days * DAY, token,
                                         &id, err, sizeof err),
                 0, "issue %s: %s", name, err);
    cr_assert_gt(id, 0);
    return id;
}

/* Authenticates text now; returns the code and sets *why. */
static int auth_at(const char *text, size_t len, int64_t now, struct cc_account *who,
                   const char **why)
{
    return cc_accounts_authenticate(accounts, text, len, now, who, why);
}

static void assert_refused(const char *text, size_t len, int64_t now, const char *reason)
{
    struct cc_account who;
    const char *why = NULL;
    cr_assert_eq(auth_at(text, len, now, &who, &why), CC_EAUTH, "expected a refusal (%s)", reason);
    cr_assert_str_eq(why, reason);
    cr_assert_eq(who.id, 0, "a refusal fills in no account");
    cr_assert_eq(who.name[0], '\0');
}

Test(account, every_role_can_be_added_and_found)
{
    static const char *const names[] = {"rita", "paul", "dash", "gp", "olga"};
    for (int role = CC_ROLE_RESEARCHER; role <= CC_ROLE_OPERATOR; role++) {
        cr_assert_eq(cc_role_parse(cc_role_name(role)), role);
        add(names[role - 1], role, role == CC_ROLE_PRACTICE ? "B86001" : NULL);
    }
    struct cc_account_info info;
    char err[256];
    cr_assert_eq(cc_accounts_find(accounts, "gp", time(NULL), &info, err, sizeof err), 0);
    cr_assert_eq(info.role, CC_ROLE_PRACTICE);
    cr_assert_str_eq(info.practice, "B86001");
    cr_assert_eq(info.disabled_at, 0);
    cr_assert_eq(info.n_tokens_usable, 0);
    cr_assert_eq(cc_accounts_find(accounts, "nobody", time(NULL), &info, err, sizeof err),
                 CC_ENOTFOUND);
    struct cc_account_info *list = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_list(accounts, time(NULL), &list, &n, err, sizeof err), 0);
    cr_assert_eq(n, 5);
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(list[i].name, names[i], "in id order");
        cr_assert_eq(list[i].role, (int)i + 1);
    }
    free(list);
    cr_assert_eq(cc_role_parse("Researcher"), CC_EINVAL);
    cr_assert_eq(cc_role_parse("admin"), CC_EINVAL);
    cr_assert_null(cc_role_name(0));
    cr_assert_null(cc_role_name(CC_ROLE_OPERATOR + 1));
}

Test(account, a_taken_name_is_refused)
{
    char err[256] = "";
    add("rita", CC_ROLE_RESEARCHER, NULL);
    cr_assert_eq(cc_accounts_add(accounts, "rita", CC_ROLE_PLANNER, NULL, NULL, err, sizeof err),
                 CC_EEXISTS);
    cr_assert(strstr(err, "rita"), "%s", err);
}

Test(account, bad_names_and_roles_are_refused)
{
    char err[256], long_name[80];
    static const char *const bad[] = {"",      "-rita", ".rita", "Rita",
                                      "ri ta", "ri/ta", "rita!", "rïta"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(
            cc_accounts_add(accounts, bad[i], CC_ROLE_RESEARCHER, NULL, NULL, err, sizeof err),
            CC_EINVAL, "name '%s'", bad[i]);
    cr_assert_eq(cc_accounts_add(accounts, NULL, CC_ROLE_RESEARCHER, NULL, NULL, err, sizeof err),
                 CC_EINVAL);
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    cr_assert_eq(
        cc_accounts_add(accounts, long_name, CC_ROLE_RESEARCHER, NULL, NULL, err, sizeof err),
        CC_EINVAL, "64 characters");
    long_name[63] = '\0';
    add(long_name, CC_ROLE_RESEARCHER, NULL); /* 63: the longest */
    add("0.a_b-c", CC_ROLE_RESEARCHER, NULL);
    cr_assert_eq(cc_accounts_add(accounts, "zed", 0, NULL, NULL, err, sizeof err), CC_EINVAL);
    cr_assert_eq(
        cc_accounts_add(accounts, "zed", CC_ROLE_OPERATOR + 1, NULL, NULL, err, sizeof err),
        CC_EINVAL);
    struct cc_account_info *list = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_list(accounts, time(NULL), &list, &n, err, sizeof err), 0);
    cr_assert_eq(n, 2, "only the two good names were stored");
    free(list);
}

Test(account, a_practice_code_exactly_for_role_practice)
{
    char err[256];
    cr_assert_eq(cc_accounts_add(accounts, "gp", CC_ROLE_PRACTICE, NULL, NULL, err, sizeof err),
                 CC_EINVAL);
    cr_assert_eq(cc_accounts_add(accounts, "gp", CC_ROLE_PRACTICE, "", NULL, err, sizeof err),
                 CC_EINVAL);
    cr_assert_eq(cc_accounts_add(accounts, "gp", CC_ROLE_PRACTICE, "B8600", NULL, err, sizeof err),
                 CC_EINVAL);
    cr_assert_eq(cc_accounts_add(accounts, "gp", CC_ROLE_PRACTICE, "886001", NULL, err, sizeof err),
                 CC_EINVAL);
    for (int role = CC_ROLE_RESEARCHER; role <= CC_ROLE_OPERATOR; role++)
        if (role != CC_ROLE_PRACTICE)
            cr_assert_eq(cc_accounts_add(accounts, "other", role, "B86001", NULL, err, sizeof err),
                         CC_EINVAL, "role %s with a practice", cc_role_name(role));
    add("gp", CC_ROLE_PRACTICE, "b86001");
    struct cc_account_info info;
    cr_assert_eq(cc_accounts_find(accounts, "gp", time(NULL), &info, err, sizeof err), 0);
    cr_assert_str_eq(info.practice, "B86001", "stored in upper case");
    add("rita", CC_ROLE_RESEARCHER, "");
    cr_assert_eq(cc_accounts_find(accounts, "rita", time(NULL), &info, err, sizeof err), 0);
    cr_assert_str_eq(info.practice, "");
}

Test(account, an_issued_token_authenticates_its_account)
{
    char token[CC_TOKEN_TEXT_BYTES];
    add("gp", CC_ROLE_PRACTICE, "B86001");
    int64_t before = time(NULL);
    int64_t id = issue("gp", 30, token);
    cr_assert_eq(strlen(token), CC_TOKEN_TEXT_LEN);
    cr_assert_eq(strncmp(token, CC_TOKEN_PREFIX, strlen(CC_TOKEN_PREFIX)), 0);
    cr_assert_eq(token[SECRET_TEXT_AT - 1], '.');
    struct cc_account who;
    const char *why = "unset";
    cr_assert_eq(auth_at(token, strlen(token), time(NULL), &who, &why), 0, "%s", why);
    cr_assert_null(why);
    cr_assert_str_eq(who.name, "gp");
    cr_assert_eq(who.role, CC_ROLE_PRACTICE);
    cr_assert_str_eq(who.practice, "B86001");
    cr_assert_eq(who.token_id, id);
    cr_assert_geq(who.token_expires, before + 30 * DAY);
    cr_assert_leq(who.token_expires, time(NULL) + 30 * DAY);

    /* A second token is another token: both work, with their own ids. */
    char second[CC_TOKEN_TEXT_BYTES];
    int64_t id2 = issue("gp", 1, second);
    cr_assert_neq(id2, id);
    cr_assert_neq(strcmp(second, token), 0);
    cr_assert_eq(auth_at(second, strlen(second), time(NULL), &who, &why), 0);
    cr_assert_eq(who.token_id, id2);

    struct cc_account_info info;
    char err[256];
    cr_assert_eq(cc_accounts_find(accounts, "gp", time(NULL), &info, err, sizeof err), 0);
    cr_assert_eq(info.n_tokens_usable, 2);
    /* last use is recorded */
    struct cc_token_info *tokens = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_token_list(accounts, "gp", &tokens, &n, err, sizeof err), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(tokens[0].id, id);
    cr_assert_geq(tokens[0].last_used_at, before);
    free(tokens);
}

Test(account, a_token_for_nobody_or_with_a_past_expiry_is_refused)
{
    char token[CC_TOKEN_TEXT_BYTES], err[256];
    add("rita", CC_ROLE_RESEARCHER, NULL);
    cr_assert_eq(
        cc_accounts_token_issue(accounts, "nobody", time(NULL) + DAY, token, NULL, err, sizeof err),
        CC_ENOTFOUND);
    cr_assert_eq(
        cc_accounts_token_issue(accounts, "rita", time(NULL) - 1, token, NULL, err, sizeof err),
        CC_EINVAL);
    cr_assert_eq(token[0], '\0', "no token text on failure");
}

Test(account, a_wrong_secret_with_the_right_selector_is_refused)
{
    char token[CC_TOKEN_TEXT_BYTES], forged[CC_TOKEN_TEXT_BYTES];
    add("rita", CC_ROLE_RESEARCHER, NULL);
    issue("rita", 30, token);
    /* Change one character in the middle of the secret to another valid
     * base64url character: still canonical, a different secret. */
    for (int at = SECRET_TEXT_AT; at < SECRET_TEXT_AT + SECRET_TEXT_LEN - 1; at += 7) {
        memcpy(forged, token, sizeof forged);
        forged[at] = forged[at] == 'A' ? 'B' : 'A';
        assert_refused(forged, strlen(forged), time(NULL), "wrong secret");
    }
    /* An unknown selector with the real secret */
    memcpy(forged, token, sizeof forged);
    forged[SELECTOR_TEXT_AT + 3] = forged[SELECTOR_TEXT_AT + 3] == 'A' ? 'B' : 'A';
    assert_refused(forged, strlen(forged), time(NULL), "unknown token");
    struct cc_account who;
    cr_assert_eq(auth_at(token, strlen(token), time(NULL), &who, NULL), 0, "the real one works");
}

Test(account, malformed_tokens_are_refused)
{
    char token[CC_TOKEN_TEXT_BYTES], bad[CC_TOKEN_TEXT_BYTES + 8];
    add("rita", CC_ROLE_RESEARCHER, NULL);
    issue("rita", 30, token);
    int64_t now = time(NULL);
    assert_refused("", 0, now, "malformed token");
    assert_refused(NULL, 0, now, "malformed token");
    assert_refused(token, CC_TOKEN_TEXT_LEN - 1, now, "malformed token"); /* short */
    memcpy(bad, token, CC_TOKEN_TEXT_LEN);
    bad[CC_TOKEN_TEXT_LEN] = 'A';
    assert_refused(bad, CC_TOKEN_TEXT_LEN + 1, now, "malformed token"); /* overlong */
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    bad[3] = '2'; /* "cct2." */
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token");
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    bad[SECRET_TEXT_AT - 1] = '-';
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token"); /* no separator */
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    bad[SECRET_TEXT_AT + 5] = '!';
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token"); /* not base64 */
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    bad[SELECTOR_TEXT_AT + 5] = '+'; /* standard base64, not the url alphabet */
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token");
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    bad[SECRET_TEXT_AT + 5] = '\0';
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token"); /* a NUL inside */
    /* A second spelling of the same secret: the last character carries 2
     * unused bits; setting one is refused, so each token has one text. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    memcpy(bad, token, CC_TOKEN_TEXT_BYTES);
    const char *at = strchr(alphabet, bad[CC_TOKEN_TEXT_LEN - 1]);
    cr_assert_not_null(at);
    bad[CC_TOKEN_TEXT_LEN - 1] = alphabet[(at - alphabet) ^ 1];
    assert_refused(bad, CC_TOKEN_TEXT_LEN, now, "malformed token");
    /* and a token with a line end is not the token */
    memcpy(bad, token, CC_TOKEN_TEXT_LEN);
    bad[CC_TOKEN_TEXT_LEN] = '\n';
    assert_refused(bad, CC_TOKEN_TEXT_LEN + 1, now, "malformed token");
}

Test(account, a_token_expires)
{
    char token[CC_TOKEN_TEXT_BYTES];
    struct cc_account who;
    add("rita", CC_ROLE_RESEARCHER, NULL);
    issue("rita", 2, token);
    cr_assert_eq(auth_at(token, strlen(token), time(NULL), &who, NULL), 0);
    int64_t expires = who.token_expires;
    cr_assert_eq(auth_at(token, strlen(token), expires - 1, &who, NULL), 0, "a second before");
    assert_refused(token, strlen(token), expires, "expired token");
    assert_refused(token, strlen(token), expires + 3 * DAY, "expired token");
    struct cc_account_info info;
    char err[256];
    cr_assert_eq(cc_accounts_find(accounts, "rita", expires, &info, err, sizeof err), 0);
    cr_assert_eq(info.n_tokens_usable, 0, "an expired token is not usable");
    cr_assert_eq(cc_accounts_find(accounts, "rita", expires - 1, &info, err, sizeof err), 0);
    cr_assert_eq(info.n_tokens_usable, 1);
}

Test(account, a_revoked_token_stops_for_good)
{
    char token[CC_TOKEN_TEXT_BYTES], other[CC_TOKEN_TEXT_BYTES], err[256];
    struct cc_account who;
    add("rita", CC_ROLE_RESEARCHER, NULL);
    int64_t id = issue("rita", 30, token);
    issue("rita", 30, other);
    cr_assert_eq(cc_accounts_token_revoke(accounts, id, err, sizeof err), 0, "%s", err);
    assert_refused(token, strlen(token), time(NULL), "revoked token");
    cr_assert_eq(auth_at(other, strlen(other), time(NULL), &who, NULL), 0, "only that token");
    cr_assert_eq(cc_accounts_token_revoke(accounts, id, err, sizeof err), 0, "again: no change");
    cr_assert_eq(cc_accounts_token_revoke(accounts, id + 100, err, sizeof err), CC_ENOTFOUND);
    cr_assert_eq(cc_accounts_token_revoke(accounts, 0, err, sizeof err), CC_ENOTFOUND);
    struct cc_token_info *tokens = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_token_list(accounts, NULL, &tokens, &n, err, sizeof err), 0);
    cr_assert_eq(n, 2);
    cr_assert_gt(tokens[0].revoked_at, 0);
    cr_assert_eq(tokens[1].revoked_at, 0);
    free(tokens);
}

Test(account, disabling_stops_every_token_and_new_ones)
{
    char token[CC_TOKEN_TEXT_BYTES], second[CC_TOKEN_TEXT_BYTES], err[256];
    struct cc_account who;
    add("rita", CC_ROLE_RESEARCHER, NULL);
    add("paul", CC_ROLE_PLANNER, NULL);
    issue("rita", 30, token);
    issue("rita", 30, second);
    char pauls[CC_TOKEN_TEXT_BYTES];
    issue("paul", 30, pauls);
    cr_assert_eq(cc_accounts_disable(accounts, "rita", err, sizeof err), 0, "%s", err);
    assert_refused(token, strlen(token), time(NULL), "disabled account");
    assert_refused(second, strlen(second), time(NULL), "disabled account");
    cr_assert_eq(auth_at(pauls, strlen(pauls), time(NULL), &who, NULL), 0, "others unaffected");
    char fresh[CC_TOKEN_TEXT_BYTES];
    cr_assert_eq(
        cc_accounts_token_issue(accounts, "rita", time(NULL) + DAY, fresh, NULL, err, sizeof err),
        CC_EINVAL);
    cr_assert(strstr(err, "disabled"), "%s", err);
    cr_assert_eq(cc_accounts_disable(accounts, "rita", err, sizeof err), 0, "again: no change");
    cr_assert_eq(cc_accounts_disable(accounts, "nobody", err, sizeof err), CC_ENOTFOUND);
    struct cc_account_info info;
    cr_assert_eq(cc_accounts_find(accounts, "rita", time(NULL), &info, err, sizeof err), 0);
    cr_assert_gt(info.disabled_at, 0);
}

Test(account, names_are_never_reused)
{
    char err[256];
    int64_t first = 0, second = 0;
    cr_assert_eq(
        cc_accounts_add(accounts, "rita", CC_ROLE_RESEARCHER, NULL, &first, err, sizeof err), 0);
    cr_assert_eq(cc_accounts_disable(accounts, "rita", err, sizeof err), 0);
    cr_assert_eq(cc_accounts_add(accounts, "rita", CC_ROLE_RESEARCHER, NULL, NULL, err, sizeof err),
                 CC_EEXISTS, "a disabled account's name stays taken");
    cr_assert_eq(
        cc_accounts_add(accounts, "rita2", CC_ROLE_RESEARCHER, NULL, &second, err, sizeof err), 0);
    cr_assert_gt(second, first);
}

/* Appends the bytes of path (if it exists) to *buf. */
static void append_file(const char *path, char **buf, size_t *len)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    size_t n = 0;
    char *data = cc_testfs_read(path, &n);
    *buf = realloc(*buf, *len + n + 1);
    cr_assert_not_null(*buf);
    memcpy(*buf + *len, data, n);
    *len += n;
    free(data);
}

/* state.db with its -wal and -shm, as one buffer. */
static char *database_bytes(size_t *len)
{
    static const char *const names[] = {"state.db", "state.db-wal", "state.db-shm"};
    char path[400];
    char *buf = NULL;
    *len = 0;
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        append_file(path, &buf, len);
    }
    cr_assert_gt(*len, 0);
    return buf;
}

Test(account, the_secret_is_nowhere_in_the_database_files)
{
    char token[CC_TOKEN_TEXT_BYTES];
    uint8_t selector[12], secret[32];
    size_t n = 0;
    add("rita", CC_ROLE_RESEARCHER, NULL);
    issue("rita", 30, token);
    struct cc_account who;
    cr_assert_eq(auth_at(token, strlen(token), time(NULL), &who, NULL), 0);
    cr_assert_eq(sodium_base642bin(selector, sizeof selector, token + SELECTOR_TEXT_AT,
                                   SELECTOR_TEXT_LEN, NULL, &n, NULL,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    cr_assert_eq(sodium_base642bin(secret, sizeof secret, token + SECRET_TEXT_AT, SECRET_TEXT_LEN,
                                   NULL, &n, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                 0);
    cr_assert_eq(n, sizeof secret);
    size_t len = 0;
    char *bytes = database_bytes(&len); /* while open: the WAL holds the rows */
    /* The search finds what is there: the selector is stored, as a blob. */
    cr_assert_not_null(memmem(bytes, len, selector, sizeof selector), "control: the selector");
    cr_assert_null(memmem(bytes, len, secret, sizeof secret), "the secret's bytes");
    cr_assert_null(memmem(bytes, len, secret, 8), "even a piece of the secret");
    cr_assert_null(memmem(bytes, len, token + SECRET_TEXT_AT, SECRET_TEXT_LEN), "its base64");
    cr_assert_null(memmem(bytes, len, token, CC_TOKEN_TEXT_LEN), "the token text");
    cr_assert_null(memmem(bytes, len, token + SECRET_TEXT_AT, 12), "a piece of its base64");
    free(bytes);
    /* and after the connection is closed and the WAL checkpointed */
    cc_accounts_close(accounts);
    accounts = NULL;
    bytes = database_bytes(&len);
    cr_assert_not_null(memmem(bytes, len, selector, sizeof selector), "control: the selector");
    cr_assert_null(memmem(bytes, len, secret, sizeof secret));
    cr_assert_null(memmem(bytes, len, token + SECRET_TEXT_AT, SECRET_TEXT_LEN));
    free(bytes);
    sodium_memzero(secret, sizeof secret);
}

/* ---- concurrency ---------------------------------------------------------- */

#define N_AUTH_THREADS 8
#define N_AUTH_ROUNDS  300
#define N_ISSUED       40

static char shared_token[CC_TOKEN_TEXT_BYTES];
static char issued[N_ISSUED][CC_TOKEN_TEXT_BYTES];

struct auth_result {
    int n_ok, n_failed;
};

static void *authenticate_loop(void *arg)
{
    struct auth_result *r = arg;
    for (int i = 0; i < N_AUTH_ROUNDS; i++) {
        struct cc_account who;
        const char *why = NULL;
        /* a time in the future past the last-used granularity, so some of
         * these calls also write the last use */
        int64_t now = (int64_t)time(NULL) + (i % 4) * CC_TOKEN_LAST_USED_GRANULARITY_S;
        if (cc_accounts_authenticate(accounts, shared_token, strlen(shared_token), now, &who,
                                     &why) == 0 &&
            !strcmp(who.name, "rita"))
            r->n_ok++;
        else
            r->n_failed++;
    }
    return NULL;
}

/* Issues tokens through its own connection, as `carecount token` in another
 * process would. */
static void *issue_loop(void *arg)
{
    int *n_issued = arg;
    cc_accounts *own = NULL;
    char err[256];
    if (cc_accounts_open(dir, &own, err, sizeof err) != 0)
        return NULL;
    for (int i = 0; i < N_ISSUED; i++)
        if (cc_accounts_token_issue(own, "paul", time(NULL) + DAY, issued[i], NULL, err,
                                    sizeof err) == 0)
            (*n_issued)++;
    cc_accounts_close(own);
    return NULL;
}

Test(account, eight_threads_authenticate_while_tokens_are_issued)
{
    add("rita", CC_ROLE_RESEARCHER, NULL);
    add("paul", CC_ROLE_PLANNER, NULL);
    issue("rita", 30, shared_token);
    pthread_t threads[N_AUTH_THREADS], issuer;
    struct auth_result results[N_AUTH_THREADS];
    int n_issued = 0;
    memset(results, 0, sizeof results);
    cr_assert_eq(pthread_create(&issuer, NULL, issue_loop, &n_issued), 0);
    for (int t = 0; t < N_AUTH_THREADS; t++)
        cr_assert_eq(pthread_create(&threads[t], NULL, authenticate_loop, &results[t]), 0);
    for (int t = 0; t < N_AUTH_THREADS; t++)
        pthread_join(threads[t], NULL);
    pthread_join(issuer, NULL);
    for (int t = 0; t < N_AUTH_THREADS; t++) {
        cr_assert_eq(results[t].n_failed, 0, "thread %d: %d refusals", t, results[t].n_failed);
        cr_assert_eq(results[t].n_ok, N_AUTH_ROUNDS);
    }
    cr_assert_eq(n_issued, N_ISSUED, "every token was issued");
    for (int i = 0; i < N_ISSUED; i++) {
        struct cc_account who;
        cr_assert_eq(auth_at(issued[i], strlen(issued[i]), time(NULL), &who, NULL), 0,
                     "issued token %d", i);
        cr_assert_str_eq(who.name, "paul");
    }
    char err[256];
    struct cc_account_info info;
    cr_assert_eq(cc_accounts_find(accounts, "paul", time(NULL), &info, err, sizeof err), 0);
    cr_assert_eq(info.n_tokens_usable, N_ISSUED);
}

/* ---- the one-way triggers --------------------------------------------------- */

/* Runs sql on a connection of its own; returns SQLite's code. */
static int exec_behind_the_module(const char *sql)
{
    sqlite3 *db = NULL;
    char path[400];
    snprintf(path, sizeof path, "%s/state.db", dir);
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    int changes = sqlite3_changes(db);
    sqlite3_close(db);
    cr_assert(rc != SQLITE_OK || changes == 0, "'%s' changed %d rows", sql, changes);
    return rc;
}

Test(account, the_triggers_refuse_undoing_a_disable_a_revoke_or_an_expiry)
{
    char token[CC_TOKEN_TEXT_BYTES], other[CC_TOKEN_TEXT_BYTES], err[256];
    add("rita", CC_ROLE_RESEARCHER, NULL);
    add("paul", CC_ROLE_PLANNER, NULL);
    issue("rita", 30, token);
    int64_t pauls = issue("paul", 1, other);
    cr_assert_eq(cc_accounts_disable(accounts, "rita", err, sizeof err), 0);
    cr_assert_eq(cc_accounts_token_revoke(accounts, pauls, err, sizeof err), 0);

    static const char *const refused[] = {
        "UPDATE account SET disabled_at = NULL WHERE name = 'rita'",
        "UPDATE account SET disabled_at = 1 WHERE name = 'rita'",
        "UPDATE account SET role = 5 WHERE name = 'paul'",
        "UPDATE account SET name = 'rita' || id WHERE name = 'paul'",
        "DELETE FROM account WHERE name = 'rita'",
        "UPDATE account_token SET revoked_at = NULL",
        "UPDATE account_token SET expires_at = expires_at + 86400000",
        "UPDATE account_token SET secret_hash = zeroblob(32)",
        "UPDATE account_token SET account_id = (SELECT id FROM account WHERE name = 'paul')",
        "DELETE FROM account_token",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        cr_assert_neq(exec_behind_the_module(refused[i]), SQLITE_OK, "%s", refused[i]);

    assert_refused(token, strlen(token), time(NULL), "disabled account");
    assert_refused(other, strlen(other), time(NULL), "revoked token");
    struct cc_account_info info;
    cr_assert_eq(cc_accounts_find(accounts, "paul", time(NULL), &info, err, sizeof err), 0);
    cr_assert_eq(info.role, CC_ROLE_PLANNER);
    struct cc_token_info *tokens = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_token_list(accounts, NULL, &tokens, &n, err, sizeof err), 0);
    cr_assert_eq(n, 2, "nothing deleted");
    free(tokens);
}

Test(account, a_token_file_must_be_private_and_hold_a_token)
{
    char token[CC_TOKEN_TEXT_BYTES], read_back[CC_TOKEN_TEXT_BYTES], path[400], err[256];
    add("rita", CC_ROLE_RESEARCHER, NULL);
    issue("rita", 30, token);
    snprintf(path, sizeof path, "%s/rita.token", root);
    char line[CC_TOKEN_TEXT_BYTES + 1];
    snprintf(line, sizeof line, "%s\n", token);
    cc_testfs_write(path, line, strlen(line), 0600);
    cr_assert_eq(cc_token_file_read(path, read_back, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(read_back, token);
    cc_testfs_write(path, line, strlen(line), 0640);
    cr_assert_eq(cc_token_file_read(path, read_back, err, sizeof err), CC_EPERM);
    cr_assert_null(strstr(err, token + SECRET_TEXT_AT), "the message holds no secret");
    cc_testfs_write(path, "cct1.nope\n", 10, 0600);
    cr_assert_eq(cc_token_file_read(path, read_back, err, sizeof err), CC_EPARSE);
}

/* ---- the commands ------------------------------------------------------------ */

static char cli_root[256], cli_data[300];

static void cli_setup(void)
{
    cr_assert_eq(sodium_init() < 0, 0);
    cc_testfs_make_dir(cli_root, sizeof cli_root, "account_cli");
    snprintf(cli_data, sizeof cli_data, "%s/data", cli_root);
    cr_assert_eq(mkdir(cli_data, 0700), 0);
}

static void cli_teardown(void)
{
    cc_testfs_remove_tree(cli_root);
}

TestSuite(account_cli, .init = cli_setup, .fini = cli_teardown, .timeout = 120);

static char out[8192];

/* Runs `carecount ARGS` (printf-style) and returns its exit status. */
static int tool(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int tool(const char *format, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, format);
    vsnprintf(args, sizeof args, format, ap);
    va_end(ap);
    return cc_testtool_run(args, NULL, out, sizeof out);
}

/* Authenticates token text against the CLI's data directory. */
static int cli_authenticate(const char *token, const char **why)
{
    cc_accounts *a = NULL;
    char err[256];
    struct cc_account who;
    cr_assert_eq(cc_accounts_open(cli_data, &a, err, sizeof err), 0, "%s", err);
    int rc = cc_accounts_authenticate(a, token, strlen(token), time(NULL), &who, why);
    cc_accounts_close(a);
    return rc;
}

Test(account_cli, add_issue_list_revoke_disable)
{
    char path[400], token[CC_TOKEN_TEXT_BYTES], err[256];
    const char *why = NULL;
    cr_assert_eq(tool("account add rita --role researcher --data '%s'", cli_data), 0, "%s", out);
    cr_assert(strstr(out, "added account rita (role researcher)"), "%s", out);
    cr_assert_eq(tool("account add gp --role practice --practice B86001 --data '%s'", cli_data), 0,
                 "%s", out);
    cr_assert_eq(tool("account add rita --role planner --data '%s'", cli_data), 1, "%s", out);
    cr_assert(strstr(out, "exists already"), "%s", out);

    snprintf(path, sizeof path, "%s/rita.token", cli_root);
    cr_assert_eq(tool("token issue rita --data '%s' --out '%s'", cli_data, path), 0, "%s", out);
    cr_assert(strstr(out, "token 1 for rita written to"), "%s", out);
    cr_assert(strstr(out, "expires"), "%s", out);
    cr_assert_null(strstr(out, CC_TOKEN_PREFIX), "the token is not printed: %s", out);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600, "mode %o", (unsigned)(st.st_mode & 07777));
    cr_assert_eq(cc_token_file_read(path, token, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cli_authenticate(token, &why), 0, "%s", why ? why : "");

    /* an existing file is refused and left as it was */
    cr_assert_eq(tool("token issue rita --data '%s' --out '%s'", cli_data, path), 1, "%s", out);
    cr_assert(strstr(out, "exists already"), "%s", out);
    char again[CC_TOKEN_TEXT_BYTES];
    cr_assert_eq(cc_token_file_read(path, again, err, sizeof err), 0);
    cr_assert_str_eq(again, token);

    /* without --out: printed once, with a note that it is shown once */
    cr_assert_eq(tool("token issue gp --data '%s' --expires-days 7", cli_data), 0, "%s", out);
    char *printed = strstr(out, CC_TOKEN_PREFIX);
    cr_assert_not_null(printed, "%s", out);
    char gp_token[CC_TOKEN_TEXT_BYTES];
    memcpy(gp_token, printed, CC_TOKEN_TEXT_LEN);
    gp_token[CC_TOKEN_TEXT_LEN] = '\0';
    cr_assert(strstr(out, "shown once"), "%s", out);
    cr_assert_eq(cli_authenticate(gp_token, &why), 0);

    /* the lists name tokens by id and never show a secret */
    cr_assert_eq(tool("token list --data '%s'", cli_data), 0, "%s", out);
    cr_assert(strstr(out, "rita") && strstr(out, "gp") && strstr(out, "usable"), "%s", out);
    cr_assert_null(strstr(out, CC_TOKEN_PREFIX), "%s", out);
    cr_assert_null(memmem(out, strlen(out), token + SECRET_TEXT_AT, 10), "a secret: %s", out);
    cr_assert_null(memmem(out, strlen(out), gp_token + SECRET_TEXT_AT, 10), "a secret: %s", out);
    cr_assert_null(memmem(out, strlen(out), token + SELECTOR_TEXT_AT, 10), "a selector: %s", out);
    cr_assert_eq(tool("account list --data '%s'", cli_data), 0, "%s", out);
    cr_assert(strstr(out, "researcher") && strstr(out, "B86001"), "%s", out);
    cr_assert_null(strstr(out, CC_TOKEN_PREFIX), "%s", out);
    cr_assert_eq(tool("token list nobody --data '%s'", cli_data), 1, "%s", out);

    /* revoke: the token stops; again changes nothing */
    cr_assert_eq(tool("token revoke 1 --data '%s'", cli_data), 0, "%s", out);
    cr_assert_eq(cli_authenticate(token, &why), CC_EAUTH);
    cr_assert_str_eq(why, "revoked token");
    cr_assert_eq(tool("token revoke 1 --data '%s'", cli_data), 0, "%s", out);
    cr_assert(strstr(out, "nothing changed"), "%s", out);
    cr_assert_eq(tool("token revoke 99 --data '%s'", cli_data), 1, "%s", out);
    cr_assert_eq(tool("token list rita --data '%s'", cli_data), 0, "%s", out);
    cr_assert(strstr(out, "revoked"), "%s", out);

    /* disable: gp's token stops, no new one, the name stays taken */
    cr_assert_eq(tool("account disable gp --data '%s'", cli_data), 0, "%s", out);
    cr_assert_eq(cli_authenticate(gp_token, &why), CC_EAUTH);
    cr_assert_str_eq(why, "disabled account");
    snprintf(path, sizeof path, "%s/gp.token", cli_root);
    cr_assert_eq(tool("token issue gp --data '%s' --out '%s'", cli_data, path), 1, "%s", out);
    cr_assert_neq(stat(path, &st), 0, "no file is left behind by a refused issue");
    cr_assert_eq(tool("account add gp --role practice --practice B86001 --data '%s'", cli_data), 1,
                 "%s", out);
    cr_assert_eq(tool("account list --data '%s'", cli_data), 0, "%s", out);
    cr_assert_eq(tool("account disable nobody --data '%s'", cli_data), 1, "%s", out);
    explicit_bzero(token, sizeof token);
    explicit_bzero(gp_token, sizeof gp_token);
}

Test(account_cli, a_token_that_cannot_be_shown_is_revoked)
{
    struct stat st;
    cr_assert_eq(stat("/dev/full", &st), 0, "/dev/full makes standard output fail");
    cr_assert_eq(tool("account add rita --role researcher --data '%s'", cli_data), 0, "%s", out);
    /* standard output that cannot be written: the token never reached anyone */
    cr_assert_eq(tool("token issue rita --data '%s' >/dev/full", cli_data), 1);
    cc_accounts *a = NULL;
    char err[256];
    struct cc_token_info *tokens = NULL;
    size_t n = 0;
    cr_assert_eq(cc_accounts_open(cli_data, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_token_list(a, "rita", &tokens, &n, err, sizeof err), 0, "%s", err);
    cc_accounts_close(a);
    cr_assert_eq(n, 1, "the token was issued");
    cr_assert_gt(tokens[0].revoked_at, 0, "and revoked at once");
    free(tokens);
}

Test(account_cli, help_and_usage_errors)
{
    cr_assert_eq(tool("account -h"), 0, "%s", out);
    cr_assert_eq(strncmp(out, "usage: carecount account", 24), 0, "%s", out);
    cr_assert_eq(tool("account --help"), 0, "%s", out);
    cr_assert_eq(tool("token -h"), 0, "%s", out);
    cr_assert_eq(strncmp(out, "usage: carecount token", 22), 0, "%s", out);
    cr_assert_eq(tool("token list --help"), 0, "%s", out);
    cr_assert_eq(tool("account"), 2, "%s", out);
    cr_assert_eq(tool("token"), 2, "%s", out);
    cr_assert_eq(tool("account add rita --role boss --data '%s'", cli_data), 2, "%s", out);
    cr_assert_eq(tool("account add gp --role practice --data '%s'", cli_data), 2, "%s", out);
    cr_assert(strstr(out, "--practice"), "%s", out);
    cr_assert_eq(tool("account add Rita --role researcher --data '%s'", cli_data), 2, "%s", out);
    cr_assert_eq(tool("account add rita --role researcher"), 2, "%s", out);
    cr_assert_eq(tool("account frobnicate --data '%s'", cli_data), 2, "%s", out);
    cr_assert_eq(tool("account list --data '%s' --bogus=x", cli_data), 2, "%s", out);
    cr_assert_eq(tool("account add rita --role researcher --data '%s'", cli_data), 0, "%s", out);
    cr_assert_eq(tool("token issue rita --data '%s' --expires-days 0", cli_data), 2, "%s", out);
    cr_assert_eq(tool("token issue rita --data '%s' --expires-days 3661", cli_data), 2, "%s", out);
    cr_assert_eq(tool("token issue rita --data '%s' --expires-days 5x", cli_data), 2, "%s", out);
    cr_assert_eq(tool("token revoke abc --data '%s'", cli_data), 2, "%s", out);
    cr_assert_eq(tool("token revoke -1 --data '%s'", cli_data), 2, "%s", out);
    cr_assert_eq(tool("token list --data '%s' --out x", cli_data), 2, "%s", out);
    cr_assert_null(strstr(out, CC_TOKEN_PREFIX), "no usage error issues a token");
}

Test(account_cli, a_missing_or_open_data_directory_is_refused)
{
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nothing-here", cli_root);
    cr_assert_eq(tool("account list --data '%s'", missing), 1, "%s", out);
    cr_assert(strstr(out, "no such data directory; ingest first"), "%s", out);
    cr_assert_eq(tool("token issue rita --data '%s'", missing), 1, "%s", out);
    cr_assert(strstr(out, "no such data directory; ingest first"), "%s", out);
    struct stat st;
    cr_assert_neq(stat(missing, &st), 0, "not created");
    cr_assert_eq(chmod(cli_data, 0777), 0);
    cr_assert_eq(tool("account add rita --role researcher --data '%s'", cli_data), 1, "%s", out);
    cr_assert(strstr(out, "writable by group or others"), "%s", out);
    cr_assert_eq(chmod(cli_data, 0700), 0);
}
