/* The agent's lifecycle: see lifecycle.h and mqpipe/runtime.h.
 *
 * Threads: Paho's receive thread appends each message to the durable inbox
 * (session.c); the applier thread owns the store (applier.c); the main
 * thread, here, handles signals, connection retries, metrics and the
 * systemd watchdog. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "applier.h"
#include "clock.h"
#include "deadletter.h"
#include "lifecycle.h"
#include "mqpipe/notify.h"
#include "mqpipe/rxbuf.h"
#include "mqpipe/shard.h"
#include "outbox.h"
#include "session.h"

#define LIFECYCLE__LOCK_WAIT_MS 2000 /* a held state: tried again this long before exit 75 */
#define LIFECYCLE__ROUND_NS 100000000L /* the main loop looks at its timers every 100 ms */

/* Everything one agent process runs. */
struct lifecycle {
	const struct mqp_agent *agent;
	struct mqp_options opts;
	struct mqp_store *store;
	struct mqp_state_lock state_lock; /* mqp_store_lock; {-1, -1} until taken */
	struct mqp_inbox *inbox;
	struct mqp_metrics *metrics;
	struct deadletters deadletters;
	struct outbox *outbox;
	struct session *session;
	struct applier *applier;
	char reply_prefix[1100]; /* response topics must start with it ("" = any) */
	char **subscriptions;    /* what the session subscribes, NULL-terminated */
	int64_t start_us;
};

/* The main loop's timers (monotonic ms). */
struct lifecycle__timers {
	int64_t next_metrics, next_watchdog, next_connect, next_subscribe;
	uint64_t watchdog_us;
	int backoff_s;
};

struct lifecycle__drain {
	struct mqp_inbox *inbox;
	struct applier *applier;
	struct outbox *outbox;
};

/* Nothing left in hand: no record waiting, none being applied, no output
 * unacknowledged. In this order: a record leaves the backlog only once the
 * applier is busy, and it is idle again only once its outputs are in flight. */
static int lifecycle__caught_up(void *arg)
{
	const struct lifecycle__drain *d = arg;
	return mqp_inbox_backlog(d->inbox) == 0 && !applier__busy(d->applier) &&
	       outbox__inflight(d->outbox) == 0;
}

int lifecycle__shutdown(const struct session_ops *session, struct applier *applier,
			struct outbox *outbox, struct mqp_inbox *inbox)
{
	mqp_notify("STOPPING=1");
	mqp_info("stopping", "backlog_bytes=%llu inflight=%ld",
		 (unsigned long long)mqp_inbox_backlog(inbox), outbox__inflight(outbox));
	if (session->online(session->impl)) {
		struct lifecycle__drain d = {inbox, applier, outbox};
		clock__wait_for(lifecycle__caught_up, &d, LIFECYCLE__DRAIN_MS);
		session->say_offline(session->impl, LIFECYCLE__OFFLINE_MS);
	}
	session->disconnect(session->impl, LIFECYCLE__DISCONNECT_MS);
	/* No more messages arrive: let the applier commit the rest and stop. */
	int rc = applier__stop(applier);
	mqp_info("stopped", "outbox_depth=%lld", (long long)outbox__depth(outbox));
	return rc;
}

static void lifecycle__free(struct lifecycle *lc)
{
	applier__free(lc->applier);
	session__free(lc->session); /* before the outbox: no more outcomes arrive */
	outbox__free(lc->outbox);
	if (lc->agent && lc->agent->fini)
		lc->agent->fini(lc->agent->state);
	mqp_inbox_close(lc->inbox);
	mqp_store_close(lc->store);
	/* Last, after SQLite closed the database: closing the lock's descriptor of
	 * the database file earlier would drop SQLite's own POSIX locks on it. */
	mqp_store_unlock(&lc->state_lock);
	mqp_metrics_free(lc->metrics);
	for (size_t i = 0; lc->subscriptions && lc->subscriptions[i]; i++)
		free(lc->subscriptions[i]);
	free(lc->subscriptions);
}

/* Opens the store and the inbox. The state's directory must exist (only
 * the default ./var is made), and the lock is taken before the database or
 * the inbox is opened, so a second agent on the same files touches nothing. */
