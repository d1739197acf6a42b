#include "netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <stdalign.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ------------------------------------------------------------ messages */

/* One request, built in place: header, family header, attributes. */
struct msg {
  alignas(struct nlmsghdr) char buf[2048];
  bool overflow;
};

static struct nlmsghdr *msg_init(struct msg *m, uint16_t type, uint16_t flags) {
  memset(m, 0, sizeof *m);
  struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
  h->nlmsg_len = NLMSG_HDRLEN;
  h->nlmsg_type = type;
  h->nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
  return h;
}

/* Appends `len` bytes (aligned); NULL (and the overflow mark) when they do not fit. */
static void *msg_put(struct msg *m, const void *data, size_t len) {
  struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
  size_t at = NLMSG_ALIGN(h->nlmsg_len);
  if (at + NLMSG_ALIGN(len) > sizeof m->buf) {
    m->overflow = true;
    return NULL;
  }
  char *p = m->buf + at;
  if (data) memcpy(p, data, len);
  else memset(p, 0, len);
  h->nlmsg_len = (uint32_t)(at + NLMSG_ALIGN(len));
  return p;
}

static struct rtattr *attr_put(struct msg *m, uint16_t type, const void *data, size_t len) {
  struct rtattr *a = msg_put(m, NULL, RTA_LENGTH(len));
  if (!a) return NULL;
  a->rta_type = type;
  a->rta_len = (uint16_t)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  return a;
}

static void attr_str(struct msg *m, uint16_t type, const char *s) { attr_put(m, type, s, strlen(s) + 1); }
static void attr_u32(struct msg *m, uint16_t type, uint32_t v) { attr_put(m, type, &v, sizeof v); }

/* A nested attribute: opened empty, closed when what it holds is in. */
static struct rtattr *nest_begin(struct msg *m, uint16_t type) { return attr_put(m, type, NULL, 0); }
static void nest_end(struct msg *m, struct rtattr *nest) {
  if (!nest) return;
  struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
  nest->rta_len = (uint16_t)(m->buf + h->nlmsg_len - (char *)nest);
}

/* -------------------------------------------------------------- socket */

int nl_open(struct nl *nl, berth_error *e) {
  nl->seq = 0;
  nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (nl->fd < 0) return berth_fail_errno(e, "open a rtnetlink socket");
  /* the kernel's own words on a failure, and no copy of our request in its answer */
  int one = 1;
  (void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(nl->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    nl_close(nl);
    return berth_fail(e, err, "bind a rtnetlink socket");
  }
  return 0;
}

void nl_close(struct nl *nl) {
  if (nl->fd >= 0) close(nl->fd);
  nl->fd = -1;
}

/* The extended ack's message (NLMSGERR_ATTR_MSG), if the kernel sent one. */
static const char *ext_ack_msg(const struct nlmsghdr *h) {
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return NULL;
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nlmsgerr));
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) {
    const struct nlmsgerr *err = NLMSG_DATA(h);
    off += NLMSG_ALIGN(err->msg.nlmsg_len) - NLMSG_HDRLEN;
  }
  if (off >= h->nlmsg_len) return NULL;
  const struct rtattr *a = (const struct rtattr *)((const char *)h + off);
  int left = (int)(h->nlmsg_len - off);
  for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
    if (a->rta_type != NLMSGERR_ATTR_MSG || RTA_PAYLOAD(a) == 0) continue;
    const char *s = RTA_DATA(a);
    if (memchr(s, '\0', RTA_PAYLOAD(a))) return s;
  }
  return NULL;
}

/* Sends the request and reads until its ack or error. `reply`, when given,
 * gets a copy of the answer of type `reply_type` (a GET's). The failure's
 * message is the caller's description (`what`) with the errno and, when
 * the kernel explained, its explanation. */
