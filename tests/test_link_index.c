/*
 * The stage-2 linkage index (core/cc_link.c) on its own: built over persons
 * and earlier addresses for the combinations asked about, it names the one
 * person of a combination, calls a shared one ambiguous, and knows nothing
 * of a combination it was not asked about. Checked against a direct count
 * over thousands of persons, so that the bit filter in front of the table
 * is exercised by persons it must let through and persons it may skip.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_link.h"

#define N_PERSONS 20000
#define N_EARLIER 6000
#define N_POSTCODES 3000

static cc_pseudonym postcode_of(uint32_t i)
{
    /* distinct, non-zero, with the spread bytes of a keyed hash */
    cc_pseudonym p;
    uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL, y = ~x * 0xc4ceb9fe1a85ec53ULL;
    memcpy(p.bytes, &x, 8);
    memcpy(p.bytes + 8, &y, 8);
    return p;
}

static cc_pseudonym pc[N_PERSONS];
static uint16_t dob[N_PERSONS];
static uint8_t sex[N_PERSONS];
static struct cc_link_address earlier[N_EARLIER];

static struct cc_store_columns make_persons(void)
{
    srand(7);
    for (uint32_t p = 0; p < N_PERSONS; p++) {
        /* few enough dates and postcodes that many combinations are shared */
        pc[p] = postcode_of((uint32_t)rand() % N_POSTCODES);
        dob[p] = (uint16_t)(20000 + rand() % 40);
        sex[p] = (uint8_t)(rand() % 3); /* 0: not known, never indexed */
    }
    memset(&pc[5], 0, sizeof pc[5]); /* an unknown postcode */
    for (uint32_t i = 0; i < N_EARLIER; i++)
        earlier[i] = (struct cc_link_address){(uint32_t)rand() % N_PERSONS,
                                              postcode_of((uint32_t)rand() % N_POSTCODES)};
    struct cc_store_columns cols = {0};
    cols.n_persons = N_PERSONS;
    cols.person_postcode_pseudonym = pc;
    cols.person_dob = dob;
    cols.person_sex = sex;
    return cols;
}

/* What the index should say of key: counted over every person and address. */
static int64_t expected(const struct cc_link_key *key)
{
    static const cc_pseudonym zero;
    if (!memcmp(&key->postcode, &zero, sizeof zero))
        return CC_LINK_NONE;
    int64_t found = CC_LINK_NONE;
    for (uint32_t p = 0; p < N_PERSONS + N_EARLIER; p++) {
        uint32_t who = p < N_PERSONS ? p : earlier[p - N_PERSONS].person;
        const cc_pseudonym *at = p < N_PERSONS ? &pc[p] : &earlier[p - N_PERSONS].postcode;
        if (sex[who] == 0 || sex[who] != key->sex || dob[who] != key->dob ||
            memcmp(at, &key->postcode, sizeof *at))
            continue;
        if (found == CC_LINK_NONE)
            found = who;
        else if (found != (int64_t)who)
            return CC_LINK_AMBIGUOUS;
    }
    return found;
}

Test(link_index, agrees_with_a_count_over_every_person_for_each_combination_asked)
{
    struct cc_store_columns cols = make_persons();
    /* the combinations of a thousand persons (their own, some earlier, some
     * with the sex changed) and a few nobody has */
    enum { N_KEYS = 1200 };
    static struct cc_link_key keys[N_KEYS];
    for (size_t i = 0; i < N_KEYS; i++) {
        uint32_t p = (uint32_t)(i * 17 % N_PERSONS);
        keys[i] = (struct cc_link_key){pc[p], dob[p], sex[p]};
        if (i % 5 == 1)
            keys[i].postcode = earlier[i % N_EARLIER].postcode;
        if (i % 7 == 2)
            keys[i].sex = (uint8_t)(1 + sex[p] % 2);
        if (i % 11 == 3)
            keys[i].postcode = postcode_of(N_POSTCODES + (uint32_t)i); /* nobody's */
    }
    keys[9] = (struct cc_link_key){pc[5], dob[5], sex[5]}; /* unknown postcode */
    cc_link_index *index = NULL;
    cr_assert_eq(cc_link_index_build(&cols, earlier, N_EARLIER, keys, N_KEYS, &index), 0);
    size_t linked = 0, ambiguous = 0, none = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        int64_t want = expected(&keys[i]);
        int64_t got = cc_link_find(index, keys[i].dob, keys[i].sex, &keys[i].postcode);
        cr_assert_eq(got, want, "key %zu: %lld, expected %lld", i, (long long)got,
                     (long long)want);
        linked += want >= 0;
        ambiguous += want == CC_LINK_AMBIGUOUS;
        none += want == CC_LINK_NONE;
    }
    /* each outcome is exercised, so an index that always said one thing fails */
    cr_assert_gt(linked, 100);
    cr_assert_gt(ambiguous, 10);
    cr_assert_gt(none, 100);
    cc_link_index_free(index);
}

Test(link_index, knows_nothing_of_a_combination_it_was_not_asked_about)
{
    struct cc_store_columns cols = make_persons();
    uint32_t p = 100;
    while (sex[p] == 0 || expected(&(struct cc_link_key){pc[p], dob[p], sex[p]}) != (int64_t)p)
        p++; /* a person alone at their combination */
    struct cc_link_key asked = {pc[p], dob[p], sex[p]};
    cc_link_index *index = NULL;
    cr_assert_eq(cc_link_index_build(&cols, earlier, N_EARLIER, &asked, 1, &index), 0);
    cr_assert_eq(cc_link_find(index, dob[p], sex[p], &pc[p]), (int64_t)p);
    size_t others = 0;
    for (uint32_t q = 0; q < N_PERSONS; q++) {
        if (sex[q] == 0 || (dob[q] == dob[p] && sex[q] == sex[p] && !memcmp(&pc[q], &pc[p], 16)))
            continue;
        cr_assert_eq(cc_link_find(index, dob[q], sex[q], &pc[q]), CC_LINK_NONE, "person %u", q);
        others++;
    }
    cr_assert_gt(others, N_PERSONS / 2);
    cc_link_index_free(index);
}

Test(link_index, an_index_asked_nothing_finds_nothing)
{
    struct cc_store_columns cols = make_persons();
    cc_link_index *index = NULL;
    cr_assert_eq(cc_link_index_build(&cols, earlier, N_EARLIER, NULL, 0, &index), 0);
    cr_assert_eq(cc_link_find(index, dob[0], sex[0], &pc[0]), CC_LINK_NONE);
    cc_link_index_free(index);
}
