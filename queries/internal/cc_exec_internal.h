/*
 * cc_exec_internal.h: what the engine's files (cc_exec.c, cc_exec_plan.c,
 * cc_exec_persons.c, cc_exec_count.c, cc_exec_result.c) share: the state of
 * one execution, the plans of its conditions, its person filter sets, the
 * small look-ups every step makes (inline here, as they sit in the inner
 * loops of several files), and each step's entry point. cc_exec_run()
 * (cc_exec.c) calls the steps in order; docs/engine.md describes them.
 *
 * Must never: be included outside the engine's files; nothing here is part
 * of the engine's contract (internal/cc_exec.h).
 */
#ifndef CC_EXEC_INTERNAL_H
#define CC_EXEC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cc_exec.h"
#include "cc_store.h"

#define NO_VALUE      UINT32_MAX
#define NO_FIRST_DATE UINT16_MAX

/* ---- the state of one execution ---------------------------------------------------- */

struct dim {
    uint8_t kind;
    uint32_t size;   /* the dimension's own values */
    uint32_t total;  /* margins: the total's value (== size); NO_VALUE without */
    uint32_t extent; /* values in the result: size, and the total with margins */
    uint64_t stride;
    int32_t first;          /* period dims: value 0's month, quarter or year */
    uint8_t age_band[256];  /* age band dims: band of each age */
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
    uint64_t *persons;    /* bitset: persons with a matching record */
    uint16_t *first_date; /* per person, if a later condition anchors here */
};

struct exec {
    const struct cc_dataversion *version;
    const uint64_t *excluded; /* the version's opt-out bitset, one bit per person */
    const struct cc_store_columns *c;
    const struct cc_query *q;
    unsigned n_threads;
    uint64_t words;

    cc_day reference_day;
    const uint32_t *ymd;             /* [65536]: year << 9 | month << 5 | day (cc_exec_day_table) */
    const uint8_t *age_at_reference; /* [65536] by date of birth (cc_exec_ages_on) */
    uint8_t *age_table_owned;        /* when the cache was full */

    uint16_t *lsoa_lad, *lsoa_icb, *lsoa_region; /* [n_lsoa] */

    uint32_t n_dims;
    struct dim dims[CC_QUERY_DIMENSIONS_CAP];
    uint64_t n_cells;
    int margins;     /* every cell adds to its margins too (cc_exec.h) */
    int record_dims; /* a dimension belongs to records (setting or period) */

    struct condition_plan *plans; /* [n_conditions] */
    cc_day filter_first_day, filter_last_day;
    unsigned filter_setting_mask;

    uint64_t *person_filter; /* age, sex, areas, opt-out: bitset */
    uint64_t *cohort;

    /* per-thread counts */
    uint64_t *thread_counts[CC_EXEC_MAX_THREADS];
    uint32_t *thread_keys[CC_EXEC_MAX_THREADS];
    /* per-thread cell sketches (options->cell_sketches), else NULL */
    bool sketches;
    uint32_t *thread_sketch[CC_EXEC_MAX_THREADS];
};

/* The person filters' own sets, apart from e->person_filter (opt-outs),
 * kept so that the cohort can be rebuilt without each of them. */
struct filter_sets {
    uint64_t *age, *sex, *areas, *practices; /* NULL when the filter is absent */
    uint8_t *area_selected;                  /* [n areas at the level] */
    uint8_t *practice_selected;              /* [n_practices] */
};

/* The records that an events count (or a per-record persons count) looks
 * at: those of condition events_of, or every record within the query-wide
 * date range and settings. */
struct record_list {
    uint64_t *records;
    uint64_t n, cap;
    int oom;
};

/* ---- look-ups of the inner loops ---------------------------------------------------- */

static inline int ymd_year(uint32_t p)
{
    return (int)(p >> 9);
}
static inline int ymd_month(uint32_t p)
{
    return (int)(p >> 5 & 15);
}

