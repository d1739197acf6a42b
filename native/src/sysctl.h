/* linux.sysctl: only keys that belong to a namespace the container owns. */
#ifndef BERTH_SYSCTL_H
#define BERTH_SYSCTL_H

#include <jansson.h>

#include "error.h"
#include "ns.h"

/* Host side: every key must be namespaced by one of the container's own
 * namespaces (net.* needs a network ns, kernel.hostname a uts ns ...). */
int sysctl_check(json_t *sysctl, const ns_plan *ns, berth_error *e);
/* Inside the container, after pivot_root: writes /proc/sys/<key with / for .>. */
int sysctl_apply(json_t *sysctl, berth_error *e);

#endif
