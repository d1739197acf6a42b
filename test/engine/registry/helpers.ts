// Test peers: Debian's docker-registry on 127.0.0.1 (anonymous, htpasswd,
// or token auth with an in-process token server), and OCI layouts made
// offline from busybox-static for skopeo to push.
import { spawn, execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type Server } from 'node:net';
import * as http from 'node:http';
import { createHash, createPrivateKey, sign, randomBytes } from 'node:crypto';
import { mkdtemp, mkdir, rm, writeFile, readFile } from 'node:fs/promises';
import { existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { makeTar, type Entry } from '../store/tars.js';

export const have = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s: Server = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });

export interface RegistryHandle {
  readonly host: string; // 127.0.0.1:PORT
  readonly dir: string;
  stop(): Promise<void>;
}

export type RegistryAuth =
  | { kind: 'none' }
  | { kind: 'basic'; user: string; password: string }
  | { kind: 'token'; user: string; password: string };

const waitUp = async (url: string, child: ChildProcess, log: () => string): Promise<void> => {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`registry exited ${child.exitCode}: ${log()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const r = http.get(url, (res) => {
        res.resume();
        resolve(true);
      });
      r.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`registry did not come up: ${log()}`);
};

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

/** A token server as the distribution spec describes, issuing RS256 JWTs the registry trusts. */
const startTokenServer = async (dir: string, user: string, password: string, service: string): Promise<{ port: number; cert: string; server: http.Server }> => {
  const key = path.join(dir, 'token.key');
  const cert = path.join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=berth-test-token'], { stdio: 'ignore' });
  const der = execFileSync('openssl', ['x509', '-in', cert, '-outform', 'DER']);
  const priv = createPrivateKey(await readFile(key));
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const auth = req.headers.authorization ?? '';
    let who = '';
    if (auth.startsWith('Basic ')) {
      const [u, p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (u !== user || p !== password) {
        res.writeHead(401).end('{"details":"bad credentials"}');
        return;
      }
      who = u;
    }
    const access = url.searchParams.getAll('scope').flatMap((s) => {
      const [type, name, actions] = s.split(':');
      // anonymous callers get nothing; the user gets what they ask for
      return who && type && name && actions ? [{ type, name, actions: actions.split(',') }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = { iss: 'berth-test-issuer', sub: who, aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(input), priv);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: `${input}.${b64url(sig)}`, expires_in: 300 }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, cert, server };
};

export const startRegistry = async (auth: RegistryAuth = { kind: 'none' }): Promise<RegistryHandle> => {
  const dir = await mkdtemp(path.join(tmpdir(), 'berth-registry-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let authYaml = '';
  let tokenServer: http.Server | undefined;
  if (auth.kind === 'basic') {
    execFileSync('htpasswd', ['-Bbc', path.join(dir, 'htpasswd'), auth.user, auth.password], { stdio: 'ignore' });
    authYaml = `auth:\n  htpasswd:\n    realm: basic-realm\n    path: ${path.join(dir, 'htpasswd')}\n`;
  } else if (auth.kind === 'token') {
    const ts = await startTokenServer(dir, auth.user, auth.password, 'berth-test');
    tokenServer = ts.server;
    authYaml = `auth:\n  token:\n    realm: http://127.0.0.1:${ts.port}/token\n    service: berth-test\n    issuer: berth-test-issuer\n    rootcertbundle: ${ts.cert}\n`;
  }
  const config = path.join(dir, 'config.yml');
  await mkdir(path.join(dir, 'data'));
  await writeFile(
    config,
    `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${path.join(dir, 'data')}\n  delete:\n    enabled: true\nhttp:\n  addr: ${host}\n${authYaml}`,
  );
  // a file, not a pipe: tests block the event loop in execFileSync(skopeo) while the registry logs
  const logFile = path.join(dir, 'registry.log');
  const logFd = openSync(logFile, 'w');
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  const stderr = (): string => {
    try {
      return readFileSync(logFile, 'utf8').slice(-4000);
    } catch {
      return '';
    }
  };
  try {
    await waitUp(`http://${host}/v2/`, child, stderr);
  } catch (e) {
    child.kill('SIGKILL');
    tokenServer?.close();
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    host,
    dir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (tokenServer) await new Promise((r) => tokenServer?.close(r));
      await rm(dir, { recursive: true, force: true });
    },
  };
};

const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Layer entries of a small busybox rootfs (the static binary plus a few applet links). */
export const busyboxEntries = async (): Promise<Entry[]> => {
  const bb = await readFile('/bin/busybox');
  const applets = ['sh', 'ls', 'cat', 'echo', 'true', 'false', 'sleep', 'id'];
  return [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', content: bb, mode: 0o755 },
    ...applets.map((a): Entry => ({ name: `bin/${a}`, type: 'link', linkname: 'bin/busybox' })),
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', content: 'root:x:0:0:root:/root:/bin/sh\n' },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
  ];
};

export interface LayoutImage {
  readonly dir: string;
  readonly manifestDigest: string;
  readonly configDigest: string;
  readonly layerDigests: string[];
  readonly diffIds: string[];
}

/**
 * Write an OCI image layout (what umoci or skopeo would make) holding one
 * image tagged `tag` whose layers are the given tars (gzip-compressed).
 */
export const makeOciLayout = async (dir: string, tag: string, layers: Buffer[], opts: { cmd?: string[] } = {}): Promise<LayoutImage> => {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const d = sha(b);
    await writeFile(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const diffIds = layers.map((l) => sha(l));
  const gz = layers.map((l) => gzipSync(l));
  const layerDigests = await Promise.all(gz.map(put));
  const config = Buffer.from(
    JSON.stringify({
      created: '2026-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: opts.cmd ?? ['/bin/sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: layers.map((_, i) => ({ created: '2026-01-01T00:00:00Z', created_by: `layer ${i}` })),
    }),
  );
  const configDigest = await put(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: gz.map((g, i) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigests[i], size: g.length })),
    }),
  );
  const manifestDigest = await put(manifest);
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { dir, manifestDigest, configDigest, layerDigests, diffIds };
};

export const busyboxLayout = async (dir: string, tag = 'latest'): Promise<LayoutImage> => {
  const base = await makeTar(await busyboxEntries());
  const top = await makeTar([{ name: 'etc/motd', content: 'hello from berth\n' }, { name: 'etc/.wh.passwd', content: '' }]);
  return makeOciLayout(dir, tag, [base, top]);
};

const execFileP = promisify(execFile);

/** skopeo copy between transports (plain http registries on loopback). Async: the token server runs in this process. */
export const skopeo = async (args: string[], creds?: { user: string; password: string }): Promise<string> =>
  (
    await execFileP('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', ...(creds ? ['--src-creds', `${creds.user}:${creds.password}`, '--dest-creds', `${creds.user}:${creds.password}`] : []), ...args], {
      encoding: 'utf8',
      maxBuffer: 16 << 20,
    })
  ).stdout;

export const skopeoInspect = async (ref: string, creds?: { user: string; password: string }): Promise<{ Digest: string; Layers: string[] }> =>
  JSON.parse((await execFileP('skopeo', ['inspect', '--tls-verify=false', ...(creds ? ['--creds', `${creds.user}:${creds.password}`] : []), ref], { encoding: 'utf8' })).stdout) as {
    Digest: string;
    Layers: string[];
  };

export const existsPath = existsSync;
