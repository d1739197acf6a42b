#include "helper.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "exe_seal.h"
#include "netlink.h"
#include "netns.h"
#include "util.h"

/* Requests and replies are frames: u32 length of what follows, then the
 * fields, integers little-endian (the engine runs on this host), strings as
 * u32 length + bytes.
 *   request: u32 id, u8 op, then per op:
 *     EXEC   u32 argc, argc strings, string stdin
 *     MOUNT  string type, string source, string target, string data, u32 flags, u32 propagation
 *     UMOUNT string target, u32 flags
 *     LOCK   string path, u32 timeout seconds
 *     UNLOCK string path
 *     NET_PLUG   string netns file, u32 create, u32 count, count x (string host
 *                end, string bridge, string inner name, string MAC, string
 *                address/prefix, string gateway or "")
 *     LINK_DEL   string name
 *     BRIDGE     string name, string gateway address, u32 prefix
 *     SEAL       string path of an executable
 *   reply: u32 id, i32 code, i32 errno, string out, string err
 * A reply with id 0, sent once at start, says the helper is there.
 * EXEC: code is the exit status (128 + signal when killed), out and err the
 * program's output; errno is set (code 127) when it could not be started.
 * The others: code 0, or -1 with errno and a message in err. A helper that
 * does not know an operation answers EINVAL "unknown operation N" (the
 * engine falls back to the programs then).
 * NET_PLUG (`create`: a new netns bound on the file, lo up; else the one
 * bound there) makes each veth pair from the helper's namespace, the host
 * end on its bridge and up, the other end (name, MAC) in the netns with its
 * address, up, and a default route via the gateway when one is given. IPv6
 * stays off: no address of its own on the host end, disabled in the netns
 * for the links that come into it (lo keeps ::1).
 * LINK_DEL deletes a link of Berth's (berth*, bth*). BRIDGE makes the
 * bridge if it is missing, replaces its address and sets it up. SEAL
 * answers (in out) the number of a descriptor of the helper's that holds a
 * sealed copy of the file (exe_seal.h), made once per file version: the
 * engine has shims execute the runtime as /proc/<helper>/fd/<n>. The
 * network operations run in a child of the helper (the netns moves, and a
 * deletion waits for the kernel's RCU grace period), so the loop goes on. */
enum { OP_EXEC = 1, OP_MOUNT = 2, OP_UMOUNT = 3, OP_LOCK = 4, OP_UNLOCK = 5, OP_NET_PLUG = 6, OP_LINK_DEL = 7, OP_BRIDGE = 8,
       OP_SEAL = 9 };

#define MAX_JOBS 512
#define MAX_LOCKS 64
#define MAX_OUTPUT (64u << 20)

struct buf {
  char *p;
  size_t len, cap;
};

struct job {
  bool used;
  uint32_t id;
  pid_t pid;
  bool exited;
  int status;
  int in_fd, out_fd, err_fd;
  char *in_data;
  size_t in_len, in_off;
  struct buf out, err;
  int lock; /* a LOCK waiting in a child: its slot; -1 for EXEC */
  bool call; /* a network operation in a child: out holds its errno + message */
  unsigned timeout;
};

struct lock {
  bool used, held;
  char *path;
  int fd;
};

static struct job jobs[MAX_JOBS];
static struct lock locks[MAX_LOCKS];
static int sigchld_pipe[2] = {-1, -1};

static bool buf_add(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) return false;
    b->p = q, b->cap = cap;
  }
  memcpy(b->p + b->len, p, n);
  b->len += n;
  return true;
}

static void buf_free(struct buf *b) {
  free(b->p);
  b->p = NULL, b->len = b->cap = 0;
}

static bool buf_u32(struct buf *b, uint32_t v) { return buf_add(b, &v, 4); }
static bool buf_str(struct buf *b, const char *p, size_t n) { return buf_u32(b, (uint32_t)n) && buf_add(b, p, n); }

