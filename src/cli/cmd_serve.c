/* moat serve: the HTTP gateway. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "moat/app.h"
#include "moat/detect.h"
#include "moat/gateway.h"

static void help(void)
{
	printf("usage: moat serve [--data DIR] [--listen HOST:PORT] [--threads N] [--no-detect]\n"
	       "                  [--detect-interval MS] [--replay-clock]\n\n"
	       "Serves the gateway API (docs/openapi.yaml, also at /openapi.json) until SIGTERM\n"
	       "or SIGINT; in-flight requests finish and the event log is flushed first.\n"
	       "SIGHUP reloads <data>/policy.conf and <data>/rules.conf (a bad file is refused;\n"
	       "the old one stays; the detector keeps its windows unless the rules, a quota\n"
	       "or the time zone changed).\n"
	       "The detector runs over new ledger entries five times a second; its actions\n"
	       "(throttle, force masking, suspend) apply to a principal's next request;\n"
	       "--no-detect leaves detection to `moat alerts scan` run elsewhere;\n"
	       "--detect-interval sets the tick (50..60000 ms, default 200). With [detect]\n"
	       "webhook set, new alerts are POSTed there, signed (docs/config.md).\n"
	       "--replay-clock is for replaying a simulated world (`moat replay`) only: a\n"
	       "request's Moat-Replay-Time header (RFC 3339) becomes its \"now\" (policy,\n"
	       "relation windows, quotas, virtual numbers, sessions, ledger entry time) and\n"
	       "Moat-Replay-Client-IP its source address; the ledger entries it makes are\n"
	       "flagged replayed. Without it both headers are ignored.\n"
	       "Listen address and threads default to moat.conf [server] (127.0.0.1:8080).\n");
}

/* SIGHUP: re-reads <data>/moat.conf (and the MOAT_* environment over it). A bad
 * file changes nothing. The log level and the alert webhook change at once; the
 * settings the listening server was built with are reported as needing a
 * restart rather than half-applied. */
static void reload_config(moat_app_t *a, moat_webhook_t **hook)
{
	moat_config_t c;
	moat_config_defaults(&c);
	moat_error_t e = {0};
	char path[1200];
	if (moat_path_join(path, sizeof path, a->data_dir, "moat.conf") != MOAT_OK)
		return;
	moat_err_t rc = moat_config_load(&c, path, &e);
	if (rc == MOAT_ENOTFOUND)
		rc = MOAT_OK;
	if (rc == MOAT_OK)
		rc = moat_config_env(&c, &e);
	if (rc != MOAT_OK) {
		moat_log(MOAT_LOG_ERROR, "config_reload_failed",
			 "moat.conf%s%ld %s%s%s; the running configuration stays", e.line ? ":" : "",
			 e.line, e.field, e.field[0] ? ": " : "", e.msg);
		return;
	}
	if (c.log_level != a->config.log_level) {
		a->config.log_level = c.log_level;
		moat_log_set_level(c.log_level);
	}
	if (strcmp(c.webhook, a->config.webhook) != 0) {
		moat_webhook_t *fresh = NULL;
		if (c.webhook[0] && moat_webhook_start(a->data_dir, c.webhook, &fresh, &e) != MOAT_OK) {
			moat_log(MOAT_LOG_ERROR, "config_reload_failed",
				 "detect.webhook: %s; the previous webhook stays", e.msg);
		} else {
			moat_webhook_stop(*hook);
			*hook = fresh;
			memcpy(a->config.webhook, c.webhook, sizeof c.webhook);
			moat_log(MOAT_LOG_INFO, "webhook_reloaded", "alert webhook %s",
				 c.webhook[0] ? "changed" : "turned off");
		}
	}
	static const char *const restart = "changed in moat.conf; takes effect when moat serve restarts";
	if (strcmp(c.listen, a->config.listen) != 0)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "server.listen %s", restart);
	if (c.threads != a->config.threads)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "server.threads %s", restart);
	if (c.max_body != a->config.max_body)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "server.max_body %s", restart);
	if (c.request_timeout_s != a->config.request_timeout_s)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "server.timeout %s", restart);
	if (strcmp(c.ledger_origin, a->config.ledger_origin) != 0 ||
	    c.checkpoint_interval_ms != a->config.checkpoint_interval_ms)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "[ledger] %s", restart);
	if (strcmp(c.virtual_pool, a->config.virtual_pool) != 0 ||
	    c.virtual_grace_days != a->config.virtual_grace_days)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "[virtual] %s", restart);
	if (c.case_window_days != a->config.case_window_days)
		moat_log(MOAT_LOG_WARN, "config_needs_restart", "trace.case_window_days %s", restart);
}

