// The builder on real kernel objects: RUN in Berth containers, COPY/ADD
// through an overlay, layers in the store, the cache, multi-stage builds,
// and bad input that fails with the Dockerfile's line and leaves nothing.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildEvent, BuildSpec } from '../../../engine/engine.js';
import { EngineFailure, renderError } from '../../../engine/errors.js';
import { busyboxLayout, have, skopeo, startRegistry } from '../registry/helpers.js';
import { makeTestEngine, type TestEngine } from '../runtime/helpers.js';
import { leftovers, makeContext, runIn } from './helpers.js';

let te: TestEngine;
beforeAll(async () => {
  te = await makeTestEngine();
}, 60_000);
afterAll(async () => {
  await te?.cleanup();
});

const build = (spec: Omit<BuildSpec, 'tags'> & { tags?: string[] }) => te.engine.buildImage({ tags: [], ...spec });
const dockerfile = (files: Record<string, string>) => makeContext(te.dir, files);
const failure = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineFailure) return renderError(e.error);
    throw e;
  }
  throw new Error('the build succeeded');
};
const configOf = async (ref: string) => JSON.parse(fs.readFileSync(path.join(te.engine.store.layoutDir, 'blobs/sha256', (await te.engine.inspectImage(ref)).id.slice(7)), 'utf8')) as {
  config: Record<string, unknown>; history: { created_by: string; empty_layer?: boolean }[]; rootfs: { diff_ids: string[] };
};
const layerList = (digest: string): string[] =>
  execFileSync('tar', ['-tf', path.join(te.engine.store.layoutDir, 'blobs/sha256', digest.slice(7))], { encoding: 'utf8' }).split('\n').filter(Boolean);

