/*
 * cc_json.c: jansson with an out-of-memory flag (cc_json.h).
 */
#include "cc_json.h"

#include <pthread.h>
#include <stdlib.h>

static _Thread_local bool allocation_failed;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void *watched_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        allocation_failed = true;
    return p;
}

static void install(void)
{
    json_set_alloc_funcs(watched_malloc, free);
}

json_t *cc_json_loadb(const char *text, size_t len, size_t flags, json_error_t *error,
                      bool *out_of_memory)
{
    pthread_once(&install_once, install);
    allocation_failed = false;
    json_t *root = json_loadb(text, len, flags, error);
    *out_of_memory = !root && allocation_failed;
    return root;
}

char *cc_json_dumps(const json_t *json, size_t flags)
{
    size_t n = json_dumpb(json, NULL, 0, flags);
    if (n == 0)
        return NULL;
    char *text = malloc(n + 1);
    if (!text)
        return NULL;
    if (json_dumpb(json, text, n, flags) != n) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}
