/*
 * cc_datadir.h: the guards of a data directory: one writer at a time, one
 * key, and nobody else able to change what is in it.
 *
 * Every program that writes a data directory (ingest, the opt-out writers)
 * takes its writer lock first and holds it to the end; every program that
 * uses one (those and the server) checks its permissions and its key:
 *
 *  - The writer lock is an exclusive flock(2) on DIR/writer.lock (mode
 *    0600, never removed while in use). The kernel releases it when the
 *    holder exits or is killed, so a crash never leaves a stale lock.
 *  - The key fingerprint (cc_pseudo_key_fingerprint) is recorded in
 *    state.db by the first writer; a key with another fingerprint is
 *    refused (CC_EWRONGKEY), because its pseudonyms would make every
 *    patient a new person and bypass the opt-outs recorded under the old
 *    ones.
 *  - A key file inside the data directory, or hard-linked into it, is
 *    refused (CC_EWEAKKEY): whoever copies the directory must not get the
 *    key with it.
 *  - The directory, state.db (and its -wal, -shm), writer.lock, rejects/
 *    and every snapshot must belong to the user running the program and be
 *    writable by nobody else (CC_EPERM names the path and why).
 *  - A program that writes or prints record-level data asks
 *    cc_datadir_require_generated() first: only a directory built from
 *    generated data may be exported (cc_ingest.h, "Provenance").
 *
 * The messages (in errbuf) name the path and the reason; they never hold a
 * key, a fingerprint or anything about a person.
 *
 * Must never: store, print or log a key or anything derived from it other
 * than the fingerprint (and that only in state.db).
 */
#ifndef CC_DATADIR_H
#define CC_DATADIR_H

#include <stddef.h>
#include <stdint.h>

#include "cc_pseudo.h"

struct sqlite3;

#define CC_DATADIR_LOCK_FILE "writer.lock"

/* cc_datadir_lock() flags */
#define CC_DATADIR_WAIT 1 /* wait for the lock instead of refusing at once */

/* Takes DIR's writer lock (DIR must exist). Returns 0 with the lock's file
 * descriptor in *lock_fd; CC_ELOCKED if another process holds it (without
 * CC_DATADIR_WAIT), with errbuf naming the lock file and the holder's
 * process id; or another CC_E* code. Release with cc_datadir_unlock(). */
int cc_datadir_lock(const char *dir, int flags, int *lock_fd, char *errbuf, size_t errlen);

/* Releases the lock (a negative fd is ignored). */
void cc_datadir_unlock(int lock_fd);

/* Checks DIR and the files carecount keeps in it (state.db and its -wal and
 * -shm, writer.lock, rejects/, store-*.snap): each that exists must be owned
 * by the effective user and not writable by group or others, and must not
 * be a symbolic link. CC_EPERM with "PATH: why" in errbuf; CC_ENOTFOUND if
 * DIR does not exist. */
int cc_datadir_check_permissions(const char *dir, char *errbuf, size_t errlen);

/* The same checks for one file (a snapshot about to be loaded). */
int cc_datadir_check_file(const char *path, char *errbuf, size_t errlen);

/* Loads the key at key_path for use with DIR: refuses a key file inside DIR
 * or hard-linked to a file in it (CC_EWEAKKEY), then loads it
 * (cc_pseudo_key_load: too open CC_EPERM, all zero CC_EWEAKKEY). errbuf
 * says which and what to do. */
int cc_datadir_load_key(const char *dir, const char *key_path, cc_pseudo_key **out, char *errbuf,
                        size_t errlen);

/* Compares fingerprint with the one DIR's state.db (db) records: 0 if they
 * match, CC_EWRONGKEY if they differ. If none is recorded yet, records it
 * when `record` is set (a writer; its own transaction), and otherwise
 * accepts. */
int cc_datadir_bind_key(struct sqlite3 *db, const uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES],
                        int record, char *errbuf, size_t errlen);

/* For a program that serves DIR (carecountd): checks DIR's permissions,
 * loads the key (refusing one that is not DIR's: CC_EWRONGKEY), checks the
 * current snapshot's permissions and loads it with `flags`
 * (CC_STORE_LOAD_ALL or CC_STORE_QUERY_ONLY). The key is wiped before this
 * returns. CC_ENOTFOUND if nothing has been ingested. Free the store with
 * cc_store_free(). */
struct cc_store;
int cc_datadir_load_current(const char *dir, const char *key_path, int flags,
                            struct cc_store **store, uint64_t *version, char *errbuf,
                            size_t errlen);

/* Whether state.db records a key fingerprint (1) or not (0), or a CC_E*
 * code. */
int cc_datadir_has_key(struct sqlite3 *db);

/* Where DIR's data came from (cc_ingest.h, "Provenance"): opens its
 * state.db and reads, writing nothing of its own. 0, CC_ENOTFOUND (no
 * state.db) or another CC_E* code with "PATH: reason" in errbuf. */
struct cc_provenance;
int cc_datadir_provenance(const char *dir, struct cc_provenance *out, char *errbuf,
                          size_t errlen);

/* For a program about to write or print record-level data (what: "--export"):
 * 0 if DIR was built from `carecount generate` output only; otherwise
 * CC_EREFUSED, with errbuf saying why ("--export writes record-level data
 * and is only for data directories built from `carecount generate`
 * output; DIR was ingested from other feeds (provenance: feeds: REASON)"),
 * for the program to print after its name. Also CC_EREFUSED when DIR holds
 * nothing ingested or its provenance cannot be read. */
int cc_datadir_require_generated(const char *dir, const char *what, char *errbuf, size_t errlen);

#endif
