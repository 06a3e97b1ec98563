/* Tests for core/cc_csv.c: quoting, line ends, BOM, line numbers, malformed
 * rows, and the wiping of dropped columns; and for core/cc_csv_write.c: the
 * writer and the record buffer. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csv.h>

#include "cc_csv.h"
#include "cc_error.h"

/* Writes len bytes to a new temporary file; returns its path (static buffer
 * per call site is not needed: the caller frees). */
static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/cc_test_csv_XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static cc_csv *open_text(const char *content, char **path_out)
{
    char *path = write_temp(content, strlen(content));
    cc_csv *csv = NULL;
    int rc = cc_csv_open(path, &csv);
    cr_assert_eq(rc, 0, "open: %s", cc_strerror(rc));
    *path_out = path;
    return csv;
}

static void done(cc_csv *csv, char *path)
{
    cc_csv_close(csv);
    unlink(path);
    free(path);
}

static int holds(const struct cc_csv_field *f, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= f->len; i++)
        if (!memcmp(f->data + i, needle, n))
            return 1;
    return 0;
}

static int field_is(const struct cc_csv_field *f, const char *text)
{
    return f->data && f->len == strlen(text) && !memcmp(f->data, text, f->len);
}

Test(csv, reads_header_and_rows_by_column_name)
{
    char *path;
    cc_csv *csv = open_text("a,b,c\n1,2,3\n4,5,6\n", &path);
    cr_assert_eq(cc_csv_n_columns(csv), 3);
    cr_assert_str_eq(cc_csv_column_name(csv, 1), "b");
    cr_assert_eq(cc_csv_column(csv, "c"), 2);
    cr_assert_eq(cc_csv_column(csv, "d"), -1);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 2);
    cr_assert(field_is(&f[0], "1") && field_is(&f[1], "2") && field_is(&f[2], "3"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 3);
    cr_assert(field_is(&f[2], "6"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cr_assert_eq(cc_csv_bytes_read(csv), cc_csv_file_bytes(csv));
    done(csv, path);
}

Test(csv, accepts_crlf_line_ends)
{
    char *path;
    cc_csv *csv = open_text("a,b\r\n1,2\r\n3,4\r\n", &path);
    cr_assert_str_eq(cc_csv_column_name(csv, 1), "b");
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[1], "2"), "CR must not stay in the last field");
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "3") && field_is(&f[1], "4"));
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, skips_a_utf8_byte_order_mark)
{
    char *path;
    cc_csv *csv = open_text("\xEF\xBB\xBFnhs_number,sex\n9434765919,1\n", &path);
    cr_assert_eq(cc_csv_column(csv, "nhs_number"), 0);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "9434765919"));
    done(csv, path);
}

Test(csv, unquotes_commas_doubled_quotes_and_line_breaks)
{
    char *path;
    cc_csv *csv = open_text("a,b,c\n"
                            "\"x,y\",\"say \"\"hi\"\"\",\"two\r\nlines\"\n"
                            "after,the,break\n",
                            &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "x,y"));
    cr_assert(field_is(&f[1], "say \"hi\""));
    cr_assert(field_is(&f[2], "two\r\nlines"));
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "after"));
    cr_assert_eq(line, 4, "a quoted line break moves later rows down (got %llu)",
                 (unsigned long long)line);
    done(csv, path);
}

