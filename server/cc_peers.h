/*
 * cc_peers.h: what the server remembers about each client address, for
 * its rate limits, and about each account: failed authentications (so a
 * token cannot be guessed at network speed), requests per account per
 * minute, and log lines (so a flood of garbage connections cannot
 * flood the operator's log).
 *
 * A fixed table of CC_PEERS_SLOTS addresses, hashed; a new address takes
 * over its slot's oldest entry, so memory is bounded whatever the number
 * of clients (an attacker with many addresses can evict entries: the limit
 * is then per slot, which still bounds what one slot can do per window).
 * Used on the event loop only: no locking.
 *
 * Must never: hold more than an address and counters; log an address.
 */
#ifndef CC_PEERS_H
#define CC_PEERS_H

#include <stdbool.h>
#include <stdint.h>

#define CC_PEERS_SLOTS 1024
#define CC_PEERS_ADDRESS_BYTES 64

/* Failed hellos from one address allowed per window; more are refused
 * without looking at the token until the window ends. */
#define CC_PEERS_AUTH_FAILURES 5
#define CC_PEERS_AUTH_WINDOW_MS 60000

/* Log lines about one address per window; the rest are counted and
 * reported in one line when the next window opens. */
#define CC_PEERS_LOG_LINES 10
#define CC_PEERS_LOG_WINDOW_MS 10000

/* Requests one account may make per window (CC_PEERS_ACCOUNT_WINDOW_MS),
 * whatever its connections; configurable (--max-requests-per-account-minute). */
#define CC_PEERS_ACCOUNT_WINDOW_MS 60000

struct cc_peers;

/* 0 or CC_ENOMEM. */
int cc_peers_new(struct cc_peers **out);
void cc_peers_free(struct cc_peers *peers);

/* True if address has failed CC_PEERS_AUTH_FAILURES hellos within the
 * current window. */
bool cc_peers_auth_blocked(struct cc_peers *peers, const char *address, uint64_t now_ms);

/* Records a failed hello from address. */
void cc_peers_auth_failed(struct cc_peers *peers, const char *address, uint64_t now_ms);

/* True if a log line about address may be written now. When a window with
 * suppressed lines ends, *suppressed (if not NULL) gets how many were
 * suppressed in it, so the caller can say so once; else 0. */
bool cc_peers_may_log(struct cc_peers *peers, const char *address, uint64_t now_ms,
                      uint32_t *suppressed);

/* Counts one request of account_id and returns true if it is within limit
 * requests in the current window (false: refuse it). A separate table of
 * CC_PEERS_SLOTS accounts, hashed like the addresses. */
bool cc_peers_account_take(struct cc_peers *peers, int64_t account_id, uint32_t limit,
                           uint64_t now_ms);

#endif
