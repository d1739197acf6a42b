/* berth-unpack: see unpack.h for the threads, the data path and the exit statuses.
 *
 * usage: berth-unpack --dest DIR [--blob FILE] [--length N] [--prefix-fd FD] [--progress-fd FD] [--parent PID] [--sync]
 *
 *   --dest DIR      an existing empty directory that becomes the layer's diff
 *   --blob FILE     also store the bytes as read (the compressed blob), in a new file
 *   --length N      read exactly N bytes (after the prefix); fewer is an input failure
 *   --prefix-fd FD  bytes already read from the stream (by the engine), read to EOF first
 *   --features      print what it decompresses ("gzip zstd" or "gzip") and exit
 *   --progress-fd FD  write the byte count read so far, a line about every MiB
 *   --parent PID    the engine's pid: exit at once if it is not our parent any more
 *   --sync          start writeback while writing; fsync the blob and syncfs the layer at the end
 *
 * stdin: the layer as stored (gzip, zstd or plain tar: detected from its
 * first bytes). stdout, on success: {"compression":..,"digest":"sha256:..",
 * "size":N,"diffId":"sha256:..","entries":N,"bytes":N}. The caller compares
 * the digests with what it expects, and publishes or removes the results. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "unpack.h"

#define SLOTS 8
#define HUGE_ALIGN (2u << 20)
#define FILL_AT_LEAST (256u << 10)
#define BLOB_SYNC_EVERY (16u << 20)

typedef struct slot {
  unsigned char *buf;
  size_t len;
} slot;

typedef struct pipeline {
  /* options */
  int prefix_fd;
  bool has_length;
  uint64_t length;
  int blob_fd;
  direct_file blob_file; /* blob_fd, written past the page cache where it can be (direct.c) */
  int progress_fd;
  uint64_t progress_at;
  bool sync;
  /* queue: the reader fills slots; the main thread (decompress, untar), the
   * hash thread (the compressed digest) and the write thread (the blob file)
   * all drain each one. Counters only grow; slot i is slots[i % SLOTS]. */
  slot slots[SLOTS];
  uint64_t produced, used_main, used_hash, used_write;
  bool eof;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_bool stop;
  berth_error rerr;
  bool rfailed;
  /* BERTH_UNPACK_STATS=1: per-thread CPU and queue waits on stderr */
  double reader_cpu, reader_wait, main_wait, hash_cpu, hash_wait, write_cpu, write_wait;
  berth_error berr;
  bool bfailed;
  /* results */
  EVP_MD_CTX *blob_hash;
  uint64_t total, blob_synced;
} pipeline;

static void die(const berth_error *e) {
  fprintf(stderr, "%s\n", e->msg);
  fflush(stderr);
  _exit(e->errnum == KIND_REFUSED ? EXIT_REFUSED : e->errnum == KIND_INPUT ? EXIT_INPUT : EXIT_SYSTEM);
}

/* One slot's worth from the prefix, then the stream. Returns bytes (0 at the
 * end): a multiple of DIO_ALIGN but at the end, so that the blob file takes
 * every slot but the last with O_DIRECT. */
static ssize_t fill(pipeline *pl, unsigned char *buf, berth_error *e) {
  size_t got = 0;
  while (got < FILL_AT_LEAST || got % DIO_ALIGN != 0) {
    int fd = pl->prefix_fd >= 0 ? pl->prefix_fd : 0;
    size_t want = CHUNK - got;
    if (fd == 0 && pl->has_length) {
      uint64_t left = pl->length - (pl->total + got);
      if (left == 0) break;
      if (left < want) want = (size_t)left;
    }
    ssize_t r = read(fd, buf + got, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      berth_fail(e, errno, "reading the layer stream after %" PRIu64 " bytes", pl->total + got);
      e->errnum = KIND_INPUT;
      return -1;
    }
    if (r == 0) {
      if (fd == pl->prefix_fd) {
        close(pl->prefix_fd);
        pl->prefix_fd = -1;
        continue;
      }
      if (pl->has_length && pl->total + got < pl->length) {
        berth_fail_msg(e, KIND_INPUT, "the layer stream ended after %" PRIu64 " bytes, %" PRIu64 " missing", pl->total + got,
                       pl->length - pl->total - got);
        return -1;
      }
      break;
    }
    got += (size_t)r;
  }
  return (ssize_t)got;
}

