/*
 * cc_array.h: growing the flat arrays that carecount appends to.
 *
 * An array is a pointer and a capacity (in elements) that the caller keeps
 * beside its count. It grows by half its size each time (at least to
 * CC_ARRAY_MIN_CAPACITY), so appending n elements costs O(n) copies in all.
 * Arrays that grow together (the columns of one table) take one capacity
 * from cc_array_next_capacity() and cc_array_resize() each column to it.
 *
 * Must never: lose the old array when growing fails (it stays valid and
 * unchanged), or compute a byte size that overflows.
 */
#ifndef CC_ARRAY_H
#define CC_ARRAY_H

#include <stddef.h>

#define CC_ARRAY_MIN_CAPACITY 64

/* The capacity to grow to from capacity so that need elements fit: at least
 * need, at least CC_ARRAY_MIN_CAPACITY, and at least 1.5 times capacity. */
size_t cc_array_next_capacity(size_t capacity, size_t need);

/* Resizes the array *array_pointer (a pointer to any element pointer) to
 * capacity elements of element_bytes each. 0, or CC_ENOMEM (out of memory
 * or a size that overflows; the array stays as it was). */
int cc_array_resize(void *array_pointer, size_t capacity, size_t element_bytes);

/* Makes the array hold at least need elements, growing it and *capacity
 * when it is smaller. 0 or CC_ENOMEM (nothing changed). */
int cc_array_reserve(void *array_pointer, size_t *capacity, size_t need,
                     size_t element_bytes);

#endif
