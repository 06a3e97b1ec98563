/*
 * cc_store_file.c: the snapshot file of a store (format in docs/store-format.md).
 *
 * A snapshot is a fixed header (magic, version, counts, key id), a table
 * with one entry per section (id, offset, length, checksum), a checksum of
 * header and table, then each section's bytes at an 8-byte aligned offset
 * with zero padding between. Every checksum is BLAKE2b-256 keyed with the
 * store key (a subkey of the data directory's pseudonymisation key), so only
 * a holder of the key can write a snapshot that loads: a file swapped in by
 * someone without it is refused, even if its content is a valid store. The
 * key id (a keyed hash of a fixed string) tells "another key" apart from
 * "damaged". Every byte of the file is
 * covered: by the header checksum, by a section checksum, or by the rule
 * that padding is zero. A section is read and hashed in chunks, so its bytes
 * are hashed while still in the cache.
 *
 * Must never: return a store whose checksums or invariants failed; write
 * anywhere but path.tmp before the rename; leave path.tmp behind on failure;
 * put the contents of a row into an error message.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "cc_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_store_internal.h"

#define STORE_MAGIC "CCSTORE\0"
/* 2: roles packed into the postings; 3: feed identities; 4: keyed checksums;
 * 5: records sorted by (setting, year, person, date) */
#define STORE_FORMAT_VERSION 5
#define STORE_CHECKSUM_BYTES 32
#define STORE_FIXED_HEADER_BYTES 152
#define STORE_KEY_ID_BYTES 16
#define STORE_TABLE_ENTRY_BYTES (4 + 4 + 8 + 8 + STORE_CHECKSUM_BYTES)
#define STORE_HEADER_BYTES                                                     \
    (STORE_FIXED_HEADER_BYTES + STORE_N_SECTIONS * STORE_TABLE_ENTRY_BYTES +   \
     STORE_CHECKSUM_BYTES)
#define STORE_IO_CHUNK_BYTES (8u << 20)

struct table_entry {
    uint32_t id;
    uint64_t offset, length;
    uint8_t checksum[STORE_CHECKSUM_BYTES];
};

static uint64_t align8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* ---- little-endian encoding of the header ----------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* The offsets of each section for these counts; returns the file size or
 * UINT64_MAX on overflow. */
static uint64_t layout(const struct store_counts *c, struct table_entry *table)
{
    uint64_t at = align8(STORE_HEADER_BYTES);
    for (int s = 0; s < STORE_N_SECTIONS; s++) {
        uint64_t bytes = store_section_bytes(c, s);
        if (bytes == UINT64_MAX || at > UINT64_MAX / 2 - bytes)
            return UINT64_MAX;
        table[s].id = (uint32_t)s;
        table[s].offset = at;
        table[s].length = bytes;
        at += bytes;
        if (s + 1 < STORE_N_SECTIONS)
            at = align8(at);
    }
    return at;
}

/* The key id: BLAKE2b-128(store key; "carecount-store-key-id"). */
static void key_id(const uint8_t key[CC_STORE_KEY_BYTES], uint8_t id[STORE_KEY_ID_BYTES])
{
    static const char tag[] = "carecount-store-key-id";
    crypto_generichash(id, STORE_KEY_ID_BYTES, (const unsigned char *)tag, sizeof tag, key,
                       CC_STORE_KEY_BYTES);
}