static double now(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
/* A slot is free again once every consumer is past it (no blob file: no writer). */
static uint64_t min_used(const pipeline *pl) {
  uint64_t m = min_u64(pl->used_main, pl->used_hash);
  return pl->blob_fd >= 0 ? min_u64(m, pl->used_write) : m;
}

/* Waits until a slot past *used is ready; false at the end or on stop. Under pl->mu. */
static bool next_ready(pipeline *pl, const uint64_t *used, double *waited) {
  double w0 = now(CLOCK_MONOTONIC);
  while (*used == pl->produced && !pl->eof && !atomic_load(&pl->stop)) pthread_cond_wait(&pl->cv, &pl->mu);
  *waited += now(CLOCK_MONOTONIC) - w0;
  return *used != pl->produced && !atomic_load(&pl->stop);
}

static void release(pipeline *pl, uint64_t *used, uint64_t n) {
  pthread_mutex_lock(&pl->mu);
  *used += n;
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
}

/* Reads the input into free slots. */
static void *reader(void *arg) {
  pipeline *pl = arg;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    double w0 = now(CLOCK_MONOTONIC);
    while (pl->produced - min_used(pl) == SLOTS && !atomic_load(&pl->stop)) pthread_cond_wait(&pl->cv, &pl->mu);
    pl->reader_wait += now(CLOCK_MONOTONIC) - w0;
    slot *s = &pl->slots[pl->produced % SLOTS];
    pthread_mutex_unlock(&pl->mu);
    if (atomic_load(&pl->stop)) return NULL;
    ssize_t n = fill(pl, s->buf, &pl->rerr);
    if (n > 0 && pl->progress_fd >= 0 && pl->total + (uint64_t)n - pl->progress_at >= (1u << 20)) {
      pl->progress_at = pl->total + (uint64_t)n;
      if (dprintf(pl->progress_fd, "%" PRIu64 "\n", pl->progress_at) < 0) {
        close(pl->progress_fd); /* nobody listens any more: not a reason to fail */
        pl->progress_fd = -1;
      }
    }
    pthread_mutex_lock(&pl->mu);
    if (n <= 0) {
      pl->eof = true;
      pl->rfailed = n < 0;
    } else {
      s->len = (size_t)n;
      pl->total += (uint64_t)n;
      pl->produced++;
    }
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    if (n <= 0) {
      pl->reader_cpu = now(CLOCK_THREAD_CPUTIME_ID);
      return NULL;
    }
  }
}

static void stop_all(pipeline *pl);

/* The compressed digest: every slot into sha256. */
static void *blob_hasher(void *arg) {
  pipeline *pl = arg;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    bool more = next_ready(pl, &pl->used_hash, &pl->hash_wait);
    pthread_mutex_unlock(&pl->mu);
    if (!more) break;
    slot *s = &pl->slots[pl->used_hash % SLOTS];
    EVP_DigestUpdate(pl->blob_hash, s->buf, s->len);
    release(pl, &pl->used_hash, 1);
  }
  pl->hash_cpu = now(CLOCK_THREAD_CPUTIME_ID);
  return NULL;
}

/* The blob file: up to BLOB_BATCH ready slots in one write, on a thread of
 * its own, so that an O_DIRECT write waiting for the device holds up
 * neither the digest nor the decompression (larger requests keep the
 * stream closer to the device's speed). */
#define BLOB_BATCH 4
static void *blob_writer(void *arg) {
  pipeline *pl = arg;
  uint64_t written = 0;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    bool more = next_ready(pl, &pl->used_write, &pl->write_wait);
    uint64_t ready = pl->produced - pl->used_write;
    pthread_mutex_unlock(&pl->mu);
    if (!more) break;
    struct iovec iov[BLOB_BATCH];
    int n = 0;
    size_t len = 0;
    for (; n < BLOB_BATCH && (uint64_t)n < ready; n++) {
      slot *s = &pl->slots[(pl->used_write + (uint64_t)n) % SLOTS];
      iov[n] = (struct iovec){.iov_base = s->buf, .iov_len = s->len};
      len += s->len;
    }
    if (direct_writev(&pl->blob_file, iov, n, &pl->berr) < 0) {
      pl->bfailed = true;
      stop_all(pl);
      break;
    }
    if (pl->sync && written + len - pl->blob_synced >= BLOB_SYNC_EVERY) {
      sync_file_range(pl->blob_fd, (off_t)pl->blob_synced, 0, SYNC_FILE_RANGE_WRITE);
      pl->blob_synced = written + len;
    }
    written += len;
    release(pl, &pl->used_write, (uint64_t)n);
  }
  pl->write_cpu = now(CLOCK_THREAD_CPUTIME_ID);
  return NULL;
}

