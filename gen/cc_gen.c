/*
 * cc_gen.c: one run of the synthetic data generator (see cc_gen.h).
 *
 * Builds the geography, writes the reference files (postcodes, areas,
 * codelists), then generates persons in blocks on worker threads and appends
 * each block's rows to the patient-level files strictly in block order, so
 * the bytes do not depend on the number of threads or on timing. Population
 * denominators and the manifest are written last, from the counts.
 *
 * Every file written into the output directory is digested (SHA-256) as
 * its bytes go out, and the manifest lists the digests (`sha256`): ingest
 * records a data directory as built from generated data only when every
 * feed it read has the digest its manifest gives (cc_ingest.h,
 * "Provenance"), so a manifest copied beside other feeds vouches for none
 * of them.
 *
 * It must never print a generated identifier: errors name a path and a
 * reason only.
 */
#include "cc_gen.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_gen_persons.h"
#include "cc_version.h"

#define DEFAULT_THREADS 2
#define MAX_THREADS 16
#define MAX_PATH_BYTES 4096

static const char *const file_names[CC_GEN_N_FILES] = {
    "gp_registrations.csv", "gp_events.csv", "hes_apc.csv", "community_contacts.csv",
    "optout_register.csv",
};

static const char *const file_headers[CC_GEN_N_FILES] = {
    "nhs_number,given_name,family_name,date_of_birth,sex,postcode,practice_code,"
    "registration_date,optout_code\n",
    "nhs_number,practice_code,event_date,snomed_code\n",
    "epikey,nhs_number,date_of_birth,sex,postcode,provider_code,admission_date,discharge_date,"
    "admission_method,diag_01,diag_02,diag_03,diag_04,diag_05,diag_06,opertn_01,opertn_02,"
    "opertn_03,opertn_04\n",
    "contact_id,nhs_number,date_of_birth,sex,postcode,provider_code,contact_date,service_type,"
    "snomed_code\n",
    "nhs_number,optout_type,action,effective_date,practice_code\n",
};

/* Codelists in the shape OpenCodelists downloads (code,term). ICD-10 codes
 * are written without the filler X, as ingest stores them. */
static const struct {
    const char *name, *rows;
} codelists[] = {
    {"diabetes_snomed", "44054006,Diabetes mellitus type 2\n46635009,Diabetes mellitus type 1\n"
                        "73211009,Diabetes mellitus\n"},
    {"diabetes_icd10", "E10,Type 1 diabetes mellitus\nE109,Type 1 diabetes mellitus without complications\n"
                       "E11,Type 2 diabetes mellitus\nE115,Type 2 diabetes mellitus with peripheral circulatory complications\n"
                       "E116,Type 2 diabetes mellitus with other specified complications\n"
                       "E119,Type 2 diabetes mellitus without complications\n"},
    {"hypertension_snomed", "38341003,Hypertensive disorder systemic arterial\n"},
    {"hypertension_icd10", "I10,Essential (primary) hypertension\n"},
    {"asthma_snomed", "195967001,Asthma\n"},
    {"asthma_icd10", "J45,Asthma\nJ450,Predominantly allergic asthma\nJ459,Asthma unspecified\n"},
    {"copd_snomed", "13645005,Chronic obstructive lung disease\n"},
    {"copd_icd10", "J44,Other chronic obstructive pulmonary disease\n"
                   "J440,Chronic obstructive pulmonary disease with acute lower respiratory infection\n"
                   "J441,Chronic obstructive pulmonary disease with acute exacerbation unspecified\n"
                   "J449,Chronic obstructive pulmonary disease unspecified\n"},
    {"depression_snomed", "35489007,Depressive disorder\n"},
    {"chd_snomed", "53741008,Coronary arteriosclerosis\n22298006,Myocardial infarction\n"},
    {"chd_icd10", "I20,Angina pectoris\nI200,Unstable angina\nI21,Acute myocardial infarction\n"
                  "I219,Acute myocardial infarction unspecified\nI25,Chronic ischaemic heart disease\n"
                  "I251,Atherosclerotic heart disease\n"},
    {"breast_cancer_icd10", "C50,Malignant neoplasm of breast\nC504,Malignant neoplasm of upper-outer quadrant of breast\n"
                            "C509,Malignant neoplasm of breast unspecified\n"},
    {"coronary_angioplasty_opcs4", "K75,Percutaneous transluminal balloon angioplasty and insertion of stent into coronary artery\n"
                                   "K751,Percutaneous transluminal balloon angioplasty and insertion of 1-2 drug-eluting stents into coronary artery\n"},
    {"hip_replacement_opcs4", "W37,Total prosthetic replacement of hip joint using cement\n"
                              "W371,Primary total prosthetic replacement of hip joint using cement\n"
                              "W46,Prosthetic replacement of head of femur using cement\n"
                              "W461,Primary prosthetic replacement of head of femur using cement\n"},
};

