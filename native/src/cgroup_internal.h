/* What cgroup.c, cgroup_v1.c, cgroup_v2.c and cgroup_bpf.c share: the host's
 * layout (found once), config.linux.resources parsed and validated into one
 * struct before anything is written, the per-controller v2 writers (used on
 * v2 hosts and, on hybrid hosts, for what only the cgroup2 mount holds) and
 * the table of operations. */
#ifndef BERTH_CGROUP_INTERNAL_H
#define BERTH_CGROUP_INTERNAL_H

#include <stdint.h>

#include "cgroup.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_MAX_HIER 24

/* One mounted v1 hierarchy: its mount point and its controllers
 * ("cpu,cpuacct", or "name=systemd" for a named one). */
struct cg_hier {
  char mnt[PATH_MAX];
  char controllers[256];
};

struct cg_host {
  cgroup_mode mode;
  size_t nhier;
  struct cg_hier hier[CG_MAX_HIER];
  char unified[PATH_MAX]; /* cgroup2 mount point, "" when none */
};

/* Found on first use from /proc/self/mountinfo and statfs(/sys/fs/cgroup). */
const struct cg_host *cg_host(berth_error *e);

/* Resource groups that need a controller; the bit is set in cg_res.need. */
enum {
  CG_NEED_MEMORY = 1 << 0,
  CG_NEED_CPU = 1 << 1,
  CG_NEED_CPUSET = 1 << 2,
  CG_NEED_PIDS = 1 << 3,
  CG_NEED_IO = 1 << 4,
  CG_NEED_HUGETLB = 1 << 5,
  CG_NEED_NET_CLS = 1 << 6,
  CG_NEED_NET_PRIO = 1 << 7,
  CG_NEED_DEVICES = 1 << 8,
  CG_NEED_UNIFIED = 1 << 9,
  CG_NEED_RDMA = 1 << 10,
};

typedef struct {
  bool set;
  int64_t v;
} cg_opt;

struct cg_dev_rule {
  bool allow;
  char type;   /* 'a', 'b' or 'c' ('u' is taken as 'c') */
  int64_t major, minor; /* -1: any */
  unsigned access; /* CG_ACC_* */
};
#define CG_ACC_MKNOD 1u
#define CG_ACC_READ 2u
#define CG_ACC_WRITE 4u
#define CG_ACC_ALL 7u

/* config.linux.resources after validation. Scalars: .set when the key is
 * present with a value that asks for a change (OCI's 0 means "leave as is"
 * for most of them). Arrays and maps stay JSON (validated, borrowed). */
typedef struct cg_res {
  unsigned need; /* CG_NEED_* */
  /* memory: -1 means unlimited */
  cg_opt mem_limit, mem_reservation, mem_swap, mem_kernel, mem_kernel_tcp, mem_swappiness;
  cg_opt mem_disable_oom, mem_use_hierarchy, mem_check_before_update; /* 0/1 */
  /* cpu */
  cg_opt cpu_shares, cpu_quota, cpu_period, cpu_rt_runtime, cpu_rt_period, cpu_burst, cpu_idle;
  const char *cpus, *mems; /* NULL or non-empty, syntax checked */
  /* pids: -1 means unlimited */
  cg_opt pids_limit;
  /* blockIO */
  cg_opt blkio_weight, blkio_leaf_weight;
  json_t *blkio_weight_device;  /* [{major,minor,weight?,leafWeight?}] */
  json_t *blkio_throttle[4];    /* read bps, write bps, read iops, write iops */
  json_t *hugepages;            /* [{pageSize,limit}] */
  cg_opt net_class_id;
  json_t *net_priorities;       /* [{name,priority}] */
  struct cg_dev_rule *devices;  /* malloc'd, NULL when absent */
  size_t ndevices;
  json_t *unified;              /* {key: value} */
  json_t *rdma;                 /* {device: {hcaHandles?, hcaObjects?}} */
} cg_res;

extern const char *const cg_throttle_keys[4];
extern const char *const cg_v1_throttle_files[4];

/* Parses and validates resources (NULL -> nothing set). Every error names
 * the field, e.g. "linux.resources.cpu.shares: expected ...". */
int cg_res_parse(json_t *resources, cg_res *r, berth_error *e);
void cg_res_free(cg_res *r);

/* "2MB" -> "2MB" if /sys/kernel/mm/hugepages has it (checked in parse). */
/* Parses a cpuset list ("0-3,7"); returns -1 on bad syntax. */
int cg_parse_list(const char *s, uint64_t *bits, size_t nwords);

/* out = a + b (a hierarchy root and a group path); false if too long. */
bool cg_join(char *out, size_t outsz, const char *a, const char *b);

/* A cpuset list file ("0-2,4\n") as the JSON array [0,1,2,4], for the
 * "cpuset" stats; NULL when dir has no such file. */