/* A reply, written whole (blocking): the engine reads them as they come. */
static void reply(uint32_t id, int code, int err, const char *out, size_t out_len, const char *msg, size_t msg_len) {
  struct buf b = {0};
  bool ok = buf_u32(&b, 0) && buf_u32(&b, id) && buf_u32(&b, (uint32_t)code) && buf_u32(&b, (uint32_t)err) &&
            buf_str(&b, out ? out : "", out ? out_len : 0) && buf_str(&b, msg ? msg : "", msg ? msg_len : 0);
  if (!ok) {
    fprintf(stderr, "berth-shim helper: out of memory for the reply to request %u\n", id);
    exit(1);
  }
  uint32_t len = (uint32_t)(b.len - 4);
  memcpy(b.p, &len, 4);
  if (write_all(1, b.p, b.len) < 0) exit(errno == EPIPE ? 0 : 1); /* the engine is gone */
  buf_free(&b);
}

static void reply_err(uint32_t id, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_err(uint32_t id, int err, const char *fmt, ...) {
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof msg) n = sizeof msg - 1;
  if (err) {
    int m = snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(err));
    if (m > 0) n = (size_t)(n + m) >= sizeof msg ? (int)sizeof msg - 1 : n + m;
  }
  reply(id, -1, err, NULL, 0, msg, (size_t)n);
}

/* ------------------------------------------------------------ parsing */

struct cursor {
  const char *p;
  size_t left;
  bool bad;
};

static uint32_t get_u32(struct cursor *c) {
  uint32_t v = 0;
  if (c->left < 4) {
    c->bad = true;
    return 0;
  }
  memcpy(&v, c->p, 4);
  c->p += 4, c->left -= 4;
  return v;
}

/* A string as a malloc'd NUL-terminated copy (NULL when malformed). */
static char *get_str(struct cursor *c, size_t *len_out) {
  uint32_t n = get_u32(c);
  if (c->bad || c->left < n) {
    c->bad = true;
    return NULL;
  }
  char *s = malloc((size_t)n + 1);
  if (!s) {
    c->bad = true;
    return NULL;
  }
  memcpy(s, c->p, n);
  s[n] = '\0';
  c->p += n, c->left -= n;
  if (len_out) *len_out = n;
  return s;
}

/* -------------------------------------------------------------- jobs */

static struct job *new_job(uint32_t id) {
  for (size_t i = 0; i < MAX_JOBS; i++) {
    if (jobs[i].used) continue;
    struct job *j = &jobs[i];
    memset(j, 0, sizeof *j);
    j->used = true, j->id = id, j->pid = -1;
    j->in_fd = j->out_fd = j->err_fd = -1;
    j->lock = -1;
    return j;
  }
  return NULL;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void free_job(struct job *j) {
  close_fd(&j->in_fd), close_fd(&j->out_fd), close_fd(&j->err_fd);
  free(j->in_data);
  buf_free(&j->out), buf_free(&j->err);
  j->used = false;
}

/* In the child between fork and exec: plain signal state, only stdio open. */
static void exec_child(char **argv, int in, int out, int err, int report) {
  if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
    int e = errno;
    (void)write_all(report, &e, sizeof e);
    _exit(127);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC); /* `report` goes at exec */
  execvp(argv[0], argv);
  int e = errno;
  (void)write_all(report, &e, sizeof e);
  _exit(127);
}

