/**
 * apply(plan): carries a plan out through the Engine facade.
 *
 * Each change becomes one or two steps ("down": remove the current object,
 * "up": create/update the desired one) in a dependency graph:
 *   - a container comes up after its image, networks, volumes and the
 *     containers it depends on (healthy / completed when it asks for that);
 *   - a network, volume or image goes down after every container removal;
 *   - a container goes down after the containers that depend on it;
 *   - a replaced object comes up after its old self went down (unless the
 *     container is replaced create-before-delete, all in its "up" step).
 * Steps run with bounded parallelism; transient engine failures are retried
 * with jittered backoff; a failed step skips only what depends on it. The
 * result lists, per resource, what was done, what failed and what was skipped.
 */
import type { ContainerSpec, Engine, HealthcheckSpec, ImageInfo } from '../../engine/engine.js';
import { conflict, EngineFailure, hasTag, toEngineError, unsupported, notFound, type EngineError } from '../../engine/errors.js';
import type { Desired, DesiredContainer } from './desired.js';
import { RESOURCE, SPEC_HASH, STACK } from './labels.js';
import type { Action, Change, Plan } from './plan.js';

export type ApplyPhase = 'start' | 'progress' | 'retry' | 'done' | 'failed' | 'skipped';

export interface ApplyEvent {
  /** "containers.web" */
  readonly resource: string;
  readonly action: Action;
  readonly phase: ApplyPhase;
  readonly message?: string;
}

export interface ApplyOptions {
  /** Steps in flight at once that create, start or change something (default 8). */
  readonly concurrency?: number;
  /**
   * Container removals in flight at once, besides those (default: 4 x concurrency, at least 32).
   * A removal mostly waits (for the container to stop, up to its stop timeout) and costs
   * little CPU, so bounding it like a create would turn a stack's teardown into rounds of
   * stop timeouts.
   */
  readonly removeConcurrency?: number;
  /** Attempts for a transiently failing engine call (default 4). */
  readonly attempts?: number;
  /** First backoff delay (default 200 ms), doubled per attempt, with jitter. */
  readonly backoffMs?: number;
  /** Longest wait for a container to become healthy (default: from its healthcheck, at least 30 s). */
  readonly healthTimeoutMs?: number;
  readonly onEvent?: (ev: ApplyEvent) => void;
  readonly signal?: AbortSignal;
}

export interface ResourceResult {
  readonly resource: string;
  readonly name: string;
  readonly action: Action;
  readonly status: 'done' | 'failed' | 'skipped';
  /** What was done, in order ("created container web-db", "started", "healthy (checked by Berth)"). */
  readonly steps: readonly string[];
  readonly error?: EngineError;
  /** For skipped resources: the failed resource they waited on. */
  readonly because?: string;
}

export interface ApplyResult {
  readonly ok: boolean;
  readonly results: readonly ResourceResult[];
}

const resourceId = (c: Change): string => `${c.kind}s.${c.key}`;

/** Engine failures worth another try: locks, busy kernel objects, interrupted calls, remote hiccups. */
export const isTransient = (e: unknown): boolean => {
  const err = toEngineError(e);
  if (err._tag === 'Remote') return err.status === undefined || err.status >= 500 || err.status === 429;
  if (err._tag === 'Kernel') return ['EBUSY', 'EAGAIN', 'EINTR', 'ETIMEDOUT', 'EWOULDBLOCK'].includes(err.errno);
  if (err._tag === 'Conflict') return /lock|busy|in progress|try again/i.test(err.reason);
  return false;
};

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(new EngineFailure(conflict('apply', 'stack', 'aborted'))); return; }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(new EngineFailure(conflict('apply', 'stack', 'aborted'))); }, { once: true });
  });

interface Step {
  readonly id: string;
  readonly change: Change;
  readonly phase: 'down' | 'up';
  readonly deps: Set<string>;
}

