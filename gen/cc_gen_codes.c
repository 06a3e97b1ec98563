/*
 * cc_gen_codes.c: the check digits the generator must get right (NHS number
 * Modulus 11, SNOMED CT Verhoeff) and its growable output buffer.
 *
 * Pure functions over caller-owned memory; no state.
 */
#include "cc_gen.h"
#include "cc_gen_internal.h"

#include <stdlib.h>

int cc_gen_nhs_check_digit(const char nine_digits[9])
{
    int sum = 0;
    for (int i = 0; i < 9; i++)
        sum += (nine_digits[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    return check == 11 ? 0 : check; /* 10 means no valid number has these digits */
}

static const unsigned char verhoeff_multiply[10][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
    {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
    {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
    {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
    {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
};
static const unsigned char verhoeff_permute[8][10] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
    {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
    {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
    {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
};

int cc_gen_verhoeff_is_valid(const char *digits, int n_digits)
{
    int check = 0;
    for (int i = 0; i < n_digits; i++) {
        char c = digits[n_digits - 1 - i];
        if (c < '0' || c > '9')
            return 0;
        check = verhoeff_multiply[check][verhoeff_permute[i % 8][c - '0']];
    }
    return n_digits > 0 && check == 0;
}

int cc_gen_buf_reserve(struct cc_gen_buf *buf, size_t extra)
{
    if (buf->failed)
        return -1;
    if (buf->len + extra <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : 1 << 20;
    while (cap < buf->len + extra)
        cap *= 2;
    char *data = realloc(buf->data, cap);
    if (!data) {
        buf->failed = 1;
        return -1;
    }
    buf->data = data;
    buf->cap = cap;
    return 0;
}
