/**
 * Berth's networking: the `ContainerNetworking` the runtime calls around a
 * container's life, and the `NetworkApi` group of the Engine facade.
 *
 * Changes happen under the networking lock (lock.ts), in short critical
 * sections: records, addresses, ports, the nft table and hosts files. The
 * slow host work of one container (its netns, veths, the veth deletion's RCU
 * wait) runs outside the lock, so setups and teardowns of different
 * containers overlap. Host changes follow a recorded intent: a pending mark
 * (owner pid + start time) and the record (with the chosen addresses, veth
 * names and ports) are written first, the host is changed, then the record
 * is marked ready and the mark removed. Each command recovers first what a
 * dead owner left pending: only the pending marks are looked at, and every
 * record only by a full scan (after a reboot, when a bridge is missing, on
 * recover() and prune), so a verb's cost does not grow with the number of
 * containers. The verbs read one index of all endpoint records (state.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type {
  ContainerNetworkInfo, EngineRoots, NetworkApi, NetworkAttachment, NetworkInfo, NetworkSpec, PortSpec,
} from '../engine.js';
import { alreadyExists, conflict, fail, invalidSpec, notFound, unsupported } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { trace } from '../runtime/trace.js';
import type { ContainerNetworking, NetworkSetupOptions, NetworkSetupRequest, NetworkSetupResult } from '../services.js';
import * as files from './files.js';
import * as host from './host.js';
import {
  allocate, checkAddressing, checkFixed, firstFreeSubnet, formatAddress, formatCidr, macFor, overlaps, parseCidr,
} from './ipam.js';
import { withFlock } from './lock.js';
import { pathUnder } from '../store/fsutil.js';
import { applyElements, applyRuleset, deleteTable, dnatElements, dnatsOf, ruleset, type Dnat } from './nft.js';
import { exposedToPorts, resolvePorts, type PublishSpec } from './ports.js';
import { StateDir, type Attachment, type EndpointRecord, type NetworkRecord, type PendingMark, type StateCounters } from './state.js';
import { isoTime } from '../time.js';

export const DEFAULT_ROOT = '/var/lib/berth';
/** Host-wide note that Berth turned net.ipv4.ip_forward on (see ensureIpForward). */
export const IP_FORWARD_MARK = '/run/berth/ip_forward.set-by-berth';
/** The default network's pool: 10.88.0.0/16 first, then the next free /16 up to 10.95. */
const DEFAULT_POOL = parseCidr('10.88.0.0/13')!;
/** User networks get /24s out of 10.89.0.0/16... then 10.90-10.127. */
const USER_POOL = parseCidr('10.89.0.0/16')!;
const USER_POOL_MORE = parseCidr('10.96.0.0/11')!;
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const PREDEFINED = new Set(['bridge', 'host', 'none']);

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

export interface NetworkingOptions {
  readonly logger?: Logger;
  /**
   * Resolves a container ref (name, ID, ID prefix) to its ID for the
   * NetworkApi verbs; the local engine passes its container store. Without
   * it, refs resolve among containers that have a network set up.
   */
  readonly resolveContainer?: (ref: string) => Promise<string>;
}

export interface Networking extends ContainerNetworking, NetworkApi {
  /** The resolved published ports and addresses of a container (undefined when none set up). */
  endpointInfo(containerId: string): Promise<NetworkSetupResult | undefined>;
  /** Finishes or undoes what killed commands left half done. Every other verb does this first. */
  recover(): Promise<void>;
  /** Removes everything this root has on the host: endpoints, networks (the default one too), Berth's nft table. */
  purge(): Promise<void>;
  /** This root's nft table and default bridge names (for checks and tests). */
  readonly table: string;
  /** Records read so far by this object (for tests of the cost per verb). */
  readonly counters: StateCounters;
}

/** What a locked section works on: every endpoint record, from the index. */
interface Ctx {
  readonly eps: Map<string, EndpointRecord>;
  /** Set in a group (grouped()): put() leaves the index to the group's one write at its end. */
  deferIndex?: boolean;
  /** Published ports of a group's new setups: added to the table once the members have their answers (they go on meanwhile). */
  addDnats?: Dnat[];
}

interface QueuedGroup {
  readonly fn: (ctx: Ctx) => Promise<unknown>;
  readonly resolve: (a: unknown) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * One container's share of a group commit (see commit()): record changes
 * before and after the one table rebuild, the networks whose members' hosts
 * files change, and the container whose own does.
 */
interface CommitStep {
  readonly before?: (ctx: Ctx) => Promise<void>;
  readonly after?: (ctx: Ctx) => Promise<void>;
  readonly nft: boolean;
  readonly networks: readonly string[];
  readonly also?: string;
  /** A container that joined its networks: its own hosts file is written, its line appended to its peers'. */
  readonly joined?: string;
  /** The pending mark to clear once the index says what the records say. */
  readonly endId?: string;
  /** Published ports to take out of the table (map elements; filled by `before`). */
  readonly dropDnats?: Dnat[];
}
interface QueuedStep extends CommitStep {
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

const sameNetworks = (a: EndpointRecord, b: EndpointRecord): boolean =>
  a.ports.length === b.ports.length &&
  JSON.stringify(Object.values(a.networks).map((x) => x.networkId).sort()) === JSON.stringify(Object.values(b.networks).map((x) => x.networkId).sort());

const procStart = async (pid: number): Promise<string | undefined> => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]; // field 22, starttime
  } catch {
    return undefined;
  }
};

export const openNetworking = (roots: EngineRoots, opts: NetworkingOptions = {}): Networking => new LocalNetworking(roots, opts);

class LocalNetworking implements Networking {
  private readonly state: StateDir;
  private readonly netnsDir: string;
  private readonly log: Logger;
  private readonly defaultRoot: boolean;
  /** Present while a full scan of the records is not needed: on tmpfs, gone after a reboot. */
  private readonly scannedMark: string;
  /** Containers this process has an operation under way for (their pending marks are not a dead owner's). */
  private readonly inFlight = new Set<string>();
  private myStart: Promise<string | undefined> | undefined;
  private readonly commitQueue: QueuedStep[] = [];
  private readonly groupQueue: QueuedGroup[] = [];
  /** A table rebuild failed after its callers went on: the next commit rebuilds it. */
  private tableDirty = false;
  readonly table: string;

  constructor(roots: EngineRoots, private readonly opts: NetworkingOptions) {
    this.state = new StateDir(roots.root, roots.runRoot);
    this.netnsDir = path.join(roots.runRoot, 'netns');
    this.scannedMark = path.join(roots.runRoot, 'network-scanned');
    this.log = opts.logger ?? silentLogger();
    this.defaultRoot = path.resolve(roots.root) === DEFAULT_ROOT;
    // one table per root, so that two roots (tests, a second engine) never rewrite each other's rules
    this.table = this.defaultRoot ? 'berth' : `berth_${sha(path.resolve(roots.root)).slice(0, 8)}`;
    // the facade hands these methods around unbound (local.ts spreads them into the Engine)
    for (const m of ['setup', 'teardown', 'connect', 'disconnect', 'createNetwork', 'removeNetwork', 'listNetworks', 'inspectNetwork',
      'connectNetwork', 'disconnectNetwork', 'pruneNetworks', 'endpointInfo', 'recover', 'purge'] as const) {
      (this as Record<string, unknown>)[m] = (this[m] as (...a: unknown[]) => unknown).bind(this);
    }
  }

