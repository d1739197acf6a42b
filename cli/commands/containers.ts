/**
 * Container verbs with Docker's names and flags: create, run, start, stop,
 * restart, kill, rm, ps, inspect, logs, wait, exec, attach, pause, unpause,
 * top, stats, rename, update, diff, export, cp, commit, events (`port` is
 * in networks.ts).
 *
 * Exit codes as Docker: 125 when Berth fails (bad flag, unknown image, name
 * conflict), 126 when the command cannot be invoked, 127 when it is not
 * found, otherwise the container's own status (128+N for a signal).
 * The engine is imported lazily, inside each action, to keep startup small.
 */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { startupSnapshot } from 'node:v8';
import type { ContainerInfo, ContainerSpec } from '../../engine/engine.js';
import type { LocalEngine } from '../../engine/local.js';
import { trace } from '../../engine/runtime/trace.js';
import type { RunFlags } from './container-flags.js';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

interface Globals {
  root?: string;
  runRoot?: string;
  json?: boolean;
  debug?: boolean;
  runtime?: string;
}

let engineCache: LocalEngine | undefined;
/** The local engine for the global options (--root, BERTH_ROOT), opened once per process. */
export const engineFor = async (cmd: Command, runtime?: string): Promise<LocalEngine> => {
  if (engineCache) return engineCache;
  const g = cmd.optsWithGlobals() as Globals;
  const { openLocalEngine } = await import('../../engine/local.js');
  const root = g.root ?? process.env['BERTH_ROOT'] ?? '/var/lib/berth';
  // runtime state: --run-root, BERTH_RUN_ROOT, <root>/run for a root of one's own, else /run/berth
  const runRoot = g.runRoot ?? process.env['BERTH_RUN_ROOT'] ?? (root === '/var/lib/berth' ? '/run/berth' : `${root}/run`);
  const roots = { root, runRoot };
  const rt = runtime ?? g.runtime ?? process.env['BERTH_OCI_RUNTIME'];
  // the engine's own log lines on stderr: warnings and errors (a half-done setup undone, an undo that
  // failed), as podman shows them by default; everything with --debug (BERTH_LOG_LEVEL overrides)
  const { createLogger } = await import('../../engine/log.js');
  const log = createLogger({ level: g.debug ? 'debug' : 'warn' });
  engineCache = openLocalEngine(roots, { log, ...(rt ? { runtime: resolveRuntime(rt) } : {}) });
  return engineCache;
};

/** `--runtime runc` finds runc on PATH; a path is taken as it is. */
const resolveRuntime = (r: string): string => {
  if (r.includes('/')) return r;
  if (r === 'berth-runtime') return r; // resolved by the engine to native/build
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = `${dir}/${r}`;
    if (existsSync(p)) return p;
  }
  return r;
};

