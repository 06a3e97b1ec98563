/*
 * cc_optout.c: the opt-out register in state.db (see cc_optout.h for the rules:
 * status, idempotence, withdrawals, durability).
 *
 * Table optout_event is append-only: triggers refuse UPDATE and DELETE, so
 * the history a practice confirms is the history that decided every data
 * version. The sequence column is an AUTOINCREMENT rowid, so it increases
 * with every event and is never reused, which is what lets a publisher
 * compare cc_optout_last_sequence() with the sequence its last data version
 * was built at.
 *
 * One index, the UNIQUE constraint's (pseudonym, type, effective_day,
 * action), which also holds the rowid (sequence), serves every read: the
 * idempotence check (an exact seek), the status of one person (a seek, at
 * most two rows per day to order), and the in-force set (one pass over the
 * whole index in key order, no sort and no table lookups, because the index
 * covers every column the pass reads). A second index ordered by sequence
 * would make each insert a third B-tree write for no read that needs it.
 *
 * Must never: accept or store an NHS number, or print or log a pseudonym.
 */
#include "cc_optout.h"
#include "cc_array.h"
#include "cc_db.h"
#include "cc_error.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#define OPTOUT_SCHEMA_VERSION 1

static const char *const optout_schema_sql[] = {
    "CREATE TABLE IF NOT EXISTS optout_event ("
    " sequence INTEGER PRIMARY KEY AUTOINCREMENT,"
    " pseudonym BLOB NOT NULL CHECK (length(pseudonym) = 16),"
    " type INTEGER NOT NULL CHECK (type IN (1, 2)),"
    " action INTEGER NOT NULL CHECK (action IN (1, 2)),"
    " effective_day INTEGER NOT NULL CHECK (effective_day BETWEEN 0 AND 65535),"
    " practice_code TEXT,"
    " source INTEGER NOT NULL CHECK (source IN (1, 2, 3)),"
    " recorded_at INTEGER NOT NULL,"
    " UNIQUE (pseudonym, type, effective_day, action)"
    ")",
    "CREATE TRIGGER IF NOT EXISTS optout_event_append_only_update"
    " BEFORE UPDATE ON optout_event"
    " BEGIN SELECT RAISE(ABORT, 'the opt-out history is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS optout_event_append_only_delete"
    " BEFORE DELETE ON optout_event"
    " BEGIN SELECT RAISE(ABORT, 'the opt-out history is append-only'); END",
};

struct cc_optout {
    sqlite3 *db; /* not owned */
    sqlite3_stmt *find_event;
    sqlite3_stmt *latest_action;
    sqlite3_stmt *insert_event;
    sqlite3_stmt *history;
    sqlite3_stmt *scan_in_force;
    sqlite3_stmt *last_sequence;
};

static const struct {
    size_t offset;
    const char *sql;
} statement_table[] = {
    {offsetof(struct cc_optout, find_event),
     "SELECT 1 FROM optout_event"
     " WHERE pseudonym = ?1 AND type = ?2 AND effective_day = ?4 AND action = ?3"},
    {offsetof(struct cc_optout, latest_action),
     "SELECT action FROM optout_event"
     " WHERE pseudonym = ?1 AND type = ?2 AND effective_day <= ?3"
     " ORDER BY effective_day DESC, sequence DESC LIMIT 1"},
    {offsetof(struct cc_optout, insert_event),
     "INSERT INTO optout_event"
     " (pseudonym, type, action, effective_day, practice_code, source, recorded_at)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING"},
    {offsetof(struct cc_optout, history),
     "SELECT sequence, type, action, effective_day, practice_code, source, recorded_at"
     " FROM optout_event WHERE pseudonym = ?1 ORDER BY effective_day, sequence"},
    {offsetof(struct cc_optout, scan_in_force),
     "SELECT pseudonym, type, effective_day, sequence, action FROM optout_event"
     " WHERE effective_day <= ?1 ORDER BY pseudonym, type"},
    {offsetof(struct cc_optout, last_sequence), "SELECT max(sequence) FROM optout_event"},
};

#define N_STATEMENTS (sizeof statement_table / sizeof statement_table[0])

static sqlite3_stmt **statement_slot(cc_optout *r, size_t i)
{
    return (sqlite3_stmt **)((char *)r + statement_table[i].offset);
}

void cc_optout_detach(cc_optout *register_)
{
    if (!register_)
        return;
    for (size_t i = 0; i < N_STATEMENTS; i++)
        sqlite3_finalize(*statement_slot(register_, i));
    free(register_);
}

