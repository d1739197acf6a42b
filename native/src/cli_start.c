#include <errno.h>
#include <getopt.h>

#include "cli.h"
#include "container.h"

int cli_start(cli_globals *g, int argc, char **argv, berth_error *e) {
  if (getopt_long(argc, argv, "", (struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
    return berth_fail_msg(e, EINVAL, "start: unknown option");
  const char *id;
  if (cli_take_id(argc, argv, optind, "start", &id, e) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, true, e) < 0) return -1;
  berth_status s = state_status(&st);
  int rc = 0;
  if (s != STATUS_CREATED) {
    rc = berth_fail_msg(e, EINVAL, "container \"%s\" is %s: only a created container can be started", id,
                    state_status_name(s));
  } else {
    rc = container_start(&st, e);
  }
  state_free(&st);
  return rc;
}
