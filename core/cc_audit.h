/*
 * cc_audit.h: the audit log: one record per request a server answers for an
 * account (and per hello), in the data directory's state.db, committed
 * before the reply is sent, and tamper-evident.
 *
 * A record: its sequence number (1, 2, 3, ... without gaps), the time, the
 * account (id and name), the op, the peer address, the canonical request
 * (the query or comparison as JSON, the opt-out op's person as a
 * pseudonym, an admin op's names and ids), the cells released and
 * suppressed, the outcome ("ok" or an error code name) and the reason of a
 * refusal or error.
 *
 * Tamper evidence: each record stores hash = BLAKE2b-256 keyed with the
 * audit chain key (derived from the data directory's key, cc_pseudo.h) over
 * the previous record's hash and every field of this one. cc_audit_verify()
 * recomputes the chain: an edited field, a deleted, inserted or reordered
 * record breaks it at that record; without the key nobody can compute a
 * chain that verifies. Cutting records off the END leaves a shorter chain
 * that verifies: cc_audit_head() gives (sequence, hash) of the last record,
 * which an operator records elsewhere (a ticket, a second machine) and
 * checks later with cc_audit_verify_head(). SQLite triggers also refuse
 * UPDATE and DELETE, against mistakes (not against someone who can edit the
 * file: that is what the chain is for).
 *
 * Thread-safe: the handle owns one connection and a mutex.
 *
 * Must never: hold an NHS number, a token or a name of a person: callers
 * pass pseudonyms and canonical queries only.
 */
#ifndef CC_AUDIT_H
#define CC_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cc_pseudo.h"

#define CC_AUDIT_HASH_BYTES 32

typedef struct cc_audit cc_audit;

/* What a caller appends. Strings may be NULL (stored as NULL). */
struct cc_audit_record {
    int64_t time_ms;     /* unix milliseconds */
    int64_t account_id;  /* 0: none (a failed hello) */
    const char *account; /* the account's name, or NULL */
    const char *op;      /* "hello", "count", ... */
    const char *peer;    /* the client's address, or NULL */
    const char *request; /* the canonical request, or NULL */
    uint64_t cells_released, cells_suppressed;
    const char *outcome; /* "ok" or an error code name */
    const char *reason;  /* the refusal or error message, or NULL */
};

/* A stored record, as read back. */
struct cc_audit_entry {
    uint64_t seq;
    struct cc_audit_record record; /* strings valid during the callback only */
    uint8_t hash[CC_AUDIT_HASH_BYTES];
};

/* Opens the audit log of data directory dir (state.db, which must exist),
 * creating its table if needed (schema module "audit"). key may be NULL to
 * read only (cc_audit_list); appending and verifying need it. Free with
 * cc_audit_close(). */
int cc_audit_open(const char *dir, const cc_pseudo_key *key, cc_audit **out, char *errbuf,
                  size_t errlen);

void cc_audit_close(cc_audit *audit);

/* Appends one record, chained to the last one: when it returns 0 the
 * record is durable. Appends from several threads at once are committed
 * together (group commit: the records that arrive while one transaction is
 * written go into the next, one fsync for all), each still returning only
 * once its own record is committed; a failed transaction fails every
 * record in it and commits none. CC_EINVAL without a key or an op;
 * CC_EBUSY, CC_EIO, CC_EDB from the database. */
int cc_audit_append(cc_audit *audit, const struct cc_audit_record *record, char *errbuf,
                    size_t errlen);

/* How many transactions appends have committed (or tried) and how many
 * records they committed, since the handle was opened. */
void cc_audit_commit_stats(cc_audit *audit, uint64_t *commits, uint64_t *records);

struct cc_audit_verify_result {
    uint64_t entries;       /* records checked */
    uint64_t first_bad_seq; /* 0: the chain verifies */
    char what[128];         /* what is wrong at first_bad_seq */
};

/* Recomputes the chain from the first record. Returns 0 when it verifies,
 * CC_ECORRUPT when it does not (result says where and what), or another
 * error (no key, the database). */
int cc_audit_verify(cc_audit *audit, struct cc_audit_verify_result *result, char *errbuf,
                    size_t errlen);

/* The last record's sequence number and hash (0 and zeros when empty). */
int cc_audit_head(cc_audit *audit, uint64_t *seq, uint8_t hash[CC_AUDIT_HASH_BYTES]);

/* Checks a head recorded earlier: the record seq must exist with that hash
 * (and the chain up to it must verify: call cc_audit_verify() too). 0, or
 * CC_ECORRUPT with the reason in errbuf ("record 120 is missing: the log was
 * cut", "record 120 has another hash"). */
int cc_audit_verify_head(cc_audit *audit, uint64_t seq, const uint8_t hash[CC_AUDIT_HASH_BYTES],
                         char *errbuf, size_t errlen);

/* Which records cc_audit_list() gives. */
struct cc_audit_filter {
    int64_t since_ms;    /* 0: from the first */
    const char *account; /* NULL: any */
    const char *op;      /* NULL: any */
    uint64_t limit;      /* 0: all; else the last `limit` matching records */
};

/* Calls each(entry, arg) for the matching records in sequence order; a
 * non-zero return from each stops the walk and is returned. */
int cc_audit_list(cc_audit *audit, const struct cc_audit_filter *filter,
                  int (*each)(const struct cc_audit_entry *entry, void *arg), void *arg);

#endif
