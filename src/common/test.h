/* SPDX-License-Identifier: GPL-3.0-or-later */
/* test.h: what every unit test shares.  CHECK counts a failure and goes
 * on, so one run reports every broken case; REQUIRE stops the test where
 * going on would only crash on what failed.  Each failure names the file,
 * the line, the condition and the last error the code under test set.
 * A test's main ends with `return vb_test_end ("test-x");`. */
#ifndef VB_COMMON_TEST_H
#define VB_COMMON_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

static int failures;

#define VB_TEST_FAIL(what) \
  fprintf (stderr, "%s:%d: %s\n  last error: %s\n", __FILE__, __LINE__, \
           (what), vb_get_error ())

#define CHECK(cond) do {                                                \
    if (!(cond)) {                                                      \
      VB_TEST_FAIL ("CHECK failed: " #cond);                            \
      failures++;                                                       \
    }                                                                   \
  } while (0)

#define REQUIRE(cond) do {                                              \
    if (!(cond)) {                                                      \
      VB_TEST_FAIL ("REQUIRE failed: " #cond);                          \
      exit (1);                                                         \
    }                                                                   \
  } while (0)

/* COND holds and the error message contains SUBSTR. */
#define CHECK_ERR(cond, substr) do {                                    \
    CHECK (cond);                                                       \
    if (strstr (vb_get_error (), (substr)) == NULL) {                   \
      fprintf (stderr, "%s:%d: error \"%s\" lacks \"%s\"\n",            \
               __FILE__, __LINE__, vb_get_error (), (substr));          \
      failures++;                                                       \
    }                                                                   \
  } while (0)

/* Two strings equal, or both NULL. */
#define CHECK_STR(a, b) do {                                            \
    const char *a_ = (a), *b_ = (b);                                    \
    if (a_ == NULL || b_ == NULL ? a_ != b_ : strcmp (a_, b_) != 0) {   \
      fprintf (stderr, "%s:%d: CHECK_STR failed: %s is \"%s\", "        \
               "expected \"%s\"\n", __FILE__, __LINE__, #a,             \
               a_ ? a_ : "(null)", b_ ? b_ : "(null)");                 \
      failures++;                                                       \
    }                                                                   \
  } while (0)

static inline int
vb_test_end (const char *name)
{
  if (failures) {
    fprintf (stderr, "%s: %d failures\n", name, failures);
    return 1;
  }
  printf ("%s: ok\n", name);
  return 0;
}

#endif
