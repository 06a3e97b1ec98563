/*
 * cc_csv.c: the streaming CSV reader (see cc_csv.h), over libcsv.
 *
 * How a row travels: read(2) fills a 1 MiB read buffer, which is split into
 * lines at unquoted line feeds. A line with no quote and no carriage return
 * (except before its LF), the bulk of any feed, is split at commas here and
 * its fields are referenced where they lie in the read buffer. Every other
 * line, and every line of a row that libcsv has begun (a quoted field that
 * spans lines), goes through libcsv, which unquotes it and calls
 * field_done() with the field in its own entry buffer; those fields are
 * copied into the batch (a flat byte array). Both paths end in add_field(),
 * which keeps a table of spans per row, and row_done(). libcsv alone does
 * about 130-180 MB/s on this machine; the split keeps its quoting logic and
 * passes 250 MB/s on plain lines. A test checks both paths agree with libcsv
 * on thousands of random documents.
 *
 * cc_csv_next() hands out the rows of the batch one by one; when they are
 * used up, the row still in progress (always a libcsv row, held in the
 * batch) moves to the front, the unparsed tail of the read buffer moves to
 * its front, and the next read fills the rest.
 *
 * Where dropped bytes could linger, and why they do not: a dropped field is
 * wiped where it lies (in the read buffer, or in libcsv's entry buffer) as
 * soon as its end is seen; bytes given to libcsv are wiped from the read
 * buffer once parsed; libcsv's entry buffer grows through buffer_realloc(),
 * which wipes the old block instead of leaving it to realloc(3); the batch
 * never receives them.
 *
 * Strict quoting: libcsv runs with CSV_STRICT, so it stops at a stray
 * quote. The row it was in is rejected (reject_quoted_row) and reading
 * resumes after the line feed of the line the row began on: in the read
 * buffer when those bytes are still there, otherwise by reading the source
 * again from that line (rewind_source) once the rows before it are handed
 * out. A quote left open thus costs one rejected row, never the rows it
 * swallowed. Each rewind resumes past the rejected row's first line, so
 * reading always moves forward.
 *
 * Line numbers: libcsv does not report positions, so the reader counts line
 * feeds itself: CSV_REPALL_NL makes libcsv report every unquoted line end
 * (row_done() with c == '\n', also for the LF of a CRLF and for blank lines),
 * and quoted line feeds are counted inside each field.
 *
 * Must never: print, log or keep a field's value.
 */
#include "cc_csv.h"
#include "cc_array.h"
#include "cc_error.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* libcsv grows its field buffer in steps of this many bytes. */
#define ENTRY_GROWTH_BYTES 4096
/* A span offset that marks a dropped column's field. */
#define SPAN_DROPPED SIZE_MAX
/* Initial size of the batch's byte array (it grows for long libcsv rows). */
#define BATCH_INITIAL_BYTES (64u << 10)
/* The bit of a span offset that says it points into the read buffer. */
#define SPAN_IN_READ_BUFFER ((SIZE_MAX >> 1) + 1)

/* Where a field's bytes lie: rows split directly (the bulk) point into the
 * read buffer, which stays put until every row from it has been handed out;
 * rows that went through libcsv are copied into batch_data. */
struct span {
    size_t offset; /* into batch_data, | SPAN_IN_READ_BUFFER, or SPAN_DROPPED */
    size_t len;
};

struct row {
    size_t first_span; /* index into spans */
    uint64_t line;     /* physical line the row starts on */
    size_t n_fields;   /* as read (a malformed row's count may differ) */
    int problem;       /* 0, or the enum cc_csv_problem that makes it malformed */
};

/* libcsv runs in strict mode: a quote in an unquoted field, or anything but
 * a delimiter, a line end or blanks after a closing quote, stops it. */
#define LIBCSV_OPTIONS (CSV_REPALL_NL | CSV_STRICT)

struct cc_csv {
    /* the source: a file descriptor, or a block of memory */
    int fd;
    int owns_fd;
    int seekable;
    uint64_t fd_start; /* the fd's offset when the reader took it */
    const unsigned char *memory;
    size_t memory_len;
    uint64_t file_bytes;
    uint64_t bytes_read; /* the source's position: bytes read so far */

    /* A malformed quoted field rejects its row and reading resumes at the
     * line after the row's first line, where the fields it swallowed begin:
     * chunk_offset is the source offset of the bytes given to libcsv now,
     * row_chunk_offset that of the bytes its current row began in. When
     * those bytes have left the read buffer, the source is read again from
     * rewind_offset once the batch is handed out, skipping to the next line
     * feed. */
    uint64_t chunk_offset, row_chunk_offset, rewind_offset;
    int rewind_pending;
    int skip_to_line_feed;
    int problem;          /* of the last malformed row handed out */
    size_t problem_fields;
    int end_of_file; /* read(2) returned 0 and csv_fini() has run */
    int error;       /* sticky stop error (CC_ENOMEM, CC_ETOOBIG, CC_EPARSE header) */

    struct csv_parser parser;
    int parser_ready;

    unsigned char *read_buffer; /* CC_CSV_READ_BUFFER_BYTES */
    size_t read_len;            /* bytes in read_buffer */
    size_t read_pos;            /* bytes of it already given to libcsv */

