/*
 * cc_query.c: the lifetime of a query (its one arena), copying and comparing
 * queries, the list of cohort restrictions, the names of enum values, months,
 * and the error writer the module's codec files share.
 *
 * The arena is a chain of malloc'd blocks; allocation bumps a pointer and
 * nothing is freed until cc_query_free() frees every block at once. The
 * query struct itself is the arena's first allocation, so a query is one
 * object to the caller.
 *
 * Must never: hold anything about a person (see cc_query.h).
 */
#include "cc_query.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_query_internal.h"

#define ARENA_BLOCK_BYTES 4096
#define ARENA_ALIGN alignof(max_align_t)

struct arena_block {
    struct arena_block *next;
    size_t used, capacity;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct arena_block *head; /* the block being filled; older ones follow */
};

static void *arena_alloc(struct arena *arena, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t rounded = (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    struct arena_block *block = arena->head;
    if (!block || block->capacity - block->used < rounded) {
        size_t capacity = rounded > ARENA_BLOCK_BYTES ? rounded : ARENA_BLOCK_BYTES;
        block = malloc(sizeof *block + capacity);
        if (!block)
            return NULL;
        block->used = 0;
        block->capacity = capacity;
        /* A large one-off block goes behind the head, so the head keeps its
         * free space for the small allocations that follow. */
        if (arena->head && rounded > ARENA_BLOCK_BYTES) {
            block->next = arena->head->next;
            arena->head->next = block;
        } else {
            block->next = arena->head;
            arena->head = block;
        }
    }
    void *p = block->data + block->used;
    block->used += rounded;
    memset(p, 0, bytes);
    return p;
}

static void arena_free(struct arena *arena)
{
    struct arena_block *block = arena->head;
    while (block) {
        struct arena_block *next = block->next;
        free(block);
        block = next;
    }
    free(arena);
}

void cc_query_limits_default(struct cc_query_limits *limits)
{
    limits->max_query_bytes = 65536;
    limits->max_nesting_depth = 12;
    limits->max_dimensions = 4;
    limits->max_cells = 100000;
    limits->max_conditions = 16;
    limits->max_codes_per_condition = 500;
    limits->max_areas = 500;
    limits->max_practices = 500;
    limits->max_anchor_days = 3660;
}

const struct cc_query_limits *cc_query_limits_or_default(const struct cc_query_limits *limits,
                                                         struct cc_query_limits *defaults)
{
    if (limits)
        return limits;
    cc_query_limits_default(defaults);
    return defaults;
}

void cc_query_extent_default(struct cc_query_extent *extent)
{
    extent->n_region = 9;
    extent->n_icb = 42;
    extent->n_lad = 296;
    extent->n_practices = 6500;
    extent->n_lsoa = 33755; /* England's 2021 LSOAs */
    extent->first_month = cc_query_month(2000, 1);
    extent->last_month = cc_query_month_of_day(cc_day_today());
}

void cc_query_extent_from_store(const struct cc_store_columns *columns,
                                struct cc_query_extent *extent)
{
    cc_query_extent_default(extent);
    extent->n_region = columns->n_region;
    extent->n_icb = columns->n_icb;
    extent->n_lad = columns->n_lad;
    extent->n_practices = columns->n_practices;
    extent->n_lsoa = columns->n_lsoa;
}

int cc_query_new(struct cc_query **out)
{
    *out = NULL;
    struct arena *arena = calloc(1, sizeof *arena);
    if (!arena)
        return CC_ENOMEM;
    struct cc_query *query = arena_alloc(arena, sizeof *query);
    if (!query) {
        arena_free(arena);
        return CC_ENOMEM;
    }
    query->version = CC_QUERY_VERSION;
    query->measure = CC_MEASURE_PERSONS;
    query->population_source = CC_POPULATION_REGISTERED;
    query->events_of = -1;
    query->filters.areas.level = CC_AREA_LAD;
    query->arena_ = arena;
    *out = query;
    return 0;
}

void *cc_query_alloc(struct cc_query *query, size_t bytes)
{
    return arena_alloc(query->arena_, bytes);
}

void cc_query_free(struct cc_query *query)
{
    if (query)
        arena_free(query->arena_);
}

/* Copies n elements of size bytes into the arena of query; *to gets NULL
 * for n == 0. Returns 0 or CC_ENOMEM. */
static int copy_array(struct cc_query *query, void *to, const void *from, size_t n, size_t size)
{
    void *copy = NULL;
    if (n) {
        if (n > SIZE_MAX / size)
            return CC_ENOMEM;
        copy = cc_query_alloc(query, n * size);
        if (!copy)
            return CC_ENOMEM;
        memcpy(copy, from, n * size);
    }
    memcpy(to, &copy, sizeof copy);
    return 0;
}

int cc_query_clone(const struct cc_query *query, struct cc_query **out)
{
    struct cc_query *copy = NULL;
    int rc = cc_query_new(&copy);
    if (rc)
        goto fail;
    void *arena = copy->arena_;
    *copy = *query;
    copy->arena_ = arena;
    rc = copy_array(copy, &copy->dimensions, query->dimensions, query->n_dimensions,
                    sizeof *query->dimensions);
    if (rc)
        goto fail;
    struct cc_query_filters *filters = &copy->filters;
    rc = copy_array(copy, &filters->conditions, query->filters.conditions,
                    query->filters.n_conditions, sizeof *filters->conditions);
    if (rc)
        goto fail;
    for (uint32_t i = 0; i < filters->n_conditions; i++) {
        struct cc_query_condition *condition = &filters->conditions[i];
        condition->codelist_ref = NULL;
        rc = copy_array(copy, &condition->codes, query->filters.conditions[i].codes,
                        condition->n_codes, sizeof *condition->codes);
        if (rc)
            goto fail;
    }
    rc = cc_query_combine_clone(copy, &query->filters);
    if (rc)
        goto fail;
    filters->practices.index = NULL;
    rc = copy_array(copy, &filters->practices.codes, query->filters.practices.codes,
                    filters->practices.n_codes, sizeof *filters->practices.codes);
    if (rc)
        goto fail;
    filters->areas.index = NULL;
    rc = copy_array(copy, &filters->areas.codes, query->filters.areas.codes,
                    filters->areas.n_codes, sizeof *filters->areas.codes);
    if (rc)
        goto fail;
    *out = copy;
    return 0;
fail:
    cc_query_free(copy);
    *out = NULL;
    return rc;
}

static bool months_equal(const struct cc_query_months *a, const struct cc_query_months *b)
{
    return a->present == b->present && (!a->present || (a->from == b->from && a->to == b->to));
}

static bool dimension_equal(const struct cc_query_dimension *a, const struct cc_query_dimension *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind != CC_DIM_AGE_BAND)
        return true;
    if (a->age_banding != b->age_banding)
        return false;
    if (a->age_banding != CC_AGE_BANDS_CUSTOM)
        return true;
    return a->n_age_bounds == b->n_age_bounds &&
           !memcmp(a->age_bounds, b->age_bounds, a->n_age_bounds);
}