static void start_exec(uint32_t id, char **argv, char *in_data, size_t in_len) {
  struct job *j = new_job(id);
  if (!j) {
    free(in_data);
    reply_err(id, EAGAIN, "run '%s': more than %d programs at once", argv[0], MAX_JOBS);
    return;
  }
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) close_fd(&in[i]), close_fd(&out[i]), close_fd(&err[i]), close_fd(&report[i]);
    free(in_data);
    j->used = false;
    reply_err(id, e, "run '%s': pipes", argv[0]);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) exec_child(argv, in[0], out[1], err[1], report[1]);
  int fork_errno = errno;
  close(in[0]), close(out[1]), close(err[1]), close(report[1]);
  int exec_errno = 0;
  if (pid > 0) {
    /* EOF at a successful exec (close-on-exec), else the child's errno */
    ssize_t n;
    while ((n = read(report[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {}
    if (n != (ssize_t)sizeof exec_errno) exec_errno = 0;
  }
  close(report[0]);
  if (pid < 0 || exec_errno) {
    if (pid > 0)
      while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    close(in[1]), close(out[0]), close(err[0]);
    free(in_data);
    j->used = false;
    int e = pid < 0 ? fork_errno : exec_errno;
    char msg[512];
    int m = snprintf(msg, sizeof msg, "%s '%s': %s", pid < 0 ? "fork for" : "exec", argv[0], strerror(e));
    reply(id, 127, e, NULL, 0, msg, m > 0 ? (size_t)m : 0);
    return;
  }
  j->pid = pid;
  j->in_fd = in[1], j->out_fd = out[0], j->err_fd = err[0];
  fcntl(j->in_fd, F_SETFL, O_NONBLOCK);
  fcntl(j->out_fd, F_SETFL, O_NONBLOCK);
  fcntl(j->err_fd, F_SETFL, O_NONBLOCK);
  j->in_data = in_data, j->in_len = in_len;
  if (in_len == 0) close_fd(&j->in_fd);
}

static int find_lock(const char *path) {
  for (int i = 0; i < MAX_LOCKS; i++)
    if (locks[i].used && strcmp(locks[i].path, path) == 0) return i;
  return -1;
}

static void drop_lock(int slot) {
  close_fd(&locks[slot].fd);
  free(locks[slot].path);
  locks[slot].path = NULL;
  locks[slot].used = locks[slot].held = false;
}

/* The lock belongs to the open file description: a child that takes it
 * (blocking, under an alarm) and exits leaves it with our descriptor. */
static void start_lock(uint32_t id, char *path, unsigned timeout) {
  if (find_lock(path) >= 0) {
    reply_err(id, EDEADLK, "lock '%s': already held or being taken by this engine process", path);
    free(path);
    return;
  }
  int slot = -1;
  for (int i = 0; i < MAX_LOCKS && slot < 0; i++)
    if (!locks[i].used) slot = i;
  if (slot < 0) {
    reply_err(id, EMFILE, "lock '%s': more than %d locks held", path, MAX_LOCKS);
    free(path);
    return;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    reply_err(id, errno, "open lock file '%s'", path);
    free(path);
    return;
  }
  locks[slot] = (struct lock){.used = true, .held = false, .path = path, .fd = fd};
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
    locks[slot].held = true;
    reply(id, 0, 0, NULL, 0, NULL, 0);
    return;
  }
  if (errno != EWOULDBLOCK) {
    int e = errno;
    drop_lock(slot);
    reply_err(id, e, "flock '%s'", path);
    return;
  }
  struct job *j = new_job(id);
  if (!j) {
    drop_lock(slot);
    reply_err(id, EAGAIN, "lock '%s': too many requests at once", path);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGALRM, SIG_DFL);
    alarm(timeout ? timeout : 1);
    _exit(flock(fd, LOCK_EX) == 0 ? 0 : 1);
  }
  if (pid < 0) {
    int e = errno;
    j->used = false;
    drop_lock(slot);
    reply_err(id, e, "fork to wait for lock '%s'", path);
    return;
  }
  j->pid = pid, j->lock = slot, j->timeout = timeout;
}

/* ----------------------------------------------------------- networks */

/* Runs fn(arg) in a child; its failure (errno, message) comes back through a
 * pipe and is the reply. The child has the helper's memory: `arg` is read
 * there and freed here by the caller once the child is started. */
static void start_call(uint32_t id, const char *what, int (*fn)(void *, berth_error *), void *arg) {
  struct job *j = new_job(id);
  if (!j) {
    reply_err(id, EAGAIN, "%s: more than %d requests at once", what, MAX_JOBS);
    return;
  }
  int p[2] = {-1, -1};
  if (pipe2(p, O_CLOEXEC) < 0) {
    j->used = false;
    reply_err(id, errno, "%s: pipe", what);
    return;
  }
  pid_t helper = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* gone with the helper (and so with the engine): an orphan finishing a
     * setup after the engine died could bind a netns that the next command's
     * recovery has already looked for */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != helper) _exit(1);
    /* only stdio and the report pipe (as fd 3): a copy of a lock's descriptor
     * here would keep the lock held after the helper lets it go */
    if (dup2(p[1], 3) < 0) _exit(1);
    close_range(4, ~0U, 0);
    static berth_error e;
    if (fn(arg, &e) == 0) _exit(0);
    int32_t en = e.errnum ? e.errnum : EIO;
    (void)write_all(3, &en, sizeof en);
    (void)write_all(3, e.msg, strlen(e.msg));
    _exit(1);
  }
  int fork_errno = errno;
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    j->used = false;
    reply_err(id, fork_errno, "%s: fork", what);
    return;
  }
  j->pid = pid, j->call = true, j->out_fd = p[0];
  fcntl(j->out_fd, F_SETFL, O_NONBLOCK);
}

