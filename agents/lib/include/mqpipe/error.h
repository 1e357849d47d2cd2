/* Error codes shared by every runtime module: 0 is success, failures are negative. */
#ifndef MQPIPE_ERROR_H
#define MQPIPE_ERROR_H

enum mqp_err {
	MQP_OK = 0,
	MQP_ERR_NOMEM = -1,   /* an allocation failed */
	MQP_ERR_INVAL = -2,   /* a caller passed something unusable */
	MQP_ERR_IO = -3,      /* a system call on a file failed; errno says why */
	MQP_ERR_DB = -4,      /* SQLite failed; the store logs its message */
	MQP_ERR_MQTT = -5,    /* Paho refused a call */
	MQP_ERR_INPUT = -6,   /* a message is malformed: it is dead-lettered */
	MQP_ERR_CORRUPT = -7, /* a file holds bytes we did not write */
	MQP_ERR_BUSY = -8,    /* another process holds the file's lock */
};

/* Returns a static, human-readable name for an mqp_err code. */
const char *mqp_strerror(int rc);

#endif
