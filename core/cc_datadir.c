/*
 * cc_datadir.c: the writer lock, the permission checks and the key
 * fingerprint of a data directory (see cc_datadir.h).
 *
 * Why flock on a file of its own rather than SQLite's write lock: an ingest
 * writes a snapshot file for minutes before it touches state.db, and holding
 * a SQLite write transaction that long would block the opt-out register's
 * readers' checkpoints and every other writer with SQLITE_BUSY after the
 * busy timeout, with a message about the database rather than the writer.
 * A flock is released by the kernel when its holder dies, so no crash leaves
 * a stale lock, and it says at once who holds it.
 *
 * Must never: store, print or log a key; put anything but paths, modes, user
 * and process ids in a message.
 */
#include "cc_datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_store.h"

/* ---- the writer lock ---------------------------------------------------------------- */

/* The process id the holder wrote into the lock file, or 0. */
static long lock_holder(int fd)
{
    char text[32];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    return strtol(text, NULL, 10);
}

int cc_datadir_lock(const char *dir, int flags, int *lock_fd, char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    *lock_fd = -1;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, CC_DATADIR_LOCK_FILE) >= sizeof path) {
        snprintf(errbuf, errlen, "%s: path too long", dir);
        return CC_EINVAL;
    }
    for (;;) {
        int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            int e = errno;
            if (e == EACCES || e == EPERM || e == EROFS) {
                /* the first thing a writer writes: say what is wrong with
                 * the directory, not just with this file */
                snprintf(errbuf, errlen,
                         "%s: cannot open the writer lock (%s): the data directory cannot be "
                         "written; ingest and the opt-out writers write the store, state.db "
                         "and this lock there, so run them as the directory's owner on a "
                         "writable file system (nothing was changed)",
                         path, strerror(e));
                return CC_EACCESS;
            }
            int rc = cc_error_from_errno(e);
            snprintf(errbuf, errlen, "%s: cannot open the writer lock (%s)", path,
                     cc_strerror(rc));
            return rc;
        }
        if (flock(fd, LOCK_EX | ((flags & CC_DATADIR_WAIT) ? 0 : LOCK_NB)) != 0) {
            int e = errno;
            if (e == EINTR) {
                close(fd);
                continue;
            }
            if (e == EWOULDBLOCK) {
                long holder = lock_holder(fd);
                close(fd);
                if (holder > 0)
                    snprintf(errbuf, errlen,
                             "%s: held by process %ld: another ingest or opt-out writer is "
                             "using this data directory; try again when it has finished (or "
                             "pass --wait)",
                             path, holder);
                else
                    snprintf(errbuf, errlen,
                             "%s: held by another process: another ingest or opt-out writer "
                             "is using this data directory; try again when it has finished "
                             "(or pass --wait)",
                             path);
                return CC_ELOCKED;
            }
            close(fd);
            snprintf(errbuf, errlen, "%s: cannot take the writer lock (%s)", path, strerror(e));
            return CC_EIO;
        }
        /* The holder before us may have removed the lock file (a failed
         * first ingest removes the directory it created): a lock on a file
         * that no longer has this name excludes nobody, so take it again. */
        struct stat held, named;
        if (fstat(fd, &held) != 0 || stat(path, &named) != 0 || held.st_dev != named.st_dev ||
            held.st_ino != named.st_ino) {
            close(fd);
            struct stat d;
            if (stat(dir, &d) != 0) {
                snprintf(errbuf, errlen, "%s: the data directory was removed while waiting",
                         dir);
                return CC_ENOTFOUND;
            }
            continue;
        }
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
            /* the lock is held all the same; only the message of a
             * process that finds it taken loses the holder's id */
        }
        *lock_fd = fd;
        return 0;
    }
}

void cc_datadir_unlock(int lock_fd)
{
    if (lock_fd < 0)
        return;
    if (ftruncate(lock_fd, 0) != 0) {
        /* a stale process id is only shown, never trusted */
    }
    close(lock_fd); /* releases the flock */
}

/* ---- permissions -------------------------------------------------------------------- */

/* Checks one path: 0 if fine or absent (absent_ok), CC_EPERM or another code
 * with the reason in errbuf. */
