/*
 * cc_codelist.c: the registry of named codelists (see cc_codelist.h).
 *
 * A codelist file is small public reference data (OpenCodelists CSV: a
 * header with a `code` column, usually `code,term`), so it is read whole
 * (at most CODELIST_MAX_FILE_BYTES) and parsed with the feeds' CSV reader
 * (core/cc_csv.h, the same dialect and strict quoting). Terms are never
 * kept. The registry is an array of lists kept in name order, so lookups
 * are a binary search and listing is in a stable order.
 *
 * Must never: keep a term or any column but the code.
 */
#include "cc_codelist.h"

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_array.h"
#include "cc_csv.h"
#include "cc_error.h"

#define CODELIST_MAX_FILE_BYTES (32u << 20)

struct cc_codelists {
    struct cc_codelist **lists; /* [n_lists], sorted by name */
    uint32_t n_lists;
    size_t capacity;
};

int cc_codelists_new(cc_codelists **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : CC_ENOMEM;
}

static void codelist_free(struct cc_codelist *list)
{
    if (list) {
        free((void *)list->codes);
        free(list);
    }
}

void cc_codelists_free(cc_codelists *codelists)
{
    if (!codelists)
        return;
    for (uint32_t i = 0; i < codelists->n_lists; i++)
        codelist_free(codelists->lists[i]);
    free(codelists->lists);
    free(codelists);
}

bool cc_codelists_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= CC_CODELIST_NAME_BYTES || !(islower((unsigned char)name[0]) ||
                                                       isdigit((unsigned char)name[0])))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(c >= 'a' && c <= 'z') && !isdigit(c) && c != '-' && c != '_' && c != '.')
            return false;
    }
    return true;
}

static uint32_t find_position(const cc_codelists *codelists, const char *name, bool *found)
{
    uint32_t low = 0, high = codelists->n_lists;
    *found = false;
    while (low < high) {
        uint32_t mid = low + (high - low) / 2;
        int cmp = strcmp(codelists->lists[mid]->name, name);
        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            low = mid + 1;
        else
            high = mid;
    }
    return low;
}

const struct cc_codelist *cc_codelists_find(const cc_codelists *codelists, const char *name)
{
    bool found;
    uint32_t at = find_position(codelists, name, &found);
    return found ? codelists->lists[at] : NULL;
}

uint32_t cc_codelists_count(const cc_codelists *codelists)
{
    return codelists->n_lists;
}

const struct cc_codelist *cc_codelists_at(const cc_codelists *codelists, uint32_t i)
{
    return i < codelists->n_lists ? codelists->lists[i] : NULL;
}

/* ---- parsing ---- */

/* What is known while a file is parsed. */
struct parse {
    const char *name; /* the list's name, for errors */
    char *errbuf;
    size_t errlen;
    int rc; /* first error, or 0 */

    uint64_t row;         /* the line of the row being read (the header is 1) */
    int system;           /* given (nonzero) or 0 to infer */
    unsigned systems;     /* systems every code so far fits */
    uint64_t first_row_of[4]; /* a row whose code fits only ... for mixed-list errors */

    struct cc_query_code *codes;
    uint32_t n_codes;
    size_t capacity;
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void parse_fail(struct parse *p, int rc, const char *fmt, ...)
{
    if (p->rc)
        return;
    p->rc = rc;
    if (!p->errbuf || !p->errlen)
        return;
    int n = snprintf(p->errbuf, p->errlen, "codelist '%s', row %llu: ", p->name,
                     (unsigned long long)p->row);
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->errbuf + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void add_code(struct parse *p, const char *data, size_t len)
{
    /* trim, upper-case, drop a dot: "e11.9 " -> "E119" */
    while (len && isspace((unsigned char)data[0])) {
        data++;
        len--;
    }
    while (len && isspace((unsigned char)data[len - 1]))
        len--;
    if (len == 0)
        return parse_fail(p, CC_EPARSE, "empty code");
    struct cc_query_code code;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '.' && i > 0 && i + 1 < len)
            continue;
        if (!isalnum(c))
            return parse_fail(p, CC_EPARSE, "not a code (letters and digits only)");
        if (n + 1 >= sizeof code.text)
            return parse_fail(p, CC_EPARSE, "a code longer than %zu characters",
                              sizeof code.text - 1);
        code.text[n++] = (char)toupper(c);
    }
    code.text[n] = '\0';
    unsigned fits = cc_query_code_systems(code.text);
    if (!fits)
        return parse_fail(p, CC_EPARSE, "'%s' is not a SNOMED CT, ICD-10 or OPCS-4 code",
                          code.text);
    if (p->system && !(fits & (1u << p->system))) {
        char text[48];
        cc_query_systems_text(fits, text, sizeof text);
        return parse_fail(p, CC_EINVAL, "'%s' is %s but the list's system is %s", code.text, text,
                          cc_query_system_title(p->system));
    }
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++)
        if ((fits & (1u << s)) && !p->first_row_of[s])
            p->first_row_of[s] = p->row;
    if (!(p->systems & fits)) {
        /* mixed: name a row of a system this code does not fit */
        int other = 0;
        for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++)
            if ((p->systems & (1u << s)) && p->first_row_of[s])
                other = s;
        char text[48];
        cc_query_systems_text(fits, text, sizeof text);
        return parse_fail(p, CC_EINVAL,
                          "'%s' is %s but row %llu holds a %s code; a list has one system",
                          code.text, text, (unsigned long long)p->first_row_of[other],
                          cc_query_system_title(other));
    }
    p->systems &= fits;
    if (p->n_codes == CC_CODELIST_MAX_CODES)
        return parse_fail(p, CC_ETOOBIG, "more than %u codes", CC_CODELIST_MAX_CODES);
    if (cc_array_reserve(&p->codes, &p->capacity, (size_t)p->n_codes + 1, sizeof *p->codes))
        return parse_fail(p, CC_ENOMEM, "out of memory");
    p->codes[p->n_codes++] = code;
}