json_t *cg_list_json(const char *dir, const char *file);

/* Small file helpers on "<dir>/<file>". */
int cg_write(const char *dir, const char *file, const char *value, berth_error *e);
int cg_writef(const char *dir, const char *file, berth_error *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cg_read(const char *dir, const char *file, char **out, berth_error *e);
bool cg_exists(const char *dir, const char *file);
/* Reads a file holding one number (or "max" -> UINT64_MAX). */
int cg_read_u64(const char *dir, const char *file, uint64_t *v, berth_error *e);
/* "key value" lines -> the value of key; false if absent. */
bool cg_kv_get(const char *text, const char *key, uint64_t *v);
/* mkdir that accepts EEXIST; records whether it created the leaf. */
int cg_mkdir(const char *path, bool *created, berth_error *e);
/* rmdir of dir and every group below it, retrying while it drains. */
int cg_rmdir_tree(const char *dir, berth_error *e);
/* Removes the ancestors of path under root that Berth made (named berth*)
 * once they are empty; stops at the first that is not. */
void cg_rmdir_parents(const char *root, const char *path);
/* Every pid in dir's cgroup.procs and those of its descendants, in a new
 * malloc'd array (*pids NULL and *n 0 on failure). */
int cg_list_pids(const char *dir, pid_t **pids, size_t *n, berth_error *e);
/* Writes pid to <dir>/cgroup.procs. */
int cg_enter_dir(const char *dir, pid_t pid, berth_error *e);

/* Mounts one hierarchy at where (made if missing): a fresh fstype mount with
 * data when this process's cgroup namespace is rooted at its own group (it
 * sees "/" for controllers in /proc/self/cgroup; "" names cgroup2), else a
 * bind of hostdir, so a container never sees the host's tree. */
int cg_mount_hierarchy(const char *fstype, const char *data, const char *controllers,
                       const char *hostdir, const char *where, unsigned long flags, berth_error *e);

/* v2 writers for one resource group on the group directory dir. */
int cg2_check_controllers(const char *dir, unsigned need, berth_error *e);
int cg2_enable_controllers(const char *root, const char *relpath, berth_error *e);
int cg2_apply_memory(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_cpu(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_cpuset(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_pids(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_io(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_hugetlb(const char *dir, const cg_res *r, berth_error *e);
int cg2_apply_unified(const char *dir, const cg_res *r, berth_error *e);
/* rdma.max has one format on v1 and v2. */
int cg_apply_rdma(const char *dir, const cg_res *r, berth_error *e);
/* memory.checkBeforeUpdate: the new limit must not be below usage_file. */
int cg_check_memory_usage(const char *dir, const char *usage_file, const cg_res *r, berth_error *e);
int cg2_freeze_dir(const char *dir, bool frozen, berth_error *e);
int cg2_is_frozen_dir(const char *dir, bool *frozen, berth_error *e);
int cg2_stats_hugetlb(const char *dir, json_t *out, berth_error *e);
/* Shares (2..262144) to cpu.weight (1..10000). */
uint64_t cg2_shares_to_weight(uint64_t shares);
/* OCI memory.swap (memory+swap) to memory.swap.max; -1 is "max". */
int cg2_swap_max(const cg_res *r, int64_t current_limit, int64_t *out, berth_error *e);

/* eBPF device filter (cgroup_bpf.c): builds the program from the rules,
 * attaches it to the group dir with BPF_F_ALLOW_MULTI and detaches the
 * program Berth attached before, if any. */
int cg_bpf_apply_devices(const char *dir, const struct cg_dev_rule *rules, size_t n,
                         berth_error *e);

struct cgroup_ops {
  bool (*exists)(const berth_cgroup *cg);
  int (*create)(const berth_cgroup *cg, berth_error *e);
  int (*check)(const berth_cgroup *cg, const cg_res *r, berth_error *e);
  int (*apply)(const berth_cgroup *cg, const cg_res *r, berth_error *e);
  int (*enter)(const berth_cgroup *cg, pid_t pid, berth_error *e);
  int (*freeze)(const berth_cgroup *cg, bool frozen, berth_error *e);
  int (*is_frozen)(const berth_cgroup *cg, bool *frozen, berth_error *e);
  int (*pids)(const berth_cgroup *cg, pid_t **pids, size_t *n, berth_error *e);
  int (*kill_all)(const berth_cgroup *cg, int sig, berth_error *e);
  int (*stats)(const berth_cgroup *cg, json_t *out, berth_error *e);
  int (*destroy)(const berth_cgroup *cg, berth_error *e);
  int (*mount)(const berth_cgroup *cg, const char *target, unsigned long flags, berth_error *e);
};

extern const struct cgroup_ops cg_v1_ops; /* v1 and hybrid */
extern const struct cgroup_ops cg_v2_ops;

#endif
