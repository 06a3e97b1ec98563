/*
 * cc_ingest_areas.c: the reference data of the ingest stage: area names and
 * the hierarchy (areas.csv), the postcode lookup (postcodes.csv) and the
 * population denominators (population.csv). See docs/data-formats.md.
 *
 * The hierarchy must be strict (LSOA -> district -> ICB -> region); an area
 * whose parent is unknown, a postcode whose district, ICB or region disagrees
 * with its LSOA's, and a malformed row are rejected with their line.
 *
 * This is public reference data: nothing here is about a person.
 */
#include "cc_ingest_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cc_ageband.h"
#include "cc_array.h"
#include "cc_error.h"
#include "cc_model.h"
#include "cc_validate.h"

struct area {
    char code[CC_AREA_CODE_BYTES];
    char parent[CC_AREA_CODE_BYTES];
    char *name;
    uint64_t line;
    uint32_t parent_index;
};

struct level {
    struct area *areas;
    uint32_t n;
    size_t cap;
};

static int area_cmp(const void *a, const void *b)
{
    return strcmp(((const struct area *)a)->code, ((const struct area *)b)->code);
}

static int64_t level_find(const struct level *l, const char *code)
{
    uint32_t lo = 0, hi = l->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->areas[mid].code, code);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Checks an ONS code: prefix + 6 digits. prefixes is a list of 3-char
 * prefixes separated by '|'. */
static int ons_code_ok(const char *s, size_t len, const char *prefixes)
{
    if (len != 9)
        return 0;
    for (size_t i = 3; i < 9; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    for (const char *p = prefixes; *p; p += p[3] ? 4 : 3)
        if (!memcmp(s, p, 3))
            return 1;
    return 0;
}

static const char *const level_names[] = {"lsoa", "lad", "icb", "region"};
static const char *const level_prefixes[] = {"E01", "E06|E07|E08|E09", "E54", "E12"};

static void free_levels(struct level levels[4])
{
    for (int l = 0; l < 4; l++) {
        for (uint32_t i = 0; i < levels[l].n; i++)
            free(levels[l].areas[i].name);
        free(levels[l].areas);
    }
}

static int read_areas(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed,
                      struct level levels[4])
{
    static const char *const names[] = {"code", "name", "level", "parent_code"};
    cc_csv *csv = NULL;
    int cols[4];
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, 4, cols)) < 0)
        goto out;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {
        int level = -1;
        for (int l = 0; l < 4; l++)
            if (f[cols[2]].len == strlen(level_names[l]) &&
                !memcmp(f[cols[2]].data, level_names[l], f[cols[2]].len))
                level = l;
        const struct cc_csv_field *code = &f[cols[0]], *parent = &f[cols[3]];
        if (level < 0 || !ons_code_ok(code->data, code->len, level_prefixes[level]) ||
            (level < 3 && !ons_code_ok(parent->data, parent->len, level_prefixes[level + 1])) ||
            f[cols[1]].len > 200) {
            cc_ingest_reject(ctx, feed, line, CC_REJECT_AREA);
            continue;
        }
        struct level *l = &levels[level];
        if (cc_array_reserve(&l->areas, &l->cap, (size_t)l->n + 1, sizeof *l->areas)) {
            rc = CC_ENOMEM;
            goto out;
        }
        struct area *a = &l->areas[l->n];
        memset(a, 0, sizeof *a);
        memcpy(a->code, code->data, code->len);
        if (level < 3)
            memcpy(a->parent, parent->data, parent->len);
        a->name = strndup(f[cols[1]].data, f[cols[1]].len);
        if (!a->name) {
            rc = CC_ENOMEM;
            goto out;
        }
        a->line = line;
        l->n++;
        feed->rows_accepted++;
    }
    if (rc < 0)
        goto out;
    rc = 0;
out:
    cc_csv_close(csv);
    return rc;
}

/* Sorts each level, drops duplicates and orphans (rejecting their rows), and
 * resolves parent indices: regions first, so an orphan ICB also orphans its
 * districts and their LSOAs. */
static void resolve_hierarchy(struct cc_ingest_ctx *ctx, struct cc_feed_report *feed,
                              struct level levels[4])
{
    for (int level = 3; level >= 0; level--) {
        struct level *l = &levels[level];
        if (l->n) /* a level the file has no row of has no array (qsort wants one) */
            qsort(l->areas, l->n, sizeof *l->areas, area_cmp);
        uint32_t kept = 0;
        for (uint32_t i = 0; i < l->n; i++) {
            struct area *a = &l->areas[i];
            int ok = !(kept && !strcmp(l->areas[kept - 1].code, a->code));
            if (ok && level < 3) {
                int64_t parent = level_find(&levels[level + 1], a->parent);
                ok = parent >= 0;
                a->parent_index = (uint32_t)parent;
            }
            if (!ok) {
                cc_ingest_reject(ctx, feed, a->line, CC_REJECT_AREA);
                feed->rows_accepted--;
                free(a->name);
                continue;
            }
            l->areas[kept++] = *a;
        }
        l->n = kept;
    }
}

