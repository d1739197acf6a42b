/**
 * The image builder: a Dockerfile executed as Docker's classic builder
 * does (no BuildKit extras), one step per instruction.
 *
 * A build *state* is an image config (as JSON) plus its layer descriptors;
 * its ID is the config's digest. Every instruction after FROM turns the
 * state into the next one, and the cache (cache.ts) remembers which state
 * came out of (parent ID, instruction, content of what it copies), so an
 * unchanged rebuild replays the same configs and makes the same image ID.
 *
 * - RUN runs in a Berth container (engine/runtime: overlay rootfs, the
 *   shim and the OCI runtime) made from the current state, network none,
 *   build args and ENV in its environment; its upper dir becomes the layer.
 * - COPY, ADD and WORKDIR change the rootfs through an overlay mounted by
 *   the builder under <root>/build/tmp (paths resolved inside the rootfs,
 *   never following a link out of it); the upper dir becomes the layer.
 * - Everything else changes only the config (history `empty_layer`).
 *
 * Nothing is left behind on failure: each RUN container is removed, each
 * mount undone, the temporary directory deleted; no name is tagged before
 * the last step succeeded. A build killed midway leaves a tmp dir (and
 * maybe a container labelled berth.build.pid) that the next build removes.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { BuildEvent, BuildResult, BuildSpec, EngineRoots, ImageInfo } from '../engine.js';
import { EngineFailure, fail, hasTag, invalidSpec, toEngineError, unsupported, type EngineError } from '../errors.js';
import type { ContainerRuntime } from '../runtime/containers.js';
import { resolveInRoot } from '../runtime/inroot.js';
import { isMountPoint, mountPrivate, run as runProgram } from '../runtime/invoke.js';
import { signalNumber } from '../runtime/oci-spec.js';
import { sha256, type Digest } from '../store/digest.js';
import { pidAlive, randomSuffix } from '../store/fsutil.js';
import { chainIds } from '../store/layers.js';
import type { Descriptor } from '../store/oci.js';
import { hostPlatform } from '../store/platform.js';
import { parseReference } from '../store/reference.js';
import type { Store } from '../store/store.js';
import { openCache } from './cache.js';
import { digestItems, openContext } from './context.js';
import { addArchive, archiveFormat, copyEntry, copyTree, isDirIn, mkdirIn, resolveOwner, resolveSources, type ArchiveFormat } from './copy.js';
import { expandWord, expandWords, parseDockerfile, parsePairs, type Dockerfile, type Instruction, type Lookup } from './dockerfile.js';
import { storeImage, writeLayerTar } from './layer.js';
import { storeLayer } from '../local-images.js';
import { isoTime } from '../time.js';

/** What the builder needs of the local engine. */
export interface BuildDeps {
  readonly roots: EngineRoots;
  readonly store: Store;
  readonly containers: ContainerRuntime;
  readonly pullImage: (ref: string) => Promise<ImageInfo>;
}

/* ------------------------------------------------------------------ state */

interface ConfigJson {
  architecture: string;
  os: string;
  created?: string;
  author?: string;
  config: Record<string, unknown>;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history: Record<string, unknown>[];
  [k: string]: unknown;
}

interface State {
  config: ConfigJson;
  layers: Descriptor[];
  /** The config digest: the parent in cache keys, the image ID at the end. */
  id: string;
  /** For a base image taken as it is: its manifest (a build with no step names it, not a copy). */
  manifest?: Descriptor;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const bytesOf = (c: ConfigJson): Buffer => Buffer.from(JSON.stringify(c));
const stateOf = (config: ConfigJson, layers: Descriptor[]): State => ({ config, layers, id: sha256(bytesOf(config)) });
const clone = <A>(a: A): A => JSON.parse(JSON.stringify(a)) as A;

/** Go duration ("30s", "1m30s", "500ms") in nanoseconds. */
const durationNs = (s: string, where: string): number => {
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * (units[m[2] as string] as number);
    pos = re.lastIndex;
  }
  if (s === '' || pos !== s.length) fail(invalidSpec(where, [`${JSON.stringify(s)} is not a duration: write e.g. 30s, 1m30s or 500ms`]));
  return Math.round(total);
};

/* ---------------------------------------------------------------- builder */

interface Stage {
  readonly index: number;
  readonly name?: string;
  readonly from: Instruction;
  readonly body: readonly Instruction[];
}

/**
 * Build `spec` (see BuildSpec in engine.ts). Throws an EngineFailure naming
 * the Dockerfile, line and instruction on bad input or a failing step.
 */
