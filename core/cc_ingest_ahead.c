/*
 * cc_ingest_ahead.c: reading a feed ahead on the second core (see
 * cc_ingest_internal.h, "Read-ahead").
 *
 * A producer thread calls cc_csv_next() and copies each row (its line, its
 * outcome, its fields) into a batch; the ingest thread takes full batches
 * and hands their rows out through cc_ingest_next_row(). Four batches turn
 * round a ring: while the ingest thread validates, pseudonymises and links
 * the rows of one, the producer reads and splits the next. The rows come
 * out in the order read, with the same lines and outcomes as cc_csv_next()
 * would give, so rejects, counts, kill points and the link trace are those
 * of a run without it (a test compares whole runs byte for byte).
 *
 * Only the producer touches the cc_csv between cc_ingest_ahead_start() and
 * the end of the feed (or cc_ingest_close_feed(), which stops it first);
 * the batches are the only shared state, handed over under one mutex.
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
#include "cc_validate.h"

/* Rows per batch, and the bytes of fields after which a batch is handed
 * over early: about 256 KiB per batch, L2-sized on this machine. */
#define AHEAD_ROWS 2048
#define AHEAD_BYTES (256u << 10)
#define AHEAD_BATCHES 4
/* The field offset of a dropped column (cc_csv_next gives it as NULL). */
#define AHEAD_NULL UINT32_MAX

struct ahead_row {
    /* the row's NHS number, when its feed has the column and the number is
     * valid, and its pseudonym: the keyed hash is computed here, on the
     * reading thread (cc_ingest_ahead_nhs) */
    int nhs_valid;
    char nhs[CC_NHS_NUMBER_DIGITS];
    cc_pseudonym person;
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

struct cc_ingest_ahead {
    cc_csv *csv;
    size_t n_columns;
    const cc_pseudo_key *key;
    int nhs_column; /* -1: none */
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
        r->nhs_valid = 0;
        if (a->nhs_column >= 0 && (size_t)a->nhs_column < a->n_columns &&
            fields[a->nhs_column].len &&
            cc_validate_nhs_number(fields[a->nhs_column].data, fields[a->nhs_column].len,
                                   r->nhs) == 0) {
            uint64_t packed = 1;
            for (int i = 0; i < CC_NHS_NUMBER_DIGITS; i++)
                packed = packed * 10 + (uint64_t)(r->nhs[i] - '0');
            uint64_t slot = (packed * 0x9e3779b97f4a7c15ULL) >> 52; /* 12 bits */
            if (a->recent_key[slot] != packed) {
                cc_pseudo_nhs(a->key, r->nhs, &a->recent[slot]);
                a->recent_key[slot] = packed;
            }
            r->person = a->recent[slot];
            r->nhs_valid = 1;
        }
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
        while (b->n_rows < AHEAD_ROWS && b->n_bytes < AHEAD_BYTES) {
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

int cc_ingest_ahead_start(struct cc_ingest_ctx *ctx, cc_csv *csv, int nhs_column)
{
    if (ctx->ahead)
        return CC_EINVAL; /* one feed at a time */
    struct cc_ingest_ahead *a = calloc(1, sizeof *a);
    if (!a)
        return CC_ENOMEM;
    a->csv = csv;
    a->n_columns = cc_csv_n_columns(csv);
    a->key = ctx->key;
    a->nhs_column = nhs_column;
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
        }
        struct ahead_batch *b = &a->batches[a->consume];
        if (a->cursor < b->n_rows) {
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
