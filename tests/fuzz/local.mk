## libFuzzer targets, built with clang by `make check-fuzz` (not part of
## `make check`): each runs for FUZZ_SECONDS on its seed corpus.
FUZZ_TARGETS = fuzz_config fuzz_ipc fuzz_map fuzz_smtp fuzz_qfile fuzz_fields fuzz_mailbox fuzz_pop3 fuzz_smtpbody fuzz_sasl fuzz_keyproc
FUZZ_SECONDS = 60
FUZZ_CC = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRCS = $(filter %.c,$(lib_libpostern_a_SOURCES))
EXTRA_DIST += $(FUZZ_TARGETS:%=tests/fuzz/%.c) tests/fuzz/corpus

check-fuzz:
	@$(srcdir)/tools/install-packages fuzz
	@$(MKDIR_P) tests/fuzz/bin
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "  FUZZCC   $$t"; \
		$(FUZZ_CC) $(FUZZ_FLAGS) $(DEFS) -I$(top_builddir) -I$(top_srcdir)/lib/core -I$(top_srcdir)/lib/mail \
			$(OPENSSL_CFLAGS) $(CARES_CFLAGS) \
			-o tests/fuzz/bin/$$t $(srcdir)/tests/fuzz/$$t.c \
			$(addprefix $(srcdir)/,$(FUZZ_LIB_SRCS)) \
			$(OPENSSL_LIBS) $(CARES_LIBS) $(BDB_LIBS) $(LMDB_LIBS) $(CRYPT_LIBS) $(LIBS); \
		$(MKDIR_P) tests/fuzz/work/$$t; \
		./tests/fuzz/bin/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			tests/fuzz/work/$$t $(srcdir)/tests/fuzz/corpus/$$t; \
	done
clean-fuzz:
	rm -rf tests/fuzz/bin tests/fuzz/work
.PHONY: check-fuzz clean-fuzz
