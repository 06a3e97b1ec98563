/*
 * cc_date.c: day-number arithmetic for carecount (see cc_date.h). Uses the
 * days-from-civil algorithm (H. Hinnant) so conversions need no tables.
 */
#include "cc_date.h"
#include "cc_error.h"

#include <time.h>

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* 1900-01-01 relative to 1970-01-01 */
#define EPOCH_1900 (-25567)

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

cc_day cc_day_from_ymd(int year, int month, int day)
{
    if (year < 1900 || year > 2079 || month < 1 || month > 12 || day < 1 ||
        day > days_in_month(year, month))
        return -1;
    int64_t n = days_from_civil(year, (unsigned)month, (unsigned)day) - EPOCH_1900;
    if (n < CC_DAY_MIN || n > CC_DAY_MAX)
        return -1;
    return (cc_day)n;
}

void cc_day_to_ymd(cc_day dn, int *year, int *month, int *day)
{
    int64_t z = (int64_t)dn + EPOCH_1900 + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t y = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    *year = (int)(y + (m <= 2));
    *month = (int)m;
    *day = (int)d;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int cc_day_parse(const char *s, size_t len, cc_day *out)
{
    int y, m, d;
    if (len != 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) ||
        digits(s + 5, 2, &m) || digits(s + 8, 2, &d))
        return CC_EPARSE;
    cc_day n = cc_day_from_ymd(y, m, d);
    if (n < 0)
        return CC_ERANGE;
    *out = n;
    return 0;
}

void cc_day_format(cc_day d, char buf[11])
{
    int y, m, dd;
    cc_day_to_ymd(d, &y, &m, &dd);
    buf[0] = (char)('0' + y / 1000);
    buf[1] = (char)('0' + y / 100 % 10);
    buf[2] = (char)('0' + y / 10 % 10);
    buf[3] = (char)('0' + y % 10);
    buf[4] = '-';
    buf[5] = (char)('0' + m / 10);
    buf[6] = (char)('0' + m % 10);
    buf[7] = '-';
    buf[8] = (char)('0' + dd / 10);
    buf[9] = (char)('0' + dd % 10);
    buf[10] = '\0';
}

cc_day cc_day_today(void)
{
    time_t now = time(NULL);
    return (cc_day)(now / 86400 - EPOCH_1900);
}

int cc_age_on(cc_day born, cc_day on)
{
    int by, bm, bd, y, m, d;
    cc_day_to_ymd(born, &by, &bm, &bd);
    cc_day_to_ymd(on, &y, &m, &d);
    int age = y - by;
    if (m < bm || (m == bm && d < bd))
        age--;
    return age;
}
