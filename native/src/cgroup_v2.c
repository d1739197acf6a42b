/* cgroup v2: one unified hierarchy. The per-controller writers here also
 * serve hybrid hosts for the controllers that only the cgroup2 mount holds. */
#include "cgroup_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void group_dir(const berth_cgroup *cg, char *out, size_t outsz) {
  const struct cg_host *h = cg_host(&(berth_error){0});
  cg_join(out, outsz, h ? h->unified : CG_ROOT, cg->path);
}

static bool list_has(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += n) {
    bool start = p == list || p[-1] == ' ';
    bool end = p[n] == ' ' || p[n] == '\n' || p[n] == '\0';
    if (start && end) return true;
  }
  return false;
}

/* Each ancestor's cgroup.subtree_control gets every controller it has, one at
 * a time: one refused controller (a busy cgroup, an RT task) must not keep
 * the others off. Missing controllers are reported later by check. */
int cg2_enable_controllers(const char *root, const char *relpath, berth_error *e) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", root);
  const char *p = relpath;
  for (;;) {
    while (*p == '/') p++;
    const char *next = strchr(p, '/');
    if (!*p) break;
    cleanup_free char *avail = NULL;
    cleanup_free char *enabled = NULL;
    if (cg_read(dir, "cgroup.controllers", &avail, e) < 0) return -1;
    if (cg_read(dir, "cgroup.subtree_control", &enabled, e) < 0) return -1;
    char *save = NULL;
    for (char *c = strtok_r(avail, " \n", &save); c; c = strtok_r(NULL, " \n", &save)) {
      if (list_has(enabled, c)) continue;
      berth_error ignored;
      cg_writef(dir, "cgroup.subtree_control", &ignored, "+%s", c);
    }
    size_t len = next ? (size_t)(next - p) : strlen(p);
    size_t used = strlen(dir);
    if (used + 1 + len >= sizeof dir) return berth_fail(e, ENAMETOOLONG, "cgroup '%s'", relpath);
    dir[used] = '/';
    memcpy(dir + used + 1, p, len);
    dir[used + 1 + len] = '\0';
    if (!next) break; /* the leaf itself: its subtree stays empty */
    if (cg_mkdir(dir, NULL, e) < 0) return -1;
    p = next;
  }
  return 0;
}

static const struct {
  unsigned bit;
  const char *name;
  const char *field;
} v2_controllers[] = {
    {CG_NEED_MEMORY, "memory", "memory"}, {CG_NEED_CPU, "cpu", "cpu"},
    {CG_NEED_CPUSET, "cpuset", "cpu.cpus/cpu.mems"}, {CG_NEED_PIDS, "pids", "pids"},
    {CG_NEED_IO, "io", "blockIO"},           {CG_NEED_HUGETLB, "hugetlb", "hugepageLimits"},
    {CG_NEED_RDMA, "rdma", "rdma"},
};

int cg2_check_controllers(const char *dir, unsigned need, berth_error *e) {
  cleanup_free char *have = NULL;
  if (cg_read(dir, "cgroup.controllers", &have, e) < 0) return -1;
  for (size_t i = 0; i < BERTH_ARRAY_LEN(v2_controllers); i++)
    if ((need & v2_controllers[i].bit) && !list_has(have, v2_controllers[i].name))
      return berth_fail(e, 0,
                        "linux.resources.%s asks for the cgroup v2 '%s' controller, which is not "
                        "available in '%s' (available: %s)",
                        v2_controllers[i].field, v2_controllers[i].name, dir,
                        strtok(have, "\n") ? have : "none");
  return 0;
}

/* ln and exp by series, so the runtime needs no libm for one formula. */
static double ln_series(double x) {
  int k = 0;
  while (x >= 2.0) x /= 2.0, k++;
  while (x < 1.0) x *= 2.0, k--;
  double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0.0;
  for (int n = 1; n < 80; n += 2, term *= z2) sum += term / n;
  return 2.0 * sum + k * 0.69314718055994530942;
}

