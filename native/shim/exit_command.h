/* The exit command: a program the shim starts once the container has
 * exited and its exit is recorded (conmon's --exit-command, as podman uses
 * it for `podman container cleanup`). The engine passes `berth container
 * cleanup ID` for containers that nobody waits for (`run -d`, `start`
 * without -a), so that their network and mounts are released, and an
 * `--rm` container removed, when they exit, not at the next command.
 *
 * Skipped when the state dir holds EXIT_COMMAND_SKIP_FILE: a command that
 * stops or removes the container writes it first, as it collects the exit
 * itself. The program runs detached from the shim (its child, reparented
 * to pid 1 or the nearest subreaper when the shim exits a moment later),
 * in /, with stdio on /dev/null, no other fd, and no signal blocked or
 * ignored. */
#ifndef BERTH_SHIM_EXIT_COMMAND_H
#define BERTH_SHIM_EXIT_COMMAND_H

#include "error.h"
#include "options.h"

#define EXIT_COMMAND_SKIP_FILE "collecting"

/* Starts o->exit_argv (when set and not skipped). 0 when it was started or
 * is not to be; -1 with e filled when the fork failed (the engine then
 * collects the exit at its next command, as without an exit command). */
int exit_command_start(const struct shim_options *o, berth_error *e);

#endif
