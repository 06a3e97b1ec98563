/*
 * Integration tests for the data ops of carecountd (docs/protocol.md):
 * hello with a token, schema, codelists, count and compare, over a real
 * socket to the real server serving a data directory made by the real
 * generator and ingest, with accounts and tokens made by the real
 * `carecount account` and `carecount token` commands. Every figure that
 * comes back is checked against the disclosure policy (no value in
 * 1..threshold-1, every value a multiple of the rounding base), every role
 * is tried against every op, and the audit log the requests wrote is read
 * back and verified with `carecount audit`.
 */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/wait.h>

#include "cc_account.h"
#include "cc_client.h"
#include "cc_frame.h"
#include "cc_harness.h"
#include "cc_query.h"
#include "cc_testfs.h"
#include "cc_testquery.h"

#define BY_REGION_E11                                                                              \
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\"],"                                \
    "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}"

static char root[256], data_dir[300], key_path[300];
/* Two patients registered once, at different practices, with no opt-out
 * in the generated register: the practice account is for the first's. */
static char nhs_own[16], practice_own[16], nhs_other[16];

static void run(const char *cmd)
{
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "failed: %s", cmd);
}

/* Runs cmd and returns its exit status. */
static int status_of(const char *cmd)
{
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Makes an account of role (practice: its code, or NULL) and a token for
 * it in ROOT/NAME.token (mode 0600), through the accounts module that
 * `carecount account` and `carecount token` use. */
static void make_account(const char *name, const char *role, const char *practice)
{
    cc_accounts *accounts = NULL;
    char err[256] = "", token[CC_TOKEN_TEXT_BYTES], path[400];
    cr_assert_eq(cc_accounts_open(data_dir, &accounts, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cc_accounts_add(accounts, name, cc_role_parse(role), practice, NULL, err,
                                 sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_accounts_token_issue(accounts, name, (int64_t)time(NULL) + 86400, token, NULL,
                                         err, sizeof err),
                 0, "%s", err);
    cc_accounts_close(accounts);
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    cc_testfs_write(path, token, strlen(token), 0600);
}

static void setup(void)
{
    char cmd[2048];
    cc_testfs_make_dir(root, sizeof root, "ops");
    snprintf(data_dir, sizeof data_dir, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' generate --quiet --patients 4000 --seed 5 --out '%s/feeds' && "
             "'%s/carecount' keygen '%s/key' >/dev/null && "
             "'%s/carecount' ingest --quiet --data '%s' --key '%s/key' '%s/feeds' >/dev/null",
             CC_BIN_DIR, root, CC_BIN_DIR, root, CC_BIN_DIR, data_dir, root, root);
    run(cmd);
    char path[400];
    snprintf(path, sizeof path, "%s/codelists", data_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cc_testfs_write_text_in(path, "diabetes.icd10.csv",
                            "code,term\nE10,Type 1 diabetes\nE11,Type 2 diabetes\n");
    snprintf(path, sizeof path, "%s/saved", data_dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    cc_testfs_write_text_in(path, "diabetes-by-region.json", BY_REGION_E11);
    cc_testfs_write_text_in(path, "diabetes-by-icb.json",
                            "{\"v\":1,\"numerator\":{\"v\":1,\"measure\":\"persons\","
                            "\"filters\":{\"conditions\":[{\"codelist\":\"diabetes\"}]}},"
                            "\"level\":\"icb\",\"method\":\"proportion\"}");
    /* the same indicator against the parent area, written in another order */
    cc_testfs_write_text_in(path, "diabetes-by-icb-vs-region.json",
                            "{\"method\":\"proportion\",\"comparator\":\"parent\",\"v\":1,"
                            "\"level\":\"icb\",\"numerator\":{\"v\":1,\"measure\":\"persons\","
                            "\"filters\":{\"conditions\":[{\"codelist\":\"diabetes\"}]}}}");
    /* first patient: registered once, not in the opt-out feed */
    snprintf(cmd, sizeof cmd,
             "cd '%s/feeds' && awk -F, 'FNR==1{next} FILENAME==\"optout_register.csv\"{o[$1]=1;next}"
             " {c[$1]++; p[$1]=$7} END{for(n in c) if(c[n]==1 && !o[n]) print n\",\"p[n]}' "
             "optout_register.csv gp_registrations.csv | sort > '%s/patients.txt'",
             root, root);
    run(cmd);
    snprintf(path, sizeof path, "%s/patients.txt", root);
    size_t len;
    char *list = cc_testfs_read(path, &len);
    cr_assert(sscanf(list, "%15[0-9],%15[A-Z0-9]", nhs_own, practice_own) == 2);
    for (char *line = strchr(list, '\n'); line && *++line; line = strchr(line, '\n')) {
        char practice[16];
        if (sscanf(line, "%15[0-9],%15[A-Z0-9]", nhs_other, practice) == 2 &&
            strcmp(practice, practice_own) != 0)
            break;
        nhs_other[0] = '\0';
    }
    cr_assert_neq(nhs_other[0], '\0', "a patient of another practice");
    free(list);
    make_account("gp", "practice", practice_own);
    make_account("rita", "researcher", NULL);
    make_account("rosa", "researcher", NULL);
    make_account("paul", "planner", NULL);
    make_account("olga", "operator", NULL);
    make_account("dash", "dashboard", NULL);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(ops, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ------------------------------------------------------------ */

static struct cc_harness *start(void)
{
    const char *args[] = {"--data", data_dir, "--key", key_path, NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    return harness;
}

static void stop(struct cc_harness *harness)
{
    int status = -1;
    cr_assert_eq(cc_harness_stop(harness, &status), 0);
    cr_assert_eq(status, 0, "carecountd exited with %d", status);
    cc_harness_free(harness);
}

static struct cc_client *connect_to(const struct cc_harness *harness)
{
    struct cc_client *client = NULL;
    cr_assert_eq(cc_harness_connect(harness, &client), 0);
    return client;
}

static void pack_text(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Sends a request whose op fields a callback packs, and receives the reply. */
typedef void (*pack_fields_fn)(msgpack_packer *pk, const void *arg);

static void call(struct cc_client *client, uint64_t id, const char *op, uint32_t n_fields,
                 pack_fields_fn pack, const void *arg, struct cc_reply *reply)
{
    msgpack_sbuffer frame;
    msgpack_packer pk;
    msgpack_sbuffer_init(&frame);
    cr_assert_eq(cc_frame_sbuffer_begin(&frame), 0);
    msgpack_packer_init(&pk, &frame, msgpack_sbuffer_write);
    cc_client_pack_envelope(&pk, id, op, n_fields);
    if (pack)
        pack(&pk, arg);
    cr_assert_eq(cc_frame_sbuffer_finish(&frame), 0);
    cr_assert_eq(cc_client_send_raw(client, frame.data, frame.size), 0);
    msgpack_sbuffer_destroy(&frame);
    cr_assert_eq(cc_client_recv_reply(client, reply), 1, "no reply to %s", op);
    cr_assert(reply->has_id && reply->id == id, "the reply to %s carries its id", op);
}

static void pack_token(msgpack_packer *pk, const void *arg)
{
    pack_text(pk, "token");
    pack_text(pk, arg);
}

/* The token written for account name. */
static char *token_of(const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.token", root, name);
    size_t len;
    char *token = cc_testfs_read(path, &len);
    while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
        token[--len] = '\0';
    return token;
}

/* Connects and says hello as account name; the hello must succeed. */
static struct cc_client *login(const struct cc_harness *harness, const char *name)
{
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    char *token = token_of(name);
    call(client, 1, "hello", 1, pack_token, token, &reply);
    free(token);
    cr_assert(reply.ok, "hello as %s: %s %s", name, reply.error_code, reply.error_message);
    const msgpack_object *account = cc_reply_get(&reply, "account");
    cr_assert(account && account->type == MSGPACK_OBJECT_STR &&
              account->via.str.size == strlen(name) &&
              !memcmp(account->via.str.ptr, name, strlen(name)));
    cc_reply_free(&reply);
    return client;
}

static void pack_query_field(msgpack_packer *pk, const void *arg)
{
    struct cc_query *query = cc_testquery_from_json(arg);
    pack_text(pk, "query");
    cr_assert_eq(cc_query_pack(query, pk), 0);
    cc_query_free(query);
}

/* A comparison request given as {"numerator": JSON, "rest": "key":value...}:
 * the numerator is packed from JSON through the query codec. */
struct comparison_arg {
    const char *numerator;
    const char *level, *method, *comparator;
};

static void pack_comparison_field(msgpack_packer *pk, const void *arg)
{
    const struct comparison_arg *c = arg;
    struct cc_query *query = cc_testquery_from_json(c->numerator);
    pack_text(pk, "comparison");
    msgpack_pack_map(pk, 5);
    pack_text(pk, "v");
    msgpack_pack_uint64(pk, 1);
    pack_text(pk, "numerator");
    cr_assert_eq(cc_query_pack(query, pk), 0);
    pack_text(pk, "level");
    pack_text(pk, c->level);
    pack_text(pk, "method");
    pack_text(pk, c->method);
    pack_text(pk, "comparator");
    pack_text(pk, c->comparator);
    cc_query_free(query);
}

static bool is_str(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static uint64_t uint_of(const msgpack_object *o)
{
    cr_assert(o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    return o->via.u64;
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    cr_assert(map && map->type == MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (is_str(&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

static void expect_error(const struct cc_reply *reply, const char *code)
{
    cr_assert(!reply->ok, "expected %s, got a success", code);
    cr_assert_str_eq(reply->error_code, code, "expected %s, got %s: %s", code, reply->error_code,
                     reply->error_message);
}

/* Checks every cell of a packed release against the default policy and
 * returns how many were released with a value above 0. */
static unsigned check_release(const msgpack_object *release)
{
    const msgpack_object *policy = get(release, "policy");
    uint64_t threshold = uint_of(get(policy, "threshold"));
    uint64_t base = uint_of(get(policy, "rounding_base"));
    cr_assert_eq(threshold, 8);
    cr_assert_eq(base, 5);
    cr_assert(is_str(get(policy, "version"), "carecount-default-1"));
    const msgpack_object *cells = get(release, "cells");
    cr_assert(cells && cells->type == MSGPACK_OBJECT_ARRAY && cells->via.array.size > 0);
    unsigned positive = 0, suppressed = 0;
    for (uint32_t i = 0; i < cells->via.array.size; i++) {
        const msgpack_object *cell = &cells->via.array.ptr[i];
        cr_assert(cell->type == MSGPACK_OBJECT_ARRAY && cell->via.array.size == 2);
        const msgpack_object *value = &cell->via.array.ptr[0];
        const msgpack_object *reason = &cell->via.array.ptr[1];
        if (value->type == MSGPACK_OBJECT_NIL) {
            cr_assert(is_str(reason, "suppressed") || is_str(reason, "suppressed_secondary"));
            suppressed++;
            continue;
        }
        uint64_t v = uint_of(value);
        cr_assert(v == 0 || v >= threshold, "a released value %llu in 1..threshold-1",
                  (unsigned long long)v);
        cr_assert_eq(v % base, 0, "a released value %llu not a multiple of %llu",
                     (unsigned long long)v, (unsigned long long)base);
        positive += v > 0;
    }
    const msgpack_object *counts = get(release, "counts");
    cr_assert_eq(uint_of(get(counts, "cells")), cells->via.array.size);
    cr_assert_eq(uint_of(get(counts, "suppressed")) + uint_of(get(counts, "suppressed_secondary")),
                 suppressed);
    return positive;
}


/* ---- authentication ----------------------------------------------------- */

Test(ops, data_ops_need_an_account_and_a_valid_token)
{
    struct cc_harness *harness = start();
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;

    call(client, 1, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    expect_error(&reply, "AUTH");
    cc_reply_free(&reply);

    /* status without an account: the server's counters, not which data
     * publication is in force */
    call(client, 2, "status", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cr_assert_null(cc_reply_get(&reply, "data_publication"));
    cr_assert_null(cc_reply_get(&reply, "data_version"));
    cc_reply_free(&reply);

    /* a token of the right shape with a wrong secret, and garbage */
    char *token = token_of("rita");
    size_t len = strlen(token);
    token[len - 1] = token[len - 1] == 'A' ? 'B' : 'A';
    call(client, 3, "hello", 1, pack_token, token, &reply);
    expect_error(&reply, "AUTH");
    cr_assert_null(strstr(reply.error_message, token), "the reply never echoes the token");
    cc_reply_free(&reply);
    call(client, 4, "hello", 1, pack_token, "not-a-token", &reply);
    expect_error(&reply, "AUTH");
    cc_reply_free(&reply);
    free(token);

    /* the connection still works, and a good token authenticates it */
    token = token_of("rita");
    call(client, 5, "hello", 1, pack_token, token, &reply);
    free(token);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert(is_str(cc_reply_get(&reply, "role"), "researcher"));
    cc_reply_free(&reply);

    call(client, 6, "status", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cr_assert_not_null(cc_reply_get(&reply, "data_publication"), "with an account: details");
    cc_reply_free(&reply);

    call(client, 7, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);

    /* once authenticated, a second hello is refused */
    token = token_of("paul");
    call(client, 8, "hello", 1, pack_token, token, &reply);
    free(token);
    expect_error(&reply, "INVAL");
    cc_reply_free(&reply);

    cc_client_close(client);
    stop(harness);
}

/* ---- count ---------------------------------------------------------------- */

Test(ops, count_releases_only_protected_cells)
{
    struct cc_harness *harness = start();
    struct cc_client *client = login(harness, "rita");
    struct cc_reply reply;

    call(client, 10, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *release = cc_reply_get(&reply, "release");
    cr_assert_not_null(release);
    cr_assert_eq(uint_of(cc_reply_get(&reply, "data_version")), 1);
    const msgpack_object *dims = get(release, "dimensions");
    cr_assert_eq(dims->via.array.size, 1);
    cr_assert(is_str(get(&dims->via.array.ptr[0], "kind"), "region"));
    cr_assert_eq(get(&dims->via.array.ptr[0], "labels")->via.array.size,
                 get(release, "cells")->via.array.size);
    cr_assert_gt(check_release(release), 0, "diabetes by region released some figures");

    /* the same query again, on another connection: the same release */
    struct cc_client *other = login(harness, "rita");
    struct cc_reply again;
    call(other, 11, "count", 1, pack_query_field, BY_REGION_E11, &again);
    cr_assert(again.ok);
    const msgpack_object *release2 = cc_reply_get(&again, "release");
    const msgpack_object *a = get(release, "cells"), *b = get(release2, "cells");
    cr_assert_eq(a->via.array.size, b->via.array.size);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *x = &a->via.array.ptr[i].via.array.ptr[0];
        const msgpack_object *y = &b->via.array.ptr[i].via.array.ptr[0];
        cr_assert_eq(x->type, y->type);
        if (x->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            cr_assert_eq(x->via.u64, y->via.u64, "a repeat gets the same value");
    }
    cc_reply_free(&again);
    cc_reply_free(&reply);
    cc_client_close(other);

    /* E10 or E11 (the codelist) differs from E11 alone by the few E10
     * patients: for the same account the ledger refuses it, naming the
     * rule and no count */
    const char *by_codelist = "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"],"
                              "\"filters\":{\"conditions\":[{\"codelist\":\"diabetes\"}]}}";
    call(client, 12, "count", 1, pack_query_field, by_codelist, &reply);
    expect_error(&reply, "REFUSED");
    cr_assert(strstr(reply.error_message, "ledger"), "%s", reply.error_message);
    cc_reply_free(&reply);
    cc_client_close(client);
    /* another account, with no such earlier query, gets it: a codelist by
     * name works like its codes */
    client = login(harness, "rosa");
    call(client, 13, "count", 1, pack_query_field, by_codelist, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    check_release(cc_reply_get(&reply, "release"));
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);
}

Test(ops, bad_and_refused_queries_get_errors_and_the_connection_keeps_serving)
{
    struct cc_harness *harness = start();
    struct cc_client *client = login(harness, "rita");
    struct cc_reply reply;

    /* no query field */
    call(client, 20, "count", 0, NULL, NULL, &reply);
    expect_error(&reply, "INVAL");
    cr_assert(strstr(reply.error_message, "query"), "names the field: %s", reply.error_message);
    cc_reply_free(&reply);

    /* an unknown codelist */
    call(client, 21, "count", 1, pack_query_field,
         "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
         "[{\"codelist\":\"no-such-list\"}]}}",
         &reply);
    expect_error(&reply, "NOTFOUND");
    cc_reply_free(&reply);

    /* an unknown area code */
    call(client, 22, "count", 1, pack_query_field,
         "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"areas\":"
         "{\"level\":\"lad\",\"codes\":[\"E06999999\"]}}}",
         &reply);
    expect_error(&reply, "NOTFOUND");
    cc_reply_free(&reply);

    /* refused by the disclosure policy: a condition that changes the cohort
     * by too few persons is refused, and the reason names the rule, not a
     * count */
    call(client, 23, "count", 1, pack_query_field,
         "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["
         "{\"codes\":[\"E11\"],\"system\":\"icd10\"},"
         "{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
         &reply);
    expect_error(&reply, "REFUSED");
    cr_assert(strstr(reply.error_message, "low-effect"), "%s", reply.error_message);
    cc_reply_free(&reply);

    /* the connection still answers */
    call(client, 24, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);
}

/* ---- compare -------------------------------------------------------------- */

Test(ops, compare_gives_rows_from_released_counts)
{
    struct cc_harness *harness = start();
    struct cc_client *client = login(harness, "paul");
    struct cc_reply reply;
    struct comparison_arg arg = {
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
        "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
        "region", "proportion", "national"};
    call(client, 30, "compare", 1, pack_comparison_field, &arg, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *cmp = cc_reply_get(&reply, "comparison");
    cr_assert(is_str(get(cmp, "method"), "proportion"));
    const msgpack_object *rows = get(cmp, "rows");
    cr_assert(rows && rows->type == MSGPACK_OBJECT_ARRAY && rows->via.array.size >= 2);
    const msgpack_object *england = &rows->via.array.ptr[rows->via.array.size - 1];
    cr_assert(is_str(get(england, "code"), "E92000001"), "England comes last");
    cr_assert_eq(get(england, "compared_with")->type, MSGPACK_OBJECT_NIL);
    unsigned compared = 0;
    for (uint32_t i = 0; i < rows->via.array.size; i++) {
        const msgpack_object *row = &rows->via.array.ptr[i];
        const msgpack_object *count = get(row, "count");
        const msgpack_object *status = get(row, "status");
        if (is_str(status, "suppressed")) {
            cr_assert(count->type == MSGPACK_OBJECT_NIL || get(row, "denominator")->type ==
                                                                MSGPACK_OBJECT_NIL);
            cr_assert_eq(get(row, "value")->type, MSGPACK_OBJECT_NIL, "no value when suppressed");
            continue;
        }
        uint64_t c = uint_of(count), d = uint_of(get(row, "denominator"));
        cr_assert(c == 0 || c >= 8);
        cr_assert_eq(c % 5, 0, "counts are released (rounded) counts");
        cr_assert_eq(d % 5, 0, "denominators too");
        const msgpack_object *value = get(row, "value");
        if (is_str(status, "ok")) {
            cr_assert_eq(value->type, MSGPACK_OBJECT_FLOAT64);
            cr_assert_float_eq(value->via.f64, 100.0 * (double)c / (double)d, 1e-9,
                               "the value is derived from the released counts");
            compared++;
        }
    }
    cr_assert_gt(compared, 0);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);
}

/* ---- roles ---------------------------------------------------------------- */

struct role_case {
    const char *account;
    const char *op;
    const char *expect; /* "ok" or an error code */
};

static void pack_for(msgpack_packer *pk, const void *arg)
{
    const char *op = arg;
    if (!strcmp(op, "count")) {
        pack_query_field(pk, BY_REGION_E11);
    } else if (!strcmp(op, "compare")) {
        struct comparison_arg c = {
            "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
            "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
            "region", "proportion", "national"};
        pack_comparison_field(pk, &c);
    }
}

Test(ops, each_role_runs_only_its_ops)
{
    static const struct role_case cases[] = {
        {"rita", "count", "ok"},        {"rita", "compare", "ok"},
        {"rita", "schema", "ok"},       {"rita", "codelists", "ok"},
        {"paul", "count", "DENIED"},    {"paul", "compare", "ok"},
        {"paul", "schema", "ok"},       {"paul", "codelists", "DENIED"},
        {"olga", "count", "DENIED"},    {"olga", "compare", "DENIED"},
        {"olga", "schema", "DENIED"},   {"olga", "codelists", "DENIED"},
        {"dash", "count", "DENIED"},    {"dash", "compare", "DENIED"},
    };
    struct cc_harness *harness = start();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct role_case *c = &cases[i];
        struct cc_client *client = login(harness, c->account);
        struct cc_reply reply;
        bool has_field = !strcmp(c->op, "count") || !strcmp(c->op, "compare");
        call(client, 40 + i, c->op, has_field ? 1 : 0, has_field ? pack_for : NULL, c->op,
             &reply);
        if (!strcmp(c->expect, "ok"))
            cr_assert(reply.ok, "%s %s: %s %s", c->account, c->op, reply.error_code,
                      reply.error_message);
        else
            expect_error(&reply, c->expect);
        cc_reply_free(&reply);
        cc_client_close(client);
    }
    stop(harness);
}

/* ---- schema and codelists ------------------------------------------------- */

Test(ops, schema_and_codelists_describe_what_can_be_asked)
{
    struct cc_harness *harness = start();
    struct cc_client *client = login(harness, "rita");
    struct cc_reply reply;
    call(client, 50, "schema", 0, NULL, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *levels = cc_reply_get(&reply, "area_levels");
    cr_assert(levels && levels->via.array.size == 4);
    const msgpack_object *region = &levels->via.array.ptr[0];
    cr_assert(is_str(get(region, "level"), "region"));
    const msgpack_object *areas = get(region, "areas");
    cr_assert_eq(areas->via.array.size, uint_of(get(region, "n_areas")));
    cr_assert_gt(areas->via.array.size, 0);
    cr_assert(is_str(get(cc_reply_get(&reply, "policy"), "version"), "carecount-default-1"));
    const msgpack_object *lists = cc_reply_get(&reply, "codelists");
    cr_assert(lists->via.array.size == 1 && is_str(&lists->via.array.ptr[0], "diabetes"));
    const msgpack_object *months = cc_reply_get(&reply, "months");
    cr_assert(months && months->type == MSGPACK_OBJECT_MAP);
    cr_assert_null(cc_reply_get(&reply, "persons"), "no figure about the data");
    cc_reply_free(&reply);

    call(client, 51, "codelists", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    lists = cc_reply_get(&reply, "codelists");
    cr_assert_eq(lists->via.array.size, 1);
    const msgpack_object *codes = get(&lists->via.array.ptr[0], "codes");
    cr_assert_eq(codes->via.array.size, 2);
    cr_assert(is_str(&codes->via.array.ptr[1].via.array.ptr[1], "E11"));
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);
}

/* ---- the audit log ---------------------------------------------------------- */

Test(ops, every_data_request_is_audited_and_the_log_verifies)
{
    struct cc_harness *harness = start();
    struct cc_client *client = connect_to(harness);
    struct cc_reply reply;
    call(client, 60, "hello", 1, pack_token, "cc_not_a_real_token", &reply);
    expect_error(&reply, "AUTH");
    cc_reply_free(&reply);
    cc_client_close(client);

    client = login(harness, "rita");
    call(client, 61, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    call(client, 62, "count", 1, pack_query_field,
         "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":["
         "{\"codes\":[\"E11\"],\"system\":\"icd10\"},"
         "{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
         &reply);
    expect_error(&reply, "REFUSED");
    cc_reply_free(&reply);
    cc_client_close(client);
    client = login(harness, "olga");
    call(client, 63, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);

    char cmd[2048], log_path[400];
    snprintf(log_path, sizeof log_path, "%s/audit.txt", root);
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit show --data '%s' --key '%s' > '%s' 2>&1",
             CC_BIN_DIR, data_dir, key_path, log_path);
    run(cmd);
    size_t len;
    char *log = cc_testfs_read(log_path, &len);
    cr_assert(strstr(log, "count"), "the counts are in the log:\n%s", log);
    cr_assert(strstr(log, "REFUSED"), "the refusal is in the log:\n%s", log);
    cr_assert(strstr(log, "DENIED"), "the role refusal is in the log:\n%s", log);
    cr_assert(strstr(log, "AUTH"), "the failed hello is in the log:\n%s", log);
    cr_assert(strstr(log, "E11"), "with the canonical query:\n%s", log);
    char *token = token_of("rita");
    cr_assert_null(strstr(log, token), "never a token");
    free(token);
    free(log);

    snprintf(cmd, sizeof cmd, "'%s/carecount' audit verify --data '%s' --key '%s' >/dev/null 2>&1",
             CC_BIN_DIR, data_dir, key_path);
    cr_assert_eq(status_of(cmd), 0, "the chain verifies");
}

/* ---- opt-outs through the server ----------------------------------------- */

struct optout_arg {
    const char *nhs;
    const char *type; /* NULL: not given */
};

static void pack_optout(msgpack_packer *pk, const void *arg)
{
    const struct optout_arg *o = arg;
    pack_text(pk, "nhs_number");
    pack_text(pk, o->nhs);
    if (o->type) {
        pack_text(pk, "type");
        pack_text(pk, o->type);
    }
}

static void optout_call(struct cc_client *client, uint64_t id, const char *op, const char *nhs,
                        const char *type, struct cc_reply *reply)
{
    struct optout_arg arg = {nhs, type};
    call(client, id, op, type ? 2 : 1, pack_optout, &arg, reply);
    /* whatever the answer, it never carries the NHS number */
    cr_assert_null(memmem(reply->body, reply->body_bytes, nhs, strlen(nhs)),
                   "%s's reply contains the NHS number", op);
}

static size_t n_in_force(const struct cc_reply *reply)
{
    const msgpack_object *in_force = cc_reply_get(reply, "in_force");
    cr_assert(in_force && in_force->type == MSGPACK_OBJECT_ARRAY);
    return in_force->via.array.size;
}

Test(ops, a_practice_registers_confirms_and_withdraws_its_patients_type1_optout)
{
    struct cc_harness *harness = start();
    struct cc_client *gp = login(harness, "gp");
    struct cc_reply reply;

    optout_call(gp, 70, "optout_status", nhs_own, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert_eq(n_in_force(&reply), 0);
    cc_reply_free(&reply);

    optout_call(gp, 71, "optout_register", nhs_own, "type1", &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert(is_str(cc_reply_get(&reply, "recorded"), "added"));
    cc_reply_free(&reply);
    optout_call(gp, 72, "optout_register", nhs_own, NULL, &reply);
    cr_assert(reply.ok);
    cr_assert(is_str(cc_reply_get(&reply, "recorded"), "already_recorded"), "idempotent");
    cc_reply_free(&reply);

    optout_call(gp, 73, "optout_status", nhs_own, NULL, &reply);
    cr_assert(reply.ok);
    cr_assert_eq(n_in_force(&reply), 1);
    cr_assert(is_str(&cc_reply_get(&reply, "in_force")->via.array.ptr[0], "type1"));
    cc_reply_free(&reply);

    optout_call(gp, 74, "optout_history", nhs_own, NULL, &reply);
    cr_assert(reply.ok);
    const msgpack_object *events = cc_reply_get(&reply, "events");
    cr_assert_eq(events->via.array.size, 1);
    cr_assert(is_str(get(&events->via.array.ptr[0], "source"), "operator"));
    cr_assert(is_str(get(&events->via.array.ptr[0], "practice"), practice_own));
    cc_reply_free(&reply);

    /* the National Data Opt-out is not the practice's to record */
    optout_call(gp, 75, "optout_register", nhs_own, "ndop", &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    /* a patient of another practice: not found, whatever the register says */
    optout_call(gp, 76, "optout_status", nhs_other, NULL, &reply);
    expect_error(&reply, "NOTFOUND");
    cc_reply_free(&reply);
    optout_call(gp, 77, "optout_register", nhs_other, NULL, &reply);
    expect_error(&reply, "NOTFOUND");
    cc_reply_free(&reply);
    /* not an NHS number */
    optout_call(gp, 78, "optout_status", "1234567890", NULL, &reply);
    expect_error(&reply, "INVAL");
    cc_reply_free(&reply);

    optout_call(gp, 79, "optout_withdraw", nhs_own, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    optout_call(gp, 80, "optout_status", nhs_own, NULL, &reply);
    cr_assert_eq(n_in_force(&reply), 0, "withdrawn");
    cc_reply_free(&reply);
    optout_call(gp, 81, "optout_withdraw", nhs_own, NULL, &reply);
    cr_assert(reply.ok && is_str(cc_reply_get(&reply, "recorded"), "already_recorded"),
              "the same withdrawal again is idempotent");
    cc_reply_free(&reply);
    optout_call(gp, 85, "optout_withdraw", nhs_own, "ndop", &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    /* counts are not the practice's */
    call(gp, 82, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    cc_client_close(gp);

    /* an operator may look up anyone; a researcher may not */
    struct cc_client *op = login(harness, "olga");
    optout_call(op, 83, "optout_status", nhs_other, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    cc_client_close(op);
    struct cc_client *researcher = login(harness, "rita");
    optout_call(researcher, 84, "optout_status", nhs_own, NULL, &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    cc_client_close(researcher);
    stop(harness);

    /* the register kept both events, durably, for the command line too; and
     * the audit log names the person by pseudonym, never by NHS number */
    char cmd[2048], out_path[400];
    snprintf(out_path, sizeof out_path, "%s/history.txt", root);
    snprintf(cmd, sizeof cmd,
             "echo %s | '%s/carecount' optout history --data '%s' --key '%s' --nhs-number - "
             "> '%s' 2>&1",
             nhs_own, CC_BIN_DIR, data_dir, key_path, out_path);
    run(cmd);
    size_t len;
    char *history = cc_testfs_read(out_path, &len);
    cr_assert(strstr(history, "withdrawn") && strstr(history, "registered"), "%s", history);
    free(history);
    snprintf(cmd, sizeof cmd, "'%s/carecount' audit show --data '%s' --key '%s' > '%s' 2>&1",
             CC_BIN_DIR, data_dir, key_path, out_path);
    run(cmd);
    char *log = cc_testfs_read(out_path, &len);
    cr_assert(strstr(log, "optout_register"), "%s", log);
    cr_assert(strstr(log, "person"), "audited by pseudonym:\n%s", log);
    cr_assert_null(strstr(log, nhs_own), "never the NHS number");
    cr_assert_null(strstr(log, nhs_other), "never the NHS number");
    free(log);
}

/* ---- saved queries: all a dashboard may run ------------------------------- */

static void pack_name(msgpack_packer *pk, const void *arg)
{
    pack_text(pk, "name");
    pack_text(pk, arg);
}

Test(ops, a_dashboard_runs_saved_queries_by_name_and_nothing_else)
{
    struct cc_harness *harness = start();
    struct cc_client *dash = login(harness, "dash");
    struct cc_reply reply;
    call(dash, 90, "saved_list", 0, NULL, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *saved = cc_reply_get(&reply, "saved");
    cr_assert_eq(saved->via.array.size, 3);
    const msgpack_object *by_icb = &saved->via.array.ptr[0], *vs_region = &saved->via.array.ptr[1],
                         *count = &saved->via.array.ptr[2];
    cr_assert(is_str(get(by_icb, "name"), "diabetes-by-icb"), "name order");
    cr_assert(is_str(get(vs_region, "name"), "diabetes-by-icb-vs-region"), "name order");
    cr_assert(is_str(get(count, "name"), "diabetes-by-region"), "name order");
    cr_assert(is_str(get(by_icb, "kind"), "compare"));
    /* a comparison says what it compares, and its variants share their
     * indicator; a count says nothing more */
    cr_assert(is_str(get(by_icb, "level"), "icb"));
    cr_assert(is_str(get(by_icb, "comparator"), "national"), "the default comparator, named");
    cr_assert(is_str(get(by_icb, "method"), "proportion"));
    cr_assert(is_str(get(vs_region, "comparator"), "parent"));
    const msgpack_object *indicator = get(by_icb, "indicator"),
                         *other = get(vs_region, "indicator");
    cr_assert(indicator && indicator->type == MSGPACK_OBJECT_STR && indicator->via.str.size == 16);
    cr_assert(other && other->type == MSGPACK_OBJECT_STR && other->via.str.size == 16);
    cr_assert(memcmp(indicator->via.str.ptr, other->via.str.ptr, 16) == 0,
              "the level and the comparator are not the indicator");
    cr_assert(is_str(get(count, "kind"), "count"));
    cr_assert_eq(count->via.map.size, 2);
    cc_reply_free(&reply);

    call(dash, 91, "saved", 1, pack_name, "diabetes-by-region", &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert(is_str(cc_reply_get(&reply, "kind"), "count"));
    check_release(cc_reply_get(&reply, "release"));
    cc_reply_free(&reply);
    call(dash, 92, "saved", 1, pack_name, "diabetes-by-icb", &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cr_assert_not_null(get(cc_reply_get(&reply, "comparison"), "rows"));
    cc_reply_free(&reply);
    call(dash, 93, "saved", 1, pack_name, "no-such-query", &reply);
    expect_error(&reply, "NOTFOUND");
    cc_reply_free(&reply);
    call(dash, 94, "schema", 0, NULL, NULL, &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);

    /* the same saved query for a researcher gives the same release as the
     * query itself */
    struct cc_client *rita = login(harness, "rita");
    struct cc_reply direct;
    call(rita, 95, "saved", 1, pack_name, "diabetes-by-region", &reply);
    call(rita, 96, "count", 1, pack_query_field, BY_REGION_E11, &direct);
    cr_assert(reply.ok && direct.ok);
    const msgpack_object *a = get(cc_reply_get(&reply, "release"), "cells");
    const msgpack_object *b = get(cc_reply_get(&direct, "release"), "cells");
    cr_assert_eq(a->via.array.size, b->via.array.size);
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *x = &a->via.array.ptr[i].via.array.ptr[0];
        const msgpack_object *y = &b->via.array.ptr[i].via.array.ptr[0];
        cr_assert(x->type == y->type && (x->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                                         x->via.u64 == y->via.u64));
    }
    cc_reply_free(&reply);
    cc_reply_free(&direct);
    cc_client_close(rita);
    cc_client_close(dash);
    stop(harness);
}

Test(ops, sighup_reloads_the_policy_and_a_bad_policy_file_keeps_the_old_one)
{
    char policy_path[400];
    snprintf(policy_path, sizeof policy_path, "%s/policy.json", root);
    cc_testfs_write_text(policy_path, "{\"version\": \"test-policy-1\", \"threshold\": 10}");
    const char *args[] = {"--data", data_dir, "--key", key_path, "--policy", policy_path, NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0);
    struct cc_client *client = login(harness, "rita");
    struct cc_reply reply;
    call(client, 100, "schema", 0, NULL, NULL, &reply);
    cr_assert(is_str(get(cc_reply_get(&reply, "policy"), "version"), "test-policy-1"));
    cc_reply_free(&reply);

    cc_testfs_write_text(policy_path, "{\"version\": \"test-policy-2\", \"threshold\": 12}");
    cr_assert_eq(cc_harness_signal(harness, SIGHUP), 0);
    bool reloaded = false;
    for (int tries = 0; tries < 200 && !reloaded; tries++) {
        call(client, 101 + tries, "schema", 0, NULL, NULL, &reply);
        reloaded = is_str(get(cc_reply_get(&reply, "policy"), "version"), "test-policy-2");
        if (reloaded)
            cr_assert_eq(uint_of(get(cc_reply_get(&reply, "policy"), "threshold")), 12);
        cc_reply_free(&reply);
        if (!reloaded) {
            struct timespec pause = {0, 20 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    cr_assert(reloaded, "SIGHUP put the new policy in force");

    /* a policy file that fails its checks: the one in force stays */
    cc_testfs_write_text(policy_path, "{\"version\": \"test-policy-3\", \"threshold\": 0}");
    cr_assert_eq(cc_harness_signal(harness, SIGHUP), 0);
    bool said_so = false;
    for (int tries = 0; tries < 200 && !said_so; tries++) {
        char *log = cc_harness_log(harness);
        said_so = strstr(log, "stay") != NULL;
        free(log);
        if (!said_so) {
            struct timespec pause = {0, 20 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    cr_assert(said_so, "the log says the policy in force stays");
    call(client, 400, "schema", 0, NULL, NULL, &reply);
    cr_assert(is_str(get(cc_reply_get(&reply, "policy"), "version"), "test-policy-2"));
    cc_reply_free(&reply);
    call(client, 401, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    cr_assert(reply.ok, "still serving: %s %s", reply.error_code, reply.error_message);
    cr_assert_eq(uint_of(get(get(cc_reply_get(&reply, "release"), "policy"), "threshold")), 12);
    cc_reply_free(&reply);
    cc_client_close(client);
    stop(harness);
}

/* ---- the transparency report ------------------------------------------------ */

static void pack_level(msgpack_packer *pk, const void *arg)
{
    pack_text(pk, "level");
    pack_text(pk, arg);
}

Test(ops, the_transparency_report_releases_protected_optout_counts_by_area)
{
    struct cc_harness *harness = start();
    const char *accounts[] = {"rita", "paul", "dash", "gp", "olga"};
    struct cc_reply first;
    bool have_first = false;
    for (size_t k = 0; k < sizeof accounts / sizeof accounts[0]; k++) {
        struct cc_client *client = login(harness, accounts[k]);
        struct cc_reply reply;
        call(client, 110, "transparency", 1, pack_level, "region", &reply);
        cr_assert(reply.ok, "%s: %s %s", accounts[k], reply.error_code, reply.error_message);
        const msgpack_object *report = cc_reply_get(&reply, "report");
        const msgpack_object *rows = get(report, "rows");
        cr_assert_gt(rows->via.array.size, 0);
        uint64_t threshold = uint_of(get(get(report, "policy"), "threshold"));
        unsigned released_optouts = 0;
        for (uint32_t i = 0; i < rows->via.array.size; i++) {
            const msgpack_object *row = &rows->via.array.ptr[i];
            const char *figures[] = {"registered", "optout_type1", "optout_ndop", "opted_in"};
            for (int f = 0; f < 4; f++) {
                const msgpack_object *v = get(row, figures[f]);
                if (v->type == MSGPACK_OBJECT_NIL)
                    continue;
                uint64_t x = uint_of(v);
                cr_assert(x == 0 || x >= threshold, "%s %llu in 1..threshold-1", figures[f],
                          (unsigned long long)x);
                cr_assert_eq(x % 5, 0);
                released_optouts += f == 2 && x > 0;
            }
            const msgpack_object *coverage = get(row, "coverage_percent");
            if (coverage->type == MSGPACK_OBJECT_FLOAT64)
                cr_assert_float_eq(coverage->via.f64,
                                   100.0 * (double)uint_of(get(row, "opted_in")) /
                                       (double)uint_of(get(row, "estimate")),
                                   1e-9, "coverage from the released count");
        }
        cr_assert_gt(released_optouts, 0, "the generated register has National Data Opt-outs");
        if (!have_first) {
            first = reply;
            have_first = true;
        } else {
            /* everyone gets the same report */
            cr_assert(reply.body_bytes == first.body_bytes &&
                      !memcmp(reply.body, first.body, first.body_bytes));
            cc_reply_free(&reply);
        }
        cc_client_close(client);
    }
    cc_reply_free(&first);
    stop(harness);
}

Test(ops, an_account_over_its_request_rate_gets_busy_and_others_are_served)
{
    const char *args[] = {"--data", data_dir, "--key", key_path,
                          "--max-requests-per-account-minute", "3", NULL};
    struct cc_harness *harness = NULL;
    cr_assert_eq(cc_harness_start(args, &harness), 0);
    struct cc_client *rita = login(harness, "rita");
    struct cc_client *rita2 = login(harness, "rita");
    struct cc_reply reply;
    /* three requests over two connections of one account: within the limit */
    call(rita, 120, "schema", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    call(rita2, 121, "codelists", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    call(rita, 122, "schema", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    /* the fourth, on either connection: BUSY */
    call(rita2, 123, "count", 1, pack_query_field, BY_REGION_E11, &reply);
    expect_error(&reply, "BUSY");
    cc_reply_free(&reply);
    /* another account is not held up, and ping needs no account */
    struct cc_client *paul = login(harness, "paul");
    call(paul, 124, "schema", 0, NULL, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    call(rita, 125, "ping", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    cc_client_close(rita);
    cc_client_close(rita2);
    cc_client_close(paul);
    stop(harness);
}

/* ---- operators: accounts, tokens, the audit log over the protocol ----------- */

struct fields {
    const char *k[3], *v[3];
};

static void pack_fields(msgpack_packer *pk, const void *arg)
{
    const struct fields *f = arg;
    for (int i = 0; i < 3 && f->k[i]; i++) {
        pack_text(pk, f->k[i]);
        pack_text(pk, f->v[i]);
    }
}

static uint32_t n_fields(const struct fields *f)
{
    uint32_t n = 0;
    while (n < 3 && f->k[n])
        n++;
    return n;
}

static void pack_token_id(msgpack_packer *pk, const void *arg)
{
    pack_text(pk, "token_id");
    msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

Test(ops, an_operator_manages_accounts_and_tokens_and_reads_the_audit_log)
{
    struct cc_harness *harness = start();
    struct cc_client *op = login(harness, "olga");
    struct cc_reply reply;
    struct fields add = {{"name", "role"}, {"newbie", "researcher"}};
    call(op, 130, "account_add", n_fields(&add), pack_fields, &add, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    call(op, 131, "account_add", n_fields(&add), pack_fields, &add, &reply);
    expect_error(&reply, "EXISTS");
    cc_reply_free(&reply);

    struct fields issue = {{"account"}, {"newbie"}};
    call(op, 132, "token_issue", 1, pack_fields, &issue, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *t = cc_reply_get(&reply, "token");
    cr_assert(t && t->type == MSGPACK_OBJECT_STR);
    char token[CC_TOKEN_TEXT_BYTES + 1];
    snprintf(token, sizeof token, "%.*s", (int)t->via.str.size, t->via.str.ptr);
    uint64_t token_id = uint_of(cc_reply_get(&reply, "token_id"));
    cc_reply_free(&reply);

    /* the new account works at once */
    struct cc_client *newbie = connect_to(harness);
    call(newbie, 1, "hello", 1, pack_token, token, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    call(newbie, 2, "schema", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cc_reply_free(&reply);
    /* a researcher administers nothing */
    call(newbie, 3, "account_list", 0, NULL, NULL, &reply);
    expect_error(&reply, "DENIED");
    cc_reply_free(&reply);
    cc_client_close(newbie);

    call(op, 133, "account_list", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    cr_assert(memmem(reply.body, reply.body_bytes, "newbie", 6), "listed");
    cc_reply_free(&reply);

    /* revoked: the token stops working */
    call(op, 134, "token_revoke", 1, pack_token_id, &token_id, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    cc_reply_free(&reply);
    newbie = connect_to(harness);
    call(newbie, 4, "hello", 1, pack_token, token, &reply);
    expect_error(&reply, "AUTH");
    cc_reply_free(&reply);
    cc_client_close(newbie);

    /* the audit log, read over the protocol: the admin ops are there, the
     * token is not */
    call(op, 135, "audit_list", 0, NULL, NULL, &reply);
    cr_assert(reply.ok, "%s: %s", reply.error_code, reply.error_message);
    const msgpack_object *records = cc_reply_get(&reply, "records");
    cr_assert_gt(records->via.array.size, 4, "only %u records", records->via.array.size);
    cr_assert(memmem(reply.body, reply.body_bytes, "account_add", 11));
    cr_assert(memmem(reply.body, reply.body_bytes, "token_revoke", 12));
    cr_assert_null(memmem(reply.body, reply.body_bytes, token, strlen(token)), "never a token");
    cc_reply_free(&reply);
    cc_client_close(op);
    stop(harness);
}

Test(ops, the_server_records_each_accounts_released_cohorts_in_the_ledger)
{
    struct cc_harness *harness = start();
    struct cc_client *rita = login(harness, "rita");
    struct cc_reply reply;
    for (uint64_t id = 140; id < 143; id++) {
        call(rita, id, "count", 1, pack_query_field, BY_REGION_E11, &reply);
        cr_assert(reply.ok, "a repeat is answered: %s %s", reply.error_code, reply.error_message);
        cc_reply_free(&reply);
    }
    /* the same restrictions in another table, and as a comparison's
     * numerator: the same cohort by construction, answered */
    call(rita, 143, "count", 1, pack_query_field,
         "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"sex\"],"
         "\"filters\":{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
         &reply);
    cr_assert(reply.ok, "another table of the same cohort: %s %s", reply.error_code,
              reply.error_message);
    cc_reply_free(&reply);
    struct comparison_arg same = {
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
        "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
        "region", "proportion", "national"};
    call(rita, 144, "compare", 1, pack_comparison_field, &same, &reply);
    cr_assert(reply.ok, "a comparison of the same cohort: %s %s", reply.error_code,
              reply.error_message);
    cc_reply_free(&reply);
    /* a comparison goes through the ledger: E10 or E11 differs from E11
     * by the few E10 patients */
    struct comparison_arg near = {
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
        "[{\"codelist\":\"diabetes\"}]}}",
        "region", "proportion", "national"};
    call(rita, 145, "compare", 1, pack_comparison_field, &near, &reply);
    expect_error(&reply, "REFUSED");
    cr_assert(strstr(reply.error_message, "ledger"), "%s", reply.error_message);
    cc_reply_free(&reply);
    cc_client_close(rita);
    stop(harness);
    /* one entry for the five queries of one cohort, under rita's account */
    char cmd[1024], out[400];
    snprintf(out, sizeof out, "%s/ledger.txt", root);
    snprintf(cmd, sizeof cmd,
             "sqlite3 '%s/state.db' 'SELECT count(*), count(DISTINCT account) FROM "
             "ledger_entry' > '%s'",
             data_dir, out);
    run(cmd);
    size_t len;
    char *text = cc_testfs_read(out, &len);
    cr_assert(!strncmp(text, "1|1", 3), "the ledger holds one entry of one account: %s", text);
    free(text);
}

/* ---- repeats: the release cache ------------------------------------------- */

static uint64_t status_number(struct cc_client *client, uint64_t id, const char *key)
{
    struct cc_reply reply;
    call(client, id, "status", 0, NULL, NULL, &reply);
    cr_assert(reply.ok);
    const msgpack_object *v = cc_reply_get(&reply, key);
    cr_assert(v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "status has %s", key);
    uint64_t n = v->via.u64;
    cc_reply_free(&reply);
    return n;
}

/* The release of a count, packed, into *out (malloc'd). */
static size_t count_release(struct cc_client *client, uint64_t id, const char *query, char **out)
{
    struct cc_reply reply;
    call(client, id, "count", 1, pack_query_field, query, &reply);
    cr_assert(reply.ok, "%s %s", reply.error_code, reply.error_message);
    const msgpack_object *release = cc_reply_get(&reply, "release");
    cr_assert(release && release->type == MSGPACK_OBJECT_MAP);
    msgpack_sbuffer buffer;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
    cr_assert_eq(msgpack_pack_object(&pk, *release), 0);
    cc_reply_free(&reply);
    *out = buffer.data;
    return buffer.size;
}

/* A repeat of an account's query is given the earlier release's bytes
 * (the status counters show it was the cache), audited as every request
 * is; another account's first asking is its own; and the same query asked
 * again of a server without the cache, through the ledger, is the same
 * release byte for byte. */
Test(ops, a_repeat_is_answered_from_the_release_cache_as_the_full_path_answers_it)
{
    static const char by_sex[] = "{\"v\":1,\"measure\":\"persons\",\"dimensions\":"
                                 "[\"sex\",\"region\"],\"filters\":{\"conditions\":"
                                 "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}";
    struct cc_harness *harness = start();
    struct cc_client *rita = login(harness, "rita");
    uint64_t hits = status_number(rita, 170, "release_cache_hits");
    uint64_t misses = status_number(rita, 171, "release_cache_misses");
    char *first, *again, *rosa_first;
    size_t n_first = count_release(rita, 172, by_sex, &first);
    cr_assert_eq(status_number(rita, 173, "release_cache_misses"), misses + 1);
    cr_assert_eq(status_number(rita, 174, "release_cache_hits"), hits);
    size_t n_again = count_release(rita, 175, by_sex, &again);
    cr_assert_eq(status_number(rita, 176, "release_cache_hits"), hits + 1, "the repeat was kept");
    cr_assert(n_again == n_first && !memcmp(first, again, n_first), "the same bytes");
    free(again);
    struct cc_client *rosa = login(harness, "rosa");
    size_t n_rosa = count_release(rosa, 177, by_sex, &rosa_first);
    cr_assert_eq(status_number(rosa, 178, "release_cache_hits"), hits + 1,
                 "another account's first asking is not rita's");
    cr_assert_gt(status_number(rosa, 179, "release_cache_entries"), 1);
    free(rosa_first);
    (void)n_rosa;
    /* a comparison's repeat likewise */
    struct comparison_arg by_region = {
        "{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
        "[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}}",
        "region", "proportion", "national"};
    struct cc_reply compared[2];
    uint64_t hits_before = status_number(rosa, 190, "release_cache_hits");
    for (int i = 0; i < 2; i++) {
        call(rosa, 191 + (uint64_t)i, "compare", 1, pack_comparison_field, &by_region,
             &compared[i]);
        cr_assert(compared[i].ok, "%s %s", compared[i].error_code, compared[i].error_message);
    }
    cr_assert_eq(status_number(rosa, 193, "release_cache_hits"), hits_before + 1);
    const msgpack_object *c0 = cc_reply_get(&compared[0], "comparison");
    const msgpack_object *c1 = cc_reply_get(&compared[1], "comparison");
    cr_assert(c0 && c1 && msgpack_object_equal(*c0, *c1), "the same comparison again");
    cc_reply_free(&compared[0]);
    cc_reply_free(&compared[1]);
    cc_client_close(rosa);
    cc_client_close(rita);
    stop(harness);

    /* both of rita's requests are in the audit log */
    char cmd[2048], log_path[400];
    snprintf(log_path, sizeof log_path, "%s/audit-repeat.txt", root);
    snprintf(cmd, sizeof cmd,
             "'%s/carecount' audit show --data '%s' --key '%s' | grep -c 'dimensions.*sex.*region'"
             " > '%s'",
             CC_BIN_DIR, data_dir, key_path, log_path);
    run(cmd);
    size_t len;
    char *n_logged = cc_testfs_read(log_path, &len);
    cr_assert_geq(atoi(n_logged), 3, "every request audited, the repeat too: %s", n_logged);
    free(n_logged);

    /* without the cache: the full path (engine, release, ledger) again */
    const char *args[] = {"--data", data_dir, "--key", key_path, "--release-cache-mb", "0", NULL};
    cr_assert_eq(cc_harness_start(args, &harness), 0, "carecountd did not start");
    rita = login(harness, "rita");
    struct cc_reply reply;
    call(rita, 180, "status", 0, NULL, NULL, &reply);
    cr_assert_null(cc_reply_get(&reply, "release_cache_hits"), "no cache, no counters");
    cc_reply_free(&reply);
    size_t n_full = count_release(rita, 181, by_sex, &again);
    cr_assert(n_full == n_first && !memcmp(first, again, n_first),
              "the full path gives the bytes the cache gave");
    free(again);
    free(first);
    cc_client_close(rita);
    stop(harness);
}

/* ---- the researcher's client commands ------------------------------------------ */

/* Runs a carecount command line (with 2>&1) and returns its exit status. */
static int tool(const char *args, char *out, size_t out_bytes)
{
    char cmd[2048], path[400];
    snprintf(path, sizeof path, "%s/tool.out", root);
    snprintf(cmd, sizeof cmd, "'%s/carecount' %s > '%s' 2>&1", CC_BIN_DIR, args, path);
    int status = system(cmd);
    size_t len;
    char *text = cc_testfs_read(path, &len);
    snprintf(out, out_bytes, "%s", text);
    free(text);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Test(ops, the_client_commands_print_schema_codelists_tables_and_json)
{
    struct cc_harness *harness = start();
    unsigned port = cc_harness_port(harness);
    static char out[1 << 16];
    char args[1024], query_path[400];
    snprintf(args, sizeof args, "schema --port %u --token-file '%s/rita.token'", port, root);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "disclosure policy") && strstr(out, "carecount-default-1"), "%s", out);
    snprintf(args, sizeof args, "codelists --port %u --token-file '%s/rita.token'", port, root);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "diabetes") && strstr(out, "icd10"), "%s", out);
    snprintf(args, sizeof args, "codelists --port %u --token-file '%s/paul.token'", port, root);
    cr_assert_eq(tool(args, out, sizeof out), 3, "a planner is refused: %s", out);

    snprintf(query_path, sizeof query_path, "%s/q.json", root);
    cc_testfs_write_text(query_path, BY_REGION_E11);
    snprintf(args, sizeof args, "count --port %u --token-file '%s/rita.token' --format json '%s'",
             port, root, query_path);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    json_t *json = json_loads(out, 0, NULL);
    cr_assert_not_null(json, "one line of JSON: %s", out);
    cr_assert_eq(json_array_size(json_object_get(json, "cells")), 9);
    json_decref(json);
    snprintf(args, sizeof args, "count --port %u --token-file '%s/rita.token' '%s'", port, root,
             query_path);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "region") && strstr(out, "disclosure control"), "a table: %s", out);
    snprintf(args, sizeof args, "count --port %u --token abc '%s'", port, query_path);
    cr_assert_eq(tool(args, out, sizeof out), 2, "never a token on the command line: %s", out);
    stop(harness);
}

/* The query flags ask the same question as the file: the same canonical
 * query (--print-query against `carecount check`) and the same release;
 * an error names the flag to change. */
Test(ops, query_flags_ask_what_the_file_asks)
{
    struct cc_harness *harness = start();
    unsigned port = cc_harness_port(harness);
    static char out[1 << 16], from_file[1 << 16], checked[4096];
    char args[1024], query_path[400];
    snprintf(query_path, sizeof query_path, "%s/q.json", root);
    cc_testfs_write_text(query_path, BY_REGION_E11);

    snprintf(args, sizeof args, "check '%s'", query_path);
    cr_assert_eq(tool(args, checked, sizeof checked), 0, "%s", checked);
    cr_assert_eq(tool("count --by region --code icd10:E11 --print-query", out, sizeof out), 0,
                 "%s", out);
    cr_assert_str_eq(out, checked, "the flags write the file's canonical query");

    snprintf(args, sizeof args, "count --port %u --token-file '%s/rita.token' --format json '%s'",
             port, root, query_path);
    cr_assert_eq(tool(args, from_file, sizeof from_file), 0, "%s", from_file);
    snprintf(args, sizeof args,
             "count --port %u --token-file '%s/rita.token' --format json --by region "
             "--code icd10:E11",
             port, root);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, from_file, "the same release from flags as from the file");

    /* a comparison from flags is the file's comparison */
    snprintf(query_path, sizeof query_path, "%s/c.json", root);
    cc_testfs_write_text(query_path,
                         "{\"v\":1,\"numerator\":{\"v\":1,\"measure\":\"persons\",\"filters\":"
                         "{\"conditions\":[{\"codes\":[\"E11\"],\"system\":\"icd10\"}]}},"
                         "\"level\":\"region\",\"method\":\"proportion\"}");
    snprintf(args, sizeof args, "compare --port %u --token-file '%s/paul.token' --format json '%s'",
             port, root, query_path);
    cr_assert_eq(tool(args, from_file, sizeof from_file), 0, "%s", from_file);
    snprintf(args, sizeof args,
             "compare --port %u --token-file '%s/paul.token' --format json --level region "
             "--numerator icd10:E11 --comparator england",
             port, root);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, from_file, "the same comparison from flags as from the file");

    /* the same comparison and query from msgpack files (carecount check
     * --msgpack writes them): the same answers */
    char msgpack_path[400];
    snprintf(msgpack_path, sizeof msgpack_path, "%s/c.msgpack", root);
    snprintf(args, sizeof args, "'%s/carecount' check --msgpack '%s' > '%s'", CC_BIN_DIR,
             query_path, msgpack_path);
    run(args);
    snprintf(args, sizeof args, "compare --port %u --token-file '%s/paul.token' --format json '%s'",
             port, root, msgpack_path);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, from_file, "the same comparison from its msgpack form");
    char json_query[400];
    snprintf(json_query, sizeof json_query, "%s/q.json", root);
    snprintf(msgpack_path, sizeof msgpack_path, "%s/q.msgpack", root);
    snprintf(args, sizeof args, "'%s/carecount' check --msgpack '%s' > '%s'", CC_BIN_DIR,
             json_query, msgpack_path);
    run(args);
    static char from_json[1 << 16];
    snprintf(args, sizeof args, "count --port %u --token-file '%s/rita.token' --format json '%s'",
             port, root, json_query);
    cr_assert_eq(tool(args, from_json, sizeof from_json), 0, "%s", from_json);
    snprintf(args, sizeof args, "count --port %u --token-file '%s/rita.token' --format json '%s'",
             port, root, msgpack_path);
    cr_assert_eq(tool(args, out, sizeof out), 0, "%s", out);
    cr_assert_str_eq(out, from_json, "the same release from the query's msgpack form");
    cc_testfs_write_text(msgpack_path, "\x93\x01\x02");
    snprintf(args, sizeof args, "compare --port %u --token-file '%s/paul.token' '%s'", port, root,
             msgpack_path);
    cr_assert_eq(tool(args, out, sizeof out), 2, "%s", out);
    cr_assert(strstr(out, "c.msgpack") == NULL && strstr(out, "q.msgpack"), "%s", out);

    /* errors name the flag */
    cr_assert_eq(tool("count --by region,county --print-query", out, sizeof out), 2);
    cr_assert(strstr(out, "--by region,county: dimensions[1]: unknown dimension 'county'"), "%s",
              out);
    cr_assert_eq(tool("count --code icd10:E11 --code snomed:12345 --print-query", out, sizeof out),
                 2);
    cr_assert(strstr(out, "--code snomed:12345: filters.conditions[1].codes[0]"), "%s", out);
    cr_assert_eq(tool("count --code E11 --print-query", out, sizeof out), 2);
    cr_assert(strstr(out, "name the code system first"), "%s", out);
    cr_assert_eq(tool("count --from 2023-01 --print-query", out, sizeof out), 2);
    cr_assert(strstr(out, "both --from and --to"), "%s", out);
    cr_assert_eq(tool("compare --numerator icd10:E11 --by region --print-query", out, sizeof out),
                 2);
    cr_assert(strstr(out, "--by: a comparison sets its dimensions itself"), "%s", out);
    snprintf(args, sizeof args, "count '%s' --by region", query_path);
    cr_assert_eq(tool(args, out, sizeof out), 2);
    cr_assert(strstr(out, "as a file or as flags, not both"), "%s", out);
    stop(harness);
}

/* The connection from a config file (~/.carecount/config), overridden by
 * the environment; a bad config key is named; the token never comes from
 * the config file itself. */
Test(ops, the_client_reads_its_connection_from_a_config_file)
{
    struct cc_harness *harness = start();
    unsigned port = cc_harness_port(harness);
    char home[400], dir[420], path[440], cmd[2048], out_path[440];
    snprintf(home, sizeof home, "%s/home", root);
    snprintf(dir, sizeof dir, "%s/.carecount", home);
    cr_assert_eq(mkdir(home, 0700), 0);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/config", dir);
    char text[800];
    snprintf(text, sizeof text, "# the test's server\nhost = 127.0.0.1\nport = %u\n"
             "token-file = %s/rita.token\n", port, root);
    cc_testfs_write_text(path, text);
    snprintf(out_path, sizeof out_path, "%s/config.out", root);
    snprintf(cmd, sizeof cmd,
             "env -u CARECOUNT_TOKEN -u CARECOUNT_TOKEN_FILE -u CARECOUNT_PORT HOME='%s' "
             "'%s/carecount' schema > '%s' 2>&1", home, CC_BIN_DIR, out_path);
    int status = system(cmd);
    size_t len;
    char *out = cc_testfs_read(out_path, &len);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    cr_assert(strstr(out, "disclosure policy"), "%s", out);
    free(out);

    /* the environment overrides the file: a closed port is refused */
    snprintf(cmd, sizeof cmd,
             "env -u CARECOUNT_TOKEN -u CARECOUNT_TOKEN_FILE HOME='%s' CARECOUNT_PORT=1 "
             "'%s/carecount' schema > '%s' 2>&1", home, CC_BIN_DIR, out_path);
    status = system(cmd);
    out = cc_testfs_read(out_path, &len);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "%s", out);
    cr_assert(strstr(out, "port 1: connection refused"), "%s", out);
    free(out);

    cc_testfs_write_text(path, "host = 127.0.0.1\ntoken = cct1.abc\n");
    snprintf(cmd, sizeof cmd,
             "env -u CARECOUNT_TOKEN -u CARECOUNT_TOKEN_FILE HOME='%s' "
             "'%s/carecount' schema > '%s' 2>&1", home, CC_BIN_DIR, out_path);
    status = system(cmd);
    out = cc_testfs_read(out_path, &len);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 2, "%s", out);
    cr_assert(strstr(out, "config:2: unknown key 'token'") && strstr(out, "never kept here"),
              "%s", out);
    free(out);
    stop(harness);
}
