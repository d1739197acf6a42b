/**
 * What `berth` decides before it loads anything heavy: where the command
 * word is in argv (after the global options), which Berth root the run is
 * for, and where Node's compile cache lives. Imports only node: builtins,
 * so that cli/main.ts can turn the compile cache on before commander and
 * the command modules are read.
 *
 * Example: `berth --root /tmp/r --json run --rm busybox true` scans to
 * { word: 'run', root: '/tmp/r', version: false, help: false, unknown: false }.
 */
import * as fs from 'node:fs';
import * as nodeModule from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tty from 'node:tty';

/** The default persistent state (cli/context.ts's DEFAULT_ROOT; a test keeps the two equal). */
export const DEFAULT_ROOT = '/var/lib/berth';

/** Global options that take a value (`--root X` or `--root=X`). */
const VALUED = new Set(['--root', '--run-root', '--runtime']);
/** Global flags. */
const FLAGS = new Set(['--json', '--debug']);

export interface ArgvScan {
  /** The first operand: the command word, if any. */
  readonly word: string | undefined;
  /** --root's value when given before the command word. */
  readonly root: string | undefined;
  /** -V/--version seen before the command word. */
  readonly version: boolean;
  /** -h/--help seen before the command word. */
  readonly help: boolean;
  /** Something the program does not know (an unknown option, a missing value, `--`). */
  readonly unknown: boolean;
}

/**
 * Reads argv (without node and the script) as commander does with
 * positional options: program options come before the command word, and
 * the first operand is the command.
 */
export const scanArgv = (args: readonly string[]): ArgvScan => {
  let root: string | undefined;
  let version = false;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-') || a === '-') return { word: a, root, version, help, unknown: false };
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (VALUED.has(name)) {
      let value: string | undefined;
      if (name !== a) value = a.slice(eq + 1);
      else if (i + 1 < args.length) value = args[++i];
      else return { word: undefined, root, version, help, unknown: true };
      if (name === '--root') root = value;
    } else if (FLAGS.has(a)) {
      // nothing to remember
    } else if (a === '-V' || a === '--version') {
      version = true;
    } else if (a === '-h' || a === '--help') {
      help = true;
    } else {
      return { word: undefined, root, version, help, unknown: true };
    }
  }
  return { word: undefined, root, version, help, unknown: false };
};

/**
 * Where Node keeps compiled code for `berth` runs. As root: under the Berth
 * root the run is for (--root, else BERTH_ROOT, else /var/lib/berth), a
 * directory only root writes. Another user: a directory of their own in
 * the temporary directory, used only when it is theirs and closed to
 * others (another user could otherwise plant code there); undefined when
 * it is not.
 */
export const compileCacheDir = (
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  uid: number = process.getuid?.() ?? -1,
): string | undefined => {
  if (uid === 0) {
    const root = scanArgv(args).root ?? env['BERTH_ROOT'] ?? DEFAULT_ROOT;
    return path.join(path.resolve(root), '.cache', 'node');
  }
  const dir = path.join(os.tmpdir(), `berth-node-cache-${uid}`);
  try {
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) return undefined;
  } catch {
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch {
      return undefined;
    }
  }
  return dir;
};

/**
 * Turns on Node's on-disk compile cache (Node >= 22.1) for every module
 * loaded after this call, so that later runs skip parsing and compiling.
 * Off with NODE_DISABLE_COMPILE_CACHE=1; a cache that cannot be written
 * is only a slower start, never an error.
 */
export const enableCompileCache = (args: readonly string[]): void => {
  const enable = (nodeModule as { enableCompileCache?: (dir?: string) => unknown }).enableCompileCache;
  if (typeof enable !== 'function') return;
  try {
    const dir = compileCacheDir(args);
    if (dir !== undefined) enable(dir);
  } catch {
    // no cache: the run is slower, not wrong
  }
};

/**
 * Takes back what the launcher (cli/berth.sh) put into the environment for
 * Node alone: GLIBC_TUNABLES, when it set it (BERTH_LAUNCHER_TUNABLES=1),
 * and NODE_OPTIONS, when it set it (BERTH_LAUNCHER_NODE_OPTIONS=1: --jitless),
 * so that the helpers and tools berth starts get the user's environment;
 * and BERTH_LAUNCHER_REPORT_FD, the pipe on which `berth-shim launch`
 * waits for this process's exit status (kept for reportExitToLauncher;
 * it is not close-on-exec, but Node's spawn passes a child no fd beyond
 * its stdio, and the helper closes the rest itself).
 * Also starts watching whether process.stdin, stdout and stderr are made
 * (see reportExitToLauncher).
 */
