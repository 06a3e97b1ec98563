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
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_json.h"
#include "cc_release_internal.h"

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

/* The "policy" and "counts" maps of a release or a comparison. */
int cc_release_pack_summary(const struct cc_release_summary *s, msgpack_packer *pk)
{
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
    return 0;
}

int cc_release_pack(const cc_release *release, msgpack_packer *pk)
{
    PACK_(msgpack_pack_map(pk, 4));
    PACK_(cc_release_pack_summary(cc_release_summary(release), pk));

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
    *out = cc_json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    rc = *out ? 0 : CC_ENOMEM;
out:
    json_decref(root);
    return rc;
}

/* ---- comparisons ---- */

/* A number, or nil when it does not apply (NaN, infinite). */
static int pack_number(msgpack_packer *pk, double x)
{
    return isfinite(x) ? msgpack_pack_double(pk, x) : msgpack_pack_nil(pk);
}

/* A count: released counts are whole numbers; nil when suppressed. */
static int pack_count(msgpack_packer *pk, double x)
{
    return isfinite(x) && x >= 0 ? msgpack_pack_uint64(pk, (uint64_t)llround(x))
                                 : msgpack_pack_nil(pk);
}

static int pack_pair(msgpack_packer *pk, double lower, double upper)
{
    PACK_(msgpack_pack_array(pk, 2));
    PACK_(pack_number(pk, lower));
    PACK_(pack_number(pk, upper));
    return 0;
}

/* What a funnel plot's x is, for a method. */
static const char *funnel_x_name(int method)
{
    switch (method) {
    case CC_COMPARE_ISR:
        return "expected";
    case CC_COMPARE_DSR:
        return "derived_population";
    default:
        return "denominator";
    }
}

/* "funnel": nil, or {"comparator": code, "value": number, "x": name,
 * "points": [[x, lower95, upper95, lower998, upper998], ...]}: the curve
 * a national comparison's funnel plot draws (docs/protocol.md). */
static int pack_funnel(const struct cc_compare_layout *layout,
                       const struct cc_compare_result *result, msgpack_packer *pk)
{
    PACK_STR_(pk, "funnel");
    if (result->n_funnel == 0 || layout->n_units == 0)
        return msgpack_pack_nil(pk);
    PACK_(msgpack_pack_map(pk, 4));
    PACK_STR_(pk, "comparator");
    PACK_STR_(pk, layout->units[layout->n_units - 1].code);
    PACK_STR_(pk, "value");
    PACK_(pack_number(pk, result->funnel_value));
    PACK_STR_(pk, "x");
    PACK_STR_(pk, funnel_x_name(layout->method));
    PACK_STR_(pk, "points");
    PACK_(msgpack_pack_array(pk, result->n_funnel));
    for (uint32_t i = 0; i < result->n_funnel; i++) {
        const struct cc_compare_funnel_point *p = &result->funnel[i];
        PACK_(msgpack_pack_array(pk, 5));
        PACK_(pack_number(pk, p->x));
        PACK_(pack_number(pk, p->lower95));
        PACK_(pack_number(pk, p->upper95));
        PACK_(pack_number(pk, p->lower998));
        PACK_(pack_number(pk, p->upper998));
    }
    return 0;
}

int cc_comparison_pack(const cc_comparison *comparison, msgpack_packer *pk)
{
    const struct cc_compare_layout *layout = cc_comparison_layout_(comparison);
    const struct cc_compare_result *result = cc_comparison_result_(comparison);
    PACK_(msgpack_pack_map(pk, 9));
    PACK_(cc_release_pack_summary(cc_comparison_summary(comparison), pk));
    PACK_STR_(pk, "method");
    PACK_STR_(pk, cc_compare_method_name(layout->method));
    PACK_STR_(pk, "denominator");
    PACK_STR_(pk, cc_compare_denominator_name(layout->denominator));
    PACK_STR_(pk, "level");
    PACK_STR_(pk, cc_query_area_level_name(layout->area_level));
    PACK_STR_(pk, "comparator");
    PACK_STR_(pk, cc_compare_comparator_name(layout->comparator));
    PACK_STR_(pk, "multiplier");
    PACK_(msgpack_pack_double(pk, layout->multiplier));
    PACK_STR_(pk, "rows");
    PACK_(msgpack_pack_array(pk, result->n_rows));
    for (uint32_t i = 0; i < result->n_rows; i++) {
        const struct cc_compare_unit *unit = &layout->units[i];
        const struct cc_compare_row *row = &result->rows[i];
        PACK_(msgpack_pack_map(pk, 18));
        PACK_STR_(pk, "code");
        PACK_STR_(pk, unit->code);
        PACK_STR_(pk, "name");
        PACK_STR_(pk, unit->name);
        PACK_STR_(pk, "level");
        PACK_STR_(pk, unit->level == CC_AREA_NATION ? "nation"
                                                    : cc_query_area_level_name(unit->level));
        PACK_STR_(pk, "compared_with");
        if (unit->comparator == CC_COMPARE_NO_UNIT)
            PACK_(msgpack_pack_nil(pk));
        else
            PACK_STR_(pk, layout->units[unit->comparator].code);
        PACK_STR_(pk, "status");
        PACK_STR_(pk, cc_compare_status_name(row->status));
        PACK_STR_(pk, "count");
        PACK_(pack_count(pk, row->count));
        PACK_STR_(pk, "denominator");
        PACK_(pack_count(pk, row->denominator));
        PACK_STR_(pk, "expected");
        PACK_(pack_number(pk, row->expected));
        PACK_STR_(pk, "value");
        PACK_(pack_number(pk, row->value));
        PACK_STR_(pk, "ci95");
        PACK_(pack_pair(pk, row->ci95.lower, row->ci95.upper));
        PACK_STR_(pk, "ci998");
        PACK_(pack_pair(pk, row->ci998.lower, row->ci998.upper));
        PACK_STR_(pk, "ci95_noise");
        PACK_(pack_pair(pk, row->ci95_noise.lower, row->ci95_noise.upper));
        PACK_STR_(pk, "comparator_value");
        PACK_(pack_number(pk, row->comparator_value));
        PACK_STR_(pk, "comparison95");
        PACK_STR_(pk, cc_stats_comparison_name(row->comparison95));
        PACK_STR_(pk, "comparison998");
        PACK_STR_(pk, cc_stats_comparison_name(row->comparison998));
        PACK_STR_(pk, "funnel95");
        PACK_(pack_pair(pk, row->funnel95_lower, row->funnel95_upper));
        PACK_STR_(pk, "funnel998");
        PACK_(pack_pair(pk, row->funnel998_lower, row->funnel998_upper));
        PACK_STR_(pk, "funnel_x");
        PACK_(pack_number(pk, row->funnel_x));
    }
    return pack_funnel(layout, result, pk);
}