static const char *const malformed_names[CC_GEN_N_MALFORMED] = {
    "none", "bad_date", "unknown_sex", "bad_code", "discharge_before_admission",
};

static const char *const age_band_names[CC_N_AGE_BANDS_5Y] = {
    "0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34", "35-39", "40-44", "45-49",
    "50-54", "55-59", "60-64", "65-69", "70-74", "75-79", "80-84", "85-89", "90+",
};

const char *cc_gen_file_name(enum cc_gen_file file)
{
    return file >= 0 && file < CC_GEN_N_FILES ? file_names[file] : NULL;
}

/* ---- files ---- */

struct run {
    const struct cc_gen_options *opts;
    struct cc_gen_context ctx;
    int fds[CC_GEN_N_FILES];
    int truth_fd;                        /* -1: no ground truth asked for */
    uint64_t truth_lines[CC_GEN_N_FILES]; /* lines written so far, header included */
    struct cc_gen_buf truth_buf;
    int64_t bytes_written;
    struct cc_gen_counts totals;
    /* the SHA-256 of each patient-level file so far (only the writer
     * touches them while a round is in flight), and the digest of every
     * finished file by its name in out_dir, in the order written */
    crypto_hash_sha256_state digest_state[CC_GEN_N_FILES];
    json_t *digests;
};

static void report(const struct run *run, const char *path, const char *reason)
{
    if (run->opts->progress)
        fprintf(run->opts->progress, "generate: %s: %s\n", path, reason);
}

static int write_all(struct run *run, int fd, const char *data, size_t len, const char *name)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            report(run, name, strerror(errno));
            return CC_EIO;
        }
        data += n;
        len -= (size_t)n;
        run->bytes_written += n;
    }
    return 0;
}

static int open_output(struct run *run, const char *name, int *fd)
{
    char path[MAX_PATH_BYTES];
    if (snprintf(path, sizeof path, "%s/%s", run->opts->out_dir, name) >= (int)sizeof path)
        return CC_EINVAL;
    *fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) {
        report(run, path, strerror(errno));
        return CC_EIO;
    }
    return 0;
}

/* Appends to patient-level file f, digesting what is written. */
static int append_patient_file(struct run *run, int f, const char *data, size_t len)
{
    crypto_hash_sha256_update(&run->digest_state[f], (const unsigned char *)data, len);
    return write_all(run, run->fds[f], data, len, file_names[f]);
}

/* Records the digest of a finished file under its name in out_dir. */
static int add_digest(struct run *run, const char *name, const unsigned char digest[crypto_hash_sha256_BYTES])
{
    char hex[crypto_hash_sha256_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof hex, digest, crypto_hash_sha256_BYTES);
    return json_object_set_new(run->digests, name, json_string(hex)) == 0 ? 0 : CC_ENOMEM;
}

static int close_output(struct run *run, int *fd, const char *name)
{
    int rc = 0;
    if (*fd >= 0 && close(*fd) != 0) {
        report(run, name, strerror(errno));
        rc = CC_EIO;
    }
    *fd = -1;
    return rc;
}

/* Writes a whole small file from a buffer. */
static int write_file(struct run *run, const char *name, const struct cc_gen_buf *buf)
{
    int fd = -1, rc;
    if (buf->failed)
        return CC_ENOMEM;
    if ((rc = open_output(run, name, &fd)))
        return rc;
    rc = write_all(run, fd, buf->data, buf->len, name);
    int close_rc = close_output(run, &fd, name);
    if (rc || close_rc)
        return rc ? rc : close_rc;
    if (!strcmp(name, "manifest.json"))
        return 0; /* it cannot hold its own digest */
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)buf->data, buf->len);
    return add_digest(run, name, digest);
}

/* Creates dir and its parents (mode 0755). */
static int make_dirs(const char *dir)
{
    char path[MAX_PATH_BYTES];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path)
        return CC_EINVAL;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return CC_EIO;
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return CC_EIO;
    return 0;
}

