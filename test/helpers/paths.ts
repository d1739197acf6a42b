// Where the repository, the fixtures and the built binaries are.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixturesBuild = path.join(repoRoot, 'test/fixtures/build');
/** The busybox rootfs with /probe, made by test/fixtures/make-fixtures.sh. */
export const fixtureRootfs = path.join(fixturesBuild, 'rootfs');
export const probeBinary = path.join(fixturesBuild, 'probe');
export const recvttyBinary = path.join(fixturesBuild, 'recvtty');
export const berthRuntimeBinary = path.join(repoRoot, 'native/build/berth-runtime');
