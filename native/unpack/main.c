/* berth-unpack: see unpack.h for the data path and the exit statuses.
 *
 * usage: berth-unpack --dest DIR [--blob FILE] [--length N] [--prefix-fd FD] [--progress-fd FD] [--sync]
 *
 *   --dest DIR      an existing empty directory that becomes the layer's diff
 *   --blob FILE     also store the bytes as read (the compressed blob), in a new file
 *   --length N      read exactly N bytes (after the prefix); fewer is an input failure
 *   --prefix-fd FD  bytes already read from the stream (by the engine), read to EOF first
 *   --features      print what it decompresses ("gzip zstd" or "gzip") and exit
 *   --progress-fd FD  write the byte count read so far, a line about every MiB
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
#include <sys/prctl.h>
#include <unistd.h>

#include "unpack.h"

#define SLOTS 8
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
  int progress_fd;
  uint64_t progress_at;
  bool sync;
  /* queue: reader fills, main drains */
  slot slots[SLOTS];
  size_t head, tail, count; /* head: next to drain; tail: next to fill */
  bool eof;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_bool stop;
  berth_error rerr;
  bool rfailed;
  /* results */
  EVP_MD_CTX *blob_hash;
  uint64_t total, blob_synced;
} pipeline;

static void die(const berth_error *e) {
  fprintf(stderr, "%s\n", e->msg);
  fflush(stderr);
  _exit(e->errnum == KIND_REFUSED ? EXIT_REFUSED : e->errnum == KIND_INPUT ? EXIT_INPUT : EXIT_SYSTEM);
}

static int write_all(int fd, const unsigned char *p, size_t n, berth_error *e) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return berth_fail_errno(e, "writing the blob file");
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One slot's worth from the prefix, then the stream. Returns bytes (0 at the end). */
static ssize_t fill(pipeline *pl, unsigned char *buf, berth_error *e) {
  size_t got = 0;
  while (got < FILL_AT_LEAST) {
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

static void *reader(void *arg) {
  pipeline *pl = arg;
  for (;;) {
    pthread_mutex_lock(&pl->mu);
    while (pl->count == SLOTS && !atomic_load(&pl->stop)) pthread_cond_wait(&pl->cv, &pl->mu);
    slot *s = &pl->slots[pl->tail];
    pthread_mutex_unlock(&pl->mu);
    if (atomic_load(&pl->stop)) return NULL;
    ssize_t n = fill(pl, s->buf, &pl->rerr);
    if (n > 0) {
      EVP_DigestUpdate(pl->blob_hash, s->buf, (size_t)n);
      if (pl->blob_fd >= 0) {
        if (write_all(pl->blob_fd, s->buf, (size_t)n, &pl->rerr) < 0) n = -1;
        else if (pl->sync && pl->total + (uint64_t)n - pl->blob_synced >= BLOB_SYNC_EVERY) {
          sync_file_range(pl->blob_fd, (off_t)pl->blob_synced, 0, SYNC_FILE_RANGE_WRITE);
          pl->blob_synced = pl->total + (uint64_t)n;
        }
      }
    }
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
      pl->tail = (pl->tail + 1) % SLOTS;
      pl->count++;
    }
    pthread_cond_broadcast(&pl->cv);
    pthread_mutex_unlock(&pl->mu);
    if (n <= 0) return NULL;
  }
}

typedef struct sink_state {
  EVP_MD_CTX *diff_hash;
  tar_parser *tar;
} sink_state;

static int sink(void *arg, const unsigned char *p, size_t n, berth_error *e) {
  sink_state *s = arg;
  EVP_DigestUpdate(s->diff_hash, p, n);
  return tar_feed(s->tar, p, n, e);
}

static void hex_digest(EVP_MD_CTX *ctx, char out[8 + 64 + 1]) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  strcpy(out, "sha256:");
  for (unsigned i = 0; i < len; i++) sprintf(out + 7 + 2 * i, "%02x", md[i]);
}

