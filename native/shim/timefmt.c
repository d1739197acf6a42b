#include "timefmt.h"

/* Formatted by hand: gmtime_r would load the time zone first (tzset reads
 * /etc/localtime through stdio and keeps it on the heap), and snprintf
 * takes a large stack frame: both for memory the shim would hold for its
 * whole life after the first log record. UTC needs no zone. */

static char *digits(char *p, long v, int width) {
  for (int i = width - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
  return p + width;
}

size_t timefmt_rfc3339nano(const struct timespec *ts, char out[TIMEFMT_LEN]) {
  long long secs = (long long)ts->tv_sec;
  long long days = secs / 86400, rem = secs % 86400;
  if (rem < 0) rem += 86400, days--;
  /* Proleptic Gregorian date of a day count from 1970-01-01, through eras
   * of 400 years (146097 days) that start on March 1st. */
  long long z = days + 719468;
  long long era = (z >= 0 ? z : z - 146096) / 146097;
  long long doe = z - era * 146097;                                    /* [0, 146096] */
  long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
  long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);             /* [0, 365] */
  long long mp = (5 * doy + 2) / 153;                                  /* [0, 11], March = 0 */
  long day = (long)(doy - (153 * mp + 2) / 5 + 1);
  long month = (long)(mp < 10 ? mp + 3 : mp - 9);
  long long year = yoe + era * 400 + (month <= 2);
  if (year < 0 || year > 9999) year = year < 0 ? 0 : 9999; /* RFC 3339 has four digits */
  char *p = out;
  p = digits(p, (long)year, 4), *p++ = '-';
  p = digits(p, month, 2), *p++ = '-';
  p = digits(p, day, 2), *p++ = 'T';
  p = digits(p, (long)(rem / 3600), 2), *p++ = ':';
  p = digits(p, (long)(rem / 60 % 60), 2), *p++ = ':';
  p = digits(p, (long)(rem % 60), 2), *p++ = '.';
  p = digits(p, ts->tv_nsec, 9), *p++ = 'Z';
  *p = '\0';
  return (size_t)(p - out);
}
