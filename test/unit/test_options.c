/* The common flags (mqpipe/options.h). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mqpipe/error.h"
#include "mqpipe/options.h"

static FILE *out, *err;
static char *out_buf, *err_buf;
static size_t out_len, err_len;

static void setup(void)
{
	unsetenv("MQPIPE_BROKER");
	unsetenv("STATE_DIRECTORY");
	unsetenv("MQPIPE_USERNAME");
	unsetenv("MQPIPE_PASSWORD_FILE");
	unsetenv("MQPIPE_CAFILE");
	unsetenv("MQPIPE_CERT");
	unsetenv("MQPIPE_KEY");
	unsetenv("MQPIPE_SHARDS");
	out = open_memstream(&out_buf, &out_len);
	err = open_memstream(&err_buf, &err_len);
}

static void teardown(void)
{
	fclose(out);
	fclose(err);
	free(out_buf);
	free(err_buf);
}

TestSuite(options, .init = setup, .fini = teardown);

#define PARSE(opts, ...)                                                                 \
	({                                                                               \
		char *argv_[] = {"mqpipe-counter", __VA_ARGS__, NULL};                   \
		int argc_ = (int)(sizeof(argv_) / sizeof(argv_[0])) - 1;                 \
		enum mqp_parse_result r_ =                                               \
			mqp_options_parse(opts, "counter", argc_, argv_, NULL, 0, NULL, out, err); \
		fflush(out);                                                             \
		fflush(err);                                                             \
		r_;                                                                      \
	})

Test(options, defaults_follow_the_spec)
{
	struct mqp_options o = {0};
	char *argv[] = {"mqpipe-counter", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_str_eq(o.broker, "tcp://127.0.0.1:1883");
	cr_assert_str_eq(o.client_id, "mqpipe-counter");
	cr_assert_str_eq(o.db_path, "./var/counter.db");
	cr_assert_str_eq(o.prefix, "");
	cr_assert_eq(o.log_level, MQP_LOG_INFO);
	cr_assert_eq(o.metrics_interval_s, 10);
}

Test(options, environment_supplies_broker_and_state_directory)
{
	setenv("MQPIPE_BROKER", "tcp://10.0.0.1:1999", 1);
	setenv("STATE_DIRECTORY", "/var/lib/mqpipe:/var/lib/other", 1);
	struct mqp_options o = {0};
	char *argv[] = {"mqpipe-counter", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_str_eq(o.broker, "tcp://10.0.0.1:1999");
	cr_assert_str_eq(o.db_path, "/var/lib/mqpipe/counter.db");
}

Test(options, flags_override_defaults)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-b", "ws://h:9001", "--client-id", "c2", "-d", "/tmp/x.db", "-p",
			   "site/a/", "-l", "debug", "--log-format", "json"),
		     MQP_PARSE_RUN);
	cr_assert_str_eq(o.broker, "ws://h:9001");
	cr_assert_str_eq(o.client_id, "c2");
	cr_assert_str_eq(o.db_path, "/tmp/x.db");
	cr_assert_str_eq(o.prefix, "site/a", "a trailing slash is dropped");
	cr_assert_eq(o.log_level, MQP_LOG_DEBUG);
	cr_assert_eq(o.log_format, MQP_LOG_JSON);
}

Test(options, a_user_name_without_client_id_is_the_client_id)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-u", "mqpipe-counter-2"), MQP_PARSE_RUN);
	cr_assert_str_eq(o.client_id, "mqpipe-counter-2");
	cr_assert_eq(o.has_client_id, 0, "the id is a default, not a flag");
}

Test(options, the_user_name_from_the_environment_is_the_client_id)
{
	setenv("MQPIPE_USERNAME", "mqpipe-worker-3", 1);
	struct mqp_options o = {.instances_per_host = 1};
	char *argv[] = {"mqpipe-worker", NULL};
	cr_assert_eq(mqp_options_parse(&o, "worker", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_str_eq(o.client_id, "mqpipe-worker-3");
	cr_assert_str_eq(o.db_path, "./var/mqpipe-worker-3.db", "a worker's store follows its id");
}

Test(options, a_given_client_id_wins_over_the_user_name)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-u", "mqpipe-counter", "-i", "other"), MQP_PARSE_RUN);
	cr_assert_str_eq(o.client_id, "other");
}

static void usage_error(enum mqp_parse_result r, const char *part)
{
	cr_assert_eq(r, MQP_PARSE_USAGE);
	cr_assert(strstr(err_buf, part), "stderr '%s' lacks '%s'", err_buf, part);
	cr_assert_eq(strchr(err_buf, '\n'), err_buf + strlen(err_buf) - 1, "one line: '%s'", err_buf);
}

Test(options, an_unknown_flag_is_a_one_line_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--frobnicate"), "unknown option '--frobnicate'");
}

Test(options, a_missing_argument_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--broker"), "needs an argument");
}

Test(options, a_bad_broker_uri_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-b", "localhost:1883"), "--broker 'localhost:1883'");
}

Test(options, a_bad_log_level_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-l", "loud"), "--log-level 'loud'");
}

Test(options, a_wildcard_prefix_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--prefix", "a/#"), "--prefix");
}

Test(options, a_client_id_with_topic_syntax_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-i", "a/b"), "--client-id 'a/b'");
}

Test(options, a_missing_password_file_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--password-file", "/nonexistent/pw"), "--password-file");
}

/* Writes text into a new file named after path (a mkstemp template). */
static void temp_file(char *path, const char *text)
{
	int fd = mkstemp(path);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

Test(options, environment_supplies_credentials_and_flags_override_them)
{
	char path[] = "/tmp/mqpipe-test-pw.XXXXXX";
	temp_file(path, "s3cret\nignored\n");
	setenv("MQPIPE_USERNAME", "mqpipe-counter", 1);
	setenv("MQPIPE_PASSWORD_FILE", path, 1);
	setenv("MQPIPE_CAFILE", path, 1);
	struct mqp_options o = {0};
	char *argv[] = {"mqpipe-counter", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert(o.has_username && o.has_password);
	cr_assert_str_eq(o.username, "mqpipe-counter");
	cr_assert_str_eq(o.password, "s3cret");
	cr_assert_str_eq(o.cafile, path);
	struct mqp_options o2 = {0};
	cr_assert_eq(PARSE(&o2, "-u", "someone-else"), MQP_PARSE_RUN);
	cr_assert_str_eq(o2.username, "someone-else");
	unlink(path);
}

Test(options, an_unreadable_password_file_in_the_environment_is_a_usage_error)
{
	setenv("MQPIPE_PASSWORD_FILE", "/nonexistent/pw", 1);
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-l", "info"), "MQPIPE_PASSWORD_FILE /nonexistent/pw");
}

Test(options, a_positional_argument_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "extra"), "unexpected argument 'extra'");
}

