/*
 * Allocation failure injection (issue 21), as SQLite's and Lua's test
 * suites do it: this test program replaces malloc, calloc, realloc and free
 * with versions that count live blocks and can be armed to fail the Nth
 * allocation. Each operation below is run once to count its allocations,
 * then once for every N = 1..count with the Nth failing: each run must end
 * with a clean error (or, where the failed allocation had a fallback,
 * success), never a crash, and with as many live blocks as before it (no
 * leak). Operations: the JSON query decoder and validation, the msgpack
 * query codec, the engine (cc_exec_run), the release layer
 * (cc_release_answer), and an area comparison (cc_release_comparison).
 *
 * The replacement calls glibc's own __libc_malloc family. Under the
 * sanitizer build (which owns malloc), the injection is compiled out and
 * each operation is run once and must succeed, with ASan checking for
 * leaks.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "cc_attack_fixture.h"
#include "cc_compare.h"
#include "cc_error.h"
#include "cc_exec.h"
#include "cc_policy.h"
#include "cc_query.h"
#include "cc_release.h"

#if defined(__SANITIZE_ADDRESS__)
#define INJECT 0
#else
#define INJECT 1
#endif

/* ---- the counting allocator ---- */

static atomic_long live;          /* blocks allocated and not freed, while counting */
static atomic_long calls;         /* allocations since counting began */
static atomic_long fail_at;       /* 0: never; else the allocation number that fails */
static atomic_bool counting;

#if INJECT
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

/* A block's header (16 bytes, keeping malloc's alignment): whether it was
 * allocated while counting, and its size (for malloc_usable_size). As the
 * glibc manual says of replacing malloc, the aligned allocators and
 * malloc_usable_size are replaced too, so no block of glibc's own malloc
 * ever reaches this free. */
#define HEADER 16
#define COUNTED 0x636f756e74L
/* A block aligned beyond the header (posix_memalign): its header, just
 * before it, says so and holds the offset back to the real block. */
#define ALIGNED 0x616c69676eL
#define COUNTED_ALIGNED 0x616c69676f756eL
static void *mark(void *raw, bool counted, size_t n)
{
    if (!raw)
        return NULL;
    ((long *)raw)[0] = counted ? COUNTED : 0;
    ((size_t *)raw)[1] = n;
    return (char *)raw + HEADER;
}

static bool fails_now(void)
{
    if (!atomic_load(&counting))
        return false;
    long n = atomic_fetch_add(&calls, 1) + 1;
    return n == atomic_load(&fail_at);
}

void *malloc(size_t n)
{
    bool counted = atomic_load(&counting);
    if (n > SIZE_MAX - HEADER || fails_now())
        return NULL;
    void *p = mark(__libc_malloc(n + HEADER), counted, n);
    if (p && counted)
        atomic_fetch_add(&live, 1);
    return p;
}

void *calloc(size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - HEADER) / size)
        return NULL;
    bool counted = atomic_load(&counting);
    if (fails_now())
        return NULL;
    void *p = mark(__libc_calloc(1, n * size + HEADER), counted, n * size);
    if (p && counted)
        atomic_fetch_add(&live, 1);
    return p;
}

void free(void *p)
{
    if (!p)
        return;
    char *raw = (char *)p - HEADER;
    long tag = ((long *)raw)[0];
    if (tag == COUNTED || tag == COUNTED_ALIGNED)
        atomic_fetch_sub(&live, 1);
    if (tag == ALIGNED || tag == COUNTED_ALIGNED)
        raw = (char *)p - ((size_t *)raw)[1];
    __libc_free(raw);
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (n > SIZE_MAX - HEADER || fails_now())
        return NULL; /* p stays valid, as realloc promises */
    char *raw = (char *)p - HEADER;
    long tag = ((long *)raw)[0];
    char *grown = __libc_realloc(raw, n + HEADER);
    if (!grown)
        return NULL;
    return mark(grown, tag == COUNTED, n); /* the block keeps its counted state */
}

void *reallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    return realloc(p, n * size);
}

size_t malloc_usable_size(void *p)
{
    return p ? ((size_t *)((char *)p - HEADER))[1] : 0;
}

/* Alignments up to the header's 16 bytes are what malloc gives; larger
 * ones (a power of 2) get a block of align more bytes, the header in the
 * last 16 before the aligned address. Such a block is never realloc'ed on
 * these paths. */
