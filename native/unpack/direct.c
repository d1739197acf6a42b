/* Writes that bypass the page cache (O_DIRECT) for the bulk of a pull: the
 * compressed blob, and regular files of at least DIRECT_MIN bytes in a layer.
 *
 * Why: a pull writes every byte twice (blob and unpacked layer) and reads
 * neither back soon. Through the page cache each byte costs a copy into a
 * freshly allocated page, and a large pull evicts the page cache of whatever
 * else runs on the host. On a VM whose free memory goes back to the
 * hypervisor (free page reporting, as on this project's hosts) that fresh
 * page can cost a host fault each: 4x the system CPU of the same pull into
 * recycled pages (bench/images/RESULTS-section.md). With O_DIRECT the
 * device reads the bytes from the writer's own, reused buffer.
 *
 * O_DIRECT wants the buffer, the file offset and the length aligned to the
 * device's logical block; DIO_ALIGN (4096) covers every such block size in
 * use. What is not aligned (a file's tail) is written through the page
 * cache after O_DIRECT is cleared on the descriptor, and a filesystem that
 * refuses O_DIRECT (EINVAL) gets buffered writes throughout: nothing fails
 * because of this module. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/stat.h>

#include "unpack.h"

bool direct_enable(direct_file *f, int fd, const char *what) {
  *f = (direct_file){.fd = fd, .what = what, .mem_align = DIO_ALIGN, .off_align = DIO_ALIGN};
  if (getenv("BERTH_UNPACK_DIRECT") && strcmp(getenv("BERTH_UNPACK_DIRECT"), "0") == 0) return false;
  /* the filesystem's own alignment (Linux 6.1+): often 512, which lets a
   * tar's 512-aligned file data go to the device without a copy */
  struct statx stx = {0};
  if (syscall(SYS_statx, fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN)) {
    if (stx.stx_dio_mem_align == 0) return false; /* no O_DIRECT here */
    f->mem_align = stx.stx_dio_mem_align;
    f->off_align = stx.stx_dio_offset_align;
    /* a buffer aligned for one is aligned for the other (the staging buffer and slots are DIO_ALIGN-aligned) */
    if (f->mem_align > DIO_ALIGN || f->off_align > DIO_ALIGN || f->off_align == 0) return false;
  }
  int fl = fcntl(fd, F_GETFL);
  return (f->direct = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0);
}

static bool aligned_for(const direct_file *f, const unsigned char *p) { return (uintptr_t)p % f->mem_align == 0; }

/* Back to the page cache for the rest of this descriptor's writes. */
static int direct_disable(direct_file *f, berth_error *e) {
  f->direct = false;
  int fl = fcntl(f->fd, F_GETFL);
  if (fl < 0 || fcntl(f->fd, F_SETFL, fl & ~O_DIRECT) < 0) return berth_fail_errno(e, "fcntl clearing O_DIRECT on %s", f->what);
  return 0;
}

static int write_all_fd(direct_file *f, const unsigned char *p, size_t n, berth_error *e) {
  while (n > 0) {
    ssize_t w = write(f->fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      /* a filesystem or device that takes O_DIRECT at fcntl but not this write */
      if (errno == EINVAL && f->direct) {
        if (direct_disable(f, e) < 0) return -1;
        continue;
      }
      return berth_fail_errno(e, "write %s", f->what);
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int direct_write(direct_file *f, const unsigned char *p, size_t n, berth_error *e) {
  if (f->direct) {
    size_t aligned = aligned_for(f, p) ? n - n % f->off_align : 0;
    if (aligned > 0 && write_all_fd(f, p, aligned, e) < 0) return -1;
    p += aligned;
    n -= aligned;
    /* an unaligned rest ends O_DIRECT here: the file offset is no longer aligned after it */
    if (n > 0 && f->direct && direct_disable(f, e) < 0) return -1;
  }
  return write_all_fd(f, p, n, e);
}

int direct_writev(direct_file *f, const struct iovec *iov, int n, berth_error *e) {
  bool aligned = f->direct;
  size_t total = 0;
  for (int i = 0; i < n && aligned; i++) {
    aligned = aligned_for(f, iov[i].iov_base) && iov[i].iov_len % f->off_align == 0;
    total += iov[i].iov_len;
  }
  size_t done = 0;
  if (aligned && n > 1) {
    ssize_t w;
    do w = writev(f->fd, iov, n);
    while (w < 0 && errno == EINTR);
    if (w < 0 && errno != EINVAL) return berth_fail_errno(e, "write %s", f->what);
    /* EINVAL: the pieces one by one below, which fall back to the page cache */
    done = w < 0 ? 0 : (size_t)w;
    if (done == total) return 0;
  }
  /* one by one: unaligned pieces, or what a short writev left */
  for (int i = 0; i < n; i++) {
    if (done >= iov[i].iov_len) {
      done -= iov[i].iov_len;
      continue;
    }
    if (direct_write(f, (const unsigned char *)iov[i].iov_base + done, iov[i].iov_len - done, e) < 0) return -1;
    done = 0;
  }
  return 0;
}

int staged_open(staged_file *s, int fd, const char *what, berth_error *e) {
  direct_enable(&s->f, fd, what);
  s->len = 0;
  if (s->f.direct && !s->buf && posix_memalign((void **)&s->buf, DIO_ALIGN, STAGE_SIZE) != 0) {
    s->buf = NULL;
    return direct_disable(&s->f, e);
  }
  return 0;
}

int staged_write(staged_file *s, const unsigned char *p, size_t n, berth_error *e) {
  if (!s->f.direct) return direct_write(&s->f, p, n, e);
  /* nothing staged and the piece aligned (the usual case with 512-byte
   * alignment: a tar's file data starts on a 512-byte boundary and the
   * slots holding it are aligned): its whole blocks go as they are */
  if (s->len == 0 && aligned_for(&s->f, p) && n >= s->f.off_align) {
    size_t whole = n - n % s->f.off_align;
    if (direct_write(&s->f, p, whole, e) < 0) return -1;
    p += whole;
    n -= whole;
    if (!s->f.direct) return direct_write(&s->f, p, n, e);
  }
  while (n > 0) {
    size_t take = STAGE_SIZE - s->len < n ? STAGE_SIZE - s->len : n;
    memcpy(s->buf + s->len, p, take);
    s->len += take;
    p += take;
    n -= take;
    if (s->len == STAGE_SIZE) {
      s->len = 0;
      if (direct_write(&s->f, s->buf, STAGE_SIZE, e) < 0) return -1;
      /* O_DIRECT given up (EINVAL): write what follows as it comes */
      if (!s->f.direct) return direct_write(&s->f, p, n, e);
    }
  }
  return 0;
}

int staged_flush(staged_file *s, berth_error *e) {
  size_t n = s->len;
  s->len = 0;
  return n > 0 ? direct_write(&s->f, s->buf, n, e) : 0;
}

void staged_free(staged_file *s) {
  free(s->buf);
  s->buf = NULL;
}
