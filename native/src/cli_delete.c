#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "container.h"

int cli_delete(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {{"force", no_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
  bool force = false;
  int c;
  while ((c = getopt_long(argc, argv, "f", opts, NULL)) != -1) {
    if (c == 'f') force = true;
    else return berth_fail_msg(e, EINVAL, "delete: unknown option");
  }
  const char *id;
  if (cli_take_id(argc, argv, optind, "delete", &id, e) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, true, e) < 0) {
    if (e->errnum != ENOENT) return -1;
    /* A create that died before writing state.json leaves a directory: clean
     * it up (and its default cgroup) so the ID can be used again. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/%s", g->root, id);
    if (access(dir, F_OK) < 0) return force ? 0 : -1;
    snprintf(st.dir, sizeof st.dir, "%s", dir);
    snprintf(st.id, sizeof st.id, "%s", id);
    berth_cgroup cg;
    if (!g->cgroup_disabled && cgroup_open(&cg, NULL, id, false, e) == 0) {
      cgroup_kill_all(&cg, SIGKILL, e);
      cgroup_destroy(&cg, e);
    }
    return state_remove(&st, e);
  }
  berth_status s = state_status(&st);
  int rc;
  if (s != STATUS_STOPPED && s != STATUS_CREATED && !force)
    rc = berth_fail_msg(e, EBUSY, "cannot delete container \"%s\" that is %s (stop it first or use --force)", id,
                    state_status_name(s));
  else
    rc = container_destroy(&st, e);
  state_free(&st);
  return rc;
}
