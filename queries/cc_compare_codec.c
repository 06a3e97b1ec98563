/*
 * cc_compare_codec.c: the wire form of a comparison request (cc_compare.h,
 * docs/comparisons.md): one map holding the numerator query, the
 * denominator, the area level, the comparator, the method and the
 * multiplier, as msgpack (the server) or JSON (the tools, HTTP).
 *
 * The embedded queries are decoded by the query codec, so a query means the
 * same inside a comparison as on its own.
 *
 * Must never: echo more of a value than its field name and a reason (a
 * name is quoted up to 32 characters, as the query codec does).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_compare.h"
#include "cc_error.h"
#include "cc_json.h"
#include "cc_query_internal.h"
#include "cc_model.h"

/* A decoded scalar or sub-query, whichever form it came in. */
struct field_value {
    enum { VALUE_STRING, VALUE_NUMBER, VALUE_MAP, VALUE_OTHER } type;
    const char *text; /* VALUE_STRING, text_len bytes */
    size_t text_len;
    double number;
    const msgpack_object *object; /* VALUE_MAP from msgpack */
    json_t *json;                 /* VALUE_MAP from JSON */
};

struct decode_state {
    const struct cc_query_limits *limits;
    struct cc_compare_decoded *out;
    int seen_version, seen_numerator, seen_level, seen_method;
    unsigned seen_keys; /* bit k: key k of known_keys[] was given */
    char *errbuf;
    size_t errlen;
};

static int refuse(struct decode_state *s, int rc, const char *field, const char *reason)
{
    if (s->errbuf && s->errlen)
        snprintf(s->errbuf, s->errlen, "%s: %s", field, reason);
    return rc;
}

static int refuse_name(struct decode_state *s, const char *field, const struct field_value *v,
                       const char *expected)
{
    if (s->errbuf && s->errlen)
        snprintf(s->errbuf, s->errlen, "%s: unknown name \"%.*s\" (expected %s)", field,
                 (int)(v->text_len > 32 ? 32 : v->text_len), v->text, expected);
    return CC_EPARSE;
}

static int name_is(const struct field_value *v, const char *name)
{
    return strlen(name) == v->text_len && !memcmp(v->text, name, v->text_len);
}

/* Decodes an embedded query; prefixes its error with the field. */
static int decode_query(struct decode_state *s, const char *field, const struct field_value *v,
                        struct cc_query **out)
{
    char reason[256] = "";
    int rc;
    if (v->object) {
        rc = cc_query_decode_object(v->object, s->limits, out, reason, sizeof reason);
    } else {
        /* decoded from the parsed value: a json_dumps() round trip can
         * lose text to a failed allocation and then misreport it */
        rc = cc_query_decode_json_value(v->json, s->limits, out, reason, sizeof reason);
    }
    if (rc < 0 && s->errbuf && s->errlen)
        snprintf(s->errbuf, s->errlen, "%s.%s", field, reason);
    return rc;
}

static const char *const known_keys[] = {"v",      "numerator",  "denominator", "level",
                                         "method", "comparator", "multiplier"};

