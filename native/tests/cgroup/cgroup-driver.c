/* Test driver for native/src/cgroup*.c: one command per call, so tests can
 * drive real cgroups on this host and inside the cgroup v2 guest.
 *
 *   cgroup-driver mode                         v1 | hybrid | v2
 *   cgroup-driver features                     cgroup_features() as JSON
 *   cgroup-driver create  PATH RESOURCES       RESOURCES: JSON text or a file
 *   cgroup-driver update  PATH RESOURCES
 *   cgroup-driver enter   PATH PID
 *   cgroup-driver spawn   PATH RESOURCES busy|sleep   create, start a child in
 *                                              the group, print its pid, leave it
 *   cgroup-driver exec    PATH RESOURCES -- CMD...  create, run CMD in the group,
 *                                              print "status N", destroy
 *   cgroup-driver freeze|thaw|frozen|pids|stats|destroy PATH
 *   cgroup-driver kill    PATH SIGNUM
 *   cgroup-driver mount   PATH TARGET -- CMD...  in new mount + cgroup
 *                                              namespaces: mount the cgroup
 *                                              view at TARGET, run CMD
 *   cgroup-driver forkn   N       fork up to N sleeping children, print how
 *                                 many forks worked (run it inside a group)
 *   cgroup-driver open    FILE    open FILE read-write: "ok" or the errno name
 *   cgroup-driver openloop FILE MS  open FILE over and over for MS ms, print
 *                                 "opens N failures M"
 *
 * Exit status: 0 done, 1 the cgroup code failed (its message on stderr),
 * 2 bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

static int fail(const berth_error *e) {
  fprintf(stderr, "error: %s\n", e->msg);
  return 1;
}

static int usage(void) {
  fprintf(stderr, "usage: cgroup-driver <command> ... (see the source)\n");
  return 2;
}

static json_t *load_json(const char *arg) {
  json_error_t je;
  json_t *j = arg[0] == '{' || arg[0] == 'n' ? json_loads(arg, JSON_DECODE_ANY, &je) : json_load_file(arg, 0, &je);
  if (!j) fprintf(stderr, "error: resources '%s': %s (line %d)\n", arg, je.text, je.line);
  return j;
}

static int open_group(berth_cgroup *cg, const char *path, berth_error *e) {
  return cgroup_open(cg, path, "driver", false, e);
}

/* Forks a child that waits until the parent has put it in the group. */
static pid_t fork_in_group(const berth_cgroup *cg, berth_error *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return berth_fail_errno(e, "pipe");
  pid_t pid = fork();
  if (pid < 0) return berth_fail_errno(e, "fork");
  if (pid == 0) {
    char c;
    close(p[1]);
    if (read(p[0], &c, 1) != 1) _exit(127);
    close(p[0]);
    return 0;
  }
  close(p[0]);
  int rc = cgroup_enter(cg, pid, e);
  if (rc == 0 && write(p[1], "x", 1) != 1) rc = berth_fail_errno(e, "release child");
  close(p[1]);
  if (rc < 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

static int cmd_forkn(int n) {
  pid_t kids[4096];
  int ok = 0;
  for (int i = 0; i < n && i < 4096; i++) {
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      pause();
      _exit(0);
    }
    kids[ok++] = pid;
  }
  printf("forked %d\n", ok);
  fflush(stdout);
  for (int i = 0; i < ok; i++) kill(kids[i], SIGKILL);
  for (int i = 0; i < ok; i++) waitpid(kids[i], NULL, 0);
  return 0;
}

static int cmd_open(const char *file) {
  int fd = open(file, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    printf("%s\n", strerrorname_np(errno));
    return 0;
  }
  close(fd);
  printf("ok\n");
  return 0;
}

static int cmd_openloop(const char *file, int ms) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  long opens = 0, failures = 0;
  do {
    int fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd < 0) failures++;
    else close(fd);
    opens++;
    clock_gettime(CLOCK_MONOTONIC, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 < ms);
  printf("opens %ld failures %ld\n", opens, failures);
  return 0;
}

