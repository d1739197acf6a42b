import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { familiarName, formatReference, parseReference } from '../../../engine/store/reference.js';
import { EngineFailure } from '../../../engine/errors.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference normalizes like Docker', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['team/app', 'docker.io/team/app:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/app:v1', 'localhost:5000/app:v1'],
    ['127.0.0.1:5000/team/app', '127.0.0.1:5000/team/app:latest'],
    [`host:5000/team/app@${D}`, `host:5000/team/app@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`],
    ['quay.io/a/b/c:x_y.z-1', 'quay.io/a/b/c:x_y.z-1'],
    ['a__b/c-d.e---f', 'docker.io/a__b/c-d.e---f:latest'],
  ])('%s -> %s', (input, full) => {
    expect(formatReference(parseReference(input))).toBe(full);
  });

  it('keeps no tag when a digest is given', () => {
    expect(parseReference(`busybox@${D}`).tag).toBeUndefined();
  });

  it('gives the familiar short name back', () => {
    expect(familiarName(parseReference('busybox'))).toBe('busybox:latest');
    expect(familiarName(parseReference('team/app:2'))).toBe('team/app:2');
    expect(familiarName(parseReference('localhost:5000/app'))).toBe('localhost:5000/app:latest');
  });

  it.each([
    ['', 'empty'],
    ['Busybox', 'lowercase'],
    ['busybox:', 'invalid tag'],
    ['busybox:-x', 'invalid tag'],
    ['busybox@sha256:abc', 'invalid digest'],
    ['a//b', 'empty path component'],
    ['a/b_/c', 'invalid repository component'],
    ['host:99999/a', 'invalid registry host'],
    [`a/${'b'.repeat(260)}`, 'longer than 255'],
  ])('refuses %j (%s)', (input, why) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(EngineFailure);
    expect((err as EngineFailure).error._tag).toBe('InvalidSpec');
    expect((err as EngineFailure).message).toContain(why);
  });

  it('round-trips: formatting a parsed reference parses to the same reference', () => {
    const comp = fc.stringMatching(/^[a-z0-9]{1,5}([._-][a-z0-9]{1,5})?$/);
    const tag = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}$/);
    fc.assert(
      fc.property(fc.option(fc.constantFrom('quay.io', 'localhost:5000', '10.0.0.1:443')), fc.array(comp, { minLength: 1, maxLength: 3 }), fc.option(tag), (dom, parts, tg) => {
        const input = `${dom ? `${dom}/` : ''}${parts.join('/')}${tg ? `:${tg}` : ''}`;
        const once = parseReference(input);
        expect(parseReference(formatReference(once))).toEqual(once);
      }),
    );
  });
});
