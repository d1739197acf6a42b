/**
 * Published ports: parsing Docker's -p syntax, choosing free host ports for
 * -P, and checking that a host port is free by binding it (the only test
 * that sees every kind of owner: any process, any address).
 */
import * as net from 'node:net';
import { promises as fsp } from 'node:fs';
import type { PortSpec } from '../engine.js';
import { fail, invalidSpec, conflict } from '../errors.js';
import { parseAddress } from './ipam.js';
import type { Port } from './state.js';

const portNum = (s: string, what: string, problems: string[]): number | undefined => {
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) {
    problems.push(`${what}: expected a port 1-65535, got ${JSON.stringify(s)}`);
    return undefined;
  }
  return Number(s);
};

const range = (s: string, what: string, problems: string[]): [number, number] | undefined => {
  const [a, b] = s.split('-', 2);
  const lo = portNum(a ?? '', what, problems);
  const hi = b === undefined ? lo : portNum(b, what, problems);
  if (lo === undefined || hi === undefined) return undefined;
  if (hi < lo) {
    problems.push(`${what}: range ${s} ends before it starts`);
    return undefined;
  }
  return [lo, hi];
};

/**
 * Docker's -p forms: "cport", "hport:cport", "ip:hport:cport", "ip::cport",
 * each port may be a range ("8000-8009:80-89", same length, or a host range
 * for one container port: the first free one), and "/tcp" or "/udp".
 */
export type PublishSpec = PortSpec & {
  /** With hostPort: the last port of a host range to choose one free port from ("8000-8009:80"). */
  readonly hostPortEnd?: number;
};

export const parsePublish = (spec: string): PublishSpec[] => {
  const problems: string[] = [];
  let body = spec;
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = spec.lastIndexOf('/');
  if (slash >= 0) {
    const p = spec.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') problems.push(`protocol: expected tcp or udp, got ${JSON.stringify(p)}`);
    else protocol = p;
    body = spec.slice(0, slash);
  }
  let hostIp: string | undefined;
  let hostPart: string | undefined;
  let containerPart: string;
  const parts = body.split(':');
  if (parts.length === 1) containerPart = parts[0]!;
  else if (parts.length === 2) [hostPart, containerPart] = [parts[0]!, parts[1]!];
  else if (parts.length === 3) [hostIp, hostPart, containerPart] = [parts[0]!, parts[1]!, parts[2]!];
  else return fail(invalidSpec(`-p ${spec}`, ['expected [ip:][hostPort:]containerPort[/tcp|udp]']));
  if (hostIp !== undefined && parseAddress(hostIp.replace(/^\[|\]$/g, '')) === undefined)
    problems.push(`host ip: expected an IPv4 address, got ${JSON.stringify(hostIp)}`);
  const c = range(containerPart, 'container port', problems);
  const h = hostPart === undefined || hostPart === '' ? undefined : range(hostPart, 'host port', problems);
  if (c && h && h[1] - h[0] !== c[1] - c[0] && c[0] !== c[1])
    problems.push(`host range ${hostPart} and container range ${containerPart} differ in length`);
  if (problems.length > 0 || !c) return fail(invalidSpec(`-p ${spec}`, problems));
  const out: PublishSpec[] = [];
  const base = (p: PortSpec): PortSpec => (hostIp !== undefined ? { ...p, hostIp } : p);
  if (h && c[0] === c[1] && h[0] !== h[1]) {
    // one container port, a host range: the first free host port of the range, at setup
    return [{ ...base({ containerPort: c[0], protocol, hostPort: h[0] }), hostPortEnd: h[1] }];
  }
  for (let i = 0; i <= c[1] - c[0]; i++) {
    out.push(base(h ? { containerPort: c[0] + i, protocol, hostPort: h[0] + i } : { containerPort: c[0] + i, protocol }));
  }
  return out;
};

