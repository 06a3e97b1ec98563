/*
 * cc_audit.c: the hash-chained audit log in state.db (cc_audit.h).
 *
 * Table (schema module "audit"): audit_log(seq INTEGER PRIMARY KEY, the
 * record's fields, hash BLOB). The hash of record n is BLAKE2b-256, keyed
 * with the chain key, of: "carecount-audit-v1", the hash of record n-1 (32
 * zero bytes for record 1), then every field in a fixed order, each
 * integer as 8 bytes little-endian and each string as a 4-byte length and
 * its bytes (the length 0xFFFFFFFF for NULL), so no two different records
 * serialise alike.
 *
 * Must never: log a field of a record; take the chain key from anywhere but
 * the data directory's key.
 */
#include "cc_audit.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cc_db.h"
#include "cc_error.h"

#define AUDIT_SCHEMA_VERSION 1

static const char *const audit_schema_sql[] = {
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " seq INTEGER PRIMARY KEY CHECK (seq >= 1),"
    " time_ms INTEGER NOT NULL,"
    " account_id INTEGER NOT NULL,"
    " account TEXT,"
    " op TEXT NOT NULL,"
    " peer TEXT,"
    " request TEXT,"
    " cells_released INTEGER NOT NULL,"
    " cells_suppressed INTEGER NOT NULL,"
    " outcome TEXT NOT NULL,"
    " reason TEXT,"
    " hash BLOB NOT NULL CHECK (length(hash) = 32)"
    ")",
    "CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log(time_ms)",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
};

#define COLUMNS                                                                                    \
    "seq, time_ms, account_id, account, op, peer, request, cells_released, cells_suppressed,"      \
    " outcome, reason, hash"

/* A record waiting to be committed (group commit, cc_audit_append). */
struct waiter {
    const struct cc_audit_record *record;
    struct waiter *next;
    int rc;
    bool done;
};

struct cc_audit {
    pthread_mutex_t lock; /* the connection */
    /* group commit: appenders queue here; one of them (the leader) writes
     * everything queued in one transaction while the others wait */
    pthread_mutex_t queue_lock;
    pthread_cond_t committed;
    struct waiter *queue_head, *queue_tail;
    bool leading;
    uint64_t n_commits, n_records; /* for tests and benchmarks */
    sqlite3 *db;
    bool has_key;
    uint8_t key[crypto_generichash_KEYBYTES];
    sqlite3_stmt *last, *insert;
};

/* ---- the chain ---- */

static void hash_u64(crypto_generichash_state *h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    crypto_generichash_update(h, b, sizeof b);
}

