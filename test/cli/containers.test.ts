// `berth` container and volume verbs as a user runs them: one process per
// command (containers outlive it), Docker's exit codes, a real terminal
// through tmux, and nothing changed by bad input.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer, seedLayer } from '../engine/runtime/helpers.js';
import { openLocalEngine } from '../../engine/local.js';
import { importLayers } from '../../engine/local-images.js';
import { repoRoot } from '../helpers/paths.js';

const bin = path.join(repoRoot, 'test/cli/berth-bin.mjs');
const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const built = fs.existsSync(tsc);
// a private build of the current sources (inside the repo so that packages resolve):
// a concurrent `npm run build` rewriting dist/ cannot break the CLI under test
const privateDist = path.join(repoRoot, 'node_modules/.cache', `berth-test-dist-${process.pid}`);
let dir = '';
let root = '';

interface Out {
  code: number;
  stdout: string;
  stderr: string;
}

const berth = (args: string[], input?: string): Out => {
  const r = spawnSync(process.execPath, [bin, '--root', root, ...args], { encoding: 'utf8', input: input ?? '', timeout: 25_000 });
  return { code: r.status ?? 128 + 9, stdout: r.stdout, stderr: r.stderr };
};
const ok = (args: string[], input?: string): string => {
  const r = berth(args, input);
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};

/** The entry names of an image's top layer, through `berth save` (a docker-archive: manifest.json names each layer's tar). */
const lastLayerNames = (ref: string): string[] => {
  const tar = path.join(dir, `save-${ref.replace(/\W/g, '_')}.tar`);
  ok(['save', '-o', tar, ref]);
  try {
    const manifest = JSON.parse(execFileSync('tar', ['-xOf', tar, 'manifest.json'], { encoding: 'utf8' })) as { Layers: string[] }[];
    const layer = execFileSync('tar', ['-xOf', tar, manifest[0]!.Layers.at(-1)!], { maxBuffer: 64 << 20 });
    return execFileSync('tar', ['-t'], { input: layer, encoding: 'utf8' }).split('\n').filter(Boolean).map((n) => n.replace(/^\.\//, ''));
  } finally {
    fs.rmSync(tar, { force: true });
  }
};

beforeAll(async () => {
  if (!built) return;
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--outDir', privateDist], { stdio: 'pipe' });
  } catch (e) {
    // type errors elsewhere in the tree still emit; a build that emitted nothing is a failure
    if (!fs.existsSync(path.join(privateDist, 'cli/commands/containers.js'))) throw e;
  }
  process.env['BERTH_TEST_DIST'] = privateDist;
  process.env['BERTH_NATIVE_DIR'] = path.join(repoRoot, 'native/build');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-cli-'));
  root = path.join(dir, 'root');
  const e = openLocalEngine({ root, runRoot: path.join(root, 'run') }, { networking: null });
  await importLayers(e.store, [busyboxLayer(dir)], 'busybox:latest', { cmd: ['sh'] });
  await importLayers(e.store, [busyboxLayer(dir), seedLayer(dir)], 'seeded:latest', { cmd: ['sh'], volumes: ['/data'] });
});

afterAll(async () => {
  if (!root) {
    fs.rmSync(privateDist, { recursive: true, force: true });
    return;
  }
  const ids = berth(['ps', '-aq', '--no-trunc']).stdout.split('\n').filter((x) => x !== '');
  if (ids.length > 0) berth(['rm', '-f', '-v', ...ids]);
  for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir)).reverse()) {
    execFileSync('umount', ['-l', m]);
  }
  // in case a test ran a container on the default network: its bridge and nft table go too
  const { openNetworking } = await import('../../engine/network/networking.js');
  await openNetworking({ root, runRoot: path.join(root, 'run') }).purge();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(privateDist, { recursive: true, force: true });
});

const N = ['--network', 'none'];

