#include "container.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/sched.h>

#include "cgroup.h"
#include "foreground.h"
#include "hooks.h"
#include "ns.h"
#include "process.h"
#include "rootfs.h"
#include "spec.h"
#include "sync.h"
#include "sysctl.h"
#include "terminal.h"
#include "util.h"

/* Everything the child stages need; filled by the parent before fork. */
typedef struct child_ctx {
  berth_spec *spec;
  ns_plan ns;
  proc_plan proc;
  berth_cgroup cg;
  int sock;            /* child's end of the sync socketpair */
  int state_dirfd;     /* O_PATH fd of the state dir, to reach exec.fifo after pivot */
  bool no_pivot;
  bool terminal;
  bool wants_mount_hooks;
  bool exec_mode;      /* exec into a running container instead of create */
  int parent_only_fds[3]; /* the parent's fds that must not live on in the container (state lock...) */
} child_ctx;

static void child_fail(child_ctx *c, berth_error *e) {
  sync_send_error(c->sock, e);
  _exit(1);
}

static int reset_signals(berth_error *e) {
  sigset_t none;
  sigemptyset(&none);
  if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) return berth_fail_errno(e, "reset the signal mask");
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  return 0;
}

/* Waits until `start` opens the fifo for reading, then goes on. Runs after
 * pivot_root, so it reaches the fifo through the state dir's fd. */
static int wait_for_start(child_ctx *c, berth_error *e) {
  cleanup_fd int fifo = openat(c->state_dirfd, "exec.fifo", O_WRONLY | O_CLOEXEC);
  if (fifo < 0) return berth_fail_errno(e, "open exec.fifo");
  if (write_all(fifo, "0", 1) < 0) return berth_fail_errno(e, "write exec.fifo");
  close(c->state_dirfd);
  c->state_dirfd = -1;
  return 0;
}

static const char *hostname_of(json_t *config) { return json_str(config, "hostname"); }

/* The container's init: pid 1 of a new pid namespace when there is one. */
static void stage2_init(child_ctx *c) {
  berth_error err;
  berth_error *e = &err;
  json_t *config = c->spec->config;
  sync_msg m;
  if (setsid() < 0) {
    berth_fail_errno(e, "setsid");
    child_fail(c, e);
  }
  const char *hostname = hostname_of(config);
  if (hostname && sethostname(hostname, strlen(hostname)) < 0) {
    berth_fail_errno(e, "hostname \"%s\"", hostname);
    child_fail(c, e);
  }
  const char *domain = json_str(config, "domainname");
  if (domain && setdomainname(domain, strlen(domain)) < 0) {
    berth_fail_errno(e, "domainname \"%s\"", domain);
    child_fail(c, e);
  }
  /* Relative bind sources are relative to the bundle, as with runc. */
  if (chdir(c->spec->bundle) < 0) {
    berth_fail_errno(e, "chdir to the bundle '%s'", c->spec->bundle);
    child_fail(c, e);
  }
  if (rootfs_prepare(config, c->spec->rootfs, &c->cg, c->proc.in_userns, e) < 0) child_fail(c, e);
  /* The state JSON for the hooks run in here; the parent knows our host pid. */
  static char hook_state[sizeof m.msg] = "{}";
  if (c->wants_mount_hooks) {
    if (sync_send(c->sock, SYNC_MOUNTS_DONE, 0, e) < 0 || sync_expect(c->sock, SYNC_GO, &m, e) < 0) child_fail(c, e);
    snprintf(hook_state, sizeof hook_state, "%s", m.msg);
    if (hooks_run(json_object_get(config, "hooks"), "createContainer", hook_state, e) < 0) child_fail(c, e);
  }
  if (rootfs_pivot(c->spec->rootfs, c->no_pivot, e) < 0) child_fail(c, e);
  if (c->terminal) {
    int master;
    char slave[PATH_MAX];
    if (terminal_open(c->proc.process, &master, slave, e) < 0) child_fail(c, e);
    if (rootfs_bind_console(slave, e) < 0) child_fail(c, e);
    if (sync_send_fd(c->sock, SYNC_CONSOLE, master, e) < 0) child_fail(c, e);
    close(master);
    if (terminal_make_stdio(slave, e) < 0) child_fail(c, e);
  }
  if (sysctl_apply(c->spec->linux_ ? json_object_get(c->spec->linux_, "sysctl") : NULL, e) < 0) child_fail(c, e);
  if (rootfs_finalize(config, e) < 0) child_fail(c, e);
  if (process_resolve_exe(&c->proc, e) < 0) child_fail(c, e);
  if (sync_send(c->sock, SYNC_READY, 0, e) < 0) child_fail(c, e);
  close(c->sock);
  c->sock = -1;
  /* From here on nobody listens on the socket: failures go to the
   * container's stderr and its exit status, as for any failed exec. */
  if (wait_for_start(c, e) < 0) goto fail;
  if (hooks_run(json_object_get(config, "hooks"), "startContainer", hook_state, e) < 0) goto fail;
  if (reset_signals(e) < 0) goto fail;
  process_exec(&c->proc, NULL, e);
fail:
  dprintf(STDERR_FILENO, "berth-runtime: %s\n", e->msg);
  _exit(e->errnum == ENOENT ? 127 : 126);
}

