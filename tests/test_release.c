/*
 * Tests for disclosure control (queries/cc_release*.c): the perturbation
 * table's properties as derived from its constraints, rounding, the
 * low-effect threshold, each refusal rule, the release's reason codes and
 * summary, the encoders, and properties over 2,000 random queries on the
 * planted-target population (no released value in 1..threshold-1, every
 * value a multiple of the base, a repeat identical, an equivalent rewording
 * identical).
 */
#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_compare.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_ledger.h"
#include "cc_policy.h"
#include "cc_release.h"
#include "cc_release_internal.h"

/* ---- the perturbation table ---- */

static void check_table(uint32_t max_noise, double variance)
{
    struct cc_ptable t;
    cc_ptable_build(max_noise, variance, &t);
    for (uint32_t r = 0; r <= max_noise; r++) {
        double sum = 0, mean = 0, second = 0;
        for (uint32_t c = 0; c <= 2 * max_noise; c++) {
            double p = t.probability[r][c];
            int32_t noise = (int32_t)c - (int32_t)max_noise;
            cr_assert_geq(p, 0.0);
            if (p > 0) {
                cr_assert_leq(abs(noise), (int32_t)max_noise);
                /* no count is taken below zero */
                cr_assert_geq((int64_t)r + noise, 0, "D %u row %u noise %d", max_noise, r, noise);
            }
            sum += p;
            mean += p * noise;
            second += p * noise * noise;
        }
        cr_assert_float_eq(sum, 1.0, 1e-12, "D %u row %u sums to %g", max_noise, r, sum);
        cr_assert_float_eq(mean, 0.0, 1e-12, "D %u row %u is biased: %g", max_noise, r, mean);
        uint32_t m = r < max_noise ? r : max_noise;
        double reach = m == 0 ? 0 : cc_policy_max_variance(m);
        double expected = variance < reach ? variance : reach;
        cr_assert_float_eq(second, expected, 1e-9, "D %u V %g row %u: variance %g, expected %g",
                           max_noise, variance, r, second, expected);
        cr_assert_eq(t.cumulative[r][2 * max_noise], CC_PTABLE_UNITS);
        /* the draws reproduce the probabilities: count noises over 2^16
         * evenly spaced draws */
        uint32_t seen[CC_PTABLE_COLUMNS] = {0};
        for (uint32_t i = 0; i < 65536; i++)
            seen[cc_ptable_noise(&t, r, i << 16) + (int32_t)max_noise]++;
        for (uint32_t c = 0; c <= 2 * max_noise; c++)
            cr_assert_float_eq(seen[c] / 65536.0, t.probability[r][c], 1.0 / 65536 + 1e-12);
    }
    /* counts past the last row use it */
    cr_assert_eq(cc_ptable_noise(&t, 1000000, 0), cc_ptable_noise(&t, max_noise, 0));
}

Test(ptable, every_row_sums_to_one_is_unbiased_bounded_and_has_the_variance)
{
    for (uint32_t d = 0; d <= CC_POLICY_MAX_NOISE_CAP; d++) {
        if (d == 0) {
            check_table(0, 0);
            continue;
        }
        double reach = cc_policy_max_variance(d);
        double variances[] = {reach / 10, 0.5, 1.0, 2.0, reach};
        for (size_t i = 0; i < 5; i++)
            if (variances[i] <= reach)
                check_table(d, variances[i]);
    }
}

Test(ptable, the_default_table_is_as_documented)
{
    struct cc_ptable t;
    cc_ptable_build(3, 2.0, &t);
    /* full rows: 4/7 no noise, 1/14 on each of -3..-1, 1..3 */
    cr_assert_float_eq(t.probability[3][3], 1 - 2.0 / (28.0 / 6), 1e-12);
    cr_assert_float_eq(t.probability[3][0], (2.0 / (28.0 / 6)) / 6, 1e-12);
    /* a count of 1 goes to 0 or 2, evenly, never stays 1 */
    cr_assert_float_eq(t.probability[1][2], 0.5, 1e-12);
    cr_assert_float_eq(t.probability[1][4], 0.5, 1e-12);
    cr_assert_float_eq(t.probability[1][3], 0.0, 1e-12);
    /* an empty cell stays empty */
    cr_assert_float_eq(t.probability[0][3], 1.0, 1e-12);
}

