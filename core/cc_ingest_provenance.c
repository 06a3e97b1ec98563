/*
 * cc_ingest_provenance.c: where an ingest's feeds came from (see cc_ingest.h,
 * "Provenance"): reads the manifest.json beside each new feed file, decides
 * whether the run's files are `carecount generate` output, records that in
 * state.db, and answers what a data directory holds.
 *
 * The test is the manifest's SHA-256 digest of each file: a manifest says
 * nothing of files it does not list by digest, so one copied or left beside
 * other feeds vouches for none of them.
 *
 * Must never: put a feed's content, or anything read from it, in a reason
 * or the table; a reason holds a file's base name and why.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest_internal.h"

/* The generator's manifest is a few kilobytes; anything far larger is not
 * one, and is not read into memory. */
#define MANIFEST_MAX_BYTES (1 << 20)

const char *cc_provenance_name(int source)
{
    switch (source) {
    case CC_PROVENANCE_GENERATED:
        return "generated";
    case CC_PROVENANCE_FEEDS:
        return "feeds";
    default:
        return "none";
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Reads a regular file of at most MANIFEST_MAX_BYTES whole (malloc'd, the
 * caller frees). 0, CC_ENOTFOUND, CC_EINVAL (not a regular file, or too
 * large) or another CC_E* code. */
static int read_small_file(const char *path, unsigned char **out, size_t *len)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ELOOP ? CC_EINVAL : cc_error_from_errno(errno);
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = cc_error_from_errno(errno);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > MANIFEST_MAX_BYTES) {
        rc = CC_EINVAL;
        goto out;
    }
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = CC_ENOMEM;
        goto out;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    if (n != (size_t)st.st_size) {
        free(buf);
        rc = CC_EIO;
        goto out;
    }
    *out = buf;
    *len = n;
out:
    close(fd);
    return rc;
}

/* A 10-digit NHS number in the unissued 9 range, as a manifest names it. */
static int generator_nhs_number(const char *text)
{
    if (!text || strlen(text) != 10 || text[0] != '9')
        return 0;
    for (int i = 0; i < 10; i++)
        if (text[i] < '0' || text[i] > '9')
            return 0;
    return 1;
}

static int lower_hex_64(const char *text)
{
    if (!text || strlen(text) != 64)
        return 0;
    for (int i = 0; i < 64; i++)
        if (!strchr("0123456789abcdef", text[i]))
            return 0;
    return 1;
}

void cc_ingest_vouch_lookup(const char *path, int kind, struct cc_ingest_vouch *v)
{
    memset(v, 0, sizeof *v);
    const char *name = base_name(path);
    if (strcmp(name, cc_feed_kind_file(kind)) != 0) {
        snprintf(v->reason, sizeof v->reason,
                 "%.80s: not the name carecount generate gives a %s feed", name,
                 cc_feed_kind_name(kind));
        return;
    }
    char manifest_path[PATH_MAX];
    int dir_len = (int)(name - path);
    if (dir_len == 0)
        snprintf(manifest_path, sizeof manifest_path, "manifest.json");
    else if (snprintf(manifest_path, sizeof manifest_path, "%.*smanifest.json", dir_len, path) >=
             (int)sizeof manifest_path) {
        snprintf(v->reason, sizeof v->reason, "%.80s: path too long", name);
        return;
    }
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc = read_small_file(manifest_path, &bytes, &len);
    if (rc == CC_ENOTFOUND) {
        snprintf(v->reason, sizeof v->reason, "%.80s: no manifest.json beside it", name);
        return;
    }
    if (rc < 0) {
        snprintf(v->reason, sizeof v->reason, "%.80s: the manifest.json beside it cannot be read (%s)",
                 name, rc == CC_EINVAL ? "not a regular file of at most 1 MiB" : cc_strerror(rc));
        return;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, bytes, len);
    sodium_bin2hex(v->manifest_sha256, sizeof v->manifest_sha256, digest, sizeof digest);

    json_error_t error;
    json_t *root = json_loadb((const char *)bytes, len, 0, &error);
    free(bytes);
    json_t *range = json_object_get(root, "nhs_number_range");
    json_t *seed = json_object_get(root, "seed"), *patients = json_object_get(root, "patients");
    const char *generator = json_string_value(json_object_get(root, "generator"));
    const char *first = json_string_value(json_object_get(range, "first"));
    const char *last = json_string_value(json_object_get(range, "last"));
    json_t *digests = json_object_get(root, "sha256");
    if (!root || !generator || strcmp(generator, "carecount generate") != 0 ||
        !json_is_integer(seed) || !json_is_integer(patients) || !generator_nhs_number(first) ||
        !generator_nhs_number(last) || strcmp(first, last) > 0 || !json_is_object(digests)) {
        snprintf(v->reason, sizeof v->reason,
                 "%.80s: the manifest.json beside it is not one carecount generate writes, with "
                 "file digests",
                 name);
        json_decref(root);
        return;
    }
    const char *expected = json_string_value(json_object_get(digests, name));
    if (!lower_hex_64(expected)) {
        snprintf(v->reason, sizeof v->reason,
                 "%.80s: the manifest.json beside it lists no digest for it", name);
        json_decref(root);
        return;
    }
    memcpy(v->expected_sha256, expected, 65);
    v->seed = (uint64_t)json_integer_value(seed);
    v->patients = (int64_t)json_integer_value(patients);
    memcpy(v->nhs_first, first, 11);
    memcpy(v->nhs_last, last, 11);
    v->usable = 1;
    json_decref(root);
}

