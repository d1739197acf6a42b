/* The container's filesystem view, built inside its new mount namespace.
 * The rootfs is hostile: every path is resolved inside it by fd
 * (openat2 RESOLVE_IN_ROOT), so symlinks such as `dev -> /elsewhere` or a
 * /dev/null replaced by a symlink cannot redirect a mount or a device. */
#ifndef BERTH_ROOTFS_H
#define BERTH_ROOTFS_H

#include <stdbool.h>

#include <jansson.h>

#include "cgroup.h"
#include "error.h"

/* Before pivot_root, in the new mount ns: applies rootfsPropagation (default
 * rslave of "/", then private for the pivot), bind-mounts the rootfs onto
 * itself, performs every entry of config.mounts (type, source, options:
 * flags, data, propagation, bind/rbind, ro remounts, tmpfs, proc, sysfs,
 * mqueue, devpts, cgroup via cgroup_mount), creates the default devices
 * (mknod, or bind from the host when in_userns) and the /dev symlinks
 * (fd, stdin, stdout, stderr, ptmx, core) plus config.linux.devices.
 * rootfs is the absolute host path of root.path. */
int rootfs_prepare(json_t *config, const char *rootfs, const berth_cgroup *cg, bool in_userns,
                   berth_error *e);
/* pivot_root into rootfs and detach the old root; no_pivot (runc's
 * --no-pivot) uses MS_MOVE + chroot instead. */
int rootfs_pivot(const char *rootfs, bool no_pivot, berth_error *e);
/* After pivot: bind-mounts the terminal's slave (e.g. /dev/pts/0) onto
 * /dev/console. */
int rootfs_bind_console(const char *slave_path, berth_error *e);
/* After pivot and sysctls: maskedPaths, readonlyPaths, root.readonly. */
int rootfs_finalize(json_t *config, berth_error *e);

#endif
