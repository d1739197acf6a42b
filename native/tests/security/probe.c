/* berth-secprobe: applies a process.capabilities / linux.seccomp config to
 * a forked child in the order the runtime's init uses, then reports what
 * the kernel says (status), makes one raw syscall (syscall) or execs a
 * command (exec).
 *
 *   berth-secprobe [--caps JSON] [--seccomp JSON] [--user UID:GID]
 *                  [--groups GID,GID] [--no-new-privs] [--state JSON]
 *                  [--seccomp-cache DIR]
 *                  status | syscall NAME [ARG...] | exec PATH [ARG...]
 *   berth-secprobe features
 *
 * A config error exits 2 before the fork, a failure while applying exits 3
 * (message on stderr); a child killed by a signal makes the probe exit
 * 128+signal and say so on stderr; otherwise the child's status is ours.
 * A syscall ARG is a number (strtoull base 0) or str:TEXT (a pointer). */
#include <errno.h>
#include <grp.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "caps.h"
#include "seccomp.h"
#include "util.h"

typedef struct {
  const char *caps, *seccomp, *state, *groups, *cache;
  bool set_user, nnp;
  uid_t uid;
  gid_t gid;
} options;

static void usage(void) {
  fprintf(stderr,
          "usage: berth-secprobe [--caps JSON] [--seccomp JSON] [--user UID:GID] "
          "[--groups G,G] [--no-new-privs] [--state JSON] [--seccomp-cache DIR] status|syscall "
          "NAME ARGS|exec PATH ARGS\n       berth-secprobe features\n");
  exit(2);
}

static json_t *load_json(const char *what, const char *text) {
  json_error_t err;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
  if (!j) {
    fprintf(stderr, "berth-secprobe: %s: invalid JSON: %s\n", what, err.text);
    exit(2);
  }
  return j;
}

static const char *status_keys[] = {"Uid",    "Gid",    "Groups",     "NoNewPrivs",
                                    "Seccomp", "Seccomp_filters", "CapInh", "CapPrm",
                                    "CapEff", "CapBnd", "CapAmb"};

static int report_status(void) {
  berth_error e;
  cleanup_free char *text = NULL;
  if (read_file("/proc/self/status", &text, NULL, &e) < 0) {
    fprintf(stderr, "berth-secprobe: %s\n", e.msg);
    return 3;
  }
  cleanup_json json_t *out = json_object();
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    char *colon = strchr(line, ':');
    if (!colon) continue;
    *colon = '\0';
    char *val = colon + 1;
    while (*val == ' ' || *val == '\t') val++;
    for (size_t i = 0; i < BERTH_ARRAY_LEN(status_keys); i++)
      if (strcmp(line, status_keys[i]) == 0) json_object_set_new(out, line, json_string(val));
  }
  char *dump = json_dumps(out, JSON_COMPACT);
  printf("%s\n", dump);
  free(dump);
  return 0;
}

static int do_syscall(int argc, char **argv) {
  int nr = seccomp_syscall_resolve_name(argv[0]);
  if (nr < 0) {
    fprintf(stderr, "berth-secprobe: unknown syscall %s\n", argv[0]);
    return 2;
  }
  long a[6] = {0};
  for (int i = 1; i < argc && i <= 6; i++) {
    if (strncmp(argv[i], "str:", 4) == 0)
      a[i - 1] = (long)(argv[i] + 4);
    else
      a[i - 1] = (long)strtoull(argv[i], NULL, 0);
  }
  errno = 0;
  long rc = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
  int err = rc < 0 ? errno : 0;
  printf("{\"ret\":%ld,\"errno\":%d}\n", rc, err);
  return 0;
}

static int set_groups(const char *list, berth_error *e) {
  gid_t gids[64];
  size_t n = 0;
  if (list && *list) {
    char *copy = strdup(list);
    for (char *t = strtok(copy, ","); t && n < BERTH_ARRAY_LEN(gids); t = strtok(NULL, ","))
      gids[n++] = (gid_t)strtoul(t, NULL, 10);
    free(copy);
  }
  if (setgroups(n, gids) < 0) return berth_fail_errno(e, "setgroups");
  return 0;
}

