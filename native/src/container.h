/* Creating a container (the two-stage fork into new namespaces) and running
 * a process inside an existing one (exec). */
#ifndef BERTH_CONTAINER_H
#define BERTH_CONTAINER_H

#include <stdbool.h>

#include <jansson.h>

#include "error.h"
#include "state.h"

typedef struct create_opts {
  const char *root;           /* runtime state root */
  const char *id;
  const char *bundle;
  const char *config_path;    /* crun's `run --config`, else <bundle>/config.json */
  const char *pid_file;
  const char *console_socket;
  bool no_pivot;
  bool cgroup_disabled;
  int preserve_fds;
  bool foreground;            /* `run` without --detach: we wait for it */
} create_opts;

/* Creates the container; on success it waits for `start`. *console_master
 * gets the pty master for a foreground run with a terminal, else -1. */
int container_create(const create_opts *o, berth_state *st, int *console_master, berth_error *e);
/* Lets a created container's process exec (the `start` command's core). */
int container_start(berth_state *st, berth_error *e);
/* Kills and waits for every process of the container, runs poststop hooks,
 * removes its cgroup and state. */
int container_destroy(berth_state *st, berth_error *e);

typedef struct exec_opts {
  const char *root;
  const char *id;
  json_t *process;            /* the process to run (owned by the caller) */
  const char *pid_file;
  const char *console_socket;
  bool detach;
  int preserve_fds;
} exec_opts;

/* Runs a process in a running container. Returns its exit status when not
 * detached, 0 when detached, -1 on error. */
int container_exec(const exec_opts *o, berth_error *e);
/* The container's saved config (state dir copy). New reference. */
int container_load_config(const berth_state *st, json_t **config, berth_error *e);

#endif
