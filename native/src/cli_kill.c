#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "state.h"

static int parse_signal(const char *s, berth_error *e) {
  if (isdigit((unsigned char)s[0])) {
    int n = atoi(s);
    if (n > 0 && n < NSIG) return n;
    return berth_fail_msg(e, EINVAL, "kill: invalid signal \"%s\"", s);
  }
  const char *name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
  for (int n = 1; n < NSIG; n++) {
    const char *abbrev = sigabbrev_np(n);
    if (abbrev && strcasecmp(abbrev, name) == 0) return n;
  }
  return berth_fail_msg(e, EINVAL, "kill: unknown signal \"%s\" (e.g. TERM, KILL, 9)", s);
}

int cli_kill(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {{"all", no_argument, NULL, 'a'}, {NULL, 0, NULL, 0}};
  bool all = false;
  int c;
  while ((c = getopt_long(argc, argv, "a", opts, NULL)) != -1) {
    if (c == 'a') all = true;
    else return berth_fail_msg(e, EINVAL, "kill: unknown option");
  }
  if (optind >= argc) return berth_fail_msg(e, EINVAL, "kill: missing the container ID (usage: kill [--all] ID [SIGNAL])");
  const char *id = argv[optind];
  int sig = SIGTERM;
  if (optind + 1 < argc && (sig = parse_signal(argv[optind + 1], e)) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, false, e) < 0) return -1;
  int rc = 0;
  berth_status s = state_status(&st);
  if (s == STATUS_STOPPED) {
    rc = berth_fail_msg(e, ESRCH, "container \"%s\" is not running", id);
  } else if (all && !st.cgroup_disabled) {
    berth_cgroup cg;
    if (cgroup_open(&cg, st.cgroup_path, st.id, false, e) < 0 || cgroup_kill_all(&cg, sig, e) < 0) rc = -1;
  } else {
    /* pidfd: the signal cannot hit a process that reused the pid */
    int pidfd = (int)syscall(SYS_pidfd_open, st.pid, 0);
    if (pidfd < 0 || !state_pid_alive(st.pid, st.pid_start)) {
      rc = berth_fail_msg(e, ESRCH, "container \"%s\" is not running", id);
    } else if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) {
      rc = berth_fail_errno(e, "kill container \"%s\" (pid %d) with signal %d", id, (int)st.pid, sig);
    }
    if (pidfd >= 0) close(pidfd);
  }
  state_free(&st);
  return rc;
}
