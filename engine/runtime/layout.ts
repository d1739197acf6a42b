/**
 * Where a container's state lives.
 *
 *   <root>/containers/<id>/container.json  the record (atomic writes)
 *   <root>/containers/<id>/config.json     the OCI bundle's config
 *   <root>/containers/<id>/rootfs          overlay mount point (mounted only
 *                                          between start and runtime create)
 *   <root>/containers/<id>/upper, work     the container's overlay dirs
 *   <root>/containers/<id>/log.json        the shim's JSON-lines log
 *   <root>/containers/<id>/hosts, hostname, resolv.conf
 *   <root>/containers/names/<name>         the name index: holds the ID
 *   <runRoot>/shims/<id>/                  the shim's state dir (exit.json, sockets)
 *   <runRoot>/runtime/                     the OCI runtime's --root
 *   <runRoot>/locks/<id>                   one lock file per container
 */
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { EngineRoots } from '../engine.js';

export interface ContainerPaths {
  readonly dir: string;
  readonly record: string;
  readonly config: string;
  readonly rootfs: string;
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
  return {
    roots,
    containersDir,
    namesDir: path.join(containersDir, 'names'),
    shimsDir,
    runtimeRoot: path.join(roots.runRoot, 'runtime'),
    locksDir,
    nameIndexLock: path.join(locksDir, 'names'),
    container(id) {
      const dir = path.join(containersDir, id);
      const shimDir = path.join(shimsDir, id);
      return {
        dir,
        record: path.join(dir, 'container.json'),
        config: path.join(dir, 'config.json'),
        rootfs: path.join(dir, 'rootfs'),
        upper: path.join(dir, 'upper'),
        work: path.join(dir, 'work'),
        log: path.join(dir, 'log.json'),
        shimDir,
        exitFile: path.join(shimDir, 'exit.json'),
        lock: path.join(locksDir, `${id}.lock`),
      };
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
