// `berth` start-up: the static table of top-level commands in cli/lazy.ts
// against what every command file really registers, the argv scan that
// picks the group to import, the compile cache's directory, and a built
// CLI that reads only the files its command needs.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS, GROUPS, groupsFor, newProgram, programFor, registerGroups, type GroupKey } from '../../cli/lazy.js';
import { compileCacheDir, DEFAULT_ROOT, dropLauncherEnv, scanArgv } from '../../cli/startup.js';
import { DEFAULT_ROOT as CONTEXT_DEFAULT_ROOT } from '../../cli/context.js';
import registerAuthCommands from '../../cli/commands/auth.js';
import registerBuildCommands from '../../cli/commands/build.js';
import registerContainerCommands, { engineFor } from '../../cli/commands/containers.js';
import registerImageCommands from '../../cli/commands/images.js';
import { registerNetworkCommands } from '../../cli/commands/networks.js';
import { registerStackCommands } from '../../cli/commands/stack.js';
import registerSystemCommands from '../../cli/commands/system.js';
import registerVolumeCommands from '../../cli/commands/volumes.js';
import { repoRoot } from '../helpers/paths.js';

interface Top {
  name: string;
  aliases: string[];
  description: string;
}
const tops = (p: Command): Top[] => p.commands.map((c) => ({ name: c.name(), aliases: c.aliases(), description: c.description() }));

/** The program as cli/main.ts built it before registration was lazy: every file, imported eagerly. */
const eagerProgram = (): Command => {
  const program = newProgram();
  registerImageCommands(program);
  registerBuildCommands(program);
  registerAuthCommands(program);
  registerSystemCommands(program);
  registerContainerCommands(program);
  registerVolumeCommands(program);
  registerNetworkCommands(program, { engine: () => engineFor(program) });
  registerStackCommands(program);
  return program;
};

/** Every command under `c`, with its full help text, by path (`image pull`). */
const helpTree = (c: Command, prefix = ''): Map<string, string> => {
  const m = new Map<string, string>();
  for (const s of c.commands) {
    const key = `${prefix}${s.name()}`;
    m.set(key, s.helpInformation());
    for (const [k, v] of helpTree(s, `${key} `)) m.set(k, v);
  }
  return m;
};

describe('the table of top-level commands', () => {
  it('lists, in order, every word the command files register, with its description and aliases', async () => {
    const all = await registerGroups(newProgram(), GROUPS);
    expect(COMMANDS.map((c) => ({ name: c.name, aliases: [...(c.aliases ?? [])], description: c.description }))).toEqual(tops(all));
  });

  it.each(GROUPS)('names every word group %s registers or extends, and no other', async (g: GroupKey) => {
    // alone on an empty program, a file creates each group it adds subcommands to
    const alone = await registerGroups(newProgram(), [g]);
    const expected = COMMANDS.filter((c) => c.groups.includes(g)).map((c) => c.name);
    expect(alone.commands.map((c) => c.name()).sort()).toEqual([...expected].sort());
  });

  it('registers the same commands lazily as the eager program did (every help text equal)', async () => {
    const eager = helpTree(eagerProgram());
    const lazyAll = helpTree(await programFor(['node', 'berth', '--help']));
    expect([...lazyAll.keys()]).toEqual([...eager.keys()]);
    expect(lazyAll).toEqual(eager);
    expect((await programFor(['node', 'berth', '--help'])).helpInformation()).toBe(eagerProgram().helpInformation());
    // one group alone: its commands are the eager program's, option for option
    for (const word of ['run', 'pull', 'network', 'system', 'plan', 'login', 'volume']) {
      const lazy = helpTree(await programFor(['node', 'berth', '--root', '/x', word, '--help']));
      expect(lazy.size).toBeGreaterThan(0);
      for (const [k, v] of lazy) expect(v, k).toBe(eager.get(k));
    }
  });

  it('keeps the default root equal to cli/context.ts', () => {
    expect(DEFAULT_ROOT).toBe(CONTEXT_DEFAULT_ROOT);
  });
});