Test(options, help_and_version_print_and_exit_zero)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "--help"), MQP_PARSE_EXIT_OK);
	cr_assert(strstr(out_buf, "--broker URI"));
	cr_assert_eq(PARSE(&o, "-V"), MQP_PARSE_EXIT_OK);
	cr_assert(strstr(out_buf, "mqpipe-counter "));
}

static int seen_n;
static int take_n(void *ctx, const char *arg, char *errbuf, size_t errlen)
{
	(void)ctx;
	long v;
	if (mqp_parse_long(arg, 1, 9, &v)) {
		snprintf(errbuf, errlen, "'%s' is not 1..9", arg);
		return -1;
	}
	seen_n = (int)v;
	return 0;
}

Test(options, agent_flags_are_parsed_with_the_common_ones)
{
	struct mqp_extra_option x[] = {{"n", 1, "N", "a number", take_n, 'n'}};
	struct mqp_options o = {0};
	char *ok[] = {"mqpipe-counter", "--n", "7", "-l", "warn", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 5, ok, x, 1, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_eq(seen_n, 7);
	seen_n = 0;
	char *short_form[] = {"mqpipe-counter", "-n", "8", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 3, short_form, x, 1, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_eq(seen_n, 8, "an extra flag's one-letter form works too");
	char *operand[] = {"mqpipe-counter", "file", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 2, operand, x, 1, NULL, out, err), MQP_PARSE_USAGE,
		     "an operand is refused unless max_args allows it");
	o.max_args = 1;
	cr_assert_eq(mqp_options_parse(&o, "counter", 2, operand, x, 1, NULL, out, err), MQP_PARSE_RUN);
	cr_assert(o.n_args == 1 && strcmp(o.args[0], "file") == 0);
	o.max_args = 0;
	char *bad[] = {"mqpipe-counter", "--n", "70", NULL};
	cr_assert_eq(mqp_options_parse(&o, "counter", 3, bad, x, 1, NULL, out, err), MQP_PARSE_USAGE);
	fflush(err);
	cr_assert(strstr(err_buf, "--n: '70' is not 1..9"));
}

Test(options, topics_get_the_prefix)
{
	struct mqp_options o = {0};
	char buf[64];
	cr_assert_eq(PARSE(&o, "-p", "ns"), MQP_PARSE_RUN);
	cr_assert_eq(mqp_options_topic(&o, "success_rate", buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "ns/success_rate");
	cr_assert_neq(mqp_options_topic(&o, "a-very-long-topic-name-that-cannot-fit-in-eight", buf, 8), 0);
}

Test(log_quote, leaves_plain_tokens_and_quotes_the_rest)
{
	char buf[64];
	cr_assert_str_eq(mqp_log_quote(buf, sizeof(buf), "recv_message"), "recv_message");
	cr_assert_str_eq(mqp_log_quote(buf, sizeof(buf), "a b"), "\"a b\"");
	cr_assert_str_eq(mqp_log_quote(buf, sizeof(buf), "say \"hi\"\n"), "\"say \\\"hi\\\"\\x0a\"");
	cr_assert_str_eq(mqp_log_quote(buf, sizeof(buf), ""), "\"\"");
	const char *cut = mqp_log_quote(buf, 8, "a very long value");
	cr_assert_lt(strlen(cut), 8, "bounded: '%s'", cut);
	cr_assert(cut[0] == '"' && cut[strlen(cut) - 1] == '"' && strlen(cut) >= 2, "'%s'", cut);
}

Test(duration, reads_seconds_and_units)
{
	int64_t ms;
	cr_assert_eq(mqp_parse_duration("90", &ms), 0);
	cr_assert_eq(ms, 90000);
	cr_assert_eq(mqp_parse_duration("90m", &ms), 0);
	cr_assert_eq(ms, 5400000);
	cr_assert_eq(mqp_parse_duration("7d", &ms), 0);
	cr_assert_eq(ms, 7LL * 86400000);
	cr_assert_eq(mqp_parse_duration("0", &ms), 0);
	cr_assert_eq(ms, 0);
	const char *bad[] = {"", "m", "-1", "5w", "5mm", "3651d", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(mqp_parse_duration(bad[i], &ms), MQP_ERR_INVAL, "'%s'", bad[i]);
}

/* Empties the captured stderr, for a test that checks several errors. */
static void reset_err(void)
{
	fclose(err);
	free(err_buf);
	err_buf = NULL;
	err = open_memstream(&err_buf, &err_len);
}

Test(options, broker_uris_need_a_host_and_a_port_from_1_to_65535)
{
	char why[300];
	const char *good[] = {"tcp://127.0.0.1:1883", "tcp://broker", "ssl://broker.example.org:8883",
			      "ws://h:9001/mqtt", "wss://h/", "mqtt://h:1", "mqtts://h:65535",
			      "tcp://[::1]:1883", "tcp://my_host-2:1883"};
	for (size_t i = 0; i < MQP_LEN(good); i++)
		cr_assert_eq(mqp_options_check_broker("--broker", good[i], why, sizeof(why)), 0,
			     "'%s': %s", good[i], why);
	const char *bad[] = {"garbage", "localhost:1883", "tcp://", "tcp://:1883", "tcp://h:",
			     "tcp://h:0", "tcp://h:65536", "tcp://h:99999", "tcp://h:-1",
			     "tcp://h:1883x", "tcp://h:1883/path", "tcp://h h:1883", "tcp://[::1",
			     "tcp://[]:1883", "http://h:80", "tcp://h:00000001883"};
	for (size_t i = 0; i < MQP_LEN(bad); i++) {
		cr_assert_eq(mqp_options_check_broker("MQPIPE_BROKER", bad[i], why, sizeof(why)), -1,
			     "'%s' accepted", bad[i]);
		cr_assert(strncmp(why, "MQPIPE_BROKER '", 15) == 0, "names its source: %s", why);
	}
}

Test(options, a_port_out_of_range_is_a_usage_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-b", "tcp://host:99999"), "from 1 to 65535");
}

Test(options, a_bad_broker_in_the_environment_is_a_usage_error_naming_it)
{
	setenv("MQPIPE_BROKER", "garbage", 1);
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-l", "info"), "MQPIPE_BROKER 'garbage'");
	reset_err();
	setenv("MQPIPE_BROKER", "tcp://h:99999", 1);
	usage_error(PARSE(&o, "-l", "info"), "MQPIPE_BROKER 'tcp://h:99999'");
	reset_err();
	/* Checked like the flag even when a flag overrides it: a drop-in that
	 * is wrong is said at once, not when the flag goes away. */
	usage_error(PARSE(&o, "-b", "tcp://127.0.0.1:1883"), "MQPIPE_BROKER");
}

Test(options, an_empty_variable_counts_as_unset)
{
	setenv("MQPIPE_BROKER", "", 1);
	setenv("MQPIPE_CAFILE", "", 1);
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-l", "info"), MQP_PARSE_RUN);
	cr_assert_str_eq(o.broker, "tcp://127.0.0.1:1883");
	cr_assert_str_eq(o.cafile, "");
}

Test(options, unreadable_tls_files_and_a_long_user_in_the_environment_are_usage_errors)
{
	const char *names[] = {"MQPIPE_CAFILE", "MQPIPE_CERT", "MQPIPE_KEY"};
	for (size_t i = 0; i < MQP_LEN(names); i++) {
		setenv(names[i], "/nonexistent/f", 1);
		struct mqp_options o = {0};
		char want[64];
		snprintf(want, sizeof(want), "%s /nonexistent/f", names[i]);
		usage_error(PARSE(&o, "-l", "info"), want);
		unsetenv(names[i]);
		reset_err();
	}
	char user[300];
	memset(user, 'u', sizeof(user) - 1);
	user[sizeof(user) - 1] = '\0';
	setenv("MQPIPE_USERNAME", user, 1);
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-l", "info"), "MQPIPE_USERNAME");
}

Test(options, a_state_directory_too_long_for_a_path_is_a_usage_error)
{
	char dir[1100];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	setenv("STATE_DIRECTORY", dir, 1);
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "-l", "info"), "STATE_DIRECTORY");
	/* -d makes it irrelevant */
	cr_assert_eq(PARSE(&o, "-d", "/tmp/x.db"), MQP_PARSE_USAGE,
		     "checked before the flags, like every variable");
}

Test(options, only_the_fallback_var_directory_may_be_created)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-l", "info"), MQP_PARSE_RUN);
	cr_assert_str_eq(o.db_path, "./var/counter.db");
	cr_assert(o.db_default_var);
	cr_assert_eq(PARSE(&o, "-d", "var/counter.db"), MQP_PARSE_RUN);
	cr_assert_not(o.db_default_var, "-d names a directory that must exist");
	setenv("STATE_DIRECTORY", "/var/lib/mqpipe-counter", 1);
	cr_assert_eq(PARSE(&o, "-l", "info"), MQP_PARSE_RUN);
	cr_assert_not(o.db_default_var, "systemd makes $STATE_DIRECTORY");
}

