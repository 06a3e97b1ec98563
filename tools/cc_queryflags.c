/*
 * cc_queryflags.c: a query or a comparison from command-line flags
 * (cc_queryflags.h). The flags build a JSON map with jansson; the codec in
 * queries/ decodes and validates it like any file, so this file checks only
 * what the flags' own syntax needs.
 *
 * Must never: accept a value the codec would not also see (every flag ends
 * up in the map).
 */
#include "cc_queryflags.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cc_json.h"

const char cc_queryflags_usage[] =
    "  --measure persons|events|population   what each cell counts (default\n"
    "                       persons; events counts the records of the first\n"
    "                       --code or --codelist)\n"
    "  --events             the same as --measure events\n"
    "  --population registered|estimate   the denominator measure (registered\n"
    "                       patients, or ONS estimates)\n"
    "  --by DIM[,DIM...]    dimensions: region, icb, lad, lsoa, practice, sex,\n"
    "                       setting, year, quarter, month, age (5-year bands),\n"
    "                       age:10y, age:1y, or age:0/18/65 (lower bounds)\n"
    "  --margins            also every total of the dimensions\n"
    "  --code SYS:CODE[,CODE...][,SYS:CODE...]   a condition: a record with one\n"
    "                       of these codes (SYS is snomed, icd10 or opcs4;\n"
    "                       ICD-10 and OPCS-4 match by prefix); repeat for\n"
    "                       more conditions (all must hold)\n"
    "  --codelist NAME      a condition: a record with a code of the codelist\n"
    "  --without-code SYS:CODE...  --without-codelist NAME   a condition that\n"
    "                       must not hold (no such record)\n"
    "  --setting gp,hospital,community   the conditions' records are of these\n"
    "                       settings (with no condition: the records counted)\n"
    "  --from YYYY-MM --to YYYY-MM   only records in these months (both ends)\n"
    "  --age MIN-MAX        persons of these ages (65-, -17, 18-64, 40)\n"
    "  --sex SEX[,SEX]      male, female, not_known, indeterminate\n"
    "  --area LEVEL:CODE[,CODE...]   persons resident in these areas (LEVEL is\n"
    "                       region, icb, lad or lsoa)\n"
    "  --practice CODE[,CODE...]   persons registered at these practices\n"
    "  --as-of YYYY-MM      the month on whose first day ages are taken\n"
    "  --print-query        print the query as JSON (docs/query-model.md) and\n"
    "                       send nothing: a file for reproducible research\n";

const char cc_queryflags_compare_usage[] =
    "  --level region|icb|lad   the areas compared (required)\n"
    "  --numerator SPEC     the numerator's condition: codelist:NAME or\n"
    "                       SYS:CODE[,CODE...] (as --code); the query flags\n"
    "                       (--events, --from, --to, --setting, --age, --sex,\n"
    "                       --code ...) describe the numerator\n"
    "  --comparator england|parent   compare each area with England (default)\n"
    "                       or with its parent area\n"
    "  --per N              the multiplier: a rate per N (a crude rate unless\n"
    "                       --standardise or --method says otherwise)\n"
    "  --standardise age    directly age-standardised (a DSR)\n"
    "  --method proportion|crude_rate|dsr|isr   the method, if not implied\n"
    "                       (default: proportion for persons, crude_rate for\n"
    "                       events)\n"
    "  --denominator registered|estimate   the population (default registered)\n";

void cc_queryflags_init(struct cc_queryflags *flags, bool comparison)
{
    memset(flags, 0, sizeof *flags);
    flags->comparison = comparison;
}

/* ---- taking the flags ---------------------------------------------------- */

struct flag_slot {
    const char *name;
    size_t offset; /* of a const char * in struct cc_queryflags */
    bool comparison_only;
};

