/*
 * cc_request.c: decoding a request frame, checking its envelope, running its
 * op and encoding the reply.
 *
 * The msgpack zone that decodes the body is the request's arena; strings in
 * the decoded objects point into the body itself, so the body lives exactly
 * as long as the request.
 *
 * Must never: put any part of the request into an error message.
 */
#include "cc_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cc_audit.h"
#include "cc_error.h"
#include "cc_frame.h"
#include "cc_log.h"
#include "cc_msgpack.h"
#include "cc_services.h"

#define ERROR_MESSAGE_BYTES 200

static int64_t cc_request_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct cc_request {
    uint8_t *body; /* owned; decoded strings point into it */
    size_t body_bytes;
    msgpack_unpacked unpacked; /* owns the zone; valid once decode ran */
    bool unpacked_ready;
    const msgpack_object *map; /* the request map, once decoded */
    bool has_id;
    uint64_t id;
    const struct cc_op *op;
    bool test_mode;
    struct cc_server_stats stats;
    cc_dataversion *version; /* one reference, or NULL */
    struct cc_services *services; /* one reference */
    bool has_account;
    struct cc_account account;       /* the connection's, when has_account */
    bool authenticated;              /* hello succeeded: */
    struct cc_account authenticated_as;
    char peer[64];
    bool want_reload;
    char bearer[CC_TOKEN_TEXT_BYTES + 64]; /* wiped at free */
    size_t bearer_len;
    bool used_bearer;
    bool (*admit_account)(void *arg, int64_t account_id);
    void *admit_arg;
    char *audit_canonical; /* owned, or NULL */
    uint64_t audit_released, audit_suppressed;
    /* Reply fields as packed key/value pairs; the envelope is added at
     * encoding time, when the count of fields is known. */
    msgpack_sbuffer reply_fields;
    msgpack_packer reply_packer;
    uint32_t n_reply_fields;
    bool reply_out_of_memory; /* sticky: a write into reply_fields failed */
    int error;                /* 0, or the CC_E* code of the failure */
    char error_message[ERROR_MESSAGE_BYTES];
};

/* The packer's write callback: records allocation failure instead of
 * making every op check every pack call. */
static int write_reply_field(void *data, const char *buf, size_t len)
{
    struct cc_request *request = data;
    if (request->reply_out_of_memory)
        return -1;
    if (msgpack_sbuffer_write(&request->reply_fields, buf, len) != 0) {
        request->reply_out_of_memory = true;
        return -1;
    }
    return 0;
}

int cc_request_new(uint8_t *body, size_t len, struct cc_request **out)
{
    struct cc_request *request = calloc(1, sizeof(*request));
    if (!request) {
        free(body);
        return CC_ENOMEM;
    }
    request->body = body;
    request->body_bytes = len;
    msgpack_sbuffer_init(&request->reply_fields);
    msgpack_packer_init(&request->reply_packer, request, write_reply_field);
    *out = request;
    return 0;
}

void cc_request_free(struct cc_request *request)
{
    if (!request)
        return;
    if (request->unpacked_ready)
        msgpack_unpacked_destroy(&request->unpacked);
    msgpack_sbuffer_destroy(&request->reply_fields);
    cc_dataversion_release(request->version);
    cc_services_release(request->services);
    sodium_memzero(request->bearer, sizeof request->bearer);
    free(request->audit_canonical);
    free(request->body);
    free(request);
}

int cc_request_fail(struct cc_request *request, int code, const char *message)
{
    if (code >= 0)
        code = CC_EINTERNAL;
    request->error = code;
    snprintf(request->error_message, sizeof(request->error_message), "%s",
             message ? message : cc_strerror(code));
    return code;
}

bool cc_request_failed(const struct cc_request *request)
{
    return request->error != 0;
}

int cc_request_error(const struct cc_request *request)
{
    return request->error;
}

const msgpack_object *cc_request_map_get(const msgpack_object *map, const char *key)
{
    return cc_msgpack_map_get(map, key);
}

const msgpack_object *cc_request_field(const struct cc_request *request, const char *key)
{
    return cc_request_map_get(request->map, key);
}

/* Checks that every key of the (small, bounded) request map is a string and
 * appears once. Quadratic, which is why the key count is bounded first. */
