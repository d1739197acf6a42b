/* The filesystem side of berth-unpack: an untrusted layer's entries become
 * files under one destination directory, with the same rules as the
 * TypeScript unpacker (engine/store/unpack.ts):
 * - Names are paths inside the layer: absolute names and `..` components
 *   are refused. Parent directories are opened with openat2(RESOLVE_BENEATH
 *   | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV); when
 *   that fails each component is looked at: a symlinked or non-directory
 *   parent is refused, a missing one created 0755. Every change is made
 *   relative to the parent's fd with the final component never followed
 *   (O_CREAT|O_EXCL|O_NOFOLLOW, *at calls with AT_SYMLINK_NOFOLLOW).
 * - Hardlink targets obey the same rules and must already exist in this
 *   layer as a non-directory.
 * - OCI whiteouts become overlay whiteouts: `.wh.NAME` -> a 0/0 character
 *   device NAME; `.wh..wh..opq` -> trusted.overlay.opaque=y on the
 *   directory; other `.wh..wh.*` entries (aufs bookkeeping) are dropped.
 * - Kept: uid/gid, mode with setuid/setgid/sticky (chmod after chown),
 *   xattrs byte for byte (after chown and data, which would clear
 *   security.capability), mtimes (directories at the end), hardlinks,
 *   device nodes and fifos. trusted.overlay.* xattrs are refused. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "unpack.h"

#define SYNC_EVERY (16u << 20)
/* Up to this many files and directories, durability is fsync of each (only
 * the layer's data reaches the disk); beyond, one syncfs, which also flushes
 * whatever else is dirty on the filesystem (slow on a busy host) but costs
 * one journal commit instead of one per file. */
#define SYNC_EACH_MAX 16

typedef struct dirtime {
  char *rel;
  struct timespec mtime;
} dirtime;

struct extractor {
  int rootfd;
  bool sync;
  uint64_t entries, bytes;
  char *cache_rel; /* the parent directory last opened, and its fd */
  int cache_fd;
  /* the entry in progress */
  bool active;
  entry cur;
  char *name;
  int fd;          /* regular file being written */
  uint64_t written, synced;
  staged_file stage; /* a large file's data goes past the page cache (direct.c) */
  bool staging;
  dirtime *dirtimes;
  size_t ndirtimes, capdirtimes;
  /* durability: files kept open and directories touched, for fsync at the end */
  int keep[SYNC_EACH_MAX];
  size_t nkeep;
  char *touched[2 * SYNC_EACH_MAX];
  size_t ntouched;
  bool many; /* past the limits: syncfs instead */
};

/* Records the prefix rel[0..n) ("" is the root) as a directory whose entries changed. */
static void touch_one(extractor *x, const char *rel, size_t n) {
  for (size_t i = 0; i < x->ntouched; i++)
    if (strlen(x->touched[i]) == n && strncmp(x->touched[i], rel, n) == 0) return;
  if (x->ntouched == 2 * SYNC_EACH_MAX || !(x->touched[x->ntouched] = strndup(rel, n))) {
    x->many = true;
    return;
  }
  x->ntouched++;
}

/* Records rel and every ancestor up to the root. */
static void touch(extractor *x, const char *rel) {
  if (!x->sync || x->many) return;
  touch_one(x, rel, 0);
  size_t len = strlen(rel);
  for (size_t i = 1; i <= len && !x->many; i++)
    if (i == len || rel[i] == '/') touch_one(x, rel, i);
}

static void done_with_file(extractor *x);

/* ---- messages ---- */

