#!/usr/bin/env node
// The second half of `npm run build` (after tsc): berth's launcher and its
// V8 start-up snapshot, next to the compiled CLI.
//
//   node scripts/build-snapshot.mjs [DIST]      (DIST: default dist/)
//
// writes, each file by a rename (so a concurrent run never sees half of one):
//   DIST/cli/berth          the launcher (a copy of cli/berth.sh): package.json's "bin"
//   DIST/cli/snapshot.cjs   DIST/cli/snapshot.js bundled with what it imports (esbuild, one script;
//                           the modules no container command uses as text evaluated on first use)
//   DIST/cli/snapshot-loader.cjs  the snapshot's entry: compiles snapshot.cjs whole (no lazy functions), runs it
//   DIST/cli/berth.blob     the snapshot: `node --build-snapshot` of that bundle
//   DIST/cli/berth.blob.env.json  {env, isatty}: the environment variables the snapshot's
//                           modules read while they were evaluated, the fds they asked
//                           isatty about (a run with other values for them runs the plain
//                           entry: cli/snapshot.ts)
//   DIST/cli/berth.blob.node  a link to the node binary that made it (the launcher
//                           uses the blob only with that same binary)
//   DIST/cli/berth-node     a copy of that node binary with the same snapshot inside (Node's
//                           single executable application, injected with postject): it starts
//                           ~10 ms sooner than `node --snapshot-blob`, which reads the 9 MB
//                           blob into fresh memory first; the launcher prefers it
//   DIST/cli/berth-node.node  a link to the node binary it was copied from
//
// Idempotent: every run replaces all eight. When the snapshot cannot be made,
// the blob and berth-node are removed and `berth` runs the plain entry (slower
// start, same output); when only berth-node cannot be made (a node built
// without single executable support, postject missing), the launcher uses
// the blob. The run says so on stderr and exits 0, or 1 with
// BERTH_SNAPSHOT_STRICT=1 (tests).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as vm from 'node:vm';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.resolve(process.argv[2] ?? path.join(repo, 'dist'));
const cli = path.join(dist, 'cli');
const strict = process.env.BERTH_SNAPSHOT_STRICT === '1';
const tmp = (p) => `${p}.tmp-${process.pid}`;

/** Writes `target` through a temporary file and a rename. */
const install = (target, write) => {
  const t = tmp(target);
  fs.rmSync(t, { force: true });
  try {
    write(t);
    fs.renameSync(t, target);
  } finally {
    fs.rmSync(t, { force: true });
  }
};

// 1. The launcher: always, so that "bin" works with or without a snapshot.
install(path.join(cli, 'berth'), (t) => {
  fs.copyFileSync(path.join(repo, 'cli/berth.sh'), t);
  fs.chmodSync(t, 0o755);
});

const blob = path.join(cli, 'berth.blob');

/**
 * What the bundle makes of each source: `import.meta.url` of a compiled file
 * becomes the URL that file has in the dist the snapshot runs from
 * (cli/snapshot.ts sets __berthDist when it starts; before that, the dist it
 * was built in), and a cold module's code is marked (COLD_DIST and
 * COLD_PACKAGES below).
 */
const sources = {
  name: 'berth-sources',
  setup(build) {
    // esbuild passes real paths: DIST may be reached through a link (node_modules/.cache in a worktree)
    const realDist = fs.realpathSync(dist);
    build.onLoad({ filter: /\.js$/ }, (args) => {
      const rel = path.relative(realDist, args.path);
      if (rel.startsWith('..') || path.isAbsolute(rel)) {
        const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(args.path)?.[1];
        if (pkg && COLD_PACKAGES.has(pkg)) return { contents: markCold(fs.readFileSync(args.path, 'utf8'), path.relative(repo, args.path)), loader: 'js' };
        return undefined;
      }
      let src = fs.readFileSync(args.path, 'utf8');
      const cold = COLD_DIST.test(rel);
      if (!src.includes('import.meta')) return cold ? { contents: markCold(src, rel), loader: 'js' } : undefined;
      if (cold) src = markCold(src, rel);
      const contents = src.replace(/\bimport\.meta\.url\b/g, `__berthModuleUrl(${JSON.stringify(rel)})`);
      const left = /\bimport\.meta\b/.exec(contents);
      if (left !== null) {
        return { errors: [{ text: `${rel}: import.meta other than import.meta.url has no meaning in the snapshot bundle; use import.meta.url` }] };
      }
      return { contents, loader: 'js' };
    });
  },
};

