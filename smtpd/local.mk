## smtpd(8): the SMTP listener (ports 25, 587, 465).
pkglibexec_PROGRAMS += smtpd/smtpd
smtpd_smtpd_SOURCES = smtpd/main.c smtpd/smtpd.h smtpd/session.c \
	smtpd/cmd.c smtpd/data.c smtpd/body.c smtpd/body.h \
	smtpd/policy.c smtpd/policy.h
smtpd_smtpd_LDADD = $(POSTERN_LIBS) -lpthread
## The content scanner's unit test (listed in tests/unit/local.mk) links
## the scanner itself: it is smtpd's, not lib/'s.
tests_unit_test_smtpbody_SOURCES = tests/unit/test_smtpbody.c smtpd/body.c
tests_unit_test_smtpbody_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/smtpd
## The policy checks are smtpd's too; their unit test links them.
tests_unit_test_policy_SOURCES = tests/unit/test_policy.c smtpd/policy.c
tests_unit_test_policy_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/smtpd
