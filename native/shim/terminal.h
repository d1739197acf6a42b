/* The container's pty, for --terminal: the runtime connects to the console
 * socket and passes the pty master with SCM_RIGHTS (the OCI runtime's
 * --console-socket contract; the payload is the slave's name). */
#ifndef BERTH_SHIM_TERMINAL_H
#define BERTH_SHIM_TERMINAL_H

#include "error.h"

/* Accepts one connection on listen_fd and receives the master from it.
 * Returns the master (non-blocking, close-on-exec), or -1. */
int terminal_receive_master(int listen_fd, berth_error *e);
/* Sets the pty's window size (TIOCSWINSZ); the container gets SIGWINCH. */
int terminal_resize(int master, unsigned short rows, unsigned short cols, berth_error *e);

#endif
