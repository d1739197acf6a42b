/* Namespaces from config.linux.namespaces: each one is created (no path) or
 * joined (path to an nsfs file such as /proc/123/ns/net). */
#ifndef BERTH_NS_H
#define BERTH_NS_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "error.h"

enum { NS_USER, NS_MNT, NS_PID, NS_NET, NS_IPC, NS_UTS, NS_CGROUP, NS_TIME, NS_COUNT };

typedef struct ns_plan {
  int new_flags;          /* CLONE_NEW* to create */
  int join_fd[NS_COUNT];  /* fd to setns into, -1 when not joining */
  bool has[NS_COUNT];     /* listed in the config (created or joined) */
} ns_plan;

/* Parses linux.namespaces (may be NULL: no namespaces); opens the paths of
 * those to join, so errors come before anything is created. */
int ns_plan_parse(json_t *namespaces, ns_plan *p, berth_error *e);
/* Opens the /proc/<pid>/ns files of a running container, for exec. Namespaces the
 * container shares with the caller are skipped. */
int ns_plan_from_pid(pid_t pid, ns_plan *p, berth_error *e);
void ns_plan_close(ns_plan *p);
/* setns into every joined namespace, user first, mount last. */
int ns_join(ns_plan *p, berth_error *e);
/* Writes uid_map / gid_map of pid from linux.uidMappings/gidMappings;
 * pid <= 0 only checks them. */
int ns_write_id_maps(pid_t pid, json_t *linux_, berth_error *e);
/* Writes /proc/self/timens_offsets from linux.timeOffsets (after unshare). */
int ns_write_time_offsets(json_t *time_offsets, berth_error *e);
/* Brings up `lo` in the current (new) network namespace, as runc and crun
 * do: a container with a network namespace of its own can reach itself. */
int ns_loopback_up(berth_error *e);
/* For `features`: the namespace names. */
json_t *ns_features(void);
const char *ns_name(int idx);

#endif