Test(release, rounding_is_to_the_nearest_multiple_and_never_below_the_threshold)
{
    cr_assert_eq(cc_release_round(8, 5, 8), 10);
    cr_assert_eq(cc_release_round(12, 5, 8), 10);
    cr_assert_eq(cc_release_round(13, 5, 8), 15);
    cr_assert_eq(cc_release_round(7, 5, 7), 10); /* 5 would be below 7 */
    cr_assert_eq(cc_release_round(10, 10, 10), 10);
    cr_assert_eq(cc_release_round(14, 10, 10), 10);
    cr_assert_eq(cc_release_round(15, 10, 10), 20);
    cr_assert_eq(cc_release_round(9, 1, 8), 9);
    for (uint64_t v = 8; v < 500; v++) {
        uint64_t r = cc_release_round(v, 5, 8);
        cr_assert_eq(r % 5, 0);
        cr_assert_geq(r, 8);
        cr_assert_leq(r > v ? r - v : v - r, 2);
    }
}

Test(release, the_low_effect_threshold_is_sticky_and_spans_its_range)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned seen[32] = {0};
    for (uint64_t seed = 0; seed < 5000; seed++) {
        uint32_t t = cc_release_low_effect_threshold(&p, seed * 0x9e3779b97f4a7c15ULL);
        cr_assert_geq(t, p.low_effect_persons - p.low_effect_spread);
        cr_assert_leq(t, p.low_effect_persons + p.low_effect_spread);
        cr_assert_eq(t, cc_release_low_effect_threshold(&p, seed * 0x9e3779b97f4a7c15ULL));
        seen[t]++;
    }
    for (uint32_t t = 6; t <= 10; t++)
        cr_assert_gt(seen[t], 700, "threshold %u drawn %u times of 5000", t, seen[t]);
}

Test(release, reason_names_come_from_the_table)
{
    cr_assert_str_eq(cc_release_reason_name(CC_CELL_SHOWN), "shown");
    cr_assert_str_eq(cc_release_reason_name(CC_CELL_SUPPRESSED_PRIMARY), "suppressed");
    cr_assert_str_eq(cc_release_reason_name(CC_CELL_SUPPRESSED_SECONDARY), "suppressed_secondary");
    cr_assert_str_eq(cc_release_reason_name(CC_CELL_PERTURBED), "perturbed");
    cr_assert_str_eq(cc_release_reason_name(CC_CELL_ROUNDED), "rounded");
    cr_assert_null(cc_release_reason_name(0));
    cr_assert_null(cc_release_reason_name(6));
}

/* ---- releases over the planted population ---- */

static struct cc_attack_fixture fx;

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
}

static struct cc_query *query(int measure)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(measure, &q), 0);
    return q;
}

static void dim(struct cc_query *q, int kind, int banding)
{
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    memset(d, 0, sizeof *d);
    d->kind = (uint8_t)kind;
    d->age_banding = (uint8_t)banding;
}

/* Answers q (binding it first) and returns the rc; *out set on success. */
static int answer(const struct cc_policy *p, struct cc_query *q, cc_release **out, char *err,
                  size_t errlen)
{
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return cc_release_answer(p, NULL, fx.version, q, &fx.options, out, err, errlen);
}

static void check_values(const struct cc_policy *p, const cc_release *r)
{
    const struct cc_release_summary *s = cc_release_summary(r);
    uint64_t kinds[6] = {0};
    for (uint64_t i = 0; i < cc_release_n_cells(r); i++) {
        struct cc_released_count c = cc_release_cell(r, i);
        cr_assert(c.reason >= 1 && c.reason <= 5);
        kinds[c.reason]++;
        if (!c.released) {
            cr_assert(c.reason == CC_CELL_SUPPRESSED_PRIMARY ||
                      c.reason == CC_CELL_SUPPRESSED_SECONDARY);
            cr_assert_eq(c.value, 0);
            continue;
        }
        cr_assert(c.value == 0 || c.value >= p->threshold, "released %llu",
                  (unsigned long long)c.value);
        cr_assert_eq(c.value % p->rounding_base, 0, "released %llu",
                     (unsigned long long)c.value);
        if (c.value == 0)
            cr_assert(p->show_zeros);
    }
    cr_assert_eq(kinds[CC_CELL_SHOWN], s->n_shown);
    cr_assert_eq(kinds[CC_CELL_SUPPRESSED_PRIMARY], s->n_suppressed_primary);
    cr_assert_eq(kinds[CC_CELL_SUPPRESSED_SECONDARY], s->n_suppressed_secondary);
    cr_assert_eq(kinds[CC_CELL_PERTURBED], s->n_perturbed);
    cr_assert_eq(kinds[CC_CELL_ROUNDED], s->n_rounded);
    cr_assert_eq(s->n_cells, cc_release_n_cells(r));
}

