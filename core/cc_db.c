/*
 * cc_db.c: opening state.db with durable settings, transactions, and the
 * per-module schema-version table (see cc_db.h).
 *
 * Durability argument. A change that must survive a crash is committed in a
 * transaction; with journal_mode=WAL the commit appends the changed pages and
 * a commit frame to state.db-wal, and with synchronous=FULL SQLite fsyncs the
 * WAL before COMMIT returns. A crash (SIGKILL, power loss) after that point
 * leaves the commit in the WAL, and the next open replays it; a crash before
 * it leaves no trace of the transaction. Checkpoints copy WAL pages into
 * state.db and fsync it before the WAL is reused, so they never lose a
 * commit. When this module creates state.db it also fsyncs the directory, so
 * the file's directory entry itself survives a power cut.
 *
 * Must never: know another module's tables, or put anything but a path and a
 * reason in an error message.
 */
#include "cc_db.h"
#include "cc_error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

int cc_db_error(int sqlite_rc)
{
    switch (sqlite_rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return CC_ECORRUPT;
    case SQLITE_NOMEM:
        return CC_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CC_EBUSY;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return CC_EIO;
    default:
        return CC_EDB;
    }
}

static void set_error(char *errbuf, size_t errlen, const char *path, const char *reason)
{
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s: %s", path, reason);
}

/* Runs one statement that returns at most one row of one text column and
 * copies that column into value (if not NULL). */
static int pragma_text(sqlite3 *db, const char *sql, char *value, size_t value_len)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        if (value && value_len) {
            const unsigned char *text = sqlite3_column_text(stmt, 0);
            snprintf(value, value_len, "%s", text ? (const char *)text : "");
        }
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
            ;
    }
    if (rc != SQLITE_DONE)
        goto fail;
    rc = sqlite3_finalize(stmt);
    return cc_db_error(rc);
fail:
    sqlite3_finalize(stmt);
    return cc_db_error(rc);
}

/* fsyncs a directory so that a file just created in it stays there. */
static int sync_directory(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return CC_EIO;
    int err = fsync(fd) == 0 ? 0 : CC_EIO;
    close(fd);
    return err;
}

static const char *const schema_table_sql[] = {
    "CREATE TABLE IF NOT EXISTS cc_schema ("
    " module TEXT PRIMARY KEY NOT NULL,"
    " version INTEGER NOT NULL"
    ") WITHOUT ROWID",
};

/* The busy handler: the write lock of state.db is held for a transaction
 * of a few records (an audit append, a ledger entry, an opt-out) by
 * another connection of this process or another, so wait in short steps
 * (50 us growing to 1 ms) rather than SQLite's default (1 ms growing to
 * 100 ms), up to CC_DB_BUSY_TIMEOUT_MS in all. */
static int busy_wait(void *arg, int n)
{
    (void)arg;
    /* the time waited before try n: steps of 50 us for the first 20 tries,
     * then 1 ms */
    long waited_us = n < 20 ? 50L * n : 1000L + 1000L * (n - 20);
    if (waited_us >= CC_DB_BUSY_TIMEOUT_MS * 1000L)
        return 0;
    struct timespec step = {0, (n < 20 ? 50 : 1000) * 1000L};
    nanosleep(&step, NULL);
    return 1;
}

/* A state.db that cannot be written, or a directory in which its -wal and
 * -shm cannot be made: refused before SQLite opens it, with the reason.
 * Otherwise SQLite would open it read-only and the first write, at the
 * latest the schema table below, would fail as "attempt to write a
 * readonly database"; and every carecount program writes state.db (a
 * reader of a WAL database writes its -shm). Other errors are left to
 * SQLite to report. */
static int check_writable(const char *dir, const char *path, char *errbuf, size_t errlen)
{
    const char *what = path;
    int bad = faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0;
    if (!bad) {
        what = dir;
        bad = faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) != 0;
    }
    if (!bad || (errno != EACCES && errno != EPERM && errno != EROFS))
        return 0;
    char reason[512];
    snprintf(reason, sizeof reason,
             "cannot be written (%s): carecount writes state.db, and its -wal and -shm files "
             "beside it, even to read it; run it as the data directory's owner on a writable "
             "file system",
             strerror(errno));
    set_error(errbuf, errlen, what, reason);
    return CC_EACCESS;
}

