/** berth login / logout: credentials for registries in <config>/auth.json (Docker's format). */
import type { Command } from 'commander';
import { context } from '../context.js';
import { emit } from '../output.js';
import { guard } from '../run.js';

const readStdin = async (): Promise<string> => {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
};

export const registerAuthCommands = (program: Command): void => {
  program
    .command('login')
    .description('log in to a registry (checks the credentials, then saves them)')
    .argument('[server]', 'registry host[:port]', 'docker.io')
    .option('-u, --username <name>')
    .option('-p, --password <password>', 'visible in the process list: prefer --password-stdin')
    .option('--password-stdin', 'read the password from stdin')
    .action(
      guard(async (server: string, o: { username?: string; password?: string; passwordStdin?: boolean }, c: Command) => {
        const ctx = context(c);
        const { EngineFailure } = await import('../../engine/errors.js');
        const { Registry } = await import('../../engine/registry/client.js');
        const { saveCredentials, normalizeAuthKey } = await import('../../engine/registry/credentials.js');
        if (!o.username) throw new EngineFailure({ _tag: 'InvalidSpec', source: 'login', problems: ['give --username'] });
        const password = o.passwordStdin ? await readStdin() : o.password;
        if (password === undefined || password === '') throw new EngineFailure({ _tag: 'InvalidSpec', source: 'login', problems: ['give --password-stdin (or --password)'] });
        const domain = normalizeAuthKey(server);
        const reg = await Registry.open(domain, { credentials: { username: o.username, password }, log: ctx.log });
        await reg.ping();
        await saveCredentials(domain, { username: o.username, password });
        emit(ctx, { server: domain, username: o.username }, () => 'Login Succeeded');
      }),
    );
  program
    .command('logout')
    .description('remove saved credentials for a registry')
    .argument('[server]', 'registry host[:port]', 'docker.io')
    .action(
      guard(async (server: string, _o: unknown, c: Command) => {
        const ctx = context(c);
        const { removeCredentials, normalizeAuthKey } = await import('../../engine/registry/credentials.js');
        const domain = normalizeAuthKey(server);
        const removed = await removeCredentials(domain);
        emit(ctx, { server: domain, removed }, () => (removed ? `Removing login credentials for ${domain}` : `Not logged in to ${domain}`));
      }),
    );
};

export default registerAuthCommands;
