/*
 * cc_release.c: disclosure control: from a query to a release of protected
 * counts (cc_release.h says what is applied, in which order).
 *
 * The raw result lives only inside cc_release_answer(): it is read once,
 * cell by cell, into protected values and freed before the function
 * returns, so nothing that holds a release can reach an exact count, a cell
 * key or a cohort size.
 *
 * Must never: copy a raw count, a cell key or a cohort size into a release
 * or an error message.
 */
#include "cc_release.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_exec.h"
#include "cc_ledger.h"
#include "cc_release_internal.h"

struct cc_release {
    struct cc_release_summary summary;
    uint32_t n_dimensions;
    struct cc_raw_dimension dimensions[CC_QUERY_DIMENSIONS_CAP];
    const struct cc_store_columns *columns; /* for labels; not owned */
    struct cc_released_count *cells;        /* [summary.n_cells] */
};

/* ---- the perturbation table ---- */

void cc_ptable_build(uint32_t max_noise, double variance, struct cc_ptable *t)
{
    memset(t, 0, sizeof *t);
    t->max_noise = max_noise;
    t->variance = variance;
    for (uint32_t r = 0; r <= max_noise; r++) {
        double *p = t->probability[r];
        uint32_t m = r < max_noise ? r : max_noise;
        double reach = cc_policy_max_variance(m); /* of an even spread over -m..m, 0 excluded */
        double v = m == 0 ? 0 : variance < reach ? variance : reach;
        double p0 = m == 0 ? 1 : 1 - v / reach;
        p[max_noise] = p0;
        for (uint32_t k = 1; k <= m; k++)
            p[max_noise - k] = p[max_noise + k] = (1 - p0) / (2.0 * m);
        /* cumulative in units of 2^-32, the last column exactly 2^32, so a
         * row sums to 1 whatever rounding did to the others */
        double sum = 0;
        for (uint32_t c = 0; c <= 2 * max_noise; c++) {
            sum += p[c];
            uint64_t units = (uint64_t)llround(sum * (double)CC_PTABLE_UNITS);
            t->cumulative[r][c] = c == 2 * max_noise || units > CC_PTABLE_UNITS
                                      ? CC_PTABLE_UNITS
                                      : units;
        }
    }
}

