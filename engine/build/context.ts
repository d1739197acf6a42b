/**
 * The build context: a directory on this host, filtered by its
 * `.dockerignore`, from which COPY and ADD take files. Nothing outside it
 * is ever read: source paths with `..` that leave it are refused, and a
 * symlink inside it is copied as a link, never followed.
 *
 * Patterns follow Docker: Go's filepath.Match (`*`, `?`, `[...]`, `\`
 * escapes; `*` stops at `/`) plus `**` for any number of directories in
 * .dockerignore; a `!` line re-includes; the last matching line wins, and
 * a line that matches a directory matches everything under it.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp, type Stats } from 'node:fs';
import * as path from 'node:path';
import { fail, invalidSpec } from '../errors.js';

/** A Go filepath.Match pattern (with `**`) as an anchored RegExp over `/`-separated paths. */
export const globToRegExp = (pattern: string): RegExp => {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i] as string;
    if (ch === '*') {
      if (pattern[i + 1] === '*') {
        i++;
        // `**/` matches zero or more directories
        if (pattern[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) fail(invalidSpec('pattern', [`${JSON.stringify(pattern)}: unclosed '['`]));
      let body = pattern.slice(i + 1, end);
      if (body.startsWith('^') || body.startsWith('!')) body = `^${body.slice(1)}`;
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (ch === '\\' && i + 1 < pattern.length) {
      re += (pattern[++i] as string).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else re += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
};

export const hasWildcard = (p: string): boolean => /[*?[]/.test(p);

/** Clean a relative path the way Go's filepath.Clean does, without a leading `/`. */
export const cleanRel = (p: string): string => {
  const n = path.posix.normalize(`/${p}`).slice(1).replace(/\/$/, '');
  return n === '' ? '.' : n;
};

interface IgnoreRule {
  readonly re: RegExp;
  readonly negate: boolean;
}

export interface BuildContext {
  readonly dir: string;
  /** True when `.dockerignore` leaves `rel` (a path relative to the context) out. */
  ignored(rel: string): boolean;
  /** True when `.dockerignore` has `!` lines (an excluded directory may hold included files). */
  readonly reincludes: boolean;
}

export const parseDockerignore = (text: string): IgnoreRule[] => {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let l = raw.trim();
    if (l === '' || l.startsWith('#')) continue;
    const negate = l.startsWith('!');
    if (negate) l = l.slice(1).trim();
    l = cleanRel(l);
    if (l === '.') continue;
    rules.push({ re: globToRegExp(l), negate });
  }
  return rules;
};

export const openContext = async (dir: string): Promise<BuildContext> => {
  const abs = path.resolve(dir);
  let st: Stats;
  try {
    st = await fsp.stat(abs);
  } catch {
    return fail(invalidSpec('build context', [`${abs}: no such directory; give the directory that holds the files to build from`]));
  }
  if (!st.isDirectory()) fail(invalidSpec('build context', [`${abs}: not a directory; give the directory that holds the files to build from`]));
  let rules: IgnoreRule[] = [];
  try {
    rules = parseDockerignore(await fsp.readFile(path.join(abs, '.dockerignore'), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return {
    dir: abs,
    reincludes: rules.some((r) => r.negate),
    ignored(rel) {
      if (rules.length === 0) return false;
      const parts = rel.split('/');
      let out = false;
      for (const r of rules) {
        // a rule matches the path or any directory above it
        for (let n = parts.length; n > 0; n--) {
          if (r.re.test(parts.slice(0, n).join('/'))) {
            out = !r.negate;
            break;
          }
        }
      }
      return out;
    },
  };
};

/** An item found for a COPY/ADD source: a path relative to the source root and what it is. */
export interface SourceItem {
  /** Host path. */
  readonly abs: string;
  /** Path relative to the source root. */
  readonly rel: string;
  readonly stat: Stats;
}

/** Every path below `root` (relative, sorted, parents first), skipping what `skip` says. */
export const walk = async (root: string, rel: string, skip: (rel: string) => boolean, reincludes = false): Promise<SourceItem[]> => {
  const out: SourceItem[] = [];
  const visit = async (r: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(root, r))).sort();
    for (const n of names) {
      const cr = r === '.' ? n : `${r}/${n}`;
      if (skip(cr)) {
        // an excluded directory may still hold re-included files (a `!` rule): look inside
        const st = await fsp.lstat(path.join(root, cr));
        if (reincludes && st.isDirectory()) {
          const inner = await walk(root, cr, skip, true);
          if (inner.length > 0) out.push({ abs: path.join(root, cr), rel: cr, stat: st }, ...inner);
        }
        continue;
      }
      const abs = path.join(root, cr);
      const st = await fsp.lstat(abs);
      out.push({ abs, rel: cr, stat: st });
      if (st.isDirectory()) await visit(cr);
    }
  };
  await visit(rel);
  return out;
};

/** A digest of files' contents and metadata (paths relative to their source, mode, owner, size, link target), for the cache. */
export const digestItems = async (items: readonly { rel: string; abs: string; stat: Stats }[]): Promise<string> => {
  const h = createHash('sha256');
  for (const it of items) {
    const s = it.stat;
    // as Docker: modification times are not part of the cache key
    h.update(`${it.rel}\0${s.mode}\0${s.uid}:${s.gid}\0${s.size}\0`);
    if (s.isSymbolicLink()) h.update(`-> ${await fsp.readlink(it.abs)}\0`);
    else if (s.isFile()) {
      for await (const chunk of createReadStream(it.abs)) h.update(chunk as Buffer);
    }
    h.update('\n');
  }
  return h.digest('hex');
};

/**
 * What a build reads from its context, as one digest: the Dockerfile's
 * bytes and every file `.dockerignore` leaves in (paths, modes, owners,
 * contents). Equal digests (with equal args) mean a rebuild would be all
 * cache hits; the reconciler keeps it in an image's spec hash.
 */
export const contextDigest = async (contextDir: string, dockerfile?: string): Promise<string> => {
  const ctx = await openContext(contextDir);
  const df = dockerfile === undefined ? path.join(ctx.dir, 'Dockerfile') : path.resolve(ctx.dir, dockerfile);
  const h = createHash('sha256');
  try {
    h.update(await fsp.readFile(df));
  } catch (e) {
    fail(invalidSpec('build', [`cannot read the Dockerfile ${df}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`]));
  }
  h.update('\0');
  h.update(await digestItems(await walk(ctx.dir, '.', (r) => ctx.ignored(r), ctx.reincludes)));
  return `sha256:${h.digest('hex')}`;
};
