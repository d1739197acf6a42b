/* berth-unpack: one image layer from a registry stream (or a blob file) into
 * an overlay lower directory, in one pass, on five threads that overlap on
 * a 2-core host:
 *
 *   reader:  fd 3 (bytes the engine read already) then fd 0 -> 8 slots of 1 MiB
 *   hash:    each slot -> sha256 (compressed digest)
 *   write:   each slot -> blob file, O_DIRECT (optional; direct.c)
 *   main:    each slot -> gunzip / zstd / as is -> sha256 (diff ID) -> 4 slots
 *   tar:     those slots -> tar parser -> files under the destination (large
 *            files O_DIRECT)
 *
 * A slot is reused once the hash, write and main threads are done with it.
 * The tar is hostile: see extract.c for the rules. Results go to stdout as
 * one JSON object; failures to stderr as one line, with the exit status
 * naming the kind: 1 system error, 2 bad layer (refused), 3 the input
 * stream ended early or failed, 64 usage. BERTH_UNPACK_STATS=1 adds each
 * thread's CPU time and waits on stderr. */
#ifndef BERTH_UNPACK_H
#define BERTH_UNPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "error.h"

enum { EXIT_SYSTEM = 1, EXIT_REFUSED = 2, EXIT_INPUT = 3, EXIT_USAGE = 64 };

/* An error's kind travels in berth_error.errnum for validation failures:
 * these values are outside the errno range. */
enum { KIND_REFUSED = -2, KIND_INPUT = -3 };

#define CHUNK (1u << 20)

/* ---- extract.c: the filesystem side ---- */

enum entry_type { E_FILE, E_DIR, E_SYMLINK, E_LINK, E_CHAR, E_BLOCK, E_FIFO };

typedef struct xattr {
  char *name;
  unsigned char *value;
  size_t len;
} xattr;

typedef struct entry {
  char *name;     /* as in the tar (path), NUL-terminated */
  char *linkname; /* symlink or hardlink target */
  enum entry_type type;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  struct timespec mtime;
  unsigned devmajor, devminor;
  uint64_t size;
  xattr *xattrs;
  size_t nxattrs;
} entry;

typedef struct extractor extractor;

/* dest: an existing empty directory. sync: start writeback of large files
 * while they stream (the caller syncs the filesystem at the end). */
extractor *extract_open(const char *dest, bool sync, berth_error *e);
/* Starts an entry; for E_FILE the data follows through extract_data. */
int extract_begin(extractor *x, const entry *en, berth_error *e);
int extract_data(extractor *x, const unsigned char *p, size_t n, berth_error *e);
/* Ends the current entry (metadata applied). */
int extract_end(extractor *x, berth_error *e);
/* Directory times, then syncfs when asked. */
int extract_finish(extractor *x, berth_error *e);
int extract_rootfd(const extractor *x);
void extract_close(extractor *x);
uint64_t extract_entries(const extractor *x);
uint64_t extract_bytes(const extractor *x);

/* ---- tar.c: a push parser of ustar / GNU / PAX archives ---- */

typedef struct tar_parser tar_parser;
tar_parser *tar_open(extractor *x, berth_error *e);
int tar_feed(tar_parser *t, const unsigned char *p, size_t n, berth_error *e);
/* The stream ended: fine at an entry boundary, refused mid-entry. */
int tar_end(tar_parser *t, berth_error *e);
void tar_close(tar_parser *t);

/* ---- direct.c: bulk writes past the page cache (O_DIRECT) ---- */

#define DIO_ALIGN 4096u
/* regular files in a layer from this size on are written with O_DIRECT */
#define DIRECT_MIN (4u << 20)
#define STAGE_SIZE (4u << 20)

typedef struct direct_file {
  int fd;
  bool direct; /* O_DIRECT is set on fd */
  size_t mem_align, off_align; /* what O_DIRECT wants of buffers and of file offsets and lengths */
  const char *what; /* for messages */
} direct_file;

/* Fills f for fd and sets O_DIRECT on fd; false (f->direct too) where the
 * filesystem refuses it, or where BERTH_UNPACK_DIRECT=0 (the page cache for
 * everything, as before). */
bool direct_enable(direct_file *f, int fd, const char *what);
/* Writes at the file's offset: an aligned buffer's whole blocks with
 * O_DIRECT, the rest through the page cache (O_DIRECT then stays off). */
int direct_write(direct_file *f, const unsigned char *p, size_t n, berth_error *e);
/* The same for consecutive pieces, in one request when all are aligned. */
struct iovec;
int direct_writev(direct_file *f, const struct iovec *iov, int n, berth_error *e);

/* A file written from unaligned pieces through an aligned staging buffer. */
typedef struct staged_file {
  direct_file f;
  unsigned char *buf; /* STAGE_SIZE, DIO_ALIGN-aligned; kept across files */
  size_t len;
} staged_file;
int staged_open(staged_file *s, int fd, const char *what, berth_error *e);
int staged_write(staged_file *s, const unsigned char *p, size_t n, berth_error *e);
/* Writes what is staged (the file's tail); the file is then complete. */
int staged_flush(staged_file *s, berth_error *e);
void staged_free(staged_file *s);

/* ---- stream.c: decompression ---- */

enum compression { C_NONE, C_GZIP, C_ZSTD };
const char *compression_name(enum compression c);
enum compression compression_sniff(const unsigned char *p, size_t n);

typedef struct decoder decoder;
/* Where decompressed bytes go, written in place (no copy through a buffer
 * of the decoder's): space() gives the next free bytes (at least one; NULL
 * on failure), commit() says how many of them were filled. */
typedef struct decoder_out {
  unsigned char *(*space)(void *arg, size_t *room, berth_error *e);
  int (*commit)(void *arg, size_t n, berth_error *e);
  void *arg;
} decoder_out;
decoder *decoder_open(enum compression c, decoder_out out, berth_error *e);
int decoder_feed(decoder *d, const unsigned char *p, size_t n, berth_error *e);
int decoder_end(decoder *d, berth_error *e);
void decoder_close(decoder *d);

#endif
