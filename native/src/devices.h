/* Device nodes and the /dev symlinks inside the container's rootfs: the
 * runtime-spec's default devices (null, zero, full, random, urandom, tty),
 * config.linux.devices, and fd, stdin, stdout, stderr, ptmx, core. Every
 * node is created relative to a parent directory fd resolved inside the
 * rootfs, so a hostile `dev -> /elsewhere` or a /dev/null that is a symlink
 * to a host file cannot redirect it; an existing non-directory at a device's
 * path is replaced, never written through. */
#ifndef BERTH_DEVICES_H
#define BERTH_DEVICES_H

#include <stdbool.h>

#include <jansson.h>

#include "error.h"

/* Creates the default devices and config_devices (config.linux.devices, may
 * be NULL) under root_fd. in_userns: mknod is not allowed there, so character
 * and block devices are bind-mounted from the same path on the host. */
int devices_create(int root_fd, json_t *config_devices, bool in_userns, berth_error *e);

/* /dev/fd, /dev/stdin, /dev/stdout, /dev/stderr, /dev/ptmx -> pts/ptmx, and
 * /dev/core -> /proc/kcore when the host has /proc/kcore. */
int devices_symlinks(int root_fd, berth_error *e);

#endif
