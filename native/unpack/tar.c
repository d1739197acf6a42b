/* A push parser of tar streams (ustar, GNU long names, PAX extended headers)
 * that hands entries to the extractor. PAX values are kept as bytes, so
 * binary xattr values (security.capability) arrive unchanged. Global PAX
 * headers are read and ignored, as Docker and containerd do. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unpack.h"

#define BLOCK 512
#define MAX_META (16u << 20) /* a PAX header or GNU long name larger than this is refused */

enum state { ST_HEADER, ST_DATA, ST_SKIP, ST_META };

struct tar_parser {
  extractor *x;
  enum state st;
  unsigned char hdr[BLOCK];
  size_t hfill;
  uint64_t left;    /* bytes of the current data or meta block still to come */
  uint64_t pad;     /* padding after it */
  char metatype;    /* 'x', 'g', 'L', 'K' while in ST_META */
  unsigned char *meta;
  size_t mfill;
  /* from a PAX header or GNU long name, for the next entry */
  char *path, *linkpath;
  bool has_size, has_uid, has_gid, has_mtime;
  uint64_t size;
  uint64_t uid, gid;
  struct timespec mtime;
  xattr *xattrs;
  size_t nxattrs;
  bool in_entry;
};

static void reset_pending(tar_parser *t) {
  free(t->path);
  free(t->linkpath);
  t->path = t->linkpath = NULL;
  for (size_t i = 0; i < t->nxattrs; i++) {
    free(t->xattrs[i].name);
    free(t->xattrs[i].value);
  }
  free(t->xattrs);
  t->xattrs = NULL;
  t->nxattrs = 0;
  t->has_size = t->has_uid = t->has_gid = t->has_mtime = false;
}

tar_parser *tar_open(extractor *x, berth_error *e) {
  tar_parser *t = calloc(1, sizeof *t);
  if (!t) {
    berth_fail(e, errno, "tar parser: allocating");
    return NULL;
  }
  t->x = x;
  return t;
}

void tar_close(tar_parser *t) {
  if (!t) return;
  reset_pending(t);
  free(t->meta);
  free(t);
}

static int bad(berth_error *e, const char *why) {
  return berth_fail_msg(e, KIND_REFUSED, "not a valid tar stream: %s", why);
}

/* A numeric header field: octal (spaces/NULs around it) or GNU base-256. */
static int number(const unsigned char *f, size_t n, uint64_t *out, berth_error *e) {
  uint64_t v = 0;
  if (f[0] & 0x80) {
    if (f[0] == 0xff) return bad(e, "negative number in a header");
    v = f[0] & 0x7f;
    for (size_t i = 1; i < n; i++) {
      if (v >> 56) return bad(e, "number too large in a header");
      v = (v << 8) | f[i];
    }
    *out = v;
    return 0;
  }
  size_t i = 0;
  while (i < n && (f[i] == ' ' || f[i] == 0)) i++;
  for (; i < n && f[i] >= '0' && f[i] <= '7'; i++) {
    if (v >> 60) return bad(e, "number too large in a header");
    v = (v << 3) | (uint64_t)(f[i] - '0');
  }
  for (; i < n; i++)
    if (f[i] != ' ' && f[i] != 0) return bad(e, "a header number is not octal");
  *out = v;
  return 0;
}

static char *field(const unsigned char *f, size_t n) {
  size_t len = strnlen((const char *)f, n);
  char *s = malloc(len + 1);
  if (!s) return NULL;
  memcpy(s, f, len);
  s[len] = 0;
  return s;
}

static bool is_zero(const unsigned char *b) {
  for (size_t i = 0; i < BLOCK; i++)
    if (b[i]) return false;
  return true;
}

static int checksum_ok(const unsigned char *b, berth_error *e) {
  uint64_t want;
  if (number(b + 148, 8, &want, e) < 0) return -1;
  uint64_t u = 0;
  int64_t s = 0;
  for (size_t i = 0; i < BLOCK; i++) {
    unsigned char c = (i >= 148 && i < 156) ? ' ' : b[i];
    u += c;
    s += (signed char)c;
  }
  if (u != want && (uint64_t)s != want) return bad(e, "header checksum mismatch (corrupt, or not a tar: maybe still compressed?)");
  return 0;
}

