/*
 * cc_ingest_internal.h: what the files of the ingest stage share (cc_ingest.c runs
 * the stage, cc_ingest_areas.c reads the reference data, cc_ingest_feeds.c the
 * patient-level feeds). Not a public header: nothing outside core/cc_ingest*.c
 * includes it.
 */
#ifndef CC_INGEST_INTERNAL_H
#define CC_INGEST_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "cc_csv.h"
#include "cc_hash.h"
#include "cc_ingest.h"
#include "cc_link.h"
#include "cc_optout.h"
#include "cc_pseudo.h"
#include "cc_store.h"
#include "cc_validate.h"

/* A set of 128-bit keys (open addressing, grows at half full). The all-zero
 * key is stored as (0, 1). */
struct cc_seen_set {
    uint64_t *keys; /* 2 words per slot */
    uint64_t n, mask;
};
int cc_seen_set_init(struct cc_seen_set *set, uint64_t expected);
/* 1 if the key was new (now added), 0 if it was already there, or CC_ENOMEM. */
int cc_seen_set_add(struct cc_seen_set *set, uint64_t a, uint64_t b);
int cc_seen_set_has(const struct cc_seen_set *set, uint64_t a, uint64_t b);
/* Asks the caches for the slot where a look-up of (a, b) starts (advice). */
void cc_seen_set_prefetch(const struct cc_seen_set *set, uint64_t a, uint64_t b);
void cc_seen_set_free(struct cc_seen_set *set);

/* A per-run memo of pseudonyms (a cc_u64_map of cc_pseudonym values keyed by
 * the packed identifier, cc_pseudo_memo_empty() to start): the keyed hash of
 * an identifier seen before in this run is looked up instead of computed
 * again (a person has about six rows; a postcode hundreds). It lives in this
 * process's memory only, is wiped when the run ends (cc_u64_map_free with
 * wipe), and holds nothing the process did not hold anyway (the key and the
 * identifiers of the rows being parsed). */
static inline struct cc_u64_map cc_pseudo_memo_empty(void)
{
    return cc_u64_map_empty(sizeof(cc_pseudonym));
}
/* The pseudonym of the identifier packed as `packed` (non-zero), computing
 * it with compute(key, arg) the first time. */
void cc_pseudo_memo_get(struct cc_u64_map *memo, uint64_t packed,
                        void (*compute)(const cc_pseudo_key *key, const void *arg,
                                        cc_pseudonym *out),
                        const cc_pseudo_key *key, const void *arg, cc_pseudonym *out);

/* A row held back for stage-2 linkage: no valid NHS number, so it waits until
 * every stage-1 person is known (then the result does not depend on the order
 * of files or rows). */
struct cc_pending_row {
    cc_pseudonym postcode;
    cc_day dob;
    cc_day date;
    uint8_t sex;
    uint8_t setting;
    uint8_t flags;
    uint8_t n_codes;
    uint32_t feed; /* index into the report's feeds */
    uint32_t code_offset; /* into the pending code arrays */
    uint64_t line; /* in its feed, for the linkage trace */
    uint8_t identity[CC_FEED_IDENTITY_BYTES]; /* its feed identity, kept if it links */
};

#define CC_NHS_RECENT 4096

/* ---- provenance (cc_ingest_provenance.c; the rules are in cc_ingest.h) ---- */

/* What the manifest.json beside one feed file says of it. */
struct cc_ingest_vouch {
    int usable;                 /* a generator's manifest with a digest for this file */
    char expected_sha256[65];   /* hex, as the manifest lists it */
    char manifest_sha256[65];   /* hex SHA-256 of the manifest's bytes */
    uint64_t seed;
    int64_t patients;
    char nhs_first[11], nhs_last[11]; /* the generator's NHS number range */
    char reason[200];           /* !usable: why (the file's name and why) */
};

/* Reads the manifest.json in the directory of path, a feed of kind. */
void cc_ingest_vouch_lookup(const char *path, int kind, struct cc_ingest_vouch *v);

/* Where one run's new files come from. Zero it, then cc_ingest_origin_note()
 * each new file. */
struct cc_ingest_origin {
    size_t n_files;      /* new files noted */
    int other_feeds;     /* one of them was not vouched for */
    struct cc_provenance run; /* GENERATED or FEEDS once a file is noted */
    char nhs_first[11], nhs_last[11];
    int64_t row;         /* its row in ingest_provenance; 0: not recorded */
};