/* The order the runtime's init uses after pivot_root. */
static int apply(const options *o, const caps_sets *caps, berth_seccomp *sc, berth_error *e) {
  if (set_groups(o->groups, e) < 0) return -1;
  if (caps_keep_across_setuid(e) < 0) return -1;
  if (o->set_user) {
    if (setresgid(o->gid, o->gid, o->gid) < 0) return berth_fail_errno(e, "setresgid");
    if (setresuid(o->uid, o->uid, o->uid) < 0) return berth_fail_errno(e, "setresuid");
  }
  if (!o->nnp && seccomp_install(sc, o->state, e) < 0) return -1;
  if (caps_apply(caps, e) < 0) return -1;
  if (o->nnp) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0)
      return berth_fail_errno(e, "prctl(PR_SET_NO_NEW_PRIVS)");
    if (seccomp_install(sc, o->state, e) < 0) return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  options o = {0};
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    const char *opt = argv[i];
    if (strcmp(opt, "--no-new-privs") == 0) {
      o.nnp = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    const char *val = argv[++i];
    if (strcmp(opt, "--caps") == 0) {
      o.caps = val;
    } else if (strcmp(opt, "--seccomp") == 0) {
      o.seccomp = val;
    } else if (strcmp(opt, "--seccomp-cache") == 0) {
      o.cache = val;
    } else if (strcmp(opt, "--state") == 0) {
      o.state = val;
    } else if (strcmp(opt, "--groups") == 0) {
      o.groups = val;
    } else if (strcmp(opt, "--user") == 0) {
      unsigned long u, g;
      if (sscanf(val, "%lu:%lu", &u, &g) != 2) usage();
      o.set_user = true;
      o.uid = (uid_t)u;
      o.gid = (gid_t)g;
    } else {
      usage();
    }
  }
  if (i >= argc) usage();
  const char *mode = argv[i++];

  if (strcmp(mode, "features") == 0) {
    cleanup_json json_t *f = json_pack("{s:o, s:o}", "capabilities", caps_features(), "seccomp",
                                       seccomp_features());
    char *dump = json_dumps(f, JSON_COMPACT);
    printf("%s\n", dump);
    free(dump);
    return 0;
  }
  if (strcmp(mode, "status") && strcmp(mode, "syscall") && strcmp(mode, "exec")) usage();
  if (strcmp(mode, "status") && i >= argc) usage();

  berth_error e;
  berth_error_clear(&e);
  caps_sets caps;
  cleanup_json json_t *caps_json = o.caps ? load_json("--caps", o.caps) : NULL;
  cleanup_json json_t *sc_json = o.seccomp ? load_json("--seccomp", o.seccomp) : NULL;
  berth_seccomp *sc = NULL;
  if (caps_parse(caps_json, &caps, &e) < 0 || seccomp_build_cached(sc_json, o.cache, &sc, &e) < 0) {
    fprintf(stderr, "berth-secprobe: %s\n", e.msg);
    return 2;
  }
  fflush(stdout);

  pid_t pid = fork();
  if (pid < 0) {
    perror("berth-secprobe: fork");
    return 3;
  }
  if (pid == 0) {
    if (apply(&o, &caps, sc, &e) < 0) {
      fprintf(stderr, "berth-secprobe: %s\n", e.msg);
      _exit(3);
    }
    int rc;
    if (strcmp(mode, "status") == 0) {
      rc = report_status();
    } else if (strcmp(mode, "syscall") == 0) {
      rc = do_syscall(argc - i, argv + i);
    } else {
      execv(argv[i], argv + i);
      fprintf(stderr, "berth-secprobe: exec %s: %s\n", argv[i], strerror(errno));
      rc = 127;
    }
    fflush(stdout);
    _exit(rc);
  }
  seccomp_free(sc);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      perror("berth-secprobe: waitpid");
      return 3;
    }
  }
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "berth-secprobe: child killed by signal %d (%s)\n", WTERMSIG(status),
            strsignal(WTERMSIG(status)));
    return 128 + WTERMSIG(status);
  }
  return WEXITSTATUS(status);
}
