#include "notify.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sock.h"
#include "util.h"

int notify_listen(struct notify_server *n, berth_error *e) {
  for (size_t i = 0; i < NOTIFY_MAX_CLIENTS; i++) n->client[i] = -1;
  n->listen_fd = sock_listen(NOTIFY_SOCKET, e);
  return n->listen_fd < 0 ? -1 : 0;
}

int notify_accept(struct notify_server *n) {
  for (;;) {
    int fd = sock_accept(n->listen_fd);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return -1;
    }
    for (int i = 0; i < NOTIFY_MAX_CLIENTS; i++) {
      if (n->client[i] < 0) {
        n->client[i] = fd;
        return i;
      }
    }
    close(fd);
  }
}

int notify_client_event(struct notify_server *n, int slot) {
  char buf[256];
  for (;;) {
    ssize_t r = read(n->client[slot], buf, sizeof buf);
    if (r > 0) continue;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return 0;
    close(n->client[slot]);
    n->client[slot] = -1;
    return 1;
  }
}

static void send_line(int fd, const char *line, size_t len) {
  /* A line this short fits an empty socket buffer: one send, no waiting. */
  (void)send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  close(fd);
}

void notify_send_all(struct notify_server *n, const char *line, size_t len) {
  /* No new clients from here on (they find exit.json instead); the ones
   * already queued on the listener get the line too. */
  unlink(NOTIFY_SOCKET);
  if (n->listen_fd >= 0) {
    int fd;
    while ((fd = sock_accept(n->listen_fd)) >= 0 || errno == EINTR || errno == ECONNABORTED)
      if (fd >= 0) send_line(fd, line, len);
  }
  for (size_t i = 0; i < NOTIFY_MAX_CLIENTS; i++) {
    if (n->client[i] < 0) continue;
    send_line(n->client[i], line, len);
    n->client[i] = -1;
  }
  if (n->listen_fd >= 0) close(n->listen_fd);
  n->listen_fd = -1;
}
