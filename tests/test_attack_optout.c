/*
 * The opt-out attacks across a publication (docs/privacy.md, "Publications"
 * and "Evidence"; DESIGN, Disclosure control 11).
 *
 * Two data versions of the attack population: before, and after a
 * publication that applies a batch of opt-outs: half of the targets (every
 * other pair, so unrelated to the secret) and 12 background persons. The
 * attacker knows each target's district, age and sex, and wants to learn
 * who opted out. Per target, over 36 universes (the target's ICB, region or
 * all areas; six age ranges around their age; their sex or both), they ask
 * the population table "persons by district x sex, with every margin"
 * before and after, and read the target's cell and its two margins, and
 * the table's other cells as a baseline.
 *
 * Two attackers:
 *  - change detection: "opted out" when the target's figures changed in
 *    far more tables than the baseline cells did, "not" when about as
 *    often and changes are rare;
 *  - magnitude: the mean of after - before at the target's cell, less the
 *    baseline's mean, over every answered table: "opted out" near -1,
 *    "not" near 0.
 * A confident conclusion needs at least 5 tables answered both times. A
 * target is recovered when the conclusion is confident and correct.
 *
 * Controls: without the publication layer (cell key noise alone, as a
 * textbook cell key table builder), change detection recovers most
 * targets: a cell whose persons did not change keeps its value, one that
 * lost the target is drawn afresh. The magnitude attacker recovers most
 * from exact counts. Protected: every publication draws every cell afresh
 * (the noise epoch), so change detection sees every cell change and
 * concludes nothing; the magnitude attacker, who averages the target's
 * -1 over 36 differently worded universes, still finds opted-out targets
 * with the publication layer alone, and with the cohort ledger too (which
 * refuses after-tables whose cohorts differ from before-tables by fewer
 * than ledger_min_difference persons, and bounds the near differences by
 * its budget), and none once the ledger's cells answer each after-cell
 * that is nearly a before-cell with the before-cell's value (record keys
 * and sketches are the same in every version).
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_attack_fixture.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_ledger.h"
#include "cc_policy.h"
#include "cc_release.h"
#include "cc_testfs.h"

#define N_UNIVERSES 36
#define N_BACKGROUND 12
#define ATTACKER 2002

static struct cc_attack_fixture fx;
static cc_dataversion *after;
static char dir[512];

static int opted_out(uint32_t i)
{
    return (i / 2) % 2 == 0;
}

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
    uint32_t excluded[CC_ATTACK_TARGETS + N_BACKGROUND], n = 0;
    for (uint32_t i = 0; i < fx.n_targets; i++)
        if (opted_out(i))
            excluded[n++] = fx.targets[i].person;
    uint32_t n_persons = cc_store_columns(fx.store)->n_persons;
    for (uint32_t k = 0; k < N_BACKGROUND; k++) {
        uint32_t p = (uint32_t)((1000 + 1999ULL * k) % n_persons);
        for (uint32_t i = 0; i < fx.n_targets; i++)
            if (fx.targets[i].person == p)
                p = (p + 1) % n_persons;
        excluded[n++] = p;
    }
    cr_assert_eq(cc_dataversion_from_indices(fx.store, excluded, n, &after), 0);
    cr_assert_neq(cc_dataversion_noise_epoch(after), cc_dataversion_noise_epoch(fx.version),
                  "a new excluded set is a new noise epoch");
    cc_testfs_make_dir(dir, sizeof dir, "attack_optout");
}

static void fixture_fini(void)
{
    cc_dataversion_release(after);
    cc_attack_fixture_free(&fx);
    cc_testfs_remove_tree(dir);
}

TestSuite(attack_optout, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

static void dim(struct cc_query *q, int kind)
{
    struct cc_query_dimension *d = &q->dimensions[q->n_dimensions++];
    memset(d, 0, sizeof *d);
    d->kind = (uint8_t)kind;
}

static struct cc_query *table(const struct cc_attack_target *t, unsigned u)
{
    struct cc_query *q;
    cr_assert_eq(cc_attack_query(CC_MEASURE_PERSONS, &q), 0);
    unsigned area = u % 3, ages = u / 3 % 6, sexes = u / 18;
    if (area == 0)
        cr_assert_eq(cc_attack_area(q, CC_AREA_ICB, cc_attack_icb_code(&fx, t->icb)), 0);
    else if (area == 1)
        cr_assert_eq(cc_attack_area(q, CC_AREA_REGION, cc_attack_region_code(&fx, t->region)),
                     0);
    static const int below[6] = {5, 10, 20, 30, 40, 60}, above[6] = {5, 0, 10, 0, 20, 10};
    cc_attack_age(q, t->age - below[ages], t->age + above[ages]);
    if (sexes == 0)
        cc_attack_sex(q, t->sex);
    dim(q, CC_DIM_LAD);
    dim(q, CC_DIM_SEX);
    q->margins = true;
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

/* What the attacker sees of one table: per cell a value, or NONE when
 * suppressed; refused tables have n == 0. */
