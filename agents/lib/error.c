/* The runtime's error codes as text (error.h). */
#include "mqpipe/error.h"

const char *mqp_strerror(int rc)
{
	switch (rc) {
	case MQP_OK: return "ok";
	case MQP_ERR_NOMEM: return "out of memory";
	case MQP_ERR_INVAL: return "invalid argument";
	case MQP_ERR_IO: return "i/o error";
	case MQP_ERR_DB: return "database error";
	case MQP_ERR_MQTT: return "mqtt error";
	case MQP_ERR_INPUT: return "bad input";
	case MQP_ERR_CORRUPT: return "corrupt file";
	case MQP_ERR_BUSY: return "in use by another process";
	default: return "unknown error";
	}
}
