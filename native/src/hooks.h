/* OCI hooks: prestart/createRuntime/poststart/poststop run in the runtime's
 * namespaces, createContainer/startContainer in the container's. Each gets
 * the state JSON on stdin; a timeout kills it. */
#ifndef BERTH_HOOKS_H
#define BERTH_HOOKS_H

#include <jansson.h>

#include "error.h"

/* Runs config.hooks[kind] (hooks may be NULL) in order; stops at the first
 * failure. */
int hooks_run(json_t *hooks, const char *kind, const char *state_json, berth_error *e);
/* Checks every hook entry (path absolute, args/env strings, timeout > 0). */
int hooks_check(json_t *hooks, berth_error *e);

#endif
