/**
 * `berth-runtime start`, done in the engine's own process for the containers
 * berth-runtime created from Berth's configs (which never carry hooks). It
 * is what container_start (native/src/container.c) does when there is no
 * poststart hook to run: open the state dir's exec.fifo for reading, which
 * lets the container's init, blocked opening it for writing, go on; take the
 * one byte the init writes just before it execs the user's process; remove
 * the fifo (berth-runtime's state reads "running" from then on). It saves a
 * fork and exec of the runtime per start (3-8 ms of a `berth run` here).
 *
 * Other runtimes (runc, crun) keep their own `start`: their fifo and state
 * are theirs.
 */
import { constants, openSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Exec } from './invoke.js';

/** How often the init's life is checked while its byte is awaited (container_start polls as often). */
const ALIVE_CHECK_MS = 100;

const failed = (id: string, message: string): Exec => ({ code: 1, stdout: '', stderr: `berth-runtime: container "${id}": ${message}\n` });

/**
 * Starts container `id`, created by berth-runtime with its state in
 * `runtimeRoot`/`id`. Never throws: a failure is an Exec with a non-zero
 * code and the reason on stderr, as `runtime start` reports one. `alive`
 * tells whether the container's init still lives.
 */
export const startFromFifo = async (runtimeRoot: string, id: string, alive: () => boolean): Promise<Exec> => {
  const fifo = path.join(runtimeRoot, id, 'exec.fifo');
  let fd: number;
  try {
    // non-blocking: an open for reading returns at once, writer or not (a blocking one would wait forever
    // for an init that died before it opened its end); Node adds O_CLOEXEC
    fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return failed(id, code === 'ENOENT' ? 'was already started' : `open ${fifo}: ${(e as Error).message}`);
  }
  // the fifo as a libuv pipe: readable when the init writes its byte; until a writer has opened it, no event at all
  const reader = new net.Socket({ fd, readable: true, writable: false });
  const outcome = await new Promise<Exec | undefined>((resolve) => {
    const done = (r: Exec | undefined): void => {
      clearInterval(check);
      resolve(r);
    };
    const check = setInterval(() => {
      if (!alive()) done(failed(id, 'its init process exited before start'));
    }, ALIVE_CHECK_MS);
    reader.once('data', () => done(undefined));
    // the init closed its end without writing: it failed on its way to exec
    reader.once('end', () => done(failed(id, 'its init process exited before start')));
    reader.once('error', (e) => done(failed(id, `read ${fifo}: ${e.message}`)));
  });
  reader.destroy();
  if (outcome !== undefined) return outcome;
  rmSync(fifo, { force: true });
  return { code: 0, stdout: '', stderr: '' };
};