int cc_db_open(const char *dir, int flags, sqlite3 **out, char *errbuf, size_t errlen)
{
    sqlite3 *db = NULL;
    char path[4096];
    char value[64];
    int err;
    int created = 0;

    *out = NULL;
    if (!dir || !*dir) {
        set_error(errbuf, errlen, "(none)", "no data directory given");
        return CC_EINVAL;
    }
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, CC_DB_FILE_NAME) >= sizeof path) {
        set_error(errbuf, errlen, dir, "path too long");
        return CC_EINVAL;
    }

    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno != ENOENT) {
            set_error(errbuf, errlen, path, strerror(errno));
            return CC_EIO;
        }
        if (!(flags & CC_DB_CREATE)) {
            set_error(errbuf, errlen, path, "no such database (has anything been ingested?)");
            return CC_ENOTFOUND;
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            set_error(errbuf, errlen, dir, strerror(errno));
            return CC_EIO;
        }
        /* Created here with mode 0600 rather than by SQLite (0644 under the
         * usual umask): the -wal and -shm files copy the database's mode, and
         * none of them is for other users to read. */
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            set_error(errbuf, errlen, path, strerror(errno));
            return CC_EIO;
        }
        if (fd >= 0)
            close(fd);
        created = 1;
    } else if (!S_ISREG(st.st_mode)) {
        set_error(errbuf, errlen, path, "not a regular file");
        return CC_EIO;
    } else if ((err = check_writable(dir, path, errbuf, errlen)) != 0) {
        return err;
    }

    int open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW;
    if (flags & CC_DB_CREATE)
        open_flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &db, open_flags, NULL);
    if (rc != SQLITE_OK) {
        err = cc_db_error(rc);
        set_error(errbuf, errlen, path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        goto fail;
    }
    rc = sqlite3_extended_result_codes(db, 1);
    if (rc != SQLITE_OK) {
        err = cc_db_error(rc);
        set_error(errbuf, errlen, path, sqlite3_errmsg(db));
        goto fail;
    }
    rc = sqlite3_busy_handler(db, busy_wait, NULL);
    if (rc != SQLITE_OK) {
        err = cc_db_error(rc);
        set_error(errbuf, errlen, path, sqlite3_errmsg(db));
        goto fail;
    }

    /* The first statement that reads the file: a file that is not a
     * database fails here with SQLITE_NOTADB. */
    err = pragma_text(db, "PRAGMA journal_mode=WAL", value, sizeof value);
    if (err) {
        set_error(errbuf, errlen, path,
                  err == CC_ECORRUPT ? "not a carecount database, or corrupt"
                                     : sqlite3_errmsg(db));
        goto fail;
    }
    if (strcmp(value, "wal") != 0) {
        err = CC_EIO;
        set_error(errbuf, errlen, path, "cannot use write-ahead logging");
        goto fail;
    }
    err = pragma_text(db, "PRAGMA synchronous=FULL", NULL, 0);
    if (!err)
        err = pragma_text(db, "PRAGMA synchronous", value, sizeof value);
    if (!err && strcmp(value, "2") != 0)
        err = CC_EDB;
    if (err) {
        set_error(errbuf, errlen, path, "cannot set synchronous=FULL");
        goto fail;
    }
    err = pragma_text(db, "PRAGMA foreign_keys=ON", NULL, 0);
    if (!err)
        err = pragma_text(db, "PRAGMA foreign_keys", value, sizeof value);
    if (!err && strcmp(value, "1") != 0)
        err = CC_EDB;
    if (err) {
        set_error(errbuf, errlen, path, "cannot enable foreign keys");
        goto fail;
    }

    char cache_sql[64];
    snprintf(cache_sql, sizeof cache_sql, "PRAGMA cache_size=-%d", CC_DB_CACHE_KIB);
    if ((err = pragma_text(db, cache_sql, NULL, 0)) != 0) {
        set_error(errbuf, errlen, path, "cannot set the cache size");
        goto fail;
    }

    if (flags & CC_DB_QUICK_CHECK) {
        err = pragma_text(db, "PRAGMA quick_check(1)", value, sizeof value);
        if (!err && strcmp(value, "ok") != 0)
            err = CC_ECORRUPT;
        if (err) {
            set_error(errbuf, errlen, path,
                      err == CC_ECORRUPT ? "database is corrupt (quick_check failed)"
                                         : sqlite3_errmsg(db));
            goto fail;
        }
    }

    err = cc_db_exec_all(db, schema_table_sql, 1);
    if (err) {
        set_error(errbuf, errlen, path,
                  err == CC_ECORRUPT ? "database is corrupt" : sqlite3_errmsg(db));
        goto fail;
    }
    if (created && sync_directory(dir) != 0) {
        err = CC_EIO;
        set_error(errbuf, errlen, dir, "cannot fsync the data directory");
        goto fail;
    }
    *out = db;
    return 0;

fail:
    sqlite3_close(db); /* no statements are open on the failure paths */
    return err;
}

