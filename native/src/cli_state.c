#include <errno.h>
#include <getopt.h>

#include "cli.h"
#include "state.h"

int cli_state(cli_globals *g, int argc, char **argv, berth_error *e) {
  if (getopt_long(argc, argv, "", (struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
    return berth_fail_msg(e, EINVAL, "state: unknown option");
  const char *id;
  if (cli_take_id(argc, argv, optind, "state", &id, e) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, false, e) < 0) return -1;
  json_t *j = state_to_json(&st, state_status(&st));
  cli_print_json(j, true);
  json_decref(j);
  state_free(&st);
  return 0;
}
