/*
 * cmd_token.c: `carecount token`, the operator's administration of the
 * bearer tokens that let a client act as an account (core/cc_account.h):
 * issue one, revoke one, list them.
 *
 * A token is shown once: written to a new file of mode 0600 (--out), or
 * printed once on standard output. state.db keeps only a hash of its
 * secret, so a lost token cannot be shown again: issue a new one, and
 * revoke the old.
 *
 * Must never: print a token anywhere but that once, print any part of a
 * token in a list or a message, or replace an existing file with a token.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cc_account.h"
#include "cc_admin.h"
#include "cc_error.h"

const char cc_cmd_token_summary[] = "issue, revoke and list the tokens of accounts";

#define DEFAULT_EXPIRES_DAYS 90
#define MAX_EXPIRES_DAYS     3660 /* ten years and a little */
#define SECONDS_PER_DAY      86400

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount token issue ACCOUNT --data DIR [--expires-days N] [--out FILE]\n"
            "       carecount token revoke ID --data DIR\n"
            "       carecount token list [ACCOUNT] --data DIR\n"
            "\n"
            "Manages the bearer tokens with which clients act as the accounts of data\n"
            "directory DIR (`carecount account`), on the server's machine.\n"
            "\n"
            "actions:\n"
            "  issue ACCOUNT  make a new token for an active account. It is shown once\n"
            "                 and stored only as a hash: it cannot be shown again.\n"
            "  revoke ID      stop token ID (from `token list`) working, for good\n"
            "  list [ACCOUNT] every token (or those of ACCOUNT): id, account, when it\n"
            "                 was made, expires and was last used (UTC), and its status;\n"
            "                 never the token itself (nobody keeps it)\n"
            "\n"
            "options:\n"
            "  --data DIR          the data directory (made by `carecount ingest`)\n"
            "  --expires-days N    issue: the token works for N days, 1 to %d\n"
            "                      (default %d)\n"
            "  --out FILE          issue: write the token to FILE, a new file of mode 0600\n"
            "                      (an existing FILE is refused, never replaced); without\n"
            "                      it the token is printed once on standard output\n"
            "  -h, --help          this text\n"
            "\n"
            "Hand the token file to the account's holder, who keeps it mode 0600 and\n"
            "gives it to the client with --token-file FILE or CARECOUNT_TOKEN_FILE;\n"
            "a token never goes on a command line.\n"
            "\n"
            "exit status: 0 done (or nothing to change), 1 refused or failed, 2 usage.\n",
            MAX_EXPIRES_DAYS, DEFAULT_EXPIRES_DAYS);
}

/* Parses a decimal integer in [min, max]; 0, or CC_EINVAL. */
static int parse_integer(const char *text, long long min, long long max, long long *out)
{
    char *end = NULL;
    if (!text || text[0] < '0' || text[0] > '9')
        return CC_EINVAL;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || *end || value < min || value > max)
        return CC_EINVAL;
    *out = value;
    return 0;
}

/* Writes the whole of text to fd and makes it durable. 0, or an errno. */
static int write_all(int fd, const char *text, size_t len)
{
    while (len) {
        ssize_t put = write(fd, text, len);
        if (put < 0 && errno == EINTR)
            continue;
        if (put < 0)
            return errno;
        text += put;
        len -= (size_t)put;
    }
    return fsync(fd) == 0 ? 0 : errno;
}

/* Revokes a token that could not be handed over, so that no copy of a
 * working token exists that nobody has. */
static void revoke_lost(cc_accounts *accounts, int64_t token_id)
{
    char errbuf[256];
    if (cc_accounts_token_revoke(accounts, token_id, errbuf, sizeof errbuf) == 0)
        fprintf(stderr,
                "carecount token: token %lld was revoked again, as it could not be "
                "handed over\n",
                (long long)token_id);
    else
        fprintf(stderr, "carecount token: %s; revoke token %lld with `carecount token revoke`\n",
                errbuf, (long long)token_id);
}

