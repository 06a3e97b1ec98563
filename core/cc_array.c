/*
 * cc_array.c: growable flat arrays (see cc_array.h).
 *
 * Must never: lose the old array when growing fails.
 */
#include "cc_array.h"

#include <stdint.h>
#include <stdlib.h>

#include "cc_error.h"

size_t cc_array_next_capacity(size_t capacity, size_t need)
{
    size_t grown = capacity < CC_ARRAY_MIN_CAPACITY ? CC_ARRAY_MIN_CAPACITY
                   : capacity > SIZE_MAX / 3 * 2 ? SIZE_MAX
                                                  : capacity + capacity / 2;
    return grown < need ? need : grown;
}

int cc_array_resize(void *array_pointer, size_t capacity, size_t element_bytes)
{
    void **array = array_pointer;
    if (element_bytes && capacity > SIZE_MAX / element_bytes)
        return CC_ENOMEM;
    size_t bytes = capacity * element_bytes;
    void *grown = realloc(*array, bytes > 0 ? bytes : 1);
    if (!grown)
        return CC_ENOMEM;
    *array = grown;
    return 0;
}

int cc_array_reserve(void *array_pointer, size_t *capacity, size_t need,
                     size_t element_bytes)
{
    if (need <= *capacity)
        return 0;
    size_t grown = cc_array_next_capacity(*capacity, need);
    int rc = cc_array_resize(array_pointer, grown, element_bytes);
    if (rc == 0)
        *capacity = grown;
    return rc;
}