/* Host-side links the helper may touch: Berth's own. */
static bool berth_link(const char *name) { return strncmp(name, "berth", 5) == 0 || strncmp(name, "bth", 3) == 0; }

struct veth_req {
  char *host, *bridge, *ifname, *mac_s, *cidr, *gw_s;
  uint8_t mac[6];
  struct in_addr addr, gw;
  int prefix;
  bool has_gw;
};

struct plug_req {
  char *netns;
  bool create;
  uint32_t count;
  struct veth_req *v;
};

static void free_plug(struct plug_req *r) {
  for (uint32_t i = 0; r->v && i < r->count; i++) {
    struct veth_req *v = &r->v[i];
    free(v->host), free(v->bridge), free(v->ifname), free(v->mac_s), free(v->cidr), free(v->gw_s);
  }
  free(r->v), free(r->netns);
}

static int parse_cidr(const char *s, struct in_addr *addr, int *prefix) {
  char ip[INET_ADDRSTRLEN];
  const char *slash = strchr(s, '/');
  if (!slash || (size_t)(slash - s) >= sizeof ip) return -1;
  memcpy(ip, s, (size_t)(slash - s));
  ip[slash - s] = '\0';
  char *end;
  errno = 0;
  long p = strtol(slash + 1, &end, 10);
  if (inet_pton(AF_INET, ip, addr) != 1 || errno || end == slash + 1 || *end || p < 0 || p > 32) return -1;
  *prefix = (int)p;
  return 0;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
  unsigned b[6];
  int used = 0;
  if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &used) != 6 ||
      used != 17)
    return -1;
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)b[i];
  return 0;
}

/* Checks one veth's fields; a message naming the field and what it takes. */
static int check_veth(struct veth_req *v, uint32_t i, berth_error *e) {
  if (!berth_link(v->host)) return berth_fail_msg(e, EINVAL, "veth %u: host end '%s': not a Berth link name (berth*, bth*)", i, v->host);
  if (!berth_link(v->bridge)) return berth_fail_msg(e, EINVAL, "veth %u: bridge '%s': not a Berth link name (berth*, bth*)", i, v->bridge);
  if (strlen(v->host) > NL_IFNAME_MAX || strlen(v->bridge) > NL_IFNAME_MAX || !*v->ifname || strlen(v->ifname) > NL_IFNAME_MAX)
    return berth_fail_msg(e, EINVAL, "veth %u: link names '%s', '%s', '%s': each must be 1-%d characters", i, v->host, v->bridge,
                          v->ifname, NL_IFNAME_MAX);
  if (parse_mac(v->mac_s, v->mac) < 0) return berth_fail_msg(e, EINVAL, "veth %u: MAC '%s': expected six hex bytes as 02:42:0a:58:00:02", i, v->mac_s);
  if (parse_cidr(v->cidr, &v->addr, &v->prefix) < 0)
    return berth_fail_msg(e, EINVAL, "veth %u: address '%s': expected an IPv4 address/prefix as 10.88.0.2/16", i, v->cidr);
  v->has_gw = *v->gw_s != '\0';
  if (v->has_gw && inet_pton(AF_INET, v->gw_s, &v->gw) != 1)
    return berth_fail_msg(e, EINVAL, "veth %u: gateway '%s': expected an IPv4 address, or nothing for no default route", i, v->gw_s);
  return 0;
}

static void nl_closep(struct nl *nl) { nl_close(nl); }
#define cleanup_nl __attribute__((cleanup(nl_closep)))

