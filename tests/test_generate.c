/*
 * Tests for gen/ (carecount generate): the generated data set at 10,000
 * patients, read back from the CSV files with independent checks (Modulus
 * 11, Verhoeff, the area hierarchy, the planted effects, determinism).
 *
 * The checks parse the files with a small splitter of their own, not with
 * the ingest code, so they test the files and not a shared reading of them.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cc_date.h"
#include "cc_error.h"
#include "cc_gen.h"
#include "cc_model.h"
#include "cc_validate.h"
#include "cc_testfs.h"
#include "cc_testtool.h"

#define N_PATIENTS 10000
#define MAX_FIELDS 32

/* ---- helpers ---- */

/* Generates a data set into a new temporary directory; returns its path
 * (caller frees and removes). */
static char *generate(uint64_t seed, int64_t n_patients, int n_threads)
{
    char *dir = cc_testfs_new_dir("generate");
    struct cc_gen_options opts = {0};
    opts.seed = seed;
    opts.n_patients = n_patients;
    opts.out_dir = dir;
    opts.n_threads = n_threads;
    cr_assert_eq(cc_gen_run(&opts, NULL), 0);
    return dir;
}

static void discard(char *dir)
{
    cc_testfs_remove_tree(dir);
    free(dir);
}

/* Reads dir/name whole, NUL-terminated; *len gets its size. */
static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[512];
    cc_testfs_path(path, sizeof path, dir, name);
    return cc_testfs_read(path, len);
}

/* A file split into rows of fields (RFC 4180 quotes undone in place; no
 * line breaks inside fields in generated files). */
struct table {
    char *data;
    char ***rows; /* rows[i][j]: field j of data row i (header excluded) */
    int n_rows, n_columns;
    char *header[MAX_FIELDS];
};

