/*
 * cc_exec_plan.c: the engine's planning (cc_exec_internal.h, docs/engine.md
 * steps 1, 2 and the dimensions): the day and age tables; every condition's
 * plan (its code-id ranges, settings, roles, dates and anchor) and the set
 * of persons with a matching record: the store's person sets of frequent
 * (code, setting) pairs where they answer, else the posting lists of its
 * codes (a prefix range for ICD-10 and OPCS-4, an exact id for SNOMED CT),
 * or without codes its settings' records, read year run by year run
 * (cc_exec_year_runs) and split across threads by person; the records of
 * one condition, for an events count; and the dimensions' sizes and value
 * maps, compiled into the cell parts the counting loops add up.
 *
 * Must never: read a person's identifiers; a plan holds code ids, dates and
 * bitsets over person indices only.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_store.h"

/* ---- day tables ------------------------------------------------------------------------- */

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

const uint32_t *cc_exec_day_table(void)
{
    pthread_once(&day_table_once, day_table_build);
    return day_table;
}

/* The age on `on` of every possible date of birth, kept for the last few
 * reference days asked for (most queries share today's, or the day after
 * their date range): building it is 65,536 age computations, which was a
 * third of a small query. Entries are never freed or changed once made, so
 * readers need no lock; when the cache is full the table is built for the
 * one query (into *owned, which the caller frees). NULL: out of memory.
 * Called after cc_exec_day_table(), whose table it reads. */
#define AGE_TABLES_KEPT 32
static struct {
    cc_day on;
    const uint8_t *table;
} age_tables[AGE_TABLES_KEPT];
static unsigned n_age_tables;
static pthread_mutex_t age_tables_lock = PTHREAD_MUTEX_INITIALIZER;

const uint8_t *cc_exec_ages_on(cc_day on, uint8_t **owned)
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

/* ---- conditions --------------------------------------------------------------------- */

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

/* The span of the records' dates: from the store's index, else every day. */
static void data_days(const struct exec *e, cc_day *first, cc_day *last)
{
    if (cc_store_record_days(cc_dataversion_store(e->version), first, last) < 0) {
        *first = CC_DAY_MIN;
        *last = CC_DAY_MAX;
    }
}

/* Does plan p need every matching record's date whatever the year runs
 * say: for an anchor, or for the first dates a later condition anchors on? */
static int plan_needs_dates(const struct condition_plan *p)
{
    return p->anchor >= 0 || p->first_date != NULL;
}

/* Does plan p's date range hold every record's date? */
static int plan_covers_data(const struct exec *e, const struct condition_plan *p)
{
    cc_day first, last;
    data_days(e, &first, &last);
    return p->first_day <= first && p->last_day >= last;
}

unsigned cc_exec_year_runs(const struct exec *e, int s, cc_day from, cc_day to,
                           struct year_run *out)
{
    const struct cc_store_columns *c = e->c;
    cc_day data_first, data_last;
    data_days(e, &data_first, &data_last);
    cc_day lo = from > data_first ? from : data_first, hi = to < data_last ? to : data_last;
    if (lo > hi || c->setting_first[s] == c->setting_first[s + 1])
        return 0;
    int first_year = ymd_year(e->ymd[lo]), last_year = ymd_year(e->ymd[hi]);
    unsigned n = 0;
    uint64_t begin, end;
    cc_store_year_records(c, s, first_year, &begin, &end);
    for (int y = first_year; y <= last_year; y++) {
        if (y > first_year) {
            uint64_t next_end;
            begin = end;
            cc_store_year_records(c, s, y, &next_end, &end); /* next_end == begin */
            (void)next_end;
        }
        if (begin == end)
            continue;
        cc_day year_first = cc_day_from_ymd(y, 1, 1);
        cc_day year_last = y < 2079 ? cc_day_from_ymd(y + 1, 1, 1) - 1 : CC_DAY_MAX;
        if (year_first < data_first)
            year_first = data_first;
        if (year_last > data_last)
            year_last = data_last;
        out[n++] = (struct year_run){begin, end, s, from <= year_first && to >= year_last};
    }
    return n;
}

