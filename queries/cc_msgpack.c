/*
 * cc_msgpack.c: checks raw msgpack against size bounds before msgpack-c
 * unpacks it (see cc_msgpack.h).
 *
 * Must never: allocate, or read outside data[0..len).
 */
#include "cc_msgpack.h"

#include <string.h>

/* Reads an n-byte big-endian unsigned number. */
static uint64_t read_big_endian(const uint8_t *bytes, size_t n)
{
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++)
        value = value << 8 | bytes[i];
    return value;
}

static int verdict(struct cc_msgpack_fault *fault, int v, size_t at, uint64_t elements,
                   size_t bytes_left)
{
    if (fault) {
        fault->verdict = v;
        fault->at = at;
        fault->elements = elements;
        fault->bytes_left = bytes_left;
    }
    return v;
}

bool cc_msgpack_within_bounds(const uint8_t *body, size_t len, size_t max_depth)
{
    return cc_msgpack_check(body, len, max_depth, NULL) == CC_MSGPACK_OK;
}

int cc_msgpack_check(const uint8_t *body, size_t len, size_t max_depth,
                     struct cc_msgpack_fault *fault)
{
    uint64_t left_in[CC_MSGPACK_DEPTH_LIMIT]; /* elements left in each open container */
    size_t depth = 0, at = 0;
    bool read_top_value = false;

    if (max_depth > CC_MSGPACK_DEPTH_LIMIT)
        max_depth = CC_MSGPACK_DEPTH_LIMIT;

    for (;;) {
        while (depth > 0 && left_in[depth - 1] == 0)
            depth--;
        if (depth == 0 && read_top_value)
            return at == len ? verdict(fault, CC_MSGPACK_OK, at, 0, 0)
                             : verdict(fault, CC_MSGPACK_TRAILING, at, 0, len - at);
        if (at >= len)
            return verdict(fault, CC_MSGPACK_TRUNCATED, at, 0, 0);
        if (depth > 0)
            left_in[depth - 1]--;
        read_top_value = true;

        uint8_t type = body[at++];
        uint64_t elements = 0, skip = 0;
        size_t length_bytes = 0;
        bool container = false;
        if (type <= 0x7f || type >= 0xe0 || type == 0xc0 || type == 0xc2 || type == 0xc3) {
            /* fixint, nil, false, true: the type byte is the whole value */
        } else if (type <= 0x8f) {
            container = true;
            elements = (uint64_t)(type & 0x0f) * 2;
        } else if (type <= 0x9f) {
            container = true;
            elements = type & 0x0f;
        } else if (type <= 0xbf) {
            skip = type & 0x1f;
        } else {
            switch (type) {
            case 0xc4: case 0xd9: length_bytes = 1; break;             /* bin8, str8 */
            case 0xc5: case 0xda: length_bytes = 2; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: length_bytes = 4; break;             /* bin32, str32 */
            case 0xc7: length_bytes = 1; skip = 1; break;              /* ext8 */
            case 0xc8: length_bytes = 2; skip = 1; break;              /* ext16 */
            case 0xc9: length_bytes = 4; skip = 1; break;              /* ext32 */
            case 0xca: skip = 4; break;                                /* float32 */
            case 0xcb: skip = 8; break;                                /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;                     /* (u)int8 */
            case 0xcd: case 0xd1: skip = 2; break;                     /* (u)int16 */
            case 0xce: case 0xd2: skip = 4; break;                     /* (u)int32 */
            case 0xcf: case 0xd3: skip = 8; break;                     /* (u)int64 */
            case 0xd4: skip = 2; break;                                /* fixext1 */
            case 0xd5: skip = 3; break;                                /* fixext2 */
            case 0xd6: skip = 5; break;                                /* fixext4 */
            case 0xd7: skip = 9; break;                                /* fixext8 */
            case 0xd8: skip = 17; break;                               /* fixext16 */
            case 0xdc: case 0xde: container = true; length_bytes = 2; break; /* array16, map16 */
            case 0xdd: case 0xdf: container = true; length_bytes = 4; break; /* array32, map32 */
            default:                                                   /* 0xc1: never used */
                return verdict(fault, CC_MSGPACK_BAD_BYTE, at - 1, 0, 0);
            }
            if (length_bytes) {
                if (len - at < length_bytes)
                    return verdict(fault, CC_MSGPACK_TRUNCATED, at, 0, 0);
                uint64_t n = read_big_endian(body + at, length_bytes);
                at += length_bytes;
                if (!container)
                    skip += n;
                else
                    elements = (type == 0xde || type == 0xdf) ? n * 2 : n;
            }
        }
        if (container) {
            if (elements > len - at)
                return verdict(fault, CC_MSGPACK_OVERLONG, at, elements, len - at);
            if (depth == max_depth)
                return verdict(fault, CC_MSGPACK_TOO_DEEP, at, 0, 0);
            left_in[depth++] = elements;
        } else {
            if (skip > len - at)
                return verdict(fault, CC_MSGPACK_TRUNCATED, at, 0, 0);
            at += skip;
        }
    }
}

const msgpack_object *cc_msgpack_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            memcmp(k->via.str.ptr, key, len) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}
