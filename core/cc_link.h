/*
 * cc_link.h: stage 2 of record linkage (docs/linkage.md).
 *
 * Stage 1 links on the NHS number pseudonym and is a lookup in the store
 * builder. Stage 2 serves records without a valid NHS number: it links them
 * on date of birth + sex + postcode pseudonym, and only where exactly one
 * person has that combination; a combination shared by two or more persons
 * is ambiguous and the record stays unlinked (never guessed).
 *
 * Must never: see an NHS number or a postcode in clear (it takes pseudonyms).
 */
#ifndef CC_LINK_H
#define CC_LINK_H

#include <stdint.h>

#include "cc_pseudo.h"
#include "cc_store.h"

typedef struct cc_link_index cc_link_index;

#define CC_LINK_NONE (-1)
#define CC_LINK_AMBIGUOUS (-2)

/* An earlier address of a person: a postcode (pseudonym) they were known at
 * besides the current one in cols, from a registration that a newer one
 * replaced or a hospital or community row linked by NHS number. */
struct cc_link_address {
    uint32_t person;
    cc_pseudonym postcode;
};

/* A combination stage 2 will be asked about. */
struct cc_link_key {
    cc_pseudonym postcode;
    cc_day dob;
    uint8_t sex;
};

/* Builds the stage-2 index for the n_keys combinations in keys (those of
 * the records waiting for stage 2): for each, the persons in cols with that
 * known date of birth, sex and postcode pseudonym (an all-zero pseudonym
 * means unknown), at their current postcode or at one of the n_earlier
 * earlier addresses (may be NULL when n_earlier is 0). A combination that
 * leads to two persons is ambiguous; one person known twice at the same
 * postcode is still one. Only the combinations asked about are kept: the
 * table is sized by the records waiting, not by the persons, and a filter
 * in front of it lets the pass over the persons skip nearly all of them
 * without touching it. The caller frees with cc_link_index_free(). 0 or
 * CC_ENOMEM. */
int cc_link_index_build(const struct cc_store_columns *cols, const struct cc_link_address *earlier,
                        size_t n_earlier, const struct cc_link_key *keys, size_t n_keys,
                        cc_link_index **out);

/* The person with exactly this date of birth, sex and postcode, or
 * CC_LINK_NONE, or CC_LINK_AMBIGUOUS when several persons share them; a
 * combination that was not among the keys the index was built for is
 * CC_LINK_NONE. */
int64_t cc_link_find(const cc_link_index *index, cc_day dob, uint8_t sex,
                     const cc_pseudonym *postcode);

void cc_link_index_free(cc_link_index *index);

#endif