static void encode_header(uint8_t *h, const struct store_counts *c, uint64_t file_bytes,
                          const struct table_entry *table, const uint8_t key[CC_STORE_KEY_BYTES])
{
    memset(h, 0, STORE_HEADER_BYTES);
    memcpy(h, STORE_MAGIC, 8);
    put32(h + 8, STORE_FORMAT_VERSION);
    put32(h + 12, STORE_HEADER_BYTES);
    put32(h + 16, STORE_N_SECTIONS);
    put32(h + 20, 0);
    put64(h + 24, file_bytes);
    put32(h + 32, c->n_lsoa);
    put32(h + 36, c->n_lad);
    put32(h + 40, c->n_icb);
    put32(h + 44, c->n_region);
    put32(h + 48, c->n_postcodes);
    put32(h + 52, c->n_practices);
    put32(h + 56, c->n_persons);
    put32(h + 60, c->n_codes);
    put64(h + 64, c->n_records);
    put64(h + 72, c->n_postings);
    put64(h + 80, c->name_blob_bytes);
    for (int i = 0; i < 5; i++)
        put64(h + 88 + 8 * i, c->setting_first[i]);
    put64(h + 128, c->n_feed_identities);
    key_id(key, h + 136);
    for (int s = 0; s < STORE_N_SECTIONS; s++) {
        uint8_t *e = h + STORE_FIXED_HEADER_BYTES + s * STORE_TABLE_ENTRY_BYTES;
        put32(e, table[s].id);
        put32(e + 4, 0);
        put64(e + 8, table[s].offset);
        put64(e + 16, table[s].length);
        memcpy(e + 24, table[s].checksum, STORE_CHECKSUM_BYTES);
    }
    size_t covered = STORE_HEADER_BYTES - STORE_CHECKSUM_BYTES;
    crypto_generichash(h + covered, STORE_CHECKSUM_BYTES, h, covered, key, CC_STORE_KEY_BYTES);
}

static void decode_header(const uint8_t *h, struct store_counts *c, uint64_t *file_bytes,
                          struct table_entry *table)
{
    *file_bytes = get64(h + 24);
    c->n_lsoa = get32(h + 32);
    c->n_lad = get32(h + 36);
    c->n_icb = get32(h + 40);
    c->n_region = get32(h + 44);
    c->n_postcodes = get32(h + 48);
    c->n_practices = get32(h + 52);
    c->n_persons = get32(h + 56);
    c->n_codes = get32(h + 60);
    c->n_records = get64(h + 64);
    c->n_postings = get64(h + 72);
    c->name_blob_bytes = get64(h + 80);
    for (int i = 0; i < 5; i++)
        c->setting_first[i] = get64(h + 88 + 8 * i);
    c->n_feed_identities = get64(h + 128);
    for (int s = 0; s < STORE_N_SECTIONS; s++) {
        const uint8_t *e = h + STORE_FIXED_HEADER_BYTES + s * STORE_TABLE_ENTRY_BYTES;
        table[s].id = get32(e);
        table[s].offset = get64(e + 8);
        table[s].length = get64(e + 16);
        memcpy(table[s].checksum, e + 24, STORE_CHECKSUM_BYTES);
    }
}

/* ---- plain I/O -------------------------------------------------------- */

static int write_all_at(int fd, const void *data, uint64_t n, uint64_t offset)
{
    const uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t done = pwrite(fd, p, chunk, (off_t)offset);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return CC_EIO;
        p += done;
        n -= (uint64_t)done;
        offset += (uint64_t)done;
    }
    return 0;
}

/* Reads exactly n bytes at offset: 0, CC_EIO, or 1 if the file ended. */
static int read_all_at(int fd, void *data, uint64_t n, uint64_t offset)
{
    uint8_t *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
        ssize_t done = pread(fd, p, chunk, (off_t)offset);
        if (done < 0 && errno == EINTR)
            continue;
        if (done < 0)
            return CC_EIO;
        if (done == 0)
            return 1;
        p += done;
        n -= (uint64_t)done;
        offset += (uint64_t)done;
    }
    return 0;
}

/* ---- save ------------------------------------------------------------- */

/* fsyncs the directory that holds path, so a rename inside it is durable. */
static int sync_parent_directory(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return CC_ENOMEM;
    char *slash = strrchr(dir, '/');
    const char *name = ".";
    if (slash == dir)
        name = "/";
    else if (slash) {
        *slash = '\0';
        name = dir;
    }
    int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return CC_EIO;
    int rc = fsync(fd) == 0 ? 0 : CC_EIO;
    close(fd);
    return rc;
}

/* Shares the sections not in skip between two threads, largest first, to
 * whichever has fewer bytes so far: mine[t][i] says thread t has section i.
 * Hashing costs about as much as the I/O, so both load and save split it. */
