/*
 * cc_msgpack.h: a bounds check for untrusted msgpack, run before msgpack-c
 * sees it.
 *
 * msgpack-c allocates for a container's declared element count before it
 * reads the elements, so without a check a 5-byte map32 header asks it for
 * 128 GiB (and under ASan aborts the process). Both ends of the protocol
 * run this first: the server on request bodies, the client on reply bodies,
 * and the query codec on a query (which reports the reason to the user).
 * Once it passes, what msgpack-c allocates is bounded by a small multiple of
 * the input's length.
 *
 * Must never: allocate.
 */
#ifndef CC_MSGPACK_H
#define CC_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* The deepest nesting cc_msgpack_within_bounds can check. */
#define CC_MSGPACK_DEPTH_LIMIT 64

/* True if data[0..len) is exactly one msgpack value (nothing after it) in
 * which no array or map declares more elements than there are bytes left
 * (each element takes at least one byte), no string, binary or extension
 * runs past the end, the reserved byte 0xc1 does not occur, and containers
 * nest at most max_depth deep (at most CC_MSGPACK_DEPTH_LIMIT). */
bool cc_msgpack_within_bounds(const uint8_t *data, size_t len, size_t max_depth);

/* Why a value failed the check, for callers that explain it. */
enum cc_msgpack_verdict {
    CC_MSGPACK_OK = 0,
    CC_MSGPACK_TRUNCATED,         /* a value or a length runs past the end */
    CC_MSGPACK_BAD_BYTE,          /* 0xc1 at `at` */
    CC_MSGPACK_OVERLONG,          /* a container declares `elements` in `bytes_left` bytes */
    CC_MSGPACK_TOO_DEEP,          /* nested deeper than max_depth */
    CC_MSGPACK_TRAILING,          /* `bytes_left` bytes after the value */
};

struct cc_msgpack_fault {
    int verdict;        /* enum cc_msgpack_verdict */
    size_t at;          /* offset of the offending byte (BAD_BYTE) */
    uint64_t elements;  /* OVERLONG */
    size_t bytes_left;  /* OVERLONG, TRAILING */
};

/* The same check, saying why a value fails: returns the verdict and fills
 * *fault (which may be NULL). An overlong container is reported before a
 * nesting too deep at the same place. */
int cc_msgpack_check(const uint8_t *data, size_t len, size_t max_depth,
                     struct cc_msgpack_fault *fault);

/* The value of key in a msgpack map with string keys (the first such key),
 * or NULL if map is NULL, not a map, or has no such key. */
const msgpack_object *cc_msgpack_map_get(const msgpack_object *map, const char *key);

#endif
