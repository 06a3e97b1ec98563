/*
 * cmd_optout.c: `carecount optout`, the operator's and the practice's view of
 * the opt-out register (core/cc_optout.h): record a registration or a
 * withdrawal, confirm a patient's status and history.
 *
 * The NHS number is validated (Modulus 11), pseudonymised with the key at
 * once, and wiped; everything after that works on the pseudonym. Output says
 * "the patient", never the number; history shows dates, types and actions.
 *
 * Must never: print, log or store the NHS number, the pseudonym or the key.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <sys/stat.h>

#include "cc_datadir.h"
#include "cc_date.h"
#include "cc_db.h"
#include "cc_error.h"
#include "cc_model.h"
#include "cc_optout.h"
#include "cc_pseudo.h"
#include "cc_validate.h"

const char cc_cmd_optout_summary[] =
    "record opt-outs; confirm a patient's opt-out status and history";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: carecount optout ACTION --data DIR --key KEYFILE --nhs-number N [options]\n"
            "\n"
            "Records and confirms patients' opt-outs in the register of data directory\n"
            "DIR. The NHS number is checked (Modulus 11) and replaced at once by its\n"
            "pseudonym under KEYFILE (made by `carecount keygen`); it is never printed,\n"
            "logged or stored. Output speaks of \"the patient\".\n"
            "\n"
            "actions:\n"
            "  register   record that the patient opts out (from --date)\n"
            "  withdraw   record that the patient ends an opt-out (from --date); refused\n"
            "             if no opt-out of that type is in force on that date\n"
            "  status     print the types in force on --date (default today)\n"
            "  history    print every recorded event: effective date, type, action,\n"
            "             and the date it was recorded\n"
            "\n"
            "options:\n"
            "  --data DIR          the data directory (holds state.db); register and\n"
            "                      withdraw create it if missing\n"
            "  --key KEYFILE       the pseudonymisation key file (mode 0600)\n"
            "  --nhs-number N      the patient's NHS number, 10 digits, spaces allowed\n"
            "                      (\"943 476 5919\"); \"-\" reads it from the first line of\n"
            "                      standard input, which keeps it out of the process list\n"
            "                      and the shell history\n"
            "  --type TYPE         type1 (Read 9Nu0: GP data never leaves the practice) or\n"
            "                      ndop (type 2 / 9Nu4, the National Data Opt-out);\n"
            "                      required for register and withdraw; for status and\n"
            "                      history, shows that type only\n"
            "  --date YYYY-MM-DD   effective date (register, withdraw) or the day asked\n"
            "                      about (status); default today (UTC)\n"
            "  --practice CODE     the recording GP practice (ODS code, e.g. B86001)\n"
            "  --wait              register, withdraw: if an ingest or another writer holds\n"
            "                      the data directory's lock, wait for it (default: refuse)\n"
            "  -h, --help          this text\n"
            "\n"
            "Every change is committed durably before the command returns. Recording\n"
            "the same event twice changes nothing and says so. A registered opt-out\n"
            "excludes the patient from every released figure from the next data\n"
            "version. See docs/optout.md.\n"
            "\n"
            "exit status: 0 done (or already recorded), 1 refused or failed, 2 usage.\n");
}

struct options {
    const char *action;
    const char *data_dir;
    const char *key_path;
    const char *nhs_number;
    const char *type;
    const char *date;
    const char *practice;
    int wait;
};

static int parse_type(const char *text, uint8_t *type);

static const char *type_name(unsigned type)
{
    return type == CC_OPTOUT_TYPE1 ? "type 1 opt-out" : "national data opt-out";
}

static const char *action_name(unsigned action)
{
    return action == CC_OPTOUT_REGISTER ? "registered" : "withdrawn";
}

static const char *source_name(unsigned source)
{
    const char *name = cc_optout_source_name((int)source);
    return !name ? "unknown" : source == CC_OPTOUT_SOURCE_GP_REGISTRATION ? "GP registration" : name;
}

/* Parses argv into opt; returns 0, or 2 after printing the problem. */
static int parse_options(int argc, char **argv, struct options *opt)
{
    static const struct {
        const char *name;
        size_t offset;
    } value_options[] = {
        {"--data", offsetof(struct options, data_dir)},
        {"--key", offsetof(struct options, key_path)},
        {"--nhs-number", offsetof(struct options, nhs_number)},
        {"--type", offsetof(struct options, type)},
        {"--date", offsetof(struct options, date)},
        {"--practice", offsetof(struct options, practice)},
    };
    memset(opt, 0, sizeof *opt);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--wait")) {
            opt->wait = 1;
            continue;
        }
        if (arg[0] != '-') {
            if (opt->action) {
                fprintf(stderr, "carecount optout: more than one action given\n");
                return 2;
            }
            opt->action = arg;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof value_options / sizeof value_options[0]; k++) {
            size_t len = strlen(value_options[k].name);
            const char *value = NULL;
            if (!strcmp(arg, value_options[k].name)) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "carecount optout: %s needs a value\n", arg);
                    return 2;
                }
                value = argv[++i];
            } else if (!strncmp(arg, value_options[k].name, len) && arg[len] == '=') {
                value = arg + len + 1;
            } else {
                continue;
            }
            *(const char **)((char *)opt + value_options[k].offset) = value;
            break;
        }
        if (k == sizeof value_options / sizeof value_options[0]) {
            /* the option's name only: its value may be an NHS number */
            const char *eq = strchr(arg, '=');
            fprintf(stderr, "carecount optout: unknown option %.*s (try --help)\n",
                    eq ? (int)(eq - arg) : (int)strlen(arg), arg);
            return 2;
        }
    }
    if (!opt->action) {
        fprintf(stderr, "carecount optout: no action given (register, withdraw, status, "
                        "history; try --help)\n");
        return 2;
    }
    if (strcmp(opt->action, "register") && strcmp(opt->action, "withdraw") &&
        strcmp(opt->action, "status") && strcmp(opt->action, "history")) {
        fprintf(stderr, "carecount optout: unknown action (register, withdraw, status, "
                        "history; try --help)\n");
        return 2;
    }
    if (!opt->data_dir || !opt->key_path || !opt->nhs_number) {
        fprintf(stderr, "carecount optout: --data, --key and --nhs-number are required\n");
        return 2;
    }
    return 0;
}

