## smtpd(8): the SMTP listener (ports 25, 587, 465).
pkglibexec_PROGRAMS += smtpd/smtpd
smtpd_smtpd_SOURCES = smtpd/main.c smtpd/smtpd.h smtpd/session.c \
	smtpd/cmd.c smtpd/data.c smtpd/commit.c smtpd/commit.h
smtpd_smtpd_LDADD = $(POSTERN_LIBS) -lpthread
