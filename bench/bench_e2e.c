/*
 * bench_e2e.c: the four reference queries and an age-standardised
 * comparison, end to end against the engine alone, in the same run
 * (issue 17): for each, the median wall time of
 *   engine   cc_exec_run in process (exact counts, as the engine hands
 *            them to disclosure control);
 *   release  cc_release_answer (or cc_release_comparison) in process: the
 *            engine and disclosure control, no ledger;
 *   server   the request through the real carecountd over msgpack, with
 *            the client's encode and decode: the query codec, disclosure
 *            control, the account's ledger and the audit write;
 * and whether the server's release is byte-identical to the in-process one.
 * server_first_ms is the first of the runs alone: the others are repeats,
 * which a server with its release cache on (the default) answers from it,
 * so server_ms is the full path only with --release-cache-mb 0:
 *
 *   RESULT e2e q1 engine_ms=.. release_ms=.. server_ms=.. server_vs_engine=..
 *          server_first_ms=.. identical=1
 *
 *   bench_e2e --data DIR --key KEY --port PORT --token-file FILE [--runs R]
 *             [--policy FILE]   (the server's policy file, if it was given one)
 *
 * The data directory must be the one the server serves (it is opened read
 * only, as a replica would). Exit status 1 if any release differs or a
 * request fails; a refusal is reported (refused=1), not a failure.
 *
 * Must never: assert a time; connect anywhere but 127.0.0.1; print a token.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <msgpack.h>

#include "cc_client.h"
#include "cc_compare.h"
#include "cc_compare_internal.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_msgpack.h"
#include "cc_policy.h"
#include "cc_query.h"
#include "cc_release.h"
#include "cc_serverdata.h"
#include "cc_store.h"

#define MAX_RUNS 101

struct item {
    const char *name, *json;
    bool comparison;
};

static const struct item items[] = {
    {"q1",
     "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"
     "\"filters\":{\"conditions\":[{\"codes\":[\"44054006\"],\"system\":\"snomed\"}]}}",
     false},
    {"q2",
     "{\"v\":1,\"measure\":\"events\",\"dimensions\":[\"lad\",{\"name\":\"age_band\","
     "\"bands\":\"5y\"},\"sex\"],\"filters\":{\"settings\":[\"hospital\"],"
     "\"date_range\":{\"from\":\"2024-01\",\"to\":\"2024-12\"}}}",
     false},
    {"q3",
     "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"icb\"],\"filters\":{\"conditions\":"
     "[{\"codes\":[\"E11\"],\"system\":\"icd10\",\"settings\":[\"hospital\"],"
     "\"date_range\":{\"from\":\"2024-01\",\"to\":\"2024-12\"}}]}}",
     false},
    {"q3-population", "{\"v\":1,\"measure\":\"population\",\"dimensions\":[\"icb\"]}", false},
    {"q4",
     "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],\"filters\":{\"conditions\":"
     "[{\"codes\":[\"44054006\"],\"system\":\"snomed\",\"settings\":[\"gp\"]},"
     "{\"codes\":[\"E11\"],\"system\":\"icd10\",\"settings\":[\"hospital\"]}]}}",
     false},
    {"dsr",
     "{\"v\":1,\"numerator\":{\"v\":1,\"measure\":\"events\",\"filters\":{\"settings\":"
     "[\"hospital\"],\"date_range\":{\"from\":\"2024-01\",\"to\":\"2024-12\"}}},"
     "\"level\":\"region\",\"method\":\"dsr\",\"multiplier\":1000}",
     true},
};
#define N_ITEMS (sizeof items / sizeof *items)

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, compare_doubles);
    return n ? v[n / 2] : 0;
}

static int pack_query(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_str_with_body(pk, "query", 5);
    return cc_query_pack(arg, pk);
}

static int pack_comparison(msgpack_packer *pk, const void *arg)
{
    msgpack_pack_str_with_body(pk, "comparison", 10);
    return cc_compare_pack(arg, pk);
}

/* The reply field's bytes, packed again (canonical: the packer is the
 * same on both sides). */
static void repack(const msgpack_object *o, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (o)
        msgpack_pack_object(&pk, *o);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_e2e --data DIR --key KEY --port PORT --token-file FILE "
                    "[--runs R] [--policy FILE]\n");
}

