#include "hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *hook_kinds[] = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                                   "poststop"};

int hooks_check(json_t *hooks, berth_error *e) {
  if (!hooks) return 0;
  if (!json_is_object(hooks)) return berth_fail_msg(e, EINVAL, "hooks: expected an object");
  const char *kind;
  json_t *list;
  json_object_foreach(hooks, kind, list) {
    bool known = false;
    for (size_t i = 0; i < BERTH_ARRAY_LEN(hook_kinds); i++)
      if (strcmp(kind, hook_kinds[i]) == 0) known = true;
    if (!known)
      return berth_fail_msg(e, EINVAL,
                        "hooks.%s: unknown hook kind (expected prestart, createRuntime, createContainer, "
                        "startContainer, poststart or poststop)",
                        kind);
    if (!json_is_array(list)) return berth_fail_msg(e, EINVAL, "hooks.%s: expected an array", kind);
    size_t i;
    json_t *h;
    json_array_foreach(list, i, h) {
      const char *path = json_str(h, "path");
      if (!path || path[0] != '/') return berth_fail_msg(e, EINVAL, "hooks.%s[%zu].path: expected an absolute path", kind, i);
      json_t *t = json_object_get(h, "timeout");
      if (t && (!json_is_integer(t) || json_integer_value(t) <= 0))
        return berth_fail_msg(e, EINVAL, "hooks.%s[%zu].timeout: expected a positive number of seconds", kind, i);
    }
  }
  return 0;
}

static char **string_array(json_t *a, const char *fallback) {
  size_t n = json_array_size(a);
  char **out = calloc(n + 2, sizeof(char *));
  if (!out) return NULL;
  if (n == 0 && fallback) out[0] = (char *)fallback;
  for (size_t i = 0; i < n; i++) out[i] = (char *)json_string_value(json_array_get(a, i));
  return out;
}

static int run_one(json_t *h, const char *kind, size_t idx, const char *state_json, berth_error *e) {
  const char *path = json_str(h, "path");
  cleanup_free char **argv = string_array(json_object_get(h, "args"), path);
  cleanup_free char **envp = string_array(json_object_get(h, "env"), NULL);
  if (!argv || !envp) return berth_fail(e, ENOMEM, "hooks.%s[%zu]", kind, idx);
  int in[2], errp[2];
  if (pipe2(in, O_CLOEXEC) < 0) return berth_fail_errno(e, "hooks.%s[%zu]: pipe", kind, idx);
  if (pipe2(errp, O_CLOEXEC) < 0) {
    close(in[0]), close(in[1]);
    return berth_fail_errno(e, "hooks.%s[%zu]: pipe", kind, idx);
  }
  pid_t pid = fork();
  if (pid < 0) return berth_fail_errno(e, "hooks.%s[%zu]: fork", kind, idx);
  if (pid == 0) {
    dup2(in[0], STDIN_FILENO);
    dup2(errp[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, STDOUT_FILENO);
    execve(path, argv, envp);
    dprintf(STDERR_FILENO, "exec '%s': %s", path, strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(errp[1]);
  signal(SIGPIPE, SIG_IGN);
  write_all(in[1], state_json, strlen(state_json));
  close(in[1]);
  long long timeout = json_integer_value(json_object_get(h, "timeout"));
  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  char errbuf[1024] = "";
  size_t errlen = 0;
  int status = 0;
  bool timed_out = false;
  struct pollfd pfd = {.fd = errp[0], .events = POLLIN};
  for (;;) {
    int wait_ms = -1;
    if (timeout > 0) {
      struct timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      long long elapsed = (now.tv_sec - start.tv_sec) * 1000LL + (now.tv_nsec - start.tv_nsec) / 1000000;
      wait_ms = (int)(timeout * 1000 - elapsed);
      if (wait_ms <= 0) {
        timed_out = true;
        kill(pid, SIGKILL);
        break;
      }
    }
    if (pfd.fd < 0) {
      /* stderr closed: wait for the exit with the remaining timeout */
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        break;
      }
      usleep(1000);
      continue;
    }
    int r = poll(&pfd, 1, wait_ms);
    if (r < 0 && errno != EINTR) break;
    if (r > 0) {
      ssize_t n = read(errp[0], errbuf + errlen, sizeof errbuf - 1 - errlen);
      if (n <= 0) {
        close(errp[0]);
        pfd.fd = -1;
      } else {
        errlen += (size_t)n;
        if (errlen >= sizeof errbuf - 1) errlen = 0; /* keep the tail only */
      }
    }
  }
  if (pfd.fd >= 0) close(errp[0]);
  if (pid > 0) waitpid(pid, &status, 0);
  errbuf[errlen] = '\0';
  while (errlen > 0 && (errbuf[errlen - 1] == '\n' || errbuf[errlen - 1] == ' ')) errbuf[--errlen] = '\0';
  if (timed_out)
    return berth_fail(e, ETIMEDOUT, "hooks.%s[%zu] '%s': killed after its timeout of %llds", kind, idx, path, timeout);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (WIFSIGNALED(status))
    return berth_fail_msg(e, ECHILD, "hooks.%s[%zu] '%s': killed by signal %d%s%s", kind, idx, path, WTERMSIG(status),
                      errlen ? ": " : "", errbuf);
  return berth_fail_msg(e, ECHILD, "hooks.%s[%zu] '%s': exited with status %d%s%s", kind, idx, path, WEXITSTATUS(status),
                    errlen ? ": " : "", errbuf);
}

int hooks_run(json_t *hooks, const char *kind, const char *state_json, berth_error *e) {
  json_t *list = json_object_get(hooks, kind);
  size_t i;
  json_t *h;
  json_array_foreach(list, i, h) {
    if (run_one(h, kind, i, state_json, e) < 0) return -1;
  }
  return 0;
}