static bool condition_equal(const struct cc_query_condition *a, const struct cc_query_condition *b)
{
    if (a->system != b->system || a->n_codes != b->n_codes ||
        strcmp(a->codelist, b->codelist) || a->setting_mask != b->setting_mask ||
        a->role_mask != b->role_mask || a->exclude != b->exclude ||
        !months_equal(&a->date_range, &b->date_range) || a->anchor.present != b->anchor.present)
        return false;
    if (a->anchor.present &&
        (a->anchor.condition != b->anchor.condition || a->anchor.from_days != b->anchor.from_days ||
         a->anchor.to_days != b->anchor.to_days))
        return false;
    for (uint32_t i = 0; i < a->n_codes; i++)
        if (strcmp(a->codes[i].text, b->codes[i].text) ||
            cc_query_code_system(a, i) != cc_query_code_system(b, i))
            return false;
    return true;
}

bool cc_query_equal(const struct cc_query *a, const struct cc_query *b)
{
    if (a->version != b->version || a->measure != b->measure ||
        a->population_source != b->population_source || a->events_of != b->events_of ||
        a->has_as_of != b->has_as_of || (a->has_as_of && a->as_of != b->as_of) ||
        a->n_dimensions != b->n_dimensions || a->margins != b->margins)
        return false;
    for (uint32_t i = 0; i < a->n_dimensions; i++)
        if (!dimension_equal(&a->dimensions[i], &b->dimensions[i]))
            return false;
    const struct cc_query_filters *fa = &a->filters, *fb = &b->filters;
    if (fa->n_conditions != fb->n_conditions || !months_equal(&fa->date_range, &fb->date_range) ||
        fa->age.present != fb->age.present ||
        (fa->age.present &&
         (fa->age.min_years != fb->age.min_years || fa->age.max_years != fb->age.max_years)) ||
        fa->sex_mask != fb->sex_mask || fa->setting_mask != fb->setting_mask ||
        fa->areas.n_codes != fb->areas.n_codes ||
        (fa->areas.n_codes && fa->areas.level != fb->areas.level))
        return false;
    for (uint32_t i = 0; i < fa->n_conditions; i++)
        if (!condition_equal(&fa->conditions[i], &fb->conditions[i]))
            return false;
    if (!cc_query_combine_equal(fa, fb))
        return false;
    for (uint32_t i = 0; i < fa->areas.n_codes; i++)
        if (strcmp(fa->areas.codes[i], fb->areas.codes[i]))
            return false;
    if (fa->practices.n_codes != fb->practices.n_codes)
        return false;
    for (uint32_t i = 0; i < fa->practices.n_codes; i++)
        if (strcmp(fa->practices.codes[i], fb->practices.codes[i]))
            return false;
    return true;
}