/* In the child: the netns (made or entered), then each pair. */
static int net_plug(void *arg, berth_error *e) {
  struct plug_req *r = arg;
  cleanup_nl struct nl host = {.fd = -1};
  cleanup_nl struct nl inner = {.fd = -1};
  if (nl_open(&host, e) < 0) return -1;
  if (r->create ? netns_new(e) : netns_enter(r->netns, e)) return berth_wrap(e, "netns '%s'", r->netns);
  if (nl_open(&inner, e) < 0) return berth_wrap(e, "netns '%s'", r->netns);
  cleanup_fd int ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (ns < 0) return berth_fail_errno(e, "netns '%s': open /proc/thread-self/ns/net", r->netns);
  if (r->create && nl_link_up(&inner, "lo", e) < 0) return berth_wrap(e, "netns '%s'", r->netns);
  /* Berth's networks are IPv4: without this every link that comes up sends
   * IPv6 neighbour and multicast messages that its bridge floods to every
   * other port, work that grows with the square of the containers on it */
  if (netns_ipv4_only(e) < 0) return berth_wrap(e, "netns '%s'", r->netns);
  for (uint32_t i = 0; i < r->count; i++) {
    struct veth_req *v = &r->v[i];
    int master = 0, index = 0;
    if (nl_link_index(&host, v->bridge, &master, e) < 0) return -1;
    struct nl_veth pair = {.name = v->host, .master = master, .up = false, .peer = v->ifname, .peer_mac = v->mac, .peer_netns_fd = ns};
    if (nl_veth_add(&host, &pair, e) < 0 || nl_link_no_ipv6_addresses(&host, v->host, e) < 0 || nl_link_up(&host, v->host, e) < 0)
      return -1;
    if (nl_link_index(&inner, v->ifname, &index, e) < 0 || nl_addr4_add(&inner, index, v->ifname, v->addr, v->prefix, false, e) < 0 ||
        nl_link_up(&inner, v->ifname, e) < 0 || (v->has_gw && nl_route4_default(&inner, index, v->ifname, v->gw, e) < 0))
      return berth_wrap(e, "netns '%s'", r->netns);
  }
  /* bound last: a failure before leaves no namespace (and its veths go with it) */
  if (r->create && netns_bind(r->netns, e) < 0) return -1;
  return 0;
}

static void do_net_plug(uint32_t id, struct cursor *c) {
  struct plug_req r = {0};
  berth_error e = {0};
  r.netns = get_str(c, NULL);
  r.create = get_u32(c) != 0;
  r.count = get_u32(c);
  if (!c->bad && r.count > 64) c->bad = true;
  if (!c->bad) r.v = calloc(r.count ? r.count : 1, sizeof *r.v);
  if (!r.v) c->bad = true;
  for (uint32_t i = 0; i < r.count && !c->bad; i++) {
    struct veth_req *v = &r.v[i];
    v->host = get_str(c, NULL), v->bridge = get_str(c, NULL), v->ifname = get_str(c, NULL);
    v->mac_s = get_str(c, NULL), v->cidr = get_str(c, NULL), v->gw_s = get_str(c, NULL);
  }
  if (c->bad) {
    reply_err(id, EINVAL, "net plug: malformed request (at most 64 veths)");
  } else if (r.netns[0] != '/') {
    reply_err(id, EINVAL, "net plug: netns file '%s': expected an absolute path", r.netns);
  } else {
    int bad = 0;
    for (uint32_t i = 0; i < r.count && !bad; i++) bad = check_veth(&r.v[i], i, &e);
    if (bad) reply(id, -1, e.errnum, NULL, 0, e.msg, strlen(e.msg));
    else start_call(id, "net plug", net_plug, &r);
  }
  free_plug(&r);
}

static int link_del(void *arg, berth_error *e) {
  cleanup_nl struct nl nl = {.fd = -1};
  if (nl_open(&nl, e) < 0) return -1;
  return nl_link_del(&nl, arg, e);
}

struct bridge_req {
  char *name;
  struct in_addr gw;
  int prefix;
};

static int bridge_ensure(void *arg, berth_error *e) {
  struct bridge_req *b = arg;
  cleanup_nl struct nl nl = {.fd = -1};
  if (nl_open(&nl, e) < 0) return -1;
  int index = 0;
  if (nl_bridge_add(&nl, b->name, e) < 0 && e->errnum != EEXIST) return -1;
  if (nl_link_index(&nl, b->name, &index, e) < 0 || nl_addr4_add(&nl, index, b->name, b->gw, b->prefix, true, e) < 0 ||
      nl_link_up(&nl, b->name, e) < 0)
    return -1;
  return 0;
}