Test(options, dead_letter_bounds_default_to_16_mib_and_7_days)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-l", "info"), MQP_PARSE_RUN);
	cr_assert_eq(o.deadletter_max_bytes, 16LL * 1024 * 1024);
	cr_assert_eq(o.deadletter_max_age_ms, 7LL * 86400 * 1000);
	cr_assert_eq(PARSE(&o, "--deadletter-max-bytes", "0", "--deadletter-max-age", "90m"),
		     MQP_PARSE_RUN);
	cr_assert_eq(o.deadletter_max_bytes, 0);
	cr_assert_eq(o.deadletter_max_age_ms, 90LL * 60 * 1000);
}

Test(options, bad_dead_letter_bounds_are_usage_errors)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--deadletter-max-bytes", "-1"), "--deadletter-max-bytes '-1'");
	reset_err();
	usage_error(PARSE(&o, "--deadletter-max-bytes", "16M"), "--deadletter-max-bytes '16M'");
	reset_err();
	usage_error(PARSE(&o, "--deadletter-max-age", "7w"), "--deadletter-max-age '7w'");
}

Test(options, an_agent_of_many_instances_is_named_after_its_host)
{
	char host[64] = "";
	cr_assert_eq(gethostname(host, sizeof(host) - 1), 0);
	char want_id[128], want_db[160];
	snprintf(want_id, sizeof(want_id), "mqpipe-worker-%s", host);
	snprintf(want_db, sizeof(want_db), "./var/%s.db", want_id);
	struct mqp_options o = {.instances_per_host = 1};
	char *argv[] = {"mqpipe-worker", NULL};
	cr_assert_eq(mqp_options_parse(&o, "worker", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_str_eq(o.client_id, want_id);
	cr_assert_str_eq(o.db_path, want_db, "each instance's store follows its id");
	cr_assert_eq(o.instances_per_host, 1, "kept across the parse, like max_args");
}

Test(options, an_agent_of_one_instance_is_named_after_itself_whatever_its_name)
{
	struct mqp_options o = {0};
	char *argv[] = {"mqpipe-worker", NULL};
	cr_assert_eq(mqp_options_parse(&o, "worker", 1, argv, NULL, 0, NULL, out, err), MQP_PARSE_RUN);
	cr_assert_str_eq(o.client_id, "mqpipe-worker", "the library knows no agent by name");
	cr_assert_str_eq(o.db_path, "./var/worker.db");
}

Test(options, help_shows_the_agents_own_max_payload)
{
	struct mqp_options o = {.max_payload_default = 16L << 20};
	char *argv[] = {"mqpipe-dispatcher", "--help", NULL};
	char *text = NULL;
	size_t len = 0;
	FILE *help = open_memstream(&text, &len);
	cr_assert_eq(mqp_options_parse(&o, "dispatcher", 2, argv, NULL, 0, NULL, help, err),
		     MQP_PARSE_EXIT_OK);
	fclose(help);
	cr_assert(strstr(text, "(default 16777216)"), "%s", text);
	free(text);
}

/* Parses argv as the tool "record" does (tool_synopsis set). */
static enum mqp_parse_result parse_tool(struct mqp_options *o, int argc, char **argv)
{
	o->tool_synopsis = "[OPTION]...";
	enum mqp_parse_result r = mqp_options_parse(o, "record", argc, argv, NULL, 0, NULL, out, err);
	fflush(out);
	fflush(err);
	return r;
}

Test(options, a_tool_takes_the_connection_flags)
{
	char path[] = "/tmp/mqpipe-options-pw.XXXXXX";
	temp_file(path, "pw\n");
	struct mqp_options o = {0};
	char *argv[] = {"mqpipe-record", "-b", "ssl://h:8883", "-u", "me", "--password-file", path,
			"--cafile", path, "-p", "ns", NULL};
	cr_assert_eq(parse_tool(&o, 11, argv), MQP_PARSE_RUN, "%s", err_buf);
	cr_assert_str_eq(o.broker, "ssl://h:8883");
	cr_assert_str_eq(o.password, "pw");
	cr_assert_str_eq(o.cafile, path);
	cr_assert_str_eq(o.prefix, "ns");
	unlink(path);
}

Test(options, a_tool_refuses_the_agents_flags_its_help_does_not_list)
{
	struct mqp_options o = {0};
	char *db[] = {"mqpipe-record", "-d", "x.db", NULL};
	usage_error(parse_tool(&o, 3, db), "unknown option '-d'");
	char *sync[] = {"mqpipe-record", "--sync", "full", NULL};
	cr_assert_eq(parse_tool(&o, 3, sync), MQP_PARSE_USAGE);
	cr_assert(strstr(err_buf, "unknown option '--sync'"), "%s", err_buf);
	char *help[] = {"mqpipe-record", "--help", NULL};
	cr_assert_eq(parse_tool(&o, 2, help), MQP_PARSE_EXIT_OK);
	cr_assert(strstr(out_buf, "--cafile F") && !strstr(out_buf, "--sync"), "%s", out_buf);
}

Test(options, a_file_flag_given_with_equals_is_named_in_the_error)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--cert=/nonexistent/cert.pem"),
		    "--cert /nonexistent/cert.pem: cannot read the file");
}

