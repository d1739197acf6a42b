// Berth and Docker exchange images through archives (issue 3: `berth save`
// makes a docker-archive that `docker load` accepts, and `berth load` reads
// what `docker save` makes), checked against a real dockerd 20.10 (Debian's
// docker.io) that test/helpers/dockerd.ts runs privately inside a network
// namespace of its own, with no bridge and no iptables.
//   - berth save -> docker load: same image ID (the config digest), same
//     RepoTags, and `docker run` sees the file the image holds;
//   - docker import / docker commit (a second layer with a whiteout) ->
//     docker save -> berth load: same image ID, and `berth run` sees the
//     files (and not the deleted one).
// Commands are named by absolute path: neither import puts PATH in the image.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeTar, type Entry } from '../engine/store/tars.js';
import { busyboxEntries } from '../engine/registry/helpers.js';
import { dockerdMissing, startDockerd, type Dockerd } from '../helpers/dockerd.js';
import { repoRoot } from '../helpers/paths.js';
import { peerLeftovers } from '../helpers/peers.js';

const run = promisify(execFile);
const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const skipReason = dockerdMissing() ?? (existsSync(tsc) ? undefined : `${tsc} is missing (npm ci)`);
// a private build of the current sources (inside the repo so that packages resolve), as
// test/cli/containers.test.ts does: a concurrent `npm run build` rewriting dist/ cannot break it
const privateDist = path.join(repoRoot, 'node_modules/.cache', `berth-test-dist-${process.pid}`);
const main = path.join(privateDist, 'cli/main.js');

let work = '';
// busyboxEntries' hard links carry mode 0644 in their headers; docker's extractor
// chmods a hard link to its header's mode (GNU tar does not), which would take the
// exec bit off the shared busybox inode: give them the binary's mode, as tar makes them.
const rootfsEntries = async (extra: Entry[]): Promise<Entry[]> => [
  ...(await busyboxEntries()).map((e): Entry => (e.type === 'link' ? { ...e, mode: 0o755 } : e)),
  ...extra,
];

const berth = async (...args: string[]): Promise<string> =>
  (
    await run(process.execPath, [main, '--root', path.join(work, 'root'), ...args], {
      env: { ...process.env, BERTH_CONFIG: path.join(work, 'cfg'), BERTH_NATIVE_DIR: path.join(repoRoot, 'native/build') },
      timeout: 120_000,
      maxBuffer: 16 << 20,
    })
  ).stdout;

interface DockerImage {
  Id: string;
  RepoTags: string[];
  RootFS: { Layers: string[] };
}

