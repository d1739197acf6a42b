#include "netns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include "util.h"

int netns_new(berth_error *e) {
  if (unshare(CLONE_NEWNET) < 0) return berth_fail_errno(e, "unshare a new network namespace");
  return 0;
}

int netns_bind(const char *file, berth_error *e) {
  cleanup_fd int fd = open(file, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return berth_fail_errno(e, "create netns file '%s'", file);
  if (mount("/proc/thread-self/ns/net", file, NULL, MS_BIND, NULL) < 0)
    return berth_fail_errno(e, "bind the network namespace on '%s'", file);
  return 0;
}

int netns_enter(const char *file, berth_error *e) {
  cleanup_fd int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open netns '%s'", file);
  if (setns(fd, CLONE_NEWNET) < 0) return berth_fail_errno(e, "enter netns '%s'", file);
  return 0;
}

int netns_ipv4_only(berth_error *e) {
  static const char file[] = "/proc/sys/net/ipv6/conf/default/disable_ipv6";
  cleanup_fd int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : berth_fail_errno(e, "open %s", file); /* ENOENT: no IPv6 in this kernel */
  if (write(fd, "1", 1) != 1) return berth_fail_errno(e, "write 1 to %s", file);
  return 0;
}
