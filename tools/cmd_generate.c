/*
 * cmd_generate.c: `carecount generate`, the synthetic data set.
 *
 * Parses the options and calls cc_gen_run() (gen/cc_gen.h). It prints
 * counts and paths only, never a generated record.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_gen.h"

const char cc_cmd_generate_summary[] = "write a synthetic, deterministic set of feeds";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount generate --patients N [--seed S] --out DIR [--force] [--quiet]\n"
            "                          [--threads T] [--truth FILE]\n"
            "\n"
            "Writes a synthetic data set in the formats of docs/data-formats.md into DIR:\n"
            "postcodes.csv, areas.csv, population.csv, gp_registrations.csv, gp_events.csv,\n"
            "hes_apc.csv, community_contacts.csv, optout_register.csv, codelists/*.csv and\n"
            "manifest.json (counts, rates of untidiness, planted effects).\n"
            "The same N and S always give the same bytes, whatever T.\n"
            "\n"
            "  --patients N   number of patients, %d to %d\n"
            "  --seed S       seed of the random streams (unsigned 64-bit integer; default 1)\n"
            "  --out DIR      output directory, created if missing; must be empty\n"
            "  --force        write into DIR even if it is not empty\n"
            "  --threads T    worker threads (default 2)\n"
            "  --truth FILE   also write the linkage ground truth (which generated person\n"
            "                 each feed row belongs to; no identifiers) to FILE, which\n"
            "                 ingest never reads: keep it outside DIR\n"
            "  --quiet        print nothing but errors\n"
            "  --help         show this text\n",
            CC_GEN_MIN_PATIENTS, CC_GEN_MAX_PATIENTS);
}

static int parse_int(const char *text, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cc_cmd_generate(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"patients", required_argument, NULL, 'n'}, {"seed", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},      {"force", no_argument, NULL, 'f'},
        {"threads", required_argument, NULL, 't'},  {"quiet", no_argument, NULL, 'q'},
        {"truth", required_argument, NULL, 'r'},    {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cc_gen_options opts;
    memset(&opts, 0, sizeof opts);
    int have_patients = 0, quiet = 0, c;
    opts.seed = 1;
    long long value;
    optind = 1;
    opterr = 0; /* the messages below say what was wrong */
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_int(optarg, CC_GEN_MIN_PATIENTS, CC_GEN_MAX_PATIENTS, &value)) {
                fprintf(stderr, "carecount generate: --patients must be %d to %d\n",
                        CC_GEN_MIN_PATIENTS, CC_GEN_MAX_PATIENTS);
                return 2;
            }
            opts.n_patients = value;
            have_patients = 1;
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "carecount generate: --seed must be an unsigned integer\n");
                return 2;
            }
            opts.seed = seed;
            break;
        }
        case 'o': opts.out_dir = optarg; break;
        case 'f': opts.force = 1; break;
        case 't':
            if (parse_int(optarg, 1, 16, &value)) {
                fprintf(stderr, "carecount generate: --threads must be 1 to 16\n");
                return 2;
            }
            opts.n_threads = (int)value;
            break;
        case 'q': quiet = 1; break;
        case 'r': opts.truth_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "carecount generate: %s '%s' (try --help)\n",
                    optopt ? "option needs a value or is unknown:" : "unknown option",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                "carecount generate: unexpected argument '%s' (the output directory is "
                "--out DIR)\n",
                argv[optind]);
        return 2;
    }
    if (!have_patients || !opts.out_dir) {
        fprintf(stderr, "carecount generate: %s (try --help)\n",
                !have_patients ? "--patients N is required" : "--out DIR is required");
        return 2;
    }
    opts.progress = stderr;
    if (quiet)
        opts.progress = NULL;

    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct cc_gen_summary summary;
    int rc = cc_gen_run(&opts, &summary);
    if (rc == CC_EEXISTS) {
        fprintf(stderr, "carecount generate: %s is not empty (use --force to write into it)\n", opts.out_dir);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "carecount generate: %s\n", cc_strerror(rc));
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (!quiet) {
        double seconds = (double)(end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
        printf("wrote %s: %lld registrations, %lld GP events, %lld hospital episodes,\n"
               "  %lld community contacts, %lld opt-out events; %lld LSOAs, %lld districts,\n"
               "  %lld ICBs, %lld regions, %lld practices, %lld postcodes; %.1f MB in %.1f s\n",
               opts.out_dir, (long long)summary.rows[CC_GEN_FILE_REGISTRATIONS],
               (long long)summary.rows[CC_GEN_FILE_GP_EVENTS], (long long)summary.rows[CC_GEN_FILE_HES_APC],
               (long long)summary.rows[CC_GEN_FILE_COMMUNITY], (long long)summary.rows[CC_GEN_FILE_OPTOUT],
               (long long)summary.n_lsoas, (long long)summary.n_districts, (long long)summary.n_icbs,
               (long long)summary.n_regions, (long long)summary.n_practices,
               (long long)summary.n_postcodes, summary.bytes_written / 1e6, seconds);
    }
    return 0;
}
