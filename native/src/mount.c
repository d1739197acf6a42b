#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* ---- path resolution confined to a root fd ---- */

#define MAX_SYMLINKS 40
#define MAX_DEPTH 256

/* -1 unknown, 0 the kernel lacks openat2 (ENOSYS), 1 it has it. */
static int have_openat2 = -1;

/* Resolves path under root_fd by hand, one component at a time, for kernels
 * without openat2: each component is opened O_NOFOLLOW, symlinks are read and
 * spliced into the remaining path (absolute ones restart at root_fd), and
 * ".." pops a stack of directory fds that never goes below root_fd. Magic
 * links are read as plain text, so they cannot jump out either. Returns an
 * O_PATH fd or -1 with errno set. */
static int walk_in_root(int root_fd, const char *path, int flags, bool no_symlinks) {
  char *buf = malloc(2 * PATH_MAX);
  if (!buf) return -1;
  if (snprintf(buf, 2 * PATH_MAX, "%s", path) >= 2 * PATH_MAX) {
    free(buf);
    errno = ENAMETOOLONG;
    return -1;
  }
  int stack[MAX_DEPTH];
  int depth = 0, links = 0, err = 0, result = -1;
  stack[0] = fcntl(root_fd, F_DUPFD_CLOEXEC, 3);
  if (stack[0] < 0) {
    free(buf);
    return -1;
  }
  char *rest = buf;
  for (;;) {
    while (*rest == '/') rest++;
    if (*rest == '\0') break;
    char *slash = strchr(rest, '/');
    size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
    char comp[NAME_MAX + 1];
    if (len > NAME_MAX) {
      err = ENAMETOOLONG;
      goto out;
    }
    memcpy(comp, rest, len);
    comp[len] = '\0';
    rest += len;
    bool last = true;
    for (const char *p = rest; *p; p++)
      if (*p != '/') last = false;
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      if (depth > 0) close(stack[depth--]);
      continue;
    }
    int fd = openat(stack[depth], comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
      err = errno;
      close(fd);
      goto out;
    }
    if (S_ISLNK(st.st_mode) && !(last && (flags & O_NOFOLLOW))) {
      if (no_symlinks) {
        close(fd);
        err = ELOOP;
        goto out;
      }
      char target[PATH_MAX];
      ssize_t n = readlinkat(fd, "", target, sizeof target - 1);
      close(fd);
      if (n < 0) {
        err = errno;
        goto out;
      }
      target[n] = '\0';
      if (++links > MAX_SYMLINKS) {
        err = ELOOP;
        goto out;
      }
      char *next = malloc(2 * PATH_MAX);
      if (!next) {
        err = ENOMEM;
        goto out;
      }
      if (snprintf(next, 2 * PATH_MAX, "%s/%s", target, rest) >= 2 * PATH_MAX) {
        free(next);
        err = ENAMETOOLONG;
        goto out;
      }
      free(buf);
      buf = rest = next;
      if (target[0] == '/')
        while (depth > 0) close(stack[depth--]);
      continue;
    }
    if (!last && !S_ISDIR(st.st_mode)) {
      close(fd);
      err = ENOTDIR;
      goto out;
    }
    if (depth + 1 >= MAX_DEPTH) {
      close(fd);
      err = ENAMETOOLONG;
      goto out;
    }
    stack[++depth] = fd;
  }
  if (flags & O_DIRECTORY) {
    struct stat st;
    if (fstat(stack[depth], &st) < 0) {
      err = errno;
      goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
      err = ENOTDIR;
      goto out;
    }
  }
  result = stack[depth--];
out:
  while (depth >= 0) close(stack[depth--]);
  free(buf);
  if (result < 0) errno = err;
  return result;
}

/* O_PATH fd of path inside root_fd, or -1 with errno. */
static int resolve_in_root_ex(int root_fd, const char *path, int flags, bool no_symlinks) {
  const char *p = (path[0] == '\0') ? "." : path;
  if (have_openat2 != 0) {
    struct open_how how = {
        .flags = (uint64_t)(O_PATH | O_CLOEXEC | flags),
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | (no_symlinks ? RESOLVE_NO_SYMLINKS : 0),
    };
    int fd;
    /* EAGAIN: a rename elsewhere raced with a ".." lookup; the kernel asks
     * for a retry rather than risk an escape. */
    for (int tries = 0; tries < 16; tries++) {
      fd = (int)syscall(SYS_openat2, root_fd, p, &how, sizeof how);
      if (fd >= 0 || errno != EAGAIN) break;
    }
    if (fd >= 0 || errno != ENOSYS) {
      have_openat2 = 1;
      return fd;
    }
    have_openat2 = 0;
  }
  return walk_in_root(root_fd, p, flags, no_symlinks);
}

