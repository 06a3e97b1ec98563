/*
 * cc_ageband.c: five-year age bands (see cc_ageband.h).
 */
#include "cc_ageband.h"

int cc_ageband_of_age(int age_years)
{
    if (age_years < 0)
        return -1;
    if (age_years >= 90)
        return CC_N_AGE_BANDS_5Y - 1;
    return age_years / 5;
}

/* Reads the decimal digits at name[*at..len) into *value (at most 9 of
 * them, leading zeros aside); 0 if there are none or too many. */
static int read_digits(const char *name, size_t len, size_t *at, long *value)
{
    size_t start = *at, significant = 0;
    long v = 0;
    while (*at < len && name[*at] >= '0' && name[*at] <= '9') {
        v = v * 10 + (name[*at] - '0');
        if (v > 0 && ++significant > 9)
            return 0;
        (*at)++;
    }
    *value = v;
    return *at > start;
}

int cc_ageband_from_name(const char *name, size_t len)
{
    size_t at = 0;
    long low, high;

    if (!read_digits(name, len, &at, &low) || low % 5 || at == len)
        return -1;
    if (name[at] == '+')
        return at + 1 == len && low == 90 ? CC_N_AGE_BANDS_5Y - 1 : -1;
    if (name[at] != '-')
        return -1;
    at++;
    if (!read_digits(name, len, &at, &high) || at != len || high != low + 4 || low > 85)
        return -1;
    return (int)(low / 5);
}
