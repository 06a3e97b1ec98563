/*
 * fuzz_snapshot_key.h: the snapshot targets' fixed store key (a fuzzing key,
 * not a secret of any data directory) and what both do with a snapshot
 * file: load it in both modes and, if it loads, check it again, look things
 * up in it and run a few queries over it with the engine (cc_exec).
 *
 * Must never: be used for anything but fuzzing.
 */
#ifndef FUZZ_SNAPSHOT_KEY_H
#define FUZZ_SNAPSHOT_KEY_H

#include "cc_dataversion.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_query.h"
#include "cc_store.h"
#include "fuzz_common.h"

/* Queries the engine runs on every store that loads: a store that passes
 * cc_store_validate() must be safe to query, whatever its content. */
static const char *const fuzz_snapshot_queries[] = {
    "{\"v\": 1, \"measure\": \"persons\", \"dimensions\": [\"region\", \"sex\"], \"margins\": true,"
    " \"filters\": {\"conditions\": [{\"codes\": {\"snomed\": [\"44054006\"], \"icd10\": [\"E11\"]}},"
    " {\"codes\": [\"I21\"], \"system\": \"icd10\", \"settings\": [\"hospital\"]}],"
    " \"combine\": {\"or\": [0, 1]}}}",
    "{\"v\": 1, \"measure\": \"events\", \"events_of\": 0,"
    " \"dimensions\": [\"lad\", {\"name\": \"age_band\", \"bands\": \"5y\"}, \"quarter\"],"
    " \"filters\": {\"conditions\": [{\"settings\": [\"hospital\", \"community\"],"
    " \"roles\": [\"procedure\"]}]}}",
    "{\"v\": 1, \"measure\": \"population\", \"as_of\": \"2024-04\","
    " \"dimensions\": [{\"name\": \"age_band\", \"bands\": \"1y\"}, \"practice\"]}",
    "{\"v\": 1, \"measure\": \"population\", \"population\": \"estimate\","
    " \"dimensions\": [\"lsoa\", \"sex\"]}",
};

static inline void fuzz_snapshot_query(const cc_store *store)
{
    cc_dataversion *version = NULL;
    if (cc_dataversion_from_indices(store, NULL, 0, &version) != 0)
        return;
    const struct cc_store_columns *cols = cc_store_columns(store);
    for (size_t i = 0; i < sizeof fuzz_snapshot_queries / sizeof *fuzz_snapshot_queries; i++) {
        char why[256];
        struct cc_query *q = NULL;
        const char *text = fuzz_snapshot_queries[i];
        check(cc_query_decode_json(text, strlen(text), NULL, &q, why, sizeof why) == 0);
        struct cc_query_extent extent;
        cc_query_extent_from_store(cols, &extent);
        if (cc_query_validate(q, NULL, &extent, why, sizeof why) == 0 &&
            cc_query_bind(q, cols, NULL, why, sizeof why) == 0) {
            struct cc_exec_options options = {.n_threads = 1,
                                              .reference_day = cc_day_from_ymd(2026, 6, 1)};
            struct cc_raw_result result;
            if (cc_exec_run(version, q, &options, &result, why, sizeof why) == 0)
                cc_raw_result_free(&result);
        }
        cc_query_free(q);
    }
    cc_dataversion_release(version);
}

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
        if (flags == CC_STORE_QUERY_ONLY)
            fuzz_snapshot_query(store);
        cc_store_free(store);
    }
}

#endif
