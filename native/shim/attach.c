#include "attach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sock.h"
#include "util.h"

int attach_listen(struct attach_server *a, bool raw_output, berth_error *e) {
  memset(a, 0, sizeof *a);
  a->raw_output = raw_output;
  for (size_t i = 0; i < ATTACH_MAX_CLIENTS; i++) a->c[i].fd = -1;
  a->listen_fd = sock_listen(ATTACH_SOCKET, e);
  return a->listen_fd < 0 ? -1 : 0;
}

int attach_accept(struct attach_server *a) {
  for (;;) {
    int fd = sock_accept(a->listen_fd);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -1;
    }
    for (int i = 0; i < ATTACH_MAX_CLIENTS; i++) {
      if (a->c[i].fd < 0) {
        memset(&a->c[i], 0, sizeof a->c[i]);
        a->c[i].fd = fd;
        return i;
      }
    }
    close(fd);
  }
}

static void end_input(struct attach_client *c, const struct attach_ops *ops) {
  if (c->input_done) return;
  c->input_done = true;
  if (ops->stdin_once) ops->close_stdin(ops->ctx);
}

void attach_drop(struct attach_server *a, int slot, const struct attach_ops *ops) {
  struct attach_client *c = &a->c[slot];
  if (c->fd < 0) return;
  end_input(c, ops);
  close(c->fd);
  free(c->backlog);
  memset(c, 0, sizeof *c);
  c->fd = -1;
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Feeds received bytes through the frame parser; false on a protocol error. */
static bool parse_input(struct attach_client *c, const char *buf, size_t len, const struct attach_ops *ops) {
  while (len > 0) {
    if (c->hdr_len < sizeof c->hdr) {
      size_t take = sizeof c->hdr - c->hdr_len < len ? sizeof c->hdr - c->hdr_len : len;
      memcpy(c->hdr + c->hdr_len, buf, take);
      c->hdr_len += take, buf += take, len -= take;
      if (c->hdr_len < sizeof c->hdr) return true;
      c->remain = be32(c->hdr + 4);
      c->ctl_len = 0;
      switch (c->hdr[0]) {
        case ATTACH_STDIN: break;
        case ATTACH_RESIZE: if (c->remain != 4) return false; break;
        case ATTACH_CLOSE_STDIN: if (c->remain != 0) return false; break;
        default: return false;
      }
    }
    size_t take = c->remain < len ? c->remain : len;
    if (c->hdr[0] == ATTACH_STDIN && take) ops->input(ops->ctx, buf, take);
    if (c->hdr[0] == ATTACH_RESIZE) memcpy(c->ctl + c->ctl_len, buf, take), c->ctl_len += take;
    c->remain -= (uint32_t)take, buf += take, len -= take;
    if (c->remain == 0) {
      if (c->hdr[0] == ATTACH_RESIZE)
        ops->resize(ops->ctx, (unsigned short)(c->ctl[0] << 8 | c->ctl[1]), (unsigned short)(c->ctl[2] << 8 | c->ctl[3]));
      if (c->hdr[0] == ATTACH_CLOSE_STDIN) ops->close_stdin(ops->ctx);
      c->hdr_len = 0;
    }
  }
  return true;
}

void attach_client_readable(struct attach_server *a, int slot, const struct attach_ops *ops) {
  struct attach_client *c = &a->c[slot];
  char buf[4096];
  /* One read per wakeup keeps a chatty client from starving the output. */
  ssize_t n = read(c->fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n < 0) return attach_drop(a, slot, ops);
  if (n == 0) return end_input(c, ops);
  if (!parse_input(c, buf, (size_t)n, ops)) attach_drop(a, slot, ops);
}

static bool backlog_add(struct attach_client *c, const char *data, size_t len) {
  if (c->backlog_len + len > ATTACH_BACKLOG_MAX) return false;
  if (c->backlog_len + len > c->backlog_cap) {
    size_t cap = c->backlog_cap ? c->backlog_cap : 4096;
    while (cap < c->backlog_len + len) cap *= 2;
    char *b = realloc(c->backlog, cap);
    if (!b) return false;
    c->backlog = b, c->backlog_cap = cap;
  }
  memcpy(c->backlog + c->backlog_len, data, len);
  c->backlog_len += len;
  return true;
}

void attach_client_writable(struct attach_server *a, int slot, const struct attach_ops *ops) {
  struct attach_client *c = &a->c[slot];
  if (c->backlog_len == 0) return;
  ssize_t n = send(c->fd, c->backlog, c->backlog_len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n < 0) return attach_drop(a, slot, ops);
  memmove(c->backlog, c->backlog + n, c->backlog_len - (size_t)n);
  c->backlog_len -= (size_t)n;
  if (c->backlog_len == 0) {
    free(c->backlog);
    c->backlog = NULL, c->backlog_cap = 0;
  }
}

void attach_broadcast(struct attach_server *a, int stream, const char *data, size_t len,
                      const struct attach_ops *ops) {
  unsigned char hdr[8] = {(unsigned char)stream, 0, 0, 0, (unsigned char)(len >> 24),
                          (unsigned char)(len >> 16), (unsigned char)(len >> 8), (unsigned char)len};
  struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, len}};
  struct iovec *v = a->raw_output ? iov + 1 : iov;
  size_t nv = a->raw_output ? 1 : 2;
  size_t total = a->raw_output ? len : len + sizeof hdr;
  for (int i = 0; i < ATTACH_MAX_CLIENTS; i++) {
    struct attach_client *c = &a->c[i];
    if (c->fd < 0) continue;
    size_t sent = 0;
    if (c->backlog_len == 0) {
      struct msghdr m = {.msg_iov = v, .msg_iovlen = nv};
      ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        attach_drop(a, i, ops);
        continue;
      }
      sent = n < 0 ? 0 : (size_t)n;
    }
    if (sent == total) continue;
    /* Queue the rest, header bytes first, so frames stay whole. */
    bool ok = true;
    if (!a->raw_output && sent < sizeof hdr) {
      ok = backlog_add(c, (const char *)hdr + sent, sizeof hdr - sent);
      sent = sizeof hdr;
    }
    size_t off = a->raw_output ? sent : sent - sizeof hdr;
    if (ok) ok = backlog_add(c, data + off, len - off);
    if (!ok) attach_drop(a, i, ops);
  }
}

void attach_close_all(struct attach_server *a) {
  unlink(ATTACH_SOCKET);
  for (int i = 0; i < ATTACH_MAX_CLIENTS; i++) {
    struct attach_client *c = &a->c[i];
    if (c->fd < 0) continue;
    if (c->backlog_len) {
      /* Blocking from here, bounded by the send timeout. */
      struct timeval tv = {.tv_sec = 1};
      setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      int fl = fcntl(c->fd, F_GETFL);
      if (fl >= 0) fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
      size_t off = 0;
      while (off < c->backlog_len) {
        ssize_t n = send(c->fd, c->backlog + off, c->backlog_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        off += (size_t)n;
      }
    }
    close(c->fd);
    free(c->backlog);
    c->fd = -1;
  }
  if (a->listen_fd >= 0) close(a->listen_fd);
  a->listen_fd = -1;
}
