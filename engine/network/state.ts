/**
 * Networking state on disk, under <root>/networks:
 *
 *   lock                          flock(2) target (lock.ts)
 *   nets/<id>.json                one per network (NetworkRecord)
 *
 * and under <runRoot>/networks (tmpfs: gone after a reboot, as the netns,
 * veths and nft rules are), what lives only as long as the processes and
 * the host objects do:
 *
 *   endpoints/<containerId>/      one per container that setup() saw:
 *       endpoint.json             EndpointRecord (its address, veths, ports)
 *       hosts resolv.conf hostname  the files bind-mounted into the
 *                                 container, written again by every start
 *   index.json                    every endpoint record in one file: what the
 *                                 verbs read (one file, whatever the number of
 *                                 containers); a cache of endpoints/, rebuilt
 *                                 from them by a full scan when missing
 *   pending/<containerId>         an operation on that endpoint is under way:
 *                                 the owner's pid and start time (PendingMark)
 *
 * and <runRoot>/network-scanned, written by the full scan: while it is
 * there, commands recover only what pending/ names. An endpoint means
 * nothing after a reboot, so its record is runtime state too: written
 * without fsync, on tmpfs (a file created and removed on the root's file
 * system cost 0.3-1.2 ms of metadata work each here, and the first record
 * of every container was fsynced). Older Berths kept endpoint records (and,
 * before that, their files) under <root>/networks/endpoints, and the index
 * and pending/ under <root>/networks: the first locked operation moves such
 * records under the run root (`migrate`), the files stay where the running
 * container has them bind-mounted until it is torn down, and a full scan
 * removes the old index and marks.
 *
 * Every record carries a `phase`: "creating" and "removing" are written
 * before the host is changed (intent), "ready" after. All changes happen
 * under the lock, so a record found in a transitional phase by a command
 * holding the lock was left by a command that died: recovery finishes or
 * undoes it (networking.ts, recover()).
 */
