/* berth-shim: argv, detaching, and the one place that prints and exits.
 * See README.md for the command line and the protocols. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemonize.h"
#include "helper.h"
#include "launch.h"
#include "monitor.h"
#include "options.h"
#include "util.h"

static const char usage[] =
    "usage: berth-shim --id ID --state-dir DIR --runtime PATH [--runtime-exec PATH] [--runtime-root DIR] --bundle DIR\n"
    "                  [--log-path FILE [--log-max-size BYTES[k|m|g]] [--log-max-files N]]\n"
    "                  [--terminal] [--stdin [--stdin-once]] [--rm]\n"
    "                  [--exit-command PATH [--exit-command-arg ARG]...]\n"
    "Creates the container through the runtime and stays with it, detached.\n"
    "--runtime-exec: the file `create` executes instead (a sealed copy of the\n"
    "runtime, /proc/<pid>/fd/<n>); --runtime when it cannot be executed.\n"
    "Prints {\"shimPid\":N,\"pid\":N} once it is created; exit status 1 and the\n"
    "reason on stderr if it could not be.\n"
    "--exit-command: started once the exit is recorded, with the --exit-command-arg's\n"
    "as its arguments (unless the state dir holds 'collecting'; see exit_command.h).\n";

enum { OPT_ID = 1, OPT_STATE_DIR, OPT_RUNTIME, OPT_RUNTIME_EXEC, OPT_RUNTIME_ROOT, OPT_BUNDLE, OPT_LOG_PATH, OPT_LOG_MAX_SIZE,
       OPT_LOG_MAX_FILES, OPT_TERMINAL, OPT_STDIN, OPT_STDIN_ONCE, OPT_RM, OPT_EXIT_COMMAND,
       OPT_EXIT_COMMAND_ARG, OPT_HELP };

static int bad_usage(const char *fmt, const char *arg) {
  fprintf(stderr, "berth-shim: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n%s", usage);
  return 2;
}

static bool parse_size(const char *s, unsigned long long *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return false;
  unsigned long long mul = 1;
  if (*end == 'k' || *end == 'K') mul = 1024ULL, end++;
  else if (*end == 'm' || *end == 'M') mul = 1024ULL * 1024, end++;
  else if (*end == 'g' || *end == 'G') mul = 1024ULL * 1024 * 1024, end++;
  if (*end || (v && mul > ~0ULL / v)) return false;
  *out = v * mul;
  return true;
}

/* The shim moves to its state dir, so every path it is given becomes absolute
 * first. A runtime named without a slash is looked up in PATH at exec.
 * The result is kept for the shim's life, on the heap at its own size: a few
 * hundred bytes there share a page with the thread's TLS block, where five
 * static PATH_MAX buffers took two pages of their own. noinline: cwd stays
 * out of main's frame, which lives as long as the shim. */
static __attribute__((noinline)) const char *absolute(const char *path) {
  if (path[0] == '/') return path;
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return NULL;
  size_t n = strlen(cwd) + 1 + strlen(path) + 1;
  char *abs = n <= PATH_MAX ? malloc(n) : NULL;
  if (abs) snprintf(abs, n, "%s/%s", cwd, path);
  return abs;
}

/* Fills o from argv; returns -1 when the shim is to go on, else the exit
 * status (0 after --help, 2 for bad usage).
 * The option table is built here, on a stack frame that is given back after
 * setup: static, its 14 name pointers would be relocated at every start
 * (a static PIE's .data.rel.ro), and were what took that past four pages. */
