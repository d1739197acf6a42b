// The compiled-seccomp-program cache as berth-runtime uses it: under its
// --root (<root>/.seccomp-cache), filled by the first container of a
// profile, read by the next ones, with the same filter in force either way.
// The cache file format and its refusals are tested on the probe in
// seccomp.test.ts; this checks the runtime's own wiring end to end.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTries } from '../helpers/probe.js';
import { Harness, runtimesUnderTest } from '../helpers/runtime.js';

const EXDEV = 18;
const ENOTDIR = 20;
const isRoot = process.getuid?.() === 0;
const berth = runtimesUnderTest().find((r) => r.name === 'berth-runtime');

describe.skipIf(!isRoot || !berth)('berth-runtime seccomp program cache (needs root and berth-runtime)', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.cleanup();
    h = undefined;
  });

  /** Runs `/probe try mkdir` under a profile that fails mkdir with `errnoRet`. */
  async function mkdirErrno(harness: Harness, errnoRet: number): Promise<number> {
    const b = harness.bundle(['/bin/sh', '-c', '/probe try mkdir /tmp/x; /probe try write /dev/null'], (spec) => {
      spec.linux!.seccomp = {
        defaultAction: 'SCMP_ACT_ALLOW',
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
        syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet }],
      };
    });
    const r = await harness.run(b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const [mkdir, write] = parseTries(r.stdout);
    expect(mkdir).toMatchObject({ ok: false });
    expect(write).toMatchObject({ ok: true }); // an allowed syscall still works
    return mkdir!.errno;
  }

  it('compiles a profile once per --root and loads the same filter from the cache', async () => {
    h = new Harness(berth!);
    const cache = path.join(h.root, '.seccomp-cache');
    expect(await mkdirErrno(h, EXDEV)).toBe(EXDEV);
    const files = fs.readdirSync(cache);
    expect(files).toHaveLength(1);
    const file = path.join(cache, files[0]!);
    const st = fs.statSync(file);
    expect([st.uid, st.mode & 0o777, fs.statSync(cache).mode & 0o777]).toEqual([0, 0o600, 0o700]);
    const stored = fs.readFileSync(file);

    expect(await mkdirErrno(h, EXDEV)).toBe(EXDEV); // from the cache
    expect(fs.statSync(file).mtimeMs).toBe(st.mtimeMs);
    expect(fs.statSync(file).ino).toBe(st.ino);
    expect(fs.readFileSync(file).equals(stored)).toBe(true);

    // A different profile gets its own entry and its own filter.
    expect(await mkdirErrno(h, ENOTDIR)).toBe(ENOTDIR);
    expect(fs.readdirSync(cache)).toHaveLength(2);
  });

  it('replaces a truncated or group-writable cache file and still applies the filter', async () => {
    h = new Harness(berth!);
    const cache = path.join(h.root, '.seccomp-cache');
    await mkdirErrno(h, EXDEV);
    const file = path.join(cache, fs.readdirSync(cache)[0]!);
    const good = fs.readFileSync(file);

    fs.writeFileSync(file, good.subarray(0, good.length - 100));
    expect(await mkdirErrno(h, EXDEV)).toBe(EXDEV);
    expect(fs.readFileSync(file).equals(good)).toBe(true);

    fs.chmodSync(file, 0o660);
    const before = fs.statSync(file).ino;
    expect(await mkdirErrno(h, EXDEV)).toBe(EXDEV);
    const after = fs.statSync(file);
    expect(after.ino).not.toBe(before); // not read: compiled and written anew
    expect(after.mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file).equals(good)).toBe(true);
  });
});