int32_t cc_ptable_noise(const struct cc_ptable *t, uint64_t count, uint32_t draw)
{
    uint32_t r = count < t->max_noise ? (uint32_t)count : t->max_noise;
    for (uint32_t c = 0; c < 2 * t->max_noise; c++)
        if (draw < t->cumulative[r][c])
            return (int32_t)c - (int32_t)t->max_noise;
    return (int32_t)t->max_noise;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint32_t cc_release_draw(uint64_t a, uint64_t b)
{
    return (uint32_t)(mix64(mix64(a + 0x9e3779b97f4a7c15ULL) ^ (b * 0xd6e8feb86659fd93ULL)) >> 32);
}

uint64_t cc_release_round(uint64_t value, uint32_t base, uint32_t threshold)
{
    uint64_t rounded = (value + base / 2) / base * base;
    if (rounded < threshold)
        rounded = ((uint64_t)threshold + base - 1) / base * base;
    return rounded;
}

uint32_t cc_release_low_effect_threshold(const struct cc_policy *policy, uint64_t seed)
{
    uint32_t s = policy->low_effect_spread;
    uint32_t draw = cc_release_draw(seed, 0x6c6f772d65666665ULL); /* "low-effe" */
    return policy->low_effect_persons - s + (uint32_t)((uint64_t)draw * (2 * s + 1) >> 32);
}

const char *cc_release_reason_name(int reason)
{
    switch (reason) {
#define CC_RELEASE_REASON_NAME_(name, value, text)                                                 \
    case value:                                                                                    \
        return text;
        CC_RELEASE_REASON_MAP(CC_RELEASE_REASON_NAME_)
#undef CC_RELEASE_REASON_NAME_
    }
    return NULL;
}

/* A refusal with its reason. */
#define refuse(errbuf, errlen, ...) cc_errorf(errbuf, errlen, CC_EREFUSED, __VA_ARGS__)

/* ---- query restrictions, on public figures only ---- */

/* Years of [lo, hi] inside [from, to]. */
static int overlap_years(int lo, int hi, int from, int to)
{
    int a = lo > from ? lo : from, b = hi < to ? hi : to;
    return b < a ? 0 : b - a + 1;
}

/*
 * The public (ONS estimate) population of the query's universe (its areas,
 * ages and sexes; a 5-year estimate band that the age range or an age band
 * covers in part counts in proportion), and the smallest public population
 * of a person cell: one value of each of the query's area, age band and sex
 * dimensions, within the universe (a practice dimension divides it by the
 * number of practices, as practices have no estimates). Settings and
 * periods do not split persons. Returns 0 or CC_ENOMEM.
 */
static int public_universe(const struct cc_store_columns *c, const struct cc_query *q,
                           const struct cc_raw_result *raw, double *population,
                           double *smallest_cell)
{
    const struct cc_query_filters *f = &q->filters;
    int age_from = f->age.present ? f->age.min_years : 0;
    int age_to = f->age.present ? f->age.max_years : 150;
    /* the person dimensions, as a mixed-radix cell index */
    uint32_t kinds[CC_QUERY_DIMENSIONS_CAP], radix[CC_QUERY_DIMENSIONS_CAP], n_person_dims = 0;
    uint32_t sex_value[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX}; /* of male (1), female (2) */
    const struct cc_raw_dimension *age_dim = NULL;
    uint64_t n_cells = 1;
    double practices = 1;
    for (uint32_t d = 0; d < raw->n_dimensions; d++) {
        const struct cc_raw_dimension *dim = &raw->dimensions[d];
        if (dim->kind == CC_DIM_PRACTICE)
            practices *= dim->n_values ? dim->n_values : 1;
        if (dim->kind != CC_DIM_REGION && dim->kind != CC_DIM_ICB && dim->kind != CC_DIM_LAD &&
            dim->kind != CC_DIM_AGE_BAND && dim->kind != CC_DIM_SEX)
            continue;
        if (dim->kind == CC_DIM_AGE_BAND)
            age_dim = dim;
        if (dim->kind == CC_DIM_SEX)
            for (uint32_t v = 0; v < dim->n_values && v < 4; v++)
                if (v != dim->total && (dim->sex_code[v] == CC_SEX_MALE ||
                                        dim->sex_code[v] == CC_SEX_FEMALE))
                    sex_value[dim->sex_code[v]] = v;
        kinds[n_person_dims] = dim->kind;
        radix[n_person_dims++] = dim->n_values ? dim->n_values : 1;
        n_cells *= dim->n_values ? dim->n_values : 1;
    }
    uint32_t n_bands = age_dim ? age_dim->n_values : 1;
    int by_lsoa = f->areas.n_codes && f->areas.index && f->areas.level == CC_AREA_LSOA;
    uint32_t n_level = by_lsoa                         ? c->n_lsoa
                       : f->areas.level == CC_AREA_LAD ? c->n_lad
                       : f->areas.level == CC_AREA_ICB ? c->n_icb
                                                       : c->n_region;
    uint8_t *area_in = f->areas.n_codes && f->areas.index ? calloc(n_level + 1, 1) : NULL;
    double *cell_population = calloc(n_cells, sizeof *cell_population);
    uint8_t *cell_in = calloc(n_cells, 1);
    /* fraction[b][v]: the share of estimate band b inside age band v and
     * the age range */
    double(*fraction)[CC_EXEC_MAX_AGE_BANDS] = calloc(CC_N_AGE_BANDS_5Y, sizeof *fraction);
    /* The estimates are added up by district (kept with the data version),
     * as no person dimension or area filter is finer, except a filter of
     * LSOAs: then by its LSOAs. */
    const size_t row = 2 * CC_N_AGE_BANDS_5Y;
    const uint32_t *by_lad = raw->lad_estimates_;
    uint32_t *summed = NULL;
    int rc = CC_ENOMEM;
    if (!by_lsoa && !by_lad && c->population) {
        if (!(summed = calloc((c->n_lad ? c->n_lad : 1) * row, sizeof *summed)))
            goto out;
        for (uint32_t l = 0; l < c->n_lsoa; l++)
            for (size_t i = 0; i < row; i++)
                summed[c->lsoa_lad[l] * row + i] += c->population[(size_t)l * row + i];
        by_lad = summed;
    }
    if ((f->areas.n_codes && f->areas.index && !area_in) || !cell_population || !cell_in ||
        !fraction)
        goto out;
    for (uint32_t i = 0; area_in && i < f->areas.n_codes; i++)
        if (f->areas.index[i] < n_level)
            area_in[f->areas.index[i]] = 1;
    for (int b = 0; b < CC_N_AGE_BANDS_5Y; b++) {
        int lo = b * 5, hi = b == CC_N_AGE_BANDS_5Y - 1 ? 104 : b * 5 + 4;
        for (uint32_t v = 0; v < n_bands; v++) {
            if (age_dim && v == age_dim->total)
                continue; /* a margin: larger than the cells it totals */
            uint32_t n_own = age_dim && age_dim->total != CC_RAW_NO_TOTAL ? n_bands - 1 : n_bands;
            int band_lo = age_dim ? age_dim->age_lower[v] : 0;
            int band_hi = age_dim && v + 1 < n_own ? age_dim->age_lower[v + 1] - 1 : 150;
            int from = band_lo > age_from ? band_lo : age_from;
            int to = band_hi < age_to ? band_hi : age_to;
            fraction[b][v] = (double)overlap_years(lo, hi, from, to) / (hi - lo + 1);
        }
    }
    double total = 0;
    uint32_t n_units = !c->population ? 0 : by_lsoa ? c->n_lsoa : c->n_lad;
    for (uint32_t unit = 0; unit < n_units; unit++) {
        uint32_t lad = by_lsoa ? c->lsoa_lad[unit] : unit, icb = c->lad_icb[lad],
                 region = c->icb_region[icb];
        if (area_in && !area_in[by_lsoa                         ? unit
                                : f->areas.level == CC_AREA_LAD ? lad
                                : f->areas.level == CC_AREA_ICB ? icb
                                                                : region])
            continue;
        const uint32_t *estimates = (by_lsoa ? c->population : by_lad) + (size_t)unit * row;
        for (int sex = 1; sex <= 2; sex++) {
            if (f->sex_mask && !(f->sex_mask & (1u << sex)))
                continue;
            for (int b = 0; b < CC_N_AGE_BANDS_5Y; b++) {
                double estimate = estimates[(uint64_t)(sex - 1) * CC_N_AGE_BANDS_5Y + (uint64_t)b];
                for (uint32_t v = 0; v < n_bands; v++) {
                    /* a margin has no share (and no column: with 121
                     * single-year bands it is value 121) */
                    if ((age_dim && v == age_dim->total) || fraction[b][v] <= 0)
                        continue;
                    uint64_t cell = 0;
                    int in_table = 1;
                    for (uint32_t k = 0; k < n_person_dims; k++) {
                        uint32_t value = kinds[k] == CC_DIM_REGION ? region
                                         : kinds[k] == CC_DIM_ICB  ? icb
                                         : kinds[k] == CC_DIM_LAD  ? lad
                                         : kinds[k] == CC_DIM_SEX  ? sex_value[sex]
                                                                   : v;
                        in_table &= value < radix[k];
                        cell = cell * radix[k] + (value < radix[k] ? value : 0);
                    }
                    if (!in_table)
                        continue;
                    cell_in[cell] = 1;
                    cell_population[cell] += estimate * fraction[b][v];
                    total += estimate * fraction[b][v];
                }
            }
        }
    }
    double smallest = -1;
    for (uint64_t i = 0; i < n_cells; i++)
        if (cell_in[i] && (smallest < 0 || cell_population[i] < smallest))
            smallest = cell_population[i];
    *population = total;
    *smallest_cell = smallest < 0 ? 0 : smallest / practices;
    rc = 0;
out:
    free(summed);
    free(area_in);
    free(cell_population);
    free(cell_in);
    free(fraction);
    return rc;
}

/* ---- seeds of restrictions ---- */

static const char *restriction_name(const struct cc_query_restriction *r, char *buf, size_t len)
{
    switch (r->kind) {
    case CC_RESTRICT_CONDITION:
        snprintf(buf, len, "filters.conditions[%u]", r->condition);
        return buf;
    case CC_RESTRICT_DATE_RANGE:
        return "filters.date_range";
    case CC_RESTRICT_AGE:
        return "filters.age";
    case CC_RESTRICT_SEX:
        return "filters.sex";
    case CC_RESTRICT_SETTINGS:
        return "filters.settings";
    case CC_RESTRICT_AREAS:
        return "filters.areas";
    }
    return "filters";
}

/* The seed of an area list: the districts it covers, whatever the level it
 * names, so that a region and the list of its ICBs agree; a list of LSOAs
 * covers the districts whose every LSOA it names, and adds its other LSOAs
 * one by one (after the districts, in LSOA order). Into *seed, which
 * holds the restriction kind's; 0 or CC_ENOMEM. */
static int areas_seed(const struct cc_query_filters *f, const struct cc_store_columns *c,
                      uint64_t *seed_io)
{
    uint64_t seed = *seed_io;
    if (!c || !f->areas.index)
        return 0;
    if (f->areas.level != CC_AREA_LSOA) {
        for (uint32_t lad = 0; lad < c->n_lad; lad++) {
            uint32_t icb = c->lad_icb[lad];
            uint32_t area = f->areas.level == CC_AREA_LAD   ? lad
                            : f->areas.level == CC_AREA_ICB ? icb
                                                            : c->icb_region[icb];
            for (uint32_t i = 0; i < f->areas.n_codes; i++)
                if (f->areas.index[i] == area) {
                    seed = mix64(seed ^ ((uint64_t)lad + 1));
                    break;
                }
        }
        *seed_io = seed;
        return 0;
    }
    uint8_t *in = calloc((size_t)c->n_lsoa + 1, 1);
    uint32_t *named = calloc((size_t)c->n_lad + 1, sizeof *named);
    uint32_t *size = calloc((size_t)c->n_lad + 1, sizeof *size);
    int rc = in && named && size ? 0 : CC_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < f->areas.n_codes; i++)
        if (f->areas.index[i] < c->n_lsoa)
            in[f->areas.index[i]] = 1;
    for (uint32_t l = 0; rc == 0 && l < c->n_lsoa; l++) {
        size[c->lsoa_lad[l]]++;
        named[c->lsoa_lad[l]] += in[l];
    }
    for (uint32_t lad = 0; rc == 0 && lad < c->n_lad; lad++)
        if (size[lad] && named[lad] == size[lad])
            seed = mix64(seed ^ ((uint64_t)lad + 1));
    for (uint32_t l = 0; rc == 0 && l < c->n_lsoa; l++)
        if (in[l] && named[c->lsoa_lad[l]] != size[c->lsoa_lad[l]])
            seed = mix64(seed ^ ((uint64_t)l + 1) ^ (uint64_t)1 << 40);
    free(in);
    free(named);
    free(size);
    if (rc == 0)
        *seed_io = seed;
    return rc;
}

