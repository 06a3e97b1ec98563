/*
 * Linkage quality against the generator's ground truth (docs/linkage.md):
 * 10,000 generated patients with their truth file (gen/cc_gen_truth.c),
 * ingested with the test-only linkage trace (CC_TEST_LINK_TRACE), scored
 * per feed and stage. No row may be linked to a wrong person, every row
 * left unlinked must carry too little to link (the reasons the truth
 * gives), and the trace must agree with the ingest's own report.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cc_error.h"
#include "cc_gen.h"
#include "cc_ingest.h"
#include "cc_pseudo.h"
#include "cc_testfs.h"

#define N_PATIENTS 10000

static char root[64], feeds[128], truth[128], key[128], data[128], trace[128];
static struct cc_ingest_report report;
static struct cc_gen_linkage_score score;

static void ingest(const char *data_dir, const char *trace_path)
{
    static char paths[CC_N_FEED_KINDS][256];
    struct cc_ingest_options opt = {.data_dir = data_dir, .key_path = key};
    for (int kind = 0; kind < CC_N_FEED_KINDS; kind++) {
        cc_testfs_path(paths[kind], sizeof paths[kind], feeds, cc_feed_kind_file(kind));
        opt.files[opt.n_files].kind = kind;
        opt.files[opt.n_files].path = paths[kind];
        opt.n_files++;
    }
    if (trace_path)
        cr_assert_eq(setenv("CC_TEST_LINK_TRACE", trace_path, 1), 0);
    else
        unsetenv("CC_TEST_LINK_TRACE");
    char err[512];
    memset(&report, 0, sizeof report);
    cr_assert_eq(cc_ingest_run(&opt, &report, err, sizeof err), 0, "%s", err);
    unsetenv("CC_TEST_LINK_TRACE");
}

static void setup(void)
{
    cc_testfs_make_dir(root, sizeof root, "linkage");
    cc_testfs_path(feeds, sizeof feeds, root, "feeds");
    cc_testfs_path(truth, sizeof truth, root, "truth.csv");
    cc_testfs_path(key, sizeof key, root, "key");
    cc_testfs_path(data, sizeof data, root, "data");
    cc_testfs_path(trace, sizeof trace, root, "trace.csv");
    struct cc_gen_options gen = {.seed = 7, .n_patients = N_PATIENTS, .out_dir = feeds,
                                 .n_threads = 2, .truth_path = truth};
    cr_assert_eq(cc_gen_run(&gen, NULL), 0);
    cr_assert_eq(cc_pseudo_keygen(key), 0);
    ingest(data, trace);
    char err[512];
    cr_assert_eq(cc_gen_linkage_score(truth, trace, &score, err, sizeof err), 0, "%s", err);
    cc_gen_linkage_print(stderr, &score);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(linkage, .init = setup, .fini = teardown, .timeout = 300);

static const struct cc_feed_report *feed_report(const char *name)
{
    for (size_t i = 0; i < report.n_feeds; i++) {
        const char *base = strrchr(report.feeds[i].path, '/');
        if (!strcmp(base ? base + 1 : report.feeds[i].path, name))
            return &report.feeds[i];
    }
    cr_assert_fail("no report for %s", name);
    return NULL;
}

Test(linkage, no_row_is_linked_to_a_wrong_person)
{
    cr_assert_eq(score.n_feeds, 4);
    for (int f = 0; f < score.n_feeds; f++) {
        const struct cc_gen_linkage_feed *o = &score.feeds[f];
        cr_assert_gt(o->right[1], 0, "%s links rows at stage 1", o->name);
        cr_assert_eq(o->wrong[1], 0, "%s: %lld false links at stage 1", o->name, (long long)o->wrong[1]);
        cr_assert_eq(o->wrong[2], 0, "%s: %lld false links at stage 2", o->name, (long long)o->wrong[2]);
    }
    cr_assert_eq(score.persons_split, 0);
    cr_assert_eq(score.persons_merged, 0);
}

Test(linkage, stage_2_links_rows_without_a_valid_nhs_number)
{
    /* hospital and community rows without a valid NHS number (2.5%) */
    for (int f = 2; f < 4; f++) {
        const struct cc_gen_linkage_feed *o = &score.feeds[f];
        cr_assert_gt(o->right[2], o->traced / 100, "%s: %lld rows linked at stage 2", o->name,
                     (long long)o->right[2]);
    }
    /* registrations and GP events link on the NHS number only */
    for (int f = 0; f < 2; f++)
        cr_assert_eq(score.feeds[f].right[2] + score.feeds[f].wrong[2], 0);
}

