/* The cgroup front: finds the host's layout once, resolves the container's
 * group path, parses and validates config.linux.resources (every field, before
 * anything is written) and hands the work to the v1/hybrid or v2 operations. */
#include "cgroup_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* ---- the host ---------------------------------------------------------- */

static struct cg_host host;
static bool host_known;

static bool is_known_controller(const char *name, const char *known) {
  size_t n = strlen(name);
  for (const char *p = known; (p = strstr(p, name)) != NULL; p += n) {
    bool start = p == known || p[-1] == '\n';
    bool end = p[n] == '\t' || p[n] == '\n' || p[n] == '\0';
    if (start && end) return true;
  }
  return false;
}

/* Super options "rw,cpu,cpuacct" -> "cpu,cpuacct"; named hierarchies keep
 * their "name=x". */
static void controllers_of(const char *opts, const char *known, char *out, size_t outsz) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", opts);
  out[0] = '\0';
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
    if (strncmp(tok, "name=", 5) != 0 && !is_known_controller(tok, known)) continue;
    size_t used = strlen(out);
    snprintf(out + used, outsz - used, "%s%s", used ? "," : "", tok);
  }
}

const struct cg_host *cg_host(berth_error *e) {
  if (host_known) return &host;
  struct cg_host h;
  memset(&h, 0, sizeof h);
  struct statfs sfs;
  if (statfs(CG_ROOT, &sfs) < 0) return berth_fail_errno(e, "statfs '%s'", CG_ROOT), NULL;
  if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
    h.mode = CGROUP_MODE_V2;
    snprintf(h.unified, sizeof h.unified, "%s", CG_ROOT);
    host = h;
    host_known = true;
    return &host;
  }
  cleanup_free char *known = NULL;
  if (read_file("/proc/cgroups", &known, NULL, e) < 0) return NULL;
  cleanup_free char *mi = NULL;
  if (read_file("/proc/self/mountinfo", &mi, NULL, e) < 0) return NULL;
  char *save = NULL;
  for (char *line = strtok_r(mi, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char mnt[PATH_MAX];
    if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1) continue;
    char *dash = strstr(line, " - ");
    if (!dash) continue;
    char fstype[64], src[256], opts[512];
    if (sscanf(dash + 3, "%63s %255s %511s", fstype, src, opts) != 3) continue;
    if (strncmp(mnt, CG_ROOT "/", strlen(CG_ROOT) + 1) != 0) continue;
    if (strcmp(fstype, "cgroup2") == 0) {
      if (!h.unified[0]) snprintf(h.unified, sizeof h.unified, "%s", mnt);
      continue;
    }
    if (strcmp(fstype, "cgroup") != 0 || h.nhier == CG_MAX_HIER) continue;
    char ctl[256];
    controllers_of(opts, known, ctl, sizeof ctl);
    if (!ctl[0]) continue;
    bool dup = false;
    for (size_t i = 0; i < h.nhier; i++) dup |= strcmp(h.hier[i].controllers, ctl) == 0;
    if (dup) continue;
    snprintf(h.hier[h.nhier].mnt, sizeof h.hier[h.nhier].mnt, "%s", mnt);
    snprintf(h.hier[h.nhier].controllers, sizeof h.hier[h.nhier].controllers, "%s", ctl);
    h.nhier++;
  }
  if (h.nhier == 0 && !h.unified[0])
    return berth_fail(e, ENOENT, "no cgroup hierarchy is mounted under '%s'", CG_ROOT), NULL;
  h.mode = h.nhier == 0 ? CGROUP_MODE_V2 : h.unified[0] ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1;
  host = h;
  host_known = true;
  return &host;
}

/* ---- small file helpers ------------------------------------------------ */

bool cg_join(char *out, size_t outsz, const char *a, const char *b) {
  int n = snprintf(out, outsz, "%s%s", a, b);
  return n >= 0 && (size_t)n < outsz;
}

int cg_write(const char *dir, const char *file, const char *value, berth_error *e) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return berth_fail(e, ENAMETOOLONG, "cgroup file '%s/%s'", dir, file);
  cleanup_fd int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s'", path);
  size_t len = strlen(value);
  ssize_t n;
  do n = write(fd, value, len);
  while (n < 0 && errno == EINTR);
  if (n < 0) return berth_fail_errno(e, "write '%s' to '%s'", value, path);
  if ((size_t)n != len) return berth_fail(e, EIO, "short write of '%s' to '%s'", value, path);
  return 0;
}

int cg_writef(const char *dir, const char *file, berth_error *e, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof buf) return berth_fail(e, EINVAL, "value for '%s/%s' is too long", dir, file);
  return cg_write(dir, file, buf, e);
}

int cg_read(const char *dir, const char *file, char **out, berth_error *e) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
    return berth_fail(e, ENAMETOOLONG, "cgroup file '%s/%s'", dir, file);
  return read_file(path, out, NULL, e);
}

bool cg_exists(const char *dir, const char *file) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) return false;
  return access(path, F_OK) == 0;
}

