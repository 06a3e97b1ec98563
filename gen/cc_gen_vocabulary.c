/*
 * cc_gen_vocabulary.c: the long tail of clinical codes (see cc_gen.h,
 * cc_gen_tail_codes): several thousand distinct, valid codes per system,
 * ranked, and a Zipf-like distribution over the ranks to draw from.
 *
 * Real records use thousands of SNOMED CT concepts and HES thousands of
 * ICD-10 and OPCS-4 codes, a few of them very often and most rarely. The
 * tail here is synthetic: valid in form (what ingest's validators check,
 * core/cc_validate.c) but not a terminology release; the codes the
 * generator names on purpose (the conditions, the routine entries, the
 * generic admissions and every code of the codelists it writes) are kept
 * out of it, whole ICD-10 and OPCS-4 categories at a time, so that drawing
 * from the tail never changes a planted prevalence or a codelist's count.
 *
 * The vocabulary is a fixed function of the system (not of the seed): a
 * code means the same rank in every data set. Must never: hold mutable
 * global state (it is built once per run into the read-only context).
 */
#include "cc_gen.h"
#include "cc_gen_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "cc_error.h"
#include "cc_model.h"

#define N_OF(array) (sizeof(array) / sizeof((array)[0]))

/* Categories (ICD-10 and OPCS-4: the first three characters) and SNOMED CT
 * codes the generator writes or lists on purpose: never in the tail. */
static const char *const reserved_icd10[] = {
    "A09", "C50", "E10", "E11", "F32", "H25", "I10", "I20", "I21", "I25", "I48", "I50",
    "J06", "J18", "J44", "J45", "K35", "K57", "K80", "L03", "M16", "M17", "N39", "O80",
    "O82", "R07", "R10", "R55", "S06", "S72", "Z51",
};
static const char *const reserved_opcs4[] = {
    "B27", "B28", "C71", "C75", "H01", "H22", "J18", "K40", "K75",
    "R17", "R24", "W37", "W40", "W46", "X35", "Y53", "Y75",
};
static const char *const reserved_snomed[] = {
    "44054006",  "46635009",  "73211009", "38341003", "195967001", "13645005", "35489007",
    "53741008",  "22298006",  "254837009", "75367002", "60621009", "77176002", "8517006",
    "266919005", "86198006",  "182836005", "27113001", "43396009", "225358003", "410620009",
    "33879002",  "5154007",   "91251008",  "84478008", "401191002",
};

static int in_list(const char *code, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(list[i]) == len && !memcmp(list[i], code, len))
            return 1;
    return 0;
}

