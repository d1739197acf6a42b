/**
 * Berth's nftables table. Berth owns one table per root (`inet berth` for
 * the default root), and only that table: it is rebuilt as a whole from the
 * recorded state in one nft transaction after every change ("delete table"
 * + "add table" in one `nft -f -` run is atomic), so it can never drift from
 * the records, a crash leaves either the old or the new table, and removing
 * Berth's rules is deleting its table. Rules of anybody else are never read
 * or written.
 */
import { run, runRaw } from './exec.js';
import type { NetworkRecord, EndpointRecord } from './state.js';

const q = (s: string): string => JSON.stringify(s); // interface names are [a-z0-9-]: quoting is enough

export interface Dnat {
  readonly hostIp: string; // "0.0.0.0" = every local address
  readonly hostPort: number;
  readonly protocol: 'tcp' | 'udp';
  readonly target: string;
  readonly containerPort: number;
}

export const dnatsOf = (endpoints: readonly EndpointRecord[]): Dnat[] =>
  endpoints.flatMap((e) => {
    const primary = e.networkOrder[0];
    const a = primary === undefined ? undefined : e.networks[primary];
    if (!a || e.phase === 'removing') return [];
    return e.ports.map((p) => ({ hostIp: p.hostIp, hostPort: p.hostPort, protocol: p.protocol, target: a.ipv4, containerPort: p.containerPort }));
  });

const mapOf = (proto: 'tcp' | 'udp', byIp: boolean): string => `published_${byIp ? 'ip_' : ''}${proto}`;
const key = (d: Dnat): string => (d.hostIp === '0.0.0.0' ? `${d.hostPort}` : `${d.hostIp} . ${d.hostPort}`);
const element = (d: Dnat): string => `${key(d)} : ${d.target} . ${d.containerPort}`;

/** An nft script adding (`add`) or deleting (`delete`) published ports as map elements of an existing table. */
export const dnatElements = (table: string, op: 'add' | 'delete', dnats: readonly Dnat[]): string =>
  dnats.map((d) => `${op} element inet ${table} ${mapOf(d.protocol, d.hostIp !== '0.0.0.0')} { ${op === 'add' ? element(d) : key(d)} }`).join('\n') + '\n';

/** The whole table as an nft script (pure, so tests can read it). */
export const ruleset = (table: string, networks: readonly NetworkRecord[], dnats: readonly Dnat[]): string => {
  const nets = networks.filter((n) => n.phase !== 'removing');
  const L: string[] = [];
  L.push(`table inet ${table} {`);
  // Published ports: maps keyed by host port (and address, for ports published on one address), so a
  // container's ports are elements added and deleted on their own and a packet is one lookup, whatever
  // the number of containers. Only for packets addressed to this host (Docker's "dst-type LOCAL").
  for (const proto of ['tcp', 'udp'] as const) {
    for (const byIp of [true, false]) {
      const els = dnats.filter((d) => d.protocol === proto && (d.hostIp !== '0.0.0.0') === byIp).map(element);
      L.push(`  map ${mapOf(proto, byIp)} {`, `    type ${byIp ? 'ipv4_addr . ' : ''}inet_service : ipv4_addr . inet_service`);
      if (els.length > 0) L.push(`    elements = { ${els.join(', ')} }`);
      L.push('  }');
    }
  }
  L.push('  chain published {');
  for (const proto of ['tcp', 'udp'] as const) L.push(`    meta nfproto ipv4 dnat ip to ip daddr . ${proto} dport map @${mapOf(proto, true)}`);
  for (const proto of ['tcp', 'udp'] as const) L.push(`    meta nfproto ipv4 dnat ip to ${proto} dport map @${mapOf(proto, false)}`);
  L.push('  }');
  // route_localnet (needed for 127.0.0.1 DNAT) would also let a container send to the host's 127.0.0.0/8
  // services through its gateway (CVE-2020-8558): drop such packets as they come off a Berth bridge.
  if (nets.length > 0) {
    L.push('  chain guard {', '    type filter hook prerouting priority raw; policy accept;');
    L.push(`    iifname { ${nets.map((n) => q(n.bridge)).join(', ')} } ip daddr 127.0.0.0/8 counter drop`);
    L.push('  }');
  }
  L.push('  chain prerouting {', '    type nat hook prerouting priority dstnat; policy accept;', '    fib daddr type local jump published', '  }');
  L.push('  chain output {', '    type nat hook output priority -100; policy accept;', '    fib daddr type local jump published', '  }');
  L.push('  chain postrouting {', '    type nat hook postrouting priority srcnat; policy accept;');
  for (const n of nets) {
    // host -> 127.0.0.1:port -> container: the container cannot answer 127.0.0.1 (route_localnet is set on the bridge)
    L.push(`    oifname ${q(n.bridge)} ip saddr 127.0.0.0/8 masquerade`);
    // container -> host address:port -> a container of the same bridge: answer through the host
    L.push(`    oifname ${q(n.bridge)} ct status dnat ip saddr ${n.subnet} masquerade`);
    if (!n.internal) L.push(`    ip saddr ${n.subnet} oifname != ${q(n.bridge)} masquerade`);
  }
  L.push('  }');
  L.push('  chain forward {', '    type filter hook forward priority filter; policy accept;');
  for (const n of nets.filter((x) => x.internal)) {
    L.push(`    iifname ${q(n.bridge)} oifname != ${q(n.bridge)} drop`);
    L.push(`    oifname ${q(n.bridge)} iifname != ${q(n.bridge)} drop`);
  }
  // published ports are reachable from every network, like any host service
  L.push('    ct status dnat accept');
  if (nets.length > 1) {
    for (const n of nets) {
      const others = nets.filter((o) => o.id !== n.id).map((o) => q(o.bridge));
      L.push(`    iifname ${q(n.bridge)} oifname { ${others.join(', ')} } drop`);
    }
  }
  L.push('  }', '}');
  return L.join('\n') + '\n';
};

/** How often the table was rebuilt whole or changed by elements (for tests of the cost per setup). */
export const nftCounters = { rebuilds: 0, elementChanges: 0 };

/** Adds or deletes map elements in one transaction (fails, changing nothing, when one is missing or the table is). */
export const applyElements = async (table: string, script: string): Promise<void> => {
  nftCounters.elementChanges++;
  await run(['nft', '-f', '-'], script, `nft table inet ${table}`);
};

/** Replaces Berth's table atomically (creates it first so the delete never fails). */
export const applyRuleset = async (table: string, script: string): Promise<void> => {
  nftCounters.rebuilds++;
  await run(['nft', '-f', '-'], `table inet ${table}\ndelete table inet ${table}\n${script}`, `nft table inet ${table}`);
};

export const deleteTable = async (table: string): Promise<void> => {
  const r = await runRaw(['nft', 'delete', 'table', 'inet', table]);
  if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) {
    await run(['nft', 'delete', 'table', 'inet', table]);
  }
};

export const tableExists = async (table: string): Promise<boolean> =>
  (await runRaw(['nft', 'list', 'table', 'inet', table])).code === 0;
