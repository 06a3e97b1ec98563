/*
 * cmd_check.c: `carecount check FILE.json|-`, the client's check of a query
 * or an area comparison request before it is sent.
 *
 * Reads a query in its JSON form (docs/query-model.md), or a comparison
 * request (docs/comparisons.md: a map with a "numerator"), decodes and
 * validates it with the same code the server runs, and prints its canonical
 * form (JSON, or msgpack bytes with --msgpack), or the precise error
 * ("filters.conditions[0].codes[1]: 'E11' is ...") and exits 1. The check
 * needs no data: the server also checks area codes and codelist names
 * against what it holds.
 *
 * Must never: read more than the query size limit, or print anything but
 * the query's own canonical form or an error about it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cc_codelist.h"
#include "cc_compare.h"
#include "cc_remote.h"
#include "cc_error.h"
#include "cc_query.h"

const char cc_cmd_check_summary[] = "check a query or comparison (JSON); print its canonical form";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount check [--msgpack] [--codelists DIR] FILE.json|-\n"
            "       carecount check --limits\n"
            "\n"
            "Checks a query written as JSON (see docs/query-model.md), or an area\n"
            "comparison request (docs/comparisons.md), with the same decoder and\n"
            "validation the server uses, and prints its\n"
            "canonical JSON form; with --msgpack, writes the canonical msgpack\n"
            "bytes instead. On an error, prints `FIELD: REASON` and exits 1.\n"
            "--codelists DIR also checks that every codelist the query names is\n"
            "one of DIR's NAME.csv files (as the server loads them).\n"
            "--limits prints the limits a query must keep to.\n");
}

static void print_limits(const struct cc_query_limits *limits)
{
    printf("max_query_bytes %u\n"
           "max_nesting_depth %u\n"
           "max_dimensions %u\n"
           "max_cells %llu\n"
           "max_conditions %u\n"
           "max_codes_per_condition %u\n"
           "max_areas %u\n"
           "max_practices %u\n"
           "max_anchor_days %u\n",
           limits->max_query_bytes, limits->max_nesting_depth, limits->max_dimensions,
           (unsigned long long)limits->max_cells, limits->max_conditions,
           limits->max_codes_per_condition, limits->max_areas, limits->max_practices,
           limits->max_anchor_days);
}

/* Reads at most limit + 1 bytes of path ("-": standard input) into a
 * malloc'd buffer the caller frees. CC_EIO or CC_ENOMEM. */

/* A comparison request is a JSON object with a "numerator". */
static bool is_comparison(const char *text, size_t len)
{
    json_t *root = json_loadb(text, len, 0, NULL);
    bool yes = root && json_is_object(root) && json_object_get(root, "numerator");
    json_decref(root);
    return yes;
}

/* Checks one query of a comparison as the server will (validation, and
 * codelists when given). */
static int check_query(struct cc_query *q, const char *field,
                       const struct cc_query_limits *limits, const cc_codelists *codelists)
{
    char why[400] = "";
    int rc = cc_query_validate(q, limits, NULL, why, sizeof why);
    if (!rc && codelists)
        rc = cc_query_bind(q, NULL, codelists, why, sizeof why);
    if (rc)
        fprintf(stderr, "carecount check: %s.%s\n", field, why[0] ? why : cc_strerror(rc));
    return rc;
}

