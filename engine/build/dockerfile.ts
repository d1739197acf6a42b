/**
 * The Dockerfile parser (pure): lines -> instructions, as Docker's classic
 * builder reads them.
 *
 * - Parser directives: `# escape=\`` (or `\`) and `# syntax=...` (ignored)
 *   only in the leading comment lines, before any blank line or instruction.
 * - A line ending in the escape character (trailing blanks allowed) goes on
 *   with the next one; comment lines and blank lines inside a continuation
 *   are dropped.
 * - An instruction is its keyword (any case) and the rest; leading
 *   `--name=value` flags are split off; a rest that is a JSON array of
 *   strings is the exec form (`json`).
 *
 * Substitution (`expandWord`, `expandWords`) follows Docker's shell lexer:
 * `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
 * `${VAR+word}`, `${VAR:?msg}`; single quotes are literal; double quotes
 * keep blanks and allow `$`; the escape character escapes the next one.
 * Which instructions substitute is the executor's business (builder.ts).
 */
import { fail, invalidSpec } from '../errors.js';

export interface Instruction {
  /** The keyword, upper case (`RUN`). */
  readonly cmd: string;
  /** 1-based line where it starts. */
  readonly line: number;
  /** The instruction as written, continuations joined (for messages and history). */
  readonly original: string;
  /** Leading flags, `--from=x` -> ["from", "x"]; a flag without `=` has value undefined. */
  readonly flags: readonly (readonly [string, string | undefined])[];
  /** What follows the keyword and the flags, trimmed. */
  readonly rest: string;
  /** The exec (JSON) form, when `rest` is a JSON array of strings. */
  readonly json?: readonly string[];
}

export interface Dockerfile {
  /** Names the file in errors. */
  readonly file: string;
  readonly escape: string;
  readonly instructions: readonly Instruction[];
}

export const KNOWN = new Set([
  'FROM', 'RUN', 'CMD', 'LABEL', 'MAINTAINER', 'EXPOSE', 'ENV', 'ADD', 'COPY', 'ENTRYPOINT', 'VOLUME', 'USER', 'WORKDIR',
  'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'SHELL',
]);

const problem = (file: string, line: number, what: string): never => fail(invalidSpec(`${file}:${line}`, [what]));

/** `line` with a trailing escape character (and blanks after it) removed, or undefined if it does not continue. */
const continued = (line: string, escape: string): string | undefined => {
  const t = line.replace(/[ \t\r]+$/, '');
  if (!t.endsWith(escape)) return undefined;
  // an escaped escape character (`\\` at the end) does not continue the line
  let n = 0;
  for (let i = t.length - 1; i >= 0 && t[i] === escape; i--) n++;
  return n % 2 === 1 ? t.slice(0, -1) : undefined;
};

