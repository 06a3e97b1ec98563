/*
 * cc_query_codec.c: a query to and from its wire form, a msgpack map (and the same map
 * written as JSON for people and dashboards). docs/query-model.md documents
 * every key.
 *
 * Decoding untrusted bytes is bounded before anything is allocated for them:
 * the length against max_query_bytes, then a skim of the msgpack structure
 * that checks nesting depth and that no container declares more elements
 * than there are bytes left (msgpack-c would otherwise allocate for the
 * declared count). Only then does msgpack-c unpack it, into a zone freed
 * before returning; the query copies what it keeps into its own arena.
 *
 * The decoder checks shape: types, known keys, names of enum values, array
 * sizes against the limits. Meaning (code formats, empty date ranges, cells)
 * is cc_query_validate()'s job. Errors name the field ("filters.conditions[0]
 * .codes[1]") and the reason.
 *
 * Must never: abort or grow without bound on hostile input.
 */
#include "cc_msgpack.h"
#include "cc_query.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cc_error.h"

/* ---- error context ---- */

struct decoder {
    const struct cc_query_limits *limits;
    struct cc_query *query;
    char *errbuf;
    size_t errlen;
    char path[192];
    size_t path_len;
};

static void path_set(struct decoder *d, size_t len)
{
    d->path_len = len;
    d->path[len] = '\0';
}

/* Appends text to the path, truncating at its end. */
static void path_append(struct decoder *d, const char *text, size_t len)
{
    size_t room = sizeof d->path - 1 - d->path_len;
    if (len > room)
        len = room;
    memcpy(d->path + d->path_len, text, len);
    d->path_len += len;
    d->path[d->path_len] = '\0';
}

/* Appends ".key" (or "key" at the root); returns the previous length. The
 * path is built on every key, not only on errors, so it avoids printf. */
static size_t path_key(struct decoder *d, const char *key)
{
    size_t old = d->path_len;
    if (old)
        path_append(d, ".", 1);
    path_append(d, key, strlen(key));
    return old;
}

/* Appends "[i]"; returns the previous length. */
static size_t path_index(struct decoder *d, uint32_t i)
{
    size_t old = d->path_len;
    char digits[16];
    size_t n = sizeof digits;
    digits[--n] = ']';
    do {
        digits[--n] = (char)('0' + i % 10);
        i /= 10;
    } while (i);
    digits[--n] = '[';
    path_append(d, digits + n, sizeof digits - n);
    return old;
}

/* Writes "path: reason" into errbuf and returns rc. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(struct decoder *d, int rc, const char *fmt, ...)
{
    if (!d->errbuf || !d->errlen)
        return rc;
    int n = snprintf(d->errbuf, d->errlen, "%s: ", d->path_len ? d->path : "query");
    if (n < 0 || (size_t)n >= d->errlen)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->errbuf + n, d->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* Copies a string from the input for an error message: at most 32
 * characters, anything unprintable as '?'. */
static const char *shown(const char *s, size_t len, char out[40])
{
    size_t n = len < 32 ? len : 32, i;
    for (i = 0; i < n; i++)
        out[i] = isprint((unsigned char)s[i]) && s[i] != '\'' ? s[i] : '?';
    if (len > n) {
        out[i++] = '.';
        out[i++] = '.';
        out[i++] = '.';
    }
    out[i] = '\0';
    return out;
}

static const char *type_name(msgpack_object_type type)
{
    switch (type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a number with a fraction";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_EXT: return "an extension";
    }
    return "an unknown type";
}

/* ---- typed readers ---- */

static int want(struct decoder *d, const msgpack_object *obj, msgpack_object_type type,
                const char *what)
{
    if (obj->type == type)
        return 0;
    return fail(d, CC_EPARSE, "must be %s, not %s", what, type_name(obj->type));
}

static int read_int(struct decoder *d, const msgpack_object *obj, int64_t min, int64_t max,
                    int64_t *out)
{
    int64_t v;
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (obj->via.u64 > (uint64_t)INT64_MAX)
            return fail(d, CC_ERANGE, "%llu is out of range (%lld to %lld)",
                        (unsigned long long)obj->via.u64, (long long)min, (long long)max);
        v = (int64_t)obj->via.u64;
    } else if (obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = obj->via.i64;
    } else {
        return fail(d, CC_EPARSE, "must be an integer, not %s", type_name(obj->type));
    }
    if (v < min || v > max)
        return fail(d, CC_ERANGE, "%lld is out of range (%lld to %lld)", (long long)v,
                    (long long)min, (long long)max);
    *out = v;
    return 0;
}

static int read_bool(struct decoder *d, const msgpack_object *obj, bool *out)
{
    int rc = want(d, obj, MSGPACK_OBJECT_BOOLEAN, "true or false");
    if (!rc)
        *out = obj->via.boolean;
    return rc;
}

static int read_month(struct decoder *d, const msgpack_object *obj, cc_month *out)
{
    int rc = want(d, obj, MSGPACK_OBJECT_STR, "a month \"YYYY-MM\"");
    if (rc)
        return rc;
    const char *s = obj->via.str.ptr;
    size_t len = obj->via.str.size;
    char buf[40];
    rc = cc_query_month_parse(s, len, out);
    if (rc == CC_ERANGE)
        return fail(d, CC_ERANGE, "'%s' is not a month from 1900-01 to 2079-06",
                    shown(s, len, buf));
    if (rc && len == 10 && s[4] == '-' && s[7] == '-')
        return fail(d, CC_EPARSE, "'%s' is a day; dates are months at finest (YYYY-MM)",
                    shown(s, len, buf));
    if (rc)
        return fail(d, CC_EPARSE, "'%s' is not a month (YYYY-MM)", shown(s, len, buf));
    return 0;
}