    /* The header. column_names[i] points into names_block. */
    size_t n_columns;
    char **column_names;
    char *names_block;
    uint8_t *dropped; /* [n_columns] */
    int any_dropped;
    int header_done;
    int rows_started; /* cc_csv_next() has parsed data rows: no more drops */
    int libcsv_in_row;          /* libcsv has begun a row it has not ended */
    int saw_unquoted_line_feed; /* row_done() saw '\n' since the last csv_parse */

    /* The batch: fields of the rows parsed from the current read buffer. */
    char *batch_data;
    size_t batch_len, batch_cap;
    struct span *spans;
    size_t n_spans, spans_cap;
    struct row *rows;
    size_t n_rows, rows_cap;
    size_t row_cursor; /* next row of the batch to hand out */

    /* The row in progress (its fields are the batch's last spans). */
    int row_open;
    size_t row_first_span;
    size_t row_data_start;
    size_t row_n_fields;
    uint64_t row_line;
    int row_bad_utf8;

    uint64_t line; /* 1-based physical line the parser is on */

    struct cc_csv_field *out_fields; /* [n_columns], what next() returns */
};

/* --- libcsv's field buffer: allocations that wipe what they release ------ */

/* Each block carries its capacity in a header so that realloc and free can
 * wipe the whole block; libcsv's allocator hooks pass no size. libcsv grows
 * its buffer by a fixed step, which would copy a long field over and over;
 * the capacity doubles instead and a request that fits is answered in place. */
struct block_header {
    size_t capacity;
    size_t pad_; /* keeps the payload 16-byte aligned */
};

static void *buffer_realloc(void *old, size_t size)
{
    if (size > CC_CSV_MAX_ROW_BYTES)
        return NULL; /* libcsv reports CSV_ENOMEM; the reader says CC_ETOOBIG */
    struct block_header *previous = old ? (struct block_header *)old - 1 : NULL;
    if (previous && size <= previous->capacity)
        return old;
    size_t capacity = previous ? 2 * previous->capacity : size;
    if (capacity < size)
        capacity = size;
    if (capacity > CC_CSV_MAX_ROW_BYTES)
        capacity = CC_CSV_MAX_ROW_BYTES;
    struct block_header *fresh = malloc(sizeof *fresh + capacity);
    if (!fresh)
        return NULL;
    fresh->capacity = capacity;
    if (previous) {
        memcpy(fresh + 1, old, previous->capacity);
        sodium_memzero(previous, sizeof *previous + previous->capacity);
        free(previous);
    }
    return fresh + 1;
}

static void buffer_free(void *block)
{
    if (!block)
        return;
    struct block_header *header = (struct block_header *)block - 1;
    sodium_memzero(header, sizeof *header + header->capacity);
    free(header);
}

/* --- field checks --------------------------------------------------------- */

/* Returns 1 if s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned min_second = 0x80, max_second = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                min_second = 0xA0; /* overlong */
            if (c == 0xED)
                max_second = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                min_second = 0x90; /* overlong */
            if (c == 0xF4)
                max_second = 0x8F; /* above U+10FFFF */
        } else {
            return 0;
        }
        if (len - i - 1 < n)
            return 0;
        if (s[i + 1] < min_second || s[i + 1] > max_second)
            return 0;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
        i += n + 1;
    }
    return 1;
}

/* Counts line feeds in s[0..len) and reports whether every byte is ASCII,
 * eight bytes at a time: fields are short and this runs for every one. */
static uint64_t scan_field(const unsigned char *s, size_t len, int *all_ascii)
{
    const uint64_t high_bits = 0x8080808080808080ull;
    const uint64_t low_bits = 0x0101010101010101ull;
    const uint64_t line_feeds = 0x0A0A0A0A0A0A0A0Aull;
    uint64_t n_line_feeds = 0;
    uint64_t any_high = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        any_high |= word;
        uint64_t x = word ^ line_feeds; /* a zero byte where s had '\n' */
        if ((x - low_bits) & ~x & high_bits) {
            for (size_t k = 0; k < 8; k++)
                n_line_feeds += s[i + k] == '\n';
        }
    }
    for (; i < len; i++) {
        any_high |= s[i];
        n_line_feeds += s[i] == '\n';
    }
    *all_ascii = (any_high & high_bits) == 0;
    return n_line_feeds;
}

/* --- the batch ------------------------------------------------------------ */

static void open_row(cc_csv *csv)
{
    csv->row_open = 1;
    csv->row_first_span = csv->n_spans;
    csv->row_data_start = csv->batch_len;
    csv->row_n_fields = 0;
    csv->row_line = csv->line;
    csv->row_bad_utf8 = 0;
}

/* Grows the batch's byte array to hold need bytes (rarely taken: the batch
 * keeps its capacity from one read buffer to the next). */
static int grow_batch_data(cc_csv *csv, size_t need)
{
    return cc_array_reserve(&csv->batch_data, &csv->batch_cap, need, 1);
}

/* The bytes of a span that is not SPAN_DROPPED. */
static const char *span_data(const cc_csv *csv, const struct span *sp)
{
    if (sp->offset & SPAN_IN_READ_BUFFER)
        return (const char *)csv->read_buffer + (sp->offset & ~SPAN_IN_READ_BUFFER);
    return csv->batch_data + sp->offset;
}

/* Adds one field of the current row (the caller has checked its UTF-8). A
 * dropped column's field is wiped where it lies and not kept. A field in the
 * read buffer is referenced; any other (libcsv's field buffer) is copied. */