Test(options, a_flag_without_an_argument_given_one_is_refused_by_name)
{
	struct mqp_options o = {0};
	usage_error(PARSE(&o, "--help=x"), "unknown option '--help=x'");
}

/* ---- shards (README "Scaling out") ---------------------------------------- */

Test(options, a_sharded_agent_of_several_shards_names_its_session_and_files_after_its_shard)
{
	struct mqp_options o = {.sharded = 1};
	cr_assert_eq(PARSE(&o, "--shards", "4", "--shard", "3"), MQP_PARSE_RUN);
	cr_assert_eq(o.shards, 4);
	cr_assert_eq(o.shard, 3);
	cr_assert_str_eq(o.client_id, "mqpipe-counter-3");
	cr_assert_str_eq(o.db_path, "./var/counter-3.db");
}

Test(options, with_one_shard_everything_is_as_without_shards)
{
	struct mqp_options o = {.sharded = 1};
	cr_assert_eq(PARSE(&o, "--shard", "0"), MQP_PARSE_RUN);
	cr_assert_eq(o.shards, 1);
	cr_assert_str_eq(o.client_id, "mqpipe-counter");
	cr_assert_str_eq(o.db_path, "./var/counter.db");
}

Test(options, the_shards_come_from_the_environment_too)
{
	setenv("MQPIPE_SHARDS", "8", 1);
	struct mqp_options o = {.sharded = 1};
	cr_assert_eq(PARSE(&o, "--shard", "7", "-i", "mine"), MQP_PARSE_RUN);
	cr_assert_eq(o.shards, 8);
	cr_assert_str_eq(o.client_id, "mine", "a given -i wins");
}

