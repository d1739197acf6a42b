// The examples decode, and (as root, with the runtime built) `berth apply`
// brings each up on the local engine, serves its page, and `berth destroy`
// removes it. Also covers the CLI's plan output and exit codes.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerStackCommands } from '../../cli/commands/stack.js';
import type { Engine } from '../../engine/engine.js';
import { openLocalEngine, type LocalEngine } from '../../engine/local.js';
import { openNetworking } from '../../engine/network/networking.js';
import { loadStack } from '../../provider/model/load.js';
import { MemoryEngine } from './memory-engine.js';
import { repoRoot } from '../helpers/paths.js';

const web = path.join(repoRoot, 'examples/web');
const compose = path.join(repoRoot, 'examples/compose');

const berth = async (engine: Engine, ...args: string[]): Promise<{ out: string; err: string; code: number }> => {
  const program = new Command().exitOverride().option('--json').option('--debug');
  registerStackCommands(program, { engine: async () => engine });
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => { out += String(s); return true; });
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => { err += String(s); return true; });
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'berth', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = undefined;
  return { out, err, code };
};

describe('examples decode', () => {
  it('examples/web is a valid stack', () => {
    const s = loadStack(web);
    expect(E.isRight(s) && s.right.name).toBe('web');
    if (E.isRight(s)) {
      expect(Object.keys(s.right.containers).sort()).toEqual(['probe', 'seed', 'web']);
      expect(s.right.images['busybox']).toMatchObject({ kind: 'import', tarball: path.join(web, 'build/busybox-rootfs.tar') });
      expect(s.right.containers['seed']!.mounts[0]).toEqual({ type: 'bind', source: path.join(web, 'site'), target: '/site', readOnly: true });
    }
  });
  it('examples/compose is a valid Compose project', () => {
    const s = loadStack(compose);
    expect(E.isRight(s) && s.right.name).toBe('shop');
    if (E.isRight(s)) {
      expect(s.right.containers['app']!.dependsOn).toEqual({ db: 'healthy' });
      expect(s.right.containers['app']!.restart).toEqual({ name: 'always' });
      expect(s.right.containers['db']!.image).toBe('busybox');
      expect(Object.keys(s.right.volumes)).toEqual(['dbdata']);
    }
  });
});

describe('berth plan / apply output (in-memory engine)', () => {
  it('prints a Terraform-like plan with reasons, JSON, and detailed exit codes', async () => {
    const e = new MemoryEngine();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-cli-'));
    try {
      fs.writeFileSync(path.join(dir, 'img.tar'), 'x');
      const file = path.join(dir, 'stack.yaml');
      fs.writeFileSync(file, 'stack: demo\nimages:\n  i: { ref: demo/i:1, import: img.tar }\ncontainers:\n  a: { image: i, command: [sleep, "1"], resources: { memory: 16m } }\n');
      const p1 = await berth(e, 'plan', '-f', file, '--detailed-exitcode');
      expect(p1.code).toBe(2);
      expect(p1.out).toContain('+ images.i (demo/i:1) will be created');
      expect(p1.out).toContain('+ containers.a (demo-a) will be created');
      expect(p1.out).toContain('Plan: 2 to create, 0 to update in place, 0 to replace, 0 to delete.');
      const refused = await berth(e, 'apply', '-f', file);
      expect(refused.code).toBe(1);
      expect(refused.err).toContain('stdin is not a terminal; use --auto-approve');
      const a = await berth(e, '--json', 'apply', '-f', file, '--auto-approve');
      expect(a.code).toBe(0);
      expect(JSON.parse(a.out).result.ok).toBe(true);
      expect((await berth(e, 'plan', '-f', file, '--detailed-exitcode')).code).toBe(0);
      fs.writeFileSync(file, 'stack: demo\nimages:\n  i: { ref: demo/i:1, import: img.tar }\ncontainers:\n  a: { image: i, command: [sleep, "2"], resources: { memory: 32m } }\n');
      const p2 = await berth(e, 'plan', '-f', file, '--detailed-exitcode');
      expect(p2.code).toBe(2);
      expect(p2.out).toContain('+/- containers.a (demo-a) must be replaced (create before delete)');
      expect(p2.out).toContain('# command: ["sleep","1"] -> ["sleep","2"] (forces replacement)');
      const j = JSON.parse((await berth(e, '--json', 'plan', '-f', file)).out);
      expect(j.changes).toEqual([{ resource: 'containers.a', name: 'demo-a', action: 'replace', order: 'create-before-delete', reasons: [{ field: 'command', detail: '["sleep","1"] -> ["sleep","2"]', forcesReplacement: true }] }]);
      const ls = await berth(e, 'stack', 'ls');
      expect(ls.out).toMatch(/^demo\s+1\/1 running\s+0\s+0$/m);
      const bad = await berth(e, 'plan', '-f', path.join(dir, 'missing.yaml'));
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/missing\.yaml: no such file or directory/);
      const d = await berth(e, 'destroy', '-f', file, '--auto-approve');
      expect(d.code).toBe(0);
      expect(d.out).toContain('- containers.a (demo-a) will be deleted');
      expect(e.containers.size).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

const runtime = path.join(repoRoot, 'native/build/berth-runtime');
const portFree = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.createServer().once('error', () => resolve(false)).once('listening', () => s.close(() => resolve(true)));
  s.listen(port, '127.0.0.1');
});
const live = process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(runtime) ? 'native/build/berth-runtime is not built' : '';

const waitFor = async (url: string, want: RegExp, ms: number): Promise<string> => {
  const end = Date.now() + ms;
  let last = '';
  while (Date.now() < end) {
    try {
      last = await (await fetch(url)).text();
      if (want.test(last)) return last;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return last;
};

describe.skipIf(live !== '')(`examples on the local engine${live ? ` (skipped: ${live})` : ''}`, () => {
  let dir = '';
  let engine: LocalEngine;
  beforeAll(() => {
    execFileSync(path.join(web, 'make-rootfs.sh'));
    execFileSync(path.join(compose, 'make-rootfs.sh'));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-examples-'));
    engine = openLocalEngine({ root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') }, { runtime });
  });
  afterAll(async () => {
    if (!engine) return;
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
    await openNetworking(engine.roots).purge().catch(() => undefined);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, target, page] of [['web', web, /Hello from a Berth stack/], ['compose', compose, /^orders: 3$/m]] as const) {
    it(`berth apply -f examples/${name} serves its page, a second plan is empty, destroy removes it`, async (ctx) => {
      if (!(await portFree(8080))) ctx.skip(); // the examples publish 127.0.0.1:8080
      // A Compose file applies like `docker compose up -d`: no confirmation asked.
      const a = await berth(engine, 'apply', '-f', target, ...(name === 'web' ? ['--auto-approve'] : []));
      expect(a.err.split('\n').filter((l) => /FAILED|failed|skipped/.test(l))).toEqual([]);
      expect(a.code).toBe(0);
      expect(a.out).toContain('Apply complete');
      expect(await waitFor('http://127.0.0.1:8080/', page, 15_000)).toMatch(page);
      expect((await berth(engine, 'plan', '-f', target, '--detailed-exitcode')).code).toBe(0);
      const ps = await berth(engine, 'stack', 'ps', name === 'web' ? 'web' : 'shop');
      expect(ps.out).toMatch(/running/);
      const d = await berth(engine, 'destroy', '-f', target, '--auto-approve');
      expect(d.code).toBe(0);
      expect(await engine.listContainers({ all: true })).toEqual([]);
      expect(await engine.listVolumes()).toEqual([]);
    }, 120_000);
  }
});
