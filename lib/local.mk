## lib/: one library in two layers (docs/design.md, "Modules").
## lib/core: how the daemons are built and talk -- buffers, the event
## loop, streams and sessions, IPC and the internal protocols, logging,
## configuration, the daemon skeleton, privileges, the sandbox, workers,
## the group committer, net and TLS.  It knows nothing of mail.
## lib/mail: what mail is and where it is kept -- SMTP grammar, queue
## files, DSNs, maps, aliases and the user database, Maildir -- and the
## suite's configuration keys.  It builds on lib/core, never the reverse
## (`make check` checks the includes: check-layers).
noinst_LIBRARIES += lib/libpostern.a
LIB_CORE = \
	lib/core/ascii.h \
	lib/core/buf.c lib/core/buf.h \
	lib/core/xalloc.c lib/core/xalloc.h \
	lib/core/log.c lib/core/log.h \
	lib/core/config.c lib/core/config.h lib/core/config_values.c lib/core/config_impl.h \
	lib/core/ipc.c lib/core/ipc.h lib/core/ipc_impl.h lib/core/ipc_blocking.c \
	lib/core/ev.c lib/core/ev.h \
	lib/core/ios.c lib/core/ios.h \
	lib/core/session.c lib/core/session.h \
	lib/core/tlsctx.c lib/core/tlsctx.h \
	lib/core/keyproc.c lib/core/keyproc.h \
	lib/core/priv.c lib/core/priv.h \
	lib/core/daemon.c lib/core/daemon.h \
	lib/core/net.c lib/core/net.h \
	lib/core/fsutil.c lib/core/fsutil.h \
	lib/core/services.c lib/core/services.h \
	lib/core/connlimit.c lib/core/connlimit.h \
	lib/core/worker.c lib/core/worker.h \
	lib/core/commit.c lib/core/commit.h \
	lib/core/sandbox.c lib/core/sandbox.h \
	lib/core/landlock.c lib/core/landlock.h \
	lib/core/sasl.c lib/core/sasl.h \
	lib/core/authproto.h lib/core/authclient.c lib/core/authclient.h \
	lib/core/agentproto.h \
	lib/core/qmgrproto.c lib/core/qmgrproto.h
LIB_MAIL = \
	lib/mail/config_keys.c \
	lib/mail/map.c lib/mail/map.h lib/mail/mapspec.c lib/mail/map_text.c \
	lib/mail/map_bdb.c lib/mail/map_lmdb.c lib/mail/map_impl.h \
	lib/mail/alias.c lib/mail/alias.h \
	lib/mail/passwd.c lib/mail/passwd.h \
	lib/mail/smtp.c lib/mail/smtp.h \
	lib/mail/qfile.c lib/mail/qfile.h \
	lib/mail/dsn.c lib/mail/dsn.h \
	lib/mail/maildir.c lib/mail/maildir.h lib/mail/maildir_impl.h \
	lib/mail/maildir_write.c lib/mail/maildir_read.c lib/mail/maildir_quota.c
lib_libpostern_a_SOURCES = $(LIB_CORE) $(LIB_MAIL)

## The layering: no lib/core file includes a lib/mail header.
check-layers:
	@bad=; for f in $(filter lib/core/%,$(LIB_CORE)); do \
		for h in `sed -n 's/^#include "\(.*\)"/\1/p' $(srcdir)/$$f`; do \
			if test -f $(srcdir)/lib/mail/$$h; then bad="$$bad $$f:$$h"; fi; \
		done; \
	done; \
	if test -n "$$bad"; then \
		echo "check-layers: lib/core includes lib/mail:$$bad"; exit 1; \
	fi; echo "check-layers: lib/core includes no lib/mail header"
check-local: check-layers
.PHONY: check-layers
