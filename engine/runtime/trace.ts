/**
 * BERTH_TRACE=1: phase timings on stderr (for bench/containers/STARTUP.md
 * and ENGINE-PATH.md). Each line gives the time since the previous line and
 * since the process started (performance.now()), e.g.
 * `trace start: rootfs mounted +4.2ms @131.0ms`.
 *
 * The variable is read at the first call, never while a module is
 * evaluated: a module-level read would be baked into berth's start-up
 * snapshot, and a run with BERTH_TRACE set would then leave the snapshot for
 * the plain entry (cli/snapshot.ts), which is not what is to be measured.
 * Once, not at every call: a run asks ~60 times, and each read of
 * process.env is a lookup in the C environment.
 */

let traceSet: boolean | undefined;

/** Whether BERTH_TRACE=1 was set when this process first asked. */
export const tracing = (): boolean => (traceSet ??= process.env['BERTH_TRACE'] === '1');

let last = 0;

/** One trace line, when tracing. */
export const trace = (what: string): void => {
  if (!tracing()) return;
  const t = performance.now();
  process.stderr.write(`trace ${what} +${(t - last).toFixed(1)}ms @${t.toFixed(1)}ms\n`);
  last = t;
};
