/*
 * cc_ingest_ahead.c: reading a feed ahead on the second core (see
 * cc_ingest_internal.h, "Read-ahead").
 *
 * A producer thread calls cc_csv_next() and copies each row (its line, its
 * outcome, its fields) into a batch; the ingest thread takes full batches
 * and hands their rows out through cc_ingest_next_row(). Four batches turn
 * round a ring: while the ingest thread validates, links and stores the
 * rows of one, the producer reads and splits the next, and computes what
 * depends only on the row and the key (the feed's cc_ingest_ahead_plan):
 * the pseudonyms of its NHS number and postcode, the postcode's LSOA, the
 * record's identity and the person's record key. The ingest thread takes
 * each from the accessors below, which check that it is asked about the
 * row's own value, and computes it itself otherwise. The rows come
 * out in the order read, with the same lines and outcomes as cc_csv_next()
 * would give, so rejects, counts, kill points and the link trace are those
 * of a run without it (a test compares whole runs byte for byte).
 *
 * Only the producer touches the cc_csv between cc_ingest_ahead_start() and
 * the end of the feed (or cc_ingest_close_feed(), which stops it first),
 * and the run's producer memo of postcodes (one producer at a time: each
 * is joined before the next starts); it reads the key and the builder's
 * area lookup, which nothing changes while patient feeds are read. The
 * batches are the only shared state, handed over under one mutex.
 *
 * Must never: keep a field after its batch is reused or freed (the bytes
 * are wiped: they include NHS numbers and postcodes, never names, which the
 * reader drops before they reach a row).
 */
#include "cc_ingest_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cc_error.h"
#include "cc_store.h"
#include "cc_validate.h"

/* Rows per batch, and the bytes of fields after which a batch is handed
 * over early: about 256 KiB per batch, L2-sized on this machine. */
#define AHEAD_ROWS 2048
#define AHEAD_BYTES (256u << 10)
#define AHEAD_BATCHES 4
/* The reading thread's own lag between the two steps of preparing a row
 * (prepare_row_start, prepare_row_finish). */
#define AHEAD_LAG 8
/* The look-ahead (cc_ingest_internal.h): how many rows before the ingest
 * thread reaches a row it asks for the row's table slots (far), and for
 * what the person slot names (near). A row takes that thread about a
 * microsecond, a miss to memory a tenth of one: four rows leave room. */
#define AHEAD_LOOK_FAR 8
#define AHEAD_LOOK_NEAR 4
/* The field offset of a dropped column (cc_csv_next gives it as NULL). */
#define AHEAD_NULL UINT32_MAX

struct ahead_row {
    /* the row's NHS number, when its feed has the column and the number is
     * valid, and its pseudonym: the keyed hash is computed here, on the
     * reading thread (cc_ingest_ahead_nhs) */
    int nhs_valid;
    char nhs[CC_NHS_NUMBER_DIGITS];
    cc_pseudonym person;
    uint32_t record_key; /* of person, when the plan asks for it */
    /* the row's postcode, when its feed has the column and the postcode is
     * valid: canonical, its pseudonym and its LSOA (-1: not in the lookup) */
    int postcode_valid;
    uint8_t postcode_len;
    char postcode[CC_POSTCODE_BYTES];
    cc_pseudonym postcode_pseudonym;
    int32_t lsoa;
    /* the record's identity (the keyed hash of its feed's own key) */
    int identity_valid;
    uint8_t identity[CC_FEED_IDENTITY_BYTES];
    uint64_t line;
    uint64_t bytes_read; /* the reader's position after this row, for progress */
    int rc;              /* cc_csv_next's: 1, or CC_EPARSE with problem */
    int problem;
    size_t first_field; /* into fields */
};

struct ahead_field {
    uint32_t offset; /* into bytes, or AHEAD_NULL */
    uint32_t len;
};

struct ahead_batch {
    struct ahead_row rows[AHEAD_ROWS];
    size_t n_rows;
    struct ahead_field *fields;
    size_t n_fields, fields_cap;
    unsigned char *bytes;
    size_t n_bytes, bytes_cap;
    int end;     /* the feed ends after these rows: with end_rc (0 or a CC_E* code) */
    int end_rc;
    int full;    /* handed to the ingest thread */
};

/* A postcode's facts in the producer memo. */
struct postcode_facts {
    cc_pseudonym pseudonym;
    int32_t lsoa;
};
_Static_assert(sizeof(struct postcode_facts) == sizeof(cc_pseudonym) + sizeof(int32_t),
               "the memo's value size (cc_ingest_run)");

