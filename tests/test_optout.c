/* Tests for core/cc_optout.c: the status rule, history, idempotent replay,
 * withdrawals, the in-force sets, batches, and that a committed event
 * survives a process killed without closing the database. */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <sqlite3.h>
#include <unistd.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_optout.h"
#include "cc_testfs.h"
#include "cc_testtool.h"

struct fixture {
    char dir[64];
    sqlite3 *db;
    cc_optout *register_;
};

static void open_register(struct fixture *f)
{
    char err[256] = "";
    cr_assert_eq(cc_db_open(f->dir, CC_DB_CREATE, &f->db, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_optout_attach(f->db, &f->register_), 0);
}

static void close_register(struct fixture *f)
{
    cc_optout_detach(f->register_);
    f->register_ = NULL;
    cr_assert_eq(cc_db_close(f->db), 0);
    f->db = NULL;
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    cc_testfs_make_dir(f->dir, sizeof f->dir, "optout");
    open_register(f);
}

static void teardown(struct fixture *f)
{
    if (f->db)
        close_register(f);
    cc_testfs_remove_tree(f->dir);
}

/* A pseudonym whose bytes all come from n, so that person(1) < person(2) in
 * memcmp order. */
static cc_pseudonym person(unsigned n)
{
    cc_pseudonym p;
    memset(p.bytes, 0, sizeof p.bytes);
    p.bytes[0] = (uint8_t)(n >> 8);
    p.bytes[1] = (uint8_t)n;
    p.bytes[15] = 0xa5;
    return p;
}

static cc_day day(int y, int m, int d)
{
    cc_day result = cc_day_from_ymd(y, m, d);
    cr_assert_geq(result, 0);
    return result;
}

static struct cc_optout_event event(cc_pseudonym who, unsigned type, unsigned action, cc_day on,
                                    unsigned source)
{
    struct cc_optout_event e;
    memset(&e, 0, sizeof e);
    e.person = who;
    e.type = (uint8_t)type;
    e.action = (uint8_t)action;
    e.effective_day = on;
    e.source = (uint8_t)source;
    e.recorded_at = 1700000000;
    snprintf(e.practice_code, sizeof e.practice_code, "A81001");
    return e;
}

static int record(struct fixture *f, cc_pseudonym who, unsigned type, unsigned action, cc_day on,
                  unsigned source)
{
    struct cc_optout_event e = event(who, type, action, on, source);
    return cc_optout_record(f->register_, &e);
}

static unsigned status(struct fixture *f, cc_pseudonym who, cc_day on)
{
    unsigned mask = 99;
    cr_assert_eq(cc_optout_status(f->register_, &who, on, &mask), 0);
    return mask;
}

#define OP CC_OPTOUT_SOURCE_OPERATOR
#define FEED CC_OPTOUT_SOURCE_FEED

Test(optout, a_registration_is_in_force_from_its_effective_day)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(1);
    cr_assert_eq(status(&f, p, day(2024, 1, 1)), 0, "nobody is opted out by default");
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 3, 1), OP),
                 CC_OPTOUT_ADDED);
    cr_assert_eq(status(&f, p, day(2024, 2, 29)), 0);
    cr_assert_eq(status(&f, p, day(2024, 3, 1)), CC_OPTOUT_MASK_TYPE1);
    cr_assert_eq(status(&f, p, day(2030, 1, 1)), CC_OPTOUT_MASK_TYPE1);
    cr_assert_eq(status(&f, person(2), day(2030, 1, 1)), 0, "only that person");
    teardown(&f);
}

Test(optout, a_withdrawal_brings_the_status_back_to_none)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2023, 5, 1), OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 5, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2023, 12, 31)), CC_OPTOUT_MASK_NDOP);
    cr_assert_eq(status(&f, p, day(2024, 5, 1)), 0);
    /* and registering again puts it back in force */
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 9, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2024, 8, 31)), 0);
    cr_assert_eq(status(&f, p, day(2024, 9, 1)), CC_OPTOUT_MASK_NDOP);
    teardown(&f);
}