#define SLOT(name, field, cmp) {name, offsetof(struct cc_queryflags, field), cmp}
static const struct flag_slot value_flags[] = {
    SLOT("--measure", measure, false),       SLOT("--population", population, false),
    SLOT("--by", by, false),                 SLOT("--setting", setting, false),
    SLOT("--from", from, false),             SLOT("--to", to, false),
    SLOT("--age", age, false),               SLOT("--sex", sex, false),
    SLOT("--area", area, false),             SLOT("--practice", practice, false),
    SLOT("--as-of", as_of, false),           SLOT("--level", level, true),
    SLOT("--comparator", comparator, true),  SLOT("--method", method, true),
    SLOT("--per", per, true),                SLOT("--standardise", standardise, true),
    SLOT("--denominator", denominator, true),
};
#undef SLOT

static const char *const condition_flags[] = {"--code", "--codelist", "--without-code",
                                              "--without-codelist", "--numerator"};

int cc_queryflags_take(struct cc_queryflags *f, int argc, char **argv, int i,
                       const char *command)
{
    const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(flag, "--margins") || !strcmp(flag, "--events") ||
        !strcmp(flag, "--print-query")) {
        if (flag[2] == 'm')
            f->margins = true;
        else if (flag[2] == 'e')
            f->events = true;
        else
            f->print = true;
        f->given = f->given || flag[2] != 'p';
        return 1;
    }
    const char **slot = NULL;
    for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++)
        if (!strcmp(flag, value_flags[k].name) && (f->comparison || !value_flags[k].comparison_only))
            slot = (const char **)((char *)f + value_flags[k].offset);
    bool condition = false;
    for (size_t k = 0; k < sizeof condition_flags / sizeof condition_flags[0]; k++)
        if (!strcmp(flag, condition_flags[k]) && (f->comparison || k != 4))
            condition = true;
    if (!slot && !condition)
        return 0;
    if (!value || !*value) {
        fprintf(stderr, "carecount %s: %s needs a value (try --help)\n", command, flag);
        return -1;
    }
    if (slot) {
        if (*slot) {
            fprintf(stderr, "carecount %s: %s is given twice\n", command, flag);
            return -1;
        }
        *slot = value;
    } else {
        if (f->n_conditions == CC_QUERYFLAGS_MAX_CONDITIONS) {
            fprintf(stderr, "carecount %s: at most %d conditions\n", command,
                    CC_QUERYFLAGS_MAX_CONDITIONS);
            return -1;
        }
        f->conditions[f->n_conditions].flag = flag;
        f->conditions[f->n_conditions].value = value;
        f->n_conditions++;
    }
    f->given = true;
    return 2;
}

/* ---- building the map ---------------------------------------------------- */

struct build {
    char *errbuf;
    size_t errlen;
};

static int fail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct build *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errbuf, b->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Sets key to value in object, taking the reference. -1 on failure. */
static int set(json_t *object, const char *key, json_t *value)
{
    return value ? json_object_set_new(object, key, value) : -1;
}

/* A comma-separated list as an array of strings ("a,b" -> ["a", "b"]);
 * empty items are an error. */
static json_t *string_list(struct build *b, const char *flag, const char *text)
{
    json_t *array = json_array();
    if (!array)
        return NULL;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            fail(b, "%s %s: an empty item in the list", flag, text);
            json_decref(array);
            return NULL;
        }
        if (json_array_append_new(array, json_stringn(p, len)) < 0) {
            json_decref(array);
            return NULL;
        }
        if (!comma)
            return array;
        p = comma + 1;
    }
}

static int parse_int(const char *text, size_t len, long *out)
{
    char buf[16];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || *end || buf[0] == '-' || buf[0] == '+')
        return -1;
    *out = v;
    return 0;
}

