/** Parsers for the small value languages of stack files: sizes, durations, ports, restart policies. */
import type { PortSpec, RestartPolicy } from '../../engine/engine.js';
import { Expected, expect } from './decode.js';

const expected = expect;

const sizeUnits: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** "64m", "1g", "512k", "1024" or a number of bytes. */
export const parseBytes = (u: unknown): number | Expected => {
  if (typeof u === 'number' && Number.isInteger(u) && u >= 0) return u;
  if (typeof u !== 'string') return expected('a size such as 64m, 1g or a number of bytes');
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(u.trim());
  const unit = m ? sizeUnits[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return expected('a size such as 64m, 1g or a number of bytes');
  return Math.round(Number(m[1]) * unit);
};

const durUnits: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go/Compose durations ("1m30s", "500ms", "5s") or a number of seconds; returns milliseconds. */
export const parseDurationMs = (u: unknown): number | Expected => {
  if (typeof u === 'number' && u >= 0) return Math.round(u * 1000);
  if (typeof u !== 'string' || u.trim() === '') return expected('a duration such as 5s, 1m30s or 500ms');
  let total = 0;
  let rest = u.trim();
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)/.exec(rest);
    if (!m) return expected('a duration such as 5s, 1m30s or 500ms');
    total += Number(m[1]) * durUnits[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
};

const validPort = (n: number): boolean => Number.isInteger(n) && n >= 1 && n <= 65535;

/**
 * Docker's short port syntax: "80", "8080:80", "127.0.0.1:8080:80", "8080:80/udp",
 * "127.0.0.1::80". Ranges are not supported (say so rather than guess).
 */
export const parsePortString = (s: string): PortSpec | Expected => {
  const exp = expected('a port such as "8080:80", "127.0.0.1:8080:80/udp" or "80"');
  let body = s.trim();
  let protocol: 'tcp' | 'udp' = 'tcp';
  const slash = body.lastIndexOf('/');
  if (slash >= 0) {
    const p = body.slice(slash + 1);
    if (p !== 'tcp' && p !== 'udp') return expected('protocol tcp or udp');
    protocol = p;
    body = body.slice(0, slash);
  }
  if (body.includes('-')) return expected('a single port (port ranges are not supported by Berth)');
  // An IPv6 host address is written in brackets: "[::1]:8080:80".
  let hostIp: string | undefined;
  const v6 = /^\[([^\]]+)\]:(.*)$/.exec(body);
  if (v6) {
    hostIp = v6[1];
    body = v6[2]!;
  }
  const parts = body.split(':');
  let host: string | undefined;
  let container: string;
  if (parts.length === 1) container = parts[0]!;
  else if (parts.length === 2) [host, container] = [parts[0]!, parts[1]!];
  else if (parts.length === 3 && hostIp === undefined) [hostIp, host, container] = [parts[0]!, parts[1]!, parts[2]!];
  else return exp;
  const cp = Number(container);
  if (!/^\d+$/.test(container) || !validPort(cp)) return expected('a container port 1-65535');
  const out: { containerPort: number; protocol: 'tcp' | 'udp'; hostPort?: number; hostIp?: string } = { containerPort: cp, protocol };
  if (host !== undefined && host !== '') {
    const hp = Number(host);
    if (!/^\d+$/.test(host) || !validPort(hp)) return expected('a host port 1-65535');
    out.hostPort = hp;
  }
  if (hostIp !== undefined && hostIp !== '') out.hostIp = hostIp;
  return out;
};

/** "no", "always", "unless-stopped", "on-failure", "on-failure:3". */
export const parseRestart = (u: unknown): RestartPolicy | Expected => {
  const exp = expected('"no", "always", "unless-stopped", "on-failure" or "on-failure:N"');
  if (u === false) return { name: 'no' }; // YAML 1.1 readers turn `no` into false
  if (typeof u !== 'string') return exp;
  if (u === 'no' || u === 'always' || u === 'unless-stopped' || u === 'on-failure') return { name: u };
  const m = /^on-failure:(\d+)$/.exec(u);
  if (m) return { name: 'on-failure', maximumRetryCount: Number(m[1]) };
  return exp;
};

/** Splits a command line the way a POSIX shell splits words (quotes and backslashes; no expansion). */
export const shellSplit = (s: string): string[] | Expected => {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else cur += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1]!)) cur += s[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote !== null) return expected('a command with balanced quotes');
  if (inWord) out.push(cur);
  return out;
};