Test(optout, a_future_effective_date_is_not_yet_in_force)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(7);
    cc_day today = cc_day_today();
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, today + 10, OP), 1);
    cr_assert_eq(status(&f, p, today), 0);
    cr_assert_eq(status(&f, p, today + 9), 0);
    cr_assert_eq(status(&f, p, today + 10), CC_OPTOUT_MASK_NDOP);
    cc_pseudonym *set = NULL;
    size_t n = 99;
    cr_assert_eq(cc_optout_persons_in_force(f.register_, today, CC_OPTOUT_MASK_ANY, &set, &n,
                                            NULL),
                 0);
    cr_assert_eq(n, 0);
    cr_assert_null(set);
    teardown(&f);
}

Test(optout, history_lists_every_event_in_effective_date_order)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(3);
    /* recorded out of date order */
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2022, 6, 1), OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2020, 1, 15), FEED), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2021, 2, 1), OP), 1);
    cr_assert_eq(record(&f, person(4), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2021, 1, 1), OP),
                 1);
    struct cc_optout_event *events = NULL;
    size_t n = 0;
    cr_assert_eq(cc_optout_history(f.register_, &p, &events, &n), 0);
    cr_assert_eq(n, 3, "only this person's events");
    cr_assert_eq(events[0].effective_day, day(2020, 1, 15));
    cr_assert_eq(events[0].type, CC_OPTOUT_TYPE1);
    cr_assert_eq(events[0].action, CC_OPTOUT_REGISTER);
    cr_assert_eq(events[0].source, FEED);
    cr_assert_str_eq(events[0].practice_code, "A81001");
    cr_assert_eq(events[0].recorded_at, 1700000000);
    cr_assert_eq(events[1].effective_day, day(2021, 2, 1));
    cr_assert_eq(events[1].action, CC_OPTOUT_WITHDRAW);
    cr_assert_eq(events[2].effective_day, day(2022, 6, 1));
    cr_assert_eq(events[2].type, CC_OPTOUT_NDOP);
    cr_assert_lt(events[2].sequence, events[0].sequence, "the sequence is the recording order");
    free(events);

    cc_pseudonym nobody = person(99);
    cr_assert_eq(cc_optout_history(f.register_, &nobody, &events, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_null(events);
    teardown(&f);
}

Test(optout, a_practice_code_is_optional)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(3);
    struct cc_optout_event e = event(p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2022, 6, 1), FEED);
    e.practice_code[0] = '\0';
    cr_assert_eq(cc_optout_record(f.register_, &e), 1);
    struct cc_optout_event *events = NULL;
    size_t n = 0;
    cr_assert_eq(cc_optout_history(f.register_, &p, &events, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(events[0].practice_code, "");
    free(events);
    teardown(&f);
}

Test(optout, replaying_an_event_adds_nothing)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(5);
    uint64_t before = 0, after = 0;
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), FEED), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2024, 2, 1), FEED), 1);
    cr_assert_eq(cc_optout_last_sequence(f.register_, &before), 0);
    /* the whole feed again, and once more from an operator with another practice */
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), FEED),
                 CC_OPTOUT_ALREADY_RECORDED);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2024, 2, 1), FEED),
                 CC_OPTOUT_ALREADY_RECORDED);
    struct cc_optout_event e = event(p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2024, 2, 1), OP);
    snprintf(e.practice_code, sizeof e.practice_code, "B82002");
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_OPTOUT_ALREADY_RECORDED,
                 "a replayed withdrawal is not refused, it is already there");
    cr_assert_eq(cc_optout_last_sequence(f.register_, &after), 0);
    cr_assert_eq(after, before);
    struct cc_optout_event *events = NULL;
    size_t n = 0;
    cr_assert_eq(cc_optout_history(f.register_, &p, &events, &n), 0);
    cr_assert_eq(n, 2);
    free(events);
    teardown(&f);
}

Test(optout, registering_twice_is_harmless)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(5);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 3, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2024, 2, 1)), CC_OPTOUT_MASK_NDOP);
    cr_assert_eq(status(&f, p, day(2024, 4, 1)), CC_OPTOUT_MASK_NDOP);
    /* one withdrawal ends it, whichever registration came first */
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 5, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2024, 5, 1)), 0);
    teardown(&f);
}

