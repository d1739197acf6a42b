/**
 * The name resolution files bind-mounted into containers: /etc/hosts,
 * /etc/resolv.conf and /etc/hostname.
 *
 * Containers on a user-defined network find each other through their hosts
 * files, which Berth rewrites whenever a container joins or leaves the
 * network. Rewrites happen in place (truncate and write the same inode):
 * a bind mount pins the inode, so a rename would leave the container
 * looking at the old file.
 */
import { closeSync, ftruncateSync, openSync, promises as fsp, readFileSync, writeSync, constants as C } from 'node:fs';
import { isIPv4 } from 'node:net';
import { sys } from '../errors.js';

export const hostsLine = (e: HostsEntry): string => `${e.ip}\t${e.names.join(' ')}`;

export interface HostsEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

export const hostsFile = (own: readonly HostsEntry[], peers: readonly HostsEntry[], extraHosts: readonly string[]): string =>
  hostsFileOfLines(own, peers.map(hostsLine), extraHosts);

/** hostsFile with the peers' lines already formatted (hostsLine): a network's members share them. */
export const hostsFileOfLines = (own: readonly HostsEntry[], peerLines: readonly string[], extraHosts: readonly string[]): string => {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
  ];
  for (const h of extraHosts) {
    // Docker's --add-host "name:ip"; the ip may be IPv6 ("name:::1"), so split at the first colon
    const j = h.indexOf(':');
    if (j > 0) lines.push(`${h.slice(j + 1)}\t${h.slice(0, j)}`);
  }
  for (const e of own) lines.push(hostsLine(e));
  for (const l of peerLines) lines.push(l);
  return lines.join('\n') + '\n';
};


const isLoopback = (ns: string): boolean => (isIPv4(ns) ? ns.startsWith('127.') : ns === '::1' || ns === '0:0:0:0:0:0:0:1');

/**
 * Docker's rules: the host's resolv.conf (systemd-resolved's upstream file
 * when the host points at its 127.0.0.53 stub), without loopback
 * nameservers, which mean nothing inside another network namespace; when
 * none is left, Docker's defaults (Google's public resolvers) stand in.
 */
export const containerResolvConf = (hostText: string): { text: string; nameservers: string[] } => {
  const out: string[] = [];
  const kept: string[] = [];
  let dropped = false;
  for (const line of hostText.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      if (isLoopback(m[1]!)) {
        dropped = true;
        continue;
      }
      kept.push(m[1]!);
    }
    out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  if (kept.length === 0) {
    if (dropped) out.push('# loopback nameservers of the host removed; Docker\'s defaults instead');
    out.push('nameserver 8.8.8.8', 'nameserver 8.8.4.4');
    kept.push('8.8.8.8', '8.8.4.4');
  }
  return { text: out.join('\n') + '\n', nameservers: kept };
};

export const readHostResolvConf = async (): Promise<string> => {
  const read = async (p: string): Promise<string | undefined> => {
    try {
      return readFileSync(p, 'utf8');
    } catch {
      return undefined;
    }
  };
  const main = (await read('/etc/resolv.conf')) ?? '';
  if (/^\s*nameserver\s+127\.0\.0\.53\b/m.test(main)) {
    const upstream = await read('/run/systemd/resolve/resolv.conf');
    if (upstream !== undefined) return upstream;
  }
  return main;
};

/**
 * Creates or rewrites `file` keeping its inode (it may be bind-mounted).
 * `sync` false for files that are regenerated anyway (hosts files of peers:
 * after a power loss no container is left to read them).
 */
export const writeInPlace = async (file: string, text: string, sync = true): Promise<void> => {
  await sys(file, async () => {
    const h = await fsp.open(file, C.O_WRONLY | C.O_CREAT, 0o644);
    try {
      // write first, then cut: a reader never sees an empty file
      const buf = Buffer.from(text, 'utf8');
      await h.write(buf, 0, buf.length, 0);
      await h.truncate(buf.length);
      if (sync) await h.sync();
    } finally {
      await h.close();
    }
  });
};

/**
 * writeInPlace without fsync and without the thread pool: for the hosts
 * files of a network's members, rewritten together on every join and leave
 * (four syscalls each on the calling thread cost less than four thread-pool
 * round trips each, with a hundred members).
 */
export const writeInPlaceNow = async (file: string, text: string): Promise<void> => {
  await sys(file, async () => {
    const fd = openSync(file, C.O_WRONLY | C.O_CREAT, 0o644);
    try {
      const buf = Buffer.from(text, 'utf8');
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off, off);
      ftruncateSync(fd, buf.length);
    } finally {
      closeSync(fd);
    }
  });
};

/** Makes an empty file unless there is one (a bind mount's source, written in place later). */
export const createIfMissing = async (file: string): Promise<void> => {
  await sys(file, async () => closeSync(openSync(file, C.O_WRONLY | C.O_CREAT, 0o644)));
};

/** Appends lines to an existing file (a member's hosts file learning a newcomer); fails when it is missing. */
export const appendNow = async (file: string, text: string): Promise<void> => {
  await sys(file, async () => {
    const fd = openSync(file, C.O_WRONLY | C.O_APPEND);
    try {
      const buf = Buffer.from(text, 'utf8');
      for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    } finally {
      closeSync(fd);
    }
  });
};
