/*
 * cc_dataversion.h: a published data version: a store snapshot together
 * with the set of persons excluded from every figure because an opt-out
 * (type 1 or the National Data Opt-out) is in force for them.
 *
 * Every figure the server computes comes from one data version. The opt-out
 * register commits a change at once; the change reaches figures when the
 * next version is published (DESIGN, Disclosure control 11), so that a
 * before/after difference shows a batch, not a person. A version is
 * immutable once published and may be read by many threads.
 *
 * Must never: hold a pseudonym of an excluded person beyond publishing (the
 * excluded set is a bitset over person indices).
 */
#ifndef CC_DATAVERSION_H
#define CC_DATAVERSION_H

#include <stdint.h>

#include "cc_date.h"
#include "cc_optout.h"
#include "cc_store.h"

struct cc_dataversion {
    const cc_store *store;      /* not owned */
    uint64_t store_version;     /* the snapshot's version in state.db */
    uint64_t optout_sequence;   /* the register's state the exclusions reflect */
    cc_day published_on;        /* opt-outs in force on this day are applied */
    uint64_t n_excluded;        /* persons excluded */
    uint64_t *excluded;         /* bitset over person indices, (n_persons + 63) / 64 words */
};

/* Publishes a version of store: reads the persons with any opt-out in force
 * on `on` from the register, in one read transaction, and marks them
 * excluded. The caller frees with cc_dataversion_free() (which does not free
 * the store). */
int cc_dataversion_publish(const cc_store *store, uint64_t store_version, cc_optout *optouts,
                           cc_day on, struct cc_dataversion **out);

/* A version with an explicit excluded set (tests, benchmarks): the persons
 * listed by index. */
int cc_dataversion_from_indices(const cc_store *store, const uint32_t *excluded,
                                uint64_t n_excluded, struct cc_dataversion **out);

/* Is person excluded from figures in this version? */
static inline int cc_dataversion_is_excluded(const struct cc_dataversion *v, uint32_t person)
{
    return (int)(v->excluded[person >> 6] >> (person & 63) & 1);
}

void cc_dataversion_free(struct cc_dataversion *version);

#endif