Test(optout, type1_and_ndop_are_independent)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(6);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2020, 1, 1), OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2021, 1, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2020, 6, 1)), CC_OPTOUT_MASK_TYPE1);
    cr_assert_eq(status(&f, p, day(2021, 6, 1)), CC_OPTOUT_MASK_ANY);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2022, 1, 1), OP), 1);
    cr_assert_eq(status(&f, p, day(2022, 6, 1)), CC_OPTOUT_MASK_NDOP,
                 "withdrawing type 1 leaves the national opt-out in force");
    /* a withdrawal of a type that is not in force is refused, even with the other in force */
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2023, 1, 1), OP),
                 CC_EINVAL);
    teardown(&f);
}

Test(optout, an_operator_withdrawal_with_nothing_in_force_is_refused)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(8);
    uint64_t sequence = 99;
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 1, 1), OP), CC_EINVAL);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 1, 1),
                        CC_OPTOUT_SOURCE_GP_REGISTRATION),
                 CC_EINVAL);
    /* a registration that only starts later is not in force on the withdrawal's day */
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 6, 1), OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 5, 31), OP),
                 CC_EINVAL);
    cr_assert_eq(cc_optout_last_sequence(f.register_, &sequence), 0);
    cr_assert_eq(sequence, 1, "the refused withdrawals left no trace");
    cr_assert(sqlite3_get_autocommit(f.db), "no transaction is left open after a refusal");
    teardown(&f);
}

Test(optout, a_feed_withdrawal_with_nothing_in_force_is_kept_and_ends_a_later_arrival)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(9);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_WITHDRAW, day(2024, 4, 1), FEED),
                 CC_OPTOUT_ADDED_UNMATCHED);
    cr_assert_eq(status(&f, p, day(2024, 4, 1)), 0);
    /* the registration it ended arrives in a later feed */
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), FEED),
                 CC_OPTOUT_ADDED);
    cr_assert_eq(status(&f, p, day(2024, 2, 1)), CC_OPTOUT_MASK_NDOP);
    cr_assert_eq(status(&f, p, day(2024, 4, 1)), 0);
    teardown(&f);
}

Test(optout, same_day_events_are_decided_by_recording_order)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(10);
    cc_day d = day(2024, 7, 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, d, OP), 1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, d, OP), 1);
    cr_assert_eq(status(&f, p, d), 0, "the withdrawal was recorded later");
    teardown(&f);
}

Test(optout, invalid_events_are_refused)
{
    struct fixture f;
    setup(&f);
    struct cc_optout_event e = event(person(1), 3, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP);
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "unknown type");
    e = event(person(1), CC_OPTOUT_TYPE1, 0, day(2024, 1, 1), OP);
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "unknown action");
    e = event(person(1), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), 9);
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "unknown source");
    e = event(person(1), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, -1, OP);
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "day out of range");
    e = event(person(1), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP);
    snprintf(e.practice_code, sizeof e.practice_code, "A81 '1");
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "practice code characters");
    memset(e.practice_code, 'A', sizeof e.practice_code);
    cr_assert_eq(cc_optout_record(f.register_, &e), CC_EINVAL, "unterminated practice code");
    cr_assert_eq(status(&f, person(1), day(2025, 1, 1)), 0);
    teardown(&f);
}

Test(optout, the_in_force_sets_on_a_day_are_sorted_and_exact)
{
    struct fixture f;
    setup(&f);
    cc_day on = day(2024, 6, 1);
    /* recorded in a scrambled order of persons */
    cr_assert_eq(record(&f, person(30), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(10), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(20), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2023, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(20), CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2024, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(40), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 7, 1), OP), 1);
    cr_assert_eq(record(&f, person(50), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2020, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(50), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2020, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(60), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2020, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(60), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2021, 1, 1), OP), 1);
    cr_assert_eq(record(&f, person(60), CC_OPTOUT_TYPE1, CC_OPTOUT_WITHDRAW, day(2022, 1, 1), OP), 1);

    cc_pseudonym *set = NULL;
    size_t n = 0;
    uint64_t as_of = 0;
    cr_assert_eq(cc_optout_persons_in_force(f.register_, on, CC_OPTOUT_MASK_ANY, &set, &n, &as_of),
                 0);
    /* 10 (type 1), 30 (ndop), 50 (both), 60 (ndop); not 20 (withdrawn), not 40 (future) */
    cr_assert_eq(n, 4);
    cc_pseudonym expected_any[] = {person(10), person(30), person(50), person(60)};
    for (size_t i = 0; i < 4; i++)
        cr_assert_arr_eq(set[i].bytes, expected_any[i].bytes, CC_PSEUDONYM_BYTES, "index %zu", i);
    cr_assert_eq(as_of, 10);
    free(set);

    cr_assert_eq(cc_optout_persons_in_force(f.register_, on, CC_OPTOUT_MASK_TYPE1, &set, &n, NULL),
                 0);
    cr_assert_eq(n, 2);
    cc_pseudonym expected_type1[] = {person(10), person(50)};
    for (size_t i = 0; i < 2; i++)
        cr_assert_arr_eq(set[i].bytes, expected_type1[i].bytes, CC_PSEUDONYM_BYTES, "index %zu", i);
    free(set);

    cr_assert_eq(cc_optout_persons_in_force(f.register_, on, 0, &set, &n, NULL), CC_EINVAL);
    teardown(&f);
}

