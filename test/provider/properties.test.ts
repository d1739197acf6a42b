// Properties of plan/apply over random stacks (fast-check), on the in-memory
// Engine double: convergence, ownership, and edits that stay local.
import fc from 'fast-check';
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { mergeDocuments } from '../../provider/model/load.js';
import { validateStack, type Stack } from '../../provider/model/stack.js';
import { apply } from '../../provider/reconcile/apply.js';
import { planFor } from '../../provider/reconcile/observe.js';
import { isEmpty } from '../../provider/reconcile/plan.js';
import { MemoryEngine } from './memory-engine.js';

type Doc = {
  stack: string;
  networks: Record<string, object>;
  volumes: Record<string, object>;
  containers: Record<string, Record<string, unknown>>;
};

const word = fc.constantFrom('a', 'b', 'sleep', '3600', '-v', 'x y', '');
const containerArb = (i: number, nets: string[], vols: string[], earlier: string[]) =>
  fc.record({
    image: fc.constantFrom('img:1', 'img:2'),
    command: fc.option(fc.array(word, { minLength: 1, maxLength: 3 }), { nil: undefined }),
    env: fc.option(fc.array(fc.constantFrom('A=1', 'B=2', 'C='), { maxLength: 2 }), { nil: undefined }),
    memory: fc.option(fc.constantFrom(16, 32, 64), { nil: undefined }),
    restart: fc.constantFrom('no', 'always', 'on-failure:2'),
    networks: fc.subarray(nets),
    mounts: fc.subarray(vols),
    labels: fc.option(fc.dictionary(fc.constantFrom('tier', 'team'), fc.constantFrom('x', 'y')), { nil: undefined }),
    dependsOn: fc.subarray(earlier),
    port: fc.boolean(),
  }).map((c) => ({
    image: c.image,
    ...(c.command ? { command: c.command } : {}),
    ...(c.env ? { env: c.env } : {}),
    ...(c.memory ? { resources: { memory: `${c.memory}m` } } : {}),
    restart: c.restart,
    networks: c.networks,
    mounts: c.mounts.map((v) => `${v}:/m/${v}`),
    ...(c.labels ? { labels: c.labels } : {}),
    dependsOn: c.dependsOn,
    ...(c.port ? { ports: [`${10000 + i}:80`] } : {}),
  }));

const stackArb: fc.Arbitrary<Doc> = fc
  .record({ nets: fc.subarray(['front', 'back']), vols: fc.subarray(['data', 'logs']), n: fc.integer({ min: 1, max: 5 }) })
  .chain(({ nets, vols, n }) => {
    const keys = Array.from({ length: n }, (_, i) => `c${i}`);
    return fc.tuple(...keys.map((k, i) => containerArb(i, nets, vols, keys.slice(0, i)))).map((cs) => ({
      stack: 'st',
      networks: Object.fromEntries(nets.map((x) => [x, {}])),
      volumes: Object.fromEntries(vols.map((x) => [x, {}])),
      containers: Object.fromEntries(cs.map((c, i) => [keys[i]!, c])),
    }));
  });

const decode = (d: Doc): Stack => {
  const s = mergeDocuments([{ file: '/p/stack.yaml', doc: d }], 'st');
  if (E.isLeft(s)) throw new Error(s.left.join('\n'));
  expect(validateStack(s.right)).toEqual([]);
  return s.right;
};

const freshEngine = async (): Promise<MemoryEngine> => {
  const e = new MemoryEngine();
  await e.importImage('/img1.tar', 'img:1');
  await e.importImage('/img2.tar', 'img:2');
  return e;
};

const converge = async (e: MemoryEngine, s: Stack): Promise<void> => {
  const r = await apply(e, await planFor(e, s, { prune: true }), { backoffMs: 1 });
  expect(r.results.filter((x) => x.status !== 'done')).toEqual([]);
};

