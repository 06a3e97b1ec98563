/*
 * cmd_keygen.c: `carecount keygen --out PATH` (or the older `carecount
 * keygen PATH`), which creates the secret pseudonymisation key file (see
 * core/cc_pseudo.h). Like every command that writes a file (generate,
 * token issue), the file written is named with --out.
 *
 * The key must live outside the data directory: whoever holds both can
 * re-identify and link. So keygen refuses a path inside any directory that
 * looks like a carecount data directory (it, or a directory above it, holds
 * state.db), and never replaces an existing file.
 *
 * Must never: print the key or any part of it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_pseudo.h"

const char cc_cmd_keygen_summary[] = "create the secret pseudonymisation key file";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount keygen --out PATH\n"
            "       carecount keygen PATH\n"
            "\n"
            "Creates a new secret key file at PATH (mode 0600) for pseudonymising\n"
            "NHS numbers and postcodes. PATH must not exist, and must lie outside\n"
            "the carecount data directory: keep the key apart from the data.\n"
            "Without this key, data already ingested stays usable but nothing new\n"
            "can be linked to it.\n");
}

/* Returns 1 if directory (absolute and resolved) or any directory above it
 * holds a state.db. */
static int inside_data_directory(const char *directory)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", directory);
    for (;;) {
        char candidate[PATH_MAX + sizeof "/state.db"];
        struct stat st;
        snprintf(candidate, sizeof candidate, "%s/state.db", strcmp(dir, "/") ? dir : "");
        if (stat(candidate, &st) == 0)
            return 1;
        if (!strcmp(dir, "/"))
            return 0;
        char *slash = strrchr(dir, '/');
        if (slash == dir)
            dir[1] = '\0'; /* up to the root */
        else
            *slash = '\0';
    }
}

int cc_cmd_keygen(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    const char *path = NULL;
    if (argc == 3 && !strcmp(argv[1], "--out"))
        path = argv[2];
    else if (argc == 2 && argv[1][0] != '-')
        path = argv[1];
    if (!path || !*path) {
        fprintf(stderr, "carecount keygen: give the key file to create: carecount keygen --out "
                        "PATH (try --help)\n");
        return 2;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        fprintf(stderr, "carecount keygen: %s already exists; a key is never replaced\n", path);
        return 1;
    }

    /* Resolve the directory the key would be created in. */
    char *copy = strdup(path);
    if (!copy) {
        fprintf(stderr, "carecount keygen: out of memory\n");
        return 1;
    }
    char *slash = strrchr(copy, '/');
    const char *parent = ".";
    if (slash == copy) {
        parent = "/";
    } else if (slash) {
        *slash = '\0';
        parent = copy;
    }
    char resolved[PATH_MAX];
    if (!realpath(parent, resolved)) {
        fprintf(stderr, "carecount keygen: cannot use directory %s: %s\n", parent,
                strerror(errno));
        free(copy);
        return 1;
    }
    free(copy);
    if (inside_data_directory(resolved)) {
        fprintf(stderr,
                "carecount keygen: refusing to create the key inside a carecount data\n"
                "directory (a directory holding state.db): the key must live outside the\n"
                "data directory, so that the data alone cannot be re-identified.\n");
        return 1;
    }

    int rc = cc_pseudo_keygen(path);
    if (rc) {
        fprintf(stderr, "carecount keygen: cannot create %s: %s\n", path, cc_strerror(rc));
        return 1;
    }
    printf("created key file %s (mode 0600); keep it outside the data directory and back it up\n",
           path);
    return 0;
}
