/**
 * Pull benchmark: a 200 MB single-layer image and a multi-layer image
 * (8 x 25 MB) of incompressible data, served by Debian's docker-registry on
 * 127.0.0.1, pulled by Berth (download + verify + unpack into layers), by
 * skopeo (download + verify into a dir: or oci: layout, no unpack) and by
 * podman when installed. Each run starts from an empty destination.
 * Berth runs as installed (dist/cli/berth, its V8 start-up snapshot); its
 * roots get the compile cache of an earlier run where the plain entry runs
 * (see warmCache below);
 * every run starts after an untimed `sync` (no dirty data left by the one before)
 * and a pause of BENCH_SETTLE_MS (default 1000),
 * and each round starts with the next tool (no fixed predecessor).
 * Medians and MB/s (compressed bytes / wall time) go to bench/out/images.json
 * and bench/out/images.md, with the registry's own CPU time during each pull
 * (/proc/<pid>/stat): on this 2-core host no pull can take less wall time
 * than (registry CPU + the tool's CPU) / 2.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/images/run.js [runs]
 * With BERTH_BEFORE=/path/to/older/dist/cli/main.js an older build runs too.
 * BENCH_TOOLS=berth,skopeo (substrings of tool names; =name for one exactly) runs only those.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

const runs = Number(process.argv[2] ?? 5);
/** Untimed pause before each run (BENCH_SETTLE_MS, default 1000). */
const settleMs = Number(process.env['BENCH_SETTLE_MS'] ?? 1000);
const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../..');
const berthLauncher = path.join(repoRoot, 'dist/cli/berth');
const outDir = path.join(repoRoot, 'bench/out');

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const tarOf = async (files: Array<{ name: string; data: Buffer }>): Promise<Buffer> => {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const end = new Promise<void>((r) => pack.on('end', () => r()));
  for (const f of files) await new Promise<void>((res, rej) => pack.entry({ name: f.name, size: f.data.length, mode: 0o644 }, f.data, (e) => (e ? rej(e) : res())));
  pack.finalize();
  await end;
  return Buffer.concat(chunks);
};