Test(csv, line_numbers_count_blank_lines_and_several_quoted_breaks)
{
    char *path;
    cc_csv *csv = open_text("a,b\n\n1,\"p\nq\nr\"\n\r\n2,3\n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 3);
    cr_assert(field_is(&f[1], "p\nq\nr"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 7);
    cr_assert(field_is(&f[0], "2"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, wrong_field_count_is_a_malformed_row_and_reading_goes_on)
{
    char *path;
    cc_csv *csv = open_text("a,b,c\n1,2\n1,2,3,4\n\"q,\"\"\",2\n7,8,9\n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 2);
    cr_assert_null(f);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE, "quoted row with 2 fields");
    cr_assert_eq(line, 4);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 5);
    cr_assert(field_is(&f[2], "9"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, invalid_utf8_makes_the_row_malformed)
{
    char *path;
    cc_csv *csv = open_text("a,b\n"
                            "caf\xC3\xA9,ok\n"   /* valid two-byte sequence */
                            "caf\xC3,bad\n"      /* truncated sequence */
                            "\xC0\xAF,overlong\n" /* overlong '/' */
                            "\"\xED\xA0\x80\",surrogate\n"
                            "x,\xF0\x9F\x98\x80\n", /* valid four-byte sequence */
                            &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "caf\xC3\xA9"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 4);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 5);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 6);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, quote_left_open_at_end_of_file_is_malformed)
{
    char *path;
    cc_csv *csv = open_text("a,b\n1,2\n3,\"never\nclosed\n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_problem(csv, NULL), CC_CSV_BAD_QUOTE);
    /* the line the open quote swallowed is read again, as a row of its own */
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 4);
    size_t n_fields = 0;
    cr_assert_eq(cc_csv_problem(csv, &n_fields), CC_CSV_FIELD_COUNT);
    cr_assert_eq(n_fields, 1);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, last_row_without_line_end_is_read)
{
    char *path;
    cc_csv *csv = open_text("a,b\n1,2\n3,4", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[1], "4"));
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, empty_fields_and_blanks_around_unquoted_fields)
{
    char *path;
    cc_csv *csv = open_text("a,b,c\n, x ,\" y \"\n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(f[0].data != NULL && f[0].len == 0, "an empty field is present, not dropped");
    cr_assert(field_is(&f[1], "x"), "blanks around an unquoted field are trimmed");
    cr_assert(field_is(&f[2], " y "), "blanks inside quotes are kept");
    done(csv, path);
}

Test(csv, refuses_missing_or_duplicate_headers_and_missing_files)
{
    cc_csv *csv = NULL;
    char *path = write_temp("", 0);
    cr_assert_eq(cc_csv_open(path, &csv), CC_EPARSE);
    cr_assert_null(csv);
    unlink(path);
    free(path);
    path = write_temp("a,b,a\n1,2,3\n", 12);
    cr_assert_eq(cc_csv_open(path, &csv), CC_EPARSE);
    unlink(path);
    free(path);
    cr_assert_eq(cc_csv_open("/nonexistent/cc_test.csv", &csv), CC_EIO);
}

Test(csv, header_only_file_has_no_rows)
{
    char *path;
    cc_csv *csv = open_text("a,b", &path);
    cr_assert_eq(cc_csv_n_columns(csv), 2);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

Test(csv, dropped_column_is_never_returned_and_is_wiped)
{
    const char *name = "Zebedeeqxj";
    char *path;
    cc_csv *csv = open_text("nhs_number,given_name,family_name,sex\r\n"
                            "9434765919,Zebedeeqxj,Plain,1\r\n"
                            "9434765919,\"Zebedeeqxj, Jr\",\"O'Zebedeeqxj\",2\r\n"
                            "9434765919,\"Zebedeeqxj\nsecond line\",Plain,9\r\n"
                            "9434765919,Zebedeeqxj,too,many,fields\r\n",
                            &path);
    cr_assert_eq(cc_csv_drop_column(csv, "given_name"), 0);
    cr_assert_eq(cc_csv_drop_column(csv, "family_name"), 0);
    cr_assert_eq(cc_csv_drop_column(csv, "no_such_column"), CC_ENOTFOUND);
    const struct cc_csv_field *f;
    uint64_t line;
    int n_rows = 0;
    int rc;
    while ((rc = cc_csv_next(csv, &f, &line)) != 0) {
        if (rc == CC_EPARSE) {
            cr_assert_eq(line, 6);
            continue;
        }
        cr_assert_eq(rc, 1);
        n_rows++;
        cr_assert_null(f[1].data);
        cr_assert_eq(f[1].len, 0);
        cr_assert_null(f[2].data);
        for (int i = 0; i < 4; i++)
            if (f[i].data)
                cr_assert_eq(holds(&f[i], "Zebedee"), 0);
        cr_assert_eq(cc_csv_buffers_contain(csv, name, strlen(name)), 0,
                     "a dropped field's bytes remain in a buffer (row %d)", n_rows);
    }
    cr_assert_eq(n_rows, 3);
    cr_assert_eq(cc_csv_buffers_contain(csv, "Plain", 5), 0);
    cr_assert_eq(cc_csv_buffers_contain(csv, "9434765919", 10), 1,
                 "the check can see bytes that are kept");
    done(csv, path);
}

Test(csv, columns_cannot_be_dropped_once_rows_are_read)
{
    char *path;
    cc_csv *csv = open_text("a,b\n1,2\n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(cc_csv_drop_column(csv, "b"), CC_EINVAL);
    done(csv, path);
}

/* Rows crossing the 1 MiB read buffer, quoted breaks among them: every row
 * and every line number must come out right. */
Test(csv, rows_across_read_buffers_keep_values_and_line_numbers)
{
    size_t cap = 8u << 20, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)sprintf(text, "id,name,note\n");
    const int n_rows = 120000;
    for (int i = 0; i < n_rows; i++) {
        if (i % 1000 == 7)
            len += (size_t)sprintf(text + len, "%d,\"Secretname%d\",\"a\r\nb, \"\"c\"\"\"\r\n", i, i);
        else
            len += (size_t)sprintf(text + len, "%d,Secretname%d,plain note %d\n", i, i, i);
    }
    char *path = write_temp(text, len);
    free(text);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open(path, &csv), 0);
    cr_assert_eq(cc_csv_drop_column(csv, "name"), 0);
    const struct cc_csv_field *f;
    uint64_t line, expected_line = 2;
    for (int i = 0; i < n_rows; i++) {
        cr_assert_eq(cc_csv_next(csv, &f, &line), 1, "row %d", i);
        char id[16];
        sprintf(id, "%d", i);
        cr_assert(field_is(&f[0], id), "row %d", i);
        cr_assert_null(f[1].data);
        cr_assert_eq(line, expected_line, "row %d", i);
        if (i % 1000 == 7) {
            cr_assert(field_is(&f[2], "a\r\nb, \"c\""), "row %d", i);
            expected_line += 2;
        } else {
            expected_line += 1;
        }
    }
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cr_assert_eq(cc_csv_buffers_contain(csv, "Secretname", 10), 0);
    cr_assert_eq(cc_csv_bytes_read(csv), cc_csv_file_bytes(csv));
    done(csv, path);
}

Test(csv, quoted_field_longer_than_the_read_buffer)
{
    size_t big = (3u << 20) / 2; /* 1.5 MiB */
    size_t cap = big + 64, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)sprintf(text, "a,b\n1,\"");
    memset(text + len, 'x', big);
    text[len + big / 2] = '\n';
    len += big;
    len += (size_t)sprintf(text + len, "\"\n2,3\n");
    char *path = write_temp(text, len);
    free(text);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open(path, &csv), 0);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(f[1].len, big);
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "2"));
    cr_assert_eq(line, 4);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

