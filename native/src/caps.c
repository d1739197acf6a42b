/* The five capability sets: bounding through PR_CAPBSET_DROP, effective,
 * permitted and inheritable through capset(2) (raw syscalls, version 3, so
 * no libcap is linked), ambient through PR_CAP_AMBIENT. */
#include "caps.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* Index = capability number. Names the kernel added later go at the end;
 * a name whose number is above the running kernel's last cap is accepted
 * and skipped, as runc does, so newer configs run on older kernels. */
static const char *const cap_names[] = {
    "CAP_CHOWN",           "CAP_DAC_OVERRIDE",   "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",          "CAP_FSETID",         "CAP_KILL",
    "CAP_SETGID",          "CAP_SETUID",         "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",       "CAP_NET_RAW",        "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",       "CAP_SYS_MODULE",     "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",     "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",       "CAP_SYS_BOOT",       "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",       "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",           "CAP_LEASE",          "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",        "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",       "CAP_SYSLOG",         "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",     "CAP_PERFMON",
    "CAP_BPF",             "CAP_CHECKPOINT_RESTORE",
};

#define CAP_COUNT ((int)BERTH_ARRAY_LEN(cap_names))

_Static_assert(BERTH_ARRAY_LEN(cap_names) <= 64, "capability sets are 64-bit masks");

static const char *cap_name(int cap) {
  return cap >= 0 && cap < CAP_COUNT ? cap_names[cap] : "CAP_?";
}

static int cap_lookup(const char *name) {
  for (int i = 0; i < CAP_COUNT; i++)
    if (strcmp(cap_names[i], name) == 0) return i;
  return -1;
}

/* The highest capability the running kernel knows. Probed with
 * PR_CAPBSET_READ (EINVAL past the last one) rather than read from
 * /proc/sys/kernel/cap_last_cap, because caps_apply runs after pivot_root
 * where /proc may not be mounted yet. */
static int cap_last_cap(void) {
  int last = -1;
  for (int cap = 0; cap < 64; cap++) {
    if (prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) < 0) break;
    last = cap;
  }
  return last;
}

static uint64_t kernel_mask(void) {
  int last = cap_last_cap();
  return last >= 63 ? ~UINT64_C(0) : (UINT64_C(1) << (last + 1)) - 1;
}

static int parse_set(json_t *caps, const char *set, uint64_t *out, berth_error *e) {
  *out = 0;
  json_t *arr = json_object_get(caps, set);
  if (!arr || json_is_null(arr)) return 0;
  if (!json_is_array(arr))
    return berth_fail(e, 0, "process.capabilities.%s: expected an array of capability names", set);
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    if (!json_is_string(v))
      return berth_fail(e, 0, "process.capabilities.%s[%zu]: expected a capability name string",
                        set, i);
    int cap = cap_lookup(json_string_value(v));
    if (cap < 0)
      return berth_fail(e, 0, "process.capabilities.%s: unknown capability \"%s\"", set,
                        json_string_value(v));
    *out |= UINT64_C(1) << cap;
  }
  return 0;
}

/* Combinations the kernel would refuse later with a bare EPERM are refused
 * here, naming the capability, before anything is created. */
static int check_subset(uint64_t set, uint64_t within, const char *set_name, const char *why,
                        berth_error *e) {
  uint64_t bad = set & ~within;
  if (!bad) return 0;
  int cap = __builtin_ctzll(bad);
  return berth_fail(e, 0, "process.capabilities.%s: %s %s", set_name, cap_name(cap), why);
}

int caps_parse(json_t *capabilities, caps_sets *out, berth_error *e) {
  memset(out, 0, sizeof *out);
  if (!capabilities || json_is_null(capabilities)) return 0;
  if (!json_is_object(capabilities))
    return berth_fail(e, 0, "process.capabilities: expected an object");
  const char *key;
  json_t *val;
  json_object_foreach(capabilities, key, val) {
    if (strcmp(key, "bounding") && strcmp(key, "effective") && strcmp(key, "inheritable") &&
        strcmp(key, "permitted") && strcmp(key, "ambient"))
      return berth_fail(e, 0, "process.capabilities: unknown set \"%s\"", key);
  }
  if (parse_set(capabilities, "bounding", &out->bounding, e) < 0 ||
      parse_set(capabilities, "effective", &out->effective, e) < 0 ||
      parse_set(capabilities, "inheritable", &out->inheritable, e) < 0 ||
      parse_set(capabilities, "permitted", &out->permitted, e) < 0 ||
      parse_set(capabilities, "ambient", &out->ambient, e) < 0)
    return -1;

  uint64_t mask = kernel_mask();
  out->bounding &= mask;
  out->effective &= mask;
  out->inheritable &= mask;
  out->permitted &= mask;
  out->ambient &= mask;

  /* The kernel raises an ambient capability only when it is permitted and
   * inheritable. runc's own `runc spec` lists ambient ones without the
   * inheritable set and runc goes on without them; so do we, so that the
   * bundles of runc users run unchanged. */
  out->ambient &= out->permitted & out->inheritable;

  if (check_subset(out->effective, out->permitted, "effective",
                   "is not in the permitted set (effective must be a subset of permitted)",
                   e) < 0 ||
      check_subset(out->inheritable, out->bounding, "inheritable",
                   "is not in the bounding set (the kernel refuses inheritable capabilities "
                   "outside the bounding set)", e) < 0)
    return -1;
  return 0;
}

