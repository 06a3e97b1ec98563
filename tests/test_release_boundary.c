/*
 * The boundary of disclosure control, checked on the built objects: no
 * object of server/ or tools/ references an entry point that returns or
 * reads exact counts: the engine (cc_exec_run and every other cc_exec_*
 * symbol), the raw result (cc_raw_result_*), the raw comparison
 * (cc_compare_run, cc_compare_raw_free, the exact counts' cc_compare_counts_*
 * and the statistics on them, cc_compare_finish_counts) and the release
 * layer's internal steps that take a raw result or raw comparison
 * (cc_release_compare, cc_release_check, cc_release_ledger_admit,
 * cc_release_fixed_secondary). So no code path that answers a client can
 * obtain an exact count; figures reach them only through cc_release.h. The
 * headers that declare these are internal to queries/ (internal/cc_exec.h,
 * cc_compare_internal.h, cc_release_internal.h), which the test
 * engine_header_unreachable proves for the engine's; this test covers what
 * a header cannot: a hand-written declaration, or a header moved back.
 *
 * The check reads the undefined symbols of every object with nm. It first
 * shows that it can fail: every name it looks for is defined by the queries
 * layer's objects (a renamed function would otherwise drop out of the check
 * unnoticed), and nm shows the release layer's own objects referencing the
 * engine and the raw comparison; and each scan must find the objects it
 * reads, so a wrong path in the build tree cannot pass by finding nothing.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *bin_dir(void)
{
    const char *dir = getenv("CC_BIN_DIR");
    return dir && *dir ? dir : CC_BIN_DIR;
}

/* Symbols no server or tool object may reference, by exact name. */
static const char *const forbidden_names[] = {
    "cc_exec_run",
    "cc_raw_result_free",
    "cc_raw_result_label",
    "cc_raw_result_coordinate",
    "cc_raw_result_is_margin",
    "cc_compare_run",
    "cc_compare_raw_free",
    "cc_compare_counts_new",
    "cc_compare_counts_copy",
    "cc_compare_counts_free",
    "cc_compare_finish_counts",
    "cc_release_compare",
    "cc_release_check",
    "cc_release_ledger_admit",
    "cc_release_fixed_secondary",
};
#define N_NAMES (sizeof forbidden_names / sizeof *forbidden_names)

/* ... and by prefix: the engine's files and the raw result, whatever they
 * add (cc_exec_options is a struct, not a symbol). */
static const char *const forbidden_prefixes[] = {"cc_exec_", "cc_raw_result_"};
#define N_PREFIXES (sizeof forbidden_prefixes / sizeof *forbidden_prefixes)

struct scan {
    unsigned n_objects;          /* distinct objects nm printed a symbol of */
    unsigned n_references;       /* symbols that are forbidden */
    unsigned name_hits[N_NAMES]; /* per forbidden name */
    unsigned prefix_hits[N_PREFIXES];
};

/* Runs `nm -A nm_flags` over what `find_args` finds in the build tree and
 * counts, per forbidden name and prefix, the symbols that match (printed
 * with their object when print is set). */
static void scan(const char *find_args, const char *nm_flags, bool print, struct scan *s)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && find %s -print0 | xargs -0 -r nm -A %s 2>/dev/null",
             bin_dir(), find_args, nm_flags);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run nm");
    char line[1024], last_object[1024] = "";
    memset(s, 0, sizeof *s);
    while (fgets(line, sizeof line, p)) {
        char *colon = strrchr(line, ':');
        if (!colon)
            continue;
        size_t len = (size_t)(colon - line);
        if (len < sizeof last_object &&
            (strncmp(line, last_object, len) != 0 || last_object[len] != 0)) {
            memcpy(last_object, line, len);
            last_object[len] = 0;
            ++s->n_objects;
        }
        /* the symbol is the line's last word: "obj.o:   U name",
         * "obj.o:0000000000000000 T name" */
        line[strcspn(line, "\n")] = 0;
        const char *symbol = strrchr(colon, ' ');
        symbol = symbol ? symbol + 1 : colon + 1;
        bool hit = false;
        for (size_t i = 0; i < N_NAMES; i++)
            if (!strcmp(symbol, forbidden_names[i])) {
                s->name_hits[i]++;
                hit = true;
            }
        for (size_t i = 0; i < N_PREFIXES; i++)
            if (!strncmp(symbol, forbidden_prefixes[i], strlen(forbidden_prefixes[i]))) {
                s->prefix_hits[i]++;
                hit = true;
            }
        if (hit) {
            ++s->n_references;
            if (print)
                fprintf(stderr, "reference: %s\n", line);
        }
    }
    pclose(p);
}

/* The hits of one forbidden name in a scan. */
static unsigned hits(const struct scan *s, const char *name)
{
    for (size_t i = 0; i < N_NAMES; i++)
        if (!strcmp(forbidden_names[i], name))
            return s->name_hits[i];
    cr_assert_fail("%s is not a forbidden name", name);
    return 0;
}

Test(release_boundary, every_name_the_check_looks_for_is_defined_by_the_queries_layer)
{
    struct scan s;
    scan("CMakeFiles/cc_queries.dir -name '*.o'", "--defined-only", false, &s);
    cr_assert_geq(s.n_objects, 20, "only %u queries objects found in %s", s.n_objects, bin_dir());
    for (size_t i = 0; i < N_NAMES; i++)
        cr_expect_eq(s.name_hits[i], 1, "%s is defined %u times in the queries layer (renamed?)",
                     forbidden_names[i], s.name_hits[i]);
    for (size_t i = 0; i < N_PREFIXES; i++)
        cr_expect_geq(s.prefix_hits[i], 1, "no symbol of the queries layer starts with %s",
                      forbidden_prefixes[i]);
}

Test(release_boundary, the_check_sees_the_release_layers_own_references)
{
    struct scan s;
    scan("CMakeFiles/cc_queries.dir -name 'cc_release.c.o'", "-u", false, &s);
    cr_assert_eq(s.n_objects, 1, "the release layer's object was not found in %s", bin_dir());
    cr_assert_geq(hits(&s, "cc_exec_run"), 1,
                  "nm does not show cc_release.c.o calling cc_exec_run");
    scan("CMakeFiles/cc_queries.dir -name 'cc_release_comparison.c.o'", "-u", false, &s);
    cr_assert_eq(s.n_objects, 1, "cc_release_comparison.c.o was not found in %s", bin_dir());
    cr_assert_geq(hits(&s, "cc_compare_run"), 1,
                  "nm does not show cc_release_comparison.c.o calling cc_compare_run");
    cr_assert_geq(hits(&s, "cc_release_compare"), 1,
                  "nm does not show cc_release_comparison.c.o calling cc_release_compare");
}

Test(release_boundary, no_server_object_references_the_engine)
{
    struct scan s;
    scan("CMakeFiles/cc_server.dir CMakeFiles/carecountd.dir -name '*.o'", "-u", true, &s);
    cr_assert_geq(s.n_objects, 10, "only %u server objects found", s.n_objects);
    cr_assert_eq(s.n_references, 0, "%u references to the engine from server/", s.n_references);
}

Test(release_boundary, no_tool_object_references_the_engine)
{
    struct scan s;
    scan("CMakeFiles/carecount.dir -name '*.o'", "-u", true, &s);
    cr_assert_geq(s.n_objects, 5, "only %u tool objects found", s.n_objects);
    cr_assert_eq(s.n_references, 0, "%u references to the engine from tools/", s.n_references);
}
