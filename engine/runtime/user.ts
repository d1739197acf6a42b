/**
 * `-u name[:group]` resolved in the container's /etc/passwd and /etc/group,
 * as Docker does: numeric parts are taken as they are; a user's primary group
 * and supplementary groups come from the files.
 */
import { fail, invalidSpec } from '../errors.js';
import { readInRoot } from './inroot.js';

export interface ResolvedUser {
  readonly uid: number;
  readonly gid: number;
  readonly additionalGids: readonly number[];
  readonly home: string;
}

const isNum = (s: string): boolean => /^[0-9]+$/.test(s);

const parseLines = (text: string | undefined): string[][] =>
  (text ?? '').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));

export const resolveUser = async (rootfs: string, user: string | undefined): Promise<ResolvedUser> => {
  // no user given: uid 0, whether or not the image's /etc/passwd has a line for it (as Docker)
  const spec = user === undefined || user === '' ? '0' : user;
  const [u = '', g] = spec.split(':', 2);
  const passwd = parseLines(await readInRoot(rootfs, '/etc/passwd'));
  const groups = parseLines(await readInRoot(rootfs, '/etc/group'));
  let uid: number;
  let gid = 0;
  let home = '/';
  let userName: string | undefined;
  const entry = passwd.find((p) => (isNum(u) ? p[2] === u : p[0] === u));
  if (entry) {
    uid = Number(entry[2]);
    gid = Number(entry[3] ?? 0);
    home = entry[5] || '/';
    userName = entry[0];
  } else if (isNum(u)) {
    uid = Number(u);
  } else {
    return fail(invalidSpec('user', [`unable to find user ${u}: no matching entries in the container's /etc/passwd`]));
  }
  if (g !== undefined && g !== '') {
    if (isNum(g)) gid = Number(g);
    else {
      const ge = groups.find((x) => x[0] === g);
      if (!ge) return fail(invalidSpec('user', [`unable to find group ${g}: no matching entries in the container's /etc/group`]));
      gid = Number(ge[2]);
    }
  }
  const additionalGids: number[] = [];
  if (userName !== undefined && (g === undefined || g === '')) {
    for (const ge of groups) {
      const members = (ge[3] ?? '').split(',');
      const n = Number(ge[2]);
      if (members.includes(userName) && n !== gid && !additionalGids.includes(n)) additionalGids.push(n);
    }
  }
  if (uid > 0xfffffffe || gid > 0xfffffffe) fail(invalidSpec('user', [`${spec}: ID out of range`]));
  return { uid, gid, additionalGids, home };
};
