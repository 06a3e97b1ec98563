/*
 * cc_account.h: accounts, their roles, and the bearer tokens that
 * authenticate them, in the data directory's state.db.
 *
 * An account is a name, one role and (for the practice role) the practice it
 * acts for. A client proves it holds an account by presenting a token issued
 * to it by the operator (`carecount token issue`). A token is
 *
 *     "cct1." SELECTOR "." SECRET
 *
 * where SELECTOR is 12 random bytes and SECRET 32 random bytes (libsodium's
 * randombytes_buf), each in unpadded base64url: 65 characters in all. The
 * selector is public: it finds the token's row. The secret is never stored:
 * the row holds BLAKE2b-256(key = secret; "carecount-token-v1" NUL ||
 * selector), and authentication recomputes it from the presented secret and
 * compares in constant time (sodium_memcmp). So a copy of state.db does not
 * let anyone authenticate, and the token text exists only where it was
 * handed over (stdout once, or a 0600 file).
 *
 * A token stops working when it expires, when it is revoked, or when its
 * account is disabled; none of these is ever undone (issue a new token).
 * Accounts and tokens are never deleted (the audit log refers to their ids):
 * triggers refuse DELETE.
 *
 * Threads: a cc_accounts handle owns its own connection to state.db and a
 * mutex; every function may be called from several threads at once (the
 * server calls cc_accounts_authenticate from its thread pool). Several
 * processes (the server, `carecount account`) share state.db through WAL and
 * the busy timeout.
 *
 * Must never: store, log or put in an error message a token or its secret
 * (the token text is wiped after use), or tell a client why a token was
 * refused (cc_accounts_authenticate has one failure code, CC_EAUTH).
 */
#ifndef CC_ACCOUNT_H
#define CC_ACCOUNT_H

#include <stddef.h>
#include <stdint.h>

/* The roles. Values are stored in state.db: never renumber. What each may do
 * is the server's op table's business; in short (docs/operator-guide.md):
 * researcher: count, compare, schema, codelists, saved queries; planner:
 * compare, schema, saved queries; dashboard: operator-approved saved
 * queries only; practice: opt-out look-ups and type 1 registrations for
 * its own practice's patients; operator: administration and the opt-out
 * ops, no data; every role: the transparency report (server/cc_op_*.c). */
enum cc_role {
    CC_ROLE_RESEARCHER = 1,
    CC_ROLE_PLANNER,
    CC_ROLE_DASHBOARD,
    CC_ROLE_PRACTICE,
    CC_ROLE_OPERATOR,
};

/* "researcher", "planner", "dashboard", "practice", "operator"; NULL if role
 * is not one of them. */
const char *cc_role_name(int role);

/* The role named name (exactly as cc_role_name spells it), or CC_EINVAL. */
int cc_role_parse(const char *name);

/* An account name: 1-63 characters of [a-z0-9._-], the first a letter or a
 * digit (so a name is never taken for an option), and its NUL. */
#define CC_ACCOUNT_NAME_BYTES 64

/* A practice code as stored (ODS: a letter and 5 digits, upper case). */
#define CC_ACCOUNT_PRACTICE_BYTES 16

/* The token text: "cct1." (5) + 16 selector characters + "." + 43 secret
 * characters = 65, and its NUL. */
#define CC_TOKEN_PREFIX "cct1."
#define CC_TOKEN_TEXT_LEN 65
#define CC_TOKEN_TEXT_BYTES (CC_TOKEN_TEXT_LEN + 1)

/* The last-used time of a token is rewritten at most this often, and only
 * when the database is free at that instant (never waiting for another
 * writer), so authentication stays a read. */
#define CC_TOKEN_LAST_USED_GRANULARITY_S 60

/* Who a token authenticated. */
struct cc_account {
    int64_t id;
    char name[CC_ACCOUNT_NAME_BYTES];
    int role;                                 /* enum cc_role */
    char practice[CC_ACCOUNT_PRACTICE_BYTES]; /* role practice only, else "" */
    int64_t token_id;                         /* the token that authenticated */
    int64_t token_expires;                    /* unix seconds */
};

/* An account as `account list` shows it. */
struct cc_account_info {
    int64_t id;
    char name[CC_ACCOUNT_NAME_BYTES];
    int role;
    char practice[CC_ACCOUNT_PRACTICE_BYTES];
    int64_t created_at;  /* unix seconds */
    int64_t disabled_at; /* unix seconds; 0: active */
    uint64_t n_tokens_usable; /* neither revoked nor expired (at the time of the list) */
};