static void hash_text(crypto_generichash_state *h, const char *s)
{
    if (!s) {
        hash_u64(h, 0xFFFFFFFFu); /* low 4 bytes: the NULL marker */
        return;
    }
    size_t len = strlen(s);
    uint8_t b[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    crypto_generichash_update(h, b, sizeof b);
    crypto_generichash_update(h, (const uint8_t *)s, len);
}

static void chain_hash(const uint8_t key[crypto_generichash_KEYBYTES],
                       const uint8_t prev[CC_AUDIT_HASH_BYTES], uint64_t seq,
                       const struct cc_audit_record *r, uint8_t out[CC_AUDIT_HASH_BYTES])
{
    static const char tag[] = "carecount-audit-v1";
    crypto_generichash_state h;
    crypto_generichash_init(&h, key, crypto_generichash_KEYBYTES, CC_AUDIT_HASH_BYTES);
    crypto_generichash_update(&h, (const uint8_t *)tag, sizeof tag);
    crypto_generichash_update(&h, prev, CC_AUDIT_HASH_BYTES);
    hash_u64(&h, seq);
    hash_u64(&h, (uint64_t)r->time_ms);
    hash_u64(&h, (uint64_t)r->account_id);
    hash_text(&h, r->account);
    hash_text(&h, r->op);
    hash_text(&h, r->peer);
    hash_text(&h, r->request);
    hash_u64(&h, r->cells_released);
    hash_u64(&h, r->cells_suppressed);
    hash_text(&h, r->outcome);
    hash_text(&h, r->reason);
    crypto_generichash_final(&h, out, CC_AUDIT_HASH_BYTES);
}

/* ---- open and close ---- */

int cc_audit_open(const char *dir, const cc_pseudo_key *key, cc_audit **out, char *errbuf,
                  size_t errlen)
{
    *out = NULL;
    cc_audit *a = calloc(1, sizeof *a);
    if (!a)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    if (pthread_mutex_init(&a->lock, NULL) != 0) {
        free(a);
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "cannot make a mutex");
    }
    if (pthread_mutex_init(&a->queue_lock, NULL) != 0) {
        pthread_mutex_destroy(&a->lock);
        free(a);
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "cannot make a mutex");
    }
    if (pthread_cond_init(&a->committed, NULL) != 0) {
        pthread_mutex_destroy(&a->queue_lock);
        pthread_mutex_destroy(&a->lock);
        free(a);
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "cannot make a condition variable");
    }
    if (key) {
        _Static_assert(CC_AUDIT_CHAIN_KEY_BYTES == crypto_generichash_KEYBYTES, "key size");
        memcpy(a->key, cc_pseudo_audit_chain_key(key), sizeof a->key);
        a->has_key = true;
    }
    int rc = cc_db_open(dir, 0, &a->db, errbuf, errlen);
    /* An append-only log reads back only its last record: a small page
     * cache (2 MiB, not cc_db's 32 MiB), which a server appending a record
     * per request would otherwise fill with pages it never reads again (the
     * soak test saw it as memory rising with every request). */
    if (rc == 0 && sqlite3_exec(a->db, "PRAGMA cache_size=-2048", NULL, NULL, NULL) != SQLITE_OK)
        rc = cc_errorf(errbuf, errlen, CC_EDB, "%s: cannot set the audit log's cache", dir);
    if (rc == 0)
        rc = cc_db_schema_ensure(a->db, "audit", AUDIT_SCHEMA_VERSION, audit_schema_sql,
                                 sizeof audit_schema_sql / sizeof *audit_schema_sql);
    if (rc == 0) {
        int s = sqlite3_prepare_v2(a->db, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                                   -1, &a->last, NULL);
        if (s == SQLITE_OK)
            s = sqlite3_prepare_v2(a->db,
                                   "INSERT INTO audit_log (" COLUMNS
                                   ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                                   -1, &a->insert, NULL);
        if (s != SQLITE_OK)
            rc = cc_errorf(errbuf, errlen, cc_db_error(s), "%s/%s: cannot prepare the audit log",
                           dir, CC_DB_FILE_NAME);
    } else if (errbuf && errlen && !errbuf[0]) {
        cc_errorf(errbuf, errlen, rc, "%s: cannot open the audit log", dir);
    }
    if (rc) {
        cc_audit_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void cc_audit_close(cc_audit *a)
{
    if (!a)
        return;
    sqlite3_finalize(a->last);
    sqlite3_finalize(a->insert);
    cc_db_close(a->db);
    sodium_memzero(a->key, sizeof a->key);
    pthread_cond_destroy(&a->committed);
    pthread_mutex_destroy(&a->queue_lock);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

/* ---- append ---- */

static int bind_text(sqlite3_stmt *s, int i, const char *text)
{
    return text ? sqlite3_bind_text(s, i, text, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

/* The last record's seq and hash (0 and zeros when empty). */
static int read_last(cc_audit *a, uint64_t *seq, uint8_t hash[CC_AUDIT_HASH_BYTES])
{
    *seq = 0;
    memset(hash, 0, CC_AUDIT_HASH_BYTES);
    int s = sqlite3_step(a->last);
    int rc = 0;
    if (s == SQLITE_ROW) {
        *seq = (uint64_t)sqlite3_column_int64(a->last, 0);
        if (sqlite3_column_bytes(a->last, 1) == CC_AUDIT_HASH_BYTES)
            memcpy(hash, sqlite3_column_blob(a->last, 1), CC_AUDIT_HASH_BYTES);
        else
            rc = CC_ECORRUPT;
    } else if (s != SQLITE_DONE) {
        rc = cc_db_error(s);
    }
    sqlite3_reset(a->last);
    return rc;
}

/* Writes every record of batch, in order, in one transaction: each gets
 * the next sequence number and its chain hash. 0, or the error that rolled
 * all of them back. */
static int write_batch(cc_audit *a, struct waiter *batch)
{
    pthread_mutex_lock(&a->lock);
    uint64_t seq;
    uint8_t prev[CC_AUDIT_HASH_BYTES], hash[CC_AUDIT_HASH_BYTES];
    int rc = cc_db_begin(a->db);
    if (rc == 0)
        rc = read_last(a, &seq, prev);
    for (struct waiter *w = batch; rc == 0 && w; w = w->next) {
        const struct cc_audit_record *r = w->record;
        seq++;
        chain_hash(a->key, prev, seq, r, hash);
        sqlite3_stmt *s = a->insert;
        sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
        sqlite3_bind_int64(s, 2, r->time_ms);
        sqlite3_bind_int64(s, 3, r->account_id);
        bind_text(s, 4, r->account);
        bind_text(s, 5, r->op);
        bind_text(s, 6, r->peer);
        bind_text(s, 7, r->request);
        sqlite3_bind_int64(s, 8, (sqlite3_int64)r->cells_released);
        sqlite3_bind_int64(s, 9, (sqlite3_int64)r->cells_suppressed);
        bind_text(s, 10, r->outcome);
        bind_text(s, 11, r->reason);
        sqlite3_bind_blob(s, 12, hash, sizeof hash, SQLITE_STATIC);
        int st = sqlite3_step(s);
        rc = st == SQLITE_DONE ? 0 : cc_db_error(st);
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        memcpy(prev, hash, sizeof prev);
    }
    if (rc == 0)
        rc = cc_db_commit(a->db);
    if (rc)
        cc_db_rollback(a->db);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/*
 * Group commit. The record is queued; if no append is being written, this
 * thread becomes the leader: it takes everything queued (its own record
 * and whatever came in while the previous batch was written, in order),
 * writes it in one transaction and one fsync, and wakes the others. A
 * caller returns only once its own record is committed (or its batch
 * failed, in which case none of the batch is), so "committed before the
 * reply" holds for each request, and the fsync is shared by the requests
 * that arrived while the previous one ran.
 */
int cc_audit_append(cc_audit *a, const struct cc_audit_record *r, char *errbuf, size_t errlen)
{
    if (!a->has_key || !r->op || !r->outcome)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "an audit record needs the key, an op and an "
                                                    "outcome");
    struct waiter me = {r, NULL, 0, false};
    pthread_mutex_lock(&a->queue_lock);
    if (a->queue_tail)
        a->queue_tail->next = &me;
    else
        a->queue_head = &me;
    a->queue_tail = &me;
    while (!me.done) {
        if (a->leading) {
            pthread_cond_wait(&a->committed, &a->queue_lock);
            continue;
        }
        a->leading = true;
        struct waiter *batch = a->queue_head;
        a->queue_head = a->queue_tail = NULL;
        pthread_mutex_unlock(&a->queue_lock);
        int rc = write_batch(a, batch);
        pthread_mutex_lock(&a->queue_lock);
        a->n_commits++;
        for (struct waiter *w = batch, *next; w; w = next) {
            next = w->next; /* w's owner may return once done is set and we unlock */
            w->rc = rc;
            w->done = true;
            a->n_records += rc == 0;
        }
        a->leading = false;
        pthread_cond_broadcast(&a->committed);
    }
    int rc = me.rc;
    pthread_mutex_unlock(&a->queue_lock);
    if (rc)
        cc_errorf(errbuf, errlen, rc, "the audit record could not be committed (%s)",
                  cc_strerror(rc));
    return rc;
}

void cc_audit_commit_stats(cc_audit *a, uint64_t *commits, uint64_t *records)
{
    pthread_mutex_lock(&a->queue_lock);
    *commits = a->n_commits;
    *records = a->n_records;
    pthread_mutex_unlock(&a->queue_lock);
}

/* ---- reading ---- */

static const char *column_text(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? NULL : (const char *)sqlite3_column_text(s, i);
}

/* Fills an entry from a row of COLUMNS; false if the hash is malformed. */
static bool read_entry(sqlite3_stmt *s, struct cc_audit_entry *e)
{
    e->seq = (uint64_t)sqlite3_column_int64(s, 0);
    e->record.time_ms = sqlite3_column_int64(s, 1);
    e->record.account_id = sqlite3_column_int64(s, 2);
    e->record.account = column_text(s, 3);
    e->record.op = column_text(s, 4);
    e->record.peer = column_text(s, 5);
    e->record.request = column_text(s, 6);
    e->record.cells_released = (uint64_t)sqlite3_column_int64(s, 7);
    e->record.cells_suppressed = (uint64_t)sqlite3_column_int64(s, 8);
    e->record.outcome = column_text(s, 9);
    e->record.reason = column_text(s, 10);
    if (sqlite3_column_bytes(s, 11) != CC_AUDIT_HASH_BYTES)
        return false;
    memcpy(e->hash, sqlite3_column_blob(s, 11), CC_AUDIT_HASH_BYTES);
    return true;
}

int cc_audit_verify(cc_audit *a, struct cc_audit_verify_result *result, char *errbuf,
                    size_t errlen)
{
    memset(result, 0, sizeof *result);
    if (!a->has_key)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "verifying the audit log needs the key");
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *s = NULL;
    int st = sqlite3_prepare_v2(a->db, "SELECT " COLUMNS " FROM audit_log ORDER BY seq", -1, &s,
                                NULL);
    int rc = st == SQLITE_OK ? 0 : cc_db_error(st);
    uint8_t prev[CC_AUDIT_HASH_BYTES] = {0}, expect[CC_AUDIT_HASH_BYTES];
    uint64_t next = 1;
    while (rc == 0 && (st = sqlite3_step(s)) == SQLITE_ROW) {
        struct cc_audit_entry e;
        bool well_formed = read_entry(s, &e);
        if (e.seq != next) {
            result->first_bad_seq = next;
            snprintf(result->what, sizeof result->what,
                     e.seq > next ? "record %llu is missing (deleted?)"
                                  : "record %llu appears twice",
                     (unsigned long long)next);
            rc = CC_ECORRUPT;
            break;
        }
        if (well_formed)
            chain_hash(a->key, prev, e.seq, &e.record, expect);
        if (!well_formed || sodium_memcmp(expect, e.hash, sizeof expect) != 0) {
            result->first_bad_seq = e.seq;
            snprintf(result->what, sizeof result->what,
                     "record %llu does not match its hash: edited, reordered or inserted",
                     (unsigned long long)e.seq);
            rc = CC_ECORRUPT;
            break;
        }
        memcpy(prev, e.hash, sizeof prev);
        result->entries++;
        next++;
    }
    if (rc == 0 && st != SQLITE_DONE)
        rc = cc_db_error(st);
    sqlite3_finalize(s);
    pthread_mutex_unlock(&a->lock);
    if (rc && rc != CC_ECORRUPT)
        cc_errorf(errbuf, errlen, rc, "the audit log could not be read (%s)", cc_strerror(rc));
    else if (rc)
        cc_errorf(errbuf, errlen, rc, "%s", result->what);
    return rc;
}

int cc_audit_head(cc_audit *a, uint64_t *seq, uint8_t hash[CC_AUDIT_HASH_BYTES])
{
    pthread_mutex_lock(&a->lock);
    int rc = read_last(a, seq, hash);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int cc_audit_verify_head(cc_audit *a, uint64_t seq, const uint8_t hash[CC_AUDIT_HASH_BYTES],
                         char *errbuf, size_t errlen)
{
    if (seq == 0) {
        /* The head of an empty log: nothing was recorded, so nothing can
         * have been cut; its hash is the chain's all-zero start. */
        static const uint8_t start[CC_AUDIT_HASH_BYTES];
        if (sodium_memcmp(hash, start, CC_AUDIT_HASH_BYTES) != 0)
            return cc_errorf(errbuf, errlen, CC_ECORRUPT,
                             "record 0 is the empty log's head, whose hash is all zeros");
        return 0;
    }
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *s = NULL;
    int st = sqlite3_prepare_v2(a->db, "SELECT hash FROM audit_log WHERE seq = ?1", -1, &s, NULL);
    int rc = st == SQLITE_OK ? 0 : cc_db_error(st);
    if (rc == 0) {
        sqlite3_bind_int64(s, 1, (sqlite3_int64)seq);
        st = sqlite3_step(s);
        if (st == SQLITE_ROW) {
            if (sqlite3_column_bytes(s, 0) != CC_AUDIT_HASH_BYTES ||
                sodium_memcmp(sqlite3_column_blob(s, 0), hash, CC_AUDIT_HASH_BYTES) != 0)
                rc = cc_errorf(errbuf, errlen, CC_ECORRUPT, "record %llu has another hash",
                               (unsigned long long)seq);
        } else if (st == SQLITE_DONE) {
            rc = cc_errorf(errbuf, errlen, CC_ECORRUPT,
                           "record %llu is missing: the log was cut after it was recorded",
                           (unsigned long long)seq);
        } else {
            rc = cc_db_error(st);
        }
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

int cc_audit_list(cc_audit *a, const struct cc_audit_filter *f,
                  int (*each)(const struct cc_audit_entry *entry, void *arg), void *arg)
{
    /* the last `limit` matches: select them newest first, then walk back */
    static const char sql[] =
        "SELECT * FROM (SELECT " COLUMNS " FROM audit_log WHERE time_ms >= ?1"
        " AND (?2 IS NULL OR account = ?2) AND (?3 IS NULL OR op = ?3)"
        " ORDER BY seq DESC LIMIT ?4) ORDER BY seq";
    pthread_mutex_lock(&a->lock);
    sqlite3_stmt *s = NULL;
    int st = sqlite3_prepare_v2(a->db, sql, -1, &s, NULL);
    int rc = st == SQLITE_OK ? 0 : cc_db_error(st);
    if (rc == 0) {
        sqlite3_bind_int64(s, 1, f ? f->since_ms : 0);
        bind_text(s, 2, f ? f->account : NULL);
        bind_text(s, 3, f ? f->op : NULL);
        sqlite3_bind_int64(s, 4, f && f->limit ? (sqlite3_int64)f->limit : -1);
        while ((st = sqlite3_step(s)) == SQLITE_ROW) {
            struct cc_audit_entry e;
            if (!read_entry(s, &e)) {
                rc = CC_ECORRUPT;
                break;
            }
            if ((rc = each(&e, arg)) != 0)
                break;
        }
        if (rc == 0 && st != SQLITE_DONE)
            rc = cc_db_error(st);
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&a->lock);
    return rc;
}
