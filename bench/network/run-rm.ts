/**
 * `run --rm busybox true` on the default bridge network (issue 5):
 *   1. Berth vs podman vs docker in one run, each through its own CLI
 *      (hyperfine -N, one CLI process per run, ROUNDS rounds of RUNS runs of
 *      each engine, interleaved by round; medians over all rounds), with
 *      --network none beside it for each engine (what the bridge adds).
 *      Where each engine's bridge lives: test/helpers/peers.ts (docker and
 *      podman inside network namespaces made for them; Berth on the host's).
 *   2. What networking adds inside Berth's engine (in process, no CLI
 *      start-up): create + start + wait + remove, --network none vs bridge.
 * Run with bench/network/run.sh run-rm (needs dist/, native/build and the
 * busybox fixture rootfs from test/fixtures/make-fixtures.sh; hyperfine;
 * podman, skopeo and docker.io for the peers: BENCH_PEERS=0 for Berth alone).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLocalEngine } from '../../engine/local.js';
import { importLayers } from '../../engine/local-images.js';
import { openNetworking } from '../../engine/network/networking.js';
import { peerLeftovers, prepareEngines } from '../../test/helpers/peers.js';

const repo = process.env['BERTH_REPO'] ?? process.cwd();
const rounds = Number(process.env['BENCH_ROUNDS'] ?? 15);
const cliRounds = Number(process.env['ROUNDS'] ?? 5);
const cliRuns = Number(process.env['RUNS'] ?? 6);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-bench-runrm-'));
const roots = { root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const load = (): string => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const lines: string[] = [];
const log = (s: string): void => {
  lines.push(s);
  process.stdout.write(s + '\n');
};

const cliComparison = async (): Promise<void> => {
  const e = await prepareEngines({ repo, ...(process.env['BERTH_DIST'] ? { dist: process.env['BERTH_DIST'] } : {}), dir: path.join(dir, 'cli'), network: 'bridge', runStateOnTmpfs: process.env['BENCH_RUN_STATE'] !== 'disk', podman: process.env['BENCH_PEERS'] !== '0', ...(process.env['BENCH_PEERS'] === '0' ? { docker: [] } : {}) });
  try {
    for (const s of e.skipped) log(`not run: ${s}`);
    log(`image ${e.imageId} in ${e.engines.map((x) => x.name).join(', ')}`);
    const cmds: [string, string][] = [];
    for (const x of e.engines) {
      for (const net of ['bridge', 'none']) {
        // each engine's default network unless none is asked for
        const flags = net === 'none' ? ['--network', 'none'] : [];
        cmds.push([`${x.name} ${net}`, [...x.argv, 'run', '--rm', ...flags, ...x.runFlags, 'busybox', 'true'].join(' ')]);
      }
    }
    // first a run of each (creates the default bridge where an engine makes it on first use)
    for (const [, c] of cmds) {
      const [cmd, ...args] = c.split(' ');
      execFileSync(cmd!, args, { env: e.env, stdio: 'pipe' });
    }
    log(`CLI, hyperfine -N, ${cliRounds} rounds x ${cliRuns} runs of each, interleaved by round; load before ${load()}`);
    const times = new Map<string, number[]>();
    for (let r = 0; r < cliRounds; r++) {
      const json = path.join(dir, `hf-${r}.json`);
      const args = ['-N', '--style', 'none', '--warmup', r === 0 ? '2' : '1', '--runs', String(cliRuns), '--export-json', json];
      for (const [n, c] of cmds) args.push('-n', n, c);
      const res = spawnSync('hyperfine', args, { env: e.env, stdio: ['ignore', 'ignore', 'inherit'] });
      if (res.status !== 0) throw new Error(`hyperfine exited ${res.status} (round ${r + 1})`);
      for (const x of (JSON.parse(fs.readFileSync(json, 'utf8')) as { results: { command: string; times: number[] }[] }).results) {
        times.set(x.command, [...(times.get(x.command) ?? []), ...x.times.map((t) => t * 1000)]);
      }
    }
    log(`load after ${load()}`);
    const med = new Map([...times].map(([k, v]) => [k, median(v)]));
    for (const [k, v] of times) {
      const [name, net] = k.split(' ');
      const ratios = net === 'bridge' ? [...med].filter(([o]) => o !== k && o.endsWith(' bridge')).map(([o, m]) => `${(med.get(k)! / m).toFixed(2)}x ${o.split(' ')[0]}`) : [];
      const extra = net === 'bridge' ? `, bridge adds ${(med.get(k)! - (med.get(`${name} none`) ?? NaN)).toFixed(0)} ms over none` : '';
      log(`  ${k.padEnd(22)} median ${med.get(k)!.toFixed(1)} ms, min ${Math.min(...v).toFixed(1)} ms, n=${v.length}${ratios.length ? ` (${ratios.join(', ')})` : ''}${extra}`);
    }
  } finally {
    await e.cleanup();
    const left = peerLeftovers({ ...e.traces, dirs: [...e.traces.dirs, dir] });
    log(left.length ? `left on the host after cleanup:\n  ${left.join('\n  ')}` : 'after cleanup: nothing left (no peer netns, with the bridges, veths and iptables rules that were in them; no cgroups, mounts or processes of the peers; no Berth bridge)');
  }
};

const inProcess = async (): Promise<void> => {
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
    log(`Berth's engine in process, median of ${rounds}: --network none ${n.toFixed(0)} ms, default bridge ${b.toFixed(0)} ms (networking adds ${(b - n).toFixed(0)} ms); load ${load()}`);
  } finally {
    for (const c of await engine.listContainers({ all: true }).catch(() => [])) await engine.removeContainer(c.id, { force: true }).catch(() => undefined);
    await openNetworking(roots).purge();
  }
};

try {
  log(`run --rm busybox true, default bridge; commit ${execFileSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()}, ${new Date().toISOString()}`);
  if (process.env['BENCH_CLI'] !== '0') await cliComparison();
  if (process.env['BENCH_INPROCESS'] !== '0') await inProcess();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
if (process.env['BENCH_OUT']) fs.writeFileSync(process.env['BENCH_OUT'], lines.join('\n') + '\n');
