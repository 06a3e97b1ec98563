/*
 * cc_query.h: the query model: what a researcher or planner may ask, as a
 * plain C value, its msgpack (and JSON) codec, and its validation.
 *
 * A query is a measure (distinct persons, events, or the population
 * denominator), up to a few group-by dimensions, and filters: clinical
 * conditions that combine per person (AND, and NOT through `exclude`), a
 * month range, an age range, sexes, care settings and a set of areas at one
 * level. docs/query-model.md documents every key of the wire map.
 *
 * Lifetime: a query and everything it points to live in one arena owned by
 * the query and freed by one cc_query_free() call. The struct is open and
 * plain (arrays with counts, fixed-size strings), so the engine reads it
 * directly; only cc_query_alloc() may allocate memory that the arrays point
 * to, so the one-arena rule holds.
 *
 * The path of a request: cc_query_decode() (shape, types, names, limits on
 * sizes) -> cc_query_validate() (meaning: code formats and systems, date
 * ranges, anchors, cells) -> cc_query_bind() (the store's vocabulary: area
 * codes and codelist names exist; fills the resolved fields). The client runs
 * the first two before sending, the server all three.
 *
 * Stable condition indices: filters.conditions[i] keeps index i on the wire,
 * through the codec and in the engine, so the disclosure layer can compute
 * the cohort with and without each condition (DESIGN, Disclosure control 8-10)
 * and report which one was refused. cc_query_restrictions() lists every
 * cohort restriction of a query (conditions, date range, age, sex, settings,
 * areas) in a fixed order.
 *
 * Must never: hold or echo anything about a person. A query names codes,
 * areas and months only; error messages name the field and the reason.
 */
#ifndef CC_QUERY_H
#define CC_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cc_date.h"
#include "cc_model.h"
#include "cc_store.h"

#define CC_QUERY_VERSION 1 /* the "v" key of the wire map */

/* Hard caps on the compile-time sizes of a query; the configurable limits in
 * struct cc_query_limits must not exceed them. */
#define CC_QUERY_DIMENSIONS_CAP 8
#define CC_QUERY_AGE_BOUNDS_CAP 32
#define CC_CODELIST_NAME_BYTES 64 /* a codelist name and its NUL */

/*
 * A calendar month: year * 12 + (month - 1). Researchers' dates are months at
 * finest (DESIGN, Disclosure control 8), so every date in a query is one.
 */
typedef int32_t cc_month;

struct cc_codelist;  /* cc_codelist.h: one named codelist */
struct cc_codelists; /* cc_codelist.h: the registry of codelists */

/* The measure: what each cell counts. */
enum cc_query_measure {
    CC_MEASURE_PERSONS = 1,    /* distinct persons in the cohort */
    CC_MEASURE_EVENTS = 2,     /* records (events) of persons in the cohort */
    CC_MEASURE_POPULATION = 3, /* the population denominator (see population_source) */
};

/* Where the population measure comes from. */
enum cc_query_population_source {
    CC_POPULATION_REGISTERED = 1, /* opted-in persons in the store (the default) */
    CC_POPULATION_ESTIMATE = 2,   /* ONS estimates by LSOA, sex, 5-year band */
};

/* Group-by dimensions. */
enum cc_query_dimension_kind {
    CC_DIM_REGION = 1,
    CC_DIM_ICB = 2,
    CC_DIM_LAD = 3,      /* local authority district */
    CC_DIM_PRACTICE = 4, /* GP practice of registration */
    CC_DIM_AGE_BAND = 5,
    CC_DIM_SEX = 6,
    CC_DIM_SETTING = 7, /* care setting of the record */
    CC_DIM_YEAR = 8,    /* calendar year of the record */
    CC_DIM_QUARTER = 9, /* calendar quarter of the record (year and quarter) */
    CC_DIM_MONTH = 10,  /* calendar month of the record */
    CC_DIM_LSOA = 11,   /* lower layer super output area of residence */
};

enum cc_query_age_banding {
    CC_AGE_BANDS_5Y = 1,     /* 0-4, 5-9, ..., 85-89, 90+ (19 bands, as ONS) */
    CC_AGE_BANDS_10Y = 2,    /* 0-9, ..., 80-89, 90+ (10 bands) */
    CC_AGE_BANDS_CUSTOM = 3, /* age_bounds: ascending lower bounds from 0 */
    CC_AGE_BANDS_1Y = 4,     /* single years 0, 1, ..., 119, then 120+ (121 bands) */
};

