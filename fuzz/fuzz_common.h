/*
 * fuzz_common.h: what the fuzz targets share: a check that aborts (so
 * libFuzzer records the input as a crash), and a scratch file for the
 * modules that read a path (the snapshot loader, the config file, ingest).
 *
 * Must never: write anywhere but the process's own scratch directory.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant of the module under test: a violation is a finding. */
#define check(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);    \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* The process's scratch directory (made once, under TMPDIR or /tmp;
 * scripts/fuzz.sh points TMPDIR at a directory it removes at the end). */
static inline const char *fuzz_scratch_dir(void)
{
    static char dir[256];
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/cc-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Writes data[0..size) to the scratch file called name and returns path,
 * where its path is put. */
static inline const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size,
                                          char *path, size_t path_len)
{
    snprintf(path, path_len, "%s/%s", fuzz_scratch_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    if (fclose(f) != 0)
        abort();
    return path;
}

#endif
