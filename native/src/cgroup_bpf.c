/* cgroup v2 has no devices controller: device access is decided by an eBPF
 * program of type BPF_PROG_TYPE_CGROUP_DEVICE attached to the group. We emit
 * its instructions from the rules: the rules are checked from the last to the
 * first (a later rule overrides an earlier one, as in v1) and the first that
 * matches decides; no match denies. */
#include "cgroup_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define PROG_NAME "berth_devices"

static long bpf(int cmd, union bpf_attr *attr) {
  return syscall(__NR_bpf, cmd, attr, sizeof *attr);
}

struct prog {
  struct bpf_insn *insn;
  size_t n, cap;
};

static int emit(struct prog *p, struct bpf_insn i) {
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 64;
    struct bpf_insn *ni = realloc(p->insn, nc * sizeof *ni);
    if (!ni) return -1;
    p->insn = ni;
    p->cap = nc;
  }
  p->insn[p->n++] = i;
  return 0;
}

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
/* r_dst = *(u32 *)(r_src + off) */
#define LDX_W(d, s, o) INSN(BPF_LDX | BPF_MEM | BPF_W, d, s, o, 0)
#define ALU32_K(op, d, k) INSN(BPF_ALU | (op) | BPF_K, d, 0, 0, k)
#define MOV64_R(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_K(d, k) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, k)
#define JMP_K(op, d, k, o) INSN(BPF_JMP | (op) | BPF_K, d, 0, o, k)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)

/* Registers after the prologue: r2 device type, r3 access, r4 major, r5 minor. */
/* Sets *always when the rule matches every access: nothing after it could
 * run, and the verifier refuses unreachable instructions. */
static int emit_rule(struct prog *p, const struct cg_dev_rule *r, bool *always) {
  /* The block's tests, each jumping past the block when it fails. */
  struct bpf_insn tests[8];
  size_t nt = 0;
  if (r->type != 'a')
    tests[nt++] = JMP_K(BPF_JNE, BPF_REG_2, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR, 0);
  bool all_access = r->access == CG_ACC_ALL;
  if (!all_access) {
    /* An allow rule must cover every access asked for; a deny rule matches
     * when it covers any of them (deny "w" refuses an open for "rw"). */
    tests[nt++] = MOV64_R(BPF_REG_1, BPF_REG_3);
    tests[nt++] = ALU32_K(BPF_AND, BPF_REG_1, r->allow ? (int32_t)(~r->access & CG_ACC_ALL) : (int32_t)r->access);
    tests[nt++] = JMP_K(r->allow ? BPF_JNE : BPF_JEQ, BPF_REG_1, 0, 0);
  }
  if (r->major >= 0) tests[nt++] = JMP_K(BPF_JNE, BPF_REG_4, (int32_t)r->major, 0);
  if (r->minor >= 0) tests[nt++] = JMP_K(BPF_JNE, BPF_REG_5, (int32_t)r->minor, 0);
  *always = nt == 0;
  size_t total = nt + 2; /* + mov r0, exit */
  for (size_t i = 0; i < nt; i++) {
    if (BPF_CLASS(tests[i].code) == BPF_JMP) tests[i].off = (int16_t)(total - i - 1);
    if (emit(p, tests[i]) < 0) return -1;
  }
  if (emit(p, MOV64_K(BPF_REG_0, r->allow ? 1 : 0)) < 0 || emit(p, EXIT()) < 0) return -1;
  return 0;
}

static int build(const struct cg_dev_rule *rules, size_t n, struct prog *p) {
  /* ctx (r1) is struct bpf_cgroup_dev_ctx {access_type, major, minor}. */
  struct bpf_insn prologue[] = {
      LDX_W(BPF_REG_2, BPF_REG_1, 0), ALU32_K(BPF_AND, BPF_REG_2, 0xffff),
      LDX_W(BPF_REG_3, BPF_REG_1, 0), ALU32_K(BPF_RSH, BPF_REG_3, 16),
      LDX_W(BPF_REG_4, BPF_REG_1, 4), LDX_W(BPF_REG_5, BPF_REG_1, 8),
  };
  for (size_t i = 0; i < BERTH_ARRAY_LEN(prologue); i++)
    if (emit(p, prologue[i]) < 0) return -1;
  for (size_t i = n; i-- > 0;) {
    bool always;
    if (emit_rule(p, &rules[i], &always) < 0) return -1;
    if (always) return 0;
  }
  if (emit(p, MOV64_K(BPF_REG_0, 0)) < 0 || emit(p, EXIT()) < 0) return -1;
  return 0;
}

