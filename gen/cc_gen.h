/*
 * cc_gen.h: the synthetic data generator behind `carecount generate`.
 *
 * Writes a complete, deterministic set of synthetic feeds (area lookup,
 * populations, GP registrations and events, hospital episodes, community
 * contacts, the opt-out register, codelists and a manifest that lists the
 * SHA-256 of every other file) in the formats of docs/data-formats.md. The same seed and patient count always give the same
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
    const char *truth_path; /* NULL, or where to write the linkage ground truth
                               (see cc_gen_run); best outside out_dir */
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

/* The linkage ground truth, written to opts->truth_path when it is set: a
 * CSV file with the header feed,line,person,nhs_number,postcode and one row
 * per data row of gp_registrations.csv, gp_events.csv, hes_apc.csv and
 * community_contacts.csv (duplicated and malformed rows included): the
 * feed's file name, the row's line in it (the header is line 1), the index
 * (0 .. n_patients - 1) of the generated person the row belongs to, what
 * the row's NHS number field holds (valid, invalid: check digit changed,
 * missing) and its postcode (current: the person's latest residence, old:
 * an earlier one, none: the feed has no postcode). It holds no NHS number,
 * name or postcode. Ingest never reads it (it reads only the feed names it
 * is given); keep it outside the feeds directory. */
#define CC_GEN_TRUTH_HEADER "feed,line,person,nhs_number,postcode\n"

/* Linkage measured against the ground truth. An ingest run with the
 * environment variable CC_TEST_LINK_TRACE naming a file writes there, for
 * each row that took part in linkage, feed,line,outcome,person (outcome 1
 * or 2: the stage that linked it, with the store's internal person index;
 * no_match or ambiguous: unlinked). cc_gen_linkage_score() reads both files
 * and counts, per feed and stage, rows linked to the right person and to a
 * wrong one, and the rows left unlinked with the reason the truth gives.
 *
 * The right person: rows with a valid NHS number are linked at stage 1 by
 * its pseudonym, so the internal person that a true person's stage-1 rows
 * reach is theirs, if those rows reach exactly one and no other true
 * person's stage-1 rows reach it too. A row is linked right when it reaches
 * its true person's internal person, and wrong otherwise (a split or merged
 * person makes every row of it wrong). */
enum cc_gen_missed {
    CC_GEN_MISSED_OLD_POSTCODE = 0, /* no valid NHS number, and the postcode of an
                                       earlier residence (the person moved) that
                                       no row taken in showed them at */
    CC_GEN_MISSED_STALE_ADDRESS,    /* no valid NHS number, the current postcode,
                                       but the person's latest registration was
                                       not taken in (rejected, or left out under a
                                       type 1 opt-out): the store knows them at an
                                       earlier address */
    CC_GEN_MISSED_SHARED,           /* no valid NHS number; date of birth, sex and
                                       postcode shared by several persons */
    CC_GEN_MISSED_UNKNOWN_PERSON,   /* no valid NHS number, and none of the
                                       person's rows linked at stage 1 either */
    CC_GEN_MISSED_NOT_REGISTERED,   /* a GP event of a person none of whose GP
                                       registrations was taken in (rejected rows) */
    CC_GEN_MISSED_OTHER,            /* none of the above: a linkage failure */
    CC_GEN_N_MISSED
};

struct cc_gen_linkage_feed {
    char name[32];          /* the feed's file name */
    int64_t rows;           /* data rows in the ground truth */
    int64_t traced;         /* rows that took part in linkage (not rejected,
                               duplicate or left out for a type 1 opt-out) */
    int64_t right[3];       /* [1], [2]: linked to the right person at that stage */
    int64_t wrong[3];       /* [1], [2]: linked to a wrong person (false links) */
    int64_t unlinked_no_match, unlinked_ambiguous;
    int64_t missed[CC_GEN_N_MISSED]; /* the unlinked rows by reason */
};

struct cc_gen_linkage_score {
    struct cc_gen_linkage_feed feeds[4]; /* registrations, GP events, hospital, community */
    int n_feeds;
    int64_t persons_split;  /* true persons whose stage-1 rows reach several persons */
    int64_t persons_merged; /* internal persons reached by several true persons' stage-1 rows */
};

/* Scores the trace at trace_path against the truth at truth_path. Returns 0,
 * CC_EIO (a file cannot be read), CC_EPARSE (a line is not as described,
 * or a traced row is not in the truth; errbuf says which line, never its
 * content) or CC_ENOMEM. */
int cc_gen_linkage_score(const char *truth_path, const char *trace_path,
                         struct cc_gen_linkage_score *score, char *errbuf, size_t errlen);

/* Prints the score as a table: per feed and stage the rows linked right and
 * wrong, the unlinked rows and their reasons, and the split and merged
 * persons. */
void cc_gen_linkage_print(FILE *out, const struct cc_gen_linkage_score *score);

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

/* The long tail of clinical codes: besides the codes it names on purpose
 * (conditions, routine entries, admissions, codelists), the generator draws
 * GP entries, diagnoses and procedures from a ranked vocabulary per system
 * with a Zipf-like distribution (rank r has weight 1 / r^1.05), so a few
 * codes are common and most are rare, as in real records. Every code is
 * valid as ingest checks it (SNOMED CT: Verhoeff check digit, partition 00;
 * ICD-10: letter, 2 digits, 4th digit or HES's filler X; OPCS-4: chapter
 * other than I, 3 digits), and none shares an ICD-10 or OPCS-4 category
 * with, or equals, a code the generator names on purpose. The vocabulary is
 * the same for every seed. */
#define CC_GEN_TAIL_CODE_BYTES 20
#define CC_GEN_TAIL_SNOMED 8000
#define CC_GEN_TAIL_ICD10 6000
#define CC_GEN_TAIL_OPCS4 6000

/* The size of the vocabulary of system (CC_CODE_SNOMED, CC_CODE_ICD10,
 * CC_CODE_OPCS4 of cc_model.h), or -1 for another value. */
int64_t cc_gen_tail_size(int system);

/* The vocabulary of system, rank 0 (the most frequent) first, as written in
 * the feeds: a malloc'd array of *n NUL-terminated codes the caller frees.
 * Returns 0, CC_EINVAL for an unknown system, or CC_ENOMEM. */
int cc_gen_tail_codes(int system, char (**codes)[CC_GEN_TAIL_CODE_BYTES], int64_t *n);

#endif
