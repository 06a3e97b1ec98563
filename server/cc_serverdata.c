/*
 * cc_serverdata.c: loading a data directory for serving (see cc_serverdata.h).
 */
#include "cc_serverdata.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_datadir.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_optout.h"
#include "cc_store.h"

struct cc_serverdata {
    char *dir;
    char *key_path; /* read again at each new store: the key is never kept */
    sqlite3 *db;
    cc_optout *optouts;
    cc_dataversion *version;  /* in force: one reference held here; owns its store */
    cc_dataversion *prepared; /* built by prepare, not yet in force */
    uint64_t publication;
    uint64_t corrupt_store_version; /* refused as corrupt: not loaded again */
};

int cc_serverdata_open(const char *dir, const char *key_path, struct cc_serverdata **out,
                       char *errbuf, size_t errlen)
{
    struct cc_serverdata *d = calloc(1, sizeof *d);
    uint64_t store_version = 0;
    cc_store *store = NULL;
    int rc;
    if (!d)
        return CC_ENOMEM;
    if (!(d->dir = strdup(dir)) || !(d->key_path = strdup(key_path))) {
        rc = CC_ENOMEM;
        goto fail;
    }
    if ((rc = cc_datadir_load_current(dir, key_path, CC_STORE_QUERY_ONLY, &store,
                                      &store_version, errbuf, errlen)) < 0)
        goto fail;
    if ((rc = cc_db_open(dir, 0, &d->db, errbuf, errlen)) < 0)
        goto fail;
    if ((rc = cc_optout_attach(d->db, &d->optouts)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot open the opt-out register (%s)", dir,
                 cc_strerror(rc));
        goto fail;
    }
    if ((rc = cc_dataversion_publish_owning(store, store_version, d->optouts, cc_day_today(),
                                            &d->version)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot publish a data version (%s)", dir, cc_strerror(rc));
        goto fail;
    }
    store = NULL; /* the version owns it now */
    d->publication = 1;
    *out = d;
    return 0;
fail:
    cc_store_free(store);
    cc_serverdata_free(d);
    return rc;
}

cc_dataversion *cc_serverdata_version(const struct cc_serverdata *data)
{
    return data->version;
}

uint64_t cc_serverdata_publication(const struct cc_serverdata *data)
{
    return data->publication;
}

/* Loads the directory's current store if its version is not the one in
 * force. Returns 1 (*out set, owned by the caller), 0 if there is nothing
 * new to load, or a CC_E* code with the reason in errbuf. */
static int load_new_store(struct cc_serverdata *data, cc_store **out, uint64_t *out_version,
                          char *errbuf, size_t errlen)
{
    char path[PATH_MAX];
    uint64_t current = 0;
    int rc = cc_ingest_current_store(data->dir, &current, path, sizeof path, errbuf, errlen);
    if (rc < 0)
        return rc;
    if (current == cc_dataversion_store_version(data->version) ||
        current == data->corrupt_store_version)
        return 0;
    /* The same checks as at start (permissions, the key's fingerprint, the
     * keyed checksums): a snapshot swapped in by someone else is refused. */
    char why[512] = "";
    if ((rc = cc_datadir_load_current(data->dir, data->key_path, CC_STORE_QUERY_ONLY, out,
                                      &current, why, sizeof why)) < 0) {
        /* A corrupt file stays corrupt; anything else (a snapshot replaced
         * by a newer ingest while we read, no memory) may pass next time. */
        if (rc == CC_ECORRUPT)
            data->corrupt_store_version = current;
        snprintf(errbuf, errlen, "store version %" PRIu64 " cannot be loaded: %s", current,
                 why[0] ? why : cc_strerror(rc));
        return rc;
    }
    *out_version = current;
    return 1;
}

int cc_serverdata_prepare(struct cc_serverdata *data, cc_day on, char *errbuf, size_t errlen)
{
    cc_store *store = NULL;
    uint64_t store_version = 0, sequence = 0;
    errbuf[0] = '\0';
    cc_dataversion_release(data->prepared);
    data->prepared = NULL;
    int rc = load_new_store(data, &store, &store_version, errbuf, errlen);
    if (rc == 1) {
        rc = cc_dataversion_publish_owning(store, store_version, data->optouts, on,
                                           &data->prepared);
        if (rc < 0) {
            cc_store_free(store);
            snprintf(errbuf, errlen, "store version %" PRIu64 " cannot be published: %s",
                     store_version, cc_strerror(rc));
            return rc;
        }
        return 1;
    }
    /* No new store (or one that failed to load, reported in errbuf): the
     * register's changes are still published on the store in force. */
    rc = cc_optout_last_sequence(data->optouts, &sequence);
    if (rc < 0)
        return rc;
    if (sequence == cc_dataversion_optout_sequence(data->version) &&
        on == cc_dataversion_published_on(data->version))
        return 0;
    rc = cc_dataversion_republish(data->version, data->optouts, on, &data->prepared);
    return rc < 0 ? rc : 1;
}

void cc_serverdata_commit(struct cc_serverdata *data)
{
    if (!data->prepared)
        return;
    /* A query still running on the old version holds its own reference, so
     * the old version (and its store) is freed by whichever of us is last. */
    cc_dataversion_release(data->version);
    data->version = data->prepared;
    data->prepared = NULL;
    data->publication++;
}

void cc_serverdata_free(struct cc_serverdata *data)
{
    if (!data)
        return;
    cc_dataversion_release(data->prepared);
    cc_dataversion_release(data->version);
    cc_optout_detach(data->optouts);
    cc_db_close(data->db);
    free(data->dir);
    free(data->key_path);
    free(data);
}