static int dir_is_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct dirent *entry;
    int empty = 1;
    while ((entry = readdir(d)))
        if (strcmp(entry->d_name, ".") && strcmp(entry->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

/* ---- reference files ---- */

static int write_reference(struct run *run)
{
    const struct cc_gen_geo *geo = &run->ctx.geo;
    struct cc_gen_buf buf = {0};
    int rc;

    cc_gen_puts(&buf, "pcds,lsoa21cd,lad23cd,icb23cd,rgn23cd\n");
    for (int i = 0; i < geo->n_lsoas; i++) {
        const struct cc_gen_lsoa *lsoa = &geo->lsoas[i];
        const struct cc_gen_lad *lad = &geo->lads[lsoa->lad];
        const struct cc_gen_icb *icb = &geo->icbs[lad->icb];
        for (uint32_t k = 0; k < lsoa->n_postcodes; k++) {
            cc_gen_puts(&buf, geo->postcodes[lsoa->first_postcode + k]);
            cc_gen_putc(&buf, ',');
            cc_gen_puts(&buf, lsoa->code);
            cc_gen_putc(&buf, ',');
            cc_gen_puts(&buf, lad->code);
            cc_gen_putc(&buf, ',');
            cc_gen_puts(&buf, icb->code);
            cc_gen_putc(&buf, ',');
            cc_gen_puts(&buf, geo->regions[icb->region].code);
            cc_gen_putc(&buf, '\n');
        }
    }
    if ((rc = write_file(run, "postcodes.csv", &buf)))
        goto out;

    buf.len = 0;
    char line[256];
    cc_gen_puts(&buf, "code,name,level,parent_code\n");
    for (int r = 0; r < CC_GEN_N_REGIONS; r++) {
        snprintf(line, sizeof line, "%s,%s,region,\n", geo->regions[r].code, geo->regions[r].name);
        cc_gen_puts(&buf, line);
    }
    for (int i = 0; i < CC_GEN_N_ICBS; i++) {
        snprintf(line, sizeof line, "%s,%s,icb,%s\n", geo->icbs[i].code, geo->icbs[i].name,
                 geo->regions[geo->icbs[i].region].code);
        cc_gen_puts(&buf, line);
    }
    for (int i = 0; i < geo->n_lads; i++) {
        snprintf(line, sizeof line, "%s,%s,lad,%s\n", geo->lads[i].code, geo->lads[i].name,
                 geo->icbs[geo->lads[i].icb].code);
        cc_gen_puts(&buf, line);
    }
    for (int i = 0; i < geo->n_lads; i++) {
        const struct cc_gen_lad *lad = &geo->lads[i];
        for (int j = 0; j < lad->n_lsoas; j++) {
            snprintf(line, sizeof line, "%s,%s %03d%c,lsoa,%s\n", geo->lsoas[lad->first_lsoa + j].code,
                     lad->name, j / 4 + 1, 'A' + j % 4, lad->code);
            cc_gen_puts(&buf, line);
        }
    }
    if ((rc = write_file(run, "areas.csv", &buf)))
        goto out;

    char dir[MAX_PATH_BYTES];
    if (snprintf(dir, sizeof dir, "%s/codelists", run->opts->out_dir) >= (int)sizeof dir ||
        make_dirs(dir)) {
        report(run, dir, "cannot create directory");
        rc = CC_EIO;
        goto out;
    }
    for (size_t i = 0; i < sizeof codelists / sizeof codelists[0]; i++) {
        char name[128];
        buf.len = 0;
        cc_gen_puts(&buf, "code,term\n");
        cc_gen_puts(&buf, codelists[i].rows);
        snprintf(name, sizeof name, "codelists/%s.csv", codelists[i].name);
        if ((rc = write_file(run, name, &buf)))
            goto out;
    }
out:
    free(buf.data);
    return rc;
}

/* population.csv: registered persons in each LSOA x sex x band times a
 * factor in [0.97, 1.03], as a mid-year estimate differs from a list count. */
static int write_population(struct run *run, const uint32_t *population)
{
    const struct cc_gen_geo *geo = &run->ctx.geo;
    struct cc_gen_buf buf = {0};
    struct cc_gen_rng rng;
    cc_gen_rng_seed(&rng, run->ctx.seed, 0x706f70ULL);
    cc_gen_puts(&buf, "lsoa21cd,sex,age_band,population\n");
    for (int i = 0; i < geo->n_lsoas; i++)
        for (int sex = 1; sex <= 2; sex++)
            for (int band = 0; band < CC_N_AGE_BANDS_5Y; band++) {
                uint32_t count = population[((size_t)i * 2 + (size_t)(sex - 1)) * CC_N_AGE_BANDS_5Y + (size_t)band];
                long estimate = lround(count * (0.97 + 0.06 * cc_gen_uniform(&rng)));
                char line[64];
                snprintf(line, sizeof line, "%s,%d,%s,%ld\n", geo->lsoas[i].code, sex,
                         age_band_names[band], estimate);
                cc_gen_puts(&buf, line);
            }
    int rc = write_file(run, "population.csv", &buf);
    free(buf.data);
    return rc;
}

/* ---- the manifest ---- */

static json_t *file_entry(const struct run *run, int f)
{
    const struct cc_gen_counts *t = &run->totals;
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "rows", (json_int_t)t->rows[f], "duplicate_rows",
                     (json_int_t)t->duplicates[f], "invalid_nhs_numbers", (json_int_t)t->invalid_nhs[f],
                     "missing_nhs_numbers", (json_int_t)t->missing_nhs[f], "varied_postcodes",
                     (json_int_t)t->messy_postcodes[f]);
}

static int write_manifest(struct run *run, int64_t reference_rows[3])
{
    const struct cc_gen_context *ctx = &run->ctx;
    const struct cc_gen_geo *geo = &ctx->geo;
    const struct cc_gen_counts *t = &run->totals;
    char start[11], end[11], reference[11], late_end[11], first_nhs[11], last_nhs[11];
    cc_day_format(ctx->period_start, start);
    cc_day_format(ctx->period_end, end);
    cc_day_format(ctx->reference_day, reference);
    cc_day_format(ctx->late_end, late_end);
    snprintf(first_nhs, sizeof first_nhs, "%09llu0", (unsigned long long)ctx->nhs_first_base);
    snprintf(last_nhs, sizeof last_nhs, "9999999999");

    json_t *root = json_object(), *files = json_object(), *conditions = json_object();
    json_t *malformed = json_object();
    if (!root || !files || !conditions || !malformed)
        goto fail;
    for (int f = 0; f < CC_GEN_N_FILES; f++)
        json_object_set_new(files, file_names[f], file_entry(run, f));
    json_object_set_new(files, "postcodes.csv", json_pack("{s:I}", "rows", (json_int_t)reference_rows[0]));
    json_object_set_new(files, "areas.csv", json_pack("{s:I}", "rows", (json_int_t)reference_rows[1]));
    json_object_set_new(files, "population.csv", json_pack("{s:I}", "rows", (json_int_t)reference_rows[2]));
    for (int c = 0; c < CC_GEN_N_CONDITIONS; c++)
        json_object_set_new(conditions, cc_gen_condition_name(c),
                            json_pack("{s:s, s:I}", "snomed", cc_gen_condition_snomed(c), "persons",
                                      (json_int_t)t->persons_with_condition[c]));
    for (int k = 1; k < CC_GEN_N_MALFORMED; k++)
        json_object_set_new(malformed, malformed_names[k], json_integer(t->malformed[k]));

    const struct cc_gen_icb *icb = &geo->icbs[geo->planted_icb];
    const struct cc_gen_region *region = &geo->regions[geo->planted_region];
    json_t *planted = json_pack(
        "[{s:s, s:s, s:s, s:s, s:s, s:s, s:f}, {s:s, s:s, s:s, s:s, s:s, s:f}]",
        "effect", "prevalence", "condition", "type2_diabetes", "snomed", "44054006", "area_level", "icb",
        "area_code", icb->code, "area_name", icb->name, "ratio", CC_GEN_PLANTED_DIABETES_RATIO,
        "effect", "hospital_admission_rate", "setting", "hospital", "area_level", "region", "area_code",
        region->code, "area_name", region->name, "ratio", CC_GEN_PLANTED_ADMISSION_RATIO);
    json_t *rates = json_pack(
        "{s:{s:f, s:[s,s]}, s:{s:f, s:[s,s,s]}, s:{s:f, s:[s,s,s]}, s:{s:f, s:[s,s,s,s]},"
        " s:{s:f, s:[s,s,s,s]}, s:{s:f, s:s}}",
        "missing_nhs_number", "rate", CC_GEN_RATE_MISSING_NHS, "files", "hes_apc.csv", "community_contacts.csv",
        "invalid_nhs_number", "rate", CC_GEN_RATE_INVALID_NHS, "files", "gp_registrations.csv", "hes_apc.csv",
        "community_contacts.csv", "varied_postcode_spelling", "rate", CC_GEN_RATE_MESSY_POSTCODE, "files",
        "gp_registrations.csv", "hes_apc.csv", "community_contacts.csv", "duplicate_row", "rate",
        CC_GEN_RATE_DUPLICATE, "files", "gp_registrations.csv", "gp_events.csv", "hes_apc.csv",
        "community_contacts.csv", "malformed_row", "rate", CC_GEN_RATE_MALFORMED, "files",
        "gp_registrations.csv", "gp_events.csv", "hes_apc.csv", "community_contacts.csv", "moved",
        "rate", CC_GEN_RATE_MOVED, "per", "person");
    json_t *persons = json_pack(
        "{s:I, s:I, s:o, s:{s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I}}", "total", (json_int_t)t->persons,
        "moved", (json_int_t)t->persons_moved, "with_condition", conditions, "optout", "type1_rate",
        CC_GEN_RATE_TYPE1, "ndop_rate", CC_GEN_RATE_NDOP, "withdraw_rate", CC_GEN_RATE_WITHDRAW,
        "registered_after_period_rate", CC_GEN_RATE_LATE_OPTOUT, "type1", (json_int_t)t->persons_optout[CC_OPTOUT_TYPE1],
        "ndop", (json_int_t)t->persons_optout[CC_OPTOUT_NDOP], "withdrawn", (json_int_t)t->persons_withdrawn,
        "registered_after_period", (json_int_t)t->persons_late_optout, "in_force_at_period_end",
        (json_int_t)t->persons_optout_in_force_at_period_end);
    conditions = NULL; /* now owned by persons */
    json_t *areas = json_pack("{s:i, s:i, s:i, s:i, s:I, s:i, s:i}", "regions", CC_GEN_N_REGIONS, "icbs",
                              CC_GEN_N_ICBS, "districts", geo->n_lads, "lsoas", geo->n_lsoas, "postcodes",
                              (json_int_t)geo->n_postcodes, "practices", geo->n_practices, "providers",
                              geo->n_providers);
    json_t *period = json_pack("{s:s, s:s, s:s, s:s}", "start", start, "end", end, "reference_date",
                               reference, "late_optouts_until", late_end);
    json_t *nhs = json_pack("{s:s, s:s}", "first", first_nhs, "last", last_nhs);
    json_t *variation = json_pack("{s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "lsoa_deprivation",
                                  "standard normal score per LSOA; rates scale by exp(coefficient * score)",
                                  "type2_diabetes", 0.25, "hypertension", 0.10, "asthma", 0.10, "copd", 0.35,
                                  "depression", 0.15, "coronary_heart_disease", 0.20, "breast_cancer", -0.05,
                                  "hospital_admissions", CC_GEN_DEPRIVATION_ADMISSIONS);
    if (!planted || !rates || !persons || !areas || !period || !nhs || !variation) {
        json_decref(planted);
        json_decref(rates);
        json_decref(persons);
        json_decref(areas);
        json_decref(period);
        json_decref(nhs);
        json_decref(variation);
        goto fail;
    }
    json_object_set_new(root, "generator", json_string("carecount generate"));
    json_object_set_new(root, "version", json_string(CC_VERSION_STRING));
    json_object_set_new(root, "seed", json_integer((json_int_t)ctx->seed));
    json_object_set_new(root, "patients", json_integer(ctx->n_patients));
    json_object_set_new(root, "data_period", period);
    json_object_set_new(root, "nhs_number_range", nhs);
    json_object_set_new(root, "areas", areas);
    json_object_set_new(root, "files", files);
    files = NULL;
    /* every other file written into out_dir, by its name there */
    json_object_set(root, "sha256", run->digests);
    json_object_set_new(root, "persons", persons);
    json_object_set_new(root, "untidiness", rates);
    json_object_set_new(root, "malformed_rows", malformed);
    malformed = NULL;
    json_object_set_new(root, "area_variation", variation);
    json_object_set_new(root, "planted_effects", planted);
    json_object_set_new(root, "code_vocabulary",
                        json_pack("{s:s, s:f, s:{s:I, s:I, s:I}}", "distribution",
                                  "Zipf: the code of rank r has weight 1 / r^exponent", "exponent",
                                  CC_GEN_TAIL_ZIPF_EXPONENT, "codes", "snomed",
                                  (json_int_t)CC_GEN_TAIL_SNOMED, "icd10", (json_int_t)CC_GEN_TAIL_ICD10,
                                  "opcs4", (json_int_t)CC_GEN_TAIL_OPCS4));

    char path[MAX_PATH_BYTES];
    snprintf(path, sizeof path, "%s/manifest.json", run->opts->out_dir);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(root);
    if (!text)
        return CC_ENOMEM;
    size_t len = strlen(text);
    struct cc_gen_buf buf = {text, len, len + 1, 0};
    cc_gen_putc(&buf, '\n');
    int rc = write_file(run, "manifest.json", &buf);
    free(buf.data);
    return rc;
fail:
    json_decref(root);
    json_decref(files);
    json_decref(conditions);
    json_decref(malformed);
    return CC_ENOMEM;
}

/* ---- blocks on threads ---- */

struct worker {
    const struct cc_gen_context *ctx;
    int64_t block;
    struct cc_gen_block out;
    uint32_t *population;
    int rc;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->rc = cc_gen_block_generate(w->ctx, w->block, &w->out, w->population);
    return NULL;
}

static void add_counts(struct cc_gen_counts *sum, const struct cc_gen_counts *c)
{
    const int64_t *from = (const int64_t *)c;
    int64_t *to = (int64_t *)sum;
    for (size_t i = 0; i < sizeof *c / sizeof(int64_t); i++)
        to[i] += from[i];
}

/* Appends one finished round of blocks to the files, in block order. Only
 * the writer touches run->fds, run->bytes_written and run->totals while a
 * round is in flight. */
struct writer {
    struct run *run;
    struct worker *jobs;
    int n_jobs;
    int rc;
};

static void put_u64(struct cc_gen_buf *buf, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        cc_gen_putc(buf, digits[--n]);
}

/* The ground truth of one block's rows of file f (CC_GEN_TRUTH_HEADER),
 * numbered on from the lines already written. */
static int write_truth(struct run *run, const struct worker *job, int f)
{
    static const char *const nhs[] = {"valid", "invalid", "missing"};
    static const char *const postcode[] = {"none", "current", "old"};
    const struct cc_gen_truth *t = &job->out.truth[f];
    struct cc_gen_buf *buf = &run->truth_buf;
    buf->len = 0;
    int64_t first_person = job->block * CC_GEN_BLOCK_PERSONS;
    for (size_t i = 0; i < t->n; i++) {
        uint32_t row = t->rows[i];
        cc_gen_puts(buf, file_names[f]);
        cc_gen_putc(buf, ',');
        put_u64(buf, ++run->truth_lines[f]);
        cc_gen_putc(buf, ',');
        put_u64(buf, (uint64_t)first_person + (row >> 4));
        cc_gen_putc(buf, ',');
        cc_gen_puts(buf, nhs[row >> 2 & 3]);
        cc_gen_putc(buf, ',');
        cc_gen_puts(buf, postcode[row & 3]);
        cc_gen_putc(buf, '\n');
    }
    if (buf->failed)
        return CC_ENOMEM;
    return write_all(run, run->truth_fd, buf->data, buf->len, run->opts->truth_path);
}

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    for (int t = 0; t < w->n_jobs && !w->rc; t++) {
        for (int f = 0; f < CC_GEN_N_FILES && !w->rc; f++)
            w->rc = append_patient_file(w->run, f, w->jobs[t].out.buf[f].data, w->jobs[t].out.buf[f].len);
        for (int f = 0; f < CC_GEN_N_FILES && !w->rc && w->run->truth_fd >= 0; f++)
            if (f != CC_GEN_FILE_OPTOUT)
                w->rc = write_truth(w->run, &w->jobs[t], f);
        add_counts(&w->run->totals, &w->jobs[t].out.counts);
    }
    return NULL;
}

