sbin_PROGRAMS += tools/postern
tools_postern_SOURCES = tools/postern.c tools/postern.h \
	tools/cmd_run.c tools/cmd_init.c tools/cmd_map.c tools/cmd_user.c \
	tools/cmd_queue.c tools/qctl.c tools/qctl.h
tools_postern_LDADD = $(POSTERN_LIBS)

bin_PROGRAMS += tools/sendmail
tools_sendmail_SOURCES = tools/sendmail.c tools/qctl.c tools/qctl.h
tools_sendmail_LDADD = $(POSTERN_LIBS)

## mailq(1) is a program of its own rather than a link to sendmail: it
## needs no set-group-id bit, and packagers need no install hook for it.
bin_PROGRAMS += tools/mailq
tools_mailq_SOURCES = tools/mailq.c tools/qctl.c tools/qctl.h
tools_mailq_LDADD = $(POSTERN_LIBS)

## sendmail(1) is set-group-id drop_group so any user can write into the
## maildrop.  As root, and when the group exists, make it so at install
## time; otherwise (a packager's DESTDIR build) leave it to the package's
## postinst and say so.
install-exec-hook:
	@f='$(DESTDIR)$(bindir)/sendmail'; \
	if test "`id -u`" = 0 && getent group postern-drop >/dev/null 2>&1; then \
		chgrp postern-drop "$$f" && chmod 2755 "$$f" && \
		echo "sendmail: installed set-group-id postern-drop"; \
	else \
		echo "note: run 'chgrp postern-drop $(bindir)/sendmail && chmod 2755 $(bindir)/sendmail' as root (not done: not root or no postern-drop group)"; \
	fi