static int lifecycle__open_state(struct lifecycle *lc)
{
	int rc;
	int64_t applied = 0;
	char inbox_path[1100];
	if ((rc = mqp_store_check_dir(lc->opts.db_path, lc->opts.db_default_var)) ||
	    (rc = mqp_store_lock(lc->opts.db_path, LIFECYCLE__LOCK_WAIT_MS, &lc->state_lock)))
		return rc;
	if ((rc = mqp_store_open(&lc->store, lc->opts.db_path, lc->opts.sync_full, lc->agent->name,
				 lc->agent->migrations, lc->agent->n_migrations)))
		return rc;
	mqp_store_deadletter_bound(lc->store, lc->opts.deadletter_max_bytes);
	if (lc->agent->init && (rc = lc->agent->init(lc->agent->state, lc->store))) {
		mqp_error("agent_init_failed", "msg=\"%s\"", mqp_strerror(rc));
		return rc;
	}
	if ((rc = mqp_store_meta_get(lc->store, "inbox_seq", &applied)))
		return rc;
	snprintf(inbox_path, sizeof(inbox_path), "%s.inbox", lc->opts.db_path);
	return mqp_inbox_open(&lc->inbox, inbox_path, (uint64_t)applied, lc->opts.sync_full);
}

/* Appends a copy of filter to lc->subscriptions (room was made). */
static int lifecycle__add_subscription(struct lifecycle *lc, size_t *n, const char *filter)
{
	if (!(lc->subscriptions[*n] = strdup(filter)))
		return MQP_ERR_NOMEM;
	(*n)++;
	return MQP_OK;
}

/* The filters the session subscribes (README "Scaling out"): the agent's,
 * each under shard/<K>/ when it owns shard K of several; its plain ones as
 * they are; and with several shards, the republish requests every agent
 * answers. Returns 0, MQP_ERR_NOMEM or MQP_ERR_INVAL (a filter too long). */
static int lifecycle__subscriptions(struct lifecycle *lc)
{
	const struct mqp_agent *ag = lc->agent;
	const struct mqp_options *o = &lc->opts;
	size_t total = 2, n = 0;
	for (size_t i = 0; ag->subscriptions && ag->subscriptions[i]; i++)
		total++;
	for (size_t i = 0; ag->plain_subscriptions && ag->plain_subscriptions[i]; i++)
		total++;
	if (!(lc->subscriptions = calloc(total, sizeof(char *))))
		return MQP_ERR_NOMEM;
	int rc = MQP_OK;
	char topic[1024];
	int shard_inputs = ag->sharded && o->shards > 1;
	for (size_t i = 0; !rc && ag->subscriptions && ag->subscriptions[i]; i++) {
		const char *f = ag->subscriptions[i];
		if (shard_inputs && (rc = mqp_shard_topic((uint32_t)o->shards, (uint32_t)o->shard, f,
							  topic, sizeof(topic))) == MQP_OK)
			f = topic;
		rc = rc ? rc : lifecycle__add_subscription(lc, &n, f);
	}
	for (size_t i = 0; !rc && ag->plain_subscriptions && ag->plain_subscriptions[i]; i++)
		rc = lifecycle__add_subscription(lc, &n, ag->plain_subscriptions[i]);
	if (!rc && o->shards > 1)
		rc = lifecycle__add_subscription(lc, &n, MQP_REPUBLISH_TOPIC "/+");
	return rc;
}

/* The session expiry the agent asked for, in whole seconds (at least 1), or
 * 0 for a session that never expires. */
static int64_t lifecycle__expiry_s(const struct mqp_agent *agent)
{
	if (!agent->session_expiry_ms)
		return 0;
	int64_t s = *agent->session_expiry_ms / 1000;
	return s < 1 ? 1 : s;
}

/* Opens everything that does not need the broker. Returns 0 or an error. */
static int lifecycle__open(struct lifecycle *lc)
{
	int rc;
	lc->start_us = mqp_now_us();
	if ((rc = mqp_metrics_new(&lc->metrics)) || (rc = lifecycle__open_state(lc)))
		return rc;
	deadletter__init(&lc->deadletters, lc->store, lc->metrics,
			 (long long)lc->opts.deadletter_max_bytes, lc->opts.deadletter_max_age_ms);
	/* Replies go only under the reply prefix, which takes the --prefix like
	 * every topic the agent publishes (README "Ingestion"). */
	if (lc->agent->reply_prefix && lc->agent->reply_prefix[0] &&
	    (rc = mqp_options_topic(&lc->opts, lc->agent->reply_prefix, lc->reply_prefix,
				    sizeof(lc->reply_prefix))))
		return rc;
	if ((rc = lifecycle__subscriptions(lc)))
		return rc;
	struct session_parts sp = {lc->agent->name, (const char *const *)lc->subscriptions,
				   &lc->opts, lc->inbox, lc->metrics, NULL,
				   lifecycle__expiry_s(lc->agent)};
	if ((rc = session__new(&lc->session, &sp)))
		return rc;
	if ((rc = outbox__new(&lc->outbox, lc->store, lc->metrics, &lc->deadletters,
			      session__ops(lc->session), lc->opts.republish_window_s)))
		return rc;
	session__set_outbox(lc->session, lc->outbox);
	struct applier_parts ap = {lc->agent, &lc->opts, lc->reply_prefix, lc->store, lc->inbox,
				   lc->metrics, lc->outbox, &lc->deadletters,
				   session__ops(lc->session), lc->start_us};
	return applier__new(&lc->applier, &ap);
}

