/*
 * cc_date.h: calendar dates as day numbers.
 *
 * carecount stores every date as a cc_day: the number of days since
 * 1900-01-01 (day 0) in the proleptic Gregorian calendar, held in 16 bits in
 * the columnar store, which covers 1900-01-01 to 2079-06-06. Dates outside
 * that span are rejected at ingest.
 */
#ifndef CC_DATE_H
#define CC_DATE_H

#include <stdint.h>
#include <stddef.h>

typedef int32_t cc_day;

#define CC_DAY_MIN 0      /* 1900-01-01 */
#define CC_DAY_MAX 65535  /* 2079-06-06 */

/* Returns the day number of a valid calendar date, or -1 if y/m/d is not a
 * real date in 1900..2079 (e.g. 2023-02-29). */
cc_day cc_day_from_ymd(int year, int month, int day);

/* Splits a day number into year, month (1-12) and day of month (1-31). */
void cc_day_to_ymd(cc_day d, int *year, int *month, int *day);

/* Parses exactly "YYYY-MM-DD" (len bytes, no terminator needed). Returns 0 and
 * sets *out, or CC_EPARSE for the wrong shape, CC_ERANGE for a date that does
 * not exist or lies outside the representable span. */
int cc_day_parse(const char *s, size_t len, cc_day *out);

/* Writes "YYYY-MM-DD" and a terminating NUL into buf (at least 11 bytes). */
void cc_day_format(cc_day d, char buf[11]);

/* Today's date (UTC) as a day number. */
cc_day cc_day_today(void);

/* Whole years of age on day `on` for a person born on day `born`
 * (birthdays on 29 February count from 1 March in non-leap years). */
int cc_age_on(cc_day born, cc_day on);

#endif