/* restriction_seed() but for the areas of an area list. */
static uint64_t kind_seed(const struct cc_query *q, const struct cc_raw_result *raw, uint32_t r)
{
    const struct cc_query_restriction *res = &raw->restrictions[r];
    const struct cc_query_filters *f = &q->filters;
    uint64_t seed = mix64((uint64_t)res->kind << 56);
    switch (res->kind) {
    case CC_RESTRICT_CONDITION:
        return mix64(seed ^ raw->condition_key[r] ^
                     ((uint64_t)(res->condition < f->n_conditions &&
                                 f->conditions[res->condition].exclude)
                      << 40));
    case CC_RESTRICT_DATE_RANGE:
        return mix64(seed ^ (uint64_t)(uint32_t)f->date_range.from ^
                     (uint64_t)(uint32_t)f->date_range.to << 32);
    case CC_RESTRICT_AGE: {
        uint64_t max = f->age.max_years > 120 ? 120 : f->age.max_years;
        return mix64(seed ^ f->age.min_years ^ max << 8);
    }
    case CC_RESTRICT_SEX:
        return mix64(seed ^ f->sex_mask);
    case CC_RESTRICT_SETTINGS:
        return mix64(seed ^ f->setting_mask);
    case CC_RESTRICT_AREAS: /* and the areas' (areas_seed) */
        return seed;
    }
    return seed;
}

