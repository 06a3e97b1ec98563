/*
 * cc_ledger.c: the disclosure ledger (cc_ledger.h): cohorts per account in
 * memory, for look-up, and in state.db, for restarts.
 *
 * In memory an account is an array of entries sorted by cohort size: two
 * cohorts whose sizes differ by d or more differ by at least d persons, so
 * the candidates for "differs by fewer than T" are the entries whose size
 * is within T - 1 of the new one, found by binary search, and only they are
 * compared (roaring_bitmap_xor_cardinality, exact). The budget's near
 * differences (below ledger_near_difference) are looked for the same way
 * in the wider size window.
 *
 * Durability: an entry is INSERTed on a connection opened by cc_db_open()
 * (WAL, synchronous=FULL) and committed, so when the commit returns the
 * entry is in the fsync'ed log; only then is it added to memory and the
 * query admitted. A crash before that point loses an entry whose query was
 * never answered.
 *
 * Several processes (replicas serving one data directory, docs/scale.md):
 * each admit runs inside one BEGIN IMMEDIATE transaction, which holds
 * SQLite's write lock across processes: it first reads the entries other
 * processes committed since this one last looked (rows with an id above
 * the last one seen: ids only grow, entries are never deleted), then
 * decides, then inserts and commits. So the look-up always sees every
 * entry committed anywhere, and two replicas cannot both admit the two
 * halves of a differencing pair.
 *
 * Must never: write a cohort, a record key or a size into an error message
 * or a log line.
 */
#include "cc_ledger.h"

#include <pthread.h>
#include <roaring/roaring.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cc_db.h"
#include "cc_error.h"
#include "cc_ledger_internal.h"

struct entry {
    uint64_t n_persons; /* the bitmap's cardinality */
    uint64_t fingerprint;
    /* The keys it was admitted with, as given (a key twice when two persons
     * share one): how many and their hash (key_mix summed), for the same
     * query again; from the bitmap for entries read back. In memory only. */
    uint64_t n_keys, keys_hash;
    int64_t at_s;
    uint8_t near; /* counted against the budget */
    roaring_bitmap_t *cohort;
};

struct account {
    int64_t id;
    struct entry *entries; /* sorted by n_persons */
    size_t n, cap;
};

struct cc_ledger {
    pthread_mutex_t lock; /* guards everything below, and the connection */
    sqlite3 *db;
    sqlite3_stmt *insert;
    sqlite3_stmt *since; /* the entries with an id above ?1, in id order */
    int64_t seen_id;     /* the greatest entry id in memory */
    struct account *accounts; /* sorted by id */
    size_t n_accounts, accounts_cap;
    size_t memory_bytes;
    /* the cells (cc_ledger_admit_cells), rows of ledger_cell */
    struct cc_cellbook *book;
    sqlite3_stmt *insert_cells;
    sqlite3_stmt *cells_since;
    int64_t seen_cells_id;
};

static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS ledger_entry ("
    " id INTEGER PRIMARY KEY,"
    " account INTEGER NOT NULL,"
    " at_s INTEGER NOT NULL,"
    " fingerprint INTEGER NOT NULL,"
    " near INTEGER NOT NULL,"
    " cohort BLOB NOT NULL)",
};

/* One row per release that recorded cells: the cells, as
 * CC_CELLBOOK_RECORD_BYTES records each (cc_cellbook_encode). */
static const char *const cells_schema[] = {
    "CREATE TABLE IF NOT EXISTS ledger_cell ("
    " id INTEGER PRIMARY KEY,"
    " account INTEGER NOT NULL,"
    " at_s INTEGER NOT NULL,"
    " cells BLOB NOT NULL)",
};

/* The account with id, created (empty) when create is set; NULL if absent
 * or out of memory. */
