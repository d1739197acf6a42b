/**
 * Image verbs with Docker's names: pull, push, images (image ls), rmi
 * (image rm), tag, image inspect, history, save, load, import, image prune,
 * search. Human tables by default, --json for machines.
 */
import { promises as fsp } from 'node:fs';
import type { Command } from 'commander';
import type { Readable } from 'node:stream';
import type { Digest } from '../../engine/store/digest.js';
import type { Image, Store } from '../../engine/store/store.js';
import type { HistoryEntry } from '../../engine/store/oci.js';
import { context, group, type CliContext } from '../context.js';
import { emit, humanSize, since, table } from '../output.js';
import { progressView } from '../progress.js';
import { guard } from '../run.js';

const shortImageId = (d: string): string => d.slice(7, 19);

/** Chain IDs that containers under this root use; their layers must survive GC. */
export const containerChains = async (cmd: Command, store: Store): Promise<Digest[]> => {
  const { engineFor } = await import('./containers.js');
  const { chainIds } = await import('../../engine/store/layers.js');
  const engine = await engineFor(cmd);
  const out: Digest[] = [];
  for (const c of await engine.listContainers({ all: true })) {
    const id = c.imageId as Digest;
    if (!(await store.blobs.has(id))) continue;
    out.push(...chainIds((await store.readConfig(id)).rootfs.diff_ids));
  }
  return out;
};

const splitName = (full: string): { repository: string; tag: string } => {
  const at = full.indexOf('@');
  const base = at >= 0 ? full.slice(0, at) : full;
  const i = base.lastIndexOf(':');
  const slash = base.lastIndexOf('/');
  return i > slash ? { repository: base.slice(0, i), tag: base.slice(i + 1) } : { repository: base, tag: '<none>' };
};

const inspectView = async (store: Store, img: Image): Promise<Record<string, unknown>> => {
  const { familiarName, parseReference } = await import('../../engine/store/reference.js');
  const names = img.names.map((n) => familiarName(parseReference(n)));
  return {
    Id: img.id,
    RepoTags: names.filter((n) => !n.includes('@')),
    RepoDigests: img.names.map((n) => `${splitName(familiarName(parseReference(n))).repository}@${img.manifestDescriptor.digest}`),
    Created: img.config.created ?? null,
    Author: img.config.author ?? '',
    Architecture: img.config.architecture,
    Variant: img.config.variant,
    Os: img.config.os,
    Size: img.size,
    Config: img.config.config ?? {},
    RootFS: { Type: 'layers', Layers: img.config.rootfs.diff_ids },
    Descriptor: img.manifestDescriptor,
    Target: img.target,
    Manifest: img.manifest,
    ChainIDs: img.chain,
    Unpacked: await Promise.all(img.chain.map((c) => store.layers.has(c))),
  };
};