#define NONE INT64_MIN
struct seen {
    uint64_t n;
    int64_t *value;
    uint32_t lads, sexes;         /* dimension sizes (margins included) */
    uint32_t target_lad, target_sex; /* coordinates of the target's cell */
};

static void seen_free(struct seen *s)
{
    free(s->value);
    memset(s, 0, sizeof *s);
}

/* The coordinate of the value labelled `label` along dimension d. */
static uint32_t find_label(const cc_release *r, uint32_t d, const char *label)
{
    char buf[64];
    for (uint32_t v = 0; v < cc_release_dimension_size(r, d); v++) {
        cc_release_label(r, d, v, buf, sizeof buf);
        if (!strcmp(buf, label))
            return v;
    }
    cr_assert_fail("no value '%s' on dimension %u", label, d);
    return 0;
}

/* Asks q of version v: under policy p (with the ledger, if any), or the
 * exact counts when p is NULL. */
static struct seen ask(const struct cc_policy *p, cc_ledger *ledger, const cc_dataversion *v,
                       const struct cc_attack_target *t, struct cc_query *q)
{
    struct seen s = {0};
    char err[256];
    const char *sex_label = t->sex == CC_SEX_MALE ? "male" : "female";
    if (!p) {
        struct cc_raw_result raw;
        cr_assert_eq(cc_exec_run(v, q, &fx.options, &raw, err, sizeof err), 0, "%s", err);
        cr_assert_eq(raw.n_dimensions, 2);
        s.n = raw.n_cells;
        s.lads = raw.dimensions[0].n_values;
        s.sexes = raw.dimensions[1].n_values;
        s.value = malloc(s.n * sizeof *s.value);
        for (uint64_t i = 0; i < s.n; i++)
            s.value[i] = (int64_t)raw.count[i];
        cc_raw_result_free(&raw);
        /* the same layout as a release of q: find the coordinates there */
        struct cc_policy open;
        cc_policy_default(&open);
        open.restrict_queries = false;
        open.refuse_low_effect = false;
        cc_release *r = NULL;
        cr_assert_eq(cc_release_answer(&open, NULL, v, q, &fx.options, &r, err, sizeof err), 0,
                     "%s", err);
        s.target_lad = find_label(r, 0, cc_attack_lad_code(&fx, t->lad));
        s.target_sex = find_label(r, 1, sex_label);
        cc_release_free(r);
        return s;
    }
    struct cc_release_asker asker = {ledger, ATTACKER};
    cc_release *r = NULL;
    int rc = cc_release_answer(p, ledger ? &asker : NULL, v, q, &fx.options, &r, err, sizeof err);
    if (rc == CC_EREFUSED)
        return s;
    cr_assert_eq(rc, 0, "%s", err);
    s.n = cc_release_n_cells(r);
    s.lads = cc_release_dimension_size(r, 0);
    s.sexes = cc_release_dimension_size(r, 1);
    s.value = malloc(s.n * sizeof *s.value);
    for (uint64_t i = 0; i < s.n; i++) {
        struct cc_released_count c = cc_release_cell(r, i);
        s.value[i] = c.released ? (int64_t)c.value : NONE;
    }
    s.target_lad = find_label(r, 0, cc_attack_lad_code(&fx, t->lad));
    s.target_sex = find_label(r, 1, sex_label);
    cc_release_free(r);
    return s;
}

/* recovered: confident and correct; wrong: confident and not; opted_out:
 * targets concluded to have opted out who did (the attacker's aim), and
 * accused: those concluded to have who did not. An attacker who concludes
 * "not opted out" of everyone is right about half the targets and has
 * learnt nothing: the advantage, recovered - wrong, is then 0. */
struct outcome {
    unsigned recovered, wrong, undecided, tables_answered;
    unsigned opted_out, accused;
};

static void score(struct outcome *o, int conclusion, uint32_t i)
{
    if (conclusion < 0)
        o->undecided++;
    else if (conclusion == opted_out(i))
        o->recovered++;
    else
        o->wrong++;
    if (conclusion == 1 && opted_out(i))
        o->opted_out++;
    else if (conclusion == 1)
        o->accused++;
}

/*
 * Runs both attackers: every before-table of every target first (the day
 * before the publication), then every after-table (the day after), as one
 * account. p NULL: exact counts. Fills the change-detection outcome into
 * *change and the magnitude outcome into *magnitude.
 */