int caps_keep_across_setuid(berth_error *e) {
  if (prctl(PR_SET_KEEPCAPS, 1L, 0L, 0L, 0L) < 0)
    return berth_fail_errno(e, "prctl(PR_SET_KEEPCAPS)");
  return 0;
}

static int capget_v3(uint64_t *eff, uint64_t *prm, uint64_t *inh) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2];
  memset(d, 0, sizeof d);
  if (syscall(SYS_capget, &hdr, d) < 0) return -1;
  *eff = (uint64_t)d[0].effective | ((uint64_t)d[1].effective << 32);
  *prm = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
  *inh = (uint64_t)d[0].inheritable | ((uint64_t)d[1].inheritable << 32);
  return 0;
}

static int capset_v3(uint64_t eff, uint64_t prm, uint64_t inh) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct d[2] = {
      {.effective = (uint32_t)eff, .permitted = (uint32_t)prm, .inheritable = (uint32_t)inh},
      {.effective = (uint32_t)(eff >> 32),
       .permitted = (uint32_t)(prm >> 32),
       .inheritable = (uint32_t)(inh >> 32)},
  };
  return (int)syscall(SYS_capset, &hdr, d);
}

/* Lists the capabilities in mask as "CAP_A,CAP_B" for error messages. */
static void mask_names(uint64_t mask, char *buf, size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (int cap = 0; cap < 64 && used < len; cap++) {
    if (!(mask & (UINT64_C(1) << cap))) continue;
    int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "", cap_name(cap));
    if (n < 0) break;
    used += (size_t)n;
  }
}

int caps_apply(const caps_sets *c, berth_error *e) {
  int last = cap_last_cap();
  if (last < 0) return berth_fail_errno(e, "prctl(PR_CAPBSET_READ): cannot find the last capability");

  /* After setresuid to a non-root user keepcaps leaves the permitted set
   * but empties the effective one; PR_CAPBSET_DROP needs CAP_SETPCAP in
   * effective, so raise effective to everything still permitted first. */
  uint64_t eff, prm, inh;
  if (capget_v3(&eff, &prm, &inh) < 0) return berth_fail_errno(e, "capget");
  if (eff != prm && capset_v3(prm, prm, inh) < 0)
    return berth_fail_errno(e, "capset: raise effective to the permitted set");

  for (int cap = 0; cap <= last; cap++) {
    if (c->bounding & (UINT64_C(1) << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0L, 0L, 0L) < 0)
      return berth_fail_errno(e, "prctl(PR_CAPBSET_DROP, %s)", cap_name(cap));
  }

  if (capset_v3(c->effective, c->permitted, c->inheritable) < 0) {
    int saved = errno;
    char missing[1024];
    mask_names(c->permitted & ~prm, missing, sizeof missing);
    if (saved == EPERM && missing[0])
      return berth_fail(e, saved, "capset: the runtime does not hold permitted %s", missing);
    return berth_fail(e, saved, "capset (effective, permitted, inheritable)");
  }

  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0L, 0L, 0L) < 0) {
    /* Kernels before 4.3 have no ambient set: fine unless one was asked for. */
    if (errno != EINVAL || c->ambient)
      return berth_fail_errno(e, "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
    return 0;
  }
  for (int cap = 0; cap <= last; cap++) {
    if (!(c->ambient & (UINT64_C(1) << cap))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, (unsigned long)cap, 0L, 0L) < 0)
      return berth_fail_errno(e, "prctl(PR_CAP_AMBIENT_RAISE, %s)", cap_name(cap));
  }
  return 0;
}

json_t *caps_features(void) {
  json_t *arr = json_array();
  if (!arr) return NULL;
  for (int i = 0; i < CAP_COUNT; i++) json_array_append_new(arr, json_string(cap_names[i]));
  return arr;
}
