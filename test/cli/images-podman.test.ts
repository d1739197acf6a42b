// Berth's save read by `podman load` (same image ID), podman's save read by
// `berth load`, and a podman pull of what Berth pushed. podman runs with its
// own temporary storage (vfs), so the host's podman state is not touched.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeTar } from '../engine/store/tars.js';
import { busyboxEntries, have, startRegistry, type RegistryHandle } from '../engine/registry/helpers.js';

const run = promisify(execFile);
const main = path.resolve('dist/cli/main.js');
const ready = process.getuid?.() === 0 && existsSync(main) && have('podman') && have('docker-registry');

let work: string;
const berth = async (...args: string[]): Promise<string> =>
  (await run(process.execPath, [main, '--root', path.join(work, 'root'), ...args], { env: { ...process.env, BERTH_CONFIG: path.join(work, 'cfg') } })).stdout;
const podman = async (...args: string[]): Promise<string> =>
  (
    await run('podman', ['--root', path.join(work, 'proot'), '--runroot', path.join(work, 'prun'), '--storage-driver', 'vfs', '--events-backend', 'file', ...args], {
      timeout: 120_000,
    })
  ).stdout;

beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'berth-test-podman-'));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.skipIf(!ready)('podman interop (needs root, dist/, podman, docker-registry)', () => {
  let reg: RegistryHandle;
  beforeAll(async () => {
    reg = await startRegistry();
  });
  afterAll(async () => {
    await reg?.stop();
  });

  it('podman loads what berth saves, berth loads what podman saves, podman pulls what berth pushes', async () => {
    const rootfs = path.join(work, 'rootfs.tar');
    await writeFile(rootfs, await makeTar(await busyboxEntries()));
    const id = (await berth('import', '--cmd', '["/bin/sh"]', rootfs, `${reg.host}/pm/bb:1`)).trim();
    await berth('save', '-o', path.join(work, 'b.tar'), `${reg.host}/pm/bb:1`);
    expect(await podman('load', '-i', path.join(work, 'b.tar'))).toContain(`Loaded image: ${reg.host}/pm/bb:1`);
    expect((await podman('images', '--no-trunc', '--format', '{{.ID}}')).trim()).toBe(id);
    await podman('tag', `${reg.host}/pm/bb:1`, 'localhost/pm/again:2');
    await podman('save', '-o', path.join(work, 'p.tar'), 'localhost/pm/again:2');
    const workRoot = path.join(work, 'root');
    await rm(workRoot, { recursive: true, force: true });
    expect(await berth('load', '-i', path.join(work, 'p.tar'))).toBe('Loaded image: localhost/pm/again:2\n');
    expect(JSON.parse(await berth('--json', 'images')) as Array<{ id: string }>).toMatchObject([{ id }]);
    const pushed = JSON.parse(await berth('--json', 'push', 'localhost/pm/again:2', `${reg.host}/pm/pushed:3`)) as { digest: string };
    await podman('pull', '--tls-verify=false', `${reg.host}/pm/pushed:3`);
    // the image is the one podman loaded before (same ID); the pull adds the pushed manifest's digest
    expect((await podman('image', 'inspect', '--format', '{{.ID}}', `${reg.host}/pm/pushed:3`)).trim()).toBe(id.slice(7));
    expect(await podman('image', 'inspect', '--format', '{{.RepoDigests}}', `${reg.host}/pm/pushed:3`)).toContain(`${reg.host}/pm/pushed@${pushed.digest}`);
  }, 240_000);
});
