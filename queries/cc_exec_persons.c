/*
 * cc_exec_persons.c: the engine's person sets (cc_exec_internal.h,
 * docs/engine.md steps 3 and 4): one pass over persons (split across
 * threads) builds the set of persons not opted out and the sets of the age,
 * sex, area and practice filters; the cohort is the AND of those and of the
 * condition sets (complemented for "but not"), or of the combine tree
 * evaluated word by word; leaving each restriction out in turn gives the
 * cohort sizes that disclosure control weighs, and the key sums of the
 * cohort and of each condition seed its noise.
 *
 * Must never: let a person index or a record key out of the engine other
 * than summed (cohort_key, condition_key) or, when the release layer asks
 * for its ledger, as the cohort's record keys (cohort_keys).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_store.h"

/* ---- person filters --------------------------------------------------------------- */

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

int cc_exec_person_filters(struct exec *e, struct filter_sets *f)
{
    const struct cc_query *query = e->q;
    const struct cc_query_filters *flt = &query->filters;
    const struct cc_store_columns *c = e->c;
    e->person_filter = malloc(e->words * sizeof *e->person_filter + 8);
    e->cohort = malloc(e->words * sizeof *e->cohort + 8);
    if (!e->person_filter || !e->cohort)
        return CC_ENOMEM;
    if (flt->age.present && !(f->age = malloc(e->words * sizeof *f->age + 8)))
        return CC_ENOMEM;
    if (flt->sex_mask && !(f->sex = malloc(e->words * sizeof *f->sex + 8)))
        return CC_ENOMEM;
    if (flt->areas.n_codes) {
        uint32_t n_level = flt->areas.level == CC_AREA_LSOA  ? c->n_lsoa
                           : flt->areas.level == CC_AREA_LAD ? c->n_lad
                           : flt->areas.level == CC_AREA_ICB ? c->n_icb
                                                             : c->n_region;
        f->areas = malloc(e->words * sizeof *f->areas + 8);
        f->area_selected = calloc(n_level + 1, 1);
        if (!f->areas || !f->area_selected)
            return CC_ENOMEM;
        for (uint32_t i = 0; i < flt->areas.n_codes; i++)
            if (flt->areas.index[i] < n_level)
                f->area_selected[flt->areas.index[i]] = 1;
    }
    if (flt->practices.n_codes) {
        f->practices = malloc(e->words * sizeof *f->practices + 8);
        f->practice_selected = calloc(c->n_practices + 1, 1);
        if (!f->practices || !f->practice_selected)
            return CC_ENOMEM;
        for (uint32_t i = 0; i < flt->practices.n_codes; i++)
            if (flt->practices.index[i] < c->n_practices)
                f->practice_selected[flt->practices.index[i]] = 1;
    }
    struct person_filter_ctx pf = {e, f};
    cc_exec_par_for(e->n_threads, e->words, 1, person_filter_range, &pf);
    if (query->measure == CC_MEASURE_POPULATION &&
        query->population_source != CC_POPULATION_ESTIMATE) {
        /* the registered population: persons with a GP registration */
        for (uint32_t p = 0; p < c->n_persons; p++)
            if (c->person_practice[p] == UINT16_MAX)
                e->person_filter[p >> 6] &= ~(1ULL << (p & 63));
    }
    return 0;
}

void cc_exec_filter_sets_free(struct filter_sets *f)
{
    free(f->age);
    free(f->sex);
    free(f->areas);
    free(f->area_selected);
    free(f->practices);
    free(f->practice_selected);
}

/* ---- cohorts ---------------------------------------------------------------------- */

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
    rc = cc_exec_build_plans(e, plans, ignored, sizeof ignored);
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
    cc_exec_free_plans(plans, n);
    return rc;
}

int cc_exec_cohorts(struct exec *e, const struct filter_sets *f,
                    const struct cc_exec_options *options, struct cc_raw_result *out, char *errbuf,
                    size_t errlen)
{
    const struct cc_query *query = e->q;
    const struct cc_query_filters *flt = &query->filters;
    const struct cc_store_columns *c = e->c;
    int rc = 0;
    uint64_t **cond_sets = calloc(flt->n_conditions ? flt->n_conditions : 1, sizeof *cond_sets);
    if (!cond_sets)
        goto fail_nomem;
    for (uint32_t i = 0; i < flt->n_conditions; i++)
        cond_sets[i] = e->plans[i].persons;
    out->cohort_persons = build_cohort(e, cond_sets, f, 0, -1, e->cohort);
    out->n_restrictions = cc_query_restrictions(query, out->restrictions, CC_EXEC_MAX_RESTRICTIONS);
    if (out->n_restrictions > CC_EXEC_MAX_RESTRICTIONS)
        out->n_restrictions = CC_EXEC_MAX_RESTRICTIONS;
    for (uint32_t r = 0; r < out->n_restrictions && rc == 0; r++) {
        const struct cc_query_restriction *res = &out->restrictions[r];
        if (res->kind == CC_RESTRICT_DATE_RANGE || res->kind == CC_RESTRICT_SETTINGS)
            rc = cohort_without_filter(e, f, res->kind, &out->cohort_without[r]);
        else
            out->cohort_without[r] =
                build_cohort(e, cond_sets, f, res->kind, (int)res->condition, NULL);
        if (res->kind == CC_RESTRICT_CONDITION && res->condition < flt->n_conditions) {
            /* the persons the condition picks out, among those not opted out */
            out->condition_key[r] = key_sum_of(e, e->plans[res->condition].persons, e->excluded);
        }
    }
    free(cond_sets);
    if (rc < 0)
        return rc;
    out->cohort_key = key_sum_of(e, e->cohort, NULL);
    if (options && options->cohort_keys) {
        out->cohort_keys =
            malloc((out->cohort_persons ? out->cohort_persons : 1) * sizeof *out->cohort_keys);
        if (!out->cohort_keys)
            goto fail_nomem;
        uint64_t n = 0;
        for (uint64_t w = 0; w < e->words; w++)
            for (uint64_t bits = e->cohort[w]; bits; bits &= bits - 1)
                out->cohort_keys[n++] =
                    c->person_record_key[w * 64 + (uint64_t)__builtin_ctzll(bits)];
    }
    return 0;
fail_nomem:
    snprintf(errbuf, errlen, "out of memory");
    return CC_ENOMEM;
}
