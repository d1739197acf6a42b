#include "exit_command.h"

#include <errno.h>
#include <linux/close_range.h>
#include <unistd.h>

#include "daemonize.h"

int exit_command_start(const struct shim_options *o, berth_error *e) {
  if (!o->exit_argv) return 0;
  if (access(EXIT_COMMAND_SKIP_FILE, F_OK) == 0) return 0;
  pid_t pid = fork();
  if (pid < 0) return berth_fail_errno(e, "fork exit command '%s' of container '%s'", o->exit_argv[0], o->id);
  if (pid > 0) return 0;
  /* the shim's stdio is /dev/null already (daemonize); its sockets, log and signalfd are not the program's */
  close_range(3, ~0U, 0);
  daemonize_undo_signals();
  if (chdir("/") < 0) _exit(127);
  execv(o->exit_argv[0], (char *const *)o->exit_argv);
  _exit(127);
}