describe.skipIf(!built)('berth containers (skipped without node_modules/typescript: run `npm ci`)', () => {
  it('run gives the container\'s output and exit code; 125/126/127 as Docker', () => {
    const id = ok(['create', '--network', 'none', 'busybox', 'true']).trim();
    expect(ok(['inspect', '-f', '{{.Spec.NetworkMode}}', id])).toBe('none\n');
    expect(ok(['create', '--net', 'host', 'busybox', 'true']).trim()).toMatch(/^[0-9a-f]{64}$/);
    ok(['rm', id]);
    ok(['rm', ...ok(['ps', '-aq']).trim().split('\n')]);
    expect(berth(['run', '--rm', ...N, 'busybox', 'echo', 'hello'])).toMatchObject({ code: 0, stdout: 'hello\n' });
    const r = berth(['run', '--rm', ...N, 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(r).toMatchObject({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    const nf = berth(['run', '--rm', ...N, 'busybox', 'nosuchcmd']);
    expect(nf.code).toBe(127);
    expect(nf.stderr).toMatch(/executable file not found/);
    expect(berth(['run', '--rm', ...N, 'busybox', '/etc/passwd']).code).toBe(126);
    const img = berth(['run', '--rm', ...N, 'nosuch']);
    expect(img.code).toBe(125);
    expect(img.stderr).toMatch(/image "nosuch:latest" not found/);
    // --rm removed every one of them
    expect(ok(['ps', '-aq'])).toBe('');
  });

  it('bad flag values and a taken name are refused with a clear error and change nothing', () => {
    const bad = berth(['run', ...N, '--memory', 'lots', '--cpus', 'x', '-v', 'rel/path:/x', '--restart', 'sometimes', 'busybox', 'true']);
    expect(bad.code).toBe(125);
    for (const f of ['--memory lots', '--cpus x', '-v rel/path:/x', '--restart sometimes']) expect(bad.stderr).toContain(f);
    expect(ok(['ps', '-aq'])).toBe('');
    ok(['create', '--name', 'dup', ...N, 'busybox', 'true']);
    const dup = berth(['create', '--name', 'dup', ...N, 'busybox', 'true']);
    expect(dup.code).toBe(125);
    expect(dup.stderr).toMatch(/"\/dup".*already in use/);
    expect(ok(['ps', '-aq']).trim().split('\n')).toHaveLength(1);
    ok(['rm', 'dup']);
  });

  it('a detached container outlives the CLI; fresh processes see, exec, log, stop, wait and remove it', () => {
    const id = ok(['run', '-d', '--name', 'bg', ...N, '-e', 'GREETING=hi', 'busybox', 'sh', '-c', 'echo started; echo $GREETING; exec sleep 300']).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(ok(['ps', '--format', '{{.Names}} {{.State}}'])).toBe('bg running\n');
    expect(ok(['ps', '-q'])).toBe(`${id.slice(0, 12)}\n`);
    expect(ok(['inspect', '-f', '{{.State.Status}} {{.Name}}', 'bg'])).toBe('running bg\n');
    expect(berth(['exec', 'bg', 'sh', '-c', 'exit 4']).code).toBe(4);
    expect(ok(['exec', '-u', 'test', '-w', '/home/test', 'bg', 'sh', '-c', 'id -u; pwd'])).toBe('1000\n/home/test\n');
    expect(ok(['logs', 'bg'])).toBe('started\nhi\n');
    expect(ok(['logs', '--tail', '1', 'bg'])).toBe('hi\n');
    expect(ok(['logs', '-t', 'bg'])).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z started\n/);
    expect(ok(['top', 'bg'])).toMatch(/sleep 300/);
    expect(ok(['pause', 'bg'])).toBe('bg\n');
    expect(ok(['ps', '--format', '{{.State}}'])).toBe('paused\n');
    ok(['unpause', 'bg']);
    ok(['update', '--memory', '100m', '--pids-limit', '20', 'bg']);
    expect(fs.readFileSync(`/sys/fs/cgroup/pids/berth/${id}/pids.max`, 'utf8').trim()).toBe('20');
    expect(ok(['--json', 'stats', '--no-stream', 'bg'])).toMatch(/"memoryLimitBytes": 104857600/);
    ok(['rename', 'bg', 'bg2']);
    const waiter = spawn(process.execPath, [bin, '--root', root, 'wait', 'bg2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let waited = '';
    waiter.stdout.on('data', (d: Buffer) => (waited += d.toString()));
    expect(berth(['stop', '-t', '1', 'bg2']).code).toBe(0);
    return new Promise<void>((resolve) => {
      waiter.on('close', () => {
        expect(waited).toBe('137\n');
        expect(ok(['ps', '-a', '--filter', 'name=bg2', '--format', '{{.Status}}'])).toMatch(/^Exited \(137\)/);
        ok(['rm', 'bg2']);
        expect(fs.existsSync(path.join(root, 'containers', id))).toBe(false);
        resolve();
      });
    });
  });

  it('--init forwards the stop signal to the command (143), and reaps', () => {
    ok(['run', '-d', '--init', '--name', 'inited', ...N, 'busybox', 'sleep', '300']);
    expect(ok(['exec', 'inited', 'cat', '/proc/1/cmdline']).split('\0')[0]).toBe('/sbin/berth-init');
    const t0 = Date.now();
    ok(['stop', 'inited']);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(ok(['inspect', '-f', '{{.State.ExitCode}}', 'inited'])).toBe('143\n');
    ok(['rm', 'inited']);
  });

  it('runs on the default bridge network and tears it down at rm', () => {
    const out = ok(['run', '--name', 'bridged', 'busybox', 'sh', '-c', 'ip -4 -o addr show eth0; cat /etc/hostname']);
    expect(out).toMatch(/eth0\s+inet 10\.\d+\.\d+\.\d+\/\d+/);
    const id = ok(['inspect', '-f', '{{.Id}}', 'bridged']).trim();
    expect(out).toContain(id.slice(0, 12));
    expect(ok(['inspect', '-f', '{{json .Networks}}', 'bridged'])).toMatch(/"bridge"/);
    ok(['rm', 'bridged']);
    const netns = path.join(root, 'run/netns');
    expect(fs.existsSync(netns) ? fs.readdirSync(netns).filter((n) => n.includes(id)) : []).toEqual([]);
  });

  it('--network-alias, --ip, --add-host, a -p range, container: sharing; an alias on the default bridge creates nothing', async () => {
    ok(['network', 'create', 'clinet']);
    const [netInfo] = JSON.parse(ok(['network', 'inspect', 'clinet'])) as { spec: { subnet: string } }[];
    const ip = (netInfo as { spec: { subnet: string } }).spec.subnet.replace(/\.0\/24$/, '.77');
    // two consecutive host ports that nothing binds on 127.0.0.1
    const bindable = (port: number): Promise<boolean> =>
      new Promise((resolve) => {
        const s = net.createServer().once('error', () => resolve(false));
        s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
      });
    let hp = 0;
    for (let i = 0; i < 50 && hp === 0; i++) {
      const p = 20000 + Math.floor(Math.random() * 20000);
      if ((await bindable(p)) && (await bindable(p + 1))) hp = p;
    }
    const get = (host: string, port: number): string =>
      `for i in 1 2 3 4 5 6 7 8 9 10; do o=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${host} ${port} | tail -n 1); [ -n "$o" ] && echo "$o" && break; sleep 0.2; done`;
    ok(['run', '-d', '--name', 'cweb', '--network', 'clinet', '--network-alias', 'web', '--ip', ip, '--add-host', 'db.example:10.9.8.7',
      '-p', `127.0.0.1:${hp}-${hp + 1}:8080-8081`, 'busybox', 'sh', '-c',
      'mkdir -p /a /b && echo port-a > /a/index.html && echo port-b > /b/index.html && httpd -p 8080 -h /a && httpd -p 8081 -h /b && exec sleep 300']);
    expect(ok(['port', 'cweb']).trim().split('\n').sort()).toEqual([`8080/tcp -> 127.0.0.1:${hp}`, `8081/tcp -> 127.0.0.1:${hp + 1}`]);
    const host = (port: number): string => execFileSync('busybox', ['sh', '-c', get('127.0.0.1', port)], { encoding: 'utf8', timeout: 15_000 }).trim();
    expect([host(hp), host(hp + 1)]).toEqual(['port-a', 'port-b']);
    expect(ok(['exec', 'cweb', 'cat', '/etc/hosts'])).toMatch(/^10\.9\.8\.7\s+db\.example$/m);
    expect(ok(['run', '--rm', '--network', 'clinet', 'busybox', 'sh', '-c', `${get('web', 8080)}; ${get(ip, 8081)}`])).toBe('port-a\nport-b\n');
    // container:<name>: the same interfaces, and the owner's servers on 127.0.0.1
    expect(ok(['run', '--rm', '--network', 'container:cweb', 'busybox', 'sh', '-c', `ip -4 -o addr show eth0; ${get('127.0.0.1', 8080)}`])).toMatch(new RegExp(` inet ${ip.replace(/\./g, '\\.')}/24 [^]*port-a\n$`));
    const before = ok(['ps', '-aq']);
    const bad = berth(['run', '--network-alias', 'x', 'busybox', 'true']);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toMatch(/aliases are supported only for containers on user-defined networks/);
    expect(berth(['create', '--ip', '10.88.0.9', 'busybox', 'true']).stderr).toMatch(/IP address is supported only on user-defined networks/);
    expect(ok(['ps', '-aq'])).toBe(before);
    ok(['rm', '-f', 'cweb']);
    ok(['network', 'rm', 'clinet']);
  });

  it('attach follows a running container\'s output until it exits, with its code', () => {
    ok(['run', '-d', '--name', 'att', ...N, 'busybox', 'sh', '-c', 'sleep 1; echo late; echo late-err >&2; exit 6']);
    const r = berth(['attach', 'att']);
    expect(r).toMatchObject({ code: 6, stdout: 'late\n', stderr: 'late-err\n' });
    ok(['rm', 'att']);
  });

  it('events streams what other berth processes do', async () => {
    const ev = spawn(process.execPath, [bin, '--root', root, 'events', '--filter', 'type=container', '--format', '{{json .}}'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    ev.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => setTimeout(r, 1500));
    expect(berth(['run', '--rm', '--name', 'evt', ...N, 'busybox', 'sh', '-c', 'exit 4']).code).toBe(4);
    for (let i = 0; i < 50 && !out.includes('"destroy"'); i++) await new Promise((r) => setTimeout(r, 100));
    ev.kill('SIGINT');
    const actions = out.trim().split('\n').map((l) => JSON.parse(l) as { action: string; name: string; exitCode?: number }).filter((e) => e.name === 'evt');
    expect(actions.map((a) => a.action)).toEqual(['create', 'start', 'die', 'destroy']);
    expect(actions.find((a) => a.action === 'die')?.exitCode).toBe(4);
  });

  it('container ls and prune: stopped ones go, running ones stay', () => {
    ok(['create', '--name', 'stopped1', ...N, 'busybox', 'true']);
    ok(['run', '-d', '--name', 'running1', ...N, 'busybox', 'sleep', '300']);
    expect(ok(['container', 'ls', '-a', '--format', '{{.Names}}']).split('\n').sort()).toEqual(['', 'running1', 'stopped1']);
    expect(ok(['container', 'prune', '-f'])).toMatch(/Total: 1/);
    expect(ok(['container', 'ls', '-a', '--format', '{{.Names}}'])).toBe('running1\n');
    ok(['rm', '-f', 'running1']);
  });

  it('container cleanup (what a shim runs when its container exits) takes full IDs only, and is quiet for one already gone', () => {
    const short = berth(['container', 'cleanup', 'abc']);
    expect(short.code).not.toBe(0);
    expect(short.stderr).toMatch(/container cleanup.*"abc": expected a full container ID \(64 hex digits\)/);
    const entries = fs.readdirSync(root).sort();
    expect(ok(['container', 'cleanup', 'f'.repeat(64)])).toBe(`${'f'.repeat(64)}\n`);
    expect(fs.readdirSync(root).sort()).toEqual(entries); // nothing made for it
    // a running container: nothing to do
    const id = ok(['run', '-d', ...N, 'busybox', 'sleep', '300']).trim();
    expect(ok(['container', 'cleanup', id])).toBe(`${id}\n`);
    expect(ok(['inspect', '-f', '{{.State.Status}}', id])).toBe('running\n');
    ok(['rm', '-f', id]);
  });

  it('feeds piped stdin with -i', () => {
    expect(berth(['run', '-i', '--rm', ...N, 'busybox', 'sh', '-c', 'tr a-z A-Z'], 'piped words\n')).toMatchObject({ code: 0, stdout: 'PIPED WORDS\n' });
  });

  it('gives -it a real terminal (driven through tmux)', async () => {
    const session = `berth-test-${process.pid}`;
    const cmd = [process.execPath, bin, '--root', root, 'run', '-it', '--rm', ...N, 'busybox', 'sh'].map((a) => `'${a}'`).join(' ');
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '100', '-y', '30', `${cmd}; echo "exit=$?"; sleep 30`]);
    const capture = (): string => execFileSync('tmux', ['capture-pane', '-p', '-t', session], { encoding: 'utf8' });
    const until = async (re: RegExp): Promise<string> => {
      for (let i = 0; i < 200; i++) {
        const s = capture();
        if (re.test(s)) return s;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`terminal never showed ${re}:\n${capture()}`);
    };
    try {
      await until(/# ?$/m);
      execFileSync('tmux', ['send-keys', '-t', session, 'tty; stty size; echo $((6*7))', 'Enter']);
      const screen = await until(/^42\s*$/m);
      expect(screen).toMatch(/\/dev\/pts\/0/);
      expect(screen).toMatch(/^30 100\s*$/m);
      execFileSync('tmux', ['send-keys', '-t', session, 'exit 3', 'Enter']);
      await until(/exit=3/);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
    }
    // exec -it into a running container
    ok(['run', '-d', '--name', 'ttyd', ...N, 'busybox', 'sleep', '300']);
    const ex = [process.execPath, bin, '--root', root, 'exec', '-it', 'ttyd', 'sh'].map((a) => `'${a}'`).join(' ');
    execFileSync('tmux', ['new-session', '-d', '-s', session, '-x', '90', '-y', '25', `${ex}; echo "exit=$?"; sleep 30`]);
    try {
      await until(/# ?$/m);
      execFileSync('tmux', ['send-keys', '-t', session, 'tty; stty size; exit 5', 'Enter']);
      const screen = await until(/exit=5/);
      expect(screen).toMatch(/\/dev\/pts\/\d+/);
      expect(screen).toMatch(/^25 90\s*$/m);
    } finally {
      spawnSync('tmux', ['kill-session', '-t', session]);
      berth(['rm', '-f', 'ttyd']);
    }
  });

  it("shows the engine's log lines on stderr: warnings and errors by default, everything with --debug", () => {
    // a run on the default bridge logs its network's setup at debug level (engine/network)
    expect(berth(['run', '--rm', 'busybox', 'true'])).toMatchObject({ code: 0, stderr: '' });
    const d = berth(['--debug', 'run', '--rm', 'busybox', 'true']);
    expect(d.code, d.stderr).toBe(0);
    const lines = d.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; networks?: string[] });
    expect(lines).toContainEqual(expect.objectContaining({ level: 20, msg: 'network set up', networks: ['bridge'] }));
  });

  it('cp both ways, diff and export', () => {
    ok(['create', '--name', 'files', ...N, 'busybox', 'sh', '-c', 'echo made > /made.txt; rm /etc/hostname_gone 2>/dev/null; rm /bin/ash']);
    ok(['start', 'files']);
    ok(['wait', 'files']);
    const diff = ok(['diff', 'files']).split('\n').filter(Boolean);
    expect(diff).toEqual(expect.arrayContaining(['A /made.txt', 'C /bin', 'D /bin/ash']));
    // the image has no /etc/hosts or /etc/resolv.conf: the runtime made them, empty, as bind targets (the
    // upper dir holds them and a copy of /etc), which is no change of the container's (docker diff: its init layer)
    expect(diff.filter((l) => l.includes('/etc'))).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'containers', ok(['inspect', '-f', '{{.Id}}', 'files']).trim(), 'upper', 'etc')).sort()).toEqual(['hosts', 'resolv.conf']);
    const hostFile = path.join(dir, 'in.txt');
    fs.writeFileSync(hostFile, 'from host\n');
    ok(['cp', hostFile, 'files:/tmp/']);
    ok(['cp', 'files:/tmp/in.txt', path.join(dir, 'back.txt')]);
    expect(fs.readFileSync(path.join(dir, 'back.txt'), 'utf8')).toBe('from host\n');
    ok(['cp', 'files:/made.txt', path.join(dir, 'made.txt')]);
    expect(fs.readFileSync(path.join(dir, 'made.txt'), 'utf8')).toBe('made\n');
    const tar = path.join(dir, 'export.tar');
    ok(['export', '-o', tar, 'files']);
    const names = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    expect(names).toEqual(expect.arrayContaining(['./made.txt', './tmp/in.txt', './bin/busybox']));
    expect(names).not.toContain('./bin/ash');
    expect(berth(['cp', 'files:/nope', dir]).code).toBe(125);
    // commit: the changes (a new file, a deleted one) become a layer of a new image, without the bind targets
    expect(ok(['commit', '-m', 'snapshot', 'files', 'snap:1']).trim()).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(ok(['run', '--rm', ...N, 'snap:1', 'sh', '-c', 'cat /made.txt /tmp/in.txt; test -e /bin/ash || echo ash-gone'])).toBe('made\nfrom host\nash-gone\n');
    expect(lastLayerNames('snap:1')).toEqual(expect.arrayContaining(['made.txt', 'bin/', 'bin/.wh.ash', 'tmp/in.txt']));
    expect(lastLayerNames('snap:1').filter((n) => n.startsWith('etc'))).toEqual([]);
    // a container that does write in /etc keeps that change, and still not the bind targets
    ok(['run', '--name', 'etcw', ...N, 'busybox', 'sh', '-c', 'echo m > /etc/motd']);
    expect(ok(['diff', 'etcw']).split('\n').filter((l) => l.includes('/etc'))).toEqual(['C /etc', 'A /etc/motd']);
    ok(['commit', 'etcw', 'snap:2']);
    expect(lastLayerNames('snap:2').filter((n) => n.startsWith('etc'))).toEqual(['etc/', 'etc/motd']);
    ok(['rm', 'etcw']);
    ok(['rm', 'files']);
    // no temporary mount left behind
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(dir))).toEqual([]);
  });
});