/* The seed of restriction r: for a condition, the key sum of the persons it
 * matches (so equivalent wordings agree, and the seed follows the persons,
 * not the text) with whether it is excluded; for the other filters, their
 * canonical value (an area list as the districts it covers, areas_seed;
 * an age range with its upper bound capped where no one is older). 0 or
 * CC_ENOMEM. */
static int restriction_seed(const struct cc_query *q, const struct cc_raw_result *raw, uint32_t r,
                            uint64_t *out)
{
    *out = kind_seed(q, raw, r);
    if (raw->restrictions[r].kind == CC_RESTRICT_AREAS)
        return areas_seed(&q->filters, raw->columns_, out);
    return 0;
}

/* ---- the answer ---- */

void cc_release_tables_build(const struct cc_policy *policy, uint64_t noise_epoch,
                             struct cc_release_tables *tables)
{
    tables->epoch = policy->publication_noise ? noise_epoch : 0;
    cc_ptable_build(policy->max_noise, policy->noise_variance, &tables->cell_layer);
    cc_ptable_build(policy->condition_max_noise, policy->condition_noise_variance,
                    &tables->condition_layer);
}

struct cc_released_count cc_release_protect(const struct cc_policy *policy,
                                            const struct cc_release_tables *tables,
                                            uint64_t layer_seed, uint64_t measure, uint64_t count,
                                            uint32_t cell_key)
{
    uint64_t value = count;
    if (policy->perturb) {
        /* epoch 0 (no publication noise) leaves both draws as they were */
        uint64_t epoch = tables->epoch;
        int32_t j = cc_ptable_noise(&tables->cell_layer, value,
                                    cc_release_draw(cell_key ^ epoch, measure));
        value = (uint64_t)((int64_t)value + j);
        j = cc_ptable_noise(&tables->condition_layer, value,
                            cc_release_draw(cell_key ^ (uint64_t)cell_key << 32 ^ epoch,
                                            layer_seed));
        value = (uint64_t)((int64_t)value + j);
    }
    uint8_t done = policy->perturb              ? CC_CELL_PERTURBED
                   : policy->rounding_base > 1 ? CC_CELL_ROUNDED
                                               : CC_CELL_SHOWN;
    if ((value == 0 && !policy->show_zeros) || (value > 0 && value < policy->threshold))
        return (struct cc_released_count){0, 0, CC_CELL_SUPPRESSED_PRIMARY};
    if (value > 0)
        value = cc_release_round(value, policy->rounding_base, policy->threshold);
    return (struct cc_released_count){value, 1, done};
}