/**
 * The cold modules: what no container command (run, create, start, rm, ps, ...)
 * evaluates. Their code goes into the bundle as text that the module's own
 * initializer evaluates on first use (a direct eval, in the scope it was
 * bundled in), so the --no-lazy compile below leaves them out of the
 * snapshot's bytecode: every start deserializes ~0.5 MB less and a `berth run`
 * is ~5 ms sooner (bench/containers/STARTUP.md), while an `images` or a `build`
 * compiles what it uses, as the plain entry does. Behaviour does not depend
 * on this list, only speed: a cold module that a run needed would be compiled
 * then.
 */
const COLD_PACKAGES = new Set(['js-yaml', 'tar-stream', 'streamx', 'fast-fifo', 'b4a', 'text-decoder', 'events-universal', 'cli-progress', 'string-width', 'strip-ansi', 'ansi-regex', 'emoji-regex', 'is-fullwidth-code-point']);
const COLD_DIST = /^(cli\/commands\/(auth|build|images|networks|stack|system|volumes)\.js|engine\/(build|registry|image)\/|provider\/)/;
/** Calls that mark a cold module's code: they survive minification as they are (unbound globals, maybe side effects). */
const COLD_START = '__berthColdStart(';
const COLD_END = '__berthColdEnd()';
const markCold = (src, name) => `${COLD_START}${JSON.stringify(name)});\n${src}\n;${COLD_END};\n`;

/**
 * Replaces each marked span of the minified bundle with a direct eval of its
 * text. esbuild puts a lazily initialized module's statements, as assignments
 * to variables it declared outside, into the module's initializer (function
 * declarations are hoisted out of it), and a CommonJS module into its wrapper
 * function; the minifier may join the markers to their neighbours with commas,
 * so the text is padded with `void 0` at both ends. Each text is compiled once
 * here (strict, as the bundle is) so that a syntax a direct eval would refuse
 * fails the build, not a command.
 */
const evalCold = (text) => {
  let out = '';
  let at = 0;
  for (;;) {
    const start = text.indexOf(COLD_START, at);
    if (start < 0) break;
    const close = text.indexOf(')', start);
    const name = JSON.parse(text.slice(start + COLD_START.length, close));
    const end = text.indexOf(COLD_END, close);
    if (end < 0) throw new Error(`cold module ${name}: its start marker has no end`);
    const body = `void 0${text.slice(close + 1, end)}void 0`;
    if (body.includes(COLD_START)) throw new Error(`cold module ${name}: another cold module inside it`);
    // inside its initializer (or CommonJS wrapper): after the nearest `=>{`, only its imports and
    // the inits of what it imports, no end of another module's wrapper. A module esbuild left at
    // the bundle's top level would have its declarations made local to the eval.
    const opened = text.lastIndexOf('=>{', start);
    if (opened < at || text.slice(opened, start).includes('})')) {
      throw new Error(`cold module ${name} is not initialized lazily in the bundle: take it off the cold list`);
    }
    new vm.Script(`"use strict";${body}`);
    out += `${text.slice(at, start)}eval(${JSON.stringify(body)})`;
    at = end + COLD_END.length;
  }
  const rest = text.slice(at);
  if (rest.includes(COLD_END)) throw new Error('a cold module\'s end marker without its start');
  return out + rest;
};

const banner = [
  '"use strict";',
  'var __berthModuleUrl = (rel) => require("node:url").pathToFileURL(require("node:path").join(globalThis.__berthDist ?? require("node:path").dirname(__dirname), rel)).href;',
].join('\n');

/**
 * The snapshot's entry: the bundle compiled with V8's --no-lazy for this one
 * compile (every function in it gets its bytecode now, and the blob keeps
 * it), then run as the snapshot builder runs an entry, with its require,
 * __filename and __dirname. A run then compiles none of Berth's functions:
 * lazily, the ~370 that `berth run` calls for the first time cost it ~20 ms
 * of CPU, and the bytecode of all of them costs the blob ~1.9 MB. Node's own
 * modules, loaded before and after, stay lazy (--no-lazy for the whole build
 * would compile them all too: 7 MB more).
 */
