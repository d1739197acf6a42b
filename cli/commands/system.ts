/**
 * berth system df: what images, blobs and unpacked layers take on disk.
 * berth system reset --force: everything of this root gone, host objects
 * included (podman's `system reset`).
 */
import type { Command } from 'commander';
import { context, group } from '../context.js';
import { emit, humanSize, table } from '../output.js';
import { guard } from '../run.js';
import { containerChains } from './images.js';

export const registerSystemCommands = (program: Command): void => {
  const system = group(program, 'system', 'manage Berth');
  system
    .command('df')
    .description('show disk usage')
    .action(
      guard(async (_o: unknown, c: Command) => {
        const ctx = context(c);
        const { diskUsage } = await import('../../engine/store/gc.js');
        const store = ctx.store();
        const du = await diskUsage(store, await containerChains(c, store));
        const rows = [
          { type: 'Images', total: du.images.count, size: du.images.bytes, reclaimable: du.blobs.reclaimableBytes },
          { type: 'Image blobs', total: du.blobs.count, size: du.blobs.bytes, reclaimable: du.blobs.reclaimableBytes },
          { type: 'Unpacked layers', total: du.layers.count, size: du.layers.bytes, reclaimable: du.layers.reclaimableBytes },
        ];
        emit(ctx, du, () =>
          table(rows, [
            { header: 'TYPE', get: (r) => r.type },
            { header: 'TOTAL', get: (r) => String(r.total) },
            { header: 'SIZE', get: (r) => humanSize(r.size) },
            { header: 'RECLAIMABLE', get: (r) => humanSize(r.reclaimable) },
          ]),
        );
      }),
    );

  system
    .command('reset')
    .description('remove every container, image, volume and network of this root, with the host objects they made, and the root itself')
    .option('-f, --force', 'do it (without it, nothing is changed)')
    .action(
      guard(async (o: { force?: boolean }, c: Command) => {
        const ctx = context(c);
        const { engineFor } = await import('./containers.js');
        const { fail, invalidSpec, conflict } = await import('../../engine/errors.js');
        const engine = await engineFor(c);
        const { root, runRoot } = engine.roots;
        if (!o.force) {
          return fail(invalidSpec('system reset', [`it removes every container, image, volume and network of ${root} (and ${runRoot}); give --force to do it`]));
        }
        // nothing may be mounted below what is removed at the end (rm would go through a mount into what
        // it shows), other than the network namespaces the purge below unmounts: refused before any change
        const { promises: fsp } = await import('node:fs');
        const path = await import('node:path');
        const { mountPoints } = await import('../../engine/network/host.js');
        const under = (d: string, m: string): boolean => m === d || m.startsWith(`${d}/`);
        const netnsDir = path.join(runRoot, 'netns');
        const mountsBelow = async (): Promise<string[]> => [...(await mountPoints())].filter((m) => under(root, m) || under(runRoot, m));
        const before = (await mountsBelow()).filter((m) => !under(netnsDir, m));
        if (before.length > 0) return fail(conflict('root', root, `has mounts below it that are not Berth's to remove (${before.join(', ')}): unmount them, then reset`));
        const containers = await engine.listContainers({ all: true });
        for (const ct of containers) await engine.removeContainer(ct.id, { force: true, volumes: true });
        const volumes = await engine.listVolumes();
        for (const v of volumes) await engine.removeVolume(v.name, { force: true });
        // bridges, the nft table, namespaces and the networks' records (the predefined ones too)
        const { openNetworking } = await import('../../engine/network/networking.js');
        await openNetworking({ root, runRoot }).purge();
        const after = await mountsBelow();
        if (after.length > 0) return fail(conflict('root', root, `still has mounts (${after.join(', ')}): unmount them, then reset again`));
        // only what Berth keeps there, then the directories if nothing else is left in them (a root
        // given by mistake, such as /var, loses nothing of anyone else's)
        const remove = async (dir: string, entries: readonly string[]): Promise<void> => {
          for (const e of entries) await fsp.rm(path.join(dir, e), { recursive: true, force: true });
          await fsp.rmdir(dir).catch(() => undefined); // not empty: someone else's files stay
        };
        await remove(runRoot, ['containers', 'events.jsonl', 'locks', 'netns', 'network-scanned', 'networks', 'runtime', 'shims']);
        await remove(root, ['build', 'containers', 'images', 'layers', 'networks', 'unsettled', 'volumes', '.cache', 'run']);
        const result = { containers: containers.length, volumes: volumes.length, root, runRoot };
        emit(ctx, result, () => `Removed ${containers.length} container(s), ${volumes.length} volume(s), every image and network, and ${root}`);
      }),
    );
};

export default registerSystemCommands;