static int load(const struct prog *p, berth_error *e) {
  static char log[65536];
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  a.insns = (uint64_t)(uintptr_t)p->insn;
  a.insn_cnt = (uint32_t)p->n;
  a.license = (uint64_t)(uintptr_t) "Apache";
  snprintf(a.prog_name, sizeof a.prog_name, "%s", PROG_NAME);
  int fd = (int)bpf(BPF_PROG_LOAD, &a);
  if (fd >= 0) return fd;
  if (errno == EPERM || errno == ENOSYS) return berth_fail_errno(e, "load the eBPF device filter");
  /* Load again with the verifier's log so the error says why. */
  a.log_buf = (uint64_t)(uintptr_t)log;
  a.log_size = sizeof log;
  a.log_level = 1;
  log[0] = '\0';
  fd = (int)bpf(BPF_PROG_LOAD, &a);
  if (fd >= 0) return fd;
  int saved = errno;
  size_t len = strlen(log);
  while (len && log[len - 1] == '\n') log[--len] = '\0';
  const char *tail = len > 300 ? log + len - 300 : log;
  return berth_fail(e, saved, "load the eBPF device filter (verifier: %s)", tail);
}

/* Ids of the device programs of ours now attached to the group. */
static int ours_attached(int cgfd, uint32_t *ids, uint32_t *n, berth_error *e) {
  uint32_t all[64];
  union bpf_attr q;
  memset(&q, 0, sizeof q);
  q.query.target_fd = (uint32_t)cgfd;
  q.query.attach_type = BPF_CGROUP_DEVICE;
  q.query.prog_ids = (uint64_t)(uintptr_t)all;
  q.query.prog_cnt = BERTH_ARRAY_LEN(all);
  if (bpf(BPF_PROG_QUERY, &q) < 0) return berth_fail_errno(e, "query the group's device programs");
  *n = 0;
  for (uint32_t i = 0; i < q.query.prog_cnt && i < BERTH_ARRAY_LEN(all); i++) {
    union bpf_attr g;
    memset(&g, 0, sizeof g);
    g.prog_id = all[i];
    cleanup_fd int pfd = (int)bpf(BPF_PROG_GET_FD_BY_ID, &g);
    if (pfd < 0) continue; /* detached meanwhile */
    struct bpf_prog_info info;
    memset(&info, 0, sizeof info);
    union bpf_attr in;
    memset(&in, 0, sizeof in);
    in.info.bpf_fd = (uint32_t)pfd;
    in.info.info_len = sizeof info;
    in.info.info = (uint64_t)(uintptr_t)&info;
    if (bpf(BPF_OBJ_GET_INFO_BY_FD, &in) < 0) continue;
    if (strncmp(info.name, PROG_NAME, sizeof info.name) == 0 ||
        strncmp(info.name, PROG_NAME, strlen(info.name)) == 0)
      ids[(*n)++] = all[i];
  }
  return 0;
}

int cg_bpf_apply_devices(const char *dir, const struct cg_dev_rule *rules, size_t n, berth_error *e) {
  struct prog p = {0};
  if (build(rules, n, &p) < 0) {
    free(p.insn);
    return berth_fail(e, ENOMEM, "build the eBPF device filter");
  }
  cleanup_fd int prog = load(&p, e);
  free(p.insn);
  if (prog < 0) return -1;
  cleanup_fd int cgfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cgfd < 0) return berth_fail_errno(e, "open '%s'", dir);
  uint32_t old[64], nold = 0;
  if (ours_attached(cgfd, old, &nold, e) < 0) return berth_wrap(e, "'%s'", dir);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.target_fd = (uint32_t)cgfd;
  a.attach_bpf_fd = (uint32_t)prog;
  a.attach_type = BPF_CGROUP_DEVICE;
  a.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf(BPF_PROG_ATTACH, &a) < 0) return berth_fail_errno(e, "attach the eBPF device filter to '%s'", dir);
  /* The new filter is in place: the old ones can go without a gap. */
  for (uint32_t i = 0; i < nold; i++) {
    union bpf_attr g;
    memset(&g, 0, sizeof g);
    g.prog_id = old[i];
    cleanup_fd int ofd = (int)bpf(BPF_PROG_GET_FD_BY_ID, &g);
    if (ofd < 0) continue;
    union bpf_attr d;
    memset(&d, 0, sizeof d);
    d.target_fd = (uint32_t)cgfd;
    d.attach_bpf_fd = (uint32_t)ofd;
    d.attach_type = BPF_CGROUP_DEVICE;
    if (bpf(BPF_PROG_DETACH, &d) < 0 && errno != ENOENT)
      return berth_fail_errno(e, "detach the previous eBPF device filter from '%s'", dir);
  }
  return 0;
}
