// The container's filesystem as berth-runtime builds it (native/src/rootfs.c,
// mount.c, devices.c), run through native/tests/rootfs/rootfs-driver: it
// unshares mount, pid and ipc namespaces (and a user namespace on request),
// runs rootfs_prepare / rootfs_pivot / rootfs_bind_console / rootfs_finalize,
// then execs busybox inside or prints mountinfo and /dev as JSON. Every mount
// lives in the child's namespaces; the tests remove their temp dirs.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const driver = path.join(repo, 'native/build/tests/rootfs/rootfs-driver');
const busybox = '/bin/busybox';
const isRoot = process.getuid?.() === 0;
const haveBusybox = fs.existsSync(busybox);
const skipReason = !isRoot
  ? 'needs root (mount namespaces, mknod)'
  : !haveBusybox
    ? 'needs busybox-static at /bin/busybox'
    : '';

let base = '';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface MountLine {
  root: string;
  mountPoint: string;
  opts: string[];
  optional: string[];
  fstype: string;
  source: string;
  superOpts: string[];
}

interface DevEntry {
  type: string;
  mode: number;
  major: number;
  minor: number;
  uid: number;
  gid: number;
  target?: string;
}

interface Report {
  mountinfo: string;
  dev: Record<string, DevEntry>;
  cwd: string;
}

type Json = Record<string, unknown>;

let counter = 0;

/** A fresh busybox rootfs (busybox --install -s in a chroot) in the test's temp dir. */
function makeRootfs(): string {
  const dir = path.join(base, `rootfs-${counter++}`);
  fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
  fs.copyFileSync(busybox, path.join(dir, 'bin/busybox'));
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755);
  execFileSync('chroot', [dir, '/bin/busybox', '--install', '-s', '/bin']);
  for (const d of ['etc', 'proc', 'sys', 'dev', 'tmp']) fs.mkdirSync(path.join(dir, d), { recursive: true });
  return dir;
}

