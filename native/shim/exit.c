#include "exit.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "timefmt.h"
#include "util.h"

/* The names glibc's sigabbrev_np gives (SIGIO as POLL), from this
 * architecture's numbers. Not sigabbrev_np itself: its table is one of
 * pointers, which a static PIE relocates at every start, and linking it put
 * a fifth dirty page of relocated data in every shim. Arrays of char are
 * plain read-only data. */
static const char signal_names[][8] = {
    [SIGHUP] = "HUP",     [SIGINT] = "INT",       [SIGQUIT] = "QUIT",   [SIGILL] = "ILL",
    [SIGTRAP] = "TRAP",   [SIGABRT] = "ABRT",     [SIGBUS] = "BUS",     [SIGFPE] = "FPE",
    [SIGKILL] = "KILL",   [SIGUSR1] = "USR1",     [SIGSEGV] = "SEGV",   [SIGUSR2] = "USR2",
    [SIGPIPE] = "PIPE",   [SIGALRM] = "ALRM",     [SIGTERM] = "TERM",   [SIGCHLD] = "CHLD",
    [SIGCONT] = "CONT",   [SIGSTOP] = "STOP",     [SIGTSTP] = "TSTP",   [SIGTTIN] = "TTIN",
    [SIGTTOU] = "TTOU",   [SIGURG] = "URG",       [SIGXCPU] = "XCPU",   [SIGXFSZ] = "XFSZ",
    [SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF",   [SIGWINCH] = "WINCH", [SIGPOLL] = "POLL",
    [SIGPWR] = "PWR",     [SIGSYS] = "SYS",
#ifdef SIGSTKFLT
    [SIGSTKFLT] = "STKFLT",
#endif
};

char *exit_record_json(const struct exit_record *r) {
  int code = 0, sig = 0;
  if (WIFEXITED(r->wstatus)) code = WEXITSTATUS(r->wstatus);
  else if (WIFSIGNALED(r->wstatus)) sig = WTERMSIG(r->wstatus), code = 128 + sig;
  char when[TIMEFMT_LEN];
  timefmt_rfc3339nano(&r->at, when);
  cleanup_json json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "pid", json_integer(r->pid));
  json_object_set_new(o, "exitCode", json_integer(code));
  if (sig) {
    bool named = sig > 0 && (size_t)sig < BERTH_ARRAY_LEN(signal_names) && signal_names[sig][0];
    char name[32];
    if (named) snprintf(name, sizeof name, "SIG%s", signal_names[sig]);
    else snprintf(name, sizeof name, "SIG%d", sig);
    json_object_set_new(o, "signal", json_string(name));
  } else {
    json_object_set_new(o, "signal", json_null());
  }
  json_object_set_new(o, "exitedAt", json_string(when));
  if (r->oom_killed >= 0) json_object_set_new(o, "oomKilled", json_boolean(r->oom_killed));
  if (r->cleanup_error) json_object_set_new(o, "cleanupError", json_string(r->cleanup_error));
  char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (!text) return NULL;
  size_t n = strlen(text);
  char *line = realloc(text, n + 2);
  if (!line) {
    free(text);
    return NULL;
  }
  line[n] = '\n', line[n + 1] = '\0';
  return line;
}

/* Replaced atomically, not fsynced: the state dir is runtime state (the
 * engine keeps it under its run root, /run/berth by default) and the engine
 * folds the exit into its own, fsynced, record at the next command; after a
 * power loss before that, the container shows as dead (exit 255), as it
 * would with no exit record at all. */
int exit_record_write(const char *json, berth_error *e) {
  if (write_file_replace(EXIT_FILE, json, strlen(json), 0644, e) < 0)
    return berth_wrap(e, "record container exit");
  return 0;
}