import { existsSync, mkdirSync, promises as fsp, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import { pathUnder, writeFileAtomic } from '../store/fsutil.js';
import { fail, corrupt } from '../errors.js';

const Phase = t.union([t.literal('creating'), t.literal('ready'), t.literal('removing')]);
export type Phase = t.TypeOf<typeof Phase>;

const Str = t.string;
const opt = <C extends t.Mixed>(c: C) => t.union([c, t.undefined]);

export const NetworkRecord = t.type({
  id: Str,
  name: Str,
  created: Str,
  phase: Phase,
  bridge: Str,
  subnet: Str,
  gateway: Str,
  ipRange: opt(Str),
  internal: t.boolean,
  labels: t.record(Str, Str),
  /** The default network ("bridge"): no name resolution, cannot be removed by name. */
  isDefault: t.boolean,
});
export type NetworkRecord = t.TypeOf<typeof NetworkRecord>;

export const Attachment = t.type({
  networkId: Str,
  phase: Phase,
  ipv4: Str,
  prefix: t.number,
  gateway: Str,
  mac: Str,
  aliases: t.array(Str),
  /** Host end of the veth pair (bth + hash). */
  hostVeth: Str,
  /** Interface name inside the container (eth0, eth1...). */
  ifname: Str,
  /** Fixed address asked for (--ip), kept for inspect. */
  fixed: t.boolean,
});
export type Attachment = t.TypeOf<typeof Attachment>;

export const Port = t.type({
  containerPort: t.number,
  protocol: t.union([t.literal('tcp'), t.literal('udp')]),
  hostPort: t.number,
  hostIp: Str,
});
export type Port = t.TypeOf<typeof Port>;

export const EndpointRecord = t.type({
  containerId: Str,
  name: Str,
  hostname: Str,
  domainname: opt(Str),
  phase: Phase,
  /** none | host | bridge (own netns, joined to networks) | container (another's netns). */
  mode: t.union([t.literal('none'), t.literal('host'), t.literal('bridge'), t.literal('container')]),
  netnsPath: opt(Str),
  /** For mode container: the container whose netns and files it shares. */
  sharedWith: opt(Str),
  /** Network name -> attachment; the first key is the primary network (published ports go there). */
  networks: t.record(Str, Attachment),
  networkOrder: t.array(Str),
  ports: t.array(Port),
  extraHosts: t.array(Str),
});
export type EndpointRecord = t.TypeOf<typeof EndpointRecord>;


/** `dirMtime`: endpoints/'s mtime (ns) when written; a container dir added or removed by anything else makes it stale. */
const Index = t.type({ version: t.literal(1), dirMtime: Str, endpoints: t.record(Str, EndpointRecord) });

export const PendingMark = t.type({ pid: t.number, start: Str });
export type PendingMark = t.TypeOf<typeof PendingMark>;

/** Counts of record reads, for tests that check that a verb's cost does not grow with the number of containers. */
export interface StateCounters {
  endpointRecordsRead: number;
  indexReads: number;
  fullScans: number;
}

export class StateDir {
  readonly dir: string;
  /** <runRoot>/networks: the index and the pending marks (the same as `dir` when no run root is given). */
  readonly runDir: string;
  readonly counters: StateCounters = { endpointRecordsRead: 0, indexReads: 0, fullScans: 0 };
  constructor(root: string, runRoot?: string) {
    this.dir = path.join(root, 'networks');
    this.runDir = runRoot === undefined ? this.dir : path.join(runRoot, 'networks');
  }
  get indexFile(): string {
    return pathUnder(this.runDir, 'index.json');
  }
  get pendingDir(): string {
    return pathUnder(this.runDir, 'pending');
  }
  pendingFile(containerId: string): string {
    return pathUnder(this.pendingDir, containerId);
  }
  /** What an older Berth kept under <root>/networks and now lives under the run root (removed by a full scan). */
  leftovers(): string[] {
    return this.runDir === this.dir ? [] : [pathUnder(this.dir, 'index.json'), pathUnder(this.dir, 'pending')];
  }
  get lockFile(): string {
    return pathUnder(this.dir, 'lock');
  }
  netFile(id: string): string {
    return pathUnder(this.dir, 'nets', `${id}.json`);
  }
  /** The endpoint's record and the files bind-mounted into the container (hosts, resolv.conf, hostname). */
  endpointDir(containerId: string): string {
    return pathUnder(this.runDir, 'endpoints', containerId);
  }
  filesDir(containerId: string): string {
    return this.endpointDir(containerId);
  }
  /** Where an older Berth kept the record (and, older still, the files); the same as endpointDir without a run root. */
  legacyEndpointDir(containerId: string): string {
    return pathUnder(this.dir, 'endpoints', containerId);
  }
  endpointFile(containerId: string): string {
    return pathUnder(this.endpointDir(containerId), 'endpoint.json');
  }

  /** Once per process (every locked operation calls it); `purge` removes dirs and says so with `forgetInit`. */
  private initDone = false;
  async init(): Promise<void> {
    if (this.initDone) return;
    await fsp.mkdir(pathUnder(this.dir, 'nets'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(pathUnder(this.runDir, 'endpoints'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.pendingDir, { recursive: true, mode: 0o700 });
    this.initDone = true;
  }

  /**
   * Under the lock, once per process: records an older Berth wrote under
   * <root>/networks/endpoints move under the run root (a record already
   * there wins). A dir that still holds the files of a running container
   * stays until that container is torn down (removeEndpoint).
   */
  private migrated = false;
  migrate(): void {
    if (this.migrated || this.runDir === this.dir) return;
    const legacy = pathUnder(this.dir, 'endpoints');
    let ids: string[];
    try {
      ids = readdirSync(legacy);
    } catch {
      this.migrated = true;
      return;
    }
    for (const id of ids) {
      const dir = pathUnder(legacy, id);
      const old = pathUnder(dir, 'endpoint.json');
      if (existsSync(old)) {
        const file = this.endpointFile(id);
        if (!existsSync(file)) {
          mkdirSync(this.endpointDir(id), { recursive: true, mode: 0o700 });
          writeFileSync(`${file}.${process.pid}.tmp`, readFileSync(old), { mode: 0o600 });
          renameSync(`${file}.${process.pid}.tmp`, file);
        }
        rmSync(old, { force: true });
      }
      if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    }
    if (readdirSync(legacy).length === 0) rmSync(legacy, { recursive: true, force: true });
    this.migrated = true;
  }
  forgetInit(): void {
    this.initDone = false;
    this.netCache = undefined;
  }

  /**
   * The index; undefined when missing or unreadable (the caller rebuilds it
   * with a full scan). Not fsynced: after a power loss the scan runs anyway.
   */
  /**
   * The index as this process last wrote or read it: its text and the records
   * decoded from it. A read that finds the same bytes (and the same endpoints
   * dir mtime) reuses the records instead of parsing and decoding every one
   * again; records are never changed in place (every change is a new object).
   */
  private indexCache: { readonly text: string; readonly dirMtime: string; readonly eps: ReadonlyMap<string, EndpointRecord> } | undefined;
  /** Each record's JSON, kept while the record object lives: an index write serializes only the records that changed. */
  private readonly recordJson = new WeakMap<EndpointRecord, string>();

  async readIndex(): Promise<Map<string, EndpointRecord> | undefined> {
    this.counters.indexReads++;
    let text: string;
    let mtime: string;
    try {
      text = readFileSync(this.indexFile, 'utf8');
      mtime = await this.endpointsMtime();
    } catch {
      return undefined;
    }
    const c = this.indexCache;
    if (c !== undefined && c.text === text) return c.dirMtime === mtime ? new Map(c.eps) : undefined;
    try {
      const r = Index.decode(JSON.parse(text));
      // stale when a container dir came or went without it (a writer that keeps no index: an older Berth)
      if (isLeft(r)) return undefined;
      const eps = new Map(Object.entries(r.right.endpoints));
      this.indexCache = { text, dirMtime: r.right.dirMtime, eps: new Map(eps) };
      return r.right.dirMtime !== mtime ? undefined : eps;
    } catch {
      return undefined;
    }
  }
  private async endpointsMtime(): Promise<string> {
    return statSync(pathUnder(this.runDir, 'endpoints'), { bigint: true }).mtimeNs.toString();
  }
  private json(r: EndpointRecord): string {
    let j = this.recordJson.get(r);
    if (j === undefined) {
      j = JSON.stringify(r);
      this.recordJson.set(r, j);
    }
    return j;
  }
  async writeIndex(eps: ReadonlyMap<string, EndpointRecord>): Promise<void> {
    const tmp = `${this.indexFile}.${process.pid}.tmp`;
    const dirMtime = await this.endpointsMtime();
    const parts: string[] = [];
    for (const [id, r] of eps) parts.push(`${JSON.stringify(id)}:${this.json(r)}`);
    const text = `{"version":1,"dirMtime":${JSON.stringify(dirMtime)},"endpoints":{${parts.join(',')}}}`;
    this.indexCache = undefined;
    writeFileSync(tmp, text, { mode: 0o600 });
    // the rename in the thread pool: replacing a file makes ext4 start writing the new data (auto_da_alloc), ~3 ms
    await fsp.rename(tmp, this.indexFile);
    this.indexCache = { text, dirMtime, eps: new Map(eps) };
  }
  async removeIndex(): Promise<void> {
    await fsp.rm(this.indexFile, { force: true });
  }

  /** Marks an operation on `containerId` as under way (before its first change). */
  async markPending(containerId: string, mark: PendingMark): Promise<void> {
    writeFileSync(this.pendingFile(containerId), JSON.stringify(mark), { mode: 0o600 });
  }
  async clearPending(containerId: string): Promise<void> {
    rmSync(this.pendingFile(containerId), { force: true });
  }
  /** One container's pending mark: absent (undefined), or its owner (null when unreadable). */
  async pendingMark(containerId: string): Promise<PendingMark | null | undefined> {
    let text: string;
    try {
      text = readFileSync(this.pendingFile(containerId), 'utf8');
    } catch {
      return undefined;
    }
    try {
      const r = PendingMark.decode(JSON.parse(text));
      return isLeft(r) ? null : r.right;
    } catch {
      return null;
    }
  }
  /** The pending marks (usually none): container ID -> owner (undefined when unreadable: a writer died mid-write). */
  async pending(): Promise<Map<string, PendingMark | undefined>> {
    const out = new Map<string, PendingMark | undefined>();
    const dir = this.pendingDir;
    let ids: string[] = [];
    try {
      ids = readdirSync(dir);
    } catch {
      // no pending dir: no marks
    }
    for (const id of ids) {
      if (id.startsWith('.')) continue;
      let text = '';
      try {
        text = readFileSync(pathUnder(dir, id), 'utf8');
      } catch {
        // gone meanwhile, or unreadable: an unreadable mark
      }
      let mark: PendingMark | undefined;
      try {
        const r = PendingMark.decode(JSON.parse(text));
        mark = isLeft(r) ? undefined : r.right;
      } catch {
        mark = undefined;
      }
      out.set(id, mark);
    }
    return out;
  }

  private async readJson<A>(file: string, codec: t.Type<A, unknown>): Promise<A | undefined> {
    let text: string;
    try {
      text = readFileSync(file, 'utf8'); // small records on every operation: sync (a promise read costs ~25x the CPU)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return fail(corrupt(file, 'a JSON record', 'unparseable text'));
    }
    const r = codec.decode(json);
    if (isLeft(r)) return fail(corrupt(file, `a ${codec.name} record`, 'fields missing or of the wrong type'));
    return r.right;
  }

  /** The network records as read at the nets dir's mtime: a record written or removed (by any process) changes it. */
  private netCache: { readonly mtime: string; readonly recs: readonly NetworkRecord[] } | undefined;

  async networks(): Promise<NetworkRecord[]> {
    const dir = pathUnder(this.dir, 'nets');
    // the mtime before the read: a change during the read leaves a newer mtime, and the next call reads again
    const mtime = statSync(dir, { bigint: true }).mtimeNs.toString();
    if (this.netCache?.mtime === mtime) return [...this.netCache.recs];
    const recs = await this.readNetworks(dir);
    this.netCache = { mtime, recs };
    return [...recs];
  }
  private async readNetworks(dir: string): Promise<NetworkRecord[]> {
    const names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    const out: NetworkRecord[] = [];
    for (const n of names) {
      const r = await this.readJson(pathUnder(dir, n), NetworkRecord);
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
  }
  async writeNetwork(r: NetworkRecord): Promise<void> {
    await writeFileAtomic(this.netFile(r.id), JSON.stringify(r, null, 2) + '\n', 0o600);
  }
  async removeNetwork(id: string): Promise<void> {
    await fsp.rm(this.netFile(id), { force: true });
  }

  /** Every endpoint record, read from its own file (the full scan; the verbs read the index). */
  async endpoints(): Promise<EndpointRecord[]> {
    const dir = pathUnder(this.runDir, 'endpoints');
    const ids = await fsp.readdir(dir);
    const recs = await Promise.all(ids.map((id) => this.endpoint(id)));
    const out: EndpointRecord[] = [];
    for (const [i, r] of recs.entries()) {
      if (r) out.push(r);
      else await fsp.rm(pathUnder(dir, ids[i]!), { recursive: true, force: true }); // a dir whose record was never written
    }
    return out;
  }
  async endpoint(containerId: string): Promise<EndpointRecord | undefined> {
    this.counters.endpointRecordsRead++;
    return this.readJson(this.endpointFile(containerId), EndpointRecord);
  }
  /**
   * Replaced atomically (temp file, rename) without fsync: an endpoint means
   * nothing after a reboot (its netns, veths and rules are gone, and the
   * run root with them), and a crash of this process leaves the old version
   * or the new one.
   */
  async writeEndpoint(r: EndpointRecord): Promise<void> {
    const file = this.endpointFile(r.containerId);
    const text = JSON.stringify(r, null, 2) + '\n';
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      try {
        writeFileSync(tmp, text, { mode: 0o600 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        mkdirSync(this.endpointDir(r.containerId), { recursive: true, mode: 0o700 });
        writeFileSync(tmp, text, { mode: 0o600 });
      }
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
  }
  async removeEndpoint(containerId: string): Promise<void> {
    // a few small files: one sync call (Node's C++ removal) beats a thread-pool round trip per entry
    rmSync(this.endpointDir(containerId), { recursive: true, force: true });
    if (this.runDir !== this.dir) rmSync(this.legacyEndpointDir(containerId), { recursive: true, force: true });
  }
}
