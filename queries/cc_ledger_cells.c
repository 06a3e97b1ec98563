/*
 * cc_ledger_cells.c: the ledger's book of cells (cc_ledger_internal.h).
 *
 * Each account has its cells in recording order and an index: an open
 * addressing table from a key (bucket, value in that bucket, size class)
 * to a chain of the cells with that value in that bucket and of that size
 * class (size / min_difference). Two cells whose persons differ by fewer
 * than min_difference have sizes that differ by less than that, so their
 * size classes are equal or adjacent, and share every bucket value but at
 * most min_difference - 1: a look-up probes each non-empty bucket of the
 * new cell in three size classes and compares the sketches of the cells
 * it reaches. Chains hold the newest cell first, so that the newest cells
 * can be taken off again (cc_cellbook_truncate) by popping chain heads.
 *
 * Must never: write a size, a sketch or a value into an error message.
 */
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_ledger_internal.h"

#define NO_ENTRY UINT32_MAX
#define EMPTY_SKETCH UINT32_MAX

struct link {
    uint32_t cell;
    uint32_t next; /* NO_ENTRY: the end of the chain */
};

struct slot {
    uint64_t key; /* 0: an unused slot (keys are never 0: see index_key) */
    uint32_t head;
};

struct book_account {
    int64_t id;
    struct cc_cellbook_cell *cells;
    uint64_t n, cap;
    uint32_t *stamp; /* [cap]: the look-up that last saw each cell */
    uint32_t look;
    uint64_t first_live; /* cells before it were recorded before the last since_s */
    struct link *links;
    uint64_t n_links, links_cap;
    struct slot *slots;
    uint64_t n_slots, n_used; /* n_slots a power of 2 */
    uint32_t size_class;      /* min_difference the index was built with */
};

struct cc_cellbook {
    struct book_account *accounts; /* sorted by id */
    size_t n_accounts, cap;
};

int cc_cellbook_new(struct cc_cellbook **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : CC_ENOMEM;
}

void cc_cellbook_free(struct cc_cellbook *book)
{
    if (!book)
        return;
    for (size_t i = 0; i < book->n_accounts; i++) {
        struct book_account *a = &book->accounts[i];
        free(a->cells);
        free(a->stamp);
        free(a->links);
        free(a->slots);
    }
    free(book->accounts);
    free(book);
}

