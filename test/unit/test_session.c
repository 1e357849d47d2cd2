/* The broker session (agents/lib/session.h) without a broker: the filters
 * it subscribes to, and a connect that fails. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/log.h"
#include "session.h"

static struct mqp_options opts;

static void setup(void)
{
	memset(&opts, 0, sizeof(opts));
	strcpy(opts.prefix, "site1");
	mqp_log_init(MQP_LOG_ERROR, MQP_LOG_KV, "test");
}

TestSuite(session, .init = setup);

Test(session, a_filter_takes_the_prefix)
{
	char f[256];
	cr_assert_eq(session__filter(&opts, "compute.done", f, sizeof(f)), 0);
	cr_assert_str_eq(f, "site1/compute.done");
}

Test(session, a_shared_subscription_keeps_its_group_in_front_of_the_prefix)
{
	char f[256];
	cr_assert_eq(session__filter(&opts, "$share/workers/compute.request", f, sizeof(f)), 0);
	cr_assert_str_eq(f, "$share/workers/site1/compute.request");
}

Test(session, without_a_prefix_a_filter_is_itself)
{
	char f[256];
	opts.prefix[0] = '\0';
	cr_assert_eq(session__filter(&opts, "alerts/#", f, sizeof(f)), 0);
	cr_assert_str_eq(f, "alerts/#");
}

Test(session, a_shared_subscription_without_a_topic_or_too_long_is_refused)
{
	char f[32];
	cr_assert_eq(session__filter(&opts, "$share/workers", f, sizeof(f)), MQP_ERR_INVAL);
	cr_assert_eq(session__filter(&opts, "$share/workers/a-topic-much-too-long-for-this", f,
				     sizeof(f)),
		     MQP_ERR_INVAL);
}

Test(session, a_connect_to_a_closed_port_is_reported_as_failed)
{
	static const char *const subs[] = {"in", NULL};
	/* Port 1 on loopback: nobody listens there (root-only, never a broker). */
	strcpy(opts.broker, "tcp://127.0.0.1:1");
	strcpy(opts.client_id, "test-session");
	struct session_parts p = {"test", subs, &opts, NULL, NULL, NULL, 0};
	struct session *s;
	cr_assert_eq(session__new(&s, &p), 0);
	cr_assert_eq(session__connect(s), 0);
	int failed = 0;
	for (int i = 0; i < 1000 && !failed; i++, usleep(10000))
		failed = session__take_connect_failed(s);
	cr_assert(failed, "the failure reaches the lifecycle");
	cr_assert_not(session__online(s));
	cr_assert_not(session__take_connect_failed(s), "once per failure");
	session__free(s);
}
