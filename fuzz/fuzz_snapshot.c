/*
 * fuzz_snapshot.c: the snapshot loader (core/cc_store_file.c) on a
 * corrupted or hostile snapshot file, byte for byte as the input gives it:
 * truncated, grown, wrong magic or version, another key, damaged header,
 * table, padding or section. The fixed fuzzing key of fuzz_snapshot_key.h
 * is the data directory's, so the seeds (valid snapshots signed with it,
 * made by scripts/fuzz_corpus.sh) load, and mutations of them must be
 * refused with a reason or load into a store that passes its own checks.
 * fuzz_snapshot_keyed reaches the structure checks behind the checksums.
 *
 * Must never: pass an input that crashes the loader or loads a store that
 * fails its checks.
 */
#include "fuzz_common.h"
#include "fuzz_snapshot_key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512];
    fuzz_write_file("snapshot.ccstore", data, size, path, sizeof path);
    fuzz_snapshot_exercise(path);
    return 0;
}
