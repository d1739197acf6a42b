// The engine's process helper (`berth-shim helper`, engine/runtime/helper.ts):
// programs run through it behave as spawned ones (output, stdin, exit
// status, signals, a missing program), get no descriptor but their stdio
// (a lock it holds must never reach a long-lived shim), mount(2)/umount2(2)
// on a real tmpfs, flock(2) locks that exclude other processes and go
// when the helper's engine process dies, and sealed copies of executables
// (what shims run the runtime from).
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { execProgram, helperAvailable, helperLock, helperMount, helperSealedExe, helperUmount, helperUnlock, prefetchSealedExe } from '../../../engine/runtime/helper.js';

const shim = path.resolve('native/build/berth-shim');
const skipReason = process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(shim) ? 'needs native/build/berth-shim (make -C native)'
  : process.env['BERTH_HELPER'] === '0' ? 'BERTH_HELPER=0 turns the helper off' : '';
let dir = '';

const mounted = (p: string): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === p);
const lockFree = (file: string): boolean => spawnSync('flock', ['-n', '-x', file, 'true']).status === 0;
/**
 * The engine process `child` has its helper (its only child, named `comm` when given) holding the lock
 * on `file`; killed, the helper goes too (PR_SET_PDEATHSIG), and the lock with it.
 */
const expectGoneWithEngine = async (child: ChildProcess, file: string, comm?: string, engine = child.pid!): Promise<void> => {
  const helperPid = childrenOf(engine)[0];
  expect(helperPid).toBeDefined();
  if (comm !== undefined) expect(fs.readFileSync(`/proc/${helperPid}/comm`, 'utf8').trim()).toBe(comm);
  expect(lockFree(file)).toBe(false);
  child.kill('SIGKILL');
  for (let i = 0; i < 300 && fs.existsSync(`/proc/${helperPid}`); i++) await new Promise((r) => setTimeout(r, 10));
  expect(fs.existsSync(`/proc/${helperPid}`)).toBe(false);
  expect(lockFree(file)).toBe(true);
};
/** The pids whose parent is `ppid` (/proc/PID/stat). */
const childrenOf = (ppid: number): string[] => fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
  try {
    return fs.readFileSync(`/proc/${p}/stat`, 'utf8').split(') ').at(-1)!.split(' ')[1] === String(ppid);
  } catch {
    return false;
  }
});