describe('RUN, ENV, ARG, WORKDIR, USER', () => {
  it('makes an image whose containers see the files, environment, directory and user the Dockerfile set', async () => {
    const ctx = dockerfile({
      Dockerfile: [
        'FROM busybox',
        'ARG GREETING=hello',
        'ARG UNUSED_DEFAULT=x',
        'ENV APP_HOME=/srv/app NAME=${GREETING}-world',
        'WORKDIR $APP_HOME',
        'RUN echo "$GREETING from $(pwd)" > made.txt',
        'USER 1000:1000',
        'RUN id -u > /tmp/uid',
        'CMD ["sh", "-c", "cat made.txt; echo $NAME; pwd; id -u; cat /tmp/uid; echo ${GREETING:-unset}"]',
      ].join('\n'),
    });
    const events: BuildEvent[] = [];
    const r = await build({ context: ctx, tags: ['run-test:1'], buildArgs: { GREETING: 'hi' }, onProgress: (e) => events.push(e) });
    expect(r.names).toEqual(['docker.io/library/run-test:1']);
    expect(events.filter((e) => e.type === 'step').map((e) => (e as { instruction: string }).instruction)[5]).toBe('RUN echo "$GREETING from $(pwd)" > made.txt');
    const res = await runIn(te.engine, 'run-test:1');
    expect(res).toEqual({ exitCode: 0, out: 'hi from /srv/app\nhi-world\n/srv/app\n1000\n1000\nunset\n' });

    const cfg = await configOf('run-test:1');
    expect(cfg.config).toMatchObject({ WorkingDir: '/srv/app', User: '1000:1000' });
    expect(cfg.config['Env']).toContain('NAME=hi-world');
    // history as the classic builder writes it: one entry per step, empty_layer for config-only steps
    const mine = cfg.history.slice(-8);
    expect(mine.map((h) => h.created_by)).toEqual([
      '/bin/sh -c #(nop) ARG GREETING=hello',
      '/bin/sh -c #(nop) ARG UNUSED_DEFAULT=x',
      '/bin/sh -c #(nop) ENV APP_HOME=/srv/app NAME=hi-world',
      '/bin/sh -c #(nop) WORKDIR /srv/app',
      '|2 GREETING=hi UNUSED_DEFAULT=x /bin/sh -c echo "$GREETING from $(pwd)" > made.txt',
      '/bin/sh -c #(nop) USER 1000:1000',
      '|2 GREETING=hi UNUSED_DEFAULT=x /bin/sh -c id -u > /tmp/uid',
      '/bin/sh -c #(nop) CMD ["sh","-c","cat made.txt; echo $NAME; pwd; id -u; cat /tmp/uid; echo ${GREETING:-unset}"]',
    ]);
    expect(mine.map((h) => h.empty_layer === true)).toEqual([true, true, true, false, false, true, false, true]);
    // one layer per filesystem change, each a diff only: the RUN layer holds made.txt and not the runtime's mount points
    expect(cfg.rootfs.diff_ids.length).toBe(4);
    expect(layerList(cfg.rootfs.diff_ids[2]!)).toEqual(['srv/', 'srv/app/', 'srv/app/made.txt']);
  });

  it('runs the exec form without a shell and SHELL changes the shell form', async () => {
    const ctx = dockerfile({
      Dockerfile: 'FROM busybox\nRUN ["/bin/sh", "-c", "echo exec > /e"]\nSHELL ["/bin/sh", "-e", "-c"]\nRUN echo shell > /s\nCMD cat /e /s\n',
    });
    await build({ context: ctx, tags: ['forms:1'] });
    expect(await runIn(te.engine, 'forms:1')).toEqual({ exitCode: 0, out: 'exec\nshell\n' });
    const cfg = await configOf('forms:1');
    expect(cfg.config['Cmd']).toEqual(['/bin/sh', '-e', '-c', 'cat /e /s']);
    expect(cfg.history.at(-2)?.created_by).toBe('/bin/sh -e -c echo shell > /s');
  });

  it('writes OCI whiteouts for files and directories a RUN deletes', async () => {
    const ctx = dockerfile({ Dockerfile: 'FROM busybox\nRUN rm /etc/group && rm -r /home && mkdir /home && echo new > /home/new\n' });
    await build({ context: ctx, tags: ['wh:1'] });
    const cfg = await configOf('wh:1');
    const files = layerList(cfg.rootfs.diff_ids.at(-1)!);
    expect(files).toContain('etc/.wh.group');
    expect(files).toContain('home/.wh..wh..opq');
    expect(await runIn(te.engine, 'wh:1', ['sh', '-c', 'test -e /etc/group && echo still; ls /home'])).toEqual({ exitCode: 0, out: 'new\n' });
  });

  it('keeps config-only instructions in the image config', async () => {
    const ctx = dockerfile({
      Dockerfile: [
        'FROM busybox', 'LABEL a=1 "b c"="two words"', 'EXPOSE 80 53/udp 8000-8001', 'VOLUME /data',
        'STOPSIGNAL SIGINT', 'HEALTHCHECK --interval=5s --retries=2 CMD wget -q localhost', 'ENTRYPOINT ["/bin/echo"]', 'MAINTAINER someone',
      ].join('\n'),
    });
    await build({ context: ctx, tags: ['meta:1'] });
    const cfg = await configOf('meta:1');
    expect(cfg.config).toMatchObject({
      Labels: { a: '1', 'b c': 'two words' },
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} },
      Volumes: { '/data': {} },
      StopSignal: 'SIGINT',
      Healthcheck: { Test: ['CMD-SHELL', 'wget -q localhost'], Interval: 5e9, Retries: 2 },
      Entrypoint: ['/bin/echo'],
      Cmd: null, // an ENTRYPOINT resets the CMD inherited from the base
    });
  });
});

