/*
 * cc_dataversion.c: publishing a data version (see cc_dataversion.h): the
 * store plus the bitset of persons excluded by an opt-out in force.
 */
#include "cc_dataversion.h"

#include <stdlib.h>

#include "cc_error.h"

static int version_new(const cc_store *store, struct cc_dataversion **out)
{
    struct cc_dataversion *v = calloc(1, sizeof *v);
    if (!v)
        return CC_ENOMEM;
    uint64_t words = ((uint64_t)cc_store_columns(store)->n_persons + 63) / 64;
    v->excluded = calloc(words ? words : 1, sizeof *v->excluded);
    if (!v->excluded) {
        free(v);
        return CC_ENOMEM;
    }
    v->store = store;
    *out = v;
    return 0;
}

static void exclude(struct cc_dataversion *v, uint32_t person)
{
    uint64_t bit = 1ULL << (person & 63);
    if (!(v->excluded[person >> 6] & bit)) {
        v->excluded[person >> 6] |= bit;
        v->n_excluded++;
    }
}

int cc_dataversion_publish(const cc_store *store, uint64_t store_version, cc_optout *optouts,
                           cc_day on, struct cc_dataversion **out)
{
    struct cc_dataversion *v = NULL;
    cc_pseudonym *persons = NULL;
    size_t n = 0;
    int rc = version_new(store, &v);
    if (rc < 0)
        return rc;
    rc = cc_optout_persons_in_force(optouts, on, CC_OPTOUT_MASK_ANY, &persons, &n,
                                    &v->optout_sequence);
    if (rc < 0) {
        cc_dataversion_free(v);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t p = cc_store_find_person(store, &persons[i]);
        if (p >= 0)
            exclude(v, (uint32_t)p);
    }
    free(persons);
    v->store_version = store_version;
    v->published_on = on;
    *out = v;
    return 0;
}

int cc_dataversion_from_indices(const cc_store *store, const uint32_t *excluded,
                                uint64_t n_excluded, struct cc_dataversion **out)
{
    struct cc_dataversion *v = NULL;
    int rc = version_new(store, &v);
    if (rc < 0)
        return rc;
    uint32_t n_persons = cc_store_columns(store)->n_persons;
    for (uint64_t i = 0; i < n_excluded; i++) {
        if (excluded[i] >= n_persons) {
            cc_dataversion_free(v);
            return CC_ERANGE;
        }
        exclude(v, excluded[i]);
    }
    *out = v;
    return 0;
}

void cc_dataversion_free(struct cc_dataversion *version)
{
    if (!version)
        return;
    free(version->excluded);
    free(version);
}
