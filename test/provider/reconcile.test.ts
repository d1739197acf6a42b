import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as E from 'fp-ts/lib/Either.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { conflict, kernel, type EngineError } from '../../engine/errors.js';
import { mergeDocuments, parseText } from '../../provider/model/load.js';
import type { Stack } from '../../provider/model/stack.js';
import { apply, buildSteps, type ApplyEvent } from '../../provider/reconcile/apply.js';
import { planFor } from '../../provider/reconcile/observe.js';
import { isEmpty, type Change, type Plan } from '../../provider/reconcile/plan.js';
import { MemoryEngine } from './memory-engine.js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-reconcile-'));
  fs.writeFileSync(path.join(dir, 'rootfs.tar'), 'not really a tarball, but hashed like one');
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const load = (yaml: string): Stack => {
  const doc = parseText('stack.yaml', yaml);
  if (E.isLeft(doc)) throw new Error(doc.left.join('\n'));
  const s = mergeDocuments([{ file: path.join(dir, 'stack.yaml'), doc: doc.right }], 'test');
  if (E.isLeft(s)) throw new Error(s.left.join('\n'));
  return s.right;
};

const base = `
stack: shop
images:
  bb: { ref: berth.local/bb:1, import: rootfs.tar }
networks:
  front: {}
volumes:
  data: {}
containers:
  db:
    image: bb
    command: [sleep, "3600"]
    mounts: ["data:/data"]
    networks: [front]
    healthcheck: { test: "test -f /ready", interval: 10ms, retries: 3 }
  app:
    image: bb
    command: [httpd, -f]
    ports: ["8080:80"]
    networks: { front: { aliases: [web] } }
    dependsOn: { db: { condition: healthy } }
    resources: { memory: 64m }
  cache:
    image: bb
    command: [sleep, "3600"]
`;

const nonNoop = (p: Plan): Change[] => p.changes.filter((c) => c.action !== 'noop');
const brief = (p: Plan): string[] => nonNoop(p).map((c) => `${c.action} ${c.kind}s.${c.key}`).sort();
const converge = async (e: MemoryEngine, s: Stack, prune = false) => {
  const p = await planFor(e, s, { prune });
  const r = await apply(e, p, { backoffMs: 1 });
  return { plan: p, result: r };
};

describe('plan and apply from empty', () => {
  it('creates everything in dependency order, and a second plan is empty', async () => {
    const e = new MemoryEngine();
    const s = load(base);
    const p = await planFor(e, s);
    expect(brief(p)).toEqual(['create containers.app', 'create containers.cache', 'create containers.db', 'create images.bb', 'create networks.front', 'create volumes.data']);
    const r = await apply(e, p);
    expect(r.ok).toBe(true);
    const order = e.calls.filter((c) => !c.method.startsWith('list') && !c.method.startsWith('inspect')).map((c) => `${c.method} ${c.arg}`);
    const at = (s: string): number => order.findIndex((x) => x.startsWith(s));
    expect(at('importImage')).toBeLessThan(at('createContainer shop-db'));
    expect(at('createNetwork shop_front')).toBeLessThan(at('createContainer shop-db'));
    expect(at('createVolume shop_data')).toBeLessThan(at('createContainer shop-db'));
    // app waits for db to be healthy (checked by Berth through exec: this engine reports no health).
    expect(at('exec shop-db')).toBeGreaterThan(at('startContainer shop-db'));
    expect(at('createContainer shop-app')).toBeGreaterThan(at('exec shop-db'));
    expect(r.results.find((x) => x.resource === 'containers.db')!.steps).toContain('health: shop-db healthy (checked by Berth: the engine reports no health state)');
    const again = await planFor(e, s);
    expect(isEmpty(again)).toBe(true);
    // The engine filled defaults (cpuShares, memorySwap, env from the image): no difference for them.
    expect(e.containers.size).toBe(3);
  });

  it('labels every object with its stack, resource and spec hash', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const app = [...e.containers.values()].find((c) => c.name === 'shop-app')!;
    expect(app.spec.labels).toMatchObject({ 'berth.stack': 'shop', 'berth.resource': 'container/app', 'berth.depends-on': 'db' });
    expect(app.spec.labels!['berth.spec-hash']).toMatch(/^[0-9a-f]{24}$/);
    expect(app.networks['shop_front']!.aliases).toEqual(expect.arrayContaining(['app', 'web']));
    expect([...e.networks.values()][0]!.spec.labels).toMatchObject({ 'berth.stack': 'shop', 'berth.resource': 'network/front' });
    expect(e.volumes.get('shop_data')!.spec.labels).toMatchObject({ 'berth.resource': 'volume/data' });
    expect(e.images.get(e.tags.get('berth.local/bb:1')!)!.labels).toMatchObject({ 'berth.resource': 'image/bb' });
  });
});