struct postcode_row {
    uint64_t key;
    uint16_t lsoa;
};

static int postcode_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct postcode_row *)a)->key, y = ((const struct postcode_row *)b)->key;
    return x < y ? -1 : x > y;
}

static int read_postcodes(struct cc_ingest_ctx *ctx, const char *path, struct cc_feed_report *feed,
                          const struct level levels[4], struct postcode_row **out, uint32_t *n_out)
{
    static const char *const names[] = {"pcds", "lsoa21cd", "lad23cd", "icb23cd", "rgn23cd"};
    cc_csv *csv = NULL;
    int cols[5];
    struct postcode_row *rows = NULL;
    uint32_t n = 0;
    size_t cap = 0;
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, 5, cols)) < 0)
        goto fail;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {
        char canonical[CC_POSTCODE_BYTES], code[CC_AREA_CODE_BYTES];
        size_t len = 0;
        if (cc_validate_postcode(f[cols[0]].data, f[cols[0]].len, canonical, &len) < 0) {
            cc_ingest_reject(ctx, feed, line, CC_REJECT_POSTCODE);
            continue;
        }
        /* The LSOA, and its district, ICB and region as the row states them. */
        int64_t index[4] = {-1, -1, -1, -1};
        int ok = 1;
        for (int l = 0; l < 4 && ok; l++) {
            const struct cc_csv_field *c = &f[cols[1 + l]];
            if (c->len != 9) {
                ok = 0;
                break;
            }
            memcpy(code, c->data, 9);
            code[9] = '\0';
            index[l] = level_find(&levels[l], code);
            ok = index[l] >= 0;
            if (ok && l > 0)
                ok = levels[l - 1].areas[index[l - 1]].parent_index == (uint32_t)index[l];
        }
        if (!ok) {
            cc_ingest_reject(ctx, feed, line, CC_REJECT_AREA);
            continue;
        }
        if (cc_array_reserve(&rows, &cap, (size_t)n + 1, sizeof *rows)) {
            rc = CC_ENOMEM;
            goto fail;
        }
        rows[n].key = cc_postcode_pack(canonical, len);
        rows[n].lsoa = (uint16_t)index[0];
        n++;
        feed->rows_accepted++;
    }
    if (rc < 0)
        goto fail;
    qsort(rows, n, sizeof *rows, postcode_cmp);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (kept && rows[kept - 1].key == rows[i].key) {
            /* the same postcode twice: the first row stands */
            feed->rows_accepted--;
            feed->rows_duplicate++;
            continue;
        }
        rows[kept++] = rows[i];
    }
    *out = rows;
    *n_out = kept;
    cc_csv_close(csv);
    return 0;
fail:
    free(rows);
    cc_csv_close(csv);
    return rc;
}

static int read_population(struct cc_ingest_ctx *ctx, const char *path,
                           struct cc_feed_report *feed, const struct level *lsoas,
                           uint32_t *population)
{
    static const char *const names[] = {"lsoa21cd", "sex", "age_band", "population"};
    cc_csv *csv = NULL;
    int cols[4];
    int rc = cc_ingest_open_feed(ctx, path, &csv);
    if (rc < 0)
        return rc;
    if ((rc = cc_ingest_map_columns(ctx, csv, path, names, 4, cols)) < 0)
        goto out;
    const struct cc_csv_field *f;
    uint64_t line;
    while ((rc = cc_ingest_next_row(ctx, csv, feed, &f, &line)) > 0) {
        char code[CC_AREA_CODE_BYTES] = {0};
        int64_t lsoa = -1;
        if (f[cols[0]].len == 9) {
            memcpy(code, f[cols[0]].data, 9);
            lsoa = level_find(lsoas, code);
        }
        int sex = f[cols[1]].len == 1 ? f[cols[1]].data[0] - '0' : -1;
        int band = cc_ageband_from_name(f[cols[2]].data, f[cols[2]].len);
        uint64_t value = 0;
        int ok = lsoa >= 0 && (sex == 1 || sex == 2) && band >= 0 && f[cols[3]].len > 0 &&
                 f[cols[3]].len <= 8;
        for (size_t i = 0; ok && i < f[cols[3]].len; i++) {
            char c = f[cols[3]].data[i];
            ok = c >= '0' && c <= '9';
            value = value * 10 + (uint64_t)(c - '0');
        }
        if (!ok) {
            cc_ingest_reject(ctx, feed, line, CC_REJECT_POPULATION);
            continue;
        }
        population[((uint64_t)lsoa * 2 + (uint64_t)(sex - 1)) * CC_N_AGE_BANDS_5Y + (uint64_t)band] =
            (uint32_t)value;
        feed->rows_accepted++;
    }
    if (rc < 0)
        goto out;
    rc = 0;
out:
    cc_csv_close(csv);
    return rc;
}