static void share_sections(const struct table_entry *table, const uint8_t skip[STORE_N_SECTIONS],
                           uint8_t mine[2][STORE_N_SECTIONS])
{
    uint64_t assigned[2] = {0, 0};
    uint8_t taken[STORE_N_SECTIONS];
    memcpy(taken, skip, sizeof taken);
    memset(mine, 0, 2 * STORE_N_SECTIONS);
    for (;;) {
        int largest = -1;
        for (int i = 0; i < STORE_N_SECTIONS; i++)
            if (!taken[i] && (largest < 0 || table[i].length > table[largest].length))
                largest = i;
        if (largest < 0)
            break;
        taken[largest] = 1;
        int to = assigned[1] < assigned[0];
        mine[to][largest] = 1;
        assigned[to] += table[largest].length;
    }
}

/* The sections one thread of a save writes, each with the zero padding
 * before it and hashed chunk by chunk just before the chunk is written; the
 * writeback of each is started at once, so that the fsync after finds most
 * of the file on its way to the disk. */
struct write_job {
    int fd;
    const uint8_t *key;
    struct table_entry *table;
    const cc_store *store;
    uint8_t mine[STORE_N_SECTIONS];
    int rc;
};

static void *write_job_run(void *arg)
{
    static const uint8_t zeros[8] = {0};
    struct write_job *job = arg;
    struct table_entry *table = job->table;
    for (int s = 0; s < STORE_N_SECTIONS && !job->rc; s++) {
        if (!job->mine[s])
            continue;
        uint64_t gap_from = s ? table[s - 1].offset + table[s - 1].length : STORE_HEADER_BYTES;
        if (table[s].offset > gap_from &&
            (job->rc = write_all_at(job->fd, zeros, table[s].offset - gap_from, gap_from)))
            break;
        crypto_generichash_state state;
        crypto_generichash_init(&state, job->key, CC_STORE_KEY_BYTES, STORE_CHECKSUM_BYTES);
        const uint8_t *data = job->store->section[s];
        for (uint64_t done = 0; done < table[s].length; done += STORE_IO_CHUNK_BYTES) {
            uint64_t chunk = table[s].length - done;
            if (chunk > STORE_IO_CHUNK_BYTES)
                chunk = STORE_IO_CHUNK_BYTES;
            crypto_generichash_update(&state, data + done, chunk);
            if ((job->rc = write_all_at(job->fd, data + done, chunk, table[s].offset + done)))
                break;
        }
        crypto_generichash_final(&state, table[s].checksum, STORE_CHECKSUM_BYTES);
        /* a hint only (the fsync is what makes the file durable) */
        (void)sync_file_range(job->fd, (off_t)gap_from,
                              (off_t)(table[s].offset + table[s].length - gap_from),
                              SYNC_FILE_RANGE_WRITE);
    }
    return NULL;
}

