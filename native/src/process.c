#include "process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static const struct {
  const char *name;
  int resource;
} rlimit_table[] = {
    {"RLIMIT_AS", RLIMIT_AS},         {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_CPU", RLIMIT_CPU},
    {"RLIMIT_DATA", RLIMIT_DATA},     {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_LOCKS", RLIMIT_LOCKS},
    {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK}, {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
    {"RLIMIT_NOFILE", RLIMIT_NOFILE}, {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_RTPRIO", RLIMIT_RTPRIO}, {"RLIMIT_RTTIME", RLIMIT_RTTIME},   {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_STACK", RLIMIT_STACK},
};

static int rlimit_lookup(const char *name) {
  for (size_t i = 0; i < BERTH_ARRAY_LEN(rlimit_table); i++)
    if (strcmp(rlimit_table[i].name, name) == 0) return rlimit_table[i].resource;
  return -1;
}

static int check_rlimits(json_t *process, berth_error *e) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(process, "rlimits"), i, v) {
    const char *type = json_str(v, "type");
    if (rlimit_lookup(type) < 0)
      return berth_fail_msg(e, EINVAL, "process.rlimits[%zu].type: unknown rlimit \"%s\" (expected RLIMIT_NOFILE, ...)", i,
                        type);
    if (json_integer_value(json_object_get(v, "soft")) > json_integer_value(json_object_get(v, "hard")) &&
        json_integer_value(json_object_get(v, "hard")) >= 0)
      return berth_fail_msg(e, EINVAL, "process.rlimits[%zu] (%s): soft limit is above the hard limit", i, type);
  }
  return 0;
}

int process_prepare(proc_plan *pp, json_t *process, json_t *linux_, const char *seccomp_cache, berth_error *e) {
  memset(pp, 0, sizeof *pp);
  pp->process = process;
  pp->linux_ = linux_;
  if (check_rlimits(process, e) < 0) return -1;
  if (caps_parse(json_object_get(process, "capabilities"), &pp->caps, e) < 0) return -1;
  pp->no_new_privs = json_is_true(json_object_get(process, "noNewPrivileges"));
  json_t *sc = linux_ ? json_object_get(linux_, "seccomp") : NULL;
  if (sc && seccomp_build_cached(sc, seccomp_cache, &pp->seccomp, e) < 0) return -1;
  json_t *pers = linux_ ? json_object_get(linux_, "personality") : NULL;
  if (pers) {
    const char *dom = json_str(pers, "domain");
    if (!dom || (strcmp(dom, "LINUX") != 0 && strcmp(dom, "LINUX32") != 0))
      return berth_fail_msg(e, EINVAL, "linux.personality.domain: expected \"LINUX\" or \"LINUX32\"");
  }
  return 0;
}

void process_plan_free(proc_plan *pp) {
  if (pp->seccomp) seccomp_free(pp->seccomp);
  pp->seccomp = NULL;
}

int process_apply_limits(proc_plan *pp, berth_error *e) {
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(pp->process, "rlimits"), i, v) {
    const char *type = json_str(v, "type");
    json_int_t hard = json_integer_value(json_object_get(v, "hard"));
    json_int_t soft = json_integer_value(json_object_get(v, "soft"));
    struct rlimit rl = {.rlim_cur = soft < 0 ? RLIM_INFINITY : (rlim_t)soft,
                        .rlim_max = hard < 0 ? RLIM_INFINITY : (rlim_t)hard};
    if (setrlimit(rlimit_lookup(type), &rl) < 0) {
      struct rlimit cur;
      getrlimit(rlimit_lookup(type), &cur);
      return berth_fail_errno(e, "process.rlimits[%zu]: set %s to soft %lld hard %lld (current hard limit %llu%s)", i,
                              type, (long long)soft, (long long)hard, (unsigned long long)cur.rlim_max,
                              errno == EPERM ? "; raising it needs CAP_SYS_RESOURCE" : "");
    }
  }
  json_t *oom = json_object_get(pp->process, "oomScoreAdj");
  if (oom) {
    if (!json_is_integer(oom) || json_integer_value(oom) < -1000 || json_integer_value(oom) > 1000)
      return berth_fail_msg(e, EINVAL, "process.oomScoreAdj: expected an integer from -1000 to 1000");
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(oom));
    if (write_file("/proc/self/oom_score_adj", buf, (size_t)n, e) < 0)
      return berth_wrap(e, "process.oomScoreAdj %s%s", buf,
                        e->errnum == EACCES ? " (lowering it needs CAP_SYS_RESOURCE)" : "");
  }
  json_t *io = json_object_get(pp->process, "ioPriority");
  if (io) {
    static const char *classes[] = {"", "IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"};
    const char *cls = json_str(io, "class");
    int c = 0;
    for (int k = 1; k < 4; k++)
      if (cls && strcmp(cls, classes[k]) == 0) c = k;
    long long prio = json_integer_value(json_object_get(io, "priority"));
    if (c == 0) return berth_fail_msg(e, EINVAL, "process.ioPriority.class: expected IOPRIO_CLASS_RT, _BE or _IDLE");
    if (prio < 0 || prio > 7) return berth_fail_msg(e, EINVAL, "process.ioPriority.priority: expected 0-7");
    if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (c << 13) | (int)prio) < 0)
      return berth_fail_errno(e, "process.ioPriority: ioprio_set");
  }
  json_t *pers = pp->linux_ ? json_object_get(pp->linux_, "personality") : NULL;
  if (pers) {
    unsigned long dom = strcmp(json_str(pers, "domain"), "LINUX32") == 0 ? PER_LINUX32 : PER_LINUX;
    if (personality(dom) < 0) return berth_fail_errno(e, "linux.personality");
  }
  return 0;
}