Test(optout, the_in_force_set_agrees_with_status_for_many_persons)
{
    struct fixture f;
    setup(&f);
    /* a pseudo-random history for 300 persons, as one batch */
    unsigned seed = 12345;
    cr_assert_eq(cc_db_begin(f.db), 0);
    for (unsigned i = 0; i < 1500; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned who = (seed >> 8) % 300;
        unsigned type = 1 + ((seed >> 4) & 1);
        unsigned action = 1 + ((seed >> 5) & 1);
        cc_day d = day(2020, 1, 1) + (cc_day)((seed >> 12) % 1500);
        int rc = record(&f, person(who), type, action, d, FEED);
        cr_assert_geq(rc, 0);
    }
    cr_assert_eq(cc_db_commit(f.db), 0);
    cc_day on = day(2021, 12, 1);
    cc_pseudonym *set = NULL;
    size_t n = 0, next = 0;
    cr_assert_eq(cc_optout_persons_in_force(f.register_, on, CC_OPTOUT_MASK_ANY, &set, &n, NULL),
                 0);
    cr_assert_gt(n, 0);
    for (unsigned who = 0; who < 300; who++) {
        cc_pseudonym p = person(who);
        int in_set = next < n && memcmp(set[next].bytes, p.bytes, CC_PSEUDONYM_BYTES) == 0;
        if (in_set)
            next++;
        cr_assert_eq(in_set, status(&f, p, on) != 0, "person %u", who);
    }
    cr_assert_eq(next, n, "the set holds nobody else");
    free(set);
    teardown(&f);
}

Test(optout, last_sequence_increases_with_each_event)
{
    struct fixture f;
    setup(&f);
    uint64_t sequence = 99;
    cr_assert_eq(cc_optout_last_sequence(f.register_, &sequence), 0);
    cr_assert_eq(sequence, 0, "an empty register");
    for (unsigned i = 1; i <= 3; i++) {
        uint64_t previous = sequence;
        cr_assert_eq(record(&f, person(i), CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP),
                     1);
        cr_assert_eq(cc_optout_last_sequence(f.register_, &sequence), 0);
        cr_assert_gt(sequence, previous);
    }
    teardown(&f);
}

Test(optout, a_batch_is_all_or_nothing)
{
    struct fixture f;
    setup(&f);
    cr_assert_eq(cc_db_begin(f.db), 0);
    for (unsigned i = 1; i <= 3; i++)
        cr_assert_eq(record(&f, person(i), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1),
                            FEED),
                     1);
    cr_assert_not(sqlite3_get_autocommit(f.db), "record must not commit the caller's batch");
    cr_assert_eq(cc_db_rollback(f.db), 0);
    for (unsigned i = 1; i <= 3; i++)
        cr_assert_eq(status(&f, person(i), day(2024, 2, 1)), 0);

    cr_assert_eq(cc_db_begin(f.db), 0);
    for (unsigned i = 1; i <= 3; i++)
        cr_assert_eq(record(&f, person(i), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1),
                            FEED),
                     1);
    cr_assert_eq(cc_db_commit(f.db), 0);
    for (unsigned i = 1; i <= 3; i++)
        cr_assert_eq(status(&f, person(i), day(2024, 2, 1)), CC_OPTOUT_MASK_NDOP);
    teardown(&f);
}

