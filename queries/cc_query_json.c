/*
 * cc_query_json.c: the JSON form of a query, the same map as the msgpack
 * wire form written for people and dashboards (docs/query-model.md).
 *
 * Decoding converts the JSON text to msgpack and hands it to the msgpack
 * decoder, so both forms pass the same checks; encoding unpacks the
 * canonical msgpack form and writes it as compact JSON, so both forms have
 * the same keys in the same order.
 *
 * Must never: abort or grow without bound on hostile input (the text's
 * length is checked before parsing and nesting while converting).
 */
#include "cc_query.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_query_internal.h"

/* ---- JSON to msgpack ---- */

/* Where a conversion's errors go, and the depth it refuses. */
struct json_reader {
    uint32_t max_nesting_depth;
    char *errbuf;
    size_t errlen;
};

/* Packs a JSON value as msgpack, refusing nesting deeper than depth_left. */
static int pack_json(msgpack_packer *pk, const json_t *value, uint32_t depth_left,
                     const struct json_reader *d)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        if (depth_left == 0)
            return cc_query_fail(d->errbuf, d->errlen, CC_ETOOBIG, "query",
                                 "nested deeper than %u levels", d->max_nesting_depth);
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
            return cc_query_fail(d->errbuf, d->errlen, CC_ETOOBIG, "query",
                                 "nested deeper than %u levels", d->max_nesting_depth);
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
    limits = cc_query_limits_or_default(limits, &defaults);
    *out = NULL;
    if (len > limits->max_query_bytes)
        return cc_query_fail(errbuf, errlen, CC_ETOOBIG, "query", "%zu bytes, the limit is %u",
                             len, limits->max_query_bytes);
    json_error_t error;
    bool out_of_memory;
    json_t *root = cc_json_loadb(text, len, JSON_REJECT_DUPLICATES, &error, &out_of_memory);
    if (!root && out_of_memory)
        return cc_query_fail(errbuf, errlen, CC_ENOMEM, "query", "out of memory");
    if (!root)
        return cc_query_fail(errbuf, errlen, CC_EPARSE, "query",
                             "malformed JSON at line %d, column %d: %s", error.line, error.column,
                             error.text);
    int rc = cc_query_decode_json_value(root, limits, out, errbuf, errlen);
    json_decref(root);
    return rc;
}

int cc_query_decode_json_value(const struct json_t *root, const struct cc_query_limits *limits,
                               struct cc_query **out, char *errbuf, size_t errlen)
{
    struct cc_query_limits defaults;
    limits = cc_query_limits_or_default(limits, &defaults);
    struct json_reader d = {
        .max_nesting_depth = limits->max_nesting_depth, .errbuf = errbuf, .errlen = errlen};
    *out = NULL;
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    int rc = pack_json(&packer, root, limits->max_nesting_depth, &d);
    if (rc == CC_ENOMEM)
        cc_query_fail(errbuf, errlen, rc, "query", "out of memory");
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

/* ---- msgpack to JSON ---- */

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
        goto out;
    }
    json = object_to_json(&unpacked.data);
    if (!json) {
        rc = CC_ENOMEM;
        goto out;
    }
    *out = cc_json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!*out)
        rc = CC_ENOMEM;
out:
    json_decref(json);
    msgpack_unpacked_destroy(&unpacked);
    free(bytes);
    return rc;
}
