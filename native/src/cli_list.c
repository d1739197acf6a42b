#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "state.h"

int cli_list(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {{"format", required_argument, NULL, 'f'}, {"quiet", no_argument, NULL, 'q'},
                                       {NULL, 0, NULL, 0}};
  bool json = false, quiet = false;
  int c;
  while ((c = getopt_long(argc, argv, "f:q", opts, NULL)) != -1) {
    if (c == 'q') quiet = true;
    else if (c == 'f' && (strcmp(optarg, "json") == 0 || strcmp(optarg, "table") == 0)) json = strcmp(optarg, "json") == 0;
    else return berth_fail_msg(e, EINVAL, "list: expected --format table|json or --quiet");
  }
  json_t *all = json_array();
  DIR *d = opendir(g->root);
  if (d) {
    struct dirent *de;
    while ((de = readdir(d))) {
      if (de->d_name[0] == '.') continue;
      berth_state st;
      berth_error ignored;
      if (state_load(&st, g->root, de->d_name, false, &ignored) < 0) continue;
      json_array_append_new(all, state_to_json(&st, state_status(&st)));
      state_free(&st);
    }
    closedir(d);
  } else if (errno != ENOENT) {
    json_decref(all);
    return berth_fail_errno(e, "list: open '%s'", g->root);
  }
  size_t i;
  json_t *s;
  if (json) {
    cli_print_json(all, false);
  } else if (quiet) {
    json_array_foreach(all, i, s) printf("%s\n", json_string_value(json_object_get(s, "id")));
  } else {
    printf("%-24s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
    json_array_foreach(all, i, s) {
      printf("%-24s %-8lld %-10s %-40s %s\n", json_string_value(json_object_get(s, "id")),
             (long long)json_integer_value(json_object_get(s, "pid")), json_string_value(json_object_get(s, "status")),
             json_string_value(json_object_get(s, "bundle")), json_string_value(json_object_get(s, "created")));
    }
  }
  json_decref(all);
  return 0;
}
