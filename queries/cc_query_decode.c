/*
 * cc_query_decode.c: a query from its wire form, a msgpack map.
 * docs/query-model.md documents every key.
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

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_query_internal.h"

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
    va_list ap;
    va_start(ap, fmt);
    cc_query_vfail(d->errbuf, d->errlen, rc, d->path, fmt, ap);
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

/* An array of the query's elements, read into the query's arena. */
typedef int (*element_fn)(struct decoder *d, const msgpack_object *obj, void *element);

struct array_spec {
    const char *type;     /* what the array must be: "an array of codes" */
    const char *plural;   /* what it holds, in "600 codes, the limit is 500" */
    const char *if_empty; /* the reason an empty array is refused; NULL: allowed */
    uint32_t max;         /* the most elements allowed */
    size_t element_bytes;
    element_fn read;
};

/* Reads obj, an array of at most spec->max elements, each with spec->read,
 * into *elements (in the query's arena; NULL when empty) and *n_out. */
static int read_array(struct decoder *d, const msgpack_object *obj, const struct array_spec *spec,
                      void **elements, uint32_t *n_out)
{
    int rc = want(d, obj, MSGPACK_OBJECT_ARRAY, spec->type);
    if (rc)
        return rc;
    uint32_t n = obj->via.array.size;
    if (n == 0 && spec->if_empty)
        return fail(d, CC_EPARSE, "%s", spec->if_empty);
    if (n > spec->max)
        return fail(d, CC_ETOOBIG, "%u %s, the limit is %u", n, spec->plural, spec->max);
    unsigned char *array = NULL;
    if (n) {
        array = cc_query_alloc(d->query, (size_t)n * spec->element_bytes);
        if (!array)
            return fail(d, CC_ENOMEM, "out of memory");
    }
    *elements = array;
    *n_out = n;
    for (uint32_t i = 0; i < n; i++) {
        size_t old = path_index(d, i);
        rc = spec->read(d, &obj->via.array.ptr[i], array + (size_t)i * spec->element_bytes);
        if (rc)
            return rc;
        path_set(d, old);
    }
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
        else if (obj->via.str.size == 2 && !memcmp(obj->via.str.ptr, "1y", 2))
            dim->age_banding = CC_AGE_BANDS_1Y;
        else {
            char buf[40];
            return fail(d, CC_EPARSE,
                        "unknown age banding '%s' (\"1y\", \"5y\", \"10y\" or an array of "
                        "lower bounds)",
                        shown(obj->via.str.ptr, obj->via.str.size, buf));
        }
        return 0;
    }
    int rc = want(d, obj, MSGPACK_OBJECT_ARRAY,
                  "\"1y\", \"5y\", \"10y\" or an array of lower bounds");
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
    /* Bounds that are a named banding are that banding (one canonical form). */
    for (int step = 5; step <= 10; step += 5) {
        uint32_t n_named = 90 / (uint32_t)step + 1; /* 0, step, ..., 90 */
        bool same = dim->n_age_bounds == n_named;
        for (uint32_t i = 0; same && i < n_named; i++)
            same = dim->age_bounds[i] == i * (uint32_t)step;
        if (same) {
            dim->age_banding = step == 5 ? CC_AGE_BANDS_5Y : CC_AGE_BANDS_10Y;
            dim->n_age_bounds = 0;
            memset(dim->age_bounds, 0, sizeof dim->age_bounds);
        }
    }
    return 0;
}

static int read_dimension_field(struct decoder *d, void *target, int key,
                                const msgpack_object *value)
{
    struct cc_query_dimension *dim = target;
    if (key == 0) {
        int kind = 0, rc = read_name(d, value, cc_query_dimension_name, CC_DIM_LSOA, "dimension",
                                 &kind);
        dim->kind = (uint8_t)kind;
        return rc;
    }
    return read_age_bands(d, value, dim);
}

