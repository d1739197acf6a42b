#include <errno.h>
#include <getopt.h>

#include "cgroup.h"
#include "cli.h"
#include "state.h"

static int set_frozen(cli_globals *g, int argc, char **argv, bool frozen, berth_error *e) {
  const char *cmd = argv[0];
  if (getopt_long(argc, argv, "", (struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
    return berth_fail_msg(e, EINVAL, "%s: unknown option", cmd);
  const char *id;
  if (cli_take_id(argc, argv, optind, cmd, &id, e) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, true, e) < 0) return -1;
  int rc = 0;
  berth_status s = state_status(&st);
  berth_cgroup cg;
  if (st.cgroup_disabled)
    rc = berth_fail_msg(e, EOPNOTSUPP, "%s: container \"%s\" has no cgroup (--cgroup-manager disabled)", cmd, id);
  else if (frozen && s != STATUS_RUNNING && s != STATUS_CREATED)
    rc = berth_fail_msg(e, EINVAL, "container \"%s\" is %s: only a running container can be paused", id, state_status_name(s));
  else if (!frozen && s != STATUS_PAUSED)
    rc = berth_fail_msg(e, EINVAL, "container \"%s\" is %s, not paused", id, state_status_name(s));
  else if (cgroup_open(&cg, st.cgroup_path, st.id, false, e) < 0 || cgroup_freeze(&cg, frozen, e) < 0)
    rc = -1;
  state_free(&st);
  return rc;
}

int cli_pause(cli_globals *g, int argc, char **argv, berth_error *e) { return set_frozen(g, argc, argv, true, e); }
int cli_resume(cli_globals *g, int argc, char **argv, berth_error *e) { return set_frozen(g, argc, argv, false, e); }
