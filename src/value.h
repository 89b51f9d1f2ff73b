/*
 * value: one upstream value, read once and shared by every waiter.
 *
 * The reader creates it with one reference; every slot and every client output
 * item that points at it holds one more, and drops it with value_unref() when
 * done (memcached's item reference discipline). data holds len bytes followed
 * by "\r\n", so one iovec sends both. Its size is added to *acct while it
 * lives (the memory budget of values in flight).
 */
#ifndef COALESCED_VALUE_H
#define COALESCED_VALUE_H

#include <stdint.h>
#include <stdlib.h>

struct value {
	uint32_t refs;
	uint32_t flags;
	uint64_t cas;
	uint64_t *acct;
	size_t len;
	char data[];
};

static inline struct value *value_new(size_t len, uint64_t *acct)
{
	struct value *v = malloc(sizeof(*v) + len + 2);
	if (v) {
		v->refs = 1;
		v->flags = 0;
		v->cas = 0;
		v->len = len;
		v->acct = acct;
		if (acct)
			*acct += len;
	}
	return v;
}

static inline struct value *value_ref(struct value *v)
{
	v->refs++;
	return v;
}

static inline void value_unref(struct value *v)
{
	if (v && --v->refs == 0) {
		if (v->acct)
			*v->acct -= v->len;
		free(v);
	}
}

#endif
