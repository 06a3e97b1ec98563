/*
 * cc_policy.c: the disclosure policy's defaults, invariants and JSON file.
 *
 * Keys are read through one table (name, type, field, bounds), so a key and
 * its check cannot drift apart; the invariants that link two keys are in
 * cc_policy_check(), which every loaded policy passes before it is handed
 * back.
 *
 * Must never: accept a file it cannot fully read: an unknown key (a typo of
 * a real one would otherwise silently keep a default), a wrong type or a
 * value out of range refuses the whole file.
 */
#include "cc_policy.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"

#define POLICY_FILE_MAX_BYTES (64 * 1024)

void cc_policy_default(struct cc_policy *policy)
{
    memset(policy, 0, sizeof *policy);
    snprintf(policy->version, sizeof policy->version, "%s", CC_POLICY_DEFAULT_VERSION);
    policy->threshold = CC_POLICY_DEFAULT_THRESHOLD;
    policy->show_zeros = CC_POLICY_DEFAULT_SHOW_ZEROS;
    policy->publication_noise = true;
    policy->rounding_base = CC_POLICY_DEFAULT_ROUNDING_BASE;
    policy->max_noise = CC_POLICY_DEFAULT_MAX_NOISE;
    policy->noise_variance = CC_POLICY_DEFAULT_NOISE_VARIANCE;
    policy->condition_max_noise = CC_POLICY_DEFAULT_CONDITION_MAX_NOISE;
    policy->condition_noise_variance = CC_POLICY_DEFAULT_CONDITION_NOISE_VARIANCE;
    policy->min_population = CC_POLICY_DEFAULT_MIN_POPULATION;
    policy->min_cell_population = CC_POLICY_DEFAULT_MIN_CELL_POPULATION;
    policy->max_cells = CC_POLICY_DEFAULT_MAX_CELLS;
    policy->low_effect_persons = CC_POLICY_DEFAULT_THRESHOLD;
    policy->low_effect_spread = CC_POLICY_DEFAULT_LOW_EFFECT_SPREAD;
    policy->ledger_min_difference = CC_POLICY_DEFAULT_THRESHOLD;
    policy->ledger_near_difference = CC_POLICY_DEFAULT_LEDGER_NEAR_DIFFERENCE;
    policy->ledger_budget = CC_POLICY_DEFAULT_LEDGER_BUDGET;
    policy->ledger_window_days = CC_POLICY_DEFAULT_LEDGER_WINDOW_DAYS;
    policy->ledger_cell_max = CC_POLICY_DEFAULT_LEDGER_CELL_MAX;
    policy->ledger_cell_days = CC_POLICY_DEFAULT_LEDGER_CELL_DAYS;
    policy->ledger_cells = CC_POLICY_DEFAULT_LEDGER_CELLS;
    policy->mode = CC_POLICY_DEFAULT_MODE;
    policy->protection_level = CC_POLICY_DEFAULT_THRESHOLD;
    policy->perturb = true;
    policy->refuse_low_effect = true;
    policy->restrict_queries = true;
}

double cc_policy_max_variance(uint32_t max_noise)
{
    double d = max_noise;
    return (d + 1) * (2 * d + 1) / 6;
}

static int check_layer(const char *noise_key, const char *variance_key, uint32_t max_noise,
                       double variance, char *errbuf, size_t errlen)
{
    if (max_noise > CC_POLICY_MAX_NOISE_CAP)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: %u is above the limit %d", noise_key,
                    max_noise, CC_POLICY_MAX_NOISE_CAP);
    if (!(variance >= 0)) /* also NaN */
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be 0 or more", variance_key);
    if (max_noise == 0 && variance != 0)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be 0 when %s is 0", variance_key,
                    noise_key);
    if (max_noise > 0 && variance == 0)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be above 0 when %s is above 0",
                    variance_key, noise_key);
    if (variance > cc_policy_max_variance(max_noise) + 1e-12)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "%s: %g cannot be reached with %s %u (at most %g)", variance_key, variance,
                    noise_key, max_noise, cc_policy_max_variance(max_noise));
    return 0;
}

