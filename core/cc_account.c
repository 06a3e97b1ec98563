/*
 * cc_account.c: accounts and tokens in state.db (see cc_account.h for the
 * token's form, what is stored, and when a token stops working).
 *
 * Tables (schema module "account"):
 *  - account: id (AUTOINCREMENT: never reused, the audit log names it),
 *    name (UNIQUE), role, practice (exactly for role practice), created_at,
 *    disabled_at (NULL while active);
 *  - account_token: id (AUTOINCREMENT), account_id, selector (12 bytes,
 *    UNIQUE: the lookup), secret_hash (32 bytes), created_at, expires_at,
 *    revoked_at (NULL while not revoked), last_used_at.
 * Triggers make both tables append-only apart from the one-way changes the
 * module makes (disable, revoke, last use): a bug in a caller cannot
 * re-enable an account, un-revoke a token or lengthen its life. They guard
 * against mistakes, not against someone who can edit state.db (who could
 * drop them); the secret hash is what protects against such a person
 * reading the file.
 *
 * Authentication is one indexed read of the selector, one BLAKE2b and one
 * constant-time comparison; the hash is computed even when the selector is
 * unknown, so an unknown selector costs what a wrong secret costs.
 *
 * Must never: store or log a token or its secret, or say in an error message
 * anything but the account name, the token id and the reason.
 */
#include "cc_account.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_validate.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define ACCOUNT_SCHEMA_VERSION 1

#define SELECTOR_BYTES 12
#define SECRET_BYTES 32
#define SECRET_HASH_BYTES 32
#define PREFIX_LEN (sizeof CC_TOKEN_PREFIX - 1)
#define SELECTOR_TEXT_LEN 16 /* base64url of 12 bytes, no padding */
#define SECRET_TEXT_LEN 43   /* base64url of 32 bytes, no padding */
#define SELECTOR_AT PREFIX_LEN
#define SECRET_AT (SELECTOR_AT + SELECTOR_TEXT_LEN + 1)
#define BASE64_VARIANT sodium_base64_VARIANT_URLSAFE_NO_PADDING

_Static_assert(SECRET_AT + SECRET_TEXT_LEN == CC_TOKEN_TEXT_LEN, "token layout");

static const char tag_token[] = "carecount-token-v1"; /* hashed with its NUL */

static const char *const account_schema_sql[] = {
    "CREATE TABLE IF NOT EXISTS account ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 63),"
    " role INTEGER NOT NULL CHECK (role BETWEEN 1 AND 5),"
    " practice TEXT CHECK ((role = 4) = (practice IS NOT NULL)),"
    " created_at INTEGER NOT NULL,"
    " disabled_at INTEGER"
    ")",
    "CREATE TABLE IF NOT EXISTS account_token ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " account_id INTEGER NOT NULL REFERENCES account(id),"
    " selector BLOB NOT NULL UNIQUE CHECK (length(selector) = 12),"
    " secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " revoked_at INTEGER,"
    " last_used_at INTEGER"
    ")",
    "CREATE INDEX IF NOT EXISTS account_token_by_account ON account_token(account_id)",
    "CREATE TRIGGER IF NOT EXISTS account_no_delete BEFORE DELETE ON account"
    " BEGIN SELECT RAISE(ABORT, 'accounts are never deleted'); END",
    "CREATE TRIGGER IF NOT EXISTS account_one_way BEFORE UPDATE ON account"
    " WHEN NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role"
    "  OR NEW.practice IS NOT OLD.practice OR NEW.created_at IS NOT OLD.created_at"
    "  OR OLD.disabled_at IS NOT NULL"
    " BEGIN SELECT RAISE(ABORT, 'an account can only be disabled, once'); END",
    "CREATE TRIGGER IF NOT EXISTS account_token_no_delete BEFORE DELETE ON account_token"
    " BEGIN SELECT RAISE(ABORT, 'tokens are never deleted'); END",
    "CREATE TRIGGER IF NOT EXISTS account_token_one_way BEFORE UPDATE ON account_token"
    " WHEN NEW.id IS NOT OLD.id OR NEW.account_id IS NOT OLD.account_id"
    "  OR NEW.selector IS NOT OLD.selector OR NEW.secret_hash IS NOT OLD.secret_hash"
    "  OR NEW.created_at IS NOT OLD.created_at OR NEW.expires_at IS NOT OLD.expires_at"
    "  OR (OLD.revoked_at IS NOT NULL AND NEW.revoked_at IS NOT OLD.revoked_at)"
    " BEGIN SELECT RAISE(ABORT, 'a token can only be revoked, once'); END",
};

