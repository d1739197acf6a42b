/**
 * The entry of `berth`'s V8 start-up snapshot (Node's user-land snapshot:
 * `node --snapshot-blob berth.blob --build-snapshot snapshot-loader.cjs`,
 * and the same inside berth-node).
 *
 * scripts/build-snapshot.mjs bundles this file with everything it can
 * import (one script, snapshot.cjs; every command group stays a lazily
 * evaluated part of it); its loader compiles that script whole, every
 * function with its bytecode (V8's --no-lazy for that one compile), and
 * runs it once at build time. Here, at build time, the modules that
 * `berth run` needs (commander, the container verbs, the engine with its
 * store, runtime and networking, io-ts, tar-stream) are evaluated,
 * and the parts of a run that touch nothing outside this process are run
 * once (warmUp); the heap they leave is what the blob holds. A run then
 * starts from that heap (`cli/berth`, the launcher, runs berth-node or
 * passes `--snapshot-blob`): no module is resolved, read, compiled or
 * evaluated again, no function of the bundle is compiled, and the other
 * groups are evaluated from the bundle the first time a command needs
 * them.
 *
 * What a snapshot cannot hold is kept out of the build-time evaluation: a
 * module that touches process.stdin, stdout or stderr while it is
 * evaluated fails the build. Module code that reads an environment
 * variable while it is evaluated (a top-level `process.env['X']`, as
 * thread-stream under pino does with NODE_V8_COVERAGE; pino is no longer
 * in the snapshot, engine/log.ts) would keep the build's value: the keys
 * so read are recorded with their values (and so are `tty.isatty`
 * answers), and a run whose environment
 * has a different value for any of them runs the plain ESM entry instead
 * (`cli/main.js`, through require(esm): it must stay free of top-level
 * await). Imported outside a snapshot build, this file does nothing.
 */
import * as fs from 'node:fs';
import * as nodeModule from 'node:module';
import * as path from 'node:path';
import * as tty from 'node:tty';
import * as v8 from 'node:v8';
import { trace } from '../engine/runtime/trace.js';
import { runCli } from './lazy.js';
import { dropLauncherEnv } from './startup.js';

/** Environment variables read while the snapshot's modules were evaluated, with the values they had. */
const baked = new Map<string, string | undefined>();
/** File descriptors asked `tty.isatty` while they were evaluated, with the answers. */
const bakedTty = new Map<number, boolean>();

/**
 * The plain entry, <dist>/cli/main.js. The launcher runs either
 * `node --snapshot-blob berth.blob <dist>/cli/main.js ARGS` or
 * `<dist>/cli/berth-node ARGS` (the snapshot inside a single executable,
 * which puts its own path into argv[1]).
 */
const entryOf = (argv: readonly string[]): string =>
  process.getBuiltinModule('node:sea').isSea() ? path.join(path.dirname(process.execPath), 'main.js') : path.resolve(argv[1] ?? 'main.js');

/** The environment variable whose value now differs from the one the snapshot's modules read, if any. */
export const changedEnv = (env: NodeJS.ProcessEnv, values: ReadonlyMap<string, string | undefined>): string | undefined => {
  for (const [k, v] of values) if (env[k] !== v) return k;
  return undefined;
};

/** The file descriptor that is (or is not) a terminal now, unlike when the snapshot's modules asked, if any. */
export const changedTty = (isatty: (fd: number) => boolean, answers: ReadonlyMap<number, boolean>): number | undefined => {
  for (const [fd, was] of answers) if (isatty(fd) !== was) return fd;
  return undefined;
};

/** The plain entry: cli/main.js as `node cli/main.js` runs it. */
const runPlain = (entry: string): void => {
  nodeModule.createRequire(entry)(entry);
};

/** Runs `berth` from the snapshot's heap, or the plain entry when the heap does not fit this run. */
const main = (): void => {
  // V8 leaves WebAssembly out under --jitless (the launcher's NODE_OPTIONS for container commands)
  const jit = typeof WebAssembly === 'undefined' ? ', jitless' : '';
  trace(`cli: snapshot deserialized (${process.getBuiltinModule('node:sea').isSea() ? 'berth-node' : 'berth.blob'}${jit})`);
  dropLauncherEnv();
  const entry = entryOf(process.argv);
  (globalThis as { __berthDist?: string }).__berthDist = path.dirname(path.dirname(entry));
  if (changedEnv(process.env, baked) !== undefined || changedTty(tty.isatty, bakedTty) !== undefined) {
    runPlain(entry);
    return;
  }
  runCli(process.argv).catch(async (e: unknown) => {
    const { renderError, toEngineError } = await import('../engine/errors.js');
    process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
    process.exitCode = 1;
  });
};