double cc_release_noise_variance(const struct cc_policy *policy)
{
    if (policy->perturb && policy->mode != CC_POLICY_MODE_FIXED)
        return policy->noise_variance + policy->condition_noise_variance;
    return 0;
}

void cc_release_summary_init(const struct cc_policy *policy, struct cc_release_summary *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->policy_version, sizeof s->policy_version, "%s", policy->version);
    s->threshold = policy->threshold;
    s->rounding_base = policy->rounding_base;
    s->perturbed = policy->perturb;
    s->max_noise = policy->perturb ? policy->max_noise : 0;
    s->condition_max_noise = policy->perturb ? policy->condition_max_noise : 0;
    s->zeros_shown = policy->show_zeros;
}

void cc_release_summary_count(struct cc_release_summary *s, uint8_t reason)
{
    switch (reason) {
    case CC_CELL_SHOWN:
        s->n_shown++;
        break;
    case CC_CELL_SUPPRESSED_PRIMARY:
        s->n_suppressed_primary++;
        break;
    case CC_CELL_SUPPRESSED_SECONDARY:
        s->n_suppressed_secondary++;
        break;
    case CC_CELL_PERTURBED:
        s->n_perturbed++;
        break;
    case CC_CELL_ROUNDED:
        s->n_rounded++;
        break;
    }
}

