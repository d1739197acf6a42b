// `berth apply` of a Compose file whose service has `build:`, end to end on
// the local engine: the image is built (through Engine.buildImage) and
// owned by the stack, a second plan is empty, a changed context rebuilds
// the image and replaces the container, destroy removes both, and nothing
// is left behind.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importLayers } from '../../engine/local-images.js';
import { openLocalEngine, type LocalEngine } from '../../engine/local.js';
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

const compose = `
name: bld
services:
  app:
    build:
      context: ./app
      args: { GREETING: hi }
    network_mode: none
    restart: "no"
`;

const load = (): Stack => {
  const s = loadStack(path.join(dir, 'compose.yaml'));
  if (E.isLeft(s)) throw new Error(JSON.stringify(s.left));
  return s.right;
};

const applyOk = async (p: Plan): Promise<void> => {
  const r = await apply(engine, p, { concurrency: 2 });
  expect(r.results.filter((x) => x.status !== 'done').map((x) => `${x.resource} ${x.status} ${x.error ? JSON.stringify(x.error) : ''}`)).toEqual([]);
};

const output = async (name: string): Promise<string> => {
  await engine.waitContainer(name);
  let out = '';
  for await (const l of engine.logs(name)) out += l.text;
  return out;
};

describe.skipIf(skip !== '')(`apply of a Compose build${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-build-apply-'));
    execFileSync('tar', ['-C', fixtureRootfs, '--numeric-owner', '-cf', path.join(dir, 'rootfs.tar'), '.']);
    engine = openLocalEngine({ root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') }, { runtime, networking: null });
    await importLayers(engine.store, [path.join(dir, 'rootfs.tar')], 'busybox:latest', { cmd: ['sh'] });
    fs.mkdirSync(path.join(dir, 'app'));
    fs.writeFileSync(path.join(dir, 'app/Dockerfile'), 'FROM busybox\nARG GREETING\nCOPY msg.txt /msg.txt\nRUN echo "$GREETING" > /greeting\nCMD cat /greeting /msg.txt\n');
    fs.writeFileSync(path.join(dir, 'app/msg.txt'), 'one\n');
    fs.writeFileSync(path.join(dir, 'compose.yaml'), compose);
  });

  afterAll(async () => {
    if (!engine) return;
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) {
      await engine.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
    }
    const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir));
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('builds the image, owns it, plans nothing more, rebuilds on a changed context, and destroys it', async () => {
    const stack = load();
    const img = stack.images['app-build'];
    expect(img).toMatchObject({ kind: 'build', context: path.join(dir, 'app'), args: { GREETING: 'hi' } });

    const p1 = await planFor(engine, stack);
    expect(p1.conflicts).toEqual([]);
    expect(p1.changes.map((c) => `${c.action} ${c.kind}s.${c.key}`).sort()).toEqual(['create containers.app', 'create images.app-build']);
    await applyOk(p1);
    const built = await engine.inspectImage(img!.ref);
    expect(built.labels).toMatchObject({ 'berth.stack': 'bld', 'berth.resource': 'image/app-build' });
    expect(await output('bld-app')).toBe('hi\none\n');

    // unchanged context: nothing to do (planFor hashes the context's files, as the CLI does)
    expect(isEmpty(await planFor(engine, stack))).toBe(true);
    const stable = await engine.inspectImage(img!.ref);

    // a changed file in the context: the image is rebuilt (the cache keeps the steps before the COPY) and its container replaced
    fs.writeFileSync(path.join(dir, 'app/msg.txt'), 'two\n');
    const p3 = await planFor(engine, stack);
    expect(p3.changes.filter((c) => c.action !== 'noop').map((c) => `${c.action} ${c.kind}s.${c.key} ${c.reasons.map((r) => r.field).join(',')}`).sort())
      .toEqual(['replace containers.app image', 'replace images.app-build build']);
    expect(p3.changes.find((c) => c.kind === 'image')?.reasons[0]?.detail).toMatch(/the build context .*app, its Dockerfile or build args changed/);
    await applyOk(p3);
    expect((await engine.inspectImage(img!.ref)).id).not.toBe(stable.id);
    expect(await output('bld-app')).toBe('hi\ntwo\n');
    expect(isEmpty(await planFor(engine, stack))).toBe(true);

    // destroy: the container and the built image go
    const d = await planFor(engine, { ...stack, images: {}, containers: {}, networks: {}, volumes: {} }, { prune: true });
    expect(d.changes.map((c) => `${c.action} ${c.kind}s.${c.key}`).sort()).toEqual(['delete containers.app', 'delete images.app-build']);
    await applyOk(d);
    expect(await engine.listContainers({ all: true })).toEqual([]);
    await expect(engine.inspectImage(img!.ref)).rejects.toThrow(/not found/);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'root/build/tmp'))).toEqual([]);
  }, 180_000);

  it('refuses to plan a build whose Dockerfile is missing, naming the image and the file, and changes nothing', async () => {
    fs.renameSync(path.join(dir, 'app/Dockerfile'), path.join(dir, 'app/Dockerfile.moved'));
    try {
      const before = await engine.listImages();
      await expect(planFor(engine, load())).rejects.toThrow(/images\.app-build\.build: .*cannot read the Dockerfile .*app\/Dockerfile: ENOENT/);
      expect(await engine.listImages()).toEqual(before);
      expect(await engine.listContainers({ all: true })).toEqual([]);
    } finally {
      fs.renameSync(path.join(dir, 'app/Dockerfile.moved'), path.join(dir, 'app/Dockerfile'));
    }
  });
});
