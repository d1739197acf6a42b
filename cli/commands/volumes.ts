/**
 * `berth volume create|ls|inspect|rm|prune`, with Docker's flags.
 */
import type { Command } from 'commander';
import type { VolumeInfo } from '../../engine/engine.js';
import { engineFor } from './containers.js';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

const fail125 = async (e: unknown): Promise<void> => {
  const { toEngineError, renderError } = await import('../../engine/errors.js');
  process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
  process.exitCode = 125;
};

const action = <A extends unknown[]>(fn: (...a: A) => Promise<void>) =>
  async (...a: A): Promise<void> => {
    try {
      await fn(...a);
    } catch (e) {
      await fail125(e);
    }
  };

const kv = (list: readonly string[] | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const i = l.indexOf('=');
    out[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  return out;
};

const json = (cmd: Command): boolean => (cmd.optsWithGlobals() as { json?: boolean }).json === true;

export const registerVolumeCommands = (program: Command): void => {
  const vol = program.command('volume').description('manage volumes');

  vol.command('create').description('create a named volume').argument('[name]')
    .option('-d, --driver <driver>', 'volume driver (local)', 'local')
    .option('-l, --label <k=v>', 'set a label', collect)
    .option('-o, --opt <k=v>', 'driver option', collect)
    .action(action(async (name: string | undefined, o: { driver: string; label?: string[]; opt?: string[] }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { randomBytes } = await import('node:crypto');
      const v = await engine.createVolume({
        name: name ?? randomBytes(32).toString('hex'), driver: o.driver as 'local', labels: kv(o.label),
        ...(o.opt ? { options: kv(o.opt) } : {}),
      });
      process.stdout.write(`${v.name}\n`);
    }));

  vol.command('ls').alias('list').description('list volumes')
    .option('-q, --quiet', 'only names')
    .option('-f, --filter <k=v>', 'filter: name, label, dangling', collect)
    .option('--format <template>', 'format ({{.Name}}, {{.Mountpoint}}, {{json .}})')
    .action(action(async (o: { quiet?: boolean; filter?: string[]; format?: string }, cmd: Command) => {
      const engine = await engineFor(cmd);
      let list: VolumeInfo[] = await engine.listVolumes();
      for (const f of o.filter ?? []) {
        const [k, v = ''] = f.split(/=(.*)/s, 2) as [string, string?];
        if (k === 'name') list = list.filter((x) => x.name.includes(v));
        else if (k === 'dangling') list = list.filter((x) => (x.usedBy.length === 0) === (v === 'true' || v === '1'));
        else if (k === 'label') {
          const [lk, lv] = v.split('=', 2) as [string, string?];
          list = list.filter((x) => x.spec.labels?.[lk] !== undefined && (lv === undefined || x.spec.labels[lk] === lv));
        } else {
          const { EngineFailure } = await import('../../engine/errors.js');
          throw new EngineFailure({ _tag: 'InvalidSpec', source: 'volume ls --filter', problems: [`unknown filter ${k} (name, label, dangling)`] });
        }
      }
      if (o.quiet) {
        if (list.length > 0) process.stdout.write(`${list.map((v) => v.name).join('\n')}\n`);
      } else if (json(cmd)) process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
      else if (o.format) {
        const { formatRows } = await import('./containers.js');
        const out = formatRows(o.format, list.map((v) => ({ Name: v.name, Driver: 'local', Mountpoint: v.mountpoint, CreatedAt: v.created })), list);
        if (out !== '') process.stdout.write(`${out}\n`);
      } else {
        const w = Math.max(6, ...list.map((v) => v.name.length));
        process.stdout.write(`${['DRIVER    VOLUME NAME', ...list.map((v) => `local     ${v.name.padEnd(w)}`.trimEnd())].join('\n')}\n`);
      }
    }));

  vol.command('inspect').description('show details of volumes').argument('<names...>')
    .option('-f, --format <template>', 'format ({{.Mountpoint}})')
    .action(action(async (names: string[], o: { format?: string }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const out = [];
      for (const n of names) out.push(await engine.inspectVolume(n));
      if (o.format) {
        for (const v of out) {
          const fields: Record<string, string> = { Name: v.name, Mountpoint: v.mountpoint, Driver: 'local', CreatedAt: v.created };
          process.stdout.write(`${o.format.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, k: string) => fields[k] ?? '')}\n`);
        }
        return;
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    }));

  vol.command('rm').alias('remove').description('remove volumes (refused while a container uses them)').argument('<names...>')
    .option('-f, --force', 'no error when a volume does not exist')
    .action(async (names: string[], o: { force?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd).catch(async (e) => {
        await fail125(e);
        return undefined;
      });
      if (!engine) return;
      for (const n of names) {
        try {
          await engine.removeVolume(n, { force: o.force === true });
          process.stdout.write(`${n}\n`);
        } catch (e) {
          await fail125(e);
          process.exitCode = 1;
        }
      }
    });

  vol.command('prune').description('remove every volume no container uses')
    .option('-f, --force', 'do not prompt (Berth never prompts)')
    .option('-a, --all', 'named volumes too (Berth prunes all unused volumes)')
    .action(action(async (_o: unknown, cmd: Command) => {
      const engine = await engineFor(cmd);
      const r = await engine.pruneVolumes();
      if (json(cmd)) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${r.deleted.length > 0 ? `Deleted Volumes:\n${r.deleted.join('\n')}\n\n` : ''}Total reclaimed space: ${r.reclaimedBytes}B\n`);
    }));
};

export default registerVolumeCommands;
