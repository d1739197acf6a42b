import { describe, expect, it } from 'vitest';
import * as E from 'fp-ts/lib/Either.js';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stackFromDocument, mergeDocuments, parseText, loadStack } from '../../provider/model/load.js';
import { composeToStack } from '../../provider/model/compose.js';
import { validateStack, type Stack } from '../../provider/model/stack.js';
import { parseBytes, parseDurationMs, parsePortString, shellSplit } from '../../provider/model/units.js';
import { Expected } from '../../provider/model/decode.js';

const berth = (text: string, file = 'stack.yaml'): E.Either<string[], Stack> => {
  const doc = parseText(file, text);
  if (E.isLeft(doc)) return doc;
  return mergeDocuments([{ file: `/x/${file}`, doc: doc.right }], 'x');
};
const problems = (r: E.Either<string[], unknown>): string[] => (E.isLeft(r) ? r.left : []);

describe('Berth stack documents', () => {
  it('decodes a stack with every resource kind and resolves paths against the file', () => {
    const r = berth(`
stack: web
images:
  bb: { ref: berth.local/bb:1, import: rootfs.tar, config: { cmd: [sh] } }
networks:
  front: { subnet: 10.89.0.0/24 }
volumes:
  content: {}
containers:
  web:
    image: bb
    command: httpd -f -p 80 -h /www
    env: { A: 1, B: true }
    ports: ["127.0.0.1:8080:80", { containerPort: 81 }]
    mounts: ["content:/www:ro", { type: tmpfs, target: /tmp, size: 64m }]
    resources: { memory: 64m, cpus: 0.5 }
    restart: on-failure:3
    healthcheck: { test: "wget -q -O- http://127.0.0.1/", interval: 2s }
    networks: { front: { aliases: [www] } }
`);
    expect(problems(r)).toEqual([]);
    const s = (r as E.Right<Stack>).right;
    expect(s.name).toBe('web');
    expect(s.images['bb']).toEqual({ kind: 'import', ref: 'berth.local/bb:1', tarball: '/x/rootfs.tar', config: { cmd: ['sh'] } });
    const web = s.containers['web']!;
    expect(web.command).toEqual(['httpd', '-f', '-p', '80', '-h', '/www']);
    expect(web.env).toEqual(['A=1', 'B=true']);
    expect(web.ports).toEqual([{ containerPort: 80, hostPort: 8080, hostIp: '127.0.0.1', protocol: 'tcp' }, { containerPort: 81, protocol: 'tcp' }]);
    expect(web.mounts).toEqual([{ type: 'volume', source: 'content', target: '/www', readOnly: true }, { type: 'tmpfs', target: '/tmp', sizeBytes: 64 * 1024 * 1024 }]);
    expect(web.resources).toEqual({ memory: 64 * 1024 * 1024, cpus: 0.5 });
    expect(web.restart).toEqual({ name: 'on-failure', maximumRetryCount: 3 });
    expect(web.healthcheck).toEqual({ test: ['CMD-SHELL', 'wget -q -O- http://127.0.0.1/'], intervalMs: 2000 });
    expect(web.networks).toEqual({ front: { aliases: ['www'] } });
    expect(validateStack(s)).toEqual([]);
  });

  it('reports the issue example with file, path, expectation and value', () => {
    const r = berth(`
containers:
  web:
    image: busybox
    ports: [{ containerPort: 80, hostPort: "80a" }]
`);
    expect(problems(r)).toEqual(['stack.yaml: containers.web.ports[0].hostPort: expected an integer 1-65535, got "80a"']);
  });

  it('reports every error at once, unknown keys included', () => {
    const r = berth(`
stack: s
colour: blue
containers:
  web:
    imag: busybox
    restart: sometimes
    ports: ["99999:80", "80-90:80"]
    resources: { memory: lots }
  bad/name: { image: x }
networks:
  n: { subnet: 10.0.0.0/8, mtu: 1500 }
`);
    expect(problems(r).sort()).toEqual([
      'stack.yaml: colour: unknown key "colour" (allowed: stack, images, networks, volumes, containers)',
      'stack.yaml: containers.bad/name: bad name "bad/name": expected a name of letters, digits, "_", "." and "-" (max 63), starting with a letter or digit',
      'stack.yaml: containers.web.imag: unknown key "imag" (allowed: image, entrypoint, command, env, workingDir, user, hostname, labels, readOnlyRootfs, mounts, ports, capAdd, capDrop, privileged, resources, restart, healthcheck, networks, networkMode, dependsOn, stopSignal, stopTimeout, init, tty, sysctls, ulimits, security)',
      'stack.yaml: containers.web.image: required key missing (string)',
      'stack.yaml: containers.web.ports[0]: expected a host port 1-65535, got "99999:80"',
      'stack.yaml: containers.web.ports[1]: expected a single port (port ranges are not supported by Berth), got "80-90:80"',
      'stack.yaml: containers.web.resources.memory: expected a size such as 64m, 1g or a number of bytes, got "lots"',
      'stack.yaml: containers.web.restart: expected "no", "always", "unless-stopped", "on-failure" or "on-failure:N", got "sometimes"',
      'stack.yaml: networks.n.mtu: unknown key "mtu" (allowed: subnet, gateway, ipRange, internal, labels)',
    ].sort());
  });

  it('refuses images with two sources and config without import', () => {
    const r = berth(`
images:
  a: { ref: a, import: x.tar, archive: y.tar }
  b: { ref: b, config: { cmd: [sh] } }
`);
    expect(problems(r)).toEqual([
      'stack.yaml: images.a: expected at most one of import, archive, build, got a mapping',
      'stack.yaml: images.b: expected `config` only with `import`, got a mapping',
    ]);
  });

  it('checks references, dependency cycles and host port clashes', () => {
    const r = berth(`
containers:
  a: { image: x, dependsOn: [b], networks: [nope], mounts: ["vol:/data"], ports: ["8080:80"] }
  b: { image: x, dependsOn: { c: { condition: healthy } }, ports: ["127.0.0.1:8080:80"] }
  c: { image: x, dependsOn: [a] }
  d: { image: x, dependsOn: [ghost], ports: ["8081:80/udp", "8081:80"] }
`);
    expect(problems(r)).toEqual([]);
    const s = (r as E.Right<Stack>).right;
    expect(validateStack(s)).toEqual([
      'stack.yaml: containers.a.networks.nope: network "nope" is not declared (declare it under networks)',
      'stack.yaml: containers.a.mounts[0].source: volume "vol" is not declared (declare it under volumes)',
      'stack.yaml: containers.b.dependsOn.c: condition healthy needs a healthcheck on container "c"',
      'stack.yaml: containers.b.ports[0].hostPort: host port 8080/tcp is already published by containers.a.ports[0]',
      'stack.yaml: containers.d.dependsOn.ghost: container "ghost" is not declared',
      'stack.yaml: containers.a.dependsOn: dependency cycle a -> b -> c -> a',
    ]);
  });

  it('names both files when a directory declares a resource twice or disagrees on the stack name', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-stack-'));
    try {
      fs.writeFileSync(path.join(dir, 'a.yaml'), 'stack: one\ncontainers:\n  web: { image: x }\n');
      fs.writeFileSync(path.join(dir, 'b.yml'), 'stack: two\ncontainers:\n  web: { image: y }\n');
      const r = loadStack(dir);
      expect(E.isLeft(r) && r.left._tag === 'InvalidSpec' ? r.left.problems : []).toEqual([
        'b.yml: stack: "two" differs from "one" in a.yaml',
        'b.yml: containers.web: already declared in a.yaml',
      ]);
      fs.writeFileSync(path.join(dir, 'b.yml'), 'networks:\n  n: {}\n');
      const ok = loadStack(dir);
      expect(E.isRight(ok) && Object.keys(ok.right.networks)).toEqual(['n']);
      fs.writeFileSync(path.join(dir, 'b.yml'), 'networks:\n  n: {}\n  n: {}\n');
      const dup = loadStack(dir);
      expect(E.isLeft(dup) && dup.left._tag === 'InvalidSpec' && dup.left.problems[0]).toMatch(/^b\.yml:3:3: duplicated mapping key$/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Compose translation', () => {
  const compose = (text: string, env: Record<string, string> = {}) => {
    const doc = parseText('compose.yaml', text);
    if (E.isLeft(doc)) return doc;
    return composeToStack(doc.right, { file: 'compose.yaml', defaultProject: 'My App', readEnvFile: (p) => env[p] });
  };

  it('translates the supported keys like docker compose', () => {
    const r = compose(`
services:
  db:
    image: berth.local/db:1
    volumes: [data:/var/lib/db]
    environment: [MODE=db]
    env_file: db.env
    healthcheck: { test: [CMD, test, -f, /ready], interval: 1s, retries: 5 }
    deploy: { resources: { limits: { memory: 128M, cpus: "0.5", pids: 64 } } }
    restart: always
  app:
    image: berth.local/app:1
    command: ["sh", "-c", "echo hi"]
    ports: ["8080:80", { target: 81, published: "8081", host_ip: 127.0.0.1 }]
    depends_on: { db: { condition: service_healthy } }
    cap_add: [net_admin]
    cap_drop: [ALL]
    read_only: true
    tmpfs: /run:size=1m
    user: "1000"
    working_dir: /srv
    labels: [a=b]
volumes:
  data:
x-berth-images:
  db: { ref: berth.local/db:1, import: ./rootfs.tar }
`, { 'db.env': '# comment\nexport PASS="s3cret"\n' });
    expect(problems(r)).toEqual([]);
    const s = (r as E.Right<Stack>).right;
    expect(s.name).toBe('myapp');
    expect(Object.keys(s.networks)).toEqual(['default']);
    const db = s.containers['db']!;
    expect(db.image).toBe('db');
    expect(db.env).toEqual(['PASS=s3cret', 'MODE=db']);
    expect(db.mounts).toEqual([{ type: 'volume', source: 'data', target: '/var/lib/db' }]);
    expect(db.resources).toEqual({ memory: 128 * 1024 * 1024, cpus: 0.5, pidsLimit: 64 });
    expect(db.restart).toEqual({ name: 'always' });
    expect(db.healthcheck).toEqual({ test: ['CMD', 'test', '-f', '/ready'], intervalMs: 1000, retries: 5 });
    expect(db.networks).toEqual({ default: { aliases: [] } });
    const app = s.containers['app']!;
    expect(app.image).toBe('berth.local/app:1');
    expect(app.dependsOn).toEqual({ db: 'healthy' });
    expect(app.ports).toEqual([{ containerPort: 80, hostPort: 8080, protocol: 'tcp' }, { containerPort: 81, hostPort: 8081, hostIp: '127.0.0.1', protocol: 'tcp' }]);
    expect(app.capAdd).toEqual(['NET_ADMIN']);
    expect(app.readOnlyRootfs).toBe(true);
    expect(app.mounts).toEqual([{ type: 'tmpfs', target: '/run', sizeBytes: 1024 * 1024 }]);
    expect(app.labels).toEqual({ a: 'b' });
    expect(validateStack(s)).toEqual([]);
  });

  it('names every unsupported key instead of ignoring it', () => {
    const r = compose(`
services:
  web:
    image: x
    container_name: fixed
    network_mode: bridge
    deploy: { replicas: 3 }
    x-custom: fine
networks:
  outside: { external: true }
secrets: {}
`);
    expect(problems(r).sort()).toEqual([
      'compose.yaml: networks.outside.external: key "external" is not supported by Berth (Berth manages only the networks a stack declares)',
      'compose.yaml: secrets: key "secrets" is not supported by Berth',
      'compose.yaml: services.web.container_name: key "container_name" is not supported by Berth (Berth names containers <project>-<service>)',
      'compose.yaml: services.web.deploy.replicas: key "replicas" is not supported by Berth (one container per service)',
      'compose.yaml: services.web.network_mode: expected "none" or "host" (Berth supports no other network_mode), got "bridge"',
    ]);
  });

  it('names Compose paths in cross-resource problems', () => {
    const r = compose('services:\n  a: { image: x, depends_on: [b], volumes: ["nope:/d"] }\n  b: { image: x, depends_on: [a] }\n');
    expect(problems(r)).toEqual([]);
    expect(validateStack((r as E.Right<Stack>).right)).toEqual([
      'compose.yaml: services.a.volumes[0].source: volume "nope" is not declared (declare it under volumes)',
      'compose.yaml: services.a.depends_on: dependency cycle a -> b -> a',
    ]);
  });

  it('reports a service without image or build, and a missing env_file', () => {
    const r = compose('services:\n  a: { environment: { X: 1 } }\n  b: { image: x, env_file: [missing.env] }\n');
    expect(problems(r)).toEqual(['compose.yaml: services.a: a service needs image or build', 'compose.yaml: services.b.env_file: cannot read missing.env']);
  });

  it('makes a build image resource for build:', () => {
    const r = stackFromDocument('/p/compose.yaml', { name: 'p', services: { w: { build: { context: 'app', args: { V: 1 } } } } }, 'p');
    expect(problems(r)).toEqual([]);
    const s = (r as E.Right<Stack>).right;
    expect(s.images['w-build']).toEqual({ kind: 'build', ref: 'p-w', context: '/p/app', args: { V: '1' } });
    expect(s.containers['w']!.image).toBe('w-build');
  });
});

describe('value parsers', () => {
  it('parses sizes, durations, ports and shell words', () => {
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('1.5k')).toBe(1536);
    expect(parseBytes('x')).toBeInstanceOf(Expected);
    expect(parseDurationMs('1m30s')).toBe(90_000);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('5')).toBeInstanceOf(Expected);
    expect(parsePortString('[::1]:53:53/udp')).toEqual({ containerPort: 53, hostPort: 53, hostIp: '::1', protocol: 'udp' });
    expect(parsePortString('127.0.0.1::80')).toEqual({ containerPort: 80, hostIp: '127.0.0.1', protocol: 'tcp' });
    expect(parsePortString('80/sctp')).toBeInstanceOf(Expected);
    expect(shellSplit(`sh -c 'echo "a b"' x\\ y`)).toEqual(['sh', '-c', 'echo "a b"', 'x y']);
    expect(shellSplit('echo "open')).toBeInstanceOf(Expected);
  });
});
