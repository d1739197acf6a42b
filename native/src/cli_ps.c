#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "cli.h"
#include "state.h"
#include "util.h"

static void print_row(pid_t pid) {
  char path[64], *cmd = NULL;
  size_t len = 0;
  berth_error ignored;
  snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
  if (read_file(path, &cmd, &len, &ignored) < 0) return;
  for (size_t i = 0; i + 1 < len; i++)
    if (cmd[i] == '\0') cmd[i] = ' ';
  printf("%-8d %s\n", (int)pid, cmd);
  free(cmd);
}

int cli_ps(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'}, {NULL, 0, NULL, 0}};
  bool json = false;
  int c;
  while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
    if (c == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "table") == 0)) json = strcmp(optarg, "json") == 0;
    else return berth_fail_msg(e, EINVAL, "ps: --format: expected table or json");
  }
  const char *id;
  if (cli_take_id(argc, argv, optind, "ps", &id, e) < 0) return -1;
  berth_state st;
  if (state_load(&st, g->root, id, false, e) < 0) return -1;
  berth_cgroup cg;
  pid_t *pids = NULL;
  size_t n = 0;
  int rc = 0;
  if (st.cgroup_disabled)
    rc = berth_fail_msg(e, EOPNOTSUPP, "ps: container \"%s\" has no cgroup (--cgroup-manager disabled)", id);
  else if (cgroup_open(&cg, st.cgroup_path, st.id, false, e) < 0 || cgroup_pids(&cg, &pids, &n, e) < 0)
    rc = -1;
  if (rc == 0) {
    if (json) {
      json_t *a = json_array();
      for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(pids[i]));
      cli_print_json(a, false);
      json_decref(a);
    } else {
      printf("%-8s %s\n", "PID", "CMD");
      for (size_t i = 0; i < n; i++) print_row(pids[i]);
    }
  }
  free(pids);
  state_free(&st);
  return rc;
}
