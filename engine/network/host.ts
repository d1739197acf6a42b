/**
 * The host objects Berth creates: bridges, veth pairs, persistent network
 * namespaces (an nsfs bind mount on a file under <runRoot>/netns) and
 * per-bridge sysctls. Through the engine's helper (rtnetlink in
 * native/shim/netlink.c, no program per step) when it is there, else
 * through iproute2 and util-linux (BERTH_HELPER=0, or a berth-shim that
 * predates the network requests). Every function here acts only on objects
 * named by the caller, which are Berth's (berth*, bth*).
 */
import { accessSync, existsSync, promises as fsp, readFileSync, rmSync, statfsSync } from 'node:fs';
import * as path from 'node:path';
import { EngineFailure } from '../errors.js';
import { HelperSyscallError, helperDeleteLink, helperEnsureBridge, helperPlugVeths, helperUmount } from '../runtime/helper.js';
import { run, runRaw } from './exec.js';
import { parseCidr, type Subnet } from './ipam.js';

/**
 * Whether the calling process's network namespace has the link, with no process
 * spawned (this is on every command's path). /proc/sys/net answers for the
 * namespace of the process that looks; /sys/class/net answers for the one sysfs
 * was mounted in, which is the host's when Berth runs under `nsenter --net`.
 */
export const linkExists = async (name: string): Promise<boolean> => linkExistsNow(name);

const linkExistsNow = (name: string): boolean => {
  if (name === '' || name === '.' || name === '..' || name.includes('/')) return false;
  try {
    accessSync(`/proc/sys/net/ipv4/conf/${name}`);
    return true;
  } catch {
    return false;
  }
};

/**
 * Waits up to `ms` for links to leave this namespace without a request of
 * ours: the host ends of veths whose netns was just unmounted, with no
 * process left in it, go when the kernel's netns cleanup runs (a worker,
 * soon after the last reference goes; the link is out of /proc/sys before
 * the cleanup's RCU grace periods, which nobody waits for), where an
 * explicit delete answers only after its grace period (4-65 ms here).
 * Returns the links still there (the caller deletes them: the netns is
 * still held somewhere, or the worker is late).
 */
export const linksLeaveWithNetns = async (names: readonly string[], ms: number): Promise<string[]> => {
  // Date, not performance.now(): loading perf_hooks costs a run --rm ~3 ms of compiling
  const deadline = Date.now() + ms;
  let left = names.filter(linkExistsNow);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1));
    left = left.filter(linkExistsNow);
  }
  return left;
};

/** A failure of the helper's netlink request as a Kernel error naming the object; anything else as it is. */
const netlinkFailure = (e: unknown, what: string): unknown =>
  e instanceof HelperSyscallError
    ? new EngineFailure({ _tag: 'Kernel', syscall: 'netlink', errno: e.code, path: what, message: e.message }, { cause: e })
    : e;

/** Deletes a link if it is there (deleting one end of a veth pair removes both). */
export const deleteLink = async (name: string): Promise<void> => {
  if (!/^(berth|bth)/.test(name)) throw new Error(`refusing to delete link ${name}: not a Berth link`);
  if (!(await linkExists(name))) return;
  try {
    if (await helperDeleteLink(name)) return;
  } catch (e) {
    // gone meanwhile (its netns went, or another command deleted it): done
    if (e instanceof HelperSyscallError && e.code === 'ENODEV') return;
    if (await linkExists(name)) throw netlinkFailure(e, `link ${name}`);
    return;
  }
  const r = await runRaw(['ip', 'link', 'del', 'dev', name]);
  if (r.code !== 0 && (await linkExists(name))) await run(['ip', 'link', 'del', 'dev', name]);
};

const writeSysctl = async (key: string, value: string): Promise<void> => {
  await fsp.writeFile(path.join('/proc/sys', key.replaceAll('.', '/')), value);
};
export const readSysctl = async (key: string): Promise<string> =>
  readFileSync(path.join('/proc/sys', key.replaceAll('.', '/')), 'utf8').trim();
export const setSysctl = writeSysctl;

/** Creates (or completes) a bridge with its gateway address, up, answering 127.0.0.1 DNAT (route_localnet). */
export const ensureBridge = async (name: string, gateway: string, prefix: number): Promise<void> => {
  let done = false;
  try {
    done = await helperEnsureBridge(name, gateway, prefix);
  } catch (e) {
    throw netlinkFailure(e, `bridge ${name}`);
  }
  if (done) {
    await writeSysctl(`net.ipv4.conf.${name}.route_localnet`, '1');
    return;
  }
  if (!(await linkExists(name))) {
    const r = await runRaw(['ip', 'link', 'add', 'name', name, 'type', 'bridge']);
    if (r.code !== 0 && !(await linkExists(name))) await run(['ip', 'link', 'add', 'name', name, 'type', 'bridge']);
  }
  await run(['ip', '-batch', '-'], [`addr replace ${gateway}/${prefix} dev ${name}`, `link set dev ${name} up`].join('\n') + '\n', `bridge ${name}`);
  await writeSysctl(`net.ipv4.conf.${name}.route_localnet`, '1');
};

