/*
 * The margins attack (docs/privacy.md, "Margins" and "Secondary
 * suppression"): an attacker takes a released 2-D or 3-D table with all its
 * margins, turns every released figure into the interval of true counts it
 * allows (knowing the policy: the noise bound, the rounding base, the
 * threshold, which cells the primary rule suppressed), and narrows every
 * cell by integer interval propagation over "a margin is the sum of its
 * cells" (cc_suppress_audit) to recover suppressed cells or pin a cell to
 * its true count. The true counts come from the raw engine.
 *
 *  - control: perturbation off, suppression only: the propagation pins
 *    suppressed cells exactly (the attack works);
 *  - perturbed mode (the default): no suppressed cell and no perturbed
 *    cell is pinned, and the truth always lies in the interval (the
 *    attacker's model is sound, so the result is not an artefact of a
 *    wrong model);
 *  - fixed mode (secondary suppression): shown cells are the true counts
 *    rounded, and every primary cell keeps its whole baseline range within
 *    the protection level.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_policy.h"
#include "cc_release.h"
#include "cc_suppress.h"

static struct cc_attack_fixture fx;

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
}

TestSuite(attack_margins, .init = fixture_init, .fini = fixture_fini, .timeout = 600);

static void dim(struct cc_query *q, int kind, int banding)
{
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    memset(d, 0, sizeof *d);
    d->kind = (uint8_t)kind;
    d->age_banding = (uint8_t)banding;
}

/* Persons with the rare secret code (about 1%, so many small cells), by
 * district and sex (2-D) or by ICB, 10-year age band and sex (3-D), with
 * every margin. */
static struct cc_query *table(int three_d)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    cr_assert_eq(cc_attack_condition(q, CC_ATTACK_SECRET_CODE, 0, 0, 0), 0);
    if (three_d) {
        dim(q, CC_DIM_ICB, 0);
        dim(q, CC_DIM_AGE_BAND, CC_AGE_BANDS_10Y);
        cc_attack_age(q, 0, 89); /* no background person is older */
    } else {
        dim(q, CC_DIM_LAD, 0);
    }
    dim(q, CC_DIM_SEX, 0);
    q->margins = true;
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

struct outcome {
    uint64_t cells, suppressed /* primary */, suppressed_pinned, released_pinned, secondary, secondary_pinned;
    uint64_t unprotected;
};

/*
 * Releases q under p and attacks it. The attacker's interval for a cell:
 * released v > 0: the counts that perturb (by at most noise either way)
 * and round to v, never below the threshold before noise; released 0: 0 ..
 * noise; a primary-suppressed cell: a count that perturbs into
 * primary_lo..threshold-1; a secondary one: >= 0.
 */
static struct outcome attack(const struct cc_policy *p, struct cc_query *q)
{
    char err[256];
    cc_release *r = NULL;
    cr_assert_eq(cc_release_answer(p, NULL, fx.version, q, &fx.options, &r, err, sizeof err), 0,
                 "%s", err);
    struct cc_raw_result raw;
    memset(&raw, 0, sizeof raw);
    cr_assert_eq(cc_exec_run(fx.version, q, &fx.options, &raw, err, sizeof err), 0, "%s", err);
    const struct cc_release_summary *s = cc_release_summary(r);
    uint64_t n = cc_release_n_cells(r);
    cr_assert_eq(n, raw.n_cells);

    struct cc_suppress_shape shape = {.n_dimensions = cc_release_n_dimensions(r)};
    for (uint32_t d = 0; d < shape.n_dimensions; d++) {
        shape.size[d] = cc_release_dimension_size(r, d);
        shape.additive[d] = true; /* persons by area, age and sex: one value each */
    }
    cr_assert_eq(cc_suppress_n_cells(&shape), n);
    struct cc_suppress_rules rules = {s->threshold, s->rounding_base, s->zeros_shown ? 1 : 0};
    int64_t noise = (int64_t)s->max_noise + s->condition_max_noise;

    uint64_t *released = calloc(n, sizeof *released);
    uint8_t *mask = calloc(n, 1);
    int64_t *b = malloc(6 * n * sizeof *b);
    cr_assert(released && mask && b);
    int64_t *klo = b, *khi = b + n, *lo = b + 2 * n, *hi = b + 3 * n;
    for (uint64_t i = 0; i < n; i++) {
        struct cc_released_count c = cc_release_cell(r, i);
        mask[i] = c.reason == CC_CELL_SUPPRESSED_PRIMARY     ? 1
                  : c.reason == CC_CELL_SUPPRESSED_SECONDARY ? 2
                                                             : 0;
        released[i] = c.released ? c.value : 0;
    }
    cc_suppress_known(&shape, &rules, released, mask, klo, khi);
    for (uint64_t i = 0; i < n && noise; i++) {
        if (mask[i] == 2)
            continue;
        if (mask[i] == 0 && released[i] == 0)
            khi[i] = noise;
        else
            khi[i] += noise;
        klo[i] = klo[i] - noise > 0 ? klo[i] - noise : 0;
    }
    cr_assert_eq(cc_suppress_audit(&shape, klo, khi, lo, hi), 0,
                 "the attacker's constraints must hold for the truth");
    cr_assert_eq(cc_suppress_baseline(&shape, &rules, mask, b + 4 * n, b + 5 * n), 0);

