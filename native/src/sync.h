/* Parent and child talk over a SOCK_SEQPACKET socketpair with a small typed
 * set of messages. A failure inside the new namespaces travels back as
 * errno + message, so `create` reports the real cause. */
#ifndef BERTH_SYNC_H
#define BERTH_SYNC_H

#include <stdint.h>
#include <sys/types.h>

#include "error.h"

typedef enum {
  SYNC_GO = 1,          /* parent -> child: carry on */
  SYNC_USERNS_READY,    /* child -> parent: unshared a user ns, write its maps */
  SYNC_TIMENS_READY,    /* child -> parent: unshared a time ns (offsets written) */
  SYNC_PID,             /* child -> parent: pid = the container process (host view) */
  SYNC_MOUNTS_DONE,     /* child -> parent: mounts done, run createRuntime hooks */
  SYNC_CONSOLE,         /* child -> parent: fd attached = pty master */
  SYNC_READY,           /* child -> parent: waiting for `start` (or exec'ing) */
  SYNC_ERROR,           /* child -> parent: errnum + msg */
} sync_type;

typedef struct sync_msg {
  uint32_t type;
  int32_t errnum;
  int32_t pid;
  char msg[4000];
} sync_msg;

int sync_send(int sock, sync_type type, int32_t pid, berth_error *e);
/* Sends an fd with the message (SCM_RIGHTS). */
int sync_send_fd(int sock, sync_type type, int fd, berth_error *e);
/* Sends the error record itself; used by children before they exit. */
void sync_send_error(int sock, const berth_error *err);
/* Receives one message; *fd gets an attached fd or -1 (fd may be NULL).
 * A peer that closed the socket yields type 0. */
int sync_recv(int sock, sync_msg *m, int *fd, berth_error *e);
/* Receives and requires the given type; a SYNC_ERROR becomes *e. */
int sync_expect(int sock, sync_type type, sync_msg *m, berth_error *e);

#endif
