/*
 * cc_op_admin.c: the operators' ops: accounts and tokens (add, disable,
 * list; issue, revoke, list), and reload (what SIGHUP does). Operators run
 * no data queries; these ops are theirs alone.
 *
 *   account_add     {"name", "role", "practice"?}   -> {"account_id"}
 *   account_disable {"name"}                         -> {}
 *   account_list    {}                               -> {"accounts": [...]}
 *   token_issue     {"account", "expires_days"?}     -> {"token", "token_id", "expires"}
 *   token_revoke    {"token_id"}                     -> {}
 *   token_list      {"account"?}                     -> {"tokens": [...]}
 *   reload          {}                               -> {} (the reload runs after the reply)
 *   audit_list      {"account"?, "audit_op"?, "since_ms"?, "limit"?} -> {"records": [...]}
 *
 * Must never: put a token in the audit log or a log line (the audit record
 * of token_issue names the account and the token id only); show a token
 * again after token_issue (the server keeps only its hash).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_op.h"
#include "cc_services.h"

#define OPERATOR CC_OP_ROLE(CC_ROLE_OPERATOR)
#define DEFAULT_EXPIRES_DAYS 90
#define MAX_EXPIRES_DAYS 3660

static bool on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static void pack_text(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* A string field copied into buf (at most len - 1 bytes). */
static int text_field(struct cc_request *request, const char *key, bool required, char *buf,
                      size_t len)
{
    const msgpack_object *v = cc_request_field(request, key);
    char message[96];
    buf[0] = '\0';
    if (!v) {
        if (!required)
            return 0;
        snprintf(message, sizeof message, "%s is missing", key);
        return cc_request_fail(request, CC_EINVAL, message);
    }
    if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= len || v->via.str.size == 0) {
        snprintf(message, sizeof message, "%s must be a string of 1 to %zu bytes", key, len - 1);
        return cc_request_fail(request, CC_EINVAL, message);
    }
    memcpy(buf, v->via.str.ptr, v->via.str.size);
    buf[v->via.str.size] = '\0';
    return 0;
}

/* The audit detail {"key":"value"} of an admin op (names and ids only). */
static void detail(struct cc_request *request, const char *key, const char *value)
{
    size_t len = strlen(key) + strlen(value) + 16;
    char *text = malloc(len);
    if (text)
        snprintf(text, len, "{\"%s\":\"%s\"}", key, value);
    cc_request_audit_detail(request, text, 0, 0);
}

static int accounts_or_fail(struct cc_request *request, cc_accounts **out)
{
    *out = cc_request_services(request)->accounts;
    return *out ? 0 : cc_request_fail(request, CC_EUNSUPPORTED, "this server has no accounts");
}

static int account_add_run(struct cc_request *request)
{
    cc_accounts *accounts;
    char name[CC_ACCOUNT_NAME_BYTES], role[16], practice[CC_ACCOUNT_PRACTICE_BYTES], why[200];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)) || (rc = text_field(request, "name", true, name, sizeof name)) ||
        (rc = text_field(request, "role", true, role, sizeof role)) ||
        (rc = text_field(request, "practice", false, practice, sizeof practice)))
        return rc;
    detail(request, "name", name);
    int r = cc_role_parse(role);
    if (r < 0)
        return cc_request_fail(request, CC_EINVAL,
                               "role must be researcher, planner, dashboard, practice or operator");
    int64_t id = 0;
    if ((rc = cc_accounts_add(accounts, name, r, practice, &id, why, sizeof why)) != 0)
        return cc_request_fail(request, rc, why);
    msgpack_pack_int64(cc_reply_field(request, "account_id"), id);
    return 0;
}

static int account_disable_run(struct cc_request *request)
{
    cc_accounts *accounts;
    char name[CC_ACCOUNT_NAME_BYTES], why[200];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)) || (rc = text_field(request, "name", true, name, sizeof name)))
        return rc;
    detail(request, "name", name);
    if ((rc = cc_accounts_disable(accounts, name, why, sizeof why)) != 0)
        return cc_request_fail(request, rc, why);
    return 0;
}

