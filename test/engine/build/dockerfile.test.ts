// The Dockerfile parser and Docker's substitution rules (pure), and the
// context's .dockerignore and wildcard patterns.
import { describe, expect, it } from 'vitest';
import { EngineFailure, renderError } from '../../../engine/errors.js';
import { globToRegExp, parseDockerignore } from '../../../engine/build/context.js';
import { expandWord, expandWords, parseDockerfile, parsePairs, splitRaw } from '../../../engine/build/dockerfile.js';

const env = (vars: Record<string, string>) => (n: string): string | undefined => vars[n];
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    if (e instanceof EngineFailure) return renderError(e.error);
    throw e;
  }
  throw new Error('no error');
};

describe('parseDockerfile', () => {
  it('reads keywords in any case, with their line numbers and the rest trimmed', () => {
    const df = parseDockerfile('from busybox\n\nRun   echo hi  \nCMD ["sh"]\n');
    expect(df.instructions.map((i) => [i.cmd, i.line, i.rest])).toEqual([['FROM', 1, 'busybox'], ['RUN', 3, 'echo hi'], ['CMD', 4, '["sh"]']]);
  });

  it('joins continuation lines and drops comment and blank lines inside them', () => {
    const df = parseDockerfile('FROM x\nRUN echo a \\\n# a comment\n\n    b \\\n  c\nRUN d\n');
    expect(df.instructions[1]).toMatchObject({ cmd: 'RUN', line: 2, rest: 'echo a     b   c' });
    expect(df.instructions[2]).toMatchObject({ cmd: 'RUN', line: 7, rest: 'd' });
  });

  it('keeps an escaped escape character at the end of a line (no continuation)', () => {
    const df = parseDockerfile('FROM x\nRUN echo a\\\\\nRUN b\n');
    expect(df.instructions.map((i) => i.rest)).toEqual(['x', 'echo a\\\\', 'b']);
  });

  it('takes `# escape=`` from the first lines and continues lines with a backtick', () => {
    const df = parseDockerfile('# escape=`\nFROM x\nRUN dir c:\\ `\n  /w\n');
    expect(df.escape).toBe('`');
    expect(df.instructions[1]?.rest).toBe('dir c:\\   /w');
  });

  it('treats `# escape=` after an instruction or a comment as a plain comment', () => {
    expect(parseDockerfile('FROM x\n# escape=`\nRUN a \\\n b\n').escape).toBe('\\');
    expect(parseDockerfile('# hello\n# escape=`\nFROM x\n').escape).toBe('\\');
  });

  it('refuses an invalid escape character', () => {
    expect(errorOf(() => parseDockerfile('# escape=x\nFROM y\n'))).toMatch(/Dockerfile:1: invalid escape character "x"/);
  });

  it('splits leading flags and recognizes the JSON (exec) form', () => {
    const df = parseDockerfile('FROM x\nCOPY --from=build --chown=1:2 a b /c/\nRUN ["echo", "hi"]\nRUN [not json\nCMD ["a", 1]\n');
    expect(df.instructions[1]).toMatchObject({ flags: [['from', 'build'], ['chown', '1:2']], rest: 'a b /c/' });
    expect(df.instructions[2]?.json).toEqual(['echo', 'hi']);
    expect(df.instructions[3]?.json).toBeUndefined();
    expect(df.instructions[4]?.json).toBeUndefined(); // not all strings: shell form
  });

  it('names the file, the line and the known instructions for an unknown one', () => {
    expect(errorOf(() => parseDockerfile('FROM x\nRUNN echo\n', 'app/Dockerfile'))).toMatch(/^app\/Dockerfile:2: unknown instruction "RUNN": expected one of FROM, RUN/);
  });
});