static int parse_decimal(const unsigned char *p, size_t n, uint64_t *out) {
  uint64_t v = 0;
  if (n == 0) return -1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9' || v > UINT64_MAX / 10 - 10) return -1;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  *out = v;
  return 0;
}

static char *strndup_checked(const unsigned char *p, size_t n, berth_error *e, const char *what) {
  if (memchr(p, 0, n)) {
    berth_fail_msg(e, KIND_REFUSED, "not a valid tar stream: PAX %s contains a NUL byte", what);
    return NULL;
  }
  char *s = malloc(n + 1);
  if (!s) {
    berth_fail(e, errno, "tar parser: allocating");
    return NULL;
  }
  memcpy(s, p, n);
  s[n] = 0;
  return s;
}

static int pax_record(tar_parser *t, const unsigned char *k, size_t klen, const unsigned char *v, size_t vlen, berth_error *e) {
#define KEY(s) (klen == sizeof(s) - 1 && memcmp(k, s, klen) == 0)
  if (KEY("path")) {
    free(t->path);
    return (t->path = strndup_checked(v, vlen, e, "path")) ? 0 : -1;
  }
  if (KEY("linkpath")) {
    free(t->linkpath);
    return (t->linkpath = strndup_checked(v, vlen, e, "linkpath")) ? 0 : -1;
  }
  if (KEY("size") || KEY("uid") || KEY("gid")) {
    uint64_t n;
    if (parse_decimal(v, vlen, &n) < 0) return bad(e, "a PAX number is not decimal");
    if (k[0] == 's') t->size = n, t->has_size = true;
    else if (k[0] == 'u') t->uid = n, t->has_uid = true;
    else t->gid = n, t->has_gid = true;
    return 0;
  }
  if (KEY("mtime")) {
    size_t dot = 0;
    while (dot < vlen && v[dot] != '.') dot++;
    uint64_t sec;
    if (parse_decimal(v, dot, &sec) < 0) {
      if (vlen > 0 && v[0] == '-') return 0; /* before 1970: keep the header's */
      return bad(e, "PAX mtime is not a number");
    }
    long ns = 0;
    size_t digits = 0;
    for (size_t i = dot + 1; i < vlen && digits < 9; i++, digits++) {
      if (v[i] < '0' || v[i] > '9') return bad(e, "PAX mtime is not a number");
      ns = ns * 10 + (v[i] - '0');
    }
    for (; digits < 9 && dot < vlen; digits++) ns *= 10;
    t->mtime.tv_sec = (time_t)sec;
    t->mtime.tv_nsec = ns;
    t->has_mtime = true;
    return 0;
  }
  static const char pfx[] = "SCHILY.xattr.";
  if (klen > sizeof pfx - 1 && memcmp(k, pfx, sizeof pfx - 1) == 0) {
    xattr *nx = realloc(t->xattrs, (t->nxattrs + 1) * sizeof *nx);
    if (!nx) return berth_fail(e, errno, "tar parser: allocating");
    t->xattrs = nx;
    xattr *x = &t->xattrs[t->nxattrs];
    x->name = strndup_checked(k + sizeof pfx - 1, klen - (sizeof pfx - 1), e, "xattr name");
    if (!x->name) return -1;
    x->value = malloc(vlen ? vlen : 1);
    if (!x->value) {
      free(x->name);
      return berth_fail(e, errno, "tar parser: allocating");
    }
    memcpy(x->value, v, vlen);
    x->len = vlen;
    t->nxattrs++;
    return 0;
  }
  return 0; /* other keys (atime, ctime, uname, gname, comments, ...) do not matter for a layer */
#undef KEY
}