describe.skipIf(skipReason !== undefined)(`docker interop (${skipReason ?? 'dockerd 20.10 in its own netns'})`, () => {
  let dockerd: Dockerd | undefined;
  beforeAll(async () => {
    try {
      await run(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--outDir', privateDist]);
    } catch (e) {
      // type errors elsewhere in the tree still emit; a build that emitted nothing is a failure
      if (!existsSync(main)) throw e;
    }
    work = await mkdtemp(path.join(tmpdir(), 'berth-test-interop-'));
    dockerd = await startDockerd({ network: 'none' });
  }, 240_000);
  afterAll(async () => {
    try {
      await dockerd?.stop();
      // the helper's own promise: nothing of that dockerd is left (netns, cgroups, mounts, its containerd and shims)
      if (dockerd) expect(peerLeftovers({ dirs: [dockerd.dir], names: [dockerd.netns, dockerd.cgroupParent], links: [] })).toEqual([]);
    } finally {
      if (work) {
        // containers berth ran with --rm are gone; remove the rest of the root by the CLI first
        await berth('rm', '-f', ...(await berth('ps', '-aq')).split('\n').filter(Boolean)).catch(() => undefined);
        await rm(work, { recursive: true, force: true });
      }
      await rm(privateDist, { recursive: true, force: true });
    }
  }, 120_000);

  const inspect = async (ref: string): Promise<DockerImage> => {
    const [img] = JSON.parse(await dockerd!.docker('image', 'inspect', ref)) as DockerImage[];
    return img!;
  };

  it('docker loads what berth saves: same image ID and tags, and docker runs it', async () => {
    const marker = `berth-to-docker ${randomBytes(8).toString('hex')}\n`;
    const rootfs = path.join(work, 'b-rootfs.tar');
    await writeFile(rootfs, await makeTar(await rootfsEntries([{ name: 'etc/interop', content: marker }])));
    const id = (await berth('import', '--cmd', '["/bin/sh"]', rootfs, 'localhost/interop/from-berth:1')).trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    await berth('tag', 'localhost/interop/from-berth:1', 'localhost/interop/from-berth:also');
    const archive = path.join(work, 'b.tar');
    await berth('save', '-o', archive, 'localhost/interop/from-berth:1', 'localhost/interop/from-berth:also');

    const loaded = await dockerd!.docker('load', '-i', archive);
    expect(loaded).toContain('Loaded image: localhost/interop/from-berth:1');
    expect(loaded).toContain('Loaded image: localhost/interop/from-berth:also');
    const img = await inspect('localhost/interop/from-berth:1');
    expect(img.Id).toBe(id);
    expect([...img.RepoTags].sort()).toEqual(['localhost/interop/from-berth:1', 'localhost/interop/from-berth:also']);
    expect(await dockerd!.docker('run', '--rm', '--network', 'none', 'localhost/interop/from-berth:1', '/bin/cat', '/etc/interop')).toBe(marker);
  }, 240_000);

  it('berth loads what docker saves (docker import, docker commit with a deleted file): same image ID, and berth runs it', async () => {
    const marker = `docker-to-berth ${randomBytes(8).toString('hex')}\n`;
    const rootfs = path.join(work, 'd-rootfs.tar');
    await writeFile(rootfs, await makeTar(await rootfsEntries([{ name: 'etc/interop', content: marker }, { name: 'etc/doomed', content: 'gone soon\n' }])));
    const imported = (await dockerd!.docker('import', '--change', 'CMD ["/bin/sh"]', rootfs, 'localhost/interop/from-docker:1')).trim();
    // a second layer: one file added, one deleted (a whiteout in docker's layer tar)
    const extra = `committed ${randomBytes(8).toString('hex')}\n`;
    await dockerd!.docker('run', '--name', 'interop-commit', '--network', 'none', 'localhost/interop/from-docker:1', '/bin/sh', '-c', `printf '${extra.trimEnd()}\\n' > /etc/added && rm /etc/doomed`);
    await dockerd!.docker('commit', 'interop-commit', 'localhost/interop/committed:2');
    await dockerd!.docker('rm', 'interop-commit');
    const first = await inspect('localhost/interop/from-docker:1');
    const second = await inspect('localhost/interop/committed:2');
    expect(first.Id).toBe(imported);
    expect(second.RootFS.Layers).toHaveLength(2);

    const archive = path.join(work, 'd.tar');
    await dockerd!.docker('save', '-o', archive, 'localhost/interop/from-docker:1', 'localhost/interop/committed:2');
    const out = await berth('load', '-i', archive);
    expect(out).toContain('Loaded image: localhost/interop/from-docker:1');
    expect(out).toContain('Loaded image: localhost/interop/committed:2');
    const images = JSON.parse(await berth('--json', 'images')) as Array<{ id: string }>;
    expect(images.map((i) => i.id)).toEqual(expect.arrayContaining([first.Id, second.Id]));

    expect(await berth('run', '--rm', '--network', 'none', 'localhost/interop/from-docker:1', '/bin/cat', '/etc/interop')).toBe(marker);
    expect(await berth('run', '--rm', '--network', 'none', 'localhost/interop/committed:2', '/bin/cat', '/etc/interop', '/etc/added')).toBe(marker + extra);
    // the whiteout: /etc/doomed is in the lower layer and deleted in the upper one
    expect(await berth('run', '--rm', '--network', 'none', 'localhost/interop/committed:2', '/bin/sh', '-c', 'test -e /etc/doomed && echo present || echo absent')).toBe('absent\n');
    expect(await berth('run', '--rm', '--network', 'none', 'localhost/interop/from-docker:1', '/bin/cat', '/etc/doomed')).toBe('gone soon\n');
  }, 240_000);
});
