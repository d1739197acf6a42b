/**
 * A small HTTP(S) client over node:http with keep-alive, redirects (the
 * Authorization header is dropped when a redirect leaves the host, as blob
 * stores behind CDNs expect) and streaming bodies as Node Readables (no web
 * stream conversion on the hot path of a layer download).
 *
 * Plain-http GETs (loopback and insecure registries) take a lean path: one
 * connection per request, read with `onread` into 1 MiB buffers (a full one
 * is handed downstream, a short read copied out of it; node:http reads 64
 * KiB at a time into a fresh allocation each, which cost
 * a 200 MB layer pull ~0.5 s of CPU in page faults, GC and per-chunk stream
 * work on a 2-core host). It parses the status line and headers itself and
 * serves bodies delimited by Content-Length or by the connection's end;
 * anything else (chunked encoding, a header block over 64 KiB) is retried
 * through node:http.
 */
import type * as http from 'node:http';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import { Readable } from 'node:stream';
import { fail, remote } from '../errors.js';

// node:http and node:https are loaded on first use, through require: an ESM import of node:http
// evaluates all its exports, undici's included (~50 ms of a pull that only takes the lean path)
const require = createRequire(import.meta.url);
let clients: { http: typeof import('node:http'); https: typeof import('node:https'); httpAgent: http.Agent; httpsAgent: http.Agent } | undefined;
const nodeClients = (): NonNullable<typeof clients> => {
  if (!clients) {
    const h = require('node:http') as typeof import('node:http');
    const hs = require('node:https') as typeof import('node:https');
    clients = { http: h, https: hs, httpAgent: new h.Agent({ keepAlive: true, maxSockets: 16 }), httpsAgent: new hs.Agent({ keepAlive: true, maxSockets: 16 }) };
  }
  return clients;
};

export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers?: Record<string, string>;
  /** A buffer, or a stream with a known length given in headers['content-length']. */
  readonly body?: Buffer | Readable;
  readonly maxRedirects?: number;
}

/** A response body's connection, handed over whole (to berth-unpack, which reads it itself). */
export interface RawBody {
  /** Paused; no longer read by us. Whoever takes it destroys it (after passing it on). */
  readonly socket: net.Socket;
  /** Body bytes already received, to come first. */
  readonly prefix: Buffer;
  /** Body bytes still to be read from the socket. */
  readonly length: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Readable;
  /** The URL that answered (after redirects). */
  readonly url: string;
  /**
   * Plain-http bodies with a Content-Length (the lean path) can be taken
   * off as a raw socket instead of read through `body`; undefined otherwise
   * or once `body` has been read from.
   */
  readonly detach?: () => RawBody | undefined;
}

const once = (req: HttpRequest, url: URL, headers: Record<string, string>): Promise<http.IncomingMessage> =>
  new Promise((resolve, reject) => {
    const c = nodeClients();
    const mod = url.protocol === 'https:' ? c.https : c.http;
    const r = mod.request(url, { method: req.method, headers, agent: url.protocol === 'https:' ? c.httpsAgent : c.httpAgent }, resolve);
    r.on('error', reject);
    if (req.body === undefined) r.end();
    else if (Buffer.isBuffer(req.body)) r.end(req.body);
    else {
      req.body.on('error', (e) => r.destroy(e));
      req.body.pipe(r);
    }
  });

const READ_BUFFER = 1 << 20;
const MAX_HEADER = 64 * 1024;

interface Head {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Readable;
  readonly detach?: () => RawBody | undefined;
}

/** The header block of a response, or undefined if it is not one this path can serve. */
const parseHead = (raw: string): { status: number; headers: http.IncomingHttpHeaders } | undefined => {
  const lines = raw.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) return undefined;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    const prev = headers[k];
    if (prev === undefined) headers[k] = v;
    else if (k === 'set-cookie') headers[k] = [...(Array.isArray(prev) ? prev : [prev]), v];
    else headers[k] = `${String(prev)}, ${v}`;
  }
  return { status: Number(m[1]), headers: headers as http.IncomingHttpHeaders };
};

/**
 * A body-less GET over plain http on its own connection. Resolves with the
 * status and headers once they arrive; the body streams with backpressure
 * (the socket pauses while the reader is full). Resolves undefined when the
 * response needs node:http (chunked encoding, odd framing).
 */