/* The reader splits plain lines itself and hands the rest to libcsv, and
 * resumes after a malformed quoted field; over many random documents of
 * commas, quotes, blanks, CR and LF it must give exactly the rows, line
 * numbers and malformed rows of a plain driver of strict libcsv that feeds
 * the whole document a byte at a time and, at a strict error, rejects the
 * row on its first line and starts again after that line's line feed. */
struct reference {
    char fields[64][256];
    size_t lens[64];
    size_t n_fields;
    int row_ended;
    char rows[128][4][256];
    size_t row_lens[128][4];
    size_t row_n_fields[128];
    int row_bad_quote[128];
    uint64_t row_line[128];
    size_t n_rows;
};

static void reference_field(void *s, size_t len, void *data)
{
    struct reference *r = data;
    if (r->n_fields < 64 && len < 256) {
        memcpy(r->fields[r->n_fields], s, len);
        r->lens[r->n_fields] = len;
    }
    r->n_fields++;
}

static void reference_row(int c, void *data)
{
    (void)c;
    struct reference *r = data;
    r->row_ended = 1;
    if (r->n_fields == 0)
        return; /* a blank line */
    size_t row = r->n_rows++;
    cr_assert_lt(row, 128);
    r->row_n_fields[row] = r->n_fields;
    for (size_t i = 0; i < r->n_fields && i < 4; i++) {
        memcpy(r->rows[row][i], r->fields[i], r->lens[i]);
        r->row_lens[row][i] = r->lens[i];
    }
    r->n_fields = 0;
}