Test(optout, the_history_cannot_be_updated_or_deleted)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    cr_assert_neq(sqlite3_exec(f.db, "UPDATE optout_event SET action = 2", NULL, NULL, NULL),
                  SQLITE_OK);
    cr_assert_neq(sqlite3_exec(f.db, "DELETE FROM optout_event", NULL, NULL, NULL), SQLITE_OK);
    cr_assert_eq(status(&f, p, day(2024, 2, 1)), CC_OPTOUT_MASK_NDOP);
    teardown(&f);
}

Test(optout, events_survive_closing_and_reopening)
{
    struct fixture f;
    setup(&f);
    cc_pseudonym p = person(1);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    close_register(&f);
    open_register(&f);
    cr_assert_eq(status(&f, p, day(2024, 2, 1)), CC_OPTOUT_MASK_TYPE1);
    teardown(&f);
}

/* Runs in a forked child: records one event (in its own transaction, or in a
 * batch left uncommitted) and kills itself without closing anything. */
static void record_then_die(const char *dir, int commit)
{
    sqlite3 *db = NULL;
    cc_optout *register_ = NULL;
    if (cc_db_open(dir, 0, &db, NULL, 0) != 0 || cc_optout_attach(db, &register_) != 0)
        _exit(3);
    struct cc_optout_event e =
        event(person(42), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP);
    if (!commit && cc_db_begin(db) != 0)
        _exit(4);
    if (cc_optout_record(register_, &e) != CC_OPTOUT_ADDED)
        _exit(5);
    kill(getpid(), SIGKILL);
    _exit(6); /* not reached */
}

