/*
 * cc_admin.h: what the operator's administration commands share
 * (`carecount account`, `carecount token`): reading their arguments,
 * opening a data directory's accounts (core/cc_account.h) with the
 * directory's guards checked, and writing times in their tables.
 *
 * These commands run on the server's machine, as the user that owns the
 * data directory, and open state.db directly; a running carecountd sees
 * their changes at its next authentication (SQLite's WAL).
 *
 * Exit statuses: 0 done (or nothing to change), 1 refused or failed, 2 a
 * usage error.
 *
 * Must never: take a token from the command line, or print one (except
 * `token issue`, once).
 */
#ifndef CC_ADMIN_H
#define CC_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "cc_account.h"

#define CC_ADMIN_EXIT_OK     0
#define CC_ADMIN_EXIT_FAILED 1
#define CC_ADMIN_EXIT_USAGE  2

/* An option that takes a value: "--name VALUE" or "--name=VALUE". */
struct cc_admin_option {
    const char *name;
    const char **value; /* set to the value; NULL until given */
};

/* Reads argv[1..argc) of `carecount COMMAND`: each option of options[0..n)
 * into its slot (given twice: the last wins), every other argument not
 * beginning with '-' into positional[0..max_positional). Returns 0 with the
 * count in *n_positional, or CC_ADMIN_EXIT_USAGE after printing why. */
int cc_admin_parse(const char *command, int argc, char **argv,
                   const struct cc_admin_option *options, size_t n_options, const char **positional,
                   size_t max_positional, size_t *n_positional);

/* 1 if argv holds -h or --help. */
int cc_admin_wants_help(int argc, char **argv);

/* Opens the accounts of data directory dir for `carecount COMMAND`: dir
 * must exist (a data directory is made by an ingest) and pass
 * cc_datadir_check_permissions. Returns 0 with *out set (close with
 * cc_accounts_close), or CC_ADMIN_EXIT_FAILED after printing why. */
int cc_admin_open(const char *command, const char *dir, cc_accounts **out);

/* unix_s as "YYYY-MM-DD HH:MM" (UTC), or "-" for 0. */
#define CC_ADMIN_TIME_BYTES 32
void cc_admin_format_time(int64_t unix_s, char out[CC_ADMIN_TIME_BYTES]);

#endif