int cc_policy_check(const struct cc_policy *policy, char *errbuf, size_t errlen)
{
    size_t len = strnlen(policy->version, sizeof policy->version);
    if (len == 0 || len == sizeof policy->version)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "version: must be 1 to %d characters",
                    CC_POLICY_VERSION_BYTES - 1);
    for (size_t i = 0; i < len; i++)
        if (policy->version[i] < 0x20 || policy->version[i] > 0x7e)
            return cc_errorf(errbuf, errlen, CC_EINVAL, "version: printable ASCII only");
    if (policy->threshold < 1 || policy->threshold > CC_POLICY_THRESHOLD_CAP)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "threshold: must be 1 to %d",
                    CC_POLICY_THRESHOLD_CAP);
    if (policy->rounding_base < 1 || policy->rounding_base > CC_POLICY_ROUNDING_BASE_CAP)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "rounding_base: must be 1 to %d",
                    CC_POLICY_ROUNDING_BASE_CAP);
    int rc = check_layer("max_noise", "noise_variance", policy->max_noise, policy->noise_variance,
                         errbuf, errlen);
    if (rc)
        return rc;
    rc = check_layer("condition_max_noise", "condition_noise_variance",
                     policy->condition_max_noise, policy->condition_noise_variance, errbuf,
                     errlen);
    if (rc)
        return rc;
    if (policy->max_cells < 1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "max_cells: must be 1 or more");
    if (policy->low_effect_persons < 1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "low_effect_persons: must be 1 or more");
    if (policy->low_effect_spread >= policy->low_effect_persons)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "low_effect_spread: must be below low_effect_persons (%u), so that a "
                    "condition changing nothing is always refused",
                    policy->low_effect_persons);
    if (policy->ledger_min_difference < 1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "ledger_min_difference: must be 1 or more");
    if (policy->ledger_near_difference < policy->ledger_min_difference)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                         "ledger_near_difference: must be at least ledger_min_difference (%u)",
                         policy->ledger_min_difference);
    if (policy->ledger_window_days < 1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "ledger_window_days: must be 1 or more");
    if (policy->ledger_cell_days < 1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "ledger_cell_days: must be 1 or more");
    if (policy->mode != CC_POLICY_MODE_PERTURBED && policy->mode != CC_POLICY_MODE_FIXED)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "mode: must be perturbed or fixed");
    if (policy->protection_level < 1 || policy->protection_level > 1000)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "protection_level: must be 1 to 1000");
    return 0;
}

/* ---- the file ---- */

enum key_type { KEY_STRING, KEY_BOOL, KEY_UINT, KEY_REAL, KEY_MODE };

struct key {
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size;     /* KEY_UINT: of the field */
    uint64_t max;    /* KEY_UINT: the largest value accepted */
};

#define FIELD_(f) offsetof(struct cc_policy, f), sizeof(((struct cc_policy *)0)->f)

static const struct key keys[] = {
    {"version", KEY_STRING, FIELD_(version), 0},
    {"threshold", KEY_UINT, FIELD_(threshold), CC_POLICY_THRESHOLD_CAP},
    {"show_zeros", KEY_BOOL, FIELD_(show_zeros), 0},
    {"rounding_base", KEY_UINT, FIELD_(rounding_base), CC_POLICY_ROUNDING_BASE_CAP},
    {"max_noise", KEY_UINT, FIELD_(max_noise), CC_POLICY_MAX_NOISE_CAP},
    {"noise_variance", KEY_REAL, FIELD_(noise_variance), 0},
    {"condition_max_noise", KEY_UINT, FIELD_(condition_max_noise), CC_POLICY_MAX_NOISE_CAP},
    {"condition_noise_variance", KEY_REAL, FIELD_(condition_noise_variance), 0},
    {"publication_noise", KEY_BOOL, FIELD_(publication_noise), 0},
    {"min_population", KEY_UINT, FIELD_(min_population), UINT32_MAX},
    {"min_cell_population", KEY_UINT, FIELD_(min_cell_population), UINT32_MAX},
    {"max_cells", KEY_UINT, FIELD_(max_cells), 100000000},
    {"low_effect_persons", KEY_UINT, FIELD_(low_effect_persons), 1000},
    {"low_effect_spread", KEY_UINT, FIELD_(low_effect_spread), 1000},
    {"ledger_min_difference", KEY_UINT, FIELD_(ledger_min_difference), 100000},
    {"ledger_near_difference", KEY_UINT, FIELD_(ledger_near_difference), 100000},
    {"ledger_budget", KEY_UINT, FIELD_(ledger_budget), 1000000},
    {"ledger_window_days", KEY_UINT, FIELD_(ledger_window_days), 3650},
    {"ledger_cell_max", KEY_UINT, FIELD_(ledger_cell_max), 1000000},
    {"ledger_cell_days", KEY_UINT, FIELD_(ledger_cell_days), 3650},
    {"ledger_cells", KEY_UINT, FIELD_(ledger_cells), 100000000},
    {"mode", KEY_MODE, FIELD_(mode), 0},
    {"protection_level", KEY_UINT, FIELD_(protection_level), 1000},
};
#define N_KEYS (sizeof keys / sizeof *keys)

