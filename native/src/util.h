/* Small helpers shared by every subsystem: scope-based cleanup, whole-file
 * reads and writes, and path utilities. */
#ifndef BERTH_UTIL_H
#define BERTH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "error.h"

void berth_closep(int *fd);
void berth_freep(void *p);
void berth_json_decrefp(json_t **j);

/* Release by scope; fds start at -1. */
#define cleanup_fd __attribute__((cleanup(berth_closep)))
#define cleanup_free __attribute__((cleanup(berth_freep)))
#define cleanup_json __attribute__((cleanup(berth_json_decrefp)))

#define BERTH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Writes the whole buffer to path (O_WRONLY|O_TRUNC|O_CLOEXEC, no create). */
int write_file(const char *path, const char *data, size_t len, berth_error *e);
/* Same, relative to a directory fd. */
int write_file_at(int dirfd, const char *name, const char *data, size_t len, berth_error *e);
/* Reads a whole (small) file; *out is NUL-terminated and malloc'd. */
int read_file(const char *path, char **out, size_t *len, berth_error *e);
int read_file_at(int dirfd, const char *name, char **out, size_t *len, berth_error *e);
/* Atomic replace: temp file in the same directory, fsync, rename. */
int write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, berth_error *e);
/* Atomic replace without the fsync, for runtime state (<root> is meant to be
 * on tmpfs such as /run and means nothing after a reboot): readers never see
 * a half-written file, and a crash of the writer leaves the old one. */
int write_file_replace(const char *path, const char *data, size_t len, mode_t mode, berth_error *e);
/* mkdir -p with the given mode. */
int mkdir_p(const char *path, mode_t mode, berth_error *e);
/* Writes all bytes, retrying on EINTR and short writes. */
int write_all(int fd, const void *buf, size_t len);
/* Returns true if s ends with suffix. */
bool str_has_suffix(const char *s, const char *suffix);
/* String from a JSON object member, or NULL if absent / not a string. */
const char *json_str(json_t *obj, const char *key);

#endif