Test(linkage, every_missed_link_is_a_row_that_carries_too_little)
{
    int64_t missed = 0;
    for (int f = 0; f < score.n_feeds; f++) {
        const struct cc_gen_linkage_feed *o = &score.feeds[f];
        int64_t explained = 0;
        for (int m = 0; m < CC_GEN_N_MISSED; m++)
            explained += o->missed[m];
        cr_assert_eq(explained, o->unlinked_no_match + o->unlinked_ambiguous, "%s", o->name);
        cr_assert_eq(o->missed[CC_GEN_MISSED_OTHER], 0, "%s: %lld rows unlinked without a reason",
                     o->name, (long long)o->missed[CC_GEN_MISSED_OTHER]);
        missed += explained;
    }
    cr_assert_gt(missed, 0, "the data set has rows that cannot link (rejected registrations)");
    cr_assert_gt(score.feeds[1].missed[CC_GEN_MISSED_NOT_REGISTERED], 0);
}

Test(linkage, the_trace_agrees_with_the_ingest_report_and_the_truth_with_the_feeds)
{
    for (int f = 0; f < score.n_feeds; f++) {
        const struct cc_gen_linkage_feed *o = &score.feeds[f];
        const struct cc_feed_report *r = feed_report(o->name);
        cr_assert_eq(o->rows, (int64_t)r->rows_read, "%s: truth rows %lld, rows read %llu", o->name,
                     (long long)o->rows, (unsigned long long)r->rows_read);
        cr_assert_eq(o->right[1] + o->wrong[1], (int64_t)r->linked_stage1, "%s", o->name);
        cr_assert_eq(o->right[2] + o->wrong[2], (int64_t)r->linked_stage2, "%s", o->name);
        cr_assert_eq(o->unlinked_no_match, (int64_t)r->unlinked_no_match, "%s", o->name);
        cr_assert_eq(o->unlinked_ambiguous, (int64_t)r->unlinked_ambiguous, "%s", o->name);
        cr_assert_eq(o->traced + (int64_t)(r->rows_rejected + r->rows_duplicate + r->dropped_type1),
                     o->rows, "%s: every row is traced, rejected, a duplicate or left out", o->name);
    }
}

Test(linkage, the_trace_holds_internal_indices_only_and_only_when_asked)
{
    size_t len = 0;
    char *text = cc_testfs_read(trace, &len);
    cr_assert_gt(len, 0);
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
        if (n == 0) {
            cr_assert_str_eq(line, "feed,line,outcome,person");
            continue;
        }
        char feed[64], outcome[16];
        unsigned long long at;
        long long person = -1;
        int fields = sscanf(line, "%63[^,],%llu,%15[^,],%lld", feed, &at, outcome, &person);
        cr_assert(fields == 3 || fields == 4, "trace line %d", n + 1);
        cr_assert(person < N_PATIENTS * 2, "a person index, not an identifier (line %d)", n + 1);
    }
    free(text);
    /* without the variable, no trace is written */
    char data2[160], trace2[160];
    cc_testfs_path(data2, sizeof data2, root, "data2");
    cc_testfs_path(trace2, sizeof trace2, root, "trace2.csv");
    ingest(data2, NULL);
    struct stat st;
    cr_assert_neq(stat(trace2, &st), 0);
}

Test(linkage, the_score_refuses_a_trace_that_does_not_match_the_truth)
{
    char bad[160], err[512];
    cc_testfs_path(bad, sizeof bad, root, "bad_trace.csv");
    cc_testfs_write_text(bad, "feed,line,outcome,person\nhes_apc.csv,999999999,1,3\n");
    struct cc_gen_linkage_score s;
    cr_assert_eq(cc_gen_linkage_score(truth, bad, &s, err, sizeof err), CC_EPARSE);
    cr_assert(strstr(err, "line 2"), "%s", err);
    cc_testfs_write_text(bad, "feed,line,outcome,person\ngp_events.csv,2,1,\n");
    cr_assert_eq(cc_gen_linkage_score(truth, bad, &s, err, sizeof err), CC_EPARSE);
    cr_assert_eq(cc_gen_linkage_score(truth, "/nonexistent/trace.csv", &s, err, sizeof err), CC_EIO);
}

/* ---- earlier addresses, by hand ---- */

/* A moved from LS1 4AP to LS2 9JT; B, born the same day with the same sex,
 * now lives at LS1 4AP; C moved the same way and shares nothing. Hospital
 * rows without an NHS number: A's or B's at LS1 4AP cannot be told apart
 * (ambiguous, never linked to B alone), C's at the old address links to C,
 * A's at the new one to A. */
