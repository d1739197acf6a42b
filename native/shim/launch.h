/* `berth-shim launch PROGRAM [ARG...]`: starts the engine's process helper
 * (helper.h) as a child of this process, then executes PROGRAM in this
 * process, which keeps the helper's pipes: BERTH_HELPER_FDS tells it
 * "pid,stdin,stdout,stderr" (the helper's pid, our ends of its stdin,
 * stdout and stderr). The launcher (cli/berth.sh) puts it in front of
 * Node for the commands that start containers: the engine's own spawn of
 * the helper is a fork of the Node process, which costs its main thread
 * the fork itself and, after it, a write-protect fault on every page of
 * its heap that it writes again.
 *
 * The helper's parent is this process, so it still dies with PROGRAM
 * (PR_SET_PDEATHSIG), and it still exits at EOF on its stdin. It gets the
 * environment without the launcher's own GLIBC_TUNABLES (when
 * BERTH_LAUNCHER_TUNABLES=1 says the launcher set it) and without
 * BERTH_LAUNCHER_TUNABLES and BERTH_HELPER_FDS, as the engine would have
 * given it. When the helper cannot be started, PROGRAM runs without
 * BERTH_HELPER_FDS (the engine starts its own). */
#ifndef BERTH_SHIM_LAUNCH_H
#define BERTH_SHIM_LAUNCH_H

int launch_main(int argc, char **argv);

#endif
