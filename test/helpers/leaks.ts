// Finds Berth objects left on the host: the same list as the before-stop
// hook (mounts, links, cgroups, netns, processes named berth), so a test run
// can fail on what it leaked instead of leaving it behind.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const cgroupRoot = '/sys/fs/cgroup';

function cgroupLeaks(): string[] {
  const found: string[] = [];
  const visit = (dir: string, depthLeft: number): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (e.name.startsWith('berth')) found.push(p);
      else if (depthLeft > 0) visit(p, depthLeft - 1);
    }
  };
  visit(cgroupRoot, 2);
  return found;
}

/** Runtime and shim processes (by the name they run as), any process whose root is a
 *  test bundle's rootfs (a container of a test that was never deleted), and zombies
 *  of Berth's programs (berth-shim, berth-helper, berth-runtime) that nobody reaped. */
function processLeaks(): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const zombie = berthZombie(pid);
    if (zombie !== undefined) {
      found.push(zombie);
      continue;
    }
    let cmdline: string;
    let root = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      root = fs.readlinkSync(`/proc/${pid}/root`);
    } catch {
      continue;
    }
    const argv0 = path.basename(cmdline.split(' ')[0] ?? '');
    if (argv0 === 'berth-shim' || argv0 === 'berth-runtime') found.push(`${pid} ${cmdline}`);
    else if (root.includes('/berth-test-')) found.push(`${pid} ${cmdline} (root ${root})`);
  }
  return found;
}

/** "<pid> <comm> (zombie, parent <ppid>)" when pid is a Berth program that exited and
 *  was not reaped. A shim, or a helper whose Node has ended, is reparented to pid 1, which
 *  reaps it; one that stays names a parent that does not wait for its children. */
function berthZombie(pid: string): string | undefined {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split at the last ')'
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const [state, ppid] = stat.slice(close + 2).split(' ');
  return state === 'Z' && /^berth-/.test(comm) ? `${pid} ${comm} (zombie, parent ${ppid})` : undefined;
}

/** Everything named berth that is still on the host, one line each. */
export function findLeaks(): string[] {
  const leaks: string[] = [];
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint !== undefined && mountPoint.includes('berth')) leaks.push(`mount ${mountPoint}`);
  }
  try {
    const links = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    for (const line of links.split('\n')) {
      const name = line.split(': ')[1]?.split('@')[0];
      if (name !== undefined && /^(bth|berth)/.test(name)) leaks.push(`link ${name}`);
    }
  } catch {
    // no iproute2: nothing to check
  }
  for (const cg of cgroupLeaks()) leaks.push(`cgroup ${cg}`);
  try {
    for (const ns of fs.readdirSync('/run/netns')) if (/berth/i.test(ns)) leaks.push(`netns ${ns}`);
  } catch {
    // no /run/netns
  }
  for (const p of processLeaks()) leaks.push(`process ${p}`);
  return leaks;
}
