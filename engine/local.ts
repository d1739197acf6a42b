/**
 * The local engine: the whole Engine facade, in process, as root on this
 * host. It composes the image store, the container runtime, volumes and
 * (when given) networking. Events are appended as JSON lines to
 * <runRoot>/events.jsonl, so that every process using the same roots (CLI,
 * agent) sees the others' events.
 */
import { appendFileSync, existsSync, mkdirSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine, EngineEvent, EngineRoots, ImageApi, NetworkApi } from './engine.js';
import type { Logger } from './log.js';
import { fail, unsupported } from './errors.js';
import { openContainerRuntime, type ContainerRuntime } from './runtime/containers.js';
import type { ContainerNetworking, NetworkSetupResult } from './services.js';
import { openStore, type Store } from './store/store.js';
import { openVolumeStore, type VolumeStore } from './volume/volumes.js';
import { isoTime } from './time.js';

/** Starts the engine's process helper ahead of a container start (`berth run`): runtime/helper.ts. */
export { startHelper } from './runtime/helper.js';

export interface LocalEngineOptions {
  /** OCI runtime executable (runc's CLI): berth-runtime by default, runc works too. */
  readonly runtime?: string;
  /** Networking: NetworkApi for the facade + ContainerNetworking for containers.
   *  Default: engine/network, loaded on first use; null: none (only "none" and "host" modes). */
  readonly networking?: { readonly api: NetworkApi; readonly containers: ContainerNetworking } | null;
  /** An ImageApi to use instead of engine/image's (loaded on first use). */
  readonly images?: (store: Store) => ImageApi;
  /** The berth command a container's shim runs (with `container cleanup <id>`) when a container that
   *  nobody waits for exits. Default: the built CLI's launcher (dist/cli/berth) with these roots, when
   *  there is one; null: none (the exit is then collected by the next command that looks at it). */
  readonly exitCommand?: readonly string[] | null;
  /** Where the engine's networking logs (recovery of a half-done setup, ip_forward changes, failed
   *  undos): the CLI passes its stderr logger; default: dropped. */
  readonly log?: Logger;
}

/** dist/cli/berth, the launcher of the CLI this engine was built with, with these roots; undefined
 *  where there is none (the engine run from its sources). */
const berthCommand = (roots: EngineRoots): string[] | undefined => {
  const launcher = fileURLToPath(new URL('../cli/berth', import.meta.url));
  return existsSync(launcher) ? [launcher, '--root', roots.root, '--run-root', roots.runRoot] : undefined;
};

export interface LocalEngine extends Engine {
  readonly roots: EngineRoots;
  readonly store: Store;
  readonly containers: ContainerRuntime;
  readonly volumes: VolumeStore;
}

const noNetworks: NetworkApi = {
  createNetwork: async () => fail(unsupported('networks: networking is not wired into this engine')),
  removeNetwork: async () => fail(unsupported('networks: networking is not wired into this engine')),
  listNetworks: async () => [],
  inspectNetwork: async (ref) => fail({ _tag: 'NotFound', kind: 'network', name: ref }),
  connectNetwork: async () => fail(unsupported('networks: networking is not wired into this engine')),
  disconnectNetwork: async () => fail(unsupported('networks: networking is not wired into this engine')),
  pruneNetworks: async () => ({ deleted: [] }),
};

type Networking = NetworkApi & ContainerNetworking & { endpointInfo(containerId: string): Promise<NetworkSetupResult | undefined> };

/** engine/network, imported on the first call: `run --network none` never loads it. */
const lazyNetworking = (
  roots: EngineRoots, resolveContainer: (ref: string) => Promise<string>, logger: Logger | undefined,
): { api: NetworkApi; containers: ContainerNetworking; info: (containerId: string) => Promise<NetworkSetupResult | undefined> } => {
  let loaded: Promise<Networking> | undefined;
  const get = (): Promise<Networking> =>
    (loaded ??= import('./network/networking.js').then((m) => m.openNetworking(roots, { resolveContainer, ...(logger ? { logger } : {}) })));
  const n: Networking = {
    createNetwork: async (...a) => (await get()).createNetwork(...a),
    removeNetwork: async (...a) => (await get()).removeNetwork(...a),
    listNetworks: async () => (await get()).listNetworks(),
    inspectNetwork: async (...a) => (await get()).inspectNetwork(...a),
    connectNetwork: async (...a) => (await get()).connectNetwork(...a),
    disconnectNetwork: async (...a) => (await get()).disconnectNetwork(...a),
    pruneNetworks: async () => (await get()).pruneNetworks(),
    setup: async (...a) => (await get()).setup(...a),
    teardown: async (...a) => (await get()).teardown(...a),
    connect: async (...a) => (await get()).connect(...a),
    disconnect: async (...a) => (await get()).disconnect(...a),
    endpointInfo: async (...a) => (await get()).endpointInfo(...a),
  };
  return { api: n, containers: n, info: n.endpointInfo };
};

