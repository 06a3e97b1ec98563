/* Tests for core/cc_validate.c: every validation rule of the feeds, with good
 * and bad values. */
#include <criterion/criterion.h>
#include <string.h>

#include "cc_error.h"
#include "cc_model.h"
#include "cc_validate.h"

static int nhs(const char *s, char digits[10])
{
    return cc_validate_nhs_number(s, strlen(s), digits);
}

Test(validate, nhs_number_with_valid_check_digit)
{
    char d[10];
    cr_assert_eq(nhs("9434765919", d), 0);
    cr_assert_eq(memcmp(d, "9434765919", 10), 0);
    cr_assert_eq(nhs("943 476 5919", d), 0);
    cr_assert_eq(memcmp(d, "9434765919", 10), 0, "spaces are removed");
}

Test(validate, nhs_number_with_a_changed_digit_is_invalid)
{
    char d[10];
    cr_assert_eq(nhs("9434765918", d), CC_EINVAL);
    cr_assert_eq(nhs("9434765929", d), CC_EINVAL);
    cr_assert_eq(nhs("8434765919", d), CC_EINVAL);
}

Test(validate, nhs_number_check_11_means_0)
{
    char d[10];
    /* 4010232137: weighted sum 92, 92 % 11 = 4, check 11 - 4 = 7 */
    cr_assert_eq(nhs("4010232137", d), 0);
    /* 1100000003: weighted sum 19, 19 % 11 = 8, check 3 */
    cr_assert_eq(nhs("1100000003", d), 0);
    /* 200000001c: weighted sum 22, 22 % 11 = 0, check 11, written as 0 */
    cr_assert_eq(nhs("2000000010", d), 0);
    cr_assert_eq(nhs("2000000011", d), CC_EINVAL);
}

Test(validate, nhs_number_whose_check_would_be_10_is_invalid)
{
    char d[10];
    /* 100000001c: weighted sum 12, 12 % 11 = 1, check 10: no valid number */
    for (char last = '0'; last <= '9'; last++) {
        char s[11] = "100000001";
        s[9] = last;
        s[10] = '\0';
        cr_assert_eq(nhs(s, d), CC_EINVAL, "%s", s);
    }
}

Test(validate, nhs_number_of_the_wrong_shape)
{
    char d[10];
    cr_assert_eq(nhs("", d), CC_EPARSE);
    cr_assert_eq(nhs("943476591", d), CC_EPARSE);
    cr_assert_eq(nhs("94347659190", d), CC_EPARSE);
    cr_assert_eq(nhs("943476591X", d), CC_EPARSE);
    cr_assert_eq(nhs("9434 765919", d), CC_EPARSE, "spaces only as 3-3-4");
    cr_assert_eq(nhs("943-476-5919", d), CC_EPARSE);
}

static int postcode(const char *s, char out[9])
{
    size_t len = 0;
    int rc = cc_validate_postcode(s, strlen(s), out, &len);
    if (rc == 0)
        cr_assert_eq(len, strlen(out));
    return rc;
}

