sbin_PROGRAMS += tools/postern
tools_postern_SOURCES = tools/postern.c tools/postern.h \
	tools/cmd_run.c tools/cmd_init.c tools/cmd_map.c tools/cmd_user.c
tools_postern_LDADD = $(POSTERN_LIBS)
