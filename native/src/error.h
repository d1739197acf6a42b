/* One error convention for the whole runtime: a function that fails returns
 * a negative value and fills a berth_error with errno and a message naming
 * the object; callers prepend context as it travels up; main prints it once. */
#ifndef BERTH_ERROR_H
#define BERTH_ERROR_H

#include <stddef.h>

typedef struct berth_error {
  int errnum;      /* errno of the failing syscall, 0 for a validation error */
  char msg[4096];  /* "context: ...: object: strerror" */
} berth_error;

/* Records a failure. If errnum != 0, ": strerror(errnum)" is appended.
 * Always returns -1 so callers can `return berth_fail(...)`. */
int berth_fail(berth_error *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A failure of our own making (validation, state): records errnum for
 * callers that branch on it but appends no strerror text. */
int berth_fail_msg(berth_error *e, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like berth_fail with errno as it is now. */
int berth_fail_errno(berth_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prepends "context: " to an already recorded error; returns -1. */
int berth_wrap(berth_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void berth_error_clear(berth_error *e);

#endif