const leanGet = (url: URL, headers: Record<string, string>): Promise<Head | undefined> =>
  new Promise((resolve, reject) => {
    const port = Number(url.port || 80);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let head: Buffer | undefined = Buffer.alloc(0);
    let settled = false;
    let remaining = -1; // body bytes still expected; -1: until the connection ends
    let got = 0;
    let body: Readable | undefined;
    let detached = false;
    let buf = Buffer.allocUnsafe(READ_BUFFER);
    const settle = (v: Head | undefined, e?: Error): void => {
      if (settled) return;
      settled = true;
      if (e) reject(e);
      else resolve(v);
    };
    const finish = (): void => {
      body?.push(null);
      sock.destroy();
    };
    const deliver = (chunk: Buffer): boolean => {
      if (!body) return true;
      if (detached) return false;
      let c = chunk;
      if (remaining >= 0 && c.length > remaining) c = c.subarray(0, remaining); // bytes past the body: ignored (Connection: close)
      if (remaining >= 0) remaining -= c.length;
      got += c.length;
      const more = c.length === 0 ? true : body.push(c);
      if (remaining === 0) {
        finish();
        return true;
      }
      return more;
    };
    const sock = net.connect({
      host,
      port,
      onread: {
        buffer: () => buf, // asked for again after every read
        callback: (nread: number, b: Uint8Array): boolean => {
          // a well-filled read buffer goes downstream as it is and a fresh one takes its place; a
          // short read is copied out (a small chunk must not pin a whole 1 MiB buffer downstream)
          let chunk: Buffer;
          if (nread >= READ_BUFFER / 4 && b === buf) {
            chunk = buf.subarray(0, nread);
            buf = Buffer.allocUnsafe(READ_BUFFER);
          } else {
            chunk = Buffer.from(b.subarray(0, nread));
          }
          if (head === undefined) return deliver(chunk);
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) {
            if (head.length > MAX_HEADER) {
              sock.destroy();
              settle(undefined);
            }
            return true;
          }
          const parsed = parseHead(head.subarray(0, end).toString('latin1'));
          const rest = head.subarray(end + 4);
          head = undefined;
          const te = parsed?.headers['transfer-encoding'];
          const cl = parsed?.headers['content-length'];
          if (!parsed || (te !== undefined && te !== 'identity') || (cl !== undefined && !/^\d+$/.test(String(cl)))) {
            sock.destroy();
            settle(undefined);
            return false;
          }
          const noBody = parsed.status === 204 || parsed.status === 304 || (parsed.status >= 100 && parsed.status < 200);
          remaining = noBody ? 0 : cl !== undefined ? Number(cl) : -1;
          const stream = new Readable({
            highWaterMark: 4 * READ_BUFFER,
            read: () => {
              if (!detached && !sock.destroyed) sock.resume();
            },
            destroy: (err, cb) => {
              if (!detached) sock.destroy();
              cb(err);
            },
          });
          body = stream;
          const detach = (): RawBody | undefined => {
            // only a body nobody has read from, with a known length still to come
            if (detached || remaining <= 0 || stream.destroyed || stream.readableDidRead || sock.destroyed) return undefined;
            detached = true;
            sock.pause(); // stops reading the socket (onread: readStop)
            const parts: Buffer[] = [];
            for (let c = stream.read() as Buffer | null; c !== null; c = stream.read() as Buffer | null) parts.push(c);
            return { socket: sock, prefix: Buffer.concat(parts), length: remaining };
          };
          settle({ status: parsed.status, headers: parsed.headers, body: stream, detach });
          if (remaining === 0) {
            finish();
            return true;
          }
          return deliver(rest);
        },
      },
    });
    sock.setNoDelay(true);
    sock.on('connect', () => {
      let text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n`;
      for (const [k, v] of Object.entries(headers)) {
        if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
          sock.destroy();
          settle(undefined, new Error(`header ${k} contains a line break`));
          return;
        }
        text += `${k}: ${v}\r\n`;
      }
      sock.write(`${text}\r\n`);
    });
    sock.on('end', () => {
      if (detached) return;
      if (!settled) settle(undefined, new Error('connection closed before the response headers'));
      else if (body && remaining > 0) body.destroy(new Error(`connection closed after ${got} body bytes, ${remaining} missing`));
      else body?.push(null);
    });
    sock.on('error', (e) => {
      if (detached) return;
      if (!settled) settle(undefined, e);
      else if (body && remaining !== 0) body.destroy(e);
    });
    sock.on('close', () => {
      if (detached) return;
      if (!settled) settle(undefined, new Error('connection closed before the response headers'));
      else if (body && remaining > 0 && !body.destroyed) body.destroy(new Error(`connection closed after ${got} body bytes, ${remaining} missing`));
    });
  });

const send = async (req: HttpRequest, url: URL, headers: Record<string, string>): Promise<Head> => {
  if (url.protocol === 'http:' && req.method === 'GET' && req.body === undefined) {
    const lean = await leanGet(url, headers);
    if (lean) return lean;
  }
  const res = await once(req, url, headers);
  return { status: res.statusCode ?? 0, headers: res.headers, body: res };
};

export const request = async (req: HttpRequest): Promise<HttpResponse> => {
  let url = new URL(req.url);
  let headers = { ...(req.headers ?? {}) };
  const origin = url.host;
  for (let hop = 0; ; hop++) {
    let res: Head;
    try {
      res = await send(req, url, headers);
    } catch (e) {
      return fail(remote(`${req.method} ${url.origin}${url.pathname}`, `connection failed: ${(e as Error).message}`), e);
    }
    const status = res.status;
    const location = res.headers.location;
    const redirectable = req.body === undefined || Buffer.isBuffer(req.body);
    if ([301, 302, 303, 307, 308].includes(status) && location && redirectable && hop < (req.maxRedirects ?? 5)) {
      res.body.resume();
      url = new URL(location, url);
      if (url.host !== origin) {
        const { authorization: _a, Authorization: _b, ...rest } = headers;
        void _a;
        void _b;
        headers = rest;
      }
      continue;
    }
    return { status, headers: res.headers, body: res.body, url: url.toString(), ...(res.detach ? { detach: res.detach } : {}) };
  }
};

/** Read a whole (small) body, refusing more than `max` bytes. */
export const readBody = async (res: HttpResponse, max: number, what: string): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) {
      res.body.destroy();
      return fail(remote(what, `response larger than ${max} bytes`));
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
};

export const discard = (res: HttpResponse): void => {
  res.body.resume();
};
