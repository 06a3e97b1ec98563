/*
 * carecount.c: the carecount command line, client and operator tool.
 *
 * Dispatches `carecount SUBCOMMAND ...` to cc_cmd_SUBCOMMAND(). The table of
 * subcommands is generated at build time from the tools/cmd_*.c file names
 * (see CMakeLists.txt), so each subcommand lives in its own file.
 */
#include <stdio.h>
#include <string.h>

#include "cc_version.h"

#define CC_COMMAND(name)                                                       \
    int cc_cmd_##name(int argc, char **argv);                                  \
    extern const char cc_cmd_##name##_summary[];
#include "cc_commands.inc"
#undef CC_COMMAND

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
#define CC_COMMAND(name) {#name, cc_cmd_##name, cc_cmd_##name##_summary},
#include "cc_commands.inc"
#undef CC_COMMAND
    {NULL, NULL, NULL},
};

/* The groups of --help, by who runs the commands; a command no group
 * names is listed under the last. */
static const struct {
    const char *title;
    const char *const names[10];
} groups[] = {
    {"asking a server (researchers, planners)",
     {"count", "compare", "schema", "codelists", "check", "ping"}},
    {"running carecount (operators)",
     {"keygen", "ingest", "optout", "account", "token", "audit", "generate"}},
    {"by hand", {"stats"}},
};
#define N_GROUPS (sizeof groups / sizeof *groups)

static int group_of(const char *name)
{
    for (size_t g = 0; g < N_GROUPS; g++)
        for (size_t i = 0; groups[g].names[i]; i++)
            if (!strcmp(groups[g].names[i], name))
                return (int)g;
    return (int)N_GROUPS - 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount [--help] [--version] COMMAND [ARGS...]\n"
            "\n"
            "carecount answers questions about linked health and care records\n"
            "with aggregated, disclosure-controlled figures only.\n");
    for (size_t g = 0; g < N_GROUPS; g++) {
        fprintf(out, "\n%s:\n", groups[g].title);
        /* in the group's own order, then any command it does not name */
        for (size_t i = 0; groups[g].names[i]; i++)
            for (const struct command *c = commands; c->name; c++)
                if (!strcmp(c->name, groups[g].names[i]))
                    fprintf(out, "  %-12s %s\n", c->name, c->summary);
        for (const struct command *c = commands; c->name; c++) {
            int named = 0;
            for (size_t i = 0; groups[g].names[i]; i++)
                named |= !strcmp(c->name, groups[g].names[i]);
            if (!named && group_of(c->name) == (int)g)
                fprintf(out, "  %-12s %s\n", c->name, c->summary);
        }
    }
    fprintf(out, "\nRun `carecount COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("carecount %s\n", CC_VERSION_STRING);
        return 0;
    }
    for (const struct command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name))
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "carecount: unknown command '%s' (try --help)\n", argv[1]);
    return 2;
}
