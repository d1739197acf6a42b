#include "terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

int terminal_receive_master(int listen_fd, berth_error *e) {
  cleanup_fd int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return berth_fail_errno(e, "accept on console socket");
  /* The runtime sends right after connecting; don't hang on one that doesn't. */
  struct pollfd p = {.fd = conn, .events = POLLIN};
  int r;
  while ((r = poll(&p, 1, 10000)) < 0 && errno == EINTR) {}
  if (r == 0) return berth_fail(e, ETIMEDOUT, "receive pty master on console socket");
  char name[256];
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name};
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n;
  while ((n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
  if (n < 0) return berth_fail_errno(e, "receive pty master on console socket");
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
    return berth_fail(e, EBADMSG, "console socket message carries no pty master");
  int master;
  memcpy(&master, CMSG_DATA(c), sizeof master);
  int fl = fcntl(master, F_GETFL);
  if (fl < 0 || fcntl(master, F_SETFL, fl | O_NONBLOCK) < 0) {
    int saved = errno;
    close(master);
    return berth_fail(e, saved, "set pty master non-blocking");
  }
  return master;
}

int terminal_resize(int master, unsigned short rows, unsigned short cols, berth_error *e) {
  struct winsize ws = {.ws_row = rows, .ws_col = cols};
  if (ioctl(master, TIOCSWINSZ, &ws) < 0) return berth_fail_errno(e, "resize pty to %ux%u", rows, cols);
  return 0;
}
