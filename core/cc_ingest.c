/*
 * cc_ingest.c: runs the ingest stage (see cc_ingest.h): opens the data
 * directory and its state.db, skips files already ingested, reads the feeds
 * in a fixed order, links, leaves out type 1 opt-outs' GP-sourced data,
 * writes the new snapshot and makes it current in one transaction together
 * with the manifest of the files it holds (and the run's provenance,
 * cc_ingest_provenance.c).
 *
 * Must never: write an identifier to the log, the reports or the store.
 */
#include "cc_ingest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sodium.h>
#include <sqlite3.h>

#include "cc_datadir.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_model.h"
#include "cc_ingest_internal.h"

/* ---- names -------------------------------------------------------------------- */

static const char *const feed_names[] = {
#define CC_FEED_NAME_(id, name, file) name,
    CC_FEED_KINDS(CC_FEED_NAME_)
#undef CC_FEED_NAME_
};
static const char *const feed_files[] = {
#define CC_FEED_FILE_(id, name, file) file,
    CC_FEED_KINDS(CC_FEED_FILE_)
#undef CC_FEED_FILE_
};
static const char *const reason_names[] = {
#define CC_REJECT_NAME_(id, text) #id,
    CC_REJECT_REASONS(CC_REJECT_NAME_)
#undef CC_REJECT_NAME_
};
static const char *const reason_texts[] = {
#define CC_REJECT_TEXT_(id, text) text,
    CC_REJECT_REASONS(CC_REJECT_TEXT_)
#undef CC_REJECT_TEXT_
};

const char *cc_feed_kind_name(int kind)
{
    return kind >= 0 && kind < CC_N_FEED_KINDS ? feed_names[kind] : "unknown";
}

const char *cc_feed_kind_file(int kind)
{
    return kind >= 0 && kind < CC_N_FEED_KINDS ? feed_files[kind] : "";
}

int cc_feed_kind_from_name(const char *name)
{
    for (int k = 0; k < CC_N_FEED_KINDS; k++)
        if (!strcmp(name, feed_names[k]))
            return k;
    return -1;
}

const char *cc_reject_reason_name(int reason)
{
    return reason >= 0 && reason < CC_N_REJECT_REASONS ? reason_names[reason] : "UNKNOWN";
}

const char *cc_reject_reason_text(int reason)
{
    return reason >= 0 && reason < CC_N_REJECT_REASONS ? reason_texts[reason] : "unknown";
}

/* ---- the seen set ---------------------------------------- */

int cc_seen_set_init(struct cc_seen_set *set, uint64_t expected)
{
    uint64_t cap = cc_hash_slots_for(expected, 64);
    if (!cap || cap > SIZE_MAX / (2 * sizeof *set->keys))
        return CC_ENOMEM;
    set->keys = calloc(cap * 2, sizeof *set->keys);
    if (!set->keys)
        return CC_ENOMEM;
    /* a table of half a gigabyte (the hospital feed's identities at 10M) is
     * probed at random: huge pages spare a TLB miss per probe */
    cc_hash_advise_huge(set->keys, (size_t)cap * 2 * sizeof *set->keys);
    set->mask = cap - 1;
    set->n = 0;
    return 0;
}

static int seen_set_grow(struct cc_seen_set *set)
{
    struct cc_seen_set bigger;
    int rc = cc_seen_set_init(&bigger, (set->mask + 1));
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i <= set->mask; i++)
        if (set->keys[2 * i] | set->keys[2 * i + 1])
            cc_seen_set_add(&bigger, set->keys[2 * i], set->keys[2 * i + 1]);
    free(set->keys);
    *set = bigger;
    return 0;
}

/* The first slot of key (a, b)'s probe (the all-zero key is stored as (0, 1)). */
static uint64_t seen_first(const struct cc_seen_set *set, uint64_t a, uint64_t b)
{
    if (!(a | b))
        b = 1;
    return cc_hash_mix64(a ^ cc_hash_mix64(b)) & set->mask;
}

void cc_seen_set_prefetch(const struct cc_seen_set *set, uint64_t a, uint64_t b)
{
    if (set->keys)
        __builtin_prefetch(&set->keys[2 * seen_first(set, a, b)]);
}

int cc_seen_set_add(struct cc_seen_set *set, uint64_t a, uint64_t b)
{
    if (!(a | b))
        b = 1;
    if ((set->n + 1) * 2 > set->mask + 1) {
        int rc = seen_set_grow(set);
        if (rc < 0)
            return rc;
    }
    for (uint64_t i = seen_first(set, a, b);; i = (i + 1) & set->mask) {
        uint64_t *slot = &set->keys[2 * i];
        if (!(slot[0] | slot[1])) {
            slot[0] = a;
            slot[1] = b;
            set->n++;
            return 1;
        }
        if (slot[0] == a && slot[1] == b)
            return 0;
    }
}

int cc_seen_set_has(const struct cc_seen_set *set, uint64_t a, uint64_t b)
{
    if (!set->keys)
        return 0;
    if (!(a | b))
        b = 1;
    for (uint64_t i = seen_first(set, a, b);; i = (i + 1) & set->mask) {
        const uint64_t *slot = &set->keys[2 * i];
        if (!(slot[0] | slot[1]))
            return 0;
        if (slot[0] == a && slot[1] == b)
            return 1;
    }
}

void cc_seen_set_free(struct cc_seen_set *set)
{
    free(set->keys);
    set->keys = NULL;
    set->n = set->mask = 0;
}

/* ---- the pseudonym memo ------------------------------------------------------------ */

void cc_pseudo_memo_get(struct cc_u64_map *memo, uint64_t packed,
                        void (*compute)(const cc_pseudo_key *key, const void *arg,
                                        cc_pseudonym *out),
                        const cc_pseudo_key *key, const void *arg, cc_pseudonym *out)
{
    if (!packed ||
        (cc_u64_map_full(memo) && cc_u64_map_reserve(memo, memo->n + 1, 1 << 16) < 0)) {
        compute(key, arg, out); /* no memo: correct, only slower */
        return;
    }
    uint64_t at = cc_u64_map_slot(memo, packed);
    if (memo->keys[at]) {
        memcpy(out, cc_u64_map_value(memo, at), sizeof *out);
        return;
    }
    compute(key, arg, out);
    cc_u64_map_put(memo, at, packed);
    memcpy(cc_u64_map_value(memo, at), out, sizeof *out);
}

/* ---- what the store held before the run ----------------------------------------- */

uint64_t cc_ingest_gp_event_hash(const char *code, size_t len)
{
    return cc_hash_bytes(code, len, 0x6770);
}