int cc_store_save(const cc_store *store, const char *path, const uint8_t key[CC_STORE_KEY_BYTES])
{
    struct table_entry table[STORE_N_SECTIONS];
    uint8_t header[STORE_HEADER_BYTES];
    char *tmp_path = NULL;
    int fd = -1;
    int rc = CC_ENOMEM;

    /* a store loaded without the postcode pseudonyms cannot be saved: the
     * snapshot would lose a column that linkage needs */
    if (!store->view.person_postcode_pseudonym || !store->view.feed_identity)
        return CC_EINVAL;
    if (sodium_init() < 0)
        return CC_ECRYPTO;
    size_t path_len = strlen(path);
    if (!(tmp_path = malloc(path_len + 5)))
        goto fail;
    memcpy(tmp_path, path, path_len);
    memcpy(tmp_path + path_len, ".tmp", 5);

    uint64_t file_bytes = layout(&store->counts, table);
    rc = CC_EIO;
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto fail;
    /* sections first (shared between this thread and one more), then the
     * header that holds their checksums */
    struct write_job jobs[2];
    uint8_t none[STORE_N_SECTIONS] = {0}, mine[2][STORE_N_SECTIONS];
    share_sections(table, none, mine);
    for (int j = 0; j < 2; j++) {
        jobs[j] = (struct write_job){.fd = fd, .key = key, .table = table, .store = store};
        memcpy(jobs[j].mine, mine[j], sizeof jobs[j].mine);
    }
    store_run_pair(write_job_run, &jobs[0], &jobs[1]);
    if ((rc = jobs[0].rc) || (rc = jobs[1].rc))
        goto fail;
    encode_header(header, &store->counts, file_bytes, table, key);
    if ((rc = write_all_at(fd, header, STORE_HEADER_BYTES, 0)))
        goto fail;

    /*
     * Durability. (1) fsync the new file before the rename: otherwise the
     * rename could reach the disk before the data, and a crash would leave
     * path naming a file of zeros or holes. (2) rename() replaces path
     * atomically: any reader, and the file system after a crash, sees either
     * the old snapshot or the new one, never a mix. (3) fsync the directory:
     * the rename is a change to the directory, and until that is on disk a
     * crash may bring the old snapshot back; the caller may only report the
     * new data as committed after this returns 0. A crash before (3) leaves
     * path.tmp behind, which the next save truncates and load never reads.
     */
    rc = CC_EIO;
    if (fsync(fd) != 0)
        goto fail;
    int close_rc = close(fd);
    fd = -1;
    if (close_rc != 0)
        goto fail;
    if (rename(tmp_path, path) != 0)
        goto fail;
    free(tmp_path);
    return sync_parent_directory(path);
fail:
    if (fd >= 0)
        close(fd);
    if (tmp_path) {
        unlink(tmp_path);
        free(tmp_path);
    }
    return rc;
}

/* ---- load ------------------------------------------------------------- */

/* Reads one section into a new buffer, hashing as it goes. */
static int read_section(int fd, const struct table_entry *e, int section,
                        const uint8_t key[CC_STORE_KEY_BYTES], void **out, char *errbuf,
                        size_t errlen)
{
    uint8_t *data = store_alloc(e->length); /* every byte is read into */
    if (!data)
        return CC_ENOMEM;
    crypto_generichash_state state;
    crypto_generichash_init(&state, key, CC_STORE_KEY_BYTES, STORE_CHECKSUM_BYTES);
    for (uint64_t done = 0; done < e->length; done += STORE_IO_CHUNK_BYTES) {
        uint64_t chunk = e->length - done;
        if (chunk > STORE_IO_CHUNK_BYTES)
            chunk = STORE_IO_CHUNK_BYTES;
        int rc = read_all_at(fd, data + done, chunk, e->offset + done);
        if (rc) {
            free(data);
            return rc < 0 ? rc
                          : store_corrupt(errbuf, errlen, "file truncated inside section '%s'",
                                          store_section_name(section));
        }
        crypto_generichash_update(&state, data + done, chunk);
    }
    uint8_t sum[STORE_CHECKSUM_BYTES];
    crypto_generichash_final(&state, sum, STORE_CHECKSUM_BYTES);
    if (sodium_memcmp(sum, e->checksum, STORE_CHECKSUM_BYTES) != 0) {
        free(data);
        return store_corrupt(errbuf, errlen, "section '%s' checksum mismatch",
                             store_section_name(section));
    }
    *out = data;
    return 0;
}

/* The sections one thread reads, and the first failure it met. */
struct section_job {
    int fd;
    const uint8_t *key;
    const struct table_entry *table;
    struct cc_store *store;
    uint8_t mine[STORE_N_SECTIONS];
    int rc, failed_section;
    char reason[160];
};

static void *run_section_job(void *arg)
{
    struct section_job *job = arg;
    for (int i = 0; i < STORE_N_SECTIONS; i++) {
        if (!job->mine[i])
            continue;
        int rc = read_section(job->fd, &job->table[i], i, job->key, &job->store->section[i],
                              job->reason, sizeof job->reason);
        if (rc) {
            job->rc = rc;
            job->failed_section = i;
            return NULL;
        }
        job->store->section_alloc_bytes[i] = job->table[i].length ? (size_t)job->table[i].length
                                                                  : 1;
    }
    return NULL;
}