/* An inclusive range of months; absent unless present is true. */
struct cc_query_months {
    bool present;
    cc_month from, to;
};

struct cc_query_dimension {
    uint8_t kind;        /* enum cc_query_dimension_kind */
    uint8_t age_banding; /* CC_DIM_AGE_BAND only: enum cc_query_age_banding */
    uint8_t n_age_bounds;
    /* CC_AGE_BANDS_CUSTOM: band i is [age_bounds[i], age_bounds[i + 1]) in
     * whole years and the last band is open; age_bounds[0] == 0. */
    uint8_t age_bounds[CC_QUERY_AGE_BOUNDS_CAP];
};

/* A clinical code as written in the query, normalised (upper case, no dot,
 * and for ICD-10 no filler: "I10X" is "I10", as the store holds it).
 * ICD-10 and OPCS-4 codes match every stored code they are a prefix of
 * ("E11" matches E11, E110 ... E119); SNOMED CT concept ids match exactly
 * (their ids carry no hierarchy: use a codelist for descendants). */
struct cc_query_code {
    char text[CC_CODE_TEXT_BYTES];
    /* enum cc_code_system: a code matches codes of its own system only; 0:
     * the condition's (or the codelist's) system. The decoder sets it. */
    uint8_t system;
};


/* "Within N days of the first date of another condition": a record matches
 * only if its date d satisfies first + from_days <= d <= first + to_days,
 * where first is the date of the person's earliest record matching condition
 * `condition` (which must come earlier in the list and not be excluded). */
struct cc_query_anchor {
    bool present;
    uint32_t condition;
    int32_t from_days, to_days;
};

/*
 * One condition: a person meets it if they have at least one record that
 * matches all its parts (codes or codelist, settings, roles, date range,
 * anchor), and is within filters.date_range and filters.setting_mask; with
 * exclude set, a person meets it if they have none. A condition with no codes
 * and no codelist matches any record of its settings and date range. Codes
 * may be of several systems: each matches the records that carry a code of
 * its own system (a SNOMED CT code the GP and community records, ICD-10 and
 * OPCS-4 codes the hospital episodes), and a record matches if any code does.
 */
struct cc_query_condition {
    /* enum cc_code_system shared by every code; 0 when the codes are of
     * several systems (each code says its own). For a codelist, the system
     * the query gave (0: none; cc_query_bind() checks it). */
    uint8_t system;
    uint32_t n_codes;
    /* [n_codes], in the query's arena, grouped by system in enum order (the
     * order of each system's codes is the query's) */
    struct cc_query_code *codes;
    char codelist[CC_CODELIST_NAME_BYTES]; /* "" when none; else n_codes == 0 */
    uint8_t setting_mask;                  /* bits 1u << enum cc_setting; 0: any */
    uint8_t role_mask;                     /* bits 1u << enum cc_code_role; 0: any */
    struct cc_query_months date_range;
    struct cc_query_anchor anchor;
    bool exclude; /* "but not": persons with no matching record */

    /* Resolved by cc_query_bind(); NULL before. */
    const struct cc_codelist *codelist_ref;
};

/* The system of code i of condition c: its own, else the condition's. */
static inline int cc_query_code_system(const struct cc_query_condition *c, uint32_t i)
{
    return c->codes[i].system ? c->codes[i].system : c->system;
}

struct cc_query_age_range {
    bool present;
    uint8_t min_years, max_years; /* inclusive */
};

/* A set of areas at one level; absent when n_codes == 0. */
struct cc_query_areas {
    uint8_t level; /* enum cc_area_level: CC_AREA_LSOA, _LAD, _ICB or _REGION */
    uint32_t n_codes;
    char (*codes)[CC_AREA_CODE_BYTES]; /* [n_codes], sorted, unique */
    /* Resolved by cc_query_bind(): the index of codes[i] in the store's
     * column of that level; NULL before. */
    uint32_t *index;
};

/* How conditions combine: a node of the tree in filters.nodes. */
enum cc_query_node_op {
    CC_NODE_CONDITION = 0, /* a leaf: filters.conditions[condition] */
    CC_NODE_AND = 1,       /* every child holds (2 or more children) */
    CC_NODE_OR = 2,        /* at least one child holds (2 or more children) */
    CC_NODE_NOT = 3,       /* the one child does not hold */
};