static void run_child_and_expect_sigkill(const char *dir, int commit)
{
    pid_t child = fork();
    cr_assert_geq(child, 0);
    if (child == 0)
        record_then_die(dir, commit);
    int wstatus = 0;
    cr_assert_eq(waitpid(child, &wstatus, 0), child);
    cr_assert(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL,
              "the child must die by SIGKILL (exit status %d)",
              WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
}

Test(optout, a_committed_event_survives_a_killed_process)
{
    struct fixture f;
    setup(&f);
    close_register(&f); /* the child is the only process with the database open */
    run_child_and_expect_sigkill(f.dir, 1);
    open_register(&f);
    cr_assert_eq(status(&f, person(42), day(2024, 2, 1)), CC_OPTOUT_MASK_NDOP);
    struct cc_optout_event *events = NULL;
    size_t n = 0;
    cc_pseudonym p = person(42);
    cr_assert_eq(cc_optout_history(f.register_, &p, &events, &n), 0);
    cr_assert_eq(n, 1);
    free(events);
    teardown(&f);
}

Test(optout, an_uncommitted_batch_of_a_killed_process_leaves_nothing)
{
    struct fixture f;
    setup(&f);
    close_register(&f);
    run_child_and_expect_sigkill(f.dir, 0);
    open_register(&f);
    cr_assert_eq(status(&f, person(42), day(2024, 2, 1)), 0);
    uint64_t sequence = 99;
    cr_assert_eq(cc_optout_last_sequence(f.register_, &sequence), 0);
    cr_assert_eq(sequence, 0);
    teardown(&f);
}

/* Runs in a forked child: records operator events one after another, each
 * its own transaction, and after each commit writes its index to the pipe;
 * it runs until it is killed. */
static void record_forever(const char *dir, uint32_t first_person, int write_fd)
{
    sqlite3 *db = NULL;
    cc_optout *register_ = NULL;
    if (cc_db_open(dir, 0, &db, NULL, 0) != 0 || cc_optout_attach(db, &register_) != 0)
        _exit(3);
    for (uint32_t i = 0;; i++) {
        struct cc_optout_event e =
            event(person(first_person + i), CC_OPTOUT_NDOP, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP);
        if (cc_optout_record(register_, &e) != CC_OPTOUT_ADDED)
            _exit(4);
        if (write(write_fd, &i, sizeof i) != (ssize_t)sizeof i)
            _exit(5);
    }
}

Test(optout, every_acknowledged_event_survives_a_kill_at_any_point)
{
    struct fixture f;
    setup(&f);
    close_register(&f);
    /* kill the writer after a different number of acknowledged commits each
     * round; whatever it was doing then, nothing acknowledged may be lost */
    static const uint32_t kill_after[] = {1, 7, 30, 55};
    uint32_t n_total_acknowledged = 0;
    for (size_t round = 0; round < sizeof kill_after / sizeof kill_after[0]; round++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t child = fork();
        cr_assert_geq(child, 0);
        if (child == 0) {
            close(fds[0]);
            record_forever(f.dir, (uint32_t)round * 1000, fds[1]);
        }
        close(fds[1]);
        uint32_t acknowledged = 0, index = 0;
        while (acknowledged < kill_after[round] &&
               read(fds[0], &index, sizeof index) == (ssize_t)sizeof index)
            acknowledged = index + 1;
        cr_assert_eq(acknowledged, kill_after[round], "the writer stopped early");
        kill(child, SIGKILL);
        int wstatus = 0;
        cr_assert_eq(waitpid(child, &wstatus, 0), child);
        cr_assert(WIFSIGNALED(wstatus), "the writer must have been killed, not have failed");
        close(fds[0]);

        open_register(&f);
        for (uint32_t i = 0; i < acknowledged; i++)
            cr_assert_eq(status(&f, person((uint32_t)round * 1000 + i), day(2024, 2, 1)),
                         CC_OPTOUT_MASK_NDOP,
                         "round %zu: acknowledged event %u lost", round, i);
        uint64_t last = 0;
        cr_assert_eq(cc_optout_last_sequence(f.register_, &last), 0);
        cr_assert_geq(last, n_total_acknowledged + acknowledged);
        n_total_acknowledged = (uint32_t)last;
        close_register(&f);
    }
    open_register(&f);
    teardown(&f);
}

Test(optout, a_committed_event_is_visible_at_once_to_another_connection)
{
    struct fixture f;
    setup(&f);
    sqlite3 *reader_db = NULL;
    cc_optout *reader = NULL;
    cr_assert_eq(cc_db_open(f.dir, 0, &reader_db, NULL, 0), 0);
    cr_assert_eq(cc_optout_attach(reader_db, &reader), 0);
    cc_pseudonym p = person(1);
    unsigned mask = 99;
    cr_assert_eq(cc_optout_status(reader, &p, day(2024, 2, 1), &mask), 0);
    cr_assert_eq(mask, 0);
    cr_assert_eq(record(&f, p, CC_OPTOUT_TYPE1, CC_OPTOUT_REGISTER, day(2024, 1, 1), OP), 1);
    cr_assert_eq(cc_optout_status(reader, &p, day(2024, 2, 1), &mask), 0);
    cr_assert_eq(mask, CC_OPTOUT_MASK_TYPE1, "the practice sees the change without a restart");
    cc_optout_detach(reader);
    cr_assert_eq(cc_db_close(reader_db), 0);
    teardown(&f);
}

/* ---- the command line: `carecount optout` ---- */

#define NHS_NUMBER "9434765919" /* a valid Modulus 11 number of the test range */

struct tool_dir {
    char path[64];
    char args[256]; /* --data ... --key ... */
};

static void tool_setup(struct tool_dir *t)
{
    char command[256], output[4096];
    cc_testfs_make_dir(t->path, sizeof t->path, "optout_tool");
    snprintf(t->args, sizeof t->args, "--data %s/data --key %s/key", t->path, t->path);
    snprintf(command, sizeof command, "keygen %s/key", t->path);
    cr_assert_eq(cc_testtool_run(command, NULL, output, sizeof output), 0, "keygen failed: %s", output);
}

/* Runs `carecount optout ARGS` (stdin_text, if not NULL, on its standard
 * input), collects stdout and stderr into output; returns the exit status. */
static int run_tool(const struct tool_dir *t, const char *args, const char *stdin_text,
                    char *output, size_t output_len)
{
    char command[1024], input[1024];
    snprintf(command, sizeof command, "optout %s %s", args, t->args);
    if (stdin_text)
        snprintf(input, sizeof input, "%s\n", stdin_text);
    return cc_testtool_run(command, stdin_text ? input : NULL, output, output_len);
}

static void tool_teardown(struct tool_dir *t)
{
    cc_testfs_remove_tree(t->path);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    size_t len = strlen(needle);
    for (size_t i = 0; i + len <= n; i++)
        if (!memcmp(buf + i, needle, len))
            return 1;
    return 0;
}

Test(optout_tool, records_and_confirms_without_ever_printing_the_number)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096];
    cr_assert_eq(run_tool(&t, "register --nhs-number '943 476 5919' --type ndop --date 2024-01-10"
                              " --practice B86001",
                          NULL, out, sizeof out),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "recorded: the patient's national data opt-out"), "%s", out);
    cr_assert_null(strstr(out, "5919"), "the number must not be echoed: %s", out);

    cr_assert_eq(run_tool(&t, "register --nhs-number " NHS_NUMBER " --type ndop --date 2024-01-10",
                          NULL, out, sizeof out),
                 0, "%s", out);
    cr_assert_not_null(strstr(out, "already recorded"), "%s", out);

    cr_assert_eq(run_tool(&t, "status --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "in force"), "%s", out);
    cr_assert_not_null(strstr(out, "national data opt-out"), "%s", out);
    cr_assert_null(strstr(out, "type 1"), "%s", out);
    cr_assert_eq(run_tool(&t, "status --date 2024-01-09 --nhs-number " NHS_NUMBER, NULL, out,
                          sizeof out),
                 0);
    cr_assert_not_null(strstr(out, "no opt-out in force on 2024-01-09"), "%s", out);

    cr_assert_eq(run_tool(&t, "history --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "2024-01-10  national data opt-out  registered"), "%s", out);
    cr_assert_null(strstr(out, "5919"), "%s", out);
    tool_teardown(&t);
}

Test(optout_tool, the_number_is_stored_nowhere_in_the_data_directory)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096], path[128];
    cr_assert_eq(run_tool(&t, "register --nhs-number " NHS_NUMBER " --type type1", NULL, out,
                          sizeof out),
                 0, "%s", out);
    static const char *const files[] = {"state.db", "state.db-wal", "state.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/data/%s", t.path, files[i]);
        cr_assert_not(file_contains(path, NHS_NUMBER), "%s holds the NHS number", files[i]);
    }
    tool_teardown(&t);
}