/* A process joining a running container (exec). */
static void stage2_exec(child_ctx *c) {
  berth_error err;
  berth_error *e = &err;
  if (setsid() < 0) {
    berth_fail_errno(e, "setsid");
    child_fail(c, e);
  }
  if (c->terminal) {
    int master;
    char slave[PATH_MAX];
    if (terminal_open(c->proc.process, &master, slave, e) < 0) child_fail(c, e);
    if (sync_send_fd(c->sock, SYNC_CONSOLE, master, e) < 0) child_fail(c, e);
    close(master);
    if (terminal_make_stdio(slave, e) < 0) child_fail(c, e);
  }
  if (process_resolve_exe(&c->proc, e) < 0) child_fail(c, e);
  if (reset_signals(e) < 0) child_fail(c, e);
  if (sync_send(c->sock, SYNC_READY, 0, e) < 0) child_fail(c, e);
  /* The socket is close-on-exec: the parent reads EOF when execve worked,
   * or the error if it did not. */
  process_exec(&c->proc, NULL, e);
  child_fail(c, e);
}

/* Joins or creates the namespaces, then forks the container process so that
 * it lands in the new pid (and time) namespace. */
static void stage1(child_ctx *c) {
  berth_error err;
  berth_error *e = &err;
  sync_msg m;
  /* A flock belongs to the open file: a copy kept here would hold the
   * container's state lock for as long as the container runs. */
  for (size_t i = 0; i < BERTH_ARRAY_LEN(c->parent_only_fds); i++)
    if (c->parent_only_fds[i] >= 0) close(c->parent_only_fds[i]);
  /* Forked straight into the cgroup2 group; the v1 ones we enter ourselves. */
  if (cgroup_enter_self(&c->cg, e) < 0) child_fail(c, e);
  if (sync_expect(c->sock, SYNC_GO, &m, e) < 0) _exit(1);
  /* Nothing in the container may ptrace us or open /proc/<pid>/exe or our
   * fds until execve resets this. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
    berth_fail_errno(e, "prctl(PR_SET_DUMPABLE)");
    child_fail(c, e);
  }
  /* rlimits and oom_score_adj are inherited: set them while we still have
   * the host's credentials, before any user namespace. */
  if (process_apply_limits(&c->proc, e) < 0) child_fail(c, e);
  if (ns_join(&c->ns, e) < 0) child_fail(c, e);
  int flags = c->ns.new_flags;
  if (flags & CLONE_NEWUSER) {
    if (unshare(CLONE_NEWUSER) < 0) {
      berth_fail_errno(e, "create user namespace");
      child_fail(c, e);
    }
    if (sync_send(c->sock, SYNC_USERNS_READY, 0, e) < 0 || sync_expect(c->sock, SYNC_GO, &m, e) < 0) child_fail(c, e);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
      berth_fail_errno(e, "become root in the new user namespace (is container uid/gid 0 mapped?)");
      child_fail(c, e);
    }
  }
  flags &= ~CLONE_NEWUSER;
  if (flags && unshare(flags) < 0) {
    berth_fail_errno(e, "create namespaces (flags 0x%x)", flags);
    child_fail(c, e);
  }
  if ((flags & CLONE_NEWNET) && ns_loopback_up(e) < 0) child_fail(c, e);
  if (flags & 0x80 /* CLONE_NEWTIME */) {
    /* Non-dumpable, our /proc/self files belong to the host's root, which a
     * new user namespace cannot write as; nothing of the container runs yet,
     * so lift it for this one write. */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    int r = ns_write_time_offsets(json_object_get(c->spec->linux_, "timeOffsets"), e);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (r < 0) child_fail(c, e);
  }
  pid_t pid = fork();
  if (pid < 0) {
    berth_fail_errno(e, "fork the container process");
    child_fail(c, e);
  }
  if (pid == 0) {
    if (c->exec_mode)
      stage2_exec(c);
    else
      stage2_init(c);
    _exit(1);
  }
  if (sync_send(c->sock, SYNC_PID, pid, e) < 0) _exit(1);
  _exit(0);
}