/* The most levels of and/or/not in a tree (a leaf under them is not a level). */
#define CC_QUERY_COMBINE_DEPTH_CAP 4

struct cc_query_node {
    uint8_t op;         /* enum cc_query_node_op */
    uint32_t condition; /* CC_NODE_CONDITION: the condition's index */
    uint32_t n_children;
    uint32_t *children; /* [n_children]: indices into filters.nodes, in the query's arena */
};

/* A set of GP practices (ODS codes); absent when n_codes == 0. */
struct cc_query_practices {
    uint32_t n_codes;
    char (*codes)[CC_PRACTICE_CODE_BYTES]; /* [n_codes], upper case, sorted, unique */
    /* Resolved by cc_query_bind(): the index of codes[i] in the store's
     * practice column; NULL before. */
    uint32_t *index;
};

struct cc_query_filters {
    uint32_t n_conditions;
    struct cc_query_condition *conditions; /* [n_conditions] */
    /*
     * How the conditions combine into the cohort: a tree whose root is
     * nodes[0] and whose leaves name every condition exactly once (so each
     * condition keeps its index and can be left out: see
     * cc_query_restrictions()). n_nodes == 0: every condition must hold (AND),
     * each negated by its own exclude. In a tree, exclude is false (the
     * decoder moves it into a NOT node).
     */
    uint32_t n_nodes;
    struct cc_query_node *nodes; /* [n_nodes] */
    struct cc_query_months date_range;     /* every record the query looks at */
    struct cc_query_age_range age;
    uint16_t sex_mask;    /* bits 1u << enum cc_sex; 0: any */
    uint8_t setting_mask; /* bits 1u << enum cc_setting; every record; 0: any */
    struct cc_query_areas areas;
    struct cc_query_practices practices; /* persons registered at these practices */
};

/*
 * A query. Ages: for the events measure, at the date of each event; for the
 * persons and population measures, on the first day of as_of (default: the
 * month after filters.date_range.to; without either, the engine's reference
 * date for the data version).
 */
struct cc_query {
    uint32_t version; /* CC_QUERY_VERSION */
    uint8_t measure;  /* enum cc_query_measure */
    uint8_t population_source; /* enum cc_query_population_source (population only) */
    /* The events measure counts the records matching filters.conditions
     * [events_of] (so its codes, settings, roles, date range and anchor say which
     * events count); -1: every record within filters.date_range and
     * filters.setting_mask. For the persons measure with a setting or period
     * dimension, a person is counted in each cell in which they have such a
     * record. */
    int32_t events_of;
    bool has_as_of;
    cc_month as_of;
    uint32_t n_dimensions;
    struct cc_query_dimension *dimensions; /* [n_dimensions] */
    /* Margins: every total of the dimensions (each dimension's values summed
     * out, in every combination, the grand total included) comes with the
     * table, each as a cell (internal/cc_exec.h says how a result holds
     * them). */
    bool margins;
    struct cc_query_filters filters;

    void *arena_; /* private: the arena everything above lives in */
};

/*
 * Limits. Every bound a decoder or validator applies, with its default.
 */
struct cc_query_limits {
    uint32_t max_query_bytes;         /* 65536: encoded size */
    uint32_t max_nesting_depth;       /* 12: msgpack/JSON container depth */
    uint32_t max_dimensions;          /* 4 (at most CC_QUERY_DIMENSIONS_CAP) */
    uint64_t max_cells;               /* 100000: product of dimension sizes */
    uint32_t max_conditions;          /* 16 */
    uint32_t max_codes_per_condition; /* 500 */
    uint32_t max_areas;               /* 500 */
    uint32_t max_practices;           /* 500: filters.practices */
    uint32_t max_anchor_days;         /* 3660: |from_days|, |to_days| */
};

/* Fills limits with the defaults above. */
void cc_query_limits_default(struct cc_query_limits *limits);

/*
 * The extent of the data, for counting cells: the number of areas and
 * practices and the months covered. cc_query_extent_default() gives
 * England's (9 regions, 42 ICBs, 296 districts, 6,500 practices, months
 * 2000-01 to this month); the server uses the store's.
 */
