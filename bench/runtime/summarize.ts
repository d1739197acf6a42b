// Merges the per-runtime hyperfine exports of bench/runtime/run.sh
// (WORK/{run,cycle}-RUNTIME.json) into OUT/runtime-{run,cycle}.json, and
// prints (and writes to OUT/runtime.md) medians and ratios to runc.
// Usage: node dist/bench/runtime/summarize.js WORK OUT
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';

const Result = t.type({ command: t.string, median: t.number, stddev: t.union([t.number, t.null]), times: t.array(t.number) });
type Result = t.TypeOf<typeof Result>;
const Export = t.type({ results: t.array(Result) });

function load(file: string): Result[] {
  const decoded = Export.decode(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (isLeft(decoded)) throw new Error(`${file}: not a hyperfine JSON export`);
  return decoded.right.results;
}

const [work, outDir] = process.argv.slice(2);
if (work === undefined || outDir === undefined) throw new Error('usage: summarize.js WORK OUT');
const benches = [
  { key: 'run', title: '`run` /bin/true' },
  { key: 'cycle', title: 'create+start+delete' },
] as const;
const data: Record<string, Result[]> = {};
for (const b of benches) {
  const files = fs.readdirSync(work).filter((f) => f.startsWith(`${b.key}-`) && f.endsWith('.json')).sort();
  data[b.key] = files.flatMap((f) => load(path.join(work, f)));
  fs.writeFileSync(path.join(outDir, `runtime-${b.key}.json`), JSON.stringify({ results: data[b.key] }, null, 2) + '\n');
}
const runtimes = [...new Set(benches.flatMap((b) => data[b.key]!.map((r) => r.command)))];

const ms = (s: number) => (s * 1000).toFixed(1);
const header = ['runtime', ...benches.flatMap((b) => [`${b.title} median (ms)`, 'vs runc'])];
const rows = runtimes.map((rt) => [
  rt,
  ...benches.flatMap((b) => {
    const results = data[b.key] ?? [];
    const mine = results.find((r) => r.command === rt);
    const runc = results.find((r) => r.command === 'runc');
    if (!mine) return ['-', '-'];
    const spread = mine.stddev === null ? '' : ` ± ${ms(mine.stddev)}`;
    return [`${ms(mine.median)}${spread} (n=${mine.times.length})`, runc ? `${(mine.median / runc.median).toFixed(2)}x` : '-'];
  }),
]);
const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
fs.writeFileSync(path.join(outDir, 'runtime.md'), table + '\n');
fs.writeFileSync(path.join(outDir, 'runtime-summary.json'), JSON.stringify(Object.fromEntries(runtimes.map((rt) => [
  rt, Object.fromEntries(benches.map((b) => [b.key, data[b.key]?.find((r) => r.command === rt)?.median ?? null])),
])), null, 2) + '\n');
console.log(table);