static double exp_series(double y) {
  int n = (int)(y / 0.69314718055994530942);
  double r = y - n * 0.69314718055994530942, term = 1.0, sum = 1.0;
  for (int i = 1; i < 40; i++) sum += (term *= r / i);
  for (; n > 0; n--) sum *= 2.0;
  for (; n < 0; n++) sum /= 2.0;
  return sum;
}

uint64_t cg2_shares_to_weight(uint64_t shares) {
  /* crun's documented map of v1's [2, 262144] onto v2's [1, 10000] (runc
   * since 1.3.2 too): weight = 10^((l^2 + 125 l) / 612 - 7/34), l = log2
   * shares, rounded up. It keeps the defaults together: 1024 -> 100. */
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  double l = ln_series((double)shares) / 0.69314718055994530942;
  double w = exp_series(((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0) * 2.30258509299404568402);
  /* Round to 1e-6 first so that an exact 100 does not become 101. */
  uint64_t micro = (uint64_t)(w * 1e6 + 0.5);
  return micro / 1000000 + (micro % 1000000 ? 1 : 0);
}

int cg2_swap_max(const cg_res *r, int64_t limit, int64_t *out, berth_error *e) {
  /* OCI's swap is memory+swap (v1's memsw); v2's swap.max is swap alone. */
  int64_t swap = r->mem_swap.set ? r->mem_swap.v : 0;
  if (swap == 0) {
    /* Unlimited memory with no swap asked: unlimited swap too. */
    *out = r->mem_limit.set && r->mem_limit.v == -1 ? -1 : 0;
    return 0;
  }
  if (swap == -1) {
    *out = -1;
    return 0;
  }
  if (limit <= 0)
    return berth_fail(e, 0, "linux.resources.memory.swap: a swap limit needs a memory limit");
  if (swap < limit)
    return berth_fail(e, 0, "linux.resources.memory.swap: %" PRId64 " is below memory.limit %" PRId64,
                      swap, limit);
  *out = swap - limit;
  return 0;
}

static int write_limit(const char *dir, const char *file, int64_t v, berth_error *e) {
  return v < 0 ? cg_write(dir, file, "max", e) : cg_writef(dir, file, e, "%" PRId64, v);
}

/* The memory limit swap is measured against: the one asked for, or the
 * group's present one (for an update that changes only swap). */
static int64_t effective_limit(const char *dir, const cg_res *r) {
  if (r->mem_limit.set) return r->mem_limit.v;
  uint64_t cur;
  berth_error ignored;
  if (cg_read_u64(dir, "memory.max", &cur, &ignored) < 0 || cur == UINT64_MAX) return -1;
  return (int64_t)cur;
}

int cg2_apply_memory(const char *dir, const cg_res *r, berth_error *e) {
  /* kernel, kernelTCP, swappiness, disableOOMKiller and useHierarchy have no
   * v2 file; the kernel accounts kernel memory with the rest. */
  int64_t swap;
  if (cg2_swap_max(r, effective_limit(dir, r), &swap, e) < 0) return -1;
  if (r->mem_limit.set && write_limit(dir, "memory.max", r->mem_limit.v, e) < 0) return -1;
  if (r->mem_reservation.set && write_limit(dir, "memory.low", r->mem_reservation.v, e) < 0) return -1;
  if (swap != 0) {
    if (cg_exists(dir, "memory.swap.max")) {
      if (write_limit(dir, "memory.swap.max", swap, e) < 0) return -1;
    } else if (swap > 0) {
      return berth_fail(e, 0, "linux.resources.memory.swap: this kernel has no swap accounting "
                              "(memory.swap.max is missing)");
    }
  }
  return 0;
}

int cg2_apply_cpu(const char *dir, const cg_res *r, berth_error *e) {
  if (r->cpu_shares.set &&
      cg_writef(dir, "cpu.weight", e, "%" PRIu64, cg2_shares_to_weight((uint64_t)r->cpu_shares.v)) < 0)
    return -1;
  if (r->cpu_quota.set || r->cpu_period.set) {
    cleanup_free char *cur = NULL;
    if (cg_read(dir, "cpu.max", &cur, e) < 0) return -1;
    char quota[32] = "max";
    unsigned long long period = 100000;
    sscanf(cur, "%31s %llu", quota, &period);
    if (r->cpu_quota.set) {
      if (r->cpu_quota.v < 0) snprintf(quota, sizeof quota, "max");
      else snprintf(quota, sizeof quota, "%" PRId64, r->cpu_quota.v);
    }
    if (r->cpu_period.set) period = (unsigned long long)r->cpu_period.v;
    if (cg_writef(dir, "cpu.max", e, "%s %llu", quota, period) < 0) return -1;
  }
  if (r->cpu_burst.set) {
    if (!cg_exists(dir, "cpu.max.burst"))
      return berth_fail(e, 0, "linux.resources.cpu.burst: this kernel has no cpu.max.burst");
    if (cg_writef(dir, "cpu.max.burst", e, "%" PRId64, r->cpu_burst.v) < 0) return -1;
  }
  if (r->cpu_idle.set) {
    if (!cg_exists(dir, "cpu.idle"))
      return berth_fail(e, 0, "linux.resources.cpu.idle: this kernel has no cpu.idle");
    if (cg_writef(dir, "cpu.idle", e, "%" PRId64, r->cpu_idle.v) < 0) return -1;
  }
  return 0;
}

int cg2_apply_cpuset(const char *dir, const cg_res *r, berth_error *e) {
  if (r->mems && cg_write(dir, "cpuset.mems", r->mems, e) < 0) return -1;
  if (r->cpus && cg_write(dir, "cpuset.cpus", r->cpus, e) < 0) return -1;
  return 0;
}

int cg2_apply_pids(const char *dir, const cg_res *r, berth_error *e) {
  if (r->pids_limit.set && write_limit(dir, "pids.max", r->pids_limit.v, e) < 0) return -1;
  return 0;
}

static uint64_t blkio_to_io_weight(int64_t w) {
  /* v1's [10, 1000] onto v2's [1, 10000]. */
  return 1 + ((uint64_t)w - 10) * 9999 / 990;
}

int cg2_apply_io(const char *dir, const cg_res *r, berth_error *e) {
  bool bfq = cg_exists(dir, "io.bfq.weight");
  const char *wfile = bfq ? "io.bfq.weight" : "io.weight";
  if (r->blkio_weight.set) {
    if (!bfq && !cg_exists(dir, "io.weight"))
      return berth_fail(e, 0, "linux.resources.blockIO.weight: no io.weight here (no I/O scheduler that "
                              "supports weights)");
    uint64_t w = bfq ? (uint64_t)r->blkio_weight.v : blkio_to_io_weight(r->blkio_weight.v);
    if (cg_writef(dir, wfile, e, "default %" PRIu64, w) < 0) return -1;
  }
  for (size_t i = 0; i < json_array_size(r->blkio_weight_device); i++) {
    json_t *d = json_array_get(r->blkio_weight_device, i);
    json_t *w = json_object_get(d, "weight");
    if (!json_is_integer(w) || json_integer_value(w) == 0) continue;
    int64_t wv = json_integer_value(w);
    if (cg_writef(dir, wfile, e, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT " %" PRIu64,
                  json_integer_value(json_object_get(d, "major")),
                  json_integer_value(json_object_get(d, "minor")),
                  bfq ? (uint64_t)wv : blkio_to_io_weight(wv)) < 0)
      return -1;
  }
  static const char *const keys[4] = {"rbps", "wbps", "riops", "wiops"};
  for (int k = 0; k < 4; k++) {
    for (size_t i = 0; i < json_array_size(r->blkio_throttle[k]); i++) {
      json_t *d = json_array_get(r->blkio_throttle[k], i);
      json_int_t rate = json_integer_value(json_object_get(d, "rate"));
      char val[32];
      if (rate == 0) snprintf(val, sizeof val, "max");
      else snprintf(val, sizeof val, "%" JSON_INTEGER_FORMAT, rate);
      if (cg_writef(dir, "io.max", e, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT " %s=%s",
                    json_integer_value(json_object_get(d, "major")),
                    json_integer_value(json_object_get(d, "minor")), keys[k], val) < 0)
        return berth_wrap(e, "linux.resources.blockIO.%s[%zu]", cg_throttle_keys[k], i);
    }
  }
  return 0;
}

int cg2_apply_hugetlb(const char *dir, const cg_res *r, berth_error *e) {
  for (size_t i = 0; i < json_array_size(r->hugepages); i++) {
    json_t *h = json_array_get(r->hugepages, i);
    char file[64];
    snprintf(file, sizeof file, "hugetlb.%s.max", json_str(h, "pageSize"));
    if (cg_writef(dir, file, e, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(h, "limit"))) < 0)
      return -1;
  }
  return 0;
}

