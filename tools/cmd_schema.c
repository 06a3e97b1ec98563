/*
 * cmd_schema.c: `carecount schema`: what the server can be asked: its data
 * version and the months its records cover, the measures, dimensions,
 * area levels, codelists, query limits and the disclosure policy in force
 * (the schema op, docs/protocol.md).
 *
 * Exit status: cc_remote.h.
 *
 * Must never: take a token from the command line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cc_msgpack.h"
#include "cc_remote.h"

const char cc_cmd_schema_summary[] = "what a server can be asked, and the policy in force";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount schema [OPTIONS]\n"
            "\n"
            "Asks carecountd what can be asked of it (docs/protocol.md, schema): the\n"
            "data version, the months covered, measures, dimensions, area levels,\n"
            "codelists, query limits and the disclosure policy in force.\n"
            "\n"
            "options:\n%s",
            cc_remote_flags_usage);
}

/* Prints a scalar: a string, an integer, a float, a boolean, nil. */
static void put(const msgpack_object *o)
{
    if (!o)
        printf("-");
    else if (o->type == MSGPACK_OBJECT_STR)
        printf("%.*s", (int)o->via.str.size, o->via.str.ptr);
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        printf("%" PRIu64, o->via.u64);
    else if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        printf("%g", o->via.f64);
    else if (o->type == MSGPACK_OBJECT_BOOLEAN)
        printf("%s", o->via.boolean ? "true" : "false");
    else
        printf("-");
}

/* "label: a, b, c" for an array of strings. */
static void put_list(const char *label, const msgpack_object *a)
{
    printf("%-14s", label);
    for (uint32_t i = 0; a && a->type == MSGPACK_OBJECT_ARRAY && i < a->via.array.size; i++) {
        printf(i ? ", " : "");
        put(&a->via.array.ptr[i]);
    }
    printf("\n");
}

/* "label: key value, key value" for a map of scalars. */
static void put_map(const char *label, const msgpack_object *m)
{
    printf("%s\n", label);
    for (uint32_t i = 0; m && m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
        printf("  %-26.*s ", (int)m->via.map.ptr[i].key.via.str.size,
               m->via.map.ptr[i].key.via.str.ptr);
        put(&m->via.map.ptr[i].val);
        printf("\n");
    }
}

int cc_cmd_schema(int argc, char **argv)
{
    struct cc_remote_options options;
    cc_remote_defaults(&options);
    int done = cc_remote_parse_args(&options, argc, argv, "schema", usage, NULL, NULL, NULL);
    if (done >= 0)
        return done;
    struct cc_client *client = NULL;
    int status = cc_remote_open(&options, "schema", &client);
    if (status)
        return status;
    struct cc_reply reply;
    if (cc_remote_call_simple(client, "schema", "schema", &reply, &status) < 0) {
        cc_client_close(client);
        return status;
    }
    if (options.format == CC_REMOTE_JSON) {
        status = cc_remote_print_json(stdout, reply.map) == 0 ? 0 : CC_REMOTE_EXIT_FAILED;
    } else {
        const msgpack_object *months = cc_reply_get(&reply, "months");
        printf("%-14s", "data version");
        put(cc_reply_get(&reply, "data_version"));
        printf(" (opt-outs in force on ");
        put(cc_reply_get(&reply, "published_on"));
        printf(" applied)\n%-14s", "months");
        put(cc_msgpack_map_get(months, "from"));
        printf(" to ");
        put(cc_msgpack_map_get(months, "to"));
        printf("\n");
        put_list("measures", cc_reply_get(&reply, "measures"));
        put_list("dimensions", cc_reply_get(&reply, "dimensions"));
        put_list("settings", cc_reply_get(&reply, "settings"));
        put_list("code systems", cc_reply_get(&reply, "code_systems"));
        put_list("codelists", cc_reply_get(&reply, "codelists"));
        const msgpack_object *levels = cc_reply_get(&reply, "area_levels");
        printf("%-14s", "area levels");
        for (uint32_t i = 0; levels && i < levels->via.array.size; i++) {
            printf(i ? ", " : "");
            put(cc_msgpack_map_get(&levels->via.array.ptr[i], "level"));
            printf(" (");
            put(cc_msgpack_map_get(&levels->via.array.ptr[i], "n_areas"));
            printf(")");
        }
        printf("\n");
        put_map("query limits", cc_reply_get(&reply, "limits"));
        put_map("disclosure policy", cc_reply_get(&reply, "policy"));
    }
    if (fflush(stdout) != 0)
        status = CC_REMOTE_EXIT_FAILED;
    cc_reply_free(&reply);
    cc_client_close(client);
    return status;
}