static int split_fields(char *line, char **fields)
{
    int n = 0;
    char *out = line, *in = line;
    fields[n++] = out;
    int quoted = 0;
    for (; *in; in++) {
        if (quoted) {
            if (*in == '"' && in[1] == '"') {
                *out++ = '"';
                in++;
            } else if (*in == '"') {
                quoted = 0;
            } else {
                *out++ = *in;
            }
        } else if (*in == '"') {
            quoted = 1;
        } else if (*in == ',') {
            *out++ = '\0';
            cr_assert_lt(n, MAX_FIELDS);
            fields[n++] = out;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return n;
}

static struct table read_table(const char *dir, const char *name)
{
    struct table t = {0};
    t.data = slurp(dir, name, NULL);
    int capacity = 1024;
    t.rows = malloc(sizeof *t.rows * (size_t)capacity);
    char *save = NULL;
    char *line = strtok_r(t.data, "\n", &save);
    cr_assert_not_null(line, "%s is empty", name);
    t.n_columns = split_fields(line, t.header);
    while ((line = strtok_r(NULL, "\n", &save))) {
        if (t.n_rows == capacity) {
            capacity *= 2;
            t.rows = realloc(t.rows, sizeof *t.rows * (size_t)capacity);
        }
        char **fields = calloc(MAX_FIELDS, sizeof *fields);
        int n = split_fields(line, fields);
        cr_assert_eq(n, t.n_columns, "%s row %d has %d fields, header %d", name, t.n_rows + 2, n,
                     t.n_columns);
        t.rows[t.n_rows++] = fields;
    }
    return t;
}

static int column(const struct table *t, const char *name)
{
    for (int j = 0; j < t->n_columns; j++)
        if (!strcmp(t->header[j], name))
            return j;
    cr_assert_fail("no column %s", name);
    return -1;
}

static void free_table(struct table *t)
{
    for (int i = 0; i < t->n_rows; i++)
        free(t->rows[i]);
    free(t->rows);
    free(t->data);
}

/* Independent Modulus 11 check of a 10-character NHS number. */
static int nhs_is_valid(const char *s)
{
    if (strlen(s) != 10)
        return 0;
    int sum = 0;
    for (int i = 0; i < 10; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    for (int i = 0; i < 9; i++)
        sum += (s[i] - '0') * (10 - i);
    int check = 11 - sum % 11;
    if (check == 11)
        check = 0;
    return check != 10 && check == s[9] - '0';
}

/* Independent Verhoeff check. */
static int verhoeff_is_valid(const char *s)
{
    static const int d[10][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5}, {2, 3, 4, 0, 1, 7, 8, 9, 5, 6},
        {3, 4, 0, 1, 2, 8, 9, 5, 6, 7}, {4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
        {6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3}, {8, 7, 6, 5, 9, 3, 2, 1, 0, 4},
        {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}};
    static const int p[8][10] = {
        {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4}, {5, 8, 0, 3, 7, 9, 6, 1, 4, 2},
        {8, 9, 1, 6, 0, 4, 3, 5, 2, 7}, {9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
        {2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8}};
    int n = (int)strlen(s), c = 0;
    if (n < 6 || n > 18)
        return 0;
    for (int i = 0; i < n; i++) {
        char ch = s[n - 1 - i];
        if (ch < '0' || ch > '9')
            return 0;
        c = d[c][p[i % 8][ch - '0']];
    }
    return c == 0;
}

/* Canonical postcode: upper case, one space before the last 3 characters. */
static void normalise_postcode(const char *in, char out[16])
{
    char compact[16];
    int n = 0;
    for (; *in && n < 15; in++)
        if (*in != ' ')
            compact[n++] = (char)(*in >= 'a' && *in <= 'z' ? *in - 32 : *in);
    compact[n] = '\0';
    if (n < 5) {
        strcpy(out, compact);
        return;
    }
    memcpy(out, compact, (size_t)(n - 3));
    out[n - 3] = ' ';
    memcpy(out + n - 2, compact + n - 3, 4);
}

static int is_code(const char *s, const char *prefix)
{
    if (strlen(s) != 9 || strncmp(s, prefix, 3))
        return 0;
    for (int i = 3; i < 9; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static json_t *read_manifest(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t error;
    json_t *manifest = json_load_file(path, 0, &error);
    cr_assert_not_null(manifest, "manifest: %s", error.text);
    return manifest;
}

/* ---- lookups from the generated reference files ---- */

struct postcode_area {
    char postcode[16];
    const char *icb, *region;
};

static int compare_postcode(const void *a, const void *b)
{
    return strcmp(((const struct postcode_area *)a)->postcode, ((const struct postcode_area *)b)->postcode);
}

struct person_area {
    char nhs[11];
    char registered[11];
    const char *icb, *region;
};

static int compare_person(const void *a, const void *b)
{
    return strcmp(((const struct person_area *)a)->nhs, ((const struct person_area *)b)->nhs);
}

struct areas {
    struct table postcodes, registrations;
    struct postcode_area *by_postcode;
    struct person_area *persons;
    int n_persons;
};

static const struct postcode_area *find_postcode(const struct areas *a, const char *raw)
{
    struct postcode_area key;
    memset(&key, 0, sizeof key);
    normalise_postcode(raw, key.postcode);
    return bsearch(&key, a->by_postcode, (size_t)a->postcodes.n_rows, sizeof key, compare_postcode);
}

/* Each valid NHS number's ICB and region from its latest registration. */
static void load_areas(const char *dir, struct areas *a)
{
    a->postcodes = read_table(dir, "postcodes.csv");
    int pcds = column(&a->postcodes, "pcds"), icb = column(&a->postcodes, "icb23cd"),
        rgn = column(&a->postcodes, "rgn23cd");
    a->by_postcode = calloc((size_t)a->postcodes.n_rows, sizeof *a->by_postcode);
    for (int i = 0; i < a->postcodes.n_rows; i++) {
        snprintf(a->by_postcode[i].postcode, 16, "%s", a->postcodes.rows[i][pcds]);
        a->by_postcode[i].icb = a->postcodes.rows[i][icb];
        a->by_postcode[i].region = a->postcodes.rows[i][rgn];
    }
    qsort(a->by_postcode, (size_t)a->postcodes.n_rows, sizeof *a->by_postcode, compare_postcode);

    a->registrations = read_table(dir, "gp_registrations.csv");
    const struct table *r = &a->registrations;
    int nhs = column(r, "nhs_number"), pc = column(r, "postcode"), date = column(r, "registration_date");
    a->persons = calloc((size_t)r->n_rows, sizeof *a->persons);
    for (int i = 0; i < r->n_rows; i++) {
        if (!nhs_is_valid(r->rows[i][nhs]))
            continue;
        const struct postcode_area *where = find_postcode(a, r->rows[i][pc]);
        cr_assert_not_null(where, "registration postcode not in the lookup");
        struct person_area *p = &a->persons[a->n_persons++];
        snprintf(p->nhs, sizeof p->nhs, "%s", r->rows[i][nhs]);
        snprintf(p->registered, sizeof p->registered, "%s", r->rows[i][date]);
        p->icb = where->icb;
        p->region = where->region;
    }
    qsort(a->persons, (size_t)a->n_persons, sizeof *a->persons, compare_person);
    int kept = 0; /* keep the latest registration of each person */
    for (int i = 0; i < a->n_persons; i++) {
        if (kept && !strcmp(a->persons[kept - 1].nhs, a->persons[i].nhs)) {
            if (strcmp(a->persons[i].registered, a->persons[kept - 1].registered) > 0)
                a->persons[kept - 1] = a->persons[i];
            continue;
        }
        a->persons[kept++] = a->persons[i];
    }
    a->n_persons = kept;
}

static const struct person_area *find_person(const struct areas *a, const char *nhs)
{
    struct person_area key;
    memset(&key, 0, sizeof key);
    snprintf(key.nhs, sizeof key.nhs, "%s", nhs);
    return bsearch(&key, a->persons, (size_t)a->n_persons, sizeof key, compare_person);
}

static void free_areas(struct areas *a)
{
    free_table(&a->postcodes);
    free_table(&a->registrations);
    free(a->by_postcode);
    free(a->persons);
}

static const char *planted_code(json_t *manifest, int index)
{
    json_t *effect = json_array_get(json_object_get(manifest, "planted_effects"), (size_t)index);
    return json_string_value(json_object_get(effect, "area_code"));
}

/* ---- tests ---- */

Test(generate, nhs_numbers_are_valid_or_deliberately_invalid_at_the_documented_rate)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct table t = read_table(dir, "gp_registrations.csv");
    int nhs = column(&t, "nhs_number"), n_invalid = 0;
    for (int i = 0; i < t.n_rows; i++) {
        const char *number = t.rows[i][nhs];
        cr_assert_eq(strlen(number), 10, "row %d: NHS number not 10 digits", i + 2);
        if (nhs_is_valid(number))
            cr_assert_eq(strncmp(number, "999", 3), 0, "row %d: valid number outside 999 range", i + 2);
        else
            n_invalid++;
    }
    double rate = (double)n_invalid / t.n_rows;
    cr_assert(rate > 0.002 && rate < 0.01, "invalid rate %f, documented 0.005", rate);
    json_t *manifest = read_manifest(dir);
    json_t *counts = json_object_get(json_object_get(manifest, "files"), "gp_registrations.csv");
    cr_assert_eq(json_integer_value(json_object_get(counts, "invalid_nhs_numbers")), n_invalid);
    cr_assert_eq(json_integer_value(json_object_get(counts, "rows")), t.n_rows);
    json_decref(manifest);
    free_table(&t);
    discard(dir);
}

struct pair {
    char nhs[11], dob[11];
};

static int compare_pair(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->nhs, ((const struct pair *)b)->nhs);
}

Test(generate, each_valid_nhs_number_belongs_to_one_person)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct areas a = {0};
    load_areas(dir, &a);
    /* Nearly every person keeps a valid number on some row. */
    cr_assert(a.n_persons > N_PATIENTS * 0.99 && a.n_persons <= N_PATIENTS, "%d persons", a.n_persons);
    /* A number never carries two dates of birth (bad-date rows aside). */
    const struct table *r = &a.registrations;
    int nhs = column(r, "nhs_number"), dob = column(r, "date_of_birth");
    struct pair *pairs = calloc((size_t)r->n_rows, sizeof *pairs);
    int n = 0;
    for (int i = 0; i < r->n_rows; i++) {
        cc_day day;
        if (!nhs_is_valid(r->rows[i][nhs]) || cc_day_parse(r->rows[i][dob], 10, &day))
            continue;
        snprintf(pairs[n].nhs, 11, "%s", r->rows[i][nhs]);
        snprintf(pairs[n].dob, 11, "%s", r->rows[i][dob]);
        n++;
    }
    qsort(pairs, (size_t)n, sizeof *pairs, compare_pair);
    for (int i = 1; i < n; i++)
        if (!strcmp(pairs[i].nhs, pairs[i - 1].nhs))
            cr_assert_str_eq(pairs[i].dob, pairs[i - 1].dob, "one NHS number, two dates of birth");
    free(pairs);
    free_areas(&a);
    discard(dir);
}

Test(generate, area_hierarchy_is_consistent_and_well_formed)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct table areas = read_table(dir, "areas.csv");
    int code = column(&areas, "code"), level = column(&areas, "level"), parent = column(&areas, "parent_code");
    int n_regions = 0, n_icbs = 0, n_lads = 0, n_lsoas = 0;
    for (int i = 0; i < areas.n_rows; i++) {
        const char *c = areas.rows[i][code], *l = areas.rows[i][level], *p = areas.rows[i][parent];
        if (!strcmp(l, "region")) {
            cr_assert(is_code(c, "E12") && c[3] == '0' && c[7] == '0' && c[8] >= '1' && c[8] <= '9', "%s", c);
            cr_assert_str_empty(p);
            n_regions++;
        } else if (!strcmp(l, "icb")) {
            cr_assert(is_code(c, "E54") && is_code(p, "E12"), "%s", c);
            n_icbs++;
        } else if (!strcmp(l, "lad")) {
            cr_assert(is_code(c, "E06") || is_code(c, "E07") || is_code(c, "E08") || is_code(c, "E09"), "%s", c);
            cr_assert(is_code(p, "E54"));
            n_lads++;
        } else {
            cr_assert_str_eq(l, "lsoa");
            cr_assert(is_code(c, "E01") && (p[2] >= '6' && p[2] <= '9'), "%s in %s", c, p);
            n_lsoas++;
        }
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(areas.rows[j][code], c, "code %s listed twice", c);
    }
    cr_assert_eq(n_regions, 9);
    cr_assert_eq(n_icbs, 42);
    cr_assert(n_lads >= 42 && n_lads <= 296);
    cr_assert(n_lsoas >= 2 * n_lads);

    /* Every postcode's chain of codes follows the parents in areas.csv. */
    struct table pcs = read_table(dir, "postcodes.csv");
    int pcds = column(&pcs, "pcds"), lsoa = column(&pcs, "lsoa21cd"), lad = column(&pcs, "lad23cd"),
        icb = column(&pcs, "icb23cd"), rgn = column(&pcs, "rgn23cd");
    for (int i = 0; i < pcs.n_rows; i++) {
        const char *chain[4] = {pcs.rows[i][lsoa], pcs.rows[i][lad], pcs.rows[i][icb], pcs.rows[i][rgn]};
        for (int k = 0; k < 3; k++) {
            int found = 0;
            for (int j = 0; j < areas.n_rows && !found; j++)
                if (!strcmp(areas.rows[j][code], chain[k])) {
                    cr_assert_str_eq(areas.rows[j][parent], chain[k + 1], "parent of %s", chain[k]);
                    found = 1;
                }
            cr_assert(found, "%s not in areas.csv", chain[k]);
        }
        /* UK shape: outward A9, A99, AA9 or AA99, a space, inward 9AA. */
        const char *p = pcs.rows[i][pcds];
        size_t n = strlen(p);
        cr_assert(n >= 6 && n <= 8 && p[n - 4] == ' ' && p[n - 3] >= '0' && p[n - 3] <= '9', "%s", p);
        cr_assert(p[0] >= 'A' && p[0] <= 'Z');
    }
    free_table(&pcs);
    free_table(&areas);
    discard(dir);
}

Test(generate, population_covers_every_lsoa_sex_and_band)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct table areas = read_table(dir, "areas.csv");
    struct table pop = read_table(dir, "population.csv");
    int lsoa = column(&pop, "lsoa21cd"), sex = column(&pop, "sex"), band = column(&pop, "age_band"),
        value = column(&pop, "population");
    int n_lsoas = 0;
    for (int i = 0; i < areas.n_rows; i++)
        n_lsoas += !strcmp(areas.rows[i][column(&areas, "level")], "lsoa");
    cr_assert_eq(pop.n_rows, n_lsoas * 2 * 19);
    static const char *bands[19] = {"0-4", "5-9", "10-14", "15-19", "20-24", "25-29", "30-34",
                                    "35-39", "40-44", "45-49", "50-54", "55-59", "60-64", "65-69",
                                    "70-74", "75-79", "80-84", "85-89", "90+"};
    long total = 0;
    for (int i = 0; i < pop.n_rows; i++) {
        /* Rows come LSOA by LSOA, sex 1 then 2, bands in order. */
        cr_assert_str_eq(pop.rows[i][band], bands[i % 19]);
        cr_assert_eq(atoi(pop.rows[i][sex]), i / 19 % 2 + 1);
        cr_assert_str_eq(pop.rows[i][lsoa], pop.rows[i - i % 38][lsoa]);
        if (i % 38 == 0 && i > 0)
            cr_assert_str_neq(pop.rows[i][lsoa], pop.rows[i - 38][lsoa]);
        total += atol(pop.rows[i][value]);
    }
    cr_assert(total > N_PATIENTS * 0.96 && total < N_PATIENTS * 1.04, "total population %ld", total);
    free_table(&pop);
    free_table(&areas);
    discard(dir);
}

Test(generate, planted_icb_has_markedly_higher_diabetes_prevalence)
{
    char *dir = generate(1, N_PATIENTS, 0);
    json_t *manifest = read_manifest(dir);
    const char *planted = planted_code(manifest, 0);
    struct areas a = {0};
    load_areas(dir, &a);
    struct table events = read_table(dir, "gp_events.csv");
    int nhs = column(&events, "nhs_number"), code = column(&events, "snomed_code");
    char *seen = calloc((size_t)a.n_persons, 1);
    int cases_in = 0, cases_out = 0, persons_in = 0;
    for (int i = 0; i < events.n_rows; i++) {
        if (strcmp(events.rows[i][code], "44054006"))
            continue;
        const struct person_area *p = find_person(&a, events.rows[i][nhs]);
        if (!p || seen[p - a.persons]++)
            continue;
        *(strcmp(p->icb, planted) ? &cases_out : &cases_in) += 1;
    }
    for (int i = 0; i < a.n_persons; i++)
        persons_in += !strcmp(a.persons[i].icb, planted);
    double inside = (double)cases_in / persons_in, outside = (double)cases_out / (a.n_persons - persons_in);
    cr_assert(persons_in > 200, "planted ICB has %d persons", persons_in);
    cr_assert(inside > 1.3 * outside, "prevalence %f in the planted ICB, %f elsewhere", inside, outside);
    free(seen);
    free_table(&events);
    free_areas(&a);
    json_decref(manifest);
    discard(dir);
}

Test(generate, planted_region_has_a_lower_admission_rate)
{
    char *dir = generate(1, N_PATIENTS, 0);
    json_t *manifest = read_manifest(dir);
    const char *planted = planted_code(manifest, 1);
    struct areas a = {0};
    load_areas(dir, &a);
    struct table hes = read_table(dir, "hes_apc.csv");
    int pc = column(&hes, "postcode");
    int episodes_in = 0, episodes_out = 0, persons_in = 0;
    for (int i = 0; i < hes.n_rows; i++) {
        const struct postcode_area *where = find_postcode(&a, hes.rows[i][pc]);
        cr_assert_not_null(where);
        *(strcmp(where->region, planted) ? &episodes_out : &episodes_in) += 1;
    }
    for (int i = 0; i < a.n_persons; i++)
        persons_in += !strcmp(a.persons[i].region, planted);
    double inside = (double)episodes_in / persons_in, outside = (double)episodes_out / (a.n_persons - persons_in);
    cr_assert(inside < 0.85 * outside, "admissions %f per person in the planted region, %f elsewhere", inside,
              outside);
    free_table(&hes);
    free_areas(&a);
    json_decref(manifest);
    discard(dir);
}

Test(generate, same_condition_appears_in_gp_and_hospital_records)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct areas a = {0};
    load_areas(dir, &a);
    struct table events = read_table(dir, "gp_events.csv");
    struct table hes = read_table(dir, "hes_apc.csv");
    char *gp = calloc((size_t)a.n_persons, 1), *both = calloc((size_t)a.n_persons, 1);
    for (int i = 0; i < events.n_rows; i++) {
        const struct person_area *p = find_person(&a, events.rows[i][column(&events, "nhs_number")]);
        if (p && !strcmp(events.rows[i][column(&events, "snomed_code")], "44054006"))
            gp[p - a.persons] = 1;
    }
    int n_both = 0;
    for (int i = 0; i < hes.n_rows; i++) {
        const struct person_area *p = find_person(&a, hes.rows[i][column(&hes, "nhs_number")]);
        if (!p || !gp[p - a.persons] || both[p - a.persons])
            continue;
        for (int d = 1; d <= 6; d++) {
            char name[32];
            snprintf(name, sizeof name, "diag_%02d", d);
            if (!strncmp(hes.rows[i][column(&hes, name)], "E11", 3)) {
                both[p - a.persons] = 1;
                n_both++;
                break;
            }
        }
    }
    cr_assert(n_both > 100, "%d persons with type 2 diabetes in both settings", n_both);
    free(gp);
    free(both);
    free_table(&events);
    free_table(&hes);
    free_areas(&a);
    discard(dir);
}

