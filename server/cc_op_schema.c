/*
 * cc_op_schema.c: the "schema" op: what a client may ask of this server:
 * the measures, dimensions, settings, code systems and sexes of the query
 * model, the area levels with their codes and names, the codelists, the
 * data version and the months its records cover, the query limits and the
 * disclosure policy in force. Runs on the pool (it scans the record dates).
 *
 * Must never: say anything about persons: no counts of persons, records or
 * opt-outs (the number of areas and codelists is reference data, and the
 * months covered are the feeds' extent, not a figure).
 */
#include <string.h>

#include "cc_date.h"
#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_services.h"
#include "cc_store.h"

static bool schema_runs_on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static void pack_text(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

/* An array of the names a name function gives for first..last (skipping
 * values without a name). */
static void pack_names(msgpack_packer *pk, const char *(*name)(int), int first, int last)
{
    int n = 0;
    for (int v = first; v <= last; v++)
        n += name(v) != NULL;
    msgpack_pack_array(pk, (size_t)n);
    for (int v = first; v <= last; v++)
        if (name(v))
            pack_text(pk, name(v));
}

static void pack_areas(msgpack_packer *pk, const struct cc_store_columns *c, const char *level,
                       uint32_t n, const char (*code)[CC_AREA_CODE_BYTES], const uint32_t *name)
{
    msgpack_pack_map(pk, 3);
    pack_text(pk, "level");
    pack_text(pk, level);
    pack_text(pk, "n_areas");
    msgpack_pack_uint32(pk, n);
    pack_text(pk, "areas");
    if (!code) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 2);
        pack_text(pk, code[i]);
        pack_text(pk, c->name_blob + name[i]);
    }
}

static void pack_month(msgpack_packer *pk, cc_day day)
{
    char text[8];
    cc_query_month_format(cc_query_month_of_day(day), text);
    pack_text(pk, text);
}

static void pack_policy(msgpack_packer *pk, const struct cc_policy *p)
{
    msgpack_pack_map(pk, 23);
    pack_text(pk, "version");
    pack_text(pk, p->version);
    pack_text(pk, "threshold");
    msgpack_pack_uint32(pk, p->threshold);
    pack_text(pk, "show_zeros");
    p->show_zeros ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_text(pk, "rounding_base");
    msgpack_pack_uint32(pk, p->rounding_base);
    pack_text(pk, "max_noise");
    msgpack_pack_uint32(pk, p->max_noise);
    pack_text(pk, "noise_variance");
    msgpack_pack_double(pk, p->noise_variance);
    pack_text(pk, "condition_max_noise");
    msgpack_pack_uint32(pk, p->condition_max_noise);
    pack_text(pk, "condition_noise_variance");
    msgpack_pack_double(pk, p->condition_noise_variance);
    pack_text(pk, "publication_noise");
    p->publication_noise ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_text(pk, "min_population");
    msgpack_pack_uint64(pk, p->min_population);
    pack_text(pk, "min_cell_population");
    msgpack_pack_uint64(pk, p->min_cell_population);
    pack_text(pk, "max_cells");
    msgpack_pack_uint64(pk, p->max_cells);
    pack_text(pk, "low_effect_persons");
    msgpack_pack_uint32(pk, p->low_effect_persons);
    pack_text(pk, "low_effect_spread");
    msgpack_pack_uint32(pk, p->low_effect_spread);
    pack_text(pk, "mode");
    pack_text(pk, p->mode == CC_POLICY_MODE_FIXED ? "fixed" : "perturbed");
    pack_text(pk, "protection_level");
    msgpack_pack_uint32(pk, p->protection_level);
    pack_text(pk, "ledger_min_difference");
    msgpack_pack_uint32(pk, p->ledger_min_difference);
    pack_text(pk, "ledger_near_difference");
    msgpack_pack_uint32(pk, p->ledger_near_difference);
    pack_text(pk, "ledger_budget");
    msgpack_pack_uint32(pk, p->ledger_budget);
    pack_text(pk, "ledger_window_days");
    msgpack_pack_uint32(pk, p->ledger_window_days);
    pack_text(pk, "ledger_cell_max");
    msgpack_pack_uint32(pk, p->ledger_cell_max);
    pack_text(pk, "ledger_cell_days");
    msgpack_pack_uint32(pk, p->ledger_cell_days);
    pack_text(pk, "ledger_cells");
    msgpack_pack_uint32(pk, p->ledger_cells);
}

