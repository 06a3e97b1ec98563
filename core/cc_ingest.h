/*
 * cc_ingest.h: the ingest stage, feeds -> parse and validate -> pseudonymise
 * -> link -> opt-out filter -> store.
 *
 * One call ingests a set of feed files into a data directory: it validates
 * every row (a bad row is rejected into the rejects report with file, line
 * and reason, and never stops the ingest), drops names while parsing,
 * replaces NHS numbers and postcodes by keyed pseudonyms, links records to
 * persons (docs/linkage.md), records opt-outs in the register, leaves out
 * GP-sourced records of patients with a type 1 opt-out in force, and
 * publishes a new store snapshot.
 *
 * Crash safety: the new snapshot is written under a new name and becomes
 * current only when the transaction that records it, and the manifest of the
 * files it holds, commits in state.db. A crash at any earlier point leaves
 * the previous snapshot current and the manifest unchanged, so the store is
 * exactly as before; a crash after the commit leaves it fully after. Opt-out
 * events read from feeds are committed to the register before the store is
 * built (they are idempotent, so a replay after a crash adds nothing).
 *
 * Idempotence: every file is identified by the BLAKE2b hash of its content;
 * a file whose hash is in the manifest is skipped. A file that differs only
 * in bytes (a blank line, CRLF) or overlaps an earlier one (a monthly
 * refresh) is read, and each record is identified by its content instead
 * (docs/data-formats.md, "What identifies a record"): a GP event by person,
 * date and code; a hospital episode by its episode key, a community contact
 * by its contact id (their keyed identities are kept in the snapshot). A
 * record the store already holds is counted as already stored and not
 * added again.
 *
 * Provenance: every run that reads new files records in state.db whether
 * they are `carecount generate` output (see "Provenance" below), so that
 * a tool that writes or prints record-level data can refuse a data
 * directory that ever took in anything else.
 *
 * Must never: copy a name beyond the row being parsed; write an NHS number,
 * a postcode of a person or a name to the store, the reports or the log.
 */
#ifndef CC_INGEST_H
#define CC_INGEST_H

#include <stdint.h>
#include <stdio.h>

#include "cc_date.h"
#include "cc_pseudo.h"

struct sqlite3;

/* The kinds of feed, in the order an ingest processes them. */
#define CC_FEED_KINDS(X)                                                       \
    X(AREAS, "areas", "areas.csv")                                             \
    X(POSTCODES, "postcodes", "postcodes.csv")                                 \
    X(POPULATION, "population", "population.csv")                              \
    X(OPTOUTS, "optouts", "optout_register.csv")                               \
    X(GP_REGISTRATIONS, "gp_registrations", "gp_registrations.csv")            \
    X(GP_EVENTS, "gp_events", "gp_events.csv")                                 \
    X(HOSPITAL, "hes_apc", "hes_apc.csv")                                      \
    X(COMMUNITY, "community", "community_contacts.csv")

enum cc_feed_kind {
#define CC_FEED_ENUM_(id, name, file) CC_FEED_##id,
    CC_FEED_KINDS(CC_FEED_ENUM_)
#undef CC_FEED_ENUM_
        CC_N_FEED_KINDS
};

/* The feed kind's short name ("gp_events") and default file name. */
const char *cc_feed_kind_name(int kind);
const char *cc_feed_kind_file(int kind);
/* The kind named `name`, or -1. */
int cc_feed_kind_from_name(const char *name);

#define CC_INGEST_MAX_FILES 64

struct cc_ingest_options {
    const char *data_dir; /* created (mode 0700) if absent */
    const char *key_path; /* must lie outside data_dir */
    size_t n_files;
    struct {
        int kind;
        const char *path;
    } files[CC_INGEST_MAX_FILES];
    cc_day today;          /* dates after this are rejected; 0 = the real today */
    FILE *progress;        /* progress lines (rows/s, percent), or NULL */
    FILE *log;             /* summary and notices, or NULL */
    FILE *timings;         /* the end of each phase, seconds into the run, or NULL */
    int fail_after_rows;   /* testing only: abort (exit) after this many rows; 0 = off */
    int wait_for_lock;     /* another writer holds the lock: wait (1) or refuse (0) */
};

