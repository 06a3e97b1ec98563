/*
 * cc_ingest_feeds.c: the patient-level feeds of the ingest stage: the opt-out
 * register feed, GP registrations, GP events, hospital episodes and
 * community contacts (columns in docs/data-formats.md, linkage rules in
 * docs/linkage.md).
 *
 * Every row is validated field by field; a bad row is written to the rejects
 * report as file, line and reason and the run goes on. Names are dropped by
 * the CSV reader (cc_csv_drop_column) before a row reaches this file; NHS
 * numbers and postcodes live only in stack buffers for the row being parsed
 * and leave it as pseudonyms.
 *
 * Must never: print, log or store a name, NHS number or postcode of a person.
 */
#include "cc_ingest_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cc_array.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_model.h"
#include "cc_validate.h"

#define NO_REGISTRATION UINT16_MAX

/* ---- columns -------------------------------------------------------------- */

#define FIELD(f, c) ((f)[c].data), ((f)[c].len)

/* ---- pseudonyms, memoised per run ------------------------------------------- */

/* The pseudonym of 10 valid NHS number digits. Every valid number passes
 * here, so this is also where a generated run's numbers are held to the
 * generator's range (cc_ingest.h, "Provenance"). */
static void pseudo_nhs(struct cc_ingest_ctx *ctx, const char digits[CC_NHS_NUMBER_DIGITS],
                       cc_pseudonym *out)
{
    if (ctx->nhs_first && (memcmp(digits, ctx->nhs_first, CC_NHS_NUMBER_DIGITS) < 0 ||
                           memcmp(digits, ctx->nhs_last, CC_NHS_NUMBER_DIGITS) > 0))
        ctx->nhs_outside_range++;
    if (cc_ingest_ahead_nhs(ctx, digits, out))
        return; /* computed on the reading thread */
    uint64_t packed = 1; /* non-zero: 0 marks an empty slot */
    for (int i = 0; i < CC_NHS_NUMBER_DIGITS; i++)
        packed = packed * 10 + (uint64_t)(digits[i] - '0');
    uint64_t slot = (packed * 0x9e3779b97f4a7c15ULL) >> 52; /* 12 bits: CC_NHS_RECENT */
    if (ctx->nhs_recent_key[slot] == packed) {
        *out = ctx->nhs_recent[slot];
        return;
    }
    cc_pseudo_nhs(ctx->key, digits, out);
    ctx->nhs_recent_key[slot] = packed;
    ctx->nhs_recent[slot] = *out;
}

struct postcode_arg {
    const char *canonical;
    size_t len;
};

static void compute_postcode(const cc_pseudo_key *key, const void *arg, cc_pseudonym *out)
{
    const struct postcode_arg *p = arg;
    cc_pseudo_postcode(key, p->canonical, p->len, out);
}

/* The pseudonym of a canonical postcode. */
static void pseudo_postcode(struct cc_ingest_ctx *ctx, const char *canonical, size_t len,
                            cc_pseudonym *out)
{
    struct postcode_arg arg = {canonical, len};
    cc_pseudo_memo_get(&ctx->postcode_memo, cc_postcode_pack(canonical, len), compute_postcode,
                       ctx->key, &arg, out);
}

static int32_t postcode_lsoa(struct cc_ingest_ctx *ctx, const char *canonical, size_t len);

/* The pseudonym and LSOA (-1: not in the lookup) of a canonical postcode:
 * from the reading thread when it computed them for this row. */
static void postcode_facts(struct cc_ingest_ctx *ctx, const char *canonical, size_t len,
                           cc_pseudonym *pseudonym, int32_t *lsoa)
{
    if (cc_ingest_ahead_postcode(ctx, canonical, len, pseudonym, lsoa))
        return;
    pseudo_postcode(ctx, canonical, len, pseudonym);
    *lsoa = postcode_lsoa(ctx, canonical, len);
}

/* The record key of a person (cc_pseudo_record_key). */
static uint32_t record_key_of(struct cc_ingest_ctx *ctx, const cc_pseudonym *person)
{
    uint32_t key;
    if (cc_ingest_ahead_record_key(ctx, person, &key))
        return key;
    return cc_pseudo_record_key(ctx->key, person);
}

/* ---- field validation with reasons ----------------------------------------- */

/* NHS number: 0 with digits, or the reject reason (positive). */
static int check_nhs(const struct cc_csv_field *f, char digits[CC_NHS_NUMBER_DIGITS])
{
    if (f->len == 0)
        return CC_REJECT_NHS_NUMBER_MISSING + 1;
    int rc = cc_validate_nhs_number(f->data, f->len, digits);
    if (rc == CC_EINVAL)
        return CC_REJECT_NHS_NUMBER_CHECK + 1;
    if (rc < 0)
        return CC_REJECT_NHS_NUMBER_SHAPE + 1;
    return 0;
}

static int check_date(const struct cc_csv_field *f, cc_day today, cc_day *out)
{
    if (f->len == 0)
        return CC_REJECT_FIELD_MISSING + 1;
    int rc = cc_validate_date(f->data, f->len, today, out);
    if (rc == CC_EPARSE)
        return CC_REJECT_DATE_SHAPE + 1;
    if (rc == CC_EINVAL)
        return CC_REJECT_DATE_INVALID + 1;
    if (rc < 0) {
        /* out of range: before 1900-01-01 or beyond what the store can
         * hold, whatever today is; otherwise after today */
        cc_day ignored;
        return cc_validate_date(f->data, f->len, CC_DAY_MAX, &ignored) < 0
                   ? CC_REJECT_DATE_RANGE + 1
                   : CC_REJECT_DATE_FUTURE + 1;
    }
    return 0;
}

static int check_sex(const struct cc_csv_field *f, uint8_t *sex)
{
    return cc_validate_sex(f->data, f->len, sex) < 0 ? CC_REJECT_SEX + 1 : 0;
}

static int check_postcode(const struct cc_csv_field *f, char out[CC_POSTCODE_BYTES], size_t *len)
{
    if (f->len == 0)
        return CC_REJECT_FIELD_MISSING + 1;
    return cc_validate_postcode(f->data, f->len, out, len) < 0 ? CC_REJECT_POSTCODE + 1 : 0;
}