/* One item of --by: a name, or age[_band][:B]. */
static json_t *dimension(struct build *b, const char *item, size_t len)
{
    const char *colon = memchr(item, ':', len);
    size_t name_len = colon ? (size_t)(colon - item) : len;
    bool age = (name_len == 3 && !strncmp(item, "age", 3)) ||
               (name_len == 8 && !strncmp(item, "age_band", 8));
    if (!age) {
        if (colon) {
            fail(b, "--by: '%.*s': only age takes a banding after ':'", (int)len, item);
            return NULL;
        }
        return json_stringn(item, len);
    }
    if (!colon)
        return json_string("age_band");
    const char *bands = colon + 1;
    size_t bands_len = len - name_len - 1;
    json_t *spec;
    if (memchr(bands, '/', bands_len)) {
        spec = json_array();
        const char *p = bands, *end = bands + bands_len;
        while (spec && p <= end) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            size_t n = slash ? (size_t)(slash - p) : (size_t)(end - p);
            long bound;
            if (parse_int(p, n, &bound) < 0) {
                fail(b, "--by: '%.*s': age bands are lower bounds such as age:0/18/65", (int)len,
                     item);
                json_decref(spec);
                return NULL;
            }
            json_array_append_new(spec, json_integer(bound));
            if (!slash)
                break;
            p = slash + 1;
        }
    } else {
        spec = json_stringn(bands, bands_len);
    }
    json_t *map = json_object();
    if (!map || set(map, "name", json_string("age_band")) < 0 || set(map, "bands", spec) < 0) {
        json_decref(map);
        return NULL;
    }
    return map;
}

static json_t *dimensions(struct build *b, const char *text)
{
    json_t *array = json_array();
    const char *p = text;
    while (array) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            fail(b, "--by %s: an empty item in the list", text);
            break;
        }
        json_t *d = dimension(b, p, len);
        if (!d || json_array_append_new(array, d) < 0)
            break;
        if (!comma)
            return array;
        p = comma + 1;
    }
    json_decref(array);
    return NULL;
}

static bool known_system(const char *s, size_t len)
{
    return (len == 6 && !strncmp(s, "snomed", 6)) || (len == 5 && !strncmp(s, "icd10", 5)) ||
           (len == 5 && !strncmp(s, "opcs4", 5));
}

/* SYS:CODE[,CODE...][,SYS:CODE...] into the condition map's "codes" (and
 * "system" when one system is named). */
static int codes(struct build *b, json_t *condition, const char *flag, const char *text)
{
    json_t *by_system = json_object();
    json_t *current = NULL;
    const char *p = text;
    int n_systems = 0;
    const char *only_system = NULL;
    size_t only_len = 0;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        const char *code = p;
        size_t code_len = len;
        if (colon) {
            size_t sys_len = (size_t)(colon - p);
            if (!known_system(p, sys_len)) {
                json_decref(by_system);
                return fail(b, "%s %s: unknown code system '%.*s' (snomed, icd10 or opcs4)", flag,
                            text, (int)(sys_len > 16 ? 16 : sys_len), p);
            }
            char sys[8];
            memcpy(sys, p, sys_len);
            sys[sys_len] = '\0';
            current = json_object_get(by_system, sys);
            if (!current) {
                current = json_array();
                if (json_object_set_new(by_system, sys, current) < 0) {
                    json_decref(by_system);
                    return -1;
                }
                n_systems++;
                only_system = p;
                only_len = sys_len;
            }
            code = colon + 1;
            code_len = len - sys_len - 1;
        }
        if (!current) {
            json_decref(by_system);
            return fail(b, "%s %s: name the code system first, as in icd10:E11 or snomed:44054006",
                        flag, text);
        }
        if (code_len == 0) {
            json_decref(by_system);
            return fail(b, "%s %s: an empty code", flag, text);
        }
        json_array_append_new(current, json_stringn(code, code_len));
        if (!comma)
            break;
        p = comma + 1;
    }
    if (n_systems == 1) {
        char sys[8];
        memcpy(sys, only_system, only_len);
        sys[only_len] = '\0';
        json_t *list = json_incref(json_object_get(by_system, sys));
        json_decref(by_system);
        if (set(condition, "codes", list) < 0 ||
            set(condition, "system", json_string(sys)) < 0)
            return -1;
        return 0;
    }
    return set(condition, "codes", by_system);
}

