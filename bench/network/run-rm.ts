/**
 * What networking adds to `berth run --rm busybox true`: the local engine's
 * create + start + wait + remove of a busybox container, in process (no CLI
 * start-up), with --network none and on the default bridge, alternating.
 * Run with bench/network/run.sh run-rm (needs native/build and the busybox
 * fixture rootfs from test/fixtures/make-fixtures.sh).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLocalEngine } from '../../engine/local.js';
import { importLayers } from '../../engine/local-images.js';
import { openNetworking } from '../../engine/network/networking.js';

const repo = process.env['BERTH_REPO'] ?? process.cwd();
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 15);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-runrm-'));
const roots = { root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const main = async (): Promise<void> => {
  const engine = openLocalEngine(roots);
  try {
    const tar = path.join(dir, 'busybox.tar');
    execFileSync('tar', ['-C', path.join(repo, 'test/fixtures/build/rootfs'), '--numeric-owner', '-cf', tar, '.']);
    await importLayers(engine.store, [tar], 'busybox:latest', { cmd: ['sh'] });
    const once = async (networkMode: string): Promise<number> => {
      const t = performance.now();
      const c = await engine.createContainer({ image: 'busybox', command: ['true'], networkMode });
      await engine.startContainer(c.id);
      const { exitCode } = await engine.waitContainer(c.id);
      await engine.removeContainer(c.id, { force: true });
      if (exitCode !== 0) throw new Error(`true exited ${exitCode}`);
      return performance.now() - t;
    };
    await once('none');
    await once('bridge'); // creates the default bridge: not counted
    const times: Record<string, number[]> = { none: [], bridge: [] };
    for (let i = 0; i < rounds; i++) for (const m of ['none', 'bridge']) times[m]!.push(await once(m));
    const n = median(times['none']!);
    const b = median(times['bridge']!);
    process.stdout.write(`run --rm busybox true (engine in process), median of ${rounds}: --network none ${n.toFixed(0)} ms, default bridge ${b.toFixed(0)} ms (networking adds ${(b - n).toFixed(0)} ms)\n`);
  } finally {
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.removeContainer(c.id, { force: true }).catch(() => undefined);
    await openNetworking(roots).purge();
    fs.rmSync(dir, { recursive: true, force: true });
  }
};

await main();
