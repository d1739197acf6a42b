// `berth` from its V8 start-up snapshot (cli/snapshot.ts, made by
// scripts/build-snapshot.mjs, started by the launcher cli/berth.sh): the
// same output, exit codes and errors as the plain entry (node cli/main.js),
// a real container run, the single executable (berth-node) first and the
// blob when it is missing, and the plain entry whenever neither fits the
// run (missing, stale, made by another node, NODE_OPTIONS, an environment
// variable a snapshotted module read while it was evaluated).
//
// Which entry ran is seen from outside: as root, the plain entry turns on
// Node's compile cache under <root>/.cache/node; the snapshot loads no file
// and leaves no cache. Which form of the snapshot ran, its first trace line
// says (BERTH_TRACE=1).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../cli/lazy.js';
import { changedEnv, changedTty } from '../../cli/snapshot.js';
import { importLayers } from '../../engine/local-images.js';
import { openLocalEngine } from '../../engine/local.js';
import { busyboxLayer } from '../engine/runtime/helpers.js';
import { repoRoot } from '../helpers/paths.js';

const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const esbuildPkg = path.join(repoRoot, 'node_modules/esbuild/package.json');
const nativeBuilt = fs.existsSync(path.join(repoRoot, 'native/build/berth-shim'));
const isRoot = process.getuid?.() === 0;
// a private build inside the repo (packages resolve from there), in a folder named dist
// beside a link to native/, so that the CLI finds native/build as it does from the
// checkout's dist/; `top` is renamed once the snapshot is made, to show that the
// snapshot finds its files from where it runs, not where it was built
const base = path.join(repoRoot, 'node_modules/.cache', `berth-test-snapshot-${process.pid}`);
let top = path.join(base, 'built');
const dist = (): string => path.join(top, 'dist');
let work = '';
let root = '';

interface Out {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment of a user's run: this node first on PATH, nothing that changes berth's start. */
const runEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const e: NodeJS.ProcessEnv = { ...process.env, PATH: `${path.dirname(process.execPath)}:${process.env['PATH'] ?? ''}` };
  for (const k of ['NODE_OPTIONS', 'NODE_COMPILE_CACHE', 'NODE_DISABLE_COMPILE_CACHE', 'BERTH_ROOT', 'BERTH_NO_SNAPSHOT', 'BERTH_TRACE', 'BERTH_NATIVE_DIR']) delete e[k];
  return { ...e, ...extra };
};
const out = (r: ReturnType<typeof spawnSync>): Out => ({ code: r.status, stdout: String(r.stdout), stderr: String(r.stderr) });

/** `berth` as package.json's "bin" runs it: the launcher. */
const launched = (r: string, args: string[], extra: NodeJS.ProcessEnv = {}, launcher = path.join(dist(), 'cli/berth')): Out =>
  out(spawnSync(launcher, ['--root', r, ...args], { encoding: 'utf8', timeout: 25_000, env: runEnv(extra) }));
/** The plain entry: `node dist/cli/main.js`. */
const plain = (r: string, args: string[]): Out =>
  out(spawnSync(process.execPath, [path.join(dist(), 'cli/main.js'), '--root', r, ...args], { encoding: 'utf8', timeout: 25_000, env: runEnv() }));

let fresh = 0;
/** A root no run has used yet (for the compile cache check). */
const freshRoot = (): string => path.join(work, `fresh-${++fresh}`);
/** Whether the plain entry ran for `r` (it leaves Node's compile cache there; the snapshot does not). */
const ranPlain = (r: string): boolean => fs.existsSync(path.join(r, '.cache/node'));
/** Which form of the snapshot `berth --version` starts from now, as its first trace line says; 'plain' when none. */
const startsFrom = (extra: NodeJS.ProcessEnv = {}): string => {
  const o = launched(freshRoot(), ['--version'], { ...extra, BERTH_TRACE: '1' });
  expect(o.stdout).toBe('0.1.0\n');
  return /^trace cli: snapshot deserialized \((berth-node|berth\.blob)(, jitless)?\)/.exec(o.stderr)?.[1] ?? 'plain';
};