describe.skipIf(!built)('berth volume', () => {
  it('creates, lists, inspects, refuses to remove in use, prunes', () => {
    expect(ok(['volume', 'create', '-l', 'k=v', 'vol1'])).toBe('vol1\n');
    expect(berth(['volume', 'create', 'vol1']).code).toBe(125);
    expect(berth(['volume', 'create', 'bad/name']).code).toBe(125);
    ok(['run', '--rm', ...N, '-v', 'vol1:/data', 'busybox', 'sh', '-c', 'echo persisted > /data/f']);
    expect(ok(['run', '--rm', ...N, '--mount', 'type=volume,source=vol1,target=/d,readonly', 'busybox', 'cat', '/d/f'])).toBe('persisted\n');
    expect(ok(['volume', 'ls', '-q'])).toBe('vol1\n');
    expect(ok(['volume', 'ls', '-q', '--filter', 'label=k=v'])).toBe('vol1\n');
    expect(ok(['volume', 'inspect', '-f', '{{.Mountpoint}}', 'vol1'])).toBe(`${path.join(root, 'volumes/vol1/_data')}\n`);
    ok(['create', '--name', 'user', ...N, '-v', 'vol1:/data', 'busybox', 'true']);
    const inUse = berth(['volume', 'rm', 'vol1']);
    expect(inUse.code).not.toBe(0);
    expect(inUse.stderr).toMatch(/in use/);
    expect(ok(['volume', 'prune', '-f'])).toMatch(/Total reclaimed space/);
    expect(ok(['volume', 'ls', '-q'])).toBe('vol1\n');
    ok(['rm', 'user']);
    ok(['volume', 'rm', 'vol1']);
    expect(ok(['volume', 'ls', '-q'])).toBe('');
    // the image's VOLUME, copied up into an anonymous volume that rm -v removes
    ok(['run', '--name', 'anon', ...N, 'seeded', 'cat', '/data/seed.txt']);
    expect(ok(['logs', 'anon'])).toBe('from the image\n');
    expect(ok(['volume', 'ls', '-q']).trim()).toMatch(/^[0-9a-f]{64}$/);
    ok(['rm', '-v', 'anon']);
    expect(ok(['volume', 'ls', '-q'])).toBe('');
    ok(['run', '--rm', ...N, '--tmpfs', '/t:size=1m,mode=700', 'busybox', 'sh', '-c', 'grep " /t " /proc/mounts']);
  });
});
