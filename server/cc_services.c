/*
 * cc_services.c: opening and closing what the ops share (cc_services.h).
 *
 * Must never: start with a policy that fails its checks or a codelist that
 * does not load: a server that cannot apply its configuration does not
 * serve.
 */
#include "cc_services.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_datadir.h"
#include "cc_db.h"
#include "cc_compare.h"
#include "cc_error.h"

/* Reads a file of at most 64 KiB into a malloc'd NUL-terminated buffer. */
static int read_small_file(const char *path, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    *out = NULL;
    if (!f)
        return CC_EIO;
    char *data = malloc(65536 + 1);
    size_t len = data ? fread(data, 1, 65536 + 1, f) : 0;
    int rc = !data ? CC_ENOMEM : ferror(f) ? CC_EIO : len > 65536 ? CC_ETOOBIG : 0;
    fclose(f);
    if (rc) {
        free(data);
        return rc;
    }
    data[len] = '\0';
    *out = data;
    *out_len = len;
    return 0;
}

static int load_saved(struct cc_services *s, const char *dir, char *errbuf, size_t errlen);

/* Reads the policy, the codelists and the saved queries config names into s. */
static int load_rules(struct cc_services *s, const struct cc_config *config, char *errbuf,
                      size_t errlen)
{
    char why[512] = "";
    int rc;
    if (config->policy_path) {
        if ((rc = cc_policy_load(config->policy_path, &s->policy, why, sizeof why)) != 0)
            return cc_errorf(errbuf, errlen, rc, "policy %s: %s", config->policy_path, why);
    } else {
        cc_policy_default(&s->policy);
    }
    if ((rc = cc_codelists_new(&s->codelists)) != 0)
        return cc_errorf(errbuf, errlen, rc, "codelists: out of memory");
    char default_dir[4096];
    const char *codelists_dir = config->codelists_dir;
    if (!codelists_dir && config->data_dir) {
        struct stat st;
        snprintf(default_dir, sizeof default_dir, "%s/codelists", config->data_dir);
        if (stat(default_dir, &st) == 0 && S_ISDIR(st.st_mode))
            codelists_dir = default_dir;
    }
    if (codelists_dir &&
        (rc = cc_codelists_load_dir(s->codelists, codelists_dir, why, sizeof why)) != 0)
        return cc_errorf(errbuf, errlen, rc, "codelists %s: %s", codelists_dir, why);
    const char *saved_dir = config->saved_dir;
    if (!saved_dir && config->data_dir) {
        struct stat st;
        snprintf(default_dir, sizeof default_dir, "%s/saved", config->data_dir);
        if (stat(default_dir, &st) == 0 && S_ISDIR(st.st_mode))
            saved_dir = default_dir;
    }
    if (saved_dir && (rc = load_saved(s, saved_dir, errbuf, errlen)) != 0)
        return rc;
    if (config->release_cache_mb &&
        (rc = cc_release_cache_open((size_t)config->release_cache_mb << 20,
                                    CC_RELEASE_CACHE_TTL_S, &s->release_cache)) != 0)
        return cc_errorf(errbuf, errlen, rc, "release cache: out of memory");
    return 0;
}

static int compare_saved(const void *a, const void *b)
{
    return strcmp(((const struct cc_saved *)a)->name, ((const struct cc_saved *)b)->name);
}

/* Loads every NAME.json of dir into s->saved, checking that each decodes
 * (as a comparison when it has a "numerator", else as a query). */
static int load_saved(struct cc_services *s, const char *dir, char *errbuf, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return cc_errorf(errbuf, errlen, CC_EIO, "saved queries %s: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        size_t len = strlen(entry->d_name);
        if (len <= 5 || strcmp(entry->d_name + len - 5, ".json") != 0)
            continue;
        char stem[CC_SAVED_NAME_BYTES] = "";
        if (len - 5 < CC_SAVED_NAME_BYTES)
            memcpy(stem, entry->d_name, len - 5);
        if (len - 5 >= CC_SAVED_NAME_BYTES || !cc_codelists_name_valid(stem)) {
            rc = cc_errorf(errbuf, errlen, CC_EINVAL, "saved queries %s: %s: not a valid name",
                           dir, entry->d_name);
            break;
        }
        struct cc_saved *grown = realloc(s->saved, (s->n_saved + 1) * sizeof *grown);
        if (!grown) {
            rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
            break;
        }
        s->saved = grown;
        struct cc_saved *q = &s->saved[s->n_saved];
        memset(q, 0, sizeof *q);
        memcpy(q->name, entry->d_name, len - 5);
        char path[4096], why[300] = "";
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, entry->d_name) >= sizeof path) {
            rc = cc_errorf(errbuf, errlen, CC_EINVAL, "saved queries %s: path too long", dir);
            break;
        }
        if ((rc = read_small_file(path, &q->json, &q->json_len)) != 0) {
            cc_errorf(errbuf, errlen, rc, "saved query %s: cannot be read", path);
            break;
        }
        s->n_saved++;
        json_t *root = json_loadb(q->json, q->json_len, 0, NULL);
        q->comparison = root && json_is_object(root) && json_object_get(root, "numerator");
        json_decref(root);
        if (q->comparison) {
            struct cc_compare_decoded decoded;
            rc = cc_compare_decode_json(q->json, q->json_len, NULL, &decoded, why, sizeof why);
            if (!rc)
                cc_compare_decoded_free(&decoded);
        } else {
            struct cc_query *query = NULL;
            rc = cc_query_decode_json(q->json, q->json_len, NULL, &query, why, sizeof why);
            if (!rc)
                rc = cc_query_validate(query, NULL, NULL, why, sizeof why);
            cc_query_free(query);
        }
        if (rc) {
            cc_errorf(errbuf, errlen, rc, "saved query %s: %s", path, why);
            break;
        }
    }
    closedir(d);
    if (!rc && s->n_saved)
        qsort(s->saved, s->n_saved, sizeof *s->saved, compare_saved);
    return rc;
}

