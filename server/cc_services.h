/*
 * cc_services.h: what the ops of a server share, opened once at start from
 * the configuration: the disclosure policy, the codelists, the saved
 * queries, the data directory's key, its accounts, its audit log and its
 * opt-out register.
 *
 * Every handle here is safe to use from several threads at once (the
 * accounts and the audit log lock their own connections; the policy, the
 * codelists and the key are read-only after start), so ops on the thread
 * pool use them without the loop's help.
 *
 * Must never: hold a token or an NHS number; log anything but file names
 * and reasons.
 */
#ifndef CC_SERVICES_H
#define CC_SERVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "cc_account.h"
#include "cc_audit.h"
#include "cc_codelist.h"
#include "cc_config.h"
#include "cc_ledger.h"
#include "cc_optout.h"
#include "cc_policy.h"
#include "cc_pseudo.h"
#include "cc_release_cache.h"

/* An operator-approved saved query or comparison (DIR/saved/NAME.json):
 * what a dashboard account may run, by name. */
#define CC_SAVED_NAME_BYTES 64
struct cc_saved {
    char name[CC_SAVED_NAME_BYTES];
    bool comparison; /* a comparison request, else a query */
    char *json;      /* the file's text (checked to decode at load) */
    size_t json_len;
};

struct cc_services {
    struct cc_policy policy;
    cc_codelists *codelists; /* never NULL (may be empty) */
    cc_pseudo_key *key;      /* NULL without a data directory */
    cc_accounts *accounts;   /* NULL without a data directory */
    cc_audit *audit;         /* NULL without a data directory */
    /* The opt-out register, for the practice and operator ops: one
     * connection, so one caller at a time (cc_services_register_lock()).
     * NULL without a data directory. */
    cc_optout *optout;
    /* The disclosure ledger (queries/cc_ledger.h): every account's released
     * cohorts. NULL without a data directory. Thread-safe. */
    cc_ledger *ledger;
    /* Releases kept for repeats (queries/cc_release_cache.h), made afresh
     * with the policy and codelists; NULL: none kept. Thread-safe. */
    cc_release_cache *release_cache;
    /* The saved queries, in name order (reloaded with the policy). */
    struct cc_saved *saved;
    uint32_t n_saved;

    /* private: references (a request holds one while it runs), and the
     * services whose key, accounts and audit log these share (NULL: these
     * own them) */
    unsigned refs_;
    struct cc_services *base_;
    sqlite3 *register_db_;
    void *register_lock_; /* pthread_mutex_t */
};

/* Opens what config names: the policy file (or the defaults), the codelists
 * directory (or DIR/codelists if it exists), and, with a data directory,
 * its key, accounts and audit log. Returns 0, or a CC_E* code with "what:
 * why" in errbuf. Free with cc_services_free(). */
int cc_services_open(const struct cc_config *config, struct cc_services **out, char *errbuf,
                     size_t errlen);

/* The saved query called name, or NULL. */
const struct cc_saved *cc_services_saved(const struct cc_services *services, const char *name,
                                         size_t len);

/* Takes and gives back the register's connection (a pthread mutex). */
void cc_services_register_lock(const struct cc_services *services);
void cc_services_register_unlock(const struct cc_services *services);

/* SIGHUP: reads the policy file and the codelists again into new services
 * that share current's key, accounts and audit log. Returns 0, or a CC_E*
 * code with "what: why" in errbuf (the caller keeps current). Release
 * with cc_services_release(). Any thread. */
int cc_services_reload(struct cc_services *current, const struct cc_config *config,
                       struct cc_services **out, char *errbuf, size_t errlen);

/* References: the opener and cc_services_reload() hold one; a request
 * takes one for its life. The last release frees (NULL allowed). Atomic:
 * any thread. */
struct cc_services *cc_services_retain(struct cc_services *services);
void cc_services_release(struct cc_services *services);

/* The same as cc_services_release(). */
void cc_services_free(struct cc_services *services);

#endif
