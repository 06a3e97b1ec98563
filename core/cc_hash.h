/*
 * cc_hash.h: the hashing and probing that carecount's in-memory hash tables
 * share.
 *
 * Every table is open addressing with linear probing over a power-of-two
 * number of slots, kept at most half full, and spread with one 64-bit
 * finaliser (cc_hash_mix64). Two table shapes serve most of them:
 *
 *   - cc_index_table: slots hold index + 1 (0 is empty) into the caller's own
 *     arrays, which keep the keys; lookups compare through a callback that
 *     the compiler inlines (the store builder's persons, practices and codes;
 *     cc_name_set).
 *   - cc_u64_map: non-zero 64-bit keys beside fixed-size values, for memos
 *     and small maps keyed by a packed identifier (the ingest's pseudonym and
 *     LSOA memos, the builder's pending drops).
 *
 * On the index table, cc_name_set keeps distinct strings in order of first
 * appearance (the groups of `carecount stats`).
 *
 * Tables whose slots carry more (the linkage index keeps its whole key in the
 * slot, the ingest's seen set 128-bit keys) keep their own layout for speed
 * but size and spread themselves with cc_hash_slots_for() and
 * cc_hash_mix64().
 *
 * Nothing here is keyed or secret: these hashes place entries in memory and
 * must never stand in for a keyed hash or a pseudonym.
 */
#ifndef CC_HASH_H
#define CC_HASH_H

#include <stddef.h>
#include <stdint.h>

/* murmur3's 64-bit finaliser: spreads a key over a table's slots. */
static inline uint64_t cc_hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Advises the kernel to back data[0..bytes) with transparent huge pages
 * when it is at least CC_HASH_HUGE_BYTES (tables that large are read at
 * random: with 4 KiB pages nearly every look-up also misses the TLB). The
 * memory must come from malloc/calloc (large ones are mapped); advice
 * only, nothing fails. */
#define CC_HASH_HUGE_BYTES ((size_t)8 << 20)
void cc_hash_advise_huge(void *data, size_t bytes);

/* A fast non-cryptographic 64-bit hash of data[0..len), read in words. */
uint64_t cc_hash_bytes(const void *data, size_t len, uint64_t seed);

/* A hash of the NUL-terminated text in text[0..width) (FNV-1a, then
 * cc_hash_mix64); width SIZE_MAX reads up to the NUL. */
uint64_t cc_hash_text(const char *text, size_t width, uint64_t seed);

/* The number of slots for a table of n entries kept at most half full: the
 * smallest power of two >= 2n and >= min_slots (a power of two). 0 if that
 * does not fit in 64 bits. */
uint64_t cc_hash_slots_for(uint64_t n, uint64_t min_slots);

/* ---- a table of indices into the caller's arrays ----------------------- */

struct cc_index_table {
    uint32_t *slots; /* index + 1, 0 empty; NULL until the first reserve */
    uint64_t mask;   /* number of slots - 1 */
};

/* Makes room for entry n when entries 0..n-1 are in the table: when it
 * would pass half full it grows (to at least 64 slots) and re-inserts every
 * entry with hash_of(context, i). 0 or CC_ENOMEM (the table is then empty
 * of slots and must be reserved again before use). */
int cc_index_table_reserve(struct cc_index_table *t, uint64_t n,
                           uint64_t (*hash_of)(const void *context, uint32_t index),
                           const void *context);

/* Stores index at the first empty slot of hash's probe sequence (reserve
 * first). */
static inline void cc_index_table_insert(struct cc_index_table *t, uint64_t hash,
                                         uint32_t index)
{
    uint64_t at = hash & t->mask;
    while (t->slots[at])
        at = (at + 1) & t->mask;
    t->slots[at] = index + 1;
}

/* The index of the entry with this hash for which matches(context, index,
 * key) is nonzero, or -1. */
static inline int64_t cc_index_table_find(const struct cc_index_table *t, uint64_t hash,
                                          int (*matches)(const void *context, uint32_t index,
                                                         const void *key),
                                          const void *context, const void *key)
{
    if (!t->slots)
        return -1;
    for (uint64_t at = hash & t->mask; t->slots[at]; at = (at + 1) & t->mask)
        if (matches(context, t->slots[at] - 1, key))
            return t->slots[at] - 1;
    return -1;
}

void cc_index_table_free(struct cc_index_table *t);

/* ---- distinct strings in order of first appearance -------------------- */

struct cc_name_set {
    char **names;   /* n copies, in order of first appearance */
    size_t n, capacity;
    struct cc_index_table index;
};

/* Sets *index to the position of name, adding a copy at the end if it is
 * new (*added, if not NULL, says which). 0 or CC_ENOMEM (nothing added). */
int cc_name_set_add(struct cc_name_set *set, const char *name, size_t *index, int *added);

/* Frees the names and the index and empties the set. */
void cc_name_set_free(struct cc_name_set *set);

/* ---- non-zero 64-bit keys beside fixed-size values --------------------- */

struct cc_u64_map {
    uint64_t *keys;        /* 0: empty slot */
    unsigned char *values; /* value_bytes per slot, beside keys[i] */
    size_t value_bytes;
    uint64_t n, mask; /* entries; number of slots - 1 */
};

/* An empty map of value_bytes values; no memory until the first reserve. */
static inline struct cc_u64_map cc_u64_map_empty(size_t value_bytes)
{
    return (struct cc_u64_map){.value_bytes = value_bytes};
}

/* Makes the map able to hold n entries at most half full (to at least
 * min_slots slots), re-inserting what it holds when it grows. 0 or
 * CC_ENOMEM (the map is then unchanged). */
int cc_u64_map_reserve(struct cc_u64_map *m, uint64_t n, uint64_t min_slots);

/* 1 if one more entry would take the map past half full (or it has no
 * slots yet). */
static inline int cc_u64_map_full(const struct cc_u64_map *m)
{
    return !m->keys || (m->n + 1) * 2 > m->mask + 1;
}

/* The slot of key (non-zero): where it is (keys[slot] == key), or the empty
 * slot where it goes (keys[slot] == 0). The map must have slots. */
static inline uint64_t cc_u64_map_slot(const struct cc_u64_map *m, uint64_t key)
{
    uint64_t at = cc_hash_mix64(key) & m->mask;
    while (m->keys[at] && m->keys[at] != key)
        at = (at + 1) & m->mask;
    return at;
}

/* Asks the caches for where a look-up of key starts: its first slot and
 * that slot's value (advice only; the map must have slots). */
static inline void cc_u64_map_prefetch(const struct cc_u64_map *m, uint64_t key)
{
    uint64_t at = cc_hash_mix64(key) & m->mask;
    __builtin_prefetch(&m->keys[at]);
    __builtin_prefetch(m->values + at * m->value_bytes);
}

/* The value of slot (value_bytes bytes). */
static inline void *cc_u64_map_value(const struct cc_u64_map *m, uint64_t slot)
{
    return m->values + slot * m->value_bytes;
}

/* Fills the empty slot with key; its value is the caller's to write. */
static inline void cc_u64_map_put(struct cc_u64_map *m, uint64_t slot, uint64_t key)
{
    m->keys[slot] = key;
    m->n++;
}

/* Frees the map (wiping keys and values first if wipe) and empties it. */
void cc_u64_map_free(struct cc_u64_map *m, int wipe);

#endif
