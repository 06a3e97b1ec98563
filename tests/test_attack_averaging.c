/*
 * The averaging attack (docs/privacy.md, "Evidence").
 *
 * Noise drawn afresh for every answer averages away: ask the same cell N
 * times and the mean converges on the exact count. The attacker asks each
 * target's cell (persons with the secret code and a hospital record of one
 * of five common codes, in the target's region and sex) 200 times, and
 * through 48 equivalent wordings: the two conditions in either order (and
 * the five codes backwards with it), each with and without its (redundant)
 * hospital setting, with and without the (redundant) primary role, and the
 * region named as itself, as the list of its ICBs or of its districts.
 *
 * Control: a release that drew its noise afresh (the same tables, draws
 * from a counter instead of the cell key) is averaged back to within 0.5 of
 * the exact count for most cells, so the attack has teeth. Protected: every
 * repeat and every wording gets the same answer, so the average of all 248
 * is a single draw, and no cell's exact count is recovered that one draw
 * did not already give away.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cc_attack_fixture.h"
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

TestSuite(attack_averaging, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

#define N_WORDINGS 48
#define N_REPEATS 200

/* The secret code, or (common) a hospital record with any of five common
 * codes, listed forwards or backwards. */
static void condition(struct cc_query *q, int common, int any_setting, int primary, int backwards)
{
    static const char *const codes[] = {"I10", "E11", "J45", "K57", "M54"};
    cr_assert_eq(cc_attack_condition(q, common ? codes[0] : CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    struct cc_query_condition *c = &q->filters.conditions[q->filters.n_conditions - 1];
    if (common) {
        c->codes = cc_query_alloc(q, 5 * sizeof *c->codes);
        cr_assert(c->codes);
        for (int i = 0; i < 5; i++)
            snprintf(c->codes[i].text, sizeof c->codes[i].text, "%s",
                     codes[backwards ? 4 - i : i]);
        c->n_codes = 5;
    }
    if (any_setting)
        c->setting_mask = 0; /* these codes occur in hospital records only */
    if (primary)
        c->role_mask = 1u << CC_ROLE_PRIMARY; /* every fixture code is primary */
}

/* Wording w (0..47) of target t's cell. */
static struct cc_query *wording(const struct cc_attack_target *t, unsigned w)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    int reversed = w & 1, any1 = w >> 1 & 1, any2 = w >> 2 & 1, primary = w >> 3 & 1;
    unsigned areas = w >> 4; /* 0 region, 1 its ICBs, 2 its districts */
    if (reversed) {
        condition(q, 1, any2, primary, 1);
        condition(q, 0, any1, primary, 0);
    } else {
        condition(q, 0, any1, primary, 0);
        condition(q, 1, any2, primary, 0);
    }
    const struct cc_store_columns *c = cc_store_columns(fx.store);
    if (areas == 0) {
        cr_assert_eq(cc_attack_area(q, CC_AREA_REGION, cc_attack_region_code(&fx, t->region)),
                     0);
    } else if (areas == 1) {
        for (uint32_t icb = 0; icb < c->n_icb; icb++)
            if (c->icb_region[icb] == t->region)
                cr_assert_eq(cc_attack_area(q, CC_AREA_ICB, cc_attack_icb_code(&fx, icb)), 0);
    } else {
        for (uint32_t lad = 0; lad < c->n_lad; lad++)
            if (c->icb_region[c->lad_icb[lad]] == t->region)
                cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, lad)), 0);
    }
    cc_attack_sex(q, t->sex);
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

static struct cc_released_count ask(const struct cc_policy *p, const struct cc_query *q)
{
    cc_release *r = NULL;
    char err[256];
    cr_assert_eq(cc_release_answer(p, NULL, fx.version, q, &fx.options, &r, err, sizeof err), 0,
                 "%s", err);
    struct cc_released_count c = cc_release_cell(r, 0);
    cc_release_free(r);
    return c;
}

