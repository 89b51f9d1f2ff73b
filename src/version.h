/*
 * version: what coalesced calls itself. COALESCED_VERSION is its own release
 * (`coalesced -V`, `stats`, /metrics); COALESCED_MC_VERSION is what the
 * memcached `version` command answers: a memcached version whose protocol it
 * speaks, since client libraries parse the number (libmemcached refuses a
 * major version of 0), followed by its own.
 */
#ifndef COALESCED_VERSION_H
#define COALESCED_VERSION_H

#define COALESCED_VERSION "0.2.0"
#define COALESCED_MC_VERSION "1.6.0-coalesced-" COALESCED_VERSION

#endif
