/*
 * Tests for the ingest stage (core/cc_ingest*.c, core/cc_link.c): validation with
 * rejects by line and reason, names never stored, idempotent re-ingest, a
 * later feed adding to the store, type 1 and national opt-outs before and
 * after ingest, withdrawal, both linkage stages, crash safety under
 * SIGKILL at several points, and the provenance a run records.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "cc_datadir.h"
#include "cc_date.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_model.h"
#include "cc_pseudo.h"
#include "cc_store.h"
#include "cc_testfs.h"

static char root[256], feeds[300], data[300], key_path[300];

static const char *AREAS = "code,name,level,parent_code\n"
                           "E12000003,Yorkshire and The Humber,region,\n"
                           "E54000054,West Yorkshire ICB,icb,E12000003\n"
                           "E08000035,Leeds,lad,E54000054\n"
                           "E01000001,Leeds 001A,lsoa,E08000035\n"
                           "E01000002,Leeds 001B,lsoa,E08000035\n";
static const char *POSTCODES = "pcds,lsoa21cd,lad23cd,icb23cd,rgn23cd\n"
                               "LS1 4AP,E01000001,E08000035,E54000054,E12000003\n"
                               "LS2 9JT,E01000002,E08000035,E54000054,E12000003\n";
static const char *POPULATION = "lsoa21cd,sex,age_band,population\n"
                                "E01000001,1,40-44,120\n"
                                "E01000001,2,40-44,130\n"
                                "E01000002,1,40-44,90\n";

/* Valid NHS numbers from the range reserved for testing. */
#define NHS_A "9990000018"
#define NHS_B "9990000026"
#define NHS_C "9990000034"
#define NHS_D "9990000042"

static const char *REGISTRATIONS =
    "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
    "registration_date,optout_code\n"
    NHS_A ",Zebedee,\"Quuxworth, Jr\",1980-05-01,1,ls1 4ap,B86001,2010-01-01,\n"
    NHS_B ",Zoë,O'Quuxworth,1975-02-03,2,LS2  9JT,B86001,2011-01-01,\n"
    NHS_C ",Ann,Quuxworth,1960-07-07,2,LS29JT,B86002,2012-01-01,\n"
    /* D moved: the later registration gives the area */
    NHS_D ",Bob,Quuxworth,1990-09-09,1,LS1 4AP,B86001,2015-01-01,\n"
    NHS_D ",Bob,Quuxworth,1990-09-09,1,LS2 9JT,B86002,2020-06-01,\n";

static const char *GP_EVENTS = "nhs_number,practice_code,event_date,snomed_code\n" NHS_A
                               ",B86001,2021-03-04,44054006\n" NHS_A
                               ",B86001,2021-03-04,44054006\n" /* duplicate row */
                               NHS_B ",B86001,2022-01-01,38341003\n" NHS_C
                               ",B86002,2022-02-02,44054006\n" NHS_D
                               ",B86002,2023-03-03,38341003\n";

static const char *HES_HEADER =
    "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,admission_date,discharge_date,"
    "admission_method,diag_01,diag_02,opertn_01\n";

static const char *COMMUNITY_HEADER = "contact_id,nhs_number,date_of_birth,sex,postcode,"
                                      "provider_code,contact_date,service_type,snomed_code\n";

static const char *OPTOUTS_HEADER = "nhs_number,optout_type,action,effective_date,practice_code\n";

static void setup(void)
{
    cc_testfs_make_dir(root, sizeof root, "ingest");
    snprintf(feeds, sizeof feeds, "%s/feeds", root);
    snprintf(data, sizeof data, "%s/data", root);
    snprintf(key_path, sizeof key_path, "%s/key", root);
    cr_assert(mkdir(feeds, 0700) == 0);
    cr_assert_eq(cc_pseudo_keygen(key_path), 0);
    cc_testfs_write_text_in(feeds, "areas.csv", AREAS);
    cc_testfs_write_text_in(feeds, "postcodes.csv", POSTCODES);
    cc_testfs_write_text_in(feeds, "population.csv", POPULATION);
    cc_testfs_write_text_in(feeds, "gp_registrations.csv", REGISTRATIONS);
    cc_testfs_write_text_in(feeds, "gp_events.csv", GP_EVENTS);
}

static void teardown(void)
{
    cc_testfs_remove_tree(root);
}

TestSuite(ingest, .init = setup, .fini = teardown);

/* Runs an ingest of the named files of feeds/ (NULL-terminated kind names). */
static int run_ingest(struct cc_ingest_report *report, const char *const *kinds)
{
    static char paths[CC_INGEST_MAX_FILES][600];
    struct cc_ingest_options opt = {0};
    opt.data_dir = data;
    opt.key_path = key_path;
    opt.today = cc_day_from_ymd(2026, 1, 1);
    for (size_t i = 0; kinds[i]; i++) {
        const char *eq = strchr(kinds[i], '=');
        char name[64];
        size_t n = eq ? (size_t)(eq - kinds[i]) : strlen(kinds[i]);
        memcpy(name, kinds[i], n);
        name[n] = '\0';
        int kind = cc_feed_kind_from_name(name);
        cr_assert(kind >= 0, "kind %s", name);
        snprintf(paths[i], sizeof paths[i], "%s/%s", feeds, eq ? eq + 1 : cc_feed_kind_file(kind));
        opt.files[opt.n_files].kind = kind;
        opt.files[opt.n_files].path = paths[i];
        opt.n_files++;
    }
    char err[512];
    int rc = cc_ingest_run(&opt, report, err, sizeof err);
    if (rc < 0)
        cr_log_info("ingest: %s", err);
    return rc;
}

/* Reads the rejects report of an ingest into text (NUL-terminated). */
static void read_rejects(const struct cc_ingest_report *report, char *text, size_t cap)
{
    FILE *f = fopen(report->rejects_path, "r");
    cr_assert(f, "no rejects report");
    size_t n = fread(text, 1, cap - 1, f);
    text[n] = '\0';
    fclose(f);
}

static const char *const BASE_KINDS[] = {"areas", "postcodes", "population", "gp_registrations",
                                         "gp_events", NULL};

static cc_store *load_current(uint64_t *version)
{
    char err[1024];
    uint64_t v = 0;
    cc_store *store = NULL;
    cr_assert_eq(cc_datadir_load_current(data, key_path, CC_STORE_LOAD_ALL, &store, &v, err,
                                         sizeof err),
                 0, "%s", err);
    if (version)
        *version = v;
    return store;
}

static const struct cc_feed_report *feed_of(const struct cc_ingest_report *r, int kind)
{
    for (size_t i = 0; i < r->n_feeds; i++)
        if (r->feeds[i].kind == kind)
            return &r->feeds[i];
    cr_assert_fail("no report for kind %d", kind);
    return NULL;
}

static int64_t person_of(const cc_store *store, const char *nhs)
{
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(key_path, &key), 0);
    cc_pseudonym p;
    cc_pseudo_nhs(key, nhs, &p);
    cc_pseudo_key_free(key);
    return cc_store_find_person(store, &p);
}

/* Records of one person in one setting. */
static uint64_t records_of(const cc_store *store, int64_t person, int setting)
{
    const struct cc_store_columns *c = cc_store_columns(store);
    uint64_t n = 0;
    for (uint64_t r = c->setting_first[setting]; r < c->setting_first[setting + 1]; r++)
        n += c->record_person[r] == (uint32_t)person;
    return n;
}

Test(ingest, links_registrations_and_events_and_counts_duplicates)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cr_assert_eq(report.store_version, 1);
    cr_assert_eq(report.n_persons, 4);
    const struct cc_feed_report *events = feed_of(&report, CC_FEED_GP_EVENTS);
    cr_assert_eq(events->rows_read, 5);
    cr_assert_eq(events->rows_duplicate, 1);
    cr_assert_eq(events->rows_accepted, 4);
    cr_assert_eq(events->linked_stage1, 4);

    cc_store *store = load_current(NULL);
    const struct cc_store_columns *c = cc_store_columns(store);
    cr_assert_eq(c->n_records, 4);
    /* D moved: their area is the later registration's (LS2 9JT -> E01000002) */
    int64_t d = person_of(store, NHS_D);
    cr_assert_geq(d, 0);
    cr_assert_str_eq(c->lsoa_code[c->person_lsoa[d]], "E01000002");
    cr_assert_str_eq(c->practice_code[c->person_practice[d]], "B86002");
    /* spelling variants of a postcode resolve to the same area */
    int64_t b = person_of(store, NHS_B);
    cr_assert_str_eq(c->lsoa_code[c->person_lsoa[b]], "E01000002");
    cc_store_free(store);
}

