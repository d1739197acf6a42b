/* The shim's configuration, filled from argv by main.c and read-only after. */
#ifndef BERTH_SHIM_OPTIONS_H
#define BERTH_SHIM_OPTIONS_H

#include <stdbool.h>

struct shim_options {
  const char *id;           /* container ID, passed to the runtime */
  const char *state_dir;    /* absolute; holds sockets, pid files, exit.json */
  const char *runtime;      /* runtime executable (absolute, or a name looked up in PATH) */
  const char *runtime_exec; /* what `create` executes (a sealed copy of the runtime), or NULL for runtime */
  int runtime_exec_fd;      /* runtime_exec held open from the start (O_PATH), or -1; closed by
                               runtime_create once create has run (it alone uses it) */
  const char *runtime_root; /* --root for the runtime, or NULL */
  const char *bundle;       /* absolute OCI bundle directory */
  const char *log_path;     /* absolute JSON-lines log, or NULL for none */
  unsigned long long log_max_size; /* bytes; 0 = never rotate */
  unsigned log_max_files;   /* files kept, the live one included (>= 1) */
  bool terminal;            /* container gets a pty through --console-socket */
  bool stdin_open;          /* container stdin is fed from attach clients */
  bool stdin_once;          /* close container stdin when an attach client ends its input */
  bool remove;              /* run `runtime delete` once the container has exited */
  const char **exit_argv;   /* --exit-command and its --exit-command-arg's, NULL-terminated; NULL for none */
};

#endif
