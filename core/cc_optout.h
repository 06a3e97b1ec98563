/*
 * cc_optout.h: the durable opt-out register.
 *
 * Patients may opt out of the use of their data (type 1, recorded at the GP
 * practice, and the National Data Opt-out, which replaced type 2). Each
 * registration and withdrawal is an event with an effective date; the
 * register keeps every event for ever (nothing is updated or deleted) in the
 * table optout_event of state.db, keyed by the person's pseudonym.
 *
 * Status rule: for one person and one type, the event with the latest
 * effective_day on or before the day asked about decides (ties on the same
 * day broken by the later sequence number, i.e. the later recorded): the type
 * is in force if that event is a registration. No event: not in force.
 *
 * Idempotence: an event is identified by (person, type, action,
 * effective_day). Recording it again adds nothing and returns
 * CC_OPTOUT_ALREADY_RECORDED, so feeds can be replayed.
 *
 * Withdrawals with no registration in force on their effective day: refused
 * (CC_EINVAL) from an operator or GP registration; from a feed they are kept
 * (CC_OPTOUT_ADDED_UNMATCHED) because feeds may arrive out of order, and the
 * status rule then treats them like any other event (see docs/optout.md).
 *
 * Durability: a call to cc_optout_record() outside a transaction is its own
 * transaction and is durable when it returns 0 or 1 (state.db runs WAL with
 * synchronous=FULL, see cc_db.h). A feed import brackets many calls with
 * cc_db_begin()/cc_db_commit() on the same connection: then nothing is
 * durable until the commit returns, and a crash before it loses the whole
 * batch (the ingest replays the feed, which is idempotent).
 *
 * Must never: hold or accept an NHS number (only pseudonyms), or print or log
 * a pseudonym.
 */
#ifndef CC_OPTOUT_H
#define CC_OPTOUT_H

#include <stddef.h>
#include <stdint.h>

/* A SQLite connection. Only the .c files that call SQLite include <sqlite3.h>. */
typedef struct sqlite3 sqlite3;

#include "cc_date.h"
#include "cc_model.h"  /* enum cc_optout_type */
#include "cc_pseudo.h" /* cc_pseudonym */

/* What an event does. Values are stored in state.db: never renumber. */
enum cc_optout_action {
    CC_OPTOUT_REGISTER = 1,
    CC_OPTOUT_WITHDRAW = 2,
};

/* Where an event came from. Values are stored in state.db: never renumber. */
enum cc_optout_source {
    CC_OPTOUT_SOURCE_FEED = 1,            /* the opt-out register feed */
    CC_OPTOUT_SOURCE_OPERATOR = 2,        /* `carecount optout`, and the server's
                                             optout_register / optout_withdraw (by a
                                             practice account: with its practice code) */
    CC_OPTOUT_SOURCE_GP_REGISTRATION = 3, /* an opt-out code on a GP registration row */
};

/* Positive results of cc_optout_record(). */
enum cc_optout_recorded {
    CC_OPTOUT_ALREADY_RECORDED = 0, /* the same event was recorded before: nothing added */
    CC_OPTOUT_ADDED = 1,            /* a new event, now part of the history */
    CC_OPTOUT_ADDED_UNMATCHED = 2,  /* a feed withdrawal with no registration in
                                       force on its day: kept, see the file comment */
};

/* Bit masks of types: in force, or asked about. */
#define CC_OPTOUT_MASK(type) (1u << ((type) - 1))
#define CC_OPTOUT_MASK_TYPE1 CC_OPTOUT_MASK(CC_OPTOUT_TYPE1) /* 1 */
#define CC_OPTOUT_MASK_NDOP CC_OPTOUT_MASK(CC_OPTOUT_NDOP)   /* 2 */
#define CC_OPTOUT_MASK_ANY (CC_OPTOUT_MASK_TYPE1 | CC_OPTOUT_MASK_NDOP)

#define CC_OPTOUT_PRACTICE_BYTES 16 /* practice code and NUL; "" = none */

/* One event. For cc_optout_record() the caller fills every field except
 * sequence (ignored); recorded_at 0 means "now". */
struct cc_optout_event {
    cc_pseudonym person;
    uint8_t type;   /* enum cc_optout_type */
    uint8_t action; /* enum cc_optout_action */
    uint8_t source; /* enum cc_optout_source */
    cc_day effective_day;
    char practice_code[CC_OPTOUT_PRACTICE_BYTES];
    int64_t recorded_at; /* unix seconds */
    uint64_t sequence;   /* assigned by the register, increasing, never reused */
};

/* Names: "type1", "ndop"; "register", "withdraw"; "feed", "operator",
 * "gp_registration". NULL for a value outside the enum. */
const char *cc_optout_type_name(int type);
const char *cc_optout_action_name(int action);
const char *cc_optout_source_name(int source);

/* The register, bound to one connection (opaque: it holds prepared
 * statements). */
typedef struct cc_optout cc_optout;

/* Creates the register's tables in db if they do not exist (schema module
 * "optout") and prepares its statements. The caller keeps ownership of db,
 * which must outlive the register; free the register with
 * cc_optout_detach() before closing db. */
int cc_optout_attach(sqlite3 *db, cc_optout **out);

/* Finalizes the register's statements and frees it (NULL is allowed). Does
 * not close the connection. */
void cc_optout_detach(cc_optout *register_);

/* Records one event. Returns a cc_optout_recorded value (>= 0) or: CC_EINVAL
 * for a bad type, action, source, day or practice code, or for a withdrawal
 * from an operator or GP registration when no registration of that type is in
 * force on its effective day; CC_EBUSY, CC_EIO, CC_EDB from the database.
 * Outside a transaction the event is committed (durably) before it returns;
 * inside one (cc_db_begin) it joins it. */
int cc_optout_record(cc_optout *register_, const struct cc_optout_event *event);

/* The types in force for person on day `on`, as a CC_OPTOUT_MASK_* set in
 * *types_in_force (0: none). */
int cc_optout_status(cc_optout *register_, const cc_pseudonym *person, cc_day on,
                     unsigned *types_in_force);

/* Every event of person, in the order of effective_day, then sequence. The
 * caller frees *events with free(); *events is NULL when *n_events is 0. */
int cc_optout_history(cc_optout *register_, const cc_pseudonym *person,
                      struct cc_optout_event **events, size_t *n_events);

/* The persons with at least one type of type_mask in force on day `on`,
 * sorted by pseudonym bytes (memcmp order) and unique: CC_OPTOUT_MASK_ANY for
 * the persons excluded from every figure, CC_OPTOUT_MASK_TYPE1 for those whose
 * GP-sourced records must leave the store. Read in one read transaction, so
 * the set is exactly the register's state after event *as_of_sequence (pass
 * NULL if not needed): a publisher can store it with the data version. The
 * caller frees *persons with free(); it is NULL when *n_persons is 0. One
 * pass over an index: well under a second for 500,000 events. */
int cc_optout_persons_in_force(cc_optout *register_, cc_day on, unsigned type_mask,
                               cc_pseudonym **persons, size_t *n_persons,
                               uint64_t *as_of_sequence);

/* The sequence number of the latest event recorded (0 if none), so a
 * publisher can tell whether anything changed since the last data version. */
int cc_optout_last_sequence(cc_optout *register_, uint64_t *sequence);

#endif