/* Reads a name of an enum value, looked up with name_of over 0..max. */
static int read_name(struct decoder *d, const msgpack_object *obj, const char *(*name_of)(int),
                     int max, const char *what, int *out)
{
    int rc = want(d, obj, MSGPACK_OBJECT_STR, "a string");
    if (rc)
        return rc;
    for (int v = 0; v <= max; v++) {
        const char *name = name_of(v);
        if (name && strlen(name) == obj->via.str.size &&
            !memcmp(name, obj->via.str.ptr, obj->via.str.size)) {
            *out = v;
            return 0;
        }
    }
    char buf[40];
    return fail(d, CC_EPARSE, "unknown %s '%s'", what,
                shown(obj->via.str.ptr, obj->via.str.size, buf));
}

/* Reads a set of names (an array, or one string) into a bit mask. */
static int read_name_set(struct decoder *d, const msgpack_object *obj,
                         const char *(*name_of)(int), int max, const char *what,
                         uint32_t *mask)
{
    *mask = 0;
    if (obj->type == MSGPACK_OBJECT_STR) {
        int v = 0, rc = read_name(d, obj, name_of, max, what, &v);
        if (!rc)
            *mask = 1u << v;
        return rc;
    }
    int rc = want(d, obj, MSGPACK_OBJECT_ARRAY, "an array of names");
    if (rc)
        return rc;
    if (obj->via.array.size == 0)
        return fail(d, CC_EPARSE, "empty (leave the key out for any %s)", what);
    for (uint32_t i = 0; i < obj->via.array.size; i++) {
        size_t old = path_index(d, i);
        int v = 0;
        rc = read_name(d, &obj->via.array.ptr[i], name_of, max, what, &v);
        if (!rc && (*mask & (1u << v)))
            rc = fail(d, CC_EPARSE, "'%s' appears twice", name_of(v));
        if (rc)
            return rc;
        *mask |= 1u << v;
        path_set(d, old);
    }
    return 0;
}

/* Iterates over a map's keys, checking they are strings and not repeated;
 * key_names lists the keys the map allows. For each key, calls field();
 * *seen_out (if not NULL) gets a bit per key present. */
typedef int (*field_fn)(struct decoder *d, void *target, int key, const msgpack_object *value);

static int read_map(struct decoder *d, const msgpack_object *obj, const char *const *key_names,
                    int n_keys, void *target, field_fn field, uint32_t *seen_out)
{
    int rc = want(d, obj, MSGPACK_OBJECT_MAP, "a map");
    if (rc)
        return rc;
    uint32_t seen = 0;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *key = &obj->via.map.ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return fail(d, CC_EPARSE, "keys must be strings, not %s", type_name(key->type));
        int k;
        for (k = 0; k < n_keys; k++)
            if (strlen(key_names[k]) == key->via.str.size &&
                !memcmp(key_names[k], key->via.str.ptr, key->via.str.size))
                break;
        char buf[40];
        if (k == n_keys)
            return fail(d, CC_EPARSE, "unknown key '%s'",
                        shown(key->via.str.ptr, key->via.str.size, buf));
        size_t old = path_key(d, key_names[k]);
        if (seen & (1u << k))
            return fail(d, CC_EPARSE, "appears twice");
        seen |= 1u << k;
        rc = field(d, target, k, &obj->via.map.ptr[i].val);
        if (rc)
            return rc;
        path_set(d, old);
    }
    if (seen_out)
        *seen_out = seen;
    return 0;
}

/* ---- the parts of a query ---- */

static int read_date_range_field(struct decoder *d, void *target, int key,
                                 const msgpack_object *value)
{
    struct cc_query_months *range = target;
    return read_month(d, value, key == 0 ? &range->from : &range->to);
}

static int read_date_range(struct decoder *d, const msgpack_object *obj,
                           struct cc_query_months *range)
{
    static const char *const keys[] = {"from", "to"};
    uint32_t seen = 0;
    int rc = read_map(d, obj, keys, 2, range, read_date_range_field, &seen);
    if (rc)
        return rc;
    if (seen != 3)
        return fail(d, CC_EPARSE, "needs both \"from\" and \"to\" (months, inclusive)");
    range->present = true;
    return 0;
}

static int read_age_bands(struct decoder *d, const msgpack_object *obj,
                          struct cc_query_dimension *dim)
{
    if (obj->type == MSGPACK_OBJECT_STR) {
        if (obj->via.str.size == 2 && !memcmp(obj->via.str.ptr, "5y", 2))
            dim->age_banding = CC_AGE_BANDS_5Y;
        else if (obj->via.str.size == 3 && !memcmp(obj->via.str.ptr, "10y", 3))
            dim->age_banding = CC_AGE_BANDS_10Y;
        else {
            char buf[40];
            return fail(d, CC_EPARSE,
                        "unknown age banding '%s' (\"5y\", \"10y\" or an array of lower bounds)",
                        shown(obj->via.str.ptr, obj->via.str.size, buf));
        }
        return 0;
    }
    int rc = want(d, obj, MSGPACK_OBJECT_ARRAY, "\"5y\", \"10y\" or an array of lower bounds");
    if (rc)
        return rc;
    if (obj->via.array.size > CC_QUERY_AGE_BOUNDS_CAP)
        return fail(d, CC_ETOOBIG, "%u bounds, the limit is %d", obj->via.array.size,
                    CC_QUERY_AGE_BOUNDS_CAP);
    dim->age_banding = CC_AGE_BANDS_CUSTOM;
    dim->n_age_bounds = (uint8_t)obj->via.array.size;
    for (uint32_t i = 0; i < obj->via.array.size; i++) {
        size_t old = path_index(d, i);
        int64_t v = 0;
        rc = read_int(d, &obj->via.array.ptr[i], 0, 120, &v);
        if (rc)
            return rc;
        dim->age_bounds[i] = (uint8_t)v;
        path_set(d, old);
    }
    return 0;
}

