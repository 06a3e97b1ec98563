/*
 * Tests for secondary suppression and its auditor (queries/cc_suppress.c):
 * the auditor recovers primary-suppressed cells exactly from the margins
 * of tables where only primary suppression was done (the attack works),
 * and after secondary suppression finds no primary cell pinned or
 * protected by less than p, over hundreds of random 1-D, 2-D and 3-D tables
 * with margins and small counts, with and without rounding.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_suppress.h"

#define THRESHOLD 8

static struct cc_suppress_rules rules_for(uint32_t base)
{
    return (struct cc_suppress_rules){THRESHOLD, base, 1};
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Fills the inner cells with small counts (a share below the threshold)
 * and every margin with the sum of its cells. */
static void fill(const struct cc_suppress_shape *shape, uint64_t *counts, unsigned small_share)
{
    uint64_t n = cc_suppress_n_cells(shape);
    uint64_t stride[CC_SUPPRESS_DIMENSIONS_CAP], s = 1;
    for (uint32_t d = shape->n_dimensions; d-- > 0;) {
        stride[d] = s;
        s *= shape->size[d];
    }
    memset(counts, 0, n * sizeof *counts);
    for (uint64_t i = 0; i < n; i++) {
        bool inner = true;
        for (uint32_t d = 0; d < shape->n_dimensions; d++)
            if (i / stride[d] % shape->size[d] == shape->size[d] - 1)
                inner = false;
        if (!inner)
            continue;
        uint64_t v = rnd() % 100 < small_share ? 1 + rnd() % (THRESHOLD - 1) : THRESHOLD + rnd() % 40;
        /* add v to the cell and to every margin over it */
        for (uint32_t mask = 0; mask < (1u << shape->n_dimensions); mask++) {
            uint64_t c = i;
            for (uint32_t d = 0; d < shape->n_dimensions; d++)
                if (mask & (1u << d))
                    c += (shape->size[d] - 1 - i / stride[d] % shape->size[d]) * stride[d];
            counts[c] += v;
        }
    }
}

/* Primary suppression as the release layer does it (zeros shown), and the
 * released values rounded to base (halves up, never below the threshold). */
static uint64_t primary(uint64_t n, const uint64_t *counts, uint64_t *released, uint8_t *mask,
                        uint32_t base)
{
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        mask[i] = counts[i] > 0 && counts[i] < THRESHOLD;
        k += mask[i];
        uint64_t r = (counts[i] + base / 2) / base * base;
        if (counts[i] && r < THRESHOLD)
            r = (THRESHOLD + base - 1) / base * base;
        released[i] = mask[i] ? 0 : r;
    }
    return k;
}

struct audit_result {
    uint64_t primary, pinned, unprotected, secondary;
};

/* Audits the table as released (mask) and counts the primary cells the
 * auditor pins exactly or protects by less than p. */
static struct audit_result audit(const struct cc_suppress_shape *shape, const uint64_t *counts,
                                 const uint64_t *released, const uint8_t *mask, uint32_t base,
                                 uint32_t p)
{
    uint64_t n = cc_suppress_n_cells(shape);
    int64_t *b = malloc(6 * n * sizeof *b);
    cr_assert_not_null(b);
    struct cc_suppress_rules rules = rules_for(base);
    cc_suppress_known(shape, &rules, released, mask, b, b + n);
    cr_assert_eq(cc_suppress_audit(shape, b, b + n, b + 2 * n, b + 3 * n), 0);
    cr_assert_eq(cc_suppress_baseline(shape, &rules, mask, b + 4 * n, b + 5 * n), 0);
    struct audit_result r = {0};
    for (uint64_t i = 0; i < n; i++) {
        /* the bounds are sound: the truth is inside them */
        cr_assert_leq(b[2 * n + i], (int64_t)counts[i], "cell %llu", (unsigned long long)i);
        cr_assert_geq(b[3 * n + i], (int64_t)counts[i], "cell %llu", (unsigned long long)i);
        if (mask[i] == 2)
            r.secondary++;
        if (mask[i] != 1)
            continue;
        r.primary++;
        if (b[2 * n + i] == b[3 * n + i])
            r.pinned++;
        if (!cc_suppress_protected((int64_t)counts[i], b[2 * n + i], b[3 * n + i], p, b[4 * n + i],
                                   b[5 * n + i]))
            r.unprotected++;
    }
    free(b);
    return r;
}

static void random_shape(struct cc_suppress_shape *shape, uint32_t dims, const uint32_t *sizes)
{
    memset(shape, 0, sizeof *shape);
    shape->n_dimensions = dims;
    for (uint32_t d = 0; d < dims; d++) {
        shape->size[d] = sizes[d] + 1; /* the total */
        shape->additive[d] = true;
    }
}