Test(ingest, rejects_bad_rows_with_line_and_reason_and_goes_on)
{
    cc_testfs_write_text_in(feeds, "gp_events.csv",
               "nhs_number,practice_code,event_date,snomed_code\n"
               /* line 2: fine */
               NHS_A ",B86001,2021-03-04,44054006\n"
               /* line 3: bad check digit */
               "9990000019,B86001,2021-03-04,44054006\n"
               /* line 4: date that does not exist */
               NHS_A ",B86001,2023-02-30,44054006\n"
               /* line 5: date in the future (today is 2026-01-01 here) */
               NHS_A ",B86001,2027-01-01,44054006\n"
               /* line 6: SNOMED check digit wrong */
               NHS_A ",B86001,2021-03-05,44054007\n"
               /* line 7: wrong number of fields */
               NHS_A ",B86001,2021-03-06\n"
               /* line 8: NHS number not 10 digits */
               "99900000,B86001,2021-03-04,44054006\n"
               /* line 9: practice code malformed */
               NHS_A ",86001,2021-03-04,44054006\n");
    cc_testfs_write_text_in(feeds, "hes_apc.csv",
               "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,admission_date,"
               "discharge_date,admission_method,diag_01,diag_02,opertn_01\n"
               /* line 2: discharge before admission */
               "E1," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-01,21,E119,,\n"
               /* line 3: sex code 7 */
               "E2," NHS_A ",1980-05-01,7,LS1 4AP,RR8,2022-05-05,2022-05-06,21,E119,,\n"
               /* line 4: ICD-10 malformed */
               "E3," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-06,21,123,,\n"
               /* line 5: OPCS-4 malformed */
               "E4," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-06,21,E119,,9999\n"
               /* line 6: postcode not a postcode */
               "E5," NHS_A ",1980-05-01,1,NOTAPC,RR8,2022-05-05,2022-05-06,21,E119,,\n"
               /* line 7: fine, with filler X and a dot */
               "E6," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-06,21,I10X,E11.9,K401\n");
    const char *const kinds[] = {"areas", "postcodes", "population", "gp_registrations",
                                 "gp_events", "hes_apc", NULL};
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, kinds), 0);
    const struct cc_feed_report *ev = feed_of(&report, CC_FEED_GP_EVENTS);
    cr_assert_eq(ev->rows_read, 8);
    cr_assert_eq(ev->rows_accepted, 1);
    cr_assert_eq(ev->rows_rejected, 7);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_NHS_NUMBER_CHECK], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_DATE_INVALID], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_DATE_FUTURE], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_SNOMED], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_MALFORMED_ROW], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_NHS_NUMBER_SHAPE], 1);
    cr_assert_eq(ev->rejected_by_reason[CC_REJECT_PRACTICE], 1);
    const struct cc_feed_report *hes = feed_of(&report, CC_FEED_HOSPITAL);
    cr_assert_eq(hes->rows_accepted, 1);
    cr_assert_eq(hes->rejected_by_reason[CC_REJECT_DATE_ORDER], 1);
    cr_assert_eq(hes->rejected_by_reason[CC_REJECT_SEX], 1);
    cr_assert_eq(hes->rejected_by_reason[CC_REJECT_ICD10], 1);
    cr_assert_eq(hes->rejected_by_reason[CC_REJECT_OPCS4], 1);
    cr_assert_eq(hes->rejected_by_reason[CC_REJECT_POSTCODE], 1);

    /* The rejects report lists file, line and reason for each. */
    char text[8192];
    read_rejects(&report, text, sizeof text);
    cr_assert(strstr(text, "gp_events.csv,3,NHS_NUMBER_CHECK"));
    cr_assert(strstr(text, "gp_events.csv,4,DATE_INVALID"));
    cr_assert(strstr(text, "gp_events.csv,7,MALFORMED_ROW"));
    cr_assert(strstr(text, "hes_apc.csv,2,DATE_ORDER"));
    /* and never a value from the row */
    cr_assert_null(strstr(text, "9990000019"));
    cr_assert_null(strstr(text, "NOTAPC"));

    /* the accepted episode holds its codes normalised: I10, E119, K401 */
    cc_store *store = load_current(NULL);
    cr_assert_geq(cc_store_find_code(store, CC_CODE_ICD10, "I10"), 0);
    cr_assert_geq(cc_store_find_code(store, CC_CODE_ICD10, "E119"), 0);
    cr_assert_geq(cc_store_find_code(store, CC_CODE_OPCS4, "K401"), 0);
    cc_store_free(store);
}

/* The feeds of issue 19's stray-quote case and one malformed quote of another
 * shape in every feed: each bad row is rejected on its own line as
 * MALFORMED_QUOTE, the row after it is read as itself, and rows read always
 * equal rows accepted + rejected + duplicate. */
Test(ingest, a_stray_quote_rejects_its_row_in_every_feed_and_merges_nothing)
{
    cc_testfs_write_text_in(feeds, "areas.csv",
               "code,name,level,parent_code\n"
               "E12000003,Yorkshire and The Humber,region,\n"
               "E54000054,West Yorkshire ICB,icb,E12000003\n"
               "E08000035,Leeds,lad,E54000054\n"
               "E01000009,\"Leeds 009\"z,lsoa,E08000035\n" /* line 5 */
               "E01000001,Leeds 001A,lsoa,E08000035\n"
               "E01000008,\"Leeds 008,lsoa,E08000035\n"   /* line 7: never closed */
               "E01000002,Leeds 001B,lsoa,E08000035\n");
    cc_testfs_write_text_in(feeds, "postcodes.csv",
               "pcds,lsoa21cd,lad23cd,icb23cd,rgn23cd\n"
               "LS1 4AP,E01000001,E08000035,E54000054,E12000003\n"
               "\"LS9 9ZZ\"x,E01000001,E08000035,E54000054,E12000003\n" /* line 3 */
               "LS2 9JT,E01000002,E08000035,E54000054,E12000003\n");
    cc_testfs_write_text_in(feeds, "population.csv",
               "lsoa21cd,sex,age_band,population\n"
               "E01000001,1,40-44,120\n"
               "E01000001,2\",40-44,130\n" /* line 3: a quote in an unquoted field */
               "E01000002,1,40-44,90\n");
    /* line 2: A's given name opens a quote that an older reader kept open up
     * to B's quoted given name, storing A with B's date of birth and sex and
     * losing B */
    cc_testfs_write_text_in(feeds, "gp_registrations.csv",
               "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
               "registration_date,optout_code\n"
               NHS_A ",\"Zeb\"by,Quuxworth,1980-05-01,1,LS1 4AP,B86001,2010-01-01,\n"
               NHS_B ",\"Zoe\",Quuxworth,1975-02-03,2,LS2 9JT,B86001,2011-01-01,\n"
               NHS_C ",Ann,Quuxworth,1960-07-07,2,LS2 9JT,B86002,2012-01-01,\n");
    cc_testfs_write_text_in(feeds, "gp_events.csv",
               "nhs_number,practice_code,event_date,snomed_code\n"
               NHS_B ",B86001,\"2021-03-04\"x,44054006\n" /* line 2 */
               NHS_B ",B86001,2022-01-01,38341003\n"
               NHS_C ",B86002,2022-02-02,\"44054006\n"    /* line 4: never closed */
               NHS_C ",B86002,2022-02-03,44054006\n");
    cc_testfs_write_text_in(feeds, "hes_apc.csv",
               "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,admission_date,"
               "discharge_date,admission_method,diag_01,diag_02,opertn_01\n"
               "E1," NHS_B ",1975-02-03,2,\"LS2 9JT,RR8,2022-05-05,2022-05-06,21,E119,,\n"
               "E2," NHS_B ",1975-02-03,2,LS2 9JT,RR8,2022-05-05,2022-05-06,21,\"I10\"X,,\n"
               "E3," NHS_B ",1975-02-03,2,LS2 9JT,RR8,2022-05-05,2022-05-06,21,I10X,,\n");
    cc_testfs_write_text_in(feeds, "community_contacts.csv",
               "contact_id,nhs_number,date_of_birth,sex,postcode,provider_code,contact_date,"
               "service_type,snomed_code\n"
               "C1," NHS_C ",1960-07-07,2,LS2 9JT,\"RR8\" \"x\",2022-01-01,01,44054006\n"
               "C2," NHS_C ",1960-07-07,2,LS2 9JT,RR8,2022-01-02,01,44054006\n");
    cc_testfs_write_text_in(feeds, "optout_register.csv",
               "nhs_number,optout_type,action,effective_date,practice_code\n"
               NHS_D ",ndop,register,2020-01-01,\"\n" /* line 2: a lone quote, never closed */
               NHS_C ",ndop,\"withdraw\"\"x,2020-01-01,\n" /* line 3 */
               NHS_D ",ndop,register,2020-02-01,\n");
    const char *const kinds[] = {"areas",     "postcodes", "population", "gp_registrations",
                                 "gp_events", "hes_apc",   "community",  "optouts",
                                 NULL};
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, kinds), 0);
    static const struct {
        int kind;
        uint64_t read, bad_quotes;
    } expect[] = {
        {CC_FEED_AREAS, 7, 2},      {CC_FEED_POSTCODES, 3, 1},  {CC_FEED_POPULATION, 3, 1},
        {CC_FEED_GP_REGISTRATIONS, 3, 1}, {CC_FEED_GP_EVENTS, 4, 2}, {CC_FEED_HOSPITAL, 3, 2},
        {CC_FEED_COMMUNITY, 2, 1},  {CC_FEED_OPTOUTS, 3, 2},
    };
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        const struct cc_feed_report *feed = feed_of(&report, expect[i].kind);
        cr_assert_not_null(feed, "feed %d", expect[i].kind);
        cr_assert_eq(feed->rows_read, expect[i].read, "feed %d read %llu", expect[i].kind,
                     (unsigned long long)feed->rows_read);
        cr_assert_eq(feed->rejected_by_reason[CC_REJECT_MALFORMED_QUOTE], expect[i].bad_quotes,
                     "feed %d", expect[i].kind);
        cr_assert_eq(feed->rows_read,
                     feed->rows_accepted + feed->rows_rejected + feed->rows_duplicate,
                     "feed %d", expect[i].kind);
        cr_assert_eq(feed->rows_accepted, expect[i].read - expect[i].bad_quotes, "feed %d",
                     expect[i].kind);
    }

    /* B was not swallowed by A's row: B is stored with B's own date of birth
     * and sex, and A (whose only registration was the bad row) is not there */
    cc_store *store = load_current(NULL);
    int64_t b = person_of(store, NHS_B);
    cr_assert_geq(b, 0);
    const struct cc_store_columns *c = cc_store_columns(store);
    cr_assert_eq(c->person_dob[b], cc_day_from_ymd(1975, 2, 3));
    cr_assert_eq(c->person_sex[b], CC_SEX_FEMALE);
    cr_assert_lt(person_of(store, NHS_A), 0);
    cr_assert_eq(records_of(store, b, CC_SETTING_GP), 1);
    cr_assert_eq(records_of(store, b, CC_SETTING_HOSPITAL), 1);
    cc_store_free(store);

    char text[8192];
    read_rejects(&report, text, sizeof text);
    static const char *const lines[] = {
        "areas.csv,5,MALFORMED_QUOTE",          "areas.csv,7,MALFORMED_QUOTE",
        "postcodes.csv,3,MALFORMED_QUOTE",      "population.csv,3,MALFORMED_QUOTE",
        "gp_registrations.csv,2,MALFORMED_QUOTE", "gp_events.csv,2,MALFORMED_QUOTE",
        "gp_events.csv,4,MALFORMED_QUOTE",      "hes_apc.csv,2,MALFORMED_QUOTE",
        "hes_apc.csv,3,MALFORMED_QUOTE",        "community_contacts.csv,2,MALFORMED_QUOTE",
        "optout_register.csv,2,MALFORMED_QUOTE", "optout_register.csv,3,MALFORMED_QUOTE",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        cr_assert(strstr(text, lines[i]), "missing %s in\n%s", lines[i], text);
    cr_assert_null(strstr(text, "Zeb"), "a reject names no content");
    cr_assert_null(strstr(text, NHS_A));
}

