import { describe, expect, it } from 'vitest';
import { choosePlatform, formatPlatform, parsePlatform, platformMatches } from '../../../engine/store/platform.js';
import { decodeJson } from '../../../engine/store/decode.js';
import { Manifest } from '../../../engine/store/oci.js';
import { sha256 } from '../../../engine/store/digest.js';
import type { Descriptor } from '../../../engine/store/oci.js';

const d = (architecture: string, variant?: string, os = 'linux'): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: sha256(`${os}/${architecture}/${variant ?? ''}`),
  size: 1,
  platform: variant ? { os, architecture, variant } : { os, architecture },
});

describe('platform choice', () => {
  const list = [d('amd64'), d('arm', 'v6'), d('arm', 'v7'), d('arm64', 'v8'), d('amd64', undefined, 'windows')];
  it('picks the exact os/arch', () => {
    expect(choosePlatform(list, { os: 'linux', architecture: 'amd64' })).toBe(list[0]);
    expect(choosePlatform(list, { os: 'windows', architecture: 'amd64' })).toBe(list[4]);
  });
  it('treats arm64 without variant as v8', () => {
    expect(choosePlatform([d('arm64')], { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBeDefined();
  });
  it('prefers the exact arm variant, else the best older one', () => {
    expect(choosePlatform(list, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(list[2]);
    expect(choosePlatform([d('arm', 'v5'), d('arm', 'v6')], { os: 'linux', architecture: 'arm', variant: 'v7' })?.platform?.variant).toBe('v6');
    expect(platformMatches({ os: 'linux', architecture: 'arm', variant: 'v6' }, { os: 'linux', architecture: 'arm', variant: 'v7' })).toBe(false);
  });
  it('finds nothing for a foreign platform', () => {
    expect(choosePlatform(list, { os: 'linux', architecture: 's390x' })).toBeUndefined();
  });
  it('parses and formats os/arch/variant', () => {
    expect(parsePlatform('linux/arm/v7')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('linux')).toBeUndefined();
    expect(formatPlatform({ os: 'linux', architecture: 'amd64' })).toBe('linux/amd64');
  });
});

describe('decoding untrusted manifests', () => {
  it('names every problem with its path', () => {
    const bad = JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x', digest: 'sha256:nothex', size: -1 }, layers: [{ mediaType: 'y', size: 3 }] });
    let msg = '';
    try {
      decodeJson(Manifest, bad, 'manifest of x');
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('manifest of x: ');
    expect(msg).toContain('config.digest: expected Digest, got "sha256:nothex"');
    expect(msg).toContain('config.size: expected non-negative integer, got -1');
    expect(msg).toContain('layers[0].digest: expected Digest, got nothing');
  });
  it('refuses text that is not JSON', () => {
    expect(() => decodeJson(Manifest, '{nope', 'm')).toThrow(/^m: not valid JSON/);
  });
});
