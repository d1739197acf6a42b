/**
 * Where a container's state lives.
 *
 *   <root>/containers/<id>/container.json  the record (atomic writes)
 *   <root>/containers/<id>/upper, work     the container's overlay dirs
 *   <root>/containers/<id>/log.json        the shim's JSON-lines log
 *   <root>/containers/names/<name>         the name index: holds the ID
 *   <root>/containers/<id>/sharers/<sharer>  one empty file per container sharing
 *                                          this one's network (containers.ts networkSharers)
 *   <runRoot>/containers/<id>/             the OCI bundle, written by every start:
 *       config.json                        the bundle's config
 *       rootfs                             overlay mount point (mounted only
 *                                          between start and runtime create)
 *       hosts, hostname, resolv.conf       (networkMode none and host; networking
 *                                          keeps its own for the other modes)
 *   <runRoot>/shims/<id>/                  the shim's state dir (exit.json, sockets)
 *   <runRoot>/runtime/                     the OCI runtime's --root
 *   <runRoot>/locks/<id>                   one lock file per container
 *
 * The bundle is run state: it is made again by every start and means
 * nothing after a reboot, so it lives under the run root (a tmpfs on a
 * standard host), where a file or directory costs ~15 us to create against
 * 0.15-1.2 ms on this host's ext4 root while the host churns through files
 * (bench/stack/RESULTS-section.md). Containers started by an older Berth
 * kept it in the container's dir (`legacyConfig`, `legacyRootfs`).
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineRoots } from '../engine.js';
import { pathUnder } from '../store/fsutil.js';

export interface ContainerPaths {
  readonly dir: string;
  readonly record: string;
  /** The OCI bundle (under the run root). */
  readonly bundle: string;
  readonly config: string;
  readonly rootfs: string;
  /** Where an older Berth kept config.json and the rootfs mount point (in `dir`). */
  readonly legacyConfig: string;
  readonly legacyRootfs: string;
  readonly upper: string;
  readonly work: string;
  readonly log: string;
  readonly shimDir: string;
  readonly exitFile: string;
  readonly lock: string;
}

export interface Layout {
  readonly roots: EngineRoots;
  readonly containersDir: string;
  /** <runRoot>/containers: the bundles. */
  readonly bundlesDir: string;
  readonly namesDir: string;
  readonly shimsDir: string;
  readonly runtimeRoot: string;
  readonly locksDir: string;
  readonly nameIndexLock: string;
  container(id: string): ContainerPaths;
}

export const layoutOf = (roots: EngineRoots): Layout => {
  const containersDir = path.join(roots.root, 'containers');
  const shimsDir = path.join(roots.runRoot, 'shims');
  const locksDir = path.join(roots.runRoot, 'locks');
  const bundlesDir = path.join(roots.runRoot, 'containers');
  // asked for many times per operation: kept (a few hundred bytes per container)
  const memo = new Map<string, ContainerPaths>();
  return {
    roots,
    containersDir,
    bundlesDir,
    namesDir: path.join(containersDir, 'names'),
    shimsDir,
    runtimeRoot: path.join(roots.runRoot, 'runtime'),
    locksDir,
    nameIndexLock: path.join(locksDir, 'names'),
    container(id) {
      const hit = memo.get(id);
      if (hit) return hit;
      const dir = pathUnder(containersDir, id);
      const shimDir = pathUnder(shimsDir, id);
      const bundle = pathUnder(bundlesDir, id);
      if (memo.size >= 4096) memo.clear();
      const p: ContainerPaths = {
        dir,
        record: pathUnder(dir, 'container.json'),
        bundle,
        config: pathUnder(bundle, 'config.json'),
        rootfs: pathUnder(bundle, 'rootfs'),
        legacyConfig: pathUnder(dir, 'config.json'),
        legacyRootfs: pathUnder(dir, 'rootfs'),
        upper: pathUnder(dir, 'upper'),
        work: pathUnder(dir, 'work'),
        log: pathUnder(dir, 'log.json'),
        shimDir,
        exitFile: pathUnder(shimDir, 'exit.json'),
        lock: pathUnder(locksDir, `${id}.lock`),
      };
      memo.set(id, p);
      return p;
    },
  };
};

/** The native binaries: BERTH_NATIVE_DIR, else native/build of this checkout. */
export const nativeDir = (): string => {
  const env = process.env['BERTH_NATIVE_DIR'];
  if (env) return env;
  // this file is <repo>/engine/runtime/layout.ts or <repo>/dist/engine/runtime/layout.js
  let dir = path.dirname(fileURLToPath(import.meta.url));
  dir = path.resolve(dir, '../..');
  if (path.basename(dir) === 'dist') dir = path.dirname(dir);
  return path.join(dir, 'native/build');
};