/* Notes a new file: its path, what its manifest says (v) and its content's
 * hex SHA-256 (sha256_hex; "" when v is not usable). */
void cc_ingest_origin_note(struct cc_ingest_origin *o, const char *path,
                           const struct cc_ingest_vouch *v, const char *sha256_hex);

/* Records the run's row (its own transaction, durable when it returns);
 * nothing if no file was noted. 0 or a CC_E* code. */
int cc_ingest_origin_record(sqlite3 *db, struct cc_ingest_origin *o);

/* Updates the run's row when the run ends: the version it published (0:
 * none), and "feeds" if it was generated but n_outside valid NHS numbers
 * lay outside the manifest's range. Joins the caller's transaction if one
 * is open. 0 or a CC_E* code. */
int cc_ingest_origin_finish(sqlite3 *db, struct cc_ingest_origin *o, uint64_t version,
                            uint64_t n_outside);

/* ---- read-ahead (cc_ingest_ahead.c) ---- */

/* A second thread reads and splits the rows of one feed while this one
 * checks and stores them: cc_ingest_ahead_start() after the feed's header
 * is read and its columns mapped (nothing may call the cc_csv after it),
 * then cc_ingest_next_row() as before, and cc_ingest_close_feed() instead
 * of cc_csv_close(). Rows, lines and outcomes are those cc_csv_next()
 * gives, in its order. If no thread can be started, the feed is read on
 * this one. 0 or CC_ENOMEM.
 *
 * The plan names the columns whose keyed hashes the reading thread computes
 * for each row (-1: none). What a feed asks of it balances the two threads:
 * on each feed the slower one keeps less (measured by thread with perf). The cc_ingest_ahead_* accessors hand them to the
 * ingest thread: each returns 1 with the value if the current row has it
 * for exactly the input asked about, else 0, and the caller computes it
 * itself; so a feed's results never depend on whether a thread ran.
 *
 * The ingest thread also looks ahead: a few rows before it reaches a row,
 * it asks the caches for what the row's look-ups will read at random in
 * tables far larger than the caches (the builder's person slot, then the
 * person's pseudonym and postcode; the identity's slots in the plan's
 * sets), so that those misses overlap instead of queueing one per row.
 * Advice only: it changes no result. */
struct cc_ingest_ahead_plan {
    int nhs;      /* the NHS number: its pseudonym */
    int postcode; /* the postcode: its pseudonym and LSOA */
    int identity; /* the record's own key: its identity (cc_pseudo_record_identity) */
    uint8_t identity_source; /* the source byte of the identity */
    /* non-zero: the identity is computed by the ingest thread instead, when
     * it looks ahead at the row (below): the same work, done a few rows
     * early */
    int identity_on_ingest_thread;
    int record_key; /* non-zero: the record key of the NHS number's person */
    /* the sets the identity will be looked up in (NULL: none), for the
     * look-ahead */
    const struct cc_seen_set *identity_sets[2];
};
struct cc_ingest_ahead;
struct cc_ingest_ctx;
int cc_ingest_ahead_start(struct cc_ingest_ctx *ctx, cc_csv *csv,
                          const struct cc_ingest_ahead_plan *plan);
/* The pseudonym of the current row's NHS number, if these are its digits. */
int cc_ingest_ahead_nhs(const struct cc_ingest_ctx *ctx,
                        const char digits[CC_NHS_NUMBER_DIGITS], cc_pseudonym *out);
/* The record key of the current row's person, if person is its pseudonym. */
int cc_ingest_ahead_record_key(const struct cc_ingest_ctx *ctx, const cc_pseudonym *person,
                               uint32_t *out);
/* The pseudonym and LSOA (-1: not in the lookup) of the current row's
 * postcode, if canonical is its canonical form. */
int cc_ingest_ahead_postcode(const struct cc_ingest_ctx *ctx, const char *canonical, size_t len,
                             cc_pseudonym *pseudonym, int32_t *lsoa);
/* The identity of the current row's record, if key is the field of the
 * plan's identity column and source its source. */