static int set_field(struct decode_state *s, const char *key, size_t key_len,
                     const struct field_value *v)
{
    struct cc_compare_request *r = &s->out->request;
    for (unsigned k = 0; k < sizeof known_keys / sizeof *known_keys; k++)
        if (key_len == strlen(known_keys[k]) && !memcmp(key, known_keys[k], key_len)) {
            if (s->seen_keys & (1u << k))
                return refuse(s, CC_EPARSE, known_keys[k], "given twice");
            s->seen_keys |= 1u << k;
        }
#define KEY_IS(name) (key_len == strlen(name) && !memcmp(key, name, key_len))
    if (KEY_IS("v")) {
        if (v->type != VALUE_NUMBER || v->number != floor(v->number))
            return refuse(s, CC_EPARSE, "v", "must be an integer");
        if (v->number != CC_COMPARE_VERSION)
            return refuse(s, CC_EUNSUPPORTED, "v", "only version 1 is understood");
        s->seen_version = 1;
        return 0;
    }
    if (KEY_IS("numerator")) {
        if (v->type != VALUE_MAP)
            return refuse(s, CC_EPARSE, "numerator", "must be a query map");
        s->seen_numerator = 1;
        return decode_query(s, "numerator", v, &s->out->numerator);
    }
    if (KEY_IS("denominator")) {
        if (v->type == VALUE_MAP) {
            r->denominator = CC_COMPARE_QUERY;
            return decode_query(s, "denominator", v, &s->out->denominator_query);
        }
        if (v->type != VALUE_STRING)
            return refuse(s, CC_EPARSE, "denominator",
                          "must be \"registered\", \"estimate\" or a query map");
        for (int d = CC_COMPARE_REGISTERED; d <= CC_COMPARE_ESTIMATE; d++)
            if (name_is(v, cc_compare_denominator_name(d))) {
                r->denominator = (uint8_t)d;
                return 0;
            }
        return refuse_name(s, "denominator", v, "registered or estimate");
    }
    if (KEY_IS("level")) {
        static const struct {
            const char *name;
            uint8_t level;
        } levels[] = {{"region", CC_AREA_REGION}, {"icb", CC_AREA_ICB}, {"lad", CC_AREA_LAD}};
        if (v->type != VALUE_STRING)
            return refuse(s, CC_EPARSE, "level", "must be a string");
        for (size_t i = 0; i < sizeof levels / sizeof *levels; i++)
            if (name_is(v, levels[i].name)) {
                r->area_level = levels[i].level;
                s->seen_level = 1;
                return 0;
            }
        return refuse_name(s, "level", v, "region, icb or lad");
    }
    if (KEY_IS("comparator")) {
        if (v->type != VALUE_STRING)
            return refuse(s, CC_EPARSE, "comparator", "must be a string");
        for (int c = CC_COMPARE_NATIONAL; c <= CC_COMPARE_PARENT; c++)
            if (name_is(v, cc_compare_comparator_name(c))) {
                r->comparator = (uint8_t)c;
                return 0;
            }
        return refuse_name(s, "comparator", v, "national or parent");
    }
    if (KEY_IS("method")) {
        if (v->type != VALUE_STRING)
            return refuse(s, CC_EPARSE, "method", "must be a string");
        for (int m = CC_COMPARE_PROPORTION; m <= CC_COMPARE_ISR; m++)
            if (name_is(v, cc_compare_method_name(m))) {
                r->method = (uint8_t)m;
                s->seen_method = 1;
                return 0;
            }
        return refuse_name(s, "method", v, "proportion, crude_rate, dsr or isr");
    }
    if (KEY_IS("multiplier")) {
        if (v->type != VALUE_NUMBER || !isfinite(v->number) || v->number <= 0 || v->number > 1e9)
            return refuse(s, CC_EPARSE, "multiplier", "must be a number above 0, at most 1e9");
        r->multiplier = v->number;
        return 0;
    }
#undef KEY_IS
    if (s->errbuf && s->errlen)
        snprintf(s->errbuf, s->errlen, "%.*s: unknown key", (int)(key_len > 32 ? 32 : key_len),
                 key);
    return CC_EPARSE;
}

static int finish_decode(struct decode_state *s, int rc)
{
    if (rc == 0) {
        if (!s->seen_version)
            rc = refuse(s, CC_EPARSE, "v", "missing");
        else if (!s->seen_numerator)
            rc = refuse(s, CC_EPARSE, "numerator", "missing");
        else if (!s->seen_level)
            rc = refuse(s, CC_EPARSE, "level", "missing");
        else if (!s->seen_method)
            rc = refuse(s, CC_EPARSE, "method", "missing");
    }
    if (rc < 0) {
        cc_compare_decoded_free(s->out);
        return rc;
    }
    s->out->request.numerator = s->out->numerator;
    s->out->request.denominator_query = s->out->denominator_query;
    return 0;
}

int cc_compare_decode_object(const msgpack_object *obj, const struct cc_query_limits *limits,
                             struct cc_compare_decoded *out, char *errbuf, size_t errlen)
{
    struct decode_state s = {.limits = limits, .out = out, .errbuf = errbuf, .errlen = errlen};
    int rc = 0;
    memset(out, 0, sizeof *out);
    if (obj->type != MSGPACK_OBJECT_MAP)
        return refuse(&s, CC_EPARSE, "request", "must be a map");
    for (uint32_t i = 0; i < obj->via.map.size && rc == 0; i++) {
        const msgpack_object_kv *kv = &obj->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            rc = refuse(&s, CC_EPARSE, "request", "keys must be strings");
            break;
        }
        struct field_value v = {.type = VALUE_OTHER};
        switch (kv->val.type) {
        case MSGPACK_OBJECT_STR:
            v.type = VALUE_STRING;
            v.text = kv->val.via.str.ptr;
            v.text_len = kv->val.via.str.size;
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            v.type = VALUE_NUMBER;
            v.number = (double)kv->val.via.u64;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            v.type = VALUE_NUMBER;
            v.number = (double)kv->val.via.i64;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            v.type = VALUE_NUMBER;
            v.number = kv->val.via.f64;
            break;
        case MSGPACK_OBJECT_MAP:
            v.type = VALUE_MAP;
            v.object = &kv->val;
            break;
        default:
            break;
        }
        rc = set_field(&s, kv->key.via.str.ptr, kv->key.via.str.size, &v);
    }
    return finish_decode(&s, rc);
}

