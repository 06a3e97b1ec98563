/*
 * fuzz_validate.c: the field validators of core/cc_validate.h, above all
 * the NHS number (Modulus 11) and the postcode, on arbitrary bytes.
 *
 * Checks: an accepted NHS number is 10 digits whose check digit holds; an
 * accepted postcode is canonical (6 to 8 bytes, upper case, one space before
 * a 3-character inward code) and validating the canonical form again gives
 * itself; every other validator's output is NUL-terminated within its
 * buffer and stable under a second pass; every reason is a fixed text.
 *
 * Must never: pass an input that a validator accepts into a malformed
 * normal form, or reads beyond.
 */
#include <ctype.h>

#include "cc_error.h"
#include "cc_validate.h"
#include "fuzz_common.h"

static void nhs(const char *s, size_t len)
{
    char digits[CC_NHS_NUMBER_DIGITS];
    int rc = cc_validate_nhs_number(s, len, digits);
    check(rc == 0 || rc == CC_EPARSE || rc == CC_EINVAL);
    check(cc_validate_reason(CC_VALIDATE_NHS_NUMBER, rc) != NULL);
    if (rc != 0)
        return;
    int sum = 0;
    for (int i = 0; i < CC_NHS_NUMBER_DIGITS; i++)
        check(digits[i] >= '0' && digits[i] <= '9');
    for (int i = 0; i < 9; i++)
        sum += (digits[i] - '0') * (10 - i);
    int want = 11 - sum % 11;
    if (want == 11)
        want = 0;
    check(want != 10 && digits[9] - '0' == want);
    char again[CC_NHS_NUMBER_DIGITS];
    check(cc_validate_nhs_number(digits, CC_NHS_NUMBER_DIGITS, again) == 0);
    check(memcmp(again, digits, CC_NHS_NUMBER_DIGITS) == 0);
}

static void postcode(const char *s, size_t len)
{
    char out[CC_POSTCODE_BYTES];
    size_t out_len = 0;
    int rc = cc_validate_postcode(s, len, out, &out_len);
    check(rc == 0 || rc == CC_EPARSE || rc == CC_EINVAL);
    check(cc_validate_reason(CC_VALIDATE_POSTCODE, rc) != NULL);
    if (rc != 0)
        return;
    check(out_len >= 6 && out_len <= 8 && out[out_len] == '\0');
    check(out[out_len - 4] == ' ');
    for (size_t i = 0; i < out_len; i++)
        check(i == out_len - 4 || isdigit((unsigned char)out[i]) ||
              (out[i] >= 'A' && out[i] <= 'Z'));
    check(isdigit((unsigned char)out[out_len - 3]));
    char again[CC_POSTCODE_BYTES];
    size_t again_len = 0;
    check(cc_validate_postcode(out, out_len, again, &again_len) == 0);
    check(again_len == out_len && memcmp(again, out, out_len + 1) == 0);
}

/* A validator of the (s, len, out) shape whose output is a C string. */
typedef int (*string_validator)(const char *s, size_t len, char *out);

static void text(int kind, string_validator fn, const char *s, size_t len, size_t out_bytes)
{
    char out[32];
    memset(out, 0x55, sizeof out);
    int rc = fn(s, len, out);
    check(rc == 0 || rc == CC_EPARSE || rc == CC_EINVAL || rc == CC_ERANGE);
    check(cc_validate_reason(kind, rc) != NULL);
    if (rc != 0)
        return;
    size_t n = strnlen(out, out_bytes);
    check(n < out_bytes);
    check((unsigned char)out[out_bytes] == 0x55 || out_bytes >= sizeof out); /* no overrun */
    char again[32];
    check(fn(out, n, again) == 0);
    check(strcmp(again, out) == 0);
}

static int icd10(const char *s, size_t len, char *out) { return cc_validate_icd10(s, len, out); }
static int opcs4(const char *s, size_t len, char *out) { return cc_validate_opcs4(s, len, out); }
static int snomed(const char *s, size_t len, char *out) { return cc_validate_snomed(s, len, out); }
static int practice(const char *s, size_t len, char *out)
{
    return cc_validate_practice_code(s, len, out);
}
static int provider(const char *s, size_t len, char *out)
{
    return cc_validate_provider_code(s, len, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so ASan sees any read past the end */
    char *s = malloc(size ? size : 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    nhs(s, size);
    postcode(s, size);
    text(CC_VALIDATE_ICD10, icd10, s, size, CC_CODE_TEXT_BYTES);
    text(CC_VALIDATE_OPCS4, opcs4, s, size, CC_CODE_TEXT_BYTES);
    text(CC_VALIDATE_SNOMED, snomed, s, size, CC_CODE_TEXT_BYTES);
    text(CC_VALIDATE_PRACTICE_CODE, practice, s, size, CC_PRACTICE_CODE_BYTES);
    text(CC_VALIDATE_PROVIDER_CODE, provider, s, size, CC_PROVIDER_CODE_BYTES);

    char snomed_out[CC_CODE_TEXT_BYTES];
    if (cc_validate_snomed(s, size, snomed_out) == 0) {
        int p = cc_validate_snomed_partition(snomed_out, strlen(snomed_out));
        check(p == 0 || p == 1 || p == 2 || p == 10 || p == 11 || p == 12);
    }
    uint8_t sex;
    int rc = cc_validate_sex(s, size, &sex);
    check(rc != 0 || sex == 0 || sex == 1 || sex == 2 || sex == 9);
    cc_day day;
    cc_day today = cc_day_from_ymd(2026, 12, 1);
    rc = cc_validate_date(s, size, today, &day);
    check(rc == 0 || rc == CC_EPARSE || rc == CC_EINVAL || rc == CC_ERANGE);
    check(rc != 0 || day <= today);
    int type = -1;
    rc = cc_validate_optout_code(s, size, &type);
    check(rc != 0 || type >= 0);
    free(s);
    return 0;
}