/**
 * Runs, at build time, the parts of `berth run` that have no effect outside
 * this process, so that what they leave is in the blob: Node's modules they
 * load (compiled lazily, unlike the bundle's functions, which the loader
 * compiles whole) and the objects they make. Here: node:fs's promise API (Node's
 * internal/fs/promises, which the store and the runtime use; loaded by
 * Node on first use), the container verbs registered on a program of their
 * own, a `run` parsed by it with an action that only builds the spec, the
 * engine opened on a root that does not exist, the spec checked, and the
 * store's and the record's decoders run on made-up values. It
 * also registers the container verbs on the program that a run of one of
 * them takes as it is (cli/lazy.ts setPrebuiltProgram: no registration at
 * run time).
 * Nothing is read from or written to disk and no stdio is touched (the
 * guard in preload throws if it were); an environment variable read here
 * is recorded like any other (berth.blob.env.json), except the engine's
 * own reads while it is opened (into the engine object, which is dropped).
 */
const warmUp = async (env: NodeJS.ProcessEnv): Promise<void> => {
  void fs.promises.stat; // loads internal/fs/promises (and what it requires) into the heap
  const { Command } = await import('commander');
  const { registerContainerCommands } = await import('./commands/containers.js');
  const { specFromFlags } = await import('./commands/container-flags.js');
  const program = new Command('berth').exitOverride().enablePositionalOptions()
    .option('--root <dir>').option('--run-root <dir>').option('--runtime <path>').option('--json').option('--debug');
  registerContainerCommands(program);
  const run = program.commands.find((c) => c.name() === 'run');
  if (run === undefined) throw new Error('warm-up: the containers group registers no `run`');
  let spec: unknown;
  run.action((image: string, command: string[], flags: Parameters<typeof specFromFlags>[2]) => {
    spec = specFromFlags(image, command, flags);
  });
  await program.parseAsync(['--root', '/nonexistent', 'run', '--rm', '--network', 'none', '-e', 'A=1', 'busybox', 'true'], { from: 'user' });
  if (spec === undefined) throw new Error('warm-up: `run` was not parsed');
  // the program a `run` (or any container verb) will use, registered and never parsed (cli/lazy.ts)
  const { newProgram, setPrebuiltProgram } = await import('./lazy.js');
  const { DEFAULT_ROOT } = await import('./startup.js');
  const prebuilt = newProgram(DEFAULT_ROOT);
  registerContainerCommands(prebuilt);
  // commander makes each command's help option, and the program's help command, on first use (a parse):
  // made here, with commander's own defaults, they are in the blob
  prebuilt.helpCommand('help [command]', 'display help for command');
  for (const c of [prebuilt, ...prebuilt.commands]) c.helpOption('-h, --help', 'display help for command');
  setPrebuiltProgram(prebuilt);
  // the engine opened on a root that does not exist (opening reads nothing), and the spec checked
  const { openLocalEngine } = await import('../engine/local.js');
  const { checkSpec } = await import('../engine/runtime/spec-check.js');
  // opening reads BERTH_NATIVE_DIR into the engine object it returns, which is dropped: not module
  // state, so not recorded (the proxied process.env is set aside for this call)
  const proxied = process.env;
  process.env = env;
  try {
    openLocalEngine({ root: '/nonexistent/berth-snapshot-build', runRoot: '/nonexistent/berth-snapshot-build/run' });
  } finally {
    process.env = proxied;
  }
  checkSpec(spec as Parameters<typeof checkSpec>[0]);
  // the decoders a run goes through (names index, manifest, config, layer, container record), on
  // made-up values: io-ts's validation functions are shared by every codec of a kind
  const oci = await import('../engine/store/oci.js');
  const { LayerMeta } = await import('../engine/store/layers.js');
  const { ContainerRecord } = await import('../engine/runtime/record.js');
  const digest = `sha256:${'0'.repeat(64)}`;
  const desc = { mediaType: oci.MediaType.OciManifest, digest, size: 1, annotations: { [oci.ANNOTATION_IMAGE_NAME]: 'busybox:latest' } };
  oci.LayoutIndex.decode({ schemaVersion: 2, mediaType: oci.MediaType.OciIndex, manifests: [desc] });
  oci.Manifest.decode({ schemaVersion: 2, mediaType: oci.MediaType.OciManifest, config: desc, layers: [desc] });
  oci.ImageConfig.decode({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [digest] }, config: { Cmd: ['sh'], Env: ['A=1'] }, history: [{ created_by: 'x' }] });
  LayerMeta.decode({});
  ContainerRecord.decode({ id: '0'.repeat(64), name: 'x', created: '2026-01-01T00:00:00Z', spec: { image: 'busybox' }, state: { running: false, restartCount: 0 } });
};