static int check_unified(const char *dir, const cg_res *r, berth_error *e) {
  const char *key;
  json_t *v;
  json_object_foreach(r->unified, key, v) {
    if (!cg_exists(dir, key))
      return berth_fail(e, 0, "linux.resources.unified.%s: the group has no such file (is its "
                              "controller available?)", key);
  }
  return 0;
}

int cg2_apply_unified(const char *dir, const cg_res *r, berth_error *e) {
  const char *key;
  json_t *v;
  json_object_foreach(r->unified, key, v) {
    if (cg_write(dir, key, json_string_value(v), e) < 0)
      return berth_wrap(e, "linux.resources.unified.%s", key);
  }
  return 0;
}

static int wait_frozen(const char *dir, bool frozen, berth_error *e) {
  /* cgroup.events says "frozen 1" once every task has stopped. */
  for (int i = 0; i < 5000; i++) {
    cleanup_free char *ev = NULL;
    if (cg_read(dir, "cgroup.events", &ev, e) < 0) return -1;
    uint64_t v = 0;
    if (cg_kv_get(ev, "frozen", &v) && (v != 0) == frozen) return 0;
    struct timespec ts = {0, (i < 100 ? 100 : 1000) * 1000L};
    nanosleep(&ts, NULL);
  }
  return berth_fail(e, ETIMEDOUT, "'%s' did not become %s", dir, frozen ? "frozen" : "thawed");
}