static void add_field(cc_csv *csv, char *field, size_t len)
{
    if (!csv->row_open)
        open_row(csv);
    size_t index = csv->row_n_fields++;
    if (csv->header_done && index >= csv->n_columns) {
        return; /* too many fields (close_row says so): nothing more to keep */
    }
    if (csv->n_spans == csv->spans_cap &&
        cc_array_reserve(&csv->spans, &csv->spans_cap, csv->n_spans + 1, sizeof *csv->spans)) {
        csv->error = CC_ENOMEM;
        return;
    }
    if (csv->header_done && csv->dropped[index]) {
        sodium_memzero(field, len);
        csv->spans[csv->n_spans++] = (struct span){SPAN_DROPPED, 0};
        return;
    }
    uintptr_t address = (uintptr_t)field, buffer = (uintptr_t)csv->read_buffer;
    if (address >= buffer && address < buffer + CC_CSV_READ_BUFFER_BYTES) {
        size_t offset = (size_t)(address - buffer);
        csv->spans[csv->n_spans++] = (struct span){offset | SPAN_IN_READ_BUFFER, len};
        return;
    }
    if (csv->batch_len - csv->row_data_start + len > CC_CSV_MAX_ROW_BYTES) {
        csv->error = CC_ETOOBIG;
        return;
    }
    if (csv->batch_len + len > csv->batch_cap && grow_batch_data(csv, csv->batch_len + len)) {
        csv->error = CC_ENOMEM;
        return;
    }
    memcpy(csv->batch_data + csv->batch_len, field, len);
    csv->spans[csv->n_spans++] = (struct span){csv->batch_len, len};
    csv->batch_len += len;
}

/* libcsv callback: one field of the current row is complete. The field lies
 * in libcsv's entry buffer and may hold quoted line feeds. */
static void field_done(void *field, size_t len, void *context)
{
    cc_csv *csv = context;
    if (csv->error)
        return;
    if (!csv->row_open)
        open_row(csv);
    int all_ascii;
    csv->line += scan_field(field, len, &all_ascii);
    if (!all_ascii && !utf8_valid(field, len))
        csv->row_bad_utf8 = 1;
    add_field(csv, field, len);
}

/* Takes the completed first row as the header. */
static int take_header(cc_csv *csv)
{
    if (csv->row_bad_utf8 || csv->row_n_fields == 0)
        return CC_EPARSE;
    size_t n = csv->row_n_fields;
    size_t names_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const struct span *sp = &csv->spans[csv->row_first_span + i];
        if (sp->len == 0 || memchr(span_data(csv, sp), '\0', sp->len))
            return CC_EPARSE;
        names_bytes += sp->len + 1;
    }
    csv->column_names = calloc(n, sizeof *csv->column_names);
    csv->names_block = malloc(names_bytes);
    csv->dropped = calloc(n, 1);
    csv->out_fields = calloc(n, sizeof *csv->out_fields);
    if (!csv->column_names || !csv->names_block || !csv->dropped || !csv->out_fields)
        return CC_ENOMEM;
    char *cursor = csv->names_block;
    for (size_t i = 0; i < n; i++) {
        const struct span *sp = &csv->spans[csv->row_first_span + i];
        memcpy(cursor, span_data(csv, sp), sp->len);
        cursor[sp->len] = '\0';
        csv->column_names[i] = cursor;
        cursor += sp->len + 1;
        for (size_t k = 0; k < i; k++)
            if (!strcmp(csv->column_names[k], csv->column_names[i]))
                return CC_EPARSE; /* a column named twice */
    }
    csv->n_columns = n;
    csv->header_done = 1;
    return 0;
}

static void close_row(cc_csv *csv)
{
    if (!csv->header_done) {
        int rc = take_header(csv);
        if (rc)
            csv->error = rc;
        /* The header's fields are not rows: drop them from the batch. */
        csv->n_spans = csv->row_first_span;
        csv->batch_len = csv->row_data_start;
        csv->row_open = 0;
        return;
    }
    if (cc_array_reserve(&csv->rows, &csv->rows_cap, csv->n_rows + 1, sizeof *csv->rows)) {
        csv->error = CC_ENOMEM;
        return;
    }
    int problem = csv->row_n_fields != csv->n_columns ? CC_CSV_FIELD_COUNT
                  : csv->row_bad_utf8                 ? CC_CSV_BAD_UTF8
                                                      : 0;
    csv->rows[csv->n_rows++] =
        (struct row){csv->row_first_span, csv->row_line, csv->row_n_fields, problem};
    csv->row_open = 0;
}

/* libcsv callback: the current row ended at c ('\r', '\n', or -1 at end of
 * file), or, with no fields, an empty line ended. */
static void row_done(int c, void *context)
{
    cc_csv *csv = context;
    if (csv->error)
        return;
    if (csv->row_open)
        close_row(csv);
    /* the next row begins in the bytes libcsv is reading now */
    csv->row_chunk_offset = csv->chunk_offset;
    if (c == '\n') {
        csv->line++;
        csv->saw_unquoted_line_feed = 1;
    }
}

/* Moves the row in progress to the front of the batch and forgets the rows
 * already handed out. */