Test(generate, snomed_codes_carry_valid_verhoeff_check_digits)
{
    static const char *named[] = {"44054006", "38341003", "195967001", "13645005",
                                  "35489007", "53741008", "254837009"};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        cr_assert(verhoeff_is_valid(named[i]), "%s", named[i]);
        cr_assert(cc_gen_verhoeff_is_valid(named[i], (int)strlen(named[i])));
    }
    cr_assert_not(verhoeff_is_valid("44054007"));
    cr_assert_not(cc_gen_verhoeff_is_valid("44054007", 8));

    char *dir = generate(1, N_PATIENTS, 0);
    static const char *lists[] = {"codelists/diabetes_snomed.csv", "codelists/hypertension_snomed.csv",
                                  "codelists/asthma_snomed.csv", "codelists/copd_snomed.csv",
                                  "codelists/depression_snomed.csv", "codelists/chd_snomed.csv"};
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        struct table t = read_table(dir, lists[l]);
        column(&t, "term");
        for (int i = 0; i < t.n_rows; i++)
            cr_assert(verhoeff_is_valid(t.rows[i][column(&t, "code")]), "%s in %s", t.rows[i][0], lists[l]);
        free_table(&t);
    }
    /* Only the deliberately malformed rows (0.1% of rows, some kinds) fail. */
    const char *files[] = {"gp_events.csv", "community_contacts.csv"};
    for (int f = 0; f < 2; f++) {
        struct table t = read_table(dir, files[f]);
        int code = column(&t, "snomed_code"), bad = 0;
        for (int i = 0; i < t.n_rows; i++)
            bad += !verhoeff_is_valid(t.rows[i][code]);
        cr_assert(bad <= t.n_rows / 500, "%d invalid SNOMED codes in %s", bad, files[f]);
        free_table(&t);
    }
    discard(dir);
}

