import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, readFile, readdir, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openStore, type Store } from '../../../engine/store/store.js';
import { pullImage } from '../../../engine/registry/pull.js';
import { pushImage } from '../../../engine/registry/push.js';
import { Registry } from '../../../engine/registry/client.js';
import { saveCredentials } from '../../../engine/registry/credentials.js';
import type { ProgressEvent } from '../../../engine/registry/progress.js';
import { makeTar } from '../store/tars.js';
import { busyboxLayout, have, makeOciLayout, skopeo, skopeoInspect, startRegistry, type RegistryHandle } from './helpers.js';

const ready = process.getuid?.() === 0 && have('docker-registry') && have('skopeo') && have('htpasswd') && have('openssl');
const why = 'needs root, docker-registry, skopeo, htpasswd (apache2-utils) and openssl';

let work: string;
let store: Store;
let cfg: string;
beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-reg-'));
  store = openStore(path.join(work, 'root'), { durable: false });
  cfg = path.join(work, 'config');
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(!ready)(`registry interop (${why})`, () => {
  describe('anonymous registry', () => {
    let reg: RegistryHandle;
    beforeAll(async () => {
      reg = await startRegistry();
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it('pulls what skopeo pushed, with the same digests, unpacked and named', async () => {
      const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/test/busybox:v1`]);
      const events: ProgressEvent[] = [];
      const img = await pullImage(store, `${reg.host}/test/busybox:v1`, { configDir: cfg, onProgress: (e) => events.push(e) });
      expect(img.manifestDescriptor.digest).toBe((await skopeoInspect(`docker://${reg.host}/test/busybox:v1`)).Digest);
      expect(img.id).toBe(layout.configDigest);
      expect(img.names).toEqual([`${reg.host}/test/busybox:v1`]);
      expect(img.chain).toHaveLength(2);
      const top = store.layers.diffPath(img.chain[1]!);
      expect(await readFile(path.join(top, 'etc/motd'), 'utf8')).toBe('hello from berth\n');
      expect((await stat(path.join(top, 'etc/passwd'))).isCharacterDevice()).toBe(true);
      const bottom = store.layers.diffPath(img.chain[0]!);
      expect((await stat(path.join(bottom, 'bin/ls'))).ino).toBe((await stat(path.join(bottom, 'bin/busybox'))).ino);
      expect(events.filter((e) => e.kind === 'layer' && e.state === 'done')).toHaveLength(2);
      // a second pull finds everything present
      const again: ProgressEvent[] = [];
      await pullImage(store, `${reg.host}/test/busybox:v1`, { configDir: cfg, onProgress: (e) => again.push(e) });
      expect(again.filter((e) => e.kind === 'layer').map((e) => (e.kind === 'layer' ? e.state : ''))).toEqual(['exists', 'exists']);
      expect((await store.resolve(`${reg.host}/test/busybox:v1`)).id).toBe(layout.configDigest);
    });

    it('pushes an image that skopeo copies back with matching digests; skips and mounts blobs the registry has', async () => {
      const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/src/busybox:v1`]);
      const img = await pullImage(store, `${reg.host}/src/busybox:v1`, { configDir: cfg });
      await store.tag(img.target, `${reg.host}/dst/busybox:v2`);
      const first = await pushImage(store, `${reg.host}/dst/busybox:v2`, undefined, { configDir: cfg });
      expect(first.digest).toBe(img.manifestDescriptor.digest);
      expect(first, JSON.stringify(first)).toMatchObject({ mounted: 3 }); // config + 2 layers came from src/busybox by cross-repo mount
      expect((await skopeoInspect(`docker://${reg.host}/dst/busybox:v2`)).Digest).toBe(first.digest);
      const second = await pushImage(store, `${reg.host}/dst/busybox:v2`, `${reg.host}/dst/busybox:v3`, { configDir: cfg });
      expect(second.skipped).toBe(3);
      // a fresh repository with no local source to mount from: real uploads
      const third = await pushImage(store, img.id, `${reg.host}/fresh/one:x`, { configDir: cfg });
      expect(third.uploaded + third.mounted).toBe(3);
      const out = path.join(work, 'copied');
      await skopeo([`docker://${reg.host}/fresh/one:x`, `oci:${out}:x`]);
      const idx = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
      expect(idx.manifests[0]?.digest).toBe(img.manifestDescriptor.digest);
    });

    it('picks the host platform from a manifest list', async () => {
      const dir = path.join(work, 'multi');
      const amd = await makeOciLayout(dir, 'amd', [await makeTar([{ name: 'arch', content: 'amd64' }])]);
      const arm = await makeOciLayout(path.join(work, 'arm'), 'arm', [await makeTar([{ name: 'arch', content: 'arm64' }])]);
      // move the arm image's blobs in and make an index of both
      for (const f of await readdir(path.join(arm.dir, 'blobs/sha256'))) {
        await writeFile(path.join(dir, 'blobs/sha256', f), await readFile(path.join(arm.dir, 'blobs/sha256', f)));
      }
      const armCfg = JSON.parse(await readFile(path.join(dir, 'blobs/sha256', arm.configDigest.slice(7)), 'utf8')) as Record<string, unknown>;
      expect(armCfg['architecture']).toBe('amd64'); // same helper; the platform in the index is what matters for choice
      const sizeOf = async (d: string): Promise<number> => (await stat(path.join(dir, 'blobs/sha256', d.slice(7)))).size;
      const index = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.index.v1+json',
          manifests: [
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: arm.manifestDigest, size: await sizeOf(arm.manifestDigest), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
            { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: amd.manifestDigest, size: await sizeOf(amd.manifestDigest), platform: { os: 'linux', architecture: 'amd64' } },
          ],
        }),
      );
      const { createHash } = await import('node:crypto');
      const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
      await writeFile(path.join(dir, 'blobs/sha256', indexDigest.slice(7)), index);
      await writeFile(
        path.join(dir, 'index.json'),
        JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }] }),
      );
      await skopeo(['--all', `oci:${dir}:multi`, `docker://${reg.host}/test/multi:1`]);
      const amdImg = await pullImage(store, `${reg.host}/test/multi:1`, { configDir: cfg, platform: { os: 'linux', architecture: 'amd64' } });
      expect(amdImg.target.digest).toBe(indexDigest);
      expect(amdImg.manifestDescriptor.digest).toBe(amd.manifestDigest);
      expect(await readFile(path.join(store.layers.diffPath(amdImg.chain[0]!), 'arch'), 'utf8')).toBe('amd64');
      const armImg = await pullImage(store, `${reg.host}/test/multi:1`, { configDir: cfg, platform: { os: 'linux', architecture: 'arm64' } });
      expect(armImg.manifestDescriptor.digest).toBe(arm.manifestDigest);
      await expect(pullImage(store, `${reg.host}/test/multi:1`, { configDir: cfg, platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(/linux\/s390x.*the image has: linux\/arm64\/v8, linux\/amd64/);
    });

    it('refuses a hostile layer from a registry: names image, layer and entry; nothing unpacked or named', async () => {
      const layout = await makeOciLayout(path.join(work, 'evil'), 'x', [await makeTar([{ name: 'ok', content: '1' }, { name: '../../etc/berth-pwned', content: 'x' }])]);
      await skopeo([`oci:${layout.dir}:x`, `docker://${reg.host}/test/evil:x`]);
      const p = pullImage(store, `${reg.host}/test/evil:x`, { configDir: cfg });
      await expect(p).rejects.toThrow(`image ${reg.host}/test/evil:x layer ${layout.layerDigests[0]}: refused entry "../../etc/berth-pwned": path contains '..'`);
      expect(await store.layers.list()).toEqual([]);
      expect(await store.names.list()).toEqual([]);
      expect(await readdir(path.join(store.root, 'layers'))).toEqual([]);
      expect(await store.blobs.has(layout.layerDigests[0] as never)).toBe(false);
    });

    it('refuses a blob whose bytes do not match its digest', async () => {
      const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/test/corrupt:v1`]);
      const top = layout.layerDigests[1]!.slice(7);
      const data = path.join(reg.dir, 'data/docker/registry/v2/blobs/sha256', top.slice(0, 2), top, 'data');
      const bytes = await readFile(data);
      bytes[bytes.length - 1] ^= 0x01; // same size, different content (gzip trailer)
      await writeFile(data, bytes);
      await expect(pullImage(store, `${reg.host}/test/corrupt:v1`, { configDir: cfg })).rejects.toMatchObject({ error: { _tag: expect.stringMatching(/Corrupt|InvalidSpec/) } });
      expect(await store.names.list()).toEqual([]);
      expect(await store.blobs.has(layout.layerDigests[1] as never)).toBe(false);
      expect((await readdir(path.join(store.root, 'layers'))).filter((n) => n.startsWith('extract-'))).toEqual([]);
    });

    it('a connection cut mid-layer is a Remote error that leaves nothing; the next pull completes', async () => {
      const { randomBytes } = await import('node:crypto');
      const net = await import('node:net');
      const layout = await makeOciLayout(path.join(work, 'big'), 'x', [await makeTar([{ name: 'blob', content: randomBytes(4 << 20) }])]);
      await skopeo([`oci:${layout.dir}:x`, `docker://${reg.host}/test/cut:x`]);
      // a TCP proxy in front of the registry that drops each connection after 1 MiB from upstream
      const [upHost, upPort] = reg.host.split(':');
      const sockets = new Set<import('node:net').Socket>();
      const proxy = net.createServer((client) => {
        const up = net.connect(Number(upPort), upHost);
        sockets.add(client);
        sockets.add(up);
        let n = 0;
        client.pipe(up);
        up.on('data', (c: Buffer) => {
          n += c.length;
          if (n > 1 << 20) {
            client.destroy();
            up.destroy();
          } else client.write(c);
        });
        client.on('error', () => up.destroy());
        up.on('error', () => client.destroy());
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      const port = (proxy.address() as import('node:net').AddressInfo).port;
      let connections = 0;
      proxy.on('connection', () => connections++);
      try {
        const p = pullImage(store, `127.0.0.1:${port}/test/cut:x`, { configDir: cfg });
        await expect(p).rejects.toMatchObject({ error: { _tag: 'Remote' } });
        await expect(p).rejects.toThrow(/download failed after \d+ of \d+ bytes/);
        expect(connections).toBeGreaterThanOrEqual(3); // the layer was tried three times
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((r) => proxy.close(r));
      }
      expect(await store.names.list()).toEqual([]);
      expect(await store.layers.list()).toEqual([]);
      expect(await store.blobs.has(layout.layerDigests[0] as never)).toBe(false);
      const img = await pullImage(store, `${reg.host}/test/cut:x`, { configDir: cfg });
      expect(img.manifestDescriptor.digest).toBe(layout.manifestDigest);
    });

    it('lists the catalog and reports unknown images as NotFound', async () => {
      const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/cat/one:v1`]);
      const r = await Registry.open(reg.host, { configDir: cfg });
      expect(await r.catalog()).toContain('cat/one');
      await expect(pullImage(store, `${reg.host}/cat/none:v1`, { configDir: cfg })).rejects.toMatchObject({ error: { _tag: 'NotFound' } });
    });
  });

  describe.each([
    ['htpasswd basic auth', 'basic' as const],
    ['bearer token auth', 'token' as const],
  ])('%s', (_name, kind) => {
    let reg: RegistryHandle;
    const user = 'berth';
    const password = 's3cret!';
    beforeAll(async () => {
      reg = await startRegistry({ kind, user, password });
    });
    afterAll(async () => {
      await reg?.stop();
    });

    it('pushes and pulls with saved credentials, and refuses without or with wrong ones', async () => {
      const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/auth/busybox:v1`], { user, password });
      await expect(pullImage(store, `${reg.host}/auth/busybox:v1`, { configDir: cfg })).rejects.toMatchObject({ error: { _tag: 'Unauthorized' } });
      await expect(pullImage(store, `${reg.host}/auth/busybox:v1`, { configDir: cfg, credentials: { username: user, password: 'wrong' } })).rejects.toMatchObject({
        error: { _tag: 'Unauthorized' },
      });
      await saveCredentials(reg.host, { username: user, password }, cfg);
      const img = await pullImage(store, `${reg.host}/auth/busybox:v1`, { configDir: cfg });
      expect(img.manifestDescriptor.digest).toBe(layout.manifestDigest);
      const pushed = await pushImage(store, img.id, `${reg.host}/auth/copy:v2`, { configDir: cfg });
      expect((await skopeoInspect(`docker://${reg.host}/auth/copy:v2`, { user, password })).Digest).toBe(pushed.digest);
      const r = await Registry.open(reg.host, { configDir: cfg });
      await r.ping();
    });
  });
});