int cc_db_close(sqlite3 *db)
{
    if (!db)
        return 0;
    /* sqlite3_close (not _v2) refuses while statements are unfinalized,
     * which catches a module that forgot to detach. */
    int rc = sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : cc_db_error(rc);
}

static int exec_sql(sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return cc_db_error(rc);
}

int cc_db_begin(sqlite3 *db)
{
    return exec_sql(db, "BEGIN IMMEDIATE");
}

int cc_db_commit(sqlite3 *db)
{
    return exec_sql(db, "COMMIT");
}

int cc_db_rollback(sqlite3 *db)
{
    if (sqlite3_get_autocommit(db))
        return 0; /* nothing open (SQLite may already have rolled back) */
    return exec_sql(db, "ROLLBACK");
}

int cc_db_exec_all(sqlite3 *db, const char *const *statements, size_t n_statements)
{
    int own = sqlite3_get_autocommit(db);
    int err = 0;
    if (own && (err = cc_db_begin(db)) != 0)
        return err;
    for (size_t i = 0; i < n_statements; i++)
        if ((err = exec_sql(db, statements[i])) != 0)
            goto fail;
    if (own && (err = cc_db_commit(db)) != 0)
        goto fail;
    return 0;
fail:
    if (own)
        cc_db_rollback(db);
    return err;
}

int cc_db_schema_version(sqlite3 *db, const char *module, int *version)
{
    sqlite3_stmt *stmt = NULL;
    *version = 0;
    int rc = sqlite3_prepare_v2(db, "SELECT version FROM cc_schema WHERE module = ?1", -1,
                                &stmt, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_bind_text(stmt, 1, module, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(stmt, 0);
        rc = sqlite3_step(stmt);
    }
    if (rc != SQLITE_DONE)
        goto fail;
    return cc_db_error(sqlite3_finalize(stmt));
fail:
    sqlite3_finalize(stmt);
    return cc_db_error(rc);
}

static int set_schema_version(sqlite3 *db, const char *module, int version)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO cc_schema(module, version) "
                                    "VALUES (?1, ?2)",
                                -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    if ((rc = sqlite3_bind_text(stmt, 1, module, -1, SQLITE_STATIC)) != SQLITE_OK)
        goto fail;
    if ((rc = sqlite3_bind_int(stmt, 2, version)) != SQLITE_OK)
        goto fail;
    if ((rc = sqlite3_step(stmt)) != SQLITE_DONE)
        goto fail;
    return cc_db_error(sqlite3_finalize(stmt));
fail:
    sqlite3_finalize(stmt);
    return cc_db_error(rc);
}

int cc_db_schema_ensure(sqlite3 *db, const char *module, int version,
                        const char *const *statements, size_t n_statements)
{
    int own = sqlite3_get_autocommit(db);
    int recorded = 0;
    int err;
    if (!module || !*module || version <= 0)
        return CC_EINVAL;
    /* The write lock first, so two processes attaching at once do not both
     * decide to create the schema. */
    if (own && (err = cc_db_begin(db)) != 0)
        return err;
    if ((err = cc_db_schema_version(db, module, &recorded)) != 0)
        goto fail;
    if (recorded > version) {
        err = CC_EUNSUPPORTED;
        goto fail;
    }
    if (recorded < version) {
        if ((err = cc_db_exec_all(db, statements, n_statements)) != 0)
            goto fail;
        if ((err = set_schema_version(db, module, version)) != 0)
            goto fail;
    }
    if (own && (err = cc_db_commit(db)) != 0)
        goto fail;
    return 0;
fail:
    if (own)
        cc_db_rollback(db);
    return err;
}
