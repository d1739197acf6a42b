/* The container's stdin as fed by attach clients: the write end of a pipe,
 * or the pty master. Writes never block the shim: what the container does
 * not take yet waits in a buffer, and above STDIN_HIGH_WATER the monitor
 * stops reading attach clients until it drains. */
#ifndef BERTH_SHIM_STDIN_SINK_H
#define BERTH_SHIM_STDIN_SINK_H

#include <stdbool.h>
#include <stddef.h>

#define STDIN_HIGH_WATER (64u * 1024u)

struct stdin_sink {
  int fd;          /* non-blocking; -1 when closed or absent */
  int epfd;        /* epoll set the fd may be in: left before closing, since a
                    * pty's fd is a dup and closing it alone would not */
  bool is_pty;     /* closing means sending VEOF, the pty stays */
  bool close_wanted;
  char *pending;
  size_t len, cap;
};

void stdin_sink_write(struct stdin_sink *s, const char *data, size_t len);
/* Writes what the fd takes of the pending bytes (on EPOLLOUT). */
void stdin_sink_flush(struct stdin_sink *s);
/* EOF for the container, once the pending bytes are out. */
void stdin_sink_close(struct stdin_sink *s);
static inline bool stdin_sink_full(const struct stdin_sink *s) { return s->len >= STDIN_HIGH_WATER; }

#endif
