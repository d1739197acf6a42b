/* cgroup v1: one hierarchy per controller (or per set of co-mounted ones),
 * the group at the same relative path in each. On a hybrid host the cgroup2
 * mount beside them holds the group too: the process is placed there as well,
 * and a controller that only cgroup2 holds (hugetlb on the test hosts) is
 * driven through the v2 writers. */
#include "cgroup_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static bool has_controller(const struct cg_hier *h, const char *name) {
  size_t n = strlen(name);
  for (const char *p = h->controllers; (p = strstr(p, name)) != NULL; p += n)
    if ((p == h->controllers || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return true;
  return false;
}

/* The group's directory in the hierarchy holding controller, or false. */
static bool v1_dir(const berth_cgroup *cg, const char *controller, char *out, size_t outsz) {
  const struct cg_host *h = cg_host(&(berth_error){0});
  if (!h) return false;
  for (size_t i = 0; i < h->nhier; i++)
    if (has_controller(&h->hier[i], controller)) {
      cg_join(out, outsz, h->hier[i].mnt, cg->path);
      return true;
    }
  return false;
}

/* The group's directory on the cgroup2 mount of a hybrid host, or false. */
static bool unified_dir(const berth_cgroup *cg, char *out, size_t outsz) {
  const struct cg_host *h = cg_host(&(berth_error){0});
  if (!h || !h->unified[0]) return false;
  cg_join(out, outsz, h->unified, cg->path);
  return true;
}

/* Resource groups, the v1 controller each needs and its v2 stand-in. */
static const struct {
  unsigned bit;
  const char *v1, *v2, *field;
} groups[] = {
    {CG_NEED_MEMORY, "memory", "memory", "memory"},
    {CG_NEED_CPU, "cpu", "cpu", "cpu"},
    {CG_NEED_CPUSET, "cpuset", "cpuset", "cpu.cpus/cpu.mems"},
    {CG_NEED_PIDS, "pids", "pids", "pids"},
    {CG_NEED_IO, "blkio", "io", "blockIO"},
    {CG_NEED_HUGETLB, "hugetlb", "hugetlb", "hugepageLimits"},
    {CG_NEED_NET_CLS, "net_cls", NULL, "network.classID"},
    {CG_NEED_NET_PRIO, "net_prio", NULL, "network.priorities"},
    {CG_NEED_DEVICES, "devices", NULL, "devices"},
    {CG_NEED_RDMA, "rdma", "rdma", "rdma"},
};

/* Which of r's groups go to cgroup2 on this host (hybrid only). */
static unsigned v2_part(const berth_cgroup *cg, unsigned need) {
  unsigned out = 0;
  char dir[PATH_MAX];
  for (size_t i = 0; i < BERTH_ARRAY_LEN(groups); i++)
    if ((need & groups[i].bit) && !v1_dir(cg, groups[i].v1, dir, sizeof dir) && groups[i].v2)
      out |= groups[i].bit;
  return out;
}

/* ---- create ------------------------------------------------------------ */

/* v1 cpuset groups start empty and refuse tasks until given cpus and mems:
 * copy the parent's into each level that has none. */
static int cpuset_inherit(const char *parent, const char *dir, berth_error *e) {
  static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
  for (size_t i = 0; i < BERTH_ARRAY_LEN(files); i++) {
    cleanup_free char *cur = NULL;
    if (cg_read(dir, files[i], &cur, e) < 0) return -1;
    if (cur[0] != '\n' && cur[0] != '\0') continue;
    cleanup_free char *from = NULL;
    if (cg_read(parent, files[i], &from, e) < 0) return -1;
    if (cg_write(dir, files[i], from, e) < 0) return -1;
  }
  return 0;
}

static int mkdir_levels(const char *root, const char *rel, bool cpuset, berth_error *e) {
  char dir[PATH_MAX], parent[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", root);
  for (const char *p = rel; *p;) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *next = strchr(p, '/');
    size_t len = next ? (size_t)(next - p) : strlen(p);
    snprintf(parent, sizeof parent, "%s", dir);
    size_t used = strlen(dir);
    if (used + 1 + len >= sizeof dir) return berth_fail(e, ENAMETOOLONG, "cgroup '%s%s'", root, rel);
    dir[used] = '/';
    memcpy(dir + used + 1, p, len);
    dir[used + 1 + len] = '\0';
    if (cg_mkdir(dir, NULL, e) < 0) return -1;
    if (cpuset && cpuset_inherit(parent, dir, e) < 0) return -1;
    p += len;
  }
  return 0;
}

static bool v1_exists(const berth_cgroup *cg) {
  const struct cg_host *h = cg_host(&(berth_error){0});
  char dir[PATH_MAX];
  if (!h) return false;
  for (size_t i = 0; i < h->nhier; i++)
    if (cg_join(dir, sizeof dir, h->hier[i].mnt, cg->path) && access(dir, F_OK) == 0) return true;
  return unified_dir(cg, dir, sizeof dir) && access(dir, F_OK) == 0;
}

static int v1_create(const berth_cgroup *cg, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  int rc = 0;
  /* A parent can vanish under us when the last sibling's delete removes it
   * (cg_rmdir_parents): start over then. */
  for (int attempt = 0; attempt < 5; attempt++) {
    rc = 0;
    for (size_t i = 0; rc == 0 && i < h->nhier; i++)
      rc = mkdir_levels(h->hier[i].mnt, cg->path, has_controller(&h->hier[i], "cpuset"), e);
    if (rc == 0 && h->unified[0]) {
      char dir[PATH_MAX];
      cg_join(dir, sizeof dir, h->unified, cg->path);
      rc = cg2_enable_controllers(h->unified, cg->path, e);
      if (rc == 0) rc = cg_mkdir(dir, NULL, e);
    }
    if (rc == 0 || e->errnum != ENOENT) break;
  }
  return rc;
}

/* ---- check and apply --------------------------------------------------- */

static int need_file(const char *dir, const char *file, const char *field, berth_error *e) {
  if (cg_exists(dir, file)) return 0;
  return berth_fail(e, 0, "linux.resources.%s: this host's kernel has no '%s' (in '%s')", field, file, dir);
}

static int v1_check(const berth_cgroup *cg, const cg_res *r, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  char dir[PATH_MAX], udir[PATH_MAX];
  bool have_unified = unified_dir(cg, udir, sizeof udir);
  cleanup_free char *v2have = NULL;
  if (have_unified) {
    berth_error ignored;
    if (cg_read(udir, "cgroup.controllers", &v2have, &ignored) < 0) v2have = strdup("");
  }
  for (size_t i = 0; i < BERTH_ARRAY_LEN(groups); i++) {
    if (!(r->need & groups[i].bit) || v1_dir(cg, groups[i].v1, dir, sizeof dir)) continue;
    if (groups[i].v2 && v2have) {
      if (cg2_check_controllers(udir, groups[i].bit, e) < 0) return -1;
      continue;
    }
    return berth_fail(e, 0,
                      "linux.resources.%s asks for the '%s' cgroup controller, which this host has not "
                      "mounted (no cgroup hierarchy under %s holds it)",
                      groups[i].field, groups[i].v1, CG_ROOT);
  }
  unsigned v2 = v2_part(cg, r->need);
  /* Files that only some kernels have, checked before anything is written. */
  if ((r->need & CG_NEED_MEMORY) && !(v2 & CG_NEED_MEMORY) && v1_dir(cg, "memory", dir, sizeof dir)) {
    if (r->mem_swap.set && need_file(dir, "memory.memsw.limit_in_bytes", "memory.swap (swap accounting)", e) < 0)
      return -1;
    if (r->mem_kernel.set && need_file(dir, "memory.kmem.limit_in_bytes", "memory.kernel", e) < 0) return -1;
    if (r->mem_kernel_tcp.set && need_file(dir, "memory.kmem.tcp.limit_in_bytes", "memory.kernelTCP", e) < 0)
      return -1;
    if (cg_check_memory_usage(dir, "memory.usage_in_bytes", r, e) < 0) return -1;
  }
  if ((r->need & CG_NEED_MEMORY) && (v2 & CG_NEED_MEMORY) && cg_check_memory_usage(udir, "memory.current", r, e) < 0)
    return -1;
  if ((r->need & CG_NEED_MEMORY) && (v2 & CG_NEED_MEMORY)) {
    int64_t swap;
    if (cg2_swap_max(r, r->mem_limit.set ? r->mem_limit.v : -1, &swap, e) < 0) return -1;
  }
  if ((r->need & CG_NEED_CPU) && !(v2 & CG_NEED_CPU) && v1_dir(cg, "cpu", dir, sizeof dir)) {
    if (r->cpu_burst.set && need_file(dir, "cpu.cfs_burst_us", "cpu.burst", e) < 0) return -1;
    if (r->cpu_idle.set && need_file(dir, "cpu.idle", "cpu.idle", e) < 0) return -1;
    if ((r->cpu_rt_runtime.set || r->cpu_rt_period.set) &&
        need_file(dir, "cpu.rt_runtime_us", "cpu.realtimeRuntime (CONFIG_RT_GROUP_SCHED)", e) < 0)
      return -1;
  }
  if ((r->need & CG_NEED_IO) && !(v2 & CG_NEED_IO) && v1_dir(cg, "blkio", dir, sizeof dir)) {
    bool bfq = cg_exists(dir, "blkio.bfq.weight");
    if ((r->blkio_weight.set || r->blkio_weight_device) && !bfq &&
        need_file(dir, "blkio.weight", "blockIO.weight (no proportional I/O scheduler)", e) < 0)
      return -1;
    if (r->blkio_leaf_weight.set && need_file(dir, "blkio.leaf_weight", "blockIO.leafWeight", e) < 0) return -1;
  }
  if (r->unified) {
    if (!have_unified)
      return berth_fail(e, 0, "linux.resources.unified: this host has no cgroup v2 mount (cgroup v1 only)");
    const char *key;
    json_t *v;
    json_object_foreach(r->unified, key, v) {
      if (!cg_exists(udir, key))
        return berth_fail(e, 0, "linux.resources.unified.%s: the cgroup v2 group '%s' has no such file "
                                "(on this hybrid host cgroup v2 holds only: %s)", key, udir,
                          v2have && *v2have ? strtok(v2have, "\n") : "no controllers");
    }
  }
  return 0;
}

static int write_i64(const char *dir, const char *file, int64_t v, berth_error *e) {
  return cg_writef(dir, file, e, "%" PRId64, v);
}

static int apply_memory(const char *dir, const cg_res *r, berth_error *e) {
  if (r->mem_limit.set && r->mem_swap.set) {
    /* memsw may never be below the limit: order the two writes to keep
     * that true in between. */
    berth_error first;
    if (write_i64(dir, "memory.limit_in_bytes", r->mem_limit.v, &first) < 0) {
      if (first.errnum != EINVAL) {
        *e = first;
        return -1;
      }
      if (write_i64(dir, "memory.memsw.limit_in_bytes", r->mem_swap.v, e) < 0) return -1;
      if (write_i64(dir, "memory.limit_in_bytes", r->mem_limit.v, e) < 0) return -1;
    } else if (write_i64(dir, "memory.memsw.limit_in_bytes", r->mem_swap.v, e) < 0) {
      return -1;
    }
  } else if (r->mem_limit.set) {
    if (write_i64(dir, "memory.limit_in_bytes", r->mem_limit.v, e) < 0) {
      if (e->errnum == EINVAL && cg_exists(dir, "memory.memsw.limit_in_bytes"))
        return berth_wrap(e, "linux.resources.memory.limit (above the group's memory+swap limit? set "
                             "memory.swap with it)");
      return -1;
    }
  } else if (r->mem_swap.set) {
    if (write_i64(dir, "memory.memsw.limit_in_bytes", r->mem_swap.v, e) < 0) return -1;
  }
  if (r->mem_reservation.set && write_i64(dir, "memory.soft_limit_in_bytes", r->mem_reservation.v, e) < 0)
    return -1;
  if (r->mem_kernel.set && write_i64(dir, "memory.kmem.limit_in_bytes", r->mem_kernel.v, e) < 0) return -1;
  if (r->mem_kernel_tcp.set && write_i64(dir, "memory.kmem.tcp.limit_in_bytes", r->mem_kernel_tcp.v, e) < 0)
    return -1;
  if (r->mem_swappiness.set && write_i64(dir, "memory.swappiness", r->mem_swappiness.v, e) < 0) return -1;
  if (r->mem_disable_oom.set && cg_write(dir, "memory.oom_control", r->mem_disable_oom.v ? "1" : "0", e) < 0)
    return -1;
  if (r->mem_use_hierarchy.set) {
    /* Kernels since 5.18 fix it at 1 and refuse any write, even of 1. */
    uint64_t cur;
    if (cg_read_u64(dir, "memory.use_hierarchy", &cur, e) < 0) return -1;
    if ((int64_t)cur != r->mem_use_hierarchy.v &&
        write_i64(dir, "memory.use_hierarchy", r->mem_use_hierarchy.v, e) < 0)
      return -1;
  }
  return 0;
}

static int apply_cpu(const char *dir, const cg_res *r, berth_error *e) {
  if (r->cpu_shares.set && write_i64(dir, "cpu.shares", r->cpu_shares.v, e) < 0) return -1;
  if (r->cpu_period.set && write_i64(dir, "cpu.cfs_period_us", r->cpu_period.v, e) < 0) return -1;
  if (r->cpu_quota.set && write_i64(dir, "cpu.cfs_quota_us", r->cpu_quota.v, e) < 0) return -1;
  if (r->cpu_burst.set && write_i64(dir, "cpu.cfs_burst_us", r->cpu_burst.v, e) < 0) return -1;
  /* The runtime must fit the period: set the period first. */
  if (r->cpu_rt_period.set && write_i64(dir, "cpu.rt_period_us", r->cpu_rt_period.v, e) < 0) return -1;
  if (r->cpu_rt_runtime.set && write_i64(dir, "cpu.rt_runtime_us", r->cpu_rt_runtime.v, e) < 0) return -1;
  if (r->cpu_idle.set && write_i64(dir, "cpu.idle", r->cpu_idle.v, e) < 0) return -1;
  return 0;
}

static int apply_blkio(const char *dir, const cg_res *r, berth_error *e) {
  bool bfq = !cg_exists(dir, "blkio.weight") && cg_exists(dir, "blkio.bfq.weight");
  const char *wfile = bfq ? "blkio.bfq.weight" : "blkio.weight";
  if (r->blkio_weight.set && write_i64(dir, wfile, r->blkio_weight.v, e) < 0) return -1;
  if (r->blkio_leaf_weight.set && write_i64(dir, "blkio.leaf_weight", r->blkio_leaf_weight.v, e) < 0) return -1;
  for (size_t i = 0; i < json_array_size(r->blkio_weight_device); i++) {
    json_t *d = json_array_get(r->blkio_weight_device, i);
    json_int_t maj = json_integer_value(json_object_get(d, "major"));
    json_int_t min = json_integer_value(json_object_get(d, "minor"));
    json_int_t w = json_integer_value(json_object_get(d, "weight"));
    json_int_t lw = json_integer_value(json_object_get(d, "leafWeight"));
    const char *wdev = bfq ? "blkio.bfq.weight" : "blkio.weight_device";
    if (w && cg_writef(dir, wdev, e, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT " %" JSON_INTEGER_FORMAT,
                       maj, min, w) < 0)
      return -1;
    if (lw && cg_writef(dir, "blkio.leaf_weight_device", e,
                        "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT " %" JSON_INTEGER_FORMAT, maj, min, lw) < 0)
      return -1;
  }
  for (int k = 0; k < 4; k++)
    for (size_t i = 0; i < json_array_size(r->blkio_throttle[k]); i++) {
      json_t *d = json_array_get(r->blkio_throttle[k], i);
      if (cg_writef(dir, cg_v1_throttle_files[k], e,
                    "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT " %" JSON_INTEGER_FORMAT,
                    json_integer_value(json_object_get(d, "major")),
                    json_integer_value(json_object_get(d, "minor")),
                    json_integer_value(json_object_get(d, "rate"))) < 0)
        return berth_wrap(e, "linux.resources.blockIO.%s[%zu]", cg_throttle_keys[k], i);
    }
  return 0;
}

static int apply_hugetlb(const char *dir, const cg_res *r, berth_error *e) {
  for (size_t i = 0; i < json_array_size(r->hugepages); i++) {
    json_t *h = json_array_get(r->hugepages, i);
    char file[64];
    snprintf(file, sizeof file, "hugetlb.%s.limit_in_bytes", json_str(h, "pageSize"));
    if (cg_writef(dir, file, e, "%" JSON_INTEGER_FORMAT, json_integer_value(json_object_get(h, "limit"))) < 0)
      return -1;
  }
  return 0;
}

static int apply_network(const berth_cgroup *cg, const cg_res *r, berth_error *e) {
  char dir[PATH_MAX];
  if (r->net_class_id.set && v1_dir(cg, "net_cls", dir, sizeof dir) &&
      write_i64(dir, "net_cls.classid", r->net_class_id.v, e) < 0)
    return -1;
  if (r->net_priorities && v1_dir(cg, "net_prio", dir, sizeof dir))
    for (size_t i = 0; i < json_array_size(r->net_priorities); i++) {
      json_t *p = json_array_get(r->net_priorities, i);
      if (cg_writef(dir, "net_prio.ifpriomap", e, "%s %" JSON_INTEGER_FORMAT, json_str(p, "name"),
                    json_integer_value(json_object_get(p, "priority"))) < 0)
        return -1;
    }
  return 0;
}

static void format_rule(const struct cg_dev_rule *d, char *out, size_t outsz) {
  char maj[24] = "*", min[24] = "*", acc[4];
  size_t n = 0;
  if (d->major >= 0) snprintf(maj, sizeof maj, "%" PRId64, d->major);
  if (d->minor >= 0) snprintf(min, sizeof min, "%" PRId64, d->minor);
  if (d->access & CG_ACC_READ) acc[n++] = 'r';
  if (d->access & CG_ACC_WRITE) acc[n++] = 'w';
  if (d->access & CG_ACC_MKNOD) acc[n++] = 'm';
  acc[n] = '\0';
  snprintf(out, outsz, "%c %s:%s %s", d->type, maj, min, acc);
}

/* The kernel's v1 device state when it denies by default: exceptions keyed
 * by (type, major, minor), -1 for '*', with their access bits. */
struct dev_entry {
  char type;
  int64_t major, minor;
  unsigned access;
};

struct dev_list {
  struct dev_entry *e;
  size_t n;
};

static struct dev_entry *dev_find(struct dev_list *l, char type, int64_t major, int64_t minor) {
  for (size_t i = 0; i < l->n; i++)
    if (l->e[i].type == type && l->e[i].major == major && l->e[i].minor == minor) return &l->e[i];
  return NULL;
}

/* What the rules leave after "deny all" when the result still denies by
 * default; false when some rule allows everything (then only a full replay
 * says what the kernel will hold). */
static bool dev_target(const cg_res *r, struct dev_list *out) {
  out->n = 0;
  for (size_t i = 0; i < r->ndevices; i++) {
    const struct cg_dev_rule *d = &r->devices[i];
    if (d->type == 'a') {
      if (d->allow) return false;
      out->n = 0;
      continue;
    }
    struct dev_entry *x = dev_find(out, d->type, d->major, d->minor);
    if (d->allow) {
      if (!x) {
        x = &out->e[out->n++];
        *x = (struct dev_entry){d->type, d->major, d->minor, 0};
      }
      x->access |= d->access;
    } else if (x) {
      x->access &= ~d->access;
    }
  }
  return true;
}

/* devices.list of a group that denies by default; false when it allows by
 * default ("a *:* rwm"), whose exceptions the kernel does not show. */
static bool dev_current(const char *text, struct dev_list *out) {
  out->n = 0;
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    char type, maj[24], min[24], acc[8];
    if (sscanf(p, "%c %23[^:]:%23s %7s", &type, maj, min, acc) != 4) continue;
    if (type == 'a') return false;
    struct dev_entry x = {type, maj[0] == '*' ? -1 : strtoll(maj, NULL, 10),
                          min[0] == '*' ? -1 : strtoll(min, NULL, 10), 0};
    for (const char *c = acc; *c; c++)
      x.access |= *c == 'r' ? CG_ACC_READ : *c == 'w' ? CG_ACC_WRITE : *c == 'm' ? CG_ACC_MKNOD : 0;
    out->e[out->n++] = x;
  }
  return true;
}

static int dev_write(const char *dir, bool allow, const struct dev_entry *x, unsigned access, berth_error *e) {
  struct cg_dev_rule rule = {allow, x->type, x->major, x->minor, access};
  char text[96];
  format_rule(&rule, text, sizeof text);
  return cg_write(dir, allow ? "devices.allow" : "devices.deny", text, e);
}

static int apply_devices(const char *dir, const cg_res *r, berth_error *e) {
  /* A group that already denies by default and should go on doing so (an
   * update) changes by difference: first allow what is new, then take away
   * what is gone, so a device kept in the list is never denied in between. */
  cleanup_free char *cur = NULL;
  if (cg_read(dir, "devices.list", &cur, e) < 0) return -1;
  size_t lines = 1;
  for (const char *c = cur; *c; c++) lines += *c == '\n';
  cleanup_free struct dev_entry *a = calloc(r->ndevices + 1, sizeof *a);
  cleanup_free struct dev_entry *b = calloc(lines, sizeof *b);
  if (!a || !b) return berth_fail(e, ENOMEM, "device rules for '%s'", dir);
  struct dev_list want = {a, 0}, have = {b, 0};
  if (dev_target(r, &want) && dev_current(cur, &have)) {
    for (size_t i = 0; i < want.n; i++) {
      struct dev_entry *h = dev_find(&have, want.e[i].type, want.e[i].major, want.e[i].minor);
      unsigned add = want.e[i].access & ~(h ? h->access : 0);
      if (add && dev_write(dir, true, &want.e[i], add, e) < 0) return berth_wrap(e, "linux.resources.devices");
    }
    for (size_t i = 0; i < have.n; i++) {
      struct dev_entry *w = dev_find(&want, have.e[i].type, have.e[i].major, have.e[i].minor);
      unsigned drop = have.e[i].access & ~(w ? w->access : 0);
      if (drop && dev_write(dir, false, &have.e[i], drop, e) < 0) return berth_wrap(e, "linux.resources.devices");
    }
    return 0;
  }
  /* Otherwise deny everything, then replay the rules in order (a later rule
   * overrides an earlier one), as runc does. */
  if (cg_write(dir, "devices.deny", "a", e) < 0) return -1;
  for (size_t i = 0; i < r->ndevices; i++) {
    char rule[96];
    format_rule(&r->devices[i], rule, sizeof rule);
    if (cg_write(dir, r->devices[i].allow ? "devices.allow" : "devices.deny", rule, e) < 0)
      return berth_wrap(e, "linux.resources.devices[%zu]", i);
  }
  return 0;
}

static int v1_apply(const berth_cgroup *cg, const cg_res *r, berth_error *e) {
  char dir[PATH_MAX], udir[PATH_MAX];
  unsigned v2 = v2_part(cg, r->need);
  bool have_unified = unified_dir(cg, udir, sizeof udir);
  if (v2 && !have_unified) return berth_fail(e, ENOENT, "no cgroup v2 mount for '%s'", cg->path);
  if (r->need & CG_NEED_CPUSET) {
    if (v2 & CG_NEED_CPUSET) {
      if (cg2_apply_cpuset(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "cpuset", dir, sizeof dir)) {
      if (r->mems && cg_write(dir, "cpuset.mems", r->mems, e) < 0) return -1;
      if (r->cpus && cg_write(dir, "cpuset.cpus", r->cpus, e) < 0) return -1;
    }
  }
  if (r->need & CG_NEED_MEMORY) {
    if (v2 & CG_NEED_MEMORY) {
      if (cg2_apply_memory(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "memory", dir, sizeof dir) && apply_memory(dir, r, e) < 0) {
      return -1;
    }
  }
  if (r->need & CG_NEED_CPU) {
    if (v2 & CG_NEED_CPU) {
      if (cg2_apply_cpu(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "cpu", dir, sizeof dir) && apply_cpu(dir, r, e) < 0) {
      return -1;
    }
  }
  if (r->need & CG_NEED_PIDS) {
    if (v2 & CG_NEED_PIDS) {
      if (cg2_apply_pids(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "pids", dir, sizeof dir) &&
               (r->pids_limit.v < 0 ? cg_write(dir, "pids.max", "max", e)
                                    : write_i64(dir, "pids.max", r->pids_limit.v, e)) < 0) {
      return -1;
    }
  }
  if (r->need & CG_NEED_IO) {
    if (v2 & CG_NEED_IO) {
      if (cg2_apply_io(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "blkio", dir, sizeof dir) && apply_blkio(dir, r, e) < 0) {
      return -1;
    }
  }
  if (r->need & CG_NEED_HUGETLB) {
    if (v2 & CG_NEED_HUGETLB) {
      if (cg2_apply_hugetlb(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "hugetlb", dir, sizeof dir) && apply_hugetlb(dir, r, e) < 0) {
      return -1;
    }
  }
  if ((r->need & (CG_NEED_NET_CLS | CG_NEED_NET_PRIO)) && apply_network(cg, r, e) < 0) return -1;
  if (r->need & CG_NEED_RDMA) {
    if (v2 & CG_NEED_RDMA) {
      if (cg_apply_rdma(udir, r, e) < 0) return -1;
    } else if (v1_dir(cg, "rdma", dir, sizeof dir) && cg_apply_rdma(dir, r, e) < 0) {
      return -1;
    }
  }
  if ((r->need & CG_NEED_DEVICES) && v1_dir(cg, "devices", dir, sizeof dir) && apply_devices(dir, r, e) < 0)
    return -1;
  if (r->unified && cg2_apply_unified(udir, r, e) < 0) return -1;
  return 0;
}

/* ---- the rest ---------------------------------------------------------- */

static int v1_enter(const berth_cgroup *cg, pid_t pid, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  char dir[PATH_MAX];
  for (size_t i = 0; i < h->nhier; i++) {
    cg_join(dir, sizeof dir, h->hier[i].mnt, cg->path);
    if (cg_enter_dir(dir, pid, e) < 0) return -1;
  }
  if (unified_dir(cg, dir, sizeof dir) && cg_enter_dir(dir, pid, e) < 0) return -1;
  return 0;
}

static int freezer_wait(const char *dir, const char *want, berth_error *e) {
  for (int i = 0; i < 5000; i++) {
    cleanup_free char *s = NULL;
    if (cg_read(dir, "freezer.state", &s, e) < 0) return -1;
    if (strncmp(s, want, strlen(want)) == 0) return 0;
    /* A task in an uninterruptible sleep can leave FREEZING stuck: asking
     * again retries the tasks that have not stopped. */
    if (i % 100 == 99 && cg_write(dir, "freezer.state", want, e) < 0) return -1;
    struct timespec ts = {0, (i < 100 ? 100 : 1000) * 1000L};
    nanosleep(&ts, NULL);
  }
  return berth_fail(e, ETIMEDOUT, "'%s' did not become %s", dir, want);
}

static int v1_freeze(const berth_cgroup *cg, bool frozen, berth_error *e) {
  char dir[PATH_MAX];
  if (v1_dir(cg, "freezer", dir, sizeof dir)) {
    const char *want = frozen ? "FROZEN" : "THAWED";
    if (cg_write(dir, "freezer.state", want, e) < 0) return -1;
    return freezer_wait(dir, want, e);
  }
  if (unified_dir(cg, dir, sizeof dir)) return cg2_freeze_dir(dir, frozen, e);
  return berth_fail(e, ENOTSUP, "the freezer cgroup controller is not mounted on this host");
}

static int v1_is_frozen(const berth_cgroup *cg, bool *frozen, berth_error *e) {
  char dir[PATH_MAX];
  if (v1_dir(cg, "freezer", dir, sizeof dir)) {
    cleanup_free char *s = NULL;
    if (cg_read(dir, "freezer.state", &s, e) < 0) return -1;
    *frozen = strncmp(s, "FROZEN", 6) == 0;
    return 0;
  }
  if (unified_dir(cg, dir, sizeof dir)) return cg2_is_frozen_dir(dir, frozen, e);
  *frozen = false;
  return 0;
}

static int v1_pids(const berth_cgroup *cg, pid_t **pids, size_t *n, berth_error *e) {
  char dir[PATH_MAX];
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  if (!v1_dir(cg, "pids", dir, sizeof dir) && !v1_dir(cg, "freezer", dir, sizeof dir)) {
    if (h->nhier == 0) return berth_fail(e, ENOENT, "no cgroup hierarchy");
    cg_join(dir, sizeof dir, h->hier[0].mnt, cg->path);
  }
  return cg_list_pids(dir, pids, n, e);
}

static int v1_kill_all(const berth_cgroup *cg, int sig, berth_error *e) {
  /* An empty group (the container has exited: every delete of a stopped
   * container) has nothing to signal, and no task can enter it by fork.
   * Freezing it anyway costs a kernel text patch on every CPU, twice (the
   * freezer's static key goes on and off): 3% of a `run` here. */
  pid_t *present = NULL;
  size_t count = 0;
  if (v1_pids(cg, &present, &count, e) < 0) return -1;
  free(present);
  if (count == 0) return 0;
  /* Frozen, no task can fork past the signal; it lands on thaw. */
  char fdir[PATH_MAX];
  bool freezer = v1_dir(cg, "freezer", fdir, sizeof fdir);
  /* A paused container stays paused, except that SIGKILL must thaw it:
   * v1 delivers no signal, not even SIGKILL, to a frozen task. */
  bool was_frozen = false;
  if (freezer && v1_is_frozen(cg, &was_frozen, e) < 0) return -1;
  if (freezer && !was_frozen && v1_freeze(cg, true, e) < 0) return -1;
  freezer = freezer && (!was_frozen || sig == SIGKILL);
  pid_t *pids = NULL;
  size_t n = 0;
  int rc = v1_pids(cg, &pids, &n, e);
  for (size_t i = 0; rc == 0 && i < n; i++)
    if (kill(pids[i], sig) < 0 && errno != ESRCH) rc = berth_fail_errno(e, "kill %d", (int)pids[i]);
  free(pids);
  berth_error thaw_err;
  if (freezer && v1_freeze(cg, false, rc < 0 ? &thaw_err : e) < 0 && rc == 0) rc = -1;
  return rc;
}

static json_int_t clamp(uint64_t v) { return v > INT64_MAX ? INT64_MAX : (json_int_t)v; }

static uint64_t read_or0(const char *dir, const char *file) {
  uint64_t v = 0;
  berth_error ignored;
  if (cg_read_u64(dir, file, &v, &ignored) < 0) return 0;
  return v;
}

static json_t *u64_list(const char *dir, const char *file) {
  cleanup_free char *s = NULL;
  berth_error ignored;
  json_t *a = json_array();
  if (cg_read(dir, file, &s, &ignored) < 0) return a;
  char *p = s, *end;
  for (;;) {
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p) break;
    json_array_append_new(a, json_integer(clamp(v)));
    p = end;
  }
  return a;
}

static void stats_cpu(const berth_cgroup *cg, json_t *out) {
  char dir[PATH_MAX];
  json_t *cpu = json_object(), *usage = json_object();
  if (v1_dir(cg, "cpuacct", dir, sizeof dir)) {
    json_object_set_new(usage, "total", json_integer(clamp(read_or0(dir, "cpuacct.usage"))));
    json_object_set_new(usage, "percpu", u64_list(dir, "cpuacct.usage_percpu"));
    if (cg_exists(dir, "cpuacct.usage_percpu_sys")) {
      json_object_set_new(usage, "percpu_kernel", u64_list(dir, "cpuacct.usage_percpu_sys"));
      json_object_set_new(usage, "percpu_user", u64_list(dir, "cpuacct.usage_percpu_user"));
    }
    cleanup_free char *st = NULL;
    berth_error ignored;
    uint64_t user = 0, sys = 0;
    if (cg_read(dir, "cpuacct.stat", &st, &ignored) == 0) {
      cg_kv_get(st, "user", &user);
      cg_kv_get(st, "system", &sys);
    }
    /* cpuacct.stat counts USER_HZ ticks. */
    long hz = sysconf(_SC_CLK_TCK);
    uint64_t ns = 1000000000ull / (uint64_t)(hz > 0 ? hz : 100);
    json_object_set_new(usage, "kernel", json_integer(clamp(sys * ns)));
    json_object_set_new(usage, "user", json_integer(clamp(user * ns)));
  }
  json_object_set_new(cpu, "usage", usage);
  if (v1_dir(cg, "cpu", dir, sizeof dir)) {
    cleanup_free char *st = NULL;
    berth_error ignored;
    uint64_t periods = 0, throttled = 0, ttime = 0;
    if (cg_read(dir, "cpu.stat", &st, &ignored) == 0) {
      cg_kv_get(st, "nr_periods", &periods);
      cg_kv_get(st, "nr_throttled", &throttled);
      cg_kv_get(st, "throttled_time", &ttime);
    }
    json_object_set_new(cpu, "throttling", json_pack("{s:I,s:I,s:I}", "periods", clamp(periods),
                                                     "throttledPeriods", clamp(throttled),
                                                     "throttledTime", clamp(ttime)));
  }
  json_object_set_new(out, "cpu", cpu);
}

static json_t *mem_entry(const char *dir, const char *prefix) {
  char f[128];
  uint64_t usage, max, limit, failcnt;
  snprintf(f, sizeof f, "%s.usage_in_bytes", prefix);
  usage = read_or0(dir, f);
  snprintf(f, sizeof f, "%s.max_usage_in_bytes", prefix);
  max = read_or0(dir, f);
  snprintf(f, sizeof f, "%s.limit_in_bytes", prefix);
  limit = read_or0(dir, f);
  snprintf(f, sizeof f, "%s.failcnt", prefix);
  failcnt = read_or0(dir, f);
  return json_pack("{s:I,s:I,s:I,s:I}", "usage", clamp(usage), "max", clamp(max), "limit", clamp(limit),
                   "failcnt", clamp(failcnt));
}

static void stats_memory(const berth_cgroup *cg, json_t *out) {
  char dir[PATH_MAX];
  if (!v1_dir(cg, "memory", dir, sizeof dir)) return;
  json_t *mem = json_object();
  cleanup_free char *st = NULL;
  berth_error ignored;
  json_t *raw = json_object();
  uint64_t cache = 0;
  if (cg_read(dir, "memory.stat", &st, &ignored) == 0) {
    char key[128];
    unsigned long long v;
    for (const char *p = st; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
      if (sscanf(p, "%127s %llu", key, &v) == 2) json_object_set_new(raw, key, json_integer(clamp(v)));
    cg_kv_get(st, "cache", &cache);
  }
  json_object_set_new(mem, "cache", json_integer(clamp(cache)));
  json_object_set_new(mem, "usage", mem_entry(dir, "memory"));
  if (cg_exists(dir, "memory.memsw.usage_in_bytes")) json_object_set_new(mem, "swap", mem_entry(dir, "memory.memsw"));
  if (cg_exists(dir, "memory.kmem.usage_in_bytes")) json_object_set_new(mem, "kernel", mem_entry(dir, "memory.kmem"));
  if (cg_exists(dir, "memory.kmem.tcp.usage_in_bytes"))
    json_object_set_new(mem, "kernelTCP", mem_entry(dir, "memory.kmem.tcp"));
  json_object_set_new(mem, "raw", raw);
  json_object_set_new(out, "memory", mem);
}

static json_t *blkio_entries(const char *dir, const char *file) {
  json_t *a = json_array();
  cleanup_free char *s = NULL;
  berth_error ignored;
  if (cg_read(dir, file, &s, &ignored) < 0) return a;
  for (const char *p = s; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    unsigned maj, min;
    char op[32];
    unsigned long long v;
    if (sscanf(p, "%u:%u %31s %llu", &maj, &min, op, &v) == 4)
      json_array_append_new(a, json_pack("{s:i,s:i,s:s,s:I}", "major", maj, "minor", min, "op", op, "value", clamp(v)));
  }
  return a;
}

static void stats_blkio(const berth_cgroup *cg, json_t *out) {
  char dir[PATH_MAX];
  if (!v1_dir(cg, "blkio", dir, sizeof dir)) return;
  json_object_set_new(out, "blkio",
                      json_pack("{s:o,s:o}", "ioServiceBytesRecursive",
                                blkio_entries(dir, "blkio.throttle.io_service_bytes_recursive"),
                                "ioServicedRecursive", blkio_entries(dir, "blkio.throttle.io_serviced_recursive")));
}

static void stats_hugetlb_v1(const char *dir, json_t *out) {
  static const char *const sizes[] = {"64KB", "2MB", "32MB", "512MB", "1GB", "16GB"};
  json_t *h = json_object();
  for (size_t i = 0; i < BERTH_ARRAY_LEN(sizes); i++) {
    char f[64];
    snprintf(f, sizeof f, "hugetlb.%s", sizes[i]);
    char u[96];
    snprintf(u, sizeof u, "%s.usage_in_bytes", f);
    if (!cg_exists(dir, u)) continue;
    char m[96], fc[96];
    snprintf(m, sizeof m, "%s.max_usage_in_bytes", f);
    snprintf(fc, sizeof fc, "%s.failcnt", f);
    json_object_set_new(h, sizes[i], json_pack("{s:I,s:I,s:I}", "usage", clamp(read_or0(dir, u)), "max",
                                               clamp(read_or0(dir, m)), "failcnt", clamp(read_or0(dir, fc))));
  }
  json_object_set_new(out, "hugetlb", h);
}

static int v1_stats(const berth_cgroup *cg, json_t *out, berth_error *e) {
  char dir[PATH_MAX];
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  if (h->nhier > 0) {
    cg_join(dir, sizeof dir, h->hier[0].mnt, cg->path);
    if (access(dir, F_OK) < 0) return berth_fail_errno(e, "cgroup '%s'", dir);
  }
  stats_cpu(cg, out);
  stats_memory(cg, out);
  if (v1_dir(cg, "pids", dir, sizeof dir)) {
    uint64_t limit = read_or0(dir, "pids.max");
    json_t *p = json_pack("{s:I}", "current", clamp(read_or0(dir, "pids.current")));
    if (limit != UINT64_MAX) json_object_set_new(p, "limit", json_integer(clamp(limit)));
    json_object_set_new(out, "pids", p);
  }
  stats_blkio(cg, out);
  if (v1_dir(cg, "cpuset", dir, sizeof dir)) {
    json_t *cpus = cg_list_json(dir, "cpuset.cpus");
    if (cpus)
      json_object_set_new(out, "cpuset", json_pack("{s:o,s:o*}", "cpus", cpus, "mems", cg_list_json(dir, "cpuset.mems")));
  }
  if (v1_dir(cg, "hugetlb", dir, sizeof dir)) stats_hugetlb_v1(dir, out);
  else if (unified_dir(cg, dir, sizeof dir) && cg2_stats_hugetlb(dir, out, e) < 0) return -1;
  return 0;
}

static int v1_destroy(const berth_cgroup *cg, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  char dir[PATH_MAX];
  int rc = 0;
  berth_error later;
  for (size_t i = 0; i < h->nhier; i++) {
    cg_join(dir, sizeof dir, h->hier[i].mnt, cg->path);
    if (cg_rmdir_tree(dir, rc < 0 ? &later : e) < 0) rc = -1;
    else cg_rmdir_parents(h->hier[i].mnt, cg->path);
  }
  if (unified_dir(cg, dir, sizeof dir)) {
    if (cg_rmdir_tree(dir, rc < 0 ? &later : e) < 0) rc = -1;
    else cg_rmdir_parents(h->unified, cg->path);
  }
  return rc;
}

static int v1_mount(const berth_cgroup *cg, const char *target, unsigned long flags, berth_error *e) {
  const struct cg_host *h = cg_host(e);
  if (!h) return -1;
  unsigned long f = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME | MS_NOATIME);
  f |= MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount("tmpfs", target, "tmpfs", f & ~MS_RDONLY, "mode=755") < 0)
    return berth_fail_errno(e, "mount tmpfs on '%s'", target);
  char where[PATH_MAX], hostdir[PATH_MAX];
  for (size_t i = 0; i < h->nhier; i++) {
    const char *name = strrchr(h->hier[i].mnt, '/') + 1;
    snprintf(where, sizeof where, "%s/%s", target, name);
    cg_join(hostdir, sizeof hostdir, h->hier[i].mnt, cg->path);
    char data[300];
    cg_join(data, sizeof data, strncmp(h->hier[i].controllers, "name=", 5) == 0 ? "none," : "",
             h->hier[i].controllers);
    if (cg_mount_hierarchy("cgroup", data, h->hier[i].controllers, hostdir, where, f, e) < 0) return -1;
    /* "cpu,cpuacct" is also reachable as cpu and cpuacct. */
    if (strchr(h->hier[i].controllers, ',') && strncmp(h->hier[i].controllers, "name=", 5) != 0) {
      char ctl[256];
      snprintf(ctl, sizeof ctl, "%s", h->hier[i].controllers);
      char *save = NULL;
      for (char *c = strtok_r(ctl, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        if (strcmp(c, name) == 0) continue;
        snprintf(where, sizeof where, "%s/%s", target, c);
        if (symlink(name, where) < 0 && errno != EEXIST) return berth_fail_errno(e, "symlink '%s'", where);
      }
    }
  }
  if (h->unified[0]) {
    const char *name = strrchr(h->unified, '/') + 1;
    snprintf(where, sizeof where, "%s/%s", target, name);
    cg_join(hostdir, sizeof hostdir, h->unified, cg->path);
    if (cg_mount_hierarchy("cgroup2", NULL, "", hostdir, where, f, e) < 0) return -1;
  }
  if ((f & MS_RDONLY) && mount(NULL, target, NULL, MS_REMOUNT | f, "mode=755") < 0)
    return berth_fail_errno(e, "remount '%s' read-only", target);
  return 0;
}

const struct cgroup_ops cg_v1_ops = {
    .exists = v1_exists,
    .create = v1_create,
    .check = v1_check,
    .apply = v1_apply,
    .enter = v1_enter,
    .freeze = v1_freeze,
    .is_frozen = v1_is_frozen,
    .pids = v1_pids,
    .kill_all = v1_kill_all,
    .stats = v1_stats,
    .destroy = v1_destroy,
    .mount = v1_mount,
};
