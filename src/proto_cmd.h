/*
 * proto_cmd: filling a pc_cmd, shared by proto_client and proto_meta (both
 * internal to the client parser; nothing else includes this). Kept here so
 * that a reply or a key is set the same way whichever half parsed the line.
 * Nothing is allocated: replies are string literals, keys point into the
 * caller's buffer through the parser's key1.
 */
#ifndef COALESCED_PROTO_CMD_H
#define COALESCED_PROTO_CMD_H

#include "proto_client.h"
#include "proto_tok.h"

/* Replies both halves give. */
#define R_ERROR "ERROR\r\n"
#define R_BAD_FORMAT "CLIENT_ERROR bad command line format\r\n"
#define R_TOO_LARGE "SERVER_ERROR object too large for cache\r\n"

static inline enum pc_status pcmd_reply(struct pc_cmd *cmd, const char *text, bool client_error)
{
	cmd->type = PC_REPLY;
	cmd->reply = text;
	cmd->client_error = client_error;
	return PC_COMMAND;
}

static inline void pcmd_set_key(struct pc_parser *p, struct pc_cmd *cmd, const struct pt_tok *k)
{
	p->key1.p = k->p;
	p->key1.len = k->len;
	cmd->keys = &p->key1;
	cmd->nkeys = 1;
}

#endif