    struct outcome o = {.cells = n};
    for (uint64_t i = 0; i < n; i++) {
        int64_t truth = (int64_t)raw.count[i];
        /* sound: the truth is always in the attacker's interval */
        cr_assert(lo[i] <= truth && truth <= hi[i], "cell %llu: %lld not in %lld..%lld",
                  (unsigned long long)i, (long long)truth, (long long)lo[i], (long long)hi[i]);
        if (mask[i] == 2) {
            o.secondary++;
            o.secondary_pinned += lo[i] == hi[i];
        } else if (mask[i]) {
            o.suppressed++;
            o.suppressed_pinned += lo[i] == hi[i];
        } else {
            o.released_pinned += lo[i] == hi[i] && truth > 0;
        }
        if (mask[i] == 1 && !cc_suppress_protected(truth, lo[i], hi[i], p->protection_level,
                                                   b[4 * n + i], b[5 * n + i]))
            o.unprotected++;
        if (p->mode == CC_POLICY_MODE_FIXED && !mask[i]) {
            /* fixed: a shown cell is the true count, rounded, no noise */
            cr_assert(truth == 0 ? released[i] == 0 : klo[i] <= truth && truth <= khi[i]);
            cr_assert_neq(cc_release_cell(r, i).reason, CC_CELL_PERTURBED);
        }
    }
    cc_raw_result_free(&raw);
    cc_release_free(r);
    free(released);
    free(mask);
    free(b);
    return o;
}

static void log_outcome(const char *what, struct outcome o)
{
    cr_log_info("%s: %llu cells, %llu primary and %llu secondary suppressed, pinned: %llu primary, "
                "%llu secondary, %llu released non-zero; %llu primary unprotected",
                what, (unsigned long long)o.cells, (unsigned long long)o.suppressed,
                (unsigned long long)o.secondary, (unsigned long long)o.suppressed_pinned,
                (unsigned long long)o.secondary_pinned,
                (unsigned long long)o.released_pinned, (unsigned long long)o.unprotected);
}

Test(attack_margins, control_without_perturbation_the_margins_give_suppressed_cells_away)
{
    struct cc_policy p;
    cc_policy_default(&p);
    p.perturb = false;
    p.rounding_base = 1;
    uint64_t pinned = 0, suppressed = 0;
    for (int three_d = 0; three_d < 2; three_d++) {
        struct cc_query *q = table(three_d);
        struct outcome o = attack(&p, q);
        log_outcome(three_d ? "control 3-D" : "control 2-D", o);
        pinned += o.suppressed_pinned;
        suppressed += o.suppressed;
        cr_assert_gt(o.unprotected, 0);
        cc_query_free(q);
    }
    cr_assert_gt(suppressed, 0);
    cr_assert_gt(pinned, 0, "the control attack must work");
}

Test(attack_margins, perturbed_margins_pin_no_suppressed_and_no_perturbed_cell)
{
    struct cc_policy p;
    cc_policy_default(&p);
    uint64_t suppressed = 0;
    for (int three_d = 0; three_d < 2; three_d++) {
        struct cc_query *q = table(three_d);
        struct outcome o = attack(&p, q);
        log_outcome(three_d ? "perturbed 3-D" : "perturbed 2-D", o);
        suppressed += o.suppressed;
        cr_assert_eq(o.suppressed_pinned, 0);
        cr_assert_eq(o.released_pinned, 0);
        cc_query_free(q);
    }
    cr_assert_gt(suppressed, 0, "the tables must have small cells to attack");
}

Test(attack_margins, fixed_mode_secondary_suppression_protects_every_primary_cell)
{
    for (uint32_t base = 1; base <= 5; base += 4) {
        struct cc_policy p;
        cc_policy_default(&p);
        p.mode = CC_POLICY_MODE_FIXED;
        p.rounding_base = base;
        for (int three_d = 0; three_d < 2; three_d++) {
            struct cc_query *q = table(three_d);
            struct outcome o = attack(&p, q);
            char what[64];
            snprintf(what, sizeof what, "fixed %s base %u", three_d ? "3-D" : "2-D", base);
            log_outcome(what, o);
            cr_assert_gt(o.suppressed, 0, "%s: no primary cell", what);
            cr_assert_gt(o.secondary, 0, "%s: nothing to protect?", what);
            cr_assert_eq(o.suppressed_pinned, 0, "%s", what);
            cr_assert_eq(o.unprotected, 0, "%s", what);
            cc_query_free(q);
        }
    }
}