/* The LSOA of a packed postcode by binary search of the builder's lookup. */
static int32_t search_lsoa(struct cc_ingest_ctx *ctx, uint64_t key)
{
    const struct cc_store_columns *cols = cc_store_builder_columns(ctx->builder);
    if (!key || !cols->n_postcodes)
        return -1;
    uint32_t lo = 0, hi = cols->n_postcodes;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (cols->postcode_key[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < cols->n_postcodes && cols->postcode_key[lo] == key)
        return cols->postcode_lsoa[lo];
    return -1;
}

/* The LSOA of a canonical postcode, or -1: searched once per postcode per
 * run, then remembered (the lookup never changes during a run). */
static int32_t postcode_lsoa(struct cc_ingest_ctx *ctx, const char *canonical, size_t len)
{
    uint64_t key = cc_postcode_pack(canonical, len);
    if (!key)
        return -1;
    struct cc_u64_map *memo = &ctx->lsoa_memo;
    if (!memo->keys &&
        cc_u64_map_reserve(memo, (uint64_t)cc_store_builder_columns(ctx->builder)->n_postcodes + 512,
                           1024) < 0)
        return search_lsoa(ctx, key);
    uint64_t at = cc_u64_map_slot(memo, key);
    int32_t lsoa;
    if (memo->keys[at]) {
        memcpy(&lsoa, cc_u64_map_value(memo, at), sizeof lsoa);
        return lsoa;
    }
    lsoa = search_lsoa(ctx, key);
    if (!cc_u64_map_full(memo)) {
        /* full enough: further postcodes (misspelt ones, say) are searched */
        cc_u64_map_put(memo, at, key);
        memcpy(cc_u64_map_value(memo, at), &lsoa, sizeof lsoa);
    }
    return lsoa;
}

/* ---- per-person bookkeeping ---------------------------------------------------- */

static int ensure_registration_slots(struct cc_ingest_ctx *ctx, uint64_t person)
{
    size_t old_cap = ctx->latest_registration_cap;
    if (person < old_cap)
        return 0;
    if (person >= SIZE_MAX || cc_array_reserve(&ctx->latest_registration,
                                               &ctx->latest_registration_cap, (size_t)person + 1,
                                               sizeof *ctx->latest_registration))
        return CC_ENOMEM;
    for (size_t i = old_cap; i < ctx->latest_registration_cap; i++)
        ctx->latest_registration[i] = NO_REGISTRATION;
    return 0;
}

static int is_type1(const struct cc_ingest_ctx *ctx, const cc_pseudonym *p)
{
    uint64_t a, b;
    memcpy(&a, p->bytes, 8);
    memcpy(&b, p->bytes + 8, 8);
    if (!(ctx->type1_filter[(a >> 44) / 64] >> ((a >> 44) % 64) & 1))
        return 0;
    return cc_seen_set_has(&ctx->type1, a, b);
}

/* Creates a person first seen in a hospital or community record (a valid NHS
 * number with no GP registration), from that record's demographics. */
static int64_t create_person_from_record(struct cc_ingest_ctx *ctx, const cc_pseudonym *person,
                                         const cc_pseudonym *postcode, int32_t lsoa, cc_day dob,
                                         uint8_t sex)
{
    struct cc_person_input in = {0};
    in.pseudonym = *person;
    in.postcode_pseudonym = *postcode;
    in.dob = dob;
    in.sex = sex;
    in.lsoa = lsoa < 0 ? UINT16_MAX : (uint16_t)lsoa;
    in.practice = UINT16_MAX;
    in.record_key = record_key_of(ctx, person);
    int64_t idx = cc_store_builder_person(ctx->builder, &in);
    if (idx >= 0) {
        int rc = ensure_registration_slots(ctx, (uint64_t)idx);
        if (rc < 0)
            return rc;
    }
    return idx;
}

/* ---- the opt-out register feed ---------------------------------------------------- */

int cc_ingest_optout_feed(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed)
{
    static const char *const names[] = {"nhs_number", "optout_type", "action", "effective_date",
                                        "practice_code"};
    enum { C_NHS, C_TYPE, C_ACTION, C_DATE, C_PRACTICE, C_N };
    int cols[C_N];
    cc_csv *csv = NULL;
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, C_N, cols)) < 0)
        goto out;
    if ((rc = cc_db_begin(ctx->db)) < 0)
        goto out;

    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {

        char digits[CC_NHS_NUMBER_DIGITS];
        int reason = check_nhs(&f[cols[C_NHS]], digits);
        struct cc_optout_event ev = {0};
        if (!reason) {
            const struct cc_csv_field *t = &f[cols[C_TYPE]];
            if (t->len == 5 && !memcmp(t->data, "type1", 5))
                ev.type = CC_OPTOUT_TYPE1;
            else if (t->len == 4 && !memcmp(t->data, "ndop", 4))
                ev.type = CC_OPTOUT_NDOP;
            else
                reason = CC_REJECT_OPTOUT_TYPE + 1;
        }
        if (!reason) {
            const struct cc_csv_field *a = &f[cols[C_ACTION]];
            if (a->len == 8 && !memcmp(a->data, "register", 8))
                ev.action = CC_OPTOUT_REGISTER;
            else if (a->len == 8 && !memcmp(a->data, "withdraw", 8))
                ev.action = CC_OPTOUT_WITHDRAW;
            else
                reason = CC_REJECT_OPTOUT_ACTION + 1;
        }
        if (!reason) {
            /* An opt-out may take effect in the future: only the calendar is checked. */
            int drc = cc_day_parse(FIELD(f, cols[C_DATE]), &ev.effective_day);
            if (drc == CC_EPARSE)
                reason = CC_REJECT_DATE_SHAPE + 1;
            else if (drc < 0)
                reason = CC_REJECT_DATE_INVALID + 1;
        }
        if (!reason && f[cols[C_PRACTICE]].len) {
            char practice[CC_PRACTICE_CODE_BYTES];
            if (cc_validate_practice_code(FIELD(f, cols[C_PRACTICE]), practice) < 0)
                reason = CC_REJECT_PRACTICE + 1;
            else
                memcpy(ev.practice_code, practice, sizeof practice);
        }
        if (reason) {
            cc_ingest_reject(ctx, feed, line, reason - 1);
            continue;
        }
        pseudo_nhs(ctx, digits, &ev.person);
        ev.source = CC_OPTOUT_SOURCE_FEED;
        int added = cc_optout_record(ctx->optouts, &ev);
        if (added == CC_EINVAL) {
            cc_ingest_reject(ctx, feed, line, CC_REJECT_OPTOUT_REFUSED);
            continue;
        }
        if (added < 0) {
            rc = added;
            goto fail;
        }
        if (added != CC_OPTOUT_ALREADY_RECORDED)
            feed->optout_events_added++;
        feed->rows_accepted++;
    }
    if (rc < 0)
        goto fail;
    /* The feed's events become durable together, before the store is built
     * (a replay after a crash finds them already recorded). */
    if ((rc = cc_db_commit(ctx->db)) < 0)
        goto fail;
    ctx->report->optout_events_committed += feed->optout_events_added;
    cc_ingest_progress(ctx, feed, csv, 1);
    rc = 0;
    goto out;
