/*
 * The ledger's cells (queries/cc_ledger.h, cc_ledger_admit_cells): a cell
 * nearly the same as one released to the account before is answered with
 * that cell's value; one that is not near is answered as protected and
 * remembered; accounts are separate; cells survive close and reopen and
 * are seen by a second ledger on the same directory; they are forgotten
 * after ledger_cell_days; an account holds at most ledger_cells; cells of
 * ledger_cell_max persons or more are not looked at.
 *
 * Sketches are made here as the engine makes them (cc_exec.h,
 * cell_sketch): a record key's low 4 bits pick its bucket, the rest is its
 * value, a bucket keeps its least value.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_ledger.h"
#include "cc_policy.h"
#include "cc_testfs.h"

#define ACCOUNT 7
#define NOW 2000000000

static struct cc_policy policy;
static char dir[512];

static void setup(void)
{
    cc_policy_default(&policy);
    cc_testfs_make_dir(dir, sizeof dir, "ledger_cells");
}

static void teardown(void)
{
    cc_testfs_remove_tree(dir);
}

TestSuite(ledger_cells, .init = setup, .fini = teardown, .timeout = 120);

static cc_ledger *open_ledger(void)
{
    cc_ledger *l = NULL;
    char err[256];
    cr_assert_eq(cc_ledger_open(dir, &l, err, sizeof err), 0, "%s", err);
    return l;
}

/* A cell of the persons first..first+n-1 (record keys scrambled), less
 * `drop` (UINT32_MAX: none), released as value. */
struct cell {
    uint32_t sketch[CC_LEDGER_SKETCH_BUCKETS];
    struct cc_ledger_cell c;
};

static void make(struct cell *out, uint32_t first, uint32_t n, uint32_t drop, uint64_t value)
{
    memset(out, 0, sizeof *out);
    memset(out->sketch, 0xff, sizeof out->sketch);
    uint64_t persons = 0;
    for (uint32_t i = first; i < first + n; i++) {
        if (i == drop)
            continue;
        uint32_t key = i * 2654435761u;
        uint32_t *slot = &out->sketch[key & 15];
        if (key >> 4 < *slot)
            *slot = key >> 4;
        persons++;
    }
    out->c.persons = persons;
    out->c.sketch = out->sketch;
    out->c.value = value;
    out->c.released = 1;
    out->c.reason = 3;
}

/* Admits one cell; returns the code, the cell's outcome in *cell. */
static int admit1(cc_ledger *l, int64_t account, struct cell *cell, int64_t now)
{
    char err[256];
    int rc = cc_ledger_admit_cells(l, account, &policy, &cell->c, 1, now, err, sizeof err);
    if (rc == CC_EREFUSED)
        cr_assert(strstr(err, "ledger_cells"), "%s", err);
    return rc;
}

Test(ledger_cells, a_cell_less_one_person_gets_the_earlier_value)
{
    cc_ledger *l = open_ledger();
    struct cell before, after;
    make(&before, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &before, NOW), 0);
    cr_assert_eq(before.c.pinned, 0, "the first cell is new");
    cr_assert_eq(before.c.value, 300);
    /* one person less (an opt-out applied), then one more (a condition
     * that touches one person), each with a fresh value of its own */
    make(&after, 1000, 300, 1150, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &after, NOW), 0);
    cr_assert_eq(after.c.pinned, 1);
    cr_assert_eq(after.c.value, 300, "answered with the earlier cell's value");
    make(&after, 1000, 301, UINT32_MAX, 305);
    cr_assert_eq(admit1(l, ACCOUNT, &after, NOW), 0);
    cr_assert_eq(after.c.value, 300);
    cr_assert_eq(after.c.released, 1);
    cr_assert_eq(after.c.reason, 3);
    cc_ledger_close(l);
}

Test(ledger_cells, differences_of_the_threshold_and_more_are_answered_afresh)
{
    cc_ledger *l = open_ledger();
    struct cell a, b;
    make(&a, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &a, NOW), 0);
    /* ledger_min_difference (8) persons more: the sizes tell them apart */
    make(&b, 1000, 300 + policy.ledger_min_difference, UINT32_MAX, 310);
    cr_assert_eq(admit1(l, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.pinned, 0);
    cr_assert_eq(b.c.value, 310);
    /* 7 more: near */
    make(&b, 1000, 300 + policy.ledger_min_difference - 1, UINT32_MAX, 305);
    cr_assert_eq(admit1(l, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.pinned, 1);
    /* the same size, other persons: not near */
    make(&b, 50000, 300, UINT32_MAX, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.pinned, 0);
    cr_assert_eq(b.c.value, 295);
    cc_ledger_close(l);
}

Test(ledger_cells, accounts_are_separate)
{
    cc_ledger *l = open_ledger();
    struct cell a, b;
    make(&a, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &a, NOW), 0);
    make(&b, 1000, 300, 1001, 295);
    cr_assert_eq(admit1(l, ACCOUNT + 1, &b, NOW), 0);
    cr_assert_eq(b.c.pinned, 0);
    cr_assert_eq(b.c.value, 295);
    cc_ledger_close(l);
}

