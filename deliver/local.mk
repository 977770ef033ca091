## local(8): the local delivery agent, into Maildirs (lib/mail/maildir.h).
pkglibexec_PROGRAMS += deliver/local
deliver_local_SOURCES = deliver/local_main.c deliver/local.c deliver/local.h
deliver_local_LDADD = $(POSTERN_LIBS)
