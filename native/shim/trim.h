/* Giving back the memory that only the shim's setup needed. Every page a
 * process touches stays with it until it exits; setup (argv handling,
 * `runtime create`, the cgroup lookup, error messages) runs deep on the
 * stack, the event loop after it does not. One shim lives as long as its
 * container, so the difference is held per container for that long. */
#ifndef BERTH_SHIM_TRIM_H
#define BERTH_SHIM_TRIM_H

/* Drops the stack pages below the caller's frame (MADV_DONTNEED: they come
 * back zeroed, and only if touched again). Call it from a shallow frame,
 * after the deep calls have returned. Best effort: on failure nothing is
 * dropped and nothing else changes. */
void trim_stack(void);

/* Heap settings for a process that allocates only for bursts (an attach
 * client's backlog, stdin waiting for the container): what is freed goes
 * back to the kernel instead of staying as a 128 KiB pad, and a large buffer
 * is mapped on its own and unmapped when freed. */
void trim_heap_settings(void);

#endif