static uint64_t line_of(const char *text, size_t offset)
{
    uint64_t line = 1;
    for (size_t i = 0; i < offset; i++)
        line += text[i] == '\n';
    return line;
}

static void reference_parse(const char *text, size_t len, struct reference *ref)
{
    struct csv_parser parser;
    cr_assert_eq(csv_init(&parser, CSV_REPALL_NL | CSV_STRICT), 0);
    size_t pos = 0, row_start = 0;
    for (;;) {
        int bad_quote = 0;
        while (pos < len) {
            ref->row_ended = 0;
            size_t before = ref->n_rows;
            if (csv_parse(&parser, text + pos, 1, reference_field, reference_row, ref) != 1) {
                bad_quote = 1;
                break;
            }
            pos++;
            for (size_t r = before; r < ref->n_rows; r++)
                ref->row_line[r] = line_of(text, row_start);
            if (ref->row_ended)
                row_start = pos;
        }
        if (!bad_quote) {
            size_t before = ref->n_rows;
            csv_set_opts(&parser, CSV_REPALL_NL | CSV_STRICT | CSV_STRICT_FINI);
            bad_quote = csv_fini(&parser, reference_field, reference_row, ref) != 0;
            for (size_t r = before; r < ref->n_rows; r++)
                ref->row_line[r] = line_of(text, row_start);
            if (!bad_quote)
                break;
        }
        size_t row = ref->n_rows++;
        cr_assert_lt(row, 128);
        ref->row_bad_quote[row] = 1;
        ref->row_line[row] = line_of(text, row_start);
        ref->n_fields = 0;
        csv_set_opts(&parser, CSV_REPALL_NL | CSV_STRICT);
        csv_fini(&parser, NULL, NULL, NULL);
        const char *line_feed = memchr(text + row_start, '\n', len - row_start);
        pos = row_start = line_feed ? (size_t)(line_feed - text) + 1 : len;
    }
    csv_free(&parser);
}

/* Compares the reader with the reference over 3,000 random documents of the
 * alphabet's bytes; counts malformed-quote rows, rows, and well-formed rows
 * of documents with a quote in them. */