static void usage(const char *why) {
  fprintf(stderr, "berth-unpack: %s\nusage: berth-unpack --dest DIR [--blob FILE] [--length N] [--prefix-fd FD] [--progress-fd FD] [--sync]\n", why);
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
  /* the engine's process owns this one: when it dies, so do we */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return EXIT_SYSTEM;
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
    if (!v) usage("missing value after an option");
    if (strcmp(a, "--dest") == 0) dest = v;
    else if (strcmp(a, "--blob") == 0) blob = v;
    else if (strcmp(a, "--length") == 0) pl.has_length = true, pl.length = number_arg(a, v);
    else if (strcmp(a, "--prefix-fd") == 0) pl.prefix_fd = (int)number_arg(a, v);
    else if (strcmp(a, "--progress-fd") == 0) pl.progress_fd = (int)number_arg(a, v);
    else usage("unknown option");
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
  extractor *x = extract_open(dest, pl.sync, &e);
  if (!x) die(&e);
  tar_parser *tar = tar_open(x, &e);
  if (!tar) die(&e);
  pl.blob_hash = EVP_MD_CTX_new();
  sink_state ss = {.diff_hash = EVP_MD_CTX_new(), .tar = tar};
  if (!pl.blob_hash || !ss.diff_hash || !EVP_DigestInit_ex(pl.blob_hash, EVP_sha256(), NULL) ||
      !EVP_DigestInit_ex(ss.diff_hash, EVP_sha256(), NULL)) {
    berth_fail_msg(&e, ENOMEM, "sha256: OpenSSL digest setup failed");
    die(&e);
  }
  for (size_t i = 0; i < SLOTS; i++) {
    if (!(pl.slots[i].buf = malloc(CHUNK))) {
      berth_fail(&e, errno, "allocating buffers");
      die(&e);
    }
  }
  pthread_mutex_init(&pl.mu, NULL);
  pthread_cond_init(&pl.cv, NULL);
  pthread_t rt;
  int prc = pthread_create(&rt, NULL, reader, &pl);
  if (prc != 0) {
    berth_fail(&e, prc, "pthread_create");
    die(&e);
  }

  decoder *dec = NULL;
  enum compression comp = C_NONE;
  for (;;) {
    pthread_mutex_lock(&pl.mu);
    while (pl.count == 0 && !pl.eof) pthread_cond_wait(&pl.cv, &pl.mu);
    if (pl.count == 0) {
      pthread_mutex_unlock(&pl.mu);
      break;
    }
    slot *s = &pl.slots[pl.head];
    pthread_mutex_unlock(&pl.mu);
    if (!dec) {
      comp = compression_sniff(s->buf, s->len);
      if (!(dec = decoder_open(comp, sink, &ss, &e))) die(&e);
    }
    if (decoder_feed(dec, s->buf, s->len, &e) < 0) {
      atomic_store(&pl.stop, true);
      die(&e);
    }
    pthread_mutex_lock(&pl.mu);
    pl.head = (pl.head + 1) % SLOTS;
    pl.count--;
    pthread_cond_broadcast(&pl.cv);
    pthread_mutex_unlock(&pl.mu);
  }
  pthread_join(rt, NULL);
  if (pl.rfailed) die(&pl.rerr);
  if (!dec && !(dec = decoder_open(C_NONE, sink, &ss, &e))) die(&e); /* empty input: an empty tar stream */
  if (decoder_end(dec, &e) < 0 || tar_end(tar, &e) < 0) die(&e);
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
  char bd[80], dd[80];
  hex_digest(pl.blob_hash, bd);
  hex_digest(ss.diff_hash, dd);
  printf("{\"compression\":\"%s\",\"digest\":\"%s\",\"size\":%" PRIu64 ",\"diffId\":\"%s\",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 "}\n",
         compression_name(comp), bd, pl.total, dd, extract_entries(x), extract_bytes(x));
  if (fflush(stdout) != 0) return EXIT_SYSTEM;
  decoder_close(dec);
  tar_close(tar);
  extract_close(x);
  return 0;
}
