/* rootfs-driver: runs the rootfs phases of berth-runtime on their own, for
 * tests. It unshares a mount, pid and ipc namespace (and a user namespace
 * with --userns), then, as pid 1 of the new pid namespace, runs
 * rootfs_prepare, rootfs_pivot, rootfs_bind_console (--console) and
 * rootfs_finalize, and finally either execs the command after "--" inside
 * the container or prints a JSON report of /proc/self/mountinfo and /dev.
 *
 *   rootfs-driver [--userns] [--no-pivot] [--console] [--no-openat2] CONFIG ROOTFS [-- CMD...]
 *
 * --no-openat2 makes openat2 fail with ENOSYS (a seccomp filter), as on a
 * kernel older than 5.6, so the runtime's fallback resolver is exercised.
 *
 * Everything it mounts lives in namespaces that die with it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <seccomp.h>

#include "../../src/rootfs.h"
#include "../../src/util.h"

/* The cgroup subsystem is another file of the runtime; the driver does not
 * link it, so a config with a cgroup mount fails here, loudly. */
int cgroup_mount(const berth_cgroup *cg, const char *target, unsigned long flags,
                 berth_error *e) {
  (void)cg;
  (void)flags;
  return berth_fail(e, ENOSYS, "cgroup mount on '%s': not available in rootfs-driver", target);
}

static void die(const char *what, const berth_error *e) {
  fprintf(stderr, "rootfs-driver: %s: %s\n", what, e->msg);
  exit(1);
}

static void die_errno(const char *what) {
  fprintf(stderr, "rootfs-driver: %s: %s\n", what, strerror(errno));
  exit(1);
}

static json_t *stat_entry(int dirfd, const char *name) {
  struct stat st;
  if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) return NULL;
  const char *type = S_ISCHR(st.st_mode)    ? "c"
                     : S_ISBLK(st.st_mode)  ? "b"
                     : S_ISFIFO(st.st_mode) ? "p"
                     : S_ISLNK(st.st_mode)  ? "l"
                     : S_ISDIR(st.st_mode)  ? "d"
                     : S_ISREG(st.st_mode)  ? "f"
                                            : "?";
  json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "type", type, "mode",
                        (int)(st.st_mode & 07777), "major", (int)major(st.st_rdev), "minor",
                        (int)minor(st.st_rdev), "uid", (int)st.st_uid, "gid", (int)st.st_gid);
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
    if (n >= 0) {
      target[n] = '\0';
      json_object_set_new(o, "target", json_string(target));
    }
  }
  return o;
}

static void report(void) {
  berth_error e;
  char *mi = NULL;
  if (read_file("/proc/self/mountinfo", &mi, NULL, &e) < 0) die("read mountinfo", &e);
  json_t *dev = json_object();
  int dfd = open("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    DIR *d = fdopendir(dfd);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
      if (de->d_name[0] == '.') continue;
      json_t *s = stat_entry(dirfd(d), de->d_name);
      if (s) json_object_set_new(dev, de->d_name, s);
    }
    if (d) closedir(d);
  }
  char cwd[PATH_MAX];
  json_t *out = json_pack("{s:s, s:o, s:s}", "mountinfo", mi, "dev", dev, "cwd",
                          getcwd(cwd, sizeof cwd) ? cwd : "?");
  free(mi);
  char *text = json_dumps(out, JSON_COMPACT);
  puts(text);
  free(text);
  json_decref(out);
}

static void hide_openat2(void) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) die_errno("seccomp_init");
  int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0);
  if (rc == 0) rc = seccomp_load(ctx);
  seccomp_release(ctx);
  if (rc < 0) {
    errno = -rc;
    die_errno("seccomp filter for openat2");
  }
}

static void container(json_t *config, const char *rootfs, bool userns, bool no_pivot,
                      bool console, bool no_openat2, char **cmd) {
  berth_error e;
  berth_error_clear(&e);
  if (no_openat2) hide_openat2();
  if (rootfs_prepare(config, rootfs, NULL, userns, &e) < 0) die("prepare", &e);
  if (rootfs_pivot(rootfs, no_pivot, &e) < 0) die("pivot", &e);
  if (console) {
    int ptmx = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (ptmx < 0) die_errno("open /dev/ptmx");
    if (unlockpt(ptmx) < 0) die_errno("unlockpt");
    char slave[64];
    if (ptsname_r(ptmx, slave, sizeof slave) != 0) die_errno("ptsname");
    if (rootfs_bind_console(slave, &e) < 0) die("console", &e);
  }
  if (rootfs_finalize(config, &e) < 0) die("finalize", &e);
  if (cmd && cmd[0]) {
    execvp(cmd[0], cmd);
    die_errno(cmd[0]);
  }
  report();
  exit(0);
}

static void write_map(pid_t pid, const char *file, const char *map) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
  berth_error e;
  if (write_file(path, map, strlen(map), &e) < 0) die(file, &e);
}

static int wait_status(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) die_errno("waitpid");
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  return 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  bool userns = false, no_pivot = false, console = false, no_openat2 = false;
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]; i++) {
    if (strcmp(argv[i], "--userns") == 0)
      userns = true;
    else if (strcmp(argv[i], "--no-pivot") == 0)
      no_pivot = true;
    else if (strcmp(argv[i], "--console") == 0)
      console = true;
    else if (strcmp(argv[i], "--no-openat2") == 0)
      no_openat2 = true;
    else {
      fprintf(stderr, "rootfs-driver: unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (argc - i < 2) {
    fprintf(stderr,
            "usage: rootfs-driver [--userns] [--no-pivot] [--console] [--no-openat2] CONFIG ROOTFS "
            "[-- CMD...]\n");
    return 2;
  }
  json_error_t jerr;
  json_t *config = json_load_file(argv[i], 0, &jerr);
  if (!config) {
    fprintf(stderr, "rootfs-driver: %s: %s (line %d)\n", argv[i], jerr.text, jerr.line);
    return 1;
  }
  char rootfs[PATH_MAX];
  if (!realpath(argv[i + 1], rootfs)) die_errno(argv[i + 1]);
  char **cmd = NULL;
  if (i + 2 < argc && strcmp(argv[i + 2], "--") == 0) cmd = &argv[i + 3];
  fflush(stdout);

  int to_child[2], to_parent[2];
  if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(to_parent, O_CLOEXEC) < 0) die_errno("pipe");
  pid_t child = fork();
  if (child < 0) die_errno("fork");
  if (child == 0) {
    char c = 0;
    if (userns) {
      if (unshare(CLONE_NEWUSER) < 0) die_errno("unshare user");
      if (write(to_parent[1], &c, 1) != 1) die_errno("sync");
      if (read(to_child[0], &c, 1) != 1) die_errno("sync");
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC) < 0) die_errno("unshare");
    pid_t init = fork();
    if (init < 0) die_errno("fork");
    if (init == 0) container(config, rootfs, userns, no_pivot, console, no_openat2, cmd);
    exit(wait_status(init));
  }
  if (userns) {
    char c;
    if (read(to_parent[0], &c, 1) != 1) die_errno("sync with child");
    write_map(child, "uid_map", "0 0 65536\n");
    write_map(child, "setgroups", "allow\n");
    write_map(child, "gid_map", "0 0 65536\n");
    if (write(to_child[1], &c, 1) != 1) die_errno("sync with child");
  }
  int rc = wait_status(child);
  json_decref(config);
  return rc;
}