const parseJsonArray = (s: string): string[] | undefined => {
  if (!s.startsWith('[')) return undefined;
  try {
    const v = JSON.parse(s) as unknown;
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
};

/** Leading `--flag[=value]` words of `s`, and what follows them. */
const splitFlags = (s: string): { flags: [string, string | undefined][]; rest: string } => {
  const flags: [string, string | undefined][] = [];
  let rest = s;
  for (;;) {
    const m = /^--([A-Za-z][A-Za-z0-9-]*)(?:=("[^"]*"|\S*))?(?:\s+|$)/.exec(rest);
    if (!m) break;
    const raw = m[2];
    flags.push([(m[1] as string).toLowerCase(), raw === undefined ? undefined : raw.startsWith('"') ? raw.slice(1, -1) : raw]);
    rest = rest.slice(m[0].length);
  }
  return { flags, rest: rest.trim() };
};

/** Parse a Dockerfile's text. Unknown instructions are errors naming the line. */
export const parseDockerfile = (text: string, file = 'Dockerfile'): Dockerfile => {
  const lines = text.split('\n');
  let escape = '\\';
  let i = 0;
  // parser directives: `# key=value` lines at the very top
  const seen = new Set<string>();
  for (; i < lines.length; i++) {
    const m = /^#\s*([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*?)\s*$/.exec(lines[i] as string);
    if (!m) break;
    const key = (m[1] as string).toLowerCase();
    if (key !== 'escape' && key !== 'syntax' && key !== 'check') break; // an ordinary comment ends the directives
    if (seen.has(key)) problem(file, i + 1, `the parser directive ${key} appears twice; keep one`);
    seen.add(key);
    if (key === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') problem(file, i + 1, `invalid escape character ${JSON.stringify(m[2])}: use \\ or \``);
      escape = m[2] as string;
    }
  }
  const out: Instruction[] = [];
  while (i < lines.length) {
    const raw = lines[i] as string;
    const start = i + 1;
    i++;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    let text = raw.replace(/^\s+/, '');
    let c = continued(text, escape);
    while (c !== undefined) {
      text = c;
      // blank and comment lines inside a continuation are skipped
      while (i < lines.length && ((lines[i] as string).trim() === '' || (lines[i] as string).trim().startsWith('#'))) i++;
      if (i >= lines.length) break;
      const next = lines[i] as string;
      i++;
      text += next;
      c = continued(text, escape);
    }
    text = text.replace(/[ \t\r]+$/, '');
    const m = /^(\S+)\s*([\s\S]*)$/.exec(text) as RegExpExecArray;
    const cmd = (m[1] as string).toUpperCase();
    if (!KNOWN.has(cmd)) {
      problem(file, start, `unknown instruction ${JSON.stringify(m[1])}: expected one of ${[...KNOWN].join(', ')}`);
    }
    const { flags, rest } = splitFlags(m[2] as string);
    const json = parseJsonArray(rest);
    out.push({ cmd, line: start, original: text, flags, rest, ...(json !== undefined ? { json } : {}) });
  }
  return { file, escape, instructions: out };
};

/* ------------------------------------------------------------ substitution */

export type Lookup = (name: string) => string | undefined;

const isNameStart = (ch: string | undefined): boolean => ch !== undefined && /[A-Za-z_]/.test(ch);
const isNameChar = (ch: string | undefined): boolean => ch !== undefined && /[A-Za-z0-9_]/.test(ch);

/**
 * A small recursive-descent lexer over one string; `split` breaks words at
 * unquoted blanks.
 */
class Lexer {
  pos = 0;
  constructor(readonly s: string, readonly env: Lookup, readonly escape: string, readonly where: string) {}

  words(split: boolean): string[] {
    const out: string[] = [];
    let cur = '';
    let has = false;
    while (this.pos < this.s.length) {
      const ch = this.s[this.pos] as string;
      if (split && (ch === ' ' || ch === '\t' || ch === '\n')) {
        this.pos++;
        if (has) out.push(cur);
        cur = '';
        has = false;
        continue;
      }
      cur += this.unit();
      has = true;
    }
    if (has) out.push(cur);
    return out;
  }

  /** One syntactic unit at pos: a quoted run, an escape, a variable or a plain character. */
  unit(): string {
    const ch = this.s[this.pos] as string;
    if (ch === this.escape) {
      this.pos++;
      if (this.pos >= this.s.length) return ch;
      return this.s[this.pos++] as string;
    }
    if (ch === "'") {
      const end = this.s.indexOf("'", this.pos + 1);
      if (end < 0) fail(invalidSpec(this.where, [`unmatched single quote in ${JSON.stringify(this.s)}`]));
      const v = this.s.slice(this.pos + 1, end);
      this.pos = end + 1;
      return v;
    }
    if (ch === '"') {
      this.pos++;
      let v = '';
      for (;;) {
        if (this.pos >= this.s.length) fail(invalidSpec(this.where, [`unmatched double quote in ${JSON.stringify(this.s)}`]));
        const c = this.s[this.pos] as string;
        if (c === '"') {
          this.pos++;
          return v;
        }
        if (c === this.escape) {
          const n = this.s[this.pos + 1];
          if (n === '"' || n === '$' || n === this.escape) {
            v += n;
            this.pos += 2;
            continue;
          }
          v += c;
          this.pos++;
          continue;
        }
        if (c === '$') {
          v += this.variable();
          continue;
        }
        v += c;
        this.pos++;
      }
    }
    if (ch === '$') return this.variable();
    this.pos++;
    return ch;
  }

  /** At a `$`: the variable's value, or a literal `$`. */
  variable(): string {
    this.pos++; // $
    const ch = this.s[this.pos];
    if (ch === '{') {
      this.pos++;
      const nameStart = this.pos;
      while (isNameChar(this.s[this.pos])) this.pos++;
      const name = this.s.slice(nameStart, this.pos);
      if (name === '') fail(invalidSpec(this.where, [`bad substitution in ${JSON.stringify(this.s)}: expected a variable name after \${`]));
      if (this.s[this.pos] === '}') {
        this.pos++;
        return this.env(name) ?? '';
      }
      if (this.pos >= this.s.length) fail(invalidSpec(this.where, [`missing '}' in ${JSON.stringify(this.s)}`]));
      let op = '';
      if (this.s[this.pos] === ':') {
        op = ':';
        this.pos++;
      }
      const kind = this.s[this.pos];
      if (kind !== '-' && kind !== '+' && kind !== '?') {
        fail(invalidSpec(this.where, [`unsupported modifier ${JSON.stringify(op + (kind ?? ''))} in \${${name}...} of ${JSON.stringify(this.s)}: use :-, :+, :?, - or +`]));
      }
      op += kind;
      this.pos++;
      let word = '';
      while (this.pos < this.s.length && this.s[this.pos] !== '}') word += this.unit();
      if (this.s[this.pos] !== '}') fail(invalidSpec(this.where, [`missing '}' in ${JSON.stringify(this.s)}`]));
      this.pos++;
      const v = this.env(name);
      switch (op) {
        case ':-': return v === undefined || v === '' ? word : v;
        case '-': return v === undefined ? word : v;
        case ':+': return v === undefined || v === '' ? '' : word;
        case '+': return v === undefined ? '' : word;
        default: // ':?' and '?'
          if (v === undefined || (op === ':?' && v === '')) fail(invalidSpec(this.where, [`${name}: ${word || 'is not set'}`]));
          return v as string;
      }
    }
    if (isNameStart(ch)) {
      const nameStart = this.pos;
      while (isNameChar(this.s[this.pos])) this.pos++;
      return this.env(this.s.slice(nameStart, this.pos)) ?? '';
    }
    return '$';
  }
}

/** One word: quotes removed, escapes applied, variables substituted (blanks kept). */
export const expandWord = (s: string, env: Lookup, escape = '\\', where = 'Dockerfile'): string => new Lexer(s, env, escape, where).words(false).join('');

/** Words split at unquoted blanks, each substituted. */
export const expandWords = (s: string, env: Lookup, escape = '\\', where = 'Dockerfile'): string[] => new Lexer(s, env, escape, where).words(true);

/** Split at unquoted blanks, keeping quotes and escapes as written (for key=value lists). */
export const splitRaw = (s: string, escape = '\\'): string[] => {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i] as string;
    if (quote === undefined && ch === escape && i + 1 < s.length) {
      cur += ch + (s[++i] as string);
      continue;
    }
    if (quote === '"' && ch === escape && i + 1 < s.length) {
      cur += ch + (s[++i] as string);
      continue;
    }
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      cur += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      quote = ch;
      cur += ch;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\n') {
      if (cur !== '') out.push(cur);
      cur = '';
      continue;
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
};

/**
 * `ENV`/`LABEL` pairs: `k=v k2="v 2"`, or the legacy `k value with blanks`
 * (one pair). Values substituted with `env`.
 */
export const parsePairs = (ins: Instruction, env: Lookup, escape: string, where: string, legacy: boolean): [string, string][] => {
  const words = splitRaw(ins.rest, escape);
  if (words.length === 0) fail(invalidSpec(where, [`${ins.cmd} needs at least one key=value`]));
  if (!(words[0] as string).includes('=')) {
    if (!legacy) fail(invalidSpec(where, [`${ins.cmd} ${ins.rest}: expected key=value`]));
    const key = expandWord(words[0] as string, env, escape, where);
    if (words.length < 2) fail(invalidSpec(where, [`${ins.cmd} ${key} needs a value: write ${ins.cmd} ${key}=value`]));
    const value = ins.rest.slice(ins.rest.indexOf(words[0] as string) + (words[0] as string).length).trim();
    return [[key, expandWord(value, env, escape, where)]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) fail(invalidSpec(where, [`${ins.cmd}: ${JSON.stringify(w)} is not key=value`]));
    return [expandWord(w.slice(0, eq), env, escape, where), expandWord(w.slice(eq + 1), env, escape, where)];
  });
};