Test(validate, postcode_every_format_is_canonicalised)
{
    static const char *cases[][2] = {
        {"M1 1AE", "M1 1AE"},     /* A9 9AA */
        {"B33 8TH", "B33 8TH"},   /* A99 9AA */
        {"W1A 0AX", "W1A 0AX"},   /* A9A 9AA */
        {"CR2 6XH", "CR2 6XH"},   /* AA9 9AA */
        {"DN55 1PT", "DN55 1PT"}, /* AA99 9AA */
        {"EC1A 1BB", "EC1A 1BB"}, /* AA9A 9AA */
        {"GIR 0AA", "GIR 0AA"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[9];
        cr_assert_eq(postcode(cases[i][0], out), 0, "%s", cases[i][0]);
        cr_assert_str_eq(out, cases[i][1]);
    }
}

Test(validate, postcode_any_spelling_gives_one_form)
{
    static const char *spellings[] = {"LS1 4AP", "ls1 4ap", "LS14AP", "LS1  4AP", " ls14Ap ",
                                      "Ls1\t4aP"};
    for (size_t i = 0; i < sizeof spellings / sizeof spellings[0]; i++) {
        char out[9];
        cr_assert_eq(postcode(spellings[i], out), 0, "spelling %zu", i);
        cr_assert_str_eq(out, "LS1 4AP");
    }
}

Test(validate, postcode_of_the_wrong_shape)
{
    static const char *bad[] = {"",        "LS1",      "LS1 4A",   "LS1 AAP",  "1S1 4AP",
                                "LS1 44P", "LSS1 4AP", "LS123 4AP", "L-1 4AP", "EC1AA 1BB",
                                "A1A1 1AA", "ZZZ 0AA"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char out[9];
        cr_assert_eq(postcode(bad[i], out), CC_EPARSE, "%s", bad[i]);
    }
}

Test(validate, sex_codes)
{
    uint8_t sex = 77;
    cr_assert_eq(cc_validate_sex("0", 1, &sex), 0);
    cr_assert_eq(sex, CC_SEX_NOT_KNOWN);
    cr_assert_eq(cc_validate_sex("1", 1, &sex), 0);
    cr_assert_eq(sex, CC_SEX_MALE);
    cr_assert_eq(cc_validate_sex("2", 1, &sex), 0);
    cr_assert_eq(sex, CC_SEX_FEMALE);
    cr_assert_eq(cc_validate_sex("9", 1, &sex), 0);
    cr_assert_eq(sex, CC_SEX_INDETERMINATE);
    cr_assert_eq(cc_validate_sex("3", 1, &sex), CC_EINVAL);
    cr_assert_eq(cc_validate_sex("M", 1, &sex), CC_EPARSE);
    cr_assert_eq(cc_validate_sex("", 0, &sex), CC_EPARSE);
    cr_assert_eq(cc_validate_sex("12", 2, &sex), CC_EPARSE);
}

static int date(const char *s, cc_day today, cc_day *out)
{
    return cc_validate_date(s, strlen(s), today, out);
}

Test(validate, dates_real_leap_and_in_range)
{
    cc_day today = cc_day_from_ymd(2025, 6, 30);
    cc_day d;
    cr_assert_eq(date("2024-02-29", today, &d), 0, "2024 is a leap year");
    cr_assert_eq(d, cc_day_from_ymd(2024, 2, 29));
    cr_assert_eq(date("2000-02-29", today, &d), 0, "2000 is a leap year");
    cr_assert_eq(date("1900-01-01", today, &d), 0);
    cr_assert_eq(d, 0);
    cr_assert_eq(date("2025-06-30", today, &d), 0, "today is not the future");
}

Test(validate, dates_that_do_not_exist)
{
    cc_day today = cc_day_from_ymd(2025, 6, 30);
    cc_day d;
    cr_assert_eq(date("2023-02-29", today, &d), CC_EINVAL);
    cr_assert_eq(date("1900-02-29", today, &d), CC_EINVAL, "1900 was not a leap year");
    cr_assert_eq(date("2024-02-30", today, &d), CC_EINVAL);
    cr_assert_eq(date("2024-04-31", today, &d), CC_EINVAL);
    cr_assert_eq(date("2024-13-01", today, &d), CC_EINVAL);
    cr_assert_eq(date("2024-00-10", today, &d), CC_EINVAL);
    cr_assert_eq(date("2024-01-00", today, &d), CC_EINVAL);
}

Test(validate, dates_in_the_future_or_before_1900)
{
    cc_day today = cc_day_from_ymd(2025, 6, 30);
    cc_day d;
    cr_assert_eq(date("2025-07-01", today, &d), CC_ERANGE);
    cr_assert_eq(date("2099-01-01", today, &d), CC_ERANGE);
    cr_assert_eq(date("1899-12-31", today, &d), CC_ERANGE);
}

Test(validate, dates_of_the_wrong_shape)
{
    cc_day today = cc_day_from_ymd(2025, 6, 30);
    cc_day d;
    static const char *bad[] = {"", "2024-1-01", "2024/01/01", "01-01-2024", "2024-01-01T00",
                                "20240101", "2024-0a-01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(date(bad[i], today, &d), CC_EPARSE, "%s", bad[i]);
}

static void code_ok(int (*fn)(const char *, size_t, char *), const char *in, const char *want)
{
    char out[CC_CODE_TEXT_BYTES];
    int rc = fn(in, strlen(in), out);
    cr_assert_eq(rc, 0, "%s: %d", in, rc);
    cr_assert_str_eq(out, want, "%s", in);
}

static int code_rc(int (*fn)(const char *, size_t, char *), const char *in)
{
    char out[CC_CODE_TEXT_BYTES];
    return fn(in, strlen(in), out);
}

Test(validate, icd10_codes_are_normalised)
{
    code_ok(cc_validate_icd10, "E11", "E11");
    code_ok(cc_validate_icd10, "E119", "E119");
    code_ok(cc_validate_icd10, "E11.9", "E119");
    code_ok(cc_validate_icd10, "e11.9", "E119");
    code_ok(cc_validate_icd10, "I10X", "I10");
    code_ok(cc_validate_icd10, "I10x", "I10");
    code_ok(cc_validate_icd10, "I10-", "I10");
    code_ok(cc_validate_icd10, "U071", "U071");
}

Test(validate, icd10_codes_of_the_wrong_shape)
{
    static const char *bad[] = {"", "E1", "1E11", "EE11", "E1A", "E11.", "E11..9", "E1199",
                                "E11A", "E11.X9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(code_rc(cc_validate_icd10, bad[i]), CC_EPARSE, "%s", bad[i]);
}

Test(validate, opcs4_codes)
{
    code_ok(cc_validate_opcs4, "K40", "K40");
    code_ok(cc_validate_opcs4, "K401", "K401");
    code_ok(cc_validate_opcs4, "k40.1", "K401");
    code_ok(cc_validate_opcs4, "U051", "U051"); /* chapter U: diagnostic imaging */
    code_ok(cc_validate_opcs4, "W371", "W371");
    cr_assert_eq(code_rc(cc_validate_opcs4, "I401"), CC_EINVAL, "there is no chapter I");
    static const char *bad[] = {"", "K4", "K4A1", "K40X", "K40.", "K4011", "140"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(code_rc(cc_validate_opcs4, bad[i]), CC_EPARSE, "%s", bad[i]);
}

Test(validate, snomed_real_concept_ids_are_valid)
{
    code_ok(cc_validate_snomed, "44054006", "44054006");   /* type 2 diabetes */
    code_ok(cc_validate_snomed, "38341003", "38341003");   /* hypertension */
    code_ok(cc_validate_snomed, "195967001", "195967001"); /* asthma */
    code_ok(cc_validate_snomed, "22298006", "22298006");   /* myocardial infarction */
    code_ok(cc_validate_snomed, "999000011000000103", "999000011000000103"); /* UK extension, partition 10 */
    cr_assert_eq(cc_validate_snomed_partition("44054006", 8), 0);
    cr_assert_eq(cc_validate_snomed_partition("999000011000000103", 18), 10);
}

Test(validate, snomed_with_the_last_digit_changed_is_invalid)
{
    static const char *valid[] = {"44054006", "38341003", "195967001"};
    for (size_t i = 0; i < 3; i++) {
        char s[20];
        strcpy(s, valid[i]);
        size_t n = strlen(s);
        for (char c = '0'; c <= '9'; c++) {
            if (c == valid[i][n - 1])
                continue;
            s[n - 1] = c;
            cr_assert_eq(code_rc(cc_validate_snomed, s), CC_EINVAL, "%s", s);
        }
    }
}

Test(validate, snomed_wrong_shape_or_partition)
{
    cr_assert_eq(code_rc(cc_validate_snomed, "12345"), CC_EPARSE, "too short");
    cr_assert_eq(code_rc(cc_validate_snomed, "1234567890123456789"), CC_EPARSE, "too long");
    cr_assert_eq(code_rc(cc_validate_snomed, "044054006"), CC_EPARSE, "leading zero");
    cr_assert_eq(code_rc(cc_validate_snomed, "4405400A"), CC_EPARSE);
    cr_assert_eq(code_rc(cc_validate_snomed, ""), CC_EPARSE);
    /* 100000037 passes Verhoeff but has partition 03 */
    cr_assert_eq(code_rc(cc_validate_snomed, "100000037"), CC_EINVAL);
}

Test(validate, practice_codes)
{
    char out[CC_PRACTICE_CODE_BYTES];
    cr_assert_eq(cc_validate_practice_code("B86001", 6, out), 0);
    cr_assert_str_eq(out, "B86001");
    cr_assert_eq(cc_validate_practice_code("b86001", 6, out), 0);
    cr_assert_str_eq(out, "B86001");
    cr_assert_eq(cc_validate_practice_code("B8600", 5, out), CC_EPARSE);
    cr_assert_eq(cc_validate_practice_code("886001", 6, out), CC_EPARSE);
    cr_assert_eq(cc_validate_practice_code("BB6001", 6, out), CC_EPARSE);
    cr_assert_eq(cc_validate_practice_code("B860011", 7, out), CC_EPARSE);
}

Test(validate, provider_codes)
{
    char out[CC_PROVIDER_CODE_BYTES];
    cr_assert_eq(cc_validate_provider_code("RR8", 3, out), 0);
    cr_assert_str_eq(out, "RR8");
    cr_assert_eq(cc_validate_provider_code("rr801", 5, out), 0);
    cr_assert_str_eq(out, "RR801");
    cr_assert_eq(cc_validate_provider_code("NLX", 3, out), 0);
    cr_assert_eq(cc_validate_provider_code("RR80", 4, out), CC_EPARSE);
    cr_assert_eq(cc_validate_provider_code("8RR", 3, out), CC_EPARSE);
    cr_assert_eq(cc_validate_provider_code("R-8", 3, out), CC_EPARSE);
    cr_assert_eq(cc_validate_provider_code("", 0, out), CC_EPARSE);
}

Test(validate, optout_read_codes_are_case_sensitive)
{
    int type = -1;
    cr_assert_eq(cc_validate_optout_code("9Nu0", 4, &type), 0);
    cr_assert_eq(type, CC_OPTOUT_TYPE1);
    cr_assert_eq(cc_validate_optout_code("9Nu4", 4, &type), 0);
    cr_assert_eq(type, CC_OPTOUT_NDOP);
    cr_assert_eq(cc_validate_optout_code("9Nu0.", 5, &type), 0);
    cr_assert_eq(type, CC_OPTOUT_TYPE1);
    cr_assert_eq(cc_validate_optout_code("", 0, &type), 0);
    cr_assert_eq(type, 0);
    cr_assert_eq(cc_validate_optout_code("9NU0", 4, &type), CC_EINVAL, "Read codes keep case");
    cr_assert_eq(cc_validate_optout_code("9nu4", 4, &type), CC_EINVAL);
    cr_assert_eq(cc_validate_optout_code("9Nu1", 4, &type), CC_EINVAL);
    cr_assert_eq(cc_validate_optout_code("9Nu", 3, &type), CC_EPARSE);
}

Test(validate, reasons_are_fixed_text_without_values)
{
    cr_assert_str_eq(cc_validate_reason(CC_VALIDATE_NHS_NUMBER, CC_EINVAL),
                     "invalid NHS number check digit");
    cr_assert_str_eq(cc_validate_reason(CC_VALIDATE_DATE, CC_ERANGE),
                     "date in the future or before 1900");
    cr_assert_str_neq(cc_validate_reason(CC_VALIDATE_NHS_NUMBER, CC_EPARSE),
                      cc_validate_reason(CC_VALIDATE_NHS_NUMBER, CC_EINVAL));
    const int errs[] = {CC_EPARSE, CC_EINVAL, CC_ERANGE};
    for (int kind = CC_VALIDATE_NHS_NUMBER; kind <= CC_VALIDATE_OPTOUT_CODE + 1; kind++) {
        for (int e = 0; e < 3; e++) {
            const char *reason = cc_validate_reason(kind, errs[e]);
            cr_assert_not_null(reason);
            cr_assert_gt(strlen(reason), 5);
            cr_assert_eq(reason, cc_validate_reason(kind, errs[e]), "a fixed, static string");
        }
    }
}
