// A throwaway Berth root with the busybox fixture imported as an image, and
// a cleanup that removes every container, volume and mount it made.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openLocalEngine, type LocalEngine } from '../../../engine/local.js';
import { importLayers } from '../../../engine/local-images.js';
import { fixtureRootfs } from '../../helpers/paths.js';

export interface TestEngine {
  readonly engine: LocalEngine;
  readonly dir: string;
  cleanup(): Promise<void>;
}

/** The fixture rootfs as an uncompressed layer tarball in `dir` (made once per dir). */
export const busyboxLayer = (dir: string): string => {
  const tar = path.join(dir, 'busybox-layer.tar');
  if (!fs.existsSync(tar)) execFileSync('tar', ['-C', fixtureRootfs, '--numeric-owner', '-cf', tar, '.']);
  return tar;
};

/** A layer in `dir` holding /data/seed.txt and /data/sub/deep.txt (for VOLUME copy-up). */
export const seedLayer = (dir: string): string => {
  const tree = fs.mkdtempSync(path.join(dir, 'seed-'));
  fs.mkdirSync(path.join(tree, 'data/sub'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'data/seed.txt'), 'from the image\n');
  fs.writeFileSync(path.join(tree, 'data/sub/deep.txt'), 'deep\n');
  const tar = `${tree}.tar`;
  execFileSync('tar', ['-C', tree, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.']);
  return tar;
};

/** `network`: the tests use Berth's networking; cleanup then purges its objects (bridges, veths, netns, nft table) too. */
export const makeTestEngine = async (opts: { runtime?: string; network?: boolean } = {}): Promise<TestEngine> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-'));
  const engine = openLocalEngine({ root: path.join(dir, 'root'), runRoot: path.join(dir, 'run') }, opts.runtime ? { runtime: opts.runtime } : {});
  await importLayers(engine.store, [busyboxLayer(dir)], 'busybox:latest', { cmd: ['sh'] });
  await importLayers(engine.store, [busyboxLayer(dir), seedLayer(dir)], 'seeded:latest', { cmd: ['sh'], volumes: ['/data'] });
  return {
    engine,
    dir,
    async cleanup() {
      // containers sharing another's network first: their owners cannot go while they run
      const all = await engine.listContainers({ all: true }).catch(() => []);
      const sharing = (c: (typeof all)[number]): boolean => (c.spec.networkMode ?? '').startsWith('container:');
      for (const c of [...all.filter(sharing), ...all.filter((c) => !sharing(c))]) {
        await engine.removeContainer(c.id, { force: true, volumes: true }).catch((e) => console.error('cleanup', c.name, e));
      }
      if (opts.network) {
        const { openNetworking } = await import('../../../engine/network/networking.js');
        await openNetworking(engine.roots).purge().catch((e) => console.error('cleanup: network purge', e));
      }
      // anything still mounted under the root (a failed test)
      const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir));
      for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
};
