// Pure parts of networking: address management, -p parsing, resolv.conf
// rules and the nft table text.
import { describe, expect, it } from 'vitest';
import { allocate, checkFixed, firstFreeSubnet, formatCidr, macFor, parseCidr } from '../../../engine/network/ipam.js';
import { parsePublish, exposedToPorts } from '../../../engine/network/ports.js';
import { containerResolvConf, hostsFile } from '../../../engine/network/files.js';
import { ruleset } from '../../../engine/network/nft.js';
import { hasTag } from '../../../engine/errors.js';

const net = { subnet: '10.89.0.0/29', gateway: '10.89.0.1' };

describe('ipam', () => {
  it('hands out the lowest free host address, skipping the gateway, network and broadcast addresses', () => {
    expect(allocate(net, new Set(), 'n')).toBe('10.89.0.2');
    expect(allocate(net, new Set(['10.89.0.2', '10.89.0.3']), 'n')).toBe('10.89.0.4');
    expect(() => allocate(net, new Set(['10.89.0.2', '10.89.0.3', '10.89.0.4', '10.89.0.5', '10.89.0.6']), 'n')).toThrow(/no free address/);
  });
  it('keeps allocation inside --ip-range', () => {
    expect(allocate({ subnet: '10.89.0.0/24', gateway: '10.89.0.1', ipRange: '10.89.0.128/25' }, new Set(), 'n')).toBe('10.89.0.128');
  });
  it('refuses a fixed address outside the subnet, on the gateway or in use', () => {
    expect(checkFixed(net, '10.89.0.5', new Set(), 'n')).toBe('10.89.0.5');
    expect(() => checkFixed(net, '10.90.0.5', new Set(), 'n')).toThrow(/not a host address/);
    expect(() => checkFixed(net, '10.89.0.7', new Set(), 'n')).toThrow(/not a host address/);
    let err: unknown;
    try {
      checkFixed(net, '10.89.0.5', new Set(['10.89.0.5']), 'n');
    } catch (e) {
      err = e;
    }
    expect(hasTag(err, 'Conflict')).toBe(true);
  });
  it('chooses the first subnet that no host route or network overlaps', () => {
    const pool = parseCidr('10.88.0.0/13')!;
    expect(formatCidr(firstFreeSubnet(pool, 16, [])!)).toBe('10.88.0.0/16');
    expect(formatCidr(firstFreeSubnet(pool, 16, [parseCidr('10.88.4.0/24')!, parseCidr('10.89.0.0/16')!])!)).toBe('10.90.0.0/16');
    expect(firstFreeSubnet(pool, 16, [parseCidr('10.0.0.0/8')!])).toBeUndefined();
  });
  it('derives the MAC from the address, as Docker does', () => {
    expect(macFor('10.88.0.2')).toBe('02:42:0a:58:00:02');
  });
});

describe('-p parsing', () => {
  it('reads the forms Docker accepts', () => {
    expect(parsePublish('80')).toEqual([{ containerPort: 80, protocol: 'tcp' }]);
    expect(parsePublish('8080:80/udp')).toEqual([{ containerPort: 80, protocol: 'udp', hostPort: 8080 }]);
    expect(parsePublish('127.0.0.1:8080:80')).toEqual([{ containerPort: 80, protocol: 'tcp', hostPort: 8080, hostIp: '127.0.0.1' }]);
    expect(parsePublish('127.0.0.1::80')).toEqual([{ containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1' }]);
    expect(parsePublish('8000-8001:80-81')).toEqual([
      { containerPort: 80, protocol: 'tcp', hostPort: 8000 },
      { containerPort: 81, protocol: 'tcp', hostPort: 8001 },
    ]);
    expect(parsePublish('8000-8009:80')).toEqual([{ containerPort: 80, protocol: 'tcp', hostPort: 8000, hostPortEnd: 8009 }]);
  });
  it('reports every problem of a bad spec at once', () => {
    expect(() => parsePublish('x:0/sctp')).toThrow(/3 problems/);
    expect(() => parsePublish('8000-8002:80-81')).toThrow(/differ in length/);
  });
  it('turns EXPOSE entries into ports to publish', () => {
    expect(exposedToPorts(['80/tcp', '53/udp', '7000-7001'])).toEqual([
      { containerPort: 80, protocol: 'tcp' }, { containerPort: 53, protocol: 'udp' },
      { containerPort: 7000, protocol: 'tcp' }, { containerPort: 7001, protocol: 'tcp' },
    ]);
  });
});

describe('name resolution files', () => {
  it('drops loopback nameservers and keeps the rest of the host file', () => {
    const r = containerResolvConf('search example.org\nnameserver 127.0.0.53\nnameserver 192.0.2.53\noptions edns0\n');
    expect(r.text).toBe('search example.org\nnameserver 192.0.2.53\noptions edns0\n');
  });
  it('falls back to Docker\'s default resolvers when only loopback ones were there', () => {
    const r = containerResolvConf('nameserver 127.0.0.1\nnameserver ::1\n');
    expect(r.nameservers).toEqual(['8.8.8.8', '8.8.4.4']);
  });
  it('writes own address, peers and --add-host entries', () => {
    const text = hostsFile([{ ip: '10.89.0.2', names: ['web'] }], [{ ip: '10.89.0.3', names: ['db', 'database'] }], ['gw:10.0.0.1', 'six:::1']);
    expect(text).toContain('10.89.0.2\tweb\n');
    expect(text).toContain('10.89.0.3\tdb database\n');
    expect(text).toContain('10.0.0.1\tgw\n');
    expect(text).toContain('::1\tsix\n');
  });
});

describe('nft table', () => {
  const n = (id: string, bridge: string, subnet: string, internal = false) => ({
    id, name: id, created: '', phase: 'ready' as const, bridge, subnet, gateway: subnet.replace(/0\/\d+$/, '1'), ipRange: undefined,
    internal, labels: {}, isDefault: false,
  });
  it('isolates networks from each other, masquerades outbound except from internal ones, and DNATs published ports', () => {
    const text = ruleset('berth_t', [n('a', 'berth-a', '10.89.0.0/24'), n('b', 'berth-b', '10.89.1.0/24', true)], [
      { hostIp: '0.0.0.0', hostPort: 8080, protocol: 'tcp', target: '10.89.0.2', containerPort: 80 },
      { hostIp: '127.0.0.1', hostPort: 5353, protocol: 'udp', target: '10.89.0.2', containerPort: 53 },
    ]);
    expect(text).toContain('iifname "berth-a" oifname { "berth-b" } drop');
    expect(text).toContain('ip saddr 10.89.0.0/24 oifname != "berth-a" masquerade');
    expect(text).not.toContain('ip saddr 10.89.1.0/24 oifname != "berth-b" masquerade');
    expect(text).toContain('iifname "berth-b" oifname != "berth-b" drop');
    expect(text).toMatch(/map published_tcp \{\n\s+type inet_service : ipv4_addr \. inet_service\n\s+elements = \{ 8080 : 10\.89\.0\.2 \. 80 \}/);
    expect(text).toMatch(/map published_ip_udp \{\n\s+type ipv4_addr \. inet_service : ipv4_addr \. inet_service\n\s+elements = \{ 127\.0\.0\.1 \. 5353 : 10\.89\.0\.2 \. 53 \}/);
    expect(text).toContain('meta nfproto ipv4 dnat ip to ip daddr . udp dport map @published_ip_udp');
    expect(text).toContain('meta nfproto ipv4 dnat ip to tcp dport map @published_tcp');
    expect(text).toContain('iifname { "berth-a", "berth-b" } ip daddr 127.0.0.0/8 counter drop');
  });
});
