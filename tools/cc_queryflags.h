/*
 * cc_queryflags.h: a query or a comparison written as command-line flags
 * (`carecount count --by region,sex --code icd10:E11 --from 2023-01`),
 * turned into the JSON map of docs/query-model.md or docs/comparisons.md.
 * The map is then decoded and validated by the same codec as a file, so
 * the flags can ask nothing a file cannot, and `--print-query` prints the
 * file that asks the same question (for reproducible research).
 *
 * The flags (cc_queryflags_usage lists them with their syntax):
 *   query:      --measure, --events, --population, --by, --margins,
 *               --code, --codelist, --without-code, --without-codelist,
 *               --setting, --from, --to, --age, --sex, --area, --practice,
 *               --as-of
 *   comparison: --level, --comparator, --method, --per, --standardise,
 *               --denominator, --numerator (a condition, as --code or
 *               --codelist)
 *
 * An error names the flag to change (cc_queryflags_explain()).
 */
#ifndef CC_QUERYFLAGS_H
#define CC_QUERYFLAGS_H

#include <stdbool.h>
#include <stddef.h>

#define CC_QUERYFLAGS_MAX_CONDITIONS 16

struct cc_queryflags {
    bool comparison;   /* accept the comparison flags (carecount compare) */
    bool given;        /* any query or comparison flag was taken */
    bool print;        /* --print-query */
    /* What was given, as the user wrote it (pointers into argv). */
    const char *measure, *population, *by, *setting, *from, *to, *age, *sex, *area,
        *practice, *as_of;
    bool margins, events;
    int n_conditions;
    struct {
        const char *flag;  /* "--code", "--codelist", "--without-code", ... */
        const char *value;
    } conditions[CC_QUERYFLAGS_MAX_CONDITIONS];
    const char *level, *comparator, *method, *per, *standardise, *denominator;
};

/* The usage lines of the query flags (and, for a comparison, its flags). */
extern const char cc_queryflags_usage[];
extern const char cc_queryflags_compare_usage[];

void cc_queryflags_init(struct cc_queryflags *flags, bool comparison);

/* If argv[i] is one of the flags, takes it (and its value): returns how
 * many arguments it used (1 or 2); 0 if it is not one of them; -1 after
 * printing why the value is wrong ("carecount COMMAND: ..."). */
int cc_queryflags_take(struct cc_queryflags *flags, int argc, char **argv, int i,
                       const char *command);

/* Writes the JSON map the flags describe: a query, or for a comparison the
 * comparison request (the query flags then describe its numerator), as a
 * malloc'd string. 0, or -1 after writing why into errbuf (naming the
 * flag). */
int cc_queryflags_json(const struct cc_queryflags *flags, char **out, char *errbuf,
                       size_t errlen);

/* Rewrites a decoder error about the map built by cc_queryflags_json()
 * ("filters.conditions[1].codes[0]: ...") to name the flag that gave the
 * field ("--code icd10:E1x: ..."), into out. */
void cc_queryflags_explain(const struct cc_queryflags *flags, const char *error, char *out,
                           size_t outlen);

/* Prints an error about the query or comparison to standard error as
 * "carecount COMMAND: ...": naming the flag (cc_queryflags_explain()) when
 * it came from flags, else prefixed with the file it came from. */
void cc_queryflags_report(const struct cc_queryflags *flags, const char *command,
                          const char *path, const char *error);

#endif
