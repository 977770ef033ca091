## Unit tests: one Check binary per lib/ module, each driving its module
## from memory.  tests/unit/check_util.h has shared helpers.
UNIT_TESTS = \
	tests/unit/test_buf \
	tests/unit/test_log \
	tests/unit/test_config \
	tests/unit/test_ipc \
	tests/unit/test_ev \
	tests/unit/test_ios \
	tests/unit/test_net \
	tests/unit/test_priv
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
UNIT_LDADD = $(POSTERN_LIBS) $(CHECK_LIBS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CHECK_CFLAGS)
tests_unit_test_buf_SOURCES = tests/unit/test_buf.c tests/unit/check_util.h
tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)
tests_unit_test_log_SOURCES = tests/unit/test_log.c tests/unit/check_util.h
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LDADD)
tests_unit_test_config_SOURCES = tests/unit/test_config.c tests/unit/check_util.h
tests_unit_test_config_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_config_LDADD = $(UNIT_LDADD)
tests_unit_test_ipc_SOURCES = tests/unit/test_ipc.c tests/unit/check_util.h
tests_unit_test_ipc_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ipc_LDADD = $(UNIT_LDADD)
tests_unit_test_ev_SOURCES = tests/unit/test_ev.c tests/unit/check_util.h
tests_unit_test_ev_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ev_LDADD = $(UNIT_LDADD)
tests_unit_test_ios_SOURCES = tests/unit/test_ios.c tests/unit/check_util.h
tests_unit_test_ios_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_ios_LDADD = $(UNIT_LDADD)
tests_unit_test_net_SOURCES = tests/unit/test_net.c tests/unit/check_util.h
tests_unit_test_net_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_net_LDADD = $(UNIT_LDADD)
tests_unit_test_priv_SOURCES = tests/unit/test_priv.c tests/unit/check_util.h
tests_unit_test_priv_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_priv_LDADD = $(UNIT_LDADD)
