/* The container's exit record, state dir exit.json, written atomically once
 * (again only to add cleanupError):
 *   {"pid":N,"exitCode":N,"signal":"SIGKILL"|null,"exitedAt":"RFC3339Nano",
 *    "oomKilled":bool (only when the shim can tell),
 *    "cleanupError":"..." (only when `runtime delete` failed, or the exit
 *    command could not be started: exit_command.h)}
 * exitCode follows the shell and Docker: the code, or 128+signal. */
#ifndef BERTH_SHIM_EXIT_H
#define BERTH_SHIM_EXIT_H

#include <sys/types.h>
#include <time.h>

#include "error.h"

#define EXIT_FILE "exit.json"

struct exit_record {
  pid_t pid;
  int wstatus;           /* from waitpid */
  struct timespec at;    /* CLOCK_REALTIME when it was reaped */
  int oom_killed;        /* 1, 0, or -1 when unknown */
  const char *cleanup_error; /* NULL when none */
};

/* The record as one JSON line ending in "\n"; malloc'd, NULL on ENOMEM. */
char *exit_record_json(const struct exit_record *r);
/* Writes json to exit.json in the cwd (the state dir): temp file, fsync, rename. */
int exit_record_write(const char *json, berth_error *e);

#endif