export const buildImage = async (deps: BuildDeps, spec: BuildSpec): Promise<BuildResult> => {
  const { store } = deps;
  const progress = (ev: BuildEvent): void => spec.onProgress?.(ev);

  // ---- inputs, all checked before anything changes
  const ctx = await openContext(spec.context);
  const dfPath = spec.dockerfile === undefined ? path.join(ctx.dir, 'Dockerfile') : path.resolve(ctx.dir, spec.dockerfile);
  const relName = path.relative(process.cwd(), dfPath);
  const dfName = relName === '' || relName.startsWith('..') ? dfPath : relName;
  let dfText: string;
  try {
    dfText = await fsp.readFile(dfPath, 'utf8');
  } catch (e) {
    return fail(invalidSpec(dfName, [`cannot read the Dockerfile (${(e as NodeJS.ErrnoException).code ?? String(e)}): give its path with -f, or put a Dockerfile in the context ${ctx.dir}`]));
  }
  const df = parseDockerfile(dfText, dfName);
  const badArgs = Object.keys(spec.buildArgs ?? {}).filter((k) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k));
  if (badArgs.length > 0) fail(invalidSpec('--build-arg', badArgs.map((k) => `${JSON.stringify(k)} is not a valid name: write NAME=value with NAME of letters, digits and _`)));
  const tags = [...new Set(spec.tags)];
  for (const t of tags) parseReference(t); // throws InvalidSpec naming the tag
  const { meta, stages } = splitStages(df);
  const targetIndex = spec.target === undefined ? stages.length - 1 : stages.findIndex((s) => s.name === spec.target!.toLowerCase());
  if (targetIndex < 0) {
    fail(invalidSpec('--target', [`no stage named ${JSON.stringify(spec.target)} in ${dfName}: its stages are ${stages.map((s) => s.name ?? `#${s.index}`).join(', ')}`]));
  }
  const built = stages.slice(0, targetIndex + 1);
  const extraLabel = spec.labels && Object.keys(spec.labels).length > 0 ? 1 : 0;
  const total = meta.length + built.reduce((n, s) => n + 1 + s.body.length, 0) + extraLabel;

  const cache = openCache(path.join(deps.roots.root, 'build', 'cache'));
  const tmpRoot = path.join(deps.roots.root, 'build', 'tmp');
  await cleanStale(deps, tmpRoot);
  const tmp = path.join(tmpRoot, `${process.pid}-${randomSuffix()}`);
  await fsp.mkdir(tmp, { recursive: true, mode: 0o700 });

  const buildArgs = new Map(Object.entries(spec.buildArgs ?? {}));
  const usedArgs = new Set<string>();
  let step = 0;
  let cachedSteps = 0;
  const mounts: string[] = [];

  /** Names an instruction in errors: the file, the line and the instruction as written. */
  const where = (ins: Instruction): string => (ins.line === 0 ? `--label` : `${dfName}:${ins.line}: ${ins.original}`);
  /** Rethrow a failure of `ins` naming the file, the line and the instruction. */
  const inStep = async <A>(ins: Instruction, f: () => Promise<A>): Promise<A> => {
    try {
      return await f();
    } catch (e) {
      const err = toEngineError(e);
      if (err._tag === 'InvalidSpec' && (err.source.startsWith(`${dfName}:`) || err.source === where(ins))) throw e;
      throw new EngineFailure(located(err, where(ins)), { cause: e });
    }
  };

  try {
    return await store.withLease(async () => {
      // ---- ARGs before the first FROM
      const metaArgs = new Map<string, string | undefined>();
      for (const ins of meta) {
        step++;
        progress({ type: 'step', step, total, instruction: ins.original });
        for (const [k, v] of argDecls(ins, (n) => metaArgs.get(n), df.escape, where(ins))) {
          if (buildArgs.has(k)) usedArgs.add(k);
          metaArgs.set(k, buildArgs.get(k) ?? v);
        }
      }
      const metaLookup: Lookup = (n) => metaArgs.get(n);

      const finished = new Map<number, State>();
      const byName = new Map<string, number>();
      let last: State | undefined;
      for (const stage of built) {
        // ---- FROM
        step++;
        progress({ type: 'step', step, total, instruction: stage.from.original });
        let state = await inStep(stage.from, async () => {
          const ref = expandWord(stage.from.rest.split(/\s+/)[0] ?? '', metaLookup, df.escape, where(stage.from));
          if (ref === '') fail(invalidSpec(where(stage.from), ['FROM needs an image: FROM busybox, FROM scratch or FROM <stage>']));
          const st = byName.get(ref.toLowerCase());
          if (st !== undefined) return finished.get(st) as State;
          if (ref === 'scratch') return scratchState();
          return baseState(deps, ref, progress);
        });
        progress({ type: 'done', imageId: state.id });

        const sv = new StageVars(buildArgs, metaArgs, usedArgs);
        let cmdSet = false;
        const onbuild = (state.config.config['OnBuild'] as string[] | null | undefined) ?? [];
        if (onbuild.length > 0) {
          // the base's triggers run now, as part of FROM; the child does not inherit them
          state = stateWith(state, (c) => { delete c.config['OnBuild']; });
          for (const trig of onbuild) {
            const ins = { ...(parseDockerfile(trig, `${dfName} (ONBUILD of the base of line ${stage.from.line})`).instructions[0] as Instruction), line: stage.from.line };
            if (['FROM', 'ONBUILD', 'MAINTAINER'].includes(ins.cmd)) fail(invalidSpec(where(stage.from), [`ONBUILD ${ins.cmd} is not allowed as a trigger`]));
            progress({ type: 'output', stream: 'stdout', text: `# Executing ONBUILD trigger: ${trig}\n` });
            state = await inStep(ins, () => execute(ins));
          }
        }

        /** One instruction of this stage: cached or executed, the next state. */
        async function execute(ins: Instruction): Promise<State> {
          const env = sv.lookup(state);
          const w = where(ins);
          const shellOf = (): string[] => (state.config.config['Shell'] as string[] | undefined) ?? DEFAULT_SHELL;
          const nop = (text: string): string => `${shellOf().join(' ')} #(nop) ${text}`;
          const metaStep = async (createdBy: string, change: (c: ConfigJson) => void): Promise<State> =>
            commit(createdBy, undefined, change);
          /** The next state from the cache, or made by `make` (a layer or none) and `change`. */
          const commit = async (createdBy: string, make: (() => Promise<Descriptor | undefined>) | undefined, change: (c: ConfigJson) => void, extraKey = ''): Promise<State> => {
            const key = sha256(`${state.id}\n${createdBy}\n${extraKey}`);
            if (!spec.noCache) {
              const hit = await cache.get(store, key);
              if (hit) {
                cachedSteps++;
                progress({ type: 'cached' });
                return stateOf(hit.config as ConfigJson, hit.layers);
              }
            }
            const layer = make ? await make() : undefined;
            const created = isoTime();
            const config = clone(state.config);
            change(config);
            config.created = created;
            config.history = [...config.history, { created, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) }];
            const layers = layer ? [...state.layers, layer] : state.layers;
            if (layer) config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, layer.digest] };
            const next = stateOf(config, layers);
            await cache.put(key, { config, layers });
            return next;
          };
          const setCfg = (k: string, v: unknown) => (c: ConfigJson): void => { c.config[k] = v; };

          switch (ins.cmd) {
            case 'RUN': {
              checkFlags(ins, [], w);
              const argv = ins.json ?? [...shellOf(), ins.rest];
              if (ins.rest === '') fail(invalidSpec(w, ['RUN needs a command']));
              const args = sv.argEnv(state);
              const shown = ins.json ? `${JSON.stringify(ins.json)}` : `${shellOf().join(' ')} ${ins.rest}`;
              const createdBy = args.length > 0 ? `|${args.length} ${args.join(' ')} ${shown}` : shown;
              return commit(createdBy, () => runStep(deps, state, argv, args, w, tmp, progress), () => undefined);
            }
            case 'ENV': {
              checkFlags(ins, [], w);
              const pairs = parsePairs(ins, env, df.escape, w, true);
              return metaStep(nop(`ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`), (c) => {
                const list = ((c.config['Env'] as string[] | undefined) ?? []).slice();
                for (const [k, v] of pairs) {
                  const i = list.findIndex((e) => e.split('=', 1)[0] === k);
                  if (i >= 0) list[i] = `${k}=${v}`;
                  else list.push(`${k}=${v}`);
                }
                c.config['Env'] = list;
              });
            }
            case 'ARG': {
              checkFlags(ins, [], w);
              const decls = argDecls(ins, env, df.escape, w);
              for (const [k, v] of decls) sv.declare(k, v);
              return metaStep(nop(`ARG ${decls.map(([k, v]) => (v === undefined ? k : `${k}=${v}`)).join(' ')}`), () => undefined);
            }
            case 'LABEL': {
              checkFlags(ins, [], w);
              const pairs = parsePairs(ins, env, df.escape, w, true);
              return metaStep(nop(`LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`), (c) => {
                c.config['Labels'] = { ...((c.config['Labels'] as Record<string, string> | null) ?? {}), ...Object.fromEntries(pairs) };
              });
            }
            case 'MAINTAINER': {
              const who = ins.rest;
              return metaStep(nop(`MAINTAINER ${who}`), (c) => { c.author = who; });
            }
            case 'EXPOSE': {
              checkFlags(ins, [], w);
              const ports = expandWords(ins.rest, env, df.escape, w).flatMap((p) => exposed(p, w));
              if (ports.length === 0) fail(invalidSpec(w, ['EXPOSE needs a port: EXPOSE 80 or EXPOSE 53/udp']));
              return metaStep(nop(`EXPOSE ${ports.join(' ')}`), (c) => {
                c.config['ExposedPorts'] = { ...((c.config['ExposedPorts'] as Record<string, unknown> | null) ?? {}), ...Object.fromEntries(ports.map((p) => [p, {}])) };
              });
            }
            case 'VOLUME': {
              checkFlags(ins, [], w);
              const vols = (ins.json ?? expandWords(ins.rest, env, df.escape, w)).map((v) => (ins.json ? expandWord(v, env, df.escape, w) : v));
              if (vols.length === 0 || vols.some((v) => v.trim() === '')) fail(invalidSpec(w, ['VOLUME needs a path: VOLUME /data']));
              return metaStep(nop(`VOLUME ${JSON.stringify(vols)}`), (c) => {
                c.config['Volumes'] = { ...((c.config['Volumes'] as Record<string, unknown> | null) ?? {}), ...Object.fromEntries(vols.map((v) => [v, {}])) };
              });
            }
            case 'USER': {
              checkFlags(ins, [], w);
              const u = expandWord(ins.rest, env, df.escape, w);
              if (u === '') fail(invalidSpec(w, ['USER needs a user: USER name, USER uid or USER uid:gid']));
              return metaStep(nop(`USER ${u}`), setCfg('User', u));
            }
            case 'WORKDIR': {
              checkFlags(ins, [], w);
              const d = expandWord(ins.rest, env, df.escape, w);
              if (d === '') fail(invalidSpec(w, ['WORKDIR needs a path']));
              const dir = path.posix.resolve((state.config.config['WorkingDir'] as string | undefined) || '/', d);
              // a layer only when the directory is new (it is created, owned by root)
              return commit(nop(`WORKDIR ${dir}`), () => workdirLayer(deps, state, dir, tmp, mounts), setCfg('WorkingDir', dir));
            }
            case 'CMD':
            case 'ENTRYPOINT': {
              checkFlags(ins, [], w);
              const argv = ins.json ?? (ins.rest === '' ? [] : [...shellOf(), ins.rest]);
              const key = ins.cmd === 'CMD' ? 'Cmd' : 'Entrypoint';
              const wasCmdSet = cmdSet;
              if (ins.cmd === 'CMD') cmdSet = true;
              return metaStep(nop(`${ins.cmd} ${JSON.stringify(argv)}`), (c) => {
                c.config[key] = argv;
                // as Docker: an ENTRYPOINT resets a CMD inherited from the base image
                if (ins.cmd === 'ENTRYPOINT' && !wasCmdSet) c.config['Cmd'] = null;
              });
            }
            case 'STOPSIGNAL': {
              checkFlags(ins, [], w);
              const sig = expandWord(ins.rest, env, df.escape, w);
              if (signalNumber(sig) === undefined) fail(invalidSpec(w, [`unknown signal ${JSON.stringify(sig)}: write e.g. SIGTERM, SIGINT or 15`]));
              return metaStep(nop(`STOPSIGNAL ${sig}`), setCfg('StopSignal', sig));
            }
            case 'SHELL': {
              checkFlags(ins, [], w);
              if (!ins.json || ins.json.length === 0) fail(invalidSpec(w, ['SHELL needs the JSON form: SHELL ["/bin/bash", "-c"]']));
              return metaStep(nop(`SHELL ${JSON.stringify(ins.json)}`), setCfg('Shell', ins.json));
            }
            case 'HEALTHCHECK': {
              const hc = healthcheck(ins, w);
              return metaStep(nop(`HEALTHCHECK ${hc.Test[0] === 'NONE' ? 'NONE' : JSON.stringify(hc)}`), setCfg('Healthcheck', hc));
            }
            case 'ONBUILD': {
              const trig = ins.rest;
              const word = (trig.split(/\s+/)[0] ?? '').toUpperCase();
              if (trig === '') fail(invalidSpec(w, ['ONBUILD needs an instruction: ONBUILD RUN make']));
              if (['ONBUILD', 'FROM', 'MAINTAINER'].includes(word)) fail(invalidSpec(w, [`ONBUILD ${word} is not allowed`]));
              parseDockerfile(trig, w); // an unknown trigger instruction is an error now, not when the image is used
              return metaStep(nop(`ONBUILD ${trig}`), (c) => { c.config['OnBuild'] = [...((c.config['OnBuild'] as string[] | null) ?? []), trig]; });
            }
            case 'COPY':
            case 'ADD':
              return copyStep(ins, env);
            default:
              return fail(invalidSpec(w, [`${ins.cmd} is not allowed here`]));
          }

          async function copyStep(ins: Instruction, env: Lookup): Promise<State> {
            const add = ins.cmd === 'ADD';
            checkFlags(ins, add ? ['chown', 'chmod'] : ['chown', 'chmod', 'from'], w);
            const flag = (n: string): string | undefined => {
              const f = ins.flags.find(([k]) => k === n);
              return f === undefined ? undefined : expandWord(f[1] ?? '', env, df.escape, w);
            };
            const words = ins.json ? ins.json.map((x) => expandWord(x, env, df.escape, w)) : expandWords(ins.rest, env, df.escape, w);
            if (words.length < 2) fail(invalidSpec(w, [`${ins.cmd} needs at least one source and a destination: ${ins.cmd} src /dest`]));
            const dest = words[words.length - 1] as string;
            const srcs = words.slice(0, -1);
            const chmod = flag('chmod');
            if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod)) fail(invalidSpec(w, [`--chmod=${chmod}: expected an octal mode such as 755 or 0644`]));
            const chown = flag('chown');
            if (chown !== undefined && chown === '') fail(invalidSpec(w, ['--chown needs a user: --chown=user[:group]']));
            const from = flag('from');
            for (const s of srcs) {
              if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
                if (add) fail(unsupported(`${w}: ADD of a URL (${s}): download it into the build context and ADD or COPY the file`));
                fail(invalidSpec(w, [`COPY cannot fetch ${s}: download it into the build context and COPY the file`]));
              }
            }
            const destAbs = dest.startsWith('/') ? dest : path.posix.join((state.config.config['WorkingDir'] as string | undefined) || '/', dest);
            const destDir = dest.endsWith('/') || dest.endsWith('/.') || dest === '.';

            // sources: the context, another stage's rootfs, or an image's
            let srcRoot = ctx.dir;
            let skip = (rel: string): boolean => ctx.ignored(rel);
            let view: string | undefined;
            try {
              if (from !== undefined) {
                if (from === '') fail(invalidSpec(w, ['--from needs a stage name, a stage index or an image']));
                const idx = /^[0-9]+$/.test(from) ? Number(from) : byName.get(from.toLowerCase());
                let src: State;
                if (idx !== undefined) {
                  const s = finished.get(idx);
                  if (s === undefined) {
                    fail(invalidSpec(w, [`--from=${from}: ${idx >= stage.index ? 'a stage can only copy from an earlier stage' : `no finished stage ${from}`}; stages before this one: ${[...byName.keys()].join(', ') || '(none named)'}`]));
                  }
                  src = s as State;
                } else {
                  if (!/^[a-z0-9]/.test(from) || /\s/.test(from)) fail(invalidSpec(w, [`--from=${from}: not a stage of ${dfName} and not an image reference`]));
                  // an image named by --from must be here already: it is never pulled in passing
                  src = await baseState(deps, from, progress, false).catch((e: unknown): never => {
                    if (hasTag(e, 'NotFound') || hasTag(e, 'InvalidSpec')) {
                      fail(invalidSpec(w, [`--from=${from}: no stage of that name in ${dfName} (stages before this one: ${[...byName.keys()].join(', ') || 'none named'}), and no image ${from} here: ${toEngineError(e)._tag === 'InvalidSpec' ? (e as Error).message : 'pull it first'}`]));
                    }
                    throw e;
                  });
                }
                view = path.join(tmp, `from-${randomSuffix()}`);
                await fsp.mkdir(view);
                if (src.layers.length > 0) {
                  await ensureUnpacked(store, src);
                  mounts.push(view);
                  await mountPrivate(await store.layers.view(chainIds(src.config.rootfs.diff_ids as Digest[]), view));
                }
                srcRoot = view;
                skip = () => false;
              }
              const items = await resolveSources(srcs, srcRoot, skip, from === undefined ? ctx : undefined, w, ins.cmd);
              const many = srcs.length > 1 || (items.some((i) => i.fromWildcard) && items.length > 1);
              if (many && !destDir) fail(invalidSpec(w, [`${ins.cmd} with more than one source file needs a destination directory ending in /: ${ins.cmd} ... ${dest}/`]));
              const digest = await digestItems(items.flatMap((i) => i.entries.map((e) => ({ ...e, rel: `${i.rel}/${e.rel}` }))));
              const kind = items.length === 1 && items[0]!.stat.isDirectory() ? 'dir' : items.length === 1 ? 'file' : 'multi';
              const createdBy = nop(`${ins.cmd} ${[chown ? `--chown=${chown}` : '', chmod ? `--chmod=${chmod}` : '', from !== undefined ? `--from=${from}` : ''].filter(Boolean).map((x) => `${x} `).join('')}${kind}:${digest} in ${destAbs} `);
              return await commit(createdBy, async () => {
                const layer = await changeRootfs(deps, state, tmp, mounts, 'copy', async (root) => {
                  const owner = chown === undefined ? undefined : await resolveOwner(root, chown, w);
                  const mode = chmod === undefined ? undefined : parseInt(chmod, 8);
                  let format: ArchiveFormat | undefined;
                  for (const it of items) {
                    if (it.stat.isDirectory()) {
                      await copyTree(root, it, destAbs, owner, mode);
                    } else if (add && it.stat.isFile() && (format = await archiveFormat(it.abs)) !== undefined) {
                      await addArchive(root, it.abs, format, destAbs, owner, tmp, w);
                    } else {
                      const target = destDir || (await isDirIn(root, destAbs)) ? path.posix.join(destAbs, path.posix.basename(it.rel)) : destAbs;
                      await copyEntry(root, it.abs, it.stat, target, owner, mode);
                    }
                  }
                });
                return layer;
              }, () => undefined);
            } finally {
              if (view !== undefined) {
                await unmountAll(view, mounts);
                await fsp.rm(view, { recursive: true, force: true });
              }
            }
          }
        }

        for (const ins of stage.body) {
          step++;
          progress({ type: 'step', step, total, instruction: ins.original });
          state = await inStep(ins, () => execute(ins));
          progress({ type: 'done', imageId: state.id });
        }
        if (stage === built[built.length - 1] && extraLabel) {
          // quoted so that the lexer gives each key and value back as it is ($ and \ escaped, no substitution)
          const q = (x: string): string => `"${[...x].map((c) => (c === '"' || c === '$' || c === df.escape ? `${df.escape}${c}` : c)).join('')}"`;
          const rest = Object.entries(spec.labels ?? {}).map(([k, v]) => `${q(k)}=${q(v)}`).join(' ');
          const text = `LABEL ${rest}`;
          const ins: Instruction = { cmd: 'LABEL', line: 0, original: text, flags: [], rest };
          step++;
          progress({ type: 'step', step, total, instruction: text });
          state = await inStep(ins, () => execute(ins));
          progress({ type: 'done', imageId: state.id });
        }
        finished.set(stage.index, state);
        if (stage.name !== undefined) byName.set(stage.name, stage.index);
        last = state;
      }
      const unused = [...buildArgs.keys()].filter((k) => !usedArgs.has(k));
      if (unused.length > 0) progress({ type: 'warning', text: `one or more build args were not consumed: ${unused.join(', ')}` });

      // ---- the result: stored, named, unpacked
      const fin = last as State;
      const target = fin.manifest ?? (await storeImage(store, bytesOf(fin.config), fin.layers));
      const names: string[] = [];
      for (const t of tags) names.push(await store.tag(target, t));
      if (names.length === 0) await store.names.keepUnnamed(target); // `docker build .`: run it by its ID
      const img = await store.load(target, names);
      await store.unpack(img);
      return { id: img.id, digest: target.digest, names, steps: total, cached: cachedSteps };
    });
  } finally {
    await unmountAll(tmp, mounts);
    await fsp.rm(tmp, { recursive: true, force: true });
  }
};

