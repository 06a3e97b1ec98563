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

/* A part of a cell index that means "no cell" (an unknown area, a sex
 * outside the dimension's values, an age below 0): a cell is the sum of one
 * part per kind of dimension, and any sum holding this part is at least
 * CELL_NONE, above every cell (the engine has at most 10 million cells).
 * Parts are 32 bits, so the tables the counting loops look them up in are
 * half the size; sums are taken in 64 bits (8 parts below 2^32 each). */
#define CELL_NONE (1u << 31)

/* The dimensions compiled for the inner loops (cc_exec_plan_cells): a
 * cell is the sum of the parts of the person's LSOA, practice, sex and age
 * band (and, for records, of the setting and the period), each the value's
 * index times its dimension's stride, 0 for a kind the query does not use. */
struct cell_parts {
    uint32_t *lsoa;        /* [n_lsoa + 1]: the area dimensions, the last for an unknown LSOA */
    uint32_t *practice;    /* [n_practices + 1], the last for none; NULL without the dimension */
    uint32_t sex[256];     /* by sex code */
    uint32_t age[256];     /* by age in whole years (255: 255 and over) */
    int has_area, has_sex; /* an area (sex) dimension: the LSOA (sex) is read */
    int has_age;           /* an age band dimension */
    int has_setting, n_periods;
    uint32_t setting[4];                          /* by setting */
    uint32_t period_dim[CC_QUERY_DIMENSIONS_CAP]; /* the period dimensions' indices */
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

/* A cell's count and the sum of the record keys of what it counted, side
 * by side, so counting a thing touches one line. 32 bits hold any count:
 * a cell counts at most every record (fewer than CC_POSTING_MAX_RECORDS,
 * 2^30) or every person (fewer than 2^32). */
struct cell_sum {
    uint32_t count, key;
};

/* What the engine keeps per data version (cc_exec_cache.c): the persons
 * registered with a practice and not opted out, and the registered
 * population by (LSOA, sex) with its key sums and sketches. */
struct exec_version_cache;

struct exec {
    const struct cc_dataversion *version;
    const uint64_t *excluded; /* the version's opt-out bitset, one bit per person */
    const struct cc_store_columns *c;
    const struct cc_query *q;
    unsigned n_threads;
    uint64_t words;
    uint64_t last_word_mask; /* the bits of the last word that are persons */

    cc_day reference_day;
    const uint32_t *ymd;             /* [65536]: year << 9 | month << 5 | day (cc_exec_day_table) */
    const uint8_t *age_at_reference; /* [65536] by date of birth (cc_exec_ages_on) */
    uint8_t *age_table_owned;        /* when the cache was full */

    const uint16_t *lsoa_lad, *lsoa_icb, *lsoa_region; /* [n_lsoa] */

    uint32_t n_dims;
    struct dim dims[CC_QUERY_DIMENSIONS_CAP];
    struct cell_parts cells;
    uint64_t n_cells;
    int margins;     /* every cell adds to its margins too (cc_exec.h) */
    int record_dims; /* a dimension belongs to records (setting or period) */

    struct condition_plan *plans; /* [n_conditions] */
    cc_day filter_first_day, filter_last_day;
    unsigned filter_setting_mask;

    const uint64_t
        *base; /* opted in (registered, for the registered population) or NULL: ~excluded */
    const uint32_t *base_key;               /* per word, the key sum of its persons in base */
    const uint64_t *base_mix;               /* per word, their cc_ledger_key_mix sum */
    const struct exec_version_cache *cache; /* NULL: not built (out of memory) */
    uint64_t *cohort;
    bool cohort_mix; /* the pass sums cc_ledger_key_mix of the cohort's keys too */

