/* The container's log: Docker json-file lines
 *   {"log":"text\n","stream":"stdout","time":"2026-11-22T20:00:00.123456789Z"}
 * one per output line; a line longer than LOG_LINE_MAX, or one still open
 * when its stream ends, is written as a partial record without the "\n".
 * Size-based rotation: before a record would push the file past max_size it
 * becomes path.1 (path.1 becomes path.2, ...) and max_files files are kept. */
#ifndef BERTH_SHIM_LOG_H
#define BERTH_SHIM_LOG_H

#include <stddef.h>
#include <time.h>

#include "error.h"

#define LOG_LINE_MAX 16384 /* Docker's split size for long lines */

enum log_stream { LOG_STDOUT = 0, LOG_STDERR = 1 };

struct shim_log {
  int fd; /* -1: no log file, input is dropped */
  const char *path;
  unsigned long long max_size, size;
  unsigned max_files;
  size_t line_len[2]; /* bytes of an unfinished line per stream, in line_buf */
  char *line_buf[2];  /* LOG_LINE_MAX each: static buffers of log.c, whose pages
                       * are touched only when a line has to wait for its end
                       * (a container printing whole lines never touches them) */
};

/* Opens (appends to) path; path NULL gives a log that drops everything.
 * One log per process: the line buffers are log.c's. */
int log_open(struct shim_log *l, const char *path, unsigned long long max_size, unsigned max_files,
             berth_error *e);
/* Takes output of one stream read at time ts; writes every completed line. */
int log_feed(struct shim_log *l, enum log_stream s, const char *data, size_t len,
             const struct timespec *ts, berth_error *e);
/* Writes what is left of an unfinished line (the stream ended). */
int log_flush(struct shim_log *l, enum log_stream s, const struct timespec *ts, berth_error *e);
void log_close(struct shim_log *l);

#endif
