/* The shim's life after it is detached: create the container through the
 * runtime with stdio the shim owns, report readiness, then serve the event
 * loop (output -> log and attach clients, attach input -> stdin, reaping)
 * until the container's init has exited and its output is drained; then
 * record the exit, tell the listeners and return. */
#ifndef BERTH_SHIM_MONITOR_H
#define BERTH_SHIM_MONITOR_H

#include "error.h"
#include "options.h"

#define SHIM_PID_FILE "shim.pid"
/* How long output may trail the init's exit (orphans holding the pipes). */
#define MONITOR_DRAIN_MS 2000

/* *sync_fd is reported on (ready or failed) and closed. Returns 0 when the
 * container's exit was recorded; -1 with e filled otherwise. */
int monitor_run(const struct shim_options *o, int *sync_fd, berth_error *e);

#endif
