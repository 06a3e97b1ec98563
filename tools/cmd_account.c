/*
 * cmd_account.c: `carecount account`, the operator's administration of the
 * accounts in a data directory's state.db (core/cc_account.h): add one,
 * list them, disable one for good.
 *
 * An account is a name, a role, and for the practice role its practice.
 * Tokens, which let a client act as an account, are `carecount token`'s.
 *
 * Must never: print a token or anything about a token but its count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_account.h"
#include "cc_admin.h"
#include "cc_error.h"

const char cc_cmd_account_summary[] = "add, list and disable the accounts clients act as";

static void usage(FILE *out)
{
    fprintf(out, "usage: carecount account add NAME --role ROLE [--practice CODE] --data DIR\n"
                 "       carecount account list --data DIR\n"
                 "       carecount account disable NAME --data DIR\n"
                 "\n"
                 "Manages the accounts of data directory DIR (in its state.db), on the\n"
                 "server's machine; a running carecountd sees the change at once.\n"
                 "\n"
                 "actions:\n"
                 "  add NAME      add an account. NAME: 1 to 63 characters of a-z, 0-9, '.',\n"
                 "                '_' and '-', beginning with a letter or a digit. Names are\n"
                 "                never reused, even after disable (the audit log names them).\n"
                 "  list          every account: name, role, practice, when it was created and\n"
                 "                disabled (UTC), and how many of its tokens are usable\n"
                 "  disable NAME  disable an account for good: its tokens stop working at\n"
                 "                once, and it can get no new one (this cannot be undone)\n"
                 "\n"
                 "options:\n"
                 "  --data DIR       the data directory (made by `carecount ingest`)\n"
                 "  --role ROLE      add: what the account may do (docs/operator-guide.md):\n"
                 "                   researcher  count, compare, schema, codelists, saved queries\n"
                 "                   planner     compare, schema, saved queries\n"
                 "                   dashboard   the operator-approved saved queries only\n"
                 "                   practice    opt-out look-ups and type 1 registrations for\n"
                 "                               its own practice's patients\n"
                 "                   operator    administration and opt-out ops; no data\n"
                 "  --practice CODE  add: the practice (ODS code, e.g. B86001); required for\n"
                 "                   role practice, refused for every other role\n"
                 "  -h, --help       this text\n"
                 "\n"
                 "Every role may also read the transparency report. Give an account a\n"
                 "token with `carecount token issue NAME --data DIR --out FILE`.\n"
                 "\n"
                 "exit status: 0 done (or nothing to change), 1 refused or failed, 2 usage.\n");
}

static int account_add(cc_accounts *accounts, const char *name, int role, const char *practice,
                       const char *data_dir)
{
    char errbuf[512];
    int rc = cc_accounts_add(accounts, name, role, practice, NULL, errbuf, sizeof errbuf);
    if (rc == CC_EINVAL) {
        fprintf(stderr, "carecount account: %s%s\n", errbuf,
                role == CC_ROLE_PRACTICE && !(practice && *practice) ? " (--practice CODE)" : "");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (rc) {
        fprintf(stderr, "carecount account: %s\n", errbuf);
        return CC_ADMIN_EXIT_FAILED;
    }
    struct cc_account_info info;
    if (cc_accounts_find(accounts, name, (int64_t)time(NULL), &info, errbuf, sizeof errbuf) != 0)
        info.practice[0] = '\0';
    if (info.practice[0])
        printf("added account %s (role %s, practice %s)\n", name, cc_role_name(role),
               info.practice);
    else
        printf("added account %s (role %s)\n", name, cc_role_name(role));
    printf("give it a token with: carecount token issue %s --data %s --out FILE\n", name, data_dir);
    return CC_ADMIN_EXIT_OK;
}

static int account_list(cc_accounts *accounts)
{
    struct cc_account_info *list = NULL;
    size_t n = 0;
    char errbuf[512];
    if (cc_accounts_list(accounts, (int64_t)time(NULL), &list, &n, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "carecount account: %s\n", errbuf);
        return CC_ADMIN_EXIT_FAILED;
    }
    if (n == 0) {
        printf("no accounts yet; add one with `carecount account add NAME --role ROLE`\n");
        return CC_ADMIN_EXIT_OK;
    }
    int name_width = (int)strlen("name");
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(list[i].name) > name_width)
            name_width = (int)strlen(list[i].name);
    printf("%-*s  %-10s  %-8s  %-16s  %-16s  %s\n", name_width, "name", "role", "practice",
           "created (UTC)", "disabled (UTC)", "usable tokens");
    for (size_t i = 0; i < n; i++) {
        char created[CC_ADMIN_TIME_BYTES], disabled[CC_ADMIN_TIME_BYTES];
        const char *role = cc_role_name(list[i].role);
        cc_admin_format_time(list[i].created_at, created);
        cc_admin_format_time(list[i].disabled_at, disabled);
        printf("%-*s  %-10s  %-8s  %-16s  %-16s  %llu\n", name_width, list[i].name,
               role ? role : "unknown", list[i].practice[0] ? list[i].practice : "-", created,
               disabled,
               /* a disabled account's tokens no longer work, whatever their dates */
               list[i].disabled_at ? 0ULL : (unsigned long long)list[i].n_tokens_usable);
    }
    free(list);
    return CC_ADMIN_EXIT_OK;
}