/* Reads the NHS number (from the option, or stdin for "-"), validates it and
 * replaces it by its pseudonym; the key's fingerprint goes to fingerprint.
 * Every copy of the number is wiped. Returns 0, or 1 after printing why. */
static int patient_pseudonym(const struct options *opt, cc_pseudonym *person,
                             uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES])
{
    char line[64];
    const char *text = opt->nhs_number;
    size_t len = strlen(text);
    char digits[CC_NHS_NUMBER_DIGITS];
    cc_pseudo_key *key = NULL;
    int status = 1;

    if (!strcmp(text, "-")) {
        if (!fgets(line, sizeof line, stdin)) {
            fprintf(stderr, "carecount optout: no NHS number on standard input\n");
            goto out;
        }
        len = strcspn(line, "\r\n");
        text = line;
    }
    int rc = cc_validate_nhs_number(text, len, digits);
    if (rc) {
        fprintf(stderr, "carecount optout: the NHS number given is not valid (%s)\n",
                cc_validate_reason(CC_VALIDATE_NHS_NUMBER, rc));
        goto out;
    }
    char why[1024];
    if ((rc = cc_datadir_load_key(opt->data_dir, opt->key_path, &key, why, sizeof why)) != 0) {
        fprintf(stderr, "carecount optout: %s\n", why);
        goto out;
    }
    cc_pseudo_nhs(key, digits, person);
    cc_pseudo_key_fingerprint(key, fingerprint);
    status = 0;
out:
    cc_pseudo_key_free(key);
    explicit_bzero(digits, sizeof digits);
    explicit_bzero(line, sizeof line);
    return status;
}

static int parse_type(const char *text, uint8_t *type)
{
    if (text && !strcmp(text, "type1"))
        *type = CC_OPTOUT_TYPE1;
    else if (text && !strcmp(text, "ndop"))
        *type = CC_OPTOUT_NDOP;
    else
        return CC_EINVAL;
    return 0;
}