describe('COPY and ADD', () => {
  it('copies files, directories, wildcards and the whole context with Docker semantics', async () => {
    const ctx = dockerfile({
      'a.txt': 'A\n', 'b.txt': 'B\n', 'sub/c.txt': 'C\n', 'sub/deep/d.txt': 'D\n', 'ignored.log': 'secret\n', 'keep/me.log': 'kept\n',
      '.dockerignore': '*.log\n',
      Dockerfile: [
        'FROM busybox',
        'COPY a.txt /one/',
        'COPY a.txt /renamed.txt',
        'COPY sub /subcopy',
        'COPY *.txt /globbed/',
        'COPY --chown=1000:1001 --chmod=600 b.txt /owned/',
        'COPY --chown=test b.txt /byname',
        'WORKDIR /rel',
        'COPY a.txt here.txt',
        'COPY . /ctx/',
      ].join('\n'),
    });
    fs.symlinkSync('a.txt', path.join(ctx, 'link'));
    fs.chmodSync(path.join(ctx, 'sub/c.txt'), 0o751);
    await build({ context: ctx, tags: ['copy:1'] });
    const script = [
      'ls /one', 'cat /renamed.txt', 'find /subcopy | sort', 'ls /globbed', "stat -c '%u:%g %a' /owned/b.txt /byname /subcopy/c.txt",
      'cat /rel/here.txt', 'ls -A /ctx', 'ls /ctx/keep', 'readlink /ctx/link',
    ].join('; ');
    const r = await runIn(te.engine, 'copy:1', ['sh', '-c', script]);
    // line by line, so that a failure says which rule broke
    const lines = r.out.split('\n');
    expect(lines.slice(0, 8)).toEqual(['a.txt', 'A', '/subcopy', '/subcopy/c.txt', '/subcopy/deep', '/subcopy/deep/d.txt', 'a.txt', 'b.txt']);
    expect(lines.slice(8, 12)).toEqual(['1000:1001 600', '1000:1000 644', '0:0 751', 'A']);
    expect(lines.slice(12, 19)).toEqual(['.dockerignore', 'Dockerfile', 'a.txt', 'b.txt', 'keep', 'link', 'sub']); // no ignored.log
    // `*.log` matches at the top only (as Docker: `**/*.log` would match at any depth)
    expect(lines.slice(19)).toEqual(['me.log', 'a.txt', '']);
  });

  it('ADD unpacks a local tar (plain, gzip, zstd, xz, bzip2) with its owners, copies other files, and refuses URLs', async () => {
    const tree = fs.mkdtempSync(path.join(te.dir, 'tree-'));
    fs.mkdirSync(path.join(tree, 'x'));
    fs.writeFileSync(path.join(tree, 'x/y.txt'), 'Y\n');
    const ctx = dockerfile({
      Dockerfile: 'FROM busybox\nADD archive.tar /unpacked/\nADD a.tgz a.tzst a.txz a.tbz2 /many/\nADD plain.txt /plain.txt\nADD notatar.gz /notatar.gz\n',
      'plain.txt': 'P\n',
    });
    execFileSync('tar', ['-C', tree, '--owner=123', '--group=456', '-cf', path.join(ctx, 'archive.tar'), 'x']);
    fs.mkdirSync(path.join(tree, 'z'));
    for (const [name, flag, file] of [['a.tgz', '-z', 'g'], ['a.tzst', '--zstd', 's'], ['a.txz', '-J', 'j'], ['a.tbz2', '-j', 'b']] as const) {
      fs.writeFileSync(path.join(tree, 'z', file), `${file}\n`);
      execFileSync('tar', ['-C', path.join(tree, 'z'), flag, '-cf', path.join(ctx, name), file]);
    }
    execFileSync('sh', ['-c', `gzip -c ${path.join(ctx, 'plain.txt')} > ${path.join(ctx, 'notatar.gz')}`]);
    await build({ context: ctx, tags: ['add:1'] });
    const r = await runIn(te.engine, 'add:1', ['sh', '-c', "stat -c '%u:%g' /unpacked/x/y.txt; ls /many; cat /plain.txt; zcat /notatar.gz"]);
    expect(r.out).toBe('123:456\nb\ng\nj\ns\nP\nP\n');

    const url = dockerfile({ Dockerfile: 'FROM busybox\nADD https://example.com/x /x\n' });
    expect(await failure(build({ context: url }))).toMatch(/unsupported: .*Dockerfile:2: ADD https:\/\/example.com\/x \/x: ADD of a URL .*download it into the build context/);
  });
});

describe('.dockerignore and scoping', () => {
  it('re-includes with ! inside an excluded directory, and ENV wins over an ARG of the same name', async () => {
    const ctx = dockerfile({
      'docs/a.md': 'a', 'docs/keep.md': 'keep', 'docs/sub/b.md': 'b', 'secret.key': 'k',
      '.dockerignore': 'docs\n!docs/keep.md\n**/*.key\n',
      Dockerfile: 'FROM busybox\nARG V=from-arg\nENV V=from-env\nRUN echo $V > /v\nCOPY . /ctx\nCMD cat /v; find /ctx | sort\n',
    });
    await build({ context: ctx, tags: ['ignore:1'], buildArgs: { V: 'from-cli' } });
    expect((await runIn(te.engine, 'ignore:1')).out).toBe('from-env\n/ctx\n/ctx/.dockerignore\n/ctx/Dockerfile\n/ctx/docs\n/ctx/docs/keep.md\n');
  });
});

