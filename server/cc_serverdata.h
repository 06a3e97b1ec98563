/*
 * cc_serverdata.h: the data a server serves: the current store snapshot of
 * a data directory, loaded for queries only, its opt-out register, and the
 * data version published from them at start.
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
 * until the data is freed). */
const struct cc_dataversion *cc_serverdata_version(const struct cc_serverdata *data);

/* How many versions have been published since start (1 after open). */
uint64_t cc_serverdata_publication(const struct cc_serverdata *data);

/* Publishing, in two steps so the slow one runs off the event loop:
 * cc_serverdata_prepare() (any one thread at a time; it uses the register's
 * connection) builds the next version if the register changed since the
 * version in force, or the day did, and returns 1; 0 if nothing changed; or
 * a CC_E* code. cc_serverdata_commit() (the loop's thread) then makes the
 * prepared version the one in force. */
int cc_serverdata_prepare(struct cc_serverdata *data, cc_day on);
void cc_serverdata_commit(struct cc_serverdata *data);

void cc_serverdata_free(struct cc_serverdata *data);

#endif
