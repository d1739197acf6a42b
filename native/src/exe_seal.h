/* CVE-2019-5736: a container must not be able to overwrite the runtime
 * binary through /proc/<pid>/exe. Commands that enter a container re-exec
 * the runtime from a sealed memfd copy first, so /proc/self/exe is an
 * immutable anonymous file. A caller that starts many containers (the
 * engine's helper) keeps one sealed copy and executes the runtime from it
 * (/proc/<helper>/fd/<n>): the runtime then finds itself sealed and skips
 * its own copy and re-exec. */
#ifndef BERTH_EXE_SEAL_H
#define BERTH_EXE_SEAL_H

#include "error.h"

/* Returns 0 when already running from a sealed copy; otherwise re-executes
 * (and does not return) or fails. */
int exe_ensure_sealed(char **argv, char **envp, berth_error *e);

/* A sealed (write, grow, shrink and seal sealed), close-on-exec memfd
 * holding the whole of `src` (an open regular file), named `name`; or -1. */
int exe_sealed_copy(int src, const char *name, berth_error *e);

#endif