struct cc_accounts {
    pthread_mutex_t lock; /* held around every use of db and the statements */
    sqlite3 *db;
    sqlite3_stmt *authenticate;
    sqlite3_stmt *touch;
    sqlite3_stmt *insert_account;
    sqlite3_stmt *find_account;
    sqlite3_stmt *list_accounts;
    sqlite3_stmt *disable;
    sqlite3_stmt *insert_token;
    sqlite3_stmt *revoke;
    sqlite3_stmt *token_exists;
    sqlite3_stmt *list_tokens;
};

#define ACCOUNT_COLUMNS                                                        \
    "id, name, role, practice, created_at, disabled_at,"                       \
    " (SELECT count(*) FROM account_token t WHERE t.account_id = account.id"   \
    "  AND t.revoked_at IS NULL AND t.expires_at > ?2)"

static const struct {
    size_t offset;
    const char *sql;
} statement_table[] = {
    {offsetof(struct cc_accounts, authenticate),
     "SELECT t.id, t.secret_hash, t.expires_at, t.revoked_at, t.last_used_at,"
     " a.id, a.name, a.role, a.practice, a.disabled_at"
     " FROM account_token t JOIN account a ON a.id = t.account_id WHERE t.selector = ?1"},
    {offsetof(struct cc_accounts, touch),
     "UPDATE account_token SET last_used_at = ?1 WHERE id = ?2"},
    {offsetof(struct cc_accounts, insert_account),
     "INSERT INTO account (name, role, practice, created_at) VALUES (?1, ?2, ?3, ?4)"},
    {offsetof(struct cc_accounts, find_account),
     "SELECT " ACCOUNT_COLUMNS " FROM account WHERE name = ?1"},
    {offsetof(struct cc_accounts, list_accounts),
     "SELECT " ACCOUNT_COLUMNS " FROM account ORDER BY id"},
    {offsetof(struct cc_accounts, disable),
     "UPDATE account SET disabled_at = ?2 WHERE name = ?1 AND disabled_at IS NULL"},
    {offsetof(struct cc_accounts, insert_token),
     "INSERT INTO account_token (account_id, selector, secret_hash, created_at, expires_at)"
     " VALUES (?1, ?2, ?3, ?4, ?5)"},
    {offsetof(struct cc_accounts, revoke),
     "UPDATE account_token SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL"},
    {offsetof(struct cc_accounts, token_exists), "SELECT 1 FROM account_token WHERE id = ?1"},
    {offsetof(struct cc_accounts, list_tokens),
     "SELECT t.id, t.account_id, a.name, t.created_at, t.expires_at, t.revoked_at,"
     " t.last_used_at FROM account_token t JOIN account a ON a.id = t.account_id"
     " WHERE ?1 IS NULL OR a.name = ?1 ORDER BY t.id"},
};

#define N_STATEMENTS (sizeof statement_table / sizeof statement_table[0])

static sqlite3_stmt **statement_slot(cc_accounts *a, size_t i)
{
    return (sqlite3_stmt **)((char *)a + statement_table[i].offset);
}

static const char *const role_names[] = {
    [CC_ROLE_RESEARCHER] = "researcher", [CC_ROLE_PLANNER] = "planner",
    [CC_ROLE_DASHBOARD] = "dashboard",   [CC_ROLE_PRACTICE] = "practice",
    [CC_ROLE_OPERATOR] = "operator",
};

const char *cc_role_name(int role)
{
    if (role < CC_ROLE_RESEARCHER || role > CC_ROLE_OPERATOR)
        return NULL;
    return role_names[role];
}

