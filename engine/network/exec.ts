/**
 * Runs the host tools that networking drives (ip, nft, unshare, nsenter):
 * argv arrays, never a shell; a failure becomes a Kernel error naming the
 * command and carrying its stderr.
 */
import { spawn } from 'node:child_process';
import { EngineFailure } from '../errors.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** Runs argv with `input` on stdin; resolves whatever the exit status. */
export const runRaw = (argv: readonly string[], input?: string): Promise<RunResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), code: code ?? (signal ? 128 : 1) }),
    );
    child.stdin.on('error', () => undefined); // a tool that exits early closes its stdin
    child.stdin.end(input ?? '');
  });

/** Runs argv; a non-zero exit is a Kernel failure whose message is the tool's stderr. */
export const run = async (argv: readonly string[], input?: string, what?: string): Promise<string> => {
  let r: RunResult;
  try {
    r = await runRaw(argv, input);
  } catch (e) {
    const ne = e as NodeJS.ErrnoException;
    throw new EngineFailure(
      { _tag: 'Kernel', syscall: 'execve', errno: ne.code ?? 'EUNKNOWN', path: argv[0]!, message: `${ne.message}; is ${argv[0]} installed (iproute2, nftables, util-linux)?` },
      { cause: e },
    );
  }
  if (r.code !== 0) {
    const msg = r.stderr.trim().split('\n').slice(-4).join('; ') || `exit status ${r.code}`;
    throw new EngineFailure({ _tag: 'Kernel', syscall: argv[0]!, errno: 'EEXIT', path: what ?? argv.slice(1, 4).join(' '), message: msg });
  }
  return r.stdout;
};