static int talk(struct nl *nl, struct msg *m, void *reply, size_t reply_len, uint16_t reply_type, berth_error *e,
                const char *what) {
  if (m->overflow) return berth_fail_msg(e, EMSGSIZE, "%s: request too large", what);
  struct nlmsghdr *h = (struct nlmsghdr *)m->buf;
  h->nlmsg_seq = ++nl->seq;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  ssize_t n;
  while ((n = sendto(nl->fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel)) < 0 && errno == EINTR) {}
  if (n < 0) return berth_fail_errno(e, "%s: send to the kernel", what);
  alignas(struct nlmsghdr) char buf[32768];
  for (;;) {
    while ((n = recv(nl->fd, buf, sizeof buf, MSG_TRUNC)) < 0 && errno == EINTR) {}
    if (n < 0) return berth_fail_errno(e, "%s: read the kernel's answer", what);
    if ((size_t)n > sizeof buf) return berth_fail_msg(e, EMSGSIZE, "%s: the kernel's answer is too large (%zd bytes)", what, n);
    int left = (int)n;
    for (struct nlmsghdr *r = (struct nlmsghdr *)buf; NLMSG_OK(r, left); r = NLMSG_NEXT(r, left)) {
      if (r->nlmsg_seq != nl->seq) continue; /* not ours (nothing else is asked on this socket) */
      if (r->nlmsg_type == NLMSG_ERROR) {
        if (r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
          return berth_fail_msg(e, EPROTO, "%s: short error message from the kernel", what);
        const struct nlmsgerr *err = NLMSG_DATA(r);
        if (err->error == 0) return 0;
        const char *why = ext_ack_msg(r);
        if (why && *why) return berth_fail(e, -err->error, "%s (%s)", what, why);
        return berth_fail(e, -err->error, "%s", what);
      }
      if (reply && r->nlmsg_type == reply_type) {
        size_t len = r->nlmsg_len < reply_len ? r->nlmsg_len : reply_len;
        memcpy(reply, r, len);
      }
    }
  }
}

/* --------------------------------------------------------------- links */

static int check_name(const char *name, berth_error *e) {
  size_t n = strlen(name);
  if (n == 0 || n > NL_IFNAME_MAX || strchr(name, '/') || strcspn(name, " \t\n:") != n)
    return berth_fail_msg(e, EINVAL, "link name '%s': expected 1-%d characters, none of them '/', ':' or a space", name,
                          NL_IFNAME_MAX);
  return 0;
}

/* A link message for `name`: the header, the ifinfomsg (flags set and
 * changed as given) and the name; the caller adds attributes and talks. */
static int link_msg(struct msg *m, uint16_t type, uint16_t flags, unsigned ifi_up, const char *name, berth_error *e) {
  if (check_name(name, e) < 0) return -1;
  msg_init(m, type, flags);
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_flags = ifi_up, .ifi_change = ifi_up};
  msg_put(m, &ifi, sizeof ifi);
  if (type == RTM_GETLINK) attr_u32(m, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
  attr_str(m, IFLA_IFNAME, name);
  return 0;
}

int nl_link_index(struct nl *nl, const char *name, int *index, berth_error *e) {
  struct msg m;
  if (link_msg(&m, RTM_GETLINK, 0, 0, name, e) < 0) return -1;
  char what[64];
  snprintf(what, sizeof what, "find link '%s'", name);
  alignas(struct nlmsghdr) char reply[NLMSG_SPACE(sizeof(struct ifinfomsg))] = {0};
  if (talk(nl, &m, reply, sizeof reply, RTM_NEWLINK, e, what) < 0) return -1;
  const struct ifinfomsg *got = NLMSG_DATA((struct nlmsghdr *)reply);
  if (got->ifi_index <= 0) return berth_fail_msg(e, EPROTO, "%s: the kernel's answer has no index", what);
  *index = got->ifi_index;
  return 0;
}

int nl_link_up(struct nl *nl, const char *name, berth_error *e) {
  struct msg m;
  if (link_msg(&m, RTM_NEWLINK, 0, IFF_UP, name, e) < 0) return -1;
  char what[64];
  snprintf(what, sizeof what, "set link '%s' up", name);
  return talk(nl, &m, NULL, 0, 0, e, what);
}

int nl_link_no_ipv6_addresses(struct nl *nl, const char *name, berth_error *e) {
  struct msg m;
  if (link_msg(&m, RTM_NEWLINK, 0, 0, name, e) < 0) return -1;
  struct rtattr *spec = nest_begin(&m, IFLA_AF_SPEC);
  struct rtattr *inet6 = nest_begin(&m, AF_INET6);
  uint8_t mode = IN6_ADDR_GEN_MODE_NONE;
  attr_put(&m, IFLA_INET6_ADDR_GEN_MODE, &mode, sizeof mode);
  nest_end(&m, inet6);
  nest_end(&m, spec);
  char what[80];
  snprintf(what, sizeof what, "set IPv6 address generation of link '%s' to none", name);
  if (talk(nl, &m, NULL, 0, 0, e, what) == 0) return 0;
  return e->errnum == EAFNOSUPPORT ? 0 : -1; /* a kernel without IPv6: nothing to turn off */
}

int nl_link_del(struct nl *nl, const char *name, berth_error *e) {
  struct msg m;
  if (link_msg(&m, RTM_DELLINK, 0, 0, name, e) < 0) return -1;
  char what[64];
  snprintf(what, sizeof what, "delete link '%s'", name);
  return talk(nl, &m, NULL, 0, 0, e, what);
}

int nl_bridge_add(struct nl *nl, const char *name, berth_error *e) {
  struct msg m;
  if (link_msg(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, 0, name, e) < 0) return -1;
  struct rtattr *info = nest_begin(&m, IFLA_LINKINFO);
  attr_str(&m, IFLA_INFO_KIND, "bridge");
  nest_end(&m, info);
  char what[64];
  snprintf(what, sizeof what, "create bridge '%s'", name);
  return talk(nl, &m, NULL, 0, 0, e, what);
}

int nl_veth_add(struct nl *nl, const struct nl_veth *v, berth_error *e) {
  if (check_name(v->name, e) < 0 || check_name(v->peer, e) < 0) return -1;
  struct msg m;
  msg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  if (v->up) ifi.ifi_flags = ifi.ifi_change = IFF_UP;
  msg_put(&m, &ifi, sizeof ifi);
  attr_str(&m, IFLA_IFNAME, v->name);
  if (v->master > 0) attr_u32(&m, IFLA_MASTER, (uint32_t)v->master);
  struct rtattr *info = nest_begin(&m, IFLA_LINKINFO);
  attr_str(&m, IFLA_INFO_KIND, "veth");
  struct rtattr *data = nest_begin(&m, IFLA_INFO_DATA);
  struct rtattr *peer = nest_begin(&m, VETH_INFO_PEER);
  struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC};
  msg_put(&m, &peer_ifi, sizeof peer_ifi);
  attr_str(&m, IFLA_IFNAME, v->peer);
  if (v->peer_mac) attr_put(&m, IFLA_ADDRESS, v->peer_mac, 6);
  if (v->peer_netns_fd >= 0) attr_u32(&m, IFLA_NET_NS_FD, (uint32_t)v->peer_netns_fd);
  nest_end(&m, peer);
  nest_end(&m, data);
  nest_end(&m, info);
  char what[96];
  snprintf(what, sizeof what, "create veth '%s' (peer '%s')", v->name, v->peer);
  return talk(nl, &m, NULL, 0, 0, e, what);
}

