/*
 * cc_serverdata.h: the data a server serves: the current store snapshot of
 * a data directory, loaded for queries only, its opt-out register, and the
 * data version in force, published from them at start and again at each
 * publication: with the register's changes, and with the directory's new
 * store version when an ingest has written one since (no restart).
 *
 * Lifetime: the version in force is reference-counted (cc_dataversion.h).
 * A publication swaps in the new version and gives back this module's
 * reference to the old one; whoever still holds the old one (a request
 * dispatched before the swap) finishes on it, and the last release frees it
 * with its store. A new store that fails to load leaves the version in
 * force serving: the server is never left without data.
 *
 * Must never: log a figure or anything about a person; it logs versions and
 * dates only.
 */
#ifndef CC_SERVERDATA_H
#define CC_SERVERDATA_H

#include <stddef.h>
#include <stdint.h>

#include "cc_dataversion.h"

struct cc_serverdata;

/* Loads DIR's current store (CC_STORE_QUERY_ONLY) with the directory's key
 * at key_path (cc_datadir_load_current: permissions, key fingerprint),
 * opens state.db and the register, and publishes a version with the
 * opt-outs in force today. Returns 0, or a CC_E* code with the reason in
 * errbuf (a corrupt snapshot is CC_ECORRUPT and names the damaged section).
 * Free with cc_serverdata_free(). */
int cc_serverdata_open(const char *dir, const char *key_path, struct cc_serverdata **out,
                       char *errbuf, size_t errlen);

/* The version in force (valid until the next cc_serverdata_commit() or
 * until the data is freed; a caller that keeps it longer, such as a query
 * on the thread pool, takes a reference with cc_dataversion_retain()). */
cc_dataversion *cc_serverdata_version(const struct cc_serverdata *data);

/* How many versions have been published since start (1 after open). */
uint64_t cc_serverdata_publication(const struct cc_serverdata *data);

/* Publishing, in two steps so the slow one runs off the event loop:
 * cc_serverdata_prepare() (any one thread at a time; it uses the register's
 * connection) builds the next version and returns 1 if the directory's
 * current store version differs from the one in force (it then loads that
 * snapshot: memory for two stores is needed until the old one is released),
 * or else if the register changed since the version in force, or the day
 * did; 0 if nothing changed; or a CC_E* code. errbuf says what could not be
 * done, or is "": a new store that cannot be loaded is reported there while
 * the register's changes are still published on the store in force (a
 * corrupt snapshot is not tried again; a newer store version is).
 * cc_serverdata_commit() (the loop's thread) then makes the prepared version
 * the one in force. */
int cc_serverdata_prepare(struct cc_serverdata *data, cc_day on, char *errbuf, size_t errlen);
void cc_serverdata_commit(struct cc_serverdata *data);

void cc_serverdata_free(struct cc_serverdata *data);

#endif
