/* Attach on the state dir's attach.sock, as Docker's attach: a client gets
 * the container's output from the moment it connects and may feed its stdin;
 * disconnecting leaves the container running.
 *
 * shim -> client: without a terminal, frames as Docker's stdcopy:
 *   [stream: 1 stdout | 2 stderr][0][0][0][length: u32 big-endian][bytes]
 * with a terminal, the pty's raw bytes.
 * client -> shim, always frames:
 *   [type][0][0][0][length: u32 big-endian][payload]
 *   type 0 stdin bytes, 1 resize (payload rows u16 BE, cols u16 BE),
 *   2 close the container's stdin (EOF for the container).
 * A client that falls more than ATTACH_BACKLOG_MAX behind is disconnected
 * (the log keeps everything); one that sends a bad frame is disconnected. */
#ifndef BERTH_SHIM_ATTACH_H
#define BERTH_SHIM_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define ATTACH_SOCKET "attach.sock"
#define ATTACH_MAX_CLIENTS 16
#define ATTACH_BACKLOG_MAX (256u * 1024u)

enum attach_frame_type { ATTACH_STDIN = 0, ATTACH_RESIZE = 1, ATTACH_CLOSE_STDIN = 2 };

struct attach_ops {
  void *ctx;
  void (*input)(void *ctx, const char *data, size_t len);
  void (*resize)(void *ctx, unsigned short rows, unsigned short cols);
  void (*close_stdin)(void *ctx);
  bool stdin_once; /* a client ending its input closes the container's stdin */
};

struct attach_client {
  int fd;               /* -1: free slot */
  uint32_t events;      /* epoll interest the monitor registered */
  char *backlog;        /* output the socket did not take yet (malloc'd on need) */
  size_t backlog_len, backlog_cap;
  unsigned char hdr[8]; /* input frame header being read */
  size_t hdr_len;
  uint32_t remain;      /* payload bytes left in the current input frame */
  unsigned char ctl[4]; /* resize payload */
  size_t ctl_len;
  bool input_done;      /* the client shut down its sending side */
};

struct attach_server {
  int listen_fd;
  bool raw_output; /* terminal: no frames on output */
  struct attach_client c[ATTACH_MAX_CLIENTS];
};

int attach_listen(struct attach_server *a, bool raw_output, berth_error *e);
/* Accepts one pending client; returns its slot, or -1 when none is pending. */
int attach_accept(struct attach_server *a);
/* Reads the client's input and acts on it through ops. */
void attach_client_readable(struct attach_server *a, int slot, const struct attach_ops *ops);
/* Sends what the client's socket can take of its backlog. */
void attach_client_writable(struct attach_server *a, int slot, const struct attach_ops *ops);
/* Output of stream 1 (stdout) or 2 (stderr) to every client. */
void attach_broadcast(struct attach_server *a, int stream, const char *data, size_t len,
                      const struct attach_ops *ops);
/* Drops a client (hang-up or error). */
void attach_drop(struct attach_server *a, int slot, const struct attach_ops *ops);
/* The output has ended: hand each client its backlog (waiting at most a
 * second per client), then close every client and the listener. */
void attach_close_all(struct attach_server *a);

#endif
