/* RFC 3339 timestamps with nanoseconds, UTC, as Docker's logs carry them. */
#ifndef BERTH_SHIM_TIMEFMT_H
#define BERTH_SHIM_TIMEFMT_H

#include <stddef.h>
#include <time.h>

#define TIMEFMT_LEN 40 /* "2006-01-02T15:04:05.123456789Z" + NUL, with room */

/* Writes ts (CLOCK_REALTIME) as "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ"; returns the length.
 * Nine fraction digits always, so the strings sort as the times do. */
size_t timefmt_rfc3339nano(const struct timespec *ts, char out[TIMEFMT_LEN]);

#endif