int cc_role_parse(const char *name)
{
    if (!name)
        return CC_EINVAL;
    for (int role = CC_ROLE_RESEARCHER; role <= CC_ROLE_OPERATOR; role++)
        if (!strcmp(name, role_names[role]))
            return role;
    return CC_EINVAL;
}

static int valid_name(const char *name)
{
    if (!name)
        return 0;
    size_t len = strlen(name);
    if (len < 1 || len >= CC_ACCOUNT_NAME_BYTES)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

/* Ends a statement's use: resets it and drops its bindings, so no selector
 * or hash lingers bound to a prepared statement. */
static void release(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

/* The CC_E* code of a failed SQLite call (never 0). */
static int db_failure(int rc)
{
    int err = cc_db_error(rc);
    return err ? err : CC_EDB;
}

static void copy_text(char *out, size_t out_bytes, const unsigned char *text)
{
    snprintf(out, out_bytes, "%s", text ? (const char *)text : "");
}

void cc_accounts_close(cc_accounts *accounts)
{
    if (!accounts)
        return;
    for (size_t i = 0; i < N_STATEMENTS; i++)
        sqlite3_finalize(*statement_slot(accounts, i));
    cc_db_close(accounts->db);
    pthread_mutex_destroy(&accounts->lock);
    free(accounts);
}

int cc_accounts_open(const char *dir, cc_accounts **out, char *errbuf, size_t errlen)
{
    cc_accounts *a = NULL;
    int err;
    *out = NULL;
    if (sodium_init() < 0)
        return cc_errorf(errbuf, errlen, CC_ECRYPTO, "cannot initialise libsodium");
    a = calloc(1, sizeof *a);
    if (!a)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "cannot create a mutex");
    }
    if ((err = cc_db_open(dir, CC_DB_CREATE, &a->db, errbuf, errlen)) != 0)
        goto fail;
    err = cc_db_schema_ensure(a->db, "account", ACCOUNT_SCHEMA_VERSION, account_schema_sql,
                              sizeof account_schema_sql / sizeof account_schema_sql[0]);
    if (err) {
        cc_errorf(errbuf, errlen, err, "%s/%s: cannot create the account tables: %s", dir,
                  CC_DB_FILE_NAME, cc_strerror(err));
        goto fail;
    }
    for (size_t i = 0; i < N_STATEMENTS; i++) {
        int rc = sqlite3_prepare_v3(a->db, statement_table[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    statement_slot(a, i), NULL);
        if (rc != SQLITE_OK) {
            err = db_failure(rc);
            cc_errorf(errbuf, errlen, err, "%s/%s: %s", dir, CC_DB_FILE_NAME,
                      sqlite3_errmsg(a->db));
            goto fail;
        }
    }
    *out = a;
    return 0;
fail:
    cc_accounts_close(a);
    return err;
}

/* Fills info from a row of ACCOUNT_COLUMNS. */
static void read_account_row(sqlite3_stmt *stmt, struct cc_account_info *info)
{
    memset(info, 0, sizeof *info);
    info->id = sqlite3_column_int64(stmt, 0);
    copy_text(info->name, sizeof info->name, sqlite3_column_text(stmt, 1));
    info->role = sqlite3_column_int(stmt, 2);
    copy_text(info->practice, sizeof info->practice, sqlite3_column_text(stmt, 3));
    info->created_at = sqlite3_column_int64(stmt, 4);
    info->disabled_at = sqlite3_column_int64(stmt, 5); /* NULL reads as 0 */
    info->n_tokens_usable = (uint64_t)sqlite3_column_int64(stmt, 6);
}

/* The account named name, with the lock held. CC_ENOTFOUND if none. */
static int find_locked(cc_accounts *a, const char *name, int64_t now_unix,
                       struct cc_account_info *info)
{
    sqlite3_stmt *stmt = a->find_account;
    int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 2, now_unix);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    int err;
    if (rc == SQLITE_ROW) {
        read_account_row(stmt, info);
        err = 0;
    } else {
        err = rc == SQLITE_DONE ? CC_ENOTFOUND : db_failure(rc);
    }
    release(stmt);
    return err;
}

