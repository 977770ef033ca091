## qmgr(8): the queue manager and scheduler.
QMGR_CORE = qmgr/qmgr.h qmgr/state.c qmgr/queue.c qmgr/sched.c \
	qmgr/bounce.c qmgr/ctl.c
pkglibexec_PROGRAMS += qmgr/qmgr
qmgr_qmgr_SOURCES = qmgr/main.c $(QMGR_CORE)
qmgr_qmgr_LDADD = $(POSTERN_LIBS)

## Its unit test: the state file format and the back-off.
tests_unit_test_qmgr_SOURCES = tests/unit/test_qmgr.c $(QMGR_CORE)
tests_unit_test_qmgr_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/qmgr