Test(generate, nhs_check_digit_follows_modulus_11)
{
    cr_assert_eq(cc_gen_nhs_check_digit("943476591"), 9); /* the NHS's own example 943 476 5919 */
    cr_assert(nhs_is_valid("9434765919"));
    cr_assert_not(nhs_is_valid("9434765918"));
    char base[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(base, sizeof base, "999%06d", i * 997);
        int check = cc_gen_nhs_check_digit(base);
        char number[48];
        snprintf(number, sizeof number, "%s%d", base, check % 10);
        cr_assert_eq(nhs_is_valid(number), check != 10, "%s", number);
    }
}

Test(generate, hospital_discharge_precedes_admission_only_in_counted_malformed_rows)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct table hes = read_table(dir, "hes_apc.csv");
    int adm = column(&hes, "admission_date"), dis = column(&hes, "discharge_date"), n_before = 0;
    for (int i = 0; i < hes.n_rows; i++)
        if (*hes.rows[i][dis] && strcmp(hes.rows[i][dis], hes.rows[i][adm]) < 0)
            n_before++;
    json_t *manifest = read_manifest(dir);
    json_t *malformed = json_object_get(manifest, "malformed_rows");
    int documented = (int)json_integer_value(json_object_get(malformed, "discharge_before_admission"));
    /* A duplicated malformed row counts twice in the file; bad admission dates never compare lower. */
    cr_assert(n_before >= documented && n_before <= 2 * documented, "%d rows, %d documented", n_before,
              documented);
    json_decref(manifest);
    free_table(&hes);
    discard(dir);
}

