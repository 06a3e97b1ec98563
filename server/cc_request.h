/*
 * cc_request.h: the life of one request inside the server.
 *
 * A request owns its frame body, the msgpack zone that decoded it (the
 * request's arena: every decoded object lives there and is freed in one
 * call), and the buffer its reply fields are packed into. The server creates
 * it from a frame, checks the envelope, runs its op, encodes the reply frame
 * and frees it. See cc_op.h for the side that ops see.
 *
 * Must never: include request content in an error reply or a log line.
 */
#ifndef CC_REQUEST_H
#define CC_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cc_op.h"

/* The protocol version this server speaks (the envelope's "v"). */
#define CC_PROTOCOL_VERSION 1

/* A request map may have at most this many keys (the envelope and the op's
 * own fields; nested maps such as a query are not limited by this). */
#define CC_REQUEST_MAX_KEYS 64

/* Containers may nest at most this deep in a request (msgpack-c's own
 * parser stack is 32 deep). */
#define CC_REQUEST_MAX_DEPTH 32

/* Creates a request that takes ownership of body[0..len) (malloc'd). Returns
 * 0 and sets *out (free with cc_request_free), or CC_ENOMEM (body is then
 * freed). */
int cc_request_new(uint8_t *body, size_t len, struct cc_request **out);

/* Frees a request, its body, its zone and its reply. NULL is allowed. */
void cc_request_free(struct cc_request *request);

/* Decodes the body and checks the envelope: one msgpack map (checked
 * first, without allocating, to be one value whose containers declare no
 * more elements than the body has bytes, nested at most
 * CC_REQUEST_MAX_DEPTH deep), unique string keys, "v" = 1, "id" an
 * unsigned integer, "op" a known op. Returns 0, or the error code it also
 * records in the request (PARSE, INVAL, UNSUPPORTED, TOOBIG, NOMEM). */
int cc_request_decode(struct cc_request *request);

/* The op found by cc_request_decode (NULL if decoding failed). */
const struct cc_op *cc_request_op(const struct cc_request *request);

/* True if an error has been recorded. */
bool cc_request_failed(const struct cc_request *request);

/* The CC_E* code recorded (0: none). */
int cc_request_error(const struct cc_request *request);

/* What a request runs with, set by the server when it dispatches it. */
struct cc_request_context {
    bool test_mode;
    struct cc_server_stats stats;
    /* the data version in force (NULL: no data), on which the request takes
     * a reference that cc_request_free() gives back: a request finishes on
     * the version it was dispatched with, even if a newer one is published
     * meanwhile */
    cc_dataversion *version;
    struct cc_services *services; /* the request takes a reference */
    const struct cc_account *account; /* the connection's, or NULL (copied) */
    const char *peer;                 /* the peer's address (copied), or NULL */
    /* HTTP: the request's bearer token (copied; wiped when the request is
     * freed), or NULL. With it and no account, cc_request_execute()
     * authenticates the request itself before running an op that needs an
     * account. */
    const char *bearer_token;
    /* HTTP: after the bearer token authenticates, the account's request is
     * admitted by admit_account(admit_arg, account_id) (the per-account
     * rate limit, which a hello-less connection cannot apply before the
     * account is known); false fails it BUSY. NULL: admitted. Called on the
     * thread that executes the request. */
    bool (*admit_account)(void *admit_arg, int64_t account_id);
    void *admit_arg;
};

/* Gives the request its context. */
void cc_request_set_context(struct cc_request *request, const struct cc_request_context *context);

/* hello: the account the request authenticated as, once it has run and
 * succeeded (the server makes it the connection's); NULL otherwise. */
const struct cc_account *cc_request_authenticated(const struct cc_request *request);

/* True if the request authenticated (or failed to) with a bearer token. */
bool cc_request_used_bearer(const struct cc_request *request);

/* reload: the op asked for a reload (cc_request_want_reload) and succeeded. */
bool cc_request_wants_reload(const struct cc_request *request);

/* Runs the op (on whichever thread calls it): checks the account's role
 * against the op's (CC_EAUTH without one, CC_EDENIED for another role),
 * runs it, records the outcome, and for an audited op appends the audit
 * record (cc_audit.h) before returning: if that fails the reply becomes an
 * IO error and nothing is released. */
void cc_request_execute(struct cc_request *request);

/* Encodes the whole reply frame (header included) into an empty buffer:
 * the success envelope and the op's fields, or the error form. Returns 0 or
 * CC_ENOMEM. */
int cc_request_encode_reply(const struct cc_request *request, msgpack_sbuffer *frame);

/* Encodes an error reply frame not tied to a decoded request (a refused
 * connection, an oversize frame, an idle timeout): id is nil unless has_id.
 * message NULL means the code's standard message. Returns 0 or CC_ENOMEM. */
int cc_reply_encode_error(bool has_id, uint64_t id, int code, const char *message,
                          msgpack_sbuffer *frame);

#endif
