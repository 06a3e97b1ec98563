/*
 * cc_gen_truth.c: linkage measured against the generator's ground truth
 * (see cc_gen.h, cc_gen_linkage_score).
 *
 * Reads the truth (feed,line,person,nhs_number,postcode) into arrays per
 * feed indexed by line, then the ingest's trace (feed,line,outcome,person),
 * decides which internal person is each true person's from the stage-1
 * rows, and counts. Both files hold only indices and categories, so nothing
 * here ever sees an identifier.
 *
 * Must never: print a row's content (errors name the file and the line).
 */
#include "cc_gen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"

#define N_FEEDS 4
#define NONE (-1)

static const char *const feed_names[N_FEEDS] = {
    "gp_registrations.csv", "gp_events.csv", "hes_apc.csv", "community_contacts.csv"};

enum { NHS_VALID, NHS_INVALID, NHS_MISSING };
enum { POSTCODE_NONE, POSTCODE_CURRENT, POSTCODE_OLD };
enum { OUT_UNTRACED, OUT_STAGE1, OUT_STAGE2, OUT_NO_MATCH, OUT_AMBIGUOUS };

/* One feed's rows, indexed by line (lines 0 and 1 unused). */
struct feed_rows {
    int64_t *person;     /* true person, NONE: no such line */
    uint8_t *nhs, *postcode, *outcome;
    int64_t *linked;     /* internal person, NONE: unlinked */
    uint64_t n_lines, cap;
};

struct scoring {
    struct feed_rows feeds[N_FEEDS];
    int64_t n_persons;   /* true persons: 1 + the largest index */
    int64_t n_internal;  /* internal persons: 1 + the largest index */
    char *errbuf;
    size_t errlen;
};

static int feed_index(const char *name)
{
    for (int f = 0; f < N_FEEDS; f++)
        if (!strcmp(name, feed_names[f]))
            return f;
    return -1;
}

static int grow(struct feed_rows *r, uint64_t line)
{
    if (line < r->cap)
        return 0;
    uint64_t cap = r->cap ? r->cap : 1 << 16;
    while (cap <= line)
        cap *= 2;
    int64_t *person = realloc(r->person, cap * sizeof *person);
    if (!person)
        return CC_ENOMEM;
    r->person = person;
    int64_t *linked = realloc(r->linked, cap * sizeof *linked);
    if (!linked)
        return CC_ENOMEM;
    r->linked = linked;
    uint8_t **bytes[] = {&r->nhs, &r->postcode, &r->outcome};
    for (size_t i = 0; i < 3; i++) {
        uint8_t *grown = realloc(*bytes[i], cap);
        if (!grown)
            return CC_ENOMEM;
        *bytes[i] = grown;
    }
    for (uint64_t i = r->cap; i < cap; i++) {
        r->person[i] = NONE;
        r->linked[i] = NONE;
        r->nhs[i] = r->postcode[i] = r->outcome[i] = 0;
    }
    r->cap = cap;
    return 0;
}

/* Splits a line of n comma-separated fields in place. */
static int split(char *line, char **fields, int n)
{
    line[strcspn(line, "\r\n")] = '\0';
    for (int i = 0; i < n; i++) {
        fields[i] = line;
        char *comma = strchr(line, ',');
        if (i < n - 1) {
            if (!comma)
                return -1;
            *comma = '\0';
            line = comma + 1;
        } else if (comma) {
            return -1;
        }
    }
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || *s == '-')
        return -1;
    *out = v;
    return 0;
}

static int which(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static int bad_line(struct scoring *sc, const char *path, uint64_t number)
{
    snprintf(sc->errbuf, sc->errlen, "%s: line %llu is not as expected", path,
             (unsigned long long)number);
    return CC_EPARSE;
}

static int read_truth(struct scoring *sc, const char *path)
{
    static const char *const nhs[] = {"valid", "invalid", "missing"};
    static const char *const postcode[] = {"none", "current", "old"};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(sc->errbuf, sc->errlen, "%s: %s", path, strerror(errno));
        return CC_EIO;
    }
    char line[256], *fields[5];
    uint64_t number = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        if (++number == 1) {
            if (strcmp(line, CC_GEN_TRUTH_HEADER))
                rc = bad_line(sc, path, number);
            continue;
        }
        uint64_t at, person;
        int feed, n, p;
        if (split(line, fields, 5) || (feed = feed_index(fields[0])) < 0 ||
            parse_u64(fields[1], &at) || at < 2 || parse_u64(fields[2], &person) ||
            (n = which(fields[3], nhs, 3)) < 0 || (p = which(fields[4], postcode, 3)) < 0) {
            rc = bad_line(sc, path, number);
            break;
        }
        struct feed_rows *r = &sc->feeds[feed];
        if ((rc = grow(r, at)))
            break;
        r->person[at] = (int64_t)person;
        r->nhs[at] = (uint8_t)n;
        r->postcode[at] = (uint8_t)p;
        if (at >= r->n_lines)
            r->n_lines = at + 1;
        if ((int64_t)person >= sc->n_persons)
            sc->n_persons = (int64_t)person + 1;
    }
    if (!rc && ferror(f)) {
        snprintf(sc->errbuf, sc->errlen, "%s: read error", path);
        rc = CC_EIO;
    }
    fclose(f);
    return rc;
}

