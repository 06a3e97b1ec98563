/*
 * cc_exec.h: the query engine: executes a bound query over one data version
 * and produces a raw result: exact counts per cell, the cell keys for the
 * cell key method, and the cohort sizes the disclosure rules need.
 *
 * Internal to queries/ (this folder is a private include directory of
 * cc_queries, see cc_layer in CMakeLists.txt): a raw result is the input of
 * disclosure control and of nothing else. It holds exact counts, which must
 * never leave the server, so only the release layer (cc_release.c,
 * cc_release_*.c) and the comparisons it runs (cc_compare.c) call
 * cc_exec_run(). server/ and tools/ cannot include this header; what they
 * may pass to the engine, its options, is the public cc_exec_options.h. The
 * tests that check the engine against its SQLite oracle or attack it with
 * and without protection, and the benchmarks that time it, see this header
 * by name (cc_test_sees_internals() in CMakeLists.txt, with the reason);
 * tests/test_release_boundary.c checks on the built objects that no object
 * of server/ or tools/ references an entry point declared here.
 *
 * Execution (docs/engine.md): each condition becomes a bitset of the persons
 * that meet it, taken from the store's person sets of frequent codes or
 * found through its per-code posting lists (or the records of its settings
 * for conditions without codes), one calendar year run at a time; the
 * cohort is the AND of those bitsets, of the person filters and of "not
 * excluded by an opt-out"; cells are counted in the same pass over the
 * persons (persons measure) or over the qualifying records (events measure,
 * and persons counted per period or setting), split across threads. The
 * implementation is in cc_exec.c (the run, step by step), cc_exec_plan.c
 * (day tables, condition plans and their person sets, dimensions),
 * cc_exec_persons.c (the person pass: filters, cohorts, key sums),
 * cc_exec_count.c (counting), cc_exec_cache.c (what is kept per data
 * version), cc_exec_pool.c (the threads) and cc_exec_result.c (reading a
 * raw result: coordinates, margins, labels); cc_exec_internal.h is what
 * those files share.
 *
 * Must never: return a pseudonym or a person index; its output is counts.
 */
#ifndef CC_EXEC_H
#define CC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_dataversion.h"
#include "cc_exec_options.h"
#include "cc_query.h"

/* The restrictions of a query (cc_query_restrictions), at most this many. */
#define CC_EXEC_MAX_RESTRICTIONS 32

/* The most values an age band dimension has: single years 0 to 119 and
 * 120+ (CC_AGE_BANDS_1Y). */
#define CC_EXEC_MAX_AGE_BANDS 121

/* dimensions[d].total of a result without margins. */
#define CC_RAW_NO_TOTAL UINT32_MAX

/* One dimension of a result: its kind and how many values it has. */
struct cc_raw_dimension {
    uint8_t kind; /* enum cc_query_dimension_kind */
    /* The number of values, the total included when the query asks for
     * margins. */
    uint32_t n_values;
    /* Margins: the index of the value that stands for every value of the
     * dimension, always the last (n_values - 1); CC_RAW_NO_TOTAL without
     * margins. */
    uint32_t total;
    /* internal: what value 0 means (the first month, year or quarter) */
    int32_t first;
    /* age bands: the lowest age of each band */
    uint8_t age_lower[CC_EXEC_MAX_AGE_BANDS];
    /* sex: the enum cc_sex of each value (the sexes of filters.sex, or all
     * four, in code order) */
    uint8_t sex_code[4];
};

/* Buckets of a cell's sketch (cc_raw_result.cell_sketch), a power of 2,
 * and the value of an empty one. */
#define CC_EXEC_SKETCH_BITS 4
#define CC_EXEC_SKETCH_BUCKETS (1u << CC_EXEC_SKETCH_BITS)
#define CC_EXEC_SKETCH_EMPTY UINT32_MAX

/* The bucket and value of a record key in a sketch. */
#define CC_EXEC_SKETCH_BUCKET(key) ((key) & (CC_EXEC_SKETCH_BUCKETS - 1))
#define CC_EXEC_SKETCH_VALUE(key) ((key) >> CC_EXEC_SKETCH_BITS)

/*
 * The raw result. Cells are dense, in row-major order over the dimensions
 * (the last dimension varies fastest); a query without dimensions has one
 * cell.
 *
 * Margins (cc_query.margins). Every dimension d then has one more value
 * after its own, its total, at index dimensions[d].total (== n_values - 1).
 * A cell whose coordinate on d is the total counts what the cells with
 * every value of d (and the same other coordinates) count, each counted
 * thing once: for events, the sum of those cells; for persons, the distinct
 * persons among them (a person counted in several settings or periods
 * counts once in their total, so a persons margin can be less than the sum
 * of its cells). The cell whose every coordinate is a total is the grand
 * total. A person or record with no value on a dimension (no known area or
 * practice, a date outside the periods) is in no cell and in no margin, so
 * the grand total can be less than cohort_persons. A margin cell is a cell
 * like any other: it has its count and cell_key, and disclosure control
 * protects it as one. cc_raw_result_is_margin() tells margin cells apart.
 */
