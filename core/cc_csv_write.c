/*
 * cc_csv_write.c: the CSV writer and the record buffer of cc_csv.h, for the
 * tools that read CSV and write it back with columns added (`carecount
 * stats`).
 *
 * Fields that need quoting go through libcsv's csv_fwrite(); the others are
 * written as they are, so output round-trips through cc_csv's strict
 * reader and a plain field stays byte for byte what was read.
 *
 * Must never: log or keep a field beyond the record that holds it.
 */
#include "cc_csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "cc_array.h"
#include "cc_error.h"

int cc_csv_record_add(struct cc_csv_record *record, const char *data, size_t len)
{
    if (len > SIZE_MAX - 1 - record->used ||
        cc_array_reserve(&record->bytes, &record->capacity, record->used + len + 1, 1) ||
        cc_array_reserve(&record->offsets, &record->offsets_capacity, record->n_fields + 1,
                         sizeof *record->offsets))
        return CC_ENOMEM;
    record->offsets[record->n_fields++] = record->used;
    if (len)
        memcpy(record->bytes + record->used, data, len);
    record->bytes[record->used + len] = '\0';
    record->used += len + 1;
    return 0;
}

void cc_csv_record_clear(struct cc_csv_record *record)
{
    record->n_fields = 0;
    record->used = 0;
}

void cc_csv_record_free(struct cc_csv_record *record)
{
    free(record->bytes);
    free(record->offsets);
    memset(record, 0, sizeof *record);
}

/* 1 if a field must be quoted: RFC 4180's comma, quote and line breaks,
 * and a leading or trailing blank, which some readers would trim. */
static int needs_quotes(const char *data, size_t len)
{
    if (len && (data[0] == ' ' || data[len - 1] == ' '))
        return 1;
    for (size_t i = 0; i < len; i++)
        if (data[i] == ',' || data[i] == '"' || data[i] == '\n' || data[i] == '\r')
            return 1;
    return 0;
}

int cc_csv_write_field(FILE *out, const char *data, size_t len, int first)
{
    if (!first && fputc(',', out) == EOF)
        return CC_EIO;
    if (!needs_quotes(data, len))
        return len == 0 || fwrite(data, 1, len, out) == len ? 0 : CC_EIO;
    return csv_fwrite(out, data, len) == 0 ? 0 : CC_EIO;
}

int cc_csv_write_string(FILE *out, const char *s, int first)
{
    return cc_csv_write_field(out, s, strlen(s), first);
}

int cc_csv_write_number(FILE *out, double value, int first)
{
    if (!first && fputc(',', out) == EOF)
        return CC_EIO;
    if (isfinite(value) && fprintf(out, "%.12g", value) < 0)
        return CC_EIO;
    return 0;
}

int cc_csv_write_record(FILE *out, const struct cc_csv_record *record)
{
    for (size_t i = 0; i < record->n_fields; i++) {
        const char *field = cc_csv_record_field(record, i);
        int rc = cc_csv_write_field(out, field, strlen(field), i == 0);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int cc_csv_parse_number(const char *cell, double *out)
{
    char *end;
    if (!*cell)
        return CC_EPARSE;
    errno = 0;
    double v = strtod(cell, &end);
    if (end == cell || *end || errno == ERANGE || !isfinite(v))
        return CC_EPARSE;
    *out = v;
    return 0;
}
