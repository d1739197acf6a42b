/* Decompression of a layer stream: gzip (zlib, multi-member like Go's
 * reader), zstd (libzstd, when built with it) or none. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#ifdef HAVE_ZSTD
#include <zstd.h>
#endif

#include "unpack.h"

struct decoder {
  enum compression c;
  decoder_out out;
  z_stream z;
  bool member_done; /* gzip: a member ended; more bytes start another one */
#ifdef HAVE_ZSTD
  ZSTD_DCtx *zd;
  size_t zlast; /* last ZSTD_decompressStream hint: 0 = a frame is complete */
#endif
};

const char *compression_name(enum compression c) {
  return c == C_GZIP ? "gzip" : c == C_ZSTD ? "zstd" : "none";
}

enum compression compression_sniff(const unsigned char *p, size_t n) {
  if (n >= 2 && p[0] == 0x1f && p[1] == 0x8b) return C_GZIP;
  if (n >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd) return C_ZSTD;
  return C_NONE;
}

decoder *decoder_open(enum compression c, decoder_out out, berth_error *e) {
#ifndef HAVE_ZSTD
  if (c == C_ZSTD) {
    berth_fail_msg(e, KIND_REFUSED, "zstd layer: this berth-unpack was built without libzstd (install libzstd-dev and rebuild native/)");
    return NULL;
  }
#endif
  decoder *d = calloc(1, sizeof *d);
  if (!d) {
    berth_fail(e, errno, "decoder: allocating");
    return NULL;
  }
  d->c = c;
  d->out = out;
  if (c == C_GZIP && inflateInit2(&d->z, 16 + MAX_WBITS) != Z_OK) {
    free(d);
    berth_fail_msg(e, KIND_REFUSED, "gzip: inflateInit2 failed");
    return NULL;
  }
  /* gzip's CRC-32 is not computed: the sha256 of the compressed blob and the
   * diff ID (sha256 of the output) are both checked, so it could only
   * repeat what they say (and it was 12% of the CPU time) */
  if (c == C_GZIP) inflateValidate(&d->z, 0);
#ifdef HAVE_ZSTD
  if (c == C_ZSTD && !(d->zd = ZSTD_createDCtx())) {
    free(d);
    berth_fail_msg(e, KIND_REFUSED, "zstd: ZSTD_createDCtx failed");
    return NULL;
  }
#endif
  return d;
}

static int gzip_feed(decoder *d, const unsigned char *p, size_t n, berth_error *e) {
  d->z.next_in = (unsigned char *)p;
  d->z.avail_in = (uInt)n;
  while (d->z.avail_in > 0) {
    if (d->member_done) {
      /* another gzip member follows (concatenated gzip is still gzip) */
      if (inflateReset(&d->z) != Z_OK) return berth_fail_msg(e, KIND_REFUSED, "gzip: inflateReset failed");
      inflateValidate(&d->z, 0);
      d->member_done = false;
    }
    size_t room = 0;
    unsigned char *dst = d->out.space(d->out.arg, &room, e);
    if (!dst) return -1;
    if (room > UINT_MAX) room = UINT_MAX;
    d->z.next_out = dst;
    d->z.avail_out = (uInt)room;
    int rc = inflate(&d->z, Z_NO_FLUSH);
    size_t got = room - d->z.avail_out;
    if (got > 0 && d->out.commit(d->out.arg, got, e) < 0) return -1;
    if (rc == Z_STREAM_END) {
      d->member_done = true;
      continue;
    }
    if (rc == Z_BUF_ERROR && got == 0) break;
    if (rc != Z_OK) return berth_fail_msg(e, KIND_REFUSED, "not valid gzip data: %s", d->z.msg ? d->z.msg : "inflate failed");
  }
  return 0;
}

#ifdef HAVE_ZSTD
static int zstd_feed(decoder *d, const unsigned char *p, size_t n, berth_error *e) {
  ZSTD_inBuffer in = {p, n, 0};
  for (;;) {
    size_t room = 0;
    unsigned char *dst = d->out.space(d->out.arg, &room, e);
    if (!dst) return -1;
    ZSTD_outBuffer out = {dst, room, 0};
    size_t rc = ZSTD_decompressStream(d->zd, &out, &in);
    if (ZSTD_isError(rc)) return berth_fail_msg(e, KIND_REFUSED, "not valid zstd data: %s", ZSTD_getErrorName(rc));
    d->zlast = rc;
    if (out.pos > 0 && d->out.commit(d->out.arg, out.pos, e) < 0) return -1;
    if (in.pos == in.size && out.pos < out.size) break;
  }
  return 0;
}
#endif

int decoder_feed(decoder *d, const unsigned char *p, size_t n, berth_error *e) {
  if (n == 0) return 0;
  switch (d->c) {
  case C_GZIP:
    return gzip_feed(d, p, n, e);
#ifdef HAVE_ZSTD
  case C_ZSTD:
    return zstd_feed(d, p, n, e);
#endif
  default:
    /* a plain tar: copied as it is */
    while (n > 0) {
      size_t room = 0;
      unsigned char *dst = d->out.space(d->out.arg, &room, e);
      if (!dst) return -1;
      size_t take = room < n ? room : n;
      memcpy(dst, p, take);
      if (d->out.commit(d->out.arg, take, e) < 0) return -1;
      p += take;
      n -= take;
    }
    return 0;
  }
}

int decoder_end(decoder *d, berth_error *e) {
  if (d->c == C_GZIP && !d->member_done) return berth_fail_msg(e, KIND_REFUSED, "not valid gzip data: the stream ends inside a gzip member (truncated)");
#ifdef HAVE_ZSTD
  if (d->c == C_ZSTD && d->zlast != 0) return berth_fail_msg(e, KIND_REFUSED, "not valid zstd data: the stream ends inside a frame (truncated)");
#endif
  return 0;
}

void decoder_close(decoder *d) {
  if (!d) return;
  if (d->c == C_GZIP) inflateEnd(&d->z);
#ifdef HAVE_ZSTD
  if (d->zd) ZSTD_freeDCtx(d->zd);
#endif
  free(d);
}
