## Unit tests: one Check binary per lib/ module, each driving its module
## from memory; tests/unit/test_NAME is built from tests/unit/test_NAME.c
## with the default LDADD.  tests/unit/check_util.h has shared helpers;
## ios_util.h and ipc_util.h the fixtures of the tests split by topic.
UNIT_TESTS = \
	tests/unit/test_dsn \
	tests/unit/test_buf \
	tests/unit/test_log \
	tests/unit/test_config \
	tests/unit/test_ipc \
	tests/unit/test_ipc_link \
	tests/unit/test_ev \
	tests/unit/test_ios \
	tests/unit/test_ios_tls \
	tests/unit/test_keyproc \
	tests/unit/test_ios_halfclose \
	tests/unit/test_net \
	tests/unit/test_priv \
	tests/unit/test_map \
	tests/unit/test_alias \
	tests/unit/test_worker \
	tests/unit/test_fsutil \
	tests/unit/test_commit \
	tests/unit/test_sandbox \
	tests/unit/test_landlock \
	tests/unit/test_sasl \
	tests/unit/test_passwd \
	tests/unit/test_authclient \
	tests/unit/test_smtp \
	tests/unit/test_smtpbody \
	tests/unit/test_pop3 \
	tests/unit/test_qfile \
	tests/unit/test_policy \
	tests/unit/test_connlimit \
	tests/unit/test_session \
	tests/unit/test_maildir \
	tests/unit/test_mailbox \
	tests/unit/test_qmgr
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
noinst_HEADERS = tests/unit/check_util.h tests/unit/ios_util.h \
	tests/unit/ipc_util.h
LDADD = $(POSTERN_LIBS) $(CHECK_LIBS)
EXTRA_DIST += tests/unit/test_map.supp