struct cc_query_extent {
    uint32_t n_region, n_icb, n_lad, n_practices, n_lsoa;
    cc_month first_month, last_month;
};
void cc_query_extent_default(struct cc_query_extent *extent);

/* The areas and practices of a store; months are left as the default. */
void cc_query_extent_from_store(const struct cc_store_columns *columns,
                                struct cc_query_extent *extent);

/* ---- lifetime (cc_query.c) ---- */

/* Makes an empty query in a new arena: version 1, measure persons, no
 * dimensions, no filters, events_of -1. The caller frees with
 * cc_query_free(). Returns 0 or CC_ENOMEM. */
int cc_query_new(struct cc_query **out);

/* Allocates bytes of zeroed memory in the query's arena, aligned for any
 * type; freed with the query. NULL when out of memory. */
void *cc_query_alloc(struct cc_query *query, size_t bytes);

/* Frees a query and its arena (NULL is allowed). */
void cc_query_free(struct cc_query *query);

/* Makes a deep copy in a new arena (resolved fields are not copied). The
 * caller frees with cc_query_free(). Returns 0 or CC_ENOMEM. */
int cc_query_clone(const struct cc_query *query, struct cc_query **out);

/* True if two queries ask the same thing (field by field, ignoring the
 * resolved fields). */
bool cc_query_equal(const struct cc_query *a, const struct cc_query *b);

/* Kinds of cohort restriction, in the order cc_query_restrictions() lists them. */
enum cc_query_restriction_kind {
    CC_RESTRICT_CONDITION = 1, /* filters.conditions[condition] */
    CC_RESTRICT_DATE_RANGE = 2, /* filters.date_range */
    CC_RESTRICT_AGE = 3,       /* filters.age */
    CC_RESTRICT_SEX = 4,       /* filters.sex_mask */
    CC_RESTRICT_SETTINGS = 5,  /* filters.setting_mask */
    CC_RESTRICT_AREAS = 6,     /* filters.areas */
    CC_RESTRICT_PRACTICES = 7, /* filters.practices */
};
struct cc_query_restriction {
    uint8_t kind; /* enum cc_query_restriction_kind */
    uint32_t condition; /* CC_RESTRICT_CONDITION: the condition's index */
};

/* True if condition i counts against a person: negated by an odd number of
 * NOTs in filters.nodes, or, without a tree, its exclude flag. Such a
 * condition has no first date to anchor to and no events to count. */
bool cc_query_condition_negated(const struct cc_query_filters *filters, uint32_t condition);

/* Lists the query's cohort restrictions: every condition in index order,
 * then each other filter that is present. Writes at most cap entries and
 * returns how many there are (at most max_conditions + 6). */
uint32_t cc_query_restrictions(const struct cc_query *query, struct cc_query_restriction *out,
                               uint32_t cap);

/* The wire names of enum values ("persons", "lad", "hospital", "icd10",
 * "female", "primary", "registered"); NULL for a value not in the enum. */
const char *cc_query_measure_name(int measure);
const char *cc_query_dimension_name(int kind);
const char *cc_query_setting_name(int setting);
const char *cc_query_system_name(int system);
const char *cc_query_sex_name(int sex);
const char *cc_query_role_name(int role);
const char *cc_query_area_level_name(int level);
const char *cc_query_population_source_name(int source);
const char *cc_query_node_op_name(int op); /* "and", "or", "not"; NULL for a condition */

/* The display name of a code system: "SNOMED CT", "ICD-10", "OPCS-4". */
const char *cc_query_system_title(int system);

/* Writes the display names of the systems in a mask of 1u << system bits to
 * buf (NUL-terminated, cut short to fit len): "ICD-10", "ICD-10 or OPCS-4". */
void cc_query_systems_text(unsigned systems, char *buf, size_t len);

/* Months. cc_query_month(2024, 3) is March 2024. */
cc_month cc_query_month(int year, int month);
/* Parses exactly "YYYY-MM" (len bytes). 0, or CC_EPARSE for another shape
 * (including a day date "YYYY-MM-DD"), CC_ERANGE for a month outside
 * 1900-01..2079-06. */
int cc_query_month_parse(const char *s, size_t len, cc_month *out);
/* Writes "YYYY-MM" and a NUL. */
void cc_query_month_format(cc_month month, char buf[8]);
/* The first and last day of a month, as cc_day (clamped to CC_DAY_MAX). */
cc_day cc_query_month_first_day(cc_month month);
cc_day cc_query_month_last_day(cc_month month);
/* The month a day falls in. */
cc_month cc_query_month_of_day(cc_day day);