/* Reads and checks every section the flags ask for, shared between this
 * thread and one more (share_sections): each thread writes only its own
 * entries of store->section. If the thread cannot be started
 * the work is done here. When several sections fail, the one with the
 * lowest id is reported, so the reason does not depend on timing. */
static int read_sections(int fd, const struct table_entry *table, struct cc_store *store,
                         int flags, const uint8_t key[CC_STORE_KEY_BYTES], char *errbuf,
                         size_t errlen)
{
    struct section_job jobs[2];
    memset(jobs, 0, sizeof jobs);
    uint8_t skip[STORE_N_SECTIONS] = {0}, mine[2][STORE_N_SECTIONS];
    if (flags & CC_STORE_QUERY_ONLY) {
        skip[STORE_SECTION_PERSON_POSTCODE_PSEUDONYM] = 1;
        skip[STORE_SECTION_FEED_IDENTITY] = 1;
    }
    share_sections(table, skip, mine);
    for (int j = 0; j < 2; j++) {
        memcpy(jobs[j].mine, mine[j], sizeof jobs[j].mine);
        jobs[j].fd = fd;
        jobs[j].key = key;
        jobs[j].table = table;
        jobs[j].store = store;
        jobs[j].failed_section = STORE_N_SECTIONS;
    }
    store_run_pair(run_section_job, &jobs[0], &jobs[1]);
    struct section_job *failed = NULL;
    for (int j = 0; j < 2; j++)
        if (jobs[j].rc && (!failed || jobs[j].failed_section < failed->failed_section))
            failed = &jobs[j];
    if (!failed)
        return 0;
    if (errbuf && errlen)
        snprintf(errbuf, errlen, "%s", failed->reason);
    return failed->rc;
}