static int read_dimension_field(struct decoder *d, void *target, int key,
                                const msgpack_object *value)
{
    struct cc_query_dimension *dim = target;
    if (key == 0) {
        int kind = 0, rc = read_name(d, value, cc_query_dimension_name, CC_DIM_MONTH, "dimension",
                                 &kind);
        dim->kind = (uint8_t)kind;
        return rc;
    }
    return read_age_bands(d, value, dim);
}

static int read_dimension(struct decoder *d, const msgpack_object *obj,
                          struct cc_query_dimension *dim)
{
    static const char *const keys[] = {"name", "bands"};
    int rc;
    if (obj->type == MSGPACK_OBJECT_STR) {
        int kind = 0;
        rc = read_name(d, obj, cc_query_dimension_name, CC_DIM_MONTH, "dimension", &kind);
        dim->kind = (uint8_t)kind;
    } else {
        if (obj->type != MSGPACK_OBJECT_MAP)
            return fail(d, CC_EPARSE, "must be a dimension name or a map, not %s",
                        type_name(obj->type));
        uint32_t seen = 0;
        rc = read_map(d, obj, keys, 2, dim, read_dimension_field, &seen);
        if (!rc && !(seen & 1))
            return fail(d, CC_EPARSE, "needs a \"name\"");
        if (!rc && dim->age_banding && dim->kind != CC_DIM_AGE_BAND)
            return fail(d, CC_EPARSE, "\"bands\" belongs to the age_band dimension only");
    }
    if (!rc && dim->kind == CC_DIM_AGE_BAND && !dim->age_banding)
        dim->age_banding = CC_AGE_BANDS_5Y;
    return rc;
}

/* Normalises a clinical code: upper case, one dot removed. */
static int read_code(struct decoder *d, const msgpack_object *obj, struct cc_query_code *code)
{
    int rc = want(d, obj, MSGPACK_OBJECT_STR, "a code");
    if (rc)
        return rc;
    const char *s = obj->via.str.ptr;
    size_t len = obj->via.str.size, n = 0;
    char buf[40];
    if (len == 0)
        return fail(d, CC_EPARSE, "empty code");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.' && i > 0 && i + 1 < len)
            continue;
        if (!isalnum(c))
            return fail(d, CC_EPARSE, "'%s' is not a code (letters and digits only)",
                        shown(s, len, buf));
        if (n + 1 >= sizeof code->text)
            return fail(d, CC_EPARSE, "'%s' is too long for a code (at most %zu characters)",
                        shown(s, len, buf), sizeof code->text - 1);
        code->text[n++] = (char)toupper(c);
    }
    code->text[n] = '\0';
    return 0;
}

static int read_anchor_field(struct decoder *d, void *target, int key,
                             const msgpack_object *value)
{
    struct cc_query_anchor *anchor = target;
    int64_t v = 0;
    int64_t max_days = d->limits->max_anchor_days;
    int rc;
    switch (key) {
    case 0:
        rc = read_int(d, value, 0, d->limits->max_conditions, &v);
        anchor->condition = (uint32_t)v;
        return rc;
    case 1:
        rc = read_int(d, value, -max_days, max_days, &v);
        anchor->from_days = (int32_t)v;
        return rc;
    default:
        rc = read_int(d, value, -max_days, max_days, &v);
        anchor->to_days = (int32_t)v;
        return rc;
    }
}

static int read_condition_field(struct decoder *d, void *target, int key,
                                 const msgpack_object *value)
{
    struct cc_query_condition *condition = target;
    int rc, v = 0;
    uint32_t mask = 0;
    switch (key) {
    case 0: { /* codes */
        rc = want(d, value, MSGPACK_OBJECT_ARRAY, "an array of codes");
        if (rc)
            return rc;
        uint32_t n = value->via.array.size;
        if (n == 0)
            return fail(d, CC_EPARSE, "empty (leave the key out to match any record)");
        if (n > d->limits->max_codes_per_condition)
            return fail(d, CC_ETOOBIG, "%u codes, the limit is %u", n,
                        d->limits->max_codes_per_condition);
        condition->codes = cc_query_alloc(d->query, (size_t)n * sizeof *condition->codes);
        if (!condition->codes)
            return fail(d, CC_ENOMEM, "out of memory");
        condition->n_codes = n;
        for (uint32_t i = 0; i < n; i++) {
            size_t old = path_index(d, i);
            rc = read_code(d, &value->via.array.ptr[i], &condition->codes[i]);
            if (rc)
                return rc;
            path_set(d, old);
        }
        return 0;
    }
    case 1: /* system */
        rc = read_name(d, value, cc_query_system_name, CC_CODE_OPCS4, "code system", &v);
        condition->system = (uint8_t)v;
        return rc;
    case 2: { /* codelist */
        rc = want(d, value, MSGPACK_OBJECT_STR, "a codelist name");
        if (rc)
            return rc;
        char buf[40];
        if (value->via.str.size == 0 || value->via.str.size >= sizeof condition->codelist)
            return fail(d, CC_EPARSE, "'%s' is not a codelist name (1 to %zu characters)",
                        shown(value->via.str.ptr, value->via.str.size, buf),
                        sizeof condition->codelist - 1);
        memcpy(condition->codelist, value->via.str.ptr, value->via.str.size);
        condition->codelist[value->via.str.size] = '\0';
        if (strlen(condition->codelist) != value->via.str.size)
            return fail(d, CC_EPARSE, "a codelist name cannot hold a NUL byte");
        return 0;
    }
    case 3: /* settings */
        rc = read_name_set(d, value, cc_query_setting_name, CC_SETTING_COMMUNITY, "setting",
                           &mask);
        condition->setting_mask = (uint8_t)mask;
        return rc;
    case 4: /* roles */
        rc = read_name_set(d, value, cc_query_role_name, CC_ROLE_PROCEDURE, "code role", &mask);
        condition->role_mask = (uint8_t)mask;
        return rc;
    case 5:
        return read_date_range(d, value, &condition->date_range);
    case 6: {
        static const char *const keys[] = {"condition", "from_days", "to_days"};
        uint32_t seen = 0;
        rc = read_map(d, value, keys, 3, &condition->anchor, read_anchor_field, &seen);
        if (rc)
            return rc;
        if (!(seen & 1))
            return fail(d, CC_EPARSE, "needs \"condition\", the index of the anchor condition");
        if (!(seen & 4))
            return fail(d, CC_EPARSE, "needs \"to_days\", the end of the window in days");
        condition->anchor.present = true;
        return 0;
    }
    default:
        return read_bool(d, value, &condition->exclude);
    }
}

