#include "daemonize.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static int stdio_to_null(berth_error *e) {
  cleanup_fd int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '/dev/null'");
  for (int i = 0; i < 3; i++)
    if (dup2(fd, i) < 0) return berth_fail_errno(e, "redirect fd %d to '/dev/null'", i);
  return 0;
}

int daemonize(bool *is_shim, int *sync_fd, berth_error *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return berth_fail_errno(e, "create sync pipe");
  pid_t middle = fork();
  if (middle < 0) {
    int saved = errno;
    close(p[0]), close(p[1]);
    return berth_fail(e, saved, "fork shim");
  }
  if (middle > 0) {
    close(p[1]);
    int st;
    while (waitpid(middle, &st, 0) < 0 && errno == EINTR) {}
    *is_shim = false;
    *sync_fd = p[0];
    return 0;
  }
  /* middle: a new session, then a child that is not its leader, so it can
   * never acquire a controlling terminal. */
  close(p[0]);
  if (setsid() < 0) _exit(1);
  pid_t shim = fork();
  if (shim != 0) _exit(shim < 0 ? 1 : 0);

  *is_shim = true;
  *sync_fd = p[1];
  /* Orphans of the container (its init above all, once `runtime create`
   * exits) are reparented to us, so we can wait for them. */
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) return berth_fail_errno(e, "set child subreaper");
  /* Whatever the starter ignored or blocked must not reach the container
   * (exec keeps ignored signals and the mask). */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  umask(022);
  return stdio_to_null(e);
}

void daemonize_undo_signals(void) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
}

int daemonize_wait_ready(int sync_fd, pid_t *shim_pid, pid_t *container_pid, berth_error *e) {
  char buf[sizeof e->msg + 8];
  size_t used = 0;
  for (;;) {
    ssize_t n = read(sync_fd, buf + used, sizeof buf - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return berth_fail_errno(e, "read shim sync pipe");
    if (n == 0 || (used += (size_t)n) == sizeof buf - 1) break;
  }
  buf[used] = '\0';
  if (used == 0) return berth_fail(e, 0, "the shim exited before reporting whether the container was created");
  if (buf[0] == 'E' && used >= 2) return berth_fail(e, 0, "%s", buf + 2);
  long sp, cp;
  if (sscanf(buf, "R %ld %ld", &sp, &cp) != 2) return berth_fail(e, 0, "malformed shim sync message '%s'", buf);
  *shim_pid = (pid_t)sp;
  *container_pid = (pid_t)cp;
  return 0;
}

void daemonize_report_ready(int *sync_fd, pid_t container_pid) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "R %ld %ld\n", (long)getpid(), (long)container_pid);
  if (*sync_fd >= 0) {
    (void)write_all(*sync_fd, buf, (size_t)n);
    close(*sync_fd);
  }
  *sync_fd = -1;
}

void daemonize_report_failure(int *sync_fd, const berth_error *err) {
  if (*sync_fd >= 0) {
    (void)write_all(*sync_fd, "E ", 2);
    (void)write_all(*sync_fd, err->msg, strlen(err->msg));
    close(*sync_fd);
  }
  *sync_fd = -1;
}