describe('multi-stage builds', () => {
  it('copies from earlier stages by name and index and from images, builds FROM scratch, and stops at --target', async () => {
    const ctx = dockerfile({
      Dockerfile: [
        'ARG BASE=busybox',
        'FROM $BASE AS build',
        'RUN mkdir /out && echo built > /out/artifact',
        'FROM ${BASE} AS other',
        'RUN echo other > /o',
        'FROM scratch',
        'COPY --from=build /out/artifact /artifact',
        'COPY --from=0 /bin/busybox /bin/busybox',
        'COPY --from=busybox:latest /etc/passwd /etc/passwd',
        'CMD ["/bin/busybox", "sh", "-c", "/bin/busybox cat /artifact; /bin/busybox ls /o 2>&1 | /bin/busybox wc -l; /bin/busybox head -1 /etc/passwd"]',
      ].join('\n'),
    });
    await build({ context: ctx, tags: ['multi:1'] });
    expect(await runIn(te.engine, 'multi:1')).toEqual({ exitCode: 0, out: 'built\n1\nroot:x:0:0:root:/root:/bin/sh\n' });
    expect((await configOf('multi:1')).rootfs.diff_ids.length).toBe(3);

    await build({ context: ctx, tags: ['multi:other'], target: 'other' });
    expect(await runIn(te.engine, 'multi:other', ['cat', '/o'])).toEqual({ exitCode: 0, out: 'other\n' });
  });

  it('runs a base image\'s ONBUILD triggers when it is used, and does not pass them on', async () => {
    const base = dockerfile({ Dockerfile: 'FROM busybox\nONBUILD COPY trigger.txt /trig\nONBUILD RUN echo ran > /ran\n' });
    await build({ context: base, tags: ['onbuild-base:1'] });
    expect((await configOf('onbuild-base:1')).config['OnBuild']).toEqual(['COPY trigger.txt /trig', 'RUN echo ran > /ran']);
    const child = dockerfile({ Dockerfile: 'FROM onbuild-base:1\nCMD cat /trig /ran\n', 'trigger.txt': 'T\n' });
    await build({ context: child, tags: ['onbuild-child:1'] });
    expect(await runIn(te.engine, 'onbuild-child:1')).toEqual({ exitCode: 0, out: 'T\nran\n' });
    expect((await configOf('onbuild-child:1')).config['OnBuild']).toBeUndefined();
  });
});

describe('labels given with the build', () => {
  it('adds them as a last LABEL step, taken literally', async () => {
    const ctx = dockerfile({ Dockerfile: 'FROM busybox\nENV X=no\n' });
    const labels = { 'org.example/a': 'plain', b: 'has $X and "quotes" and \\ and ${X}' };
    const r = await build({ context: ctx, tags: ['labels:1'], labels });
    expect(r.steps).toBe(3);
    expect((await configOf('labels:1')).config['Labels']).toEqual(labels);
  });
});