/** The steps of a plan and their dependencies (exported for tests). */
export const buildSteps = (plan: Plan): Map<string, Step> => {
  const steps = new Map<string, Step>();
  const add = (change: Change, phase: 'down' | 'up'): Step => {
    const id = `${phase}:${change.kind}/${change.key}${change.action === 'delete' && change.kind === 'container' ? `@${change.current?.id ?? ''}` : ''}`;
    const s: Step = { id, change, phase, deps: new Set() };
    steps.set(id, s);
    return s;
  };
  const ups = new Map<string, Step>(); // "container/web" -> up step
  const downs = new Map<string, Step[]>();
  for (const c of plan.changes) {
    if (c.action === 'noop') continue;
    const k = `${c.kind}/${c.key}`;
    const twoStep = c.action === 'replace' && (c.kind === 'network' || c.kind === 'volume' || (c.kind === 'container' && c.order === 'delete-before-create'));
    if (c.action === 'delete' || twoStep) {
      const d = add(c, 'down');
      downs.set(k, [...(downs.get(k) ?? []), d]);
    }
    if (c.action !== 'delete') {
      const u = add(c, 'up');
      ups.set(k, u);
      const own = downs.get(k);
      if (twoStep && own) for (const d of own) u.deps.add(d.id);
    }
  }
  const removesContainer = [...steps.values()].filter((s) => s.change.kind === 'container' &&
    (s.phase === 'down' || (s.change.action === 'replace' && s.change.order === 'create-before-delete')));
  const d = plan.desired;
  const netKeyByName = new Map(Object.values(d.networks).map((n) => [n.spec.name, n.key]));
  for (const s of steps.values()) {
    const c = s.change;
    if (s.phase === 'up' && c.kind === 'container') {
      const dc = d.containers[c.key];
      if (!dc) continue;
      const need = [
        ...(dc.imageKey !== undefined ? [`image/${dc.imageKey}`] : []),
        ...Object.keys(dc.networks).flatMap((n) => (netKeyByName.has(n) ? [`network/${netKeyByName.get(n)}`] : [])),
        ...dc.volumes.map((v) => `volume/${v}`),
        ...Object.keys(dc.dependsOn).map((x) => `container/${x}`),
      ];
      for (const n of need) {
        const u = ups.get(n);
        if (u) s.deps.add(u.id);
      }
    }
    if (s.phase === 'down' && c.kind !== 'container') {
      for (const r of removesContainer) s.deps.add(r.id);
    }
    if (s.phase === 'down' && c.kind === 'container') {
      // Dependents go first: a container that depends on this one, being removed too.
      for (const other of steps.values()) {
        if (other.phase !== 'down' || other.change.kind !== 'container' || other === s) continue;
        if (d.containers[other.change.key]?.dependsOn[c.key] !== undefined) s.deps.add(other.id);
      }
    }
  }
  return steps;
};

