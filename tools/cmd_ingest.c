/*
 * cmd_ingest.c: `carecount ingest`, the operator's command that takes feed
 * files into a data directory (see core/cc_ingest.h and docs/operator-guide.md).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_ingest.h"

const char cc_cmd_ingest_summary[] = "ingest feed files into a data directory";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount ingest --data DIR --key KEYFILE [options] FEEDS...\n"
            "\n"
            "Validates, pseudonymises and links the feeds, records opt-outs, and\n"
            "publishes a new store version in DIR. FEEDS is a directory holding files\n"
            "with the standard names (as `carecount generate` writes them), or\n"
            "KIND=PATH pairs. Files already ingested (same content) are skipped.\n"
            "\n"
            "kinds and standard file names:\n");
    for (int k = 0; k < CC_N_FEED_KINDS; k++)
        fprintf(out, "  %-18s %s\n", cc_feed_kind_name(k), cc_feed_kind_file(k));
    fprintf(out,
            "\n"
            "options:\n"
            "  --data DIR          the data directory (created, mode 0700, if absent)\n"
            "  --key KEYFILE       the pseudonymisation key (`carecount keygen`), outside DIR,\n"
            "                      mode 0600; or the environment variable CARECOUNT_KEY\n"
            "  --today YYYY-MM-DD  reject dates after this day (default: today)\n"
            "  --quiet             no progress lines\n"
            "  --timings           when each phase ended (digests, reference data, ...,\n"
            "                      snapshot written), on stderr\n"
            "  --wait              if another ingest or opt-out writer holds DIR's lock,\n"
            "                      wait for it to finish (default: refuse at once)\n"
            "  --help              this text\n"
            "\n"
            "Rejected rows are listed with file, line and reason (never their content)\n"
            "in DIR/rejects/. Exit status: 0 done (some rows may have been rejected),\n"
            "1 the ingest failed: the store is unchanged (opt-out events committed\n"
            "before the failure, if any, are named and stay), 2 usage error.\n");
}

static int add_file(struct cc_ingest_options *opt, int kind, const char *path)
{
    if (opt->n_files == CC_INGEST_MAX_FILES) {
        fprintf(stderr, "carecount ingest: too many files\n");
        return -1;
    }
    opt->files[opt->n_files].kind = kind;
    opt->files[opt->n_files].path = path;
    opt->n_files++;
    return 0;
}

int cc_cmd_ingest(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'}, {"key", required_argument, NULL, 'k'},
        {"today", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"wait", no_argument, NULL, 'w'},       {"timings", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cc_ingest_options opt = {0};
    char paths[CC_N_FEED_KINDS][4096];
    int quiet = 0, c;
    opt.key_path = getenv("CARECOUNT_KEY");
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:k:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            opt.data_dir = optarg;
            break;
        case 'k':
            opt.key_path = optarg;
            break;
        case 't':
            if (cc_day_parse(optarg, strlen(optarg), &opt.today) < 0) {
                fprintf(stderr, "carecount ingest: --today wants YYYY-MM-DD\n");
                return 2;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'w':
            opt.wait_for_lock = 1;
            break;
        case 'T':
            opt.timings = stderr;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!opt.data_dir || !opt.key_path || optind >= argc) {
        fprintf(stderr, "carecount ingest: --data, --key and at least one feed are needed "
                        "(try --help)\n");
        return 2;
    }
    for (int i = optind; i < argc; i++) {
        struct stat st;
        const char *eq = strchr(argv[i], '=');
        if (eq) {
            char kind_name[64];
            size_t n = (size_t)(eq - argv[i]);
            if (n >= sizeof kind_name) {
                fprintf(stderr, "carecount ingest: unknown feed kind in '%s'\n", argv[i]);
                return 2;
            }
            memcpy(kind_name, argv[i], n);
            kind_name[n] = '\0';
            int kind = cc_feed_kind_from_name(kind_name);
            if (kind < 0) {
                fprintf(stderr, "carecount ingest: unknown feed kind '%s' (try --help)\n",
                        kind_name);
                return 2;
            }
            if (add_file(&opt, kind, eq + 1) < 0)
                return 2;
        } else if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            int found = 0;
            for (int k = 0; k < CC_N_FEED_KINDS; k++) {
                snprintf(paths[k], sizeof paths[k], "%s/%s", argv[i], cc_feed_kind_file(k));
                if (access(paths[k], R_OK) == 0) {
                    if (add_file(&opt, k, paths[k]) < 0)
                        return 2;
                    found++;
                }
            }
            if (!found) {
                fprintf(stderr, "carecount ingest: %s holds no feed with a standard name\n",
                        argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "carecount ingest: '%s' is neither a directory nor KIND=PATH\n",
                    argv[i]);
            return 2;
        }
    }
    opt.progress = quiet || !isatty(STDERR_FILENO) ? NULL : stderr;
    opt.log = stdout;

    struct cc_ingest_report *report = calloc(1, sizeof *report);
    if (!report) {
        fprintf(stderr, "carecount ingest: out of memory\n");
        return 1;
    }
    char err[2048];
    int rc = cc_ingest_run(&opt, report, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "carecount ingest: %s\n", err[0] ? err : cc_strerror(rc));
        free(report);
        return 1;
    }
    cc_ingest_report_print(report, stdout);
    free(report);
    return 0;
}
