/*
 * The differencing attack against the disclosure ledger alone
 * (docs/privacy.md, "Disclosure ledger").
 *
 * The attack of test_attack_differencing.c: for each target and each of 36
 * universes around them (district, ICB or region; six age ranges; their
 * sex or both), Q1 counts persons with the secret code, Q2 the same but
 * not persons with the target's known fracture month; the cohorts differ
 * exactly when the target has the secret. Here the two halves of every
 * pair are asked in two sessions of one account with a restart between
 * them: every Q1 first, then the ledger is closed and opened again from
 * disk, then every Q2.
 *
 * The protections that defeat this attack on their own (noise layers, the
 * low-effect rule, query restrictions, suppression and rounding) are
 * switched off, so that (a) without a ledger the attack recovers most
 * targets, and (b) with the ledger, and only it, on it recovers none.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_error.h"
#include "cc_ledger.h"
#include "cc_policy.h"
#include "cc_release.h"
#include "cc_testfs.h"

static struct cc_attack_fixture fx;
static char dir[512];

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
    cc_testfs_make_dir(dir, sizeof dir, "attack_ledger");
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
    cc_testfs_remove_tree(dir);
}

TestSuite(attack_ledger, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

#define N_UNIVERSES 36
#define ATTACKER 1001

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

#define SEEN_REFUSED UINT64_MAX
#define SEEN_SUPPRESSED (UINT64_MAX - 1)

struct tally {
    unsigned answered, refused_by_ledger;
};

static uint64_t ask(const struct cc_policy *p, cc_ledger *ledger, const struct cc_query *q,
                    struct tally *tally)
{
    struct cc_release_asker asker = {ledger, ATTACKER};
    cc_release *r = NULL;
    char err[256];
    int rc = cc_release_answer(p, ledger ? &asker : NULL, fx.version, q, &fx.options, &r, err,
                               sizeof err);
    if (rc == CC_EREFUSED) {
        cr_assert(strncmp(err, "ledger:", 7) == 0, "only the ledger refuses here: %s", err);
        tally->refused_by_ledger++;
        return SEEN_REFUSED;
    }
    cr_assert_eq(rc, 0, "%s", err);
    tally->answered++;
    struct cc_released_count c = cc_release_cell(r, 0);
    cc_release_free(r);
    return c.released ? c.value : SEEN_SUPPRESSED;
}

/* Every protection but the ledger off. */
static void unprotected_policy(struct cc_policy *p)
{
    cc_policy_default(p);
    p->perturb = false;
    p->refuse_low_effect = false;
    p->restrict_queries = false;
    p->threshold = 1;
    p->rounding_base = 1;
    p->ledger_min_difference = CC_POLICY_DEFAULT_THRESHOLD;
}

static cc_ledger *open_ledger(void)
{
    cc_ledger *l;
    char err[256];
    cr_assert_eq(cc_ledger_open(dir, &l, err, sizeof err), 0, "%s", err);
    return l;
}

struct outcome {
    unsigned recovered, wrong, undecided, answered_pairs;
    struct tally first, second;
};

/* The attack in two sessions with a restart between them; with_ledger 0:
 * no ledger. */
static struct outcome run_split_attack(int with_ledger)
{
    struct cc_policy p;
    unprotected_policy(&p);
    static uint64_t seen_q1[CC_ATTACK_TARGETS][N_UNIVERSES];
    struct outcome o = {0};
    cc_ledger *ledger = with_ledger ? open_ledger() : NULL;
    for (uint32_t i = 0; i < fx.n_targets; i++)
        for (unsigned u = 0; u < N_UNIVERSES; u++) {
            struct cc_query *q1 = attack_query(&fx.targets[i], u, 0);
            seen_q1[i][u] = ask(&p, ledger, q1, &o.first);
            cc_query_free(q1);
        }
    /* the restart: everything the ledger knows now comes from disk */
    cc_ledger_close(ledger);
    ledger = with_ledger ? open_ledger() : NULL;
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        unsigned pairs = 0, differ = 0;
        for (unsigned u = 0; u < N_UNIVERSES; u++) {
            struct cc_query *q2 = attack_query(t, u, 1);
            uint64_t b = ask(&p, ledger, q2, &o.second);
            cc_query_free(q2);
            if (seen_q1[i][u] != SEEN_REFUSED && b != SEEN_REFUSED) {
                pairs++;
                differ += seen_q1[i][u] != b;
            }
        }
        o.answered_pairs += pairs;
        int conclusion = -1;
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
    cc_ledger_close(ledger);
    return o;
}

Test(attack_ledger, without_the_ledger_the_attack_recovers_most_targets)
{
    cr_assert_geq(fx.n_targets, 40);
    struct outcome o = run_split_attack(0);
    cr_log_info("no ledger: %u recovered, %u wrong, %u undecided of %u (%u pairs)", o.recovered,
                o.wrong, o.undecided, fx.n_targets, o.answered_pairs);
    cr_assert_eq(o.first.refused_by_ledger + o.second.refused_by_ledger, 0);
    cr_assert_geq(o.recovered, fx.n_targets * 9 / 10, "recovered %u of %u", o.recovered,
                  fx.n_targets);
}

Test(attack_ledger, with_the_ledger_across_a_restart_the_attack_recovers_none)
{
    struct outcome o = run_split_attack(1);
    cr_log_info("ledger: %u recovered, %u wrong, %u undecided of %u (%u pairs); first session "
                "%u answered %u refused, second %u answered %u refused",
                o.recovered, o.wrong, o.undecided, fx.n_targets, o.answered_pairs,
                o.first.answered, o.first.refused_by_ledger, o.second.answered,
                o.second.refused_by_ledger);
    cr_assert_eq(o.recovered, 0, "recovered %u of %u", o.recovered, fx.n_targets);
    /* the ledger did not merely refuse everything: the first session was
     * answered, and the second session's refusals came from disk */
    cr_assert_geq(o.first.answered, 100, "first session answered %u", o.first.answered);
    cr_assert_gt(o.second.refused_by_ledger, 0);
}