int cc_ingest_seen_from_base(struct cc_ingest_ctx *ctx, const cc_store *base, int gp_events,
                             int feed_identities)
{
    const struct cc_store_columns *v = cc_store_columns(base);
    int rc;
    if (feed_identities) {
        if ((rc = cc_seen_set_init(&ctx->stored_feed_identities, v->n_feed_identities + 16)) < 0)
            return rc;
        for (uint64_t i = 0; i < v->n_feed_identities; i++) {
            uint64_t a, b;
            memcpy(&a, v->feed_identity[i], 8);
            memcpy(&b, v->feed_identity[i] + 8, 8);
            if ((rc = cc_seen_set_add(&ctx->stored_feed_identities, a, b)) < 0)
                return rc;
        }
    }
    if (gp_events) {
        /* A GP event's identity is its content (person, date, code): the
         * store holds exactly that, so it is read back from the postings of
         * the SNOMED CT codes, keeping those of GP records. */
        uint64_t first = v->setting_first[CC_SETTING_GP], last = v->setting_first[CC_SETTING_GP + 1];
        if ((rc = cc_seen_set_init(&ctx->stored_gp_events, last - first + 16)) < 0)
            return rc;
        for (uint32_t c = 0; c < v->n_codes; c++) {
            if (v->code_system[c] != CC_CODE_SNOMED)
                continue;
            uint64_t h = cc_ingest_gp_event_hash(v->code_text[c],
                                                 strnlen(v->code_text[c], CC_CODE_TEXT_BYTES));
            for (uint64_t k = v->code_first[c]; k < v->code_first[c + 1]; k++) {
                uint32_t r = CC_POSTING_RECORD(v->posting_records[k]);
                if (r < first || r >= last)
                    continue;
                if ((rc = cc_seen_set_add(&ctx->stored_gp_events,
                                          (uint64_t)v->record_person[r] << 32 | v->record_date[r],
                                          h)) < 0)
                    return rc;
            }
        }
    }
    return 0;
}

/* ---- rejects, progress, kill points ------------------------------------------------ */