describe.skipIf(!have('docker-registry') || !have('skopeo'))('a base image that is not here (skipped without docker-registry and skopeo)', () => {
  it('is pulled through the image API (a registry on loopback) and built on', async () => {
    const reg = await startRegistry();
    try {
      const layout = await busyboxLayout(fs.mkdtempSync(path.join(te.dir, 'layout-')), 'v1');
      await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/base/busybox:v1`]);
      const events: BuildEvent[] = [];
      const ctx = dockerfile({ Dockerfile: `FROM ${reg.host}/base/busybox:v1\nRUN cat /etc/motd > /m\n` });
      await build({ context: ctx, tags: ['pulled-base:1'], onProgress: (e) => events.push(e) });
      expect(events).toContainEqual({ type: 'output', stream: 'stdout', text: `pulling ${reg.host}/base/busybox:v1\n` });
      expect((await te.engine.inspectImage(`${reg.host}/base/busybox:v1`)).id).toBe(layout.configDigest);
      expect(await runIn(te.engine, 'pulled-base:1', ['cat', '/m'])).toEqual({ exitCode: 0, out: 'hello from berth\n' });
    } finally {
      await reg.stop();
    }
  });
});

describe('the cache', () => {
  it('replays an unchanged build from the cache with the same image ID, and misses from the first changed step on', async () => {
    const ctx = dockerfile({ 'a.txt': 'one\n', Dockerfile: 'FROM busybox\nRUN echo x > /x\nCOPY a.txt /a\nRUN cat /a > /b\nENV E=1\n' });
    const first = await build({ context: ctx, tags: ['cache:1'] });
    expect(first.cached).toBe(0);
    const events: BuildEvent[] = [];
    const again = await build({ context: ctx, tags: ['cache:1'], onProgress: (e) => events.push(e) });
    expect(again.id).toBe(first.id);
    expect(again.cached).toBe(4);
    expect(events.some((e) => e.type === 'running')).toBe(false); // no RUN container at all

    // a mtime alone is no change (as Docker); content is
    fs.utimesSync(path.join(ctx, 'a.txt'), new Date(0), new Date(0));
    expect((await build({ context: ctx, tags: ['cache:1'] })).id).toBe(first.id);
    fs.writeFileSync(path.join(ctx, 'a.txt'), 'two\n');
    const changed = await build({ context: ctx, tags: ['cache:1'] });
    expect(changed.cached).toBe(1); // only the RUN before the COPY
    expect(changed.id).not.toBe(first.id);
    expect(await runIn(te.engine, 'cache:1', ['cat', '/b'])).toEqual({ exitCode: 0, out: 'two\n' });

    // different build args are a different RUN
    const argCtx = dockerfile({ Dockerfile: 'FROM busybox\nARG V=1\nRUN echo $V > /v\n' });
    const a1 = await build({ context: argCtx });
    expect((await build({ context: argCtx, buildArgs: { V: '2' } })).id).not.toBe(a1.id);
    expect((await build({ context: argCtx })).id).toBe(a1.id);

    // --no-cache runs every step
    const fresh = await build({ context: ctx, tags: ['cache:2'], noCache: true });
    expect(fresh.cached).toBe(0);
  });
});

describe('bad input', () => {
  const cases: [string, Record<string, string>, Partial<BuildSpec>, RegExp][] = [
    ['an unknown instruction', { Dockerfile: 'FROM busybox\nCOPPY a /b\n' }, {}, /Dockerfile:2: unknown instruction "COPPY"/],
    ['no FROM at all', { Dockerfile: '# nothing\n' }, {}, /no FROM instruction: a Dockerfile starts with FROM/],
    ['an instruction before FROM', { Dockerfile: 'RUN echo\nFROM busybox\n' }, {}, /Dockerfile:1: RUN: RUN before the first FROM: only ARG may come before FROM/],
    ['a missing COPY source', { Dockerfile: 'FROM busybox\nCOPY nope.txt /x\n' }, {}, /Dockerfile:2: COPY nope.txt \/x: .*nope.txt: not found in the build context .*check the path/],
    ['a COPY source outside the context', { Dockerfile: 'FROM busybox\nCOPY ../x /x\n' }, {}, /Dockerfile:2: COPY \.\.\/x \/x: .*\.\.\/x is outside the build context/],
    ['a source .dockerignore excludes', { Dockerfile: 'FROM busybox\nCOPY s.key /x\n', 's.key': 'k', '.dockerignore': '*.key\n' }, {}, /\.dockerignore excludes it/],
    ['a bad --build-arg name', { Dockerfile: 'FROM busybox\n' }, { buildArgs: { '1BAD': 'x' } }, /--build-arg: "1BAD" is not a valid name/],
    ['an unknown stage in --from', { Dockerfile: 'FROM busybox AS a\nFROM busybox\nCOPY --from=nosuch /x /x\n' }, {}, /Dockerfile:3: COPY --from=nosuch \/x \/x: .*--from=nosuch: no stage of that name .*stages before this one: a/],
    ['--from a later stage', { Dockerfile: 'FROM busybox\nCOPY --from=1 /x /x\nFROM busybox\n' }, {}, /Dockerfile:2: COPY --from=1 \/x \/x: --from=1: a stage can only copy from an earlier stage/],
    ['a RUN as a user the image does not have', { Dockerfile: 'FROM busybox\nUSER ghost\nRUN true\n' }, {}, /Dockerfile:3: RUN true: .*unable to find user ghost/],
    ['--chown to a user the image does not have', { Dockerfile: 'FROM busybox\nCOPY --chown=ghost a /a\n', a: '' }, {}, /Dockerfile:2: COPY --chown=ghost a \/a: --chown=ghost: unable to find user ghost/],
    ['an unknown instruction in an ONBUILD', { Dockerfile: 'FROM busybox\nONBUILD RUNN x\n' }, {}, /unknown instruction "RUNN"/],
    ['a bad EXPOSE', { Dockerfile: 'FROM busybox\nEXPOSE 99999\n' }, {}, /Dockerfile:2: EXPOSE 99999: "99999": ports are 1-65535/],
    ['an unknown instruction flag', { Dockerfile: 'FROM busybox\nCOPY --link a /a\n', a: '' }, {}, /unknown flag --link: COPY takes --chown, --chmod, --from/],
    ['an unknown --target', { Dockerfile: 'FROM busybox AS a\n' }, { target: 'b' }, /--target: no stage named "b" .*its stages are a/],
    ['a RUN that fails', { Dockerfile: 'FROM busybox\nENV A=1\nRUN echo some output; exit 3\n' }, {}, /Dockerfile:3: RUN echo some output; exit 3: the command returned a non-zero code: 3/],
    ['RUN with nothing to run', { Dockerfile: 'FROM scratch\nRUN echo\n' }, {}, /Dockerfile:2: RUN echo: .*RUN on an empty image/],
    ['a BuildKit flag', { Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/c echo\n' }, {}, /unknown flag --mount: RUN takes no flags/],
    ['more sources than a file destination takes', { Dockerfile: 'FROM busybox\nCOPY a b /dest\n', a: '', b: '' }, {}, /more than one source file needs a destination directory ending in \//],
    ['a bad tag', { Dockerfile: 'FROM busybox\n' }, { tags: ['Bad:Tag'] }, /repository name must be lowercase/],
  ];
  it.each(cases)('fails clearly on %s and leaves nothing behind', async (_name, files, extra, re) => {
    const before = (await te.engine.listImages()).map((i) => i.names).flat().sort();
    const ctx = dockerfile(files);
    const msg = await failure(build({ context: ctx, tags: ['bad:1'], ...extra }));
    expect(msg).toMatch(re);
    expect(await leftovers(te.engine, te.dir)).toEqual([]);
    expect((await te.engine.listImages()).map((i) => i.names).flat().sort()).toEqual(before);
  });

  it('names a missing context and a missing Dockerfile', async () => {
    expect(await failure(build({ context: path.join(te.dir, 'nope') }))).toMatch(/build context: .*nope: no such directory/);
    expect(await failure(build({ context: dockerfile({ x: '' }) }))).toMatch(/cannot read the Dockerfile \(ENOENT\): give its path with -f/);
  });
});

describe('a build killed midway', () => {
  it('leaves a tmp dir (with a mount) and a RUN container that the next build removes', async () => {
    const dead = 4_999_999; // above any pid_max: never a live process
    const stale = path.join(te.engine.roots.root, 'build/tmp', `${dead}-abc`);
    fs.mkdirSync(path.join(stale, 'copy-x/merged'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', path.join(stale, 'copy-x/merged')]);
    const c = await te.engine.createContainer({ image: 'busybox', command: ['true'], networkMode: 'none', labels: { 'berth.build.pid': String(dead) } });
    await build({ context: dockerfile({ Dockerfile: 'FROM busybox\n' }) });
    expect(fs.existsSync(stale)).toBe(false);
    await expect(te.engine.inspectContainer(c.id)).rejects.toThrow(/not found/);
    expect(await leftovers(te.engine, te.dir)).toEqual([]);
  });
});

describe('leaks', () => {
  it('leaves no container, volume, mount or temporary directory after all these builds', async () => {
    expect(await leftovers(te.engine, te.dir)).toEqual([]);
  });
});