Test(generate, no_date_lies_after_today)
{
    char *dir = generate(1, N_PATIENTS, 0);
    char today[11];
    cc_day_format(cc_day_today(), today);
    const char *files[] = {"gp_registrations.csv", "gp_events.csv", "hes_apc.csv", "community_contacts.csv",
                           "optout_register.csv"};
    int n_dates = 0;
    for (int f = 0; f < 5; f++) {
        char *data = slurp(dir, files[f], NULL);
        for (char *s = data; (s = strchr(s, '-')); s++) {
            /* a date is dddd-dd-dd */
            if (s - data < 4 || !strchr("0123456789", s[-1]) || s[3] != '-')
                continue;
            char date[11];
            memcpy(date, s - 4, 10);
            date[10] = '\0';
            cr_assert(strcmp(date, today) <= 0, "%s is after today in %s", date, files[f]);
            n_dates++;
        }
        free(data);
    }
    cr_assert_gt(n_dates, N_PATIENTS);
    discard(dir);
}

static void assert_same_files(const char *a, const char *b, int expect_same)
{
    const char *files[] = {"postcodes.csv", "areas.csv", "population.csv", "gp_registrations.csv",
                           "gp_events.csv", "hes_apc.csv", "community_contacts.csv", "optout_register.csv",
                           "manifest.json", "codelists/diabetes_snomed.csv"};
    int n_same = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        size_t len_a, len_b;
        char *data_a = slurp(a, files[f], &len_a), *data_b = slurp(b, files[f], &len_b);
        int same = len_a == len_b && !memcmp(data_a, data_b, len_a);
        if (expect_same)
            cr_assert(same, "%s differs between two runs with the same seed", files[f]);
        n_same += same;
        free(data_a);
        free(data_b);
    }
    if (!expect_same)
        cr_assert_lt(n_same, 4, "%d files identical across seeds", n_same);
}

Test(generate, same_seed_gives_identical_bytes)
{
    char *a = generate(42, N_PATIENTS, 0), *b = generate(42, N_PATIENTS, 0);
    assert_same_files(a, b, 1);
    discard(a);
    discard(b);
}

Test(generate, different_seeds_give_different_data)
{
    char *a = generate(42, N_PATIENTS, 0), *b = generate(43, N_PATIENTS, 0);
    assert_same_files(a, b, 0);
    discard(a);
    discard(b);
}