/* Whole years from the date of birth to `on`, from the packed table. */
static inline int age_between(const uint32_t *ymd, uint16_t born, uint16_t on)
{
    uint32_t b = ymd[born], o = ymd[on];
    int age = ymd_year(o) - ymd_year(b);
    if ((o & 0x1ff) < (b & 0x1ff))
        age--;
    return age;
}

static inline int setting_of(const struct cc_store_columns *c, uint64_t record)
{
    for (int s = 1; s <= 3; s++)
        if (record < c->setting_first[s + 1])
            return s;
    return 3;
}

static inline uint32_t area_of(const struct exec *e, int level, uint32_t person)
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

/* ---- the threads (cc_exec_pool.c) and the run (cc_exec.c) --------------------------- */

/* Runs fn over [0, n) split into n_threads (at most CC_EXEC_MAX_THREADS)
 * contiguous chunks aligned to `align` items, chunk t with thread index t,
 * on the caller and the process's pool of helper threads; returns when
 * every chunk has finished. Fewer than 4,096 items, or one thread: all on
 * the caller (the other threads' chunks empty). */
void cc_exec_par_for(unsigned n_threads, uint64_t n, uint64_t align,
                     void (*fn)(void *ctx, unsigned thread, uint64_t begin, uint64_t end),
                     void *ctx);

/* qsort's comparison of two uint64_t. */
int cc_exec_u64_cmp(const void *a, const void *b);

/* ---- planning (cc_exec_plan.c) ------------------------------------------------------- */

/* The packed y/m/d of every day a uint16_t can hold (built once). */
const uint32_t *cc_exec_day_table(void);

/* The age on `on` of every possible date of birth, cached for the last few
 * reference days; when the cache is full, built for the one query into
 * *owned, which the caller frees. NULL: out of memory. */
const uint8_t *cc_exec_ages_on(cc_day on, uint8_t **owned);

/* The dimensions' sizes, strides and value maps into e->dims (periods
 * default to the span of the data). 0, CC_EINVAL (an unknown dimension) or
 * CC_ETOOBIG (too many cells). */
int cc_exec_plan_dimensions(struct exec *e);

/* Plans and fills every condition into plans (which must be zeroed), in
 * index order: an anchor refers to an earlier condition, whose first dates
 * are known by then. e->plans points at plans while they are filled. 0,
 * CC_EINVAL (errbuf says why) or CC_ENOMEM. */
int cc_exec_build_plans(struct exec *e, struct condition_plan *plans, char *errbuf, size_t errlen);

void cc_exec_free_plans(struct condition_plan *plans, uint32_t n);

/* The records of condition `condition` into *list (which the caller frees),
 * in record order, each once however many of its codes match. 0 or
 * CC_ENOMEM. */
int cc_exec_condition_records(const struct exec *e, uint32_t condition, struct record_list *list);

/* ---- person filters and cohorts (cc_exec_persons.c) ---------------------------------- */

/* e->person_filter (not opted out; registered, for the registered
 * population), e->cohort's room, and the sets of the age, sex, area and
 * practice filters into *f (freed with cc_exec_filter_sets_free()). 0 or
 * CC_ENOMEM. */
int cc_exec_person_filters(struct exec *e, struct filter_sets *f);

void cc_exec_filter_sets_free(struct filter_sets *f);

/* The cohort into e->cohort, and into out its size, its restrictions, its
 * size without each of them, the key sums of the cohort and of every
 * condition and, with options->cohort_keys, the cohort's record keys.
 * 0 or CC_ENOMEM. */
int cc_exec_cohorts(struct exec *e, const struct filter_sets *f,
                    const struct cc_exec_options *options, struct cc_raw_result *out, char *errbuf,
                    size_t errlen);

/* ---- counting (cc_exec_count.c) ------------------------------------------------------ */

/* Counts every cell over e->cohort, split across e->n_threads, into
 * out->count and out->cell_key ([e->n_cells]). 0, CC_EINVAL (population
 * estimates asked for what they cannot give; errbuf says why) or
 * CC_ENOMEM. */
int cc_exec_count(struct exec *e, const struct filter_sets *f, struct cc_raw_result *out,
                  char *errbuf, size_t errlen);

#endif