static void agree_on_random_documents(const char *alphabet, size_t n_alphabet, uint64_t state,
                                      size_t *n_bad_quote_out, size_t *n_rows_out,
                                      size_t *n_quoted_rows_out)
{
    static struct reference ref;
    size_t n_bad_quote = 0, n_rows = 0, n_quoted_rows = 0;
    for (int doc = 0; doc < 3000; doc++) {
        char text[256];
        size_t len = (size_t)sprintf(text, "h1,h2,h3\n");
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        size_t body = 1 + state % 120;
        for (size_t i = 0; i < body; i++) {
            state ^= state << 13, state ^= state >> 7, state ^= state << 17;
            text[len++] = alphabet[state % n_alphabet];
        }
        text[len] = '\0';

        memset(&ref, 0, sizeof ref);
        reference_parse(text, len, &ref);

        char *path = write_temp(text, len);
        cc_csv *csv = NULL;
        cr_assert_eq(cc_csv_open(path, &csv), 0, "doc %d", doc);
        const struct cc_csv_field *f;
        uint64_t line;
        for (size_t row = 1; row < ref.n_rows; row++) {
            int rc = cc_csv_next(csv, &f, &line);
            n_rows++;
            cr_assert_eq(line, ref.row_line[row], "doc %d row %zu: line %llu, expected %llu", doc,
                         row, (unsigned long long)line, (unsigned long long)ref.row_line[row]);
            if (ref.row_bad_quote[row]) {
                n_bad_quote++;
                cr_assert_eq(rc, CC_EPARSE, "doc %d row %zu", doc, row);
                cr_assert_eq(cc_csv_problem(csv, NULL), CC_CSV_BAD_QUOTE, "doc %d row %zu", doc,
                             row);
                continue;
            }
            if (ref.row_n_fields[row] != 3) {
                cr_assert_eq(rc, CC_EPARSE, "doc %d row %zu", doc, row);
                cr_assert_eq(cc_csv_problem(csv, NULL), CC_CSV_FIELD_COUNT, "doc %d", doc);
                continue;
            }
            cr_assert_eq(rc, 1, "doc %d row %zu", doc, row);
            n_quoted_rows += memchr(text + 9, '"', len - 9) != NULL;
            for (size_t i = 0; i < 3; i++) {
                cr_assert_eq(f[i].len, ref.row_lens[row][i], "doc %d row %zu field %zu", doc, row, i);
                cr_assert_eq(memcmp(f[i].data, ref.rows[row][i], f[i].len), 0, "doc %d", doc);
            }
        }
        cr_assert_eq(cc_csv_next(csv, &f, &line), 0, "doc %d", doc);
        cc_csv_close(csv);
        unlink(path);
        free(path);
    }
    *n_bad_quote_out = n_bad_quote;
    *n_rows_out = n_rows;
    *n_quoted_rows_out = n_quoted_rows;
}

Test(csv, agrees_with_strict_libcsv_on_random_documents)
{
    static const char alphabet[] = "ab ,,\"\"\r\n\n\t";
    size_t n_bad_quote, n_rows, n_quoted;
    agree_on_random_documents(alphabet, sizeof alphabet - 1, 0x9E3779B97F4A7C15ull, &n_bad_quote,
                              &n_rows, &n_quoted);
    /* the documents exercise both kinds of row */
    cr_assert_gt(n_bad_quote, 100);
    cr_assert_gt(n_rows, n_bad_quote + 100);
}

/* Without carriage returns most quoted lines are split by the reader's own
 * quoted-line path (parse_quoted_line) rather than by libcsv: blanks around
 * quotes, doubled quotes, empty quoted fields, quotes left open, text after
 * a closing quote. */
Test(csv, agrees_with_strict_libcsv_on_random_quoted_lines)
{
    static const char alphabet[] = "ab  ,,,\"\"\"\n\t";
    size_t n_bad_quote, n_rows, n_quoted;
    agree_on_random_documents(alphabet, sizeof alphabet - 1, 0x2545F4914F6CDD1Dull, &n_bad_quote,
                              &n_rows, &n_quoted);
    cr_assert_gt(n_bad_quote, 100);
    cr_assert_gt(n_quoted, 500, "well-formed rows of documents with quotes");
}

Test(csv, runaway_quote_stops_at_the_row_limit)
{
    size_t len = CC_CSV_MAX_ROW_BYTES + (4u << 20);
    char *text = malloc(len);
    cr_assert_not_null(text);
    memcpy(text, "a,b\n1,\"", 7);
    memset(text + 7, 'x', len - 7);
    for (size_t i = 1000; i < len; i += 1000)
        text[i] = '\n'; /* many lines, all inside the open quote */
    char *path = write_temp(text, len);
    free(text);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open(path, &csv), 0);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_ETOOBIG);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_ETOOBIG, "the stop is final");
    done(csv, path);
}

/* Every shape of malformed quote rejects its own row, on the line it starts
 * on, and the next line is read as the row it is: nothing is merged into
 * the bad row and nothing after it is lost. */
