/**
 * Berth's default seccomp profile, as data: equivalent in effect to Docker's
 * default profile (moby's profiles/seccomp/default.json, as its documentation
 * describes it): deny with EPERM by default, allow a large list of ordinary
 * system calls, allow `personality` only for the personas that programs ask
 * for, allow `clone` only without namespace flags, answer `clone3` with
 * ENOSYS (so libc falls back to `clone`, whose flags we can inspect), and
 * open further groups only when the container holds the capability that
 * the kernel would check anyway (CAP_SYS_ADMIN for mount/unshare/setns,
 * CAP_SYS_PTRACE for ptrace, ...).
 *
 * `defaultSeccomp(caps)` renders the OCI `linux.seccomp` object for a
 * container with the capability set `caps`.
 */
import { DEFAULT_CAPS } from './security.js';

/** One OCI seccomp argument condition. */
export interface SeccompArg {
  readonly index: number;
  readonly value: number;
  readonly valueTwo?: number;
  readonly op: 'SCMP_CMP_EQ' | 'SCMP_CMP_NE' | 'SCMP_CMP_MASKED_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_LE';
}

export interface SeccompRule {
  readonly names: readonly string[];
  readonly action: 'SCMP_ACT_ALLOW' | 'SCMP_ACT_ERRNO';
  readonly errnoRet?: number;
  readonly args?: readonly SeccompArg[];
}