static __attribute__((noinline)) int parse_args(int argc, char **argv, struct shim_options *o) {
  const struct option long_opts[] = {
      {"id", required_argument, NULL, OPT_ID},
      {"state-dir", required_argument, NULL, OPT_STATE_DIR},
      {"runtime", required_argument, NULL, OPT_RUNTIME},
      {"runtime-exec", required_argument, NULL, OPT_RUNTIME_EXEC},
      {"runtime-root", required_argument, NULL, OPT_RUNTIME_ROOT},
      {"bundle", required_argument, NULL, OPT_BUNDLE},
      {"log-path", required_argument, NULL, OPT_LOG_PATH},
      {"log-max-size", required_argument, NULL, OPT_LOG_MAX_SIZE},
      {"log-max-files", required_argument, NULL, OPT_LOG_MAX_FILES},
      {"terminal", no_argument, NULL, OPT_TERMINAL},
      {"stdin", no_argument, NULL, OPT_STDIN},
      {"stdin-once", no_argument, NULL, OPT_STDIN_ONCE},
      {"rm", no_argument, NULL, OPT_RM},
      {"exit-command", required_argument, NULL, OPT_EXIT_COMMAND},
      {"exit-command-arg", required_argument, NULL, OPT_EXIT_COMMAND_ARG},
      {"help", no_argument, NULL, OPT_HELP},
      {NULL, 0, NULL, 0},
  };
  int c, nexit = 0;
  while ((c = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
    switch (c) {
      case OPT_ID: o->id = optarg; break;
      case OPT_STATE_DIR: o->state_dir = optarg; break;
      case OPT_RUNTIME: o->runtime = optarg; break;
      case OPT_RUNTIME_EXEC:
        if (optarg[0] != '/') return bad_usage("--runtime-exec: expected an absolute path, got '%s'", optarg);
        o->runtime_exec = optarg;
        break;
      case OPT_RUNTIME_ROOT: o->runtime_root = optarg; break;
      case OPT_BUNDLE: o->bundle = optarg; break;
      case OPT_LOG_PATH: o->log_path = optarg; break;
      case OPT_LOG_MAX_SIZE:
        if (!parse_size(optarg, &o->log_max_size)) return bad_usage("--log-max-size: expected a byte count such as 10m, got '%s'", optarg);
        break;
      case OPT_LOG_MAX_FILES: {
        unsigned long long v;
        if (!parse_size(optarg, &v) || v < 1 || v > 1000) return bad_usage("--log-max-files: expected 1-1000, got '%s'", optarg);
        o->log_max_files = (unsigned)v;
        break;
      }
      case OPT_TERMINAL: o->terminal = true; break;
      case OPT_STDIN: o->stdin_open = true; break;
      case OPT_STDIN_ONCE: o->stdin_once = true; break;
      case OPT_RM: o->remove = true; break;
      case OPT_EXIT_COMMAND:
      case OPT_EXIT_COMMAND_ARG:
        if (c == OPT_EXIT_COMMAND && optarg[0] != '/') return bad_usage("--exit-command: expected an absolute path, got '%s'", optarg);
        if ((c == OPT_EXIT_COMMAND) != (nexit == 0)) return bad_usage("%s", "--exit-command must come once, before its --exit-command-arg's");
        if (!o->exit_argv && !(o->exit_argv = calloc((size_t)argc + 1, sizeof *o->exit_argv))) return bad_usage("%s", "out of memory");
        o->exit_argv[nexit++] = optarg; /* argv outlives the shim's use of it */
        break;
      case OPT_HELP: fputs(usage, stdout); return 0;
      default: return bad_usage("%s", "unknown option");
    }
  }
  if (optind != argc) return bad_usage("unexpected argument '%s'", argv[optind]);
  if (!o->id || !*o->id) return bad_usage("%s is required", "--id");
  if (strchr(o->id, '/') || o->id[0] == '-') return bad_usage("--id: '%s' must not contain '/' or start with '-'", o->id);
  if (!o->state_dir) return bad_usage("%s is required", "--state-dir");
  if (!o->runtime) return bad_usage("%s is required", "--runtime");
  if (!o->bundle) return bad_usage("%s is required", "--bundle");
  if (o->stdin_once && !o->stdin_open) return bad_usage("%s needs --stdin", "--stdin-once");
  return -1;
}

/* Opens --runtime-exec now, while whoever started us is there: a file of
 * our parent's (/proc/<ppid>/fd/<n>, the engine's helper's sealed copy of
 * the runtime) is taken only if that parent is still ours after the open,
 * so the path cannot have named another process that got its pid. Held, it
 * stays what it was after the helper is gone. Anything else (a file of
 * another process, one that cannot be opened) leaves --runtime to run. */
static void hold_runtime_exec(struct shim_options *o) {
  if (!o->runtime_exec) return;
  pid_t parent = getppid();
  char own[32];
  int n = snprintf(own, sizeof own, "/proc/%d/", (int)parent);
  bool in_proc = strncmp(o->runtime_exec, "/proc/", 6) == 0;
  if (in_proc && strncmp(o->runtime_exec, own, (size_t)n) != 0) return;
  int fd = open(o->runtime_exec, O_PATH | O_CLOEXEC);
  if (fd < 0) return;
  if (in_proc && getppid() != parent) {
    close(fd);
    return;
  }
  o->runtime_exec_fd = fd;
}

int main(int argc, char **argv) {
  /* `berth-shim helper`: the engine's process helper (helper.h), not a shim */
  if (argc == 2 && strcmp(argv[1], "helper") == 0) return helper_main();
  /* `berth-shim launch PROGRAM...`: the helper first, then PROGRAM with its pipes (launch.h) */
  if (argc >= 2 && strcmp(argv[1], "launch") == 0) return launch_main(argc, argv);
  static struct shim_options o = {.log_max_files = 1, .runtime_exec_fd = -1};
  int status = parse_args(argc, argv, &o);
  if (status >= 0) return status;

  /* Static and zero (clear) from the start: main's frame lives as long as
   * the shim, and 4 KiB of it is a page the event loop's frames would
   * otherwise sit below; its own page is touched only by a failure. */
  static berth_error e;
  if (mkdir_p(o.state_dir, 0700, &e) < 0) {
    fprintf(stderr, "berth-shim: state dir: %s\n", e.msg);
    return 1;
  }
  const char *state_dir = realpath(o.state_dir, NULL); /* malloc'd at its size, kept */
  if (!state_dir) {
    fprintf(stderr, "berth-shim: resolve state dir '%s': %s\n", o.state_dir, strerror(errno));
    return 1;
  }
  o.state_dir = state_dir;
  if (!(o.bundle = absolute(o.bundle))) return bad_usage("%s: path too long", "--bundle");
  if (o.log_path && !(o.log_path = absolute(o.log_path))) return bad_usage("%s: path too long", "--log-path");
  if (o.runtime_root && !(o.runtime_root = absolute(o.runtime_root)))
    return bad_usage("%s: path too long", "--runtime-root");
  if (strchr(o.runtime, '/') && !(o.runtime = absolute(o.runtime))) return bad_usage("%s: path too long", "--runtime");

  hold_runtime_exec(&o);

  bool is_shim = false;
  cleanup_fd int sync_fd = -1;
  if (daemonize(&is_shim, &sync_fd, &e) < 0) {
    if (is_shim) daemonize_report_failure(&sync_fd, &e);
    else fprintf(stderr, "berth-shim: %s\n", e.msg);
    return 1;
  }
  if (is_shim) return monitor_run(&o, &sync_fd, &e) < 0 ? 1 : 0;

  pid_t shim_pid = 0, pid = 0;
  if (daemonize_wait_ready(sync_fd, &shim_pid, &pid, &e) < 0) {
    fprintf(stderr, "berth-shim: %s\n", e.msg);
    return 1;
  }
  printf("{\"shimPid\":%d,\"pid\":%d}\n", (int)shim_pid, (int)pid);
  return 0;
}
