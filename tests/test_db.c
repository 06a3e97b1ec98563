/* Tests for core/cc_db.c: opening state.db durably, schema versions,
 * all-or-nothing transactions, and a clear error for a corrupt file. */
#include <criterion/criterion.h>

#include <pthread.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_testfs.h"

struct temp_dir {
    char path[64];
    char db_path[96];
};

static void make_temp_dir(struct temp_dir *t)
{
    cc_testfs_make_dir(t->path, sizeof t->path, "db");
    snprintf(t->db_path, sizeof t->db_path, "%s/%s", t->path, CC_DB_FILE_NAME);
}

static void remove_temp_dir(struct temp_dir *t)
{
    cc_testfs_remove_tree(t->path);
}

static void query_text(sqlite3 *db, const char *sql, char *out, size_t len)
{
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &stmt, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
}

static int table_exists(sqlite3 *db, const char *name)
{
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE name = ?1", -1, &stmt,
                                    NULL),
                 SQLITE_OK);
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    int found = sqlite3_step(stmt) == SQLITE_ROW;
    sqlite3_finalize(stmt);
    return found;
}

static void write_bytes_at(const char *path, off_t offset, size_t n, unsigned seed)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    cr_assert_geq(fd, 0);
    unsigned char buf[4096];
    cr_assert_leq(n, sizeof buf);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    cr_assert_eq(pwrite(fd, buf, n, offset), (ssize_t)n);
    close(fd);
}

/* Commits another connection's open transaction after 200 ms. */
static void *commit_later(void *arg)
{
    usleep(200 * 1000);
    sqlite3_exec(arg, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

Test(db, open_creates_the_database_with_durable_settings)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    char err[256] = "";
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(access(t.db_path, F_OK), 0);
    char value[32];
    query_text(db, "PRAGMA journal_mode", value, sizeof value);
    cr_assert_str_eq(value, "wal");
    query_text(db, "PRAGMA synchronous", value, sizeof value);
    cr_assert_str_eq(value, "2"); /* FULL */
    query_text(db, "PRAGMA foreign_keys", value, sizeof value);
    cr_assert_str_eq(value, "1");
    /* a writer waits for another's lock (the busy handler), and does not
     * fail at once: another connection holds the write lock for 200 ms */
    sqlite3 *other;
    cr_assert_eq(sqlite3_open(t.db_path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    pthread_t releaser;
    cr_assert_eq(pthread_create(&releaser, NULL, commit_later, other), 0);
    cr_assert_eq(cc_db_begin(db), 0, "waited for the lock");
    cr_assert_eq(cc_db_commit(db), 0);
    pthread_join(releaser, NULL);
    sqlite3_close(other);
    struct stat st;
    cr_assert_eq(stat(t.db_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "state.db is for its owner only");
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, open_creates_a_missing_data_directory_only_when_asked)
{
    struct temp_dir t;
    make_temp_dir(&t);
    char sub[128];
    snprintf(sub, sizeof sub, "%s/data", t.path);
    sqlite3 *db = NULL;
    char err[256] = "";
    cr_assert_eq(cc_db_open(sub, 0, &db, err, sizeof err), CC_ENOTFOUND);
    cr_assert_null(db);
    cr_assert_neq(access(sub, F_OK), 0, "a read-only open must not create the directory");
    cr_assert_eq(cc_db_open(sub, CC_DB_CREATE, &db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, a_missing_database_is_not_found_and_the_error_names_the_file)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    char err[256] = "";
    cr_assert_eq(cc_db_open(t.path, 0, &db, err, sizeof err), CC_ENOTFOUND);
    cr_assert_not_null(strstr(err, t.db_path), "error was: %s", err);
    remove_temp_dir(&t);
}

Test(db, a_file_of_garbage_is_reported_as_corrupt_at_open)
{
    struct temp_dir t;
    make_temp_dir(&t);
    write_bytes_at(t.db_path, 0, 4096, 7);
    write_bytes_at(t.db_path, 4096, 4096, 8);
    sqlite3 *db = NULL;
    char err[256] = "";
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, err, sizeof err), CC_ECORRUPT);
    cr_assert_null(db);
    cr_assert_not_null(strstr(err, t.db_path), "error was: %s", err);
    cr_assert_not_null(strstr(err, "corrupt"), "error was: %s", err);
    remove_temp_dir(&t);
}

Test(db, damaged_pages_inside_a_database_fail_the_quick_check)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    char err[256] = "";
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, err, sizeof err), 0, "%s", err);
    static const char *const fill[] = {
        "CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
        " INSERT INTO t SELECT i, printf('row %08d padding padding', i) FROM n",
        "CREATE INDEX t_y ON t (y)",
    };
    cr_assert_eq(cc_db_exec_all(db, fill, 3), 0);
    cr_assert_eq(cc_db_close(db), 0); /* the last close checkpoints the WAL into state.db */

    /* page size is 4096: damage pages 4 to 6, leaving the header intact */
    for (int page = 3; page < 6; page++)
        write_bytes_at(t.db_path, (off_t)page * 4096, 4096, (unsigned)page);
    db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_QUICK_CHECK, &db, err, sizeof err), CC_ECORRUPT);
    cr_assert_null(db);
    cr_assert_not_null(strstr(err, "corrupt"), "error was: %s", err);
    remove_temp_dir(&t);
}

