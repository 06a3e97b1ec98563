/*
 * cc_query_validate.c: what a query means, checked before it runs, with errors that
 * name the field and the reason ("filters.conditions[0].codes[1]: 'E11' is
 * ICD-10 or OPCS-4 but the condition's system is SNOMED CT").
 *
 * cc_query_validate() needs no data: the client runs it before sending.
 * cc_query_bind() checks the names a query uses against the store's
 * vocabulary (area codes, codelists) and resolves them for the engine.
 *
 * Must never: look at persons. Neither step reads a person's row, so a
 * refusal here says nothing about who is in the data.
 */
#include "cc_query.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_query_internal.h"

/* ---- code formats ---- */

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

/* The Verhoeff check over a string of digits whose last digit is the check
 * digit (how SNOMED CT concept ids are checked). */
static bool verhoeff_valid(const char *digits, size_t len)
{
    static const uint8_t d[10][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
        {2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
        {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
        {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
        {8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
    static const uint8_t p[8][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
        {5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
        {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
        {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};
    unsigned c = 0;
    for (size_t i = 0; i < len; i++)
        c = d[c][p[i % 8][digits[len - 1 - i] - '0']];
    return c == 0;
}

unsigned cc_query_code_systems(const char *text)
{
    size_t len = strlen(text);
    unsigned systems = 0;
    /* SNOMED CT concept ids: partition identifier 00 or 10 in the 2nd and
     * 3rd digits from the right (other partitions are descriptions and
     * relationships, never recorded as codes). */
    if (len >= 6 && len <= 18 && all_digits(text, len) && text[0] != '0' &&
        (text[len - 3] == '0' || text[len - 3] == '1') && text[len - 2] == '0' &&
        verhoeff_valid(text, len))
        systems |= 1u << CC_CODE_SNOMED;
    if (len >= 2 && len <= 4 && text[0] >= 'A' && text[0] <= 'Z') {
        bool digits = all_digits(text + 1, len - 1);
        /* ICD-10: a letter and digits; a 4th character X marks "no subdivision" */
        if (digits || (len == 4 && all_digits(text + 1, 2) && text[3] == 'X'))
            systems |= 1u << CC_CODE_ICD10;
        /* OPCS-4: chapters A-Z except I (O is the overflow chapter), then digits */
        if (digits && text[0] != 'I')
            systems |= 1u << CC_CODE_OPCS4;
    }
    return systems;
}

/* The shape of a valid code of a system, for error messages. */
static const char *system_shape(int system)
{
    switch (system) {
    case CC_CODE_SNOMED: return "a concept id: 6 to 18 digits with a valid check digit";
    case CC_CODE_ICD10: return "a letter, then 1 to 3 digits; a 4th character may be X";
    case CC_CODE_OPCS4: return "a letter other than I, then 1 to 3 digits";
    }
    return "unknown system";
}

/* ---- errors ---- */

/* Writes n with thousands separators ("1,250,000"). */
static void with_commas(uint64_t n, char buf[32])
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)n);
    int out = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[out++] = ',';
        buf[out++] = digits[i];
    }
    buf[out] = '\0';
}

static unsigned popcount(uint32_t mask)
{
    unsigned n = 0;
    for (; mask; mask &= mask - 1)
        n++;
    return n;
}

/* ---- cells ---- */

static bool is_period(int kind)
{
    return kind == CC_DIM_YEAR || kind == CC_DIM_QUARTER || kind == CC_DIM_MONTH;
}

static bool is_event_dimension(int kind)
{
    return kind == CC_DIM_SETTING || is_period(kind);
}

/* The months the records of a query can fall in. */
static void query_months(const struct cc_query *q, const struct cc_query_extent *extent,
                         cc_month *from, cc_month *to)
{
    *from = extent->first_month;
    *to = extent->last_month;
    const struct cc_query_months *range = &q->filters.date_range;
    if (!range->present && q->events_of >= 0 && (uint32_t)q->events_of < q->filters.n_conditions)
        range = &q->filters.conditions[q->events_of].date_range;
    if (range->present) {
        *from = range->from;
        *to = range->to;
    }
}

static uint64_t dimension_size(const struct cc_query *q, const struct cc_query_dimension *dim,
                               const struct cc_query_extent *extent)
{
    const struct cc_query_areas *areas = &q->filters.areas;
    cc_month from, to;
    query_months(q, extent, &from, &to);
    if (to < from)
        return 0;
    switch (dim->kind) {
    case CC_DIM_REGION:
        return areas->n_codes && areas->level == CC_AREA_REGION ? areas->n_codes : extent->n_region;
    case CC_DIM_ICB:
        return areas->n_codes && areas->level == CC_AREA_ICB ? areas->n_codes : extent->n_icb;
    case CC_DIM_LAD:
        return areas->n_codes && areas->level == CC_AREA_LAD ? areas->n_codes : extent->n_lad;
    case CC_DIM_PRACTICE:
        return q->filters.practices.n_codes ? q->filters.practices.n_codes : extent->n_practices;
    case CC_DIM_LSOA:
        return areas->n_codes && areas->level == CC_AREA_LSOA ? areas->n_codes : extent->n_lsoa;
    case CC_DIM_AGE_BAND:
        return dim->age_banding == CC_AGE_BANDS_5Y    ? CC_N_AGE_BANDS_5Y
               : dim->age_banding == CC_AGE_BANDS_10Y ? 10
               : dim->age_banding == CC_AGE_BANDS_1Y  ? 121
                                                      : dim->n_age_bounds;
    case CC_DIM_SEX:
        if (q->measure == CC_MEASURE_POPULATION && q->population_source == CC_POPULATION_ESTIMATE)
            return 2;
        return q->filters.sex_mask ? popcount(q->filters.sex_mask) : 4;
    case CC_DIM_SETTING:
        return q->filters.setting_mask ? popcount(q->filters.setting_mask) : 3;
    case CC_DIM_YEAR: return (uint64_t)(to / 12 - from / 12 + 1);
    case CC_DIM_QUARTER: return (uint64_t)(to / 3 - from / 3 + 1);
    case CC_DIM_MONTH: return (uint64_t)(to - from + 1);
    }
    return 1;
}

uint64_t cc_query_n_cells(const struct cc_query *query, const struct cc_query_extent *extent)
{
    struct cc_query_extent defaults;
    if (!extent) {
        cc_query_extent_default(&defaults);
        extent = &defaults;
    }
    uint64_t cells = 1;
    for (uint32_t i = 0; i < query->n_dimensions; i++) {
        /* with margins, each dimension has its total as one more value */
        uint64_t size = dimension_size(query, &query->dimensions[i], extent) + query->margins;
        if (size && cells > UINT64_MAX / size)
            return UINT64_MAX;
        cells *= size;
    }
    return cells;
}

/* ---- the checks ---- */

static int check_range(const struct cc_query_months *range, const char *field, char *errbuf,
                       size_t errlen)
{
    if (!range->present || range->from <= range->to)
        return 0;
    char from[8], to[8];
    cc_query_month_format(range->from, from);
    cc_query_month_format(range->to, to);
    return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: empty (from %s after to %s)", field, from, to);
}

static int check_dimensions(const struct cc_query *q, const struct cc_query_limits *limits,
                            char *errbuf, size_t errlen)
{
    if (q->n_dimensions > limits->max_dimensions || q->n_dimensions > CC_QUERY_DIMENSIONS_CAP)
        return cc_errorf(errbuf, errlen, CC_ETOOBIG, "dimensions: %u dimensions, the limit is %u",
                    q->n_dimensions, limits->max_dimensions);
    if (q->margins && q->n_dimensions == 0)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "margins: the query has no dimensions, so its one cell is the total");
    uint32_t seen = 0;
    int period = 0;
    for (uint32_t i = 0; i < q->n_dimensions; i++) {
        const struct cc_query_dimension *dim = &q->dimensions[i];
        const char *name = cc_query_dimension_name(dim->kind);
        if (!name)
            return cc_errorf(errbuf, errlen, CC_EINVAL, "dimensions[%u]: unknown dimension %d", i,
                        dim->kind);
        if (seen & (1u << dim->kind) && dim->kind == CC_DIM_AGE_BAND)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "dimensions[%u]: 'age_band' appears twice; a table has one banding (two "
                        "would cross into bands finer than either: ask for each in its own query)",
                        i);
        if (seen & (1u << dim->kind))
            return cc_errorf(errbuf, errlen, CC_EINVAL, "dimensions[%u]: '%s' appears twice", i, name);
        seen |= 1u << dim->kind;
        if (is_period(dim->kind)) {
            if (period)
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "dimensions[%u]: '%s' and '%s' are both periods; use one", i,
                            cc_query_dimension_name(period), name);
            period = dim->kind;
        }
        if (q->measure == CC_MEASURE_POPULATION &&
            (is_event_dimension(dim->kind) ||
             (dim->kind == CC_DIM_PRACTICE && q->population_source == CC_POPULATION_ESTIMATE)))
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "dimensions[%u]: the %s population has no '%s' (it is a count of "
                        "persons at one date)",
                        i, cc_query_population_source_name(q->population_source), name);
        if (dim->kind != CC_DIM_AGE_BAND)
            continue;
        if (dim->age_banding == CC_AGE_BANDS_5Y || dim->age_banding == CC_AGE_BANDS_10Y)
            continue;
        if (dim->age_banding == CC_AGE_BANDS_1Y) {
            if (q->measure == CC_MEASURE_POPULATION &&
                q->population_source == CC_POPULATION_ESTIMATE)
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "dimensions[%u].bands: population estimates come in 5-year bands, "
                            "not single years",
                            i);
            continue;
        }
        if (dim->age_banding != CC_AGE_BANDS_CUSTOM)
            return cc_errorf(errbuf, errlen, CC_EINVAL, "dimensions[%u].bands: unknown banding %d", i,
                        dim->age_banding);
        if (dim->n_age_bounds < 2 || dim->n_age_bounds > CC_QUERY_AGE_BOUNDS_CAP)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "dimensions[%u].bands: %u bounds; give 2 to %d lower bounds, from 0", i,
                        dim->n_age_bounds, CC_QUERY_AGE_BOUNDS_CAP);
        if (dim->age_bounds[0] != 0)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "dimensions[%u].bands[0]: the first band must start at age 0, not %u", i,
                        dim->age_bounds[0]);
        for (uint32_t b = 1; b < dim->n_age_bounds; b++) {
            if (dim->age_bounds[b] <= dim->age_bounds[b - 1])
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "dimensions[%u].bands[%u]: %u is not above the previous bound %u", i,
                            b, dim->age_bounds[b], dim->age_bounds[b - 1]);
            if (dim->age_bounds[b] > 120)
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "dimensions[%u].bands[%u]: %u is above 120", i, b,
                            dim->age_bounds[b]);
        }
        if (q->measure == CC_MEASURE_POPULATION && q->population_source == CC_POPULATION_ESTIMATE)
            for (uint32_t b = 0; b < dim->n_age_bounds; b++)
                if (dim->age_bounds[b] % 5 || dim->age_bounds[b] > 90)
                    return cc_errorf(errbuf, errlen, CC_EINVAL,
                                "dimensions[%u].bands[%u]: population estimates come in 5-year "
                                "bands to 90+, so bounds are multiples of 5 up to 90, not %u",
                                i, b, dim->age_bounds[b]);
    }
    return 0;
}