void cc_ingest_reject(struct cc_ingest_ctx *ctx, struct cc_feed_report *feed, uint64_t line,
                      int reason)
{
    feed->rows_rejected++;
    feed->rejected_by_reason[reason]++;
    if (!ctx->rejects && ctx->rejects_path[0]) {
        /* mode 0600 like everything in the data directory: line numbers
         * and reasons say which rows of which feed were bad */
        int fd = open(ctx->rejects_path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                      0600);
        if (fd >= 0 && fchmod(fd, 0600) == 0)
            ctx->rejects = fdopen(fd, "w");
        if (!ctx->rejects && fd >= 0)
            close(fd);
        if (ctx->rejects)
            fprintf(ctx->rejects, "file,line,reason,description\n");
    }
    if (ctx->rejects) {
        /* The file's base name, the line and the reason: never the row. */
        const char *base = strrchr(feed->path, '/');
        fprintf(ctx->rejects, "%s,%llu,%s,%s\n", base ? base + 1 : feed->path,
                (unsigned long long)line, reason_names[reason], reason_texts[reason]);
    }
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cc_ingest_progress(struct cc_ingest_ctx *ctx, const struct cc_feed_report *feed,
                        const cc_csv *csv, int final)
{
    FILE *out = ctx->opt->progress;
    if (!out)
        return;
    if (!final && (feed->rows_read & 0xffff))
        return;
    double now = now_seconds();
    if (ctx->progress_started == 0)
        ctx->progress_started = now;
    if (!final && now - ctx->progress_last < 0.5)
        return;
    ctx->progress_last = now;
    double started = ctx->progress_started;
    uint64_t total = cc_csv_file_bytes(csv);
    uint64_t done = ctx->ahead && !final ? cc_ingest_ahead_bytes_read(ctx) : cc_csv_bytes_read(csv);
    double elapsed = now - started > 1e-3 ? now - started : 1e-3;
    fprintf(out, "\r%-18s %5.1f%%  %12llu rows  %9.0f rows/s%s", feed_names[feed->kind],
            total ? 100.0 * (double)done / (double)total : 100.0,
            (unsigned long long)feed->rows_read, (double)feed->rows_read / elapsed,
            final ? "\n" : "");
    fflush(out);
    if (final)
        ctx->progress_started = 0;
}

int cc_ingest_open_feed(struct cc_ingest_ctx *ctx, const char *path, cc_csv **out)
{
    int rc = cc_csv_open(path, out);
    if (rc < 0)
        snprintf(ctx->error, sizeof ctx->error, "%s: %s%s%s", path,
                 rc == CC_EINVAL ? "not a regular file" : "cannot read the header row (",
                 rc == CC_EINVAL ? "" : cc_strerror(rc), rc == CC_EINVAL ? "" : ")");
    return rc;
}

int cc_ingest_map_columns(struct cc_ingest_ctx *ctx, cc_csv *csv, const char *path,
                          const char *const *names, size_t n, int *cols)
{
    for (size_t i = 0; i < n; i++) {
        cols[i] = cc_csv_column(csv, names[i]);
        if (cols[i] < 0) {
            snprintf(ctx->error, sizeof ctx->error, "%s: required column '%s' missing", path,
                     names[i]);
            return CC_EPARSE;
        }
    }
    return 0;
}

int cc_ingest_next_row(struct cc_ingest_ctx *ctx, cc_csv *csv, struct cc_feed_report *feed,
                       const struct cc_csv_field **fields, uint64_t *line)
{
    for (;;) {
        int problem = 0;
        int rc = ctx->ahead ? cc_ingest_ahead_next(ctx, fields, line, &problem)
                            : cc_csv_next(csv, fields, line);
        if (rc == 0)
            return 0;
        feed->rows_read++;
        ctx->rows_total++;
        if (ctx->kill_at_rows && ctx->rows_total == ctx->kill_at_rows)
            raise(SIGKILL);
        if (rc == CC_EPARSE) {
            if (!ctx->ahead)
                problem = cc_csv_problem(csv, NULL);
            cc_ingest_reject(ctx, feed, *line,
                             problem == CC_CSV_BAD_QUOTE ? CC_REJECT_MALFORMED_QUOTE
                                                         : CC_REJECT_MALFORMED_ROW);
            continue;
        }
        if (rc < 0)
            return rc;
        cc_ingest_progress(ctx, feed, csv, 0);
        return 1;
    }
}

void cc_ingest_kill_point(struct cc_ingest_ctx *ctx, const char *point)
{
    (void)ctx;
    const char *at = getenv("CC_TEST_KILL_AT");
    if (at && !strcmp(at, point))
        raise(SIGKILL);
}

void cc_ingest_trace_link(struct cc_ingest_ctx *ctx, const struct cc_feed_report *feed,
                          uint64_t line, int outcome, int64_t person)
{
    static const char *const outcomes[] = {"no_match", "1", "2", "ambiguous"};
    if (!ctx->link_trace)
        return;
    const char *base = strrchr(feed->path, '/');
    fprintf(ctx->link_trace, "%s,%llu,%s,", base ? base + 1 : feed->path, (unsigned long long)line,
            outcomes[outcome]);
    if (person >= 0)
        fprintf(ctx->link_trace, "%lld", (long long)person);
    fputc('\n', ctx->link_trace);
}

/* ---- the manifest in state.db ----------------------------------------------------- */

/* Version 2 adds ingest_provenance (cc_ingest.h, "Provenance"). A
 * directory migrated from version 1 gets one "feeds" row for the versions
 * published before, since nobody can tell where their feeds came from. */
#define INGEST_SCHEMA_VERSION 2

static const char *const manifest_schema[] = {
    "CREATE TABLE IF NOT EXISTS ingest_file ("
    " content_hash TEXT PRIMARY KEY,"
    " kind TEXT NOT NULL,"
    " file_name TEXT NOT NULL,"
    " rows_read INTEGER NOT NULL, rows_accepted INTEGER NOT NULL,"
    " rows_rejected INTEGER NOT NULL,"
    " store_version INTEGER NOT NULL,"
    " ingested_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS store_version ("
    " version INTEGER PRIMARY KEY,"
    " file_name TEXT NOT NULL,"
    " n_persons INTEGER NOT NULL, n_records INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL)",
    /* one row per run that read new files; store_version NULL until (or
     * unless) the run publishes; seed, patients and manifest_sha256 only
     * for "generated"; reason only for "feeds" */
    "CREATE TABLE IF NOT EXISTS ingest_provenance ("
    " run INTEGER PRIMARY KEY,"
    " source TEXT NOT NULL CHECK (source IN ('generated', 'feeds')),"
    " store_version INTEGER,"
    " seed INTEGER, patients INTEGER, manifest_sha256 TEXT,"
    " files INTEGER NOT NULL,"
    " reason TEXT NOT NULL,"
    " recorded_at INTEGER NOT NULL)",
    /* "feeds" is for good: no row leaves it, and none goes away */
    "CREATE TRIGGER IF NOT EXISTS ingest_provenance_feeds_stay BEFORE UPDATE OF source"
    " ON ingest_provenance WHEN OLD.source = 'feeds' AND NEW.source <> 'feeds'"
    " BEGIN SELECT RAISE(ABORT, 'a run that read other feeds stays feeds'); END",
    "CREATE TRIGGER IF NOT EXISTS ingest_provenance_kept BEFORE DELETE ON ingest_provenance"
    " BEGIN SELECT RAISE(ABORT, 'provenance rows are kept'); END",
    "INSERT INTO ingest_provenance(source, store_version, files, reason, recorded_at)"
    " SELECT 'feeds', (SELECT MAX(version) FROM store_version), 0,"
    " 'its versions were published before carecount recorded where feeds came from',"
    " CAST(strftime('%s', 'now') AS INTEGER)"
    " WHERE EXISTS (SELECT 1 FROM store_version)"
    " AND NOT EXISTS (SELECT 1 FROM ingest_provenance)",
};

/* Hex BLAKE2b-256 of a file's content: the file's identity in the manifest;
 * and in the same pass, when sha256_hex is not NULL, its hex SHA-256 (what
 * the generator's manifest.json lists, cc_ingest_provenance.c). SHA-256 is
 * OpenSSL's, which uses the CPU's SHA instructions where there are any
 * (about five times libsodium's portable code on this kind of machine). */
static int hash_file(const char *path, char hex[65], char *sha256_hex)
{
    int fd = cc_csv_open_file(path, NULL); /* a FIFO or device would never end */
    if (fd < 0)
        return fd;
    crypto_generichash_state st;
    EVP_MD_CTX *sha = NULL;
    unsigned char digest[32];
    size_t cap = 1 << 20;
    unsigned char *buf = malloc(cap);
    if (!buf || (sha256_hex && (!(sha = EVP_MD_CTX_new()) ||
                                EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1))) {
        EVP_MD_CTX_free(sha);
        free(buf);
        close(fd);
        return CC_ENOMEM;
    }
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    ssize_t n;
    int ok = 1;
    while ((n = read(fd, buf, cap)) > 0) {
        crypto_generichash_update(&st, buf, (unsigned long long)n);
        if (sha)
            ok &= EVP_DigestUpdate(sha, buf, (size_t)n) == 1;
    }
    int read_errno = errno;
    free(buf);
    close(fd);
    if (n < 0) {
        EVP_MD_CTX_free(sha);
        return cc_error_from_errno(read_errno);
    }
    crypto_generichash_final(&st, digest, sizeof digest);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
    if (sha) {
        unsigned int len = 0;
        ok &= EVP_DigestFinal_ex(sha, digest, &len) == 1 && len == sizeof digest;
        EVP_MD_CTX_free(sha);
        if (!ok)
            return CC_ENOMEM; /* OpenSSL fails a digest only when it cannot allocate */
        sodium_bin2hex(sha256_hex, 65, digest, sizeof digest);
    }
    return 0;
}

/* The digests of every file of a run, computed before any is read for its
 * rows. Two threads (this machine's cores) take the files largest first,
 * so hashing 4 GB of feeds costs about half the time of one pass. */
struct file_digest {
    const char *path;
    int want_sha256;
    int rc;
    uint64_t size;
    char hex[65];
    char sha256_hex[65];
};

struct digest_queue {
    struct file_digest *files;
    size_t *order; /* indices into files, largest first */
    size_t n;
    atomic_size_t next;
};

static void *digest_worker(void *arg)
{
    struct digest_queue *q = arg;
    for (size_t i; (i = atomic_fetch_add(&q->next, 1)) < q->n;) {
        struct file_digest *f = &q->files[q->order[i]];
        f->rc = hash_file(f->path, f->hex, f->want_sha256 ? f->sha256_hex : NULL);
    }
    return NULL;
}

static void hash_files(struct file_digest *files, size_t n)
{
    size_t order[CC_INGEST_MAX_FILES];
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        files[i].size = stat(files[i].path, &st) == 0 ? (uint64_t)st.st_size : 0;
        size_t j = i;
        for (; j > 0 && files[order[j - 1]].size < files[i].size; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    struct digest_queue q = {.files = files, .order = order, .n = n};
    atomic_init(&q.next, 0);
    pthread_t helper;
    int started = n > 1 && pthread_create(&helper, NULL, digest_worker, &q) == 0;
    digest_worker(&q);
    if (started)
        pthread_join(helper, NULL);
}

static int manifest_has(sqlite3 *db, const char *hash, int *found)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM ingest_file WHERE content_hash = ?", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return cc_db_error(rc);
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cc_db_error(rc);
}

/* The current store version and its file name (version 0: none yet). */
static int current_version(sqlite3 *db, uint64_t *version, char *file, size_t file_len)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT version, file_name FROM store_version ORDER BY version DESC LIMIT 1", -1, &st,
        NULL);
    if (rc != SQLITE_OK)
        return cc_db_error(rc);
    rc = sqlite3_step(st);
    *version = 0;
    file[0] = '\0';
    if (rc == SQLITE_ROW) {
        *version = (uint64_t)sqlite3_column_int64(st, 0);
        snprintf(file, file_len, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : cc_db_error(rc);
}

int cc_ingest_current_store(const char *data_dir, uint64_t *version, char *path, size_t path_len,
                            char *errbuf, size_t errlen)
{
    sqlite3 *db = NULL;
    char file[256];
    int rc = cc_db_open(data_dir, 0, &db, errbuf, errlen);
    if (rc < 0)
        return rc;
    rc = cc_db_schema_ensure(db, "ingest", INGEST_SCHEMA_VERSION, manifest_schema,
                             sizeof manifest_schema / sizeof *manifest_schema);
    if (rc == 0)
        rc = current_version(db, version, file, sizeof file);
    cc_db_close(db);
    if (rc == 0 && *version == 0) {
        snprintf(errbuf, errlen, "%s: no data has been ingested yet", data_dir);
        return CC_ENOTFOUND;
    }
    if (rc == 0)
        snprintf(path, path_len, "%s/%s", data_dir, file);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------ */

/* Is `name` a snapshot file name, or a snapshot being written (.tmp)? */
static int snapshot_name(const char *name)
{
    size_t n = strlen(name);
    return !strncmp(name, "store-", 6) &&
           ((n > 11 && !strcmp(name + n - 5, ".snap")) ||
            (n > 15 && !strcmp(name + n - 9, ".snap.tmp")));
}

/* Removes every snapshot file except `keep` and `previous` (either may be
 * ""). Called with the writer lock held and after the commit that made
 * `keep` current: no other writer exists, so every other snapshot (and a
 * .tmp left by a crash) is unreferenced. The previous snapshot stays until
 * the next ingest, so a server that read its name from state.db just
 * before the commit can still open it. Housekeeping only: failures are
 * harmless. */
static void remove_old_snapshots(const char *dir, const char *keep, const char *previous)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (!snapshot_name(e->d_name) || !strcmp(e->d_name, keep) ||
            !strcmp(e->d_name, previous))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* A snapshot name no other run can choose: the version and 64 random
 * bits. Under the writer lock the version alone would do; the random part
 * means that even a writer that ignored the lock could not overwrite (or,
 * on its failure path, remove) another's snapshot. */
static void new_snapshot_name(uint64_t version, char *name, size_t len)
{
    uint8_t nonce[8];
    char hex[17];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2hex(hex, sizeof hex, nonce, sizeof nonce);
    snprintf(name, len, "store-%06llu-%s.snap", (unsigned long long)version, hex);
}

/* fsyncs a directory, so that an entry just made in it is durable. */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cc_error_from_errno(errno);
    int rc = fsync(fd) == 0 ? 0 : CC_EIO;
    close(fd);
    return rc;
}

/* Puts the rejects report on disk, whole: flushed and fsync'ed, and its
 * directory (and the data directory, when this run made rejects/) too.
 * Called before the commit that publishes the version the report belongs
 * to, so that a crash just after that commit cannot leave the version with
 * an empty or partial report: its feeds are ingested by then, and never
 * read again to rebuild it. */
static int sync_rejects(struct cc_ingest_ctx *ctx, const char *data_dir, int made_rejects_dir)
{
    if (fflush(ctx->rejects) != 0 || ferror(ctx->rejects))
        return CC_EIO;
    if (fsync(fileno(ctx->rejects)) != 0)
        return CC_EIO;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/rejects", data_dir);
    int rc = fsync_dir(dir);
    if (!rc && made_rejects_dir)
        rc = fsync_dir(data_dir);
    return rc;
}

/* After a failed first ingest: removes what this run created (state.db,
 * its -wal and -shm, the rejects report and its directory, the lock file,
 * the data directory itself if this run made it), so the directory is as
 * it was. Called with the lock held and the database closed. */
static void remove_first_ingest_files(const char *dir, int made_dir, int made_rejects_dir,
                                      const char *rejects_path)
{
    static const char *const names[] = {CC_DB_FILE_NAME, CC_DB_FILE_NAME "-wal",
                                        CC_DB_FILE_NAME "-shm"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    if (rejects_path[0])
        unlink(rejects_path);
    if (made_rejects_dir) {
        snprintf(path, sizeof path, "%s/rejects", dir);
        rmdir(path);
    }
    if (made_dir) {
        /* the lock file goes last, just before its directory: a process
         * waiting for it finds it gone and gives up (cc_datadir_lock) */
        snprintf(path, sizeof path, "%s/%s", dir, CC_DATADIR_LOCK_FILE);
        unlink(path);
        rmdir(dir);
    }
}

static void *registration_scan(void *arg)
{
    cc_ingest_registration_scan(arg);
    return NULL;
}

/* --timings: the time since the run began at the end of each phase. */
static void phase_done(const struct cc_ingest_options *opt, double started, const char *name)
{
    if (opt->timings)
        fprintf(opt->timings, "phase %-22s %8.2f s\n", name, now_seconds() - started);
}

int cc_ingest_run(const struct cc_ingest_options *opt, struct cc_ingest_report *report,
                  char *errbuf, size_t errlen)
{
    struct cc_ingest_ctx ctx = {.postcode_memo = cc_pseudo_memo_empty(),
                                .lsoa_memo = cc_u64_map_empty(sizeof(int32_t)),
                                .ahead_postcode_memo =
                                    cc_u64_map_empty(sizeof(cc_pseudonym) + sizeof(int32_t))};
    cc_store *base = NULL, *store = NULL;
    char hashes[CC_INGEST_MAX_FILES][65];
    const char *by_kind[CC_N_FEED_KINDS] = {NULL};
    struct cc_feed_report *report_by_kind[CC_N_FEED_KINDS] = {NULL};
    char base_file[256], new_file[64], new_path[PATH_MAX], base_path[PATH_MAX];
    uint64_t version = 0;
    cc_pseudonym *type1 = NULL;
    size_t n_type1 = 0;
    int lock_fd = -1, made_dir = 0, made_rejects_dir = 0, first_ingest = 0;
    struct cc_ingest_vouch *vouches = NULL;
    struct file_digest *digests = NULL;
    struct cc_registration_scan scan = {.ctx = &ctx};
    pthread_t scan_thread;
    int scanning = 0; /* scan_thread runs */
    uint64_t base_persons = 0, base_records = 0;
    int rc;

    memset(report, 0, sizeof *report);
    errbuf[0] = '\0';
    double run_started = now_seconds();
    ctx.opt = opt;
    ctx.report = report;
    ctx.today = opt->today ? opt->today : cc_day_today();
    const char *kill = getenv("CC_TEST_KILL_AT");
    if (kill && !strncmp(kill, "rows:", 5))
        ctx.kill_at_rows = strtoull(kill + 5, NULL, 10);
    const char *trace = getenv("CC_TEST_LINK_TRACE");
    if (trace && *trace && (ctx.link_trace = fopen(trace, "w")))
        fputs("feed,line,outcome,person\n", ctx.link_trace);
    const char *one_thread = getenv("CC_TEST_ONE_THREAD");
    ctx.one_thread = one_thread && *one_thread == '1';

    if (opt->n_files > CC_INGEST_MAX_FILES) {
        snprintf(errbuf, errlen, "too many files (at most %d)", CC_INGEST_MAX_FILES);
        return CC_EINVAL;
    }
    /* The directory, then its writer lock, before anything else is
     * written: from here to the end no other ingest or opt-out writer can
     * change this directory. */
    struct stat dir_st;
    if (stat(opt->data_dir, &dir_st) != 0) {
        if (mkdir(opt->data_dir, 0700) != 0 && errno != EEXIST) {
            rc = cc_error_from_errno(errno);
            snprintf(errbuf, errlen, "%s: cannot create the data directory (%s)", opt->data_dir,
                     cc_strerror(rc));
            return rc;
        }
        made_dir = 1;
    }
    if ((rc = cc_datadir_lock(opt->data_dir, opt->wait_for_lock ? CC_DATADIR_WAIT : 0, &lock_fd,
                              errbuf, errlen)) < 0)
        return rc;
    char db_path[PATH_MAX];
    snprintf(db_path, sizeof db_path, "%s/%s", opt->data_dir, CC_DB_FILE_NAME);
    first_ingest = access(db_path, F_OK) != 0;
    if ((rc = cc_datadir_check_permissions(opt->data_dir, errbuf, errlen)) < 0)
        goto out;
    if ((rc = cc_datadir_load_key(opt->data_dir, opt->key_path, &ctx.key, errbuf, errlen)) < 0)
        goto out;
    if ((rc = cc_db_open(opt->data_dir, CC_DB_CREATE, &ctx.db, errbuf, errlen)) < 0)
        goto out;
    uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES];
    cc_pseudo_key_fingerprint(ctx.key, fingerprint);
    if ((rc = cc_datadir_bind_key(ctx.db, fingerprint, 1, errbuf, errlen)) < 0)
        goto out;
    if ((rc = cc_db_schema_ensure(ctx.db, "ingest", INGEST_SCHEMA_VERSION, manifest_schema,
                                  sizeof manifest_schema / sizeof *manifest_schema)) < 0 ||
        (rc = cc_optout_attach(ctx.db, &ctx.optouts)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot prepare state.db (%s)", opt->data_dir,
                 cc_strerror(rc));
        goto out;
    }

    /* Which files are new: every file's digests first (both cores), then
     * each is looked up in the manifest, in the order given. */
    vouches = calloc(opt->n_files ? opt->n_files : 1, sizeof *vouches);
    digests = calloc(opt->n_files ? opt->n_files : 1, sizeof *digests);
    if (!vouches || !digests) {
        rc = CC_ENOMEM;
        snprintf(errbuf, errlen, "%s", cc_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < opt->n_files; i++) {
        int kind = opt->files[i].kind;
        if (kind < 0 || kind >= CC_N_FEED_KINDS) {
            snprintf(errbuf, errlen, "%s: unknown feed kind", opt->files[i].path);
            rc = CC_EINVAL;
            goto out;
        }
        cc_ingest_vouch_lookup(opt->files[i].path, kind, &vouches[i]);
        digests[i].path = opt->files[i].path;
        digests[i].want_sha256 = vouches[i].usable;
    }
    hash_files(digests, opt->n_files);
    for (size_t i = 0; i < opt->n_files; i++) {
        struct cc_feed_report *feed = &report->feeds[report->n_feeds++];
        int kind = opt->files[i].kind;
        feed->kind = kind;
        snprintf(feed->path, sizeof feed->path, "%s", opt->files[i].path);
        const struct cc_ingest_vouch *vouch = &vouches[i];
        const char *sha256 = vouch->usable ? digests[i].sha256_hex : "";
        memcpy(hashes[i], digests[i].hex, sizeof hashes[i]);
        if ((rc = digests[i].rc) < 0) {
            snprintf(errbuf, errlen, "%s: %s%s%s", feed->path,
                     rc == CC_EINVAL ? "not a regular file: only files are read as feeds"
                                     : "cannot read (",
                     rc == CC_EINVAL ? ""
                     : rc == CC_ENOTFOUND ? "no such file"
                                          : cc_strerror(rc),
                     rc == CC_EINVAL ? "" : ")");
            goto out;
        }
        int found = 0;
        if ((rc = manifest_has(ctx.db, hashes[i], &found)) < 0)
            goto out;
        for (size_t j = 0; j < i; j++)
            found |= !strcmp(hashes[j], hashes[i]);
        if (found) {
            feed->skipped_already_ingested = 1;
            continue;
        }
        if (by_kind[kind]) {
            snprintf(errbuf, errlen, "two new files of kind %s in one ingest", feed_names[kind]);
            rc = CC_EINVAL;
            goto out;
        }
        by_kind[kind] = feed->path;
        report_by_kind[kind] = feed;
        cc_ingest_origin_note(&ctx.origin, feed->path, vouch, sha256);
    }

    phase_done(opt, run_started, "digests");
    /* The current store, if any, is the base the new one grows from. */
    if ((rc = current_version(ctx.db, &version, base_file, sizeof base_file)) < 0)
        goto out;
    if (version) {
        snprintf(base_path, sizeof base_path, "%s/%s", opt->data_dir, base_file);
        char why[256] = "";
        if ((rc = cc_datadir_check_file(base_path, errbuf, errlen)) < 0)
            goto out;
        if ((rc = cc_store_load(base_path, CC_STORE_LOAD_ALL, cc_pseudo_store_mac_key(ctx.key),
                                &base, why, sizeof why)) < 0) {
            snprintf(errbuf, errlen, "%s: %s", base_path, why[0] ? why : cc_strerror(rc));
            goto out;
        }
    }
    int anything_new = 0;
    for (int k = 0; k < CC_N_FEED_KINDS; k++)
        anything_new |= by_kind[k] != NULL;
    if (!anything_new) {
        /* every file was ingested before */
        report->store_version = 0;
        if (base) {
            report->n_persons = cc_store_columns(base)->n_persons;
            report->n_records = cc_store_columns(base)->n_records;
        }
        rc = 0;
        goto out;
    }
    /* Where the new files come from, on record before any row of them is
     * read: the opt-out register commits events from the feeds long before
     * the store is published, and a run that fails after that has still
     * taken them in. */
    if ((rc = cc_ingest_origin_record(ctx.db, &ctx.origin)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot record where the feeds came from (%s)", opt->data_dir,
                 cc_strerror(rc));
        goto out;
    }
    report->provenance = ctx.origin.run;
    if (ctx.origin.run.source == CC_PROVENANCE_GENERATED) {
        ctx.nhs_first = ctx.origin.nhs_first;
        ctx.nhs_last = ctx.origin.nhs_last;
    }
    if (base) {
        base_persons = cc_store_columns(base)->n_persons;
        base_records = cc_store_columns(base)->n_records;
        if ((rc = cc_ingest_seen_from_base(&ctx, base, by_kind[CC_FEED_GP_EVENTS] != NULL,
                                           by_kind[CC_FEED_HOSPITAL] || by_kind[CC_FEED_COMMUNITY])) <
            0) {
            snprintf(errbuf, errlen, "indexing the stored records failed (%s)", cc_strerror(rc));
            goto out;
        }
    }
    if ((rc = cc_store_builder_new(base, &ctx.builder)) < 0)
        goto out;
    cc_store_free(base);
    base = NULL;
    phase_done(opt, run_started, "base store");

    snprintf(ctx.rejects_path, sizeof ctx.rejects_path, "%s/rejects", opt->data_dir);
    made_rejects_dir = mkdir(ctx.rejects_path, 0700) == 0;
    snprintf(ctx.rejects_path, sizeof ctx.rejects_path, "%s/rejects/ingest-%06llu.csv",
             opt->data_dir, (unsigned long long)version + 1);
    /* A report under this name is from a run that did not make the version
     * (killed, or it published nothing): this run's report replaces it, and
     * if this run rejects nothing, it must not stay to be taken for this
     * version's. */
    unlink(ctx.rejects_path);

    /* Pass 1 over the registrations reads them on a second thread while
     * the area lookup and the register feed are taken in here. */
    if (by_kind[CC_FEED_GP_REGISTRATIONS]) {
        scan.path = by_kind[CC_FEED_GP_REGISTRATIONS];
        scanning = !ctx.one_thread &&
                   pthread_create(&scan_thread, NULL, registration_scan, &scan) == 0;
    }

    /* Reference data. */
    int have_areas = cc_store_builder_columns(ctx.builder)->n_lsoa > 0;
    if (by_kind[CC_FEED_AREAS] || by_kind[CC_FEED_POSTCODES] || by_kind[CC_FEED_POPULATION]) {
        if (have_areas) {
            snprintf(errbuf, errlen,
                     "the store already has an area lookup; a different one needs a new data "
                     "directory (person areas are indices into it)");
            rc = CC_EUNSUPPORTED;
            goto out;
        }
        if ((rc = cc_ingest_areas(&ctx, by_kind[CC_FEED_AREAS], report_by_kind[CC_FEED_AREAS],
                                  by_kind[CC_FEED_POSTCODES], report_by_kind[CC_FEED_POSTCODES],
                                  by_kind[CC_FEED_POPULATION], report_by_kind[CC_FEED_POPULATION],
                                  errbuf, errlen)) < 0)
            goto out;
        have_areas = 1;
    }
    if (!have_areas) {
        snprintf(errbuf, errlen,
                 "no area lookup: the first ingest needs areas.csv, postcodes.csv and "
                 "population.csv");
        rc = CC_EINVAL;
        goto out;
    }

    phase_done(opt, run_started, "reference data");
    /* Opt-outs first: they decide what may be taken in. */
    if (by_kind[CC_FEED_OPTOUTS] &&
        (rc = cc_ingest_optout_feed(&ctx, by_kind[CC_FEED_OPTOUTS],
                                    report_by_kind[CC_FEED_OPTOUTS])) < 0)
        goto fail_feed;
    phase_done(opt, run_started, "register feed");
    if (by_kind[CC_FEED_GP_REGISTRATIONS]) {
        if (scanning) {
            pthread_join(scan_thread, NULL);
            scanning = 0;
        } else {
            cc_ingest_registration_scan(&scan); /* no second thread: here */
        }
        rc = cc_ingest_registration_optouts(&ctx, &scan, report_by_kind[CC_FEED_GP_REGISTRATIONS]);
        cc_ingest_registration_scan_free(&scan);
        if (rc < 0)
            goto fail_feed;
    }
    phase_done(opt, run_started, "registrations pass 1");
    if ((rc = cc_optout_persons_in_force(ctx.optouts, ctx.today, CC_OPTOUT_MASK_TYPE1, &type1,
                                         &n_type1, NULL)) < 0)
        goto fail_feed;
    if ((rc = cc_seen_set_init(&ctx.type1, n_type1 + 16)) < 0)
        goto out;
    for (size_t i = 0; i < n_type1; i++) {
        uint64_t a, b;
        memcpy(&a, type1[i].bytes, 8);
        memcpy(&b, type1[i].bytes + 8, 8);
        cc_seen_set_add(&ctx.type1, a, b);
        ctx.type1_filter[(a >> 44) / 64] |= 1ULL << ((a >> 44) % 64);
    }

    /* Then registrations (which define persons), GP events, hospital and
     * community records, and last the rows held back for stage 2. */
    static const int patient_kinds[] = {CC_FEED_GP_REGISTRATIONS, CC_FEED_GP_EVENTS,
                                        CC_FEED_HOSPITAL, CC_FEED_COMMUNITY};
    for (size_t i = 0; i < sizeof patient_kinds / sizeof *patient_kinds; i++) {
        int kind = patient_kinds[i];
        if (!by_kind[kind])
            continue;
        switch (kind) {
        case CC_FEED_GP_REGISTRATIONS:
            rc = cc_ingest_registrations(&ctx, by_kind[kind], report_by_kind[kind]);
            break;
        case CC_FEED_GP_EVENTS:
            rc = cc_ingest_gp_events(&ctx, by_kind[kind], report_by_kind[kind]);
            break;
        case CC_FEED_HOSPITAL:
            rc = cc_ingest_hospital(&ctx, by_kind[kind], report_by_kind[kind]);
            break;
        default:
            rc = cc_ingest_community(&ctx, by_kind[kind], report_by_kind[kind]);
            break;
        }
        if (rc < 0)
            goto fail_feed;
    }
    phase_done(opt, run_started, "patient feeds");
    if ((rc = cc_ingest_link_pending(&ctx)) < 0)
        goto fail_feed;

    phase_done(opt, run_started, "stage 2");
    /* A type 1 opt-out registered after a patient's GP data was stored: that
     * data leaves the store in this version. */
    for (size_t i = 0; i < n_type1; i++) {
        int64_t person = cc_store_builder_find_person(ctx.builder, &type1[i]);
        if (person < 0)
            continue;
        if ((rc = cc_store_builder_drop_records(ctx.builder, (uint32_t)person, CC_SETTING_GP)) < 0)
            goto out;
        report->n_persons_removed_gp_records++;
    }

    /* A run that took in nothing (header-only feeds, every row rejected,
     * already stored or unlinked, opt-out events already recorded) and
     * removed nothing publishes no new version: the store would be the
     * same, under a new number. */
    uint64_t accepted = report->n_persons_removed_gp_records;
    for (size_t i = 0; i < report->n_feeds; i++) {
        const struct cc_feed_report *f = &report->feeds[i];
        if (f->kind == CC_FEED_OPTOUTS)
            accepted += f->optout_events_added;
        else if (f->kind == CC_FEED_HOSPITAL || f->kind == CC_FEED_COMMUNITY)
            accepted += f->linked_stage1 + f->linked_stage2;
        else
            accepted += f->rows_accepted;
    }
    if (!accepted) {
        report->store_version = 0;
        report->n_persons = base_persons;
        report->n_records = base_records;
        report->nothing_accepted = 1;
        rc = 0;
        goto out;
    }

    phase_done(opt, run_started, "type 1 removals");
    cc_ingest_kill_point(&ctx, "before-finish");
    rc = cc_store_builder_finish(ctx.builder, &store);
    ctx.builder = NULL;
    if (rc < 0) {
        snprintf(errbuf, errlen, "building the store failed (%s)", cc_strerror(rc));
        goto out;
    }

    phase_done(opt, run_started, "store built");
    /* Write the new snapshot under a new name; it becomes current only when
     * the transaction below commits. A crash before then leaves an
     * unreferenced file, removed by the next successful ingest. */
    new_snapshot_name(version + 1, new_file, sizeof new_file);
    snprintf(new_path, sizeof new_path, "%s/%s", opt->data_dir, new_file);
    if ((rc = cc_store_save(store, new_path, cc_pseudo_store_mac_key(ctx.key))) < 0) {
        snprintf(errbuf, errlen, "%s: cannot write the snapshot (%s)", new_path, cc_strerror(rc));
        goto out;
    }
    phase_done(opt, run_started, "snapshot written");
    if (ctx.rejects && (rc = sync_rejects(&ctx, opt->data_dir, made_rejects_dir)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot write the rejects report (%s)", ctx.rejects_path,
                 cc_strerror(rc));
        unlink(new_path); /* this run's own snapshot, never referenced */
        goto out;
    }
    cc_ingest_kill_point(&ctx, "before-commit");

    const struct cc_store_columns *cols = cc_store_columns(store);
    if ((rc = cc_db_begin(ctx.db)) < 0)
        goto fail_db;
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(ctx.db,
                            "INSERT INTO store_version(version, file_name, n_persons, n_records,"
                            " created_at) VALUES (?, ?, ?, ?, ?)",
                            -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)version + 1);
        sqlite3_bind_text(st, 2, new_file, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, cols->n_persons);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)cols->n_records);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(ctx.db,
                                "INSERT INTO ingest_file(content_hash, kind, file_name, rows_read,"
                                " rows_accepted, rows_rejected, store_version, ingested_at)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < report->n_feeds; i++) {
        const struct cc_feed_report *feed = &report->feeds[i];
        if (feed->skipped_already_ingested)
            continue;
        const char *base_name = strrchr(feed->path, '/');
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, hashes[i], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, feed_names[feed->kind], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, base_name ? base_name + 1 : feed->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)feed->rows_read);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)feed->rows_accepted);
        sqlite3_bind_int64(st, 6, (sqlite3_int64)feed->rows_rejected);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)version + 1);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)time(NULL));
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        rc = cc_db_error(rc);
        cc_db_rollback(ctx.db);
        goto fail_db;
    }
    if ((rc = cc_ingest_origin_finish(ctx.db, &ctx.origin, version + 1, ctx.nhs_outside_range)) <
        0) {
        cc_db_rollback(ctx.db);
        goto fail_db;
    }
    report->provenance = ctx.origin.run;
    /* The commit point: when this returns 0 the new version is current and
     * durable (WAL, synchronous=FULL), with the manifest of its files. */
    if ((rc = cc_db_commit(ctx.db)) < 0)
        goto fail_db;
    phase_done(opt, run_started, "committed");
    cc_ingest_kill_point(&ctx, "after-commit");
    remove_old_snapshots(opt->data_dir, new_file, base_file);
    report->store_version = version + 1;
    report->n_persons = cols->n_persons;
    report->n_records = cols->n_records;
    rc = 0;
    goto out;