int cg_read_u64(const char *dir, const char *file, uint64_t *v, berth_error *e) {
  cleanup_free char *s = NULL;
  if (cg_read(dir, file, &s, e) < 0) return -1;
  if (strncmp(s, "max", 3) == 0) {
    *v = UINT64_MAX;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno || end == s) return berth_fail(e, EINVAL, "'%s/%s' holds '%.32s', not a number", dir, file, s);
  *v = x;
  return 0;
}

bool cg_kv_get(const char *text, const char *key, uint64_t *v) {
  size_t n = strlen(key);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, key, n) == 0 && p[n] == ' ') {
      *v = strtoull(p + n + 1, NULL, 10);
      return true;
    }
  }
  return false;
}

int cg_mkdir(const char *path, bool *created, berth_error *e) {
  if (mkdir(path, 0755) == 0) {
    if (created) *created = true;
    return 0;
  }
  if (errno == EEXIST) {
    if (created) *created = false;
    return 0;
  }
  return berth_fail_errno(e, "mkdir '%s'", path);
}

int cg_rmdir_tree(const char *dir, berth_error *e) {
  DIR *d = opendir(dir);
  if (!d) {
    if (errno == ENOENT) return 0;
    return berth_fail_errno(e, "open '%s'", dir);
  }
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= (int)sizeof sub) continue;
    if (cg_rmdir_tree(sub, e) < 0) rc = -1;
  }
  closedir(d);
  if (rc < 0) return -1;
  /* A group empties a little after its last process dies. */
  for (int i = 0; i < 200; i++) {
    if (rmdir(dir) == 0 || errno == ENOENT) return 0;
    if (errno != EBUSY) break;
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return berth_fail_errno(e, "rmdir '%s'", dir);
}

void cg_rmdir_parents(const char *root, const char *path) {
  char rel[PATH_MAX];
  snprintf(rel, sizeof rel, "%s", path);
  for (char *slash = strrchr(rel, '/'); slash && slash != rel; slash = strrchr(rel, '/')) {
    *slash = '\0';
    const char *base = strrchr(rel, '/') + 1;
    if (strncmp(base, "berth", 5) != 0) return;
    char dir[PATH_MAX];
    if (!cg_join(dir, sizeof dir, root, rel) || (rmdir(dir) < 0 && errno != ENOENT)) return;
  }
}

static int collect_pids(const char *dir, pid_t **pids, size_t *n, size_t *cap, berth_error *e) {
  cleanup_free char *procs = NULL;
  if (cg_read(dir, "cgroup.procs", &procs, e) < 0) return -1;
  for (char *p = procs; *p;) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) break;
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 64;
      pid_t *np = realloc(*pids, nc * sizeof *np);
      if (!np) return berth_fail(e, ENOMEM, "list pids of '%s'", dir);
      *pids = np;
      *cap = nc;
    }
    (*pids)[(*n)++] = (pid_t)v;
    p = end;
    while (*p == '\n') p++;
  }
  DIR *d = opendir(dir);
  if (!d) return berth_fail_errno(e, "open '%s'", dir);
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(d)) != NULL) {
    if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
      continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name) >= (int)sizeof sub) continue;
    rc = collect_pids(sub, pids, n, cap, e);
  }
  closedir(d);
  return rc;
}

int cg_list_pids(const char *dir, pid_t **pids, size_t *n, berth_error *e) {
  size_t cap = 0;
  *pids = NULL;
  *n = 0;
  if (collect_pids(dir, pids, n, &cap, e) == 0) return 0;
  free(*pids);
  *pids = NULL;
  *n = 0;
  return -1;
}

int cg_enter_dir(const char *dir, pid_t pid, berth_error *e) {
  return cg_writef(dir, "cgroup.procs", e, "%d", (int)pid);
}

/* The path of this process's group in the hierarchy holding controller (""
 * for cgroup2), from /proc/self/cgroup. */
static int self_path(const char *controllers, char *out, size_t outsz, berth_error *e) {
  cleanup_free char *s = NULL;
  if (read_file("/proc/self/cgroup", &s, NULL, e) < 0) return -1;
  for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2) continue;
    *c2 = '\0';
    if (strcmp(c1 + 1, controllers) == 0) {
      snprintf(out, outsz, "%s", c2 + 1);
      return 0;
    }
  }
  return berth_fail(e, ENOENT, "'%s' is not in /proc/self/cgroup", controllers[0] ? controllers : "cgroup2");
}

/* One hierarchy at target/name: a fresh mount when this process's cgroup
 * namespace is rooted at its group (it sees "/"), else a bind of the group's
 * directory so the container never sees the host's tree. */