/** Render an error once and set Docker's exit code. */
const failWith = async (e: unknown, cmd: Command): Promise<void> => {
  const { toEngineError, renderError, EngineFailure } = await import('../../engine/errors.js');
  const code = e instanceof EngineFailure && typeof (e.cause as { exitCode?: unknown } | undefined)?.exitCode === 'number' ? (e.cause as { exitCode: number }).exitCode : 125;
  const g = cmd.optsWithGlobals() as Globals;
  process.stderr.write(`berth: ${renderError(toEngineError(e))}\n`);
  if (g.debug && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  process.exitCode = code;
};

const action = <A extends unknown[]>(fn: (...a: A) => Promise<void>) =>
  async (...a: A): Promise<void> => {
    const cmd = a[a.length - 1] as Command;
    try {
      await fn(...a);
    } catch (e) {
      await failWith(e, cmd);
    }
  };

const isJson = (cmd: Command): boolean => (cmd.optsWithGlobals() as Globals).json === true;

/* -------------------------------------------------------------- formatting */

const ago = (iso: string | undefined): string => {
  if (!iso) return '';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return 'Less than a second';
  if (s < 60) return `${Math.floor(s)} second${Math.floor(s) === 1 ? '' : 's'}`;
  if (s < 3600) return `${Math.floor(s / 60)} minute${Math.floor(s / 60) === 1 ? '' : 's'}`;
  if (s < 86400) return `${Math.floor(s / 3600)} hour${Math.floor(s / 3600) === 1 ? '' : 's'}`;
  return `${Math.floor(s / 86400)} days`;
};

const statusText = (c: ContainerInfo): string => {
  const st = c.state;
  switch (st.status) {
    case 'running':
      return `Up ${ago(st.startedAt)}`;
    case 'paused':
      return `Up ${ago(st.startedAt)} (Paused)`;
    case 'exited':
      return `Exited (${st.exitCode ?? 0}) ${ago(st.finishedAt)} ago`;
    case 'created':
      return 'Created';
    default:
      return st.status.charAt(0).toUpperCase() + st.status.slice(1);
  }
};

const portsText = (c: ContainerInfo): string =>
  c.ports.map((p) => (p.hostPort ? `${p.hostIp ?? '0.0.0.0'}:${p.hostPort}->${p.containerPort}/${p.protocol}` : `${p.containerPort}/${p.protocol}`)).join(', ');

const commandOf = (c: ContainerInfo): string => [...(c.spec.entrypoint ?? []), ...(c.spec.command ?? [])].join(' ');

const psFields = (c: ContainerInfo): Record<string, string> => ({
  ID: c.id.slice(0, 12),
  Image: c.image,
  Command: JSON.stringify(commandOf(c).slice(0, 20)),
  CreatedAt: c.created,
  RunningFor: `${ago(c.created)} ago`,
  Status: statusText(c),
  State: c.state.status,
  Ports: portsText(c),
  Names: c.name,
  Labels: Object.entries(c.spec.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
});

/** Docker's `--format`: `{{.Field}}` placeholders, `{{json .}}`, a leading `table` for headers. */
export const formatRows = (format: string, rows: Array<Record<string, string>>, raw: unknown[]): string => {
  let f = format;
  const table = f.startsWith('table');
  if (table) f = f.slice(5).trimStart();
  f = f.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  const render = (row: Record<string, string>, i: number): string =>
    f.replace(/\{\{\s*json\s+\.\s*\}\}/g, () => JSON.stringify(raw[i])).replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, k: string) => row[k] ?? '');
  const lines = rows.map(render);
  if (table) lines.unshift(f.replace(/\{\{\s*\.(\w+)\s*\}\}/g, (_m, k: string) => k.replace(/([a-z])([A-Z])/g, '$1 $2').toUpperCase()));
  return lines.join('\n');
};

const table = (header: string[], rows: string[][]): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] as number) + 3))).join('').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
};

/* ---------------------------------------------------------------- run flags */

const addRunFlags = (c: Command): Command =>
  c
    .option('-d, --detach', 'run in the background and print the container ID')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a pseudo-terminal')
    .option('--rm', 'remove the container when it exits')
    .option('--name <name>', 'name the container')
    .option('-e, --env <KEY=value>', 'set an environment variable', collect)
    .option('--env-file <file>', 'read environment variables from a file', collect)
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user[:group]>', 'user name or UID (and group)')
    .option('--entrypoint <cmd>', 'override the image\'s ENTRYPOINT')
    .option('-v, --volume <spec>', 'bind mount or volume: [SRC:]DST[:ro]', collect)
    .option('--mount <spec>', 'type=bind|volume|tmpfs,source=,target=,...', collect)
    .option('--tmpfs <path[:opts]>', 'mount a tmpfs', collect)
    .option('-m, --memory <size>', 'memory limit (e.g. 512m)')
    .option('--memory-swap <size>', 'memory + swap limit (-1: unlimited swap)')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('--cpus <n>', 'number of CPUs')
    .option('-c, --cpu-shares <n>', 'CPU shares (relative weight)')
    .option('--cpuset-cpus <list>', 'CPUs to run on (0-3, 0,1)')
    .option('--cpuset-mems <list>', 'memory nodes')
    .option('--pids-limit <n>', 'process limit (-1: unlimited)')
    .option('--restart <policy>', 'no, always, on-failure[:N], unless-stopped (enforced by the agent)')
    .option('--hostname <name>', 'container host name')
    .option('--domainname <name>', 'container NIS domain name')
    .option('--read-only', 'mount the root filesystem read-only')
    .option('--cap-add <cap>', 'add a capability', collect)
    .option('--cap-drop <cap>', 'drop a capability', collect)
    .option('--privileged', 'all capabilities, no seccomp, no masked paths')
    .option('--init', 'run an init as pid 1 that reaps and forwards signals')
    .option('-l, --label <k=v>', 'set a label', collect)
    .option('--network <mode>', 'none, host, bridge, container:<name|id> or a network name')
    .option('--net <mode>', 'same as --network')
    .option('-p, --publish <spec>', 'publish a port', collect)
    .option('-P, --publish-all', 'publish every exposed port')
    .option('--network-alias <alias>', 'a name for the container on its (user-defined) network', collect)
    .option('--ip <address>', 'the container\'s IPv4 address on its (user-defined) network')
    .option('--add-host <name:ip>', 'add a line to /etc/hosts', collect)
    .option('--ulimit <name=soft[:hard]>', 'set a ulimit', collect)
    .option('--sysctl <k=v>', 'set a namespaced sysctl', collect)
    .option('--device <host[:container[:rwm]]>', 'add a host device', collect)
    .option('--stop-signal <sig>', 'signal to stop the container')
    .option('--stop-timeout <s>', 'seconds to wait before killing')
    .option('--security-opt <opt>', 'seccomp=unconfined|<file>, no-new-privileges', collect)
    .option('--health-cmd <cmd>', 'health check command (run by the agent)')
    .option('--health-interval <d>', 'time between checks')
    .option('--health-timeout <d>', 'time a check may take')
    .option('--health-retries <n>', 'failures before unhealthy')
    .option('--health-start-period <d>', 'grace period')
    .option('--no-healthcheck', 'disable the image\'s health check')
    .option('--runtime <path>', 'OCI runtime (berth-runtime, runc)');