int cc_accounts_add(cc_accounts *a, const char *name, int role, const char *practice,
                    int64_t *id, char *errbuf, size_t errlen)
{
    char code[CC_PRACTICE_CODE_BYTES] = "";
    if (id)
        *id = 0;
    if (!a)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "no accounts handle");
    if (!valid_name(name))
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                         "an account name is 1 to %d characters of a-z, 0-9, '.', '_' and "
                         "'-', beginning with a letter or a digit",
                         CC_ACCOUNT_NAME_BYTES - 1);
    if (!cc_role_name(role))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "unknown role");
    int has_practice = practice && *practice;
    if (role == CC_ROLE_PRACTICE && !has_practice)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                         "an account of role practice needs its practice code");
    if (role != CC_ROLE_PRACTICE && has_practice)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                         "only an account of role practice has a practice code");
    if (has_practice && cc_validate_practice_code(practice, strlen(practice), code) != 0)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                         "the practice code is not an ODS practice code (a letter and 5 "
                         "digits)");

    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *stmt = a->insert_account;
    int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int(stmt, 2, role);
    if (rc == SQLITE_OK)
        rc = has_practice ? sqlite3_bind_text(stmt, 3, code, -1, SQLITE_STATIC)
                          : sqlite3_bind_null(stmt, 3);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 4, (int64_t)time(NULL));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt); /* autocommit: durable when it returns */
    int err = 0;
    if (rc == SQLITE_DONE) {
        if (id)
            *id = sqlite3_last_insert_rowid(a->db);
    } else if ((rc & 0xff) == SQLITE_CONSTRAINT) {
        err = cc_errorf(errbuf, errlen, CC_EEXISTS,
                        "account %s exists already (names are never reused, even after "
                        "disable)",
                        name);
    } else {
        err = db_failure(rc);
        cc_errorf(errbuf, errlen, err, "cannot add account %s: %s", name,
                  sqlite3_errmsg(a->db));
    }
    release(stmt);
    pthread_mutex_unlock(&a->lock);
    return err;
}

int cc_accounts_disable(cc_accounts *a, const char *name, char *errbuf, size_t errlen)
{
    struct cc_account_info info;
    if (!a || !valid_name(name))
        return cc_errorf(errbuf, errlen, CC_ENOTFOUND, "no such account");
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *stmt = a->disable;
    int rc = sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 2, (int64_t)time(NULL));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    int changed = rc == SQLITE_DONE && sqlite3_changes(a->db) == 1;
    int err = rc == SQLITE_DONE ? 0 : db_failure(rc);
    release(stmt);
    if (!err && !changed)
        err = find_locked(a, name, 0, &info); /* already disabled (0) or absent */
    if (err == CC_ENOTFOUND)
        cc_errorf(errbuf, errlen, err, "no account %s", name);
    else if (err)
        cc_errorf(errbuf, errlen, err, "cannot disable account %s: %s", name, cc_strerror(err));
    pthread_mutex_unlock(&a->lock);
    return err;
}

/* The stored hash of a secret: BLAKE2b-256(key = secret; tag || selector). */
static void secret_hash(const uint8_t secret[SECRET_BYTES], const uint8_t selector[SELECTOR_BYTES],
                        uint8_t out[SECRET_HASH_BYTES])
{
    crypto_generichash_state state;
    /* Cannot fail: the key and output lengths are within BLAKE2b's limits. */
    (void)crypto_generichash_init(&state, secret, SECRET_BYTES, SECRET_HASH_BYTES);
    (void)crypto_generichash_update(&state, (const unsigned char *)tag_token, sizeof tag_token);
    (void)crypto_generichash_update(&state, selector, SELECTOR_BYTES);
    (void)crypto_generichash_final(&state, out, SECRET_HASH_BYTES);
    sodium_memzero(&state, sizeof state);
}

/* Splits token text into selector and secret. Only the one canonical text
 * of each is accepted (the re-encoding must match), so a token has exactly
 * one spelling. Returns 1 if well formed, else 0. */
