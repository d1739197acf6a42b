#include "smallfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <unistd.h>

#include "util.h"

long smallfile_read(const char *path, char *buf, size_t cap, berth_error *e) {
  cleanup_fd int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return berth_fail_errno(e, "open '%s'", path);
  size_t used = 0;
  for (;;) {
    /* Once buf is full, one more byte tells the end of the file from more. */
    char probe;
    bool full = used + 1 >= cap;
    ssize_t n = full ? read(fd, &probe, 1) : read(fd, buf + used, cap - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return berth_fail_errno(e, "read '%s'", path);
    if (n == 0) break;
    if (full) return berth_fail(e, EFBIG, "read '%s': more than %zu bytes", path, cap - 1);
    used += (size_t)n;
  }
  buf[used] = '\0';
  return (long)used;
}