int cc_ingest_ahead_identity(const struct cc_ingest_ctx *ctx, uint8_t source,
                             const struct cc_csv_field *key, uint8_t out[CC_FEED_IDENTITY_BYTES]);
/* The next row, as cc_csv_next() returns it (1, 0 at the end, CC_EPARSE
 * with *problem, or an error). */
int cc_ingest_ahead_next(struct cc_ingest_ctx *ctx, const struct cc_csv_field **fields,
                         uint64_t *line, int *problem);
/* How far into its file the last row handed out lies (for progress). */
uint64_t cc_ingest_ahead_bytes_read(const struct cc_ingest_ctx *ctx);
/* Stops the read-ahead of csv, if any, and closes it. */
void cc_ingest_close_feed(struct cc_ingest_ctx *ctx, cc_csv *csv);

/* The state of one ingest run. */
struct cc_ingest_ctx {
    const struct cc_ingest_options *opt;
    struct cc_ingest_report *report;
    cc_pseudo_key *key;
    cc_store_builder *builder;
    sqlite3 *db;
    cc_optout *optouts;
    cc_day today;
    FILE *rejects; /* rejects report (file,line,reason), opened lazily */
    char rejects_path[512];

    /* persons with a type 1 opt-out in force today (their GP-sourced data is
     * never taken in) */
    struct cc_seen_set type1;
    /* a 2^20-bit filter in front of it (L2-resident): most persons have no
     * type 1 opt-out, and the filter says so without touching the set */
    uint64_t type1_filter[(1u << 20) / 64];
    /* per builder person index: the latest GP registration day seen in this
     * run (UINT16_MAX none), which decides area and practice */
    uint16_t *latest_registration;
    size_t latest_registration_cap;

    /* what the store held before this run, for duplicate detection across
     * files and ingests: GP events by (person << 32 | date, code hash), and
     * the feed identities of hospital and community records */
    struct cc_seen_set stored_gp_events;
    struct cc_seen_set stored_feed_identities;

    /* rows waiting for stage-2 linkage */
    struct cc_pending_row *pending;
    uint64_t n_pending;
    size_t pending_cap;
    struct cc_code_input *pending_codes;
    char (*pending_code_text)[CC_CODE_TEXT_BYTES];
    uint64_t n_pending_codes;
    size_t pending_codes_cap;

    double progress_started, progress_last; /* seconds, for rows/s */
    char error[512]; /* why the run stopped: file and reason, no identifiers */
    struct cc_u64_map postcode_memo;
    /* the LSOA of each postcode looked up in this run (-1: not in the
     * lookup), so the sorted lookup is searched once per postcode */
    struct cc_u64_map lsoa_memo; /* int32_t values */
    /* NHS numbers: a small direct-mapped memo (rows of one patient tend to
     * come together; a table of every patient would cost a cache miss per
     * row, as much as the hash it saves) */
    uint64_t nhs_recent_key[CC_NHS_RECENT];
    cc_pseudonym nhs_recent[CC_NHS_RECENT];
    uint64_t rows_total; /* for the test kill point */
    uint64_t kill_at_rows;
    FILE *link_trace; /* CC_TEST_LINK_TRACE (cc_ingest_trace_link), else NULL */
    /* CC_TEST_ONE_THREAD=1: every feed read on the ingest thread, as when
     * no second thread can be started (a test compares the two) */
    int one_thread;
    struct cc_ingest_ahead *ahead; /* the feed being read ahead, or NULL */
    /* the reading threads' own memo of postcodes (pseudonym and LSOA; one
     * thread at a time, cc_ingest_ahead.c) */
    struct cc_u64_map ahead_postcode_memo;
    /* earlier addresses of persons seen in this run, for stage 2: a
     * registration replaced by a newer one, a hospital or community row
     * linked by NHS number at another postcode than the person's current */
    struct cc_link_address *earlier;
    size_t n_earlier, earlier_cap;

    /* where the new files came from; when they are generated, every valid
     * NHS number read is checked against the generator's range */
    struct cc_ingest_origin origin;
    const char *nhs_first, *nhs_last; /* NULL: no check */
    uint64_t nhs_outside_range;
};

/* Opens a feed and reads its header; the error (file and reason) goes to
 * ctx->error. */
int cc_ingest_open_feed(struct cc_ingest_ctx *ctx, const char *path, cc_csv **out);