static int token_issue(cc_accounts *accounts, const char *account, long long days,
                       const char *out_path)
{
    char token[CC_TOKEN_TEXT_BYTES], line[CC_TOKEN_TEXT_BYTES + 1], errbuf[512];
    char expires[CC_ADMIN_TIME_BYTES];
    int64_t token_id = 0;
    int fd = -1, status = CC_ADMIN_EXIT_FAILED;

    /* The file first: a path that is taken costs no token. O_EXCL and
     * O_NOFOLLOW: never an existing file, nor one behind a symbolic link. */
    if (out_path) {
        fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno == EEXIST) {
            fprintf(stderr,
                    "carecount token: %s exists already; a token file is never "
                    "replaced (choose another --out, or remove it first)\n",
                    out_path);
            return CC_ADMIN_EXIT_FAILED;
        }
        if (fd < 0) {
            fprintf(stderr, "carecount token: cannot create %s: %s\n", out_path, strerror(errno));
            return CC_ADMIN_EXIT_FAILED;
        }
        if (fchmod(fd, 0600) != 0) { /* whatever the umask did */
            fprintf(stderr, "carecount token: %s: cannot set mode 0600: %s\n", out_path,
                    strerror(errno));
            goto fail_file;
        }
    }
    int64_t expires_unix = (int64_t)time(NULL) + (int64_t)days * SECONDS_PER_DAY;
    if (cc_accounts_token_issue(accounts, account, expires_unix, token, &token_id, errbuf,
                                sizeof errbuf) != 0) {
        fprintf(stderr, "carecount token: %s\n", errbuf);
        goto fail_file;
    }
    cc_admin_format_time(expires_unix, expires);
    int len = snprintf(line, sizeof line, "%s\n", token);
    if (out_path) {
        int err = write_all(fd, line, (size_t)len);
        int closed = close(fd);
        fd = -1;
        if (err || closed != 0) {
            fprintf(stderr, "carecount token: cannot write %s: %s\n", out_path,
                    strerror(err ? err : errno));
            revoke_lost(accounts, token_id);
            goto fail_file;
        }
        printf("token %lld for %s written to %s, expires %s UTC\n", (long long)token_id, account,
               out_path, expires);
    } else {
        fputs(line, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "carecount token: cannot write the token to standard output\n");
            revoke_lost(accounts, token_id);
            goto out;
        }
        fprintf(stderr,
                "token %lld for %s, expires %s UTC: shown once, above, and stored only as a "
                "hash; keep it in a file only its holder can read (mode 0600)\n",
                (long long)token_id, account, expires);
    }
    status = CC_ADMIN_EXIT_OK;
    goto out;
fail_file:
    if (fd >= 0)
        close(fd);
    if (out_path)
        unlink(out_path); /* ours: O_EXCL made it */
out:
    explicit_bzero(token, sizeof token);
    explicit_bzero(line, sizeof line);
    return status;
}

static int by_account_id(const void *key, const void *element)
{
    int64_t id = *(const int64_t *)key;
    const struct cc_account_info *info = element;
    return id < info->id ? -1 : id > info->id;
}

static int token_list(cc_accounts *accounts, const char *account)
{
    struct cc_token_info *tokens = NULL;
    struct cc_account_info *list = NULL;
    size_t n_tokens = 0, n_accounts = 0;
    char errbuf[512];
    int64_t now = (int64_t)time(NULL);
    int rc = cc_accounts_token_list(accounts, account, &tokens, &n_tokens, errbuf, sizeof errbuf);
    if (rc == 0)
        rc = cc_accounts_list(accounts, now, &list, &n_accounts, errbuf, sizeof errbuf);
    if (rc == CC_ENOTFOUND) {
        fprintf(stderr, "carecount token: no account %s (see `carecount account list`)\n", account);
        return CC_ADMIN_EXIT_FAILED;
    }
    if (rc) {
        fprintf(stderr, "carecount token: %s\n", errbuf);
        free(tokens);
        return CC_ADMIN_EXIT_FAILED;
    }
    int account_width = (int)strlen("account");
    for (size_t i = 0; i < n_tokens; i++)
        if ((int)strlen(tokens[i].account) > account_width)
            account_width = (int)strlen(tokens[i].account);
    if (n_tokens == 0) {
        if (account)
            printf("account %s has no tokens; issue one with `carecount token issue %s`\n", account,
                   account);
        else
            printf("no tokens yet; issue one with `carecount token issue ACCOUNT`\n");
    } else {
        printf("%6s  %-*s  %-16s  %-16s  %-16s  %s\n", "id", account_width, "account",
               "created (UTC)", "expires (UTC)", "last used (UTC)", "status");
    }
    for (size_t i = 0; i < n_tokens; i++) {
        const struct cc_token_info *t = &tokens[i];
        char created[CC_ADMIN_TIME_BYTES], expires[CC_ADMIN_TIME_BYTES];
        char used[CC_ADMIN_TIME_BYTES], revoked[CC_ADMIN_TIME_BYTES], status[64];
        const struct cc_account_info *owner =
            bsearch(&t->account_id, list, n_accounts, sizeof *list, by_account_id);
        cc_admin_format_time(t->created_at, created);
        cc_admin_format_time(t->expires_at, expires);
        cc_admin_format_time(t->last_used_at, used);
        cc_admin_format_time(t->revoked_at, revoked);
        if (t->revoked_at)
            snprintf(status, sizeof status, "revoked %s", revoked);
        else if (t->expires_at <= now)
            snprintf(status, sizeof status, "expired");
        else if (!owner || owner->disabled_at)
            snprintf(status, sizeof status, "account disabled");
        else
            snprintf(status, sizeof status, "usable");
        printf("%6lld  %-*s  %-16s  %-16s  %-16s  %s\n", (long long)t->id, account_width,
               t->account, created, expires, used, status);
    }
    free(tokens);
    free(list);
    return CC_ADMIN_EXIT_OK;
}

