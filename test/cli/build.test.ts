// `berth build` as a user runs it: the classic builder's step lines, the
// cache on a rebuild, -q, --json, -f, build args, and bad input that fails
// with a clear message and changes nothing.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busyboxLayer } from '../engine/runtime/helpers.js';
import { parseBuildArgs } from '../../cli/commands/build.js';
import { EngineFailure, renderError } from '../../engine/errors.js';
import { openLocalEngine } from '../../engine/local.js';
import { importLayers } from '../../engine/local-images.js';
import { repoRoot } from '../helpers/paths.js';

const bin = path.join(repoRoot, 'test/cli/berth-bin.mjs');
const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
const built = fs.existsSync(tsc);
// a private build of the current sources: a concurrent `npm run build` cannot break the CLI under test
const privateDist = path.join(repoRoot, 'node_modules/.cache', `berth-test-dist-build-${process.pid}`);
let dir = '';
let root = '';
let ctx = '';

const berth = (args: string[], cwd?: string): { code: number; stdout: string; stderr: string } => {
  const r = spawnSync(process.execPath, [bin, '--root', root, ...args], { encoding: 'utf8', timeout: 60_000, ...(cwd ? { cwd } : {}) });
  return { code: r.status ?? 128 + 9, stdout: r.stdout, stderr: r.stderr };
};
const images = (): string => berth(['images']).stdout;

beforeAll(async () => {
  if (!built) return;
  try {
    execFileSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--outDir', privateDist], { stdio: 'pipe' });
  } catch (e) {
    // type errors elsewhere in the tree still emit; a build that emitted nothing is a failure
    if (!fs.existsSync(path.join(privateDist, 'cli/commands/build.js'))) throw e;
  }
  process.env['BERTH_TEST_DIST'] = privateDist;
  process.env['BERTH_NATIVE_DIR'] = path.join(repoRoot, 'native/build');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-cli-build-'));
  root = path.join(dir, 'root');
  const e = openLocalEngine({ root, runRoot: path.join(root, 'run') }, { networking: null });
  await importLayers(e.store, [busyboxLayer(dir)], 'busybox:latest', { cmd: ['sh'] });
  ctx = path.join(dir, 'ctx');
  fs.mkdirSync(ctx);
  fs.writeFileSync(path.join(ctx, 'msg.txt'), 'from the context\n');
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nARG WHO=nobody\nCOPY msg.txt /msg.txt\nRUN echo "hello $WHO" > /hello\nCMD cat /hello /msg.txt\n');
}, 180_000);

afterAll(() => {
  if (root) {
    const ids = berth(['ps', '-aq', '--no-trunc']).stdout.split('\n').filter((x) => x !== '');
    if (ids.length > 0) berth(['rm', '-f', '-v', ...ids]);
    for (const m of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir)).reverse()) {
      execFileSync('umount', ['-l', m]);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  fs.rmSync(privateDist, { recursive: true, force: true });
});