/* Maps the required column names of a feed to their indices; a missing
 * column refuses the whole file (CC_EPARSE, with the column named). */
int cc_ingest_map_columns(struct cc_ingest_ctx *ctx, cc_csv *csv, const char *path,
                          const char *const *names, size_t n, int *cols);

/* The next well-formed row of a feed: 1 (with *fields and *line), 0 at the
 * end, or a CC_E* code that stops the file. Counts every row read, rejects
 * malformed ones with their line, shows progress and honours the test kill
 * point, so each feed's loop holds only its own checks. */
int cc_ingest_next_row(struct cc_ingest_ctx *ctx, cc_csv *csv, struct cc_feed_report *feed,
                       const struct cc_csv_field **fields, uint64_t *line);

/* Writes one reject line (file, line, reason name) and counts it. */
void cc_ingest_reject(struct cc_ingest_ctx *ctx, struct cc_feed_report *feed, uint64_t line,
                      int reason);

/* Progress on a terminal while a file is read. */
void cc_ingest_progress(struct cc_ingest_ctx *ctx, const struct cc_feed_report *feed,
                        const cc_csv *csv, int final);

/* Testing hook: raise SIGKILL at a named point when CC_TEST_KILL_AT says so. */
void cc_ingest_kill_point(struct cc_ingest_ctx *ctx, const char *point);

/* Testing hook: when CC_TEST_LINK_TRACE names a file, each row that took
 * part in linkage is written there as feed,line,outcome,person: outcome 1
 * or 2 (the stage that linked it) with the builder's person index, or
 * no_match / ambiguous with no person. Only internal indices, never an
 * identifier; a no-op otherwise. */
enum { CC_TRACE_NO_MATCH = 0, CC_TRACE_STAGE1 = 1, CC_TRACE_STAGE2 = 2, CC_TRACE_AMBIGUOUS = 3 };
void cc_ingest_trace_link(struct cc_ingest_ctx *ctx, const struct cc_feed_report *feed,
                          uint64_t line, int outcome, int64_t person);

/* Reads areas.csv, postcodes.csv and population.csv (any given) into the
 * builder. */
int cc_ingest_areas(struct cc_ingest_ctx *ctx, const char *areas_path, struct cc_feed_report *areas,
                    const char *postcodes_path, struct cc_feed_report *postcodes,
                    const char *population_path, struct cc_feed_report *population,
                    char *errbuf, size_t errlen);

/* The patient-level feeds. */
int cc_ingest_optout_feed(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed);
/* Pass 1 over the registrations (cc_ingest_feeds.c): the scan lists the
 * opt-out events the rows carry, on any thread (it reads ctx's key, today
 * and NHS number range, nothing else of ctx, and stops early when stop is
 * set); cc_ingest_registration_optouts() records them on the ingest
 * thread, after the register feed: 0 or a CC_E* code (ctx->error). */
struct cc_registration_scan {
    struct cc_ingest_ctx *ctx;
    const char *path;
    atomic_int stop;
    int rc;
    struct cc_optout_event *events; /* in file order */
    size_t n, cap;
    uint64_t nhs_outside_range; /* added to ctx's when recorded */
};
void cc_ingest_registration_scan(struct cc_registration_scan *scan);
void cc_ingest_registration_scan_free(struct cc_registration_scan *scan);
int cc_ingest_registration_optouts(struct cc_ingest_ctx *ctx, struct cc_registration_scan *scan,
                                   struct cc_feed_report *feed);
int cc_ingest_registrations(struct cc_ingest_ctx *ctx, const char *path,
                            struct cc_feed_report *feed);
int cc_ingest_gp_events(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed);
int cc_ingest_hospital(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed);
int cc_ingest_community(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed);
/* The key of a GP event in the duplicate sets: person and date in the first
 * word, a hash of the canonical code text in the second. */
uint64_t cc_ingest_gp_event_hash(const char *code, size_t len);

/* Fills the stored_* sets from the store the run grows from (the feeds
 * that need them only). */
int cc_ingest_seen_from_base(struct cc_ingest_ctx *ctx, const cc_store *base, int gp_events,
                             int feed_identities);

/* Links the rows held back for stage 2. */
int cc_ingest_link_pending(struct cc_ingest_ctx *ctx);

#endif
