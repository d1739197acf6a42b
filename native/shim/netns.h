/* Network namespaces that outlive their processes: a new one bound to a
 * file (an nsfs bind mount, as `unshare --net=FILE` and `ip netns add`
 * make them), and entering one by its file. */
#ifndef BERTH_SHIM_NETNS_H
#define BERTH_SHIM_NETNS_H

#include "error.h"

/* Moves the calling (single-threaded) process into a new network namespace. */
int netns_new(berth_error *e);
/* Binds the calling thread's network namespace on `file` (created, mode
 * 0600, if missing): a plain bind mount, so it keeps the propagation of the
 * mount it lands in, as unshare(1)'s does. */
int netns_bind(const char *file, berth_error *e);
/* Moves the calling thread into the network namespace bound on `file`. */
int netns_enter(const char *file, berth_error *e);
/* Links made in (or moved into) the calling thread's network namespace from
 * now on have IPv6 disabled (net.ipv6.conf.default.disable_ipv6 = 1), as
 * Docker leaves the interfaces of IPv4-only networks; lo keeps ::1. A kernel
 * without IPv6 is not an error. */
int netns_ipv4_only(berth_error *e);

#endif
