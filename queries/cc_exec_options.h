/*
 * cc_exec_options.h: the engine's tunables, the one part of the engine that
 * server/ and tools/ may name: they pass these to the release layer
 * (cc_release_answer(), cc_release_comparison() in cc_release.h), which runs
 * the engine with them. The engine itself (internal/cc_exec.h: the raw
 * result, cc_exec_run()) is internal to queries/.
 *
 * Must never: carry a count, a cohort or anything read from the data; these
 * are settings only.
 */
#ifndef CC_EXEC_OPTIONS_H
#define CC_EXEC_OPTIONS_H

#include <stdbool.h>

#include "cc_date.h"

/* The most threads one query is split across: n_threads above it, and the
 * online CPUs when it is 0, are cut to it. Each thread owns a private array
 * of counts per cell, so memory per query grows with it. */
#define CC_EXEC_MAX_THREADS 8

/* Engine tunables. */
struct cc_exec_options {
    unsigned n_threads;   /* 0: the number of online CPUs; at most CC_EXEC_MAX_THREADS */
    cc_day reference_day; /* ages for persons and population without as_of; 0: today */
    bool cohort_hash;     /* fill cc_raw_result.cohort_hash and cohort_bits: the release
                             layer's ledger (keys listed only if it needs them) */
    bool cell_sketches;   /* fill cc_raw_result.cell_sketch (the ledger's cells) */
};

#endif