static int read_trace(struct scoring *sc, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(sc->errbuf, sc->errlen, "%s: %s", path, strerror(errno));
        return CC_EIO;
    }
    char line[256], *fields[4];
    uint64_t number = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        if (++number == 1) {
            if (strcmp(line, "feed,line,outcome,person\n"))
                rc = bad_line(sc, path, number);
            continue;
        }
        uint64_t at, person = 0;
        int feed;
        if (split(line, fields, 4) || (feed = feed_index(fields[0])) < 0 ||
            parse_u64(fields[1], &at)) {
            rc = bad_line(sc, path, number);
            break;
        }
        struct feed_rows *r = &sc->feeds[feed];
        if (at >= r->n_lines || r->person[at] == NONE || r->outcome[at] != OUT_UNTRACED) {
            rc = bad_line(sc, path, number); /* not in the truth, or traced twice */
            break;
        }
        int outcome = !strcmp(fields[2], "1")           ? OUT_STAGE1
                      : !strcmp(fields[2], "2")         ? OUT_STAGE2
                      : !strcmp(fields[2], "no_match")  ? OUT_NO_MATCH
                      : !strcmp(fields[2], "ambiguous") ? OUT_AMBIGUOUS
                                                        : -1;
        int linked = outcome == OUT_STAGE1 || outcome == OUT_STAGE2;
        if (outcome < 0 || (linked ? parse_u64(fields[3], &person) != 0 : fields[3][0] != '\0')) {
            rc = bad_line(sc, path, number);
            break;
        }
        r->outcome[at] = (uint8_t)outcome;
        if (linked) {
            r->linked[at] = (int64_t)person;
            if ((int64_t)person >= sc->n_internal)
                sc->n_internal = (int64_t)person + 1;
        }
    }
    if (!rc && ferror(f)) {
        snprintf(sc->errbuf, sc->errlen, "%s: read error", path);
        rc = CC_EIO;
    }
    fclose(f);
    return rc;
}

#define SPLIT (-2)

