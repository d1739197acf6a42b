/* Terminals: a pty made inside the container (its devpts), the master
 * handed to whoever listens on --console-socket, or proxied by the runtime
 * itself for a foreground `run -t` / `exec -t`. */
#ifndef BERTH_TERMINAL_H
#define BERTH_TERMINAL_H

#include <limits.h>

#include <jansson.h>

#include "error.h"

/* Opens /dev/ptmx of the current root; *master and *slave_path filled. The
 * console size comes from process.consoleSize when set. */
int terminal_open(json_t *process, int *master, char slave_path[PATH_MAX], berth_error *e);
/* Makes the slave the controlling terminal and stdio of the caller (after
 * setsid). */
int terminal_make_stdio(const char *slave_path, berth_error *e);
/* Connects to a unix socket path (host side, before pivot). */
int terminal_connect_socket(const char *path, berth_error *e);
/* Sends the master over a connected socket with SCM_RIGHTS, as runc does. */
int terminal_send_master(int sock, int master, berth_error *e);
/* Raw mode on our stdin while proxying a container's pty (restored at exit),
 * and the window size copied onto the master. */
void terminal_raw_begin(int master);
void terminal_raw_end(void);
void terminal_copy_winsize(int master);

#endif
