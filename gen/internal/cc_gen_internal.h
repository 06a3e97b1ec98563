/*
 * cc_gen_internal.h: shared by the generator's own files only (cc_gen.c,
 * cc_gen_geo.c, cc_gen_codes.c): the random number generator, the output
 * buffer and the synthetic geography.
 *
 * Nothing outside gen/ includes this; the contract is cc_gen.h. Nothing
 * here may hold global mutable state: every stream of random numbers is a
 * value owned by its caller, so that blocks of persons can be generated on
 * any thread and still give the same bytes.
 */
#ifndef CC_GEN_INTERNAL_H
#define CC_GEN_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cc_date.h"

/* ---- random numbers: xoshiro256** seeded through splitmix64 ---- */

struct cc_gen_rng {
    uint64_t s[4];
};

static inline uint64_t cc_gen_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds a stream from the run's seed and a stream number (a block index, or
 * a constant naming a purpose), so that streams never depend on each other. */
static inline void cc_gen_rng_seed(struct cc_gen_rng *rng, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    for (int i = 0; i < 4; i++)
        rng->s[i] = cc_gen_splitmix64(&x);
}

static inline uint64_t cc_gen_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t cc_gen_next(struct cc_gen_rng *rng)
{
    uint64_t *s = rng->s;
    const uint64_t result = cc_gen_rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = cc_gen_rotl(s[3], 45);
    return result;
}

/* Uniform double in [0, 1). */
static inline double cc_gen_uniform(struct cc_gen_rng *rng)
{
    return (double)(cc_gen_next(rng) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n), n >= 1 and below 2^32. */
static inline uint32_t cc_gen_below(struct cc_gen_rng *rng, uint32_t n)
{
    return (uint32_t)(((cc_gen_next(rng) >> 32) * (uint64_t)n) >> 32);
}

static inline int cc_gen_chance(struct cc_gen_rng *rng, double p)
{
    return cc_gen_uniform(rng) < p;
}

/* Poisson variate by multiplication of uniforms; fine for the small means
 * (below ~15) the generator uses. */
static inline int cc_gen_poisson(struct cc_gen_rng *rng, double mean)
{
    if (mean <= 0)
        return 0;
    double limit = exp(-mean), product = cc_gen_uniform(rng);
    int n = 0;
    while (product > limit && n < 64) {
        product *= cc_gen_uniform(rng);
        n++;
    }
    return n;
}

/* Standard normal variate (Box-Muller, one of the pair). */
static inline double cc_gen_normal(struct cc_gen_rng *rng)
{
    double u1 = 1.0 - cc_gen_uniform(rng), u2 = cc_gen_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- the synthetic geography ---- */

#define CC_GEN_N_REGIONS 9
#define CC_GEN_N_ICBS 42
#define CC_GEN_CODE_LEN 10     /* "E01000001" + NUL */
#define CC_GEN_POSTCODE_LEN 9  /* "AA99 9AA" + NUL */

struct cc_gen_region {
    char code[CC_GEN_CODE_LEN];
    const char *name;
    double weight;          /* share of England's population */
    char practice_letter;   /* first letter of its practices' ODS codes */
};

struct cc_gen_icb {
    char code[CC_GEN_CODE_LEN];
    char name[96];
    int region;
    double weight;
    int first_lad, n_lads;
    int first_acute, n_acutes;      /* acute trusts, in providers[] */
    int community_provider;         /* in providers[] */
};

struct cc_gen_lad {
    char code[CC_GEN_CODE_LEN];
    char name[48];
    int icb;
    double weight;
    int first_lsoa, n_lsoas;
    int first_practice, n_practices;
};

struct cc_gen_lsoa {
    char code[CC_GEN_CODE_LEN];
    int lad;
    float deprivation;         /* standard normal: > 0 means more deprived */
    uint32_t first_postcode;
    uint32_t n_postcodes;
};

struct cc_gen_practice {
    char code[7];
    int lad;
};

/* The whole geography. Built once, then read-only (shared by all threads). */
struct cc_gen_geo {
    struct cc_gen_region regions[CC_GEN_N_REGIONS];
    struct cc_gen_icb icbs[CC_GEN_N_ICBS];
    struct cc_gen_lad *lads;
    int n_lads;
    struct cc_gen_lsoa *lsoas;
    double *lsoa_cumulative;   /* cumulative residence weights, last = 1 */
    int n_lsoas;
    char (*postcodes)[CC_GEN_POSTCODE_LEN];
    uint32_t n_postcodes;
    struct cc_gen_practice *practices;
    int n_practices;
    char (*providers)[6];
    int n_providers;
    int planted_icb;           /* type 2 diabetes prevalence x planted_diabetes_ratio */
    int planted_region;        /* hospital admissions x planted_admission_ratio */
};

/* Builds the geography for n_patients from the seed. Returns 0 or
 * CC_ENOMEM; the caller frees with cc_gen_geo_free() in either case. */
int cc_gen_geo_build(struct cc_gen_geo *geo, uint64_t seed, int64_t n_patients);
void cc_gen_geo_free(struct cc_gen_geo *geo);

/* Index of the LSOA holding the cumulative weight u in [0, 1). */
int cc_gen_geo_pick_lsoa(const struct cc_gen_geo *geo, double u);

/* ---- the long tail of codes (cc_gen_vocabulary.c) ---- */

#define CC_GEN_TAIL_ZIPF_EXPONENT 1.05

/* One system's ranked vocabulary and its cumulative Zipf weights. Built once
 * per run, then read-only. */
#define CC_GEN_TAIL_GUIDE 4096
struct cc_gen_vocabulary {
    char (*codes)[20]; /* CC_GEN_TAIL_CODE_BYTES */
    double *cumulative;
    uint32_t n;
    /* guide[g]: the first rank whose cumulative weight exceeds g / GUIDE, so
     * a draw starts its search there (a step or two instead of a binary
     * search over the whole table) */
    uint32_t guide[CC_GEN_TAIL_GUIDE];
};

/* Builds system's vocabulary (cc_gen_tail_codes) and weights. Returns 0,
 * CC_EINVAL or CC_ENOMEM; free with cc_gen_vocabulary_free in any case. */
int cc_gen_vocabulary_build(struct cc_gen_vocabulary *v, int system);
void cc_gen_vocabulary_free(struct cc_gen_vocabulary *v);

/* The code whose cumulative weight interval holds u in [0, 1). */
const char *cc_gen_vocabulary_pick(const struct cc_gen_vocabulary *v, double u);

/* ---- the output buffer ---- */

struct cc_gen_buf {
    char *data;
    size_t len, cap;
    int failed;   /* an allocation failed; the buffer's content is incomplete */
};

/* Makes room for at least `extra` more bytes; on failure sets failed and
 * returns -1 (callers check failed once per block). */
int cc_gen_buf_reserve(struct cc_gen_buf *buf, size_t extra);

static inline void cc_gen_put(struct cc_gen_buf *buf, const char *s, size_t n)
{
    if (buf->len + n > buf->cap && cc_gen_buf_reserve(buf, n))
        return;
    memcpy(buf->data + buf->len, s, n);
    buf->len += n;
}

static inline void cc_gen_puts(struct cc_gen_buf *buf, const char *s)
{
    cc_gen_put(buf, s, strlen(s));
}

static inline void cc_gen_putc(struct cc_gen_buf *buf, char c)
{
    if (buf->len + 1 > buf->cap && cc_gen_buf_reserve(buf, 1))
        return;
    buf->data[buf->len++] = c;
}

#endif