static int cmd_mount(const berth_cgroup *cg, const char *target, char **argv) {
  berth_error e;
  pid_t pid = fork();
  if (pid < 0) return perror("fork"), 1;
  if (pid == 0) {
    if (cgroup_enter(cg, getpid(), &e) < 0) _exit(fail(&e));
    if (unshare(CLONE_NEWNS | CLONE_NEWCGROUP) < 0) {
      perror("unshare");
      _exit(1);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
      perror("make / private");
      _exit(1);
    }
    /* A tmpfs holds the target so nothing lands on the host's disk. */
    if (mount("tmpfs", target, "tmpfs", 0, "mode=755") < 0) {
      perror("mount tmpfs on target");
      _exit(1);
    }
    char where[PATH_MAX];
    snprintf(where, sizeof where, "%s/cgroup", target);
    if (mkdir(where, 0755) < 0) {
      perror("mkdir");
      _exit(1);
    }
    if (cgroup_mount(cg, where, MS_RDONLY, &e) < 0) _exit(fail(&e));
    execvp(argv[0], argv);
    perror(argv[0]);
    _exit(127);
  }
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv) {
  berth_error e;
  berth_error_clear(&e);
  if (argc < 2) return usage();
  const char *cmd = argv[1];
  if (strcmp(cmd, "forkn") == 0 && argc == 3) return cmd_forkn(atoi(argv[2]));
  if (strcmp(cmd, "open") == 0 && argc == 3) return cmd_open(argv[2]);
  if (strcmp(cmd, "openloop") == 0 && argc == 4) return cmd_openloop(argv[2], atoi(argv[3]));
  if (strcmp(cmd, "features") == 0) {
    json_t *f = cgroup_features();
    char *s = json_dumps(f, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(f);
    return 0;
  }
  if (strcmp(cmd, "mode") == 0) {
    berth_cgroup cg;
    if (cgroup_open(&cg, NULL, "driver", false, &e) < 0) return fail(&e);
    printf("%s\n", cg.mode == CGROUP_MODE_V1 ? "v1" : cg.mode == CGROUP_MODE_V2 ? "v2" : "hybrid");
    return 0;
  }
  if (argc < 3) return usage();
  berth_cgroup cg;
  if (open_group(&cg, argv[2], &e) < 0) return fail(&e);

  if ((strcmp(cmd, "create") == 0 || strcmp(cmd, "update") == 0) && argc == 4) {
    cleanup_json json_t *res = load_json(argv[3]);
    if (!res) return 2;
    int rc = strcmp(cmd, "create") == 0 ? cgroup_create(&cg, res, &e) : cgroup_update(&cg, res, &e);
    return rc < 0 ? fail(&e) : 0;
  }
  if (strcmp(cmd, "enter") == 0 && argc == 4)
    return cgroup_enter(&cg, (pid_t)atoi(argv[3]), &e) < 0 ? fail(&e) : 0;
  if (strcmp(cmd, "spawn") == 0 && argc == 5) {
    cleanup_json json_t *res = load_json(argv[3]);
    if (!res) return 2;
    if (cgroup_create(&cg, res, &e) < 0) return fail(&e);
    bool busy = strcmp(argv[4], "busy") == 0;
    pid_t pid = fork_in_group(&cg, &e);
    if (pid < 0) return fail(&e);
    if (pid == 0) {
      setsid();
      int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
      }
      if (busy)
        for (volatile unsigned long i = 0;; i++) {
        }
      for (;;) pause();
    }
    printf("%d\n", (int)pid);
    return 0;
  }
  if (strcmp(cmd, "exec") == 0 && argc >= 6 && strcmp(argv[4], "--") == 0) {
    cleanup_json json_t *res = load_json(argv[3]);
    if (!res) return 2;
    if (cgroup_create(&cg, res, &e) < 0) return fail(&e);
    pid_t pid = fork_in_group(&cg, &e);
    if (pid < 0) {
      berth_error ignored;
      cgroup_destroy(&cg, &ignored);
      return fail(&e);
    }
    if (pid == 0) {
      execvp(argv[5], argv + 5);
      perror(argv[5]);
      _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    fflush(stdout);
    printf("status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return cgroup_destroy(&cg, &e) < 0 ? fail(&e) : 0;
  }
  if (strcmp(cmd, "freeze") == 0 || strcmp(cmd, "thaw") == 0)
    return cgroup_freeze(&cg, strcmp(cmd, "freeze") == 0, &e) < 0 ? fail(&e) : 0;
  if (strcmp(cmd, "frozen") == 0) {
    bool frozen;
    if (cgroup_is_frozen(&cg, &frozen, &e) < 0) return fail(&e);
    printf("%s\n", frozen ? "true" : "false");
    return 0;
  }
  if (strcmp(cmd, "pids") == 0) {
    cleanup_free pid_t *pids = NULL;
    size_t n;
    if (cgroup_pids(&cg, &pids, &n, &e) < 0) return fail(&e);
    for (size_t i = 0; i < n; i++) printf("%s%d", i ? " " : "", (int)pids[i]);
    printf("\n");
    return 0;
  }
  if (strcmp(cmd, "kill") == 0 && argc == 4)
    return cgroup_kill_all(&cg, atoi(argv[3]), &e) < 0 ? fail(&e) : 0;
  if (strcmp(cmd, "stats") == 0) {
    cleanup_json json_t *st = NULL;
    if (cgroup_stats(&cg, &st, &e) < 0) return fail(&e);
    char *s = json_dumps(st, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s\n", s);
    free(s);
    return 0;
  }
  if (strcmp(cmd, "destroy") == 0) return cgroup_destroy(&cg, &e) < 0 ? fail(&e) : 0;
  if (strcmp(cmd, "mount") == 0 && argc >= 6 && strcmp(argv[4], "--") == 0)
    return cmd_mount(&cg, argv[3], argv + 5);
  return usage();
}