struct cc_ingest_ahead {
    cc_csv *csv;
    size_t n_columns;
    const cc_pseudo_key *key;
    /* its area lookup, read by the producer; its person table, read by the
     * ingest thread when it looks ahead */
    const cc_store_builder *builder;
    struct cc_ingest_ahead_plan plan;
    struct cc_u64_map *postcode_memo; /* struct postcode_facts values */
    /* the producer's memo of recent NHS numbers (as the ingest thread's,
     * cc_ingest_ctx.nhs_recent) */
    uint64_t recent_key[CC_NHS_RECENT];
    cc_pseudonym recent[CC_NHS_RECENT];
    const struct ahead_row *current; /* the row last handed out */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int stop; /* the ingest thread is done with the feed */
    struct ahead_batch batches[AHEAD_BATCHES];
    size_t produce, consume; /* batch indices, modulo AHEAD_BATCHES */
    size_t cursor;           /* next row of the batch being consumed */
    int consuming;           /* batches[consume] is full and being handed out */
    struct cc_csv_field *out; /* [n_columns] */
    uint64_t bytes_read;      /* of the last row handed out */
};

/* Grows a block that holds identifiers: the old one is wiped, not left to
 * realloc(3). */
static int grow_wiped(void **block, size_t *cap, size_t used, size_t need, size_t size)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    if (cap2 > SIZE_MAX / size)
        return CC_ENOMEM;
    void *bigger = malloc(cap2 * size);
    if (!bigger)
        return CC_ENOMEM;
    if (*block) {
        memcpy(bigger, *block, used * size);
        sodium_memzero(*block, *cap * size);
        free(*block);
    }
    *block = bigger;
    *cap = cap2;
    return 0;
}

/* The field of column c, or NULL when the plan has no such column. */
static const struct cc_csv_field *plan_field(const struct cc_ingest_ahead *a,
                                             const struct cc_csv_field *fields, int c)
{
    return c >= 0 && (size_t)c < a->n_columns && fields[c].data && fields[c].len ? &fields[c]
                                                                                 : NULL;
}

/* A canonical postcode's pseudonym and LSOA, from the producer memo when it
 * was seen before in this run. */
static void postcode_facts(struct cc_ingest_ahead *a, const char *canonical, size_t len,
                           cc_pseudonym *pseudonym, int32_t *lsoa)
{
    struct cc_u64_map *memo = a->postcode_memo;
    uint64_t packed = cc_postcode_pack(canonical, len);
    int memo_ok = packed && (!cc_u64_map_full(memo) ||
                             cc_u64_map_reserve(memo, memo->n + 1, 1 << 16) == 0);
    uint64_t at = memo_ok ? cc_u64_map_slot(memo, packed) : 0;
    struct postcode_facts facts;
    if (memo_ok && memo->keys[at]) {
        memcpy(&facts, cc_u64_map_value(memo, at), sizeof facts);
    } else {
        cc_pseudo_postcode(a->key, canonical, len, &facts.pseudonym);
        facts.lsoa = cc_store_builder_postcode_lsoa(a->builder, canonical, len);
        if (memo_ok) {
            cc_u64_map_put(memo, at, packed);
            memcpy(cc_u64_map_value(memo, at), &facts, sizeof facts);
        }
    }
    *pseudonym = facts.pseudonym;
    *lsoa = facts.lsoa;
}

/* The field of column c of row r in batch b (copied there by add_row), or
 * NULL when the plan has no such column or the row leaves it empty. */
static const char *batch_field(const struct cc_ingest_ahead *a, const struct ahead_batch *b,
                               const struct ahead_row *r, int c, size_t *len)
{
    if (c < 0 || (size_t)c >= a->n_columns)
        return NULL;
    const struct ahead_field *f = &b->fields[r->first_field + (size_t)c];
    if (f->offset == AHEAD_NULL || !f->len)
        return NULL;
    *len = f->len;
    return (const char *)b->bytes + f->offset;
}

/* What the plan asks of a well-formed row, on the reading thread, in two
 * steps AHEAD_LAG rows apart: the first checks the row's NHS number and
 * postcode and asks the caches for the postcode's slot in the memo (a
 * table too large for them: one miss to memory per row, the reading
 * thread's largest cost, when taken in turn); the second computes the
 * keyed hashes and takes the memo's facts. Each value is marked valid
 * only when the row's is. */
