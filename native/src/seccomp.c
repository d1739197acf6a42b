/* config.linux.seccomp -> a BPF program, built on the host side with
 * libseccomp and loaded late with seccomp(2) directly.
 *
 * libseccomp compiles the rules; the program is exported right away, so
 * seccomp_install is a single seccomp(2) call (plus one sendmsg for a
 * notify listener) and needs no allocation once the filter is in force.
 * Loading it ourselves also lets every kernel flag through
 * (WAIT_KILLABLE_RECV included) whatever the libseccomp version, and lets
 * seccomp_build_cached keep compiled programs (libseccomp is the slow part
 * of a container start with a Docker-sized profile). */
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util.h"

/* Kernel flag bits (linux/seccomp.h), spelled out so that this file builds
 * against older kernel headers too. */
#define FLAG_TSYNC (1U << 0)
#define FLAG_LOG (1U << 1)
#define FLAG_SPEC_ALLOW (1U << 2)
#define FLAG_NEW_LISTENER (1U << 3)
#define FLAG_TSYNC_ESRCH (1U << 4)
#define FLAG_WAIT_KILLABLE_RECV (1U << 5)
#define SET_MODE_FILTER 1

struct berth_seccomp {
  struct sock_fprog prog;
  unsigned int flags;
  bool notify;
  int listener_fd; /* connected to listenerPath; -1 without notify */
  char *metadata;  /* listenerMetadata, or NULL */
};

/* ------------------------------------------------------------------ tables */

typedef struct {
  const char *name;
  uint32_t action; /* base action; ERRNO and TRACE take errnoRet */
  bool takes_errno;
} action_def;

/* Sorted, as `features` lists them. SCMP_ACT_KILL is KILL_THREAD, as the
 * spec and runc define it. */