/* Why rows were rejected: names are stable and appear in reports. */
#define CC_REJECT_REASONS(X)                                                   \
    X(MALFORMED_ROW, "malformed CSV row (wrong number of fields or bad UTF-8)") \
    X(NHS_NUMBER_SHAPE, "NHS number is not 10 digits")                         \
    X(NHS_NUMBER_CHECK, "NHS number fails the Modulus 11 check")               \
    X(NHS_NUMBER_MISSING, "NHS number missing")                                \
    X(DATE_SHAPE, "date is not YYYY-MM-DD")                                    \
    X(DATE_INVALID, "date does not exist")                                     \
    X(DATE_FUTURE, "date is in the future")                                    \
    X(DATE_ORDER, "discharge date before admission date")                      \
    X(SEX, "sex code not 0, 1, 2 or 9")                                        \
    X(POSTCODE, "postcode is not a UK postcode")                               \
    X(POSTCODE_UNKNOWN, "postcode not in the area lookup")                     \
    X(PRACTICE, "practice code malformed")                                     \
    X(PROVIDER, "provider code malformed")                                     \
    X(SNOMED, "SNOMED CT code malformed or fails its check digit")             \
    X(ICD10, "ICD-10 code malformed")                                          \
    X(OPCS4, "OPCS-4 code malformed")                                          \
    X(CODE_MISSING, "record has no clinical code")                             \
    X(OPTOUT_CODE, "opt-out code not 9Nu0 or 9Nu4")                            \
    X(OPTOUT_TYPE, "opt-out type not type1 or ndop")                           \
    X(OPTOUT_ACTION, "opt-out action not register or withdraw")                \
    X(OPTOUT_REFUSED, "opt-out event refused by the register")                 \
    X(AREA, "area row malformed or breaks the hierarchy")                      \
    X(POPULATION, "population row malformed")                                  \
    X(FIELD_MISSING, "required field empty")                                   \
    X(ADMISSION_METHOD, "admission method not a HES code")                     \
    X(SERVICE_TYPE, "service type not a 2-digit code")                         \
    X(MALFORMED_QUOTE, "malformed quoted field (stray or unclosed quote)")      \
    X(DATE_RANGE, "date outside the supported range (1900-01-01 to 2079-06-06)")

enum cc_reject_reason {
#define CC_REJECT_ENUM_(id, text) CC_REJECT_##id,
    CC_REJECT_REASONS(CC_REJECT_ENUM_)
#undef CC_REJECT_ENUM_
        CC_N_REJECT_REASONS
};

const char *cc_reject_reason_name(int reason); /* "NHS_NUMBER_CHECK" */
const char *cc_reject_reason_text(int reason);

/* ---- provenance ----------------------------------------------------------
 *
 * Where the data of a data directory came from, so that the tools that
 * write or print record-level data (bench_queries --export) run only on
 * synthetic data (docs/privacy.md, "Record-level exports").
 *
 * A run that reads new files records one row in state.db (table
 * ingest_provenance) before it reads any row of them, so that a run that
 * fails after committing opt-out events from its feeds still leaves its
 * mark. The row says "generated" when every new file lies beside a
 * manifest.json that `carecount generate` wrote, carries the standard name
 * of its kind, and has the SHA-256 digest the manifest lists for that
 * name, all of them under one manifest; otherwise "feeds", with the reason
 * (a file's name and why, never its content). A generated run whose valid
 * NHS numbers leave the range its manifest names (which must lie in
 * 900 000 0000 - 999 999 9999, never issued to a patient) is turned into
 * "feeds" when it ends. So a manifest copied beside other feeds vouches for
 * none of them, and an edited, replaced or extra file makes the run
 * "feeds". Rows are only ever added, and a row is never turned from
 * "feeds" back to "generated" (a trigger refuses it): once a directory has
 * read other feeds it is "feeds" for good. A directory whose versions were
 * published before provenance was recorded is "feeds" too: nobody can tell.
 *
 * This guards against mistakes (an export run on the wrong directory, a
 * manifest left beside real feeds), not against someone who writes a
 * manifest for real files on purpose; such a person could as well edit
 * the check out. */