static int same_release(const cc_release *a, const cc_release *b)
{
    if (cc_release_n_cells(a) != cc_release_n_cells(b))
        return 0;
    for (uint64_t i = 0; i < cc_release_n_cells(a); i++) {
        struct cc_released_count x = cc_release_cell(a, i), y = cc_release_cell(b, i);
        if (x.value != y.value || x.released != y.released || x.reason != y.reason)
            return 0;
    }
    return 1;
}

TestSuite(release_answer, .init = fixture_init, .fini = fixture_fini, .timeout = 600);

Test(release_answer, a_table_is_protected_and_says_what_was_done)
{
    struct cc_policy p;
    cc_policy_default(&p);
    snprintf(p.version, sizeof p.version, "test-policy-7");
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_SEX, 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    const struct cc_release_summary *s = cc_release_summary(r);
    cr_assert_str_eq(s->policy_version, "test-policy-7");
    cr_assert_eq(s->threshold, 8);
    cr_assert_eq(s->rounding_base, 5);
    cr_assert_eq(s->max_noise, 3);
    cr_assert_eq(s->condition_max_noise, 2);
    cr_assert(s->perturbed && s->zeros_shown);
    /* the sex dimension has the four NHS codes: not known, male, female,
     * indeterminate (the fixture has only the middle two) */
    cr_assert_eq(cc_release_n_cells(r), 64);
    cr_assert_eq(cc_release_n_dimensions(r), 2);
    cr_assert_eq(cc_release_dimension_kind(r, 0), CC_DIM_LAD);
    cr_assert_eq(cc_release_dimension_size(r, 1), 4);
    char label[64];
    cc_release_label(r, 0, 3, label, sizeof label);
    cr_assert_str_eq(label, cc_attack_lad_code(&fx, 3));
    cc_release_label(r, 1, 2, label, sizeof label);
    cr_assert_str_eq(label, "female");
    cr_assert_eq(cc_release_coordinate(r, 14, 0), 3);
    cr_assert_eq(cc_release_coordinate(r, 14, 1), 2);
    check_values(&p, r);
    /* about 10% of 1,500 persons per district have E11: every cell is
     * perturbed (the empty ones too: the reason never tells them apart) */
    cr_assert_eq(s->n_perturbed, 64);
    uint64_t total = 0;
    for (uint64_t i = 0; i < 64; i++)
        total += cc_release_cell(r, i).value;
    cr_assert_gt(total, 500);
    cc_release_free(r);
    cc_query_free(q);
}

Test(release_answer, margins_are_cells_of_their_own_perturbed_independently)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_SEX, 0);
    q->margins = true;
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    /* 16 districts and their total; the four sexes and their total */
    cr_assert_eq(cc_release_n_cells(r), 17 * 5);
    check_values(&p, r);
    cr_assert_eq(cc_release_summary(r)->n_perturbed, 17 * 5);
    /* each margin has noise of its own: over 17 rows, some margin differs
     * from the sum of its released cells */
    unsigned differ = 0;
    for (uint32_t lad = 0; lad <= 16; lad++) {
        uint64_t sum = 0;
        for (uint32_t sex = 0; sex < 4; sex++)
            sum += cc_release_cell(r, lad * 5 + sex).value;
        differ += sum != cc_release_cell(r, lad * 5 + 4).value;
    }
    cr_assert_gt(differ, 0, "every margin is the sum of its cells");
    cc_release_free(r);
    cc_query_free(q);
}

Test(release_answer, without_noise_cells_are_rounded_or_shown_and_small_ones_suppressed)
{
    struct cc_policy p;
    cc_policy_default(&p);
    p.perturb = false;
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_SEX, 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    const struct cc_release_summary *s = cc_release_summary(r);
    cr_assert(!s->perturbed);
    cr_assert_eq(s->max_noise, 0);
    check_values(&p, r);
    /* ~8 E85 persons per district and sex: some cells below 8 */
    cr_assert_gt(s->n_suppressed_primary, 0);
    cr_assert_gt(s->n_rounded, 0);
    cr_assert_eq(s->n_perturbed, 0);
    cc_release_free(r);
    p.rounding_base = 1;
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    cr_assert_gt(cc_release_summary(r)->n_shown, 0);
    check_values(&p, r);
    cc_release_free(r);
    p.show_zeros = false;
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    check_values(&p, r);
    cc_release_free(r);
    cc_query_free(q);
}

