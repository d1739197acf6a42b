#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

int state_check_id(const char *id, berth_error *e) {
  size_t n = strlen(id);
  /* A leading '.' is kept for the runtime's own entries (.seccomp-cache). */
  if (n == 0 || n > 200 || id[0] == '.')
    return berth_fail_msg(e, EINVAL,
                          "container id \"%s\": must be 1-200 characters of [A-Za-z0-9_+.-], not starting with '.'", id);
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '+' || c == '-' || c == '.';
    if (!ok) return berth_fail_msg(e, EINVAL, "container id \"%s\": invalid character '%c'; use [A-Za-z0-9_+.-]", id, c);
  }
  return 0;
}

static int lock_dir(berth_state *st, berth_error *e) {
  st->lock_fd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (st->lock_fd < 0) return berth_fail_errno(e, "open state directory '%s'", st->dir);
  if (flock(st->lock_fd, LOCK_EX) < 0) return berth_fail_errno(e, "lock state directory '%s'", st->dir);
  return 0;
}

int state_create_dir(berth_state *st, const char *root, const char *id, berth_error *e) {
  memset(st, 0, sizeof *st);
  st->lock_fd = -1;
  if (state_check_id(id, e) < 0) return -1;
  if (mkdir_p(root, 0711, e) < 0) return berth_wrap(e, "runtime root");
  snprintf(st->id, sizeof st->id, "%s", id);
  if (snprintf(st->dir, sizeof st->dir, "%s/%s", root, id) >= (int)sizeof st->dir)
    return berth_fail(e, ENAMETOOLONG, "state directory for '%s'", id);
  if (mkdir(st->dir, 0711) < 0) {
    if (errno == EEXIST) return berth_fail_msg(e, EEXIST, "container \"%s\" already exists (delete it first)", id);
    return berth_fail_errno(e, "create state directory '%s'", st->dir);
  }
  return lock_dir(st, e);
}

int state_load(berth_state *st, const char *root, const char *id, bool lock, berth_error *e) {
  memset(st, 0, sizeof *st);
  st->lock_fd = -1;
  if (state_check_id(id, e) < 0) return -1;
  snprintf(st->dir, sizeof st->dir, "%s/%s", root, id);
  if (access(st->dir, F_OK) < 0) return berth_fail_msg(e, ENOENT, "container \"%s\" does not exist", id);
  if (lock && lock_dir(st, e) < 0) return -1;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/state.json", st->dir);
  json_error_t jerr;
  cleanup_json json_t *j = json_load_file(path, 0, &jerr);
  if (!j) {
    if (errno == ENOENT || access(path, F_OK) < 0)
      return berth_fail_msg(e, ENOENT, "container \"%s\" is still being created or its state was lost ('%s' missing)",
                        id, path);
    return berth_fail_msg(e, EINVAL, "%s: %s", path, jerr.text);
  }
  snprintf(st->id, sizeof st->id, "%s", id);
  const char *s;
  if ((s = json_str(j, "bundle"))) snprintf(st->bundle, sizeof st->bundle, "%s", s);
  if ((s = json_str(j, "rootfs"))) snprintf(st->rootfs, sizeof st->rootfs, "%s", s);
  if ((s = json_str(j, "created"))) snprintf(st->created, sizeof st->created, "%s", s);
  if ((s = json_str(j, "cgroupPath"))) snprintf(st->cgroup_path, sizeof st->cgroup_path, "%s", s);
  st->cgroup_disabled = json_is_true(json_object_get(j, "cgroupDisabled"));
  st->pid = (pid_t)json_integer_value(json_object_get(j, "pid"));
  st->pid_start = (unsigned long long)json_integer_value(json_object_get(j, "pidStartTime"));
  st->annotations = json_incref(json_object_get(j, "annotations"));
  st->hooks = json_incref(json_object_get(j, "hooks"));
  return 0;
}

