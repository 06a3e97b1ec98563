/*
 * cc_http_translate.c: HTTP routes and JSON bodies to msgpack request maps,
 * and msgpack reply maps to HTTP responses with JSON bodies.
 *
 * The request map made here is byte for byte what a msgpack client would
 * send for the same op: {"v":1,"id":ID,"op":OP} followed by the body's
 * fields in their JSON order, so the server decodes and checks an HTTP
 * request exactly as a frame (its limits, its error codes). JSON integers
 * stay msgpack integers (positive ones in the unsigned formats, as every
 * msgpack packer writes them), reals stay floats.
 *
 * Must never: put the bearer token into the request map or a response, or
 * echo request content in an error (jansson's error texts quote the input,
 * so they are not used).
 */
#include "cc_http.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_http_internal.h"
#include "cc_msgpack.h"

#define OP_NAME_MAX_BYTES 32
#define ALLOW_GET         "GET, OPTIONS"
#define ALLOW_POST        "POST, OPTIONS"

/* The ops read with GET (no fields); every other op is POST /v1/OP. */
static const char *const get_ops[] = {"ping", "status", "schema", "codelists"};

/* ---- JSON -> msgpack ---------------------------------------------------- */

static void pack_string(msgpack_packer *packer, const char *s, size_t len)
{
    msgpack_pack_str(packer, len);
    msgpack_pack_str_body(packer, s, len);
}