static const action_def actions[] = {
    {"SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, false},
    {"SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), true},
    {"SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, false},
    {"SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, false},
    {"SCMP_ACT_LOG", SCMP_ACT_LOG, false},
    {"SCMP_ACT_NOTIFY", SCMP_ACT_NOTIFY, false},
    {"SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), true},
    {"SCMP_ACT_TRAP", SCMP_ACT_TRAP, false},
};

typedef struct {
  const char *name;
  enum scmp_compare op;
} operator_def;

static const operator_def operators[] = {
    {"SCMP_CMP_EQ", SCMP_CMP_EQ}, {"SCMP_CMP_GE", SCMP_CMP_GE},
    {"SCMP_CMP_GT", SCMP_CMP_GT}, {"SCMP_CMP_LE", SCMP_CMP_LE},
    {"SCMP_CMP_LT", SCMP_CMP_LT}, {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    {"SCMP_CMP_NE", SCMP_CMP_NE},
};

typedef struct {
  const char *name;
  uint32_t token; /* 0: named by the spec, unknown to this libseccomp */
} arch_def;

static const arch_def archs[] = {
    {"SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64},
    {"SCMP_ARCH_ARM", SCMP_ARCH_ARM},
#ifdef SCMP_ARCH_LOONGARCH64
    {"SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64},
#else
    {"SCMP_ARCH_LOONGARCH64", 0},
#endif
#ifdef SCMP_ARCH_M68K
    {"SCMP_ARCH_M68K", SCMP_ARCH_M68K},
#else
    {"SCMP_ARCH_M68K", 0},
#endif
    {"SCMP_ARCH_MIPS", SCMP_ARCH_MIPS},
    {"SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64},
    {"SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32},
    {"SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL},
    {"SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64},
    {"SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32},
    {"SCMP_ARCH_PARISC", SCMP_ARCH_PARISC},
    {"SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64},
    {"SCMP_ARCH_PPC", SCMP_ARCH_PPC},
    {"SCMP_ARCH_PPC64", SCMP_ARCH_PPC64},
    {"SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE},
    {"SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64},
    {"SCMP_ARCH_S390", SCMP_ARCH_S390},
    {"SCMP_ARCH_S390X", SCMP_ARCH_S390X},
#ifdef SCMP_ARCH_SH
    {"SCMP_ARCH_SH", SCMP_ARCH_SH},
    {"SCMP_ARCH_SHEB", SCMP_ARCH_SHEB},
#else
    {"SCMP_ARCH_SH", 0},
    {"SCMP_ARCH_SHEB", 0},
#endif
    {"SCMP_ARCH_X32", SCMP_ARCH_X32},
    {"SCMP_ARCH_X86", SCMP_ARCH_X86},
    {"SCMP_ARCH_X86_64", SCMP_ARCH_X86_64},
};

typedef struct {
  const char *name;
  unsigned int bit;
} flag_def;

static const flag_def flags_known[] = {
    {"SECCOMP_FILTER_FLAG_TSYNC", FLAG_TSYNC},
    {"SECCOMP_FILTER_FLAG_LOG", FLAG_LOG},
    {"SECCOMP_FILTER_FLAG_SPEC_ALLOW", FLAG_SPEC_ALLOW},
    {"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", FLAG_WAIT_KILLABLE_RECV},
};

/* A flag is supported when the kernel gets past flag validation and only
 * then fails to read the (NULL) program: EFAULT. WAIT_KILLABLE_RECV is only
 * valid beside NEW_LISTENER, so it is probed with it. */
static bool kernel_has_flag(unsigned int bit) {
  unsigned int probe = bit;
  if (bit == FLAG_WAIT_KILLABLE_RECV) probe |= FLAG_NEW_LISTENER;
  return syscall(SYS_seccomp, SET_MODE_FILTER, probe, NULL) < 0 && errno == EFAULT;
}

/* ------------------------------------------------------------------ parsing */

static int parse_errno_ret(json_t *v, const char *field, uint32_t *out, berth_error *e) {
  if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0xffff)
    return berth_fail(e, 0, "%s: expected an integer 0-65535", field);
  *out = (uint32_t)json_integer_value(v);
  return 0;
}

/* Action from name and optional errnoRet (EPERM when absent, like runc). */
static int parse_action(json_t *name, json_t *errno_ret, const char *field,
                        const char *errno_field, uint32_t *out, berth_error *e) {
  if (!json_is_string(name)) return berth_fail(e, 0, "%s: expected an action name", field);
  const char *s = json_string_value(name);
  for (size_t i = 0; i < BERTH_ARRAY_LEN(actions); i++) {
    if (strcmp(actions[i].name, s) != 0) continue;
    *out = actions[i].action;
    if (actions[i].takes_errno) {
      uint32_t err = EPERM;
      if (errno_ret && !json_is_null(errno_ret) &&
          parse_errno_ret(errno_ret, errno_field, &err, e) < 0)
        return -1;
      *out |= err;
    }
    return 0;
  }
  return berth_fail(e, 0, "%s: unknown action \"%s\"", field, s);
}

static int parse_u64(json_t *v, const char *field, uint64_t *out, berth_error *e) {
  if (!v || json_is_null(v)) {
    *out = 0;
    return 0;
  }
  if (!json_is_integer(v)) return berth_fail(e, 0, "%s: expected an integer", field);
  *out = (uint64_t)json_integer_value(v);
  return 0;
}

static int parse_arg(json_t *a, const char *field, struct scmp_arg_cmp *out, berth_error *e) {
  char sub[256];
  if (!json_is_object(a)) return berth_fail(e, 0, "%s: expected an object", field);
  json_t *index = json_object_get(a, "index");
  if (!json_is_integer(index) || json_integer_value(index) < 0 || json_integer_value(index) > 5)
    return berth_fail(e, 0, "%s.index: expected an integer 0-5", field);
  json_t *op = json_object_get(a, "op");
  if (!json_is_string(op)) return berth_fail(e, 0, "%s.op: expected an operator name", field);
  const operator_def *found = NULL;
  for (size_t i = 0; i < BERTH_ARRAY_LEN(operators); i++)
    if (strcmp(operators[i].name, json_string_value(op)) == 0) found = &operators[i];
  if (!found)
    return berth_fail(e, 0, "%s.op: unknown operator \"%s\"", field, json_string_value(op));
  memset(out, 0, sizeof *out);
  out->arg = (unsigned int)json_integer_value(index);
  out->op = found->op;
  snprintf(sub, sizeof sub, "%s.value", field);
  if (parse_u64(json_object_get(a, "value"), sub, &out->datum_a, e) < 0) return -1;
  snprintf(sub, sizeof sub, "%s.valueTwo", field);
  if (parse_u64(json_object_get(a, "valueTwo"), sub, &out->datum_b, e) < 0) return -1;
  return 0;
}

static void release_ctx(scmp_filter_ctx *ctx) {
  if (*ctx) seccomp_release(*ctx);
  *ctx = NULL;
}

/* Adds the rules of one syscalls[] entry. Several conditions on the same
 * argument index cannot all hold at once in one rule, so, like runc, they
 * then become one rule each (OR); otherwise all conditions form a single
 * rule (AND). */
static int add_entry(scmp_filter_ctx ctx, json_t *entry, size_t idx, uint32_t def_action,
                     bool *uses_notify, size_t *rules, berth_error *e) {
  char field[128], sub[192], sub2[192];
  snprintf(field, sizeof field, "linux.seccomp.syscalls[%zu]", idx);
  if (!json_is_object(entry)) return berth_fail(e, 0, "%s: expected an object", field);

  uint32_t action;
  snprintf(sub, sizeof sub, "%s.action", field);
  snprintf(sub2, sizeof sub2, "%s.errnoRet", field);
  if (parse_action(json_object_get(entry, "action"), json_object_get(entry, "errnoRet"), sub, sub2,
                   &action, e) < 0)
    return -1;

  struct scmp_arg_cmp conds[6 * 8];
  unsigned int nconds = 0, per_index[6] = {0};
  json_t *args = json_object_get(entry, "args");
  if (args && !json_is_null(args)) {
    if (!json_is_array(args)) return berth_fail(e, 0, "%s.args: expected an array", field);
    if (json_array_size(args) > BERTH_ARRAY_LEN(conds))
      return berth_fail(e, 0, "%s.args: more than %zu conditions", field, BERTH_ARRAY_LEN(conds));
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a) {
      snprintf(sub, sizeof sub, "%s.args[%zu]", field, i);
      if (parse_arg(a, sub, &conds[nconds], e) < 0) return -1;
      per_index[conds[nconds].arg]++;
      nconds++;
    }
  }
  bool separate = false;
  for (int i = 0; i < 6; i++)
    if (per_index[i] > 1) separate = true;

  /* "names" is the spec's field; "name" is what early Docker profiles used. */
  json_t *names = json_object_get(entry, "names");
  json_t *single = json_object_get(entry, "name");
  json_t *list = NULL;
  cleanup_json json_t *owned = NULL;
  if (names && !json_is_null(names)) {
    if (!json_is_array(names)) return berth_fail(e, 0, "%s.names: expected an array", field);
    list = names;
  } else if (json_is_string(single)) {
    list = owned = json_pack("[O]", single);
    if (!owned) return berth_fail(e, ENOMEM, "%s.name", field);
  } else {
    return berth_fail(e, 0, "%s.names: expected an array of syscall names", field);
  }

  size_t i;
  json_t *n;
  json_array_foreach(list, i, n) {
    if (!json_is_string(n) || json_string_length(n) == 0)
      return berth_fail(e, 0, "%s.names[%zu]: expected a syscall name", field, i);
    const char *name = json_string_value(n);
    if (action == SCMP_ACT_NOTIFY) {
      /* seccomp_install hands the listener its fd with sendmsg after the
       * filter is loaded: notifying sendmsg would wait on a listener that
       * never gets the fd. */
      if (strcmp(name, "sendmsg") == 0)
        return berth_fail(e, 0,
                          "%s: SCMP_ACT_NOTIFY cannot be used for sendmsg (the runtime sends the "
                          "listener its fd with it)",
                          field);
      *uses_notify = true;
    }
    /* The same action as the default needs no rule (libseccomp refuses it). */
    if (action == def_action || !ctx) continue;
    int nr = seccomp_syscall_resolve_name(name);
    /* Unknown here: kernels and libseccomp versions differ, so skip it. */
    if (nr == __NR_SCMP_ERROR) continue;
    int rc;
    if (separate) {
      for (unsigned int c = 0; c < nconds; c++) {
        rc = seccomp_rule_add_array(ctx, action, nr, 1, &conds[c]);
        if (rc < 0) return berth_fail(e, -rc, "%s: add rule for syscall %s", field, name);
      }
    } else {
      rc = seccomp_rule_add_array(ctx, action, nr, nconds, conds);
      if (rc < 0) return berth_fail(e, -rc, "%s: add rule for syscall %s", field, name);
    }
    (*rules)++;
  }
  return 0;
}

/* Exports the compiled program into memory (libseccomp 2.5 only writes it
 * to an fd). */
static int export_prog(scmp_filter_ctx ctx, struct sock_fprog *prog, berth_error *e) {
  cleanup_fd int fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "memfd_create for the seccomp program");
  int rc = seccomp_export_bpf(ctx, fd);
  if (rc < 0) return berth_fail(e, -rc, "seccomp_export_bpf");
  struct stat st;
  if (fstat(fd, &st) < 0) return berth_fail_errno(e, "fstat seccomp program");
  size_t len = (size_t)st.st_size;
  if (len == 0 || len % sizeof(struct sock_filter) != 0 ||
      len / sizeof(struct sock_filter) > BPF_MAXINSNS)
    return berth_fail(e, E2BIG, "seccomp program of %zu bytes", len);
  struct sock_filter *insns = malloc(len);
  if (!insns) return berth_fail(e, ENOMEM, "seccomp program");
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (char *)insns + got, len - got, (off_t)got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      int saved = r < 0 ? errno : EIO;
      free(insns);
      return berth_fail(e, saved, "read seccomp program");
    }
    got += (size_t)r;
  }
  prog->filter = insns;
  prog->len = (unsigned short)(len / sizeof(struct sock_filter));
  return 0;
}

static int connect_listener(const char *path, int *out, berth_error *e) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path)
    return berth_fail(e, ENAMETOOLONG, "linux.seccomp.listenerPath '%s'", path);
  strcpy(addr.sun_path, path);
  cleanup_fd int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return berth_fail_errno(e, "socket for seccomp listener");
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
    return berth_fail_errno(e, "connect to seccomp listener '%s'", path);
  *out = fd;
  fd = -1;
  return 0;
}

/* Looks an architecture name up; NULL when unknown. */
static const arch_def *find_arch(const char *name) {
  for (size_t k = 0; name && k < BERTH_ARRAY_LEN(archs); k++)
    if (strcmp(archs[k].name, name) == 0) return &archs[k];
  return NULL;
}

/* Checks everything in the config that libseccomp is not needed for, so a
 * cached program is only used for a config that would compile. */
static int validate(json_t *config, uint32_t *def_action, unsigned int *flags, bool *uses_notify,
                    berth_error *e) {
  if (parse_action(json_object_get(config, "defaultAction"),
                   json_object_get(config, "defaultErrnoRet"), "linux.seccomp.defaultAction",
                   "linux.seccomp.defaultErrnoRet", def_action, e) < 0)
    return -1;
  /* Every syscall, sendmsg to the listener included, would wait on it. */
  if (*def_action == SCMP_ACT_NOTIFY)
    return berth_fail(e, 0, "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default");

  json_t *arch_list = json_object_get(config, "architectures");
  if (arch_list && !json_is_null(arch_list)) {
    if (!json_is_array(arch_list))
      return berth_fail(e, 0, "linux.seccomp.architectures: expected an array");
    size_t i;
    json_t *a;
    json_array_foreach(arch_list, i, a) {
      const char *name = json_string_value(a);
      const arch_def *found = find_arch(name);
      if (!found)
        return berth_fail(e, 0, "linux.seccomp.architectures[%zu]: unknown architecture \"%s\"", i,
                          name ? name : "(not a string)");
      if (found->token == 0)
        return berth_fail(e, 0,
                          "linux.seccomp.architectures[%zu]: %s is not supported by libseccomp "
                          "%u.%u.%u",
                          i, name, seccomp_version()->major, seccomp_version()->minor,
                          seccomp_version()->micro);
    }
  }

  *flags = 0;
  json_t *flag_list = json_object_get(config, "flags");
  if (flag_list && !json_is_null(flag_list)) {
    if (!json_is_array(flag_list)) return berth_fail(e, 0, "linux.seccomp.flags: expected an array");
    size_t i;
    json_t *f;
    json_array_foreach(flag_list, i, f) {
      const char *name = json_string_value(f);
      const flag_def *found = NULL;
      for (size_t k = 0; name && k < BERTH_ARRAY_LEN(flags_known); k++)
        if (strcmp(flags_known[k].name, name) == 0) found = &flags_known[k];
      if (!found)
        return berth_fail(e, 0, "linux.seccomp.flags[%zu]: unknown flag \"%s\"", i,
                          name ? name : "(not a string)");
      if (!kernel_has_flag(found->bit))
        return berth_fail(e, 0, "linux.seccomp.flags[%zu]: %s is not supported by this kernel", i,
                          name);
      *flags |= found->bit;
    }
  }

  *uses_notify = false;
  size_t rules = 0;
  json_t *syscalls = json_object_get(config, "syscalls");
  if (syscalls && !json_is_null(syscalls)) {
    if (!json_is_array(syscalls))
      return berth_fail(e, 0, "linux.seccomp.syscalls: expected an array");
    size_t i;
    json_t *entry;
    json_array_foreach(syscalls, i, entry) {
      if (add_entry(NULL, entry, i, *def_action, uses_notify, &rules, e) < 0) return -1;
    }
  }

  const char *listener = json_str(config, "listenerPath");
  if (*uses_notify && (!listener || !*listener))
    return berth_fail(e, 0, "linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used");
  if (*uses_notify) {
    *flags |= FLAG_NEW_LISTENER;
    /* TSYNC and a listener both report through the return value; the kernel
     * wants TSYNC_ESRCH to tell them apart. */
    if (*flags & FLAG_TSYNC) *flags |= FLAG_TSYNC_ESRCH;
  } else {
    /* The kernel refuses this flag without a listener; with no notify rule
     * there is nothing for it to change, so it is dropped. */
    *flags &= ~FLAG_WAIT_KILLABLE_RECV;
  }
  return 0;
}

/* Compiles a validated config with libseccomp into a BPF program. */
static int compile(json_t *config, uint32_t def_action, struct sock_fprog *prog, berth_error *e) {
  __attribute__((cleanup(release_ctx))) scmp_filter_ctx ctx = seccomp_init(def_action);
  if (!ctx)
    return berth_fail(e, EINVAL, "linux.seccomp.defaultAction: libseccomp refused %s",
                      json_string_value(json_object_get(config, "defaultAction")));
  size_t i;
  json_t *a;
  json_array_foreach(json_object_get(config, "architectures"), i, a) {
    int rc = seccomp_arch_add(ctx, find_arch(json_string_value(a))->token);
    if (rc < 0 && rc != -EEXIST)
      return berth_fail(e, -rc, "linux.seccomp.architectures[%zu]: add %s", i,
                        json_string_value(a));
  }
  bool uses_notify = false;
  size_t rules = 0;
  json_t *entry;
  json_array_foreach(json_object_get(config, "syscalls"), i, entry) {
    if (add_entry(ctx, entry, i, def_action, &uses_notify, &rules, e) < 0) return -1;
  }
  /* A binary search over syscall numbers instead of a linear list: a
   * Docker-sized profile then costs a few comparisons per syscall. Only for
   * longer lists (libseccomp up to 2.5.4 mishandles the tree with no rules);
   * an older libseccomp without it still works, only slower. */
  if (rules > 32) (void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  return export_prog(ctx, prog, e);
}

/* ------------------------------------------------------------------ cache
 *
 * libseccomp needs tens of milliseconds for a Docker-sized profile on three
 * architectures, more than the rest of a container start. The program only
 * depends on the rules, the libseccomp version, the kernel and this
 * runtime's own code, so it is kept in <cache_dir>/<hash>.bpf. The key
 * holds all of them: the seccomp object as canonical JSON (sorted keys,
 * compact), libseccomp's version, the kernel release and machine, and the
 * runtime's GNU build id (a new runtime never reads an old one's program;
 * without a build id there is no cache). A file is a fixed header (magic,
 * format version, key length, instruction count, checksum), the whole key (compared
 * in full on every hit, so a hash collision is a miss, never a wrong
 * filter) and the instructions. Anything short, long, corrupt or for
 * another key is a miss: compile and rewrite. A file or directory that is
 * not owned by this (root) user or is writable by group or others is never
 * read: the filter is what confines the container. */

#define CACHE_MAGIC "BSCMPBPF"
#define CACHE_VERSION 2U
_Static_assert(sizeof(struct sock_filter) == 8, "BPF instructions are 8 bytes");

struct cache_header {
  char magic[8];
  uint32_t version;
  uint32_t key_len;    /* bytes of key that follow, no terminator */
  uint32_t insn_count; /* struct sock_filter entries after the key */
  uint32_t reserved;   /* 0 */
  uint64_t checksum;   /* FNV-1a 64 of the key and the instructions */
};

struct build_id_search {
  char hex[2 * 64 + 1];
};

/* The GNU build id note of the main program (the first object listed). */
static int find_build_id(struct dl_phdr_info *info, size_t size, void *data) {
  struct build_id_search *out = data;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_NOTE) continue;
    const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
    while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
      const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
      size_t name_sz = (n->n_namesz + 3U) & ~3U, desc_sz = (n->n_descsz + 3U) & ~3U;
      if ((size_t)(end - p) < sizeof *n + name_sz + desc_sz) break;
      const char *name = p + sizeof *n;
      const unsigned char *desc = (const unsigned char *)name + name_sz;
      if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
          n->n_descsz > 0 && n->n_descsz <= 64) {
        for (size_t k = 0; k < n->n_descsz; k++) snprintf(out->hex + 2 * k, 3, "%02x", desc[k]);
        return 1;
      }
      p += sizeof *n + name_sz + desc_sz;
    }
  }
  return 1; /* only the main program counts */
}

static char *cache_key(json_t *config) {
  struct build_id_search id = {{0}};
  dl_iterate_phdr(find_build_id, &id);
  if (!id.hex[0]) return NULL;
  cleanup_json json_t *rules = json_copy(config);
  if (!rules) return NULL;
  /* Where the listener lives does not change the program. */
  json_object_del(rules, "listenerPath");
  json_object_del(rules, "listenerMetadata");
  cleanup_free char *text = json_dumps(rules, JSON_COMPACT | JSON_SORT_KEYS);
  struct utsname u;
  if (!text || uname(&u) < 0) return NULL;
  const struct scmp_version *v = seccomp_version();
  char *key = NULL;
  if (asprintf(&key, "berth-runtime %s; libseccomp %u.%u.%u; linux %s %s; %s", id.hex, v->major,
               v->minor, v->micro, u.release, u.machine, text) < 0)
    return NULL;
  return key;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t fnv1a(uint64_t h, const void *data, size_t len) {
  for (const unsigned char *p = data; len--; p++) h = (h ^ *p) * 0x100000001b3ULL;
  return h;
}

static uint64_t cache_checksum(const char *key, size_t keylen, const void *insns, size_t size) {
  return fnv1a(fnv1a(FNV_OFFSET, key, keylen), insns, size);
}

static void cache_path(const char *dir, const char *key, char *buf, size_t len) {
  snprintf(buf, len, "%s/%016llx.bpf", dir, (unsigned long long)fnv1a(FNV_OFFSET, key, strlen(key)));
}

/* Owned by us, not writable by group or others (and of the expected type). */
static int check_trusted(int fd, const char *path, mode_t type, berth_error *e) {
  struct stat st;
  if (fstat(fd, &st) < 0) return berth_fail_errno(e, "stat '%s'", path);
  if ((st.st_mode & S_IFMT) != type)
    return berth_fail_msg(e, EINVAL, "'%s': not a %s", path, type == S_IFDIR ? "directory" : "regular file");
  if (st.st_uid != geteuid())
    return berth_fail_msg(e, EPERM, "'%s': owned by uid %u, not %u", path, (unsigned)st.st_uid,
                          (unsigned)geteuid());
  if (st.st_mode & (S_IWGRP | S_IWOTH))
    return berth_fail_msg(e, EPERM, "'%s': writable by group or others (mode %04o)", path,
                          (unsigned)(st.st_mode & 07777));
  return 0;
}

/* The cache directory, created 0700 when missing; fails when it cannot be
 * trusted. */
static int cache_dir_ready(const char *dir, bool create, berth_error *e) {
  if (create && mkdir_p(dir, 0700, e) < 0) return -1;
  cleanup_fd int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open seccomp cache '%s'", dir);
  return check_trusted(fd, dir, S_IFDIR, e);
}

/* 0 and *prog set when a program for exactly this key was cached; -1 with
 * the reason in e otherwise (a miss, never an error for the caller). */
static int cache_load(const char *dir, const char *key, struct sock_fprog *prog, berth_error *e) {
  char path[PATH_MAX];
  cache_path(dir, key, path, sizeof path);
  if (cache_dir_ready(dir, false, e) < 0) return -1;
  cleanup_fd int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s'", path);
  if (check_trusted(fd, path, S_IFREG, e) < 0) return -1;
  size_t keylen = strlen(key);
  /* One byte more than a valid file can hold, to see a longer one. */
  size_t cap = sizeof(struct cache_header) + keylen + BPF_MAXINSNS * sizeof(struct sock_filter) + 1,
         len = 0;
  cleanup_free char *data = malloc(cap);
  if (!data) return berth_fail(e, ENOMEM, "'%s'", path);
  while (len < cap) {
    ssize_t r = read(fd, data + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return berth_fail_errno(e, "read '%s'", path);
    if (r == 0) break;
    len += (size_t)r;
  }
  struct cache_header h;
  if (len < sizeof h) return berth_fail_msg(e, EINVAL, "'%s': %zu bytes, shorter than its header", path, len);
  memcpy(&h, data, sizeof h);
  if (memcmp(h.magic, CACHE_MAGIC, sizeof h.magic) != 0 || h.version != CACHE_VERSION ||
      h.reserved != 0)
    return berth_fail_msg(e, EINVAL, "'%s': not a version %u program cache file", path, CACHE_VERSION);
  if (h.insn_count == 0 || h.insn_count > BPF_MAXINSNS ||
      len != sizeof h + (size_t)h.key_len + (size_t)h.insn_count * sizeof(struct sock_filter))
    return berth_fail_msg(e, EINVAL, "'%s': %zu bytes, header says %u key bytes and %u instructions",
                          path, len, h.key_len, h.insn_count);
  if (h.key_len != keylen || memcmp(data + sizeof h, key, keylen) != 0)
    return berth_fail_msg(e, EINVAL, "'%s': holds another configuration's program", path);
  size_t size = (size_t)h.insn_count * sizeof(struct sock_filter);
  if (cache_checksum(key, keylen, data + sizeof h + keylen, size) != h.checksum)
    return berth_fail_msg(e, EINVAL, "'%s': checksum mismatch", path);
  struct sock_filter *insns = malloc(size);
  if (!insns) return berth_fail(e, ENOMEM, "'%s'", path);
  memcpy(insns, data + sizeof h + keylen, size);
  prog->filter = insns;
  prog->len = (unsigned short)h.insn_count;
  return 0;
}

/* An exclusive flock on the (trusted) cache directory, held while one
 * runtime compiles and stores a missing program; released when the fd is
 * closed, or when its holder dies. -1 (reason in e): go on without it. */
static int cache_lock(const char *dir, berth_error *e) {
  if (cache_dir_ready(dir, true, e) < 0) return -1;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open seccomp cache '%s'", dir);
  if (check_trusted(fd, dir, S_IFDIR, e) < 0) {
    close(fd);
    return -1;
  }
  while (flock(fd, LOCK_EX) < 0) {
    if (errno == EINTR) continue;
    berth_fail_errno(e, "lock seccomp cache '%s'", dir);
    close(fd);
    return -1;
  }
  return fd;
}

static int cache_store(const char *dir, const char *key, const struct sock_fprog *prog,
                       berth_error *e) {
  char path[PATH_MAX];
  cache_path(dir, key, path, sizeof path);
  size_t keylen = strlen(key), size = prog->len * sizeof(struct sock_filter);
  struct cache_header h = {.version = CACHE_VERSION, .key_len = (uint32_t)keylen, .insn_count = prog->len};
  memcpy(h.magic, CACHE_MAGIC, sizeof h.magic);
  h.checksum = cache_checksum(key, keylen, prog->filter, size);
  cleanup_free char *data = malloc(sizeof h + keylen + size);
  if (!data) return berth_fail(e, ENOMEM, "seccomp cache");
  memcpy(data, &h, sizeof h);
  memcpy(data + sizeof h, key, keylen);
  memcpy(data + sizeof h + keylen, prog->filter, size);
  if (cache_dir_ready(dir, true, e) < 0) return -1;
  /* rename replaces a refused (foreign or group-writable) file too. */
  return write_file_atomic(path, data, sizeof h + keylen + size, 0600, e);
}

/* ------------------------------------------------------------------ build */

int seccomp_build(json_t *config, berth_seccomp **out, berth_error *e) {
  return seccomp_build_cached(config, NULL, out, e);
}

int seccomp_build_cached(json_t *config, const char *cache_dir, berth_seccomp **out,
                         berth_error *e) {
  *out = NULL;
  if (!config || json_is_null(config)) return 0;
  if (!json_is_object(config)) return berth_fail(e, 0, "linux.seccomp: expected an object");

  uint32_t def_action = 0;
  unsigned int flags = 0;
  bool uses_notify = false;
  if (validate(config, &def_action, &flags, &uses_notify, e) < 0) return -1;

  berth_seccomp *s = calloc(1, sizeof *s);
  if (!s) return berth_fail(e, ENOMEM, "linux.seccomp");
  s->listener_fd = -1;
  s->flags = flags;
  s->notify = uses_notify;

  cleanup_free char *key = cache_dir ? cache_key(config) : NULL;
  berth_error miss;
  if (!key || cache_load(cache_dir, key, &s->prog, &miss) < 0) {
    /* Containers started together miss together: the first compiles under
     * the lock, the others wait for it and then find its program. */
    cleanup_fd int lock = key ? cache_lock(cache_dir, &miss) : -1;
    if (lock < 0 || cache_load(cache_dir, key, &s->prog, &miss) < 0) {
      if (compile(config, def_action, &s->prog, e) < 0) {
        seccomp_free(s);
        return -1;
      }
      /* The cache only saves time: a failure to store it costs the next
       * start a compile, nothing else, so it does not fail this one. */
      berth_error ignored;
      if (key) (void)cache_store(cache_dir, key, &s->prog, &ignored);
    }
  }

  if (uses_notify) {
    const char *metadata = json_str(config, "listenerMetadata");
    if (metadata && !(s->metadata = strdup(metadata))) {
      seccomp_free(s);
      return berth_fail(e, ENOMEM, "linux.seccomp.listenerMetadata");
    }
    if (connect_listener(json_str(config, "listenerPath"), &s->listener_fd, e) < 0) {
      seccomp_free(s);
      return -1;
    }
  }
  *out = s;
  return 0;
}

/* ------------------------------------------------------------------ loading */

/* Without no_new_privs the kernel wants CAP_SYS_ADMIN in the effective set.
 * After setresuid to a non-root user (keepcaps on) the effective set is
 * empty while permitted still holds it: raise it from there. caps_apply
 * sets the final effective set afterwards. */
static int ensure_sys_admin_effective(berth_error *e) {
  int nnp = prctl(PR_GET_NO_NEW_PRIVS, 0L, 0L, 0L, 0L);
  if (nnp != 0) return 0;
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &hdr, d) < 0) return berth_fail_errno(e, "capget");
  unsigned int word = CAP_SYS_ADMIN / 32, bit = 1U << (CAP_SYS_ADMIN % 32);
  if (d[word].effective & bit) return 0;
  if (!(d[word].permitted & bit))
    return berth_fail(e, EPERM,
                      "load seccomp filter: without no_new_privileges the process needs "
                      "CAP_SYS_ADMIN, which it no longer holds");
  d[word].effective |= bit;
  if (syscall(SYS_capset, &hdr, d) < 0) return berth_fail_errno(e, "capset: raise CAP_SYS_ADMIN");
  return 0;
}

/* The OCI containerProcessState: what the listener gets beside the fd. */
static char *process_state(const berth_seccomp *s, const char *state_json, berth_error *e) {
  json_error_t jerr;
  cleanup_json json_t *state = state_json ? json_loads(state_json, 0, &jerr) : json_object();
  if (!json_is_object(state)) {
    berth_fail(e, EINVAL, "seccomp listener: container state is not a JSON object");
    return NULL;
  }
  const char *version = json_str(state, "ociVersion");
  json_t *pid = json_object_get(state, "pid");
  cleanup_json json_t *msg =
      json_pack("{s:s, s:[s], s:I, s:s, s:O}", "ociVersion", version ? version : "1.0.2", "fds",
                "seccompFd", "pid",
                json_is_integer(pid) ? json_integer_value(pid) : (json_int_t)getpid(), "metadata",
                s->metadata ? s->metadata : "", "state", state);
  char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
  if (!text) berth_fail(e, ENOMEM, "seccomp listener: container process state");
  return text;
}

static int send_fd(int sock, int fd, const char *text) {
  struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl.buf, .msg_controllen = sizeof ctrl.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do {
    n = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -1;
  if ((size_t)n != iov.iov_len) {
    errno = EMSGSIZE;
    return -1;
  }
  return 0;
}

int seccomp_install(berth_seccomp *s, const char *state_json, berth_error *e) {
  if (!s) return 0;
  /* Everything that allocates happens before the filter is in force. */
  cleanup_free char *text = NULL;
  if (s->notify && !(text = process_state(s, state_json, e))) return -1;
  if (ensure_sys_admin_effective(e) < 0) return -1;

  long rc = syscall(SYS_seccomp, SET_MODE_FILTER, s->flags, &s->prog);
  if (rc < 0) return berth_fail_errno(e, "load seccomp filter (%u instructions)", s->prog.len);
  if (!s->notify) {
    /* With TSYNC alone a positive value names a thread that could not be
     * synchronized. */
    if (rc > 0) return berth_fail(e, EAGAIN, "load seccomp filter: thread %ld not synchronized", rc);
    return 0;
  }

  cleanup_fd int notify_fd = (int)rc;
  if (send_fd(s->listener_fd, notify_fd, text) < 0)
    return berth_fail_errno(e, "send seccomp notify fd to the listener");
  close(s->listener_fd);
  s->listener_fd = -1;
  return 0;
}

void seccomp_free(berth_seccomp *s) {
  if (!s) return;
  free(s->prog.filter);
  if (s->listener_fd >= 0) close(s->listener_fd);
  free(s->metadata);
  free(s);
}

/* ------------------------------------------------------------------ features */

json_t *seccomp_features(void) {
  json_t *f = json_object();
  json_t *a = json_array(), *o = json_array(), *ar = json_array(), *known = json_array(),
         *supported = json_array();
  if (!f || !a || !o || !ar || !known || !supported) {
    json_decref(f);
    json_decref(a);
    json_decref(o);
    json_decref(ar);
    json_decref(known);
    json_decref(supported);
    return NULL;
  }
  for (size_t i = 0; i < BERTH_ARRAY_LEN(actions); i++)
    json_array_append_new(a, json_string(actions[i].name));
  for (size_t i = 0; i < BERTH_ARRAY_LEN(operators); i++)
    json_array_append_new(o, json_string(operators[i].name));
  for (size_t i = 0; i < BERTH_ARRAY_LEN(archs); i++)
    if (archs[i].token) json_array_append_new(ar, json_string(archs[i].name));
  for (size_t i = 0; i < BERTH_ARRAY_LEN(flags_known); i++) {
    json_array_append_new(known, json_string(flags_known[i].name));
    if (kernel_has_flag(flags_known[i].bit))
      json_array_append_new(supported, json_string(flags_known[i].name));
  }
  json_object_set_new(f, "enabled", json_true());
  json_object_set_new(f, "actions", a);
  json_object_set_new(f, "operators", o);
  json_object_set_new(f, "archs", ar);
  json_object_set_new(f, "knownFlags", known);
  json_object_set_new(f, "supportedFlags", supported);
  return f;
}