static void pack_limits(msgpack_packer *pk)
{
    struct cc_query_limits l;
    cc_query_limits_default(&l);
    msgpack_pack_map(pk, 8);
    pack_text(pk, "max_query_bytes");
    msgpack_pack_uint32(pk, l.max_query_bytes);
    pack_text(pk, "max_nesting_depth");
    msgpack_pack_uint32(pk, l.max_nesting_depth);
    pack_text(pk, "max_dimensions");
    msgpack_pack_uint32(pk, l.max_dimensions);
    pack_text(pk, "max_cells");
    msgpack_pack_uint64(pk, l.max_cells);
    pack_text(pk, "max_conditions");
    msgpack_pack_uint32(pk, l.max_conditions);
    pack_text(pk, "max_codes_per_condition");
    msgpack_pack_uint32(pk, l.max_codes_per_condition);
    pack_text(pk, "max_areas");
    msgpack_pack_uint32(pk, l.max_areas);
    pack_text(pk, "max_practices");
    msgpack_pack_uint32(pk, l.max_practices);
}

static int schema_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    const cc_dataversion *version = cc_request_data(request);
    if (!version)
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data");
    const struct cc_store_columns *c = cc_store_columns(cc_dataversion_store(version));
    msgpack_packer *pk;

    cc_op_reply_data_version(request);
    pk = cc_reply_field(request, "published_on");
    char day[11];
    cc_day_format(cc_dataversion_published_on(version), day);
    pack_text(pk, day);

    /* the months the records cover */
    cc_day first = 0, last = 0;
    for (uint64_t r = 0; r < c->n_records; r++) {
        cc_day d = c->record_date[r];
        if (r == 0 || d < first)
            first = d;
        if (r == 0 || d > last)
            last = d;
    }
    pk = cc_reply_field(request, "months");
    if (c->n_records == 0) {
        msgpack_pack_nil(pk);
    } else {
        msgpack_pack_map(pk, 2);
        pack_text(pk, "from");
        pack_month(pk, first);
        pack_text(pk, "to");
        pack_month(pk, last);
    }

    pack_names(cc_reply_field(request, "measures"), cc_query_measure_name, 1, 16);
    pack_names(cc_reply_field(request, "dimensions"), cc_query_dimension_name, 1, 32);
    pack_names(cc_reply_field(request, "settings"), cc_query_setting_name, 1, 16);
    pack_names(cc_reply_field(request, "code_systems"), cc_query_system_name, 1, 16);
    pack_names(cc_reply_field(request, "sexes"), cc_query_sex_name, 0, 9);

    pk = cc_reply_field(request, "area_levels");
    msgpack_pack_array(pk, 4);
    pack_areas(pk, c, "region", c->n_region, c->region_code, c->region_name_offset);
    pack_areas(pk, c, "icb", c->n_icb, c->icb_code, c->icb_name_offset);
    pack_areas(pk, c, "lad", c->n_lad, c->lad_code, c->lad_name_offset);
    /* 33,755 LSOAs in England: their codes are ONS's, not listed here */
    pack_areas(pk, c, "lsoa", c->n_lsoa, NULL, NULL);
    msgpack_pack_uint32(cc_reply_field(request, "n_practices"), c->n_practices);

    pk = cc_reply_field(request, "codelists");
    uint32_t n = cc_codelists_count(services->codelists);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++)
        pack_text(pk, cc_codelists_at(services->codelists, i)->name);

    pack_limits(cc_reply_field(request, "limits"));
    pack_policy(cc_reply_field(request, "policy"), &services->policy);
    return 0;
}

const struct cc_op cc_op_schema = {"schema", schema_run, schema_runs_on_pool, CC_OP_DATA_ROLES,
                                   true};