export const apply = async (engine: Engine, plan: Plan, opts: ApplyOptions = {}): Promise<ApplyResult> => {
  if (plan.conflicts.length > 0) {
    throw new EngineFailure(conflict('stack', plan.stack, `objects in the way that the stack does not own:\n  - ${plan.conflicts.join('\n  - ')}`));
  }
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const removeConcurrency = Math.max(1, opts.removeConcurrency ?? Math.max(32, 4 * concurrency));
  /** A container's "down" step: stop (a wait) and remove, in a pool of its own. */
  const isRemoval = (s: Step): boolean => s.phase === 'down' && s.change.kind === 'container';
  const attempts = Math.max(1, opts.attempts ?? 4);
  const backoff = opts.backoffMs ?? 200;
  const emit = opts.onEvent ?? (() => undefined);
  const steps = buildSteps(plan);
  const state = new Map<string, 'pending' | 'running' | 'done' | 'failed' | 'skipped'>();
  for (const id of steps.keys()) state.set(id, 'pending');
  const log = new Map<string, string[]>();
  const errors = new Map<string, EngineError>();
  const because = new Map<string, string>();
  const note = (s: Step, msg: string): void => {
    const r = resourceId(s.change);
    log.set(r, [...(log.get(r) ?? []), msg]);
    emit({ resource: r, action: s.change.action, phase: 'progress', message: msg });
  };

  const retrying = async <A>(s: Step, what: string, f: () => Promise<A>): Promise<A> => {
    for (let i = 1; ; i++) {
      try {
        return await f();
      } catch (e) {
        if (i >= attempts || !isTransient(e)) throw e;
        const delay = backoff * 2 ** (i - 1) * (0.5 + Math.random());
        emit({ resource: resourceId(s.change), action: s.change.action, phase: 'retry', message: `${what}: ${toEngineError(e)._tag}, attempt ${i + 1}/${attempts} in ${Math.round(delay)} ms` });
        await sleep(delay, opts.signal);
      }
    }
  };
  const ctx: RunCtx = { engine, desired: plan.desired, retrying, note, opts, images: new Map() };

  // Skip everything that (transitively) waits on a failed step.
  const skipDependents = (failed: Step): void => {
    const queue = [failed.id];
    while (queue.length > 0) {
      const id = queue.shift()!;
      for (const s of steps.values()) {
        if (s.deps.has(id) && state.get(s.id) === 'pending') {
          state.set(s.id, 'skipped');
          because.set(s.id, resourceId(failed.change));
          emit({ resource: resourceId(s.change), action: s.change.action, phase: 'skipped', message: `waits on ${resourceId(failed.change)}, which failed` });
          queue.push(s.id);
        }
      }
    }
  };

  await new Promise<void>((resolve) => {
    let running = 0;
    let removing = 0;
    const pump = (): void => {
      for (const s of steps.values()) {
        if (running >= concurrency && removing >= removeConcurrency) break;
        if (state.get(s.id) !== 'pending') continue;
        const removal = isRemoval(s);
        if (removal ? removing >= removeConcurrency : running >= concurrency) continue;
        if (![...s.deps].every((d) => state.get(d) === 'done')) continue;
        state.set(s.id, 'running');
        if (removal) removing++;
        else running++;
        emit({ resource: resourceId(s.change), action: s.change.action, phase: 'start', message: s.phase });
        runStep(ctx, s).then(
          () => {
            state.set(s.id, 'done');
            emit({ resource: resourceId(s.change), action: s.change.action, phase: 'done' });
          },
          (e: unknown) => {
            state.set(s.id, 'failed');
            errors.set(s.id, toEngineError(e));
            emit({ resource: resourceId(s.change), action: s.change.action, phase: 'failed', message: toEngineError(e)._tag });
            skipDependents(s);
          },
        ).finally(() => {
          if (removal) removing--;
          else running--;
          pump();
        });
      }
      if (running === 0 && removing === 0) {
        // Nothing runs and nothing can start: what is left waits on a cycle (cannot happen after validation) or is done.
        for (const s of steps.values()) if (state.get(s.id) === 'pending') { state.set(s.id, 'skipped'); because.set(s.id, 'a dependency cycle'); }
        resolve();
      }
    };
    pump();
  });

  const results: ResourceResult[] = [];
  const seen = new Set<string>();
  for (const c of plan.changes) {
    if (c.action === 'noop') continue;
    const r = resourceId(c);
    const mine = [...steps.values()].filter((s) => s.change === c);
    const key = `${r}@${c.current?.id ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const sts = mine.map((s) => state.get(s.id));
    const failedStep = mine.find((s) => state.get(s.id) === 'failed');
    const skippedStep = mine.find((s) => state.get(s.id) === 'skipped');
    const status = failedStep ? 'failed' : sts.every((x) => x === 'done') ? 'done' : 'skipped';
    results.push({
      resource: r, name: c.name, action: c.action, status, steps: log.get(r) ?? [],
      ...(failedStep ? { error: errors.get(failedStep.id)! } : {}),
      ...(status === 'skipped' && skippedStep ? { because: because.get(skippedStep.id) ?? '' } : {}),
    });
  }
  return { ok: results.every((r) => r.status === 'done'), results };
};

interface RunCtx {
  readonly engine: Engine;
  readonly desired: Desired;
  readonly retrying: <A>(s: Step, what: string, f: () => Promise<A>) => Promise<A>;
  readonly note: (s: Step, msg: string) => void;
  readonly opts: ApplyOptions;
  /** Image references resolved during this apply (after their image steps, which containers wait for). */
  readonly images: Map<string, Promise<ImageInfo>>;
}

const ignoreNotFound = async (f: () => Promise<unknown>): Promise<boolean> => {
  try {
    await f();
    return true;
  } catch (e) {
    if (hasTag(e, 'NotFound')) return false;
    throw e;
  }
};

const runStep = async (ctx: RunCtx, s: Step): Promise<void> => {
  const { engine, desired, retrying, note } = ctx;
  const c = s.change;
  if (s.phase === 'down') {
    const id = c.current?.id ?? c.name;
    switch (c.kind) {
      case 'container':
        await removeContainer(ctx, s, id, c.current?.name ?? c.name);
        return;
      case 'network':
        if (await retrying(s, 'remove network', () => ignoreNotFound(() => engine.removeNetwork(id)))) note(s, `removed network ${c.name}`);
        return;
      case 'volume':
        if (await retrying(s, 'remove volume', () => ignoreNotFound(() => engine.removeVolume(c.name)))) note(s, `removed volume ${c.name}`);
        return;
      case 'image':
        if (await retrying(s, 'remove image', () => ignoreNotFound(() => engine.removeImage(c.name)))) note(s, `removed image ${c.name}`);
        return;
    }
  }
  switch (c.kind) {
    case 'image': {
      const img = desired.images[c.key]!;
      const src = img.source;
      if (src.kind === 'import') {
        const info = await retrying(s, 'import image', () => engine.importImage(src.tarball, src.ref, {
          changes: {
            ...(src.config?.entrypoint ? { entrypoint: src.config.entrypoint } : {}),
            ...(src.config?.cmd ? { cmd: src.config.cmd } : {}),
            ...(src.config?.env ? { env: src.config.env } : {}),
            ...(src.config?.workingDir ? { workingDir: src.config.workingDir } : {}),
            ...(src.config?.user ? { user: src.config.user } : {}),
            labels: { [STACK]: desired.stack, [RESOURCE]: `image/${c.key}`, [SPEC_HASH]: img.hash },
          },
        }));
        note(s, `imported ${src.tarball} as ${src.ref} (${info.id.slice(0, 19)})`);
      } else if (src.kind === 'registry') {
        const info = await retrying(s, 'pull image', () => engine.pullImage(src.ref));
        note(s, `pulled ${src.ref} (${info.id.slice(0, 19)})`);
      } else if (src.kind === 'archive') {
        const names = await retrying(s, 'load image archive', () => engine.loadImages(src.path));
        note(s, `loaded ${src.path}: ${names.join(', ')}`);
        await engine.inspectImage(src.ref).catch((e: unknown) => {
          if (hasTag(e, 'NotFound')) throw new EngineFailure(notFound('image', src.ref, `the archive ${src.path} does not contain it`));
          throw e;
        });
      } else {
        // an engine without the build operation (an older agent, a test double) refuses, saying so
        if (typeof engine.buildImage !== 'function') throw new EngineFailure(unsupported(`building ${src.ref} from ${src.context}: this engine has no build operation; build the image elsewhere and declare it as a registry or archive image`));
        // labelled like an import: plan compares berth.spec-hash (context digest, Dockerfile path, args) to decide on a rebuild
        const info = await retrying(s, 'build image', () => engine.buildImage({
          context: src.context, tags: [src.ref],
          ...(src.dockerfile ? { dockerfile: src.dockerfile } : {}),
          ...(src.args ? { buildArgs: src.args } : {}),
          labels: { [STACK]: desired.stack, [RESOURCE]: `image/${c.key}`, [SPEC_HASH]: img.hash },
        }));
        note(s, `built ${src.ref} from ${src.context} (${info.id.slice(0, 19)}, ${info.cached} of ${info.steps} steps cached)`);
      }
      return;
    }
    case 'network': {
      const n = desired.networks[c.key]!;
      const info = await retrying(s, 'create network', () => engine.createNetwork(n.spec));
      note(s, `created network ${n.spec.name} (${info.spec.subnet ?? 'subnet chosen by the engine'})`);
      return;
    }
    case 'volume': {
      const v = desired.volumes[c.key]!;
      await retrying(s, 'create volume', () => engine.createVolume(v.spec));
      note(s, `created volume ${v.spec.name}`);
      return;
    }
    case 'container': {
      const d = desired.containers[c.key]!;
      if (c.action !== 'update' || c.inPlace?.start) await waitForDependencies(ctx, s, d);
      if (c.action === 'update') {
        const u = c.inPlace!;
        if (u.rename !== undefined) {
          await retrying(s, 'rename', () => engine.renameContainer(c.current!.id, u.rename!));
          note(s, `renamed ${c.current!.name} to ${u.rename}`);
        }
        if (u.resources !== undefined || u.restartPolicy !== undefined) {
          await retrying(s, 'update container', () => engine.updateContainer(c.name, {
            ...(u.resources !== undefined ? { resources: u.resources } : {}),
            ...(u.restartPolicy !== undefined ? { restartPolicy: u.restartPolicy } : {}),
          }));
          note(s, `updated ${[u.resources ? 'limits' : '', u.restartPolicy ? 'restart policy' : ''].filter(Boolean).join(' and ')} in place`);
        }
        for (const n of u.disconnect) {
          await retrying(s, 'disconnect', () => engine.disconnectNetwork(n, c.name, { force: true }));
          note(s, `disconnected from ${n}`);
        }
        for (const n of u.connect) {
          await retrying(s, 'connect', () => engine.connectNetwork(n.network, c.name, { aliases: n.aliases, ...(n.ipv4Address ? { ipv4Address: n.ipv4Address } : {}) }));
          note(s, `connected to ${n.network}`);
        }
        if (u.start) {
          await retrying(s, 'start', () => engine.startContainer(c.name));
          note(s, 'started');
          await waitHealthy(ctx, s, c.name, d.healthcheck);
        }
        return;
      }
      if (c.action === 'replace' && c.order === 'create-before-delete' && c.current) {
        const temp = `${d.spec.name}-next-${Date.now().toString(36)}`;
        await createAndStart(ctx, s, d, temp);
        await removeContainer(ctx, s, c.current.id, c.current.name);
        await retrying(s, 'rename', () => engine.renameContainer(temp, d.spec.name!));
        note(s, `renamed ${temp} to ${d.spec.name}`);
        return;
      }
      await createAndStart(ctx, s, d, d.spec.name!);
      return;
    }
  }
};

const removeContainer = async (ctx: RunCtx, s: Step, id: string, name: string): Promise<void> => {
  const { engine, retrying, note } = ctx;
  const gone = !(await retrying(s, 'stop', () => ignoreNotFound(() => engine.stopContainer(id))));
  if (gone) return;
  if (await retrying(s, 'remove', () => ignoreNotFound(() => engine.removeContainer(id, { force: true })))) note(s, `removed container ${name}`);
};

const createAndStart = async (ctx: RunCtx, s: Step, d: DesiredContainer, name: string): Promise<void> => {
  const { engine, retrying, note } = ctx;
  // The tag is resolved here, at apply time: the container records the image ID it was created from.
  let pending = ctx.images.get(d.imageRef);
  if (!pending) {
    pending = engine.inspectImage(d.imageRef);
    ctx.images.set(d.imageRef, pending);
    pending.catch(() => ctx.images.delete(d.imageRef));
  }
  const image = await pending;
  const spec: ContainerSpec = { ...d.spec, name };
  try {
    await retrying(s, 'create container', () => engine.createContainer(spec));
  } catch (e) {
    // A retried create whose first attempt went through: take it if it is ours.
    if (!hasTag(e, 'AlreadyExists')) throw e;
    const existing = await engine.inspectContainer(name);
    if (existing.spec.labels?.[SPEC_HASH] !== d.spec.labels?.[SPEC_HASH]) throw e;
  }
  note(s, `created container ${name} from ${d.imageRef} (${image.id.slice(0, 19)})`);
  await retrying(s, 'start', () => engine.startContainer(name));
  note(s, 'started');
  await waitHealthy(ctx, s, name, d.healthcheck);
};

const waitForDependencies = async (ctx: RunCtx, s: Step, d: DesiredContainer): Promise<void> => {
  for (const [dep, cond] of Object.entries(d.dependsOn)) {
    const dd = ctx.desired.containers[dep];
    if (!dd) continue;
    if (cond === 'healthy') {
      await waitHealthy(ctx, s, dd.spec.name!, dd.healthcheck, `dependency ${dep}`);
    } else if (cond === 'completed') {
      const { exitCode } = await ctx.engine.waitContainer(dd.spec.name!, ctx.opts.signal ? { signal: ctx.opts.signal } : {});
      if (exitCode !== 0) throw new EngineFailure(conflict('container', dd.spec.name!, `exited with code ${exitCode}; ${d.key} waits for it to complete successfully`));
      ctx.note(s, `dependency ${dep} completed successfully`);
    }
  }
};

/** A healthcheck command as exec argv (output discarded when run through a shell). */
const checkArgv = (hc: HealthcheckSpec): string[] | undefined => {
  const [kind, ...rest] = hc.test;
  if (kind === 'CMD-SHELL') return ['/bin/sh', '-c', `${rest.join(' ')} >/dev/null 2>&1`];
  if (kind === 'CMD') return rest;
  return undefined;
};

/**
 * Waits until the container is healthy. The engine's own health state is
 * used when it reports one; when it reports none (its healthcheck runner is
 * not there), Berth runs the check itself through exec, at up to once a second.
 */
const waitHealthy = async (ctx: RunCtx, s: Step, name: string, hc: HealthcheckSpec | undefined, what = 'health'): Promise<void> => {
  if (!hc) return;
  const argv = checkArgv(hc);
  if (!argv) return;
  const interval = Math.min(hc.intervalMs ?? 30_000, 1000);
  const retries = hc.retries ?? 3;
  const startPeriod = hc.startPeriodMs ?? 0;
  const timeout = ctx.opts.healthTimeoutMs ?? Math.max(30_000, startPeriod + (retries + 1) * ((hc.intervalMs ?? 30_000) + (hc.timeoutMs ?? 30_000)));
  const began = Date.now();
  let failures = 0;
  for (;;) {
    const info = await ctx.engine.inspectContainer(name);
    if (info.state.status !== 'running') {
      throw new EngineFailure(conflict('container', name, `is ${info.state.status}${info.state.exitCode !== undefined ? ` (exit code ${info.state.exitCode})` : ''} before becoming healthy`));
    }
    const h = info.state.health;
    if (h?.status === 'healthy') { ctx.note(s, `${what}: ${name} healthy`); return; }
    if (h?.status === 'unhealthy') throw new EngineFailure(conflict('container', name, `is unhealthy (${h.failingStreak} failed checks)`));
    if (h === undefined) {
      const checkTimeout = hc.timeoutMs ?? 30_000;
      let timer: NodeJS.Timeout | undefined;
      const { exitCode } = await Promise.race([
        ctx.engine.exec(name, { command: argv }),
        new Promise<{ exitCode: number }>((resolve) => { timer = setTimeout(() => resolve({ exitCode: -1 }), checkTimeout); }),
      ]).finally(() => clearTimeout(timer));
      if (exitCode === 0) { ctx.note(s, `${what}: ${name} healthy (checked by Berth: the engine reports no health state)`); return; }
      if (Date.now() - began >= startPeriod) failures++;
      if (failures > retries && Date.now() - began > timeout / 2) {
        throw new EngineFailure(conflict('container', name, `is unhealthy: ${hc.test.join(' ')} failed ${failures} times`));
      }
    }
    if (Date.now() - began > timeout) throw new EngineFailure(conflict('container', name, `did not become healthy within ${Math.round(timeout / 1000)} s`));
    await sleep(interval, ctx.opts.signal);
  }
};
