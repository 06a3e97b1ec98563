/*
 * cmd_account.c: `carecount account`: the operator's accounts
 * (core/cc_account.h): add, list, disable.
 *
 *   carecount account add NAME --role ROLE [--practice CODE] --data DIR
 *   carecount account list --data DIR
 *   carecount account disable NAME --data DIR
 *
 * Exit status: 0 done; 1 refused or failed (the message says why); 2 usage.
 *
 * Must never: print a token (accounts hold none; tokens are `carecount
 * token`'s).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_account.h"
#include "cc_datadir.h"
#include "cc_error.h"

const char cc_cmd_account_summary[] = "add, list and disable accounts (roles)";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount account add NAME --role ROLE [--practice CODE] --data DIR\n"
            "       carecount account list --data DIR\n"
            "       carecount account disable NAME --data DIR\n"
            "\n"
            "Accounts of the server of data directory DIR (kept in DIR/state.db).\n"
            "ROLE is one of:\n"
            "  researcher  count, compare, schema, codelists, saved queries\n"
            "  planner     compare, schema, saved queries\n"
            "  dashboard   only the operator-approved saved queries\n"
            "  practice    opt-out look-ups and type 1 registrations for the patients\n"
            "              of its practice (--practice CODE, the ODS code, is required)\n"
            "  operator    administration and the opt-out ops; no data queries\n"
            "Every role may read the transparency report. Names are 1-63 characters\n"
            "of a-z, 0-9, '.', '_', '-', and are never reused, even after disable.\n"
            "Give the account a token with `carecount token issue NAME`.\n");
}

static void format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm utc;
    if (t == 0 || !gmtime_r(&tt, &utc) || !strftime(buf, len, "%Y-%m-%d", &utc))
        snprintf(buf, len, "-");
}

/* Opens DIR's accounts after checking the directory. */
static int open_accounts(const char *dir, cc_accounts **out)
{
    char err[512] = "";
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "carecount account: %s: no such data directory (ingest first)\n", dir);
        return 1;
    }
    int rc = cc_datadir_check_permissions(dir, err, sizeof err);
    if (rc == 0)
        rc = cc_accounts_open(dir, out, err, sizeof err);
    if (rc) {
        fprintf(stderr, "carecount account: %s\n", err[0] ? err : cc_strerror(rc));
        return 1;
    }
    return 0;
}

int cc_cmd_account(int argc, char **argv)
{
    const char *action = NULL, *name = NULL, *role = NULL, *practice = NULL, *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (!action)
                action = a;
            else if (!name)
                name = a;
            else {
                fprintf(stderr, "carecount account: unexpected argument '%s' (try --help)\n", a);
                return 2;
            }
            continue;
        }
        const char **slot = !strcmp(a, "--role")       ? &role
                            : !strcmp(a, "--practice") ? &practice
                            : !strcmp(a, "--data")     ? &dir
                                                       : NULL;
        if (!slot) {
            fprintf(stderr, "carecount account: unknown option '%s' (try --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "carecount account: %s needs a value\n", a);
            return 2;
        }
        *slot = v;
        i++;
    }
    if (!action || (strcmp(action, "add") && strcmp(action, "list") && strcmp(action, "disable"))) {
        fprintf(stderr, "carecount account: give add, list or disable (try --help)\n");
        return 2;
    }
    if (!dir) {
        fprintf(stderr, "carecount account: --data DIR is required\n");
        return 2;
    }
    if (strcmp(action, "list") && !name) {
        fprintf(stderr, "carecount account: %s needs the account's NAME\n", action);
        return 2;
    }
    int r = 0;
    if (!strcmp(action, "add")) {
        if (!role || (r = cc_role_parse(role)) < 0) {
            fprintf(stderr, "carecount account: --role is researcher, planner, dashboard, "
                            "practice or operator\n");
            return 2;
        }
        if ((r == CC_ROLE_PRACTICE) != (practice != NULL)) {
            fprintf(stderr, "carecount account: --practice CODE is %s\n",
                    practice ? "only for --role practice" : "required for --role practice");
            return 2;
        }
    }

    cc_accounts *accounts = NULL;
    if (open_accounts(dir, &accounts) != 0)
        return 1;
    char err[512] = "";
    int status = 1, rc;
    if (!strcmp(action, "add")) {
        int64_t id = 0;
        rc = cc_accounts_add(accounts, name, r, practice, &id, err, sizeof err);
        if (rc == 0) {
            printf("account %s added (id %lld, role %s)\n", name, (long long)id, role);
            status = 0;
        }
    } else if (!strcmp(action, "disable")) {
        rc = cc_accounts_disable(accounts, name, err, sizeof err);
        if (rc == 0) {
            printf("account %s disabled: its tokens no longer work\n", name);
            status = 0;
        }
    } else {
        struct cc_account_info *list = NULL;
        size_t n = 0;
        rc = cc_accounts_list(accounts, (int64_t)time(NULL), &list, &n, err, sizeof err);
        if (rc == 0) {
            printf("%-24s %-10s %-9s %-10s %-10s %s\n", "name", "role", "practice", "created",
                   "disabled", "usable tokens");
            for (size_t i = 0; i < n; i++) {
                char created[16], disabled[16];
                format_time(list[i].created_at, created, sizeof created);
                format_time(list[i].disabled_at, disabled, sizeof disabled);
                printf("%-24s %-10s %-9s %-10s %-10s %llu\n", list[i].name,
                       cc_role_name(list[i].role), list[i].practice[0] ? list[i].practice : "-",
                       created, disabled, (unsigned long long)list[i].n_tokens_usable);
            }
            free(list);
            status = 0;
        }
    }
    if (status)
        fprintf(stderr, "carecount account: %s\n", err[0] ? err : cc_strerror(rc));
    cc_accounts_close(accounts);
    return status;
}
