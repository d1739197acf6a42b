/** berth system df: what images, blobs and unpacked layers take on disk. */
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
};

export default registerSystemCommands;
