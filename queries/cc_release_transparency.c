/*
 * cc_release_transparency.c: the transparency report: per area, how many
 * persons have each type of opt-out in force, how many are registered, how
 * many of those are in every figure (opted in), and what share of the
 * area's population (ONS estimate) that is: released through the same
 * layers as every other figure (each count a cell of its own, with its own
 * cell key: perturbation, suppression, rounding), so a report published
 * after one more opt-out does not show that one person.
 *
 * Must never: release an exact count; the coverage is computed from the
 * released opted-in count and the public estimate only.
 */
#include "cc_release.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_date.h"
#include "cc_error.h"
#include "cc_optout.h"
#include "cc_release_internal.h"
#include "cc_store.h"

/* The figures of a row, as perturbation measures (distinct from the query
 * measures, so the same persons counted as two figures get independent
 * noise). */
enum { FIGURE_REGISTERED, FIGURE_TYPE1, FIGURE_NDOP, FIGURE_OPTED_IN, N_FIGURES };
static const uint64_t figure_measure[N_FIGURES] = {11, 12, 13, 14};
static const char *const figure_name[N_FIGURES] = {"registered", "optout_type1", "optout_ndop",
                                                   "opted_in"};

struct cc_transparency {
    uint8_t level;
    uint32_t n_areas;
    char (*code)[CC_AREA_CODE_BYTES];
    const char **name; /* into the store's name blob: valid while the version is */
    double *estimate;  /* [n_areas] ONS population, public */
    struct cc_released_count *cells; /* [n_areas * N_FIGURES] */
    struct cc_release_summary summary;
    const cc_dataversion *version; /* retained */
};

/* The area of level a person lives in, or UINT32_MAX (no known LSOA). */
static uint32_t area_of(const struct cc_store_columns *c, int level, uint32_t person)
{
    uint16_t lsoa = c->person_lsoa[person];
    if (lsoa == UINT16_MAX || lsoa >= c->n_lsoa)
        return UINT32_MAX;
    uint32_t lad = c->lsoa_lad[lsoa];
    if (level == CC_AREA_LAD)
        return lad;
    uint32_t icb = c->lad_icb[lad];
    return level == CC_AREA_ICB ? icb : c->icb_region[icb];
}

static uint32_t area_of_lsoa(const struct cc_store_columns *c, int level, uint32_t lsoa)
{
    uint32_t lad = c->lsoa_lad[lsoa];
    if (level == CC_AREA_LAD)
        return lad;
    uint32_t icb = c->lad_icb[lad];
    return level == CC_AREA_ICB ? icb : c->icb_region[icb];
}

/* Adds the persons of the register with type in force to counts[figure]. */
static int add_type(const cc_store *store, const struct cc_store_columns *c, cc_optout *register_,
                    cc_day on, unsigned mask, int level, int figure, uint64_t *counts,
                    uint32_t *keys, const cc_dataversion *version)
{
    cc_pseudonym *persons = NULL;
    size_t n = 0;
    int rc = cc_optout_persons_in_force(register_, on, mask, &persons, &n, NULL);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t p = cc_store_find_person(store, &persons[i]);
        if (p < 0 || !cc_dataversion_is_excluded(version, (uint32_t)p))
            continue; /* not in the store, or not yet in the published version */
        uint32_t a = area_of(c, level, (uint32_t)p);
        if (a == UINT32_MAX)
            continue;
        counts[(size_t)a * N_FIGURES + figure]++;
        keys[(size_t)a * N_FIGURES + figure] += c->person_record_key[p];
    }
    free(persons);
    return 0;
}

