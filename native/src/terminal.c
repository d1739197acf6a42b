#include "terminal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "util.h"

int terminal_open(json_t *process, int *master, char slave_path[PATH_MAX], berth_error *e) {
  int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (m < 0) return berth_fail_errno(e, "terminal: open /dev/ptmx in the container");
  int unlock = 0;
  if (ioctl(m, TIOCSPTLCK, &unlock) < 0) {
    int saved = errno;
    close(m);
    return berth_fail(e, saved, "terminal: unlock pty");
  }
  int n;
  if (ioctl(m, TIOCGPTN, &n) < 0) {
    int saved = errno;
    close(m);
    return berth_fail(e, saved, "terminal: pty number");
  }
  snprintf(slave_path, PATH_MAX, "/dev/pts/%d", n);
  json_t *size = json_object_get(process, "consoleSize");
  if (size) {
    struct winsize ws = {.ws_row = (unsigned short)json_integer_value(json_object_get(size, "height")),
                         .ws_col = (unsigned short)json_integer_value(json_object_get(size, "width"))};
    ioctl(m, TIOCSWINSZ, &ws);
  }
  *master = m;
  return 0;
}

int terminal_make_stdio(const char *slave_path, berth_error *e) {
  cleanup_fd int s = open(slave_path, O_RDWR | O_CLOEXEC);
  if (s < 0) return berth_fail_errno(e, "terminal: open '%s'", slave_path);
  if (ioctl(s, TIOCSCTTY, 0) < 0) return berth_fail_errno(e, "terminal: make '%s' the controlling terminal", slave_path);
  for (int fd = 0; fd < 3; fd++)
    if (dup2(s, fd) < 0) return berth_fail_errno(e, "terminal: dup2 onto fd %d", fd);
  return 0;
}

int terminal_connect_socket(const char *path, berth_error *e) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return berth_fail(e, ENAMETOOLONG, "--console-socket '%s'", path);
  strcpy(addr.sun_path, path);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return berth_fail_errno(e, "--console-socket: socket");
  if (connect(s, (struct sockaddr *)&addr, sizeof addr) < 0) {
    int saved = errno;
    close(s);
    return berth_fail(e, saved, "--console-socket: connect to '%s'", path);
  }
  return s;
}

int terminal_send_master(int sock, int master, berth_error *e) {
  char name[] = "/dev/ptmx";
  struct iovec iov = {.iov_base = name, .iov_len = sizeof name - 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &master, sizeof master);
  if (sendmsg(sock, &mh, MSG_NOSIGNAL) < 0) return berth_fail_errno(e, "--console-socket: send the pty master");
  return 0;
}

static struct termios saved_tio;
static int saved_tio_ok;

void terminal_raw_end(void) {
  if (saved_tio_ok) tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
  saved_tio_ok = 0;
}

void terminal_copy_winsize(int master) {
  struct winsize ws;
  if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

void terminal_raw_begin(int master) {
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
    struct termios raw = saved_tio;
    cfmakeraw(&raw);
    tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    saved_tio_ok = 1;
    atexit(terminal_raw_end);
    terminal_copy_winsize(master);
  }
}