int cc_store_load(const char *path, int flags, const uint8_t key[CC_STORE_KEY_BYTES],
                  cc_store **out, char *errbuf, size_t errlen)
{
    struct table_entry table[STORE_N_SECTIONS], expected[STORE_N_SECTIONS];
    uint8_t header[STORE_HEADER_BYTES];
    struct cc_store *s = NULL;
    int rc;

    *out = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (sodium_init() < 0)
        return CC_ECRYPTO;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int missing = errno == ENOENT;
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "%s: cannot open: %s", path, strerror(errno));
        return missing ? CC_ENOTFOUND : CC_EIO;
    }
    struct stat st;
    rc = CC_EIO;
    if (fstat(fd, &st) != 0)
        goto fail;
    uint64_t size = (uint64_t)st.st_size;

    if (size >= 8) {
        if ((rc = read_all_at(fd, header, 8, 0)) < 0)
            goto fail;
        if (memcmp(header, STORE_MAGIC, 8) != 0) {
            rc = store_corrupt(errbuf, errlen, "%s: not a carecount store (wrong magic)", path);
            goto fail;
        }
    }
    if (size < STORE_HEADER_BYTES) {
        rc = store_corrupt(errbuf, errlen,
                           "%s: file truncated: expected at least %d header bytes, found %llu",
                           path, STORE_HEADER_BYTES, (unsigned long long)size);
        goto fail;
    }
    if ((rc = read_all_at(fd, header, STORE_HEADER_BYTES, 0))) {
        rc = rc < 0 ? rc : store_corrupt(errbuf, errlen, "%s: file truncated", path);
        goto fail;
    }
    uint32_t version = get32(header + 8);
    if (version != STORE_FORMAT_VERSION) {
        rc = store_corrupt(errbuf, errlen,
                           "%s: unsupported format version %u (expected %d)%s", path, version,
                           STORE_FORMAT_VERSION,
                           version < STORE_FORMAT_VERSION
                               ? ": written by an older carecount; ingest the feeds into a new "
                                 "data directory"
                               : ": written by a newer carecount");
        goto fail;
    }
    /* The key id first: a snapshot of another data directory (or swapped
     * in by someone without the key) is named as such, not as damage. */
    uint8_t id[STORE_KEY_ID_BYTES];
    key_id(key, id);
    if (sodium_memcmp(id, header + 136, STORE_KEY_ID_BYTES) != 0) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen,
                     "%s: not written with this data directory's key (its checksums are keyed "
                     "with another key): refused",
                     path);
        rc = CC_EWRONGKEY;
        goto fail;
    }
    uint8_t sum[STORE_CHECKSUM_BYTES];
    size_t covered = STORE_HEADER_BYTES - STORE_CHECKSUM_BYTES;
    crypto_generichash(sum, sizeof sum, header, covered, key, CC_STORE_KEY_BYTES);
    if (sodium_memcmp(sum, header + covered, STORE_CHECKSUM_BYTES) != 0) {
        rc = store_corrupt(errbuf, errlen,
                           "%s: header checksum mismatch (damaged, or altered by someone "
                           "without the key)",
                           path);
        goto fail;
    }
    if (get32(header + 12) != STORE_HEADER_BYTES || get32(header + 16) != STORE_N_SECTIONS) {
        rc = store_corrupt(errbuf, errlen,
                           "%s: header size or section count does not match format version %d",
                           path, STORE_FORMAT_VERSION);
        goto fail;
    }
    rc = CC_ENOMEM;
    if (!(s = calloc(1, sizeof *s)))
        goto fail;
    uint64_t file_bytes;
    decode_header(header, &s->counts, &file_bytes, table);
    if (size < file_bytes) {
        rc = store_corrupt(errbuf, errlen, "%s: file truncated: expected %llu bytes, found %llu",
                           path, (unsigned long long)file_bytes, (unsigned long long)size);
        goto fail;
    }
    if (size > file_bytes) {
        rc = store_corrupt(errbuf, errlen, "%s: %llu unexpected bytes after the last section",
                           path, (unsigned long long)(size - file_bytes));
        goto fail;
    }
    /* the table must say exactly what the counts imply: same ids, offsets
     * and lengths, so no section can overlap another or lie past the end */
    if (layout(&s->counts, expected) != file_bytes) {
        rc = store_corrupt(errbuf, errlen, "%s: file size does not match the counts", path);
        goto fail;
    }
    for (int i = 0; i < STORE_N_SECTIONS; i++) {
        if (table[i].id != expected[i].id || table[i].offset != expected[i].offset ||
            table[i].length != expected[i].length) {
            rc = store_corrupt(errbuf, errlen,
                               "%s: section '%s' has id %u, offset %llu, length %llu; counts "
                               "imply id %d, offset %llu, length %llu",
                               path, store_section_name(i), table[i].id,
                               (unsigned long long)table[i].offset,
                               (unsigned long long)table[i].length, i,
                               (unsigned long long)expected[i].offset,
                               (unsigned long long)expected[i].length);
            goto fail;
        }
    }
    if ((rc = read_sections(fd, table, s, flags, key, errbuf, errlen)))
        goto fail;
    for (int i = 0; i + 1 < STORE_N_SECTIONS; i++) {
        uint64_t end = table[i].offset + table[i].length, next = table[i + 1].offset;
        if (next > end) {
            uint8_t pad[8];
            if ((rc = read_all_at(fd, pad, next - end, end))) {
                rc = rc < 0 ? rc : store_corrupt(errbuf, errlen, "%s: file truncated", path);
                goto fail;
            }
            for (uint64_t k = 0; k < next - end; k++)
                if (pad[k]) {
                    rc = store_corrupt(errbuf, errlen,
                                       "%s: padding after section '%s' is not zero", path,
                                       store_section_name(i));
                    goto fail;
                }
        }
    }
    store_bind_columns(s);
    if ((rc = cc_store_validate(s, errbuf, errlen)))
        goto fail;
    close(fd);
    *out = s;
    return 0;
fail:
    if (rc == CC_EIO && errbuf && errlen && !errbuf[0])
        snprintf(errbuf, errlen, "%s: read error", path);
    cc_store_free(s);
    close(fd);
    return rc;
}
