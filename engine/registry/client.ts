/**
 * An OCI distribution-spec client for one repository on one registry.
 *
 * Auth follows the WWW-Authenticate flow: a request answered 401 carries a
 * challenge; `Basic` is answered with saved credentials, `Bearer` by asking
 * the challenge's realm for a token (with the credentials, if any, as basic
 * auth; anonymous otherwise) for the scopes this client needs, then the
 * request is retried once. Tokens are kept per scope set.
 *
 * Scheme: https, except plain http for loopback hosts (localhost,
 * 127.0.0.0/8, ::1) and for registries listed as insecure.
 */
import * as t from 'io-ts';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { fail, notFound, remote, unauthorized, EngineFailure } from '../errors.js';
import { decodeJson } from '../store/decode.js';
import { sha256, type Digest } from '../store/digest.js';
import { INDEX_TYPES, MANIFEST_TYPES } from '../store/oci.js';
import { registryHost } from '../store/reference.js';
import { parseChallenges, type Challenge } from './challenge.js';
import { findCredentials, insecureRegistries, type Credentials } from './credentials.js';
import { discard, readBody, request, type HttpResponse } from './http.js';

export const MAX_MANIFEST = 4 * 1024 * 1024;

export interface RegistryOptions {
  /** Use these instead of looking them up in auth.json / Docker's config. */
  readonly credentials?: Credentials;
  readonly configDir?: string;
  /** Extra registries to speak plain http to. */
  readonly insecure?: readonly string[];
  readonly log?: Logger;
}

const TokenResponse = t.partial({ token: t.string, access_token: t.string, expires_in: t.number });
const ErrorBody = t.type({ errors: t.array(t.partial({ code: t.string, message: t.string })) });
const Catalog = t.type({ repositories: t.union([t.array(t.string), t.null]) });
const TagList = t.type({ name: t.string, tags: t.union([t.array(t.string), t.null]) });

export const isLoopback = (host: string): boolean => {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
};

export interface ManifestResponse {
  readonly bytes: Buffer;
  readonly mediaType: string;
  readonly digest: Digest;
}

/** What a registry said went wrong, from its JSON error body when it sent one. */
const explain = async (res: HttpResponse): Promise<string> => {
  const raw = await readBody(res, 64 * 1024, 'error body').catch(() => Buffer.alloc(0));
  try {
    const e = decodeJson(ErrorBody, raw, 'registry error');
    const msgs = e.errors.map((x) => [x.code, x.message].filter(Boolean).join(': ')).filter((m) => m !== '');
    if (msgs.length > 0) return msgs.join('; ');
  } catch {
    // not the spec's JSON error shape: show the raw text below
  }
  const text = raw.toString('utf8').trim();
  return text === '' ? 'no details' : text.slice(0, 300);
};

export class Registry {
  readonly host: string;
  readonly base: string;
  private credentials: Credentials | undefined;
  private credentialsLoaded = false;
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, string>();
  private basic: string | undefined;

  private constructor(readonly domain: string, scheme: 'http' | 'https', private readonly opts: RegistryOptions) {
    this.host = registryHost(domain);
    this.base = `${scheme}://${this.host}`;
    if (opts.credentials) {
      this.credentials = opts.credentials;
      this.credentialsLoaded = true;
    }
  }

  static async open(domain: string, opts: RegistryOptions = {}): Promise<Registry> {
    const insecure = [...(opts.insecure ?? []), ...(await insecureRegistries(opts.configDir))];
    const plain = isLoopback(domain) || insecure.includes(domain);
    return new Registry(domain, plain ? 'http' : 'https', opts);
  }

  private async creds(): Promise<Credentials | undefined> {
    if (!this.credentialsLoaded) {
      this.credentials = await findCredentials(this.domain, this.opts.configDir);
      this.credentialsLoaded = true;
    }
    return this.credentials;
  }

  private async fetchToken(ch: Challenge, scopes: readonly string[]): Promise<string> {
    const realm = ch.params['realm'];
    if (!realm) return fail(remote(this.host, 'bearer challenge without a realm'));
    const url = new URL(realm);
    if (ch.params['service']) url.searchParams.set('service', ch.params['service']);
    for (const s of scopes) url.searchParams.append('scope', s);
    const c = await this.creds();
    const headers: Record<string, string> = {};
    if (c) headers['authorization'] = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    this.opts.log?.debug({ realm, scopes, user: c?.username }, 'registry: fetching token');
    const res = await request({ method: 'GET', url: url.toString(), headers });
    if (res.status === 401 || res.status === 403) return fail(unauthorized(url.origin, `token server refused ${c ? `user ${c.username}` : 'anonymous access'}: ${await explain(res)}`));
    if (res.status !== 200) return fail(remote(url.origin, `token request failed: ${await explain(res)}`, res.status));
    const body = decodeJson(TokenResponse, await readBody(res, 1 << 20, url.origin), `token from ${url.origin}`);
    const tok = body.token ?? body.access_token;
    if (!tok) return fail(remote(url.origin, 'token response has no token'));
    return tok;
  }

