/*
 * cc_op.h: what an operation ("op") of the protocol sees, and the op table.
 *
 * The server decodes a frame into a struct cc_request, checks the envelope
 * (v, id, op; see docs/protocol.md), looks the op up here and runs it, on the
 * event loop or, if the op asks for it, on the libuv thread pool. An op reads
 * its request fields and packs its reply fields; the server adds the
 * envelope ("v", "id", "ok") and writes the frame.
 *
 * Adding an op: write server/cc_op_NAME.c defining `const struct cc_op
 * cc_op_NAME`, declare it below, and list it in the table in cc_op.c.
 *
 * Threading: an op that runs on the pool must touch nothing but its request
 * (and read-only shared data); it must not call libuv or the server. A
 * request is owned by exactly one thread at a time.
 *
 * Must never: echo request content in an error message, or write a reply
 * field named "v", "id", "ok" or "error" (the envelope owns those).
 */
#ifndef CC_OP_H
#define CC_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cc_account.h"
#include "cc_dataversion.h"

struct cc_services;

struct cc_request;

/* A snapshot of the server's counters, taken when a request is dispatched. */
struct cc_server_stats {
    uint64_t uptime_s;
    uint64_t connections_open;     /* connections being served now */
    uint64_t connections_accepted; /* since start, including refused ones */
    uint64_t connections_refused;  /* told BUSY because of max_connections */
    uint64_t connections_paused;   /* not read now: their replies are not read */
    uint64_t requests_served;      /* replies queued since start, errors included */
    uint64_t requests_in_progress; /* on the thread pool now */
    uint64_t data_version;         /* the store version served (0: no data) */
    int32_t data_published_on;     /* cc_day: opt-outs in force on it are applied */
    uint64_t data_publication;     /* versions published since start */
};

/* The roles an op is open to, as bits of enum cc_role (cc_account.h). */
#define CC_OP_ROLE(role) (1u << (role))
#define CC_OP_DATA_ROLES (CC_OP_ROLE(CC_ROLE_RESEARCHER) | CC_OP_ROLE(CC_ROLE_PLANNER))

struct cc_op {
    const char *name;
    /* Does the work and packs the reply fields. Returns 0, or a CC_E* code
     * (after cc_request_fail, or alone for the code's standard message). */
    int (*run)(struct cc_request *request);
    /* NULL: always runs on the event loop (only for ops that take
     * microseconds). Otherwise returns true if this request must run on
     * the thread pool. Called on the loop, after the envelope is checked. */
    bool (*runs_on_pool)(const struct cc_request *request);
    /* 0: open to anyone, without an account (ping, status, hello).
     * Otherwise the CC_OP_ROLE() bits of the roles that may run it: a
     * connection without an account is told AUTH, an account of another
     * role DENIED (and that refusal is audited). */
    unsigned roles;
    /* Every request of the op is written to the audit log, committed,
     * before its reply is sent (the op then runs on the pool). */
    bool audited;
};

/* Returns the op called name[0..len), or NULL. */
const struct cc_op *cc_op_find(const char *name, size_t len);

/* The ops. */
extern const struct cc_op cc_op_ping;
extern const struct cc_op cc_op_status;
extern const struct cc_op cc_op_hello;
extern const struct cc_op cc_op_schema;
extern const struct cc_op cc_op_codelists;
extern const struct cc_op cc_op_count;
extern const struct cc_op cc_op_compare;
extern const struct cc_op cc_op_optout_status;
extern const struct cc_op cc_op_optout_history;
extern const struct cc_op cc_op_optout_register;
extern const struct cc_op cc_op_optout_withdraw;
extern const struct cc_op cc_op_saved_list;
extern const struct cc_op cc_op_saved;
extern const struct cc_op cc_op_transparency;
extern const struct cc_op cc_op_account_add;
extern const struct cc_op cc_op_account_disable;
extern const struct cc_op cc_op_account_list;
extern const struct cc_op cc_op_token_issue;
extern const struct cc_op cc_op_token_revoke;
extern const struct cc_op cc_op_token_list;
extern const struct cc_op cc_op_reload;
extern const struct cc_op cc_op_audit_list;

/* The request's id (0 if it had none; such requests never reach an op). */
uint64_t cc_request_id(const struct cc_request *request);

/* Returns the value of key in the request map, or NULL if absent. */
const msgpack_object *cc_request_field(const struct cc_request *request, const char *key);

/* Returns the value of key in a msgpack map (string keys), or NULL if map is
 * not a map or has no such key. */
const msgpack_object *cc_request_map_get(const msgpack_object *map, const char *key);

/* True if the server runs with --test-mode (test-only fields allowed). */
bool cc_request_test_mode(const struct cc_request *request);

/* The data version the request was dispatched with (NULL when the server
 * serves no data). Valid until the request is freed, whatever is published
 * meanwhile. */
const cc_dataversion *cc_request_data(const struct cc_request *request);

/* The server's counters when the request was dispatched. */
const struct cc_server_stats *cc_request_server_stats(const struct cc_request *request);

/* What the ops share: policy, codelists, key, accounts, audit log (never
 * NULL; its handles are NULL when the server serves no data). */
const struct cc_services *cc_request_services(const struct cc_request *request);

/* The account the request runs as (the connection's, after hello), or
 * NULL. */
const struct cc_account *cc_request_account(const struct cc_request *request);

/* hello: records that the request authenticated as account; the server
 * makes it the connection's account when the reply is sent. */
void cc_request_authenticate(struct cc_request *request, const struct cc_account *account);

/* For the audit log: the request's canonical form (a malloc'd string the
 * request takes and frees, NULL allowed) and how many cells it released
 * and suppressed. Ops that release figures call it before returning. */
void cc_request_audit_detail(struct cc_request *request, char *canonical, uint64_t released,
                             uint64_t suppressed);

/* reload: asks the server to reload its policy, codelists and saved
 * queries and publish new data, as on SIGHUP, once the reply is sent. */
void cc_request_want_reload(struct cc_request *request);

/* The peer's address ("127.0.0.1"), or "" if unknown. */
const char *cc_request_peer(const struct cc_request *request);

/* Adds a reply field: packs key and returns the packer, into which the
 * caller packs exactly one value (which may be a map or an array). */
msgpack_packer *cc_reply_field(struct cc_request *request, const char *key);

/* Records that the request failed with code and a message (a fixed text
 * that names the field and the reason, never a value from the request).
 * Returns code, so an op can `return cc_request_fail(...)`. */
int cc_request_fail(struct cc_request *request, int code, const char *message);

#endif
