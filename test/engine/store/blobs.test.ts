import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, readdir, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { openBlobStore } from '../../../engine/store/blobs.js';
import { sha256 } from '../../../engine/store/digest.js';
import { EngineFailure } from '../../../engine/errors.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'berth-blobs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('blob store', () => {
  it('stores content under its digest in OCI layout form and reads it back verified', async () => {
    const bs = openBlobStore(dir);
    const data = Buffer.from('hello layers');
    const info = await bs.put(data);
    expect(info.digest).toBe(sha256(data));
    expect(await bs.has(info.digest)).toBe(true);
    expect(await readdir(path.join(dir, 'blobs', 'sha256'))).toEqual([info.digest.slice(7)]);
    expect((await bs.readAll(info.digest)).toString()).toBe('hello layers');
  });

  it('refuses a write whose bytes do not match the digest and leaves nothing behind', async () => {
    const bs = openBlobStore(dir);
    const claimed = sha256('something else');
    const w = await bs.writer({ digest: claimed });
    await w.write(Buffer.from('actual bytes'));
    await expect(w.commit()).rejects.toMatchObject({ error: { _tag: 'Corrupt' } });
    expect(await bs.has(claimed)).toBe(false);
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
  });

  it('refuses a write longer than the declared size as soon as it overflows', async () => {
    const bs = openBlobStore(dir);
    const data = Buffer.from('0123456789');
    const w = await bs.writer({ digest: sha256(data), size: 5 });
    await expect(w.write(data)).rejects.toBeInstanceOf(EngineFailure);
    expect(await readdir(path.join(dir, 'ingest'))).toEqual([]);
  });

  it('refuses a truncated write (size mismatch at commit)', async () => {
    const bs = openBlobStore(dir);
    const data = Buffer.from('0123456789');
    const w = await bs.writer({ digest: sha256(data), size: 10 });
    await w.write(data.subarray(0, 4));
    await expect(w.commit()).rejects.toMatchObject({ error: { _tag: 'Corrupt' } });
  });

  it('detects a blob corrupted on disk when reading it', async () => {
    const bs = openBlobStore(dir);
    const info = await bs.put(Buffer.from('{"a":1}'));
    await writeFile(bs.pathOf(info.digest), '{"a":2}');
    await expect(bs.readAll(info.digest)).rejects.toMatchObject({ error: { _tag: 'Corrupt' } });
  });

  it('cleans ingest files of dead processes but not its own', async () => {
    const bs = openBlobStore(dir);
    await mkdir(path.join(dir, 'ingest'), { recursive: true });
    await writeFile(path.join(dir, 'ingest', '999999999-dead'), 'x');
    const w = await bs.writer({ digest: sha256('x') });
    expect(await bs.cleanIngest()).toBe(1);
    await w.write(Buffer.from('x'));
    await w.commit();
    expect(await bs.has(sha256('x'))).toBe(true);
  });

  it('lists and deletes blobs', async () => {
    const bs = openBlobStore(dir);
    const a = await bs.put(Buffer.from('a'));
    const b = await bs.put(Buffer.from('bb'));
    expect((await bs.list()).map((x) => x.digest).sort()).toEqual([a.digest, b.digest].sort());
    await bs.delete(a.digest);
    expect(await bs.has(a.digest)).toBe(false);
  });
});