Test(generate, thread_count_does_not_change_the_bytes)
{
    /* 140,000 patients make three blocks, so threads really share the work. */
    char *a = generate(7, 140000, 1), *b = generate(7, 140000, 3);
    assert_same_files(a, b, 1);
    discard(a);
    discard(b);
}

/* The manifest's sha256 lists every other file written, by its name in the
 * output directory, with the digest sha256sum (coreutils, an implementation
 * of its own) gives; ingest's provenance rests on it (cc_ingest.h). */
Test(generate, manifest_lists_the_sha256_of_every_other_file_written)
{
    char *dir = generate(5, 1000, 0);
    json_t *manifest = read_manifest(dir);
    json_t *digests = json_object_get(manifest, "sha256");
    cr_assert(json_is_object(digests), "the manifest has a sha256 object");

    char command[1024], line[1024];
    snprintf(command, sizeof command,
             "cd '%s' && find . -type f ! -name manifest.json | sed 's|^\\./||' | sort | "
             "xargs sha256sum",
             dir);
    FILE *p = popen(command, "r");
    cr_assert_not_null(p);
    size_t n_files = 0;
    int saw_codelist = 0, saw_events = 0;
    while (fgets(line, sizeof line, p)) {
        char hex[65], name[512];
        cr_assert_eq(sscanf(line, "%64s %511s", hex, name), 2, "sha256sum: %s", line);
        const char *listed = json_string_value(json_object_get(digests, name));
        cr_assert_not_null(listed, "%s is not in the manifest's sha256", name);
        cr_assert_str_eq(listed, hex, "%s: the manifest's digest is not the file's", name);
        saw_codelist |= !strncmp(name, "codelists/", 10);
        saw_events |= !strcmp(name, "gp_events.csv");
        n_files++;
    }
    cr_assert_eq(pclose(p), 0);
    cr_assert(saw_codelist && saw_events, "patient-level files and codelists are both listed");
    cr_assert_eq(json_object_size(digests), n_files,
                 "the manifest lists %zu files, the directory holds %zu besides it",
                 json_object_size(digests), n_files);
    cr_assert_null(json_object_get(digests, "manifest.json"));
    json_decref(manifest);
    discard(dir);
}

Test(generate, refuses_a_non_empty_directory_unless_forced)
{
    char *dir = generate(1, 1000, 0);
    struct cc_gen_options opts = {0};
    opts.seed = 1;
    opts.n_patients = 1000;
    opts.out_dir = dir;
    cr_assert_eq(cc_gen_run(&opts, NULL), CC_EEXISTS);
    opts.force = 1;
    cr_assert_eq(cc_gen_run(&opts, NULL), 0);
    discard(dir);
}

Test(generate, rejects_patient_counts_out_of_range)
{
    struct cc_gen_options opts = {0};
    opts.out_dir = "/tmp/cc_test_generate_never_created";
    opts.n_patients = 999;
    cr_assert_eq(cc_gen_run(&opts, NULL), CC_EINVAL);
    opts.n_patients = 10000001;
    cr_assert_eq(cc_gen_run(&opts, NULL), CC_EINVAL);
    struct stat st;
    cr_assert_neq(stat(opts.out_dir, &st), 0, "nothing is created for a refused run");
}

/* Counts the rows of a generated file that ingest's field validators would
 * reject (any field failing), using core/cc_validate.h. */
static int rejected_rows(const char *dir, const char *name)
{
    struct table t = read_table(dir, name);
    cc_day today = cc_day_today();
    int n_rejected = 0;
    for (int i = 0; i < t.n_rows; i++) {
        int bad = 0;
        cc_day admitted = -1;
        for (int j = 0; j < t.n_columns; j++) {
            const char *h = t.header[j], *v = t.rows[i][j];
            size_t len = strlen(v);
            char text[64];
            size_t out_len;
            uint8_t sex;
            int type;
            cc_day day;
            if (!strcmp(h, "nhs_number")) {
                /* missing numbers are allowed in hospital and community rows */
                if (len || (strcmp(name, "hes_apc.csv") && strcmp(name, "community_contacts.csv"))) {
                    char digits[CC_NHS_NUMBER_DIGITS];
                    bad |= cc_validate_nhs_number(v, len, digits) != 0;
                }
            } else if (!strcmp(h, "postcode")) {
                bad |= cc_validate_postcode(v, len, text, &out_len) != 0;
            } else if (!strcmp(h, "sex")) {
                bad |= cc_validate_sex(v, len, &sex) != 0;
            } else if (strstr(h, "date")) {
                if (len || strcmp(h, "discharge_date")) {
                    int rc = cc_validate_date(v, len, today, &day);
                    bad |= rc != 0;
                    if (!rc && !strcmp(h, "admission_date"))
                        admitted = day;
                    if (!rc && !strcmp(h, "discharge_date") && admitted >= 0 && day < admitted)
                        bad = 1;
                }
            } else if (!strncmp(h, "diag_", 5)) {
                if (len || !strcmp(h, "diag_01"))
                    bad |= cc_validate_icd10(v, len, text) != 0;
            } else if (!strncmp(h, "opertn_", 7)) {
                if (len)
                    bad |= cc_validate_opcs4(v, len, text) != 0;
            } else if (!strcmp(h, "snomed_code")) {
                bad |= cc_validate_snomed(v, len, text) != 0;
            } else if (!strcmp(h, "practice_code")) {
                if (len || strcmp(name, "optout_register.csv"))
                    bad |= cc_validate_practice_code(v, len, text) != 0;
            } else if (!strcmp(h, "provider_code")) {
                bad |= cc_validate_provider_code(v, len, text) != 0;
            } else if (!strcmp(h, "optout_code")) {
                bad |= cc_validate_optout_code(v, len, &type) != 0;
            }
        }
        n_rejected += bad;
    }
    free_table(&t);
    return n_rejected;
}

