// linkExists answers for the network namespace of the process that asks, also
// when /sys is the host's sysfs (Berth run under `nsenter --net`, as the peer
// benchmarks do): a link made only inside a namespace this test creates is seen
// from a process in that namespace and not from the host.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkExists } from '../../../engine/network/host.js';

const ns = `berth-test-linkns-${process.pid}`;
const link = `berth-tl${process.pid % 100000}`;
const skip = process.getuid?.() !== 0 ? 'needs root' : '';

describe.skipIf(skip !== '')(`linkExists${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'add', link, 'type', 'veth', 'peer', 'name', `${link}p`]); // both ends inside the namespace
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });

  it('sees the links of its own namespace, not those of the namespace /sys was mounted in', async () => {
    expect(await linkExists('lo')).toBe(true);
    expect(await linkExists(link)).toBe(false);
    expect(await linkExists('../lo')).toBe(false);
    // a node in the test's namespace, /sys still the host's (nsenter, unlike `ip netns exec`, mounts no sysfs)
    const hostJs = path.resolve('dist/engine/network/host.js');
    const probe = `const { linkExists } = await import(${JSON.stringify(hostJs)}); console.log(JSON.stringify([await linkExists(${JSON.stringify(link)}), await linkExists('lo')]));`;
    const out = execFileSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, '--input-type=module', '-e', probe], { encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([true, true]);
    expect(execFileSync('nsenter', [`--net=/run/netns/${ns}`, 'ls', '/sys/class/net'], { encoding: 'utf8' })).not.toContain(link);
  });
});