Test(release_answer, an_unsafe_policy_is_refused_before_anything_runs)
{
    struct cc_policy p;
    cc_policy_default(&p);
    p.rounding_base = 0;
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    cc_release *r = (cc_release *)1;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EINVAL);
    cr_assert_null(r);
    cr_assert(strstr(err, "rounding_base"));
    cc_query_free(q);
}

Test(release_answer, a_small_universe_is_refused_on_its_public_population)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, 2)), 0);
    cc_attack_age(q, 40, 44);
    cc_attack_sex(q, CC_SEX_FEMALE);
    cc_release *r = NULL;
    char err[256];
    /* ~1,500 persons in the district, ~40 of them women aged 40-44 */
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "min_population"), "%s", err);
    cr_assert_null(r);
    /* the whole district is enough */
    cc_query_free(q);
    q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, 2)), 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    cc_release_free(r);
    cc_query_free(q);
}

/* An LSOA list is judged on the estimates of its own LSOAs (the universe
 * once read an LSOA's index as a region's: the first LSOAs passed as a
 * whole region, the others as nobody). The fixture's LSOAs hold ~375
 * persons each, four to a district, E01000001 being the first. */
Test(release_answer, an_lsoa_list_is_judged_on_its_own_lsoas)
{
    struct cc_policy p;
    cc_policy_default(&p);
    p.min_population = 1000;
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_area(q, CC_AREA_LSOA, "E01000001"), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "min_population"), "%s", err);
    cc_query_free(q);
    /* four LSOAs (the district E06000002) are enough */
    q = query(CC_MEASURE_PERSONS);
    for (int i = 5; i <= 8; i++) {
        char code[32];
        snprintf(code, sizeof code, "E010000%02d", i);
        cr_assert_eq(cc_attack_area(q, CC_AREA_LSOA, code), 0);
    }
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_release_n_cells(r), 1);
    cc_release_free(r);
    cc_query_free(q);
}

/* The list of a district's LSOAs names the same persons as the district:
 * the condition layer's seed (the areas a list covers) agrees, and so does
 * every released cell. */
Test(release_answer, the_lsoas_of_a_district_are_released_as_the_district)
{
    struct cc_policy p;
    cc_policy_default(&p);
    cc_release *by_lsoa = NULL, *by_lad = NULL;
    char err[256];
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_SEX, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    /* (90+ holds only planted targets, and 0-89 would leave out only them:
     * a low-effect filter) */
    cc_attack_age(q, 0, 79);
    for (int i = 9; i <= 12; i++) {
        char code[32];
        snprintf(code, sizeof code, "E010000%02d", i);
        cr_assert_eq(cc_attack_area(q, CC_AREA_LSOA, code), 0);
    }
    cr_assert_eq(answer(&p, q, &by_lsoa, err, sizeof err), 0, "%s", err);
    cc_query_free(q);
    q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_SEX, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    cc_attack_age(q, 0, 79);
    cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, 2)), 0);
    cr_assert_eq(answer(&p, q, &by_lad, err, sizeof err), 0, "%s", err);
    cr_assert_gt(cc_release_n_cells(by_lad), 8);
    cr_assert(same_release(by_lsoa, by_lad));
    cc_release_free(by_lsoa);
    cc_release_free(by_lad);
    cc_query_free(q);
}

/* Runs q (bound) with the ledger's cohort hash asked for. */
static void run_with_hash(struct cc_query *q, struct cc_raw_result *out)
{
    struct cc_exec_options with_hash = fx.options;
    with_hash.cohort_hash = true;
    char err[256];
    cr_assert_eq(cc_exec_run(fx.version, q, &with_hash, out, err, sizeof err), 0, "%s", err);
}

/* The cohort's hash for the ledger's look-up (options.cohort_hash) is the
 * hash of the keys its bits list (what the ledger is given when it has not
 * seen the cohort), on the person pass, whose words of whole base add the
 * version's sums, and on the version's cached population alike, which
 * must agree with the pass on the same cohort: a wrong hash could let the
 * ledger skip a cohort it has not seen. */