/* A named pipe or a device given as a feed is refused at once, with its
 * name: the real `carecount ingest` runs under timeout(1), so a reader that
 * waited for a writer or read /dev/zero forever fails this test instead of
 * hanging it. */
Test(ingest, a_fifo_or_a_device_as_a_feed_is_refused_at_once)
{
    char fifo[600];
    snprintf(fifo, sizeof fifo, "%s/events.fifo", feeds);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    const char *const bad[] = {fifo, "/dev/zero", "/dev/null", feeds};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char command[2400], out[4096];
        snprintf(command, sizeof command,
                 "timeout 60 %s/carecount ingest --data %s --key %s --today 2026-01-01 --quiet "
                 "areas=%s/areas.csv postcodes=%s/postcodes.csv gp_events=%s 2>&1",
                 CC_BIN_DIR, data, key_path, feeds, feeds, bad[i]);
        FILE *pipe = popen(command, "r");
        cr_assert_not_null(pipe);
        size_t used = fread(out, 1, sizeof out - 1, pipe);
        out[used] = '\0';
        int status = pclose(pipe);
        cr_assert(WIFEXITED(status), "%s", bad[i]);
        cr_assert_neq(WEXITSTATUS(status), 124, "ingest of %s hung until the timeout", bad[i]);
        cr_assert_eq(WEXITSTATUS(status), 1, "%s: %s", bad[i], out);
        cr_assert(strstr(out, bad[i]) && strstr(out, "not a regular file"), "%s: %s", bad[i],
                  out);
    }
}

/* Searches every file under dir for needle; returns the first path found. */
static int tree_contains(const char *dir, const char *needle, char *found, size_t found_len)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *e;
    int hit = 0;
    while (!hit && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            hit = tree_contains(path, needle, found, found_len);
            continue;
        }
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char *buf = malloc((size_t)st.st_size + 1);
        size_t n = fread(buf, 1, (size_t)st.st_size, f);
        fclose(f);
        size_t m = strlen(needle);
        for (size_t i = 0; !hit && m <= n && i <= n - m; i++)
            if (!memcmp(buf + i, needle, m)) {
                hit = 1;
                snprintf(found, found_len, "%s", path);
            }
        free(buf);
    }
    closedir(d);
    return hit;
}

Test(ingest, stores_no_name_nhs_number_or_postcode)
{
    struct cc_ingest_report report;
    cc_testfs_write_text_in(feeds, "hes_apc.csv",
               "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,admission_date,"
               "discharge_date,admission_method,diag_01,diag_02,opertn_01\n"
               "E1," NHS_B ",1975-02-03,2,LS2 9JT,RR8,2022-05-05,2022-05-06,21,E119,,\n");
    const char *const kinds[] = {"areas", "postcodes", "population", "gp_registrations",
                                 "gp_events", "hes_apc", NULL};
    cr_assert_eq(run_ingest(&report, kinds), 0);
    char found[1024];
    static const char *const needles[] = {"Quuxworth", "Zebedee", "Zo\xc3\xab", NHS_A, NHS_B,
                                          "LS1 4AP", "LS2 9JT", "ls1 4ap", "LS29JT"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++)
        cr_assert_not(tree_contains(data, needles[i], found, sizeof found),
                      "identifier %zu found in %s", i, found);
    /* The check would find them if they were there. */
    cr_assert(tree_contains(feeds, "Quuxworth", found, sizeof found));
}

Test(ingest, reingesting_the_same_files_changes_nothing)
{
    struct cc_ingest_report first, second;
    cr_assert_eq(run_ingest(&first, BASE_KINDS), 0);
    cr_assert_eq(run_ingest(&second, BASE_KINDS), 0);
    cr_assert_eq(second.store_version, 0, "a second version was published");
    for (size_t i = 0; i < second.n_feeds; i++)
        cr_assert(second.feeds[i].skipped_already_ingested);
    uint64_t version;
    cc_store *store = load_current(&version);
    cr_assert_eq(version, 1);
    cr_assert_eq(cc_store_columns(store)->n_records, first.n_records);
    cc_store_free(store);
}

Test(ingest, a_later_feed_adds_to_the_store)
{
    struct cc_ingest_report first, second;
    cr_assert_eq(run_ingest(&first, BASE_KINDS), 0);
    cc_testfs_write_text_in(feeds, "gp_events_2.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_B
               ",B86001,2024-01-01,44054006\n" NHS_C ",B86002,2024-02-02,195967001\n");
    const char *const later[] = {"gp_events=gp_events_2.csv", NULL};
    cr_assert_eq(run_ingest(&second, later), 0);
    cr_assert_eq(second.store_version, 2);
    uint64_t version;
    cc_store *store = load_current(&version);
    cr_assert_eq(version, 2);
    const struct cc_store_columns *c = cc_store_columns(store);
    cr_assert_eq(c->n_records, first.n_records + 2);
    cr_assert_eq(c->n_persons, 4, "persons keep their identity across feeds");
    cr_assert_eq(records_of(store, person_of(store, NHS_B), CC_SETTING_GP), 2);
    cc_store_free(store);
}