describe('finding the command word', () => {
  it('skips the global options and their values', () => {
    expect(scanArgv(['--root', '/r', '--json', '--debug', 'run', '--rm', 'busybox'])).toEqual({ word: 'run', root: '/r', version: false, help: false, unknown: false });
    expect(scanArgv(['--root=/r', '--run-root', '/x', '--runtime=runc', 'ps', '--root', '/other'])).toMatchObject({ word: 'ps', root: '/r' });
    expect(scanArgv(['--runtime', 'run', 'ps'])).toMatchObject({ word: 'ps', root: undefined });
    expect(scanArgv(['-', 'x'])).toMatchObject({ word: '-' });
  });

  it('reports version, help and what the program does not know', () => {
    expect(scanArgv([])).toEqual({ word: undefined, root: undefined, version: false, help: false, unknown: false });
    expect(scanArgv(['--json', '-V'])).toMatchObject({ word: undefined, version: true, help: false, unknown: false });
    expect(scanArgv(['--help'])).toMatchObject({ help: true });
    expect(scanArgv(['--bogus', 'run'])).toMatchObject({ word: undefined, unknown: true });
    expect(scanArgv(['--root'])).toMatchObject({ word: undefined, unknown: true });
    expect(scanArgv(['--', 'run'])).toMatchObject({ word: undefined, unknown: true });
  });

  it('imports one group for a known word, none for --version, all for help and unknown words', () => {
    expect(groupsFor(['--root', '/r', 'run', '--rm', 'busybox', 'true'])).toEqual(['containers']);
    expect(groupsFor(['image', 'ls'])).toEqual(['images']);
    expect(groupsFor(['port', 'c1'])).toEqual(['networks']);
    expect(groupsFor(['--version'])).toEqual([]);
    expect(groupsFor(['--json', '-V'])).toEqual([]);
    for (const argv of [[], ['--help'], ['--help', 'run'], ['--version', '--help'], ['help', 'run'], ['rnu'], ['--bogus'], ['--', 'run'], ['--root']]) {
      expect(groupsFor(argv), argv.join(' ')).toEqual(GROUPS);
    }
  });

  it('builds a program with only that group', async () => {
    expect((await programFor(['node', 'berth', '--version'])).commands).toEqual([]);
    const run = await programFor(['node', 'berth', 'run', 'busybox']);
    expect(run.commands.map((c) => c.name())).toEqual(COMMANDS.filter((c) => c.groups.includes('containers')).map((c) => c.name));
  });
});

