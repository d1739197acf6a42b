/**
 * Paths inside a container's root filesystem, resolved as the container
 * would see them: symlinks (absolute or relative) and `..` never leave the
 * root. Used on a rootfs that no container is running in yet (user lookup,
 * copy-up), where nothing inside can race us.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { fail, invalidSpec } from '../errors.js';
import { pathUnder } from '../store/fsutil.js';

const MAX_LINKS = 40;

/** The host path of `p` inside `root`. Components that do not exist are kept as they are. */
export const resolveInRoot = async (root: string, p: string): Promise<string> => {
  const base = path.normalize(root);
  let pending = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = pathUnder(base, ...done, c);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      done.push(c, ...pending.filter((x) => x !== '..'));
      break;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) fail(invalidSpec(`path ${p} in the container`, ['too many levels of symbolic links']));
      const target = readlinkSync(host);
      const parts = target.split('/').filter((x) => x !== '' && x !== '.');
      if (target.startsWith('/')) done.length = 0;
      pending = [...parts, ...pending];
      continue;
    }
    done.push(c);
  }
  return pathUnder(base, ...done);
};

/** Read a small file inside the root; undefined when missing. */
export const readInRoot = async (root: string, p: string): Promise<string | undefined> => {
  const host = await resolveInRoot(root, p);
  try {
    return readFileSync(host, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw e;
  }
};
