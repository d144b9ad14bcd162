/* tool.h - declarations shared between the files of the q7 tool.
 *
 * The tool is one binary (the Makefile links every C file of tools/ with libq7.a);
 * tools/q7.c holds main() and every subcommand but `serve`, which lives in
 * tools/serve.c.  The tool uses only the public header <q7.h>. */
#ifndef Q7_TOOL_H
#define Q7_TOOL_H

/* tools/serve.c: q7 serve --listen ADDR:PORT --cluster NAME=DIR ... [--allow-delete]; argv[0] is "serve". Returns the process exit code. */
int q7_tool_serve(int argc, char **argv);

/* tools/kafka.c: q7 kafka export|import ...; argv[0] is "kafka", the store
 * directory comes from $Q7_DIR (main sets it from -d DIR) or -d after the
 * action.  Without librdkafka (no Q7_HAVE_RDKAFKA) it says so and returns 2.
 * Returns the process exit code. */
int q7_tool_kafka(int argc, char **argv);

/* tools/q7.c: messages and the store, shared by every file of the tool. */
#include <q7.h>

#if defined(__GNUC__)
#define TOOL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TOOL_PRINTF(f, a)
#endif

/* @s made safe for a one-line message: control and non-ASCII bytes as
 * \xHH, "..." past 120 bytes.  Four rotating buffers. */
const char *tool_shown(const char *s);
/* "q7: <fmt>" on stderr; return the usage exit code (2) and 1. */
int tool_usage_err(const char *fmt, ...) TOOL_PRINTF(1, 2);
int tool_fail(const char *fmt, ...) TOOL_PRINTF(1, 2);
/* "q7: <what>: <q7_strerror> (<q7_last_error>)"; returns 1.  Call it right
 * after the failed q7_* call: the detail is the thread's last error. */
int tool_lib_err(int rc, const char *fmt, ...) TOOL_PRINTF(2, 3);
/* Close @q, reporting a failure if no other was reported (@rc 0). */
int tool_close_store(q7 *q, int rc);

#endif /* Q7_TOOL_H */