describe('diff rules', () => {
  it('updates limits and restart policy in place, and says why', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const edited = load(base.replace('resources: { memory: 64m }', 'resources: { memory: 128m, cpus: 0.5 }\n    restart: always'));
    const p = await planFor(e, edited);
    const ch = nonNoop(p);
    expect(ch).toHaveLength(1);
    expect(ch[0]).toMatchObject({ kind: 'container', key: 'app', action: 'update' });
    expect(ch[0]!.reasons.map((r) => `${r.field}: ${r.detail}`)).toEqual([
      'resources.memory: 67108864 -> 134217728', 'resources.cpus: (unset) -> 0.5', 'restart: no -> always',
    ]);
    const r = await apply(e, p);
    expect(r.results[0]!.steps).toEqual(['updated limits and restart policy in place']);
    expect(e.calls.some((c) => c.method === 'createContainer' && c.arg === 'shop-app' && e.calls.indexOf(c) > e.calls.findIndex((x) => x.method === 'updateContainer'))).toBe(false);
    expect(isEmpty(await planFor(e, edited))).toBe(true);
    // Removing a limit clears it in place.
    const back = load(base.replace('resources: { memory: 64m }', 'restart: always'));
    const p2 = await planFor(e, back);
    expect(nonNoop(p2).map((c) => c.reasons.map((r) => r.field))).toEqual([['resources.memory', 'resources.cpus']]);
    await apply(e, p2);
    expect(isEmpty(await planFor(e, back))).toBe(true);
  });

  it('connects and disconnects networks in place', async () => {
    const e = new MemoryEngine();
    const two = base.replace('networks:\n  front: {}', 'networks:\n  front: {}\n  back: {}');
    await converge(e, load(two));
    const moved = load(two.replace('networks: [front]\n    healthcheck', 'networks: [back]\n    healthcheck'));
    const p = await planFor(e, moved);
    expect(nonNoop(p).map((c) => [c.key, c.action, c.reasons.map((r) => `${r.field} ${r.detail}`)])).toEqual([
      ['db', 'update', ['networks.shop_back connect', 'networks.shop_front disconnect']],
    ]);
    await apply(e, p);
    expect(isEmpty(await planFor(e, moved))).toBe(true);
  });

  it('replaces on a command change, create-before-delete when no host port is fixed', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const old = [...e.containers.values()].find((c) => c.name === 'shop-cache')!.id;
    const edited = load(base.replace(/cache:\n    image: bb\n    command: \[sleep, "3600"\]/, 'cache:\n    image: bb\n    command: [sleep, "7200"]'));
    const p = await planFor(e, edited);
    const ch = nonNoop(p);
    expect(ch.map((c) => [c.key, c.action, c.order])).toEqual([['cache', 'replace', 'create-before-delete']]);
    expect(ch[0]!.reasons).toEqual([{ field: 'command', detail: '["sleep","3600"] -> ["sleep","7200"]', forcesReplacement: true }]);
    e.calls.length = 0;
    const r = await apply(e, p);
    expect(r.ok).toBe(true);
    const seq = e.calls.filter((c) => ['createContainer', 'startContainer', 'removeContainer', 'renameContainer'].includes(c.method)).map((c) => c.method);
    expect(seq).toEqual(['createContainer', 'startContainer', 'removeContainer', 'renameContainer']);
    const now = [...e.containers.values()].filter((c) => c.name.startsWith('shop-cache'));
    expect(now.map((c) => c.name)).toEqual(['shop-cache']);
    expect(now[0]!.id).not.toBe(old);
    expect(isEmpty(await planFor(e, edited))).toBe(true);
  });

  it('replaces delete-before-create when a host port is fixed', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const edited = load(base.replace('command: [httpd, -f]', 'command: [httpd, -f, -v]'));
    const p = await planFor(e, edited);
    expect(nonNoop(p).map((c) => [c.key, c.action, c.order])).toEqual([['app', 'replace', 'delete-before-create']]);
    e.calls.length = 0;
    expect((await apply(e, p)).ok).toBe(true);
    const seq = e.calls.filter((c) => ['createContainer', 'removeContainer'].includes(c.method)).map((c) => c.method);
    expect(seq).toEqual(['removeContainer', 'createContainer']);
  });

  it('replaces a container whose labels change, saying the engine cannot relabel in place', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const p = await planFor(e, load(base.replace('resources: { memory: 64m }', 'resources: { memory: 64m }\n    labels: { tier: web }')));
    expect(nonNoop(p)[0]!.reasons).toEqual([{ field: 'labels', detail: '(unset) -> {"tier":"web"} (the engine cannot relabel a container in place)', forcesReplacement: true }]);
  });

  it('reports a moved tag with both image IDs, and replaces the containers on it', async () => {
    const e = new MemoryEngine();
    e.registry.set('busybox:1.36', { cmd: ['sh'] });
    const s = load('stack: t\ncontainers:\n  a: { image: "busybox:1.36" }\n');
    await e.pullImage('busybox:1.36');
    await converge(e, s);
    const before = e.tags.get('busybox:1.36')!;
    e.registry.set('busybox:1.36', { cmd: ['sh', '-l'] });
    await e.pullImage('busybox:1.36');
    const after = e.tags.get('busybox:1.36')!;
    const p = await planFor(e, s);
    expect(nonNoop(p).map((c) => c.reasons.map((r) => `${r.field}: ${r.detail}`))).toEqual([[`image: busybox:1.36 moved from ${before.slice(0, 19)}.. to ${after.slice(0, 19)}..`]]);
  });

  it('re-imports an image whose tarball changed and replaces its containers', async () => {
    const e = new MemoryEngine();
    const s = load(base);
    await converge(e, s);
    fs.writeFileSync(path.join(dir, 'rootfs.tar'), 'new contents');
    try {
      const p = await planFor(e, s);
      expect(brief(p)).toEqual(['replace containers.app', 'replace containers.cache', 'replace containers.db', 'replace images.bb']);
      expect(nonNoop(p).find((c) => c.key === 'db')!.reasons[0]!.detail).toBe('image berth.local/bb:1 is re-imported');
      expect((await apply(e, p, { backoffMs: 1 })).ok).toBe(true);
      expect(isEmpty(await planFor(e, s))).toBe(true);
    } finally {
      fs.writeFileSync(path.join(dir, 'rootfs.tar'), 'not really a tarball, but hashed like one');
    }
  });

  it('replaces a container whose network mode changes', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const p = await planFor(e, load(base.replace(/cache:\n    image: bb\n/, 'cache:\n    image: bb\n    networkMode: none\n')));
    expect(nonNoop(p).map((c) => [c.key, c.action, c.reasons.map((r) => `${r.field}: ${r.detail}`)])).toEqual([
      ['cache', 'replace', ['defaultNetwork: true -> (unset)', 'networkMode: (unset) -> "none"']],
    ]);
    await apply(e, p);
    expect([...e.containers.values()].find((c) => c.name === 'shop-cache')!.spec.networkMode).toBe('none');
  });

  it('starts a declared container that has stopped', async () => {
    const e = new MemoryEngine();
    const s = load(base);
    await converge(e, s);
    await e.stopContainer('shop-cache');
    const p = await planFor(e, s);
    expect(nonNoop(p).map((c) => [c.key, c.action, c.reasons[0]!.detail])).toEqual([['cache', 'update', 'exited (exit code 137) -> running']]);
    await apply(e, p);
    expect(isEmpty(await planFor(e, s))).toBe(true);
  });
});