describe('plan/apply properties', () => {
  it('after apply, a second plan is empty (from empty and from another stack state)', async () => {
    await fc.assert(fc.asyncProperty(stackArb, stackArb, async (a, b) => {
      const e = await freshEngine();
      await converge(e, decode(a));
      expect(isEmpty(await planFor(e, decode(a), { prune: true }))).toBe(true);
      await converge(e, decode(b));
      const again = await planFor(e, decode(b), { prune: true });
      expect(again.changes.filter((c) => c.action !== 'noop')).toEqual([]);
    }), { numRuns: 60 });
  });

  it('never touches objects the stack does not own', async () => {
    const unownedArb = fc.record({
      containers: fc.integer({ min: 0, max: 3 }), networks: fc.integer({ min: 0, max: 2 }), volumes: fc.integer({ min: 0, max: 2 }),
      otherStack: fc.boolean(),
    });
    await fc.assert(fc.asyncProperty(stackArb, stackArb, unownedArb, async (a, b, u) => {
      const e = await freshEngine();
      const foreignLabels = u.otherStack ? { 'berth.stack': 'other', 'berth.resource': 'container/c0' } : {};
      const ids: string[] = [];
      for (let i = 0; i < u.networks; i++) ids.push((await e.createNetwork({ name: `un${i}`, labels: u.otherStack ? { 'berth.stack': 'other', 'berth.resource': `network/n${i}` } : {} })).id);
      for (let i = 0; i < u.volumes; i++) ids.push((await e.createVolume({ name: `uv${i}`, labels: u.otherStack ? { 'berth.stack': 'other', 'berth.resource': `volume/v${i}` } : {} })).name);
      for (let i = 0; i < u.containers; i++) {
        const c = await e.createContainer({ name: `u${i}`, image: 'img:1', labels: foreignLabels, ...(u.networks > 0 ? { networks: { un0: {} } } : {}) });
        await e.startContainer(c.id);
        ids.push(c.id);
      }
      const names = [...Array.from({ length: u.containers }, (_, i) => `u${i}`), ...Array.from({ length: u.networks }, (_, i) => `un${i}`), ...Array.from({ length: u.volumes }, (_, i) => `uv${i}`)];
      e.calls.length = 0;
      await converge(e, decode(a));
      await converge(e, decode(b));
      const mutating = e.calls.filter((c) => !/^(list|inspect)/.test(c.method));
      for (const c of mutating) {
        for (const n of [...names, ...ids]) expect(c.arg.split(/[ >-]/)).not.toContain(n);
      }
      for (const id of ids) {
        expect(e.containers.has(id) || e.networks.has(id) || e.volumes.has(id)).toBe(true);
      }
      expect([...e.containers.values()].filter((c) => c.name.startsWith('u')).every((c) => c.state.status === 'running')).toBe(true);
    }), { numRuns: 40 });
  });

  it('the plan of a random edit contains exactly that edit', async () => {
    const edits = ['command', 'memory', 'restart', 'label', 'env'] as const;
    await fc.assert(fc.asyncProperty(stackArb, fc.nat(), fc.constantFrom(...edits), async (d, pick, edit) => {
      const e = await freshEngine();
      await converge(e, decode(d));
      const keys = Object.keys(d.containers);
      const key = keys[pick % keys.length]!;
      const c = { ...d.containers[key]! };
      let expected: { action: string; fields: string[] };
      switch (edit) {
        case 'command':
          c['command'] = [...((c['command'] as string[] | undefined) ?? []), 'edited'];
          expected = { action: 'replace', fields: ['command'] };
          break;
        case 'memory': {
          const m = (c['resources'] as { memory: string } | undefined)?.memory;
          c['resources'] = { memory: m === '128m' ? '256m' : '128m' };
          expected = { action: 'update', fields: ['resources.memory'] };
          break;
        }
        case 'restart':
          c['restart'] = c['restart'] === 'unless-stopped' ? 'always' : 'unless-stopped';
          expected = { action: 'update', fields: ['restart'] };
          break;
        case 'label':
          c['labels'] = { ...((c['labels'] as Record<string, string> | undefined) ?? {}), edited: 'yes' };
          expected = { action: 'replace', fields: ['labels'] };
          break;
        case 'env':
          c['env'] = [...((c['env'] as string[] | undefined) ?? []), 'EDITED=1'];
          expected = { action: 'replace', fields: ['env'] };
          break;
      }
      const edited = decode({ ...d, containers: { ...d.containers, [key]: c } });
      const p = await planFor(e, edited, { prune: true });
      const changed = p.changes.filter((x) => x.action !== 'noop');
      expect(changed.map((x) => ({ key: x.key, action: x.action, fields: x.reasons.map((r) => r.field) }))).toEqual([{ key, ...expected }]);
    }), { numRuns: 80 });
  });
});