static int account_list_run(struct cc_request *request)
{
    cc_accounts *accounts;
    struct cc_account_info *list = NULL;
    size_t n = 0;
    char why[200];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)))
        return rc;
    if ((rc = cc_accounts_list(accounts, (int64_t)time(NULL), &list, &n, why, sizeof why)) != 0)
        return cc_request_fail(request, rc, why);
    msgpack_packer *pk = cc_reply_field(request, "accounts");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 6);
        pack_text(pk, "name");
        pack_text(pk, list[i].name);
        pack_text(pk, "role");
        pack_text(pk, cc_role_name(list[i].role));
        pack_text(pk, "practice");
        if (list[i].practice[0])
            pack_text(pk, list[i].practice);
        else
            msgpack_pack_nil(pk);
        pack_text(pk, "created_at");
        msgpack_pack_int64(pk, list[i].created_at);
        pack_text(pk, "disabled_at");
        msgpack_pack_int64(pk, list[i].disabled_at);
        pack_text(pk, "usable_tokens");
        msgpack_pack_uint64(pk, list[i].n_tokens_usable);
    }
    free(list);
    return 0;
}

static int token_issue_run(struct cc_request *request)
{
    cc_accounts *accounts;
    char name[CC_ACCOUNT_NAME_BYTES], why[200];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)) ||
        (rc = text_field(request, "account", true, name, sizeof name)))
        return rc;
    detail(request, "account", name);
    uint64_t days = DEFAULT_EXPIRES_DAYS;
    const msgpack_object *d = cc_request_field(request, "expires_days");
    if (d) {
        if (d->type != MSGPACK_OBJECT_POSITIVE_INTEGER || d->via.u64 < 1 ||
            d->via.u64 > MAX_EXPIRES_DAYS)
            return cc_request_fail(request, CC_ERANGE, "expires_days must be 1 to 3660");
        days = d->via.u64;
    }
    int64_t expires = (int64_t)time(NULL) + (int64_t)days * 86400;
    char token[CC_TOKEN_TEXT_BYTES];
    int64_t token_id = 0;
    rc = cc_accounts_token_issue(accounts, name, expires, token, &token_id, why, sizeof why);
    if (rc) {
        sodium_memzero(token, sizeof token);
        return cc_request_fail(request, rc, why);
    }
    pack_text(cc_reply_field(request, "token"), token);
    sodium_memzero(token, sizeof token);
    msgpack_pack_int64(cc_reply_field(request, "token_id"), token_id);
    msgpack_pack_int64(cc_reply_field(request, "expires"), expires);
    return 0;
}

static int token_revoke_run(struct cc_request *request)
{
    cc_accounts *accounts;
    char why[200], id_text[24];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)))
        return rc;
    const msgpack_object *id = cc_request_field(request, "token_id");
    if (!id || id->type != MSGPACK_OBJECT_POSITIVE_INTEGER || id->via.u64 > INT64_MAX)
        return cc_request_fail(request, CC_EINVAL, "token_id must be an unsigned integer");
    snprintf(id_text, sizeof id_text, "%llu", (unsigned long long)id->via.u64);
    detail(request, "token_id", id_text);
    if ((rc = cc_accounts_token_revoke(accounts, (int64_t)id->via.u64, why, sizeof why)) != 0)
        return cc_request_fail(request, rc, why);
    return 0;
}

static int token_list_run(struct cc_request *request)
{
    cc_accounts *accounts;
    char name[CC_ACCOUNT_NAME_BYTES], why[200];
    int rc;
    if ((rc = accounts_or_fail(request, &accounts)) ||
        (rc = text_field(request, "account", false, name, sizeof name)))
        return rc;
    struct cc_token_info *list = NULL;
    size_t n = 0;
    if ((rc = cc_accounts_token_list(accounts, name[0] ? name : NULL, &list, &n, why,
                                     sizeof why)) != 0)
        return cc_request_fail(request, rc, why);
    msgpack_packer *pk = cc_reply_field(request, "tokens");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(pk, 6);
        pack_text(pk, "token_id");
        msgpack_pack_int64(pk, list[i].id);
        pack_text(pk, "account");
        pack_text(pk, list[i].account);
        pack_text(pk, "created_at");
        msgpack_pack_int64(pk, list[i].created_at);
        pack_text(pk, "expires_at");
        msgpack_pack_int64(pk, list[i].expires_at);
        pack_text(pk, "revoked_at");
        msgpack_pack_int64(pk, list[i].revoked_at);
        pack_text(pk, "last_used_at");
        msgpack_pack_int64(pk, list[i].last_used_at);
    }
    free(list);
    return 0;
}

struct audit_out {
    msgpack_packer *pk;
    uint32_t n;
};

