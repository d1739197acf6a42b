/**
 * The layer store (a snapshotter for image layers): every layer unpacked
 * once, under its chain ID, as a directory that overlayfs can use as a
 * lower layer.
 *
 * Vocabulary:
 * - diff ID: the digest of a layer's uncompressed tar (image config
 *   rootfs.diff_ids).
 * - chain ID: the identity of a layer together with all layers below it.
 *   chain(L1) = diffID(L1); chain(L1..Ln) = sha256(chain(L1..Ln-1) + " " + diffID(Ln)).
 *   Example: diff IDs [sha256:aa.., sha256:bb..] give chain IDs
 *   [sha256:aa.., sha256("sha256:aa.. sha256:bb..")].
 * - parent: the chain ID of the layers below.
 *
 * On disk: <root>/layers/<chain hex>/diff (the lower dir) and
 * <root>/layers/<chain hex>/layer.json (chain ID, diff ID, parent, size).
 * Unpacking goes to <root>/layers/extract-<pid>-<random>; the diff ID is
 * verified while unpacking, the directory synced and then renamed to the
 * chain ID. An existing chain ID means done. An `extract-*` directory whose
 * pid is gone is garbage (`cleanExtracts`).
 */
import { promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import * as t from 'io-ts';
import { corrupt, fail, invalidSpec, notFound, sys, EngineFailure } from '../errors.js';
import { Digest, encodedOf, sha256, type Digest as DigestT } from './digest.js';
import { decodeJson } from './decode.js';
import { fsyncDir, pathUnder, pidAlive, randomSuffix, writeFileAtomic } from './fsutil.js';
import type { Mount } from './mount.js';
import type { Compression } from './oci.js';
import type { NativeInput, NativeResult } from './native-unpack.js';
import type { Unsettled } from './settle.js';
import { isoTime } from '../time.js';
// The unpackers (unpack.ts, compression.ts, native-unpack.ts, tar-stream, zlib) are imported inside
// the functions that unpack: `berth run` of an unpacked image only reads layer.json files.

/** syncfs(2) of the filesystem holding `p` (coreutils `sync -f`: Node has no syncfs). */
const syncfs = async (p: string): Promise<void> => {
  const { execFile } = await import('node:child_process');
  await new Promise<void>((resolve, reject) => execFile('sync', ['-f', p], (e) => (e ? reject(e) : resolve())));
};

export const chainIds = (diffIds: readonly DigestT[]): DigestT[] => {
  const out: DigestT[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : sha256(`${prev} ${d}`));
  }
  return out;
};

export const LayerMeta = t.intersection([
  t.type({ chainId: Digest, diffId: Digest, size: t.number, created: t.string }),
  t.partial({ parent: Digest }),
]);
export type LayerMeta = t.TypeOf<typeof LayerMeta>;

export interface LayerInfo extends LayerMeta {
  /** The overlay lower directory. */
  readonly diffPath: string;
}

export interface UnpackRequest {
  readonly chainId: DigestT;
  readonly diffId: DigestT;
  readonly parent?: DigestT;
  /** Layer bytes, compressed (gzip, zstd) or not; a Readable is piped without per-chunk promises. */
  readonly source: AsyncIterable<Uint8Array> | Readable;
  /** Names the image and layer in errors. */
  readonly label: string;
  /** Runs after the diff ID checked out and before the layer is published (e.g. verify the compressed blob). */
  readonly beforeCommit?: () => Promise<void>;
}