/* Does record r (of a setting the plan takes, reached through a posting
 * with role `role`, or -1 from a scan) match the plan? dates: whether its
 * date must be read (not in a year run the plan's dates hold whole, unless
 * plan_needs_dates). */
static inline int record_matches(const struct exec *e, const struct condition_plan *p, uint64_t r,
                                 int role, int dates)
{
    const struct cc_store_columns *c = e->c;
    if (role >= 0 && p->role_mask && !(p->role_mask & (1u << role)))
        return 0;
    if (!dates)
        return 1;
    cc_day d = c->record_date[r];
    if (d < p->first_day || d > p->last_day)
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

/* The first record of [a, b) (one year run: persons ascending) whose
 * person is at least `person`. */
static uint64_t first_record_of(const struct cc_store_columns *c, uint64_t a, uint64_t b,
                                uint64_t person)
{
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (c->record_person[m] < person)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* The first posting in [a, b) (ascending record indices) whose record is at
 * least `record`. */
static uint64_t first_posting_from(const struct cc_store_columns *c, uint64_t a, uint64_t b,
                                   uint64_t record)
{
    while (a < b) {
        uint64_t m = a + (b - a) / 2;
        if (CC_POSTING_RECORD(c->posting_records[m]) < record)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* The postings of one (code, setting) a plan reads, [first, last). */
struct posting_run {
    uint64_t first, last;
    int setting;
};

/* A plan's work: the person sets of frequent codes it ORs in, and the
 * postings (or, without codes, the settings' records) it reads. */
struct plan_work {
    const uint64_t **sets;
    uint32_t n_sets, cap_sets;
    struct posting_run *runs;
    uint64_t n_runs, cap_runs;
    uint64_t n_postings;
};

static int add_set(struct plan_work *w, const uint64_t *set)
{
    if (w->n_sets == w->cap_sets) {
        uint32_t cap = w->cap_sets ? w->cap_sets * 2 : 8;
        const uint64_t **grown = realloc(w->sets, cap * sizeof *grown);
        if (!grown)
            return CC_ENOMEM;
        w->sets = grown;
        w->cap_sets = cap;
    }
    w->sets[w->n_sets++] = set;
    return 0;
}

static int add_run(struct plan_work *w, uint64_t first, uint64_t last, int setting)
{
    if (first >= last)
        return 0;
    if (w->n_runs == w->cap_runs) {
        uint64_t cap = w->cap_runs ? w->cap_runs * 2 : 16;
        struct posting_run *grown = realloc(w->runs, cap * sizeof *grown);
        if (!grown)
            return CC_ENOMEM;
        w->runs = grown;
        w->cap_runs = cap;
    }
    w->runs[w->n_runs++] = (struct posting_run){first, last, setting};
    w->n_postings += last - first;
    return 0;
}

/* What plan p reads: for each of its codes and settings, the store's person
 * set when the pair has one and nothing but code and setting decides
 * (use_sets), else the pair's postings (those of the setting only, found by
 * binary search). Runs come in setting order within each code, so within a
 * code they are in record order. */
static int plan_work_of(const struct exec *e, const struct condition_plan *p, int use_sets,
                        struct plan_work *w)
{
    const cc_store *store = cc_dataversion_store(e->version);
    int rc;
    for (uint32_t k = 0; k < p->n_ranges; k++)
        for (uint32_t code = p->ranges[k].first; code < p->ranges[k].last; code++)
            for (int s = 1; s <= 3; s++) {
                if (!(p->setting_mask & (1u << s)))
                    continue;
                const uint64_t *set = use_sets ? cc_store_code_persons(store, code, s) : NULL;
                if (set) {
                    if ((rc = add_set(w, set)) < 0)
                        return rc;
                    continue;
                }
                uint64_t first, last;
                cc_store_postings_in_setting(e->c, code, s, &first, &last);
                if ((rc = add_run(w, first, last, s)) < 0)
                    return rc;
            }
    return 0;
}

struct fill_ctx {
    const struct exec *e;
    struct condition_plan *p;
    const struct plan_work *w;
    struct year_run runs[3][CC_EXEC_MAX_YEARS]; /* per setting, those of the plan's dates */
    unsigned n_runs[3];
};

static inline void mark(const struct exec *e, struct condition_plan *p, uint64_t r, int dates)
{
    uint32_t person = e->c->record_person[r];
    p->persons[person >> 6] |= 1ULL << (person & 63);
    if (p->first_date && dates) {
        uint16_t d = e->c->record_date[r];
        if (d < p->first_date[person])
            p->first_date[person] = d;
    }
}

/* Marks the persons of the matching postings [a, b) of a plan without an
 * anchor or first dates, in batches: first the postings' roles and dates
 * are tested without a branch (whether a record lies in the year is a coin
 * toss a branch would often lose, and each loss stalls the loads behind
 * it), keeping the matching records; then their persons are read and
 * marked, loads that overlap as nothing depends on them. */
static void mark_postings(const struct exec *e, struct condition_plan *p, uint64_t a, uint64_t b,
                          int dates)
{
    enum { BATCH = 2048 };
    const struct cc_store_columns *c = e->c;
    uint32_t records[BATCH];
    unsigned roles = p->role_mask ? p->role_mask : 7u;
    uint32_t from = (uint32_t)p->first_day, span = (uint32_t)(p->last_day - p->first_day);
    if (dates && p->first_day > p->last_day)
        return; /* the condition's months and the query's do not meet */
    for (uint64_t batch = a; batch < b; batch += BATCH) {
        uint64_t batch_end = b - batch < BATCH ? b : batch + BATCH;
        uint64_t n = 0;
        for (uint64_t i = batch; i < batch_end; i++) {
            uint32_t posting = c->posting_records[i];
            uint32_t r = CC_POSTING_RECORD(posting);
            unsigned ok = roles >> CC_POSTING_ROLE(posting) & 1u;
            if (dates) {
                if (i + 64 < batch_end)
                    __builtin_prefetch(
                        &c->record_date[CC_POSTING_RECORD(c->posting_records[i + 64])]);
                ok &= (uint32_t)c->record_date[r] - from <= span;
            }
            records[n] = r;
            n += ok;
        }
        for (uint64_t i = 0; i < n; i++) {
            if (i + 64 < n)
                __builtin_prefetch(&c->record_person[records[i + 64]]);
            uint32_t person = c->record_person[records[i]];
            p->persons[person >> 6] |= 1ULL << (person & 63);
        }
    }
}

/* Marks the persons of words [begin, end) (a thread's share: no other
 * thread writes these words or these persons' first dates), year run by
 * year run: within one, records and a code's postings are in person order,
 * so the thread's records and postings are sub-ranges found by binary
 * search; a run the plan's dates hold whole needs no record's date. */
static void fill_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    (void)thread;
    struct fill_ctx *x = arg;
    const struct exec *e = x->e;
    const struct cc_store_columns *c = e->c;
    struct condition_plan *p = x->p;
    if (begin >= end)
        return;
    uint64_t lo_person = begin * 64, hi_person = end * 64;
    for (uint64_t w = begin; w < end; w++)
        p->persons[w] = 0;
    for (uint32_t i = 0; i < x->w->n_sets; i++)
        for (uint64_t w = begin; w < end; w++)
            p->persons[w] |= x->w->sets[i][w];
    if (p->first_date)
        for (uint64_t person = lo_person; person < hi_person && person < c->n_persons; person++)
            p->first_date[person] = NO_FIRST_DATE;
    /* this thread's records of each year run */
    uint64_t lo_record[3][CC_EXEC_MAX_YEARS], hi_record[3][CC_EXEC_MAX_YEARS];
    for (int s = 0; s < 3; s++)
        for (unsigned y = 0; y < x->n_runs[s]; y++) {
            const struct year_run *run = &x->runs[s][y];
            lo_record[s][y] = first_record_of(c, run->first, run->last, lo_person);
            hi_record[s][y] = first_record_of(c, lo_record[s][y], run->last, hi_person);
        }
    int needs_dates = plan_needs_dates(p);
    if (!p->ranges) {
        /* no codes: every record of the settings */
        for (int s = 0; s < 3; s++)
            for (unsigned y = 0; y < x->n_runs[s]; y++) {
                int dates = needs_dates || !x->runs[s][y].whole;
                for (uint64_t r = lo_record[s][y]; r < hi_record[s][y]; r++)
                    if (record_matches(e, p, r, -1, dates))
                        mark(e, p, r, dates);
            }
        return;
    }
    for (uint64_t k = 0; k < x->w->n_runs; k++) {
        const struct posting_run *postings = &x->w->runs[k];
        int s = postings->setting - 1;
        uint64_t a = postings->first;
        for (unsigned y = 0; y < x->n_runs[s] && a < postings->last; y++) {
            int dates = needs_dates || !x->runs[s][y].whole;
            a = first_posting_from(c, a, postings->last, lo_record[s][y]);
            uint64_t b = first_posting_from(c, a, postings->last, hi_record[s][y]);
            if (!needs_dates) {
                mark_postings(e, p, a, b, dates);
            } else {
                for (uint64_t i = a; i < b; i++) {
                    uint32_t posting = c->posting_records[i];
                    uint64_t r = CC_POSTING_RECORD(posting);
                    if (record_matches(e, p, r, (int)CC_POSTING_ROLE(posting), dates))
                        mark(e, p, r, dates);
                }
            }
            a = b;
        }
    }
}

/* The year runs of plan p's settings and dates into x. */
static void plan_year_runs(const struct exec *e, const struct condition_plan *p, struct fill_ctx *x)
{
    for (int s = 1; s <= 3; s++)
        x->n_runs[s - 1] = p->setting_mask & (1u << s)
                               ? cc_exec_year_runs(e, s, p->first_day, p->last_day, x->runs[s - 1])
                               : 0;
}

/* Fills plan index's person set (and first dates): from the store's person
 * sets where they answer, else from the postings of the plan's year runs,
 * split across threads by person. */
static int fill_condition(struct exec *e, uint32_t index)
{
    struct condition_plan *p = &e->plans[index];
    struct plan_work w = {0};
    int use_sets = !plan_needs_dates(p) && plan_covers_data(e, p) &&
                   (p->role_mask == 0 || (p->role_mask & 7) == 7);
    int rc = p->ranges ? plan_work_of(e, p, use_sets, &w) : 0;
    struct fill_ctx *x = NULL;
    if (rc == 0 && !(x = malloc(sizeof *x)))
        rc = CC_ENOMEM;
    if (rc == 0) {
        x->e = e;
        x->p = p;
        x->w = &w;
        plan_year_runs(e, p, x);
        uint64_t work = 0;
        if (p->ranges) {
            work = w.n_postings;
        } else {
            for (int s = 0; s < 3; s++)
                for (unsigned y = 0; y < x->n_runs[s]; y++)
                    work += x->runs[s][y].last - x->runs[s][y].first;
        }
        /* a few postings are not worth waking the pool for */
        unsigned threads = work < 65536 ? 1 : e->n_threads;
        cc_exec_par_for(threads, e->words, 1, fill_range, x);
    }
    free(x);
    free(w.sets);
    free(w.runs);
    return rc;
}

void cc_exec_free_plans(struct condition_plan *plans, uint32_t n)
{
    for (uint32_t i = 0; plans && i < n; i++) {
        free(plans[i].ranges);
        free(plans[i].persons);
        free(plans[i].first_date);
    }
    free(plans);
}

int cc_exec_build_plans(struct exec *e, struct condition_plan *plans, char *errbuf, size_t errlen)
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
        } else if (!plans[a].first_date && !(plans[a].first_date = malloc(
                                                 (size_t)e->c->n_persons * sizeof(uint16_t) + 2))) {
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

/* ---- the records of a condition ----------------------------------------------------- */

static int collect_record(struct record_list *l, uint64_t r)
{
    if (l->n == l->cap) {
        uint64_t cap = l->cap ? l->cap * 2 : 4096;
        uint64_t *grown = realloc(l->records, cap * sizeof *grown);
        if (!grown) {
            l->oom = 1;
            return CC_ENOMEM;
        }
        l->records = grown;
        l->cap = cap;
    }
    l->records[l->n++] = r;
    return 0;
}

int cc_exec_condition_records(const struct exec *e, uint32_t condition, struct record_list *list)
{
    const struct cc_store_columns *c = e->c;
    const struct condition_plan *p = &e->plans[condition];
    struct fill_ctx *x = malloc(sizeof *x);
    struct plan_work w = {0};
    int needs_dates = plan_needs_dates(p), rc = CC_ENOMEM;
    if (!x)
        return CC_ENOMEM;
    plan_year_runs(e, p, x);
    if (!p->ranges) {
        /* in record order, each once */
        for (int s = 0; s < 3; s++)
            for (unsigned y = 0; y < x->n_runs[s]; y++) {
                const struct year_run *run = &x->runs[s][y];
                int dates = needs_dates || !run->whole;
                for (uint64_t r = run->first; r < run->last; r++)
                    if (record_matches(e, p, r, -1, dates) && collect_record(list, r) < 0)
                        goto out;
            }
        rc = 0;
        goto out;
    }
    if (plan_work_of(e, p, 0, &w) < 0)
        goto out;
    for (uint64_t k = 0; k < w.n_runs && !list->oom; k++) {
        int s = w.runs[k].setting - 1;
        uint64_t a = w.runs[k].first;
        for (unsigned y = 0; y < x->n_runs[s] && !list->oom; y++) {
            int dates = needs_dates || !x->runs[s][y].whole;
            a = first_posting_from(c, a, w.runs[k].last, x->runs[s][y].first);
            uint64_t b = first_posting_from(c, a, w.runs[k].last, x->runs[s][y].last);
            for (uint64_t i = a; i < b; i++) {
                uint32_t posting = c->posting_records[i];
                uint64_t r = CC_POSTING_RECORD(posting);
                if (record_matches(e, p, r, (int)CC_POSTING_ROLE(posting), dates) &&
                    collect_record(list, r) < 0)
                    break;
            }
            a = b;
        }
    }
    if (list->oom)
        goto out;
    uint64_t n_codes = 0;
    for (uint32_t k = 0; k < p->n_ranges; k++)
        n_codes += p->ranges[k].last - p->ranges[k].first;
    /* one code: its runs are in record order and a record carries a code
     * once; several: a record with several matching codes is one event */
    if (n_codes > 1) {
        if (list->n)
            qsort(list->records, list->n, sizeof *list->records, cc_exec_u64_cmp);
        uint64_t kept = 0;
        for (uint64_t i = 0; i < list->n; i++)
            if (!kept || list->records[kept - 1] != list->records[i])
                list->records[kept++] = list->records[i];
        list->n = kept;
    }
    rc = 0;
out:
    free(x);
    free(w.runs);
    return list->oom ? CC_ENOMEM : rc;
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

int cc_exec_plan_dimensions(struct exec *e)
{
    const struct cc_query *query = e->q;
    const struct cc_store_columns *c = e->c;
    /* periods default to the span of the data */
    cc_day data_first = CC_DAY_MAX, data_last = CC_DAY_MIN;
    int periods = 0;
    for (uint32_t i = 0; i < query->n_dimensions; i++)
        periods |= query->dimensions[i].kind == CC_DIM_YEAR ||
                   query->dimensions[i].kind == CC_DIM_QUARTER ||
                   query->dimensions[i].kind == CC_DIM_MONTH;
    if (periods && !query->filters.date_range.present &&
        cc_store_record_days(cc_dataversion_store(e->version), &data_first, &data_last) < 0) {
        /* the store's index (built with the first data version) keeps the
         * span; without it, every record's date is read */
        data_first = CC_DAY_MAX;
        data_last = CC_DAY_MIN;
        for (uint64_t r = 0; r < c->n_records; r++) {
            if (c->record_date[r] < data_first)
                data_first = c->record_date[r];
            if (c->record_date[r] > data_last)
                data_last = c->record_date[r];
        }
    }
    if (data_first > data_last)
        data_first = data_last = e->reference_day;
    return plan_dimensions(e, data_first, data_last);
}

/* ---- cells ---------------------------------------------------------------------------- */

/* The part of value v of dimension d: v times its stride, or CELL_NONE for
 * no value (what cell_of used to test value by value). */
static uint32_t part_of(const struct dim *d, uint32_t v)
{
    return v == NO_VALUE || v >= d->size ? CELL_NONE : (uint32_t)(v * d->stride);
}

int cc_exec_plan_cells(struct exec *e)
{
    const struct cc_store_columns *c = e->c;
    struct cell_parts *cells = &e->cells;
    int practice = 0;
    for (uint32_t i = 0; i < e->n_dims; i++)
        practice |= e->dims[i].kind == CC_DIM_PRACTICE;
    cells->lsoa = calloc((size_t)c->n_lsoa + 1, sizeof *cells->lsoa);
    if (!cells->lsoa)
        return CC_ENOMEM;
    if (practice &&
        !(cells->practice = calloc((size_t)c->n_practices + 1, sizeof *cells->practice)))
        return CC_ENOMEM;
    for (uint32_t i = 0; i < e->n_dims; i++) {
        const struct dim *d = &e->dims[i];
        switch (d->kind) {
        case CC_DIM_REGION:
        case CC_DIM_ICB:
        case CC_DIM_LAD:
        case CC_DIM_LSOA:
            for (uint32_t lsoa = 0; lsoa < c->n_lsoa; lsoa++) {
                uint32_t v = d->kind == CC_DIM_REGION ? e->lsoa_region[lsoa]
                             : d->kind == CC_DIM_ICB  ? e->lsoa_icb[lsoa]
                             : d->kind == CC_DIM_LAD  ? e->lsoa_lad[lsoa]
                                                      : lsoa;
                cells->lsoa[lsoa] += part_of(d, v);
            }
            cells->lsoa[c->n_lsoa] += CELL_NONE;
            cells->has_area = 1;
            break;
        case CC_DIM_PRACTICE:
            for (uint32_t k = 0; k < c->n_practices; k++)
                cells->practice[k] += part_of(d, k);
            cells->practice[c->n_practices] += CELL_NONE;
            break;
        case CC_DIM_SEX:
            cells->has_sex = 1;
            for (unsigned code = 0; code < 256; code++)
                cells->sex[code] +=
                    part_of(d, d->sex_value[code] == 0xff ? NO_VALUE : d->sex_value[code]);
            break;
        case CC_DIM_AGE_BAND:
            cells->has_age = 1;
            for (unsigned age = 0; age < 256; age++)
                cells->age[age] += part_of(d, d->age_band[age]);
            break;
        case CC_DIM_SETTING:
            cells->has_setting = 1;
            for (uint32_t s = 1; s <= 3; s++)
                cells->setting[s] += part_of(d, s - 1);
            break;
        default: /* periods */
            cells->period_dim[cells->n_periods++] = i;
            break;
        }
    }
    return 0;
}