int cc_compare_decode_json(const char *text, size_t len, const struct cc_query_limits *limits,
                           struct cc_compare_decoded *out, char *errbuf, size_t errlen)
{
    struct decode_state s = {.limits = limits, .out = out, .errbuf = errbuf, .errlen = errlen};
    struct cc_query_limits defaults;
    memset(out, 0, sizeof *out);
    if (!limits) {
        cc_query_limits_default(&defaults);
        s.limits = &defaults;
    }
    /* two queries and a few keys */
    if (len > 2 * (size_t)s.limits->max_query_bytes + 1024)
        return refuse(&s, CC_ETOOBIG, "request", "too many bytes");
    json_error_t error;
    bool out_of_memory;
    json_t *root = cc_json_loadb(text, len, JSON_REJECT_DUPLICATES, &error, &out_of_memory);
    if (!root && out_of_memory) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "request: out of memory");
        return CC_ENOMEM;
    }
    if (!root) {
        if (errbuf && errlen)
            snprintf(errbuf, errlen, "request: malformed JSON at line %d, column %d", error.line,
                     error.column);
        return CC_EPARSE;
    }
    int rc = 0;
    if (!json_is_object(root))
        rc = refuse(&s, CC_EPARSE, "request", "must be a map");
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (rc)
            break;
        struct field_value v = {.type = VALUE_OTHER};
        if (json_is_string(value)) {
            v.type = VALUE_STRING;
            v.text = json_string_value(value);
            v.text_len = json_string_length(value);
        } else if (json_is_number(value)) {
            v.type = VALUE_NUMBER;
            v.number = json_number_value(value);
        } else if (json_is_object(value)) {
            v.type = VALUE_MAP;
            v.json = value;
        }
        rc = set_field(&s, key, strlen(key), &v);
    }
    json_decref(root);
    return finish_decode(&s, rc);
}

void cc_compare_decoded_free(struct cc_compare_decoded *decoded)
{
    if (!decoded)
        return;
    cc_query_free(decoded->numerator);
    cc_query_free(decoded->denominator_query);
    memset(decoded, 0, sizeof *decoded);
}

/* ---- the canonical form ---- */

/* The names of a request, its defaults resolved; CC_EINVAL if one is out
 * of range. */
static int request_names(const struct cc_compare_request *r, const char **denominator,
                         const char **level, const char **comparator, const char **method)
{
    *denominator = cc_compare_denominator_name(r->denominator ? r->denominator
                                                              : CC_COMPARE_REGISTERED);
    *level = cc_query_area_level_name(r->area_level);
    *comparator = cc_compare_comparator_name(r->comparator ? r->comparator : CC_COMPARE_NATIONAL);
    *method = cc_compare_method_name(r->method);
    if (!*denominator || !*level || !*comparator || !*method || !r->numerator ||
        (r->denominator == CC_COMPARE_QUERY && !r->denominator_query))
        return CC_EINVAL;
    return 0;
}

static int pack_text(msgpack_packer *pk, const char *s)
{
    return msgpack_pack_str_with_body(pk, s, strlen(s)) ? CC_ENOMEM : 0;
}

int cc_compare_pack(const struct cc_compare_request *r, msgpack_packer *pk)
{
    const char *denominator, *level, *comparator, *method;
    int rc = request_names(r, &denominator, &level, &comparator, &method);
    if (rc)
        return rc;
    bool with_multiplier = r->multiplier > 0;
    if (msgpack_pack_map(pk, with_multiplier ? 7 : 6) || pack_text(pk, "v") ||
        msgpack_pack_uint64(pk, CC_COMPARE_VERSION) || pack_text(pk, "numerator"))
        return CC_ENOMEM;
    if ((rc = cc_query_pack(r->numerator, pk)) != 0)
        return rc;
    if (pack_text(pk, "denominator"))
        return CC_ENOMEM;
    rc = r->denominator == CC_COMPARE_QUERY ? cc_query_pack(r->denominator_query, pk)
                                            : pack_text(pk, denominator);
    if (rc)
        return rc;
    if (pack_text(pk, "level") || pack_text(pk, level) || pack_text(pk, "comparator") ||
        pack_text(pk, comparator) || pack_text(pk, "method") || pack_text(pk, method))
        return CC_ENOMEM;
    if (with_multiplier &&
        (pack_text(pk, "multiplier") || msgpack_pack_double(pk, r->multiplier)))
        return CC_ENOMEM;
    return 0;
}

/* A query's canonical JSON as a jansson value. */
static json_t *query_json(const struct cc_query *q)
{
    char *text = NULL;
    if (cc_query_encode_json(q, &text) != 0)
        return NULL;
    json_t *value = json_loads(text, 0, NULL);
    free(text);
    return value;
}

int cc_compare_encode_json(const struct cc_compare_request *r, char **out)
{
    const char *denominator, *level, *comparator, *method;
    *out = NULL;
    int rc = request_names(r, &denominator, &level, &comparator, &method);
    if (rc)
        return rc;
    json_t *root = json_object();
    rc = CC_ENOMEM;
    if (!root || json_object_set_new(root, "v", json_integer(CC_COMPARE_VERSION)) ||
        json_object_set_new(root, "numerator", query_json(r->numerator)) ||
        json_object_set_new(root, "denominator", r->denominator == CC_COMPARE_QUERY
                                                     ? query_json(r->denominator_query)
                                                     : json_string(denominator)) ||
        json_object_set_new(root, "level", json_string(level)) ||
        json_object_set_new(root, "comparator", json_string(comparator)) ||
        json_object_set_new(root, "method", json_string(method)) ||
        (r->multiplier > 0 && json_object_set_new(root, "multiplier", json_real(r->multiplier))))
        goto out;
    *out = cc_json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = *out ? 0 : CC_ENOMEM;
out:
    json_decref(root);
    return rc;
}
