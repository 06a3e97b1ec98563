/*
 * fuzz_snapshot_key.h: the snapshot targets' fixed store key (a fuzzing key,
 * not a secret of any data directory) and what both do with a snapshot
 * file: load it in both modes and, if it loads, check it again and look
 * things up in it.
 *
 * Must never: be used for anything but fuzzing.
 */
#ifndef FUZZ_SNAPSHOT_KEY_H
#define FUZZ_SNAPSHOT_KEY_H

#include "cc_error.h"
#include "cc_store.h"
#include "fuzz_common.h"

static const uint8_t fuzz_snapshot_key[CC_STORE_KEY_BYTES] = {
    0x63, 0x61, 0x72, 0x65, 0x63, 0x6f, 0x75, 0x6e, 0x74, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b,
    0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e};

static inline void fuzz_snapshot_exercise(const char *path)
{
    for (int flags = CC_STORE_LOAD_ALL; flags <= CC_STORE_QUERY_ONLY; flags++) {
        cc_store *store = NULL;
        char why[512] = "";
        int rc = cc_store_load(path, flags, fuzz_snapshot_key, &store, why, sizeof why);
        check(rc == 0 || rc == CC_ECORRUPT || rc == CC_EWRONGKEY || rc == CC_ENOMEM ||
              rc == CC_EIO);
        if (rc != 0) {
            check(store == NULL);
            check(why[0] != '\0' || rc == CC_ENOMEM);
            continue;
        }
        check(store != NULL);
        check(cc_store_validate(store, why, sizeof why) == 0);
        const struct cc_store_columns *cols = cc_store_columns(store);
        for (uint32_t i = 0; i < cols->n_persons && i < 64; i++)
            check(cc_store_find_person(store, &cols->person_pseudonym[i]) == (int64_t)i);
        for (uint32_t i = 0; i < cols->n_codes && i < 64; i++) {
            int64_t id = cc_store_find_code(store, cols->code_system[i], cols->code_text[i]);
            check(id == (int64_t)i);
        }
        check(cc_store_memory_bytes(store) > 0);
        cc_store_free(store);
    }
}

#endif