static int parse_token(const char *token, size_t len, uint8_t selector[SELECTOR_BYTES],
                       uint8_t secret[SECRET_BYTES])
{
    char again[SECRET_TEXT_LEN + 1];
    size_t n = 0;
    const char *end = NULL;
    int ok = 0;
    if (!token || len != CC_TOKEN_TEXT_LEN || memcmp(token, CC_TOKEN_PREFIX, PREFIX_LEN) != 0 ||
        token[SECRET_AT - 1] != '.')
        return 0;
    if (sodium_base642bin(selector, SELECTOR_BYTES, token + SELECTOR_AT, SELECTOR_TEXT_LEN, NULL,
                          &n, &end, BASE64_VARIANT) != 0 ||
        n != SELECTOR_BYTES || end != token + SELECTOR_AT + SELECTOR_TEXT_LEN)
        goto out;
    if (sodium_base642bin(secret, SECRET_BYTES, token + SECRET_AT, SECRET_TEXT_LEN, NULL, &n, &end,
                          BASE64_VARIANT) != 0 ||
        n != SECRET_BYTES || end != token + SECRET_AT + SECRET_TEXT_LEN)
        goto out;
    sodium_bin2base64(again, sizeof again, selector, SELECTOR_BYTES, BASE64_VARIANT);
    if (memcmp(again, token + SELECTOR_AT, SELECTOR_TEXT_LEN) != 0)
        goto out;
    sodium_bin2base64(again, sizeof again, secret, SECRET_BYTES, BASE64_VARIANT);
    if (memcmp(again, token + SECRET_AT, SECRET_TEXT_LEN) != 0)
        goto out;
    ok = 1;
out:
    sodium_memzero(again, sizeof again);
    if (!ok)
        sodium_memzero(secret, SECRET_BYTES);
    return ok;
}

