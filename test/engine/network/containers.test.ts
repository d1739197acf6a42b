// Networking through the whole local engine: real containers (berth-shim +
// berth-runtime) on a user network, resolving each other by name and alias
// and answering on a published port of the host's 127.0.0.1.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { openLocalEngine } from '../../../engine/local.js';
import { openNetworking } from '../../../engine/network/networking.js';
import { berthRuntimeBinary, repoRoot } from '../../helpers/paths.js';
import { makeTestEngine, type TestEngine } from '../runtime/helpers.js';

const skip =
  process.getuid?.() !== 0 ? 'needs root' : !fs.existsSync(berthRuntimeBinary) ? 'needs native/build (make -C native)' : '';

// the CLI the shims' exit command runs (`container cleanup`): the checkout's build (scripts/setup.sh makes it)
const launcher = path.join(repoRoot, 'dist/cli/berth');

const hostVeths = (): Set<string> => new Set(fs.readdirSync('/sys/class/net').filter((n) => n.startsWith('bth')));

const waitUntil = async (what: string, ok: () => boolean, ms = 15_000): Promise<void> => {
  for (const deadline = Date.now() + ms; !ok(); await new Promise((r) => setTimeout(r, 50))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  }
};

/** Whether a `container cleanup <id>` process shows up within ms (it lives ~0.1-0.2 s; polled every 5 ms). */
const cleanupRuns = async (id: string, ms: number): Promise<boolean> => {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await new Promise((r) => setTimeout(r, 5))) {
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`container\0cleanup\0${id}`)) return true;
      } catch {
        // gone
      }
    }
  }
  return false;
};

const freePort = (): Promise<number> =>
  new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

const httpGet = (host: string, port: number): string => {
  try {
    return execFileSync('sh', ['-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 ${host} ${port} | tail -n 1`], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return '';
  }
};

describe.skipIf(skip !== '')(`containers on Berth networks${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let t: TestEngine;
  beforeAll(async () => {
    t = await makeTestEngine();
  });
  afterAll(async () => {
    if (!t) return;
    // containers first (their teardown needs the network records), then the networks, then the root
    for (const c of await t.engine.listContainers({ all: true }).catch(() => [])) {
      await t.engine.removeContainer(c.id, { force: true }).catch(() => undefined);
    }
    await openNetworking(t.engine.roots).purge();
    await t.cleanup();
  });

  it('serves a published port on 127.0.0.1 and resolves names and aliases between containers', async () => {
    const e = t.engine;
    await e.createNetwork({ name: 'app' });
    const port = await freePort();
    await e.createContainer({
      name: 'web', image: 'busybox', networkMode: 'app', networks: { app: { aliases: ['www'] } },
      ports: [{ containerPort: 80, protocol: 'tcp', hostPort: port, hostIp: '127.0.0.1' }],
      command: ['sh', '-c', 'mkdir -p /w && echo from-web > /w/index.html && exec httpd -f -p 80 -h /w'],
    });
    await e.startContainer('web');
    let body = '';
    for (let i = 0; i < 50 && body === ''; i++) {
      body = httpGet('127.0.0.1', port);
      if (body === '') await new Promise((r) => setTimeout(r, 100));
    }
    expect(body).toBe('from-web');
    expect((await e.inspectContainer('web')).ports).toEqual([{ containerPort: 80, protocol: 'tcp', hostPort: port, hostIp: '127.0.0.1' }]);

    for (const name of ['web', 'www']) {
      await e.createContainer({
        name: `client-${name}`, image: 'busybox', networkMode: 'app',
        command: ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 ${name} 80 | tail -n 1; cat /etc/hostname`],
      });
      await e.startContainer(`client-${name}`);
      expect((await e.waitContainer(`client-${name}`)).exitCode).toBe(0);
      const lines: string[] = [];
      for await (const l of e.logs(`client-${name}`)) lines.push(l.text.trim());
      expect(lines.join('\n')).toContain('from-web');
    }
    const info = await e.inspectNetwork('app');
    expect(Object.values(info.containers).map((c) => c.name)).toContain('web');
    await e.removeContainer('web', { force: true });
    expect(httpGet('127.0.0.1', port)).toBe('');
  });

  it.skipIf(!fs.existsSync(launcher))(
    'releases the network and mounts of a detached container when it exits, and removes a detached --rm one, with no command run after',
    async () => {
      const roots = t.engine.roots;
      const e = openLocalEngine(roots, { exitCommand: [launcher, '--root', roots.root, '--run-root', roots.runRoot] });
      const before = hostVeths();
      const c = await e.createContainer({ image: 'busybox', command: ['sleep', '2'] }); // long enough to be seen running on a busy host
      await e.startContainer(c.id);
      const netns = path.join(roots.runRoot, 'netns', c.id);
      const veths = [...hostVeths()].filter((v) => !before.has(v));
      expect(veths).toHaveLength(1);
      expect(fs.existsSync(netns)).toBe(true);
      const mounted = (): boolean => fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(c.id);
      // only the file system is watched: every engine call below would collect the exit itself
      await waitUntil('the exit command to release the network', () => !fs.existsSync(netns) && !fs.existsSync(`/sys/class/net/${veths[0]}`) && !mounted());
      const after = await e.inspectContainer(c.id);
      expect(after.state).toMatchObject({ status: 'exited', exitCode: 0 });

      const rm = await e.createContainer({ image: 'busybox', command: ['true'], autoRemove: true });
      await e.startContainer(rm.id);
      await waitUntil('the exit command to remove the --rm container', () => !fs.existsSync(path.join(roots.root, 'containers', rm.id)));
      expect([...hostVeths()].filter((v) => !before.has(v))).toEqual([]);
      await expect(e.inspectContainer(rm.id)).rejects.toThrow(/no such container|not found/i);

      // a stop or rm -f collects the exit it causes: it tells the shim so (no exit command), and the network goes with it
      const s = await e.createContainer({ image: 'busybox', command: ['sleep', '30'] });
      await e.startContainer(s.id);
      await e.stopContainer(s.id, { timeoutSeconds: 0 });
      expect(await cleanupRuns(s.id, 1000)).toBe(false);
      expect([...hostVeths()].filter((v) => !before.has(v))).toEqual([]);
      expect(fs.existsSync(path.join(roots.runRoot, 'netns', s.id))).toBe(false);
      await e.startContainer(s.id); // detached again: a new shim, with the exit command
      await e.removeContainer(s.id, { force: true });
      expect(await cleanupRuns(s.id, 1000)).toBe(false);
      expect([...hostVeths()].filter((v) => !before.has(v))).toEqual([]);
    },
    60_000,
  );
});
