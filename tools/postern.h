/*
 * postern(8): the admin command.  Each subcommand is a function taking
 * the config path and its own arguments and returning an exit status.
 */
#ifndef POSTERN_TOOLS_H
#define POSTERN_TOOLS_H

struct config;

/* Exit statuses (LSB init-script conventions for status). */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_NOT_RUNNING 3

/* Load and validate the config, printing every error to stderr.
 * NULL on failure. */
struct config *tool_load_config(const char *path);
/*
 * The config for stop and status, which must work even after a broken
 * edit: the whole file if it loads; otherwise (after printing its errors
 * and a warning) only its global run_dir, pid_file and stop_timeout
 * settings, which are all that finding and stopping master needs.
 * NULL if even those do not load.
 */
struct config *tool_load_control_config(const char *path, const char *cmd);
/* The directory holding the daemons for a config: its daemon_dir. */
const char *tool_daemon_dir(const struct config *cfg);
/* The build tree's libexec directory when this postern binary runs from
 * the build tree, else NULL. */
const char *tool_build_libexec(void);

int cmd_start(const char *config, int argc, char **argv);
int cmd_stop(const char *config, int argc, char **argv);
int cmd_status(const char *config, int argc, char **argv);
int cmd_reload(const char *config, int argc, char **argv);
int cmd_check(const char *config, int argc, char **argv);
int cmd_init(const char *config, int argc, char **argv);
int cmd_map(const char *config, int argc, char **argv);
int cmd_user(const char *config, int argc, char **argv);
int cmd_domain(const char *config, int argc, char **argv);
int cmd_queue(const char *config, int argc, char **argv);
int cmd_flush(const char *config, int argc, char **argv);

#endif
