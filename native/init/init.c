/* berth-init: a minimal pid 1 for `berth run --init`.
 *
 *   berth-init -- COMMAND [ARG...]
 *
 * Runs COMMAND as its child, forwards every signal it can catch to it,
 * reaps every orphan that the kernel hands to pid 1, and exits with the
 * child's status (128+N when a signal ended it) once the child is gone.
 * Linked statically: it is bind-mounted into images that have no libc. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"

/* Signals that are never forwarded: the child's own exit notice, and those
 * that stop or continue us (the kernel handles them for pid 1 anyway). */
static int forwardable(int sig) {
  return sig != SIGCHLD && sig != SIGKILL && sig != SIGSTOP && sig != SIGTSTP && sig != SIGTTIN && sig != SIGTTOU;
}

static int spawn_child(char **argv, const sigset_t *orig, pid_t *out, berth_error *e) {
  pid_t pid = fork();
  if (pid < 0) return berth_fail_errno(e, "fork for '%s'", argv[0]);
  if (pid == 0) {
    /* the child gets the signal mask and a process group of its own, as tini does */
    setpgid(0, 0);
    sigprocmask(SIG_SETMASK, orig, NULL);
    execvp(argv[0], argv);
    int err = errno;
    fprintf(stderr, "berth-init: exec '%s': %s\n", argv[0], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  *out = pid;
  return 0;
}

/* Reap everything that has exited; returns 1 and sets *status when `child` was among them. */
static int reap(pid_t child, int *status) {
  int found = 0;
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p <= 0) break;
    if (p == child) {
      *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      found = 1;
    }
  }
  return found;
}

static int run(char **argv, int *exit_status, berth_error *e) {
  sigset_t all, orig;
  sigfillset(&all);
  if (sigprocmask(SIG_SETMASK, &all, &orig) < 0) return berth_fail_errno(e, "sigprocmask");
  pid_t child = -1;
  if (spawn_child(argv, &orig, &child, e) < 0) return -1;
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) {
      if (errno == EINTR) continue;
      return berth_fail_errno(e, "sigwaitinfo");
    }
    if (sig == SIGCHLD) {
      if (reap(child, exit_status)) return 0;
      continue;
    }
    if (!forwardable(sig)) continue;
    /* to the child's group first (a shell's children), the child itself if that failed */
    if (kill(-child, sig) < 0 && kill(child, sig) < 0 && errno != ESRCH)
      return berth_fail_errno(e, "forward signal %d to pid %d", sig, (int)child);
  }
}

int main(int argc, char **argv) {
  int i = 1;
  if (i < argc && strcmp(argv[i], "--") == 0) i++;
  if (i >= argc) {
    fprintf(stderr, "usage: berth-init -- COMMAND [ARG...]\n");
    return 2;
  }
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  berth_error e = {0};
  int status = 0;
  if (run(argv + i, &status, &e) < 0) {
    fprintf(stderr, "berth-init: %s\n", e.msg);
    return 125;
  }
  return status;
}