  /* ------------------------------------------------------------ plumbing */

  get counters(): StateCounters {
    return this.state.counters;
  }

  /** Runs fn under the lock, after recovering what dead commands left (a full scan when `full`). */
  private async locked<A>(fn: (ctx: Ctx) => Promise<A>, full = false): Promise<A> {
    await this.state.init();
    return withFlock(this.state.lockFile, async () => {
      this.state.migrate();
      return fn(await this.recoverLocked(full));
    });
  }

  /** Writes a record and the index (record first: the record is the truth, the index its cache). */
  private async put(ctx: Ctx, ep: EndpointRecord, index = true): Promise<void> {
    await this.state.writeEndpoint(ep);
    ctx.eps.set(ep.containerId, ep);
    if (index && !ctx.deferIndex) await this.state.writeIndex(ctx.eps);
  }

  /**
   * Runs fn under the lock together with the other fns of this process queued
   * meanwhile (the first halves of a stack's setups): one lock, one recovery,
   * one index write at the end. Each fn succeeds or fails on its own.
   */
  private grouped<A>(fn: (ctx: Ctx) => Promise<A>): Promise<A> {
    return new Promise<A>((resolve, reject) => {
      this.groupQueue.push({ fn, resolve: resolve as (a: unknown) => void, reject });
      if (this.groupQueue.length > 1) return;
      const taken: QueuedGroup[] = [];
      this.locked(async (ctx) => {
        taken.push(...this.groupQueue.splice(0));
        const out: [QueuedGroup, boolean, unknown][] = [];
        ctx.deferIndex = true;
        for (const g of taken) {
          try {
            out.push([g, true, await g.fn(ctx)]);
          } catch (e) {
            out.push([g, false, e]);
          }
        }
        ctx.deferIndex = false;
        await this.state.writeIndex(ctx.eps);
        for (const [g, ok, v] of out) {
          if (ok) g.resolve(v);
          else g.reject(v);
        }
        taken.length = 0;
        // the new setups' ports: their owners do their host work meanwhile (a DNAT to an address not up yet drops nothing of anyone's)
        if (ctx.addDnats && ctx.addDnats.length > 0) {
          await this.changeDnats(ctx, 'add', ctx.addDnats).catch((e: unknown) => {
            this.tableDirty = true;
            this.log.warn({ err: (e as Error).message }, 'nft table rebuild failed; the next commit retries');
          });
        }
      }).catch((e: unknown) => {
        for (const g of [...taken, ...this.groupQueue.splice(0)]) g.reject(e);
      });
    });
  }

  /**
   * Group commit: the locked second halves of setups and teardowns that are
   * ready at the same time (a stack's containers) share one lock, one index
   * write, one table rebuild and one pass over the hosts files. A step
   * queued while a commit waits for the lock joins it.
   */
  private commit(step: CommitStep): Promise<void> {
    return new Promise((resolve, reject) => {
      this.commitQueue.push({ ...step, resolve, reject });
      if (this.commitQueue.length > 1) return; // a commit is scheduled and has not started: it takes this one too
      this.locked(async (ctx) => this.runCommit(ctx, this.commitQueue.splice(0))).catch((e: unknown) => {
        for (const q of this.commitQueue.splice(0)) q.reject(e);
      });
    });
  }

  private async runCommit(ctx: Ctx, steps: readonly QueuedStep[]): Promise<void> {
    const failed = new Set<QueuedStep>();
    const each = async (f: (q: QueuedStep) => Promise<void> | undefined): Promise<void> => {
      for (const q of steps) {
        if (failed.has(q)) continue;
        try {
          await f(q);
        } catch (e) {
          failed.add(q);
          q.reject(e);
        }
      }
    };
    const all = async (f: () => Promise<void>): Promise<boolean> => {
      try {
        await f();
        return true;
      } catch (e) {
        for (const q of steps) if (!failed.has(q)) q.reject(e);
        return false;
      }
    };
    await each((q) => q.before?.(ctx));
    if (steps.some((q) => q.nft && !failed.has(q)) || this.tableDirty) {
      if (!(await all(() => this.applyNft(ctx)))) return;
      this.tableDirty = false;
    } else {
      const drop = steps.filter((q) => !failed.has(q)).flatMap((q) => q.dropDnats ?? []);
      if (drop.length > 0 && !(await all(() => this.changeDnats(ctx, 'delete', drop)))) return;
    }
    await each((q) => q.after?.(ctx));
    const ok = steps.filter((q) => !failed.has(q));
    if (!(await all(() => this.state.writeIndex(ctx.eps)))) return;
    const nets = new Set(ok.flatMap((q) => q.networks));
    const also = new Set(ok.flatMap((q) => (q.also !== undefined ? [q.also] : [])));
    const joined = new Set(ok.flatMap((q) => (q.joined !== undefined ? [q.joined] : [])));
    if ((nets.size > 0 || also.size > 0 || joined.size > 0) && !(await all(() => this.refreshHosts(ctx, nets, also, joined)))) return;
    await each(async (q) => {
      if (q.endId !== undefined) await this.end(q.endId);
      q.resolve();
    });
  }

  private async drop(ctx: Ctx, containerId: string): Promise<void> {
    await this.state.removeEndpoint(containerId);
    ctx.eps.delete(containerId);
    await this.state.writeIndex(ctx.eps);
  }

  /** Marks an operation on the container as under way, before its first change. */
  private async begin(containerId: string): Promise<void> {
    this.myStart ??= procStart(process.pid);
    this.inFlight.add(containerId);
    await this.state.markPending(containerId, { pid: process.pid, start: (await this.myStart) ?? '' });
  }

  /** The operation is done: its record (and the index, written here in a group) say so already. */
  private async end(containerId: string, ctx?: Ctx): Promise<void> {
    if (ctx?.deferIndex) await this.state.writeIndex(ctx.eps);
    await this.state.clearPending(containerId);
    this.inFlight.delete(containerId);
  }

  /** Whether the owner of a pending mark is still at work (this process, or another one alive). */
  private async ownerAlive(containerId: string, mark: PendingMark | undefined): Promise<boolean> {
    if (!mark) return false;
    if (mark.pid === process.pid) return this.inFlight.has(containerId);
    return mark.start !== '' && (await procStart(mark.pid)) === mark.start;
  }

  /**
   * Adds or deletes published ports as map elements (one `nft -f`, a few
   * lines); if that fails (the table is missing, or of an older layout, or
   * an element is not what the index says), the table is rebuilt whole.
   */
  private async changeDnats(ctx: Ctx, op: 'add' | 'delete', dnats: readonly Dnat[]): Promise<void> {
    try {
      await applyElements(this.table, dnatElements(this.table, op, dnats));
    } catch (e) {
      this.log.debug({ err: (e as Error).message }, 'nft element change failed: rebuilding the table');
      await this.applyNft(ctx);
    }
  }

  /** Rebuilds Berth's table from the networks and the index (one `nft -f`, one transaction). */
  private async applyNft(ctx: Ctx): Promise<void> {
    const nets = (await this.state.networks()).filter((n) => n.phase === 'ready');
    if (nets.length === 0) {
      await deleteTable(this.table);
      return;
    }
    const internal = new Set(nets.filter((n) => n.internal).map((n) => n.id));
    const publishable = [...ctx.eps.values()].filter((e) => {
      const p = e.networkOrder[0];
      return p !== undefined && e.ports.length > 0 && !internal.has(e.networks[p]!.networkId);
    });
    await applyRuleset(this.table, ruleset(this.table, nets, dnatsOf(publishable)));
  }

