// apply -> change -> apply -> destroy of a stack on real containers (the
// local engine, a temporary root), and nothing left behind.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openLocalEngine, type LocalEngine } from '../../engine/local.js';
import { openNetworking } from '../../engine/network/networking.js';
import { loadStack } from '../../provider/model/load.js';
import type { Stack } from '../../provider/model/stack.js';
import { apply } from '../../provider/reconcile/apply.js';
import { planFor } from '../../provider/reconcile/observe.js';
import { isEmpty, type Plan } from '../../provider/reconcile/plan.js';
import { fixtureRootfs } from '../helpers/paths.js';

const runtime = path.resolve('native/build/berth-runtime');
const skip = process.getuid?.() !== 0 ? 'needs root'
  : !fs.existsSync(runtime) ? 'native/build/berth-runtime is not built (make -C native)'
  : !fs.existsSync(path.join(fixtureRootfs, 'bin/busybox')) ? 'fixture rootfs missing (test/fixtures/make-fixtures.sh)'
  : '';

let dir = '';
let engine: LocalEngine;
const port = 20000 + Math.floor(Math.random() * 20000);

const stackYaml = (o: { memory: string; clientCmd: string }) => `
stack: e2e
images:
  bb: { ref: berth.local/e2e/busybox:1, import: rootfs.tar, config: { cmd: [sh] } }
networks:
  front: {}
volumes:
  content: {}
containers:
  init:
    image: bb
    command: [sh, -c, "echo hello from berth > /www/index.html"]
    mounts: ["content:/www"]
    networks: [front]
  web:
    image: bb
    command: [httpd, -f, -p, "80", -h, /www]
    mounts: ["content:/www:ro"]
    ports: ["127.0.0.1:${port}:80"]
    networks: [front]
    resources: { memory: ${o.memory} }
    healthcheck: { test: "wget -q -O /dev/null http://127.0.0.1/", interval: 200ms, retries: 20 }
    dependsOn: { init: { condition: completed } }
  client:
    image: bb
    command: [sh, -c, "${o.clientCmd}"]
    stopTimeout: 1
    networks: [front]
    dependsOn: { web: { condition: healthy } }
`;

const load = (yaml: string): Stack => {
  fs.writeFileSync(path.join(dir, 'stack.yaml'), yaml);
  const s = loadStack(path.join(dir, 'stack.yaml'));
  if (E.isLeft(s)) throw new Error(JSON.stringify(s.left));
  return s.right;
};

const applyOk = async (p: Plan): Promise<void> => {
  const r = await apply(engine, p, { concurrency: 4 });
  const bad = r.results.filter((x) => x.status !== 'done');
  expect(bad.map((x) => `${x.resource} ${x.status} ${x.error ? JSON.stringify(x.error) : ''}`)).toEqual([]);
};

describe.skipIf(skip !== '')(`stack on the local engine${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-stack-'));
    execFileSync('tar', ['-C', fixtureRootfs, '--numeric-owner', '-cf', path.join(dir, 'rootfs.tar'), '.']);
    engine = openLocalEngine({ root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') }, { runtime });
  });

  afterAll(async () => {
    if (!engine) return;
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) {
      await engine.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
    }
    await openNetworking(engine.roots).purge().catch(() => undefined);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('applies, changes in place and by replacement, converges, and destroys without leaks', async () => {
    const v1 = load(stackYaml({ memory: '64m', clientCmd: 'sleep 3600' }));
    const p1 = await planFor(engine, v1);
    expect(p1.conflicts).toEqual([]);
    await applyOk(p1);

    // The page is served from the volume on the published port, and the client reaches web by name.
    const page = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
    expect(page).toBe('hello from berth\n');
    expect((await engine.exec('e2e-client', { command: ['wget', '-q', '-O', '/dev/null', 'http://web/'] })).exitCode).toBe(0);
    expect(isEmpty(await planFor(engine, v1))).toBe(true);

    // A limit changes in place, a command by replacement.
    const v2 = load(stackYaml({ memory: '96m', clientCmd: 'sleep 7200' }));
    const p2 = await planFor(engine, v2);
    expect(p2.changes.filter((c) => c.action !== 'noop').map((c) => `${c.action} ${c.key} ${c.reasons.map((r) => r.field).join(',')}`).sort())
      .toEqual(['replace client command', 'update web resources.memory']);
    const webId = (await engine.inspectContainer('e2e-web')).id;
    await applyOk(p2);
    const web = await engine.inspectContainer('e2e-web');
    expect(web.id).toBe(webId);
    expect(web.spec.resources?.memory).toBe(96 * 1024 * 1024);
    expect((await engine.inspectContainer('e2e-client')).spec.command).toEqual(['sh', '-c', 'sleep 7200']);
    expect(isEmpty(await planFor(engine, v2))).toBe(true);

    // Destroy: everything the stack owns goes, and nothing else was there.
    const d = await planFor(engine, { name: 'e2e', images: {}, networks: {}, volumes: {}, containers: {} }, { prune: true });
    expect(d.changes.map((c) => `${c.action} ${c.kind}s.${c.key}`).sort()).toEqual([
      'delete containers.client', 'delete containers.init', 'delete containers.web', 'delete images.bb', 'delete networks.front', 'delete volumes.content',
    ]);
    await applyOk(d);
    expect(await engine.listContainers({ all: true })).toEqual([]);
    expect((await engine.listNetworks()).filter((n) => n.name.startsWith('e2e'))).toEqual([]);
    expect(await engine.listVolumes()).toEqual([]);
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir));
    expect(mounts).toEqual([]);
  }, 180_000);
});
