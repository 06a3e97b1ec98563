/*
 * cmd_codelists.c: `carecount codelists`: the codelists a server's queries
 * may name (the codelists op), each with its system and number of codes;
 * --format json prints every code.
 *
 * Exit status: cc_remote.h.
 *
 * Must never: take a token from the command line.
 */
#include <stdio.h>
#include <string.h>

#include "cc_msgpack.h"
#include "cc_remote.h"

const char cc_cmd_codelists_summary[] = "the codelists a server's queries may name";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount codelists [OPTIONS]\n"
            "\n"
            "Lists the codelists a query may name ({\"codelist\": NAME}): name, system\n"
            "and number of codes; --format json gives every code.\n"
            "\n"
            "options:\n%s",
            cc_remote_flags_usage);
}

int cc_cmd_codelists(int argc, char **argv)
{
    struct cc_remote_options options;
    cc_remote_defaults(&options);
    int done = cc_remote_parse_args(&options, argc, argv, "codelists", usage, NULL, NULL, NULL);
    if (done >= 0)
        return done;
    struct cc_client *client = NULL;
    int status = cc_remote_open(&options, "codelists", &client);
    if (status)
        return status;
    struct cc_reply reply;
    if (cc_remote_call_simple(client, "codelists", "codelists", &reply, &status) < 0) {
        cc_client_close(client);
        return status;
    }
    const msgpack_object *lists = cc_reply_get(&reply, "codelists");
    if (options.format == CC_REMOTE_JSON) {
        status = cc_remote_print_json(stdout, lists) == 0 ? 0 : CC_REMOTE_EXIT_FAILED;
    } else {
        const char *sep = options.format == CC_REMOTE_CSV ? "," : "  ";
        printf(options.format == CC_REMOTE_CSV ? "name,system,codes\n"
                                               : "%-32s  %-8s  codes\n",
               "name", "system");
        for (uint32_t i = 0; lists && i < lists->via.array.size; i++) {
            const msgpack_object *l = &lists->via.array.ptr[i];
            const msgpack_object *name = cc_msgpack_map_get(l, "name"), *system = cc_msgpack_map_get(l, "system");
            const msgpack_object *codes = cc_msgpack_map_get(l, "codes");
            int width = options.format == CC_REMOTE_CSV ? 0 : 32;
            printf("%-*.*s%s%-*.*s%s%u\n", width, (int)name->via.str.size, name->via.str.ptr, sep,
                   width ? 8 : 0,
                   system && system->type == MSGPACK_OBJECT_STR ? (int)system->via.str.size : 7,
                   system && system->type == MSGPACK_OBJECT_STR ? system->via.str.ptr : "several",
                   sep, codes ? codes->via.array.size : 0);
        }
    }
    if (fflush(stdout) != 0)
        status = CC_REMOTE_EXIT_FAILED;
    cc_reply_free(&reply);
    cc_client_close(client);
    return status;
}
