// The plain-http GET path of engine/registry/http.ts (its own response
// parser over net.Socket onread) against real servers on 127.0.0.1:
// node:http for well-formed answers, raw sockets for broken ones.
import { afterEach, describe, expect, it } from 'vitest';
import * as http from 'node:http';
import * as net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { request, readBody } from '../../../engine/registry/http.js';

const servers: Array<http.Server | net.Server> = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

const listen = async (s: http.Server | net.Server): Promise<string> => {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(s.address() as net.AddressInfo).port}`;
};

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

const readAll = async (body: AsyncIterable<Buffer>): Promise<Buffer> => {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c);
  return Buffer.concat(chunks);
};

describe('plain-http GET', () => {
  it('streams a large Content-Length body intact, with status and headers, and sends our headers', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 123);
    let seen: http.IncomingHttpHeaders = {};
    const host = await listen(
      http.createServer((req, res) => {
        seen = req.headers;
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(data.length), 'x-multi': 'a' });
        res.end(data);
      }),
    );
    const res = await request({ method: 'GET', url: `http://${host}/v2/x/blobs/sha256:1?n=1`, headers: { authorization: 'Bearer tok', accept: 'a/b' } });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['x-multi']).toBe('a');
    expect(seen['authorization']).toBe('Bearer tok');
    expect(seen['accept']).toBe('a/b');
    const got = await readAll(res.body as AsyncIterable<Buffer>);
    expect(got.length).toBe(data.length);
    expect(sha(got)).toBe(sha(data));
  });

  it('keeps backpressure: a slow reader gets every byte of a body larger than the buffers', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    const host = await listen(http.createServer((_req, res) => res.writeHead(200, { 'content-length': String(data.length) }).end(data)));
    const res = await request({ method: 'GET', url: `http://${host}/b` });
    const chunks: Buffer[] = [];
    for await (const c of res.body as AsyncIterable<Buffer>) {
      chunks.push(c);
      if (chunks.length % 4 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    expect(sha(Buffer.concat(chunks))).toBe(sha(data));
  });

  it('falls back to node:http for a chunked body', async () => {
    const parts = [randomBytes(100_000), randomBytes(3), randomBytes(2_000_000)];
    const host = await listen(
      http.createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        for (const p of parts) res.write(p);
        res.end();
      }),
    );
    const res = await request({ method: 'GET', url: `http://${host}/c` });
    expect(res.status).toBe(200);
    expect(sha(await readAll(res.body as AsyncIterable<Buffer>))).toBe(sha(Buffer.concat(parts)));
  });

  it('follows a redirect and reads error answers', async () => {
    const host = await listen(
      http.createServer((req, res) => {
        if (req.url === '/old') res.writeHead(307, { location: '/new', 'content-length': '0' }).end();
        else if (req.url === '/new') res.writeHead(200, { 'content-length': '2' }).end('ok');
        else res.writeHead(404, { 'content-type': 'application/json', 'content-length': '24' }).end('{"errors":[{"code":"X"}]}'.slice(0, 24));
      }),
    );
    const moved = await request({ method: 'GET', url: `http://${host}/old` });
    expect(moved.status).toBe(200);
    expect(moved.url).toBe(`http://${host}/new`);
    expect((await readBody(moved, 100, 'x')).toString()).toBe('ok');
    const missing = await request({ method: 'GET', url: `http://${host}/nope` });
    expect(missing.status).toBe(404);
    expect((await readBody(missing, 100, 'x')).length).toBe(24);
  });

  it('an answer without Content-Length ends with the connection', async () => {
    const host = await listen(
      net.createServer((c) => {
        c.once('data', () => {
          c.write('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello ');
          setTimeout(() => c.end('world'), 20);
        });
      }),
    );
    const res = await request({ method: 'GET', url: `http://${host}/e` });
    expect((await readAll(res.body as AsyncIterable<Buffer>)).toString()).toBe('hello world');
  });

  it('a connection closed before Content-Length bytes arrived fails the body (not a short success)', async () => {
    const host = await listen(
      net.createServer((c) => {
        c.once('data', () => c.end('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789'));
      }),
    );
    const res = await request({ method: 'GET', url: `http://${host}/cut` });
    expect(res.status).toBe(200);
    await expect(readAll(res.body as AsyncIterable<Buffer>)).rejects.toThrow(/10 body bytes, 99990 missing/);
  });

  it('a connection closed before any answer is a Remote error; bytes past Content-Length are not delivered', async () => {
    const dead = await listen(net.createServer((c) => c.once('data', () => c.destroy())));
    await expect(request({ method: 'GET', url: `http://${dead}/x` })).rejects.toMatchObject({ error: { _tag: 'Remote' } });
    const extra = await listen(
      net.createServer((c) => {
        c.once('data', () => c.end('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcEXTRA'));
      }),
    );
    const res = await request({ method: 'GET', url: `http://${extra}/x` });
    expect((await readAll(res.body as AsyncIterable<Buffer>)).toString()).toBe('abc');
  });

  it('refuses a header value with a line break (no request smuggling)', async () => {
    const host = await listen(http.createServer((_req, res) => res.end('x')));
    await expect(request({ method: 'GET', url: `http://${host}/x`, headers: { authorization: 'a\r\nX-Evil: 1' } })).rejects.toMatchObject({ error: { _tag: 'Remote' } });
  });
});