int cg_mount_hierarchy(const char *fstype, const char *data, const char *controllers, const char *hostdir,
                     const char *where, unsigned long flags, berth_error *e) {
  if (mkdir(where, 0755) < 0 && errno != EEXIST) return berth_fail_errno(e, "mkdir '%s'", where);
  char self[PATH_MAX];
  if (self_path(controllers, self, sizeof self, e) < 0) return -1;
  if (strcmp(self, "/") == 0) {
    if (mount(fstype, where, fstype, flags, data) < 0)
      return berth_fail_errno(e, "mount %s (%s) on '%s'", fstype, data ? data : "", where);
    return 0;
  }
  if (mount(hostdir, where, NULL, MS_BIND | MS_REC, NULL) < 0)
    return berth_fail_errno(e, "bind '%s' on '%s'", hostdir, where);
  if (mount(NULL, where, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
    return berth_fail_errno(e, "remount '%s'", where);
  return 0;
}

json_t *cg_list_json(const char *dir, const char *file) {
  cleanup_free char *s = NULL;
  berth_error ignored;
  if (cg_read(dir, file, &s, &ignored) < 0) return NULL;
  json_t *a = json_array();
  uint64_t bits[128];
  if (s[0] == '\n' || s[0] == '\0' || cg_parse_list(s, bits, 128) < 0) return a;
  for (size_t i = 0; i < 128 * 64; i++)
    if (bits[i / 64] & (1ull << (i % 64))) json_array_append_new(a, json_integer((json_int_t)i));
  return a;
}

/* ---- validation -------------------------------------------------------- */

const char *const cg_throttle_keys[4] = {"throttleReadBpsDevice", "throttleWriteBpsDevice",
                                         "throttleReadIOPSDevice", "throttleWriteIOPSDevice"};
const char *const cg_v1_throttle_files[4] = {
    "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
    "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device"};

#define F "linux.resources."

/* An integer member in [min, max]. Absent or null leaves *o unset; so does
 * 0 when zero_unset (OCI's "leave as is"). */
static int get_int(json_t *obj, const char *key, const char *field, int64_t min, int64_t max,
                   bool zero_unset, cg_opt *o, berth_error *e) {
  json_t *v = json_object_get(obj, key);
  o->set = false;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_integer(v))
    return berth_fail(e, 0, F "%s: expected an integer, got a JSON %s", field,
                      json_is_string(v) ? "string" : json_is_real(v) ? "real" : "value of another type");
  int64_t x = json_integer_value(v);
  if (x < min || x > max)
    return berth_fail(e, 0, F "%s: %" PRId64 " is out of range (%" PRId64 " to %" PRId64 ")", field, x,
                      min, max);
  if (x == 0 && zero_unset) return 0;
  o->set = true;
  o->v = x;
  return 0;
}

static int get_bool(json_t *obj, const char *key, const char *field, cg_opt *o, berth_error *e) {
  json_t *v = json_object_get(obj, key);
  o->set = false;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_boolean(v)) return berth_fail(e, 0, F "%s: expected true or false", field);
  o->set = true;
  o->v = json_is_true(v);
  return 0;
}

static int get_obj(json_t *parent, const char *key, const char *field, json_t **out, berth_error *e) {
  json_t *v = json_object_get(parent, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_object(v)) return berth_fail(e, 0, F "%s: expected an object", field);
  *out = v;
  return 0;
}

static int get_array(json_t *parent, const char *key, const char *field, json_t **out, berth_error *e) {
  json_t *v = json_object_get(parent, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_array(v)) return berth_fail(e, 0, F "%s: expected an array", field);
  if (json_array_size(v) > 0) *out = v;
  return 0;
}

int cg_parse_list(const char *s, uint64_t *bits, size_t nwords) {
  memset(bits, 0, nwords * sizeof *bits);
  const char *p = s;
  if (!*p) return -1;
  for (;;) {
    char *end;
    if (*p < '0' || *p > '9') return -1;
    unsigned long a = strtoul(p, &end, 10), b = a;
    p = end;
    if (*p == '-') {
      p++;
      if (*p < '0' || *p > '9') return -1;
      b = strtoul(p, &end, 10);
      p = end;
    }
    if (b < a || b >= nwords * 64) return -1;
    for (unsigned long i = a; i <= b; i++) bits[i / 64] |= 1ull << (i % 64);
    if (*p == '\n' && p[1] == '\0') return 0;
    if (*p == '\0') return 0;
    if (*p != ',') return -1;
    p++;
  }
}

/* cpus/mems: the list syntax, and only what the host has online. */
static int check_cpuset(json_t *cpu, const char *key, const char *online_file, const char **out,
                        berth_error *e) {
  json_t *v = json_object_get(cpu, key);
  *out = NULL;
  if (!v || json_is_null(v)) return 0;
  if (!json_is_string(v)) return berth_fail(e, 0, F "cpu.%s: expected a string like \"0-2,4\"", key);
  const char *s = json_string_value(v);
  if (!*s) return 0;
  /* Room for the kernel's largest NR_CPUS (8192). */
  uint64_t want[128], have[128];
  if (cg_parse_list(s, want, 128) < 0)
    return berth_fail(e, 0, F "cpu.%s: '%s' is not a list like \"0-2,4\"", key, s);
  cleanup_free char *online = NULL;
  berth_error ignored;
  if (read_file(online_file, &online, NULL, &ignored) < 0) {
    /* No NUMA: node 0 only. */
    online = strdup("0");
    if (!online) return berth_fail(e, ENOMEM, "read '%s'", online_file);
  }
  if (cg_parse_list(online, have, 128) < 0) return 0;
  for (size_t i = 0; i < 128; i++)
    if (want[i] & ~have[i])
      return berth_fail(e, 0, F "cpu.%s: '%s' names %s that are not online (online: %s)", key, s,
                        strcmp(key, "cpus") == 0 ? "CPUs" : "memory nodes", strtok(online, "\n"));
  *out = s;
  return 0;
}

