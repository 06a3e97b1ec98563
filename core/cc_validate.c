/*
 * cc_validate.c: field validation and normalisation for the feeds (see
 * cc_validate.h and docs/data-formats.md).
 *
 * Every function is pure: it reads its input bytes and writes only its
 * outputs. The rules and where they come from:
 *   NHS number   Modulus 11 check digit (NHS Data Dictionary).
 *   postcode     the six outward formats of the Royal Mail PAF and GIR 0AA;
 *                letters are not restricted further (the PAF's unused letters
 *                change over time, and a postcode that does not exist is
 *                caught by the area lookup, not here).
 *   ICD-10       letter, 2 digits, optional 4th character; HES's filler X
 *                (and the dash some extracts use) marks a 3-character code.
 *   OPCS-4       chapters A-Z except I (OPCS-4.10 has no chapter I; U is
 *                diagnostic imaging since 4.3, O the overflow chapter).
 *   SNOMED CT    Verhoeff check digit and partition identifier (SNOMED CT
 *                Technical Implementation Guide, "SCTID").
 *
 * Must never: print, log or keep an input; reasons are fixed strings.
 */
#include "cc_validate.h"
#include "cc_error.h"
#include "cc_model.h"

#include <string.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_letter(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

int cc_validate_nhs_number(const char *s, size_t len, char digits[CC_NHS_NUMBER_DIGITS])
{
    size_t n = 0;
    if (len == 12) {
        if (s[3] != ' ' || s[7] != ' ')
            return CC_EPARSE;
    } else if (len != 10) {
        return CC_EPARSE;
    }
    for (size_t i = 0; i < len; i++) {
        if (len == 12 && (i == 3 || i == 7))
            continue;
        if (!is_digit(s[i]))
            return CC_EPARSE;
        digits[n++] = s[i];
    }
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (digits[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    if (check == 11)
        check = 0;
    if (check == 10 || check != digits[9] - '0')
        return CC_EINVAL;
    return 0;
}

int cc_validate_postcode(const char *s, size_t len, char out[CC_POSTCODE_BYTES], size_t *out_len)
{
    char compact[8];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ' || s[i] == '\t')
            continue;
        if (!is_letter(s[i]) && !is_digit(s[i]))
            return CC_EPARSE;
        if (n == 7)
            return CC_EPARSE;
        compact[n++] = upper(s[i]);
    }
    if (n < 5)
        return CC_EPARSE;
    const char *in = compact + n - 3; /* inward code: digit, letter, letter */
    if (!is_digit(in[0]) || !is_letter(in[1]) || !is_letter(in[2]))
        return CC_EPARSE;
    size_t outward_len = n - 3;
    const char *o = compact;
    int ok;
    switch (outward_len) {
    case 2: /* A9 */
        ok = is_letter(o[0]) && is_digit(o[1]);
        break;
    case 3: /* A99, A9A, AA9, and GIR */
        ok = (is_letter(o[0]) && is_digit(o[1]) && (is_digit(o[2]) || is_letter(o[2]))) ||
             (is_letter(o[0]) && is_letter(o[1]) && is_digit(o[2])) ||
             (n == 6 && !memcmp(compact, "GIR0AA", 6));
        break;
    case 4: /* AA99, AA9A */
        ok = is_letter(o[0]) && is_letter(o[1]) && is_digit(o[2]) &&
             (is_digit(o[3]) || is_letter(o[3]));
        break;
    default:
        ok = 0;
    }
    if (!ok)
        return CC_EPARSE;
    memcpy(out, compact, outward_len);
    out[outward_len] = ' ';
    memcpy(out + outward_len + 1, in, 3);
    out[n + 1] = '\0';
    *out_len = n + 1;
    return 0;
}

int cc_validate_sex(const char *s, size_t len, uint8_t *sex)
{
    if (len != 1 || !is_digit(s[0]))
        return CC_EPARSE;
    switch (s[0]) {
    case '0':
        *sex = CC_SEX_NOT_KNOWN;
        return 0;
    case '1':
        *sex = CC_SEX_MALE;
        return 0;
    case '2':
        *sex = CC_SEX_FEMALE;
        return 0;
    case '9':
        *sex = CC_SEX_INDETERMINATE;
        return 0;
    default:
        return CC_EINVAL;
    }
}

static int parse_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int cc_validate_date(const char *s, size_t len, cc_day today, cc_day *out)
{
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return CC_EPARSE;
    for (size_t i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !is_digit(s[i]))
            return CC_EPARSE;
    int year = parse_digits(s, 4), month = parse_digits(s + 5, 2), day = parse_digits(s + 8, 2);
    static const int days_in_month[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12 || day < 1 || day > days_in_month[month - 1])
        return CC_EINVAL;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month == 2 && day == 29 && !leap)
        return CC_EINVAL;
    cc_day d = cc_day_from_ymd(year, month, day);
    if (d < 0 || d > today)
        return CC_ERANGE; /* before 1900, beyond the store's span, or future */
    *out = d;
    return 0;
}

