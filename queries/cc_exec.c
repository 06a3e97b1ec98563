/*
 * cc_exec.c: the query engine (see cc_exec.h and docs/engine.md).
 *
 * Persons are sets of bits over person indices (one bit each: 1.25 MB for
 * 10 million persons). A condition's set comes from the posting lists of its
 * codes: for every code id whose text matches (a prefix range for ICD-10 and
 * OPCS-4, an exact id for SNOMED CT), every record carrying it is checked
 * against the condition's settings, roles, dates and anchor, and its person's
 * bit set. Conditions without codes scan the records of their settings. The
 * cohort is the AND of every set (complemented for "but not"), of the person
 * filters and of "not opted out"; leaving each restriction out in turn gives
 * the cohort sizes that disclosure control weighs.
 *
 * Counting is one pass, split across threads that each own a private array
 * of counts, summed at the end: over the cohort's bits when every dimension
 * belongs to the person, over the qualifying records otherwise.
 *
 * Must never: return anything but counts and keys; it sees no identifiers.
 */
#include "cc_exec.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_store.h"

#define NO_VALUE UINT32_MAX
#define NO_FIRST_DATE UINT16_MAX

/* ---- small parallel loop ------------------------------------------------------ */

struct par_task {
    void (*fn)(void *ctx, unsigned thread, uint64_t begin, uint64_t end);
    void *ctx;
    unsigned thread;
    uint64_t begin, end;
};

static void *par_main(void *arg)
{
    struct par_task *t = arg;
    t->fn(t->ctx, t->thread, t->begin, t->end);
    return NULL;
}

/* Runs fn over [0, n) split into n_threads contiguous chunks aligned to
 * `align` items; thread 0 runs on the caller. Falls back to fewer threads if
 * one cannot be started. */
static void par_for(unsigned n_threads, uint64_t n, uint64_t align,
                    void (*fn)(void *, unsigned, uint64_t, uint64_t), void *ctx)
{
    struct par_task tasks[8];
    pthread_t ids[8];
    int started[8] = {0};
    if (n_threads > 8)
        n_threads = 8;
    if (n_threads < 2 || n < 4096) {
        fn(ctx, 0, 0, n);
        for (unsigned t = 1; t < n_threads; t++)
            fn(ctx, t, n, n);
        return;
    }
    uint64_t chunk = (n + n_threads - 1) / n_threads;
    chunk = (chunk + align - 1) / align * align;
    for (unsigned t = 0; t < n_threads; t++) {
        uint64_t b = (uint64_t)t * chunk, e = b + chunk;
        tasks[t] = (struct par_task){fn, ctx, t, b < n ? b : n, e < n ? e : n};
    }
    for (unsigned t = 1; t < n_threads; t++)
        started[t] = pthread_create(&ids[t], NULL, par_main, &tasks[t]) == 0;
    fn(ctx, 0, tasks[0].begin, tasks[0].end);
    for (unsigned t = 1; t < n_threads; t++) {
        if (started[t])
            pthread_join(ids[t], NULL);
        else
            fn(ctx, t, tasks[t].begin, tasks[t].end);
    }
}

/* ---- the state of one execution -------------------------------------------------- */

struct dim {
    uint8_t kind;
    uint32_t size;   /* the dimension's own values */
    uint32_t total;  /* margins: the total's value (== size); NO_VALUE without */
    uint32_t extent; /* values in the result: size, and the total with margins */
    uint64_t stride;
    int32_t first; /* period dims: value 0's month, quarter or year */
    uint8_t age_band[256]; /* age band dims: band of each age */
    uint8_t sex_value[256]; /* sex dims: value of each sex code, 0xff for none */
    uint8_t sex_code[4];    /* sex dims: the sex code of each value */
};

struct code_range {
    uint32_t first, last;
};

struct condition_plan {
    struct code_range *ranges; /* code ids; NULL: no codes, scan settings */
    uint32_t n_ranges;
    unsigned setting_mask; /* bits 1 << setting, after the query-wide mask */
    unsigned role_mask;    /* 0: any */
    cc_day first_day, last_day;
    int anchor; /* condition index or -1 */
    int32_t anchor_from, anchor_to;
    uint64_t *persons;      /* bitset: persons with a matching record */
    uint16_t *first_date;   /* per person, if a later condition anchors here */
};

struct exec {
    const struct cc_dataversion *version;
    const uint64_t *excluded; /* the version's opt-out bitset, one bit per person */
    const struct cc_store_columns *c;
    const struct cc_query *q;
    unsigned n_threads;
    uint64_t words;

    cc_day reference_day;
    const uint32_t *ymd; /* [65536]: year << 9 | month << 5 | day (day_table) */
    const uint8_t *age_at_reference; /* [65536] by date of birth (ages_on) */
    uint8_t *age_table_owned;        /* when the cache was full */

    uint16_t *lsoa_lad, *lsoa_icb, *lsoa_region; /* [n_lsoa] */

    uint32_t n_dims;
    struct dim dims[CC_QUERY_DIMENSIONS_CAP];
    uint64_t n_cells;
    int margins; /* every cell adds to its margins too (cc_exec.h) */
    int record_dims; /* a dimension belongs to records (setting or period) */

    struct condition_plan *plans; /* [n_conditions] */
    cc_day filter_first_day, filter_last_day;
    unsigned filter_setting_mask;

    uint64_t *person_filter; /* age, sex, areas, opt-out: bitset */
    uint64_t *cohort;

    /* per-thread counts */
    uint64_t *thread_counts[8];
    uint32_t *thread_keys[8];
    uint32_t *thread_sketch[8]; /* options->cell_sketches only, else NULL */
};

static unsigned online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 8 ? 8 : (unsigned)n;
}

static int ymd_year(uint32_t p) { return (int)(p >> 9); }
static int ymd_month(uint32_t p) { return (int)(p >> 5 & 15); }

/* Whole years from the date of birth to `on`, from the packed table. */
/* The packed y/m/d of every day a uint16_t can hold, the same for every
 * query: built once (it was rebuilt per query, the largest fixed cost of a
 * small query). */
static uint32_t day_table[65536];
static pthread_once_t day_table_once = PTHREAD_ONCE_INIT;

static void day_table_build(void)
{
    for (uint32_t d = 0; d < 65536; d++) {
        int y, m, dd;
        cc_day_to_ymd((cc_day)d, &y, &m, &dd);
        day_table[d] = (uint32_t)y << 9 | (uint32_t)m << 5 | (uint32_t)dd;
    }
}

static int age_between(const uint32_t *ymd, uint16_t born, uint16_t on)
{
    uint32_t b = ymd[born], o = ymd[on];
    int age = ymd_year(o) - ymd_year(b);
    if ((o & 0x1ff) < (b & 0x1ff))
        age--;
    return age;
}

/* The age on `on` of every possible date of birth, kept for the last few
 * reference days asked for (most queries share today's, or the day after
 * their date range): building it is 65,536 age computations, which was a
 * third of a small query. Entries are never freed or changed once made, so
 * readers need no lock; when the cache is full the table is built for the
 * one query (into *owned, which the caller frees). NULL: out of memory. */
#define AGE_TABLES_KEPT 32
static struct {
    cc_day on;
    const uint8_t *table;
} age_tables[AGE_TABLES_KEPT];
static unsigned n_age_tables;
static pthread_mutex_t age_tables_lock = PTHREAD_MUTEX_INITIALIZER;