describe('substitution', () => {
  const vars = env({ A: 'one', E: '', SP: 'a b' });

  it('expands $VAR and ${VAR}, unset as empty', () => {
    expect(expandWord('$A/${A}x/$NOPE.', vars)).toBe('one/onex/.');
  });

  it('applies :- - :+ + modifiers', () => {
    expect(expandWord('${NOPE:-d} ${E:-d} ${E-d} ${NOPE-d}', vars)).toBe('d d  d');
    expect(expandWord('${A:+set} ${E:+set} ${E+set} ${NOPE+set}', vars)).toBe('set  set ');
    expect(expandWord('${NOPE:-${A}-x}', vars)).toBe('one-x');
  });

  it('fails ${VAR:?msg} when unset, naming the variable', () => {
    expect(errorOf(() => expandWord('${NOPE:?give NOPE}', vars))).toMatch(/NOPE: give NOPE/);
  });

  it('keeps single quotes literal, expands in double quotes, honours escapes', () => {
    expect(expandWord(`'$A' "$A" \\$A "\\$A" a\\ b`, vars)).toBe('$A one $A $A a b');
  });

  it('splits words at unquoted blanks only (a value with a blank stays one word)', () => {
    expect(expandWords('a "b c" $SP d\\ e', vars)).toEqual(['a', 'b c', 'a b', 'd e']);
  });

  it('leaves a $ not followed by a name alone and refuses a bad ${}', () => {
    expect(expandWord('cost $5 $', vars)).toBe('cost $5 $');
    expect(errorOf(() => expandWord('${}', vars))).toMatch(/bad substitution/);
    expect(errorOf(() => expandWord('${A', vars))).toMatch(/missing '}'/);
  });

  it('parses ENV/LABEL pairs in both forms', () => {
    const ins = parseDockerfile('FROM x\nENV a=1 b="two words" c=$A\nENV legacy value with blanks\n').instructions;
    expect(parsePairs(ins[1]!, vars, '\\', 'w', true)).toEqual([['a', '1'], ['b', 'two words'], ['c', 'one']]);
    expect(parsePairs(ins[2]!, vars, '\\', 'w', true)).toEqual([['legacy', 'value with blanks']]);
    expect(splitRaw('a="x y" b')).toEqual(['a="x y"', 'b']);
  });
});

describe('patterns', () => {
  it('matches like Go filepath.Match, with ** across directories', () => {
    expect(globToRegExp('*.txt').test('a.txt')).toBe(true);
    expect(globToRegExp('*.txt').test('d/a.txt')).toBe(false);
    expect(globToRegExp('**/*.txt').test('d/e/a.txt')).toBe(true);
    expect(globToRegExp('**/*.txt').test('a.txt')).toBe(true);
    expect(globToRegExp('f?le[0-9]').test('file7')).toBe(true);
    expect(globToRegExp('[!a]x').test('ax')).toBe(false);
  });

  it('reads .dockerignore lines, cleaned, with ! exceptions', () => {
    const rules = parseDockerignore('# comment\n/secret\n*.log\n!keep.log\n\n./build/\n');
    expect(rules.map((r) => [r.re.source, r.negate])).toEqual([
      ['^secret$', false], ['^[^/]*\\.log$', false], ['^keep\\.log$', true], ['^build$', false],
    ]);
  });
});

describe('properties', () => {
  it('a word without quotes, escapes or $ substitutes to itself, and words split at blanks', async () => {
    const fc = await import('fast-check');
    const plain = fc.stringMatching(/^[A-Za-z0-9_./:=,+@%-]{1,12}$/);
    fc.assert(fc.property(fc.array(plain, { minLength: 1, maxLength: 6 }), (words) => {
      expect(expandWords(words.join('  '), () => 'X')).toEqual(words);
      for (const w of words) expect(expandWord(w, () => 'X')).toBe(w);
    }));
  });

  it('a value quoted in double quotes comes back as it was, $ and " escaped', async () => {
    const fc = await import('fast-check');
    fc.assert(fc.property(fc.string({ maxLength: 30 }), (v) => {
      const quoted = `"${v.replace(/[\\"$]/g, (c) => `\\${c}`)}"`;
      expect(expandWord(quoted, () => 'X')).toBe(v);
    }));
  });

  it('continuation lines join into one instruction whatever splits them', async () => {
    const fc = await import('fast-check');
    const part = fc.stringMatching(/^[a-z0-9 ]{1,10}$/).filter((x) => x.trim() !== '' && !x.trim().startsWith('#'));
    fc.assert(fc.property(fc.array(part, { minLength: 1, maxLength: 5 }), (parts) => {
      const df = parseDockerfile(`FROM x\nRUN ${parts.join('\\\n')}\nCMD y\n`);
      expect(df.instructions.map((i) => i.cmd)).toEqual(['FROM', 'RUN', 'CMD']);
      expect(df.instructions[1]?.rest).toBe(parts.join('').trim());
    }));
  });
});