static int parse_devices(json_t *arr, cg_res *r, berth_error *e) {
  size_t n = json_array_size(arr);
  r->devices = calloc(n ? n : 1, sizeof *r->devices);
  if (!r->devices) return berth_fail(e, ENOMEM, "parse " F "devices");
  r->ndevices = n;
  for (size_t i = 0; i < n; i++) {
    json_t *d = json_array_get(arr, i);
    struct cg_dev_rule *rule = &r->devices[i];
    char field[64];
    if (!json_is_object(d)) return berth_fail(e, 0, F "devices[%zu]: expected an object", i);
    json_t *allow = json_object_get(d, "allow");
    if (!json_is_boolean(allow))
      return berth_fail(e, 0, F "devices[%zu].allow: expected true or false", i);
    rule->allow = json_is_true(allow);
    const char *type = json_str(d, "type");
    if (json_object_get(d, "type") && !json_is_null(json_object_get(d, "type")) && !type)
      return berth_fail(e, 0, F "devices[%zu].type: expected a string", i);
    if (!type || !*type) type = "a";
    if (strlen(type) != 1 || !strchr("abcu", type[0]))
      return berth_fail(e, 0, F "devices[%zu].type: unknown device type '%s' (expected a, b, c or u)", i,
                        type);
    rule->type = type[0] == 'u' ? 'c' : type[0];
    cg_opt o;
    snprintf(field, sizeof field, "devices[%zu].major", i);
    if (get_int(d, "major", field, -1, UINT32_MAX, false, &o, e) < 0) return -1;
    rule->major = o.set ? o.v : -1;
    snprintf(field, sizeof field, "devices[%zu].minor", i);
    if (get_int(d, "minor", field, -1, UINT32_MAX, false, &o, e) < 0) return -1;
    rule->minor = o.set ? o.v : -1;
    const char *acc = json_str(d, "access");
    if (json_object_get(d, "access") && !json_is_null(json_object_get(d, "access")) && !acc)
      return berth_fail(e, 0, F "devices[%zu].access: expected a string", i);
    if (!acc || !*acc) acc = "rwm";
    rule->access = 0;
    for (const char *c = acc; *c; c++) {
      unsigned bit = *c == 'r' ? CG_ACC_READ : *c == 'w' ? CG_ACC_WRITE : *c == 'm' ? CG_ACC_MKNOD : 0;
      if (!bit)
        return berth_fail(e, 0, F "devices[%zu].access: '%s' may hold only r, w and m", i, acc);
      rule->access |= bit;
    }
  }
  return 0;
}

static int parse_hugepages(json_t *arr, berth_error *e) {
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *h = json_array_get(arr, i);
    if (!json_is_object(h)) return berth_fail(e, 0, F "hugepageLimits[%zu]: expected an object", i);
    const char *size = json_str(h, "pageSize");
    if (!size) return berth_fail(e, 0, F "hugepageLimits[%zu].pageSize: expected a string like \"2MB\"", i);
    char *end;
    unsigned long long n = strtoull(size, &end, 10);
    unsigned long long kb = strcmp(end, "KB") == 0 ? n : strcmp(end, "MB") == 0 ? n << 10
                            : strcmp(end, "GB") == 0 ? n << 20 : 0;
    if (end == size || kb == 0)
      return berth_fail(e, 0, F "hugepageLimits[%zu].pageSize: '%s' is not a size like \"2MB\"", i, size);
    char dir[128];
    snprintf(dir, sizeof dir, "/sys/kernel/mm/hugepages/hugepages-%llukB", kb);
    if (access(dir, F_OK) < 0)
      return berth_fail(e, 0, F "hugepageLimits[%zu].pageSize: this host has no %s huge pages", i, size);
    char field[64];
    cg_opt o;
    snprintf(field, sizeof field, "hugepageLimits[%zu].limit", i);
    if (get_int(h, "limit", field, 0, INT64_MAX, false, &o, e) < 0) return -1;
    if (!o.set) return berth_fail(e, 0, F "%s: required", field);
  }
  return 0;
}

