/*
 * mc_write: memcached writes and meta commands; see mc_write.h.
 *
 *   parsed command -> tokens re-encoded from its parts -> REQ_WRITE
 *     -> (its turn on the connection) -> backend write -> upstream reply
 *     -> compose: the reply as memcached sent it, minus what noreply or the
 *        meta q flag says the client must not see
 */
#include "mc_write.h"

#include "conn.h"
#include "inflight.h"
#include "log.h"
#include "pool.h"
#include "proto_client.h"
#include "request.h"
#include "server.h"
#include "stats.h"
#include "upstream.h"
#include "value.h"
#include "write.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* request->sflags */
enum {
	SF_NOREPLY = 1,   /* classic noreply: the client sees nothing */
	SF_QUIET_EN = 2,  /* meta q: an EN (miss) reply is not shown */
	SF_QUIET_HD = 4,  /* meta q: an HD (success) reply is not shown */
	SF_STRIP_END = 8, /* one part of a split gat: END comes with the last */
	SF_ALL = 16,      /* flush_all: to every server */
};

#define MAX_TOKENS (PC_MFLAGS_MAX + 8)

/* The command being built: tokens point into the client's buffer or into
 * num, and are copied into the request. */
struct build {
	struct write_arg t[MAX_TOKENS];
	uint32_t n;
	char num[6][24];
	uint32_t nnum;
};

static void tok(struct build *b, const char *p, size_t len)
{
	if (b->n < MAX_TOKENS)
		b->t[b->n++] = (struct write_arg){p, len};
}

static void tok_str(struct build *b, const char *s)
{
	tok(b, s, strlen(s));
}

static void tok_num(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tok_num(struct build *b, const char *fmt, ...)
{
	va_list ap;
	char *p = b->num[b->nnum++ % 6];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p, sizeof(b->num[0]), fmt, ap);
	va_end(ap);
	tok(b, p, (size_t)n);
}

static void reply_now(struct conn *c, const char *text, bool noreply)
{
	if (!noreply)
		conn_reply(c, text, strlen(text));
}

/* Queue b as a write on key (index key_index in b's tokens). */
static struct request *queue_write(struct conn *c, const struct build *b, int key_index,
                                   bool key_b64, const char *data, size_t datalen, uint8_t shape,
                                   uint32_t sflags)
{
	struct server *srv = c->srv;
	size_t bytes = 0;
	struct request *r;
	struct upwrite *w;
	char *p;

	for (uint32_t i = 0; i < b->n; i++)
		bytes += b->t[i].len;
	/* A base64 key is also kept decoded: that is the key's identity. */
	if (key_b64)
		bytes += b->t[key_index].len;
	r = request_new_write(c, MC_WRITE, b->n, bytes, datalen, srv->stats.vb);
	if (!r) {
		conn_reply(c, "SERVER_ERROR out of memory\r\n", 28);
		return NULL;
	}
	w = r->w;
	w->proto = WRITE_MEMCACHE;
	w->reply_shape = shape;
	w->has_key = key_index >= 0;
	w->key_index = key_index >= 0 ? (uint32_t)key_index : 0;
	w->key_b64 = key_b64;
	w->all_servers = (sflags & SF_ALL) != 0;
	w->lane = c->id;
	p = request_write_bytes(r);
	for (uint32_t i = 0; i < b->n; i++) {
		memcpy(p, b->t[i].p, b->t[i].len);
		w->argv[i] = (struct write_arg){p, b->t[i].len};
		p += b->t[i].len;
	}
	if (key_index >= 0) {
		const struct write_arg *k = &w->argv[key_index];
		if (key_b64) {
			w->keylen = pc_base64_decode(k->p, k->len, (unsigned char *)p);
			w->key = p;
		} else {
			w->key = k->p;
			w->keylen = k->len;
		}
	}
	if (data)
		memcpy((char *)w->data, data, datalen);
	else
		w->data = NULL;
	r->sflags = sflags;
	r->since = ev_now(srv->loop);
	conn_enqueue(c, r);
	return r;
}

/* Over the memory budget, nothing new is taken in (as for reads). */
static bool over_budget(struct conn *c, bool noreply)
{
	struct server *srv = c->srv;

	if (value_bytes_now(srv->stats.vb) < (uint64_t)srv->cfg.max_memory_mb << 20)
		return false;
	srv->stats.out_of_memory++;
	log_limited(&srv->log, LVL_WARN, &srv->ll->memory,
	            "max_memory_mb (%ld) reached by values in flight: refusing writes",
	            srv->cfg.max_memory_mb);
	reply_now(c, "SERVER_ERROR out of memory\r\n", noreply);
	return true;
}

