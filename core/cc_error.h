/*
 * cc_error.h: the one table of carecount's error codes.
 *
 * Every function that can fail returns 0 or a negative CC_E* code. The codes,
 * their names (used verbatim as the protocol's error names) and their
 * messages come from the single X-macro table below, so a code and its text
 * cannot drift apart. Add new codes at the end only: the numbers are part of
 * the wire protocol.
 */
#ifndef CC_ERROR_H
#define CC_ERROR_H

#include <stddef.h>

#define CC_ERRNO_MAP(X)                                                        \
    X(NOMEM, "out of memory")                                                  \
    X(INVAL, "invalid argument")                                               \
    X(IO, "input/output error")                                                \
    X(CORRUPT, "stored data is corrupt or truncated")                          \
    X(NOTFOUND, "not found")                                                   \
    X(EXISTS, "already exists")                                                \
    X(PERM, "file permissions are too open")                                   \
    X(RANGE, "value out of range")                                             \
    X(PARSE, "malformed input")                                                \
    X(DB, "database error")                                                    \
    X(TOOBIG, "input exceeds a configured limit")                              \
    X(UNSUPPORTED, "unsupported operation or version")                         \
    X(REFUSED, "refused by the disclosure policy")                             \
    X(CRYPTO, "cryptographic library failure")                                 \
    X(AUTH, "authentication failed")                                           \
    X(DENIED, "not permitted for this role")                                   \
    X(BUSY, "server busy, try again later")                                    \
    X(TIMEDOUT, "timed out")                                                   \
    X(STATS, "statistical computation failed")                                 \
    X(INTERNAL, "internal error")                                              \
    X(ACCESS, "permission denied")                                             \
    X(LOOP, "too many levels of symbolic links")                               \
    X(LOCKED, "the data directory is in use by another writer")                \
    X(WRONGKEY, "the key does not match the data directory's key")             \
    X(WEAKKEY, "key refused: all zero bytes, or a file in the data directory") \
    X(CONNREFUSED, "connection refused (is the server running on that port?)")

enum cc_error {
    CC_OK = 0,
#define CC_ERROR_ENUM_(name, msg) CC_E##name,
    CC_E_FIRST_ = -1000,
    CC_ERRNO_MAP(CC_ERROR_ENUM_)
#undef CC_ERROR_ENUM_
    CC_E_LAST_
};

/* Returns a static, human-readable message for a code (never NULL). */
const char *cc_strerror(int err);

/* The CC_E* code for an errno value from a failed file operation: ENOENT
 * is CC_ENOTFOUND, EACCES and EPERM CC_EACCESS, ELOOP CC_ELOOP, ENOMEM
 * CC_ENOMEM, EEXIST CC_EEXISTS, and anything else CC_EIO. */
int cc_error_from_errno(int errno_value);

/* Returns the code's name without the CC_E prefix ("NOMEM"), as used in the
 * protocol; "OK" for 0 and "UNKNOWN" for anything not in the table. */
const char *cc_err_name(int err);

/* Writes a message into errbuf (if errbuf and errlen are set; truncated to
 * fit, always terminated) and returns rc: the one way a function fails with
 * a reason, `return cc_errorf(errbuf, errlen, CC_EINVAL, "...", ...)`. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
int cc_errorf(char *errbuf, size_t errlen, int rc, const char *fmt, ...);

#endif
