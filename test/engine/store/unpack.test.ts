import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, mkdir, lstat, readFile, readlink, readdir, writeFile, stat } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { unpackLayer, type UnpackResult } from '../../../engine/store/unpack.js';
import { nativeUnpacker, runNativeUnpack } from '../../../engine/store/native-unpack.js';
import { makeTar, streamOf, type Entry } from './tars.js';

const isRoot = process.getuid?.() === 0;
const haveAttr = (() => {
  try {
    execFileSync('setfattr', ['--version'], { stdio: 'ignore' });
    execFileSync('getfattr', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
// xattrs and opaque whiteouts need setfattr at run time: scripts/setup.sh must install Debian's `attr`
const withAttr = (name: string, fn: () => Promise<void>): void =>
  haveAttr ? it(name, fn) : it.skip(`${name} [skipped: setfattr/getfattr missing; install Debian package attr]`, fn);
let base: string;
let dest: string;
let outside: string;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'berth-unpack-'));
  dest = path.join(base, 'diff');
  outside = path.join(base, 'outside');
  await mkdir(dest);
  await mkdir(outside);
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

type Unpacker = (src: Readable, o: { dest: string; label: string }) => Promise<UnpackResult>;

/** berth-unpack (native/unpack/) fed the same tar on a pipe, its result in unpackLayer's shape. */
const native = nativeUnpacker();
const unpackNative: Unpacker = async (src, o) => {
  if (!native) throw new Error('berth-unpack is not built');
  const r = await runNativeUnpack(native, { input: { kind: 'stream', stream: src }, dest: o.dest, sync: false, label: o.label });
  return { entries: r.entries, bytes: r.bytes, warnings: [] };
};
// Every rule below holds for both unpackers: the TypeScript one (no native build) and berth-unpack.
const unpackers: Array<[string, Unpacker | undefined]> = [
  ['typescript', unpackLayer],
  [native ? 'native' : 'native [skipped: native/build/berth-unpack not built; make -C native needs zlib1g-dev and libssl-dev]', native ? unpackNative : undefined],
];

const xattr = (p: string, name: string): string => execFileSync('getfattr', ['-h', '--only-values', '-n', name, p]).toString();

describe.each(unpackers)('%s unpacker', (_kind, unpacker) => {
const unpackWith = (src: Readable, o: { dest: string; label: string }): Promise<UnpackResult> => (unpacker as Unpacker)(src, o);
const unpack = async (entries: Entry[]) => unpackWith(streamOf(await makeTar(entries)), { dest, label: 'image test layer sha256:x' });

describe.skipIf(!isRoot || unpacker === undefined)('unpackLayer keeps what a layer says', () => {
  it('files, dirs, symlinks, ownership, modes with setuid, mtimes', async () => {
    const mtime = new Date('2020-01-02T03:04:05Z');
    const r = await unpack([
      { name: 'bin/', type: 'directory', mode: 0o755, mtime },
      { name: 'bin/su', content: 'SU', mode: 0o4755, uid: 0, gid: 0 },
      { name: 'home/u/file', content: 'data', uid: 1000, gid: 1001, mode: 0o640, mtime },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox', uid: 5, gid: 6 },
    ]);
    expect(r.entries).toBe(5);
    expect(r.bytes).toBe(6);
    expect((await lstat(path.join(dest, 'bin/su'))).mode & 0o7777).toBe(0o4755);
    const f = await lstat(path.join(dest, 'home/u/file'));
    expect([f.uid, f.gid, f.mode & 0o7777]).toEqual([1000, 1001, 0o640]);
    expect(f.mtime.getTime()).toBe(mtime.getTime());
    expect((await lstat(path.join(dest, 'tmp'))).mode & 0o7777).toBe(0o1777);
    expect((await lstat(path.join(dest, 'bin'))).mtime.getTime()).toBe(mtime.getTime());
    const l = await lstat(path.join(dest, 'bin/sh'));
    expect(l.isSymbolicLink()).toBe(true);
    expect([l.uid, l.gid]).toEqual([5, 6]);
    expect(await readlink(path.join(dest, 'bin/sh'))).toBe('/bin/busybox');
    // implicit parent made for home/u
    expect((await lstat(path.join(dest, 'home/u'))).isDirectory()).toBe(true);
  });

  it('hardlinks inside the layer share the inode', async () => {
    await unpack([
      { name: 'bin/busybox', content: 'BB', mode: 0o755 },
      { name: 'bin/ls', type: 'link', linkname: 'bin/busybox' },
    ]);
    const a = await stat(path.join(dest, 'bin/busybox'));
    const b = await stat(path.join(dest, 'bin/ls'));
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('device nodes and fifos', async () => {
    await unpack([
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660, gid: 6 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ]);
    const n = await lstat(path.join(dest, 'dev/null'));
    expect(n.isCharacterDevice()).toBe(true);
    expect(n.rdev).toBe((1 << 8) | 3);
    expect(n.mode & 0o7777).toBe(0o666);
    const b = await lstat(path.join(dest, 'dev/loop9'));
    expect(b.isBlockDevice()).toBe(true);
    expect(b.gid).toBe(6);
    expect((await lstat(path.join(dest, 'run/fifo'))).isFIFO()).toBe(true);
  });

  withAttr('PAX SCHILY.xattr records become extended attributes', async () => {
    await unpack([{ name: 'etc/conf', content: 'x', pax: { 'SCHILY.xattr.user.berth': 'hello', 'SCHILY.xattr.trusted.note': 'n' } }]);
    expect(xattr(path.join(dest, 'etc/conf'), 'user.berth')).toBe('hello');
    expect(xattr(path.join(dest, 'etc/conf'), 'trusted.note')).toBe('n');
  });

  withAttr('binary xattr values from GNU tar --xattrs are kept byte for byte (security.capability, user.*)', async () => {
    // a layer as image builders make it: files with file capabilities and binary user xattrs, tarred by GNU tar
    const src = path.join(base, 'src');
    await mkdir(path.join(src, 'bin'), { recursive: true });
    await writeFile(path.join(src, 'bin/ping'), 'PING');
    await writeFile(path.join(src, 'bin/data'), 'D');
    // cap_net_raw+ep as a VFS_CAP_REVISION_2 struct: NUL bytes and bytes that are not UTF-8
    const cap = '0x0100000200200000000000000000000000000000';
    const bin = '0xff00fe01c3280a';
    execFileSync('setfattr', ['-n', 'security.capability', '-v', cap, path.join(src, 'bin/ping')]);
    execFileSync('setfattr', ['-n', 'user.blob', '-v', bin, path.join(src, 'bin/data')]);
    const layer = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-cf', '-', '-C', src, '.'], { maxBuffer: 1 << 24 });
    expect(layer.includes(Buffer.from('SCHILY.xattr.security.capability='))).toBe(true); // GNU tar wrote PAX records
    const r = await unpackWith(streamOf(layer), { dest, label: 'image test layer sha256:x' });
    expect(r.warnings).toEqual([]);
    const hex = (p: string, name: string): string => `0x${execFileSync('getfattr', ['-h', '--only-values', '-n', name, p]).toString('hex')}`;
    expect(hex(path.join(dest, 'bin/ping'), 'security.capability')).toBe(cap);
    expect(hex(path.join(dest, 'bin/data'), 'user.blob')).toBe(bin);
    expect(await readFile(path.join(dest, 'bin/ping'), 'utf8')).toBe('PING');
  });

  withAttr('OCI whiteouts become overlay whiteouts', async () => {
    await unpack([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.passwd', content: '' },
      { name: 'var/cache/.wh..wh..opq', content: '' },
      { name: 'var/cache/new', content: 'n' },
      { name: '.wh..wh.plnk/', type: 'directory' },
    ]);
    const w = await lstat(path.join(dest, 'etc/passwd'));
    expect(w.isCharacterDevice()).toBe(true);
    expect(w.rdev).toBe(0);
    expect(await readdir(path.join(dest, 'etc'))).toEqual(['passwd']);
    expect(xattr(path.join(dest, 'var/cache'), 'trusted.overlay.opaque')).toBe('y');
    expect(await readdir(dest)).toEqual(['etc', 'var']);
  });

  it('later entries replace earlier ones, a directory by a file too', async () => {
    await unpack([
      { name: 'a/', type: 'directory' },
      { name: 'a/inner', content: 'x' },
      { name: 'a', content: 'now a file' },
      { name: 'b', content: 'one' },
      { name: 'b', content: 'two' },
    ]);
    expect(await readFile(path.join(dest, 'a'), 'utf8')).toBe('now a file');
    expect(await readFile(path.join(dest, 'b'), 'utf8')).toBe('two');
  });

  it('a directory deeper down replaced by a file, a symlink and a whiteout, then written next to', async () => {
    await unpack([
      { name: 'x/a/', type: 'directory' },
      { name: 'x/a/inner', content: 'i' },
      { name: 'x/a', content: 'file now' },
      { name: 'x/b/c/', type: 'directory' },
      { name: 'x/b', type: 'symlink', linkname: 'a' },
      { name: 'x/d/e', content: 'e' },
      { name: 'x/.wh.d', content: '' },
      { name: 'x/after', content: 'ok' },
    ]);
    expect(await readFile(path.join(dest, 'x/a'), 'utf8')).toBe('file now');
    expect(await readlink(path.join(dest, 'x/b'))).toBe('a');
    expect((await lstat(path.join(dest, 'x/d'))).isCharacterDevice()).toBe(true);
    expect(await readFile(path.join(dest, 'x/after'), 'utf8')).toBe('ok');
  });

  withAttr('whiteouts and an overlay mount hide lower files for real', async () => {
    const lower = path.join(base, 'lower');
    await mkdir(path.join(lower, 'etc'), { recursive: true });
    await mkdir(path.join(lower, 'var/cache'), { recursive: true });
    await writeFile(path.join(lower, 'etc/passwd'), 'root');
    await writeFile(path.join(lower, 'etc/group'), 'g');
    await writeFile(path.join(lower, 'var/cache/old'), 'o');
    await unpack([
      { name: 'etc/.wh.passwd', content: '' },
      { name: 'var/cache/.wh..wh..opq', content: '' },
      { name: 'var/cache/new', content: 'n' },
    ]);
    const mnt = path.join(base, 'mnt');
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dest}:${lower}`, mnt]);
    try {
      expect((await readdir(path.join(mnt, 'etc'))).sort()).toEqual(['group']);
      expect(await readdir(path.join(mnt, 'var/cache'))).toEqual(['new']);
    } finally {
      execFileSync('umount', [mnt]);
    }
  });
});

describe.skipIf(!isRoot || unpacker === undefined)('unpackLayer refuses hostile layers', () => {
  const refuses = async (entries: Entry[], message: string | RegExp): Promise<void> => {
    const p = unpack(entries);
    await expect(p).rejects.toMatchObject({ error: { _tag: 'InvalidSpec', source: 'image test layer sha256:x' } });
    await expect(p).rejects.toThrow(message);
    expect(await readdir(outside)).toEqual([]);
  };

  it('.. traversal', async () => {
    await refuses([{ name: '../outside/pwned', content: 'x' }], /refused entry "..\/outside\/pwned": path contains '..'/);
  });
  it('.. in the middle', async () => {
    await refuses([{ name: 'a/../../outside/pwned', content: 'x' }], "path contains '..'");
  });
  it('absolute path', async () => {
    await refuses([{ name: `${outside}/pwned`, content: 'x' }], 'absolute path');
  });
  it('file written through a symlinked parent', async () => {
    await refuses(
      [
        { name: 'evil', type: 'symlink', linkname: outside },
        { name: 'evil/pwned', content: 'x' },
      ],
      'parent "evil" is a symlink',
    );
  });
  it('symlinked parent with a relative target', async () => {
    await refuses(
      [
        { name: 'd/', type: 'directory' },
        { name: 'd/up', type: 'symlink', linkname: '../../outside' },
        { name: 'd/up/pwned', content: 'x' },
      ],
      'is a symlink',
    );
  });
  it('directory replaced by a symlink after it was used', async () => {
    await refuses(
      [
        { name: 'd/', type: 'directory' },
        { name: 'd/a', content: 'x' },
        { name: 'd', type: 'symlink', linkname: outside },
        { name: 'd/pwned', content: 'x' },
      ],
      'parent "d" is a symlink',
    );
  });
  it('hardlink pointing out of the layer', async () => {
    await refuses([{ name: 'passwd', type: 'link', linkname: '../outside/secret' }], 'hardlink target');
  });
  it('hardlink with an absolute target', async () => {
    await writeFile(path.join(outside, 'secret'), 's');
    const p = unpack([{ name: 'passwd', type: 'link', linkname: path.join(outside, 'secret') }]);
    await expect(p).rejects.toThrow('absolute path');
    expect((await stat(path.join(outside, 'secret'))).nlink).toBe(1);
  });
  it('hardlink through a symlinked parent', async () => {
    await writeFile(path.join(outside, 'secret'), 's');
    const p = unpack([
      { name: 'l', type: 'symlink', linkname: outside },
      { name: 'x', type: 'link', linkname: 'l/secret' },
    ]);
    await expect(p).rejects.toThrow('is a symlink');
    expect((await stat(path.join(outside, 'secret'))).nlink).toBe(1);
  });
  it('a directory replaced by a symlink out of the layer gets no time set through it', async () => {
    await mkdir(path.join(outside, 'c'));
    const before = (await stat(path.join(outside, 'c'))).mtimeMs;
    await unpack([
      { name: 'd/c/', type: 'directory', mtime: new Date('2001-01-01T00:00:00Z') },
      { name: 'd', type: 'symlink', linkname: outside },
    ]);
    expect((await stat(path.join(outside, 'c'))).mtimeMs).toBe(before);
    expect(await readlink(path.join(dest, 'd'))).toBe(outside);
  });
  it('xattr that would forge overlay metadata', async () => {
    await refuses([{ name: 'f', content: 'x', pax: { 'SCHILY.xattr.trusted.overlay.redirect': '/etc' } }], 'trusted.overlay.redirect');
  });
  it('a truncated tar', async () => {
    const t = await makeTar([{ name: 'big', content: 'x'.repeat(5000) }]);
    await expect(unpackWith(streamOf(t.subarray(0, 2048)), { dest, label: 'L' })).rejects.toMatchObject({ error: { _tag: 'InvalidSpec' } });
  });
});
});
