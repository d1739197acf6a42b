/* A container's record under the runtime root: <root>/<id>/state.json (atomic
 * writes), config.json (the bundle's config as created, used by exec), and
 * exec.fifo while the container waits for `start`. */
#ifndef BERTH_STATE_H
#define BERTH_STATE_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "error.h"

typedef struct berth_state {
  char id[256];
  char dir[PATH_MAX];      /* <root>/<id> */
  char bundle[PATH_MAX];
  char rootfs[PATH_MAX];
  char created[64];        /* RFC 3339 */
  char cgroup_path[PATH_MAX];
  bool cgroup_disabled;
  pid_t pid;
  unsigned long long pid_start; /* /proc/<pid>/stat starttime, against pid reuse */
  json_t *annotations;     /* owned, may be NULL */
  json_t *hooks;           /* owned, may be NULL: config.hooks as created */
  int lock_fd;             /* flock on the directory while held, else -1 */
} berth_state;

typedef enum { STATUS_CREATING, STATUS_CREATED, STATUS_RUNNING, STATUS_PAUSED, STATUS_STOPPED } berth_status;

/* Container IDs as runc accepts them, [A-Za-z0-9_+.-], but not starting with
 * '.' (the runtime root's own entries). */
int state_check_id(const char *id, berth_error *e);
/* Creates <root>/<id> (EEXIST -> "container already exists") and locks it. */
int state_create_dir(berth_state *st, const char *root, const char *id, berth_error *e);
/* Loads <root>/<id>/state.json; lock=true takes the directory lock first. */
int state_load(berth_state *st, const char *root, const char *id, bool lock, berth_error *e);
int state_save(const berth_state *st, berth_error *e);
void state_free(berth_state *st);
/* Removes the directory and everything in it. */
int state_remove(berth_state *st, berth_error *e);
/* Status as the OCI spec defines it, from the process and the fifo/cgroup. */
berth_status state_status(const berth_state *st);
const char *state_status_name(berth_status s);
/* The OCI state JSON (ociVersion, id, status, pid, bundle, annotations) plus
 * runc's rootfs/created. Returns a new reference. */
json_t *state_to_json(const berth_state *st, berth_status status);
/* true if pid is alive (not a zombie) and still the same process. */
bool state_pid_alive(pid_t pid, unsigned long long start_time);
/* starttime field of /proc/<pid>/stat, 0 on failure. */
unsigned long long proc_start_time(pid_t pid);
/* Now as RFC 3339 with nanoseconds, UTC. */
void rfc3339_now(char *buf, size_t len);

#endif