static int token_revoke(cc_accounts *accounts, int64_t token_id)
{
    struct cc_token_info *tokens = NULL;
    size_t n = 0;
    char errbuf[512], when[CC_ADMIN_TIME_BYTES];
    if (cc_accounts_token_list(accounts, NULL, &tokens, &n, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "carecount token: %s\n", errbuf);
        return CC_ADMIN_EXIT_FAILED;
    }
    const struct cc_token_info *token = NULL;
    for (size_t i = 0; i < n && !token; i++)
        if (tokens[i].id == token_id)
            token = &tokens[i];
    int status = CC_ADMIN_EXIT_FAILED;
    if (!token) {
        fprintf(stderr, "carecount token: no token %lld (see `carecount token list`)\n",
                (long long)token_id);
    } else if (token->revoked_at) {
        cc_admin_format_time(token->revoked_at, when);
        printf("token %lld of %s was revoked already (%s UTC); nothing changed\n",
               (long long)token_id, token->account, when);
        status = CC_ADMIN_EXIT_OK;
    } else if (cc_accounts_token_revoke(accounts, token_id, errbuf, sizeof errbuf) != 0) {
        fprintf(stderr, "carecount token: %s\n", errbuf);
    } else {
        printf("revoked token %lld of %s for good: it stops working now\n", (long long)token_id,
               token->account);
        status = CC_ADMIN_EXIT_OK;
    }
    free(tokens);
    return status;
}

int cc_cmd_token(int argc, char **argv)
{
    const char *data_dir = NULL, *expires_days = NULL, *out_path = NULL;
    const char *positional[2] = {NULL, NULL};
    size_t n_positional = 0;
    const struct cc_admin_option options[] = {
        {"--data", &data_dir},
        {"--expires-days", &expires_days},
        {"--out", &out_path},
    };
    if (cc_admin_wants_help(argc, argv)) {
        usage(stdout);
        return CC_ADMIN_EXIT_OK;
    }
    if (argc < 2) {
        usage(stderr);
        return CC_ADMIN_EXIT_USAGE;
    }
    int status = cc_admin_parse("token", argc, argv, options, sizeof options / sizeof options[0],
                                positional, 2, &n_positional);
    if (status)
        return status;
    const char *action = positional[0], *subject = positional[1];
    if (!action) {
        fprintf(stderr, "carecount token: no action given (issue, revoke, list; try --help)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    int issuing = !strcmp(action, "issue"), revoking = !strcmp(action, "revoke");
    if (!issuing && !revoking && strcmp(action, "list")) {
        fprintf(stderr,
                "carecount token: unknown action '%s' (issue, revoke, list; try "
                "--help)\n",
                action);
        return CC_ADMIN_EXIT_USAGE;
    }
    if (issuing && !subject) {
        fprintf(stderr, "carecount token: issue needs the ACCOUNT to issue the token to\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (revoking && !subject) {
        fprintf(stderr, "carecount token: revoke needs the token's ID (see `carecount token "
                        "list`)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (!issuing && (expires_days || out_path)) {
        fprintf(stderr, "carecount token: --expires-days and --out are for issue only\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    long long days = DEFAULT_EXPIRES_DAYS, token_id = 0;
    if (expires_days && parse_integer(expires_days, 1, MAX_EXPIRES_DAYS, &days) != 0) {
        fprintf(stderr,
                "carecount token: --expires-days must be a whole number of days from 1 "
                "to %d\n",
                MAX_EXPIRES_DAYS);
        return CC_ADMIN_EXIT_USAGE;
    }
    if (out_path && !out_path[0]) {
        fprintf(stderr, "carecount token: --out needs a file name\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (revoking && parse_integer(subject, 1, INT64_MAX, &token_id) != 0) {
        fprintf(stderr, "carecount token: a token ID is a positive whole number (see `carecount "
                        "token list`)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    if (!data_dir) {
        fprintf(stderr, "carecount token: --data DIR is required (the data directory)\n");
        return CC_ADMIN_EXIT_USAGE;
    }
    cc_accounts *accounts = NULL;
    if ((status = cc_admin_open("token", data_dir, &accounts)) != 0)
        return status;
    if (issuing)
        status = token_issue(accounts, subject, days, out_path);
    else if (revoking)
        status = token_revoke(accounts, (int64_t)token_id);
    else
        status = token_list(accounts, subject);
    cc_accounts_close(accounts);
    return status;
}