/* fork(), landing in the container's cgroup2 group when there is one. */
static pid_t fork_into_cgroup(const berth_cgroup *cg, berth_error *e) {
  int cgfd;
  if (cgroup_unified_fd(cg, &cgfd, e) < 0) return -1;
  if (cgfd < 0) {
    pid_t pid = fork();
    return pid < 0 ? berth_fail_errno(e, "fork") : pid;
  }
  struct clone_args args = {.flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgfd};
  pid_t pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) berth_fail_errno(e, "clone3 into cgroup '%s'", cg->path);
  if (pid != 0) close(cgfd);
  return pid;
}

/* The socketpair between us and the child stages: ours CLOEXEC, theirs
 * closed by stage1 (it is in parent_only_fds) or at execve. */
static int open_sync(child_ctx *c, int *parent_sock, berth_error *e) {
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) return berth_fail_errno(e, "socketpair");
  *parent_sock = sp[0];
  c->sock = sp[1];
  return 0;
}

/* A pty master from the child: to --console-socket when there is one, else
 * kept for a foreground proxy. */
static int take_console(int console_sock, int fd, int *master, berth_error *e) {
  if (console_sock < 0) {
    *master = fd;
    return 0;
  }
  int r = terminal_send_master(console_sock, fd, e);
  close(fd);
  return r;
}

static int host_uid_of_root(json_t *linux_, uid_t *uid, gid_t *gid) {
  *uid = 0;
  *gid = 0;
  const char *names[2] = {"uidMappings", "gidMappings"};
  for (int k = 0; k < 2; k++) {
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(linux_, names[k]), i, m) {
      long long c = json_integer_value(json_object_get(m, "containerID"));
      long long h = json_integer_value(json_object_get(m, "hostID"));
      long long s = json_integer_value(json_object_get(m, "size"));
      if (c <= 0 && c + s > 0) {
        if (k == 0) *uid = (uid_t)(h - c);
        else *gid = (gid_t)(h - c);
      }
    }
  }
  return 0;
}

/* The devices every container gets whatever its device rules say, as runc
 * does: mknod of any node (access is still checked on open), the default
 * devices, /dev/console and ptys. */
