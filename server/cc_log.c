/*
 * cc_log.c: timestamped log lines on stderr (see cc_log.h for what may be
 * logged).
 *
 * Must never: log request content or anything that identifies a person.
 */
#include "cc_log.h"

#include <stdarg.h>
#include <time.h>

void cc_log(const char *fmt, ...)
{
    char stamp[64] = "?";
    char line[1024];
    struct timespec now;
    struct tm utc;
    va_list args;

    if (clock_gettime(CLOCK_REALTIME, &now) == 0 && gmtime_r(&now.tv_sec, &utc)) {
        char seconds[24];
        if (strftime(seconds, sizeof(seconds), "%Y-%m-%dT%H:%M:%S", &utc) > 0)
            snprintf(stamp, sizeof(stamp), "%s.%03dZ", seconds, (int)(now.tv_nsec / 1000000) % 1000);
    }
    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    /* One fprintf per line so that lines from different threads do not mix. */
    fprintf(stderr, "%s carecountd: %s\n", stamp, line);
}
