/*
 * The boundary of disclosure control, checked on the built objects: no
 * object of server/ or tools/ references the engine's entry point or the
 * raw result (cc_exec_run, cc_raw_result_*), so no code path that answers
 * a client can obtain an exact count; figures reach them only through
 * cc_release.h. The check reads the undefined symbols of every object with
 * nm, and first shows it can see such a reference (the release layer's own
 * object does reference cc_exec_run).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *bin_dir(void)
{
    const char *dir = getenv("CC_BIN_DIR");
    return dir && *dir ? dir : CC_BIN_DIR;
}

static const char *const forbidden[] = {"cc_exec_run", "cc_raw_result_free",
                                        "cc_raw_result_label", "cc_raw_result_coordinate"};

/* Runs nm -A -u over what `find_args` finds in the build tree; counts the
 * objects seen and the lines naming a forbidden symbol (printed). */
static void scan(const char *find_args, unsigned *n_objects, unsigned *n_references)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && find %s -print0 | xargs -0 -r nm -A -u 2>/dev/null",
             bin_dir(), find_args);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run nm");
    char line[1024], last_object[1024] = "";
    *n_objects = *n_references = 0;
    while (fgets(line, sizeof line, p)) {
        char *colon = strrchr(line, ':');
        if (!colon)
            continue;
        size_t len = (size_t)(colon - line);
        if (len < sizeof last_object && strncmp(line, last_object, len) != 0) {
            memcpy(last_object, line, len);
            last_object[len] = 0;
            ++*n_objects;
        }
        for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++) {
            const char *hit = strstr(colon, forbidden[i]);
            size_t n = strlen(forbidden[i]);
            if (hit && (hit[n] == '\n' || hit[n] == 0 || hit[n] == ' ')) {
                fprintf(stderr, "reference: %s", line);
                ++*n_references;
            }
        }
    }
    pclose(p);
}

Test(release_boundary, the_check_sees_the_release_layers_own_reference)
{
    unsigned objects, references;
    scan("CMakeFiles/cc_queries.dir -name 'cc_release.c.o'", &objects, &references);
    cr_assert_eq(objects, 1, "the release layer's object was not found in %s", bin_dir());
    cr_assert_geq(references, 1, "nm does not show cc_release.c.o calling cc_exec_run");
}

Test(release_boundary, no_server_object_references_the_engine)
{
    unsigned objects, references;
    scan("CMakeFiles/cc_server.dir CMakeFiles/carecountd.dir -name '*.o'", &objects, &references);
    cr_assert_geq(objects, 10, "only %u server objects found", objects);
    cr_assert_eq(references, 0, "%u references to the engine from server/", references);
}

Test(release_boundary, no_tool_object_references_the_engine)
{
    unsigned objects, references;
    scan("CMakeFiles/carecount.dir -name '*.o'", &objects, &references);
    cr_assert_geq(objects, 5, "only %u tool objects found", objects);
    cr_assert_eq(references, 0, "%u references to the engine from tools/", references);
}
