/**
 * Per-layer progress for pull and push: cli-progress bars on a TTY, one log
 * line per finished layer otherwise (and nothing with --json).
 */
import cliProgress from 'cli-progress';
import type { ProgressEvent, ProgressSink } from '../engine/registry/progress.js';
import { shortId } from '../engine/store/digest.js';
import type { CliContext } from './context.js';
import { humanSize } from './output.js';

export interface ProgressView {
  readonly sink: ProgressSink;
  stop(): void;
}

const LABEL: Record<string, string> = {
  exists: 'Already exists',
  waiting: 'Waiting',
  downloading: 'Downloading',
  unpacking: 'Unpacking',
  uploading: 'Pushing',
  mounted: 'Mounted from another repository',
  done: 'Done',
};

export const progressView = (ctx: CliContext, verbDone: string): ProgressView => {
  if (ctx.opts.json) return { sink: () => undefined, stop: () => undefined };
  if (!process.stderr.isTTY) {
    return {
      sink: (e: ProgressEvent) => {
        if (e.kind === 'layer' && (e.state === 'done' || e.state === 'exists' || e.state === 'mounted')) {
          process.stderr.write(`${shortId(e.digest)}: ${e.state === 'done' ? verbDone : LABEL[e.state]}\n`);
        }
      },
      stop: () => undefined,
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      stream: process.stderr,
      format: '{id}: {state} [{bar}] {have}/{size}',
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      autopadding: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    sink: (e) => {
      if (e.kind !== 'layer') return;
      const payload = { id: shortId(e.digest), state: (e.state === 'done' ? verbDone : LABEL[e.state] ?? e.state).padEnd(12), have: humanSize(e.current), size: humanSize(e.total) };
      let bar = bars.get(e.digest);
      if (!bar) {
        bar = multi.create(Math.max(1, e.total), 0, payload);
        bars.set(e.digest, bar);
      }
      bar.update(Math.min(e.current, Math.max(1, e.total)), payload);
    },
    stop: () => multi.stop(),
  };
};