uint32_t cc_query_restrictions(const struct cc_query *query, struct cc_query_restriction *out,
                               uint32_t cap)
{
    uint32_t n = 0;
#define PUSH_(k, c)                                                                                \
    do {                                                                                           \
        if (n < cap) {                                                                             \
            out[n].kind = (k);                                                                     \
            out[n].condition = (c);                                                                \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    const struct cc_query_filters *filters = &query->filters;
    for (uint32_t i = 0; i < filters->n_conditions; i++)
        PUSH_(CC_RESTRICT_CONDITION, i);
    if (filters->date_range.present)
        PUSH_(CC_RESTRICT_DATE_RANGE, 0);
    if (filters->age.present)
        PUSH_(CC_RESTRICT_AGE, 0);
    if (filters->sex_mask)
        PUSH_(CC_RESTRICT_SEX, 0);
    if (filters->setting_mask)
        PUSH_(CC_RESTRICT_SETTINGS, 0);
    if (filters->areas.n_codes)
        PUSH_(CC_RESTRICT_AREAS, 0);
    if (filters->practices.n_codes)
        PUSH_(CC_RESTRICT_PRACTICES, 0);
#undef PUSH_
    return n;
}

/* ---- names ---- */

static const char *name_in(const char *const *names, size_t n_names, int value)
{
    if (value < 0 || (size_t)value >= n_names)
        return NULL;
    return names[value];
}

#define NAME_IN_(names, value) name_in((names), sizeof(names) / sizeof((names)[0]), (value))

const char *cc_query_measure_name(int measure)
{
    static const char *const names[] = {NULL, "persons", "events", "population"};
    return NAME_IN_(names, measure);
}

const char *cc_query_dimension_name(int kind)
{
    static const char *const names[] = {NULL,  "region",   "icb",     "lad",
                                        "practice", "age_band", "sex", "setting",
                                        "year", "quarter", "month", "lsoa"};
    return NAME_IN_(names, kind);
}

const char *cc_query_node_op_name(int op)
{
    static const char *const names[] = {NULL, "and", "or", "not"};
    return NAME_IN_(names, op);
}

const char *cc_query_setting_name(int setting)
{
    static const char *const names[] = {NULL, "gp", "hospital", "community"};
    return NAME_IN_(names, setting);
}

const char *cc_query_system_name(int system)
{
    static const char *const names[] = {NULL, "snomed", "icd10", "opcs4"};
    return NAME_IN_(names, system);
}

const char *cc_query_system_title(int system)
{
    static const char *const names[] = {NULL, "SNOMED CT", "ICD-10", "OPCS-4"};
    return NAME_IN_(names, system);
}

void cc_query_systems_text(unsigned systems, char *buf, size_t len)
{
    if (len == 0)
        return;
    buf[0] = '\0';
    size_t used = 0;
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++) {
        if (!(systems & (1u << s)))
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? " or " : "",
                         cc_query_system_title(s));
        if (n < 0 || (size_t)n >= len - used)
            return;
        used += (size_t)n;
    }
}