Test(csv, every_malformed_quote_rejects_its_row_and_the_next_line_is_read)
{
    static const char *const shapes[] = {
        "\"Bob\"by,2,3",       /* text after the closing quote */
        "1,\"Bob\"by,3",       /* the same in a middle field */
        "1,2,\"3\"x",          /* and in the last field */
        "x\"y,2,3",            /* a quote inside an unquoted field */
        "xy\",2,3",            /* a quote ending an unquoted field */
        "1,x\"\",3",           /* a doubled quote in an unquoted field */
        "\"a\" \"b\",2,3",     /* a second quoted part after a blank */
        "\"a\"\"b\"c,2,3",     /* text after a quote that holds a doubled quote */
        "\"Bob,2,3",           /* a quote never closed, swallowing what follows */
        "1,\"Bob,3",           /* the same in a middle field */
        "1,2,\"",              /* a lone quote at the end of a line */
    };
    static const char *const line_ends[] = {"\n", "\r\n"};
    for (size_t e = 0; e < 2; e++) {
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
            const char *nl = line_ends[e];
            char text[256];
            snprintf(text, sizeof text, "a,b,c%s1,2,3%s%s%s7,8,9%s10,\"11\",12%s", nl, nl,
                     shapes[k], nl, nl, nl);
            char *path;
            cc_csv *csv = open_text(text, &path);
            const struct cc_csv_field *f;
            uint64_t line;
            cr_assert_eq(cc_csv_next(csv, &f, &line), 1, "shape %zu", k);
            cr_assert_eq(line, 2);
            cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE, "shape %zu end %zu", k, e);
            cr_assert_eq(line, 3, "shape %zu", k);
            cr_assert_eq(cc_csv_problem(csv, NULL), CC_CSV_BAD_QUOTE, "shape %zu", k);
            cr_assert_eq(cc_csv_next(csv, &f, &line), 1, "shape %zu: the next row survives", k);
            cr_assert_eq(line, 4, "shape %zu", k);
            cr_assert(field_is(&f[0], "7") && field_is(&f[1], "8") && field_is(&f[2], "9"),
                      "shape %zu", k);
            cr_assert_eq(cc_csv_next(csv, &f, &line), 1, "shape %zu", k);
            cr_assert_eq(line, 5);
            cr_assert(field_is(&f[1], "11"), "shape %zu", k);
            cr_assert_eq(cc_csv_next(csv, &f, &line), 0, "shape %zu", k);
            done(csv, path);
        }
    }
}

Test(csv, blanks_after_a_closing_quote_are_not_malformed)
{
    char *path;
    cc_csv *csv = open_text("a,b\n\"x\"  ,\"y\" \n", &path);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "x"));
    cr_assert(field_is(&f[1], "y"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    done(csv, path);
}

/* A quote left open far before the end of the file: the bytes it swallowed
 * have left the read buffer, so the reader reads them again, and every row
 * after the bad one comes back with its line number; the dropped column of
 * the rows read twice is still never kept. */
Test(csv, a_quote_left_open_for_megabytes_costs_one_row)
{
    size_t n_after = 300000, cap = 64 + n_after * 32, len = 0;
    char *text = malloc(cap);
    cr_assert_not_null(text);
    len += (size_t)sprintf(text + len, "id,name,v\n1,Secretname,ok\n2,\"Secretname,open\n");
    for (size_t i = 0; i < n_after; i++)
        len += (size_t)sprintf(text + len, "%zu,Secretname,v%zu\n", i + 3, i);
    char *path = write_temp(text, len);
    free(text);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open(path, &csv), 0);
    cr_assert_eq(cc_csv_drop_column(csv, "name"), 0);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_problem(csv, NULL), CC_CSV_BAD_QUOTE);
    for (size_t i = 0; i < n_after; i++) {
        cr_assert_eq(cc_csv_next(csv, &f, &line), 1, "row %zu", i);
        cr_assert_eq(line, i + 4, "row %zu", i);
        cr_assert_null(f[1].data);
        char expect[32];
        snprintf(expect, sizeof expect, "v%zu", i);
        cr_assert(field_is(&f[2], expect), "row %zu", i);
    }
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cr_assert_eq(cc_csv_buffers_contain(csv, "Secretname", 10), 0);
    done(csv, path);
}

