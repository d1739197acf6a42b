#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void berth_closep(int *fd) {
  if (*fd >= 0) {
    int saved = errno;
    close(*fd);
    errno = saved;
  }
  *fd = -1;
}

void berth_freep(void *p) {
  void **pp = (void **)p;
  free(*pp);
  *pp = NULL;
}

void berth_json_decrefp(json_t **j) {
  if (*j) json_decref(*j);
  *j = NULL;
}

int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int write_file_at(int dirfd, const char *name, const char *data, size_t len, berth_error *e) {
  cleanup_fd int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s' for writing", name);
  if (write_all(fd, data, len) < 0) return berth_fail_errno(e, "write '%s'", name);
  return 0;
}

int write_file(const char *path, const char *data, size_t len, berth_error *e) {
  return write_file_at(AT_FDCWD, path, data, len, e);
}

int read_file_at(int dirfd, const char *name, char **out, size_t *len, berth_error *e) {
  cleanup_fd int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s'", name);
  size_t cap = 4096, used = 0;
  char *buf = malloc(cap);
  if (!buf) return berth_fail(e, ENOMEM, "read '%s'", name);
  for (;;) {
    if (used + 1 >= cap) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        return berth_fail(e, ENOMEM, "read '%s'", name);
      }
      buf = nb;
    }
    ssize_t n = read(fd, buf + used, cap - used - 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      free(buf);
      return berth_fail(e, saved, "read '%s'", name);
    }
    if (n == 0) break;
    used += (size_t)n;
  }
  buf[used] = '\0';
  *out = buf;
  if (len) *len = used;
  return 0;
}

int read_file(const char *path, char **out, size_t *len, berth_error *e) {
  return read_file_at(AT_FDCWD, path, out, len, e);
}

static int replace_file(const char *path, const char *data, size_t len, mode_t mode, bool durable, berth_error *e) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof tmp)
    return berth_fail(e, ENAMETOOLONG, "write '%s'", path);
  cleanup_fd int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return berth_fail_errno(e, "create '%s'", tmp);
  if (write_all(fd, data, len) < 0 || (durable && fsync(fd) < 0)) {
    int saved = errno;
    unlink(tmp);
    return berth_fail(e, saved, "write '%s'", tmp);
  }
  if (rename(tmp, path) < 0) {
    int saved = errno;
    unlink(tmp);
    return berth_fail(e, saved, "rename '%s' to '%s'", tmp, path);
  }
  return 0;
}

int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, berth_error *e) {
  return replace_file(path, data, len, mode, true, e);
}

int write_file_replace(const char *path, const char *data, size_t len, mode_t mode, berth_error *e) {
  return replace_file(path, data, len, mode, false, e);
}

int mkdir_p(const char *path, mode_t mode, berth_error *e) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return berth_fail(e, ENAMETOOLONG, "mkdir '%s'", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return berth_fail_errno(e, "mkdir '%s'", buf);
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) return berth_fail_errno(e, "mkdir '%s'", buf);
  return 0;
}

bool str_has_suffix(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

const char *json_str(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}
