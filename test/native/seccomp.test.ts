// seccomp as berth-runtime loads it (native/src/seccomp.c), checked on the
// real kernel: a probe child (native/tests/security/) loads the filter
// built from a linux.seccomp config and then makes a syscall, execs a
// static busybox, or reports /proc/self/status.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const probePath = `${repo}native/build/security/berth-secprobe`;
const listenerPath = `${repo}native/build/security/berth-seclistener`;
const busybox = '/bin/busybox';
const isRoot = process.getuid?.() === 0;

const EPERM = 1;
const EINVAL = 22;
const SIGSYS = 31;

interface ProbeResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

type Seccomp = Record<string, unknown>;

function probe(seccomp: Seccomp | undefined, args: string[], opts: string[] = []): ProbeResult {
  const full = [...opts, ...(seccomp ? ['--seccomp', JSON.stringify(seccomp)] : []), ...args];
  const r = spawnSync(probePath, full, { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Makes one raw syscall under the filter; returns its result and errno. */
function sys(seccomp: Seccomp, name: string, ...args: (number | string)[]): { ret: number; errno: number } {
  const r = probe(seccomp, ['syscall', name, ...args.map(String)]);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { ret: number; errno: number };
}

function status(seccomp: Seccomp, opts: string[] = []): Record<string, string> {
  const r = probe(seccomp, ['status'], opts);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as Record<string, string>;
}

function allowAllBut(...syscalls: Record<string, unknown>[]): Seccomp {
  return { defaultAction: 'SCMP_ACT_ALLOW', syscalls };
}

// What a static busybox needs to run `true` (strace of busybox 1.35 on
// x86_64), plus write for error messages.
const BUSYBOX_TRUE = [
  'execve', 'arch_prctl', 'brk', 'exit_group', 'getrandom', 'getuid', 'mprotect', 'prctl',
  'prlimit64', 'readlink', 'rseq', 'set_robust_list', 'set_tid_address', 'write',
];

// Built at collection time: which flags this kernel takes decides which
// tests can run.
if (isRoot) execFileSync('make', ['-s', '-C', `${repo}native/tests/security`], { stdio: 'inherit' });
const features = isRoot
  ? (JSON.parse(execFileSync(probePath, ['features'], { encoding: 'utf8' })) as {
      seccomp: { supportedFlags: string[] };
    })
  : { seccomp: { supportedFlags: [] as string[] } };
const hasWaitKillable = features.seccomp.supportedFlags.includes('SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV');

// Every x86_64 syscall the kernel headers name: a profile as long as Docker's.
const unistd = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const allSyscalls =
  process.arch === 'x64' && existsSync(unistd)
    ? [...readFileSync(unistd, 'utf8').matchAll(/^#define __NR_(\w+)\s+\d+/gm)].map((m) => m[1] ?? '')
    : [];

const tmpDirs: string[] = [];
const children: ChildProcess[] = [];

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'berth-seccomp-'));
  tmpDirs.push(d);
  return d;
}

interface Listener {
  sock: string;
  exited: Promise<number | null>;
  output: () => string;
}

/** Starts the test listener and waits until it accepts connections. */
async function startListener(answer: number): Promise<Listener> {
  const sock = join(tempDir(), 'listener.sock');
  const child = spawn(listenerPath, [sock, String(answer)], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`listener not ready: ${err}`)), 10_000);
    const check = () => {
      if (out.includes('ready\n')) {
        clearTimeout(timer);
        resolve();
      } else setTimeout(check, 10);
    };
    check();
  });
  return { sock, exited, output: () => out };
}