static int check_keys(struct cc_request *request)
{
    const msgpack_object_map *map = &request->map->via.map;
    if (map->size > CC_REQUEST_MAX_KEYS)
        return cc_request_fail(request, CC_ETOOBIG, "the request map has too many keys");
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *key = &map->ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return cc_request_fail(request, CC_EPARSE, "every key of the request map must be a string");
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *other = &map->ptr[j].key;
            /* (an empty string's pointer may be NULL: no memcmp of it) */
            if (other->via.str.size == key->via.str.size &&
                (key->via.str.size == 0 ||
                 memcmp(other->via.str.ptr, key->via.str.ptr, key->via.str.size) == 0))
                return cc_request_fail(request, CC_EPARSE, "the request map repeats a key");
        }
    }
    return 0;
}

int cc_request_decode(struct cc_request *request)
{
    size_t offset = 0;
    msgpack_unpacked_init(&request->unpacked);
    request->unpacked_ready = true;
    if (!cc_msgpack_within_bounds(request->body, request->body_bytes, CC_REQUEST_MAX_DEPTH))
        return cc_request_fail(request, CC_EPARSE,
                               "the frame body is not valid msgpack within the limits "
                               "(one value, nesting, declared sizes)");
    msgpack_unpack_return rc = msgpack_unpack_next(&request->unpacked, (const char *)request->body,
                                                   request->body_bytes, &offset);
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        return cc_request_fail(request, CC_ENOMEM, NULL);
    if (rc != MSGPACK_UNPACK_SUCCESS)
        return cc_request_fail(request, CC_EPARSE, "the frame body is not valid msgpack");
    if (offset != request->body_bytes)
        return cc_request_fail(request, CC_EPARSE, "the frame body holds more than one msgpack value");
    if (request->unpacked.data.type != MSGPACK_OBJECT_MAP)
        return cc_request_fail(request, CC_EPARSE, "the frame body is not a msgpack map");
    request->map = &request->unpacked.data;

    /* The id first, so that every later error can carry it. */
    const msgpack_object *id = cc_request_field(request, "id");
    if (id && id->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        request->has_id = true;
        request->id = id->via.u64;
    }
    int err = check_keys(request);
    if (err < 0)
        return err;
    if (!request->has_id)
        return cc_request_fail(request, CC_EINVAL, "id must be an unsigned integer");

    const msgpack_object *version = cc_request_field(request, "v");
    if (!version)
        return cc_request_fail(request, CC_EINVAL, "v (the protocol version) is missing");
    if (version->type != MSGPACK_OBJECT_POSITIVE_INTEGER || version->via.u64 != CC_PROTOCOL_VERSION)
        return cc_request_fail(request, CC_EUNSUPPORTED, "unsupported protocol version (v)");

    const msgpack_object *op = cc_request_field(request, "op");
    if (!op || op->type != MSGPACK_OBJECT_STR)
        return cc_request_fail(request, CC_EINVAL, "op must be a string");
    request->op = cc_op_find(op->via.str.ptr, op->via.str.size);
    if (!request->op)
        return cc_request_fail(request, CC_EUNSUPPORTED, "unknown op");
    return 0;
}

const struct cc_op *cc_request_op(const struct cc_request *request)
{
    return request->error ? NULL : request->op;
}

uint64_t cc_request_id(const struct cc_request *request)
{
    return request->has_id ? request->id : 0;
}

void cc_request_set_context(struct cc_request *request, const struct cc_request_context *context)
{
    request->test_mode = context->test_mode;
    request->stats = context->stats;
    cc_dataversion_release(request->version);
    request->version = context->version ? cc_dataversion_retain(context->version) : NULL;
    cc_services_release(request->services);
    request->services = cc_services_retain(context->services);
    request->has_account = context->account != NULL;
    if (context->account)
        request->account = *context->account;
    snprintf(request->peer, sizeof request->peer, "%s", context->peer ? context->peer : "");
    request->admit_account = context->admit_account;
    request->admit_arg = context->admit_arg;
    request->bearer_len = 0;
    if (context->bearer_token) {
        size_t len = strlen(context->bearer_token);
        if (len >= sizeof request->bearer)
            len = sizeof request->bearer - 1; /* too long: it cannot authenticate */
        memcpy(request->bearer, context->bearer_token, len);
        request->bearer[len] = '\0';
        request->bearer_len = len ? len : 1; /* an empty token still fails */
    }
}