static void compact_batch(cc_csv *csv)
{
    csv->n_rows = 0;
    csv->row_cursor = 0;
    if (!csv->row_open) {
        csv->n_spans = 0;
        csv->batch_len = 0;
        return;
    }
    size_t data_shift = csv->row_data_start;
    size_t n_row_spans = csv->n_spans - csv->row_first_span;
    memmove(csv->batch_data, csv->batch_data + data_shift, csv->batch_len - data_shift);
    memmove(csv->spans, csv->spans + csv->row_first_span, n_row_spans * sizeof *csv->spans);
    for (size_t i = 0; i < n_row_spans; i++)
        if (!(csv->spans[i].offset & SPAN_IN_READ_BUFFER)) /* only libcsv's rows are partial */
            csv->spans[i].offset -= data_shift;
    csv->batch_len -= data_shift;
    csv->n_spans = n_row_spans;
    csv->row_first_span = 0;
    csv->row_data_start = 0;
}

/* --- reading -------------------------------------------------------------- */

/* Reads up to len bytes of the source into dst: the count, 0 at its end, or
 * CC_EIO. */
static long read_source(cc_csv *csv, unsigned char *dst, size_t len)
{
    if (csv->memory) {
        uint64_t left = csv->memory_len - csv->bytes_read;
        size_t n = left < len ? (size_t)left : len;
        memcpy(dst, csv->memory + csv->bytes_read, n);
        return (long)n;
    }
    for (;;) {
        ssize_t n = read(csv->fd, dst, len);
        if (n >= 0)
            return (long)n;
        if (errno != EINTR)
            return CC_EIO;
    }
}

/* Moves the unparsed tail of the read buffer to its front and fills the rest
 * from the source. Returns the number of new bytes (0 at end of file) or
 * CC_EIO. */
static long fill_read_buffer(cc_csv *csv)
{
    size_t tail = csv->read_len - csv->read_pos;
    if (csv->read_pos > 0) {
        memmove(csv->read_buffer, csv->read_buffer + csv->read_pos, tail);
        if (csv->any_dropped)
            sodium_memzero(csv->read_buffer + tail, csv->read_len - tail);
    }
    csv->read_pos = 0;
    csv->read_len = tail;
    size_t filled = 0;
    while (tail + filled < CC_CSV_READ_BUFFER_BYTES) {
        long n = read_source(csv, csv->read_buffer + tail + filled,
                             CC_CSV_READ_BUFFER_BYTES - tail - filled);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        filled += (size_t)n;
        csv->bytes_read += (uint64_t)n;
    }
    csv->read_len = tail + filled;
    return (long)filled;
}

/* The source offset of read_buffer[0]. */
static uint64_t buffer_offset(const cc_csv *csv)
{
    return csv->bytes_read - csv->read_len;
}

/* Returns libcsv to the start of a row, wiping its field buffer (it may
 * hold part of a dropped field). */
static void reset_libcsv(cc_csv *csv)
{
    csv_set_opts(&csv->parser, LIBCSV_OPTIONS);
    (void)csv_fini(&csv->parser, NULL, NULL, NULL); /* no callbacks: only resets */
    if (csv->parser.entry_buf)
        sodium_memzero(csv->parser.entry_buf,
                       ((const struct block_header *)csv->parser.entry_buf - 1)->capacity);
}

/* libcsv stopped at a malformed quoted field (a stray quote, or a quote
 * still open at the end of the file) in the row it was reading: that row is
 * rejected on the line it starts on, and reading resumes at the line after
 * it, so a quote left open cannot swallow the rows that follow. Returns 0
 * or a stop error (a malformed header stops the read). */
static int reject_quoted_row(cc_csv *csv)
{
    uint64_t line = csv->row_open ? csv->row_line : csv->line;
    if (csv->row_open) { /* forget the fields it had so far */
        csv->n_spans = csv->row_first_span;
        csv->batch_len = csv->row_data_start;
        csv->row_open = 0;
    }
    reset_libcsv(csv);
    if (!csv->header_done)
        return csv->error = CC_EPARSE;
    if (cc_array_reserve(&csv->rows, &csv->rows_cap, csv->n_rows + 1, sizeof *csv->rows))
        return csv->error = CC_ENOMEM;
    csv->rows[csv->n_rows++] = (struct row){csv->n_spans, line, 0, CC_CSV_BAD_QUOTE};
    csv->line = line + 1;
    csv->libcsv_in_row = 0;
    /* The row began on one line of the read buffer (or before it); resume
     * after that line's line feed. Bytes up to read_pos went to libcsv and
     * may have been wiped, so a resume point before read_pos reads the
     * source again. */
    uint64_t start = buffer_offset(csv);
    if (csv->row_chunk_offset >= start) {
        size_t from = (size_t)(csv->row_chunk_offset - start);
        const unsigned char *line_feed =
            memchr(csv->read_buffer + from, '\n', csv->read_len - from);
        size_t resume = line_feed ? (size_t)(line_feed - csv->read_buffer) + 1 : csv->read_len;
        if (resume >= csv->read_pos) {
            if (csv->any_dropped)
                sodium_memzero(csv->read_buffer + csv->read_pos, resume - csv->read_pos);
            csv->read_pos = resume;
            csv->skip_to_line_feed = !line_feed; /* the line goes on past the buffer */
            return 0;
        }
    }
    csv->rewind_offset = csv->row_chunk_offset;
    csv->rewind_pending = 1;
    return 0;
}

/* Reads the source again from rewind_offset (every row of the batch has
 * been handed out), skipping to the next line feed. A source that cannot
 * seek (a pipe) stops the read with CC_EUNSUPPORTED. */