static struct book_account *find(const struct cc_cellbook *book, int64_t id, size_t *at)
{
    size_t lo = 0, hi = book->n_accounts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (book->accounts[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return lo < book->n_accounts && book->accounts[lo].id == id ? &book->accounts[lo] : NULL;
}

static struct book_account *find_or_add(struct cc_cellbook *book, int64_t id)
{
    size_t at;
    struct book_account *a = find(book, id, &at);
    if (a)
        return a;
    if (book->n_accounts == book->cap) {
        size_t cap = book->cap ? 2 * book->cap : 8;
        struct book_account *grown = realloc(book->accounts, cap * sizeof *grown);
        if (!grown)
            return NULL;
        book->accounts = grown;
        book->cap = cap;
    }
    memmove(&book->accounts[at + 1], &book->accounts[at],
            (book->n_accounts - at) * sizeof *book->accounts);
    book->n_accounts++;
    a = &book->accounts[at];
    memset(a, 0, sizeof *a);
    a->id = id;
    return a;
}

uint64_t cc_cellbook_n_cells(const struct cc_cellbook *book, int64_t account)
{
    const struct book_account *a = find(book, account, NULL);
    return a ? a->n : 0;
}

/* Advances first_live past the cells recorded before since_s (cells are
 * recorded in time order, near enough: a replica's cells come in at their
 * commit). */
static void expire(struct book_account *a, int64_t since_s)
{
    while (a->first_live < a->n && a->cells[a->first_live].at_s < since_s)
        a->first_live++;
}

uint64_t cc_cellbook_n_live(struct cc_cellbook *book, int64_t account, int64_t since_s)
{
    struct book_account *a = find(book, account, NULL);
    if (!a)
        return 0;
    expire(a, since_s);
    return a->n - a->first_live;
}

/* The index key of (bucket, value, size class): never 0. */
static uint64_t index_key(unsigned bucket, uint32_t value, uint64_t size_class)
{
    uint64_t x = ((uint64_t)value << 4 | bucket) ^ (size_class + 1) * 0x9e3779b97f4a7c15ULL;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x ? x : 1;
}

static struct slot *slot_of(const struct book_account *a, uint64_t key)
{
    uint64_t mask = a->n_slots - 1;
    for (uint64_t i = key & mask;; i = (i + 1) & mask)
        if (a->slots[i].key == key || a->slots[i].key == 0)
            return &a->slots[i];
}

static int grow_slots(struct book_account *a)
{
    uint64_t n = a->n_slots ? 2 * a->n_slots : 1024;
    struct slot *old = a->slots;
    uint64_t old_n = a->n_slots;
    a->slots = calloc(n, sizeof *a->slots);
    if (!a->slots) {
        a->slots = old;
        return CC_ENOMEM;
    }
    a->n_slots = n;
    for (uint64_t i = 0; i < old_n; i++)
        if (old[i].key)
            *slot_of(a, old[i].key) = old[i];
    free(old);
    return 0;
}

/* The size class of a cell: its size in units of the index's width. */
static uint64_t class_of(const struct book_account *a, uint32_t persons)
{
    return persons / a->size_class;
}

int cc_cellbook_add(struct cc_cellbook *book, int64_t account, const struct cc_cellbook_cell *cell)
{
    struct book_account *a = find_or_add(book, account);
    if (!a)
        return CC_ENOMEM;
    if (a->n == a->cap) {
        uint64_t cap = a->cap ? 2 * a->cap : 256;
        struct cc_cellbook_cell *cells = realloc(a->cells, cap * sizeof *cells);
        if (!cells)
            return CC_ENOMEM;
        a->cells = cells;
        uint32_t *stamp = realloc(a->stamp, cap * sizeof *stamp);
        if (!stamp)
            return CC_ENOMEM;
        memset(stamp + a->cap, 0, (cap - a->cap) * sizeof *stamp);
        a->stamp = stamp;
        a->cap = cap;
    }
    if (a->n_links + CC_LEDGER_SKETCH_BUCKETS > a->links_cap) {
        uint64_t cap = a->links_cap ? 2 * a->links_cap : 4096;
        struct link *links = realloc(a->links, cap * sizeof *links);
        if (!links)
            return CC_ENOMEM;
        a->links = links;
        a->links_cap = cap;
    }
    if ((a->n_used + CC_LEDGER_SKETCH_BUCKETS) * 2 > a->n_slots && grow_slots(a) < 0)
        return CC_ENOMEM;
    if (!a->size_class)
        a->size_class = CC_LEDGER_SIZE_CLASS;
    uint32_t index = (uint32_t)a->n;
    a->cells[a->n++] = *cell;
    a->stamp[index] = 0;
    for (unsigned b = 0; b < CC_LEDGER_SKETCH_BUCKETS; b++) {
        if (cell->sketch[b] == EMPTY_SKETCH)
            continue;
        uint64_t key = index_key(b, cell->sketch[b], class_of(a, cell->persons));
        struct slot *s = slot_of(a, key);
        if (!s->key) {
            s->key = key;
            s->head = NO_ENTRY;
            a->n_used++;
        }
        a->links[a->n_links] = (struct link){index, s->head};
        s->head = (uint32_t)a->n_links++;
    }
    return 0;
}

void cc_cellbook_truncate(struct cc_cellbook *book, int64_t account, uint64_t mark)
{
    struct book_account *a = find(book, account, NULL);
    if (!a)
        return;
    while (a->n > mark) {
        const struct cc_cellbook_cell *cell = &a->cells[--a->n];
        for (unsigned b = CC_LEDGER_SKETCH_BUCKETS; b-- > 0;) {
            if (cell->sketch[b] == EMPTY_SKETCH)
                continue;
            /* its links are the newest: the heads of their chains (the slot
             * stays, with an empty chain) */
            struct slot *s = slot_of(a, index_key(b, cell->sketch[b], class_of(a, cell->persons)));
            s->head = a->links[s->head].next;
            a->n_links--;
        }
    }
    if (a->first_live > a->n)
        a->first_live = a->n;
}

static unsigned agreement(const uint32_t *x, const uint32_t *y)
{
    unsigned n = 0;
    for (unsigned b = 0; b < CC_LEDGER_SKETCH_BUCKETS; b++)
        n += x[b] == y[b];
    return n;
}

const struct cc_cellbook_cell *cc_cellbook_find(struct cc_cellbook *book, int64_t account,
                                                const struct cc_cellbook_cell *cell,
                                                uint32_t min_difference, unsigned agree,
                                                int64_t since_s)
{
    struct book_account *a = find(book, account, NULL);
    if (!a || a->n == 0 || !a->n_slots)
        return NULL;
    expire(a, since_s);
    if (++a->look == 0) { /* the stamps wrapped: start them again */
        memset(a->stamp, 0, a->cap * sizeof *a->stamp);
        a->look = 1;
    }
    /* the classes that can hold a size within min_difference - 1 */
    uint64_t lo = cell->persons >= min_difference - 1
                      ? (cell->persons - (min_difference - 1)) / a->size_class
                      : 0;
    uint64_t hi = ((uint64_t)cell->persons + (min_difference - 1)) / a->size_class;
    const struct cc_cellbook_cell *best = NULL;
    unsigned best_agree = 0;
    uint32_t best_gap = 0, best_index = 0;
    for (unsigned b = 0; b < CC_LEDGER_SKETCH_BUCKETS; b++) {
        if (cell->sketch[b] == EMPTY_SKETCH)
            continue;
        for (uint64_t k = lo; k <= hi; k++) {
            struct slot *s = slot_of(a, index_key(b, cell->sketch[b], k));
            if (!s->key)
                continue;
            for (uint32_t l = s->head; l != NO_ENTRY; l = a->links[l].next) {
                uint32_t i = a->links[l].cell;
                if (a->stamp[i] == a->look)
                    continue;
                a->stamp[i] = a->look;
                if (i < a->first_live)
                    continue;
                const struct cc_cellbook_cell *old = &a->cells[i];
                uint32_t gap = old->persons > cell->persons ? old->persons - cell->persons
                                                            : cell->persons - old->persons;
                if (gap >= min_difference)
                    continue;
                unsigned n = agreement(old->sketch, cell->sketch);
                if (n < agree)
                    continue;
                if (!best || n > best_agree || (n == best_agree && gap < best_gap) ||
                    (n == best_agree && gap == best_gap && i < best_index)) {
                    best = old;
                    best_agree = n;
                    best_gap = gap;
                    best_index = i;
                }
            }
        }
    }
    return best;
}

/* ---- rows ---- */

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

int cc_cellbook_encode(const struct cc_cellbook_cell *cells, uint64_t n, uint8_t **blob,
                       size_t *len)
{
    *len = (size_t)n * CC_CELLBOOK_RECORD_BYTES;
    *blob = malloc(*len ? *len : 1);
    if (!*blob)
        return CC_ENOMEM;
    uint8_t *p = *blob;
    for (uint64_t i = 0; i < n; i++) {
        put_u32(p, cells[i].persons);
        put_u64(p + 4, cells[i].value);
        p[12] = cells[i].released;
        p[13] = cells[i].reason;
        for (unsigned b = 0; b < CC_LEDGER_SKETCH_BUCKETS; b++)
            put_u32(p + 14 + 4 * b, cells[i].sketch[b]);
        p += CC_CELLBOOK_RECORD_BYTES;
    }
    return 0;
}

int cc_cellbook_decode(struct cc_cellbook *book, int64_t account, int64_t at_s,
                       const uint8_t *blob, size_t len)
{
    if (len % CC_CELLBOOK_RECORD_BYTES)
        return CC_ECORRUPT;
    for (size_t off = 0; off < len; off += CC_CELLBOOK_RECORD_BYTES) {
        const uint8_t *p = blob + off;
        struct cc_cellbook_cell cell;
        cell.persons = get_u32(p);
        cell.value = get_u64(p + 4);
        cell.released = p[12];
        cell.reason = p[13];
        cell.at_s = at_s;
        for (unsigned b = 0; b < CC_LEDGER_SKETCH_BUCKETS; b++)
            cell.sketch[b] = get_u32(p + 14 + 4 * b);
        int rc = cc_cellbook_add(book, account, &cell);
        if (rc < 0)
            return rc;
    }
    return 0;
}

size_t cc_cellbook_memory_bytes(const struct cc_cellbook *book)
{
    size_t n = sizeof *book + book->cap * sizeof *book->accounts;
    for (size_t i = 0; i < book->n_accounts; i++) {
        const struct book_account *a = &book->accounts[i];
        n += a->cap * (sizeof *a->cells + sizeof *a->stamp) + a->links_cap * sizeof *a->links +
             a->n_slots * sizeof *a->slots;
    }
    return n;
}