/* Found by fuzz_csv: a bare CR ends a row but not a line, and the header
 * line goes to libcsv whole, so fields after a bare CR in the header line
 * were a data row parsed before cc_csv_drop_column() could be called: the
 * dropped column's bytes reached the caller. Such a header is refused. */
Test(csv, a_header_line_going_on_after_a_bare_cr_is_refused)
{
    const char after_cr[] = "nhs_number,given_name\r9434765919,Ada\n9434765919,Bea\n";
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open_memory(after_cr, sizeof after_cr - 1, &csv), CC_EPARSE);
    cr_assert_null(csv);

    /* a header ended by CRLF, or by a bare CR at the end of the line, is fine,
     * and a bare CR later ends a row without starting a line */
    const char fine[] = "nhs_number,given_name\r\n9434765919,Ada\r2,Bea\n";
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_open_memory(fine, sizeof fine - 1, &csv), 0);
    cr_assert_eq(cc_csv_drop_column(csv, "given_name"), 0);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_null(f[1].data);
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "2"));
    cr_assert_null(f[1].data);
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cc_csv_close(csv);
}

Test(csv, reads_from_memory_and_from_a_file_descriptor)
{
    const char text[] = "a,b\n1,\"x\"y\n3,4\n";
    cc_csv *csv = NULL;
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_open_memory(text, sizeof text - 1, &csv), 0);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 2);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[1], "4"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cc_csv_close(csv);

    /* a quote left open in memory: read again from the memory */
    const char open_quote[] = "a,b\n1,\"x\n3,4\n";
    cr_assert_eq(cc_csv_open_memory(open_quote, sizeof open_quote - 1, &csv), 0);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(line, 3);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 0);
    cc_csv_close(csv);

    /* a pipe: a stray quote on one line is skipped in the buffer; a quote
     * left open would need the swallowed bytes again, which a pipe cannot
     * give, so the read stops */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    const char piped[] = "a,b\n1,\"x\"y\n3,4\n5,\"open\n6,7\n";
    cr_assert_eq(write(fds[1], piped, sizeof piped - 1), (ssize_t)(sizeof piped - 1));
    close(fds[1]);
    cr_assert_eq(cc_csv_open_fd(fds[0], &csv), 0);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert(field_is(&f[0], "3"));
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EPARSE);
    cr_assert_eq(line, 4);
    cr_assert_eq(cc_csv_next(csv, &f, &line), CC_EUNSUPPORTED);
    cc_csv_close(csv);
    cr_assert_neq(fcntl(fds[0], F_GETFD), -1, "the reader leaves the caller's fd open");
    close(fds[0]);
}

Test(csv, only_regular_files_are_read)
{
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open("/dev/zero", &csv), CC_EINVAL);
    cr_assert_null(csv);
    cr_assert_eq(cc_csv_open("/tmp", &csv), CC_EINVAL);
    char fifo[] = "/tmp/cc_test_fifo_XXXXXX";
    int fd = mkstemp(fifo);
    cr_assert_geq(fd, 0);
    close(fd);
    unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    /* no writer: a blocking open would wait forever */
    cr_assert_eq(cc_csv_open(fifo, &csv), CC_EINVAL);
    cr_assert_eq(cc_csv_open_file(fifo, NULL), CC_EINVAL);
    unlink(fifo);
    cr_assert_eq(cc_csv_open_file("/nonexistent/cc_test.csv", NULL), CC_ENOTFOUND);
}

/* ---- cc_csv_write.c: the writer and the record buffer ------------------ */

/* Writes with fn into a memory stream and returns what was written (the
 * caller frees). */
static char *written(void (*fn)(FILE *))
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_not_null(out);
    fn(out);
    cr_assert_eq(fclose(out), 0);
    return text;
}

