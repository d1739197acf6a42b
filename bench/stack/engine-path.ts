/**
 * The engine's own work for one `berth run --rm busybox true`, in process
 * (no CLI start-up, no imports): create, start (attached, as `run` without
 * -d), wait, rm, N times, with the median of each phase and the CPU of this
 * process per run. bench/containers/ENGINE-PATH.md has the figures.
 *
 * As root from the repository root, after `npx tsc`, `make -C native` and
 * test/fixtures/make-fixtures.sh:
 *   node dist/bench/stack/engine-path.js none 30     # --network none
 *   node dist/bench/stack/engine-path.js bridge 30   # the default bridge
 * ROOT=<dir> reuses a Berth root that has busybox:latest; otherwise a
 * temporary one is made (the fixture rootfs imported) and removed after.
 * BERTH_TRACE=1 prints the phases of start and every helper request.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { importLayers } from '../../engine/local-images.js';
import { openLocalEngine } from '../../engine/local.js';

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const main = async (): Promise<void> => {
  const mode = process.argv[2] ?? 'none';
  const n = Number(process.argv[3] ?? 20);
  const given = process.env['ROOT'];
  const dir = given ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-enginepath-'));
  const root = given ?? path.join(dir!, 'root');
  const engine = openLocalEngine({ root, runRoot: path.join(root, 'run') });
  try {
    if (dir) {
      const tar = path.join(dir, 'busybox.tar');
      execFileSync('tar', ['-C', path.resolve('test/fixtures/build/rootfs'), '--numeric-owner', '-cf', tar, '.']);
      await importLayers(engine.store, [tar], 'busybox:latest', { cmd: ['sh'] });
    }
    const sink = (): Writable => new Writable({ write: (_c, _e, cb) => cb() });
    const t: Record<'create' | 'start' | 'wait' | 'rm' | 'total' | 'cpu', number[]> = { create: [], start: [], wait: [], rm: [], total: [], cpu: [] };
    for (let i = 0; i <= n; i++) {
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const c = await engine.createContainer({ image: 'busybox', command: ['true'], autoRemove: true, networkMode: mode });
      const t1 = performance.now();
      const { session } = await engine.containers.startAttached(c.id, { stdout: sink(), stderr: sink(), tty: false });
      const t2 = performance.now();
      await session.done;
      const { exitCode } = await engine.waitContainer(c.id);
      const t3 = performance.now();
      await engine.removeContainer(c.id, { force: true, volumes: true });
      const t4 = performance.now();
      const cpu = process.cpuUsage(c0);
      if (exitCode !== 0) throw new Error(`busybox true exited ${exitCode}`);
      if (i === 0) continue; // warm-up: the helper's start, first imports of lazy parts
      t.create.push(t1 - t0);
      t.start.push(t2 - t1);
      t.wait.push(t3 - t2);
      t.rm.push(t4 - t3);
      t.total.push(t4 - t0);
      t.cpu.push((cpu.user + cpu.system) / 1000);
    }
    const f = (k: keyof typeof t): string => `${k} ${median(t[k]).toFixed(1)}`;
    process.stdout.write(`run --rm --network ${mode} in process, median of ${n} (ms): ${f('create')}, ${f('start')}, ${f('wait')}, ${f('rm')}, ${f('total')}; this process's ${f('cpu')}; load ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  } finally {
    if (dir) {
      for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.removeContainer(c.id, { force: true }).catch(() => undefined);
      const { openNetworking } = await import('../../engine/network/networking.js');
      await openNetworking(engine.roots).purge().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
};

await main();