fail:
    cc_db_rollback(ctx->db);
    if (!ctx->error[0])
        snprintf(ctx->error, sizeof ctx->error, "%s: %s", path, cc_strerror(rc));
out:
    cc_csv_close(csv);
    return rc;
}

/* ---- GP registrations ------------------------------------------------------------ */

static const char *const registration_columns[] = {
    "nhs_number",    "date_of_birth",     "sex",        "postcode",
    "practice_code", "registration_date", "optout_code"};
enum { R_NHS, R_DOB, R_SEX, R_POSTCODE, R_PRACTICE, R_DATE, R_OPTOUT, R_N };

static int open_registrations(struct cc_ingest_ctx *ctx, const char *path, cc_csv **csv,
                              int cols[R_N])
{
    int rc = cc_ingest_open_feed(ctx, path, csv);
    if (rc < 0)
        return rc;
    /* Names are never given to this code, and are wiped from the reader's
     * buffers after each row. */
    cc_csv_drop_column(*csv, "given_name");
    cc_csv_drop_column(*csv, "family_name");
    rc = cc_ingest_map_columns(ctx, *csv, path, registration_columns, R_N, cols);
    if (rc < 0) {
        cc_csv_close(*csv);
        *csv = NULL;
    }
    return rc;
}

/*
 * Pass 1 over the registrations: an opt-out code on a registration row is an
 * opt-out recorded at the practice. It is registered (effective from the
 * registration date, the only date the row carries) unless the register
 * already holds an event of that type for the patient: the register feed,
 * which has the real effective dates and withdrawals, is authoritative.
 * This pass runs before any person is stored, so a type 1 opt-out seen on
 * any row keeps every GP-sourced row of that patient out of the store.
 *
 * It comes in two halves so that the reading can run on a second thread
 * while the area lookup and the register feed are taken in:
 * cc_ingest_registration_scan() reads the file and lists the rows' opt-out
 * events in file order, touching only its own reader, the key and the
 * list; cc_ingest_registration_optouts() then records them, after the
 * register feed, as one pass did before.
 */
static int scan_event(struct cc_registration_scan *scan, const struct cc_optout_event *ev)
{
    if (cc_array_reserve(&scan->events, &scan->cap, scan->n + 1, sizeof *scan->events))
        return CC_ENOMEM;
    scan->events[scan->n++] = *ev;
    return 0;
}

void cc_ingest_registration_scan(struct cc_registration_scan *scan)
{
    int cols[R_N];
    cc_csv *csv = NULL;
    struct cc_ingest_ctx *ctx = scan->ctx;
    /* A file that cannot be opened or lacks a column has no events here:
     * pass 2 refuses it, with the reason, before anything is stored. */
    int rc = cc_csv_open(scan->path, &csv);
    if (rc < 0) {
        rc = 0;
        goto out;
    }
    cc_csv_drop_column(csv, "given_name");
    cc_csv_drop_column(csv, "family_name");
    for (int c = 0; c < R_N; c++)
        if ((cols[c] = cc_csv_column(csv, registration_columns[c])) < 0) {
            rc = 0;
            goto out;
        }
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_csv_next(csv, &f, &line)) != 0) {
        if (rc == CC_EPARSE)
            continue; /* counted in pass 2 */
        if (rc < 0)
            goto out;
        if (atomic_load_explicit(&scan->stop, memory_order_relaxed)) {
            rc = 0; /* the run failed: nothing reads the list */
            goto out;
        }
        if (f[cols[R_OPTOUT]].len == 0)
            continue;
        int type = 0;
        char digits[CC_NHS_NUMBER_DIGITS];
        cc_day day;
        if (cc_validate_optout_code(FIELD(f, cols[R_OPTOUT]), &type) < 0 || !type ||
            check_nhs(&f[cols[R_NHS]], digits) || check_date(&f[cols[R_DATE]], ctx->today, &day))
            continue; /* rejected, with its reason, in pass 2 */
        if (ctx->nhs_first && (memcmp(digits, ctx->nhs_first, CC_NHS_NUMBER_DIGITS) < 0 ||
                               memcmp(digits, ctx->nhs_last, CC_NHS_NUMBER_DIGITS) > 0))
            scan->nhs_outside_range++; /* as pseudo_nhs() counts it */
        struct cc_optout_event ev = {0};
        cc_pseudo_nhs(ctx->key, digits, &ev.person);
        sodium_memzero(digits, sizeof digits);
        ev.type = (uint8_t)type;
        ev.action = CC_OPTOUT_REGISTER;
        ev.source = CC_OPTOUT_SOURCE_GP_REGISTRATION;
        ev.effective_day = day;
        char practice[CC_PRACTICE_CODE_BYTES];
        if (cc_validate_practice_code(FIELD(f, cols[R_PRACTICE]), practice) == 0)
            memcpy(ev.practice_code, practice, sizeof practice);
        if ((rc = scan_event(scan, &ev)) < 0)
            goto out;
    }
out:
    scan->rc = rc;
    cc_csv_close(csv);
}

void cc_ingest_registration_scan_free(struct cc_registration_scan *scan)
{
    if (scan->events)
        sodium_memzero(scan->events, scan->cap * sizeof *scan->events);
    free(scan->events);
    scan->events = NULL;
    scan->n = scan->cap = 0;
}