static void do_bridge(uint32_t id, struct cursor *c) {
  char *name = get_str(c, NULL), *gw = get_str(c, NULL);
  uint32_t prefix = get_u32(c);
  struct bridge_req b = {.name = name, .prefix = (int)prefix};
  if (c->bad) reply_err(id, EINVAL, "bridge: malformed request");
  else if (!berth_link(name) || strlen(name) > NL_IFNAME_MAX)
    reply_err(id, EINVAL, "bridge '%s': not a Berth link name (berth* or bth*, at most %d characters)", name, NL_IFNAME_MAX);
  else if (inet_pton(AF_INET, gw, &b.gw) != 1 || prefix > 32)
    reply_err(id, EINVAL, "bridge '%s': gateway '%s/%u': expected an IPv4 address and a prefix 0-32", name, gw, prefix);
  else start_call(id, "bridge", bridge_ensure, &b);
  free(name), free(gw);
}

static void do_mount(uint32_t id, struct cursor *c) {
  char *type = get_str(c, NULL), *source = get_str(c, NULL), *target = get_str(c, NULL), *data = get_str(c, NULL);
  uint32_t flags = get_u32(c), propagation = get_u32(c);
  if (c->bad) {
    reply_err(id, EINVAL, "mount: malformed request");
  } else if (mount(source, target, type, flags, *data ? data : NULL) < 0) {
    reply_err(id, errno, "mount %s on '%s'", type, target);
  } else if (propagation && mount(NULL, target, NULL, propagation, NULL) < 0) {
    int e = errno;
    umount2(target, MNT_DETACH);
    reply_err(id, e, "set propagation of '%s'", target);
  } else {
    reply(id, 0, 0, NULL, 0, NULL, 0);
  }
  free(type), free(source), free(target), free(data);
}

/* Sealed copies made by SEAL, with the version of the file each copies. */
struct sealed_exe {
  char *path;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
  int fd;
};
static struct sealed_exe sealed_exes[4];

