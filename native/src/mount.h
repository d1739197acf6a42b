/* Mounts inside a hostile rootfs: path resolution scoped to a root fd,
 * mount(8) option parsing, and performing one config.mounts entry.
 *
 * Mechanism: the new mount API (fsopen/fsconfig/fsmount, open_tree,
 * move_mount, mount_setattr; Linux >= 5.12). Every target is an O_PATH fd
 * resolved with openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS) and the mount
 * is attached with move_mount(MOVE_MOUNT_T_EMPTY_PATH) onto that fd, so no
 * path string is ever re-resolved after the check. fsconfig takes one option
 * at a time, which lets an error name the exact option the kernel refused;
 * mount_setattr changes only the attributes asked for, so flags locked by a
 * user namespace (nosuid, nodev, noexec, ro) are kept without reading them
 * back first. */
#ifndef BERTH_MOUNT_H
#define BERTH_MOUNT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "cgroup.h"
#include "error.h"

/* What the final component of a path must be when it is created. */
typedef enum { PATH_DIR = 1, PATH_FILE = 2 } path_kind;

/* Opens path (absolute or relative, taken relative to root_fd either way)
 * with every symlink and ".." confined to root_fd. Returns an O_PATH fd. */
int path_open_in_root(int root_fd, const char *path, int extra_flags, berth_error *e);
/* Like path_open_in_root, creating what is missing: intermediate
 * directories (mode 0755) and the last component as kind (a directory, or an
 * empty regular file 0644). A dangling symlink on the way is followed, inside
 * the root, and its target created there. Returns an O_PATH fd. */
int path_create_in_root(int root_fd, const char *path, path_kind kind, berth_error *e);
/* Opens the parent directory of path inside root_fd (created if missing) and
 * stores the last component in name (which must not be "." or ".."). */
int path_open_parent_in_root(int root_fd, const char *path, char *name, size_t name_size,
                             berth_error *e);

/* A mount entry's options, parsed. */
typedef struct mount_opts {
  uint64_t attr_set, attr_clr;   /* MOUNT_ATTR_* for the mount itself */
  uint64_t rattr_set, rattr_clr; /* rro, rnosuid, ...: applied with AT_RECURSIVE */
  unsigned int sb_ro;          /* 1: "ro" 2: "rw" given, 0: neither */
  char **sb_flags;             /* superblock flags for fsconfig: sync, dirsync, mand... */
  size_t n_sb_flags;
  char **data;                 /* key or key=value, each handed to fsconfig */
  size_t n_data;
  unsigned long propagation;   /* MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE or 0 */
  bool propagation_recursive;
  bool bind, rbind, remount;
  unsigned long ms_flags;      /* the same flags in mount(2) terms, for cgroup_mount */
} mount_opts;

/* Parses a JSON array of option strings (NULL is an empty list). A failure
 * names the offending option. */
int mount_opts_parse(json_t *options, mount_opts *o, berth_error *e);
void mount_opts_free(mount_opts *o);

/* Parses a propagation word (shared, rslave, private, ...) as used by
 * rootfsPropagation. */
int mount_parse_propagation(const char *word, unsigned long *prop, bool *recursive,
                            berth_error *e);
/* Sets the propagation of the mount fd refers to (AT_EMPTY_PATH). */
int mount_set_propagation(int fd, unsigned long prop, bool recursive, berth_error *e);
/* mount_setattr on fd (AT_EMPTY_PATH). */
int mount_set_attr(int fd, uint64_t set, uint64_t clr, bool recursive, berth_error *e);
/* Clones the mount tree at source_fd (AT_EMPTY_PATH) or path source (when
 * source_fd < 0) and attaches it on target_fd. */
int mount_bind_fd(int source_fd, const char *source, int target_fd, bool recursive,
                  uint64_t attr_set, bool attr_recursive, berth_error *e);
/* A new, empty read-only tmpfs on target_fd (maskedPaths over directories). */
int mount_empty_ro_tmpfs(int target_fd, berth_error *e);

/* What one config.mounts entry needs besides itself. */
typedef struct mount_ctx {
  int root_fd;              /* the rootfs, after its self bind mount */
  bool in_userns;
  const berth_cgroup *cg;   /* for type "cgroup" */
} mount_ctx;

/* Performs config.mounts[index]. Errors read
 * `mounts[3] (tmpfs on /run): mount: invalid option "sizee=1" ...`. */
int mount_config_entry(const mount_ctx *ctx, json_t *entry, size_t index, berth_error *e);

/* True if entry is a bind mount (type "bind", or a bind/rbind option). */
bool mount_entry_is_bind(json_t *entry);

#endif
