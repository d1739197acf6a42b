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

int exe_ensure_sealed(char **argv, char **envp, berth_error *e) {
  cleanup_fd int self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (self < 0) return berth_fail_errno(e, "open /proc/self/exe");
  if (is_sealed(self)) return 0;
  struct stat st;
  if (fstat(self, &st) < 0) return berth_fail_errno(e, "stat /proc/self/exe");
  cleanup_fd int mem = memfd_create("berth-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mem < 0) return berth_fail_errno(e, "memfd_create for the sealed runtime copy");
  off_t off = 0;
  while (off < st.st_size) {
    ssize_t n = sendfile(mem, self, &off, (size_t)(st.st_size - off));
    if (n < 0) {
      if (errno == EINTR) continue;
      return berth_fail_errno(e, "copy the runtime into a memfd");
    }
    if (n == 0) break;
  }
  if (fcntl(mem, F_ADD_SEALS, REQUIRED_SEALS) < 0) return berth_fail_errno(e, "seal the runtime memfd");
  fexecve(mem, argv, envp);
  return berth_fail_errno(e, "re-exec the runtime from its sealed copy");
}