int cc_release_check(const struct cc_policy *policy, const struct cc_store_columns *columns,
                     const struct cc_query *query, const struct cc_raw_result *raw,
                     uint64_t *layer_seed_out, char *errbuf, size_t errlen)
{
    if (policy->restrict_queries) {
        double population, smallest_cell;
        int rc = public_universe(columns, query, raw, &population, &smallest_cell);
        if (rc != 0)
            return rc;
        if (population < (double)policy->min_population)
            return refuse(errbuf, errlen,
                          "filters: the population of the query's areas, ages and sexes is below "
                          "the minimum of %llu (min_population)",
                          (unsigned long long)policy->min_population);
        if (smallest_cell < (double)policy->min_cell_population)
            return refuse(errbuf, errlen,
                          "dimensions: too fine together: a cell's population is below %llu "
                          "(min_cell_population)",
                          (unsigned long long)policy->min_cell_population);
    }

    /* Low-effect refusal, and the seed of the condition layer: a
     * commutative sum, so reordering restrictions changes nothing. */
    uint64_t layer_seed = mix64(query->measure);
    *layer_seed_out = 0;
    for (uint32_t r = 0; r < raw->n_restrictions; r++) {
        uint64_t seed;
        if (restriction_seed(query, raw, r, &seed) != 0)
            return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
        layer_seed += mix64(seed);
        if (!policy->refuse_low_effect)
            continue;
        /* Without conditions, a date range or settings choose which records
         * are counted and cannot change the cohort of persons: their effect
         * on it is 0 by construction, not by the data, so the rule does not
         * apply (their seed still enters the condition layer above). */
        uint8_t kind = raw->restrictions[r].kind;
        if ((kind == CC_RESTRICT_DATE_RANGE || kind == CC_RESTRICT_SETTINGS) &&
            query->filters.n_conditions == 0)
            continue;
        uint64_t without = raw->cohort_without[r];
        uint64_t effect = without > raw->cohort_persons ? without - raw->cohort_persons : 0;
        char name[48];
        if (effect < cc_release_low_effect_threshold(policy, seed))
            return refuse(errbuf, errlen,
                          "%s: changes the cohort by too few persons (low-effect rule)",
                          restriction_name(&raw->restrictions[r], name, sizeof name));
    }

    *layer_seed_out = layer_seed;
    return 0;
}

/* The fingerprint of a query for the ledger: its restrictions as written
 * (the canonical encoding of the query without its dimensions and
 * margins). The same restrictions asked again, in any table (by region,
 * then by sex; a count, then a comparison of it), have the same cohort by
 * construction, so their difference of 0 says nothing and they are
 * answered. It is the wording, not the person sets: two wordings whose
 * person sets happen to agree (E11, and E11 or a code only the target
 * might have) are two queries, so that "answered" never tells a difference
 * of 0 from one of 1. */
static int restrictions_fingerprint(const struct cc_query *query, uint64_t *out)
{
    struct cc_query *copy = NULL;
    int rc = cc_query_clone(query, &copy);
    if (rc < 0)
        return rc;
    copy->n_dimensions = 0;
    copy->margins = false;
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    rc = cc_query_pack(copy, &packer);
    uint64_t h = 0x6c65646765722d31ULL; /* "ledger-1" */
    for (size_t i = 0; rc == 0 && i < buffer.size; i++)
        h = mix64(h ^ (uint8_t)buffer.data[i]) + i;
    msgpack_sbuffer_destroy(&buffer);
    cc_query_free(copy);
    *out = h;
    return rc == 0 ? 0 : CC_ENOMEM;
}