Test(ingest, type1_before_ingest_keeps_gp_data_out_but_not_hospital_data)
{
    char text[2048];
    snprintf(text, sizeof text, "%s" NHS_A ",type1,register,2019-01-01,B86001\n", OPTOUTS_HEADER);
    cc_testfs_write_text_in(feeds, "optout_register.csv", text);
    snprintf(text, sizeof text,
             "%sE1," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-06,21,E119,,\n",
             HES_HEADER);
    cc_testfs_write_text_in(feeds, "hes_apc.csv", text);
    const char *const kinds[] = {"areas",     "postcodes", "population", "optouts",
                                 "gp_registrations", "gp_events", "hes_apc", NULL};
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, kinds), 0);
    cr_assert_eq(feed_of(&report, CC_FEED_GP_REGISTRATIONS)->dropped_type1, 1);
    cr_assert_eq(feed_of(&report, CC_FEED_GP_EVENTS)->dropped_type1, 2);
    cc_store *store = load_current(NULL);
    int64_t a = person_of(store, NHS_A);
    cr_assert_geq(a, 0, "the hospital episode makes the person known");
    cr_assert_eq(records_of(store, a, CC_SETTING_GP), 0);
    cr_assert_eq(records_of(store, a, CC_SETTING_HOSPITAL), 1);
    const struct cc_store_columns *c = cc_store_columns(store);
    cr_assert_eq(c->person_practice[a], UINT16_MAX, "no GP-sourced demographics");
    cc_store_free(store);
}

Test(ingest, type1_code_on_a_registration_row_counts_too)
{
    cc_testfs_write_text_in(feeds, "gp_registrations.csv",
               "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
               "registration_date,optout_code\n" NHS_A
               ",Zebedee,Quuxworth,1980-05-01,1,LS1 4AP,B86001,2010-01-01,9Nu0\n" NHS_B
               ",Zoe,Quuxworth,1975-02-03,2,LS2 9JT,B86001,2011-01-01,9Nu4\n");
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cc_store *store = load_current(NULL);
    cr_assert_lt(person_of(store, NHS_A), 0, "type 1: no GP-sourced data at all");
    /* a national data opt-out does not stop storage: it stops release */
    cr_assert_geq(person_of(store, NHS_B), 0);
    cr_assert_eq(records_of(store, person_of(store, NHS_B), CC_SETTING_GP), 1);
    cc_store_free(store);
}

Test(ingest, type1_registered_after_ingest_removes_gp_records)
{
    struct cc_ingest_report first, second;
    char text[2048];
    snprintf(text, sizeof text, "%sE1," NHS_C ",1960-07-07,2,LS2 9JT,RR8,2022-05-05,,21,J45,,\n",
             HES_HEADER);
    cc_testfs_write_text_in(feeds, "hes_apc.csv", text);
    const char *const kinds[] = {"areas", "postcodes", "population", "gp_registrations",
                                 "gp_events", "hes_apc", NULL};
    cr_assert_eq(run_ingest(&first, kinds), 0);
    cc_store *store = load_current(NULL);
    cr_assert_eq(records_of(store, person_of(store, NHS_C), CC_SETTING_GP), 1);
    cc_store_free(store);

    snprintf(text, sizeof text, "%s" NHS_C ",type1,register,2025-06-01,B86002\n", OPTOUTS_HEADER);
    cc_testfs_write_text_in(feeds, "optout_register.csv", text);
    const char *const optouts[] = {"optouts", NULL};
    cr_assert_eq(run_ingest(&second, optouts), 0);
    cr_assert_eq(second.store_version, 2);
    store = load_current(NULL);
    int64_t c = person_of(store, NHS_C);
    cr_assert_eq(records_of(store, c, CC_SETTING_GP), 0, "GP records left the store");
    cr_assert_eq(records_of(store, c, CC_SETTING_HOSPITAL), 1);
    cr_assert_eq(records_of(store, person_of(store, NHS_A), CC_SETTING_GP), 1,
                 "nobody else lost data");
    cc_store_free(store);
}

Test(ingest, withdrawn_type1_is_not_in_force)
{
    char text[2048];
    snprintf(text, sizeof text,
             "%s" NHS_A ",type1,register,2019-01-01,B86001\n" NHS_A
             ",type1,withdraw,2020-01-01,B86001\n",
             OPTOUTS_HEADER);
    cc_testfs_write_text_in(feeds, "optout_register.csv", text);
    const char *const kinds[] = {"areas", "postcodes", "population", "optouts",
                                 "gp_registrations", "gp_events", NULL};
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, kinds), 0);
    cr_assert_eq(feed_of(&report, CC_FEED_OPTOUTS)->optout_events_added, 2);
    cc_store *store = load_current(NULL);
    cr_assert_eq(records_of(store, person_of(store, NHS_A), CC_SETTING_GP), 1);
    cc_store_free(store);
}

Test(ingest, stage2_links_unique_demographics_and_refuses_ambiguous_ones)
{
    /* Two registered persons share date of birth, sex and postcode. */
    cc_testfs_write_text_in(feeds, "gp_registrations.csv",
               "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
               "registration_date,optout_code\n" NHS_A
               ",Zebedee,Quuxworth,1980-05-01,1,LS1 4AP,B86001,2010-01-01,\n" NHS_B
               ",Tom,Quuxworth,1970-01-01,1,LS2 9JT,B86001,2010-01-01,\n" NHS_C
               ",Tim,Quuxworth,1970-01-01,1,LS2 9JT,B86001,2010-01-01,\n");
    char text[4096];
    snprintf(text, sizeof text,
             "%s"
             /* no NHS number: unique match on A's demographics */
             "C1,,1980-05-01,1,ls1 4ap,RR8,2022-05-05,05,44054006\n"
             /* invalid NHS number: also stage 2 */
             "C2,9990000019,1980-05-01,1,LS1 4AP,RR8,2022-05-06,05,44054006\n"
             /* ambiguous: B and C share these */
             "C3,,1970-01-01,1,LS2 9JT,RR8,2022-05-05,05,44054006\n"
             /* no match at all */
             "C4,,2001-01-01,2,LS2 9JT,RR8,2022-05-05,05,44054006\n",
             COMMUNITY_HEADER);
    cc_testfs_write_text_in(feeds, "community_contacts.csv", text);
    const char *const kinds[] = {"areas", "postcodes", "population", "gp_registrations",
                                 "community", NULL};
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, kinds), 0);
    const struct cc_feed_report *f = feed_of(&report, CC_FEED_COMMUNITY);
    cr_assert_eq(f->linked_stage1, 0);
    cr_assert_eq(f->linked_stage2, 2);
    cr_assert_eq(f->unlinked_ambiguous, 1);
    cr_assert_eq(f->unlinked_no_match, 1);
    cc_store *store = load_current(NULL);
    cr_assert_eq(records_of(store, person_of(store, NHS_A), CC_SETTING_COMMUNITY), 2);
    cr_assert_eq(records_of(store, person_of(store, NHS_B), CC_SETTING_COMMUNITY), 0);
    cr_assert_eq(records_of(store, person_of(store, NHS_C), CC_SETTING_COMMUNITY), 0);
    cc_store_free(store);
}

Test(ingest, refuses_a_key_inside_the_data_directory)
{
    struct cc_ingest_report report;
    cr_assert_eq(mkdir(data, 0700), 0);
    char inside[600];
    snprintf(inside, sizeof inside, "%s/key", data);
    cr_assert_eq(cc_pseudo_keygen(inside), 0);
    struct cc_ingest_options opt = {0};
    opt.data_dir = data;
    opt.key_path = inside;
    opt.n_files = 1;
    opt.files[0].kind = CC_FEED_AREAS;
    opt.files[0].path = "/nonexistent";
    char err[512];
    cr_assert_eq(cc_ingest_run(&opt, &report, err, sizeof err), CC_EWEAKKEY);
    cr_assert(strstr(err, "inside the data directory"), "error names the problem: %s", err);
}

/* Runs an ingest in a child killed by SIGKILL at `point`; returns whether it
 * died by SIGKILL. */
static int ingest_killed_at(const char *point, const char *const *kinds)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        setenv("CC_TEST_KILL_AT", point, 1);
        struct cc_ingest_report report;
        run_ingest(&report, kinds);
        _exit(0);
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

