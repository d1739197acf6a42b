#include "sock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

static int fill_addr(struct sockaddr_un *a, const char *name) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(name) >= sizeof a->sun_path) return -1;
  memcpy(a->sun_path, name, strlen(name) + 1);
  return 0;
}

int sock_listen(const char *name, berth_error *e) {
  struct sockaddr_un a;
  if (fill_addr(&a, name) < 0) return berth_fail(e, ENAMETOOLONG, "socket path '%s'", name);
  cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return berth_fail_errno(e, "create unix socket for '%s'", name);
  if (unlink(name) < 0 && errno != ENOENT) return berth_fail_errno(e, "remove stale socket '%s'", name);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) return berth_fail_errno(e, "bind '%s'", name);
  if (listen(fd, 16) < 0) return berth_fail_errno(e, "listen on '%s'", name);
  int ret = fd;
  fd = -1;
  return ret;
}

int sock_accept(int listen_fd) {
  return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

bool sock_is_live(const char *name) {
  struct sockaddr_un a;
  if (fill_addr(&a, name) < 0) return false;
  cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  return connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
}