static json_t *condition(struct build *b, const char *flag, const char *value)
{
    json_t *c = json_object();
    if (!c)
        return NULL;
    bool without = !strncmp(flag, "--without-", 10);
    bool list = !strcmp(flag, "--codelist") || !strcmp(flag, "--without-codelist");
    const char *text = value;
    if (!strcmp(flag, "--numerator") && !strncmp(value, "codelist:", 9)) {
        list = true;
        text = value + 9;
    }
    int rc = list ? set(c, "codelist", json_string(text)) : codes(b, c, flag, text);
    if (rc == 0 && without)
        rc = set(c, "exclude", json_true());
    if (rc < 0) {
        if (!b->errbuf[0])
            fail(b, "%s %s: not a condition", flag, value);
        json_decref(c);
        return NULL;
    }
    return c;
}

/* --age: "65-", "-17", "18-64" or "40". */
static json_t *age_range(struct build *b, const char *text)
{
    const char *dash = strchr(text, '-');
    long min = 0, max = 120;
    bool ok;
    if (!dash)
        ok = parse_int(text, strlen(text), &min) == 0 && (max = min, true);
    else
        ok = (dash == text || parse_int(text, (size_t)(dash - text), &min) == 0) &&
             (!dash[1] || parse_int(dash + 1, strlen(dash + 1), &max) == 0) &&
             (dash != text || dash[1]);
    if (!ok) {
        fail(b, "--age %s: give MIN-MAX in whole years, as 18-64, 65- or -17", text);
        return NULL;
    }
    json_t *map = json_object();
    if (!map)
        return NULL;
    if ((dash != text && set(map, "min", json_integer(min)) < 0) ||
        ((!dash || dash[1]) && set(map, "max", json_integer(max)) < 0)) {
        json_decref(map);
        return NULL;
    }
    return map;
}

static json_t *areas(struct build *b, const char *text)
{
    const char *colon = strchr(text, ':');
    if (!colon || colon == text || !colon[1]) {
        fail(b, "--area %s: give LEVEL:CODE[,CODE...], as lad:E08000001", text);
        return NULL;
    }
    json_t *map = json_object(), *list = string_list(b, "--area", colon + 1);
    if (!map || !list || set(map, "level", json_stringn(text, (size_t)(colon - text))) < 0 ||
        set(map, "codes", list) < 0) {
        json_decref(map);
        return NULL;
    }
    return map;
}

static bool is_one_of(const char *value, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp(value, *names))
            return true;
    return false;
}

