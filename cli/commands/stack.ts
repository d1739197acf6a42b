/**
 * Declarative verbs: `berth plan`, `berth apply`, `berth destroy`,
 * `berth stack ls`, `berth stack ps`.
 *
 * `-f` takes a Berth stack file, a directory of them, or a Compose file (or a
 * directory holding compose.yaml); applying a Compose file works like
 * `docker compose up -d` (no confirmation asked). Plans are shown the way
 * Terraform shows them, with the reason for every change; `--json` prints
 * machine-readable plans and results. Exit codes: 0 success (plan
 * --detailed-exitcode: 0 nothing to do, 2 changes), 1 failure.
 */
import type { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline/promises';
import pc from 'picocolors';
import * as E from 'fp-ts/lib/Either.js';
import type { ContainerInfo, Engine } from '../../engine/engine.js';
import { renderError } from '../../engine/errors.js';
import type { Stack } from '../../provider/model/stack.js';
import type { ApplyEvent, ApplyResult } from '../../provider/reconcile/apply.js';
import type { Change, Plan } from '../../provider/reconcile/plan.js';
import { engineFor } from './containers.js';

interface Globals { json?: boolean; debug?: boolean }

const colors = pc.createColors(process.stdout.isTTY === true && process.env['NO_COLOR'] === undefined);
const out = (s: string): void => { process.stdout.write(s.endsWith('\n') ? s : `${s}\n`); };

const symbol = (c: Change): string => {
  switch (c.action) {
    case 'create': return colors.green('  +');
    case 'update': return colors.yellow('  ~');
    case 'replace': return c.order === 'create-before-delete' ? colors.magenta('+/-') : colors.red('-/+');
    case 'delete': return colors.red('  -');
    case 'noop': return '   ';
  }
};

const describeAction = (c: Change): string => {
  switch (c.action) {
    case 'create': return 'will be created';
    case 'update': return 'will be updated in place';
    case 'replace': return `must be replaced (${c.order === 'create-before-delete' ? 'create before delete' : 'delete before create'})`;
    case 'delete': return 'will be deleted';
    case 'noop': return 'is up to date';
  }
};

/** The plan as people read it (Terraform's layout, with reasons). */
export const renderPlan = (p: Plan): string => {
  const lines: string[] = [];
  const changes = p.changes.filter((c) => c.action !== 'noop');
  if (p.conflicts.length > 0) {
    lines.push(colors.red(colors.bold(`Stack "${p.stack}" cannot be applied: objects in the way that it does not own:`)));
    for (const c of p.conflicts) lines.push(`  ${colors.red('!')} ${c}`);
    lines.push('');
  }
  if (changes.length === 0) {
    lines.push(colors.green(`No changes. Stack "${p.stack}" matches its declaration (${p.changes.length} resources).`));
  } else {
    lines.push(`Berth will perform these actions on stack ${colors.bold(`"${p.stack}"`)}:`, '');
    for (const c of changes) {
      lines.push(`${symbol(c)} ${colors.bold(`${c.kind}s.${c.key}`)} ${colors.dim(`(${c.name})`)} ${describeAction(c)}`);
      for (const r of c.reasons) {
        const mark = r.forcesReplacement ? colors.red('#') : colors.yellow('~');
        lines.push(`      ${mark} ${r.field}: ${r.detail}${r.forcesReplacement && c.action === 'replace' ? colors.red(' (forces replacement)') : ''}`);
      }
    }
    lines.push('');
    const n = (a: Change['action']): number => changes.filter((c) => c.action === a).length;
    lines.push(`${colors.bold('Plan:')} ${n('create')} to create, ${n('update')} to update in place, ${n('replace')} to replace, ${n('delete')} to delete.`);
  }
  if (p.orphans.length > 0) {
    lines.push('', colors.yellow(`${p.orphans.length} object(s) of this stack are no longer declared and are kept (use --prune to delete them):`));
    for (const o of p.orphans) lines.push(`    ${o.kind}s.${o.key} ${colors.dim(`(${o.name})`)}`);
  }
  return lines.join('\n');
};

export const renderResult = (r: ApplyResult): string => {
  const lines: string[] = [];
  for (const x of r.results) {
    const head = x.status === 'done' ? colors.green('done') : x.status === 'failed' ? colors.red('FAILED') : colors.yellow('skipped');
    lines.push(`${head} ${x.resource} (${x.action})${x.because ? `: waits on ${x.because}, which failed` : ''}`);
    for (const s of x.steps) lines.push(`    ${s}`);
    if (x.error) lines.push(`    ${colors.red(renderError(x.error))}`);
  }
  const n = (s: string): number => r.results.filter((x) => x.status === s).length;
  lines.push('', r.ok ? colors.green(colors.bold(`Apply complete: ${n('done')} resource(s) changed.`))
    : colors.red(colors.bold(`Apply incomplete: ${n('done')} done, ${n('failed')} failed, ${n('skipped')} skipped.`)));
  return lines.join('\n');
};


const load = async (file: string, name?: string): Promise<Stack> => {
  const { loadStack } = await import('../../provider/model/load.js');
  const { EngineFailure } = await import('../../engine/errors.js');
  const r = loadStack(file, name !== undefined ? { name } : {});
  if (E.isLeft(r)) throw new EngineFailure(r.left);
  return r.right;
};

const isCompose = (file: string): boolean => {
  const names = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];
  try {
    if (fs.statSync(file).isDirectory()) return names.some((n) => fs.existsSync(path.join(file, n)));
  } catch {
    return false;
  }
  return names.includes(path.basename(file)) || /services\s*:/.test(fs.readFileSync(file, 'utf8').split('\n').filter((l) => /^\S/.test(l)).join('\n'));
};