/* ----------------------------------------------------- addresses, routes */

int nl_addr4_add(struct nl *nl, int index, const char *ifname, struct in_addr addr, int prefix, bool replace,
                 berth_error *e) {
  char a[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &addr, a, sizeof a);
  char what[128];
  snprintf(what, sizeof what, "add address %s/%d to '%s'", a, prefix, ifname);
  if (prefix < 0 || prefix > 32) return berth_fail_msg(e, EINVAL, "%s: the prefix must be 0-32", what);
  struct msg m;
  msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL));
  struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = (uint8_t)prefix, .ifa_index = (uint32_t)index,
                          .ifa_scope = RT_SCOPE_UNIVERSE};
  msg_put(&m, &ifa, sizeof ifa);
  attr_put(&m, IFA_LOCAL, &addr, sizeof addr);
  attr_put(&m, IFA_ADDRESS, &addr, sizeof addr);
  return talk(nl, &m, NULL, 0, 0, e, what);
}

int nl_route4_default(struct nl *nl, int index, const char *ifname, struct in_addr gw, berth_error *e) {
  char g[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &gw, g, sizeof g);
  char what[128];
  snprintf(what, sizeof what, "add default route via %s dev '%s'", g, ifname);
  struct msg m;
  msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE);
  struct rtmsg rt = {.rtm_family = AF_INET, .rtm_dst_len = 0, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT,
                     .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
  msg_put(&m, &rt, sizeof rt);
  attr_put(&m, RTA_GATEWAY, &gw, sizeof gw);
  attr_u32(&m, RTA_OIF, (uint32_t)index);
  return talk(nl, &m, NULL, 0, 0, e, what);
}