Test(release_answer, the_cohort_hash_is_the_hash_of_the_cohorts_keys)
{
    uint64_t hashes[5];
    for (int k = 0; k < 5; k++) {
        struct cc_query *q = query(k < 3 ? CC_MEASURE_PERSONS : CC_MEASURE_POPULATION);
        if (k == 0 || k == 1)
            cr_assert_eq(cc_attack_condition(q, k == 0 ? "E11" : "S72", 0, 0, 0), 0);
        if (k == 1 || k == 4)
            cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, 3)), 0);
        if (k == 2)
            cc_attack_age(q, 30, 60);
        dim(q, CC_DIM_REGION, 0);
        cr_assert_eq(cc_attack_bind(&fx, q), 0);
        struct cc_raw_result r;
        run_with_hash(q, &r);
        cr_assert_gt(r.cohort_persons, 20, "query %d", k);
        uint32_t *listed = NULL;
        /* (it fails unless the bits hold exactly cohort_persons persons) */
        cr_assert_eq(cc_raw_result_cohort_keys(&r, &listed), 0, "query %d", k);
        uint64_t hash = 0;
        for (uint64_t i = 0; i < r.cohort_persons; i++)
            hash += cc_ledger_key_mix(listed[i]);
        cr_assert_eq(r.cohort_hash, hash, "query %d", k);
        hashes[k] = hash;
        free(listed);
        cc_raw_result_free(&r);
        cc_query_free(q);
    }
    for (int k = 1; k < 5; k++)
        cr_assert_neq(hashes[k], hashes[k - 1], "other cohorts, other hashes");

    /* the registered population: cached (no filter), and by the person
     * pass (a list of every district, which names everyone) */
    struct cc_query *cached = query(CC_MEASURE_POPULATION), *pass = query(CC_MEASURE_POPULATION);
    dim(cached, CC_DIM_REGION, 0);
    dim(pass, CC_DIM_REGION, 0);
    for (uint32_t lad = 0; lad < CC_ATTACK_N_LADS; lad++)
        cr_assert_eq(cc_attack_area(pass, CC_AREA_LAD, cc_attack_lad_code(&fx, lad)), 0);
    cr_assert_eq(cc_attack_bind(&fx, cached), 0);
    cr_assert_eq(cc_attack_bind(&fx, pass), 0);
    struct cc_raw_result a, b;
    run_with_hash(cached, &a);
    run_with_hash(pass, &b);
    cr_assert_eq(a.cohort_persons, b.cohort_persons);
    cr_assert_eq(a.cohort_hash, b.cohort_hash);
    uint64_t words = ((uint64_t)cc_store_columns(fx.store)->n_persons + 63) / 64;
    cr_assert(!memcmp(a.cohort_bits, b.cohort_bits, words * sizeof *a.cohort_bits));
    cc_raw_result_free(&a);
    cc_raw_result_free(&b);
    cc_query_free(cached);
    cc_query_free(pass);
}

Test(release_answer, dimensions_too_fine_together_are_refused)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_PRACTICE, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_5Y);
    dim(q, CC_DIM_SEX, 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    /* 24,048 persons over 40 practices: the smallest band (90+, only the
     * planted targets) has nobody per practice */
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "min_cell_population"), "%s", err);
    cc_query_free(q);
    /* 16 districts x 5-year bands x sex: ~40 persons in most cells, but
     * the 90+ band holds only the 3 planted targets of each district */
    q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_5Y);
    dim(q, CC_DIM_SEX, 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "min_cell_population"), "%s", err);
    cc_query_free(q);
    /* bands from 0, 20, 40, 60, 80: ~80 or more in every cell */
    q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_CUSTOM);
    static const uint8_t bounds[] = {0, 20, 40, 60, 80};
    q->dimensions[1].n_age_bounds = 5;
    memcpy(q->dimensions[1].age_bounds, bounds, sizeof bounds);
    dim(q, CC_DIM_SEX, 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    check_values(&p, r);
    cr_assert_eq(cc_release_n_cells(r), 16 * 5 * 4);
    cc_release_free(r);
    cc_query_free(q);
}

/* Found by tests/crash/crash_loop.py under the Sanitize build, with the
 * example query examples/queries/registered_by_single_year_and_sex.json:
 * 121 single-year bands and margins make 122 age values, and the public
 * universe read the share of the margin value one past the end of each
 * estimate band's row (past the allocation for the last band). Margins
 * total cells: they change neither the universe nor its smallest cell. */
