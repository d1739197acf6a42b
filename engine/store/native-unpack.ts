/**
 * The native layer unpacker, `native/build/berth-unpack` (native/unpack/):
 * one process per layer that reads the stored bytes (a registry socket
 * handed over as its stdin, a pipe, or a blob file), hashes them, writes
 * the blob file, decompresses (gzip; zstd when built with libzstd), hashes
 * the tar and unpacks it with the same hostile-tar rules as `unpack.ts`, on
 * two threads. It reports digests; the caller compares them and publishes.
 *
 * It is used when it was built (`make -C native` builds it when zlib and
 * OpenSSL's headers are there) and BERTH_NATIVE_UNPACK is not `0`;
 * otherwise the TypeScript path does the same work, slower.
 */
import { trace } from '../runtime/trace.js';
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants as C } from 'node:fs';
import * as path from 'node:path';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import * as t from 'io-ts';
import { EngineFailure, fail, invalidSpec, remote } from '../errors.js';
import { decodeJson } from './decode.js';
import { Digest } from './digest.js';

/** Where the bytes come from: a file descriptor, a (paused) socket handed over whole, or a stream piped in. */
export type NativeInput =
  | { readonly kind: 'fd'; readonly fd: number }
  | { readonly kind: 'socket'; readonly socket: Socket; readonly prefix: Buffer; readonly length: number }
  | { readonly kind: 'stream'; readonly stream: Readable };

export interface NativeUnpackOptions {
  readonly input: NativeInput;
  /** An existing empty directory that becomes the layer's diff. */
  readonly dest: string;
  /** Also store the bytes as read in this new file (the compressed blob). */
  readonly blobFile?: string;
  /** fsync the blob and syncfs the layer before returning. */
  readonly sync: boolean;
  /** Names the layer in errors. */
  readonly label: string;
  /** Names the remote end in input failures (connection cut). */
  readonly endpoint?: string;
  /** Bytes read so far, about every MiB. */
  readonly onProgress?: (bytes: number) => void;
}

export const NativeResult = t.type({
  compression: t.keyof({ gzip: null, zstd: null, none: null }),
  digest: Digest,
  size: t.number,
  diffId: Digest,
  entries: t.number,
  bytes: t.number,
});
export type NativeResult = t.TypeOf<typeof NativeResult>;

const binaryPath = (): string => {
  const env = process.env['BERTH_NATIVE_DIR'];
  if (env) return path.join(env, 'berth-unpack');
  // this file is <repo>/engine/store/native-unpack.ts or <repo>/dist/engine/store/native-unpack.js
  let dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  if (path.basename(dir) === 'dist') dir = path.dirname(dir);
  return path.join(dir, 'native/build/berth-unpack');
};

export interface NativeUnpacker {
  readonly path: string;
  /** Built with libzstd (asked once, when a zstd layer comes). */
  readonly zstd: () => boolean;
}

let found: NativeUnpacker | null | undefined;

/** The native unpacker, or undefined when it is not built or BERTH_NATIVE_UNPACK=0. */
export const nativeUnpacker = (): NativeUnpacker | undefined => {
  if (process.env['BERTH_NATIVE_UNPACK'] === '0') return undefined;
  if (found !== undefined) return found ?? undefined;
  const bin = binaryPath();
  try {
    accessSync(bin, C.X_OK);
  } catch {
    found = null;
    return undefined;
  }
  let zstd: boolean | undefined;
  found = {
    path: bin,
    zstd: () => (zstd ??= spawnSync(bin, ['--features'], { encoding: 'utf8' }).stdout?.split(/\s+/).includes('zstd') ?? false),
  };
  return found;
};

/**
 * Run berth-unpack over one layer. Resolves with what it read (digests,
 * sizes); rejects with InvalidSpec for a bad layer, Remote when the input
 * ended early or failed, Internal for a system failure (with its message).
 */
export const runNativeUnpack = (bin: NativeUnpacker, o: NativeUnpackOptions): Promise<NativeResult> =>
  new Promise((resolve, reject) => {
    const args = ['--dest', o.dest, '--parent', String(process.pid)];
    if (o.blobFile !== undefined) args.push('--blob', o.blobFile);
    if (o.sync) args.push('--sync');
    const input = o.input;
    let stdin: 'pipe' | number | Socket = 'pipe';
    const extra: Array<'pipe' | 'ignore'> = ['ignore', 'ignore'];
    if (input.kind === 'fd') stdin = input.fd;
    if (input.kind === 'socket') {
      stdin = input.socket;
      args.push('--length', String(input.prefix.length + input.length));
      if (input.prefix.length > 0) {
        args.push('--prefix-fd', '3');
        extra[0] = 'pipe';
      }
    }
    if (o.onProgress) {
      args.push('--progress-fd', '4');
      extra[1] = 'pipe';
    }
    const child = spawn(bin.path, args, { stdio: [stdin, 'pipe', 'pipe', ...extra] });
    if (o.onProgress) {
      const report = o.onProgress;
      let partial = '';
      (child.stdio[4] as unknown as Readable).on('data', (c: Buffer) => {
        const lines = (partial + c.toString('latin1')).split('\n');
        partial = lines.pop() ?? '';
        const last = lines[lines.length - 1];
        if (last !== undefined && last !== '') report(Number(last));
      });
    }
    if (input.kind === 'socket') {
      // the child has its own copy of the socket now: ours must neither read nor linger
      input.socket.destroy();
      if (input.prefix.length > 0) {
        const prefix = child.stdio[3] as unknown as NodeJS.WritableStream & { on(ev: 'error', f: () => void): void };
        prefix.on('error', () => undefined); // a child that died early reports through its exit status
        prefix.end(input.prefix);
      }
    }
    if (input.kind === 'stream') {
      const w = child.stdin as NodeJS.WritableStream & { on(ev: 'error', f: () => void): void };
      w.on('error', () => undefined); // EPIPE when the child refused the layer early: its status says why
      input.stream.on('error', () => child.kill('SIGKILL'));
      input.stream.pipe(w);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.on('error', (e) => reject(new EngineFailure({ _tag: 'Internal', message: `${o.label}: running ${bin.path}: ${e.message}` }, { cause: e })));
    child.on('close', (code, signal) => {
      const msg = Buffer.concat(err).toString('utf8').trim();
      if (input.kind === 'stream' && input.stream.errored) {
        return reject(input.stream.errored);
      }
      try {
        if (code === 0) {
          // BERTH_UNPACK_STATS=1 makes berth-unpack report its threads' CPU and waits there
          if (msg !== '') trace(`${o.label}: ${msg}`);
          return resolve(decodeJson(NativeResult, Buffer.concat(out), `${o.label}: berth-unpack result`));
        }
        if (code === 2) return fail(invalidSpec(o.label, [msg]));
        if (code === 3) {
          const m = /after (\d+) bytes/.exec(msg);
          return fail(remote(o.endpoint ?? o.label, `download failed after ${m ? m[1] : '?'} of ${input.kind === 'socket' ? input.prefix.length + input.length : '?'} bytes: ${msg}`));
        }
        return fail({ _tag: 'Internal', message: `${o.label}: berth-unpack ${signal ? `killed by ${signal}` : `failed (status ${code})`}${msg ? `: ${msg}` : ''}` });
      } catch (e) {
        reject(e);
      }
    });
  });