/** Subnets the host already routes (main table), so a new network clashes with none of them. */
export const hostRoutes = async (): Promise<Subnet[]> => {
  const out = await run(['ip', '-j', '-4', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(out) as { dst?: string; type?: string }[];
  const subnets: Subnet[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || (r.type !== undefined && r.type !== 'unicast')) continue;
    const s = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`, false);
    if (s && s.prefix > 0) subnets.push(s);
  }
  return subnets;
};

/** Berth's links present on the host (for checks and tests). */
export const berthLinks = async (): Promise<string[]> => {
  const links = JSON.parse(await run(['ip', '-j', 'link', 'show'])) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => /^(berth|bth)/.test(n));
};

/** nsfs's statfs type: a network namespace bound on a file (include/uapi/linux/magic.h). */
const NSFS_MAGIC = 0x6e736673;

/**
 * Whether a namespace is bound on the netns file `p`: its statfs type is
 * nsfs (one syscall; mountinfo grows with every container's mounts, and
 * was read on every setup and teardown).
 */
const isMounted = async (p: string): Promise<boolean> => {
  try {
    return statfsSync(p).type === NSFS_MAGIC;
  } catch {
    return false; // no such file: nothing bound
  }
};

export const netnsAlive = isMounted;

/** Every mount point of our mount namespace, from one read of mountinfo (the full scan checks every netns against it). */
export const mountPoints = async (): Promise<Set<string>> =>
  new Set(readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined));

export const removeNetns = async (file: string): Promise<void> => {
  if (await isMounted(file)) {
    // umount2(2) through the engine's helper; umount(8) without it, or when that failed
    if (await helperUmount(file, false).catch(() => false)) {
      rmSync(file, { force: true });
      return;
    }
    const r = await runRaw(['umount', file]);
    if (r.code !== 0 && (await isMounted(file))) await run(['umount', '--lazy', file]);
  }
  // sync: fs.promises.rm loads Node's rimraf module and takes a thread-pool round trip, for one file
  rmSync(file, { force: true });
};

/** Runs an `ip -batch` script inside the namespace at `file`. */
export const ipInNetns = async (file: string, script: string): Promise<void> => {
  await run(['nsenter', `--net=${file}`, 'ip', '-batch', '-'], script, `netns ${file}`);
};

export interface VethPlan {
  readonly hostVeth: string;
  readonly bridge: string;
  readonly ifname: string;
  readonly mac: string;
  readonly cidr: string; // "10.88.0.2/16"
  readonly gateway?: string | undefined; // absent: no default route (internal network or not the primary)
}

/**
 * Veth pairs from bridges into the namespace at `netns`, addressed and up.
 * Through the helper: one request, rtnetlink in a child of it (netns made
 * when `create` and not there yet, pairs made from our side with the inner
 * end sent into it, inner ends configured from a socket opened inside).
 * Without it, in two processes: `ip -batch` inside the namespace (made here
 * when `create`, by unshare) makes each pair with its host end placed in
 * our own namespace (/proc/<pid>/ns/net) and configures the inner end; a
 * second `ip -batch` on the host puts the host ends on their bridges. Either
 * way IPv6 stays off the pairs (Berth's networks are IPv4).
 */
export const plugVeths = async (netns: string, veths: readonly VethPlan[], create: boolean): Promise<void> => {
  await Promise.all(veths.map((v) => deleteLink(v.hostVeth))); // a leftover of an earlier try
  if (create) await fsp.mkdir(path.dirname(netns), { recursive: true, mode: 0o700 });
  const fresh = create && !(await isMounted(netns));
  if (!fresh && veths.length === 0) return; // a netns already there has its lo up
  try {
    if (await helperPlugVeths(netns, fresh, veths)) return;
  } catch (e) {
    throw netlinkFailure(e, `netns ${netns}`);
  }
  const inside: string[] = create ? ['link set dev lo up'] : [];
  // IPv4 networks: no IPv6 address on either end, as the helper does (no messages for the bridge to flood)
  const noIpv6 = (dev: string): string[] => (existsSync('/proc/sys/net/ipv6') ? [`link set dev ${dev} addrgenmode none`] : []);
  for (const v of veths) {
    inside.push(
      `link add name ${v.ifname} address ${v.mac} type veth peer name ${v.hostVeth} netns /proc/${process.pid}/ns/net`,
      `addr add ${v.cidr} dev ${v.ifname}`,
      ...noIpv6(v.ifname),
      `link set dev ${v.ifname} up`,
    );
    if (v.gateway !== undefined) inside.push(`route replace default via ${v.gateway} dev ${v.ifname}`);
  }
  if (create) {
    if (fresh) {
      await fsp.writeFile(netns, '', { mode: 0o600 });
      await run(['unshare', `--net=${netns}`, 'ip', '-batch', '-'], inside.join('\n') + '\n', `netns ${netns}`);
    } else await ipInNetns(netns, inside.join('\n') + '\n');
  } else if (inside.length > 0) await ipInNetns(netns, inside.join('\n') + '\n');
  if (veths.length > 0) {
    await run(
      ['ip', '-batch', '-'],
      veths.flatMap((v) => [`link set dev ${v.hostVeth} master ${v.bridge}`, ...noIpv6(v.hostVeth), `link set dev ${v.hostVeth} up`]).join('\n') + '\n',
      `veth ${veths.map((v) => v.hostVeth).join(' ')}`,
    );
  }
};
