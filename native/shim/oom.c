#include "oom.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smallfile.h"

/* The memory cgroup path of /proc/<who>/cgroup: the v1 line naming the
 * memory controller, else the v2 line; *v2 says which. */
static bool memory_cgroup(const char *who, char *out, size_t cap, bool *v2) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%s/cgroup", who);
  berth_error e;
  /* On the stack: setup's stack is given back before the event loop. */
  char text[16384];
  if (smallfile_read(path, text, sizeof text, &e) < 0) return false;
  bool found = false;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c1 = *c2 = '\0';
    const char *ctrls = c1 + 1;
    bool is_v2 = strcmp(line, "0") == 0 && *ctrls == '\0';
    bool is_mem = false;
    for (const char *p = ctrls; *p;) {
      size_t n = strcspn(p, ",");
      if (n == 6 && strncmp(p, "memory", 6) == 0) is_mem = true;
      p += n + (p[n] == ',');
    }
    if (is_mem || (is_v2 && !found)) {
      snprintf(out, cap, "%s", c2 + 1);
      *v2 = !is_mem;
      found = true;
      if (is_mem) break;
    }
  }
  return found;
}

static long long read_oom_kill(int fd) {
  char buf[1024];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = '\0';
  for (char *p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (strncmp(p, "oom_kill ", 9) == 0) return strtoll(p + 9, NULL, 10);
  return -1;
}

void oom_watch_start(struct oom_watch *w, pid_t pid) {
  w->fd = -1;
  w->baseline = 0;
  char who[32], theirs[PATH_MAX], ours[PATH_MAX];
  bool v2 = false, our_v2 = false;
  snprintf(who, sizeof who, "%d", (int)pid);
  if (!memory_cgroup(who, theirs, sizeof theirs, &v2)) return;
  if (memory_cgroup("self", ours, sizeof ours, &our_v2) && v2 == our_v2 && strcmp(theirs, ours) == 0) return;
  char file[PATH_MAX + 64];
  if (!v2) {
    snprintf(file, sizeof file, "/sys/fs/cgroup/memory%s/memory.oom_control", theirs);
  } else {
    /* Unified-only hosts mount cgroup2 on /sys/fs/cgroup; hybrid ones below it. */
    bool unified_root = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
    snprintf(file, sizeof file, "/sys/fs/cgroup%s%s/memory.events", unified_root ? "" : "/unified", theirs);
  }
  w->fd = open(file, O_RDONLY | O_CLOEXEC);
  if (w->fd < 0) return;
  w->baseline = read_oom_kill(w->fd);
  if (w->baseline < 0) {
    close(w->fd);
    w->fd = -1;
  }
}

int oom_watch_killed(const struct oom_watch *w) {
  if (w->fd < 0) return -1;
  long long now = read_oom_kill(w->fd);
  if (now < 0) return -1;
  return now > w->baseline;
}

void oom_watch_stop(struct oom_watch *w) {
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
}
