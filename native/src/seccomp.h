/* seccomp from config.linux.seccomp via libseccomp: default action, syscalls
 * by name with actions, errno and argument conditions, architectures, flags,
 * and the user-notification listener (listenerPath). */
#ifndef BERTH_SECCOMP_H
#define BERTH_SECCOMP_H

#include <stdbool.h>

#include <jansson.h>

#include "error.h"

typedef struct berth_seccomp berth_seccomp;

/* Builds the filter (validating every name, action and operator) while still
 * on the host side; if a notify action is used and listenerPath is set it
 * connects to the listener now, since that path is gone after pivot_root.
 * seccomp may be NULL: *out = NULL, nothing to load. */
int seccomp_build(json_t *seccomp, berth_seccomp **out, berth_error *e);
/* Same, keeping compiled programs in cache_dir (created 0700 if missing;
 * e.g. "<runtime root>/seccomp-cache"): libseccomp takes tens of ms for a
 * Docker-sized profile, a cache hit well under one. cache_dir NULL: no cache. */
int seccomp_build_cached(json_t *seccomp, const char *cache_dir, berth_seccomp **out,
                         berth_error *e);
/* Loads the filter into the calling process (the last step before execve,
 * or before dropping caps when no_new_privileges is off). state_json is the
 * container state sent to the listener with the notify fd. */
int seccomp_install(berth_seccomp *s, const char *state_json, berth_error *e);
void seccomp_free(berth_seccomp *s);
/* For `features`: {"enabled":true,"actions":[..],"operators":[..],"archs":[..],"knownFlags":[..],"supportedFlags":[..]} */
json_t *seccomp_features(void);

#endif