static void run_attack(const struct cc_policy *p, bool with_ledger, struct outcome *change,
                       struct outcome *magnitude)
{
    memset(change, 0, sizeof *change);
    memset(magnitude, 0, sizeof *magnitude);
    cc_ledger *ledger = NULL;
    char err[256];
    if (with_ledger) {
        char path[600];
        snprintf(path, sizeof path, "%s/state.db", dir);
        remove(path);
        cr_assert_eq(cc_ledger_open(dir, &ledger, err, sizeof err), 0, "%s", err);
    }
    static struct seen before[CC_ATTACK_TARGETS][N_UNIVERSES];
    for (uint32_t i = 0; i < fx.n_targets; i++)
        for (unsigned u = 0; u < N_UNIVERSES; u++) {
            struct cc_query *q = table(&fx.targets[i], u);
            before[i][u] = ask(p, ledger, fx.version, &fx.targets[i], q);
            cc_query_free(q);
        }
    for (uint32_t i = 0; i < fx.n_targets; i++) {
        const struct cc_attack_target *t = &fx.targets[i];
        unsigned tables = 0, target_changed = 0, target_figures = 0;
        uint64_t base_changed = 0, base_figures = 0;
        double diff_sum = 0, diff_sq = 0;
        unsigned diff_tables = 0;
        for (unsigned u = 0; u < N_UNIVERSES; u++) {
            struct cc_query *q = table(t, u);
            struct seen b = before[i][u], a = ask(p, ledger, after, t, q);
            cc_query_free(q);
            if (b.n && a.n) {
                cr_assert_eq(a.n, b.n);
                tables++;
                uint32_t tl = b.target_lad, ts = b.target_sex;
                /* the target's cell and its two margins */
                uint64_t mine[3] = {(uint64_t)tl * b.sexes + ts,
                                    (uint64_t)tl * b.sexes + (b.sexes - 1),
                                    (uint64_t)(b.lads - 1) * b.sexes + ts};
                for (int k = 0; k < 3; k++) {
                    target_figures++;
                    target_changed += a.value[mine[k]] != b.value[mine[k]];
                }
                /* the baseline: every other inner cell that was released */
                double base_diff = 0;
                unsigned base_n = 0;
                for (uint32_t l = 0; l + 1 < b.lads; l++)
                    for (uint32_t s = 0; s + 1 < b.sexes; s++) {
                        uint64_t c = (uint64_t)l * b.sexes + s;
                        /* comparable cells: released above 0 both times (an empty
                         * cell is 0 in every version and would make any
                         * populated cell look changed) */
                        if (l == tl || b.value[c] == NONE || a.value[c] == NONE ||
                            b.value[c] == 0 || a.value[c] == 0)
                            continue;
                        base_figures++;
                        base_changed += a.value[c] != b.value[c];
                        if (a.value[c] != NONE && b.value[c] != NONE) {
                            base_diff += (double)(a.value[c] - b.value[c]);
                            base_n++;
                        }
                    }
                if (a.value[mine[0]] != NONE && b.value[mine[0]] != NONE) {
                    double d = (double)(a.value[mine[0]] - b.value[mine[0]]) -
                               (base_n ? base_diff / base_n : 0);
                    diff_sum += d;
                    diff_sq += d * d;
                    diff_tables++;
                }
            }
            seen_free(&b);
            seen_free(&a);
        }
        change->tables_answered += tables;
        magnitude->tables_answered += diff_tables;
        /* change detection */
        int conclusion = -1;
        if (tables >= 5 && base_figures > 0) {
            double dt = (double)target_changed / target_figures;
            double d0 = (double)base_changed / (double)base_figures;
            if (dt >= d0 + 0.35)
                conclusion = 1;
            else if (dt <= d0 + 0.1 && d0 <= 0.3)
                conclusion = 0;
        }
        score(change, conclusion, i);
        /* magnitude */
        conclusion = -1;
        if (diff_tables >= 5) {
            /* confident: the mean is two standard errors from the other
             * hypothesis (-1 opted out, 0 not); exact counts: se 0 */
            double k = diff_tables, mean = diff_sum / k;
            double var = diff_sq / k - mean * mean;
            double se = var > 0 ? sqrt(var / (k - 1)) : 0;
            if (mean + 2 * se <= -0.5 && mean <= -0.5)
                conclusion = 1;
            else if (mean - 2 * se >= -0.5 && mean >= -0.5)
                conclusion = 0;
        }
        score(magnitude, conclusion, i);
    }
    cc_ledger_close(ledger);
}

