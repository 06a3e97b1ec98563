/*
 * cc_query_encode.c: the canonical msgpack form of a query: keys in the
 * order docs/query-model.md lists them, defaults left out, integers in their
 * smallest format, so two equal queries encode to the same bytes.
 *
 * A msgpack map declares its size before its entries. Each map here is
 * listed by one entries function, which pack_map() runs twice: once into a
 * packer that discards its bytes, counting the keys, then for real after a
 * header of that count. A key is written only through key(), so a map's
 * declared size is the number of keys its own list writes and cannot drift
 * from it.
 *
 * Must never: write a map whose declared size differs from its entries, or
 * an enum value it has no name for (CC_EINVAL instead).
 */
#include "cc_query.h"

#include <stdbool.h>
#include <string.h>

#include "cc_error.h"

/* A msgpack-c call: nonzero means its buffer could not grow. */
#define PACK_(call)                                                                                \
    do {                                                                                           \
        if ((call) != 0)                                                                           \
            return CC_ENOMEM;                                                                      \
    } while (0)

/* A call of this file returning 0 or a CC_E* code. */
#define TRY_(call)                                                                                 \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_)                                                                                   \
            return rc_;                                                                            \
    } while (0)

/* ---- maps whose size is counted from their entries ---- */

/* A map being listed: where its entries go, and how many keys so far. */
struct map_out {
    msgpack_packer *pk;
    uint32_t n_keys;
};

/* Lists a map's entries: every key through key(), then its value on m->pk.
 * It must list the same keys each time it runs for the same value. */
typedef int (*entries_fn)(struct map_out *m, const void *value);

static int pack_cstr(msgpack_packer *pk, const char *s)
{
    if (!s)
        return CC_EINVAL; /* a name_of() function had no name for the value */
    size_t len = strlen(s);
    PACK_(msgpack_pack_str(pk, len));
    PACK_(msgpack_pack_str_body(pk, s, len));
    return 0;
}

/* Writes one key of the map being listed and counts it. */
static int key(struct map_out *m, const char *name)
{
    m->n_keys++;
    return pack_cstr(m->pk, name);
}

static int discard_bytes(void *data, const char *buf, size_t len)
{
    (void)data;
    (void)buf;
    (void)len;
    return 0;
}

/* The number of keys entries lists for value: a run into a discarding
 * packer. */
static int count_keys(entries_fn entries, const void *value, uint32_t *n_keys)
{
    msgpack_packer counter;
    msgpack_packer_init(&counter, NULL, discard_bytes);
    struct map_out m = {.pk = &counter, .n_keys = 0};
    int rc = entries(&m, value);
    *n_keys = m.n_keys;
    return rc;
}

/* Packs value as a map listed by entries, its header sized by a counting
 * run of the same list. */
static int pack_map(msgpack_packer *pk, entries_fn entries, const void *value)
{
    uint32_t n_keys = 0;
    TRY_(count_keys(entries, value, &n_keys));
    PACK_(msgpack_pack_map(pk, n_keys));
    struct map_out m = {.pk = pk, .n_keys = 0};
    TRY_(entries(&m, value));
    return m.n_keys == n_keys ? 0 : CC_EINTERNAL;
}

/* ---- values ---- */

static int pack_month(msgpack_packer *pk, cc_month month)
{
    char buf[8];
    cc_query_month_format(month, buf);
    return pack_cstr(pk, buf);
}

static unsigned popcount32(uint32_t mask)
{
    unsigned n = 0;
    for (; mask; mask &= mask - 1)
        n++;
    return n;
}

static int pack_name_set(msgpack_packer *pk, uint32_t mask, const char *(*name_of)(int))
{
    PACK_(msgpack_pack_array(pk, popcount32(mask)));
    for (int v = 0; v < 32; v++)
        if (mask & (1u << v))
            TRY_(pack_cstr(pk, name_of(v)));
    return 0;
}

static int date_range_entries(struct map_out *m, const void *value)
{
    const struct cc_query_months *range = value;
    TRY_(key(m, "from"));
    TRY_(pack_month(m->pk, range->from));
    TRY_(key(m, "to"));
    return pack_month(m->pk, range->to);
}

static int age_band_entries(struct map_out *m, const void *value)
{
    const struct cc_query_dimension *dim = value;
    TRY_(key(m, "name"));
    TRY_(pack_cstr(m->pk, "age_band"));
    TRY_(key(m, "bands"));
    switch (dim->age_banding) {
    case CC_AGE_BANDS_5Y: return pack_cstr(m->pk, "5y");
    case CC_AGE_BANDS_10Y: return pack_cstr(m->pk, "10y");
    case CC_AGE_BANDS_1Y: return pack_cstr(m->pk, "1y");
    case CC_AGE_BANDS_CUSTOM:
        PACK_(msgpack_pack_array(m->pk, dim->n_age_bounds));
        for (uint32_t i = 0; i < dim->n_age_bounds; i++)
            PACK_(msgpack_pack_uint8(m->pk, dim->age_bounds[i]));
        return 0;
    default: return CC_EINVAL;
    }
}

