/*
 * proto_meta: memcached's meta commands (mg, ms, md, ma, mn, me), checked as
 * memcached 1.6 checks them, for proto_client's dispatcher; also the base64
 * of meta keys (pc_base64_decode, declared in proto_client.h). Internal to
 * the client parser. Flags are kept in the parser's mflags; nothing is
 * allocated.
 */
#ifndef COALESCED_PROTO_META_H
#define COALESCED_PROTO_META_H

#include "proto_client.h"
#include "proto_tok.h"

/* A line whose command word is two bytes starting with 'm'. PC_NEED_MORE:
 * a good ms, whose data block (cmd->datalen bytes and CRLF) comes next. */
enum pc_status pm_parse(struct pc_parser *p, const struct pt_line *l, struct pc_cmd *cmd);

#endif