const loaderSource = (bundle) => `"use strict";
const v8 = require("node:v8");
const bundle = ${JSON.stringify(bundle)};
const run = (() => {
  const source = require("node:fs").readFileSync(bundle, "utf8");
  v8.setFlagsFromString("--no-lazy");
  v8.setFlagsFromString("--no-enable-lazy-source-positions");
  try {
    return new (require("node:vm").Script)(\`(function (require, __filename, __dirname) {\${source}\n})\`, { filename: bundle }).runInThisContext();
  } finally {
    v8.setFlagsFromString("--lazy");
    v8.setFlagsFromString("--enable-lazy-source-positions");
  }
})();
run(require, bundle, require("node:path").dirname(bundle));
`;

/** Node's own notes on built-in modules it has not checked in snapshots (they work here: the tests run berth from the blob). */
const unverified = /^\(node:\d+\) Warning: It's not yet fully verified whether built-in module "[^"]+" works in user snapshot builder scripts\.\nIt may still work in some cases, but in other cases certain run-time states may be out-of-sync after snapshot deserialization\.\nTo request support for the module, use the Node\.js issue tracker: \S+\n(\(Use `node --trace-warnings \.\.\.` to show where the warning was created\)\n)?/gm;

const build = async () => {
  // imported here: without it (npm ci --omit=dev) the launcher is still installed and runs the plain entry
  const esbuild = await import('esbuild');
  // 2. The bundle: every group and package in one file, the groups still evaluated lazily.
  const bundle = path.join(cli, 'snapshot.cjs');
  const result = await esbuild.build({
    entryPoints: [path.join(cli, 'snapshot.js')],
    bundle: true,
    platform: 'node',
    format: 'iife', // a script: the snapshot builder gives it require, __filename and __dirname, no module
    target: `node${process.versions.node.split('.')[0]}`,
    // the snapshot's script has no dynamic import(): require() the node: builtins instead
    supported: { 'dynamic-import': false },
    banner: { js: banner },
    plugins: [sources],
    // the script's source stays in the snapshot's heap (V8 compiles the functions not yet run
    // from it): minified, ~0.7 MB less to read and map at every start; keepNames: class and
    // function names (errors, commander) as in the plain entry
    minify: true,
    keepNames: true,
    outfile: tmp(bundle),
    logLevel: 'silent',
    absWorkingDir: repo,
  });
  if (result.warnings.length > 0) {
    const text = await esbuild.formatMessages(result.warnings, { kind: 'warning' });
    throw new Error(`esbuild warnings (the bundle might not behave as the plain entry):\n${text.join('')}`);
  }
  fs.writeFileSync(tmp(bundle), evalCold(fs.readFileSync(tmp(bundle), 'utf8')));
  fs.renameSync(tmp(bundle), bundle);
  // the entry the snapshot is built from: it compiles the bundle with every function in it (see loaderSource)
  const entry = path.join(cli, 'snapshot-loader.cjs');
  install(entry, (t) => fs.writeFileSync(t, loaderSource(bundle)));

  // 3. The snapshot, made by this node binary; then the link that names it.
  const envList = `${blob}.env.json`;
  const b = spawnSync(process.execPath, ['--snapshot-blob', tmp(blob), '--build-snapshot', entry], {
    encoding: 'utf8',
    cwd: dist,
    env: { ...process.env, BERTH_SNAPSHOT_REPORT: tmp(envList) },
  });
  const stderr = (b.stderr ?? '').replace(unverified, '');
  if (b.status !== 0 || !fs.existsSync(tmp(blob))) {
    throw new Error(`node --build-snapshot ${entry} failed (${b.error?.message ?? `exit ${b.status ?? b.signal}`}):\n${stderr}${b.stdout ?? ''}`);
  }
  if (stderr !== '') process.stderr.write(stderr);
  fs.renameSync(tmp(envList), envList);
  install(`${blob}.node`, (t) => fs.symlinkSync(fs.realpathSync(process.execPath), t));

  // 4. A check: the snapshot prints what the plain entry prints.
  const main = path.join(cli, 'main.js');
  const plain = spawnSync(process.execPath, [main, '--version'], { encoding: 'utf8' });
  const snap = spawnSync(process.execPath, ['--snapshot-blob', tmp(blob), main, '--version'], { encoding: 'utf8' });
  if (snap.status !== plain.status || snap.stdout !== plain.stdout || snap.stderr !== plain.stderr) {
    throw new Error(`the snapshot's --version differs from the plain entry's: ${JSON.stringify(snap.stdout + snap.stderr)} (exit ${snap.status}) vs ${JSON.stringify(plain.stdout + plain.stderr)} (exit ${plain.status})`);
  }
  fs.renameSync(tmp(blob), blob); // the blob is newer than everything it was made from
  return { entry, envList, plain };
};