int cc_ingest_registration_optouts(struct cc_ingest_ctx *ctx, struct cc_registration_scan *scan,
                                   struct cc_feed_report *feed)
{
    int rc = scan->rc;
    if (rc < 0)
        goto fail_read;
    ctx->nhs_outside_range += scan->nhs_outside_range;
    if ((rc = cc_db_begin(ctx->db)) < 0)
        goto fail_read;
    for (size_t e = 0; e < scan->n; e++) {
        struct cc_optout_event *ev = &scan->events[e];
        struct cc_optout_event *history = NULL;
        size_t n_history = 0;
        if ((rc = cc_optout_history(ctx->optouts, &ev->person, &history, &n_history)) < 0)
            goto fail;
        int known = 0;
        for (size_t i = 0; i < n_history; i++)
            known |= history[i].type == ev->type;
        free(history);
        if (known)
            continue;
        int added = cc_optout_record(ctx->optouts, ev);
        if (added < 0 && added != CC_EINVAL) {
            rc = added;
            goto fail;
        }
        if (added > 0)
            feed->optout_events_added++;
    }
    if ((rc = cc_db_commit(ctx->db)) < 0)
        goto fail;
    ctx->report->optout_events_committed += feed->optout_events_added;
    return 0;
fail:
    cc_db_rollback(ctx->db);
fail_read:
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", scan->path, cc_strerror(rc));
    return rc;
}

/* Pass 2: persons, their demographics, area and practice. */
/* Remembers that the person was known at postcode, when it is not the
 * postcode `current` (NULL: the one the builder holds for them now), so
 * that stage 2 finds them there too: a patient who moved and appears with
 * the old postcode and no NHS number links to them, and nobody who lives
 * there now links in their place. */
static int remember_address(struct cc_ingest_ctx *ctx, int64_t person, const cc_pseudonym *postcode,
                            const cc_pseudonym *current)
{
    static const cc_pseudonym zero;
    const struct cc_store_columns *cols = cc_store_builder_columns(ctx->builder);
    if ((uint64_t)person >= cols->n_persons)
        return 0;
    if (!current)
        current = &cols->person_postcode_pseudonym[person];
    if (!memcmp(postcode, &zero, sizeof zero) || !memcmp(postcode, current, sizeof *postcode))
        return 0;
    if (cc_array_reserve(&ctx->earlier, &ctx->earlier_cap, ctx->n_earlier + 1, sizeof *ctx->earlier))
        return CC_ENOMEM;
    ctx->earlier[ctx->n_earlier++] = (struct cc_link_address){(uint32_t)person, *postcode};
    return 0;
}

int cc_ingest_registrations(struct cc_ingest_ctx *ctx, const char *path,
                            struct cc_feed_report *feed)
{
    int cols[R_N];
    cc_csv *csv = NULL;
    int rc = open_registrations(ctx, path, &csv, cols);
    if (rc < 0)
        return rc;
    /* The reading thread is the slower of the two on this feed (a row per
     * person: no NHS number's pseudonym is remembered from the row before),
     * so the record key is computed here. */
    struct cc_ingest_ahead_plan plan = {.nhs = cols[R_NHS], .postcode = cols[R_POSTCODE],
                                        .identity = -1, .record_key = 0};
    if ((rc = cc_ingest_ahead_start(ctx, csv, &plan)) < 0)
        goto fail;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {

        char digits[CC_NHS_NUMBER_DIGITS], postcode[CC_POSTCODE_BYTES];
        char practice[CC_PRACTICE_CODE_BYTES];
        size_t postcode_len = 0;
        cc_day dob = 0, registered = 0;
        uint8_t sex = 0;
        int optout_type = 0;
        int32_t lsoa = -1;
        cc_pseudonym postcode_pseudonym;
        int reason = check_nhs(&f[cols[R_NHS]], digits);
        if (!reason)
            reason = check_date(&f[cols[R_DOB]], ctx->today, &dob);
        if (!reason)
            reason = check_sex(&f[cols[R_SEX]], &sex);
        if (!reason)
            reason = check_postcode(&f[cols[R_POSTCODE]], postcode, &postcode_len);
        if (!reason) {
            postcode_facts(ctx, postcode, postcode_len, &postcode_pseudonym, &lsoa);
            if (lsoa < 0)
                reason = CC_REJECT_POSTCODE_UNKNOWN + 1;
        }
        if (!reason && cc_validate_practice_code(FIELD(f, cols[R_PRACTICE]), practice) < 0)
            reason = CC_REJECT_PRACTICE + 1;
        if (!reason)
            reason = check_date(&f[cols[R_DATE]], ctx->today, &registered);
        if (!reason && cc_validate_optout_code(FIELD(f, cols[R_OPTOUT]), &optout_type) < 0)
            reason = CC_REJECT_OPTOUT_CODE + 1;
        if (reason) {
            cc_ingest_reject(ctx, feed, line, reason - 1);
            continue;
        }

        cc_pseudonym person;
        pseudo_nhs(ctx, digits, &person);
        if (optout_type == CC_OPTOUT_TYPE1 || is_type1(ctx, &person)) {
            feed->dropped_type1++;
            continue;
        }
        int64_t idx = cc_store_builder_find_person(ctx->builder, &person);
        if (idx >= 0 && (uint64_t)idx < ctx->latest_registration_cap &&
            ctx->latest_registration[idx] != NO_REGISTRATION &&
            ctx->latest_registration[idx] > registered) {
            /* An older registration than one already seen: the latest one
             * gives the area of residence and the practice; this one an
             * earlier address. */
            if ((rc = remember_address(ctx, idx, &postcode_pseudonym, NULL)) < 0)
                goto fail;
            feed->rows_accepted++;
            feed->linked_stage1++;
            cc_ingest_trace_link(ctx, feed, line, CC_TRACE_STAGE1, idx);
            continue;
        }
        int32_t practice_index = cc_store_builder_practice(ctx->builder, practice);
        if (practice_index < 0) {
            rc = practice_index;
            goto fail;
        }
        struct cc_person_input in = {0};
        in.pseudonym = person;
        in.postcode_pseudonym = postcode_pseudonym;
        in.dob = dob;
        in.sex = sex;
        in.lsoa = (uint16_t)lsoa;
        in.practice = (uint16_t)practice_index;
        in.record_key = record_key_of(ctx, &person);
        if (idx < 0)
            feed->persons_created++;
        else if ((rc = remember_address(ctx, idx,
                                        &cc_store_builder_columns(ctx->builder)
                                             ->person_postcode_pseudonym[idx],
                                        &in.postcode_pseudonym)) < 0)
            goto fail; /* the address this newer registration replaces */
        idx = cc_store_builder_person(ctx->builder, &in);
        if (idx < 0) {
            rc = (int)idx;
            goto fail;
        }
        if ((rc = ensure_registration_slots(ctx, (uint64_t)idx)) < 0)
            goto fail;
        ctx->latest_registration[idx] = (uint16_t)registered;
        feed->rows_accepted++;
        feed->linked_stage1++;
        cc_ingest_trace_link(ctx, feed, line, CC_TRACE_STAGE1, idx);
    }
    if (rc < 0)
        goto fail;
    cc_ingest_progress(ctx, feed, csv, 1);
    rc = 0;
    goto out;
fail:
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", path, cc_strerror(rc));
out:
    cc_ingest_close_feed(ctx, csv);
    return rc;
}