static int score(struct scoring *sc, struct cc_gen_linkage_score *out)
{
    int64_t *theirs = malloc((size_t)(sc->n_persons + 1) * sizeof *theirs);
    int64_t *owner = malloc((size_t)(sc->n_internal + 1) * sizeof *owner);
    /* bit 0: a registration of the person was taken in; bit 1: their
     * latest (current postcode) registration was */
    uint8_t *registered = calloc((size_t)sc->n_persons + 1, 1);
    if (!theirs || !owner || !registered) {
        free(theirs);
        free(owner);
        free(registered);
        return CC_ENOMEM;
    }
    for (int64_t i = 0; i < sc->n_persons; i++)
        theirs[i] = NONE;
    for (int64_t i = 0; i < sc->n_internal; i++)
        owner[i] = NONE;
    /* Each true person's internal person, from the stage-1 rows. */
    for (int f = 0; f < N_FEEDS; f++) {
        const struct feed_rows *r = &sc->feeds[f];
        for (uint64_t at = 2; at < r->n_lines; at++) {
            if (r->outcome[at] != OUT_STAGE1)
                continue;
            int64_t p = r->person[at], s = r->linked[at];
            if (f == 0)
                registered[p] |= (uint8_t)(1 | (r->postcode[at] == POSTCODE_CURRENT) << 1);
            if (theirs[p] == NONE)
                theirs[p] = s;
            else if (theirs[p] != s)
                theirs[p] = SPLIT;
            if (owner[s] == NONE)
                owner[s] = p;
            else if (owner[s] != p)
                owner[s] = SPLIT;
        }
    }
    memset(out, 0, sizeof *out);
    for (int64_t i = 0; i < sc->n_persons; i++)
        out->persons_split += theirs[i] == SPLIT;
    for (int64_t i = 0; i < sc->n_internal; i++)
        out->persons_merged += owner[i] == SPLIT;
    out->n_feeds = N_FEEDS;
    for (int f = 0; f < N_FEEDS; f++) {
        const struct feed_rows *r = &sc->feeds[f];
        struct cc_gen_linkage_feed *o = &out->feeds[f];
        snprintf(o->name, sizeof o->name, "%s", feed_names[f]);
        for (uint64_t at = 2; at < r->n_lines; at++) {
            int64_t p = r->person[at];
            if (p == NONE)
                continue;
            o->rows++;
            int outcome = r->outcome[at];
            if (outcome == OUT_UNTRACED)
                continue;
            o->traced++;
            if (outcome == OUT_STAGE1 || outcome == OUT_STAGE2) {
                int stage = outcome == OUT_STAGE1 ? 1 : 2;
                int64_t s = r->linked[at];
                if (theirs[p] == s && owner[s] == p)
                    o->right[stage]++;
                else
                    o->wrong[stage]++;
                continue;
            }
            if (outcome == OUT_AMBIGUOUS)
                o->unlinked_ambiguous++;
            else
                o->unlinked_no_match++;
            /* Why it could not link, from what the row carries. */
            enum cc_gen_missed why = CC_GEN_MISSED_OTHER;
            if (f == 1 && !registered[p])
                why = CC_GEN_MISSED_NOT_REGISTERED;
            else if (r->nhs[at] != NHS_VALID && theirs[p] == NONE)
                why = CC_GEN_MISSED_UNKNOWN_PERSON;
            else if (r->nhs[at] != NHS_VALID && r->postcode[at] == POSTCODE_OLD)
                why = CC_GEN_MISSED_OLD_POSTCODE;
            else if (r->nhs[at] != NHS_VALID && !(registered[p] & 2))
                why = CC_GEN_MISSED_STALE_ADDRESS;
            else if (r->nhs[at] != NHS_VALID && outcome == OUT_AMBIGUOUS)
                why = CC_GEN_MISSED_SHARED;
            o->missed[why]++;
        }
    }
    free(theirs);
    free(owner);
    free(registered);
    return 0;
}

int cc_gen_linkage_score(const char *truth_path, const char *trace_path,
                         struct cc_gen_linkage_score *out, char *errbuf, size_t errlen)
{
    struct scoring sc;
    memset(&sc, 0, sizeof sc);
    sc.errbuf = errbuf;
    sc.errlen = errlen;
    if (errlen)
        errbuf[0] = '\0';
    int rc = read_truth(&sc, truth_path);
    if (!rc)
        rc = read_trace(&sc, trace_path);
    if (!rc)
        rc = score(&sc, out);
    for (int f = 0; f < N_FEEDS; f++) {
        free(sc.feeds[f].person);
        free(sc.feeds[f].linked);
        free(sc.feeds[f].nhs);
        free(sc.feeds[f].postcode);
        free(sc.feeds[f].outcome);
    }
    return rc;
}

void cc_gen_linkage_print(FILE *out, const struct cc_gen_linkage_score *score)
{
    fprintf(out, "%-24s %9s %10s %11s %9s %11s %9s %9s %9s\n", "feed", "rows", "considered", "1 right",
            "1 wrong", "2 right", "2 wrong", "no match", "ambiguous");
    for (int f = 0; f < score->n_feeds; f++) {
        const struct cc_gen_linkage_feed *o = &score->feeds[f];
        fprintf(out, "%-24s %9lld %10lld %11lld %9lld %11lld %9lld %9lld %9lld\n", o->name,
                (long long)o->rows, (long long)o->traced, (long long)o->right[1],
                (long long)o->wrong[1], (long long)o->right[2], (long long)o->wrong[2],
                (long long)o->unlinked_no_match, (long long)o->unlinked_ambiguous);
    }
    static const char *const reasons[CC_GEN_N_MISSED] = {
        "no valid NHS number, earlier address not seen in the ingest",
        "no valid NHS number, latest registration not taken in",
        "no valid NHS number, date of birth + sex + postcode shared",
        "no valid NHS number, no row of the person has one either",
        "GP event of a person with no registration taken in",
        "other (a linkage failure)",
    };
    fprintf(out, "unlinked rows by reason (registrations, GP events, hospital, community):\n");
    for (int m = 0; m < CC_GEN_N_MISSED; m++) {
        fprintf(out, "  %-62s", reasons[m]);
        for (int f = 0; f < score->n_feeds; f++)
            fprintf(out, " %7lld", (long long)score->feeds[f].missed[m]);
        fputc('\n', out);
    }
    fprintf(out, "true persons split over several internal persons: %lld; internal persons merging "
                 "several true persons: %lld\n",
            (long long)score->persons_split, (long long)score->persons_merged);
}