/* ---- codec (cc_query_decode.c, cc_query_encode.c, cc_query_json.c) ---- */

/*
 * Decodes a query from msgpack bytes. Checks len against
 * limits->max_query_bytes before anything is allocated, bounds nesting and
 * every array, rejects unknown keys and wrong types, and normalises codes.
 * limits may be NULL (defaults). On success *out owns its memory (free with
 * cc_query_free()). Errors: CC_EPARSE (malformed, wrong type, unknown key or
 * name), CC_ETOOBIG (a limit), CC_EUNSUPPORTED (a "v" other than 1),
 * CC_ENOMEM; errbuf gets "field: reason".
 */
int cc_query_decode(const char *data, size_t len, const struct cc_query_limits *limits,
                    struct cc_query **out, char *errbuf, size_t errlen);

/* As cc_query_decode(), from an object already unpacked (a query embedded
 * in a request). The query copies what it needs; obj may be freed after. */
int cc_query_decode_object(const msgpack_object *obj, const struct cc_query_limits *limits,
                           struct cc_query **out, char *errbuf, size_t errlen);

/* Decodes the JSON form (the same map; see docs/query-model.md). */
int cc_query_decode_json(const char *text, size_t len, const struct cc_query_limits *limits,
                         struct cc_query **out, char *errbuf, size_t errlen);

/* Packs the canonical form of a query as one msgpack map (keys in a fixed
 * order, defaults omitted). 0, CC_ENOMEM or CC_EINVAL (an enum out of range). */
int cc_query_pack(const struct cc_query *query, msgpack_packer *packer);

/* Encodes the canonical form into a malloc'd buffer the caller frees with
 * free(). Decoding it gives an equal query. */
int cc_query_encode(const struct cc_query *query, char **out, size_t *out_len);

/* Encodes the canonical JSON form (compact, keys in the same order) into a
 * malloc'd NUL-terminated string the caller frees with free(). */
int cc_query_encode_json(const struct cc_query *query, char **out);

/* ---- validation (cc_query_validate.c) ---- */

/* The code systems whose format a code fits: bits 1u << enum cc_code_system.
 * SNOMED CT: a concept id, 6-18 digits, no leading zero, partition 00 or
 * 10, valid Verhoeff check digit; ICD-10: a letter then 1 to 3 digits, or a
 * letter, 2 digits and the filler X; OPCS-4: a letter other than I, then 1
 * to 3 digits. (Codes of 2 characters are prefixes: "E1" is E10-E14.) Most
 * letter codes fit both ICD-10 and OPCS-4, as in docs/data-formats.md. */
unsigned cc_query_code_systems(const char *text);

/*
 * Checks a decoded query's meaning: the measure fits the dimensions and
 * filters, every code fits its condition's system, month ranges are not
 * empty, anchors point to earlier non-excluded conditions, custom age bounds
 * ascend, and the number of cells is within limits->max_cells for extent
 * (NULL: cc_query_extent_default()). limits NULL: defaults. Returns 0,
 * CC_EINVAL or CC_ETOOBIG with "field: reason" in errbuf.
 */
int cc_query_validate(const struct cc_query *query, const struct cc_query_limits *limits,
                      const struct cc_query_extent *extent, char *errbuf, size_t errlen);

/* The number of cells the query's dimensions can give over extent (NULL:
 * default), saturating at UINT64_MAX. */
uint64_t cc_query_n_cells(const struct cc_query *query, const struct cc_query_extent *extent);

/*
 * Checks a validated query against the store's vocabulary and resolves it:
 * every area code exists at its level (fills filters.areas.index), every
 * codelist name is in the registry and its system agrees with the one the
 * condition gives, if any (fills codelist_ref). codelists may be NULL when
 * the query names none; columns may be NULL to check the codelists only
 * (the client, which has no store), leaving the areas unresolved. Returns 0, CC_ENOTFOUND (unknown area or codelist)
 * or CC_EINVAL (a codelist of the wrong system), or CC_ENOMEM.
 */
int cc_query_bind(struct cc_query *query, const struct cc_store_columns *columns,
                  const struct cc_codelists *codelists, char *errbuf, size_t errlen);

#endif