static int account_disable(cc_accounts *accounts, const char *name)
{
    struct cc_account_info info;
    char errbuf[512];
    int rc = cc_accounts_find(accounts, name, (int64_t)time(NULL), &info, errbuf, sizeof errbuf);
    if (rc == 0 && info.disabled_at) {
        char when[CC_ADMIN_TIME_BYTES];
        cc_admin_format_time(info.disabled_at, when);
        printf("account %s was disabled already (%s UTC); nothing changed\n", name, when);
        return CC_ADMIN_EXIT_OK;
    }
    if (rc == 0)
        rc = cc_accounts_disable(accounts, name, errbuf, sizeof errbuf);
    if (rc == CC_ENOTFOUND) {
        fprintf(stderr, "carecount account: no account %s (see `carecount account list`)\n", name);
        return CC_ADMIN_EXIT_FAILED;
    }
    if (rc) {
        fprintf(stderr, "carecount account: %s\n", errbuf);
        return CC_ADMIN_EXIT_FAILED;
    }
    printf("disabled account %s for good: its %llu usable token%s stopped working\n", name,
           (unsigned long long)info.n_tokens_usable, info.n_tokens_usable == 1 ? "" : "s");
    return CC_ADMIN_EXIT_OK;
}

int cc_cmd_account(int argc, char **argv)
{
    const char *data_dir = NULL, *role = NULL, *practice = NULL;
    const char *positional[2] = {NULL, NULL};
    size_t n_positional = 0;
    const struct cc_admin_option options[] = {
        {"--data", &data_dir},
        {"--role", &role},
        {"--practice", &practice},
    };
    if (cc_admin_wants_help(argc, argv)) {
        usage(stdout);
        return CC_ADMIN_EXIT_OK;
    }
    if (argc < 2) {
        usage(stderr);
        return CC_ADMIN_EXIT_USAGE;
    }
    int status = cc_admin_parse("account", argc, argv, options, sizeof options / sizeof options[0],
                                positional, 2, &n_positional);
    if (status)
        return status;
    const char *action = positional[0], *name = positional[1];
    if (!action) {
        fprintf(stderr, "carecount account: no action given (add, list, disable; try --help)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    int adding = !strcmp(action, "add"), listing = !strcmp(action, "list");
    if (!adding && !listing && strcmp(action, "disable")) {
        fprintf(stderr,
                "carecount account: unknown action '%s' (add, list, disable; try "
                "--help)\n",
                action);
        return CC_ADMIN_EXIT_USAGE;
    }
    if (listing && name) {
        fprintf(stderr, "carecount account: list takes no NAME\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (!listing && !name) {
        fprintf(stderr, "carecount account: %s needs the account's NAME\n", action);
        return CC_ADMIN_EXIT_USAGE;
    }
    if (!adding && (role || practice)) {
        fprintf(stderr, "carecount account: --role and --practice are for add only\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (adding && !role) {
        fprintf(stderr, "carecount account: add needs --role (researcher, planner, dashboard, "
                        "practice or operator)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    int role_value = adding ? cc_role_parse(role) : 0;
    if (role_value < 0) {
        fprintf(stderr, "carecount account: --role must be researcher, planner, dashboard, "
                        "practice or operator\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (!data_dir) {
        fprintf(stderr, "carecount account: --data DIR is required (the data directory)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    cc_accounts *accounts = NULL;
    if ((status = cc_admin_open("account", data_dir, &accounts)) != 0)
        return status;
    if (adding)
        status = account_add(accounts, name, role_value, practice, data_dir);
    else if (listing)
        status = account_list(accounts);
    else
        status = account_disable(accounts, name);
    cc_accounts_close(accounts);
    return status;
}
