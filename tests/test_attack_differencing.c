/*
 * The differencing attack with a filter (docs/privacy.md, "Evidence").
 *
 * The attacker knows each target's district, age, sex and one hospital
 * episode (a fracture in a known month that no one else shares) and wants
 * to learn whether the target has the secret code. For each target, over 36
 * universes (the target's district, ICB or region; six age ranges around
 * their age; their sex or both), they ask
 *     Q1: persons with the secret code in the universe
 *     Q2: the same, but not persons with a fracture in the known month
 * and conclude "has the secret" when most pairs differ, "has not" when few
 * do (a confident conclusion needs at least 5 answered pairs). A target is
 * recovered when the conclusion is confident and correct.
 *
 * Control: against the engine's exact counts the attack recovers (almost)
 * every target. Protected: the release layer refuses Q2 (the known-episode
 * condition changes the cohort by 0 or 1 persons: the low-effect rule), and
 * narrow universes on their public population, so no target is recovered.
 *
 * The same without a filter: an area list with and without the target's
 * district (the other districts of the list vary over 36 universes), at the
 * target's age and sex, where the target is the only person of their
 * district: the two cohorts differ by the target exactly when they have the
 * secret.
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

TestSuite(attack_differencing, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

#define N_UNIVERSES 36

/* Q1 (with_filter 0) or Q2 (1) for target t in universe u. */
static struct cc_query *attack_query(const struct cc_attack_target *t, unsigned u,
                                     int with_filter)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    if (with_filter)
        cr_assert_eq(cc_attack_condition(q, CC_ATTACK_EPISODE_CODE, 1, t->episode_month, 1), 0);
    unsigned area = u % 3, ages = u / 3 % 6, sexes = u / 18;
    if (area == 0)
        cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, t->lad)), 0);
    else if (area == 1)
        cr_assert_eq(cc_attack_area(q, CC_AREA_ICB, cc_attack_icb_code(&fx, t->icb)), 0);
    else
        cr_assert_eq(cc_attack_area(q, CC_AREA_REGION, cc_attack_region_code(&fx, t->region)),
                     0);
    static const int below[6] = {0, 5, 10, 20, 40, 60}, above[6] = {0, 5, 0, 10, 0, 20};
    cc_attack_age(q, t->age - below[ages], t->age + above[ages]);
    if (sexes == 0)
        cc_attack_sex(q, t->sex);
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

/* The area-list pair: the target's age and sex, persons with the secret,
 * in a list of other districts of the region (subset u + 1 of them, as a
 * bit mask over the region's other 7) with or without the target's. */
static struct cc_query *area_list_query(const struct cc_attack_target *t, unsigned u,
                                        int with_target)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    const struct cc_store_columns *c = cc_store_columns(fx.store);
    unsigned other = 0, mask = (u * 37 + 5) % 127 + 1; /* 36 distinct non-empty subsets */
    for (uint32_t lad = 0; lad < c->n_lad; lad++) {
        if (c->icb_region[c->lad_icb[lad]] != t->region)
            continue;
        if (lad == t->lad) {
            if (with_target)
                cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, lad)), 0);
            continue;
        }
        if (mask >> other++ & 1)
            cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, lad)), 0);
    }
    cc_attack_age(q, t->age, t->age);
    cc_attack_sex(q, t->sex);
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

/* What the attacker sees of one query: an exact count (control), a
 * released value, "suppressed" (UINT64_MAX - 1) or "refused" (UINT64_MAX). */
#define SEEN_REFUSED UINT64_MAX
#define SEEN_SUPPRESSED (UINT64_MAX - 1)

static uint64_t ask_exact(const struct cc_query *q)
{
    struct cc_raw_result raw;
    char err[256];
    cr_assert_eq(cc_exec_run(fx.version, q, &fx.options, &raw, err, sizeof err), 0, "%s", err);
    uint64_t n = raw.count[0];
    cc_raw_result_free(&raw);
    return n;
}