/* ---- GP events -------------------------------------------------------------------- */

int cc_ingest_gp_events(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed)
{
    static const char *const names[] = {"nhs_number", "practice_code", "event_date",
                                        "snomed_code"};
    enum { C_NHS, C_PRACTICE, C_DATE, C_CODE, C_N };
    int cols[C_N];
    cc_csv *csv = NULL;
    struct cc_seen_set seen = {0};
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, C_N, cols)) < 0)
        goto out;
    /* Repeats of a row in this feed are found by one sort of its records
     * once it is read (cc_store_builder_drop_repeats), not by a hash set
     * probed per row; with a link trace, whose lines name the rows linked,
     * the set keeps the first of each and traces no repeat. */
    uint64_t first_record = cc_store_builder_n_records(ctx->builder);
    int by_set = ctx->link_trace != NULL;
    if (by_set && (rc = cc_seen_set_init(&seen, cc_csv_file_bytes(csv) / 40 + 1024)) < 0)
        goto fail;

    struct cc_ingest_ahead_plan plan = {.nhs = cols[C_NHS], .postcode = -1, .identity = -1};
    if ((rc = cc_ingest_ahead_start(ctx, csv, &plan)) < 0)
        goto fail;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {

        char digits[CC_NHS_NUMBER_DIGITS], practice[CC_PRACTICE_CODE_BYTES];
        char code[CC_CODE_TEXT_BYTES];
        cc_day date = 0;
        int reason = check_nhs(&f[cols[C_NHS]], digits);
        if (!reason && cc_validate_practice_code(FIELD(f, cols[C_PRACTICE]), practice) < 0)
            reason = CC_REJECT_PRACTICE + 1;
        if (!reason)
            reason = check_date(&f[cols[C_DATE]], ctx->today, &date);
        if (!reason && f[cols[C_CODE]].len == 0)
            reason = CC_REJECT_CODE_MISSING + 1;
        if (!reason && cc_validate_snomed(FIELD(f, cols[C_CODE]), code) < 0)
            reason = CC_REJECT_SNOMED + 1;
        if (reason) {
            cc_ingest_reject(ctx, feed, line, reason - 1);
            continue;
        }
        cc_pseudonym person;
        pseudo_nhs(ctx, digits, &person);
        if (is_type1(ctx, &person)) {
            feed->dropped_type1++;
            continue;
        }
        int64_t idx = cc_store_builder_find_person(ctx->builder, &person);
        if (idx < 0) {
            /* A GP event names a registered patient; without a registration
             * there are no demographics to link it to. */
            feed->unlinked_no_match++;
            cc_ingest_trace_link(ctx, feed, line, CC_TRACE_NO_MATCH, -1);
            continue;
        }
        /* A GP event is identified by its content: the same coded entry
         * (same patient, day and code) sent again, in this run or an
         * earlier one, is the same record. */
        uint64_t event_key = (uint64_t)idx << 32 | (uint64_t)date;
        uint64_t code_hash = cc_ingest_gp_event_hash(code, strlen(code));
        if (cc_seen_set_has(&ctx->stored_gp_events, event_key, code_hash)) {
            feed->rows_already_stored++;
            continue;
        }
        int added = by_set ? cc_seen_set_add(&seen, event_key, code_hash) : 1;
        if (added < 0) {
            rc = added;
            goto fail;
        }
        if (!added) {
            feed->rows_duplicate++;
            continue;
        }
        struct cc_code_input ci = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, code};
        if ((rc = cc_store_builder_record(ctx->builder, (uint32_t)idx, CC_SETTING_GP, date, 0, &ci,
                                          1)) < 0)
            goto fail;
        feed->rows_accepted++;
        feed->linked_stage1++;
        cc_ingest_trace_link(ctx, feed, line, CC_TRACE_STAGE1, idx);
    }
    if (rc < 0)
        goto fail;
    if (!by_set) {
        uint64_t repeats = 0;
        if ((rc = cc_store_builder_drop_repeats(ctx->builder, first_record, &repeats)) < 0)
            goto fail;
        feed->rows_duplicate += repeats;
        feed->rows_accepted -= repeats;
        feed->linked_stage1 -= repeats;
    }
    cc_ingest_progress(ctx, feed, csv, 1);
    rc = 0;
    goto out;
fail:
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", path, cc_strerror(rc));
out:
    cc_seen_set_free(&seen);
    cc_ingest_close_feed(ctx, csv);
    return rc;
}

/* ---- hospital episodes and community contacts ------------------------------------- */

#define MAX_RECORD_CODES 48

/* The demographics and link of a hospital or community row. */
struct row_person {
    int has_nhs; /* a valid NHS number: stage 1 */
    cc_pseudonym person;
    cc_pseudonym postcode;
    int32_t lsoa;
    cc_day dob;
    uint8_t sex;
};

static int check_row_person(struct cc_ingest_ctx *ctx, const struct cc_csv_field *nhs,
                            const struct cc_csv_field *dob, const struct cc_csv_field *sex,
                            const struct cc_csv_field *postcode, struct row_person *out)
{
    char digits[CC_NHS_NUMBER_DIGITS], canonical[CC_POSTCODE_BYTES];
    size_t canonical_len = 0;
    memset(out, 0, sizeof *out);
    out->lsoa = -1;
    /* A missing or invalid NHS number does not reject the row: it goes to
     * stage 2 (date of birth + sex + postcode). */
    out->has_nhs = check_nhs(nhs, digits) == 0;
    int reason = check_date(dob, ctx->today, &out->dob);
    if (!reason)
        reason = check_sex(sex, &out->sex);
    if (!reason && postcode->len) {
        reason = check_postcode(postcode, canonical, &canonical_len);
        if (!reason)
            postcode_facts(ctx, canonical, canonical_len, &out->postcode, &out->lsoa);
    }
    if (!reason && out->has_nhs)
        pseudo_nhs(ctx, digits, &out->person);
    return reason;
}

