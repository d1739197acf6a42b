#include <getopt.h>

#include "caps.h"
#include "cgroup.h"
#include "cli.h"
#include "ns.h"
#include "seccomp.h"

int cli_features(cli_globals *g, int argc, char **argv, berth_error *e) {
  json_t *f = json_pack("{s:s, s:s, s:[ssssss]}", "ociVersionMin", "1.0.0", "ociVersionMax", "1.2.0", "hooks",
                        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop");
  static const char *mount_options[] = {
      "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "mand", "noatime", "nodev",
      "nodiratime", "noexec", "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "rbind",
      "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
      "strictatime", "suid", "sync", "unbindable"};
  json_t *mo = json_array();
  for (size_t i = 0; i < sizeof mount_options / sizeof mount_options[0]; i++)
    json_array_append_new(mo, json_string(mount_options[i]));
  json_object_set_new(f, "mountOptions", mo);
  json_t *linux_ = json_object();
  json_object_set_new(linux_, "namespaces", ns_features());
  json_object_set_new(linux_, "capabilities", caps_features());
  json_object_set_new(linux_, "cgroup", cgroup_features());
  json_object_set_new(linux_, "seccomp", seccomp_features());
  json_object_set_new(linux_, "apparmor", json_pack("{s:b}", "enabled", 0));
  json_object_set_new(linux_, "selinux", json_pack("{s:b}", "enabled", 0));
  json_object_set_new(linux_, "intelRdt", json_pack("{s:b}", "enabled", 0));
  json_object_set_new(linux_, "mountExtensions", json_pack("{s:{s:b}}", "idmap", "enabled", 0));
  json_object_set_new(f, "linux", linux_);
  json_object_set_new(f, "annotations", json_pack("{s:s}", "org.berth.runtime.version", "0.1.0"));
  cli_print_json(f, true);
  json_decref(f);
  return 0;
}