static void add_default_device_rules(json_t *linux_) {
  json_t *res = json_object_get(linux_, "resources");
  json_t *rules = json_object_get(res, "devices");
  if (!json_is_array(rules) || json_array_size(rules) == 0) return;
  static const struct {
    const char *type;
    long long major, minor;
    const char *access;
  } defaults[] = {{"c", -1, -1, "m"},  {"b", -1, -1, "m"},   {"c", 1, 3, "rwm"}, {"c", 1, 5, "rwm"},
                  {"c", 1, 7, "rwm"},  {"c", 1, 8, "rwm"},   {"c", 1, 9, "rwm"}, {"c", 5, 0, "rwm"},
                  {"c", 5, 1, "rwm"},  {"c", 5, 2, "rwm"},   {"c", 136, -1, "rwm"}};
  for (size_t i = 0; i < BERTH_ARRAY_LEN(defaults); i++) {
    json_t *r = json_pack("{s:b, s:s, s:s}", "allow", 1, "type", defaults[i].type, "access", defaults[i].access);
    if (defaults[i].major >= 0) json_object_set_new(r, "major", json_integer(defaults[i].major));
    if (defaults[i].minor >= 0) json_object_set_new(r, "minor", json_integer(defaults[i].minor));
    json_array_append_new(rules, r);
  }
}

static char *state_json_text(const berth_state *st, berth_status status) {
  cleanup_json json_t *j = state_to_json(st, status);
  return j ? json_dumps(j, JSON_COMPACT) : NULL;
}

static int write_pid_file(const char *path, pid_t pid, berth_error *e) {
  if (!path) return 0;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%d", (int)pid);
  if (write_file_replace(path, buf, (size_t)n, 0644, e) < 0) return berth_wrap(e, "--pid-file");
  return 0;
}

/* Waits up to timeout_ms for pid to be gone (reaps it when it is ours). */
static bool wait_gone(pid_t pid, unsigned long long start, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 5) {
    waitpid(pid, NULL, WNOHANG);
    if (!state_pid_alive(pid, start)) return true;
    usleep(5000);
  }
  return !state_pid_alive(pid, start);
}

static int check_create_config(berth_spec *spec, const create_opts *o, ns_plan *ns, berth_error *e) {
  json_t *config = spec->config, *linux_ = spec->linux_;
  if (ns_plan_parse(linux_ ? json_object_get(linux_, "namespaces") : NULL, ns, e) < 0) return -1;
  if (!ns->has[NS_MNT] || ns->join_fd[NS_MNT] >= 0)
    return berth_fail_msg(e, EINVAL, "linux.namespaces: a new mount namespace is required (add {\"type\": \"mount\"})");
  bool userns = ns->has[NS_USER];
  if (!userns && (json_array_size(json_object_get(linux_, "uidMappings")) ||
                  json_array_size(json_object_get(linux_, "gidMappings"))))
    return berth_fail_msg(e, EINVAL, "linux.uidMappings: mappings need a user namespace in linux.namespaces");
  if ((ns->new_flags & CLONE_NEWUSER) && ns_write_id_maps(0, linux_, e) < 0) return -1;
  if (hostname_of(config) && !ns->has[NS_UTS])
    return berth_fail_msg(e, EINVAL, "hostname: setting it needs a uts namespace in linux.namespaces");
  if (json_str(config, "domainname") && !ns->has[NS_UTS])
    return berth_fail_msg(e, EINVAL, "domainname: setting it needs a uts namespace in linux.namespaces");
  if (json_object_get(linux_, "timeOffsets") && !(ns->new_flags & 0x80))
    return berth_fail_msg(e, EINVAL, "linux.timeOffsets: needs a new time namespace in linux.namespaces");
  if (sysctl_check(linux_ ? json_object_get(linux_, "sysctl") : NULL, ns, e) < 0) return -1;
  if (hooks_check(json_object_get(config, "hooks"), e) < 0) return -1;
  if (json_object_get(linux_, "intelRdt"))
    return berth_fail_msg(e, EOPNOTSUPP, "linux.intelRdt: Intel RDT is not supported by berth-runtime on this host");
  bool terminal = json_is_true(json_object_get(spec->process, "terminal"));
  if (terminal && !o->console_socket && !o->foreground)
    return berth_fail_msg(e, EINVAL, "process.terminal is true: --console-socket is required for a detached container");
  if (!terminal && o->console_socket)
    return berth_fail_msg(e, EINVAL, "--console-socket given but process.terminal is false");
  return 0;
}