/* 1 if data[0..len) holds nothing but a byte order mark and blank lines. */
static bool is_empty_text(const char *data, size_t len)
{
    size_t i = len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) ? 3 : 0;
    for (; i < len; i++)
        if (!isspace((unsigned char)data[i]))
            return false;
    return true;
}

/* Reads the rows of data with the feeds' CSV reader (core/cc_csv.h), adding
 * each row's code. */
static void parse_rows(struct parse *p, const char *data, size_t len)
{
    cc_csv *csv = NULL;
    int rc = cc_csv_open_memory(data, len, &csv);
    if (rc == CC_EPARSE && is_empty_text(data, len)) {
        p->row = 0;
        return parse_fail(p, CC_EPARSE, "empty file (expected a code,term header)");
    }
    if (rc < 0)
        return parse_fail(p, rc, "%s", rc == CC_EPARSE ? "malformed header (not UTF-8, a column "
                                                         "named twice or an empty name)"
                                                       : cc_strerror(rc));
    /* the `code` column, case-insensitive */
    int code_column = -1;
    for (size_t i = 0; i < cc_csv_n_columns(csv) && !p->rc; i++) {
        if (strcasecmp(cc_csv_column_name(csv, i), "code"))
            continue;
        if (code_column >= 0)
            parse_fail(p, CC_EPARSE, "two `code` columns");
        code_column = (int)i;
    }
    if (code_column < 0)
        parse_fail(p, CC_EPARSE, "no `code` column in the header (expected code,term)");
    const struct cc_csv_field *f;
    uint64_t line;
    while (!p->rc && (rc = cc_csv_next(csv, &f, &line)) != 0) {
        p->row = line;
        if (rc == CC_EPARSE)
            parse_fail(p, CC_EPARSE, "malformed CSV (%s)",
                       cc_csv_problem_text(cc_csv_problem(csv, NULL)));
        else if (rc < 0)
            parse_fail(p, rc, "%s", cc_strerror(rc));
        else
            add_code(p, f[code_column].data, f[code_column].len);
    }
    cc_csv_close(csv);
}

static int compare_codes(const void *a, const void *b)
{
    return strcmp(((const struct cc_query_code *)a)->text, ((const struct cc_query_code *)b)->text);
}

/* The system a codelist's name ends with ("diabetes_icd10", "hip-opcs4"),
 * if its codes fit that system; 0 otherwise. OpenCodelists names often end
 * so, and it settles codes such as "J45" that fit both ICD-10 and OPCS-4. */
static int system_from_name_suffix(const char *name, unsigned fits)
{
    static const int systems[] = {CC_CODE_SNOMED, CC_CODE_ICD10, CC_CODE_OPCS4};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof systems / sizeof *systems; i++) {
        const char *suffix = cc_query_system_name(systems[i]);
        size_t m = strlen(suffix);
        if (n > m + 1 && (name[n - m - 1] == '_' || name[n - m - 1] == '-') &&
            !strcmp(name + n - m, suffix) && (fits & (1u << systems[i])))
            return systems[i];
    }
    return 0;
}

/* Adds n codes of system (sorted, unique) to list, which must hold none of
 * that system: the list then holds several systems (system 0), its codes
 * grouped by system in enum order. */