static const uint8_t *ages_on(cc_day on, uint8_t **owned)
{
    *owned = NULL;
    pthread_mutex_lock(&age_tables_lock);
    for (unsigned i = 0; i < n_age_tables; i++)
        if (age_tables[i].on == on) {
            const uint8_t *t = age_tables[i].table;
            pthread_mutex_unlock(&age_tables_lock);
            return t;
        }
    pthread_mutex_unlock(&age_tables_lock);
    uint8_t *t = malloc(65536);
    if (!t)
        return NULL;
    for (uint32_t d = 0; d < 65536; d++) {
        int age = (cc_day)d > on ? 0 : age_between(day_table, (uint16_t)d, (uint16_t)on);
        t[d] = (uint8_t)(age > 255 ? 255 : age);
    }
    pthread_mutex_lock(&age_tables_lock);
    for (unsigned i = 0; i < n_age_tables; i++)
        if (age_tables[i].on == on) { /* built meanwhile by another query */
            const uint8_t *kept = age_tables[i].table;
            pthread_mutex_unlock(&age_tables_lock);
            free(t);
            return kept;
        }
    if (n_age_tables < AGE_TABLES_KEPT) {
        age_tables[n_age_tables].on = on;
        age_tables[n_age_tables].table = t;
        n_age_tables++;
    } else {
        *owned = t;
    }
    pthread_mutex_unlock(&age_tables_lock);
    return t;
}

static int setting_of(const struct cc_store_columns *c, uint64_t record)
{
    for (int s = 1; s <= 3; s++)
        if (record < c->setting_first[s + 1])
            return s;
    return 3;
}

/* ---- planning --------------------------------------------------------------------- */

static int add_range(struct condition_plan *p, uint32_t first, uint32_t last, uint32_t *cap)
{
    if (first >= last)
        return 0;
    if (p->n_ranges == *cap) {
        uint32_t grown_cap = *cap ? *cap * 2 : 16;
        struct code_range *grown = realloc(p->ranges, grown_cap * sizeof *grown);
        if (!grown)
            return CC_ENOMEM;
        p->ranges = grown;
        *cap = grown_cap;
    }
    p->ranges[p->n_ranges++] = (struct code_range){first, last};
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct code_range *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* ICD-10 and OPCS-4 codes match as prefixes, SNOMED CT ids exactly. */
static int plan_code(struct exec *e, struct condition_plan *p, int system, const char *text,
                     uint32_t *cap)
{
    const cc_store *store = cc_dataversion_store(e->version);
    if (system == CC_CODE_SNOMED) {
        int64_t id = cc_store_find_code(store, system, text);
        return id >= 0 ? add_range(p, (uint32_t)id, (uint32_t)id + 1, cap) : 0;
    }
    uint32_t first = 0, last = 0;
    cc_store_code_prefix_range(store, system, text, &first, &last);
    return add_range(p, first, last, cap);
}

static int plan_condition(struct exec *e, uint32_t index)
{
    const struct cc_query_condition *cond = &e->q->filters.conditions[index];
    struct condition_plan *p = &e->plans[index];
    uint32_t cap = 0;
    int rc;
    p->anchor = -1;
    if (cond->codelist_ref) {
        const struct cc_codelist *list = cond->codelist_ref;
        for (uint32_t i = 0; i < list->n_codes; i++) {
            int system = list->codes[i].system ? list->codes[i].system : list->system;
            if ((rc = plan_code(e, p, system, list->codes[i].text, &cap)) < 0)
                return rc;
        }
        if (!p->ranges && (rc = add_range(p, 0, 0, &cap)) < 0)
            return rc;
    } else if (cond->n_codes) {
        for (uint32_t i = 0; i < cond->n_codes; i++)
            if ((rc = plan_code(e, p, cc_query_code_system(cond, i), cond->codes[i].text, &cap)) <
                0)
                return rc;
    }
    if ((cond->codelist_ref || cond->n_codes) && !p->ranges) {
        /* codes that the store has never seen: an empty but coded plan */
        p->ranges = malloc(sizeof *p->ranges);
        if (!p->ranges)
            return CC_ENOMEM;
    }
    if (p->n_ranges > 1) {
        /* merge overlapping ranges so no record is visited twice per code */
        qsort(p->ranges, p->n_ranges, sizeof *p->ranges, range_cmp);
        uint32_t kept = 0;
        for (uint32_t i = 0; i < p->n_ranges; i++) {
            if (kept && p->ranges[i].first <= p->ranges[kept - 1].last) {
                if (p->ranges[i].last > p->ranges[kept - 1].last)
                    p->ranges[kept - 1].last = p->ranges[i].last;
            } else {
                p->ranges[kept++] = p->ranges[i];
            }
        }
        p->n_ranges = kept;
    }
    unsigned cond_settings = cond->setting_mask ? cond->setting_mask : 0xe;
    p->setting_mask = cond_settings & e->filter_setting_mask;
    p->role_mask = cond->role_mask;
    p->first_day = e->filter_first_day;
    p->last_day = e->filter_last_day;
    if (cond->date_range.present) {
        cc_day f = cc_query_month_first_day(cond->date_range.from);
        cc_day l = cc_query_month_last_day(cond->date_range.to);
        if (f > p->first_day)
            p->first_day = f;
        if (l < p->last_day)
            p->last_day = l;
    }
    if (cond->anchor.present) {
        p->anchor = (int)cond->anchor.condition;
        p->anchor_from = cond->anchor.from_days;
        p->anchor_to = cond->anchor.to_days;
    }
    p->persons = calloc(e->words ? e->words : 1, sizeof *p->persons);
    return p->persons ? 0 : CC_ENOMEM;
}

/* Does record r (reached through a posting with role `role`, or -1 from a
 * scan) match the plan? */
static int record_matches(const struct exec *e, const struct condition_plan *p, uint64_t r,
                          int role)
{
    const struct cc_store_columns *c = e->c;
    cc_day d = c->record_date[r];
    if (d < p->first_day || d > p->last_day)
        return 0;
    if (role >= 0 && p->role_mask && !(p->role_mask & (1u << role)))
        return 0;
    if (p->ranges && !(p->setting_mask & (1u << setting_of(c, r))))
        return 0;
    if (p->anchor >= 0) {
        uint16_t first = e->plans[p->anchor].first_date[c->record_person[r]];
        if (first == NO_FIRST_DATE)
            return 0;
        int32_t delta = (int32_t)d - (int32_t)first;
        if (delta < p->anchor_from || delta > p->anchor_to)
            return 0;
    }
    return 1;
}

/* Calls visit(ctx, record) for every record that matches plan p, in
 * ascending record order within each code, possibly more than once per
 * record when several of its codes match. */
static void each_matching_record(const struct exec *e, const struct condition_plan *p,
                                 void (*visit)(void *ctx, uint64_t record), void *ctx)
{
    const struct cc_store_columns *c = e->c;
    if (p->ranges) {
        for (uint32_t k = 0; k < p->n_ranges; k++)
            for (uint64_t i = c->code_first[p->ranges[k].first];
                 i < c->code_first[p->ranges[k].last]; i++) {
                uint64_t r = CC_POSTING_RECORD(c->posting_records[i]);
                if (record_matches(e, p, r, (int)CC_POSTING_ROLE(c->posting_records[i])))
                    visit(ctx, r);
            }
        return;
    }
    for (int s = 1; s <= 3; s++) {
        if (!(p->setting_mask & (1u << s)))
            continue;
        for (uint64_t r = c->setting_first[s]; r < c->setting_first[s + 1]; r++)
            if (record_matches(e, p, r, -1))
                visit(ctx, r);
    }
}

struct mark_ctx {
    const struct exec *e;
    struct condition_plan *p;
};

static void mark_person(void *arg, uint64_t r)
{
    struct mark_ctx *m = arg;
    uint32_t person = m->e->c->record_person[r];
    m->p->persons[person >> 6] |= 1ULL << (person & 63);
    if (m->p->first_date) {
        uint16_t d = m->e->c->record_date[r];
        if (d < m->p->first_date[person])
            m->p->first_date[person] = d;
    }
}

static int fill_condition(struct exec *e, uint32_t index)
{
    struct condition_plan *p = &e->plans[index];
    memset(p->persons, 0, e->words * sizeof *p->persons);
    if (p->first_date)
        memset(p->first_date, 0xff, (size_t)e->c->n_persons * sizeof *p->first_date);
    struct mark_ctx m = {e, p};
    each_matching_record(e, p, mark_person, &m);
    return 0;
}

/* ---- person filters --------------------------------------------------------------- */

static uint32_t area_of(const struct exec *e, int level, uint32_t person)
{
    uint16_t lsoa = e->c->person_lsoa[person];
    if (lsoa == UINT16_MAX)
        return NO_VALUE;
    switch (level) {
    case CC_AREA_LAD:
        return e->lsoa_lad[lsoa];
    case CC_AREA_ICB:
        return e->lsoa_icb[lsoa];
    case CC_AREA_REGION:
        return e->lsoa_region[lsoa];
    default:
        return lsoa;
    }
}

struct filter_sets {
    uint64_t *age, *sex, *areas, *practices; /* NULL when the filter is absent */
    uint8_t *area_selected;                  /* [n areas at the level] */
    uint8_t *practice_selected;              /* [n_practices] */
};

struct person_filter_ctx {
    struct exec *e;
    struct filter_sets *f;
};

static void person_filter_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    (void)thread;
    struct person_filter_ctx *x = arg;
    struct exec *e = x->e;
    const struct cc_query_filters *flt = &e->q->filters;
    const struct cc_store_columns *c = e->c;
    if (!x->f->age && !x->f->sex && !x->f->areas && !x->f->practices) {
        /* no person filter: the opted-in persons, a word at a time */
        for (uint64_t w = begin; w < end; w++) {
            uint64_t ok = ~e->excluded[w];
            uint64_t first = w * 64;
            if (first + 64 > c->n_persons)
                ok &= first < c->n_persons ? ~(~0ULL << (c->n_persons - first)) : 0;
            e->person_filter[w] = ok;
        }
        return;
    }
    for (uint64_t w = begin; w < end; w++) {
        uint64_t age = 0, sex = 0, area = 0, practice = 0, ok = ~e->excluded[w];
        for (unsigned b = 0; b < 64; b++) {
            uint64_t p = w * 64 + b;
            if (p >= c->n_persons) {
                ok &= ~(~0ULL << b);
                break;
            }
            if (x->f->age) {
                int a = e->age_at_reference[c->person_dob[p]];
                if (a >= flt->age.min_years && a <= flt->age.max_years)
                    age |= 1ULL << b;
            }
            if (x->f->sex && (flt->sex_mask & (1u << c->person_sex[p])))
                sex |= 1ULL << b;
            if (x->f->areas) {
                uint32_t a = area_of(e, flt->areas.level, (uint32_t)p);
                if (a != NO_VALUE && x->f->area_selected[a])
                    area |= 1ULL << b;
            }
            if (x->f->practices && c->person_practice[p] != UINT16_MAX &&
                x->f->practice_selected[c->person_practice[p]])
                practice |= 1ULL << b;
        }
        if (x->f->age)
            x->f->age[w] = age;
        if (x->f->sex)
            x->f->sex[w] = sex;
        if (x->f->areas)
            x->f->areas[w] = area;
        if (x->f->practices)
            x->f->practices[w] = practice;
        e->person_filter[w] = ok;
    }
}