/** Progress: a bar on a TTY (stderr), one line per finished resource otherwise. */
const progress = async (total: number, json: boolean): Promise<{ onEvent: (ev: ApplyEvent) => void; stop: () => void }> => {
  if (json) return { onEvent: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = await import('cli-progress');
    const bar = new SingleBar({ format: ' {bar} {value}/{total} {resource}', stream: process.stderr, clearOnComplete: true, hideCursor: true }, Presets.shades_classic);
    bar.start(total, 0, { resource: '' });
    let doneCount = 0;
    return {
      onEvent: (ev) => {
        if (ev.phase === 'start') bar.update(doneCount, { resource: `${ev.resource} (${ev.action})` });
        else if (ev.phase === 'progress') bar.update(doneCount, { resource: `${ev.resource}: ${ev.message ?? ''}` });
        else if (ev.phase === 'retry') bar.update(doneCount, { resource: `${ev.resource}: retry ${ev.message ?? ''}` });
        else if (ev.phase === 'done' || ev.phase === 'failed' || ev.phase === 'skipped') bar.update(++doneCount, { resource: `${ev.resource} ${ev.phase}` });
      },
      stop: () => bar.stop(),
    };
  }
  return {
    onEvent: (ev) => {
      if (ev.phase === 'progress') process.stderr.write(`${ev.resource}: ${ev.message ?? ''}\n`);
      else if (ev.phase === 'retry' || ev.phase === 'failed' || ev.phase === 'skipped') process.stderr.write(`${ev.resource}: ${ev.phase}${ev.message ? ` (${ev.message})` : ''}\n`);
    },
    stop: () => undefined,
  };
};

const confirm = async (question: string): Promise<boolean> => {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^(y|yes)$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
};

export interface StackCommandDeps {
  /** The engine for the global options; default: the local engine (containers.ts). */
  readonly engine?: (cmd: Command) => Promise<Engine>;
}

