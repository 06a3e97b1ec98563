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

/* Feeds a first header; returns the reader (refused or not). */
static struct cc_frame_reader *first_header(const char *bytes, uint32_t limit, int *rc)
{
    struct cc_frame_reader *reader;
    size_t used;
    cr_assert_eq(cc_frame_reader_new(limit, &reader), 0);
    *rc = cc_frame_reader_feed(reader, (const uint8_t *)bytes, 4, &used);
    return reader;
}

Test(frame, an_http_request_line_first_is_recognised)
{
    const char *starts[] = {"GET ", "POST", "PUT ", "HEAD", "OPTI", "DELE", "PATC", "CONN",
                            "PRI "};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        int rc;
        struct cc_frame_reader *reader = first_header(starts[i], 1048576, &rc);
        cr_assert_eq(rc, CC_ETOOBIG, "%s", starts[i]);
        cr_assert(cc_frame_reader_refused_http(reader), "%s", starts[i]);
        cc_frame_reader_free(reader);
    }
    /* Other over-long lengths are plain TOOBIG. */
    const char *others[] = {"\x7f\xff\xff\xff", "GETX", "get ", "HTTP"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        int rc;
        struct cc_frame_reader *reader = first_header(others[i], 1048576, &rc);
        cr_assert_eq(rc, CC_ETOOBIG);
        cr_assert_not(cc_frame_reader_refused_http(reader), "%s", others[i]);
        cc_frame_reader_free(reader);
    }
}

Test(frame, http_bytes_within_the_limit_or_after_a_frame_are_a_length)
{
    /* A limit above "GET " read as a length: it is a length, not HTTP. */
    int rc;
    struct cc_frame_reader *reader = first_header("GET ", UINT32_MAX, &rc);
    cr_assert_eq(rc, 0);
    cr_assert_not(cc_frame_reader_refused_http(reader));
    cc_frame_reader_free(reader);

    /* After one frame, "GET " is an over-long length like any other. */
    uint8_t wire[16];
    size_t n = make_frame("\x80", 1, wire), used;
    uint8_t *body;
    size_t len;
    cr_assert_eq(cc_frame_reader_new(1024, &reader), 0);
    cr_assert_eq(cc_frame_reader_feed(reader, wire, n, &used), 1);
    cc_frame_reader_take(reader, &body, &len);
    free(body);
    cr_assert_eq(cc_frame_reader_feed(reader, (const uint8_t *)"GET ", 4, &used), CC_ETOOBIG);
    cr_assert_not(cc_frame_reader_refused_http(reader));
    cc_frame_reader_free(reader);
}

Test(frame, the_http_refusal_is_a_complete_response)
{
    size_t len;
    const char *text = cc_frame_http_refusal(&len);
    cr_assert_eq(strlen(text), len);
    cr_assert(strncmp(text, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    const char *body = strstr(text, "\r\n\r\n");
    cr_assert_not_null(body);
    body += 4;
    const char *length = strstr(text, "Content-Length: ");
    cr_assert_not_null(length);
    cr_assert_eq(strtoul(length + 16, NULL, 10), strlen(body), "Content-Length is wrong");
    cr_assert_not_null(strstr(text, "Connection: close\r\n"));
    cr_assert_not_null(strstr(body, "docs/protocol.md"));
}