export interface NativeUnpackRequest {
  readonly chainId: DigestT;
  readonly diffId: DigestT;
  readonly parent?: DigestT;
  /** The layer as stored (compressed or not): a socket handed over, a pipe, or a blob file's fd. */
  readonly input: NativeInput;
  /** Also write the bytes as read to this new file (the blob, published by beforeCommit). */
  readonly blobFile?: string;
  /** Names the image and layer in errors. */
  readonly label: string;
  /** Names the registry in download failures. */
  readonly endpoint?: string;
  /** Bytes read so far (for progress bars), every MiB or so. */
  readonly onProgress?: (bytes: number) => void;
  /**
   * Publish without waiting for the disk: the layer (and the blob written
   * beside it, which beforeCommit publishes with `adopt(..., { marked:
   * true })`) is marked unsettled (settle.ts) and synced later by the
   * store's `settle` (a pull's layers). Only where the store defers
   * (`deferring`); otherwise the layer and blob are synced first.
   */
  readonly deferSync?: boolean;
  /**
   * Runs after the diff ID checked out and before the layer is published,
   * with what was read: verify the compressed digest, publish the blob.
   */
  readonly beforeCommit?: (read: NativeResult) => Promise<void>;
}

export interface LayerStore {
  readonly dir: string;
  has(chainId: DigestT): Promise<boolean>;
  get(chainId: DigestT): Promise<LayerInfo | undefined>;
  diffPath(chainId: DigestT): string;
  /** Unpack once; if the chain ID exists already the source is not read. */
  unpack(req: UnpackRequest): Promise<LayerInfo & { compression?: Compression; unpacked: boolean; warnings?: readonly string[] }>;
  /**
   * Unpack once with the native unpacker (native/unpack/, see
   * native-unpack.ts); the caller checked that `nativeUnpacker()` exists.
   * If the chain ID exists already the input is not read.
   */
  unpackNative(req: NativeUnpackRequest): Promise<LayerInfo & { compression?: Compression; unpacked: boolean }>;
  remove(chainId: DigestT): Promise<void>;
  /** Whether unpackNative with deferSync publishes without waiting for the disk. */
  readonly deferring: boolean;
  list(): Promise<LayerInfo[]>;
  cleanExtracts(): Promise<number>;
  /**
   * The overlay mount for a chain of layers (chain IDs bottom to top) with
   * a writable upper and work dir (both must exist, on one filesystem).
   */
  mount(chain: readonly DigestT[], upper: string, work: string, target: string): Promise<Mount>;
  /** A read-only view of a chain: a bind mount for one layer, an overlay of lowers otherwise. */
  view(chain: readonly DigestT[], target: string): Promise<Mount>;
}

export interface LayerStoreOptions {
  /** syncfs the unpacked tree before publishing it (default true). */
  readonly durable?: boolean;
  /** Where deferred layers are marked (see NativeUnpackRequest.deferSync); without it every durable layer syncs first. */
  readonly unsettled?: Unsettled;
}

