/*
 * fuzz_injection: libFuzzer target for the property that matters most in a
 * proxy shared by many clients: whatever bytes a client sends, only clean
 * requests reach the upstream -- `gets` lines and, for writes and meta
 * commands, one line rebuilt from the parsed parts plus exactly the data
 * block it announces -- so no client can inject a command into, or poison,
 * a request shared with others.
 *
 * The input is parsed as a connection parses it (fuzz_feed.h). Every get/gets
 * the parser accepts is turned into the upstream line as the daemon does it,
 * alone and batched with the keys of the other commands, and each line goes
 * through a strict checker written without reference to the parser. Every
 * other command is rebuilt from its parts as a session forwards it, and goes
 * through a strict checker too. An independent reading of each complete
 * request line also checks that the parser accepts exactly the get/gets
 * lines whose every key is clean, with exactly those keys, and that the key,
 * flag tokens and data length of any other command it accepts are the ones
 * on the line. Any violation traps.
 */
#include "fuzz_feed.h"
#include "proto_client.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

/* The batcher's default max_keys: how many keys one upstream line holds. */
#define BATCH_KEYS 100

/* A key as the daemon holds it once a request owns it: request.c and
 * inflight.c keep its length in a uint8_t. */
struct fkey {
	uint8_t keylen;
	char key[256];
};

struct ctx {
	struct fkey *keys; /* every key accepted so far, for the batched lines */
	size_t n, cap;
	char *line; /* scratch for one encoded line */
	size_t linecap;
};

/*
 * The upstream line for keys[0..n), built as upstream_memcache.c's encode()
 * builds it: "gets", then a space and the key for each key, then CRLF, with
 * the same size computation. Keep it in step with encode().
 */
static size_t encode(struct ctx *x, const struct fkey *const *e, size_t n)
{
	size_t need = 6, len = 0;

	for (size_t i = 0; i < n; i++)
		need += 1 + e[i]->keylen;
	if (need > x->linecap) {
		char *nb = realloc(x->line, need);
		CHECK(nb != NULL);
		x->line = nb;
		x->linecap = need;
	}
	memcpy(x->line + len, "gets", 4);
	len += 4;
	for (size_t i = 0; i < n; i++) {
		x->line[len++] = ' ';
		memcpy(x->line + len, e[i]->key, e[i]->keylen);
		len += e[i]->keylen;
	}
	x->line[len++] = '\r';
	x->line[len++] = '\n';
	CHECK(len == need);
	return len;
}

/* A byte that may appear in a key on the wire: printable ASCII but space, or
 * any byte from 0x80 on (UTF-8). Written from the protocol, not the parser. */
