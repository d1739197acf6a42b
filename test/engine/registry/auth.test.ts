import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, readFile, writeFile, mkdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { parseChallenges } from '../../../engine/registry/challenge.js';
import { findCredentials, normalizeAuthKey, removeCredentials, saveCredentials } from '../../../engine/registry/credentials.js';
import { isLoopback } from '../../../engine/registry/client.js';

describe('WWW-Authenticate parsing', () => {
  it('reads a bearer challenge with a comma inside a quoted scope', () => {
    expect(parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    ]);
  });
  it('reads several challenges and unquoted values', () => {
    expect(parseChallenges('Basic realm="x y", Bearer realm=tok, error="invalid_token"')).toEqual([
      { scheme: 'basic', params: { realm: 'x y' } },
      { scheme: 'bearer', params: { realm: 'tok', error: 'invalid_token' } },
    ]);
  });
  it('handles escapes and an empty header', () => {
    expect(parseChallenges('Basic realm="a\\"b"')).toEqual([{ scheme: 'basic', params: { realm: 'a"b' } }]);
    expect(parseChallenges('')).toEqual([]);
  });
});

describe('credentials files', () => {
  let dir: string;
  const saved = process.env['DOCKER_CONFIG'];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'berth-auth-'));
    process.env['DOCKER_CONFIG'] = path.join(dir, 'docker');
  });
  afterEach(async () => {
    if (saved === undefined) delete process.env['DOCKER_CONFIG'];
    else process.env['DOCKER_CONFIG'] = saved;
    await rm(dir, { recursive: true, force: true });
  });

  it('saves Docker-compatible auth.json (0600), finds and removes it', async () => {
    const cfg = path.join(dir, 'berth');
    await saveCredentials('reg.example:5000', { username: 'u', password: 'p:w' }, cfg);
    const file = JSON.parse(await readFile(path.join(cfg, 'auth.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Buffer.from(file.auths['reg.example:5000']!.auth, 'base64').toString()).toBe('u:p:w');
    expect((await stat(path.join(cfg, 'auth.json'))).mode & 0o777).toBe(0o600);
    expect(await findCredentials('reg.example:5000', cfg)).toEqual({ username: 'u', password: 'p:w' });
    expect(await removeCredentials('reg.example:5000', cfg)).toBe(true);
    expect(await findCredentials('reg.example:5000', cfg)).toBeUndefined();
    expect(await removeCredentials('reg.example:5000', cfg)).toBe(false);
  });

  it("reads Docker's config.json, including the docker.io legacy key", async () => {
    await mkdir(path.join(dir, 'docker'));
    await writeFile(
      path.join(dir, 'docker', 'config.json'),
      JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from('d:1').toString('base64') }, 'q.example': { username: 'x', password: 'y' } } }),
    );
    expect(await findCredentials('docker.io', path.join(dir, 'none'))).toEqual({ username: 'd', password: '1' });
    expect(await findCredentials('q.example', path.join(dir, 'none'))).toEqual({ username: 'x', password: 'y' });
  });

  it('reports a malformed auth file clearly', async () => {
    const cfg = path.join(dir, 'berth');
    await mkdir(cfg);
    await writeFile(path.join(cfg, 'auth.json'), JSON.stringify({ auths: { h: { auth: 42 } } }));
    await expect(findCredentials('h', cfg)).rejects.toThrow(/auth\.json: auths\.h\.auth: expected string, got 42/);
  });

  it('normalizes keys and knows loopback hosts', () => {
    expect(normalizeAuthKey('https://registry-1.docker.io/v2/')).toBe('docker.io');
    expect(normalizeAuthKey('http://h:5000')).toBe('h:5000');
    expect(isLoopback('127.0.0.1:5000')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('[::1]:5000')).toBe(true);
    expect(isLoopback('10.0.0.1:5000')).toBe(false);
  });
});
