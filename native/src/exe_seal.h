/* CVE-2019-5736: a container must not be able to overwrite the runtime
 * binary through /proc/<pid>/exe. Commands that enter a container re-exec
 * the runtime from a sealed memfd copy first, so /proc/self/exe is an
 * immutable anonymous file. */
#ifndef BERTH_EXE_SEAL_H
#define BERTH_EXE_SEAL_H

#include "error.h"

/* Returns 0 when already running from a sealed copy; otherwise re-executes
 * (and does not return) or fails. */
int exe_ensure_sealed(char **argv, char **envp, berth_error *e);

#endif
