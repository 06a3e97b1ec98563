/*
 * cc_ledger_internal.h: the ledger's book of cells (cc_ledger_cells.c), for
 * cc_ledger.c, which owns the locking and state.db.
 *
 * A book holds, per account, every cell recorded (its exact size, its
 * sketch, what was released for it and when), and an index from (bucket,
 * value, size class) to the cells whose sketch has that value in that
 * bucket, so that the cells near a new one are found without looking at
 * every cell of the account.
 *
 * Not thread-safe: the ledger's mutex guards it.
 *
 * Must never: be reachable from outside queries/.
 */
#ifndef CC_LEDGER_INTERNAL_H
#define CC_LEDGER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cc_ledger.h"

struct cc_cellbook;

/* A cell as the book keeps it. */
struct cc_cellbook_cell {
    uint32_t persons;
    uint8_t released, reason;
    uint64_t value;
    int64_t at_s;
    uint32_t sketch[CC_LEDGER_SKETCH_BUCKETS];
};

/* Bytes of one cell in a ledger_cell row's blob (cc_cellbook_encode). */
#define CC_CELLBOOK_RECORD_BYTES (4 + 8 + 1 + 1 + 4 * CC_LEDGER_SKETCH_BUCKETS)

int cc_cellbook_new(struct cc_cellbook **out);
void cc_cellbook_free(struct cc_cellbook *book);

/* Cells recorded for account (also the mark cc_cellbook_truncate takes
 * back to), and how many since since_s. */
uint64_t cc_cellbook_n_cells(const struct cc_cellbook *book, int64_t account);
uint64_t cc_cellbook_n_live(struct cc_cellbook *book, int64_t account, int64_t since_s);

/* Adds a cell (copied) to account. 0 or CC_ENOMEM. */
int cc_cellbook_add(struct cc_cellbook *book, int64_t account, const struct cc_cellbook_cell *cell);

/* Removes the cells of account added after mark (the newest first). */
void cc_cellbook_truncate(struct cc_cellbook *book, int64_t account, uint64_t mark);

/* The recorded cell of account nearest to cell, among those recorded at
 * or after since_s whose size differs from cell's by fewer than
 * min_difference and whose sketch agrees with cell's in at least
 * `agree` buckets: the most buckets in agreement, then the nearest size,
 * then the earliest. NULL when there is none. */
const struct cc_cellbook_cell *cc_cellbook_find(struct cc_cellbook *book, int64_t account,
                                                const struct cc_cellbook_cell *cell,
                                                uint32_t min_difference, unsigned agree,
                                                int64_t since_s);

/* Encodes cells[0..n) into a row's blob (malloc'd, *len bytes), and
 * decodes a blob into account's cells, each recorded at at_s. 0,
 * CC_ENOMEM, or CC_ECORRUPT for a blob that is not whole records. */
int cc_cellbook_encode(const struct cc_cellbook_cell *cells, uint64_t n, uint8_t **blob,
                       size_t *len);
int cc_cellbook_decode(struct cc_cellbook *book, int64_t account, int64_t at_s,
                       const uint8_t *blob, size_t len);

/* Bytes of memory the book holds. */
size_t cc_cellbook_memory_bytes(const struct cc_cellbook *book);

#endif
