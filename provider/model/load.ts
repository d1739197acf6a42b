/**
 * Reading desired state from disk: one file or a directory of them, Berth
 * YAML/JSON or Compose, into a validated Stack. Nothing changes on the host
 * here; a bad input gives every problem at once, each naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as yaml from 'js-yaml';
import { invalidSpec, type EngineError } from '../../engine/errors.js';
import { composeToStack, looksLikeCompose } from './compose.js';
import { decodeWith } from './decode.js';
import { StackDoc, type ContainerResource, type ImageResource } from './resources.js';
import { validateStack, type Stack } from './stack.js';

const composeNames = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/**
 * Parses YAML (1.2 core schema, so `no` stays a string; duplicate keys
 * refused) or JSON text; Left: problems naming the file and line. js-yaml
 * rather than `yaml`: it parses a 1,000-resource stack ten times faster.
 * Aliases are capped, as a desired-state file comes from outside.
 */
export const parseText = (file: string, text: string): E.Either<string[], unknown> => {
  const aliases = text.match(/(?:^|[\s,[{:-])\*[^\s,\]}]+/g)?.length ?? 0;
  if (aliases > 100) return E.left([`${file}: ${aliases} YAML aliases (at most 100 are accepted)`]);
  try {
    return E.right(yaml.load(text, { filename: file }));
  } catch (e) {
    if (e instanceof yaml.YAMLException) {
      const at = e.mark ? `${e.mark.line + 1}:${e.mark.column + 1}:` : '';
      return E.left([`${file}:${at} ${e.reason}`]);
    }
    throw e;
  }
};

const rel = (file: string, p: string): string => (path.isAbsolute(p) ? p : path.resolve(path.dirname(file), p));

/** Paths in a stack are relative to the file that declares them. */
const resolvePaths = (file: string, images: Record<string, ImageResource>, containers: Record<string, ContainerResource>): void => {
  for (const [k, i] of Object.entries(images)) {
    if (i.kind === 'import') images[k] = { ...i, tarball: rel(file, i.tarball) };
    else if (i.kind === 'archive') images[k] = { ...i, path: rel(file, i.path) };
    else if (i.kind === 'build') images[k] = { ...i, context: rel(file, i.context) };
  }
  for (const [k, c] of Object.entries(containers)) {
    containers[k] = { ...c, mounts: c.mounts.map((m) => (m.type === 'bind' ? { ...m, source: rel(file, m.source) } : m)) };
  }
};

/** Decodes one parsed document (Berth or Compose). `defaultName`: the stack name when the document has none. */
export const stackFromDocument = (file: string, doc: unknown, defaultName: string, readEnvFile?: (p: string) => string | undefined): E.Either<string[], Stack> => {
  if (looksLikeCompose(doc)) {
    const r = composeToStack(doc, {
      file: path.basename(file), defaultProject: defaultName,
      readEnvFile: readEnvFile ?? ((p) => { try { return fs.readFileSync(rel(file, p), 'utf8'); } catch { return undefined; } }),
    });
    if (E.isLeft(r)) return r;
    const images = { ...r.right.images };
    const containers = { ...r.right.containers };
    resolvePaths(file, images, containers);
    return E.right({ ...r.right, images, containers });
  }
  return E.map((s: Stack) => s)(mergeDocuments([{ file, doc }], defaultName));
};

/** Merges Berth documents (a directory's files); a resource declared twice is an error naming both files. */
export const mergeDocuments = (docs: readonly { readonly file: string; readonly doc: unknown }[], defaultName: string): E.Either<string[], Stack> => {
  const problems: string[] = [];
  const out = { images: {} as Record<string, ImageResource>, networks: {} as Record<string, Stack['networks'][string]>, volumes: {} as Record<string, Stack['volumes'][string]>, containers: {} as Record<string, ContainerResource> };
  const origins: Record<string, string> = {};
  let name: string | undefined;
  let nameFile = '';
  for (const { file, doc } of docs) {
    const label = path.basename(file);
    const d = decodeWith(StackDoc, doc ?? {});
    if (E.isLeft(d)) {
      problems.push(...d.left.map((m) => `${label}: ${m}`));
      continue;
    }
    if (d.right.stack !== undefined) {
      if (name !== undefined && name !== d.right.stack) problems.push(`${label}: stack: "${d.right.stack}" differs from "${name}" in ${nameFile}`);
      else { name = d.right.stack; nameFile = label; }
    }
    const images = { ...(d.right.images ?? {}) };
    const containers = { ...(d.right.containers ?? {}) };
    resolvePaths(file, images, containers);
    const groups = { images, networks: d.right.networks ?? {}, volumes: d.right.volumes ?? {}, containers } as const;
    for (const g of ['images', 'networks', 'volumes', 'containers'] as const) {
      for (const [k, v] of Object.entries(groups[g])) {
        const id = `${g}.${k}`;
        if (origins[id] !== undefined) { problems.push(`${label}: ${id}: already declared in ${origins[id]}`); continue; }
        origins[id] = label;
        (out[g] as Record<string, unknown>)[k] = v;
      }
    }
  }
  if (problems.length > 0) return E.left(problems);
  const stackName = name ?? defaultName.toLowerCase().replace(/[^a-z0-9_-]/g, '').replace(/^[^a-z0-9]+/, '');
  if (stackName === '') return E.left([`${docs[0]?.file ?? '?'}: stack: no stack name (add "stack: <name>")`]);
  return E.right({ name: stackName, ...out, origins });
};

/** Loads `-f <file|dir>` into a validated Stack; Left: an InvalidSpec error listing every problem. */
export const loadStack = (target: string, opts: { name?: string } = {}): E.Either<EngineError, Stack> => {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(target);
  } catch {
    return E.left(invalidSpec(target, ['no such file or directory']));
  }
  const abs = path.resolve(target);
  let files: string[];
  let defaultName: string;
  if (stat.isDirectory()) {
    defaultName = path.basename(abs);
    const entries = fs.readdirSync(abs).sort();
    const compose = composeNames.find((n) => entries.includes(n));
    files = compose ? [path.join(abs, compose)]
      : entries.filter((e) => /\.(ya?ml|json)$/.test(e) && !e.startsWith('.')).map((e) => path.join(abs, e));
    if (files.length === 0) return E.left(invalidSpec(target, ['no .yaml, .yml or .json files in this directory']));
  } else {
    files = [abs];
    defaultName = path.basename(path.dirname(abs));
  }
  if (opts.name !== undefined) defaultName = opts.name;
  const problems: string[] = [];
  const docs: { file: string; doc: unknown }[] = [];
  for (const f of files) {
    const parsed = parseText(path.basename(f), fs.readFileSync(f, 'utf8'));
    if (E.isLeft(parsed)) problems.push(...parsed.left);
    else docs.push({ file: f, doc: parsed.right });
  }
  if (problems.length > 0) return E.left(invalidSpec(target, problems));
  const composeDocs = docs.filter((d) => looksLikeCompose(d.doc));
  let stack: E.Either<string[], Stack>;
  if (composeDocs.length > 0) {
    if (docs.length > 1) return E.left(invalidSpec(target, ['a Compose file cannot be mixed with Berth stack files in one directory']));
    stack = stackFromDocument(docs[0]!.file, docs[0]!.doc, defaultName);
  } else {
    stack = mergeDocuments(docs, defaultName);
  }
  if (E.isLeft(stack)) return E.left(invalidSpec(target, stack.left));
  const cross = validateStack(stack.right);
  if (cross.length > 0) return E.left(invalidSpec(target, cross));
  return E.right(opts.name !== undefined ? { ...stack.right, name: opts.name } : stack.right);
};
