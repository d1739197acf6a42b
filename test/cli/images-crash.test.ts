// A pull killed (SIGKILL) at random points, then pulled again: the second
// pull completes, every stored blob matches its digest, every layer is
// whole, and GC removes what the killed pulls left (ingest files, extract
// directories).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, rm, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { makeTar } from '../engine/store/tars.js';
import { have, makeOciLayout, skopeo, startRegistry, type RegistryHandle } from '../engine/registry/helpers.js';

const run = promisify(execFile);
const main = path.resolve('dist/cli/main.js');
const ready = process.getuid?.() === 0 && existsSync(main) && have('docker-registry') && have('skopeo');

const hashFile = async (f: string): Promise<string> => {
  const h = createHash('sha256');
  for await (const c of createReadStream(f)) h.update(c as Buffer);
  return h.digest('hex');
};

describe.skipIf(!ready)('pull killed at random points (needs root, dist/, docker-registry, skopeo)', () => {
  let reg: RegistryHandle;
  let work: string;
  beforeAll(async () => {
    reg = await startRegistry();
    work = await mkdtemp(path.join(tmpdir(), 'berth-test-crash-'));
  });
  afterAll(async () => {
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('re-pull completes and the store is consistent', async () => {
    // four layers of incompressible data, 6 MB each, plus many small files
    const layers = [];
    for (let i = 0; i < 4; i++) {
      layers.push(
        await makeTar([
          { name: `data/big${i}`, content: randomBytes(6 << 20) },
          ...Array.from({ length: 200 }, (_, j) => ({ name: `small${i}/f${j}`, content: `file ${i}/${j}` })),
        ]),
      );
    }
    const layout = await makeOciLayout(path.join(work, 'layout'), 'v1', layers);
    await skopeo([`oci:${layout.dir}:v1`, `docker://${reg.host}/crash/img:v1`]);
    const root = path.join(work, 'root');
    const ref = `${reg.host}/crash/img:v1`;
    // how long a whole pull takes here, in a throwaway root: the kills below land inside that window
    const started = Date.now();
    await run(process.execPath, [main, '--root', path.join(work, 'timing-root'), 'pull', ref]);
    const whole = Date.now() - started;
    await rm(path.join(work, 'timing-root'), { recursive: true, force: true });
    // a seeded sequence of kill delays (ms, a share of the whole pull), logged so a failure can be replayed
    let seed = 12345;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const delays: number[] = [];
    let landed = 0;
    for (let k = 0; k < 8; k++) {
      const delay = Math.floor(whole * (0.05 + 0.6 * rand()));
      delays.push(delay);
      const child = spawn(process.execPath, [main, '--root', root, 'pull', ref], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      await new Promise((r) => setTimeout(r, delay));
      // a pull that already finished (later ones find finished layers and are quicker) is not killed
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        landed += 1;
      }
      await exited;
    }
    // the test means something only if pulls were really cut short
    expect(landed, `whole pull ${whole} ms, kill delays ${delays.join(',')}`).toBeGreaterThanOrEqual(2);
    const { stdout } = await run(process.execPath, [main, '--root', root, '--json', 'pull', ref]);
    expect((JSON.parse(stdout) as { digest: string }).digest, `kill delays ${delays.join(',')}`).toBe(layout.manifestDigest);
    // every blob matches its name
    for (const b of await readdir(path.join(root, 'images/blobs/sha256'))) {
      expect(await hashFile(path.join(root, 'images/blobs/sha256', b))).toBe(b);
    }
    // every layer is whole: its content matches the source tar's files
    const insp = JSON.parse((await run(process.execPath, [main, '--root', root, 'image', 'inspect', ref])).stdout) as Array<{ ChainIDs: string[]; Unpacked: boolean[] }>;
    expect(insp[0]?.Unpacked).toEqual([true, true, true, true]);
    for (const [i, c] of insp[0]!.ChainIDs.entries()) {
      const diff = path.join(root, 'layers', c.slice(7), 'diff');
      expect((await readFile(path.join(diff, `data/big${i}`))).length).toBe(6 << 20);
      expect(await readdir(path.join(diff, `small${i}`))).toHaveLength(200);
    }
    // leftovers of the killed pulls are garbage that prune removes
    await run(process.execPath, [main, '--root', root, 'image', 'prune']);
    expect((await readdir(path.join(root, 'layers'))).filter((n) => !/^[0-9a-f]{64}$/.test(n))).toEqual([]);
    expect(await readdir(path.join(root, 'images/ingest')).catch(() => [])).toEqual([]);
    expect((await readdir(path.join(root, 'layers'))).length).toBe(4);
  }, 180_000);
});