Test(suppress, auditor_recovers_single_suppressed_cells_in_a_row)
{
    /* one small cell per row of a 10x10 table: each is the row total less
     * the released cells, so primary suppression alone hides nothing */
    rng_state = 14;
    struct cc_suppress_shape shape;
    random_shape(&shape, 2, (uint32_t[]){10, 10});
    uint64_t n = cc_suppress_n_cells(&shape);
    uint64_t counts[121], released[121];
    uint8_t mask[121];
    uint64_t total_primary = 0, total_pinned = 0;
    for (int t = 0; t < 50; t++) {
        fill(&shape, counts, 0);
        /* make one cell per row small, then rebuild the margins */
        uint64_t inner[100];
        for (uint32_t r = 0; r < 10; r++)
            for (uint32_t c = 0; c < 10; c++)
                inner[r * 10 + c] = counts[r * 11 + c];
        for (uint32_t r = 0; r < 10; r++)
            inner[r * 10 + rnd() % 10] = 1 + rnd() % (THRESHOLD - 1);
        memset(counts, 0, sizeof counts);
        for (uint32_t r = 0; r < 10; r++)
            for (uint32_t c = 0; c < 10; c++) {
                uint64_t v = inner[r * 10 + c];
                counts[r * 11 + c] += v;
                counts[r * 11 + 10] += v;
                counts[10 * 11 + c] += v;
                counts[10 * 11 + 10] += v;
            }
        primary(n, counts, released, mask, 1);
        struct audit_result a = audit(&shape, counts, released, mask, 1, THRESHOLD);
        total_primary += a.primary;
        total_pinned += a.pinned;
    }
    cr_log_info("one small cell per row: %llu of %llu pinned", (unsigned long long)total_pinned,
                (unsigned long long)total_primary);
    cr_assert_geq(total_primary, 500);
    cr_assert_eq(total_pinned, total_primary, "pinned %llu of %llu",
                 (unsigned long long)total_pinned, (unsigned long long)total_primary);
}

static void property(uint32_t dims, const uint32_t *sizes, uint32_t base, int n_tables,
                     uint64_t seed, bool expect_attack)
{
    rng_state = seed;
    struct cc_suppress_shape shape;
    random_shape(&shape, dims, sizes);
    uint64_t n = cc_suppress_n_cells(&shape);
    uint64_t *counts = malloc(n * sizeof *counts), *released = malloc(n * sizeof *released);
    uint8_t *mask = malloc(n);
    cr_assert(counts && released && mask);
    struct audit_result before = {0}, after = {0};
    for (int t = 0; t < n_tables; t++) {
        fill(&shape, counts, 10 + (unsigned)(rnd() % 30));
        primary(n, counts, released, mask, base);
        struct audit_result a = audit(&shape, counts, released, mask, base, THRESHOLD);
        before.primary += a.primary;
        before.pinned += a.pinned;
        before.unprotected += a.unprotected;
        uint64_t n_secondary;
        struct cc_suppress_rules rules = rules_for(base);
        cr_assert_eq(cc_suppress_secondary(&shape, &rules, counts, released, mask, THRESHOLD,
                                           &n_secondary),
                     0);
        for (uint64_t i = 0; i < n; i++)
            if (mask[i])
                released[i] = 0;
        a = audit(&shape, counts, released, mask, base, THRESHOLD);
        cr_assert_eq(a.secondary, n_secondary);
        after.primary += a.primary;
        after.pinned += a.pinned;
        after.unprotected += a.unprotected;
        after.secondary += a.secondary;
    }
    cr_log_info("%u-D, base %u, %d tables: primary %llu, pinned %llu, unprotected %llu before; "
                "%llu secondary; pinned %llu, unprotected %llu after",
                dims, base, n_tables, (unsigned long long)before.primary,
                (unsigned long long)before.pinned, (unsigned long long)before.unprotected,
                (unsigned long long)after.secondary, (unsigned long long)after.pinned,
                (unsigned long long)after.unprotected);
    cr_assert_eq(after.primary, before.primary);
    if (expect_attack) /* the control: primary suppression alone leaks */
        cr_assert_gt(before.unprotected, 0);
    cr_assert_eq(after.pinned, 0);
    cr_assert_eq(after.unprotected, 0);
    free(counts);
    free(released);
    free(mask);
}

Test(suppress, one_dimension_with_total)
{
    property(1, (uint32_t[]){6}, 1, 300, 1, true);
}

Test(suppress, two_dimensions_3x4)
{
    property(2, (uint32_t[]){3, 4}, 1, 300, 2, true);
}

