#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "cli.h"
#include "state.h"
#include "util.h"

/* "512m", "1g", "1048576" or -1 (unlimited), as runc's flags take them. */
static int parse_bytes(const char *opt, const char *s, long long *out, berth_error *e) {
  if (strcmp(s, "-1") == 0) {
    *out = -1;
    return 0;
  }
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return berth_fail_msg(e, EINVAL, "%s: expected a size such as 512m, got \"%s\"", opt, s);
  long long mult = 1;
  switch (tolower((unsigned char)*end)) {
  case '\0': break;
  case 'b': mult = 1; break;
  case 'k': mult = 1LL << 10; break;
  case 'm': mult = 1LL << 20; break;
  case 'g': mult = 1LL << 30; break;
  case 't': mult = 1LL << 40; break;
  default: return berth_fail_msg(e, EINVAL, "%s: unknown unit in \"%s\" (use b, k, m, g or t)", opt, s);
  }
  if (*end && end[1] && !(tolower((unsigned char)end[1]) == 'b' && end[2] == '\0'))
    return berth_fail_msg(e, EINVAL, "%s: unknown unit in \"%s\"", opt, s);
  *out = (long long)(v * (double)mult);
  return 0;
}

static json_t *section(json_t *res, const char *name) {
  json_t *s = json_object_get(res, name);
  if (!s) json_object_set_new(res, name, s = json_object());
  return s;
}

int cli_update(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {
      {"resources", required_argument, NULL, 'r'},   {"blkio-weight", required_argument, NULL, 'b'},
      {"cpu-period", required_argument, NULL, 'P'},  {"cpu-quota", required_argument, NULL, 'Q'},
      {"cpu-rt-period", required_argument, NULL, 'T'}, {"cpu-rt-runtime", required_argument, NULL, 'R'},
      {"cpu-share", required_argument, NULL, 'S'},   {"cpuset-cpus", required_argument, NULL, 'c'},
      {"cpuset-mems", required_argument, NULL, 'm'}, {"memory", required_argument, NULL, 'M'},
      {"memory-reservation", required_argument, NULL, 'V'}, {"memory-swap", required_argument, NULL, 'W'},
      {"pids-limit", required_argument, NULL, 'p'},  {NULL, 0, NULL, 0}};
  cleanup_json json_t *res = json_object();
  const char *file = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "r:", opts, NULL)) != -1) {
    long long n;
    const char *opt = NULL;
    for (const struct option *o = opts; o->name; o++)
      if (o->val == c) opt = o->name;
    switch (c) {
    case 'r': file = optarg; break;
    case 'b':
      if (cli_parse_int("--blkio-weight", optarg, &n, e) < 0) return -1;
      json_object_set_new(section(res, "blockIO"), "weight", json_integer(n));
      break;
    case 'P': case 'Q': case 'T': case 'R': case 'S': {
      char *end;
      errno = 0;
      n = strtoll(optarg, &end, 10);
      if (errno || *end || end == optarg) return berth_fail_msg(e, EINVAL, "--%s: expected an integer, got \"%s\"", opt, optarg);
      const char *key = c == 'P' ? "period" : c == 'Q' ? "quota" : c == 'T' ? "realtimePeriod" : c == 'R' ? "realtimeRuntime" : "shares";
      json_object_set_new(section(res, "cpu"), key, json_integer(n));
      break;
    }
    case 'c': json_object_set_new(section(res, "cpu"), "cpus", json_string(optarg)); break;
    case 'm': json_object_set_new(section(res, "cpu"), "mems", json_string(optarg)); break;
    case 'M': case 'V': case 'W': {
      char name[48];
      snprintf(name, sizeof name, "--%s", opt);
      if (parse_bytes(name, optarg, &n, e) < 0) return -1;
      const char *key = c == 'M' ? "limit" : c == 'V' ? "reservation" : "swap";
      json_object_set_new(section(res, "memory"), key, json_integer(n));
      break;
    }
    case 'p': {
      char *end;
      n = strtoll(optarg, &end, 10);
      if (*end || end == optarg) return berth_fail_msg(e, EINVAL, "--pids-limit: expected an integer, got \"%s\"", optarg);
      json_object_set_new(section(res, "pids"), "limit", json_integer(n));
      break;
    }
    default: return berth_fail_msg(e, EINVAL, "update: unknown option (see --help)");
    }
  }
  const char *id;
  if (cli_take_id(argc, argv, optind, "update", &id, e) < 0) return -1;
  if (file) {
    json_error_t jerr;
    json_t *from = strcmp(file, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(file, 0, &jerr);
    if (!from || !json_is_object(from)) {
      if (from) json_decref(from);
      return berth_fail_msg(e, EINVAL, "update --resources %s: line %d: %s", file, jerr.line,
                        from ? "expected a JSON object (linux.resources)" : jerr.text);
    }
    json_object_update(from, res); /* flags win over the file */
    json_decref(res);
    res = from;
  }
  berth_state st;
  if (state_load(&st, g->root, id, true, e) < 0) return -1;
  int rc = 0;
  berth_cgroup cg;
  berth_status s = state_status(&st);
  if (s == STATUS_STOPPED)
    rc = berth_fail_msg(e, EINVAL, "container \"%s\" is stopped: nothing to update", id);
  else if (st.cgroup_disabled)
    rc = berth_fail_msg(e, EOPNOTSUPP, "update: container \"%s\" has no cgroup (--cgroup-manager disabled)", id);
  else if (cgroup_open(&cg, st.cgroup_path, st.id, false, e) < 0 || cgroup_update(&cg, res, e) < 0)
    rc = berth_wrap(e, "update container \"%s\"", id);
  state_free(&st);
  return rc;
}