int main(int argc, char **argv)
{
    const char *data_dir = NULL, *key = NULL, *token_file = NULL, *policy_file = NULL;
    unsigned port = 0, runs = 11;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--data"))
            data_dir = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            key = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--token-file"))
            token_file = argv[i + 1];
        else if (!strcmp(argv[i], "--runs"))
            runs = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--policy"))
            policy_file = argv[i + 1];
        else {
            usage();
            return 2;
        }
    }
    if (!data_dir || !key || !token_file || !port || port > 65535 || runs < 1 ||
        runs > MAX_RUNS || argc % 2 == 0) {
        usage();
        return 2;
    }
    /* comparisons report a failed quantile as a status (cc_compare.h) */
    gsl_set_error_handler_off();
    char why[512], token[CC_CLIENT_TOKEN_BYTES];
    struct cc_serverdata *data = NULL;
    struct cc_client *client = NULL;
    if (cc_serverdata_open(data_dir, key, &data, why, sizeof why) < 0) {
        fprintf(stderr, "bench_e2e: %s\n", why);
        return 1;
    }
    if (cc_client_read_token(token_file, token, why, sizeof why) < 0 ||
        cc_client_connect("127.0.0.1", (uint16_t)port, 600000, &client) < 0 ||
        cc_client_hello(client, token, why, sizeof why) < 0) {
        fprintf(stderr, "bench_e2e: cannot reach the server as the account: %s\n", why);
        cc_serverdata_free(data);
        return 1;
    }
    memset(token, 0, sizeof token);
    cc_dataversion *version = cc_serverdata_version(data);
    const struct cc_store_columns *columns = cc_store_columns(cc_dataversion_store(version));
    struct cc_policy policy;
    cc_policy_default(&policy);
    if (policy_file && cc_policy_load(policy_file, &policy, why, sizeof why) < 0) {
        fprintf(stderr, "bench_e2e: --policy: %s\n", why);
        cc_client_close(client);
        cc_serverdata_free(data);
        return 1;
    }
    struct cc_exec_options options = {0};
    int status = 0;
    uint64_t id = 1;
    for (size_t k = 0; k < N_ITEMS; k++) {
        const struct item *it = &items[k];
        double engine[MAX_RUNS], release[MAX_RUNS], server[MAX_RUNS];
        msgpack_sbuffer mine, theirs;
        msgpack_sbuffer_init(&mine);
        msgpack_sbuffer_init(&theirs);
        bool refused = false, failed = false;
        struct cc_query *q = NULL;
        struct cc_compare_decoded decoded;
        bool have_decoded = false;
        if (it->comparison) {
            if (cc_compare_decode_json(it->json, strlen(it->json), NULL, &decoded, why,
                                       sizeof why) != 0) {
                fprintf(stderr, "bench_e2e: %s: %s\n", it->name, why);
                return 1;
            }
            have_decoded = true;
        } else if (cc_query_decode_json(it->json, strlen(it->json), NULL, &q, why, sizeof why) ||
                   cc_query_bind(q, columns, NULL, why, sizeof why)) {
            fprintf(stderr, "bench_e2e: %s: %s\n", it->name, why);
            return 1;
        }
        for (unsigned r = 0; r < runs && !failed; r++) {
            /* the engine alone */
            double t0 = now_ms();
            if (it->comparison) {
                struct cc_compare_raw raw;
                int rc = cc_compare_run(version, &decoded.request, NULL, &options, &raw, why,
                                        sizeof why);
                cc_compare_raw_free(&raw);
                failed = rc != 0;
            } else {
                struct cc_raw_result raw;
                failed = cc_exec_run(version, q, &options, &raw, why, sizeof why) != 0;
                if (!failed)
                    cc_raw_result_free(&raw);
            }
            engine[r] = now_ms() - t0;
            /* the engine and disclosure control */
            t0 = now_ms();
            int rc;
            msgpack_sbuffer_destroy(&mine);
            msgpack_sbuffer_init(&mine);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &mine, msgpack_sbuffer_write);
            if (it->comparison) {
                cc_comparison *c = NULL;
                rc = cc_release_comparison(&policy, NULL, version, &decoded.request, NULL,
                                           &options, &c, why, sizeof why);
                if (rc == 0)
                    cc_comparison_pack(c, &pk);
                cc_comparison_free(c);
            } else {
                cc_release *rel = NULL;
                rc = cc_release_answer(&policy, NULL, version, q, &options, &rel, why,
                                       sizeof why);
                if (rc == 0)
                    cc_release_pack(rel, &pk);
                cc_release_free(rel);
            }
            release[r] = now_ms() - t0;
            refused = rc == CC_EREFUSED;
            failed = failed || (rc != 0 && !refused);
            /* through the server */
            struct cc_reply reply;
            t0 = now_ms();
            rc = it->comparison
                     ? cc_client_call(client, id++, "compare", 1, pack_comparison,
                                      &decoded.request, &reply)
                     : cc_client_call(client, id++, "count", 1, pack_query, q, &reply);
            server[r] = now_ms() - t0;
            if (rc <= 0) {
                failed = true;
                break;
            }
            bool server_refused = !reply.ok && !strcmp(reply.error_code, "REFUSED");
            if (reply.ok) {
                msgpack_sbuffer_destroy(&theirs);
                repack(cc_reply_get(&reply, it->comparison ? "comparison" : "release"), &theirs);
            } else if (!server_refused || !refused) {
                fprintf(stderr, "bench_e2e: %s: the server said %s: %s\n", it->name,
                        reply.error_code, reply.error_message);
                failed = true;
            }
            if (server_refused != refused)
                failed = true;
            cc_reply_free(&reply);
        }
        bool identical = refused || (mine.size == theirs.size && mine.size > 0 &&
                                     !memcmp(mine.data, theirs.data, mine.size));
        double first = server[0];
        double e = median(engine, runs), rl = median(release, runs), s = median(server, runs);
        printf("RESULT e2e %s engine_ms=%.3f release_ms=%.3f server_ms=%.3f "
               "server_vs_engine=%.2f server_first_ms=%.3f refused=%d identical=%d runs=%u\n",
               it->name, e, rl, s, e > 0 ? s / e : 0, first, refused, identical, runs);
        if (failed || !identical)
            status = 1;
        msgpack_sbuffer_destroy(&mine);
        msgpack_sbuffer_destroy(&theirs);
        cc_query_free(q);
        if (have_decoded)
            cc_compare_decoded_free(&decoded);
    }
    cc_client_close(client);
    cc_serverdata_free(data);
    return status;
}