describe.skipIf(skipReason !== '')(`engine process helper${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-helper-'));
    expect(await helperAvailable()).toBe(true);
  });
  afterAll(() => {
    if (!dir) return;
    const m = path.join(dir, 'mnt');
    if (mounted(m)) execFileSync('umount', ['-l', m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps one sealed copy of an executable per version of the file, which runs and cannot be written', async () => {
    const exe = path.join(dir, 'echo');
    fs.copyFileSync('/bin/echo', exe);
    const sealed = await helperSealedExe(exe);
    expect(sealed).toMatch(/^\/proc\/\d+\/fd\/\d+$/);
    expect(await helperSealedExe(exe)).toBe(sealed); // the same copy again
    expect(fs.readFileSync(sealed!).equals(fs.readFileSync(exe))).toBe(true);
    expect((await execProgram([sealed!, 'from the copy'])).stdout).toBe('from the copy\n');
    const fd = fs.openSync(sealed!, 'r+');
    try {
      expect(() => fs.writeSync(fd, 'x', 0)).toThrow(/EPERM/);
    } finally {
      fs.closeSync(fd);
    }
    // a rebuilt file gets a new copy
    fs.copyFileSync('/bin/true', exe);
    const again = await helperSealedExe(exe);
    expect(again).toBeDefined();
    expect(fs.readFileSync(again!).equals(fs.readFileSync('/bin/true'))).toBe(true);
    expect((await execProgram([again!])).code).toBe(0);
    expect(await helperSealedExe(path.join(dir, 'no-such-file'))).toBeUndefined();
  });

  it('a sealed copy asked for ahead (berth run) is what the next start gets, once: a later start asks again and sees a rebuilt file', async () => {
    const exe = path.join(dir, 'ahead');
    fs.copyFileSync('/bin/echo', exe);
    prefetchSealedExe(exe);
    // the helper answers in order: once this has run, the copy was made (of echo)
    await execProgram(['true']);
    fs.rmSync(exe);
    fs.copyFileSync('/bin/true', exe);
    const first = await helperSealedExe(exe);
    expect(first).toMatch(/^\/proc\/\d+\/fd\/\d+$/);
    expect(fs.readFileSync(first!).equals(fs.readFileSync('/bin/echo'))).toBe(true); // made ahead, before the rebuild
    // the prefetched answer was taken: the next start sees the rebuild
    const next = await helperSealedExe(exe);
    expect(fs.readFileSync(next!).equals(fs.readFileSync('/bin/true'))).toBe(true);
    // an answer asked for ahead but not taken within 10 s is not used: a container started much later asks again
    prefetchSealedExe(exe);
    await execProgram(['true']);
    fs.rmSync(exe);
    fs.copyFileSync('/bin/echo', exe);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 11_000);
      // nor does it keep a later prefetch from asking again
      prefetchSealedExe(exe);
      await execProgram(['true']);
      fs.rmSync(exe);
      fs.copyFileSync('/bin/true', exe);
      const late = await helperSealedExe(exe);
      expect(fs.readFileSync(late!).equals(fs.readFileSync('/bin/echo'))).toBe(true); // the new prefetch's copy, made before this rebuild
      const later = await helperSealedExe(exe);
      expect(fs.readFileSync(later!).equals(fs.readFileSync('/bin/true'))).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('runs a program with stdin, and returns its stdout, stderr and exit status', async () => {
    const r = await execProgram(['sh', '-c', 'cat; echo err >&2; exit 3'], 'hello\n');
    expect(r).toEqual({ code: 3, stdout: 'hello\n', stderr: 'err\n' });
    expect((await execProgram(['true'])).code).toBe(0);
  });

  it('passes large input and output whole, and runs many programs at once', async () => {
    const big = 'x'.repeat(3 * 1024 * 1024) + '\n';
    const r = await execProgram(['cat'], big);
    expect(r.stdout.length).toBe(big.length);
    const all = await Promise.all(Array.from({ length: 40 }, (_, i) => execProgram(['sh', '-c', `echo ${i}; exit ${i % 5}`])));
    expect(all.map((x) => [x.stdout, x.code])).toEqual(Array.from({ length: 40 }, (_, i) => [`${i}\n`, i % 5]));
  });

  it('reports a program killed by a signal as 128 + signal, and a missing program as ENOENT', async () => {
    expect((await execProgram(['sh', '-c', 'kill -9 $$'])).code).toBe(137);
    await expect(execProgram(['/nonexistent/berth-no-such-program'])).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('gives a program only stdio, with default signal dispositions', async () => {
    const file = path.join(dir, 'fdlock');
    await helperLock(file, 5);
    try {
      // ls opens the directory it lists: fds 0, 1, 2 and that one, nothing of the helper's (its lock, its pipes)
      const fds = (await execProgram(['ls', '/proc/self/fd'])).stdout.trim().split('\n').map(Number).sort((a, b) => a - b);
      expect(fds).toEqual([0, 1, 2, 3]);
      const sigs = (await execProgram(['grep', '-E', '^Sig(Ign|Blk)', '/proc/self/status'])).stdout;
      expect(sigs).toMatch(/SigBlk:\s+0+\n/);
      expect(sigs).toMatch(/SigIgn:\s+0+\n/);
    } finally {
      await helperUnlock(file);
    }
  });

  it('mounts (flags apart from data, made private) and unmounts, and reports a failure with errno', async () => {
    const m = path.join(dir, 'mnt');
    fs.mkdirSync(m);
    expect(await helperMount({ type: 'tmpfs', source: 'tmpfs', target: m, options: ['nosuid', 'nodev', 'size=1m', 'mode=0700'], makePrivate: true })).toBe(true);
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === m)!;
    expect(line).toMatch(/nosuid,nodev/);
    expect(line).not.toMatch(/shared:/);
    expect(line).toMatch(/size=1024k,mode=700/);
    expect(await helperUmount(m, false)).toBe(true);
    expect(mounted(m)).toBe(false);
    await expect(helperUmount(m, true)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(helperMount({ type: 'tmpfs', source: 'tmpfs', target: path.join(dir, 'missing'), options: [] })).rejects.toMatchObject({
      code: 'ENOENT', message: expect.stringMatching(/mount tmpfs on '.*missing'/),
    });
  });

  it('holds a lock that other processes cannot take, gives it up, and times out on a lock held elsewhere', async () => {
    const file = path.join(dir, 'lock');
    await helperLock(file, 5);
    expect(lockFree(file)).toBe(false);
    await expect(helperLock(file, 1)).rejects.toMatchObject({ code: 'EDEADLK' }); // not reentrant
    await helperUnlock(file);
    expect(lockFree(file)).toBe(true);
    const holder = spawn('flock', ['-x', '-o', file, 'sleep', '30'], { stdio: 'ignore' });
    try {
      for (let i = 0; i < 200 && lockFree(file); i++) await new Promise((r) => setTimeout(r, 10));
      await expect(helperLock(file, 1)).rejects.toMatchObject({ code: 'EAGAIN' }); // EWOULDBLOCK, by Node's name
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.on('exit', r));
    }
    await helperLock(file, 5); // a waiter gets it once the holder is gone
    await helperUnlock(file);
  }, 30_000);

  it('falls back to spawning when the berth-shim has no helper mode (an older build): it never said hello', async () => {
    const native = path.join(dir, 'old-native');
    fs.mkdirSync(native);
    // an older berth-shim: `helper` is a bad argument, usage on stderr, status 2
    fs.writeFileSync(path.join(native, 'berth-shim'), '#!/bin/sh\necho "berth-shim: unexpected argument \'$1\'" >&2\nexit 2\n', { mode: 0o755 });
    const script = `
      const h = await import(${JSON.stringify(path.resolve('dist/engine/runtime/helper.js'))});
      const r = await h.execProgram(['sh', '-c', 'echo hi; exit 4']);
      process.stdout.write(JSON.stringify({ r, available: await h.helperAvailable() }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, BERTH_NATIVE_DIR: native }, encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual({ r: { code: 4, stdout: 'hi\n', stderr: '' }, available: false });
  }, 30_000);

  it('goes away with its engine process, and the locks it held with it', async () => {
    const file = path.join(dir, 'lock-child');
    const script = `
      const h = await import(${JSON.stringify(path.resolve('dist/engine/runtime/helper.js'))});
      await h.helperLock(${JSON.stringify(file)}, 5);
      process.stdout.write('locked\\n');
      setInterval(() => undefined, 1000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
        child.on('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      await expectGoneWithEngine(child, file);
    } finally {
      child.kill('SIGKILL');
    }
  }, 30_000);
});

describe.skipIf(skipReason !== '')(`the helper started by the launcher (berth-shim launch)${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const helperJs = JSON.stringify(path.resolve('dist/engine/runtime/helper.js'));
  /** Runs `script` (an ES module) in node under `berth-shim launch`; its stdout as JSON. */
  const launched = (script: string, env: NodeJS.ProcessEnv = {}): unknown =>
    JSON.parse(execFileSync(shim, ['launch', process.execPath, '--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' }));

  it('is taken over: programs run through it, no helper of the engine\'s own, and nothing it runs sees its pipes or the variable', async () => {
    const script = `
      import * as fs from 'node:fs';
      const given = process.env.BERTH_HELPER_FDS;
      const h = await import(${helperJs});
      const ppid = (await h.execProgram(['sh', '-c', 'echo $PPID'])).stdout.trim();
      const env = (await h.execProgram(['sh', '-c', 'echo "\${BERTH_HELPER_FDS-unset} \${GLIBC_TUNABLES-unset} \${BERTH_LAUNCHER_TUNABLES-unset} \${NODE_OPTIONS-unset} \${BERTH_LAUNCHER_NODE_OPTIONS-unset}"'])).stdout.trim();
      // a program this process spawns itself gets none of the helper's pipes (Node marks inherited fds close-on-exec)
      const seen = (await h.spawnProgram(['sh', '-c', 'for f in /proc/self/fd/*; do readlink $f; done'])).stdout.trim().split('\\n');
      const helperPipes = [0, 1, 2].map((n) => fs.readlinkSync('/proc/' + given.split(',')[0] + '/fd/' + n));
      const own = seen.filter((l) => helperPipes.includes(l));
      const children = fs.readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).filter((p) => {
        try { return fs.readFileSync('/proc/' + p + '/stat', 'utf8').split(') ')[1].split(' ')[1] === String(process.pid); } catch { return false; }
      });
      process.stdout.write(JSON.stringify({ given, left: process.env.BERTH_HELPER_FDS ?? null, ppid, env, own, children }));`;
    const r = launched(script, { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', BERTH_LAUNCHER_TUNABLES: '1', NODE_OPTIONS: '--jitless', BERTH_LAUNCHER_NODE_OPTIONS: '1' }) as {
      given: string; left: string | null; ppid: string; env: string; own: string[]; children: string[];
    };
    const [pid, ...fds] = r.given.split(',');
    expect(fds).toHaveLength(3);
    expect(r.left).toBeNull();
    expect(r.ppid).toBe(pid); // the launcher's helper ran it
    expect(r.children).toEqual([pid]); // and is the only child: the engine started none
    expect(r.env).toBe('unset unset unset unset unset');
    expect(r.own).toEqual([]);
  }, 30_000);

  it('goes away with the process it was started for, and the locks it held with it', async () => {
    const file = path.join(os.tmpdir(), `berth-test-helper-launch-${process.pid}`);
    const script = `
      const h = await import(${helperJs});
      await h.helperLock(${JSON.stringify(file)}, 5);
      process.stdout.write(process.env.BERTH_HELPER_FDS === undefined ? 'locked\\n' : 'not taken\\n');
      setInterval(() => undefined, 1000);`;
    const child = spawn(shim, ['launch', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const first = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (b: Buffer) => resolve(b.toString()));
        child.on('exit', (c) => reject(new Error(`child exited ${c}`)));
      });
      expect(first).toBe('locked\n');
      // the launcher waits in front of the program, which is its child; killed, it takes the program with it
      const program = childrenOf(child.pid!);
      expect(program).toHaveLength(1);
      await expectGoneWithEngine(child, file, 'berth-helper', Number(program[0]));
      for (let i = 0; i < 300 && fs.existsSync(`/proc/${program[0]}`); i++) await new Promise((r) => setTimeout(r, 10));
      expect(fs.existsSync(`/proc/${program[0]}`)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      fs.rmSync(file, { force: true });
    }
  }, 30_000);

  it('a BERTH_HELPER_FDS that names no child of ours with usable pipes is dropped, and the engine spawns its own helper', async () => {
    const script = `
      const h = await import(${helperJs});
      const r = await h.execProgram(['sh', '-c', 'echo $PPID']);
      process.stdout.write(JSON.stringify({ ppid: Number(r.stdout.trim()), left: process.env.BERTH_HELPER_FDS ?? null, available: await h.helperAvailable() }));`;
    // no such descriptors; not numbers; too few; stdio; a process that is not our child (pid 1)
    for (const bad of ['1,900,901,902', 'garbage', '1,2', `${process.pid},0,1,2`, '1,3,4,5']) {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, BERTH_HELPER_FDS: bad }, encoding: 'utf8' });
      const r = JSON.parse(out) as { ppid: number; left: string | null; available: boolean };
      expect(r.left).toBeNull();
      expect(r.available).toBe(true);
      expect(r.ppid).toBeGreaterThan(1);
    }
  }, 30_000);

  /** Runs `script` in node under `berth-shim launch`, and what became of the launcher, with when it ended. */
  const launchAndWait = async (script: string, onStart?: (launcher: ChildProcess) => void): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; ms: number }> => {
    const t = Date.now();
    const child = spawn(shim, ['launch', process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    onStart?.(child);
    try {
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, sg) => resolve([c, sg])));
      return { code, signal, stdout, ms: Date.now() - t };
    } finally {
      child.kill('SIGKILL');
    }
  };

  it('ends with the exit status the program reports, at once, while the program still runs; the helper holds no end of the report pipe', async () => {
    const marker = path.join(os.tmpdir(), `berth-test-launch-report-${process.pid}`);
    fs.rmSync(marker, { force: true });
    const script = `
      import * as fs from 'node:fs';
      const fd = Number(process.env.BERTH_LAUNCHER_REPORT_FD);
      const pipe = fs.readlinkSync('/proc/self/fd/' + fd);
      const helper = process.env.BERTH_HELPER_FDS.split(',')[0];
      const helperHolds = fs.readdirSync('/proc/' + helper + '/fd').some((f) => { try { return fs.readlinkSync('/proc/' + helper + '/fd/' + f) === pipe; } catch { return false; } });
      process.stdout.write(JSON.stringify({ pipe, helperHolds }) + '\\n');
      fs.writeSync(fd, '7\\n');
      // still here after the report: the launcher does not wait for this (it kills us when it goes)
      setTimeout(() => fs.writeFileSync(${JSON.stringify(marker)}, 'late'), 4000);`;
    const r = await launchAndWait(script);
    expect(r.code).toBe(7);
    expect(r.ms).toBeLessThan(3500);
    const seen = JSON.parse(r.stdout) as { pipe: string; helperHolds: boolean };
    expect(seen.pipe).toMatch(/^pipe:/);
    expect(seen.helperHolds).toBe(false);
    await new Promise((res) => setTimeout(res, 4500));
    expect(fs.existsSync(marker)).toBe(false); // the program went with the launcher
  }, 30_000);

  it('without a report, or with a malformed one, ends as the program ends: its exit status, or its signal', async () => {
    expect((await launchAndWait('process.exitCode = 5')).code).toBe(5);
    expect((await launchAndWait(`import * as fs from 'node:fs'; fs.writeSync(Number(process.env.BERTH_LAUNCHER_REPORT_FD), 'x\\n'); setTimeout(() => process.exit(4), 300)`)).code).toBe(4);
    expect((await launchAndWait(`import * as fs from 'node:fs'; fs.writeSync(Number(process.env.BERTH_LAUNCHER_REPORT_FD), '300\\n'); process.exitCode = 6`)).code).toBe(6);
    const killed = await launchAndWait(`process.kill(process.pid, 'SIGTERM'); setTimeout(() => undefined, 5000)`);
    expect(killed.signal).toBe('SIGTERM');
  }, 30_000);

  it('passes on a signal sent to it to the program', async () => {
    const script = `
      process.on('SIGTERM', () => { process.stdout.write('TERM\\n'); process.exit(9); });
      process.on('SIGUSR1', () => process.stdout.write('USR1\\n'));
      process.stdout.write('ready\\n');
      setTimeout(() => undefined, 10_000);`;
    const r = await launchAndWait(script, (launcher) => {
      launcher.stdout!.on('data', (b: Buffer) => {
        if (b.toString().includes('ready')) {
          launcher.kill('SIGUSR1');
          setTimeout(() => launcher.kill('SIGTERM'), 200);
        }
      });
    });
    expect(r.stdout).toBe('ready\nUSR1\nTERM\n');
    expect(r.code).toBe(9);
  }, 30_000);

  it('when the program cannot be executed, says so and exits 127, and leaves no helper behind', () => {
    const r = spawnSync(shim, ['launch', '/nonexistent/node'], { encoding: 'utf8' });
    expect(r.status).toBe(127);
    expect(r.stderr).toMatch(/berth-shim launch: execute \/nonexistent\/node: No such file or directory/);
    const helpers = childrenOf(r.pid!);
    expect(helpers).toEqual([]);
  });
});