static int resolve_in_root(int root_fd, const char *path, int flags) {
  return resolve_in_root_ex(root_fd, path, flags, false);
}

int path_open_in_root(int root_fd, const char *path, int extra_flags, berth_error *e) {
  int fd = resolve_in_root(root_fd, path, extra_flags);
  if (fd < 0) return berth_fail_errno(e, "open '%s' inside the rootfs", path);
  return fd;
}

/* One step towards creating path: finds the first component that does not
 * resolve and either creates it or, when it is a dangling symlink, rewrites
 * path to go through the symlink's target. */
static int create_step(int root_fd, char *path, size_t size, path_kind kind, int *links,
                       berth_error *e) {
  char prefix[PATH_MAX] = "";
  size_t plen = 0;
  const char *p = path;
  for (;;) {
    while (*p == '/') p++;
    if (*p == '\0') return berth_fail(e, ENOENT, "create '%s' inside the rootfs", path);
    const char *slash = strchr(p, '/');
    size_t len = slash ? (size_t)(slash - p) : strlen(p);
    if (len > NAME_MAX) return berth_fail(e, ENAMETOOLONG, "create '%s'", path);
    char comp[NAME_MAX + 1];
    memcpy(comp, p, len);
    comp[len] = '\0';
    p += len;
    bool last = true;
    for (const char *q = p; *q; q++)
      if (*q != '/') last = false;

    char probe[PATH_MAX];
    if (snprintf(probe, sizeof probe, "%s/%s", prefix, comp) >= (int)sizeof probe)
      return berth_fail(e, ENAMETOOLONG, "create '%s'", path);
    cleanup_fd int fd = resolve_in_root(root_fd, probe, 0);
    if (fd >= 0) {
      memcpy(prefix, probe, strlen(probe) + 1);
      plen = strlen(prefix);
      continue;
    }
    if (errno != ENOENT) return berth_fail_errno(e, "open '%s' inside the rootfs", probe);

    cleanup_fd int parent = resolve_in_root(root_fd, plen ? prefix : "/", O_DIRECTORY);
    if (parent < 0)
      return berth_fail_errno(e, "open '%s' inside the rootfs", plen ? prefix : "/");
    struct stat st;
    if (fstatat(parent, comp, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISLNK(st.st_mode)) return berth_fail(e, ENOENT, "open '%s' inside the rootfs", probe);
      char target[PATH_MAX];
      ssize_t n = readlinkat(parent, comp, target, sizeof target - 1);
      if (n < 0) return berth_fail_errno(e, "readlink '%s' inside the rootfs", probe);
      target[n] = '\0';
      if (++*links > MAX_SYMLINKS) return berth_fail(e, ELOOP, "create '%s'", path);
      char next[PATH_MAX];
      int w = target[0] == '/' ? snprintf(next, sizeof next, "%s%s", target, p)
                               : snprintf(next, sizeof next, "%s/%s%s", prefix, target, p);
      if (w < 0 || (size_t)w >= sizeof next || (size_t)w >= size)
        return berth_fail(e, ENAMETOOLONG, "create '%s'", path);
      memcpy(path, next, (size_t)w + 1);
      return 0;
    }
    if (errno != ENOENT) return berth_fail_errno(e, "stat '%s' inside the rootfs", probe);
    if (last && kind == PATH_FILE) {
      int nfd = openat(parent, comp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (nfd < 0 && errno != EEXIST)
        return berth_fail_errno(e, "create file '%s' inside the rootfs", probe);
      if (nfd >= 0) close(nfd);
    } else if (mkdirat(parent, comp, 0755) < 0 && errno != EEXIST) {
      return berth_fail_errno(e, "mkdir '%s' inside the rootfs", probe);
    }
    return 0;
  }
}

int path_create_in_root(int root_fd, const char *path, path_kind kind, berth_error *e) {
  char cur[PATH_MAX];
  if (snprintf(cur, sizeof cur, "%s", path) >= (int)sizeof cur)
    return berth_fail(e, ENAMETOOLONG, "create '%s'", path);
  int links = 0;
  for (int step = 0; step < 4 * MAX_DEPTH; step++) {
    int fd = resolve_in_root(root_fd, cur, 0);
    if (fd >= 0) {
      struct stat st;
      if (fstat(fd, &st) < 0) {
        int saved = errno;
        close(fd);
        return berth_fail(e, saved, "stat '%s' inside the rootfs", path);
      }
      if (kind == PATH_DIR && !S_ISDIR(st.st_mode)) {
        close(fd);
        return berth_fail(e, ENOTDIR, "'%s' inside the rootfs must be a directory", path);
      }
      if (kind == PATH_FILE && S_ISDIR(st.st_mode)) {
        close(fd);
        return berth_fail(e, EISDIR, "'%s' inside the rootfs must not be a directory", path);
      }
      return fd;
    }
    if (errno != ENOENT) return berth_fail_errno(e, "open '%s' inside the rootfs", path);
    if (create_step(root_fd, cur, sizeof cur, kind, &links, e) < 0) return -1;
  }
  return berth_fail(e, ELOOP, "create '%s' inside the rootfs", path);
}

int path_open_parent_in_root(int root_fd, const char *path, char *name, size_t name_size,
                             berth_error *e) {
  char dir[PATH_MAX];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
    return berth_fail(e, ENAMETOOLONG, "'%s'", path);
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
  char *slash = strrchr(dir, '/');
  const char *base = slash ? slash + 1 : dir;
  if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
    return berth_fail(e, EINVAL, "'%s' does not name a file", path);
  if (snprintf(name, name_size, "%s", base) >= (int)name_size)
    return berth_fail(e, ENAMETOOLONG, "'%s'", path);
  if (slash)
    *slash = '\0';
  else
    dir[0] = '\0';
  return path_create_in_root(root_fd, dir[0] ? dir : "/", PATH_DIR, e);
}

/* ---- options ---- */

typedef enum {
  OPT_ATTR,    /* a mount attribute: set, or cleared when clear */
  OPT_ATIME,   /* one of the exclusive atime modes */
  OPT_SB,      /* a superblock flag, passed to fsconfig by name */
  OPT_RO,      /* ro / rw: both the mount and the superblock */
  OPT_PROP,    /* propagation */
  OPT_BIND,
  OPT_RBIND,
  OPT_REMOUNT,
  OPT_NOOP,
  OPT_REJECT,
} opt_kind;

typedef struct opt_def {
  const char *name;
  opt_kind kind;
  bool clear;
  uint64_t attr;       /* MOUNT_ATTR_*, or the propagation */
  unsigned long ms;    /* the mount(2) flag */
} opt_def;

/* norelatime and nostrictatime name the other modes on purpose: mount(8)
 * says "norelatime: do not use relatime", "nostrictatime: kernel default". */
static const opt_def OPTS[] = {
    {"ro", OPT_RO, false, MOUNT_ATTR_RDONLY, MS_RDONLY},
    {"rw", OPT_RO, true, MOUNT_ATTR_RDONLY, MS_RDONLY},
    {"nosuid", OPT_ATTR, false, MOUNT_ATTR_NOSUID, MS_NOSUID},
    {"suid", OPT_ATTR, true, MOUNT_ATTR_NOSUID, MS_NOSUID},
    {"nodev", OPT_ATTR, false, MOUNT_ATTR_NODEV, MS_NODEV},
    {"dev", OPT_ATTR, true, MOUNT_ATTR_NODEV, MS_NODEV},
    {"noexec", OPT_ATTR, false, MOUNT_ATTR_NOEXEC, MS_NOEXEC},
    {"exec", OPT_ATTR, true, MOUNT_ATTR_NOEXEC, MS_NOEXEC},
    {"nodiratime", OPT_ATTR, false, MOUNT_ATTR_NODIRATIME, MS_NODIRATIME},
    {"diratime", OPT_ATTR, true, MOUNT_ATTR_NODIRATIME, MS_NODIRATIME},
    {"nosymfollow", OPT_ATTR, false, MOUNT_ATTR_NOSYMFOLLOW, 0},
    {"symfollow", OPT_ATTR, true, MOUNT_ATTR_NOSYMFOLLOW, 0},
    {"noatime", OPT_ATIME, false, MOUNT_ATTR_NOATIME, MS_NOATIME},
    {"atime", OPT_ATIME, false, MOUNT_ATTR_RELATIME, 0},
    {"relatime", OPT_ATIME, false, MOUNT_ATTR_RELATIME, MS_RELATIME},
    {"norelatime", OPT_ATIME, false, MOUNT_ATTR_STRICTATIME, MS_STRICTATIME},
    {"strictatime", OPT_ATIME, false, MOUNT_ATTR_STRICTATIME, MS_STRICTATIME},
    {"nostrictatime", OPT_ATIME, false, MOUNT_ATTR_RELATIME, MS_RELATIME},
    {"sync", OPT_SB, false, 0, MS_SYNCHRONOUS},
    {"async", OPT_SB, true, 0, MS_SYNCHRONOUS},
    {"dirsync", OPT_SB, false, 0, MS_DIRSYNC},
    {"mand", OPT_SB, false, 0, MS_MANDLOCK},
    {"nomand", OPT_SB, true, 0, MS_MANDLOCK},
    {"lazytime", OPT_SB, false, 0, MS_LAZYTIME},
    {"nolazytime", OPT_SB, true, 0, MS_LAZYTIME},
    {"shared", OPT_PROP, false, MS_SHARED, 0},
    {"slave", OPT_PROP, false, MS_SLAVE, 0},
    {"private", OPT_PROP, false, MS_PRIVATE, 0},
    {"unbindable", OPT_PROP, false, MS_UNBINDABLE, 0},
    {"bind", OPT_BIND, false, 0, MS_BIND},
    {"rbind", OPT_RBIND, false, 0, MS_BIND | MS_REC},
    {"remount", OPT_REMOUNT, false, 0, MS_REMOUNT},
    {"defaults", OPT_NOOP, false, 0, 0},
    {"idmap", OPT_REJECT, false, 0, 0},
    {"ridmap", OPT_REJECT, false, 0, 0},
};

static const opt_def *find_opt(const char *name) {
  for (size_t i = 0; i < BERTH_ARRAY_LEN(OPTS); i++)
    if (strcmp(OPTS[i].name, name) == 0) return &OPTS[i];
  return NULL;
}

static int push_str(char ***arr, size_t *n, const char *s, berth_error *e) {
  char **na = realloc(*arr, (*n + 1) * sizeof *na);
  if (!na) return berth_fail(e, ENOMEM, "option \"%s\"", s);
  *arr = na;
  na[*n] = strdup(s);
  if (!na[*n]) return berth_fail(e, ENOMEM, "option \"%s\"", s);
  (*n)++;
  return 0;
}

void mount_opts_free(mount_opts *o) {
  for (size_t i = 0; i < o->n_sb_flags; i++) free(o->sb_flags[i]);
  for (size_t i = 0; i < o->n_data; i++) free(o->data[i]);
  free(o->sb_flags);
  free(o->data);
  o->sb_flags = o->data = NULL;
  o->n_sb_flags = o->n_data = 0;
}

static void apply_attr(mount_opts *o, const opt_def *d, bool recursive) {
  uint64_t *set = recursive ? &o->rattr_set : &o->attr_set;
  uint64_t *clr = recursive ? &o->rattr_clr : &o->attr_clr;
  if (d->kind == OPT_ATIME) {
    *set = (*set & ~(uint64_t)MOUNT_ATTR__ATIME) | d->attr;
    *clr |= MOUNT_ATTR__ATIME;
  } else if (d->clear) {
    *set &= ~d->attr;
    *clr |= d->attr;
  } else {
    *set |= d->attr;
    *clr &= ~d->attr;
  }
  if (d->kind == OPT_ATIME) o->ms_flags &= ~(unsigned long)(MS_NOATIME | MS_RELATIME | MS_STRICTATIME);
  if (d->clear)
    o->ms_flags &= ~d->ms;
  else
    o->ms_flags |= d->ms;
}

int mount_opts_parse(json_t *options, mount_opts *o, berth_error *e) {
  memset(o, 0, sizeof *o);
  if (options == NULL || json_is_null(options)) return 0;
  if (!json_is_array(options)) return berth_fail(e, 0, "options: expected an array of strings");
  size_t i;
  json_t *v;
  json_array_foreach(options, i, v) {
    if (!json_is_string(v)) {
      mount_opts_free(o);
      return berth_fail(e, 0, "options[%zu]: expected a string", i);
    }
    const char *s = json_string_value(v);
    const opt_def *d = find_opt(s);
    bool recursive = false;
    /* runtime-spec 1.1 recursive attributes: rro, rnosuid, rnoatime, ... */
    if (!d && s[0] == 'r' && (d = find_opt(s + 1)) != NULL) {
      if (d->kind != OPT_ATTR && d->kind != OPT_ATIME && d->kind != OPT_RO && d->kind != OPT_PROP)
        d = NULL;
      recursive = d != NULL;
    }
    if (!d) {
      if (s[0] == '\0' || s[0] == '=') {
        mount_opts_free(o);
        return berth_fail(e, 0, "mount: invalid option \"%s\"", s);
      }
      /* "mode=755,size=64k" in one entry is mount(8)'s data string:
       * fsconfig takes its parts one at a time. */
      char *copy = strdup(s);
      if (!copy) {
        mount_opts_free(o);
        return berth_fail(e, ENOMEM, "option \"%s\"", s);
      }
      char *save = NULL;
      for (char *part = strtok_r(copy, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        if (push_str(&o->data, &o->n_data, part, e) < 0) {
          free(copy);
          mount_opts_free(o);
          return -1;
        }
      }
      free(copy);
      continue;
    }
    switch (d->kind) {
      case OPT_RO:
        if (!recursive) o->sb_ro = d->clear ? 2 : 1;
        /* fallthrough */
      case OPT_ATTR:
      case OPT_ATIME:
        apply_attr(o, d, recursive);
        break;
      case OPT_SB:
        if (push_str(&o->sb_flags, &o->n_sb_flags, s, e) < 0) {
          mount_opts_free(o);
          return -1;
        }
        if (d->clear)
          o->ms_flags &= ~d->ms;
        else
          o->ms_flags |= d->ms;
        break;
      case OPT_PROP:
        o->propagation = (unsigned long)d->attr;
        o->propagation_recursive = recursive;
        break;
      case OPT_BIND:
        o->bind = true;
        break;
      case OPT_RBIND:
        o->bind = o->rbind = true;
        break;
      case OPT_REMOUNT:
        o->remount = true;
        break;
      case OPT_NOOP:
        break;
      case OPT_REJECT:
        mount_opts_free(o);
        return berth_fail(e, EOPNOTSUPP, "mount: option \"%s\" (idmapped mounts) is not supported",
                          s);
    }
  }
  return 0;
}

int mount_parse_propagation(const char *word, unsigned long *prop, bool *recursive,
                            berth_error *e) {
  bool rec = word[0] == 'r' && strcmp(word, "rw") != 0;
  const opt_def *d = find_opt(rec ? word + 1 : word);
  if (!d || d->kind != OPT_PROP)
    return berth_fail(e, 0,
                      "invalid propagation \"%s\" (expected shared, slave, private, unbindable "
                      "or their r- forms)",
                      word);
  *prop = (unsigned long)d->attr;
  *recursive = rec;
  return 0;
}

int mount_set_propagation(int fd, unsigned long prop, bool recursive, berth_error *e) {
  struct mount_attr a = {.propagation = prop};
  if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
    return berth_fail_errno(e, "set mount propagation");
  return 0;
}

int mount_set_attr(int fd, uint64_t set, uint64_t clr, bool recursive, berth_error *e) {
  if (set == 0 && clr == 0) return 0;
  struct mount_attr a = {.attr_set = set, .attr_clr = clr};
  if (mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof a) < 0)
    return berth_fail_errno(e, "mount_setattr");
  return 0;
}

int mount_bind_fd(int source_fd, const char *source, int target_fd, bool recursive,
                  uint64_t attr_set, bool attr_recursive, berth_error *e) {
  unsigned int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0);
  cleanup_fd int tree = source_fd >= 0 ? open_tree(source_fd, "", flags | AT_EMPTY_PATH)
                                       : open_tree(AT_FDCWD, source, flags);
  if (tree < 0) return berth_fail_errno(e, "bind '%s'", source);
  if (mount_set_attr(tree, attr_set, 0, attr_recursive, e) < 0)
    return berth_wrap(e, "bind '%s'", source);
  if (move_mount(tree, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return berth_fail_errno(e, "bind '%s': move_mount", source);
  return 0;
}

int mount_empty_ro_tmpfs(int target_fd, berth_error *e) {
  cleanup_fd int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
  if (fs < 0) return berth_fail_errno(e, "fsopen tmpfs");
  if (fsconfig(fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
      fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
      fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return berth_fail_errno(e, "create read-only tmpfs");
  cleanup_fd int m = fsmount(fs, FSMOUNT_CLOEXEC,
                             MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                 MOUNT_ATTR_NOEXEC);
  if (m < 0) return berth_fail_errno(e, "fsmount tmpfs");
  if (move_mount(m, "", target_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return berth_fail_errno(e, "move_mount tmpfs");
  return 0;
}

/* ---- one config.mounts entry ---- */

bool mount_entry_is_bind(json_t *entry) {
  const char *type = json_str(entry, "type");
  if (type && strcmp(type, "bind") == 0) return true;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(entry, "options"), i, v) {
    const char *s = json_string_value(v);
    if (s && (strcmp(s, "bind") == 0 || strcmp(s, "rbind") == 0)) return true;
  }
  return false;
}

/* The last error message the kernel logged on an fs context ("e tmpfs:
 * Unknown parameter 'sizee'"), without its severity prefix. */
static void fs_log(int fs, char *out, size_t size) {
  out[0] = '\0';
  char buf[512];
  for (int i = 0; i < 16; i++) {
    ssize_t n = read(fs, buf, sizeof buf - 1);
    if (n <= 0) break;
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
    const char *msg = (n > 2 && buf[1] == ' ') ? buf + 2 : buf;
    snprintf(out, size, "%s", msg);
  }
}

static int fail_fs(berth_error *e, int errnum, int fs, const char *what) {
  char log[512];
  fs_log(fs, log, sizeof log);
  if (log[0]) return berth_fail(e, errnum, "%s (%s)", what, log);
  return berth_fail(e, errnum, "%s", what);
}

/* Creates a new filesystem instance of type with the parsed options and
 * returns its detached mount fd. */
static int new_fs_mount(const char *type, const char *source, const mount_opts *o,
                        berth_error *e) {
  cleanup_fd int fs = fsopen(type, FSOPEN_CLOEXEC);
  if (fs < 0) {
    if (errno == ENODEV)
      return berth_fail(e, ENODEV, "mount: unknown filesystem type \"%s\"", type);
    return berth_fail_errno(e, "mount: fsopen \"%s\"", type);
  }
  if (source && source[0] && fsconfig(fs, FSCONFIG_SET_STRING, "source", source, 0) < 0)
    return fail_fs(e, errno, fs, "mount: invalid source");
  if (o->sb_ro && fsconfig(fs, FSCONFIG_SET_FLAG, o->sb_ro == 1 ? "ro" : "rw", NULL, 0) < 0)
    return fail_fs(e, errno, fs, o->sb_ro == 1 ? "mount: option \"ro\"" : "mount: option \"rw\"");
  for (size_t i = 0; i < o->n_sb_flags; i++) {
    if (fsconfig(fs, FSCONFIG_SET_FLAG, o->sb_flags[i], NULL, 0) < 0) {
      char what[256];
      snprintf(what, sizeof what, "mount: option \"%s\"", o->sb_flags[i]);
      return fail_fs(e, errno, fs, what);
    }
  }
  for (size_t i = 0; i < o->n_data; i++) {
    char key[256];
    const char *opt = o->data[i];
    const char *eq = strchr(opt, '=');
    int rc;
    if (eq) {
      size_t klen = (size_t)(eq - opt);
      if (klen >= sizeof key) return berth_fail(e, EINVAL, "mount: invalid option \"%s\"", opt);
      memcpy(key, opt, klen);
      key[klen] = '\0';
      rc = fsconfig(fs, FSCONFIG_SET_STRING, key, eq + 1, 0);
    } else {
      rc = fsconfig(fs, FSCONFIG_SET_FLAG, opt, NULL, 0);
    }
    if (rc < 0) {
      char what[512];
      snprintf(what, sizeof what, "mount: invalid option \"%s\"", opt);
      return fail_fs(e, errno, fs, what);
    }
  }
  if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return fail_fs(e, errno, fs, "mount: create the filesystem");
  uint64_t attrs = o->attr_set | o->rattr_set;
  int m = fsmount(fs, FSMOUNT_CLOEXEC, (unsigned int)attrs);
  if (m < 0) return fail_fs(e, errno, fs, "mount: fsmount");
  return m;
}

static int attach(int mnt, int target, berth_error *e) {
  if (move_mount(mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return berth_fail_errno(e, "mount: move_mount onto the destination");
  return 0;
}

static int apply_attrs_and_propagation(int mnt, const mount_opts *o, berth_error *e) {
  if (mount_set_attr(mnt, o->attr_set, o->attr_clr, false, e) < 0) return -1;
  if (mount_set_attr(mnt, o->rattr_set, o->rattr_clr, true, e) < 0) return -1;
  return 0;
}

static int do_bind(const mount_ctx *ctx, const char *source, const char *dest, const mount_opts *o,
                   bool recursive, berth_error *e) {
  if (!source || !source[0]) return berth_fail(e, 0, "bind mount: source is missing");
  if (o->n_data > 0)
    return berth_fail(e, EINVAL, "mount: invalid option \"%s\" (a bind mount takes no data)",
                      o->data[0]);
  if (o->n_sb_flags > 0)
    return berth_fail(e, EINVAL,
                      "mount: option \"%s\" is a filesystem flag, not valid on a bind mount",
                      o->sb_flags[0]);
  struct stat st;
  if (stat(source, &st) < 0) return berth_fail_errno(e, "bind mount: source '%s'", source);
  cleanup_fd int tree = open_tree(AT_FDCWD, source,
                                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                                      (recursive ? AT_RECURSIVE : 0));
  if (tree < 0) return berth_fail_errno(e, "bind mount: open_tree '%s'", source);
  if (apply_attrs_and_propagation(tree, o, e) < 0) return berth_wrap(e, "bind mount");
  cleanup_fd int target =
      path_create_in_root(ctx->root_fd, dest, S_ISDIR(st.st_mode) ? PATH_DIR : PATH_FILE, e);
  if (target < 0) return berth_wrap(e, "destination");
  if (attach(tree, target, e) < 0) return -1;
  if (o->propagation && mount_set_propagation(tree, o->propagation, o->propagation_recursive, e))
    return -1;
  return 0;
}

static int do_remount(const mount_ctx *ctx, const char *dest, const mount_opts *o,
                      berth_error *e) {
  cleanup_fd int target = path_open_in_root(ctx->root_fd, dest, 0, e);
  if (target < 0) return berth_wrap(e, "remount");
  if (apply_attrs_and_propagation(target, o, e) < 0) return berth_wrap(e, "remount");
  if (o->propagation &&
      mount_set_propagation(target, o->propagation, o->propagation_recursive, e) < 0)
    return berth_wrap(e, "remount");
  return 0;
}

static int do_cgroup(const mount_ctx *ctx, const char *dest, const mount_opts *o,
                     berth_error *e) {
  cleanup_fd int target = path_create_in_root(ctx->root_fd, dest, PATH_DIR, e);
  if (target < 0) return berth_wrap(e, "destination");
  /* cgroup_mount mounts in several steps (a tmpfs, then a hierarchy in each
   * of its directories), so it needs a path that sees each new mount, which
   * /proc/self/fd/N does not: hand it the canonical path of the resolved
   * target, checked to lie inside the rootfs and to be that same inode. */
  char via[64], real[PATH_MAX];
  snprintf(via, sizeof via, "/proc/self/fd/%d", target);
  ssize_t n = readlink(via, real, sizeof real - 1);
  if (n < 0) return berth_fail_errno(e, "destination: readlink %s", via);
  real[n] = '\0';
  char root[PATH_MAX];
  snprintf(via, sizeof via, "/proc/self/fd/%d", ctx->root_fd);
  ssize_t rn = readlink(via, root, sizeof root - 1);
  if (rn < 0) return berth_fail_errno(e, "rootfs: readlink %s", via);
  root[rn] = '\0';
  size_t rlen = strcmp(root, "/") == 0 ? 0 : (size_t)rn;
  if (strncmp(real, root, rlen) != 0 || (real[rlen] != '/' && real[rlen] != '\0'))
    return berth_fail(e, EXDEV, "destination: '%s' is outside the rootfs", real);
  struct stat want, got;
  if (fstat(target, &want) < 0 || stat(real, &got) < 0 || want.st_dev != got.st_dev ||
      want.st_ino != got.st_ino)
    return berth_fail(e, EXDEV, "destination: '%s' changed while it was mounted on", real);
  if (cgroup_mount(ctx->cg, real, o->ms_flags, e) < 0) return -1;
  if (o->propagation) {
    cleanup_fd int now = path_open_in_root(ctx->root_fd, dest, 0, e);
    if (now < 0) return -1;
    if (mount_set_propagation(now, o->propagation, o->propagation_recursive, e) < 0) return -1;
  }
  return 0;
}

static int do_new_fs(const mount_ctx *ctx, const char *type, const char *source, const char *dest,
                     const mount_opts *o, berth_error *e) {
  cleanup_fd int target = path_create_in_root(ctx->root_fd, dest, PATH_DIR, e);
  if (target < 0) return berth_wrap(e, "destination");
  /* The runtime and LSMs write under /proc (and read /sys) after pivot: a
   * symlink on the way could later be covered by another mount and turn
   * those writes into writes to plain files (CVE-2019-19921). */
  if (strcmp(type, "proc") == 0 || strcmp(type, "sysfs") == 0) {
    int plain = resolve_in_root_ex(ctx->root_fd, dest, O_DIRECTORY, true);
    if (plain < 0 && errno == ELOOP)
      return berth_fail(e, EXDEV, "destination: %s must be mounted on a plain directory, not "
                        "through a symlink", type);
    if (plain < 0) return berth_fail_errno(e, "destination");
    close(plain);
  }
  cleanup_fd int mnt = new_fs_mount(type, source, o, e);
  if (mnt < 0) {
    /* A user namespace that does not own the network namespace may not mount
     * sysfs: bind the host's /sys instead, as runc does. */
    if (e->errnum == EPERM && ctx->in_userns && strcmp(type, "sysfs") == 0) {
      berth_error_clear(e);
      mount_opts bind = *o;
      bind.rattr_set |= bind.attr_set;
      bind.attr_set = 0;
      return do_bind(ctx, "/sys", dest, &bind, true, e);
    }
    return -1;
  }
  if (strcmp(type, "proc") == 0) {
    struct statfs sfs;
    if (fstatfs(mnt, &sfs) < 0) return berth_fail_errno(e, "mount: statfs");
    if (sfs.f_type != PROC_SUPER_MAGIC)
      return berth_fail(e, EINVAL, "mount: new proc mount is not procfs");
  }
  if (attach(mnt, target, e) < 0) return -1;
  if (o->propagation && mount_set_propagation(mnt, o->propagation, o->propagation_recursive, e))
    return -1;
  return 0;
}

int mount_config_entry(const mount_ctx *ctx, json_t *entry, size_t index, berth_error *e) {
  const char *type = json_str(entry, "type");
  const char *source = json_str(entry, "source");
  const char *dest = json_str(entry, "destination");
  if (!json_is_object(entry)) return berth_fail(e, 0, "mounts[%zu]: expected an object", index);
  if (!dest || !dest[0])
    return berth_fail(e, 0, "mounts[%zu]: destination is missing", index);
  mount_opts o;
  if (mount_opts_parse(json_object_get(entry, "options"), &o, e) < 0)
    return berth_wrap(e, "mounts[%zu] (%s on %s)", index, type ? type : "?", dest);
  bool bind = o.bind || (type && strcmp(type, "bind") == 0);
  int rc;
  if (o.remount)
    rc = do_remount(ctx, dest, &o, e);
  else if (bind)
    rc = do_bind(ctx, source, dest, &o, o.rbind, e);
  else if (!type || !type[0])
    rc = berth_fail(e, 0, "type is missing");
  else if (strcmp(type, "cgroup") == 0)
    rc = do_cgroup(ctx, dest, &o, e);
  else
    rc = do_new_fs(ctx, type, source, dest, &o, e);
  mount_opts_free(&o);
  if (rc < 0)
    return berth_wrap(e, "mounts[%zu] (%s on %s)", index, bind ? "bind" : (type ? type : "?"),
                      dest);
  return 0;
}
