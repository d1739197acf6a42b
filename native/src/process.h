/* The container process itself: what config.process asks of it (rlimits,
 * oom_score_adj, user, groups, umask, cwd, env, capabilities,
 * no_new_privileges, seccomp) and the final execve. Shared by the
 * container's init and by `exec`. */
#ifndef BERTH_PROCESS_H
#define BERTH_PROCESS_H

#include <limits.h>
#include <stdbool.h>

#include <jansson.h>

#include "caps.h"
#include "error.h"
#include "seccomp.h"

typedef struct proc_plan {
  json_t *process;         /* borrowed */
  json_t *linux_;          /* borrowed, may be NULL */
  caps_sets caps;
  berth_seccomp *seccomp;  /* owned, NULL when there is no filter */
  bool no_new_privs;
  bool in_userns;
  int preserve_fds;        /* fds 3..3+n-1 stay open */
  char exe[PATH_MAX];      /* args[0] resolved inside the container */
} proc_plan;

/* Host side, before anything is created: parses capabilities and builds the
 * seccomp filter, so a bad config fails early. Compiled filters are kept in
 * seccomp_cache (a directory, may be NULL) since compiling a Docker-sized
 * profile costs ~30 ms per container. */
int process_prepare(proc_plan *pp, json_t *process, json_t *linux_, const char *seccomp_cache, berth_error *e);
void process_plan_free(proc_plan *pp);
/* rlimits, oom_score_adj, ioPriority and linux.personality. */
int process_apply_limits(proc_plan *pp, berth_error *e);
/* Inside the container's root: finds args[0] through the process's PATH,
 * as execvp would, so a missing binary fails `create`, not `start`. */
int process_resolve_exe(proc_plan *pp, berth_error *e);
/* The last steps: cwd (verified inside the root), umask, groups, uid/gid,
 * capabilities, no_new_privs, seccomp, fds closed, execve. Returns only on
 * failure. state_json goes to a seccomp listener, may be NULL. */
int process_exec(proc_plan *pp, const char *state_json, berth_error *e);

#endif