static void prepare_row_start(struct cc_ingest_ahead *a, struct ahead_row *r,
                              const struct cc_csv_field *fields)
{
    const struct cc_csv_field *f;
    r->nhs_valid = 0;
    r->postcode_valid = 0;
    r->identity_valid = 0;
    if ((f = plan_field(a, fields, a->plan.nhs)) &&
        cc_validate_nhs_number(f->data, f->len, r->nhs) == 0)
        r->nhs_valid = 1;
    size_t len = 0;
    if ((f = plan_field(a, fields, a->plan.postcode)) &&
        cc_validate_postcode(f->data, f->len, r->postcode, &len) == 0) {
        r->postcode_len = (uint8_t)len;
        r->postcode_valid = 1;
        uint64_t packed = cc_postcode_pack(r->postcode, len);
        if (packed && a->postcode_memo->keys)
            cc_u64_map_prefetch(a->postcode_memo, packed);
    }
}

static void prepare_row_finish(struct cc_ingest_ahead *a, const struct ahead_batch *b,
                               struct ahead_row *r)
{
    if (r->nhs_valid) {
        uint64_t packed = 1;
        for (int i = 0; i < CC_NHS_NUMBER_DIGITS; i++)
            packed = packed * 10 + (uint64_t)(r->nhs[i] - '0');
        uint64_t slot = (packed * 0x9e3779b97f4a7c15ULL) >> 52; /* 12 bits */
        if (a->recent_key[slot] != packed) {
            cc_pseudo_nhs(a->key, r->nhs, &a->recent[slot]);
            a->recent_key[slot] = packed;
        }
        r->person = a->recent[slot];
        if (a->plan.record_key)
            r->record_key = cc_pseudo_record_key(a->key, &r->person);
    }
    if (r->postcode_valid)
        postcode_facts(a, r->postcode, r->postcode_len, &r->postcode_pseudonym, &r->lsoa);
    const char *key;
    size_t len = 0;
    if (!a->plan.identity_on_ingest_thread &&
        (key = batch_field(a, b, r, a->plan.identity, &len))) {
        cc_pseudo_record_identity(a->key, a->plan.identity_source, key, len, r->identity);
        r->identity_valid = 1;
    }
}

/* Copies the row cc_csv_next gave into b: 0, or CC_ENOMEM / CC_ETOOBIG. */
static int add_row(struct cc_ingest_ahead *a, struct ahead_batch *b, int rc,
                   const struct cc_csv_field *fields, uint64_t line)
{
    struct ahead_row *r = &b->rows[b->n_rows];
    r->line = line;
    r->rc = rc;
    r->problem = rc == CC_EPARSE ? cc_csv_problem(a->csv, NULL) : 0;
    r->first_field = 0;
    r->bytes_read = cc_csv_bytes_read(a->csv);
    if (rc == 1) {
        size_t first = b->n_fields;
        int grc = grow_wiped((void **)&b->fields, &b->fields_cap, first, first + a->n_columns,
                             sizeof *b->fields);
        if (grc < 0)
            return grc;
        size_t need = b->n_bytes;
        for (size_t i = 0; i < a->n_columns; i++)
            need += fields[i].len;
        if (need > UINT32_MAX - 1)
            return CC_ETOOBIG;
        if ((grc = grow_wiped((void **)&b->bytes, &b->bytes_cap, b->n_bytes, need, 1)) < 0)
            return grc;
        for (size_t i = 0; i < a->n_columns; i++) {
            struct ahead_field *f = &b->fields[first + i];
            if (!fields[i].data) {
                f->offset = AHEAD_NULL;
                f->len = 0;
                continue;
            }
            f->offset = (uint32_t)b->n_bytes;
            f->len = (uint32_t)fields[i].len;
            memcpy(b->bytes + b->n_bytes, fields[i].data, fields[i].len);
            b->n_bytes += fields[i].len;
        }
        r->first_field = first;
        b->n_fields = first + a->n_columns;
        prepare_row_start(a, r, fields);
    }
    b->n_rows++;
    return 0;
}

