/**
 * The `berth` program with its command groups registered lazily: the
 * command word is found in argv first (cli/startup.ts), only the files of
 * cli/commands/ that register that word are imported, and then argv is
 * parsed. `berth run ...` reads cli/commands/containers.js and nothing of
 * the image, registry, network or stack code; `berth --version` reads no
 * command file at all.
 *
 * Help (`berth`, `berth --help`, `berth help ...`), an unknown command and
 * an unknown global option register every group, in the order below, so
 * that their output (the full command list, commander's suggestions) is
 * what an eager registration prints.
 *
 * COMMANDS is the static table of top-level words: which groups register
 * each one, and its one-line description. test/cli/startup.test.ts checks
 * it against what every group really registers, so it cannot drift: a
 * group that adds a top-level word (or a subcommand to another group's
 * word, as `group()` in cli/context.ts allows) must be named here.
 */
import { Command } from 'commander';
import { DEFAULT_ROOT, reportExitToLauncher, scanArgv, stdioMade } from './startup.js';

/** A file of cli/commands/ that registers verbs. */
export type GroupKey = 'images' | 'build' | 'auth' | 'system' | 'containers' | 'volumes' | 'networks' | 'stack';

/** Registration order: the order of `berth --help`. */
export const GROUPS: readonly GroupKey[] = ['images', 'build', 'auth', 'system', 'containers', 'volumes', 'networks', 'stack'];

type Registrar = (program: Command) => void;

/** Imports one group's file and returns its registration. */
const loaders: Record<GroupKey, () => Promise<Registrar>> = {
  images: async () => (await import('./commands/images.js')).registerImageCommands,
  build: async () => (await import('./commands/build.js')).registerBuildCommands,
  auth: async () => (await import('./commands/auth.js')).registerAuthCommands,
  system: async () => (await import('./commands/system.js')).registerSystemCommands,
  containers: async () => (await import('./commands/containers.js')).registerContainerCommands,
  volumes: async () => (await import('./commands/volumes.js')).registerVolumeCommands,
  networks: async () => {
    const { registerNetworkCommands } = await import('./commands/networks.js');
    return (program) =>
      registerNetworkCommands(program, {
        engine: async () => (await import('./commands/containers.js')).engineFor(program),
      });
  },
  stack: async () => (await import('./commands/stack.js')).registerStackCommands,
};

export interface CommandEntry {
  readonly name: string;
  readonly aliases?: readonly string[];
  readonly description: string;
  /** The groups that register this word or add subcommands to it. */
  readonly groups: readonly GroupKey[];
}