int cg2_freeze_dir(const char *dir, bool frozen, berth_error *e) {
  if (cg_write(dir, "cgroup.freeze", frozen ? "1" : "0", e) < 0) return -1;
  return wait_frozen(dir, frozen, e);
}

int cg2_is_frozen_dir(const char *dir, bool *frozen, berth_error *e) {
  cleanup_free char *s = NULL;
  if (cg_read(dir, "cgroup.freeze", &s, e) < 0) return -1;
  *frozen = s[0] == '1';
  return 0;
}

/* ---- stats ------------------------------------------------------------- */

static json_int_t clamp(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (json_int_t)v; }

static int stats_cpu(const char *dir, json_t *out) {
  cleanup_free char *s = NULL;
  berth_error ignored;
  if (cg_read(dir, "cpu.stat", &s, &ignored) < 0) return 0;
  uint64_t total = 0, user = 0, sys = 0, periods = 0, throttled = 0, ttime = 0;
  cg_kv_get(s, "usage_usec", &total);
  cg_kv_get(s, "user_usec", &user);
  cg_kv_get(s, "system_usec", &sys);
  cg_kv_get(s, "nr_periods", &periods);
  cg_kv_get(s, "nr_throttled", &throttled);
  cg_kv_get(s, "throttled_usec", &ttime);
  json_object_set_new(out, "cpu",
                      json_pack("{s:{s:I,s:I,s:I},s:{s:I,s:I,s:I}}", "usage", "total", clamp(total * 1000),
                                "kernel", clamp(sys * 1000), "user", clamp(user * 1000), "throttling",
                                "periods", clamp(periods), "throttledPeriods", clamp(throttled),
                                "throttledTime", clamp(ttime * 1000)));
  return 0;
}

