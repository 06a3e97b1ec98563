/*
 * cc_link.c: the stage-2 linkage index (see cc_link.h): an open-addressing hash
 * table from (date of birth, sex, postcode pseudonym) to the one person with
 * that combination, or a mark that the combination is ambiguous.
 */
#include "cc_link.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_hash.h"

#define SLOT_EMPTY UINT32_MAX
#define SLOT_AMBIGUOUS (UINT32_MAX - 1)

struct slot {
    uint64_t hash;
    uint32_t person; /* SLOT_EMPTY, SLOT_AMBIGUOUS or a person index */
    uint16_t dob;
    uint8_t sex;
    cc_pseudonym postcode;
};

struct cc_link_index {
    struct slot *slots;
    uint64_t mask;
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

/* Adds person p at (dob, sex, postcode): a second person there makes the
 * combination ambiguous. */
static void index_add(cc_link_index *index, uint32_t p, cc_day dob, uint8_t sex,
                      const cc_pseudonym *pc)
{
    uint64_t h = key_hash(dob, sex, pc);
    for (uint64_t i = h & index->mask;; i = (i + 1) & index->mask) {
        struct slot *s = &index->slots[i];
        if (s->person == SLOT_EMPTY) {
            s->hash = h;
            s->person = p;
            s->dob = (uint16_t)dob;
            s->sex = sex;
            s->postcode = *pc;
            return;
        }
        if (s->hash == h && s->dob == (uint16_t)dob && s->sex == sex &&
            !memcmp(&s->postcode, pc, sizeof *pc)) {
            if (s->person != p)
                s->person = SLOT_AMBIGUOUS;
            return;
        }
    }
}

int cc_link_index_build(const struct cc_store_columns *cols, const struct cc_link_address *earlier,
                        size_t n_earlier, cc_link_index **out)
{
    cc_link_index *index = calloc(1, sizeof *index);
    if (!index)
        return CC_ENOMEM;
    uint64_t cap = cc_hash_slots_for((uint64_t)cols->n_persons + n_earlier, 16);
    index->slots = cap && cap <= SIZE_MAX / sizeof *index->slots
                       ? malloc((size_t)cap * sizeof *index->slots)
                       : NULL;
    if (!index->slots) {
        free(index);
        return CC_ENOMEM;
    }
    cc_hash_advise_huge(index->slots, (size_t)cap * sizeof *index->slots);
    for (uint64_t i = 0; i < cap; i++)
        index->slots[i].person = SLOT_EMPTY;
    index->mask = cap - 1;

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
    uint64_t h = key_hash(dob, sex, postcode);
    for (uint64_t i = h & index->mask;; i = (i + 1) & index->mask) {
        const struct slot *s = &index->slots[i];
        if (s->person == SLOT_EMPTY)
            return CC_LINK_NONE;
        if (s->hash == h && s->dob == (uint16_t)dob && s->sex == sex &&
            !memcmp(&s->postcode, postcode, sizeof *postcode))
            return s->person == SLOT_AMBIGUOUS ? CC_LINK_AMBIGUOUS : (int64_t)s->person;
    }
}

void cc_link_index_free(cc_link_index *index)
{
    if (!index)
        return;
    free(index->slots);
    free(index);
}
