#include "rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "devices.h"
#include "mount.h"
#include "util.h"

/* rootfsPropagation is applied in two steps, as runc does. prepare applies
 * it to "/" of the new mount namespace, so that with "rshared" a bind mount
 * marked rshared stays in the host's peer group (mount propagation both
 * ways); "unbindable" becomes rprivate there, since the rootfs must still be
 * bound onto itself. The mount holding the rootfs and the rootfs bind are
 * made private when "/" is shared, so the mounts made while building the
 * rootfs never reach the host, and pivot_root (which refuses shared mounts)
 * works. finalize applies the configured value to the container's root,
 * last. Without a configured value, "/" becomes rslave. */
static int parse_root_propagation(json_t *config, bool *set, unsigned long *prop, bool *rec,
                                  berth_error *e) {
  const char *word = json_str(json_object_get(config, "linux"), "rootfsPropagation");
  *set = word && word[0];
  *prop = MS_SLAVE;
  *rec = true;
  if (!*set) return 0;
  if (mount_parse_propagation(word, prop, rec, e) < 0)
    return berth_wrap(e, "linux.rootfsPropagation");
  return 0;
}

/* O_PATH fd of the root of the mount that holds path: climb ".." while the
 * mount id stays the same (path is the trusted bundle path, not inside the
 * container). */
static int open_mount_root(const char *path, berth_error *e) {
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s'", path);
  for (int depth = 0; depth < 4096; depth++) {
    struct statx here, up;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_MNT_ID | STATX_INO, &here) < 0 ||
        statx(fd, "..", 0, STATX_MNT_ID | STATX_INO, &up) < 0) {
      int saved = errno;
      close(fd);
      return berth_fail(e, saved, "find the mount holding '%s'", path);
    }
    if (!(here.stx_mask & STATX_MNT_ID)) {
      close(fd);
      return berth_fail(e, ENOSYS, "find the mount holding '%s': no mount ids", path);
    }
    bool top = up.stx_ino == here.stx_ino && up.stx_dev_major == here.stx_dev_major &&
               up.stx_dev_minor == here.stx_dev_minor;
    if (up.stx_mnt_id != here.stx_mnt_id || top) return fd;
    int parent = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
    close(fd);
    if (parent < 0) return berth_fail_errno(e, "find the mount holding '%s'", path);
    fd = parent;
  }
  close(fd);
  return berth_fail(e, ELOOP, "find the mount holding '%s'", path);
}

static bool has_bind_dev(json_t *mounts) {
  size_t i;
  json_t *m;
  json_array_foreach(mounts, i, m) {
    const char *dest = json_str(m, "destination");
    if (!dest) continue;
    char norm[PATH_MAX];
    snprintf(norm, sizeof norm, "%s", dest);
    size_t n = strlen(norm);
    while (n > 1 && norm[n - 1] == '/') norm[--n] = '\0';
    if (strcmp(norm, "/dev") == 0 && mount_entry_is_bind(m)) return true;
  }
  return false;
}