int cc_optout_attach(sqlite3 *db, cc_optout **out)
{
    cc_optout *r = NULL;
    int err;
    *out = NULL;
    if (!db)
        return CC_EINVAL;
    err = cc_db_schema_ensure(db, "optout", OPTOUT_SCHEMA_VERSION, optout_schema_sql,
                              sizeof optout_schema_sql / sizeof optout_schema_sql[0]);
    if (err)
        return err;
    r = calloc(1, sizeof *r);
    if (!r)
        return CC_ENOMEM;
    r->db = db;
    for (size_t i = 0; i < N_STATEMENTS; i++) {
        int rc = sqlite3_prepare_v3(db, statement_table[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    statement_slot(r, i), NULL);
        if (rc != SQLITE_OK) {
            err = cc_db_error(rc);
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    cc_optout_detach(r);
    return err;
}

/* Ends a statement's use: resets it (closing its read of the database) and
 * drops its bindings, so no pseudonym lingers in a prepared statement. */
static void release(sqlite3_stmt *stmt)
{
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
}

static int bind_person(sqlite3_stmt *stmt, int index, const cc_pseudonym *person)
{
    return sqlite3_bind_blob(stmt, index, person->bytes, CC_PSEUDONYM_BYTES, SQLITE_STATIC);
}

static int valid_type(unsigned type)
{
    return type == CC_OPTOUT_TYPE1 || type == CC_OPTOUT_NDOP;
}

static int valid_practice_code(const char code[CC_OPTOUT_PRACTICE_BYTES])
{
    const char *end = memchr(code, '\0', CC_OPTOUT_PRACTICE_BYTES);
    if (!end)
        return 0;
    for (const char *c = code; c < end; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return 0;
    return 1;
}

/* The action of the event that decides (person, type) on day `on`, or 0 if
 * there is none. */
static int latest_action(cc_optout *r, const cc_pseudonym *person, unsigned type, cc_day on,
                         int *action)
{
    sqlite3_stmt *stmt = r->latest_action;
    int rc;
    *action = 0;
    if ((rc = bind_person(stmt, 1, person)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 2, (int)type)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 3, on)) != SQLITE_OK)
        goto out;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *action = sqlite3_column_int(stmt, 0);
        rc = SQLITE_DONE;
    }
out:
    release(stmt);
    return cc_db_error(rc);
}

static int event_exists(cc_optout *r, const struct cc_optout_event *e, int *exists)
{
    sqlite3_stmt *stmt = r->find_event;
    int rc;
    *exists = 0;
    if ((rc = bind_person(stmt, 1, &e->person)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 2, e->type)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 3, e->action)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 4, e->effective_day)) != SQLITE_OK)
        goto out;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *exists = 1;
        rc = SQLITE_DONE;
    }
out:
    release(stmt);
    return cc_db_error(rc);
}

/* Inserts the event unless the same (person, type, effective_day, action)
 * is already there; *added says which. */
static int insert_event(cc_optout *r, const struct cc_optout_event *e, int *added)
{
    sqlite3_stmt *stmt = r->insert_event;
    int64_t recorded_at = e->recorded_at ? e->recorded_at : (int64_t)time(NULL);
    int rc;
    if ((rc = bind_person(stmt, 1, &e->person)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 2, e->type)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 3, e->action)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 4, e->effective_day)) != SQLITE_OK)
        goto out;
    if (e->practice_code[0])
        rc = sqlite3_bind_text(stmt, 5, e->practice_code, -1, SQLITE_STATIC);
    else
        rc = sqlite3_bind_null(stmt, 5);
    if (rc != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int(stmt, 6, e->source)) != SQLITE_OK)
        goto out;
    if ((rc = sqlite3_bind_int64(stmt, 7, recorded_at)) != SQLITE_OK)
        goto out;
    rc = sqlite3_step(stmt);
    *added = rc == SQLITE_DONE && sqlite3_changes(r->db) == 1;
out:
    release(stmt);
    return cc_db_error(rc);
}

/*
 * Durability: outside a caller's transaction, the check and the insert run in
 * one BEGIN IMMEDIATE transaction (the write lock is taken before the
 * check, so no other process can slip an event in between the check and the
 * insert), and the COMMIT returns only after SQLite has fsync'ed the WAL
 * (synchronous=FULL, set and verified by cc_db_open). So when this function
 * returns CC_OPTOUT_ADDED the event survives SIGKILL or power loss; if it
 * returns an error, nothing was written.
 */
