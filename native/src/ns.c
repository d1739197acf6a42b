#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const struct {
  const char *spec_name; /* config.linux.namespaces[].type */
  const char *proc_name; /* /proc/<pid>/ns/<name> */
  int flag;
} ns_table[NS_COUNT] = {
    [NS_USER] = {"user", "user", CLONE_NEWUSER},       [NS_MNT] = {"mount", "mnt", CLONE_NEWNS},
    [NS_PID] = {"pid", "pid", CLONE_NEWPID},           [NS_NET] = {"network", "net", CLONE_NEWNET},
    [NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},           [NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP}, [NS_TIME] = {"time", "time", CLONE_NEWTIME},
};

/* Join order: user first (it grants the rights for the rest), mount last
 * (it changes root and cwd). */
static const int join_order[NS_COUNT] = {NS_USER, NS_IPC, NS_UTS, NS_NET, NS_PID, NS_CGROUP, NS_TIME, NS_MNT};

const char *ns_name(int idx) { return ns_table[idx].spec_name; }

static void plan_init(ns_plan *p) {
  memset(p, 0, sizeof *p);
  for (int i = 0; i < NS_COUNT; i++) p->join_fd[i] = -1;
}

int ns_plan_parse(json_t *namespaces, ns_plan *p, berth_error *e) {
  plan_init(p);
  if (!namespaces) return 0;
  if (!json_is_array(namespaces)) return berth_fail_msg(e, EINVAL, "linux.namespaces: expected an array");
  size_t i;
  json_t *v;
  json_array_foreach(namespaces, i, v) {
    const char *type = json_str(v, "type");
    if (!type) return berth_fail_msg(e, EINVAL, "linux.namespaces[%zu].type: expected a string", i);
    int idx = -1;
    for (int k = 0; k < NS_COUNT; k++)
      if (strcmp(ns_table[k].spec_name, type) == 0) idx = k;
    if (idx < 0)
      return berth_fail_msg(e, EINVAL,
                        "linux.namespaces[%zu].type: unknown namespace \"%s\" (expected pid, network, mount, ipc, "
                        "uts, user, cgroup or time)",
                        i, type);
    if (p->has[idx]) return berth_fail_msg(e, EINVAL, "linux.namespaces[%zu]: namespace \"%s\" listed twice", i, type);
    p->has[idx] = true;
    const char *path = json_str(v, "path");
    if (path && path[0]) {
      p->join_fd[idx] = open(path, O_RDONLY | O_CLOEXEC);
      if (p->join_fd[idx] < 0) return berth_fail_errno(e, "linux.namespaces[%zu] (%s): open '%s'", i, type, path);
    } else {
      p->new_flags |= ns_table[idx].flag;
    }
  }
  return 0;
}

