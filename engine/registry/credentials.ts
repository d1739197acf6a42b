/**
 * Registry credentials, stored the way Docker and Podman store them:
 * <config>/auth.json = {"auths": {"<host>": {"auth": base64("user:password")}}}
 * where <config> is $BERTH_CONFIG, else $XDG_CONFIG_HOME/berth, else
 * ~/.config/berth. Docker's ~/.docker/config.json ($DOCKER_CONFIG) is read
 * too (its plain `auths` entries; credential helpers are not run).
 *
 * Also here: the registries settings file <config>/registries.json
 * = {"insecure": ["host:port", ...]} naming registries spoken to over plain
 * HTTP (loopback registries always are).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as t from 'io-ts';
import { decodeJson } from '../store/decode.js';
import { writeFileAtomic } from '../store/fsutil.js';
import { fail, invalidSpec } from '../errors.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

const AuthEntry = t.partial({ auth: t.string, username: t.string, password: t.string, identitytoken: t.string });
export const AuthFile = t.intersection([t.partial({ auths: t.record(t.string, AuthEntry) }), t.partial({ credsStore: t.string, credHelpers: t.record(t.string, t.string) })]);
export type AuthFile = t.TypeOf<typeof AuthFile>;

export const RegistriesFile = t.partial({ insecure: t.array(t.string) });

export const configDir = (): string =>
  process.env['BERTH_CONFIG'] ?? path.join(process.env['XDG_CONFIG_HOME'] ?? path.join(os.homedir(), '.config'), 'berth');
export const authFilePath = (dir = configDir()): string => path.join(dir, 'auth.json');
export const dockerConfigPath = (): string => path.join(process.env['DOCKER_CONFIG'] ?? path.join(os.homedir(), '.docker'), 'config.json');

const readJson = async <A>(codec: t.Type<A, unknown, unknown>, file: string): Promise<A | undefined> => {
  let raw: Buffer;
  try {
    raw = await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return decodeJson(codec, raw, file);
};

/** "https://index.docker.io/v1/" -> "docker.io"; "https://host:5000/x" -> "host:5000". */
export const normalizeAuthKey = (key: string): string => {
  const host = key.replace(/^[a-z]+:\/\//, '').replace(/\/.*$/, '');
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? 'docker.io' : host;
};

const decodeEntry = (e: t.TypeOf<typeof AuthEntry>, source: string): Credentials | undefined => {
  if (e.auth) {
    const plain = Buffer.from(e.auth, 'base64').toString('utf8');
    const i = plain.indexOf(':');
    if (i < 0) return fail(invalidSpec(source, ['auth entry is not base64 of "user:password"']));
    return { username: plain.slice(0, i), password: plain.slice(i + 1) };
  }
  if (e.username !== undefined && e.password !== undefined) return { username: e.username, password: e.password };
  return undefined;
};

const lookup = (file: AuthFile | undefined, domain: string, source: string): Credentials | undefined => {
  for (const [k, v] of Object.entries(file?.auths ?? {})) {
    if (normalizeAuthKey(k) === domain) {
      const c = decodeEntry(v, `${source}: auths.${k}`);
      if (c) return c;
    }
  }
  return undefined;
};

/** Credentials for a registry domain ("docker.io", "127.0.0.1:5000"): Berth's file first, then Docker's. */
export const findCredentials = async (domain: string, dir = configDir()): Promise<Credentials | undefined> => {
  const own = authFilePath(dir);
  const fromOwn = lookup(await readJson(AuthFile, own), domain, own);
  if (fromOwn) return fromOwn;
  const docker = dockerConfigPath();
  return lookup(await readJson(AuthFile, docker), domain, docker);
};

export const saveCredentials = async (domain: string, c: Credentials, dir = configDir()): Promise<void> => {
  const file = authFilePath(dir);
  const cur = (await readJson(AuthFile, file)) ?? {};
  const auths = { ...(cur.auths ?? {}) };
  for (const k of Object.keys(auths)) if (normalizeAuthKey(k) === domain) delete auths[k];
  auths[domain] = { auth: Buffer.from(`${c.username}:${c.password}`).toString('base64') };
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify({ ...cur, auths }, null, 2)}\n`, 0o600);
};

/** Remove saved credentials; false if there were none. */
export const removeCredentials = async (domain: string, dir = configDir()): Promise<boolean> => {
  const file = authFilePath(dir);
  const cur = await readJson(AuthFile, file);
  if (!cur?.auths) return false;
  const auths = { ...cur.auths };
  let found = false;
  for (const k of Object.keys(auths)) {
    if (normalizeAuthKey(k) === domain) {
      delete auths[k];
      found = true;
    }
  }
  if (found) await writeFileAtomic(file, `${JSON.stringify({ ...cur, auths }, null, 2)}\n`, 0o600);
  return found;
};

export const insecureRegistries = async (dir = configDir()): Promise<string[]> => {
  const fromFile = (await readJson(RegistriesFile, path.join(dir, 'registries.json')))?.insecure ?? [];
  const fromEnv = (process.env['BERTH_INSECURE_REGISTRIES'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return [...fromFile, ...fromEnv];
};
