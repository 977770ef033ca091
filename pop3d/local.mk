## pop3d(8): the POP3 server (ports 110 and 995).
pkglibexec_PROGRAMS += pop3d/pop3d
pop3d_pop3d_SOURCES = pop3d/main.c pop3d/pop3d.h pop3d/session.c \
	pop3d/cmd.c pop3d/job.c pop3d/pop3proto.c pop3d/pop3proto.h
pop3d_pop3d_LDADD = $(POSTERN_LIBS)
## The parser's unit test (listed in tests/unit/local.mk) links the
## parser itself: it is pop3d's, not lib/'s.
tests_unit_test_pop3_SOURCES = tests/unit/test_pop3.c pop3d/pop3proto.c
tests_unit_test_pop3_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/pop3d