static bool wire_key_byte(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/*
 * Strict checker for one upstream request: "gets", then one or more of
 * (one space, 1..250 key bytes), then CR LF as the last two bytes and
 * nowhere else. Returns the number of keys, or 0 if the line is not that.
 */
static size_t strict_gets_line(const char *s, size_t n)
{
	size_t i = 4, keys = 0;

	if (n < 4 + 2 + 2 || memcmp(s, "gets", 4) != 0)
		return 0;
	if (s[n - 2] != '\r' || s[n - 1] != '\n')
		return 0;
	/* No CR, LF, NUL or other control byte before the final CRLF. */
	for (size_t j = 0; j < n - 2; j++) {
		unsigned char c = (unsigned char)s[j];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	while (i < n - 2) {
		size_t k = 0;
		if (s[i] != ' ')
			return 0;
		i++;
		while (i < n - 2 && s[i] != ' ') {
			if (!wire_key_byte((unsigned char)s[i]))
				return 0;
			i++;
			k++;
		}
		if (k < 1 || k > 250)
			return 0;
		keys++;
	}
	return keys;
}

static void check_line(struct ctx *x, const struct fkey *const *e, size_t n)
{
	size_t len = encode(x, e, n);

	CHECK(strict_gets_line(x->line, len) == n);
}

/* Token i of [s, e) split on runs of spaces, as memcached splits a line. */
struct span {
	const char *p;
	size_t n;
};

static size_t split_spaces(const char *s, const char *e, struct span *out, size_t max)
{
	size_t n = 0;

	while (s < e) {
		const char *t;
		while (s < e && *s == ' ')
			s++;
		if (s == e)
			break;
		t = s;
		while (s < e && *s != ' ')
			s++;
		if (n < max) {
			out[n].p = t;
			out[n].n = (size_t)(s - t);
		}
		n++;
	}
	return n;
}

static bool word_is(const struct span *t, const char *w)
{
	return t->n == strlen(w) && memcmp(t->p, w, t->n) == 0;
}

static bool clean_key(const struct span *t)
{
	if (t->n < 1 || t->n > 250)
		return false;
	for (size_t i = 0; i < t->n; i++)
		if (!wire_key_byte((unsigned char)t->p[i]))
			return false;
	return true;
}

/*
 * The independent reading of a complete line [s, e) (without its '\n'):
 * whether it must be forwarded, and as which keys. A line is a get when its
 * first word is get, gets or bget, at least one key follows, every key is
 * clean and there are no more than max_keys; then it is forwarded whole,
 * else not at all.
 */
static void oracle(const struct feed_call *c, const char *s, const char *e)
{
	const struct pc_cmd *cmd = c->cmd;
	struct span *t;
	size_t nt, max = (size_t)(e - s) / 2 + 2;
	bool get = false, all_clean = true, accepted;

	/* A trailing CR belongs to the line end. */
	if (e > s && e[-1] == '\r')
		e--;
	t = malloc(max * sizeof(*t));
	CHECK(t != NULL);
	nt = split_spaces(s, e, t, max);
	CHECK(nt <= max);
	if (nt >= 2 &&
	    (word_is(&t[0], "get") || word_is(&t[0], "gets") || word_is(&t[0], "bget"))) {
		get = true;
		for (size_t i = 1; i < nt; i++)
			all_clean = all_clean && clean_key(&t[i]);
	}
	accepted = c->st == PC_COMMAND && (cmd->type == PC_GET || cmd->type == PC_GETS);
	/* Over the key limit, a clean get is refused whole, and said why. */
	if (get && all_clean && nt - 1 > c->p->max_keys) {
		CHECK(!accepted && c->st == PC_COMMAND && cmd->too_many_keys);
		all_clean = false;
	}
	CHECK(accepted == (get && all_clean));
	if (accepted) {
		CHECK((cmd->type == PC_GETS) == word_is(&t[0], "gets"));
		CHECK(cmd->nkeys == nt - 1);
		for (size_t i = 1; i < nt; i++)
			CHECK(cmd->keys[i - 1].p == t[i].p && cmd->keys[i - 1].len == t[i].n);
	}
	free(t);
}

static bool is_storage(enum pc_type t)
{
	return t == PC_SET || t == PC_ADD || t == PC_REPLACE || t == PC_APPEND || t == PC_PREPEND ||
	       t == PC_CAS;
}

/* The declared length of a data block as memcached reads it: a long, kept
 * in 32 bits. */
static bool declared_length(const struct span *t, size_t *out)
{
	char *buf = malloc(t->n + 1), *end;
	long v;
	bool ok;

	CHECK(buf != NULL);
	memcpy(buf, t->p, t->n);
	buf[t->n] = '\0';
	errno = 0;
	v = strtol(buf, &end, 10);
	ok = t->n > 0 && errno != ERANGE && end != buf && (int32_t)v >= 0;
	free(buf);
	if (ok)
		*out = (size_t)(int32_t)v;
	return ok;
}

/* A token forwarded as sent (a meta flag): wire bytes only, any length. */
static bool clean_token(const struct span *t)
{
	for (size_t i = 0; i < t->n; i++)
		if (!wire_key_byte((unsigned char)t->p[i]))
			return false;
	return t->n > 0;
}

/*
 * The independent reading of an accepted write or meta command whose line is
 * [s, e): its key is the line's second token; a meta command's flags are the
 * tokens after the key (after the length, for ms), token for token; and a
 * data block is as long as the line says, right after the line.
 */
static void write_oracle(const struct feed_call *c, const char *s, const char *e)
{
	const struct pc_cmd *cmd = c->cmd;
	const char *nl = e, *nul;
	struct span t[24];
	size_t nt, first = 2;

	if (e > s && e[-1] == '\r')
		e--;
	nul = memchr(s, '\0', (size_t)(e - s));
	/* memcached reads the line up to a NUL; so does the parser. */
	nt = split_spaces(s, nul ? nul : e, t, 24);
	CHECK(nt >= 1 && word_is(&t[0], pc_type_word(cmd->type)));
	if (cmd->type == PC_GAT || cmd->type == PC_GATS) {
		size_t max = (size_t)(e - s) / 2 + 2, nk;
		struct span *k = malloc(max * sizeof(*k));
		CHECK(k != NULL && nt >= 2);
		nk = split_spaces(t[1].p + t[1].n, e, k, max);
		CHECK(nk == cmd->nkeys);
		for (size_t i = 0; i < nk; i++)
			CHECK(clean_key(&k[i]) && cmd->keys[i].p == k[i].p &&
			      cmd->keys[i].len == k[i].n);
		free(k);
		return;
	}
	if (cmd->nkeys == 1) {
		CHECK(nt >= 2 && clean_key(&t[1]));
		CHECK(cmd->keys[0].p == t[1].p && cmd->keys[0].len == t[1].n);
		/* A NUL right after the key would have cut it short. */
		CHECK(!nul || t[1].p + t[1].n != nul);
	}
	if (is_storage(cmd->type) || cmd->type == PC_MS) {
		size_t want;
		CHECK(nt > (cmd->type == PC_MS ? 2u : 4u));
		CHECK(declared_length(&t[cmd->type == PC_MS ? 2 : 4], &want));
		CHECK(cmd->datalen == want);
		CHECK(cmd->data == nl + 1);
	}
	if (cmd->type == PC_MS)
		first = 3;
	if (cmd->type == PC_MG || cmd->type == PC_MS || cmd->type == PC_MD || cmd->type == PC_MA) {
		CHECK(nt - first == cmd->nmflags);
		for (uint32_t i = 0; i < cmd->nmflags; i++) {
			const struct pc_mflag *f = &cmd->mflags[i];
			CHECK(f->arg - 1 == t[first + i].p && f->arglen + 1 == t[first + i].n);
			CHECK(clean_token(&t[first + i]));
		}
	}
}

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		size_t cap = (o->len + n) * 2;
		char *nb = realloc(o->p, cap);
		CHECK(nb != NULL);
		o->p = nb;
		o->cap = cap;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), " %" PRIu64, v);
	CHECK(n > 0 && (size_t)n < sizeof(tmp));
	put(o, tmp, (size_t)n);
}

