/* Tests for core/cc_date.c: day numbers, parsing, ages. */
#include <criterion/criterion.h>
#include <string.h>

#include "cc_date.h"
#include "cc_error.h"

Test(date, epoch_is_day_zero)
{
    cr_assert_eq(cc_day_from_ymd(1900, 1, 1), 0);
    cr_assert_eq(cc_day_from_ymd(1900, 1, 2), 1);
    cr_assert_eq(cc_day_from_ymd(1970, 1, 1), 25567);
}

Test(date, round_trips_every_day_of_the_span)
{
    for (cc_day d = CC_DAY_MIN; d <= CC_DAY_MAX; d++) {
        int y, m, dd;
        cc_day_to_ymd(d, &y, &m, &dd);
        cr_assert_eq(cc_day_from_ymd(y, m, dd), d, "day %d", d);
    }
}

Test(date, rejects_dates_that_do_not_exist)
{
    cr_assert_eq(cc_day_from_ymd(2023, 2, 29), -1);
    cr_assert_eq(cc_day_from_ymd(1900, 2, 29), -1); /* 1900 was not a leap year */
    cr_assert_neq(cc_day_from_ymd(2000, 2, 29), -1);
    cr_assert_eq(cc_day_from_ymd(2021, 4, 31), -1);
    cr_assert_eq(cc_day_from_ymd(2021, 13, 1), -1);
    cr_assert_eq(cc_day_from_ymd(1899, 12, 31), -1);
}

Test(date, parse_requires_the_exact_shape)
{
    cc_day d;
    cr_assert_eq(cc_day_parse("2024-03-15", 10, &d), 0);
    char buf[11];
    cc_day_format(d, buf);
    cr_assert_str_eq(buf, "2024-03-15");
    cr_assert_eq(cc_day_parse("2024-3-15", 9, &d), CC_EPARSE);
    cr_assert_eq(cc_day_parse("15/03/2024", 10, &d), CC_EPARSE);
    cr_assert_eq(cc_day_parse("2024-02-30", 10, &d), CC_ERANGE);
}

Test(date, age_counts_whole_years)
{
    cc_day born = cc_day_from_ymd(2000, 2, 29);
    cr_assert_eq(cc_age_on(born, cc_day_from_ymd(2001, 2, 28)), 0);
    cr_assert_eq(cc_age_on(born, cc_day_from_ymd(2001, 3, 1)), 1);
    cr_assert_eq(cc_age_on(born, cc_day_from_ymd(2004, 2, 29)), 4);
}

Test(error, names_and_messages_come_from_one_table)
{
    cr_assert_str_eq(cc_err_name(CC_ENOMEM), "NOMEM");
    cr_assert_str_eq(cc_err_name(0), "OK");
    cr_assert(strlen(cc_strerror(CC_ECORRUPT)) > 0);
    cr_assert_str_eq(cc_err_name(12345), "UNKNOWN");
}