static int check_path(const char *path, int follow, int want_dir, int absent_ok, char *errbuf,
                      size_t errlen)
{
    struct stat st;
    if ((follow ? stat(path, &st) : lstat(path, &st)) != 0) {
        if (errno == ENOENT && absent_ok)
            return 0;
        int rc = cc_error_from_errno(errno);
        snprintf(errbuf, errlen, "%s: %s", path, cc_strerror(rc));
        return rc;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(errbuf, errlen,
                 "%s: is a symbolic link; carecount keeps only its own files here, and a "
                 "link could point another user's file into the data directory",
                 path);
        return CC_EPERM;
    }
    if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
        snprintf(errbuf, errlen, "%s: is not a %s", path, want_dir ? "directory" : "regular file");
        return CC_EPERM;
    }
    if (st.st_uid != geteuid()) {
        snprintf(errbuf, errlen,
                 "%s: owned by another user (uid %ld, not %ld): whoever owns it can change "
                 "what is served; it must belong to the account that runs carecount",
                 path, (long)st.st_uid, (long)geteuid());
        return CC_EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(errbuf, errlen,
                 "%s: writable by group or others (mode %04o): another user could replace "
                 "what is served; chmod go-w it",
                 path, (unsigned)(st.st_mode & 07777));
        return CC_EPERM;
    }
    return 0;
}

int cc_datadir_check_file(const char *path, char *errbuf, size_t errlen)
{
    return check_path(path, 0, 0, 0, errbuf, errlen);
}

static int is_snapshot_name(const char *name)
{
    size_t n = strlen(name);
    return !strncmp(name, "store-", 6) &&
           ((n > 11 && !strcmp(name + n - 5, ".snap")) ||
            (n > 15 && !strcmp(name + n - 9, ".snap.tmp")));
}

int cc_datadir_check_permissions(const char *dir, char *errbuf, size_t errlen)
{
    static const char *const files[] = {CC_DB_FILE_NAME, CC_DB_FILE_NAME "-wal",
                                        CC_DB_FILE_NAME "-shm", CC_DATADIR_LOCK_FILE};
    char path[PATH_MAX];
    /* The directory itself may be reached through a symbolic link (the
     * operator chose where it lives); what it points to is checked. */
    int rc = check_path(dir, 1, 1, 0, errbuf, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if ((rc = check_path(path, 0, 0, 1, errbuf, errlen)))
            return rc;
    }
    snprintf(path, sizeof path, "%s/rejects", dir);
    if ((rc = check_path(path, 0, 1, 1, errbuf, errlen)))
        return rc;
    DIR *d = opendir(dir);
    if (!d) {
        rc = cc_error_from_errno(errno);
        snprintf(errbuf, errlen, "%s: cannot list (%s)", dir, cc_strerror(rc));
        return rc;
    }
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (!is_snapshot_name(e->d_name))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        rc = check_path(path, 0, 0, 1, errbuf, errlen);
    }
    closedir(d);
    return rc;
}

/* ---- the key file ------------------------------------------------------------------- */

/* Is `path` inside `dir` (after resolving both)? */
static int path_inside(const char *path, const char *dir)
{
    char rp[PATH_MAX], rd[PATH_MAX], parent[PATH_MAX];
    if (!realpath(dir, rd))
        return 0;
    if (!realpath(path, rp)) {
        /* a key file that does not exist yet: judge by its directory */
        snprintf(parent, sizeof parent, "%s", path);
        char *slash = strrchr(parent, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(parent, sizeof parent, ".");
        if (!realpath(parent, rp))
            return 0;
    }
    size_t n = strlen(rd);
    return !strncmp(rp, rd, n) && (rp[n] == '/' || rp[n] == '\0');
}

/* Does a file of dir (or of a directory in it, `depth` levels down) have
 * this device and inode? */
static int linked_into(const char *dir, dev_t dev, ino_t ino, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while (!found && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISREG(st.st_mode) && st.st_dev == dev && st.st_ino == ino)
            found = 1;
        else if (S_ISDIR(st.st_mode) && depth > 0)
            found = linked_into(path, dev, ino, depth - 1);
    }
    closedir(d);
    return found;
}