  /**
   * ip_forward is one setting for the whole host, shared by every Berth root, so the note that Berth
   * turned it on is host-wide too (IP_FORWARD_MARK, on tmpfs: a reboot resets both the setting and
   * the note). Whichever root removes the last Berth bridge of the host turns it back off.
   */
  private async ensureIpForward(): Promise<void> {
    if ((await host.readSysctl('net.ipv4.ip_forward')) === '1') return;
    await fsp.mkdir(path.dirname(IP_FORWARD_MARK), { recursive: true, mode: 0o700 });
    await fsp.writeFile(IP_FORWARD_MARK, `${isoTime()}\n`); // intent first
    await host.setSysctl('net.ipv4.ip_forward', '1');
    this.log.info(`net.ipv4.ip_forward was 0: set to 1 for bridge networking (noted in ${IP_FORWARD_MARK}; set back to 0 when no Berth bridge is left)`);
  }

  private async maybeRestoreIpForward(): Promise<void> {
    if (!(await fsp.access(IP_FORWARD_MARK).then(() => true, () => false))) return;
    if ((await this.state.networks()).length > 0) return;
    // another Berth root may still route through its bridges
    if ((await host.berthLinks()).some((l) => l.startsWith('berth'))) return;
    await host.setSysctl('net.ipv4.ip_forward', '0');
    await fsp.rm(IP_FORWARD_MARK, { force: true });
    this.log.info('no Berth bridge left: net.ipv4.ip_forward set back to 0');
  }

  private netnsPathFor(containerId: string): string {
    return pathUnder(this.netnsDir, containerId);
  }

  /** Containers whose files are known to be under the run root. */
  private readonly filesUnderRun = new Set<string>();
  private filesOf(containerId: string): { hosts: string; resolv: string; hostname: string } {
    let d = this.state.filesDir(containerId);
    if (!this.filesUnderRun.has(containerId)) {
      // an endpoint that an older Berth set up keeps its files where it put them until it is torn down
      const old = this.state.legacyEndpointDir(containerId);
      if (old !== d && !existsSync(pathUnder(d, 'hosts')) && existsSync(pathUnder(old, 'hosts'))) d = old;
      else {
        if (this.filesUnderRun.size >= 100_000) this.filesUnderRun.clear();
        this.filesUnderRun.add(containerId);
      }
    }
    return { hosts: pathUnder(d, 'hosts'), resolv: pathUnder(d, 'resolv.conf'), hostname: pathUnder(d, 'hostname') };
  }

  /* ------------------------------------------------------------ recovery */

  async recover(): Promise<void> {
    await this.locked(async () => undefined, true);
  }

  /**
   * Finishes or undoes what dead commands left. Cheap path (every verb): the
   * pending marks whose owner is gone, the network records (a handful) and
   * whether each bridge is there. Full scan (every record, every netns
   * against one read of mountinfo, the index rebuilt): when asked, when the
   * scanned mark is gone (a reboot cleared runRoot), when the index is
   * missing or unreadable, or when a bridge is missing (a reboot, or
   * someone deleted it).
   */
  private async recoverLocked(forceFull: boolean): Promise<Ctx> {
    let nftDirty = false;
    const touched = new Set<string>();
    let full = forceFull || !existsSync(this.scannedMark);
    for (const n of await this.state.networks()) {
      if (n.phase !== 'ready') {
        this.log.warn({ network: n.name, phase: n.phase }, 'removing a network left half done');
        await host.deleteLink(n.bridge);
        await this.state.removeNetwork(n.id);
        nftDirty = true;
      } else if (!(await host.linkExists(n.bridge))) {
        // after a reboot: the record stands, the bridge and table are gone (and so are the namespaces)
        await this.ensureIpForward();
        await host.ensureBridge(n.bridge, n.gateway, parseCidr(n.subnet)!.prefix);
        nftDirty = true;
        full = true;
      }
    }
    const index = full ? undefined : await this.state.readIndex();
    const marks = await this.state.pending();
    let ctx: Ctx;
    if (index === undefined) {
      this.state.counters.fullScans++;
      ctx = { eps: new Map((await this.state.endpoints()).map((e) => [e.containerId, e])) };
      const mounted = await host.mountPoints();
      for (const ep of [...ctx.eps.values()]) {
        if (!ctx.eps.has(ep.containerId) || (await this.ownerAlive(ep.containerId, marks.get(ep.containerId)))) continue;
        await this.recoverEndpoint(ctx, ep, touched, mounted);
      }
      // a container: sharer whose owner is gone shares nothing any more (its files went with the owner)
      for (const ep of [...ctx.eps.values()]) {
        if (ep.mode === 'container' && !ctx.eps.has(ep.sharedWith ?? '')) await this.state.removeEndpoint(ep.containerId);
      }
      for (const ep of [...ctx.eps.values()]) if (ep.mode === 'container' && !ctx.eps.has(ep.sharedWith ?? '')) ctx.eps.delete(ep.containerId);
      await this.state.writeIndex(ctx.eps);
      for (const [id, m] of marks) if (!(await this.ownerAlive(id, m))) await this.state.clearPending(id);
      for (const f of this.state.leftovers()) await fsp.rm(f, { recursive: true, force: true });
      await fsp.mkdir(path.dirname(this.scannedMark), { recursive: true, mode: 0o700 });
      await fsp.writeFile(this.scannedMark, `${isoTime()}\n`);
      nftDirty = true; // the table may be gone with a reboot
    } else {
      ctx = { eps: index };
      for (const [id, m] of marks) {
        if (await this.ownerAlive(id, m)) continue;
        const ep = await this.state.endpoint(id);
        if (ep) await this.recoverEndpoint(ctx, ep, touched);
        else ctx.eps.delete(id);
        await this.state.writeIndex(ctx.eps);
        await this.state.clearPending(id);
        nftDirty = true;
      }
    }
    if (nftDirty) await this.applyNft(ctx);
    if (touched.size > 0) await this.refreshHosts(ctx, touched);
    return ctx;
  }

  /**
   * Brings one endpoint whose owner is gone to a settled state: undone when
   * left half done (or when its namespace is gone, with `mounted` from a full
   * scan), half-done connects/disconnects undone; the index follows.
   */
  private async recoverEndpoint(ctx: Ctx, ep: EndpointRecord, touched: Set<string>, mounted?: ReadonlySet<string>): Promise<void> {
    const ownNetns = ep.mode === 'bridge' || ep.mode === 'none';
    const nsGone = mounted !== undefined && ownNetns && ep.netnsPath !== undefined && !mounted.has(ep.netnsPath);
    if (ep.phase !== 'ready' || nsGone) {
      this.log.warn({ container: ep.containerId, phase: ep.phase }, 'undoing network setup left half done (or whose namespace is gone)');
      await this.undoEndpoint(ep);
      ctx.eps.delete(ep.containerId);
      await this.dropSharers(ctx, ep.containerId);
      Object.values(ep.networks).forEach((a) => touched.add(a.networkId));
      return;
    }
    const half = Object.entries(ep.networks).filter(([, a]) => a.phase !== 'ready');
    if (half.length === 0) {
      ctx.eps.set(ep.containerId, ep);
      return;
    }
    for (const [name, a] of half) {
      this.log.warn({ container: ep.containerId, network: name }, 'undoing a connect/disconnect left half done');
      await host.deleteLink(a.hostVeth);
      touched.add(a.networkId);
    }
    const keep = Object.fromEntries(Object.entries(ep.networks).filter(([, a]) => a.phase === 'ready'));
    const fixed = { ...ep, networks: keep, networkOrder: ep.networkOrder.filter((n) => n in keep) };
    await this.state.writeEndpoint(fixed);
    ctx.eps.set(ep.containerId, fixed);
  }