static void *producer(void *arg)
{
    struct cc_ingest_ahead *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->lock);
        struct ahead_batch *b = &a->batches[a->produce];
        while (b->full && !a->stop)
            pthread_cond_wait(&a->changed, &a->lock);
        int stop = a->stop;
        pthread_mutex_unlock(&a->lock);
        if (stop)
            return NULL;
        /* b is the producer's until it is marked full */
        if (b->bytes)
            sodium_memzero(b->bytes, b->n_bytes);
        sodium_memzero(b->rows, b->n_rows * sizeof *b->rows);
        b->n_rows = 0;
        b->n_fields = 0;
        b->n_bytes = 0;
        b->end = 0;
        b->end_rc = 0;
        size_t finished = 0; /* rows of b whose second step is done */
        while (b->n_rows < AHEAD_ROWS && b->n_bytes < AHEAD_BYTES) {
            for (; finished + AHEAD_LAG < b->n_rows; finished++)
                if (b->rows[finished].rc == 1)
                    prepare_row_finish(a, b, &b->rows[finished]);
            const struct cc_csv_field *fields;
            uint64_t line = 0;
            int rc = cc_csv_next(a->csv, &fields, &line);
            if (rc == 1 || rc == CC_EPARSE)
                rc = add_row(a, b, rc, fields, line);
            else {
                b->end = 1;
                b->end_rc = rc; /* 0 at the end of the feed, or the reader's error */
                break;
            }
            if (rc < 0) {
                b->end = 1;
                b->end_rc = rc;
                break;
            }
        }
        for (; finished < b->n_rows; finished++)
            if (b->rows[finished].rc == 1)
                prepare_row_finish(a, b, &b->rows[finished]);
        pthread_mutex_lock(&a->lock);
        b->full = 1;
        a->produce = (a->produce + 1) % AHEAD_BATCHES;
        pthread_cond_broadcast(&a->changed);
        pthread_mutex_unlock(&a->lock);
        if (b->end)
            return NULL;
    }
}

static void ahead_free(struct cc_ingest_ahead *a)
{
    for (size_t i = 0; i < AHEAD_BATCHES; i++) {
        struct ahead_batch *b = &a->batches[i];
        if (b->bytes)
            sodium_memzero(b->bytes, b->bytes_cap);
        sodium_memzero(b->rows, sizeof b->rows);
        free(b->bytes);
        free(b->fields);
    }
    if (a->out)
        sodium_memzero(a->out, a->n_columns * sizeof *a->out);
    free(a->out);
    sodium_memzero(a->recent_key, sizeof a->recent_key);
    sodium_memzero(a->recent, sizeof a->recent);
    pthread_cond_destroy(&a->changed);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int cc_ingest_ahead_start(struct cc_ingest_ctx *ctx, cc_csv *csv,
                          const struct cc_ingest_ahead_plan *plan)
{
    if (ctx->ahead)
        return CC_EINVAL; /* one feed at a time */
    if (ctx->one_thread)
        return 0;
    struct cc_ingest_ahead *a = calloc(1, sizeof *a);
    if (!a)
        return CC_ENOMEM;
    a->csv = csv;
    a->n_columns = cc_csv_n_columns(csv);
    a->key = ctx->key;
    a->builder = ctx->builder;
    a->plan = *plan;
    a->postcode_memo = &ctx->ahead_postcode_memo;
    a->out = calloc(a->n_columns ? a->n_columns : 1, sizeof *a->out);
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->changed, NULL);
    if (!a->out || pthread_create(&a->thread, NULL, producer, a) != 0) {
        ahead_free(a);
        return 0; /* no second thread: the feed is read on this one, as before */
    }
    ctx->ahead = a;
    return 0;
}

/* The look-ahead at row i of b, on the ingest thread (which owns b while it
 * hands b's rows out): step 0 asks for the row's slots, computing its
 * identity first when the plan leaves that to this thread; step 1 for what
 * the person slot names. */
static void look_ahead(struct cc_ingest_ahead *a, struct ahead_batch *b, size_t i, int step)
{
    if (i >= b->n_rows)
        return;
    struct ahead_row *r = &b->rows[i];
    if (r->rc != 1)
        return;
    if (r->nhs_valid)
        cc_store_builder_prefetch_person(a->builder, &r->person, step);
    if (step != 0)
        return;
    const char *key;
    size_t len = 0;
    if (!r->identity_valid && a->plan.identity_on_ingest_thread &&
        (key = batch_field(a, b, r, a->plan.identity, &len))) {
        cc_pseudo_record_identity(a->key, a->plan.identity_source, key, len, r->identity);
        r->identity_valid = 1;
    }
    if (!r->identity_valid)
        return;
    uint64_t x, y;
    memcpy(&x, r->identity, 8);
    memcpy(&y, r->identity + 8, 8);
    for (size_t k = 0; k < 2; k++)
        if (a->plan.identity_sets[k])
            cc_seen_set_prefetch(a->plan.identity_sets[k], x, y);
}