int cc_ingest_areas(struct cc_ingest_ctx *ctx, const char *areas_path, struct cc_feed_report *areas,
                    const char *postcodes_path, struct cc_feed_report *postcodes,
                    const char *population_path, struct cc_feed_report *population_feed,
                    char *errbuf, size_t errlen)
{
    struct level levels[4] = {{0}};
    struct postcode_row *rows = NULL;
    uint32_t n_rows = 0;
    uint32_t *population = NULL;
    char(*codes[4])[CC_AREA_CODE_BYTES] = {NULL};
    const char **names[4] = {NULL};
    uint16_t *parents[3] = {NULL};
    uint64_t *keys = NULL;
    uint16_t *key_lsoa = NULL;
    int rc;

    if (!areas_path || !postcodes_path || !population_path) {
        snprintf(errbuf, errlen,
                 "the area reference data comes as three files together: areas.csv, "
                 "postcodes.csv and population.csv");
        return CC_EINVAL;
    }
    if ((rc = read_areas(ctx, areas_path, areas, levels)) < 0)
        goto out;
    resolve_hierarchy(ctx, areas, levels);
    if (levels[0].n == 0 || levels[0].n > UINT16_MAX - 1 || levels[1].n > UINT16_MAX ||
        levels[2].n > UINT16_MAX) {
        snprintf(errbuf, errlen, "%s: %u LSOAs usable (need 1 to 65534)", areas_path,
                 levels[0].n);
        rc = CC_EINVAL;
        goto out;
    }
    if ((rc = read_postcodes(ctx, postcodes_path, postcodes, levels, &rows, &n_rows)) < 0)
        goto out;
    population = calloc((size_t)levels[0].n * 2 * CC_N_AGE_BANDS_5Y, sizeof *population);
    if (!population) {
        rc = CC_ENOMEM;
        goto out;
    }
    if ((rc = read_population(ctx, population_path, population_feed, &levels[0], population)) < 0)
        goto out;

    struct cc_area_input in = {0};
    uint32_t *counts[4] = {&in.n_lsoa, &in.n_lad, &in.n_icb, &in.n_region};
    for (int l = 0; l < 4; l++) {
        *counts[l] = levels[l].n;
        codes[l] = calloc(levels[l].n + 1, sizeof *codes[l]);
        names[l] = calloc(levels[l].n + 1, sizeof *names[l]);
        if (!codes[l] || !names[l]) {
            rc = CC_ENOMEM;
            goto out;
        }
        for (uint32_t i = 0; i < levels[l].n; i++) {
            memcpy(codes[l][i], levels[l].areas[i].code, CC_AREA_CODE_BYTES);
            names[l][i] = levels[l].areas[i].name;
        }
        if (l < 3) {
            parents[l] = calloc(levels[l].n + 1, sizeof *parents[l]);
            if (!parents[l]) {
                rc = CC_ENOMEM;
                goto out;
            }
            for (uint32_t i = 0; i < levels[l].n; i++)
                parents[l][i] = (uint16_t)levels[l].areas[i].parent_index;
        }
    }
    keys = malloc(((size_t)n_rows + 1) * sizeof *keys);
    key_lsoa = malloc(((size_t)n_rows + 1) * sizeof *key_lsoa);
    if (!keys || !key_lsoa) {
        rc = CC_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; i < n_rows; i++) {
        keys[i] = rows[i].key;
        key_lsoa[i] = rows[i].lsoa;
    }
    in.lsoa_code = (const char(*)[CC_AREA_CODE_BYTES])codes[0];
    in.lad_code = (const char(*)[CC_AREA_CODE_BYTES])codes[1];
    in.icb_code = (const char(*)[CC_AREA_CODE_BYTES])codes[2];
    in.region_code = (const char(*)[CC_AREA_CODE_BYTES])codes[3];
    in.lsoa_name = names[0];
    in.lad_name = names[1];
    in.icb_name = names[2];
    in.region_name = names[3];
    in.lsoa_lad = parents[0];
    in.lad_icb = parents[1];
    in.icb_region = parents[2];
    in.population = population;
    in.n_postcodes = n_rows;
    in.postcode_key = keys;
    in.postcode_lsoa = key_lsoa;
    if ((rc = cc_store_builder_set_areas(ctx->builder, &in)) < 0)
        snprintf(errbuf, errlen, "the area lookup was refused by the store (%s)", cc_strerror(rc));
out:
    if (rc < 0 && !errbuf[0])
        snprintf(errbuf, errlen, "%s", ctx->error[0] ? ctx->error : cc_strerror(rc));
    for (int l = 0; l < 4; l++) {
        free(codes[l]);
        free(names[l]);
    }
    for (int l = 0; l < 3; l++)
        free(parents[l]);
    free(keys);
    free(key_lsoa);
    free(population);
    free(rows);
    free_levels(levels);
    return rc;
}