int cc_optout_record(cc_optout *register_, const struct cc_optout_event *event)
{
    cc_optout *r = register_;
    const struct cc_optout_event *e = event;
    int own, err, exists = 0, added = 0, action = 0, result = CC_OPTOUT_ADDED;

    if (!r || !e || !valid_type(e->type) ||
        (e->action != CC_OPTOUT_REGISTER && e->action != CC_OPTOUT_WITHDRAW) ||
        (e->source != CC_OPTOUT_SOURCE_FEED && e->source != CC_OPTOUT_SOURCE_OPERATOR &&
         e->source != CC_OPTOUT_SOURCE_GP_REGISTRATION) ||
        e->effective_day < CC_DAY_MIN || e->effective_day > CC_DAY_MAX ||
        !valid_practice_code(e->practice_code) || e->recorded_at < 0)
        return CC_EINVAL;

    own = sqlite3_get_autocommit(r->db);
    if (own && (err = cc_db_begin(r->db)) != 0)
        return err;
    if (e->action == CC_OPTOUT_WITHDRAW) {
        /* a replayed withdrawal is "already recorded", not refused because
         * it has itself ended the registration */
        if ((err = event_exists(r, e, &exists)) != 0)
            goto fail;
        if (exists) {
            result = CC_OPTOUT_ALREADY_RECORDED;
            goto out;
        }
        if ((err = latest_action(r, &e->person, e->type, e->effective_day, &action)) != 0)
            goto fail;
        if (action != CC_OPTOUT_REGISTER) {
            if (e->source != CC_OPTOUT_SOURCE_FEED) {
                err = CC_EINVAL;
                goto fail;
            }
            result = CC_OPTOUT_ADDED_UNMATCHED;
        }
    }
    /* for a registration the UNIQUE constraint is the idempotence check */
    if ((err = insert_event(r, e, &added)) != 0)
        goto fail;
    if (!added)
        result = CC_OPTOUT_ALREADY_RECORDED;
out:
    if (own && (err = cc_db_commit(r->db)) != 0)
        goto fail;
    return result;
fail:
    if (own)
        cc_db_rollback(r->db);
    return err;
}

int cc_optout_status(cc_optout *register_, const cc_pseudonym *person, cc_day on,
                     unsigned *types_in_force)
{
    static const unsigned types[] = {CC_OPTOUT_TYPE1, CC_OPTOUT_NDOP};
    unsigned mask = 0;
    *types_in_force = 0;
    if (!register_ || !person)
        return CC_EINVAL;
    /* Two point reads: each is its own read transaction, so a concurrent
     * writer could commit between them; the two types are independent, so
     * each answer is still one that was true at some instant. */
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int action = 0;
        int err = latest_action(register_, person, types[i], on, &action);
        if (err)
            return err;
        if (action == CC_OPTOUT_REGISTER)
            mask |= CC_OPTOUT_MASK(types[i]);
    }
    *types_in_force = mask;
    return 0;
}

int cc_optout_history(cc_optout *register_, const cc_pseudonym *person,
                      struct cc_optout_event **events, size_t *n_events)
{
    struct cc_optout_event *list = NULL;
    size_t n = 0, capacity = 0;
    sqlite3_stmt *stmt;
    int rc = SQLITE_OK, err = 0;

    *events = NULL;
    *n_events = 0;
    if (!register_ || !person)
        return CC_EINVAL;
    stmt = register_->history;
    if ((rc = bind_person(stmt, 1, person)) != SQLITE_OK)
        goto fail_sqlite;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if ((err = cc_array_reserve(&list, &capacity, n + 1, sizeof *list)) != 0)
            goto fail;
        struct cc_optout_event *e = &list[n++];
        memset(e, 0, sizeof *e);
        e->person = *person;
        e->sequence = (uint64_t)sqlite3_column_int64(stmt, 0);
        e->type = (uint8_t)sqlite3_column_int(stmt, 1);
        e->action = (uint8_t)sqlite3_column_int(stmt, 2);
        e->effective_day = sqlite3_column_int(stmt, 3);
        const unsigned char *practice = sqlite3_column_text(stmt, 4);
        if (practice)
            snprintf(e->practice_code, sizeof e->practice_code, "%s", (const char *)practice);
        e->source = (uint8_t)sqlite3_column_int(stmt, 5);
        e->recorded_at = sqlite3_column_int64(stmt, 6);
    }
    if (rc != SQLITE_DONE)
        goto fail_sqlite;
    release(stmt);
    *events = list;
    *n_events = n;
    return 0;
fail_sqlite:
    err = cc_db_error(rc);
    if (!err)
        err = CC_EDB;
fail:
    release(stmt);
    free(list);
    return err;
}

int cc_optout_last_sequence(cc_optout *register_, uint64_t *sequence)
{
    sqlite3_stmt *stmt;
    int rc;
    *sequence = 0;
    if (!register_)
        return CC_EINVAL;
    stmt = register_->last_sequence;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *sequence = (uint64_t)sqlite3_column_int64(stmt, 0); /* NULL (no events) reads as 0 */
        rc = SQLITE_DONE;
    }
    release(stmt);
    return cc_db_error(rc);
}

/*
 * One pass over the UNIQUE index, restricted to events that have taken
 * effect by `on`. Rows arrive grouped by person and, within a person, by
 * type; within a (person, type) group the deciding event is the one with the
 * greatest (effective_day, sequence), tracked as the rows go by (within one
 * day the index orders by action, not sequence). A person is emitted once,
 * when their rows end, if a type of type_mask is in force; the index order is
 * memcmp order of the pseudonym blobs, so the output is already sorted.
 */
