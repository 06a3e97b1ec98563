/*
 * cc_hash.c: the shared hashing, sizing and growth of carecount's hash tables
 * (see cc_hash.h). Lookups are inline in the header; what is here runs when
 * a table grows.
 *
 * Must never: be used where a keyed hash is needed (these are not secret).
 */
#include "cc_hash.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cc_array.h"
#include "cc_error.h"

#define GOLDEN_64 0x9e3779b97f4a7c15ULL

uint64_t cc_hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = cc_hash_mix64(seed ^ (len * GOLDEN_64));
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = cc_hash_mix64(h ^ w) + GOLDEN_64;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, len);
    return cc_hash_mix64(h ^ tail ^ (uint64_t)len << 56);
}

uint64_t cc_hash_text(const char *text, size_t width, uint64_t seed)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < width && text[i]; i++) {
        h ^= (uint8_t)text[i];
        h *= 0x100000001b3ULL;
    }
    return cc_hash_mix64(h);
}

uint64_t cc_hash_slots_for(uint64_t n, uint64_t min_slots)
{
    uint64_t slots = min_slots ? min_slots : 1;
    if (n > UINT64_MAX / 4)
        return 0;
    while (slots < 2 * n)
        slots <<= 1;
    return slots;
}

void cc_hash_advise_huge(void *data, size_t bytes)
{
    if (!data || bytes < CC_HASH_HUGE_BYTES)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)data + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)data + bytes) & ~(page - 1);
    if (to > from)
        madvise((void *)from, to - from, MADV_HUGEPAGE); /* advice: failure is harmless */
}

/* ---- cc_index_table ---------------------------------------------------- */

int cc_index_table_reserve(struct cc_index_table *t, uint64_t n,
                           uint64_t (*hash_of)(const void *context, uint32_t index),
                           const void *context)
{
    uint64_t slots = t->slots ? t->mask + 1 : 0;
    if ((n + 1) * 2 <= slots)
        return 0;
    uint64_t grown = cc_hash_slots_for(n + 1, slots ? 2 * slots : 64);
    if (!grown || grown > SIZE_MAX / sizeof *t->slots)
        return CC_ENOMEM;
    uint32_t *fresh = calloc((size_t)grown, sizeof *fresh);
    if (!fresh)
        return CC_ENOMEM;
    cc_hash_advise_huge(fresh, (size_t)grown * sizeof *fresh);
    free(t->slots);
    t->slots = fresh;
    t->mask = grown - 1;
    for (uint64_t i = 0; i < n; i++)
        cc_index_table_insert(t, hash_of(context, (uint32_t)i), (uint32_t)i);
    return 0;
}

void cc_index_table_free(struct cc_index_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->mask = 0;
}

/* ---- cc_name_set -------------------------------------------------------- */

static uint64_t name_hash(const void *set, uint32_t i)
{
    const struct cc_name_set *s = set;
    return cc_hash_text(s->names[i], SIZE_MAX, 0);
}

static int name_matches(const void *set, uint32_t i, const void *name)
{
    const struct cc_name_set *s = set;
    return !strcmp(s->names[i], name);
}

int cc_name_set_add(struct cc_name_set *set, const char *name, size_t *index, int *added)
{
    uint64_t hash = cc_hash_text(name, SIZE_MAX, 0);
    int64_t found = cc_index_table_find(&set->index, hash, name_matches, set, name);
    if (added)
        *added = found < 0;
    if (found >= 0) {
        *index = (size_t)found;
        return 0;
    }
    char *copy;
    if (set->n >= UINT32_MAX - 1 ||
        cc_index_table_reserve(&set->index, set->n, name_hash, set) ||
        cc_array_reserve(&set->names, &set->capacity, set->n + 1, sizeof *set->names) ||
        !(copy = strdup(name)))
        return CC_ENOMEM;
    set->names[set->n] = copy;
    cc_index_table_insert(&set->index, hash, (uint32_t)set->n);
    *index = set->n++;
    return 0;
}

void cc_name_set_free(struct cc_name_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        free(set->names[i]);
    free(set->names);
    cc_index_table_free(&set->index);
    memset(set, 0, sizeof *set);
}

/* ---- cc_u64_map --------------------------------------------------------- */

int cc_u64_map_reserve(struct cc_u64_map *m, uint64_t n, uint64_t min_slots)
{
    uint64_t slots = m->keys ? m->mask + 1 : 0;
    if (m->keys && n * 2 <= slots)
        return 0;
    uint64_t grown = cc_hash_slots_for(n, slots > min_slots ? slots : min_slots);
    if (!grown || grown > SIZE_MAX / sizeof *m->keys ||
        (m->value_bytes && grown > SIZE_MAX / m->value_bytes))
        return CC_ENOMEM;
    struct cc_u64_map fresh = {.value_bytes = m->value_bytes, .n = m->n, .mask = grown - 1};
    fresh.keys = calloc((size_t)grown, sizeof *fresh.keys);
    fresh.values = malloc((size_t)grown * m->value_bytes + 1);
    if (!fresh.keys || !fresh.values) {
        free(fresh.keys);
        free(fresh.values);
        return CC_ENOMEM;
    }
    cc_hash_advise_huge(fresh.keys, (size_t)grown * sizeof *fresh.keys);
    cc_hash_advise_huge(fresh.values, (size_t)grown * m->value_bytes);
    for (uint64_t i = 0; m->keys && i < slots; i++) {
        if (!m->keys[i])
            continue;
        uint64_t at = cc_u64_map_slot(&fresh, m->keys[i]);
        fresh.keys[at] = m->keys[i];
        memcpy(cc_u64_map_value(&fresh, at), cc_u64_map_value(m, i), m->value_bytes);
    }
    cc_u64_map_free(m, 1);
    *m = fresh;
    return 0;
}

void cc_u64_map_free(struct cc_u64_map *m, int wipe)
{
    if (wipe && m->keys) {
        sodium_memzero(m->keys, (m->mask + 1) * sizeof *m->keys);
        sodium_memzero(m->values, (m->mask + 1) * m->value_bytes);
    }
    free(m->keys);
    free(m->values);
    *m = cc_u64_map_empty(m->value_bytes);
}