/* The tar side: the main thread decompresses and hashes into these slots,
 * the tar thread parses them and writes the files (so that decompression
 * and file writes overlap). */
#define OSLOTS 4

typedef struct tarq {
  slot slots[OSLOTS];
  uint64_t produced, used;
  slot *filling; /* main's slot in progress, not yet produced */
  bool eof, failed;
  berth_error err;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tar_parser *tar;
  pipeline *pl;
  EVP_MD_CTX *diff_hash;
  double cpu, wait;
} tarq;

static void stop_all(pipeline *pl) {
  pthread_mutex_lock(&pl->mu);
  atomic_store(&pl->stop, true);
  pthread_cond_broadcast(&pl->cv);
  pthread_mutex_unlock(&pl->mu);
}

static void tarq_publish(tarq *q) {
  pthread_mutex_lock(&q->mu);
  q->produced++;
  q->filling = NULL;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
}

/* decoder output, written straight into the tar thread's slots (hashed as they fill: the diff ID) */
static unsigned char *tar_space(void *arg, size_t *room, berth_error *e) {
  tarq *q = arg;
  if (!q->filling) {
    pthread_mutex_lock(&q->mu);
    while (q->produced - q->used == OSLOTS && !q->failed) pthread_cond_wait(&q->cv, &q->mu);
    bool failed = q->failed;
    if (!failed) {
      q->filling = &q->slots[q->produced % OSLOTS];
      q->filling->len = 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (failed) {
      berth_fail_msg(e, KIND_REFUSED, "the tar side stopped");
      return NULL;
    }
  }
  *room = CHUNK - q->filling->len;
  return q->filling->buf + q->filling->len;
}

static int tar_commit(void *arg, size_t n, berth_error *e) {
  tarq *q = arg;
  EVP_DigestUpdate(q->diff_hash, q->filling->buf + q->filling->len, n);
  q->filling->len += n;
  if (q->filling->len == CHUNK) tarq_publish(q);
  return 0;
}

static void *tar_thread(void *arg) {
  tarq *q = arg;
  for (;;) {
    pthread_mutex_lock(&q->mu);
    double w0 = now(CLOCK_MONOTONIC);
    while (q->used == q->produced && !q->eof) pthread_cond_wait(&q->cv, &q->mu);
    q->wait += now(CLOCK_MONOTONIC) - w0;
    bool end = q->used == q->produced;
    slot *s = end ? NULL : &q->slots[q->used % OSLOTS];
    pthread_mutex_unlock(&q->mu);
    int rc = end ? tar_end(q->tar, &q->err) : tar_feed(q->tar, s->buf, s->len, &q->err);
    pthread_mutex_lock(&q->mu);
    if (rc < 0) q->failed = true;
    else if (!end) q->used++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (rc < 0) stop_all(q->pl);
    if (rc < 0 || end) break;
  }
  q->cpu = now(CLOCK_THREAD_CPUTIME_ID);
  return NULL;
}

static void hex_digest(EVP_MD_CTX *ctx, char out[8 + 64 + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  strcpy(out, "sha256:");
  for (unsigned i = 0; i < len; i++) sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static void usage(const char *why) {
  fprintf(stderr, "berth-unpack: %s\nusage: berth-unpack --dest DIR [--blob FILE] [--length N] [--prefix-fd FD] [--progress-fd FD] [--parent PID] [--sync]\n", why);
  exit(EXIT_USAGE);
}

static uint64_t number_arg(const char *flag, const char *v) {
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  if (errno || !*v || *end) {
    char msg[256];
    snprintf(msg, sizeof msg, "%s needs a non-negative integer, got \"%.100s\"", flag, v);
    usage(msg);
  }
  return n;
}

int main(int argc, char **argv) {
  berth_error e;
  berth_error_clear(&e);
  /* the engine's process owns this one: when it dies, so do we (and if it died
   * before prctl took effect, getppid() is no longer the pid it passed) */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);

  if (argc == 2 && strcmp(argv[1], "--features") == 0) {
#ifdef HAVE_ZSTD
    puts("gzip zstd");
#else
    puts("gzip");
#endif
    return 0;
  }
  const char *dest = NULL, *blob = NULL;
  pipeline pl;
  memset(&pl, 0, sizeof pl);
  pl.prefix_fd = -1;
  pl.blob_fd = -1;
  pl.progress_fd = -1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--sync") == 0) {
      pl.sync = true;
      continue;
    }
    if (!v) {
      char msg[256];
      snprintf(msg, sizeof msg, "%.100s needs a value", a);
      usage(msg);
    }
    if (strcmp(a, "--dest") == 0) dest = v;
    else if (strcmp(a, "--blob") == 0) blob = v;
    else if (strcmp(a, "--length") == 0) pl.has_length = true, pl.length = number_arg(a, v);
    else if (strcmp(a, "--prefix-fd") == 0) pl.prefix_fd = (int)number_arg(a, v);
    else if (strcmp(a, "--progress-fd") == 0) pl.progress_fd = (int)number_arg(a, v);
    else if (strcmp(a, "--parent") == 0) {
      if ((pid_t)number_arg(a, v) != getppid()) {
        fprintf(stderr, "berth-unpack: the engine process %s is gone\n", v);
        return EXIT_SYSTEM;
      }
    }
    else {
      char msg[256];
      snprintf(msg, sizeof msg, "unknown option \"%.100s\"", a);
      usage(msg);
    }
    i++;
  }
  if (!dest) usage("--dest is required");
  /* a socket handed over by the engine is non-blocking (libuv): we block */
  int fds[2] = {0, pl.prefix_fd};
  for (int i = 0; i < 2; i++) {
    int fl = fds[i] >= 0 ? fcntl(fds[i], F_GETFL) : -1;
    if (fl >= 0 && (fl & O_NONBLOCK) && fcntl(fds[i], F_SETFL, fl & ~O_NONBLOCK) < 0) {
      berth_fail_errno(&e, "clearing O_NONBLOCK on fd %d", fds[i]);
      die(&e);
    }
  }

  if (blob && (pl.blob_fd = open(blob, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
    berth_fail_errno(&e, "creating the blob file %s", blob);
    die(&e);
  }
  if (pl.blob_fd >= 0) direct_enable(&pl.blob_file, pl.blob_fd, blob);
  extractor *x = extract_open(dest, pl.sync, &e);
  if (!x) die(&e);
  tar_parser *tar = tar_open(x, &e);
  if (!tar) die(&e);
  pl.blob_hash = EVP_MD_CTX_new();
  static tarq tq;
  tq.diff_hash = EVP_MD_CTX_new();
  tq.tar = tar;
  tq.pl = &pl;
  pthread_mutex_init(&tq.mu, NULL);
  pthread_cond_init(&tq.cv, NULL);
  /* every slot in one mapping, aligned for O_DIRECT (the blob's and large
   * files' data goes from here to the device: direct.c) and in transparent
   * huge pages where the host allows: a few faults instead of 3,072 */
  size_t arena_size = (SLOTS + OSLOTS) * (size_t)CHUNK;
  unsigned char *arena = mmap(NULL, arena_size + HUGE_ALIGN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (arena == MAP_FAILED) {
    berth_fail_errno(&e, "allocating buffers");
    die(&e);
  }
  arena += (HUGE_ALIGN - (uintptr_t)arena % HUGE_ALIGN) % HUGE_ALIGN;
  madvise(arena, arena_size, MADV_HUGEPAGE); /* a hint: without THP the slots are as good */
  for (size_t i = 0; i < OSLOTS; i++) tq.slots[i].buf = arena + i * CHUNK;
  if (!pl.blob_hash || !tq.diff_hash || !EVP_DigestInit_ex(pl.blob_hash, EVP_sha256(), NULL) ||
      !EVP_DigestInit_ex(tq.diff_hash, EVP_sha256(), NULL)) {
    berth_fail_msg(&e, ENOMEM, "sha256: OpenSSL digest setup failed");
    die(&e);
  }
  for (size_t i = 0; i < SLOTS; i++) pl.slots[i].buf = arena + (OSLOTS + i) * CHUNK;
  pthread_mutex_init(&pl.mu, NULL);
  pthread_cond_init(&pl.cv, NULL);
  pthread_t rt, ht, wt, tt;
  int prc = pthread_create(&rt, NULL, reader, &pl);
  if (prc == 0) prc = pthread_create(&ht, NULL, blob_hasher, &pl);
  if (prc == 0 && pl.blob_fd >= 0) prc = pthread_create(&wt, NULL, blob_writer, &pl);
  if (prc == 0) prc = pthread_create(&tt, NULL, tar_thread, &tq);
  if (prc != 0) {
    berth_fail(&e, prc, "pthread_create");
    die(&e);
  }

  decoder *dec = NULL;
  enum compression comp = C_NONE;
  const decoder_out tar_out = {.space = tar_space, .commit = tar_commit, .arg = &tq};
  for (;;) {
    pthread_mutex_lock(&pl.mu);
    double w0 = now(CLOCK_MONOTONIC);
    while (pl.used_main == pl.produced && !pl.eof && !atomic_load(&pl.stop)) pthread_cond_wait(&pl.cv, &pl.mu);
    pl.main_wait += now(CLOCK_MONOTONIC) - w0;
    if (pl.used_main == pl.produced || atomic_load(&pl.stop)) {
      pthread_mutex_unlock(&pl.mu);
      break;
    }
    slot *s = &pl.slots[pl.used_main % SLOTS];
    pthread_mutex_unlock(&pl.mu);
    if (!dec) {
      comp = compression_sniff(s->buf, s->len);
      if (!(dec = decoder_open(comp, tar_out, &e))) die(&e);
    }
    if (decoder_feed(dec, s->buf, s->len, &e) < 0) {
      atomic_store(&pl.stop, true);
      die(tq.failed ? &tq.err : &e);
    }
    pthread_mutex_lock(&pl.mu);
    pl.used_main++;
    pthread_cond_broadcast(&pl.cv);
    pthread_mutex_unlock(&pl.mu);
  }
  /* a failure on the tar side or of the blob file stopped everything: report it without waiting for the input */
  if (tq.failed) die(&tq.err);
  if (pl.bfailed) die(&pl.berr);
  pthread_join(rt, NULL);
  pthread_join(ht, NULL);
  if (pl.blob_fd >= 0) pthread_join(wt, NULL);
  if (pl.rfailed) die(&pl.rerr);
  if (pl.bfailed) die(&pl.berr);
  if (!dec && !(dec = decoder_open(C_NONE, tar_out, &e))) die(&e); /* empty input: an empty tar stream */
  if (decoder_end(dec, &e) < 0) die(&e);
  if (tq.filling) tarq_publish(&tq);
  pthread_mutex_lock(&tq.mu);
  tq.eof = true;
  pthread_cond_broadcast(&tq.cv);
  pthread_mutex_unlock(&tq.mu);
  pthread_join(tt, NULL);
  if (tq.failed) die(&tq.err);
  double t_data = now(CLOCK_MONOTONIC), main_cpu = now(CLOCK_THREAD_CPUTIME_ID);
  if (extract_finish(x, &e) < 0) die(&e);
  if (pl.blob_fd >= 0) {
    if (pl.sync && fdatasync(pl.blob_fd) < 0) {
      berth_fail_errno(&e, "fdatasync %s", blob);
      die(&e);
    }
    if (close(pl.blob_fd) < 0) {
      berth_fail_errno(&e, "close %s", blob);
      die(&e);
    }
  }
  const char *stats = getenv("BERTH_UNPACK_STATS");
  if (stats && strcmp(stats, "1") == 0)
    fprintf(stderr,
            "berth-unpack: reader cpu %.3f s, waited %.3f s for room; blob hash cpu %.3f s, waited %.3f s; blob write cpu %.3f s, waited %.3f s; main cpu %.3f s, waited %.3f s for data; "
            "tar cpu %.3f s, waited %.3f s; finish (dir times, sync) %.3f s\n",
            pl.reader_cpu, pl.reader_wait, pl.hash_cpu, pl.hash_wait, pl.write_cpu, pl.write_wait, main_cpu, pl.main_wait, tq.cpu, tq.wait, now(CLOCK_MONOTONIC) - t_data);
  char bd[80], dd[80];
  hex_digest(pl.blob_hash, bd);
  hex_digest(tq.diff_hash, dd);
  printf("{\"compression\":\"%s\",\"digest\":\"%s\",\"size\":%" PRIu64 ",\"diffId\":\"%s\",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n",
         compression_name(comp), bd, pl.total, dd, extract_entries(x), extract_bytes(x));
  if (fflush(stdout) != 0) return EXIT_SYSTEM;
  decoder_close(dec);
  tar_close(tar);
  extract_close(x);
  return 0;
}
