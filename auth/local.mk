## auth(8): the authentication service.
pkglibexec_PROGRAMS += auth/auth
auth_auth_SOURCES = auth/main.c auth/auth.c auth/auth.h \
	auth/failtab.c auth/failtab.h
auth_auth_LDADD = $(POSTERN_LIBS)

## Its unit test drives the service's own sources in one event loop.
check_PROGRAMS += tests/unit/test_auth
TESTS += tests/unit/test_auth
tests_unit_test_auth_SOURCES = tests/unit/test_auth.c auth/auth.c auth/auth.h \
	auth/failtab.c auth/failtab.h
tests_unit_test_auth_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/auth