export const registerStackCommands = (program: Command, deps: StackCommandDeps = {}): void => {
  const engineOf = deps.engine ?? ((cmd: Command) => engineFor(cmd));
  const globals = (cmd: Command): Globals => cmd.optsWithGlobals() as Globals;

  const guard = (fn: (cmd: Command, ...a: never[]) => Promise<void>) => async (...args: unknown[]): Promise<void> => {
    const cmd = args[args.length - 1] as Command;
    const errors = await import('../../engine/errors.js');
    try {
      await fn(cmd, ...(args.slice(0, -1) as never[]));
    } catch (e) {
      process.stderr.write(`berth: ${errors.renderError(errors.toEngineError(e))}\n`);
      if (globals(cmd).debug && e instanceof Error) process.stderr.write(`${e.stack}\n`);
      process.exitCode = 1;
    }
  };

  const planOf = async (cmd: Command, file: string | undefined, o: { prune?: boolean; stack?: string }, destroy = false): Promise<{ plan: Plan; engine: Engine }> => {
    const { planFor } = await import('../../provider/reconcile/observe.js');
    const { EngineFailure, invalidSpec } = await import('../../engine/errors.js');
    let stack: Stack;
    if (file !== undefined) stack = await load(file, o.stack);
    else if (destroy && o.stack) stack = { name: o.stack, images: {}, networks: {}, volumes: {}, containers: {} };
    else throw new EngineFailure(invalidSpec('berth', ['-f <file|dir> is required']));
    if (destroy) stack = { name: stack.name, images: {}, networks: {}, volumes: {}, containers: {} };
    const engine = await engineOf(cmd);
    return { plan: await planFor(engine, stack, { prune: destroy || o.prune === true }), engine };
  };

  program
    .command('plan')
    .description('show what apply would change, and why')
    .requiredOption('-f, --file <path>', 'a stack file, a directory of them, or a Compose file')
    .option('--prune', 'also plan the deletion of owned objects no longer declared')
    .option('--stack <name>', 'stack name (default: from the file, or its directory\'s name)')
    .option('--detailed-exitcode', 'exit 0 when there is nothing to do, 2 when there are changes, 1 on error')
    .action(guard(async (cmd, o: { file: string; prune?: boolean; stack?: string; detailedExitcode?: boolean }) => {
      const { planJson, isEmpty } = await import('../../provider/reconcile/plan.js');
      const { plan } = await planOf(cmd, o.file, o);
      out(globals(cmd).json ? JSON.stringify(planJson(plan), null, 2) : renderPlan(plan));
      if (plan.conflicts.length > 0) process.exitCode = 1;
      else if (o.detailedExitcode) process.exitCode = isEmpty(plan) ? 0 : 2;
    }));

  const applyCmd = async (cmd: Command, plan: Plan, engine: Engine, o: { autoApprove?: boolean; concurrency?: string }, noPrompt: boolean): Promise<void> => {
    const { planJson, isEmpty } = await import('../../provider/reconcile/plan.js');
    const { apply } = await import('../../provider/reconcile/apply.js');
    const { EngineFailure, conflict } = await import('../../engine/errors.js');
    const json = globals(cmd).json === true;
    if (!json) out(renderPlan(plan));
    if (plan.conflicts.length > 0) throw new EngineFailure(conflict('stack', plan.stack, 'nothing was changed'));
    if (isEmpty(plan)) {
      if (json) out(JSON.stringify({ plan: planJson(plan), result: { ok: true, results: [] } }, null, 2));
      return;
    }
    if (!o.autoApprove && !noPrompt) {
      if (!process.stdin.isTTY) throw new EngineFailure(conflict('stack', plan.stack, 'not applied: stdin is not a terminal; use --auto-approve'));
      if (!(await confirm('\nApply these changes? Only "yes" or "y" is accepted: '))) {
        out('Apply cancelled.');
        return;
      }
    }
    const total = plan.changes.filter((c) => c.action !== 'noop').length;
    const bar = await progress(total, json);
    const concurrency = o.concurrency !== undefined ? Number(o.concurrency) : undefined;
    let result: ApplyResult;
    try {
      result = await apply(engine, plan, { onEvent: bar.onEvent, ...(concurrency ? { concurrency } : {}) });
    } finally {
      bar.stop();
    }
    out(json ? JSON.stringify({ plan: planJson(plan), result }, null, 2) : `\n${renderResult(result)}`);
    if (!result.ok) process.exitCode = 1;
  };

  program
    .command('apply')
    .description('make the host match a stack (a Compose file: like `docker compose up -d`)')
    .requiredOption('-f, --file <path>', 'a stack file, a directory of them, or a Compose file')
    .option('--auto-approve', 'do not ask for confirmation')
    .option('--prune', 'delete owned objects that are no longer declared')
    .option('--stack <name>', 'stack name (default: from the file, or its directory\'s name)')
    .option('--concurrency <n>', 'steps in flight at once', '8')
    .action(guard(async (cmd, o: { file: string; autoApprove?: boolean; prune?: boolean; stack?: string; concurrency?: string }) => {
      const { plan, engine } = await planOf(cmd, o.file, o);
      await applyCmd(cmd, plan, engine, o, isCompose(o.file));
    }));

  program
    .command('destroy')
    .description('delete everything a stack owns')
    .option('-f, --file <path>', 'the stack\'s file or directory (for its name)')
    .option('--stack <name>', 'the stack\'s name (instead of -f)')
    .option('--auto-approve', 'do not ask for confirmation')
    .option('--concurrency <n>', 'steps in flight at once', '8')
    .action(guard(async (cmd, o: { file?: string; stack?: string; autoApprove?: boolean; concurrency?: string }) => {
      const { plan, engine } = await planOf(cmd, o.file, o, true);
      await applyCmd(cmd, plan, engine, o, false);
    }));

  const stack = program.command('stack').description('list stacks and their containers');
  stack
    .command('ls')
    .description('list the stacks on this host')
    .action(guard(async (cmd) => {
      const { ownerOf } = await import('../../provider/reconcile/labels.js');
      const engine = await engineOf(cmd);
      const [cs, ns, vs] = await Promise.all([engine.listContainers({ all: true }), engine.listNetworks(), engine.listVolumes()]);
      const stacks = new Map<string, { running: number; containers: number; networks: number; volumes: number }>();
      const get = (s: string) => stacks.get(s) ?? (stacks.set(s, { running: 0, containers: 0, networks: 0, volumes: 0 }), stacks.get(s)!);
      for (const c of cs) { const o = ownerOf(c.spec.labels); if (o) { const x = get(o.stack); x.containers++; if (c.state.status === 'running') x.running++; } }
      for (const n of ns) { const o = ownerOf(n.spec.labels); if (o) get(o.stack).networks++; }
      for (const v of vs) { const o = ownerOf(v.spec.labels); if (o) get(o.stack).volumes++; }
      const rows = [...stacks.entries()].sort(([a], [b]) => a.localeCompare(b));
      if (globals(cmd).json) { out(JSON.stringify(rows.map(([name, x]) => ({ name, ...x })), null, 2)); return; }
      out(table([['STACK', 'CONTAINERS', 'NETWORKS', 'VOLUMES'], ...rows.map(([n, x]) => [n, `${x.running}/${x.containers} running`, String(x.networks), String(x.volumes)])]));
    }));
  stack
    .command('ps')
    .description('list the containers of a stack')
    .argument('<stack>')
    .action(guard(async (cmd, name: string) => {
      const { ownerOf } = await import('../../provider/reconcile/labels.js');
      const engine = await engineOf(cmd);
      const cs = (await engine.listContainers({ all: true })).filter((c) => ownerOf(c.spec.labels)?.stack === name);
      if (globals(cmd).json) { out(JSON.stringify(cs.map((c) => ({ resource: `containers.${ownerOf(c.spec.labels)!.key}`, name: c.name, id: c.id, status: c.state.status, health: c.state.health?.status, ports: c.ports })), null, 2)); return; }
      out(table([['RESOURCE', 'NAME', 'STATUS', 'PORTS'], ...cs.sort((a, b) => a.name.localeCompare(b.name)).map((c: ContainerInfo) => [
        `containers.${ownerOf(c.spec.labels)!.key}`, c.name,
        `${c.state.status}${c.state.exitCode !== undefined && c.state.status === 'exited' ? ` (${c.state.exitCode})` : ''}${c.state.health ? ` (${c.state.health.status})` : ''}`,
        c.ports.map((p) => `${p.hostIp ?? '0.0.0.0'}:${p.hostPort ?? '?'}->${p.containerPort}/${p.protocol}`).join(', '),
      ])]));
    }));
};

const table = (rows: readonly (readonly string[])[]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n');
};
