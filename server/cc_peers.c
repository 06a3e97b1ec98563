/*
 * cc_peers.c: the per-address counters behind the server's rate limits
 * (cc_peers.h).
 *
 * Must never: grow: the table is allocated once.
 */
#include "cc_peers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"

struct peer {
    char address[CC_PEERS_ADDRESS_BYTES]; /* "" : free */
    uint64_t auth_window_start, log_window_start;
    uint32_t auth_failures, log_lines, log_suppressed;
};

struct account_slot {
    int64_t account_id; /* 0: free */
    uint64_t window_start;
    uint32_t requests;
};

struct cc_peers {
    struct peer slots[CC_PEERS_SLOTS];
    struct account_slot accounts[CC_PEERS_SLOTS];
};

int cc_peers_new(struct cc_peers **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : CC_ENOMEM;
}

void cc_peers_free(struct cc_peers *peers)
{
    free(peers);
}

/* FNV-1a of the address. */
static uint32_t slot_of(const char *address)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)address; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % CC_PEERS_SLOTS;
}

/* The entry of address, taking over its slot if another address holds it. */
static struct peer *find(struct cc_peers *peers, const char *address)
{
    struct peer *p = &peers->slots[slot_of(address)];
    if (strncmp(p->address, address, sizeof p->address) != 0) {
        memset(p, 0, sizeof *p);
        snprintf(p->address, sizeof p->address, "%s", address);
    }
    return p;
}

static void auth_window(struct peer *p, uint64_t now_ms)
{
    if (now_ms - p->auth_window_start >= CC_PEERS_AUTH_WINDOW_MS || now_ms < p->auth_window_start) {
        p->auth_window_start = now_ms;
        p->auth_failures = 0;
    }
}

bool cc_peers_auth_blocked(struct cc_peers *peers, const char *address, uint64_t now_ms)
{
    struct peer *p = find(peers, address);
    auth_window(p, now_ms);
    return p->auth_failures >= CC_PEERS_AUTH_FAILURES;
}

void cc_peers_auth_failed(struct cc_peers *peers, const char *address, uint64_t now_ms)
{
    struct peer *p = find(peers, address);
    auth_window(p, now_ms);
    if (p->auth_failures < UINT32_MAX)
        p->auth_failures++;
}

bool cc_peers_may_log(struct cc_peers *peers, const char *address, uint64_t now_ms,
                      uint32_t *suppressed)
{
    struct peer *p = find(peers, address);
    if (suppressed)
        *suppressed = 0;
    if (now_ms - p->log_window_start >= CC_PEERS_LOG_WINDOW_MS || now_ms < p->log_window_start) {
        if (suppressed)
            *suppressed = p->log_suppressed;
        p->log_window_start = now_ms;
        p->log_lines = 0;
        p->log_suppressed = 0;
    }
    if (p->log_lines < CC_PEERS_LOG_LINES) {
        p->log_lines++;
        return true;
    }
    if (p->log_suppressed < UINT32_MAX)
        p->log_suppressed++;
    return false;
}

bool cc_peers_account_take(struct cc_peers *peers, int64_t account_id, uint32_t limit,
                           uint64_t now_ms)
{
    uint64_t h = (uint64_t)account_id * 0x9E3779B97F4A7C15ull;
    struct account_slot *a = &peers->accounts[(h >> 32) % CC_PEERS_SLOTS];
    if (a->account_id != account_id) {
        a->account_id = account_id;
        a->window_start = now_ms;
        a->requests = 0;
    }
    if (now_ms - a->window_start >= CC_PEERS_ACCOUNT_WINDOW_MS || now_ms < a->window_start) {
        a->window_start = now_ms;
        a->requests = 0;
    }
    if (a->requests >= limit)
        return false;
    a->requests++;
    return true;
}