const struct cc_services *cc_request_services(const struct cc_request *request)
{
    return request->services;
}

const struct cc_account *cc_request_account(const struct cc_request *request)
{
    return request->has_account ? &request->account : NULL;
}

void cc_request_authenticate(struct cc_request *request, const struct cc_account *account)
{
    request->authenticated = true;
    request->authenticated_as = *account;
}

const struct cc_account *cc_request_authenticated(const struct cc_request *request)
{
    return request->authenticated && !request->error ? &request->authenticated_as : NULL;
}

void cc_request_audit_detail(struct cc_request *request, char *canonical, uint64_t released,
                             uint64_t suppressed)
{
    if (canonical != request->audit_canonical)
        free(request->audit_canonical);
    request->audit_canonical = canonical;
    request->audit_released = released;
    request->audit_suppressed = suppressed;
}

void cc_request_want_reload(struct cc_request *request)
{
    request->want_reload = true;
}

bool cc_request_wants_reload(const struct cc_request *request)
{
    return request->want_reload && !request->error;
}

bool cc_request_used_bearer(const struct cc_request *request)
{
    return request->used_bearer;
}

const char *cc_request_peer(const struct cc_request *request)
{
    return request->peer;
}

const cc_dataversion *cc_request_data(const struct cc_request *request)
{
    return request->version;
}

bool cc_request_test_mode(const struct cc_request *request)
{
    return request->test_mode;
}

const struct cc_server_stats *cc_request_server_stats(const struct cc_request *request)
{
    return &request->stats;
}

msgpack_packer *cc_reply_field(struct cc_request *request, const char *key)
{
    size_t len = strlen(key);
    msgpack_pack_str(&request->reply_packer, len);
    msgpack_pack_str_body(&request->reply_packer, key, len);
    request->n_reply_fields++;
    return &request->reply_packer;
}

/* Writes the request's audit record; a request whose record cannot be
 * committed releases nothing. */
static void audit(struct cc_request *request)
{
    const struct cc_services *services = request->services;
    if (!request->op || !request->op->audited || !services || !services->audit)
        return;
    const struct cc_account *who = request->has_account        ? &request->account
                                   : cc_request_authenticated(request) ? &request->authenticated_as
                                                                  : NULL;
    struct cc_audit_record record = {
        .time_ms = cc_request_now_ms(),
        .account_id = who ? who->id : 0,
        .account = who ? who->name : NULL,
        .op = request->op->name,
        .peer = request->peer[0] ? request->peer : NULL,
        .request = request->audit_canonical,
        .cells_released = request->error ? 0 : request->audit_released,
        .cells_suppressed = request->error ? 0 : request->audit_suppressed,
        .outcome = request->error ? cc_err_name(request->error) : "ok",
        .reason = request->error ? request->error_message : NULL,
    };
    char why[256];
    if (cc_audit_append(services->audit, &record, why, sizeof why) != 0) {
        cc_log("audit log: %s", why);
        request->authenticated = false;
        cc_request_fail(request, CC_EIO,
                        "the audit log could not be written, so nothing is released");
    }
}

