/* cgroups behind one table of operations, chosen once at start by looking
 * at /sys/fs/cgroup: v1 (every controller its own hierarchy), v2 (one unified
 * hierarchy), or hybrid (v1 controllers beside a cgroup2 mount that holds few
 * or none, like the test hosts). The container's group is the same relative
 * path in every hierarchy, "/berth/<id>" unless config.linux.cgroupsPath says
 * otherwise. */
#ifndef BERTH_CGROUP_H
#define BERTH_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "error.h"

typedef enum { CGROUP_MODE_V1 = 1, CGROUP_MODE_HYBRID = 2, CGROUP_MODE_V2 = 3 } cgroup_mode;

struct cgroup_ops;

typedef struct berth_cgroup {
  const struct cgroup_ops *ops; /* NULL when the manager is "disabled" */
  cgroup_mode mode;
  char path[PATH_MAX]; /* relative to each hierarchy root, starts with '/' */
} berth_cgroup;

/* Resolves the container's group without touching the host. cgroups_path is
 * config.linux.cgroupsPath (may be NULL: "/berth/<id>"); a relative path is
 * taken under "/berth". disabled=true (crun's --cgroup-manager disabled)
 * makes every other call a no-op. */
int cgroup_open(berth_cgroup *cg, const char *cgroups_path, const char *id, bool disabled,
                berth_error *e);
/* mkdir in every hierarchy, then applies resources (config.linux.resources,
 * may be NULL). Undoes its own mkdirs on failure. */
int cgroup_create(berth_cgroup *cg, json_t *resources, berth_error *e);
/* Moves pid into the group in every hierarchy. */
int cgroup_enter(const berth_cgroup *cg, pid_t pid, berth_error *e);
/* The fast way in, for a process about to become a container:
 * - the group's directory in the cgroup2 hierarchy (*fd = -1 when there is
 *   none, e.g. a pure v1 host), to fork straight into it with
 *   clone3(CLONE_INTO_CGROUP);
 * - cgroup_enter_self then moves the calling (single-threaded) process into
 *   the group of every v1 hierarchy by writing "0" to `tasks`.
 * Both avoid the kernel's global threadgroup lock that writing a pid to
 * cgroup.procs takes, whose RCU grace period costs 5-20 ms per container. */
int cgroup_unified_fd(const berth_cgroup *cg, int *fd, berth_error *e);
int cgroup_enter_self(const berth_cgroup *cg, berth_error *e);
/* Applies resources in place (create and `update`); validates first, so a bad
 * value changes nothing. Only keys present are changed. */
int cgroup_update(const berth_cgroup *cg, json_t *resources, berth_error *e);
int cgroup_freeze(const berth_cgroup *cg, bool frozen, berth_error *e);
int cgroup_is_frozen(const berth_cgroup *cg, bool *frozen, berth_error *e);
/* Every pid in the group (and its descendants), malloc'd array. */
int cgroup_pids(const berth_cgroup *cg, pid_t **pids, size_t *n, berth_error *e);
/* Signals every process of the group (cgroup.kill for SIGKILL on v2). */
int cgroup_kill_all(const berth_cgroup *cg, int sig, berth_error *e);
/* Stats in the shape of runc's `events --stats` "data" object
 * (cpu, memory, pids, blkio, hugetlb). *out is a new reference. */
int cgroup_stats(const berth_cgroup *cg, json_t **out, berth_error *e);
/* Removes the group in every hierarchy (retries while it drains). Missing is ok. */
int cgroup_destroy(const berth_cgroup *cg, berth_error *e);
/* Mounts the container's cgroup view at target (a path on the host side,
 * already resolved inside the rootfs), as a config mount of type "cgroup"
 * asks; called inside the container's mount and cgroup namespaces. */
int cgroup_mount(const berth_cgroup *cg, const char *target, unsigned long flags,
                 berth_error *e);
/* For `features`: {"v1":bool,"v2":bool,"systemd":false,...} */
json_t *cgroup_features(void);

#endif