/* Links a row with a valid NHS number (stage 1), creating the person if this
 * source is the first to mention them; rows without one are held back for
 * stage 2. Returns the person index, -1 if held back, or a CC_E* code. */
static int64_t link_or_hold(struct cc_ingest_ctx *ctx, uint32_t feed_index,
                            struct cc_feed_report *feed, const struct row_person *rp,
                            uint8_t setting, cc_day date, uint8_t flags,
                            const struct cc_code_input *codes, size_t n_codes,
                            const uint8_t identity[CC_FEED_IDENTITY_BYTES])
{
    if (rp->has_nhs) {
        int64_t idx = cc_store_builder_find_person(ctx->builder, &rp->person);
        if (idx < 0) {
            idx = create_person_from_record(ctx, &rp->person, &rp->postcode, rp->lsoa, rp->dob,
                                            rp->sex);
            if (idx < 0)
                return idx;
            feed->persons_created++;
        } else {
            int rc = remember_address(ctx, idx, &rp->postcode, NULL);
            if (rc < 0)
                return rc;
        }
        feed->linked_stage1++;
        return idx;
    }
    if (cc_array_reserve(&ctx->pending, &ctx->pending_cap, ctx->n_pending + 1,
                         sizeof *ctx->pending))
        return CC_ENOMEM;
    if (ctx->n_pending_codes + n_codes > ctx->pending_codes_cap) {
        /* two columns of one capacity */
        size_t cap = cc_array_next_capacity(ctx->pending_codes_cap, ctx->n_pending_codes + n_codes);
        if (cc_array_resize(&ctx->pending_codes, cap, sizeof *ctx->pending_codes) ||
            cc_array_resize(&ctx->pending_code_text, cap, sizeof *ctx->pending_code_text))
            return CC_ENOMEM;
        ctx->pending_codes_cap = cap;
    }
    struct cc_pending_row *p = &ctx->pending[ctx->n_pending++];
    p->postcode = rp->postcode;
    p->dob = rp->dob;
    p->date = date;
    p->sex = rp->sex;
    p->setting = setting;
    p->flags = flags;
    p->n_codes = (uint8_t)n_codes;
    p->feed = feed_index;
    p->code_offset = (uint32_t)ctx->n_pending_codes;
    memcpy(p->identity, identity, CC_FEED_IDENTITY_BYTES);
    for (size_t i = 0; i < n_codes; i++) {
        uint64_t k = ctx->n_pending_codes++;
        ctx->pending_codes[k] = codes[i];
        snprintf(ctx->pending_code_text[k], CC_CODE_TEXT_BYTES, "%s", codes[i].text);
        ctx->pending_codes[k].text = NULL; /* set when linked: the array may move */
    }
    return -1;
}

/* A hospital or community record is identified by its feed's own key
 * (source and key, as a keyed hash in identity): 1 if it is new (then
 * remembered for this run), 0 if the store held it before this run or this
 * run saw it already (each counted), or CC_ENOMEM. The key is taken as the
 * CSV reader gives it, so line ends and quoting do not change it. */
static int seen_identity(struct cc_ingest_ctx *ctx, struct cc_seen_set *seen,
                         struct cc_feed_report *feed, uint8_t source,
                         const struct cc_csv_field *key, uint8_t identity[CC_FEED_IDENTITY_BYTES])
{
    uint64_t a, b;
    if (!cc_ingest_ahead_identity(ctx, source, key, identity))
        cc_pseudo_record_identity(ctx->key, source, key->data, key->len, identity);
    memcpy(&a, identity, 8);
    memcpy(&b, identity + 8, 8);
    if (cc_seen_set_has(&ctx->stored_feed_identities, a, b)) {
        feed->rows_already_stored++;
        return 0;
    }
    int added = cc_seen_set_add(seen, a, b);
    if (added == 0)
        feed->rows_duplicate++;
    return added;
}

static uint32_t feed_index_of(struct cc_ingest_ctx *ctx, const struct cc_feed_report *feed)
{
    return (uint32_t)(feed - ctx->report->feeds);
}

/* HES admission method to its class (CC_ADMIT_*), or 0 if not a HES code. */
static uint8_t admission_class(const char *s, size_t len)
{
    if (len != 2)
        return 0;
    switch (s[0]) {
    case '1':
        return s[1] >= '1' && s[1] <= '3' ? CC_ADMIT_ELECTIVE : 0;
    case '2':
        return (s[1] >= '1' && s[1] <= '8') || (s[1] >= 'A' && s[1] <= 'D') ? CC_ADMIT_EMERGENCY
                                                                             : 0;
    case '3':
        return s[1] == '1' || s[1] == '2' ? CC_ADMIT_MATERNITY : 0;
    case '8':
        return s[1] >= '1' && s[1] <= '3' ? CC_ADMIT_OTHER : 0;
    default:
        return 0;
    }
}

/* Is `name` of the form prefix + two digits ("diag_01")? */
static int numbered_column(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return !strncmp(name, prefix, n) && name[n] >= '0' && name[n] <= '9' && name[n + 1] >= '0' &&
           name[n + 1] <= '9' && name[n + 2] == '\0';
}

/* Adds a code unless the record already has it. */
static void add_code(struct cc_code_input *codes, char (*text)[CC_CODE_TEXT_BYTES],
                     size_t *n_codes, uint8_t system, uint8_t role, const char *code)
{
    for (size_t i = 0; i < *n_codes; i++)
        if (codes[i].system == system && !strcmp(text[i], code))
            return;
    if (*n_codes == MAX_RECORD_CODES)
        return;
    snprintf(text[*n_codes], CC_CODE_TEXT_BYTES, "%s", code);
    codes[*n_codes] = (struct cc_code_input){system, role, text[*n_codes]};
    (*n_codes)++;
}

