/*
 * cc_exec_persons.c: the engine's person pass (cc_exec_internal.h,
 * docs/engine.md steps 3 and 4): one pass over the persons, 64 at a time,
 * split across threads, that evaluates the person filters (age, sex, areas,
 * practices) of the persons not opted out, ANDs them with the condition
 * sets (complemented for "but not"), or with the combine tree evaluated word
 * by word, into the cohort; counts the cohort, the cohort without each
 * restriction in turn (the sizes disclosure control weighs), the key sums
 * of the cohort and of each condition (which seed its noise), and, for a
 * persons count by person dimensions only, the cells themselves
 * (cc_exec_count_persons_word). The cohort with the query-wide date range
 * or settings lifted needs the conditions' sets without them: those are
 * built first and evaluated in the same pass.
 *
 * Must never: let a person index or a record key out of the engine other
 * than summed (cohort_key, condition_key) or, when the release layer asks
 * for its ledger, as the cohort's bitset and keys' hash (cohort_hash).
 */
#include <stdalign.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_exec_internal.h"
#include "cc_ledger.h"
#include "cc_store.h"

/* ---- person filters --------------------------------------------------------------- */

int cc_exec_person_filters(struct exec *e, struct filter_sets *f)
{
    const struct cc_query_filters *flt = &e->q->filters;
    const struct cc_store_columns *c = e->c;
    e->cohort = malloc(e->words * sizeof *e->cohort + 8);
    if (!e->cohort)
        return CC_ENOMEM;
    f->age = flt->age.present;
    f->sex = flt->sex_mask != 0;
    if (flt->areas.n_codes) {
        uint32_t n_level = flt->areas.level == CC_AREA_LSOA  ? c->n_lsoa
                           : flt->areas.level == CC_AREA_LAD ? c->n_lad
                           : flt->areas.level == CC_AREA_ICB ? c->n_icb
                                                             : c->n_region;
        f->areas = 1;
        if (!(f->area_selected = calloc(n_level + 1, 1)))
            return CC_ENOMEM;
        for (uint32_t i = 0; i < flt->areas.n_codes; i++)
            if (flt->areas.index[i] < n_level)
                f->area_selected[flt->areas.index[i]] = 1;
    }
    if (flt->practices.n_codes) {
        f->practices = 1;
        if (!(f->practice_selected = calloc(c->n_practices + 1, 1)))
            return CC_ENOMEM;
        for (uint32_t i = 0; i < flt->practices.n_codes; i++)
            if (flt->practices.index[i] < c->n_practices)
                f->practice_selected[flt->practices.index[i]] = 1;
    }
    return 0;
}

void cc_exec_filter_sets_free(struct filter_sets *f)
{
    free(f->area_selected);
    free(f->practice_selected);
}

/* The filters' words for the persons of `persons` (bits of word w): bit b
 * of out[k] is set if person w * 64 + b passes filter k (age, sex, areas,
 * practices); a filter that is absent passes everyone. */
static void filter_words(const struct exec *e, const struct filter_sets *f, uint64_t w,
                         uint64_t persons, uint64_t out[4])
{
    const struct cc_query_filters *flt = &e->q->filters;
    const struct cc_store_columns *c = e->c;
    uint64_t age = 0, sex = 0, area = 0, practice = 0;
    for (uint64_t bits = persons; bits; bits &= bits - 1) {
        unsigned b = (unsigned)__builtin_ctzll(bits);
        uint32_t p = (uint32_t)(w * 64 + b);
        if (f->age) {
            int a = e->age_at_reference[c->person_dob[p]];
            if (a >= flt->age.min_years && a <= flt->age.max_years)
                age |= 1ULL << b;
        }
        if (f->sex && (flt->sex_mask & (1u << c->person_sex[p])))
            sex |= 1ULL << b;
        if (f->areas) {
            uint32_t a = area_of(e, flt->areas.level, p);
            if (a != NO_VALUE && f->area_selected[a])
                area |= 1ULL << b;
        }
        if (f->practices && c->person_practice[p] != UINT16_MAX &&
            f->practice_selected[c->person_practice[p]])
            practice |= 1ULL << b;
    }
    out[0] = f->age ? age : ~0ULL;
    out[1] = f->sex ? sex : ~0ULL;
    out[2] = f->areas ? area : ~0ULL;
    out[3] = f->practices ? practice : ~0ULL;
}

/* ---- conditions, word by word ------------------------------------------------------ */