static int rewind_source(cc_csv *csv)
{
    csv->rewind_pending = 0;
    if (!csv->memory &&
        (!csv->seekable || lseek(csv->fd, (off_t)(csv->fd_start + csv->rewind_offset), SEEK_SET) < 0))
        return csv->error = CC_EUNSUPPORTED;
    if (csv->any_dropped)
        sodium_memzero(csv->read_buffer, csv->read_len);
    csv->read_len = csv->read_pos = 0;
    csv->bytes_read = csv->rewind_offset;
    csv->skip_to_line_feed = 1;
    csv->end_of_file = 0;
    return 0;
}

/* Gives read_buffer[read_pos, read_pos + len) to libcsv; partial: the
 * bytes end inside a line (a line longer than the read buffer). */
static int parse_with_libcsv(cc_csv *csv, size_t len, int partial)
{
    const unsigned char *start = csv->read_buffer + csv->read_pos;
    csv->chunk_offset = buffer_offset(csv) + csv->read_pos;
    if (!csv->libcsv_in_row)
        csv->row_chunk_offset = csv->chunk_offset;
    csv->saw_unquoted_line_feed = 0;
    size_t consumed = csv_parse(&csv->parser, start, len, field_done, row_done, csv);
    csv->read_pos += consumed;
    /* libcsv copied these bytes out (the batch keeps its own copies), so the
     * raw bytes of any dropped field among them can go now. */
    if (csv->any_dropped)
        sodium_memzero(csv->read_buffer + csv->read_pos - consumed, consumed);
    /* The row goes on past these bytes unless libcsv saw an unquoted LF (a
     * row end, or the LF after a row ended by CR) as the last byte. */
    csv->libcsv_in_row = partial || !(csv->saw_unquoted_line_feed && start[len - 1] == '\n');
    if (csv->error)
        return csv->error;
    if (consumed < len) {
        if (csv_error(&csv->parser) == CSV_EPARSE)
            return reject_quoted_row(csv);
        /* Otherwise libcsv stopped because its field buffer cannot grow:
         * buffer_realloc refuses beyond CC_CSV_MAX_ROW_BYTES, or memory ran
         * out. */
        csv->error = csv_get_buffer_size(&csv->parser) + ENTRY_GROWTH_BYTES > CC_CSV_MAX_ROW_BYTES
                         ? CC_ETOOBIG
                         : CC_ENOMEM;
        return csv->error;
    }
    return 0;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Nonzero if any byte of word equals byte (the classic SWAR test). */
static uint64_t has_byte(uint64_t word, unsigned char byte)
{
    const uint64_t low_bits = 0x0101010101010101ull;
    const uint64_t high_bits = 0x8080808080808080ull;
    uint64_t x = word ^ (low_bits * byte);
    return (x - low_bits) & ~x & high_bits;
}

/* What a line [start, end) without its line end holds besides plain fields:
 * LINE_QUOTES and LINE_CR bits (0: a plain line); sets *all_ascii. */
#define LINE_QUOTES 1
#define LINE_CR 2
static int line_specials(const char *start, const char *end, int *all_ascii)
{
    size_t len = (size_t)(end - start), i = 0;
    uint64_t any_high = 0, quotes = 0, cr = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, start + i, 8);
        any_high |= word;
        quotes |= has_byte(word, '"');
        cr |= has_byte(word, '\r');
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)start[i];
        any_high |= c;
        quotes |= c == '"';
        cr |= c == '\r';
    }
    *all_ascii = (any_high & 0x8080808080808080ull) == 0;
    return (quotes ? LINE_QUOTES : 0) | (cr ? LINE_CR : 0);
}

/* Splits one line without quotes or carriage returns, [start, end) without
 * its line end, into fields, trimming spaces and tabs around each field
 * exactly as libcsv does for unquoted fields. */
static void parse_plain_line(cc_csv *csv, char *start, const char *end, int all_ascii)
{
    char *p = start;
    while (p < end && is_blank(*p))
        p++;
    if (p == end) {
        row_done('\n', csv); /* a blank line, as libcsv reports it */
        return;
    }
    open_row(csv);
    int reserved = csv->header_done &&
                   (csv->spans_cap >= csv->n_spans + csv->n_columns ||
                    cc_array_reserve(&csv->spans, &csv->spans_cap, csv->n_spans + csv->n_columns,
                         sizeof *csv->spans) == 0);
    for (;;) {
        char *field_end = p;
        while (field_end < end && *field_end != ',')
            field_end++;
        char *first = p;
        while (first < field_end && is_blank(*first))
            first++;
        char *last = field_end;
        while (last > first && is_blank(last[-1]))
            last--;
        size_t len = (size_t)(last - first);
        if (!all_ascii && !utf8_valid((unsigned char *)first, len))
            csv->row_bad_utf8 = 1;
        size_t index = csv->row_n_fields;
        if (reserved && index < csv->n_columns) {
            /* add_field() without its checks: the spans are reserved and
             * the field lies in the read buffer. */
            csv->row_n_fields++;
            if (csv->dropped[index]) {
                sodium_memzero(first, len);
                csv->spans[csv->n_spans++] = (struct span){SPAN_DROPPED, 0};
            } else {
                size_t offset = (size_t)(first - (char *)csv->read_buffer);
                csv->spans[csv->n_spans++] = (struct span){offset | SPAN_IN_READ_BUFFER, len};
            }
        } else {
            add_field(csv, first, len);
        }
        if (field_end == end)
            break;
        p = field_end + 1;
    }
    row_done('\n', csv);
}