/* ---- dimensions --------------------------------------------------------------------- */

static int plan_dimensions(struct exec *e, cc_day data_first, cc_day data_last)
{
    const struct cc_query *q = e->q;
    const struct cc_store_columns *c = e->c;
    e->n_dims = q->n_dimensions;
    cc_month first_month = cc_query_month_of_day(data_first);
    cc_month last_month = cc_query_month_of_day(data_last);
    if (q->filters.date_range.present) {
        first_month = q->filters.date_range.from;
        last_month = q->filters.date_range.to;
    }
    for (uint32_t i = 0; i < q->n_dimensions; i++) {
        const struct cc_query_dimension *qd = &q->dimensions[i];
        struct dim *d = &e->dims[i];
        d->kind = qd->kind;
        switch (qd->kind) {
        case CC_DIM_REGION:
            d->size = c->n_region;
            break;
        case CC_DIM_ICB:
            d->size = c->n_icb;
            break;
        case CC_DIM_LAD:
            d->size = c->n_lad;
            break;
        case CC_DIM_PRACTICE:
            d->size = c->n_practices;
            break;
        case CC_DIM_LSOA:
            d->size = c->n_lsoa;
            break;
        case CC_DIM_SEX: {
            /* the sexes of the filter, else all four; estimates have two */
            static const uint8_t sexes[] = {CC_SEX_NOT_KNOWN, CC_SEX_MALE, CC_SEX_FEMALE,
                                            CC_SEX_INDETERMINATE};
            unsigned mask = q->filters.sex_mask ? q->filters.sex_mask : 0xffff;
            if (q->measure == CC_MEASURE_POPULATION &&
                q->population_source == CC_POPULATION_ESTIMATE)
                mask &= 1u << CC_SEX_MALE | 1u << CC_SEX_FEMALE;
            memset(d->sex_value, 0xff, sizeof d->sex_value);
            d->size = 0;
            for (unsigned k = 0; k < 4; k++)
                if (mask & (1u << sexes[k])) {
                    d->sex_value[sexes[k]] = (uint8_t)d->size;
                    d->sex_code[d->size++] = sexes[k];
                }
            break;
        }
        case CC_DIM_SETTING:
            d->size = 3;
            e->record_dims = 1;
            break;
        case CC_DIM_YEAR:
            d->first = first_month / 12;
            d->size = (uint32_t)(last_month / 12 - d->first + 1);
            e->record_dims = 1;
            break;
        case CC_DIM_QUARTER:
            d->first = first_month / 3;
            d->size = (uint32_t)(last_month / 3 - d->first + 1);
            e->record_dims = 1;
            break;
        case CC_DIM_MONTH:
            d->first = first_month;
            d->size = (uint32_t)(last_month - first_month + 1);
            e->record_dims = 1;
            break;
        case CC_DIM_AGE_BAND: {
            uint32_t n = 0;
            for (int age = 0; age < 256; age++) {
                uint32_t band;
                if (qd->age_banding == CC_AGE_BANDS_10Y)
                    band = age >= 90 ? 9 : (uint32_t)age / 10;
                else if (qd->age_banding == CC_AGE_BANDS_1Y)
                    band = age >= 120 ? 120 : (uint32_t)age;
                else if (qd->age_banding == CC_AGE_BANDS_CUSTOM) {
                    band = 0;
                    for (uint32_t k = 0; k < qd->n_age_bounds; k++)
                        if (age >= qd->age_bounds[k])
                            band = k;
                } else
                    band = cc_exec_band5(age);
                d->age_band[age] = (uint8_t)band;
                if (band + 1 > n)
                    n = band + 1;
            }
            d->size = n;
            break;
        }
        default:
            return CC_EINVAL;
        }
        if (d->size == 0)
            d->size = 1;
        d->total = e->margins ? d->size : NO_VALUE;
        d->extent = d->size + (e->margins != 0);
    }
    e->n_cells = 1;
    for (int i = (int)e->n_dims - 1; i >= 0; i--) {
        e->dims[i].stride = e->n_cells;
        e->n_cells *= e->dims[i].extent;
        if (e->n_cells > 10000000)
            return CC_ETOOBIG;
    }
    return 0;
}

