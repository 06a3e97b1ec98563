/*
 * Denning's tracker (docs/privacy.md, "Evidence").
 *
 * The target's cell (persons with the secret code in their district, of
 * their sex, aged exactly a) is never asked for: it is written as the
 * difference of two larger queries, both of which look harmless:
 *     T1: the secret, district, sex, ages lo..a
 *     T2: the secret, district, sex, ages lo..a-1
 * or from above, ages a..hi minus ages a+1..hi. Over 24 trackers per target
 * (12 lower bounds lo, 12 upper bounds hi) the attacker concludes "has the
 * secret" when most differences are not 0, "has not" when few are (at least
 * 5 answered pairs for a confident conclusion).
 *
 * Control: exact counts give every target away. Protected: the two queries
 * of a tracker differ in an age bound that changes their cohorts by the
 * target alone (or nobody), so the low-effect rule refuses at least one of
 * them; no target is recovered.
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

TestSuite(attack_tracker, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

#define N_TRACKERS 24
#define SEEN_REFUSED UINT64_MAX
#define SEEN_SUPPRESSED (UINT64_MAX - 1)

/* Tracker u of target t, its first (second 0) or second query. */
static struct cc_query *tracker(const struct cc_attack_target *t, unsigned u, int second)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    cr_assert_eq(cc_attack_area(q, CC_AREA_LAD, cc_attack_lad_code(&fx, t->lad)), 0);
    cc_attack_sex(q, t->sex);
    if (u < 12) {
        int lo = (int)u * 5;
        cc_attack_age(q, lo, second ? t->age - 1 : t->age);
    } else {
        int hi = 108 + (int)(u - 12);
        cc_attack_age(q, second ? t->age + 1 : t->age, hi);
    }
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

static uint64_t ask(const struct cc_policy *p, const struct cc_query *q)
{
    char err[256];
    if (!p) {
        struct cc_raw_result raw;
        cr_assert_eq(cc_exec_run(fx.version, q, &fx.options, &raw, err, sizeof err), 0, "%s",
                     err);
        uint64_t n = raw.count[0];
        cc_raw_result_free(&raw);
        return n;
    }
    cc_release *r = NULL;
    int rc = cc_release_answer(p, NULL, fx.version, q, &fx.options, &r, err, sizeof err);
    if (rc == CC_EREFUSED)
        return SEEN_REFUSED;
    cr_assert_eq(rc, 0, "%s", err);
    struct cc_released_count c = cc_release_cell(r, 0);
    cc_release_free(r);
    return c.released ? c.value : SEEN_SUPPRESSED;
}

/* Targets recovered; *answered: tracker pairs with both queries answered. */
static unsigned run(const struct cc_policy *p, unsigned *answered)
{
    unsigned recovered = 0;
    *answered = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        unsigned pairs = 0, nonzero = 0;
        for (unsigned u = 0; u < N_TRACKERS; u++) {
            struct cc_query *a = tracker(t, u, 0), *b = tracker(t, u, 1);
            uint64_t x = ask(p, a), y = ask(p, b);
            if (x != SEEN_REFUSED && y != SEEN_REFUSED) {
                pairs++;
                nonzero += x != y;
            }
            cc_query_free(a);
            cc_query_free(b);
        }
        *answered += pairs;
        int conclusion = pairs < 5 ? -1 : nonzero * 3 > pairs * 2 ? 1 : nonzero * 3 < pairs ? 0 : -1;
        recovered += conclusion >= 0 && conclusion == t->has_secret;
    }
    return recovered;
}

Test(attack_tracker, trackers_give_targets_away_from_exact_counts)
{
    unsigned answered;
    unsigned n = run(NULL, &answered);
    cr_log_info("trackers, exact counts: %u of %u recovered", n, fx.n_targets);
    cr_assert_geq(n, fx.n_targets * 9 / 10, "recovered %u of %u", n, fx.n_targets);
}

Test(attack_tracker, trackers_recover_no_target_from_releases)
{
    struct cc_policy p;
    cc_policy_default(&p);
    unsigned answered;
    unsigned n = run(&p, &answered);
    cr_log_info("trackers, releases: %u of %u recovered, %u pairs answered", n, fx.n_targets,
                answered);
    cr_assert_eq(n, 0, "recovered %u of %u", n, fx.n_targets);
}