int posix_memalign(void **out, size_t align, size_t n)
{
    if (align <= HEADER) {
        *out = malloc(n);
        return *out ? 0 : 12; /* ENOMEM */
    }
    bool counted = atomic_load(&counting);
    *out = NULL;
    if ((align & (align - 1)) || n > SIZE_MAX - align || fails_now())
        return 12;
    char *raw = __libc_memalign(align, n + align);
    if (!raw)
        return 12;
    char *p = raw + align;
    ((long *)(p - HEADER))[0] = counted ? COUNTED_ALIGNED : ALIGNED;
    ((size_t *)(p - HEADER))[1] = align;
    if (counted)
        atomic_fetch_add(&live, 1);
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

void *memalign(size_t align, size_t n)
{
    return aligned_alloc(align, n);
}

void *valloc(size_t n)
{
    (void)n;
    return NULL;
}

void *pvalloc(size_t n)
{
    (void)n;
    return NULL;
}
#endif

/* ---- the operations ---- */

static struct cc_attack_fixture fx;

static void fixture_init(void)
{
    cr_assert_eq(cc_attack_fixture_build(&fx), 0);
}

static void fixture_fini(void)
{
    cc_attack_fixture_free(&fx);
}

TestSuite(alloc_failure, .init = fixture_init, .fini = fixture_fini, .timeout = 900);

static const char query_json[] =
    "{\"v\":1,\"measure\":\"persons\",\"dimensions\":[\"region\",{\"name\":\"age_band\","
    "\"bands\":\"10y\"},\"sex\"],\"margins\":true,\"filters\":{\"conditions\":["
    "{\"codes\":{\"icd10\":[\"E85\",\"S72\"]},\"settings\":[\"hospital\"]},"
    "{\"codes\":[\"I10\"],\"system\":\"icd10\",\"exclude\":true}],"
    "\"age\":{\"min\":20,\"max\":89},\"date_range\":{\"from\":\"2015-01\",\"to\":\"2024-12\"}}}";

/* Each returns 0 on success or a CC_E* code; it frees whatever it made. */
static int op_decode(void)
{
    struct cc_query *q = NULL;
    char err[256];
    int rc = cc_query_decode_json(query_json, strlen(query_json), NULL, &q, err, sizeof err);
    if (rc == 0)
        rc = cc_query_validate(q, NULL, NULL, err, sizeof err);
    cc_query_free(q);
    return rc;
}

static int op_codec(void)
{
    struct cc_query *q = NULL, *back = NULL;
    char err[256];
    int rc = cc_query_decode_json(query_json, strlen(query_json), NULL, &q, err, sizeof err);
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    if (rc == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
        rc = cc_query_pack(q, &pk);
    }
    if (rc == 0 && !buffer.data)
        rc = CC_ENOMEM;
    if (rc == 0)
        rc = cc_query_decode(buffer.data, buffer.size, NULL, &back, err, sizeof err);
    char *json = NULL;
    if (rc == 0)
        rc = cc_query_encode_json(back, &json);
    /* success must mean the right answer: the canonical form, whole */
    static char reference[4096];
    if (rc == 0 && !reference[0] && strlen(json) < sizeof reference)
        memcpy(reference, json, strlen(json) + 1);
    else if (rc == 0 && strcmp(json, reference) != 0)
        rc = CC_ECORRUPT;
    free(json);
    msgpack_sbuffer_destroy(&buffer);
    cc_query_free(q);
    cc_query_free(back);
    return rc;
}

static struct cc_query *bound_query(void)
{
    struct cc_query *q = NULL;
    char err[256];
    cr_assert_eq(cc_query_decode_json(query_json, strlen(query_json), NULL, &q, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(cc_attack_bind(&fx, q), 0);
    return q;
}

static struct cc_query *shared_query;

static int op_engine(void)
{
    struct cc_exec_options options = fx.options;
    options.n_threads = 1;
    struct cc_raw_result raw;
    char err[256];
    int rc = cc_exec_run(fx.version, shared_query, &options, &raw, err, sizeof err);
    if (rc == 0)
        cc_raw_result_free(&raw);
    return rc;
}

static int op_release(void)
{
    struct cc_exec_options options = fx.options;
    options.n_threads = 1;
    struct cc_policy policy;
    cc_policy_default(&policy);
    policy.restrict_queries = false; /* the fixture is small; the rules are not under test */
    cc_release *r = NULL;
    char err[256];
    int rc = cc_release_answer(&policy, NULL, fx.version, shared_query, &options, &r, err,
                               sizeof err);
    if (rc == 0) {
        msgpack_sbuffer buffer;
        msgpack_packer pk;
        msgpack_sbuffer_init(&buffer);
        msgpack_packer_init(&pk, &buffer, msgpack_sbuffer_write);
        rc = cc_release_pack(r, &pk);
        msgpack_sbuffer_destroy(&buffer);
    }
    cc_release_free(r);
    return rc;
}

static const char comparison_json[] =
    "{\"v\":1,\"numerator\":{\"v\":1,\"measure\":\"persons\",\"filters\":{\"conditions\":"
    "[{\"codes\":[\"S72\"],\"system\":\"icd10\"}]}},\"level\":\"icb\",\"method\":\"proportion\"}";

static int op_comparison(void)
{
    struct cc_compare_decoded decoded;
    char err[256];
    int rc = cc_compare_decode_json(comparison_json, strlen(comparison_json), NULL, &decoded, err,
                                    sizeof err);
    if (rc) {
        if (rc == CC_EPARSE)
            fprintf(stderr, "comparison decode: %s\n", err);
        return rc;
    }
    struct cc_exec_options options = fx.options;
    options.n_threads = 1;
    struct cc_policy policy;
    cc_policy_default(&policy);
    policy.restrict_queries = false;
    cc_comparison *c = NULL;
    rc = cc_release_comparison(&policy, NULL, fx.version, &decoded.request, NULL, &options, &c,
                               err, sizeof err);
    cc_comparison_free(c);
    cc_compare_decoded_free(&decoded);
    return rc;
}

/* Runs op with every allocation failing in turn; returns how many
 * allocations it makes when none fails. */
static long inject_every(const char *name, int (*op)(void))
{
    /* once uncounted: what a process keeps for good (the engine's tables of
     * ages by reference day) is made here, not counted as a leak below */
    cr_assert_eq(op(), 0, "%s succeeds", name);
    atomic_store(&fail_at, 0);
    atomic_store(&calls, 0);
    long before = atomic_load(&live);
    atomic_store(&counting, true);
    int rc = op();
    atomic_store(&counting, false);
    cr_assert_eq(rc, 0, "%s succeeds when nothing fails: %s", name, cc_strerror(rc));
    long total = atomic_load(&calls);
    cr_assert_eq(atomic_load(&live), before, "%s leaks %ld blocks", name,
                 atomic_load(&live) - before);
    if (!INJECT)
        return total;
    cr_assert_gt(total, 0, "%s allocates", name);
    long failed = 0;
    for (long n = 1; n <= total; n++) {
        atomic_store(&calls, 0);
        atomic_store(&fail_at, n);
        atomic_store(&counting, true);
        rc = op();
        atomic_store(&counting, false);
        atomic_store(&fail_at, 0);
        cr_assert(rc == 0 || rc == CC_ENOMEM || rc == CC_EIO || rc == CC_EINTERNAL ||
                      rc == CC_EINVAL || rc == CC_ESTATS,
                  "%s with allocation %ld failing: unexpected %s", name, n, cc_strerror(rc));
        failed += rc != 0;
        cr_assert_eq(atomic_load(&live), before, "%s with allocation %ld failing leaks %ld blocks",
                     name, n, atomic_load(&live) - before);
    }
    cr_log_info("%s: %ld allocations, each failed in turn: %ld clean errors, %ld fallbacks, no "
                "leak, no crash",
                name, total, failed, total - failed);
    cr_assert_gt(failed, 0, "%s reports a failed allocation", name);
    return total;
}

Test(alloc_failure, the_query_decoder_and_validation)
{
    inject_every("decode + validate", op_decode);
}

Test(alloc_failure, the_msgpack_query_codec)
{
    inject_every("msgpack codec", op_codec);
}

Test(alloc_failure, the_engine)
{
    shared_query = bound_query();
    inject_every("cc_exec_run", op_engine);
    cc_query_free(shared_query);
}

Test(alloc_failure, the_release_layer)
{
    shared_query = bound_query();
    inject_every("cc_release_answer", op_release);
    cc_query_free(shared_query);
}

Test(alloc_failure, an_area_comparison)
{
    inject_every("cc_release_comparison", op_comparison);
}