/* Splits a line [start, end) that holds quotes but no carriage return, and
 * whose quoted fields all close on it, into fields exactly as strict libcsv
 * does: blanks before a field and after its closing quote are dropped, as
 * are blanks at the end of an unquoted field; a quoted field's content is
 * kept as is, with each doubled quote made one (in place: the line has been
 * read). Returns 0 without touching anything if the line is not of that
 * shape (a quote left open for the next line, a quote inside an unquoted
 * field, text after a closing quote, too many fields): libcsv then parses
 * it, and rejects what it must. Quoted feeds (every field quoted, or names
 * with commas) are common, and libcsv's byte-at-a-time loop is several
 * times slower than this. */
#define QUOTED_LINE_MAX_FIELDS 256
static int parse_quoted_line(cc_csv *csv, char *start, char *end, int all_ascii)
{
    struct {
        char *raw, *raw_end; /* the field as it lies, quotes included */
        char *first;         /* its content */
        size_t len;
        int escapes;         /* doubled quotes in it */
    } f[QUOTED_LINE_MAX_FIELDS];
    size_t n = 0;
    char *p = start;
    for (;;) {
        if (n == QUOTED_LINE_MAX_FIELDS)
            return 0;
        while (p < end && is_blank(*p))
            p++;
        f[n].raw = p;
        f[n].escapes = 0;
        if (p < end && *p == '"') {
            char *q = p + 1;
            for (;;) {
                char *quote = memchr(q, '"', (size_t)(end - q));
                if (!quote)
                    return 0; /* open at the line end: the field spans lines */
                if (quote + 1 < end && quote[1] == '"') {
                    f[n].escapes++;
                    q = quote + 2;
                    continue;
                }
                f[n].first = p + 1;
                f[n].len = (size_t)(quote - (p + 1));
                p = quote + 1;
                break;
            }
            f[n].raw_end = p;
            while (p < end && is_blank(*p))
                p++;
            if (p < end && *p != ',')
                return 0; /* text after a closing quote: strict libcsv refuses it */
        } else {
            char *field_end = p;
            while (field_end < end && *field_end != ',') {
                if (*field_end == '"')
                    return 0; /* a quote inside an unquoted field */
                field_end++;
            }
            char *last = field_end;
            while (last > p && is_blank(last[-1]))
                last--;
            f[n].first = p;
            f[n].len = (size_t)(last - p);
            f[n].raw_end = last;
            p = field_end;
        }
        n++;
        if (p == end)
            break;
        p++; /* the comma */
    }
    open_row(csv);
    for (size_t i = 0; i < n && !csv->error; i++) {
        char *first = f[i].first;
        size_t len = f[i].len;
        if (f[i].escapes) {
            /* "" -> " in place, left to right (the result is shorter) */
            size_t out = 0;
            for (size_t k = 0; k < len; k++) {
                first[out++] = first[k];
                if (first[k] == '"')
                    k++;
            }
            sodium_memzero(first + out, len - out);
            len = out;
        }
        if (!all_ascii && !utf8_valid((unsigned char *)first, len))
            csv->row_bad_utf8 = 1;
        size_t index = csv->row_n_fields;
        add_field(csv, first, len);
        if (csv->header_done && index < csv->n_columns && csv->dropped[index])
            sodium_memzero(f[i].raw, (size_t)(f[i].raw_end - f[i].raw)); /* quotes too */
    }
    row_done('\n', csv);
    return 1;
}

/* Parses whole lines from the read buffer until it holds no complete line
 * (or, with stop_after_header, until the header row is complete). Lines
 * with no quote and no carriage return except before the LF, the bulk of
 * any feed, are split directly (libcsv's byte-at-a-time loop cannot reach
 * the reader's 200 MB/s); every other line, and every line of a row that
 * libcsv has begun, goes through libcsv, which keeps the quoting state
 * across lines and buffers. Returns 0 or a stop error. */
static int parse_lines(cc_csv *csv, int stop_after_header)
{
    int rc = csv->error;
    while (!rc && !csv->rewind_pending && csv->read_pos < csv->read_len) {
        if (stop_after_header && csv->header_done)
            break;
        char *start = (char *)csv->read_buffer + csv->read_pos;
        size_t available = csv->read_len - csv->read_pos;
        char *line_feed = memchr(start, '\n', available);
        if (csv->skip_to_line_feed) {
            /* the rest of a rejected row's first line */
            size_t skip = line_feed ? (size_t)(line_feed - start) + 1 : available;
            if (csv->any_dropped)
                sodium_memzero(start, skip);
            csv->read_pos += skip;
            csv->skip_to_line_feed = !line_feed;
            continue;
        }
        if (!line_feed) {
            /* A partial line: wait for more bytes, unless it fills the
             * whole buffer (a huge quoted field), which libcsv takes as is. */
            if (csv->read_pos > 0)
                break;
            rc = parse_with_libcsv(csv, available, 1);
            continue;
        }
        size_t line_len = (size_t)(line_feed - start) + 1;
        char *end = line_feed;
        if (end > start && end[-1] == '\r')
            end--;
        int all_ascii, specials = csv->libcsv_in_row ? -1 : line_specials(start, end, &all_ascii);
        if (specials == 0) {
            parse_plain_line(csv, start, end, all_ascii);
            csv->read_pos += line_len;
            rc = csv->error;
        } else if (specials == LINE_QUOTES && parse_quoted_line(csv, start, end, all_ascii)) {
            csv->read_pos += line_len;
            rc = csv->error;
        } else {
            rc = parse_with_libcsv(csv, line_len, 0);
        }
    }
    return rc;
}

