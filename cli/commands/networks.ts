/**
 * `berth network create|ls|inspect|rm|prune|connect|disconnect` and
 * `berth port`. Human tables on a TTY, JSON with the global --json.
 */
import { Command, Option } from 'commander';
import type { Engine, NetworkInfo, PortSpec } from '../../engine/engine.js';
import { fail, invalidSpec } from '../../engine/errors.js';

export interface NetworkCommandDeps {
  /** Opens the engine for the global options (--root, --host...). */
  readonly engine: () => Promise<Pick<Engine, 'createNetwork' | 'removeNetwork' | 'listNetworks' | 'inspectNetwork' | 'connectNetwork' | 'disconnectNetwork' | 'pruneNetworks' | 'inspectContainer'>>;
  /** Whether the global --json is on (default: read from the root program). */
  readonly json?: () => boolean;
}

const out = (s: string): void => {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
};

const table = (rows: readonly (readonly string[])[]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n');
};

const labels = (list: readonly string[]): Record<string, string> => {
  const o: Record<string, string> = {};
  const bad: string[] = [];
  for (const l of list) {
    const i = l.indexOf('=');
    if (i === 0) bad.push(`label: expected key=value, got ${JSON.stringify(l)}`);
    else if (i < 0) o[l] = '';
    else o[l.slice(0, i)] = l.slice(i + 1);
  }
  if (bad.length > 0) fail(invalidSpec('--label', bad));
  return o;
};

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** "80/tcp -> 0.0.0.0:32768", docker port's format. */
export const formatPort = (p: PortSpec): string => `${p.containerPort}/${p.protocol} -> ${p.hostIp ?? '0.0.0.0'}:${p.hostPort ?? 0}`;

export const registerNetworkCommands = (program: Command, deps: NetworkCommandDeps): void => {
  const json = (): boolean => deps.json?.() ?? program.opts()['json'] === true;
  const net = program.command('network').description('manage networks');

  net
    .command('create')
    .description('create a bridge network')
    .argument('<name>')
    .option('--subnet <cidr>', 'IPv4 subnet (default: a free /24 of 10.89.0.0/16)')
    .option('--gateway <ip>', 'gateway address (default: the subnet\'s first)')
    .option('--ip-range <cidr>', 'hand out container addresses from this part of the subnet')
    .option('--internal', 'no traffic in or out of the network but to the host and its members')
    .option('--ipv6', 'enable IPv6 (not supported yet)')
    .addOption(new Option('-d, --driver <driver>', 'network driver').choices(['bridge']).default('bridge'))
    .option('-l, --label <key=value>', 'set a label (repeatable)', collect, [])
    .action(async (name: string, o: { subnet?: string; gateway?: string; ipRange?: string; internal?: boolean; ipv6?: boolean; label: string[] }) => {
      const e = await deps.engine();
      const info = await e.createNetwork({
        name, driver: 'bridge', labels: labels(o.label), internal: o.internal === true, ipv6: o.ipv6 === true,
        ...(o.subnet ? { subnet: o.subnet } : {}), ...(o.gateway ? { gateway: o.gateway } : {}), ...(o.ipRange ? { ipRange: o.ipRange } : {}),
      });
      out(json() ? JSON.stringify(info, null, 2) : info.id);
    });

  net
    .command('ls')
    .alias('list')
    .description('list networks')
    .option('-q, --quiet', 'only IDs')
    .option('--no-trunc', 'full IDs')
    .action(async (o: { quiet?: boolean; trunc: boolean }) => {
      const nets = await (await deps.engine()).listNetworks();
      const id = (n: NetworkInfo): string => (o.trunc ? n.id.slice(0, 12) : n.id);
      if (json()) return out(JSON.stringify(nets, null, 2));
      if (o.quiet) return out(nets.map(id).join('\n'));
      const driver = (n: NetworkInfo): string => (n.name === 'host' || n.name === 'none' ? n.name : 'bridge');
      out(table([
        ['NETWORK ID', 'NAME', 'DRIVER', 'SUBNET', 'INTERNAL', 'CONTAINERS'],
        ...nets.map((n) => [id(n), n.name, driver(n), n.spec.subnet ?? '', n.spec.internal ? 'yes' : '', String(Object.keys(n.containers).length)]),
      ]));
    });

  net
    .command('inspect')
    .description('show networks in detail (JSON)')
    .argument('<network...>')
    .action(async (refs: string[]) => {
      const e = await deps.engine();
      const infos: NetworkInfo[] = [];
      for (const r of refs) infos.push(await e.inspectNetwork(r));
      out(JSON.stringify(infos, null, 2));
    });

  net
    .command('rm')
    .alias('remove')
    .description('remove networks (refused while containers use them)')
    .argument('<network...>')
    .action(async (refs: string[]) => {
      const e = await deps.engine();
      for (const r of refs) {
        await e.removeNetwork(r);
        if (!json()) out(r);
      }
      if (json()) out(JSON.stringify({ removed: refs }));
    });

  net
    .command('prune')
    .description('remove every user network no container uses')
    .option('-f, --force', 'do not ask (berth never asks: accepted for Docker compatibility)')
    .action(async () => {
      const r = await (await deps.engine()).pruneNetworks();
      if (json()) return out(JSON.stringify(r));
      out(r.deleted.length === 0 ? 'no network to remove' : `Deleted Networks:\n${r.deleted.join('\n')}`);
    });

  net
    .command('connect')
    .description('connect a running container to a network')
    .argument('<network>')
    .argument('<container>')
    .option('--ip <address>', 'fixed IPv4 address on the network')
    .option('--alias <name>', 'network-scoped alias (repeatable)', collect, [])
    .action(async (network: string, container: string, o: { ip?: string; alias: string[] }) => {
      await (await deps.engine()).connectNetwork(network, container, { aliases: o.alias, ...(o.ip ? { ipv4Address: o.ip } : {}) });
    });

  net
    .command('disconnect')
    .description('disconnect a container from a network')
    .argument('<network>')
    .argument('<container>')
    .option('-f, --force', 'force the disconnect')
    .action(async (network: string, container: string, o: { force?: boolean }) => {
      await (await deps.engine()).disconnectNetwork(network, container, { force: o.force === true });
    });

  program
    .command('port')
    .description('list a container\'s published ports, or the host address of one')
    .argument('<container>')
    .argument('[port]', 'PORT[/PROTO]')
    .action(async (ref: string, want?: string) => {
      const c = await (await deps.engine()).inspectContainer(ref);
      let ports = c.ports;
      if (want !== undefined) {
        const m = /^(\d+)(?:\/(tcp|udp))?$/.exec(want);
        if (!m) fail(invalidSpec('port', [`expected PORT[/tcp|udp], got ${JSON.stringify(want)}`]));
        ports = ports.filter((p) => p.containerPort === Number(m![1]) && p.protocol === (m![2] ?? 'tcp'));
        if (ports.length === 0) fail({ _tag: 'NotFound', kind: 'published port', name: want, hint: `container ${c.name} does not publish it` });
      }
      if (json()) return out(JSON.stringify(ports, null, 2));
      if (ports.length === 0) return;
      out(want !== undefined ? ports.map((p) => `${p.hostIp ?? '0.0.0.0'}:${p.hostPort}`).join('\n') : ports.map(formatPort).join('\n'));
    });
};
