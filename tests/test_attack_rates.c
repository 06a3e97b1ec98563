/*
 * The rates attack (docs/privacy.md, "Evidence").
 *
 * A rate is a count over a public denominator: from a released rate and
 * the denominator, count = rate x denominator / multiplier. The attacker
 * asks for the crude rate of the secret code per district among persons of
 * the target's sex aged exactly their age (where the target is the only
 * such person in their district), reads the target's district, and
 * concludes "has the secret" from a numerator of 1 or more or a suppressed
 * row ("not compared"), "has not" from a rate of 0.
 *
 * Control: the exact comparison (cc_compare_finish_counts on the exact
 * counts) gives every target away. (Suppression with rounding alone also
 * suppresses the denominator here, so the attacker is right for half.)
 * Protected: the comparison's numerator meets the rules of any query, and
 * its smallest cell (a district at one age and sex) is refused on its
 * public population, so no target is recovered.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_compare.h"
#include "cc_compare_internal.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_policy.h"
#include "cc_release.h"
#include "cc_release_internal.h"

static struct cc_attack_fixture fx;

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
}

TestSuite(attack_rates, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

/* -1: refused; else the attacker's conclusion (1: has the secret). */
static int attack(const struct cc_policy *p, const struct cc_attack_target *t)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    cc_attack_age(q, t->age, t->age);
    cc_attack_sex(q, t->sex);
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    struct cc_compare_request request = {.numerator = q,
                                         .area_level = CC_AREA_LAD,
                                         .method = CC_COMPARE_CRUDE_RATE};
    struct cc_compare_raw raw;
    char err[256];
    cr_assert_eq(cc_compare_run(fx.version, &request, NULL, &fx.options, &raw, err, sizeof err),
                 0, "%s", err);
    struct cc_compare_result result;
    int conclusion = -1;
    if (!p) {
        cr_assert_eq(cc_compare_finish_counts(&raw.layout, &raw.exact, &result), 0);
    } else {
        struct cc_compare_released released;
        int rc = cc_release_compare(p, NULL, &request, &raw, &released, err, sizeof err);
        if (rc == CC_EREFUSED)
            goto out;
        cr_assert_eq(rc, 0, "%s", err);
        cr_assert_eq(cc_compare_finish(&raw.layout, &released, &result), 0);
        cc_compare_released_free(&released);
    }
    /* the target's district is unit t->lad (areas in the store's order) */
    const struct cc_compare_row *row = &result.rows[t->lad];
    if (row->status == CC_COMPARE_SUPPRESSED)
        conclusion = 1; /* 1..7 after noise: only the target can be there */
    else
        conclusion = row->value * row->denominator / raw.layout.multiplier >= 0.5;
    cc_compare_result_free(&result);
out:
    cc_compare_raw_free(&raw);
    cc_query_free(q);
    return conclusion;
}

static unsigned recovered(const struct cc_policy *p, unsigned *refused)
{
    unsigned n = 0;
    *refused = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        int c = attack(p, &fx.targets[i]);
        if (c < 0)
            ++*refused;
        else
            n += c == fx.targets[i].has_secret;
    }
    return n;
}

Test(attack_rates, a_rate_and_its_denominator_give_targets_away_without_the_protections)
{
    unsigned refused;
    unsigned exact = recovered(NULL, &refused);
    struct cc_policy p;
    cc_policy_default(&p);
    p.perturb = false;
    p.restrict_queries = false;
    p.refuse_low_effect = false;
    unsigned rounded = recovered(&p, &refused);
    cr_log_info("rates: exact %u, suppression and rounding alone %u of %u recovered", exact,
                rounded, fx.n_targets);
    cr_assert_geq(exact, fx.n_targets * 9 / 10);
    /* suppression and rounding alone also suppress the registered
     * denominator (the target alone), so every row is "not compared" and
     * the attacker says "has it" of everyone: right for half of them */
    cr_assert_eq(rounded, fx.n_targets / 2);
}

Test(attack_rates, released_rates_recover_no_target)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned refused;
    unsigned n = recovered(&p, &refused);
    cr_log_info("rates, released: %u recovered, %u refused of %u", n, refused, fx.n_targets);
    cr_assert_eq(n, 0, "recovered %u of %u", n, fx.n_targets);
}