int cc_release_ledger_admit(const struct cc_policy *policy, const struct cc_release_asker *asker,
                            const struct cc_query *query, const struct cc_raw_result *raw,
                            char *errbuf, size_t errlen)
{
    if (!asker || !asker->ledger)
        return 0;
    uint64_t fingerprint;
    int rc = restrictions_fingerprint(query, &fingerprint);
    if (rc < 0)
        return cc_errorf(errbuf, errlen, rc, "ledger: out of memory");
    if (!raw->cohort_bits)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "ledger: the cohort's keys were not collected");
    /* the cohort's hash first: the same restrictions again (in any table)
     * need no keys listed */
    if (cc_ledger_knows(asker->ledger, asker->account_id, fingerprint, raw->cohort_persons,
                        raw->cohort_hash))
        return 0;
    uint32_t *keys = NULL;
    if ((rc = cc_raw_result_cohort_keys(raw, &keys)) != 0)
        return cc_errorf(errbuf, errlen, rc, "ledger: the cohort's keys could not be listed");
    rc = cc_ledger_admit(asker->ledger, asker->account_id, policy, fingerprint, keys,
                         raw->cohort_persons, (int64_t)time(NULL), errbuf, errlen);
    free(keys);
    return rc;
}

bool cc_release_cells_apply(const struct cc_policy *policy, const cc_ledger *ledger)
{
    return ledger && policy->ledger_cell_max > 0 && policy->mode != CC_POLICY_MODE_FIXED;
}

_Static_assert(CC_EXEC_SKETCH_BUCKETS == CC_LEDGER_SKETCH_BUCKETS,
               "the engine's sketches are the ledger's");

int cc_release_cells_admit(const struct cc_policy *policy, const struct cc_release_asker *asker,
                           uint64_t n, const uint64_t *persons, const uint32_t *sketches,
                           struct cc_released_count *cells, char *errbuf, size_t errlen)
{
    if (!asker || !asker->ledger)
        return 0;
    struct cc_ledger_cell *book = malloc((n ? n : 1) * sizeof *book);
    if (!book)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
    for (uint64_t i = 0; i < n; i++) {
        book[i].persons = persons[i];
        book[i].sketch = sketches + i * CC_EXEC_SKETCH_BUCKETS;
        book[i].value = cells[i].value;
        book[i].released = cells[i].released;
        book[i].reason = cells[i].reason;
    }
    int rc = cc_ledger_admit_cells(asker->ledger, asker->account_id, policy, book, n,
                                   (int64_t)time(NULL), errbuf, errlen);
    for (uint64_t i = 0; rc == 0 && i < n; i++)
        if (book[i].pinned) {
            cells[i].value = book[i].value;
            cells[i].released = book[i].released;
            cells[i].reason = book[i].reason;
        }
    free(book);
    return rc;
}