static int parse_pax(tar_parser *t, const unsigned char *p, size_t n, berth_error *e) {
  while (n > 0) {
    size_t i = 0;
    while (i < n && p[i] != ' ') i++;
    uint64_t len;
    if (i == n || parse_decimal(p, i, &len) < 0 || len <= i + 1 || len > n || p[len - 1] != '\n') return bad(e, "malformed PAX record");
    const unsigned char *kv = p + i + 1;
    size_t kvlen = (size_t)len - i - 2;
    const unsigned char *eq = memchr(kv, '=', kvlen);
    if (!eq || eq == kv) return bad(e, "malformed PAX record (no key=value)");
    if (pax_record(t, kv, (size_t)(eq - kv), eq + 1, kvlen - (size_t)(eq - kv) - 1, e) < 0) return -1;
    p += len;
    n -= len;
  }
  return 0;
}

static int skip_done(tar_parser *t, berth_error *e);

static uint64_t padding(uint64_t size) { return (BLOCK - size % BLOCK) % BLOCK; }

static int header(tar_parser *t, berth_error *e) {
  const unsigned char *b = t->hdr;
  if (is_zero(b)) return 0; /* end-of-archive blocks; whatever follows is hashed, not unpacked */
  if (checksum_ok(b, e) < 0) return -1;
  uint64_t size, mode, uid, gid, mtime, dmaj = 0, dmin = 0;
  if (number(b + 124, 12, &size, e) < 0 || number(b + 100, 8, &mode, e) < 0 || number(b + 108, 8, &uid, e) < 0 ||
      number(b + 116, 8, &gid, e) < 0 || number(b + 136, 12, &mtime, e) < 0)
    return -1;
  char type = (char)b[156];
  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    if (size > MAX_META) return bad(e, "PAX header or GNU long name larger than 16 MiB");
    t->metatype = type;
    t->left = size;
    t->pad = padding(size);
    t->mfill = 0;
    free(t->meta);
    t->meta = malloc(size ? size : 1);
    if (!t->meta) return berth_fail(e, errno, "tar parser: allocating");
    t->st = ST_META;
    return 0;
  }
  bool ustar = memcmp(b + 257, "ustar\0", 6) == 0;
  bool gnu = memcmp(b + 257, "ustar  \0", 8) == 0;
  if ((ustar || gnu) && (b[329] || b[337])) {
    if (number(b + 329, 8, &dmaj, e) < 0 || number(b + 337, 8, &dmin, e) < 0) return -1;
  }
  entry en;
  memset(&en, 0, sizeof en);
  char *name = NULL, *link = NULL;
  if (t->path) {
    name = t->path;
    t->path = NULL;
  } else {
    char *n = field(b, 100);
    if (!n) return berth_fail(e, errno, "tar parser: allocating");
    if (ustar && b[345]) {
      char *pre = field(b + 345, 155);
      if (!pre || !(name = malloc(strlen(pre) + strlen(n) + 2))) {
        free(pre);
        free(n);
        return berth_fail(e, errno, "tar parser: allocating");
      }
      sprintf(name, "%s/%s", pre, n);
      free(pre);
      free(n);
    } else {
      name = n;
    }
  }
  if (t->linkpath) {
    link = t->linkpath;
    t->linkpath = NULL;
  } else if (!(link = field(b + 157, 100))) {
    free(name);
    return berth_fail(e, errno, "tar parser: allocating");
  }
  if (t->has_size) size = t->size;
  if (t->has_uid) uid = t->uid;
  if (t->has_gid) gid = t->gid;
  en.name = name;
  en.linkname = link;
  en.mode = (mode_t)(mode & 07777);
  en.uid = (uid_t)uid;
  en.gid = (gid_t)gid;
  en.mtime.tv_sec = (time_t)mtime;
  if (t->has_mtime) en.mtime = t->mtime;
  en.devmajor = (unsigned)dmaj;
  en.devminor = (unsigned)dmin;
  en.size = 0;
  en.xattrs = t->xattrs;
  en.nxattrs = t->nxattrs;
  size_t nl = strlen(name);
  switch (type) {
  case '0': case '\0': case '7':
    en.type = (nl > 0 && name[nl - 1] == '/' && type != '7') ? E_DIR : E_FILE;
    break;
  case '1': en.type = E_LINK; break;
  case '2': en.type = E_SYMLINK; break;
  case '3': en.type = E_CHAR; break;
  case '4': en.type = E_BLOCK; break;
  case '5': en.type = E_DIR; break;
  case '6': en.type = E_FIFO; break;
  default: {
    const char *tn = type == 'S' ? "gnu-sparse" : type == 'V' ? "gnu-volume-header" : type == 'M' ? "gnu-multivolume" : NULL;
    char buf[8];
    if (!tn) {
      snprintf(buf, sizeof buf, "%c", (type >= 0x21 && type < 0x7f) ? type : '?');
      tn = buf;
    }
    berth_fail_msg(e, KIND_REFUSED, "refused entry \"%s\": unsupported tar entry type \"%s\"", name, tn);
    free(name);
    free(link);
    return -1;
  }
  }
  if (en.type == E_FILE) en.size = size;
  /* the extractor owns the xattrs from here (applied when the entry ends) */
  t->xattrs = NULL;
  t->nxattrs = 0;
  int rc = extract_begin(t->x, &en, e);
  free(name);
  free(link);
  reset_pending(t);
  if (rc < 0) return -1;
  t->in_entry = true;
  t->left = size;
  t->pad = padding(size);
  t->st = en.type == E_FILE ? ST_DATA : ST_SKIP;
  if (t->left == 0 && t->st == ST_DATA) t->st = ST_SKIP;
  if (t->st == ST_SKIP && t->left == 0 && t->pad == 0) return skip_done(t, e);
  return 0;
}

