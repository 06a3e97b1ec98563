/*
 * test_release_cache.c: the release cache (queries/cc_release_cache.h): a
 * hit only for a key equal in every field, entries gone after their TTL,
 * the bytes kept within the bound (least recently used first), and many
 * threads at once (run under the sanitizers too).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_release_cache.h"

struct sink {
    char bytes[4096];
    size_t len;
    int fail;
};

static int sink_write(void *ctx, const char *bytes, size_t len)
{
    struct sink *s = ctx;
    if (s->fail || s->len + len > sizeof s->bytes)
        return -1;
    memcpy(s->bytes + s->len, bytes, len);
    s->len += len;
    return 0;
}

static struct cc_release_cache_key key_of(int64_t account, const char *request)
{
    struct cc_release_cache_key k = {account, 77, 20000, "count", request, strlen(request)};
    return k;
}

/* 1 and the bytes on a hit, 0 on a miss. */
static int get(cc_release_cache *c, struct cc_release_cache_key k, int64_t now, struct sink *s,
               struct cc_release_cache_counts *counts)
{
    memset(s, 0, sizeof *s);
    return cc_release_cache_get(c, &k, now, sink_write, s, counts);
}

Test(release_cache, a_hit_needs_every_field_of_the_key_equal)
{
    cc_release_cache *c = NULL;
    cr_assert_eq(cc_release_cache_open(1 << 20, 300, &c), 0);
    struct cc_release_cache_key k = key_of(5, "{\"v\":1}");
    struct cc_release_cache_counts counts = {12, 3}, got;
    struct sink s;
    cr_assert_eq(get(c, k, 1000, &s, &got), 0, "nothing kept yet");
    cc_release_cache_put(c, &k, 1000, "\x81\xa1x\x01", 4, &counts);
    cr_assert_eq(get(c, k, 1001, &s, &got), 1);
    cr_assert_eq(s.len, 4);
    cr_assert(!memcmp(s.bytes, "\x81\xa1x\x01", 4));
    cr_assert_eq(got.cells_released, 12);
    cr_assert_eq(got.cells_suppressed, 3);

    struct cc_release_cache_key other = k;
    other.account = 6;
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "another account");
    other = k;
    other.version = 78;
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "another data version");
    other = k;
    other.day = 20001;
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "another day");
    other = k;
    other.kind = "compare";
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "another op");
    other = key_of(5, "{\"v\":2}");
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "another request");
    other = key_of(5, "{\"v\":1");
    other.request_len = strlen(other.request);
    cr_assert_eq(get(c, other, 1001, &s, &got), 0, "a prefix of the request");

    struct cc_release_cache_stats st;
    cc_release_cache_stats(c, &st);
    cr_assert_eq(st.hits, 1);
    cr_assert_eq(st.misses, 7);
    cr_assert_eq(st.entries, 1);
    cr_assert_gt(st.bytes, 4);

    /* a failing writer is an error, not a hit */
    memset(&s, 0, sizeof s);
    s.fail = 1;
    cr_assert_eq(cc_release_cache_get(c, &k, 1001, sink_write, &s, &got), CC_ENOMEM);
    cc_release_cache_close(c);
}

Test(release_cache, an_entry_lives_its_ttl_and_no_longer)
{
    cc_release_cache *c = NULL;
    cr_assert_eq(cc_release_cache_open(1 << 20, 300, &c), 0);
    struct cc_release_cache_key k = key_of(1, "q");
    struct cc_release_cache_counts counts = {1, 0}, got;
    struct sink s;
    cc_release_cache_put(c, &k, 1000, "\xc0", 1, &counts);
    cr_assert_eq(get(c, k, 1299, &s, &got), 1, "inside the TTL");
    cr_assert_eq(get(c, k, 1300, &s, &got), 0, "at the TTL: asked afresh");
    cr_assert_eq(get(c, k, 1000, &s, &got), 0, "dropped, not just skipped");
    cc_release_cache_put(c, &k, 2000, "\xc0", 1, &counts);
    cr_assert_eq(get(c, k, 1999, &s, &got), 0, "a clock gone back is a miss");
    struct cc_release_cache_stats st;
    cc_release_cache_stats(c, &st);
    cr_assert_eq(st.entries, 0);
    cc_release_cache_close(c);
}