static void put_i64(struct out *o, int64_t v)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), " %" PRId64, v);
	CHECK(n > 0 && (size_t)n < sizeof(tmp));
	put(o, tmp, (size_t)n);
}

/* A write or meta command as a session forwards it: rebuilt from its parts,
 * never from the client's bytes. */
static void encode_write(struct out *o, const struct pc_cmd *cmd)
{
	const char *w = pc_type_word(cmd->type);

	CHECK(w != NULL);
	put(o, w, strlen(w));
	if (cmd->type == PC_GAT || cmd->type == PC_GATS)
		put_i64(o, cmd->exptime);
	for (uint32_t i = 0; i < cmd->nkeys; i++) {
		put(o, " ", 1);
		put(o, cmd->keys[i].p, cmd->keys[i].len);
	}
	if (is_storage(cmd->type)) {
		put_u64(o, cmd->flags);
		put_i64(o, cmd->exptime);
		put_u64(o, cmd->datalen);
		if (cmd->type == PC_CAS)
			put_u64(o, cmd->cas);
	}
	if (cmd->type == PC_MS)
		put_u64(o, cmd->datalen);
	if (cmd->type == PC_INCR || cmd->type == PC_DECR)
		put_u64(o, cmd->delta);
	if (cmd->type == PC_TOUCH || (cmd->type == PC_FLUSH_ALL && cmd->has_exptime))
		put_i64(o, cmd->exptime);
	if (cmd->type == PC_VERBOSITY)
		put_u64(o, cmd->level);
	if (cmd->type == PC_ME && cmd->key_base64)
		put(o, " b", 2);
	for (uint32_t i = 0; i < cmd->nmflags; i++) {
		put(o, " ", 1);
		put(o, &cmd->mflags[i].flag, 1);
		put(o, cmd->mflags[i].arg, cmd->mflags[i].arglen);
	}
	if (cmd->noreply)
		put(o, " noreply", 8);
	put(o, "\r\n", 2);
	if (cmd->data) {
		put(o, cmd->data, cmd->datalen);
		put(o, "\r\n", 2);
	}
}

/*
 * Strict checker for one rebuilt request: a line of tokens of wire bytes
 * separated by single spaces, CR LF, then -- for a command that carries
 * one -- exactly the block the line announces and CR LF. The block length is
 * read back from the line (the fifth token of a storage command, the third
 * of ms). Written from the protocol, not the parser.
 */