  /** Forgets the container: sharers of a container that is gone (their files went with it). */
  private async dropSharers(ctx: Ctx, ownerId: string): Promise<void> {
    for (const e of [...ctx.eps.values()]) {
      if (e.mode === 'container' && e.sharedWith === ownerId) {
        await this.state.removeEndpoint(e.containerId);
        ctx.eps.delete(e.containerId);
      }
    }
  }

  /** Removes an endpoint's host objects and record; safe to repeat. The caller updates the index. */
  private async undoEndpoint(ep: EndpointRecord): Promise<void> {
    await this.undoHost(ep);
    await this.state.removeEndpoint(ep.containerId);
  }

  /**
   * Deletes an endpoint's veths and netns. Its own netns first: once no
   * process is left in it, the kernel takes the veths with it, without the
   * RCU grace period an explicit delete waits for (a wait of ~20 ms per
   * container under load); a veth still there after a short while (a
   * container: sharer still running in the namespace, or a late kernel
   * worker) is deleted. `shared`: a sharer is known to hold the namespace,
   * so no waiting for the kernel. BERTH_NET_UNDO=parallel: the explicit
   * deletes beside the umount, as before (for comparisons).
   */
  private async undoHost(ep: EndpointRecord, shared = false): Promise<void> {
    const ownNetns = (ep.mode === 'bridge' || ep.mode === 'none') && ep.netnsPath !== undefined;
    const veths = Object.values(ep.networks).map((a) => a.hostVeth);
    if (ownNetns && process.env['BERTH_NET_UNDO'] !== 'parallel') {
      await host.removeNetns(ep.netnsPath!); // a failure keeps the record: the next command finishes it
      const left = shared ? veths : await host.linksLeaveWithNetns(veths, 50);
      const failed = (await Promise.allSettled(left.map((v) => host.deleteLink(v)))).find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      return;
    }
    const steps: Promise<unknown>[] = veths.map((v) => host.deleteLink(v));
    if (ownNetns) steps.push(host.removeNetns(ep.netnsPath!));
    const failed = (await Promise.allSettled(steps)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason; // the record stays: the next command finishes it
  }

  /* ------------------------------------------------------------ networks */

  private async findNetwork(ref: string): Promise<NetworkRecord> {
    const nets = (await this.state.networks()).filter((n) => n.phase === 'ready');
    const exact = nets.find((n) => n.name === ref || n.id === ref);
    if (exact) return exact;
    const byPrefix = ref.length >= 3 ? nets.filter((n) => n.id.startsWith(ref)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) return fail(conflict('network', ref, 'the ID prefix matches several networks; give more of the ID'));
    return fail(notFound('network', ref, 'see `berth network ls`'));
  }

  private async defaultNetworkLocked(ctx: Ctx): Promise<NetworkRecord> {
    const d = (await this.state.networks()).find((n) => n.isDefault && n.phase === 'ready');
    return d ?? this.createNetworkLocked(ctx, { name: 'bridge' }, true);
  }

  private async createNetworkLocked(ctx: Ctx, spec: NetworkSpec, isDefault: boolean): Promise<NetworkRecord> {
    const problems: string[] = [];
    if (!NAME_RE.test(spec.name)) problems.push(`name: expected letters, digits, "_", "." or "-" (not first), got ${JSON.stringify(spec.name)}`);
    if (!isDefault && PREDEFINED.has(spec.name)) problems.push(`name: ${spec.name} is a predefined network`);
    if (spec.driver !== undefined && spec.driver !== 'bridge') problems.push(`driver: only "bridge" is supported, got ${JSON.stringify(spec.driver)}`);
    if (spec.gateway !== undefined && spec.subnet === undefined) problems.push('gateway: needs --subnet');
    if (spec.ipRange !== undefined && spec.subnet === undefined) problems.push('ip-range: needs --subnet');
    for (const [k, v] of Object.entries(spec.labels ?? {})) if (typeof v !== 'string' || k === '') problems.push(`labels: bad label ${JSON.stringify(k)}`);
    if (problems.length > 0) fail(invalidSpec(`network ${spec.name}`, problems));
    if (spec.ipv6) fail(unsupported('IPv6 networks (create the network without --ipv6)'));
    const nets = await this.state.networks();
    if (nets.some((n) => n.name === spec.name)) fail(alreadyExists('network', spec.name, 'choose another name or remove it first'));

    const routes = await host.hostRoutes();
    const taken = [...routes, ...nets.map((n) => parseCidr(n.subnet)!)];
    let subnet: string;
    if (spec.subnet !== undefined) {
      const s = parseCidr(spec.subnet);
      if (!s) return fail(invalidSpec(`network ${spec.name}`, [`subnet: expected an IPv4 subnet like 10.89.0.0/24 (no host bits set), got ${JSON.stringify(spec.subnet)}`]));
      const clash = taken.find((t) => overlaps(t, s));
      if (clash) return fail(conflict('network', spec.name, `subnet ${spec.subnet} overlaps ${formatCidr(clash)}, already routed on this host; choose another --subnet`));
      subnet = spec.subnet;
    } else {
      const s = isDefault
        ? firstFreeSubnet(DEFAULT_POOL, 16, taken)
        : (firstFreeSubnet(USER_POOL, 24, taken) ?? firstFreeSubnet(USER_POOL_MORE, 24, taken));
      if (!s) return fail(conflict('network', spec.name, 'no free subnet left in Berth\'s pools; give one with --subnet'));
      subnet = formatCidr(s);
    }
    const sn = parseCidr(subnet)!;
    const gateway = spec.gateway ?? formatAddress(sn.base + 1);
    checkAddressing(`network ${spec.name}`, { subnet, gateway, ipRange: spec.ipRange });

    const id = randomBytes(32).toString('hex');
    const rec: NetworkRecord = {
      id, name: spec.name, created: isoTime(), phase: 'creating',
      bridge: isDefault && this.defaultRoot ? 'berth0' : `berth-${id.slice(0, 9)}`,
      subnet, gateway, ipRange: spec.ipRange, internal: spec.internal ?? false, labels: { ...(spec.labels ?? {}) }, isDefault,
    };
    await this.state.writeNetwork(rec);
    try {
      if (!rec.internal) await this.ensureIpForward();
      await host.ensureBridge(rec.bridge, gateway, sn.prefix);
      const ready = { ...rec, phase: 'ready' as const };
      await this.state.writeNetwork(ready);
      await this.applyNft(ctx);
      this.log.debug({ network: rec.name, bridge: rec.bridge, subnet }, 'network created');
      return ready;
    } catch (e) {
      await host.deleteLink(rec.bridge).catch(() => undefined);
      await this.state.removeNetwork(rec.id);
      throw e;
    }
  }

  private info(n: NetworkRecord, eps: readonly EndpointRecord[]): NetworkInfo {
    const containers: Record<string, { name: string; ipv4Address: string }> = {};
    for (const e of eps) {
      for (const a of Object.values(e.networks)) {
        if (a.networkId === n.id && a.phase === 'ready') containers[e.containerId] = { name: e.name, ipv4Address: `${a.ipv4}/${a.prefix}` };
      }
    }
    const spec: NetworkSpec = {
      name: n.name, driver: 'bridge', subnet: n.subnet, gateway: n.gateway, internal: n.internal, ipv6: false, labels: n.labels,
      ...(n.ipRange !== undefined ? { ipRange: n.ipRange } : {}),
    };
    return { id: n.id, name: n.name, created: n.created, spec, bridge: n.bridge, containers };
  }

  private pseudo(name: 'host' | 'none', eps: readonly EndpointRecord[]): NetworkInfo {
    const containers: Record<string, { name: string; ipv4Address: string }> = {};
    for (const e of eps) if (e.mode === name && e.phase === 'ready') containers[e.containerId] = { name: e.name, ipv4Address: '' };
    return { id: sha(`berth-network-${name}`), name, created: '1970-01-01T00:00:00.000Z', spec: { name, labels: {} }, bridge: '', containers };
  }

  async createNetwork(spec: NetworkSpec): Promise<NetworkInfo> {
    return this.locked(async (ctx) => this.info(await this.createNetworkLocked(ctx, spec, false), []));
  }

  async listNetworks(): Promise<NetworkInfo[]> {
    return this.locked(async (ctx) => {
      const eps = [...ctx.eps.values()];
      const nets = (await this.state.networks()).filter((n) => n.phase === 'ready').map((n) => this.info(n, eps));
      return [...nets, this.pseudo('host', eps), this.pseudo('none', eps)];
    });
  }

  async inspectNetwork(ref: string): Promise<NetworkInfo> {
    return this.locked(async (ctx) => {
      const eps = [...ctx.eps.values()];
      if (ref === 'host' || ref === 'none') return this.pseudo(ref, eps);
      if (ref === 'bridge') return this.info(await this.defaultNetworkLocked(ctx), eps);
      return this.info(await this.findNetwork(ref), eps);
    });
  }

  private async removeNetworkLocked(ctx: Ctx, n: NetworkRecord): Promise<void> {
    const users = [...ctx.eps.values()].filter((e) => Object.values(e.networks).some((a) => a.networkId === n.id));
    if (users.length > 0)
      fail(conflict('network', n.name, `in use by ${users.map((u) => u.name).join(', ')}; disconnect or remove those containers first`));
    await this.state.writeNetwork({ ...n, phase: 'removing' });
    await this.applyNft(ctx).catch(() => undefined); // rebuilt without it below either way
    await host.deleteLink(n.bridge);
    await this.state.removeNetwork(n.id);
    await this.applyNft(ctx);
    await this.maybeRestoreIpForward();
  }

  async removeNetwork(ref: string): Promise<void> {
    await this.locked(async (ctx) => {
      if (PREDEFINED.has(ref)) fail(conflict('network', ref, 'a predefined network cannot be removed'));
      const n = await this.findNetwork(ref);
      if (n.isDefault) fail(conflict('network', ref, 'the default network cannot be removed'));
      await this.removeNetworkLocked(ctx, n);
    });
  }

  async pruneNetworks(): Promise<{ deleted: string[] }> {
    // prune is where a full scan of the records (every netns checked) is asked for
    return this.locked(async (ctx) => {
      const eps = [...ctx.eps.values()];
      const used = new Set(eps.flatMap((e) => Object.values(e.networks).map((a) => a.networkId)));
      const deleted: string[] = [];
      for (const n of await this.state.networks()) {
        if (n.isDefault || used.has(n.id) || n.phase !== 'ready') continue;
        await this.removeNetworkLocked(ctx, n);
        deleted.push(n.name);
      }
      return { deleted };
    }, true);
  }

  private async resolveContainer(ref: string): Promise<string> {
    if (this.opts.resolveContainer) return this.opts.resolveContainer(ref);
    const eps = [...((await this.state.readIndex())?.values() ?? (await this.state.endpoints()))];
    const name = ref.replace(/^\//, '');
    const hit = eps.find((e) => e.containerId === ref || e.name === name) ?? (ref.length >= 3 ? eps.filter((e) => e.containerId.startsWith(ref)) : []).at(0);
    if (!hit) return fail(notFound('container', ref, 'no container of that name or ID has a network set up (is it running?)'));
    return hit.containerId;
  }

  async connectNetwork(network: string, container: string, attachment: NetworkAttachment = {}): Promise<void> {
    await this.connect(await this.resolveContainer(container), network, attachment);
  }

  async disconnectNetwork(network: string, container: string, _opts?: { force?: boolean }): Promise<void> {
    await this.disconnect(await this.resolveContainer(container), network);
  }

  /* ---------------------------------------------------------- containers */

  private inUse(eps: readonly EndpointRecord[], networkId: string, except?: string): Set<string> {
    const s = new Set<string>();
    for (const e of eps) {
      if (e.containerId === except) continue;
      for (const a of Object.values(e.networks)) if (a.networkId === networkId) s.add(a.ipv4);
    }
    return s;
  }

  private vethName(containerId: string, networkId: string): string {
    return `bth${sha(`${containerId}/${networkId}`).slice(0, 12)}`;
  }

  private attachmentFor(
    containerId: string, net: NetworkRecord, att: NetworkAttachment, eps: readonly EndpointRecord[], ifname: string,
  ): Attachment {
    if ((att.aliases?.length ?? 0) > 0 && net.isDefault)
      fail(invalidSpec(`network ${net.name}`, ['aliases: network-scoped aliases work on user-defined networks only']));
    const used = this.inUse(eps, net.id, containerId);
    const ipv4 = att.ipv4Address !== undefined ? checkFixed(net, att.ipv4Address, used, net.name) : allocate(net, used, net.name);
    return {
      networkId: net.id, phase: 'creating', ipv4, prefix: parseCidr(net.subnet)!.prefix, gateway: net.gateway, mac: macFor(ipv4),
      aliases: [...(att.aliases ?? [])], hostVeth: this.vethName(containerId, net.id), ifname, fixed: att.ipv4Address !== undefined,
    };
  }

  private result(ep: EndpointRecord, nets: readonly NetworkRecord[], shareFiles?: string): NetworkSetupResult {
    const f = this.filesOf(shareFiles ?? ep.containerId);
    const networks: Record<string, ContainerNetworkInfo> = {};
    for (const name of ep.networkOrder) {
      const a = ep.networks[name]!;
      networks[name] = this.netInfo(a, nets);
    }
    const ports: PortSpec[] = ep.ports.map((p) => ({ containerPort: p.containerPort, protocol: p.protocol, hostPort: p.hostPort, hostIp: p.hostIp }));
    return {
      ...(ep.netnsPath !== undefined ? { netnsPath: ep.netnsPath } : {}),
      hostsFile: f.hosts, resolvConf: f.resolv, hostnameFile: f.hostname, networks, ports,
    };
  }

  private netInfo(a: Attachment, nets: readonly NetworkRecord[]): ContainerNetworkInfo {
    const n = nets.find((x) => x.id === a.networkId);
    return {
      networkId: a.networkId, ipv4Address: `${a.ipv4}/${a.prefix}`, macAddress: a.mac, aliases: a.aliases,
      ...(n && !n.internal ? { gateway: a.gateway } : {}),
    };
  }

  async endpointInfo(containerId: string): Promise<NetworkSetupResult | undefined> {
    const ep = await this.state.endpoint(containerId);
    if (!ep || ep.phase !== 'ready') return undefined;
    return this.result(ep, await this.state.networks(), ep.mode === 'container' ? ep.sharedWith : undefined);
  }

  /**
   * Three steps: under the lock, the checks, the addresses and ports and the
   * intent record (with a pending mark); without it, the netns, veths and
   * files; under the lock again, the record marked ready, the nft table and
   * the hosts files of the network's members.
   */
  async setup(req: NetworkSetupRequest, opts: NetworkSetupOptions = {}): Promise<NetworkSetupResult> {
    const plan = await this.grouped(async (ctx) => {
      const existing = ctx.eps.get(req.containerId);
      if (existing?.phase === 'ready') {
        return { done: this.result(existing, await this.state.networks(), existing.mode === 'container' ? existing.sharedWith : undefined) };
      }
      if (existing) return fail(conflict('container', existing.name, 'its network setup or teardown is under way in another command'));
      return this.planSetup(ctx, req);
    });
    trace('net: planned');
    if ('done' in plan) return plan.done;
    const { ep, joins } = plan;
    const id = ep.containerId;
    const f = this.filesOf(id);
    try {
      const veths = joins.map(([name, n]) => {
        const a = ep.networks[name]!;
        return {
          hostVeth: a.hostVeth, bridge: n.bridge, ifname: a.ifname, mac: a.mac, cidr: `${a.ipv4}/${a.prefix}`,
          gateway: name === ep.networkOrder[0] && !n.internal ? n.gateway : undefined,
        };
      });
      const etc = (async () => {
        const resolv = files.containerResolvConf(await files.readHostResolvConf());
        // written again by every setup (a start): no fsync, no thread pool
        await files.writeInPlaceNow(f.resolv, resolv.text);
        await files.writeInPlaceNow(f.hostname, `${req.hostname}\n`);
        // the hosts file's content comes with the commit below; it must exist before then for a namespaceReady caller
        if (opts.namespaceReady) await files.createIfMissing(f.hosts);
      })();
      // the links and the files do not depend on each other: in parallel, outside the lock
      let links: Promise<void>;
      if (opts.namespaceReady) {
        // the namespace first, alone (one more helper request), so that the caller can create its container in it
        // while the veths are made
        const ns = host.plugVeths(ep.netnsPath!, [], true);
        const failedEarly = (await Promise.allSettled([ns, etc])).find((r) => r.status === 'rejected');
        if (failedEarly) throw (failedEarly as PromiseRejectedResult).reason;
        opts.namespaceReady({ netnsPath: ep.netnsPath!, hostsFile: f.hosts, resolvConf: f.resolv, hostnameFile: f.hostname });
        trace('net: namespace and files');
        links = host.plugVeths(ep.netnsPath!, veths, false);
      } else {
        links = host.plugVeths(ep.netnsPath!, veths, true);
      }
      const failed = (await Promise.allSettled([links, etc])).find((r) => r.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      trace('net: links and files');
      // the table (rebuilt from the index, where the intent record already is), the record, the hosts files
      const readyNets = Object.fromEntries(Object.entries(ep.networks).map(([k, a]) => [k, { ...a, phase: 'ready' as const }]));
      const ready: EndpointRecord = { ...ep, phase: 'ready', networks: readyNets };
      await this.commit({
        nft: false, // the table has its ports since the first half (see grouped)
        networks: [], joined: id, endId: id,
        after: async (ctx) => {
          if (ctx.eps.get(id)?.phase !== 'creating') fail(conflict('container', ep.name, 'its network was removed while it was being set up'));
          await this.put(ctx, ready, false);
        },
      });
      trace('net: ready');
      this.log.debug({ container: id, networks: Object.keys(ready.networks), ports: ready.ports }, 'network set up');
      return this.result(ready, await this.state.networks());
    } catch (e) {
      this.log.warn({ container: id, err: (e as Error).message }, 'network setup failed: undoing it');
      try {
        await this.undoHost(ep);
        await this.locked(async (ctx) => {
          await this.drop(ctx, id);
          if (ep.ports.length > 0) await this.applyNft(ctx);
          await this.end(id);
        });
      } catch (u) {
        this.inFlight.delete(id); // its pending mark is now a dead owner's: the next command undoes it
        this.log.error({ err: (u as Error).message }, 'undo failed; the next berth command retries');
      }
      throw e;
    }
  }

  /**
   * Setup's first, locked step: checks, then either the whole setup (host,
   * container: modes: files and records only) or the intent of an own
   * namespace's (addresses, veth names and ports reserved in the record).
   */
  private async planSetup(
    ctx: Ctx, req: NetworkSetupRequest,
  ): Promise<{ done: NetworkSetupResult } | { ep: EndpointRecord; joins: [string, NetworkRecord][] }> {
    const id = req.containerId;
    if (!/^[a-zA-Z0-9_.-]+$/.test(id)) fail(invalidSpec('container id', [`expected [a-zA-Z0-9_.-], got ${JSON.stringify(id)}`]));
    const mode = req.networkMode || 'bridge';
    const eps = [...ctx.eps.values()];
    const base = {
      containerId: id, name: req.name.replace(/^\//, ''), hostname: req.hostname, domainname: req.domainname,
      extraHosts: [...(req.extraHosts ?? [])], sharedWith: undefined, networks: {}, networkOrder: [], ports: [],
    };
    const requested: PublishSpec[] = [...req.ports];
    if (req.publishAll) {
      for (const p of exposedToPorts(req.exposedPorts)) {
        if (!requested.some((r) => r.containerPort === p.containerPort && r.protocol === p.protocol)) requested.push(p);
      }
    }

    if (mode.startsWith('container:')) {
      const target = mode.slice('container:'.length);
      const t = ctx.eps.get(target);
      if (!t || t.phase !== 'ready') return fail(notFound('container', target, 'the container whose network is shared must be running'));
      if (requested.length > 0) fail(invalidSpec(`container ${base.name}`, ['ports: a container sharing another\'s network (container:) cannot publish ports; publish them on that container']));
      const owner = t.mode === 'container' ? t.sharedWith! : t.containerId;
      const ep: EndpointRecord = { ...base, phase: 'ready', mode: 'container', netnsPath: t.netnsPath, sharedWith: owner };
      await this.put(ctx, ep);
      return { done: this.result(ep, await this.state.networks(), owner) };
    }

    const f = this.filesOf(id);
    if (mode === 'host') {
      const ep: EndpointRecord = { ...base, phase: 'creating', mode: 'host', netnsPath: undefined };
      await this.begin(id);
      await this.put(ctx, ep);
      let hostsText = '';
      try {
        hostsText = await fsp.readFile('/etc/hosts', 'utf8');
      } catch {
        hostsText = files.hostsFile([], [], []);
      }
      const extra = ep.extraHosts.map((h) => `${h.slice(h.indexOf(':') + 1)}\t${h.slice(0, h.indexOf(':'))}`);
      await files.writeInPlace(f.hosts, hostsText + (extra.length ? extra.join('\n') + '\n' : ''));
      await files.writeInPlace(f.resolv, await fsp.readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
      await files.writeInPlace(f.hostname, `${req.hostname}\n`);
      const ready = { ...ep, phase: 'ready' as const };
      await this.put(ctx, ready);
      await this.end(id, ctx);
      return { done: this.result(ready, []) };
    }

    // an own namespace: none, bridge, or named networks. Host ports first: a taken port changes nothing,
    // not even the default network's first creation.
    if (mode === 'none' && requested.length > 0) fail(invalidSpec(`container ${base.name}`, ['ports: a container with network "none" cannot publish ports']));
    const ports = await resolvePorts(requested, eps.flatMap((e) => e.ports), base.name);
    const joins: [string, NetworkRecord, NetworkAttachment][] = [];
    if (mode !== 'none') {
      const primary = mode === 'bridge' || mode === 'default' ? await this.defaultNetworkLocked(ctx) : await this.findNetwork(mode);
      const primaryKey = primary.isDefault ? 'bridge' : primary.name;
      joins.push([primaryKey, primary, req.networks[mode] ?? req.networks[primaryKey] ?? {}]);
      for (const [name, att] of Object.entries(req.networks)) {
        if (name === mode || name === primaryKey) continue;
        const n = name === 'bridge' ? await this.defaultNetworkLocked(ctx) : await this.findNetwork(name);
        if (!joins.some(([, j]) => j.id === n.id)) joins.push([n.isDefault ? 'bridge' : n.name, n, att]);
      }
    } else if (Object.keys(req.networks).length > 0) {
      fail(invalidSpec(`container ${base.name}`, ['networks: a container with network "none" joins no network']));
    }
    if (joins[0] && joins[0][1].internal && requested.length > 0)
      fail(invalidSpec(`container ${base.name}`, [`ports: network ${joins[0][1].name} is internal: nothing can be published from it`]));

    const networks: Record<string, Attachment> = {};
    joins.forEach(([name, n, att], i) => {
      networks[name] = this.attachmentFor(id, n, att, eps, `eth${i}`);
    });
    const ep: EndpointRecord = {
      ...base, phase: 'creating', mode: mode === 'none' ? 'none' : 'bridge', netnsPath: this.netnsPathFor(id), networks, networkOrder: joins.map(([k]) => k), ports,
    };
    await this.begin(id);
    await this.put(ctx, ep); // intent: addresses, veths, ports are now reserved
    if (ports.length > 0) (ctx.addDnats ??= []).push(...dnatsOf([ep]));
    return { ep, joins: joins.map(([k, n]) => [k, n]) };
  }

  /** Rewrites the hosts files of containers on the given networks (and of `also`), unsynced (they are rebuilt from the records). */
  /**
   * `networkIds`: every member's file rewritten (someone left or changed);
   * `also`: these containers' own files rewritten; `joined`: newcomers, whose
   * own files are written whole and whose lines are appended to their
   * peers' files (O(1) bytes per member instead of a whole new file each).
   */
  private async refreshHosts(
    ctx: Ctx, networkIds: ReadonlySet<string>, also: ReadonlySet<string> = new Set(), joined: ReadonlySet<string> = new Set(),
  ): Promise<void> {
    const eps = [...ctx.eps.values()].filter((e) => e.phase === 'ready');
    const nets = await this.state.networks();
    const userNet = new Set(nets.filter((n) => !n.isDefault).map((n) => n.id));
    // members by network, once: the files are O(members) each, not a scan of every endpoint per member
    const members = new Map<string, { e: EndpointRecord; a: Attachment }[]>();
    for (const e of eps) {
      for (const a of Object.values(e.networks)) {
        if (a.phase !== 'ready' || !userNet.has(a.networkId)) continue;
        const l = members.get(a.networkId) ?? [];
        l.push({ e, a });
        members.set(a.networkId, l);
      }
    }
    // each member's line once per network (a member is listed in every peer's file: O(members) lines built, not O(members^2))
    const lines = new Map<Attachment, string>();
    const lineOf = (o: EndpointRecord, oa: Attachment): string => {
      let l = lines.get(oa);
      if (l === undefined) {
        l = files.hostsLine({ ip: oa.ipv4, names: [...new Set([o.name, ...oa.aliases, o.hostname, o.containerId.slice(0, 12)].filter((x) => x !== ''))] });
        lines.set(oa, l);
      }
      return l;
    };
    const writes: Promise<void>[] = [];
    const whole = new Set<string>();
    for (const e of eps) {
      if (e.mode !== 'bridge' && e.mode !== 'none') continue;
      const mine = Object.values(e.networks).filter((a) => a.phase === 'ready');
      // only a user network's members list each other: on the default network only `also`'s own file changes
      if (!also.has(e.containerId) && !joined.has(e.containerId) && !mine.some((a) => networkIds.has(a.networkId) && userNet.has(a.networkId))) continue;
      whole.add(e.containerId);
      const names = [e.domainname ? `${e.hostname}.${e.domainname}` : '', e.hostname].filter((x) => x !== '');
      const primary = e.networkOrder.map((k) => e.networks[k]).find((a) => a?.phase === 'ready');
      const own = primary ? [{ ip: primary.ipv4, names }] : [];
      const peers: string[] = [];
      const userMine = mine.filter((a) => userNet.has(a.networkId)); // the default network has no name resolution (as Docker)
      // addresses are unique within a network: duplicates can only come from a second network
      const seen = userMine.length > 1 ? new Set<string>() : undefined;
      for (const a of userMine) {
        for (const { e: o, a: oa } of members.get(a.networkId) ?? []) {
          if (o.containerId === e.containerId) continue;
          if (seen) {
            if (seen.has(oa.ipv4)) continue;
            seen.add(oa.ipv4);
          }
          peers.push(lineOf(o, oa));
        }
        // own aliases resolve to oneself too
        if (a.aliases.length > 0) own.push({ ip: a.ipv4, names: [...a.aliases] });
      }
      writes.push(files.writeInPlaceNow(this.filesOf(e.containerId).hosts, files.hostsFileOfLines(own, peers, e.extraHosts)));
    }
    // the newcomers' peers: one line per newcomer appended (the first user network they share decides the address)
    const appends = new Map<string, string[]>();
    for (const j of joined) {
      const je = ctx.eps.get(j);
      if (!je || je.phase !== 'ready') continue;
      for (const ja of Object.values(je.networks)) {
        if (ja.phase !== 'ready' || !userNet.has(ja.networkId)) continue;
        for (const { e } of members.get(ja.networkId) ?? []) {
          if (e.containerId === j || whole.has(e.containerId) || (e.mode !== 'bridge' && e.mode !== 'none')) continue;
          const first = Object.values(e.networks).find((a) => a.phase === 'ready' && userNet.has(a.networkId) && Object.values(je.networks).some((x) => x.networkId === a.networkId && x.phase === 'ready'));
          if (first?.networkId !== ja.networkId) continue; // listed under another shared network
          const l = appends.get(e.containerId) ?? [];
          l.push(lineOf(je, ja));
          appends.set(e.containerId, l);
        }
      }
    }
    for (const [id, lines] of appends) writes.push(files.appendNow(this.filesOf(id).hosts, lines.join('\n') + '\n'));
    const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * Under the lock: the record marked removing, its ports out of the table,
   * its name out of its peers' hosts files; without it: the veths and netns
   * deleted; under the lock again: the record and its addresses released.
   */
  async teardown(containerId: string): Promise<void> {
    // nothing recorded: nothing to undo, and no lock to wait for (the runtime calls this on every stop)
    const rec = await this.state.endpoint(containerId).catch(() => 'unreadable' as const);
    if (rec === undefined) return;
    let ep: EndpointRecord | undefined;
    let undone: Promise<unknown> | undefined;
    const hinted = typeof rec === 'object' ? rec : undefined;
    const dropDnats: Dnat[] = [];
    const first = this.commit({
      // the record read above tells which networks are involved; a stale one costs one more pass
      nft: hinted === undefined, dropDnats,
      networks: hinted ? Object.values(hinted.networks).map((a) => a.networkId) : [],
      before: async (ctx) => {
        const cur = ctx.eps.get(containerId);
        if (!cur) return;
        if (this.inFlight.has(containerId)) fail(conflict('container', cur.name, 'its network setup or teardown is under way'));
        // another command's setup or teardown of it, still at work outside the lock
        if (cur.phase !== 'ready' && (await this.ownerAlive(containerId, (await this.state.pendingMark(containerId)) ?? undefined)))
          fail(conflict('container', cur.name, 'its network setup or teardown is under way in another command'));
        await this.begin(containerId);
        const internal = new Set((await this.state.networks()).filter((n) => n.internal).map((n) => n.id));
        const primary = cur.networkOrder[0] === undefined ? undefined : cur.networks[cur.networkOrder[0]];
        if (primary && !internal.has(primary.networkId)) dropDnats.push(...dnatsOf([cur]));
        await this.put(ctx, { ...cur, phase: 'removing' }, false);
        // the intent is on disk: the host work starts now, alongside the rest of the commit (table, hosts files)
        const shared = [...ctx.eps.values()].some((e) => e.mode === 'container' && e.sharedWith === containerId);
        undone = this.undoHost(cur, shared).then(() => undefined, (e: unknown) => e as object);
        await this.dropSharers(ctx, containerId);
        ep = cur;
      },
    });
    try {
      await first;
    } catch (e) {
      await undone;
      this.inFlight.delete(containerId); // the next command finishes it
      throw e;
    }
    if (!ep) return;
    const gone = ep;
    if (hinted === undefined || !sameNetworks(hinted, gone)) {
      // the networks or ports changed since the record was read: one more pass with the right ones
      await this.commit({ nft: gone.ports.length > 0, networks: Object.values(gone.networks).map((a) => a.networkId) });
    }
    const err = await undone;
    if (err !== undefined) {
      this.inFlight.delete(containerId); // the next command finishes it
      throw err;
    }
    await this.commit({
      nft: false, networks: [], endId: containerId,
      before: async (ctx) => {
        await this.state.removeEndpoint(containerId);
        ctx.eps.delete(containerId);
      },
    });
  }

  async connect(containerId: string, network: string, attachment: NetworkAttachment): Promise<ContainerNetworkInfo> {
    return this.locked(async (ctx) => {
      const ep = ctx.eps.get(containerId);
      if (!ep || ep.phase !== 'ready') return fail(notFound('container', containerId, 'it has no network set up: is it running?'));
      if (ep.mode !== 'bridge')
        return fail(conflict('container', ep.name, `its network mode is ${ep.mode}${ep.mode === 'container' ? ` (shares ${ep.sharedWith})` : ''}: it cannot join networks`));
      const n = network === 'bridge' ? await this.defaultNetworkLocked(ctx) : await this.findNetwork(network);
      const key = n.isDefault ? 'bridge' : n.name;
      if (Object.values(ep.networks).some((a) => a.networkId === n.id)) return fail(conflict('container', ep.name, `already connected to network ${n.name}`));
      const usedIf = new Set(Object.values(ep.networks).map((a) => a.ifname));
      let i = 0;
      while (usedIf.has(`eth${i}`)) i++;
      const a = this.attachmentFor(containerId, n, attachment, [...ctx.eps.values()], `eth${i}`);
      const wasEmpty = ep.networkOrder.length === 0;
      const intent: EndpointRecord = { ...ep, networks: { ...ep.networks, [key]: a }, networkOrder: [...ep.networkOrder, key] };
      await this.begin(containerId);
      await this.put(ctx, intent);
      try {
        await host.plugVeths(ep.netnsPath!, [{
          hostVeth: a.hostVeth, bridge: n.bridge, ifname: a.ifname, mac: a.mac, cidr: `${a.ipv4}/${a.prefix}`,
          gateway: wasEmpty && !n.internal ? n.gateway : undefined,
        }], false);
      } catch (e) {
        await host.deleteLink(a.hostVeth).catch(() => undefined);
        await this.put(ctx, ep);
        await this.end(containerId);
        throw e;
      }
      const ready = { ...a, phase: 'ready' as const };
      await this.put(ctx, { ...intent, networks: { ...intent.networks, [key]: ready } });
      if (wasEmpty && ep.ports.length > 0) await this.applyNft(ctx);
      await this.refreshHosts(ctx, new Set([n.id]), new Set([containerId]));
      await this.end(containerId);
      return this.netInfo(ready, await this.state.networks());
    });
  }

  async disconnect(containerId: string, network: string): Promise<void> {
    await this.locked(async (ctx) => {
      const ep = ctx.eps.get(containerId);
      if (!ep || ep.phase !== 'ready') return fail(notFound('container', containerId, 'it has no network set up: is it running?'));
      const n = network === 'bridge' ? (await this.state.networks()).find((x) => x.isDefault) : await this.findNetwork(network);
      const entry = n ? Object.entries(ep.networks).find(([, a]) => a.networkId === n.id) : undefined;
      if (!n || !entry) return fail(conflict('container', ep.name, `is not connected to network ${network}`));
      const [key, a] = entry;
      await this.begin(containerId);
      await this.put(ctx, { ...ep, networks: { ...ep.networks, [key]: { ...a, phase: 'removing' } } });
      await host.deleteLink(a.hostVeth);
      const rest = Object.fromEntries(Object.entries(ep.networks).filter(([k]) => k !== key));
      await this.put(ctx, { ...ep, networks: rest, networkOrder: ep.networkOrder.filter((k) => k !== key) });
      if (ep.ports.length > 0) await this.applyNft(ctx);
      await this.refreshHosts(ctx, new Set([n.id]), new Set([containerId]));
      await this.end(containerId);
    });
  }

  async purge(): Promise<void> {
    await this.state.init();
    await withFlock(this.state.lockFile, async () => {
      this.state.migrate();
      // keep going past a failure, so that one stuck object does not leave all the others behind
      const errors: unknown[] = [];
      const attempt = async (f: () => Promise<unknown>): Promise<void> => {
        try {
          await f();
        } catch (e) {
          errors.push(e);
        }
      };
      for (const ep of await this.state.endpoints()) await attempt(() => this.undoEndpoint(ep));
      for (const n of await this.state.networks()) {
        await attempt(async () => {
          await host.deleteLink(n.bridge);
          await this.state.removeNetwork(n.id);
        });
      }
      await attempt(() => deleteTable(this.table));
      await attempt(() => this.maybeRestoreIpForward());
      await attempt(() => fsp.rm(this.netnsDir, { recursive: true, force: true }));
      await attempt(() => this.state.removeIndex());
      await attempt(() => fsp.rm(this.state.pendingDir, { recursive: true, force: true }));
      for (const f of this.state.leftovers()) await attempt(() => fsp.rm(f, { recursive: true, force: true }));
      this.state.forgetInit();
      await attempt(() => fsp.rm(this.scannedMark, { force: true }));
      if (errors.length > 0) throw errors[0];
    });
  }
}