static uint64_t ask_released(const struct cc_policy *p, const struct cc_query *q)
{
    cc_release *r = NULL;
    char err[256];
    int rc = cc_release_answer(p, NULL, fx.version, q, &fx.options, &r, err, sizeof err);
    if (rc == CC_EREFUSED)
        return SEEN_REFUSED;
    cr_assert_eq(rc, 0, "%s", err);
    struct cc_released_count c = cc_release_cell(r, 0);
    cc_release_free(r);
    return c.released ? c.value : SEEN_SUPPRESSED;
}

struct outcome {
    unsigned recovered, wrong, undecided, answered_pairs;
};

/* Runs the attack on every target; policy NULL: exact counts. */
static struct outcome run_attack_with(const struct cc_policy *policy,
                                      struct cc_query *(*make)(const struct cc_attack_target *,
                                                               unsigned, int))
{
    struct outcome o = {0};
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        unsigned pairs = 0, differ = 0;
        for (unsigned u = 0; u < N_UNIVERSES; u++) {
            struct cc_query *q1 = make(t, u, 0), *q2 = make(t, u, 1);
            uint64_t a = policy ? ask_released(policy, q1) : ask_exact(q1);
            uint64_t b = policy ? ask_released(policy, q2) : ask_exact(q2);
            if (a != SEEN_REFUSED && b != SEEN_REFUSED) {
                pairs++;
                differ += a != b;
            }
            cc_query_free(q1);
            cc_query_free(q2);
        }
        o.answered_pairs += pairs;
        int conclusion = -1; /* undecided */
        if (pairs >= 5 && differ * 3 > pairs * 2)
            conclusion = 1;
        else if (pairs >= 5 && differ * 3 < pairs)
            conclusion = 0;
        if (conclusion < 0)
            o.undecided++;
        else if (conclusion == t->has_secret)
            o.recovered++;
        else
            o.wrong++;
    }
    return o;
}

static struct outcome run_attack(const struct cc_policy *policy)
{
    return run_attack_with(policy, attack_query);
}

Test(attack_differencing, the_attack_recovers_most_targets_from_exact_counts)
{
    cr_assert_geq(fx.n_targets, 40);
    struct outcome o = run_attack(NULL);
    cr_log_info("exact counts: %u recovered, %u wrong, %u undecided of %u", o.recovered, o.wrong,
                o.undecided, fx.n_targets);
    cr_assert_geq(o.recovered, fx.n_targets * 9 / 10, "recovered %u of %u", o.recovered,
                  fx.n_targets);
}

Test(attack_differencing, the_attack_recovers_no_target_from_releases)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct outcome o = run_attack(&p);
    cr_log_info("releases: %u recovered, %u wrong, %u undecided of %u (%u pairs answered)",
                o.recovered, o.wrong, o.undecided, fx.n_targets, o.answered_pairs);
    cr_assert_eq(o.recovered, 0, "recovered %u of %u", o.recovered, fx.n_targets);
}

Test(attack_differencing, the_area_list_attack_recovers_most_targets_from_exact_counts)
{
    struct outcome o = run_attack_with(NULL, area_list_query);
    cr_log_info("area lists, exact counts: %u recovered, %u wrong, %u undecided of %u",
                o.recovered, o.wrong, o.undecided, fx.n_targets);
    cr_assert_geq(o.recovered, fx.n_targets * 9 / 10, "recovered %u of %u", o.recovered,
                  fx.n_targets);
}

Test(attack_differencing, the_area_list_attack_recovers_no_target_from_releases)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct outcome o = run_attack_with(&p, area_list_query);
    cr_log_info("area lists, releases: %u recovered, %u wrong, %u undecided of %u (%u pairs)",
                o.recovered, o.wrong, o.undecided, fx.n_targets, o.answered_pairs);
    cr_assert_eq(o.recovered, 0, "recovered %u of %u", o.recovered, fx.n_targets);
}
