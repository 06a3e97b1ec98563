/*
 * cc_csv.h: a streaming reader of carecount's CSV feeds, over libcsv, and
 * the CSV writer and record buffer of the tools that write CSV back
 * (cc_csv_write.c).
 *
 * Reads RFC 4180 CSV (fields quoted with '"', a doubled quote inside a quoted
 * field, quoted commas and line breaks), lines ended by LF or CRLF (an
 * unquoted CR on its own also ends a row, as libcsv has it, but not a line:
 * line numbers count line feeds, so a row after a bare CR carries the number
 * of the line it is on, which may be the header's), UTF-8
 * with an optional byte order mark at the start of the file. The first row
 * is the header; columns are found by name. Rows are handed out one at a
 * time from a large read buffer, so a file of any size is read in constant
 * memory (bounded by the longest row). The source is a regular file named
 * by path, a file descriptor, or a block of memory.
 *
 * Quoting is strict: a quote inside an unquoted field, anything but blanks
 * before the delimiter or line end after a closing quote, or a quote still
 * open at the end of the file makes the row malformed. Such a row is handed
 * out as malformed on the line it starts on, and reading resumes at the
 * next line, so a stray quote never merges rows or swallows the rows after
 * it: every row is handed out exactly once, as well-formed or as malformed.
 *
 * Columns holding names are dropped (cc_csv_drop_column): their bytes are
 * never given to the caller and are wiped from every buffer the reader owns
 * (the read buffer, libcsv's field buffer) before the row reaches the caller.
 *
 * Must never: print, log or keep a field's value. Errors carry a line number
 * only.
 */
#ifndef CC_CSV_H
#define CC_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bytes read from the file per read(2). */
#define CC_CSV_READ_BUFFER_BYTES (1u << 20)
/* A single field (or the whole row in progress) longer than this stops the
 * read with CC_ETOOBIG: a runaway quote in a 4 GB feed must not take 4 GB. */
#define CC_CSV_MAX_ROW_BYTES (64u << 20)

typedef struct cc_csv cc_csv;

/* One field of the current row. Not NUL-terminated. A dropped column's
 * field has data == NULL and len == 0. */
struct cc_csv_field {
    const char *data;
    size_t len;
};

/* Why cc_csv_next() said a row is malformed (cc_csv_problem()). */
enum cc_csv_problem {
    CC_CSV_FIELD_COUNT = 1, /* a number of fields other than the header's */
    CC_CSV_BAD_UTF8,        /* a field that is not valid UTF-8 */
    CC_CSV_BAD_QUOTE,       /* a stray quote, or a quote never closed */
};

/* Opens path for reading if it is a regular file (a FIFO or device is
 * refused at once, without waiting for a writer or reading it). Returns the
 * open file descriptor (the caller closes it) and sets *size if size is not
 * NULL; or CC_ENOTFOUND (no such file), CC_EINVAL (not a regular file),
 * CC_EACCESS (permission denied), CC_ELOOP (a loop of symbolic links),
 * CC_EIO (cannot be opened otherwise). */
int cc_csv_open_file(const char *path, uint64_t *size);

/* Opens path (a regular file, as cc_csv_open_file) and reads its header row
 * (a leading UTF-8 BOM is skipped). Returns 0 and sets *out, CC_EINVAL if
 * path is not a regular file, CC_EIO if it cannot be opened or read,
 * CC_EPARSE if the header is missing, malformed, not UTF-8, names a column
 * twice, or is followed on its line by more fields after a bare CR (they
 * would be a data row read before any column could be dropped), CC_ENOMEM.
 * The caller frees with cc_csv_close(). */
int cc_csv_open(const char *path, cc_csv **out);

/* As cc_csv_open(), reading fd from its current offset (standard input, a
 * pipe). fd stays the caller's: cc_csv_close() does not close it. A
 * malformed quoted field on an fd that cannot seek (a pipe) is handed out
 * as a malformed row, and the next call stops with CC_EUNSUPPORTED: resuming
 * at the next line would need the bytes the field swallowed again. */
int cc_csv_open_fd(int fd, cc_csv **out);

/* As cc_csv_open(), reading data[0..len), which must stay valid and
 * unchanged until cc_csv_close(). */
int cc_csv_open_memory(const void *data, size_t len, cc_csv **out);

/* Returns the index of the header column called name (exact match), or -1. */
int cc_csv_column(const cc_csv *csv, const char *name);

/* Returns the number of header columns. */
size_t cc_csv_n_columns(const cc_csv *csv);

/* Returns the NUL-terminated name of header column i (i < n_columns). */
const char *cc_csv_column_name(const cc_csv *csv, size_t i);