static json_t *kv_map(const char *text) {
  json_t *m = json_object();
  char key[128];
  unsigned long long v;
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
    if (sscanf(p, "%127s %llu", key, &v) == 2) json_object_set_new(m, key, json_integer(clamp(v)));
  return m;
}

static uint64_t read_or0(const char *dir, const char *file) {
  uint64_t v = 0;
  berth_error ignored;
  if (cg_read_u64(dir, file, &v, &ignored) < 0) return 0;
  return v;
}

static uint64_t event_count(const char *dir, const char *file, const char *key) {
  cleanup_free char *s = NULL;
  berth_error ignored;
  uint64_t v = 0;
  if (cg_read(dir, file, &s, &ignored) == 0) cg_kv_get(s, key, &v);
  return v;
}

static int stats_memory(const char *dir, json_t *out) {
  if (!cg_exists(dir, "memory.current")) return 0;
  cleanup_free char *st = NULL;
  berth_error ignored;
  json_t *raw = cg_read(dir, "memory.stat", &st, &ignored) == 0 ? kv_map(st) : json_object();
  uint64_t file = 0;
  if (st) cg_kv_get(st, "file", &file);
  json_t *mem = json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:o}", "cache", clamp(file), "usage", "usage",
                          clamp(read_or0(dir, "memory.current")), "max",
                          clamp(read_or0(dir, "memory.peak")), "limit", clamp(read_or0(dir, "memory.max")),
                          "failcnt", clamp(event_count(dir, "memory.events", "max")), "raw", raw);
  if (cg_exists(dir, "memory.swap.current")) {
    /* Reported as v1's memory+swap, as runc does, so one reader fits both. */
    uint64_t smax = read_or0(dir, "memory.swap.max"), mmax = read_or0(dir, "memory.max");
    uint64_t limit = smax == UINT64_MAX || mmax == UINT64_MAX ? UINT64_MAX : smax + mmax;
    json_object_set_new(mem, "swap",
                        json_pack("{s:I,s:I,s:I}", "usage",
                                  clamp(read_or0(dir, "memory.swap.current") + read_or0(dir, "memory.current")),
                                  "limit", clamp(limit), "failcnt",
                                  clamp(event_count(dir, "memory.swap.events", "max"))));
  }
  json_object_set_new(out, "memory", mem);
  return 0;
}

static int stats_pids(const char *dir, json_t *out) {
  if (!cg_exists(dir, "pids.current")) return 0;
  uint64_t limit = read_or0(dir, "pids.max");
  json_t *p = json_pack("{s:I}", "current", clamp(read_or0(dir, "pids.current")));
  if (limit != UINT64_MAX) json_object_set_new(p, "limit", json_integer(clamp(limit)));
  json_object_set_new(out, "pids", p);
  return 0;
}

