/*
 * cc_gen.h: the synthetic data generator behind `carecount generate`.
 *
 * Writes a complete, deterministic set of synthetic feeds (area lookup,
 * populations, GP registrations and events, hospital episodes, community
 * contacts, the opt-out register, codelists and a manifest) in the formats of
 * docs/data-formats.md. The same seed and patient count always give the same
 * bytes, whatever the number of threads.
 *
 * It must never produce anything that could be a real person's identifier:
 * NHS numbers come only from ranges that are never issued (see
 * docs/data-formats.md, "Generator"), names are drawn from fixed lists, and
 * postcodes are built from patterns, not looked up.
 */
#ifndef CC_GEN_H
#define CC_GEN_H

#include <stdint.h>
#include <stdio.h>

#define CC_GEN_MIN_PATIENTS 1000
#define CC_GEN_MAX_PATIENTS 10000000

/* What to generate. Zero-initialise, then set the fields. */
struct cc_gen_options {
    uint64_t seed;
    int64_t n_patients;   /* CC_GEN_MIN_PATIENTS..CC_GEN_MAX_PATIENTS */
    const char *out_dir;  /* created if missing (with parents) */
    int force;            /* non-zero: write into a non-empty out_dir */
    int n_threads;        /* worker threads; 0 means 2 */
    FILE *progress;       /* progress lines go here; NULL for none */
};

/* The patient-level files, in the order they are written. */
enum cc_gen_file {
    CC_GEN_FILE_REGISTRATIONS = 0,
    CC_GEN_FILE_GP_EVENTS,
    CC_GEN_FILE_HES_APC,
    CC_GEN_FILE_COMMUNITY,
    CC_GEN_FILE_OPTOUT,
    CC_GEN_N_FILES
};

/* What was written. */
struct cc_gen_summary {
    int64_t rows[CC_GEN_N_FILES]; /* data rows (no header) per patient-level file */
    int64_t n_postcodes;
    int64_t n_lsoas, n_districts, n_icbs, n_regions;
    int64_t n_practices;
    int64_t bytes_written;        /* all files together */
};

/* Generates the data set into opts->out_dir. Returns 0, CC_EINVAL for bad
 * options, CC_EEXISTS if out_dir is not empty and force is not set, CC_EIO or
 * CC_ENOMEM. summary may be NULL. Error messages (path and reason, never
 * data) go to opts->progress when it is set. */
int cc_gen_run(const struct cc_gen_options *opts, struct cc_gen_summary *summary);

/* The file name (inside out_dir) of a patient-level file. */
const char *cc_gen_file_name(enum cc_gen_file file);

/* The NHS number check digit of the 9 leading digits (ASCII, no spaces):
 * 0..9, or 10 when no valid NHS number starts with these digits. */
int cc_gen_nhs_check_digit(const char nine_digits[9]);

/* Non-zero if the n_digits ASCII digits pass the Verhoeff check (the check
 * SNOMED CT concept ids carry in their last digit). */
int cc_gen_verhoeff_is_valid(const char *digits, int n_digits);

#endif