const specFrom = async (image: string, command: string[], flags: RunFlags): Promise<ContainerSpec> => {
  const { specFromFlags } = await import('./container-flags.js');
  // commander sets noHealthcheck=false... through --no-healthcheck as healthcheck=false
  const f = flags as RunFlags & { healthcheck?: boolean; net?: string };
  const network = f.network ?? f.net;
  return specFromFlags(image, command, { ...f, noHealthcheck: f.healthcheck === false, ...(network !== undefined ? { network } : {}) });
};

/** Attach to a starting container with this process's stdio; resolves with the container's exit code. */
const runAttached = async (engine: LocalEngine, id: string, spec: ContainerSpec): Promise<number> => {
  const tty = spec.tty === true;
  const stdinTty = tty && process.stdin.isTTY === true;
  if (stdinTty) process.stdin.setRawMode(true);
  const streams = {
    ...(spec.openStdin ? { stdin: process.stdin } : {}),
    stdout: process.stdout,
    stderr: process.stderr,
    tty,
    ...(tty && process.stdout.isTTY ? { initialSize: { rows: process.stdout.rows ?? 24, cols: process.stdout.columns ?? 80 } } : {}),
  };
  let session: Awaited<ReturnType<LocalEngine['containers']['startAttached']>>['session'] | undefined;
  const forward = (sig: NodeJS.Signals): void => {
    void engine.killContainer(id, sig).catch(() => undefined);
  };
  const onWinch = (): void => session?.resize(process.stdout.rows ?? 24, process.stdout.columns ?? 80);
  if (!tty) {
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
  }
  try {
    session = (await engine.containers.startAttached(id, streams)).session;
    trace('run: started, attached');
    if (tty && process.stdout.isTTY) process.on('SIGWINCH', onWinch);
    await session.done;
    trace('run: attach done');
    return (await engine.waitContainer(id)).exitCode;
  } finally {
    process.removeListener('SIGINT', forward);
    process.removeListener('SIGTERM', forward);
    process.removeListener('SIGWINCH', onWinch);
    if (stdinTty) process.stdin.setRawMode(false);
    if (spec.openStdin) process.stdin.pause();
  }
};

let epipeHandled = false;
/** A closed stdout pipe (EPIPE) exits with the exit code so far, once per process. */
const endOutputOnEpipe = (): void => {
  if (epipeHandled || startupSnapshot.isBuildingSnapshot()) return; // the build's warm-up parses a `run` (cli/snapshot.ts)
  epipeHandled = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  });
};

/* ---------------------------------------------------------------- register */