static bool same_version(const struct sealed_exe *s, const struct stat *st) {
  return s->dev == st->st_dev && s->ino == st->st_ino && s->size == st->st_size &&
         s->mtime.tv_sec == st->st_mtim.tv_sec && s->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static void reply_fd(uint32_t id, int fd) {
  char out[16];
  int n = snprintf(out, sizeof out, "%d", fd);
  reply(id, 0, 0, out, (size_t)n, NULL, 0);
}

static void do_seal(uint32_t id, struct cursor *c) {
  char *path = get_str(c, NULL);
  if (c->bad) {
    free(path);
    reply_err(id, EINVAL, "seal: malformed request");
    return;
  }
  int src = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (src < 0 || fstat(src, &st) < 0) {
    int e = errno;
    if (src >= 0) close(src);
    reply_err(id, e, "seal '%s': open", path);
    free(path);
    return;
  }
  struct sealed_exe *slot = &sealed_exes[0];
  for (size_t i = 0; i < BERTH_ARRAY_LEN(sealed_exes); i++) {
    struct sealed_exe *s = &sealed_exes[i];
    if (s->path && strcmp(s->path, path) == 0) {
      if (same_version(s, &st)) {
        close(src);
        free(path);
        reply_fd(id, s->fd);
        return;
      }
      slot = s; /* rebuilt since: replaced */
      break;
    }
    if (!s->path) slot = s;
  }
  berth_error e;
  const char *base = strrchr(path, '/');
  int mem = exe_sealed_copy(src, base ? base + 1 : path, &e);
  close(src);
  if (mem < 0) {
    reply_err(id, e.errnum, "seal '%s': %s", path, e.msg);
    free(path);
    return;
  }
  if (slot->path) free(slot->path), close(slot->fd);
  *slot = (struct sealed_exe){.path = path, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                              .mtime = st.st_mtim, .fd = mem};
  reply_fd(id, mem);
}

static void handle_request(const char *p, size_t len) {
  struct cursor c = {p, len, false};
  uint32_t id = get_u32(&c);
  uint8_t op = 0;
  if (c.left >= 1) op = (uint8_t)*c.p, c.p++, c.left--;
  else c.bad = true;
  if (c.bad) {
    reply_err(id, EINVAL, "malformed request");
    return;
  }
  switch (op) {
    case OP_EXEC: {
      uint32_t argc = get_u32(&c);
      if (c.bad || argc == 0 || argc > 4096) {
        reply_err(id, EINVAL, "exec: expected 1-4096 arguments");
        return;
      }
      char **argv = calloc((size_t)argc + 1, sizeof *argv);
      if (!argv) {
        reply_err(id, ENOMEM, "exec");
        return;
      }
      for (uint32_t i = 0; i < argc && !c.bad; i++) argv[i] = get_str(&c, NULL);
      size_t in_len = 0;
      char *in = c.bad ? NULL : get_str(&c, &in_len);
      if (c.bad) {
        free(in);
        reply_err(id, EINVAL, "exec: malformed request");
      } else {
        start_exec(id, argv, in, in_len);
      }
      for (uint32_t i = 0; i < argc; i++) free(argv[i]);
      free(argv);
      return;
    }
    case OP_MOUNT:
      do_mount(id, &c);
      return;
    case OP_UMOUNT: {
      char *target = get_str(&c, NULL);
      uint32_t flags = get_u32(&c);
      if (c.bad) reply_err(id, EINVAL, "umount: malformed request");
      else if (umount2(target, (int)flags) < 0) reply_err(id, errno, "umount '%s'", target);
      else reply(id, 0, 0, NULL, 0, NULL, 0);
      free(target);
      return;
    }
    case OP_LOCK: {
      char *path = get_str(&c, NULL);
      uint32_t timeout = get_u32(&c);
      if (c.bad) {
        free(path);
        reply_err(id, EINVAL, "lock: malformed request");
        return;
      }
      start_lock(id, path, timeout);
      return;
    }
    case OP_UNLOCK: {
      char *path = get_str(&c, NULL);
      int slot = c.bad ? -1 : find_lock(path);
      if (c.bad) reply_err(id, EINVAL, "unlock: malformed request");
      else if (slot < 0 || !locks[slot].held) reply_err(id, ENOLCK, "unlock '%s': not held", path);
      else {
        drop_lock(slot);
        reply(id, 0, 0, NULL, 0, NULL, 0);
      }
      free(path);
      return;
    }
    case OP_NET_PLUG:
      do_net_plug(id, &c);
      return;
    case OP_LINK_DEL: {
      char *name = get_str(&c, NULL);
      if (c.bad) reply_err(id, EINVAL, "link del: malformed request");
      else if (!berth_link(name)) reply_err(id, EINVAL, "refusing to delete link '%s': not a Berth link (berth*, bth*)", name);
      else start_call(id, "link del", link_del, name);
      free(name);
      return;
    }
    case OP_SEAL:
      do_seal(id, &c);
      return;
    case OP_BRIDGE:
      do_bridge(id, &c);
      return;
    default:
      reply_err(id, EINVAL, "unknown operation %u", op);
  }
}

/* --------------------------------------------------------------- loop */

static void on_sigchld(int sig) {
  (void)sig;
  int saved = errno;
  (void)!write(sigchld_pipe[1], "c", 1);
  errno = saved;
}

static void finish_if_done(struct job *j) {
  if (!j->exited || j->out_fd >= 0 || j->err_fd >= 0) return;
  if (j->lock >= 0) {
    struct lock *l = &locks[j->lock];
    if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0) {
      l->held = true;
      reply(j->id, 0, 0, NULL, 0, NULL, 0);
    } else {
      char path[4096];
      snprintf(path, sizeof path, "%s", l->path);
      drop_lock(j->lock);
      reply_err(j->id, EWOULDBLOCK, "lock '%s': still held by another process after %u s", path, j->timeout);
    }
  } else if (j->call) {
    if (WIFEXITED(j->status) && WEXITSTATUS(j->status) == 0) {
      reply(j->id, 0, 0, NULL, 0, NULL, 0);
    } else if (j->out.len >= sizeof(int32_t)) {
      int32_t e;
      memcpy(&e, j->out.p, sizeof e);
      reply(j->id, -1, e, NULL, 0, j->out.p + sizeof e, j->out.len - sizeof e);
    } else {
      reply_err(j->id, EIO, "network operation: its process ended with status %d without a report", j->status);
    }
  } else {
    int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : WIFSIGNALED(j->status) ? 128 + WTERMSIG(j->status) : 255;
    reply(j->id, code, 0, j->out.p, j->out.len, j->err.p, j->err.len);
  }
  free_job(j);
}

