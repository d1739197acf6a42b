/**
 * Image references as Docker users write them, normalized the way Docker
 * (distribution/reference) does:
 *
 *   busybox                      -> docker.io/library/busybox:latest
 *   busybox:1.36                 -> docker.io/library/busybox:1.36
 *   team/app                     -> docker.io/team/app:latest
 *   localhost/app                -> localhost/app:latest
 *   host:5000/team/app@sha256:.. -> host:5000/team/app@sha256:..   (no tag added)
 *
 * The first path component is a registry host when it contains '.' or ':',
 * or is 'localhost'. Repository components are lowercase [a-z0-9] runs joined
 * by '.', '_', '__' or runs of '-'. Tags: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
 */
import { fail, invalidSpec } from '../errors.js';
import { isDigest, type Digest } from './digest.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';

export interface Reference {
  /** Registry host with optional port: "docker.io", "127.0.0.1:5000". */
  readonly domain: string;
  /** Repository path inside the registry: "library/busybox". */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: Digest;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const IPV6 = /^\[[a-fA-F0-9:]+\]$/;

const validDomain = (d: string): boolean => {
  const m = /^(.*?)(?::([0-9]+))?$/.exec(d);
  if (!m || m[1] === undefined) return false;
  const host = m[1];
  if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return false;
  if (IPV6.test(host)) return true;
  return host.length > 0 && host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
};

/**
 * Parse and normalize a reference. With `defaultTag` (the default) a
 * reference without tag and digest gets `latest`.
 */
export const parseReference = (input: string, opts: { defaultTag?: boolean } = {}): Reference => {
  const bad = (why: string): never => fail(invalidSpec(`image reference ${JSON.stringify(input)}`, [why]));
  if (input.length === 0) bad('empty reference');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) bad(`invalid digest ${JSON.stringify(d)}: expected sha256:<64 lowercase hex digits>`);
    digest = d as Digest;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`invalid tag ${JSON.stringify(tag)}: use letters, digits, '_', '.', '-' (at most 128, not starting with '.' or '-')`);
  }
  const parts = rest.split('/');
  let domain = DEFAULT_DOMAIN;
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    if (!validDomain(first)) bad(`invalid registry host ${JSON.stringify(first)}`);
    domain = first;
    parts.shift();
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  for (const c of parts) {
    if (c.length === 0) bad('empty path component');
    if (c !== c.toLowerCase()) bad(`repository name must be lowercase: ${JSON.stringify(c)}`);
    if (!COMPONENT.test(c)) bad(`invalid repository component ${JSON.stringify(c)}: use lowercase letters, digits and separators '.', '_', '__', '-'`);
  }
  if (domain === DEFAULT_DOMAIN && parts.length === 1) parts.unshift('library');
  const path = parts.join('/');
  if (domain.length + 1 + path.length > 255) bad('repository name longer than 255 characters');
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) tag = DEFAULT_TAG;
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
};

/** "docker.io/library/busybox" */
export const repositoryOf = (r: Reference): string => `${r.domain}/${r.path}`;

/** Fully qualified: "docker.io/library/busybox:latest", "host:5000/a@sha256:..". */
export const formatReference = (r: Reference): string =>
  `${repositoryOf(r)}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;

/** The short form Docker shows: "busybox:latest", "team/app:1", "host:5000/a:b". */
export const familiarName = (r: Reference): string => {
  let repo = repositoryOf(r);
  if (r.domain === DEFAULT_DOMAIN) repo = r.path.startsWith('library/') && r.path.split('/').length === 2 ? r.path.slice(8) : r.path;
  return `${repo}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
};

export const familiarRepository = (r: Reference): string => familiarName({ domain: r.domain, path: r.path });

/** The host to talk to for a domain ("docker.io" is served by registry-1.docker.io). */
export const registryHost = (domain: string): string => (domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain);
