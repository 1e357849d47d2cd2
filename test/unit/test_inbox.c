/* The durable inbox (mqpipe/inbox.h): what is appended is handed out once, in
 * order, across reopenings; torn tails are cut; applied records are not replayed. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mqpipe/inbox.h"

static char dir[64], path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/mqpipe-inbox-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a.inbox", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

TestSuite(inbox, .init = setup, .fini = teardown);

struct seen {
	char text[64][64];
	uint64_t seq[64];
	int n;
};

static int collect(void *ctx, const struct mqp_inbox_record *r)
{
	struct seen *s = ctx;
	snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s=%.*s", (int)r->topic_len, r->topic,
		 (int)r->payload_len, (const char *)r->payload);
	s->seq[s->n++] = r->seq;
	return 0;
}

static void append(struct mqp_inbox *in, const char *topic, const char *payload)
{
	cr_assert_eq(mqp_inbox_append(in, topic, strlen(topic), payload, strlen(payload), 1, 42, NULL), 0);
}

static off_t file_size(void)
{
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	return st.st_size;
}

static int collect_reply_to(void *ctx, const struct mqp_inbox_record *r)
{
	struct seen *s = ctx;
	snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s=%.*s rt=%.*s cd=%.*s", (int)r->topic_len,
		 r->topic, (int)r->payload_len, (const char *)r->payload, (int)r->response_topic_len,
		 r->response_topic ? r->response_topic : "", (int)r->correlation_len,
		 r->correlation ? (const char *)r->correlation : "");
	s->seq[s->n++] = r->seq;
	return 0;
}

Test(inbox, keeps_a_requests_response_topic_and_correlation_data)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	struct mqp_inbox_meta both = {"replies/1", 9, "abc", 3, 0};
	struct mqp_inbox_meta topic_only = {"replies/2", 9, NULL, 0, 0};
	cr_assert_eq(mqp_inbox_append(in, "q", 1, "{}", 2, 1, 1, &both), 0);
	cr_assert_eq(mqp_inbox_append(in, "q", 1, "x", 1, 1, 1, &topic_only), 0);
	append(in, "q", "plain");
	mqp_inbox_close(in);
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0, "read back after a restart");
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect_reply_to, &s), 3);
	cr_assert_str_eq(s.text[0], "q={} rt=replies/1 cd=abc");
	cr_assert_str_eq(s.text[1], "q=x rt=replies/2 cd=");
	cr_assert_str_eq(s.text[2], "q=plain rt= cd=");
	mqp_inbox_close(in);
}

static int collect_cut(void *ctx, const struct mqp_inbox_record *r)
{
	struct seen *s = ctx;
	snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s=%.*s cut=%llu rt=%.*s", (int)r->topic_len,
		 r->topic, (int)r->payload_len, (const char *)r->payload,
		 (unsigned long long)r->cut_from, (int)r->response_topic_len,
		 r->response_topic ? r->response_topic : "");
	s->seq[s->n++] = r->seq;
	return 0;
}

Test(inbox, keeps_the_original_length_of_a_cut_payload)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	struct mqp_inbox_meta cut = {NULL, 0, NULL, 0, 5000000};
	struct mqp_inbox_meta cut_request = {"replies/3", 9, "c", 1, 70000};
	cr_assert_eq(mqp_inbox_append(in, "big", 3, "head", 4, 1, 1, &cut), 0);
	cr_assert_eq(mqp_inbox_append(in, "big", 3, "hd", 2, 1, 1, &cut_request), 0);
	append(in, "small", "whole");
	mqp_inbox_close(in);
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0, "read back after a restart");
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect_cut, &s), 3);
	cr_assert_str_eq(s.text[0], "big=head cut=5000000 rt=");
	cr_assert_str_eq(s.text[1], "big=hd cut=70000 rt=replies/3");
	cr_assert_str_eq(s.text[2], "small=whole cut=0 rt=");
	mqp_inbox_close(in);
}

Test(inbox, hands_out_appended_records_in_order)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t1", "a");
	append(in, "t2", "");
	append(in, "t3", "ccc");
	cr_assert_eq(mqp_inbox_wait(in, 10), 1);
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 3);
	cr_assert_str_eq(s.text[0], "t1=a");
	cr_assert_str_eq(s.text[1], "t2=");
	cr_assert_str_eq(s.text[2], "t3=ccc");
	cr_assert_eq(s.seq[0] + 1, s.seq[1]);
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 0, "nothing is handed out twice");
	cr_assert_eq(mqp_inbox_wait(in, 1), 0);
	mqp_inbox_close(in);
}

Test(inbox, read_respects_the_batch_limit)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	for (int i = 0; i < 5; i++)
		append(in, "t", "x");
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 2, collect, &s), 2);
	cr_assert_eq(mqp_inbox_read(in, 2, collect, &s), 2);
	cr_assert_eq(mqp_inbox_read(in, 2, collect, &s), 1);
	mqp_inbox_close(in);
}

Test(inbox, unapplied_records_come_back_after_reopening)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "1");
	append(in, "t", "2");
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 2);
	mqp_inbox_close(in); /* a crash before the commit: nothing marked applied */

	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	struct seen again = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &again), 2);
	cr_assert_str_eq(again.text[1], "t=2");
	mqp_inbox_close(in);
}

