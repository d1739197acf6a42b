// `berth network ...` over the real networking engine in a temporary root.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatPort, registerNetworkCommands } from '../../cli/commands/networks.js';
import { openNetworking, type Networking } from '../../engine/network/networking.js';

const skip = process.getuid?.() !== 0 ? 'needs root (creates bridges)' : '';
let root = '';
let nw: Networking;

const berth = async (...args: string[]): Promise<string> => {
  const program = new Command().exitOverride().option('--json');
  registerNetworkCommands(program, {
    engine: async () => ({ ...nw, inspectContainer: async () => { throw new Error('not used here'); } }),
  });
  let text = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    text += String(s);
    return true;
  });
  try {
    await program.parseAsync(['node', 'berth', ...args]);
  } finally {
    spy.mockRestore();
  }
  return text;
};

describe('port format', () => {
  it('prints docker port\'s lines', () => {
    expect(formatPort({ containerPort: 80, protocol: 'tcp', hostPort: 32768 })).toBe('80/tcp -> 0.0.0.0:32768');
    expect(formatPort({ containerPort: 53, protocol: 'udp', hostPort: 5353, hostIp: '127.0.0.1' })).toBe('53/udp -> 127.0.0.1:5353');
  });
});

describe.skipIf(skip !== '')(`berth network${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-netcli-'));
    nw = openNetworking({ root, runRoot: path.join(root, 'run') });
  });
  afterAll(async () => {
    await nw?.purge();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('creates, lists, inspects, removes and prunes networks', async () => {
    const id = (await berth('network', 'create', '--subnet', '10.123.45.0/24', '--internal', '-l', 'team=a', 'front')).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    await berth('network', 'create', 'back');
    const ls = await berth('network', 'ls');
    expect(ls).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+front\\s+bridge\\s+10\\.123\\.45\\.0/24\\s+yes\\s+0$`, 'm'));
    expect(ls).toMatch(/^\S+\s+host\s+host/m);
    const [info] = JSON.parse(await berth('network', 'inspect', 'front')) as { spec: { gateway: string; labels: Record<string, string> }; bridge: string }[];
    expect(info!.spec.gateway).toBe('10.123.45.1');
    expect(info!.spec.labels).toEqual({ team: 'a' });
    expect(info!.bridge).toBe(`berth-${id.slice(0, 9)}`);
    await expect(berth('network', 'create', 'front')).rejects.toThrow(/already exists/);
    await expect(berth('network', 'create', '--subnet', '10.123.45.128/25', 'clash')).rejects.toThrow(/overlaps/);
    expect(await berth('network', 'rm', 'front')).toBe('front\n');
    expect(JSON.parse(await berth('--json', 'network', 'prune'))).toEqual({ deleted: ['back'] });
    expect(JSON.parse(await berth('--json', 'network', 'ls')).map((n: { name: string }) => n.name)).toEqual(['host', 'none']);
  });
});