Test(ingest, a_killed_ingest_leaves_the_store_before_or_fully_after)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    uint64_t records_before = report.n_records;
    cc_testfs_write_text_in(feeds, "gp_events_2.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_B
               ",B86001,2024-01-01,44054006\n" NHS_C ",B86002,2024-02-02,195967001\n");
    char text[2048];
    snprintf(text, sizeof text, "%s" NHS_D ",ndop,register,2025-01-01,\n", OPTOUTS_HEADER);
    cc_testfs_write_text_in(feeds, "optout_register.csv", text);
    const char *const later[] = {"optouts", "gp_events=gp_events_2.csv", NULL};

    static const char *const points[] = {"rows:1", "rows:2", "before-finish", "before-commit"};
    for (size_t i = 0; i < sizeof points / sizeof *points; i++) {
        cr_assert(ingest_killed_at(points[i], later), "not killed at %s", points[i]);
        uint64_t version;
        cc_store *store = load_current(&version);
        cr_assert_eq(version, 1, "killed at %s: the store moved", points[i]);
        cr_assert_eq(cc_store_columns(store)->n_records, records_before);
        cc_store_free(store);
    }
    /* Killed just after the commit: fully after. */
    cr_assert(ingest_killed_at("after-commit", later));
    uint64_t version;
    cc_store *store = load_current(&version);
    cr_assert_eq(version, 2);
    cr_assert_eq(cc_store_columns(store)->n_records, records_before + 2);
    cc_store_free(store);
    /* and a rerun finds everything already ingested */
    cr_assert_eq(run_ingest(&report, later), 0);
    cr_assert_eq(report.store_version, 0);
}

/* The rejects report of version N, or NULL when there is none. */
static char *rejects_of(unsigned version)
{
    char path[700];
    snprintf(path, sizeof path, "%s/rejects/ingest-%06u.csv", data, version);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = calloc(1, 65536);
    cr_assert(text);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Found by tests/crash/crash_loop.py: the report was still in stdio's buffer
 * at the commit, so an ingest killed just after it left its committed
 * version with an empty report (and the feed, now ingested, is never read
 * again to rebuild it). */
Test(ingest, a_version_committed_just_before_a_kill_keeps_its_rejects_report)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cc_testfs_write_text_in(feeds, "gp_events_2.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_B
               ",B86001,2024-01-01,44054006\n" NHS_C ",B86002,2024-02-30,195967001\n");
    const char *const later[] = {"gp_events=gp_events_2.csv", NULL};
    cr_assert(ingest_killed_at("after-commit", later));
    uint64_t version;
    cc_store *store = load_current(&version);
    cc_store_free(store);
    cr_assert_eq(version, 2, "committed before the kill");
    char *text = rejects_of(2);
    cr_assert(text, "version 2 has its rejects report");
    cr_assert(strstr(text, "gp_events_2.csv,3,DATE_INVALID,"), "the rejected row: [%s]", text);
    free(text);
}

/* Found by tests/crash/crash_loop.py: the report of a run killed before its
 * commit stayed under the name of the version it did not make, and the run
 * that then made that version, with no rejected row, left it there: the
 * report named rows of a feed that version never held. */
Test(ingest, the_report_of_a_killed_run_is_not_taken_for_the_next_versions)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    char *base = rejects_of(1);
    cc_testfs_write_text_in(feeds, "gp_events_2.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_B
               ",B86001,2024-01-01,44054006\n" NHS_C ",B86002,2024-02-30,195967001\n");
    const char *const killed[] = {"gp_events=gp_events_2.csv", NULL};
    cr_assert(ingest_killed_at("before-commit", killed));
    cc_testfs_write_text_in(feeds, "gp_events_3.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_C
               ",B86002,2024-03-03,44054006\n");
    const char *const clean[] = {"gp_events=gp_events_3.csv", NULL};
    cr_assert_eq(run_ingest(&report, clean), 0);
    cr_assert_eq(report.store_version, 2);
    cr_assert_eq(feed_of(&report, CC_FEED_GP_EVENTS)->rows_rejected, 0);
    char *text = rejects_of(2);
    cr_assert_null(text, "version 2 rejected nothing, yet has a report: [%s]", text ? text : "");
    /* the first version's report is untouched */
    char *again = rejects_of(1);
    cr_assert_eq(!base, !again);
    if (base)
        cr_assert_str_eq(base, again);
    free(base);
    free(again);
}

Test(ingest, a_corrupt_current_store_stops_the_ingest_with_a_clear_error)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    char path[600], err[512];
    uint64_t v;
    cr_assert_eq(cc_ingest_current_store(data, &v, path, sizeof path, err, sizeof err), 0);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, -20, SEEK_END);
    fputc(0x5a, f);
    fputc(0xa5, f);
    fclose(f);
    cc_store *store = NULL;
    cr_assert_eq(cc_datadir_load_current(data, key_path, CC_STORE_LOAD_ALL, &store, &v, err,
                                         sizeof err),
                 CC_ECORRUPT);
    cc_testfs_write_text_in(feeds, "gp_events_2.csv",
               "nhs_number,practice_code,event_date,snomed_code\n" NHS_B
               ",B86001,2024-01-01,44054006\n");
    const char *const later[] = {"gp_events=gp_events_2.csv", NULL};
    struct cc_ingest_options opt = {0};
    (void)opt;
    cr_assert_lt(run_ingest(&report, later), 0);
}

/* ---- issue 19, item 7: the smaller defects ------------------------------------------- */

Test(ingest, a_date_of_birth_before_1900_is_out_of_range_not_in_the_future)
{
    cc_testfs_write_text_in(feeds, "gp_registrations.csv",
               "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
               "registration_date,optout_code\n" NHS_A
               ",Ann,Quuxworth,1899-12-31,1,LS1 4AP,B86001,2010-01-01,\n" NHS_B
               ",Ann,Quuxworth,2030-01-01,1,LS1 4AP,B86001,2010-01-01,\n");
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    const struct cc_feed_report *reg = feed_of(&report, CC_FEED_GP_REGISTRATIONS);
    cr_assert_eq(reg->rejected_by_reason[CC_REJECT_DATE_RANGE], 1);
    cr_assert_eq(reg->rejected_by_reason[CC_REJECT_DATE_FUTURE], 1, "only the 2030 one");
    cr_assert(strstr(cc_reject_reason_text(CC_REJECT_DATE_RANGE), "1900-01-01"));
}

Test(ingest, permission_and_link_loop_errors_have_their_own_messages)
{
    cr_assert_eq(cc_error_from_errno(EACCES), CC_EACCESS);
    cr_assert_str_eq(cc_strerror(CC_EACCESS), "permission denied");
    cr_assert_eq(cc_error_from_errno(ELOOP), CC_ELOOP);
    cr_assert_str_eq(cc_err_name(CC_ELOOP), "LOOP");
    cr_assert_eq(cc_error_from_errno(ENOENT), CC_ENOTFOUND);
    cr_assert_eq(cc_error_from_errno(EIO), CC_EIO);

    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/loop_a.csv", feeds);
    snprintf(b, sizeof b, "%s/loop_b.csv", feeds);
    cr_assert_eq(symlink(b, a), 0);
    cr_assert_eq(symlink(a, b), 0);
    static char path[700];
    snprintf(path, sizeof path, "%s", a);
    struct cc_ingest_options opt = {0};
    opt.data_dir = data;
    opt.key_path = key_path;
    opt.n_files = 1;
    opt.files[0].kind = CC_FEED_GP_EVENTS;
    opt.files[0].path = path;
    char err[1024];
    cr_assert_eq(cc_ingest_run(&opt, &report, err, sizeof err), CC_ELOOP);
    cr_assert(strstr(err, "too many levels of symbolic links"), "%s", err);
    cr_assert_null(strstr(err, "input/output"), "%s", err);
}

static uint64_t current_version_number(void)
{
    uint64_t version = 0;
    cc_store_free(load_current(&version));
    return version;
}

Test(ingest, a_header_only_or_all_rejected_feed_publishes_no_new_version)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cc_testfs_write_text_in(feeds, "empty_events.csv", "nhs_number,practice_code,event_date,snomed_code\n");
    const char *const empty[] = {"gp_events=empty_events.csv", NULL};
    cr_assert_eq(run_ingest(&report, empty), 0);
    cr_assert_eq(report.store_version, 0);
    cr_assert(report.nothing_accepted);
    cr_assert_eq(current_version_number(), 1);

    cc_testfs_write_text_in(feeds, "bad_events.csv",
               "nhs_number,practice_code,event_date,snomed_code\n"
               "9990000019,B86001,2021-03-04,44054006\n" NHS_A ",B86001,2023-02-30,44054006\n");
    const char *const bad[] = {"gp_events=bad_events.csv", NULL};
    cr_assert_eq(run_ingest(&report, bad), 0);
    cr_assert_eq(report.store_version, 0);
    cr_assert_eq(feed_of(&report, CC_FEED_GP_EVENTS)->rows_rejected, 2);
    cr_assert_eq(current_version_number(), 1);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cc_ingest_report_print(&report, out);
    fclose(out);
    cr_assert(strstr(text, "no row was accepted"), "%s", text);
    free(text);
}