int cc_datadir_load_key(const char *dir, const char *key_path, cc_pseudo_key **out, char *errbuf,
                        size_t errlen)
{
    *out = NULL;
    if (path_inside(key_path, dir)) {
        snprintf(errbuf, errlen,
                 "%s: the key file must not live inside the data directory %s (whoever copies "
                 "the directory would get the key with it): keep it elsewhere",
                 key_path, dir);
        return CC_EWEAKKEY;
    }
    struct stat st;
    if (stat(key_path, &st) == 0 && st.st_nlink > 1 && linked_into(dir, st.st_dev, st.st_ino, 2)) {
        snprintf(errbuf, errlen,
                 "%s: the key file is a hard link to a file inside the data directory %s "
                 "(whoever copies the directory would get the key with it): remove that link",
                 key_path, dir);
        return CC_EWEAKKEY;
    }
    int rc = cc_pseudo_key_load(key_path, out);
    if (rc == 0)
        return 0;
    switch (rc) {
    case CC_EPERM:
        snprintf(errbuf, errlen,
                 "%s: cannot load the key: its permissions are too open: chmod 600 it", key_path);
        break;
    case CC_EWEAKKEY:
        snprintf(errbuf, errlen,
                 "%s: cannot load the key: its 32 bytes are all zero, a key everyone knows; "
                 "make a real one with `carecount keygen`",
                 key_path);
        break;
    case CC_ECORRUPT:
        snprintf(errbuf, errlen, "%s: cannot load the key: not a carecount key file", key_path);
        break;
    default:
        snprintf(errbuf, errlen, "%s: cannot load the key (%s)", key_path, cc_strerror(rc));
        break;
    }
    return rc;
}

/* ---- the key fingerprint in state.db ------------------------------------------------- */

static const char *const key_schema[] = {
    "CREATE TABLE IF NOT EXISTS data_key ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " fingerprint BLOB NOT NULL,"
    " recorded_at INTEGER NOT NULL)",
};

/* The recorded fingerprint: 1 (copied to out), 0 none, or a CC_E* code. */
static int recorded_fingerprint(sqlite3 *db, uint8_t out[CC_KEY_FINGERPRINT_BYTES])
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT fingerprint FROM data_key WHERE id = 1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return cc_db_error(rc);
    rc = sqlite3_step(st);
    int found = 0;
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != CC_KEY_FINGERPRINT_BYTES) {
            sqlite3_finalize(st);
            return CC_ECORRUPT;
        }
        memcpy(out, sqlite3_column_blob(st, 0), CC_KEY_FINGERPRINT_BYTES);
        found = 1;
    } else if (rc != SQLITE_DONE) {
        sqlite3_finalize(st);
        return cc_db_error(rc);
    }
    sqlite3_finalize(st);
    return found;
}

int cc_datadir_has_key(struct sqlite3 *db)
{
    uint8_t fp[CC_KEY_FINGERPRINT_BYTES];
    int rc = cc_db_schema_ensure(db, "datadir", 1, key_schema,
                                 sizeof key_schema / sizeof *key_schema);
    return rc < 0 ? rc : recorded_fingerprint(db, fp);
}

int cc_datadir_bind_key(struct sqlite3 *db, const uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES],
                        int record, char *errbuf, size_t errlen)
{
    const char *db_path = sqlite3_db_filename(db, "main");
    uint8_t recorded[CC_KEY_FINGERPRINT_BYTES];
    int rc = cc_db_schema_ensure(db, "datadir", 1, key_schema,
                                 sizeof key_schema / sizeof *key_schema);
    if (rc < 0)
        goto db_failed;
    if (record && (rc = cc_db_begin(db)) < 0)
        goto db_failed;
    int found = recorded_fingerprint(db, recorded);
    if (found < 0) {
        rc = found;
        goto rollback;
    }
    if (found) {
        if (record)
            cc_db_rollback(db);
        if (sodium_memcmp(recorded, fingerprint, CC_KEY_FINGERPRINT_BYTES) != 0) {
            snprintf(errbuf, errlen,
                     "%s: this key is not the data directory's key (its fingerprint differs "
                     "from the one recorded when the directory was first written): its "
                     "pseudonyms would turn every patient into a new person and bypass "
                     "their opt-outs; use the key the directory was made with",
                     db_path ? db_path : CC_DB_FILE_NAME);
            return CC_EWRONGKEY;
        }
        return 0;
    }
    if (!record)
        return 0;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, "INSERT INTO data_key(id, fingerprint, recorded_at) VALUES (1, ?, ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, fingerprint, CC_KEY_FINGERPRINT_BYTES, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        rc = cc_db_error(rc);
        goto rollback;
    }
    if ((rc = cc_db_commit(db)) < 0)
        goto rollback;
    return 0;
