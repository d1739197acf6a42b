/* rtnetlink (NETLINK_ROUTE): the links, addresses and routes of Berth's
 * container networks, as `ip link/addr/route` would make them, without a
 * program per step. A socket acts in the network namespace it was opened
 * in, whatever namespace its owner moves to later: open one on each side
 * before and after a setns(2)/unshare(2) to work on both.
 *
 * Every call sends one request and waits for the kernel's answer (an ack
 * or an error, with the kernel's own extended-ack text when it gives one);
 * a failure fills the berth_error with its errno and a message naming the
 * object ("create veth 'berth1a2b' (peer 'eth0'): File exists"). */
#ifndef BERTH_SHIM_NETLINK_H
#define BERTH_SHIM_NETLINK_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* The longest interface name the kernel takes (IFNAMSIZ less the NUL). */
#define NL_IFNAME_MAX 15

struct nl {
  int fd;
  uint32_t seq;
};

/* A NETLINK_ROUTE socket in the calling thread's network namespace. */
int nl_open(struct nl *nl, berth_error *e);
void nl_close(struct nl *nl);

/* The index of the link `name`; fails with ENODEV when there is none. */
int nl_link_index(struct nl *nl, const char *name, int *index, berth_error *e);
/* Sets the link up (`ip link set dev NAME up`). */
int nl_link_up(struct nl *nl, const char *name, berth_error *e);
/* Deletes the link (one end of a veth pair takes the other with it); the
 * kernel answers after an RCU grace period. ENODEV when there is none. */
int nl_link_del(struct nl *nl, const char *name, berth_error *e);
/* Creates a bridge (`ip link add name NAME type bridge`); EEXIST when a link
 * of that name is there. */
int nl_bridge_add(struct nl *nl, const char *name, berth_error *e);

struct nl_veth {
  const char *name;         /* this end, in the socket's namespace */
  int master;               /* its bridge's index; 0 for none */
  bool up;                  /* set this end up */
  const char *peer;         /* the other end's name */
  const uint8_t *peer_mac;  /* 6 bytes; NULL for a random one */
  int peer_netns_fd;        /* the namespace the other end goes to; -1 for the socket's */
};
/* `ip link set NAME addrgenmode none`: the link makes no IPv6 address of
 * its own, so it sends no duplicate address detection, router solicitation
 * or multicast listener report when it comes up (a bridge floods those to
 * every port). Before the link is up; a kernel without IPv6 is not an error. */
int nl_link_no_ipv6_addresses(struct nl *nl, const char *name, berth_error *e);

/* Creates a veth pair in one request; EEXIST when either name is taken. */
int nl_veth_add(struct nl *nl, const struct nl_veth *v, berth_error *e);

/* Adds an IPv4 address (`ip addr add ADDR/PREFIX dev IFNAME`; `replace`:
 * `ip addr replace`). `ifname` only names the link in messages. */
int nl_addr4_add(struct nl *nl, int index, const char *ifname, struct in_addr addr, int prefix, bool replace,
                 berth_error *e);
/* `ip route replace default via GW dev IFNAME` in the main table. */
int nl_route4_default(struct nl *nl, int index, const char *ifname, struct in_addr gw, berth_error *e);

#endif