Test(ingest, a_failed_first_ingest_leaves_nothing_behind)
{
    cc_testfs_write_text_in(feeds, "gp_events.csv", "nhs_number,practice_code,event_date\n" NHS_A
                                       ",B86001,2021-03-04\n");
    /* a row rejected before the failure, so a rejects report was started */
    cc_testfs_write_text_in(feeds, "gp_registrations.csv",
               "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
               "registration_date,optout_code\n"
               "9990000019,A,B,1980-05-01,1,LS1 4AP,B86001,2010-01-01,\n" NHS_A
               ",A,B,1980-05-01,1,LS1 4AP,B86001,2010-01-01,\n");
    struct cc_ingest_report report;
    cr_assert_lt(run_ingest(&report, BASE_KINDS), 0);
    struct stat st;
    cr_assert_neq(stat(data, &st), 0, "the data directory this run made is gone");

    /* into a directory the operator made: it stays, empty of our files */
    cr_assert_eq(mkdir(data, 0700), 0);
    cr_assert_lt(run_ingest(&report, BASE_KINDS), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/state.db", data);
    cr_assert_neq(stat(path, &st), 0, "no state.db after a failed first ingest");
    snprintf(path, sizeof path, "%s/rejects", data);
    cr_assert_neq(stat(path, &st), 0, "no rejects/ after a failed first ingest");
}

Test(ingest, a_failure_after_optout_events_were_committed_says_so)
{
    char text[2048];
    snprintf(text, sizeof text, "%s" NHS_D ",ndop,register,2025-01-01,\n" NHS_C
             ",type1,register,2025-01-01,\n",
             OPTOUTS_HEADER);
    cc_testfs_write_text_in(feeds, "optout_register.csv", text);
    cc_testfs_write_text_in(feeds, "gp_events.csv", "nhs_number,practice_code,event_date\n");
    const char *const kinds[] = {"areas", "postcodes", "population", "optouts",
                                 "gp_registrations", "gp_events", NULL};
    struct cc_ingest_report report;
    char err[2048];
    static char paths[8][600];
    struct cc_ingest_options opt = {0};
    opt.data_dir = data;
    opt.key_path = key_path;
    opt.today = cc_day_from_ymd(2026, 1, 1);
    for (size_t i = 0; kinds[i]; i++) {
        int kind = cc_feed_kind_from_name(kinds[i]);
        snprintf(paths[i], sizeof paths[i], "%s/%s", feeds, cc_feed_kind_file(kind));
        opt.files[opt.n_files].kind = kind;
        opt.files[opt.n_files].path = paths[i];
        opt.n_files++;
    }
    cr_assert_lt(cc_ingest_run(&opt, &report, err, sizeof err), 0);
    cr_assert_eq(report.optout_events_committed, 2);
    cr_assert(strstr(err, "2 opt-out events") && strstr(err, "committed to the register"),
              "%s", err);
    cr_assert_null(strstr(err, "nothing changed"), "%s", err);
    /* they are in the register: state.db stays */
    char path[700];
    struct stat st;
    snprintf(path, sizeof path, "%s/state.db", data);
    cr_assert_eq(stat(path, &st), 0);
}

Test(ingest, the_rejects_report_is_readable_by_its_owner_only)
{
    cc_testfs_write_text_in(feeds, "gp_events.csv", "nhs_number,practice_code,event_date,snomed_code\n"
                                       "9990000019,B86001,2021-03-04,44054006\n");
    mode_t old = umask(022);
    struct cc_ingest_report report;
    int rc = run_ingest(&report, BASE_KINDS);
    umask(old);
    cr_assert_eq(rc, 0);
    cr_assert(report.rejects_path[0]);
    struct stat st;
    cr_assert_eq(stat(report.rejects_path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
}

Test(ingest, a_summary_of_skipped_files_prints_no_empty_linkage_table)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cc_ingest_report_print(&report, out);
    fclose(out);
    cr_assert(strstr(text, "linkage report"), "a real ingest has one: %s", text);
    free(text);

    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    out = open_memstream(&text, &len);
    cc_ingest_report_print(&report, out);
    fclose(out);
    cr_assert(strstr(text, "already ingested"), "%s", text);
    cr_assert_null(strstr(text, "linkage report"), "%s", text);
    free(text);
}

/* ---- issue 19, item 4: a record is counted once, whatever file brings it ----------- */

static const char *HES_ROWS =
    "E100," NHS_A ",1980-05-01,1,LS1 4AP,RR8,2022-05-05,2022-05-06,21,E119,I10X,\n"
    "E101," NHS_B ",1975-02-03,2,LS2 9JT,RR8,2022-06-01,2022-06-03,11,K40,,K401\n"
    /* no NHS number: linked in stage 2 (unique date of birth, sex, postcode) */
    "E102,,1960-07-07,2,LS2 9JT,RR8,2022-07-01,2022-07-02,21,J45,,\n"
    /* no NHS number and no match: never stored */
    "E103,,1961-01-01,1,LS1 4AP,RR8,2022-07-01,2022-07-02,21,J45,,\n";

static const char *COMMUNITY_ROWS = "C1," NHS_A ",1980-05-01,1,LS1 4AP,RY6,2023-01-01,01,38341003\n"
                                    "C2," NHS_C ",1960-07-07,2,LS2 9JT,RY6,2023-01-02,05,44054006\n";

/* Writes feeds/NAME from text with every LF turned into CRLF. */
static void write_crlf(const char *name, const char *text)
{
    char crlf[8192];
    size_t n = 0;
    for (const char *p = text; *p && n + 2 < sizeof crlf; p++) {
        if (*p == '\n')
            crlf[n++] = '\r';
        crlf[n++] = *p;
    }
    crlf[n] = '\0';
    cc_testfs_write_text_in(feeds, name, crlf);
}

static uint64_t n_records_now(void)
{
    cc_store *store = load_current(NULL);
    uint64_t n = cc_store_columns(store)->n_records;
    cc_store_free(store);
    return n;
}

Test(ingest, gp_events_with_a_blank_line_appended_are_not_counted_twice)
{
    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    uint64_t records = n_records_now();
    char text[4096];
    snprintf(text, sizeof text, "%s\n", GP_EVENTS);
    cc_testfs_write_text_in(feeds, "gp_events_blank.csv", text);
    const char *const again[] = {"gp_events=gp_events_blank.csv", NULL};
    cr_assert_eq(run_ingest(&report, again), 0);
    const struct cc_feed_report *f = feed_of(&report, CC_FEED_GP_EVENTS);
    cr_assert_not(f->skipped_already_ingested, "a byte-different file is read");
    cr_assert_eq(f->rows_accepted, 0);
    cr_assert_eq(f->rows_already_stored + f->rows_duplicate, 5, "%llu + %llu",
                 (unsigned long long)f->rows_already_stored,
                 (unsigned long long)f->rows_duplicate);
    cr_assert_geq(f->rows_already_stored, 4);
    cr_assert_eq(report.store_version, 0, "nothing new, no new version");
    cr_assert_eq(n_records_now(), records);

    char *summary = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&summary, &len);
    cc_ingest_report_print(&report, out);
    fclose(out);
    cr_assert(strstr(summary, "stored before"), "the summary says so: %s", summary);
    free(summary);
}

Test(ingest, hospital_episodes_converted_to_crlf_are_not_counted_twice)
{
    struct cc_ingest_report report;
    char text[4096];
    snprintf(text, sizeof text, "%s%s", HES_HEADER, HES_ROWS);
    cc_testfs_write_text_in(feeds, "hes_apc.csv", text);
    const char *kinds[] = {"areas", "postcodes", "population", "gp_registrations", "gp_events",
                           "hes_apc", NULL};
    cr_assert_eq(run_ingest(&report, kinds), 0);
    const struct cc_feed_report *h = feed_of(&report, CC_FEED_HOSPITAL);
    cr_assert_eq(h->linked_stage1, 2);
    cr_assert_eq(h->linked_stage2, 1);
    cr_assert_eq(h->unlinked_no_match, 1);
    uint64_t records = n_records_now();

    write_crlf("hes_apc_crlf.csv", text);
    const char *const again[] = {"hes_apc=hes_apc_crlf.csv", NULL};
    cr_assert_eq(run_ingest(&report, again), 0);
    h = feed_of(&report, CC_FEED_HOSPITAL);
    cr_assert_not(h->skipped_already_ingested);
    /* the three stored episodes are known by their keys; the unlinked one
     * was never stored, so it is tried again (and still finds no match) */
    cr_assert_eq(h->rows_already_stored, 3);
    cr_assert_eq(h->unlinked_no_match, 1);
    cr_assert_eq(h->linked_stage1 + h->linked_stage2, 0);
    cr_assert_eq(n_records_now(), records);
    cr_assert_eq(report.store_version, 0);

    /* and the same keys in the community feed are other records */
    snprintf(text, sizeof text, "%s%s", COMMUNITY_HEADER, COMMUNITY_ROWS);
    cc_testfs_write_text_in(feeds, "community_contacts.csv", text);
    const char *const community[] = {"community", NULL};
    cr_assert_eq(run_ingest(&report, community), 0);
    cr_assert_eq(feed_of(&report, CC_FEED_COMMUNITY)->rows_accepted, 2);
    cr_assert_eq(n_records_now(), records + 2);
    write_crlf("community_crlf.csv", text);
    const char *const community_again[] = {"community=community_crlf.csv", NULL};
    cr_assert_eq(run_ingest(&report, community_again), 0);
    cr_assert_eq(feed_of(&report, CC_FEED_COMMUNITY)->rows_already_stored, 2);
    cr_assert_eq(n_records_now(), records + 2);
}

Test(ingest, an_overlapping_monthly_refresh_adds_only_the_new_records)
{
    struct cc_ingest_report report;
    char text[4096];
    snprintf(text, sizeof text, "%s%s", HES_HEADER, HES_ROWS);
    cc_testfs_write_text_in(feeds, "hes_apc.csv", text);
    const char *kinds[] = {"areas", "postcodes", "population", "gp_registrations", "gp_events",
                           "hes_apc", NULL};
    cr_assert_eq(run_ingest(&report, kinds), 0);
    uint64_t records = n_records_now();

    /* June's extract: May's rows again (one re-sent, one re-ordered) and
     * two new ones */
    snprintf(text, sizeof text,
             "nhs_number,practice_code,event_date,snomed_code\n" NHS_D
             ",B86002,2023-03-03,38341003\n" NHS_A ",B86001,2021-03-04,44054006\n" NHS_B
             ",B86001,2022-01-01,38341003\n" NHS_C ",B86002,2022-02-02,44054006\n"
             /* new: */
             NHS_A ",B86001,2023-06-01,44054006\n" NHS_B ",B86001,2023-06-02,195967001\n");
    cc_testfs_write_text_in(feeds, "gp_events_june.csv", text);
    snprintf(text, sizeof text, "%s%s%s", HES_HEADER, HES_ROWS,
             "E104," NHS_C ",1960-07-07,2,LS2 9JT,RR8,2023-06-01,2023-06-02,21,E119,,\n");
    cc_testfs_write_text_in(feeds, "hes_apc_june.csv", text);
    const char *const june[] = {"gp_events=gp_events_june.csv", "hes_apc=hes_apc_june.csv",
                                NULL};
    cr_assert_eq(run_ingest(&report, june), 0);
    const struct cc_feed_report *g = feed_of(&report, CC_FEED_GP_EVENTS);
    const struct cc_feed_report *h = feed_of(&report, CC_FEED_HOSPITAL);
    cr_assert_eq(g->rows_accepted, 2);
    cr_assert_eq(g->rows_already_stored, 4);
    cr_assert_eq(h->rows_accepted, 2, "E104, and E103 (tried again, held for stage 2)");
    cr_assert_eq(h->rows_already_stored, 3);
    cr_assert_eq(report.store_version, 2);
    cr_assert_eq(n_records_now(), records + 3, "two GP events and one episode");

    /* the same refresh once more: skipped by content hash */
    cr_assert_eq(run_ingest(&report, june), 0);
    cr_assert(feed_of(&report, CC_FEED_GP_EVENTS)->skipped_already_ingested);
    cr_assert_eq(n_records_now(), records + 3);
}

/* ---- provenance (cc_ingest.h, "Provenance") ------------------------------------------ */

/* Hex SHA-256 of feeds/NAME. */
static void sha256_of_feed(const char *name, char hex[65])
{
    char path[600];
    size_t len = 0;
    cc_testfs_path(path, sizeof path, feeds, name);
    char *bytes = cc_testfs_read(path, &len);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)bytes, len);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
    free(bytes);
}