export const registerContainerCommands = (program: Command): void => {
  program.enablePositionalOptions();
  // `berth ps | head`: a closed pipe ends the output, not with a stack trace. Installed when a
  // command of this group runs, not here: registration touches no stdio, so that berth's start-up
  // snapshot can register the group at build time (cli/snapshot.ts)
  program.hook('preAction', endOutputOnEpipe);

  addRunFlags(program.command('create').description('create a container').argument('<image>').argument('[command...]').passThroughOptions())
    .action(action(async (image: string, command: string[], flags: RunFlags & { runtime?: string }, cmd: Command) => {
      const engine = await engineFor(cmd, flags.runtime);
      const c = await engine.createContainer(await specFrom(image, command, flags));
      process.stdout.write(`${c.id}\n`);
    }));

  addRunFlags(program.command('run').description('create and start a container').argument('<image>').argument('[command...]').passThroughOptions())
    .action(action(async (image: string, command: string[], flags: RunFlags & { runtime?: string }, cmd: Command) => {
      // the process helper starts while the container is created: the start needs it next
      (await import('../../engine/local.js')).startHelper();
      const engine = await engineFor(cmd, flags.runtime);
      const spec = await specFrom(image, command, flags);
      const c = await engine.createContainer(spec);
      if (flags.detach) {
        try {
          await engine.startContainer(c.id);
        } catch (e) {
          if (spec.autoRemove) await engine.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
          throw e;
        }
        process.stdout.write(`${c.id}\n`);
        return;
      }
      let code: number;
      try {
        code = await runAttached(engine, c.id, spec);
      } catch (e) {
        if (spec.autoRemove) await engine.removeContainer(c.id, { force: true, volumes: true }).catch(() => undefined);
        throw e;
      }
      trace('run: exited');
      if (spec.autoRemove) await engine.removeContainer(c.id, { force: true, volumes: true });
      trace('run: removed');
      process.exitCode = code;
    }));

  program.command('start').description('start stopped containers').argument('<containers...>')
    .option('-a, --attach', 'attach stdout/stderr and forward signals')
    .option('-i, --interactive', 'attach stdin')
    .action(action(async (refs: string[], o: { attach?: boolean; interactive?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      if (o.attach || o.interactive) {
        const info = await engine.inspectContainer(refs[0] as string);
        process.exitCode = await runAttached(engine, info.id, { ...info.spec, openStdin: o.interactive === true && info.spec.openStdin === true });
        return;
      }
      let failed = false;
      for (const r of refs) {
        try {
          await engine.startContainer(r);
          process.stdout.write(`${r}\n`);
        } catch (e) {
          failed = true;
          await failWith(e, cmd);
        }
      }
      if (failed) process.exitCode = process.exitCode ?? 1;
    }));

  const eachRef = (verb: string, fn: (engine: LocalEngine, ref: string, opts: Record<string, unknown>) => Promise<void>) =>
    action(async (refs: string[], opts: Record<string, unknown>, cmd: Command) => {
      const engine = await engineFor(cmd);
      let failed = false;
      for (const r of refs) {
        try {
          await fn(engine, r, opts);
          process.stdout.write(`${r}\n`);
        } catch (e) {
          failed = true;
          await failWith(e, cmd);
        }
      }
      if (failed) process.exitCode = 1;
      void verb;
    });

  const seconds = (v: unknown): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`--time ${String(v)}: expected whole seconds`);
    return n;
  };

  program.command('stop').description('stop running containers (stop signal, then SIGKILL)').argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing')
    .action(eachRef('stop', async (e, r, o) => {
      const t = seconds(o['time']);
      await e.stopContainer(r, t !== undefined ? { timeoutSeconds: t } : {});
    }));

  program.command('restart').description('restart containers').argument('<containers...>')
    .option('-t, --time <seconds>', 'seconds to wait before killing')
    .action(eachRef('restart', async (e, r, o) => {
      const t = seconds(o['time']);
      await e.restartContainer(r, t !== undefined ? { timeoutSeconds: t } : {});
    }));

  program.command('kill').description('send a signal to containers').argument('<containers...>')
    .option('-s, --signal <signal>', 'signal to send', 'KILL')
    .action(eachRef('kill', (e, r, o) => e.killContainer(r, o['signal'] as string)));

  program.command('rm').description('remove containers').argument('<containers...>')
    .option('-f, --force', 'kill and remove a running container')
    .option('-v, --volumes', 'remove the container\'s anonymous volumes')
    .action(eachRef('rm', (e, r, o) => e.removeContainer(r, { force: o['force'] === true, volumes: o['volumes'] === true })));

  program.command('pause').description('freeze all processes of containers').argument('<containers...>')
    .action(eachRef('pause', (e, r) => e.pauseContainer(r)));
  program.command('unpause').description('thaw paused containers').argument('<containers...>')
    .action(eachRef('unpause', (e, r) => e.resumeContainer(r)));

  const group = program.commands.find((c) => c.name() === 'container') ?? program.command('container').description('manage containers');
  group.command('cleanup').description('release the network and mounts of exited containers, and remove --rm ones (what the shim of a detached container runs when it exits)')
    .argument('<ids...>', 'full container IDs')
    .action(eachRef('cleanup', (e, id) => e.cleanupContainer(id)));
  group.command('prune').description('remove every stopped container')
    .option('-f, --force', 'do not prompt (Berth never prompts)')
    .option('--filter <k=v>', 'label=<k>[=<v>]', collect)
    .action(action(async (o: { filter?: string[] }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const labels = (o.filter ?? []).filter((f) => f.startsWith('label=')).map((f) => f.slice(6));
      const deleted: string[] = [];
      for (const c of await engine.listContainers({ all: true, ...(labels.length > 0 ? { filters: { label: labels } } : {}) })) {
        if (c.state.status !== 'exited' && c.state.status !== 'created' && c.state.status !== 'dead') continue;
        await engine.removeContainer(c.id);
        deleted.push(c.id);
      }
      if (isJson(cmd)) process.stdout.write(`${JSON.stringify({ deleted })}\n`);
      else process.stdout.write(`${deleted.length > 0 ? `Deleted Containers:\n${deleted.join('\n')}\n\n` : ''}Total: ${deleted.length}\n`);
    }));

  const ps = (c: Command): Command => c.description('list containers')
    .option('-a, --all', 'show all containers (default: running)')
    .option('-q, --quiet', 'only IDs')
    .option('-f, --filter <k=v>', 'filter: name, id, label, status, ancestor, network', collect)
    .option('--format <template>', 'Go-template-like format ({{.ID}}, {{.Names}}, table ..., {{json .}})')
    .option('--no-trunc', 'do not truncate IDs')
    .option('-n, --last <n>', 'show the n last created containers')
    .option('-l, --latest', 'show the latest created container')
    .action(action(async (o: { all?: boolean; quiet?: boolean; filter?: string[]; format?: string; trunc?: boolean; last?: string; latest?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const filters: Record<string, string[]> = {};
      for (const f of o.filter ?? []) {
        const i = f.indexOf('=');
        if (i < 1) throw new (await import('../../engine/errors.js')).EngineFailure({ _tag: 'InvalidSpec', source: 'ps --filter', problems: [`${f}: expected KEY=VALUE`] });
        const k = f.slice(0, i);
        if (!['name', 'id', 'label', 'status', 'ancestor', 'network'].includes(k)) {
          throw new (await import('../../engine/errors.js')).EngineFailure({ _tag: 'InvalidSpec', source: 'ps --filter', problems: [`unknown filter ${k} (name, id, label, status, ancestor, network)`] });
        }
        (filters[k] ??= []).push(f.slice(i + 1));
      }
      let list = await engine.listContainers({ all: o.all === true || o.last !== undefined || o.latest === true, filters });
      if (o.latest) list = list.slice(0, 1);
      if (o.last !== undefined) list = list.slice(0, Number(o.last));
      const id = (c: ContainerInfo): string => (o.trunc === false ? c.id : c.id.slice(0, 12));
      if (o.quiet) {
        if (list.length > 0) process.stdout.write(`${list.map(id).join('\n')}\n`);
        return;
      }
      if (isJson(cmd)) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (o.format) {
        const out = formatRows(o.format, list.map((c) => ({ ...psFields(c), ID: id(c) })), list);
        if (out !== '') process.stdout.write(`${out}\n`);
        return;
      }
      process.stdout.write(`${table(['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES'],
        list.map((c) => { const f = psFields(c); return [id(c), f['Image']!, f['Command']!, f['RunningFor']!, f['Status']!, f['Ports']!, f['Names']!]; }))}\n`);
    }));
  ps(program.command('ps'));
  ps(group.command('ls').alias('list').alias('ps'));

  program.command('inspect').description('show details of containers (or images)').argument('<refs...>')
    .option('-f, --format <template>', 'format each result ({{.State.Status}}, {{json .}})')
    .option('--type <type>', 'container or image')
    .action(action(async (refs: string[], o: { format?: string; type?: string }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { hasTag } = await import('../../engine/errors.js');
      const out: unknown[] = [];
      for (const r of refs) {
        if (o.type !== 'image') {
          try {
            out.push(await engine.inspectContainer(r));
            continue;
          } catch (e) {
            if (!hasTag(e, 'NotFound') || o.type === 'container') throw e;
          }
        }
        out.push(await engine.inspectImage(r));
      }
      if (o.format) {
        const get = (v: unknown, p: string): unknown => p.split('.').filter((x) => x !== '').reduce<unknown>((a, k) => (a as Record<string, unknown> | undefined)?.[k.charAt(0).toLowerCase() + k.slice(1)], v);
        for (const v of out) {
          const s = o.format.replace(/\{\{\s*json\s+([.\w]*)\s*\}\}/g, (_m, p: string) => JSON.stringify(get(v, p)))
            .replace(/\{\{\s*(\.[\w.]*)\s*\}\}/g, (_m, p: string) => { const x = get(v, p); return typeof x === 'object' ? JSON.stringify(x) : String(x ?? '<no value>'); });
          process.stdout.write(`${s}\n`);
        }
        return;
      }
      process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    }));

  program.command('logs').description('print a container\'s log').argument('<container>')
    .option('-f, --follow', 'follow the log')
    .option('-n, --tail <n>', 'number of lines from the end ("all")')
    .option('--since <time>', 'RFC 3339 time or a duration such as 10m')
    .option('-t, --timestamps', 'show timestamps')
    .action(action(async (ref: string, o: { follow?: boolean; tail?: string; since?: string; timestamps?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { parseDuration } = await import('./container-flags.js');
      const { EngineFailure } = await import('../../engine/errors.js');
      let since: Date | undefined;
      if (o.since !== undefined) {
        const d = parseDuration(o.since);
        since = d !== undefined ? new Date(Date.now() - d) : new Date(o.since);
        if (Number.isNaN(since.getTime())) throw new EngineFailure({ _tag: 'InvalidSpec', source: 'logs --since', problems: [`${o.since}: expected an RFC 3339 time or a duration`] });
      }
      let tail: number | undefined;
      if (o.tail !== undefined && o.tail !== 'all') {
        tail = Number(o.tail);
        if (!Number.isInteger(tail) || tail < 0) throw new EngineFailure({ _tag: 'InvalidSpec', source: 'logs --tail', problems: [`${o.tail}: expected a number of lines or "all"`] });
      }
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      for await (const l of engine.logs(ref, { follow: o.follow === true, ...(tail !== undefined ? { tail } : {}), ...(since ? { since } : {}), signal: ac.signal })) {
        (l.stream === 'stderr' ? process.stderr : process.stdout).write(o.timestamps ? `${l.time} ${l.text}` : l.text);
      }
    }));

  program.command('wait').description('wait for containers to exit and print their exit codes').argument('<containers...>')
    .action(action(async (refs: string[], _o: unknown, cmd: Command) => {
      const engine = await engineFor(cmd);
      for (const r of refs) process.stdout.write(`${(await engine.waitContainer(r)).exitCode}\n`);
    }));

  program.command('exec').description('run a command in a running container').argument('<container>').argument('<command...>').passThroughOptions()
    .option('-d, --detach', 'run in the background')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a pseudo-terminal')
    .option('-u, --user <user>', 'user name or UID')
    .option('-w, --workdir <dir>', 'working directory')
    .option('-e, --env <KEY=value>', 'environment variable', collect)
    .option('--privileged', 'all capabilities for this process')
    .action(action(async (ref: string, command: string[], o: { detach?: boolean; interactive?: boolean; tty?: boolean; user?: string; workdir?: string; env?: string[]; privileged?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const r = await engine.exec(ref, {
        command, ...(o.env ? { env: o.env } : {}), ...(o.workdir ? { workingDir: o.workdir } : {}), ...(o.user ? { user: o.user } : {}),
        tty: o.tty === true, stdin: o.interactive === true, detach: o.detach === true, privileged: o.privileged === true,
      });
      process.exitCode = r.exitCode;
    }));

  program.command('attach').description('attach to a running container\'s stdio').argument('<container>')
    .option('--no-stdin', 'do not attach stdin')
    .option('--sig-proxy', 'forward signals (default true)', true)
    .action(action(async (ref: string, o: { stdin?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const info = await engine.inspectContainer(ref);
      const tty = info.spec.tty === true;
      if (tty && process.stdin.isTTY) process.stdin.setRawMode(true);
      const s = await engine.containers.attachContainer(ref, {
        ...(o.stdin !== false && info.spec.openStdin ? { stdin: process.stdin } : {}),
        stdout: process.stdout, stderr: process.stderr, tty, closeStdinOnEnd: false,
      });
      if (tty && process.stdout.isTTY) s.resize(process.stdout.rows ?? 24, process.stdout.columns ?? 80);
      // Docker's detach keys: ctrl-p ctrl-q
      let last = -1;
      const detachWatch = (d: Buffer): void => {
        for (const b of d) {
          if (last === 0x10 && b === 0x11) s.detach();
          last = b;
        }
      };
      if (tty) process.stdin.on('data', detachWatch);
      await s.done;
      process.stdin.removeListener('data', detachWatch);
      if (tty && process.stdin.isTTY) process.stdin.setRawMode(false);
      process.stdin.pause();
      const after = await engine.inspectContainer(info.id).catch(() => undefined);
      if (after && after.state.status !== 'running') process.exitCode = after.state.exitCode ?? 0;
    }));

  program.command('top').description('processes of a running container').argument('<container>')
    .action(action(async (ref: string, _o: unknown, cmd: Command) => {
      const engine = await engineFor(cmd);
      const pids = await engine.containers.topContainer(ref);
      const { readFileSync } = await import('node:fs');
      const rows = pids.map((pid) => {
        try {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          const uid = /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '?';
          const ppid = /^PPid:\s+(\d+)/m.exec(status)?.[1] ?? '?';
          const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((x) => x !== '').join(' ');
          return [uid, String(pid), ppid, cmdline];
        } catch {
          return [];
        }
      }).filter((r) => r.length > 0);
      if (isJson(cmd)) process.stdout.write(`${JSON.stringify(rows.map(([uid, pid, ppid, command]) => ({ uid, pid, ppid, command })))}\n`);
      else process.stdout.write(`${table(['UID', 'PID', 'PPID', 'CMD'], rows)}\n`);
    }));

  program.command('stats').description('resource usage of containers (cgroup v1 and v2), refreshed every second').argument('[containers...]')
    .option('--no-stream', 'print once and exit')
    .option('-a, --all', 'all containers (default: running)')
    .action(action(async (refs: string[], o: { stream?: boolean; all?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const mib = (n: number): string => (n >= 1024 ** 3 ? `${(n / 1024 ** 3).toFixed(2)}GiB` : `${(n / 1024 ** 2).toFixed(2)}MiB`);
      const once = async (): Promise<string> => {
        const list = refs.length > 0 ? await Promise.all(refs.map((r) => engine.inspectContainer(r))) : await engine.listContainers({ all: o.all === true });
        const rows: string[][] = [];
        const json: unknown[] = [];
        for (const c of list) {
          if (c.state.status !== 'running' && c.state.status !== 'paused') {
            if (refs.length > 0) rows.push([c.id.slice(0, 12), c.name, '--', '-- / --', '-- / --', '0']);
            continue;
          }
          const st = await engine.statsContainer(c.id).catch(() => undefined);
          if (!st) continue; // exited meanwhile
          json.push({ id: c.id, name: c.name, ...st });
          rows.push([c.id.slice(0, 12), c.name, `${(st.cpuPercent ?? 0).toFixed(2)}%`, `${mib(st.memoryUsageBytes)} / ${st.memoryLimitBytes ? mib(st.memoryLimitBytes) : 'unlimited'}`,
            `${mib(st.blockReadBytes)} / ${mib(st.blockWriteBytes)}`, String(st.pids)]);
        }
        return isJson(cmd) ? `${JSON.stringify(json, null, 2)}\n` : `${table(['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'BLOCK I/O', 'PIDS'], rows)}\n`;
      };
      if (o.stream === false || !process.stdout.isTTY) {
        process.stdout.write(await once());
        return;
      }
      let stop = false;
      process.once('SIGINT', () => (stop = true));
      while (!stop) {
        const text = await once();
        process.stdout.write(`\x1b[2J\x1b[H${text}`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }));

  program.command('rename').description('rename a container').argument('<container>').argument('<new-name>')
    .action(action(async (ref: string, name: string, _o: unknown, cmd: Command) => {
      await (await engineFor(cmd)).renameContainer(ref, name);
    }));

  program.command('update').description('change limits of containers in place').argument('<containers...>')
    .option('-m, --memory <size>', 'memory limit')
    .option('--memory-swap <size>', 'memory + swap limit')
    .option('--memory-reservation <size>', 'memory soft limit')
    .option('--cpus <n>', 'number of CPUs')
    .option('-c, --cpu-shares <n>', 'CPU shares')
    .option('--cpuset-cpus <list>', 'CPUs')
    .option('--cpuset-mems <list>', 'memory nodes')
    .option('--pids-limit <n>', 'process limit')
    .option('--restart <policy>', 'restart policy')
    .action(eachRef('update', async (e, r, o) => {
      const spec = await specFrom('x', [], o as RunFlags);
      await e.updateContainer(r, { ...(spec.resources ? { resources: spec.resources } : {}), ...(spec.restartPolicy ? { restartPolicy: spec.restartPolicy } : {}) });
    }));

  program.command('diff').description('files changed in a container\'s filesystem (A added, C changed, D deleted)').argument('<container>')
    .action(action(async (ref: string, _o: unknown, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { containerDiff } = await import('../../engine/runtime/fsops.js');
      for (const ch of await containerDiff(engine, ref)) process.stdout.write(`${ch.kind} ${ch.path}\n`);
    }));

  program.command('export').description('export a container\'s filesystem as a tar archive').argument('<container>')
    .option('-o, --output <file>', 'write to a file instead of stdout')
    .action(action(async (ref: string, o: { output?: string }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { exportContainer } = await import('../../engine/runtime/fsops.js');
      await exportContainer(engine, ref, o.output);
    }));

  program.command('commit').description('make an image from a container\'s changes').argument('<container>').argument('<repository[:tag]>')
    .option('-a, --author <name>', 'author')
    .option('-m, --message <text>', 'commit message')
    .option('-p, --pause', 'pause the container while committing (default true)', true)
    .option('--no-pause', 'do not pause')
    .action(action(async (ref: string, target: string, o: { author?: string; message?: string; pause?: boolean }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { commitContainer } = await import('../../engine/runtime/commit.js');
      const img = await commitContainer(engine, ref, target, { ...(o.author ? { author: o.author } : {}), ...(o.message ? { message: o.message } : {}), pause: o.pause !== false });
      process.stdout.write(`${img.id}\n`);
    }));

  program.command('events').description('stream engine events (containers, images, networks, volumes) until interrupted')
    .option('--since <time>', 'replay from an RFC 3339 time or a duration ago (10m)')
    .option('-f, --filter <k=v>', 'type=container|image|network|volume, event=<action>, container=<name or id>', collect)
    .option('--format <template>', '{{json .}} for JSON lines')
    .action(action(async (o: { since?: string; filter?: string[]; format?: string }, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { parseDuration } = await import('./container-flags.js');
      const filters = new Map<string, string[]>();
      for (const f of o.filter ?? []) {
        const i = f.indexOf('=');
        if (i > 0) filters.set(f.slice(0, i), [...(filters.get(f.slice(0, i)) ?? []), f.slice(i + 1)]);
      }
      let since: Date | undefined;
      if (o.since !== undefined) {
        const d = parseDuration(o.since);
        since = d !== undefined ? new Date(Date.now() - d) : new Date(o.since);
      }
      const ac = new AbortController();
      process.once('SIGINT', () => ac.abort());
      process.once('SIGTERM', () => ac.abort());
      const json = isJson(cmd) || (o.format !== undefined && /\{\{\s*json\s+\.\s*\}\}/.test(o.format));
      for await (const ev of engine.events({ signal: ac.signal, ...(since ? { since } : {}) })) {
        const pass = (k: string, v: string | undefined): boolean => !filters.has(k) || filters.get(k)!.some((x) => x === v || (k === 'container' && v !== undefined && v.startsWith(x)));
        const who = ev.type === 'volume' ? ev.name : ev.id;
        const name = 'name' in ev ? ev.name : undefined;
        if (!pass('type', ev.type) || !pass('event', ev.action)) continue;
        if (filters.has('container') && !(ev.type === 'container' && (pass('container', ev.id) || pass('container', name)))) continue;
        if (json) process.stdout.write(`${JSON.stringify(ev)}\n`);
        else {
          const extra = ev.type === 'container' && ev.exitCode !== undefined ? `, exitCode=${ev.exitCode}` : '';
          process.stdout.write(`${ev.time} ${ev.type} ${ev.action} ${who}${name !== undefined && name !== who ? ` (name=${name}${extra})` : extra ? ` (${extra.slice(2)})` : ''}\n`);
        }
      }
    }));

  program.command('cp').description('copy files between a container and the host (CONTAINER:PATH)').argument('<src>').argument('<dst>')
    .action(action(async (src: string, dst: string, _o: unknown, cmd: Command) => {
      const engine = await engineFor(cmd);
      const { copy } = await import('../../engine/runtime/fsops.js');
      await copy(engine, src, dst);
    }));
};

export default registerContainerCommands;