static int read_condition(struct decoder *d, const msgpack_object *obj,
                          struct cc_query_condition *condition)
{
    static const char *const keys[] = {"codes",      "system", "codelist", "settings",
                                       "roles",      "date_range", "anchor", "exclude"};
    int rc = read_map(d, obj, keys, 8, condition, read_condition_field, NULL);
    if (rc)
        return rc;
    if (condition->n_codes && condition->codelist[0])
        return fail(d, CC_EPARSE, "has both \"codes\" and \"codelist\" (give one)");
    if (condition->n_codes && !condition->system)
        return fail(d, CC_EPARSE, "\"codes\" need a \"system\" (snomed, icd10 or opcs4)");
    if (!condition->n_codes && !condition->codelist[0] && condition->system)
        return fail(d, CC_EPARSE, "\"system\" without \"codes\" or \"codelist\"");
    /* The store keeps ICD-10 codes without HES's filler ("I10X" is I10). */
    if (condition->system == CC_CODE_ICD10)
        for (uint32_t i = 0; i < condition->n_codes; i++) {
            char *text = condition->codes[i].text;
            if (strlen(text) == 4 && (text[3] == 'X'))
                text[3] = '\0';
        }
    return 0;
}

static int compare_area_codes(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int read_areas_field(struct decoder *d, void *target, int key,
                            const msgpack_object *value)
{
    struct cc_query_areas *areas = target;
    int rc, v = 0;
    if (key == 0) {
        rc = read_name(d, value, cc_query_area_level_name, CC_AREA_NATION, "area level", &v);
        if (!rc && v != CC_AREA_LAD && v != CC_AREA_ICB && v != CC_AREA_REGION)
            return fail(d, CC_EPARSE, "areas are filtered at lad, icb or region level, not %s",
                        cc_query_area_level_name(v));
        areas->level = (uint8_t)v;
        return rc;
    }
    rc = want(d, value, MSGPACK_OBJECT_ARRAY, "an array of area codes");
    if (rc)
        return rc;
    uint32_t n = value->via.array.size;
    if (n == 0)
        return fail(d, CC_EPARSE, "empty (leave \"areas\" out for every area)");
    if (n > d->limits->max_areas)
        return fail(d, CC_ETOOBIG, "%u areas, the limit is %u", n, d->limits->max_areas);
    areas->codes = cc_query_alloc(d->query, (size_t)n * sizeof *areas->codes);
    if (!areas->codes)
        return fail(d, CC_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        size_t old = path_index(d, i);
        const msgpack_object *code = &value->via.array.ptr[i];
        rc = want(d, code, MSGPACK_OBJECT_STR, "an area code");
        if (rc)
            return rc;
        char buf[40];
        if (code->via.str.size != CC_AREA_CODE_BYTES - 1)
            return fail(d, CC_EPARSE, "'%s' is not an area code (9 characters, as E08000035)",
                        shown(code->via.str.ptr, code->via.str.size, buf));
        for (size_t c = 0; c < code->via.str.size; c++)
            areas->codes[i][c] = (char)toupper((unsigned char)code->via.str.ptr[c]);
        path_set(d, old);
    }
    areas->n_codes = n;
    qsort(areas->codes, n, sizeof *areas->codes, compare_area_codes);
    for (uint32_t i = 1; i < n; i++)
        if (!strcmp(areas->codes[i - 1], areas->codes[i]))
            return fail(d, CC_EPARSE, "'%s' appears twice", areas->codes[i]);
    return 0;
}

static int read_age_field(struct decoder *d, void *target, int key, const msgpack_object *value)
{
    struct cc_query_age_range *age = target;
    int64_t v = 0;
    int rc = read_int(d, value, 0, 120, &v);
    if (key == 0)
        age->min_years = (uint8_t)v;
    else
        age->max_years = (uint8_t)v;
    return rc;
}

static int read_filters_field(struct decoder *d, void *target, int key,
                              const msgpack_object *value)
{
    struct cc_query_filters *filters = target;
    int rc;
    uint32_t mask = 0;
    switch (key) {
    case 0: { /* conditions */
        rc = want(d, value, MSGPACK_OBJECT_ARRAY, "an array of conditions");
        if (rc)
            return rc;
        uint32_t n = value->via.array.size;
        if (n > d->limits->max_conditions)
            return fail(d, CC_ETOOBIG, "%u conditions, the limit is %u", n,
                        d->limits->max_conditions);
        if (n) {
            filters->conditions = cc_query_alloc(d->query, (size_t)n * sizeof *filters->conditions);
            if (!filters->conditions)
                return fail(d, CC_ENOMEM, "out of memory");
        }
        filters->n_conditions = n;
        for (uint32_t i = 0; i < n; i++) {
            size_t old = path_index(d, i);
            rc = read_condition(d, &value->via.array.ptr[i], &filters->conditions[i]);
            if (rc)
                return rc;
            path_set(d, old);
        }
        return 0;
    }
    case 1:
        return read_date_range(d, value, &filters->date_range);
    case 2: {
        static const char *const keys[] = {"min", "max"};
        uint32_t seen = 0;
        filters->age.max_years = 120;
        rc = read_map(d, value, keys, 2, &filters->age, read_age_field, &seen);
        if (rc)
            return rc;
        if (!seen)
            return fail(d, CC_EPARSE, "empty (give \"min\", \"max\" or both)");
        filters->age.present = true;
        return 0;
    }
    case 3:
        rc = read_name_set(d, value, cc_query_sex_name, CC_SEX_INDETERMINATE, "sex", &mask);
        filters->sex_mask = (uint16_t)mask;
        return rc;
    case 4:
        rc = read_name_set(d, value, cc_query_setting_name, CC_SETTING_COMMUNITY, "setting",
                           &mask);
        filters->setting_mask = (uint8_t)mask;
        return rc;
    default: {
        static const char *const keys[] = {"level", "codes"};
        uint32_t seen = 0;
        rc = read_map(d, value, keys, 2, &filters->areas, read_areas_field, &seen);
        if (rc)
            return rc;
        if (!(seen & 1))
            return fail(d, CC_EPARSE, "needs a \"level\" (lad, icb or region)");
        if (!(seen & 2))
            return fail(d, CC_EPARSE, "needs \"codes\"");
        return 0;
    }
    }
}

static int read_query_field(struct decoder *d, void *target, int key,
                            const msgpack_object *value)
{
    struct cc_query *query = target;
    int rc, v = 0;
    int64_t n = 0;
    switch (key) {
    case 0: /* v */
        if (value->type == MSGPACK_OBJECT_POSITIVE_INTEGER && value->via.u64 != CC_QUERY_VERSION)
            return fail(d, CC_EUNSUPPORTED, "version %llu is not supported (this is version %d)",
                        (unsigned long long)value->via.u64, CC_QUERY_VERSION);
        rc = read_int(d, value, CC_QUERY_VERSION, CC_QUERY_VERSION, &n);
        query->version = (uint32_t)n;
        return rc;
    case 1:
        rc = read_name(d, value, cc_query_measure_name, CC_MEASURE_POPULATION, "measure", &v);
        query->measure = (uint8_t)v;
        return rc;
    case 2:
        rc = read_name(d, value, cc_query_population_source_name, CC_POPULATION_ESTIMATE,
                       "population source", &v);
        query->population_source = (uint8_t)v;
        return rc;
    case 3:
        rc = read_int(d, value, 0, (int64_t)d->limits->max_conditions, &n);
        query->events_of = (int32_t)n;
        return rc;
    case 4:
        query->has_as_of = true;
        return read_month(d, value, &query->as_of);
    case 5: { /* dimensions */
        rc = want(d, value, MSGPACK_OBJECT_ARRAY, "an array of dimensions");
        if (rc)
            return rc;
        uint32_t count = value->via.array.size;
        uint32_t limit = d->limits->max_dimensions < CC_QUERY_DIMENSIONS_CAP
                             ? d->limits->max_dimensions
                             : CC_QUERY_DIMENSIONS_CAP;
        if (count > limit)
            return fail(d, CC_ETOOBIG, "%u dimensions, the limit is %u", count, limit);
        if (count) {
            query->dimensions = cc_query_alloc(d->query, (size_t)count * sizeof *query->dimensions);
            if (!query->dimensions)
                return fail(d, CC_ENOMEM, "out of memory");
        }
        query->n_dimensions = count;
        for (uint32_t i = 0; i < count; i++) {
            size_t old = path_index(d, i);
            rc = read_dimension(d, &value->via.array.ptr[i], &query->dimensions[i]);
            if (rc)
                return rc;
            path_set(d, old);
        }
        return 0;
    }
    default: {
        static const char *const keys[] = {"conditions", "date_range", "age",
                                           "sex",        "settings",   "areas"};
        return read_map(d, value, keys, 6, &query->filters, read_filters_field, NULL);
    }
    }
}

static int decode_root(struct decoder *d, const msgpack_object *obj)
{
    static const char *const keys[] = {"v",     "measure",    "population", "events_of",
                                       "as_of", "dimensions", "filters"};
    struct cc_query *query = d->query;
    query->version = 0;
    query->measure = 0;
    query->population_source = 0;
    int rc = read_map(d, obj, keys, 7, query, read_query_field, NULL);
    if (rc)
        return rc;
    if (!query->version)
        return fail(d, CC_EPARSE, "\"v\" is missing (this is version %d)", CC_QUERY_VERSION);
    if (!query->measure)
        return fail(d, CC_EPARSE, "\"measure\" is missing (persons, events or population)");
    if (query->population_source && query->measure != CC_MEASURE_POPULATION)
        return fail(d, CC_EPARSE, "\"population\" belongs to the population measure only");
    if (!query->population_source)
        query->population_source = CC_POPULATION_REGISTERED;
    return 0;
}

/* Depth of nested containers in obj (a scalar has depth 0), stopping once
 * it exceeds limit. */
static uint32_t object_depth(const msgpack_object *obj, uint32_t limit)
{
    if (limit == 0)
        return obj->type == MSGPACK_OBJECT_ARRAY || obj->type == MSGPACK_OBJECT_MAP ? 1 : 0;
    uint32_t deepest = 0;
    if (obj->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < obj->via.array.size && deepest < limit; i++) {
            uint32_t depth = object_depth(&obj->via.array.ptr[i], limit - 1);
            deepest = depth > deepest ? depth : deepest;
        }
        return deepest + 1;
    }
    if (obj->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < obj->via.map.size && deepest < limit; i++) {
            uint32_t depth = object_depth(&obj->via.map.ptr[i].key, limit - 1);
            deepest = depth > deepest ? depth : deepest;
            depth = object_depth(&obj->via.map.ptr[i].val, limit - 1);
            deepest = depth > deepest ? depth : deepest;
        }
        return deepest + 1;
    }
    return 0;
}

