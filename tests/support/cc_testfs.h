/*
 * cc_testfs.h: files and directories for tests: a fresh temporary
 * directory, removing a tree, writing and reading a whole file.
 *
 * Every function asserts (Criterion) instead of returning an error, so a
 * test reads as its steps; use them only from tests.
 *
 * Must never: remove anything outside the directory it is given (symbolic
 * links are removed, not followed).
 */
#ifndef CC_TESTFS_H
#define CC_TESTFS_H

#include <stddef.h>
#include <sys/types.h>

/* Makes a fresh directory /tmp/cc_test_TAG_XXXXXX (mode 0700) and writes
 * its path into out (at least 64 bytes). */
void cc_testfs_make_dir(char *out, size_t out_bytes, const char *tag);

/* The same, as a malloc'd string the caller frees. */
char *cc_testfs_new_dir(const char *tag);

/* Removes dir and everything under it; a missing dir is not an error. */
void cc_testfs_remove_tree(const char *dir);

/* Writes dir/name into out. */
void cc_testfs_path(char *out, size_t out_bytes, const char *dir, const char *name);

/* Creates or replaces path with len bytes of data and sets its mode. */
void cc_testfs_write(const char *path, const void *data, size_t len, mode_t mode);

/* Creates or replaces path with the NUL-terminated text (mode 0644). */
void cc_testfs_write_text(const char *path, const char *text);

/* The same for the file name in dir. */
void cc_testfs_write_text_in(const char *dir, const char *name, const char *text);

/* Reads the whole of path into a malloc'd buffer (NUL-terminated, the
 * terminator not counted in *len); the caller frees. */
char *cc_testfs_read(const char *path, size_t *len);

#endif