static int check_code(const struct cc_query_condition *c, uint32_t ci, uint32_t k, char *errbuf,
                      size_t errlen)
{
    const char *text = c->codes[k].text;
    int system = cc_query_code_system(c, k);
    unsigned systems = cc_query_code_systems(text);
    if (systems & (1u << system))
        return 0;
    if (systems) {
        char fits[48];
        cc_query_systems_text(systems, fits, sizeof fits);
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "filters.conditions[%u].codes[%u]: '%s' is %s but %s is %s", ci, k, text,
                    fits, c->system ? "the condition's system" : "the system it is listed under",
                    cc_query_system_title(system));
    }
    return cc_errorf(errbuf, errlen, CC_EINVAL,
                "filters.conditions[%u].codes[%u]: '%s' is not a valid %s code (%s)", ci, k, text,
                cc_query_system_title(system), system_shape(system));
}

static int check_condition(const struct cc_query *q, uint32_t ci,
                           const struct cc_query_limits *limits, char *errbuf, size_t errlen)
{
    const struct cc_query_condition *c = &q->filters.conditions[ci];
    const struct cc_query_filters *f = &q->filters;
    char field[64];
    snprintf(field, sizeof field, "filters.conditions[%u]", ci);
    if (c->n_codes > limits->max_codes_per_condition)
        return cc_errorf(errbuf, errlen, CC_ETOOBIG, "%s.codes: %u codes, the limit is %u", field,
                    c->n_codes, limits->max_codes_per_condition);
    if (c->n_codes && c->codelist[0])
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s: has both codes and a codelist (give one)",
                    field);
    for (uint32_t k = 0; k < c->n_codes; k++)
        if (!cc_query_system_name(cc_query_code_system(c, k)))
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s.system: codes need a system (snomed, icd10 or opcs4)", field);
    if (c->system && !cc_query_system_name(c->system))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s.system: unknown system %d", field, c->system);
    if (c->codelist[0] && !cc_codelists_name_valid(c->codelist))
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "%s.codelist: '%.32s' is not a codelist name (letters a-z, digits, '-', '_' "
                    "and '.')",
                    field, c->codelist);
    for (uint32_t k = 0; k < c->n_codes; k++) {
        int rc = check_code(c, ci, k, errbuf, errlen);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < k; j++)
            if (!strcmp(c->codes[j].text, c->codes[k].text) &&
                cc_query_code_system(c, j) == cc_query_code_system(c, k))
                return cc_errorf(errbuf, errlen, CC_EINVAL, "%s.codes[%u]: '%s' appears twice", field,
                            k, c->codes[k].text);
    }
    if (c->setting_mask & ~((1u << CC_SETTING_GP) | (1u << CC_SETTING_HOSPITAL) |
                            (1u << CC_SETTING_COMMUNITY)))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s.settings: unknown setting", field);
    if (c->role_mask & ~7u)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "%s.roles: unknown role", field);
    if (c->setting_mask && f->setting_mask && !(c->setting_mask & f->setting_mask))
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "%s.settings: none of them is in filters.settings, so nothing can match",
                    field);
    char range_field[96];
    snprintf(range_field, sizeof range_field, "%s.date_range", field);
    int rc = check_range(&c->date_range, range_field, errbuf, errlen);
    if (rc)
        return rc;
    if (c->date_range.present && f->date_range.present &&
        (c->date_range.to < f->date_range.from || c->date_range.from > f->date_range.to)) {
        char a[8], b[8], x[8], y[8];
        cc_query_month_format(c->date_range.from, a);
        cc_query_month_format(c->date_range.to, b);
        cc_query_month_format(f->date_range.from, x);
        cc_query_month_format(f->date_range.to, y);
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "%s: %s to %s lies outside filters.date_range (%s to %s), so nothing can "
                    "match",
                    range_field, a, b, x, y);
    }
    if (c->anchor.present) {
        const struct cc_query_anchor *a = &c->anchor;
        if (a->condition >= ci)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s.anchor.condition: %u is not an earlier condition (an anchor is one "
                        "of conditions 0 to %d)",
                        field, a->condition, (int)ci - 1);
        if (cc_query_condition_negated(f, a->condition))
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s.anchor.condition: condition %u is excluded, so it has no first date",
                        field, a->condition);
        if (a->from_days > a->to_days)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s.anchor: empty window (from_days %d after to_days %d)", field,
                        a->from_days, a->to_days);
        int64_t max_days = limits->max_anchor_days;
        if (a->from_days < -max_days || a->to_days > max_days)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s.anchor: the window reaches beyond %lld days", field,
                        (long long)max_days);
    }
    if (!c->n_codes && !c->codelist[0] && !c->setting_mask && !c->role_mask &&
        !c->date_range.present && !c->anchor.present)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "%s: matches every record; give codes, a codelist, settings, a date range "
                    "or an anchor",
                    field);
    return 0;
}

