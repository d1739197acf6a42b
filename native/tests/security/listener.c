/* berth-seclistener SOCKET VALUE: a seccomp user-notification agent for
 * tests. It listens on SOCKET, prints "ready", accepts one connection,
 * takes the notify fd (SCM_RIGHTS) and the containerProcessState JSON from
 * one message, answers the first notified syscall with return value VALUE,
 * prints what it saw as one JSON line and exits. Gives up after 30 s. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

static void die(const char *what) {
  fprintf(stderr, "berth-seclistener: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: berth-seclistener SOCKET VALUE\n");
    return 2;
  }
  long long value = strtoll(argv[2], NULL, 0);
  alarm(30);

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(argv[1]) >= sizeof addr.sun_path) {
    fprintf(stderr, "berth-seclistener: socket path too long\n");
    return 2;
  }
  strcpy(addr.sun_path, argv[1]);
  int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv < 0) die("socket");
  if (bind(srv, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(srv, 1) < 0) die("listen");
  printf("ready\n");
  fflush(stdout);

  int conn = accept4(srv, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) die("accept");

  char text[65536];
  union {
    char buf[CMSG_SPACE(4 * sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  struct iovec iov = {.iov_base = text, .iov_len = sizeof text - 1};
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof ctrl.buf};
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) die("recvmsg");
  text[n] = '\0';

  int fds[4], nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < count && nfds < 4; k++) memcpy(&fds[nfds++], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
  }
  if (nfds < 1) {
    fprintf(stderr, "berth-seclistener: no fd in the message\n");
    return 1;
  }
  json_error_t jerr;
  json_t *state = json_loads(text, 0, &jerr);
  if (!state) {
    fprintf(stderr, "berth-seclistener: state is not JSON: %s\n", jerr.text);
    return 1;
  }

  struct seccomp_notif *req;
  struct seccomp_notif_resp *resp;
  int rc = seccomp_notify_alloc(&req, &resp);
  if (rc < 0) {
    errno = -rc;
    die("seccomp_notify_alloc");
  }
  rc = seccomp_notify_receive(fds[0], req);
  if (rc < 0) {
    errno = -rc;
    die("seccomp_notify_receive");
  }
  char *name = seccomp_syscall_resolve_num_arch(req->data.arch, req->data.nr);
  memset(resp, 0, sizeof *resp);
  resp->id = req->id;
  resp->val = value;
  resp->error = 0;
  resp->flags = 0;
  rc = seccomp_notify_respond(fds[0], resp);
  if (rc < 0) {
    errno = -rc;
    die("seccomp_notify_respond");
  }

  json_t *args = json_array();
  for (int k = 0; k < 6; k++) json_array_append_new(args, json_integer((json_int_t)req->data.args[k]));
  json_t *out = json_pack("{s:o, s:i, s:s, s:o, s:I}", "processState", state, "fds", nfds,
                          "syscall", name ? name : "?", "args", args, "pid",
                          (json_int_t)req->pid);
  char *dump = json_dumps(out, JSON_COMPACT);
  printf("%s\n", dump);
  fflush(stdout);
  free(dump);
  free(name);
  json_decref(out);
  seccomp_notify_free(req, resp);
  for (int k = 0; k < nfds; k++) close(fds[k]);
  close(conn);
  close(srv);
  return 0;
}