static struct account *find_account(cc_ledger *l, int64_t id, int create)
{
    size_t lo = 0, hi = l->n_accounts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->accounts[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < l->n_accounts && l->accounts[lo].id == id)
        return &l->accounts[lo];
    if (!create)
        return NULL;
    if (l->n_accounts == l->accounts_cap) {
        size_t cap = l->accounts_cap ? 2 * l->accounts_cap : 16;
        struct account *grown = realloc(l->accounts, cap * sizeof *grown);
        if (!grown)
            return NULL;
        l->accounts = grown;
        l->accounts_cap = cap;
    }
    memmove(&l->accounts[lo + 1], &l->accounts[lo], (l->n_accounts - lo) * sizeof *l->accounts);
    l->n_accounts++;
    memset(&l->accounts[lo], 0, sizeof l->accounts[lo]);
    l->accounts[lo].id = id;
    return &l->accounts[lo];
}

/* The first entry of a whose size is at least n. */
static size_t first_of_size(const struct account *a, uint64_t n)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->entries[mid].n_persons < n)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* An order-free hash of a set of record keys: the sum of a mix of each
 * (cc_ledger_key_mix). The same set gives the same hash from the keys or
 * from the bitmap. */
#define key_mix cc_ledger_key_mix

static bool add_to_hash(uint32_t value, void *arg)
{
    *(uint64_t *)arg += key_mix(value);
    return true;
}

static uint64_t bitmap_hash(const roaring_bitmap_t *b)
{
    uint64_t h = 0;
    roaring_iterate(b, add_to_hash, &h);
    return h;
}

/* Adds e to a in size order (a takes the bitmap). 0 or CC_ENOMEM. */
static int add_entry(cc_ledger *l, struct account *a, const struct entry *e)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 16;
        struct entry *grown = realloc(a->entries, cap * sizeof *grown);
        if (!grown)
            return CC_ENOMEM;
        a->entries = grown;
        a->cap = cap;
    }
    size_t at = first_of_size(a, e->n_persons);
    memmove(&a->entries[at + 1], &a->entries[at], (a->n - at) * sizeof *a->entries);
    a->entries[at] = *e;
    a->n++;
    l->memory_bytes += sizeof *e + roaring_bitmap_size_in_bytes(e->cohort);
    return 0;
}

/* Adds to memory every entry with an id above the last one seen (all of
 * them at open; afterwards those other processes committed since). */