fail_db:
    unlink(new_path); /* this run's own snapshot, never referenced */
    snprintf(errbuf, errlen, "%s: recording the new version failed (%s)", opt->data_dir,
             cc_strerror(rc));
    goto out;
fail_feed:
    snprintf(errbuf, errlen, "%s", ctx.error[0] ? ctx.error : cc_strerror(rc));
out:
    if (scanning) {
        atomic_store(&scan.stop, 1);
        pthread_join(scan_thread, NULL);
    }
    cc_ingest_registration_scan_free(&scan);
    if (ctx.nhs_outside_range && ctx.origin.run.source == CC_PROVENANCE_GENERATED) {
        /* no version, but the register may hold opt-outs of those rows */
        if (cc_ingest_origin_finish(ctx.db, &ctx.origin, 0, ctx.nhs_outside_range) == 0)
            report->provenance = ctx.origin.run;
    }
    if (ctx.link_trace)
        fclose(ctx.link_trace);
    free(ctx.earlier);
    if (ctx.rejects) {
        fclose(ctx.rejects);
        ctx.rejects = NULL;
        if (rc < 0)
            unlink(ctx.rejects_path); /* the report of a run that published nothing */
        else
            snprintf(report->rejects_path, sizeof report->rejects_path, "%s", ctx.rejects_path);
    }
    if (rc < 0 && report->optout_events_committed) {
        /* The register is durable and commits before the store is built:
         * say exactly what stays. */
        size_t used = strlen(errbuf);
        snprintf(errbuf + used, errlen - used,
                 "; before the failure %llu opt-out event%s from the feeds %s committed to the "
                 "register and stay%s recorded (the store is unchanged)",
                 (unsigned long long)report->optout_events_committed,
                 report->optout_events_committed == 1 ? "" : "s",
                 report->optout_events_committed == 1 ? "was" : "were",
                 report->optout_events_committed == 1 ? "s" : "");
    }
    free(type1);
    free(vouches);
    free(digests);
    cc_store_free(store);
    cc_store_free(base);
    cc_store_builder_free(ctx.builder);
    cc_seen_set_free(&ctx.type1);
    cc_seen_set_free(&ctx.stored_gp_events);
    cc_seen_set_free(&ctx.stored_feed_identities);
    cc_u64_map_free(&ctx.postcode_memo, 1);
    cc_u64_map_free(&ctx.lsoa_memo, 0);
    cc_u64_map_free(&ctx.ahead_postcode_memo, 1);
    sodium_memzero(ctx.nhs_recent_key, sizeof ctx.nhs_recent_key);
    sodium_memzero(ctx.nhs_recent, sizeof ctx.nhs_recent);
    free(ctx.latest_registration);
    free(ctx.pending);
    free(ctx.pending_codes);
    free(ctx.pending_code_text);
    cc_optout_detach(ctx.optouts);
    cc_db_close(ctx.db);
    cc_pseudo_key_free(ctx.key);
    if (rc < 0 && first_ingest && !report->optout_events_committed)
        remove_first_ingest_files(opt->data_dir, made_dir, made_rejects_dir, ctx.rejects_path);
    cc_datadir_unlock(lock_fd);
    return rc;
}