static int stats_io(const char *dir, json_t *out) {
  cleanup_free char *s = NULL;
  berth_error ignored;
  if (cg_read(dir, "io.stat", &s, &ignored) < 0) return 0;
  json_t *bytes = json_array(), *ios = json_array();
  for (char *line = s; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
    unsigned maj, min;
    if (sscanf(line, "%u:%u", &maj, &min) != 2) continue;
    uint64_t v;
    char *end = strchr(line, '\n');
    if (end) *end = '\0';
    static const struct { const char *key, *op; bool bytes; } f[] = {
        {"rbytes=", "Read", true}, {"wbytes=", "Write", true}, {"rios=", "Read", false}, {"wios=", "Write", false}};
    for (size_t i = 0; i < BERTH_ARRAY_LEN(f); i++) {
      char *p = strstr(line, f[i].key);
      if (!p) continue;
      v = strtoull(p + strlen(f[i].key), NULL, 10);
      json_array_append_new(f[i].bytes ? bytes : ios,
                            json_pack("{s:i,s:i,s:s,s:I}", "major", maj, "minor", min, "op", f[i].op, "value", clamp(v)));
    }
    if (end) *end = '\n';
  }
  json_object_set_new(out, "blkio", json_pack("{s:o,s:o}", "ioServiceBytesRecursive", bytes, "ioServicedRecursive", ios));
  return 0;
}

/* hugetlb.<size>.current/max/events for every page size this host has. */
int cg2_stats_hugetlb(const char *dir, json_t *out, berth_error *e) {
  static const char *const sizes[] = {"64KB", "2MB", "32MB", "512MB", "1GB", "16GB"};
  json_t *h = json_object();
  for (size_t i = 0; i < BERTH_ARRAY_LEN(sizes); i++) {
    char cur[64], ev[64];
    snprintf(cur, sizeof cur, "hugetlb.%s.current", sizes[i]);
    if (!cg_exists(dir, cur)) continue;
    snprintf(ev, sizeof ev, "hugetlb.%s.events", sizes[i]);
    /* runc's "max" is v1's peak usage, which v2 does not keep. */
    json_object_set_new(h, sizes[i], json_pack("{s:I,s:I}", "usage", clamp(read_or0(dir, cur)), "failcnt",
                                               clamp(event_count(dir, ev, "max"))));
  }
  if (json_object_size(h)) json_object_set_new(out, "hugetlb", h);
  else json_decref(h);
  return 0;
}

/* ---- operations -------------------------------------------------------- */

static bool v2_exists(const berth_cgroup *cg) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return access(dir, F_OK) == 0;
}

static int v2_create(const berth_cgroup *cg, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  /* A parent can vanish under us when the last sibling's delete removes it
   * (cg_rmdir_parents): start over then. */
  for (int attempt = 0;; attempt++) {
    int rc = cg2_enable_controllers(h->unified, cg->path, e);
    if (rc == 0) rc = cg_mkdir(dir, NULL, e);
    if (rc == 0 || e->errnum != ENOENT || attempt == 5) return rc;
  }
}

static int v2_check(const berth_cgroup *cg, const cg_res *r, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  if (access(dir, F_OK) < 0) return berth_fail_errno(e, "cgroup '%s'", dir);
  if (r->need & (CG_NEED_NET_CLS | CG_NEED_NET_PRIO))
    return berth_fail(e, 0, "linux.resources.network: cgroup v2 has no net_cls or net_prio controller");
  if (r->cpu_rt_runtime.set || r->cpu_rt_period.set)
    return berth_fail(e, 0, "linux.resources.cpu.realtimeRuntime/realtimePeriod: cgroup v2 has no "
                            "real-time group scheduling");
  if (cg2_check_controllers(dir, r->need, e) < 0) return -1;
  int64_t swap;
  if ((r->need & CG_NEED_MEMORY) && cg2_swap_max(r, effective_limit(dir, r), &swap, e) < 0) return -1;
  if (r->unified && check_unified(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_MEMORY) && cg_check_memory_usage(dir, "memory.current", r, e) < 0) return -1;
  return 0;
}