static void storage(struct conn *c, const struct pc_cmd *cmd)
{
	struct build b = {0};

	c->srv->stats.cmd_set++;
	if (over_budget(c, cmd->noreply))
		return;
	tok_str(&b, pc_type_word(cmd->type));
	tok(&b, cmd->keys[0].p, cmd->keys[0].len);
	tok_num(&b, "%" PRIu32, cmd->flags);
	tok_num(&b, "%" PRId32, cmd->exptime);
	tok_num(&b, "%zu", cmd->datalen);
	if (cmd->type == PC_CAS)
		tok_num(&b, "%" PRIu64, cmd->cas);
	queue_write(c, &b, 1, false, cmd->data, cmd->datalen, WREPLY_LINE,
	            cmd->noreply ? SF_NOREPLY : 0);
}

/* gat/gats: one write when every key lives on one server; otherwise one a
 * key, their replies joined so the client sees one VALUE list and one END. */
static void gat(struct conn *c, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;
	struct pool *pool = srv->up->pool;
	uint32_t s0 = pool_locate(pool, cmd->keys[0].p, cmd->keys[0].len);
	bool one = true;

	srv->stats.cmd_touch++;
	for (uint32_t i = 1; i < cmd->nkeys && one; i++)
		one = pool_locate(pool, cmd->keys[i].p, cmd->keys[i].len) == s0;
	if (one && cmd->nkeys + 2 <= MAX_TOKENS) {
		struct build b = {0};
		tok_str(&b, pc_type_word(cmd->type));
		tok_num(&b, "%" PRId32, cmd->exptime);
		for (uint32_t i = 0; i < cmd->nkeys; i++)
			tok(&b, cmd->keys[i].p, cmd->keys[i].len);
		queue_write(c, &b, 2, false, NULL, 0, WREPLY_VALUES, 0);
		return;
	}
	for (uint32_t i = 0; i < cmd->nkeys; i++) {
		struct build b = {0};
		tok_str(&b, pc_type_word(cmd->type));
		tok_num(&b, "%" PRId32, cmd->exptime);
		tok(&b, cmd->keys[i].p, cmd->keys[i].len);
		queue_write(c, &b, 2, false, NULL, 0, WREPLY_VALUES,
		            i + 1 < cmd->nkeys ? SF_STRIP_END : 0);
	}
}

/* A meta get that a collapsed `gets` can answer: only flags whose values a
 * gets reply carries (v f c k s), the opaque, and q; each at most once. */
static bool mg_collapsible(const struct pc_cmd *cmd)
{
	unsigned seen = 0;

	if (cmd->key_base64)
		return false;
	for (uint32_t i = 0; i < cmd->nmflags; i++) {
		const struct pc_mflag *f = &cmd->mflags[i];
		const char *at = strchr("vfcksOq", f->flag);
		unsigned bit;
		if (!at || f->flag == '\0' || (f->arglen && f->flag != 'O'))
			return false;
		bit = 1u << (at - "vfcksOq");
		if (seen & bit)
			return false;
		seen |= bit;
	}
	return true;
}

/* The flags of a collapsed mg, kept as "<flag><arg>\n"... for compose. */
static void mg_read(struct conn *c, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;
	struct request *r;
	size_t n = 0;
	bool quiet = false;

	srv->stats.cmd_get++;
	srv->stats.get_keys++;
	if (over_budget(c, false))
		return;
	r = request_new_read(c, MC_MG, 1, cmd->keys[0].len);
	if (r) {
		for (uint32_t i = 0; i < cmd->nmflags; i++)
			n += 2 + cmd->mflags[i].arglen;
		r->text = malloc(n + 1);
	}
	if (!r || !r->text) {
		request_free(r);
		conn_reply(c, "SERVER_ERROR out of memory\r\n", 28);
		return;
	}
	request_set_key(r, 0, cmd->keys[0].p, cmd->keys[0].len);
	n = 0;
	for (uint32_t i = 0; i < cmd->nmflags; i++) {
		const struct pc_mflag *f = &cmd->mflags[i];
		quiet |= f->flag == 'q';
		r->text[n++] = f->flag;
		memcpy(r->text + n, f->arg, f->arglen);
		n += f->arglen;
		r->text[n++] = '\n';
	}
	r->textlen = n;
	r->sflags = quiet ? SF_QUIET_EN : 0;
	r->since = ev_now(srv->loop);
	conn_enqueue(c, r);
}

/* Any meta command sent as itself: its flags again, but q, which only says
 * what the client wants to see: upstream always answers, so that replies
 * still pair with requests. */
