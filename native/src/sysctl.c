#include "sysctl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util.h"

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

int sysctl_check(json_t *sysctl, const ns_plan *ns, berth_error *e) {
  if (!sysctl) return 0;
  if (!json_is_object(sysctl)) return berth_fail_msg(e, EINVAL, "linux.sysctl: expected an object of strings");
  const char *key;
  json_t *v;
  json_object_foreach(sysctl, key, v) {
    if (!json_is_string(v)) return berth_fail_msg(e, EINVAL, "linux.sysctl.%s: expected a string value", key);
    if (strstr(key, "..") || strchr(key, '/') || key[0] == '.')
      return berth_fail_msg(e, EINVAL, "linux.sysctl.%s: not a sysctl name", key);
    int needs = -1;
    if (has_prefix(key, "net.")) needs = NS_NET;
    else if (strcmp(key, "kernel.hostname") == 0 || strcmp(key, "kernel.domainname") == 0) needs = NS_UTS;
    else if (has_prefix(key, "kernel.msg") || has_prefix(key, "kernel.sem") || has_prefix(key, "kernel.shm") ||
             strcmp(key, "kernel.shm_rmid_forced") == 0 || has_prefix(key, "fs.mqueue."))
      needs = NS_IPC;
    if (needs < 0)
      return berth_fail_msg(e, EINVAL,
                        "linux.sysctl.%s: not namespaced, so setting it would change the host; only net.*, "
                        "kernel.msg*/sem*/shm*, fs.mqueue.* and kernel.hostname/domainname are allowed",
                        key);
    if (!ns->has[needs])
      return berth_fail_msg(e, EINVAL, "linux.sysctl.%s: needs the container to have its own %s namespace", key,
                        ns_name(needs));
  }
  return 0;
}

int sysctl_apply(json_t *sysctl, berth_error *e) {
  if (!sysctl || json_object_size(sysctl) == 0) return 0;
  cleanup_fd int procsys = open("/proc/sys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (procsys < 0) return berth_fail_errno(e, "linux.sysctl: open /proc/sys (is /proc mounted?)");
  struct statfs sfs;
  if (fstatfs(procsys, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC)
    return berth_fail_msg(e, EPERM, "linux.sysctl: /proc/sys in the container is not procfs");
  const char *key;
  json_t *v;
  json_object_foreach(sysctl, key, v) {
    char rel[PATH_MAX];
    snprintf(rel, sizeof rel, "%s", key);
    for (char *p = rel; *p; p++)
      if (*p == '.') *p = '/';
    const char *val = json_string_value(v);
    cleanup_fd int fd = openat(procsys, rel, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return berth_fail_errno(e, "linux.sysctl.%s: open /proc/sys/%s", key, rel);
    if (write_all(fd, val, strlen(val)) < 0) return berth_fail_errno(e, "linux.sysctl.%s: write \"%s\"", key, val);
  }
  return 0;
}
