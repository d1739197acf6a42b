#include "launch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
  /* our copies of the launcher's ends too: the helper must see EOF on its stdin when the engine goes */
  close_pair(in), close_pair(out), close_pair(err);
  if (getenv("BERTH_LAUNCHER_TUNABLES") && strcmp(getenv("BERTH_LAUNCHER_TUNABLES"), "1") == 0) unsetenv("GLIBC_TUNABLES");
  unsetenv("BERTH_LAUNCHER_TUNABLES");
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

int launch_main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: berth-shim launch PROGRAM [ARG...]\n");
    return 2;
  }
  struct helper_ends h;
  unsetenv("BERTH_HELPER_FDS"); /* one from our own caller names nothing of ours, and must not reach the helper */
  if (start_helper(&h)) {
    char fds[64];
    snprintf(fds, sizeof fds, "%d,%d,%d,%d", (int)h.pid, h.in, h.out, h.err);
    setenv("BERTH_HELPER_FDS", fds, 1);
  }
  execv(argv[2], argv + 2);
  fprintf(stderr, "berth-shim launch: execute %s: %s\n", argv[2], strerror(errno));
  return 127; /* the helper, if any, goes with us (PR_SET_PDEATHSIG) */
}