export const registerImageCommands = (program: Command): void => {
  const image = group(program, 'image', 'manage images');

  const pull = (cmd: Command): Command =>
    cmd
      .description('pull an image from a registry')
      .argument('<image>', 'NAME[:TAG|@DIGEST]')
      .option('--platform <os/arch[/variant]>', 'pick this platform from a manifest list')
      .option('-q, --quiet', 'print only the image name')
      .option('--concurrency <n>', 'layers downloaded at once', '3')
      .action(
        guard(async (ref: string, o: { platform?: string; quiet?: boolean; concurrency: string }, c: Command) => {
          const ctx = context(c);
          const { pullImage } = await import('../../engine/registry/pull.js');
          const { parsePlatform } = await import('../../engine/store/platform.js');
          const { familiarName, parseReference } = await import('../../engine/store/reference.js');
          const platform = o.platform !== undefined ? parsePlatform(o.platform) : undefined;
          if (o.platform !== undefined && !platform) throw new (await import('../../engine/errors.js')).EngineFailure({ _tag: 'InvalidSpec', source: '--platform', problems: ['expected os/arch[/variant]'] });
          const view = o.quiet ? { sink: () => undefined, stop: () => undefined } : progressView(ctx, 'Pull complete');
          let img: Image;
          try {
            img = await pullImage(ctx.store(), ref, { ...(platform ? { platform } : {}), concurrency: Number(o.concurrency) || 3, onProgress: view.sink, log: ctx.log });
          } finally {
            view.stop();
          }
          const name = familiarName(parseReference(ref));
          emit(ctx, { reference: img.names[0], digest: img.target.digest, id: img.id }, () =>
            o.quiet ? name : `Digest: ${img.target.digest}\nStatus: Downloaded image for ${name}\n${img.names[0] ?? name}`,
          );
        }),
      );
  pull(program.command('pull'));
  pull(image.command('pull'));

  const push = (cmd: Command): Command =>
    cmd
      .description('push an image to a registry')
      .argument('<image>', 'local name or ID')
      .argument('[destination]', 'NAME[:TAG] to push as (default: the local name)')
      .action(
        guard(async (ref: string, dest: string | undefined, _o: unknown, c: Command) => {
          const ctx = context(c);
          const { pushImage } = await import('../../engine/registry/push.js');
          const view = progressView(ctx, 'Pushed');
          let r;
          try {
            r = await pushImage(ctx.store(), ref, dest, { onProgress: view.sink, log: ctx.log });
          } finally {
            view.stop();
          }
          emit(ctx, r, () => `${r.reference}: digest: ${r.digest} (uploaded ${r.uploaded}, already there ${r.skipped}, mounted ${r.mounted})`);
        }),
      );
  push(program.command('push'));
  push(image.command('push'));

  const ls = (cmd: Command): Command =>
    cmd
      .description('list images')
      .argument('[repository]', 'only this repository')
      .option('-q, --quiet', 'only image IDs')
      .option('--digests', 'show manifest digests')
      .action(
        guard(async (repo: string | undefined, o: { quiet?: boolean; digests?: boolean }, c: Command) => {
          const ctx = context(c);
          const { familiarName, familiarRepository, parseReference } = await import('../../engine/store/reference.js');
          const imgs = await ctx.store().list();
          const want = repo !== undefined ? familiarRepository(parseReference(repo, { defaultTag: false })) : undefined;
          const rows = imgs
            .flatMap((img) => (img.names.length > 0 ? img.names : ['<none>:<none>']).map((n) => ({ img, ...splitName(n === '<none>:<none>' ? n : familiarName(parseReference(n))) })))
            .filter((r) => want === undefined || r.repository === want)
            .sort((a, b) => (b.img.config.created ?? '').localeCompare(a.img.config.created ?? '') || a.repository.localeCompare(b.repository));
          if (o.quiet && !ctx.opts.json) {
            process.stdout.write([...new Set(rows.map((r) => shortImageId(r.img.id)))].map((l) => `${l}\n`).join(''));
            return;
          }
          emit(
            ctx,
            rows.map((r) => ({ repository: r.repository, tag: r.tag, id: r.img.id, digest: r.img.target.digest, created: r.img.config.created ?? null, size: r.img.size })),
            () =>
              table(rows, [
                { header: 'REPOSITORY', get: (r) => r.repository },
                { header: 'TAG', get: (r) => r.tag },
                ...(o.digests ? [{ header: 'DIGEST', get: (r: (typeof rows)[number]) => r.img.target.digest }] : []),
                { header: 'IMAGE ID', get: (r) => shortImageId(r.img.id) },
                { header: 'CREATED', get: (r) => since(r.img.config.created) },
                { header: 'SIZE', get: (r) => humanSize(r.img.size) },
              ]),
          );
        }),
      );
  ls(program.command('images'));
  ls(image.command('ls').alias('list'));

  const rm = (cmd: Command): Command =>
    cmd
      .description('remove images (untag; content nothing else uses is deleted)')
      .argument('<image...>')
      .option('-f, --force', 'also when a container uses it (its layers stay until the container is removed)')
      .action(
        guard(async (refs: string[], o: { force?: boolean }, c: Command) => {
          const ctx = context(c);
          const store = ctx.store();
          const { untag } = await import('../../engine/image/api.js');
          const { collectGarbage } = await import('../../engine/store/gc.js');
          const { familiarName, parseReference } = await import('../../engine/store/reference.js');
          const inUse = await containerChains(c, store);
          const untagged: string[] = [];
          const deleted: string[] = [];
          for (const ref of refs) {
            const img = await store.resolve(ref);
            const top = img.chain[img.chain.length - 1];
            if (!o.force && top !== undefined && inUse.includes(top) && img.names.length <= 1) {
              const { EngineFailure } = await import('../../engine/errors.js');
              throw new EngineFailure({ _tag: 'Conflict', kind: 'image', name: ref, reason: 'a container uses it; remove the container first or use -f' });
            }
            untagged.push(...(await untag(store, ref)));
            if (!(await store.names.list()).some((n) => n.target.digest === img.target.digest)) deleted.push(img.id);
          }
          const gc = await collectGarbage(store, { inUse, log: ctx.log });
          emit(ctx, { untagged, deleted, reclaimedBytes: gc.bytesFreed }, () =>
            [...untagged.map((u) => `Untagged: ${familiarName(parseReference(u))}`), ...deleted.map((d) => `Deleted: ${d}`)].join('\n'),
          );
        }),
      );
  rm(program.command('rmi'));
  rm(image.command('rm').alias('remove'));

  const tag = (cmd: Command): Command =>
    cmd
      .description('give an image another name')
      .argument('<source>', 'local name or ID')
      .argument('<target>', 'NAME[:TAG]')
      .action(
        guard(async (src: string, dst: string, _o: unknown, c: Command) => {
          const ctx = context(c);
          const img = await ctx.store().resolve(src);
          const name = await ctx.store().tag(img.target, dst);
          emit(ctx, { name, id: img.id }, () => '');
        }),
      );
  tag(program.command('tag'));
  tag(image.command('tag'));

  image
    .command('inspect')
    .description('show an image as JSON')
    .argument('<image...>')
    .action(
      guard(async (refs: string[], _o: unknown, c: Command) => {
        const ctx = context(c);
        const out = [];
        for (const r of refs) out.push(await inspectView(ctx.store(), await ctx.store().resolve(r)));
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      }),
    );

  const history = (cmd: Command): Command =>
    cmd
      .description('show how an image was built')
      .argument('<image>')
      .option('--no-trunc', 'do not truncate')
      .action(
        guard(async (ref: string, o: { trunc: boolean }, c: Command) => {
          const ctx = context(c);
          const img = await ctx.store().resolve(ref);
          const hist: HistoryEntry[] = img.config.history ?? img.manifest.layers.map(() => ({}));
          let li = img.manifest.layers.length;
          const rows = [...hist].reverse().map((h, i) => {
            const layer = h.empty_layer ? undefined : img.manifest.layers[--li];
            return { id: i === 0 ? img.id : '<missing>', created: h.created, createdBy: h.created_by ?? '', size: layer?.size ?? 0, comment: h.comment ?? '' };
          });
          emit(ctx, rows, () =>
            table(rows, [
              { header: 'IMAGE', get: (r) => (r.id === '<missing>' ? r.id : o.trunc ? shortImageId(r.id) : r.id) },
              { header: 'CREATED', get: (r) => since(r.created) },
              { header: 'CREATED BY', get: (r) => (o.trunc && r.createdBy.length > 45 ? `${r.createdBy.slice(0, 44)}…` : r.createdBy) },
              { header: 'SIZE', get: (r) => humanSize(r.size) },
              { header: 'COMMENT', get: (r) => r.comment },
            ]),
          );
        }),
      );
  history(program.command('history'));
  history(image.command('history'));

  const save = (cmd: Command): Command =>
    cmd
      .description('write images to a docker-archive tar (docker load / podman load read it)')
      .argument('<image...>')
      .requiredOption('-o, --output <file>', 'the tar file to write')
      .action(
        guard(async (refs: string[], o: { output: string }, c: Command) => {
          const ctx = context(c);
          const { saveImages } = await import('../../engine/image/archive.js');
          const r = await saveImages(ctx.store(), refs, o.output);
          emit(ctx, { output: o.output, ...r }, () => '');
        }),
      );
  save(program.command('save'));
  save(image.command('save'));

  /** A file to read, opened now: a missing or unreadable one is a clear error before anything changes. */
  const openInput = async (file: string, flag: string): Promise<Readable> => {
    const { fail, invalidSpec } = await import('../../engine/errors.js');
    let fh: import('node:fs/promises').FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return fail(invalidSpec(flag, [`${file}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}`]));
    }
    if ((await fh.stat()).isDirectory()) {
      await fh.close();
      return fail(invalidSpec(flag, [`${file}: is a directory; give a tar file (or - for stdin)`]));
    }
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  };

  const load = (cmd: Command): Command =>
    cmd
      .description('load images from a docker-archive or OCI-layout tar (plain, gzip or zstd)')
      .option('-i, --input <file>', 'read this file instead of stdin')
      .option('-q, --quiet', 'print nothing')
      .action(
        guard(async (o: { input?: string; quiet?: boolean }, c: Command) => {
          const ctx = context(c);
          const { loadArchive } = await import('../../engine/image/archive.js');
          const { familiarName, parseReference } = await import('../../engine/store/reference.js');
          const input: Readable = o.input ? await openInput(o.input, 'load --input') : process.stdin;
          const r = await loadArchive(ctx.store(), input, o.input ?? 'stdin');
          emit(ctx, r, () => (o.quiet ? '' : [...r.names.map((n) => `Loaded image: ${familiarName(parseReference(n))}`), ...(r.names.length === 0 ? r.ids.map((i) => `Loaded image ID: ${i}`) : [])].join('\n')));
        }),
      );
  load(program.command('load'));
  load(image.command('load'));

  const imp = (cmd: Command): Command =>
    cmd
      .description('make a one-layer image from a root filesystem tarball')
      .argument('<file>', 'tarball (plain, gzip or zstd), or - for stdin')
      .argument('[name]', 'NAME[:TAG]')
      .option('--cmd <json>', 'CMD as a JSON array, e.g. ["/bin/sh"]')
      .action(
        guard(async (file: string, name: string | undefined, o: { cmd?: string }, c: Command) => {
          const ctx = context(c);
          const { importRootfs } = await import('../../engine/image/archive.js');
          const { decodeJson } = await import('../../engine/store/decode.js');
          const t = await import('io-ts');
          const cmdArr = o.cmd !== undefined ? decodeJson(t.array(t.string), o.cmd, '--cmd') : undefined;
          const input: Readable = file === '-' ? process.stdin : await openInput(file, 'import <file>');
          const img = await importRootfs(ctx.store(), input, { ...(name ? { name } : {}), source: file, ...(cmdArr ? { config: { Cmd: cmdArr } } : {}) });
          emit(ctx, { id: img.id, names: img.names }, () => img.id);
        }),
      );
  imp(program.command('import'));
  imp(image.command('import'));

  image
    .command('prune')
    .description('remove unnamed images no container uses, and content nothing references')
    .option('-a, --all', 'remove every image no container uses, named or not')
    .option('-f, --force', 'do not ask (Berth never asks; accepted for Docker compatibility)')
    .action(
      guard(async (o: { all?: boolean }, c: Command) => {
        const ctx = context(c);
        const store = ctx.store();
        const { collectGarbage } = await import('../../engine/store/gc.js');
        const { pruneImageEntries } = await import('../../engine/image/api.js');
        const inUse = await containerChains(c, store);
        const deleted = await pruneImageEntries(store, inUse, o.all === true);
        const r = await collectGarbage(store, { inUse, log: ctx.log });
        emit(ctx, { deleted, ...r }, () => [...deleted.map((d) => `Deleted: ${d}`), `Total reclaimed space: ${humanSize(r.bytesFreed)}`].join('\n'));
      }),
    );

  program
    .command('search')
    .description("search a registry's catalog (/v2/_catalog)")
    .argument('<term>', 'text the repository name contains')
    .option('--registry <host>', 'registry to search', 'docker.io')
    .option('--limit <n>', 'at most this many results', '100')
    .action(
      guard(async (term: string, o: { registry: string; limit: string }, c: Command) => {
        const ctx = context(c);
        const { Registry } = await import('../../engine/registry/client.js');
        const reg = await Registry.open(o.registry, { log: ctx.log });
        const repos = (await reg.catalog(10_000)).filter((r) => r.includes(term)).slice(0, Number(o.limit) || 100);
        emit(ctx, repos.map((name) => ({ name: `${o.registry}/${name}` })), () => table(repos, [{ header: 'NAME', get: (r) => `${o.registry}/${r}` }]));
      }),
    );
};

export default registerImageCommands;

export type { CliContext };
