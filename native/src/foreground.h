/* A foreground `run` or `exec`: the runtime stays until the container's
 * process exits, forwards the signals it gets, proxies the pty when there is
 * one, and returns the exit status as a shell would (128+signal). */
#ifndef BERTH_FOREGROUND_H
#define BERTH_FOREGROUND_H

#include <sys/types.h>

#include "error.h"

/* Call before forking the container process: makes us its subreaper and
 * blocks the signals we forward, so none is lost before the loop starts. */
int foreground_prepare(berth_error *e);
/* master is the pty master or -1. Returns the exit status (>= 0) or -1. */
int foreground_wait(pid_t pid, int master, berth_error *e);

#endif