void cc_ingest_origin_note(struct cc_ingest_origin *o, const char *path,
                           const struct cc_ingest_vouch *v, const char *sha256_hex)
{
    struct cc_provenance *run = &o->run;
    o->n_files++;
    if (o->other_feeds)
        return; /* the first reason stands */
    const char *name = base_name(path);
    const char *why = NULL;
    char text[sizeof run->reason];
    if (!v->usable)
        why = v->reason;
    else if (strcmp(sha256_hex, v->expected_sha256) != 0) {
        snprintf(text, sizeof text,
                 "%.80s: its content differs from the digest the manifest.json beside it gives",
                 name);
        why = text;
    } else if (o->n_files > 1 && strcmp(run->manifest_sha256, v->manifest_sha256) != 0) {
        snprintf(text, sizeof text,
                 "%.80s: from another generated data set than the other new files of this ingest",
                 name);
        why = text;
    }
    if (why) {
        o->other_feeds = 1;
        memset(run, 0, sizeof *run);
        run->source = CC_PROVENANCE_FEEDS;
        snprintf(run->reason, sizeof run->reason, "%s", why);
        o->nhs_first[0] = o->nhs_last[0] = '\0';
        return;
    }
    run->source = CC_PROVENANCE_GENERATED;
    run->seed = v->seed;
    run->patients = v->patients;
    memcpy(run->manifest_sha256, v->manifest_sha256, sizeof run->manifest_sha256);
    memcpy(o->nhs_first, v->nhs_first, sizeof o->nhs_first);
    memcpy(o->nhs_last, v->nhs_last, sizeof o->nhs_last);
}

int cc_ingest_origin_record(sqlite3 *db, struct cc_ingest_origin *o)
{
    if (o->n_files == 0)
        return 0;
    const struct cc_provenance *run = &o->run;
    int generated = run->source == CC_PROVENANCE_GENERATED;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "INSERT INTO ingest_provenance(source, store_version, seed, patients,"
                                " manifest_sha256, files, reason, recorded_at)"
                                " VALUES (?, NULL, ?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, cc_provenance_name(run->source), -1, SQLITE_STATIC);
        if (generated) {
            sqlite3_bind_int64(st, 2, (sqlite3_int64)run->seed);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)run->patients);
            sqlite3_bind_text(st, 4, run->manifest_sha256, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 5, (sqlite3_int64)o->n_files);
        sqlite3_bind_text(st, 6, generated ? "" : run->reason, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return cc_db_error(rc);
    o->row = (int64_t)sqlite3_last_insert_rowid(db);
    return 0;
}

