/*
 * cc_serverdata.c: loading a data directory for serving (see cc_serverdata.h).
 */
#include "cc_serverdata.h"

#include <stdio.h>
#include <stdlib.h>

#include "cc_datadir.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_optout.h"
#include "cc_store.h"

struct cc_serverdata {
    cc_store *store;
    uint64_t store_version;
    sqlite3 *db;
    cc_optout *optouts;
    struct cc_dataversion *version;  /* in force */
    struct cc_dataversion *prepared; /* built by prepare, not yet in force */
    uint64_t publication;
};

int cc_serverdata_open(const char *dir, const char *key_path, struct cc_serverdata **out,
                       char *errbuf, size_t errlen)
{
    struct cc_serverdata *d = calloc(1, sizeof *d);
    uint64_t store_version = 0;
    int rc;
    if (!d)
        return CC_ENOMEM;
    if ((rc = cc_datadir_load_current(dir, key_path, CC_STORE_QUERY_ONLY, &d->store,
                                      &store_version, errbuf, errlen)) < 0)
        goto fail;
    if ((rc = cc_db_open(dir, 0, &d->db, errbuf, errlen)) < 0)
        goto fail;
    if ((rc = cc_optout_attach(d->db, &d->optouts)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot open the opt-out register (%s)", dir,
                 cc_strerror(rc));
        goto fail;
    }
    if ((rc = cc_dataversion_publish(d->store, store_version, d->optouts, cc_day_today(),
                                     &d->version)) < 0) {
        snprintf(errbuf, errlen, "%s: cannot publish a data version (%s)", dir, cc_strerror(rc));
        goto fail;
    }
    d->store_version = store_version;
    d->publication = 1;
    *out = d;
    return 0;
fail:
    cc_serverdata_free(d);
    return rc;
}

const struct cc_dataversion *cc_serverdata_version(const struct cc_serverdata *data)
{
    return data->version;
}

uint64_t cc_serverdata_publication(const struct cc_serverdata *data)
{
    return data->publication;
}

int cc_serverdata_prepare(struct cc_serverdata *data, cc_day on)
{
    uint64_t sequence = 0;
    int rc = cc_optout_last_sequence(data->optouts, &sequence);
    if (rc < 0)
        return rc;
    if (sequence == data->version->optout_sequence && on == data->version->published_on)
        return 0;
    cc_dataversion_free(data->prepared);
    data->prepared = NULL;
    rc = cc_dataversion_publish(data->store, data->store_version, data->optouts, on,
                                &data->prepared);
    return rc < 0 ? rc : 1;
}

void cc_serverdata_commit(struct cc_serverdata *data)
{
    if (!data->prepared)
        return;
    /* No query holds a version across this call yet; when queries run on
     * the thread pool, each will hold a reference and the old version will
     * be freed by the last one. */
    cc_dataversion_free(data->version);
    data->version = data->prepared;
    data->prepared = NULL;
    data->publication++;
}

void cc_serverdata_free(struct cc_serverdata *data)
{
    if (!data)
        return;
    cc_dataversion_free(data->prepared);
    cc_dataversion_free(data->version);
    cc_optout_detach(data->optouts);
    cc_db_close(data->db);
    cc_store_free(data->store);
    free(data);
}
