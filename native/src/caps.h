/* The five capability sets from config.process.capabilities. */
#ifndef BERTH_CAPS_H
#define BERTH_CAPS_H

#include <stdint.h>

#include <jansson.h>

#include "error.h"

typedef struct caps_sets {
  uint64_t bounding, effective, inheritable, permitted, ambient;
} caps_sets;

/* Parses names like "CAP_NET_ADMIN"; an unknown name is an error naming the
 * set and the name. capabilities may be NULL: every set empty. */
int caps_parse(json_t *capabilities, caps_sets *out, berth_error *e);
/* Call before changing uid: keeps permitted caps across setresuid. */
int caps_keep_across_setuid(berth_error *e);
/* Call after setresuid/setresgid: drops the bounding set to `bounding`, sets
 * effective/permitted/inheritable, then the ambient set. */
int caps_apply(const caps_sets *c, berth_error *e);
/* For `features`: array of known capability names. */
json_t *caps_features(void);

#endif