/** Like probe(), without blocking the event loop that serves the listener. */
async function probeAsync(args: string[]): Promise<ProbeResult> {
  const child = spawn(probePath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { status, stdout, stderr };
}

afterEach(() => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) process.kill(c.pid, 'SIGKILL');
  }
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe.skipIf(!isRoot)('seccomp (needs root: loads filters without no_new_privs, changes uid)', () => {
  describe('actions and errno', () => {
    it('makes mkdir fail with EPERM under SCMP_ACT_ERRNO without errnoRet', () => {
      const dir = tempDir();
      const r = probe(
        allowAllBut({ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }),
        ['exec', busybox, 'mkdir', join(dir, 'x')],
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('Operation not permitted');
      expect(existsSync(join(dir, 'x'))).toBe(false);
    });

    it('makes mkdir fail with the configured errnoRet', () => {
      const dir = tempDir();
      const r = probe(
        allowAllBut({ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 28 }),
        ['exec', busybox, 'mkdir', join(dir, 'x')],
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('No space left on device');
      expect(existsSync(join(dir, 'x'))).toBe(false);
    });

    it('leaves mkdir alone when the rule names other syscalls', () => {
      const dir = tempDir();
      const r = probe(allowAllBut({ names: ['rmdir'], action: 'SCMP_ACT_ERRNO' }), [
        'exec', busybox, 'mkdir', join(dir, 'x'),
      ]);
      expect(r.status).toBe(0);
      expect(existsSync(join(dir, 'x'))).toBe(true);
    });

    for (const action of ['SCMP_ACT_KILL', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP']) {
      it(`kills the process with SIGSYS under ${action}`, () => {
        const r = probe(allowAllBut({ names: ['getppid'], action }), ['syscall', 'getppid']);
        expect(r.status).toBe(128 + SIGSYS);
        expect(r.stderr).toContain(`killed by signal ${SIGSYS}`);
        expect(r.stdout).toBe('');
      });
    }

    it('lets a syscall through under SCMP_ACT_LOG', () => {
      const r = sys(allowAllBut({ names: ['getppid'], action: 'SCMP_ACT_LOG' }), 'getppid');
      expect(r.errno).toBe(0);
      expect(r.ret).toBeGreaterThan(0);
    });

    it('fails a traced syscall with ENOSYS when no tracer is attached (SCMP_ACT_TRACE)', () => {
      // Without a tracer the kernel fails the call with ENOSYS, whatever errnoRet says.
      const r = sys(allowAllBut({ names: ['getppid'], action: 'SCMP_ACT_TRACE', errnoRet: 5 }), 'getppid');
      expect(r.ret).toBe(-1);
      expect(r.errno).toBe(38);
    });

    it('lets a static busybox run `true` under defaultAction ERRNO with an allow list', () => {
      const seccomp = {
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [{ names: BUSYBOX_TRUE, action: 'SCMP_ACT_ALLOW' }],
      };
      const ok = probe(seccomp, ['exec', busybox, 'true'], ['--no-new-privs']);
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      // The same list does not hold mkdir: it fails with the default errno.
      const dir = tempDir();
      const denied = probe(seccomp, ['exec', busybox, 'mkdir', join(dir, 'x')], ['--no-new-privs']);
      expect(denied.status).toBe(1);
      expect(denied.stderr).toContain('Operation not permitted');
      // And without execve in the list nothing runs at all.
      const noExec = probe(
        { ...seccomp, syscalls: [{ names: BUSYBOX_TRUE.filter((s) => s !== 'execve'), action: 'SCMP_ACT_ALLOW' }] },
        ['exec', busybox, 'true'],
        ['--no-new-privs'],
      );
      expect(noExec.status).toBe(127);
      expect(noExec.stderr).toContain('exec /bin/busybox: Operation not permitted');
    });

    it('uses defaultErrnoRet for the default action', () => {
      const dir = tempDir();
      const r = probe(
        { defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, syscalls: [{ names: BUSYBOX_TRUE, action: 'SCMP_ACT_ALLOW' }] },
        ['exec', busybox, 'mkdir', join(dir, 'x')],
        ['--no-new-privs'],
      );
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('Function not implemented');
    });

    it.skipIf(allSyscalls.length < 300)(
      'runs a busybox shell under a Docker-sized allow list that leaves out mkdir (skipped without x86_64 kernel headers)',
      () => {
        const seccomp = {
          defaultAction: 'SCMP_ACT_ERRNO',
          architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
          syscalls: [
            { names: allSyscalls.filter((n) => n !== 'mkdir' && n !== 'mkdirat'), action: 'SCMP_ACT_ALLOW' },
          ],
        };
        const dir = tempDir();
        const r = probe(seccomp, ['exec', busybox, 'sh', '-c', `echo hi; ls / >/dev/null && mkdir ${join(dir, 'x')}`]);
        expect(r.stdout).toBe('hi\n');
        expect(r.stderr).toContain('Operation not permitted');
        expect(r.status).toBe(1);
        expect(existsSync(join(dir, 'x'))).toBe(false);
      },
    );

    it('skips a rule whose action is the default action instead of failing', () => {
      const r = sys(
        { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ALLOW' }] },
        'getppid',
      );
      expect(r.errno).toBe(0);
    });
  });

  describe('argument conditions', () => {
    const blockQuery = allowAllBut({
      names: ['personality'],
      action: 'SCMP_ACT_ERRNO',
      args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }],
    });

    it('blocks personality(0xffffffff) only and allows other personalities', () => {
      expect(sys(blockQuery, 'personality', '0xffffffff')).toEqual({ ret: -1, errno: EPERM });
      const other = sys(blockQuery, 'personality', '0');
      expect(other.errno).toBe(0);
      expect(other.ret).toBeGreaterThanOrEqual(0);
    });

    // getpriority(which, who) with an invalid `which` fails with EINVAL when
    // the filter lets it through, so errno 99 can only come from the filter.
    const rule = (args: Record<string, unknown>[]) =>
      allowAllBut({ names: ['getpriority'], action: 'SCMP_ACT_ERRNO', errnoRet: 99, args });

    it('matches SCMP_CMP_MASKED_EQ as (arg & value) == valueTwo', () => {
      const f = rule([{ index: 0, value: 0xf0, valueTwo: 0x30, op: 'SCMP_CMP_MASKED_EQ' }]);
      expect(sys(f, 'getpriority', '0x35', '0').errno).toBe(99);
      expect(sys(f, 'getpriority', '0x3f', '0').errno).toBe(99);
      expect(sys(f, 'getpriority', '0x45', '0').errno).toBe(EINVAL);
    });

    it('matches NE, LT, LE, GE and GT', () => {
      const cases: [string, number, number[], number[]][] = [
        ['SCMP_CMP_NE', 50, [49, 51], [50]],
        ['SCMP_CMP_LT', 50, [49], [50, 51]],
        ['SCMP_CMP_LE', 50, [49, 50], [51]],
        ['SCMP_CMP_GE', 50, [50, 51], [49]],
        ['SCMP_CMP_GT', 50, [51], [49, 50]],
      ];
      for (const [op, value, blocked, allowed] of cases) {
        // index 1 (`who`), with an invalid `which` so allowed calls give EINVAL.
        const f = rule([{ index: 1, value, op }]);
        for (const v of blocked) expect(sys(f, 'getpriority', 100, v).errno, `${op} ${v}`).toBe(99);
        for (const v of allowed) expect(sys(f, 'getpriority', 100, v).errno, `${op} ${v}`).toBe(EINVAL);
      }
    });

    it('ANDs conditions on different arguments in one rule', () => {
      const f = rule([
        { index: 0, value: 100, op: 'SCMP_CMP_EQ' },
        { index: 1, value: 8, op: 'SCMP_CMP_EQ' },
      ]);
      expect(sys(f, 'getpriority', 100, 8).errno).toBe(99);
      expect(sys(f, 'getpriority', 100, 9).errno).toBe(EINVAL);
      expect(sys(f, 'getpriority', 101, 8).errno).toBe(EINVAL);
    });

    it('ORs conditions that share an argument index, as runc does', () => {
      const f = rule([
        { index: 0, value: 100, op: 'SCMP_CMP_EQ' },
        { index: 0, value: 102, op: 'SCMP_CMP_EQ' },
      ]);
      expect(sys(f, 'getpriority', 100, 0).errno).toBe(99);
      expect(sys(f, 'getpriority', 102, 0).errno).toBe(99);
      expect(sys(f, 'getpriority', 101, 0).errno).toBe(EINVAL);
    });
  });

  describe('flags, architectures and no_new_privs', () => {
    it('accepts SECCOMP_FILTER_FLAG_LOG, SPEC_ALLOW and TSYNC and loads one filter', () => {
      for (const flag of ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC']) {
        const st = status({ defaultAction: 'SCMP_ACT_ALLOW', flags: [flag] });
        expect(st.Seccomp, flag).toBe('2');
        expect(st.Seccomp_filters, flag).toBe('1');
      }
    });

    it('accepts the x86 family of architectures', () => {
      const st = status({
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [{ names: ['getppid'], action: 'SCMP_ACT_ERRNO' }],
      });
      expect(st.Seccomp).toBe('2');
    });

    it('loads the filter with and without no_new_privs, as root and as another user', () => {
      const f = allowAllBut({ names: ['getppid'], action: 'SCMP_ACT_ERRNO' });
      const plain = status(f);
      expect([plain.NoNewPrivs, plain.Seccomp, plain.Seccomp_filters]).toEqual(['0', '2', '1']);
      const nnp = status(f, ['--no-new-privs']);
      expect([nnp.NoNewPrivs, nnp.Seccomp, nnp.Seccomp_filters]).toEqual(['1', '2', '1']);
      // Without no_new_privs, after setresuid to a non-root user (the
      // runtime's order), the filter still loads.
      const user = status(f, ['--user', '1000:1000']);
      expect([user.Uid, user.NoNewPrivs, user.Seccomp]).toEqual(['1000\t1000\t1000\t1000', '0', '2']);
      expect(user.CapEff).toBe('0000000000000000');
    });

    it('loads nothing when linux.seccomp is absent', () => {
      const r = probe(undefined, ['status']);
      expect(r.status).toBe(0);
      expect((JSON.parse(r.stdout) as Record<string, string>).Seccomp).toBe('0');
    });
  });

  describe('program cache', () => {
    const mkdirRule = (errnoRet: number) =>
      allowAllBut({ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet });
    const mkdirUnder = (cache: string, errnoRet: number) => {
      const dir = tempDir();
      const r = probe(mkdirRule(errnoRet), ['exec', busybox, 'mkdir', join(dir, 'x')], ['--seccomp-cache', cache]);
      expect(existsSync(join(dir, 'x'))).toBe(false);
      return r;
    };

    it('stores the compiled program once and loads the same filter from it', () => {
      const cache = join(tempDir(), 'seccomp-cache');
      const first = mkdirUnder(cache, 28);
      expect(first.stderr).toContain('No space left on device');
      const files = readdirSync(cache);
      expect(files).toHaveLength(1);
      expect(statSync(cache).mode & 0o777).toBe(0o700);
      const file = join(cache, files[0] ?? '');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const stored = readFileSync(file);
      const mtime = statSync(file).mtimeMs;

      const second = mkdirUnder(cache, 28);
      expect(second.stderr).toContain('No space left on device');
      expect(statSync(file).mtimeMs).toBe(mtime); // a hit: not written again
      expect(readFileSync(file).equals(stored)).toBe(true);

      // Another errno is another program, in its own file.
      expect(mkdirUnder(cache, 13).stderr).toContain('Permission denied');
      expect(readdirSync(cache)).toHaveLength(2);
    });

    it('compiles again when the stored key does not match the config', () => {
      const cache = join(tempDir(), 'seccomp-cache');
      mkdirUnder(cache, 28);
      const file = join(cache, readdirSync(cache)[0] ?? '');
      const good = readFileSync(file);
      // Damage the key (28 -> 27 inside the stored config text): the file
      // must not be trusted for the errnoRet 28 config any more.
      const text = good.toString('latin1');
      const at = text.indexOf('"errnoRet":28');
      expect(at).toBeGreaterThan(0);
      writeFileSync(file, Buffer.from(text.slice(0, at) + '"errnoRet":27' + text.slice(at + 13), 'latin1'));
      expect(mkdirUnder(cache, 28).stderr).toContain('No space left on device');
      expect(readFileSync(file).equals(good)).toBe(true); // rewritten
    });

    // The file layout of seccomp.c's cache: a 32-byte header (magic
    // "BSCMPBPF", version, key length, instruction count, reserved, FNV-1a
    // 64 checksum of key + instructions), the key, the instructions.
    const HEADER = 32;
    const fnv1a = (data: Buffer): bigint => {
      let h = 0xcbf29ce484222325n;
      for (const b of data) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
      return h;
    };
    const parts = (file: Buffer) => {
      const keyLen = file.readUInt32LE(12);
      return { key: file.subarray(HEADER, HEADER + keyLen), insns: file.subarray(HEADER + keyLen) };
    };
    /** A well-formed cache file holding `insns` under `key`: what a forger
     * with write access to the cache could store. */
    const forge = (key: Buffer, insns: Buffer): Buffer => {
      const head = Buffer.alloc(HEADER);
      head.write('BSCMPBPF', 0, 'latin1');
      head.writeUInt32LE(2, 8);
      head.writeUInt32LE(key.length, 12);
      head.writeUInt32LE(insns.length / 8, 16);
      head.writeBigUInt64LE(fnv1a(Buffer.concat([key, insns])), 24);
      return Buffer.concat([head, key, insns]);
    };
    /** A cache with programs for errnoRet 28 and 13; the path of the 28 one. */
    const twoPrograms = () => {
      const cache = join(tempDir(), 'seccomp-cache');
      mkdirUnder(cache, 13);
      const file13 = join(cache, readdirSync(cache)[0] ?? '');
      mkdirUnder(cache, 28);
      const file = join(cache, readdirSync(cache).find((f) => join(cache, f) !== file13) ?? '');
      const good = readFileSync(file);
      return { cache, file, good, forged: forge(parts(good).key, parts(readFileSync(file13)).insns) };
    };

    it('loads a stored program without compiling: a forged well-formed file is used as is', () => {
      // The check that the refusals below mean something: a root-owned 0600
      // file is trusted, so the errnoRet 13 program stored under the 28
      // config's key is what gets loaded.
      const { cache, file, good, forged } = twoPrograms();
      expect(parts(good).insns.equals(parts(forged).insns)).toBe(false);
      writeFileSync(file, forged, { mode: 0o600 });
      expect(mkdirUnder(cache, 28).stderr).toContain('Permission denied');
      expect(readFileSync(file).equals(forged)).toBe(true);
    });

    it('ignores and rewrites a truncated, short or corrupt file', () => {
      const { cache, file, good } = twoPrograms();
      const damaged: [string, Buffer][] = [
        ['truncated mid-program', good.subarray(0, good.length - 12)],
        ['shorter than the header', good.subarray(0, 10)],
        ['empty', Buffer.alloc(0)],
        ['one byte too long', Buffer.concat([good, Buffer.from([0])])],
        ['a flipped instruction byte', Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1]! ^ 1])])],
        ['another format version', Buffer.concat([good.subarray(0, 8), Buffer.from([1, 0, 0, 0]), good.subarray(12)])],
        ['a bad magic', Buffer.concat([Buffer.from('XSCMPBPF'), good.subarray(8)])],
      ];
      for (const [what, bytes] of damaged) {
        writeFileSync(file, bytes, { mode: 0o600 });
        const r = mkdirUnder(cache, 28);
        expect(r.stderr, what).toContain('No space left on device');
        expect(r.stderr, what).not.toContain('cache');
        expect(readFileSync(file).equals(good), what).toBe(true);
      }
    });

    it('refuses a file writable by group or others, or owned by another user, and replaces it', () => {
      const { cache, file, good, forged } = twoPrograms();
      const cases: [string, () => void][] = [
        ['group-writable', () => chmodSync(file, 0o620)],
        ['world-writable', () => chmodSync(file, 0o602)],
        ['owned by uid 1000', () => chownSync(file, 1000, 0)],
      ];
      for (const [what, spoil] of cases) {
        writeFileSync(file, forged, { mode: 0o600 });
        chmodSync(file, 0o600);
        spoil();
        expect(mkdirUnder(cache, 28).stderr, what).toContain('No space left on device');
        const st = statSync(file);
        expect([st.uid, st.mode & 0o777], what).toEqual([0, 0o600]);
        expect(readFileSync(file).equals(good), what).toBe(true);
      }
    });

    it('neither reads nor writes a cache directory writable by group or others', () => {
      const { cache, file, forged } = twoPrograms();
      writeFileSync(file, forged, { mode: 0o600 });
      chmodSync(cache, 0o770);
      expect(mkdirUnder(cache, 28).stderr).toContain('No space left on device');
      expect(readFileSync(file).equals(forged)).toBe(true); // left alone
      expect(readdirSync(cache)).toHaveLength(2);
    });

    it('does not follow a symlink in place of a cache file', () => {
      const { cache, file, forged } = twoPrograms();
      const elsewhere = join(tempDir(), 'forged.bpf');
      writeFileSync(elsewhere, forged, { mode: 0o600 });
      rmSync(file);
      symlinkSync(elsewhere, file);
      expect(mkdirUnder(cache, 28).stderr).toContain('No space left on device');
      expect(lstatSync(file).isSymbolicLink()).toBe(false); // replaced by a real file
      expect(readFileSync(elsewhere).equals(forged)).toBe(true);
    });

    it('serves containers started together on a cold cache: each gets the filter, one file is stored', async () => {
      // They meet on the cache directory's lock: one compiles, the others
      // load its program (or compile themselves if the lock is not there).
      const cache = join(tempDir(), 'seccomp-cache');
      const dirs = Array.from({ length: 6 }, () => tempDir());
      const results = await Promise.all(
        dirs.map((d) =>
          probeAsync(['--seccomp-cache', cache, '--seccomp', JSON.stringify(mkdirRule(28)), 'exec', busybox, 'mkdir', join(d, 'x')]),
        ),
      );
      for (const r of results) expect(r.stderr).toContain('No space left on device');
      for (const d of dirs) expect(existsSync(join(d, 'x'))).toBe(false);
      expect(readdirSync(cache)).toHaveLength(1); // no temp files left either
    });

    it('still validates a config before looking in the cache', () => {
      const cache = join(tempDir(), 'seccomp-cache');
      const r = probe({ defaultAction: 'SCMP_ACT_NOPE' }, ['status'], ['--seccomp-cache', cache]);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain('linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"');
      expect(existsSync(cache)).toBe(false);
    });
  });

  describe('validation', () => {
    const bad: [string, Seccomp, string][] = [
      ['an unknown default action', { defaultAction: 'SCMP_ACT_FOO' }, 'linux.seccomp.defaultAction: unknown action "SCMP_ACT_FOO"'],
      [
        'an unknown rule action',
        allowAllBut({ names: ['read'], action: 'SCMP_ACT_NOPE' }),
        'linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_NOPE"',
      ],
      [
        'an unknown operator',
        allowAllBut({ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_XX' }] }),
        'linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_XX"',
      ],
      [
        'an argument index past 5',
        allowAllBut({ names: ['read'], action: 'SCMP_ACT_ERRNO', args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }] }),
        'linux.seccomp.syscalls[0].args[0].index: expected an integer 0-5',
      ],
      [
        'an unknown architecture',
        { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_VAX'] },
        'linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_VAX"',
      ],
      [
        'an unknown flag',
        { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_NOPE'] },
        'linux.seccomp.flags[0]: unknown flag "SECCOMP_FILTER_FLAG_NOPE"',
      ],
      [
        'an errnoRet out of range',
        allowAllBut({ names: ['read'], action: 'SCMP_ACT_ERRNO', errnoRet: -1 }),
        'linux.seccomp.syscalls[0].errnoRet: expected an integer 0-65535',
      ],
      [
        'SCMP_ACT_NOTIFY without listenerPath',
        allowAllBut({ names: ['getppid'], action: 'SCMP_ACT_NOTIFY' }),
        'linux.seccomp.listenerPath: required when SCMP_ACT_NOTIFY is used',
      ],
      [
        'SCMP_ACT_NOTIFY as the default action',
        { defaultAction: 'SCMP_ACT_NOTIFY', listenerPath: '/nonexistent' },
        'linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default',
      ],
    ];
    for (const [what, config, message] of bad) {
      it(`refuses ${what}, naming the field, before forking`, () => {
        const r = probe(config, ['status']);
        expect(r.status).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toContain(message);
      });
    }

    it('skips syscall names this libseccomp does not know and applies the rest', () => {
      const f = allowAllBut({ names: ['no_such_syscall_2099', 'getppid'], action: 'SCMP_ACT_ERRNO', errnoRet: 99 });
      expect(sys(f, 'getppid')).toEqual({ ret: -1, errno: 99 });
    });

    it('refuses a notify listener that is not there, naming its path', () => {
      const path = join(tempDir(), 'absent.sock');
      const r = probe(
        { ...allowAllBut({ names: ['getppid'], action: 'SCMP_ACT_NOTIFY' }), listenerPath: path },
        ['status'],
      );
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`connect to seccomp listener '${path}'`);
    });
  });

  describe('notify listener', () => {
    const notifyFlags: [string, string[], boolean][] = [
      ['', [], false],
      [
        ' with TSYNC and WAIT_KILLABLE_RECV (skipped where the kernel lacks WAIT_KILLABLE_RECV)',
        ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
        !hasWaitKillable,
      ],
    ];
    for (const [label, flags, skip] of notifyFlags) {
      it.skipIf(skip)(`sends the notify fd and the container process state to the listener, which answers the syscall${label}`, async () => {
        const listener = await startListener(4242);
        const state = { ociVersion: '1.2.0', id: 'seccomp-notify', status: 'creating', pid: 4711, bundle: '/bundle' };
        const seccomp = {
          defaultAction: 'SCMP_ACT_ALLOW',
          flags,
          listenerPath: listener.sock,
          listenerMetadata: 'MKNOD=/dev/null',
          syscalls: [{ names: ['personality'], action: 'SCMP_ACT_NOTIFY' }],
        };
        const r = await probeAsync(['--state', JSON.stringify(state), '--seccomp', JSON.stringify(seccomp), 'syscall', 'personality', '0x1234']);
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
        // The listener's answer became the syscall's return value.
        expect(JSON.parse(r.stdout)).toEqual({ ret: 4242, errno: 0 });
        expect(await listener.exited).toBe(0);
        const report = JSON.parse(listener.output().split('\n')[1] ?? '') as {
          processState: Record<string, unknown>;
          fds: number;
          syscall: string;
          args: number[];
        };
        expect(report.fds).toBe(1);
        expect(report.syscall).toBe('personality');
        expect(report.args[0]).toBe(0x1234);
        expect(report.processState).toEqual({
          ociVersion: '1.2.0',
          fds: ['seccompFd'],
          pid: 4711,
          metadata: 'MKNOD=/dev/null',
          state,
        });
      });
    }

    it('leaves neither the listener socket nor the notify fd open in the exec\'d program', async () => {
      const plain = probe(undefined, ['exec', busybox, 'ls', '/proc/self/fd']);
      expect(plain.status).toBe(0);
      const listener = await startListener(0);
      const seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        listenerPath: listener.sock,
        syscalls: [{ names: ['personality'], action: 'SCMP_ACT_NOTIFY' }],
      };
      const r = await probeAsync(['--seccomp', JSON.stringify(seccomp), 'exec', busybox, 'ls', '/proc/self/fd']);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(plain.stdout);
    });
  });

  it('reports what `runc features` reports for seccomp', () => {
    const r = spawnSync(probePath, ['features'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const f = (JSON.parse(r.stdout) as { seccomp: Record<string, unknown> }).seccomp;
    expect(f.enabled).toBe(true);
    expect(f.actions).toEqual([
      'SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD',
      'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP',
    ]);
    expect(f.operators).toEqual([
      'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE',
    ]);
    expect(f.archs).toEqual(expect.arrayContaining(['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64']));
    expect(f.knownFlags).toEqual([
      'SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
      'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
    ]);
    // Every flag in supportedFlags is one this kernel takes: each loads.
    for (const flag of f.supportedFlags as string[]) {
      if (flag === 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV') continue; // only with a listener
      expect(status({ defaultAction: 'SCMP_ACT_ALLOW', flags: [flag] }).Seccomp, flag).toBe('2');
    }
  });
});