Test(addresses, a_moved_patients_old_postcode_links_to_them_and_never_to_who_lives_there_now)
{
    char dir[64], feed_dir[128], key_path[128], data_dir[128], trace_path[128];
    cc_testfs_make_dir(dir, sizeof dir, "linkage_addresses");
    cc_testfs_path(feed_dir, sizeof feed_dir, dir, "feeds");
    cc_testfs_path(key_path, sizeof key_path, dir, "key");
    cc_testfs_path(data_dir, sizeof data_dir, dir, "data");
    cc_testfs_path(trace_path, sizeof trace_path, dir, "trace.csv");
    cr_assert_eq(mkdir(feed_dir, 0700), 0);
    cr_assert_eq(cc_pseudo_keygen(key_path), 0);
    cc_testfs_write_text_in(feed_dir, "areas.csv",
                            "code,name,level,parent_code\n"
                            "E12000003,Yorkshire and The Humber,region,\n"
                            "E54000054,West Yorkshire ICB,icb,E12000003\n"
                            "E08000035,Leeds,lad,E54000054\n"
                            "E01000001,Leeds 001A,lsoa,E08000035\n"
                            "E01000002,Leeds 001B,lsoa,E08000035\n");
    cc_testfs_write_text_in(feed_dir, "postcodes.csv",
                            "pcds,lsoa21cd,lad23cd,icb23cd,rgn23cd\n"
                            "LS1 4AP,E01000001,E08000035,E54000054,E12000003\n"
                            "LS2 9JT,E01000002,E08000035,E54000054,E12000003\n");
    cc_testfs_write_text_in(feed_dir, "population.csv",
                            "lsoa21cd,sex,age_band,population\n"
                            "E01000001,1,40-44,120\nE01000002,1,40-44,90\n");
    cc_testfs_write_text_in(feed_dir, "gp_registrations.csv",
                            "nhs_number,given_name,family_name,date_of_birth,sex,postcode,"
                            "practice_code,registration_date,optout_code\n"
                            "9990000018,Ann,Quux,1980-05-01,1,LS1 4AP,B86001,2010-01-01,\n"
                            "9990000018,Ann,Quux,1980-05-01,1,LS2 9JT,B86001,2020-01-01,\n"
                            "9990000026,Bea,Quux,1980-05-01,1,LS1 4AP,B86001,2021-01-01,\n"
                            "9990000034,Cal,Quux,1970-01-01,2,LS1 4AP,B86001,2010-01-01,\n"
                            "9990000034,Cal,Quux,1970-01-01,2,LS2 9JT,B86001,2020-01-01,\n");
    cc_testfs_write_text_in(feed_dir, "hes_apc.csv",
                            "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,"
                            "admission_date,discharge_date,admission_method,diag_01\n"
                            "1,,1980-05-01,1,LS1 4AP,RR8,2015-03-01,2015-03-02,21,J189\n"
                            "2,,1970-01-01,2,LS1 4AP,RR8,2015-03-01,2015-03-02,21,J189\n"
                            "3,,1980-05-01,1,LS2 9JT,RR8,2022-03-01,2022-03-02,21,J189\n");
    static const int kinds[] = {CC_FEED_AREAS, CC_FEED_POSTCODES, CC_FEED_POPULATION,
                                CC_FEED_GP_REGISTRATIONS, CC_FEED_HOSPITAL};
    static char paths[5][256];
    struct cc_ingest_options opt = {.data_dir = data_dir, .key_path = key_path};
    for (int i = 0; i < 5; i++) {
        cc_testfs_path(paths[i], sizeof paths[i], feed_dir, cc_feed_kind_file(kinds[i]));
        opt.files[opt.n_files].kind = kinds[i];
        opt.files[opt.n_files].path = paths[i];
        opt.n_files++;
    }
    cr_assert_eq(setenv("CC_TEST_LINK_TRACE", trace_path, 1), 0);
    static struct cc_ingest_report r;
    char err[512];
    cr_assert_eq(cc_ingest_run(&opt, &r, err, sizeof err), 0, "%s", err);
    unsetenv("CC_TEST_LINK_TRACE");

    /* who is who, from the trace of the registrations */
    size_t len;
    char *text = cc_testfs_read(trace_path, &len);
    long long person_of_line[2][8];
    char outcome_of_line[2][8][16];
    memset(person_of_line, -1, sizeof person_of_line);
    memset(outcome_of_line, 0, sizeof outcome_of_line);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char feed[64], outcome[16];
        unsigned long long at;
        long long person = -1;
        if (sscanf(line, "%63[^,],%llu,%15[^,],%lld", feed, &at, outcome, &person) < 3 || at >= 8)
            continue;
        int f = !strcmp(feed, "hes_apc.csv");
        person_of_line[f][at] = person;
        snprintf(outcome_of_line[f][at], 16, "%s", outcome);
    }
    free(text);
    long long a = person_of_line[0][3], b = person_of_line[0][4], c = person_of_line[0][6];
    cr_assert(a >= 0 && b >= 0 && c >= 0 && a != b && b != c && a != c);
    cr_assert_eq(person_of_line[0][2], a, "both of A's registrations are A");
    cr_assert_str_eq(outcome_of_line[1][2], "ambiguous", "A's old address is B's: never B alone");
    cr_assert_str_eq(outcome_of_line[1][3], "2");
    cr_assert_eq(person_of_line[1][3], c, "C's old address links to C");
    cr_assert_str_eq(outcome_of_line[1][4], "2");
    cr_assert_eq(person_of_line[1][4], a, "A's current address links to A");
    cc_testfs_remove_tree(dir);
}
