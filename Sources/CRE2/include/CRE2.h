// C API over RE2 so Swift can compile a pattern once and full-match it from any thread
// (RE2 objects are immutable after construction and safe for concurrent matching).
#ifndef CRE2_H
#define CRE2_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cre2_regex cre2_regex;

/// Compiles `pattern` (len bytes, not necessarily NUL-terminated). On a bad pattern returns
/// NULL and writes RE2's message, NUL-terminated and truncated to errlen, into errbuf.
cre2_regex *cre2_new(const char *pattern, size_t len, char *errbuf, size_t errlen);

/// 1 if the whole of `text` matches (RE2::FullMatch), 0 otherwise.
int cre2_full_match(const cre2_regex *re, const char *text, size_t len);

void cre2_free(cre2_regex *re);

#ifdef __cplusplus
}
#endif

#endif