Test(generate, ingest_validators_reject_only_the_documented_bad_rows)
{
    char *dir = generate(1, N_PATIENTS, 0);
    json_t *manifest = read_manifest(dir);
    const char *files[] = {"gp_registrations.csv", "gp_events.csv", "hes_apc.csv", "community_contacts.csv"};
    long documented = 0, rejected = 0;
    for (int f = 0; f < 4; f++) {
        json_t *counts = json_object_get(json_object_get(manifest, "files"), files[f]);
        documented += (long)json_integer_value(json_object_get(counts, "invalid_nhs_numbers"));
        rejected += rejected_rows(dir, files[f]);
    }
    json_t *malformed = json_object_get(manifest, "malformed_rows");
    const char *key;
    json_t *value;
    json_object_foreach(malformed, key, value)
        documented += (long)json_integer_value(value);
    cr_assert_gt(documented, 0);
    cr_log_info("%ld rows rejected, %ld documented", rejected, documented);
    /* A bad row can be duplicated (0.5%) or be bad twice over (rarely). */
    cr_assert(rejected >= documented - 5 && rejected <= documented + documented / 20 + 5,
              "%ld rows rejected, %ld documented", rejected, documented);
    cr_assert_eq(rejected_rows(dir, "optout_register.csv"), 0);
    json_decref(manifest);
    discard(dir);
}

/* ---- the long tail of codes ---- */

static int compare_text(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The codes of the generated codelists whose name ends in suffix: SNOMED
 * CT codes whole, ICD-10 and OPCS-4 codes as their 3-character category. */
static int codelist_codes(const char *dir, const char *suffix, char codes[][24], int max)
{
    static const char *lists[] = {
        "diabetes_snomed", "diabetes_icd10", "hypertension_snomed", "hypertension_icd10",
        "asthma_snomed", "asthma_icd10", "copd_snomed", "copd_icd10", "depression_snomed",
        "chd_snomed", "chd_icd10", "breast_cancer_icd10", "coronary_angioplasty_opcs4",
        "hip_replacement_opcs4"};
    int n = 0;
    for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
        size_t len = strlen(lists[l]), suffix_len = strlen(suffix);
        if (len < suffix_len || strcmp(lists[l] + len - suffix_len, suffix))
            continue;
        char name[64];
        snprintf(name, sizeof name, "codelists/%s.csv", lists[l]);
        struct table t = read_table(dir, name);
        int code = column(&t, "code");
        for (int i = 0; i < t.n_rows && n < max; i++) {
            const char *c = t.rows[i][code];
            int is_letter = c[0] >= 'A' && c[0] <= 'Z';
            snprintf(codes[n++], 24, "%.*s", is_letter ? 3 : 23, c);
        }
        free_table(&t);
    }
    return n;
}

Test(generate, tail_vocabulary_holds_thousands_of_distinct_valid_codes_per_system)
{
    char *dir = generate(1, 1000, 0);
    static const int systems[] = {CC_CODE_SNOMED, CC_CODE_ICD10, CC_CODE_OPCS4};
    static const char *suffixes[] = {"_snomed", "_icd10", "_opcs4"};
    for (size_t s = 0; s < 3; s++) {
        int system = systems[s];
        static char named[512][24];
        int n_named = codelist_codes(dir, suffixes[s], named, 512);
        cr_assert_geq(n_named, 4, "codelists of %s", suffixes[s]);
        char(*codes)[CC_GEN_TAIL_CODE_BYTES] = NULL;
        int64_t n = 0;
        cr_assert_eq(cc_gen_tail_codes(system, &codes, &n), 0);
        cr_assert_eq(n, cc_gen_tail_size(system));
        cr_assert_geq(n, 5000, "system %d has %lld codes", system, (long long)n);
        const char **sorted = malloc((size_t)n * sizeof *sorted);
        cr_assert_not_null(sorted);
        for (int64_t i = 0; i < n; i++) {
            const char *c = codes[i];
            size_t len = strlen(c);
            char out[CC_CODE_TEXT_BYTES];
            if (system == CC_CODE_SNOMED) {
                cr_assert(verhoeff_is_valid(c), "%s", c);
                cr_assert_eq(cc_validate_snomed(c, len, out), 0, "%s", c);
            } else if (system == CC_CODE_ICD10) {
                cr_assert_eq(cc_validate_icd10(c, len, out), 0, "%s", c);
            } else {
                cr_assert_eq(cc_validate_opcs4(c, len, out), 0, "%s", c);
            }
            /* never a code, or an ICD-10/OPCS-4 category, of a codelist */
            for (int k = 0; k < n_named; k++) {
                if (system == CC_CODE_SNOMED)
                    cr_assert_str_neq(c, named[k]);
                else
                    cr_assert(strncmp(c, named[k], 3), "%s shares a codelist's category", c);
            }
            sorted[i] = c;
        }
        qsort(sorted, (size_t)n, sizeof *sorted, compare_text);
        for (int64_t i = 1; i < n; i++)
            cr_assert_str_neq(sorted[i - 1], sorted[i], "a code appears twice");
        free(sorted);
        free(codes);
    }
    char(*codes)[CC_GEN_TAIL_CODE_BYTES] = NULL;
    int64_t n = 0;
    cr_assert_eq(cc_gen_tail_codes(99, &codes, &n), CC_EINVAL);
    cr_assert_null(codes);
    discard(dir);
}