int cc_accounts_token_issue(cc_accounts *a, const char *account_name, int64_t expires_unix,
                            char token[CC_TOKEN_TEXT_BYTES], int64_t *token_id, char *errbuf,
                            size_t errlen)
{
    uint8_t selector[SELECTOR_BYTES], secret[SECRET_BYTES], hash[SECRET_HASH_BYTES];
    struct cc_account_info info;
    int64_t now = (int64_t)time(NULL);
    int err = 0, rc = SQLITE_OK;

    if (token)
        memset(token, 0, CC_TOKEN_TEXT_BYTES);
    if (token_id)
        *token_id = 0;
    if (!a || !token)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "no accounts handle or token buffer");
    if (!valid_name(account_name))
        return cc_errorf(errbuf, errlen, CC_ENOTFOUND, "no such account");
    if (expires_unix <= now)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "a token's expiry must be in the future");

    pthread_mutex_lock(&a->lock);
    /* One write transaction: the account is still active when its token is
     * written (a concurrent disable comes wholly before or after). */
    if ((err = cc_db_begin(a->db)) != 0) {
        cc_errorf(errbuf, errlen, err, "cannot issue a token: %s", cc_strerror(err));
        goto out;
    }
    if ((err = find_locked(a, account_name, now, &info)) != 0) {
        if (err == CC_ENOTFOUND)
            cc_errorf(errbuf, errlen, err, "no account %s", account_name);
        else
            cc_errorf(errbuf, errlen, err, "cannot read account %s: %s", account_name,
                      cc_strerror(err));
        goto fail;
    }
    if (info.disabled_at) {
        err = cc_errorf(errbuf, errlen, CC_EINVAL, "account %s is disabled", account_name);
        goto fail;
    }
    /* A selector collision (96 random bits) is as good as impossible; the
     * UNIQUE constraint would catch it, and a fresh draw would do. */
    for (int attempt = 0; attempt < 3; attempt++) {
        sqlite3_stmt *stmt = a->insert_token;
        randombytes_buf(selector, sizeof selector);
        randombytes_buf(secret, sizeof secret);
        secret_hash(secret, selector, hash);
        rc = sqlite3_bind_int64(stmt, 1, info.id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(stmt, 2, selector, sizeof selector, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_blob(stmt, 3, hash, sizeof hash, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(stmt, 4, now);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(stmt, 5, expires_unix);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
        release(stmt);
        if ((rc & 0xff) != SQLITE_CONSTRAINT)
            break;
    }
    if (rc != SQLITE_DONE) {
        err = db_failure(rc);
        cc_errorf(errbuf, errlen, err, "cannot store the token: %s", sqlite3_errmsg(a->db));
        goto fail;
    }
    int64_t id = sqlite3_last_insert_rowid(a->db);
    if ((err = cc_db_commit(a->db)) != 0) {
        cc_errorf(errbuf, errlen, err, "cannot commit the token: %s", cc_strerror(err));
        goto fail;
    }
    /* Committed (durably): only now does the token exist to hand out. */
    memcpy(token, CC_TOKEN_PREFIX, PREFIX_LEN);
    sodium_bin2base64(token + SELECTOR_AT, SELECTOR_TEXT_LEN + 1, selector, sizeof selector,
                      BASE64_VARIANT);
    token[SECRET_AT - 1] = '.';
    sodium_bin2base64(token + SECRET_AT, SECRET_TEXT_LEN + 1, secret, sizeof secret,
                      BASE64_VARIANT);
    if (token_id)
        *token_id = id;
    goto out;
fail:
    cc_db_rollback(a->db);
out:
    pthread_mutex_unlock(&a->lock);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(hash, sizeof hash);
    return err;
}

int cc_accounts_token_revoke(cc_accounts *a, int64_t token_id, char *errbuf, size_t errlen)
{
    if (!a || token_id <= 0)
        return cc_errorf(errbuf, errlen, CC_ENOTFOUND, "no such token");
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *stmt = a->revoke;
    int rc = sqlite3_bind_int64(stmt, 1, token_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 2, (int64_t)time(NULL));
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    int changed = rc == SQLITE_DONE && sqlite3_changes(a->db) == 1;
    int err = rc == SQLITE_DONE ? 0 : db_failure(rc);
    release(stmt);
    if (!err && !changed) { /* revoked before (0), or no such token */
        stmt = a->token_exists;
        rc = sqlite3_bind_int64(stmt, 1, token_id);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(stmt);
        err = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? CC_ENOTFOUND : db_failure(rc);
        release(stmt);
    }
    if (err == CC_ENOTFOUND)
        cc_errorf(errbuf, errlen, err, "no token %lld", (long long)token_id);
    else if (err)
        cc_errorf(errbuf, errlen, err, "cannot revoke token %lld: %s", (long long)token_id,
                  cc_strerror(err));
    pthread_mutex_unlock(&a->lock);
    return err;
}

/* Records that token_id was used at now, if the last record is older than
 * the granularity. Best effort and never waits: with the busy timeout at 0
 * for this one statement, a database held by another writer makes it skip
 * (the next use will try again). Called with the lock held. */
static void touch_token(cc_accounts *a, int64_t token_id, int64_t last_used, int64_t now)
{
    if (last_used && now >= last_used && now - last_used < CC_TOKEN_LAST_USED_GRANULARITY_S)
        return;
    sqlite3_busy_timeout(a->db, 0);
    sqlite3_stmt *stmt = a->touch;
    if (sqlite3_bind_int64(stmt, 1, now) == SQLITE_OK &&
        sqlite3_bind_int64(stmt, 2, token_id) == SQLITE_OK)
        (void)sqlite3_step(stmt);
    release(stmt);
    sqlite3_busy_timeout(a->db, CC_DB_BUSY_TIMEOUT_MS);
}

int cc_accounts_authenticate(cc_accounts *a, const char *token, size_t len, int64_t now_unix,
                             struct cc_account *out, const char **why)
{
    static const uint8_t unknown_selector_hash[SECRET_HASH_BYTES]; /* matches no real hash */
    uint8_t selector[SELECTOR_BYTES], secret[SECRET_BYTES], hash[SECRET_HASH_BYTES];
    uint8_t stored[SECRET_HASH_BYTES];
    const char *reason = NULL;
    int err = CC_EAUTH;

    if (out)
        memset(out, 0, sizeof *out);
    if (!a || !out) {
        if (why)
            *why = "no accounts handle";
        return CC_EINVAL;
    }
    if (!parse_token(token, len, selector, secret)) {
        if (why)
            *why = "malformed token";
        return CC_EAUTH;
    }

    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *stmt = a->authenticate;
    int rc = sqlite3_bind_blob(stmt, 1, selector, sizeof selector, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(stmt);
    int found = rc == SQLITE_ROW;
    if (found && (sqlite3_column_type(stmt, 1) != SQLITE_BLOB ||
                  sqlite3_column_bytes(stmt, 1) != SECRET_HASH_BYTES))
        found = 0; /* the CHECK constraint makes this impossible */
    memcpy(stored, found ? sqlite3_column_blob(stmt, 1) : unknown_selector_hash, sizeof stored);
    /* The same work whether or not the selector was found. */
    secret_hash(secret, selector, hash);
    int secret_matches = sodium_memcmp(hash, stored, sizeof hash) == 0 && found;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        err = db_failure(rc);
        reason = "database error";
    } else if (!found) {
        reason = "unknown token";
    } else if (!secret_matches) {
        reason = "wrong secret";
    } else if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
        reason = "revoked token";
    } else if (now_unix >= sqlite3_column_int64(stmt, 2)) {
        reason = "expired token";
    } else if (sqlite3_column_type(stmt, 9) != SQLITE_NULL) {
        reason = "disabled account";
    } else {
        out->token_id = sqlite3_column_int64(stmt, 0);
        out->token_expires = sqlite3_column_int64(stmt, 2);
        out->id = sqlite3_column_int64(stmt, 5);
        copy_text(out->name, sizeof out->name, sqlite3_column_text(stmt, 6));
        out->role = sqlite3_column_int(stmt, 7);
        copy_text(out->practice, sizeof out->practice, sqlite3_column_text(stmt, 8));
        int64_t last_used = sqlite3_column_int64(stmt, 4);
        release(stmt);
        stmt = NULL;
        touch_token(a, out->token_id, last_used, now_unix);
        err = 0;
        reason = NULL;
    }
    if (stmt)
        release(stmt);
    pthread_mutex_unlock(&a->lock);
    if (err)
        memset(out, 0, sizeof *out);
    if (why)
        *why = reason;
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(hash, sizeof hash);
    sodium_memzero(stored, sizeof stored);
    return err;
}

/* Appends each row of stmt (ACCOUNT_COLUMNS) to a growing array. */
int cc_accounts_list(cc_accounts *a, int64_t now_unix, struct cc_account_info **accounts,
                     size_t *n, char *errbuf, size_t errlen)
{
    struct cc_account_info *list = NULL;
    size_t count = 0, capacity = 0;
    int rc, err = 0;
    *accounts = NULL;
    *n = 0;
    if (!a)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "no accounts handle");
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *stmt = a->list_accounts;
    rc = sqlite3_bind_int64(stmt, 2, now_unix);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (count == capacity) {
            size_t grown = capacity ? 2 * capacity : 16;
            struct cc_account_info *bigger = realloc(list, grown * sizeof *list);
            if (!bigger) {
                err = CC_ENOMEM;
                break;
            }
            list = bigger;
            capacity = grown;
        }
        read_account_row(stmt, &list[count++]);
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = db_failure(rc);
    release(stmt);
    pthread_mutex_unlock(&a->lock);
    if (err) {
        free(list);
        return cc_errorf(errbuf, errlen, err, "cannot list the accounts: %s", cc_strerror(err));
    }
    *accounts = list;
    *n = count;
    return 0;
}