int cc_query_decode_object(const msgpack_object *obj, const struct cc_query_limits *limits,
                           struct cc_query **out, char *errbuf, size_t errlen)
{
    struct cc_query_limits defaults;
    if (!limits) {
        cc_query_limits_default(&defaults);
        limits = &defaults;
    }
    struct decoder d = {.limits = limits, .errbuf = errbuf, .errlen = errlen};
    *out = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (object_depth(obj, limits->max_nesting_depth) > limits->max_nesting_depth)
        return fail(&d, CC_ETOOBIG, "nested deeper than %u levels", limits->max_nesting_depth);
    int rc = cc_query_new(&d.query);
    if (rc)
        return fail(&d, rc, "out of memory");
    rc = decode_root(&d, obj);
    if (rc) {
        cc_query_free(d.query);
        return rc;
    }
    *out = d.query;
    return 0;
}

/* ---- bounding raw msgpack before unpacking ---- */

/*
 * Checks the msgpack encoding of one object in data[0..len) without
 * allocating (cc_msgpack_check): every container's element count must fit
 * in the bytes left, nesting must stay within max_depth, and the object must
 * end exactly at len. 0, or CC_EPARSE / CC_ETOOBIG with the reason.
 */
static int skim_msgpack(const unsigned char *data, size_t len, uint32_t max_depth,
                        struct decoder *d)
{
    struct cc_msgpack_fault fault;
    if (max_depth > CC_MSGPACK_DEPTH_LIMIT - 1)
        max_depth = CC_MSGPACK_DEPTH_LIMIT - 1;
    switch (cc_msgpack_check(data, len, max_depth, &fault)) {
    case CC_MSGPACK_OK:
        return 0;
    case CC_MSGPACK_BAD_BYTE:
        return fail(d, CC_EPARSE, "malformed msgpack: byte 0x%02x at %zu", data[fault.at],
                    fault.at);
    case CC_MSGPACK_OVERLONG:
        return fail(d, CC_EPARSE,
                    "malformed msgpack: a container declares %llu elements in %zu bytes",
                    (unsigned long long)fault.elements, fault.bytes_left);
    case CC_MSGPACK_TOO_DEEP:
        return fail(d, CC_ETOOBIG, "nested deeper than %u levels", max_depth);
    case CC_MSGPACK_TRAILING:
        return fail(d, CC_EPARSE, "malformed msgpack: %zu bytes after the query",
                    fault.bytes_left);
    default:
        return fail(d, CC_EPARSE, "malformed msgpack: truncated");
    }
}