Test(release_answer, single_year_bands_with_margins_read_nothing_past_the_bands)
{
    struct cc_policy p;
    cc_policy_default(&p);
    cr_assert(p.restrict_queries, "the public universe is checked");
    int rc[2];
    char err[2][256];
    for (int margins = 0; margins < 2; margins++) {
        struct cc_query *q = query(CC_MEASURE_PERSONS);
        dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_1Y);
        dim(q, CC_DIM_SEX, 0);
        q->margins = margins;
        cc_release *r = NULL;
        err[margins][0] = '\0';
        rc[margins] = answer(&p, q, &r, err[margins], sizeof err[margins]);
        cr_assert(rc[margins] == 0 || rc[margins] == CC_EREFUSED, "%s", err[margins]);
        cc_release_free(r);
        cc_query_free(q);
    }
    cr_assert_eq(rc[0], rc[1], "margins changed the decision: [%s] [%s]", err[0], err[1]);
    cr_assert_str_eq(err[0], err[1]);
}

Test(release_answer, more_cells_than_the_policy_allows_are_refused)
{
    struct cc_policy p;
    cc_policy_default(&p);
    p.max_cells = 100;
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "max_cells"), "%s", err);
    cc_query_free(q);
}

Test(release_answer, a_low_effect_condition_is_refused_by_name)
{
    struct cc_policy p;
    cc_policy_default(&p);
    const struct cc_attack_target *t = &fx.targets[0];
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_area(q, CC_AREA_ICB, cc_attack_icb_code(&fx, t->icb)), 0);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    /* the target's known episode: only they have it */
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_EPISODE_CODE, 1, t->episode_month, 1), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "filters.conditions[1]: changes the cohort by too few persons"), "%s",
              err);
    cr_assert_null(r);
    /* a filter that changes nothing is refused too */
    cc_query_free(q);
    q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    cc_attack_age(q, 0, 120);
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "filters.age: changes the cohort by too few persons"), "%s", err);
    /* and with the rule off, both are answered */
    p.refuse_low_effect = false;
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    cc_release_free(r);
    cc_query_free(q);
}

Test(release_answer, a_date_range_without_conditions_chooses_records_and_is_not_refused)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct cc_query *q = query(CC_MEASURE_EVENTS);
    dim(q, CC_DIM_LAD, 0);
    q->filters.setting_mask = 1u << CC_SETTING_HOSPITAL;
    q->filters.date_range.present = true;
    q->filters.date_range.from = cc_query_month(2023, 1);
    q->filters.date_range.to = cc_query_month(2023, 12);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);
    check_values(&p, r);
    cr_assert_eq(cc_release_summary(r)->n_perturbed, CC_ATTACK_N_LADS);
    cc_release_free(r);
    /* with a condition, the same date range must change its cohort */
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_EPISODE_CODE, 0, 0, 0), 0);
    q->events_of = 0;
    q->filters.date_range.from = cc_query_month(2010, 1);
    q->filters.date_range.to = cc_query_month(2030, 12);
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), CC_EREFUSED);
    cr_assert(strstr(err, "filters.date_range: changes the cohort by too few"), "%s", err);
    cc_query_free(q);
}