struct cc_raw_result {
    uint32_t n_dimensions;
    struct cc_raw_dimension dimensions[CC_QUERY_DIMENSIONS_CAP];
    uint64_t n_cells;
    uint64_t *count;    /* [n_cells] exact counts */
    uint32_t *cell_key; /* [n_cells] sum of the record keys of what was counted, mod 2^32 */

    /* The cohort (persons meeting every restriction), and the cohort with
     * each restriction removed in turn (DESIGN, Disclosure control 8): the
     * effect of restriction r is cohort_without[r] - cohort_persons. */
    uint64_t cohort_persons;
    uint32_t n_restrictions;
    struct cc_query_restriction restrictions[CC_EXEC_MAX_RESTRICTIONS];
    uint64_t cohort_without[CC_EXEC_MAX_RESTRICTIONS];
    /* The sum of the record keys of the cohort: the seed of the condition
     * noise layer (DESIGN 9) depends on the persons, not on the wording. */
    uint32_t cohort_key;
    uint32_t condition_key[CC_EXEC_MAX_RESTRICTIONS]; /* per condition: its matching persons */
    /* With options->cohort_hash only (else 0 and NULL): the sum of
     * cc_ledger_key_mix over the cohort's record keys, and the cohort as a
     * bitset over person indices ([(n_persons + 63) / 64] words, owned),
     * from which cc_raw_result_cohort_keys() lists the keys when the
     * disclosure ledger (cc_ledger.h) must remember the cohort: a person's
     * record key is the same in every store version. */
    uint64_t cohort_hash;
    uint64_t *cohort_bits;
    /* With options->cell_sketches only (else NULL): per cell, a sketch of
     * the persons counted in it, [n_cells * CC_EXEC_SKETCH_BUCKETS]: one
     * permutation hashing of their record keys (a record key's low bits
     * pick its bucket, the rest is its value; a bucket holds the least
     * value, CC_EXEC_SKETCH_EMPTY when none). Two cells whose persons
     * differ by d agree in all but at most d buckets: what the ledger's
     * cells (cc_ledger.h) compare. For events, the persons whose records
     * were counted. */
    uint32_t *cell_sketch;

    const struct cc_store_columns *columns_; /* for labels; not owned */
    /* The ONS estimates summed by district, laid out as columns_->population
     * with districts for LSOAs ([(lad * 2 + sex - 1) * CC_N_AGE_BANDS_5Y +
     * band]), kept with the data version (valid while it is); NULL when
     * the store has none (then the release layer sums the LSOAs itself). */
    const uint32_t *lad_estimates_;
    uint64_t noise_epoch;                    /* the data version's (cc_dataversion_noise_epoch) */
};

/* Executes query (validated and bound against version's store) with options
 * (cc_exec_options.h; NULL: the defaults) and fills *out, which the caller
 * frees with cc_raw_result_free(). Returns 0, or CC_ENOMEM, CC_EINVAL (a
 * query the engine cannot run; errbuf says why), CC_ETOOBIG (more cells
 * than the dimensions allow). */
int cc_exec_run(const struct cc_dataversion *version, const struct cc_query *query,
                const struct cc_exec_options *options, struct cc_raw_result *out, char *errbuf,
                size_t errlen);

/* The coordinate of cell along dimension d. */
uint32_t cc_raw_result_coordinate(const struct cc_raw_result *result, uint64_t cell, uint32_t d);

/* True if cell is a margin: one of its coordinates is a dimension's total. */
bool cc_raw_result_is_margin(const struct cc_raw_result *result, uint64_t cell);

/* The label of value v of dimension d: an area code ("E12000001"), a
 * practice code, "40-44", "37" (a band of one year), "90+", "female",
 * "hospital", "2023", "2023-Q2", "2023-05", and "total" for a dimension's
 * total. Writes a NUL-terminated string into buf. */
void cc_raw_result_label(const struct cc_raw_result *result, uint32_t d, uint32_t v, char *buf,
                         size_t len);

/* Frees the arrays of a result (the struct itself is the caller's). */
void cc_raw_result_free(struct cc_raw_result *result);

/* Lists the record keys of a result's cohort (cohort_bits, from
 * options->cohort_hash) in person order into *keys (malloc'd,
 * [cohort_persons]): what the ledger records of a cohort it has not seen.
 * 0, CC_EINVAL (no cohort_bits) or CC_ENOMEM. */
int cc_raw_result_cohort_keys(const struct cc_raw_result *result, uint32_t **keys);

/* The 5-year band (0..18) of an age in whole years. */
static inline uint32_t cc_exec_band5(int age)
{
    return age < 0 ? 0 : age >= 90 ? 18 : (uint32_t)age / 5;
}

#endif
