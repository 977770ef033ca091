## Integration tests: real postern instances in temporary directories on
## loopback ports, driven by real clients.  testdaemon is a trivial daemon
## built on the daemon skeleton, used only by these tests.
check_PROGRAMS += tests/integration/testdaemon
tests_integration_testdaemon_SOURCES = tests/integration/testdaemon.c
tests_integration_testdaemon_LDADD = $(POSTERN_LIBS)
check_PROGRAMS += tests/integration/dsngen
tests_integration_dsngen_SOURCES = tests/integration/dsngen.c
tests_integration_dsngen_LDADD = $(POSTERN_LIBS)
INTEGRATION_TESTS = \
	tests/integration/test_dsn_format.py \
	tests/integration/test_master.py \
	tests/integration/test_sandbox.py \
	tests/integration/test_root_mode.py \
	tests/integration/test_admin.py \
	tests/integration/test_auth.py \
	tests/integration/test_smtpd_tls_auth.py \
	tests/integration/test_smtpd_transaction.py \
	tests/integration/test_smtpd_limits.py \
	tests/integration/test_pop3d_login.py \
	tests/integration/test_pop3d_mailbox.py \
	tests/integration/test_pop3d_limits.py \
	tests/integration/test_pop3d_jobs.py \
	tests/integration/test_sendmail.py \
	tests/integration/test_local.py \
	tests/integration/test_queue_tools.py \
	tests/integration/test_qmgr.py \
	tests/integration/test_qmgr_dest.py \
	tests/integration/test_qmgr_dsn.py \
	tests/integration/test_qmgr_backlog.py \
	tests/integration/test_fs.py \
	tests/integration/test_durability.py \
	tests/integration/test_readme.py \
	tests/integration/test_tree.py
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) tests/integration/harness.py \
	tests/integration/passfs.py tests/integration/durability.py \
	tests/integration/smtpd_base.py tests/integration/pop3d_base.py
