/* `berth-shim helper`: the engine's process helper. One per engine process,
 * started on the first native call (or before the engine, by `berth-shim
 * launch`: launch.h) and talking over its stdin/stdout: it
 * runs programs (fork + exec from a small static process, where a fork of
 * the engine's Node process costs milliseconds of page-table copying),
 * mounts and unmounts with mount(2)/umount2(2), holds flock(2) locks on
 * the engine's behalf, and makes container networks through rtnetlink
 * (netlink.h: a netns bound on a file, veth pairs, link deletion, bridges;
 * the engine ran `ip` and `unshare` for these before). It exits when its
 * stdin reaches EOF (the engine is gone), which also releases every lock it
 * holds. Protocol: README.md, and the comment at the top of helper.c (which
 * has the network requests). */
#ifndef BERTH_SHIM_HELPER_H
#define BERTH_SHIM_HELPER_H

int helper_main(void);

#endif