static int parse_dev_list(json_t *arr, const char *key, bool throttle, berth_error *e) {
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *d = json_array_get(arr, i);
    char field[96];
    cg_opt o;
    if (!json_is_object(d)) return berth_fail(e, 0, F "blockIO.%s[%zu]: expected an object", key, i);
    snprintf(field, sizeof field, "blockIO.%s[%zu].major", key, i);
    if (get_int(d, "major", field, 0, UINT32_MAX, false, &o, e) < 0) return -1;
    if (!o.set) return berth_fail(e, 0, F "%s: required", field);
    snprintf(field, sizeof field, "blockIO.%s[%zu].minor", key, i);
    if (get_int(d, "minor", field, 0, UINT32_MAX, false, &o, e) < 0) return -1;
    if (!o.set) return berth_fail(e, 0, F "%s: required", field);
    if (throttle) {
      snprintf(field, sizeof field, "blockIO.%s[%zu].rate", key, i);
      if (get_int(d, "rate", field, 0, INT64_MAX, false, &o, e) < 0) return -1;
      if (!o.set) return berth_fail(e, 0, F "%s: required", field);
    } else {
      snprintf(field, sizeof field, "blockIO.%s[%zu].weight", key, i);
      if (get_int(d, "weight", field, 0, 1000, true, &o, e) < 0) return -1;
      if (o.set && o.v < 10) return berth_fail(e, 0, F "%s: %" PRId64 " is out of range (10 to 1000)", field, o.v);
      snprintf(field, sizeof field, "blockIO.%s[%zu].leafWeight", key, i);
      if (get_int(d, "leafWeight", field, 0, 1000, true, &o, e) < 0) return -1;
      if (o.set && o.v < 10) return berth_fail(e, 0, F "%s: %" PRId64 " is out of range (10 to 1000)", field, o.v);
    }
  }
  return 0;
}

static int parse_unified(json_t *u, berth_error *e) {
  const char *key;
  json_t *v;
  json_object_foreach(u, key, v) {
    if (!json_is_string(v)) return berth_fail(e, 0, F "unified.%s: expected a string value", key);
    const char *dot = strchr(key, '.');
    if (!*key || strchr(key, '/') || strstr(key, "..") || !dot || dot == key || !dot[1])
      return berth_fail(e, 0, F "unified: '%s' is not a cgroup file name like \"memory.high\"", key);
    if (strcmp(key, "cgroup.procs") == 0 || strcmp(key, "cgroup.threads") == 0 ||
        strcmp(key, "cgroup.subtree_control") == 0)
      return berth_fail(e, 0, F "unified: '%s' is managed by the runtime and cannot be set", key);
  }
  return 0;
}