/* Data and padding of an entry are over: back to headers. */
static int skip_done(tar_parser *t, berth_error *e) {
  t->st = ST_HEADER;
  if (!t->in_entry) return 0;
  t->in_entry = false;
  return extract_end(t->x, e);
}

int tar_feed(tar_parser *t, const unsigned char *p, size_t n, berth_error *e) {
  while (n > 0) {
    switch (t->st) {
    case ST_HEADER: {
      size_t take = BLOCK - t->hfill < n ? BLOCK - t->hfill : n;
      memcpy(t->hdr + t->hfill, p, take);
      t->hfill += take;
      p += take;
      n -= take;
      if (t->hfill == BLOCK) {
        t->hfill = 0;
        if (header(t, e) < 0) return -1;
      }
      break;
    }
    case ST_DATA: {
      size_t take = t->left < n ? (size_t)t->left : n;
      if (extract_data(t->x, p, take, e) < 0) return -1;
      t->left -= take;
      p += take;
      n -= take;
      if (t->left == 0) {
        t->st = ST_SKIP;
        if (t->pad == 0 && skip_done(t, e) < 0) return -1;
      }
      break;
    }
    case ST_META: {
      size_t take = t->left < n ? (size_t)t->left : n;
      memcpy(t->meta + t->mfill, p, take);
      t->mfill += take;
      t->left -= take;
      p += take;
      n -= take;
      if (t->left == 0) {
        char mt = t->metatype;
        if (mt == 'x') {
          if (parse_pax(t, t->meta, t->mfill, e) < 0) return -1;
        } else if (mt == 'L' || mt == 'K') {
          size_t len = strnlen((const char *)t->meta, t->mfill);
          char *s = malloc(len + 1);
          if (!s) return berth_fail(e, errno, "tar parser: allocating");
          memcpy(s, t->meta, len);
          s[len] = 0;
          char **slot = mt == 'L' ? &t->path : &t->linkpath;
          free(*slot);
          *slot = s;
        }
        t->metatype = 0;
        t->st = ST_SKIP;
        if (t->pad == 0 && skip_done(t, e) < 0) return -1;
      }
      break;
    }
    case ST_SKIP: {
      /* data of non-file entries, then padding */
      uint64_t want = t->left + t->pad;
      size_t take = want < n ? (size_t)want : n;
      if (take <= t->left) t->left -= take;
      else {
        t->pad -= take - t->left;
        t->left = 0;
      }
      p += take;
      n -= take;
      if (t->left == 0 && t->pad == 0 && skip_done(t, e) < 0) return -1;
      break;
    }
    }
  }
  return 0;
}

int tar_end(tar_parser *t, berth_error *e) {
  if (t->st != ST_HEADER || t->hfill != 0) return bad(e, "unexpected end of data (truncated layer)");
  return 0;
}