static const char *env_lookup(json_t *env, const char *key) {
  size_t n = strlen(key), i;
  json_t *v;
  json_array_foreach(env, i, v) {
    const char *s = json_string_value(v);
    if (s && strncmp(s, key, n) == 0 && s[n] == '=') return s + n + 1;
  }
  return NULL;
}

int process_resolve_exe(proc_plan *pp, berth_error *e) {
  const char *arg0 = json_string_value(json_array_get(json_object_get(pp->process, "args"), 0));
  if (strchr(arg0, '/')) {
    snprintf(pp->exe, sizeof pp->exe, "%s", arg0);
    struct stat st;
    if (stat(arg0, &st) < 0) return berth_fail_errno(e, "exec: \"%s\"", arg0);
    if (S_ISDIR(st.st_mode)) return berth_fail_msg(e, EISDIR, "exec: \"%s\" is a directory", arg0);
    return 0;
  }
  const char *path = env_lookup(json_object_get(pp->process, "env"), "PATH");
  if (!path) path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const char *p = path;
  int last_err = ENOENT;
  while (*p) {
    const char *end = strchr(p, ':');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char cand[PATH_MAX];
    if (len == 0)
      snprintf(cand, sizeof cand, "%s", arg0);
    else
      snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, arg0);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        snprintf(pp->exe, sizeof pp->exe, "%s", cand);
        return 0;
      }
      last_err = EACCES;
    }
    p += len;
    if (*p == ':') p++;
  }
  if (last_err == EACCES) return berth_fail_msg(e, EACCES, "exec: \"%s\": permission denied", arg0);
  return berth_fail_msg(e, ENOENT, "exec: \"%s\": executable file not found in $PATH", arg0);
}

/* HOME from the container's /etc/passwd when the config leaves it out, as
 * runc does. */
static void home_for(uid_t uid, char *out, size_t len) {
  snprintf(out, len, "/");
  FILE *f = fopen("/etc/passwd", "re");
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char *fields[7] = {0};
    char *s = line;
    for (int i = 0; i < 7 && s; i++) {
      fields[i] = s;
      s = strchr(s, ':');
      if (s) *s++ = '\0';
    }
    if (fields[2] && fields[5] && (uid_t)strtoul(fields[2], NULL, 10) == uid) {
      snprintf(out, len, "%s", fields[5]);
      break;
    }
  }
  fclose(f);
}

/* The cwd must be inside the container's root: a leaked host directory fd
 * (cwd "/proc/self/fd/N", CVE-2024-21626) shows up as an unreachable path. */
