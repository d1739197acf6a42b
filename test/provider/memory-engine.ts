/**
 * An in-memory implementation of the Engine facade, for the reconciler's
 * ordering, ownership and failure-isolation tests. It keeps the facade's
 * contract where the reconciler relies on it: names are unique, a network or
 * volume in use cannot be removed, a host port is held by one container,
 * specs come back normalized (defaults filled in, as the real engine does),
 * and failures can be injected per method. It is not a model of the kernel;
 * the end-to-end tests run against the real engine.
 */
import { createHash } from 'node:crypto';
import type {
  ContainerInfo, ContainerSpec, Engine, ImageInfo, ImageRuntimeConfig, NetworkInfo, NetworkSpec, VolumeInfo, VolumeSpec,
} from '../../engine/engine.js';
import { alreadyExists, conflict, EngineFailure, notFound, unsupported, type EngineError } from '../../engine/errors.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface Call { readonly method: string; readonly arg: string }

export class MemoryEngine implements Engine {
  readonly calls: Call[] = [];
  images = new Map<string, ImageInfo>(); // by id
  tags = new Map<string, string>(); // ref -> id
  containers = new Map<string, Mutable<ContainerInfo>>(); // by id
  networks = new Map<string, NetworkInfo>();
  volumes = new Map<string, VolumeInfo>();
  /** Images a `pullImage` can fetch, by ref (a fake registry). */
  registry = new Map<string, ImageRuntimeConfig>();
  /** Result of a healthcheck exec per container name (default: healthy). */
  health = new Map<string, () => number>();
  /** Whether the engine reports container health itself (the real one may not yet). */
  reportsHealth = false;
  /** Per-method delay, to make parallelism observable. */
  delayMs = 0;
  private faults = new Map<string, { error: EngineError; times: number; match?: string }[]>();
  private seq = 0;
  inFlight = 0;
  maxInFlight = 0;

  /** Make `method` fail `times` times (for calls whose first argument contains `match`). */
  failNext(method: string, error: EngineError, times = 1, match?: string): void {
    this.faults.set(method, [...(this.faults.get(method) ?? []), { error, times, ...(match ? { match } : {}) }]);
  }

