/*
 * cc_remote.h: what the commands that ask a server share (`carecount
 * count`, `carecount compare`): the connection flags, connecting and
 * saying hello with a token read from a file or the environment, and printing a release or a comparison as an
 * aligned table (with a legend of what disclosure control did) or CSV.
 *
 * Exit statuses of these commands (CC_REMOTE_EXIT_*): 0 the answer was
 * printed; 1 the server could not be reached or failed; 2 a usage error or
 * an input file that does not decode; 3 the server refused (the disclosure
 * policy, the account's role, or the token).
 *
 * Must never: take a token from the command line, or print one.
 */
#ifndef CC_REMOTE_H
#define CC_REMOTE_H

#include <stdbool.h>
#include <stdio.h>

#include <msgpack.h>

#include "cc_client.h"
#include "cc_compare.h"
#include "cc_queryflags.h"

#define CC_REMOTE_EXIT_OK 0
#define CC_REMOTE_EXIT_FAILED 1
#define CC_REMOTE_EXIT_USAGE 2
#define CC_REMOTE_EXIT_REFUSED 3

enum cc_remote_format { CC_REMOTE_TABLE, CC_REMOTE_CSV, CC_REMOTE_JSON };

struct cc_remote_options {
    const char *host;       /* 127.0.0.1 */
    unsigned long port;     /* 7433 */
    const char *port_env;   /* $CARECOUNT_PORT, checked by cc_remote_parse_args() */
    unsigned long timeout_ms;
    const char *token_file; /* NULL: CARECOUNT_TOKEN_FILE or CARECOUNT_TOKEN */
    enum cc_remote_format format;
    /* TLS: on with --tls, a ca-file, or the config file's tls = yes; the
     * server's certificate is checked against ca_file (NULL: the system's
     * CA store) and the host, always */
    bool tls;
    const char *ca_file; /* --ca-file, else $CARECOUNT_CA_FILE, else the config's ca-file */
};

/* The defaults: host $CARECOUNT_HOST else 127.0.0.1, port $CARECOUNT_PORT
 * else 7433, the token as cc_client_read_token() finds it, TLS with the CA
 * file $CARECOUNT_CA_FILE if set; the config file under all of them. */
void cc_remote_defaults(struct cc_remote_options *options);

/* The usage lines of the flags below. */
extern const char cc_remote_flags_usage[];

/* If argv[i] is one of the shared flags (--host, --port, --timeout-ms,
 * --token-file, --format, --tls, --ca-file), takes it and its value:
 * returns how many arguments it used (1 or 2); 0 if argv[i] is not one of
 * them; -1 for a bad value (after printing why). */
int cc_remote_take_flag(struct cc_remote_options *options, int argc, char **argv, int i,
                        const char *command);

/* Parses a command's arguments: -h/--help (prints usage to stdout: exit
 * 0), the shared flags above, when flags is not NULL the query flags
 * (cc_queryflags.h), and, when path is not NULL, one file argument, a
 * `what` file ("query", "request"), into *path: required unless query
 * flags were given, and refused beside them. Returns -1 to go on, or the
 * exit status to return at once (after printing why). */
int cc_remote_parse_args(struct cc_remote_options *options, int argc, char **argv,
                         const char *command, void (*usage)(FILE *out), const char *what,
                         const char **path, struct cc_queryflags *flags);

/* Connects (with TLS if options ask for it: a certificate the client does
 * not trust stops it here) and says hello. Returns 0, or the exit status to
 * return (after printing why, prefixed with "carecount COMMAND"). */
int cc_remote_open(const struct cc_remote_options *options, const char *command,
                   struct cc_client **out);

/* Reads the file at path ("-": standard input), at most limit + 1 bytes
 * (so that a decoder sees a longer input as too long), into a malloc'd
 * buffer. 0, CC_EIO (errno says why) or CC_ENOMEM. */
int cc_remote_read_input(const char *path, size_t limit, char **out, size_t *out_len);

/* Whether an input file is JSON (its first byte that is not white space
 * is '{'); otherwise it is taken as msgpack (`carecount check --msgpack`
 * writes that form). */
bool cc_remote_input_is_json(const char *text, size_t len);

/* Exit status for an error reply code. */
int cc_remote_exit_for(const char *error_code);

/* Prints a reply field as one line of compact JSON (--format json). 0, or
 * -1 after printing why. */
int cc_remote_print_json(FILE *out, const msgpack_object *value);

/* Sends op with no fields and returns its reply (after printing why it
 * failed, with the exit status in *status, when it returns -1). */
int cc_remote_call_simple(struct cc_client *client, const char *command, const char *op,
                          struct cc_reply *reply, int *status);

/* Prints a release map (the "release" field of a count reply). */
void cc_remote_print_release(FILE *out, const msgpack_object *release,
                             enum cc_remote_format format);

/* Prints a comparison map (the "comparison" field of a compare reply). */
void cc_remote_print_comparison(FILE *out, const msgpack_object *comparison,
                                enum cc_remote_format format);

#endif