/* The kind of area a code is, from its prefix (ONS GSS codes): -1 if none. */
static int area_code_level(const char *code)
{
    if (strlen(code) != 9 || (code[0] != 'E' && code[0] != 'W') || !all_digits(code + 1, 8))
        return -1;
    int entity = (code[1] - '0') * 10 + (code[2] - '0');
    if (code[0] == 'E') {
        switch (entity) {
        case 1: return CC_AREA_LSOA;
        case 6: case 7: case 8: case 9: return CC_AREA_LAD;
        case 54: return CC_AREA_ICB;
        case 12: return CC_AREA_REGION;
        case 92: return CC_AREA_NATION;
        }
        return -1;
    }
    switch (entity) {
    case 1: return CC_AREA_LSOA;
    case 6: return CC_AREA_LAD;
    case 92: return CC_AREA_NATION;
    }
    return -1;
}

static int check_filters(const struct cc_query *q, const struct cc_query_limits *limits,
                         char *errbuf, size_t errlen)
{
    const struct cc_query_filters *f = &q->filters;
    if (f->n_conditions > limits->max_conditions)
        return cc_errorf(errbuf, errlen, CC_ETOOBIG,
                    "filters.conditions: %u conditions, the limit is %u", f->n_conditions,
                    limits->max_conditions);
    int rc = check_range(&f->date_range, "filters.date_range", errbuf, errlen);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < f->n_conditions; i++)
        if ((rc = check_condition(q, i, limits, errbuf, errlen)))
            return rc;
    if (f->age.present && (f->age.min_years > f->age.max_years || f->age.max_years > 120))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "filters.age: empty (min %u above max %u)",
                    f->age.min_years, f->age.max_years);
    uint32_t sexes = (1u << CC_SEX_NOT_KNOWN) | (1u << CC_SEX_MALE) | (1u << CC_SEX_FEMALE) |
                     (1u << CC_SEX_INDETERMINATE);
    if (f->sex_mask & ~sexes)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "filters.sex: unknown sex code");
    if (f->setting_mask & ~((1u << CC_SETTING_GP) | (1u << CC_SETTING_HOSPITAL) |
                            (1u << CC_SETTING_COMMUNITY)))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "filters.settings: unknown setting");
    if (f->areas.n_codes > limits->max_areas)
        return cc_errorf(errbuf, errlen, CC_ETOOBIG, "filters.areas.codes: %u areas, the limit is %u",
                    f->areas.n_codes, limits->max_areas);
    if (f->areas.n_codes && f->areas.level != CC_AREA_LSOA && f->areas.level != CC_AREA_LAD &&
        f->areas.level != CC_AREA_ICB && f->areas.level != CC_AREA_REGION)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "filters.areas.level: lsoa, lad, icb or region only");
    if (f->practices.n_codes > limits->max_practices)
        return cc_errorf(errbuf, errlen, CC_ETOOBIG,
                    "filters.practices: %u practices, the limit is %u", f->practices.n_codes,
                    limits->max_practices);
    for (uint32_t i = 0; i < f->practices.n_codes; i++) {
        const char *code = f->practices.codes[i];
        size_t len = strnlen(code, CC_PRACTICE_CODE_BYTES);
        bool ok = len > 0 && len < CC_PRACTICE_CODE_BYTES;
        for (size_t c = 0; ok && c < len; c++)
            ok = (code[c] >= 'A' && code[c] <= 'Z') || (code[c] >= '0' && code[c] <= '9');
        if (!ok)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.practices[%u]: not a practice code (1 to %d upper-case letters "
                        "and digits)",
                        i, CC_PRACTICE_CODE_BYTES - 1);
    }
    if (f->practices.n_codes && q->measure == CC_MEASURE_POPULATION &&
        q->population_source == CC_POPULATION_ESTIMATE)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "filters.practices: population estimates are by area, not by practice");
    for (uint32_t i = 0; i < f->areas.n_codes; i++) {
        const char *code = f->areas.codes[i];
        int level = area_code_level(code);
        if (level == f->areas.level)
            continue;
        if (level >= 0)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.areas.codes[%u]: '%s' is %s %s code but the level is %s", i,
                        code, level == CC_AREA_ICB ? "an" : "a", cc_query_area_level_name(level),
                        cc_query_area_level_name(f->areas.level));
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "filters.areas.codes[%u]: '%.12s' is not a %s code (%s)", i, code,
                    cc_query_area_level_name(f->areas.level),
                    f->areas.level == CC_AREA_LAD    ? "E06, E07, E08, E09 or W06, then 6 digits"
                    : f->areas.level == CC_AREA_ICB  ? "E54, then 6 digits"
                    : f->areas.level == CC_AREA_LSOA ? "E01 or W01, then 6 digits"
                                                     : "E12, then 6 digits");
    }
    return 0;
}