rollback:
    cc_db_rollback(db);
db_failed:
    snprintf(errbuf, errlen, "%s: cannot read or record the key fingerprint (%s)",
             db_path ? db_path : CC_DB_FILE_NAME, cc_strerror(rc));
    return rc;
}

/* ---- loading for a server ------------------------------------------------------------ */

int cc_datadir_load_current(const char *dir, const char *key_path, int flags,
                            struct cc_store **store, uint64_t *version, char *errbuf,
                            size_t errlen)
{
    cc_pseudo_key *key = NULL;
    sqlite3 *db = NULL;
    char path[PATH_MAX], why[512] = "";
    *store = NULL;
    int rc = cc_datadir_check_permissions(dir, errbuf, errlen);
    if (rc < 0)
        return rc;
    if ((rc = cc_datadir_load_key(dir, key_path, &key, errbuf, errlen)) < 0)
        return rc;
    uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES];
    cc_pseudo_key_fingerprint(key, fingerprint);
    if ((rc = cc_db_open(dir, 0, &db, errbuf, errlen)) < 0)
        goto out;
    rc = cc_datadir_bind_key(db, fingerprint, 0, errbuf, errlen);
    cc_db_close(db);
    if (rc < 0)
        goto out;
    if ((rc = cc_ingest_current_store(dir, version, path, sizeof path, errbuf, errlen)) < 0)
        goto out;
    if ((rc = cc_datadir_check_file(path, errbuf, errlen)) < 0)
        goto out;
    if ((rc = cc_store_load(path, flags, cc_pseudo_store_mac_key(key), store, why, sizeof why)) < 0)
        snprintf(errbuf, errlen, "%s: %s", path, why[0] ? why : cc_strerror(rc));
out:
    cc_pseudo_key_free(key);
    return rc;
}

/* ---- provenance ---------------------------------------------------------------------- */

int cc_datadir_provenance(const char *dir, struct cc_provenance *out, char *errbuf,
                          size_t errlen)
{
    sqlite3 *db = NULL;
    memset(out, 0, sizeof *out);
    int rc = cc_db_open(dir, 0, &db, errbuf, errlen);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_provenance(db, out)) < 0)
        snprintf(errbuf, errlen, "%s/%s: cannot read the provenance (%s)", dir, CC_DB_FILE_NAME,
                 cc_strerror(rc));
    cc_db_close(db);
    return rc;
}

int cc_datadir_require_generated(const char *dir, const char *what, char *errbuf, size_t errlen)
{
    struct cc_provenance p;
    char why[512];
    int rc = cc_datadir_provenance(dir, &p, why, sizeof why);
    const char *rule = "writes record-level data and is only for data directories built from "
                       "`carecount generate` output";
    if (rc == 0 && p.source == CC_PROVENANCE_GENERATED)
        return 0;
    if (rc == CC_ENOTFOUND || (rc == 0 && p.source == CC_PROVENANCE_NONE))
        snprintf(errbuf, errlen, "%s %s; %s holds nothing ingested (provenance: none)", what,
                 rule, dir);
    else if (rc == 0)
        snprintf(errbuf, errlen,
                 "%s %s; %s was ingested from other feeds (provenance: feeds: %s)", what, rule, dir,
                 p.reason);
    else
        snprintf(errbuf, errlen, "%s %s; cannot tell where %s's data came from: %s", what, rule,
                 dir, why);
    return CC_EREFUSED;
}