static int read_key(const struct key *k, json_t *value, struct cc_policy *policy, char *errbuf,
                    size_t errlen)
{
    char *field = (char *)policy + k->offset;
    switch (k->type) {
    case KEY_STRING: {
        if (!json_is_string(value))
            return cc_errorf(errbuf, errlen, CC_EPARSE, "%s: must be a string", k->name);
        size_t len = json_string_length(value);
        if (len == 0 || len >= k->size || memchr(json_string_value(value), 0, len))
            return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be 1 to %zu characters", k->name,
                        k->size - 1);
        memcpy(field, json_string_value(value), len);
        field[len] = 0;
        return 0;
    }
    case KEY_BOOL:
        if (!json_is_boolean(value))
            return cc_errorf(errbuf, errlen, CC_EPARSE, "%s: must be true or false", k->name);
        *(bool *)field = json_is_true(value);
        return 0;
    case KEY_UINT: {
        if (!json_is_integer(value))
            return cc_errorf(errbuf, errlen, CC_EPARSE, "%s: must be a whole number", k->name);
        json_int_t v = json_integer_value(value);
        if (v < 0 || (uint64_t)v > k->max)
            return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be 0 to %llu", k->name,
                        (unsigned long long)k->max);
        if (k->size == sizeof(uint32_t))
            *(uint32_t *)field = (uint32_t)v;
        else
            *(uint64_t *)field = (uint64_t)v;
        return 0;
    }
    case KEY_MODE:
        if (!json_is_string(value))
            return cc_errorf(errbuf, errlen, CC_EPARSE, "%s: must be a string", k->name);
        if (!strcmp(json_string_value(value), "perturbed"))
            *(enum cc_policy_mode *)field = CC_POLICY_MODE_PERTURBED;
        else if (!strcmp(json_string_value(value), "fixed"))
            *(enum cc_policy_mode *)field = CC_POLICY_MODE_FIXED;
        else
            return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: must be \"perturbed\" or \"fixed\"",
                             k->name);
        return 0;
    case KEY_REAL:
        if (!json_is_number(value))
            return cc_errorf(errbuf, errlen, CC_EPARSE, "%s: must be a number", k->name);
        *(double *)field = json_number_value(value);
        return 0;
    }
    return CC_EINTERNAL;
}

int cc_policy_parse(const char *text, size_t len, struct cc_policy *policy, char *errbuf,
                    size_t errlen)
{
    struct cc_policy p;
    cc_policy_default(&p);
    json_error_t error;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &error);
    if (!root)
        return cc_errorf(errbuf, errlen, CC_EPARSE, "malformed JSON at line %d, column %d: %s",
                    error.line, error.column, error.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = cc_errorf(errbuf, errlen, CC_EPARSE, "policy: must be a JSON object");
        goto out;
    }
    /* low_effect_persons defaults to the threshold the file gives */
    bool low_effect_given = json_object_get(root, "low_effect_persons") != NULL;
    bool ledger_min_given = json_object_get(root, "ledger_min_difference") != NULL;
    bool protection_given = json_object_get(root, "protection_level") != NULL;
    const char *name;
    json_t *value;
    json_object_foreach(root, name, value)
    {
        const struct key *k = NULL;
        for (size_t i = 0; i < N_KEYS && !k; i++)
            if (!strcmp(keys[i].name, name))
                k = &keys[i];
        if (!k) {
            /* the key is the operator's own text, not data about a person */
            rc = cc_errorf(errbuf, errlen, CC_EPARSE, "%.64s: unknown key", name);
            goto out;
        }
        if ((rc = read_key(k, value, &p, errbuf, errlen)) != 0)
            goto out;
    }
    if (!low_effect_given)
        p.low_effect_persons = p.threshold;
    if (!ledger_min_given)
        p.ledger_min_difference = p.threshold;
    if (!protection_given)
        p.protection_level = p.threshold;
    if ((rc = cc_policy_check(&p, errbuf, errlen)) == 0)
        *policy = p;
out:
    json_decref(root);
    return rc;
}

int cc_policy_load(const char *path, struct cc_policy *policy, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return cc_errorf(errbuf, errlen, CC_EIO, "policy file: cannot open: %s", strerror(errno));
    struct stat st;
    char *text = NULL;
    int rc = CC_EIO;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cc_errorf(errbuf, errlen, CC_EIO, "policy file: not a regular file");
        goto out;
    }
    if (st.st_size > POLICY_FILE_MAX_BYTES) {
        rc = cc_errorf(errbuf, errlen, CC_ETOOBIG, "policy file: %lld bytes, at most %d",
                  (long long)st.st_size, POLICY_FILE_MAX_BYTES);
        goto out;
    }
    text = malloc((size_t)st.st_size + 1);
    if (!text) {
        rc = CC_ENOMEM;
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, text + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cc_errorf(errbuf, errlen, CC_EIO, "policy file: read failed");
            goto out;
        }
        got += (size_t)n;
    }
    rc = cc_policy_parse(text, got, policy, errbuf, errlen);
out:
    free(text);
    close(fd);
    return rc;
}
