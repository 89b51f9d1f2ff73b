/*
 * check_main: the one test runner. Unit suites run in-process; integration
 * suites start real memcached, the fake upstream and coalesced. Check prints
 * the summary line; the exit status is non-zero on any failure or on a
 * missing suite.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITES(X)                                                                                  \
	X(proto_client_suite)                                                                      \
	X(mcreply_suite)                                                                           \
	X(proto_resp_suite)                                                                        \
	X(config_suite)                                                                            \
	X(coalesce_suite)                                                                          \
	X(cli_suite)                                                                               \
	X(conformance_suite)                                                                       \
	X(proxy_suite)                                                                             \
	X(faults_suite)                                                                            \
	X(limits_suite)                                                                            \
	X(service_suite)                                                                           \
	X(metrics_suite)                                                                           \
	X(ops_suite)                                                                               \
	X(clients_suite)                                                                           \
	X(reload_suite)                                                                            \
	X(memory_suite)                                                                            \
	X(stop_suite)                                                                              \
	X(ketama_suite)                                                                            \
	X(pool_suite)                                                                              \
	X(pg_codec_suite)                                                                          \
	X(pg_pipeline_suite)                                                                       \
	X(postgres_suite)                                                                          \
	X(redis_suite)                                                                             \
	X(demo_suite)                                                                              \
	X(writes_suite)                                                                            \
	X(threads_suite)

#define DECLARE(name) Suite *name(void);
SUITES(DECLARE)

int main(int argc, char **argv)
{
	SRunner *sr = srunner_create(NULL);
	const char *only = argc > 1 ? argv[1] : NULL;
	int failed;

#define ADD(name)                                                                                  \
	if (!only || strstr(#name, only))                                                          \
		srunner_add_suite(sr, name());
	SUITES(ADD)
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