static json_t *query_map(struct build *b, const struct cc_queryflags *f)
{
    json_t *q = json_object(), *filters = json_object();
    if (!q || !filters)
        goto fail;
    const char *measure = f->measure;
    if (f->events) {
        if (measure && strcmp(measure, "events")) {
            fail(b, "--events: but --measure says %s", measure);
            goto fail;
        }
        measure = "events";
    }
    if (f->population && !measure)
        measure = "population";
    if (!measure)
        measure = "persons";
    static const char *const measures[] = {"persons", "events", "population", NULL};
    if (!is_one_of(measure, measures)) {
        fail(b, "--measure %s: persons, events or population", measure);
        goto fail;
    }
    if (set(q, "v", json_integer(1)) < 0 || set(q, "measure", json_string(measure)) < 0)
        goto fail;
    if (f->population && set(q, "population", json_string(f->population)) < 0)
        goto fail;
    if (f->as_of && set(q, "as_of", json_string(f->as_of)) < 0)
        goto fail;
    if (f->by) {
        json_t *dims = dimensions(b, f->by);
        if (set(q, "dimensions", dims) < 0)
            goto fail;
    }
    if (f->margins && set(q, "margins", json_true()) < 0)
        goto fail;
    if (f->n_conditions) {
        json_t *list = json_array();
        if (set(filters, "conditions", list) < 0)
            goto fail;
        int first = -1;
        for (int i = 0; i < f->n_conditions; i++) {
            json_t *c = condition(b, f->conditions[i].flag, f->conditions[i].value);
            if (!c || json_array_append_new(list, c) < 0)
                goto fail;
            /* --setting restricts each condition's records (as "persons
             * with X in their GP record" means), not the whole query */
            if (f->setting && set(c, "settings", string_list(b, "--setting", f->setting)) < 0)
                goto fail;
            if (first < 0 && strncmp(f->conditions[i].flag, "--without-", 10))
                first = i;
        }
        if (!strcmp(measure, "events") && first >= 0 &&
            set(q, "events_of", json_integer(first)) < 0)
            goto fail;
    }
    if (f->from || f->to) {
        if (!f->from || !f->to) {
            fail(b, "%s: a date range needs both --from and --to", f->from ? "--from" : "--to");
            goto fail;
        }
        json_t *range = json_object();
        if (set(filters, "date_range", range) < 0 ||
            set(range, "from", json_string(f->from)) < 0 ||
            set(range, "to", json_string(f->to)) < 0)
            goto fail;
    }
    if (f->age && set(filters, "age", age_range(b, f->age)) < 0)
        goto fail;
    if (f->sex && set(filters, "sex", string_list(b, "--sex", f->sex)) < 0)
        goto fail;
    if (f->setting && !f->n_conditions &&
        set(filters, "settings", string_list(b, "--setting", f->setting)) < 0)
        goto fail;
    if (f->area && set(filters, "areas", areas(b, f->area)) < 0)
        goto fail;
    if (f->practice && set(filters, "practices", string_list(b, "--practice", f->practice)) < 0)
        goto fail;
    if (json_object_size(filters) > 0) {
        if (set(q, "filters", filters) < 0)
            goto fail_q;
    } else {
        json_decref(filters);
    }
    return q;
fail:
    json_decref(filters);
fail_q:
    json_decref(q);
    return NULL;
}

static json_t *comparison_map(struct build *b, const struct cc_queryflags *f)
{
    json_t *c = json_object(), *numerator = query_map(b, f);
    if (!c || !numerator)
        goto fail;
    if (set(c, "v", json_integer(1)) < 0 || json_object_set(c, "numerator", numerator) < 0)
        goto fail;
    if (f->denominator && set(c, "denominator", json_string(f->denominator)) < 0)
        goto fail;
    if (f->level && set(c, "level", json_string(f->level)) < 0)
        goto fail;
    if (f->comparator) {
        const char *comparator = f->comparator;
        if (!strcmp(comparator, "england"))
            comparator = "national";
        static const char *const comparators[] = {"national", "parent", NULL};
        if (!is_one_of(comparator, comparators)) {
            fail(b, "--comparator %s: england (or national) or parent", f->comparator);
            goto fail;
        }
        if (set(c, "comparator", json_string(comparator)) < 0)
            goto fail;
    }
    if (f->standardise && strcmp(f->standardise, "age")) {
        fail(b, "--standardise %s: only age (a directly standardised rate)", f->standardise);
        goto fail;
    }
    const char *method = f->method;
    if (!method) {
        bool events = f->events || (f->measure && !strcmp(f->measure, "events"));
        method = f->standardise ? "dsr" : f->per || events ? "crude_rate" : "proportion";
    } else if (f->standardise && strcmp(method, "dsr") && strcmp(method, "isr")) {
        fail(b, "--standardise age: but --method %s is not standardised (dsr or isr)", method);
        goto fail;
    }
    if (set(c, "method", json_string(method)) < 0)
        goto fail;
    if (f->per) {
        char *end;
        errno = 0;
        double per = strtod(f->per, &end);
        if (errno || *end || !isfinite(per) || per <= 0) {
            fail(b, "--per %s: a positive number, as 100000", f->per);
            goto fail;
        }
        json_t *value = per == floor(per) && per < 9e15 ? json_integer((json_int_t)per)
                                                        : json_real(per);
        if (set(c, "multiplier", value) < 0)
            goto fail;
    }
    json_decref(numerator);
    return c;
fail:
    json_decref(numerator);
    json_decref(c);
    return NULL;
}

