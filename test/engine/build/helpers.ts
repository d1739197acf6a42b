// Build tests' helpers: a context directory from a map of files, a
// container run from a built image with its output, and what a build must
// not leave behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import type { LocalEngine } from '../../../engine/local.js';

/** Write `files` (path -> content; a trailing `/` makes a directory) under a fresh dir in `parent`. */
export const makeContext = (parent: string, files: Record<string, string>): string => {
  const dir = fs.mkdtempSync(path.join(parent, 'ctx-'));
  for (const [p, content] of Object.entries(files)) {
    const abs = path.join(dir, p);
    if (p.endsWith('/')) {
      fs.mkdirSync(abs, { recursive: true });
      continue;
    }
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
  }
  return dir;
};

/** Run `command` in a container of `image` (network none) and return its exit code and output. */
export const runIn = async (engine: LocalEngine, image: string, command?: string[]): Promise<{ exitCode: number; out: string }> => {
  const info = await engine.createContainer({ image, ...(command ? { command } : {}), networkMode: 'none' });
  let out = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString('utf8');
      cb();
    },
  });
  try {
    const { session } = await engine.containers.startAttached(info.id, { stdout: w, stderr: w, tty: false });
    await session.done;
    const { exitCode } = await engine.waitContainer(info.id);
    return { exitCode, out };
  } finally {
    await engine.removeContainer(info.id, { force: true, volumes: true });
  }
};

/** What a build may leave on the host besides its images and cache: nothing. */
export const leftovers = async (engine: LocalEngine, dir: string): Promise<string[]> => {
  const out: string[] = [];
  for (const c of await engine.listContainers({ all: true })) out.push(`container ${c.name}`);
  for (const v of await engine.listVolumes()) out.push(`volume ${v.name}`);
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => m !== undefined && m.startsWith(dir));
  for (const m of mounts) out.push(`mount ${m}`);
  const tmp = path.join(engine.roots.root, 'build', 'tmp');
  if (fs.existsSync(tmp)) for (const n of fs.readdirSync(tmp)) out.push(`build tmp ${n}`);
  return out;
};
