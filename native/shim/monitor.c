#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "attach.h"
#include "daemonize.h"
#include "exit.h"
#include "exit_command.h"
#include "log.h"
#include "notify.h"
#include "oom.h"
#include "runtime.h"
#include "sock.h"
#include "stdin_sink.h"
#include "terminal.h"
#include "trim.h"
#include "util.h"

enum tag { T_SIGNAL, T_OUT, T_ERR, T_STDIN, T_ATTACH_LISTEN, T_ATTACH, T_NOTIFY_LISTEN, T_NOTIFY };

/* One monitor per process, its state small (1.7 KiB; the buffers are static
 * in log.c and pump, touched only by output). Initialized, so it lies in
 * .data, whose few pages are dirty from the start anyway (a static PIE
 * relocates the pointers in them, libc writes its own state there), where
 * in .bss it took a page more per shim. */
static struct monitor {
  const struct shim_options *opt;
  int epfd, sigfd;
  int out_fd, err_fd; /* container output: pipes, or the pty master in out_fd */
  pid_t pid;
  bool exited;
  int wstatus;
  struct timespec exited_at;
  struct timespec drain_until; /* CLOCK_MONOTONIC */
  struct stdin_sink in;
  bool stdin_watched; /* in.fd is in the epoll set for EPOLLOUT */
  bool input_paused;
  struct attach_ops attach_ops;
  struct notify_server notify;
  struct oom_watch oom;
  struct attach_server attach;
  struct shim_log log;
} m = {.epfd = -1, .sigfd = -1, .out_fd = -1, .err_fd = -1, .in = {.fd = -1, .epfd = -1}};

/* Where errors go that the event loop reports nowhere (a failed log write,
 * a refused resize): static, so that the loop's stack stays shallow. */
static berth_error ignored;

static uint64_t tagged(enum tag t, int slot) { return (uint64_t)t << 32 | (uint32_t)slot; }

static int watch(int fd, uint32_t events, enum tag t, int slot, berth_error *e) {
  struct epoll_event ev = {.events = events, .data.u64 = tagged(t, slot)};
  if (epoll_ctl(m.epfd, EPOLL_CTL_ADD, fd, &ev) < 0) return berth_fail_errno(e, "epoll add fd %d", fd);
  return 0;
}

static void set_watch(int fd, uint32_t events, enum tag t, int slot) {
  struct epoll_event ev = {.events = events, .data.u64 = tagged(t, slot)};
  epoll_ctl(m.epfd, EPOLL_CTL_MOD, fd, &ev);
}

static int set_nonblock(int fd, berth_error *e) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return berth_fail_errno(e, "set fd %d non-blocking", fd);
  return 0;
}

/* ---- attach callbacks ---- */

static void on_input(void *ctx, const char *data, size_t len) {
  (void)ctx;
  stdin_sink_write(&m.in, data, len);
}

static void on_resize(void *ctx, unsigned short rows, unsigned short cols) {
  (void)ctx;
  if (m.opt->terminal && m.out_fd >= 0) (void)terminal_resize(m.out_fd, rows, cols, &ignored);
}

static void on_close_stdin(void *ctx) {
  (void)ctx;
  stdin_sink_close(&m.in);
}

/* Epoll interest follows state: clients are read unless stdin is backed up
 * or their input ended; written to while they have a backlog. */
static void sync_interest(void) {
  bool want = m.in.fd >= 0 && m.in.len > 0;
  if (want != m.stdin_watched && m.in.fd >= 0) {
    struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = tagged(T_STDIN, 0)};
    epoll_ctl(m.epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, m.in.fd, &ev);
  }
  m.stdin_watched = want && m.in.fd >= 0;
  m.input_paused = stdin_sink_full(&m.in);
  for (int i = 0; i < ATTACH_MAX_CLIENTS; i++) {
    struct attach_client *c = &m.attach.c[i];
    if (c->fd < 0) continue;
    uint32_t ev = (c->input_done || m.input_paused) ? 0 : EPOLLIN;
    if (c->backlog_len) ev |= EPOLLOUT;
    if (ev != c->events) set_watch(c->fd, ev, T_ATTACH, i);
    c->events = ev;
  }
}

/* ---- container output ---- */