static int record_event(cc_optout *register_, const struct options *opt,
                        const cc_pseudonym *person, cc_day on)
{
    struct cc_optout_event event;
    char date[11];
    memset(&event, 0, sizeof event);
    event.person = *person;
    event.action = strcmp(opt->action, "register") ? CC_OPTOUT_WITHDRAW : CC_OPTOUT_REGISTER;
    event.source = CC_OPTOUT_SOURCE_OPERATOR;
    event.effective_day = on;
    if (parse_type(opt->type, &event.type) != 0) {
        fprintf(stderr, "carecount optout: --type type1 or --type ndop is required\n");
        return 2;
    }
    if (opt->practice) {
        char practice[CC_PRACTICE_CODE_BYTES];
        if (cc_validate_practice_code(opt->practice, strlen(opt->practice), practice) != 0) {
            fprintf(stderr, "carecount optout: --practice is not an ODS practice code "
                            "(a letter and 5 digits)\n");
            return 2;
        }
        snprintf(event.practice_code, sizeof event.practice_code, "%s", practice);
    }
    cc_day_format(on, date);
    int rc = cc_optout_record(register_, &event);
    explicit_bzero(&event.person, sizeof event.person);
    if (rc == CC_EINVAL && event.action == CC_OPTOUT_WITHDRAW) {
        fprintf(stderr,
                "carecount optout: refused: the patient has no %s in force on %s to "
                "withdraw\n",
                type_name(event.type), date);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "carecount optout: cannot record the event: %s\n", cc_strerror(rc));
        return 1;
    }
    if (rc == CC_OPTOUT_ALREADY_RECORDED)
        printf("already recorded: the patient's %s %s from %s; nothing changed\n",
               type_name(event.type), action_name(event.action), date);
    else
        printf("recorded: the patient's %s %s from %s\n", type_name(event.type),
               action_name(event.action), date);
    return 0;
}

/* Prints the types in force on day `on` (only_type: just that one). */
static int print_status(cc_optout *register_, const cc_pseudonym *person, cc_day on,
                        unsigned only_type)
{
    unsigned mask = 0;
    char date[11];
    int rc = cc_optout_status(register_, person, on, &mask);
    if (rc) {
        fprintf(stderr, "carecount optout: cannot read the register: %s\n", cc_strerror(rc));
        return 1;
    }
    cc_day_format(on, date);
    if (only_type) {
        printf("the patient's %s is %sin force on %s\n", type_name(only_type),
               (mask & CC_OPTOUT_MASK(only_type)) ? "" : "not ", date);
        return 0;
    }
    if (!mask)
        printf("the patient has no opt-out in force on %s\n", date);
    else
        printf("the patient has in force on %s: %s%s%s\n", date,
               (mask & CC_OPTOUT_MASK_TYPE1) ? type_name(CC_OPTOUT_TYPE1) : "",
               mask == CC_OPTOUT_MASK_ANY ? ", " : "",
               (mask & CC_OPTOUT_MASK_NDOP) ? type_name(CC_OPTOUT_NDOP) : "");
    return 0;
}

/* Prints every event in effective-date order (only_type: of that type). */
static int print_history(cc_optout *register_, const cc_pseudonym *person, unsigned only_type)
{
    struct cc_optout_event *events = NULL;
    size_t n_events = 0;
    int rc = cc_optout_history(register_, person, &events, &n_events);
    if (rc) {
        fprintf(stderr, "carecount optout: cannot read the register: %s\n", cc_strerror(rc));
        return 1;
    }
    size_t n_shown = 0;
    for (size_t i = 0; i < n_events; i++)
        n_shown += !only_type || events[i].type == only_type;
    if (!n_shown)
        printf("no opt-out has been recorded for the patient\n");
    else
        printf("%-10s  %-21s  %-10s  %-10s  %s\n", "effective", "type", "action", "recorded",
               "source");
    for (size_t i = 0; i < n_events; i++) {
        if (only_type && events[i].type != only_type)
            continue;
        char effective[11], recorded[11];
        cc_day_format(events[i].effective_day, effective);
        cc_day recorded_day = cc_day_from_ymd(1970, 1, 1) + (cc_day)(events[i].recorded_at / 86400);
        if (recorded_day >= CC_DAY_MIN && recorded_day <= CC_DAY_MAX)
            cc_day_format(recorded_day, recorded);
        else
            snprintf(recorded, sizeof recorded, "unknown");
        printf("%-10s  %-21s  %-10s  %-10s  %s\n", effective, type_name(events[i].type),
               action_name(events[i].action), recorded, source_name(events[i].source));
    }
    free(events);
    return 0;
}

