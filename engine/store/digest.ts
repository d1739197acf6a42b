/**
 * Content digests (OCI image spec "digest"): `algorithm:encoded`. Berth
 * writes sha256 only and accepts sha256 and sha512 when reading.
 */
import { createHash, type Hash } from 'node:crypto';
import * as t from 'io-ts';
import { fail, invalidSpec } from '../errors.js';

export interface DigestBrand {
  readonly Digest: unique symbol;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** A validated digest string, e.g. `sha256:2c26b46b...`. */
export const Digest = t.brand(t.string, (s): s is t.Branded<string, DigestBrand> => DIGEST_RE.test(s), 'Digest');
export type Digest = t.TypeOf<typeof Digest>;

export const isDigest = (s: string): s is Digest => DIGEST_RE.test(s);

export const parseDigest = (s: string, source = 'digest'): Digest =>
  isDigest(s) ? s : fail(invalidSpec(source, [`expected a digest like sha256:<64 hex digits>, got ${JSON.stringify(s)}`]));

export const algorithmOf = (d: Digest): 'sha256' | 'sha512' => (d.startsWith('sha512:') ? 'sha512' : 'sha256');
export const encodedOf = (d: Digest): string => d.slice(d.indexOf(':') + 1);

export const newHash = (algorithm: 'sha256' | 'sha512' = 'sha256'): Hash => createHash(algorithm);
export const digestOfHash = (algorithm: 'sha256' | 'sha512', h: Hash): Digest => `${algorithm}:${h.digest('hex')}` as Digest;
export const sha256 = (data: string | Uint8Array): Digest => `sha256:${createHash('sha256').update(data).digest('hex')}` as Digest;

/** Short form for tables: the first 12 hex digits. */
export const shortId = (d: string): string => d.replace(/^sha(256|512):/, '').slice(0, 12);
