/**
 * `runtime exec` of a process into a running container, with the caller's
 * stdio (or none, detached), and Docker's exit codes for a process that
 * cannot run.
 */
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { EngineFailure } from '../errors.js';
import { signalNumber } from './oci-spec.js';

/** Docker's exit codes for a process that could not be run: 127 not found, 126 not executable, else 125. */
export const startFailureCode = (msg: string): number => {
  if (/not found|no such file|ENOENT/i.test(msg)) return 127;
  if (/permission denied|EACCES|is a directory|EISDIR|exec format|ENOEXEC/i.test(msg)) return 126;
  return 125;
};

export interface RuntimeExecOptions {
  readonly runtime: string;
  readonly runtimeRoot: string;
  readonly id: string;
  /** The container's name, for messages. */
  readonly name: string;
  /** The OCI process (process.json) to run. */
  readonly processFile: string;
  readonly tty: boolean;
  readonly stdin: boolean;
  readonly detach: boolean;
}

/** Resolves with the process's exit code (0 when detached). */
export const runtimeExec = async (o: RuntimeExecOptions): Promise<{ exitCode: number }> => {
  const args = ['--root', o.runtimeRoot, 'exec', '--process', o.processFile];
  if (o.tty) args.push('--tty');
  if (o.detach) args.push('--detach');
  args.push(o.id);
  // a detached process keeps whatever fds it got: give it none of ours (the runtime's errors go to a file)
  const errFile = `${o.processFile}.err`;
  const errFd = o.detach ? await fsp.open(errFile, 'w') : undefined;
  try {
    return await new Promise((resolve, reject) => {
      let errText = '';
      const child = spawn(o.runtime, args, {
        stdio: [o.detach ? 'ignore' : o.stdin || o.tty ? 'inherit' : 'ignore', o.detach ? 'ignore' : 'inherit', errFd ? errFd.fd : 'pipe'],
      });
      child.stderr?.on('data', (d: Buffer) => {
        errText += d.toString();
        process.stderr.write(d);
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        void (async () => {
          if (errFd) errText = await fsp.readFile(errFile, 'utf8').catch(() => '');
          if (code === null) return resolve({ exitCode: 128 + (signalNumber(signal ?? 'KILL') ?? 9) });
          if (code !== 0 && /exec: /.test(errText)) {
            const mapped = startFailureCode(errText);
            if (mapped !== 125) return resolve({ exitCode: mapped });
          }
          if (o.detach && code !== 0) return reject(new EngineFailure({ _tag: 'Internal', message: `exec in ${o.name}: ${errText.trim()}` }));
          resolve({ exitCode: o.detach ? 0 : code });
        })();
      });
    });
  } finally {
    await errFd?.close();
    await fsp.rm(errFile, { force: true });
  }
};
