#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helper.h"

/* The helper's pid and our ends of its stdin, stdout and stderr. */
struct helper_ends {
  pid_t pid;
  int in, out, err;
};

static void close_pair(int p[2]) {
  if (p[0] >= 0) close(p[0]);
  if (p[1] >= 0) close(p[1]);
  p[0] = p[1] = -1;
}

/* The helper's side of the fork: its pipes as 0, 1 and 2, then helper_main. */
static _Noreturn void become_helper(pid_t launcher, int in[2], int out[2], int err[2]) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != launcher) _exit(0); /* the launcher is gone already */
  if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) _exit(127);
  /* our copies of the launcher's ends too (the helper must see EOF on its stdin when the engine goes), and
   * every other inherited fd: the exit report's pipe must close when the program goes, not with the helper */
  close_range(3, ~0U, 0);
  if (getenv("BERTH_LAUNCHER_TUNABLES") && strcmp(getenv("BERTH_LAUNCHER_TUNABLES"), "1") == 0) unsetenv("GLIBC_TUNABLES");
  unsetenv("BERTH_LAUNCHER_TUNABLES");
  if (getenv("BERTH_LAUNCHER_NODE_OPTIONS") && strcmp(getenv("BERTH_LAUNCHER_NODE_OPTIONS"), "1") == 0) unsetenv("NODE_OPTIONS");
  unsetenv("BERTH_LAUNCHER_NODE_OPTIONS");
  unsetenv("BERTH_LAUNCHER_REPORT_FD");
  prctl(PR_SET_NAME, "berth-helper");
  _exit(helper_main());
}

/* Starts the helper; false (and a note on stderr) when it could not be. */
static bool start_helper(struct helper_ends *h) {
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
    fprintf(stderr, "berth-shim launch: create the helper's pipes: %s (the engine starts its own)\n", strerror(errno));
    close_pair(in), close_pair(out), close_pair(err);
    return false;
  }
  pid_t launcher = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "berth-shim launch: fork the helper: %s (the engine starts its own)\n", strerror(errno));
    close_pair(in), close_pair(out), close_pair(err);
    return false;
  }
  if (pid == 0) become_helper(launcher, in, out, err);
  close(in[0]), close(out[1]), close(err[1]);
  /* kept across the exec of the program, which takes them over */
  int ends[3] = {in[1], out[0], err[0]};
  for (int i = 0; i < 3; i++) {
    if (fcntl(ends[i], F_SETFD, 0) < 0) {
      fprintf(stderr, "berth-shim launch: keep the helper's pipe %d open across exec: %s (the engine starts its own)\n", ends[i],
              strerror(errno));
      kill(pid, SIGKILL);
      for (int j = 0; j < 3; j++) close(ends[j]);
      return false;
    }
  }
  *h = (struct helper_ends){.pid = pid, .in = in[1], .out = out[0], .err = err[0]};
  return true;
}

/* The signals the waiting launcher passes on to the program (a process's
 * kill of the launcher); the same signal from the terminal reached the
 * program too (one process group) and is not passed twice. */
static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM};

/* Ends the launcher as the program ended: its exit status, or its signal. */
static _Noreturn void end_like(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    signal(sig, SIG_DFL);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    raise(sig);
    _exit(128 + sig);
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* A report line: the exit status, "0".."255" and a newline. */
static bool parse_report(const char *buf, size_t n, int *code) {
  if (n < 2 || n > 4 || buf[n - 1] != '\n') return false;
  int v = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    if (buf[i] < '0' || buf[i] > '9') return false;
    v = v * 10 + (buf[i] - '0');
  }
  if (v > 255) return false;
  *code = v;
  return true;
}

/* The launcher's side: waits for the program's report or its end, passing
 * on the signals a process sends to the launcher. A report (the exit
 * status, written by the program when its work is done and all it printed
 * is written) ends the launcher at once, while the program is still
 * exiting; without one (a crash, an exit from elsewhere), the program's
 * own end does. */
static _Noreturn void wait_for(pid_t program, int report, const sigset_t *held) {
  int sfd = signalfd(-1, held, SFD_CLOEXEC | SFD_NONBLOCK);
  char buf[8];
  size_t len = 0;
  bool reading = true;
  for (;;) {
    struct pollfd p[2] = {{.fd = reading ? report : -1, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    if ((reading || sfd >= 0) && poll(p, 2, -1) < 0 && errno != EINTR) {
      reading = false, sfd = -1; /* cannot wait for both: wait for the end alone */
      p[0].revents = p[1].revents = 0;
    }
    if (p[0].revents != 0) {
      ssize_t r = read(report, buf + len, sizeof buf - len);
      if (r > 0) {
        len += (size_t)r;
        int code;
        if (buf[len - 1] == '\n' && parse_report(buf, len, &code)) _exit(code);
        if (buf[len - 1] == '\n' || len == sizeof buf) reading = false; /* not a report: wait for the end */
      } else if (r == 0 || errno != EINTR) {
        reading = false; /* the program is gone (or going) without a report */
      }
    }
    if (sfd >= 0 && p[1].revents != 0) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
        /* SI_KERNEL: from the terminal, to the whole process group, the program included */
        if (si.ssi_signo != SIGCHLD && si.ssi_code != SI_KERNEL) kill(program, (int)si.ssi_signo);
      }
    }
    int status;
    pid_t w = waitpid(program, &status, reading || sfd >= 0 ? WNOHANG : 0); /* SIGCHLD wakes the poll */
    if (w == program) end_like(status);
    if (w < 0 && errno != EINTR) _exit(1);
  }
}

int launch_main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: berth-shim launch PROGRAM [ARG...]\n");
    return 2;
  }
  unsetenv("BERTH_HELPER_FDS"); /* one from our own caller names nothing of ours, and must not reach the helper */
  unsetenv("BERTH_LAUNCHER_REPORT_FD");
  /* the signals are held from before the fork: one sent to us between the fork and the wait is passed on */
  sigset_t held, old_mask;
  sigemptyset(&held);
  for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) sigaddset(&held, forwarded[i]);
  sigaddset(&held, SIGCHLD);
  int report[2] = {-1, -1};
  pid_t launcher = getpid(), program = -1;
  bool holding = sigprocmask(SIG_BLOCK, &held, &old_mask) == 0;
  if (holding && pipe2(report, O_CLOEXEC) == 0) {
    program = fork();
    if (program < 0) close_pair(report);
  }
  if (program > 0) {
    close(report[1]);
    wait_for(program, report[0], &held);
  }
  if (program == 0) {
    /* killed with the launcher, as when it was this process (a kill of the launcher by signal is passed on) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != launcher) _exit(1); /* the launcher is gone already */
    close(report[0]);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", report[1]);
    if (fcntl(report[1], F_SETFD, 0) == 0) setenv("BERTH_LAUNCHER_REPORT_FD", fd, 1);
  } else if (report[0] >= 0) {
    close_pair(report);
  }
  if (holding) sigprocmask(SIG_SETMASK, &old_mask, NULL);
  struct helper_ends h;
  if (start_helper(&h)) {
    char fds[64];
    snprintf(fds, sizeof fds, "%d,%d,%d,%d", (int)h.pid, h.in, h.out, h.err);
    setenv("BERTH_HELPER_FDS", fds, 1);
  }
  execv(argv[2], argv + 2);
  fprintf(stderr, "berth-shim launch: execute %s: %s\n", argv[2], strerror(errno));
  return 127; /* the helper, if any, goes with us (PR_SET_PDEATHSIG) */
}