static void reap(void) {
  for (;;) {
    int st;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid <= 0) return;
    for (size_t i = 0; i < MAX_JOBS; i++) {
      if (jobs[i].used && jobs[i].pid == pid) {
        jobs[i].exited = true, jobs[i].status = st;
        finish_if_done(&jobs[i]);
        break;
      }
    }
  }
}

/* Reads what the child wrote; closes the fd at EOF. */
static void drain(struct job *j, int *fd, struct buf *b) {
  for (;;) {
    char tmp[16384];
    ssize_t n = read(*fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) {
      close_fd(fd);
      finish_if_done(j);
      return;
    }
    if (b->len + (size_t)n <= MAX_OUTPUT && !buf_add(b, tmp, (size_t)n)) {
      close_fd(fd);
      return;
    }
  }
}

static void feed(struct job *j) {
  while (j->in_off < j->in_len) {
    ssize_t n = write(j->in_fd, j->in_data + j->in_off, j->in_len - j->in_off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) break; /* EPIPE: it stopped reading */
    j->in_off += (size_t)n;
  }
  close_fd(&j->in_fd);
}

int helper_main(void) {
  /* The engine handles the terminal's signals (and forwards them to containers through us). */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGTSTP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 0;
  if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
    fprintf(stderr, "berth-shim helper: create signal pipe: %s\n", strerror(errno));
    return 1;
  }
  struct sigaction sa = {0};
  sa.sa_handler = on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGCHLD, &sa, NULL);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  reply(0, 0, 0, NULL, 0, NULL, 0); /* hello: the engine sends nothing before it (a berth-shim without this mode never says it) */

  struct buf in = {0};
  static struct pollfd fds[2 + 3 * MAX_JOBS];
  static struct job *owner[2 + 3 * MAX_JOBS];
  for (;;) {
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
    fds[n++] = (struct pollfd){.fd = sigchld_pipe[0], .events = POLLIN};
    for (size_t i = 0; i < MAX_JOBS; i++) {
      struct job *j = &jobs[i];
      if (!j->used) continue;
      if (j->in_fd >= 0) owner[n] = j, fds[n++] = (struct pollfd){.fd = j->in_fd, .events = POLLOUT};
      if (j->out_fd >= 0) owner[n] = j, fds[n++] = (struct pollfd){.fd = j->out_fd, .events = POLLIN};
      if (j->err_fd >= 0) owner[n] = j, fds[n++] = (struct pollfd){.fd = j->err_fd, .events = POLLIN};
    }
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "berth-shim helper: poll: %s\n", strerror(errno));
      return 1;
    }
    for (nfds_t k = 2; k < n; k++) {
      if (!fds[k].revents) continue;
      struct job *j = owner[k];
      if (!j->used) continue;
      if (fds[k].fd == j->in_fd) feed(j);
      else if (fds[k].fd == j->out_fd) drain(j, &j->out_fd, &j->out);
      else if (fds[k].fd == j->err_fd) drain(j, &j->err_fd, &j->err);
    }
    if (fds[1].revents) {
      char tmp[64];
      while (read(sigchld_pipe[0], tmp, sizeof tmp) > 0) {}
      reap();
    }
    if (fds[0].revents) {
      char tmp[65536];
      ssize_t r;
      while ((r = read(0, tmp, sizeof tmp)) > 0)
        if (!buf_add(&in, tmp, (size_t)r)) return 1;
      if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return 0; /* the engine is gone */
      size_t off = 0;
      while (in.len - off >= 4) {
        uint32_t len;
        memcpy(&len, in.p + off, 4);
        if (in.len - off - 4 < len) break;
        handle_request(in.p + off + 4, len);
        off += 4 + (size_t)len;
      }
      memmove(in.p, in.p + off, in.len - off);
      in.len -= off;
    }
  }
}