static void meta(struct conn *c, const struct pc_cmd *cmd)
{
	struct build b = {0};
	uint32_t sflags = 0;
	bool quiet = false, has_b = false;

	for (uint32_t i = 0; i < cmd->nmflags; i++)
		quiet |= cmd->mflags[i].flag == 'q';
	if (cmd->type == PC_MG)
		sflags = quiet ? SF_QUIET_EN : 0;
	else if (cmd->type != PC_ME)
		sflags = quiet ? SF_QUIET_HD : 0;
	if (cmd->type == PC_MS) {
		c->srv->stats.cmd_set++;
		if (over_budget(c, false))
			return;
	}
	tok_str(&b, pc_type_word(cmd->type));
	tok(&b, cmd->keys[0].p, cmd->keys[0].len);
	if (cmd->type == PC_MS)
		tok_num(&b, "%zu", cmd->datalen);
	for (uint32_t i = 0; i < cmd->nmflags; i++) {
		const struct pc_mflag *f = &cmd->mflags[i];
		if (f->flag == 'q')
			continue;
		has_b |= f->flag == 'b';
		/* The flag letter and its argument are one token as sent. */
		tok(&b, f->arg - 1, f->arglen + 1);
	}
	if (cmd->key_base64 && !has_b)
		tok_str(&b, "b");
	queue_write(c, &b, 1, cmd->key_base64, cmd->data, cmd->datalen,
	            cmd->type == PC_ME ? WREPLY_LINE : WREPLY_META, sflags);
}

bool mc_write_handle(struct conn *c, const struct pc_cmd *cmd)
{
	struct server *srv = c->srv;
	struct build b = {0};

	switch (cmd->type) {
	case PC_SET:
	case PC_ADD:
	case PC_REPLACE:
	case PC_APPEND:
	case PC_PREPEND:
	case PC_CAS:
		storage(c, cmd);
		return true;
	case PC_DELETE:
		srv->stats.cmd_delete++;
		tok_str(&b, "delete");
		tok(&b, cmd->keys[0].p, cmd->keys[0].len);
		queue_write(c, &b, 1, false, NULL, 0, WREPLY_LINE, cmd->noreply ? SF_NOREPLY : 0);
		return true;
	case PC_INCR:
	case PC_DECR:
		if (cmd->type == PC_INCR)
			srv->stats.cmd_incr++;
		else
			srv->stats.cmd_decr++;
		tok_str(&b, pc_type_word(cmd->type));
		tok(&b, cmd->keys[0].p, cmd->keys[0].len);
		tok_num(&b, "%" PRIu64, cmd->delta);
		queue_write(c, &b, 1, false, NULL, 0, WREPLY_LINE, cmd->noreply ? SF_NOREPLY : 0);
		return true;
	case PC_TOUCH:
		srv->stats.cmd_touch++;
		tok_str(&b, "touch");
		tok(&b, cmd->keys[0].p, cmd->keys[0].len);
		tok_num(&b, "%" PRId32, cmd->exptime);
		queue_write(c, &b, 1, false, NULL, 0, WREPLY_LINE, cmd->noreply ? SF_NOREPLY : 0);
		return true;
	case PC_GAT:
	case PC_GATS:
		gat(c, cmd);
		return true;
	case PC_VERBOSITY:
		/* A proxy's own log level is its configuration's business; memcached
		 * answers OK whatever the level. */
		reply_now(c, "OK\r\n", cmd->noreply);
		return true;
	case PC_FLUSH_ALL:
		srv->stats.cmd_flush++;
		if (!srv->cfg.allow_flush) {
			srv->stats.cmd_unsupported++;
			reply_now(c, "SERVER_ERROR not supported\r\n", cmd->noreply);
			return true;
		}
		tok_str(&b, "flush_all");
		if (cmd->has_exptime)
			tok_num(&b, "%" PRId32, cmd->exptime);
		queue_write(c, &b, -1, false, NULL, 0, WREPLY_LINE,
		            SF_ALL | (cmd->noreply ? SF_NOREPLY : 0));
		return true;
	case PC_MN:
		srv->stats.cmd_meta++;
		/* Everything before it is answered in order anyway. */
		conn_reply(c, "MN\r\n", 4);
		return true;
	case PC_MG:
		srv->stats.cmd_meta++;
		if (mg_collapsible(cmd))
			mg_read(c, cmd);
		else
			meta(c, cmd);
		return true;
	case PC_MS:
	case PC_MD:
	case PC_MA:
	case PC_ME:
		srv->stats.cmd_meta++;
		if (cmd->type == PC_MD)
			srv->stats.cmd_delete++;
		meta(c, cmd);
		return true;
	default:
		return false;
	}
}

