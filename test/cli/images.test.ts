// The `berth` image verbs as a real process (dist/cli/main.js) against
// docker-registry and skopeo on this machine.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeTar } from '../engine/store/tars.js';
import { busyboxEntries, busyboxLayout, have, skopeo, skopeoInspect, startRegistry, type RegistryHandle } from '../engine/registry/helpers.js';

const run = promisify(execFile);
const main = path.resolve('dist/cli/main.js');
const ready = process.getuid?.() === 0 && existsSync(main) && have('docker-registry') && have('skopeo');

let work: string;
let root: string;
let env: NodeJS.ProcessEnv;

const berth = async (...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> => {
  try {
    const r = await run(process.execPath, [main, '--root', root, ...args], { env, maxBuffer: 64 << 20 });
    return { stdout: r.stdout, stderr: r.stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; code?: number };
    return { stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: typeof err.code === 'number' ? err.code : -1 };
  }
};
const ok = async (...args: string[]): Promise<string> => {
  const r = await berth(...args);
  expect(r.code, `berth ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
};

beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-test-cli-images-'));
  root = path.join(work, 'root');
  env = { ...process.env, BERTH_CONFIG: path.join(work, 'config'), DOCKER_CONFIG: path.join(work, 'docker') };
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(!ready)('berth image verbs (needs root, a built dist/ and docker-registry + skopeo)', () => {
  let reg: RegistryHandle;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('pull, images, tag, history, inspect, push, rmi, prune, system df', async () => {
    const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
    await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/cli/busybox:v1`]);
    const pulled = JSON.parse(await ok('--json', 'pull', `${reg.host}/cli/busybox:v1`)) as { id: string; digest: string };
    expect(pulled.id).toBe(layout.configDigest);
    expect(pulled.digest).toBe(layout.manifestDigest);
    await ok('tag', `${reg.host}/cli/busybox:v1`, 'mine/busybox:2');
    const list = await ok('images');
    expect(list.split('\n')[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(list).toMatch(new RegExp(`${reg.host.replace(/\./g, '\\.')}/cli/busybox\\s+v1\\s+${layout.configDigest.slice(7, 19)}`));
    expect(list).toMatch(/mine\/busybox\s+2\s+/);
    const json = JSON.parse(await ok('--json', 'images')) as Array<{ repository: string; tag: string; id: string }>;
    expect(json.map((r) => `${r.repository}:${r.tag}`).sort()).toEqual([`${reg.host}/cli/busybox:v1`, 'mine/busybox:2']);
    const hist = await ok('history', 'mine/busybox:2');
    expect(hist).toContain('layer 1');
    const insp = JSON.parse(await ok('image', 'inspect', 'mine/busybox:2')) as Array<{ Id: string; RootFS: { Layers: string[] }; Unpacked: boolean[] }>;
    expect(insp[0]?.Id).toBe(layout.configDigest);
    expect(insp[0]?.RootFS.Layers).toEqual(layout.diffIds);
    expect(insp[0]?.Unpacked).toEqual([true, true]);
    const pushed = JSON.parse(await ok('--json', 'push', 'mine/busybox:2', `${reg.host}/cli/copy:2`)) as { digest: string };
    expect((await skopeoInspect(`docker://${reg.host}/cli/copy:2`)).Digest).toBe(pushed.digest);
    const missing = await berth('rmi', 'nope:1');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('berth: image "nope:1" not found: pull it with `berth pull`\n');
    const rmi1 = await ok('rmi', 'mine/busybox:2');
    expect(rmi1).toBe('Untagged: mine/busybox:2\n');
    expect((await readdir(path.join(root, 'layers'))).length).toBe(2);
    const rmi2 = await ok('rmi', `${reg.host}/cli/busybox:v1`);
    expect(rmi2).toContain(`Deleted: ${layout.configDigest}`);
    expect(await readdir(path.join(root, 'layers'))).toEqual([]);
    expect(await readdir(path.join(root, 'images/blobs/sha256'))).toEqual([]);
    const df = JSON.parse(await ok('--json', 'system', 'df')) as { images: { count: number } };
    expect(df.images.count).toBe(0);
  });

  it('save writes a docker-archive that skopeo reads with the same layers; load reads it and an OCI archive back', async () => {
    const layout = await busyboxLayout(path.join(work, 'layout'), 'v1');
    await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/cli/save:v1`]);
    await ok('pull', `${reg.host}/cli/save:v1`);
    const tarFile = path.join(work, 'saved.tar');
    await ok('save', '-o', tarFile, `${reg.host}/cli/save:v1`);
    // skopeo (containers/image, what podman load uses) accepts it
    const viaSkopeo = JSON.parse((await run('skopeo', ['inspect', '--config', `docker-archive:${tarFile}`])).stdout) as { rootfs: { diff_ids: string[] } };
    expect(viaSkopeo.rootfs.diff_ids).toEqual(layout.diffIds);
    const manifest = JSON.parse((await run('tar', ['-xOf', tarFile, 'manifest.json'])).stdout) as Array<{ RepoTags: string[]; Config: string }>;
    expect(manifest[0]?.RepoTags).toEqual([`${reg.host}/cli/save:v1`]);
    expect(manifest[0]?.Config).toBe(`${layout.configDigest.slice(7)}.json`);
    // load into a fresh root
    root = path.join(work, 'root2');
    const loaded = await ok('load', '-i', tarFile);
    expect(loaded).toBe(`Loaded image: ${reg.host}/cli/save:v1\n`);
    const insp = JSON.parse(await ok('image', 'inspect', `${reg.host}/cli/save:v1`)) as Array<{ Id: string; Unpacked: boolean[] }>;
    expect(insp[0]?.Id).toBe(layout.configDigest);
    expect(insp[0]?.Unpacked).toEqual([true, true]);
    // an OCI archive made by skopeo
    root = path.join(work, 'root3');
    const oci = path.join(work, 'oci.tar');
    await skopeo([`docker://${reg.host}/cli/save:v1`, `oci-archive:${oci}:example.com/app:3`]);
    expect(await ok('load', '-i', oci)).toBe('Loaded image: example.com/app:3\n');
    expect(JSON.parse(await ok('--json', 'images')) as unknown[]).toHaveLength(1);
  });

  it('import makes a one-layer image; load refuses a hostile archive and leaves nothing', async () => {
    const rootfs = path.join(work, 'rootfs.tar');
    await writeFile(rootfs, await makeTar(await busyboxEntries()));
    const id = (await ok('import', '--cmd', '["/bin/sh"]', rootfs, 'imported/bb:1')).trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const insp = JSON.parse(await ok('image', 'inspect', 'imported/bb:1')) as Array<{ Config: { Cmd: string[] }; ChainIDs: string[] }>;
    expect(insp[0]?.Config.Cmd).toEqual(['/bin/sh']);
    const diff = path.join(root, 'layers', insp[0]!.ChainIDs[0]!.slice(7), 'diff');
    expect(existsSync(path.join(diff, 'bin/busybox'))).toBe(true);
    // hostile docker-archive: a layer escaping with ..
    const evilLayer = await makeTar([{ name: '../../../../tmp/berth-evil', content: 'x' }]);
    const { createHash } = await import('node:crypto');
    const diffId = `sha256:${createHash('sha256').update(evilLayer).digest('hex')}`;
    const cfg = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [diffId] } }));
    const archive = await makeTar([
      { name: 'c.json', content: cfg },
      { name: 'l/layer.tar', content: evilLayer },
      { name: 'manifest.json', content: JSON.stringify([{ Config: 'c.json', RepoTags: ['evil:1'], Layers: ['l/layer.tar'] }]) },
    ]);
    const evil = path.join(work, 'evil.tar');
    await writeFile(evil, archive);
    const before = await readdir(path.join(root, 'layers'));
    const r = await berth('load', '-i', evil);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('refused entry "../../../../tmp/berth-evil"');
    expect(existsSync('/tmp/berth-evil')).toBe(false);
    expect(await readdir(path.join(root, 'layers'))).toEqual(before);
    expect((JSON.parse(await ok('--json', 'images')) as Array<{ repository: string }>).map((x) => x.repository)).toEqual(['imported/bb']);
    // a missing file or a directory: a clear error naming it, nothing changed
    const missing = await berth('import', path.join(work, 'nope.tar'), 'x:1');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`berth: import <file>: ${path.join(work, 'nope.tar')}: no such file\n`);
    const dir = await berth('load', '-i', work);
    expect(dir.code).toBe(1);
    expect(dir.stderr).toBe(`berth: load --input: ${work}: is a directory; give a tar file (or - for stdin)\n`);
    expect(await readdir(path.join(root, 'layers'))).toEqual(before);
    expect((JSON.parse(await ok('--json', 'images')) as Array<{ repository: string }>).map((x) => x.repository)).toEqual(['imported/bb']);
  });

  it('login checks and saves credentials; logout removes them', async () => {
    const authed = await startRegistry({ kind: 'basic', user: 'u1', password: 'pw1' });
    try {
      const bad = await berth('login', authed.host, '-u', 'u1', '-p', 'nope');
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain('unauthorized');
      const good = spawn(process.execPath, [main, '--root', root, 'login', authed.host, '-u', 'u1', '--password-stdin'], { env });
      good.stdin.end('pw1\n');
      let out = '';
      good.stdout.on('data', (c: Buffer) => (out += c.toString()));
      expect(await new Promise((r) => good.on('exit', r))).toBe(0);
      expect(out).toBe('Login Succeeded\n');
      const auth = JSON.parse(await readFile(path.join(work, 'config', 'auth.json'), 'utf8')) as { auths: Record<string, unknown> };
      expect(Object.keys(auth.auths)).toEqual([authed.host]);
      expect(await ok('logout', authed.host)).toBe(`Removing login credentials for ${authed.host}\n`);
    } finally {
      await authed.stop();
    }
  });
});