describe('ownership and prune', () => {
  it('refuses to apply when an object it does not own is in the way, and changes nothing', async () => {
    const e = new MemoryEngine();
    await e.importImage('/x', 'berth.local/other:1');
    await e.createContainer({ name: 'shop-cache', image: 'berth.local/other:1' });
    await e.createNetwork({ name: 'shop_front', labels: { 'berth.stack': 'another', 'berth.resource': 'network/front' } });
    const p = await planFor(e, load(base));
    expect(p.conflicts).toEqual([
      'network shop_front exists and belongs to stack "another"; remove or rename it',
      'container shop-cache exists and belongs to no Berth stack; remove or rename it',
    ]);
    const calls = e.calls.length;
    await expect(apply(e, p)).rejects.toThrow(/objects in the way that the stack does not own/);
    expect(e.calls.length).toBe(calls);
  });

  it('lists undeclared owned objects as orphans, deletes them only with prune, dependents first', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    await e.importImage('/x', 'berth.local/other:1');
    await e.createContainer({ name: 'outsider', image: 'berth.local/other:1', networks: {} });
    const empty = load('stack: shop\n');
    const p = await planFor(e, empty);
    expect(nonNoop(p)).toEqual([]);
    expect(p.orphans.map((c) => `${c.kind}s.${c.key}`).sort()).toEqual(['containers.app', 'containers.cache', 'containers.db', 'images.bb', 'networks.front', 'volumes.data']);
    e.calls.length = 0;
    const { plan: pp, result } = await converge(e, empty, true);
    expect(brief(pp)).toEqual(['delete containers.app', 'delete containers.cache', 'delete containers.db', 'delete images.bb', 'delete networks.front', 'delete volumes.data']);
    expect(result.ok).toBe(true);
    const removes = e.calls.filter((c) => c.method.startsWith('remove')).map((c) => c.method);
    expect(removes.lastIndexOf('removeContainer')).toBeLessThan(removes.indexOf('removeNetwork'));
    expect(removes.lastIndexOf('removeContainer')).toBeLessThan(removes.indexOf('removeVolume'));
    // app depends on db: it goes first.
    const rc = e.calls.filter((c) => c.method === 'stopContainer').map((c) => c.arg);
    const id = (n: string) => [...e.calls].find((c) => c.method === 'stopContainer' && c.arg === n);
    expect(rc.length).toBe(3);
    void id;
    expect([...e.containers.values()].map((c) => c.name)).toEqual(['outsider']);
    expect([...e.tags.keys()]).toEqual(['berth.local/other:1']);
  });

  it('refuses to plan when an image source file is missing, before anything changes', async () => {
    const e = new MemoryEngine();
    const s = load(base.replace('import: rootfs.tar', 'import: missing.tar'));
    await expect(planFor(e, s)).rejects.toMatchObject({ error: { _tag: 'InvalidSpec', problems: [`stack.yaml: images.bb: cannot read ${path.join(dir, 'missing.tar')}: ENOENT`] } });
    expect(e.calls).toEqual([]);
  });

  it('renames back a container whose replace stopped before its rename', async () => {
    const e = new MemoryEngine();
    const s = load(base);
    await converge(e, s);
    await e.renameContainer('shop-cache', 'shop-cache-next-x');
    const p = await planFor(e, s);
    expect(nonNoop(p).map((c) => [c.action, c.key, c.reasons.map((r) => `${r.field}: ${r.detail}`)])).toEqual([['update', 'cache', ['name: shop-cache-next-x -> shop-cache']]]);
    await apply(e, p);
    expect(isEmpty(await planFor(e, s))).toBe(true);
  });

  it('deletes a second container left for a resource by an interrupted replace', async () => {
    const e = new MemoryEngine();
    const s = load(base);
    await converge(e, s);
    const cache = [...e.containers.values()].find((c) => c.name === 'shop-cache')!;
    await e.createContainer({ ...cache.spec, name: 'shop-cache-next-x' });
    const p = await planFor(e, s);
    expect(nonNoop(p).map((c) => [c.action, c.name, c.reasons[0]!.detail])).toEqual([['delete', 'shop-cache-next-x', 'a second container for cache (left by an interrupted apply)']]);
  });
});

