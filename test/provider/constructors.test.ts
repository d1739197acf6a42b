// Stacks built from TypeScript constructors decode like the same YAML, with the same errors.
import * as E from 'fp-ts/lib/Either.js';
import { describe, expect, it } from 'vitest';
import { stack } from '../../provider/index.js';
import { mergeDocuments, parseText } from '../../provider/model/load.js';

describe('TypeScript constructors', () => {
  it('build the stack the equivalent YAML declares', () => {
    const s = stack('web');
    const img = s.image('busybox', { ref: 'berth.local/busybox:1', import: '/abs/rootfs.tar', config: { cmd: ['sh'] } });
    const front = s.network('front', { subnet: '10.90.0.0/24' });
    const content = s.volume('content');
    const web = s.container('web', {
      image: img, command: ['httpd', '-f', '-h', '/www'], ports: ['127.0.0.1:8080:80'],
      mounts: [{ volume: content, target: '/www', readOnly: true }], networks: [{ network: front, aliases: ['www'] }],
      resources: { memory: '32m' }, restart: 'always', healthcheck: { test: 'wget -q -O /dev/null http://127.0.0.1/', interval: '1s' },
    });
    s.container('probe', { image: img, command: 'sleep 3600', networks: [front], dependsOn: [{ container: web, condition: 'healthy' }] });
    const built = s.build();
    const yaml = parseText('web.yaml', `
stack: web
images: { busybox: { ref: berth.local/busybox:1, import: /abs/rootfs.tar, config: { cmd: [sh] } } }
networks: { front: { subnet: 10.90.0.0/24 } }
volumes: { content: {} }
containers:
  web:
    image: busybox
    command: [httpd, -f, -h, /www]
    ports: ["127.0.0.1:8080:80"]
    mounts: [{ type: volume, source: content, target: /www, readOnly: true }]
    networks: { front: { aliases: [www] } }
    resources: { memory: 32m }
    restart: always
    healthcheck: { test: "wget -q -O /dev/null http://127.0.0.1/", interval: 1s }
  probe: { image: busybox, command: sleep 3600, networks: [front], dependsOn: { web: { condition: healthy } } }
`);
    const fromYaml = E.isRight(yaml) ? mergeDocuments([{ file: 'web.ts', doc: yaml.right }], 'web') : yaml;
    expect(E.isRight(built)).toBe(true);
    expect(E.isRight(fromYaml)).toBe(true);
    if (E.isRight(built) && E.isRight(fromYaml)) {
      const { origins: _a, ...b } = built.right;
      const { origins: _b, ...y } = fromYaml.right;
      expect(b).toEqual(y);
    }
  });

  it('report every problem at once, with paths as in a stack file', () => {
    const s = stack('bad');
    const img = s.image('i', { ref: 'x' });
    const a = s.container('a', { image: img, ports: ['99999:80'], restart: 'on-failure:x' as 'on-failure' });
    s.container('b', { image: img, dependsOn: [a, { container: { kind: 'container', key: 'ghost' }, condition: 'started' }] });
    s.container('b', { image: img });
    const r = s.build();
    expect(E.isLeft(r) && r.left._tag === 'InvalidSpec' && r.left.problems).toEqual([
      'bad.ts: containers.b: declared twice',
      'bad.ts: containers.a.ports[0]: expected a host port 1-65535, got "99999:80"',
      'bad.ts: containers.a.restart: expected "no", "always", "unless-stopped", "on-failure" or "on-failure:N", got "on-failure:x"',
    ]);
    const t = stack('refs');
    t.container('c', { image: 'x', dependsOn: [{ kind: 'container', key: 'ghost' }] });
    const r2 = t.build();
    expect(E.isLeft(r2) && r2.left._tag === 'InvalidSpec' && r2.left.problems).toEqual(['refs.ts: containers.c.dependsOn.ghost: container "ghost" is not declared']);
  });
});