static int check_measure(const struct cc_query *q, char *errbuf, size_t errlen)
{
    const struct cc_query_filters *f = &q->filters;
    if (!cc_query_measure_name(q->measure))
        return cc_errorf(errbuf, errlen, CC_EINVAL, "measure: unknown measure %d", q->measure);
    if (q->measure == CC_MEASURE_POPULATION) {
        if (!cc_query_population_source_name(q->population_source))
            return cc_errorf(errbuf, errlen, CC_EINVAL, "population: unknown source %d",
                        q->population_source);
        if (f->n_conditions)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.conditions: the population measure takes no conditions (use the "
                        "persons measure)");
        if (f->date_range.present || f->setting_mask || q->events_of >= 0)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "%s: the population measure counts persons at one date (as_of); it "
                        "looks at no records",
                        f->date_range.present ? "filters.date_range"
                        : f->setting_mask     ? "filters.settings"
                                              : "events_of");
        if (q->population_source == CC_POPULATION_ESTIMATE) {
            if (f->sex_mask & ~((1u << CC_SEX_MALE) | (1u << CC_SEX_FEMALE)))
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "filters.sex: population estimates have male and female only");
            if (f->age.present &&
                (f->age.min_years % 5 || f->age.min_years > 90 ||
                 (f->age.max_years < 120 && (f->age.max_years % 5 != 4 || f->age.max_years > 89))))
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "filters.age: population estimates come in 5-year bands to 90+ "
                            "(min 0, 5, ... 90; max 4, 9, ... 89 or 120)");
        }
        return 0;
    }
    if (q->measure == CC_MEASURE_EVENTS && q->has_as_of)
        return cc_errorf(errbuf, errlen, CC_EINVAL,
                    "as_of: the events measure takes each person's age on the date of each "
                    "event, so as_of does not apply");
    if (q->events_of < -1)
        return cc_errorf(errbuf, errlen, CC_EINVAL, "events_of: %d is not a condition index",
                    q->events_of);
    if (q->events_of >= 0) {
        if ((uint32_t)q->events_of >= f->n_conditions)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "events_of: %d is not a condition (the query has %u)", q->events_of,
                        f->n_conditions);
        if (cc_query_condition_negated(f, (uint32_t)q->events_of))
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "events_of: condition %d is excluded, so it has no events to count",
                        q->events_of);
        if (q->measure == CC_MEASURE_PERSONS) {
            bool event_dimension = false;
            for (uint32_t i = 0; i < q->n_dimensions; i++)
                event_dimension |= is_event_dimension(q->dimensions[i].kind);
            if (!event_dimension)
                return cc_errorf(errbuf, errlen, CC_EINVAL,
                            "events_of: with the persons measure it says which records place a "
                            "person in a setting or period cell, and the query has no such "
                            "dimension");
        }
    }
    return 0;
}

