/**
 * IPv4 address arithmetic and address management, as pure functions of the
 * recorded state: the addresses in use on a network are exactly those that
 * its endpoint records hold (state.ts), so nothing is allocated without a
 * record and releasing a record releases its addresses.
 *
 * Vocabulary: a *CIDR* is "10.88.0.0/16"; an *address* is "10.88.0.5" (no
 * prefix); `Subnet` is the parsed CIDR with the network address as a number.
 */
import { fail, invalidSpec, conflict } from '../errors.js';

export interface Subnet {
  readonly base: number; // network address, unsigned 32-bit
  readonly prefix: number;
}

export const parseAddress = (s: string): number | undefined => {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255 || (m[i]!.length > 1 && m[i]!.startsWith('0'))) return undefined;
    n = n * 256 + o;
  }
  return n;
};

export const formatAddress = (n: number): string =>
  [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

const mask = (prefix: number): number => (prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);

/** Parses "a.b.c.d/p"; `strict` refuses host bits set (a subnet), else they are cleared. */
export const parseCidr = (s: string, strict = true): Subnet | undefined => {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const a = parseAddress(m[1]!);
  const prefix = Number(m[2]);
  if (a === undefined || prefix > 32) return undefined;
  const base = (a & mask(prefix)) >>> 0;
  if (strict && base !== a) return undefined;
  return { base, prefix };
};

export const formatCidr = (s: Subnet): string => `${formatAddress(s.base)}/${s.prefix}`;
export const size = (s: Subnet): number => 2 ** (32 - s.prefix);
export const contains = (s: Subnet, a: number): boolean => ((a & mask(s.prefix)) >>> 0) === s.base;
export const overlaps = (a: Subnet, b: Subnet): boolean => {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
};

/**
 * The first subnet of `prefix` bits, walking `pool` in order, that overlaps
 * none of `taken` (host routes and other networks). 10.88.0.0/16 is the
 * default network's, 10.89.0.0/16 is cut into /24s for user networks.
 */
export const firstFreeSubnet = (pool: Subnet, prefix: number, taken: readonly Subnet[]): Subnet | undefined => {
  const step = 2 ** (32 - prefix);
  for (let b = pool.base; b < pool.base + size(pool); b += step) {
    const cand = { base: b >>> 0, prefix };
    if (!taken.some((t) => overlaps(t, cand))) return cand;
  }
  return undefined;
};

export interface NetworkAddressing {
  readonly subnet: string;
  readonly gateway: string;
  readonly ipRange?: string | undefined;
}

/** Validates a network's subnet, gateway and range together; every problem at once. */
export const checkAddressing = (source: string, a: NetworkAddressing): void => {
  const problems: string[] = [];
  const subnet = parseCidr(a.subnet);
  if (!subnet) problems.push(`subnet: expected an IPv4 subnet like 10.89.0.0/24 (no host bits set), got ${JSON.stringify(a.subnet)}`);
  else if (subnet.prefix > 30) problems.push(`subnet: ${a.subnet} is too small (at most /30)`);
  const gw = parseAddress(a.gateway);
  if (gw === undefined) problems.push(`gateway: expected an IPv4 address, got ${JSON.stringify(a.gateway)}`);
  else if (subnet && (!contains(subnet, gw) || gw === subnet.base || gw === subnet.base + size(subnet) - 1))
    problems.push(`gateway: ${a.gateway} is not a host address of ${a.subnet}`);
  if (a.ipRange !== undefined) {
    const r = parseCidr(a.ipRange);
    if (!r) problems.push(`ip-range: expected an IPv4 CIDR, got ${JSON.stringify(a.ipRange)}`);
    else if (subnet && !(r.prefix >= subnet.prefix && contains(subnet, r.base)))
      problems.push(`ip-range: ${a.ipRange} is not inside ${a.subnet}`);
  }
  if (problems.length > 0) fail(invalidSpec(source, problems));
};

/** The lowest free host address of the network (inside ipRange when set). */
export const allocate = (a: NetworkAddressing, inUse: ReadonlySet<string>, networkName: string): string => {
  const subnet = parseCidr(a.subnet)!;
  const range = a.ipRange !== undefined ? parseCidr(a.ipRange)! : subnet;
  const first = subnet.base + 1;
  const last = subnet.base + size(subnet) - 2;
  for (let n = Math.max(range.base, first); n <= Math.min(range.base + size(range) - 1, last); n++) {
    const s = formatAddress(n);
    if (s !== a.gateway && !inUse.has(s)) return s;
  }
  return fail(conflict('network', networkName, `no free address left in ${a.ipRange ?? a.subnet}; remove a container or use a larger subnet`));
};

/** Checks a fixed address (--ip) for this network. */
export const checkFixed = (a: NetworkAddressing, ip: string, inUse: ReadonlySet<string>, networkName: string): string => {
  const n = parseAddress(ip);
  const subnet = parseCidr(a.subnet)!;
  if (n === undefined) return fail(invalidSpec('--ip', [`expected an IPv4 address, got ${JSON.stringify(ip)}`]));
  if (!contains(subnet, n) || n === subnet.base || n === subnet.base + size(subnet) - 1)
    return fail(invalidSpec('--ip', [`${ip} is not a host address of network ${networkName} (${a.subnet})`]));
  if (ip === a.gateway) return fail(conflict('address', ip, `it is the gateway of network ${networkName}`));
  if (inUse.has(ip)) return fail(conflict('address', ip, `already in use on network ${networkName}; choose another --ip`));
  return ip;
};

/** Docker's MAC scheme: 02:42 followed by the IPv4 address, so it is unique where the address is. */
export const macFor = (ip: string): string => {
  const n = parseAddress(ip)!;
  return ['02', '42', ...[(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((o) => o.toString(16).padStart(2, '0'))].join(':');
};