/* A token as `token list` shows it: never its secret (nobody has it). */
struct cc_token_info {
    int64_t id;
    int64_t account_id;
    char account[CC_ACCOUNT_NAME_BYTES];
    int64_t created_at;   /* unix seconds */
    int64_t expires_at;   /* unix seconds */
    int64_t revoked_at;   /* unix seconds; 0: not revoked */
    int64_t last_used_at; /* unix seconds, to CC_TOKEN_LAST_USED_GRANULARITY_S; 0: never */
};

typedef struct cc_accounts cc_accounts;

/* Opens the accounts of data directory dir: connects to dir/state.db
 * (creating it, and dir, if missing), creates the tables if needed (schema
 * module "account"). Free with cc_accounts_close(). */
int cc_accounts_open(const char *dir, cc_accounts **out, char *errbuf, size_t errlen);

/* Closes the connection and frees the handle (NULL is allowed). No other
 * thread may be inside a call on it. */
void cc_accounts_close(cc_accounts *accounts);

/* Adds an account. practice is required (an ODS practice code) for role
 * practice and must be NULL or "" for every other role. CC_EEXISTS if the
 * name is taken (by an active or a disabled account: names are never
 * reused, so the audit log's names stay unambiguous), CC_EINVAL for a bad
 * name, role or practice. *id (if not NULL) gets the new account's id. */
int cc_accounts_add(cc_accounts *a, const char *name, int role, const char *practice,
                    int64_t *id, char *errbuf, size_t errlen);

/* Disables an account for good: its tokens stop working at once, and no new
 * token can be issued to it. CC_ENOTFOUND if there is no such account;
 * disabling a disabled account is 0 and changes nothing. */
int cc_accounts_disable(cc_accounts *a, const char *name, char *errbuf, size_t errlen);

/* Issues a new token to an active account, valid until expires_unix (unix
 * seconds, after now). The token text goes to token (NUL-terminated): the
 * caller shows it once and wipes it (sodium_memzero / explicit_bzero).
 * *token_id (if not NULL) gets its id. CC_ENOTFOUND: no such account;
 * CC_EINVAL: disabled account, or an expiry not in the future. */
int cc_accounts_token_issue(cc_accounts *a, const char *account_name, int64_t expires_unix,
                            char token[CC_TOKEN_TEXT_BYTES], int64_t *token_id, char *errbuf,
                            size_t errlen);

/* Revokes a token for good. CC_ENOTFOUND if there is no such token;
 * revoking a revoked token is 0 and changes nothing. */
int cc_accounts_token_revoke(cc_accounts *a, int64_t token_id, char *errbuf, size_t errlen);

/* Authenticates the token text token[0..len) at time now_unix. 0 and *out
 * filled; or CC_EAUTH for any unknown, malformed, revoked or expired token,
 * a wrong secret, or a disabled account: the caller learns nothing more.
 * *why (if why is not NULL) gets a fixed, static reason for the audit log
 * ("malformed token", "unknown token", "wrong secret", "revoked token",
 * "expired token", "disabled account"); it never holds token text. The
 * status of a token (revoked, expired, disabled) is told only to a caller
 * who presented its secret. Other failures (the database) are their own
 * CC_E* code with *why "database error"; a server treats them as a refusal
 * too. */
int cc_accounts_authenticate(cc_accounts *a, const char *token, size_t len, int64_t now_unix,
                             struct cc_account *out, const char **why);

/* Every account, in id order. *accounts (free with free()) is NULL when
 * *n is 0. now_unix decides which tokens count as usable. */
int cc_accounts_list(cc_accounts *a, int64_t now_unix, struct cc_account_info **accounts,
                     size_t *n, char *errbuf, size_t errlen);

/* The account named name: 0 and *info filled, or CC_ENOTFOUND. */
int cc_accounts_find(cc_accounts *a, const char *name, int64_t now_unix,
                     struct cc_account_info *info, char *errbuf, size_t errlen);

/* Every token (account_name NULL) or those of one account (CC_ENOTFOUND if
 * there is no such account), in id order. *tokens (free with free()) is NULL
 * when *n is 0. */
int cc_accounts_token_list(cc_accounts *a, const char *account_name,
                           struct cc_token_info **tokens, size_t *n, char *errbuf,
                           size_t errlen);

/* Reads a token file written by `carecount token issue --out`: one token and
 * an optional line end. CC_EPERM if the file is readable or writable by group
 * or others (a token is a password), CC_EPARSE if it does not hold exactly a
 * token of the right form, CC_ENOTFOUND / CC_EACCESS / CC_EIO from the file
 * system. The caller wipes token after use. errbuf names the path and the
 * reason, never the content. */
int cc_token_file_read(const char *path, char token[CC_TOKEN_TEXT_BYTES], char *errbuf,
                       size_t errlen);

#endif
