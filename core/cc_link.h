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

/* Builds the stage-2 index over every person in cols that has a known date
 * of birth, sex and postcode pseudonym (an all-zero pseudonym means unknown).
 * The caller frees with cc_link_index_free(). */
int cc_link_index_build(const struct cc_store_columns *cols, cc_link_index **out);

/* The person with exactly this date of birth, sex and postcode, or
 * CC_LINK_NONE, or CC_LINK_AMBIGUOUS when several persons share them. */
int64_t cc_link_find(const cc_link_index *index, cc_day dob, uint8_t sex,
                     const cc_pseudonym *postcode);

void cc_link_index_free(cc_link_index *index);

#endif
