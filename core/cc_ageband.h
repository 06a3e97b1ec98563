/*
 * cc_ageband.h: the 19 five-year age bands 0-4, 5-9, ..., 85-89 and 90+,
 * as ONS population estimates give them (the population feed, the store)
 * and as the 2013 European Standard Population weights them (cc_stats).
 *
 * One parser of band names for everything that reads them: the ingest of
 * the population feed and `carecount stats dsr`.
 */
#ifndef CC_AGEBAND_H
#define CC_AGEBAND_H

#include <stddef.h>

#include "cc_model.h"

/* Returns the band index (0..CC_N_AGE_BANDS_5Y - 1) for an age in whole
 * years (90 and over: the last band), or -1 for a negative age. */
int cc_ageband_of_age(int age_years);

/* Returns the band index of a band name in name[0..len): "L-H" with L a
 * multiple of 5 up to 85 and H = L + 4, or "90+"; the numbers are decimal
 * digits only, leading zeros allowed ("05-09"); nothing else (no sign, no
 * blank) may appear. -1 for anything else. name need not be NUL-terminated. */
int cc_ageband_from_name(const char *name, size_t len);

#endif
