/*
 * cc_error.c: messages and names for the CC_E* codes, generated from the
 * single table in cc_error.h.
 */
#include "cc_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *cc_strerror(int err)
{
    switch (err) {
    case CC_OK:
        return "success";
#define CC_ERROR_MSG_(name, msg)                                               \
    case CC_E##name:                                                           \
        return msg;
        CC_ERRNO_MAP(CC_ERROR_MSG_)
#undef CC_ERROR_MSG_
    default:
        return "unknown error";
    }
}

const char *cc_err_name(int err)
{
    switch (err) {
    case CC_OK:
        return "OK";
#define CC_ERROR_NAME_(name, msg)                                              \
    case CC_E##name:                                                           \
        return #name;
        CC_ERRNO_MAP(CC_ERROR_NAME_)
#undef CC_ERROR_NAME_
    default:
        return "UNKNOWN";
    }
}

int cc_error_from_errno(int errno_value)
{
    switch (errno_value) {
    case ENOENT:
    case ENOTDIR:
        return CC_ENOTFOUND;
    case EACCES:
    case EPERM:
        return CC_EACCESS;
    case ELOOP:
        return CC_ELOOP;
    case ENOMEM:
        return CC_ENOMEM;
    case EEXIST:
        return CC_EEXISTS;
    default:
        return CC_EIO;
    }
}

int cc_errorf(char *errbuf, size_t errlen, int rc, const char *fmt, ...)
{
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}
