/* berth-runtime: an OCI runtime with runc's command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "state.h"

#define BERTH_RUNTIME_VERSION "0.1.0"

static const struct {
  const char *name;
  cli_fn fn;
  const char *help;
} commands[] = {
    {"create", cli_create, "create a container from a bundle"},
    {"start", cli_start, "run the user process of a created container"},
    {"run", cli_run, "create and start a container"},
    {"state", cli_state, "print the state of a container"},
    {"kill", cli_kill, "send a signal to the container's init (or --all processes)"},
    {"delete", cli_delete, "delete a container and what the runtime holds for it"},
    {"exec", cli_exec, "run a new process inside a container"},
    {"pause", cli_pause, "freeze every process of a container"},
    {"resume", cli_resume, "thaw a paused container"},
    {"ps", cli_ps, "list the processes of a container"},
    {"list", cli_list, "list the containers under --root"},
    {"update", cli_update, "update a container's resource limits"},
    {"events", cli_events, "print a container's resource usage (--stats)"},
    {"features", cli_features, "print what this runtime supports (JSON)"},
    {"spec", cli_spec, "write a default config.json"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: berth-runtime [--root DIR] [--log FILE] [--log-format text|json] [--debug]\n"
             "                     [--cgroup-manager cgroupfs|disabled] COMMAND [OPTIONS] ID\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

static void log_error(const cli_globals *g, const char *cmd, const berth_error *e) {
  fprintf(stderr, "berth-runtime %s: %s\n", cmd, e->msg);
  if (!g->log_path) return;
  FILE *f = fopen(g->log_path, "ae");
  if (!f) return;
  char now[64];
  rfc3339_now(now, sizeof now);
  if (g->log_json) {
    json_t *j = json_pack("{s:s, s:s, s:s}", "level", "error", "msg", e->msg, "time", now);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) fprintf(f, "%s\n", s);
    free(s);
    json_decref(j);
  } else {
    fprintf(f, "time=\"%s\" level=error msg=\"%s\"\n", now, e->msg);
  }
  fclose(f);
}

int main(int argc, char **argv, char **envp) {
  cli_globals g = {.root = "/run/berth-runtime", .argv0 = argv, .envp = envp};
  berth_error err = {0};
  static const struct option opts[] = {
      {"root", required_argument, NULL, 'r'},       {"log", required_argument, NULL, 'l'},
      {"log-format", required_argument, NULL, 'f'}, {"debug", no_argument, NULL, 'd'},
      {"systemd-cgroup", no_argument, NULL, 's'},   {"cgroup-manager", required_argument, NULL, 'c'},
      {"rootless", required_argument, NULL, 'R'},   {"criu", required_argument, NULL, 'C'},
      {"version", no_argument, NULL, 'v'},          {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  int c;
  /* '+': global options stop at the command name. */
  while ((c = getopt_long(argc, argv, "+vh", opts, NULL)) != -1) {
    switch (c) {
    case 'r': g.root = optarg; break;
    case 'l': g.log_path = optarg; break;
    case 'f':
      if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0) {
        fprintf(stderr, "berth-runtime: --log-format: expected text or json, got \"%s\"\n", optarg);
        return 2;
      }
      g.log_json = strcmp(optarg, "json") == 0;
      break;
    case 'd': g.debug = true; break;
    case 's':
      fprintf(stderr, "berth-runtime: --systemd-cgroup: the systemd cgroup manager is not supported; "
                      "use the default cgroupfs manager\n");
      return 2;
    case 'c':
      if (strcmp(optarg, "disabled") == 0) g.cgroup_disabled = true;
      else if (strcmp(optarg, "cgroupfs") != 0) {
        fprintf(stderr, "berth-runtime: --cgroup-manager: expected cgroupfs or disabled, got \"%s\"\n", optarg);
        return 2;
      }
      break;
    case 'R': case 'C': break; /* accepted for runc compatibility */
    case 'v':
      printf("berth-runtime version %s\nspec: 1.2.0\n", BERTH_RUNTIME_VERSION);
      return 0;
    case 'h': usage(stdout); return 0;
    default: usage(stderr); return 2;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[optind];
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
    if (strcmp(commands[i].name, cmd) != 0) continue;
    int sub_argc = argc - optind;
    char **sub_argv = argv + optind;
    optind = 1;
    int rc = commands[i].fn(&g, sub_argc, sub_argv, &err);
    if (rc < 0) {
      log_error(&g, cmd, &err);
      return 1;
    }
    return rc;
  }
  fprintf(stderr, "berth-runtime: unknown command \"%s\"\n", cmd);
  usage(stderr);
  return 2;
}