/* While reads stream in, the detector judges them about five times a second but
 * commits its cursor (a store write, which makes every server thread's SQLite
 * connection drop its page cache) at most this often unless it raised alerts. */
#define DETECT_CURSOR_MS 5000
/* Entries a detector step reads at most (about 20 – 60 ms of work): a start-up
 * replay of a long ledger goes in such steps, signals served in between. */
#define DETECT_STEP_ENTRIES 65536

static void runner_setup(moat_detect_runner_t *r)
{
	moat_detect_runner_cursor_interval(r, DETECT_CURSOR_MS);
	moat_detect_runner_budget(r, DETECT_STEP_ENTRIES);
}

/* Commits the cursor of what the detector judged (when it is replaced or at
 * shutdown); a failure only means those entries are judged again next start. */
static void sync_detector(moat_detect_runner_t *runner)
{
	moat_error_t e = {0};
	if (runner && moat_detect_runner_sync(runner, &e) != MOAT_OK)
		moat_log(MOAT_LOG_WARN, "detect_sync_failed", "%s", e.msg);
}

int cmd_serve(int argc, char **argv)
{
	enum { OPT_LISTEN = 1, OPT_THREADS, OPT_NO_DETECT, OPT_DETECT_INTERVAL, OPT_REPLAY_CLOCK };
	bool detect = true;
	long detect_ms = 200;
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, OPT_LISTEN},
	    {"threads", required_argument, NULL, OPT_THREADS},
	    {"no-detect", no_argument, NULL, OPT_NO_DETECT},
	    {"detect-interval", required_argument, NULL, OPT_DETECT_INTERVAL},
	    {"replay-clock", no_argument, NULL, OPT_REPLAY_CLOCK},
	    CLI_COMMON_LONGOPTS,
	    {0, 0, 0, 0}};
	cli_common_t c;
	cli_common_init(&c);
	moat_gateway_opts_t go;
	memset(&go, 0, sizeof go);
	int opt;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			help();
			return CLI_OK;
		case OPT_LISTEN:
			go.listen = optarg;
			break;
		case OPT_NO_DETECT:
			detect = false;
			break;
		case OPT_REPLAY_CLOCK:
			go.replay_clock = true;
			break;
		case OPT_DETECT_INTERVAL: {
			char *end;
			detect_ms = strtol(optarg, &end, 10);
			if (*end || end == optarg || detect_ms < 50 || detect_ms > 60000)
				return cli_usage("serve", "--detect-interval must be 50..60000 ms");
			break;
		}
		case OPT_THREADS: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 64)
				return cli_usage("serve", "--threads must be 1..64");
			go.threads = (int)n;
			break;
		}
		default:
			if (!cli_common_opt(&c, opt, optarg))
				return cli_bad_option("serve");
		}
	}
	if (optind != argc)
		return cli_usage("serve", "unexpected argument \"%s\"", argv[optind]);

	/* Signals are taken synchronously by this thread; every server thread starts
	 * with them blocked. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	moat_error_t e = {0};
	moat_app_t *a = NULL;
	moat_journal_t *j = NULL;
	moat_gateway_t *g = NULL;
	int ret = CLI_FAIL;
	if (moat_app_open(c.data_dir, 0, &a, &e) != MOAT_OK)
		goto done;
	if (a->ledger) {
		moat_gateway_ledger_sink(a->ledger, &go.sink);
		go.ledger = a->ledger;
	} else {
		/* A data directory made before the ledger existed: events go to a
		 * durable journal beside it. */
		char path[1200];
		if (moat_path_join(path, sizeof path, a->data_dir, "events.jsonl") != MOAT_OK) {
			moat_error_set(&e, MOAT_ELIMIT, NULL, "data directory path too long");
			goto done;
		}
		if (moat_journal_open(path, &j, &e) != MOAT_OK)
			goto done;
		moat_journal_sink(j, &go.sink);
		moat_log(MOAT_LOG_WARN, "no_ledger",
			 "no ledger in the data directory; events go to events.jsonl");
	}
	go.fail_flag_path = getenv("MOAT_TEST_FAIL_WRITES");
	if (moat_gateway_start(a, &go, &g, &e) != MOAT_OK)
		goto done;
	moat_log(MOAT_LOG_INFO, "serve_started", "listening on port %d", moat_gateway_port(g));
	fprintf(stderr, "moat serve: listening on port %d\n", moat_gateway_port(g));
	if (go.replay_clock) {
		moat_log(MOAT_LOG_WARN, "replay_clock",
			 "replay clock on: Moat-Replay-Time and Moat-Replay-Client-IP are trusted; "
			 "for replaying simulated worlds only");
		fprintf(stderr, "moat serve: replay clock on (Moat-Replay-Time is trusted; "
				"never use this for real traffic)\n");
	}
	/* Between signals, this thread runs the detector over what the ledger
	 * gained (about once a second, or every --detect-interval), so its actions reach the
	 * gateway while a bulk pull is still going on. It uses the app's own store handle, which
	 * the server threads never touch. */
	bool warned = false;
	/* The engine stays resident between ticks, so each tick reads only what
	 * the ledger gained (the first one replays it to rebuild the windows). */
	moat_detect_runner_t *runner = NULL;
	moat_webhook_t *hook = NULL;
	if (a->config.webhook[0] &&
	    moat_webhook_start(a->data_dir, a->config.webhook, &hook, &e) != MOAT_OK)
		goto done;
	bool more = false; /* the detector's last step stopped at its budget */
	for (;;) {
		struct timespec tick = {detect_ms / 1000, (detect_ms % 1000) * 1000000L};
		if (more)
			tick = (struct timespec){0, 0}; /* signals first, then the next step */
		int sig = sigtimedwait(&set, NULL, &tick);
		if (sig < 0) {
			moat_error_t de = {0};
			moat_err_t drc = MOAT_OK;
			moat_detect_stats_t ds = {0};
			if (detect && a->ledger && !runner &&
			    (drc = moat_detect_runner_open(a, &runner, &de)) == MOAT_OK)
				runner_setup(runner);
			if (drc == MOAT_OK && runner)
				drc = moat_detect_runner_step(runner, &ds, &de);
			more = drc == MOAT_OK && ds.more;
			if (detect && a->ledger)
				moat_gateway_detect_progress(g, ds.judged, ds.replay_left,
							     ds.alerts, ds.actions, drc == MOAT_OK);
			moat_webhook_poke(hook);
			if (drc != MOAT_OK && !warned) {
				moat_log(MOAT_LOG_WARN, "detect_failed", "%s", de.msg);
				warned = true;
			}
			continue;
		}
		if (sig == SIGHUP) {
			reload_config(a, &hook);
			moat_error_t re = {0};
			bool policy_ok = moat_gateway_reload(g, &re) == MOAT_OK;
			if (!policy_ok)
				moat_log(MOAT_LOG_ERROR, "reload_failed", "%s", re.msg);
			else
				moat_log(MOAT_LOG_INFO, "reloaded", "policy reloaded");
			/* New rules take effect only if the whole file is valid; the
			 * fresh engine rebuilds its windows from the ledger on its first
			 * tick and re-raises nothing already stored. With the same rules
			 * and policy quotas the running engine stays (no replay). */
			moat_detect_runner_t *fresh = NULL;
			moat_error_t de = {0};
			if (detect && a->ledger && !policy_ok) {
				/* The gateway keeps the policy it runs; so does the
				 * detector (its quotas), and the rules with it. */
				moat_log(MOAT_LOG_ERROR, "rules_reload_skipped",
					 "policy.conf refused: the detector keeps its rules and "
					 "quotas until a valid policy is loaded");
			} else if (detect && a->ledger) {
				if (moat_detect_runner_open(a, &fresh, &de) != MOAT_OK) {
					moat_log(MOAT_LOG_ERROR, "rules_reload_failed",
						 "%s; the previous rules stay in force", de.msg);
				} else if (moat_detect_runner_same_inputs(runner, fresh)) {
					moat_detect_runner_free(fresh);
					moat_log(MOAT_LOG_INFO, "rules_unchanged",
						 "detection rules and policy quotas unchanged: the "
						 "detector keeps its windows");
				} else {
					runner_setup(fresh);
					more = false;
					sync_detector(runner);
					moat_detect_runner_free(runner);
					runner = fresh;
					warned = false;
					moat_log(MOAT_LOG_INFO, "rules_reloaded", "detection rules reloaded");
				}
			}
			continue;
		}
		break;
	}
	sync_detector(runner);
	moat_detect_runner_free(runner);
	moat_webhook_stop(hook);
	moat_log(MOAT_LOG_INFO, "serve_stopping", "shutting down");
	ret = CLI_OK;
done:
	moat_gateway_stop(g);
	moat_journal_close(j);
	moat_app_close(a);
	return ret == CLI_OK ? CLI_OK : cli_fail("serve", &e);
}
