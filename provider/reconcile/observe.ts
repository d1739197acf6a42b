/**
 * Reading actual state through the Engine facade (and the desired side's
 * source files), so that `plan` can stay pure.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Engine, ImageInfo } from '../../engine/engine.js';
import { hasTag, invalidSpec, EngineFailure } from '../../engine/errors.js';
import type { Stack } from '../model/stack.js';
import { desiredState, type Desired } from './desired.js';
import { plan, type Observed, type Plan, type PlanOptions } from './plan.js';

const fileDigest = (p: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(p)
      .on('data', (b) => h.update(b))
      .on('error', reject)
      .on('end', () => resolve(`sha256:${h.digest('hex')}`));
  });

/** Digests of what images are made from (import tarballs, archives, build contexts); a missing file is an InvalidSpec naming it. */
export const sourceDigests = async (stack: Stack): Promise<Record<string, string>> => {
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const [key, img] of Object.entries(stack.images)) {
    if (img.kind === 'build') {
      // The build context is a desired-side source like an import tarball: the same
      // digest the builder's cache uses (Dockerfile + files .dockerignore keeps), so an
      // edited file moves the spec hash and an untouched context plans nothing.
      try {
        const { contextDigest } = await import('../../engine/build/context.js');
        out[key] = await contextDigest(img.context, img.dockerfile);
      } catch (e) {
        problems.push(`${stack.origins?.[`images.${key}`] ?? 'stack'}: images.${key}.build: ${e instanceof EngineFailure ? e.message : (e as NodeJS.ErrnoException).code ?? String(e)}`);
      }
      continue;
    }
    const file = img.kind === 'import' ? img.tarball : img.kind === 'archive' ? img.path : undefined;
    if (file === undefined) continue;
    try {
      out[key] = await fileDigest(file);
    } catch (e) {
      problems.push(`${stack.origins?.[`images.${key}`] ?? 'stack'}: images.${key}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
  }
  if (problems.length > 0) throw new EngineFailure(invalidSpec(stack.name, problems));
  return out;
};

/** What exists now: every container, network, volume and image, and what the stack's image references resolve to. */
export const observe = async (engine: Engine, desired: Desired): Promise<Observed> => {
  const [containers, networks, volumes, images] = await Promise.all([
    engine.listContainers({ all: true }), engine.listNetworks(), engine.listVolumes(), engine.listImages(),
  ]);
  const refs: Record<string, ImageInfo | undefined> = {};
  const wanted = new Set<string>([
    ...Object.values(desired.images).map((i) => i.source.ref),
    ...Object.values(desired.containers).map((c) => c.imageRef),
  ]);
  await Promise.all([...wanted].map(async (ref) => {
    try {
      refs[ref] = await engine.inspectImage(ref);
    } catch (e) {
      if (!hasTag(e, 'NotFound')) throw e;
      refs[ref] = undefined;
    }
  }));
  return { containers, networks, volumes, images, refs };
};

/** Reads source files and actual state, and plans: the whole read side of a reconcile pass. */
export const planFor = async (engine: Engine, stack: Stack, opts: PlanOptions = {}): Promise<Plan> => {
  const desired = desiredState(stack, await sourceDigests(stack));
  return plan(desired, await observe(engine, desired), opts);
};
