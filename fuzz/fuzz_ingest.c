/*
 * fuzz_ingest.c: each feed's row mapping (core/cc_ingest_feeds.c: the
 * opt-out register, GP registrations, GP events, hospital episodes,
 * community contacts; core/cc_ingest_areas.c: areas, postcodes, population)
 * through the real ingest: one cc_ingest_run() per input into a fresh data
 * directory, as `carecount ingest` runs it.
 *
 * The first input byte picks the feed kind; the rest is that feed's CSV.
 * The other feeds are the small fixed files of fuzz/ingest_reference/ (a
 * consistent area lookup, population and GP registrations for the patient
 * feeds to link to), so a mutated row gets through the CSV reader, the
 * validators, pseudonymisation and linkage into the store builder.
 *
 * Checks what a run promises: it ends with 0 or a refusal with a reason;
 * the report's rows add up (every row read counted once, rejects by reason
 * summing to the rejected); a published version loads back from the data
 * directory with the report's persons and records.
 *
 * Must never: pass an input on which an ingest crashes, loses count of a
 * row, or publishes a store that does not load.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <sys/stat.h>

#include "cc_datadir.h"
#include "cc_error.h"
#include "cc_ingest.h"
#include "cc_pseudo.h"
#include "cc_store.h"
#include "fuzz_common.h"

#ifndef FUZZ_INGEST_REFERENCE
#define FUZZ_INGEST_REFERENCE "fuzz/ingest_reference"
#endif

static const int fuzzed_kinds[] = {CC_FEED_OPTOUTS,  CC_FEED_GP_REGISTRATIONS, CC_FEED_GP_EVENTS,
                                   CC_FEED_HOSPITAL, CC_FEED_COMMUNITY,        CC_FEED_AREAS,
                                   CC_FEED_POSTCODES, CC_FEED_POPULATION};

static char key_path[512];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *reference_dir(void)
{
    const char *dir = getenv("FUZZ_INGEST_REFERENCE");
    return dir && *dir ? dir : FUZZ_INGEST_REFERENCE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (!key_path[0]) {
        snprintf(key_path, sizeof key_path, "%s/fuzz.key", fuzz_scratch_dir());
        if (cc_pseudo_keygen(key_path) < 0)
            abort();
    }
    int kind = fuzzed_kinds[data[0] % (sizeof fuzzed_kinds / sizeof *fuzzed_kinds)];
    char feed_path[512];
    fuzz_write_file(cc_feed_kind_file(kind), data + 1, size - 1, feed_path, sizeof feed_path);

    char data_dir[512];
    snprintf(data_dir, sizeof data_dir, "%s/data", fuzz_scratch_dir());
    remove_tree(data_dir);

    struct cc_ingest_options opt = {.data_dir = data_dir, .key_path = key_path};
    opt.today = cc_day_from_ymd(2026, 6, 1);
    static char paths[CC_N_FEED_KINDS][512];
    static const int fixed[] = {CC_FEED_AREAS, CC_FEED_POSTCODES, CC_FEED_POPULATION,
                                CC_FEED_GP_REGISTRATIONS};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (fixed[i] == kind)
            continue;
        snprintf(paths[fixed[i]], sizeof paths[0], "%s/%s", reference_dir(),
                 cc_feed_kind_file(fixed[i]));
        opt.files[opt.n_files].kind = fixed[i];
        opt.files[opt.n_files].path = paths[fixed[i]];
        opt.n_files++;
    }
    opt.files[opt.n_files].kind = kind;
    opt.files[opt.n_files].path = feed_path;
    opt.n_files++;

    static struct cc_ingest_report report;
    char err[1024] = "";
    int rc = cc_ingest_run(&opt, &report, err, sizeof err);
    if (rc < 0) {
        check(err[0] != '\0');
        check(report.store_version == 0);
    } else {
        for (size_t i = 0; i < report.n_feeds; i++) {
            const struct cc_feed_report *f = &report.feeds[i];
            uint64_t by_reason = 0;
            for (int r = 0; r < CC_N_REJECT_REASONS; r++)
                by_reason += f->rejected_by_reason[r];
            check(by_reason == f->rows_rejected);
            /* every row read is counted once: accepted (hospital and
             * community rows are accepted, then linked or not), rejected, a
             * duplicate, already stored, GP-sourced of a type 1 opt-out, or
             * (GP events, which only link to a registered person) no match */
            uint64_t unlinked = f->kind == CC_FEED_GP_EVENTS ? f->unlinked_no_match : 0;
            check(f->rows_read == f->rows_accepted + f->rows_rejected + f->rows_duplicate +
                                     f->rows_already_stored + f->dropped_type1 + unlinked);
        }
        if (report.store_version) {
            cc_store *store = NULL;
            char why[512] = "";
            uint64_t version = 0;
            int load = cc_datadir_load_current(data_dir, key_path, CC_STORE_LOAD_ALL, &store,
                                               &version, why, sizeof why);
            if (load != 0)
                fprintf(stderr, "published store does not load: %s\n", why);
            check(load == 0);
            check(version == report.store_version);
            check(cc_store_columns(store)->n_persons == report.n_persons);
            check(cc_store_columns(store)->n_records == report.n_records);
            cc_store_free(store);
        }
    }
    remove_tree(data_dir);
    return 0;
}
