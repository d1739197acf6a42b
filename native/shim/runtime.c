#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemonize.h"
#include "smallfile.h"
#include "terminal.h"
#include "util.h"

/* In the child between fork and exec: plain signal state, only stdio open
 * (and, as fd 3, `exec_fd` when given: the file to execute instead of
 * argv[0], the helper's sealed copy of the runtime; left open across the
 * exec so that a script there finds itself as /dev/fd/3; the runtime marks
 * it close-on-exec for the container). argv[0] runs when it cannot. */
static void exec_runtime(int exec_fd, char *const argv[], int in, int out, int err) {
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) _exit(127);
  daemonize_undo_signals();
  if (exec_fd >= 0 && (exec_fd == 3 ? fcntl(3, F_SETFD, 0) : dup2(exec_fd, 3)) >= 0) {
    close_range(4, ~0U, 0);
    syscall(SYS_execveat, 3, "", argv, environ, AT_EMPTY_PATH);
  }
  close_range(3, ~0U, 0);
  execvp(argv[0], argv);
  dprintf(2, "exec runtime '%s': %s\n", argv[0], strerror(errno));
  _exit(127);
}

static size_t build_argv(const struct shim_options *o, const char **argv, size_t cap,
                         const char *const *args) {
  size_t n = 0;
  argv[n++] = o->runtime;
  if (o->runtime_root) argv[n++] = "--root", argv[n++] = o->runtime_root;
  for (; *args && n + 1 < cap; args++) argv[n++] = *args;
  argv[n] = NULL;
  return n;
}

/* Reads what is there; returns true at end of file. */
static bool capture_more(int fd, struct runtime_output *out) {
  for (;;) {
    char buf[1024];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0;
    size_t room = sizeof out->captured - out->captured_len;
    size_t c = (size_t)n < room ? (size_t)n : room;
    memcpy(out->captured + out->captured_len, buf, c);
    out->captured_len += c;
  }
}

static char *describe_status(int st, char *buf, size_t cap) {
  if (WIFEXITED(st)) snprintf(buf, cap, "exit status %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) snprintf(buf, cap, "killed by signal %d", WTERMSIG(st));
  else snprintf(buf, cap, "wait status %#x", st);
  return buf;
}

/* Runs the runtime and waits for it, while collecting its stderr and (if
 * asked) the pty master it sends. Returns the wait status in *status. */
static int run(const struct shim_options *o, int exec_fd, const char *const *args, const struct runtime_stdio *io,
               struct runtime_output *out, int *status, berth_error *e) {
  const char *argv[24];
  build_argv(o, argv, BERTH_ARRAY_LEN(argv), args);
  out->console_master = -1;
  out->captured_len = 0;

  pid_t pid = fork();
  if (pid < 0) return berth_fail_errno(e, "fork runtime '%s'", o->runtime);
  if (pid == 0) exec_runtime(exec_fd, (char *const *)argv, io->in, io->out, io->err);

  cleanup_fd int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    int saved = errno;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return berth_fail(e, saved, "pidfd_open runtime pid %d", (int)pid);
  }
  int rc = 0;
  bool capture_eof = false;
  for (bool done = false; !done;) {
    struct pollfd p[3] = {
        {.fd = pidfd, .events = POLLIN},
        {.fd = capture_eof ? -1 : io->capture, .events = POLLIN},
        {.fd = out->console_master < 0 ? io->console_listen : -1, .events = POLLIN},
    };
    if (poll(p, 3, -1) < 0) {
      if (errno == EINTR) continue;
      rc = berth_fail_errno(e, "poll while waiting for runtime");
      kill(pid, SIGKILL);
      done = true;
    }
    if (p[1].revents) capture_eof = capture_more(io->capture, out);
    if (p[2].revents & POLLIN) {
      out->console_master = terminal_receive_master(io->console_listen, e);
      if (out->console_master < 0) {
        rc = berth_wrap(e, "container '%s'", o->id);
        kill(pid, SIGKILL);
        done = true;
      }
    }
    if (p[0].revents) done = true;
  }
  while (waitpid(pid, status, 0) < 0) {
    if (errno != EINTR) return berth_fail_errno(e, "wait for runtime pid %d", (int)pid);
  }
  if (!capture_eof) capture_more(io->capture, out);
  return rc;
}

/* The runtime's stderr for a message: trailing newlines dropped, inner ones
 * kept as they are, invalid bytes not filtered (they stay in the caller's log). */