static int init_context(struct cc_gen_context *ctx, const struct cc_gen_options *opts)
{
    ctx->seed = opts->seed;
    ctx->n_patients = opts->n_patients;
    ctx->period_start = cc_day_from_ymd(2019, 1, 1);
    ctx->period_end = cc_day_from_ymd(2025, 12, 31);
    ctx->reference_day = cc_day_from_ymd(2025, 6, 30);
    ctx->registration_start = cc_day_from_ymd(1990, 1, 1);
    ctx->optout_start = cc_day_from_ymd(2014, 1, 1);
    /* Late opt-outs fall in the first half of 2026 and never after
     * yesterday, so that no date is in the future. */
    ctx->late_end = cc_day_from_ymd(2026, 6, 30);
    if (ctx->late_end > cc_day_today() - 1)
        ctx->late_end = cc_day_today() - 1;
    if (ctx->late_end <= ctx->period_end)
        ctx->late_end = ctx->period_end + 1;
    ctx->max_day = cc_day_from_ymd(2026, 12, 31);

    ctx->dates = malloc(((size_t)ctx->max_day + 1) * sizeof *ctx->dates);
    if (!ctx->dates)
        return CC_ENOMEM;
    for (cc_day d = 0; d <= ctx->max_day; d++) {
        char text[11];
        cc_day_format(d, text);
        memcpy(ctx->dates[d], text, 10);
    }

    /* NHS numbers: each block owns a slice of `slot` 9-digit bases and
     * uses at most `stride` of them. Among ten consecutive bases ending in
     * 0..9 at most one has check digit 10, so `stride` bases always hold a
     * block's worth of valid numbers. The reserved test range 999 000 0000 -
     * 999 999 9999 holds about 909,000 valid numbers; larger runs use the
     * unissued 9 range 900 000 0000 - 999 999 9999 (see docs). */
    int64_t n_blocks = (ctx->n_patients + CC_GEN_BLOCK_PERSONS - 1) / CC_GEN_BLOCK_PERSONS;
    ctx->nhs_stride = 10ULL * ((CC_GEN_BLOCK_PERSONS + 8) / 9) + 19;
    if ((uint64_t)n_blocks * ctx->nhs_stride <= 1000000ULL) {
        ctx->nhs_first_base = 999000000ULL;
        ctx->nhs_slot = 1000000ULL / (uint64_t)n_blocks;
    } else {
        ctx->nhs_first_base = 900000000ULL;
        ctx->nhs_slot = 100000000ULL / (uint64_t)n_blocks;
    }
    static const int systems[] = {CC_CODE_SNOMED, CC_CODE_ICD10, CC_CODE_OPCS4};
    for (size_t i = 0; i < sizeof systems / sizeof systems[0]; i++) {
        int rc = cc_gen_vocabulary_build(&ctx->tail[systems[i]], systems[i]);
        if (rc)
            return rc;
    }
    return cc_gen_geo_build(&ctx->geo, ctx->seed, ctx->n_patients);
}