/** Node's marker for a binary that can take a single executable application's blob (nodejs.org/api/single-executable-applications.html). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

/**
 * 5. berth-node: this node binary with the snapshot of the same bundle inside, as
 * Node's single executable applications carry one (`useSnapshot`). Node maps it
 * with the binary instead of reading a file into fresh memory.
 */
const buildSea = async ({ entry, envList, plain }) => {
  // postject (a devDependency, like esbuild): its command, next to its API
  const postject = path.join(path.dirname(createRequire(import.meta.url).resolve('postject')), 'cli.js');
  const node = fs.realpathSync(process.execPath);
  if (!fs.readFileSync(node).includes(SEA_FUSE)) throw new Error(`${node} was built without single executable application support`);
  const config = tmp(path.join(cli, 'berth-node.json'));
  const prep = tmp(path.join(cli, 'berth-node.blob'));
  const seaEnv = tmp(path.join(cli, 'berth-node.env.json'));
  try {
    fs.writeFileSync(config, JSON.stringify({ main: entry, output: prep, useSnapshot: true, disableExperimentalSEAWarning: true }));
    const b = spawnSync(process.execPath, ['--experimental-sea-config', config], {
      encoding: 'utf8',
      cwd: dist,
      env: { ...process.env, BERTH_SNAPSHOT_REPORT: seaEnv },
    });
    if (b.status !== 0 || !fs.existsSync(prep)) {
      throw new Error(`node --experimental-sea-config failed (${b.error?.message ?? `exit ${b.status ?? b.signal}`}):\n${(b.stderr ?? '').replace(unverified, '')}`);
    }
    // the same modules read the same variables in both builds: the launcher checks one list for both
    if (fs.readFileSync(seaEnv, 'utf8') !== fs.readFileSync(envList, 'utf8')) throw new Error('the single executable\'s snapshot read other environment variables than the blob\'s');
    fs.copyFileSync(node, tmp(sea));
    fs.chmodSync(tmp(sea), 0o755);
    // postject's own process: its LIEF prints notes about the binary's sections that concern nobody
    const p = spawnSync(process.execPath, [postject, tmp(sea), 'NODE_SEA_BLOB', prep, '--sentinel-fuse', SEA_FUSE], { encoding: 'utf8' });
    if (p.status !== 0) throw new Error(`postject failed (${p.error?.message ?? `exit ${p.status ?? p.signal}`}):\n${p.stderr ?? ''}${p.stdout ?? ''}`);
  } finally {
    for (const f of [config, prep, seaEnv]) fs.rmSync(f, { force: true });
  }
  const s = spawnSync(tmp(sea), ['--version'], { encoding: 'utf8' });
  if (s.status !== plain.status || s.stdout !== plain.stdout || s.stderr !== plain.stderr) {
    throw new Error(`berth-node --version differs from the plain entry's: ${JSON.stringify(s.stdout + s.stderr)} (exit ${s.status})`);
  }
  install(`${sea}.node`, (t) => fs.symlinkSync(node, t));
  fs.renameSync(tmp(sea), sea); // last: newer than everything it was made from
};

const sea = path.join(cli, 'berth-node');
const removeSea = () => {
  for (const f of [sea, `${sea}.node`, tmp(sea)]) fs.rmSync(f, { force: true });
};

let built;
try {
  fs.rmSync(blob, { force: true });
  removeSea();
  built = await build();
} catch (e) {
  for (const f of [tmp(blob), tmp(`${blob}.env.json`), tmp(path.join(cli, 'snapshot.cjs')), blob, `${blob}.env.json`]) fs.rmSync(f, { force: true });
  process.stderr.write(`build-snapshot: no start-up snapshot, berth will start without it (slower, same output): ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = strict ? 1 : 0;
}
if (built !== undefined) {
  try {
    await buildSea(built);
  } catch (e) {
    removeSea();
    process.stderr.write(`build-snapshot: no berth-node, berth will start from berth.blob (~10 ms slower, same output): ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = strict ? 1 : 0;
  }
}
