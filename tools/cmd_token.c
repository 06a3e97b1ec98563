/*
 * cmd_token.c: `carecount token`: tokens of accounts (core/cc_account.h):
 * issue (shown once), revoke, list (never a secret).
 *
 *   carecount token issue ACCOUNT --data DIR [--expires-days N] [--out FILE]
 *   carecount token revoke ID --data DIR
 *   carecount token list [ACCOUNT] --data DIR
 *
 * Exit status: 0 done; 1 refused or failed; 2 usage.
 *
 * Must never: print a token except the one just issued, once, and only to
 * FILE (mode 0600, created, never overwritten) or standard output.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_datadir.h"
#include "cc_error.h"

const char cc_cmd_token_summary[] = "issue (shown once), revoke and list account tokens";

#define DEFAULT_DAYS 90
#define MAX_DAYS 3660

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount token issue ACCOUNT --data DIR [--expires-days N] [--out FILE]\n"
            "       carecount token revoke ID --data DIR\n"
            "       carecount token list [ACCOUNT] --data DIR\n"
            "\n"
            "A token is what a client presents (hello) to act as an account. It is\n"
            "random, shown once, and the server keeps only its hash. issue writes\n"
            "it to FILE (created with mode 0600; an existing file is refused), or\n"
            "prints it once; it expires after N days (default %d, at most %d).\n"
            "Clients read it with --token-file FILE or CARECOUNT_TOKEN_FILE.\n"
            "list shows ids, dates and use, never a token.\n",
            DEFAULT_DAYS, MAX_DAYS);
}

static void format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm utc;
    if (t == 0 || !gmtime_r(&tt, &utc) || !strftime(buf, len, "%Y-%m-%d %H:%M", &utc))
        snprintf(buf, len, "-");
}

/* Writes token and a newline to a new file of mode 0600. */
static int write_token_file(const char *path, const char *token)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        fprintf(stderr, "carecount token: %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (a token file is never overwritten)" : "");
        return 1;
    }
    size_t len = strlen(token);
    int ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok) {
        fprintf(stderr, "carecount token: %s: cannot write the token\n", path);
        unlink(path);
        return 1;
    }
    return 0;
}

int cc_cmd_token(int argc, char **argv)
{
    const char *action = NULL, *arg = NULL, *dir = NULL, *out = NULL, *days_text = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (!action)
                action = a;
            else if (!arg)
                arg = a;
            else {
                fprintf(stderr, "carecount token: unexpected argument '%s' (try --help)\n", a);
                return 2;
            }
            continue;
        }
        const char **slot = !strcmp(a, "--data")           ? &dir
                            : !strcmp(a, "--out")          ? &out
                            : !strcmp(a, "--expires-days") ? &days_text
                                                           : NULL;
        if (!slot) {
            fprintf(stderr, "carecount token: unknown option '%s' (try --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "carecount token: %s needs a value\n", a);
            return 2;
        }
        *slot = v;
        i++;
    }
    if (!action || (strcmp(action, "issue") && strcmp(action, "revoke") && strcmp(action, "list"))) {
        fprintf(stderr, "carecount token: give issue, revoke or list (try --help)\n");
        return 2;
    }
    if (!dir) {
        fprintf(stderr, "carecount token: --data DIR is required\n");
        return 2;
    }
    if (strcmp(action, "list") && !arg) {
        fprintf(stderr, "carecount token: %s needs %s\n", action,
                strcmp(action, "issue") ? "the token's ID (see token list)" : "the ACCOUNT");
        return 2;
    }
    long days = DEFAULT_DAYS;
    if (days_text) {
        char *end;
        days = strtol(days_text, &end, 10);
        if (*end || !*days_text || days < 1 || days > MAX_DAYS) {
            fprintf(stderr, "carecount token: --expires-days needs 1 to %d\n", MAX_DAYS);
            return 2;
        }
    }
    long long token_id = 0;
    if (!strcmp(action, "revoke")) {
        char *end;
        token_id = strtoll(arg, &end, 10);
        if (*end || token_id < 1) {
            fprintf(stderr, "carecount token: the ID is a positive whole number\n");
            return 2;
        }
    }

    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "carecount token: %s: no such data directory (ingest first)\n", dir);
        return 1;
    }
    char err[512] = "";
    cc_accounts *accounts = NULL;
    int rc = cc_datadir_check_permissions(dir, err, sizeof err);
    if (rc == 0)
        rc = cc_accounts_open(dir, &accounts, err, sizeof err);
    if (rc) {
        fprintf(stderr, "carecount token: %s\n", err[0] ? err : cc_strerror(rc));
        return 1;
    }
    int status = 1;
    if (!strcmp(action, "issue")) {
        char token[CC_TOKEN_TEXT_BYTES];
        int64_t id = 0, expires = (int64_t)time(NULL) + (int64_t)days * 86400;
        rc = cc_accounts_token_issue(accounts, arg, expires, token, &id, err, sizeof err);
        if (rc == 0) {
            char when[32];
            format_time(expires, when, sizeof when);
            if (out) {
                status = write_token_file(out, token);
                if (status == 0)
                    printf("token %" PRId64 " for %s written to %s, expires %s UTC\n", id, arg,
                           out, when);
                else
                    cc_accounts_token_revoke(accounts, id, err, sizeof err); /* never used */
            } else {
                printf("%s\n", token);
                fprintf(stderr, "token %" PRId64 " for %s, expires %s UTC: shown once, keep it "
                                "in a file of mode 0600\n",
                        id, arg, when);
                status = 0;
            }
        }
        sodium_memzero(token, sizeof token);
        err[0] = status && rc == 0 ? '\0' : err[0];
        if (status && rc == 0)
            rc = CC_EIO;
    } else if (!strcmp(action, "revoke")) {
        rc = cc_accounts_token_revoke(accounts, (int64_t)token_id, err, sizeof err);
        if (rc == 0) {
            printf("token %lld revoked\n", token_id);
            status = 0;
        }
    } else {
        struct cc_token_info *list = NULL;
        size_t n = 0;
        rc = cc_accounts_token_list(accounts, arg, &list, &n, err, sizeof err);
        if (rc == 0) {
            printf("%-6s %-24s %-16s %-16s %-16s %s\n", "id", "account", "created", "expires",
                   "revoked", "last used");
            for (size_t i = 0; i < n; i++) {
                char created[32], expires[32], revoked[32], used[32];
                format_time(list[i].created_at, created, sizeof created);
                format_time(list[i].expires_at, expires, sizeof expires);
                format_time(list[i].revoked_at, revoked, sizeof revoked);
                format_time(list[i].last_used_at, used, sizeof used);
                printf("%-6" PRId64 " %-24s %-16s %-16s %-16s %s\n", list[i].id, list[i].account,
                       created, expires, revoked, used);
            }
            free(list);
            status = 0;
        }
    }
    if (status && err[0])
        fprintf(stderr, "carecount token: %s\n", err);
    cc_accounts_close(accounts);
    return status;
}