int container_create(const create_opts *o, berth_state *st, int *console_master, berth_error *e) {
  *console_master = -1;
  berth_spec spec;
  child_ctx c = {.spec = &spec, .sock = -1, .state_dirfd = -1, .no_pivot = o->no_pivot, .parent_only_fds = {-1, -1, -1}};
  int parent_sock = -1, console_sock = -1;
  pid_t stage1_pid = -1, init_pid = -1;
  bool dir_made = false, cgroup_made = false;
  ns_plan_parse(NULL, &c.ns, e);
  memset(st, 0, sizeof *st);
  st->lock_fd = -1;

  if (spec_load(&spec, o->bundle, o->config_path, e) < 0) goto fail;
  if (check_create_config(&spec, o, &c.ns, e) < 0) goto fail;
  char seccomp_cache[PATH_MAX];
  snprintf(seccomp_cache, sizeof seccomp_cache, "%s/.seccomp-cache", o->root);
  if (process_prepare(&c.proc, spec.process, spec.linux_, seccomp_cache, e) < 0) goto fail;
  c.proc.in_userns = c.ns.has[NS_USER];
  c.proc.preserve_fds = o->preserve_fds;
  c.terminal = json_is_true(json_object_get(spec.process, "terminal"));
  json_t *hooks = json_object_get(spec.config, "hooks");
  c.wants_mount_hooks = json_array_size(json_object_get(hooks, "prestart")) ||
                        json_array_size(json_object_get(hooks, "createRuntime")) ||
                        json_array_size(json_object_get(hooks, "createContainer")) ||
                        json_array_size(json_object_get(hooks, "startContainer"));
  if (cgroup_open(&c.cg, json_str(spec.linux_, "cgroupsPath"), o->id, o->cgroup_disabled, e) < 0) goto fail;
  if (o->console_socket && (console_sock = terminal_connect_socket(o->console_socket, e)) < 0) goto fail;

  if (state_create_dir(st, o->root, o->id, e) < 0) goto fail;
  dir_made = true;
  snprintf(st->bundle, sizeof st->bundle, "%s", spec.bundle);
  snprintf(st->rootfs, sizeof st->rootfs, "%s", spec.rootfs);
  snprintf(st->cgroup_path, sizeof st->cgroup_path, "%s", c.cg.path);
  st->cgroup_disabled = o->cgroup_disabled;
  rfc3339_now(st->created, sizeof st->created);
  st->annotations = json_incref(json_object_get(spec.config, "annotations"));
  st->hooks = json_incref(hooks);
  {
    cleanup_free char *text = json_dumps(spec.config, JSON_COMPACT);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", st->dir);
    if (!text || write_file_replace(path, text, strlen(text), 0600, e) < 0) goto fail;
    snprintf(path, sizeof path, "%s/exec.fifo", st->dir);
    if (mkfifo(path, 0600) < 0) {
      berth_fail_errno(e, "create '%s'", path);
      goto fail;
    }
    uid_t ruid;
    gid_t rgid;
    host_uid_of_root(spec.linux_, &ruid, &rgid);
    if ((ruid || rgid) && chown(path, ruid, rgid) < 0) {
      berth_fail_errno(e, "chown '%s' to the container's root", path);
      goto fail;
    }
  }
  c.state_dirfd = open(st->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (c.state_dirfd < 0) {
    berth_fail_errno(e, "open '%s'", st->dir);
    goto fail;
  }
  add_default_device_rules(spec.linux_);
  if (cgroup_create(&c.cg, json_object_get(spec.linux_, "resources"), e) < 0) goto fail;
  cgroup_made = true;

  if (open_sync(&c, &parent_sock, e) < 0) goto fail;
  c.parent_only_fds[0] = st->lock_fd;
  c.parent_only_fds[1] = parent_sock;
  c.parent_only_fds[2] = console_sock;
  if (o->foreground && foreground_prepare(e) < 0) goto fail;
  stage1_pid = fork_into_cgroup(&c.cg, e);
  if (stage1_pid < 0) goto fail;
  if (stage1_pid == 0) stage1(&c);
  close(c.sock);
  c.sock = -1;
  if (sync_send(parent_sock, SYNC_GO, 0, e) < 0) goto fail;

  /* stage1 reports the init's pid and the init reports its progress on the
   * same socket, so on a busy host the init's messages can come first: keep
   * them until the pid is known. */
  bool ready = false, mounts_done = false;
  for (;;) {
    if (init_pid > 0 && mounts_done) {
      mounts_done = false;
      st->pid = init_pid;
      cleanup_free char *sj = state_json_text(st, STATUS_CREATING);
      if (!sj) {
        berth_fail(e, ENOMEM, "state JSON");
        goto fail;
      }
      if (hooks_run(hooks, "prestart", sj, e) < 0 || hooks_run(hooks, "createRuntime", sj, e) < 0) goto fail;
      sync_msg go = {.type = SYNC_GO};
      snprintf(go.msg, sizeof go.msg, "%s", sj);
      if (send(parent_sock, &go, sizeof go, MSG_NOSIGNAL) < 0) {
        berth_fail_errno(e, "sync: send hook state");
        goto fail;
      }
    }
    if (init_pid > 0 && ready) break;
    sync_msg m;
    int fd = -1;
    if (sync_recv(parent_sock, &m, &fd, e) < 0) goto fail;
    switch (m.type) {
    case 0:
      berth_fail_msg(e, EPIPE, "the container's init exited before it was ready");
      goto fail;
    case SYNC_ERROR:
      e->errnum = m.errnum;
      snprintf(e->msg, sizeof e->msg, "%s", m.msg);
      goto fail;
    case SYNC_USERNS_READY:
      if (ns_write_id_maps(stage1_pid, spec.linux_, e) < 0 || sync_send(parent_sock, SYNC_GO, 0, e) < 0) goto fail;
      break;
    case SYNC_PID:
      init_pid = m.pid;
      waitpid(stage1_pid, NULL, 0);
      stage1_pid = -1;
      break;
    case SYNC_CONSOLE:
      if (take_console(console_sock, fd, console_master, e) < 0) goto fail;
      break;
    case SYNC_MOUNTS_DONE:
      mounts_done = true;
      break;
    case SYNC_READY:
      ready = true;
      break;
    default:
      berth_fail_msg(e, EPROTO, "sync: unexpected message %u", m.type);
      goto fail;
    }
  }
  st->pid = init_pid;
  st->pid_start = proc_start_time(init_pid);
  if (state_save(st, e) < 0) goto fail;
  if (write_pid_file(o->pid_file, init_pid, e) < 0) goto fail;
  close(parent_sock);
  if (console_sock >= 0) close(console_sock);
  close(c.state_dirfd);
  ns_plan_close(&c.ns);
  process_plan_free(&c.proc);
  spec_free(&spec);
  return 0;

fail:
  if (init_pid > 0) kill(init_pid, SIGKILL);
  if (stage1_pid > 0) {
    kill(stage1_pid, SIGKILL);
    waitpid(stage1_pid, NULL, 0);
  }
  if (parent_sock >= 0) close(parent_sock);
  if (console_sock >= 0) close(console_sock);
  if (c.state_dirfd >= 0) close(c.state_dirfd);
  if (*console_master >= 0) close(*console_master);
  *console_master = -1;
  if (init_pid > 0) wait_gone(init_pid, 0, 2000);
  if (cgroup_made) {
    berth_error ignored;
    cgroup_kill_all(&c.cg, SIGKILL, &ignored);
    cgroup_destroy(&c.cg, &ignored);
  }
  if (dir_made) {
    berth_error ignored;
    state_remove(st, &ignored);
  }
  state_free(st);
  ns_plan_close(&c.ns);
  process_plan_free(&c.proc);
  spec_free(&spec);
  return -1;
}

int container_start(berth_state *st, berth_error *e) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/exec.fifo", st->dir);
  cleanup_fd int fifo = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fifo < 0) {
    if (errno == ENOENT) return berth_fail_msg(e, EINVAL, "container \"%s\" was already started", st->id);
    return berth_fail_errno(e, "open '%s'", path);
  }
  /* The init opens the fifo for writing and writes one byte once it sees a
   * reader; check that it is still alive while we wait. */
  for (;;) {
    struct pollfd p = {.fd = fifo, .events = POLLIN};
    int r = poll(&p, 1, 100);
    if (r < 0 && errno != EINTR) return berth_fail_errno(e, "wait for the container's init");
    if (r > 0 && (p.revents & POLLIN)) {
      char b;
      if (read(fifo, &b, 1) == 1) break;
    }
    if (!state_pid_alive(st->pid, st->pid_start))
      return berth_fail_msg(e, ESRCH, "container \"%s\": its init process exited before start", st->id);
  }
  unlink(path);
  cleanup_free char *sj = state_json_text(st, STATUS_RUNNING);
  if (sj && hooks_run(st->hooks, "poststart", sj, e) < 0) {
    /* The spec says a failing poststart hook is logged and start goes on. */
    dprintf(STDERR_FILENO, "berth-runtime: warning: %s\n", e->msg);
  }
  return 0;
}

