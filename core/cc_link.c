/*
 * cc_link.c: the stage-2 linkage index (see cc_link.h): an open-addressing hash
 * table from each (date of birth, sex, postcode pseudonym) asked about to the
 * one person with that combination, or a mark that it is ambiguous, behind a
 * bit filter of the combinations asked about.
 */
#include "cc_link.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_hash.h"

#define SLOT_EMPTY UINT32_MAX
#define SLOT_AMBIGUOUS (UINT32_MAX - 1)
#define SLOT_ASKED (UINT32_MAX - 2) /* a combination asked about, no person yet */
/* filter bits per combination asked about: about 1 person in 16 whose
 * combination was not asked passes it to the table */
#define FILTER_BITS_PER_KEY 16

struct slot {
    uint64_t hash;
    uint32_t person; /* SLOT_EMPTY, SLOT_ASKED, SLOT_AMBIGUOUS or a person index */
    uint16_t dob;
    uint8_t sex;
    cc_pseudonym postcode;
};

struct cc_link_index {
    struct slot *slots;
    uint64_t mask;
    uint64_t *filter; /* one bit per top-filter_shift-bits hash value */
    unsigned filter_shift;
};

static uint64_t key_hash(cc_day dob, uint8_t sex, const cc_pseudonym *postcode)
{
    /* The pseudonym is already a keyed hash, so its bytes are uniform: mix
     * in the date and sex and spread with a 64-bit finaliser. */
    uint64_t h;
    memcpy(&h, postcode->bytes, sizeof h);
    return cc_hash_mix64(h ^ ((uint64_t)(uint16_t)dob << 8 | sex) * 0x9e3779b97f4a7c15ULL);
}

static int is_unknown(const cc_pseudonym *p)
{
    static const cc_pseudonym zero;
    return memcmp(p, &zero, sizeof zero) == 0;
}

/* The slot of (dob, sex, pc), or the empty slot where it would go. */
static struct slot *slot_of(const cc_link_index *index, uint64_t h, cc_day dob, uint8_t sex,
                            const cc_pseudonym *pc)
{
    for (uint64_t i = h & index->mask;; i = (i + 1) & index->mask) {
        struct slot *s = &index->slots[i];
        if (s->person == SLOT_EMPTY ||
            (s->hash == h && s->dob == (uint16_t)dob && s->sex == sex &&
             !memcmp(&s->postcode, pc, sizeof *pc)))
            return s;
    }
}

/* The filter's word for hash h, and the bit of h in it. */
static uint64_t *filter_word(const cc_link_index *index, uint64_t h, uint64_t *bit)
{
    uint64_t at = h >> index->filter_shift;
    *bit = 1ULL << (at & 63);
    return &index->filter[at >> 6];
}

/* Marks (dob, sex, pc) as asked about. */
static void index_ask(cc_link_index *index, cc_day dob, uint8_t sex, const cc_pseudonym *pc)
{
    uint64_t h = key_hash(dob, sex, pc);
    struct slot *s = slot_of(index, h, dob, sex, pc);
    if (s->person != SLOT_EMPTY)
        return;
    s->hash = h;
    s->person = SLOT_ASKED;
    s->dob = (uint16_t)dob;
    s->sex = sex;
    s->postcode = *pc;
    uint64_t bit;
    *filter_word(index, h, &bit) |= bit;
}

/* Person p is known at (dob, sex, pc): a second person there makes an
 * asked combination ambiguous; one not asked about is passed over. */
static void index_add(cc_link_index *index, uint32_t p, cc_day dob, uint8_t sex,
                      const cc_pseudonym *pc)
{
    uint64_t h = key_hash(dob, sex, pc);
    uint64_t bit;
    if (!(*filter_word(index, h, &bit) & bit))
        return;
    struct slot *s = slot_of(index, h, dob, sex, pc);
    if (s->person == SLOT_EMPTY || s->person == SLOT_AMBIGUOUS)
        return;
    if (s->person == SLOT_ASKED)
        s->person = p;
    else if (s->person != p)
        s->person = SLOT_AMBIGUOUS;
}

int cc_link_index_build(const struct cc_store_columns *cols, const struct cc_link_address *earlier,
                        size_t n_earlier, const struct cc_link_key *keys, size_t n_keys,
                        cc_link_index **out)
{
    cc_link_index *index = calloc(1, sizeof *index);
    if (!index)
        return CC_ENOMEM;
    uint64_t cap = cc_hash_slots_for(n_keys, 16);
    /* a power of two of at least FILTER_BITS_PER_KEY bits per key, 64 at
     * least: its index is the top bits of the hash */
    uint64_t filter_bits = cc_hash_slots_for((uint64_t)n_keys * FILTER_BITS_PER_KEY / 2, 64);
    unsigned log2_bits = 0;
    while (((uint64_t)1 << log2_bits) < filter_bits)
        log2_bits++;
    index->filter_shift = 64 - log2_bits;
    index->slots = cap && cap <= SIZE_MAX / sizeof *index->slots
                       ? malloc((size_t)cap * sizeof *index->slots)
                       : NULL;
    index->filter = filter_bits ? calloc((size_t)(filter_bits / 64), sizeof *index->filter) : NULL;
    if (!index->slots || !index->filter) {
        cc_link_index_free(index);
        return CC_ENOMEM;
    }
    cc_hash_advise_huge(index->slots, (size_t)cap * sizeof *index->slots);
    for (uint64_t i = 0; i < cap; i++)
        index->slots[i].person = SLOT_EMPTY;
    index->mask = cap - 1;
    for (size_t i = 0; i < n_keys; i++)
        if (!is_unknown(&keys[i].postcode))
            index_ask(index, keys[i].dob, keys[i].sex, &keys[i].postcode);

    if (cols->person_postcode_pseudonym) {
        for (uint32_t p = 0; p < cols->n_persons; p++) {
            const cc_pseudonym *pc = &cols->person_postcode_pseudonym[p];
            if (is_unknown(pc) || cols->person_sex[p] == 0)
                continue;
            index_add(index, p, cols->person_dob[p], cols->person_sex[p], pc);
        }
    }
    for (size_t i = 0; i < n_earlier; i++) {
        uint32_t p = earlier[i].person;
        if (p >= cols->n_persons || is_unknown(&earlier[i].postcode) || cols->person_sex[p] == 0)
            continue;
        index_add(index, p, cols->person_dob[p], cols->person_sex[p], &earlier[i].postcode);
    }
    *out = index;
    return 0;
}

int64_t cc_link_find(const cc_link_index *index, cc_day dob, uint8_t sex,
                     const cc_pseudonym *postcode)
{
    if (is_unknown(postcode))
        return CC_LINK_NONE;
    const struct slot *s = slot_of(index, key_hash(dob, sex, postcode), dob, sex, postcode);
    if (s->person == SLOT_EMPTY || s->person == SLOT_ASKED)
        return CC_LINK_NONE;
    return s->person == SLOT_AMBIGUOUS ? CC_LINK_AMBIGUOUS : (int64_t)s->person;
}

void cc_link_index_free(cc_link_index *index)
{
    if (!index)
        return;
    free(index->slots);
    free(index->filter);
    free(index);
}