int state_save(const berth_state *st, berth_error *e) {
  cleanup_json json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I}", "id", st->id, "bundle", st->bundle,
                                     "rootfs", st->rootfs, "created", st->created, "cgroupPath", st->cgroup_path,
                                     "cgroupDisabled", st->cgroup_disabled, "pid", (json_int_t)st->pid,
                                     "pidStartTime", (json_int_t)st->pid_start);
  if (!j) return berth_fail(e, ENOMEM, "state of '%s'", st->id);
  if (st->annotations) json_object_set(j, "annotations", st->annotations);
  if (st->hooks) json_object_set(j, "hooks", st->hooks);
  cleanup_free char *text = json_dumps(j, JSON_COMPACT);
  if (!text) return berth_fail(e, ENOMEM, "state of '%s'", st->id);
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/state.json", st->dir);
  return write_file_replace(path, text, strlen(text), 0600, e);
}

void state_free(berth_state *st) {
  if (st->annotations) json_decref(st->annotations);
  if (st->hooks) json_decref(st->hooks);
  st->annotations = st->hooks = NULL;
  if (st->lock_fd >= 0) close(st->lock_fd);
  st->lock_fd = -1;
}

int state_remove(berth_state *st, berth_error *e) {
  DIR *d = opendir(st->dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return berth_fail_errno(e, "open state directory '%s'", st->dir);
  }
  struct dirent *de;
  while ((de = readdir(d))) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
      int saved = errno;
      closedir(d);
      return berth_fail(e, saved, "remove '%s/%s'", st->dir, de->d_name);
    }
  }
  closedir(d);
  if (rmdir(st->dir) < 0 && errno != ENOENT) return berth_fail_errno(e, "remove state directory '%s'", st->dir);
  return 0;
}

unsigned long long proc_start_time(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  /* comm may hold spaces and parens: fields restart after the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return 0;
  char state = p[2];
  if (state == 'Z' || state == 'X') return 0;
  /* field 3 is state; starttime is field 22 */
  int field = 3;
  for (p += 2; *p && field < 22; p++)
    if (*p == ' ') field++;
  return strtoull(p, NULL, 10);
}

bool state_pid_alive(pid_t pid, unsigned long long start_time) {
  if (pid <= 0) return false;
  unsigned long long now = proc_start_time(pid);
  return now != 0 && (start_time == 0 || now == start_time);
}

berth_status state_status(const berth_state *st) {
  if (st->pid <= 0) return STATUS_CREATING;
  if (!state_pid_alive(st->pid, st->pid_start)) return STATUS_STOPPED;
  char fifo[PATH_MAX];
  snprintf(fifo, sizeof fifo, "%s/exec.fifo", st->dir);
  if (access(fifo, F_OK) == 0) return STATUS_CREATED;
  if (!st->cgroup_disabled) {
    berth_cgroup cg;
    berth_error e;
    bool frozen = false;
    if (cgroup_open(&cg, st->cgroup_path, st->id, false, &e) == 0 && cgroup_is_frozen(&cg, &frozen, &e) == 0 &&
        frozen)
      return STATUS_PAUSED;
  }
  return STATUS_RUNNING;
}

const char *state_status_name(berth_status s) {
  switch (s) {
  case STATUS_CREATING: return "creating";
  case STATUS_CREATED: return "created";
  case STATUS_RUNNING: return "running";
  case STATUS_PAUSED: return "paused";
  case STATUS_STOPPED: return "stopped";
  }
  return "unknown";
}

json_t *state_to_json(const berth_state *st, berth_status status) {
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "ociVersion", "1.2.0", "id", st->id, "status",
                        state_status_name(status), "bundle", st->bundle, "rootfs", st->rootfs, "created",
                        st->created);
  if (!j) return NULL;
  json_object_set_new(j, "pid", json_integer(status == STATUS_STOPPED ? 0 : st->pid));
  json_object_set_new(j, "owner", json_string(""));
  json_object_set_new(j, "annotations", st->annotations ? json_incref(st->annotations) : json_object());
  return j;
}

void rfc3339_now(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%s.%09ldZ", base, ts.tv_nsec);
}