describe("the launcher's environment", () => {
  it.each([
    ['GLIBC_TUNABLES', 'BERTH_LAUNCHER_TUNABLES', 'glibc.malloc.hugetlb=1', 'glibc.malloc.check=0'],
    ['NODE_OPTIONS', 'BERTH_LAUNCHER_NODE_OPTIONS', '--jitless', '--max-old-space-size=100'],
  ])('drops %s only when the launcher set it (%s=1)', (name, marker, launchers, users) => {
    const set: NodeJS.ProcessEnv = { [name]: launchers, [marker]: '1', X: 'y' };
    dropLauncherEnv(set);
    expect(set).toEqual({ X: 'y' });
    const user: NodeJS.ProcessEnv = { [name]: users };
    dropLauncherEnv(user);
    expect(user).toEqual({ [name]: users });
  });

  it("reports the exit status on the launcher's pipe, unless a stdio stream was made on a pipe or the fd is no pipe", () => {
    const startup = JSON.stringify(path.join(repoRoot, 'dist/cli/startup.js'));
    // fd 3 is a real pipe (the shell's) to cat; what the program says goes to stderr
    const report = (setup: string, shell: string): { said: string; reported: string } => {
      const script = `const s = await import(${startup}); process.env.BERTH_LAUNCHER_REPORT_FD = '3'; s.dropLauncherEnv();
        const left = process.env.BERTH_LAUNCHER_REPORT_FD ?? null; ${setup}
        const reported = s.reportExitToLauncher(5);
        (await import('node:fs')).writeSync(2, JSON.stringify({ left, reported, again: s.reportExitToLauncher(6) }));`;
      const r = spawnSync('sh', ['-c', shell.replace('NODE', `${JSON.stringify(process.execPath)} --input-type=module -e "$SCRIPT"`)], {
        encoding: 'utf8', env: { ...process.env, SCRIPT: script }, timeout: 20_000,
      });
      return { said: r.stderr, reported: r.stdout };
    };
    expect(report('', 'NODE 3>&1 >/dev/null </dev/null | cat')).toEqual({ said: '{"left":null,"reported":true,"again":false}', reported: '5\n' });
    // a piped stdin that was never made into a stream: unchanged, the report goes
    expect(report('', 'echo in | NODE 3>&1 >/dev/null | cat').reported).toBe('5\n');
    // made into a stream (Node makes a piped stdin non-blocking, and puts that back only at its very end): none
    expect(report('void process.stdin;', 'echo in | NODE 3>&1 >/dev/null | cat')).toEqual({ said: '{"left":null,"reported":false,"again":false}', reported: '' });
    // the same for stdout on a pipe, made; /dev/null made is no pipe: the report goes
    expect(report('process.stdout.write("");', 'NODE 3>&1 </dev/null | cat')).toEqual({ said: '{"left":null,"reported":false,"again":false}', reported: '' });
    expect(report('process.stdout.write("");', 'NODE 3>&1 >/dev/null </dev/null | cat').reported).toBe('5\n');
    // fd 3 a file, not the launcher's pipe: none, and nothing written to it
    const file = path.join(os.tmpdir(), `berth-test-report-${process.pid}`);
    try {
      expect(report('', `NODE 3>${file} >/dev/null </dev/null`).said).toBe('{"left":null,"reported":false,"again":false}');
      expect(fs.readFileSync(file, 'utf8')).toBe('');
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

describe('the compile cache directory', () => {
  it('is under the Berth root for root: --root, else BERTH_ROOT, else the default', () => {
    expect(compileCacheDir(['--root', '/srv/b', 'run'], {}, 0)).toBe('/srv/b/.cache/node');
    expect(compileCacheDir(['--root=rel', 'ps'], {}, 0)).toBe(path.resolve('rel/.cache/node'));
    expect(compileCacheDir(['ps', '--root', '/not-global'], { BERTH_ROOT: '/env/root' }, 0)).toBe('/env/root/.cache/node');
    expect(compileCacheDir(['--version'], {}, 0)).toBe('/var/lib/berth/.cache/node');
  });

  it('is a private directory in the temporary directory for another user, refused when others could write it', () => {
    const uid = 4_000_000 + (process.pid % 100_000);
    const dir = path.join(os.tmpdir(), `berth-node-cache-${uid}`);
    fs.rmSync(dir, { recursive: true, force: true });
    try {
      expect(compileCacheDir([], {}, uid)).toBe(dir);
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
      if (process.getuid?.() === 0) {
        expect(compileCacheDir([], {}, uid)).toBeUndefined(); // owned by root, not by uid
        fs.chownSync(dir, uid, uid);
        expect(compileCacheDir([], {}, uid)).toBe(dir);
        fs.chmodSync(dir, 0o777);
        expect(compileCacheDir([], {}, uid)).toBeUndefined(); // others could plant code
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The built CLI, as a user runs it: a private build of the current sources
// (inside the repo so that packages resolve).
const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const privateDist = path.join(repoRoot, 'node_modules/.cache', `berth-test-startup-${process.pid}`);
let work = '';

describe.skipIf(!fs.existsSync(tsc))('the built CLI', () => {
  beforeAll(() => {
    try {
      execFileSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--outDir', privateDist], { stdio: 'pipe' });
    } catch (e) {
      // type errors elsewhere in the tree still emit; a build that emitted nothing is a failure
      if (!fs.existsSync(path.join(privateDist, 'cli/main.js'))) throw e;
    }
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-startup-'));
    // records every file module the process loads, printed to stderr at exit
    fs.writeFileSync(
      path.join(work, 'trace.mjs'),
      "import { registerHooks } from 'node:module';\n" +
        'const seen = [];\n' +
        'registerHooks({ load(url, ctx, next) { seen.push(url); return next(url, ctx); } });\n' +
        "process.on('exit', () => process.stderr.write('LOADED ' + JSON.stringify(seen) + '\\n'));\n",
    );
  }, 180_000);

  afterAll(() => {
    fs.rmSync(privateDist, { recursive: true, force: true });
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const cleanEnv = (): NodeJS.ProcessEnv => {
    const e = { ...process.env };
    delete e['NODE_COMPILE_CACHE'];
    delete e['NODE_DISABLE_COMPILE_CACHE'];
    delete e['BERTH_ROOT'];
    return e;
  };
  const berth = (root: string, args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, ['--import', path.join(work, 'trace.mjs'), path.join(privateDist, 'cli/main.js'), '--root', root, ...args], {
      encoding: 'utf8',
      timeout: 25_000,
      env: { ...cleanEnv(), ...env },
    });
    const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED ')) ?? 'LOADED []';
    const loaded = (JSON.parse(line.slice('LOADED '.length)) as string[])
      .filter((u) => u.startsWith(`file://${privateDist}/`))
      .map((u) => u.slice(`file://${privateDist}/`.length));
    return { code: r.status, stdout: r.stdout, stderr: r.stderr.replace(/^LOADED .*\n/m, ''), loaded };
  };

  it('prints its version reading no command file, and fills the compile cache under the root', () => {
    const root = path.join(work, 'root-version');
    const r = berth(root, ['--version']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('0.1.0\n');
    expect(r.code).toBe(0);
    expect(r.loaded.filter((f) => f.startsWith('cli/commands/') || f.startsWith('engine/'))).toEqual([]);
    const cache = path.join(root, '.cache/node');
    const entries = fs.readdirSync(cache, { recursive: true });
    expect(entries.length).toBeGreaterThan(1);
    // a second run finds the cache (and still works)
    expect(berth(root, ['--version']).stdout).toBe('0.1.0\n');
  });

  it('reads only the container verbs for `run`, and every group for --help', () => {
    const root = path.join(work, 'root-run');
    const r = berth(root, ['run', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: berth run [options] <image> [command...]');
    for (const f of r.loaded.filter((l) => l.startsWith('cli/commands/'))) expect(['cli/commands/containers.js', 'cli/commands/container-flags.js']).toContain(f);
    expect(r.loaded).toContain('cli/commands/containers.js');
    expect(r.loaded).not.toContain('cli/commands/images.js');
    expect(r.loaded).not.toContain('engine/local.js');

    const h = berth(root, ['--help']);
    expect(h.code).toBe(0);
    for (const c of COMMANDS) expect(h.stdout).toMatch(new RegExp(`^  ${c.name}\\b`, 'm'));
    for (const g of GROUPS) expect(h.loaded).toContain(`cli/commands/${g}.js`);
  });

  it('reports an unknown command with the full list and a suggestion', () => {
    const r = berth(path.join(work, 'root-unknown'), ['rnu']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("error: unknown command 'rnu'");
    expect(r.stderr).toContain('(Did you mean run?)');
    expect(r.stderr).toMatch(/^ {2}network\b/m);
  });
});
