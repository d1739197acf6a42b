// berth-runtime's `start` done in the engine (engine/runtime/fifo-start.ts),
// on real FIFOs with real writer processes standing in for the container's
// init: the byte taken and the fifo removed (the runtime's state then reads
// "running"), an init that closes its end without writing or dies before it
// opens it, and a second start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFromFifo } from '../../../engine/runtime/fifo-start.js';

let root = '';
let n = 0;

/** A state dir with an exec.fifo, as `berth-runtime create` leaves it. */
const created = (): { id: string; fifo: string } => {
  const id = `c${++n}`;
  fs.mkdirSync(path.join(root, id));
  const fifo = path.join(root, id, 'exec.fifo');
  expect(spawnSync('mkfifo', ['-m', '600', fifo]).status).toBe(0);
  return { id, fifo };
};
/** A process that opens the fifo for writing (blocking until a reader comes, as the init does) and runs `then`. */
const init = (fifo: string, then: string): ChildProcess => spawn('sh', ['-c', `exec 3>"$1"; ${then}`, 'init', fifo], { stdio: 'ignore' });
const alive = (p: ChildProcess) => (): boolean => p.exitCode === null && p.signalCode === null;
const exited = (p: ChildProcess): Promise<number | null> =>
  p.exitCode !== null || p.signalCode !== null ? Promise.resolve(p.exitCode) : new Promise((r) => p.once('exit', (code) => r(code)));

describe('start through exec.fifo', () => {
  beforeAll(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-test-fifo-start-'));
  });
  afterAll(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });

  it('lets the init go on, takes its byte and removes the fifo', async () => {
    const { id, fifo } = created();
    // the init writes its byte, then "execs" (here: exits 7 after the write went through)
    const p = init(fifo, 'printf 0 >&3; exit 7');
    expect(await startFromFifo(root, id, alive(p))).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await exited(p)).toBe(7);
    expect(fs.existsSync(fifo)).toBe(false);
  });

  it('works when the init reaches its open only after the start began', async () => {
    const { id, fifo } = created();
    let p: ChildProcess | undefined;
    const later = setTimeout(() => {
      p = init(fifo, 'printf 0 >&3');
    }, 150);
    const r = await startFromFifo(root, id, () => p === undefined || alive(p)());
    clearTimeout(later);
    expect(r.code).toBe(0);
    expect(fs.existsSync(fifo)).toBe(false);
    if (p) await exited(p);
  });

  it('fails, naming the container, when the init closes its end without writing', async () => {
    const { id, fifo } = created();
    const p = init(fifo, 'exec 3>&-; sleep 5');
    const r = await startFromFifo(root, id, alive(p));
    p.kill('SIGKILL');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toBe(`berth-runtime: container "${id}": its init process exited before start\n`);
    expect(fs.existsSync(fifo)).toBe(true); // not started: the state still reads "created"
  });

  it('fails when the init died before it opened the fifo (no writer ever comes)', async () => {
    const { id, fifo } = created();
    const p = spawn('sh', ['-c', 'exit 1'], { stdio: 'ignore' });
    await exited(p);
    const t0 = Date.now();
    const r = await startFromFifo(root, id, alive(p));
    expect(r.stderr).toBe(`berth-runtime: container "${id}": its init process exited before start\n`);
    expect(Date.now() - t0).toBeLessThan(5_000); // the life check ends the wait
    expect(fs.existsSync(fifo)).toBe(true);
  });

  it('says a started container was already started', async () => {
    const { id, fifo } = created();
    const p = init(fifo, 'printf 0 >&3');
    expect((await startFromFifo(root, id, alive(p))).code).toBe(0);
    await exited(p);
    const again = await startFromFifo(root, id, () => true);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toBe(`berth-runtime: container "${id}": was already started\n`);
  });
});
