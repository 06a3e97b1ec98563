/*
 * cc_testtool.h: runs the carecount program built with the tests, as a
 * user would, and collects what it printed.
 *
 * The program is $CC_BIN_DIR/carecount (else the CC_BIN_DIR the test was
 * compiled with). Asserts (Criterion) on anything that stops it running.
 *
 * Must never: pass test input through the shell's parsing (standard input
 * goes through a temporary file, removed afterwards).
 */
#ifndef CC_TESTTOOL_H
#define CC_TESTTOOL_H

#include <stddef.h>

/* Runs `carecount ARGS` through the shell with stdin_text (NULL: nothing)
 * on its standard input. Its standard output followed by its standard
 * error (2>&1) goes into out (NUL-terminated, truncated to out_bytes - 1);
 * out may be NULL to discard it. Returns its exit status; a program
 * killed by a signal fails the test. */
int cc_testtool_run(const char *args, const char *stdin_text, char *out, size_t out_bytes);

#endif
