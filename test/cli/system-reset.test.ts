// `berth system reset` as a user runs it (dist/cli/main.js): without --force
// nothing changes; with it every container, volume, network and image of
// the root goes, with the host objects they made (bridge, nft table, netns,
// shim), and the root's directories; files of anyone else's stay.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer } from '../engine/runtime/helpers.js';
import { openLocalEngine } from '../../engine/local.js';
import { importLayers } from '../../engine/local-images.js';
import { openNetworking } from '../../engine/network/networking.js';
import { pidAlive } from '../../engine/store/fsutil.js';
import { repoRoot } from '../helpers/paths.js';

const main = path.join(repoRoot, 'dist/cli/main.js');
const skip = process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(main) ? 'needs dist/ (npm run build)' : '';
let dir = '';
let root = '';
let runRoot = '';

const berth = (...args: string[]): { code: number; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [main, '--root', root, '--run-root', runRoot, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, BERTH_NATIVE_DIR: path.join(repoRoot, 'native/build') },
  });
  return { code: r.status ?? 128 + 9, stdout: r.stdout, stderr: r.stderr };
};

describe.skipIf(skip !== '')(`berth system reset${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-cli-reset-'));
    root = path.join(dir, 'root');
    runRoot = path.join(dir, 'run');
    const e = openLocalEngine({ root, runRoot }, { networking: null });
    await importLayers(e.store, [busyboxLayer(dir)], 'busybox:latest', { cmd: ['sh'] });
  }, 60_000);
  afterAll(async () => {
    // whatever a failed assertion left: containers first, then the host objects
    const e = openLocalEngine({ root, runRoot });
    for (const c of await e.listContainers({ all: true }).catch(() => [])) await e.removeContainer(c.id, { force: true }).catch(() => undefined);
    await openNetworking({ root, runRoot }).purge().catch(() => undefined);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('changes nothing without --force, and removes everything of the root with it', () => {
    expect(berth('network', 'create', 'app').code).toBe(0);
    expect(berth('volume', 'create', 'data').code).toBe(0);
    const id = berth('run', '-d', '--network', 'app', '-v', 'data:/data', '--name', 'svc', 'busybox', 'sleep', '600').stdout.trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    const pid = Number(berth('inspect', '-f', '{{.State.Pid}}', 'svc').stdout.trim());
    const [net] = JSON.parse(berth('network', 'inspect', 'app').stdout) as { bridge: string }[];
    const bridge = net!.bridge;
    const linkUp = (name: string): boolean => fs.existsSync(`/proc/sys/net/ipv4/conf/${name}`);
    const tables = (): string => spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout;
    const before = tables();
    expect(linkUp(bridge)).toBe(true);
    fs.writeFileSync(path.join(root, 'not-berths.txt'), 'someone else\n');

    const refused = berth('system', 'reset');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`berth: system reset: it removes every container, image, volume and network of ${root} (and ${runRoot}); give --force to do it\n`);
    expect(berth('ps', '-q').stdout.trim()).toBe(id.slice(0, 12));
    expect(pidAlive(pid)).toBe(true);

    // something else mounted below the root: refused before anything changes
    const foreign = path.join(root, 'mnt');
    fs.mkdirSync(foreign);
    fs.mkdirSync(path.join(dir, 'elsewhere'));
    fs.writeFileSync(path.join(dir, 'elsewhere', 'keep.txt'), 'keep\n');
    spawnSync('mount', ['--bind', path.join(dir, 'elsewhere'), foreign]);
    try {
      const busy = berth('system', 'reset', '--force');
      expect(busy.code).toBe(1);
      expect(busy.stderr).toBe(`berth: root "${root}": has mounts below it that are not Berth's to remove (${foreign}): unmount them, then reset\n`);
      expect(pidAlive(pid)).toBe(true);
      expect(linkUp(bridge)).toBe(true);
    } finally {
      spawnSync('umount', [foreign]);
    }
    expect(fs.readFileSync(path.join(dir, 'elsewhere', 'keep.txt'), 'utf8')).toBe('keep\n');
    fs.rmdirSync(foreign);

    const r = berth('system', 'reset', '--force');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Removed 1 container(s), 1 volume(s), every image and network, and ${root}\n`);
    expect(pidAlive(pid)).toBe(false);
    expect(linkUp(bridge)).toBe(false);
    expect(tables().split('\n').length).toBeLessThan(before.split('\n').length); // this root's table went
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(fs.existsSync(runRoot)).toBe(false);
    expect(fs.readdirSync(root)).toEqual(['not-berths.txt']); // Berth's own directories only
    // and the root works again from scratch
    expect(berth('images', '-q').stdout).toBe('');
    expect(berth('ps', '-aq').stdout).toBe('');
  });
});