/** engine/image's ImageApi (registry, archives, GC), imported on the first image call. */
const lazyImages = (store: Store, inUse: () => Promise<readonly string[]>): ImageApi => {
  let loaded: Promise<ImageApi> | undefined;
  const get = (): Promise<ImageApi> => (loaded ??= import('./image/api.js').then((m) => m.openImageApi(store, { inUse: inUse as () => Promise<never[]> })));
  return {
    pullImage: async (...a) => (await get()).pullImage(...a),
    pushImage: async (...a) => (await get()).pushImage(...a),
    listImages: async () => (await get()).listImages(),
    inspectImage: async (...a) => (await get()).inspectImage(...a),
    removeImage: async (...a) => (await get()).removeImage(...a),
    tagImage: async (...a) => (await get()).tagImage(...a),
    saveImages: async (...a) => (await get()).saveImages(...a),
    loadImages: async (...a) => (await get()).loadImages(...a),
    importImage: async (...a) => (await get()).importImage(...a),
    pruneImages: async (...a) => (await get()).pruneImages(...a),
  };
};

export const openLocalEngine = (roots: EngineRoots, opts: LocalEngineOptions = {}): LocalEngine => {
  const store = openStore(roots.root);
  let containers: ContainerRuntime | undefined;
  const lazy = opts.networking === undefined ? lazyNetworking(roots, async (ref) => (await (containers as ContainerRuntime).inspectContainer(ref)).id, opts.log) : undefined;
  const networking = opts.networking === null ? undefined : (opts.networking ?? lazy);
  const eventsFile = path.join(roots.runRoot, 'events.jsonl');
  const emit = (ev: EngineEvent): void => {
    // one O_APPEND write per event keeps lines whole and in order across processes;
    // events are best effort: an operation never fails because its event could not be written
    try {
      appendFileSync(eventsFile, `${JSON.stringify(ev)}\n`);
    } catch {
      try {
        mkdirSync(roots.runRoot, { recursive: true });
        appendFileSync(eventsFile, `${JSON.stringify(ev)}\n`);
      } catch {
        // no events then
      }
    }
  };
  const volumes = openVolumeStore(roots, () => (containers as ContainerRuntime).volumeUsers());
  // looked for at a detached start only: most commands start nothing
  const exitCommand = opts.exitCommand === undefined ? () => berthCommand(roots) : () => opts.exitCommand ?? undefined;
  containers = openContainerRuntime({
    roots, images: store, volumes, emit, exitCommand,
    ...(opts.runtime ? { runtime: opts.runtime } : {}),
    ...(networking ? { networking: networking.containers } : {}),
    ...(lazy ? { networkInfo: lazy.info } : {}),
  });
  const images = opts.images ? opts.images(store) : lazyImages(store, () => c.chainsInUse());
  const network = networking?.api ?? noNetworks;
  const c = containers;

  const volumeEvent = (action: 'create' | 'destroy', name: string): void => emit({ type: 'volume', action, name, time: isoTime() });

  return {
    roots, store, containers: c, volumes,
    ...images,
    // engine/build, imported on the first build
    buildImage: async (spec) => (await import('./build/builder.js')).buildImage({ roots, store, containers: c, pullImage: (ref) => images.pullImage(ref) }, spec),
    createContainer: c.createContainer, startContainer: c.startContainer, stopContainer: c.stopContainer,
    restartContainer: c.restartContainer, killContainer: c.killContainer, removeContainer: c.removeContainer, cleanupContainer: c.cleanupContainer,
    listContainers: c.listContainers, inspectContainer: c.inspectContainer, logs: c.logs, exec: c.exec,
    waitContainer: c.waitContainer, pauseContainer: c.pauseContainer, resumeContainer: c.resumeContainer,
    updateContainer: c.updateContainer, renameContainer: c.renameContainer, statsContainer: c.statsContainer,
    createNetwork: network.createNetwork, removeNetwork: network.removeNetwork, listNetworks: network.listNetworks,
    inspectNetwork: network.inspectNetwork, connectNetwork: network.connectNetwork,
    disconnectNetwork: network.disconnectNetwork, pruneNetworks: network.pruneNetworks,
    async createVolume(spec) {
      const v = await volumes.createVolume(spec);
      volumeEvent('create', v.name);
      return v;
    },
    async removeVolume(name, o) {
      await volumes.removeVolume(name, o);
      volumeEvent('destroy', name);
    },
    listVolumes: volumes.listVolumes,
    inspectVolume: volumes.inspectVolume,
    async pruneVolumes() {
      const r = await volumes.pruneVolumes();
      for (const n of r.deleted) volumeEvent('destroy', n);
      return r;
    },
    async *events(o = {}) {
      let pos = 0;
      try {
        pos = o.since ? 0 : (await fsp.stat(eventsFile)).size;
      } catch {
        pos = 0;
      }
      const sinceIso = o.since?.toISOString();
      let rest = '';
      while (!o.signal?.aborted) {
        let size = 0;
        try {
          size = (await fsp.stat(eventsFile)).size;
        } catch {
          size = 0;
        }
        if (size > pos) {
          const h = await fsp.open(eventsFile, 'r');
          try {
            const buf = Buffer.alloc(size - pos);
            await h.read(buf, 0, buf.length, pos);
            pos = size;
            const lines = (rest + buf.toString('utf8')).split('\n');
            rest = lines.pop() ?? '';
            for (const l of lines) {
              if (l === '') continue;
              const ev = JSON.parse(l) as EngineEvent;
              if (sinceIso === undefined || ev.time >= sinceIso) yield ev;
            }
          } finally {
            await h.close();
          }
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      // nothing held open: containers keep running under their shims
    },
  };
};