int cc_release_transparency(const struct cc_policy *policy, const cc_dataversion *version,
                            cc_optout *register_, int level, cc_transparency **out, char *errbuf,
                            size_t errlen)
{
    *out = NULL;
    int rc = cc_policy_check(policy, errbuf, errlen);
    if (rc)
        return rc;
    if (level != CC_AREA_REGION && level != CC_AREA_ICB && level != CC_AREA_LAD)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "level: region, icb or lad");
    const cc_store *store = cc_dataversion_store(version);
    const struct cc_store_columns *c = cc_store_columns(store);
    uint32_t n_areas = level == CC_AREA_LAD ? c->n_lad : level == CC_AREA_ICB ? c->n_icb
                                                                              : c->n_region;
    const char (*codes)[CC_AREA_CODE_BYTES] = level == CC_AREA_LAD   ? c->lad_code
                                              : level == CC_AREA_ICB ? c->icb_code
                                                                     : c->region_code;
    const uint32_t *names = level == CC_AREA_LAD   ? c->lad_name_offset
                            : level == CC_AREA_ICB ? c->icb_name_offset
                                                   : c->region_name_offset;
    size_t n_cells = (size_t)n_areas * N_FIGURES;
    cc_transparency *t = calloc(1, sizeof *t);
    uint64_t *counts = calloc(n_cells ? n_cells : 1, sizeof *counts);
    uint32_t *keys = calloc(n_cells ? n_cells : 1, sizeof *keys);
    if (!t || !counts || !keys)
        goto oom;
    t->code = calloc(n_areas ? n_areas : 1, sizeof *t->code);
    t->name = calloc(n_areas ? n_areas : 1, sizeof *t->name);
    t->estimate = calloc(n_areas ? n_areas : 1, sizeof *t->estimate);
    t->cells = calloc(n_cells ? n_cells : 1, sizeof *t->cells);
    if (!t->code || !t->name || !t->estimate || !t->cells)
        goto oom;
    t->level = (uint8_t)level;
    t->n_areas = n_areas;
    for (uint32_t a = 0; a < n_areas; a++) {
        memcpy(t->code[a], codes[a], CC_AREA_CODE_BYTES);
        t->name[a] = c->name_blob + names[a];
    }
    for (uint32_t lsoa = 0; lsoa < c->n_lsoa; lsoa++) {
        double sum = 0;
        for (uint32_t k = 0; k < 2 * CC_N_AGE_BANDS_5Y; k++)
            sum += c->population[(size_t)lsoa * 2 * CC_N_AGE_BANDS_5Y + k];
        t->estimate[area_of_lsoa(c, level, lsoa)] += sum;
    }
    for (uint32_t p = 0; p < c->n_persons; p++) {
        uint32_t a = area_of(c, level, p);
        if (a == UINT32_MAX)
            continue;
        size_t cell = (size_t)a * N_FIGURES;
        counts[cell + FIGURE_REGISTERED]++;
        keys[cell + FIGURE_REGISTERED] += c->person_record_key[p];
        if (!cc_dataversion_is_excluded(version, p)) {
            counts[cell + FIGURE_OPTED_IN]++;
            keys[cell + FIGURE_OPTED_IN] += c->person_record_key[p];
        }
    }
    cc_day on = cc_dataversion_published_on(version);
    if ((rc = add_type(store, c, register_, on, CC_OPTOUT_MASK_TYPE1, level, FIGURE_TYPE1, counts,
                       keys, version)) != 0 ||
        (rc = add_type(store, c, register_, on, CC_OPTOUT_MASK_NDOP, level, FIGURE_NDOP, counts,
                       keys, version)) != 0) {
        cc_errorf(errbuf, errlen, rc, "the opt-out register could not be read");
        goto fail;
    }

    struct cc_release_tables tables;
    cc_release_tables_build(policy, cc_dataversion_noise_epoch(version), &tables);
    cc_release_summary_init(policy, &t->summary);
    t->summary.n_cells = n_cells;
    for (size_t i = 0; i < n_cells; i++) {
        /* the condition layer's seed: the figure, so each figure of an area
         * gets a second draw of its own */
        t->cells[i] = cc_release_protect(policy, &tables, figure_measure[i % N_FIGURES],
                                         figure_measure[i % N_FIGURES], counts[i], keys[i]);
        cc_release_summary_count(&t->summary, t->cells[i].reason);
    }
    free(counts);
    free(keys);
    t->version = cc_dataversion_retain((cc_dataversion *)version);
    *out = t;
    return 0;
oom:
    rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
fail:
    free(counts);
    free(keys);
    cc_transparency_free(t);
    return rc;
}

void cc_transparency_free(cc_transparency *t)
{
    if (!t)
        return;
    free(t->code);
    free(t->name);
    free(t->estimate);
    free(t->cells);
    cc_dataversion_release((cc_dataversion *)t->version);
    free(t);
}

const struct cc_release_summary *cc_transparency_summary(const cc_transparency *t)
{
    return &t->summary;
}

static int pack_text(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s));
}

static int pack_released(msgpack_packer *pk, struct cc_released_count c)
{
    return c.released ? msgpack_pack_uint64(pk, c.value) : msgpack_pack_nil(pk);
}

int cc_transparency_pack(const cc_transparency *t, msgpack_packer *pk)
{
    int rc = 0;
    rc |= msgpack_pack_map(pk, 5);
    rc |= cc_release_pack_summary(&t->summary, pk); /* "policy" and "counts" */
    rc |= pack_text(pk, "level");
    rc |= pack_text(pk, cc_query_area_level_name(t->level));
    rc |= pack_text(pk, "published_on");
    char day[11];
    cc_day_format(cc_dataversion_published_on(t->version), day);
    rc |= pack_text(pk, day);
    rc |= pack_text(pk, "rows");
    rc |= msgpack_pack_array(pk, t->n_areas);
    for (uint32_t a = 0; a < t->n_areas; a++) {
        const struct cc_released_count *cell = &t->cells[(size_t)a * N_FIGURES];
        rc |= msgpack_pack_map(pk, 4 + N_FIGURES + 1);
        rc |= pack_text(pk, "code");
        rc |= pack_text(pk, t->code[a]);
        rc |= pack_text(pk, "name");
        rc |= pack_text(pk, t->name[a]);
        rc |= pack_text(pk, "estimate");
        rc |= msgpack_pack_uint64(pk, (uint64_t)llround(t->estimate[a]));
        for (int f = 0; f < N_FIGURES; f++) {
            rc |= pack_text(pk, figure_name[f]);
            rc |= pack_released(pk, cell[f]);
        }
        /* coverage: released opted-in persons per 100 of the estimate */
        rc |= pack_text(pk, "coverage_percent");
        if (cell[FIGURE_OPTED_IN].released && t->estimate[a] > 0)
            rc |= msgpack_pack_double(pk, 100.0 * (double)cell[FIGURE_OPTED_IN].value /
                                              t->estimate[a]);
        else
            rc |= msgpack_pack_nil(pk);
        rc |= pack_text(pk, "reasons");
        rc |= msgpack_pack_array(pk, N_FIGURES);
        for (int f = 0; f < N_FIGURES; f++)
            rc |= pack_text(pk, cc_release_reason_name(cell[f].reason));
    }
    return rc ? CC_ENOMEM : 0;
}