int cc_gen_run(const struct cc_gen_options *opts, struct cc_gen_summary *summary)
{
    struct run run;
    memset(&run, 0, sizeof run);
    run.opts = opts;
    run.truth_fd = -1;
    for (int f = 0; f < CC_GEN_N_FILES; f++) {
        run.fds[f] = -1;
        run.truth_lines[f] = 1; /* the header */
    }
    struct worker workers[2][MAX_THREADS];
    memset(workers, 0, sizeof workers);
    uint32_t *population = NULL;
    int rc = 0;

    if (!opts || !opts->out_dir || !*opts->out_dir || opts->n_patients < CC_GEN_MIN_PATIENTS ||
        opts->n_patients > CC_GEN_MAX_PATIENTS || opts->n_threads < 0)
        return CC_EINVAL;
    int n_threads = opts->n_threads ? opts->n_threads : DEFAULT_THREADS;
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;

    if (make_dirs(opts->out_dir)) {
        report(&run, opts->out_dir, "cannot create directory");
        return CC_EIO;
    }
    if (!opts->force && !dir_is_empty(opts->out_dir)) {
        report(&run, opts->out_dir, "directory is not empty (use --force to write into it)");
        return CC_EEXISTS;
    }
    if (sodium_init() < 0)
        return CC_ECRYPTO;
    if (!(run.digests = json_object()))
        return CC_ENOMEM;
    for (int f = 0; f < CC_GEN_N_FILES; f++)
        crypto_hash_sha256_init(&run.digest_state[f]);
    if ((rc = init_context(&run.ctx, opts)))
        goto out;
    if (opts->truth_path) {
        run.ctx.truth = 1;
        run.truth_fd = open(opts->truth_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (run.truth_fd < 0) {
            report(&run, opts->truth_path, strerror(errno));
            rc = CC_EIO;
            goto out;
        }
        if ((rc = write_all(&run, run.truth_fd, CC_GEN_TRUTH_HEADER, strlen(CC_GEN_TRUTH_HEADER),
                            opts->truth_path)))
            goto out;
    }
    const struct cc_gen_geo *geo = &run.ctx.geo;
    size_t n_cells = (size_t)geo->n_lsoas * 2 * CC_N_AGE_BANDS_5Y;
    population = calloc(n_cells * (size_t)n_threads, sizeof *population);
    if (!population) {
        rc = CC_ENOMEM;
        goto out;
    }
    if ((rc = write_reference(&run)))
        goto out;
    for (int f = 0; f < CC_GEN_N_FILES; f++) {
        if ((rc = open_output(&run, file_names[f], &run.fds[f])))
            goto out;
        if ((rc = append_patient_file(&run, f, file_headers[f], strlen(file_headers[f]))))
            goto out;
    }

    /* Rounds of n_threads blocks, double-buffered: while the workers fill
     * one set of buffers, a writer thread appends the previous round's set
     * to the files, in block order. */
    int64_t n_blocks = (opts->n_patients + CC_GEN_BLOCK_PERSONS - 1) / CC_GEN_BLOCK_PERSONS;
    int last_decile = 0, current = 0, previous_jobs = 0;
    for (int64_t first = 0;; first += n_threads) {
        int n_jobs = first >= n_blocks ? 0 : (int)(n_blocks - first < n_threads ? n_blocks - first : n_threads);
        if (n_jobs == 0 && previous_jobs == 0)
            break;
        struct writer writer = {&run, workers[1 - current], previous_jobs, 0};
        pthread_t writer_thread;
        int writer_started = previous_jobs > 0 && pthread_create(&writer_thread, NULL, writer_main, &writer) == 0;
        pthread_t threads[MAX_THREADS];
        int started[MAX_THREADS] = {0};
        struct worker *round = workers[current];
        for (int t = 0; t < n_jobs; t++) {
            round[t].ctx = &run.ctx;
            round[t].block = first + t;
            round[t].population = population + n_cells * (size_t)t;
            if (t > 0 && pthread_create(&threads[t], NULL, worker_main, &round[t]) == 0)
                started[t] = 1;
            else if (t > 0)
                worker_main(&round[t]); /* no thread to be had: do it here */
        }
        if (n_jobs > 0)
            worker_main(&round[0]);
        for (int t = 1; t < n_jobs; t++)
            if (started[t])
                pthread_join(threads[t], NULL);
        if (writer_started)
            pthread_join(writer_thread, NULL);
        else if (previous_jobs > 0)
            writer_main(&writer);
        if (writer.rc) {
            rc = writer.rc;
            goto out;
        }
        for (int t = 0; t < n_jobs; t++)
            if (round[t].rc) {
                rc = round[t].rc;
                goto out;
            }
        previous_jobs = n_jobs;
        current = 1 - current;
        int64_t done = (first + n_jobs) * CC_GEN_BLOCK_PERSONS;
        if (done > opts->n_patients)
            done = opts->n_patients;
        int decile = (int)(done * 10 / opts->n_patients);
        if (opts->progress && decile > last_decile && done < opts->n_patients)
            fprintf(opts->progress, "generate: %lld of %lld patients\n", (long long)done,
                    (long long)opts->n_patients);
        last_decile = decile;
    }
    for (int f = 0; f < CC_GEN_N_FILES; f++) {
        unsigned char digest[crypto_hash_sha256_BYTES];
        if ((rc = close_output(&run, &run.fds[f], file_names[f])))
            goto out;
        crypto_hash_sha256_final(&run.digest_state[f], digest);
        if ((rc = add_digest(&run, file_names[f], digest)))
            goto out;
    }
    if (run.truth_fd >= 0 && (rc = close_output(&run, &run.truth_fd, opts->truth_path)))
        goto out;

    for (int t = 1; t < n_threads; t++)
        for (size_t i = 0; i < n_cells; i++)
            population[i] += population[n_cells * (size_t)t + i];
    if ((rc = write_population(&run, population)))
        goto out;
    int64_t reference_rows[3] = {(int64_t)geo->n_postcodes,
                                 CC_GEN_N_REGIONS + CC_GEN_N_ICBS + geo->n_lads + geo->n_lsoas,
                                 (int64_t)n_cells};
    if ((rc = write_manifest(&run, reference_rows)))
        goto out;

    if (summary) {
        memset(summary, 0, sizeof *summary);
        for (int f = 0; f < CC_GEN_N_FILES; f++)
            summary->rows[f] = run.totals.rows[f];
        summary->n_postcodes = geo->n_postcodes;
        summary->n_lsoas = geo->n_lsoas;
        summary->n_districts = geo->n_lads;
        summary->n_icbs = CC_GEN_N_ICBS;
        summary->n_regions = CC_GEN_N_REGIONS;
        summary->n_practices = geo->n_practices;
        summary->bytes_written = run.bytes_written;
    }
    rc = 0;
out:
    for (int f = 0; f < CC_GEN_N_FILES; f++)
        if (run.fds[f] >= 0)
            close(run.fds[f]);
    if (run.truth_fd >= 0)
        close(run.truth_fd);
    free(run.truth_buf.data);
    json_decref(run.digests);
    for (int set = 0; set < 2; set++)
        for (int t = 0; t < MAX_THREADS; t++)
            for (int f = 0; f < CC_GEN_N_FILES; f++) {
                free(workers[set][t].out.buf[f].data);
                free(workers[set][t].out.truth[f].rows);
            }
    free(population);
    free(run.ctx.dates);
    for (int i = 0; i < 4; i++)
        cc_gen_vocabulary_free(&run.ctx.tail[i]);
    cc_gen_geo_free(&run.ctx.geo);
    return rc;
}
