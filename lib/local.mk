noinst_LIBRARIES += lib/libpostern.a
lib_libpostern_a_SOURCES = \
	lib/buf.c lib/buf.h \
	lib/xalloc.c lib/xalloc.h \
	lib/log.c lib/log.h \
	lib/config.c lib/config.h lib/config_keys.c lib/config_values.c lib/config_impl.h \
	lib/ipc.c lib/ipc.h lib/ipc_impl.h lib/ipc_blocking.c \
	lib/ev.c lib/ev.h \
	lib/ios.c lib/ios.h \
	lib/tlsctx.c lib/tlsctx.h \
	lib/priv.c lib/priv.h \
	lib/daemon.c lib/daemon.h \
	lib/net.c lib/net.h \
	lib/fsutil.c lib/fsutil.h lib/ascii.h \
	lib/services.c lib/services.h \
	lib/map.c lib/map.h lib/mapspec.c lib/map_text.c lib/map_bdb.c lib/map_lmdb.c lib/map_impl.h \
	lib/sasl.c lib/sasl.h \
	lib/authproto.h lib/authclient.c lib/authclient.h \
	lib/alias.c lib/alias.h \
	lib/passwd.c lib/passwd.h lib/agentproto.h lib/qmgrproto.c lib/qmgrproto.h \
	lib/smtp.c lib/smtp.h \
	lib/qfile.c lib/qfile.h \
	lib/connlimit.c lib/connlimit.h \
	lib/session.c lib/session.h \
	lib/worker.c lib/worker.h lib/commit.c lib/commit.h \
	lib/sandbox.c lib/sandbox.h \
	lib/dsn.c lib/dsn.h \
	lib/maildir.c lib/maildir.h lib/maildir_impl.h lib/maildir_write.c \
	lib/maildir_quota.c lib/maildir_read.c
