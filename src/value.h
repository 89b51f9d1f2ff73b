/*
 * value: one upstream value, read once and shared by every waiter.
 *
 * The reader creates it with one reference; every slot and every client output
 * item that points at it holds one more, and drops it with value_unref() when
 * done (memcached's item reference discipline). data holds len bytes followed
 * by "\r\n", so one iovec sends both. Its size is added to *acct while it
 * lives (the memory budget of values in flight).
 *
 * With worker threads a value read by a key's owner thread is handed to
 * waiters on other threads, so the reference count and *acct (one counter for
 * the process) change atomically; only the data is immutable and shared.
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
			__atomic_fetch_add(acct, len, __ATOMIC_RELAXED);
	}
	return v;
}

static inline struct value *value_ref(struct value *v)
{
	__atomic_fetch_add(&v->refs, 1, __ATOMIC_RELAXED);
	return v;
}

static inline void value_unref(struct value *v)
{
	/* Release, then acquire before the free: the last holder must see every
	 * other holder's reads of data finished. */
	if (v && __atomic_sub_fetch(&v->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		if (v->acct)
			__atomic_fetch_sub(v->acct, v->len, __ATOMIC_RELAXED);
		free(v);
	}
}

/* The bytes counted in *acct now (any thread may be changing it). */
static inline uint64_t value_bytes_now(const uint64_t *acct)
{
	return __atomic_load_n(acct, __ATOMIC_RELAXED);
}

#endif