Test(ledger_cells, cells_survive_reopen_and_are_seen_by_a_second_ledger)
{
    cc_ledger *l = open_ledger();
    cc_ledger *other = open_ledger();
    struct cell a, b;
    make(&a, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &a, NOW), 0);
    /* a replica on the same data directory */
    make(&b, 1000, 300, 1001, 295);
    cr_assert_eq(admit1(other, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.value, 300, "the other ledger read the cell back");
    cc_ledger_close(other);
    cc_ledger_close(l);
    l = open_ledger();
    cr_assert_eq(cc_ledger_n_cells(l, ACCOUNT), 2, "both cells were committed");
    make(&b, 1000, 300, 1002, 290);
    cr_assert_eq(admit1(l, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.value, 300);
    cc_ledger_close(l);
}

Test(ledger_cells, cells_are_forgotten_after_ledger_cell_days)
{
    cc_ledger *l = open_ledger();
    struct cell a, b;
    make(&a, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &a, NOW), 0);
    int64_t later = NOW + (int64_t)policy.ledger_cell_days * 86400;
    make(&b, 1000, 300, 1001, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &b, later - 1), 0);
    cr_assert_eq(b.c.value, 300, "within the window");
    make(&b, 1000, 300, 1002, 290);
    cr_assert_eq(admit1(l, ACCOUNT, &b, later + (int64_t)policy.ledger_cell_days * 86400 + 1), 0);
    cr_assert_eq(b.c.pinned, 0, "after the window: the cells of both days have expired");
    cr_assert_eq(b.c.value, 290);
    cc_ledger_close(l);
}

Test(ledger_cells, an_account_holds_at_most_ledger_cells)
{
    policy.ledger_cells = 3;
    cc_ledger *l = open_ledger();
    struct cell c;
    for (uint32_t i = 0; i < 3; i++) {
        make(&c, 1000 + 10000 * i, 300, UINT32_MAX, 300);
        cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), 0);
    }
    make(&c, 90000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), CC_EREFUSED);
    cr_assert_eq(cc_ledger_n_cells(l, ACCOUNT), 3, "the refused cell was not remembered");
    /* a cell near one remembered would be remembered too (with the
     * earlier value): refused; the same cell again adds nothing */
    make(&c, 1000, 300, 1001, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), CC_EREFUSED);
    make(&c, 1000, 300, UINT32_MAX, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), 0);
    cr_assert_eq(c.c.value, 300);
    cr_assert_eq(cc_ledger_n_cells(l, ACCOUNT), 3);
    cc_ledger_close(l);
}

Test(ledger_cells, large_and_empty_cells_are_not_looked_at)
{
    cc_ledger *l = open_ledger();
    struct cell c;
    make(&c, 1000, policy.ledger_cell_max + 1, UINT32_MAX, 1000);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), 0);
    make(&c, 1000, policy.ledger_cell_max + 1, 1001, 995);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), 0);
    cr_assert_eq(c.c.pinned, 0);
    cr_assert_eq(c.c.value, 995);
    make(&c, 1000, 0, UINT32_MAX, 0);
    cr_assert_eq(admit1(l, ACCOUNT, &c, NOW), 0);
    cr_assert_eq(cc_ledger_n_cells(l, ACCOUNT), 0);
    cc_ledger_close(l);
}

Test(ledger_cells, near_cells_of_one_release_agree)
{
    cc_ledger *l = open_ledger();
    struct cell cells[3];
    make(&cells[0], 1000, 300, UINT32_MAX, 300);
    make(&cells[1], 1000, 300, 1001, 295); /* near the first */
    make(&cells[2], 70000, 300, UINT32_MAX, 305);
    struct cc_ledger_cell c[3] = {cells[0].c, cells[1].c, cells[2].c};
    char err[256];
    cr_assert_eq(cc_ledger_admit_cells(l, ACCOUNT, &policy, c, 3, NOW, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(c[0].value, 300);
    cr_assert_eq(c[1].value, 300);
    cr_assert_eq(c[1].pinned, 1);
    cr_assert_eq(c[2].value, 305);
    cr_assert_eq(c[2].pinned, 0);
    cc_ledger_close(l);
}

Test(ledger_cells, off_when_ledger_cell_max_is_0)
{
    policy.ledger_cell_max = 0;
    cc_ledger *l = open_ledger();
    struct cell a, b;
    make(&a, 1000, 300, UINT32_MAX, 300);
    cr_assert_eq(admit1(l, ACCOUNT, &a, NOW), 0);
    make(&b, 1000, 300, 1001, 295);
    cr_assert_eq(admit1(l, ACCOUNT, &b, NOW), 0);
    cr_assert_eq(b.c.value, 295);
    cr_assert_eq(cc_ledger_n_cells(l, ACCOUNT), 0);
    cc_ledger_close(l);
}