int cg_res_parse(json_t *res, cg_res *r, berth_error *e) {
  memset(r, 0, sizeof *r);
  if (!res || json_is_null(res)) return 0;
  if (!json_is_object(res)) return berth_fail(e, 0, "linux.resources: expected an object");
  json_t *o;

  if (get_obj(res, "memory", "memory", &o, e) < 0) goto fail;
  if (o) {
    if (get_int(o, "limit", "memory.limit", -1, INT64_MAX, true, &r->mem_limit, e) < 0 ||
        get_int(o, "reservation", "memory.reservation", -1, INT64_MAX, true, &r->mem_reservation, e) < 0 ||
        get_int(o, "swap", "memory.swap", -1, INT64_MAX, true, &r->mem_swap, e) < 0 ||
        get_int(o, "kernel", "memory.kernel", -1, INT64_MAX, true, &r->mem_kernel, e) < 0 ||
        get_int(o, "kernelTCP", "memory.kernelTCP", -1, INT64_MAX, true, &r->mem_kernel_tcp, e) < 0 ||
        get_int(o, "swappiness", "memory.swappiness", 0, 100, false, &r->mem_swappiness, e) < 0 ||
        get_bool(o, "disableOOMKiller", "memory.disableOOMKiller", &r->mem_disable_oom, e) < 0 ||
        get_bool(o, "useHierarchy", "memory.useHierarchy", &r->mem_use_hierarchy, e) < 0 ||
        get_bool(o, "checkBeforeUpdate", "memory.checkBeforeUpdate", &r->mem_check_before_update, e) < 0)
      goto fail;
    if (r->mem_limit.set && r->mem_limit.v > 0 && r->mem_swap.set && r->mem_swap.v > 0 &&
        r->mem_swap.v < r->mem_limit.v) {
      berth_fail(e, 0, F "memory.swap: %" PRId64 " is below memory.limit %" PRId64
                        " (swap is memory+swap, so it must be at least the limit)",
                 r->mem_swap.v, r->mem_limit.v);
      goto fail;
    }
    if (r->mem_limit.set || r->mem_reservation.set || r->mem_swap.set || r->mem_kernel.set ||
        r->mem_kernel_tcp.set || r->mem_swappiness.set || r->mem_disable_oom.set ||
        r->mem_use_hierarchy.set)
      r->need |= CG_NEED_MEMORY;
  }

  if (get_obj(res, "cpu", "cpu", &o, e) < 0) goto fail;
  if (o) {
    if (get_int(o, "shares", "cpu.shares", 0, INT64_MAX, true, &r->cpu_shares, e) < 0 ||
        get_int(o, "quota", "cpu.quota", -1, INT64_MAX, true, &r->cpu_quota, e) < 0 ||
        get_int(o, "period", "cpu.period", 0, 1000000, true, &r->cpu_period, e) < 0 ||
        get_int(o, "realtimeRuntime", "cpu.realtimeRuntime", -1, INT64_MAX, true, &r->cpu_rt_runtime, e) < 0 ||
        get_int(o, "realtimePeriod", "cpu.realtimePeriod", 0, INT64_MAX, true, &r->cpu_rt_period, e) < 0 ||
        get_int(o, "burst", "cpu.burst", 0, INT64_MAX, false, &r->cpu_burst, e) < 0 ||
        get_int(o, "idle", "cpu.idle", 0, 1, false, &r->cpu_idle, e) < 0)
      goto fail;
    if (r->cpu_period.set && r->cpu_period.v < 1000) {
      berth_fail(e, 0, F "cpu.period: %" PRId64 " is out of range (1000 to 1000000 microseconds)", r->cpu_period.v);
      goto fail;
    }
    if (r->cpu_quota.set && r->cpu_quota.v > 0 && r->cpu_quota.v < 1000) {
      berth_fail(e, 0, F "cpu.quota: %" PRId64 " is below the kernel's minimum of 1000 microseconds", r->cpu_quota.v);
      goto fail;
    }
    if (check_cpuset(o, "cpus", "/sys/devices/system/cpu/online", &r->cpus, e) < 0 ||
        check_cpuset(o, "mems", "/sys/devices/system/node/online", &r->mems, e) < 0)
      goto fail;
    if (r->cpu_shares.set || r->cpu_quota.set || r->cpu_period.set || r->cpu_rt_runtime.set ||
        r->cpu_rt_period.set || r->cpu_burst.set || r->cpu_idle.set)
      r->need |= CG_NEED_CPU;
    if (r->cpus || r->mems) r->need |= CG_NEED_CPUSET;
  }

  if (get_obj(res, "pids", "pids", &o, e) < 0) goto fail;
  if (o) {
    if (get_int(o, "limit", "pids.limit", -1, INT64_MAX, true, &r->pids_limit, e) < 0) goto fail;
    if (r->pids_limit.set) r->need |= CG_NEED_PIDS;
  }

  if (get_obj(res, "blockIO", "blockIO", &o, e) < 0) goto fail;
  if (o) {
    if (get_int(o, "weight", "blockIO.weight", 0, 1000, true, &r->blkio_weight, e) < 0 ||
        get_int(o, "leafWeight", "blockIO.leafWeight", 0, 1000, true, &r->blkio_leaf_weight, e) < 0)
      goto fail;
    if ((r->blkio_weight.set && r->blkio_weight.v < 10) || (r->blkio_leaf_weight.set && r->blkio_leaf_weight.v < 10)) {
      berth_fail(e, 0, F "blockIO.%s: out of range (10 to 1000)",
                 r->blkio_weight.set && r->blkio_weight.v < 10 ? "weight" : "leafWeight");
      goto fail;
    }
    if (get_array(o, "weightDevice", "blockIO.weightDevice", &r->blkio_weight_device, e) < 0 ||
        parse_dev_list(r->blkio_weight_device, "weightDevice", false, e) < 0)
      goto fail;
    for (int i = 0; i < 4; i++) {
      char field[64];
      snprintf(field, sizeof field, "blockIO.%s", cg_throttle_keys[i]);
      if (get_array(o, cg_throttle_keys[i], field, &r->blkio_throttle[i], e) < 0 ||
          parse_dev_list(r->blkio_throttle[i], cg_throttle_keys[i], true, e) < 0)
        goto fail;
      if (r->blkio_throttle[i]) r->need |= CG_NEED_IO;
    }
    if (r->blkio_weight.set || r->blkio_leaf_weight.set || r->blkio_weight_device) r->need |= CG_NEED_IO;
  }

  if (get_array(res, "hugepageLimits", "hugepageLimits", &r->hugepages, e) < 0 ||
      parse_hugepages(r->hugepages, e) < 0)
    goto fail;
  if (r->hugepages) r->need |= CG_NEED_HUGETLB;

  if (get_obj(res, "network", "network", &o, e) < 0) goto fail;
  if (o) {
    if (get_int(o, "classID", "network.classID", 0, UINT32_MAX, false, &r->net_class_id, e) < 0 ||
        get_array(o, "priorities", "network.priorities", &r->net_priorities, e) < 0)
      goto fail;
    for (size_t i = 0; i < json_array_size(r->net_priorities); i++) {
      json_t *p = json_array_get(r->net_priorities, i);
      const char *name = json_str(p, "name");
      if (!name || !*name || strpbrk(name, " \t\n/")) {
        berth_fail(e, 0, F "network.priorities[%zu].name: expected an interface name", i);
        goto fail;
      }
      char field[64];
      cg_opt pr;
      snprintf(field, sizeof field, "network.priorities[%zu].priority", i);
      if (get_int(p, "priority", field, 0, UINT32_MAX, false, &pr, e) < 0) goto fail;
      if (!pr.set) {
        berth_fail(e, 0, F "%s: required", field);
        goto fail;
      }
    }
    if (r->net_class_id.set) r->need |= CG_NEED_NET_CLS;
    if (r->net_priorities) r->need |= CG_NEED_NET_PRIO;
  }

  json_t *devs;
  if (get_array(res, "devices", "devices", &devs, e) < 0) goto fail;
  if (devs) {
    if (parse_devices(devs, r, e) < 0) goto fail;
    r->need |= CG_NEED_DEVICES;
  }

  if (get_obj(res, "rdma", "rdma", &r->rdma, e) < 0) goto fail;
  if (r->rdma && json_object_size(r->rdma) == 0) r->rdma = NULL;
  if (r->rdma) {
    const char *dev;
    json_t *lim;
    json_object_foreach(r->rdma, dev, lim) {
      char field[128];
      cg_opt h, ob;
      if (!*dev || strpbrk(dev, " \t\n/=")) {
        berth_fail(e, 0, F "rdma: '%s' is not an RDMA device name", dev);
        goto fail;
      }
      if (!json_is_object(lim)) {
        berth_fail(e, 0, F "rdma.%s: expected an object", dev);
        goto fail;
      }
      snprintf(field, sizeof field, "rdma.%s.hcaHandles", dev);
      if (get_int(lim, "hcaHandles", field, 0, UINT32_MAX, false, &h, e) < 0) goto fail;
      snprintf(field, sizeof field, "rdma.%s.hcaObjects", dev);
      if (get_int(lim, "hcaObjects", field, 0, UINT32_MAX, false, &ob, e) < 0) goto fail;
      if (!h.set && !ob.set) {
        berth_fail(e, 0, F "rdma.%s: give hcaHandles, hcaObjects or both", dev);
        goto fail;
      }
    }
    r->need |= CG_NEED_RDMA;
  }

  if (get_obj(res, "unified", "unified", &r->unified, e) < 0) goto fail;
  if (r->unified && json_object_size(r->unified) == 0) r->unified = NULL;
  if (r->unified) {
    if (parse_unified(r->unified, e) < 0) goto fail;
    r->need |= CG_NEED_UNIFIED;
  }
  return 0;
fail:
  cg_res_free(r);
  return -1;
}

