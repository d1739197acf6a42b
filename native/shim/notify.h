/* Exit notification on the state dir's shim.sock: a client connects and
 * waits; once the container has exited and exit.json is written, each
 * client gets that JSON as one line and the connection is closed. */
#ifndef BERTH_SHIM_NOTIFY_H
#define BERTH_SHIM_NOTIFY_H

#include <stddef.h>

#include "error.h"

#define NOTIFY_SOCKET "shim.sock"
#define NOTIFY_MAX_CLIENTS 32

struct notify_server {
  int listen_fd;
  int client[NOTIFY_MAX_CLIENTS];
};

int notify_listen(struct notify_server *n, berth_error *e);
/* Accepts one pending client; returns its slot (for the caller to watch
 * client[slot]), or -1 when none is pending. Clients beyond
 * NOTIFY_MAX_CLIENTS are turned away (closed); they can read exit.json. */
int notify_accept(struct notify_server *n);
/* The client in slot spoke or hung up: discard input, drop it at EOF.
 * Returns 1 if the client was dropped. */
int notify_client_event(struct notify_server *n, int slot);
/* Sends line to every client and closes them and the listener. */
void notify_send_all(struct notify_server *n, const char *line, size_t len);

#endif
