#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "timefmt.h"
#include "util.h"

/* Arrays, not pointers: nothing for the loader to relocate. */
static const char stream_names[][7] = {"stdout", "stderr"};

static int open_log_file(struct shim_log *l, berth_error *e) {
  l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (l->fd < 0) return berth_fail_errno(e, "open log '%s'", l->path);
  struct stat st;
  if (fstat(l->fd, &st) < 0) return berth_fail_errno(e, "stat log '%s'", l->path);
  l->size = (unsigned long long)st.st_size;
  return 0;
}

int log_open(struct shim_log *l, const char *path, unsigned long long max_size, unsigned max_files,
             berth_error *e) {
  static char line_bufs[2][LOG_LINE_MAX];
  l->line_buf[0] = line_bufs[0], l->line_buf[1] = line_bufs[1];
  l->fd = -1;
  l->path = path;
  l->max_size = max_size;
  l->max_files = max_files ? max_files : 1;
  l->size = 0;
  l->line_len[0] = l->line_len[1] = 0;
  if (!path) return 0;
  return open_log_file(l, e);
}

void log_close(struct shim_log *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

/* path.N, or path itself for N == 0. */
static int numbered(const struct shim_log *l, unsigned n, char out[PATH_MAX]) {
  int w = n ? snprintf(out, PATH_MAX, "%s.%u", l->path, n) : snprintf(out, PATH_MAX, "%s", l->path);
  return w < 0 || w >= PATH_MAX ? -1 : 0;
}

static int rotate(struct shim_log *l, berth_error *e) {
  if (l->max_files <= 1) {
    /* Nowhere to keep old records: start the file over. */
    if (ftruncate(l->fd, 0) < 0) return berth_fail_errno(e, "truncate log '%s'", l->path);
    l->size = 0;
    return 0;
  }
  char from[PATH_MAX], to[PATH_MAX];
  for (unsigned i = l->max_files - 1; i >= 1; i--) {
    if (numbered(l, i - 1, from) < 0 || numbered(l, i, to) < 0)
      return berth_fail(e, ENAMETOOLONG, "rotate log '%s'", l->path);
    if (rename(from, to) < 0 && errno != ENOENT)
      return berth_fail_errno(e, "rotate log: rename '%s' to '%s'", from, to);
  }
  log_close(l);
  return open_log_file(l, e);
}

/* Bytes a valid UTF-8 sequence starting at p takes (1-4), or 0 if the bytes
 * there are not one (bad lead, bad continuation, overlong, surrogate, > U+10FFFF,
 * or cut off by the end). */
static size_t utf8_seq(const unsigned char *p, size_t avail) {
  unsigned char c = p[0];
  size_t n;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
  else return 0;
  if (avail < n) return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
  if (cp >= 0xd800 && cp <= 0xdfff) return 0;
  return n;
}

/* JSON string escaping; invalid UTF-8 bytes become U+FFFD as in Docker.
 * A sink with fd -1 only counts. */
struct sink {
  int fd;
  size_t used;
  size_t total;
  bool failed;
  char buf[4000]; /* last, and the sink one aligned page: a short record touches one page */
};
#define SINK_ALIGN 4096
_Static_assert(sizeof(struct sink) <= SINK_ALIGN, "a sink fits one page");

static void sink_put(struct sink *k, const char *s, size_t n) {
  k->total += n;
  if (k->fd < 0) return;
  while (n > 0) {
    if (k->used == sizeof k->buf) {
      if (!k->failed && write_all(k->fd, k->buf, k->used) < 0) k->failed = true;
      k->used = 0;
    }
    size_t c = sizeof k->buf - k->used < n ? sizeof k->buf - k->used : n;
    memcpy(k->buf + k->used, s, c);
    k->used += c;
    s += c;
    n -= c;
  }
}

static void put_escaped(struct sink *k, const unsigned char *p, size_t len) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') i++;
    if (i > start) sink_put(k, (const char *)p + start, i - start);
    if (i >= len) break;
    unsigned char c = p[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      sink_put(k, esc, 2);
      i++;
    } else if (c < 0x20) {
      const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
      if (named) {
        sink_put(k, named, 2);
      } else {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4], esc[5] = hex[c & 15];
        sink_put(k, esc, 6);
      }
      i++;
    } else {
      size_t n = utf8_seq(p + i, len - i);
      if (n == 0) {
        sink_put(k, "\\ufffd", 6);
        i++;
      } else {
        sink_put(k, (const char *)p + i, n);
        i += n;
      }
    }
  }
}