const char *cc_query_sex_name(int sex)
{
    static const char *const names[] = {"not_known", "male", "female", NULL, NULL,
                                        NULL,        NULL,   NULL,     NULL, "indeterminate"};
    return NAME_IN_(names, sex);
}

const char *cc_query_role_name(int role)
{
    static const char *const names[] = {"primary", "secondary", "procedure"};
    return NAME_IN_(names, role);
}

const char *cc_query_area_level_name(int level)
{
    static const char *const names[] = {"lsoa", "lad", "icb", "region", "nation"};
    return NAME_IN_(names, level);
}

const char *cc_query_population_source_name(int source)
{
    static const char *const names[] = {NULL, "registered", "estimate"};
    return NAME_IN_(names, source);
}

/* ---- months ---- */

cc_month cc_query_month(int year, int month)
{
    return (cc_month)(year * 12 + (month - 1));
}

int cc_query_month_parse(const char *s, size_t len, cc_month *out)
{
    if (len != 7 || s[4] != '-')
        return CC_EPARSE;
    int year = 0, month = 0;
    for (size_t i = 0; i < 7; i++) {
        if (i == 4)
            continue;
        if (s[i] < '0' || s[i] > '9')
            return CC_EPARSE;
        if (i < 4)
            year = year * 10 + (s[i] - '0');
        else
            month = month * 10 + (s[i] - '0');
    }
    if (month < 1 || month > 12)
        return CC_ERANGE;
    cc_month m = cc_query_month(year, month);
    if (m < cc_query_month(1900, 1) || m > cc_query_month(2079, 6))
        return CC_ERANGE;
    *out = m;
    return 0;
}

void cc_query_month_format(cc_month month, char buf[8])
{
    int year = month / 12, number = month % 12 + 1;
    if (month < 0 || year > 9999) {
        memcpy(buf, "0000-00", 8);
        return;
    }
    buf[0] = (char)('0' + year / 1000);
    buf[1] = (char)('0' + year / 100 % 10);
    buf[2] = (char)('0' + year / 10 % 10);
    buf[3] = (char)('0' + year % 10);
    buf[4] = '-';
    buf[5] = (char)('0' + number / 10);
    buf[6] = (char)('0' + number % 10);
    buf[7] = '\0';
}

cc_day cc_query_month_first_day(cc_month month)
{
    if (month < cc_query_month(1900, 1))
        return CC_DAY_MIN;
    if (month > cc_query_month(2079, 6))
        return CC_DAY_MAX;
    cc_day day = cc_day_from_ymd(month / 12, month % 12 + 1, 1);
    return day < 0 ? CC_DAY_MAX : day;
}

cc_day cc_query_month_last_day(cc_month month)
{
    if (month >= cc_query_month(2079, 6))
        return CC_DAY_MAX;
    if (month < cc_query_month(1900, 1))
        return CC_DAY_MIN;
    return cc_query_month_first_day(month + 1) - 1;
}

cc_month cc_query_month_of_day(cc_day day)
{
    int year, month, day_of_month;
    cc_day_to_ymd(day, &year, &month, &day_of_month);
    return cc_query_month(year, month);
}

/* ---- errors (cc_query_internal.h) ---- */

int cc_query_vfail(char *errbuf, size_t errlen, int rc, const char *field, const char *fmt,
                   va_list ap)
{
    if (!errbuf || !errlen)
        return rc;
    int n = snprintf(errbuf, errlen, "%s: ", field && field[0] ? field : "query");
    if (n < 0 || (size_t)n >= errlen)
        return rc;
    vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
    return rc;
}

int cc_query_fail(char *errbuf, size_t errlen, int rc, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cc_query_vfail(errbuf, errlen, rc, field, fmt, ap);
    va_end(ap);
    return rc;
}