int rootfs_prepare(json_t *config, const char *rootfs, const berth_cgroup *cg, bool in_userns,
                   berth_error *e) {
  if (!rootfs || rootfs[0] != '/')
    return berth_fail(e, 0, "rootfs '%s': expected an absolute path", rootfs ? rootfs : "");
  bool configured, rec;
  unsigned long prop;
  if (parse_root_propagation(config, &configured, &prop, &rec, e) < 0) return -1;
  unsigned long early = prop == MS_UNBINDABLE ? MS_PRIVATE : prop;
  bool shared = early == MS_SHARED;
  if (mount(NULL, "/", NULL, early | (rec ? MS_REC : 0), NULL) < 0)
    return berth_fail_errno(e, "set the propagation of / (rootfsPropagation)");
  /* The mount holding the rootfs, whatever "/" became (a non-recursive
   * value leaves it as the host had it, possibly shared). */
  unsigned long own = shared ? MS_PRIVATE : early;
  {
    cleanup_fd int holder = open_mount_root(rootfs, e);
    if (holder < 0) return -1;
    if (mount_set_propagation(holder, own, false, e) < 0)
      return berth_wrap(e, "the mount holding rootfs '%s'", rootfs);
  }

  /* A bind mount of the rootfs onto itself makes it a mount point, which
   * pivot_root needs and which the mounts below attach to. */
  if (mount(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
    return berth_fail_errno(e, "bind rootfs '%s' onto itself", rootfs);
  cleanup_fd int root_fd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return berth_fail_errno(e, "open rootfs '%s'", rootfs);
  if (mount_set_propagation(root_fd, own, !shared, e) < 0)
    return berth_wrap(e, "rootfs '%s'", rootfs);

  json_t *mounts = json_object_get(config, "mounts");
  if (mounts && !json_is_null(mounts) && !json_is_array(mounts))
    return berth_fail(e, 0, "mounts: expected an array");
  mount_ctx ctx = {.root_fd = root_fd, .in_userns = in_userns, .cg = cg};
  size_t i;
  json_t *m;
  json_array_foreach(mounts, i, m) {
    if (mount_config_entry(&ctx, m, i, e) < 0) return -1;
  }

  /* A /dev bound from the host brings its own nodes. */
  if (has_bind_dev(mounts)) return 0;
  json_t *linux_ = json_object_get(config, "linux");
  if (devices_create(root_fd, json_object_get(linux_, "devices"), in_userns, e) < 0) return -1;
  return devices_symlinks(root_fd, e);
}

int rootfs_pivot(const char *rootfs, bool no_pivot, berth_error *e) {
  if (no_pivot) {
    /* runc's --no-pivot: move the rootfs mount over / and chroot into it. */
    if (chdir(rootfs) < 0) return berth_fail_errno(e, "chdir '%s'", rootfs);
    if (mount(rootfs, "/", NULL, MS_MOVE, NULL) < 0)
      return berth_fail_errno(e, "move rootfs '%s' onto /", rootfs);
    if (chroot(".") < 0) return berth_fail_errno(e, "chroot '%s'", rootfs);
    if (chdir("/") < 0) return berth_fail_errno(e, "chdir / after chroot");
    return 0;
  }
  cleanup_fd int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (old_root < 0) return berth_fail_errno(e, "open /");
  cleanup_fd int new_root = open(rootfs, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (new_root < 0) return berth_fail_errno(e, "open rootfs '%s'", rootfs);
  if (fchdir(new_root) < 0) return berth_fail_errno(e, "chdir '%s'", rootfs);
  /* pivot_root refuses a shared current root; it is detached just below,
   * so its propagation no longer matters (submounts keep theirs). */
  if (mount(NULL, "/", NULL, MS_PRIVATE, NULL) < 0)
    return berth_fail_errno(e, "make the old root private");
  /* pivot_root(".", ".") stacks the old root on top of the new one at "/";
   * no put_old directory is needed inside the (hostile) rootfs. */
  if (syscall(SYS_pivot_root, ".", ".") < 0)
    return berth_fail_errno(e, "pivot_root into '%s'", rootfs);
  if (fchdir(old_root) < 0) return berth_fail_errno(e, "chdir to the old root");
  /* Slave first, so the detach below cannot propagate anywhere. */
  if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
    return berth_fail_errno(e, "make the old root rslave");
  if (umount2(".", MNT_DETACH) < 0) return berth_fail_errno(e, "detach the old root");
  if (chdir("/") < 0) return berth_fail_errno(e, "chdir / after pivot_root");
  return 0;
}

int rootfs_bind_console(const char *slave_path, berth_error *e) {
  cleanup_fd int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return berth_fail_errno(e, "console: open /");
  cleanup_fd int slave = open(slave_path, O_PATH | O_CLOEXEC);
  if (slave < 0) return berth_fail_errno(e, "console: open '%s'", slave_path);
  struct stat st;
  if (fstat(slave, &st) < 0) return berth_fail_errno(e, "console: stat '%s'", slave_path);
  if (!S_ISCHR(st.st_mode))
    return berth_fail(e, ENOTTY, "console: '%s' is not a character device", slave_path);

  char name[NAME_MAX + 1];
  cleanup_fd int dev = path_open_parent_in_root(root, "/dev/console", name, sizeof name, e);
  if (dev < 0) return berth_wrap(e, "console");
  /* Whatever the image put at /dev/console is only a mount point; it is
   * never opened (it could be a device node of the host's console). */
  struct stat cur;
  bool exists = fstatat(dev, name, &cur, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && S_ISDIR(cur.st_mode))
    return berth_fail(e, EISDIR, "console: /dev/console is a directory");
  if (exists && !S_ISREG(cur.st_mode) && !S_ISCHR(cur.st_mode)) {
    if (unlinkat(dev, name, 0) < 0) return berth_fail_errno(e, "console: remove /dev/console");
    exists = false;
  }
  if (!exists) {
    cleanup_fd int f = openat(dev, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f < 0) return berth_fail_errno(e, "console: create /dev/console");
  }
  cleanup_fd int target = openat(dev, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (target < 0) return berth_fail_errno(e, "console: open /dev/console");
  if (mount_bind_fd(slave, slave_path, target, false, 0, false, e) < 0)
    return berth_wrap(e, "console: /dev/console");
  return 0;
}

/* Opens each path of a string array inside root; missing paths are skipped. */
typedef int (*path_action)(int root, int fd, const char *path, void *arg, berth_error *e);

static int for_each_path(int root, json_t *config, const char *field, path_action act, void *arg,
                         berth_error *e) {
  json_t *arr = json_object_get(json_object_get(config, "linux"), field);
  if (!arr || json_is_null(arr)) return 0;
  if (!json_is_array(arr)) return berth_fail(e, 0, "linux.%s: expected an array", field);
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    const char *path = json_string_value(v);
    if (!path || path[0] != '/')
      return berth_fail(e, 0, "linux.%s[%zu]: expected an absolute path", field, i);
    cleanup_fd int fd = path_open_in_root(root, path, 0, e);
    if (fd < 0) {
      if (e->errnum == ENOENT) {
        berth_error_clear(e);
        continue;
      }
      return berth_wrap(e, "linux.%s[%zu]", field, i);
    }
    if (act(root, fd, path, arg, e) < 0) return berth_wrap(e, "linux.%s[%zu] '%s'", field, i, path);
  }
  return 0;
}

static int make_readonly(int root, int fd, const char *path, void *arg, berth_error *e) {
  (void)root;
  (void)arg;
  return mount_bind_fd(fd, path, fd, true,
                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                       true, e);
}

static int mask(int root, int fd, const char *path, void *arg, berth_error *e) {
  int *null_fd = arg;
  struct stat st;
  if (fstat(fd, &st) < 0) return berth_fail_errno(e, "stat");
  if (S_ISDIR(st.st_mode)) return mount_empty_ro_tmpfs(fd, e);
  if (*null_fd < 0) {
    /* Bind only a verified /dev/null: the container's own could be anything. */
    *null_fd = path_open_in_root(root, "/dev/null", 0, e);
    if (*null_fd < 0) return -1;
    struct stat ns;
    if (fstat(*null_fd, &ns) < 0) return berth_fail_errno(e, "stat /dev/null");
    if (!S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
      return berth_fail(e, EPERM, "/dev/null in the container is not the null device");
  }
  return mount_bind_fd(*null_fd, "/dev/null", fd, false, 0, false, e);
}

int rootfs_finalize(json_t *config, berth_error *e) {
  cleanup_fd int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return berth_fail_errno(e, "open /");
  if (for_each_path(root, config, "readonlyPaths", make_readonly, NULL, e) < 0) return -1;
  cleanup_fd int null_fd = -1;
  if (for_each_path(root, config, "maskedPaths", mask, &null_fd, e) < 0) return -1;

  json_t *ro = json_object_get(json_object_get(config, "root"), "readonly");
  if (ro && !json_is_boolean(ro)) return berth_fail(e, 0, "root.readonly: expected a boolean");
  if (json_is_true(ro) && mount_set_attr(root, MOUNT_ATTR_RDONLY, 0, false, e) < 0)
    return berth_wrap(e, "root.readonly: remount / read-only");

  bool configured, rec;
  unsigned long prop;
  if (parse_root_propagation(config, &configured, &prop, &rec, e) < 0) return -1;
  if (configured && mount_set_propagation(root, prop, rec, e) < 0)
    return berth_wrap(e, "linux.rootfsPropagation");
  return 0;
}