int cc_cmd_optout(int argc, char **argv)
{
    struct options opt;
    cc_pseudonym person;
    sqlite3 *db = NULL;
    cc_optout *register_ = NULL;
    char errbuf[1024];
    uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES];
    cc_day on;
    int status, lock_fd = -1;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    if ((status = parse_options(argc, argv, &opt)) != 0)
        return status;
    on = cc_day_today();
    if (opt.date) {
        int rc = cc_day_parse(opt.date, strlen(opt.date), &on);
        if (rc) {
            fprintf(stderr, "carecount optout: --date must be a real date as YYYY-MM-DD\n");
            return 2;
        }
    }
    if (!strcmp(opt.action, "history") && opt.date) {
        fprintf(stderr, "carecount optout: history takes no --date\n");
        return 2;
    }
    if ((!strcmp(opt.action, "status") || !strcmp(opt.action, "history")) && opt.practice) {
        fprintf(stderr, "carecount optout: %s takes no --practice\n", opt.action);
        return 2;
    }
    uint8_t only_type = 0; /* status and history: 0 = both types */
    if (opt.type && parse_type(opt.type, &only_type) != 0) {
        fprintf(stderr, "carecount optout: --type must be type1 or ndop\n");
        return 2;
    }
    if (patient_pseudonym(&opt, &person, fingerprint) != 0)
        return 1;

    /* A writer takes the data directory's writer lock before it writes
     * anything (cc_datadir.h); every action checks the directory's
     * permissions and that the key is the directory's own. */
    int writing = !strcmp(opt.action, "register") || !strcmp(opt.action, "withdraw");
    int rc = 0;
    struct stat dir_st;
    if (writing && stat(opt.data_dir, &dir_st) != 0 && mkdir(opt.data_dir, 0700) != 0 &&
        errno != EEXIST) {
        rc = cc_error_from_errno(errno);
        snprintf(errbuf, sizeof errbuf, "%s: cannot create the data directory (%s)",
                 opt.data_dir, cc_strerror(rc));
    }
    if (!rc && writing)
        rc = cc_datadir_lock(opt.data_dir, opt.wait ? CC_DATADIR_WAIT : 0, &lock_fd, errbuf,
                             sizeof errbuf);
    if (!rc)
        rc = cc_datadir_check_permissions(opt.data_dir, errbuf, sizeof errbuf);
    if (rc == CC_ENOTFOUND && !writing)
        snprintf(errbuf, sizeof errbuf, "%s: no such data directory", opt.data_dir);
    if (!rc)
        rc = cc_db_open(opt.data_dir, writing ? CC_DB_CREATE : 0, &db, errbuf, sizeof errbuf);
    if (!rc)
        rc = cc_datadir_bind_key(db, fingerprint, writing, errbuf, sizeof errbuf);
    if (rc) {
        fprintf(stderr, "carecount optout: %s\n", errbuf);
        status = 1;
        goto out;
    }
    if ((rc = cc_optout_attach(db, &register_)) != 0) {
        fprintf(stderr, "carecount optout: %s/%s: cannot open the register: %s\n", opt.data_dir,
                CC_DB_FILE_NAME, cc_strerror(rc));
        status = 1;
        goto out;
    }
    if (writing)
        status = record_event(register_, &opt, &person, on);
    else if (!strcmp(opt.action, "status"))
        status = print_status(register_, &person, on, only_type);
    else
        status = print_history(register_, &person, only_type);
out:
    explicit_bzero(&person, sizeof person);
    cc_optout_detach(register_);
    if (cc_db_close(db) != 0 && status == 0) {
        fprintf(stderr, "carecount optout: cannot close %s/%s\n", opt.data_dir, CC_DB_FILE_NAME);
        status = 1;
    }
    cc_datadir_unlock(lock_fd);
    return status;
}