Test(db, exec_all_is_all_or_nothing)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, NULL, 0), 0);
    static const char *const statements[] = {
        "CREATE TABLE half_done (x INTEGER)",
        "INSERT INTO half_done VALUES (1)",
        "INSERT INTO no_such_table VALUES (1)",
    };
    cr_assert_lt(cc_db_exec_all(db, statements, 3), 0);
    cr_assert_not(table_exists(db, "half_done"), "the first statements must be rolled back");
    cr_assert(sqlite3_get_autocommit(db), "no transaction may be left open");
    cr_assert_eq(cc_db_exec_all(db, statements, 2), 0);
    cr_assert(table_exists(db, "half_done"));
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, statements_inside_a_caller_transaction_join_it)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, NULL, 0), 0);
    static const char *const create[] = {"CREATE TABLE joined (x INTEGER)"};
    cr_assert_eq(cc_db_begin(db), 0);
    cr_assert_eq(cc_db_exec_all(db, create, 1), 0);
    cr_assert_not(sqlite3_get_autocommit(db), "exec_all must not commit the caller's transaction");
    cr_assert_eq(cc_db_rollback(db), 0);
    cr_assert_not(table_exists(db, "joined"));
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, schema_ensure_records_the_version_once)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, NULL, 0), 0);
    static const char *const schema[] = {"CREATE TABLE IF NOT EXISTS thing (x INTEGER)"};
    int version = -1;
    cr_assert_eq(cc_db_schema_version(db, "thing", &version), 0);
    cr_assert_eq(version, 0);
    cr_assert_eq(cc_db_schema_ensure(db, "thing", 1, schema, 1), 0);
    cr_assert_eq(cc_db_schema_ensure(db, "thing", 1, schema, 1), 0);
    cr_assert_eq(cc_db_schema_version(db, "thing", &version), 0);
    cr_assert_eq(version, 1);
    cr_assert(table_exists(db, "thing"));
    cr_assert_eq(cc_db_close(db), 0);

    /* the version survives a reopen */
    cr_assert_eq(cc_db_open(t.path, 0, &db, NULL, 0), 0);
    cr_assert_eq(cc_db_schema_version(db, "thing", &version), 0);
    cr_assert_eq(version, 1);
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, a_schema_written_by_a_newer_version_is_refused)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, NULL, 0), 0);
    static const char *const v2[] = {"CREATE TABLE IF NOT EXISTS thing (x INTEGER, y INTEGER)"};
    static const char *const v1[] = {"CREATE TABLE IF NOT EXISTS other_thing (x INTEGER)"};
    cr_assert_eq(cc_db_schema_ensure(db, "thing", 2, v2, 1), 0);
    cr_assert_eq(cc_db_schema_ensure(db, "thing", 1, v1, 1), CC_EUNSUPPORTED);
    cr_assert_not(table_exists(db, "other_thing"), "a refused schema changes nothing");
    cr_assert(sqlite3_get_autocommit(db));
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, close_refuses_while_a_statement_is_open)
{
    struct temp_dir t;
    make_temp_dir(&t);
    sqlite3 *db = NULL;
    cr_assert_eq(cc_db_open(t.path, CC_DB_CREATE, &db, NULL, 0), 0);
    sqlite3_stmt *stmt = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT 1", -1, &stmt, NULL), SQLITE_OK);
    cr_assert_eq(cc_db_close(db), CC_EBUSY);
    sqlite3_finalize(stmt);
    cr_assert_eq(cc_db_close(db), 0);
    remove_temp_dir(&t);
}

Test(db, sqlite_codes_map_onto_carecount_codes)
{
    cr_assert_eq(cc_db_error(SQLITE_OK), 0);
    cr_assert_eq(cc_db_error(SQLITE_DONE), 0);
    cr_assert_eq(cc_db_error(SQLITE_NOTADB), CC_ECORRUPT);
    cr_assert_eq(cc_db_error(SQLITE_CORRUPT), CC_ECORRUPT);
    cr_assert_eq(cc_db_error(SQLITE_BUSY), CC_EBUSY);
    cr_assert_eq(cc_db_error(SQLITE_IOERR_FSYNC), CC_EIO);
    cr_assert_eq(cc_db_error(SQLITE_NOMEM), CC_ENOMEM);
    cr_assert_eq(cc_db_error(SQLITE_CONSTRAINT), CC_EDB);
}