/** The same error (same tag) naming the Dockerfile, line and instruction it happened at. */
const located = (e: EngineError, at: string): EngineError => {
  switch (e._tag) {
    case 'InvalidSpec':
      return invalidSpec(at, e.problems.map((p) => `${e.source}: ${p}`));
    case 'Unsupported':
      return e.what.includes(at) ? e : unsupported(`${at}: ${e.what}`);
    case 'NotFound':
    case 'AlreadyExists':
      return { ...e, hint: `at ${at}${e.hint ? `; ${e.hint}` : ''}` };
    case 'Conflict':
      return { ...e, reason: `${e.reason} (at ${at})` };
    case 'Kernel':
    case 'Remote':
    case 'Unauthorized':
    case 'Internal':
      return { ...e, message: `${at}: ${e.message}` };
    case 'Corrupt':
      return { ...e, object: `${e.object} (at ${at})` };
  }
};

/* ------------------------------------------------------------ instructions */

const checkFlags = (ins: Instruction, allowed: readonly string[], where: string): void => {
  for (const [k] of ins.flags) {
    if (!allowed.includes(k)) {
      fail(invalidSpec(where, [`unknown flag --${k}${allowed.length > 0 ? `: ${ins.cmd} takes ${allowed.map((a) => `--${a}`).join(', ')}` : `: ${ins.cmd} takes no flags`}`]));
    }
  }
};

