/**
 * Networking state on disk, under <root>/networks:
 *
 *   lock                          flock(2) target (lock.ts)
 *   nets/<id>.json                one per network (NetworkRecord)
 *   endpoints/<containerId>/      one per container that setup() saw:
 *       endpoint.json             EndpointRecord
 *       hosts resolv.conf hostname   the files bind-mounted into it
 *
 * Every record carries a `phase`: "creating" and "removing" are written
 * before the host is changed (intent), "ready" after. All changes happen
 * under the lock, so a record found in a transitional phase by a command
 * holding the lock was left by a command that died: recovery finishes or
 * undoes it (networking.ts, recover()).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import { writeFileAtomic } from '../store/fsutil.js';
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


export class StateDir {
  readonly dir: string;
  constructor(root: string) {
    this.dir = path.join(root, 'networks');
  }
  get lockFile(): string {
    return path.join(this.dir, 'lock');
  }
  netFile(id: string): string {
    return path.join(this.dir, 'nets', `${id}.json`);
  }
  endpointDir(containerId: string): string {
    return path.join(this.dir, 'endpoints', containerId);
  }
  endpointFile(containerId: string): string {
    return path.join(this.endpointDir(containerId), 'endpoint.json');
  }

  async init(): Promise<void> {
    await fsp.mkdir(path.join(this.dir, 'nets'), { recursive: true, mode: 0o700 });
    await fsp.mkdir(path.join(this.dir, 'endpoints'), { recursive: true, mode: 0o700 });
  }

  private async readJson<A>(file: string, codec: t.Type<A, unknown>): Promise<A | undefined> {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
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

  async networks(): Promise<NetworkRecord[]> {
    const dir = path.join(this.dir, 'nets');
    const names = (await fsp.readdir(dir)).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    const out: NetworkRecord[] = [];
    for (const n of names) {
      const r = await this.readJson(path.join(dir, n), NetworkRecord);
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

  async endpoints(): Promise<EndpointRecord[]> {
    const dir = path.join(this.dir, 'endpoints');
    const out: EndpointRecord[] = [];
    for (const id of await fsp.readdir(dir)) {
      const r = await this.readJson(this.endpointFile(id), EndpointRecord);
      if (r) out.push(r);
      else await fsp.rm(path.join(dir, id), { recursive: true, force: true }); // a dir whose record was never written
    }
    return out;
  }
  async endpoint(containerId: string): Promise<EndpointRecord | undefined> {
    return this.readJson(this.endpointFile(containerId), EndpointRecord);
  }
  async writeEndpoint(r: EndpointRecord): Promise<void> {
    await fsp.mkdir(this.endpointDir(r.containerId), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.endpointFile(r.containerId), JSON.stringify(r, null, 2) + '\n', 0o600);
  }
  async removeEndpoint(containerId: string): Promise<void> {
    await fsp.rm(this.endpointDir(containerId), { recursive: true, force: true });
  }
}