static int merge_into(struct cc_codelist *list, const struct cc_query_code *codes, uint32_t n,
                      int system, char *errbuf, size_t errlen)
{
    for (uint32_t i = 0; i < list->n_codes; i++)
        if (list->codes[i].system == system) {
            snprintf(errbuf, errlen, "codelist '%s': already loaded with %s codes", list->name,
                     cc_query_system_title(system));
            return CC_EEXISTS;
        }
    if ((uint64_t)list->n_codes + n > CC_CODELIST_MAX_CODES) {
        snprintf(errbuf, errlen, "codelist '%s': more than %u codes", list->name,
                 CC_CODELIST_MAX_CODES);
        return CC_ETOOBIG;
    }
    struct cc_query_code *merged = malloc(((size_t)list->n_codes + n) * sizeof *merged);
    if (!merged)
        return CC_ENOMEM;
    uint32_t k = 0;
    for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++) {
        for (uint32_t i = 0; i < list->n_codes; i++)
            if (list->codes[i].system == s)
                merged[k++] = list->codes[i];
        if (s == system)
            for (uint32_t i = 0; i < n; i++)
                merged[k++] = codes[i];
    }
    free((void *)list->codes);
    list->codes = merged;
    list->n_codes = k;
    list->system = 0;
    return 0;
}

int cc_codelists_add_csv(cc_codelists *codelists, const char *name, const char *data,
                         size_t len, int system, char *errbuf, size_t errlen)
{
    struct parse p = {.name = name, .errbuf = errbuf, .errlen = errlen, .row = 1,
                      .system = system,
                      .systems = (1u << CC_CODE_SNOMED) | (1u << CC_CODE_ICD10) |
                                 (1u << CC_CODE_OPCS4)};
    struct cc_codelist *list = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (!cc_codelists_name_valid(name)) {
        p.rc = CC_EINVAL;
        snprintf(errbuf, errlen,
                 "codelist '%.40s': not a codelist name (a-z, 0-9, '-', '_' and '.', at most %d)",
                 name, CC_CODELIST_NAME_BYTES - 1);
        goto fail;
    }
    if (system && !cc_query_system_name(system)) {
        p.rc = CC_EINVAL;
        snprintf(errbuf, errlen, "codelist '%s': unknown code system %d", name, system);
        goto fail;
    }
    bool exists;
    uint32_t at = find_position(codelists, name, &exists);
    parse_rows(&p, data, len);
    if (p.rc)
        goto fail;
    if (p.n_codes == 0) {
        parse_fail(&p, CC_EINVAL, "no codes");
        goto fail;
    }
    if (!system) {
        if (p.systems == (1u << CC_CODE_SNOMED))
            system = CC_CODE_SNOMED;
        else if (p.systems == (1u << CC_CODE_ICD10))
            system = CC_CODE_ICD10;
        else if (p.systems == (1u << CC_CODE_OPCS4))
            system = CC_CODE_OPCS4;
        else if ((system = system_from_name_suffix(name, p.systems)) != 0)
            ; /* "asthma_icd10": the name says which of the systems it fits */
        else {
            char text[48];
            cc_query_systems_text(p.systems, text, sizeof text);
            p.rc = CC_EINVAL;
            snprintf(errbuf, errlen,
                     "codelist '%s': every code fits %s, so the system is ambiguous; name the "
                     "file %s.icd10.csv or %s.opcs4.csv, or end its name in _icd10 or _opcs4",
                     name, text, name, name);
            goto fail;
        }
    }
    for (uint32_t i = 0; i < p.n_codes; i++) {
        p.codes[i].system = (uint8_t)system;
        /* the store keeps I10X as I10 */
        if (system == CC_CODE_ICD10 && strlen(p.codes[i].text) == 4 && p.codes[i].text[3] == 'X')
            p.codes[i].text[3] = '\0';
    }
    qsort(p.codes, p.n_codes, sizeof *p.codes, compare_codes);
    uint32_t unique = 0;
    for (uint32_t i = 0; i < p.n_codes; i++)
        if (unique == 0 || strcmp(p.codes[unique - 1].text, p.codes[i].text))
            p.codes[unique++] = p.codes[i];
    if (exists) {
        /* a list of another system under the same name joins it */
        p.rc = merge_into(codelists->lists[at], p.codes, unique, system, errbuf, errlen);
        if (p.rc)
            goto fail;
        free(p.codes);
        return 0;
    }

    list = calloc(1, sizeof *list);
    if (!list) {
        p.rc = CC_ENOMEM;
        goto fail;
    }
    snprintf(list->name, sizeof list->name, "%s", name);
    list->system = (uint8_t)system;
    list->n_codes = unique;
    list->codes = p.codes;
    p.codes = NULL;
    if (cc_array_reserve(&codelists->lists, &codelists->capacity,
                         (size_t)codelists->n_lists + 1, sizeof *codelists->lists)) {
        p.rc = CC_ENOMEM;
        goto fail;
    }
    memmove(codelists->lists + at + 1, codelists->lists + at,
            (size_t)(codelists->n_lists - at) * sizeof *codelists->lists);
    codelists->lists[at] = list;
    codelists->n_lists++;
    return 0;
fail:
    codelist_free(list);
    free(p.codes);
    return p.rc ? p.rc : CC_EINTERNAL;
}

