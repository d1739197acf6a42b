/* Invoking the OCI runtime (runc's command line): `create` with the stdio the
 * shim owns, and `delete` after the exit when asked to clean up. */
#ifndef BERTH_SHIM_RUNTIME_H
#define BERTH_SHIM_RUNTIME_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"
#include "options.h"

#define RUNTIME_PID_FILE "init.pid"   /* in the state dir: the container's init */
#define RUNTIME_CONSOLE_SOCKET "console.sock"

struct runtime_stdio {
  int in, out, err;    /* the runtime's (and, without a terminal, the container's) stdio */
  int capture;         /* non-blocking read end where the runtime's stderr arrives */
  int console_listen;  /* console socket to receive the pty master on, or -1 */
};

struct runtime_output {
  int console_master;  /* the pty master, or -1 */
  char captured[4000]; /* the start of what arrived on capture */
  size_t captured_len;
};

/* `RUNTIME [--root R] create --bundle B --pid-file P [--console-socket S] ID`.
 * Fails with the runtime's exit status and stderr in the message. On success
 * *pid is the container's init, which must have become our child. */
int runtime_create(const struct shim_options *o, const struct runtime_stdio *io,
                   struct runtime_output *out, pid_t *pid, berth_error *e);

/* `RUNTIME [--root R] delete --force ID`. */
int runtime_delete(const struct shim_options *o, berth_error *e);

#endif
