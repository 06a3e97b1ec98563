/* Tests for core/cc_ageband.c: the one parser of five-year band names that
 * the population feed and `carecount stats dsr` share. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cc_ageband.h"

static int band(const char *name)
{
    return cc_ageband_from_name(name, strlen(name));
}

Test(ageband, names_every_band_as_the_population_feed_writes_it)
{
    char name[16];
    for (int b = 0; b < CC_N_AGE_BANDS_5Y - 1; b++) {
        snprintf(name, sizeof name, "%d-%d", b * 5, b * 5 + 4);
        cr_assert_eq(band(name), b, "%s", name);
    }
    cr_assert_eq(band("90+"), CC_N_AGE_BANDS_5Y - 1);
}

Test(ageband, accepts_leading_zeros)
{
    cr_assert_eq(band("05-09"), 1);
    cr_assert_eq(band("00-04"), 0);
    cr_assert_eq(band("0-04"), 0);
    cr_assert_eq(band("090+"), 18);
}

Test(ageband, rejects_anything_else)
{
    static const char *bad[] = {"", "0", "0-", "-4", "0-5", "1-5", "90-94", "85+",
                                "90", "90++", "+0-4", "0-+4", " 0-4", "0-4 ", "0 -4",
                                "0-4x", "5-9-", "100+", "95-99", "99999999999990-4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(band(bad[i]), -1, "'%s'", bad[i]);
}

Test(ageband, reads_only_the_given_length)
{
    /* a field of a row buffer is not NUL-terminated */
    cr_assert_eq(cc_ageband_from_name("5-9,100", 3), 1);
    cr_assert_eq(cc_ageband_from_name("90+5", 3), 18);
    cr_assert_eq(cc_ageband_from_name("5-9", 2), -1);
}

Test(ageband, gives_each_age_its_band)
{
    cr_assert_eq(cc_ageband_of_age(0), 0);
    cr_assert_eq(cc_ageband_of_age(4), 0);
    cr_assert_eq(cc_ageband_of_age(5), 1);
    cr_assert_eq(cc_ageband_of_age(89), 17);
    cr_assert_eq(cc_ageband_of_age(90), 18);
    cr_assert_eq(cc_ageband_of_age(120), 18);
    cr_assert_eq(cc_ageband_of_age(-1), -1);
}