static const char *captured_text(struct runtime_output *out) {
  size_t n = out->captured_len < sizeof out->captured - 1 ? out->captured_len : sizeof out->captured - 1;
  while (n > 0 && (out->captured[n - 1] == '\n' || out->captured[n - 1] == '\r')) n--;
  out->captured[n] = '\0';
  return n ? out->captured : "(no output)";
}

static int read_init_pid(const struct shim_options *o, pid_t *pid, berth_error *e) {
  char text[64];
  if (smallfile_read(RUNTIME_PID_FILE, text, sizeof text, e) < 0)
    return berth_wrap(e, "runtime created container '%s' but wrote no pid file", o->id);
  char *end;
  long v = strtol(text, &end, 10);
  if (v <= 0 || v > INT_MAX || (*end && *end != '\n'))
    return berth_fail(e, EINVAL, "pid file of container '%s' holds '%s'", o->id, text);
  *pid = (pid_t)v;

  /* Only a child can be waited for; after `create` exits, the container's
   * init must have been reparented to us as the subreaper. */
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/stat", v);
  char stat[4096];
  if (smallfile_read(path, stat, sizeof stat, e) < 0) return berth_wrap(e, "container '%s' init pid %ld", o->id, v);
  char *close_paren = strrchr(stat, ')');
  long ppid = 0;
  if (!close_paren || sscanf(close_paren + 1, " %*c %ld", &ppid) != 1)
    return berth_fail(e, EINVAL, "parse '%s'", path);
  if (ppid != getpid())
    return berth_fail(e, 0, "container '%s' init pid %ld has parent %ld, not this shim (%ld): the runtime must not daemonize it elsewhere",
                      o->id, v, ppid, (long)getpid());
  return 0;
}

int runtime_create(const struct shim_options *o, const struct runtime_stdio *io,
                   struct runtime_output *out, pid_t *pid, berth_error *e) {
  char console[PATH_MAX];
  snprintf(console, sizeof console, "%s/%s", o->state_dir, RUNTIME_CONSOLE_SOCKET);
  /* A unix socket path must fit sun_path (108 bytes); our cwd is the state
   * dir, and /proc/<pid>/cwd names it in a few bytes for any process. */
  if (strlen(console) >= 108)
    snprintf(console, sizeof console, "/proc/%d/cwd/%s", (int)getpid(), RUNTIME_CONSOLE_SOCKET);
  char pidfile[PATH_MAX];
  snprintf(pidfile, sizeof pidfile, "%s/%s", o->state_dir, RUNTIME_PID_FILE);
  unlink(RUNTIME_PID_FILE);
  const char *args[12];
  size_t n = 0;
  args[n++] = "create", args[n++] = "--bundle", args[n++] = o->bundle;
  args[n++] = "--pid-file", args[n++] = pidfile;
  if (io->console_listen >= 0) args[n++] = "--console-socket", args[n++] = console;
  args[n++] = o->id;
  args[n] = NULL;

  int st = 0;
  int rc = run(o, o->runtime_exec_fd, args, io, out, &st, e);
  /* not held for the container's lifetime: the sealed copy's memory is
   * freed once the helper and the shims that are starting let it go */
  if (o->runtime_exec_fd >= 0) close(o->runtime_exec_fd);
  if (rc < 0) return -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char how[64];
    return berth_fail(e, 0, "runtime '%s' failed to create container '%s' (%s): %s", o->runtime, o->id,
                      describe_status(st, how, sizeof how), captured_text(out));
  }
  if (io->console_listen >= 0 && out->console_master < 0) {
    /* The runtime may have connected just before exiting. */
    out->console_master = terminal_receive_master(io->console_listen, e);
    if (out->console_master < 0)
      return berth_wrap(e, "runtime created container '%s' with a terminal but sent no pty master", o->id);
  }
  return read_init_pid(o, pid, e);
}

int runtime_delete(const struct shim_options *o, berth_error *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return berth_fail_errno(e, "create pipe for runtime delete");
  cleanup_fd int rd = p[0];
  cleanup_fd int wr = p[1];
  if (fcntl(rd, F_SETFL, O_NONBLOCK) < 0) return berth_fail_errno(e, "set pipe non-blocking");
  struct runtime_stdio io = {.in = 0, .out = 0, .err = wr, .capture = rd, .console_listen = -1};
  struct runtime_output out;
  const char *args[] = {"delete", "--force", o->id, NULL};
  int st = 0;
  if (run(o, -1, args, &io, &out, &st, e) < 0) return -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    char how[64];
    return berth_fail(e, 0, "runtime '%s' failed to delete container '%s' (%s): %s", o->runtime, o->id,
                      describe_status(st, how, sizeof how), captured_text(&out));
  }
  return 0;
}
