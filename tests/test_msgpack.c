/* Tests for queries/cc_msgpack.c: the bounds check run on untrusted msgpack
 * before msgpack-c unpacks it. */
#include <criterion/criterion.h>
#include <string.h>

#include <msgpack.h>

#include "cc_msgpack.h"

#define CHECK(bytes, depth) cc_msgpack_within_bounds(bytes, sizeof(bytes), depth)

Test(msgpack, everything_msgpack_c_packs_passes)
{
    msgpack_sbuffer buffer;
    msgpack_packer packer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    msgpack_pack_map(&packer, 3);
    msgpack_pack_str_with_body(&packer, "numbers", 7);
    msgpack_pack_array(&packer, 6);
    msgpack_pack_int64(&packer, -5);
    msgpack_pack_uint64(&packer, UINT64_MAX);
    msgpack_pack_double(&packer, 2.5);
    msgpack_pack_float(&packer, 1.5f);
    msgpack_pack_nil(&packer);
    msgpack_pack_true(&packer);
    msgpack_pack_str_with_body(&packer, "blob", 4);
    msgpack_pack_bin_with_body(&packer, "\x00\x01\x02", 3);
    msgpack_pack_str_with_body(&packer, "nested", 6);
    msgpack_pack_map(&packer, 1);
    msgpack_pack_str_with_body(&packer, "ext", 3);
    msgpack_pack_ext_with_body(&packer, "abcd", 4, 7);
    cr_assert(cc_msgpack_within_bounds((const uint8_t *)buffer.data, buffer.size, 32));
    msgpack_sbuffer_destroy(&buffer);
}

Test(msgpack, a_container_declaring_more_elements_than_bytes_fails)
{
    const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t array16[] = {0xdc, 0x00, 0x03, 0x01, 0x02}; /* 3 declared, 2 present */
    const uint8_t fixmap[] = {0x82, 0xa1, 0x61, 0x01};         /* 2 pairs, 1 present */
    cr_assert_not(CHECK(map32, 32));
    cr_assert_not(CHECK(array16, 32));
    cr_assert_not(CHECK(fixmap, 32));
}

Test(msgpack, strings_and_binaries_must_fit)
{
    const uint8_t str8[] = {0xd9, 0x05, 'a', 'b'};
    const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    const uint8_t fixext16[] = {0xd8, 0x01, 0x00};
    const uint8_t header_cut[] = {0xda, 0x00};
    cr_assert_not(CHECK(str8, 32));
    cr_assert_not(CHECK(bin32, 32));
    cr_assert_not(CHECK(fixext16, 32));
    cr_assert_not(CHECK(header_cut, 32));
}

Test(msgpack, exactly_one_value_and_nothing_after_it)
{
    const uint8_t two_values[] = {0x01, 0x02};
    const uint8_t one_value[] = {0x01};
    cr_assert_not(CHECK(two_values, 32));
    cr_assert(CHECK(one_value, 32));
    cr_assert_not(cc_msgpack_within_bounds(one_value, 0, 32), "empty input");
}

Test(msgpack, the_reserved_byte_fails)
{
    const uint8_t reserved[] = {0x91, 0xc1};
    cr_assert_not(CHECK(reserved, 32));
}

Test(msgpack, nesting_is_bounded)
{
    uint8_t nested[10];
    memset(nested, 0x91, sizeof(nested) - 1); /* 9 arrays of one element */
    nested[sizeof(nested) - 1] = 0x90;         /* around an empty array: depth 10 */
    cr_assert(CHECK(nested, 10));
    cr_assert_not(CHECK(nested, 9));
}

Test(msgpack, empty_containers_pass)
{
    const uint8_t empty_map[] = {0x80};
    const uint8_t map_of_empty_array[] = {0x81, 0xa1, 0x61, 0x90};
    cr_assert(CHECK(empty_map, 32));
    cr_assert(CHECK(map_of_empty_array, 32));
}

Test(msgpack, check_says_why_a_value_fails)
{
    struct cc_msgpack_fault fault;
    static const uint8_t overlong[] = {0xdf, 0xff, 0xff, 0xff, 0xff}; /* map32 of 4G pairs */
    cr_assert_eq(cc_msgpack_check(overlong, sizeof overlong, 32, &fault), CC_MSGPACK_OVERLONG);
    cr_assert_eq(fault.elements, 2ULL * 0xffffffffULL);
    cr_assert_eq(fault.bytes_left, 0);
    static const uint8_t bad[] = {0x91, 0xc1};
    cr_assert_eq(cc_msgpack_check(bad, sizeof bad, 32, &fault), CC_MSGPACK_BAD_BYTE);
    cr_assert_eq(fault.at, 1);
    static const uint8_t trailing[] = {0x01, 0x02, 0x03};
    cr_assert_eq(cc_msgpack_check(trailing, sizeof trailing, 32, &fault), CC_MSGPACK_TRAILING);
    cr_assert_eq(fault.bytes_left, 2);
    static const uint8_t deep[] = {0x91, 0x91, 0x91, 0x01};
    cr_assert_eq(cc_msgpack_check(deep, sizeof deep, 2, NULL), CC_MSGPACK_TOO_DEEP);
    cr_assert_eq(cc_msgpack_check(deep, sizeof deep, 3, NULL), CC_MSGPACK_OK);
    static const uint8_t truncated[] = {0xa5, 'a', 'b'};
    cr_assert_eq(cc_msgpack_check(truncated, sizeof truncated, 32, NULL), CC_MSGPACK_TRUNCATED);
}