int cc_ingest_hospital(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed)
{
    static const char *const names[] = {"epikey",        "nhs_number",     "date_of_birth",
                                        "sex",           "postcode",       "provider_code",
                                        "admission_date", "discharge_date", "admission_method"};
    enum { C_KEY, C_NHS, C_DOB, C_SEX, C_POSTCODE, C_PROVIDER, C_ADMIT, C_DISCHARGE, C_METHOD, C_N };
    int cols[C_N];
    int diag_cols[MAX_RECORD_CODES], opertn_cols[MAX_RECORD_CODES];
    size_t n_diag = 0, n_opertn = 0;
    cc_csv *csv = NULL;
    struct cc_seen_set seen = {0};
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, C_N, cols)) < 0)
        goto out;
    /* Every diag_NN and opertn_NN column, in header order (HES has up to 20
     * and 24); diag_01 is the primary diagnosis and must be there. */
    for (size_t i = 0; i < cc_csv_n_columns(csv); i++) {
        const char *name = cc_csv_column_name(csv, i);
        if (numbered_column(name, "diag_") && n_diag < MAX_RECORD_CODES / 2)
            diag_cols[n_diag++] = (int)i;
        else if (numbered_column(name, "opertn_") && n_opertn < MAX_RECORD_CODES / 2)
            opertn_cols[n_opertn++] = (int)i;
    }
    if (cc_csv_column(csv, "diag_01") < 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s: required column 'diag_01' missing", path);
        rc = CC_EPARSE;
        goto out;
    }
    diag_cols[0] = cc_csv_column(csv, "diag_01");
    if ((rc = cc_seen_set_init(&seen, cc_csv_file_bytes(csv) / 80 + 1024)) < 0)
        goto fail;

    struct cc_ingest_ahead_plan plan = {
        .nhs = cols[C_NHS],
        .postcode = cols[C_POSTCODE],
        .identity = cols[C_KEY],
        .identity_source = 'H',
        .identity_sets = {&seen, &ctx->stored_feed_identities}};
    if ((rc = cc_ingest_ahead_start(ctx, csv, &plan)) < 0)
        goto fail;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {

        struct row_person rp;
        char provider[CC_PROVIDER_CODE_BYTES];
        cc_day admitted = 0, discharged = 0;
        uint8_t method = 0;
        struct cc_code_input codes[MAX_RECORD_CODES];
        char text[MAX_RECORD_CODES][CC_CODE_TEXT_BYTES];
        size_t n_codes = 0;
        int reason = f[cols[C_KEY]].len ? 0 : CC_REJECT_FIELD_MISSING + 1;
        if (!reason)
            reason = check_row_person(ctx, &f[cols[C_NHS]], &f[cols[C_DOB]], &f[cols[C_SEX]],
                                      &f[cols[C_POSTCODE]], &rp);
        if (!reason && cc_validate_provider_code(FIELD(f, cols[C_PROVIDER]), provider) < 0)
            reason = CC_REJECT_PROVIDER + 1;
        if (!reason)
            reason = check_date(&f[cols[C_ADMIT]], ctx->today, &admitted);
        if (!reason && f[cols[C_DISCHARGE]].len) {
            reason = check_date(&f[cols[C_DISCHARGE]], ctx->today, &discharged);
            if (!reason && discharged < admitted)
                reason = CC_REJECT_DATE_ORDER + 1;
        }
        if (!reason && !(method = admission_class(FIELD(f, cols[C_METHOD]))))
            reason = CC_REJECT_ADMISSION_METHOD + 1;
        if (!reason && f[diag_cols[0]].len == 0)
            reason = CC_REJECT_CODE_MISSING + 1;
        for (size_t i = 0; !reason && i < n_diag; i++) {
            const struct cc_csv_field *d = &f[diag_cols[i]];
            char code[CC_CODE_TEXT_BYTES];
            if (!d->len)
                continue;
            if (cc_validate_icd10(d->data, d->len, code) < 0)
                reason = CC_REJECT_ICD10 + 1;
            else
                add_code(codes, text, &n_codes, CC_CODE_ICD10,
                         i == 0 ? CC_ROLE_PRIMARY : CC_ROLE_SECONDARY, code);
        }
        for (size_t i = 0; !reason && i < n_opertn; i++) {
            const struct cc_csv_field *o = &f[opertn_cols[i]];
            char code[CC_CODE_TEXT_BYTES];
            if (!o->len)
                continue;
            if (cc_validate_opcs4(o->data, o->len, code) < 0)
                reason = CC_REJECT_OPCS4 + 1;
            else
                add_code(codes, text, &n_codes, CC_CODE_OPCS4, CC_ROLE_PROCEDURE, code);
        }
        if (reason) {
            cc_ingest_reject(ctx, feed, line, reason - 1);
            continue;
        }
        uint8_t identity[CC_FEED_IDENTITY_BYTES];
        int added = seen_identity(ctx, &seen, feed, 'H', &f[cols[C_KEY]], identity);
        if (added < 0) {
            rc = added;
            goto fail;
        }
        if (!added)
            continue;
        int64_t idx = link_or_hold(ctx, feed_index_of(ctx, feed), feed, &rp, CC_SETTING_HOSPITAL,
                                   admitted, method, codes, n_codes, identity);
        if (idx < -1) {
            rc = (int)idx;
            goto fail;
        }
        if (idx >= 0)
            cc_ingest_trace_link(ctx, feed, line, CC_TRACE_STAGE1, idx);
        else
            ctx->pending[ctx->n_pending - 1].line = line;
        feed->rows_accepted++;
        if (idx >= 0 && ((rc = cc_store_builder_record(ctx->builder, (uint32_t)idx,
                                                       CC_SETTING_HOSPITAL, admitted, method,
                                                       codes, n_codes)) < 0 ||
                         (rc = cc_store_builder_feed_identity(ctx->builder, identity)) < 0))
            goto fail;
    }
    if (rc < 0)
        goto fail;
    cc_ingest_progress(ctx, feed, csv, 1);
    rc = 0;
    goto out;
fail:
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", path, cc_strerror(rc));
out:
    cc_seen_set_free(&seen);
    cc_ingest_close_feed(ctx, csv);
    return rc;
}