/* Writes feeds/manifest.json in the generator's shape for the five base
 * files, with their true digests except for `wrong_for` (NULL: none), and
 * the NHS number range first..last. */
static void write_manifest(const char *generator, const char *first, const char *last,
                           const char *wrong_for)
{
    static const char *const names[] = {"areas.csv", "postcodes.csv", "population.csv",
                                        "gp_registrations.csv", "gp_events.csv"};
    char text[4096], hex[65];
    int n = snprintf(text, sizeof text,
                     "{\"generator\": \"%s\", \"seed\": 77, \"patients\": 1000,\n"
                     " \"nhs_number_range\": {\"first\": \"%s\", \"last\": \"%s\"},\n"
                     " \"sha256\": {",
                     generator, first, last);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        sha256_of_feed(names[i], hex);
        if (wrong_for && !strcmp(names[i], wrong_for))
            hex[0] = hex[0] == '0' ? '1' : '0';
        n += snprintf(text + n, sizeof text - (size_t)n, "%s\"%s\": \"%s\"", i ? ", " : "",
                      names[i], hex);
    }
    snprintf(text + n, sizeof text - (size_t)n, "}}\n");
    cc_testfs_write_text_in(feeds, "manifest.json", text);
}

static void provenance_of_data(struct cc_provenance *p)
{
    char err[1024];
    cr_assert_eq(cc_datadir_provenance(data, p, err, sizeof err), 0, "%s", err);
}

/* Feeds written by hand (no manifest) ingest as "feeds", with the reason,
 * and a tool that would export record-level data is refused. */
Test(ingest, hand_written_feeds_are_recorded_as_other_feeds_and_refused_for_export)
{
    struct cc_provenance p;
    char why[1024];
    cr_assert_eq(cc_datadir_require_generated(data, "--export", why, sizeof why), CC_EREFUSED);
    cr_assert(strstr(why, "holds nothing ingested (provenance: none)"), "%s", why);

    struct cc_ingest_report report;
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cr_assert_eq(report.provenance.source, CC_PROVENANCE_FEEDS);
    cr_assert(strstr(report.provenance.reason, "no manifest.json beside it"), "%s",
              report.provenance.reason);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert_eq(p.n_runs, 1);
    cr_assert(strstr(p.reason, ".csv: no manifest.json beside it"), "%s", p.reason);
    cr_assert_eq(cc_datadir_require_generated(data, "--export", why, sizeof why), CC_EREFUSED);
    cr_assert(strstr(why, "--export writes record-level data and is only for data directories "
                          "built from `carecount generate` output") &&
                  strstr(why, "was ingested from other feeds (provenance: feeds: "),
              "%s", why);

    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    cc_ingest_report_print(&report, out);
    fclose(out);
    cr_assert(strstr(text, "provenance: feeds (not carecount generate output: "), "%s", text);
    free(text);
}

/* A manifest beside the feeds vouches only for files with the digest it
 * gives, under one generator manifest, whose NHS numbers stay in its
 * range; each data directory below starts empty. */
Test(ingest, a_manifest_vouches_only_for_its_digests_and_its_nhs_number_range)
{
    struct cc_ingest_report report;
    struct cc_provenance p;

    /* one digest wrong: the run is "feeds", naming the file */
    write_manifest("carecount generate", "9990000000", "9999999999", "gp_events.csv");
    snprintf(data, sizeof data, "%s/data-wrong-digest", root);
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert(strstr(p.reason, "gp_events.csv: its content differs from the digest"), "%s",
              p.reason);

    /* not the generator's manifest */
    write_manifest("someone else", "9990000000", "9999999999", NULL);
    snprintf(data, sizeof data, "%s/data-other-manifest", root);
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert(strstr(p.reason, "is not one carecount generate writes"), "%s", p.reason);

    /* a range in issued NHS numbers is not the generator's either */
    write_manifest("carecount generate", "4000000000", "9999999999", NULL);
    snprintf(data, sizeof data, "%s/data-issued-range", root);
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);

    /* every digest right, but the NHS numbers (999 000 0xxx) outside the
     * range the manifest names: "feeds" once the rows are read */
    write_manifest("carecount generate", "9000000000", "9000999999", NULL);
    snprintf(data, sizeof data, "%s/data-outside-range", root);
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cr_assert_eq(report.provenance.source, CC_PROVENANCE_FEEDS);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert(strstr(p.reason, "valid NHS numbers outside the range its manifest gives"), "%s",
              p.reason);

    /* everything as the generator would have it: "generated" (what a
     * manifest written for these files on purpose achieves: the check
     * guards against mistakes, cc_ingest.h) */
    write_manifest("carecount generate", "9990000000", "9999999999", NULL);
    snprintf(data, sizeof data, "%s/data-vouched", root);
    cr_assert_eq(run_ingest(&report, BASE_KINDS), 0);
    cr_assert_eq(report.provenance.source, CC_PROVENANCE_GENERATED);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_GENERATED, "%s", p.reason);
    cr_assert_eq(p.seed, 77);
    cr_assert_eq(p.patients, 1000);
    cr_assert_eq(p.n_manifests, 1);
    char manifest_hex[65];
    sha256_of_feed("manifest.json", manifest_hex);
    cr_assert_str_eq(p.manifest_sha256, manifest_hex);

    /* then a file under another name than its kind's: "feeds" for good */
    cc_testfs_write_text_in(feeds, "events_extra.csv",
                            "nhs_number,practice_code,event_date,snomed_code\n" NHS_A
                            ",B86001,2024-01-02,44054006\n");
    const char *const extra[] = {"gp_events=events_extra.csv", NULL};
    cr_assert_eq(run_ingest(&report, extra), 0);
    cr_assert_eq(report.provenance.source, CC_PROVENANCE_FEEDS);
    cr_assert(strstr(report.provenance.reason, "events_extra.csv: not the name carecount "
                                               "generate gives a gp_events feed"),
              "%s", report.provenance.reason);
    provenance_of_data(&p);
    cr_assert_eq(p.source, CC_PROVENANCE_FEEDS);
    cr_assert_eq(p.n_runs, 2);
}