void cg_res_free(cg_res *r) {
  free(r->devices);
  r->devices = NULL;
  r->ndevices = 0;
}

int cg_apply_rdma(const char *dir, const cg_res *r, berth_error *e) {
  const char *dev;
  json_t *lim;
  json_object_foreach(r->rdma, dev, lim) {
    char val[256];
    size_t n = (size_t)snprintf(val, sizeof val, "%s", dev);
    json_t *h = json_object_get(lim, "hcaHandles"), *o = json_object_get(lim, "hcaObjects");
    if (json_is_integer(h)) n += (size_t)snprintf(val + n, sizeof val - n, " hca_handle=%" JSON_INTEGER_FORMAT, json_integer_value(h));
    if (json_is_integer(o) && n < sizeof val)
      snprintf(val + n, sizeof val - n, " hca_object=%" JSON_INTEGER_FORMAT, json_integer_value(o));
    if (cg_write(dir, "rdma.max", val, e) < 0) return berth_wrap(e, "linux.resources.rdma.%s", dev);
  }
  return 0;
}

int cg_check_memory_usage(const char *dir, const char *usage_file, const cg_res *r, berth_error *e) {
  if (!r->mem_check_before_update.set || !r->mem_check_before_update.v || !r->mem_limit.set ||
      r->mem_limit.v <= 0)
    return 0;
  uint64_t usage;
  if (cg_read_u64(dir, usage_file, &usage, e) < 0) return -1;
  if ((uint64_t)r->mem_limit.v < usage)
    return berth_fail(e, 0, F "memory.limit: %" PRId64 " is below the group's current usage of %" PRIu64
                            " bytes (memory.checkBeforeUpdate is set)", r->mem_limit.v, usage);
  return 0;
}

/* ---- the interface ----------------------------------------------------- */

static int normalize_path(char *out, size_t outsz, const char *in, berth_error *e) {
  size_t o = 0;
  const char *p = in;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
      return berth_fail(e, 0, "linux.cgroupsPath: '%s' may not hold '.' or '..'", in);
    if (o + 1 + len + 1 > outsz) return berth_fail(e, ENAMETOOLONG, "linux.cgroupsPath '%s'", in);
    out[o++] = '/';
    memcpy(out + o, p, len);
    o += len;
    p += len;
  }
  out[o] = '\0';
  if (o == 0) return berth_fail(e, 0, "linux.cgroupsPath: '%s' names the root group", in);
  return 0;
}

int cgroup_open(berth_cgroup *cg, const char *cgroups_path, const char *id, bool disabled,
                berth_error *e) {
  memset(cg, 0, sizeof *cg);
  if (disabled) return 0;
  const struct cg_host *h = cg_host(e);
  if (!h) return berth_wrap(e, "cgroups");
  cg->mode = h->mode;
  char raw[PATH_MAX];
  if (!cgroups_path || !*cgroups_path) {
    if (!id || !*id || strchr(id, '/'))
      return berth_fail(e, EINVAL, "cgroups: container id '%s' cannot name a group", id ? id : "");
    snprintf(raw, sizeof raw, "/berth/%s", id);
  } else if (cgroups_path[0] == '/') {
    snprintf(raw, sizeof raw, "%s", cgroups_path);
  } else {
    snprintf(raw, sizeof raw, "/berth/%s", cgroups_path);
  }
  if (normalize_path(cg->path, sizeof cg->path, raw, e) < 0) return -1;
  cg->ops = h->mode == CGROUP_MODE_V2 ? &cg_v2_ops : &cg_v1_ops;
  return 0;
}

