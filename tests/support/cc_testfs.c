/*
 * cc_testfs.c: files and directories for tests (see cc_testfs.h).
 *
 * Must never: follow a symbolic link while removing a tree.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "cc_testfs.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cc_testfs_make_dir(char *out, size_t out_bytes, const char *tag)
{
    int n = snprintf(out, out_bytes, "/tmp/cc_test_%s_XXXXXX", tag);
    cr_assert(n > 0 && (size_t)n < out_bytes, "temporary directory name too long");
    cr_assert_not_null(mkdtemp(out), "mkdtemp: %s", strerror(errno));
}

char *cc_testfs_new_dir(const char *tag)
{
    size_t bytes = strlen(tag) + 32;
    char *dir = malloc(bytes);
    cr_assert_not_null(dir);
    cc_testfs_make_dir(dir, bytes, tag);
    return dir;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void cc_testfs_remove_tree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0) {
        cr_assert_eq(errno, ENOENT, "cannot remove %s: %s", dir, strerror(errno));
        return;
    }
    /* A test may have made part of its tree read-only; restore it first. */
    if (S_ISDIR(st.st_mode))
        chmod(dir, 0700);
    cr_assert_eq(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0, "cannot remove %s: %s", dir,
                 strerror(errno));
}

void cc_testfs_path(char *out, size_t out_bytes, const char *dir, const char *name)
{
    int n = snprintf(out, out_bytes, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < out_bytes, "path too long: %s/%s", dir, name);
}

void cc_testfs_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    cr_assert_geq(fd, 0, "cannot write %s: %s", path, strerror(errno));
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        cr_assert_gt(n, 0, "cannot write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    cr_assert_eq(fchmod(fd, mode), 0);
    cr_assert_eq(close(fd), 0);
}

void cc_testfs_write_text(const char *path, const char *text)
{
    cc_testfs_write(path, text, strlen(text), 0644);
}

void cc_testfs_write_text_in(const char *dir, const char *name, const char *text)
{
    char path[4096];
    cc_testfs_path(path, sizeof path, dir, name);
    cc_testfs_write_text(path, text);
}

char *cc_testfs_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_geq(size, 0);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *data = malloc((size_t)size + 1);
    cr_assert_not_null(data);
    cr_assert_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    data[size] = '\0';
    if (len)
        *len = (size_t)size;
    return data;
}