int container_destroy(berth_state *st, berth_error *e) {
  berth_cgroup cg;
  bool have_cg = !st->cgroup_disabled && cgroup_open(&cg, st->cgroup_path, st->id, false, e) == 0;
  if (have_cg) {
    bool frozen = false;
    if (cgroup_is_frozen(&cg, &frozen, e) == 0 && frozen) cgroup_freeze(&cg, false, e);
  }
  if (state_pid_alive(st->pid, st->pid_start)) {
    int pidfd = (int)syscall(SYS_pidfd_open, st->pid, 0);
    if (pidfd >= 0) {
      if (state_pid_alive(st->pid, st->pid_start)) syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
      close(pidfd);
    }
  }
  if (have_cg) cgroup_kill_all(&cg, SIGKILL, e);
  if (!wait_gone(st->pid, st->pid_start, 10000))
    return berth_fail_msg(e, EBUSY, "container \"%s\": init %d did not die after SIGKILL", st->id, (int)st->pid);
  cleanup_free char *sj = state_json_text(st, STATUS_STOPPED);
  if (sj && hooks_run(st->hooks, "poststop", sj, e) < 0)
    dprintf(STDERR_FILENO, "berth-runtime: warning: %s\n", e->msg);
  if (have_cg && cgroup_destroy(&cg, e) < 0) return berth_wrap(e, "container \"%s\"", st->id);
  return state_remove(st, e);
}

