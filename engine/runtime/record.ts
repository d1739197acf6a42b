/**
 * The container record: what `berth create` decided, and what the last
 * start recorded. Written atomically (temp, fsync, rename; the running
 * state of a start without the fsync, see writeRunningRecord); read back
 * through an io-ts codec (a record is input from disk like any other).
 */
import { promises as fsp, readFileSync, rmSync } from 'node:fs';
import * as t from 'io-ts';
import type { ContainerNetworkInfo, ContainerSpec, PortSpec } from '../engine.js';
import { fail, notFound } from '../errors.js';
import { decodeJson } from '../store/decode.js';
import { writeFileAtomic } from '../store/fsutil.js';

const StrArr = t.array(t.string);

/** What the container takes from its image, captured at create. */
export const ImageDefaults = t.partial({
  entrypoint: StrArr,
  cmd: StrArr,
  env: StrArr,
  workingDir: t.string,
  user: t.string,
  volumes: StrArr,
  exposedPorts: StrArr,
  stopSignal: t.string,
});
export type ImageDefaults = t.TypeOf<typeof ImageDefaults>;

export const RunState = t.intersection([
  t.type({
    /** A start happened whose exit has not been collected yet. */
    running: t.boolean,
    restartCount: t.number,
  }),
  t.partial({
    startedAt: t.string,
    finishedAt: t.string,
    exitCode: t.number,
    oomKilled: t.boolean,
    pid: t.number,
    shimPid: t.number,
    paused: t.boolean,
    error: t.string,
  }),
]);
export type RunState = t.TypeOf<typeof RunState>;

export const ContainerRecord = t.intersection([
  t.type({
    id: t.string,
    name: t.string,
    created: t.string,
    image: t.string,
    imageId: t.string,
    chain: StrArr,
    /** The normalized spec (validated when it was created). */
    spec: t.UnknownRecord,
    imageDefaults: ImageDefaults,
    runtime: t.string,
    state: RunState,
  }),
  t.partial({
    /** Anonymous volumes made for this container (removed by `rm -v`). */
    anonymousVolumes: StrArr,
    networks: t.UnknownRecord,
    ports: t.UnknownArray,
    /** The argv the container's process runs (entrypoint + cmd merged). */
    args: StrArr,
  }),
]);
type RawRecord = t.TypeOf<typeof ContainerRecord>;

export interface Record extends Omit<RawRecord, 'spec' | 'networks' | 'ports'> {
  readonly spec: ContainerSpec;
  readonly networks?: { readonly [k: string]: ContainerNetworkInfo };
  readonly ports?: readonly PortSpec[];
}

export const readRecord = async (file: string, id: string): Promise<Record> => {
  let raw: Buffer;
  try {
    raw = readFileSync(file); // sync: a promise read of a small file costs ~25x the CPU, and records are read on every verb
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fail(notFound('container', id));
    throw e;
  }
  return decodeJson(ContainerRecord, raw, `container record ${file}`) as unknown as Record;
};

/**
 * `beforeRename`: see writeFileAtomic (create links the new record's file as
 * the container's name entry). `durable: false` leaves out the fsyncs (an
 * --rm container's: after a power loss it is to be gone anyway; a record
 * lost or left empty is skipped by listings and cleaned by `rm`, its name
 * entry found stale by the next create of that name).
 */
export const writeRecord = async (file: string, rec: Record, beforeRename?: (tmp: string) => Promise<void>, durable = true): Promise<void> => {
  await writeFileAtomic(file, JSON.stringify(rec, null, 1), 0o644, beforeRename, durable);
};

/**
 * The record replaced atomically (temp file, rename over the old one) but not
 * fsynced: for the running state that start records (pids, start time),
 * which means nothing after a reboot (no container runs then, and `observe`
 * finds the shim gone). A crash of this process leaves the old record or the
 * new one; a power loss may leave the old one (the container then shows as
 * it was before this start). Replacing an existing file, so ext4 writes the
 * data before the rename (auto_da_alloc) and no empty file can appear.
 */
export const writeRunningRecord = async (file: string, rec: Record): Promise<void> => {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    // both in the thread pool: the new file is a new inode (0.5-2 ms of kernel work on a churned ext4),
    // and replacing a file makes ext4 start writing the new data (auto_da_alloc), ~3 ms
    await fsp.writeFile(tmp, JSON.stringify(rec, null, 1), { mode: 0o644 });
    await fsp.rename(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
};