int cc_query_decode(const char *data, size_t len, const struct cc_query_limits *limits,
                    struct cc_query **out, char *errbuf, size_t errlen)
{
    struct cc_query_limits defaults;
    if (!limits) {
        cc_query_limits_default(&defaults);
        limits = &defaults;
    }
    struct decoder d = {.limits = limits, .errbuf = errbuf, .errlen = errlen};
    *out = NULL;
    if (len > limits->max_query_bytes)
        return fail(&d, CC_ETOOBIG, "%zu bytes, the limit is %u", len, limits->max_query_bytes);
    int rc = skim_msgpack((const unsigned char *)data, len, limits->max_nesting_depth, &d);
    if (rc)
        return rc;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(&unpacked, data, len, &offset);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
        rc = fail(&d, CC_ENOMEM, "out of memory");
    else if (ret != MSGPACK_UNPACK_SUCCESS || offset != len)
        rc = fail(&d, CC_EPARSE, "malformed msgpack");
    else
        rc = cc_query_decode_object(&unpacked.data, limits, out, errbuf, errlen);
    msgpack_unpacked_destroy(&unpacked);
    return rc;
}

/* ---- JSON ---- */

/* Packs a JSON value as msgpack, refusing nesting deeper than depth_left. */
static int pack_json(msgpack_packer *pk, const json_t *value, uint32_t depth_left,
                     struct decoder *d)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        if (depth_left == 0)
            return fail(d, CC_ETOOBIG, "nested deeper than %u levels", d->limits->max_nesting_depth);
        const char *key;
        json_t *member;
        if (msgpack_pack_map(pk, json_object_size(value)))
            return CC_ENOMEM;
        json_object_foreach((json_t *)value, key, member) {
            size_t key_len = strlen(key);
            if (msgpack_pack_str(pk, key_len) || msgpack_pack_str_body(pk, key, key_len))
                return CC_ENOMEM;
            int rc = pack_json(pk, member, depth_left - 1, d);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (depth_left == 0)
            return fail(d, CC_ETOOBIG, "nested deeper than %u levels", d->limits->max_nesting_depth);
        size_t n = json_array_size(value);
        if (msgpack_pack_array(pk, n))
            return CC_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            int rc = pack_json(pk, json_array_get(value, i), depth_left - 1, d);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        return msgpack_pack_str(pk, json_string_length(value)) ||
                       msgpack_pack_str_body(pk, json_string_value(value), json_string_length(value))
                   ? CC_ENOMEM
                   : 0;
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, json_integer_value(value)) ? CC_ENOMEM : 0;
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(value)) ? CC_ENOMEM : 0;
    case JSON_TRUE:
        return msgpack_pack_true(pk) ? CC_ENOMEM : 0;
    case JSON_FALSE:
        return msgpack_pack_false(pk) ? CC_ENOMEM : 0;
    case JSON_NULL:
        return msgpack_pack_nil(pk) ? CC_ENOMEM : 0;
    }
    return CC_EINTERNAL;
}

