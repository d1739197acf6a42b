/**
 * A small HTTP(S) client over node:http with keep-alive, redirects (the
 * Authorization header is dropped when a redirect leaves the host, as blob
 * stores behind CDNs expect) and streaming bodies as Node Readables (no web
 * stream conversion on the hot path of a layer download).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { fail, remote } from '../errors.js';

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 16 });

export interface HttpRequest {
  readonly method: string;
  readonly url: string;
  readonly headers?: Record<string, string>;
  /** A buffer, or a stream with a known length given in headers['content-length']. */
  readonly body?: Buffer | Readable;
  readonly maxRedirects?: number;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: http.IncomingMessage;
  /** The URL that answered (after redirects). */
  readonly url: string;
}

const once = (req: HttpRequest, url: URL, headers: Record<string, string>): Promise<http.IncomingMessage> =>
  new Promise((resolve, reject) => {
    const mod = url.protocol === 'https:' ? https : http;
    const r = mod.request(url, { method: req.method, headers, agent: url.protocol === 'https:' ? httpsAgent : httpAgent }, resolve);
    r.on('error', reject);
    if (req.body === undefined) r.end();
    else if (Buffer.isBuffer(req.body)) r.end(req.body);
    else {
      req.body.on('error', (e) => r.destroy(e));
      req.body.pipe(r);
    }
  });

export const request = async (req: HttpRequest): Promise<HttpResponse> => {
  let url = new URL(req.url);
  let headers = { ...(req.headers ?? {}) };
  const origin = url.host;
  for (let hop = 0; ; hop++) {
    let res: http.IncomingMessage;
    try {
      res = await once(req, url, headers);
    } catch (e) {
      return fail(remote(`${req.method} ${url.origin}${url.pathname}`, `connection failed: ${(e as Error).message}`), e);
    }
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    const redirectable = req.body === undefined || Buffer.isBuffer(req.body);
    if ([301, 302, 303, 307, 308].includes(status) && location && redirectable && hop < (req.maxRedirects ?? 5)) {
      res.resume();
      url = new URL(location, url);
      if (url.host !== origin) {
        const { authorization: _a, Authorization: _b, ...rest } = headers;
        void _a;
        void _b;
        headers = rest;
      }
      continue;
    }
    return { status, headers: res.headers, body: res, url: url.toString() };
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