static void log_outcome(const char *what, const struct outcome *o)
{
    cr_log_info("%s: %u recovered, %u wrong, %u undecided of %u (%u tables answered); "
                "%u opted out found, %u accused",
                what, o->recovered, o->wrong, o->undecided, fx.n_targets, o->tables_answered,
                o->opted_out, o->accused);
}

Test(attack_optout, control_exact_counts_give_every_opt_out_away)
{
    cr_assert_geq(fx.n_targets, 40);
    struct outcome change, magnitude;
    run_attack(NULL, false, &change, &magnitude);
    log_outcome("exact, change detection", &change);
    log_outcome("exact, magnitude", &magnitude);
    /* every opted-out target's cell lost exactly one person; the others'
     * changed as the baseline did (background opt-outs), so change
     * detection is sure of the first half only */
    cr_assert_geq(magnitude.recovered, fx.n_targets * 3 / 4, "%u", magnitude.recovered);
    cr_assert_geq(change.recovered, fx.n_targets / 2, "%u", change.recovered);
    cr_assert_leq(change.wrong + magnitude.wrong, 2);
}

Test(attack_optout, the_publication_layer_cuts_change_detection)
{
    struct cc_policy textbook, p;
    cc_policy_default(&textbook);
    textbook.publication_noise = false;
    cc_policy_default(&p);
    struct outcome control, change, magnitude;
    run_attack(&textbook, false, &control, &magnitude);
    log_outcome("cell key alone, change detection", &control);
    log_outcome("cell key alone, magnitude", &magnitude);
    cr_assert_geq(control.recovered, fx.n_targets / 2,
                  "a textbook cell key table builder shows which cells changed: %u of %u",
                  control.recovered, fx.n_targets);
    run_attack(&p, false, &change, &magnitude);
    log_outcome("publication layer, change detection", &change);
    log_outcome("publication layer, magnitude (no ledger)", &magnitude);
    cr_assert_gt(change.tables_answered, fx.n_targets * 5, "the attack was answered");
    cr_assert_leq(change.recovered * 3, control.recovered,
                  "change detection: %u recovered with the layer, %u without", change.recovered,
                  control.recovered);
}

/* The magnitude attacker averages the target's -1 over many differently
 * worded universes across one publication: a differencing attack the
 * cohort-level ledger does not see (each universe's cohort changes by the
 * whole batch, the target's cell by one person). The ledger's cells see
 * it: the target's cell after the publication is nearly the cell released
 * before it, so it is answered with the value released before, whether
 * the target opted out or not. The attacker then sees no change anywhere
 * and learns nothing: no opted-out target found, no advantage over a
 * guess. The control is the publication layer without the ledger (above:
 * the magnitude attacker's opt-outs found there are asserted here too). */
Test(attack_optout, the_ledger_cells_defeat_averaging_across_a_publication)
{
    struct cc_policy p;
    cc_policy_default(&p);
    struct outcome control_change, control, change, magnitude;
    run_attack(&p, false, &control_change, &control);
    log_outcome("publication layer, magnitude (no ledger)", &control);
    cr_assert_geq((int)control.recovered - (int)control.wrong, (int)fx.n_targets / 4,
                  "without the ledger the averaging attack beats a guess: %u right, %u wrong",
                  control.recovered, control.wrong);
    cr_assert_geq(control.opted_out, 3, "and finds opted-out targets: %u", control.opted_out);
    struct cc_policy cohorts_only = p;
    cohorts_only.ledger_cell_max = 0;
    struct outcome partial_change, partial;
    run_attack(&cohorts_only, true, &partial_change, &partial);
    log_outcome("publication layer + cohort ledger only, magnitude", &partial);
    cr_assert_geq((int)partial.recovered - (int)partial.wrong, (int)fx.n_targets / 6,
                  "the cohort ledger alone does not stop it: %u right, %u wrong",
                  partial.recovered, partial.wrong);
    run_attack(&p, true, &change, &magnitude);
    log_outcome("publication layer + ledger, change detection", &change);
    log_outcome("publication layer + ledger, magnitude", &magnitude);
    cr_assert_gt(magnitude.tables_answered, fx.n_targets * 5, "the attack was answered");
    cr_assert_leq(change.opted_out + magnitude.opted_out, 1, "opted-out targets found: %u, %u",
                  change.opted_out, magnitude.opted_out);
    int advantage = (int)magnitude.recovered - (int)magnitude.wrong;
    cr_assert_leq(advantage, (int)fx.n_targets / 12, "magnitude: %u right, %u wrong",
                  magnitude.recovered, magnitude.wrong);
    advantage = (int)change.recovered - (int)change.wrong;
    cr_assert_leq(advantage, (int)fx.n_targets / 12, "change: %u right, %u wrong",
                  change.recovered, change.wrong);
}
