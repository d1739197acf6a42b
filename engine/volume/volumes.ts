/**
 * Named volumes with the local driver:
 *
 *   <root>/volumes/<name>/volume.json  {spec, created} (atomic writes)
 *   <root>/volumes/<name>/_data        what containers see
 *
 * A volume is created by `createVolume` or on first use by a container;
 * "in use" is computed from container records (the `usedBy` callback), so
 * there is no reference count to get out of step after a crash.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { EngineRoots, VolumeApi, VolumeInfo, VolumeSpec } from '../engine.js';
import { alreadyExists, conflict, fail, invalidSpec, notFound, unsupported } from '../errors.js';
import { writeFileAtomic, withLock } from '../store/fsutil.js';
import { isoTime } from '../time.js';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export interface VolumeStore extends VolumeApi {
  /** The volume's data dir; creates the volume when missing (anonymous: a random name). */
  ensure(name: string | undefined, labels?: Record<string, string>): Promise<{ name: string; dataDir: string; created: boolean }>;
  dataDir(name: string): string;
  /** Copy `src` (a directory of the image) into the volume if the volume is empty. */
  copyUp(name: string, src: string): Promise<boolean>;
}

interface VolumeMeta {
  readonly spec: VolumeSpec;
  readonly created: string;
}

const sh = (file: string, args: string[]): Promise<void> =>
  new Promise((resolve, reject) => {
    execFile(file, args, (err, _o, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim() || err.message}`)) : resolve()));
  });

const dirSize = async (dir: string): Promise<number> => {
  let total = 0;
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else total += (await fsp.lstat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
};

export const openVolumeStore = (roots: EngineRoots, usedBy: () => Promise<Map<string, string[]>>): VolumeStore => {
  const dir = path.join(roots.root, 'volumes');
  const locks = path.join(roots.runRoot, 'locks');
  const vdir = (name: string): string => path.join(dir, name);
  const dataDir = (name: string): string => path.join(dir, name, '_data');
  const metaFile = (name: string): string => path.join(dir, name, 'volume.json');
  const lock = async <A>(name: string, fn: () => Promise<A>): Promise<A> => {
    await fsp.mkdir(locks, { recursive: true });
    return withLock(path.join(locks, `volume-${name}`), `volume ${name}`, fn);
  };

  const check = (spec: VolumeSpec): void => {
    const problems: string[] = [];
    if (!NAME_RE.test(spec.name)) problems.push(`name: ${JSON.stringify(spec.name)} is not a valid volume name (letters, digits, "_", ".", "-"; starting with a letter or digit)`);
    if (spec.driver !== undefined && spec.driver !== 'local') problems.push(`driver: only "local" is supported, got ${JSON.stringify(spec.driver)}`);
    if (problems.length > 0) fail(invalidSpec(`volume ${spec.name}`, problems));
    if (spec.options && Object.keys(spec.options).length > 0) fail(unsupported(`volume ${spec.name}: local driver options (${Object.keys(spec.options).join(', ')})`));
  };

  const readMeta = async (name: string): Promise<VolumeMeta | undefined> => {
    try {
      const v = JSON.parse(await fsp.readFile(metaFile(name), 'utf8')) as VolumeMeta;
      return v;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  };

  const info = async (name: string, meta: VolumeMeta, users?: Map<string, string[]>): Promise<VolumeInfo> => ({
    name,
    created: meta.created,
    spec: meta.spec,
    mountpoint: dataDir(name),
    usedBy: (users ?? (await usedBy())).get(name) ?? [],
  });

  /** Create under the lock; the data dir first, the metadata last (a dir without volume.json is unfinished and is finished here). */
  const createLocked = async (spec: VolumeSpec): Promise<{ meta: VolumeMeta; created: boolean }> => {
    const existing = await readMeta(spec.name);
    if (existing) return { meta: existing, created: false };
    await fsp.mkdir(dataDir(spec.name), { recursive: true, mode: 0o755 });
    const meta: VolumeMeta = { spec: { name: spec.name, driver: 'local', labels: spec.labels ?? {}, options: {} }, created: isoTime() };
    await writeFileAtomic(metaFile(spec.name), JSON.stringify(meta));
    return { meta, created: true };
  };

  const store: VolumeStore = {
    dataDir,
    async createVolume(spec) {
      check(spec);
      const { meta, created } = await lock(spec.name, () => createLocked(spec));
      if (!created) fail(alreadyExists('volume', spec.name));
      return info(spec.name, meta);
    },
    async ensure(name, labels) {
      const n = name ?? randomBytes(32).toString('hex');
      check({ name: n });
      const { created } = await lock(n, () => createLocked({ name: n, ...(labels ? { labels } : {}) }));
      return { name: n, dataDir: dataDir(n), created };
    },
    async copyUp(name, src) {
      return lock(name, async () => {
        const data = dataDir(name);
        if ((await fsp.readdir(data)).length > 0) return false;
        let st;
        try {
          st = await fsp.stat(src);
        } catch {
          return false;
        }
        if (!st.isDirectory()) return false;
        if ((await fsp.readdir(src)).length === 0) return false;
        await sh('cp', ['-a', '--', `${src}/.`, data]);
        await fsp.chmod(data, st.mode & 0o7777);
        await fsp.chown(data, st.uid, st.gid);
        return true;
      });
    },
    async removeVolume(name, opts) {
      await lock(name, async () => {
        const meta = await readMeta(name);
        if (!meta) {
          if (opts?.force) return;
          return fail(notFound('volume', name));
        }
        const users = (await usedBy()).get(name) ?? [];
        if (users.length > 0) fail(conflict('volume', name, `volume is in use by container(s) ${users.map((u) => u.slice(0, 12)).join(', ')}; remove them first`));
        // metadata first: a crash leaves a dir without volume.json, which list() ignores and prune removes
        await fsp.rm(metaFile(name), { force: true });
        await fsp.rm(vdir(name), { recursive: true, force: true });
      });
    },
    async listVolumes() {
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        return [];
      }
      const users = await usedBy();
      const out: VolumeInfo[] = [];
      for (const n of names.sort()) {
        const meta = await readMeta(n).catch(() => undefined);
        if (meta) out.push(await info(n, meta, users));
      }
      return out;
    },
    async inspectVolume(name) {
      const meta = await readMeta(name);
      if (!meta) return fail(notFound('volume', name));
      return info(name, meta);
    },
    async pruneVolumes() {
      const users = await usedBy();
      const deleted: string[] = [];
      let reclaimedBytes = 0;
      let names: string[] = [];
      try {
        names = await fsp.readdir(dir);
      } catch {
        return { deleted, reclaimedBytes };
      }
      for (const n of names) {
        if ((users.get(n) ?? []).length > 0) continue;
        await lock(n, async () => {
          if (((await usedBy()).get(n) ?? []).length > 0) return;
          reclaimedBytes += await dirSize(dataDir(n));
          await fsp.rm(metaFile(n), { force: true });
          await fsp.rm(vdir(n), { recursive: true, force: true });
          deleted.push(n);
        });
      }
      return { deleted, reclaimedBytes };
    },
  };
  return store;
};