int cc_query_decode_json(const char *text, size_t len, const struct cc_query_limits *limits,
                         struct cc_query **out, char *errbuf, size_t errlen)
{
    struct cc_query_limits defaults;
    if (!limits) {
        cc_query_limits_default(&defaults);
        limits = &defaults;
    }
    struct decoder d = {.limits = limits, .errbuf = errbuf, .errlen = errlen};
    *out = NULL;
    if (len > limits->max_query_bytes)
        return fail(&d, CC_ETOOBIG, "%zu bytes, the limit is %u", len, limits->max_query_bytes);
    json_error_t error;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES,
                              &error);
    if (!root)
        return fail(&d, CC_EPARSE, "malformed JSON at line %d, column %d: %s", error.line,
                    error.column, error.text);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    int rc = pack_json(&packer, root, limits->max_nesting_depth, &d);
    if (rc == CC_ENOMEM)
        fail(&d, rc, "out of memory");
    json_decref(root);
    if (!rc) {
        /* The msgpack form may be a little larger than the JSON was; the
         * byte limit has been applied to the text. */
        struct cc_query_limits relaxed = *limits;
        relaxed.max_query_bytes = buffer.size > relaxed.max_query_bytes
                                      ? (uint32_t)buffer.size
                                      : relaxed.max_query_bytes;
        rc = cc_query_decode(buffer.data, buffer.size, &relaxed, out, errbuf, errlen);
    }
    msgpack_sbuffer_destroy(&buffer);
    return rc;
}

/* ---- encoding ---- */

#define PACK_(call)                                                                                \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return CC_ENOMEM;                                                                      \
    } while (0)

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    if (!s)
        return CC_EINVAL;
    size_t len = strlen(s);
    PACK_(msgpack_pack_str(pk, len));
    PACK_(msgpack_pack_str_body(pk, s, len));
    return 0;
}

#define PACK_STR_(pk, s)                                                                           \
    do {                                                                                           \
        int rc_ = pack_cstr((pk), (s));                                                            \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

static int pack_month(msgpack_packer *pk, cc_month month)
{
    char buf[8];
    cc_query_month_format(month, buf);
    return pack_cstr(pk, buf);
}

static int pack_date_range(msgpack_packer *pk, const struct cc_query_months *range)
{
    PACK_(msgpack_pack_map(pk, 2));
    PACK_STR_(pk, "from");
    int rc = pack_month(pk, range->from);
    if (rc)
        return rc;
    PACK_STR_(pk, "to");
    return pack_month(pk, range->to);
}

static unsigned popcount32(uint32_t mask)
{
    unsigned n = 0;
    for (; mask; mask &= mask - 1)
        n++;
    return n;
}

static int pack_name_set(msgpack_packer *pk, uint32_t mask, const char *(*name_of)(int))
{
    PACK_(msgpack_pack_array(pk, popcount32(mask)));
    for (int v = 0; v < 32; v++)
        if (mask & (1u << v))
            PACK_STR_(pk, name_of(v));
    return 0;
}

static int pack_dimension(msgpack_packer *pk, const struct cc_query_dimension *dim)
{
    if (dim->kind != CC_DIM_AGE_BAND) {
        PACK_STR_(pk, cc_query_dimension_name(dim->kind));
        return 0;
    }
    PACK_(msgpack_pack_map(pk, 2));
    PACK_STR_(pk, "name");
    PACK_STR_(pk, "age_band");
    PACK_STR_(pk, "bands");
    if (dim->age_banding == CC_AGE_BANDS_5Y)
        PACK_STR_(pk, "5y");
    else if (dim->age_banding == CC_AGE_BANDS_10Y)
        PACK_STR_(pk, "10y");
    else if (dim->age_banding == CC_AGE_BANDS_CUSTOM) {
        PACK_(msgpack_pack_array(pk, dim->n_age_bounds));
        for (uint32_t i = 0; i < dim->n_age_bounds; i++)
            PACK_(msgpack_pack_uint8(pk, dim->age_bounds[i]));
    } else
        return CC_EINVAL;
    return 0;
}

static int pack_condition(msgpack_packer *pk, const struct cc_query_condition *c)
{
    int rc;
    uint32_t n = (c->n_codes > 0) + (c->system != 0) + (c->codelist[0] != 0) +
                 (c->setting_mask != 0) + (c->role_mask != 0) + c->date_range.present +
                 c->anchor.present + c->exclude;
    PACK_(msgpack_pack_map(pk, n));
    if (c->n_codes) {
        PACK_STR_(pk, "codes");
        PACK_(msgpack_pack_array(pk, c->n_codes));
        for (uint32_t i = 0; i < c->n_codes; i++)
            PACK_STR_(pk, c->codes[i].text);
    }
    if (c->system) {
        PACK_STR_(pk, "system");
        PACK_STR_(pk, cc_query_system_name(c->system));
    }
    if (c->codelist[0]) {
        PACK_STR_(pk, "codelist");
        PACK_STR_(pk, c->codelist);
    }
    if (c->setting_mask) {
        PACK_STR_(pk, "settings");
        if ((rc = pack_name_set(pk, c->setting_mask, cc_query_setting_name)))
            return rc;
    }
    if (c->role_mask) {
        PACK_STR_(pk, "roles");
        if ((rc = pack_name_set(pk, c->role_mask, cc_query_role_name)))
            return rc;
    }
    if (c->date_range.present) {
        PACK_STR_(pk, "date_range");
        if ((rc = pack_date_range(pk, &c->date_range)))
            return rc;
    }
    if (c->anchor.present) {
        PACK_STR_(pk, "anchor");
        PACK_(msgpack_pack_map(pk, 3));
        PACK_STR_(pk, "condition");
        PACK_(msgpack_pack_uint32(pk, c->anchor.condition));
        PACK_STR_(pk, "from_days");
        PACK_(msgpack_pack_int32(pk, c->anchor.from_days));
        PACK_STR_(pk, "to_days");
        PACK_(msgpack_pack_int32(pk, c->anchor.to_days));
    }
    if (c->exclude) {
        PACK_STR_(pk, "exclude");
        PACK_(msgpack_pack_true(pk));
    }
    return 0;
}

static int pack_filters(msgpack_packer *pk, const struct cc_query_filters *f)
{
    int rc;
    uint32_t n = (f->n_conditions > 0) + f->date_range.present + f->age.present +
                 (f->sex_mask != 0) + (f->setting_mask != 0) + (f->areas.n_codes > 0);
    PACK_(msgpack_pack_map(pk, n));
    if (f->n_conditions) {
        PACK_STR_(pk, "conditions");
        PACK_(msgpack_pack_array(pk, f->n_conditions));
        for (uint32_t i = 0; i < f->n_conditions; i++)
            if ((rc = pack_condition(pk, &f->conditions[i])))
                return rc;
    }
    if (f->date_range.present) {
        PACK_STR_(pk, "date_range");
        if ((rc = pack_date_range(pk, &f->date_range)))
            return rc;
    }
    if (f->age.present) {
        PACK_STR_(pk, "age");
        PACK_(msgpack_pack_map(pk, 2));
        PACK_STR_(pk, "min");
        PACK_(msgpack_pack_uint8(pk, f->age.min_years));
        PACK_STR_(pk, "max");
        PACK_(msgpack_pack_uint8(pk, f->age.max_years));
    }
    if (f->sex_mask) {
        PACK_STR_(pk, "sex");
        if ((rc = pack_name_set(pk, f->sex_mask, cc_query_sex_name)))
            return rc;
    }
    if (f->setting_mask) {
        PACK_STR_(pk, "settings");
        if ((rc = pack_name_set(pk, f->setting_mask, cc_query_setting_name)))
            return rc;
    }
    if (f->areas.n_codes) {
        PACK_STR_(pk, "areas");
        PACK_(msgpack_pack_map(pk, 2));
        PACK_STR_(pk, "level");
        PACK_STR_(pk, cc_query_area_level_name(f->areas.level));
        PACK_STR_(pk, "codes");
        PACK_(msgpack_pack_array(pk, f->areas.n_codes));
        for (uint32_t i = 0; i < f->areas.n_codes; i++)
            PACK_STR_(pk, f->areas.codes[i]);
    }
    return 0;
}

static bool filters_present(const struct cc_query_filters *f)
{
    return f->n_conditions || f->date_range.present || f->age.present || f->sex_mask ||
           f->setting_mask || f->areas.n_codes;
}

int cc_query_pack(const struct cc_query *q, msgpack_packer *pk)
{
    int rc;
    bool population = q->measure == CC_MEASURE_POPULATION &&
                      q->population_source != CC_POPULATION_REGISTERED;
    uint32_t n = 2 + population + (q->events_of >= 0) + q->has_as_of + (q->n_dimensions > 0) +
                 filters_present(&q->filters);
    PACK_(msgpack_pack_map(pk, n));
    PACK_STR_(pk, "v");
    PACK_(msgpack_pack_uint32(pk, q->version));
    PACK_STR_(pk, "measure");
    PACK_STR_(pk, cc_query_measure_name(q->measure));
    if (population) {
        PACK_STR_(pk, "population");
        PACK_STR_(pk, cc_query_population_source_name(q->population_source));
    }
    if (q->events_of >= 0) {
        PACK_STR_(pk, "events_of");
        PACK_(msgpack_pack_int32(pk, q->events_of));
    }
    if (q->has_as_of) {
        PACK_STR_(pk, "as_of");
        if ((rc = pack_month(pk, q->as_of)))
            return rc;
    }
    if (q->n_dimensions) {
        PACK_STR_(pk, "dimensions");
        PACK_(msgpack_pack_array(pk, q->n_dimensions));
        for (uint32_t i = 0; i < q->n_dimensions; i++)
            if ((rc = pack_dimension(pk, &q->dimensions[i])))
                return rc;
    }
    if (filters_present(&q->filters)) {
        PACK_STR_(pk, "filters");
        if ((rc = pack_filters(pk, &q->filters)))
            return rc;
    }
    return 0;
}

int cc_query_encode(const struct cc_query *query, char **out, size_t *out_len)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    *out = NULL;
    *out_len = 0;
    int rc = cc_query_pack(query, &packer);
    if (rc) {
        msgpack_sbuffer_destroy(&buffer);
        return rc;
    }
    *out_len = buffer.size;
    *out = msgpack_sbuffer_release(&buffer);
    if (!*out) {
        /* an empty buffer is never produced: the map header is one byte */
        return CC_EINTERNAL;
    }
    return 0;
}