    /* per-thread counts and key sums */
    struct cell_sum *thread_sums[CC_EXEC_MAX_THREADS];
    uint64_t *estimates; /* population estimates: the counts, [n_cells] */
    /* per-thread cell sketches (options->cell_sketches), else NULL */
    bool sketches;
    uint32_t *thread_sketch[CC_EXEC_MAX_THREADS];
};

/* The person filters of a query (age, sex, areas, practices), as the
 * person pass evaluates them 64 persons at a time. */
struct filter_sets {
    int age, sex, areas, practices; /* the filter is present */
    uint8_t *area_selected;         /* [n areas at the level] */
    uint8_t *practice_selected;     /* [n_practices] */
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

/* The number of bits set in x. Not __builtin_popcountll: without the popcnt
 * instruction in the target (x86-64's baseline lacks it) that is a call to
 * libgcc's table-driven __popcountdi2, a visible share of the person pass;
 * this is a dozen instructions in line, and one popcnt in a function
 * compiled CC_EXEC_BIT_COUNTING (the compilers know the idiom). */
static inline unsigned popcount64(uint64_t x)
{
    x = x - (x >> 1 & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + (x >> 2 & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* The loops that count bits word by word over all persons (the person
 * pass) are compiled twice on x86-64 by GCC, with and without the popcnt
 * instruction, and the dynamic loader picks the one the CPU can run (an
 * ifunc): a quarter of the pass at 10 million persons. Not under a
 * sanitizer, whose instrumented resolver would run before the sanitizer's
 * runtime is up (ThreadSanitizer crashes there), nor with clang (the fuzz
 * build); there, and elsewhere, they are compiled once. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CC_EXEC_BIT_COUNTING __attribute__((target_clones("popcnt", "default")))
#endif
#endif
#ifndef CC_EXEC_BIT_COUNTING
#define CC_EXEC_BIT_COUNTING
#endif

/* Writes the person indices of the set bits of words[begin, end) to out (in
 * person order); returns how many. Gathering them first lets the loops
 * that read the persons' columns issue their loads back to back, so the
 * cache misses of sparse persons overlap. */
static inline uint64_t persons_of_words(const uint64_t *words, uint64_t begin, uint64_t end,
                                        uint32_t *out)
{
    uint64_t n = 0;
    for (uint64_t w = begin; w < end; w++)
        for (uint64_t bits = words[w]; bits; bits &= bits - 1)
            out[n++] = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
    return n;
}

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

/* What the counting loops read to find a person's cell, copied out of
 * struct exec and the store's columns into one local value: the loops
 * write 32-bit counts, which C lets alias exec's int fields, so a field
 * read through e would be read again after every count. */
struct person_reader {
    const uint16_t *lsoa, *practice, *dob;
    const uint8_t *sex;
    const uint32_t *record_key;
    const uint32_t *lsoa_part, *practice_part, *sex_part, *age_part;
    const uint32_t *ymd;
    const uint8_t *age_at_reference;
    uint32_t n_lsoa, n_practices;
    uint16_t reference_day;
    int has_area, has_sex, has_practice, has_age;
};

static inline struct person_reader person_reader_of(const struct exec *e)
{
    const struct cc_store_columns *c = e->c;
    struct person_reader r = {
        .lsoa = c->person_lsoa,
        .practice = c->person_practice,
        .dob = c->person_dob,
        .sex = c->person_sex,
        .record_key = c->person_record_key,
        .lsoa_part = e->cells.lsoa,
        .practice_part = e->cells.practice,
        .sex_part = e->cells.sex,
        .age_part = e->cells.age,
        .ymd = e->ymd,
        .age_at_reference = e->age_at_reference,
        .n_lsoa = c->n_lsoa,
        .n_practices = c->n_practices,
        .reference_day = (uint16_t)e->reference_day,
        .has_area = e->cells.has_area,
        .has_sex = e->cells.has_sex,
        .has_practice = e->cells.practice != NULL,
        .has_age = e->cells.has_age,
    };
    return r;
}

/* The part of a person's cell that their LSOA, practice and sex give
 * (a column the query has no dimension for is not read). */
static inline uint64_t person_part(const struct person_reader *r, uint32_t person)
{
    uint64_t part = 0;
    if (r->has_area) {
        uint16_t lsoa = r->lsoa[person];
        part += r->lsoa_part[lsoa < r->n_lsoa ? lsoa : r->n_lsoa];
    }
    if (r->has_sex)
        part += r->sex_part[r->sex[person]];
    if (r->has_practice) {
        uint16_t practice = r->practice[person];
        part += r->practice_part[practice < r->n_practices ? practice : r->n_practices];
    }
    return part;
}

/* Asks for the columns of person that person_part and the age parts read,
 * ahead of their use. A macro, not an inline function: GCC 12 finds that
 * a function whose only effect is a prefetch has no effect, and drops its
 * calls before inlining them. */
#define prefetch_person(r, person)                                                                 \
    do {                                                                                           \
        uint32_t p_ = (person);                                                                    \
        __builtin_prefetch(&(r)->record_key[p_]);                                                  \
        if ((r)->has_area)                                                                         \
            __builtin_prefetch(&(r)->lsoa[p_]);                                                    \
        if ((r)->has_sex)                                                                          \
            __builtin_prefetch(&(r)->sex[p_]);                                                     \
        if ((r)->has_practice)                                                                     \
            __builtin_prefetch(&(r)->practice[p_]);                                                \
        if ((r)->has_age)                                                                          \
            __builtin_prefetch(&(r)->dob[p_]);                                                     \
    } while (0)

/* The age band part of a person's cell at the reference day. */
static inline uint64_t reference_age_part(const struct person_reader *r, uint32_t person)
{
    if (!r->has_age)
        return 0;
    uint16_t dob = r->dob[person];
    return dob > r->reference_day ? CELL_NONE : r->age_part[r->age_at_reference[dob]];
}

/* The age band part of a person's cell on day `on` (the date of a record). */
static inline uint64_t age_part_on(const struct person_reader *r, uint32_t person, uint16_t on)
{
    if (!r->has_age)
        return 0;
    int age = age_between(r->ymd, r->dob[person], on);
    return age < 0 ? CELL_NONE : r->age_part[age > 255 ? 255 : age];
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

/* The most calendar years a store's dates span (1900 to 2079). */
#define CC_EXEC_MAX_YEARS 180

/* One calendar year of one setting's records (cc_store.h: records are
 * sorted by setting, year, person, date), persons ascending within it;
 * whole: every record in it is dated within the range it was asked for. */
struct year_run {
    uint64_t first, last;
    int setting;
    int whole;
};

/* The non-empty year runs of setting s that records dated [from, to] lie
 * in, in record order, into out (room for CC_EXEC_MAX_YEARS); how many. */
unsigned cc_exec_year_runs(const struct exec *e, int s, cc_day from, cc_day to,
                           struct year_run *out);

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

/* The dimensions compiled into e->cells (after cc_exec_plan_dimensions and
 * the area look-ups). 0 or CC_ENOMEM. */
int cc_exec_plan_cells(struct exec *e);

/* ---- person filters and cohorts (cc_exec_persons.c) ---------------------------------- */

/* e->cohort's room, and the look-ups of the area and practice filters into
 * *f (freed with cc_exec_filter_sets_free()). 0 or CC_ENOMEM. */
int cc_exec_person_filters(struct exec *e, struct filter_sets *f);

void cc_exec_filter_sets_free(struct filter_sets *f);

/* The person pass: the cohort into e->cohort, and into out its size, its
 * restrictions, its size without each of them, the key sums of the cohort
 * and of every condition and, with options->cohort_hash, the cohort's
 * bitset and keys' hash; with count, also the cells of the cohort's persons
 * (cc_exec_count_persons; the counts must be prepared). 0, CC_EINVAL
 * or CC_ENOMEM. */
int cc_exec_cohorts(struct exec *e, const struct filter_sets *f,
                    const struct cc_exec_options *options, int count, struct cc_raw_result *out,
                    char *errbuf, size_t errlen);

/* ---- counting (cc_exec_count.c) ------------------------------------------------------ */

/* The per-thread counts, keys (and sketches), zeroed. 0 or CC_ENOMEM. */
int cc_exec_count_prepare(struct exec *e);

/* Whether the cells are persons by person dimensions only, counted in the
 * person pass (else cc_exec_count counts records or estimates). */
int cc_exec_counts_persons(const struct exec *e);

/* The cells a thing counted in `cell` adds to: with margins, the cell and
 * every cell with some of its coordinates replaced by their dimension's
 * total (1 << n_dims cells, written to out); without, the cell alone.
 * Returns how many. */
unsigned cc_exec_cells_of(const struct exec *e, uint64_t cell, uint64_t *out);

/* Counts persons[0, n) (of the cohort) into thread's counts; returns the
 * sum of their record keys (with or without a cell), and with
 * e->cohort_mix adds their keys' cc_ledger_key_mix to *mix. */
uint32_t cc_exec_count_persons(struct exec *e, unsigned thread, const uint32_t *persons,
                               uint64_t n, uint64_t *mix);

/* Counts every cell that the person pass did not (records over e->cohort,
 * split across e->n_threads, or population estimates), then sums the
 * threads' counts into out->count and out->cell_key ([e->n_cells]). 0,
 * CC_EINVAL (population estimates asked for what they cannot give; errbuf
 * says why) or CC_ENOMEM. */
int cc_exec_count(struct exec *e, const struct filter_sets *f, struct cc_raw_result *out,
                  char *errbuf, size_t errlen);

/* Sums the threads' counts, keys and sketches (and the estimates) into
 * out. 0 or CC_ENOMEM. */
int cc_exec_count_finish(struct exec *e, struct cc_raw_result *out);

/* ---- what is kept per data version (cc_exec_cache.c) --------------------------------- */

/* The engine's cache of e->version, built on first use. NULL: out of
 * memory. */
const struct exec_version_cache *cc_exec_version_cache(const struct exec *e);

/* The registered persons not opted out, a bitset (last word masked). */
const uint64_t *cc_exec_registered(const struct exec_version_cache *cache);

/* The ICB and the region of every LSOA, [n_lsoa] each. */
void cc_exec_lsoa_areas(const struct exec_version_cache *cache, const uint16_t **icb,
                        const uint16_t **region);
/* The ONS estimates by district (the store's LSOA estimates summed over
 * each district), as cc_raw_result.lad_estimates_ says; NULL without them. */
const uint32_t *cc_exec_lad_estimates(const struct exec_version_cache *cache);

/* How many persons e->base holds (the registered persons, or those not
 * opted out), from the version. */
uint64_t cc_exec_base_count(const struct exec *e);

/* Per word of persons, the sum of the record keys of its persons not opted
 * out (registered 0) or of its registered persons not opted out. */
const uint32_t *cc_exec_word_key_sums(const struct exec_version_cache *cache, int registered);
/* The same words' sums of cc_ledger_key_mix of their keys (the ledger's
 * cohort hash). */
const uint64_t *cc_exec_word_mix_sums(const struct exec_version_cache *cache, int registered);

/* Answers a registered-population query from the cache when it can (areas
 * and sex only: no condition, age or practice in the filters or the
 * dimensions, no cohort keys asked for): the cells, cohort sizes and key
 * sums, exactly as the person pass gives them. 1 answered, 0 not (the
 * caller runs the pass), CC_ENOMEM. */
int cc_exec_population_from_cache(struct exec *e, const struct filter_sets *f,
                                  const struct cc_exec_options *options, struct cc_raw_result *out);

#endif
