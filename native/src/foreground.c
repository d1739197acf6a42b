#include "foreground.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "terminal.h"
#include "util.h"

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGCONT, SIGWINCH, SIGALRM};

static sigset_t watched(void) {
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < BERTH_ARRAY_LEN(forwarded); i++) sigaddset(&set, forwarded[i]);
  sigaddset(&set, SIGCHLD);
  return set;
}

int foreground_prepare(berth_error *e) {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) return berth_fail_errno(e, "become the container's subreaper");
  sigset_t set = watched();
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return berth_fail_errno(e, "block signals");
  return 0;
}

/* Reaps every child that exited; returns the status of pid once it has. */
static bool reap(pid_t pid, int *status) {
  bool done = false;
  for (;;) {
    int st;
    pid_t r = waitpid(-1, &st, WNOHANG);
    if (r <= 0) break;
    if (r == pid) {
      *status = st;
      done = true;
    }
  }
  return done;
}

int foreground_wait(pid_t pid, int master, berth_error *e) {
  sigset_t set = watched();
  cleanup_fd int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  if (sfd < 0) return berth_fail_errno(e, "signalfd");
  if (master >= 0) terminal_raw_begin(master);
  struct pollfd fds[3] = {{.fd = sfd, .events = POLLIN},
                          {.fd = master >= 0 ? STDIN_FILENO : -1, .events = POLLIN},
                          {.fd = master, .events = POLLIN}};
  char buf[16384];
  int status = 0;
  bool exited = reap(pid, &status);
  while (!exited || fds[2].fd >= 0) {
    if (exited && fds[2].fd >= 0) {
      /* drain what the pty still holds, then stop */
      fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
      ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0) break;
      write_all(STDOUT_FILENO, buf, (size_t)n);
      continue;
    }
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      return berth_fail_errno(e, "poll");
    }
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) {
          exited = reap(pid, &status) || exited;
        } else if (si.ssi_signo == SIGWINCH && master >= 0) {
          terminal_copy_winsize(master);
        } else {
          kill(pid, (int)si.ssi_signo);
        }
        break;
      }
    }
    if (fds[1].fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0)
        fds[1].fd = -1;
      else
        write_all(master, buf, (size_t)n);
    }
    if (fds[2].fd >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(master, buf, sizeof buf);
      if (n <= 0)
        fds[2].fd = -1;
      else
        write_all(STDOUT_FILENO, buf, (size_t)n);
    }
  }
  if (master >= 0) terminal_raw_end();
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}
