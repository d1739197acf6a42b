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

/** Runtime and shim processes (by the name they run as), and any process whose root is a
 *  test bundle's rootfs (a container of a test that was never deleted). */
function processLeaks(): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
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