static void pack_nullable(msgpack_packer *pk, const char *s)
{
    if (s)
        pack_text(pk, s);
    else
        msgpack_pack_nil(pk);
}

static int pack_audit_entry(const struct cc_audit_entry *e, void *arg)
{
    struct audit_out *out = arg;
    msgpack_packer *pk = out->pk;
    const struct cc_audit_record *r = &e->record;
    msgpack_pack_map(pk, 10);
    pack_text(pk, "seq");
    msgpack_pack_uint64(pk, e->seq);
    pack_text(pk, "time_ms");
    msgpack_pack_int64(pk, r->time_ms);
    pack_text(pk, "account");
    pack_nullable(pk, r->account);
    pack_text(pk, "op");
    pack_nullable(pk, r->op);
    pack_text(pk, "peer");
    pack_nullable(pk, r->peer);
    pack_text(pk, "request");
    pack_nullable(pk, r->request);
    pack_text(pk, "cells_released");
    msgpack_pack_uint64(pk, r->cells_released);
    pack_text(pk, "cells_suppressed");
    msgpack_pack_uint64(pk, r->cells_suppressed);
    pack_text(pk, "outcome");
    pack_nullable(pk, r->outcome);
    pack_text(pk, "reason");
    pack_nullable(pk, r->reason);
    out->n++;
    return 0;
}

#define MAX_AUDIT_LIST 1000

static int audit_list_run(struct cc_request *request)
{
    cc_audit *audit = cc_request_services(request)->audit;
    if (!audit)
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server has no audit log");
    char account[CC_ACCOUNT_NAME_BYTES], op[40];
    int rc;
    if ((rc = text_field(request, "account", false, account, sizeof account)) ||
        (rc = text_field(request, "audit_op", false, op, sizeof op)))
        return rc;
    struct cc_audit_filter filter = {0, account[0] ? account : NULL, op[0] ? op : NULL, 100};
    const msgpack_object *limit = cc_request_field(request, "limit");
    if (limit) {
        if (limit->type != MSGPACK_OBJECT_POSITIVE_INTEGER || limit->via.u64 < 1 ||
            limit->via.u64 > MAX_AUDIT_LIST)
            return cc_request_fail(request, CC_ERANGE, "limit must be 1 to 1000");
        filter.limit = limit->via.u64;
    }
    const msgpack_object *since = cc_request_field(request, "since_ms");
    if (since) {
        if (since->type != MSGPACK_OBJECT_POSITIVE_INTEGER || since->via.u64 > INT64_MAX)
            return cc_request_fail(request, CC_EINVAL, "since_ms must be an unsigned integer");
        filter.since_ms = (int64_t)since->via.u64;
    }
    /* one pass into a buffer, so the count and the records agree (this
     * request's own record is written after its reply: it is not in it) */
    msgpack_sbuffer buffer;
    msgpack_packer tmp;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&tmp, &buffer, msgpack_sbuffer_write);
    struct audit_out out = {&tmp, 0};
    rc = cc_audit_list(audit, &filter, pack_audit_entry, &out);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&buffer);
        return cc_request_fail(request, rc, "the audit log could not be read");
    }
    msgpack_packer *pk = cc_reply_field(request, "records");
    msgpack_pack_array(pk, out.n);
    if (buffer.size)
        pk->callback(pk->data, buffer.data, buffer.size);
    msgpack_sbuffer_destroy(&buffer);
    return 0;
}

static int reload_run(struct cc_request *request)
{
    cc_request_want_reload(request);
    return 0;
}

const struct cc_op cc_op_account_add = {"account_add", account_add_run, on_pool, OPERATOR, true};
const struct cc_op cc_op_account_disable = {"account_disable", account_disable_run, on_pool,
                                            OPERATOR, true};
const struct cc_op cc_op_account_list = {"account_list", account_list_run, on_pool, OPERATOR,
                                         true};
const struct cc_op cc_op_token_issue = {"token_issue", token_issue_run, on_pool, OPERATOR, true};
const struct cc_op cc_op_token_revoke = {"token_revoke", token_revoke_run, on_pool, OPERATOR,
                                         true};
const struct cc_op cc_op_token_list = {"token_list", token_list_run, on_pool, OPERATOR, true};
const struct cc_op cc_op_reload = {"reload", reload_run, on_pool, OPERATOR, true};
const struct cc_op cc_op_audit_list = {"audit_list", audit_list_run, on_pool, OPERATOR, true};
