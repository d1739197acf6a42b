#include "spec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int spec_get_int(json_t *obj, const char *key, const char *where, long long fallback, long long *out,
                 berth_error *e) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) {
    *out = fallback;
    return 0;
  }
  if (!json_is_integer(v)) return berth_fail_msg(e, EINVAL, "%s.%s: expected an integer", where, key);
  *out = json_integer_value(v);
  return 0;
}

int spec_check_process(json_t *process, const char *where, berth_error *e) {
  if (!json_is_object(process)) return berth_fail_msg(e, EINVAL, "%s: expected an object", where);
  json_t *args = json_object_get(process, "args");
  if (!json_is_array(args) || json_array_size(args) == 0)
    return berth_fail_msg(e, EINVAL, "%s.args: expected a non-empty array of strings (the command to run)", where);
  size_t i;
  json_t *v;
  json_array_foreach(args, i, v) {
    if (!json_is_string(v)) return berth_fail_msg(e, EINVAL, "%s.args[%zu]: expected a string", where, i);
  }
  const char *cwd = json_str(process, "cwd");
  if (json_object_get(process, "cwd") && !cwd) return berth_fail_msg(e, EINVAL, "%s.cwd: expected a string", where);
  if (cwd && cwd[0] != '/')
    return berth_fail_msg(e, EINVAL, "%s.cwd: expected an absolute path, got \"%s\"", where, cwd);
  json_t *env = json_object_get(process, "env");
  if (env && !json_is_array(env)) return berth_fail_msg(e, EINVAL, "%s.env: expected an array of \"KEY=value\"", where);
  json_array_foreach(env, i, v) {
    if (!json_is_string(v) || !strchr(json_string_value(v), '='))
      return berth_fail_msg(e, EINVAL, "%s.env[%zu]: expected \"KEY=value\"", where, i);
  }
  json_t *user = json_object_get(process, "user");
  if (user) {
    if (!json_is_object(user)) return berth_fail_msg(e, EINVAL, "%s.user: expected an object", where);
    const char *ids[] = {"uid", "gid", "umask"};
    for (size_t k = 0; k < BERTH_ARRAY_LEN(ids); k++) {
      json_t *id = json_object_get(user, ids[k]);
      if (id && (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) > 0xffffffffLL))
        return berth_fail_msg(e, EINVAL, "%s.user.%s: expected a non-negative 32-bit integer", where, ids[k]);
    }
    json_t *gids = json_object_get(user, "additionalGids");
    if (gids && !json_is_array(gids))
      return berth_fail_msg(e, EINVAL, "%s.user.additionalGids: expected an array of integers", where);
    json_array_foreach(gids, i, v) {
      if (!json_is_integer(v) || json_integer_value(v) < 0)
        return berth_fail_msg(e, EINVAL, "%s.user.additionalGids[%zu]: expected a non-negative integer", where, i);
    }
  }
  json_t *rl = json_object_get(process, "rlimits");
  if (rl && !json_is_array(rl)) return berth_fail_msg(e, EINVAL, "%s.rlimits: expected an array", where);
  json_array_foreach(rl, i, v) {
    if (!json_is_object(v) || !json_str(v, "type") || !json_is_integer(json_object_get(v, "hard")) ||
        !json_is_integer(json_object_get(v, "soft")))
      return berth_fail_msg(e, EINVAL, "%s.rlimits[%zu]: expected {\"type\": \"RLIMIT_...\", \"soft\": n, \"hard\": n}",
                        where, i);
  }
  return 0;
}

int spec_load(berth_spec *s, const char *bundle, const char *config_path, berth_error *e) {
  memset(s, 0, sizeof *s);
  if (!realpath(bundle, s->bundle)) return berth_fail_errno(e, "bundle '%s'", bundle);
  char path[PATH_MAX];
  if (config_path)
    snprintf(path, sizeof path, "%s", config_path);
  else if (snprintf(path, sizeof path, "%s/config.json", s->bundle) >= (int)sizeof path)
    return berth_fail(e, ENAMETOOLONG, "bundle '%s'", bundle);
  json_error_t jerr;
  s->config = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!s->config) {
    if (access(path, R_OK) < 0) return berth_fail_errno(e, "read '%s'", path);
    return berth_fail_msg(e, EINVAL, "%s: line %d column %d: %s", path, jerr.line, jerr.column, jerr.text);
  }
  if (!json_is_object(s->config)) return berth_fail_msg(e, EINVAL, "%s: expected a JSON object", path);
  if (!json_str(s->config, "ociVersion"))
    return berth_fail_msg(e, EINVAL, "%s: ociVersion: expected a string such as \"1.0.2\"", path);
  json_t *root = json_object_get(s->config, "root");
  const char *rootpath = json_str(root, "path");
  if (!rootpath) return berth_fail_msg(e, EINVAL, "%s: root.path: expected the path of the container's root filesystem", path);
  char joined[PATH_MAX];
  if (rootpath[0] == '/')
    snprintf(joined, sizeof joined, "%s", rootpath);
  else
    snprintf(joined, sizeof joined, "%s/%s", s->bundle, rootpath);
  if (!realpath(joined, s->rootfs)) return berth_fail_errno(e, "%s: root.path '%s'", path, rootpath);
  struct stat st;
  if (stat(s->rootfs, &st) < 0) return berth_fail_errno(e, "%s: root.path '%s'", path, rootpath);
  if (!S_ISDIR(st.st_mode)) return berth_fail_msg(e, ENOTDIR, "%s: root.path '%s' is not a directory", path, rootpath);
  s->process = json_object_get(s->config, "process");
  if (!s->process) return berth_fail_msg(e, EINVAL, "%s: process: required to create a container", path);
  if (spec_check_process(s->process, "process", e) < 0) return berth_wrap(e, "%s", path);
  s->linux_ = json_object_get(s->config, "linux");
  if (s->linux_ && !json_is_object(s->linux_)) return berth_fail_msg(e, EINVAL, "%s: linux: expected an object", path);
  return 0;
}

void spec_free(berth_spec *s) {
  if (s->config) json_decref(s->config);
  s->config = NULL;
}