static int v2_apply(const berth_cgroup *cg, const cg_res *r, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  if ((r->need & CG_NEED_CPUSET) && cg2_apply_cpuset(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_MEMORY) && cg2_apply_memory(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_CPU) && cg2_apply_cpu(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_PIDS) && cg2_apply_pids(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_IO) && cg2_apply_io(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_HUGETLB) && cg2_apply_hugetlb(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_RDMA) && cg_apply_rdma(dir, r, e) < 0) return -1;
  if ((r->need & CG_NEED_DEVICES) && cg_bpf_apply_devices(dir, r->devices, r->ndevices, e) < 0) return -1;
  if ((r->need & CG_NEED_UNIFIED) && cg2_apply_unified(dir, r, e) < 0) return -1;
  return 0;
}

static int v2_enter(const berth_cgroup *cg, pid_t pid, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return cg_enter_dir(dir, pid, e);
}

static int v2_freeze(const berth_cgroup *cg, bool frozen, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return cg2_freeze_dir(dir, frozen, e);
}

static int v2_is_frozen(const berth_cgroup *cg, bool *frozen, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return cg2_is_frozen_dir(dir, frozen, e);
}

static int v2_pids(const berth_cgroup *cg, pid_t **pids, size_t *n, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return cg_list_pids(dir, pids, n, e);
}

static int v2_kill_all(const berth_cgroup *cg, int sig, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  if (sig == SIGKILL && cg_exists(dir, "cgroup.kill")) return cg_write(dir, "cgroup.kill", "1", e);
  /* Frozen, no task can fork past the signal. */
  /* A paused container stays paused: only a group we froze is thawed. */
  bool was_frozen;
  if (cg2_is_frozen_dir(dir, &was_frozen, e) < 0) return -1;
  if (!was_frozen && cg2_freeze_dir(dir, true, e) < 0) return -1;
  pid_t *pids;
  size_t n;
  int rc = cg_list_pids(dir, &pids, &n, e);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (kill(pids[i], sig) < 0 && errno != ESRCH) rc = berth_fail_errno(e, "kill %d", (int)pids[i]);
  free(pids);
  berth_error thaw_err;
  bool thaw = !was_frozen || sig == SIGKILL;
  if (thaw && cg2_freeze_dir(dir, false, rc < 0 ? &thaw_err : e) < 0 && rc == 0) rc = -1;
  return rc;
}

static int v2_stats(const berth_cgroup *cg, json_t *out, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  if (access(dir, F_OK) < 0) return berth_fail_errno(e, "cgroup '%s'", dir);
  stats_cpu(dir, out);
  stats_memory(dir, out);
  stats_pids(dir, out);
  stats_io(dir, out);
  json_t *cpus = cg_list_json(dir, "cpuset.cpus.effective");
  if (cpus)
    json_object_set_new(out, "cpuset", json_pack("{s:o,s:o*}", "cpus", cpus, "mems",
                                                 cg_list_json(dir, "cpuset.mems.effective")));
  return cg2_stats_hugetlb(dir, out, e);
}

static int v2_destroy(const berth_cgroup *cg, berth_error *e) {
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  if (cg_rmdir_tree(dir, e) < 0) return -1;
  const struct cg_host *h = cg_host(e);
  if (h) cg_rmdir_parents(h->unified, cg->path);
  return 0;
}

static int v2_mount(const berth_cgroup *cg, const char *target, unsigned long flags, berth_error *e) {
  unsigned long f = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME | MS_NOATIME);
  char dir[PATH_MAX];
  group_dir(cg, dir, sizeof dir);
  return cg_mount_hierarchy("cgroup2", NULL, "", dir, target, f | MS_NOSUID | MS_NODEV | MS_NOEXEC, e);
}

const struct cgroup_ops cg_v2_ops = {
    .exists = v2_exists,
    .create = v2_create,
    .check = v2_check,
    .apply = v2_apply,
    .enter = v2_enter,
    .freeze = v2_freeze,
    .is_frozen = v2_is_frozen,
    .pids = v2_pids,
    .kill_all = v2_kill_all,
    .stats = v2_stats,
    .destroy = v2_destroy,
    .mount = v2_mount,
};
