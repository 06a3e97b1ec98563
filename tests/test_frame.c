/* Tests for server/cc_frame.c: the length-prefixed framing, fed byte by
 * byte, several frames at once, and over-long declared lengths. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_frame.h"

/* Builds header + body into out; returns the total length. */
static size_t make_frame(const char *body, size_t len, uint8_t *out)
{
    cr_assert_eq(cc_frame_header_encode(len, out), 0);
    memcpy(out + CC_FRAME_HEADER_BYTES, body, len);
    return CC_FRAME_HEADER_BYTES + len;
}

Test(frame, header_is_four_bytes_big_endian)
{
    uint8_t header[CC_FRAME_HEADER_BYTES];
    cr_assert_eq(cc_frame_header_encode(0x01020304, header), 0);
    cr_assert_eq(header[0], 1);
    cr_assert_eq(header[1], 2);
    cr_assert_eq(header[2], 3);
    cr_assert_eq(header[3], 4);
    cr_assert_eq(cc_frame_header_decode(header), 0x01020304u);
}

Test(frame, header_refuses_a_body_over_four_gibibytes)
{
    uint8_t header[CC_FRAME_HEADER_BYTES];
    cr_assert_eq(cc_frame_header_encode((size_t)UINT32_MAX + 1, header), CC_ETOOBIG);
    cr_assert_eq(cc_frame_header_encode(UINT32_MAX, header), 0);
}

Test(frame, whole_frame_in_one_feed)
{
    struct cc_frame_reader *reader;
    uint8_t wire[64];
    size_t n = make_frame("hello", 5, wire), used;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire, n, &used), 1);
    cr_assert_eq(used, n);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(body, "hello", 5), 0);
    cr_assert_not(cc_frame_reader_mid_frame(reader));
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, frame_fed_one_byte_at_a_time)
{
    struct cc_frame_reader *reader;
    uint8_t wire[64];
    size_t n = make_frame("split me", 8, wire), used;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    for (size_t i = 0; i + 1 < n; i++) {
        cr_assert_eq(cc_frame_reader_feed(reader, wire + i, 1, &used), 0, "byte %zu", i);
        cr_assert_eq(used, 1);
        cr_assert(cc_frame_reader_mid_frame(reader));
    }
    cr_assert_eq(cc_frame_reader_feed(reader, wire + n - 1, 1, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(body, "split me", 8), 0);
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, two_frames_in_one_buffer_come_out_one_at_a_time)
{
    struct cc_frame_reader *reader;
    uint8_t wire[64];
    size_t n = make_frame("one", 3, wire);
    n += make_frame("second", 6, wire + n);
    size_t used, offset = 0;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire, n, &used), 1);
    cr_assert_eq(used, CC_FRAME_HEADER_BYTES + 3, "stops at the end of the first frame");
    offset += used;
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(body, "one", 3), 0);
    free(body);
    cr_assert_eq(cc_frame_reader_feed(reader, wire + offset, n - offset, &used), 1);
    cr_assert_eq(offset + used, n);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 6);
    cr_assert_eq(memcmp(body, "second", 6), 0);
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, split_inside_the_header_and_across_frames)
{
    struct cc_frame_reader *reader;
    uint8_t wire[64];
    size_t n = make_frame("abc", 3, wire);
    n += make_frame("defg", 4, wire + n);
    size_t used;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    /* Cut after 2 header bytes, then after the first frame plus 1 byte of
     * the second header. */
    cr_assert_eq(cc_frame_reader_feed(reader, wire, 2, &used), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire + 2, 6, &used), 1);
    cr_assert_eq(used, 5);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(memcmp(body, "abc", 3), 0);
    free(body);
    cr_assert_eq(cc_frame_reader_feed(reader, wire + 7, 1, &used), 0);
    cr_assert(cc_frame_reader_mid_frame(reader));
    cr_assert_eq(cc_frame_reader_feed(reader, wire + 8, n - 8, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(body, "defg", 4), 0);
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, empty_body_is_a_frame_with_a_buffer)
{
    struct cc_frame_reader *reader;
    uint8_t wire[8];
    size_t n = make_frame("", 0, wire), used;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire, n, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 0);
    cr_assert_not_null(body);
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, declared_length_over_the_limit_is_refused_from_the_header_alone)
{
    struct cc_frame_reader *reader;
    uint8_t header[CC_FRAME_HEADER_BYTES];
    size_t used;

    cr_assert_eq(cc_frame_reader_new(100, &reader), 0);
    cr_assert_eq(cc_frame_header_encode(0xFFFFFFF0u, header), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, header, sizeof(header), &used), CC_ETOOBIG);
    cr_assert_eq(cc_frame_reader_declared_bytes(reader), 0xFFFFFFF0u);
    /* Refused for good: further input is not read. */
    cr_assert_eq(cc_frame_reader_feed(reader, header, sizeof(header), &used), CC_ETOOBIG);
    cr_assert_eq(used, 0);
    cc_frame_reader_free(reader);
}

Test(frame, declared_length_at_the_limit_is_accepted)
{
    struct cc_frame_reader *reader;
    uint8_t wire[CC_FRAME_HEADER_BYTES + 100];
    char body_in[100];
    memset(body_in, 'x', sizeof(body_in));
    size_t n = make_frame(body_in, sizeof(body_in), wire), used;
    uint8_t *body;
    size_t len;

    cr_assert_eq(cc_frame_reader_new(100, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire, n, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    cr_assert_eq(len, 100);
    free(body);
    cc_frame_reader_free(reader);
}

Test(frame, sbuffer_frame_round_trips_through_the_reader)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    struct cc_frame_reader *reader;
    size_t used;
    uint8_t *body;
    size_t len;

    msgpack_sbuffer_init(&buffer);
    cr_assert_eq(cc_frame_sbuffer_begin(&buffer), 0);
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "k", 1);
    msgpack_pack_uint64(&packer, 42);
    cr_assert_eq(cc_frame_sbuffer_finish(&buffer), 0);
    cr_assert_eq(cc_frame_header_decode((const uint8_t *)buffer.data),
                 buffer.size - CC_FRAME_HEADER_BYTES);

    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, (const uint8_t *)buffer.data, buffer.size, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    msgpack_unpacked unpacked;
    size_t offset = 0;
    msgpack_unpacked_init(&unpacked);
    cr_assert_eq(msgpack_unpack_next(&unpacked, (const char *)body, len, &offset),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(unpacked.data.type, MSGPACK_OBJECT_MAP);
    cr_assert_eq(unpacked.data.via.map.ptr[0].val.via.u64, 42);
    msgpack_unpacked_destroy(&unpacked);
    free(body);
    cc_frame_reader_free(reader);
    msgpack_sbuffer_destroy(&buffer);
}

Test(frame, sbuffer_begin_refuses_a_buffer_that_is_not_empty)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    cr_assert_eq(msgpack_sbuffer_write(&buffer, "x", 1), 0);
    cr_assert_eq(cc_frame_sbuffer_begin(&buffer), CC_EINVAL);
    msgpack_sbuffer_destroy(&buffer);
}
