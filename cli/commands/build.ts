/**
 * `berth build`: an image from a Dockerfile and a context directory, with
 * the output of Docker's classic builder (`Step 2/5 : RUN ...`, ` --->
 * Using cache`, `Successfully built ...`). `-q` prints only the image ID,
 * `--json` the result as JSON.
 */
import * as path from 'node:path';
import type { Command } from 'commander';
import type { BuildEvent } from '../../engine/engine.js';
import { invalidSpec, EngineFailure } from '../../engine/errors.js';
import { context } from '../context.js';
import { emit } from '../output.js';
import { guard } from '../run.js';

const collect = (v: string, acc: string[]): string[] => [...acc, v];
const short = (id: string): string => id.replace(/^sha256:/, '').slice(0, 12);

/** `K=V` (or `K`, taking V from the environment, as Docker) -> a record; bad entries are an error naming them. */
export const parseBuildArgs = (list: readonly string[], env: NodeJS.ProcessEnv = process.env): Record<string, string> => {
  const out: Record<string, string> = {};
  const problems: string[] = [];
  for (const a of list) {
    const eq = a.indexOf('=');
    const k = eq < 0 ? a : a.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      problems.push(`${JSON.stringify(a)}: expected NAME=value (NAME of letters, digits and _, not starting with a digit)`);
      continue;
    }
    if (eq < 0) {
      const v = env[k];
      if (v === undefined) continue; // as Docker: a bare NAME not in the environment is left out
      out[k] = v;
    } else out[k] = a.slice(eq + 1);
  }
  if (problems.length > 0) throw new EngineFailure(invalidSpec('--build-arg', problems));
  return out;
};

export const registerBuildCommands = (program: Command): void => {
  program
    .command('build')
    .description('build an image from a Dockerfile (classic builder: one layer per RUN, COPY, ADD)')
    .argument('<context>', 'the build context: a directory')
    .option('-t, --tag <name>', 'name the result (repeatable)', collect, [])
    .option('-f, --file <Dockerfile>', 'the Dockerfile (default: CONTEXT/Dockerfile)')
    .option('--build-arg <NAME=value>', 'a build arg (repeatable)', collect, [])
    .option('--label <key=value>', 'a label on the result (repeatable)', collect, [])
    .option('--target <stage>', 'build up to this stage')
    .option('--no-cache', 'run every step (results are still cached)')
    .option('-q, --quiet', 'print only the image ID')
    .action(
      guard(async (ctxDir: string, o: { tag: string[]; file?: string; buildArg: string[]; label: string[]; target?: string; cache: boolean; quiet?: boolean }, c: Command) => {
        const ctx = context(c);
        const buildArgs = parseBuildArgs(o.buildArg);
        const labels: Record<string, string> = {};
        for (const l of o.label) {
          const eq = l.indexOf('=');
          if (eq <= 0) throw new EngineFailure(invalidSpec('--label', [`${JSON.stringify(l)}: expected key=value`]));
          labels[l.slice(0, eq)] = l.slice(eq + 1);
        }
        const { engineFor } = await import('./containers.js');
        const engine = await engineFor(c);
        const quiet = o.quiet === true || ctx.opts.json;
        const out = (s: string): void => {
          if (!quiet) process.stdout.write(s);
        };
        let atLineStart = true;
        const view = (ev: BuildEvent): void => {
          switch (ev.type) {
            case 'step':
              out(`${atLineStart ? '' : '\n'}Step ${ev.step}/${ev.total} : ${ev.instruction}\n`);
              atLineStart = true;
              return;
            case 'cached':
              out(' ---> Using cache\n');
              return;
            case 'running':
              out(` ---> Running in ${short(ev.container)}\n`);
              return;
            case 'removed':
              out(`${atLineStart ? '' : '\n'}Removing intermediate container ${short(ev.container)}\n`);
              atLineStart = true;
              return;
            case 'output':
              if (quiet) return;
              (ev.stream === 'stderr' ? process.stderr : process.stdout).write(ev.text);
              atLineStart = ev.text.endsWith('\n');
              return;
            case 'done':
              out(`${atLineStart ? '' : '\n'} ---> ${short(ev.imageId)}\n`);
              atLineStart = true;
              return;
            case 'warning':
              process.stderr.write(`[warning] ${ev.text}\n`);
              return;
          }
        };
        const r = await engine.buildImage({
          context: ctxDir,
          // -f is relative to where berth runs, as with docker build
          ...(o.file !== undefined ? { dockerfile: path.resolve(o.file) } : {}),
          tags: o.tag,
          buildArgs,
          ...(Object.keys(labels).length > 0 ? { labels } : {}),
          ...(o.target !== undefined ? { target: o.target } : {}),
          noCache: o.cache === false,
          onProgress: view,
        });
        if (o.quiet && !ctx.opts.json) {
          process.stdout.write(`${r.id}\n`);
          return;
        }
        emit(ctx, r, () => [`Successfully built ${short(r.id)}`, ...o.tag.map((t) => `Successfully tagged ${t}`)].join('\n'));
      }),
    );
};

export default registerBuildCommands;