static int pack_dimension(msgpack_packer *pk, const struct cc_query_dimension *dim)
{
    if (dim->kind != CC_DIM_AGE_BAND)
        return pack_cstr(pk, cc_query_dimension_name(dim->kind));
    return pack_map(pk, age_band_entries, dim);
}

static int anchor_entries(struct map_out *m, const void *value)
{
    const struct cc_query_anchor *anchor = value;
    TRY_(key(m, "condition"));
    PACK_(msgpack_pack_uint32(m->pk, anchor->condition));
    TRY_(key(m, "from_days"));
    PACK_(msgpack_pack_int32(m->pk, anchor->from_days));
    TRY_(key(m, "to_days"));
    PACK_(msgpack_pack_int32(m->pk, anchor->to_days));
    return 0;
}

static int pack_codes_of(msgpack_packer *pk, const struct cc_query_condition *c, int system)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_codes; i++)
        n += !system || c->codes[i].system == system;
    PACK_(msgpack_pack_array(pk, n));
    for (uint32_t i = 0; i < c->n_codes; i++)
        if (!system || c->codes[i].system == system)
            TRY_(pack_cstr(pk, c->codes[i].text));
    return 0;
}

/* Codes of several systems: a map from each system to its codes. */
static int codes_by_system_entries(struct map_out *m, const void *value)
{
    const struct cc_query_condition *c = value;
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++) {
        bool any = false;
        for (uint32_t i = 0; i < c->n_codes && !any; i++)
            any = c->codes[i].system == s;
        if (!any)
            continue;
        TRY_(key(m, cc_query_system_name(s)));
        TRY_(pack_codes_of(m->pk, c, s));
    }
    return 0;
}

static int condition_entries(struct map_out *m, const void *value)
{
    const struct cc_query_condition *c = value;
    if (c->n_codes) {
        TRY_(key(m, "codes"));
        if (c->system) /* one system: an array, with "system" below */
            TRY_(pack_codes_of(m->pk, c, 0));
        else
            TRY_(pack_map(m->pk, codes_by_system_entries, c));
    }
    if (c->system) {
        TRY_(key(m, "system"));
        TRY_(pack_cstr(m->pk, cc_query_system_name(c->system)));
    }
    if (c->codelist[0]) {
        TRY_(key(m, "codelist"));
        TRY_(pack_cstr(m->pk, c->codelist));
    }
    if (c->setting_mask) {
        TRY_(key(m, "settings"));
        TRY_(pack_name_set(m->pk, c->setting_mask, cc_query_setting_name));
    }
    if (c->role_mask) {
        TRY_(key(m, "roles"));
        TRY_(pack_name_set(m->pk, c->role_mask, cc_query_role_name));
    }
    if (c->date_range.present) {
        TRY_(key(m, "date_range"));
        TRY_(pack_map(m->pk, date_range_entries, &c->date_range));
    }
    if (c->anchor.present) {
        TRY_(key(m, "anchor"));
        TRY_(pack_map(m->pk, anchor_entries, &c->anchor));
    }
    if (c->exclude) {
        TRY_(key(m, "exclude"));
        PACK_(msgpack_pack_true(m->pk));
    }
    return 0;
}

static int age_range_entries(struct map_out *m, const void *value)
{
    const struct cc_query_age_range *age = value;
    TRY_(key(m, "min"));
    PACK_(msgpack_pack_uint8(m->pk, age->min_years));
    TRY_(key(m, "max"));
    PACK_(msgpack_pack_uint8(m->pk, age->max_years));
    return 0;
}

static int areas_entries(struct map_out *m, const void *value)
{
    const struct cc_query_areas *areas = value;
    TRY_(key(m, "level"));
    TRY_(pack_cstr(m->pk, cc_query_area_level_name(areas->level)));
    TRY_(key(m, "codes"));
    PACK_(msgpack_pack_array(m->pk, areas->n_codes));
    for (uint32_t i = 0; i < areas->n_codes; i++)
        TRY_(pack_cstr(m->pk, areas->codes[i]));
    return 0;
}

/* A node of the combine tree and the filters it belongs to. */
struct node_ref {
    const struct cc_query_filters *filters;
    uint32_t node;
};

static int pack_node(msgpack_packer *pk, const struct cc_query_filters *f, uint32_t node);

static int operator_entries(struct map_out *m, const void *value)
{
    const struct node_ref *ref = value;
    const struct cc_query_node *n = &ref->filters->nodes[ref->node];
    TRY_(key(m, cc_query_node_op_name(n->op)));
    if (n->op == CC_NODE_NOT)
        return pack_node(m->pk, ref->filters, n->children[0]);
    PACK_(msgpack_pack_array(m->pk, n->n_children));
    for (uint32_t i = 0; i < n->n_children; i++)
        TRY_(pack_node(m->pk, ref->filters, n->children[i]));
    return 0;
}

