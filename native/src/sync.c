#include "sync.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

static int send_msg(int sock, const sync_msg *m, int fd) {
  struct iovec iov = {.iov_base = (void *)m, .iov_len = sizeof *m};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  if (fd >= 0) {
    memset(&u, 0, sizeof u);
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  ssize_t n;
  do n = sendmsg(sock, &mh, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

int sync_send(int sock, sync_type type, int32_t pid, berth_error *e) {
  sync_msg m = {.type = type, .pid = pid};
  if (send_msg(sock, &m, -1) < 0) return berth_fail_errno(e, "sync: send message %d", (int)type);
  return 0;
}

int sync_send_fd(int sock, sync_type type, int fd, berth_error *e) {
  sync_msg m = {.type = type};
  if (send_msg(sock, &m, fd) < 0) return berth_fail_errno(e, "sync: send fd with message %d", (int)type);
  return 0;
}

void sync_send_error(int sock, const berth_error *err) {
  sync_msg m = {.type = SYNC_ERROR, .errnum = err->errnum};
  snprintf(m.msg, sizeof m.msg, "%s", err->msg);
  send_msg(sock, &m, -1);
}

int sync_recv(int sock, sync_msg *m, int *fd, berth_error *e) {
  struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  if (fd) *fd = -1;
  ssize_t n;
  do n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return berth_fail_errno(e, "sync: receive");
  if (n == 0) {
    memset(m, 0, sizeof *m);
    return 0;
  }
  if ((size_t)n != sizeof *m) return berth_fail_msg(e, EPROTO, "sync: short message (%zd bytes)", n);
  m->msg[sizeof m->msg - 1] = '\0';
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int got;
      memcpy(&got, CMSG_DATA(c), sizeof got);
      if (fd) *fd = got;
    }
  }
  return 0;
}

int sync_expect(int sock, sync_type type, sync_msg *m, berth_error *e) {
  if (sync_recv(sock, m, NULL, e) < 0) return -1;
  if (m->type == SYNC_ERROR) {
    e->errnum = m->errnum;
    snprintf(e->msg, sizeof e->msg, "%s", m->msg);
    return -1;
  }
  if (m->type == 0) return berth_fail_msg(e, EPIPE, "sync: the container process exited before reporting");
  if (m->type != (uint32_t)type)
    return berth_fail_msg(e, EPROTO, "sync: expected message %d, got %u", (int)type, m->type);
  return 0;
}