static int load_entries(cc_ledger *l, char *errbuf, size_t errlen)
{
    sqlite3_stmt *st = l->since;
    sqlite3_bind_int64(st, 1, l->seen_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *blob = sqlite3_column_blob(st, 5);
        int bytes = sqlite3_column_bytes(st, 5);
        struct entry e = {0};
        int64_t id = sqlite3_column_int64(st, 0);
        e.at_s = sqlite3_column_int64(st, 2);
        e.fingerprint = (uint64_t)sqlite3_column_int64(st, 3);
        e.near = sqlite3_column_int(st, 4) != 0;
        e.cohort = blob ? roaring_bitmap_portable_deserialize_safe(blob, (size_t)bytes) : NULL;
        if (!e.cohort) {
            sqlite3_reset(st);
            return cc_errorf(errbuf, errlen, CC_ECORRUPT, "ledger: an entry does not decode");
        }
        e.n_persons = roaring_bitmap_get_cardinality(e.cohort);
        e.n_keys = e.n_persons;
        e.keys_hash = bitmap_hash(e.cohort);
        struct account *a = find_account(l, sqlite3_column_int64(st, 1), 1);
        if (!a || add_entry(l, a, &e) != 0) {
            roaring_bitmap_free(e.cohort);
            sqlite3_reset(st);
            return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
        }
        l->seen_id = id;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cc_errorf(errbuf, errlen, cc_db_error(rc), "ledger: cannot read its entries");
    return 0;
}

/* Adds to the book every ledger_cell row with an id above the last one
 * seen, as load_entries() does for entries. */
static int load_cells(cc_ledger *l, char *errbuf, size_t errlen)
{
    sqlite3_stmt *st = l->cells_since;
    sqlite3_bind_int64(st, 1, l->seen_cells_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *blob = sqlite3_column_blob(st, 3);
        int bytes = sqlite3_column_bytes(st, 3);
        int drc = cc_cellbook_decode(l->book, sqlite3_column_int64(st, 1),
                                     sqlite3_column_int64(st, 2), blob, (size_t)bytes);
        if (drc < 0) {
            sqlite3_reset(st);
            return cc_errorf(errbuf, errlen, drc,
                             drc == CC_ECORRUPT ? "ledger: a row of cells does not decode"
                                                : "ledger: out of memory");
        }
        l->seen_cells_id = sqlite3_column_int64(st, 0);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return cc_errorf(errbuf, errlen, cc_db_error(rc), "ledger: cannot read its cells");
    return 0;
}

int cc_ledger_open(const char *dir, cc_ledger **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    cc_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
    int rc = pthread_mutex_init(&l->lock, NULL);
    if (rc != 0) {
        free(l);
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: cannot make its lock");
    }
    if ((rc = cc_db_open(dir, CC_DB_CREATE, &l->db, errbuf, errlen)) != 0)
        goto fail;
    if ((rc = cc_db_schema_ensure(l->db, "ledger", 1, schema, sizeof schema / sizeof *schema)) ||
        (rc = cc_db_schema_ensure(l->db, "ledger_cells", 1, cells_schema,
                                  sizeof cells_schema / sizeof *cells_schema))) {
        cc_errorf(errbuf, errlen, rc, "ledger: cannot create its tables");
        goto fail;
    }
    if ((rc = cc_cellbook_new(&l->book)) < 0) {
        cc_errorf(errbuf, errlen, rc, "ledger: out of memory");
        goto fail;
    }
    int src = sqlite3_prepare_v2(l->db,
                                 "INSERT INTO ledger_entry (account, at_s, fingerprint, near, "
                                 "cohort) VALUES (?, ?, ?, ?, ?)",
                                 -1, &l->insert, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(l->db,
                                 "SELECT id, account, at_s, fingerprint, near, cohort FROM "
                                 "ledger_entry WHERE id > ?1 ORDER BY id",
                                 -1, &l->since, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(l->db,
                                 "INSERT INTO ledger_cell (account, at_s, cells) VALUES (?, ?, ?)",
                                 -1, &l->insert_cells, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_prepare_v2(l->db,
                                 "SELECT id, account, at_s, cells FROM ledger_cell WHERE id > ?1 "
                                 "ORDER BY id",
                                 -1, &l->cells_since, NULL);
    if (src != SQLITE_OK) {
        rc = cc_errorf(errbuf, errlen, cc_db_error(src), "ledger: cannot prepare its statements");
        goto fail;
    }
    if ((rc = load_entries(l, errbuf, errlen)) != 0 || (rc = load_cells(l, errbuf, errlen)) != 0)
        goto fail;
    *out = l;
    return 0;
fail:
    cc_ledger_close(l);
    return rc;
}

void cc_ledger_close(cc_ledger *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_accounts; i++) {
        for (size_t j = 0; j < l->accounts[i].n; j++)
            roaring_bitmap_free(l->accounts[i].entries[j].cohort);
        free(l->accounts[i].entries);
    }
    free(l->accounts);
    sqlite3_finalize(l->insert);
    sqlite3_finalize(l->since);
    sqlite3_finalize(l->insert_cells);
    sqlite3_finalize(l->cells_since);
    cc_cellbook_free(l->book);
    cc_db_close(l->db);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* Inserts e for account inside the admit's transaction; 0 or a CC_E* code. */
static int persist(cc_ledger *l, int64_t account, const struct entry *e)
{
    size_t bytes = roaring_bitmap_portable_size_in_bytes(e->cohort);
    char *blob = malloc(bytes ? bytes : 1);
    if (!blob)
        return CC_ENOMEM;
    roaring_bitmap_portable_serialize(e->cohort, blob);
    sqlite3_stmt *st = l->insert;
    sqlite3_bind_int64(st, 1, account);
    sqlite3_bind_int64(st, 2, e->at_s);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)e->fingerprint);
    sqlite3_bind_int(st, 4, e->near);
    int rc = sqlite3_bind_blob(st, 5, blob, (int)bytes, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    free(blob);
    return rc == SQLITE_DONE ? 0 : cc_db_error(rc) ? cc_db_error(rc) : CC_EDB;
}

/* The bitmap of keys: sorted first (two 16-bit radix passes), so that
 * CRoaring appends to its last container instead of searching and shifting
 * one per key (10 times faster at 100,000 keys); NULL when out of memory. */
static roaring_bitmap_t *bitmap_of(const uint32_t *keys, uint64_t n)
{
    uint32_t *sorted = malloc((n ? n : 1) * sizeof *sorted);
    uint32_t *tmp = malloc((n ? n : 1) * sizeof *tmp);
    uint64_t *count = calloc(65536, sizeof *count);
    roaring_bitmap_t *bitmap = NULL;
    if (!sorted || !tmp || !count)
        goto out;
    const uint32_t *from = keys;
    uint32_t *to = tmp;
    for (int shift = 0; shift < 32; shift += 16) {
        memset(count, 0, 65536 * sizeof *count);
        for (uint64_t i = 0; i < n; i++)
            count[from[i] >> shift & 0xffff]++;
        uint64_t sum = 0;
        for (size_t b = 0; b < 65536; b++) {
            uint64_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (uint64_t i = 0; i < n; i++)
            to[count[from[i] >> shift & 0xffff]++] = from[i];
        from = to;
        to = sorted;
    }
    if ((bitmap = roaring_bitmap_create()) != NULL)
        roaring_bitmap_add_many(bitmap, (size_t)n, from);
out:
    free(sorted);
    free(tmp);
    free(count);
    return bitmap;
}

bool cc_ledger_knows(cc_ledger *l, int64_t account, uint64_t fingerprint, uint64_t n_keys,
                     uint64_t keys_hash)
{
    /* The same query again, seen by this process: answered at once, with
     * no bitmap and no write lock. Safe without the lock: the earlier
     * entry is committed, so whatever another replica recorded since was
     * checked against it, and this cohort is that one. The keys' hash
     * misses when two persons share a record key (then the full path
     * decides). Entries are sorted by persons, which is the number of keys
     * less the shared ones (about n^2 / 2^33): the window below holds
     * them. */
    uint64_t shared = (uint64_t)((double)n_keys * (double)n_keys / 2147483648.0) + 64;
    bool known = false;
    pthread_mutex_lock(&l->lock);
    struct account *seen = find_account(l, account, 0);
    for (size_t i = seen ? first_of_size(seen, n_keys > shared ? n_keys - shared : 0) : 0;
         seen && i < seen->n && seen->entries[i].n_persons <= n_keys && !known; i++) {
        const struct entry *old = &seen->entries[i];
        known = old->fingerprint == fingerprint && old->n_keys == n_keys &&
                old->keys_hash == keys_hash;
    }
    pthread_mutex_unlock(&l->lock);
    return known;
}

int cc_ledger_admit(cc_ledger *l, int64_t account, const struct cc_policy *policy,
                    uint64_t fingerprint, const uint32_t *keys, uint64_t n_keys, int64_t now_s,
                    char *errbuf, size_t errlen)
{
    struct entry e = {0};
    e.fingerprint = fingerprint;
    e.at_s = now_s;
    /* the same query again, seen by this process (cc_ledger_knows) */
    uint64_t hash = 0;
    for (uint64_t i = 0; i < n_keys; i++)
        hash += key_mix(keys[i]);
    if (cc_ledger_knows(l, account, fingerprint, n_keys, hash))
        return 0;
    e.cohort = bitmap_of(keys, n_keys);
    if (!e.cohort)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
    roaring_bitmap_run_optimize(e.cohort);
    e.n_persons = roaring_bitmap_get_cardinality(e.cohort);
    e.n_keys = n_keys;
    e.keys_hash = hash;
    uint64_t min = policy->ledger_min_difference, near = policy->ledger_near_difference;
    int64_t window_s = (int64_t)policy->ledger_window_days * 86400;

    pthread_mutex_lock(&l->lock);
    /* The write lock of state.db first, across processes: then the entries
     * other replicas committed are read, and nobody can commit another
     * until this decision is committed or rolled back. */
    int rc = cc_db_begin(l->db);
    if (rc) {
        cc_errorf(errbuf, errlen, rc, "ledger: cannot lock its entries (%s)", cc_strerror(rc));
        goto out;
    }
    if ((rc = load_entries(l, errbuf, errlen)) != 0)
        goto out;
    struct account *a = find_account(l, account, 1);
    if (!a) {
        rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
        goto out;
    }
    /* candidates: sizes within near - 1 (near >= min, checked by the policy) */
    uint64_t from = e.n_persons > near - 1 ? e.n_persons - (near - 1) : 0;
    int is_near = 0;
    for (size_t i = first_of_size(a, from);
         i < a->n && a->entries[i].n_persons < e.n_persons + near; i++) {
        const struct entry *old = &a->entries[i];
        uint64_t gap = old->n_persons > e.n_persons ? old->n_persons - e.n_persons
                                                    : e.n_persons - old->n_persons;
        /* the sizes bound the difference from below: compare only when it
         * could be under min, or under near while no near one is known */
        uint64_t differ = UINT64_MAX;
        if (gap < min || !is_near)
            differ = roaring_bitmap_xor_cardinality(old->cohort, e.cohort);
        if (differ == 0 && old->fingerprint == fingerprint) {
            /* the same query again: answered, nothing new recorded; the
             * keys as given this time let the next one take the fast path
             * (an entry read back knows only its distinct keys) */
            a->entries[i].n_keys = n_keys;
            a->entries[i].keys_hash = hash;
            goto out;
        }
        if (differ < min) {
            rc = cc_errorf(errbuf, errlen, CC_EREFUSED,
                           "ledger: the cohort differs too little from the cohort of an earlier "
                           "query of this account (disclosure ledger)");
            goto out;
        }
        if (differ < near)
            is_near = 1;
    }
    if (is_near) {
        uint64_t used = 0;
        for (size_t i = 0; i < a->n; i++)
            used += a->entries[i].near && a->entries[i].at_s > now_s - window_s;
        if (used >= policy->ledger_budget) {
            rc = cc_errorf(errbuf, errlen, CC_EREFUSED,
                           "ledger: this account has used its budget of queries close to "
                           "earlier ones for now (disclosure ledger budget)");
            goto out;
        }
        e.near = 1;
    }
    if ((rc = persist(l, account, &e)) != 0 || (rc = cc_db_commit(l->db)) != 0) {
        cc_errorf(errbuf, errlen, rc, "ledger: cannot record the query");
        goto out;
    }
    int64_t id = sqlite3_last_insert_rowid(l->db);
    if ((rc = add_entry(l, a, &e)) != 0) {
        /* committed but not in memory: the next admit reads it back */
        cc_errorf(errbuf, errlen, rc, "ledger: out of memory");
        goto out;
    }
    l->seen_id = id; /* committed under the write lock: nothing came in between */
    e.cohort = NULL; /* the account owns it */
out:
    /* nothing to keep on a refusal, a repeat or a failure (a no-op after
     * the commit) */
    cc_db_rollback(l->db);
    pthread_mutex_unlock(&l->lock);
    if (e.cohort)
        roaring_bitmap_free(e.cohort);
    return rc;
}

uint64_t cc_ledger_n_entries(cc_ledger *l, int64_t account)
{
    pthread_mutex_lock(&l->lock);
    const struct account *a = find_account(l, account, 0);
    uint64_t n = a ? a->n : 0;
    pthread_mutex_unlock(&l->lock);
    return n;
}

size_t cc_ledger_memory_bytes(cc_ledger *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = l->memory_bytes + (l->book ? cc_cellbook_memory_bytes(l->book) : 0);
    pthread_mutex_unlock(&l->lock);
    return n;
}

uint64_t cc_ledger_n_cells(cc_ledger *l, int64_t account)
{
    pthread_mutex_lock(&l->lock);
    uint64_t n = cc_cellbook_n_cells(l->book, account);
    pthread_mutex_unlock(&l->lock);
    return n;
}

int cc_ledger_admit_cells(cc_ledger *l, int64_t account, const struct cc_policy *policy,
                          struct cc_ledger_cell *cells, uint64_t n_cells, int64_t now_s,
                          char *errbuf, size_t errlen)
{
    for (uint64_t i = 0; i < n_cells; i++)
        cells[i].pinned = 0;
    if (policy->ledger_cell_max == 0)
        return 0;
    uint64_t n_looked = 0;
    for (uint64_t i = 0; i < n_cells; i++)
        n_looked += cells[i].persons > 0 && cells[i].persons < policy->ledger_cell_max;
    if (n_looked == 0)
        return 0;
    struct cc_cellbook_cell *fresh = malloc(n_looked * sizeof *fresh);
    if (!fresh)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "ledger: out of memory");
    uint32_t min = policy->ledger_min_difference;
    unsigned agree = min - 1 < CC_LEDGER_SKETCH_BUCKETS ? CC_LEDGER_SKETCH_BUCKETS - (min - 1) : 1;
    int64_t since_s = now_s - (int64_t)policy->ledger_cell_days * 86400;
    uint64_t n_fresh = 0, mark = 0;
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    int marked = 0;

    pthread_mutex_lock(&l->lock);
    int rc = cc_db_begin(l->db);
    if (rc) {
        cc_errorf(errbuf, errlen, rc, "ledger: cannot lock its entries (%s)", cc_strerror(rc));
        goto out;
    }
    if ((rc = load_cells(l, errbuf, errlen)) != 0)
        goto out;
    mark = cc_cellbook_n_cells(l->book, account);
    marked = 1;
    for (uint64_t i = 0; i < n_cells; i++) {
        struct cc_ledger_cell *c = &cells[i];
        if (c->persons == 0 || c->persons >= policy->ledger_cell_max)
            continue;
        struct cc_cellbook_cell cell = {0};
        cell.persons = (uint32_t)c->persons;
        cell.value = c->value;
        cell.released = c->released;
        cell.reason = c->reason;
        cell.at_s = now_s;
        memcpy(cell.sketch, c->sketch, sizeof cell.sketch);
        const struct cc_cellbook_cell *old =
            cc_cellbook_find(l->book, account, &cell, min, agree, since_s);
        if (old) {
            /* answered as the earlier cell was, and recorded with that
             * value: a cell near this one but no longer near the earlier
             * one gets the same value again, rather than a fresh one to
             * difference against it */
            c->value = cell.value = old->value;
            c->released = cell.released = old->released;
            c->reason = cell.reason = old->reason;
            c->pinned = 1;
            if (cell.persons == old->persons &&
                !memcmp(cell.sketch, old->sketch, sizeof cell.sketch))
                continue; /* the same cell again: nothing new to remember */
        }
        /* later cells of this release are looked up against it too */
        if ((rc = cc_cellbook_add(l->book, account, &cell)) < 0) {
            cc_errorf(errbuf, errlen, rc, "ledger: out of memory");
            goto out;
        }
        fresh[n_fresh++] = cell;
    }
    if (n_fresh == 0)
        goto out;
    if (cc_cellbook_n_live(l->book, account, since_s) > policy->ledger_cells) {
        rc = cc_errorf(errbuf, errlen, CC_EREFUSED,
                       "ledger: this account has as many cells remembered as the policy allows "
                       "(ledger_cells); they are forgotten after ledger_cell_days days");
        goto out;
    }
    if ((rc = cc_cellbook_encode(fresh, n_fresh, &blob, &blob_len)) < 0) {
        cc_errorf(errbuf, errlen, rc, "ledger: out of memory");
        goto out;
    }
    sqlite3_stmt *st = l->insert_cells;
    sqlite3_bind_int64(st, 1, account);
    sqlite3_bind_int64(st, 2, now_s);
    int src = sqlite3_bind_blob(st, 3, blob, (int)blob_len, SQLITE_STATIC);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    rc = src == SQLITE_DONE ? 0 : cc_db_error(src) ? cc_db_error(src) : CC_EDB;
    if (rc == 0)
        rc = cc_db_commit(l->db);
    if (rc) {
        cc_errorf(errbuf, errlen, rc, "ledger: cannot record the cells");
        goto out;
    }
    l->seen_cells_id = sqlite3_last_insert_rowid(l->db);
    marked = 0; /* committed: the cells stay in the book */
out:
    if (rc && marked)
        cc_cellbook_truncate(l->book, account, mark);
    cc_db_rollback(l->db);
    pthread_mutex_unlock(&l->lock);
    free(blob);
    free(fresh);
    if (rc)
        for (uint64_t i = 0; i < n_cells; i++)
            cells[i].pinned = 0;
    return rc;
}