/* The repeats of a GP events feed are found by one sort of its records
 * after it is read, or (with the link trace, which names each linked row)
 * by a set probed per row: both must give the same store and the same
 * counts. A generated feed with planted repeats (its first 400 rows again
 * at the end, and one row three times in the middle) is ingested both
 * ways. */
Test(ingest, gp_event_repeats_are_dropped_alike_by_the_sort_and_by_the_set)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; '%s/carecount' generate --patients 3000 --seed 11 --out gen --quiet;"
             " cp -r gen gen0; f=gen/gp_events.csv; head -1 $f > g; tail -n +2 $f | head -2000 >> g;"
             " sed -n 500p $f >> g; sed -n 500p $f >> g; tail -n +2002 $f >> g;"
             " tail -n +2 $f | head -400 >> g; mv g $f;"
             " '%s/carecount' ingest --data d-orig --key '%s' --today 2026-01-01 gen0"
             "   | grep '^gp_events' > gp-orig.txt;"
             " for way in sort set; do"
             "   if [ $way = set ]; then export CC_TEST_LINK_TRACE=$PWD/trace.csv; fi;"
             "   '%s/carecount' ingest --data d-$way --key '%s' --today 2026-01-01 gen"
             "     > report-$way.txt;"
             " done;"
             " cmp d-sort/store-*.snap d-set/store-*.snap;"
             " grep '^gp_events' report-sort.txt > gp-sort.txt;"
             " grep '^gp_events' report-set.txt > gp-set.txt;"
             " cmp gp-sort.txt gp-set.txt",
             root, CC_BIN_DIR, CC_BIN_DIR, key_path, CC_BIN_DIR, key_path);
    cr_assert_eq(system(cmd), 0, "the two ways disagree (%s)", root);
    /* the planted rows add no accepted row, only repeats */
    unsigned long long n[2][4];
    const char *const names[2] = {"gp-orig.txt", "gp-sort.txt"};
    for (int i = 0; i < 2; i++) {
        char path[400];
        snprintf(path, sizeof path, "%s/%s", root, names[i]);
        size_t len;
        char *text = cc_testfs_read(path, &len);
        cr_assert_eq(sscanf(text, "gp_events %llu %llu %llu %llu", &n[i][0], &n[i][1], &n[i][2],
                            &n[i][3]),
                     4, "%s", text);
        free(text);
    }
    cr_assert_eq(n[1][0], n[0][0] + 402, "rows read");
    cr_assert_eq(n[1][1], n[0][1], "accepted: the planted rows are repeats");
    cr_assert_gt(n[1][3], n[0][3] + 300, "most planted rows counted as repeats");
    cr_assert_leq(n[1][3], n[0][3] + 402);
}

/* The second threads (the read-ahead of each patient feed, with the keyed
 * hashes it computes, and pass 1 over the registrations beside the register
 * feed) change nothing: a run with them and one on the ingest thread alone
 * (CC_TEST_ONE_THREAD=1, as when no thread can be started) publish the same
 * snapshot, rejects report, summary and opt-out register. The registrations
 * are taken in without the register feed first, so their own opt-out codes
 * are what pass 1 records; a second run adds the register feed. */
Test(ingest, the_reading_threads_change_nothing)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; '%s/carecount' generate --patients 4000 --seed 12 --out gen --quiet;"
             " mkdir later; mv gen/optout_register.csv later/;"
             " for way in threads one; do"
             "   if [ $way = one ]; then export CC_TEST_ONE_THREAD=1; fi;"
             "   '%s/carecount' ingest --data d-$way --key '%s' --today 2026-01-01 gen"
             "     | sed \"s|d-$way|d|g\" > report-$way.txt;"
             "   '%s/carecount' ingest --data d-$way --key '%s' --today 2026-01-01"
             "     optouts=later/optout_register.csv"
             "     | sed \"s|d-$way|d|g\" >> report-$way.txt;"
             "   sqlite3 d-$way/state.db 'SELECT sequence, hex(pseudonym), type, action,"
             "     effective_day, practice_code, source FROM optout_event ORDER BY sequence'"
             "     > optouts-$way.txt;"
             " done;"
             " cmp report-threads.txt report-one.txt;"
             " cmp optouts-threads.txt optouts-one.txt;"
             " for v in 000001 000002; do cmp d-threads/store-$v-*.snap d-one/store-$v-*.snap; done;"
             " for f in d-threads/rejects/*; do cmp $f d-one/rejects/${f##*/}; done",
             root, CC_BIN_DIR, CC_BIN_DIR, key_path, CC_BIN_DIR, key_path);
    cr_assert_eq(system(cmd), 0, "the runs disagree (%s)", root);
    /* what was compared is not empty: registration opt-outs were recorded,
     * and hospital rows were linked by both stages */
    char path[400];
    snprintf(path, sizeof path, "%s/optouts-one.txt", root);
    size_t len;
    char *text = cc_testfs_read(path, &len);
    size_t from_registrations = 0, from_feed = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        size_t n = strlen(line);
        from_registrations += n > 2 && !strcmp(line + n - 2, "|3");
        from_feed += n > 2 && !strcmp(line + n - 2, "|1");
    }
    free(text);
    cr_assert_gt(from_registrations, 0, "pass 1 recorded registration opt-outs");
    cr_assert_gt(from_feed, 0, "the register feed was taken in");
    snprintf(path, sizeof path, "%s/report-one.txt", root);
    text = cc_testfs_read(path, &len);
    unsigned long long rows, stage1, stage2;
    const char *linkage = strstr(text, "linkage report");
    const char *hes = linkage ? strstr(linkage, "\nhes_apc ") : NULL;
    cr_assert(hes && sscanf(hes, "\nhes_apc %llu %llu %llu", &rows, &stage1, &stage2) == 3, "%s",
              text);
    cr_assert_gt(stage1, 0);
    cr_assert_gt(stage2, 0, "stage 2 linked hospital rows");
    free(text);
}

/* --timings: one line per phase, in the order the run takes them, each at
 * a time no earlier than the one before. */
Test(ingest, timings_name_each_phase_in_order)
{
    struct cc_ingest_options opt = {0};
    static char paths[5][600];
    static const char *const kinds[] = {"areas", "postcodes", "population", "gp_registrations",
                                        "gp_events"};
    for (int i = 0; i < 5; i++) {
        int kind = cc_feed_kind_from_name(kinds[i]);
        snprintf(paths[i], sizeof paths[i], "%s/%s", feeds, cc_feed_kind_file(kind));
        opt.files[i].kind = kind;
        opt.files[i].path = paths[i];
    }
    opt.n_files = 5;
    opt.data_dir = data;
    opt.key_path = key_path;
    opt.today = cc_day_from_ymd(2026, 1, 1);
    char *text = NULL;
    size_t len = 0;
    opt.timings = open_memstream(&text, &len);
    cr_assert(opt.timings);
    struct cc_ingest_report report;
    char err[512];
    cr_assert_eq(cc_ingest_run(&opt, &report, err, sizeof err), 0, "%s", err);
    fclose(opt.timings);
    static const char *const phases[] = {"digests",       "base store",          "reference data",
                                         "register feed", "registrations pass 1", "patient feeds",
                                         "stage 2",       "type 1 removals",      "store built",
                                         "snapshot written", "committed"};
    const char *at = text;
    double last = 0;
    for (size_t i = 0; i < sizeof phases / sizeof *phases; i++) {
        char want[64];
        snprintf(want, sizeof want, "phase %s ", phases[i]);
        const char *line = strstr(at, want);
        cr_assert(line, "no '%s' after the phases before it in:\n%s", phases[i], text);
        double t = -1;
        cr_assert_eq(sscanf(line + strlen(want), " %lf s", &t), 1, "%s", line);
        cr_assert_geq(t, last, "%s", text);
        last = t;
        at = line + strlen(want);
    }
    free(text);
}