/* The Verhoeff check digit for digits (the check digit to be appended). */
static int verhoeff_check_digit(const char *digits, int n)
{
    static const unsigned char d[10][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
        {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
        {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
        {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
        {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
    };
    static const unsigned char p[8][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
        {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
        {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
        {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
    };
    static const unsigned char inverse[10] = {0, 4, 3, 2, 1, 5, 6, 7, 8, 9};
    int c = 0;
    for (int i = 0; i < n; i++) /* positions counted from the right, the check digit at 0 */
        c = d[c][p[(i + 1) % 8][digits[n - 1 - i] - '0']];
    return inverse[c];
}

/* SNOMED CT: concept identifiers = item identifier + partition "00" +
 * Verhoeff check digit, 8 to 11 digits long. Items come from an affine map
 * of the rank modulo m with a multiplier prime to m, so they are distinct. */
static uint32_t build_snomed(char (*codes)[CC_GEN_TAIL_CODE_BYTES], uint32_t n)
{
    const uint64_t m = 99990000ULL, a = 7919ULL * 104729ULL, b = 12345ULL;
    uint32_t made = 0;
    for (uint64_t k = 0; made < n && k < m; k++) {
        uint64_t item = 10000 + (a * k + b) % m;
        char digits[CC_GEN_TAIL_CODE_BYTES];
        int len = snprintf(digits, sizeof digits, "%llu00", (unsigned long long)item);
        digits[len] = (char)('0' + verhoeff_check_digit(digits, len));
        digits[len + 1] = '\0';
        if (in_list(digits, (size_t)len + 1, reserved_snomed, N_OF(reserved_snomed)))
            continue;
        memcpy(codes[made++], digits, (size_t)len + 2);
    }
    return made;
}

/* ICD-10 and OPCS-4: categories in a fixed shuffled order, each giving one
 * to six codes (4-character codes, and for ICD-10 sometimes the 3-character
 * category written with HES's filler X), skipping reserved categories. */
static uint32_t build_letter_codes(char (*codes)[CC_GEN_TAIL_CODE_BYTES], uint32_t n, int system)
{
    enum { N_CATEGORIES = 26 * 100 };
    static const char icd10_chapters[] = "ABCDEFGHIJKLMNOPQRSTVWXYZ";      /* no U */
    static const char opcs4_chapters[] = "ABCDEFGHJKLMNOPQRSTUVWXYZ";      /* no I */
    const char *chapters = system == CC_CODE_ICD10 ? icd10_chapters : opcs4_chapters;
    const uint32_t n_chapters = 25;
    uint32_t order[25 * 100];
    uint32_t n_order = n_chapters * 100;
    for (uint32_t i = 0; i < n_order; i++)
        order[i] = i;
    struct cc_gen_rng rng;
    cc_gen_rng_seed(&rng, 0x766f636162ULL, (uint64_t)system); /* fixed: not the run's seed */
    for (uint32_t i = n_order - 1; i > 0; i--) {
        uint32_t j = cc_gen_below(&rng, i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    uint32_t made = 0;
    for (uint32_t c = 0; c < n_order && made < n; c++) {
        char category[4] = {chapters[order[c] / 100], (char)('0' + order[c] % 100 / 10),
                            (char)('0' + order[c] % 10), '\0'};
        if (system == CC_CODE_ICD10 ? in_list(category, 3, reserved_icd10, N_OF(reserved_icd10))
                                    : in_list(category, 3, reserved_opcs4, N_OF(reserved_opcs4)))
            continue;
        int n_sub = 1 + (int)cc_gen_below(&rng, 6);
        int first = (int)cc_gen_below(&rng, 10);
        if (system == CC_CODE_ICD10 && cc_gen_chance(&rng, 0.15)) {
            /* a category without subdivisions, as HES writes it */
            snprintf(codes[made++], CC_GEN_TAIL_CODE_BYTES, "%sX", category);
            continue;
        }
        for (int s = 0; s < n_sub && made < n; s++)
            snprintf(codes[made++], CC_GEN_TAIL_CODE_BYTES, "%s%d", category, (first + s) % 10);
    }
    return made;
}

int64_t cc_gen_tail_size(int system)
{
    switch (system) {
    case CC_CODE_SNOMED: return CC_GEN_TAIL_SNOMED;
    case CC_CODE_ICD10: return CC_GEN_TAIL_ICD10;
    case CC_CODE_OPCS4: return CC_GEN_TAIL_OPCS4;
    default: return -1;
    }
}

int cc_gen_tail_codes(int system, char (**out)[CC_GEN_TAIL_CODE_BYTES], int64_t *n_out)
{
    int64_t n = cc_gen_tail_size(system);
    *out = NULL;
    *n_out = 0;
    if (n < 0)
        return CC_EINVAL;
    char(*codes)[CC_GEN_TAIL_CODE_BYTES] = calloc((size_t)n, sizeof *codes);
    if (!codes)
        return CC_ENOMEM;
    uint32_t made = system == CC_CODE_SNOMED ? build_snomed(codes, (uint32_t)n)
                                             : build_letter_codes(codes, (uint32_t)n, system);
    if (made != (uint32_t)n) { /* cannot happen with the sizes above */
        free(codes);
        return CC_EINVAL;
    }
    *out = codes;
    *n_out = n;
    return 0;
}

int cc_gen_vocabulary_build(struct cc_gen_vocabulary *v, int system)
{
    memset(v, 0, sizeof *v);
    int64_t n;
    int rc = cc_gen_tail_codes(system, &v->codes, &n);
    if (rc)
        return rc;
    v->n = (uint32_t)n;
    v->cumulative = malloc(v->n * sizeof *v->cumulative);
    if (!v->cumulative) {
        free(v->codes);
        v->codes = NULL;
        return CC_ENOMEM;
    }
    /* Zipf: the code of rank r (from 1) has weight 1 / r^s. */
    double total = 0;
    for (uint32_t r = 0; r < v->n; r++) {
        total += pow((double)r + 1, -CC_GEN_TAIL_ZIPF_EXPONENT);
        v->cumulative[r] = total;
    }
    for (uint32_t r = 0; r < v->n; r++)
        v->cumulative[r] /= total;
    v->cumulative[v->n - 1] = 1.0;
    uint32_t r = 0;
    for (uint32_t g = 0; g < CC_GEN_TAIL_GUIDE; g++) {
        while (v->cumulative[r] <= (double)g / CC_GEN_TAIL_GUIDE)
            r++;
        v->guide[g] = r;
    }
    return 0;
}

void cc_gen_vocabulary_free(struct cc_gen_vocabulary *v)
{
    free(v->codes);
    free(v->cumulative);
    memset(v, 0, sizeof *v);
}

const char *cc_gen_vocabulary_pick(const struct cc_gen_vocabulary *v, double u)
{
    uint32_t r = v->guide[(uint32_t)(u * CC_GEN_TAIL_GUIDE)];
    while (v->cumulative[r] <= u) /* the last is 1.0 > u: stops in the table */
        r++;
    return v->codes[r];
}
