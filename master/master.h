/*
 * master: the supervisor, postern's only long-lived root process.  It
 * reads postern.conf, creates the directories and sockets, binds every
 * listener, starts each configured daemon (fork + exec, fds handed over,
 * everything else closed), restarts daemons that die with back-off,
 * reloads on SIGHUP (every daemon retires gracefully and a fresh one starts
 * with the new config) and stops cleanly on SIGTERM.
 */
#ifndef POSTERN_MASTER_H
#define POSTERN_MASTER_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "config.h"
#include "ev.h"
#include "ipc.h"
#include "services.h"

/* A directory master creates at start, relative to a path key. */
struct master_dir {
	const char *base_key;	/* global config key holding the base path */
	const char *sub;	/* "" for the base itself */
	const char *user;	/* owner in root mode (NULL: root) */
	const char *group;	/* group in root mode (NULL: the owner's group) */
	mode_t mode;
};
extern const struct master_dir master_dirs[];
extern const size_t master_ndirs;

/* One bound listening socket, shared by every process of a service and
 * kept open across reloads while some service still lists it. */
struct listener {
	char *key;		/* "inet:127.0.0.1:25/smtp" or "unix:/run/x" */
	char *spec;		/* the text passed to the daemon */
	int fd;
	int used;		/* mark for reload */
};

enum child_state {
	CHILD_RUNNING,
	CHILD_BACKOFF,		/* died; restart timer pending */
	CHILD_RETIRING,		/* told to finish and exit; not restarted */
};

struct service;

struct child {
	struct service *svc;
	unsigned instance;
	pid_t pid;
	enum child_state state;
	uint64_t started_ms;
	uint64_t backoff_ms;
	struct ev_timer *restart_timer;
	struct ev_io *ready_io;	/* the daemon's readiness pipe, until it speaks */
	int ready;		/* the daemon finished its set-up */
	struct child *next_retiring;
};

struct service {
	struct master *master;
	char *name;
	char *program;
	char *args;
	char *user;		/* NULL in dev mode */
	unsigned processes;
	struct listener **listeners;	/* borrowed from master.listeners */
	size_t nlisteners;
	struct child *children;	/* processes entries */
	unsigned restarts;	/* unexpected exits since start */
	int installed;		/* program exists and is executable */
};

struct master {
	struct ev_loop *loop;
	struct config *cfg;
	char *config_path;	/* absolute */
	struct buf config_text;	/* what cfg was parsed from: every child gets
				 * exactly this text, not a newer file */
	pid_t pid;
	int dev_mode;
	int foreground;
	struct service *services;
	size_t nservices;
	struct listener **listeners;
	size_t nlisteners;
	struct child *retiring;	/* old processes finishing after a reload */
	int stopping;
	struct ev_timer *stop_timer;
	int pid_fd;		/* locked pid file */
	char *pid_path;
	int control_fd;
	char *control_path;
	struct ev_io *control_io;
	struct control_client *clients;
	uint64_t started_ms;
};

/* master.c */
/* Apply a loaded config: directories, listeners, services.  On the first
 * call (m->services == NULL) nothing runs yet; on reload, old processes
 * retire.  0, or -1 with *error_r (the old state is then kept). */
int master_configure(struct master *m, struct config *cfg, const char **error_r)
	__attribute__((warn_unused_result));
/* Read and parse the config file into *cfg_r, keeping its text for the
 * children in *text (replaced only on success).  0, or -1 with the
 * reasons in err. */
int master_load_config(struct master *m, struct config **cfg_r, struct buf *text,
    struct buf *err) __attribute__((warn_unused_result));
/* Start every child that should run but does not. */
void master_start_all(struct master *m);
/* SIGCHLD: reap and restart or retire. */
void master_reap(struct master *m);
/* Begin a clean stop: SIGTERM to all, SIGKILL after stop_timeout. */
void master_stop(struct master *m);
/* Re-read the config file and apply it (SIGHUP). */
void master_reload(struct master *m);
/* Free everything (after the loop ended). */
void master_free(struct master *m);
/* Number of children still alive (running or retiring). */
size_t master_alive(const struct master *m);

/* control.c */
int control_open(struct master *m, const char **error_r) __attribute__((warn_unused_result));
void control_close(struct master *m);

#endif