/** `ARG a b=1`: names and defaults (substituted). */
const argDecls = (ins: Instruction, env: Lookup, escape: string, where: string): [string, string | undefined][] => {
  const words = ins.rest === '' ? [] : (ins.rest.match(/(?:[^\s"']+|"(?:\\.|[^"])*"|'[^']*')+/g) ?? []);
  if (words.length === 0) fail(invalidSpec(where, ['ARG needs a name: ARG NAME or ARG NAME=default']));
  return words.map((wd) => {
    const eq = wd.indexOf('=');
    const name = eq < 0 ? wd : wd.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) fail(invalidSpec(where, [`${JSON.stringify(name)} is not a valid ARG name`]));
    return [name, eq < 0 ? undefined : expandWord(wd.slice(eq + 1), env, escape, where)];
  });
};

const exposed = (p: string, where: string): string[] => {
  const m = /^([0-9]+)(?:-([0-9]+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) return fail(invalidSpec(where, [`${JSON.stringify(p)} is not a port: write 80, 80/tcp, 53/udp or 8000-8010`]));
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (a < 1 || b > 65535 || b < a) fail(invalidSpec(where, [`${JSON.stringify(p)}: ports are 1-65535`]));
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const out: string[] = [];
  for (let i = a; i <= b; i++) out.push(`${i}/${proto}`);
  return out;
};

const healthcheck = (ins: Instruction, where: string): Record<string, unknown> & { Test: string[] } => {
  checkFlags(ins, ['interval', 'timeout', 'start-period', 'start-interval', 'retries'], where);
  const word = (ins.rest.split(/\s+/)[0] ?? '').toUpperCase();
  if (word === 'NONE') {
    if (ins.rest.trim().toUpperCase() !== 'NONE' || ins.flags.length > 0) fail(invalidSpec(where, ['HEALTHCHECK NONE takes nothing else']));
    return { Test: ['NONE'] };
  }
  if (word !== 'CMD') fail(invalidSpec(where, ['expected HEALTHCHECK [--interval=..] CMD command, or HEALTHCHECK NONE']));
  const cmdText = ins.rest.slice(3).trim();
  if (cmdText === '') fail(invalidSpec(where, ['HEALTHCHECK CMD needs a command']));
  let json: string[] | undefined;
  try {
    const v = JSON.parse(cmdText) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) json = v as string[];
  } catch {
    json = undefined;
  }
  const hc: Record<string, unknown> & { Test: string[] } = { Test: json ? ['CMD', ...json] : ['CMD-SHELL', cmdText] };
  for (const [k, v] of ins.flags) {
    if (k === 'retries') {
      if (!/^[0-9]+$/.test(v ?? '')) fail(invalidSpec(where, [`--retries=${v ?? ''}: expected a whole number`]));
      hc['Retries'] = Number(v);
    } else {
      const field = { interval: 'Interval', timeout: 'Timeout', 'start-period': 'StartPeriod', 'start-interval': 'StartInterval' }[k] as string;
      hc[field] = durationNs(v ?? '', `${where} --${k}`);
    }
  }
  return hc;
};

/** Split into ARGs before the first FROM and stages. */
const splitStages = (df: Dockerfile): { meta: Instruction[]; stages: Stage[] } => {
  const meta: Instruction[] = [];
  const stages: { index: number; name?: string; from: Instruction; body: Instruction[] }[] = [];
  const names = new Set<string>();
  for (const ins of df.instructions) {
    if (ins.cmd === 'FROM') {
      const words = ins.rest.split(/\s+/).filter((x) => x !== '');
      for (const [k, v] of ins.flags) {
        if (k !== 'platform') fail(invalidSpec(`${df.file}:${ins.line}: FROM`, [`unknown flag --${k}: FROM takes --platform`]));
        const p = hostPlatform();
        if (v !== `${p.os}/${p.architecture}`) fail(unsupported(`${df.file}:${ins.line}: FROM --platform=${v}: only this host's platform (${p.os}/${p.architecture}) is built`));
      }
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toUpperCase() === 'AS')) {
        fail(invalidSpec(`${df.file}:${ins.line}: FROM`, ['expected FROM image or FROM image AS name']));
      }
      const name = words.length === 3 ? words[2]!.toLowerCase() : undefined;
      if (name !== undefined) {
        if (!/^[a-z][a-z0-9._-]*$/.test(name)) fail(invalidSpec(`${df.file}:${ins.line}: FROM`, [`invalid stage name ${JSON.stringify(words[2])}: use letters, digits, '.', '_' and '-', starting with a letter`]));
        if (names.has(name)) fail(invalidSpec(`${df.file}:${ins.line}: FROM`, [`a stage named ${JSON.stringify(name)} already exists; give this one another name`]));
        names.add(name);
      }
      stages.push({ index: stages.length, ...(name !== undefined ? { name } : {}), from: ins, body: [] });
    } else if (stages.length === 0) {
      if (ins.cmd !== 'ARG') fail(invalidSpec(`${df.file}:${ins.line}: ${ins.cmd}`, [`${ins.cmd} before the first FROM: only ARG may come before FROM; start the Dockerfile with FROM <image>`]));
      meta.push(ins);
    } else {
      stages[stages.length - 1]!.body.push(ins);
    }
  }
  if (stages.length === 0) fail(invalidSpec(df.file, ['no FROM instruction: a Dockerfile starts with FROM <image> (or FROM scratch)']));
  return { meta, stages };
};

/** Build args and ENV as seen by one stage. */
class StageVars {
  readonly declared = new Map<string, string | undefined>();
  constructor(readonly buildArgs: Map<string, string>, readonly metaArgs: Map<string, string | undefined>, readonly used: Set<string>) {}

  declare(name: string, dflt: string | undefined): void {
    if (this.buildArgs.has(name)) this.used.add(name);
    // `ARG X` in a stage takes a value given with --build-arg, else the default of an ARG X before FROM
    this.declared.set(name, this.buildArgs.get(name) ?? dflt ?? this.metaArgs.get(name));
  }

  /** ENV first (it wins over an ARG of the same name), then the ARGs declared in this stage. */
  lookup(state: State): Lookup {
    const env = new Map<string, string>();
    for (const e of (state.config.config['Env'] as string[] | null | undefined) ?? []) {
      const i = e.indexOf('=');
      env.set(i < 0 ? e : e.slice(0, i), i < 0 ? '' : e.slice(i + 1));
    }
    return (n) => env.get(n) ?? this.declared.get(n);
  }

  /** `k=v` of the ARGs with a value that ENV does not shadow (a RUN's extra environment). */
  argEnv(state: State): string[] {
    const envKeys = new Set(((state.config.config['Env'] as string[] | null | undefined) ?? []).map((e) => e.split('=', 1)[0]));
    return [...this.declared].filter(([k, v]) => v !== undefined && !envKeys.has(k)).map(([k, v]) => `${k}=${v}`).sort();
  }
}

const stateWith = (s: State, change: (c: ConfigJson) => void): State => {
  const c = clone(s.config);
  change(c);
  return stateOf(c, s.layers);
};

const scratchState = (): State => {
  const p = hostPlatform();
  return stateOf({ architecture: p.architecture, os: p.os, config: { Env: [DEFAULT_PATH] }, rootfs: { type: 'layers', diff_ids: [] }, history: [] }, []);
};

/** An image in the store (pulled if missing) as a build state. */
const baseState = async (deps: BuildDeps, ref: string, progress: (ev: BuildEvent) => void, pull = true): Promise<State> => {
  let img;
  try {
    img = await deps.store.resolve(ref);
  } catch (e) {
    if (!hasTag(e, 'NotFound') || !pull) throw e;
    progress({ type: 'output', stream: 'stdout', text: `pulling ${ref}\n` });
    await deps.pullImage(ref);
    img = await deps.store.resolve(ref);
  }
  const raw = JSON.parse((await deps.store.blobs.readAll(img.id)).toString('utf8')) as ConfigJson;
  const config: ConfigJson = { ...raw, config: { ...(raw.config ?? {}) }, history: raw.history ?? [], rootfs: { type: 'layers', diff_ids: [...raw.rootfs.diff_ids] } };
  if (config.config['Env'] === undefined || config.config['Env'] === null) config.config['Env'] = [DEFAULT_PATH];
  // the parent is the base image itself (its ID), even when normalizing changed the JSON
  return { config, layers: [...img.manifest.layers], id: img.id, manifest: img.manifestDescriptor };
};

/** Store the state as an image (unnamed) and unpack its layers; its manifest digest. */
const ensureUnpacked = async (store: Store, s: State): Promise<Descriptor> => {
  const target = await storeImage(store, bytesOf(s.config), s.layers);
  await store.unpack(await store.load(target));
  return target;
};

/* --------------------------------------------------------------------- RUN */

const runStep = async (
  deps: BuildDeps, state: State, argv: readonly string[], argEnv: readonly string[], where: string, tmp: string,
  progress: (ev: BuildEvent) => void,
): Promise<Descriptor> => {
  if (state.layers.length === 0) fail(invalidSpec(where, ['RUN on an empty image (FROM scratch with nothing copied in): there is no program to run; COPY one in first or start FROM an image with a shell']));
  const target = await ensureUnpacked(deps.store, state);
  const c = deps.containers;
  const info = await c.createContainer({
    name: `berth-build-${randomBytes(6).toString('hex')}`,
    image: `berth-build@${target.digest}`,
    entrypoint: [...argv],
    command: [],
    env: [...argEnv],
    networkMode: 'none',
    healthcheck: { test: ['NONE'] },
    labels: { 'berth.build.pid': String(process.pid) },
  });
  try {
    const out = (stream: 'stdout' | 'stderr'): Writable => new Writable({
      write(chunk: Buffer, _enc, cb) {
        progress({ type: 'output', stream, text: chunk.toString('utf8') });
        cb();
      },
    });
    progress({ type: 'running', container: info.id });
    const { session } = await c.startAttached(info.id, { stdout: out('stdout'), stderr: out('stderr'), tty: false });
    await session.done;
    const { exitCode } = await c.waitContainer(info.id);
    if (exitCode !== 0) {
      fail(invalidSpec(where, [`the command returned a non-zero code: ${exitCode}; fix the command (its output is above) and build again`]));
    }
    const p = await c.pathsOf(info.id);
    const tar = path.join(tmp, `layer-${randomSuffix()}.tar`);
    try {
      await writeLayerTar(p.paths.upper, tar, true);
      return await storeLayer(deps.store, tar, `build layer (${where})`);
    } finally {
      await fsp.rm(tar, { force: true });
    }
  } finally {
    await c.removeContainer(info.id, { force: true, volumes: true });
    progress({ type: 'removed', container: info.id });
  }
};

/* ------------------------------------------------------- rootfs changes */

/** Mount the state's rootfs (overlay over an empty upper) at tmp, run `change` on it, and return the upper as a layer. */
const changeRootfs = async (
  deps: BuildDeps, state: State, tmp: string, mounts: string[], what: string, change: (root: string) => Promise<void>,
): Promise<Descriptor | undefined> => {
  const dir = path.join(tmp, `${what}-${randomSuffix()}`);
  const [upper, work, merged, empty] = ['upper', 'work', 'merged', 'empty'].map((d) => path.join(dir, d)) as [string, string, string, string];
  for (const d of [upper, work, merged, empty]) await fsp.mkdir(d, { recursive: true, mode: 0o755 });
  try {
    let lowers: string[];
    if (state.layers.length > 0) {
      await ensureUnpacked(deps.store, state);
      lowers = chainIds(state.config.rootfs.diff_ids as Digest[]).map((c) => deps.store.layers.diffPath(c)).reverse();
    } else lowers = [empty];
    mounts.push(merged);
    await mountPrivate({ type: 'overlay', source: 'overlay', target: merged, options: [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`] });
    try {
      await change(merged);
    } finally {
      await unmountAll(merged, mounts);
    }
    if ((await fsp.readdir(upper)).length === 0 && what === 'workdir') return undefined;
    const tar = path.join(dir, 'layer.tar');
    await writeLayerTar(upper, tar);
    return await storeLayer(deps.store, tar, `build layer (${what})`);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
};

const workdirLayer = async (deps: BuildDeps, state: State, dir: string, tmp: string, mounts: string[]): Promise<Descriptor | undefined> =>
  changeRootfs(deps, state, tmp, mounts, 'workdir', async (root) => {
    const host = await resolveInRoot(root, dir);
    const st = await fsp.stat(host).catch(() => undefined);
    if (st?.isDirectory()) return;
    await mkdirIn(root, dir, undefined);
  });

/** Unmount every mount at or below `prefix` (in the list), newest first. */
const unmountAll = async (prefix: string, mounts: string[]): Promise<void> => {
  for (let i = mounts.length - 1; i >= 0; i--) {
    const m = mounts[i] as string;
    if (m !== prefix && !m.startsWith(`${prefix}/`)) continue;
    for (let n = 0; n < 8 && (await isMountPoint(m, true)); n++) await runProgram('umount', [m]);
    if (await isMountPoint(m, true)) await runProgram('umount', ['-l', m]);
    mounts.splice(i, 1);
  }
};

/** Builds killed midway: their tmp dirs (mounts undone) and RUN containers. */
const cleanStale = async (deps: BuildDeps, tmpRoot: string): Promise<void> => {
  let names: string[] = [];
  try {
    names = await fsp.readdir(tmpRoot);
  } catch {
    names = [];
  }
  for (const n of names) {
    const pid = Number(n.split('-')[0]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const dir = path.join(tmpRoot, n);
    const info = await fsp.readFile('/proc/self/mountinfo', 'utf8');
    const stale = info.split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(`${dir}/`));
    for (const m of stale.reverse()) await runProgram('umount', ['-l', m]);
    await fsp.rm(dir, { recursive: true, force: true });
  }
  const leftovers = await deps.containers.listContainers({ all: true, filters: { label: ['berth.build.pid'] } }).catch(() => []);
  for (const c of leftovers) {
    const pid = Number(c.spec.labels?.['berth.build.pid']);
    if (pid !== process.pid && !pidAlive(pid)) await deps.containers.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
  }
};