export interface OciSeccomp {
  readonly defaultAction: 'SCMP_ACT_ERRNO';
  readonly defaultErrnoRet: number;
  readonly architectures: readonly string[];
  readonly syscalls: readonly SeccompRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Allowed for every container. */
const baseAllow: readonly string[] = [
  // files and descriptors
  'access', 'faccessat', 'faccessat2', 'chdir', 'fchdir', 'chmod', 'fchmod', 'fchmodat', 'fchmodat2', 'chown', 'chown32',
  'fchown', 'fchown32', 'fchownat', 'lchown', 'lchown32', 'close', 'close_range', 'creat', 'dup', 'dup2', 'dup3',
  'fcntl', 'fcntl64', 'flock', 'fsync', 'fdatasync', 'sync', 'syncfs', 'sync_file_range', 'ftruncate', 'ftruncate64',
  'truncate', 'truncate64', 'getcwd', 'getdents', 'getdents64', 'link', 'linkat', 'lseek', '_llseek', 'mkdir', 'mkdirat',
  'mknod', 'mknodat', 'open', 'openat', 'openat2', 'read', 'readv', 'pread64', 'preadv', 'preadv2', 'write', 'writev',
  'pwrite64', 'pwritev', 'pwritev2', 'readlink', 'readlinkat', 'rename', 'renameat', 'renameat2', 'rmdir', 'unlink',
  'unlinkat', 'symlink', 'symlinkat', 'stat', 'stat64', 'lstat', 'lstat64', 'fstat', 'fstat64', 'fstatat64',
  'newfstatat', 'statx', 'statfs', 'statfs64', 'fstatfs', 'fstatfs64', 'umask', 'utime', 'utimes', 'utimensat',
  'utimensat_time64', 'futimesat', 'copy_file_range', 'sendfile', 'sendfile64', 'splice', 'tee', 'vmsplice',
  'fallocate', 'fadvise64', 'fadvise64_64', 'arm_fadvise64_64', 'readahead', 'ioctl', 'getxattr', 'lgetxattr',
  'fgetxattr', 'listxattr', 'llistxattr', 'flistxattr', 'setxattr', 'lsetxattr', 'fsetxattr', 'removexattr',
  'lremovexattr', 'fremovexattr', 'getxattrat', 'listxattrat', 'setxattrat', 'removexattrat', 'memfd_create',
  'memfd_secret', 'name_to_handle_at', 'pipe', 'pipe2', 'inotify_init', 'inotify_init1', 'inotify_add_watch',
  'inotify_rm_watch', 'eventfd', 'eventfd2', 'signalfd', 'signalfd4', 'timerfd_create', 'timerfd_settime',
  'timerfd_settime64', 'timerfd_gettime', 'timerfd_gettime64', 'landlock_create_ruleset', 'landlock_add_rule',
  'landlock_restrict_self', 'cachestat', 'mseal',
  // polling and async io
  'select', '_newselect', 'pselect6', 'pselect6_time64', 'poll', 'ppoll', 'ppoll_time64', 'epoll_create',
  'epoll_create1', 'epoll_ctl', 'epoll_ctl_old', 'epoll_wait', 'epoll_wait_old', 'epoll_pwait', 'epoll_pwait2',
  'io_setup', 'io_destroy', 'io_submit', 'io_cancel', 'io_getevents', 'io_pgetevents', 'io_pgetevents_time64',
  'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  // memory
  'brk', 'mmap', 'mmap2', 'munmap', 'mremap', 'mprotect', 'pkey_mprotect', 'pkey_alloc', 'pkey_free', 'madvise',
  'mincore', 'mlock', 'mlock2', 'mlockall', 'munlock', 'munlockall', 'msync', 'remap_file_pages',
  'membarrier', 'set_mempolicy_home_node', 'map_shadow_stack',
  // processes, threads, signals
  'arch_prctl', 'capget', 'capset', 'execve', 'execveat', 'exit', 'exit_group', 'fork', 'vfork', 'wait4', 'waitid',
  'waitpid', 'getpid', 'getppid', 'gettid', 'getpgid', 'getpgrp', 'setpgid', 'getsid', 'setsid', 'getuid',
  'getuid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getegid', 'getegid32', 'getresuid', 'getresuid32',
  'getresgid', 'getresgid32', 'getgroups', 'getgroups32', 'setuid', 'setuid32', 'setgid', 'setgid32', 'setreuid',
  'setreuid32', 'setregid', 'setregid32', 'setresuid', 'setresuid32', 'setresgid', 'setresgid32', 'setgroups',
  'setgroups32', 'setfsuid', 'setfsuid32', 'setfsgid', 'setfsgid32', 'kill', 'tkill', 'tgkill', 'pidfd_open',
  'pidfd_send_signal', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo', 'rt_sigreturn',
  'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo', 'sigaction', 'sigaltstack',
  'signal', 'sigpending', 'sigprocmask', 'sigreturn', 'sigsuspend', 'pause', 'prctl', 'getpriority', 'setpriority',
  'getrlimit', 'ugetrlimit', 'setrlimit', 'prlimit64', 'getrusage', 'times', 'sched_getaffinity',
  'sched_setaffinity', 'sched_getattr', 'sched_setattr', 'sched_getparam', 'sched_setparam', 'sched_getscheduler',
  'sched_setscheduler', 'sched_get_priority_max', 'sched_get_priority_min', 'sched_rr_get_interval',
  'sched_rr_get_interval_time64', 'sched_yield', 'set_robust_list', 'get_robust_list', 'set_tid_address',
  'set_thread_area', 'get_thread_area', 'futex', 'futex_time64', 'futex_waitv', 'futex_wake', 'futex_wait',
  'futex_requeue', 'rseq', 'restart_syscall', 'ioprio_get', 'ioprio_set', 'uname', 'sysinfo', 'getcpu', 'getrandom',
  // time
  'alarm', 'clock_getres', 'clock_getres_time64', 'clock_gettime', 'clock_gettime64', 'clock_nanosleep',
  'clock_nanosleep_time64', 'gettimeofday', 'time', 'nanosleep', 'getitimer', 'setitimer', 'timer_create',
  'timer_delete', 'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64',
  // sockets
  'socket', 'socketpair', 'socketcall', 'bind', 'connect', 'listen', 'accept', 'accept4', 'getsockname',
  'getpeername', 'getsockopt', 'setsockopt', 'send', 'sendto', 'sendmsg', 'sendmmsg', 'recv', 'recvfrom', 'recvmsg',
  'recvmmsg', 'recvmmsg_time64', 'shutdown',
  // System V and POSIX IPC
  'ipc', 'msgctl', 'msgget', 'msgrcv', 'msgsnd', 'semctl', 'semget', 'semop', 'semtimedop', 'semtimedop_time64',
  'shmat', 'shmctl', 'shmdt', 'shmget', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive',
  'mq_timedreceive_time64', 'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink',
  'process_mrelease',
];

/** Groups opened by a capability the container holds. */
const byCapability: Readonly<Record<string, readonly string[]>> = {
  CAP_SYS_ADMIN: [
    'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie', 'mount',
    'mount_setattr', 'move_mount', 'open_tree', 'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname',
    'sethostname', 'setns', 'syslog', 'umount', 'umount2', 'unshare', 'pivot_root', 'listmount', 'statmount',
  ],
  CAP_DAC_READ_SEARCH: ['open_by_handle_at'],
  CAP_SYS_BOOT: ['reboot'],
  CAP_SYS_CHROOT: ['chroot'],
  CAP_SYS_MODULE: ['delete_module', 'init_module', 'finit_module'],
  CAP_SYS_PACCT: ['acct'],
  CAP_SYS_PTRACE: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
  CAP_SYS_RAWIO: ['iopl', 'ioperm'],
  CAP_SYS_TIME: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64', 'clock_adjtime', 'clock_adjtime64', 'adjtimex'],
  CAP_SYS_TTY_CONFIG: ['vhangup'],
  CAP_SYS_NICE: ['get_mempolicy', 'mbind', 'set_mempolicy', 'migrate_pages', 'move_pages'],
  CAP_SYSLOG: ['syslog'],
  CAP_BPF: ['bpf'],
  CAP_PERFMON: ['perf_event_open'],
};

/** Namespace flags that `clone` may not carry without CAP_SYS_ADMIN:
 *  CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP. */
const CLONE_NS_FLAGS = 0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000;

/** Personas allowed by `personality`: PER_LINUX, PER_LINUX32 (0x0008),
 *  UNAME26 (0x0020000), PER_LINUX32|UNAME26, and the query 0xffffffff. */
const PERSONAS = [0x0, 0x0008, 0x20000, 0x20008, 0xffffffff];

const ARCHITECTURES = ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'];

/**
 * The OCI seccomp object for a container holding `caps` (names with CAP_
 * prefix); frozen, and made once per set of capabilities. The default set's
 * is made while berth's start-up snapshot is built: a run would otherwise
 * spend ~0.4 ms in V8's interpreter sorting ~350 names.
 */
export const defaultSeccomp = (caps: readonly string[]): OciSeccomp => {
  const key = [...caps].sort().join(' ');
  let made = rendered.get(key);
  if (made === undefined) {
    made = deepFreeze(render(caps));
    rendered.set(key, made);
  }
  return made;
};

const rendered = new Map<string, OciSeccomp>();

const deepFreeze = <T>(v: T): T => {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
};

const render = (caps: readonly string[]): OciSeccomp => {
  const held = new Set(caps);
  const allow = new Set(baseAllow);
  for (const [cap, names] of Object.entries(byCapability)) if (held.has(cap)) for (const n of names) allow.add(n);
  const syscalls: SeccompRule[] = [{ names: [...allow].sort(), action: 'SCMP_ACT_ALLOW' }];
  for (const p of PERSONAS) {
    syscalls.push({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] });
  }
  if (!held.has('CAP_SYS_ADMIN')) {
    syscalls.push({ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: CLONE_NS_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] });
    // clone3 passes its flags in memory that seccomp cannot read: ENOSYS makes libc use clone
    syscalls.push({ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS });
  }
  return { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: EPERM, architectures: ARCHITECTURES, syscalls };
};

// made now, while the snapshot is built (see defaultSeccomp)
defaultSeccomp(DEFAULT_CAPS);