static int check_comparison(const char *text, size_t len, const struct cc_query_limits *limits,
                            const cc_codelists *codelists, bool as_msgpack)
{
    struct cc_compare_decoded decoded;
    char why[512] = "";
    int rc = cc_compare_decode_json(text, len, limits, &decoded, why, sizeof why);
    if (rc) {
        fprintf(stderr, "carecount check: %s\n", why[0] ? why : cc_strerror(rc));
        return 1;
    }
    int status = 1;
    if (check_query(decoded.numerator, "numerator", limits, codelists) ||
        (decoded.denominator_query &&
         check_query(decoded.denominator_query, "denominator", limits, codelists)))
        goto out;
    if (as_msgpack) {
        msgpack_sbuffer buffer;
        msgpack_packer packer;
        msgpack_sbuffer_init(&buffer);
        msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
        rc = cc_compare_pack(&decoded.request, &packer);
        if (!rc && fwrite(buffer.data, 1, buffer.size, stdout) != buffer.size)
            rc = CC_EIO;
        msgpack_sbuffer_destroy(&buffer);
    } else {
        char *json = NULL;
        rc = cc_compare_encode_json(&decoded.request, &json);
        if (!rc && printf("%s\n", json) < 0)
            rc = CC_EIO;
        free(json);
    }
    if (!rc && fflush(stdout) != 0)
        rc = CC_EIO;
    if (rc)
        fprintf(stderr, "carecount check: writing the request: %s\n", cc_strerror(rc));
    else
        status = 0;
out:
    cc_compare_decoded_free(&decoded);
    return status;
}

int cc_cmd_check(int argc, char **argv)
{
    bool as_msgpack = false, show_limits = false;
    const char *path = NULL, *codelist_dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--msgpack")) {
            as_msgpack = true;
        } else if (!strcmp(argv[i], "--limits")) {
            show_limits = true;
        } else if (!strcmp(argv[i], "--codelists") && i + 1 < argc) {
            codelist_dir = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "carecount check: unknown option '%s' (try --help)\n", argv[i]);
            return 2;
        } else if (!path) {
            path = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    struct cc_query_limits limits;
    cc_query_limits_default(&limits);
    if (show_limits) {
        print_limits(&limits);
        return 0;
    }
    if (!path) {
        usage(stderr);
        return 2;
    }

    char *text = NULL, *bytes = NULL, *json = NULL;
    size_t len = 0, n_bytes = 0;
    struct cc_query *query = NULL;
    cc_codelists *codelists = NULL;
    char errbuf[512] = "";
    int status = 1;
    int rc = cc_remote_read_input(path, limits.max_query_bytes, &text, &len);
    if (rc) {
        fprintf(stderr, "carecount check: %s: %s\n", path,
                rc == CC_EIO ? strerror(errno) : cc_strerror(rc));
        goto out;
    }
    if (codelist_dir) {
        rc = cc_codelists_new(&codelists);
        if (!rc)
            rc = cc_codelists_load_dir(codelists, codelist_dir, errbuf, sizeof errbuf);
        if (rc) {
            fprintf(stderr, "carecount check: %s\n", errbuf[0] ? errbuf : cc_strerror(rc));
            goto out;
        }
    }
    errbuf[0] = '\0';
    if (is_comparison(text, len)) {
        status = check_comparison(text, len, &limits, codelists, as_msgpack);
        goto out;
    }
    rc = cc_query_decode_json(text, len, &limits, &query, errbuf, sizeof errbuf);
    if (!rc)
        rc = cc_query_validate(query, &limits, NULL, errbuf, sizeof errbuf);
    if (!rc && codelists)
        rc = cc_query_bind(query, NULL, codelists, errbuf, sizeof errbuf);
    if (rc) {
        fprintf(stderr, "carecount check: %s\n", errbuf[0] ? errbuf : cc_strerror(rc));
        goto out;
    }
    if (as_msgpack) {
        rc = cc_query_encode(query, &bytes, &n_bytes);
        if (!rc && fwrite(bytes, 1, n_bytes, stdout) != n_bytes)
            rc = CC_EIO;
    } else {
        rc = cc_query_encode_json(query, &json);
        if (!rc && printf("%s\n", json) < 0)
            rc = CC_EIO;
    }
    if (!rc && fflush(stdout) != 0)
        rc = CC_EIO;
    if (rc) {
        fprintf(stderr, "carecount check: writing the query: %s\n", cc_strerror(rc));
        goto out;
    }
    status = 0;
out:
    free(json);
    free(bytes);
    cc_query_free(query);
    cc_codelists_free(codelists);
    free(text);
    return status;
}