/* Marks the column called name as dropped: its field is returned as
 * {NULL, 0} and its bytes are wiped from the reader's buffers. Call it after
 * cc_csv_open() and before the first cc_csv_next() (no data row has been
 * parsed then). Returns 0, CC_ENOTFOUND if there is no such column (nothing
 * to drop), or CC_EINVAL once rows have been read. */
int cc_csv_drop_column(cc_csv *csv, const char *name);

/* Reads the next row.
 * Returns 1: *fields points to n_columns fields, valid until the next call;
 *   *line is the 1-based physical line on which the row starts (a quoted line
 *   break makes later rows start further down; the header is line 1).
 * Returns 0: end of file.
 * Returns CC_EPARSE: the row starting on *line is malformed (a number of
 *   fields other than n_columns, invalid UTF-8 in any field, a malformed
 *   quoted field: cc_csv_problem() says which); the caller counts it as
 *   rejected and calls cc_csv_next() again to continue. *fields is set to
 *   NULL.
 * Returns another negative code: stop (CC_EIO read error, CC_ETOOBIG a row
 *   over CC_CSV_MAX_ROW_BYTES, CC_ENOMEM, CC_EUNSUPPORTED see
 *   cc_csv_open_fd()). Lines holding only a line break are skipped. */
int cc_csv_next(cc_csv *csv, const struct cc_csv_field **fields, uint64_t *line);

/* The enum cc_csv_problem of the row cc_csv_next() last returned CC_EPARSE
 * for (0 before any), and in *n_fields (if not NULL) how many fields it
 * had (for CC_CSV_FIELD_COUNT). */
int cc_csv_problem(const cc_csv *csv, size_t *n_fields);

/* A reason for a problem, fit for an error message (it names no content). */
const char *cc_csv_problem_text(int problem);

/* Bytes of the file consumed so far (including the header), for progress. */
uint64_t cc_csv_bytes_read(const cc_csv *csv);

/* Size of the file when it was opened, for progress. */
uint64_t cc_csv_file_bytes(const cc_csv *csv);

/* Returns 1 if any buffer the reader owns (the read buffer, the batch of
 * rows, libcsv's field buffer), over its whole capacity, holds the bytes
 * needle[0..len); 0 otherwise. For tests that prove dropped columns are
 * wiped; it never reveals where or what. */
int cc_csv_buffers_contain(const cc_csv *csv, const void *needle, size_t len);

/* Wipes the reader's buffers, closes the file it opened and frees (NULL is
 * allowed). */
void cc_csv_close(cc_csv *csv);

/* ---- a record kept beyond the reader's next row ----------------------- */

/* The fields of one record, copied and each NUL-terminated (the reader's
 * fields are neither). Zero-initialise before the first use. */
struct cc_csv_record {
    char *bytes;      /* the fields, each followed by a NUL */
    size_t used, capacity;
    size_t *offsets;  /* where field i starts in bytes */
    size_t n_fields, offsets_capacity;
};

/* Appends one field data[0..len) (data may be NULL when len is 0). 0 or
 * CC_ENOMEM (the record is unchanged). */
int cc_csv_record_add(struct cc_csv_record *record, const char *data, size_t len);

/* Field i (i < n_fields), NUL-terminated. */
static inline const char *cc_csv_record_field(const struct cc_csv_record *record, size_t i)
{
    return record->bytes + record->offsets[i];
}

/* Empties the record, keeping its memory for the next. */
void cc_csv_record_clear(struct cc_csv_record *record);

/* Frees the record's memory and empties it. */
void cc_csv_record_free(struct cc_csv_record *record);

/* ---- writing ----------------------------------------------------------- */

/* Writes one field data[0..len) to out, preceded by a comma unless first,
 * as RFC 4180 wants it: quoted (by libcsv's csv_fwrite, doubling quotes)
 * only when it holds a comma, a quote or a line break or begins or ends
 * with a blank, as is otherwise. 0 or CC_EIO. */
int cc_csv_write_field(FILE *out, const char *data, size_t len, int first);

/* cc_csv_write_field() of a NUL-terminated string. */
int cc_csv_write_string(FILE *out, const char *s, int first);

/* Writes a number to 12 significant figures ("%.12g"), preceded by a comma
 * unless first; an empty field for NaN or an infinity (not calculated).
 * 0 or CC_EIO. */
int cc_csv_write_number(FILE *out, double value, int first);

/* Writes every field of record, comma-separated, with no line end. 0 or
 * CC_EIO. */
int cc_csv_write_record(FILE *out, const struct cc_csv_record *record);

/* Reads a whole cell as a number (strtod, finite, nothing after it). 0 or
 * CC_EPARSE (empty, not a number, out of range). */
int cc_csv_parse_number(const char *cell, double *out);

#endif
