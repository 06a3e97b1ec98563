/*
 * The small-area attack (docs/privacy.md, "Evidence").
 *
 * Each target is the only person of their district, single year of age and
 * sex. The attacker asks for persons with the secret code in exactly that
 * cell, as a filter (district, age a..a, sex) and as a table (district x
 * custom age bands 0, a, a+1 x sex, reading the target's cell), and
 * concludes "has the secret" from a count of 1 or more or a suppressed
 * cell (only the target can be in it), "has not" from a 0.
 *
 * Controls: exact counts, and suppression with rounding alone (no noise, no
 * query restrictions): both give every target away (a suppressed cell
 * means 1..7, which is 1 here). Protected: both forms are refused, the
 * filter on the universe's public population (min_population) and the
 * table on its smallest cell (min_cell_population), so no target is
 * recovered.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_policy.h"
#include "cc_release.h"

static struct cc_attack_fixture fx;

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
}

TestSuite(attack_small_areas, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

static struct cc_query *attack_query(const struct cc_attack_target *t, int as_table)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    if (as_table) {
        struct cc_query_dimension *d = q->dimensions;
        memset(d, 0, 3 * sizeof *d);
        d[0].kind = CC_DIM_LAD;
        d[1].kind = CC_DIM_AGE_BAND;
        d[1].age_banding = CC_AGE_BANDS_CUSTOM;
        d[1].n_age_bounds = 3;
        d[1].age_bounds[0] = 0;
        d[1].age_bounds[1] = t->age;
        d[1].age_bounds[2] = (uint8_t)(t->age + 1);
        d[2].kind = CC_DIM_SEX;
        q->n_dimensions = 3;
    } else {
        cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, t->lad)), 0);
        cc_attack_age(q, t->age, t->age);
        cc_attack_sex(q, t->sex);
    }
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

/* The target's cell: (district, band 1, sex) in the table, the only cell
 * of the filter. */
static uint64_t target_cell(const struct cc_attack_target *t, int as_table)
{
    /* the sex dimension's values are the four NHS codes 0, 1, 2, 9 */
    return as_table ? ((uint64_t)t->lad * 3 + 1) * 4 + t->sex : 0;
}

#define SEEN_REFUSED UINT64_MAX
#define SEEN_SUPPRESSED (UINT64_MAX - 1)

static uint64_t ask(const struct cc_policy *p, const struct cc_attack_target *t, int as_table)
{
    struct cc_query *q = attack_query(t, as_table);
    char err[256];
    uint64_t seen;
    if (!p) {
        struct cc_raw_result raw;
        cr_assert_eq(cc_exec_run(fx.version, q, &fx.options, &raw, err, sizeof err), 0, "%s",
                     err);
        seen = raw.count[target_cell(t, as_table)];
        cc_raw_result_free(&raw);
    } else {
        cc_release *r = NULL;
        int rc = cc_release_answer(p, NULL, fx.version, q, &fx.options, &r, err, sizeof err);
        if (rc == CC_EREFUSED) {
            seen = SEEN_REFUSED;
        } else {
            cr_assert_eq(rc, 0, "%s", err);
            struct cc_released_count c = cc_release_cell(r, target_cell(t, as_table));
            seen = c.released ? c.value : SEEN_SUPPRESSED;
            cc_release_free(r);
        }
    }
    cc_query_free(q);
    return seen;
}

/* The number of targets whose secret the attacker states correctly. */
static unsigned recovered(const struct cc_policy *p, int as_table, unsigned *refused)
{
    unsigned n = 0;
    *refused = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        uint64_t seen = ask(p, t, as_table);
        if (seen == SEEN_REFUSED) {
            ++*refused;
            continue;
        }
        int conclusion = seen != 0; /* suppressed or >= 1: only the target is there */
        n += conclusion == t->has_secret;
    }
    return n;
}

static void controls(int as_table)
{
    unsigned refused;
    unsigned exact = recovered(NULL, as_table, &refused);
    cr_assert_geq(exact, fx.n_targets * 9 / 10, "exact: %u of %u", exact, fx.n_targets);
    struct cc_policy p;
    cc_policy_default(&p);
    p.perturb = false;
    p.restrict_queries = false;
    p.refuse_low_effect = false;
    unsigned rounded = recovered(&p, as_table, &refused);
    cr_log_info("%s: exact counts %u, suppression and rounding alone %u of %u recovered",
                as_table ? "table" : "filter", exact, rounded, fx.n_targets);
    cr_assert_geq(rounded, fx.n_targets * 9 / 10, "suppression and rounding: %u of %u", rounded,
                  fx.n_targets);
}

static void protected_run(int as_table, const char *rule)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned refused;
    unsigned n = recovered(&p, as_table, &refused);
    cr_log_info("%s: released: %u recovered, %u refused of %u", as_table ? "table" : "filter", n,
                refused, fx.n_targets);
    cr_assert_eq(n, 0, "recovered %u of %u", n, fx.n_targets);
    cr_assert_eq(refused, fx.n_targets);
    /* and the refusal names a public rule */
    struct cc_query *q = attack_query(&fx.targets[0], as_table);
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(cc_release_answer(&p, NULL, fx.version, q, &fx.options, &r, err, sizeof err),
                 CC_EREFUSED);
    cr_assert(strstr(err, rule), "%s", err);
    cc_query_free(q);
}

Test(attack_small_areas, the_filter_form_gives_targets_away_without_the_protections)
{
    controls(0);
}

Test(attack_small_areas, the_table_form_gives_targets_away_without_the_protections)
{
    controls(1);
}

Test(attack_small_areas, the_filter_form_recovers_no_target_from_releases)
{
    protected_run(0, "min_population");
}

Test(attack_small_areas, the_table_form_recovers_no_target_from_releases)
{
    protected_run(1, "min_cell_population");
}
