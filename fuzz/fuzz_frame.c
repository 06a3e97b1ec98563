/*
 * fuzz_frame.c: the frame decoder (server/cc_frame.h) over hostile byte
 * streams.
 *
 * The first byte of the input picks the reader's body limit and the second
 * how the rest is cut into reads (1 byte at a time, fixed chunks, or chunks
 * sized by the data itself), so partial headers and bodies split anywhere
 * are fed. Checks what the header promises: every frame handed out has the
 * length its header declared, the bytes consumed add up exactly, a refused
 * header is over the limit, and an HTTP refusal happens only on the first
 * header.
 *
 * Must never: pass an input on which the reader over- or under-reads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_frame.h"

#define check(cond)                                                                            \
    do {                                                                                       \
        if (!(cond))                                                                           \
            abort();                                                                           \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const uint32_t limits[] = {0, 1, 16, 255, 4096, 1u << 20};
    uint32_t limit = limits[data[0] % (sizeof limits / sizeof *limits)];
    uint8_t cut = data[1];
    data += 2;
    size -= 2;

    struct cc_frame_reader *reader;
    if (cc_frame_reader_new(limit, &reader) < 0)
        return 0;
    size_t at = 0, frames = 0, in_frames = 0;
    int refused = 0;
    while (at < size) {
        size_t want;
        switch (cut & 3) {
        case 0: want = 1; break;
        case 1: want = (size_t)(cut >> 2) + 1; break;
        case 2: want = (size_t)data[at] % 17 + 1; break;
        default: want = size - at; break;
        }
        if (want > size - at)
            want = size - at;
        size_t off = 0;
        while (off < want) {
            size_t used = 0, offered = want - off;
            int rc = cc_frame_reader_feed(reader, data + at + off, offered, &used);
            check(used <= offered);
            off += used;
            if (rc == 1) {
                uint8_t *body;
                size_t len;
                cc_frame_reader_take(reader, &body, &len);
                check(body != NULL);
                check(len <= limit);
                check(len == cc_frame_reader_declared_bytes(reader));
                /* the frame's bytes are exactly the input's */
                size_t start = at + off - len;
                check(start >= CC_FRAME_HEADER_BYTES);
                check(cc_frame_header_decode(data + start - CC_FRAME_HEADER_BYTES) == len);
                check(len == 0 || memcmp(body, data + start, len) == 0);
                free(body);
                frames++;
                in_frames += CC_FRAME_HEADER_BYTES + len;
                check(!cc_frame_reader_mid_frame(reader));
                continue;
            }
            if (rc == CC_ETOOBIG) {
                check(cc_frame_reader_declared_bytes(reader) > limit);
                if (cc_frame_reader_refused_http(reader)) {
                    check(frames == 0);
                    size_t n;
                    check(cc_frame_http_refusal(&n) != NULL && n > 0);
                }
                refused = 1;
                break;
            }
            check(rc == 0);
            check(used == offered);
        }
        if (refused)
            break;
        at += want;
    }
    if (!refused) {
        /* whatever is not in a complete frame is the partial one */
        check(in_frames <= size);
        check(cc_frame_reader_mid_frame(reader) == (in_frames < size));
    }
    cc_frame_reader_free(reader);

    /* the header codec round-trips */
    if (size >= CC_FRAME_HEADER_BYTES) {
        uint8_t h[CC_FRAME_HEADER_BYTES];
        uint32_t n = cc_frame_header_decode(data);
        check(cc_frame_header_encode(n, h) == 0);
        check(memcmp(h, data, CC_FRAME_HEADER_BYTES) == 0);
    }
    return 0;
}
