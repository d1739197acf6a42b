#include "exe_seal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define REQUIRED_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static bool is_sealed(int fd) {
  int seals = fcntl(fd, F_GET_SEALS);
  return seals >= 0 && (seals & REQUIRED_SEALS) == REQUIRED_SEALS;
}

int exe_sealed_copy(int src, const char *name, berth_error *e) {
  struct stat st;
  if (fstat(src, &st) < 0) return berth_fail_errno(e, "stat the file to seal");
  int mem = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mem < 0) return berth_fail_errno(e, "memfd_create for the sealed copy '%s'", name);
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(mem, src, &off, (size_t)(st.st_size - off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = n < 0 ? errno : EIO; /* 0: the file shrank while copied */
      close(mem);
      return berth_fail(e, saved, "copy into the sealed copy '%s'", name);
    }
  }
  if (fcntl(mem, F_ADD_SEALS, REQUIRED_SEALS) < 0) {
    int saved = errno;
    close(mem);
    return berth_fail(e, saved, "seal the memfd '%s'", name);
  }
  return mem;
}

int exe_ensure_sealed(char **argv, char **envp, berth_error *e) {
  cleanup_fd int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0) return berth_fail_errno(e, "open /proc/self/exe");
  if (is_sealed(self)) return 0;
  cleanup_fd int mem = exe_sealed_copy(self, "berth-runtime", e);
  if (mem < 0) return -1;
  fexecve(mem, argv, envp);
  return berth_fail_errno(e, "re-exec the runtime from its sealed copy");
}