describe.skipIf(!built)('berth build (skipped without node_modules/typescript: run `npm ci`)', () => {
  it('prints the classic builder\'s steps, builds an image `berth run` runs, and replays it from the cache', () => {
    const first = berth(['build', '-t', 'app:1', '--build-arg', 'WHO=berth', ctx]);
    expect(first.code, first.stderr).toBe(0);
    const lines = first.stdout.split('\n');
    expect(lines.filter((l) => l.startsWith('Step '))).toEqual([
      'Step 1/5 : FROM busybox', 'Step 2/5 : ARG WHO=nobody', 'Step 3/5 : COPY msg.txt /msg.txt',
      'Step 4/5 : RUN echo "hello $WHO" > /hello', 'Step 5/5 : CMD cat /hello /msg.txt',
    ]);
    const running = lines.findIndex((l) => /^ ---> Running in [0-9a-f]{12}$/.test(l));
    expect(lines.slice(running + 1, running + 3)).toEqual(['Removing intermediate container ' + lines[running]!.slice(-12), expect.stringMatching(/^ ---> [0-9a-f]{12}$/)]);
    expect(lines.filter((l) => l === ' ---> Using cache')).toEqual([]);
    const id = /Successfully built ([0-9a-f]{12})/.exec(first.stdout)?.[1];
    expect(id).toBeDefined();
    expect(first.stdout).toMatch(/Successfully tagged app:1\n$/);
    expect(berth(['run', '--rm', '--network', 'none', 'app:1'])).toMatchObject({ code: 0, stdout: 'hello berth\nfrom the context\n' });

    const again = berth(['build', '-t', 'app:1', '--build-arg', 'WHO=berth', ctx]);
    expect(again.code).toBe(0);
    expect(again.stdout.split('\n').filter((l) => l === ' ---> Using cache').length).toBe(4);
    expect(again.stdout).not.toMatch(/Running in/);
    expect(again.stdout).toContain(`Successfully built ${id}`);

    // -q: the image ID only; --json: the result
    expect(berth(['build', '-q', '-t', 'app:1', '--build-arg', 'WHO=berth', ctx]).stdout).toMatch(new RegExp(`^sha256:${id}[0-9a-f]{52}\n$`));
    const j = JSON.parse(berth(['--json', 'build', '-t', 'app:1', '--build-arg', 'WHO=berth', ctx]).stdout) as { id: string; names: string[]; steps: number; cached: number };
    expect(j).toMatchObject({ names: ['docker.io/library/app:1'], steps: 5, cached: 4 });
    expect(j.id.slice(7, 19)).toBe(id);
  });

  it('takes -f relative to where it runs, --target and --label', () => {
    const other = path.join(dir, 'other.Dockerfile');
    fs.writeFileSync(other, 'FROM busybox AS first\nRUN echo first > /f\nFROM busybox\nRUN echo second > /s\n');
    const r = berth(['build', '-f', 'other.Dockerfile', '--target', 'first', '--label', 'team=infra', '-t', 'other:1', ctx], dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Step 3\/3 : LABEL "team"="infra"/);
    expect(berth(['run', '--rm', '--network', 'none', 'other:1', 'cat', '/f']).stdout).toBe('first\n');
    expect((JSON.parse(berth(['image', 'inspect', 'other:1']).stdout) as { Config: { Labels: unknown } }[])[0]?.Config.Labels).toEqual({ team: 'infra' });
  });

  it('keeps an untagged build as an unnamed image: run by its ID, listed as <none>, gone with rmi or image prune', () => {
    const plain = path.join(dir, 'untagged');
    fs.mkdirSync(plain);
    fs.writeFileSync(path.join(plain, 'Dockerfile'), 'FROM busybox\nRUN echo untagged > /u\n');
    const id = berth(['build', '-q', plain]).stdout.trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(berth(['run', '--rm', '--network', 'none', id, 'cat', '/u'])).toMatchObject({ code: 0, stdout: 'untagged\n' });
    expect(berth(['run', '--rm', '--network', 'none', id.slice(7, 19), 'cat', '/u']).stdout).toBe('untagged\n');
    expect(images()).toMatch(new RegExp(`^<none>\\s+<none>\\s+${id.slice(7, 19)}\\s`, 'm'));
    // named later: no longer <none>; the name removed again: gone with its content
    expect(berth(['tag', id, 'was-unnamed:1']).code).toBe(0);
    expect(images()).not.toContain('<none>');
    expect(berth(['rmi', 'was-unnamed:1']).code).toBe(0);
    expect(berth(['run', '--rm', '--network', 'none', id, 'true']).stderr).toMatch(/not found/);
    // rmi by ID forgets an unnamed image; image prune removes those no container uses
    const again = berth(['build', '-q', plain]).stdout.trim(); // built anew: its content went with the name
    expect(berth(['rmi', again.slice(7, 19)])).toMatchObject({ code: 0, stdout: `Deleted: ${again}\n` });
    expect(images()).not.toContain('<none>');
    const third = berth(['build', '-q', plain]).stdout.trim();
    const keep = berth(['create', '--network', 'none', third, 'true']).stdout.trim();
    expect(berth(['image', 'prune']).stdout).not.toContain(third); // a container uses it
    expect(images()).toContain(third.slice(7, 19));
    expect(berth(['rm', keep]).code).toBe(0);
    expect(berth(['image', 'prune']).stdout).toContain(`Deleted: ${third}`);
    expect(images()).not.toContain('<none>');
  });

  it('fails on bad input with a message naming what to fix, and changes nothing', () => {
    const before = images();
    const badArg = berth(['build', '--build-arg', '1X=y', '-t', 'bad:1', ctx]);
    expect(badArg).toMatchObject({ code: 1, stdout: '' });
    expect(badArg.stderr).toMatch(/^berth: --build-arg: "1X=y": expected NAME=value/);

    const failing = path.join(dir, 'failing');
    fs.mkdirSync(failing);
    fs.writeFileSync(path.join(failing, 'Dockerfile'), 'FROM busybox\nRUN echo doing it; exit 4\n');
    const run = berth(['build', '-t', 'bad:1', failing]);
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(/Step 2\/2 : RUN echo doing it; exit 4\n ---> Running in [0-9a-f]{12}\ndoing it\n/);
    expect(run.stderr).toMatch(/Dockerfile:2: RUN echo doing it; exit 4: the command returned a non-zero code: 4/);

    expect(berth(['build', path.join(dir, 'nope')]).stderr).toMatch(/build context: .*nope: no such directory/);
    expect(images()).toBe(before);
    expect(berth(['ps', '-aq']).stdout).toBe('');
  });
});

describe('--build-arg', () => {
  it('takes NAME=value, and a bare NAME from the environment (left out when unset), as Docker', () => {
    expect(parseBuildArgs(['A=1', 'B=x=y', 'C=', 'FROM_ENV', 'UNSET'], { FROM_ENV: 'e' })).toEqual({ A: '1', B: 'x=y', C: '', FROM_ENV: 'e' });
  });

  it('names every bad entry at once', () => {
    try {
      parseBuildArgs(['1A=x', 'ok=1', 'a-b=2']);
      throw new Error('accepted');
    } catch (e) {
      expect(e).toBeInstanceOf(EngineFailure);
      expect(renderError((e as EngineFailure).error)).toBe(
        '--build-arg: 2 problems:\n  - "1A=x": expected NAME=value (NAME of letters, digits and _, not starting with a digit)\n  - "a-b=2": expected NAME=value (NAME of letters, digits and _, not starting with a digit)',
      );
    }
  });
});