static int read_dimension(struct decoder *d, const msgpack_object *obj, void *element)
{
    struct cc_query_dimension *dim = element;
    static const char *const keys[] = {"name", "bands"};
    int rc;
    if (obj->type == MSGPACK_OBJECT_STR) {
        int kind = 0;
        rc = read_name(d, obj, cc_query_dimension_name, CC_DIM_LSOA, "dimension", &kind);
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
static int read_code(struct decoder *d, const msgpack_object *obj, void *element)
{
    struct cc_query_code *code = element;
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

/* The codes of one system in a map of codes by system. */
struct codes_by_system {
    struct cc_query_code *codes[CC_CODE_OPCS4 + 1];
    uint32_t n[CC_CODE_OPCS4 + 1];
};

static int read_system_codes_field(struct decoder *d, void *target, int key,
                                   const msgpack_object *value)
{
    struct codes_by_system *by = target;
    const struct array_spec spec = {
        .type = "an array of codes",
        .plural = "codes",
        .if_empty = "empty (leave the system out)",
        .max = d->limits->max_codes_per_condition,
        .element_bytes = sizeof **by->codes,
        .read = read_code,
    };
    void *codes = NULL;
    int rc = read_array(d, value, &spec, &codes, &by->n[key + 1]);
    by->codes[key + 1] = codes;
    return rc;
}

/* "codes": {"snomed": [...], "icd10": [...]}: codes of several systems, each
 * code taking the system it is listed under; kept grouped by system in enum
 * order, so the order of the map's keys does not matter. */
static int read_codes_by_system(struct decoder *d, const msgpack_object *value,
                                struct cc_query_condition *condition)
{
    /* in enum cc_code_system order, from CC_CODE_SNOMED */
    static const char *const keys[] = {"snomed", "icd10", "opcs4"};
    struct codes_by_system by = {0};
    int rc = read_map(d, value, keys, 3, &by, read_system_codes_field, NULL);
    if (rc)
        return rc;
    uint32_t n = 0, n_systems = 0;
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++) {
        n += by.n[s];
        n_systems += by.n[s] > 0;
    }
    if (n == 0)
        return fail(d, CC_EPARSE, "empty (leave the key out to match any record)");
    if (n > d->limits->max_codes_per_condition)
        return fail(d, CC_ETOOBIG, "%u codes, the limit is %u", n,
                    d->limits->max_codes_per_condition);
    condition->codes = cc_query_alloc(d->query, (size_t)n * sizeof *condition->codes);
    if (!condition->codes)
        return fail(d, CC_ENOMEM, "out of memory");
    condition->n_codes = 0;
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++)
        for (uint32_t i = 0; i < by.n[s]; i++) {
            struct cc_query_code *code = &condition->codes[condition->n_codes++];
            *code = by.codes[s][i];
            code->system = (uint8_t)s;
        }
    /* one system is the plain form: an array and "system" */
    condition->system = 0;
    for (int s = CC_CODE_SNOMED; n_systems == 1 && s <= CC_CODE_OPCS4; s++)
        if (by.n[s])
            condition->system = (uint8_t)s;
    return 0;
}

static int read_condition_field(struct decoder *d, void *target, int key,
                                 const msgpack_object *value)
{
    struct cc_query_condition *condition = target;
    int rc, v = 0;
    uint32_t mask = 0;
    switch (key) {
    case 0: { /* codes */
        if (value->type == MSGPACK_OBJECT_MAP)
            return read_codes_by_system(d, value, condition);
        const struct array_spec spec = {
            .type = "an array of codes, or a map from code system to codes",
            .plural = "codes",
            .if_empty = "empty (leave the key out to match any record)",
            .max = d->limits->max_codes_per_condition,
            .element_bytes = sizeof *condition->codes,
            .read = read_code,
        };
        void *codes = NULL;
        rc = read_array(d, value, &spec, &codes, &condition->n_codes);
        condition->codes = codes;
        return rc;
    }
    case 1: /* system */
        if (condition->n_codes && condition->codes[0].system)
            return fail(d, CC_EPARSE,
                        "codes listed by system take no \"system\" (each has its own)");
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
        /* the names the registry can hold, and no others: a name of other
         * bytes could never bind, and would not survive the canonical JSON
         * form (found by fuzz_query) */
        if (!cc_codelists_name_valid(condition->codelist))
            return fail(d, CC_EPARSE,
                        "'%s' is not a codelist name (a-z, 0-9, '-', '_' and '.', from a "
                        "letter or digit)",
                        shown(value->via.str.ptr, value->via.str.size, buf));
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

static int read_condition(struct decoder *d, const msgpack_object *obj, void *element)
{
    struct cc_query_condition *condition = element;
    static const char *const keys[] = {"codes",      "system", "codelist", "settings",
                                       "roles",      "date_range", "anchor", "exclude"};
    int rc = read_map(d, obj, keys, 8, condition, read_condition_field, NULL);
    if (rc)
        return rc;
    if (condition->n_codes && condition->codelist[0])
        return fail(d, CC_EPARSE, "has both \"codes\" and \"codelist\" (give one)");
    bool by_system = condition->n_codes && condition->codes[0].system;
    if (condition->n_codes && !condition->system && !by_system)
        return fail(d, CC_EPARSE,
                    "\"codes\" need a \"system\" (snomed, icd10 or opcs4), or list them by "
                    "system ({\"snomed\": [...], \"icd10\": [...]})");
    if (!condition->n_codes && !condition->codelist[0] && condition->system)
        return fail(d, CC_EPARSE, "\"system\" without \"codes\" or \"codelist\"");
    for (uint32_t i = 0; i < condition->n_codes; i++) {
        struct cc_query_code *code = &condition->codes[i];
        if (!by_system)
            code->system = condition->system;
        /* The store keeps ICD-10 codes without HES's filler ("I10X" is I10). */
        if (code->system == CC_CODE_ICD10 && strlen(code->text) == 4 && code->text[3] == 'X')
            code->text[3] = '\0';
    }
    return 0;
}

static int compare_codes(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sorts n NUL-terminated codes of size bytes each (the canonical order of a
 * set) and refuses one given twice. */
static int sort_unique_codes(struct decoder *d, void *codes, uint32_t n, size_t size)
{
    char *base = codes;
    qsort(base, n, size, compare_codes);
    for (uint32_t i = 1; i < n; i++)
        if (!strcmp(base + (i - 1) * size, base + i * size))
            return fail(d, CC_EPARSE, "'%s' appears twice", base + i * size);
    return 0;
}

/* An area code, upper case (its level is checked by cc_query_validate()). */
static int read_area_code(struct decoder *d, const msgpack_object *obj, void *element)
{
    char *code = element; /* char[CC_AREA_CODE_BYTES], zeroed by the arena */
    int rc = want(d, obj, MSGPACK_OBJECT_STR, "an area code");
    if (rc)
        return rc;
    char buf[40];
    if (obj->via.str.size != CC_AREA_CODE_BYTES - 1)
        return fail(d, CC_EPARSE, "'%s' is not an area code (9 characters, as E08000035)",
                    shown(obj->via.str.ptr, obj->via.str.size, buf));
    for (size_t c = 0; c < obj->via.str.size; c++)
        code[c] = (char)toupper((unsigned char)obj->via.str.ptr[c]);
    code[CC_AREA_CODE_BYTES - 1] = '\0';
    return 0;
}

static int read_areas_field(struct decoder *d, void *target, int key,
                            const msgpack_object *value)
{
    struct cc_query_areas *areas = target;
    int rc, v = 0;
    if (key == 0) {
        rc = read_name(d, value, cc_query_area_level_name, CC_AREA_NATION, "area level", &v);
        if (!rc && v == CC_AREA_NATION)
            return fail(d, CC_EPARSE,
                        "areas are filtered at lsoa, lad, icb or region level, not %s",
                        cc_query_area_level_name(v));
        areas->level = (uint8_t)v;
        return rc;
    }
    const struct array_spec spec = {
        .type = "an array of area codes",
        .plural = "areas",
        .if_empty = "empty (leave \"areas\" out for every area)",
        .max = d->limits->max_areas,
        .element_bytes = sizeof *areas->codes,
        .read = read_area_code,
    };
    void *codes = NULL;
    rc = read_array(d, value, &spec, &codes, &areas->n_codes);
    areas->codes = codes;
    if (rc)
        return rc;
    return sort_unique_codes(d, areas->codes, areas->n_codes, sizeof *areas->codes);
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

/* ---- the combine tree ---- */

#define COMBINE_NODES_CAP 128 /* nodes a tree may have while it is read */

struct tree_reader {
    struct cc_query_node *nodes; /* [COMBINE_NODES_CAP] */
    uint32_t n;
};

/* Reads a node: a condition index, {"and": [...]}, {"or": [...]} or
 * {"not": node}; *index_out gets its place in nodes. */
static int read_node(struct decoder *d, const msgpack_object *obj, struct tree_reader *t,
                     uint32_t depth, uint32_t *index_out)
{
    if (t->n == COMBINE_NODES_CAP)
        return fail(d, CC_ETOOBIG, "more than %d nodes", COMBINE_NODES_CAP);
    uint32_t index = t->n++;
    struct cc_query_node *node = &t->nodes[index];
    *index_out = index;
    if (obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
        obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        int64_t v = 0;
        int rc = read_int(d, obj, 0, (int64_t)d->limits->max_conditions - 1, &v);
        node->op = CC_NODE_CONDITION;
        node->condition = (uint32_t)v;
        return rc;
    }
    if (obj->type != MSGPACK_OBJECT_MAP || obj->via.map.size != 1)
        return fail(d, CC_EPARSE,
                    "must be a condition index or a map of one key: \"and\", \"or\" or \"not\"");
    const msgpack_object *key = &obj->via.map.ptr[0].key;
    const msgpack_object *value = &obj->via.map.ptr[0].val;
    int op = 0, rc = read_name(d, key, cc_query_node_op_name, CC_NODE_NOT, "operator", &op);
    if (rc)
        return rc;
    size_t old = path_key(d, cc_query_node_op_name(op));
    if (depth >= CC_QUERY_COMBINE_DEPTH_CAP)
        return fail(d, CC_ETOOBIG, "more than %d levels of and, or and not",
                    CC_QUERY_COMBINE_DEPTH_CAP);
    node->op = (uint8_t)op;
    if (op == CC_NODE_NOT) {
        node->children = cc_query_alloc(d->query, sizeof *node->children);
        if (!node->children)
            return fail(d, CC_ENOMEM, "out of memory");
        node->n_children = 1;
        rc = read_node(d, value, t, depth + 1, &node->children[0]);
    } else {
        rc = want(d, value, MSGPACK_OBJECT_ARRAY, "an array of operands");
        if (rc)
            return rc;
        uint32_t n = value->via.array.size;
        if (n == 0)
            return fail(d, CC_EPARSE, "empty (give the operands)");
        if (n > COMBINE_NODES_CAP)
            return fail(d, CC_ETOOBIG, "more than %d nodes", COMBINE_NODES_CAP);
        node->children = cc_query_alloc(d->query, n * sizeof *node->children);
        if (!node->children)
            return fail(d, CC_ENOMEM, "out of memory");
        node->n_children = n;
        for (uint32_t i = 0; i < n && !rc; i++) {
            size_t before = path_index(d, i);
            rc = read_node(d, &value->via.array.ptr[i], t, depth + 1, &node->children[i]);
            if (!rc)
                path_set(d, before);
        }
    }
    if (!rc)
        path_set(d, old);
    return rc;
}

static int read_combine(struct decoder *d, const msgpack_object *obj,
                        struct cc_query_filters *filters)
{
    struct tree_reader t = {.nodes = cc_query_alloc(d->query, COMBINE_NODES_CAP *
                                                                  sizeof *filters->nodes)};
    if (!t.nodes)
        return fail(d, CC_ENOMEM, "out of memory");
    uint32_t root = 0;
    int rc = read_node(d, obj, &t, 0, &root);
    filters->nodes = t.nodes;
    filters->n_nodes = t.n;
    return rc;
}

/* A GP practice's ODS code: 1 to 7 letters and digits, upper case. */
static int read_practice_code(struct decoder *d, const msgpack_object *obj, void *element)
{
    char *code = element; /* char[CC_PRACTICE_CODE_BYTES], zeroed by the arena */
    int rc = want(d, obj, MSGPACK_OBJECT_STR, "a practice code");
    if (rc)
        return rc;
    char buf[40];
    size_t len = obj->via.str.size;
    bool ok = len > 0 && len < CC_PRACTICE_CODE_BYTES;
    for (size_t c = 0; ok && c < len; c++)
        ok = isalnum((unsigned char)obj->via.str.ptr[c]);
    if (!ok)
        return fail(d, CC_EPARSE,
                    "'%s' is not a practice code (1 to %d letters and digits, as B86001)",
                    shown(obj->via.str.ptr, len, buf), CC_PRACTICE_CODE_BYTES - 1);
    for (size_t c = 0; c < len; c++)
        code[c] = (char)toupper((unsigned char)obj->via.str.ptr[c]);
    return 0;
}

static int read_practices(struct decoder *d, const msgpack_object *value,
                          struct cc_query_practices *practices)
{
    const struct array_spec spec = {
        .type = "an array of practice codes",
        .plural = "practices",
        .if_empty = "empty (leave \"practices\" out for every practice)",
        .max = d->limits->max_practices,
        .element_bytes = sizeof *practices->codes,
        .read = read_practice_code,
    };
    void *codes = NULL;
    int rc = read_array(d, value, &spec, &codes, &practices->n_codes);
    practices->codes = codes;
    if (rc)
        return rc;
    return sort_unique_codes(d, practices->codes, practices->n_codes, sizeof *practices->codes);
}

static int read_filters_field(struct decoder *d, void *target, int key,
                              const msgpack_object *value)
{
    struct cc_query_filters *filters = target;
    int rc;
    uint32_t mask = 0;
    switch (key) {
    case 0: { /* conditions */
        const struct array_spec spec = {
            .type = "an array of conditions",
            .plural = "conditions",
            .max = d->limits->max_conditions,
            .element_bytes = sizeof *filters->conditions,
            .read = read_condition,
        };
        void *conditions = NULL;
        rc = read_array(d, value, &spec, &conditions, &filters->n_conditions);
        filters->conditions = conditions;
        return rc;
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
    case 6:
        return read_combine(d, value, filters);
    case 7:
        return read_practices(d, value, &filters->practices);
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
            return fail(d, CC_EPARSE, "needs a \"level\" (lsoa, lad, icb or region)");
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
        const struct array_spec spec = {
            .type = "an array of dimensions",
            .plural = "dimensions",
            .max = d->limits->max_dimensions < CC_QUERY_DIMENSIONS_CAP ? d->limits->max_dimensions
                                                                       : CC_QUERY_DIMENSIONS_CAP,
            .element_bytes = sizeof *query->dimensions,
            .read = read_dimension,
        };
        void *dimensions = NULL;
        rc = read_array(d, value, &spec, &dimensions, &query->n_dimensions);
        query->dimensions = dimensions;
        return rc;
    }
    case 6:
        return read_bool(d, value, &query->margins);
    default: {
        static const char *const keys[] = {"conditions", "date_range", "age",    "sex",
                                           "settings",   "areas",      "combine", "practices"};
        rc = read_map(d, value, keys, 8, &query->filters, read_filters_field, NULL);
        if (rc || !query->filters.n_nodes)
            return rc;
        /* the tree names every condition once; then its one canonical form */
        rc = cc_query_combine_check(&query->filters, true, d->errbuf, d->errlen);
        if (rc)
            return rc;
        rc = cc_query_combine_canonicalise(query);
        return rc ? fail(d, rc, "out of memory") : 0;
    }
    }
}

static int decode_root(struct decoder *d, const msgpack_object *obj)
{
    static const char *const keys[] = {"v",          "measure", "population", "events_of",
                                       "as_of",      "dimensions", "margins", "filters"};
    struct cc_query *query = d->query;
    query->version = 0;
    query->measure = 0;
    query->population_source = 0;
    int rc = read_map(d, obj, keys, 8, query, read_query_field, NULL);
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
    limits = cc_query_limits_or_default(limits, &defaults);
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
    limits = cc_query_limits_or_default(limits, &defaults);
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