static void put_record(struct sink *k, enum log_stream s, const char *text, size_t len,
                       const char *ts, size_t tslen) {
  sink_put(k, "{\"log\":\"", 8);
  put_escaped(k, (const unsigned char *)text, len);
  sink_put(k, "\",\"stream\":\"", 12);
  sink_put(k, stream_names[s], 6);
  sink_put(k, "\",\"time\":\"", 10);
  sink_put(k, ts, tslen);
  sink_put(k, "\"}\n", 3);
}

static int write_record(struct shim_log *l, enum log_stream s, const char *text, size_t len,
                        const struct timespec *ts, berth_error *e) {
  if (l->fd < 0 || len == 0) return 0;
  char tbuf[TIMEFMT_LEN];
  size_t tlen = timefmt_rfc3339nano(ts, tbuf);
  static _Alignas(SINK_ALIGN) struct sink k;
  k.fd = -1, k.total = 0, k.used = 0, k.failed = false;
  put_record(&k, s, text, len, tbuf, tlen);
  if (l->max_size && l->size > 0 && l->size + k.total > l->max_size && rotate(l, e) < 0) return -1;
  k.fd = l->fd, k.total = 0;
  put_record(&k, s, text, len, tbuf, tlen);
  if (!k.failed && k.used && write_all(k.fd, k.buf, k.used) < 0) k.failed = true;
  if (k.failed) return berth_fail_errno(e, "write log '%s'", l->path);
  l->size += k.total;
  return 0;
}

/* Length of the longest prefix of buf that does not end inside a UTF-8
 * sequence, so a split line keeps its characters whole. */
static size_t utf8_cut(const char *buf, size_t len) {
  size_t back = 0;
  while (back < 3 && back < len && ((unsigned char)buf[len - 1 - back] & 0xc0) == 0x80) back++;
  if (back == len) return len;
  const unsigned char *lead = (const unsigned char *)buf + len - 1 - back;
  size_t want = *lead >= 0xf0 ? 4 : *lead >= 0xe0 ? 3 : *lead >= 0xc0 ? 2 : 1;
  return want > back + 1 ? len - 1 - back : len;
}

int log_feed(struct shim_log *l, enum log_stream s, const char *data, size_t len,
             const struct timespec *ts, berth_error *e) {
  if (l->fd < 0) return 0;
  int rc = 0;
  char *buf = l->line_buf[s];
  size_t *used = &l->line_len[s];
  while (len > 0) {
    if (*used == 0) {
      /* Nothing waiting: a whole line is written from where it is. */
      const char *nl = memchr(data, '\n', len < LOG_LINE_MAX ? len : LOG_LINE_MAX);
      if (nl) {
        size_t take = (size_t)(nl - data) + 1;
        if (write_record(l, s, data, take, ts, e) < 0) rc = -1;
        data += take;
        len -= take;
        continue;
      }
    }
    size_t room = LOG_LINE_MAX - *used;
    const char *nl = memchr(data, '\n', len < room ? len : room);
    size_t take = nl ? (size_t)(nl - data) + 1 : (len < room ? len : room);
    memcpy(buf + *used, data, take);
    *used += take;
    data += take;
    len -= take;
    if (nl) {
      if (write_record(l, s, buf, *used, ts, e) < 0) rc = -1;
      *used = 0;
    } else if (*used == LOG_LINE_MAX) {
      size_t cut = utf8_cut(buf, *used);
      if (write_record(l, s, buf, cut, ts, e) < 0) rc = -1;
      memmove(buf, buf + cut, *used - cut);
      *used -= cut;
    }
  }
  return rc;
}

int log_flush(struct shim_log *l, enum log_stream s, const struct timespec *ts, berth_error *e) {
  size_t n = l->line_len[s];
  l->line_len[s] = 0;
  return write_record(l, s, l->line_buf[s], n, ts, e);
}
