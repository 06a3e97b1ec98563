/*
 * cc_validate.h: validation and normalisation of the fields of carecount's
 * feeds (see docs/data-formats.md).
 *
 * Each function looks at its input bytes only (no I/O, no global state, no
 * allocation), and returns 0 with the normalised value written to out, or
 *   CC_EPARSE  the field has the wrong shape (length, characters; empty),
 *   CC_EINVAL  the shape is right but the value is not (a check digit, a date
 *              that does not exist, an unknown code),
 *   CC_ERANGE  the value is real but outside what carecount accepts (a date in
 *              the future or before 1900).
 * Inputs are (pointer, length) pairs and need no terminator. On failure out is
 * left in an unspecified state.
 *
 * Must never: print, log or copy an input anywhere but out; the reason
 * strings (cc_validate_reason) are fixed texts that never hold a value.
 */
#ifndef CC_VALIDATE_H
#define CC_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "cc_date.h"
#include "cc_store.h" /* CC_CODE_TEXT_BYTES, CC_PRACTICE_CODE_BYTES */

#define CC_NHS_NUMBER_DIGITS 10
#define CC_POSTCODE_BYTES 9      /* "AA9A 9AA" and a NUL */
#define CC_PROVIDER_CODE_BYTES 8 /* "RR801" and a NUL, with room */

/* The kinds of field, for cc_validate_reason(). */
enum cc_validate_field {
    CC_VALIDATE_NHS_NUMBER = 1,
    CC_VALIDATE_POSTCODE = 2,
    CC_VALIDATE_SEX = 3,
    CC_VALIDATE_DATE = 4,
    CC_VALIDATE_ICD10 = 5,
    CC_VALIDATE_OPCS4 = 6,
    CC_VALIDATE_SNOMED = 7,
    CC_VALIDATE_PRACTICE_CODE = 8,
    CC_VALIDATE_PROVIDER_CODE = 9,
    CC_VALIDATE_OPTOUT_CODE = 10,
};

/* An NHS number: 10 digits, written either without spaces or in 3-3-4 groups
 * ("943 476 5919"). The 10th digit is the Modulus 11 check digit (weights
 * 10..2 on the first nine; check = 11 - sum % 11; 11 means 0; 10 means the
 * number is invalid). digits receives the 10 digits, not NUL-terminated. */
int cc_validate_nhs_number(const char *s, size_t len, char digits[CC_NHS_NUMBER_DIGITS]);

/* A UK postcode in any spelling (case, spaces anywhere or none): outward code
 * A9, A99, A9A, AA9, AA99 or AA9A, inward code 9AA, or GIR 0AA. out receives
 * the canonical form, upper case with one space before the inward code,
 * NUL-terminated; *out_len its length without the NUL (6 to 8). */
int cc_validate_postcode(const char *s, size_t len, char out[CC_POSTCODE_BYTES],
                         size_t *out_len);

/* A sex code: exactly "0", "1", "2" or "9" (enum cc_sex). Another single
 * digit is CC_EINVAL. */
int cc_validate_sex(const char *s, size_t len, uint8_t *sex);

/* A date "YYYY-MM-DD": CC_EPARSE for another shape, CC_EINVAL for a date
 * that does not exist (2023-02-29), CC_ERANGE before 1900-01-01 or after
 * today. */
int cc_validate_date(const char *s, size_t len, cc_day today, cc_day *out);

/* An ICD-10 code: a letter, two digits and an optional fourth character (a
 * digit, or the filler X or - which is removed: I10X -> I10), with or
 * without a dot before it (E11.9 -> E119); any case. out is upper case,
 * NUL-terminated. */
int cc_validate_icd10(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES]);

/* An OPCS-4 code: a chapter letter (A-Z except I, which OPCS-4 does not use),
 * two digits and an optional digit, with or without a dot before it
 * (K40.1 -> K401); any case. out is upper case, NUL-terminated. */
int cc_validate_opcs4(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES]);

/* A SNOMED CT identifier: 6 to 18 digits, no leading zero, a valid Verhoeff
 * check digit (CC_EINVAL otherwise), and a partition identifier (2nd and 3rd
 * digits from the right) of 00, 01, 02, 10, 11 or 12 (CC_EINVAL otherwise).
 * out receives the digits, NUL-terminated. */
int cc_validate_snomed(const char *s, size_t len, char out[CC_CODE_TEXT_BYTES]);

/* The partition identifier of a valid SNOMED CT id as returned by
 * cc_validate_snomed() (0, 1, 2, 10, 11 or 12): 0 and 10 are concepts. */
int cc_validate_snomed_partition(const char *digits, size_t len);

/* An ODS GP practice code: a letter and 5 digits (B86001); any case. out is
 * upper case, NUL-terminated. */
int cc_validate_practice_code(const char *s, size_t len, char out[CC_PRACTICE_CODE_BYTES]);

/* An ODS provider (trust or site) code: 3 or 5 letters and digits starting
 * with a letter (RR8, RR801); any case. out is upper case, NUL-terminated. */
int cc_validate_provider_code(const char *s, size_t len, char out[CC_PROVIDER_CODE_BYTES]);

/* An opt-out Read code, case as written (Read codes are case-sensitive):
 * "9Nu0" -> *type = CC_OPTOUT_TYPE1, "9Nu4" -> CC_OPTOUT_NDOP, and the same
 * with the Read v2 padding dot ("9Nu0."); empty -> *type = 0 (no opt-out).
 * Any other code is CC_EINVAL. */
int cc_validate_optout_code(const char *s, size_t len, int *type);

/* A short fixed reason for a rejects report, such as "invalid NHS number
 * check digit" or "date in the future", for a field kind and the code its
 * validator returned. Never NULL, never holds a value. */
const char *cc_validate_reason(int field_kind, int err);

#endif
