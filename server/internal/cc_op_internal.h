/*
 * cc_op_internal.h: what the data ops (count, compare, schema) share inside
 * server/: turning a query object of a request into a query bound to the
 * data version the request runs on, and the reply field common to them.
 *
 * Must never: be included outside server/ (it is a private include
 * directory of the server layer).
 */
#ifndef CC_OP_INTERNAL_H
#define CC_OP_INTERNAL_H

#include <stdbool.h>

#include "cc_op.h"
#include "cc_query.h"

/* The options every query of the server runs with: one engine thread, since
 * the libuv pool already runs requests side by side (the engine's threads
 * never nest inside the pool's). */
#define CC_OP_ENGINE_THREADS 1

/* Decodes, validates (against the store's extent) and binds (areas,
 * codelists) the query in obj, a request field called field. On failure
 * records the error in the request ("field.subfield: reason") and returns
 * its code. */
int cc_op_prepare_query(struct cc_request *request, const msgpack_object *obj, const char *field,
                        struct cc_query **out);

/* Binds and validates an already decoded query the same way. */
int cc_op_bind_query(struct cc_request *request, struct cc_query *query, const char *field);

/* Answers a prepared query (taken and freed) as count does: through
 * disclosure control, audited, into the "release" reply field; with the
 * account's disclosure ledger when with_ledger (not for the operator's
 * saved queries: an account that runs them chooses nothing, docs/privacy.md,
 * "Disclosure ledger"). */
int cc_op_count_query(struct cc_request *request, struct cc_query *query, bool with_ledger);

/* Answers a decoded comparison (taken and freed) as compare does (the
 * ledger as above). */
struct cc_compare_decoded;
int cc_op_compare_request(struct cc_request *request, struct cc_compare_decoded *decoded,
                          bool with_ledger);

/* The data version's store version, as the "data_version" reply field. */
void cc_op_reply_data_version(struct cc_request *request);

/* The release cache (queries/cc_release_cache.h) for the data ops: the key
 * of this request's canonical form (kind "count" or "compare"; the
 * account's own entries with the ledger, shared ones without). On a hit
 * the reply gets data_version and the field with the bytes kept, the audit
 * record its counts, and 1 is returned (canonical is then the request's);
 * 0 on a miss; a CC_E* code if the reply could not be written. */
struct cc_release_cache_key;
void cc_op_cache_key(struct cc_request *request, const char *kind, const char *canonical,
                     bool with_ledger, struct cc_release_cache_key *key);
int cc_op_reply_cached(struct cc_request *request, const struct cc_release_cache_key *key,
                       const char *field, char *canonical);

/* Gives the audit record the cells released and suppressed of summary
 * (with canonical, the request's), writes data_version and the field with
 * the packed release, and keeps it under key for repeats. 0, or CC_ENOMEM
 * if the reply could not be written. */
struct cc_release_summary;
int cc_op_reply_and_keep(struct cc_request *request, const struct cc_release_cache_key *key,
                         const char *field, char *canonical,
                         const struct cc_release_summary *summary, const msgpack_sbuffer *packed);

#endif