/* ---- the summary ---------------------------------------------------------------------- */

static double percent(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* Is f a patient-level feed that was read (so it has a linkage line)? */
static int linked_feed(const struct cc_feed_report *f)
{
    return !f->skipped_already_ingested &&
           (f->kind == CC_FEED_GP_REGISTRATIONS || f->kind == CC_FEED_GP_EVENTS ||
            f->kind == CC_FEED_HOSPITAL || f->kind == CC_FEED_COMMUNITY);
}

void cc_ingest_report_print(const struct cc_ingest_report *report, FILE *out)
{
    fprintf(out, "%-18s %12s %12s %10s %10s %13s\n", "feed", "rows read", "accepted", "rejected",
            "duplicate", "stored before");
    for (size_t i = 0; i < report->n_feeds; i++) {
        const struct cc_feed_report *f = &report->feeds[i];
        if (f->skipped_already_ingested) {
            fprintf(out, "%-18s already ingested (same content), skipped\n",
                    feed_names[f->kind]);
            continue;
        }
        fprintf(out, "%-18s %12llu %12llu %10llu %10llu %13llu\n", feed_names[f->kind],
                (unsigned long long)f->rows_read, (unsigned long long)f->rows_accepted,
                (unsigned long long)f->rows_rejected, (unsigned long long)f->rows_duplicate,
                (unsigned long long)f->rows_already_stored);
        for (int r = 0; r < CC_N_REJECT_REASONS; r++)
            if (f->rejected_by_reason[r])
                fprintf(out, "    rejected %-20s %10llu  %s\n", reason_names[r],
                        (unsigned long long)f->rejected_by_reason[r], reason_texts[r]);
        if (f->dropped_type1)
            fprintf(out, "    left out: type 1 opt-out in force %10llu\n",
                    (unsigned long long)f->dropped_type1);
        if (f->optout_events_added)
            fprintf(out, "    opt-out events recorded %18llu\n",
                    (unsigned long long)f->optout_events_added);
    }
    int linkage_rows = 0; /* the table only when a patient-level feed was read */
    for (size_t i = 0; i < report->n_feeds; i++)
        linkage_rows |= linked_feed(&report->feeds[i]);
    if (linkage_rows)
        fprintf(out, "\nlinkage report\n%-18s %12s %12s %12s %12s %12s %8s\n", "source",
                "records", "stage 1", "stage 2", "no match", "ambiguous", "linked");
    for (size_t i = 0; i < report->n_feeds; i++) {
        const struct cc_feed_report *f = &report->feeds[i];
        if (!linked_feed(f))
            continue;
        uint64_t linked = f->linked_stage1 + f->linked_stage2;
        uint64_t total = linked + f->unlinked_no_match + f->unlinked_ambiguous;
        fprintf(out, "%-18s %12llu %12llu %12llu %12llu %12llu %7.2f%%\n", feed_names[f->kind],
                (unsigned long long)total, (unsigned long long)f->linked_stage1,
                (unsigned long long)f->linked_stage2, (unsigned long long)f->unlinked_no_match,
                (unsigned long long)f->unlinked_ambiguous, percent(linked, total));
    }
    if (report->n_persons_removed_gp_records)
        fprintf(out, "stored persons with a type 1 opt-out in force (GP-sourced records removed): %llu\n",
                (unsigned long long)report->n_persons_removed_gp_records);
    if (report->store_version)
        fprintf(out, "\nstore version %llu: %llu persons, %llu records\n",
                (unsigned long long)report->store_version, (unsigned long long)report->n_persons,
                (unsigned long long)report->n_records);
    else if (report->nothing_accepted)
        fprintf(out,
                "\nno row was accepted: no new version; the store is unchanged (%llu persons, "
                "%llu records)\n",
                (unsigned long long)report->n_persons, (unsigned long long)report->n_records);
    else
        fprintf(out, "\nnothing new: the store is unchanged (%llu persons, %llu records)\n",
                (unsigned long long)report->n_persons, (unsigned long long)report->n_records);
    if (report->rejects_path[0])
        fprintf(out, "rejected rows (file, line, reason): %s\n", report->rejects_path);
    const struct cc_provenance *p = &report->provenance;
    if (p->source == CC_PROVENANCE_GENERATED)
        fprintf(out, "provenance: generated (carecount generate, seed %llu, %lld patients)\n",
                (unsigned long long)p->seed, (long long)p->patients);
    else if (p->source == CC_PROVENANCE_FEEDS)
        fprintf(out, "provenance: feeds (not carecount generate output: %s)\n", p->reason);
}