/* Logs why the start failed and returns the exit status (README "Running
 * it"): 75 another agent holds the state, 73 the state cannot be created or
 * opened, 70 anything else. */
static int lifecycle__start_failed(int rc)
{
	int code = rc == MQP_ERR_BUSY ? MQP_EX_TEMPFAIL
		   : rc == MQP_ERR_IO ? MQP_EX_CANTCREAT : MQP_EX_SOFTWARE;
	mqp_error("start_failed", "msg=\"%s\" exit=%d",
		  code == MQP_EX_TEMPFAIL    ? "the state is in use by another agent"
		  : code == MQP_EX_CANTCREAT ? "the state cannot be created or opened"
					     : mqp_strerror(rc),
		  code);
	return code;
}

/* What is said once at start: the version and where the state is, and a
 * client id the secure profile would rename. */
static void lifecycle__say_starting(const struct lifecycle *lc)
{
	const struct mqp_options *o = &lc->opts;
	/* The secure profile replaces a client's id by its user name: the session
	 * would not be this one's, and the status topic would be refused. */
	if (o->has_username && strcmp(o->client_id, o->username) != 0)
		mqp_warn("client_id_not_username",
			 "client_id=%s username=%s effect=\"a broker with use_username_as_clientid "
			 "(the secure profile) renames the session to %s and refuses "
			 "mqpipe/status/%s\" fix=\"leave -i out, or give the user name\"",
			 o->client_id, o->username, o->username, o->client_id);
	mqp_info("starting", "version=%s client_id=%s broker=%s db=%s prefix=\"%s\" pid=%d",
		 MQPIPE_VERSION, o->client_id, o->broker, o->db_path, o->prefix, (int)getpid());
}

/* Publishes the retained metrics report. */
static void lifecycle__publish_metrics(struct lifecycle *lc)
{
	double uptime = (double)(mqp_now_us() - lc->start_us) / 1e6;
	cJSON *report = mqp_metrics_report(lc->metrics, lc->agent->name, lc->opts.client_id,
					   outbox__depth(lc->outbox), uptime);
	char *text = report ? cJSON_PrintUnformatted(report) : NULL;
	if (text)
		session__publish_metrics(lc->session, text);
	else
		mqp_error("metrics_failed", "msg=\"out of memory\"");
	free(text);
	cJSON_Delete(report);
}

/* One round of the main loop's timers at monotonic time now. */
static void lifecycle__round(struct lifecycle *lc, struct lifecycle__timers *t, int64_t now)
{
	if (session__take_connect_failed(lc->session)) {
		mqp_warn("broker_unreachable", "broker=%s retry_in_s=%d", lc->opts.broker, t->backoff_s);
		t->next_connect = now + t->backoff_s * 1000LL;
		t->backoff_s = t->backoff_s < 30 ? t->backoff_s * 2 : 30;
	}
	if (t->next_connect && now >= t->next_connect) {
		t->next_connect = 0;
		session__connect(lc->session);
	}
	if (session__ever_online(lc->session))
		t->backoff_s = 1;
	if (!t->next_subscribe && session__take_subscribe_failed(lc->session))
		t->next_subscribe = now + 2000;
	if (t->next_subscribe && now >= t->next_subscribe) {
		t->next_subscribe = 0;
		session__resubscribe(lc->session);
	}
	if (now >= t->next_metrics) {
		t->next_metrics = now + lc->opts.metrics_interval_s * 1000LL;
		if (session__online(lc->session))
			lifecycle__publish_metrics(lc);
	}
	/* Pet the watchdog only while the applier keeps coming round. */
	if (t->watchdog_us && now >= t->next_watchdog) {
		t->next_watchdog = now + (int64_t)(t->watchdog_us / 2000);
		if (now - applier__heartbeat_ms(lc->applier) < (int64_t)(t->watchdog_us / 1000))
			mqp_notify("WATCHDOG=1");
	}
}

#define LIFECYCLE__TAKEN_OVER (-1)

/* Runs the main loop until SIGTERM or SIGINT (returns it), until the
 * applier failed (returns 0), or until another process took the session
 * over (returns LIFECYCLE__TAKEN_OVER). */
static int lifecycle__loop(struct lifecycle *lc, const sigset_t *sigs)
{
	int64_t now = clock__mono_ms();
	struct lifecycle__timers t = {now + lc->opts.metrics_interval_s * 1000LL, now, 0, 0,
				      mqp_notify_watchdog_usec(), 1};
	for (;;) {
		struct timespec round = {0, LIFECYCLE__ROUND_NS};
		int sig = sigtimedwait(sigs, NULL, &round);
		if (sig == SIGTERM || sig == SIGINT)
			return sig;
		if (applier__failed(lc->applier))
			return 0;
		if (session__taken_over(lc->session))
			return LIFECYCLE__TAKEN_OVER;
		lifecycle__round(lc, &t, clock__mono_ms());
	}
}