describe('the environment check', () => {
  it('names the first variable whose value differs from the one the snapshot read', () => {
    const read = new Map<string, string | undefined>([
      ['BERTH_TRACE', undefined],
      ['X', '1'],
    ]);
    expect(changedEnv({ X: '1' }, read)).toBeUndefined();
    expect(changedEnv({ X: '1', OTHER: 'y' }, read)).toBeUndefined();
    expect(changedEnv({ X: '1', BERTH_TRACE: '1' }, read)).toBe('BERTH_TRACE');
    expect(changedEnv({}, read)).toBe('X');
    expect(changedEnv({ X: '2' }, new Map())).toBeUndefined();
  });

  it('names the first file descriptor that is a terminal now and was not then, or the other way', () => {
    const isatty = (fd: number): boolean => fd === 1;
    expect(changedTty(isatty, new Map([[1, true], [2, false]]))).toBeUndefined();
    expect(changedTty(isatty, new Map([[2, true]]))).toBe(2);
    expect(changedTty(isatty, new Map([[0, false], [1, false]]))).toBe(1);
  });
});

describe.skipIf(!fs.existsSync(tsc) || !fs.existsSync(esbuildPkg))('berth from its start-up snapshot (skipped without typescript and esbuild in node_modules: run `npm ci`)', () => {
  beforeAll(async () => {
    fs.rmSync(base, { recursive: true, force: true });
    fs.mkdirSync(top, { recursive: true });
    fs.symlinkSync(path.join(repoRoot, 'native'), path.join(top, 'native'));
    try {
      execFileSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--outDir', dist()], { stdio: 'pipe' });
    } catch (e) {
      // type errors elsewhere in the tree still emit; a build that emitted nothing is a failure
      if (!fs.existsSync(path.join(dist(), 'cli/main.js'))) throw e;
    }
    execFileSync(process.execPath, [path.join(repoRoot, 'scripts/build-snapshot.mjs'), dist()], {
      stdio: 'pipe',
      // the build reads BERTH_TEST_PROBE as a module would (no module of the snapshot reads one today)
      env: { ...process.env, BERTH_SNAPSHOT_STRICT: '1', BERTH_SNAPSHOT_PROBE_ENV: 'BERTH_TEST_PROBE' },
    });
    const moved = path.join(base, 'moved');
    fs.renameSync(top, moved);
    top = moved;
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-snapshot-'));
    root = path.join(work, 'root');
    if (nativeBuilt && isRoot) {
      const e = openLocalEngine({ root, runRoot: path.join(root, 'run') }, { networking: null });
      await importLayers(e.store, [busyboxLayer(work)], 'busybox:latest', { cmd: ['sh'] });
    }
  }, 180_000);

  afterAll(() => {
    if (root && fs.existsSync(root)) {
      const ids = plain(root, ['ps', '-aq', '--no-trunc']).stdout.split('\n').filter((x) => x !== '');
      if (ids.length > 0) plain(root, ['rm', '-f', ...ids]);
      for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(work)).reverse()) {
        execFileSync('umount', ['-l', m]);
      }
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('is built next to the compiled CLI: launcher, bundle, blob, berth-node, the links to their node, the variables it read', () => {
    const cli = path.join(dist(), 'cli');
    expect(fs.statSync(path.join(cli, 'berth')).mode & 0o111).toBe(0o111);
    expect(fs.readFileSync(path.join(cli, 'berth'), 'utf8')).toBe(fs.readFileSync(path.join(repoRoot, 'cli/berth.sh'), 'utf8'));
    expect(fs.statSync(path.join(cli, 'berth.blob')).size).toBeGreaterThan(1_000_000);
    // node with the snapshot inside: larger than node by about the blob
    expect(fs.statSync(path.join(cli, 'berth-node')).mode & 0o111).toBe(0o111);
    expect(fs.statSync(path.join(cli, 'berth-node')).size).toBeGreaterThan(fs.statSync(process.execPath).size + 1_000_000);
    for (const made of ['berth.blob', 'berth-node']) {
      expect(fs.realpathSync(path.join(cli, `${made}.node`))).toBe(fs.realpathSync(process.execPath));
      expect(fs.statSync(path.join(cli, made)).mtimeMs).toBeGreaterThan(fs.statSync(path.join(cli, 'main.js')).mtimeMs);
    }
    const read = JSON.parse(fs.readFileSync(path.join(cli, 'berth.blob.env.json'), 'utf8')) as { env: string[]; isatty: number[] };
    // nothing a user commonly sets or changes: each of these would send every run to the plain entry
    for (const k of ['BERTH_ROOT', 'BERTH_RUN_ROOT', 'HOME', 'PATH', 'NO_COLOR', 'FORCE_COLOR', 'TERM']) expect(read.env).not.toContain(k);
    expect(read.isatty).toEqual([]);
    // no dynamic import() is left in the bundle (a snapshot's script cannot run one)
    const bundle = fs.readFileSync(path.join(cli, 'snapshot.cjs'), 'utf8');
    expect(bundle).not.toMatch(/[^\w$.]import\(/);
    // the modules no container command uses are text evaluated on first use, every marker replaced
    expect(bundle).not.toMatch(/__berthCold(Start|End)/);
    expect(bundle.match(/eval\("void 0/g)?.length ?? 0).toBeGreaterThan(20);
  });

  it('holds the bytecode of every function of the bundle: a run compiles none of them', () => {
    // V8's own log of what it parses and compiles (--log-function-events), for a command that runs engine code
    const log = path.join(work, 'v8-functions.log');
    const r = spawnSync(process.execPath, [
      '--log-function-events', '--no-logfile-per-isolate', `--logfile=${log}`,
      '--snapshot-blob', path.join(dist(), 'cli/berth.blob'), path.join(dist(), 'cli/main.js'), '--root', freshRoot(), 'ps', '-a',
    ], { encoding: 'utf8', env: runEnv() });
    expect(r.status, r.stderr).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').split('\n').map((l) => l.split(','));
    const bundle = lines.find((f) => f[0] === 'script-details' && (f[2] ?? '').endsWith('/cli/snapshot.cjs'))?.[1];
    expect(bundle).toBeDefined();
    const compiled = lines.filter((f) => f[0] === 'function' && f[2] === bundle && (f[1] === 'parse-function' || f[1] === 'interpreter'));
    expect(compiled.map((f) => f.slice(1, 8).join(','))).toEqual([]);
    // and the functions did run from it (the log sees them)
    expect(lines.filter((f) => f[0] === 'function' && f[2] === bundle && f[1] === 'first-execution').length).toBeGreaterThan(20);
  });

  it('starts from the snapshot (no module read: no compile cache appears)', () => {
    const r = freshRoot();
    const o = launched(r, ['--version']);
    expect(o).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    if (isRoot) expect(ranPlain(r)).toBe(false);
    const p = freshRoot();
    expect(plain(p, ['--version']).stdout).toBe('0.1.0\n');
    if (isRoot) expect(ranPlain(p)).toBe(true); // the check can tell the two apart
    expect(startsFrom()).toBe('berth-node'); // the single executable first
  });

  it('stays on the snapshot with BERTH_TRACE=1 and traces from it', () => {
    const r = freshRoot();
    const o = launched(r, ['--version'], { BERTH_TRACE: '1' });
    expect(o.code).toBe(0);
    expect(o.stdout).toBe('0.1.0\n');
    expect(o.stderr).toMatch(/^trace cli: snapshot deserialized \(berth-node\) \+[0-9.]+ms @[0-9.]+ms\n/);
    expect(o.stderr).toMatch(/\ntrace cli: exit /);
    if (isRoot) expect(ranPlain(r)).toBe(false);
  });

  const cases: string[][] = [
    ['--version'],
    ['-V'],
    ['--help'],
    [],
    ['help'],
    ['help', 'run'],
    ['run', '--help'],
    ['run', '--bogus', 'busybox'], // a bad flag
    ['run'], // a missing argument
    ['rnu'], // an unknown command, with a suggestion
    ['--bogus'], // an unknown global option
    ['--json', 'ps', '-a'],
    ['inspect', 'no-such-container'], // an engine error
    ['image', 'ls'],
    ['volume', 'ls'],
    ['stack'],
    ['network', 'bogus'],
    // a stack's plan: js-yaml and the provider, evaluated from their text on first use
    ['plan', '-f', path.join(repoRoot, 'examples/web')],
  ];
  it.each(cases.map((c) => [c.join(' ') || '(no arguments)', c] as const))('prints what the plain entry prints: %s', (_name, args) => {
    const r = freshRoot();
    const s = launched(r, args);
    if (isRoot) expect(ranPlain(r)).toBe(false);
    expect(s).toEqual(plain(freshRoot(), args));
  });

  it('prints the same help for every command', () => {
    const r = freshRoot();
    for (const c of COMMANDS) {
      const s = launched(r, [c.name, '--help']);
      expect(s.code, c.name).toBe(0);
      expect(s, c.name).toEqual(plain(r, [c.name, '--help']));
    }
  }, 120_000);

  it('works through a link to the launcher (npm links "bin")', () => {
    const link = path.join(work, 'berth-link');
    fs.symlinkSync(path.join(dist(), 'cli/berth'), link);
    const r = freshRoot();
    expect(launched(r, ['--version'], {}, link)).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
    if (isRoot) expect(ranPlain(r)).toBe(false);
  });

  it.skipIf(!nativeBuilt || !isRoot)('runs a container with run --rm as the plain entry does, finding native/build from where it runs (skipped unless root with native/ built)', () => {
    const args = ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3'];
    const s = launched(root, args);
    expect(s).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
    expect(s).toEqual(plain(root, args));
    expect(launched(root, ['run', '--rm', '--network', 'none', 'busybox', 'true'])).toEqual({ code: 0, stdout: '', stderr: '' });
    // nothing left behind
    expect(launched(root, ['ps', '-aq'])).toEqual({ code: 0, stdout: '', stderr: '' });
    // a bad image reference: the same error and exit code
    const bad = ['run', '--rm', '--network', 'none', 'no/such:image', 'true'];
    const sb = launched(root, bad);
    expect(sb.code).not.toBe(0);
    expect(sb).toEqual(plain(root, bad));
  }, 60_000);

  it.skipIf(!nativeBuilt || !isRoot)('starts the process helper before Node for run (berth-shim launch): the engine takes it over, and it goes with the run; BERTH_HELPER=0 starts none (skipped unless root with native/ built)', async () => {
    const s = launched(root, ['run', '--rm', '--network', 'none', 'busybox', 'true'], { BERTH_TRACE: '1' });
    expect(s.code, s.stderr).toBe(0);
    const pid = /\ntrace helper: started by the launcher \(pid (\d+)\) /.exec(s.stderr)?.[1];
    expect(pid).toBeDefined();
    // gone with the run (its parent, now exited), at most a moment after: no such process, or one that
    // exited and waits for whoever adopted it to reap it
    const running = (): boolean => {
      try {
        return !['Z', 'X'].includes(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ')[0]!);
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 100 && running(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(running()).toBe(false);
    const off = launched(root, ['run', '--rm', '--network', 'none', 'busybox', 'true'], { BERTH_TRACE: '1', BERTH_HELPER: '0' });
    expect(off.code, off.stderr).toBe(0);
    expect(off.stderr).not.toMatch(/helper: started by the launcher/);
  }, 60_000);

  it.skipIf(!nativeBuilt || !isRoot)('exits at once when its work is done, also with stdout and stderr on pipes (no heap teardown first) (skipped unless root with native/ built)', () => {
    // --trace-exit: Node says so when the process leaves through process.exit (cli/lazy.ts exitWhenIdle), not by
    // running out of work and tearing its environment down; spawnSync gives it pipes, stdin one with input
    const r = spawnSync(process.execPath, ['--trace-exit', path.join(dist(), 'cli/main.js'), '--root', root, 'run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; exit 3'], {
      encoding: 'utf8', timeout: 25_000, env: runEnv(), input: 'unread\n',
    });
    expect(r.stdout).toBe('out\n');
    expect(r.status).toBe(3);
    expect(r.stderr).toMatch(/Exited the environment with code 3/);
  }, 60_000);

  it('starts the helper only for the commands that start containers, found after the global options', () => {
    // a berth-shim that notes how the launcher called it, then runs the program it was given
    const native = path.join(work, 'noting-native');
    const note = path.join(work, 'launches');
    fs.mkdirSync(native, { recursive: true });
    fs.writeFileSync(path.join(native, 'berth-shim'), `#!/bin/sh\necho "$1" >> ${note}\nshift\nexec "$@"\n`, { mode: 0o755 });
    const r = freshRoot();
    const launches = (args: string[], extra: NodeJS.ProcessEnv = {}): number => {
      fs.rmSync(note, { force: true });
      const o = launched(r, args, { BERTH_NATIVE_DIR: native, ...extra });
      expect(o.code, o.stderr).toBe(0);
      return fs.existsSync(note) ? fs.readFileSync(note, 'utf8').split('\n').filter((l) => l === 'launch').length : 0;
    };
    expect(launches(['run', '--help'])).toBe(1);
    expect(launches(['--run-root', path.join(r, 'run'), '--json', 'start', '--help'])).toBe(1);
    expect(launches(['--runtime', 'run', 'restart', '--help'])).toBe(1); // "run" is --runtime's value here
    expect(launches(['--runtime', 'run', 'ps', '-a'])).toBe(0);
    expect(launches(['ps', '-a'])).toBe(0);
    expect(launches(['--version'])).toBe(0);
    expect(launches(['image', 'ls'])).toBe(0);
    expect(launches(['run', '--help'], { BERTH_HELPER: '0' })).toBe(0);
  });

  it('runs the container commands without the JIT (NODE_OPTIONS=--jitless from the launcher), the rest with it; BERTH_JIT=1 or a NODE_OPTIONS of the user\'s keeps it', () => {
    const r = freshRoot();
    const first = (args: string[], extra: NodeJS.ProcessEnv = {}): string => {
      const o = launched(r, args, { BERTH_TRACE: '1', ...extra });
      expect(o.code, o.stderr).toBe(0);
      return o.stderr.split('\n')[0]!.replace(/ \+.*/, '');
    };
    expect(first(['kill', '--help'])).toBe('trace cli: snapshot deserialized (berth-node, jitless)');
    expect(first(['--run-root', path.join(r, 'run'), 'inspect', '--help'])).toBe('trace cli: snapshot deserialized (berth-node, jitless)');
    expect(first(['ps', '-a'])).toBe('trace cli: snapshot deserialized (berth-node)'); // reads every record: the JIT pays off
    expect(first(['image', 'ls'])).toBe('trace cli: snapshot deserialized (berth-node)');
    expect(first(['--version'])).toBe('trace cli: snapshot deserialized (berth-node)');
    expect(first(['kill', '--help'], { BERTH_JIT: '1' })).toBe('trace cli: snapshot deserialized (berth-node)');
    expect(first(['kill', '--help'], { NODE_OPTIONS: '' })).toBe('trace cli: snapshot deserialized (berth-node)'); // the user's, though empty
    // what Node gets from the launcher for run (a berth-shim that notes its environment, then runs the program)
    const native = path.join(work, 'env-noting-native');
    const note = path.join(work, 'launch-env');
    fs.mkdirSync(native, { recursive: true });
    fs.writeFileSync(path.join(native, 'berth-shim'), `#!/bin/sh\necho "\${NODE_OPTIONS-unset} \${BERTH_LAUNCHER_NODE_OPTIONS-unset}" > ${note}\nshift\nexec "$@"\n`, { mode: 0o755 });
    expect(first(['run', '--help'], { BERTH_NATIVE_DIR: native })).toBe('trace cli: snapshot deserialized (berth-node, jitless)');
    expect(fs.readFileSync(note, 'utf8')).toBe('--jitless 1\n');
  });

  describe('falls back to the plain entry', () => {
    const cli = (): string => path.join(dist(), 'cli');
    /**
     * Runs --version and --help with `change` applied, then undoes it; both give the plain output, from
     * `form` (the plain entry unless told).
     */
    const fallsBack = (change: () => () => void, extra: NodeJS.ProcessEnv = {}, form = 'plain'): void => {
      const undo = change();
      try {
        for (const args of [['--version'], ['--help'], ['run', '--bogus', 'busybox']]) {
          const r = freshRoot();
          expect(launched(r, args, extra)).toEqual(plain(freshRoot(), args));
          if (isRoot) expect(ranPlain(r), args.join(' ')).toBe(form === 'plain');
        }
        expect(startsFrom(extra)).toBe(form);
      } finally {
        undo();
      }
      // and the single executable is used again once the cause is gone
      const r = freshRoot();
      expect(launched(r, ['--version'])).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
      if (isRoot) expect(ranPlain(r)).toBe(false);
      expect(startsFrom()).toBe('berth-node');
    };
    /** Moves each of `names` (in dist/cli) away; the undo moves them back. */
    const away = (...names: string[]) => (): (() => void) => {
      for (const n of names) fs.renameSync(path.join(cli(), n), path.join(cli(), `${n}.away`));
      return () => {
        for (const n of names) fs.renameSync(path.join(cli(), `${n}.away`), path.join(cli(), n));
      };
    };

    it('to the blob when berth-node is missing, to the plain entry when both are', () => {
      fallsBack(away('berth-node'), {}, 'berth.blob');
      fallsBack(away('berth.blob'), {}, 'berth-node');
      fallsBack(away('berth-node', 'berth.blob'));
    });

    it('when another node binary made them (or none is linked)', () => {
      const links = ['berth.blob.node', 'berth-node.node'].map((n) => path.join(cli(), n));
      const target = fs.readlinkSync(links[0]!);
      const relink = (to: string | undefined) => (): (() => void) => {
        for (const link of links) {
          fs.rmSync(link);
          if (to !== undefined) fs.symlinkSync(to, link);
        }
        return () => {
          for (const link of links) {
            fs.rmSync(link, { force: true });
            fs.symlinkSync(target, link);
          }
        };
      };
      fallsBack(relink('/bin/sh'));
      fallsBack(relink(undefined));
    });

    it('when the compiled CLI is newer than both (tsc ran after the build)', () => {
      const main = path.join(cli(), 'main.js');
      const st = fs.statSync(main);
      fallsBack(() => {
        const later = new Date(Date.now() + 60_000);
        fs.utimesSync(main, later, later);
        return () => fs.utimesSync(main, st.atime, st.mtime);
      });
    });

    it('when NODE_OPTIONS or BERTH_NO_SNAPSHOT is set', () => {
      fallsBack(() => () => undefined, { NODE_OPTIONS: '--no-deprecation' });
      fallsBack(() => () => undefined, { BERTH_NO_SNAPSHOT: '1' });
    });

    it('when a variable read by a snapshotted module has another value now (in the process: the snapshot hands over)', () => {
      const read = JSON.parse(fs.readFileSync(path.join(cli(), 'berth.blob.env.json'), 'utf8')) as { env: string[] };
      // the build's probe (beforeAll): no module of the snapshot reads a variable today (pino, whose
      // thread-stream read NODE_V8_COVERAGE, is loaded on first use; BERTH_TRACE is read on each trace call)
      expect(read.env).toEqual(['BERTH_TEST_PROBE']);
      const key = 'BERTH_TEST_PROBE';
      const r = freshRoot();
      // a path in the test's own dir: a variable may name where to write (NODE_V8_COVERAGE did)
      const o = launched(r, ['--version'], { [key]: path.join(work, 'changed-value') });
      expect(o).toEqual({ code: 0, stdout: '0.1.0\n', stderr: '' });
      if (isRoot) expect(ranPlain(r)).toBe(true);
    });
  });
});
