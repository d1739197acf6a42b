/**
 * A container's filesystem from the host: diff (the upper dir against the
 * image's layers), export (a tar of the merged tree) and cp (both ways).
 * A running container is reached through /proc/<pid>/root; a stopped one
 * through a temporary private overlay mount, removed before returning.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { copiedUpForMountPoints, isRuntimeMountPoint, opaqueDirs } from '../build/layer.js';
import type { LocalEngine } from '../local.js';
import { fail, invalidSpec, notFound } from '../errors.js';
import { resolveInRoot } from './inroot.js';
import { mountPrivate, unmountIfMounted } from './invoke.js';

export interface Change {
  readonly kind: 'A' | 'C' | 'D';
  readonly path: string;
}

const lowerDirs = async (engine: LocalEngine, chain: readonly string[]): Promise<string[]> => {
  const m = await engine.store.layers.mount(chain as never, '/u', '/w', '/t');
  const opt = m.options.find((o) => o.startsWith('lowerdir=')) ?? '';
  return opt.slice('lowerdir='.length).split(':');
};

const existsIn = async (dirs: readonly string[], rel: string): Promise<boolean> => {
  for (const d of dirs) {
    try {
      await fsp.lstat(path.join(d, rel));
      return true;
    } catch {
      // not in this layer
    }
  }
  return false;
};

/**
 * The upper dir against the image's layers, as `docker diff` lists it: the
 * empty mount points the runtime made (/etc/hosts, ...) and a directory
 * copied up only for them are no change (Docker keeps them in its init layer).
 */
export const containerDiff = async (engine: LocalEngine, ref: string): Promise<Change[]> => {
  const c = await engine.containers.pathsOf(ref);
  const lowers = await lowerDirs(engine, c.chain);
  const out: Change[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await fsp.readdir(path.join(c.paths.upper, rel), { withFileTypes: true });
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const r = path.join(rel, e.name);
      const p = path.join(c.paths.upper, r);
      const st = await fsp.lstat(p);
      if (st.isCharacterDevice() && st.rdev === 0) {
        out.push({ kind: 'D', path: `/${r}` });
        continue;
      }
      if (isRuntimeMountPoint(r, st)) continue;
      if (st.isDirectory() && (await copiedUpForMountPoints(c.paths.upper, r)) && !(await opaqueDirs(p)).has(p)) continue;
      out.push({ kind: (await existsIn(lowers, r)) ? 'C' : 'A', path: `/${r}` });
      if (e.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return out;
};

/** Run `fn` with the container's merged root: /proc/<pid>/root, or a temporary mount. */
const withRoot = async <A>(engine: LocalEngine, ref: string, writable: boolean, fn: (root: string) => Promise<A>): Promise<A> => {
  const c = await engine.containers.pathsOf(ref);
  if (c.running && c.pid !== undefined) return fn(`/proc/${c.pid}/root`);
  const target = path.join(c.paths.dir, 'fsops');
  await fsp.mkdir(target, { recursive: true });
  await unmountIfMounted(target);
  const lowers = await lowerDirs(engine, c.chain);
  const m = writable
    ? await engine.store.layers.mount(c.chain as never, c.paths.upper, c.paths.work, target)
    : { type: 'overlay', source: 'overlay', target, options: [`lowerdir=${[c.paths.upper, ...lowers].join(':')}`] };
  await mountPrivate(m);
  try {
    return await fn(target);
  } finally {
    await unmountIfMounted(target);
    await fsp.rmdir(target).catch(() => undefined);
  }
};

const sh = (file: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile(file, args, (err, _o, stderr) => (err ? reject(new Error(stderr.trim() || err.message)) : resolve()));
  });

export const exportContainer = async (engine: LocalEngine, ref: string, output?: string): Promise<void> =>
  withRoot(engine, ref, false, async (root) => {
    await new Promise<void>((resolve, reject) => {
      const args = ['-C', root, '--one-file-system', '--numeric-owner', '-cf', output ?? '-', '.'];
      const child = spawn('tar', args, { stdio: ['ignore', output ? 'ignore' : 'inherit', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 || code === 1 ? resolve() : reject(new Error(`tar: ${err.trim()}`))));
    });
  });

const splitRef = (s: string): { container: string; path: string } | undefined => {
  const i = s.indexOf(':');
  if (i <= 0 || s.startsWith('/') || s.startsWith('.')) return undefined;
  return { container: s.slice(0, i), path: s.slice(i + 1) || '/' };
};

/** `berth cp CONTAINER:SRC HOSTDST` or `berth cp HOSTSRC CONTAINER:DST`. */
export const copy = async (engine: LocalEngine, src: string, dst: string): Promise<void> => {
  const from = splitRef(src);
  const to = splitRef(dst);
  if ((from && to) || (!from && !to)) fail(invalidSpec('cp', ['exactly one of SRC and DST must be CONTAINER:PATH']));
  if (from) {
    await withRoot(engine, from.container, false, async (root) => {
      const p = await resolveInRoot(root, from.path);
      await fsp.lstat(p).catch(() => fail(notFound('path in container', `${from.container}:${from.path}`)));
      await sh('cp', ['-a', '--', p, dst]);
    });
    return;
  }
  const t = to as { container: string; path: string };
  await fsp.lstat(src).catch(() => fail(notFound('host path', src)));
  await withRoot(engine, t.container, true, async (root) => {
    const p = await resolveInRoot(root, t.path);
    await sh('cp', ['-a', '--', src, p]);
  });
};
