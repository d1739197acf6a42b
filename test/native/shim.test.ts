// berth-shim (native/shim/) with real processes: a fake runtime that runs a
// shell script as the container (test/helpers/shim/fake-runtime.sh), and
// runc with a busybox bundle when runc is installed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AttachClient, type Box, alive, buildShim, childrenOf, cleanupAll, fakeBox, memoryOf, notifyClient,
  fakeRuntime, procStat, readExit, readLog, runShim, runtime, shimArgs, shimBinary, sleep, startShim, trackBox,
  trackPid,
  waitFor, waitShimGone,
} from '../helpers/shim/harness.js';

const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

beforeAll(() => buildShim());
afterEach(async () => cleanupAll());

describe('berth-shim with the fake runtime', () => {
  it('reports the shim and init pids once created, detached from its caller, init reparented to it', async () => {
    const box = fakeBox('exec sleep 30');
    const { shimPid, pid } = await startShim(box);
    expect(fs.readFileSync(path.join(box.state, 'shim.pid'), 'utf8').trim()).toBe(String(shimPid));
    const shim = procStat(shimPid);
    const self = procStat(process.pid);
    expect(Number(shim[4])).not.toBe(process.pid); // ppid
    expect(shim[6]).not.toBe(self[6]); // session
    expect(Number(procStat(pid)[4])).toBe(shimPid); // subreaper got the init
    expect(fs.readFileSync(`/proc/${shimPid}/status`, 'utf8')).toMatch(/^PPid:/m);
    // Its own stdio is /dev/null, not our pipes.
    for (const fd of [0, 1, 2]) expect(fs.readlinkSync(`/proc/${shimPid}/fd/${fd}`)).toBe('/dev/null');
    expect(fs.existsSync(path.join(box.state, 'shim.sock'))).toBe(true);
    expect(fs.existsSync(path.join(box.state, 'attach.sock'))).toBe(true);
    expect(readExit(box)).toBeUndefined();
  });

  it('logs stdout and stderr as Docker json-file lines with stream and time, partial lines included', async () => {
    const box = fakeBox(`echo one; echo two >&2; printf 'tab\\there "q" \\\\ \\001 \\377\\n'; printf 'no newline'; exit 0`);
    await startShim(box);
    const before = new Date().toISOString();
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    const after = new Date().toISOString();
    const recs = readLog(box.log);
    // Two pipes: order holds within a stream, not across them (as in Docker).
    const of = (stream: string) => recs.filter((r) => r.stream === stream).map((r) => r.log);
    expect(of('stdout')).toEqual(['one\n', 'tab\there "q" \\ \u0001 \ufffd\n', 'no newline']);
    expect(of('stderr')).toEqual(['two\n']);
    expect(recs).toHaveLength(4);
    for (const r of recs) {
      expect(r.time).toMatch(RFC3339_NANO);
      expect(r.time.slice(0, 23) >= before.slice(0, 23)).toBe(true);
      expect(r.time.slice(0, 23) <= after.slice(0, 23)).toBe(true);
    }
    // Keys in Docker's order.
    expect(fs.readFileSync(box.log, 'utf8').split('\n')[0]).toMatch(/^\{"log":"one\\n","stream":"stdout","time":"/);
  });

  it('splits a line longer than 16 KiB into a partial record and the rest', async () => {
    const box = fakeBox(`head -c 20000 /dev/zero | tr '\\0' a; echo; echo next`);
    await startShim(box);
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    const recs = readLog(box.log);
    expect(recs.map((r) => r.log.length)).toEqual([16384, 20000 - 16384 + 1, 5]);
    expect(recs.map((r) => r.log).join('')).toBe('a'.repeat(20000) + '\nnext\n');
  });

  it('rotates the log at the size limit, keeping --log-max-files files', async () => {
    const box = fakeBox(`i=0; while [ $i -lt 300 ]; do echo "line $i of the rotation test"; i=$((i+1)); done`);
    await startShim(box, ['--log-max-size', '4k', '--log-max-files', '3']);
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    const files = [`${box.log}.2`, `${box.log}.1`, box.log];
    for (const f of files) expect(fs.statSync(f).size).toBeLessThanOrEqual(4096);
    expect(fs.existsSync(`${box.log}.3`)).toBe(false);
    // Oldest to newest, the kept lines are one unbroken run ending at the last line.
    const nums = files.flatMap((f) => readLog(f).map((r) => Number(/line (\d+) /.exec(r.log)?.[1])));
    expect(nums.at(-1)).toBe(299);
    nums.forEach((n, i) => i > 0 && expect(n).toBe((nums[i - 1] as number) + 1));
    expect(nums.length).toBeGreaterThan(60);
    expect(nums.length).toBeLessThan(300);
  });

  it('starts the file over at the size limit with --log-max-files 1', async () => {
    const box = fakeBox(`i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done`);
    await startShim(box, ['--log-max-size', '1k']);
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    expect(fs.statSync(box.log).size).toBeLessThanOrEqual(1024);
    expect(fs.existsSync(`${box.log}.1`)).toBe(false);
    const kept = readLog(box.log).map((r) => r.log);
    expect(kept.at(-1)).toBe('line 99\n');
    expect(kept.length).toBeGreaterThan(3);
  });

  it('records the exit code in exit.json', async () => {
    const box = fakeBox('exit 3');
    const { pid } = await startShim(box);
    const t0 = Date.now();
    runtime(box, 'start', box.id);
    const rec = await waitShimGone(box);
    expect(rec).toMatchObject({ pid, exitCode: 3, signal: null });
    expect(rec.exitedAt).toMatch(RFC3339_NANO);
    expect(Math.abs(Date.parse(rec.exitedAt) - t0)).toBeLessThan(10_000);
    expect(rec.oomKilled).toBeUndefined(); // same cgroup as the shim: it cannot tell
    // The shim leaves nothing but the record (and the runtime's pid file).
    expect(fs.readdirSync(box.state).sort()).toEqual(['exit.json', 'init.pid']);
  });

  it.each([
    ['KILL', 137, 'SIGKILL'],
    ['TERM', 143, 'SIGTERM'],
  ])('records a death by SIG%s as %d with the signal name', async (sig, code, name) => {
    const box = fakeBox('exec sleep 30');
    await startShim(box);
    runtime(box, 'start', box.id);
    await waitFor('sleep to run', () => fs.readFileSync(`/proc/${box.pid}/cmdline`, 'utf8').startsWith('sleep'));
    runtime(box, 'kill', box.id, sig);
    const rec = await waitShimGone(box);
    expect(rec).toMatchObject({ exitCode: code, signal: name });
  });

  it.each([
    ['succeeds', false],
    ['fails', true],
  ])('with --rm, reports the exit before the runtime deletes the container; a delete that %s is in exit.json after', async (_what, fails) => {
    const box = fakeBox('exit 5');
    // the fake runtime, with a delete that takes 0.4 s (and then fails, when asked to)
    box.runtime = path.join(box.dir, 'slow-delete.sh');
    fs.writeFileSync(box.runtime, [
      '#!/bin/sh',
      'for a in "$@"; do',
      `  if [ "$a" = delete ]; then sleep 0.4; ${fails ? 'echo "cannot delete: busy" >&2; exit 1; ' : ''}fi`,
      'done',
      `exec ${fakeRuntime} "$@"`,
    ].join('\n'), { mode: 0o755 });
    const { shimPid } = await startShim(box, ['--rm']);
    const exit = await notifyClient(box);
    runtime(box, 'start', box.id);
    expect(JSON.parse(await exit.line)).toMatchObject({ exitCode: 5 });
    // told while the delete is under way: the shim and the runtime's state are still there
    expect(alive(shimPid)).toBe(true);
    expect(fs.existsSync(path.join(box.runtimeRoot, box.id))).toBe(true);
    expect(fs.existsSync(path.join(box.state, 'shim.pid'))).toBe(true);
    await waitShimGone(box);
    const rec = readExit(box)!; // as the shim left it
    expect(rec.exitCode).toBe(5);
    expect(fs.existsSync(path.join(box.runtimeRoot, box.id))).toBe(fails);
    if (fails) expect(rec.cleanupError).toMatch(/failed to delete container .*cannot delete: busy/);
    else expect(rec.cleanupError).toBeUndefined();
  });

  it('starts the exit command once the exit is recorded, detached, with its arguments, in /, with only its stdio', async () => {
    const box = fakeBox('exit 6');
    const seen = path.join(box.dir, 'exit-command.out');
    const command = path.join(box.dir, 'exit-command.sh');
    // what it sees: its arguments, cwd, the exit record by then, its fds, and its blocked and ignored signals
    fs.writeFileSync(command, [
      '#!/bin/sh',
      `exec > ${seen}.tmp`,
      'echo "args $*"; echo "cwd $(pwd)"',
      `echo "exit $(cat ${path.join(box.state, 'exit.json')})"`,
      'for f in /proc/$$/fd/*; do echo "fd ${f##*/} $(readlink $f)"; done',
      // grep's own: dash blocks every signal of its own while it forks and waits, and gives its children back the mask it got
      "grep -E '^Sig(Blk|Ign)' /proc/self/status",
      `mv ${seen}.tmp ${seen}`,
    ].join('\n'), { mode: 0o755 });
    const { shimPid } = await startShim(box, ['--rm', '--exit-command', command, '--exit-command-arg', 'container', '--exit-command-arg', 'a b']);
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    await waitFor('the exit command to have run', () => fs.existsSync(seen));
    const lines = fs.readFileSync(seen, 'utf8').split('\n');
    expect(lines[0]).toBe('args container a b');
    expect(lines[1]).toBe('cwd /');
    expect(JSON.parse(lines[2]!.slice('exit '.length))).toMatchObject({ exitCode: 6 });
    // its stdio (the shim's /dev/null; stdout sent to the file above), the shell's own (the script, a
    // command substitution's pipe), and no fd of the shim's: no socket, signalfd, epoll or log
    const fds = lines.filter((l) => l.startsWith('fd '));
    expect(fds).toContain('fd 0 /dev/null');
    expect(fds).toContain('fd 2 /dev/null');
    expect(fds.filter((l) => /socket:|anon_inode:|\.log|exit\.json/.test(l))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('Sig'))).toEqual(['SigBlk:\t0000000000000000', 'SigIgn:\t0000000000000000']);
    expect(alive(shimPid)).toBe(false);
  });

  it("skips the exit command when the state dir says a command collects the exit ('collecting')", async () => {
    const box = fakeBox('sleep 0.5; exit 0');
    const ran = path.join(box.dir, 'ran');
    const command = path.join(box.dir, 'exit-command.sh');
    fs.writeFileSync(command, `#!/bin/sh\ntouch ${ran}\n`, { mode: 0o755 });
    await startShim(box, ['--exit-command', command]);
    fs.writeFileSync(path.join(box.state, 'collecting'), '');
    runtime(box, 'start', box.id);
    await waitShimGone(box);
    await sleep(300);
    expect(fs.existsSync(ran)).toBe(false);
  });

  it('tells exit-socket clients of the exit without polling, and late comers find exit.json', async () => {
    const box = fakeBox('sleep 0.3; exit 4');
    await startShim(box);
    const early = await notifyClient(box);
    const second = await notifyClient(box);
    runtime(box, 'start', box.id);
    const line = await early.line;
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toMatchObject({ exitCode: 4, signal: null });
    expect(await second.line).toBe(line);
    // The line is exit.json, which was there before the line was sent.
    expect(fs.readFileSync(path.join(box.state, 'exit.json'), 'utf8')).toBe(line);
    await waitShimGone(box);
    await expect(notifyClient(box)).rejects.toThrow(/ENOENT|ECONNREFUSED/);
  });

  it('serves attach: live output as stdcopy frames, stdin, detach and re-attach', async () => {
    const box = fakeBox(
      'echo ready; while read l; do echo "got $l"; echo "err $l" >&2; [ "$l" = quit ] && exit 0; done; exit 9',
    );
    await startShim(box, ['--stdin']);
    const a = await AttachClient.connect(box);
    runtime(box, 'start', box.id);
    await a.waitText('ready\n', 1);
    a.stdin('hello\n');
    await a.waitText('got hello\n', 1);
    await a.waitText('err hello\n', 2);
    // Detach: the container keeps running.
    a.close();
    await sleep(200);
    expect(alive(box.pid as number)).toBe(true);
    expect(readExit(box)).toBeUndefined();
    const b = await AttachClient.connect(box);
    b.stdin('again\n');
    await b.waitText('got again\n', 1);
    expect(b.text()).not.toContain('ready'); // output from before it attached is in the log only
    b.stdin('quit\n');
    await b.waitText('got quit\n', 1);
    await b.waitEnd(); // closed once the output has ended and exit.json is written
    expect(readExit(box)).toMatchObject({ exitCode: 0 });
    const logged = readLog(box.log).map((r) => `${r.stream}:${r.log}`);
    expect(logged).toEqual([
      'stdout:ready\n', 'stdout:got hello\n', 'stderr:err hello\n', 'stdout:got again\n',
      'stderr:err again\n', 'stdout:got quit\n', 'stderr:err quit\n',
    ]);
  });

  it('closes the container stdin on a close frame, or with --stdin-once when the client ends its input', async () => {
    const box = fakeBox('cat; echo "done $?"');
    await startShim(box, ['--stdin']);
    const a = await AttachClient.connect(box);
    runtime(box, 'start', box.id);
    a.stdin('abc\n');
    await a.waitText('abc\n', 1);
    a.closeStdin();
    await a.waitText('done 0\n', 1);
    expect((await waitShimGone(box)).exitCode).toBe(0);

    const once = fakeBox('cat; echo "done $?"');
    await startShim(once, ['--stdin', '--stdin-once']);
    const b = await AttachClient.connect(once);
    runtime(once, 'start', once.id);
    b.stdin('xyz\n');
    b.endInput(); // half-close: output still flows to this client
    await b.waitText('xyz\ndone 0\n', 1);
    expect((await waitShimGone(once)).exitCode).toBe(0);
  });

  it('without --stdin the container reads EOF and attach input is dropped', async () => {
    const box = fakeBox('if read l; then echo "read $l"; else echo eof; fi');
    await startShim(box);
    const a = await AttachClient.connect(box);
    a.stdin('ignored\n');
    runtime(box, 'start', box.id);
    await a.waitText('eof\n', 1);
    await waitShimGone(box);
  });

  it('fails with the runtime stderr when create fails, and leaves no shim behind', async () => {
    const box = fakeBox('true');
    fs.rmSync(path.join(box.bundle, 'run.sh'));
    const r = await runShim(box);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^berth-shim: runtime '.*fake-runtime\.sh' failed to create container 'berth-test-\w+' \(exit status 1\): fake-runtime: bundle '.*' has no executable run\.sh\n$/);
    await waitFor('the failed shim to leave', () => !shimRunningFor(box));
    expect(fs.readdirSync(box.state)).toEqual([]);
  });

  it('runs only create through --runtime-exec, and the runtime itself when that file cannot be had', async () => {
    const box = fakeBox('echo hi');
    const calls = path.join(box.bundle, 'runtime-exec-calls');
    const wrapper = path.join(box.bundle, 'runtime-exec.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> '${calls}'\nexec '${fakeRuntime}' "$@"\n`, { mode: 0o755 });
    await startShim(box, ['--runtime-exec', wrapper, '--rm']);
    runtime(box, 'start', box.id);
    expect((await waitShimGone(box)).exitCode).toBe(0);
    // the delete that --rm runs goes to the runtime itself
    const lines = fs.readFileSync(calls, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/ create --bundle /);

    const fallback = fakeBox('echo hi');
    await startShim(fallback, ['--runtime-exec', path.join(fallback.bundle, 'no-such-runtime')]);
    runtime(fallback, 'start', fallback.id);
    expect((await waitShimGone(fallback)).exitCode).toBe(0);
    expect(readLog(fallback.log).map((r) => r.log)).toEqual(['hi\n']);

    // a file under /proc is taken only from the process that started the shim (its parent): another
    // process's (here the shim's own, /proc/self) could be one that got a gone helper's pid
    const other = fakeBox('echo hi');
    await startShim(other, ['--runtime-exec', '/proc/self/exe']);
    runtime(other, 'start', other.id);
    expect((await waitShimGone(other)).exitCode).toBe(0);
    expect(readLog(other.log).map((r) => r.log)).toEqual(['hi\n']);
  });

  it('rejects bad usage with status 2 and says what is wrong', async () => {
    const box = fakeBox('true');
    const r = spawnSync(shimBinary, [...shimArgs(box), '--log-max-size', '12q'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("--log-max-size: expected a byte count such as 10m, got '12q'");
    const relative = spawnSync(shimBinary, [...shimArgs(box), '--runtime-exec', 'fd/3'], { encoding: 'utf8' });
    expect(relative.status).toBe(2);
    expect(relative.stderr).toContain("--runtime-exec: expected an absolute path, got 'fd/3'");
    const relativeExit = spawnSync(shimBinary, [...shimArgs(box), '--exit-command', 'berth'], { encoding: 'utf8' });
    expect(relativeExit.status).toBe(2);
    expect(relativeExit.stderr).toMatch(/--exit-command: expected an absolute path, got 'berth'/);
    const argFirst = spawnSync(shimBinary, [...shimArgs(box), '--exit-command-arg', 'x', '--exit-command', '/bin/true'], { encoding: 'utf8' });
    expect(argFirst.status).toBe(2);
    expect(argFirst.stderr).toMatch(/--exit-command must come once, before its --exit-command-arg's/);
    const missing = spawnSync(shimBinary, ['--id', 'x'], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('--state-dir is required');
  });

  it('refuses a second shim on a state dir whose shim is alive', async () => {
    const box = fakeBox('exec sleep 30');
    await startShim(box);
    const other = { ...box, id: `${box.id}-2`, shimPid: undefined, pid: undefined };
    const r = await runShim(other);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`a shim already serves container '${other.id}'`);
    expect(alive(box.shimPid as number)).toBe(true);
  });

  it('survives the death of whoever started it, and of its process group', async () => {
    const box = fakeBox('read go < "$0.go"; echo survived; exit 6');
    execFileSync('mkfifo', [path.join(box.bundle, 'run.sh.go')]);
    // The starter: a shell in its own process group that starts the shim and lingers.
    const starter = spawn('/bin/sh', ['-c', `"$0" "$@"; sleep 60`, shimBinary, ...shimArgs(box)], {
      detached: true,
      stdio: 'ignore',
    });
    const starterPid = starter.pid as number;
    trackPid(starterPid);
    const shimPid = await waitFor('shim.pid', () => {
      try {
        const n = Number(fs.readFileSync(path.join(box.state, 'shim.pid'), 'utf8'));
        return n > 1 ? n : undefined;
      } catch {
        return undefined;
      }
    });
    box.shimPid = shimPid;
    box.pid = Number(fs.readFileSync(path.join(box.state, 'init.pid'), 'utf8'));
    await waitFor('the starter to linger', () => childrenOf(starterPid).some((c) => c.state !== 'Z'));
    process.kill(-starterPid, 'SIGKILL'); // the whole group
    await waitFor('the starter to die', () => !alive(starterPid));
    await sleep(200);
    expect(alive(shimPid)).toBe(true);
    expect(alive(box.pid)).toBe(true);
    runtime(box, 'start', box.id);
    fs.writeFileSync(path.join(box.bundle, 'run.sh.go'), 'go\n');
    expect(await waitShimGone(box)).toMatchObject({ exitCode: 6 });
    expect(readLog(box.log).map((r) => r.log)).toEqual(['survived\n']);
  });

  it('passes the runtime no signal the starter ignored or blocked, and no fd but its stdio', async () => {
    const box = fakeBox('true');
    // A runtime that notes its signal state and open fds, then acts as the fake one.
    const noted = path.join(box.dir, 'runtime-signals');
    const fds = path.join(box.dir, 'runtime-fds');
    box.runtime = path.join(box.dir, 'noting-runtime.sh');
    fs.writeFileSync(box.runtime, [
      '#!/bin/sh',
      `[ -e '${noted}' ] || grep -E '^Sig(Ign|Blk)' /proc/self/status > '${noted}'`,
      `[ -e '${fds}' ] || ls -l /proc/$$/fd > '${fds}'`,
      `exec '${fakeRuntime}' "$@"`,
      '',
    ].join('\n'), { mode: 0o755 });
    // The starter ignores INT, TERM and USR1; exec keeps that for the shim.
    const r = spawnSync('/bin/sh', ['-c', 'trap "" INT TERM USR1; exec "$@"', 'starter', shimBinary, ...shimArgs(box)],
      { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    const ready = JSON.parse(r.stdout) as { shimPid: number; pid: number };
    box.shimPid = ready.shimPid;
    box.pid = ready.pid;
    expect(fs.readFileSync(noted, 'utf8')).toBe('SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n');
    // Besides the shell's own (its script, a saved stdout), only the
    // container's stdout and stderr pipes: no socket, log, sync pipe.
    const targets = fs.readFileSync(fds, 'utf8').split('\n').filter((l) => l.includes(' -> ')).map((l) => l.split(' -> ')[1]);
    expect(targets.filter((t) => /socket:|ctr\.log|state/.test(t ?? ''))).toEqual([]);
    expect(new Set(targets.filter((t) => t?.startsWith('pipe:'))).size).toBeLessThanOrEqual(2);
    runtime(box, 'start', box.id);
    await waitShimGone(box);
  });

  it('reaps orphans of the container as subreaper and leaves no zombie', async () => {
    // The subshell exits at once: its sleeps are orphans, reparented to the shim.
    const box = fakeBox('(sleep 0.2 & sleep 0.3 &); echo spawned; sleep 1; exit 0');
    const { shimPid, pid } = await startShim(box);
    runtime(box, 'start', box.id);
    await waitFor('orphans reparented to the shim', () =>
      childrenOf(shimPid).filter((c) => c.pid !== pid).length >= 2 ? true : undefined);
    await sleep(600); // the orphans have exited
    const kids = childrenOf(shimPid);
    expect(kids.filter((c) => c.state === 'Z')).toEqual([]);
    expect(kids.map((c) => c.pid)).toEqual([pid]);
    await waitShimGone(box);
    // The shim itself is left to pid 1 (its parent exited at once), never to its starter.
    if (fs.existsSync(`/proc/${shimPid}`)) expect(Number(procStat(shimPid)[4])).toBe(1);
  });

  it('does not wait for orphans that hold the output open past the drain time', async () => {
    const box = fakeBox('(sleep 5 & echo $! > "$0.orphan"); echo bye; exit 2');
    await startShim(box);
    runtime(box, 'start', box.id);
    const t0 = Date.now();
    const orphan = await waitFor('the orphan pid', () => {
      try {
        const n = Number(fs.readFileSync(path.join(box.bundle, 'run.sh.orphan'), 'utf8'));
        return n > 1 ? n : undefined;
      } catch {
        return undefined;
      }
    });
    trackPid(orphan);
    const rec = await waitShimGone(box);
    expect(rec.exitCode).toBe(2);
    expect(Date.now() - t0).toBeLessThan(4500);
    expect(alive(orphan)).toBe(true); // still holding the pipe when the shim left
    expect(readLog(box.log).map((r) => r.log)).toEqual(['bye\n']);
  });

  it('reports its memory (VmRSS and Pss) while holding a running container', async () => {
    const box = fakeBox('echo up; exec sleep 30');
    const { shimPid } = await startShim(box, ['--stdin']);
    runtime(box, 'start', box.id);
    const a = await AttachClient.connect(box);
    a.stdin('x\n');
    await waitFor('output logged', () => readLog(box.log).length > 0);
    a.close();
    await sleep(100);
    const mem = memoryOf(shimPid);
    console.log(`berth-shim memory (fake runtime, pipes): VmRSS ${mem.vmRssKiB} KiB, Pss ${mem.pssKiB} KiB, private dirty ${mem.privateDirtyKiB} KiB`);
    expect(mem.vmRssKiB).toBeGreaterThan(0);
    expect(mem.pssKiB).toBeGreaterThan(0);
    // what each container costs beyond the shared text: 60-64 KiB since the shim's memory work
    // (native/shim/README.md, Memory); a page table of pointers or a buffer touched at setup
    // anywhere in the binary shows here first (issue 4: a third of conmon's 362 KiB Pss)
    expect(mem.privateDirtyKiB).toBeLessThanOrEqual(96);
  });
});

function shimRunningFor(box: Box): boolean {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8');
      if (cmd.startsWith(shimBinary) && cmd.includes(box.state)) return true;
    } catch {
      // gone
    }
  }
  return false;
}

const runcPath = ['/usr/sbin/runc', '/usr/bin/runc', '/usr/local/sbin/runc', '/usr/local/bin/runc'].find((p) =>
  fs.existsSync(p));
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
const runcSkip = !runcPath ? 'runc is not installed' : !busybox ? 'busybox is not installed'
  : process.getuid?.() !== 0 ? 'runc needs root' : undefined;

/** A bundle from `runc spec` around a rootfs holding only static busybox. */
function runcBox(args: string[], terminal: boolean, memoryLimit?: number): Box {
  const dir = fs.mkdtempSync('/tmp/berth-test-shim-');
  const box: Box = trackBox({
    dir,
    state: path.join(dir, 'state'),
    bundle: path.join(dir, 'bundle'),
    runtimeRoot: path.join(dir, 'runc'),
    log: path.join(dir, 'ctr.log'),
    id: `berth-test-shim-${path.basename(dir).slice(-6)}`,
    runtime: runcPath as string,
  });
  fs.mkdirSync(path.join(box.bundle, 'rootfs/bin'), { recursive: true });
  fs.copyFileSync(busybox as string, path.join(box.bundle, 'rootfs/bin/busybox'));
  fs.chmodSync(path.join(box.bundle, 'rootfs/bin/busybox'), 0o755);
  execFileSync(runcPath as string, ['spec'], { cwd: box.bundle });
  const cfgPath = path.join(box.bundle, 'config.json');
  const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as {
    process: { terminal: boolean; args: string[] };
    linux: { cgroupsPath?: string; resources?: { memory?: { limit: number } } };
  };
  cfg.process.terminal = terminal;
  cfg.process.args = ['/bin/busybox', ...args];
  cfg.linux.cgroupsPath = `/${box.id}`;
  if (memoryLimit !== undefined) cfg.linux.resources = { ...cfg.linux.resources, memory: { limit: memoryLimit } };
  fs.writeFileSync(cfgPath, JSON.stringify(cfg));
  return box;
}

describe.skipIf(runcSkip !== undefined)(`berth-shim with runc${runcSkip ? ` (skipped: ${runcSkip})` : ''}`, () => {
  it('logs, records the exit and cleans up the container with --rm', async () => {
    const box = runcBox(['sh', '-c', 'echo runc out; echo runc err >&2; exit 7'], false);
    const { shimPid, pid } = await startShim(box, ['--rm']);
    expect(Number(procStat(pid)[4])).toBe(shimPid);
    const exit = await notifyClient(box);
    runtime(box, 'start', box.id);
    const rec = JSON.parse(await exit.line) as { exitCode: number; oomKilled?: boolean; cleanupError?: string };
    expect(rec).toMatchObject({ exitCode: 7, signal: null, oomKilled: false });
    expect(rec.cleanupError).toBeUndefined();
    await waitShimGone(box);
    expect(readLog(box.log).map((r) => `${r.stream}:${r.log}`)).toEqual(['stdout:runc out\n', 'stderr:runc err\n']);
    expect(runtime(box, 'list', '-q')).not.toContain(box.id);
  });

  it('gives attach the raw pty, resizes it, feeds it stdin', async () => {
    const box = runcBox(['sh', '-c', 'stty size; read line; echo "got:$line"; stty size; exit 5'], true);
    await startShim(box, ['--terminal', '--stdin', '--rm']);
    const a = await AttachClient.connect(box, false);
    a.resize(30, 100);
    await sleep(100);
    runtime(box, 'start', box.id);
    await a.waitText('30 100\r\n');
    a.resize(40, 120);
    a.stdin('hello\r');
    await a.waitText(/got:hello\r\n40 120\r\n/);
    await a.waitEnd();
    expect(readExit(box)).toMatchObject({ exitCode: 5 });
    const logged = readLog(box.log);
    expect(logged.every((r) => r.stream === 'stdout')).toBe(true);
    expect(logged.map((r) => r.log).join('')).toContain('got:hello\r\n');
  });

  it('records a SIGKILL from runc kill and reports the memory of a shim holding a runc container', async () => {
    const box = runcBox(['sleep', '30'], false);
    const { shimPid } = await startShim(box, ['--rm']);
    runtime(box, 'start', box.id);
    await sleep(200);
    const mem = memoryOf(shimPid);
    console.log(`berth-shim memory (runc, pipes): VmRSS ${mem.vmRssKiB} KiB, Pss ${mem.pssKiB} KiB`);
    expect(mem.pssKiB).toBeGreaterThan(0);
    runtime(box, 'kill', box.id, 'KILL');
    expect(await waitShimGone(box)).toMatchObject({ exitCode: 137, signal: 'SIGKILL', oomKilled: false });
  });

  it('records oomKilled when the kernel OOM-kills the container in its memory cgroup', async () => {
    // The shell doubles a variable until it outgrows 8 MiB.
    const box = runcBox(['sh', '-c', 'echo start; x=a; while true; do x=$x$x; done'], false, 8 * 1024 * 1024);
    await startShim(box, ['--rm']);
    runtime(box, 'start', box.id);
    expect(await waitShimGone(box)).toMatchObject({ exitCode: 137, signal: 'SIGKILL', oomKilled: true });
  });

  it('passes runc a console socket path that fits even under a state dir too long for sun_path', async () => {
    const box = runcBox(['echo', 'hi'], true);
    box.state = path.join(box.dir, 'd'.repeat(120));
    await startShim(box, ['--terminal', '--rm']);
    runtime(box, 'start', box.id);
    expect(await waitShimGone(box)).toMatchObject({ exitCode: 0 });
    expect(readLog(box.log).map((r) => r.log)).toEqual(['hi\r\n']);
  });

  it('fails with runc\'s own error when the bundle is bad', async () => {
    const box = runcBox(['true'], false);
    fs.rmSync(path.join(box.bundle, 'rootfs'), { recursive: true });
    const r = await runShim(box);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/failed to create container 'berth-test-shim-\w+' \(exit status 1\): .*rootfs/s);
    await waitFor('the failed shim to leave', () => !shimRunningFor(box));
  });
});
