/*
 * cc_op_codelists.c: the "codelists" op: the codelists queries may name,
 * each with its system and its codes (public reference data).
 *
 * Must never: return a term (the registry keeps none).
 */
#include <string.h>

#include "cc_op.h"
#include "cc_services.h"

static bool codelists_runs_on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static void pack_text(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

static int codelists_run(struct cc_request *request)
{
    const cc_codelists *lists = cc_request_services(request)->codelists;
    uint32_t n = cc_codelists_count(lists);
    msgpack_packer *pk = cc_reply_field(request, "codelists");
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct cc_codelist *list = cc_codelists_at(lists, i);
        msgpack_pack_map(pk, 3);
        pack_text(pk, "name");
        pack_text(pk, list->name);
        pack_text(pk, "system");
        if (list->system)
            pack_text(pk, cc_query_system_name(list->system));
        else
            msgpack_pack_nil(pk);
        pack_text(pk, "codes");
        msgpack_pack_array(pk, list->n_codes);
        for (uint32_t k = 0; k < list->n_codes; k++) {
            msgpack_pack_array(pk, 2);
            pack_text(pk, cc_query_system_name(list->codes[k].system));
            pack_text(pk, list->codes[k].text);
        }
    }
    return 0;
}

const struct cc_op cc_op_codelists = {"codelists", codelists_run, codelists_runs_on_pool,
                                      CC_OP_ROLE(CC_ROLE_RESEARCHER), true};
