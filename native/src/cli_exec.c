#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "container.h"
#include "exe_seal.h"
#include "util.h"

/* Without --process, runc builds the process from the container's own
 * config.process with the arguments and flags given. */
static int build_process(cli_globals *g, const char *id, char **args, int nargs, json_t *env_add, json_t *caps_add,
                         const char *cwd, const char *user, json_t *gids, bool tty, bool nnp, json_t **out,
                         berth_error *e) {
  berth_state st;
  if (state_load(&st, g->root, id, false, e) < 0) return -1;
  cleanup_json json_t *config = NULL;
  int rc = container_load_config(&st, &config, e);
  state_free(&st);
  if (rc < 0) return -1;
  json_t *p = json_deep_copy(json_object_get(config, "process"));
  if (!p) p = json_object();
  json_t *a = json_array();
  for (int i = 0; i < nargs; i++) json_array_append_new(a, json_string(args[i]));
  json_object_set_new(p, "args", a);
  json_object_set_new(p, "terminal", json_boolean(tty));
  if (json_array_size(env_add)) {
    json_t *env = json_object_get(p, "env");
    if (!env) json_object_set_new(p, "env", env = json_array());
    json_array_extend(env, env_add);
  }
  if (cwd) json_object_set_new(p, "cwd", json_string(cwd));
  if (nnp) json_object_set_new(p, "noNewPrivileges", json_true());
  json_t *u = json_object_get(p, "user");
  if (!u) json_object_set_new(p, "user", u = json_object());
  if (user) {
    char *colon = strchr(user, ':');
    long long uid, gid;
    char ubuf[32];
    snprintf(ubuf, sizeof ubuf, "%.*s", colon ? (int)(colon - user) : (int)strlen(user), user);
    if (cli_parse_int("--user", ubuf, &uid, e) < 0) return berth_wrap(e, "exec (expected UID[:GID])");
    json_object_set_new(u, "uid", json_integer(uid));
    if (colon) {
      if (cli_parse_int("--user", colon + 1, &gid, e) < 0) return berth_wrap(e, "exec (expected UID[:GID])");
      json_object_set_new(u, "gid", json_integer(gid));
    }
  }
  if (json_array_size(gids)) json_object_set(u, "additionalGids", gids);
  if (json_array_size(caps_add)) {
    json_t *caps = json_object_get(p, "capabilities");
    if (!caps) json_object_set_new(p, "capabilities", caps = json_object());
    const char *sets[] = {"bounding", "effective", "permitted"};
    for (size_t i = 0; i < BERTH_ARRAY_LEN(sets); i++) {
      json_t *s = json_object_get(caps, sets[i]);
      if (!s) json_object_set_new(caps, sets[i], s = json_array());
      json_array_extend(s, caps_add);
    }
  }
  *out = p;
  return 0;
}

int cli_exec(cli_globals *g, int argc, char **argv, berth_error *e) {
  static const struct option opts[] = {
      {"process", required_argument, NULL, 'p'},  {"tty", no_argument, NULL, 't'},
      {"cwd", required_argument, NULL, 'w'},      {"env", required_argument, NULL, 'e'},
      {"user", required_argument, NULL, 'u'},     {"additional-gids", required_argument, NULL, 'g'},
      {"detach", no_argument, NULL, 'd'},         {"pid-file", required_argument, NULL, 'P'},
      {"preserve-fds", required_argument, NULL, 'f'}, {"console-socket", required_argument, NULL, 'c'},
      {"cap", required_argument, NULL, 'C'},      {"no-new-privs", no_argument, NULL, 'n'},
      {"process-label", required_argument, NULL, 'L'}, {"apparmor", required_argument, NULL, 'A'},
      {"ignore-paused", no_argument, NULL, 'I'},  {NULL, 0, NULL, 0}};
  exec_opts o = {.root = g->root};
  const char *process_file = NULL, *cwd = NULL, *user = NULL;
  bool tty = false, nnp = false;
  cleanup_json json_t *env_add = json_array();
  cleanup_json json_t *caps_add = json_array();
  cleanup_json json_t *gids = json_array();
  int c;
  while ((c = getopt_long(argc, argv, "+p:tw:e:u:g:dc:C:", opts, NULL)) != -1) {
    long long n;
    switch (c) {
    case 'p': process_file = optarg; break;
    case 't': tty = true; break;
    case 'w': cwd = optarg; break;
    case 'e':
      if (!strchr(optarg, '=')) return berth_fail_msg(e, EINVAL, "exec --env \"%s\": expected KEY=value", optarg);
      json_array_append_new(env_add, json_string(optarg));
      break;
    case 'u': user = optarg; break;
    case 'g':
      if (cli_parse_int("--additional-gids", optarg, &n, e) < 0) return -1;
      json_array_append_new(gids, json_integer(n));
      break;
    case 'd': o.detach = true; break;
    case 'P': o.pid_file = optarg; break;
    case 'f':
      if (cli_parse_int("--preserve-fds", optarg, &n, e) < 0) return -1;
      o.preserve_fds = (int)n;
      break;
    case 'c': o.console_socket = optarg; break;
    case 'C': json_array_append_new(caps_add, json_string(optarg)); break;
    case 'n': nnp = true; break;
    case 'L': case 'A': case 'I': break;
    default: return berth_fail_msg(e, EINVAL, "exec: unknown option (see --help)");
    }
  }
  if (optind >= argc) return berth_fail_msg(e, EINVAL, "exec: missing the container ID (usage: exec [options] ID COMMAND...)");
  o.id = argv[optind];
  char **args = argv + optind + 1;
  int nargs = argc - optind - 1;
  cleanup_json json_t *process = NULL;
  if (process_file) {
    if (nargs > 0) return berth_fail_msg(e, EINVAL, "exec: give either --process or a command, not both");
    json_error_t jerr;
    process = json_load_file(process_file, JSON_REJECT_DUPLICATES, &jerr);
    if (!process) return berth_fail_msg(e, EINVAL, "exec --process %s: line %d: %s", process_file, jerr.line, jerr.text);
  } else {
    if (nargs == 0) return berth_fail_msg(e, EINVAL, "exec: missing the command to run (or --process FILE)");
    if (build_process(g, o.id, args, nargs, env_add, caps_add, cwd, user, gids, tty, nnp, &process, e) < 0) return -1;
  }
  o.process = process;
  if (exe_ensure_sealed(g->argv0, g->envp, e) < 0) return -1;
  return container_exec(&o, e);
}
