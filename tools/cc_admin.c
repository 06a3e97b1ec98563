/*
 * cc_admin.c: arguments, the data directory and times for `carecount
 * account` and `carecount token` (see cc_admin.h).
 *
 * Must never: print an argument that is not an option's name or a
 * positional the operator typed as a name or an id.
 */
#include "cc_admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cc_datadir.h"
#include "cc_error.h"

int cc_admin_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
            return 1;
    return 0;
}

int cc_admin_parse(const char *command, int argc, char **argv,
                   const struct cc_admin_option *options, size_t n_options, const char **positional,
                   size_t max_positional, size_t *n_positional)
{
    *n_positional = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-') {
            if (*n_positional == max_positional) {
                fprintf(stderr, "carecount %s: unexpected argument '%s' (try --help)\n", command,
                        arg);
                return CC_ADMIN_EXIT_USAGE;
            }
            positional[(*n_positional)++] = arg;
            continue;
        }
        size_t k;
        for (k = 0; k < n_options; k++) {
            size_t len = strlen(options[k].name);
            if (!strcmp(arg, options[k].name)) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "carecount %s: %s needs a value\n", command, arg);
                    return CC_ADMIN_EXIT_USAGE;
                }
                *options[k].value = argv[++i];
                break;
            }
            if (!strncmp(arg, options[k].name, len) && arg[len] == '=') {
                *options[k].value = arg + len + 1;
                break;
            }
        }
        if (k == n_options) {
            const char *eq = strchr(arg, '=');
            fprintf(stderr, "carecount %s: unknown option %.*s (try --help)\n", command,
                    eq ? (int)(eq - arg) : (int)strlen(arg), arg);
            return CC_ADMIN_EXIT_USAGE;
        }
    }
    return 0;
}

int cc_admin_open(const char *command, const char *dir, cc_accounts **out)
{
    char errbuf[1024];
    struct stat st;
    *out = NULL;
    /* The accounts live in the data directory's state.db; making a
     * directory here would leave one without a key bound or a store, which
     * the server refuses to serve. */
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            fprintf(stderr, "carecount %s: %s: no such data directory; ingest first\n", command,
                    dir);
        else
            fprintf(stderr, "carecount %s: %s: %s\n", command, dir, strerror(errno));
        return CC_ADMIN_EXIT_FAILED;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "carecount %s: %s: not a directory; --data names the data directory\n",
                command, dir);
        return CC_ADMIN_EXIT_FAILED;
    }
    int rc = cc_datadir_check_permissions(dir, errbuf, sizeof errbuf);
    if (rc == 0)
        rc = cc_accounts_open(dir, out, errbuf, sizeof errbuf);
    if (rc) {
        fprintf(stderr, "carecount %s: %s\n", command, errbuf);
        return CC_ADMIN_EXIT_FAILED;
    }
    return 0;
}

void cc_admin_format_time(int64_t unix_s, char out[CC_ADMIN_TIME_BYTES])
{
    struct tm tm;
    time_t t = (time_t)unix_s;
    if (unix_s == 0 || !gmtime_r(&t, &tm) ||
        strftime(out, CC_ADMIN_TIME_BYTES, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(out, CC_ADMIN_TIME_BYTES, "-");
}