  private authHeader(scopes: readonly string[]): string | undefined {
    if (this.challenge?.scheme === 'bearer') {
      const tok = this.tokens.get(scopes.join(' '));
      return tok ? `Bearer ${tok}` : undefined;
    }
    return this.basic;
  }

  private async answer(ch: Challenge, scopes: readonly string[]): Promise<void> {
    this.challenge = ch;
    if (ch.scheme === 'bearer') {
      this.tokens.set(scopes.join(' '), await this.fetchToken(ch, scopes));
    } else if (ch.scheme === 'basic') {
      const c = await this.creds();
      if (!c) return fail(unauthorized(this.host, 'the registry wants a user name and password'));
      this.basic = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    } else {
      fail(remote(this.host, `unsupported auth scheme ${ch.scheme}`));
    }
  }

  /**
   * Send a request with auth; on 401 answer the challenge and retry once.
   * A request with a streamed body is sent only once auth is settled (the
   * caller makes a body-less request first).
   */
  async send(method: string, path: string, scopes: readonly string[], headers: Record<string, string> = {}, body?: Buffer | Readable): Promise<HttpResponse> {
    const url = path.startsWith('http://') || path.startsWith('https://') ? path : `${this.base}${path}`;
    if (this.challenge?.scheme === 'bearer' && !this.tokens.has(scopes.join(' '))) await this.answer(this.challenge, scopes);
    for (let attempt = 0; ; attempt++) {
      const auth = this.authHeader(scopes);
      const h = { 'user-agent': 'berth/0.1', ...headers, ...(auth ? { authorization: auth } : {}) };
      const res = await request({ method, url, headers: h, ...(body !== undefined ? { body } : {}) });
      if (res.status !== 401) return res;
      const why = await explain(res);
      const chs = parseChallenges(String(res.headers['www-authenticate'] ?? ''));
      const ch = chs.find((c) => c.scheme === 'bearer') ?? chs.find((c) => c.scheme === 'basic');
      const retryable = body === undefined || Buffer.isBuffer(body);
      if (!ch || attempt > 0 || !retryable) {
        const c = await this.creds();
        return fail(unauthorized(this.host, `${method} ${new URL(url).pathname}: ${why}${c ? ` (as ${c.username})` : ' (no credentials)'}`));
      }
      await this.answer(ch, scopes);
    }
  }

  /** GET /v2/: checks that the registry answers and that our credentials work. */
  async ping(): Promise<void> {
    const res = await this.send('GET', '/v2/', []);
    if (res.status !== 200) fail(remote(this.host, `GET /v2/: ${await explain(res)}`, res.status));
    discard(res);
  }

  /** Repository names from /v2/_catalog, following Link pagination. */
  async catalog(limit = 1000): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = `/v2/_catalog?n=${Math.min(limit, 1000)}`;
    while (next && out.length < limit) {
      const res = await this.send('GET', next, ['registry:catalog:*']);
      if (res.status !== 200) return fail(remote(this.host, `catalog: ${await explain(res)}`, res.status));
      const body = decodeJson(Catalog, await readBody(res, 8 << 20, this.host), `${this.host} catalog`);
      out.push(...(body.repositories ?? []));
      const link = String(res.headers['link'] ?? '');
      const m = /<([^>]+)>;\s*rel="?next"?/.exec(link);
      next = m?.[1];
    }
    return out.slice(0, limit);
  }

  repository(path: string, actions: readonly ('pull' | 'push')[] = ['pull']): Repository {
    return new Repository(this, path, [`repository:${path}:${actions.join(',')}`]);
  }
}

export class Repository {
  constructor(readonly registry: Registry, readonly path: string, private scopes: string[]) {}

  private send(method: string, sub: string, headers?: Record<string, string>, body?: Buffer | Readable): Promise<HttpResponse> {
    return this.registry.send(method, sub.startsWith('http') ? sub : `/v2/${this.path}${sub}`, this.scopes, headers, body);
  }

  private where(what: string): string {
    return `${this.registry.host}/${this.path}${what}`;
  }

