/* Whether the kernel's OOM killer struck in the container's memory cgroup:
 * the oom_kill counter of memory.oom_control (cgroup v1) or memory.events
 * (cgroup v2), read when the container is created and again at its exit. */
#ifndef BERTH_SHIM_OOM_H
#define BERTH_SHIM_OOM_H

#include <sys/types.h>

struct oom_watch {
  int fd;             /* the counter file, kept open; -1: cannot tell */
  long long baseline; /* oom_kill when the watch began */
};

/* Finds the memory cgroup of pid. A container that shares the shim's own
 * cgroup gets no watch: kills there need not be the container's. */
void oom_watch_start(struct oom_watch *w, pid_t pid);
/* 1 killed, 0 not, -1 cannot tell. */
int oom_watch_killed(const struct oom_watch *w);
void oom_watch_stop(struct oom_watch *w);

#endif