function run(config: Json, rootfs: string, flags: string[] = [], cmd?: string[]): Run {
  const cfgPath = path.join(base, `config-${counter++}.json`);
  fs.writeFileSync(cfgPath, JSON.stringify({ ociVersion: '1.2.0', root: { path: rootfs }, ...config }));
  const args = [...flags, cfgPath, rootfs, ...(cmd ? ['--', ...cmd] : [])];
  const r = spawnSync(driver, args, { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a shell script inside the container; fails the test if the driver fails. */
function sh(config: Json, rootfs: string, script: string, flags: string[] = []): string {
  const r = run(config, rootfs, flags, ['/bin/sh', '-c', script]);
  expect(r.stderr).not.toMatch(/rootfs-driver:/);
  expect(r.status, r.stderr).toBe(0);
  return r.stdout + r.stderr;
}

function report(config: Json, rootfs: string, flags: string[] = []): Report {
  const r = run(config, rootfs, flags);
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

function parseMountinfo(text: string): MountLine[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const f = line.split(' ');
      const sep = f.indexOf('-');
      return {
        root: f[3] ?? '',
        mountPoint: f[4] ?? '',
        opts: (f[5] ?? '').split(','),
        optional: f.slice(6, sep),
        fstype: f[sep + 1] ?? '',
        source: f[sep + 2] ?? '',
        superOpts: (f[sep + 3] ?? '').split(','),
      };
    });
}

/** The topmost mount at a mount point (the last one listed). */
function mountAt(lines: MountLine[], mp: string): MountLine {
  const found = lines.filter((l) => l.mountPoint === mp);
  const m = found[found.length - 1];
  if (!m) throw new Error(`no mount at ${mp} in:\n${lines.map((l) => l.mountPoint).join('\n')}`);
  return m;
}

const PROC = { destination: '/proc', type: 'proc', source: 'proc' };
const DEV = {
  destination: '/dev',
  type: 'tmpfs',
  source: 'tmpfs',
  options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
};
const DEVPTS = {
  destination: '/dev/pts',
  type: 'devpts',
  source: 'devpts',
  options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
};
const STD_MOUNTS = [PROC, DEV, DEVPTS];

beforeAll(() => {
  if (skipReason) return;
  execFileSync('make', ['-s', '-C', path.join(repo, 'native/tests/rootfs')], { stdio: 'pipe' });
  base = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-rootfs-test-'));
});

afterAll(() => {
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

describe.skipIf(!!skipReason)(`rootfs mounts ${skipReason ? `(skipped: ${skipReason})` : ''}`, () => {
  it('mounts proc, tmpfs, devpts, mqueue, sysfs and binds with their flags and data', () => {
    const rootfs = makeRootfs();
    const hostDir = fs.mkdtempSync(path.join(base, 'hostdir-'));
    fs.writeFileSync(path.join(hostDir, 'file'), 'from the host\n');
    const config = {
      mounts: [
        ...STD_MOUNTS,
        { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=1m'] },
        { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
        { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        { destination: '/data', type: 'bind', source: hostDir, options: ['rbind', 'ro'] },
        { destination: '/etc/hostfile', type: 'bind', source: path.join(hostDir, 'file'), options: ['bind', 'nosuid', 'nodev'] },
        { destination: '/t/atime', type: 'tmpfs', source: 't1', options: ['noatime', 'nodiratime', 'nosymfollow', 'sync', 'dirsync'] },
        { destination: '/t/ro', type: 'tmpfs', source: 't2', options: ['ro', 'noexec', 'mode=700', 'uid=12', 'gid=34'] },
        { destination: '/t/lazy', type: 'tmpfs', source: 't3', options: ['lazytime', 'strictatime', 'suid', 'dev', 'exec', 'async', 'nomand', 'nr_inodes=100'] },
        { destination: '/t/relatime', type: 'tmpfs', source: 't4', options: ['noatime', 'relatime', 'diratime', 'rw', 'defaults'] },
      ],
    };
    const rep = report(config, rootfs);
    const mi = parseMountinfo(rep.mountinfo);
    expect(rep.cwd).toBe('/');

    const root = mountAt(mi, '/');
    expect(root.root).toBe(rootfs);
    expect(mountAt(mi, '/proc').fstype).toBe('proc');

    const dev = mountAt(mi, '/dev');
    expect(dev.fstype).toBe('tmpfs');
    expect(dev.opts).toContain('nosuid');
    expect(dev.opts).not.toContain('relatime'); // strictatime
    expect(dev.superOpts).toEqual(expect.arrayContaining(['size=65536k', 'mode=755']));

    const pts = mountAt(mi, '/dev/pts');
    expect(pts.fstype).toBe('devpts');
    expect(pts.opts).toEqual(expect.arrayContaining(['nosuid', 'noexec']));
    expect(pts.superOpts).toEqual(expect.arrayContaining(['gid=5', 'mode=620', 'ptmxmode=666']));

    const shm = mountAt(mi, '/dev/shm');
    expect(shm.source).toBe('shm');
    expect(shm.opts).toEqual(expect.arrayContaining(['nosuid', 'nodev', 'noexec']));
    expect(shm.superOpts).toContain('size=1024k');

    expect(mountAt(mi, '/dev/mqueue').fstype).toBe('mqueue');

    const sys = mountAt(mi, '/sys');
    expect(sys.fstype).toBe('sysfs');
    expect(sys.opts).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));

    const data = mountAt(mi, '/data');
    expect(data.root).toBe(hostDir);
    expect(data.opts).toContain('ro');

    const hf = mountAt(mi, '/etc/hostfile');
    expect(hf.root).toBe(path.join(hostDir, 'file'));
    expect(hf.opts).toEqual(expect.arrayContaining(['rw', 'nosuid', 'nodev']));

    const at = mountAt(mi, '/t/atime');
    expect(at.opts).toEqual(expect.arrayContaining(['noatime', 'nodiratime', 'nosymfollow']));
    expect(at.superOpts).toEqual(expect.arrayContaining(['sync', 'dirsync']));

    const ro = mountAt(mi, '/t/ro');
    expect(ro.opts).toEqual(expect.arrayContaining(['ro', 'noexec']));
    expect(ro.superOpts).toEqual(expect.arrayContaining(['ro', 'mode=700', 'uid=12', 'gid=34']));

    const lazy = mountAt(mi, '/t/lazy');
    expect(lazy.opts).not.toEqual(expect.arrayContaining(['nosuid']));
    expect(lazy.opts).not.toContain('relatime');
    expect(lazy.superOpts).toEqual(expect.arrayContaining(['lazytime', 'nr_inodes=100']));

    const rel = mountAt(mi, '/t/relatime');
    expect(rel.opts).toEqual(expect.arrayContaining(['rw', 'relatime']));
    expect(rel.opts).not.toContain('noatime');
    expect(rel.opts).not.toContain('nodiratime');
  });

  it('mounts overlay with its data given as one mount(8) string or as separate options', () => {
    const rootfs = makeRootfs();
    const ov = fs.mkdtempSync(path.join(base, 'ov-'));
    for (const d of ['l1', 'l2', 'u', 'w']) fs.mkdirSync(path.join(ov, d));
    fs.writeFileSync(path.join(ov, 'l1/a'), 'a\n');
    fs.writeFileSync(path.join(ov, 'l2/b'), 'b\n');
    const out = sh(
      {
        mounts: [
          PROC,
          {
            destination: '/ov',
            type: 'overlay',
            source: 'overlay',
            options: [`lowerdir=${ov}/l1:${ov}/l2,upperdir=${ov}/u`, `workdir=${ov}/w`, 'nodev'],
          },
        ],
      },
      rootfs,
      'cat /ov/a /ov/b; echo c > /ov/c; grep " /ov " /proc/self/mountinfo',
    );
    expect(out).toMatch(/^a\nb\n/);
    expect(out).toMatch(/ \/ov rw,nodev,relatime( \S+)* - overlay overlay .*lowerdir=/);
    expect(fs.readFileSync(path.join(ov, 'u/c'), 'utf8')).toBe('c\n');
  });

  it('makes ro binds and ro mounts really read-only, and leaves rw binds writable', () => {
    const rootfs = makeRootfs();
    const roDir = fs.mkdtempSync(path.join(base, 'ro-'));
    const rwDir = fs.mkdtempSync(path.join(base, 'rw-'));
    const out = sh(
      {
        mounts: [
          ...STD_MOUNTS,
          { destination: '/ro', type: 'bind', source: roDir, options: ['bind', 'ro'] },
          { destination: '/rw', type: 'bind', source: rwDir, options: ['rbind', 'rw'] },
          { destination: '/rotmp', type: 'tmpfs', source: 'tmpfs', options: ['ro'] },
        ],
      },
      rootfs,
      'touch /ro/x; touch /rotmp/x; echo written > /rw/y; echo done',
    );
    expect(out).toMatch(/touch: \/ro\/x: Read-only file system/);
    expect(out).toMatch(/touch: \/rotmp\/x: Read-only file system/);
    expect(out).toMatch(/done/);
    expect(fs.readdirSync(roDir)).toEqual([]);
    expect(fs.readFileSync(path.join(rwDir, 'y'), 'utf8')).toBe('written\n');
  });

  it('applies recursive attributes (rro) to submounts and "remount" to an existing mount', () => {
    const rootfs = makeRootfs();
    const src = fs.mkdtempSync(path.join(base, 'rec-'));
    fs.mkdirSync(path.join(src, 'sub'));
    const rep = report(
      {
        mounts: [
          ...STD_MOUNTS,
          { destination: '/src/sub', type: 'tmpfs', source: 'inner' },
          { destination: '/rec', type: 'bind', source: `${rootfs}/src`, options: ['rbind', 'rro'] },
          { destination: '/plain', type: 'bind', source: `${rootfs}/src`, options: ['rbind', 'ro'] },
          { destination: '/src/sub', type: 'none', options: ['remount', 'bind', 'ro', 'nosuid'] },
        ],
      },
      rootfs,
    );
    const mi = parseMountinfo(rep.mountinfo);
    expect(mountAt(mi, '/rec').opts).toContain('ro');
    expect(mountAt(mi, '/rec/sub').opts).toContain('ro');
    expect(mountAt(mi, '/plain').opts).toContain('ro');
    expect(mountAt(mi, '/plain/sub').opts).toContain('rw');
    expect(mountAt(mi, '/src/sub').opts).toEqual(expect.arrayContaining(['ro', 'nosuid']));
  });

  it('sets per-mount propagation and applies rootfsPropagation last', () => {
    const rootfs = makeRootfs();
    const config = (prop?: string) => ({
      mounts: [
        PROC,
        { destination: '/shared', type: 'tmpfs', source: 'a', options: ['shared'] },
        { destination: '/unbind', type: 'tmpfs', source: 'b', options: ['runbindable'] },
        { destination: '/priv', type: 'tmpfs', source: 'c', options: ['rprivate'] },
      ],
      ...(prop ? { linux: { rootfsPropagation: prop } } : {}),
    });
    let mi = parseMountinfo(report(config(), rootfs).mountinfo);
    expect(mountAt(mi, '/shared').optional.some((o) => o.startsWith('shared:'))).toBe(true);
    expect(mountAt(mi, '/unbind').optional).toContain('unbindable');
    expect(mountAt(mi, '/priv').optional).toEqual([]);

    mi = parseMountinfo(report(config('rshared'), rootfs).mountinfo);
    for (const mp of ['/', '/proc', '/priv']) {
      expect(mountAt(mi, mp).optional.some((o) => o.startsWith('shared:')), mp).toBe(true);
    }
    mi = parseMountinfo(report(config('private'), rootfs).mountinfo);
    expect(mountAt(mi, '/').optional).toEqual([]);
    mi = parseMountinfo(report(config('runbindable'), rootfs).mountinfo);
    expect(mountAt(mi, '/').optional).toContain('unbindable');
    expect(mountAt(mi, '/proc').optional).toContain('unbindable');
  });

  it('with rootfsPropagation rshared, a container mount under an rshared bind reaches the outer namespace', () => {
    // The "host" is a private mount namespace of its own (unshare -m), so
    // nothing reaches the real host; in it the bind source is a shared mount.
    const rootfs = makeRootfs();
    const src = fs.mkdtempSync(path.join(base, 'shared-'));
    fs.mkdirSync(path.join(src, 'sub'));
    const outer = (config: Json): string => {
      const cfgPath = path.join(base, `config-${counter++}.json`);
      fs.writeFileSync(cfgPath, JSON.stringify({ ociVersion: '1.2.0', root: { path: rootfs }, ...config }));
      const script = [
        `mount --bind ${src} ${src}`,
        `mount --make-shared ${src}`,
        `${driver} ${cfgPath} ${rootfs} -- /bin/sh -c 'mount -t tmpfs fromctr /shared/sub && echo mounted'`,
        'echo outer-sees=$(grep -c fromctr /proc/self/mountinfo)',
      ].join(' && ');
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8', timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    };
    const mounts = [PROC, { destination: '/shared', type: 'bind', source: src, options: ['rbind', 'rshared'] }];
    expect(outer({ mounts, linux: { rootfsPropagation: 'rshared' } })).toMatch(/mounted\nouter-sees=1/);
    // The default (rslave) lets nothing out.
    expect(outer({ mounts })).toMatch(/mounted\nouter-sees=0/);
  });

  it('masks files with /dev/null and directories with an empty read-only tmpfs; missing paths are fine', () => {
    const rootfs = makeRootfs();
    fs.writeFileSync(path.join(rootfs, 'etc/secret'), 'top secret\n');
    fs.mkdirSync(path.join(rootfs, 'etc/secretdir'));
    fs.writeFileSync(path.join(rootfs, 'etc/secretdir/inner'), 'inner secret\n');
    const out = sh(
      {
        mounts: STD_MOUNTS,
        linux: { maskedPaths: ['/etc/secret', '/etc/secretdir', '/does/not/exist', '/proc/kcore'] },
      },
      rootfs,
      'echo "[$(cat /etc/secret)]"; echo "<$(ls -A /etc/secretdir)>"; touch /etc/secretdir/x; echo new > /etc/secret; echo "[$(cat /etc/secret)]"',
    );
    expect(out).toMatch(/^\[\]$/m);
    expect(out).toMatch(/^<>$/m);
    expect(out).toMatch(/touch: \/etc\/secretdir\/x: Read-only file system/);
    expect(fs.readFileSync(path.join(rootfs, 'etc/secret'), 'utf8')).toBe('top secret\n');
  });

  it('makes readonlyPaths read-only (EROFS), /proc/sys included', () => {
    const rootfs = makeRootfs();
    fs.mkdirSync(path.join(rootfs, 'srv/ro'), { recursive: true });
    const out = sh(
      { mounts: STD_MOUNTS, linux: { readonlyPaths: ['/proc/sys', '/srv/ro', '/no/such/path'] } },
      rootfs,
      'touch /srv/ro/x; echo 1 > /proc/sys/vm/overcommit_memory; grep -E " /(srv/ro|proc/sys) " /proc/self/mountinfo',
    );
    expect(out).toMatch(/touch: \/srv\/ro\/x: Read-only file system/);
    expect(out).toMatch(/overcommit_memory: Read-only file system/);
    const lines = parseMountinfo(out.split('\n').filter((l) => / - /.test(l)).join('\n'));
    expect(mountAt(lines, '/srv/ro').opts).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
    expect(mountAt(lines, '/proc/sys').opts).toContain('ro');
  });

  it('remounts / read-only for root.readonly, keeping mounts under it writable', () => {
    const rootfs = makeRootfs();
    const out = sh(
      { root: { path: rootfs, readonly: true }, mounts: [...STD_MOUNTS, { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }] },
      rootfs,
      'touch /x; touch /tmp/y && echo tmp-ok; echo > /dev/null && echo dev-ok; awk \'$5 == "/" { print "root " $6 }\' /proc/self/mountinfo',
    );
    expect(out).toMatch(/touch: \/x: Read-only file system/);
    expect(out).toMatch(/tmp-ok/);
    expect(out).toMatch(/dev-ok/);
    expect(out).toMatch(/^root ro,/m);
  });
});

describe.skipIf(!!skipReason)('rootfs /dev', () => {
  it('creates the default devices with their numbers and mode 0666, and config.linux.devices', () => {
    const rootfs = makeRootfs();
    const rep = report(
      {
        mounts: STD_MOUNTS,
        linux: {
          devices: [
            { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o640, uid: 12, gid: 34 },
            { path: '/dev/myloop', type: 'b', major: 7, minor: 200, fileMode: 0o600 },
            { path: '/dev/fifo', type: 'p', fileMode: 0o620 },
            { path: '/dev/null', type: 'c', major: 1, minor: 3, fileMode: 0o600 },
            { path: '/dev/net/tun', type: 'u', major: 10, minor: 200 },
          ],
        },
      },
      rootfs,
    );
    const want: Record<string, [number, number]> = {
      zero: [1, 5],
      full: [1, 7],
      random: [1, 8],
      urandom: [1, 9],
      tty: [5, 0],
    };
    for (const [name, [maj, min]] of Object.entries(want)) {
      expect(rep.dev[name], name).toMatchObject({ type: 'c', major: maj, minor: min, mode: 0o666, uid: 0, gid: 0 });
    }
    // A config entry for a default device wins.
    expect(rep.dev.null).toMatchObject({ type: 'c', major: 1, minor: 3, mode: 0o600 });
    expect(rep.dev.fuse).toMatchObject({ type: 'c', major: 10, minor: 229, mode: 0o640, uid: 12, gid: 34 });
    expect(rep.dev.myloop).toMatchObject({ type: 'b', major: 7, minor: 200, mode: 0o600 });
    expect(rep.dev.fifo).toMatchObject({ type: 'p', mode: 0o620 });
    expect(rep.dev.net?.type).toBe('d');
  });

  it('creates the /dev symlinks', () => {
    const rootfs = makeRootfs();
    const rep = report({ mounts: STD_MOUNTS }, rootfs);
    expect(rep.dev.fd).toMatchObject({ type: 'l', target: '/proc/self/fd' });
    expect(rep.dev.stdin).toMatchObject({ type: 'l', target: '/proc/self/fd/0' });
    expect(rep.dev.stdout).toMatchObject({ type: 'l', target: '/proc/self/fd/1' });
    expect(rep.dev.stderr).toMatchObject({ type: 'l', target: '/proc/self/fd/2' });
    expect(rep.dev.ptmx).toMatchObject({ type: 'l', target: 'pts/ptmx' });
    if (fs.existsSync('/proc/kcore')) expect(rep.dev.core).toMatchObject({ type: 'l', target: '/proc/kcore' });
    else expect(rep.dev.core).toBeUndefined();
    const out = sh({ mounts: STD_MOUNTS }, rootfs, 'echo via-fd | cat /dev/stdin; ls /dev/fd/ | head -1');
    expect(out).toMatch(/via-fd/);
  });

  it('creates devices in the image\'s own /dev when no /dev mount is configured, and none under a bound /dev', () => {
    const rootfs = makeRootfs();
    const rep = report({ mounts: [PROC] }, rootfs);
    expect(rep.dev.null).toMatchObject({ type: 'c', major: 1, minor: 3 });
    expect(fs.lstatSync(path.join(rootfs, 'dev/null')).isCharacterDevice()).toBe(true);

    const hostDev = fs.mkdtempSync(path.join(base, 'hostdev-'));
    const rootfs2 = makeRootfs();
    const rep2 = report({ mounts: [PROC, { destination: '/dev', type: 'bind', source: hostDev, options: ['rbind'] }] }, rootfs2);
    expect(rep2.dev).toEqual({});
    expect(fs.readdirSync(hostDev)).toEqual([]);
  });

  it('binds /dev/console to the terminal slave', () => {
    const rootfs = makeRootfs();
    const rep = report({ mounts: STD_MOUNTS }, rootfs, ['--console']);
    // Unix98 pty slaves: majors 136-143.
    expect(rep.dev.console?.type).toBe('c');
    expect(rep.dev.console?.major).toBeGreaterThanOrEqual(136);
    expect(rep.dev.console?.major).toBeLessThanOrEqual(143);
    const mi = parseMountinfo(rep.mountinfo);
    expect(mountAt(mi, '/dev/console').fstype).toBe('devpts');
  });

  it('in a user namespace, binds devices from the host and sysfs from the host', () => {
    const rootfs = makeRootfs();
    const rep = report(
      {
        mounts: [
          ...STD_MOUNTS,
          { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
        ],
        linux: { devices: [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229 }] },
      },
      rootfs,
      ['--userns'],
    );
    const mi = parseMountinfo(rep.mountinfo);
    for (const name of ['null', 'zero', 'full', 'random', 'urandom', 'tty', 'fuse']) {
      const m = mountAt(mi, `/dev/${name}`);
      expect(m.root, name).toBe(`/${name}`);
      expect(rep.dev[name]?.type, name).toBe('c');
    }
    expect(rep.dev.null).toMatchObject({ major: 1, minor: 3 });
    const sys = mountAt(mi, '/sys');
    expect(sys.fstype).toBe('sysfs');
    expect(sys.opts).toEqual(expect.arrayContaining(['ro', 'nosuid', 'nodev', 'noexec']));
  });

  it('works with --no-pivot (MS_MOVE + chroot)', () => {
    const rootfs = makeRootfs();
    const out = sh({ mounts: STD_MOUNTS, linux: { maskedPaths: ['/etc'] } }, rootfs, 'ls /; pwd; ls /etc | wc -l', ['--no-pivot']);
    expect(out).toMatch(/^bin$/m);
    expect(out).toMatch(/^\/$/m);
    expect(out).toMatch(/^0$/m);
  });
});

describe.skipIf(!!skipReason).each([
  ['openat2', []],
  ['the fallback resolver (openat2 hidden by seccomp)', ['--no-openat2']],
])('a hostile rootfs, resolved with %s', (_name, flags: string[]) => {
  it('a dev symlink to a host dir gets its tmpfs and devices inside the rootfs', () => {
    const rootfs = makeRootfs();
    const outside = fs.mkdtempSync(path.join(base, 'outside-'));
    fs.rmSync(path.join(rootfs, 'dev'), { recursive: true });
    fs.symlinkSync(outside, path.join(rootfs, 'dev'));
    const rep = report({ mounts: STD_MOUNTS }, rootfs, flags);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(rep.dev.null).toMatchObject({ type: 'c', major: 1, minor: 3 });
    // The tmpfs landed at <rootfs><outside>, seen from inside as <outside>.
    expect(mountAt(parseMountinfo(rep.mountinfo), outside).fstype).toBe('tmpfs');
    expect(fs.existsSync(path.join(rootfs, outside))).toBe(true);
  });

  it('a /dev/null (and /dev/console, /dev/ptmx) symlinked to a host file leaves that file untouched', () => {
    const rootfs = makeRootfs();
    const secret = path.join(base, `secret-${counter++}`);
    fs.writeFileSync(secret, 'host secret\n', { mode: 0o600 });
    for (const n of ['null', 'zero', 'console', 'ptmx']) fs.symlinkSync(secret, path.join(rootfs, 'dev', n));
    const out = sh(
      { mounts: [PROC, DEVPTS], linux: { maskedPaths: ['/etc/passwd-masked'] } },
      rootfs,
      'echo overwrite > /dev/null; echo overwrite > /dev/zero; ls -l /dev/null /dev/console',
      ['--console', ...flags],
    );
    expect(out).toMatch(/^c.* 1, +3 .*\/dev\/null$/m);
    expect(out).toMatch(/^c.* \/dev\/console$/m);
    expect(fs.readFileSync(secret, 'utf8')).toBe('host secret\n');
    expect(fs.statSync(secret).mode & 0o7777).toBe(0o600);
    expect(fs.lstatSync(path.join(rootfs, 'dev/null')).isCharacterDevice()).toBe(true);
  });

  it('mount destinations through ../../.., an absolute symlink, and a symlinked file stay inside', () => {
    const rootfs = makeRootfs();
    const outside = fs.mkdtempSync(path.join(base, 'outside-'));
    const hostFile = path.join(base, `victim-${counter++}`);
    fs.writeFileSync(hostFile, 'victim\n');
    const src = fs.mkdtempSync(path.join(base, 'src-'));
    fs.writeFileSync(path.join(src, 'f'), 'bound\n');
    fs.symlinkSync(outside, path.join(rootfs, 'abs'));
    fs.symlinkSync('../../../../../../../..', path.join(rootfs, 'up'));
    fs.symlinkSync(hostFile, path.join(rootfs, 'etc/victim'));
    const rel = path.relative('/', outside);
    const config = {
      mounts: [
        PROC,
        { destination: `/../../../../${rel}/dots`, type: 'tmpfs', source: 'dots' },
        { destination: '/abs/sub', type: 'tmpfs', source: 'abs' },
        { destination: `/up/up/${rel}/viaup`, type: 'tmpfs', source: 'up' },
        { destination: '/etc/victim', type: 'bind', source: path.join(src, 'f'), options: ['bind', 'ro'] },
      ],
      linux: { maskedPaths: ['/abs'], readonlyPaths: ['/up'] },
    };
    const out = sh(config, rootfs, 'cat /etc/victim; grep -c tmpfs /proc/self/mountinfo', flags);
    expect(out).toMatch(/bound/);
    expect(fs.readdirSync(outside)).toEqual([]);
    expect(fs.readFileSync(hostFile, 'utf8')).toBe('victim\n');
    for (const d of ['dots', 'sub', 'viaup']) expect(fs.existsSync(path.join(rootfs, outside, d)), d).toBe(true);
    expect(fs.existsSync(path.join(rootfs, hostFile))).toBe(true);
  });
  it('a bind onto a dangling relative symlink (an Ubuntu-style /etc/resolv.conf) creates its target inside', () => {
    const rootfs = makeRootfs();
    const src = path.join(base, `resolv-${counter++}`);
    fs.writeFileSync(src, 'nameserver 192.0.2.53\n');
    fs.symlinkSync('../run/systemd/resolve/stub-resolv.conf', path.join(rootfs, 'etc/resolv.conf'));
    const out = sh(
      { mounts: [PROC, { destination: '/etc/resolv.conf', type: 'bind', source: src, options: ['bind', 'ro'] }] },
      rootfs,
      'cat /etc/resolv.conf',
      flags,
    );
    expect(out).toMatch(/nameserver 192\.0\.2\.53/);
    expect(fs.statSync(path.join(rootfs, 'run/systemd/resolve/stub-resolv.conf')).isFile()).toBe(true);
  });
  it('refuses proc and sysfs through a symlink (a later mount could cover their target)', () => {
    const rootfs = makeRootfs();
    fs.rmSync(path.join(rootfs, 'proc'), { recursive: true });
    fs.mkdirSync(path.join(rootfs, 'tmp/fakeproc'));
    fs.symlinkSync('/tmp/fakeproc', path.join(rootfs, 'proc'));
    const r = run({ mounts: [PROC, { destination: '/tmp', type: 'tmpfs', source: 'tmpfs' }] }, rootfs, flags);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/mounts\[0\] \(proc on \/proc\): destination: proc must be mounted on a plain directory, not through a symlink/);

    const rootfs2 = makeRootfs();
    fs.mkdirSync(path.join(rootfs2, 'real'));
    fs.symlinkSync('real', path.join(rootfs2, 'sysdir'));
    const r2 = run({ mounts: [{ destination: '/sysdir/sys', type: 'sysfs', source: 'sysfs' }] }, rootfs2, flags);
    expect(r2.status).toBe(1);
    expect(r2.stderr).toMatch(/mounts\[0\] \(sysfs on \/sysdir\/sys\): destination: sysfs must be mounted on a plain directory/);
  });
});

describe.skipIf(!!skipReason)('rootfs errors', () => {
  const cases: [string, Json, RegExp][] = [
    [
      'an unknown tmpfs option',
      { mounts: [PROC, { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'sizee=1'] }] },
      /mounts\[1\] \(tmpfs on \/run\): mount: invalid option "sizee=1" \(tmpfs: Unknown parameter 'sizee'\): Invalid argument/,
    ],
    [
      'a bad option value',
      { mounts: [{ destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['size=lots'] }] },
      /mounts\[0\] \(tmpfs on \/run\): mount: invalid option "size=lots" .*Invalid argument/,
    ],
    [
      'an unknown filesystem type',
      { mounts: [{ destination: '/x', type: 'nosuchfs', source: 'x' }] },
      /mounts\[0\] \(nosuchfs on \/x\): mount: unknown filesystem type "nosuchfs": No such device/,
    ],
    [
      'an idmapped mount',
      { mounts: [{ destination: '/x', type: 'bind', source: '/tmp', options: ['rbind', 'idmap'] }] },
      /mounts\[0\] \(bind on \/x\): mount: option "idmap" \(idmapped mounts\) is not supported/,
    ],
    [
      'data on a bind mount',
      { mounts: [{ destination: '/x', type: 'bind', source: '/tmp', options: ['rbind', 'mode=755'] }] },
      /mounts\[0\] \(bind on \/x\): mount: invalid option "mode=755" \(a bind mount takes no data\)/,
    ],
    [
      'a missing bind source',
      { mounts: [{ destination: '/x', type: 'bind', source: '/no/such/source', options: ['bind'] }] },
      /mounts\[0\] \(bind on \/x\): bind mount: source '\/no\/such\/source': No such file or directory/,
    ],
    [
      'a missing destination',
      { mounts: [{ type: 'tmpfs', source: 'tmpfs' }] },
      /mounts\[0\]: destination is missing/,
    ],
    [
      'a bad rootfsPropagation',
      { linux: { rootfsPropagation: 'sideways' } },
      /linux\.rootfsPropagation: invalid propagation "sideways"/,
    ],
    [
      'a bad device type',
      { linux: { devices: [{ path: '/dev/x', type: 'z', major: 1, minor: 1 }] } },
      /linux\.devices\[0\] \(\/dev\/x\): type: expected c, b, u or p/,
    ],
    [
      'a device without numbers',
      { linux: { devices: [{ path: '/dev/x', type: 'c' }] } },
      /linux\.devices\[0\]: major is missing/,
    ],
  ];
  it.each(cases)('reports %s with the mount and the field', (_name, config, message) => {
    const rootfs = makeRootfs();
    const r = run(config, rootfs);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
  });

  it('refuses a /dev/null that is not the null device when masking', () => {
    const rootfs = makeRootfs();
    fs.writeFileSync(path.join(rootfs, 'etc/secret'), 'x');
    // A bound /dev skips device creation, so /dev/null stays what the "image" made it.
    const hostDev = fs.mkdtempSync(path.join(base, 'fakedev-'));
    fs.writeFileSync(path.join(hostDev, 'null'), 'not a device');
    const r = run(
      {
        mounts: [PROC, { destination: '/dev', type: 'bind', source: hostDev, options: ['rbind'] }],
        linux: { maskedPaths: ['/etc/secret'] },
      },
      rootfs,
    );
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/linux\.maskedPaths\[0\] '\/etc\/secret': \/dev\/null in the container is not the null device/);
  });
});