/* Reads a whole small file into a malloc'd buffer the caller frees. */
static int read_file(const char *path, char **out, size_t *out_len)
{
    int rc = 0;
    char *data = NULL;
    int fd = cc_csv_open_file(path, NULL); /* fopen would wait on a FIFO for a writer */
    if (fd < 0)
        return CC_EIO;
    FILE *file = fdopen(fd, "rb");
    if (!file) {
        close(fd);
        return CC_EIO;
    }
    struct stat st;
    if (fstat(fileno(file), &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = CC_EIO;
        goto fail;
    }
    if ((uint64_t)st.st_size > CODELIST_MAX_FILE_BYTES) {
        rc = CC_ETOOBIG;
        goto fail;
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data) {
        rc = CC_ENOMEM;
        goto fail;
    }
    size_t len = fread(data, 1, (size_t)st.st_size, file);
    if (len != (size_t)st.st_size || ferror(file)) {
        rc = CC_EIO;
        goto fail;
    }
    fclose(file);
    *out = data;
    *out_len = len;
    return 0;
fail:
    free(data);
    fclose(file);
    return rc;
}

int cc_codelists_load_file(cc_codelists *codelists, const char *name, const char *path,
                           int system, char *errbuf, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    int rc = read_file(path, &data, &len);
    if (rc) {
        snprintf(errbuf, errlen, "%s: %s", path,
                 rc == CC_ETOOBIG ? "larger than a codelist may be" : cc_strerror(rc));
        return rc;
    }
    char inner[384];
    rc = cc_codelists_add_csv(codelists, name, data, len, system, inner, sizeof inner);
    if (rc && errbuf && errlen)
        snprintf(errbuf, errlen, "%s: %s", path, inner);
    free(data);
    return rc;
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cc_codelists_load_dir(cc_codelists *codelists, const char *dir, char *errbuf,
                          size_t errlen)
{
    int rc = 0;
    char **names = NULL;
    if (errbuf && errlen)
        errbuf[0] = '\0';
    size_t n_names = 0, capacity = 0;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(errbuf, errlen, "%s: cannot open the codelist directory", dir);
        return CC_EIO;
    }
    struct dirent *entry;
    while ((entry = readdir(d))) {
        size_t len = strlen(entry->d_name);
        if (len <= 4 || strcmp(entry->d_name + len - 4, ".csv") || entry->d_name[0] == '.')
            continue;
        if (cc_array_reserve(&names, &capacity, n_names + 1, sizeof *names)) {
            rc = CC_ENOMEM;
            goto out;
        }
        names[n_names] = strdup(entry->d_name);
        if (!names[n_names]) {
            rc = CC_ENOMEM;
            goto out;
        }
        n_names++;
    }
    if (n_names)
        qsort(names, n_names, sizeof *names, compare_strings);
    for (size_t i = 0; i < n_names; i++) {
        char stem[CC_CODELIST_NAME_BYTES + 16];
        size_t len = strlen(names[i]) - 4;
        if (len >= sizeof stem) {
            snprintf(errbuf, errlen, "%s/%s: the name is too long for a codelist", dir, names[i]);
            rc = CC_EINVAL;
            goto out;
        }
        memcpy(stem, names[i], len);
        stem[len] = '\0';
        int system = 0;
        char *dot = strrchr(stem, '.');
        if (dot) {
            for (int s = CC_CODE_SNOMED; s <= CC_CODE_OPCS4; s++)
                if (!strcmp(dot + 1, cc_query_system_name(s))) {
                    system = s;
                    *dot = '\0';
                }
        }
        size_t path_len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(path_len);
        if (!path) {
            rc = CC_ENOMEM;
            goto out;
        }
        snprintf(path, path_len, "%s/%s", dir, names[i]);
        rc = cc_codelists_load_file(codelists, stem, path, system, errbuf, errlen);
        free(path);
        if (rc)
            goto out;
    }
out:
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    closedir(d);
    if (rc == CC_ENOMEM && errbuf && errlen && !errbuf[0])
        snprintf(errbuf, errlen, "%s: out of memory", dir);
    return rc;
}
