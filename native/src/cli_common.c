#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_take_id(int argc, char **argv, int optind_, const char *cmd, const char **id, berth_error *e) {
  if (optind_ >= argc) return berth_fail_msg(e, EINVAL, "%s: missing the container ID (usage: %s [options] ID)", cmd, cmd);
  if (argc - optind_ > 1) return berth_fail_msg(e, EINVAL, "%s: unexpected argument \"%s\" after the ID", cmd, argv[optind_ + 1]);
  *id = argv[optind_];
  return 0;
}

void cli_print_json(json_t *j, bool pretty) {
  char *s = json_dumps(j, pretty ? JSON_INDENT(2) : JSON_COMPACT);
  if (s) printf("%s\n", s);
  free(s);
}

int cli_parse_int(const char *opt, const char *s, long long *out, berth_error *e) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s || v < 0)
    return berth_fail_msg(e, EINVAL, "%s: expected a non-negative integer, got \"%s\"", opt, s);
  *out = v;
  return 0;
}