/* The cell of a person (and, for record dims, a record); 0 in *ok if a
 * coordinate is unknown (no area, no practice, a sex outside the dimension's
 * values, a date outside the period). age_day is the day ages are taken on. */
static uint64_t cell_of(const struct exec *e, uint32_t person, uint64_t record, uint16_t age_day,
                        int *ok)
{
    const struct cc_store_columns *c = e->c;
    uint64_t cell = 0;
    for (uint32_t i = 0; i < e->n_dims; i++) {
        const struct dim *d = &e->dims[i];
        uint32_t v;
        switch (d->kind) {
        case CC_DIM_REGION:
            v = area_of(e, CC_AREA_REGION, person);
            break;
        case CC_DIM_ICB:
            v = area_of(e, CC_AREA_ICB, person);
            break;
        case CC_DIM_LAD:
            v = area_of(e, CC_AREA_LAD, person);
            break;
        case CC_DIM_LSOA:
            v = area_of(e, CC_AREA_LSOA, person);
            break;
        case CC_DIM_PRACTICE:
            v = c->person_practice[person] == UINT16_MAX ? NO_VALUE : c->person_practice[person];
            break;
        case CC_DIM_SEX:
            v = d->sex_value[c->person_sex[person]];
            v = v == 0xff ? NO_VALUE : v;
            break;
        case CC_DIM_AGE_BAND: {
            int age = age_between(e->ymd, c->person_dob[person], age_day);
            v = age < 0 ? NO_VALUE : d->age_band[age > 255 ? 255 : age];
            break;
        }
        case CC_DIM_SETTING:
            v = (uint32_t)setting_of(c, record) - 1;
            break;
        default: { /* periods */
            uint32_t p = e->ymd[c->record_date[record]];
            int32_t month = ymd_year(p) * 12 + ymd_month(p) - 1;
            int32_t value = d->kind == CC_DIM_YEAR      ? month / 12
                            : d->kind == CC_DIM_QUARTER ? month / 3
                                                        : month;
            value -= d->first;
            v = value < 0 || (uint32_t)value >= d->size ? NO_VALUE : (uint32_t)value;
            break;
        }
        }
        if (v == NO_VALUE || v >= d->size) {
            *ok = 0;
            return 0;
        }
        cell += v * d->stride;
    }
    *ok = 1;
    return cell;
}

/* ---- counting ------------------------------------------------------------------------- */

/* The cells a thing counted in `cell` adds to: with margins, the cell and
 * every cell with some of its coordinates replaced by their dimension's
 * total (1 << n_dims cells, written to out); without, the cell alone. */
static unsigned cells_of(const struct exec *e, uint64_t cell, uint64_t *out)
{
    out[0] = cell;
    if (!e->margins)
        return 1;
    uint64_t to_total[CC_QUERY_DIMENSIONS_CAP];
    for (uint32_t i = 0; i < e->n_dims; i++) {
        const struct dim *d = &e->dims[i];
        uint64_t v = cell / d->stride % d->extent;
        to_total[i] = (d->total - v) * d->stride;
    }
    unsigned n = 1u << e->n_dims;
    for (unsigned subset = 1; subset < n; subset++) {
        uint64_t c = cell;
        for (uint32_t i = 0; i < e->n_dims; i++)
            if (subset & (1u << i))
                c += to_total[i];
        out[subset] = c;
    }
    return n;
}

/* Adds a person's record key to cell's sketch (sketch NULL: none kept). */
static inline void sketch_in(uint32_t *sketch, uint64_t cell, uint32_t key)
{
    if (!sketch)
        return;
    uint32_t *slot = &sketch[cell * CC_EXEC_SKETCH_BUCKETS + CC_EXEC_SKETCH_BUCKET(key)];
    if (CC_EXEC_SKETCH_VALUE(key) < *slot)
        *slot = CC_EXEC_SKETCH_VALUE(key);
}

/* Counts one thing with record key `key` in cell (and its margins); the
 * sketches get the person's key. */
static inline void count_in(const struct exec *e, uint64_t *counts, uint32_t *keys,
                            uint32_t *sketch, uint64_t cell, uint32_t key)
{
    if (!e->margins) {
        counts[cell]++;
        keys[cell] += key;
        sketch_in(sketch, cell, key);
        return;
    }
    uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
    unsigned n = cells_of(e, cell, cells);
    for (unsigned i = 0; i < n; i++) {
        counts[cells[i]]++;
        keys[cells[i]] += key;
        sketch_in(sketch, cells[i], key);
    }
}

static void count_cohort_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct exec *e = arg;
    uint64_t *counts = e->thread_counts[thread];
    uint32_t *keys = e->thread_keys[thread];
    for (uint64_t w = begin; w < end; w++) {
        uint64_t bits = e->cohort[w];
        while (bits) {
            uint32_t person = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            bits &= bits - 1;
            int ok;
            uint64_t cell = cell_of(e, person, 0, (uint16_t)e->reference_day, &ok);
            if (ok)
                count_in(e, counts, keys, e->thread_sketch[thread], cell,
                         e->c->person_record_key[person]);
        }
    }
}

/* The records that an events count (or a per-record persons count) looks
 * at: those of condition events_of, or every record within the query-wide
 * date range and settings. */
struct record_list {
    uint64_t *records;
    uint64_t n, cap;
    int oom;
};

static void collect_record(void *arg, uint64_t r)
{
    struct record_list *l = arg;
    if (l->n == l->cap) {
        uint64_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *grown = realloc(l->records, cap * sizeof *grown);
        if (!grown) {
            l->oom = 1;
            return;
        }
        l->records = grown;
        l->cap = cap;
    }
    l->records[l->n++] = r;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct record_count_ctx {
    struct exec *e;
    const uint64_t *records; /* NULL: the scan range of the filters */
    int events;              /* 1: count records; 0: collect (cell, person) pairs */
    uint64_t *pairs[8];
    uint64_t n_pairs[8], cap_pairs[8];
    int oom;
};

/* Scanned records: every record of the query-wide settings, as one index
 * space [0, n) over the settings' ranges. */
static uint64_t scan_length(const struct exec *e)
{
    uint64_t n = 0;
    for (int s = 1; s <= 3; s++)
        if (e->filter_setting_mask & (1u << s))
            n += e->c->setting_first[s + 1] - e->c->setting_first[s];
    return n;
}

static uint64_t scan_record(const struct exec *e, uint64_t i)
{
    for (int s = 1; s <= 3; s++) {
        if (!(e->filter_setting_mask & (1u << s)))
            continue;
        uint64_t n = e->c->setting_first[s + 1] - e->c->setting_first[s];
        if (i < n)
            return e->c->setting_first[s] + i;
        i -= n;
    }
    return 0;
}

static void count_records_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct record_count_ctx *x = arg;
    struct exec *e = x->e;
    const struct cc_store_columns *c = e->c;
    uint64_t *counts = e->thread_counts[thread];
    uint32_t *keys = e->thread_keys[thread];
    uint64_t r = 0;
    for (uint64_t i = begin; i < end; i++) {
        if (x->records) {
            r = x->records[i];
        } else {
            r = i == begin ? scan_record(e, i) : r + 1;
            if (i != begin && !(e->filter_setting_mask & (1u << setting_of(c, r))))
                r = scan_record(e, i);
            cc_day d = c->record_date[r];
            if (d < e->filter_first_day || d > e->filter_last_day)
                continue;
        }
        uint32_t person = c->record_person[r];
        if (!(e->cohort[person >> 6] >> (person & 63) & 1))
            continue;
        int ok;
        uint16_t age_day = x->events ? c->record_date[r] : (uint16_t)e->reference_day;
        uint64_t cell = cell_of(e, person, r, age_day, &ok);
        if (!ok)
            continue;
        if (x->events) {
            count_in(e, counts, keys, e->thread_sketch[thread], cell,
                     c->person_record_key[person]);
            continue;
        }
        /* persons: (cell, person) pairs, made distinct after the pass */
        uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
        unsigned n_cells = cells_of(e, cell, cells);
        if (x->n_pairs[thread] + n_cells > x->cap_pairs[thread]) {
            uint64_t cap = x->cap_pairs[thread] ? x->cap_pairs[thread] * 2 : 4096;
            uint64_t *grown = realloc(x->pairs[thread], cap * sizeof *grown);
            if (!grown) {
                x->oom = 1;
                return;
            }
            x->pairs[thread] = grown;
            x->cap_pairs[thread] = cap;
        }
        for (unsigned k = 0; k < n_cells; k++)
            x->pairs[thread][x->n_pairs[thread]++] = cells[k] << 32 | person;
    }
}