Test(suppress, two_dimensions_10x10)
{
    property(2, (uint32_t[]){10, 10}, 1, 200, 3, true);
}

Test(suppress, three_dimensions_4x5x3)
{
    property(3, (uint32_t[]){4, 5, 3}, 1, 200, 4, true);
}

Test(suppress, rounded_to_5)
{
    property(2, (uint32_t[]){3, 4}, 5, 200, 5, false);
    property(3, (uint32_t[]){4, 5, 3}, 5, 100, 6, false);
}

Test(suppress, persons_margin_over_periods_is_not_a_sum)
{
    /* 1-D, not additive: a total of 10 persons over cells 3 and 9 (one
     * person in both): the total does not give the suppressed cell away */
    struct cc_suppress_shape shape = {.n_dimensions = 1, .size = {3}, .additive = {false}};
    struct cc_suppress_rules rules = rules_for(1);
    uint64_t counts[3] = {3, 9, 10}, released[3] = {0, 9, 10};
    uint8_t mask[3] = {1, 0, 0};
    int64_t b[12];
    cc_suppress_known(&shape, &rules, released, mask, b, b + 3);
    cr_assert_eq(cc_suppress_audit(&shape, b, b + 3, b + 6, b + 9), 0);
    cr_assert_eq(b[6], 1); /* at least 10 - 9, and a primary cell is >= 1 */
    cr_assert_eq(b[9], 7); /* at most the threshold less 1 */
    cr_assert(b[6] <= (int64_t)counts[0] && (int64_t)counts[0] <= b[9]);
    cr_assert(cc_suppress_protected(3, b[6], b[9], THRESHOLD, 1, 7));
    /* additive, the same figures pin it at 1 */
    shape.additive[0] = true;
    uint64_t c2[3] = {1, 9, 10};
    cc_suppress_known(&shape, &rules, released, mask, b, b + 3);
    cr_assert_eq(cc_suppress_audit(&shape, b, b + 3, b + 6, b + 9), 0);
    cr_assert_eq(b[6], 1);
    cr_assert_eq(b[9], 1);
    cr_assert_not(cc_suppress_protected(1, b[6], b[9], THRESHOLD, 1, 7));
    uint64_t k;
    cr_assert_eq(cc_suppress_secondary(&shape, &rules, c2, released, mask, THRESHOLD, &k), 0);
    cr_assert_eq(k, 1);
    cr_assert_eq(mask[1], 2, "the cheapest cell of 8 or more is suppressed");
    cr_assert_eq(mask[2], 0);
}

Test(suppress, criterion_and_bad_shapes)
{
    /* p = 8, baseline 1..7: the whole baseline must stay feasible */
    cr_assert(cc_suppress_protected(3, 1, 7, 8, 1, 7));
    cr_assert_not(cc_suppress_protected(3, 1, 6, 8, 1, 7));
    cr_assert_not(cc_suppress_protected(3, 2, 7, 8, 1, 7));
    /* p = 2: 1..5 around a 3 */
    cr_assert(cc_suppress_protected(3, 1, 5, 2, 1, 7));
    cr_assert_not(cc_suppress_protected(3, 2, 7, 2, 1, 7));
    cr_assert_not(cc_suppress_protected(3, 1, 4, 2, 1, 7));
    /* a baseline narrowed by a small total: 1..5 is all that can be asked */
    cr_assert(cc_suppress_protected(4, 1, 5, 8, 1, 5));
    /* zeros suppressed: a 0 must stay possible */
    cr_assert_not(cc_suppress_protected(2, 1, 7, 8, 0, 7));
    cr_assert(cc_suppress_protected(2, 0, 7, 8, 0, 7));
    /* the baseline of a small total over small cells */
    struct cc_suppress_shape line = {.n_dimensions = 1, .size = {3}, .additive = {true}};
    struct cc_suppress_rules rules = rules_for(1);
    uint8_t all[3] = {1, 1, 1};
    int64_t f[3], c[3];
    cr_assert_eq(cc_suppress_baseline(&line, &rules, all, f, c), 0);
    cr_assert(f[0] == 1 && c[0] == 6 && f[2] == 2 && c[2] == 7);
    struct cc_suppress_shape shape = {.n_dimensions = 1, .size = {1}};
    int64_t x = 0;
    cr_assert_eq(cc_suppress_audit(&shape, &x, &x, &x, &x), CC_EINVAL);
    /* constraints no table meets */
    shape.size[0] = 2;
    shape.additive[0] = true;
    int64_t klo[2] = {5, 6}, khi[2] = {5, 6}, lo[2], hi[2];
    cr_assert_eq(cc_suppress_audit(&shape, klo, khi, lo, hi), CC_EINVAL);
}
