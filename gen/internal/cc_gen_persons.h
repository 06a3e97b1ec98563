/*
 * cc_gen_persons.h: the generator's person model, internal to gen/.
 *
 * The run (cc_gen.c) builds one read-only cc_gen_context, then asks for
 * blocks of CC_GEN_BLOCK_PERSONS persons, each written into its own buffers
 * and counted into its own counters, and copies them to the files in block
 * order. A block must depend only on (seed, block index, context): that is
 * what makes the output identical for any number of threads.
 *
 * Every rate of untidiness and every planted effect is defined here, once,
 * and written into manifest.json from the same constants.
 */
#ifndef CC_GEN_PERSONS_H
#define CC_GEN_PERSONS_H

#include "cc_gen.h"
#include "cc_gen_internal.h"
#include "cc_model.h"

#define CC_GEN_BLOCK_PERSONS 65536

/* Untidiness, as a probability per row (or per person where said). */
#define CC_GEN_RATE_MISSING_NHS 0.02      /* hospital and community rows */
#define CC_GEN_RATE_INVALID_NHS 0.005     /* registration, hospital and community rows */
#define CC_GEN_RATE_MESSY_POSTCODE 0.10   /* registration, hospital and community rows */
#define CC_GEN_RATE_DUPLICATE 0.005       /* all patient-level files but the opt-out register */
#define CC_GEN_RATE_MALFORMED 0.001       /* likewise */
#define CC_GEN_RATE_MOVED 0.10            /* per person: a second registration */

/* Opt-outs, per person. */
#define CC_GEN_RATE_TYPE1 0.01
#define CC_GEN_RATE_NDOP 0.03
#define CC_GEN_RATE_WITHDRAW 0.10         /* of those who opted out */
#define CC_GEN_RATE_LATE_OPTOUT 0.10      /* registered after the data period */

/* Area effects. */
#define CC_GEN_PLANTED_DIABETES_RATIO 1.6
#define CC_GEN_PLANTED_ADMISSION_RATIO 0.7
#define CC_GEN_DEPRIVATION_ADMISSIONS 0.15 /* log-rate per SD of LSOA deprivation */

/* Keys: epikey = base + person index * 16 + ordinal (at most 16 episodes a
 * person); contact_id = base + person index * 32 + ordinal. */
#define CC_GEN_EPIKEY_BASE 300000000000ULL
#define CC_GEN_CONTACT_ID_BASE 500000000000ULL

#define CC_GEN_N_CONDITIONS 7

/* The long tail of codes (cc_gen.h, cc_gen_tail_codes): GP entries per
 * person over the period, Poisson with mean base + per_year x age; the share
 * of generic admissions whose primary diagnosis comes from the tail, and
 * how often such an episode has a tail procedure (elective, emergency);
 * tail secondary diagnoses per episode (Poisson); the chance any episode
 * has one more tail procedure. */
#define CC_GEN_TAIL_GP_BASE 0.5
#define CC_GEN_TAIL_GP_PER_YEAR 0.01
#define CC_GEN_TAIL_EPISODE_SHARE 0.5
#define CC_GEN_TAIL_PROCEDURE_ELECTIVE 0.7
#define CC_GEN_TAIL_PROCEDURE_EMERGENCY 0.2
#define CC_GEN_TAIL_SECONDARY_MEAN 0.6
#define CC_GEN_TAIL_EXTRA_PROCEDURE 0.1

enum cc_gen_malformed {
    CC_GEN_MALFORMED_NONE = 0,
    CC_GEN_MALFORMED_BAD_DATE,                   /* "2023-02-30" */
    CC_GEN_MALFORMED_UNKNOWN_SEX,                /* sex code 7 */
    CC_GEN_MALFORMED_BAD_CODE,                   /* SNOMED check digit wrong, ICD-10 cut to 2 chars */
    CC_GEN_MALFORMED_DISCHARGE_BEFORE_ADMISSION, /* hospital only */
    CC_GEN_N_MALFORMED
};

/* What a block wrote, summed over blocks by the run. */
struct cc_gen_counts {
    int64_t rows[CC_GEN_N_FILES];
    int64_t duplicates[CC_GEN_N_FILES];
    int64_t invalid_nhs[CC_GEN_N_FILES];
    int64_t missing_nhs[CC_GEN_N_FILES];
    int64_t messy_postcodes[CC_GEN_N_FILES];
    int64_t malformed[CC_GEN_N_MALFORMED];
    int64_t persons;
    int64_t persons_moved;
    int64_t persons_with_condition[CC_GEN_N_CONDITIONS];
    int64_t persons_optout[3];       /* by enum cc_optout_type: ever registered */
    int64_t persons_withdrawn;
    int64_t persons_late_optout;
    int64_t persons_optout_in_force_at_period_end;
};

/* Read-only during generation. */
struct cc_gen_context {
    uint64_t seed;
    int64_t n_patients;
    struct cc_gen_geo geo;
    char (*dates)[10];          /* "YYYY-MM-DD" of every day 0..max_day, no NUL */
    cc_day max_day;
    cc_day period_start, period_end;   /* 2019-01-01 .. 2025-12-31 */
    cc_day reference_day;              /* 2025-06-30: ages and populations */
    cc_day registration_start;         /* earliest registration date */
    cc_day optout_start;               /* earliest opt-out registration */
    cc_day late_end;                   /* last day of late opt-outs */
    uint64_t nhs_first_base;    /* first 9-digit base of the range used */
    uint64_t nhs_slot;          /* bases per block */
    uint64_t nhs_stride;        /* bases a block can consume at most */
    struct cc_gen_vocabulary tail[4]; /* by CC_CODE_SNOMED, CC_CODE_ICD10, CC_CODE_OPCS4 */
    int truth;                  /* record each row's ground truth */
};

/* The ground truth of one row (cc_gen.h, CC_GEN_TRUTH_HEADER), packed:
 * person offset in the block << 4 | nhs << 2 | postcode. */
enum cc_gen_truth_nhs { CC_GEN_TRUTH_NHS_VALID, CC_GEN_TRUTH_NHS_INVALID, CC_GEN_TRUTH_NHS_MISSING };
enum cc_gen_truth_postcode {
    CC_GEN_TRUTH_POSTCODE_NONE,
    CC_GEN_TRUTH_POSTCODE_CURRENT,
    CC_GEN_TRUTH_POSTCODE_OLD
};
struct cc_gen_truth {
    uint32_t *rows;
    size_t n, cap;
    int failed;
};

/* One block's output. The buffers are reused from block to block. */
struct cc_gen_block {
    struct cc_gen_buf buf[CC_GEN_N_FILES];
    struct cc_gen_truth truth[CC_GEN_N_FILES]; /* only when the context's truth is set */
    struct cc_gen_counts counts;
};

/* Generates persons [block_index * CC_GEN_BLOCK_PERSONS, ...) into out
 * (resetting it first) and adds each person's current LSOA x sex x band
 * into population (n_lsoas * 2 * CC_N_AGE_BANDS_5Y counters, owned by the
 * caller and used by one thread at a time). Returns 0 or CC_ENOMEM. */
int cc_gen_block_generate(const struct cc_gen_context *ctx, int64_t block_index,
                          struct cc_gen_block *out, uint32_t *population);

/* Name and SNOMED CT code of condition 0..CC_GEN_N_CONDITIONS-1. */
const char *cc_gen_condition_name(int condition);
const char *cc_gen_condition_snomed(int condition);

#endif
