/*
 * cc_testtool.c: runs the carecount program for tests (see cc_testtool.h).
 *
 * Must never: leave its temporary input file behind.
 */
#include "cc_testtool.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_harness.h"

int cc_testtool_run(const char *args, const char *stdin_text, char *out, size_t out_bytes)
{
    char tool[1024], input[] = "/tmp/cc_test_tool_input_XXXXXX";
    cc_harness_tool_path(tool, sizeof tool);
    int fd = mkstemp(input);
    cr_assert_geq(fd, 0);
    size_t len = stdin_text ? strlen(stdin_text) : 0;
    cr_assert_eq(write(fd, stdin_text ? stdin_text : "", len), (ssize_t)len);
    close(fd);

    size_t command_bytes = strlen(tool) + strlen(args) + strlen(input) + 32;
    char *command = malloc(command_bytes);
    cr_assert_not_null(command);
    snprintf(command, command_bytes, "'%s' %s < '%s' %s", tool, args, input,
             out ? "2>&1" : ">/dev/null 2>&1");
    FILE *pipe = popen(command, "r");
    cr_assert_not_null(pipe);
    char discard[4096];
    size_t used = 0;
    for (;;) {
        char *into = out && used + 1 < out_bytes ? out + used : discard;
        size_t room = out && used + 1 < out_bytes ? out_bytes - 1 - used : sizeof discard;
        size_t n = fread(into, 1, room, pipe);
        if (n == 0)
            break;
        if (into != discard)
            used += n;
    }
    if (out && out_bytes > 0)
        out[used] = '\0';
    int status = pclose(pipe);
    unlink(input);
    free(command);
    cr_assert_neq(status, -1);
    cr_assert(WIFEXITED(status), "carecount %s: killed by signal %d", args,
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}