/* Reads one chunk from a stream; false once it has ended. */
static bool pump(int *fd, enum log_stream s) {
  static char buf[16384];
  ssize_t n = read(*fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (n <= 0) {
    /* EOF, or EIO from a pty whose last slave is closed. */
    (void)log_flush(&m.log, s, &now, &ignored);
    epoll_ctl(m.epfd, EPOLL_CTL_DEL, *fd, NULL);
    close(*fd);
    *fd = -1;
    return false;
  }
  (void)log_feed(&m.log, s, buf, (size_t)n, &now, &ignored);
  attach_broadcast(&m.attach, s == LOG_STDOUT ? 1 : 2, buf, (size_t)n, &m.attach_ops);
  return true;
}

/* ---- children ---- */

static void reap(void) {
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p < 0 && errno == EINTR) continue;
    if (p <= 0) return;
    if (p == m.pid && !m.exited && (WIFEXITED(st) || WIFSIGNALED(st))) {
      m.exited = true;
      m.wstatus = st;
      clock_gettime(CLOCK_REALTIME, &m.exited_at);
      clock_gettime(CLOCK_MONOTONIC, &m.drain_until);
      m.drain_until.tv_sec += MONITOR_DRAIN_MS / 1000;
      m.drain_until.tv_nsec += (MONITOR_DRAIN_MS % 1000) * 1000000L;
      if (m.drain_until.tv_nsec >= 1000000000L) m.drain_until.tv_sec++, m.drain_until.tv_nsec -= 1000000000L;
    }
    /* Anything else is an orphan of the container: reaped, not recorded. */
  }
}

static void drain_signals(void) {
  struct signalfd_siginfo si;
  while (read(m.sigfd, &si, sizeof si) == (ssize_t)sizeof si) {}
  reap();
}

static int epoll_timeout(void) {
  if (!m.exited) return -1;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  long long ms = (m.drain_until.tv_sec - now.tv_sec) * 1000LL + (m.drain_until.tv_nsec - now.tv_nsec) / 1000000L;
  return ms < 0 ? 0 : (int)ms + 1;
}

static bool finished(void) {
  return m.exited && ((m.out_fd < 0 && m.err_fd < 0) || epoll_timeout() == 0);
}

static void dispatch(const struct epoll_event *ev) {
  enum tag t = (enum tag)(ev->data.u64 >> 32);
  int slot = (int)(uint32_t)ev->data.u64;
  int s;
  switch (t) {
    case T_SIGNAL: drain_signals(); break;
    case T_OUT: if (m.out_fd >= 0) pump(&m.out_fd, LOG_STDOUT); break;
    case T_ERR: if (m.err_fd >= 0) pump(&m.err_fd, LOG_STDERR); break;
    case T_STDIN: stdin_sink_flush(&m.in); break;
    case T_ATTACH_LISTEN:
      while ((s = attach_accept(&m.attach)) >= 0) {
        m.attach.c[s].events = m.input_paused ? 0 : EPOLLIN;
        if (watch(m.attach.c[s].fd, m.attach.c[s].events, T_ATTACH, s, &ignored) < 0)
          attach_drop(&m.attach, s, &m.attach_ops);
      }
      break;
    case T_ATTACH: {
      struct attach_client *c = &m.attach.c[slot];
      if (c->fd < 0) break;
      if (ev->events & EPOLLOUT) attach_client_writable(&m.attach, slot, &m.attach_ops);
      if ((ev->events & EPOLLIN) && c->fd >= 0) attach_client_readable(&m.attach, slot, &m.attach_ops);
      if ((ev->events & (EPOLLHUP | EPOLLERR)) && c->fd >= 0) {
        /* Gone both ways: take what it sent last, then let it go. */
        for (int i = 0; i < 64 && c->fd >= 0 && !c->input_done; i++)
          attach_client_readable(&m.attach, slot, &m.attach_ops);
        attach_drop(&m.attach, slot, &m.attach_ops);
      }
      break;
    }
    case T_NOTIFY_LISTEN:
      while ((s = notify_accept(&m.notify)) >= 0) {
        if (watch(m.notify.client[s], EPOLLIN, T_NOTIFY, s, &ignored) < 0) {
          close(m.notify.client[s]);
          m.notify.client[s] = -1;
        }
      }
      break;
    case T_NOTIFY: if (m.notify.client[slot] >= 0) notify_client_event(&m.notify, slot); break;
  }
}

/* ---- setup ---- */