/* End of file: parses the last line if it has no line end, then closes the
 * last row. A quoted field still open rejects its row (reject_quoted_row),
 * and the lines after the row's first are read again. */
static int finish_parse(cc_csv *csv)
{
    size_t rest = csv->read_len - csv->read_pos;
    if (rest && csv->skip_to_line_feed) {
        if (csv->any_dropped)
            sodium_memzero(csv->read_buffer + csv->read_pos, rest);
        csv->read_pos = csv->read_len;
    } else if (rest) {
        int rc = parse_with_libcsv(csv, rest, 1);
        if (rc || csv->rewind_pending)
            return rc;
    }
    csv->skip_to_line_feed = 0;
    csv_set_opts(&csv->parser, LIBCSV_OPTIONS | CSV_STRICT_FINI);
    if (csv_fini(&csv->parser, field_done, row_done, csv) != 0) {
        int rc = reject_quoted_row(csv);
        if (rc || csv->rewind_pending)
            return rc;
    }
    csv->end_of_file = 1;
    return csv->error;
}

/* Reads more of the file and parses its complete lines into the batch (or
 * finishes at end of file); with stop_after_header, parses no further than
 * the header row. */
static int parse_more(cc_csv *csv, int stop_after_header)
{
    int at_start = csv->bytes_read == 0;
    long n = fill_read_buffer(csv);
    if (n < 0)
        return csv->error = (int)n;
    if (at_start && csv->read_len >= 3 && !memcmp(csv->read_buffer, "\xEF\xBB\xBF", 3))
        csv->read_pos = 3; /* a UTF-8 byte order mark */
    if (n == 0)
        return finish_parse(csv);
    return parse_lines(csv, stop_after_header);
}

/* Parses exactly the header row, leaving the rest of the read buffer for
 * cc_csv_next(), so that columns can be dropped before any data row is
 * parsed. */
static int read_header(cc_csv *csv)
{
    while (!csv->header_done) {
        if (csv->end_of_file)
            return CC_EPARSE; /* no header row */
        int rc = parse_more(csv, 1);
        if (rc)
            return rc;
    }
    /* A bare CR ends a row, not a line, so libcsv may have gone on past the
     * header into a data row of the same line: that row was parsed before
     * any column could be dropped, and would hand out a name column's bytes.
     * Such a header is malformed (found by fuzz_csv). */
    if (csv->n_rows > 0 || csv->row_open)
        return CC_EPARSE;
    return 0;
}

int cc_csv_open_file(const char *path, uint64_t *size)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused
     * below, and a regular file's reads never block anyway. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return cc_error_from_errno(errno); /* EACCES and ELOOP keep their names */
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = CC_EIO;
    else if (!S_ISREG(st.st_mode))
        rc = CC_EINVAL; /* a directory, FIFO, socket or device */
    else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        rc = CC_EIO;
    if (rc) {
        close(fd);
        return rc;
    }
    if (size)
        *size = (uint64_t)st.st_size;
    return fd;
}

/* Makes a reader over a source the caller has set up (fd or memory), reads
 * its header and sets *out; on failure frees it (closing an owned fd). */
static int open_reader(cc_csv *csv, cc_csv **out)
{
    int rc;
    csv->line = 1;
    if (sodium_init() < 0) {
        rc = CC_ECRYPTO;
        goto fail;
    }
    csv->read_buffer = calloc(1, CC_CSV_READ_BUFFER_BYTES);
    /* Allocated from the start so that an empty field's data is never NULL
     * (NULL marks a dropped column). */
    csv->batch_cap = BATCH_INITIAL_BYTES;
    csv->batch_data = malloc(csv->batch_cap);
    if (!csv->read_buffer || !csv->batch_data) {
        rc = CC_ENOMEM;
        goto fail;
    }
    if (csv_init(&csv->parser, LIBCSV_OPTIONS) != 0) {
        rc = CC_ENOMEM;
        goto fail;
    }
    csv->parser_ready = 1;
    csv_set_realloc_func(&csv->parser, buffer_realloc);
    csv_set_free_func(&csv->parser, buffer_free);
    csv_set_blk_size(&csv->parser, ENTRY_GROWTH_BYTES);

    rc = read_header(csv);
    if (rc)
        goto fail;
    *out = csv;
    return 0;

fail:
    cc_csv_close(csv);
    return rc;
}

/* An empty reader for a source (*out is NULL until it opens), or NULL. */
static cc_csv *new_reader(cc_csv **out)
{
    *out = NULL;
    cc_csv *csv = calloc(1, sizeof *csv);
    if (csv)
        csv->fd = -1;
    return csv;
}

int cc_csv_open(const char *path, cc_csv **out)
{
    cc_csv *csv = new_reader(out);
    if (!csv)
        return CC_ENOMEM;
    int fd = cc_csv_open_file(path, &csv->file_bytes);
    if (fd < 0) {
        free(csv);
        return fd == CC_ENOTFOUND ? CC_EIO : fd;
    }
    csv->fd = fd;
    csv->owns_fd = 1;
    csv->seekable = 1;
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return open_reader(csv, out);
}

int cc_csv_open_fd(int fd, cc_csv **out)
{
    cc_csv *csv = new_reader(out);
    if (!csv)
        return CC_ENOMEM;
    csv->fd = fd;
    struct stat st;
    off_t at = lseek(fd, 0, SEEK_CUR);
    if (at >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        csv->seekable = 1;
        csv->fd_start = (uint64_t)at;
        csv->file_bytes = st.st_size > at ? (uint64_t)(st.st_size - at) : 0;
    }
    return open_reader(csv, out);
}

