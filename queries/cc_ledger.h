/*
 * cc_ledger.h: the disclosure ledger (docs/privacy.md, "Disclosure
 * ledger"): per account, the cohorts of the queries it was answered,
 * remembered on disk, so that a pair of queries whose cohorts differ by a
 * few persons (a differencing pair) cannot both be answered, in one
 * session or across sessions and restarts.
 *
 * A cohort is remembered as the set of its persons' record keys (a CRoaring
 * bitmap): a person's record key is derived from their pseudonym, so it is
 * the same in every store version and every opt-out publication, where a
 * person index need not be. Entries live in the data directory's state.db
 * (tables ledger_*), written through a connection of the ledger's own, and
 * an entry is committed (WAL fsync'ed) before the release it admits is
 * returned: a crash cannot lose an entry whose answer left the server.
 *
 * Thread-safe: one mutex serialises look-up and record per ledger, so two
 * queries of one account on two threads cannot both pass the look-up
 * before either is recorded. Process-safe too: several ledgers opened on
 * one data directory (replicas serving it, docs/scale.md) share it, as
 * each admit reads the entries the others committed and decides inside one
 * write transaction of state.db (BEGIN IMMEDIATE).
 *
 * Must never: return, log or put in an error message a cohort, a record
 * key or a count of persons; refusals name the rule only.
 */
#ifndef CC_LEDGER_H
#define CC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_policy.h"

typedef struct cc_ledger cc_ledger;

/* Opens (creating if needed) the ledger of the data directory dir, and
 * loads every entry into memory. Returns 0, or CC_EIO / CC_ECORRUPT /
 * CC_EDB / CC_ENOMEM with "file: reason" in errbuf. Close with
 * cc_ledger_close(). */
int cc_ledger_open(const char *dir, cc_ledger **out, char *errbuf, size_t errlen);

/* Closes a ledger (NULL is allowed). No call may be running on it. */
void cc_ledger_close(cc_ledger *ledger);

/*
 * Decides whether account may be answered a query whose cohort is the
 * persons with record keys keys[0..n_keys) (any order, repeats allowed),
 * and if so records it, under policy's ledger_* rules; fingerprint names
 * the query (equal fingerprints: the same restrictions and table). now_s is
 * the time in seconds (the budget's window). In order:
 *  - an earlier entry of the account whose cohort differs from this one by
 *    fewer than ledger_min_difference persons (symmetric difference; 0
 *    included) refuses the query, unless the cohorts are equal and so are
 *    the fingerprints (the same query asked again: answered, not recorded
 *    again);
 *  - otherwise, if some earlier entry differs by fewer than
 *    ledger_near_difference persons, the query is a near difference: one
 *    of at most ledger_budget per ledger_window_days, refused beyond;
 *  - the entry is committed to disk before 0 is returned.
 * The look-up sees every entry committed by any process on this data
 * directory: it runs under state.db's write lock, after reading the
 * entries committed since the last admit.
 * Returns 0, CC_EREFUSED ("ledger: why" in errbuf, no count), CC_ENOMEM,
 * or CC_EIO / CC_EBUSY / CC_EDB when the entry could not be committed (the
 * query must then not be answered).
 */
int cc_ledger_admit(cc_ledger *ledger, int64_t account, const struct cc_policy *policy,
                    uint64_t fingerprint, const uint32_t *keys, uint64_t n_keys, int64_t now_s,
                    char *errbuf, size_t errlen);

/* The mix of one record key whose sum over a cohort's keys (any order,
 * repeats counted) is the cohort's keys hash: what cc_ledger_knows() is
 * given, so that a caller can hash a cohort without listing its keys. */
static inline uint64_t cc_ledger_key_mix(uint32_t k)
{
    uint64_t x = (uint64_t)k * 0x9e3779b97f4a7c15ULL + 0x6c6564676572ULL;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 29);
}

/* Whether cc_ledger_admit() would answer a cohort of n_keys keys whose
 * hash (cc_ledger_key_mix summed) is keys_hash at once, as the same query
 * of the account again (an entry of this process with the same
 * fingerprint, number of keys and hash): then it records nothing, and the
 * caller need not list the keys. false says nothing: admit decides. */
bool cc_ledger_knows(cc_ledger *ledger, int64_t account, uint64_t fingerprint, uint64_t n_keys,
                     uint64_t keys_hash);

/*
 * The ledger's cells (docs/privacy.md, "Cells across releases"): the same
 * look-up for the cells of a release, so that a cell whose persons are
 * nearly those of a cell released to the account before (a differencing
 * pair of cells: the same cell before and after an opt-out is applied, or
 * with and without a condition that touches one of its persons) is
 * answered with the earlier cell's released value, however the queries
 * were worded.
 *
 * Each cell is described by its exact number of persons and a sketch of
 * them (CC_LEDGER_SKETCH_BUCKETS bucket minima of their record keys, as
 * the engine makes it: cc_exec.h, cell_sketch); cells of 0 persons or of
 * ledger_cell_max or more are not looked at. A cell is near an earlier one
 * of the account, recorded within ledger_cell_days, when their sizes
 * differ by fewer than ledger_min_difference and their sketches agree in
 * all but at most ledger_min_difference - 1 buckets (which two cells whose
 * persons differ by fewer than ledger_min_difference always do). Then its
 * value, released and reason become the earlier cell's and pinned is set;
 * otherwise it is recorded as released, and later cells of the same call
 * are looked up against it too. The cells recorded are committed before
 * 0 is returned; nothing is recorded on an error.
 * Returns 0, CC_EREFUSED when the account would hold more than
 * ledger_cells cells recorded within ledger_cell_days ("ledger: ..." in
 * errbuf), CC_ENOMEM, or CC_EIO / CC_EBUSY / CC_EDB (the release must
 * then not be given).
 */
#define CC_LEDGER_SKETCH_BUCKETS 16
#define CC_LEDGER_SIZE_CLASS 8 /* the index's width of a size class, in persons */

struct cc_ledger_cell {
    uint64_t persons;                          /* exact: compared, never shown */
    const uint32_t *sketch;                    /* [CC_LEDGER_SKETCH_BUCKETS] */
    uint64_t value;                            /* in: as protected; out: as released */
    uint8_t released, reason;                  /* likewise */
    uint8_t pinned;                            /* out: 1 if taken from an earlier cell */
};

int cc_ledger_admit_cells(cc_ledger *ledger, int64_t account, const struct cc_policy *policy,
                          struct cc_ledger_cell *cells, uint64_t n_cells, int64_t now_s,
                          char *errbuf, size_t errlen);

/* Cells recorded for account. */
uint64_t cc_ledger_n_cells(cc_ledger *ledger, int64_t account);

/* Entries recorded for account (tests, the operator's tools). */
uint64_t cc_ledger_n_entries(cc_ledger *ledger, int64_t account);

/* Bytes of memory the ledger's entries hold (for docs/benchmarks.md). */
size_t cc_ledger_memory_bytes(cc_ledger *ledger);

#endif