/* name as a JSON string (the engine shows it the way JSON.stringify does) */
static const char *quoted(const char *s, char *buf, size_t size) {
  size_t o = 0;
  buf[o++] = '"';
  for (; *s && o + 8 < size; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20) {
      o += (size_t)snprintf(buf + o, size - o, "\\u%04x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = 0;
  return buf;
}

static int refuse_msg(extractor *x, berth_error *e, const char *why) {
  char qn[2048];
  return berth_fail_msg(e, KIND_REFUSED, "refused entry %s: %s", quoted(x->name, qn, sizeof qn), why);
}

static int refuse(extractor *x, berth_error *e, const char *fmt, const char *arg) {
  char qn[2048], qa[2048], why[4096];
  snprintf(why, sizeof why, fmt, arg ? quoted(arg, qa, sizeof qa) : "");
  return berth_fail_msg(e, KIND_REFUSED, "refused entry %s: %s", quoted(x->name, qn, sizeof qn), why);
}

/* ---- paths ---- */

typedef struct parts {
  char *buf;   /* the name split in place */
  char **v;
  size_t n;
} parts;

static void parts_free(parts *p) {
  free(p->buf);
  free(p->v);
}

/* Splits a tar name into components; "" and "." dropped. `what` prefixes
 * the reason (for hardlink targets). */
static int split(extractor *x, const char *name, parts *p, const char *what, berth_error *e) {
  memset(p, 0, sizeof *p);
  char fmt[256];
  if (name[0] == '/') {
    snprintf(fmt, sizeof fmt, "%sabsolute path", what);
    return refuse(x, e, fmt, NULL);
  }
  size_t len = strlen(name);
  if (!(p->buf = strdup(name)) || !(p->v = calloc(len / 2 + 2, sizeof *p->v))) {
    parts_free(p);
    return berth_fail(e, errno, "allocating");
  }
  char *save = NULL;
  for (char *c = strtok_r(p->buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    if (strcmp(c, ".") == 0) continue;
    if (strcmp(c, "..") == 0) {
      parts_free(p);
      snprintf(fmt, sizeof fmt, "%spath contains '..'", what);
      return refuse(x, e, fmt, NULL);
    }
    p->v[p->n++] = c;
  }
  return 0;
}

static char *join(char **v, size_t n) {
  size_t len = 1;
  for (size_t i = 0; i < n; i++) len += strlen(v[i]) + 1;
  char *s = malloc(len);
  if (!s) return NULL;
  s[0] = 0;
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(s, "/");
    strcat(s, v[i]);
  }
  return s;
}

static void cache_drop(extractor *x) {
  if (x->cache_fd >= 0 && x->cache_fd != x->rootfd) close(x->cache_fd);
  x->cache_fd = -1;
  free(x->cache_rel);
  x->cache_rel = NULL;
}

static int openat2_beneath(int dirfd, const char *rel, int flags) {
  struct open_how how = {.flags = (uint64_t)flags, .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
  return (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
}

/* The directory v[0..n) inside the root, as an fd the extractor keeps (do
 * not close it). Missing components are created when `create`. */
static int parent(extractor *x, char **v, size_t n, bool create, berth_error *e) {
  if (n == 0) {
    touch(x, "");
    return x->rootfd;
  }
  char *rel = join(v, n);
  if (!rel) return berth_fail(e, errno, "allocating");
  if (x->cache_rel && strcmp(rel, x->cache_rel) == 0) {
    free(rel);
    return x->cache_fd;
  }
  int fd = openat2_beneath(x->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    /* walk it: say which component is wrong, or create what is missing */
    int cur = x->rootfd;
    char sofar[8192] = "";
    for (size_t i = 0; i < n; i++) {
      if (i) strncat(sofar, "/", sizeof sofar - strlen(sofar) - 1);
      strncat(sofar, v[i], sizeof sofar - strlen(sofar) - 1);
      int next = openat(cur, v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0) {
        struct stat st;
        int rc = -1;
        if (fstatat(cur, v[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
          if (errno != ENOENT) rc = berth_fail_errno(e, "fstatat %s in the layer", sofar);
          else if (!create) rc = refuse(x, e, "parent %s does not exist in this layer", sofar);
          else if (mkdirat(cur, v[i], 0755) < 0) rc = berth_fail_errno(e, "mkdirat %s in the layer", sofar);
          else if ((next = openat(cur, v[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
            rc = berth_fail_errno(e, "openat %s in the layer", sofar);
          else rc = 0;
        } else if (S_ISLNK(st.st_mode)) {
          rc = refuse(x, e, "parent %s is a symlink", sofar);
        } else if (!S_ISDIR(st.st_mode)) {
          rc = refuse(x, e, "parent %s is not a directory", sofar);
        } else {
          rc = berth_fail_errno(e, "openat %s in the layer", sofar);
        }
        if (rc < 0) {
          if (cur != x->rootfd) close(cur);
          free(rel);
          return -1;
        }
      }
      if (cur != x->rootfd) close(cur);
      cur = next;
    }
    fd = cur;
  }
  cache_drop(x);
  touch(x, rel);
  x->cache_rel = rel;
  x->cache_fd = fd;
  return fd;
}

/* Removes a directory tree below dirfd/name (nothing followed). */
static int rmtree(int dirfd, const char *name, berth_error *e) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "openat %s to remove it", name);
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return berth_fail_errno(e, "fdopendir %s", name);
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (errno = 0, de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    bool isdir = de->d_type == DT_DIR;
    if (de->d_type == DT_UNKNOWN) {
      struct stat st;
      isdir = fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (isdir) rc = rmtree(fd, de->d_name, e);
    else if (unlinkat(fd, de->d_name, 0) < 0) rc = berth_fail_errno(e, "unlinkat %s in %s", de->d_name, name);
  }
  closedir(d);
  if (rc < 0) return -1;
  if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0) return berth_fail_errno(e, "rmdir %s", name);
  return 0;
}

/* Removes what is at pf/base unless it is a directory and keep_dir.
 * Returns 1 when a directory was kept, 0 otherwise, -1 on failure. */
static int clear(extractor *x, int pf, const char *base, bool keep_dir, berth_error *e) {
  struct stat st;
  if (fstatat(pf, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    if (errno == ENOENT) return 0;
    return berth_fail_errno(e, "fstatat %s", base);
  }
  if (S_ISDIR(st.st_mode)) {
    if (keep_dir) return 1;
    if (rmtree(pf, base, e) < 0) return -1;
    /* the cached directory may have been inside what went away, unless it is pf itself
     * (the parent of what went away, which the caller goes on using) */
    if (pf != x->cache_fd) cache_drop(x);
    return 0;
  }
  if (unlinkat(pf, base, 0) < 0) return berth_fail_errno(e, "unlinkat %s", base);
  return 0;
}

/* ---- metadata ---- */

static bool xattr_name_ok(const char *n) {
  const char *dot = NULL;
  if (strncmp(n, "user.", 5) == 0) dot = n + 5;
  else if (strncmp(n, "trusted.", 8) == 0) dot = n + 8;
  else if (strncmp(n, "security.", 9) == 0) dot = n + 9;
  if (!dot || !*dot) return false;
  for (const char *c = dot; *c; c++)
    if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e) return false;
  return true;
}

static int check_xattrs(extractor *x, const entry *en, berth_error *e) {
  for (size_t i = 0; i < en->nxattrs; i++) {
    const char *n = en->xattrs[i].name;
    if (!xattr_name_ok(n)) return refuse(x, e, "xattr name %s not allowed", n);
    if (strncmp(n, "trusted.overlay.", 16) == 0) {
      char why[512];
      snprintf(why, sizeof why, "xattr %s would change overlayfs behaviour", n);
      return refuse_msg(x, e, why);
    }
  }
  return 0;
}

/* chown, chmod (not for symlinks), xattrs, mtime; fd >= 0 when open */
static int apply_meta(extractor *x, int pf, const char *base, int fd, berth_error *e) {
  entry *en = &x->cur;
  char proc[64 + 4096];
  if (fd >= 0) {
    if (fchown(fd, en->uid, en->gid) < 0) return berth_fail_errno(e, "fchown %s", x->name);
    if (fchmod(fd, en->mode) < 0) return berth_fail_errno(e, "fchmod %s", x->name);
  } else {
    if (fchownat(pf, base, en->uid, en->gid, AT_SYMLINK_NOFOLLOW) < 0) return berth_fail_errno(e, "lchown %s", x->name);
    if (en->type != E_SYMLINK && fchmodat(pf, base, en->mode, 0) < 0) return berth_fail_errno(e, "chmod %s", x->name);
  }
  for (size_t i = 0; i < en->nxattrs; i++) {
    xattr *a = &en->xattrs[i];
    int rc;
    if (fd >= 0) {
      rc = fsetxattr(fd, a->name, a->value, a->len, 0);
    } else {
      snprintf(proc, sizeof proc, "/proc/self/fd/%d/%s", pf, base);
      rc = lsetxattr(proc, a->name, a->value, a->len, 0);
    }
    if (rc < 0) return berth_fail_errno(e, "setting xattr %s on %s", a->name, x->name);
  }
  if (en->type != E_DIR) {
    struct timespec ts[2] = {en->mtime, en->mtime};
    int rc = fd >= 0 ? futimens(fd, ts) : utimensat(pf, base, ts, AT_SYMLINK_NOFOLLOW);
    if (rc < 0) return berth_fail_errno(e, "setting the mtime of %s", x->name);
  }
  return 0;
}

static int add_dirtime(extractor *x, char **v, size_t n, berth_error *e) {
  if (x->ndirtimes == x->capdirtimes) {
    size_t cap = x->capdirtimes ? x->capdirtimes * 2 : 64;
    dirtime *d = realloc(x->dirtimes, cap * sizeof *d);
    if (!d) return berth_fail(e, errno, "allocating");
    x->dirtimes = d;
    x->capdirtimes = cap;
  }
  char *rel = join(v, n);
  if (!rel) return berth_fail(e, errno, "allocating");
  x->dirtimes[x->ndirtimes].rel = rel;
  x->dirtimes[x->ndirtimes].mtime = x->cur.mtime;
  x->ndirtimes++;
  return 0;
}

static void free_cur(extractor *x) {
  for (size_t i = 0; i < x->cur.nxattrs; i++) {
    free(x->cur.xattrs[i].name);
    free(x->cur.xattrs[i].value);
  }
  free(x->cur.xattrs);
  x->cur.xattrs = NULL;
  x->cur.nxattrs = 0;
  free(x->name);
  x->name = NULL;
  x->active = false;
}

/* ---- entries ---- */

extractor *extract_open(const char *dest, bool sync, berth_error *e) {
  extractor *x = calloc(1, sizeof *x);
  if (!x) {
    berth_fail(e, errno, "allocating");
    return NULL;
  }
  x->sync = sync;
  x->cache_fd = -1;
  x->fd = -1;
  x->rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (x->rootfd < 0) {
    berth_fail_errno(e, "open %s", dest);
    free(x);
    return NULL;
  }
  return x;
}

int extract_rootfd(const extractor *x) { return x->rootfd; }
uint64_t extract_entries(const extractor *x) { return x->entries; }
uint64_t extract_bytes(const extractor *x) { return x->bytes; }

/* Runs f until it does not fail with EEXIST, clearing the name once. */
#define CREATE(call, what)                                                              \
  do {                                                                                  \
    if ((call) < 0) {                                                                   \
      if (errno != EEXIST) { rc = berth_fail_errno(e, "%s %s", what, x->name); break; } \
      if (clear(x, pf, base, false, e) < 0) { rc = -1; break; }                        \
      if ((call) < 0) { rc = berth_fail_errno(e, "%s %s", what, x->name); break; }      \
    }                                                                                   \
    rc = 0;                                                                             \
  } while (0)

static int whiteout(extractor *x, parts *p, berth_error *e) {
  const char *base = p->v[p->n - 1];
  int pf = parent(x, p->v, p->n - 1, true, e);
  if (pf < 0) return -1;
  if (strcmp(base, ".wh..wh..opq") == 0) {
    int dfd = openat(pf, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return berth_fail_errno(e, "opening the directory of %s", x->name);
    int rc = fsetxattr(dfd, "trusted.overlay.opaque", "y", 1, 0);
    close(dfd);
    if (rc < 0) return berth_fail_errno(e, "setting trusted.overlay.opaque for %s", x->name);
    return 0;
  }
  if (strncmp(base, ".wh..wh.", 8) == 0) return 0; /* aufs bookkeeping */
  const char *target = base + 4;
  if (!*target || strcmp(target, ".") == 0 || strcmp(target, "..") == 0) return refuse(x, e, "whiteout of an invalid name", NULL);
  if (clear(x, pf, target, false, e) < 0) return -1;
  /* clear() may have dropped the cached fd: resolve again */
  if ((pf = parent(x, p->v, p->n - 1, true, e)) < 0) return -1;
  if (mknodat(pf, target, S_IFCHR | 0600, makedev(0, 0)) < 0) return berth_fail_errno(e, "mknod whiteout %s", x->name);
  return 0;
}

static int hardlink(extractor *x, parts *p, berth_error *e) {
  const char *ln = x->cur.linkname;
  char what[4096 + 64], qa[4096];
  snprintf(what, sizeof what, "hardlink target %s: ", quoted(ln, qa, sizeof qa));
  /* '%' in a name must not reach the format string */
  for (char *c = what; *c; c++)
    if (*c == '%') *c = '?';
  parts lp;
  if (split(x, ln, &lp, what, e) < 0) return -1;
  int rc = -1;
  if (lp.n == 0) {
    rc = refuse(x, e, "hardlink to the layer root", NULL);
    goto out;
  }
  int tpf = parent(x, lp.v, lp.n - 1, false, e);
  if (tpf < 0) goto out;
  int tfd = tpf == x->rootfd ? x->rootfd : dup(tpf);
  if (tfd < 0) {
    rc = berth_fail_errno(e, "dup");
    goto out;
  }
  const char *tbase = lp.v[lp.n - 1];
  struct stat st;
  if (fstatat(tfd, tbase, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    rc = errno == ENOENT ? refuse(x, e, "hardlink target %s does not exist in this layer", ln) : berth_fail_errno(e, "fstatat %s", ln);
  } else if (S_ISDIR(st.st_mode)) {
    rc = refuse(x, e, "hardlink target %s is a directory", ln);
  } else {
    char *lrel = join(lp.v, lp.n);
    char *rel = join(p->v, p->n);
    bool self = lrel && rel && strcmp(lrel, rel) == 0;
    free(lrel);
    free(rel);
    if (self) {
      rc = 0;
    } else {
      const char *base = p->v[p->n - 1];
      int pf = parent(x, p->v, p->n - 1, true, e);
      if (pf >= 0) CREATE(linkat(tfd, tbase, pf, base, 0), "link");
    }
  }
  if (tfd != x->rootfd) close(tfd);
out:
  parts_free(&lp);
  return rc;
}

int extract_begin(extractor *x, const entry *en, berth_error *e) {
  x->cur = *en;
  x->active = true;
  x->entries++;
  if (!(x->name = strdup(en->name))) return berth_fail(e, errno, "allocating");
  x->cur.name = x->name;
  parts p;
  if (split(x, en->name, &p, "", e) < 0) return -1;
  int rc = -1;
  if (p.n == 0) {
    /* the layer root ("./"): keep its metadata */
    if (en->type == E_DIR) {
      if (check_xattrs(x, en, e) < 0) goto out;
      if (fchown(x->rootfd, en->uid, en->gid) < 0 || fchmod(x->rootfd, en->mode) < 0) {
        rc = berth_fail_errno(e, "metadata of the layer root");
        goto out;
      }
      if (add_dirtime(x, p.v, 0, e) < 0) goto out;
    }
    rc = 0;
    goto out;
  }
  const char *base = p.v[p.n - 1];
  if (strncmp(base, ".wh.", 4) == 0) {
    rc = whiteout(x, &p, e);
    goto out;
  }
  if (check_xattrs(x, en, e) < 0) goto out;
  if (en->type == E_LINK) {
    rc = hardlink(x, &p, e);
    goto out;
  }
  if (en->type == E_SYMLINK && !en->linkname[0]) {
    rc = refuse(x, e, "symlink without a target", NULL);
    goto out;
  }
  int pf = parent(x, p.v, p.n - 1, true, e);
  if (pf < 0) goto out;
  switch (en->type) {
  case E_FILE:
    CREATE(x->fd = openat(pf, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600), "create");
    if (rc < 0) break;
    x->written = x->synced = 0;
    x->staging = false;
    if (en->size >= DIRECT_MIN) {
      if ((rc = staged_open(&x->stage, x->fd, x->name, e)) < 0) break;
      x->staging = x->stage.f.direct;
    }
    if (en->size == 0) {
      rc = apply_meta(x, pf, base, x->fd, e);
      done_with_file(x);
    }
    /* otherwise metadata follows the data, in extract_end */
    break;
  case E_DIR: {
    int kept = 0;
    if (mkdirat(pf, base, 0755) < 0) {
      if (errno != EEXIST) {
        rc = berth_fail_errno(e, "mkdir %s", x->name);
        break;
      }
      if ((kept = clear(x, pf, base, true, e)) < 0) break;
      if (!kept) {
        if ((pf = parent(x, p.v, p.n - 1, true, e)) < 0) break;
        if (mkdirat(pf, base, 0755) < 0) {
          rc = berth_fail_errno(e, "mkdir %s", x->name);
          break;
        }
      }
    }
    int dfd = openat(pf, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
      rc = berth_fail_errno(e, "open directory %s", x->name);
      break;
    }
    rc = apply_meta(x, pf, base, dfd, e);
    close(dfd);
    if (rc == 0) rc = add_dirtime(x, p.v, p.n, e);
    break;
  }
  case E_SYMLINK:
    CREATE(symlinkat(en->linkname, pf, base), "symlink");
    if (rc == 0) rc = apply_meta(x, pf, base, -1, e);
    break;
  case E_CHAR:
  case E_BLOCK:
  case E_FIFO: {
    mode_t kind = en->type == E_CHAR ? S_IFCHR : en->type == E_BLOCK ? S_IFBLK : S_IFIFO;
    dev_t dev = en->type == E_FIFO ? 0 : makedev(en->devmajor, en->devminor);
    CREATE(mknodat(pf, base, kind | 0600, dev), "mknod");
    if (rc == 0) rc = apply_meta(x, pf, base, -1, e);
    break;
  }
  default:
    rc = berth_fail_msg(e, KIND_REFUSED, "internal: unknown entry type");
  }
out:
  parts_free(&p);
  return rc;
}

int extract_data(extractor *x, const unsigned char *p, size_t n, berth_error *e) {
  if (x->staging) {
    if (staged_write(&x->stage, p, n, e) < 0) return -1;
    x->written += n;
    x->bytes += n;
    return 0;
  }
  while (n > 0) {
    ssize_t w = write(x->fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return berth_fail_errno(e, "write %s", x->name);
    }
    p += w;
    n -= (size_t)w;
    x->written += (uint64_t)w;
    x->bytes += (uint64_t)w;
  }
  if (x->sync && x->written - x->synced >= SYNC_EVERY) {
    /* start writeback now, so that the final syncfs finds little to do */
    sync_file_range(x->fd, (off_t)x->synced, (off_t)(x->written - x->synced), SYNC_FILE_RANGE_WRITE);
    x->synced = x->written;
  }
  return 0;
}

/* A written file: kept open for fsync at the end while there are few, closed otherwise. */
static void done_with_file(extractor *x) {
  if (x->sync && !x->many && x->nkeep < SYNC_EACH_MAX) {
    x->keep[x->nkeep++] = x->fd;
  } else {
    if (x->sync) x->many = true;
    close(x->fd);
  }
  x->fd = -1;
}

int extract_end(extractor *x, berth_error *e) {
  int rc = 0;
  if (x->fd >= 0) {
    if (x->staging) {
      x->staging = false;
      if (staged_flush(&x->stage, e) < 0) {
        free_cur(x);
        return -1;
      }
    }
    if (x->sync && x->written > x->synced) sync_file_range(x->fd, (off_t)x->synced, 0, SYNC_FILE_RANGE_WRITE);
    rc = apply_meta(x, -1, NULL, x->fd, e);
    done_with_file(x);
  }
  free_cur(x);
  return rc;
}

int extract_finish(extractor *x, berth_error *e) {
  for (size_t i = 0; i < x->ndirtimes; i++) {
    dirtime *d = &x->dirtimes[i];
    struct timespec ts[2] = {d->mtime, d->mtime};
    if (d->rel[0] == 0) {
      if (futimens(x->rootfd, ts) < 0) return berth_fail_errno(e, "setting the mtime of the layer root");
      continue;
    }
    int fd = openat2_beneath(x->rootfd, d->rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue; /* replaced or removed by a later entry */
    int rc = futimens(fd, ts);
    close(fd);
    if (rc < 0) return berth_fail_errno(e, "setting the mtime of %s", d->rel);
  }
  if (!x->sync) return 0;
  /* symlinks, device nodes and hardlinks live in their directories' entries: a layer with
   * any of them in a directory we did not touch cannot happen (touch() saw every parent) */
  if (x->many) {
    if (syncfs(x->rootfd) < 0) return berth_fail_errno(e, "syncfs of the layer");
    return 0;
  }
  for (size_t i = 0; i < x->nkeep; i++)
    if (fsync(x->keep[i]) < 0) return berth_fail_errno(e, "fsync of a file of the layer");
  for (size_t i = 0; i < x->ntouched; i++) {
    const char *rel = x->touched[i];
    int fd = rel[0] ? openat2_beneath(x->rootfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : dup(x->rootfd);
    if (fd < 0) {
      if (errno == ENOENT || errno == ELOOP || errno == ENOTDIR) continue; /* removed or replaced later: its parent holds that */
      return berth_fail_errno(e, "opening %s to fsync it", rel[0] ? rel : "the layer root");
    }
    int rc = fsync(fd);
    close(fd);
    if (rc < 0) return berth_fail_errno(e, "fsync of %s", rel[0] ? rel : "the layer root");
  }
  return 0;
}

void extract_close(extractor *x) {
  if (!x) return;
  if (x->fd >= 0) close(x->fd);
  for (size_t i = 0; i < x->nkeep; i++) close(x->keep[i]);
  for (size_t i = 0; i < x->ntouched; i++) free(x->touched[i]);
  cache_drop(x);
  for (size_t i = 0; i < x->ndirtimes; i++) free(x->dirtimes[i].rel);
  free(x->dirtimes);
  if (x->active) free_cur(x);
  staged_free(&x->stage);
  if (x->rootfd >= 0) close(x->rootfd);
  free(x);
}
