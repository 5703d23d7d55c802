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

/// Number of capturing groups in the pattern.
int cre2_num_groups(const cre2_regex *re);

/// 1 if `rewrite` (RE2 syntax: \0..\9 name capture groups, \\ a backslash) is valid for this pattern
/// (no reference to a group it does not have); otherwise 0 with RE2's message in errbuf.
int cre2_check_rewrite(const cre2_regex *re, const char *rewrite, size_t len, char *errbuf, size_t errlen);

/// RE2::GlobalReplace: every non-overlapping match of `text` replaced by `rewrite` (Envoy's
/// regex_rewrite). Returns a malloc'ed buffer of *outlen bytes (free it with cre2_free_buffer), or
/// NULL on allocation failure. The result is returned even when nothing matched (a copy of text).
char *cre2_global_replace(const cre2_regex *re, const char *text, size_t len, const char *rewrite, size_t rlen,
                          size_t *outlen);

void cre2_free_buffer(char *buf);

#ifdef __cplusplus
}
#endif

#endif