int cc_ingest_ahead_next(struct cc_ingest_ctx *ctx, const struct cc_csv_field **fields,
                         uint64_t *line, int *problem)
{
    struct cc_ingest_ahead *a = ctx->ahead;
    *fields = NULL;
    for (;;) {
        if (!a->consuming) {
            pthread_mutex_lock(&a->lock);
            while (!a->batches[a->consume].full)
                pthread_cond_wait(&a->changed, &a->lock);
            pthread_mutex_unlock(&a->lock);
            a->consuming = 1;
            a->cursor = 0;
            struct ahead_batch *fresh = &a->batches[a->consume];
            for (size_t i = 0; i < AHEAD_LOOK_FAR; i++)
                look_ahead(a, fresh, i, 0);
            for (size_t i = 0; i < AHEAD_LOOK_NEAR; i++)
                look_ahead(a, fresh, i, 1);
        }
        struct ahead_batch *b = &a->batches[a->consume];
        if (a->cursor < b->n_rows) {
            look_ahead(a, b, a->cursor + AHEAD_LOOK_FAR, 0);
            look_ahead(a, b, a->cursor + AHEAD_LOOK_NEAR, 1);
            const struct ahead_row *r = &b->rows[a->cursor++];
            a->current = r;
            *line = r->line;
            a->bytes_read = r->bytes_read;
            if (r->rc != 1) {
                *problem = r->problem;
                return r->rc;
            }
            for (size_t i = 0; i < a->n_columns; i++) {
                const struct ahead_field *f = &b->fields[r->first_field + i];
                a->out[i] = f->offset == AHEAD_NULL
                                ? (struct cc_csv_field){NULL, 0}
                                : (struct cc_csv_field){(const char *)b->bytes + f->offset,
                                                        f->len};
            }
            *fields = a->out;
            return 1;
        }
        if (b->end)
            return b->end_rc; /* stays at the end: every later call says the same */
        /* every row of b handed out, and the caller is done with the last
         * (it asked for the next): b goes back to the producer */
        a->current = NULL;
        pthread_mutex_lock(&a->lock);
        b->full = 0;
        a->consume = (a->consume + 1) % AHEAD_BATCHES;
        a->consuming = 0;
        pthread_cond_broadcast(&a->changed);
        pthread_mutex_unlock(&a->lock);
    }
}

int cc_ingest_ahead_nhs(const struct cc_ingest_ctx *ctx,
                        const char digits[CC_NHS_NUMBER_DIGITS], cc_pseudonym *out)
{
    const struct cc_ingest_ahead *a = ctx->ahead;
    if (!a || !a->current || !a->current->nhs_valid ||
        memcmp(a->current->nhs, digits, CC_NHS_NUMBER_DIGITS) != 0)
        return 0;
    *out = a->current->person;
    return 1;
}

int cc_ingest_ahead_record_key(const struct cc_ingest_ctx *ctx, const cc_pseudonym *person,
                               uint32_t *out)
{
    const struct cc_ingest_ahead *a = ctx->ahead;
    if (!a || !a->current || !a->current->nhs_valid || !a->plan.record_key ||
        memcmp(a->current->person.bytes, person->bytes, sizeof person->bytes) != 0)
        return 0;
    *out = a->current->record_key;
    return 1;
}

int cc_ingest_ahead_postcode(const struct cc_ingest_ctx *ctx, const char *canonical, size_t len,
                             cc_pseudonym *pseudonym, int32_t *lsoa)
{
    const struct cc_ingest_ahead *a = ctx->ahead;
    if (!a || !a->current || !a->current->postcode_valid || a->current->postcode_len != len ||
        memcmp(a->current->postcode, canonical, len) != 0)
        return 0;
    *pseudonym = a->current->postcode_pseudonym;
    *lsoa = a->current->lsoa;
    return 1;
}

int cc_ingest_ahead_identity(const struct cc_ingest_ctx *ctx, uint8_t source,
                             const struct cc_csv_field *key, uint8_t out[CC_FEED_IDENTITY_BYTES])
{
    const struct cc_ingest_ahead *a = ctx->ahead;
    if (!a || !a->current || !a->current->identity_valid || source != a->plan.identity_source ||
        a->plan.identity < 0 || key->data != a->out[a->plan.identity].data ||
        key->len != a->out[a->plan.identity].len)
        return 0;
    memcpy(out, a->current->identity, CC_FEED_IDENTITY_BYTES);
    return 1;
}

uint64_t cc_ingest_ahead_bytes_read(const struct cc_ingest_ctx *ctx)
{
    return ctx->ahead->bytes_read;
}

void cc_ingest_close_feed(struct cc_ingest_ctx *ctx, cc_csv *csv)
{
    struct cc_ingest_ahead *a = ctx->ahead;
    if (a && a->csv == csv) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_broadcast(&a->changed);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
        ahead_free(a);
        ctx->ahead = NULL;
    }
    cc_csv_close(csv);
}
