#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "container.h"
#include "exe_seal.h"
#include "foreground.h"

/* Options shared by create and run. */
static int parse_create(cli_globals *g, int argc, char **argv, create_opts *o, bool *detach, berth_error *e) {
  static const struct option opts[] = {
      {"bundle", required_argument, NULL, 'b'},  {"pid-file", required_argument, NULL, 'p'},
      {"console-socket", required_argument, NULL, 'c'}, {"no-pivot", no_argument, NULL, 'P'},
      {"no-new-keyring", no_argument, NULL, 'k'}, {"preserve-fds", required_argument, NULL, 'f'},
      {"detach", no_argument, NULL, 'd'},        {"config", required_argument, NULL, 'C'},
      {"keep", no_argument, NULL, 'K'},          {"no-subreaper", no_argument, NULL, 'S'},
      {NULL, 0, NULL, 0}};
  memset(o, 0, sizeof *o);
  o->root = g->root;
  o->bundle = ".";
  o->cgroup_disabled = g->cgroup_disabled;
  int c;
  while ((c = getopt_long(argc, argv, "b:d", opts, NULL)) != -1) {
    long long n;
    switch (c) {
    case 'b': o->bundle = optarg; break;
    case 'p': o->pid_file = optarg; break;
    case 'c': o->console_socket = optarg; break;
    case 'P': o->no_pivot = true; break;
    case 'f':
      if (cli_parse_int("--preserve-fds", optarg, &n, e) < 0) return -1;
      o->preserve_fds = (int)n;
      break;
    case 'd': *detach = true; break;
    case 'C': o->config_path = optarg; break;
    case 'k': case 'K': case 'S': break;
    default: return berth_fail_msg(e, EINVAL, "%s: unknown option (see --help)", argv[0]);
    }
  }
  return cli_take_id(argc, argv, optind, argv[0], &o->id, e);
}

int cli_create(cli_globals *g, int argc, char **argv, berth_error *e) {
  create_opts o;
  bool detach = false;
  if (parse_create(g, argc, argv, &o, &detach, e) < 0) return -1;
  if (exe_ensure_sealed(g->argv0, g->envp, e) < 0) return -1;
  berth_state st;
  int master;
  if (container_create(&o, &st, &master, e) < 0) return -1;
  state_free(&st);
  return 0;
}

int cli_run(cli_globals *g, int argc, char **argv, berth_error *e) {
  create_opts o;
  bool detach = false;
  if (parse_create(g, argc, argv, &o, &detach, e) < 0) return -1;
  if (exe_ensure_sealed(g->argv0, g->envp, e) < 0) return -1;
  o.foreground = !detach;
  berth_state st;
  int master = -1;
  if (container_create(&o, &st, &master, e) < 0) return -1;
  if (container_start(&st, e) < 0) {
    berth_error ignored;
    container_destroy(&st, &ignored);
    state_free(&st);
    return -1;
  }
  if (detach) {
    state_free(&st);
    return 0;
  }
  /* Let go of the lock while the container runs, so others can exec, kill... */
  if (st.lock_fd >= 0) close(st.lock_fd);
  st.lock_fd = -1;
  int status = foreground_wait(st.pid, master, e);
  if (master >= 0) close(master);
  berth_state again;
  berth_error derr;
  if (state_load(&again, g->root, st.id, true, &derr) == 0) {
    if (container_destroy(&again, &derr) < 0) fprintf(stderr, "berth-runtime run: %s\n", derr.msg);
    state_free(&again);
  }
  state_free(&st);
  return status;
}