export const dropLauncherEnv = (env: NodeJS.ProcessEnv = process.env): void => {
  watchStdio();
  const report = env['BERTH_LAUNCHER_REPORT_FD'];
  if (report !== undefined) {
    delete env['BERTH_LAUNCHER_REPORT_FD'];
    const fd = Number(report);
    if (Number.isInteger(fd) && fd > 2) shared()[REPORT_FD] = fd;
  }
  if (env['BERTH_LAUNCHER_NODE_OPTIONS'] !== undefined) {
    if (env['BERTH_LAUNCHER_NODE_OPTIONS'] === '1') delete env['NODE_OPTIONS'];
    delete env['BERTH_LAUNCHER_NODE_OPTIONS'];
  }
  if (env['BERTH_LAUNCHER_TUNABLES'] === undefined) return;
  if (env['BERTH_LAUNCHER_TUNABLES'] === '1') delete env['GLIBC_TUNABLES'];
  delete env['BERTH_LAUNCHER_TUNABLES'];
};

// on globalThis: the snapshot's copy of this module and the plain entry's (cli/snapshot.ts runPlain) share them
const REPORT_FD = Symbol.for('berth.launcherReportFd');
const STDIO_MADE = Symbol.for('berth.stdioMade');
const shared = (): Record<symbol, unknown> => globalThis as unknown as Record<symbol, unknown>;
const STDIO = ['stdin', 'stdout', 'stderr'] as const;

/**
 * Records the first use of process.stdin, stdout and stderr: Node makes each
 * stream on first use, and a pipe's or socket's fd becomes non-blocking then
 * (shared with the other processes that hold it, until Node puts the flags
 * back at its very end).
 */
const watchStdio = (): void => {
  const g = shared();
  if (g[STDIO_MADE] !== undefined) return;
  const made = [false, false, false];
  g[STDIO_MADE] = made;
  STDIO.forEach((name, fd) => {
    const d = Object.getOwnPropertyDescriptor(process, name);
    const get = d?.get;
    if (d === undefined || get === undefined || d.configurable !== true) {
      made[fd] = true; // not Node's lazy getter: count it as made
      return;
    }
    Object.defineProperty(process, name, {
      ...d,
      get(this: NodeJS.Process) {
        made[fd] = true;
        return get.call(this) as unknown;
      },
    });
  });
};

/** Whether process.stdin (0), stdout (1) or stderr (2) has been used, so made, in this process; true when that is not known. */
export const stdioMade = (fd: 0 | 1 | 2): boolean => (shared()[STDIO_MADE] as boolean[] | undefined)?.[fd] !== false;

/**
 * Tells `berth-shim launch`, which the user's shell waits on, this process's
 * exit status now, at the end of the exit listeners, so that it ends
 * while this process is still tearing itself down (unmapping Node's heap
 * and binary: ~4-6 ms of a `berth run` here). Called when all work is done
 * and all output written (Node writes to files and pipes synchronously on
 * Linux, trying each write at once). Left out, so that the launcher waits
 * for the real end, when a stdio fd is a terminal, or a pipe or socket
 * whose stream was made: at its very end Node puts back the terminal modes
 * and the fd flags it changed (such an fd it made non-blocking), which must
 * happen before the shell's next command uses them. Returns whether it
 * reported.
 */
export const reportExitToLauncher = (code: number): boolean => {
  const fd = shared()[REPORT_FD];
  if (typeof fd !== 'number') return false;
  delete shared()[REPORT_FD];
  try {
    if (!fs.fstatSync(fd).isFIFO()) return false;
    for (const std of [0, 1, 2] as const) {
      if (tty.isatty(std)) return false;
      if (stdioMade(std)) {
        const st = fs.fstatSync(std);
        if (st.isFIFO() || st.isSocket()) return false;
      }
    }
    fs.writeSync(fd, `${code & 0xff}\n`);
    return true;
  } catch {
    return false; // the launcher then waits for the real end
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
};