int cc_ingest_community(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed)
{
    static const char *const names[] = {"contact_id",    "nhs_number",   "date_of_birth",
                                        "sex",           "postcode",     "provider_code",
                                        "contact_date",  "service_type", "snomed_code"};
    enum { C_KEY, C_NHS, C_DOB, C_SEX, C_POSTCODE, C_PROVIDER, C_DATE, C_SERVICE, C_CODE, C_N };
    int cols[C_N];
    cc_csv *csv = NULL;
    struct cc_seen_set seen = {0};
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, C_N, cols)) < 0)
        goto out;
    if ((rc = cc_seen_set_init(&seen, cc_csv_file_bytes(csv) / 80 + 1024)) < 0)
        goto fail;

    /* The reading thread is the slower of the two on this feed, so the
     * record's identity is computed here (in the hospital feed, whose rows
     * take this thread longer, it is computed there). */
    struct cc_ingest_ahead_plan plan = {
        .nhs = cols[C_NHS],
        .postcode = cols[C_POSTCODE],
        .identity = cols[C_KEY],
        .identity_source = 'C',
        .identity_on_ingest_thread = 1,
        .identity_sets = {&seen, &ctx->stored_feed_identities}};
    if ((rc = cc_ingest_ahead_start(ctx, csv, &plan)) < 0)
        goto fail;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {

        struct row_person rp;
        char provider[CC_PROVIDER_CODE_BYTES], code[CC_CODE_TEXT_BYTES];
        cc_day date = 0;
        int reason = f[cols[C_KEY]].len ? 0 : CC_REJECT_FIELD_MISSING + 1;
        if (!reason)
            reason = check_row_person(ctx, &f[cols[C_NHS]], &f[cols[C_DOB]], &f[cols[C_SEX]],
                                      &f[cols[C_POSTCODE]], &rp);
        if (!reason && cc_validate_provider_code(FIELD(f, cols[C_PROVIDER]), provider) < 0)
            reason = CC_REJECT_PROVIDER + 1;
        if (!reason)
            reason = check_date(&f[cols[C_DATE]], ctx->today, &date);
        if (!reason) {
            const struct cc_csv_field *s = &f[cols[C_SERVICE]];
            if (s->len != 2 || s->data[0] < '0' || s->data[0] > '9' || s->data[1] < '0' ||
                s->data[1] > '9')
                reason = CC_REJECT_SERVICE_TYPE + 1;
        }
        if (!reason && f[cols[C_CODE]].len == 0)
            reason = CC_REJECT_CODE_MISSING + 1;
        if (!reason && cc_validate_snomed(FIELD(f, cols[C_CODE]), code) < 0)
            reason = CC_REJECT_SNOMED + 1;
        if (reason) {
            cc_ingest_reject(ctx, feed, line, reason - 1);
            continue;
        }
        uint8_t identity[CC_FEED_IDENTITY_BYTES];
        int added = seen_identity(ctx, &seen, feed, 'C', &f[cols[C_KEY]], identity);
        if (added < 0) {
            rc = added;
            goto fail;
        }
        if (!added)
            continue;
        struct cc_code_input ci = {CC_CODE_SNOMED, CC_ROLE_PRIMARY, code};
        int64_t idx = link_or_hold(ctx, feed_index_of(ctx, feed), feed, &rp, CC_SETTING_COMMUNITY,
                                   date, 0, &ci, 1, identity);
        if (idx < -1) {
            rc = (int)idx;
            goto fail;
        }
        if (idx >= 0)
            cc_ingest_trace_link(ctx, feed, line, CC_TRACE_STAGE1, idx);
        else
            ctx->pending[ctx->n_pending - 1].line = line;
        feed->rows_accepted++;
        if (idx >= 0 &&
            ((rc = cc_store_builder_record(ctx->builder, (uint32_t)idx, CC_SETTING_COMMUNITY, date,
                                           0, &ci, 1)) < 0 ||
             (rc = cc_store_builder_feed_identity(ctx->builder, identity)) < 0))
            goto fail;
    }
    if (rc < 0)
        goto fail;
    cc_ingest_progress(ctx, feed, csv, 1);
    rc = 0;
    goto out;
fail:
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", path, cc_strerror(rc));
out:
    cc_seen_set_free(&seen);
    cc_ingest_close_feed(ctx, csv);
    return rc;
}

/* ---- stage 2 ------------------------------------------------------------------------ */

int cc_ingest_link_pending(struct cc_ingest_ctx *ctx)
{
    if (!ctx->n_pending)
        return 0;
    /* the index holds only the combinations these rows ask about */
    struct cc_link_key *keys = malloc(ctx->n_pending * sizeof *keys);
    if (!keys)
        return CC_ENOMEM;
    for (uint64_t i = 0; i < ctx->n_pending; i++)
        keys[i] = (struct cc_link_key){ctx->pending[i].postcode, ctx->pending[i].dob,
                                       ctx->pending[i].sex};
    cc_link_index *index = NULL;
    int rc = cc_link_index_build(cc_store_builder_columns(ctx->builder), ctx->earlier,
                                 ctx->n_earlier, keys, ctx->n_pending, &index);
    free(keys);
    if (rc < 0)
        return rc;
    for (uint64_t i = 0; i < ctx->n_pending; i++) {
        const struct cc_pending_row *p = &ctx->pending[i];
        struct cc_feed_report *feed = &ctx->report->feeds[p->feed];
        int64_t person = cc_link_find(index, p->dob, p->sex, &p->postcode);
        if (person == CC_LINK_AMBIGUOUS) {
            feed->unlinked_ambiguous++;
            cc_ingest_trace_link(ctx, feed, p->line, CC_TRACE_AMBIGUOUS, -1);
            continue;
        }
        if (person < 0) {
            feed->unlinked_no_match++;
            cc_ingest_trace_link(ctx, feed, p->line, CC_TRACE_NO_MATCH, -1);
            continue;
        }
        struct cc_code_input *codes = &ctx->pending_codes[p->code_offset];
        for (unsigned k = 0; k < p->n_codes; k++)
            codes[k].text = ctx->pending_code_text[p->code_offset + k];
        rc = cc_store_builder_record(ctx->builder, (uint32_t)person, p->setting, p->date,
                                     p->flags, codes, p->n_codes);
        if (rc == 0)
            rc = cc_store_builder_feed_identity(ctx->builder, p->identity);
        if (rc < 0)
            break;
        feed->linked_stage2++;
        cc_ingest_trace_link(ctx, feed, p->line, CC_TRACE_STAGE2, person);
    }
    cc_link_index_free(index);
    return rc < 0 ? rc : 0;
}