const layout = async (dir: string, tag: string, layerTars: Buffer[]): Promise<number> => {
  mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  const put = (b: Buffer): string => {
    const d = sha(b);
    writeFileSync(path.join(dir, 'blobs/sha256', d.slice(7)), b);
    return d;
  };
  const gz = layerTars.map((t) => gzipSync(t, { level: 1 }));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layerTars.map(sha) } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
      layers: gz.map((g) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: put(g), size: g.length })),
    }),
  );
  const md = put(manifest);
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: md, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }));
  return gz.reduce((s, g) => s + g.length, 0);
};

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** Wall and CPU (user+sys of the child, from GNU time) seconds of one command. */
const timeIt = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): { wall: number; cpu: number; user: number; sys: number } => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const err = r.stderr?.toString() ?? '';
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${err}`);
  const [u, s] = (err.trim().split('\n').pop() ?? '0 0').split(' ').map(Number);
  return { wall, cpu: (u ?? 0) + (s ?? 0), user: u ?? 0, sys: s ?? 0 };
};

/** CPU seconds (user + system) a process has used: /proc/<pid>/stat fields 14 and 15, in clock ticks (100 per second here). */
const cpuOf = (pid: number | undefined): number => {
  if (pid === undefined) return 0;
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(f[11]) + Number(f[12])) / 100;
};

const main = async (): Promise<void> => {
  if (!have('docker-registry') || !have('skopeo')) throw new Error('needs docker-registry and skopeo (apt-get install docker-registry skopeo)');
  const work = mkdtempSync(path.join(tmpdir(), 'berth-bench-images-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  mkdirSync(path.join(work, 'data'));
  writeFileSync(path.join(work, 'config.yml'), `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${work}/data\nhttp:\n  addr: ${host}\n`);
  const logFd = openSync(path.join(work, 'registry.log'), 'w');
  const reg = spawn('docker-registry', ['serve', path.join(work, 'config.yml')], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  try {
    for (let i = 0; i < 100 && spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]).status !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    const images: Array<{ name: string; bytes: number }> = [];
    const single = await tarOf([{ name: 'blob', data: randomBytes(200 * 1000 * 1000) }]);
    images.push({ name: 'single-200mb', bytes: await layout(path.join(work, 'single'), 'v1', [single]) });
    const multi = [];
    for (let i = 0; i < 8; i++) multi.push(await tarOf([{ name: `layer${i}/blob`, data: randomBytes(25 * 1000 * 1000) }]));
    images.push({ name: 'multi-8x25mb', bytes: await layout(path.join(work, 'multi'), 'v1', multi) });
    for (const im of images) {
      const dir = im.name.startsWith('single') ? 'single' : 'multi';
      execFileSync('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${path.join(work, dir)}:v1`, `docker://${host}/bench/${im.name}:v1`], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    const tools: Array<{ tool: string; env?: NodeJS.ProcessEnv; cmd: (ref: string, dest: string) => [string, string[]] }> = [
      // berth as installed: the launcher that starts Node from the CLI's V8 start-up snapshot (cli/berth.sh)
      { tool: 'berth', cmd: (ref, dest) => [berthLauncher, ['--root', dest, 'pull', '-q', ref]] },
      // the pull waits for the disk before it publishes (the default until deferred durability, engine/store/settle.ts)
      { tool: 'berth (BERTH_DURABLE=sync)', env: { ...process.env, BERTH_DURABLE: 'sync' }, cmd: (ref, dest) => [berthLauncher, ['--root', dest, 'pull', '-q', ref]] },
      { tool: 'berth (BERTH_DURABLE=0)', env: { ...process.env, BERTH_DURABLE: '0' }, cmd: (ref, dest) => [berthLauncher, ['--root', dest, 'pull', '-q', ref]] },
      // blob and large layer files through the page cache (before native/unpack/direct.c)
      { tool: 'berth (BERTH_UNPACK_DIRECT=0)', env: { ...process.env, BERTH_UNPACK_DIRECT: '0' }, cmd: (ref, dest) => [berthLauncher, ['--root', dest, 'pull', '-q', ref]] },
      // the TypeScript unpacker (what runs where native/build/berth-unpack is not built)
      { tool: 'berth (BERTH_NATIVE_UNPACK=0)', env: { ...process.env, BERTH_NATIVE_UNPACK: '0' }, cmd: (ref, dest) => [berthLauncher, ['--root', dest, 'pull', '-q', ref]] },
      // BERTH_BEFORE=<another build's dist/cli/main.js>: the same pull by an older Berth, interleaved (before/after figures)
      ...(process.env['BERTH_BEFORE'] ? [{ tool: 'berth (before)', cmd: (ref: string, dest: string): [string, string[]] => [process.execPath, [process.env['BERTH_BEFORE'] as string, '--root', dest, 'pull', '-q', ref]] }] : []),
      { tool: 'skopeo (dir:)', cmd: (ref, dest) => ['skopeo', ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `dir:${dest}`]] },
      { tool: 'skopeo (oci:)', cmd: (ref, dest) => ['skopeo', ['--insecure-policy', 'copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `oci:${dest}:v1`]] },
    ];
    // podman with its own storage under dest (overlay, like its default), pulling and unpacking like Berth
    if (have('podman')) tools.push({ tool: 'podman', cmd: (ref, dest) => ['podman', ['--root', `${dest}/root`, '--runroot', `${dest}/run`, '--storage-driver', 'overlay', '--events-backend', 'file', 'pull', '-q', '--tls-verify=false', ref]] });
    const only = process.env['BENCH_TOOLS']?.split(',').filter((x) => x !== '');
    if (only) tools.splice(0, tools.length, ...tools.filter((t) => t.tool === 'skopeo (dir:)' || only.some((o) => (o.startsWith('=') ? t.tool === o.slice(1) : t.tool.includes(o)))));
    // Berth keeps Node's compile cache under its root (<root>/.cache/node, cli/startup.ts). Each timed
    // pull starts from an empty image store, but with that cache as any root that has run berth once
    // has it: one untimed pull per Berth variant fills it, and it is copied into each fresh root.
    const warmCache = new Map<string, string>();
    for (const t of tools.filter((x) => x.tool.startsWith('berth'))) {
      const warm = path.join(work, `warm-${t.tool.replace(/\W/g, '')}`);
      const [c, a] = t.cmd(`${host}/bench/${images[0]?.name}:v1`, warm);
      timeIt(c, a, t.env ?? process.env);
      if (existsSync(path.join(warm, '.cache'))) warmCache.set(t.tool, path.join(warm, '.cache'));
    }
    const results: Array<{ image: string; tool: string; runs: number[]; median_s: number; mb_per_s: number; median_cpu_s: number; median_registry_cpu_s: number }> = [];
    for (const im of images) {
      // tools interleaved run by run, so that load from elsewhere on the host hits them alike
      const times = new Map<string, { wall: number[]; cpu: number[]; reg: number[] }>(tools.map((t) => [t.tool, { wall: [], cpu: [], reg: [] }]));
      for (let r = 0; r < runs; r++) {
        // each round starts one tool later, so that no tool always runs right after the same one
        for (const t of [...tools.slice(r % tools.length), ...tools.slice(0, r % tools.length)]) {
          const dest = path.join(work, `dest-${t.tool.replace(/\W/g, '')}`);
          rmSync(dest, { recursive: true, force: true });
          const cache = warmCache.get(t.tool);
          if (cache) cpSync(cache, path.join(dest, '.cache'), { recursive: true });
          // untimed: write back what the previous run left dirty (skopeo and podman do not sync), so that
          // a tool that syncs does not pay for its predecessor's data
          execFileSync('sync');
          // and a pause: the previous run's aftermath (its files freed on a disk mounted with discard,
          // podman's exit) slowed whichever tool came next by up to 1.5x here (CPU time included)
          if (settleMs > 0) execFileSync('sleep', [String(settleMs / 1000)]);
          const [c, a] = t.cmd(`${host}/bench/${im.name}:v1`, dest);
          const reg0 = cpuOf(reg.pid);
          const m = timeIt(c, a, t.env ?? process.env);
          times.get(t.tool)?.reg.push(cpuOf(reg.pid) - reg0);
          times.get(t.tool)?.wall.push(m.wall);
          times.get(t.tool)?.cpu.push(m.cpu);
          // each run on stderr: a slow run shows whether its extra time was the tool's user or system CPU
          process.stderr.write(`  round ${r} ${im.name} ${t.tool}: ${m.wall.toFixed(3)} s, user ${m.user.toFixed(2)} s, sys ${m.sys.toFixed(2)} s\n`);
          rmSync(dest, { recursive: true, force: true });
        }
      }
      for (const t of tools) {
        const w = times.get(t.tool) ?? { wall: [], cpu: [], reg: [] };
        const m = median(w.wall);
        results.push({
          image: im.name, tool: t.tool, runs: w.wall.map((x) => Number(x.toFixed(3))), median_s: Number(m.toFixed(3)), mb_per_s: Number((im.bytes / 1e6 / m).toFixed(1)),
          median_cpu_s: Number(median(w.cpu).toFixed(2)), median_registry_cpu_s: Number(median(w.reg).toFixed(2)),
        });
        process.stderr.write(`${im.name} ${t.tool}: median ${m.toFixed(3)} s, ${(im.bytes / 1e6 / m).toFixed(1)} MB/s, cpu ${median(w.cpu).toFixed(2)} s, registry cpu ${median(w.reg).toFixed(2)} s\n`);
      }
    }
    mkdirSync(outDir, { recursive: true });
    const meta = { date: new Date().toISOString(), runs, podman: have('podman'), images };
    writeFileSync(path.join(outDir, 'images.json'), `${JSON.stringify({ ...meta, results }, null, 2)}\n`);
    const rows = results.map((r) => {
      const sk = results.find((x) => x.image === r.image && x.tool === 'skopeo (dir:)');
      return `| ${r.image} | ${r.tool} | ${r.median_s.toFixed(3)} | ${r.mb_per_s.toFixed(1)} | ${r.median_cpu_s.toFixed(2)} | ${r.median_registry_cpu_s.toFixed(2)} | ${sk ? (sk.median_s / r.median_s).toFixed(2) : '-'} |`;
    });
    const md = [`Pull from docker-registry on 127.0.0.1, ${runs} runs each, tools interleaved, medians (${meta.date}; host load average at start ${loadavg()[0]?.toFixed(1)}).`, '', '| image | tool | median s | MB/s | CPU s (user+sys) | registry CPU s | speed vs skopeo dir: |', '|---|---|---|---|---|---|---|', ...rows, ''].join('\n');
    writeFileSync(path.join(outDir, 'images.md'), md);
    process.stdout.write(md);
  } finally {
    reg.kill('SIGTERM');
    await new Promise((r) => reg.once('exit', r));
    rmSync(work, { recursive: true, force: true });
  }
};

main().catch((e: unknown) => {
  process.stderr.write(`bench/images: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