int cc_release_answer(const struct cc_policy *policy, const struct cc_release_asker *asker,
                      const struct cc_dataversion *version, const struct cc_query *query,
                      const struct cc_exec_options *options, cc_release **out, char *errbuf,
                      size_t errlen)
{
    cc_ledger *ledger = asker ? asker->ledger : NULL;
    struct cc_exec_options with_keys = {0};
    if (options)
        with_keys = *options;
    with_keys.cohort_hash = ledger != NULL; /* the keys only if the ledger needs them */
    with_keys.cell_sketches = cc_release_cells_apply(policy, ledger);
    options = &with_keys;
    *out = NULL;
    int rc = cc_policy_check(policy, errbuf, errlen);
    if (rc)
        return rc;
    const struct cc_store_columns *columns = cc_store_columns(cc_dataversion_store(version));
    if (policy->restrict_queries) {
        struct cc_query_extent extent;
        cc_query_extent_default(&extent);
        cc_query_extent_from_store(columns, &extent);
        if (cc_query_n_cells(query, &extent) > policy->max_cells)
            return refuse(errbuf, errlen, "dimensions: more than %llu cells (max_cells)",
                          (unsigned long long)policy->max_cells);
    }

    struct cc_raw_result raw;
    memset(&raw, 0, sizeof raw);
    if ((rc = cc_exec_run(version, query, options, &raw, errbuf, errlen)) != 0)
        return rc;

    uint64_t layer_seed;
    if ((rc = cc_release_check(policy, columns, query, &raw, &layer_seed, errbuf, errlen)) != 0)
        goto out;
    if (ledger &&
        (rc = cc_release_ledger_admit(policy, asker, query, &raw, errbuf, errlen)) != 0)
        goto out;

    cc_release *release = calloc(1, sizeof *release);
    if (!release || !(release->cells = calloc(raw.n_cells ? raw.n_cells : 1,
                                              sizeof *release->cells))) {
        free(release);
        rc = CC_ENOMEM;
        goto out;
    }
    /* fixed mode: no noise, then secondary suppression (below) */
    struct cc_policy fixed;
    if (policy->mode == CC_POLICY_MODE_FIXED) {
        fixed = *policy;
        fixed.perturb = false;
        policy = &fixed;
    }
    struct cc_release_summary *s = &release->summary;
    cc_release_summary_init(policy, s);
    s->n_cells = raw.n_cells;
    release->n_dimensions = raw.n_dimensions;
    memcpy(release->dimensions, raw.dimensions, sizeof release->dimensions);
    release->columns = raw.columns_;

    struct cc_release_tables tables;
    cc_release_tables_build(policy, raw.noise_epoch, &tables);
    for (uint64_t i = 0; i < raw.n_cells; i++)
        release->cells[i] = cc_release_protect(policy, &tables, layer_seed, query->measure,
                                               raw.count[i], raw.cell_key[i]);
    if (policy->mode == CC_POLICY_MODE_FIXED &&
        (rc = cc_release_fixed_secondary(policy, query->measure, &raw, release->cells)) != 0) {
        cc_release_free(release);
        goto out;
    }
    if (raw.cell_sketch &&
        (rc = cc_release_cells_admit(policy, asker, raw.n_cells, raw.count, raw.cell_sketch,
                                     release->cells, errbuf, errlen)) != 0) {
        cc_release_free(release);
        goto out;
    }
    for (uint64_t i = 0; i < raw.n_cells; i++)
        cc_release_summary_count(s, release->cells[i].reason);
    *out = release;
out:
    cc_raw_result_free(&raw);
    return rc;
}

void cc_release_free(cc_release *release)
{
    if (!release)
        return;
    free(release->cells);
    free(release);
}

/* ---- reading ---- */

const struct cc_release_summary *cc_release_summary(const cc_release *release)
{
    return &release->summary;
}

uint64_t cc_release_n_cells(const cc_release *release)
{
    return release->summary.n_cells;
}

uint32_t cc_release_n_dimensions(const cc_release *release)
{
    return release->n_dimensions;
}

int cc_release_dimension_kind(const cc_release *release, uint32_t d)
{
    return d < release->n_dimensions ? release->dimensions[d].kind : 0;
}

uint32_t cc_release_dimension_size(const cc_release *release, uint32_t d)
{
    return d < release->n_dimensions ? release->dimensions[d].n_values : 0;
}

void cc_release_label(const cc_release *release, uint32_t d, uint32_t v, char *buf, size_t len)
{
    /* the engine's labeller reads only the dimensions and the columns */
    struct cc_raw_result shell;
    memset(&shell, 0, sizeof shell);
    shell.n_dimensions = release->n_dimensions;
    memcpy(shell.dimensions, release->dimensions, sizeof shell.dimensions);
    shell.columns_ = release->columns;
    if (d >= release->n_dimensions || v >= release->dimensions[d].n_values) {
        snprintf(buf, len, "?");
        return;
    }
    cc_raw_result_label(&shell, d, v, buf, len);
}

uint32_t cc_release_coordinate(const cc_release *release, uint64_t cell, uint32_t d)
{
    uint64_t stride = 1;
    for (uint32_t i = release->n_dimensions; i-- > d + 1;)
        stride *= release->dimensions[i].n_values;
    return (uint32_t)(cell / stride % release->dimensions[d].n_values);
}

struct cc_released_count cc_release_cell(const cc_release *release, uint64_t cell)
{
    if (cell >= release->summary.n_cells)
        return (struct cc_released_count){0, 0, CC_CELL_SUPPRESSED_PRIMARY};
    return release->cells[cell];
}