Test(release_answer, the_encoders_write_only_protected_values)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    dim(q, CC_DIM_LAD, 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(answer(&p, q, &r, err, sizeof err), 0, "%s", err);

    char *text = NULL;
    cr_assert_eq(cc_release_encode_json(r, &text), 0);
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    cr_assert(root, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(root, "policy"), "version")),
                     CC_POLICY_DEFAULT_VERSION);
    json_t *cells = json_object_get(root, "cells");
    cr_assert_eq(json_array_size(cells), 16);
    json_t *labels = json_object_get(json_array_get(json_object_get(root, "dimensions"), 0),
                                     "labels");
    cr_assert_str_eq(json_string_value(json_array_get(labels, 5)), cc_attack_lad_code(&fx, 5));
    for (size_t i = 0; i < 16; i++) {
        json_t *cell = json_array_get(cells, i);
        struct cc_released_count c = cc_release_cell(r, i);
        cr_assert_str_eq(json_string_value(json_array_get(cell, 1)),
                         cc_release_reason_name(c.reason));
        if (c.released)
            cr_assert_eq(json_integer_value(json_array_get(cell, 0)), (json_int_t)c.value);
        else
            cr_assert(json_is_null(json_array_get(cell, 0)));
    }
    json_decref(root);
    free(text);

    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    cr_assert_eq(cc_release_pack(r, &pk), 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    cr_assert_eq(msgpack_unpack_next(&up, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(up.data.via.map.size, 4);
    const msgpack_object *mcells = NULL;
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &up.data.via.map.ptr[i];
        if (kv->key.via.str.size == 5 && !memcmp(kv->key.via.str.ptr, "cells", 5))
            mcells = &kv->val;
    }
    cr_assert(mcells && mcells->type == MSGPACK_OBJECT_ARRAY && mcells->via.array.size == 16);
    for (uint32_t i = 0; i < 16; i++) {
        const msgpack_object *v = &mcells->via.array.ptr[i].via.array.ptr[0];
        struct cc_released_count c = cc_release_cell(r, i);
        if (c.released)
            cr_assert_eq(v->via.u64, c.value);
        else
            cr_assert_eq(v->type, MSGPACK_OBJECT_NIL);
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&buf);
    cc_release_free(r);
    cc_query_free(q);
}

/* ---- properties over random queries ---- */

static uint64_t prop_state = 0x243f6a8885a308d3ULL;
static uint32_t prop_below(uint32_t n)
{
    uint64_t z = (prop_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

static const char *const prop_codes[] = {"E11", "I10", "J45", "K57", "M54", "E85", "S72"};

/* A random query; with reorder, its conditions in reverse order (an
 * equivalent wording). */
static struct cc_query *random_query(uint64_t seed, int reorder)
{
    uint64_t saved = prop_state;
    prop_state = seed;
    struct cc_query *q = query(prop_below(4) == 0 ? CC_MEASURE_EVENTS : CC_MEASURE_PERSONS);
    static const int kinds[] = {CC_DIM_SEX, CC_DIM_AGE_BAND, CC_DIM_LAD, CC_DIM_ICB,
                                CC_DIM_REGION, CC_DIM_SETTING, CC_DIM_YEAR};
    uint32_t n_dims = prop_below(3);
    int used = 0;
    for (uint32_t i = 0; i < n_dims; i++) {
        uint32_t k = prop_below(7);
        if (used & (1 << k))
            continue;
        used |= 1 << k;
        if ((kinds[k] == CC_DIM_SETTING || kinds[k] == CC_DIM_YEAR) &&
            q->measure != CC_MEASURE_EVENTS)
            continue;
        dim(q, kinds[k], kinds[k] == CC_DIM_AGE_BAND ? CC_AGE_BANDS_CUSTOM : 0);
        if (kinds[k] == CC_DIM_AGE_BAND) {
            /* 20-year bands: the fixture's 90+ persons are the few targets */
            static const uint8_t bounds[] = {0, 20, 40, 60, 80};
            q->dimensions[q->n_dimensions - 1].n_age_bounds = 5;
            memcpy(q->dimensions[q->n_dimensions - 1].age_bounds, bounds, sizeof bounds);
        }
    }
    uint32_t n_conditions = 1 + prop_below(2);
    const char *codes[2];
    int excludes[2];
    for (uint32_t i = 0; i < n_conditions; i++) {
        codes[i] = prop_codes[prop_below(7)];
        excludes[i] = i > 0 && prop_below(3) == 0;
    }
    if (n_conditions == 2 && !strcmp(codes[0], codes[1]))
        n_conditions = 1;
    for (uint32_t k = 0; k < n_conditions; k++) {
        uint32_t i = reorder && !excludes[0] && !excludes[1] ? n_conditions - 1 - k : k;
        cr_assert_eq(cc_attack_condition(q, codes[i], 0, 0, excludes[i]), 0);
    }
    if (q->measure == CC_MEASURE_EVENTS)
        q->events_of = 0;
    if (prop_below(3) == 0) {
        uint32_t icb = prop_below(CC_ATTACK_N_ICBS);
        cr_assert_eq(cc_attack_area(q, CC_AREA_ICB, cc_attack_icb_code(&fx, icb)), 0);
    }
    if (prop_below(3) == 0) {
        int lo = (int)prop_below(60);
        cc_attack_age(q, lo, lo + 10 + (int)prop_below(40));
    }
    if (prop_below(4) == 0)
        cc_attack_sex(q, 1 + (int)prop_below(2));
    prop_state = saved;
    return q;
}

Test(release_answer, properties_hold_over_2000_random_queries)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned answered = 0, refused = 0, reworded = 0, released_cells = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        uint64_t seed = 0x1234567ULL + i * 0x9e3779b97f4a7c15ULL;
        struct cc_query *q = random_query(seed, 0);
        cc_release *a = NULL, *b = NULL;
        char err[256];
        int rc = answer(&p, q, &a, err, sizeof err);
        cr_assert(rc == 0 || rc == CC_EREFUSED, "query %llu: %d %s", (unsigned long long)i, rc,
                  err);
        if (rc == CC_EREFUSED) {
            refused++;
            /* refusals are sticky too */
            cr_assert_eq(answer(&p, q, &b, err, sizeof err), CC_EREFUSED);
            cc_query_free(q);
            continue;
        }
        answered++;
        check_values(&p, a);
        released_cells += (unsigned)cc_release_n_cells(a);
        cr_assert_eq(answer(&p, q, &b, err, sizeof err), 0);
        cr_assert(same_release(a, b), "query %llu: a repeat differs", (unsigned long long)i);
        cc_release_free(b);
        if (q->filters.n_conditions == 2 && !q->filters.conditions[1].exclude &&
            q->measure == CC_MEASURE_PERSONS) {
            struct cc_query *w = random_query(seed, 1);
            cr_assert_eq(answer(&p, w, &b, err, sizeof err), 0, "%s", err);
            cr_assert(same_release(a, b), "query %llu: the reordered wording differs",
                      (unsigned long long)i);
            reworded++;
            cc_release_free(b);
            cc_query_free(w);
        }
        cc_release_free(a);
        cc_query_free(q);
    }
    cr_assert_gt(answered, 500, "%u answered, %u refused", answered, refused);
    cr_assert_gt(refused, 50, "%u answered, %u refused", answered, refused);
    cr_assert_gt(reworded, 50);
    cr_assert_gt(released_cells, 5000);
}

/* ---- comparisons take released counts only ---- */

static void compare_released(struct cc_query *numerator, unsigned *n_compared,
                             unsigned *n_not_compared)
{
    struct cc_policy p;
    cc_policy_default(&p);
    /* cc_compare's contract (cc_compare.h): a failed quantile is CC_ESTATS,
     * never GSL's abort */
    gsl_set_error_handler_off();
    cr_assert_eq(cc_attack_bind(&fx, numerator), 0);
    struct cc_compare_request request = {.numerator = numerator,
                                         .area_level = CC_AREA_LAD,
                                         .method = CC_COMPARE_CRUDE_RATE};
    struct cc_compare_raw raw;
    char err[256];
    cr_assert_eq(cc_compare_run(fx.version, &request, NULL, &fx.options, &raw, err, sizeof err),
                 0, "%s", err);
    struct cc_compare_released released;
    cr_assert_eq(cc_release_compare(&p, NULL, &request, &raw, &released, err, sizeof err), 0, "%s",
                 err);
    struct cc_compare_result result;
    cr_assert_eq(cc_compare_finish(&raw.layout, &released, &result), 0);
    *n_compared = *n_not_compared = 0;
    for (uint32_t u = 0; u < result.n_rows; u++) {
        const struct cc_released_count *c = &released.count[u], *d = &released.denominator[u];
        const struct cc_compare_row *row = &result.rows[u];
        if (!c->released || !d->released) {
            cr_assert_eq(row->status, CC_COMPARE_SUPPRESSED, "unit %u", u);
            cr_assert(isnan(row->value) && isnan(row->count));
            ++*n_not_compared;
            continue;
        }
        /* the figures come from the released values */
        cr_assert_eq(row->count, (double)c->value, "unit %u", u);
        cr_assert_eq(row->denominator, (double)d->value, "unit %u", u);
        cr_assert(c->value == 0 || (c->value >= p.threshold && c->value % p.rounding_base == 0));
        if (row->status == CC_COMPARE_OK)
            cr_assert_float_eq(row->value, (double)c->value / (double)d->value * 100000, 1e-6);
        ++*n_compared;
    }
    cc_compare_result_free(&result);
    cc_compare_released_free(&released);
    cc_compare_raw_free(&raw);
}

Test(release_answer, comparisons_are_computed_from_released_counts_and_suppressed_ones_not_compared)
{
    unsigned compared, not_compared;
    struct cc_query *q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_condition(q, "E11", 0, 0, 0), 0);
    compare_released(q, &compared, &not_compared);
    cc_query_free(q);
    /* 16 districts and England, ~150 persons with E11 in each district */
    cr_assert_eq(compared, 17);
    cr_assert_eq(not_compared, 0);

    q = query(CC_MEASURE_PERSONS);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    cc_attack_age(q, 60, 89);
    cc_attack_sex(q, CC_SEX_FEMALE);
    compare_released(q, &compared, &not_compared);
    cc_query_free(q);
    /* ~2 such persons per district: most districts are not compared, and
     * England (~40) is */
    cr_assert_gt(not_compared, 8, "%u not compared", not_compared);
    cr_assert_geq(compared, 1);
}