/** Every top-level word of `berth`, in `berth --help` order. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'image', description: 'manage images', groups: ['images'] },
  { name: 'pull', description: 'pull an image from a registry', groups: ['images'] },
  { name: 'push', description: 'push an image to a registry', groups: ['images'] },
  { name: 'images', description: 'list images', groups: ['images'] },
  { name: 'rmi', description: 'remove images (untag; content nothing else uses is deleted)', groups: ['images'] },
  { name: 'tag', description: 'give an image another name', groups: ['images'] },
  { name: 'history', description: 'show how an image was built', groups: ['images'] },
  { name: 'save', description: 'write images to a docker-archive tar (docker load / podman load read it)', groups: ['images'] },
  { name: 'load', description: 'load images from a docker-archive or OCI-layout tar (plain, gzip or zstd)', groups: ['images'] },
  { name: 'import', description: 'make a one-layer image from a root filesystem tarball', groups: ['images'] },
  { name: 'search', description: "search a registry's catalog (/v2/_catalog)", groups: ['images'] },
  { name: 'build', description: 'build an image from a Dockerfile (classic builder: one layer per RUN, COPY, ADD)', groups: ['build'] },
  { name: 'login', description: 'log in to a registry (checks the credentials, then saves them)', groups: ['auth'] },
  { name: 'logout', description: 'remove saved credentials for a registry', groups: ['auth'] },
  { name: 'system', description: 'manage Berth', groups: ['system'] },
  { name: 'create', description: 'create a container', groups: ['containers'] },
  { name: 'run', description: 'create and start a container', groups: ['containers'] },
  { name: 'start', description: 'start stopped containers', groups: ['containers'] },
  { name: 'stop', description: 'stop running containers (stop signal, then SIGKILL)', groups: ['containers'] },
  { name: 'restart', description: 'restart containers', groups: ['containers'] },
  { name: 'kill', description: 'send a signal to containers', groups: ['containers'] },
  { name: 'rm', description: 'remove containers', groups: ['containers'] },
  { name: 'pause', description: 'freeze all processes of containers', groups: ['containers'] },
  { name: 'unpause', description: 'thaw paused containers', groups: ['containers'] },
  { name: 'container', description: 'manage containers', groups: ['containers'] },
  { name: 'ps', description: 'list containers', groups: ['containers'] },
  { name: 'inspect', description: 'show details of containers (or images)', groups: ['containers'] },
  { name: 'logs', description: "print a container's log", groups: ['containers'] },
  { name: 'wait', description: 'wait for containers to exit and print their exit codes', groups: ['containers'] },
  { name: 'exec', description: 'run a command in a running container', groups: ['containers'] },
  { name: 'attach', description: "attach to a running container's stdio", groups: ['containers'] },
  { name: 'top', description: 'processes of a running container', groups: ['containers'] },
  { name: 'stats', description: 'resource usage of containers (cgroup v1 and v2), refreshed every second', groups: ['containers'] },
  { name: 'rename', description: 'rename a container', groups: ['containers'] },
  { name: 'update', description: 'change limits of containers in place', groups: ['containers'] },
  { name: 'diff', description: "files changed in a container's filesystem (A added, C changed, D deleted)", groups: ['containers'] },
  { name: 'export', description: "export a container's filesystem as a tar archive", groups: ['containers'] },
  { name: 'commit', description: "make an image from a container's changes", groups: ['containers'] },
  { name: 'events', description: 'stream engine events (containers, images, networks, volumes) until interrupted', groups: ['containers'] },
  { name: 'cp', description: 'copy files between a container and the host (CONTAINER:PATH)', groups: ['containers'] },
  { name: 'volume', description: 'manage volumes', groups: ['volumes'] },
  { name: 'network', description: 'manage networks', groups: ['networks'] },
  { name: 'port', description: "list a container's published ports, or the host address of one", groups: ['networks'] },
  { name: 'plan', description: 'show what apply would change, and why', groups: ['stack'] },
  { name: 'apply', description: 'make the host match a stack (a Compose file: like `docker compose up -d`)', groups: ['stack'] },
  { name: 'destroy', description: 'delete everything a stack owns', groups: ['stack'] },
  { name: 'stack', description: 'list stacks and their containers', groups: ['stack'] },
];

const byWord = new Map<string, CommandEntry>();
for (const c of COMMANDS) for (const w of [c.name, ...(c.aliases ?? [])]) byWord.set(w, c);

/**
 * The groups a run needs for its argv (without node and the script), in
 * registration order: none for a bare --version, the command's groups for
 * a known command word, every group otherwise (help, unknown words).
 */
export const groupsFor = (args: readonly string[]): readonly GroupKey[] => {
  const scan = scanArgv(args);
  if (scan.word === undefined) return scan.version && !scan.help && !scan.unknown ? [] : GROUPS;
  const entry = byWord.get(scan.word);
  if (entry === undefined || scan.help) return GROUPS;
  return GROUPS.filter((g) => entry.groups.includes(g));
};

/** The program with its global options and no commands (`rootDefault`: --root's default, else BERTH_ROOT's value or /var/lib/berth). */
export const newProgram = (rootDefault: string = process.env['BERTH_ROOT'] ?? DEFAULT_ROOT): Command =>
  new Command('berth')
    .description('a daemonless Linux container engine with a declarative front')
    .version('0.1.0')
    .option('--root <dir>', 'persistent state (env BERTH_ROOT)', rootDefault)
    .option('--run-root <dir>', 'runtime state (env BERTH_RUN_ROOT; default /run/berth)')
    .option('--runtime <path>', 'OCI runtime to run containers with (berth-runtime, runc)')
    .option('--json', 'machine-readable output')
    .option('--debug', 'debug logs and stack traces')
    .showHelpAfterError()
    .enablePositionalOptions();