export const openLayerStore = (given: string, options: LayerStoreOptions = {}): LayerStore => {
  const dir = path.normalize(given); // pathUnder's base
  const durable = options.durable ?? true;
  const unsettled = durable ? options.unsettled : undefined;
  const layerDir = (c: DigestT): string => pathUnder(dir, encodedOf(c));
  const diffPath = (c: DigestT): string => pathUnder(layerDir(c), 'diff');

  const get = async (chainId: DigestT): Promise<LayerInfo | undefined> => {
    const marker = `layer-${encodedOf(chainId)}`;
    if (unsettled?.lost(marker)) {
      // published just before a crash and maybe not on disk whole: gone, so that a pull unpacks it again
      rmSync(layerDir(chainId), { recursive: true, force: true });
      unsettled.forget(marker);
      return undefined;
    }
    let raw: Buffer;
    try {
      raw = readFileSync(pathUnder(layerDir(chainId), 'layer.json')); // small, read by every create: sync (a promise read is ~25x the CPU)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    const meta = decodeJson(LayerMeta, raw, `layer ${chainId} metadata`);
    return { ...meta, diffPath: diffPath(chainId) };
  };

  const requireChain = async (chain: readonly DigestT[]): Promise<string[]> => {
    const lowers: string[] = [];
    for (const c of chain) {
      if (!(await get(c))) fail(notFound('layer', c, 'pull the image again to unpack it'));
      lowers.unshift(diffPath(c)); // overlay wants the topmost lower first
    }
    return lowers;
  };

  /** A fresh extract-<pid>-<random> dir with an empty diff/ inside. */
  const makeWork = async (): Promise<string> => {
    // The parent need not be unpacked yet: a lower dir stands alone, so the
    // layers of one image can unpack concurrently. `mount` checks the chain.
    await sys(dir, () => fsp.mkdir(dir, { recursive: true }));
    const work = path.join(dir, `extract-${process.pid}-${randomSuffix()}`);
    await sys(work, () => fsp.mkdir(work, 0o700));
    await sys(work, () => fsp.mkdir(path.join(work, 'diff'), 0o755));
    return work;
  };

  /**
   * layer.json, then the rename that publishes the layer under its chain ID
   * (the unpacked tree is synced already, or marked unsettled: then nothing
   * here waits for the disk either, as a crash removes the whole layer).
   */
  const publish = async (work: string, req: { chainId: DigestT; diffId: DigestT; parent?: DigestT }, bytes: number, marked = false): Promise<LayerMeta> => {
    const meta: LayerMeta = {
      chainId: req.chainId,
      diffId: req.diffId,
      size: bytes,
      created: isoTime(),
      ...(req.parent !== undefined ? { parent: req.parent } : {}),
    };
    if (marked) writeFileSync(path.join(work, 'layer.json'), JSON.stringify(meta));
    else await writeFileAtomic(path.join(work, 'layer.json'), JSON.stringify(meta));
    try {
      await fsp.rename(work, layerDir(req.chainId));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw new EngineFailure({ _tag: 'Kernel', syscall: 'rename', errno: code ?? 'EUNKNOWN', path: layerDir(req.chainId), message: (e as Error).message });
      // someone else published the same chain ID meanwhile: theirs is as good as ours
      await fsp.rm(work, { recursive: true, force: true });
    }
    if (!marked) await fsyncDir(dir);
    return meta;
  };

  return {
    dir,
    diffPath,
    get,
    deferring: unsettled !== undefined,
    has: async (c) => (await get(c)) !== undefined,
    async unpack(req) {
      const existing = await get(req.chainId);
      if (existing) return { ...existing, unpacked: false };
      // berth-unpack when it is built (with zstd: the compression is not known yet), TypeScript otherwise
      const { nativeUnpacker } = await import('./native-unpack.js');
      const bin = nativeUnpacker();
      if (bin?.zstd()) {
        const { Readable } = await import('node:stream');
        const stream = req.source instanceof Readable ? req.source : Readable.from(req.source, { objectMode: false });
        const before = req.beforeCommit;
        return this.unpackNative({
          chainId: req.chainId,
          diffId: req.diffId,
          ...(req.parent !== undefined ? { parent: req.parent } : {}),
          input: { kind: 'stream', stream },
          label: req.label,
          ...(before ? { beforeCommit: () => before() } : {}),
        });
      }
      const [{ Transform, pipeline }, { decompressAuto }, { unpackLayer }, { digestOfHash, newHash }] = await Promise.all([
        import('node:stream'),
        import('./compression.js'),
        import('./unpack.js'),
        import('./digest.js'),
      ]);
      const work = await makeWork();
      try {
        const diff = path.join(work, 'diff');
        const { compression, stream } = await decompressAuto(req.source);
        const hash = newHash('sha256');
        const hashing = new Transform({
          highWaterMark: 1 << 20,
          transform(chunk: Buffer, _enc, cb) {
            hash.update(chunk);
            cb(null, chunk);
          },
        });
        pipeline(stream, hashing, () => undefined); // an error on either side destroys both; the unpacker sees it on hashing
        const res = await unpackLayer(hashing as Readable, { dest: diff, label: req.label, syncEvery: durable ? 16 * 1024 * 1024 : 0 });
        const actual = digestOfHash('sha256', hash);
        if (actual !== req.diffId) fail(corrupt(`${req.label} (uncompressed diff ID)`, req.diffId, actual));
        if (req.beforeCommit) await req.beforeCommit();
        if (durable) await syncfs(work);
        const meta = await publish(work, req, res.bytes);
        return { ...meta, diffPath: diffPath(req.chainId), compression, unpacked: true, warnings: res.warnings };
      } catch (e) {
        await fsp.rm(work, { recursive: true, force: true });
        if (e instanceof EngineFailure) throw e;
        throw new EngineFailure(invalidSpec(req.label, [(e as Error).message]), { cause: e });
      }
    },
    async unpackNative(req) {
      const existing = await get(req.chainId);
      if (existing) {
        if (req.input.kind === 'socket') req.input.socket.destroy();
        if (req.input.kind === 'stream') req.input.stream.destroy();
        return { ...existing, unpacked: false };
      }
      const { nativeUnpacker, runNativeUnpack } = await import('./native-unpack.js');
      const bin = nativeUnpacker();
      if (!bin) return fail({ _tag: 'Internal', message: `${req.label}: the native unpacker (native/build/berth-unpack) is not built` });
      const defer = unsettled !== undefined && req.deferSync === true;
      const work = await makeWork();
      try {
        const read = await runNativeUnpack(bin, {
          input: req.input,
          dest: path.join(work, 'diff'),
          sync: durable && !defer, // berth-unpack fsyncs the blob and syncfs-es the layer before it reports
          label: req.label,
          ...(req.blobFile !== undefined ? { blobFile: req.blobFile } : {}),
          ...(req.endpoint !== undefined ? { endpoint: req.endpoint } : {}),
          ...(req.onProgress !== undefined ? { onProgress: req.onProgress } : {}),
        });
        if (read.diffId !== req.diffId) fail(corrupt(`${req.label} (uncompressed diff ID)`, req.diffId, read.diffId));
        // durable marks before anything is published: the layer, and the blob written beside it
        if (defer) await unsettled.mark([`layer-${encodedOf(req.chainId)}`, ...(req.blobFile !== undefined ? [`blob-${encodedOf(read.digest)}`] : [])]);
        if (req.beforeCommit) await req.beforeCommit(read);
        const meta = await publish(work, req, read.bytes, defer);
        return { ...meta, diffPath: diffPath(req.chainId), compression: read.compression, unpacked: true };
      } catch (e) {
        await fsp.rm(work, { recursive: true, force: true });
        throw e;
      }
    },
    async remove(chainId) {
      const d = layerDir(chainId);
      // rename first so a crash never leaves a half-deleted layer under its chain ID
      const doomed = path.join(dir, `extract-${process.pid}-${randomSuffix()}`);
      try {
        await fsp.rename(d, doomed);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw e;
      }
      await fsp.rm(doomed, { recursive: true, force: true });
    },
    async list() {
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
      const out: LayerInfo[] = [];
      for (const n of names) {
        if (!/^[a-f0-9]{64}$/.test(n)) continue;
        const info = await get(`sha256:${n}` as DigestT);
        if (info) out.push(info);
      }
      return out;
    },
    async cleanExtracts() {
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw e;
      }
      let n = 0;
      for (const name of names) {
        if (!name.startsWith('extract-')) continue;
        const pid = Number(name.split('-')[1]);
        if (pid === process.pid || pidAlive(pid)) continue;
        await fsp.rm(path.join(dir, name), { recursive: true, force: true });
        n++;
      }
      // a crash between creating a chain dir's contents and its metadata cannot happen (rename is last),
      // but a chain dir without layer.json would be from an older or foreign writer: leave it, list() ignores it
      return n;
    },
    async mount(chain, upper, work, target) {
      if (chain.length === 0) fail(invalidSpec('layer chain', ['an image needs at least one layer to mount']));
      const lowers = await requireChain(chain);
      return { type: 'overlay', source: 'overlay', target, options: [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${work}`] };
    },
    async view(chain, target) {
      if (chain.length === 0) fail(invalidSpec('layer chain', ['an image needs at least one layer to mount']));
      const lowers = await requireChain(chain);
      if (lowers.length === 1) return { type: 'bind', source: lowers[0] as string, target, options: ['ro', 'rbind'] };
      return { type: 'overlay', source: 'overlay', target, options: [`lowerdir=${lowers.join(':')}`] };
    },
  };
};
