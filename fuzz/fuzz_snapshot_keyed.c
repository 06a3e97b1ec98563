/*
 * fuzz_snapshot_keyed.c: the snapshot loader's structure checks
 * (core/cc_store_file.c, cc_store_validate) on hostile content that carries
 * valid keyed checksums, as a snapshot written by a key holder with a bug,
 * or a damaged file whose checksums happen to hold, would.
 *
 * Every checksum of a snapshot is keyed (docs/store-format.md), so random
 * bytes never get past them: this target takes the input as a snapshot,
 * lays it out as the format says for the counts in its header (the section
 * table, offsets and lengths from cc_store_internal.h's sizes, zero padding,
 * the file cut or zero-extended to the size the counts imply, at most 4 MiB),
 * then signs it with a fixed fuzzing key (key id, every section checksum,
 * the header checksum) and loads it. What is left to refuse it is the
 * counts and the invariants of every column: a loaded store must pass
 * cc_store_validate() again and answer lookups.
 *
 * FUZZ_SNAPSHOT_WRITE=PATH (with one input file) writes the signed file
 * there instead: how scripts/fuzz_corpus.sh makes the seeds of fuzz_snapshot,
 * whose inputs are whole files under the same key.
 *
 * Must never: pass an input on which a store that loaded fails its own
 * checks, or a lookup reads outside it.
 */
#include <sodium.h>

#include "cc_error.h"
#include "cc_store.h"
#include "cc_store_internal.h"
#include "fuzz_common.h"
#include "fuzz_snapshot_key.h"

#define FIXED_HEADER_BYTES 152
#define TABLE_ENTRY_BYTES 56
#define CHECKSUM_BYTES 32
#define HEADER_BYTES (FIXED_HEADER_BYTES + STORE_N_SECTIONS * TABLE_ENTRY_BYTES + CHECKSUM_BYTES)
#define MAX_FILE_BYTES (4u << 20)

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
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* Lays out and signs the snapshot in data; returns a malloc'd file and its
 * size in *out_len, or NULL when the counts imply a file too large. */
static uint8_t *sign(const uint8_t *data, size_t size, size_t *out_len)
{
    uint8_t header[HEADER_BYTES] = {0};
    memcpy(header, data, size < HEADER_BYTES ? size : HEADER_BYTES);
    struct store_counts c;
    c.n_lsoa = get32(header + 32);
    c.n_lad = get32(header + 36);
    c.n_icb = get32(header + 40);
    c.n_region = get32(header + 44);
    c.n_postcodes = get32(header + 48);
    c.n_practices = get32(header + 52);
    c.n_persons = get32(header + 56);
    c.n_codes = get32(header + 60);
    c.n_records = get64(header + 64);
    c.n_postings = get64(header + 72);
    c.name_blob_bytes = get64(header + 80);
    for (int i = 0; i < 5; i++)
        c.setting_first[i] = get64(header + 88 + 8 * i);
    c.n_feed_identities = get64(header + 128);

    uint64_t offset[STORE_N_SECTIONS], length[STORE_N_SECTIONS];
    uint64_t at = (HEADER_BYTES + 7) & ~(uint64_t)7;
    for (int s = 0; s < STORE_N_SECTIONS; s++) {
        uint64_t bytes = store_section_bytes(&c, s);
        if (bytes > MAX_FILE_BYTES || at + bytes > MAX_FILE_BYTES)
            return NULL;
        offset[s] = at;
        length[s] = bytes;
        at += bytes;
        if (s + 1 < STORE_N_SECTIONS)
            at = (at + 7) & ~(uint64_t)7;
    }
    uint8_t *file = calloc(1, at);
    if (!file)
        return NULL;
    for (int s = 0; s < STORE_N_SECTIONS; s++)
        if (offset[s] < size) {
            uint64_t n = size - offset[s] < length[s] ? size - offset[s] : length[s];
            memcpy(file + offset[s], data + offset[s], n);
        }

    memcpy(header, "CCSTORE\0", 8);
    put32(header + 8, 4);
    put32(header + 12, HEADER_BYTES);
    put32(header + 16, STORE_N_SECTIONS);
    put64(header + 24, at);
    static const char tag[] = "carecount-store-key-id";
    crypto_generichash(header + 136, 16, (const unsigned char *)tag, sizeof tag,
                       fuzz_snapshot_key, CC_STORE_KEY_BYTES);
    for (int s = 0; s < STORE_N_SECTIONS; s++) {
        uint8_t *e = header + FIXED_HEADER_BYTES + s * TABLE_ENTRY_BYTES;
        put32(e, (uint32_t)s);
        put32(e + 4, 0);
        put64(e + 8, offset[s]);
        put64(e + 16, length[s]);
        crypto_generichash(e + 24, CHECKSUM_BYTES, file + offset[s], length[s],
                           fuzz_snapshot_key, CC_STORE_KEY_BYTES);
    }
    size_t covered = HEADER_BYTES - CHECKSUM_BYTES;
    crypto_generichash(header + covered, CHECKSUM_BYTES, header, covered, fuzz_snapshot_key,
                       CC_STORE_KEY_BYTES);
    memcpy(file, header, HEADER_BYTES);
    *out_len = at;
    return file;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sodium_init() < 0)
        abort();
    size_t len = 0;
    uint8_t *file = sign(data, size, &len);
    if (!file)
        return 0;
    const char *out = getenv("FUZZ_SNAPSHOT_WRITE");
    char path[512];
    if (out && *out) {
        snprintf(path, sizeof path, "%s", out);
        FILE *f = fopen(path, "wb");
        check(f && fwrite(file, 1, len, f) == len && fclose(f) == 0);
        free(file);
        return 0;
    }
    fuzz_write_file("snapshot.ccstore", file, len, path, sizeof path);
    free(file);
    fuzz_snapshot_exercise(path);
    return 0;
}
