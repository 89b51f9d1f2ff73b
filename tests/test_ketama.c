/*
 * test_ketama: key placement (ketama, modula) and the MD5 under it. The
 * reference is libmemcached itself, linked into the test runner: for every
 * server set and thousands of keys, coalesced's ring must name the server
 * memcached_generate_hash() names. pylibmc is asked too, on one set, through
 * a short Python script. Fixed expected values catch a regression even
 * without libmemcached.
 */
#include <check.h>
#include <libhashkit-1.0/hashkit.h>
#include <libmemcached/memcached.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ketama.h"
#include "md5.h"
#include "modula.h"
#include "testutil.h"

Suite *ketama_suite(void);

#define NKEYS 5000
#define KEY_MAX 250
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct key {
	size_t len;
	char b[KEY_MAX];
};

/* xorshift64: the test's own reproducible randomness. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Keys as applications write them (prefixes, numbers, UUID-like hex, UTF-8),
 * and binary-ish ones (any byte, NUL and >= 0x80 included, lengths 0..250).
 * libmemcached hashes whatever bytes it gets, so both kinds are fair.
 */
static struct key *make_keys(size_t n, uint64_t seed)
{
	struct key *k = calloc(n, sizeof(*k));
	static const char *const prefixes[] = {"user:", "session_", "obj/",     "cache.",
	                                       "",      "k",        "product:", "é€:"};

	ck_assert_ptr_nonnull(k);
	for (size_t i = 0; i < n; i++) {
		uint64_t r = rnd(&seed);
		int len;

		switch (i % 4) {
		case 0:
			len = snprintf(k[i].b, KEY_MAX, "%s%zu", prefixes[r % NELEMS(prefixes)], i);
			break;
		case 1:
			len = snprintf(
			    k[i].b, KEY_MAX, "%08llx-%04llx-%016llx", (unsigned long long)(r >> 32),
			    (unsigned long long)(r & 0xffff), (unsigned long long)rnd(&seed));
			break;
		case 2:
			len = snprintf(k[i].b, KEY_MAX, "%s%llu:%s", prefixes[r % NELEMS(prefixes)],
			               (unsigned long long)(r % 1000000), i % 8 ? "profile" : "");
			break;
		default:
			len = (int)(i < 4 * 251 ? i / 4 : r % (KEY_MAX + 1));
			for (int j = 0; j < len; j++)
				k[i].b[j] = (char)(rnd(&seed) & 0xff);
			break;
		}
		k[i].len = (size_t)len;
	}
	return k;
}

struct server_set {
	const char *name;
	size_t n;
	struct ketama_server s[10];
};

/* 1, 2, 3, 5, 10 servers; with and without weights; port 11211 (left out
 * of the point names) and others; IPs and names. */