int cc_validate_icd10(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES])
{
    if (len < 3 || len > 5 || !is_letter(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
        return CC_EPARSE;
    size_t fourth = 3;
    if (len >= 4 && s[3] == '.') {
        if (len != 5)
            return CC_EPARSE;
        fourth = 4;
    } else if (len == 5) {
        return CC_EPARSE;
    }
    out[0] = upper(s[0]);
    out[1] = s[1];
    out[2] = s[2];
    out[3] = '\0';
    if (len > fourth) {
        char c = upper(s[fourth]);
        if (is_digit(c))
            out[3] = c, out[4] = '\0';
        else if (c != 'X' && c != '-')
            return CC_EPARSE;
    }
    return 0;
}

int cc_validate_opcs4(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES])
{
    if (len < 3 || len > 5 || !is_letter(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
        return CC_EPARSE;
    size_t fourth = 3;
    if (len >= 4 && s[3] == '.') {
        if (len != 5)
            return CC_EPARSE;
        fourth = 4;
    } else if (len == 5) {
        return CC_EPARSE;
    }
    if (len > fourth && !is_digit(s[fourth]))
        return CC_EPARSE;
    char chapter = upper(s[0]);
    if (chapter == 'I')
        return CC_EINVAL; /* OPCS-4 has no chapter I */
    out[0] = chapter;
    out[1] = s[1];
    out[2] = s[2];
    size_t n = 3;
    if (len > fourth)
        out[n++] = s[fourth];
    out[n] = '\0';
    return 0;
}

/* Verhoeff's dihedral group D5 multiplication and position permutation. */
static const uint8_t verhoeff_multiply[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
    {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
    {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
    {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
};
static const uint8_t verhoeff_permute[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
    {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
    {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
};

/* Returns 1 if the digits (check digit last) pass Verhoeff's check. */
static int verhoeff_valid(const char *digits, size_t len)
{
    unsigned check = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned digit = (unsigned)(digits[len - 1 - i] - '0');
        check = verhoeff_multiply[check][verhoeff_permute[i % 8][digit]];
    }
    return check == 0;
}

int cc_validate_snomed_partition(const char *digits, size_t len)
{
    return (digits[len - 3] - '0') * 10 + (digits[len - 2] - '0');
}

int cc_validate_snomed(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES])
{
    if (len < 6 || len > 18 || s[0] == '0')
        return CC_EPARSE;
    for (size_t i = 0; i < len; i++)
        if (!is_digit(s[i]))
            return CC_EPARSE;
    if (!verhoeff_valid(s, len))
        return CC_EINVAL;
    switch (cc_validate_snomed_partition(s, len)) {
    case 0: case 1: case 2: case 10: case 11: case 12:
        break;
    default:
        return CC_EINVAL;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

int cc_validate_practice_code(const char *s, size_t len, char out[CC_PRACTICE_CODE_BYTES])
{
    if (len != 6 || !is_letter(s[0]))
        return CC_EPARSE;
    for (size_t i = 1; i < 6; i++)
        if (!is_digit(s[i]))
            return CC_EPARSE;
    out[0] = upper(s[0]);
    memcpy(out + 1, s + 1, 5);
    out[6] = '\0';
    return 0;
}

int cc_validate_provider_code(const char *s, size_t len, char out[CC_PROVIDER_CODE_BYTES])
{
    if ((len != 3 && len != 5) || !is_letter(s[0]))
        return CC_EPARSE;
    for (size_t i = 0; i < len; i++) {
        if (!is_letter(s[i]) && !is_digit(s[i]))
            return CC_EPARSE;
        out[i] = upper(s[i]);
    }
    out[len] = '\0';
    return 0;
}

int cc_validate_optout_code(const char *s, size_t len, int *type)
{
    if (len == 0) {
        *type = 0;
        return 0;
    }
    if (len == 5 && s[4] == '.')
        len = 4; /* Read v2 pads codes to 5 characters with a dot */
    if (len != 4)
        return CC_EPARSE;
    if (!memcmp(s, "9Nu0", 4)) {
        *type = CC_OPTOUT_TYPE1;
        return 0;
    }
    if (!memcmp(s, "9Nu4", 4)) {
        *type = CC_OPTOUT_NDOP;
        return 0;
    }
    return CC_EINVAL;
}

const char *cc_validate_reason(int field_kind, int err)
{
    if (err == 0)
        return "valid";
    switch (field_kind) {
    case CC_VALIDATE_NHS_NUMBER:
        return err == CC_EINVAL ? "invalid NHS number check digit"
                                : "NHS number is not 10 digits";
    case CC_VALIDATE_POSTCODE:
        return "postcode is not in a UK postcode format";
    case CC_VALIDATE_SEX:
        return err == CC_EINVAL ? "sex code is not 0, 1, 2 or 9" : "sex code is not one digit";
    case CC_VALIDATE_DATE:
        return err == CC_ERANGE   ? "date in the future or before 1900"
               : err == CC_EINVAL ? "date does not exist"
                                  : "date is not YYYY-MM-DD";
    case CC_VALIDATE_ICD10:
        return "malformed ICD-10 code";
    case CC_VALIDATE_OPCS4:
        return err == CC_EINVAL ? "no such OPCS-4 chapter" : "malformed OPCS-4 code";
    case CC_VALIDATE_SNOMED:
        return err == CC_EINVAL ? "invalid SNOMED CT check digit or partition"
                                : "malformed SNOMED CT identifier";
    case CC_VALIDATE_PRACTICE_CODE:
        return "malformed practice code";
    case CC_VALIDATE_PROVIDER_CODE:
        return "malformed provider code";
    case CC_VALIDATE_OPTOUT_CODE:
        return err == CC_EINVAL ? "unknown opt-out code" : "malformed opt-out code";
    default:
        return "invalid field";
    }
}