int cc_csv_open_memory(const void *data, size_t len, cc_csv **out)
{
    cc_csv *csv = new_reader(out);
    if (!csv)
        return CC_ENOMEM;
    csv->memory = len ? data : (const unsigned char *)"";
    csv->memory_len = len;
    csv->file_bytes = len;
    return open_reader(csv, out);
}

int cc_csv_column(const cc_csv *csv, const char *name)
{
    for (size_t i = 0; i < csv->n_columns; i++)
        if (!strcmp(csv->column_names[i], name))
            return i <= INT_MAX ? (int)i : -1;
    return -1;
}

size_t cc_csv_n_columns(const cc_csv *csv)
{
    return csv->n_columns;
}

const char *cc_csv_column_name(const cc_csv *csv, size_t i)
{
    return i < csv->n_columns ? csv->column_names[i] : NULL;
}

int cc_csv_drop_column(cc_csv *csv, const char *name)
{
    if (csv->rows_started)
        return CC_EINVAL; /* rows already parsed may hold the column's bytes */
    int index = cc_csv_column(csv, name);
    if (index < 0)
        return CC_ENOTFOUND;
    csv->dropped[index] = 1;
    csv->any_dropped = 1;
    return 0;
}

int cc_csv_next(cc_csv *csv, const struct cc_csv_field **fields, uint64_t *line)
{
    *fields = NULL;
    csv->rows_started = 1;
    for (;;) {
        if (csv->row_cursor < csv->n_rows) {
            const struct row *r = &csv->rows[csv->row_cursor++];
            *line = r->line;
            if (r->problem) {
                csv->problem = r->problem;
                csv->problem_fields = r->n_fields;
                return CC_EPARSE;
            }
            for (size_t i = 0; i < csv->n_columns; i++) {
                const struct span *sp = &csv->spans[r->first_span + i];
                if (sp->offset == SPAN_DROPPED)
                    csv->out_fields[i] = (struct cc_csv_field){NULL, 0};
                else
                    csv->out_fields[i] =
                        (struct cc_csv_field){span_data(csv, sp), sp->len};
            }
            *fields = csv->out_fields;
            return 1;
        }
        if (csv->error)
            return csv->error;
        if (csv->rewind_pending && rewind_source(csv))
            return csv->error;
        if (csv->end_of_file)
            return 0;
        compact_batch(csv);
        int rc = parse_lines(csv, 0); /* lines left after the header */
        if (!rc && csv->n_rows == 0 && !csv->rewind_pending)
            rc = parse_more(csv, 0);
        if (rc && csv->row_cursor >= csv->n_rows)
            return rc;
    }
}

int cc_csv_problem(const cc_csv *csv, size_t *n_fields)
{
    if (n_fields)
        *n_fields = csv->problem_fields;
    return csv->problem;
}

const char *cc_csv_problem_text(int problem)
{
    switch (problem) {
    case CC_CSV_FIELD_COUNT: return "a number of fields other than the header's";
    case CC_CSV_BAD_UTF8: return "a field that is not valid UTF-8";
    case CC_CSV_BAD_QUOTE:
        return "a malformed quoted field (a quote inside an unquoted field, text after a "
               "closing quote, or a quote never closed)";
    default: return "well-formed";
    }
}

uint64_t cc_csv_bytes_read(const cc_csv *csv)
{
    return csv->bytes_read - (csv->read_len - csv->read_pos);
}

uint64_t cc_csv_file_bytes(const cc_csv *csv)
{
    return csv->file_bytes;
}

static int block_contains(const void *block, size_t block_len, const void *needle, size_t len)
{
    if (!block || len == 0 || len > block_len)
        return 0;
    const unsigned char *bytes = block;
    const unsigned char first = *(const unsigned char *)needle;
    for (size_t i = 0; i + len <= block_len; i++) {
        const unsigned char *hit = memchr(bytes + i, first, block_len - len + 1 - i);
        if (!hit)
            return 0;
        i = (size_t)(hit - bytes);
        if (!memcmp(hit, needle, len))
            return 1;
    }
    return 0;
}

int cc_csv_buffers_contain(const cc_csv *csv, const void *needle, size_t len)
{
    return block_contains(csv->read_buffer, CC_CSV_READ_BUFFER_BYTES, needle, len) ||
           block_contains(csv->batch_data, csv->batch_cap, needle, len) ||
           (csv->parser.entry_buf &&
            block_contains(csv->parser.entry_buf,
                           ((const struct block_header *)csv->parser.entry_buf - 1)->capacity,
                           needle, len));
}

void cc_csv_close(cc_csv *csv)
{
    if (!csv)
        return;
    if (csv->parser_ready)
        csv_free(&csv->parser); /* buffer_free wipes libcsv's field buffer */
    if (csv->read_buffer) {
        sodium_memzero(csv->read_buffer, CC_CSV_READ_BUFFER_BYTES);
        free(csv->read_buffer);
    }
    if (csv->batch_data) {
        sodium_memzero(csv->batch_data, csv->batch_cap);
        free(csv->batch_data);
    }
    if (csv->owns_fd && csv->fd >= 0)
        close(csv->fd);
    free(csv->spans);
    free(csv->rows);
    free(csv->column_names);
    free(csv->names_block);
    free(csv->dropped);
    free(csv->out_fields);
    free(csv);
}
