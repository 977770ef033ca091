pkglibexec_PROGRAMS += master/master
master_master_SOURCES = master/main.c master/master.c master/master.h \
	master/dirs.c master/control.c
master_master_LDADD = $(POSTERN_LIBS)
