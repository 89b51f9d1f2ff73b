/*
 * fuzz_config: libFuzzer target for the INI configuration loader.
 *
 * The input, made a NUL-terminated string, goes through config_init(),
 * config_load_string(), config_copy() and config_free(), and each of its
 * lines through config_override() as a -o argument would. ASan and LSan
 * catch memory errors and leaks; the checks below catch a loader that stores
 * a value outside its key's range or leaves an error message unterminated.
 *
 * Address checks call getaddrinfo(), which would look host names up in DNS.
 * The build links this target with -Wl,--wrap=getaddrinfo: the wrapper below
 * forces AI_NUMERICHOST, so names fail at once and nothing leaves the
 * machine, whatever the fuzzer writes. LLVMFuzzerInitialize() refuses to run
 * without the wrapper.
 */
#include "addr.h"
#include "config.h"

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

int __real_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res);

/* Numeric addresses only: no resolver, no /etc/hosts, no network. */
int __wrap_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                       struct addrinfo **res)
{
	struct addrinfo h;

	if (hints) {
		h = *hints;
	} else {
		memset(&h, 0, sizeof(h));
		h.ai_family = AF_UNSPEC;
	}
	h.ai_flags |= AI_NUMERICHOST;
	return __real_getaddrinfo(node, service, &h, res);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct addr_list al;
	char err[256];

	(void)argc;
	(void)argv;
	/* "localhost" resolves through /etc/hosts unless the wrapper is in the
	 * way: if it resolves, lookups are not hermetic, so do not fuzz. */
	if (addr_list_parse("localhost:1", false, &al, err, sizeof(err)) == 0) {
		addr_list_free(&al);
		fprintf(stderr, "fuzz_config: getaddrinfo is not wrapped; link with "
		                "-Wl,--wrap=getaddrinfo\n");
		abort();
	}
	return 0;
}

/* Every value stored is one its key allows, even after a failed load. */
static void check_ranges(const struct config *c)
{
	size_t n;
	const struct config_key *k = config_keys(&n);

	for (size_t i = 0; i < n; i++) {
		const void *p = (const char *)c + k[i].offset;
		switch (k[i].type) {
		case CT_INT:
		case CT_ENUM: {
			long v = *(const long *)p;
			CHECK(v >= (long)k[i].min && v <= (long)k[i].max);
			break;
		}
		case CT_DOUBLE: {
			double v = *(const double *)p;
			CHECK(v >= k[i].min && v <= k[i].max);
			break;
		}
		case CT_BOOL:
			break;
		case CT_STRING:
		case CT_LISTEN:
		case CT_SERVERS:
		case CT_OPT_LISTEN: {
			const char *s = *(const char *const *)p;
			CHECK(s != NULL);
			/* Only an optional address may be empty. */
			CHECK(*s != '\0' || k[i].type == CT_STRING || k[i].type == CT_OPT_LISTEN);
			break;
		}
		default:
			__builtin_trap();
		}
	}
}

/* A failed call leaves a terminated, non-empty message (a successful one
 * need not touch the buffer). */
static void check_err(int r, const char *err, size_t cap)
{
	CHECK(r == 0 || r == -1);
	if (r < 0)
		CHECK(memchr(err, '\0', cap) != NULL && err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct config c, copy;
	char err[512];
	int r;

	CHECK(text != NULL);
	memcpy(text, data, size);
	text[size] = '\0';

	config_init(&c);
	memset(err, 0x55, sizeof(err));
	r = config_load_string(&c, text, "fuzz.ini", err, sizeof(err));
	check_err(r, err, sizeof(err));
	check_ranges(&c);
	if (config_copy(&copy, &c) == 0) {
		check_ranges(&copy);
		config_free(&copy);
	}
	config_free(&c);

	/* Each line as "-o SECTION.KEY=VALUE". The string ends at the first NUL,
	 * as a command-line argument would. */
	config_init(&c);
	for (char *line = text, *next; line && *line; line = next) {
		char *nl = strchr(line, '\n');
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		memset(err, 0x55, sizeof(err));
		r = config_override(&c, line, err, sizeof(err));
		check_err(r, err, sizeof(err));
	}
	check_ranges(&c);
	config_free(&c);
	free(text);
	return 0;
}