/** True when nothing holds `ip:port` for `protocol` on the host (we bind it and let go). */
export const portFree = (ip: string, port: number, protocol: 'tcp' | 'udp'): Promise<boolean> =>
  new Promise((resolve) => {
    if (protocol === 'tcp') {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ host: ip, port, exclusive: true }, () => srv.close(() => resolve(true)));
    } else {
      // node:dgram on first use: left out of berth's start-up snapshot, which every command deserializes
      const sock = process.getBuiltinModule('node:dgram').createSocket({ type: 'udp4' });
      sock.once('error', () => {
        sock.close();
        resolve(false);
      });
      sock.bind({ address: ip, port, exclusive: true }, () => sock.close(() => resolve(true)));
    }
  });

export const ephemeralRange = async (): Promise<[number, number]> => {
  try {
    const [lo, hi] = (await fsp.readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/).map(Number);
    if (lo && hi && lo <= hi) return [lo, hi];
  } catch {
    // fall through to the kernel's default
  }
  return [32768, 60999];
};

const overlapIp = (a: string, b: string): boolean => a === b || a === '0.0.0.0' || b === '0.0.0.0';

/**
 * Gives every requested port a host port: fixed ones are checked, ranges and
 * zero get the first/any free one. `taken` are ports Berth already publishes
 * (they hold no socket: nft DNAT), checked besides the bind test.
 */
export const resolvePorts = async (
  requested: readonly PublishSpec[],
  taken: readonly Port[],
  containerName: string,
): Promise<Port[]> => {
  const out: Port[] = [];
  const busy = (p: Port): boolean =>
    [...taken, ...out].some((t) => t.protocol === p.protocol && t.hostPort === p.hostPort && overlapIp(t.hostIp, p.hostIp));
  for (const r of requested) {
    const hostIp = r.hostIp ?? '0.0.0.0';
    if (parseAddress(hostIp) === undefined)
      return fail(invalidSpec(`port ${r.containerPort}/${r.protocol}`, [`host ip: only IPv4 addresses are published, got ${JSON.stringify(hostIp)}`]));
    if (!Number.isInteger(r.containerPort) || r.containerPort < 1 || r.containerPort > 65535)
      return fail(invalidSpec(`port ${r.containerPort}/${r.protocol}`, ['container port: expected 1-65535']));
    let candidates: Iterable<number>;
    const fixed = r.hostPort !== undefined && r.hostPort > 0 && r.hostPortEnd === undefined;
    if (fixed) candidates = [r.hostPort!];
    else if (r.hostPort !== undefined && r.hostPort > 0 && r.hostPortEnd !== undefined) {
      const lo = r.hostPort;
      const hi = r.hostPortEnd;
      candidates = Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);
    } else {
      const [lo, hi] = await ephemeralRange();
      const start = lo + Math.floor(Math.random() * (hi - lo + 1));
      candidates = (function* () {
        for (let i = 0; i <= hi - lo; i++) yield lo + ((start - lo + i) % (hi - lo + 1));
      })();
    }
    let chosen: Port | undefined;
    for (const hostPort of candidates) {
      const p: Port = { containerPort: r.containerPort, protocol: r.protocol, hostPort, hostIp };
      if (!busy(p) && (await portFree(hostIp, hostPort, r.protocol))) {
        chosen = p;
        break;
      }
    }
    if (!chosen) {
      const what = fixed ? `${hostIp}:${r.hostPort}/${r.protocol}` : `a host port for ${r.containerPort}/${r.protocol}`;
      return fail(conflict('port', what, `${fixed ? 'the host port is already in use' : 'no free host port left'}; nothing was changed for container ${containerName}; choose another host port`));
    }
    out.push(chosen);
  }
  return out;
};

/** "80/tcp" (an image's EXPOSE entry) -> a port to publish on a free host port. */
export const exposedToPorts = (exposed: readonly string[]): PortSpec[] =>
  exposed.flatMap((e) => {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp))?$/.exec(e.trim());
    if (!m) return [];
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    const protocol = (m[3] ?? 'tcp') as 'tcp' | 'udp';
    return Array.from({ length: Math.max(0, hi - lo + 1) }, (_, i) => ({ containerPort: lo + i, protocol }));
  });
