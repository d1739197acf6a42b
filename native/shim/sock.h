/* Unix stream sockets in the state directory: listen, accept, probe. */
#ifndef BERTH_SHIM_SOCK_H
#define BERTH_SHIM_SOCK_H

#include <stdbool.h>

#include "error.h"

/* Binds and listens on name (relative to the cwd, i.e. the state dir),
 * replacing a stale socket file. Non-blocking, close-on-exec. */
int sock_listen(const char *name, berth_error *e);
/* Accepts one connection, non-blocking and close-on-exec; -1 with errno
 * EAGAIN when none is pending. */
int sock_accept(int listen_fd);
/* True if something accepts connections on name right now. */
bool sock_is_live(const char *name);

#endif