int cgroup_create(berth_cgroup *cg, json_t *resources, berth_error *e) {
  if (!cg->ops) return 0;
  cg_res r;
  if (cg_res_parse(resources, &r, e) < 0) return -1;
  /* Only a group this call made is removed when it fails. */
  bool existed = cg->ops->exists(cg);
  int rc = cg->ops->create(cg, e);
  if (rc == 0) rc = cg->ops->check(cg, &r, e);
  if (rc == 0) rc = cg->ops->apply(cg, &r, e);
  if (rc < 0 && !existed) {
    berth_error ignored;
    cg->ops->destroy(cg, &ignored);
  }
  cg_res_free(&r);
  return rc < 0 ? berth_wrap(e, "cgroup '%s'", cg->path) : 0;
}

int cgroup_update(const berth_cgroup *cg, json_t *resources, berth_error *e) {
  if (!cg->ops) return 0;
  cg_res r;
  if (cg_res_parse(resources, &r, e) < 0) return -1;
  int rc = cg->ops->check(cg, &r, e);
  if (rc == 0) rc = cg->ops->apply(cg, &r, e);
  cg_res_free(&r);
  return rc < 0 ? berth_wrap(e, "update cgroup '%s'", cg->path) : 0;
}

int cgroup_enter(const berth_cgroup *cg, pid_t pid, berth_error *e) {
  if (!cg->ops) return 0;
  return cg->ops->enter(cg, pid, e);
}

int cgroup_unified_fd(const berth_cgroup *cg, int *fd, berth_error *e) {
  *fd = -1;
  if (!cg->ops) return 0;
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  if (!h->unified[0]) return 0;
  char dir[PATH_MAX];
  cg_join(dir, sizeof dir, h->unified, cg->path);
  *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (*fd >= 0) return 0;
  /* A hybrid host whose cgroup2 mount holds nothing we use has no group there. */
  if (errno == ENOENT && h->mode != CGROUP_MODE_V2) return 0;
  return berth_fail_errno(e, "open '%s'", dir);
}

int cgroup_enter_self(const berth_cgroup *cg, berth_error *e) {
  if (!cg->ops) return 0;
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  if (h->mode == CGROUP_MODE_V2) return 0;
  char dir[PATH_MAX];
  for (size_t i = 0; i < h->nhier; i++) {
    cg_join(dir, sizeof dir, h->hier[i].mnt, cg->path);
    if (cg_write(dir, "tasks", "0", e) < 0) return -1;
  }
  return 0;
}

int cgroup_freeze(const berth_cgroup *cg, bool frozen, berth_error *e) {
  if (!cg->ops) return berth_fail(e, ENOTSUP, "cgroups are disabled: cannot %s", frozen ? "pause" : "resume");
  return cg->ops->freeze(cg, frozen, e);
}

int cgroup_is_frozen(const berth_cgroup *cg, bool *frozen, berth_error *e) {
  *frozen = false;
  if (!cg->ops) return 0;
  return cg->ops->is_frozen(cg, frozen, e);
}

int cgroup_pids(const berth_cgroup *cg, pid_t **pids, size_t *n, berth_error *e) {
  *pids = NULL;
  *n = 0;
  if (!cg->ops) return berth_fail(e, ENOTSUP, "cgroups are disabled: cannot list the container's processes");
  return cg->ops->pids(cg, pids, n, e);
}

int cgroup_kill_all(const berth_cgroup *cg, int sig, berth_error *e) {
  if (!cg->ops) return berth_fail(e, ENOTSUP, "cgroups are disabled: cannot signal every process");
  return cg->ops->kill_all(cg, sig, e);
}

int cgroup_stats(const berth_cgroup *cg, json_t **out, berth_error *e) {
  *out = NULL;
  json_t *o = json_object();
  if (!o) return berth_fail(e, ENOMEM, "cgroup stats");
  if (cg->ops && cg->ops->stats(cg, o, e) < 0) {
    json_decref(o);
    return berth_wrap(e, "stats of cgroup '%s'", cg->path);
  }
  *out = o;
  return 0;
}

int cgroup_destroy(const berth_cgroup *cg, berth_error *e) {
  if (!cg->ops) return 0;
  return cg->ops->destroy(cg, e);
}

int cgroup_mount(const berth_cgroup *cg, const char *target, unsigned long flags, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  /* Even with the manager disabled the container may ask for a cgroup
   * mount; it then sees the hierarchy its namespace gives it. */
  berth_cgroup tmp = *cg;
  if (!tmp.ops) tmp.ops = h->mode == CGROUP_MODE_V2 ? &cg_v2_ops : &cg_v1_ops;
  return tmp.ops->mount(&tmp, target, flags, e);
}

json_t *cgroup_features(void) {
  return json_pack("{s:b,s:b,s:b,s:b,s:b}", "v1", 1, "v2", 1, "systemd", 0, "systemdUser", 0, "rdma", 1);
}
