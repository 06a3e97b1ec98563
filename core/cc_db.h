/*
 * cc_db.h: the data directory's SQLite database, state.db.
 *
 * state.db holds every piece of mutable state that must survive a crash (the
 * opt-out register, the ingest manifest, later accounts and the audit log).
 * This module opens it with the settings that make a commit durable, keeps a
 * per-module schema-version table, and brackets transactions. It knows no
 * other module's tables: each module creates its own (IF NOT EXISTS) when it
 * attaches to the shared connection, through cc_db_schema_ensure().
 *
 * Settings, applied and checked at every open:
 *  - journal_mode=WAL: readers never block the writer, and a commit is one
 *    append to the write-ahead log;
 *  - synchronous=FULL: the WAL is fsync'ed at every commit, so a commit that
 *    has returned survives a crash or power loss (NORMAL would only fsync at
 *    checkpoints, and a power cut could lose the last commits);
 *  - foreign_keys=ON;
 *  - busy_timeout=CC_DB_BUSY_TIMEOUT_MS, so a second process (the server and
 *    the operator tool) waits for a writer instead of failing at once;
 *  - cache_size=CC_DB_CACHE_KIB.
 *
 * A connection (sqlite3 *) belongs to one thread at a time.
 *
 * Must never: store, log or put in an error message anything that identifies
 * a person; error text names the file and the reason only.
 */
#ifndef CC_DB_H
#define CC_DB_H

#include <stddef.h>

/* A SQLite connection. Only the .c files that call SQLite include <sqlite3.h>. */
typedef struct sqlite3 sqlite3;

/* The file name of the database inside the data directory. */
#define CC_DB_FILE_NAME "state.db"

/* How long a connection waits for another writer before CC_EBUSY. */
#define CC_DB_BUSY_TIMEOUT_MS 5000

/* The page cache of a connection, at most (allocated only as pages are read).
 * The default 2 MiB makes a feed import of 500,000 events spill to the WAL
 * and re-read pages: 17 s instead of 10 s, measured in docs/optout.md. */
#define CC_DB_CACHE_KIB 32768

/* cc_db_open() flags */
#define CC_DB_CREATE 1      /* create the directory (mode 0700) and state.db if missing */
#define CC_DB_QUICK_CHECK 2 /* run PRAGMA quick_check (reads every page: O(size)) */

/* Opens DIR/state.db and applies the settings above. Without CC_DB_CREATE a
 * missing file is CC_ENOTFOUND. A file that is not a SQLite database, or
 * fails the quick check, is CC_ECORRUPT; a file that cannot be opened or read
 * is CC_EIO; a state.db or directory this process cannot write (permissions,
 * a read-only file system) is CC_EACCESS, before anything is opened. On failure errbuf (if not NULL) gets "PATH: reason". The caller
 * closes the connection with cc_db_close(). */
int cc_db_open(const char *dir, int flags, sqlite3 **out, char *errbuf, size_t errlen);

/* Closes a connection (NULL is allowed). Every statement prepared on it must
 * be finalized first (modules detach before the close): CC_EBUSY otherwise,
 * and the connection stays open. */
int cc_db_close(sqlite3 *db);

/* Maps a SQLite result code to a CC_E* code: 0 for SQLITE_OK/ROW/DONE,
 * CC_ECORRUPT for CORRUPT/NOTADB, CC_ENOMEM, CC_EBUSY for BUSY/LOCKED,
 * CC_EIO for IOERR/FULL/CANTOPEN/READONLY, CC_EDB for anything else. */
int cc_db_error(int sqlite_rc);

/* BEGIN IMMEDIATE: takes the write lock now, so the transaction cannot fail
 * later for lock reasons (waits up to the busy timeout). */
int cc_db_begin(sqlite3 *db);

/* COMMIT: when it returns 0, the transaction is durable (WAL fsync'ed). */
int cc_db_commit(sqlite3 *db);

/* ROLLBACK if a transaction is open; harmless otherwise. Returns 0 or an
 * error code (which a caller already on an error path may ignore). */
int cc_db_rollback(sqlite3 *db);

/* Runs each SQL statement of the list (no parameters, no result rows needed)
 * in one transaction: all of them take effect, or none. If the connection is
 * already inside a transaction, they join it (and the caller commits). */
int cc_db_exec_all(sqlite3 *db, const char *const *statements, size_t n_statements);

/* The schema version recorded for module ("optout", "ingest", ...), or 0 in
 * *version if the module has never attached to this database. */
int cc_db_schema_version(sqlite3 *db, const char *module, int *version);

/* Brings a module's schema to `version` in one transaction: if the recorded
 * version is lower (or absent), runs the statements (which must be
 * idempotent: CREATE ... IF NOT EXISTS) and records the version. A recorded
 * version higher than `version` (a database written by a newer carecount) is
 * CC_EUNSUPPORTED and nothing is changed. */
int cc_db_schema_ensure(sqlite3 *db, const char *module, int version,
                        const char *const *statements, size_t n_statements);

#endif