static void strict_request(const char *s, size_t n, enum pc_type type)
{
	size_t i = 0, ntok = 0, line, block = 0, at = 0;
	bool has_block = is_storage(type) || type == PC_MS;

	while (i < n && s[i] != '\r') {
		size_t k = 0, start;
		if (ntok)
			CHECK(s[i++] == ' ');
		start = i;
		while (i < n && s[i] != ' ' && s[i] != '\r') {
			CHECK(wire_key_byte((unsigned char)s[i]));
			i++;
			k++;
		}
		CHECK(k >= 1);
		if (has_block && ntok == (type == PC_MS ? 2u : 4u)) {
			CHECK(k <= 10);
			for (size_t j = start; j < i; j++) {
				CHECK(s[j] >= '0' && s[j] <= '9');
				block = block * 10 + (size_t)(s[j] - '0');
			}
			at = ntok;
		}
		/* The key: as long as keys may be. */
		if (ntok == 1 && type != PC_VERBOSITY && type != PC_FLUSH_ALL && type != PC_GAT &&
		    type != PC_GATS)
			CHECK(k <= 250);
		ntok++;
	}
	CHECK(i + 1 < n && s[i] == '\r' && s[i + 1] == '\n');
	line = i + 2;
	if (!has_block) {
		CHECK(n == line);
		return;
	}
	CHECK(at != 0);
	CHECK(n == line + block + 2 && s[n - 2] == '\r' && s[n - 1] == '\n');
}

static void on_call(void *ctxp, const struct feed_call *c)
{
	struct ctx *x = ctxp;
	const struct pc_cmd *cmd = c->cmd;

	/*
	 * A call that starts on a fresh line holding its '\n' parses exactly that
	 * line (the binary-protocol check aside): hold it to the oracle. A line
	 * over max_line is closed on before it is read, so it is left out.
	 */
	if (c->swallow_before == 0 && !(c->first && (unsigned char)c->buf[0] == 0x80)) {
		const char *nl = memchr(c->buf, '\n', c->len);
		if (nl && (size_t)(nl - c->buf) <= c->p->max_line) {
			oracle(c, c->buf, nl);
			if (c->st == PC_COMMAND && pc_type_word(cmd->type) && cmd->type != PC_GET &&
			    cmd->type != PC_GETS)
				write_oracle(c, c->buf, nl);
		}
	}
	/* Every key is clean, whatever the command. */
	if (c->st == PC_COMMAND)
		for (uint32_t i = 0; i < cmd->nkeys; i++) {
			struct span k = {cmd->keys[i].p, cmd->keys[i].len};
			CHECK(clean_key(&k));
		}
	if (c->st == PC_COMMAND && pc_type_word(cmd->type) && cmd->type != PC_GET &&
	    cmd->type != PC_GETS && cmd->type != PC_STATS && cmd->type != PC_QUIT) {
		struct out o = {0};
		encode_write(&o, cmd);
		strict_request(o.p, o.len, cmd->type);
		free(o.p);
	}
	if (c->st != PC_COMMAND || (cmd->type != PC_GET && cmd->type != PC_GETS))
		return;

	CHECK(cmd->nkeys >= 1);
	{
		const struct fkey **one = malloc(cmd->nkeys * sizeof(*one));
		size_t first = x->n;

		CHECK(one != NULL);
		for (uint32_t i = 0; i < cmd->nkeys; i++) {
			struct fkey *k;
			if (x->n == x->cap) {
				size_t cap = x->cap ? x->cap * 2 : 64;
				struct fkey *v = realloc(x->keys, cap * sizeof(*v));
				CHECK(v != NULL);
				x->keys = v;
				x->cap = cap;
			}
			k = &x->keys[x->n++];
			/* As request_new_get() stores it; the copy must lose nothing. */
			k->keylen = (uint8_t)cmd->keys[i].len;
			CHECK(k->keylen == cmd->keys[i].len);
			memcpy(k->key, cmd->keys[i].p, k->keylen);
		}
		/* This request's keys alone, as when nothing else is in flight. */
		for (uint32_t i = 0; i < cmd->nkeys; i++)
			one[i] = &x->keys[first + i];
		for (uint32_t i = 0; i < cmd->nkeys; i += BATCH_KEYS) {
			uint32_t m = cmd->nkeys - i < BATCH_KEYS ? cmd->nkeys - i : BATCH_KEYS;
			check_line(x, one + i, m);
		}
		free(one);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctx x = {0};
	struct feed_plan pl;

	if (size < 1)
		return 0;
	pl = feed_plan_of(data[0], size - 1);
	(void)feed_run(data + 1, size - 1, &pl, on_call, &x);

	/* Every accepted key of the connection, in batches of at most
	 * BATCH_KEYS, as the batcher mixes requests into shared lines. */
	if (x.n) {
		const struct fkey **all = malloc(x.n * sizeof(*all));
		CHECK(all != NULL);
		for (size_t i = 0; i < x.n; i++)
			all[i] = &x.keys[i];
		for (size_t i = 0; i < x.n; i += BATCH_KEYS)
			check_line(&x, all + i, x.n - i < BATCH_KEYS ? x.n - i : BATCH_KEYS);
		free(all);
	}
	free(x.keys);
	free(x.line);
	return 0;
}