/* Occurrences of each distinct code, most frequent first. */
struct code_counts {
    int n_distinct;
    long total;
    long *count; /* descending */
};

static int compare_long_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

static struct code_counts count_codes(const char **codes, long n)
{
    struct code_counts cc = {0, n, calloc((size_t)n + 1, sizeof(long))};
    cr_assert_not_null(cc.count);
    qsort(codes, (size_t)n, sizeof *codes, compare_text);
    for (long i = 0; i < n; i++) {
        if (i == 0 || strcmp(codes[i], codes[i - 1]))
            cc.n_distinct++;
        cc.count[cc.n_distinct - 1]++;
    }
    qsort(cc.count, (size_t)cc.n_distinct, sizeof *cc.count, compare_long_desc);
    return cc;
}

/* A long tail: the most frequent 1% of codes carry a large share of the
 * occurrences, and many codes are rare (seen at most twice). */
static void assert_long_tail(const char *what, struct code_counts cc, int min_distinct)
{
    int top = cc.n_distinct / 100 > 0 ? cc.n_distinct / 100 : 1;
    long top_share = 0;
    for (int i = 0; i < top; i++)
        top_share += cc.count[i];
    int rare = 0;
    for (int i = 0; i < cc.n_distinct; i++)
        rare += cc.count[i] <= 2;
    cr_log_info("%s: %d distinct codes in %ld occurrences; top 1%% carry %.1f%%, %d seen at most twice",
                what, cc.n_distinct, cc.total, 100.0 * top_share / cc.total, rare);
    cr_assert_geq(cc.n_distinct, min_distinct, "%s: %d distinct codes", what, cc.n_distinct);
    cr_assert_gt(top_share, cc.total / 4, "%s: the top 1%% of codes carry %ld of %ld", what, top_share,
                 cc.total);
    cr_assert_gt(rare, cc.n_distinct / 5, "%s: %d of %d codes seen at most twice", what, rare,
                 cc.n_distinct);
    free(cc.count);
}

Test(generate, codes_in_the_feeds_are_many_with_a_long_tail)
{
    char *dir = generate(1, N_PATIENTS, 0);
    struct table gp = read_table(dir, "gp_events.csv");
    int snomed = column(&gp, "snomed_code");
    const char **codes = malloc((size_t)gp.n_rows * sizeof *codes);
    for (int i = 0; i < gp.n_rows; i++)
        codes[i] = gp.rows[i][snomed];
    assert_long_tail("SNOMED CT in gp_events.csv", count_codes(codes, gp.n_rows), 1500);
    free(codes);

    struct table hes = read_table(dir, "hes_apc.csv");
    const char **diag = malloc((size_t)hes.n_rows * 6 * sizeof *diag);
    const char **opertn = malloc((size_t)hes.n_rows * 4 * sizeof *opertn);
    long n_diag = 0, n_opertn = 0;
    for (int d = 1; d <= 6; d++) {
        char name[32];
        snprintf(name, sizeof name, "diag_%02d", d);
        int c = column(&hes, name);
        for (int i = 0; i < hes.n_rows; i++)
            if (hes.rows[i][c][0] && strlen(hes.rows[i][c]) >= 3)
                diag[n_diag++] = hes.rows[i][c];
    }
    for (int o = 1; o <= 4; o++) {
        char name[32];
        snprintf(name, sizeof name, "opertn_%02d", o);
        int c = column(&hes, name);
        for (int i = 0; i < hes.n_rows; i++)
            if (hes.rows[i][c][0])
                opertn[n_opertn++] = hes.rows[i][c];
    }
    assert_long_tail("ICD-10 in hes_apc.csv", count_codes(diag, n_diag), 1500);
    assert_long_tail("OPCS-4 in hes_apc.csv", count_codes(opertn, n_opertn), 500);
    free(diag);
    free(opertn);
    free_table(&gp);
    free_table(&hes);
    discard(dir);
}

/* Runs the carecount binary with arguments; returns its exit status. */
static int run_carecount(const char *args)
{
    return cc_testtool_run(args, NULL, NULL, 0);
}

Test(generate, command_line_documents_and_checks_its_options)
{
    cr_assert_eq(run_carecount("generate --help"), 0);
    cr_assert_eq(run_carecount("generate --patients 999 --out /tmp/cc_test_generate_never_created"), 2);
    cr_assert_eq(run_carecount("generate --patients 1000 --seed -1 --out /tmp/cc_test_generate_never_created"), 2);
    cr_assert_eq(run_carecount("generate --seed 1"), 2, "--patients and --out are required");
    cr_assert_eq(run_carecount("generate -h"), 0, "-h is help, as for every command");
    char said[512];
    cr_assert_eq(cc_testtool_run("generate --patients 1000 /tmp/cc_positional", NULL, said,
                                 sizeof said),
                 2);
    cr_assert(strstr(said, "unexpected argument") && strstr(said, "--out DIR"),
              "a positional directory is explained, not answered with the whole usage: %s",
              said);
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "generate_cli");
    char args[256];
    snprintf(args, sizeof args, "generate --patients 1000 --seed 3 --out %s --quiet", dir);
    cr_assert_eq(run_carecount(args), 0);
    cr_assert_eq(run_carecount(args), 1, "a second run into the same directory is refused");
    json_t *manifest = read_manifest(dir);
    cr_assert_eq(json_integer_value(json_object_get(manifest, "seed")), 3);
    cr_assert_eq(json_integer_value(json_object_get(manifest, "patients")), 1000);
    json_decref(manifest);
    cc_testfs_remove_tree(dir);
}
