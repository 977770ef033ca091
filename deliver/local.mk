## local(8): the local delivery agent, into Maildirs.
pkglibexec_PROGRAMS += deliver/local
deliver_local_SOURCES = deliver/local_main.c deliver/local.c deliver/local.h \
	deliver/maildir.c deliver/maildir.h
deliver_local_LDADD = $(POSTERN_LIBS)

## The Maildir writer's unit test builds it from its own sources.
tests_unit_test_maildir_SOURCES = tests/unit/test_maildir.c deliver/maildir.c \
	deliver/maildir.h
tests_unit_test_maildir_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/deliver