int cc_query_validate(const struct cc_query *query, const struct cc_query_limits *limits,
                      const struct cc_query_extent *extent, char *errbuf, size_t errlen)
{
    struct cc_query_limits default_limits;
    struct cc_query_extent default_extent;
    if (!limits) {
        cc_query_limits_default(&default_limits);
        limits = &default_limits;
    }
    if (!extent) {
        cc_query_extent_default(&default_extent);
        extent = &default_extent;
    }
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (query->version != CC_QUERY_VERSION)
        return cc_errorf(errbuf, errlen, CC_EUNSUPPORTED, "v: version %u is not supported (this is %d)",
                    query->version, CC_QUERY_VERSION);
    /* the tree first: the other checks walk it */
    int rc = cc_query_combine_check(&query->filters, false, errbuf, errlen);
    if (!rc)
        rc = check_measure(query, errbuf, errlen);
    if (!rc)
        rc = check_dimensions(query, limits, errbuf, errlen);
    if (!rc)
        rc = check_filters(query, limits, errbuf, errlen);
    if (rc)
        return rc;
    uint64_t cells = cc_query_n_cells(query, extent);
    if (cells > limits->max_cells) {
        char n[32], limit[32];
        with_commas(cells, n);
        with_commas(limits->max_cells, limit);
        return cc_errorf(errbuf, errlen, CC_ETOOBIG,
                    "dimensions: too many cells: %u dimensions give %s cells, the limit is %s",
                    query->n_dimensions, n, limit);
    }
    return 0;
}