Test(options, several_shards_without_the_instances_shard_is_a_usage_error)
{
	struct mqp_options o = {.sharded = 1};
	cr_assert_eq(PARSE(&o, "--shards", "4"), MQP_PARSE_USAGE);
	cr_assert_str_eq(err_buf, "mqpipe-counter: --shards 4 needs --shard K, the shard this "
				  "instance owns (0 to 3) (see --help)\n");
}

Test(options, a_shard_past_the_last_is_a_usage_error)
{
	struct mqp_options o = {.sharded = 1};
	cr_assert_eq(PARSE(&o, "--shards", "4", "--shard", "4"), MQP_PARSE_USAGE);
	cr_assert_str_eq(err_buf,
			 "mqpipe-counter: --shard 4: a shard from 0 to 3 (--shards 4) (see --help)\n");
}

Test(options, an_agent_that_owns_no_shard_refuses_a_shard)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "--shards", "4", "--shard", "1"), MQP_PARSE_USAGE);
	cr_assert_str_eq(err_buf, "mqpipe-counter: --shard: mqpipe-counter owns no shard "
				  "(README \"Scaling out\") (see --help)\n",
			 "not taken for an abbreviation of --shards");
}

Test(options, a_broker_list_is_checked_uri_by_uri)
{
	struct mqp_options o = {0};
	cr_assert_eq(PARSE(&o, "-b", "tcp://10.0.0.1:1883,tcp://10.0.0.2:1884"), MQP_PARSE_RUN);
	cr_assert_str_eq(o.broker, "tcp://10.0.0.1:1883,tcp://10.0.0.2:1884");
	cr_assert_eq(PARSE(&o, "-b", "tcp://10.0.0.1:1883,tcp://:1884"), MQP_PARSE_USAGE);
	cr_assert(strstr(err_buf, "'tcp://:1884': no host name"), "%s", err_buf);
}
