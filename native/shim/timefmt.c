#include "timefmt.h"

#include <stdio.h>

size_t timefmt_rfc3339nano(const struct timespec *ts, char out[TIMEFMT_LEN]) {
  struct tm tm;
  gmtime_r(&ts->tv_sec, &tm);
  int n = snprintf(out, TIMEFMT_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec);
  return n < 0 ? 0 : (size_t)n;
}