void cc_request_execute(struct cc_request *request)
{
    if (request->error || !request->op)
        return;
    const struct cc_op *op = request->op;
    if (op->roles && !request->has_account && request->bearer_len && request->services &&
        request->services->accounts) {
        /* HTTP: every request brings its token */
        const char *why = NULL;
        request->used_bearer = true;
        int rc = cc_accounts_authenticate(request->services->accounts, request->bearer,
                                          strlen(request->bearer), (int64_t)time(NULL),
                                          &request->account, &why);
        sodium_memzero(request->bearer, sizeof request->bearer);
        if (rc != 0) {
            if (why) {
                size_t len = strlen(why) + 32;
                char *detail = malloc(len);
                if (detail)
                    snprintf(detail, len, "{\"bearer_failure\":\"%s\"}", why);
                cc_request_audit_detail(request, detail, 0, 0);
            }
            cc_request_fail(request, CC_EAUTH,
                            "the bearer token is not valid (unknown, expired or revoked)");
            audit(request);
            return;
        }
        request->has_account = true;
        if (request->admit_account &&
            !request->admit_account(request->admit_arg, request->account.id)) {
            cc_request_fail(request, CC_EBUSY,
                            "this account has made too many requests in the last minute; "
                            "try again later");
            audit(request);
            return;
        }
    }
    if (op->roles) {
        if (!request->has_account) {
            cc_request_fail(request, CC_EAUTH, "this op needs an account: send hello first");
            return; /* nobody to audit: the server logs and limits these */
        }
        if (!(op->roles & CC_OP_ROLE(request->account.role))) {
            cc_request_fail(request, CC_EDENIED, "this op is not open to the account's role");
            audit(request);
            return;
        }
    }
    int rc = op->run(request);
    if (rc < 0 && !request->error)
        cc_request_fail(request, rc, NULL);
    if (!request->error && request->reply_out_of_memory)
        cc_request_fail(request, CC_ENOMEM, NULL);
    audit(request);
}

static void pack_string(msgpack_packer *packer, const char *text)
{
    size_t len = strlen(text);
    msgpack_pack_str(packer, len);
    msgpack_pack_str_body(packer, text, len);
}

/* Packs the error form of the envelope into packer. */
static void pack_error(msgpack_packer *packer, bool has_id, uint64_t id, int code,
                       const char *message)
{
    msgpack_pack_map(packer, 4);
    pack_string(packer, "v");
    msgpack_pack_uint64(packer, CC_PROTOCOL_VERSION);
    pack_string(packer, "id");
    if (has_id)
        msgpack_pack_uint64(packer, id);
    else
        msgpack_pack_nil(packer);
    pack_string(packer, "ok");
    msgpack_pack_false(packer);
    pack_string(packer, "error");
    msgpack_pack_map(packer, 2);
    pack_string(packer, "code");
    pack_string(packer, cc_err_name(code));
    pack_string(packer, "message");
    pack_string(packer, message ? message : cc_strerror(code));
}

/* A frame buffer that remembers a failed write, so that one check after
 * packing covers every pack call. */
struct counting_buffer {
    msgpack_sbuffer *buffer;
    bool failed;
};

static int write_counting(void *data, const char *buf, size_t len)
{
    struct counting_buffer *out = data;
    if (out->failed || msgpack_sbuffer_write(out->buffer, buf, len) != 0) {
        out->failed = true;
        return -1;
    }
    return 0;
}

int cc_reply_encode_error(bool has_id, uint64_t id, int code, const char *message,
                          msgpack_sbuffer *frame)
{
    struct counting_buffer out = {frame, false};
    msgpack_packer packer;
    if (cc_frame_sbuffer_begin(frame) < 0)
        return CC_ENOMEM;
    msgpack_packer_init(&packer, &out, write_counting);
    pack_error(&packer, has_id, id, code, message);
    if (out.failed)
        return CC_ENOMEM;
    return cc_frame_sbuffer_finish(frame);
}

int cc_request_encode_reply(const struct cc_request *request, msgpack_sbuffer *frame)
{
    if (request->error)
        return cc_reply_encode_error(request->has_id, request->id, request->error,
                                     request->error_message, frame);
    struct counting_buffer out = {frame, false};
    msgpack_packer packer;
    if (cc_frame_sbuffer_begin(frame) < 0)
        return CC_ENOMEM;
    msgpack_packer_init(&packer, &out, write_counting);
    msgpack_pack_map(&packer, 3 + request->n_reply_fields);
    pack_string(&packer, "v");
    msgpack_pack_uint64(&packer, CC_PROTOCOL_VERSION);
    pack_string(&packer, "id");
    msgpack_pack_uint64(&packer, request->id);
    pack_string(&packer, "ok");
    msgpack_pack_true(&packer);
    if (request->reply_fields.size > 0)
        write_counting(&out, request->reply_fields.data, request->reply_fields.size);
    if (out.failed)
        return CC_ENOMEM;
    return cc_frame_sbuffer_finish(frame);
}
