/*
 * libFuzzer target for postern.conf: feeds the bytes to config_parse() and,
 * when they load, reads every key of every section through its typed
 * accessor, so the parser, the expansion and the accessors all see
 * hostile input.  Everything is freed each round (LeakSanitizer checks).
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every declared key of sec through the accessor for its type. */
static void
read_section(const struct cfg_section *sec, const struct cfg_key *keys,
    size_t nkeys)
{
	const struct cfg_list *l;
	size_t i, j, total = 0;

	for (i = 0; i < nkeys; i++) {
		(void)cfg_is_set(sec, keys[i].name);
		switch (keys[i].type) {
		case CFG_STR:
		case CFG_PATH:
		case CFG_ENUM:
			total += strlen(cfg_str(sec, keys[i].name));
			break;
		case CFG_INT:
			total += (size_t)cfg_int(sec, keys[i].name);
			break;
		case CFG_BOOL:
			total += (size_t)cfg_bool(sec, keys[i].name);
			break;
		case CFG_TIME:
			total += (size_t)cfg_time_ms(sec, keys[i].name);
			break;
		case CFG_SIZE:
			total += (size_t)cfg_size(sec, keys[i].name);
			break;
		case CFG_LIST:
			l = cfg_list(sec, keys[i].name);
			for (j = 0; j < l->n; j++)
				total += strlen(l->items[j]);
			break;
		}
	}
	(void)total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct buf err = BUF_INIT;
	const struct cfg_section *sec;
	size_t i;

	if (config_parse("fuzz.conf", (const char *)data, size, &cfg,
	    &err) == 1) {
		read_section(config_global(cfg), config_global_keys,
		    config_global_nkeys);
		for (i = 0; i < config_nservices(cfg); i++) {
			sec = config_service(cfg, i);
			if (config_service_find(cfg, cfg_section_name(sec)) != sec)
				log_panic("event=fuzz_bug service_lookup");
			read_section(sec, config_service_keys,
			    config_service_nkeys);
		}
		config_free(&cfg);
	} else if (err.len == 0 || cfg != NULL) {
		log_panic("event=fuzz_bug failure_without_message");
	}
	buf_free(&err);
	return 0;
}
