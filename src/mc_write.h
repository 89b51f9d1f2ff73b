/*
 * mc_write: the memcached commands that are not plain reads: storage,
 * delete, incr/decr, touch, gat/gats, flush_all, verbosity and the meta
 * commands. Each becomes a write (write.h) re-encoded from its parsed parts
 * and sent on its key's server, a local answer (verbosity, mn), or, for a meta
 * get whose flags allow it, a read that collapses and batches like get.
 * Part of the memcached session: it owns nothing beyond the requests it
 * queues on the connection.
 */
#ifndef COALESCED_MC_WRITE_H
#define COALESCED_MC_WRITE_H

#include <stdbool.h>

struct conn;
struct pc_cmd;
struct request;

/* Request ops of the memcached session (request->op). */
enum mc_op {
	MC_GET = 0,
	MC_GETS,
	MC_STATS,
	MC_STATS_SETTINGS,
	MC_STATS_CONNS,
	MC_WRITE, /* sent upstream as itself */
	MC_MG,    /* a meta get answered from a collapsed fetch */
};

/* Queue what cmd asks for. false: cmd is not one of these commands. */
bool mc_write_handle(struct conn *c, const struct pc_cmd *cmd);
/* A set or ms too large to store: memcached drops the key's old value, and
 * so does this, silently, so that a later read does not see it. */
void mc_write_drop(struct conn *c, const struct pc_cmd *cmd);
/* Compose an MC_WRITE or MC_MG reply. -1: out of memory. */
int mc_write_compose(struct conn *c, struct request *r);

#endif