const struct cc_saved *cc_services_saved(const struct cc_services *s, const char *name,
                                         size_t len)
{
    for (uint32_t i = 0; i < s->n_saved; i++)
        if (strlen(s->saved[i].name) == len && !memcmp(s->saved[i].name, name, len))
            return &s->saved[i];
    return NULL;
}

int cc_services_open(const struct cc_config *config, struct cc_services **out, char *errbuf,
                     size_t errlen)
{
    struct cc_services *s = calloc(1, sizeof *s);
    char why[512] = "";
    int rc;
    *out = NULL;
    if (!s)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    s->refs_ = 1;
    if ((rc = load_rules(s, config, errbuf, errlen)) != 0)
        goto fail;
    if (config->data_dir) {
        if ((rc = cc_datadir_load_key(config->data_dir, config->key_path, &s->key, why,
                                      sizeof why)) != 0) {
            cc_errorf(errbuf, errlen, rc, "key: %s", why);
            goto fail;
        }
        if ((rc = cc_accounts_open(config->data_dir, &s->accounts, why, sizeof why)) != 0) {
            cc_errorf(errbuf, errlen, rc, "accounts: %s", why);
            goto fail;
        }
        if ((rc = cc_audit_open(config->data_dir, s->key, &s->audit, why, sizeof why)) != 0) {
            cc_errorf(errbuf, errlen, rc, "audit log: %s", why);
            goto fail;
        }
        if ((rc = cc_db_open(config->data_dir, 0, &s->register_db_, why, sizeof why)) != 0 ||
            (rc = cc_optout_attach(s->register_db_, &s->optout)) != 0) {
            cc_errorf(errbuf, errlen, rc, "opt-out register: %s", why[0] ? why : cc_strerror(rc));
            goto fail;
        }
        if ((rc = cc_ledger_open(config->data_dir, &s->ledger, why, sizeof why)) != 0) {
            cc_errorf(errbuf, errlen, rc, "disclosure ledger: %s", why);
            goto fail;
        }
        pthread_mutex_t *lock = malloc(sizeof *lock);
        if (!lock || pthread_mutex_init(lock, NULL) != 0) {
            free(lock);
            rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
            goto fail;
        }
        s->register_lock_ = lock;
    }
    *out = s;
    return 0;
fail:
    cc_services_release(s);
    return rc;
}

int cc_services_reload(struct cc_services *current, const struct cc_config *config,
                       struct cc_services **out, char *errbuf, size_t errlen)
{
    struct cc_services *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    s->refs_ = 1;
    struct cc_services *base = current->base_ ? current->base_ : current;
    s->base_ = cc_services_retain(base);
    s->key = base->key;
    s->accounts = base->accounts;
    s->audit = base->audit;
    s->optout = base->optout;
    s->ledger = base->ledger;
    int rc = load_rules(s, config, errbuf, errlen);
    if (rc) {
        cc_services_release(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cc_services_register_lock(const struct cc_services *s)
{
    const struct cc_services *base = s->base_ ? s->base_ : s;
    pthread_mutex_lock(base->register_lock_);
}

void cc_services_register_unlock(const struct cc_services *s)
{
    const struct cc_services *base = s->base_ ? s->base_ : s;
    pthread_mutex_unlock(base->register_lock_);
}

struct cc_services *cc_services_retain(struct cc_services *s)
{
    if (s)
        __atomic_add_fetch(&s->refs_, 1, __ATOMIC_RELAXED);
    return s;
}

void cc_services_release(struct cc_services *s)
{
    if (!s || __atomic_sub_fetch(&s->refs_, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    if (s->base_) {
        cc_services_release(s->base_);
    } else {
        cc_ledger_close(s->ledger);
        cc_optout_detach(s->optout);
        cc_db_close(s->register_db_);
        if (s->register_lock_) {
            pthread_mutex_destroy(s->register_lock_);
            free(s->register_lock_);
        }
        cc_audit_close(s->audit);
        cc_accounts_close(s->accounts);
        cc_pseudo_key_free(s->key);
    }
    cc_release_cache_close(s->release_cache);
    cc_codelists_free(s->codelists);
    for (uint32_t i = 0; i < s->n_saved; i++)
        free(s->saved[i].json);
    free(s->saved);
    free(s);
}

void cc_services_free(struct cc_services *s)
{
    cc_services_release(s);
}