/* Packs value, whose container is at depth (the body object: 1). */
static int pack_json(const json_t *value, size_t depth, size_t max_depth, msgpack_packer *packer)
{
    switch (json_typeof(value)) {
    case JSON_OBJECT: {
        if (depth > max_depth)
            return CC_ETOOBIG;
        const char *key;
        json_t *member;
        msgpack_pack_map(packer, json_object_size(value));
        json_object_foreach((json_t *)value, key, member)
        {
            pack_string(packer, key, strlen(key));
            int rc = pack_json(member, depth + 1, max_depth, packer);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (depth > max_depth)
            return CC_ETOOBIG;
        size_t i;
        json_t *element;
        msgpack_pack_array(packer, json_array_size(value));
        json_array_foreach(value, i, element)
        {
            int rc = pack_json(element, depth + 1, max_depth, packer);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    case JSON_STRING:
        pack_string(packer, json_string_value(value), json_string_length(value));
        return 0;
    case JSON_INTEGER:
        msgpack_pack_int64(packer, (int64_t)json_integer_value(value));
        return 0;
    case JSON_REAL:
        msgpack_pack_double(packer, json_real_value(value));
        return 0;
    case JSON_TRUE:
        msgpack_pack_true(packer);
        return 0;
    case JSON_FALSE:
        msgpack_pack_false(packer);
        return 0;
    case JSON_NULL:
        msgpack_pack_nil(packer);
        return 0;
    }
    return CC_EINTERNAL;
}

/* Parses JSON text strictly: one value, valid UTF-8, no NUL in strings, no
 * repeated key, integers within int64. */
static json_t *parse_json(const char *json, size_t len)
{
    json_error_t error;
    return json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &error);
}

int cc_http_json_to_msgpack(const char *json, size_t len, size_t max_depth, msgpack_packer *packer)
{
    json_t *value = parse_json(json, len);
    if (!value)
        return CC_EPARSE;
    int rc = pack_json(value, 1, max_depth, packer);
    json_decref(value);
    return rc;
}

/* ---- msgpack -> JSON ---------------------------------------------------- */

static json_t *to_json(const msgpack_object *value, size_t depth)
{
    if (depth > 64)
        return NULL;
    switch (value->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(value->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (value->via.u64 > (uint64_t)INT64_MAX)
            return NULL;
        return json_integer((json_int_t)value->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)value->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(value->via.f64))
            return json_null();
        return json_real(value->via.f64);
    case MSGPACK_OBJECT_STR:
        /* json_stringn checks UTF-8 and returns NULL for invalid text. */
        return json_stringn(value->via.str.ptr, value->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *array = json_array();
        for (uint32_t i = 0; array && i < value->via.array.size; i++) {
            json_t *element = to_json(&value->via.array.ptr[i], depth + 1);
            if (!element || json_array_append_new(array, element) < 0) {
                json_decref(array);
                return NULL;
            }
        }
        return array;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *object = json_object();
        for (uint32_t i = 0; object && i < value->via.map.size; i++) {
            const msgpack_object *key = &value->via.map.ptr[i].key;
            json_t *member = NULL;
            if (key->type == MSGPACK_OBJECT_STR)
                member = to_json(&value->via.map.ptr[i].val, depth + 1);
            if (!member ||
                json_object_setn_new(object, key->via.str.ptr, key->via.str.size, member) < 0) {
                json_decref(object);
                return NULL;
            }
        }
        return object;
    }
    default:
        return NULL; /* bin, ext */
    }
}

static char *dump_json(const json_t *value)
{
    return cc_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
}

int cc_http_msgpack_to_json(const msgpack_object *value, char **json)
{
    *json = NULL;
    json_t *tree = to_json(value, 1);
    if (!tree)
        return CC_EINVAL;
    *json = dump_json(tree);
    json_decref(tree);
    return *json ? 0 : CC_ENOMEM;
}

/* ---- routes ------------------------------------------------------------- */

enum route_kind { ROUTE_NONE, ROUTE_GET, ROUTE_POST };

/* Finds the route of path: the op name into op[] and whether it is read
 * with GET or POST. */
static enum route_kind route(const char *path, char op[OP_NAME_MAX_BYTES + 1])
{
    static const char prefix[] = "/v1/";
    if (strncmp(path, prefix, sizeof prefix - 1) != 0)
        return ROUTE_NONE;
    const char *name = path + sizeof prefix - 1;
    size_t len = strlen(name);
    if (len == 0 || len > OP_NAME_MAX_BYTES)
        return ROUTE_NONE;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return ROUTE_NONE;
    }
    memcpy(op, name, len + 1);
    for (size_t i = 0; i < sizeof get_ops / sizeof get_ops[0]; i++)
        if (strcmp(op, get_ops[i]) == 0)
            return ROUTE_GET;
    return ROUTE_POST;
}

/* True if the Content-Type is application/json (any parameters). */
static bool is_json_content_type(const char *content_type)
{
    static const char json[] = "application/json";
    if (!content_type)
        return false;
    while (*content_type == ' ')
        content_type++;
    if (strncasecmp(content_type, json, sizeof json - 1) != 0)
        return false;
    char after = content_type[sizeof json - 1];
    return after == '\0' || after == ';' || after == ' ';
}

/* A failed write into the map, remembered. */
struct map_writer {
    msgpack_sbuffer *buffer;
    bool failed;
};

static int write_map(void *data, const char *buf, size_t len)
{
    struct map_writer *writer = data;
    if (writer->failed || msgpack_sbuffer_write(writer->buffer, buf, len) != 0) {
        writer->failed = true;
        return -1;
    }
    return 0;
}

static void pack_envelope(msgpack_packer *packer, uint64_t id, const char *op, size_t n_fields)
{
    msgpack_pack_map(packer, 3 + n_fields);
    pack_string(packer, "v", 1);
    msgpack_pack_uint64(packer, 1);
    pack_string(packer, "id", 2);
    msgpack_pack_uint64(packer, id);
    pack_string(packer, "op", 2);
    pack_string(packer, op, strlen(op));
}

/* Answers a request here, with an error; returns 1 (answered) or
 * CC_ENOMEM. */
static int answer_error(int status, const char *code, const char *message,
                        const struct cc_http_request *request, const struct cc_http_cors *cors,
                        const char *allow, struct cc_http_response *response)
{
    int rc = cc_http_error_response(status, code, message, request, cors, allow, false, response);
    return rc < 0 ? rc : 1;
}

/* Packs the fields of the POST body (a JSON object) after the envelope. */
static int translate_body(const struct cc_http_request *request, uint64_t id, const char *op,
                          const struct cc_http_cors *cors, msgpack_sbuffer *map,
                          struct cc_http_response *response)
{
    json_t *body = parse_json((const char *)request->body, request->body_bytes);
    if (!body)
        return answer_error(400, "PARSE",
                            "the body is not valid JSON (UTF-8, one value, no "
                            "repeated key, integers within 64 bits)",
                            request, cors, NULL, response);
    if (!json_is_object(body)) {
        json_decref(body);
        return answer_error(400, "PARSE", "the body must be a JSON object of the op's fields",
                            request, cors, NULL, response);
    }
    if (json_object_get(body, "v") || json_object_get(body, "id") || json_object_get(body, "op")) {
        json_decref(body);
        return answer_error(400, "INVAL",
                            "the body must not hold v, id or op: the path names the op", request,
                            cors, NULL, response);
    }
    struct map_writer writer = {map, false};
    msgpack_packer packer;
    msgpack_packer_init(&packer, &writer, write_map);
    pack_envelope(&packer, id, op, json_object_size(body));
    const char *key;
    json_t *member;
    int rc = 0;
    json_object_foreach(body, key, member)
    {
        pack_string(&packer, key, strlen(key));
        rc = pack_json(member, 2, CC_HTTP_MAX_JSON_DEPTH, &packer);
        if (rc < 0)
            break;
    }
    json_decref(body);
    if (rc == CC_ETOOBIG)
        return answer_error(400, "PARSE", "the body nests deeper than 32 levels", request, cors,
                            NULL, response);
    if (rc < 0)
        return rc;
    return writer.failed ? CC_ENOMEM : 0;
}

int cc_http_to_request(const struct cc_http_request *request, uint64_t id,
                       const struct cc_http_cors *cors, msgpack_sbuffer *map,
                       struct cc_http_response *response)
{
    char op[OP_NAME_MAX_BYTES + 1];
    int served = cc_http_static_response(request, cors, response);
    if (served != 0)
        return served; /* the dashboard's files (1), or CC_ENOMEM */
    enum route_kind kind = route(request->path, op);

    if (kind == ROUTE_NONE)
        return answer_error(404, "NOTFOUND",
                            "no such endpoint (the API is under /v1/, the dashboard under "
                            "/dashboard/)",
                            request, cors, NULL, response);
    const char *allow = kind == ROUTE_GET ? ALLOW_GET : ALLOW_POST;
    if (request->method == CC_HTTP_OPTIONS) {
        int rc = cc_http_build_json_response(204, "", 0, request, cors, allow, true, response);
        return rc < 0 ? rc : 1;
    }
    if ((kind == ROUTE_GET && request->method != CC_HTTP_GET) ||
        (kind == ROUTE_POST && request->method != CC_HTTP_POST))
        return answer_error(405, "UNSUPPORTED", "this endpoint does not take this method", request,
                            cors, allow, response);
    if (kind == ROUTE_GET) {
        struct map_writer writer = {map, false};
        msgpack_packer packer;
        msgpack_packer_init(&packer, &writer, write_map);
        pack_envelope(&packer, id, op, 0);
        return writer.failed ? CC_ENOMEM : 0;
    }
    if (!is_json_content_type(request->content_type))
        return answer_error(415, "UNSUPPORTED", "the body must be Content-Type: application/json",
                            request, cors, NULL, response);
    return translate_body(request, id, op, cors, map, response);
}

/* ---- replies ------------------------------------------------------------ */

int cc_http_status_for_code(const char *code)
{
    static const struct {
        const char *code;
        int status;
    } table[] = {
        {"PARSE", 400},  {"INVAL", 400},    {"RANGE", 400},       {"AUTH", 401},
        {"DENIED", 403}, {"NOTFOUND", 404}, {"UNSUPPORTED", 404}, {"REFUSED", 422},
        {"TOOBIG", 413}, {"BUSY", 503},     {"TIMEDOUT", 408},
    };
    if (!code)
        return 200;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(code, table[i].code) == 0)
            return table[i].status;
    return 500;
}