static const struct server_set sets[] = {
    {"1 ip", 1, {{"127.0.0.1", 11211, 0}}},
    {"1 name port", 1, {{"cache1.example.com", 11300, 5}}},
    {"2 ip", 2, {{"10.0.0.1", 11211, 0}, {"10.0.0.2", 11211, 0}}},
    {"2 ip weighted", 2, {{"10.0.0.1", 11211, 3}, {"10.0.0.2", 11211, 1}}},
    {"2 same host", 2, {{"127.0.0.1", 11211, 0}, {"127.0.0.1", 11212, 0}}},
    {"3 names",
     3,
     {{"cache-a.example.com", 11211, 0},
      {"cache-b.example.com", 11212, 0},
      {"localhost", 22122, 0}}},
    {"3 weighted", 3, {{"mc1", 11211, 1}, {"mc2", 11211, 2}, {"mc3", 11211, 3}}},
    {"5 mixed",
     5,
     {{"192.168.1.10", 11211, 0},
      {"192.168.1.11", 11212, 0},
      {"memcache-0.memcache.svc", 11211, 0},
      {"10.1.2.3", 40000, 0},
      {"::1", 11211, 0}}},
    {"5 weighted",
     5,
     {{"192.168.1.10", 11211, 1},
      {"192.168.1.11", 11212, 2},
      {"memcache-0.memcache.svc", 11211, 3},
      {"10.1.2.3", 40000, 4},
      {"db5", 11211, 5}}},
    {"7 weighted",
     7,
     {{"h1", 11211, 7},
      {"h2", 11211, 1},
      {"h3", 11211, 1},
      {"h4", 11211, 13},
      {"h5", 11211, 2},
      {"h6", 11211, 1},
      {"h7", 11211, 9}}},
    {"10 ip",
     10,
     {{"10.0.0.1", 11211, 0},
      {"10.0.0.2", 11211, 0},
      {"10.0.0.3", 11211, 0},
      {"10.0.0.4", 11211, 0},
      {"10.0.0.5", 11211, 0},
      {"10.0.0.6", 11211, 0},
      {"10.0.0.7", 11211, 0},
      {"10.0.0.8", 11211, 0},
      {"10.0.0.9", 11211, 0},
      {"10.0.0.10", 11211, 0}}},
    {"10 ports",
     10,
     {{"127.0.0.1", 11211, 0},
      {"127.0.0.1", 11212, 0},
      {"127.0.0.1", 11213, 0},
      {"127.0.0.1", 11214, 0},
      {"127.0.0.1", 11215, 0},
      {"127.0.0.1", 11216, 0},
      {"127.0.0.1", 11217, 0},
      {"127.0.0.1", 11218, 0},
      {"127.0.0.1", 11219, 0},
      {"127.0.0.1", 11220, 0}}},
    {"10 weighted",
     10,
     {{"a.example", 11211, 1},
      {"b.example", 11211, 1},
      {"c.example", 11212, 2},
      {"10.0.0.4", 11211, 100},
      {"10.0.0.5", 11211, 7},
      {"f", 1, 3},
      {"g.example", 65535, 1},
      {"h.example", 11211, 0},
      {"10.0.0.9", 11211, 50},
      {"j", 11211, 1}}},
    /* The light server's share rounds to no points at all. */
    {"2 lopsided", 2, {{"big", 11211, 1000}, {"small", 11211, 1}}},
    /* Every point ties with one of the other server: the lower index wins. */
    {"2 duplicate", 2, {{"twin", 11211, 0}, {"twin", 11211, 0}}},
};

/* A libmemcached handle placing keys as coalesced's ketama does. The
 * weighted behaviour is set before the servers go in, as an application
 * configures it; servers with weight 0 are added as libmemcached's
 * memcached_server_add() does (weight 0, meaning 1). */
static memcached_st *lmc_ketama(const struct ketama_server *s, size_t n)
{
	memcached_st *mc = memcached_create(NULL);

	ck_assert_ptr_nonnull(mc);
	ck_assert_int_eq(memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
	                                        MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA),
	                 MEMCACHED_SUCCESS);
	ck_assert_int_eq(memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1),
	                 MEMCACHED_SUCCESS);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(
		    memcached_server_add_with_weight(mc, s[i].host, s[i].port, s[i].weight),
		    MEMCACHED_SUCCESS);
	ck_assert_uint_eq(memcached_behavior_get(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED), 1);
	return mc;
}

/* libmemcached's defaults: modula distribution, one-at-a-time hash. */
static memcached_st *lmc_modula(const struct ketama_server *s, size_t n)
{
	memcached_st *mc = memcached_create(NULL);

	ck_assert_ptr_nonnull(mc);
	ck_assert_uint_eq(memcached_behavior_get(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION),
	                  MEMCACHED_DISTRIBUTION_MODULA);
	ck_assert_uint_eq(memcached_behavior_get(mc, MEMCACHED_BEHAVIOR_HASH),
	                  MEMCACHED_HASH_DEFAULT);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(
		    memcached_server_add_with_weight(mc, s[i].host, s[i].port, s[i].weight),
		    MEMCACHED_SUCCESS);
	return mc;
}