int cc_optout_persons_in_force(cc_optout *register_, cc_day on, unsigned type_mask,
                               cc_pseudonym **persons, size_t *n_persons,
                               uint64_t *as_of_sequence)
{
    cc_pseudonym *list = NULL;
    size_t n = 0, capacity = 0;
    cc_pseudonym current;
    int have_current = 0;
    unsigned current_type = 0, current_in_force = 0;
    /* the deciding event of the open (current, current_type) group so far */
    int64_t best_day = -1, best_sequence = -1;
    unsigned best_action = 0;
    sqlite3_stmt *stmt = NULL;
    int own = 0, rc = SQLITE_OK, err = 0;

    *persons = NULL;
    *n_persons = 0;
    if (as_of_sequence)
        *as_of_sequence = 0;
    if (!register_ || (type_mask & ~CC_OPTOUT_MASK_ANY) || !type_mask)
        return CC_EINVAL;

    /* A read transaction, so the sequence and the set describe one state. */
    own = sqlite3_get_autocommit(register_->db);
    if (own && (rc = sqlite3_exec(register_->db, "BEGIN DEFERRED", NULL, NULL, NULL)) != SQLITE_OK)
        return cc_db_error(rc);
    if (as_of_sequence && (err = cc_optout_last_sequence(register_, as_of_sequence)) != 0)
        goto fail;

    stmt = register_->scan_in_force;
    if ((rc = sqlite3_bind_int(stmt, 1, on)) != SQLITE_OK)
        goto fail_sqlite;
    memset(&current, 0, sizeof current);
    for (;;) {
        rc = sqlite3_step(stmt);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            goto fail_sqlite;
        int at_end = rc == SQLITE_DONE;
        const void *blob = NULL;
        unsigned type = 0;
        if (!at_end) {
            blob = sqlite3_column_blob(stmt, 0);
            if (!blob || sqlite3_column_bytes(stmt, 0) != CC_PSEUDONYM_BYTES) {
                err = CC_ECORRUPT; /* the CHECK constraint makes this impossible */
                goto fail;
            }
            type = (unsigned)sqlite3_column_int(stmt, 1);
        }
        int new_person = at_end || !have_current ||
                         memcmp(blob, current.bytes, CC_PSEUDONYM_BYTES) != 0;
        int new_group = new_person || type != current_type;
        if (have_current && new_group && best_action == CC_OPTOUT_REGISTER &&
            valid_type(current_type) && (type_mask & CC_OPTOUT_MASK(current_type)))
            current_in_force = 1;
        if (have_current && new_person && current_in_force) {
            if ((err = cc_array_reserve(&list, &capacity, n + 1, sizeof *list)) != 0)
                goto fail;
            list[n++] = current;
        }
        if (at_end)
            break;
        if (new_person) {
            memcpy(current.bytes, blob, CC_PSEUDONYM_BYTES);
            have_current = 1;
            current_in_force = 0;
        }
        if (new_group) {
            current_type = type;
            best_day = best_sequence = -1;
        }
        int64_t row_day = sqlite3_column_int64(stmt, 2);
        int64_t row_sequence = sqlite3_column_int64(stmt, 3);
        if (row_day > best_day || (row_day == best_day && row_sequence > best_sequence)) {
            best_day = row_day;
            best_sequence = row_sequence;
            best_action = (unsigned)sqlite3_column_int(stmt, 4);
        }
    }
    release(stmt);
    stmt = NULL;
    if (own && (rc = sqlite3_exec(register_->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
        goto fail_sqlite;
    *persons = list;
    *n_persons = n;
    return 0;

fail_sqlite:
    err = cc_db_error(rc);
    if (!err)
        err = CC_EDB;
fail:
    if (stmt)
        release(stmt);
    if (own)
        cc_db_rollback(register_->db);
    free(list);
    if (as_of_sequence)
        *as_of_sequence = 0;
    return err;
}

const char *cc_optout_type_name(int type)
{
    return type == CC_OPTOUT_TYPE1 ? "type1" : type == CC_OPTOUT_NDOP ? "ndop" : NULL;
}

const char *cc_optout_action_name(int action)
{
    return action == CC_OPTOUT_REGISTER   ? "register"
           : action == CC_OPTOUT_WITHDRAW ? "withdraw"
                                          : NULL;
}

const char *cc_optout_source_name(int source)
{
    switch (source) {
    case CC_OPTOUT_SOURCE_FEED:
        return "feed";
    case CC_OPTOUT_SOURCE_OPERATOR:
        return "operator";
    case CC_OPTOUT_SOURCE_GP_REGISTRATION:
        return "gp_registration";
    default:
        return NULL;
    }
}