void mc_write_drop(struct conn *c, const struct pc_cmd *cmd)
{
	struct build b = {0};

	if (cmd->key_base64) {
		tok_str(&b, "md");
		tok(&b, cmd->keys[0].p, cmd->keys[0].len);
		tok_str(&b, "b");
		queue_write(c, &b, 1, true, NULL, 0, WREPLY_META, SF_NOREPLY);
		return;
	}
	tok_str(&b, "delete");
	tok(&b, cmd->keys[0].p, cmd->keys[0].len);
	queue_write(c, &b, 1, false, NULL, 0, WREPLY_LINE, SF_NOREPLY);
}

static bool starts_word(const char *p, size_t len, const char *w)
{
	return len >= 4 && memcmp(p, w, 2) == 0 && (p[2] == ' ' || p[2] == '\r');
}

static int compose_write(struct conn *c, struct request *r)
{
	struct upwrite *w = r->w;
	size_t len = w->replylen;

	if (r->sflags & SF_NOREPLY)
		return 0;
	if (w->error) {
		if (conn_out_bytes(c, "SERVER_ERROR ", 13) < 0 ||
		    conn_out_bytes(c, w->error, strlen(w->error)) < 0)
			return -1;
		return conn_out_bytes(c, "\r\n", 2);
	}
	if (((r->sflags & SF_QUIET_EN) && starts_word(w->reply, len, "EN")) ||
	    ((r->sflags & SF_QUIET_HD) && starts_word(w->reply, len, "HD")))
		return 0;
	if ((r->sflags & SF_STRIP_END) && len >= 5 && memcmp(w->reply + len - 5, "END\r\n", 5) == 0)
		len -= 5;
	return conn_out_bytes(c, w->reply, len);
}

/* Decimal digits of v after a flag letter. */
static int out_flag_num(struct conn *c, char flag, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), " %c%" PRIu64, flag, v);

	return conn_out_bytes(c, buf, (size_t)n);
}

/* A meta get answered from a collapsed fetch, flags in the order asked, as
 * memcached writes them: a hit "VA <len> ..." (with v) or "HD ...", a miss
 * "EN" with only k and O, nothing for a miss under q. */
static int compose_mg(struct conn *c, struct request *r)
{
	struct slot *s = &r->slots[0];
	struct value *v = s->value;
	bool hit = s->state == SLOT_HIT, want_v = false;
	int rc = 0;

	hist_add(&c->srv->stats.request_seconds, ev_now(c->srv->loop) - r->since);
	if (s->state == SLOT_ERROR) {
		const char *why = r->err ? r->err : "upstream unavailable";
		if (conn_out_bytes(c, "SERVER_ERROR ", 13) < 0 ||
		    conn_out_bytes(c, why, strlen(why)) < 0)
			return -1;
		return conn_out_bytes(c, "\r\n", 2);
	}
	if (!hit && (r->sflags & SF_QUIET_EN))
		return 0;
	for (size_t i = 0; i < r->textlen; i += strcspn(r->text + i, "\n") + 1)
		want_v |= r->text[i] == 'v';
	if (!hit)
		rc = conn_out_bytes(c, "EN", 2);
	else if (want_v) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "VA %zu", v->len);
		rc = conn_out_bytes(c, buf, (size_t)n);
	} else
		rc = conn_out_bytes(c, "HD", 2);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < r->textlen;) {
		const char *f = r->text + i;
		size_t n = strcspn(f, "\n");
		i += n + 1;
		switch (*f) {
		case 'f':
			rc = hit ? out_flag_num(c, 'f', v->flags) : 0;
			break;
		case 'c':
			rc = hit ? out_flag_num(c, 'c', v->cas) : 0;
			break;
		case 's':
			rc = hit ? out_flag_num(c, 's', v->len) : 0;
			break;
		case 'k':
			rc = conn_out_bytes(c, " k", 2) < 0 ? -1
			                                    : conn_out_bytes(c, s->key, s->keylen);
			break;
		case 'O':
			rc = conn_out_bytes(c, " ", 1) < 0 ? -1 : conn_out_bytes(c, f, n);
			break;
		default:
			break;
		}
		if (rc < 0)
			return -1;
	}
	if (conn_out_bytes(c, "\r\n", 2) < 0)
		return -1;
	if (hit && want_v) {
		s->value = NULL;
		return conn_out_value(c, v);
	}
	return 0;
}

int mc_write_compose(struct conn *c, struct request *r)
{
	return r->op == MC_MG ? compose_mg(c, r) : compose_write(c, r);
}