/**
 * Evaluates the modules of the hot path (`run`, `create`, `start`, `rm`,
 * `ps`, ...) while recording every environment variable they read and
 * every terminal check they make. Touching process.stdin, stdout or
 * stderr throws: the stream would be the build's.
 */
const preload = async (): Promise<void> => {
  const env = process.env;
  const proxied = new Proxy(env, {
    get(target, key) {
      if (typeof key === 'string' && !baked.has(key)) baked.set(key, target[key]);
      return Reflect.get(target, key);
    },
    has(target, key) {
      if (typeof key === 'string' && !baked.has(key)) baked.set(key, target[key]);
      return Reflect.has(target, key);
    },
  });
  process.env = proxied;
  const ttyModule = process.getBuiltinModule('node:tty');
  const isatty = ttyModule.isatty;
  ttyModule.isatty = (fd: number): boolean => {
    const answer = isatty(fd);
    if (!bakedTty.has(fd)) bakedTty.set(fd, answer);
    return answer;
  };
  const stdio = ['stdin', 'stdout', 'stderr'] as const;
  const descriptors = stdio.map((name) => Object.getOwnPropertyDescriptor(process, name));
  for (const name of stdio) {
    Object.defineProperty(process, name, {
      configurable: true,
      get: () => {
        throw new Error(`process.${name} was used while the snapshot's modules were evaluated (a module reads it at its top level): read it inside a function instead`);
      },
    });
  }
  try {
    // the modules only: registering commands would read BERTH_ROOT (newProgram's default), which
    // is a run-time read, not a module's state
    await import('./commands/containers.js');
    await import('./commands/container-flags.js');
    await import('../engine/local.js');
    await import('../engine/errors.js');
    // engine/network/networking.js (a container on a bridge) with engine/log.js, which loads pino
    // (and its node:assert and node:worker_threads) only when a logger needs it, and pino-pretty
    // only when it renders for a terminal: neither is in the snapshot
    await import('../engine/network/networking.js');
    // BERTH_SNAPSHOT_PROBE_ENV=NAME (a build's environment, for test/cli/snapshot.test.ts): NAME read here as
    // a module's top level would read it, so that a run with another value for it shows the hand-over to the
    // plain entry (since pino is loaded on first use, no module of the snapshot reads a variable)
    const probe = env['BERTH_SNAPSHOT_PROBE_ENV'];
    if (probe) void process.env[probe];
    await warmUp(env);
  } finally {
    process.env = env;
    ttyModule.isatty = isatty;
    stdio.forEach((name, i) => {
      const d = descriptors[i];
      if (d !== undefined) Object.defineProperty(process, name, d);
    });
  }
  // the build keeps the list next to the blob (berth.blob.env.json)
  const report = env['BERTH_SNAPSHOT_REPORT'];
  if (report) fs.writeFileSync(report, `${JSON.stringify({ env: [...baked.keys()].sort(), isatty: [...bakedTty.keys()].sort() })}\n`);
};

if (v8.startupSnapshot.isBuildingSnapshot()) {
  v8.startupSnapshot.setDeserializeMainFunction(main);
  preload().catch((e: unknown) => {
    process.stderr.write(`build-snapshot: evaluating the CLI's modules failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  });
}
