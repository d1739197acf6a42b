import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { StateDir, type EndpointRecord } from '../../../engine/network/state.js';

const ep = (id: string, name: string): EndpointRecord => ({
  containerId: id, name, hostname: name, domainname: undefined, phase: 'ready', mode: 'none', netnsPath: `/run/x/${id}`,
  sharedWith: undefined, networks: {}, networkOrder: [], ports: [], extraHosts: [],
});

let dir: string;
beforeEach(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'berth-netstate-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the endpoint index', () => {
  it('reads back what was written, and what another process (another StateDir) wrote after it', async () => {
    const a = new StateDir(dir);
    const b = new StateDir(dir);
    await a.init();
    await a.writeIndex(new Map([['c1', ep('c1', 'one')]]));
    expect([...(await a.readIndex())!.keys()]).toEqual(['c1']);
    expect((await b.readIndex())!.get('c1')!.name).toBe('one');
    // b replaces it: a's copy of what it wrote no longer stands
    await b.writeIndex(new Map([['c1', ep('c1', 'renamed')], ['c2', ep('c2', 'two')]]));
    const seen = (await a.readIndex())!;
    expect([...seen.keys()].sort()).toEqual(['c1', 'c2']);
    expect(seen.get('c1')!.name).toBe('renamed');
    // the file is plain JSON with every record
    const j = JSON.parse(readFileSync(a.indexFile, 'utf8')) as { version: number; endpoints: Record<string, EndpointRecord> };
    expect(j.version).toBe(1);
    expect(j.endpoints['c2']).toEqual(JSON.parse(JSON.stringify(ep('c2', 'two'))));
  });

  it('hands out a map of its own each time: a caller that changes it changes nothing for the next read', async () => {
    const a = new StateDir(dir);
    await a.init();
    await a.writeIndex(new Map([['c1', ep('c1', 'one')]]));
    const first = (await a.readIndex())!;
    first.delete('c1');
    first.set('c9', ep('c9', 'nine'));
    expect([...(await a.readIndex())!.keys()]).toEqual(['c1']);
  });

  it('is stale (undefined) once an endpoint dir came or went behind its back, also for the process that wrote it', async () => {
    const a = new StateDir(dir);
    await a.init();
    await a.writeIndex(new Map([['c1', ep('c1', 'one')]]));
    await new Promise((r) => setTimeout(r, 20)); // a coarse mtime tick
    mkdirSync(a.endpointDir('c2'));
    expect(await a.readIndex()).toBeUndefined();
    expect(await new StateDir(dir).readIndex()).toBeUndefined();
  });
});

describe.skipIf(process.getuid?.() !== 0)('state of an older Berth', () => {
  it('the index and pending marks it kept under <root>/networks are removed by the first full scan; ours live under the run root', async () => {
    const { openNetworking } = await import('../../../engine/network/networking.js');
    const root = path.join(dir, 'root');
    const runRoot = path.join(dir, 'run');
    mkdirSync(path.join(root, 'networks', 'pending'), { recursive: true });
    writeFileSync(path.join(root, 'networks', 'index.json'), '{"version":1,"dirMtime":"0","endpoints":{}}');
    writeFileSync(path.join(root, 'networks', 'pending', 'c1'), '{"pid":1,"start":"1"}');
    const nw = openNetworking({ root, runRoot });
    try {
      await nw.recover();
      expect(existsSync(path.join(root, 'networks', 'index.json'))).toBe(false);
      expect(existsSync(path.join(root, 'networks', 'pending'))).toBe(false);
      expect(existsSync(path.join(runRoot, 'networks', 'index.json'))).toBe(true);
      expect(readdirSync(path.join(runRoot, 'networks', 'pending'))).toEqual([]);
    } finally {
      await nw.purge();
    }
  });
});
