// Thin C shim over RE2; see include/CRE2.h.
#include "CRE2.h"

#include <re2/re2.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

struct cre2_regex {
    RE2 re;
    explicit cre2_regex(re2::StringPiece p, const RE2::Options &o) : re(p, o) {}
};

extern "C" cre2_regex *cre2_new(const char *pattern, size_t len, char *errbuf, size_t errlen) {
    RE2::Options opts;
    opts.set_log_errors(false);  // errors are reported to the caller, not to stderr
    cre2_regex *r = new (std::nothrow) cre2_regex(re2::StringPiece(pattern, len), opts);
    if (r == nullptr) {
        if (errbuf && errlen > 0) std::snprintf(errbuf, errlen, "out of memory");
        return nullptr;
    }
    if (!r->re.ok()) {
        if (errbuf && errlen > 0) {
            const std::string &e = r->re.error();
            size_t n = e.size() < errlen - 1 ? e.size() : errlen - 1;
            std::memcpy(errbuf, e.data(), n);
            errbuf[n] = '\0';
        }
        delete r;
        return nullptr;
    }
    return r;
}

extern "C" int cre2_full_match(const cre2_regex *re, const char *text, size_t len) {
    if (re == nullptr) return 0;
    return RE2::FullMatch(re2::StringPiece(text, len), re->re) ? 1 : 0;
}

extern "C" void cre2_free(cre2_regex *re) { delete re; }

extern "C" int cre2_num_groups(const cre2_regex *re) { return re == nullptr ? 0 : re->re.NumberOfCapturingGroups(); }

extern "C" int cre2_check_rewrite(const cre2_regex *re, const char *rewrite, size_t len, char *errbuf, size_t errlen) {
    if (re == nullptr) return 0;
    std::string error;
    if (re->re.CheckRewriteString(re2::StringPiece(rewrite, len), &error)) return 1;
    if (errbuf && errlen > 0) {
        size_t n = error.size() < errlen - 1 ? error.size() : errlen - 1;
        std::memcpy(errbuf, error.data(), n);
        errbuf[n] = '\0';
    }
    return 0;
}

extern "C" char *cre2_global_replace(const cre2_regex *re, const char *text, size_t len, const char *rewrite, size_t rlen,
                                     size_t *outlen) {
    if (re == nullptr || outlen == nullptr) return nullptr;
    try {
        std::string s(text, len);
        RE2::GlobalReplace(&s, re->re, re2::StringPiece(rewrite, rlen));
        char *out = static_cast<char *>(std::malloc(s.size() + 1));
        if (out == nullptr) return nullptr;
        std::memcpy(out, s.data(), s.size());
        out[s.size()] = '\0';
        *outlen = s.size();
        return out;
    } catch (...) {  // std::bad_alloc: never let an exception cross the C boundary
        return nullptr;
    }
}

extern "C" void cre2_free_buffer(char *buf) { std::free(buf); }