Test(optout_tool, reads_the_number_from_standard_input)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096];
    cr_assert_eq(run_tool(&t, "register --nhs-number - --type type1 --date 2020-02-02",
                          "943 476 5919", out, sizeof out),
                 0, "%s", out);
    cr_assert_eq(run_tool(&t, "status --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "type 1 opt-out"), "%s", out);
    tool_teardown(&t);
}

Test(optout_tool, refuses_an_invalid_number_without_echoing_it)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096];
    cr_assert_eq(run_tool(&t, "register --nhs-number 9434765918 --type type1", NULL, out,
                          sizeof out),
                 1);
    cr_assert_not_null(strstr(out, "not valid"), "%s", out);
    cr_assert_null(strstr(out, "9434765918"), "%s", out);
    tool_teardown(&t);
}

Test(optout_tool, refuses_a_withdrawal_with_nothing_in_force)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096];
    cr_assert_eq(run_tool(&t, "withdraw --nhs-number " NHS_NUMBER " --type ndop", NULL, out,
                          sizeof out),
                 1);
    cr_assert_not_null(strstr(out, "refused"), "%s", out);
    cr_assert_eq(run_tool(&t, "history --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "no opt-out has been recorded"), "%s", out);
    tool_teardown(&t);
}

Test(optout_tool, usage_errors_exit_with_status_2)
{
    struct tool_dir t;
    tool_setup(&t);
    char out[4096];
    cr_assert_eq(run_tool(&t, "frobnicate --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 2);
    cr_assert_eq(run_tool(&t, "register --nhs-number " NHS_NUMBER, NULL, out, sizeof out), 2,
                 "register needs --type: %s", out);
    cr_assert_eq(run_tool(&t, "register --nhs-number " NHS_NUMBER " --type ndop --date 2024-02-30",
                          NULL, out, sizeof out),
                 2);
    cr_assert_eq(run_tool(&t, "status --bogus=" NHS_NUMBER " --nhs-number " NHS_NUMBER, NULL, out,
                          sizeof out),
                 2);
    cr_assert_null(strstr(out, NHS_NUMBER), "an unknown option's value is not echoed: %s", out);
    tool_teardown(&t);
}