int cc_ingest_origin_finish(sqlite3 *db, struct cc_ingest_origin *o, uint64_t version,
                            uint64_t n_outside)
{
    if (o->row == 0)
        return 0;
    /* o->run changes only once the row has: a caller whose transaction
     * rolls back may try again */
    struct cc_provenance updated = o->run, *run = &updated;
    if (run->source == CC_PROVENANCE_GENERATED && n_outside > 0) {
        memset(run, 0, sizeof *run);
        run->source = CC_PROVENANCE_FEEDS;
        snprintf(run->reason, sizeof run->reason,
                 "%llu valid NHS number%s outside the range its manifest gives (%s - %s)",
                 (unsigned long long)n_outside, n_outside == 1 ? "" : "s", o->nhs_first,
                 o->nhs_last);
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "UPDATE ingest_provenance SET store_version = ?, source = ?,"
                                " reason = ? WHERE run = ?",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        if (version)
            sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
        sqlite3_bind_text(st, 2, cc_provenance_name(run->source), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, run->source == CC_PROVENANCE_GENERATED ? "" : run->reason, -1,
                          SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)o->row);
        rc = sqlite3_step(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return cc_db_error(rc);
    o->run = updated;
    return 0;
}

/* ---- what a data directory holds ------------------------------------------------- */

/* The first column of the first row of sql as an integer (0 if no row). */
static int query_int64(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    *out = 0;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE || rc == SQLITE_OK ? 0 : cc_db_error(rc);
}

int cc_ingest_provenance(sqlite3 *db, struct cc_provenance *out)
{
    memset(out, 0, sizeof *out);
    int schema = 0;
    int64_t n_versions = 0, n_runs = 0, n_manifests = 0;
    int rc = cc_db_schema_version(db, "ingest", &schema);
    if (rc < 0 || schema == 0)
        return rc; /* never ingested: NONE */
    if ((rc = query_int64(db, "SELECT COUNT(*) FROM store_version", &n_versions)) < 0)
        return rc;
    if (schema < 2) {
        if (n_versions > 0) {
            out->source = CC_PROVENANCE_FEEDS;
            snprintf(out->reason, sizeof out->reason,
                     "its versions were published before carecount recorded where feeds came from");
        }
        return 0;
    }
    if ((rc = query_int64(db, "SELECT COUNT(*) FROM ingest_provenance", &n_runs)) < 0)
        return rc;
    out->n_runs = (uint64_t)n_runs;

    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db,
                            "SELECT reason FROM ingest_provenance WHERE source <> 'generated'"
                            " ORDER BY run LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *reason = sqlite3_column_text(st, 0);
        out->source = CC_PROVENANCE_FEEDS;
        snprintf(out->reason, sizeof out->reason, "%s", reason ? (const char *)reason : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cc_db_error(rc);
    if (out->source == CC_PROVENANCE_FEEDS || n_versions == 0)
        return 0;

    rc = sqlite3_prepare_v2(db,
                            "SELECT seed, patients, manifest_sha256 FROM ingest_provenance"
                            " WHERE store_version IS NOT NULL ORDER BY run DESC LIMIT 1",
                            -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *sha = sqlite3_column_text(st, 2);
        out->source = CC_PROVENANCE_GENERATED;
        out->seed = (uint64_t)sqlite3_column_int64(st, 0);
        out->patients = sqlite3_column_int64(st, 1);
        snprintf(out->manifest_sha256, sizeof out->manifest_sha256, "%s",
                 sha ? (const char *)sha : "");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return cc_db_error(rc);
    if (out->source != CC_PROVENANCE_GENERATED) {
        /* versions, but no run that published one: not from this code */
        out->source = CC_PROVENANCE_FEEDS;
        snprintf(out->reason, sizeof out->reason,
                 "a published version has no provenance recorded");
        return 0;
    }
    if ((rc = query_int64(db,
                          "SELECT COUNT(DISTINCT manifest_sha256) FROM ingest_provenance"
                          " WHERE store_version IS NOT NULL",
                          &n_manifests)) < 0)
        return rc;
    out->n_manifests = (uint64_t)n_manifests;
    return 0;
}
