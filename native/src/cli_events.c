#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli.h"
#include "state.h"

int cli_events(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {{"stats", no_argument, NULL, 's'}, {"interval", required_argument, NULL, 'i'},
                                       {NULL, 0, NULL, 0}};
  bool once = false;
  long long interval = 5;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (c == 's') once = true;
    else if (c == 'i') {
      size_t n = strlen(optarg);
      char buf[32];
      snprintf(buf, sizeof buf, "%.*s", (int)(n && optarg[n - 1] == 's' ? n - 1 : n), optarg);
      if (cli_parse_int("--interval", buf, &interval, e) < 0 || interval == 0)
        return berth_fail_msg(e, EINVAL, "--interval: expected seconds such as 5s");
    } else return berth_fail_msg(e, EINVAL, "events: unknown option");
  }
  const char *id;
  if (cli_take_id(argc, argv, optind, "events", &id, e) < 0) return -1;
  for (;;) {
    berth_state st;
    if (state_load(&st, g->root, id, false, e) < 0) return -1;
    berth_cgroup cg;
    json_t *data = NULL;
    int rc = 0;
    if (st.cgroup_disabled)
      rc = berth_fail_msg(e, EOPNOTSUPP, "events: container \"%s\" has no cgroup", id);
    else if (cgroup_open(&cg, st.cgroup_path, st.id, false, e) < 0 || cgroup_stats(&cg, &data, e) < 0)
      rc = -1;
    berth_status status = state_status(&st);
    state_free(&st);
    if (rc < 0) return -1;
    json_t *ev = json_pack("{s:s, s:s, s:o}", "type", "stats", "id", id, "data", data);
    cli_print_json(ev, false);
    fflush(stdout);
    json_decref(ev);
    if (once || status == STATUS_STOPPED) return 0;
    sleep((unsigned)interval);
  }
}