struct setup_fds {
  int in_r, out_w, err_w; /* the runtime's ends */
  int cap_r, cap_w;       /* runtime stderr capture with a terminal */
  int console;
};

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void close_setup(struct setup_fds *f) {
  close_fd(&f->in_r), close_fd(&f->out_w), close_fd(&f->err_w);
  close_fd(&f->cap_r), close_fd(&f->cap_w), close_fd(&f->console);
}

static int make_pipe(int *r, int *w, bool nonblock_read, bool nonblock_write, berth_error *e) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return berth_fail_errno(e, "create pipe");
  *r = p[0], *w = p[1];
  if (nonblock_read && set_nonblock(*r, e) < 0) return -1;
  if (nonblock_write && set_nonblock(*w, e) < 0) return -1;
  return 0;
}

/* Pipes (or the capture pipe and console socket for a terminal), listeners,
 * `runtime create`. */
static int create_container(struct setup_fds *f, berth_error *e) {
  const struct shim_options *o = m.opt;
  struct runtime_stdio io = {.in = 0, .console_listen = -1}; /* our fd 0 is /dev/null */
  if (o->terminal) {
    if (make_pipe(&f->cap_r, &f->cap_w, true, false, e) < 0) return -1;
    f->console = sock_listen(RUNTIME_CONSOLE_SOCKET, e);
    if (f->console < 0) return -1;
    io.out = io.err = f->cap_w, io.capture = f->cap_r, io.console_listen = f->console;
  } else {
    if (o->stdin_open) {
      if (make_pipe(&f->in_r, &m.in.fd, false, true, e) < 0) return -1;
      io.in = f->in_r;
    }
    if (make_pipe(&m.out_fd, &f->out_w, true, false, e) < 0) return -1;
    if (make_pipe(&m.err_fd, &f->err_w, true, false, e) < 0) return -1;
    io.out = f->out_w, io.err = f->err_w, io.capture = m.err_fd;
  }
  struct runtime_output out; /* on setup's stack, which is given back */
  if (runtime_create(o, &io, &out, &m.pid, e) < 0) {
    if (o->terminal) close_fd(&out.console_master);
    return -1;
  }
  if (o->terminal) {
    m.out_fd = out.console_master;
    if (o->stdin_open) {
      m.in.fd = fcntl(m.out_fd, F_DUPFD_CLOEXEC, 3);
      if (m.in.fd < 0) return berth_fail_errno(e, "dup pty master");
      m.in.is_pty = true;
    }
  } else if (out.captured_len) {
    /* What the runtime wrote to the container's stderr while creating it
     * (warnings) belongs in the log. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    (void)log_feed(&m.log, LOG_STDERR, out.captured, out.captured_len, &now, e);
  }
  return 0;
}

/* noinline, as finish: their deep frames must not become part of the frame
 * the event loop runs under (see trim_stack). */
static __attribute__((noinline)) int setup(struct setup_fds *f, berth_error *e) {
  const struct shim_options *o = m.opt;
  if (chdir(o->state_dir) < 0) return berth_fail_errno(e, "enter state dir '%s'", o->state_dir);
  if (sock_is_live(NOTIFY_SOCKET))
    return berth_fail(e, EEXIST, "a shim already serves container '%s' in '%s'", o->id, o->state_dir);
  if (unlink(EXIT_FILE) < 0 && errno != ENOENT) return berth_fail_errno(e, "remove old '%s/%s'", o->state_dir, EXIT_FILE);

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) return berth_fail_errno(e, "block SIGCHLD");
  m.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (m.sigfd < 0) return berth_fail_errno(e, "signalfd");
  m.epfd = epoll_create1(EPOLL_CLOEXEC);
  if (m.epfd < 0) return berth_fail_errno(e, "epoll_create1");
  m.in.epfd = m.epfd;

  if (log_open(&m.log, o->log_path, o->log_max_size, o->log_max_files, e) < 0) return -1;
  if (notify_listen(&m.notify, e) < 0) return -1;
  if (attach_listen(&m.attach, o->terminal, e) < 0) return -1;
  m.attach_ops = (struct attach_ops){.input = on_input, .resize = on_resize, .close_stdin = on_close_stdin,
                                     .stdin_once = o->stdin_once};

  int rc = create_container(f, e);
  if (f->console >= 0) unlink(RUNTIME_CONSOLE_SOCKET);
  close_setup(f);
  if (rc < 0) return -1;

  char pid[32];
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  /* runtime state: replaced atomically, no fsync (a shim never outlives a reboot) */
  if (write_file_replace(SHIM_PID_FILE, pid, (size_t)n, 0644, e) < 0) return -1;
  oom_watch_start(&m.oom, m.pid);

  if (watch(m.sigfd, EPOLLIN, T_SIGNAL, 0, e) < 0) return -1;
  if (m.out_fd >= 0 && watch(m.out_fd, EPOLLIN, T_OUT, 0, e) < 0) return -1;
  if (m.err_fd >= 0 && watch(m.err_fd, EPOLLIN, T_ERR, 0, e) < 0) return -1;
  if (watch(m.attach.listen_fd, EPOLLIN, T_ATTACH_LISTEN, 0, e) < 0) return -1;
  if (watch(m.notify.listen_fd, EPOLLIN, T_NOTIFY_LISTEN, 0, e) < 0) return -1;
  return 0;
}

/* ---- teardown ---- */

static __attribute__((noinline)) int finish(berth_error *e) {
  const struct shim_options *o = m.opt;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  /* Take what is still buffered in the pipes; streams held open by
   * orphans past the drain time are cut here. */
  for (int i = 0; i < 64 && m.out_fd >= 0; i++) pump(&m.out_fd, LOG_STDOUT);
  for (int i = 0; i < 64 && m.err_fd >= 0; i++) pump(&m.err_fd, LOG_STDERR);
  (void)log_flush(&m.log, LOG_STDOUT, &now, e);
  (void)log_flush(&m.log, LOG_STDERR, &now, e);
  close_fd(&m.out_fd), close_fd(&m.err_fd);
  m.in.close_wanted = false;
  m.in.len = 0;
  stdin_sink_close(&m.in);
  log_close(&m.log);

  /* The cgroup goes with `runtime delete`: read its OOM count first. */
  int oom_killed = oom_watch_killed(&m.oom);
  oom_watch_stop(&m.oom);
  struct exit_record r = {.pid = m.pid, .wstatus = m.wstatus, .at = m.exited_at, .oom_killed = oom_killed};
  cleanup_free char *json = exit_record_json(&r);
  if (!json) return berth_fail(e, ENOMEM, "format exit record of container '%s'", o->id);
  int rc = exit_record_write(json, e);
  notify_send_all(&m.notify, json, strlen(json));
  attach_close_all(&m.attach);
  /* The exit is known before the runtime state goes: the engine's collect
   * releases the network and the files meanwhile, and waits for this
   * process to be gone before it looks at the runtime state (shim.pid
   * stays until then). A failed delete is added to the record. */
  if (o->remove) {
    berth_error cleanup;
    berth_error_clear(&cleanup);
    if (runtime_delete(o, &cleanup) < 0 && cleanup.msg[0]) {
      r.cleanup_error = cleanup.msg;
      cleanup_free char *again = exit_record_json(&r);
      if (again && exit_record_write(again, e) < 0) rc = -1;
    }
  }
  unlink(SHIM_PID_FILE);
  /* last: the command (berth's cleanup) waits for this process to be gone, which is a moment after */
  berth_error started;
  berth_error_clear(&started);
  if (exit_command_start(o, &started) < 0) {
    r.cleanup_error = started.msg;
    cleanup_free char *again = exit_record_json(&r);
    if (again && exit_record_write(again, e) < 0) rc = -1;
  }
  return rc;
}

int monitor_run(const struct shim_options *o, int *sync_fd, berth_error *e) {
  m.opt = o;
  trim_heap_settings();
  struct setup_fds f = {-1, -1, -1, -1, -1, -1};
  if (setup(&f, e) < 0) {
    daemonize_report_failure(sync_fd, e);
    unlink(NOTIFY_SOCKET), unlink(ATTACH_SOCKET);
    return -1;
  }
  daemonize_report_ready(sync_fd, m.pid);
  /* Setup ran tens of KiB deep (runtime create, the cgroup lookup, error
   * formatting); the loop needs a few hundred bytes. */
  trim_stack();

  while (!finished()) {
    struct epoll_event evs[16];
    int n = epoll_wait(m.epfd, evs, 16, epoll_timeout());
    if (n < 0 && errno != EINTR) return berth_fail_errno(e, "epoll_wait");
    for (int i = 0; i < n; i++) dispatch(&evs[i]);
    sync_interest();
  }
  return finish(e);
}
