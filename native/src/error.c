#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int vfail(berth_error *e, int errnum, const char *fmt, va_list ap) {
  int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof e->msg) n = (int)sizeof e->msg - 1;
  if (errnum != 0)
    snprintf(e->msg + n, sizeof e->msg - (size_t)n, ": %s", strerror(errnum));
  e->errnum = errnum;
  return -1;
}

int berth_fail(berth_error *e, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e, errnum, fmt, ap);
  va_end(ap);
  return -1;
}

int berth_fail_msg(berth_error *e, int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(e, 0, fmt, ap);
  va_end(ap);
  e->errnum = errnum;
  return -1;
}

int berth_fail_errno(berth_error *e, const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vfail(e, saved, fmt, ap);
  va_end(ap);
  return -1;
}

int berth_wrap(berth_error *e, const char *fmt, ...) {
  char prefix[1024];
  char old[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, e->msg, sizeof old);
  snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
  return -1;
}

void berth_error_clear(berth_error *e) {
  e->errnum = 0;
  e->msg[0] = '\0';
}