/* Runs the opened agent: leftovers out, applier and connect started, the
 * main loop, then the clean stop. Returns the exit status. */
static int lifecycle__run(struct lifecycle *lc, const sigset_t *sigs)
{
	lifecycle__say_starting(lc);
	/* Outputs left in the outbox by the last run: published again (Paho holds
	 * them until the first connect). */
	int64_t leftover = outbox__depth(lc->outbox);
	if (leftover > 0) {
		mqp_info("outbox_replay", "rows=%lld", (long long)leftover);
		outbox__send_all(lc->outbox);
	}
	if (applier__start(lc->applier)) {
		mqp_error("start_failed", "msg=\"cannot start the applier thread\" exit=%d",
			  MQP_EX_SOFTWARE);
		return MQP_EX_SOFTWARE;
	}
	session__connect(lc->session);
	int sig = lifecycle__loop(lc, sigs);
	if (!sig) {
		/* The store failed (the applier said so): stop at once, without
		 * acknowledging more or disconnecting, so the broker publishes the
		 * last will (offline). What was acknowledged is in the inbox, and
		 * unacknowledged outputs in the outbox; both resume at the next
		 * start, which systemd makes (Restart=on-failure). */
		_exit(MQP_EX_SOFTWARE);
	}
	if (sig == LIFECYCLE__TAKEN_OVER) {
		/* Another process has this client id, so its session and inputs
		 * (README "Moving a shard"). Stopping here also stops Paho's
		 * reconnects (they would take the session back a second later);
		 * no offline status: the status topic is the other process's now.
		 * What was acknowledged is applied; unsent outputs stay in the
		 * outbox. EX_CONFIG: systemd does not restart it. */
		mqp_error("session_taken_over",
			  "client_id=%s msg=\"another process connected with this client id: two "
			  "instances of one agent or shard would each apply part of its inputs\" "
			  "action=stop exit=%d",
			  lc->opts.client_id, MQP_EX_CONFIG);
		lifecycle__shutdown(session__ops(lc->session), lc->applier, lc->outbox, lc->inbox);
		return MQP_EX_CONFIG;
	}
	mqp_info("signal", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	return lifecycle__shutdown(session__ops(lc->session), lc->applier, lc->outbox, lc->inbox)
		       ? MQP_EX_SOFTWARE
		       : 0;
}

/* Ends a run that never opened anything (--help, --version, a usage
 * error): the agent's state is freed as at a clean stop. Returns code. */
static int lifecycle__exit_early(const struct mqp_agent *agent, int code)
{
	if (agent->fini)
		agent->fini(agent->state);
	return code;
}

int mqp_agent_main(const struct mqp_agent *agent, int argc, char **argv)
{
	static struct lifecycle lc; /* one agent per process; too big for the stack */
	memset(&lc, 0, sizeof(lc));
	lc.state_lock = (struct mqp_state_lock){-1, -1};
	lc.agent = agent;
	lc.opts.instances_per_host = agent->instances_per_host;
	lc.opts.sharded = agent->sharded;
	lc.opts.max_payload_default = agent->max_payload;
	switch (mqp_options_parse(&lc.opts, agent->name, argc, argv, agent->options,
				  agent->n_options, agent->options_ctx, stdout, stderr)) {
	case MQP_PARSE_EXIT_OK: return lifecycle__exit_early(agent, 0);
	case MQP_PARSE_USAGE: return lifecycle__exit_early(agent, MQP_EX_USAGE);
	case MQP_PARSE_RUN: break;
	}
	if (agent->needs_shards && lc.opts.shards < 2) {
		fprintf(stderr, "mqpipe-%s: --shards S above 1 is needed: with one shard every input "
				"is already on its shard's topic (see --help)\n", agent->name);
		return lifecycle__exit_early(agent, MQP_EX_USAGE);
	}
	if (!lc.opts.max_payload) /* no --max-payload: the agent's own default, else the common one */
		lc.opts.max_payload = agent->max_payload ? agent->max_payload : MQP_MAX_PAYLOAD_DEFAULT;
	mqp_log_init(lc.opts.log_level, lc.opts.log_format, agent->name);
	mqp_rxbuf_coalesce(agent->coalesce_reads);

	/* Signals are taken synchronously by the main loop; every thread started
	 * from here on inherits the blocked mask. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	int rc = lifecycle__open(&lc);
	int code = rc ? lifecycle__start_failed(rc) : lifecycle__run(&lc, &sigs);
	lifecycle__free(&lc);
	return code;
}