describe('apply', () => {
  it('stops only the dependents of a failed step and says exactly what was done', async () => {
    const e = new MemoryEngine();
    e.failNext('createContainer', conflict('container', 'shop-db', 'no space left for the rootfs'), 1, 'shop-db');
    const events: ApplyEvent[] = [];
    const p = await planFor(e, load(base));
    const r = await apply(e, p, { onEvent: (ev) => events.push(ev) });
    expect(r.ok).toBe(false);
    const st = Object.fromEntries(r.results.map((x) => [x.resource, x.status]));
    expect(st).toEqual({ 'images.bb': 'done', 'networks.front': 'done', 'volumes.data': 'done', 'containers.db': 'failed', 'containers.app': 'skipped', 'containers.cache': 'done' });
    expect(r.results.find((x) => x.resource === 'containers.app')!.because).toBe('containers.db');
    expect(r.results.find((x) => x.resource === 'containers.db')!.error).toMatchObject({ _tag: 'Conflict', reason: 'no space left for the rootfs' });
    expect(events.filter((x) => x.phase === 'skipped').map((x) => x.resource)).toEqual(['containers.app']);
    // The next pass finishes the job.
    const { result } = await converge(e, load(base));
    expect(result.ok).toBe(true);
    expect(isEmpty(await planFor(e, load(base)))).toBe(true);
  });

  it('retries transient failures with backoff and reports the retries', async () => {
    const e = new MemoryEngine();
    const busy: EngineError = kernel(Object.assign(new Error('busy'), { code: 'EBUSY', syscall: 'mount' }) as NodeJS.ErrnoException);
    e.failNext('startContainer', busy, 2, 'shop-cache');
    const events: ApplyEvent[] = [];
    const r = await apply(e, await planFor(e, load(base)), { backoffMs: 1, onEvent: (ev) => events.push(ev) });
    expect(r.ok).toBe(true);
    expect(events.filter((x) => x.phase === 'retry').map((x) => `${x.resource} ${x.message!.replace(/in \d+ ms/, '')}`)).toEqual([
      'containers.cache start: Kernel, attempt 2/4 ', 'containers.cache start: Kernel, attempt 3/4 ',
    ]);
  });

  it('does not retry what is not transient, and fails on a healthcheck that never passes', async () => {
    const e = new MemoryEngine();
    e.health.set('shop-db', () => 1);
    const r = await apply(e, await planFor(e, load(base)), { backoffMs: 1, healthTimeoutMs: 200 });
    const db = r.results.find((x) => x.resource === 'containers.db')!;
    expect(db.status).toBe('failed');
    expect(db.error).toMatchObject({ _tag: 'Conflict', name: 'shop-db' });
    expect(r.results.find((x) => x.resource === 'containers.app')!.status).toBe('skipped');
  });

  it('uses the health state when the engine reports one', async () => {
    const e = new MemoryEngine();
    e.reportsHealth = true;
    const r = await apply(e, await planFor(e, load(base)));
    expect(r.results.find((x) => x.resource === 'containers.db')!.steps).toContain('health: shop-db healthy');
    expect(e.calls.some((c) => c.method === 'exec')).toBe(false);
  });

  it('keeps parallelism within the bound', async () => {
    const e = new MemoryEngine();
    e.delayMs = 3;
    const many = `stack: many\ncontainers:\n${Array.from({ length: 20 }, (_, i) => `  c${i}: { image: x }\n`).join('')}`;
    await e.importImage('/x', 'x');
    const p = await planFor(e, load(many));
    e.maxInFlight = 0;
    const r = await apply(e, p, { concurrency: 3 });
    expect(r.ok).toBe(true);
    expect(e.maxInFlight).toBeLessThanOrEqual(3);
    expect(e.maxInFlight).toBeGreaterThan(1);
  });

  it('removes containers in a pool of their own, larger than the bound on creates, and bounded too', async () => {
    const e = new MemoryEngine();
    e.delayMs = 3;
    const many = `stack: many\ncontainers:\n${Array.from({ length: 20 }, (_, i) => `  c${i}: { image: x }\n`).join('')}`;
    await e.importImage('/x', 'x');
    await converge(e, load(many));
    const gone = await planFor(e, load('stack: many\n'), { prune: true });
    e.maxInFlight = 0;
    const r = await apply(e, gone, { concurrency: 2, removeConcurrency: 6 });
    expect(r.ok).toBe(true);
    expect((await e.listContainers({ all: true })).length).toBe(0);
    // stops and removes are mostly waiting: more of them in flight than `concurrency`, never more than removeConcurrency
    expect(e.maxInFlight).toBeGreaterThan(2);
    expect(e.maxInFlight).toBeLessThanOrEqual(6);
  });

  it('orders a network replacement around the containers on it', async () => {
    const e = new MemoryEngine();
    await converge(e, load(base));
    const p = await planFor(e, load(base.replace('front: {}', 'front: { subnet: 10.99.0.0/24 }')));
    expect(brief(p)).toEqual(['replace containers.app', 'replace containers.db', 'replace networks.front']);
    expect(nonNoop(p).find((c) => c.kind === 'network')!.reasons[0]!.detail).toBe('(unset) -> "10.99.0.0/24"');
    const steps = buildSteps(p);
    expect([...steps.get('down:network/front')!.deps].sort()).toEqual(['down:container/app', 'down:container/db']);
    expect(steps.get('up:container/db')!.deps.has('up:network/front')).toBe(true);
    const r = await apply(e, p);
    expect(r.ok).toBe(true);
  });

  it('pulls, loads and refuses to build images, saying why', async () => {
    const e = new MemoryEngine();
    e.registry.set('reg/app:1', { cmd: ['sh'] });
    fs.writeFileSync(path.join(dir, 'archive.tar'), 'an image archive');
    // a build context that exists (planning digests it; a missing one is a plan error)
    fs.mkdirSync(path.join(dir, 'ctx'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'ctx', 'Dockerfile'), 'FROM scratch\n');
    const s = load(`
stack: imgs
images:
  pulled: { ref: reg/app:1, pull: always }
  loaded: { ref: loaded/archive.tar:latest, archive: archive.tar }
  built: { ref: local/built:1, build: ./ctx }
containers:
  a: { image: pulled }
  b: { image: loaded }
  c: { image: built }
`);
    const p = await planFor(e, s);
    expect(nonNoop(p).map((c) => `${c.action} ${c.kind}s.${c.key}: ${c.reasons[0]?.detail ?? ''}`).sort()).toEqual([
      'create containers.a: ', 'create containers.b: ', 'create containers.c: ',
      'create images.built: local/built:1 is not present; it will be built',
      'create images.loaded: loaded/archive.tar:latest is not present; it will be loaded',
      'create images.pulled: reg/app:1 is not present; it will be pulled',
    ]);
    const r = await apply(e, p);
    const st = Object.fromEntries(r.results.map((x) => [x.resource, x.status]));
    expect(st).toEqual({ 'images.pulled': 'done', 'images.loaded': 'done', 'images.built': 'failed', 'containers.a': 'done', 'containers.b': 'done', 'containers.c': 'skipped' });
    expect(r.results.find((x) => x.resource === 'images.built')!.error).toMatchObject({ _tag: 'Unsupported' });
    // pull: always re-resolves the tag on every apply.
    const again = await planFor(e, s);
    expect(nonNoop(again).filter((c) => c.kind === 'image').map((c) => [c.key, c.action, c.reasons[0]!.field])).toEqual([['pulled', 'update', 'pull'], ['built', 'create', 'image']]);
  });
});