int cc_accounts_find(cc_accounts *a, const char *name, int64_t now_unix,
                     struct cc_account_info *info, char *errbuf, size_t errlen)
{
    memset(info, 0, sizeof *info);
    if (!a || !valid_name(name))
        return cc_errorf(errbuf, errlen, CC_ENOTFOUND, "no such account");
    pthread_mutex_lock(&a->lock);
    int err = find_locked(a, name, now_unix, info);
    pthread_mutex_unlock(&a->lock);
    if (err == CC_ENOTFOUND)
        return cc_errorf(errbuf, errlen, err, "no account %s", name);
    if (err)
        return cc_errorf(errbuf, errlen, err, "cannot read account %s: %s", name,
                         cc_strerror(err));
    return 0;
}

int cc_accounts_token_list(cc_accounts *a, const char *account_name,
                           struct cc_token_info **tokens, size_t *n, char *errbuf,
                           size_t errlen)
{
    struct cc_token_info *list = NULL;
    struct cc_account_info info;
    size_t count = 0, capacity = 0;
    int rc = SQLITE_OK, err = 0;
    *tokens = NULL;
    *n = 0;
    if (!a)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "no accounts handle");
    if (account_name && !valid_name(account_name))
        return cc_errorf(errbuf, errlen, CC_ENOTFOUND, "no such account");
    pthread_mutex_lock(&a->lock);
    /* One read transaction: the account check and the list see one state. */
    rc = sqlite3_exec(a->db, "BEGIN DEFERRED", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = db_failure(rc);
        goto out;
    }
    if (account_name && (err = find_locked(a, account_name, 0, &info)) != 0)
        goto out;
    sqlite3_stmt *stmt = a->list_tokens;
    rc = account_name ? sqlite3_bind_text(stmt, 1, account_name, -1, SQLITE_STATIC)
                      : sqlite3_bind_null(stmt, 1);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (count == capacity) {
            size_t grown = capacity ? 2 * capacity : 16;
            struct cc_token_info *bigger = realloc(list, grown * sizeof *list);
            if (!bigger) {
                err = CC_ENOMEM;
                break;
            }
            list = bigger;
            capacity = grown;
        }
        struct cc_token_info *t = &list[count++];
        memset(t, 0, sizeof *t);
        t->id = sqlite3_column_int64(stmt, 0);
        t->account_id = sqlite3_column_int64(stmt, 1);
        copy_text(t->account, sizeof t->account, sqlite3_column_text(stmt, 2));
        t->created_at = sqlite3_column_int64(stmt, 3);
        t->expires_at = sqlite3_column_int64(stmt, 4);
        t->revoked_at = sqlite3_column_int64(stmt, 5);
        t->last_used_at = sqlite3_column_int64(stmt, 6);
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = db_failure(rc);
    release(stmt);