static void write_fields(FILE *out)
{
    cr_assert_eq(cc_csv_write_string(out, "plain", 1), 0);
    cr_assert_eq(cc_csv_write_string(out, "a, b", 0), 0);
    cr_assert_eq(cc_csv_write_string(out, "say \"hi\"", 0), 0);
    cr_assert_eq(cc_csv_write_string(out, "two\nlines", 0), 0);
    cr_assert_eq(cc_csv_write_string(out, " padded", 0), 0);
    cr_assert_eq(cc_csv_write_string(out, "", 0), 0);
    cr_assert_eq(cc_csv_write_number(out, 1.0 / 3.0, 0), 0);
    cr_assert_eq(cc_csv_write_number(out, NAN, 0), 0);
    cr_assert_eq(cc_csv_write_number(out, 100000, 0), 0);
    fputc('\n', out);
}

Test(csv, writer_quotes_only_the_fields_that_need_it)
{
    char *text = written(write_fields);
    cr_assert_str_eq(text, "plain,\"a, b\",\"say \"\"hi\"\"\",\"two\nlines\",\" padded\",,"
                           "0.333333333333,,100000\n");
    /* and the strict reader reads back what was written */
    static const char header[] = "a,b,c,d,e,f,g,h,i\n";
    size_t len = strlen(header) + strlen(text);
    char *csv_text = malloc(len + 1);
    cr_assert_not_null(csv_text);
    memcpy(csv_text, header, strlen(header));
    memcpy(csv_text + strlen(header), text, strlen(text) + 1);
    cc_csv *csv = NULL;
    cr_assert_eq(cc_csv_open_memory(csv_text, len, &csv), 0);
    const struct cc_csv_field *f;
    uint64_t line;
    cr_assert_eq(cc_csv_next(csv, &f, &line), 1);
    cr_assert_eq(f[2].len, 8);
    cr_assert(!memcmp(f[2].data, "say \"hi\"", 8));
    cr_assert_eq(f[3].len, 9);
    cr_assert(!memcmp(f[3].data, "two\nlines", 9));
    cc_csv_close(csv);
    free(csv_text);
    free(text);
}

Test(csv, record_keeps_fields_nul_terminated_across_clears)
{
    struct cc_csv_record record = {0};
    cr_assert_eq(cc_csv_record_add(&record, "area", 4), 0);
    cr_assert_eq(cc_csv_record_add(&record, NULL, 0), 0);
    cr_assert_eq(cc_csv_record_add(&record, "x,y", 3), 0);
    cr_assert_eq(record.n_fields, 3);
    cr_assert_str_eq(cc_csv_record_field(&record, 0), "area");
    cr_assert_str_eq(cc_csv_record_field(&record, 1), "");
    cr_assert_str_eq(cc_csv_record_field(&record, 2), "x,y");
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cr_assert_eq(cc_csv_write_record(out, &record), 0);
    fclose(out);
    cr_assert_str_eq(text, "area,,\"x,y\"");
    free(text);
    cc_csv_record_clear(&record);
    cr_assert_eq(record.n_fields, 0);
    for (int i = 0; i < 1000; i++) /* grows past any first capacity */
        cr_assert_eq(cc_csv_record_add(&record, "0123456789", 10), 0);
    cr_assert_str_eq(cc_csv_record_field(&record, 999), "0123456789");
    cc_csv_record_free(&record);
    cr_assert_null(record.bytes);
}

Test(csv, parse_number_takes_a_whole_finite_cell)
{
    double v = 0;
    cr_assert_eq(cc_csv_parse_number("12.5", &v), 0);
    cr_assert_eq(v, 12.5);
    cr_assert_eq(cc_csv_parse_number("1e3", &v), 0);
    cr_assert_eq(v, 1000);
    cr_assert_eq(cc_csv_parse_number("", &v), CC_EPARSE);
    cr_assert_eq(cc_csv_parse_number("NA", &v), CC_EPARSE);
    cr_assert_eq(cc_csv_parse_number("12x", &v), CC_EPARSE);
    cr_assert_eq(cc_csv_parse_number("1e400", &v), CC_EPARSE);
    cr_assert_eq(cc_csv_parse_number("inf", &v), CC_EPARSE);
}