/* ---- binding to the store's vocabulary ---- */

static int compare_code(const void *key, const void *element)
{
    return strcmp(key, element);
}

int cc_query_bind(struct cc_query *query, const struct cc_store_columns *columns,
                  const struct cc_codelists *codelists, char *errbuf, size_t errlen)
{
    struct cc_query_filters *f = &query->filters;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (f->areas.n_codes && columns) {
        const char(*table)[CC_AREA_CODE_BYTES];
        uint32_t n_table;
        switch (f->areas.level) {
        case CC_AREA_LSOA: table = columns->lsoa_code; n_table = columns->n_lsoa; break;
        case CC_AREA_LAD: table = columns->lad_code; n_table = columns->n_lad; break;
        case CC_AREA_ICB: table = columns->icb_code; n_table = columns->n_icb; break;
        case CC_AREA_REGION: table = columns->region_code; n_table = columns->n_region; break;
        default:
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.areas.level: lsoa, lad, icb or region only");
        }
        uint32_t *index = cc_query_alloc(query, (size_t)f->areas.n_codes * sizeof *index);
        if (!index)
            return cc_errorf(errbuf, errlen, CC_ENOMEM, "filters.areas: out of memory");
        for (uint32_t i = 0; i < f->areas.n_codes; i++) {
            const char(*found)[CC_AREA_CODE_BYTES] =
                n_table ? bsearch(f->areas.codes[i], table, n_table, sizeof *table, compare_code)
                        : NULL;
            if (!found)
                return cc_errorf(errbuf, errlen, CC_ENOTFOUND,
                            "filters.areas.codes[%u]: unknown %s '%s' (not in the area lookup)",
                            i, cc_query_area_level_name(f->areas.level), f->areas.codes[i]);
            index[i] = (uint32_t)(found - table);
        }
        f->areas.index = index;
    }
    if (f->practices.n_codes && columns) {
        uint32_t *index = cc_query_alloc(query, (size_t)f->practices.n_codes * sizeof *index);
        if (!index)
            return cc_errorf(errbuf, errlen, CC_ENOMEM, "filters.practices: out of memory");
        for (uint32_t i = 0; i < f->practices.n_codes; i++) {
            const char(*found)[CC_PRACTICE_CODE_BYTES] =
                columns->n_practices
                    ? bsearch(f->practices.codes[i], columns->practice_code, columns->n_practices,
                              sizeof *columns->practice_code, compare_code)
                    : NULL;
            if (!found)
                return cc_errorf(errbuf, errlen, CC_ENOTFOUND,
                            "filters.practices[%u]: unknown practice '%s'", i,
                            f->practices.codes[i]);
            index[i] = (uint32_t)(found - columns->practice_code);
        }
        f->practices.index = index;
    }
    for (uint32_t i = 0; i < f->n_conditions; i++) {
        struct cc_query_condition *c = &f->conditions[i];
        if (!c->codelist[0])
            continue;
        const struct cc_codelist *list = codelists ? cc_codelists_find(codelists, c->codelist)
                                                   : NULL;
        if (!list)
            return cc_errorf(errbuf, errlen, CC_ENOTFOUND,
                        "filters.conditions[%u].codelist: unknown codelist '%.32s'%s", i,
                        c->codelist,
                        codelists && cc_codelists_count(codelists) ? ""
                                                                   : " (no codelists are loaded)");
        if (c->system && !list->system)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.conditions[%u].codelist: '%.32s' holds codes of several "
                        "systems; leave \"system\" out",
                        i, c->codelist);
        if (c->system && c->system != list->system)
            return cc_errorf(errbuf, errlen, CC_EINVAL,
                        "filters.conditions[%u].codelist: '%.32s' is a %s list but the "
                        "condition's system is %s",
                        i, c->codelist, cc_query_system_title(list->system),
                        cc_query_system_title(c->system));
        c->codelist_ref = list;
    }
    return 0;
}