/* A condition as its index; an operator as {"and": [...]}, {"or": [...]} or
 * {"not": node}. */
static int pack_node(msgpack_packer *pk, const struct cc_query_filters *f, uint32_t node)
{
    if (node >= f->n_nodes)
        return CC_EINVAL;
    if (f->nodes[node].op == CC_NODE_CONDITION) {
        PACK_(msgpack_pack_uint32(pk, f->nodes[node].condition));
        return 0;
    }
    const struct node_ref ref = {f, node};
    return pack_map(pk, operator_entries, &ref);
}

static int filters_entries(struct map_out *m, const void *value)
{
    const struct cc_query_filters *f = value;
    if (f->n_conditions) {
        TRY_(key(m, "conditions"));
        PACK_(msgpack_pack_array(m->pk, f->n_conditions));
        for (uint32_t i = 0; i < f->n_conditions; i++)
            TRY_(pack_map(m->pk, condition_entries, &f->conditions[i]));
    }
    if (f->n_nodes) {
        TRY_(key(m, "combine"));
        TRY_(pack_node(m->pk, f, 0));
    }
    if (f->date_range.present) {
        TRY_(key(m, "date_range"));
        TRY_(pack_map(m->pk, date_range_entries, &f->date_range));
    }
    if (f->age.present) {
        TRY_(key(m, "age"));
        TRY_(pack_map(m->pk, age_range_entries, &f->age));
    }
    if (f->sex_mask) {
        TRY_(key(m, "sex"));
        TRY_(pack_name_set(m->pk, f->sex_mask, cc_query_sex_name));
    }
    if (f->setting_mask) {
        TRY_(key(m, "settings"));
        TRY_(pack_name_set(m->pk, f->setting_mask, cc_query_setting_name));
    }
    if (f->areas.n_codes) {
        TRY_(key(m, "areas"));
        TRY_(pack_map(m->pk, areas_entries, &f->areas));
    }
    if (f->practices.n_codes) {
        TRY_(key(m, "practices"));
        PACK_(msgpack_pack_array(m->pk, f->practices.n_codes));
        for (uint32_t i = 0; i < f->practices.n_codes; i++)
            TRY_(pack_cstr(m->pk, f->practices.codes[i]));
    }
    return 0;
}

static int query_entries(struct map_out *m, const void *value)
{
    const struct cc_query *q = value;
    TRY_(key(m, "v"));
    PACK_(msgpack_pack_uint32(m->pk, q->version));
    TRY_(key(m, "measure"));
    TRY_(pack_cstr(m->pk, cc_query_measure_name(q->measure)));
    if (q->measure == CC_MEASURE_POPULATION && q->population_source != CC_POPULATION_REGISTERED) {
        TRY_(key(m, "population"));
        TRY_(pack_cstr(m->pk, cc_query_population_source_name(q->population_source)));
    }
    if (q->events_of >= 0) {
        TRY_(key(m, "events_of"));
        PACK_(msgpack_pack_int32(m->pk, q->events_of));
    }
    if (q->has_as_of) {
        TRY_(key(m, "as_of"));
        TRY_(pack_month(m->pk, q->as_of));
    }
    if (q->n_dimensions) {
        TRY_(key(m, "dimensions"));
        PACK_(msgpack_pack_array(m->pk, q->n_dimensions));
        for (uint32_t i = 0; i < q->n_dimensions; i++)
            TRY_(pack_dimension(m->pk, &q->dimensions[i]));
    }
    if (q->margins) {
        TRY_(key(m, "margins"));
        PACK_(msgpack_pack_true(m->pk));
    }
    /* An empty filters map is the default, so it is left out. */
    uint32_t n_filter_keys = 0;
    TRY_(count_keys(filters_entries, &q->filters, &n_filter_keys));
    if (n_filter_keys) {
        TRY_(key(m, "filters"));
        TRY_(pack_map(m->pk, filters_entries, &q->filters));
    }
    return 0;
}

/* ---- the public calls ---- */

int cc_query_pack(const struct cc_query *query, msgpack_packer *packer)
{
    return pack_map(packer, query_entries, query);
}

int cc_query_encode(const struct cc_query *query, char **out, size_t *out_len)
{
    msgpack_sbuffer buffer;
    msgpack_sbuffer_init(&buffer);
    msgpack_packer packer;
    msgpack_packer_init(&packer, &buffer, msgpack_sbuffer_write);
    *out = NULL;
    *out_len = 0;
    int rc = cc_query_pack(query, &packer);
    if (rc) {
        msgpack_sbuffer_destroy(&buffer);
        return rc;
    }
    *out_len = buffer.size;
    *out = msgpack_sbuffer_release(&buffer);
    if (!*out) {
        /* an empty buffer is never produced: the map header is one byte */
        return CC_EINTERNAL;
    }
    return 0;
}
