/*
 * cc_op.c: the table of ops the server knows.
 *
 * Each op lives in its own file (cc_op_NAME.c); this table is the only place
 * that lists them, so the dispatcher never changes when an op is added.
 *
 * Must never: hold state; ops are stateless descriptions.
 */
#include "cc_op.h"

#include <string.h>

static const struct cc_op *const ops[] = {
    &cc_op_ping,
    &cc_op_status,
    &cc_op_hello,
    &cc_op_schema,
    &cc_op_codelists,
    &cc_op_count,
    &cc_op_compare,
    &cc_op_optout_status,
    &cc_op_optout_history,
    &cc_op_optout_register,
    &cc_op_optout_withdraw,
    &cc_op_saved_list,
    &cc_op_saved,
    &cc_op_transparency,
    &cc_op_account_add,
    &cc_op_account_disable,
    &cc_op_account_list,
    &cc_op_token_issue,
    &cc_op_token_revoke,
    &cc_op_token_list,
    &cc_op_reload,
    &cc_op_audit_list,
};

const struct cc_op *cc_op_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strlen(ops[i]->name) == len && memcmp(ops[i]->name, name, len) == 0)
            return ops[i];
    return NULL;
}
