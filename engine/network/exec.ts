/**
 * Runs the host tools that networking drives (ip, nft, unshare, nsenter):
 * argv arrays, never a shell, through the engine's process helper
 * (engine/runtime/helper.ts); a failure becomes a Kernel error naming the
 * command and carrying its stderr.
 */
import { EngineFailure } from '../errors.js';
import { execProgram } from '../runtime/helper.js';

export interface RunResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** Runs argv with `input` on stdin; resolves whatever the exit status. */
export const runRaw = (argv: readonly string[], input?: string): Promise<RunResult> => execProgram(argv, input);

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