/* ---- population estimates --------------------------------------------------------------- */

static int count_population_estimate(struct exec *e, struct filter_sets *f)
{
    const struct cc_store_columns *c = e->c;
    const struct cc_query_filters *flt = &e->q->filters;
    uint64_t *counts = e->thread_counts[0];
    if (flt->practices.n_codes) /* estimates are by area, not practice */
        return CC_EINVAL;
    for (uint32_t i = 0; i < e->n_dims; i++)
        if (e->dims[i].kind == CC_DIM_PRACTICE || e->record_dims)
            return CC_EINVAL;
    for (uint32_t lsoa = 0; lsoa < c->n_lsoa; lsoa++) {
        if (flt->areas.n_codes) {
            uint32_t a = flt->areas.level == CC_AREA_LSOA  ? lsoa
                         : flt->areas.level == CC_AREA_LAD ? e->lsoa_lad[lsoa]
                         : flt->areas.level == CC_AREA_ICB ? e->lsoa_icb[lsoa]
                                                           : e->lsoa_region[lsoa];
            if (!f->area_selected[a])
                continue;
        }
        for (int sex = 1; sex <= 2; sex++) {
            if (flt->sex_mask && !(flt->sex_mask & (1u << sex)))
                continue;
            for (int band = 0; band < CC_N_AGE_BANDS_5Y; band++) {
                int lo = band * 5, hi = band == 18 ? 255 : band * 5 + 4;
                if (flt->age.present && (lo < flt->age.min_years || hi > flt->age.max_years))
                    continue;
                uint64_t cell = 0;
                for (uint32_t i = 0; i < e->n_dims; i++) {
                    const struct dim *d = &e->dims[i];
                    uint32_t v = 0;
                    switch (d->kind) {
                    case CC_DIM_REGION:
                        v = e->lsoa_region[lsoa];
                        break;
                    case CC_DIM_ICB:
                        v = e->lsoa_icb[lsoa];
                        break;
                    case CC_DIM_LAD:
                        v = e->lsoa_lad[lsoa];
                        break;
                    case CC_DIM_LSOA:
                        v = lsoa;
                        break;
                    case CC_DIM_SEX:
                        v = d->sex_value[sex]; /* a value: the filter and mask agree */
                        break;
                    case CC_DIM_AGE_BAND:
                        /* estimates come in 5-year bands: a band that does
                         * not fit inside one query band cannot be split */
                        v = d->age_band[lo];
                        if (d->age_band[hi > 255 ? 255 : hi] != v)
                            return CC_EINVAL;
                        break;
                    }
                    cell += v * d->stride;
                }
                uint32_t n = c->population[((uint64_t)lsoa * 2 + (uint64_t)(sex - 1)) *
                                               CC_N_AGE_BANDS_5Y +
                                           (uint64_t)band];
                uint64_t cells[1u << CC_QUERY_DIMENSIONS_CAP];
                unsigned n_cells = cells_of(e, cell, cells);
                for (unsigned k = 0; k < n_cells; k++)
                    counts[cells[k]] += n;
            }
        }
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* The sum (mod 2^32) of the record keys of the persons in set, leaving out
 * those in `without` (NULL: none). */
static uint32_t key_sum_of(const struct exec *e, const uint64_t *set, const uint64_t *without)
{
    uint32_t sum = 0;
    for (uint64_t w = 0; w < e->words; w++) {
        uint64_t bits = without ? set[w] & ~without[w] : set[w];
        while (bits) {
            uint32_t p = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            bits &= bits - 1;
            sum += e->c->person_record_key[p];
        }
    }
    return sum;
}

/* Word w of the persons for whom the subtree at node holds, with condition
 * skip (-1: none) left out: its leaf removed, and an operator left without
 * operands removed in turn (*present false: the subtree says nothing). */
static uint64_t combine_word(const struct cc_query_filters *flt, uint64_t *const *cond_sets,
                             uint32_t node, uint64_t w, int skip, bool *present)
{
    const struct cc_query_node *n = &flt->nodes[node];
    if (n->op == CC_NODE_CONDITION) {
        *present = (int)n->condition != skip;
        return *present ? cond_sets[n->condition][w] : 0;
    }
    if (n->op == CC_NODE_NOT) {
        uint64_t bits = combine_word(flt, cond_sets, n->children[0], w, skip, present);
        return ~bits;
    }
    uint64_t bits = n->op == CC_NODE_AND ? ~0ULL : 0;
    *present = false;
    for (uint32_t i = 0; i < n->n_children; i++) {
        bool child_present;
        uint64_t child = combine_word(flt, cond_sets, n->children[i], w, skip, &child_present);
        if (!child_present)
            continue;
        bits = n->op == CC_NODE_AND ? bits & child : bits | child;
        *present = true;
    }
    return bits;
}

/* The cohort, leaving out restriction `skip` (-1: none), into out; returns
 * its size. cond_sets are the condition sets to use. */
static uint64_t build_cohort(const struct exec *e, uint64_t *const *cond_sets,
                             const struct filter_sets *f, int skip_kind, int skip_condition,
                             uint64_t *out)
{
    const struct cc_query_filters *flt = &e->q->filters;
    uint64_t n = 0;
    int registered_only = e->q->measure == CC_MEASURE_POPULATION;
    for (uint64_t w = 0; w < e->words; w++) {
        uint64_t bits = e->person_filter[w];
        if (f->age && skip_kind != CC_RESTRICT_AGE)
            bits &= f->age[w];
        if (f->sex && skip_kind != CC_RESTRICT_SEX)
            bits &= f->sex[w];
        if (f->areas && skip_kind != CC_RESTRICT_AREAS)
            bits &= f->areas[w];
        if (f->practices && skip_kind != CC_RESTRICT_PRACTICES)
            bits &= f->practices[w];
        int skip = skip_kind == CC_RESTRICT_CONDITION ? skip_condition : -1;
        if (registered_only) {
            /* no conditions */
        } else if (flt->n_nodes) {
            bool present;
            uint64_t combined = combine_word(flt, cond_sets, 0, w, skip, &present);
            if (present)
                bits &= combined;
        } else {
            for (uint32_t i = 0; i < flt->n_conditions; i++) {
                if ((int)i == skip)
                    continue;
                bits &= flt->conditions[i].exclude ? ~cond_sets[i][w] : cond_sets[i][w];
            }
        }
        if (w == e->words - 1 && e->c->n_persons % 64)
            bits &= ~(~0ULL << (e->c->n_persons % 64));
        if (out)
            out[w] = bits;
        n += (uint64_t)__builtin_popcountll(bits);
    }
    return n;
}

static void free_plans(struct condition_plan *plans, uint32_t n)
{
    for (uint32_t i = 0; plans && i < n; i++) {
        free(plans[i].ranges);
        free(plans[i].persons);
        free(plans[i].first_date);
    }
    free(plans);
}

static void free_exec(struct exec *e)
{

    free(e->age_table_owned);
    free(e->lsoa_lad);
    free(e->lsoa_icb);
    free(e->lsoa_region);
    free_plans(e->plans, e->q->filters.n_conditions);
    free(e->person_filter);
    free(e->cohort);
    for (unsigned t = 0; t < 8; t++) {
        free(e->thread_counts[t]);
        free(e->thread_keys[t]);
        free(e->thread_sketch[t]);
    }
}

/* Plans and fills every condition into plans (which must be zeroed), in
 * index order: an anchor refers to an earlier condition, whose first dates
 * are known by then. e->plans points at plans while they are filled. */
static int build_plans(struct exec *e, struct condition_plan *plans, char *errbuf, size_t errlen)
{
    const struct cc_query_filters *flt = &e->q->filters;
    struct condition_plan *saved = e->plans;
    int rc = 0;
    e->plans = plans;
    for (uint32_t i = 0; i < flt->n_conditions && rc == 0; i++) {
        if (!flt->conditions[i].anchor.present)
            continue;
        uint32_t a = flt->conditions[i].anchor.condition;
        if (a >= i) {
            snprintf(errbuf, errlen,
                     "filters.conditions[%u].anchor: must name an earlier condition", i);
            rc = CC_EINVAL;
        } else if (!plans[a].first_date &&
                   !(plans[a].first_date =
                         malloc((size_t)e->c->n_persons * sizeof(uint16_t) + 2))) {
            rc = CC_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < flt->n_conditions && rc == 0; i++) {
        uint16_t *first_date = plans[i].first_date;
        if ((rc = plan_condition(e, i)) == 0) {
            plans[i].first_date = first_date;
            rc = fill_condition(e, i);
        }
    }
    e->plans = saved ? saved : plans;
    return rc;
}

/* The cohort size with the query-wide date range or settings lifted: every
 * condition's set is recomputed without it. */
static int cohort_without_filter(struct exec *e, const struct filter_sets *f, int kind,
                                 uint64_t *size)
{
    uint32_t n = e->q->filters.n_conditions;
    struct condition_plan *plans = calloc(n ? n : 1, sizeof *plans);
    uint64_t **sets = calloc(n ? n : 1, sizeof *sets);
    char ignored[64];
    int rc = CC_ENOMEM;
    if (!plans || !sets)
        goto out;
    cc_day saved_first = e->filter_first_day, saved_last = e->filter_last_day;
    unsigned saved_mask = e->filter_setting_mask;
    if (kind == CC_RESTRICT_DATE_RANGE) {
        e->filter_first_day = CC_DAY_MIN;
        e->filter_last_day = CC_DAY_MAX;
    } else {
        e->filter_setting_mask = 0xe;
    }
    struct condition_plan *base = e->plans;
    e->plans = NULL;
    rc = build_plans(e, plans, ignored, sizeof ignored);
    e->plans = base;
    e->filter_first_day = saved_first;
    e->filter_last_day = saved_last;
    e->filter_setting_mask = saved_mask;
    if (rc == 0) {
        for (uint32_t i = 0; i < n; i++)
            sets[i] = plans[i].persons;
        *size = build_cohort(e, sets, f, 0, -1, NULL);
    }
out:
    free(sets);
    free_plans(plans, n);
    return rc;
}

int cc_exec_run(const struct cc_dataversion *version, const struct cc_query *query,
                const struct cc_exec_options *options, struct cc_raw_result *out, char *errbuf,
                size_t errlen)
{
    struct exec e = {0};
    struct filter_sets f = {0};
    struct record_list list = {0};
    struct record_count_ctx rc_ctx = {0};
    int rc = 0;
    memset(out, 0, sizeof *out);
    errbuf[0] = '\0';
    e.version = version;
    e.c = cc_store_columns(cc_dataversion_store(version));
    e.excluded = cc_dataversion_excluded_bits(version);
    e.q = query;
    e.margins = query->margins && query->n_dimensions > 0;
    e.n_threads = options && options->n_threads ? options->n_threads : online_cpus();
    if (e.n_threads > 8)
        e.n_threads = 8;
    e.words = ((uint64_t)e.c->n_persons + 63) / 64;
    const struct cc_store_columns *c = e.c;
    const struct cc_query_filters *flt = &query->filters;

    if (flt->n_conditions > CC_EXEC_MAX_RESTRICTIONS - 7) {
        snprintf(errbuf, errlen, "filters.conditions: too many for the engine");
        return CC_EINVAL;
    }
    if ((flt->areas.n_codes && !flt->areas.index) ||
        (flt->practices.n_codes && !flt->practices.index)) {
        snprintf(errbuf, errlen, "filters: the query is not bound to the store");
        return CC_EINVAL;
    }
    for (uint32_t i = 0; i < flt->n_conditions; i++)
        if (flt->conditions[i].codelist[0] && !flt->conditions[i].codelist_ref) {
            snprintf(errbuf, errlen, "filters.conditions[%u]: the codelist is not bound", i);
            return CC_EINVAL;
        }

    /* Day tables: packed y/m/d of every day, and the age on the reference day
     * of every possible date of birth. */
    pthread_once(&day_table_once, day_table_build);
    e.ymd = day_table;
    if (query->has_as_of)
        e.reference_day = cc_query_month_first_day(query->as_of);
    else if (flt->date_range.present)
        e.reference_day = cc_query_month_last_day(flt->date_range.to) + 1;
    else if (options && options->reference_day)
        e.reference_day = options->reference_day;
    else
        e.reference_day = cc_day_today();
    if (e.reference_day > CC_DAY_MAX)
        e.reference_day = CC_DAY_MAX;
    if (!(e.age_at_reference = ages_on(e.reference_day, &e.age_table_owned)))
        goto fail_nomem;

    /* Area lookups by LSOA. */
    e.lsoa_lad = malloc((c->n_lsoa + 1) * sizeof *e.lsoa_lad);
    e.lsoa_icb = malloc((c->n_lsoa + 1) * sizeof *e.lsoa_icb);
    e.lsoa_region = malloc((c->n_lsoa + 1) * sizeof *e.lsoa_region);
    if (!e.lsoa_lad || !e.lsoa_icb || !e.lsoa_region)
        goto fail_nomem;
    for (uint32_t i = 0; i < c->n_lsoa; i++) {
        e.lsoa_lad[i] = c->lsoa_lad[i];
        e.lsoa_icb[i] = c->lad_icb[c->lsoa_lad[i]];
        e.lsoa_region[i] = c->icb_region[e.lsoa_icb[i]];
    }

    /* Query-wide record filters. */
    e.filter_first_day = CC_DAY_MIN;
    e.filter_last_day = CC_DAY_MAX;
    if (flt->date_range.present) {
        e.filter_first_day = cc_query_month_first_day(flt->date_range.from);
        e.filter_last_day = cc_query_month_last_day(flt->date_range.to);
    }
    e.filter_setting_mask = flt->setting_mask ? flt->setting_mask & 0xe : 0xe;

    /* Dimensions (periods default to the span of the data). */
    cc_day data_first = CC_DAY_MAX, data_last = CC_DAY_MIN;
    int periods = 0;
    for (uint32_t i = 0; i < query->n_dimensions; i++)
        periods |= query->dimensions[i].kind == CC_DIM_YEAR ||
                   query->dimensions[i].kind == CC_DIM_QUARTER ||
                   query->dimensions[i].kind == CC_DIM_MONTH;
    if (periods && !flt->date_range.present) {
        for (uint64_t r = 0; r < c->n_records; r++) {
            if (c->record_date[r] < data_first)
                data_first = c->record_date[r];
            if (c->record_date[r] > data_last)
                data_last = c->record_date[r];
        }
        if (data_first > data_last)
            data_first = data_last = e.reference_day;
    }
    if ((rc = plan_dimensions(&e, data_first, data_last)) < 0) {
        snprintf(errbuf, errlen, "dimensions: %s",
                 rc == CC_ETOOBIG ? "too many cells" : "unknown dimension");
        goto out;
    }

    /* Conditions: a plan and a set of persons each. */
    e.plans = calloc(flt->n_conditions ? flt->n_conditions : 1, sizeof *e.plans);
    if (!e.plans)
        goto fail_nomem;
    if ((rc = build_plans(&e, e.plans, errbuf, errlen)) < 0) {
        if (rc == CC_ENOMEM)
            goto fail_nomem;
        goto out;
    }

    /* Person filters. */
    e.person_filter = malloc(e.words * sizeof *e.person_filter + 8);
    e.cohort = malloc(e.words * sizeof *e.cohort + 8);
    if (!e.person_filter || !e.cohort)
        goto fail_nomem;
    if (flt->age.present && !(f.age = malloc(e.words * sizeof *f.age + 8)))
        goto fail_nomem;
    if (flt->sex_mask && !(f.sex = malloc(e.words * sizeof *f.sex + 8)))
        goto fail_nomem;
    if (flt->areas.n_codes) {
        uint32_t n_level = flt->areas.level == CC_AREA_LSOA  ? c->n_lsoa
                           : flt->areas.level == CC_AREA_LAD ? c->n_lad
                           : flt->areas.level == CC_AREA_ICB ? c->n_icb
                                                             : c->n_region;
        f.areas = malloc(e.words * sizeof *f.areas + 8);
        f.area_selected = calloc(n_level + 1, 1);
        if (!f.areas || !f.area_selected)
            goto fail_nomem;
        for (uint32_t i = 0; i < flt->areas.n_codes; i++)
            if (flt->areas.index[i] < n_level)
                f.area_selected[flt->areas.index[i]] = 1;
    }
    if (flt->practices.n_codes) {
        f.practices = malloc(e.words * sizeof *f.practices + 8);
        f.practice_selected = calloc(c->n_practices + 1, 1);
        if (!f.practices || !f.practice_selected)
            goto fail_nomem;
        for (uint32_t i = 0; i < flt->practices.n_codes; i++)
            if (flt->practices.index[i] < c->n_practices)
                f.practice_selected[flt->practices.index[i]] = 1;
    }
    struct person_filter_ctx pf = {&e, &f};
    par_for(e.n_threads, e.words, 1, person_filter_range, &pf);
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source != CC_POPULATION_ESTIMATE) {
        /* the registered population: persons with a GP registration */
        for (uint32_t p = 0; p < c->n_persons; p++)
            if (c->person_practice[p] == UINT16_MAX)
                e.person_filter[p >> 6] &= ~(1ULL << (p & 63));
    }

    /* The cohort, and its size without each restriction. */
    uint64_t **cond_sets = calloc(flt->n_conditions ? flt->n_conditions : 1, sizeof *cond_sets);
    if (!cond_sets)
        goto fail_nomem;
    for (uint32_t i = 0; i < flt->n_conditions; i++)
        cond_sets[i] = e.plans[i].persons;
    out->cohort_persons = build_cohort(&e, cond_sets, &f, 0, -1, e.cohort);
    out->n_restrictions = cc_query_restrictions(query, out->restrictions, CC_EXEC_MAX_RESTRICTIONS);
    if (out->n_restrictions > CC_EXEC_MAX_RESTRICTIONS)
        out->n_restrictions = CC_EXEC_MAX_RESTRICTIONS;
    for (uint32_t r = 0; r < out->n_restrictions && rc == 0; r++) {
        const struct cc_query_restriction *res = &out->restrictions[r];
        if (res->kind == CC_RESTRICT_DATE_RANGE || res->kind == CC_RESTRICT_SETTINGS)
            rc = cohort_without_filter(&e, &f, res->kind, &out->cohort_without[r]);
        else
            out->cohort_without[r] =
                build_cohort(&e, cond_sets, &f, res->kind, (int)res->condition, NULL);
        if (res->kind == CC_RESTRICT_CONDITION && res->condition < flt->n_conditions) {
            /* the persons the condition picks out, among those not opted out */
            out->condition_key[r] =
                key_sum_of(&e, e.plans[res->condition].persons, e.excluded);
        }
    }
    free(cond_sets);
    if (rc < 0)
        goto out;
    out->cohort_key = key_sum_of(&e, e.cohort, NULL);
    if (options && options->cohort_keys) {
        out->cohort_keys = malloc((out->cohort_persons ? out->cohort_persons : 1) *
                                  sizeof *out->cohort_keys);
        if (!out->cohort_keys)
            goto fail_nomem;
        uint64_t n = 0;
        for (uint64_t w = 0; w < e.words; w++)
            for (uint64_t bits = e.cohort[w]; bits; bits &= bits - 1)
                out->cohort_keys[n++] =
                    c->person_record_key[w * 64 + (uint64_t)__builtin_ctzll(bits)];
    }

    /* Counting. */
    for (unsigned t = 0; t < e.n_threads; t++) {
        e.thread_counts[t] = calloc(e.n_cells, sizeof *e.thread_counts[t]);
        e.thread_keys[t] = calloc(e.n_cells, sizeof *e.thread_keys[t]);
        if (!e.thread_counts[t] || !e.thread_keys[t])
            goto fail_nomem;
        if (options && options->cell_sketches) {
            size_t n = (size_t)e.n_cells * CC_EXEC_SKETCH_BUCKETS;
            if (!(e.thread_sketch[t] = malloc(n * sizeof *e.thread_sketch[t])))
                goto fail_nomem;
            memset(e.thread_sketch[t], 0xff, n * sizeof *e.thread_sketch[t]);
        }
    }
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source == CC_POPULATION_ESTIMATE) {
        if ((rc = count_population_estimate(&e, &f)) < 0) {
            snprintf(errbuf, errlen, "population estimates come by area, sex and 5-year band "
                                     "only: a dimension or age range does not fit them");
            goto out;
        }
    } else if ((query->measure == CC_MEASURE_PERSONS || query->measure == CC_MEASURE_POPULATION) &&
               !e.record_dims) {
        par_for(e.n_threads, e.words, 1, count_cohort_range, &e);
    } else {
        rc_ctx.e = &e;
        rc_ctx.events = query->measure == CC_MEASURE_EVENTS;
        uint64_t n_items;
        if (query->events_of >= 0 && (uint32_t)query->events_of < flt->n_conditions) {
            /* the records of one condition: a record with several matching
             * codes is one event */
            each_matching_record(&e, &e.plans[query->events_of], collect_record, &list);
            if (list.oom)
                goto fail_nomem;
            if (list.n)
                qsort(list.records, list.n, sizeof *list.records, u64_cmp);
            uint64_t kept = 0;
            for (uint64_t i = 0; i < list.n; i++)
                if (!kept || list.records[kept - 1] != list.records[i])
                    list.records[kept++] = list.records[i];
            list.n = kept;
            rc_ctx.records = list.records;
            n_items = list.n;
        } else {
            n_items = scan_length(&e);
        }
        par_for(e.n_threads, n_items, 4096, count_records_range, &rc_ctx);
        if (rc_ctx.oom)
            goto fail_nomem;
        if (!rc_ctx.events) {
            /* a person counts once per cell */
            uint64_t n_pairs = 0;
            for (unsigned t = 0; t < e.n_threads; t++)
                n_pairs += rc_ctx.n_pairs[t];
            uint64_t *pairs = malloc((n_pairs + 1) * sizeof *pairs);
            if (!pairs)
                goto fail_nomem;
            uint64_t k = 0;
            for (unsigned t = 0; t < e.n_threads; t++) {
                if (rc_ctx.n_pairs[t])
                    memcpy(pairs + k, rc_ctx.pairs[t], rc_ctx.n_pairs[t] * sizeof *pairs);
                k += rc_ctx.n_pairs[t];
            }
            if (n_pairs)
                qsort(pairs, n_pairs, sizeof *pairs, u64_cmp);
            for (uint64_t i = 0; i < n_pairs; i++) {
                if (i && pairs[i] == pairs[i - 1])
                    continue;
                uint64_t cell = pairs[i] >> 32;
                uint32_t person = (uint32_t)pairs[i];
                e.thread_counts[0][cell]++;
                e.thread_keys[0][cell] += c->person_record_key[person];
                sketch_in(e.thread_sketch[0], cell, c->person_record_key[person]);
            }
            free(pairs);
        }
    }

    /* Sum the threads' counts into the result. */
    out->count = e.thread_counts[0];
    out->cell_key = e.thread_keys[0];
    out->cell_sketch = e.thread_sketch[0];
    e.thread_counts[0] = NULL;
    e.thread_keys[0] = NULL;
    e.thread_sketch[0] = NULL;
    for (unsigned t = 1; t < e.n_threads; t++) {
        for (uint64_t i = 0; i < e.n_cells; i++) {
            out->count[i] += e.thread_counts[t][i];
            out->cell_key[i] += e.thread_keys[t][i];
        }
        if (out->cell_sketch)
            for (uint64_t i = 0; i < e.n_cells * CC_EXEC_SKETCH_BUCKETS; i++)
                if (e.thread_sketch[t][i] < out->cell_sketch[i])
                    out->cell_sketch[i] = e.thread_sketch[t][i];
    }
    out->n_cells = e.n_cells;
    out->n_dimensions = e.n_dims;
    for (uint32_t i = 0; i < e.n_dims; i++) {
        out->dimensions[i].kind = e.dims[i].kind;
        out->dimensions[i].n_values = e.dims[i].extent;
        out->dimensions[i].total = e.dims[i].total == NO_VALUE ? CC_RAW_NO_TOTAL : e.dims[i].total;
        out->dimensions[i].first = e.dims[i].first;
        memcpy(out->dimensions[i].sex_code, e.dims[i].sex_code, sizeof e.dims[i].sex_code);
        if (e.dims[i].kind == CC_DIM_AGE_BAND)
            for (int age = 255; age >= 0; age--)
                if (e.dims[i].age_band[age] < CC_EXEC_MAX_AGE_BANDS)
                    out->dimensions[i].age_lower[e.dims[i].age_band[age]] = (uint8_t)age;
    }
    out->columns_ = c;
    out->noise_epoch = cc_dataversion_noise_epoch(version);
    rc = 0;
    goto out;
fail_nomem:
    rc = CC_ENOMEM;
    snprintf(errbuf, errlen, "out of memory");
out:
    for (unsigned t = 0; t < 8; t++)
        free(rc_ctx.pairs[t]);
    free(list.records);
    free(f.age);
    free(f.sex);
    free(f.areas);
    free(f.area_selected);
    free(f.practices);
    free(f.practice_selected);
    free_exec(&e);
    if (rc < 0)
        cc_raw_result_free(out);
    return rc;
}

uint32_t cc_raw_result_coordinate(const struct cc_raw_result *result, uint64_t cell, uint32_t d)
{
    uint64_t stride = 1;
    for (uint32_t i = result->n_dimensions; i-- > d + 1;)
        stride *= result->dimensions[i].n_values;
    return (uint32_t)(cell / stride % result->dimensions[d].n_values);
}

void cc_raw_result_label(const struct cc_raw_result *result, uint32_t d, uint32_t v, char *buf,
                         size_t len)
{
    const struct cc_store_columns *c = result->columns_;
    const struct cc_raw_dimension *dim = &result->dimensions[d];
    int32_t value = dim->first + (int32_t)v;
    static const char *const settings[] = {"gp", "hospital", "community"};
    if (v == dim->total) {
        snprintf(buf, len, "total");
        return;
    }
    switch (dim->kind) {
    case CC_DIM_REGION:
        snprintf(buf, len, "%s", c->region_code[v]);
        break;
    case CC_DIM_ICB:
        snprintf(buf, len, "%s", c->icb_code[v]);
        break;
    case CC_DIM_LAD:
        snprintf(buf, len, "%s", c->lad_code[v]);
        break;
    case CC_DIM_LSOA:
        snprintf(buf, len, "%s", c->lsoa_code[v]);
        break;
    case CC_DIM_PRACTICE:
        snprintf(buf, len, "%s", c->practice_code[v]);
        break;
    case CC_DIM_SEX:
        snprintf(buf, len, "%s", v < 4 && cc_query_sex_name(dim->sex_code[v])
                                     ? cc_query_sex_name(dim->sex_code[v])
                                     : "?");
        break;
    case CC_DIM_SETTING:
        snprintf(buf, len, "%s", v < 3 ? settings[v] : "?");
        break;
    case CC_DIM_YEAR:
        snprintf(buf, len, "%d", value);
        break;
    case CC_DIM_QUARTER:
        snprintf(buf, len, "%d-Q%d", value / 4, value % 4 + 1);
        break;
    case CC_DIM_MONTH:
        snprintf(buf, len, "%04d-%02d", value / 12, value % 12 + 1);
        break;
    case CC_DIM_AGE_BAND:
        if (v + 1 < dim->n_values - (dim->total != CC_RAW_NO_TOTAL) &&
            dim->age_lower[v + 1] == dim->age_lower[v] + 1)
            snprintf(buf, len, "%u", dim->age_lower[v]);
        else if (v + 1 < dim->n_values - (dim->total != CC_RAW_NO_TOTAL))
            snprintf(buf, len, "%u-%u", dim->age_lower[v], dim->age_lower[v + 1] - 1u);
        else
            snprintf(buf, len, "%u+", dim->age_lower[v]);
        break;
    default:
        snprintf(buf, len, "?");
        break;
    }
}

bool cc_raw_result_is_margin(const struct cc_raw_result *result, uint64_t cell)
{
    for (uint32_t d = 0; d < result->n_dimensions; d++)
        if (result->dimensions[d].total != CC_RAW_NO_TOTAL &&
            cc_raw_result_coordinate(result, cell, d) == result->dimensions[d].total)
            return true;
    return false;
}

void cc_raw_result_free(struct cc_raw_result *result)
{
    free(result->count);
    free(result->cell_key);
    free(result->cohort_keys);
    free(result->cell_sketch);
    result->count = NULL;
    result->cell_key = NULL;
    result->cohort_keys = NULL;
    result->cell_sketch = NULL;
}
