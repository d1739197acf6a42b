// OCI bundles for tests: a copy of the busybox fixture rootfs and a
// config.json built from a base like the one `runc spec` prints, changed
// per test. A copy (not an overlay) keeps each bundle free of mounts, so a
// failed test cannot leave one behind, and lets a test make the rootfs hostile.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Spec } from './oci.js';
import { fixtureRootfs } from './paths.js';

export const defaultCaps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** A fresh base config: the shape `runc spec` gives, with a writable root,
 *  no terminal, all namespaces but user and time, and the given cgroup. */
export function baseSpec(args: string[], cgroupsPath: string): Spec {
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: {
        bounding: [...defaultCaps],
        effective: [...defaultCaps],
        permitted: [...defaultCaps],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: false },
    hostname: 'berth-test',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      namespaces: [
        { type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' },
      ],
      cgroupsPath,
      maskedPaths: [
        '/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
        '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

export interface Bundle {
  /** Absolute path of the bundle directory (holds config.json and rootfs/). */
  dir: string;
  rootfs: string;
  spec: Spec;
  /** Writes spec to config.json again (after a test changed it). */
  write(): void;
}

/** Makes a bundle in `dir` (which must not exist yet). */
export function makeBundle(dir: string, spec: Spec): Bundle {
  fs.mkdirSync(dir, { recursive: true });
  const rootfs = path.join(dir, 'rootfs');
  execFileSync('cp', ['-a', '--reflink=auto', fixtureRootfs, rootfs]);
  const bundle: Bundle = {
    dir,
    rootfs,
    spec,
    write() {
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(bundle.spec, null, 2));
    },
  };
  bundle.write();
  return bundle;
}
