/* The command line, runc's: `berth-runtime [global options] COMMAND [options] ID`.
 * Only cli_*.c and main.c parse argv, print or exit. */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

#include <stdbool.h>

#include <jansson.h>

#include "error.h"

typedef struct cli_globals {
  const char *root;        /* --root, default /run/berth-runtime */
  const char *log_path;    /* --log */
  bool log_json;           /* --log-format json */
  bool debug;
  bool cgroup_disabled;    /* crun's --cgroup-manager disabled */
  char **argv0;            /* the whole argv, for the sealed re-exec */
  char **envp;
} cli_globals;

typedef int (*cli_fn)(cli_globals *g, int argc, char **argv, berth_error *e);

/* Each returns the process exit status (0 ok), or -1 with *e filled. */
int cli_create(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_run(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_start(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_state(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_kill(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_delete(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_exec(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_pause(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_resume(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_ps(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_list(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_update(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_features(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_spec(cli_globals *g, int argc, char **argv, berth_error *e);
int cli_events(cli_globals *g, int argc, char **argv, berth_error *e);

/* The single positional ID after the options; error naming the command. */
int cli_take_id(int argc, char **argv, int optind_, const char *cmd, const char **id, berth_error *e);
/* Prints a JSON value on stdout with a newline. */
void cli_print_json(json_t *j, bool pretty);
/* Parses a non-negative integer option. */
int cli_parse_int(const char *opt, const char *s, long long *out, berth_error *e);

#endif
