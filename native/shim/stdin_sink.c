#include "stdin_sink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <termios.h>
#include <unistd.h>

static void discard(struct stdin_sink *s) {
  free(s->pending);
  s->pending = NULL;
  s->len = s->cap = 0;
}

static void really_close(struct stdin_sink *s) {
  if (s->fd >= 0) {
    if (s->is_pty) {
      /* The pty is the container's output too: end input with the EOF
       * character (canonical mode) instead of closing it. */
      struct termios t;
      char eof = tcgetattr(s->fd, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
      if (write(s->fd, &eof, 1) < 0) { /* the container has gone: nothing to end */ }
    }
    if (s->epfd >= 0) epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
  }
  s->fd = -1;
  discard(s);
}

/* Writes from data; returns how much went, or -1 when the reader is gone. */
static ssize_t try_write(struct stdin_sink *s, const char *data, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = write(s->fd, data + done, len - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n < 0) return -1;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

void stdin_sink_write(struct stdin_sink *s, const char *data, size_t len) {
  if (s->fd < 0 || s->close_wanted || len == 0) return;
  size_t done = 0;
  if (s->len == 0) {
    ssize_t n = try_write(s, data, len);
    if (n < 0) return really_close(s); /* the container closed its stdin */
    done = (size_t)n;
  }
  if (done == len) return;
  size_t need = s->len + len - done;
  if (need > s->cap) {
    size_t cap = s->cap ? s->cap : 4096;
    while (cap < need) cap *= 2;
    char *p = realloc(s->pending, cap);
    if (!p) return; /* dropped: no memory to hold it */
    s->pending = p, s->cap = cap;
  }
  memcpy(s->pending + s->len, data + done, len - done);
  s->len = need;
}

void stdin_sink_flush(struct stdin_sink *s) {
  if (s->fd < 0 || s->len == 0) return;
  ssize_t n = try_write(s, s->pending, s->len);
  if (n < 0) return really_close(s);
  memmove(s->pending, s->pending + n, s->len - (size_t)n);
  s->len -= (size_t)n;
  if (s->len == 0) {
    discard(s);
    if (s->close_wanted) really_close(s);
  }
}

void stdin_sink_close(struct stdin_sink *s) {
  if (s->fd < 0) return;
  if (s->len) s->close_wanted = true;
  else really_close(s);
}