  /** Fetch a manifest or index by tag or digest, verified against its digest. */
  async manifest(reference: string): Promise<ManifestResponse> {
    const res = await this.send('GET', `/manifests/${reference}`, { accept: [...MANIFEST_TYPES, ...INDEX_TYPES].join(', ') });
    if (res.status === 404) {
      discard(res);
      return fail(notFound('image', this.where(reference.startsWith('sha') ? `@${reference}` : `:${reference}`), 'check the name and tag'));
    }
    if (res.status !== 200) return fail(remote(this.where(`:${reference}`), `manifest: ${await explain(res)}`, res.status));
    const bytes = await readBody(res, MAX_MANIFEST, this.where(' manifest'));
    const digest = sha256(bytes);
    if (reference.startsWith('sha256:') && digest !== reference) {
      return fail({ _tag: 'Corrupt', object: `manifest ${this.where(`@${reference}`)}`, expected: reference, actual: digest });
    }
    const header = res.headers['docker-content-digest'];
    if (typeof header === 'string' && header.startsWith('sha256:') && header !== digest) {
      return fail({ _tag: 'Corrupt', object: `manifest ${this.where(`:${reference}`)} (Docker-Content-Digest)`, expected: header, actual: digest });
    }
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (!MANIFEST_TYPES.includes(mediaType) && !INDEX_TYPES.includes(mediaType)) {
      try {
        const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; manifests?: unknown };
        mediaType = typeof parsed.mediaType === 'string' ? parsed.mediaType : Array.isArray(parsed.manifests) ? INDEX_TYPES[0]! : MANIFEST_TYPES[0]!;
      } catch (e) {
        return fail({ _tag: 'InvalidSpec', source: `manifest ${this.where(`:${reference}`)}`, problems: [`not JSON: ${(e as Error).message}`] });
      }
    }
    return { bytes, mediaType, digest };
  }

  /** Open a blob for reading (the caller verifies the digest while streaming). */
  async blob(digest: Digest): Promise<HttpResponse> {
    const res = await this.send('GET', `/blobs/${digest}`);
    if (res.status === 404) {
      discard(res);
      return fail(notFound('blob', this.where(`@${digest}`)));
    }
    if (res.status !== 200) return fail(remote(this.where(`@${digest}`), `blob: ${await explain(res)}`, res.status));
    return res;
  }

  async blobBytes(digest: Digest, max: number): Promise<Buffer> {
    const res = await this.blob(digest);
    const bytes = await readBody(res, max, this.where(`@${digest}`));
    const actual = sha256(bytes);
    if (actual !== digest) fail({ _tag: 'Corrupt', object: `blob ${this.where(`@${digest}`)}`, expected: digest, actual });
    return bytes;
  }

  async hasBlob(digest: Digest): Promise<boolean> {
    const res = await this.send('HEAD', `/blobs/${digest}`);
    discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    return fail(remote(this.where(`@${digest}`), 'HEAD blob failed', res.status));
  }

  /** Try a cross-repository mount; true if the registry mounted it. */
  async mountBlob(digest: Digest, from: string): Promise<boolean> {
    if (!this.scopes.includes(`repository:${from}:pull`)) this.scopes = [...this.scopes, `repository:${from}:pull`];
    const res = await this.send('POST', `/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, { 'content-length': '0' });
    discard(res);
    if (res.status === 201) return true;
    if (res.status === 202) {
      // the registry started an upload session instead: cancel it, we open our own
      const loc = res.headers.location;
      if (loc) discard(await this.send('DELETE', new URL(loc, `${this.registry.base}/`).toString()));
      return false;
    }
    return false;
  }

  /** Monolithic upload: POST to open a session, PUT the bytes with ?digest=. */
  async uploadBlob(digest: Digest, size: number, open: () => Readable): Promise<void> {
    const start = await this.send('POST', '/blobs/uploads/', { 'content-length': '0' });
    if (start.status !== 202) return fail(remote(this.where(''), `starting upload of ${digest}: ${await explain(start)}`, start.status));
    discard(start);
    const loc = start.headers.location;
    if (!loc) return fail(remote(this.where(''), 'upload session without a Location'));
    const url = new URL(loc, `${this.registry.base}/`);
    url.searchParams.set('digest', digest);
    const res = await this.send('PUT', url.toString(), { 'content-type': 'application/octet-stream', 'content-length': String(size) }, open());
    if (res.status !== 201) return fail(remote(this.where(`@${digest}`), `upload: ${await explain(res)}`, res.status));
    discard(res);
  }

  async putManifest(reference: string, bytes: Buffer, mediaType: string): Promise<Digest> {
    const res = await this.send('PUT', `/manifests/${reference}`, { 'content-type': mediaType, 'content-length': String(bytes.length) }, bytes);
    if (res.status !== 201 && res.status !== 200) return fail(remote(this.where(`:${reference}`), `put manifest: ${await explain(res)}`, res.status));
    discard(res);
    return sha256(bytes);
  }

  async tags(): Promise<string[]> {
    const res = await this.send('GET', '/tags/list');
    if (res.status === 404) {
      discard(res);
      return fail(notFound('repository', this.where('')));
    }
    if (res.status !== 200) return fail(remote(this.where(''), `tags: ${await explain(res)}`, res.status));
    return decodeJson(TagList, await readBody(res, 8 << 20, this.where('')), `${this.where('')} tags`).tags ?? [];
  }
}

export const isEngineFailureTag = (e: unknown, tag: string): boolean => e instanceof EngineFailure && e.error._tag === tag;