static int enter_cwd(const char *cwd, berth_error *e) {
  if (chdir(cwd) < 0) return berth_fail_errno(e, "process.cwd: chdir to '%s'", cwd);
  char buf[PATH_MAX];
  if (!getcwd(buf, sizeof buf)) return berth_fail_errno(e, "process.cwd '%s': is outside the container's root", cwd);
  if (buf[0] != '/') return berth_fail_msg(e, EPERM, "process.cwd '%s': is outside the container's root", cwd);
  return 0;
}

int process_exec(proc_plan *pp, const char *state_json, berth_error *e) {
  json_t *user = json_object_get(pp->process, "user");
  uid_t uid = (uid_t)json_integer_value(json_object_get(user, "uid"));
  gid_t gid = (gid_t)json_integer_value(json_object_get(user, "gid"));

  /* Nothing of the caller's may reach the container: every fd past stdio and
   * the preserved ones closes at execve. */
  if (syscall(SYS_close_range, 3 + pp->preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
    return berth_fail_errno(e, "close_range");

  const char *cwd = json_str(pp->process, "cwd");
  bool cwd_done = false;
  if (enter_cwd(cwd ? cwd : "/", e) == 0)
    cwd_done = true;
  else if (e->errnum != EACCES)
    return -1;

  json_t *um = json_object_get(user, "umask");
  umask(um ? (mode_t)json_integer_value(um) : 022);

  /* Build argv/envp now: nothing after seccomp should allocate much. */
  json_t *args = json_object_get(pp->process, "args"), *env = json_object_get(pp->process, "env");
  size_t nargs = json_array_size(args), nenv = json_array_size(env);
  cleanup_free char **argv = calloc(nargs + 1, sizeof(char *));
  cleanup_free char **envp = calloc(nenv + 2, sizeof(char *));
  if (!argv || !envp) return berth_fail(e, ENOMEM, "exec");
  for (size_t i = 0; i < nargs; i++) argv[i] = (char *)json_string_value(json_array_get(args, i));
  for (size_t i = 0; i < nenv; i++) envp[i] = (char *)json_string_value(json_array_get(env, i));
  char home[PATH_MAX + 8];
  if (!env_lookup(env, "HOME")) {
    char dir[PATH_MAX];
    home_for(uid, dir, sizeof dir);
    snprintf(home, sizeof home, "HOME=%s", dir);
    envp[nenv] = home;
  }

  /* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN: load it
   * while we still have every capability. */
  if (!pp->no_new_privs && pp->seccomp && seccomp_install(pp->seccomp, state_json, e) < 0) return -1;

  json_t *gids = json_object_get(user, "additionalGids");
  size_t ngids = json_array_size(gids);
  gid_t groups[ngids ? ngids : 1];
  for (size_t i = 0; i < ngids; i++) groups[i] = (gid_t)json_integer_value(json_array_get(gids, i));
  if (setgroups(ngids, groups) < 0) {
    /* A user namespace whose setgroups is denied: only an empty list works. */
    if (!(errno == EPERM && pp->in_userns && ngids == 0))
      return berth_fail_errno(e, "process.user.additionalGids: setgroups");
  }
  if (caps_keep_across_setuid(e) < 0) return -1;
  if (setresgid(gid, gid, gid) < 0) return berth_fail_errno(e, "process.user.gid: setresgid(%u)", (unsigned)gid);
  if (setresuid(uid, uid, uid) < 0) return berth_fail_errno(e, "process.user.uid: setresuid(%u)", (unsigned)uid);
  if (!cwd_done && enter_cwd(cwd, e) < 0) return -1;
  if (caps_apply(&pp->caps, e) < 0) return berth_wrap(e, "process.capabilities");

  if (pp->no_new_privs) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return berth_fail_errno(e, "process.noNewPrivileges: prctl");
    if (pp->seccomp && seccomp_install(pp->seccomp, state_json, e) < 0) return -1;
  }
  execve(pp->exe, argv, envp);
  return berth_fail_errno(e, "exec '%s'", pp->exe);
}