/* Converts an unpacked msgpack object to JSON (the query's own canonical
 * form holds only maps, arrays, strings, integers and booleans). */
static json_t *object_to_json(const msgpack_object *obj)
{
    switch (obj->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(obj->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return json_integer((json_int_t)obj->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer((json_int_t)obj->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return json_real(obj->via.f64);
    case MSGPACK_OBJECT_STR: return json_stringn(obj->via.str.ptr, obj->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *array = json_array();
        for (uint32_t i = 0; array && i < obj->via.array.size; i++) {
            json_t *item = object_to_json(&obj->via.array.ptr[i]);
            if (!item || json_array_append_new(array, item)) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *map = json_object();
        for (uint32_t i = 0; map && i < obj->via.map.size; i++) {
            const msgpack_object *key = &obj->via.map.ptr[i].key;
            json_t *value = object_to_json(&obj->via.map.ptr[i].val);
            if (!value || key->type != MSGPACK_OBJECT_STR ||
                json_object_setn_new(map, key->via.str.ptr, key->via.str.size, value)) {
                json_decref(map);
                return NULL;
            }
        }
        return map;
    }
    default: return NULL;
    }
}

int cc_query_encode_json(const struct cc_query *query, char **out)
{
    char *bytes = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = cc_query_encode(query, &bytes, &len);
    if (rc)
        return rc;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    json_t *json = NULL;
    if (msgpack_unpack_next(&unpacked, bytes, len, &offset) != MSGPACK_UNPACK_SUCCESS) {
        rc = CC_EINTERNAL;
        goto fail;
    }
    json = object_to_json(&unpacked.data);
    if (!json) {
        rc = CC_ENOMEM;
        goto fail;
    }
    *out = json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out)
        rc = CC_ENOMEM;
fail:
    json_decref(json);
    msgpack_unpacked_destroy(&unpacked);
    free(bytes);
    return rc;
}
