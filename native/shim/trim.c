#include "trim.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

/* The low end of the [stack] mapping in /proc/self/maps, or 0. */
static __attribute__((noinline)) uintptr_t stack_low_end(void) {
  cleanup_fd int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[2048];
  size_t used = 0;
  for (;;) {
    ssize_t n = read(fd, buf + used, sizeof buf - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return 0;
    used += (size_t)n;
    buf[used] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = '\0';
      if (str_has_suffix(line, " [stack]")) return (uintptr_t)strtoull(line, NULL, 16);
      line = nl + 1;
    }
    used -= (size_t)(line - buf);
    memmove(buf, line, used);
    if (used == sizeof buf - 1) used = 0; /* a line longer than buf is no [stack] line */
  }
}

/* glibc's defaults keep 128 KiB above the top of the heap when trimming,
 * trim only once 128 KiB are free, and raise the mmap threshold after a
 * mapped chunk is freed (so the next large backlog lands on the heap and
 * stays there). Set, these are fixed: */
#define TRIM_TOP_PAD 0
#define TRIM_THRESHOLD (16 * 1024)
#define TRIM_MMAP_THRESHOLD (64 * 1024)

void trim_heap_settings(void) {
  /* mallopt returns 0 for a value it refuses; glibc's defaults then hold,
   * which cost memory, not correctness. */
  (void)mallopt(M_TOP_PAD, TRIM_TOP_PAD);
  (void)mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
  (void)mallopt(M_MMAP_THRESHOLD, TRIM_MMAP_THRESHOLD);
}

/* What can still be live below this function's frame address while madvise
 * runs: its own few locals and madvise's return address (32 bytes at -O2,
 * under 100 at -O0). */
#define TRIM_MARGIN 512

/* noinline: its frame must be the caller's next one, and small. Everything
 * from the page that holds here - TRIM_MARGIN up stays. */
__attribute__((noinline)) void trim_stack(void) {
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t lo = stack_low_end();
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  uintptr_t hi = (here - TRIM_MARGIN) & ~(page - 1);
  if (lo == 0 || hi <= lo) return;
  (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}
