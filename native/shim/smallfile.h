/* Small files (pid files, /proc/<pid>/cgroup, /proc/<pid>/stat) read into
 * the caller's buffer. The shim allocates nothing on the heap before its
 * event loop: heap pages touched once stay with the process for its life. */
#ifndef BERTH_SHIM_SMALLFILE_H
#define BERTH_SHIM_SMALLFILE_H

#include <stddef.h>

#include "error.h"

/* Reads path into buf (NUL-terminated); fails with EFBIG when the file does
 * not fit in cap - 1 bytes. Returns the length, or -1. */
long smallfile_read(const char *path, char *buf, size_t cap, berth_error *e);

#endif