Test(inbox, records_up_to_the_applied_seq_are_skipped_after_reopening)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "1");
	append(in, "t", "2");
	append(in, "t", "3");
	struct seen s = {0};
	mqp_inbox_read(in, 100, collect, &s);
	uint64_t applied = s.seq[1]; /* SQLite committed the first two only */
	mqp_inbox_close(in);

	cr_assert_eq(mqp_inbox_open(&in, path, applied, 0), 0);
	struct seen again = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &again), 1);
	cr_assert_str_eq(again.text[0], "t=3");
	append(in, "t", "4");
	mqp_inbox_read(in, 100, collect, &again);
	cr_assert_gt(again.seq[1], again.seq[0], "sequence numbers keep rising");
	mqp_inbox_close(in);
}

Test(inbox, writing_wraps_to_the_start_once_everything_is_applied)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "1");
	append(in, "t", "2");
	struct seen s = {0};
	mqp_inbox_read(in, 100, collect, &s);
	off_t size = file_size();
	cr_assert_eq(mqp_inbox_applied(in), 0);
	append(in, "t", "3");
	cr_assert_eq(file_size(), size, "the record went to offset 0, not the end");
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 1);
	cr_assert_str_eq(s.text[2], "t=3");
	cr_assert_gt(s.seq[2], s.seq[1]);
	mqp_inbox_close(in);
}

Test(inbox, reopening_after_a_wrap_replays_only_the_new_unapplied_records)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "old-1");
	append(in, "t", "old-2");
	append(in, "t", "old-3");
	struct seen s = {0};
	mqp_inbox_read(in, 100, collect, &s);
	mqp_inbox_applied(in);
	append(in, "t", "new"); /* overwrites the start of old-1 */
	mqp_inbox_close(in);     /* crash before "new" was applied */

	cr_assert_eq(mqp_inbox_open(&in, path, s.seq[2], 0), 0);
	struct seen again = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &again), 1);
	cr_assert_str_eq(again.text[0], "t=new");
	append(in, "t", "after");
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &again), 1);
	cr_assert_str_eq(again.text[1], "t=after");
	cr_assert_gt(again.seq[1], again.seq[0]);
	mqp_inbox_close(in);

	/* Everything applied this time: nothing comes back. */
	cr_assert_eq(mqp_inbox_open(&in, path, again.seq[1], 0), 0);
	struct seen none = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &none), 0);
	mqp_inbox_close(in);
}

Test(inbox, a_torn_tail_is_cut_and_the_whole_records_kept)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "whole");
	append(in, "t", "torn-record");
	mqp_inbox_close(in);
	off_t size = file_size();
	cr_assert_eq(truncate(path, size - 3), 0); /* died inside the second write() */

	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 1);
	cr_assert_str_eq(s.text[0], "t=whole");
	append(in, "t", "next");
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 1, "appends go after the good records");
	cr_assert_str_eq(s.text[1], "t=next");
	mqp_inbox_close(in);
}

Test(inbox, garbage_after_the_records_is_cut)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "ok");
	mqp_inbox_close(in);
	int fd = open(path, O_WRONLY | O_APPEND);
	cr_assert(write(fd, "garbage-garbage-garbage", 23) == 23);
	close(fd);
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	struct seen s = {0};
	cr_assert_eq(mqp_inbox_read(in, 100, collect, &s), 1);
	mqp_inbox_close(in);
}

static int count_big(void *ctx, const struct mqp_inbox_record *r)
{
	size_t *total = ctx;
	const unsigned char *p = r->payload;
	for (size_t i = 0; i < r->payload_len; i++)
		cr_assert_eq(p[i], (unsigned char)(i * 7), "byte %zu", i);
	*total += r->payload_len;
	return 0;
}

Test(inbox, records_larger_than_a_read_chunk_survive_reopening)
{
	size_t n = 700 * 1024;
	unsigned char *big = malloc(n);
	for (size_t i = 0; i < n; i++)
		big[i] = (unsigned char)(i * 7);
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	cr_assert_eq(mqp_inbox_append(in, "big", 3, big, n, 1, 1, NULL), 0);
	cr_assert_eq(mqp_inbox_append(in, "big", 3, big, n, 1, 1, NULL), 0);
	mqp_inbox_close(in);
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	size_t total = 0;
	cr_assert_eq(mqp_inbox_read(in, 100, count_big, &total), 2);
	cr_assert_eq(total, 2 * n);
	mqp_inbox_close(in);
	free(big);
}

static int stop_at_second(void *ctx, const struct mqp_inbox_record *r)
{
	(void)r;
	return ++*(int *)ctx == 2 ? -99 : 0;
}

Test(inbox, a_callback_error_stops_the_read_and_is_returned)
{
	struct mqp_inbox *in;
	cr_assert_eq(mqp_inbox_open(&in, path, 0, 0), 0);
	append(in, "t", "1");
	append(in, "t", "2");
	append(in, "t", "3");
	int calls = 0;
	cr_assert_eq(mqp_inbox_read(in, 100, stop_at_second, &calls), -99);
	cr_assert_eq(calls, 2);
	mqp_inbox_close(in);
}
