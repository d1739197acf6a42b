/**
 * A client of the shim's attach socket (native/shim/README.md): output as
 * stdcopy frames (no terminal) or raw bytes (terminal); input, window size
 * and end-of-input as typed frames.
 */
import * as net from 'node:net';
import type { Readable, Writable } from 'node:stream';

export interface AttachStreams {
  readonly stdin?: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  /** The container has a terminal: output is raw, one stream. */
  readonly tty: boolean;
  /** Forward end-of-input to the container (type 2 frame). */
  readonly closeStdinOnEnd?: boolean;
  /** The terminal's size, sent as soon as the connection is up (before the process starts, for `run -t`). */
  readonly initialSize?: { readonly rows: number; readonly cols: number };
}

export interface AttachSession {
  /** Resolves when the shim closes the connection (the container's output ended) or we detach. */
  readonly done: Promise<void>;
  resize(rows: number, cols: number): void;
  detach(): void;
}

const frame = (type: number, payload: Uint8Array): Buffer => {
  const h = Buffer.alloc(8);
  h[0] = type;
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
};

/** Connect to `attach.sock`; resolves once connected (output flows from then on). */
export const attach = (socketPath: string, s: AttachStreams): Promise<AttachSession> =>
  new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let pending: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      if (s.tty) {
        s.stdout.write(chunk);
        return;
      }
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 8) {
        const len = pending.readUInt32BE(4);
        if (pending.length < 8 + len) break;
        const body = pending.subarray(8, 8 + len);
        (pending[0] === 2 ? s.stderr : s.stdout).write(body);
        pending = pending.subarray(8 + len);
      }
    };
    const done = new Promise<void>((res) => {
      sock.on('close', () => res());
    });
    sock.once('error', reject);
    sock.on('connect', () => {
      sock.removeListener('error', reject);
      sock.on('error', () => undefined);
      sock.on('data', onData);
      const onIn = (d: Buffer | string): void => {
        sock.write(frame(0, typeof d === 'string' ? Buffer.from(d) : d));
      };
      const onEnd = (): void => {
        if (s.closeStdinOnEnd !== false) sock.write(frame(2, Buffer.alloc(0)));
      };
      if (s.stdin) {
        s.stdin.on('data', onIn);
        s.stdin.on('end', onEnd);
      }
      const cleanup = (): void => {
        s.stdin?.removeListener('data', onIn);
        s.stdin?.removeListener('end', onEnd);
      };
      void done.then(cleanup);
      if (s.tty && s.initialSize) {
        const p = Buffer.alloc(4);
        p.writeUInt16BE(s.initialSize.rows, 0);
        p.writeUInt16BE(s.initialSize.cols, 2);
        sock.write(frame(1, p));
      }
      resolve({
        done,
        resize(rows, cols) {
          const p = Buffer.alloc(4);
          p.writeUInt16BE(rows, 0);
          p.writeUInt16BE(cols, 2);
          sock.write(frame(1, p));
        },
        detach() {
          cleanup();
          sock.destroy();
        },
      });
    });
  });

/** Wait for the shim's exit line on `shim.sock`; undefined when the shim is gone without one. */
export const waitExitLine = (socketPath: string, signal?: AbortSignal): Promise<string | undefined> =>
  new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buf = '';
    const onAbort = (): void => {
      sock.destroy();
      reject(Object.assign(new Error('aborted'), { name: 'AbortError' }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (buf += d));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      signal?.removeEventListener('abort', onAbort);
      const line = buf.split('\n')[0]?.trim();
      resolve(line ? line : undefined);
    });
  });