int container_load_config(const berth_state *st, json_t **config, berth_error *e) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/config.json", st->dir);
  json_error_t jerr;
  *config = json_load_file(path, 0, &jerr);
  if (!*config) return berth_fail_msg(e, EINVAL, "container \"%s\": read '%s': %s", st->id, path, jerr.text);
  return 0;
}

int container_exec(const exec_opts *o, berth_error *e) {
  berth_state st;
  cleanup_json json_t *config = NULL;
  child_ctx c = {.sock = -1, .state_dirfd = -1, .exec_mode = true, .parent_only_fds = {-1, -1, -1}};
  berth_spec spec = {0};
  int parent_sock = -1, console_sock = -1, master = -1, rc = -1;
  pid_t stage1_pid = -1, pid = -1;
  ns_plan_parse(NULL, &c.ns, e);
  if (state_load(&st, o->root, o->id, false, e) < 0) return -1;
  berth_status status = state_status(&st);
  if (status != STATUS_RUNNING && status != STATUS_CREATED) {
    berth_fail_msg(e, EINVAL, "container \"%s\" is %s: exec needs it running", st.id, state_status_name(status));
    goto out;
  }
  if (container_load_config(&st, &config, e) < 0) goto out;
  spec.config = config;
  spec.linux_ = json_object_get(config, "linux");
  spec.process = o->process;
  c.spec = &spec;
  if (spec_check_process(o->process, "exec process", e) < 0) goto out;
  char seccomp_cache[PATH_MAX];
  snprintf(seccomp_cache, sizeof seccomp_cache, "%s/.seccomp-cache", o->root);
  if (process_prepare(&c.proc, o->process, spec.linux_, seccomp_cache, e) < 0) goto out;
  c.proc.preserve_fds = o->preserve_fds;
  c.terminal = json_is_true(json_object_get(o->process, "terminal"));
  if (c.terminal && o->detach && !o->console_socket) {
    berth_fail_msg(e, EINVAL, "exec with a terminal and --detach needs --console-socket");
    goto out;
  }
  if (o->console_socket && (console_sock = terminal_connect_socket(o->console_socket, e)) < 0) goto out;
  if (ns_plan_from_pid(st.pid, &c.ns, e) < 0) goto out;
  c.proc.in_userns = c.ns.has[NS_USER];
  if (cgroup_open(&c.cg, st.cgroup_path, st.id, st.cgroup_disabled, e) < 0) goto out;
  if (open_sync(&c, &parent_sock, e) < 0) goto out;
  c.parent_only_fds[0] = parent_sock;
  c.parent_only_fds[1] = console_sock;
  if (!o->detach && foreground_prepare(e) < 0) goto out;
  stage1_pid = fork_into_cgroup(&c.cg, e);
  if (stage1_pid < 0) goto out;
  if (stage1_pid == 0) stage1(&c);
  close(c.sock);
  c.sock = -1;
  if (sync_send(parent_sock, SYNC_GO, 0, e) < 0) goto out;
  for (bool ready = false;;) {
    sync_msg m;
    int fd = -1;
    if (sync_recv(parent_sock, &m, &fd, e) < 0) goto out;
    if (m.type == 0) {
      if (ready && pid > 0) break; /* execve closed the socket: it worked */
      berth_fail_msg(e, EPIPE, "exec: the process exited before it was ready");
      goto out;
    }
    if (m.type == SYNC_ERROR) {
      e->errnum = m.errnum;
      snprintf(e->msg, sizeof e->msg, "%s", m.msg);
      goto out;
    }
    if (m.type == SYNC_PID) {
      pid = m.pid;
      waitpid(stage1_pid, NULL, 0);
      stage1_pid = -1;
    } else if (m.type == SYNC_CONSOLE) {
      if (take_console(console_sock, fd, &master, e) < 0) goto out;
    } else if (m.type == SYNC_READY) {
      ready = true;
    }
  }
  if (write_pid_file(o->pid_file, pid, e) < 0) goto out;
  close(parent_sock);
  parent_sock = -1;
  if (console_sock >= 0) close(console_sock);
  console_sock = -1;
  rc = o->detach ? 0 : foreground_wait(pid, master, e);
  pid = -1;
out:
  if (pid > 0 && rc < 0) kill(pid, SIGKILL);
  if (stage1_pid > 0) {
    kill(stage1_pid, SIGKILL);
    waitpid(stage1_pid, NULL, 0);
  }
  if (parent_sock >= 0) close(parent_sock);
  if (console_sock >= 0) close(console_sock);
  if (master >= 0) close(master);
  ns_plan_close(&c.ns);
  process_plan_free(&c.proc);
  state_free(&st);
  return rc;
}
