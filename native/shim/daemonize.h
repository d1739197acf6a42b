/* Detaching the shim from whoever started it, and the sync pipe that tells
 * the starter whether the container was created.
 *
 *   starter ──fork──> middle: setsid ──fork──> shim (child subreaper)
 *      │               exits at once            stdio on /dev/null
 *      └── reads the sync pipe: "R <shim pid> <container pid>\n" or "E <message>"
 *
 * The shim is no child of the starter, has no controlling terminal and its
 * own session, so killing the starter (or its process group) does not reach it. */
#ifndef BERTH_SHIM_DAEMONIZE_H
#define BERTH_SHIM_DAEMONIZE_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

/* Returns twice: in the starter with *is_shim false and *sync_fd the read end,
 * and in the detached shim with *is_shim true and *sync_fd the write end. */
int daemonize(bool *is_shim, int *sync_fd, berth_error *e);

/* Starter side: waits for the shim's verdict. On success fills the pids; on
 * failure e holds the shim's message. */
int daemonize_wait_ready(int sync_fd, pid_t *shim_pid, pid_t *container_pid, berth_error *e);

/* Shim side: report readiness or failure and close the pipe. A starter that
 * has gone away is no error: the shim carries on. */
void daemonize_report_ready(int *sync_fd, pid_t container_pid);
void daemonize_report_failure(int *sync_fd, const berth_error *err);

/* In a child the shim is about to exec (the runtime, the exit command): what
 * daemonize set for the shim undone, the signal mask empty and the signals
 * it ignores (SIGPIPE, SIGHUP) back to default; exec resets the rest. */
void daemonize_undo_signals(void);

#endif