/** Registers `groups` on `program` (their files are read in parallel, registered in order). */
export const registerGroups = async (program: Command, groups: readonly GroupKey[]): Promise<Command> => {
  const registrars = await Promise.all(groups.map((g) => loaders[g]()));
  for (const r of registrars) r(program);
  return program;
};

/**
 * A program with only the container verbs registered, made while berth's
 * start-up snapshot was built (cli/snapshot.ts: registering them is ~6 ms
 * of a `berth run`), never parsed; taken by the first programFor that
 * needs exactly that group. Its --root default is the built-in one: the
 * run's BERTH_ROOT is set on it when taken.
 */
let prebuilt: Command | undefined;

/** Keeps `program` (newProgram(DEFAULT_ROOT) with the containers group) for the run that starts from the snapshot. */
export const setPrebuiltProgram = (program: Command): void => {
  prebuilt = program;
};

/** The prebuilt program, once, with --root's default from this run's environment. */
const takePrebuilt = (): Command | undefined => {
  const p = prebuilt;
  prebuilt = undefined;
  const root = process.env['BERTH_ROOT'];
  if (p !== undefined && root !== undefined) {
    p.options.find((o) => o.long === '--root')?.default(root);
    p.setOptionValueWithSource('root', root, 'default');
  }
  return p;
};

/** The program for `argv` (process.argv form: node, script, args...). */
export const programFor = async (argv: readonly string[]): Promise<Command> => {
  const groups = groupsFor(argv.slice(2));
  if (groups.length === 1 && groups[0] === 'containers') {
    const p = takePrebuilt();
    if (p !== undefined) return p;
  }
  return registerGroups(newProgram(), groups);
};

/**
 * The end of a run: once the event loop is empty ('beforeExit') and no
 * listener has given it new work, the process exits at once
 * (process.exit: 'exit' listeners run) instead of tearing its
 * environment and heap down first, ~5-7 ms of a `berth run` (measured
 * with BERTH_TRACE=1 against the process's exit). Nothing is cut short:
 * the loop has nothing left, and the process helper, which never keeps
 * it alive when idle, sees its pipe close either way. The stdio streams
 * on a pipe or terminal do not count (see below): with them counted,
 * `echo | berth run ... | cat` tore its heap down first (~3 ms in perf).
 * The last 'exit' listener tells the launcher the status (cli/startup.ts
 * reportExitToLauncher), so that the user's shell has it before this
 * process has unmapped its memory.
 */
const exitWhenIdle = (code: number): void => {
  if (process.getActiveResourcesInfo().length > 0) {
    // the stdio streams on a pipe or a terminal stay listed as active handles with nothing to do: Node writes to
    // those synchronously on Linux (nothing is pending), and a stdin that nobody reads is not reading; they must
    // not keep `echo | berth run ... | cat` from exiting at once (only those made: making one is a change)
    const streams = ([0, 1, 2] as const).filter(stdioMade).map((fd) => [process.stdin, process.stdout, process.stderr][fd]);
    for (const s of streams) (s as unknown as { _handle?: { unref?: () => void } })._handle?.unref?.();
  }
  if (process.getActiveResourcesInfo().length === 0) {
    process.once('exit', () => reportExitToLauncher(Number(process.exitCode ?? 0)));
    process.exit(code);
  }
};

/** Builds the program for `argv` and runs it. */
export const runCli = async (argv: readonly string[]): Promise<void> => {
  // BERTH_TRACE=1: phase timings (engine/runtime/trace.ts, read only then: `--version` reads no engine file)
  const trace = process.env['BERTH_TRACE'] === '1' ? (await import('../engine/runtime/trace.js')).trace : undefined;
  if (trace) {
    trace('cli: begin');
    process.on('exit', () => trace('cli: exit'));
  }
  process.once('beforeExit', exitWhenIdle);
  const program = await programFor(argv);
  trace?.('cli: registered');
  await program.parseAsync([...argv]);
  trace?.('cli: action done');
};