out:
    cc_db_rollback(a->db); /* ends the read transaction */
    pthread_mutex_unlock(&a->lock);
    if (err) {
        free(list);
        if (err == CC_ENOTFOUND)
            return cc_errorf(errbuf, errlen, err, "no account %s", account_name);
        return cc_errorf(errbuf, errlen, err, "cannot list the tokens: %s", cc_strerror(err));
    }
    *tokens = list;
    *n = count;
    return 0;
}

int cc_token_file_read(const char *path, char token[CC_TOKEN_TEXT_BYTES], char *errbuf,
                       size_t errlen)
{
    char buf[CC_TOKEN_TEXT_LEN + 3]; /* the token, "\r\n", and one byte to notice more */
    uint8_t selector[SELECTOR_BYTES], secret[SECRET_BYTES];
    size_t filled = 0;
    int err = 0;
    memset(token, 0, CC_TOKEN_TEXT_BYTES);
    if (sodium_init() < 0)
        return cc_errorf(errbuf, errlen, CC_ECRYPTO, "cannot initialise libsodium");
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        err = cc_error_from_errno(errno);
        return cc_errorf(errbuf, errlen, err, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = cc_errorf(errbuf, errlen, CC_EIO, "%s: not a regular file", path);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        err = cc_errorf(errbuf, errlen, CC_EPERM,
                        "%s: a token file must be readable by its owner only (chmod 600)",
                        path);
        goto out;
    }
    while (filled < sizeof buf) {
        ssize_t got = read(fd, buf + filled, sizeof buf - filled);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err = cc_errorf(errbuf, errlen, CC_EIO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (got == 0)
            break;
        filled += (size_t)got;
    }
    size_t len = filled;
    if (len && buf[len - 1] == '\n')
        len--;
    if (len && buf[len - 1] == '\r')
        len--;
    if (!parse_token(buf, len, selector, secret)) {
        err = cc_errorf(errbuf, errlen, CC_EPARSE, "%s: does not hold a carecount token", path);
        goto out;
    }
    memcpy(token, buf, CC_TOKEN_TEXT_LEN);
    token[CC_TOKEN_TEXT_LEN] = '\0';
out:
    close(fd);
    sodium_memzero(buf, sizeof buf);
    sodium_memzero(secret, sizeof secret);
    return err;
}