static uint64_t exact(const struct cc_query *q)
{
    struct cc_raw_result raw;
    char err[256];
    cr_assert_eq(cc_exec_run(fx.version, q, &fx.options, &raw, err, sizeof err), 0, "%s", err);
    uint64_t n = raw.count[0];
    cc_raw_result_free(&raw);
    return n;
}

/* What a release with fresh noise would say: the same tables, suppression
 * and rounding, but a new draw for every answer. */
static double fresh_release(const struct cc_policy *p, uint64_t n, uint64_t *counter)
{
    struct cc_ptable cell_layer, condition_layer;
    cc_ptable_build(p->max_noise, p->noise_variance, &cell_layer);
    cc_ptable_build(p->condition_max_noise, p->condition_noise_variance, &condition_layer);
    ++*counter;
    int64_t v = (int64_t)n + cc_ptable_noise(&cell_layer, n, cc_release_draw(*counter, 1));
    v += cc_ptable_noise(&condition_layer, (uint64_t)v, cc_release_draw(*counter, 2));
    /* the attacker reads a suppressed cell as the middle of 1..7; rounding
     * is left out here, as it would be averaged away the same way by an
     * attacker who asks about a padded cell */
    return v > 0 && v < (int64_t)p->threshold ? p->threshold / 2.0 : (double)v;
}

Test(attack_averaging, averaging_fresh_noise_recovers_most_exact_counts)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned recovered = 0;
    uint64_t counter = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        struct cc_query *q = wording(&fx.targets[i], 0);
        uint64_t n = exact(q);
        cr_assert_geq(n, p.threshold, "the cell is large enough to be released");
        double sum = 0;
        for (unsigned k = 0; k < N_REPEATS + N_WORDINGS; k++)
            sum += fresh_release(&p, n, &counter);
        recovered += fabs(sum / (N_REPEATS + N_WORDINGS) - (double)n) < 0.5;
        cc_query_free(q);
    }
    cr_log_info("fresh noise: %u of %u exact counts recovered by averaging", recovered,
                fx.n_targets);
    cr_assert_geq(recovered, fx.n_targets * 3 / 4, "recovered %u of %u", recovered,
                  fx.n_targets);
}

Test(attack_averaging, every_repeat_and_wording_of_a_cell_is_the_same_release)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned recovered_by_averaging = 0, recovered_by_one = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        struct cc_query *first = wording(t, 0);
        uint64_t n = exact(first);
        struct cc_released_count one = ask(&p, first);
        cr_assert(one.released, "target %u: the cell is released", i);
        double sum = 0;
        /* repeats: on every eighth target, to bound the test's time */
        unsigned repeats = i % 8 == 0 ? N_REPEATS : 2;
        for (unsigned k = 0; k < repeats; k++) {
            struct cc_released_count c = ask(&p, first);
            cr_assert_eq(c.value, one.value, "target %u repeat %u differs", i, k);
            sum += (double)c.value;
        }
        for (unsigned w = 0; w < N_WORDINGS; w++) {
            struct cc_query *q = wording(t, w);
            struct cc_released_count c = ask(&p, q);
            cr_assert_eq(c.released, one.released);
            cr_assert_eq(c.value, one.value, "target %u wording %u differs", i, w);
            sum += (double)c.value;
            cc_query_free(q);
        }
        double mean = sum / (repeats + N_WORDINGS);
        recovered_by_averaging += fabs(mean - (double)n) < 0.5;
        recovered_by_one += one.value == n;
        cc_query_free(first);
    }
    cr_log_info("consistent releases: %u of %u exact by averaging, %u by one release",
                recovered_by_averaging, fx.n_targets, recovered_by_one);
    /* averaging adds nothing: it recovers exactly the cells a single
     * release already gave as their exact count (rounding to 5 and noise
     * of 0 do that for some cells; those are not secrets about a person) */
    cr_assert_eq(recovered_by_averaging, recovered_by_one);
}
