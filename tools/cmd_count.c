/*
 * cmd_count.c: `carecount count`: sends a query (docs/query-model.md, JSON)
 * to a server and prints the protected table it gets back: the cells, the
 * reason code of each, and a legend of what disclosure control did.
 *
 * Exit status: cc_remote.h (0 printed, 1 server or connection failure,
 * 2 usage or a query that does not decode, 3 refused).
 *
 * Must never: take a token from the command line; print anything but what
 * the server released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_query.h"
#include "cc_queryflags.h"
#include "cc_remote.h"

const char cc_cmd_count_summary[] = "ask a server for a protected count (flags or a JSON query)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount count [OPTIONS] QUERY.json|QUERY.msgpack|-\n"
            "       carecount count [OPTIONS] QUERY FLAGS\n"
            "\n"
            "Sends the query (docs/query-model.md) to carecountd as the account\n"
            "whose token is given, and prints the released table: suppressed cells\n"
            "are marked '*', and a legend says what disclosure control did. The\n"
            "query is a file, or written with the flags below, e.g.\n"
            "  carecount count --by region,sex --code icd10:E11 --from 2023-01 --to 2023-12\n"
            "\n"
            "query flags:\n%s"
            "\n"
            "connection and output:\n%s"
            "\n"
            "exit status: 0 printed; 1 the server could not be reached or failed;\n"
            "2 a usage error or a query that does not decode; 3 refused (the\n"
            "disclosure policy, the account's role, or the token).\n",
            cc_queryflags_usage, cc_remote_flags_usage);
}

static int pack_query(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_str_with_body(pk, "query", 5);
    return cc_query_pack(arg, pk) == 0 ? 0 : CC_ENOMEM;
}

int cc_cmd_count(int argc, char **argv)
{
    struct cc_remote_options options;
    struct cc_queryflags flags;
    const char *path = NULL;
    cc_remote_defaults(&options);
    cc_queryflags_init(&flags, false);
    int done = cc_remote_parse_args(&options, argc, argv, "count", usage, "query", &path, &flags);
    if (done >= 0)
        return done;
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    char *text = NULL, errbuf[512] = "";
    size_t len = 0;
    struct cc_query *query = NULL;
    struct cc_client *client = NULL;
    int status = CC_REMOTE_EXIT_USAGE;
    int rc;
    if (flags.given) {
        if (cc_queryflags_json(&flags, &text, errbuf, sizeof errbuf) < 0) {
            fprintf(stderr, "carecount count: %s\n", errbuf);
            goto out;
        }
        len = strlen(text);
        if ((rc = cc_query_decode_json(text, len, &limits, &query, errbuf, sizeof errbuf)) != 0) {
            cc_queryflags_report(&flags, "count", path, errbuf[0] ? errbuf : cc_strerror(rc));
            goto out;
        }
    } else {
        if ((rc = cc_remote_read_input(path, limits.max_query_bytes, &text, &len)) != 0) {
            fprintf(stderr, "carecount count: %s: %s\n", path,
                    rc == CC_EIO ? strerror(errno) : cc_strerror(rc));
            goto out;
        }
        rc = cc_remote_input_is_json(text, len)
                 ? cc_query_decode_json(text, len, &limits, &query, errbuf, sizeof errbuf)
                 : cc_query_decode(text, len, &limits, &query, errbuf, sizeof errbuf);
        if (rc != 0) {
            cc_queryflags_report(&flags, "count", path, errbuf[0] ? errbuf : cc_strerror(rc));
            goto out;
        }
    }
    if ((rc = cc_query_validate(query, &limits, NULL, errbuf, sizeof errbuf)) != 0) {
        cc_queryflags_report(&flags, "count", path, errbuf[0] ? errbuf : cc_strerror(rc));
        goto out;
    }
    if (flags.print) {
        char *canonical = NULL;
        if (cc_query_encode_json(query, &canonical) != 0) {
            fprintf(stderr, "carecount count: out of memory\n");
            status = CC_REMOTE_EXIT_FAILED;
            goto out;
        }
        int failed = printf("%s\n", canonical) < 0 || fflush(stdout) != 0;
        free(canonical);
        status = failed ? CC_REMOTE_EXIT_FAILED : CC_REMOTE_EXIT_OK;
        goto out;
    }
    if ((status = cc_remote_open(&options, "count", &client)) != 0)
        goto out;
    struct cc_reply reply;
    rc = cc_client_call(client, 2, "count", 1, pack_query, query, &reply);
    if (rc <= 0) {
        fprintf(stderr, "carecount count: %s\n",
                rc == 0 ? "the server closed the connection" : cc_strerror(rc));
        status = CC_REMOTE_EXIT_FAILED;
        goto out;
    }
    if (!reply.ok) {
        fprintf(stderr, "carecount count: %s: %s\n", reply.error_code, reply.error_message);
        status = cc_remote_exit_for(reply.error_code);
    } else {
        if (options.format == CC_REMOTE_JSON)
            status = cc_remote_print_json(stdout, cc_reply_get(&reply, "release")) == 0
                         ? CC_REMOTE_EXIT_OK
                         : CC_REMOTE_EXIT_FAILED;
        else
            cc_remote_print_release(stdout, cc_reply_get(&reply, "release"), options.format);
        if (fflush(stdout) != 0)
            status = CC_REMOTE_EXIT_FAILED;
    }
    cc_reply_free(&reply);
out:
    cc_client_close(client);
    cc_query_free(query);
    free(text);
    return status;
}