  private async op<A>(method: string, arg: string, f: () => A): Promise<A> {
    this.calls.push({ method, arg });
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
      const fs = this.faults.get(method);
      const f0 = fs?.find((x) => x.times > 0 && (x.match === undefined || arg.includes(x.match)));
      if (f0) {
        f0.times--;
        throw new EngineFailure(f0.error);
      }
      return f();
    } finally {
      this.inFlight--;
    }
  }

  private id(): string {
    return createHash('sha256').update(String(++this.seq)).digest('hex');
  }

  private findContainer(ref: string): Mutable<ContainerInfo> {
    const c = this.containers.get(ref) ?? [...this.containers.values()].find((x) => x.name === ref || x.id.startsWith(ref));
    if (!c) throw new EngineFailure(notFound('container', ref));
    return c;
  }

  private findImage(ref: string): ImageInfo {
    const id = this.tags.get(ref) ?? [...this.images.keys()].find((i) => i === ref || i.startsWith(ref));
    const img = id ? this.images.get(id) : undefined;
    if (!img) throw new EngineFailure(notFound('image', ref));
    return img;
  }

  private findNetwork(ref: string): NetworkInfo {
    const n = this.networks.get(ref) ?? [...this.networks.values()].find((x) => x.name === ref);
    if (!n) throw new EngineFailure(notFound('network', ref));
    return n;
  }

  private addImage(ref: string, config: ImageRuntimeConfig, labels: Record<string, string>): ImageInfo {
    const id = `sha256:${this.id()}`;
    const old = this.tags.get(ref);
    if (old) {
      const o = this.images.get(old)!;
      this.images.set(old, { ...o, names: o.names.filter((n) => n !== ref) });
    }
    const info: ImageInfo = { id, names: [ref], digest: id, size: 1, architecture: 'amd64', os: 'linux', config, labels };
    this.images.set(id, info);
    this.tags.set(ref, id);
    return info;
  }

  /* images */
  pullImage(ref: string): Promise<ImageInfo> {
    return this.op('pullImage', ref, () => {
      const cfg = this.registry.get(ref);
      if (!cfg) throw new EngineFailure(notFound('image', ref, 'not in the registry'));
      const cur = this.tags.get(ref);
      if (cur && JSON.stringify(this.images.get(cur)!.config) === JSON.stringify(cfg)) return this.images.get(cur)!;
      return this.addImage(ref, cfg, {});
    });
  }
  pushImage(): Promise<{ digest: string }> { return Promise.reject(new EngineFailure(unsupported('push'))); }
  listImages(): Promise<ImageInfo[]> { return this.op('listImages', '', () => [...this.images.values()]); }
  inspectImage(ref: string): Promise<ImageInfo> { return this.op('inspectImage', ref, () => this.findImage(ref)); }
  removeImage(ref: string): Promise<{ untagged: string[]; deleted: string[] }> {
    return this.op('removeImage', ref, () => {
      const img = this.findImage(ref);
      if ([...this.containers.values()].some((c) => c.imageId === img.id)) throw new EngineFailure(conflict('image', ref, 'in use by a container'));
      this.images.delete(img.id);
      for (const n of img.names) this.tags.delete(n);
      return { untagged: [...img.names], deleted: [img.id] };
    });
  }
  tagImage(source: string, target: string): Promise<void> {
    return this.op('tagImage', target, () => { this.tags.set(target, this.findImage(source).id); });
  }
  saveImages(): Promise<void> { return Promise.reject(new EngineFailure(unsupported('save'))); }
  loadImages(inputPath: string): Promise<string[]> {
    return this.op('loadImages', inputPath, () => {
      const ref = `loaded/${inputPath.split('/').pop()}:latest`;
      this.addImage(ref, {}, {});
      return [ref];
    });
  }
  importImage(tarPath: string, ref: string, opts?: { changes?: Partial<ImageRuntimeConfig> }): Promise<ImageInfo> {
    return this.op('importImage', ref, () => {
      const { labels, ...config } = opts?.changes ?? {};
      return this.addImage(ref, { ...config, labels: labels ?? {} }, { ...(labels ?? {}) });
    });
  }
  pruneImages(): Promise<{ deleted: string[]; reclaimedBytes: number }> { return Promise.resolve({ deleted: [], reclaimedBytes: 0 }); }

  /* containers */
  createContainer(spec: ContainerSpec): Promise<ContainerInfo> {
    return this.op('createContainer', spec.name ?? '', () => {
      const name = spec.name ?? `c${this.seq}`;
      if ([...this.containers.values()].some((c) => c.name === name)) throw new EngineFailure(alreadyExists('container', name));
      const img = this.findImage(spec.image);
      for (const m of spec.mounts ?? []) {
        if (m.type === 'volume' && m.source && !this.volumes.has(m.source)) {
          this.volumes.set(m.source, { name: m.source, created: new Date().toISOString(), spec: { name: m.source, driver: 'local', labels: {} }, mountpoint: `/v/${m.source}`, usedBy: [] });
        }
      }
      const networks: Record<string, { networkId: string; aliases: string[]; ipv4Address: string }> = {};
      for (const [n, a] of Object.entries(spec.networks ?? {})) {
        const net = this.findNetwork(n);
        networks[n] = { networkId: net.id, aliases: [...(a.aliases ?? []), name], ipv4Address: '10.0.0.2/24' };
      }
      const id = this.id();
      // Normalized as the real engine does: defaults filled in.
      const resources = { cpuShares: 1024, ...(spec.resources ?? {}), ...(spec.resources?.memory ? { memorySwap: spec.resources.memory * 2 } : {}) };
      const info: Mutable<ContainerInfo> = {
        id, name, created: new Date().toISOString(), image: spec.image, imageId: img.id,
        spec: { ...spec, name, resources, restartPolicy: spec.restartPolicy ?? { name: 'no' }, env: [...(img.config.env ?? []), ...(spec.env ?? [])], networkMode: spec.networkMode ?? 'bridge' },
        state: { status: 'created', restartCount: 0 }, networks, ports: spec.ports ?? [],
      };
      this.containers.set(id, info);
      for (const m of spec.mounts ?? []) if (m.type === 'volume' && m.source) this.useVolume(m.source, id, true);
      return info;
    });
  }
  private useVolume(name: string, id: string, on: boolean): void {
    const v = this.volumes.get(name);
    if (v) this.volumes.set(name, { ...v, usedBy: on ? [...v.usedBy, id] : v.usedBy.filter((x) => x !== id) });
  }
  startContainer(ref: string): Promise<void> {
    return this.op('startContainer', ref, () => {
      const c = this.findContainer(ref);
      for (const p of c.ports) {
        if (p.hostPort === undefined) continue;
        const clash = [...this.containers.values()].find((o) => o !== c && o.state.status === 'running' && o.ports.some((q) => q.hostPort === p.hostPort && q.protocol === p.protocol));
        if (clash) throw new EngineFailure(conflict('container', c.name, `host port ${p.hostPort} is held by ${clash.name}`));
      }
      c.state = { status: 'running', pid: 100 + this.seq, restartCount: 0, startedAt: new Date().toISOString(), ...(this.reportsHealth && c.spec.healthcheck ? { health: { status: 'healthy', failingStreak: 0 } } : {}) };
    });
  }
  stopContainer(ref: string): Promise<void> {
    return this.op('stopContainer', ref, () => {
      const c = this.findContainer(ref);
      c.state = { status: 'exited', exitCode: 137, restartCount: c.state.restartCount };
    });
  }
  restartContainer(ref: string): Promise<void> { return this.op('restartContainer', ref, () => { this.findContainer(ref); }); }
  killContainer(ref: string): Promise<void> { return this.stopContainer(ref); }
  removeContainer(ref: string, opts?: { force?: boolean }): Promise<void> {
    return this.op('removeContainer', ref, () => {
      const c = this.findContainer(ref);
      if (c.state.status === 'running' && !opts?.force) throw new EngineFailure(conflict('container', c.name, 'is running'));
      this.containers.delete(c.id);
      for (const v of this.volumes.keys()) this.useVolume(v, c.id, false);
    });
  }
  listContainers(): Promise<ContainerInfo[]> { return this.op('listContainers', '', () => [...this.containers.values()]); }
  inspectContainer(ref: string): Promise<ContainerInfo> { return this.op('inspectContainer', ref, () => this.findContainer(ref)); }
  logs(): AsyncIterable<never> { return { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true, value: undefined as never }) }) }; }
  exec(ref: string, spec: { command: readonly string[] }): Promise<{ exitCode: number }> {
    return this.op('exec', `${ref} ${spec.command.join(' ')}`, () => {
      const c = this.findContainer(ref);
      return { exitCode: (this.health.get(c.name) ?? (() => 0))() };
    });
  }
  waitContainer(ref: string): Promise<{ exitCode: number }> {
    return this.op('waitContainer', ref, () => ({ exitCode: this.findContainer(ref).state.exitCode ?? 0 }));
  }
  pauseContainer(ref: string): Promise<void> { return this.op('pauseContainer', ref, () => { this.findContainer(ref); }); }
  resumeContainer(ref: string): Promise<void> { return this.op('resumeContainer', ref, () => { this.findContainer(ref); }); }
  updateContainer(ref: string, update: { resources?: ContainerSpec['resources']; restartPolicy?: ContainerSpec['restartPolicy'] }): Promise<void> {
    return this.op('updateContainer', ref, () => {
      const c = this.findContainer(ref);
      const merged: Record<string, unknown> = { ...(c.spec.resources ?? {}), ...(update.resources ?? {}) };
      for (const [k, v] of Object.entries(merged)) if (v === 0 || v === '') delete merged[k];
      c.spec = { ...c.spec, resources: merged, ...(update.restartPolicy ? { restartPolicy: update.restartPolicy } : {}) };
    });
  }
  renameContainer(ref: string, newName: string): Promise<void> {
    return this.op('renameContainer', `${ref}->${newName}`, () => {
      if ([...this.containers.values()].some((c) => c.name === newName)) throw new EngineFailure(alreadyExists('container', newName));
      const c = this.findContainer(ref);
      c.name = newName;
      c.spec = { ...c.spec, name: newName };
    });
  }
  statsContainer(): Promise<never> { return Promise.reject(new EngineFailure(unsupported('stats'))); }

  /* networks */
  createNetwork(spec: NetworkSpec): Promise<NetworkInfo> {
    return this.op('createNetwork', spec.name, () => {
      if ([...this.networks.values()].some((n) => n.name === spec.name)) throw new EngineFailure(alreadyExists('network', spec.name));
      const id = this.id();
      const info: NetworkInfo = { id, name: spec.name, created: '', spec: { driver: 'bridge', subnet: `10.${this.seq % 250}.0.0/24`, ...spec }, bridge: `berth${this.seq}`, containers: {} };
      this.networks.set(id, info);
      return info;
    });
  }
  removeNetwork(ref: string): Promise<void> {
    return this.op('removeNetwork', ref, () => {
      const n = this.findNetwork(ref);
      const users = [...this.containers.values()].filter((c) => Object.values(c.networks).some((x) => x.networkId === n.id));
      if (users.length > 0) throw new EngineFailure(conflict('network', n.name, `in use by ${users.map((u) => u.name).join(', ')}`));
      this.networks.delete(n.id);
    });
  }
  listNetworks(): Promise<NetworkInfo[]> { return this.op('listNetworks', '', () => [...this.networks.values()]); }
  inspectNetwork(ref: string): Promise<NetworkInfo> { return this.op('inspectNetwork', ref, () => this.findNetwork(ref)); }
  connectNetwork(network: string, container: string, attachment?: { aliases?: readonly string[] }): Promise<void> {
    return this.op('connectNetwork', `${network} ${container}`, () => {
      const n = this.findNetwork(network);
      const c = this.findContainer(container);
      c.networks = { ...c.networks, [n.name]: { networkId: n.id, aliases: [...(attachment?.aliases ?? []), c.name] } };
    });
  }
  disconnectNetwork(network: string, container: string): Promise<void> {
    return this.op('disconnectNetwork', `${network} ${container}`, () => {
      const n = this.findNetwork(network);
      const c = this.findContainer(container);
      c.networks = Object.fromEntries(Object.entries(c.networks).filter(([, x]) => x.networkId !== n.id));
    });
  }
  pruneNetworks(): Promise<{ deleted: string[] }> { return Promise.resolve({ deleted: [] }); }

  /* volumes */
  createVolume(spec: VolumeSpec): Promise<VolumeInfo> {
    return this.op('createVolume', spec.name, () => {
      if (this.volumes.has(spec.name)) throw new EngineFailure(alreadyExists('volume', spec.name));
      const info: VolumeInfo = { name: spec.name, created: '', spec: { driver: 'local', options: {}, ...spec }, mountpoint: `/v/${spec.name}`, usedBy: [] };
      this.volumes.set(spec.name, info);
      return info;
    });
  }
  removeVolume(name: string): Promise<void> {
    return this.op('removeVolume', name, () => {
      const v = this.volumes.get(name);
      if (!v) throw new EngineFailure(notFound('volume', name));
      if (v.usedBy.length > 0) throw new EngineFailure(conflict('volume', name, 'in use'));
      this.volumes.delete(name);
    });
  }
  listVolumes(): Promise<VolumeInfo[]> { return this.op('listVolumes', '', () => [...this.volumes.values()]); }
  inspectVolume(name: string): Promise<VolumeInfo> {
    return this.op('inspectVolume', name, () => {
      const v = this.volumes.get(name);
      if (!v) throw new EngineFailure(notFound('volume', name));
      return v;
    });
  }
  pruneVolumes(): Promise<{ deleted: string[]; reclaimedBytes: number }> { return Promise.resolve({ deleted: [], reclaimedBytes: 0 }); }

  events(): AsyncIterable<never> { return { [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true, value: undefined as never }) }) }; }
  close(): Promise<void> { return Promise.resolve(); }
}
