/* Tests for core/cc_stats_csv.c called directly (tests/test_stats.c runs
 * the same methods through `carecount stats`): records in, CSV out, errors
 * on the error stream that never echo a cell. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "cc_csv.h"
#include "cc_error.h"
#include "cc_stats_csv.h"

static void gsl_quiet(void)
{
    gsl_set_error_handler_off();
}

TestSuite(stats_csv, .init = gsl_quiet);

/* Runs method on the records (each a comma-separated line without quotes;
 * the first the header) into out and err (the caller frees both); returns
 * the first error or the result of finishing. */
static int run_records(const char *method, const char *const *records, size_t n_records,
                       char **out, char **err)
{
    size_t out_len, err_len;
    FILE *out_stream = open_memstream(out, &out_len);
    FILE *err_stream = open_memstream(err, &err_len);
    cr_assert(out_stream && err_stream);
    struct cc_stats_csv_options opt;
    const struct cc_stats_csv_method_info *info = cc_stats_csv_find_method(method);
    cr_assert_not_null(info, "%s", method);
    cc_stats_csv_options_init(&opt, info);
    cc_stats_csv *run = NULL;
    cr_assert_eq(cc_stats_csv_open(&opt, out_stream, err_stream, "test", &run), 0);
    int rc = 0;
    for (size_t r = 0; r < n_records && rc == 0; r++) {
        struct cc_csv_field fields[8];
        size_t n = 0;
        const char *p = records[r];
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            cr_assert_lt(n, 8);
            fields[n++] = (struct cc_csv_field){p, len};
            if (!comma)
                break;
            p = comma + 1;
        }
        rc = cc_stats_csv_take(run, r + 1, fields, n);
    }
    if (rc == 0)
        rc = cc_stats_csv_finish(run);
    cc_stats_csv_close(run);
    fclose(out_stream);
    fclose(err_stream);
    return rc;
}

Test(stats_csv, rate_rows_are_written_as_they_are_taken)
{
    static const char *const records[] = {"area,count,denominator", "A,1,100", "B,20,100"};
    char *out, *err;
    cr_assert_eq(run_records("rate", records, 3, &out, &err), 0);
    /* PHE testdata_Rate rows 2 and 4, per 100,000 */
    cr_assert_str_eq(out, "area,count,denominator,value,lowercl,uppercl,confidence,statistic,"
                          "method\n"
                          "A,1,100,1000,25.3178079843,5571.64339094,95%,rate per 100000,Exact\n"
                          "B,20,100,20000,12211.4288349,30889.8803692,95%,rate per 100000,"
                          "Byars\n");
    cr_assert_str_eq(err, "");
    free(out);
    free(err);
}

Test(stats_csv, a_bad_cell_is_named_by_line_and_column_only)
{
    static const char *const records[] = {"area,count,denominator", "A,1,100",
                                          "B,PRIVATE,100", "C,2,100"};
    char *out, *err;
    cr_assert_eq(run_records("rate", records, 4, &out, &err), CC_EPARSE);
    cr_assert_str_eq(err, "test: line 3, column 'count' (2): not a number\n");
    cr_assert_null(strstr(out, "PRIVATE"));
    cr_assert_null(strstr(out, "\nC,"), "%s", out); /* nothing after the error */
    free(out);
    free(err);
}

Test(stats_csv, groups_come_out_in_order_of_first_appearance)
{
    static const char *const records[] = {"group,value", "b,1", "a,2", "b,3", "a,4", "b,5"};
    char *out, *err;
    cr_assert_eq(run_records("mean", records, 6, &out, &err), 0);
    const char *b = strstr(out, "\nb,9,3,"), *a = strstr(out, "\na,6,2,");
    cr_assert(a && b && b < a, "%s", out);
    free(out);
    free(err);
}

Test(stats_csv, every_method_is_found_by_name)
{
    for (size_t m = 0; m < cc_stats_csv_n_methods; m++)
        cr_assert_eq(cc_stats_csv_find_method(cc_stats_csv_methods[m].name),
                     &cc_stats_csv_methods[m]);
    cr_assert_null(cc_stats_csv_find_method("median"));
    struct cc_stats_csv_options opt;
    cc_stats_csv_options_init(&opt, cc_stats_csv_find_method("funnel-dsr"));
    cr_assert_eq(cc_stats_csv_map_column(&opt, "rate", "dsr"), 0);
    cr_assert_str_eq(opt.column_names[1], "dsr");
    cr_assert_eq(cc_stats_csv_map_column(&opt, "numerator", "x"), CC_ENOTFOUND);
    double level;
    cr_assert_eq(cc_stats_csv_parse_confidence("99.8", &level), 0);
    cr_assert_float_eq(level, 0.998, 1e-12);
    cr_assert_eq(cc_stats_csv_parse_confidence("95%", &level), 0);
    cr_assert_float_eq(level, 0.95, 1e-12);
    cr_assert_eq(cc_stats_csv_parse_confidence("100", &level), CC_EINVAL);
}