Test(release_cache, the_bytes_kept_stay_within_the_bound_least_recently_used_going_first)
{
    enum { max = 64 * 1024 };
    cc_release_cache *c = NULL;
    cr_assert_eq(cc_release_cache_open(max, 300, &c), 0);
    static char release[2000];
    memset(release, 0x7f, sizeof release);
    struct cc_release_cache_counts counts = {1, 0}, got;
    struct sink s;
    char name[32];
    struct cc_release_cache_stats st;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "query %d", i);
        struct cc_release_cache_key k = key_of(1, name);
        cc_release_cache_put(c, &k, 1000, release, sizeof release, &counts);
        /* query 0 is used after every put: the others go before it */
        cr_assert_eq(get(c, key_of(1, "query 0"), 1000, &s, &got), 1, "after put %d", i);
        cc_release_cache_stats(c, &st);
        cr_assert_leq(st.bytes, max);
    }
    cr_assert_lt(st.entries, 200, "some were evicted");
    cr_assert_gt(st.entries, 10, "but not all");
    cr_assert_eq(get(c, key_of(1, "query 1"), 1000, &s, &got), 0, "an old one went");
    cr_assert_eq(get(c, key_of(1, "query 199"), 1000, &s, &got), 1, "the newest stayed");

    /* larger than an eighth of the bound: not kept */
    static char big[max / 8 + 1];
    struct cc_release_cache_key k = key_of(1, "big");
    cc_release_cache_put(c, &k, 1000, big, sizeof big, &counts);
    cr_assert_eq(get(c, k, 1000, &s, &got), 0);
    /* the same key again replaces its entry */
    k = key_of(1, "query 0");
    cc_release_cache_put(c, &k, 1000, "\x01", 1, &counts);
    cr_assert_eq(get(c, k, 1000, &s, &got), 1);
    cr_assert_eq(s.len, 1);
    cc_release_cache_close(c);
}

Test(release_cache, a_missing_cache_is_always_a_miss_and_a_bad_bound_is_refused)
{
    cc_release_cache *c = NULL;
    struct cc_release_cache_key k = key_of(1, "q");
    struct cc_release_cache_counts counts = {1, 0}, got;
    struct sink s;
    cc_release_cache_put(NULL, &k, 1, "x", 1, &counts);
    cr_assert_eq(get(NULL, k, 1, &s, &got), 0);
    cr_assert_eq(cc_release_cache_open(0, 300, &c), CC_EINVAL);
    cr_assert_eq(cc_release_cache_open(1024, 0, &c), CC_EINVAL);
    cr_assert_null(c);
    cc_release_cache_close(NULL);
}

struct worker {
    cc_release_cache *cache;
    unsigned seed;
    int hits, wrong;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct cc_release_cache_counts got;
    struct sink s;
    char name[32], body[64];
    for (int i = 0; i < 20000; i++) {
        int q = (int)(rand_r(&w->seed) % 300);
        snprintf(name, sizeof name, "query %d", q);
        int len = snprintf(body, sizeof body, "release of %d", q);
        struct cc_release_cache_key k = key_of(q % 3, name);
        int hit = get(w->cache, k, 1000, &s, &got);
        if (hit == 1) {
            w->hits++;
            w->wrong += s.len != (size_t)len || memcmp(s.bytes, body, s.len) != 0 ||
                        got.cells_released != (uint64_t)q;
        } else {
            struct cc_release_cache_counts counts = {(uint64_t)q, 0};
            cc_release_cache_put(w->cache, &k, 1000, body, (size_t)len, &counts);
        }
    }
    return NULL;
}

Test(release_cache, many_threads_at_once_get_only_their_own_keys_bytes)
{
    cc_release_cache *c = NULL;
    /* small enough that entries are evicted while others read */
    cr_assert_eq(cc_release_cache_open(16 * 1024, 300, &c), 0);
    pthread_t threads[4];
    struct worker workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (struct worker){c, (unsigned)i + 1, 0, 0};
        cr_assert_eq(pthread_create(&threads[i], NULL, work, &workers[i]), 0);
    }
    int hits = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(workers[i].wrong, 0);
        hits += workers[i].hits;
    }
    cr_assert_gt(hits, 1000, "the threads shared entries");
    cc_release_cache_close(c);
}
