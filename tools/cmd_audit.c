/*
 * cmd_audit.c: `carecount audit`: the operator's view of the audit log
 * (core/cc_audit.h): show records, verify the hash chain, print the head to
 * record elsewhere.
 *
 *   carecount audit show   --data DIR [--since YYYY-MM-DD] [--account A] [--op OP] [--limit N]
 *   carecount audit verify --data DIR --key KEYFILE [--head SEQ:HEX]
 *   carecount audit head   --data DIR
 *
 * Exit status: 0 ok (verify: the chain verifies); 1 the log does not verify
 * or cannot be read; 2 usage.
 *
 * Must never: print anything but the log's own records (they hold no NHS
 * number and no token by construction).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_audit.h"
#include "cc_datadir.h"
#include "cc_date.h"
#include "cc_error.h"

const char cc_cmd_audit_summary[] = "show and verify the audit log (hash-chained)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount audit show   --data DIR [--since YYYY-MM-DD] [--account NAME]\n"
            "                              [--op OP] [--limit N]\n"
            "       carecount audit verify --data DIR --key KEYFILE [--head SEQ:HEX]\n"
            "       carecount audit head   --data DIR\n"
            "\n"
            "The audit log holds one record per request the server answered for an\n"
            "account, and per hello: time, account, op, peer, the canonical request,\n"
            "cells released and suppressed, outcome and reason. Each record is\n"
            "chained to the one before by a hash keyed with the data directory's key.\n"
            "\n"
            "  show    prints the records (oldest first; --limit N: the last N)\n"
            "  verify  recomputes the chain: an edited, deleted, inserted or reordered\n"
            "          record is reported with its sequence number (exit 1). Records\n"
            "          cut off the end leave a chain that verifies: record the head\n"
            "          (`audit head`) elsewhere and check it with --head SEQ:HEX.\n"
            "  head    prints SEQ:HEX of the last record\n"
            "\n"
            "--key KEYFILE (or $CARECOUNT_KEY) is needed by verify.\n");
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static int print_entry(const struct cc_audit_entry *e, void *arg)
{
    (void)arg;
    char when[32] = "?";
    time_t t = (time_t)(e->record.time_ms / 1000);
    struct tm utc;
    if (gmtime_r(&t, &utc))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
    printf("%" PRIu64 "\t%s\t%s\t%s\t%s\t%s\treleased=%" PRIu64 " suppressed=%" PRIu64 "\t%s%s%s\n",
           e->seq, when, e->record.account ? e->record.account : "-", e->record.op,
           e->record.peer ? e->record.peer : "-", e->record.outcome, e->record.cells_released,
           e->record.cells_suppressed, e->record.request ? e->record.request : "-",
           e->record.reason ? "\t" : "", e->record.reason ? e->record.reason : "");
    return 0;
}

static int parse_head(const char *text, uint64_t *seq, uint8_t hash[CC_AUDIT_HASH_BYTES])
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(text, &end, 10);
    if (errno || end == text || *end != ':' || strlen(end + 1) != 2 * CC_AUDIT_HASH_BYTES)
        return CC_EINVAL;
    for (int i = 0; i < CC_AUDIT_HASH_BYTES; i++) {
        unsigned v;
        if (sscanf(end + 1 + 2 * i, "%2x", &v) != 1)
            return CC_EINVAL;
        hash[i] = (uint8_t)v;
    }
    *seq = n;
    return 0;
}

int cc_cmd_audit(int argc, char **argv)
{
    const char *action = NULL, *dir = NULL, *key_path = NULL, *since = NULL, *head = NULL;
    struct cc_audit_filter filter = {0, NULL, NULL, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-' && !action) {
            action = a;
            continue;
        }
        if (!v) {
            fprintf(stderr, "carecount audit: %s needs a value (try --help)\n", a);
            return 2;
        }
        if (!strcmp(a, "--data"))
            dir = v;
        else if (!strcmp(a, "--key"))
            key_path = v;
        else if (!strcmp(a, "--since"))
            since = v;
        else if (!strcmp(a, "--account"))
            filter.account = v;
        else if (!strcmp(a, "--op"))
            filter.op = v;
        else if (!strcmp(a, "--head"))
            head = v;
        else if (!strcmp(a, "--limit")) {
            char *end;
            filter.limit = strtoull(v, &end, 10);
            if (*end || !*v || v[0] == '-') {
                fprintf(stderr, "carecount audit: --limit needs a whole number\n");
                return 2;
            }
        } else {
            fprintf(stderr, "carecount audit: unknown option '%s' (try --help)\n", a);
            return 2;
        }
        i++;
    }
    if (!action || (strcmp(action, "show") && strcmp(action, "verify") && strcmp(action, "head"))) {
        fprintf(stderr, "carecount audit: give show, verify or head (try --help)\n");
        return 2;
    }
    if (!dir) {
        fprintf(stderr, "carecount audit: --data DIR is required\n");
        return 2;
    }
    if (since) {
        cc_day day;
        if (cc_day_parse(since, strlen(since), &day) != 0) {
            fprintf(stderr, "carecount audit: --since needs a date YYYY-MM-DD\n");
            return 2;
        }
        filter.since_ms = ((int64_t)day - cc_day_from_ymd(1970, 1, 1)) * 86400 * 1000;
    }
    bool verifying = !strcmp(action, "verify");
    if (verifying && !key_path)
        key_path = getenv("CARECOUNT_KEY");
    if (verifying && (!key_path || !*key_path)) {
        fprintf(stderr, "carecount audit: verify needs the data directory's key: --key KEYFILE "
                        "(or CARECOUNT_KEY)\n");
        return 2;
    }
    uint64_t head_seq = 0;
    uint8_t head_hash[CC_AUDIT_HASH_BYTES];
    if (head && parse_head(head, &head_seq, head_hash) != 0) {
        fprintf(stderr, "carecount audit: --head needs SEQ:HEX as `audit head` prints it\n");
        return 2;
    }

    char err[512] = "";
    cc_pseudo_key *key = NULL;
    cc_audit *audit = NULL;
    int status = 1;
    int rc = cc_datadir_check_permissions(dir, err, sizeof err);
    if (rc == 0 && verifying)
        rc = cc_datadir_load_key(dir, key_path, &key, err, sizeof err);
    if (rc == 0)
        rc = cc_audit_open(dir, key, &audit, err, sizeof err);
    if (rc) {
        fprintf(stderr, "carecount audit: %s\n", err[0] ? err : cc_strerror(rc));
        goto out;
    }
    if (!strcmp(action, "show")) {
        rc = cc_audit_list(audit, &filter, print_entry, NULL);
        if (rc) {
            fprintf(stderr, "carecount audit: the log could not be read: %s\n", cc_strerror(rc));
            goto out;
        }
        status = fflush(stdout) == 0 ? 0 : 1;
    } else if (!strcmp(action, "head")) {
        uint64_t seq;
        uint8_t hash[CC_AUDIT_HASH_BYTES];
        char text[2 * CC_AUDIT_HASH_BYTES + 1];
        if ((rc = cc_audit_head(audit, &seq, hash)) != 0) {
            fprintf(stderr, "carecount audit: the log could not be read: %s\n", cc_strerror(rc));
            goto out;
        }
        hex(hash, sizeof hash, text);
        printf("%" PRIu64 ":%s\n", seq, text);
        status = 0;
    } else {
        struct cc_audit_verify_result result;
        rc = cc_audit_verify(audit, &result, err, sizeof err);
        if (rc == 0 && head)
            rc = cc_audit_verify_head(audit, head_seq, head_hash, err, sizeof err);
        if (rc) {
            fprintf(stderr, "carecount audit: DOES NOT VERIFY: %s\n", err);
            goto out;
        }
        printf("audit log verifies: %" PRIu64 " records%s\n", result.entries,
               head ? ", and the recorded head is in it" : "");
        status = 0;
    }
out:
    cc_audit_close(audit);
    cc_pseudo_key_free(key);
    return status;
}
