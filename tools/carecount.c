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

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount [--help] [--version] COMMAND [ARGS...]\n"
            "\n"
            "carecount answers questions about linked health and care records\n"
            "with aggregated, disclosure-controlled figures only.\n"
            "\n"
            "commands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
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