/* The reply's error code ("AUTH"), NULL for success, or "" if the reply is
 * not a well-formed reply map. */
static const char *reply_code(const json_t *reply)
{
    json_t *ok = json_object_get(reply, "ok");
    if (json_is_true(ok))
        return NULL;
    if (!json_is_false(ok))
        return "";
    const char *code = json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
    return code ? code : "";
}

int cc_http_from_reply(const uint8_t *reply, size_t len, const struct cc_http_request *request,
                       const struct cc_http_cors *cors, struct cc_http_response *response)
{
    msgpack_unpacked unpacked;
    size_t offset = 0;
    json_t *tree = NULL;
    int rc;

    msgpack_unpacked_init(&unpacked);
    /* The reply is our own server's, but it is still bounded first. */
    if (cc_msgpack_within_bounds(reply, len, CC_MSGPACK_DEPTH_LIMIT) &&
        msgpack_unpack_next(&unpacked, (const char *)reply, len, &offset) ==
            MSGPACK_UNPACK_SUCCESS &&
        offset == len && unpacked.data.type == MSGPACK_OBJECT_MAP)
        tree = to_json(&unpacked.data, 1);
    msgpack_unpacked_destroy(&unpacked);
    const char *code = tree ? reply_code(tree) : "";
    if (code && code[0] == '\0') {
        json_decref(tree);
        return cc_http_error_response(500, "INTERNAL", "the server's reply could not be read",
                                      request, cors, NULL, false, response);
    }
    /* code points into tree: the status is taken before tree goes. */
    int status = cc_http_status_for_code(code);
    /* HTTP pairs a response with its request; the id is the server's. */
    json_object_del(tree, "v");
    json_object_del(tree, "id");
    char *json = dump_json(tree);
    json_decref(tree);
    if (!json)
        return CC_ENOMEM;
    rc = cc_http_build_json_response(status, json, strlen(json), request, cors, NULL, false,
                                     response);
    free(json);
    return rc;
}