int cc_queryflags_json(const struct cc_queryflags *f, char **out, char *errbuf, size_t errlen)
{
    struct build b = {errbuf, errlen};
    errbuf[0] = '\0';
    *out = NULL;
    if (f->comparison && f->by) {
        fail(&b, "--by: a comparison sets its dimensions itself (the areas of --level, and "
                 "age bands when standardised)");
        return -1;
    }
    json_t *map = f->comparison ? comparison_map(&b, f) : query_map(&b, f);
    if (!map) {
        if (!errbuf[0])
            fail(&b, "out of memory");
        return -1;
    }
    *out = cc_json_dumps(map, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(map);
    if (!*out)
        return fail(&b, "out of memory");
    return 0;
}

/* ---- naming the flag of an error ----------------------------------------- */

static bool starts(const char *text, const char *prefix)
{
    return !strncmp(text, prefix, strlen(prefix));
}

void cc_queryflags_explain(const struct cc_queryflags *f, const char *error, char *out,
                           size_t outlen)
{
    const char *path = error;
    if (f->comparison && starts(path, "numerator."))
        path += strlen("numerator.");
    static const struct {
        const char *prefix, *flag;
        size_t offset;
    } fields[] = {
        {"filters.date_range", "--from/--to", (size_t)-1},
        {"filters.age", "--age", offsetof(struct cc_queryflags, age)},
        {"filters.sex", "--sex", offsetof(struct cc_queryflags, sex)},
        {"filters.settings", "--setting", offsetof(struct cc_queryflags, setting)},
        {"filters.areas", "--area", offsetof(struct cc_queryflags, area)},
        {"filters.practices", "--practice", offsetof(struct cc_queryflags, practice)},
        {"dimensions", "--by", offsetof(struct cc_queryflags, by)},
        {"as_of", "--as-of", offsetof(struct cc_queryflags, as_of)},
        {"margins", "--margins", (size_t)-1},
        {"events_of", "--measure", (size_t)-1},
        {"measure", "--measure", (size_t)-1},
        {"population", "--population", offsetof(struct cc_queryflags, population)},
        {"level", "--level", offsetof(struct cc_queryflags, level)},
        {"comparator", "--comparator", offsetof(struct cc_queryflags, comparator)},
        {"method", "--method", offsetof(struct cc_queryflags, method)},
        {"multiplier", "--per", offsetof(struct cc_queryflags, per)},
        {"denominator", "--denominator", offsetof(struct cc_queryflags, denominator)},
    };
    int index;
    if (sscanf(path, "filters.conditions[%d]", &index) == 1 && index >= 0 &&
        index < f->n_conditions) {
        snprintf(out, outlen, "%s %s: %s", f->conditions[index].flag,
                 f->conditions[index].value, error);
        return;
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        if (!starts(path, fields[k].prefix))
            continue;
        const char *value = fields[k].offset == (size_t)-1
                                ? NULL
                                : *(const char *const *)((const char *)f + fields[k].offset);
        if (value)
            snprintf(out, outlen, "%s %s: %s", fields[k].flag, value, error);
        else
            snprintf(out, outlen, "%s: %s", fields[k].flag, error);
        return;
    }
    snprintf(out, outlen, "%s", error);
}

void cc_queryflags_report(const struct cc_queryflags *flags, const char *command,
                          const char *path, const char *error)
{
    char why[768];
    if (flags->given)
        cc_queryflags_explain(flags, error, why, sizeof why);
    else
        snprintf(why, sizeof why, "%s: %s", path, error);
    fprintf(stderr, "carecount %s: %s\n", command, why);
}