/* ------------------------------------------------------------------------ */
/* MD5 */

static void hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

START_TEST(md5_rfc1321_vectors)
{
	/* RFC 1321, appendix A.5. */
	static const char *const v[][2] = {
	    {"", "d41d8cd98f00b204e9800998ecf8427e"},
	    {"a", "0cc175b9c0f1b6a831c399e269772661"},
	    {"abc", "900150983cd24fb0d6963f7d28e17f72"},
	    {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
	    {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
	    {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	     "d174ab98d277d9f5a5611c2c9f419d9f"},
	    {"1234567890123456789012345678901234567890123456789012345678901234567890123456"
	     "7890",
	     "57edf4a22be3c955ac49da2e2107b67a"},
	};

	for (size_t i = 0; i < NELEMS(v); i++) {
		uint8_t d[MD5_DIGEST_LEN];
		char h[2 * MD5_DIGEST_LEN + 1];

		md5(v[i][0], strlen(v[i][0]), d);
		hex(d, sizeof(d), h);
		ck_assert_msg(strcmp(h, v[i][1]) == 0, "MD5(\"%s\") = %s, expected %s", v[i][0], h,
		              v[i][1]);
	}
}
END_TEST

/* Every length across the padding boundaries (55, 56, 63, 64, ...), fed in
 * one piece and in uneven pieces, against libhashkit's MD5. */
START_TEST(md5_agrees_with_libhashkit)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	uint8_t buf[1100];

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rnd(&seed);
	for (size_t len = 0; len <= sizeof(buf); len += len < 300 ? 1 : 37) {
		uint8_t ours[MD5_DIGEST_LEN], pieces[MD5_DIGEST_LEN], ref[MD5_DIGEST_LEN];
		struct md5_ctx ctx;
		size_t off = 0;

		md5(buf, len, ours);
		md5_init(&ctx);
		while (off < len) {
			size_t step = 1 + (size_t)(rnd(&seed) % 130);

			if (step > len - off)
				step = len - off;
			md5_update(&ctx, buf + off, step);
			off += step;
		}
		md5_final(&ctx, pieces);
		libhashkit_md5_signature(buf, len, ref);
		ck_assert_msg(memcmp(ours, ref, sizeof(ref)) == 0, "length %zu: one-shot differs",
		              len);
		ck_assert_msg(memcmp(pieces, ref, sizeof(ref)) == 0, "length %zu: pieces differ",
		              len);
	}
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Fixed values: a regression shows without libmemcached. */

START_TEST(fixed_hashes)
{
	static const struct {
		const char *key;
		uint32_t ketama, oaat;
	} v[] = {
	    {"", 0xd98c1dd4u, 0x00000000u},
	    {"foo", 0xdb18bdacu, 0x238678ddu},
	    {"user:1", 0x10ddb1bdu, 0xa556ff4bu},
	    {"session_abcdef", 0x05f8b9b4u, 0x280696afu},
	};
	static const char high[] = "key with \x80\xff";

	for (size_t i = 0; i < NELEMS(v); i++) {
		ck_assert_msg(ketama_hash(v[i].key, strlen(v[i].key)) == v[i].ketama,
		              "ketama_hash(\"%s\") = 0x%08x", v[i].key,
		              ketama_hash(v[i].key, strlen(v[i].key)));
		ck_assert_msg(modula_hash(v[i].key, strlen(v[i].key)) == v[i].oaat,
		              "modula_hash(\"%s\") = 0x%08x", v[i].key,
		              modula_hash(v[i].key, strlen(v[i].key)));
	}
	/* libmemcached widens key bytes through char: signed on x86. */
	ck_assert_uint_eq(ketama_hash(high, strlen(high)), 0xed0c2a12u);
	ck_assert_uint_eq(modula_hash(high, strlen(high)),
	                  CHAR_MIN < 0 ? 0xdaef0e29u : 0x6c4fd0aeu);
}
END_TEST

/* A small weighted ring: its point counts and where sixteen keys land. */
START_TEST(fixed_placement)
{
	static const struct ketama_server s[3] = {
	    {"10.0.0.1", 11211, 0}, {"10.0.0.2", 11212, 0}, {"cache3", 11211, 3}};
	static const size_t ketama_want[16] = {1, 2, 2, 2, 2, 2, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0};
	static const size_t modula_want[16] = {2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 0, 1, 0, 0, 0, 0};
	struct ketama_ring *r = ketama_new(s, 3, NULL);

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ketama_points(r, 0), 96);
	ck_assert_uint_eq(ketama_points(r, 1), 96);
	ck_assert_uint_eq(ketama_points(r, 2), 288);
	for (int i = 0; i < 16; i++) {
		char key[16];
		size_t len = (size_t)snprintf(key, sizeof(key), "key%d", i);

		ck_assert_msg(ketama_server(r, key, len) == ketama_want[i], "ketama %s", key);
		ck_assert_msg(modula_server(3, key, len) == modula_want[i], "modula %s", key);
	}
	ketama_free(r);
}
END_TEST

/* Equal weights do not always mean 160 points each: libmemcached's float
 * arithmetic gives 156 with 25 servers (1/25 * 40 * 25 rounds below 40). */
START_TEST(fixed_float_rounding)
{
	struct ketama_server s[64];
	struct ketama_ring *r;

	for (int i = 0; i < 64; i++)
		s[i] = (struct ketama_server){"x", (uint16_t)(1 + i), 1};
	r = ketama_new(s, 24, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ketama_points(r, 0), 160);
	ketama_free(r);
	r = ketama_new(s, 25, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ketama_points(r, 0), 156);
	ketama_free(r);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Agreement with libmemcached */

START_TEST(ketama_agrees_with_libmemcached)
{
	struct key *keys = make_keys(NKEYS, 0x1234567u);

	for (size_t si = 0; si < NELEMS(sets); si++) {
		const struct server_set *set = &sets[si];
		struct ketama_ring *ring = ketama_new(set->s, set->n, NULL);
		memcached_st *mc = lmc_ketama(set->s, set->n);
		size_t per[10] = {0};

		ck_assert_ptr_nonnull(ring);
		for (size_t i = 0; i < NKEYS; i++) {
			size_t ours = ketama_server(ring, keys[i].b, keys[i].len);
			uint32_t ref = memcached_generate_hash(mc, keys[i].b, keys[i].len);

			ck_assert_msg(ours == ref,
			              "set \"%s\", key %zu (%zu bytes): %zu, expected %u",
			              set->name, i, keys[i].len, ours, ref);
			per[ours]++;
		}
		/* Each server with points holds some keys (a duplicate aside):
		 * the ring does not agree by sending everything to one server. */
		for (size_t s = 0; s < set->n; s++)
			if (strcmp(set->name, "2 duplicate") != 0)
				ck_assert_msg((per[s] > 0) == (ketama_points(ring, s) > 0),
				              "set \"%s\": server %zu has %zu points, %zu keys",
				              set->name, s, ketama_points(ring, s), per[s]);
		/* A key named like a point hashes exactly onto that point: the
		 * lookup's "at or after" and the order of tied points show. */
		for (size_t s = 0; s < set->n; s++) {
			for (unsigned i = 0; i < 120; i++) {
				char name[64];
				int len =
				    set->s[s].port == 11211
				        ? snprintf(name, sizeof(name), "%s-%u", set->s[s].host, i)
				        : snprintf(name, sizeof(name), "%s:%u-%u", set->s[s].host,
				                   (unsigned)set->s[s].port, i);
				size_t ours = ketama_server(ring, name, (size_t)len);
				uint32_t ref = memcached_generate_hash(mc, name, (size_t)len);

				ck_assert_msg(ours == ref,
				              "set \"%s\", key \"%s\": %zu, expected %u", set->name,
				              name, ours, ref);
			}
		}
		memcached_free(mc);
		ketama_free(ring);
	}
	free(keys);
}
END_TEST

/* Larger pools, where the float rounding of the point counts shows (25,
 * 47, 50 equal servers get 156 points each, not 160). */
START_TEST(ketama_agrees_large_pools)
{
	static const size_t sizes[] = {24, 25, 47, 50, 64};
	struct key *keys = make_keys(NKEYS, 0x2468u);

	for (size_t z = 0; z < NELEMS(sizes); z++) {
		size_t n = sizes[z];
		struct ketama_server s[64];
		char hosts[64][32];
		struct ketama_ring *ring;
		memcached_st *mc;

		for (size_t i = 0; i < n; i++) {
			snprintf(hosts[i], sizeof(hosts[i]), "10.0.%zu.%zu", i / 8, i % 8 + 1);
			s[i] =
			    (struct ketama_server){hosts[i], (uint16_t)(i % 3 ? 11211 : 11300 + i),
			                           (uint32_t)(z % 2 ? 0 : 1 + i % 4)};
		}
		ring = ketama_new(s, n, NULL);
		ck_assert_ptr_nonnull(ring);
		mc = lmc_ketama(s, n);
		for (size_t i = 0; i < NKEYS; i++)
			ck_assert_msg(ketama_server(ring, keys[i].b, keys[i].len) ==
			                  memcached_generate_hash(mc, keys[i].b, keys[i].len),
			              "%zu servers, key %zu", n, i);
		memcached_free(mc);
		ketama_free(ring);
	}
	free(keys);
}
END_TEST

/* libmemcached turns weighted mode on by itself when a server with weight
 * > 1 is added to a consistent distribution: a client that asks for ketama
 * with MD5 keys but not for weighted mode agrees as well once it gives
 * weights. */
START_TEST(ketama_agrees_weights_imply_weighted)
{
	struct key *keys = make_keys(NKEYS, 0xfeedu);

	for (size_t si = 0; si < NELEMS(sets); si++) {
		const struct server_set *set = &sets[si];
		bool weighted = false;
		struct ketama_ring *ring;
		memcached_st *mc;

		for (size_t s = 0; s < set->n; s++)
			weighted |= set->s[s].weight > 1;
		if (!weighted)
			continue;
		mc = memcached_create(NULL);
		ck_assert_ptr_nonnull(mc);
		ck_assert_int_eq(memcached_behavior_set_distribution(
		                     mc, MEMCACHED_DISTRIBUTION_CONSISTENT_KETAMA),
		                 MEMCACHED_SUCCESS);
		ck_assert_int_eq(memcached_behavior_set_key_hash(mc, MEMCACHED_HASH_MD5),
		                 MEMCACHED_SUCCESS);
		for (size_t s = 0; s < set->n; s++)
			ck_assert_int_eq(memcached_server_add_with_weight(
			                     mc, set->s[s].host, set->s[s].port, set->s[s].weight),
			                 MEMCACHED_SUCCESS);
		ck_assert_uint_eq(memcached_behavior_get(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED),
		                  1);
		ring = ketama_new(set->s, set->n, NULL);
		ck_assert_ptr_nonnull(ring);
		for (size_t i = 0; i < NKEYS; i++)
			ck_assert_msg(ketama_server(ring, keys[i].b, keys[i].len) ==
			                  memcached_generate_hash(mc, keys[i].b, keys[i].len),
			              "set \"%s\", key %zu", set->name, i);
		memcached_free(mc);
		ketama_free(ring);
	}
	free(keys);
}
END_TEST

/*
 * A server left out (ejected) must leave the ring exactly as libmemcached's
 * auto-eject rebuild leaves it: the same as a ring of the others alone, the
 * weights shared out among them. Compared with libmemcached given only the
 * live servers, its indices mapped back.
 */
START_TEST(ketama_live_subset_agrees)
{
	struct key *keys = make_keys(NKEYS, 0xabcdefu);

	for (size_t si = 0; si < NELEMS(sets); si++) {
		const struct server_set *set = &sets[si];

		if (set->n < 2)
			continue;
		for (size_t out = 0; out < set->n; out++) {
			bool live[10];
			struct ketama_server sub[10];
			size_t map[10], nsub = 0;
			struct ketama_ring *ring;
			memcached_st *mc;

			for (size_t s = 0; s < set->n; s++) {
				live[s] = s != out;
				if (live[s]) {
					map[nsub] = s;
					sub[nsub++] = set->s[s];
				}
			}
			ring = ketama_new(set->s, set->n, live);
			ck_assert_ptr_nonnull(ring);
			ck_assert_uint_eq(ketama_points(ring, out), 0);
			mc = lmc_ketama(sub, nsub);
			for (size_t i = 0; i < NKEYS; i += 5) {
				size_t ours = ketama_server(ring, keys[i].b, keys[i].len);
				uint32_t ref = memcached_generate_hash(mc, keys[i].b, keys[i].len);

				ck_assert_msg(ours == map[ref], "set \"%s\" without %zu, key %zu",
				              set->name, out, i);
			}
			memcached_free(mc);
			ketama_free(ring);
		}
	}
	free(keys);
}
END_TEST

START_TEST(modula_agrees_with_libmemcached)
{
	struct key *keys = make_keys(NKEYS, 0x7777u);

	for (size_t si = 0; si < NELEMS(sets); si++) {
		const struct server_set *set = &sets[si];
		memcached_st *mc = lmc_modula(set->s, set->n);

		for (size_t i = 0; i < NKEYS; i++) {
			size_t ours = modula_server(set->n, keys[i].b, keys[i].len);
			uint32_t ref = memcached_generate_hash(mc, keys[i].b, keys[i].len);

			ck_assert_msg(ours == ref,
			              "set \"%s\", key %zu (%zu bytes): %zu, expected %u",
			              set->name, i, keys[i].len, ours, ref);
		}
		memcached_free(mc);
	}
	for (size_t i = 0; i < NKEYS; i++)
		ck_assert_uint_eq(
		    modula_hash(keys[i].b, keys[i].len),
		    memcached_generate_hash_value(keys[i].b, keys[i].len, MEMCACHED_HASH_DEFAULT));
	free(keys);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* pylibmc: the same ring seen from Python */

START_TEST(ketama_agrees_with_pylibmc)
{
	const struct server_set *set = NULL;
	struct key *keys = make_keys(2000, 0x5151u);
	char path[256], cmd[1024], servers[512] = "";
	struct ketama_ring *ring;
	FILE *f;
	size_t i;

	for (i = 0; i < NELEMS(sets); i++)
		if (strcmp(sets[i].name, "5 weighted") == 0)
			set = &sets[i];
	ck_assert_ptr_nonnull(set);
	for (i = 0; i < set->n; i++) {
		size_t used = strlen(servers);

		snprintf(servers + used, sizeof(servers) - used, "%s\"%s:%u:%u\"", i ? ", " : "",
		         set->s[i].host, (unsigned)set->s[i].port,
		         (unsigned)(set->s[i].weight ? set->s[i].weight : 1));
	}
	snprintf(path, sizeof(path), "%s/pylibmc-keys.hex", tu_tmpdir());
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (i = 0; i < 2000; i++) {
		for (size_t j = 0; j < keys[i].len; j++)
			fprintf(f, "%02x", (unsigned char)keys[i].b[j]);
		fputc('\n', f);
	}
	ck_assert_int_eq(fclose(f), 0);
	snprintf(cmd, sizeof(cmd),
	         "/usr/bin/python3 -c 'import pylibmc, sys\n"
	         "mc = pylibmc.Client([%s], behaviors={\"ketama_weighted\": True})\n"
	         "for line in open(sys.argv[1]):\n"
	         "    print(mc.hash(bytes.fromhex(line.strip())))\n' %s",
	         servers, path);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	ring = ketama_new(set->s, set->n, NULL);
	ck_assert_ptr_nonnull(ring);
	for (i = 0; i < 2000; i++) {
		unsigned long ref;

		ck_assert_msg(fscanf(f, "%lu", &ref) == 1, "pylibmc gave %zu answers of 2000", i);
		ck_assert_msg(ketama_server(ring, keys[i].b, keys[i].len) == ref,
		              "key %zu: pylibmc says %lu", i, ref);
	}
	ck_assert_int_eq(pclose(f), 0);
	ketama_free(ring);
	free(keys);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Edges */

START_TEST(ketama_rejects_bad_servers)
{
	char long_host[KETAMA_HOST_MAX + 2];
	struct ketama_server s[2] = {{"ok", 11211, 1}, {NULL, 11211, 1}};

	ck_assert_ptr_null(ketama_new(s, 2, NULL));
	s[1].host = "";
	ck_assert_ptr_null(ketama_new(s, 2, NULL));
	s[1].host = "x";
	s[1].port = 0;
	ck_assert_ptr_null(ketama_new(s, 2, NULL));
	memset(long_host, 'h', sizeof(long_host) - 1);
	long_host[sizeof(long_host) - 1] = '\0';
	s[1].host = long_host;
	s[1].port = 1;
	ck_assert_ptr_null(ketama_new(s, 2, NULL));
	/* The longest name libmemcached takes is fine. */
	long_host[KETAMA_HOST_MAX] = '\0';
	{
		struct ketama_ring *r = ketama_new(s, 2, NULL);

		ck_assert_ptr_nonnull(r);
		ketama_free(r);
	}
}
END_TEST

START_TEST(ketama_no_live_server)
{
	const struct ketama_server s[2] = {{"a", 11211, 1}, {"b", 11211, 1}};
	const bool none[2] = {false, false}, first[2] = {true, false};
	struct ketama_ring *r = ketama_new(s, 2, none);

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ketama_server(r, "k", 1), KETAMA_NONE);
	ketama_free(r);
	r = ketama_new(s, 0, NULL);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(ketama_server(r, "k", 1), KETAMA_NONE);
	ketama_free(r);
	/* One live server takes every key. */
	r = ketama_new(s, 2, first);
	ck_assert_ptr_nonnull(r);
	for (int i = 0; i < 100; i++) {
		char key[16];
		int len = snprintf(key, sizeof(key), "key%d", i);

		ck_assert_uint_eq(ketama_server(r, key, (size_t)len), 0);
	}
	ck_assert_uint_eq(ketama_points(r, 0), 160);
	ketama_free(r);
	ketama_free(NULL);
}
END_TEST

Suite *ketama_suite(void)
{
	Suite *s = suite_create("ketama");
	TCase *tc = tcase_create("md5");

	tcase_add_test(tc, md5_rfc1321_vectors);
	tcase_add_test(tc, md5_agrees_with_libhashkit);
	suite_add_tcase(s, tc);

	tc = tcase_create("fixed");
	tcase_add_test(tc, fixed_hashes);
	tcase_add_test(tc, fixed_placement);
	tcase_add_test(tc, fixed_float_rounding);
	tcase_add_test(tc, ketama_rejects_bad_servers);
	tcase_add_test(tc, ketama_no_live_server);
	suite_add_tcase(s, tc);

	tc = tcase_create("libmemcached");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ketama_agrees_with_libmemcached);
	tcase_add_test(tc, ketama_agrees_large_pools);
	tcase_add_test(tc, ketama_agrees_weights_imply_weighted);
	tcase_add_test(tc, ketama_live_subset_agrees);
	tcase_add_test(tc, modula_agrees_with_libmemcached);
	tcase_add_test(tc, ketama_agrees_with_pylibmc);
	suite_add_tcase(s, tc);
	return s;
}
