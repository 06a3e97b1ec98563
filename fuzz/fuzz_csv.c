/*
 * fuzz_csv.c: the CSV reader (core/cc_csv.h) over a block of memory: the
 * header, then every row to the end, with the first header column dropped
 * when the first input byte is odd (the name-dropping path).
 *
 * Checks the reader's promises: every row it hands out has the header's
 * number of fields, a dropped column comes back as {NULL, 0}, line numbers
 * never go back, and reading ends (the input is finite).
 *
 * Must never: pass an input on which a row is handed out with the wrong
 * number of fields, or line numbers that go back.
 */
#include "cc_csv.h"
#include "cc_error.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int drop = data[0] & 1;
    data++;
    size--;
    cc_csv *csv = NULL;
    int rc = cc_csv_open_memory(data, size, &csv);
    if (rc < 0) {
        check(csv == NULL);
        return 0;
    }
    size_t n = cc_csv_n_columns(csv);
    check(n >= 1);
    for (size_t i = 0; i < n; i++) {
        const char *name = cc_csv_column_name(csv, i);
        check(name != NULL);
        check(cc_csv_column(csv, name) == (int)i); /* names are unique */
    }
    int dropped = -1;
    if (drop) {
        check(cc_csv_drop_column(csv, cc_csv_column_name(csv, 0)) == 0);
        dropped = 0;
    }
    uint64_t last_line = 1, rows = 0;
    for (;;) {
        const struct cc_csv_field *fields = NULL;
        uint64_t line = 0;
        rc = cc_csv_next(csv, &fields, &line);
        if (rc == 0)
            break;
        if (rc == CC_EPARSE) {
            check(fields == NULL);
            int problem = cc_csv_problem(csv, NULL);
            check(problem >= CC_CSV_FIELD_COUNT && problem <= CC_CSV_BAD_QUOTE);
            check(cc_csv_problem_text(problem) != NULL);
            check(line >= last_line);
            last_line = line;
            continue;
        }
        if (rc < 0)
            break;
        check(rc == 1 && fields != NULL);
        /* line feeds are counted: a bare CR ends a row, not a line (cc_csv.h) */
        check(line >= 1 && line >= last_line);
        last_line = line;
        rows++;
        for (size_t i = 0; i < n; i++) {
            if ((int)i == dropped) {
                check(fields[i].data == NULL && fields[i].len == 0);
                continue;
            }
            check(fields[i].len == 0 || fields[i].data != NULL);
            check(fields[i].len <= size);
        }
        check(rows <= size);
    }
    check(cc_csv_bytes_read(csv) <= size);
    cc_csv_close(csv);
    return 0;
}
