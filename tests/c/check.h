/* The check macros shared by the C test programs: CHECK(cond, printf-args) counts a check
 * and reports a failure with rill's last error; EXPECT_STATUS(call, status) checks a
 * call's status. */
#ifndef RILL_TEST_CHECK_H
#define RILL_TEST_CHECK_H

#include <stdio.h>

#include "rill.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        checks++;                                          \
        if (!(cond)) {                                     \
            failures++;                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fprintf(stderr, " [last error: %s]\n", rill_last_error()); \
        }                                                  \
    } while (0)

#define EXPECT_STATUS(call, want)                                              \
    do {                                                                       \
        rill_status got_ = (call);                                             \
        CHECK(got_ == (want), "%s: got %s, want %s", #call, rill_status_str(got_), \
              rill_status_str(want));                                          \
    } while (0)

#endif