int ns_plan_from_pid(pid_t pid, ns_plan *p, berth_error *e) {
  plan_init(p);
  for (int k = 0; k < NS_COUNT; k++) {
    char theirs[64], ours[64];
    snprintf(theirs, sizeof theirs, "/proc/%d/ns/%s", (int)pid, ns_table[k].proc_name);
    snprintf(ours, sizeof ours, "/proc/self/ns/%s", ns_table[k].proc_name);
    struct stat a, b;
    if (stat(theirs, &a) < 0) {
      if (errno == ENOENT) continue; /* kernel without this namespace type */
      return berth_fail_errno(e, "stat '%s'", theirs);
    }
    if (stat(ours, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) continue;
    p->join_fd[k] = open(theirs, O_RDONLY | O_CLOEXEC);
    if (p->join_fd[k] < 0) return berth_fail_errno(e, "open '%s'", theirs);
    p->has[k] = true;
  }
  return 0;
}

void ns_plan_close(ns_plan *p) {
  for (int i = 0; i < NS_COUNT; i++) {
    if (p->join_fd[i] >= 0) close(p->join_fd[i]);
    p->join_fd[i] = -1;
  }
}

int ns_join(ns_plan *p, berth_error *e) {
  for (int k = 0; k < NS_COUNT; k++) {
    int idx = join_order[k];
    if (p->join_fd[idx] < 0) continue;
    if (setns(p->join_fd[idx], ns_table[idx].flag) < 0)
      return berth_fail_errno(e, "join %s namespace", ns_table[idx].spec_name);
    close(p->join_fd[idx]);
    p->join_fd[idx] = -1;
  }
  return 0;
}

static int write_map(pid_t pid, const char *file, json_t *maps, const char *field, berth_error *e) {
  char buf[4096];
  size_t used = 0;
  size_t i;
  json_t *m;
  if (!json_is_array(maps)) return berth_fail_msg(e, EINVAL, "linux.%s: expected an array", field);
  json_array_foreach(maps, i, m) {
    json_t *c = json_object_get(m, "containerID"), *h = json_object_get(m, "hostID"), *s = json_object_get(m, "size");
    if (!json_is_integer(c) || !json_is_integer(h) || !json_is_integer(s) || json_integer_value(s) <= 0)
      return berth_fail_msg(e, EINVAL, "linux.%s[%zu]: expected {\"containerID\": n, \"hostID\": n, \"size\": n > 0}",
                        field, i);
    int n = snprintf(buf + used, sizeof buf - used, "%lld %lld %lld\n", (long long)json_integer_value(c),
                     (long long)json_integer_value(h), (long long)json_integer_value(s));
    if (n < 0 || (size_t)n >= sizeof buf - used) return berth_fail(e, E2BIG, "linux.%s: too many mappings", field);
    used += (size_t)n;
  }
  if (pid <= 0) return 0; /* checking only */
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  if (write_file(path, buf, used, e) < 0) return berth_wrap(e, "linux.%s", field);
  return 0;
}

int ns_write_id_maps(pid_t pid, json_t *linux_, berth_error *e) {
  json_t *u = json_object_get(linux_, "uidMappings"), *g = json_object_get(linux_, "gidMappings");
  if (!u || !g || json_array_size(u) == 0 || json_array_size(g) == 0)
    return berth_fail_msg(e, EINVAL,
                      "linux.uidMappings/gidMappings: a new user namespace needs both, e.g. "
                      "[{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}]");
  if (write_map(pid, "uid_map", u, "uidMappings", e) < 0) return -1;
  return write_map(pid, "gid_map", g, "gidMappings", e);
}

int ns_write_time_offsets(json_t *offsets, berth_error *e) {
  if (!offsets) return 0;
  static const struct {
    const char *key, *kernel;
  } clocks[] = {{"monotonic", "monotonic"}, {"boottime", "boottime"}};
  char buf[256];
  size_t used = 0;
  for (size_t i = 0; i < BERTH_ARRAY_LEN(clocks); i++) {
    json_t *o = json_object_get(offsets, clocks[i].key);
    if (!o) continue;
    long long secs = json_integer_value(json_object_get(o, "secs"));
    long long nsecs = json_integer_value(json_object_get(o, "nanosecs"));
    used += (size_t)snprintf(buf + used, sizeof buf - used, "%s %lld %lld\n", clocks[i].kernel, secs, nsecs);
  }
  const char *key;
  json_t *v;
  json_object_foreach(offsets, key, v) {
    if (strcmp(key, "monotonic") != 0 && strcmp(key, "boottime") != 0)
      return berth_fail_msg(e, EINVAL, "linux.timeOffsets.%s: unknown clock (expected monotonic or boottime)", key);
  }
  if (used == 0) return 0;
  if (write_file("/proc/self/timens_offsets", buf, used, e) < 0) return berth_wrap(e, "linux.timeOffsets");
  return 0;
}

int ns_loopback_up(berth_error *e) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return berth_fail_errno(e, "bring up lo: socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  int rc = 0;
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
    rc = berth_fail_errno(e, "bring up lo: get flags");
  } else if (!(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) rc = berth_fail_errno(e, "bring up lo: set flags");
  }
  close(s);
  return rc;
}

json_t *ns_features(void) {
  json_t *a = json_array();
  for (int i = 0; i < NS_COUNT; i++) json_array_append_new(a, json_string(ns_table[i].spec_name));
  return a;
}
