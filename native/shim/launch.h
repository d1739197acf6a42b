/* `berth-shim launch PROGRAM [ARG...]`: runs PROGRAM in a child of this
 * process (the launcher), with the engine's process helper (helper.h)
 * started as a child of that child before PROGRAM is executed there, which
 * keeps the helper's pipes: BERTH_HELPER_FDS tells it
 * "pid,stdin,stdout,stderr" (the helper's pid, our ends of its stdin,
 * stdout and stderr). The launcher (cli/berth.sh) puts it in front of
 * Node for the commands that start containers: the engine's own spawn of
 * the helper is a fork of the Node process, which costs its main thread
 * the fork itself and, after it, a write-protect fault on every page of
 * its heap that it writes again.
 *
 * The launcher waits. BERTH_LAUNCHER_REPORT_FD names the write end of a
 * pipe on which PROGRAM may report its exit status ("0".."255" and a
 * newline) once its work is done and its output written: the launcher
 * then exits with it at once, while PROGRAM still tears itself down
 * (Node: unmapping its heap and binary, ~4-6 ms; cli/startup.ts
 * reportExitToLauncher). Without a report (or with anything else on the
 * pipe) the launcher ends as PROGRAM ends: its exit status, or its signal
 * raised again. A signal that a process sends to the launcher (HUP, INT,
 * QUIT, TERM, USR1, USR2, ALRM) is passed on to PROGRAM; one from the
 * terminal is not (it reached PROGRAM too, in the same process group).
 * PROGRAM dies with the launcher (PR_SET_PDEATHSIG SIGKILL), as it did
 * when it was the launcher's own process. After a report the launcher has
 * gone first, so PROGRAM and its helper end as orphans, reaped by pid 1
 * (or the nearest subreaper), as a container's daemonized shim is; an init
 * that reaps late shows them as zombies meanwhile (~1-2 s on these VMs).
 *
 * The helper's parent is PROGRAM's process, so it still dies with PROGRAM
 * (PR_SET_PDEATHSIG), and it still exits at EOF on its stdin; it keeps no
 * other inherited fd (not the report pipe). It gets the environment
 * without the launcher's own GLIBC_TUNABLES (when BERTH_LAUNCHER_TUNABLES=1
 * says the launcher set it) and NODE_OPTIONS (when BERTH_LAUNCHER_NODE_OPTIONS=1
 * does), without BERTH_LAUNCHER_TUNABLES, BERTH_LAUNCHER_NODE_OPTIONS,
 * BERTH_HELPER_FDS and BERTH_LAUNCHER_REPORT_FD, as the engine would have
 * given it. When the helper cannot be started, PROGRAM runs without
 * BERTH_HELPER_FDS (the engine starts its own); when the launcher cannot
 * fork, PROGRAM runs in its process, without a report pipe. */
#ifndef BERTH_SHIM_LAUNCH_H
#define BERTH_SHIM_LAUNCH_H

int launch_main(int argc, char **argv);

#endif
