#include "devices.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "mount.h"
#include "util.h"

typedef struct dev_spec {
  const char *path;
  char type; /* c, b, u (unbuffered char), p (fifo) */
  unsigned int major, minor;
  mode_t mode;
  uid_t uid;
  gid_t gid;
} dev_spec;

/* runtime-spec "Default Devices". */
static const dev_spec DEFAULT_DEVICES[] = {
    {"/dev/null", 'c', 1, 3, 0666, 0, 0},    {"/dev/zero", 'c', 1, 5, 0666, 0, 0},
    {"/dev/full", 'c', 1, 7, 0666, 0, 0},    {"/dev/random", 'c', 1, 8, 0666, 0, 0},
    {"/dev/urandom", 'c', 1, 9, 0666, 0, 0}, {"/dev/tty", 'c', 5, 0, 0666, 0, 0},
};

static mode_t type_bits(char type) {
  switch (type) {
    case 'b':
      return S_IFBLK;
    case 'p':
      return S_IFIFO;
    default:
      return S_IFCHR;
  }
}

/* A device node made with mknod, or (user namespace) an empty file with the
 * host's node bind-mounted over it. */
static int create_one(int root_fd, const dev_spec *d, bool in_userns, berth_error *e) {
  char name[NAME_MAX + 1];
  cleanup_fd int parent = path_open_parent_in_root(root_fd, d->path, name, sizeof name, e);
  if (parent < 0) return -1;
  mode_t want = type_bits(d->type);
  dev_t rdev = d->type == 'p' ? 0 : makedev(d->major, d->minor);
  bool use_bind = in_userns && d->type != 'p';

  struct stat st;
  if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode))
      return berth_fail(e, EISDIR, "device '%s': a directory is in the way", d->path);
    bool same = (st.st_mode & S_IFMT) == want && (d->type == 'p' || st.st_rdev == rdev);
    if (!(same && !use_bind) && unlinkat(parent, name, 0) < 0)
      return berth_fail_errno(e, "device '%s': remove what is in the way", d->path);
    if (same && !use_bind) goto owner;
  } else if (errno != ENOENT) {
    return berth_fail_errno(e, "device '%s': stat", d->path);
  }

  if (use_bind) {
    struct stat host;
    if (stat(d->path, &host) < 0)
      return berth_fail_errno(e, "device '%s': bind from the host", d->path);
    if ((host.st_mode & S_IFMT) != want || host.st_rdev != rdev)
      return berth_fail(e, ENODEV, "device '%s': the host's node is not %c %u:%u", d->path,
                        d->type, d->major, d->minor);
    cleanup_fd int f =
        openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (f < 0) return berth_fail_errno(e, "device '%s': create the mount point", d->path);
    cleanup_fd int target = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (target < 0) return berth_fail_errno(e, "device '%s': open", d->path);
    if (mount_bind_fd(-1, d->path, target, false, 0, false, e) < 0)
      return berth_wrap(e, "device '%s'", d->path);
    return 0;
  }
  if (mknodat(parent, name, want | (d->mode & 07777), rdev) < 0)
    return berth_fail_errno(e, "device '%s': mknod %c %u:%u", d->path, d->type, d->major,
                            d->minor);
owner:
  /* mknod obeys the umask; the mode must be exactly what was asked. The
   * entry is the node just made or checked, not a symlink. */
  if (fchmodat(parent, name, d->mode & 07777, 0) < 0)
    return berth_fail_errno(e, "device '%s': chmod %04o", d->path, (unsigned)(d->mode & 07777));
  if (fchownat(parent, name, d->uid, d->gid, AT_SYMLINK_NOFOLLOW) < 0)
    return berth_fail_errno(e, "device '%s': chown %u:%u", d->path, (unsigned)d->uid,
                            (unsigned)d->gid);
  return 0;
}

static int json_uint(json_t *obj, const char *key, unsigned long long max, bool required,
                     unsigned long long dflt, unsigned long long *out, size_t idx,
                     berth_error *e) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    if (required) return berth_fail(e, 0, "linux.devices[%zu]: %s is missing", idx, key);
    *out = dflt;
    return 0;
  }
  if (!json_is_integer(v) || json_integer_value(v) < 0 ||
      (unsigned long long)json_integer_value(v) > max)
    return berth_fail(e, 0, "linux.devices[%zu]: %s: expected an integer 0-%llu", idx, key, max);
  *out = (unsigned long long)json_integer_value(v);
  return 0;
}

