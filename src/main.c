/* coalesced: command line, configuration loading, and the event loop. */
#include "config.h"
#include "log.h"
#include "daemon.h"

#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: coalesced [-c FILE] [-o SECTION.KEY=VALUE]... [-t] [-V] [-h]\n"
	        "  -c FILE   configuration file (default %s if it exists)\n"
	        "  -o S.K=V  override one setting; repeatable, applied after the file\n"
	        "  -t        check the configuration and exit\n"
	        "  -V        print the version and exit\n"
	        "  -h        print this help and exit\n",
	        CONFIG_DEFAULT_PATH);
}

/* err holds one error a line: each is printed as a line of its own. */
static void print_errors(const char *err)
{
	while (*err) {
		size_t n = strcspn(err, "\n");
		fprintf(stderr, "coalesced: %.*s\n", (int)n, err);
		err += n + (err[n] == '\n');
	}
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	char **overrides = calloc((size_t)argc, sizeof(char *));
	int noverrides = 0, opt, rc;
	bool test_only = false;
	struct config cfg;
	struct daemon d;
	struct log boot = {.level = LVL_INFO};
	char err[16384];

	if (!overrides)
		return EXIT_START;
	opterr = 0;
	while ((opt = getopt(argc, argv, ":c:o:tVh")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 'o':
			if (!config_override_wellformed(optarg)) {
				fprintf(stderr, "coalesced: -o %s: expected SECTION.KEY=VALUE\n",
				        optarg);
				usage(stderr);
				free(overrides);
				return EXIT_USAGE;
			}
			overrides[noverrides++] = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("coalesced %s\n", COALESCED_VERSION);
			free(overrides);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			free(overrides);
			return EXIT_OK;
		case ':':
			fprintf(stderr, "coalesced: option -%c needs an argument\n", optopt);
			usage(stderr);
			free(overrides);
			return EXIT_USAGE;
		default:
			fprintf(stderr, "coalesced: unknown option -%c\n", optopt);
			usage(stderr);
			free(overrides);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "coalesced: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		free(overrides);
		return EXIT_USAGE;
	}

	config_init(&cfg);
	if (!path && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = CONFIG_DEFAULT_PATH;
	/* Every error of the file and of each -o, not just the first. */
	rc = path ? config_load_file(&cfg, path, err, sizeof(err)) : 0;
	if (rc < 0)
		print_errors(err);
	for (int i = 0; i < noverrides; i++) {
		if (config_override(&cfg, overrides[i], err, sizeof(err)) < 0) {
			print_errors(err);
			rc = -1;
		}
	}
	if (rc < 0) {
		config_free(&cfg);
		free(overrides);
		return EXIT_CONFIG;
	}
	if (test_only) {
		fprintf(stderr, "configuration ok\n");
		config_free(&cfg);
		free(overrides);
		return EXIT_OK;
	}

	/* A client that leaves must not kill the daemon on write. */
	signal(SIGPIPE, SIG_IGN);
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	if (!loop) {
		log_error(&boot, "cannot start the event loop");
		config_free(&cfg);
		free(overrides);
		return EXIT_START;
	}
	rc = daemon_init(&d, loop, &cfg, path, overrides, noverrides);
	if (rc == EXIT_OK) {
		daemon_run(&d);
		log_info(&d.log, "stopped");
	}
	/* Stopping the signal watchers restores the default actions: a second
	 * SIGTERM arriving now would kill us instead of letting us exit 0. */
	{
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGHUP);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	daemon_destroy(&d);
	ev_loop_destroy(loop);
	free(overrides);
	return rc;
}