/* Word w of the persons for whom the subtree at node holds, with condition
 * skip (-1: none) left out: its leaf removed, and an operator left without
 * operands removed in turn (*present false: the subtree says nothing). */
static uint64_t combine_word(const struct cc_query_filters *flt, const uint64_t *const *cond_sets,
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

/* Word w of the conditions combined (all persons when the measure ignores
 * conditions), with condition skip (-1: none) left out. */
static uint64_t conditions_word(const struct exec *e, const uint64_t *const *sets, uint64_t w,
                                int skip)
{
    const struct cc_query_filters *flt = &e->q->filters;
    uint64_t bits = ~0ULL;
    if (e->q->measure == CC_MEASURE_POPULATION) {
        /* the population counts no condition */
    } else if (flt->n_nodes) {
        bool present;
        uint64_t combined = combine_word(flt, sets, 0, w, skip, &present);
        if (present)
            bits &= combined;
    } else {
        for (uint32_t i = 0; i < flt->n_conditions; i++) {
            if ((int)i == skip)
                continue;
            bits &= flt->conditions[i].exclude ? ~sets[i][w] : sets[i][w];
        }
    }
    return bits;
}

/* ---- the pass --------------------------------------------------------------------- */

/* The person pass goes through its words in blocks of this many: first
 * every word's sets (no person's column is read unless a filter needs it),
 * then the persons of the block, gathered, for the key sums and the cells. */
#define PASS_BLOCK_WORDS 1024

/* One thread's sums (a cache line of its own at the start, so threads do
 * not share lines where they write most). */
struct pass_sums {
    alignas(64) uint64_t cohort;
    uint64_t filtered; /* persons passing the person filters (is_filtered) */
    uint32_t cohort_key;
    uint64_t cohort_mix; /* with e->cohort_mix */
    uint64_t without[CC_EXEC_MAX_RESTRICTIONS];
    uint32_t condition_key[CC_EXEC_MAX_RESTRICTIONS];
};

struct pass_ctx {
    struct exec *e;
    const struct filter_sets *f;
    const struct cc_raw_result *out; /* its restrictions */
    const uint64_t **sets;           /* [n_conditions] the condition sets */
    const uint64_t **date_sets;      /* without the query-wide date range, or NULL */
    const uint64_t **setting_sets;   /* without the query-wide settings, or NULL */
    int count;                       /* count the cells of the cohort's persons here */
    /* per condition: every person of the cohort is in its set (a term of
     * the AND of a query without a tree); the cohort is its set's persons
     * not opted out (the one condition of a query without person filters) */
    uint8_t condition_holds_cohort[CC_EXEC_MAX_RESTRICTIONS];
    uint8_t condition_is_cohort[CC_EXEC_MAX_RESTRICTIONS];
    /* per restriction: the cohort without it is every person passing the
     * person filters (a query's one condition, or the date range or the
     * settings of a query without conditions, or any condition of a
     * population): counted once per word, or, without person filters, not
     * at all (the base's size is known) */
    uint8_t is_filtered[CC_EXEC_MAX_RESTRICTIONS];
    int any_filtered, count_filtered;
    uint32_t *persons[CC_EXEC_MAX_THREADS]; /* [PASS_BLOCK_WORDS * 64] each */
    struct pass_sums sums[CC_EXEC_MAX_THREADS];
};

/* The sum of the record keys of persons[0, n). */
static uint32_t key_sum(const uint32_t *record_key, const uint32_t *persons, uint64_t n)
{
    uint32_t sum = 0;
    /* a tight loop: the key asked for ahead must be far ahead to be in
     * cache in time */
    for (uint64_t i = 0; i < n; i++) {
        if (i + 64 < n)
            __builtin_prefetch(&record_key[persons[i + 64]]);
        sum += record_key[persons[i]];
    }
    return sum;
}

/* Word w of the conditions without a tree: the AND of their terms
 * (complemented for "but not"); without[i] gets the AND of all terms but
 * i's (prefix and suffix products, so n conditions cost 3n ANDs, not n^2).
 * without may be NULL. */
static uint64_t plain_conditions_word(const struct cc_query_filters *flt,
                                      const uint64_t *const *sets, uint64_t w, uint64_t *without)
{
    uint32_t n = flt->n_conditions;
    uint64_t term[CC_EXEC_MAX_RESTRICTIONS], prefix = ~0ULL;
    for (uint32_t i = 0; i < n; i++)
        term[i] = flt->conditions[i].exclude ? ~sets[i][w] : sets[i][w];
    if (!without) {
        for (uint32_t i = 0; i < n; i++)
            prefix &= term[i];
        return prefix;
    }
    uint64_t suffix[CC_EXEC_MAX_RESTRICTIONS + 1];
    suffix[n] = ~0ULL;
    for (uint32_t i = n; i-- > 0;)
        suffix[i] = suffix[i + 1] & term[i];
    for (uint32_t i = 0; i < n; i++) {
        without[i] = prefix & suffix[i + 1];
        prefix &= term[i];
    }
    return prefix;
}

/* Word w's sets: the cohort into e->cohort, its size and its size without
 * each restriction into sums. (Inlined into pass_range, so that its bit
 * counts use popcnt where pass_range can.) */
static inline __attribute__((always_inline)) void pass_word(struct pass_ctx *x,
                                                            struct pass_sums *sums, uint64_t w)
{
    struct exec *e = x->e;
    const struct cc_query_filters *flt = &e->q->filters;
    const struct cc_raw_result *out = x->out;
    const struct filter_sets *f = x->f;
    uint64_t base = e->base ? e->base[w] : ~e->excluded[w];
    if (w == e->words - 1)
        base &= e->last_word_mask;
    uint64_t filter[4] = {~0ULL, ~0ULL, ~0ULL, ~0ULL};
    if ((f->age || f->sex || f->areas || f->practices) && base)
        filter_words(e, f, w, base, filter);
    uint64_t filtered = base & filter[0] & filter[1] & filter[2] & filter[3];
    /* the conditions, and without each of them */
    int plain = e->q->measure != CC_MEASURE_POPULATION && !flt->n_nodes;
    uint64_t without[CC_EXEC_MAX_RESTRICTIONS];
    uint64_t conditions = plain ? plain_conditions_word(flt, x->sets, w, without)
                                : conditions_word(e, x->sets, w, -1);
    uint64_t cohort = filtered & conditions;
    e->cohort[w] = cohort;
    sums->cohort += popcount64(cohort);
    if (x->count_filtered)
        sums->filtered += popcount64(filtered);
    for (uint32_t r = 0; r < out->n_restrictions; r++) {
        const struct cc_query_restriction *res = &out->restrictions[r];
        uint64_t bits;
        if (x->is_filtered[r])
            continue;
        switch (res->kind) {
        case CC_RESTRICT_CONDITION:
            if (!plain)
                bits = filtered & conditions_word(e, x->sets, w, (int)res->condition);
            else
                bits = filtered &
                       (res->condition < flt->n_conditions ? without[res->condition] : conditions);
            break;
        case CC_RESTRICT_DATE_RANGE:
            bits = filtered & (plain ? plain_conditions_word(flt, x->date_sets, w, NULL)
                                     : conditions_word(e, x->date_sets, w, -1));
            break;
        case CC_RESTRICT_SETTINGS:
            bits = filtered & (plain ? plain_conditions_word(flt, x->setting_sets, w, NULL)
                                     : conditions_word(e, x->setting_sets, w, -1));
            break;
        case CC_RESTRICT_AGE:
            bits = base & filter[1] & filter[2] & filter[3] & conditions;
            break;
        case CC_RESTRICT_SEX:
            bits = base & filter[0] & filter[2] & filter[3] & conditions;
            break;
        case CC_RESTRICT_AREAS:
            bits = base & filter[0] & filter[1] & filter[3] & conditions;
            break;
        case CC_RESTRICT_PRACTICES:
            bits = base & filter[0] & filter[1] & filter[2] & conditions;
            break;
        default:
            bits = cohort;
            break;
        }
        sums->without[r] += popcount64(bits);
    }
}

/* The persons of condition set `set` (not opted out) that differ from the
 * cohort in words [begin, end): those outside it if `outside`, else the
 * cohort's persons not in the set; into persons, how many. */
static uint64_t condition_difference(const struct exec *e, const uint64_t *set, uint64_t begin,
                                     uint64_t end, int outside, uint32_t *persons)
{
    uint64_t n = 0;
    for (uint64_t w = begin; w < end; w++) {
        uint64_t in = set[w] & ~e->excluded[w];
        uint64_t bits = outside ? in & ~e->cohort[w] : e->cohort[w] & ~in;
        for (; bits; bits &= bits - 1)
            persons[n++] = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
    }
    return n;
}

CC_EXEC_BIT_COUNTING
static void pass_range(void *arg, unsigned thread, uint64_t begin, uint64_t end)
{
    struct pass_ctx *x = arg;
    struct exec *e = x->e;
    const uint32_t *record_key = e->c->person_record_key;
    const struct cc_raw_result *out = x->out;
    struct pass_sums *sums = &x->sums[thread];
    uint32_t *persons = x->persons[thread];
    for (uint64_t block = begin; block < end; block += PASS_BLOCK_WORDS) {
        uint64_t block_end = end - block < PASS_BLOCK_WORDS ? end : block + PASS_BLOCK_WORDS;
        for (uint64_t w = block; w < block_end; w++)
            pass_word(x, sums, w);
        uint32_t cohort_key;
        uint64_t n;
        if (x->count) {
            n = persons_of_words(e->cohort, block, block_end, persons);
            cohort_key = cc_exec_count_persons(e, thread, persons, n, &sums->cohort_mix);
        } else {
            /* a word that holds every person of the base has its key sum
             * kept with the version */
            uint32_t whole = 0;
            n = 0;
            for (uint64_t w = block; w < block_end; w++) {
                uint64_t bits = e->cohort[w];
                uint64_t all = e->base ? e->base[w] : ~e->excluded[w];
                if (w == e->words - 1)
                    all &= e->last_word_mask;
                if (bits == all) {
                    whole += e->base_key[w];
                    if (e->cohort_mix)
                        sums->cohort_mix += e->base_mix[w];
                    continue;
                }
                for (; bits; bits &= bits - 1)
                    persons[n++] = (uint32_t)(w * 64 + (uint64_t)__builtin_ctzll(bits));
            }
            cohort_key = whole + key_sum(record_key, persons, n);
            for (uint64_t i = 0; e->cohort_mix && i < n; i++)
                sums->cohort_mix += cc_ledger_key_mix(record_key[persons[i]]);
        }
        sums->cohort_key += cohort_key;
        /* a condition's key sum: the cohort's, plus its persons outside
         * the cohort, less the cohort's persons outside it (for most
         * queries both are few or none) */
        for (uint32_t r = 0; r < out->n_restrictions; r++) {
            const struct cc_query_restriction *res = &out->restrictions[r];
            if (res->kind != CC_RESTRICT_CONDITION || res->condition >= e->q->filters.n_conditions)
                continue;
            const uint64_t *set = x->sets[res->condition];
            uint32_t sum = cohort_key;
            if (!x->condition_holds_cohort[res->condition]) {
                n = condition_difference(e, set, block, block_end, 0, persons);
                sum -= key_sum(record_key, persons, n);
            }
            if (!x->condition_is_cohort[res->condition]) {
                n = condition_difference(e, set, block, block_end, 1, persons);
                sum += key_sum(record_key, persons, n);
            }
            sums->condition_key[r] += sum;
        }
    }
}

/* The condition sets of the query planned again with the query-wide date
 * range (kind CC_RESTRICT_DATE_RANGE) or settings lifted, into *plans
 * (freed by the caller with cc_exec_free_plans). */
static int plans_without_filter(struct exec *e, int kind, struct condition_plan **plans)
{
    uint32_t n = e->q->filters.n_conditions;
    char ignored[64];
    if (!(*plans = calloc(n ? n : 1, sizeof **plans)))
        return CC_ENOMEM;
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
    int rc = cc_exec_build_plans(e, *plans, ignored, sizeof ignored);
    e->plans = base;
    e->filter_first_day = saved_first;
    e->filter_last_day = saved_last;
    e->filter_setting_mask = saved_mask;
    return rc;
}

int cc_exec_cohorts(struct exec *e, const struct filter_sets *f,
                    const struct cc_exec_options *options, int count, struct cc_raw_result *out,
                    char *errbuf, size_t errlen)
{
    const struct cc_query *query = e->q;
    const struct cc_query_filters *flt = &query->filters;
    uint32_t n = flt->n_conditions;
    struct condition_plan *date_plans = NULL, *setting_plans = NULL;
    /* aligned for the threads' sums (a size that is a multiple of it) */
    struct pass_ctx *x = aligned_alloc(alignof(struct pass_ctx), sizeof *x);
    int rc = CC_ENOMEM;
    if (!x)
        goto out;
    memset(x, 0, sizeof *x);
    x->e = e;
    x->f = f;
    x->out = out;
    x->count = count;
    out->n_restrictions = cc_query_restrictions(query, out->restrictions, CC_EXEC_MAX_RESTRICTIONS);
    if (out->n_restrictions > CC_EXEC_MAX_RESTRICTIONS)
        out->n_restrictions = CC_EXEC_MAX_RESTRICTIONS;
    if (!(x->sets = calloc(n ? n : 1, sizeof *x->sets)))
        goto out;
    int plain = query->measure != CC_MEASURE_POPULATION && !flt->n_nodes;
    int person_filters = f->age || f->sex || f->areas || f->practices;
    int no_filters = !person_filters && !e->base;
    for (uint32_t i = 0; i < n; i++) {
        x->condition_holds_cohort[i] = plain && !flt->conditions[i].exclude;
        x->condition_is_cohort[i] = x->condition_holds_cohort[i] && n == 1 && no_filters;
    }
    for (uint32_t r = 0; r < out->n_restrictions; r++) {
        int kind = out->restrictions[r].kind;
        int lifted = kind == CC_RESTRICT_CONDITION || kind == CC_RESTRICT_DATE_RANGE ||
                     kind == CC_RESTRICT_SETTINGS;
        int conditions_left = kind == CC_RESTRICT_CONDITION ? n > 1 : n > 0;
        x->is_filtered[r] = lifted && (query->measure == CC_MEASURE_POPULATION ||
                                       (plain && !conditions_left));
        x->any_filtered |= x->is_filtered[r];
    }
    x->count_filtered = x->any_filtered && person_filters;
    for (uint32_t i = 0; i < n; i++)
        x->sets[i] = e->plans[i].persons;
    for (uint32_t r = 0; r < out->n_restrictions; r++) {
        int kind = out->restrictions[r].kind;
        struct condition_plan **plans = kind == CC_RESTRICT_DATE_RANGE ? &date_plans
                                        : kind == CC_RESTRICT_SETTINGS ? &setting_plans
                                                                       : NULL;
        const uint64_t ***sets = kind == CC_RESTRICT_DATE_RANGE ? &x->date_sets : &x->setting_sets;
        if (!plans || *plans)
            continue;
        if ((rc = plans_without_filter(e, kind, plans)) < 0)
            goto out;
        rc = CC_ENOMEM;
        if (!(*sets = calloc(n ? n : 1, sizeof **sets)))
            goto out;
        for (uint32_t i = 0; i < n; i++)
            (*sets)[i] = (*plans)[i].persons;
    }
    for (unsigned t = 0; t < e->n_threads; t++)
        if (!(x->persons[t] = malloc(PASS_BLOCK_WORDS * 64 * sizeof *x->persons[t])))
            goto out;
    e->cohort_mix = options && options->cohort_hash;
    cc_exec_par_for(e->n_threads, e->words, 1, pass_range, x);
    out->cohort_persons = 0;
    out->cohort_key = 0;
    uint64_t filtered = x->count_filtered ? 0 : cc_exec_base_count(e);
    for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++) {
        out->cohort_persons += x->sums[t].cohort;
        out->cohort_key += x->sums[t].cohort_key;
        filtered += x->sums[t].filtered;
        for (uint32_t r = 0; r < out->n_restrictions; r++) {
            out->cohort_without[r] += x->sums[t].without[r];
            out->condition_key[r] += x->sums[t].condition_key[r];
        }
    }
    for (uint32_t r = 0; r < out->n_restrictions; r++)
        if (x->is_filtered[r])
            out->cohort_without[r] = filtered;
    if (options && options->cohort_hash) {
        /* the ledger's hash of the cohort, summed by the pass */
        rc = CC_ENOMEM;
        if (!(out->cohort_bits = malloc((e->words ? e->words : 1) * sizeof *out->cohort_bits)))
            goto out;
        memcpy(out->cohort_bits, e->cohort, e->words * sizeof *out->cohort_bits);
        for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++)
            out->cohort_hash += x->sums[t].cohort_mix;
    }
    rc = 0;
out:
    if (rc == CC_ENOMEM)
        snprintf(errbuf, errlen, "out of memory");
    if (x) {
        for (unsigned t = 0; t < CC_EXEC_MAX_THREADS; t++)
            free(x->persons[t]);
        free(x->sets);
        free(x->date_sets);
        free(x->setting_sets);
    }
    free(x);
    cc_exec_free_plans(date_plans, n);
    cc_exec_free_plans(setting_plans, n);
    return rc;
}
