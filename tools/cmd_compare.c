/*
 * cmd_compare.c: `carecount compare`: sends an area comparison
 * (docs/comparisons.md, JSON) to a server and prints the rows it gets back:
 * each area's released count and denominator, its value and 95% interval,
 * and how it compares with England or its parent, with a legend of what
 * disclosure control did.
 *
 * Exit status: cc_remote.h (0 printed, 1 server or connection failure,
 * 2 usage or a request that does not decode, 3 refused).
 *
 * Must never: take a token from the command line; print anything but what
 * the server released.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_compare.h"
#include "cc_error.h"
#include "cc_queryflags.h"
#include "cc_remote.h"

const char cc_cmd_compare_summary[] = "ask a server for an area comparison (flags or a JSON request)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount compare [OPTIONS] COMPARISON.json|COMPARISON.msgpack|-\n"
            "       carecount compare [OPTIONS] COMPARISON FLAGS\n"
            "\n"
            "Sends the comparison (docs/comparisons.md) to carecountd as the account\n"
            "whose token is given, and prints one row per area, then England:\n"
            "released counts, the value with its 95%% interval, and whether the\n"
            "area is significantly higher, lower or similar. The comparison is a\n"
            "file, or written with the flags below, e.g.\n"
            "  carecount compare --level icb --numerator codelist:diabetes \\\n"
            "      --per 100000 --standardise age --comparator england\n"
            "\n"
            "comparison flags:\n%s"
            "\n"
            "the numerator's query flags:\n%s"
            "\n"
            "connection and output:\n%s"
            "\n"
            "exit status: 0 printed; 1 the server could not be reached or failed;\n"
            "2 a usage error or a request that does not decode; 3 refused (the\n"
            "disclosure policy, the account's role, or the token).\n",
            cc_queryflags_compare_usage, cc_queryflags_usage, cc_remote_flags_usage);
}

static int pack_comparison(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_str_with_body(pk, "comparison", 10);
    return cc_compare_pack(arg, pk);
}

int cc_cmd_compare(int argc, char **argv)
{
    struct cc_remote_options options;
    struct cc_queryflags flags;
    const char *path = NULL;
    cc_remote_defaults(&options);
    cc_queryflags_init(&flags, true);
    int done =
        cc_remote_parse_args(&options, argc, argv, "compare", usage, "comparison", &path, &flags);
    if (done >= 0)
        return done;
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    char *text = NULL, errbuf[512] = "";
    size_t len = 0;
    struct cc_compare_decoded decoded;
    bool have_request = false;
    struct cc_client *client = NULL;
    int status = CC_REMOTE_EXIT_USAGE;
    int rc;
    if (flags.given) {
        if (cc_queryflags_json(&flags, &text, errbuf, sizeof errbuf) < 0) {
            fprintf(stderr, "carecount compare: %s\n", errbuf);
            goto out;
        }
        len = strlen(text);
        rc = cc_compare_decode_json(text, len, &limits, &decoded, errbuf, sizeof errbuf);
        if (rc != 0) {
            cc_queryflags_report(&flags, "compare", path, errbuf[0] ? errbuf : cc_strerror(rc));
            goto out;
        }
    } else {
        if ((rc = cc_remote_read_input(path, 2 * (size_t)limits.max_query_bytes, &text, &len))) {
            fprintf(stderr, "carecount compare: %s: %s\n", path,
                    rc == CC_EIO ? strerror(errno) : cc_strerror(rc));
            goto out;
        }
        if (cc_remote_input_is_json(text, len)) {
            rc = cc_compare_decode_json(text, len, &limits, &decoded, errbuf, sizeof errbuf);
        } else {
            /* msgpack: one map, nothing after it */
            msgpack_unpacked unpacked;
            msgpack_unpacked_init(&unpacked);
            size_t offset = 0;
            if (msgpack_unpack_next(&unpacked, text, len, &offset) != MSGPACK_UNPACK_SUCCESS ||
                offset != len) {
                snprintf(errbuf, sizeof errbuf,
                         "neither JSON nor one msgpack map (carecount check --msgpack writes one)");
                rc = CC_EPARSE;
            } else {
                rc = cc_compare_decode_object(&unpacked.data, &limits, &decoded, errbuf,
                                              sizeof errbuf);
            }
            msgpack_unpacked_destroy(&unpacked);
        }
        if (rc != 0) {
            cc_queryflags_report(&flags, "compare", path, errbuf[0] ? errbuf : cc_strerror(rc));
            goto out;
        }
    }
    have_request = true;
    const struct cc_query *queries[2] = {decoded.numerator, decoded.denominator_query};
    for (int k = 0; k < 2; k++) {
        if (!queries[k])
            continue;
        char field[600];
        snprintf(field, sizeof field, "%s.", k ? "denominator" : "numerator");
        size_t at = strlen(field);
        if ((rc = cc_query_validate(queries[k], &limits, NULL, field + at, sizeof field - at))) {
            if (!field[at])
                snprintf(field + at, sizeof field - at, "%s", cc_strerror(rc));
            cc_queryflags_report(&flags, "compare", path, field);
            goto out;
        }
    }
    if (flags.print) {
        char *canonical = NULL;
        if (cc_compare_encode_json(&decoded.request, &canonical) != 0) {
            fprintf(stderr, "carecount compare: out of memory\n");
            status = CC_REMOTE_EXIT_FAILED;
            goto out;
        }
        int failed = printf("%s\n", canonical) < 0 || fflush(stdout) != 0;
        free(canonical);
        status = failed ? CC_REMOTE_EXIT_FAILED : CC_REMOTE_EXIT_OK;
        goto out;
    }
    if ((status = cc_remote_open(&options, "compare", &client)) != 0)
        goto out;
    struct cc_reply reply;
    rc = cc_client_call(client, 2, "compare", 1, pack_comparison, &decoded.request, &reply);
    if (rc <= 0) {
        fprintf(stderr, "carecount compare: %s\n",
                rc == 0 ? "the server closed the connection" : cc_strerror(rc));
        status = CC_REMOTE_EXIT_FAILED;
        goto out;
    }
    if (!reply.ok) {
        fprintf(stderr, "carecount compare: %s: %s\n", reply.error_code, reply.error_message);
        status = cc_remote_exit_for(reply.error_code);
    } else {
        if (options.format == CC_REMOTE_JSON)
            status = cc_remote_print_json(stdout, cc_reply_get(&reply, "comparison")) == 0
                         ? CC_REMOTE_EXIT_OK
                         : CC_REMOTE_EXIT_FAILED;
        else
            cc_remote_print_comparison(stdout, cc_reply_get(&reply, "comparison"), options.format);
        if (fflush(stdout) != 0)
            status = CC_REMOTE_EXIT_FAILED;
    }
    cc_reply_free(&reply);
out:
    cc_client_close(client);
    if (have_request)
        cc_compare_decoded_free(&decoded);
    free(text);
    return status;
}
