/*
 * cc_release_codec.c: the msgpack and JSON encoders of a release.
 *
 * Both write the same map (cc_release.h, docs/protocol.md) from the
 * release's accessors only: what they can see is what a client may see.
 *
 * Must never: accept anything but a release (there is no entry point that
 * takes a count, a raw result or a cell key).
 */
#include "cc_release.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"

#define PACK_(call)                                                                                \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return CC_ENOMEM;                                                                      \
    } while (0)

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);
    PACK_(msgpack_pack_str(pk, len));
    PACK_(msgpack_pack_str_body(pk, s, len));
    return 0;
}

#define PACK_STR_(pk, s)                                                                           \
    do {                                                                                           \
        if (pack_str((pk), (s)))                                                                   \
            return CC_ENOMEM;                                                                      \
    } while (0)

static int pack_bool(msgpack_packer *pk, int value)
{
    return value ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

int cc_release_pack(const cc_release *release, msgpack_packer *pk)
{
    const struct cc_release_summary *s = cc_release_summary(release);
    PACK_(msgpack_pack_map(pk, 4));
    PACK_STR_(pk, "policy");
    PACK_(msgpack_pack_map(pk, 7));
    PACK_STR_(pk, "version");
    PACK_STR_(pk, s->policy_version);
    PACK_STR_(pk, "threshold");
    PACK_(msgpack_pack_uint32(pk, s->threshold));
    PACK_STR_(pk, "rounding_base");
    PACK_(msgpack_pack_uint32(pk, s->rounding_base));
    PACK_STR_(pk, "max_noise");
    PACK_(msgpack_pack_uint32(pk, s->max_noise));
    PACK_STR_(pk, "condition_max_noise");
    PACK_(msgpack_pack_uint32(pk, s->condition_max_noise));
    PACK_STR_(pk, "perturbed");
    PACK_(pack_bool(pk, s->perturbed));
    PACK_STR_(pk, "zeros_shown");
    PACK_(pack_bool(pk, s->zeros_shown));

    PACK_STR_(pk, "counts");
    PACK_(msgpack_pack_map(pk, 6));
    PACK_STR_(pk, "cells");
    PACK_(msgpack_pack_uint64(pk, s->n_cells));
    PACK_STR_(pk, "shown");
    PACK_(msgpack_pack_uint64(pk, s->n_shown));
    PACK_STR_(pk, "suppressed");
    PACK_(msgpack_pack_uint64(pk, s->n_suppressed_primary));
    PACK_STR_(pk, "suppressed_secondary");
    PACK_(msgpack_pack_uint64(pk, s->n_suppressed_secondary));
    PACK_STR_(pk, "perturbed");
    PACK_(msgpack_pack_uint64(pk, s->n_perturbed));
    PACK_STR_(pk, "rounded");
    PACK_(msgpack_pack_uint64(pk, s->n_rounded));

    PACK_STR_(pk, "dimensions");
    uint32_t n_dims = cc_release_n_dimensions(release);
    PACK_(msgpack_pack_array(pk, n_dims));
    for (uint32_t d = 0; d < n_dims; d++) {
        const char *kind = cc_query_dimension_name(cc_release_dimension_kind(release, d));
        uint32_t size = cc_release_dimension_size(release, d);
        PACK_(msgpack_pack_map(pk, 2));
        PACK_STR_(pk, "kind");
        PACK_STR_(pk, kind ? kind : "?");
        PACK_STR_(pk, "labels");
        PACK_(msgpack_pack_array(pk, size));
        for (uint32_t v = 0; v < size; v++) {
            char label[64];
            cc_release_label(release, d, v, label, sizeof label);
            PACK_STR_(pk, label);
        }
    }

    PACK_STR_(pk, "cells");
    uint64_t n = cc_release_n_cells(release);
    if (n > UINT32_MAX)
        return CC_ETOOBIG;
    PACK_(msgpack_pack_array(pk, (uint32_t)n));
    for (uint64_t i = 0; i < n; i++) {
        struct cc_released_count c = cc_release_cell(release, i);
        PACK_(msgpack_pack_array(pk, 2));
        if (c.released)
            PACK_(msgpack_pack_uint64(pk, c.value));
        else
            PACK_(msgpack_pack_nil(pk));
        PACK_STR_(pk, cc_release_reason_name(c.reason));
    }
    return 0;
}

/* Sets key on object to value, taking the reference; 0 or CC_ENOMEM. */
static int set(json_t *object, const char *key, json_t *value)
{
    return value && json_object_set_new(object, key, value) == 0 ? 0 : CC_ENOMEM;
}

int cc_release_encode_json(const cc_release *release, char **out)
{
    *out = NULL;
    const struct cc_release_summary *s = cc_release_summary(release);
    json_t *root = json_object(), *policy = json_object(), *counts = json_object(),
           *dims = json_array(), *cells = json_array();
    int rc = CC_ENOMEM;
    /* the containers go into root first (json_object_set_new takes the
     * reference even when it fails, root NULL included), so root owns them
     * on every path */
    if ((set(root, "policy", policy) | set(root, "counts", counts) |
         set(root, "dimensions", dims) | set(root, "cells", cells)) != 0)
        goto out;
    if (set(policy, "version", json_string(s->policy_version)) ||
        set(policy, "threshold", json_integer(s->threshold)) ||
        set(policy, "rounding_base", json_integer(s->rounding_base)) ||
        set(policy, "max_noise", json_integer(s->max_noise)) ||
        set(policy, "condition_max_noise", json_integer(s->condition_max_noise)) ||
        set(policy, "perturbed", json_boolean(s->perturbed)) ||
        set(policy, "zeros_shown", json_boolean(s->zeros_shown)))
        goto out;
    if (set(counts, "cells", json_integer((json_int_t)s->n_cells)) ||
        set(counts, "shown", json_integer((json_int_t)s->n_shown)) ||
        set(counts, "suppressed", json_integer((json_int_t)s->n_suppressed_primary)) ||
        set(counts, "suppressed_secondary", json_integer((json_int_t)s->n_suppressed_secondary)) ||
        set(counts, "perturbed", json_integer((json_int_t)s->n_perturbed)) ||
        set(counts, "rounded", json_integer((json_int_t)s->n_rounded)))
        goto out;
    for (uint32_t d = 0; d < cc_release_n_dimensions(release); d++) {
        json_t *dim = json_object();
        const char *kind = cc_query_dimension_name(cc_release_dimension_kind(release, d));
        if (json_array_append_new(dims, dim))
            goto out;
        json_t *labels = json_array();
        if (set(dim, "kind", json_string(kind ? kind : "?")) || set(dim, "labels", labels))
            goto out;
        for (uint32_t v = 0; v < cc_release_dimension_size(release, d); v++) {
            char label[64];
            cc_release_label(release, d, v, label, sizeof label);
            if (json_array_append_new(labels, json_string(label)))
                goto out;
        }
    }
    for (uint64_t i = 0; i < cc_release_n_cells(release); i++) {
        struct cc_released_count c = cc_release_cell(release, i);
        json_t *cell = json_array();
        if (!cell || json_array_append_new(cells, cell) ||
            json_array_append_new(cell, c.released ? json_integer((json_int_t)c.value)
                                                   : json_null()) ||
            json_array_append_new(cell, json_string(cc_release_reason_name(c.reason))))
            goto out;
    }
    *out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = *out ? 0 : CC_ENOMEM;
out:
    json_decref(root);
    return rc;
}
