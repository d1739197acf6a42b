/* Loading and checking an OCI bundle's config.json. Subsystems read their
 * own sections (linux.resources, linux.seccomp, process.capabilities...)
 * straight from the jansson tree; this file checks what every command needs
 * and resolves paths. */
#ifndef BERTH_SPEC_H
#define BERTH_SPEC_H

#include <limits.h>
#include <stdbool.h>

#include <jansson.h>

#include "error.h"

typedef struct berth_spec {
  json_t *config;          /* the whole config.json (owned) */
  char bundle[PATH_MAX];   /* absolute bundle directory */
  char rootfs[PATH_MAX];   /* absolute root.path */
  json_t *process;         /* borrowed: config.process */
  json_t *linux_;          /* borrowed: config.linux (may be NULL) */
} berth_spec;

/* Reads <bundle>/config.json (or `config_path` when not NULL) and checks the
 * parts every command relies on, with errors naming the field. */
int spec_load(berth_spec *s, const char *bundle, const char *config_path, berth_error *e);
void spec_free(berth_spec *s);
/* Checks a process object (config.process or `exec --process`): args,
 * cwd absolute, env entries "K=V", user ids, rlimits, caps names. `where`
 * names it in errors ("process", "exec --process"). */
int spec_check_process(json_t *process, const char *where, berth_error *e);
/* Integer member or fallback; false + error when the member has the wrong type. */
int spec_get_int(json_t *obj, const char *key, const char *where, long long fallback, long long *out,
                 berth_error *e);

#endif