enum cc_provenance_source {
    CC_PROVENANCE_NONE = 0,  /* nothing published yet (or, in a report, nothing new read) */
    CC_PROVENANCE_GENERATED, /* only `carecount generate` output */
    CC_PROVENANCE_FEEDS      /* other feeds, at least once */
};

struct cc_provenance {
    int source;              /* enum cc_provenance_source */
    /* GENERATED: the manifest of the latest run that published a version */
    uint64_t seed;
    int64_t patients;
    char manifest_sha256[65]; /* hex SHA-256 of that manifest.json */
    uint64_t n_manifests;    /* distinct manifests among the runs that published */
    /* FEEDS: why, as the first run that read other feeds recorded it
     * ("gp_events.csv: no manifest.json beside it") */
    char reason[256];
    uint64_t n_runs;         /* ingest runs recorded */
};

/* "none", "generated" or "feeds". */
const char *cc_provenance_name(int source);

/* The provenance of the data directory whose state.db is db. Reads only:
 * it may be asked of a directory a newer or older carecount wrote. 0 or
 * a CC_E* code. */
int cc_ingest_provenance(struct sqlite3 *db, struct cc_provenance *out);

/* What happened to one feed file. */
struct cc_feed_report {
    int kind;
    char path[512];
    int skipped_already_ingested;
    uint64_t rows_read, rows_accepted, rows_rejected;
    uint64_t rows_duplicate;      /* the same record twice in this run's files */
    uint64_t rows_already_stored; /* a record the store held before this run */
    uint64_t rejected_by_reason[CC_N_REJECT_REASONS];
    /* linkage (patient-level feeds) */
    uint64_t linked_stage1, linked_stage2, unlinked_no_match, unlinked_ambiguous;
    uint64_t persons_created;
    uint64_t dropped_type1; /* GP-sourced rows of patients with type 1 in force */
    uint64_t optout_events_added;
};

struct cc_ingest_report {
    size_t n_feeds;
    struct cc_feed_report feeds[CC_INGEST_MAX_FILES];
    uint64_t store_version;     /* the version now current (0: nothing new) */
    uint64_t n_persons, n_records;
    uint64_t n_persons_removed_gp_records; /* type 1 registered after storing */
    /* opt-out events committed to the register by this run: they stay
     * committed even when the run fails later */
    uint64_t optout_events_committed;
    int nothing_accepted; /* new files, but no row accepted: no new version */
    char rejects_path[512];     /* the rejects report written, or "" */
    /* where this run's new files came from (source NONE: it read none);
     * n_manifests and n_runs are not set */
    struct cc_provenance provenance;
};

/* Runs one ingest, holding the data directory's writer lock (cc_datadir.h)
 * from before anything is written to the end. Returns 0 (rows may still
 * have been rejected: see the report), or a negative CC_E* code for a
 * failure that stopped the ingest: CC_ELOCKED if another writer holds the
 * lock (and wait_for_lock is 0), CC_EWRONGKEY for a key that is not the
 * directory's, CC_EWEAKKEY, CC_EPERM for a directory others could change.
 * After a failure no new version is published, this run's snapshot and
 * rejects report are removed, a first ingest leaves no state.db behind,
 * and report->optout_events_committed (also named in errbuf) says which
 * opt-out events were committed before it; errbuf says why without
 * identifiers. The rejects report of version N (rejects/ingest-N.csv) is
 * on disk, whole, before the commit that publishes N; a report left under
 * N's name by a run that did not make N (killed, or it published nothing)
 * is removed when the next run starts. */
int cc_ingest_run(const struct cc_ingest_options *opt, struct cc_ingest_report *report,
                  char *errbuf, size_t errlen);

/* The path of the data directory's current store snapshot and its version.
 * CC_ENOTFOUND (with a reason in errbuf) if nothing has been ingested. */
int cc_ingest_current_store(const char *data_dir, uint64_t *version, char *path,
                            size_t path_len, char *errbuf, size_t errlen);

/* Writes the human summary of a report (rows, rejects by reason, linkage
 * rates per source) to out. */
void cc_ingest_report_print(const struct cc_ingest_report *report, FILE *out);

#endif
