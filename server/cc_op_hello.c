/*
 * cc_op_hello.c: the "hello" op: authenticates the connection with a token
 * (docs/protocol.md). Runs on the pool: it looks the token up in state.db
 * and writes the audit record, success or failure, before it replies.
 *
 * Must never: put the token, or why a token failed, in the reply (the
 * client learns only that it is not valid; the audit log gets the reason),
 * or in a log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_op.h"
#include "cc_services.h"

#define MAX_TOKEN_BYTES 256

static bool hello_runs_on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static void pack_text(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

static int hello_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    if (!services->accounts)
        return cc_request_fail(request, CC_EUNSUPPORTED,
                               "this server serves no data directory and has no accounts");
    if (cc_request_account(request))
        return cc_request_fail(request, CC_EINVAL, "this connection has already authenticated");
    const msgpack_object *token = cc_request_field(request, "token");
    if (!token || token->type != MSGPACK_OBJECT_STR)
        return cc_request_fail(request, CC_EINVAL, "token must be a string");
    if (token->via.str.size > MAX_TOKEN_BYTES)
        return cc_request_fail(request, CC_EAUTH, "the token is not valid");
    struct cc_account account;
    const char *why = NULL;
    int rc = cc_accounts_authenticate(services->accounts, token->via.str.ptr, token->via.str.size,
                                      (int64_t)time(NULL), &account, &why);
    if (rc == CC_EAUTH) {
        /* the reason goes to the audit log only */
        char *detail = NULL;
        if (why) {
            size_t len = strlen(why) + 16;
            detail = malloc(len);
            if (detail)
                snprintf(detail, len, "{\"failure\":\"%s\"}", why);
        }
        cc_request_audit_detail(request, detail, 0, 0);
        return cc_request_fail(request, CC_EAUTH,
                               "the token is not valid (unknown, expired or revoked)");
    }
    if (rc < 0)
        return cc_request_fail(request, rc, "the accounts could not be read");
    cc_request_authenticate(request, &account);
    pack_text(cc_reply_field(request, "account"), account.name);
    pack_text(cc_reply_field(request, "role"), cc_role_name(account.role));
    if (account.practice[0])
        pack_text(cc_reply_field(request, "practice"), account.practice);
    msgpack_pack_int64(cc_reply_field(request, "token_expires"), account.token_expires);
    return 0;
}

const struct cc_op cc_op_hello = {"hello", hello_run, hello_runs_on_pool, 0, true};