static int parse_device(json_t *j, size_t idx, dev_spec *d, berth_error *e) {
  if (!json_is_object(j)) return berth_fail(e, 0, "linux.devices[%zu]: expected an object", idx);
  d->path = json_str(j, "path");
  if (!d->path || d->path[0] != '/')
    return berth_fail(e, 0, "linux.devices[%zu]: path: expected an absolute path", idx);
  const char *type = json_str(j, "type");
  if (!type || strlen(type) != 1 || !strchr("cbup", type[0]))
    return berth_fail(e, 0, "linux.devices[%zu] (%s): type: expected c, b, u or p", idx,
                      d->path);
  d->type = type[0];
  bool need_numbers = d->type != 'p';
  unsigned long long major, minor, mode, uid, gid;
  if (json_uint(j, "major", 0xfff, need_numbers, 0, &major, idx, e) < 0 ||
      json_uint(j, "minor", 0xfffff, need_numbers, 0, &minor, idx, e) < 0 ||
      json_uint(j, "fileMode", 07777, false, 0666, &mode, idx, e) < 0 ||
      json_uint(j, "uid", 0xffffffffULL, false, 0, &uid, idx, e) < 0 ||
      json_uint(j, "gid", 0xffffffffULL, false, 0, &gid, idx, e) < 0)
    return -1;
  d->major = (unsigned)major;
  d->minor = (unsigned)minor;
  d->mode = (mode_t)mode;
  d->uid = (uid_t)uid;
  d->gid = (gid_t)gid;
  return 0;
}

int devices_create(int root_fd, json_t *config_devices, bool in_userns, berth_error *e) {
  if (config_devices && !json_is_null(config_devices) && !json_is_array(config_devices))
    return berth_fail(e, 0, "linux.devices: expected an array");
  size_t n = json_is_array(config_devices) ? json_array_size(config_devices) : 0;
  /* Validate every entry before creating anything. */
  for (size_t i = 0; i < n; i++) {
    dev_spec d;
    if (parse_device(json_array_get(config_devices, i), i, &d, e) < 0) return -1;
  }
  for (size_t k = 0; k < BERTH_ARRAY_LEN(DEFAULT_DEVICES); k++) {
    bool overridden = false;
    for (size_t i = 0; i < n && !overridden; i++) {
      const char *p = json_str(json_array_get(config_devices, i), "path");
      overridden = p && strcmp(p, DEFAULT_DEVICES[k].path) == 0;
    }
    if (!overridden && create_one(root_fd, &DEFAULT_DEVICES[k], in_userns, e) < 0)
      return berth_wrap(e, "default devices");
  }
  for (size_t i = 0; i < n; i++) {
    dev_spec d;
    if (parse_device(json_array_get(config_devices, i), i, &d, e) < 0) return -1;
    if (create_one(root_fd, &d, in_userns, e) < 0) return berth_wrap(e, "linux.devices[%zu]", i);
  }
  return 0;
}

static int make_link(int dev_fd, const char *target, const char *name, bool replace,
                     berth_error *e) {
  if (replace) {
    struct stat st;
    if (fstatat(dev_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(st.st_mode))
        return berth_fail(e, EISDIR, "symlink /dev/%s: a directory is in the way", name);
      if (unlinkat(dev_fd, name, 0) < 0)
        return berth_fail_errno(e, "symlink /dev/%s: remove what is in the way", name);
    }
  }
  if (symlinkat(target, dev_fd, name) < 0 && errno != EEXIST)
    return berth_fail_errno(e, "symlink /dev/%s -> %s", name, target);
  return 0;
}

int devices_symlinks(int root_fd, berth_error *e) {
  cleanup_fd int dev = path_create_in_root(root_fd, "/dev", PATH_DIR, e);
  if (dev < 0) return berth_wrap(e, "/dev symlinks");
  static const char *const LINKS[][2] = {
      {"/proc/self/fd", "fd"},
      {"/proc/self/fd/0", "stdin"},
      {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"},
  };
  for (size_t i = 0; i < BERTH_ARRAY_LEN(LINKS); i++)
    if (make_link(dev, LINKS[i][0], LINKS[i][1], false, e) < 0) return -1;
  /* A /dev/ptmx that the image ships would bypass the container's devpts. */
  if (make_link(dev, "pts/ptmx", "ptmx", true, e) < 0) return -1;
  if (access("/proc/kcore", F_OK) == 0 && make_link(dev, "/proc/kcore", "core", false, e) < 0)
    return -1;
  return 0;
}
