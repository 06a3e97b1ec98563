/* Tests for core/cc_hash.c: the set of names in order of first appearance
 * (the groups of `carecount stats`). */
#include <criterion/criterion.h>
#include <stdio.h>

#include "cc_hash.h"

Test(hash, name_set_keeps_first_appearance_order_and_finds_names_again)
{
    struct cc_name_set set = {0};
    size_t index;
    int added;
    cr_assert_eq(cc_name_set_add(&set, "north", &index, &added), 0);
    cr_assert(added);
    cr_assert_eq(index, 0);
    cr_assert_eq(cc_name_set_add(&set, "", &index, &added), 0);
    cr_assert(added);
    cr_assert_eq(index, 1);
    cr_assert_eq(cc_name_set_add(&set, "north", &index, &added), 0);
    cr_assert(!added);
    cr_assert_eq(index, 0);
    /* past several growths of the index */
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "area %d", i);
        cr_assert_eq(cc_name_set_add(&set, name, &index, NULL), 0);
        cr_assert_eq(index, (size_t)i + 2);
    }
    for (int i = 4999; i >= 0; i -= 7) {
        snprintf(name, sizeof name, "area %d", i);
        cr_assert_eq(cc_name_set_add(&set, name, &index, &added), 0);
        cr_assert(!added);
        cr_assert_eq(index, (size_t)i + 2);
        cr_assert_str_eq(set.names[index], name);
    }
    cr_assert_eq(set.n, 5002);
    cr_assert_str_eq(set.names[1], "");
    cc_name_set_free(&set);
    cr_assert_eq(set.n, 0);
    cr_assert_null(set.names);
}
